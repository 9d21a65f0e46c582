/*
 * mgmt_api_messages.c: the diagnostic publish and get of the management
 * API.
 *
 *   /api/exchanges/v/x/publish   POST {"routing_key", "payload",
 *                                "payload_encoding", "properties"}
 *                                -> {"routed": bool}
 *   /api/queues/v/q/get          POST {"count", "ackmode", "encoding",
 *                                "truncate"} -> the messages
 *
 * A publish needs write permission on the exchange, a get read permission
 * on the queue. Properties are RabbitMQ's JSON names for the basic
 * properties; what the broker acts on (persistence, priority, TTL, the
 * user-id rule) is read by amqp/amqp_props.c as for an AMQP publish. A
 * get takes the messages with ack and settles them at once: requeued
 * (marked redelivered), acked, or rejected without requeue
 * (dead-lettered), as the ackmode says.
 */
#include "server/mgmt/mgmt_int.h"

#include "amqp/amqp_props.h"

#include <stdio.h>
#include <stdlib.h>

struct prop_field {
    const char *name;
    uint16_t flag;
    size_t off;
    char kind; /* s: shortstr, o: octet, t: timestamp, h: headers */
};

#define PF(n, F, field, k)                                                    \
    {                                                                         \
        n, AMQP_BASIC_##F##_FLAG, offsetof(struct amqp_basic_props, field), k \
    }
static const struct prop_field prop_fields[] = {
    PF("content_type", CONTENT_TYPE, content_type, 's'),
    PF("content_encoding", CONTENT_ENCODING, content_encoding, 's'),
    PF("headers", HEADERS, headers, 'h'),
    PF("delivery_mode", DELIVERY_MODE, delivery_mode, 'o'),
    PF("priority", PRIORITY, priority, 'o'),
    PF("correlation_id", CORRELATION_ID, correlation_id, 's'),
    PF("reply_to", REPLY_TO, reply_to, 's'),
    PF("expiration", EXPIRATION, expiration, 's'),
    PF("message_id", MESSAGE_ID, message_id, 's'),
    PF("timestamp", TIMESTAMP, timestamp, 't'),
    PF("type", TYPE, type, 's'),
    PF("user_id", USER_ID, user_id, 's'),
    PF("app_id", APP_ID, app_id, 's'),
    PF("cluster_id", CLUSTER_ID, cluster_id, 's'),
};
#undef PF

/* JSON "properties" -> basic properties (views into the JSON, headers
 * encoded into hdrs). Replies 400 as RabbitMQ and returns false on a bad
 * value. */
static bool
props_from_json(struct mgmt_req *r, json_t *o, struct amqp_basic_props *p,
                struct buf *hdrs)
{
    memset(p, 0, sizeof(*p));
    if (o && !json_is_object(o)) {
        mgmt_bad_request(r, "properties must be an object");
        return false;
    }
    for (size_t i = 0; o && i < WR_ARRAY_LEN(prop_fields); i++) {
        const struct prop_field *f = &prop_fields[i];
        json_t *v = json_object_get(o, f->name);
        char *field = (char *)p + f->off;

        if (!v || json_is_null(v))
            continue;
        switch (f->kind) {
        case 's':
            if (!json_is_string(v) || json_string_length(v) > 255) {
                mgmt_bad_request_json(
                    r, json_pack("[s, s]", "not_string", f->name));
                return false;
            }
            *(struct bytes *)field =
                bytes_of(json_string_value(v), json_string_length(v));
            break;
        case 'o':
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 255) {
                mgmt_bad_request_json(r,
                                      json_pack("[s, s]", "not_int", f->name));
                return false;
            }
            *(uint8_t *)field = (uint8_t)json_integer_value(v);
            break;
        case 't':
            if (!json_is_integer(v)) {
                mgmt_bad_request_json(r,
                                      json_pack("[s, s]", "not_int", f->name));
                return false;
            }
            *(uint64_t *)field = (uint64_t)json_integer_value(v);
            break;
        default:
            if (!json_is_object(v) || defs_json_to_table(v, hdrs) != WR_OK) {
                mgmt_bad_request_json(
                    r, json_pack("[s, s]", "not_table", f->name));
                return false;
            }
            p->headers = buf_bytes(hdrs);
            break;
        }
        p->flags |= f->flag;
    }
    return true;
}

/* The properties that are set, as RabbitMQ's management shows them. */
static json_t *
props_to_json(struct bytes raw)
{
    struct amqp_basic_props p;
    json_t *o = json_object();

    if (amqp_basic_props_decode(raw.ptr, raw.len, &p, NULL) != AMQP_DECODE_OK)
        return o;
    for (size_t i = 0; i < WR_ARRAY_LEN(prop_fields); i++) {
        const struct prop_field *f = &prop_fields[i];
        const char *field = (const char *)&p + f->off;
        const struct bytes *b = (const struct bytes *)field;

        if (!(p.flags & f->flag))
            continue;
        switch (f->kind) {
        case 's':
            json_object_set_new(
                o, f->name, json_stringn_nocheck((const char *)b->ptr, b->len));
            break;
        case 'o':
            json_object_set_new(o, f->name,
                                json_integer(*(const uint8_t *)field));
            break;
        case 't':
            json_object_set_new(
                o, f->name,
                json_integer((json_int_t) * (const uint64_t *)field));
            break;
        default:
            json_object_set_new(o, f->name, mgmt_table_json(p.headers));
            break;
        }
    }
    return o;
}

/* Builds the message of an HTTP publish; NULL after replying 400. */
static struct message *
http_message(struct mgmt_req *r, json_t *body, struct bytes xname,
             struct bytes rk, struct buf *payload, struct buf *props,
             struct buf *hdrs)
{
    const char *enc = mgmt_body_str(body, "payload_encoding", NULL);
    json_t *pl = json_object_get(body, "payload");
    struct amqp_basic_props p;
    struct amqp_props ap;
    struct message *m;
    const char *why;
    char err[400];
    json_t *missing = json_array();

    if (!json_object_get(body, "properties"))
        json_array_append_new(missing, json_string("properties"));
    if (!pl)
        json_array_append_new(missing, json_string("payload"));
    if (!enc)
        json_array_append_new(missing, json_string("payload_encoding"));
    if (json_array_size(missing) > 0) {
        struct buf t;
        size_t i;
        json_t *e;

        buf_init(&t);
        buf_put_u8(&t, '[');
        json_array_foreach(missing, i, e) buf_printf(
            &t, "%s{key_missing,%s}", i ? "," : "", json_string_value(e));
        buf_put_u8(&t, ']');
        mgmt_bad_request(r, "%.*s", (int)t.len, (const char *)t.data);
        buf_fini(&t);
        json_decref(missing);
        return NULL;
    }
    json_decref(missing);
    if (!json_is_string(pl)) {
        mgmt_bad_request_json(r, json_pack("[s, s]", "not_string", "payload"));
        return NULL;
    }
    if (strcmp(enc, "string") == 0) {
        buf_append(payload, json_string_value(pl), json_string_length(pl));
    } else if (strcmp(enc, "base64") == 0) {
        if (!b64_decode(json_string_value(pl), json_string_length(pl), true,
                        payload)) {
            mgmt_bad_request_json(r, json_pack("[s, O]", "not_base64", pl));
            return NULL;
        }
    } else {
        mgmt_bad_request_json(r,
                              json_pack("[s, s]", "unsupported_encoding", enc));
        return NULL;
    }
    if (payload->len > srv->cfg->max_message_size) {
        mgmt_bad_request(r,
                         "message size %zu is larger than configured "
                         "max size %llu",
                         payload->len,
                         (unsigned long long)srv->cfg->max_message_size);
        return NULL;
    }
    if (!props_from_json(r, json_object_get(body, "properties"), &p, hdrs))
        return NULL;
    amqp_basic_props_encode(&p, props);
    if (amqp_props_read(buf_bytes(props), &ap, &why) != AMQP_DECODE_OK) {
        mgmt_bad_request(r, "invalid properties: %s", why);
        return NULL;
    }
    if (amqp_props_check_user(&ap, r->user_name, err, sizeof(err)) != WR_OK) {
        mgmt_bad_request(r, "%s", err);
        return NULL;
    }
    m = message_new(xname, rk, buf_bytes(props), payload->len);
    m = message_append(m, buf_bytes(payload));
    message_set_props(m, &ap);
    m->ts_us = node_now(srv->node);
    return m;
}

void
mgmt_h_publish(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct bytes xname = mgmt_exchange_name(r->args[1]);
    struct publish_result res;
    struct amqp_basic_props p;
    struct buf payload, props, hdrs;
    struct exchange *x;
    struct message *m;
    json_t *body;
    const char *rk;

    if (!vh || !mgmt_check_vhost(r, vh, false) || !(body = mgmt_body_json(r)))
        return;
    buf_init(&payload);
    buf_init(&props);
    buf_init(&hdrs);
    rk = mgmt_body_str(body, "routing_key", "");
    x = vhost_exchange_find(vh, xname);
    if (!x) {
        mgmt_bad_request(r,
                         "404 NOT_FOUND - no exchange '%.*s' in vhost "
                         "'%s'",
                         BYTES_FMT(xname), vhost_name(vh));
        goto out;
    }
    if (strlen(rk) > 255) {
        mgmt_bad_request(r, "routing_key is longer than 255 bytes");
        goto out;
    }
    if (!mgmt_check_perm(r, vh, PERM_WRITE, "exchange", xname))
        goto out;
    if (x->internal) {
        mgmt_bad_request(r,
                         "403 ACCESS_REFUSED - cannot publish to internal "
                         "exchange '%.*s' in vhost '%s'",
                         BYTES_FMT(xname), vhost_name(vh));
        goto out;
    }
    m = http_message(r, body, xname, bytes_str(rk), &payload, &props, &hdrs);
    if (!m)
        goto out;
    if (amqp_basic_props_decode(message_props(m).ptr, m->props_len, &p, NULL) !=
        AMQP_DECODE_OK)
        p.headers = BYTES_NULL;
    vhost_publish(vh, x, bytes_str(rk), p.headers, m, &res);
    message_unref(m);
    mgmt_reply_json(r, 200, json_pack("{s:b}", "routed", res.nqueues > 0));
out:
    buf_fini(&payload);
    buf_fini(&props);
    buf_fini(&hdrs);
    json_decref(body);
}

/* rabbit_mgmt_util:parse_int: an integer, or a string holding one. */
static bool
json_int(json_t *v, long *out)
{
    const char *s;
    char *end;

    if (json_is_integer(v)) {
        *out = (long)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    s = json_string_value(v);
    *out = strtol(s, &end, 10);
    return *s && !*end;
}

/* One message of a get, as RabbitMQ's management shows it; count: its
 * x-delivery-count (a quorum queue's: queue_delivery_count), or -1. */
static json_t *
got_json(struct message *m, bool redelivered, uint32_t remaining, bool auto_enc,
         long truncate, int64_t count)
{
    struct bytes body = message_body(m), props = message_props(m);
    struct buf counted;
    size_t n = truncate >= 0 && (size_t)truncate < body.len ? (size_t)truncate
                                                            : body.len;
    bool text = auto_enc && bytes_is_utf8(bytes_of(body.ptr, n));
    struct buf b64;
    json_t *o;

    buf_init(&b64);
    buf_init(&counted);
    /* RabbitMQ's quorum queues add it to every get (basic.get) */
    if (count >= 0 && amqp_props_put_long_header(props, "x-delivery-count",
                                                 count, &counted) == WR_OK)
        props = buf_bytes(&counted);
    if (!text)
        b64_encode(body.ptr, n, &b64);
    o = json_pack(
        "{s:I, s:b, s:s%, s:s%, s:I, s:o, s:s%, s:s}", "payload_bytes",
        (json_int_t)body.len, "redelivered", redelivered, "exchange",
        (const char *)message_exchange(m).ptr, message_exchange(m).len,
        "routing_key", (const char *)message_rk(m).ptr, message_rk(m).len,
        "message_count", (json_int_t)remaining, "properties",
        props_to_json(props), "payload",
        text ? (const char *)body.ptr : (const char *)b64.data,
        text ? n : b64.len, "payload_encoding", text ? "string" : "base64");
    buf_fini(&b64);
    buf_fini(&counted);
    return o;
}

/* What a POST .../get asks for. */
struct get_req {
    long count, truncate; /* truncate -1: whole bodies */
    bool requeue;         /* ack_requeue_true, reject_requeue_true */
    bool reject;          /* reject_requeue_false: dead-letter them */
    bool auto_enc;        /* encoding auto: text when it is UTF-8 */
};

/* The body's missing keys, as RabbitMQ lists them. */
static void
reply_missing(struct mgmt_req *r, bool count, bool ackmode, bool enc)
{
    struct buf t;

    buf_init(&t);
    buf_printf(&t, "[%s%s%s%s%s]", !count ? "{key_missing,count}" : "",
               !count && !ackmode ? "," : "",
               !ackmode ? "{key_missing,ackmode}" : "",
               (!count || !ackmode) && !enc ? "," : "",
               !enc ? "{key_missing,encoding}" : "");
    mgmt_bad_request(r, "%.*s", (int)t.len, (const char *)t.data);
    buf_fini(&t);
}

/* Reads a get's body into *g, in RabbitMQ's order of checks. Returns
 * false after replying 400. */
static bool
parse_get(struct mgmt_req *r, json_t *body, struct get_req *g)
{
    json_t *jc = json_object_get(body, "count");
    json_t *jt = json_object_get(body, "truncate");
    const char *ackmode = mgmt_body_str(body, "ackmode", NULL);
    const char *enc = mgmt_body_str(body, "encoding", NULL);

    g->truncate = -1;
    if (!jc || !ackmode || !enc) {
        reply_missing(r, jc, ackmode, enc);
        return false;
    }
    if (!json_int(jc, &g->count) || g->count < 0) {
        mgmt_bad_request_json(r, json_pack("[s, s]", "not_int", "count"));
        return false;
    }
    if (jt && !json_is_null(jt) && !json_int(jt, &g->truncate)) {
        mgmt_bad_request_json(r, json_pack("[s, s]", "not_int", "truncate"));
        return false;
    }
    g->count = WR_MIN(g->count, 100000);
    g->requeue = strcmp(ackmode, "ack_requeue_true") == 0 ||
                 strcmp(ackmode, "reject_requeue_true") == 0;
    g->reject = strcmp(ackmode, "reject_requeue_false") == 0;
    if (!g->requeue && !g->reject &&
        strcmp(ackmode, "ack_requeue_false") != 0) {
        mgmt_bad_request_json(r,
                              json_pack("[s, s]", "invalid_ackmode", ackmode));
        return false;
    }
    if (strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0) {
        mgmt_bad_request_json(r,
                              json_pack("[s, s]", "unsupported_encoding", enc));
        return false;
    }
    g->auto_enc = strcmp(enc, "auto") == 0;
    return true;
}

/* Takes up to g->count messages from q, all first (so that a requeued one
 * is not taken twice), then settles them: requeue puts each back at its
 * place, marked redelivered; reject_requeue_false dead-letters, as
 * RabbitMQ's does. Returns their JSON (new). */
static json_t *
take_messages(struct queue *q, const struct get_req *g)
{
    json_t *out = json_array();
    struct qentry *taken = xcalloc((size_t)g->count + 1, sizeof(*taken));
    size_t n = 0;
    int64_t count;

    while ((long)n < g->count &&
           queue_get_counted(q, true, &taken[n], &count)) {
        struct qentry *e = &taken[n++];

        json_array_append_new(out,
                              got_json(e->msg, (e->id & QE_REDELIVERED) != 0,
                                       queue_message_count(q), g->auto_enc,
                                       g->truncate, count));
    }
    for (size_t i = 0; i < n; i++) {
        if (g->requeue)
            queue_requeue(q, taken[n - 1 - i]);
        else if (g->reject)
            queue_reject(q, taken[i]);
        else
            queue_ack(q, taken[i]);
    }
    free(taken);
    return out;
}

void
mgmt_h_queue_get(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct get_req g;
    struct queue *q;
    json_t *body;

    if (!vh || !mgmt_check_vhost(r, vh, false) || !(body = mgmt_body_json(r)))
        return;
    q = vhost_queue_find(vh, bytes_str(r->args[1]));
    if (!q)
        mgmt_not_found(r);
    else if (parse_get(r, body, &g) &&
             mgmt_check_perm(r, vh, PERM_READ, "queue", queue_name(q)))
        mgmt_reply_json(r, 200, take_messages(q, &g));
    json_decref(body);
}
