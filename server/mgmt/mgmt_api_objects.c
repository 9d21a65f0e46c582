/*
 * mgmt_api_objects.c: exchanges, queues and bindings over HTTP, and the
 * diagnostic publish and get.
 *
 *   /api/exchanges[/v[/x]]                    GET; PUT and DELETE one
 *   /api/exchanges/v/x/bindings/source|destination
 *   /api/exchanges/v/x/publish                POST {"routing_key",
 *                                             "payload", "payload_encoding",
 *                                             "properties"} -> {"routed"}
 *   /api/queues[/v[/q]]                       GET; PUT and DELETE one
 *   /api/queues/v/q/contents                  DELETE = purge
 *   /api/queues/v/q/get                       POST {"count", "ackmode",
 *                                             "encoding", "truncate"}
 *   /api/queues/v/q/bindings
 *   /api/bindings[/v], /api/bindings/v/e/x/q/q (GET, POST), .../props
 *   (GET, DELETE), and the same with e/x/e/x2 for exchange destinations.
 *
 * Declares, deletes and binds go through the same vhost calls as the
 * AMQP methods, with the same rules, and are checked against the user's
 * permissions as RabbitMQ checks them (configure to declare or delete,
 * write on the exchange to publish, read on the queue to get or purge,
 * write on the destination and read on the source to bind).
 *
 * /api/queues is built for 100,000 queues: the queues are filtered and
 * sorted as pointers (sort keys read from the structs), and JSON is built
 * only for the page asked for, or streamed item by item for a full list.
 */
#include "server/mgmt/mgmt_int.h"

#include "amqp/amqp_props.h"

#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

static const char *const vhost_name_sort[] = {"vhost", "name", NULL};
static const char *const binding_sort[] = {
    "vhost",       "source",         "destination", "destination_type",
    "routing_key", "properties_key", NULL};

/* ---- body helpers */

/* RabbitMQ's parse_bool: true/false or "true"/"false". Replies 400
 * ["not_boolean", V] and returns false on anything else. */
static bool
body_bool(struct mgmt_req *r, json_t *body, const char *key, bool dflt,
          bool *out)
{
    json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v)) {
        *out = dflt;
        return true;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                              strcmp(json_string_value(v), "false") == 0)) {
        *out = strcmp(json_string_value(v), "true") == 0;
        return true;
    }
    mgmt_bad_request_json(r, json_pack("[s, O]", "not_boolean", v));
    return false;
}

/* "arguments": an object (or [] / null for none) as a field table. */
static bool
body_args(struct mgmt_req *r, json_t *body, struct buf *out)
{
    json_t *v = json_object_get(body, "arguments");

    buf_reset(out);
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
        return true;
    if (!json_is_object(v) || defs_json_to_table(v, out) != WR_OK) {
        mgmt_bad_request(r, "arguments must be an object of AMQP field "
                            "values");
        return false;
    }
    return true;
}

static const char *
body_str(json_t *body, const char *key, const char *dflt)
{
    json_t *v = json_object_get(body, key);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* ---- exchanges */

json_t *
mgmt_exchange_json(struct vhost *vh, struct exchange *x)
{
    return json_pack(
        "{s:s%, s:s, s:s, s:b, s:b, s:b, s:o, s:s}", "name", x->name,
        x->name_len, "vhost", vhost_name(vh), "type",
        exchange_type_name(x->type), "durable", x->durable, "auto_delete",
        x->auto_delete, "internal", x->internal, "arguments",
        mgmt_table_json(x->args), "user_who_performed_action",
        x->name_len == 0 || strncmp(x->name, "amq.", 4) == 0 ? "rmq-internal"
                                                             : "");
}

/* Visible vhosts: the one in args[0] (checked) or every one the user may
 * read. Returns NULL after replying when the named one is refused. */
static struct vhost **
list_vhosts(struct mgmt_req *r, size_t *n)
{
    struct vhost **all, *vh;
    size_t k = 0, total;

    if (r->args[0]) {
        if (!(vh = mgmt_vhost_arg(r, r->args[0])) ||
            !mgmt_check_vhost(r, vh, true))
            return NULL;
        all = xcalloc(2, sizeof(*all));
        all[0] = vh;
        *n = 1;
        return all;
    }
    all = mgmt_vhosts(&total);
    for (size_t i = 0; i < total; i++)
        if (mgmt_can_see_vhost(r, all[i], true))
            all[k++] = all[i];
    *n = k;
    return all;
}

void
mgmt_h_exchanges(struct mgmt_req *r)
{
    size_t nv;
    struct vhost **vs = list_vhosts(r, &nv);
    json_t *items;

    if (!vs)
        return;
    items = json_array();
    for (size_t i = 0; i < nv; i++) {
        struct exchange *x = NULL;

        while ((x = vhost_exchange_next(vs[i], x)) != NULL)
            json_array_append_new(items, mgmt_exchange_json(vs[i], x));
    }
    free(vs);
    mgmt_reply_list(r, items, vhost_name_sort);
}

static void
exchange_put(struct mgmt_req *r, struct vhost *vh, struct bytes name)
{
    json_t *body = mgmt_body_json(r);
    struct exchange_decl d = {.name = name};
    struct vherr err;
    struct buf args;
    bool existed = vhost_exchange_find(vh, name) != NULL;

    if (!body)
        return;
    buf_init(&args);
    if (name.len > 255) {
        mgmt_bad_request(r, "exchange name is longer than 255 bytes");
        goto out;
    }
    d.type = bytes_str(body_str(body, "type", "direct"));
    if (!body_bool(r, body, "durable", true, &d.durable) ||
        !body_bool(r, body, "auto_delete", false, &d.auto_delete) ||
        !body_bool(r, body, "internal", false, &d.internal) ||
        !body_args(r, body, &args))
        goto out;
    d.args = buf_bytes(&args);
    if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "exchange", name))
        goto out;
    if (vhost_exchange_declare(vh, &d, &err) != WR_OK) {
        mgmt_reply_vherr(r, &err);
        goto out;
    }
    mgmt_reply_empty(r, existed ? 204 : 201);
out:
    buf_fini(&args);
    json_decref(body);
}

void
mgmt_h_exchange(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct bytes name = mgmt_exchange_name(r->args[1]);
    struct exchange *x;
    struct vherr err;
    json_t *o;

    if (!vh || !mgmt_check_vhost(r, vh, mgmt_is_read(r)))
        return;
    if (r->method == HTTP_PUT) {
        exchange_put(r, vh, name);
        return;
    }
    x = vhost_exchange_find(vh, name);
    if (!x) {
        mgmt_not_found(r);
        return;
    }
    if (r->method == HTTP_DELETE) {
        if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "exchange", name))
            return;
        if (vhost_exchange_delete(vh, name, mgmt_qs_true(r, "if-unused"), NULL,
                                  &err) != WR_OK) {
            mgmt_reply_vherr(r, &err);
            return;
        }
        mgmt_reply_empty(r, 204);
        return;
    }
    o = mgmt_exchange_json(vh, x);
    json_object_set_new(o, "incoming", json_array());
    json_object_set_new(o, "outgoing", json_array());
    mgmt_reply_item(r, o);
}

/* ---- bindings */

static json_t *
binding_json(struct vhost *vh, const char *src, size_t src_len,
             const char *dest, size_t dest_len, bool dest_is_exchange,
             struct bytes key, struct bytes args)
{
    struct buf pk;
    json_t *o;

    buf_init(&pk);
    mgmt_props_key(key, args, &pk);
    o = json_pack("{s:s%, s:s, s:s%, s:s, s:s%, s:o, s:s%}", "source", src,
                  src_len, "vhost", vhost_name(vh), "destination", dest,
                  dest_len, "destination_type",
                  dest_is_exchange ? "exchange" : "queue", "routing_key",
                  key.ptr ? (const char *)key.ptr : "", key.len, "arguments",
                  mgmt_table_json(args), "properties_key",
                  (const char *)pk.data, pk.len);
    buf_fini(&pk);
    return o;
}

static json_t *
binding_rec_json(struct vhost *vh, const struct binding *b)
{
    struct bytes dest = binding_dest_name(b);

    return binding_json(vh, b->src->name, b->src->name_len,
                        (const char *)dest.ptr, dest.len, b->dest.is_exchange,
                        bytes_of(b->key, b->key_len), b->args);
}

/* The default exchange's implicit binding to q. */
static json_t *
default_binding_json(struct vhost *vh, struct queue *q)
{
    struct bytes name = queue_name(q);

    return binding_json(vh, "", 0, (const char *)name.ptr, name.len, false,
                        name, BYTES_NULL);
}

static void
append_vhost_bindings(json_t *items, struct vhost *vh)
{
    struct queue *q = NULL;
    struct exchange *x = NULL;
    struct binding *b;

    while ((q = vhost_queue_next(vh, q)) != NULL)
        json_array_append_new(items, default_binding_json(vh, q));
    while ((x = vhost_exchange_next(vh, x)) != NULL)
        DL_FOREACH2(vhost_bindings_out(x), b, src_next)
    json_array_append_new(items, binding_rec_json(vh, b));
}

void
mgmt_h_bindings(struct mgmt_req *r)
{
    size_t nv;
    struct vhost **vs = list_vhosts(r, &nv);
    json_t *items;

    if (!vs)
        return;
    items = json_array();
    for (size_t i = 0; i < nv; i++)
        append_vhost_bindings(items, vs[i]);
    free(vs);
    mgmt_reply_list(r, items, binding_sort);
}

void
mgmt_h_exchange_bindings(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    bool source = strcmp(r->seg[5], "source") == 0;
    struct exchange *x;
    struct binding *b;
    struct queue *q = NULL;
    json_t *items;

    if (!vh || !mgmt_check_vhost(r, vh, true))
        return;
    x = vhost_exchange_find(vh, mgmt_exchange_name(r->args[1]));
    if (!x) {
        mgmt_not_found(r);
        return;
    }
    items = json_array();
    if (source && x->name_len == 0) {
        while ((q = vhost_queue_next(vh, q)) != NULL)
            json_array_append_new(items, default_binding_json(vh, q));
    } else if (source) {
        DL_FOREACH2(vhost_bindings_out(x), b, src_next)
        json_array_append_new(items, binding_rec_json(vh, b));
    } else {
        DL_FOREACH2(vhost_bindings_in(x), b, dest_next)
        json_array_append_new(items, binding_rec_json(vh, b));
    }
    mgmt_reply_list(r, items, binding_sort);
}

void
mgmt_h_queue_bindings(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct queue *q;
    struct binding *b;
    json_t *items;

    if (!vh || !mgmt_check_vhost(r, vh, true))
        return;
    q = vhost_queue_find(vh, bytes_str(r->args[1]));
    if (!q) {
        mgmt_not_found(r);
        return;
    }
    items = json_array();
    json_array_append_new(items, default_binding_json(vh, q));
    DL_FOREACH2(queue_bindings(q), b, dest_next)
    json_array_append_new(items, binding_rec_json(vh, b));
    mgmt_reply_list(r, items, binding_sort);
}

/* The two ends of /api/bindings/v/e/SRC/{q,e}/DEST[/props]. */
struct ends {
    struct vhost *vh;
    struct bytes src, dest;
    bool dest_is_exchange;
    struct exchange *sx; /* NULL when absent */
    struct xdest xd;     /* xd.ptr NULL when absent */
};

static bool
resolve_ends(struct mgmt_req *r, struct ends *e, bool read)
{
    memset(e, 0, sizeof(*e));
    e->vh = mgmt_vhost_arg(r, r->args[0]);
    if (!e->vh || !mgmt_check_vhost(r, e->vh, read))
        return false;
    e->src = mgmt_exchange_name(r->args[1]);
    e->dest_is_exchange = strcmp(r->seg[5], "e") == 0;
    e->dest = e->dest_is_exchange ? mgmt_exchange_name(r->args[2])
                                  : bytes_str(r->args[2]);
    e->sx = vhost_exchange_find(e->vh, e->src);
    if (e->dest_is_exchange)
        e->xd = (struct xdest){vhost_exchange_find(e->vh, e->dest), true};
    else
        e->xd = (struct xdest){vhost_queue_find(e->vh, e->dest), false};
    return true;
}

/* Every binding between the two ends, the implicit default one too. */
static json_t *
bindings_between(const struct ends *e)
{
    json_t *items = json_array();
    struct binding *b;

    if (!e->sx || !e->xd.ptr)
        return items;
    if (e->sx->name_len == 0 && !e->dest_is_exchange) {
        json_array_append_new(items, default_binding_json(e->vh, e->xd.ptr));
        return items;
    }
    DL_FOREACH2(vhost_bindings_out(e->sx), b, src_next)
    {
        if (b->dest.ptr == e->xd.ptr)
            json_array_append_new(items, binding_rec_json(e->vh, b));
    }
    return items;
}

static bool
check_bind_perms(struct mgmt_req *r, const struct ends *e)
{
    return mgmt_check_perm(r, e->vh, PERM_WRITE,
                           e->dest_is_exchange ? "exchange" : "queue",
                           e->dest) &&
           mgmt_check_perm(r, e->vh, PERM_READ, "exchange", e->src);
}

static void
binding_post(struct mgmt_req *r, const struct ends *e)
{
    json_t *body = mgmt_body_json(r);
    const char *key;
    struct vherr err;
    struct buf args, loc;

    if (!body)
        return;
    buf_init(&args);
    buf_init(&loc);
    key = body_str(body, "routing_key", "");
    if (strlen(key) > 255) {
        mgmt_bad_request(r, "routing_key is longer than 255 bytes");
        goto out;
    }
    if (!body_args(r, body, &args))
        goto out;
    if (!e->sx || !e->xd.ptr) {
        mgmt_reply_error(r, 404, "not_found", "no %s '%.*s' in vhost '%s'",
                         !e->sx                ? "exchange"
                         : e->dest_is_exchange ? "exchange"
                                               : "queue",
                         BYTES_FMT(!e->sx ? e->src : e->dest),
                         vhost_name(e->vh));
        goto out;
    }
    if (!check_bind_perms(r, e))
        goto out;
    if (vhost_bind(e->vh, e->src, e->dest, e->dest_is_exchange, bytes_str(key),
                   buf_bytes(&args), NULL, &err) != WR_OK) {
        mgmt_reply_vherr(r, &err);
        goto out;
    }
    /* RabbitMQ's Location is relative to the request: DEST/PROPS. */
    mgmt_quote_plus(e->dest, &loc);
    buf_put_u8(&loc, '/');
    mgmt_props_key(bytes_str(key), buf_bytes(&args), &loc);
    buf_printf(&r->hdrs, "location: %.*s\r\n", (int)loc.len,
               (const char *)loc.data);
    mgmt_reply_empty(r, 201);
out:
    buf_fini(&loc);
    buf_fini(&args);
    json_decref(body);
}

void
mgmt_h_bindings_between(struct mgmt_req *r)
{
    struct ends e;

    if (!resolve_ends(r, &e, r->method != HTTP_POST))
        return;
    if (r->method == HTTP_POST) {
        binding_post(r, &e);
        return;
    }
    mgmt_reply_list(r, bindings_between(&e), binding_sort);
}

/* Finds the binding the properties key names. Returns its JSON (new) and
 * fills key/args (args borrowed from the binding), or NULL. */
static json_t *
find_by_props(const struct ends *e, const char *props, struct buf *key,
              struct bytes *args)
{
    const char *tilde = strchr(props, '~');
    size_t klen = tilde ? (size_t)(tilde - props) : strlen(props);
    char *k, *hash = NULL;
    size_t kn, hn = 0;
    struct binding *b;
    json_t *found = NULL;

    if (tilde && strchr(tilde + 1, '~'))
        return NULL;
    if (!e->sx || !e->xd.ptr)
        return NULL;
    k = mgmt_pct_decode(props, klen, true, &kn);
    if (tilde && tilde[1])
        hash = mgmt_pct_decode(tilde + 1, strlen(tilde + 1), true, &hn);
    if (!k || (tilde && tilde[1] && !hash))
        goto out;
    buf_reset(key);
    buf_append(key, k, kn);
    if (e->sx->name_len == 0) {
        struct queue *q = e->xd.ptr;

        if (!hash && !e->dest_is_exchange &&
            bytes_eq(bytes_of(k, kn), queue_name(q))) {
            *args = BYTES_NULL;
            found = default_binding_json(e->vh, q);
        }
        goto out;
    }
    DL_FOREACH2(vhost_bindings_out(e->sx), b, src_next)
    {
        struct buf pk;
        bool match;

        if (b->dest.ptr != e->xd.ptr || b->key_len != kn ||
            memcmp(b->key, k, kn) != 0)
            continue;
        if (!hash) {
            match = b->args.len == 0;
        } else {
            buf_init(&pk);
            mgmt_props_key(BYTES_NULL, b->args, &pk);
            /* pk is "~HASH" (quoted) for a binding with arguments */
            match = b->args.len > 0 && pk.len == hn + 1 &&
                    memcmp(pk.data + 1, hash, hn) == 0;
            buf_fini(&pk);
        }
        if (match) {
            *args = b->args;
            found = binding_rec_json(e->vh, b);
            break;
        }
    }
out:
    free(k);
    free(hash);
    return found;
}

void
mgmt_h_binding(struct mgmt_req *r)
{
    struct ends e;
    struct buf key;
    struct bytes args = BYTES_NULL;
    struct vherr err;
    json_t *found;

    if (!resolve_ends(r, &e, r->method != HTTP_DELETE))
        return;
    buf_init(&key);
    found = find_by_props(&e, r->args[3], &key, &args);
    if (!found) {
        mgmt_not_found(r);
        goto out;
    }
    if (r->method != HTTP_DELETE) {
        mgmt_reply_json(r, 200, found);
        goto out;
    }
    json_decref(found);
    if (!check_bind_perms(r, &e))
        goto out;
    /* args is borrowed from the binding that unbind frees: copy. */
    {
        struct buf a;

        buf_init(&a);
        buf_append(&a, args.ptr, args.len);
        if (vhost_unbind(e.vh, e.src, e.dest, e.dest_is_exchange,
                         buf_bytes(&key), buf_bytes(&a), NULL, &err) != WR_OK)
            mgmt_reply_vherr(r, &err);
        else
            mgmt_reply_empty(r, 204);
        buf_fini(&a);
    }
out:
    buf_fini(&key);
}

/* ---- queues */

static const char *
exclusive_consumer_tag(const struct queue *q)
{
    const struct consumer *c = queue_exclusive_consumer(q);

    return c ? c->tag : NULL;
}

static json_t *consumer_json(struct queue *q, const struct queue_info *qi,
                             const struct consumer *c);

/* The applied policy's definition, operator policy keys over it where
 * they are lower (RabbitMQ's effective_policy_definition); new ref. */
static json_t *
policy_definition(const struct queue_info *qi)
{
    struct node *n = srv->node;
    json_t *p = qi->policy
                    ? node_kv_find(n, KV_POLICY, qi->vhost, NULL, qi->policy)
                    : NULL;
    json_t *o = qi->op_policy ? node_kv_find(n, KV_OPERATOR_POLICY, qi->vhost,
                                             NULL, qi->op_policy)
                              : NULL;
    json_t *def = json_object_get(p, "definition");
    json_t *out = def ? json_deep_copy(def) : json_object();
    json_t *odef = json_object_get(o, "definition"), *v;
    const char *k;

    json_object_foreach(odef, k, v)
    {
        json_t *cur = json_object_get(out, k);

        if (!json_is_integer(cur) ||
            (json_is_integer(v) &&
             json_integer_value(v) < json_integer_value(cur)))
            json_object_set(out, k, v);
    }
    return out;
}

/* key: value pairs of the writer, for readability below */
#define K(k)        mgmt_jw_key(w, k)
#define KINT(k, v)  (K(k), mgmt_jw_int(w, (int64_t)(v)))
#define KRATE(k, v) (K(k), mgmt_jw_rate(w, v))
#define KBOOL(k, v) (K(k), mgmt_jw_bool(w, v))
#define KSTR(k, v)  (K(k), mgmt_jw_cstr(w, v))
#define KNULL(k)    (K(k), mgmt_jw_null(w))

/* "message_stats" of a queue. */
static void
write_message_stats(const struct queue_info *qi, const struct mgmt_qrates *rt,
                    struct mgmt_jw *w)
{
    K("message_stats");
    mgmt_jw_obj_begin(w);
    KINT("ack", qi->stat_ack);
    KRATE("ack_details", rt->ack);
    KINT("deliver", qi->stat_deliver);
    KRATE("deliver_details", rt->deliver);
    KINT("deliver_get", qi->stat_deliver);
    KRATE("deliver_get_details", rt->deliver);
    KINT("publish", qi->stat_publish);
    KRATE("publish_details", rt->publish);
    KINT("redeliver", qi->stat_redeliver);
    KRATE("redeliver_details", rt->redeliver);
    mgmt_jw_obj_end(w);
}

/* The counts of a queue's messages, from "memory" to "messages_*". */
static void
write_counts(const struct queue_info *qi, const struct mgmt_qrates *rt,
             struct mgmt_jw *w)
{
    uint64_t paged =
        qi->ready_bytes > qi->mem_bytes ? qi->ready_bytes - qi->mem_bytes : 0;

    KINT("memory", qi->memory);
    KINT("message_bytes", qi->ready_bytes);
    KINT("message_bytes_paged_out", paged);
    KINT("message_bytes_ram", qi->mem_bytes);
    KINT("message_bytes_ready", qi->ready_bytes);
    KINT("message_bytes_unacknowledged", 0);
    write_message_stats(qi, rt, w);
    KINT("messages", (uint64_t)qi->ready + qi->unacked);
    KRATE("messages_details", rt->ready + rt->unacked);
    KINT("messages_paged_out", qi->ready_paged);
    KINT("messages_ram", (uint64_t)qi->ready - qi->ready_paged + qi->unacked);
    KINT("messages_ready", qi->ready);
    KRATE("messages_ready_details", rt->ready);
    KINT("messages_ready_ram", (uint64_t)qi->ready - qi->ready_paged);
    KINT("messages_unacknowledged", qi->unacked);
    KRATE("messages_unacknowledged_details", rt->unacked);
    KINT("messages_unacknowledged_ram", qi->unacked);
}

/* The consumers of a queue, for its details. */
static void
write_details(struct queue *q, const struct queue_info *qi, struct mgmt_jw *w)
{
    json_t *cs = json_array();

    for (const struct consumer *c = queue_consumer_next(q, NULL); c;
         c = queue_consumer_next(q, c))
        json_array_append_new(cs, consumer_json(q, qi, c));
    K("consumer_details");
    mgmt_jw_json(w, cs);
    K("deliveries");
    mgmt_jw_raw(w, "[]");
    K("incoming");
    mgmt_jw_raw(w, "[]");
}

static void
write_policies(const struct queue_info *qi, struct mgmt_jw *w)
{
    if (qi->op_policy)
        KSTR("operator_policy", qi->op_policy);
    else
        KNULL("operator_policy");
    if (qi->policy)
        KSTR("policy", qi->policy);
    else
        KNULL("policy");
}

void
mgmt_queue_write(struct queue *q, bool details, struct mgmt_jw *w)
{
    struct mgmt_qrates rt;
    struct queue_info qi;
    const struct consumer *first;

    queue_message_count(q); /* expired messages go first */
    queue_info(q, &qi);
    mgmt_stats_queue(q, &rt);
    first = queue_consumer_next(q, NULL);
    mgmt_jw_obj_begin(w);
    K("arguments");
    if (qi.args.len == 0)
        mgmt_jw_raw(w, "{}");
    else
        mgmt_jw_json(w, mgmt_table_json(qi.args));
    KBOOL("auto_delete", qi.auto_delete);
    K("backing_queue_status");
    mgmt_jw_obj_begin(w);
    KSTR("mode", "default");
    KINT("len", qi.ready);
    KINT("version", 1);
    mgmt_jw_obj_end(w);
    K("consumer_capacity");
    mgmt_jw_raw(w, qi.consumers ? "1.0" : "0.0");
    K("consumer_utilisation");
    mgmt_jw_raw(w, qi.consumers ? "1.0" : "0.0");
    KINT("consumers", qi.consumers);
    KBOOL("durable", qi.durable);
    K("effective_policy_definition");
    mgmt_jw_json(w, policy_definition(&qi));
    KBOOL("exclusive", qi.exclusive);
    KSTR("exclusive_consumer_tag", exclusive_consumer_tag(q));
    KNULL("head_message_timestamp");
    write_counts(&qi, &rt, w);
    K("name");
    mgmt_jw_str(w, (const char *)qi.name.ptr, qi.name.len);
    KSTR("node", mgmt_node_name());
    write_policies(&qi, w);
    KNULL("recoverable_slaves");
    K("single_active_consumer_tag");
    if (qi.single_active && first)
        mgmt_jw_str(w, first->tag, first->tag_len);
    else
        mgmt_jw_null(w);
    KSTR("state", "running");
    KSTR("type", "classic");
    KSTR("vhost", qi.vhost);
    if (details)
        write_details(q, &qi, w);
    mgmt_jw_obj_end(w);
}

#undef K
#undef KINT
#undef KRATE
#undef KBOOL
#undef KSTR
#undef KNULL

json_t *
mgmt_queue_json(struct queue *q, bool details)
{
    struct mgmt_jw w;
    struct buf b;
    json_t *o;

    buf_init(&b);
    mgmt_jw_init(&w, &b, NULL);
    mgmt_queue_write(q, details, &w);
    o = json_loadb((const char *)b.data, b.len, 0, NULL);
    buf_fini(&b);
    return o;
}

static json_t *
consumer_json(struct queue *q, const struct queue_info *qi,
              const struct consumer *c)
{
    struct chan_info hi;
    struct conn_info ci;
    char ch_name[200];
    const char *colon;
    bool active = !qi->single_active || queue_consumer_next(q, NULL) == c;

    chan_info(c->owner, &hi); /* every consumer is a channel's */
    conn_info(hi.conn, &ci);
    colon = strrchr(ci.peer, ':');
    snprintf(ch_name, sizeof(ch_name), "%s (%u)", ci.name, hi.number);
    return json_pack(
        "{s:s%, s:{s:s%, s:s}, s:{s:s, s:s, s:s, s:i, s:s%, s:i, s:s}, s:b, "
        "s:i, s:b, s:o, s:b, s:s}",
        "consumer_tag", c->tag, c->tag_len, "queue", "name",
        (const char *)qi->name.ptr, qi->name.len, "vhost", qi->vhost,
        "channel_details", "connection_name", ci.name, "name", ch_name, "node",
        mgmt_node_name(), "number", (int)hi.number, "peer_host", ci.peer,
        colon ? (size_t)(colon - ci.peer) : strlen(ci.peer), "peer_port",
        colon ? atoi(colon + 1) : 0, "user", ci.user ? ci.user : "",
        "ack_required", !c->no_ack, "prefetch_count", (int)c->prefetch,
        "exclusive", c->exclusive, "arguments", mgmt_table_json(c->args),
        "active", active, "activity_status",
        !qi->single_active ? "up"
        : active           ? "single_active"
                           : "waiting");
}

/* Consumers of every visible vhost (or one): /api/consumers[/v]. */
void
mgmt_h_consumers(struct mgmt_req *r)
{
    size_t nv;
    struct vhost **vs = list_vhosts(r, &nv);
    json_t *items;

    if (!vs)
        return;
    items = json_array();
    for (size_t i = 0; i < nv; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL) {
            struct queue_info qi;

            queue_info(q, &qi);
            for (const struct consumer *c = queue_consumer_next(q, NULL); c;
                 c = queue_consumer_next(q, c))
                json_array_append_new(items, consumer_json(q, &qi, c));
        }
    }
    free(vs);
    mgmt_reply_list(r, items,
                    (const char *const[]){"queue.vhost", "queue.name",
                                          "consumer_tag", NULL});
}

/* -- the /api/queues fast path */

/*
 * A queue as the fast path sorts it: its name and vhost, and the value
 * of the one asked-for sort key, read once from its snapshot (and its
 * sampled rates) instead of at every comparison.
 */
struct qrow {
    struct queue *q;
    struct bytes name;
    const char *vhost;
    double key;
};

enum qkey_kind { QK_NAME, QK_VHOST, QK_VALUE };

struct qkey {
    const char *name;
    enum qkey_kind kind;
    double (*value)(const struct queue_info *qi, const struct mgmt_qrates *rt);
    bool rates; /* needs the sampled rates */
};

/* One accessor per fast sort key: a count or a flag of the snapshot, or
 * a rate from the sampled counters. */
#define INFO_KEY(fn, expr)                         \
    static double fn(const struct queue_info *qi,  \
                     const struct mgmt_qrates *rt) \
    {                                              \
        (void)rt;                                  \
        return (double)(expr);                     \
    }
INFO_KEY(qk_messages, qi->ready + qi->unacked)
INFO_KEY(qk_ram, qi->ready - qi->ready_paged + qi->unacked)
INFO_KEY(qk_ready, qi->ready)
INFO_KEY(qk_unacked, qi->unacked)
INFO_KEY(qk_consumers, qi->consumers)
INFO_KEY(qk_memory, qi->memory)
INFO_KEY(qk_bytes, qi->ready_bytes)
INFO_KEY(qk_publish, qi->stat_publish)
INFO_KEY(qk_deliver, qi->stat_deliver)
INFO_KEY(qk_ack, qi->stat_ack)
INFO_KEY(qk_redeliver, qi->stat_redeliver)
INFO_KEY(qk_durable, qi->durable)
INFO_KEY(qk_auto_delete, qi->auto_delete)
INFO_KEY(qk_exclusive, qi->exclusive)
INFO_KEY(qk_publish_rate, rt->publish)
INFO_KEY(qk_deliver_rate, rt->deliver)
INFO_KEY(qk_ack_rate, rt->ack)
INFO_KEY(qk_ready_rate, rt->ready)
INFO_KEY(qk_unacked_rate, rt->unacked)
#undef INFO_KEY

/* Sort keys the fast path knows; any other key takes the slow path
 * (JSON for every queue). */
static const struct qkey qkeys[] = {
    {"name", QK_NAME, NULL, false},
    {"vhost", QK_VHOST, NULL, false},
    {"messages", QK_VALUE, qk_messages, false},
    {"messages_ready", QK_VALUE, qk_ready, false},
    {"messages_unacknowledged", QK_VALUE, qk_unacked, false},
    {"messages_ram", QK_VALUE, qk_ram, false},
    {"consumers", QK_VALUE, qk_consumers, false},
    {"memory", QK_VALUE, qk_memory, false},
    {"message_bytes", QK_VALUE, qk_bytes, false},
    {"message_bytes_ready", QK_VALUE, qk_bytes, false},
    {"message_stats.publish", QK_VALUE, qk_publish, false},
    {"message_stats.deliver_get", QK_VALUE, qk_deliver, false},
    {"message_stats.ack", QK_VALUE, qk_ack, false},
    {"message_stats.redeliver", QK_VALUE, qk_redeliver, false},
    {"message_stats.publish_details.rate", QK_VALUE, qk_publish_rate, true},
    {"message_stats.deliver_get_details.rate", QK_VALUE, qk_deliver_rate, true},
    {"message_stats.ack_details.rate", QK_VALUE, qk_ack_rate, true},
    {"messages_ready_details.rate", QK_VALUE, qk_ready_rate, true},
    {"messages_unacknowledged_details.rate", QK_VALUE, qk_unacked_rate, true},
    {"durable", QK_VALUE, qk_durable, false},
    {"auto_delete", QK_VALUE, qk_auto_delete, false},
    {"exclusive", QK_VALUE, qk_exclusive, false},
};

static const struct qkey *
qkey_find(const char *name)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(qkeys); i++)
        if (strcmp(qkeys[i].name, name) == 0)
            return &qkeys[i];
    return NULL;
}

struct qsort_ctx {
    const struct qkey *keys[4];
    size_t nkeys;
    const struct qkey *value; /* the key whose value rows hold, or NULL */
    bool reverse;
};

static struct qsort_ctx qs_ctx;

static int
bytes_cmp(struct bytes a, struct bytes b)
{
    int c = memcmp(a.ptr, b.ptr, WR_MIN(a.len, b.len));

    return c ? c : a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static int
qkey_cmp(const struct qkey *k, const struct qrow *a, const struct qrow *b)
{
    switch (k->kind) {
    case QK_NAME:
        return bytes_cmp(a->name, b->name);
    case QK_VHOST:
        return a->vhost == b->vhost ? 0 : strcmp(a->vhost, b->vhost);
    default:
        return a->key < b->key ? -1 : a->key > b->key ? 1 : 0;
    }
}

/* Total order: keys, then the name (unique within a vhost). */
static int
row_cmp(const void *pa, const void *pb)
{
    const struct qrow *a = pa, *b = pb;
    int c = 0;

    for (size_t i = 0; i < qs_ctx.nkeys && c == 0; i++)
        c = qkey_cmp(qs_ctx.keys[i], a, b);
    return qs_ctx.reverse ? -c : c;
}

static void
row_swap(struct qrow *a, struct qrow *b)
{
    struct qrow t = *a;

    *a = *b;
    *b = t;
}

/* Binary heap of the k smallest (by row_cmp) seen so far: the root is
 * the largest of them. */
static void
heap_sift_down(struct qrow *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n && row_cmp(&h[l], &h[m]) > 0)
            m = l;
        if (r < n && row_cmp(&h[r], &h[m]) > 0)
            m = r;
        if (m == i)
            return;
        row_swap(&h[i], &h[m]);
        i = m;
    }
}

static void
heap_sift_up(struct qrow *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (row_cmp(&h[i], &h[p]) <= 0)
            return;
        row_swap(&h[i], &h[p]);
        i = p;
    }
}

/* Puts the k first rows (in sort order) at the front of v, sorted.
 * O(n log k) instead of sorting all n. */
static void
partial_sort(struct qrow *v, size_t n, size_t k)
{
    struct qrow *h;
    size_t hn = 0;

    if (k >= n / 2) {
        qsort(v, n, sizeof(*v), row_cmp);
        return;
    }
    h = xmalloc((k + 1) * sizeof(*h));
    for (size_t i = 0; i < n; i++) {
        if (hn < k) {
            h[hn++] = v[i];
            heap_sift_up(h, hn - 1);
        } else if (k > 0 && row_cmp(&v[i], &h[0]) < 0) {
            h[0] = v[i];
            heap_sift_down(h, hn, 0);
        }
    }
    qsort(h, hn, sizeof(*h), row_cmp);
    memcpy(v, h, hn * sizeof(*h));
    free(h);
}

struct qlist {
    struct qrow *v;
    size_t n;
};

static bool
qlist_write(void *ctx, size_t i, struct mgmt_jw *w)
{
    struct qlist *l = ctx;
    struct queue *q = l->v[i].q;
    struct queue_info qi;

    /* A queue deleted while the list streams is left out. */
    queue_info(q, &qi);
    if (qi.deleted)
        return false;
    mgmt_queue_write(q, false, w);
    return true;
}

static void
qlist_free(void *ctx)
{
    struct qlist *l = ctx;

    for (size_t i = 0; i < l->n; i++)
        queue_unref(l->v[i].q);
    free(l->v);
    free(l);
}

/* Sets up the sort keys; false when one is not a fast key. */
static bool
queue_sort_keys(const struct mgmt_listq *lq)
{
    memset(&qs_ctx, 0, sizeof(qs_ctx));
    qs_ctx.reverse = lq->sort_reverse;
    if (lq->sort && !*lq->sort)
        return true;
    if (lq->sort && !(qs_ctx.keys[qs_ctx.nkeys++] = qkey_find(lq->sort)))
        return false;
    if (qs_ctx.nkeys && qs_ctx.keys[0]->kind == QK_VALUE)
        qs_ctx.value = qs_ctx.keys[0];
    qs_ctx.keys[qs_ctx.nkeys++] = qkey_find("vhost");
    qs_ctx.keys[qs_ctx.nkeys++] = qkey_find("name");
    return true;
}

static void
queues_slow(struct mgmt_req *r, struct vhost **vs, size_t nv)
{
    json_t *items = json_array();

    for (size_t i = 0; i < nv; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL)
            json_array_append_new(items, mgmt_queue_json(q, false));
    }
    mgmt_reply_list(r, items, vhost_name_sort);
}

/* The row of q in vhost vh, with the value of the sort key. */
static struct qrow
queue_row(struct queue *q, const char *vh)
{
    struct qrow row = {q, queue_name(q), vh, 0};
    const struct qkey *k = qs_ctx.value;
    struct mgmt_qrates rt = {0};
    struct queue_info qi;

    if (k) {
        queue_info(q, &qi);
        if (k->rates)
            mgmt_stats_queue(q, &rt);
        row.key = k->value(&qi, &rt);
    }
    return row;
}

/* The rows of the queues whose names pass the filter; *total gets the
 * number of queues. */
static struct qrow *
queue_rows(const struct mgmt_listq *lq, struct vhost **vs, size_t nv, size_t *n,
           size_t *total)
{
    struct qrow *v;

    *total = *n = 0;
    for (size_t i = 0; i < nv; i++) {
        struct vhost_info vi;

        vhost_info(vs[i], &vi);
        *total += vi.queues;
    }
    v = xmalloc((*total + 1) * sizeof(*v));
    for (size_t i = 0; i < nv; i++) {
        const char *vh = vhost_name(vs[i]);
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL) {
            struct bytes name = queue_name(q);

            if (mgmt_listq_match(lq, (const char *)name.ptr, name.len))
                v[(*n)++] = queue_row(q, vh);
        }
    }
    return v;
}

/* The whole list: built at once when small, streamed otherwise. */
static void
queues_all(struct mgmt_req *r, struct mgmt_listq *lq, struct qrow *v, size_t n)
{
    struct qlist *l = xcalloc(1, sizeof(*l));

    if (qs_ctx.nkeys)
        qsort(v, n, sizeof(*v), row_cmp);
    for (size_t i = 0; i < n; i++)
        queue_ref(v[i].q);
    l->v = v;
    l->n = n;
    if (n >= 2000 && !r->head) {
        mgmt_reply_stream(r, lq, n, qlist_write, qlist_free, l);
        return;
    }
    buf_put_u8(&r->out, '[');
    for (size_t i = 0; i < n; i++) {
        struct mgmt_jw w;

        if (i)
            buf_put_u8(&r->out, ',');
        mgmt_jw_init(&w, &r->out, lq->colset);
        mgmt_queue_write(v[i].q, false, &w);
    }
    buf_put_u8(&r->out, ']');
    qlist_free(l);
    r->status = 200;
    mgmt_http_respond(r, "application/json");
}

static void
queues_fast(struct mgmt_req *r, struct mgmt_listq *lq, struct vhost **vs,
            size_t nv)
{
    size_t total, n, from, k;
    struct qrow *v = queue_rows(lq, vs, nv, &n, &total);
    json_t *page;

    if (!lq->paged) {
        queues_all(r, lq, v, n);
        return;
    }
    if (!mgmt_page_in_range(r, lq, n)) {
        free(v);
        return;
    }
    from = (size_t)(lq->page - 1) * (size_t)lq->page_size;
    k = WR_MIN(n, from + (size_t)lq->page_size);
    if (qs_ctx.nkeys)
        partial_sort(v, n, k);
    page = json_array();
    for (size_t i = from; i < k; i++) {
        json_t *o = mgmt_queue_json(v[i].q, false);

        mgmt_columns_apply(lq, o);
        json_array_append_new(page, o);
    }
    free(v);
    mgmt_reply_json(r, 200, mgmt_page_object(lq, page, total, n));
}

void
mgmt_h_queues(struct mgmt_req *r)
{
    struct mgmt_listq lq;
    size_t nv;
    struct vhost **vs = list_vhosts(r, &nv);

    if (!vs)
        return;
    if (mgmt_listq_parse(r, &lq) != WR_OK) {
        free(vs);
        return;
    }
    if (queue_sort_keys(&lq))
        queues_fast(r, &lq, vs, nv);
    else
        queues_slow(r, vs, nv);
    mgmt_listq_fini(&lq);
    free(vs);
}

static void
queue_put(struct mgmt_req *r, struct vhost *vh, struct bytes name)
{
    json_t *body = mgmt_body_json(r);
    struct queue_decl d = {.name = name};
    struct queue *q;
    struct vherr err;
    struct buf args;
    bool existed = vhost_queue_find(vh, name) != NULL;

    if (!body)
        return;
    buf_init(&args);
    if (name.len > 255 || name.len == 0) {
        mgmt_bad_request(r, "queue name must be 1 to 255 bytes");
        goto out;
    }
    if (!body_bool(r, body, "durable", false, &d.durable) ||
        !body_bool(r, body, "auto_delete", false, &d.auto_delete) ||
        !body_args(r, body, &args))
        goto out;
    d.args = buf_bytes(&args);
    if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "queue", name))
        goto out;
    if (vhost_queue_declare(vh, &d, &q, &err) != WR_OK) {
        mgmt_reply_vherr(r, &err);
        goto out;
    }
    mgmt_reply_empty(r, existed ? 204 : 201);
out:
    buf_fini(&args);
    json_decref(body);
}

static void
queue_delete(struct mgmt_req *r, struct vhost *vh, struct queue *q)
{
    struct queue_info qi;
    struct bytes name = queue_name(q);

    queue_info(q, &qi);
    if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "queue", name))
        return;
    if (mgmt_qs_true(r, "if-empty") && qi.ready + qi.unacked > 0) {
        mgmt_bad_request(r, "queue '%.*s' in vhost '%s' not empty",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    if (mgmt_qs_true(r, "if-unused") && qi.consumers > 0) {
        mgmt_bad_request(r, "queue '%.*s' in vhost '%s' in use",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    if (qi.locked) {
        mgmt_bad_request(r,
                         "cannot obtain exclusive access to locked queue "
                         "'%.*s' in vhost '%s'. It could be originally "
                         "declared on another connection or the exclusive "
                         "property value does not match that of the "
                         "original declaration.",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    vhost_queue_delete(vh, q);
    mgmt_reply_empty(r, 204);
}

void
mgmt_h_queue(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct bytes name = bytes_str(r->args[1]);
    struct queue *q;

    if (!vh || !mgmt_check_vhost(r, vh, mgmt_is_read(r)))
        return;
    if (r->method == HTTP_PUT) {
        queue_put(r, vh, name);
        return;
    }
    q = vhost_queue_find(vh, name);
    if (!q) {
        mgmt_not_found(r);
        return;
    }
    if (r->method == HTTP_DELETE) {
        queue_delete(r, vh, q);
        return;
    }
    mgmt_reply_item(r, mgmt_queue_json(q, true));
}

void
mgmt_h_queue_contents(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct queue *q;

    if (!vh || !mgmt_check_vhost(r, vh, false))
        return;
    q = vhost_queue_find(vh, bytes_str(r->args[1]));
    if (!q) {
        mgmt_not_found(r);
        return;
    }
    if (!mgmt_check_perm(r, vh, PERM_READ, "queue", queue_name(q)))
        return;
    queue_purge(q);
    mgmt_reply_empty(r, 204);
}

/* ---- publish and get */

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
    const char *enc = body_str(body, "payload_encoding", NULL);
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
    rk = body_str(body, "routing_key", "");
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

/* One message of a get, as RabbitMQ's management shows it. */
static json_t *
got_json(struct message *m, bool redelivered, uint32_t remaining, bool auto_enc,
         long truncate)
{
    struct bytes body = message_body(m);
    size_t n = truncate >= 0 && (size_t)truncate < body.len ? (size_t)truncate
                                                            : body.len;
    bool text = auto_enc && bytes_is_utf8(bytes_of(body.ptr, n));
    struct buf b64;
    json_t *o;

    buf_init(&b64);
    if (!text)
        b64_encode(body.ptr, n, &b64);
    o = json_pack(
        "{s:I, s:b, s:s%, s:s%, s:I, s:o, s:s%, s:s}", "payload_bytes",
        (json_int_t)body.len, "redelivered", redelivered, "exchange",
        (const char *)message_exchange(m).ptr, message_exchange(m).len,
        "routing_key", (const char *)message_rk(m).ptr, message_rk(m).len,
        "message_count", (json_int_t)remaining, "properties",
        props_to_json(message_props(m)), "payload",
        text ? (const char *)body.ptr : (const char *)b64.data,
        text ? n : b64.len, "payload_encoding", text ? "string" : "base64");
    buf_fini(&b64);
    return o;
}

void
mgmt_h_queue_get(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct queue *q;
    json_t *body, *out, *jc, *jt;
    const char *ackmode, *enc;
    struct qentry *taken;
    long count, truncate = -1;
    size_t ntaken = 0;
    bool requeue;

    if (!vh || !mgmt_check_vhost(r, vh, false) || !(body = mgmt_body_json(r)))
        return;
    q = vhost_queue_find(vh, bytes_str(r->args[1]));
    if (!q) {
        mgmt_not_found(r);
        json_decref(body);
        return;
    }
    jc = json_object_get(body, "count");
    jt = json_object_get(body, "truncate");
    ackmode = body_str(body, "ackmode", NULL);
    enc = body_str(body, "encoding", NULL);
    if (!jc || !ackmode || !enc) {
        struct buf t;

        buf_init(&t);
        buf_printf(&t, "[%s%s%s%s%s]", !jc ? "{key_missing,count}" : "",
                   !jc && !ackmode ? "," : "",
                   !ackmode ? "{key_missing,ackmode}" : "",
                   (!jc || !ackmode) && !enc ? "," : "",
                   !enc ? "{key_missing,encoding}" : "");
        mgmt_bad_request(r, "%.*s", (int)t.len, (const char *)t.data);
        buf_fini(&t);
        json_decref(body);
        return;
    }
    if (!json_int(jc, &count) || count < 0) {
        mgmt_bad_request_json(r, json_pack("[s, s]", "not_int", "count"));
        json_decref(body);
        return;
    }
    if (jt && !json_is_null(jt) && !json_int(jt, &truncate)) {
        mgmt_bad_request_json(r, json_pack("[s, s]", "not_int", "truncate"));
        json_decref(body);
        return;
    }
    count = WR_MIN(count, 100000);
    if (strcmp(ackmode, "ack_requeue_true") == 0 ||
        strcmp(ackmode, "reject_requeue_true") == 0) {
        requeue = true;
    } else if (strcmp(ackmode, "ack_requeue_false") == 0 ||
               strcmp(ackmode, "reject_requeue_false") == 0) {
        requeue = false;
    } else {
        mgmt_bad_request_json(r,
                              json_pack("[s, s]", "invalid_ackmode", ackmode));
        json_decref(body);
        return;
    }
    if (strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0) {
        mgmt_bad_request_json(r,
                              json_pack("[s, s]", "unsupported_encoding", enc));
        json_decref(body);
        return;
    }
    if (!mgmt_check_perm(r, vh, PERM_READ, "queue", queue_name(q))) {
        json_decref(body);
        return;
    }
    out = json_array();
    taken = xcalloc((size_t)count + 1, sizeof(*taken));
    /* Take them all first (so a requeued one is not taken twice), then
     * settle: requeue puts each back at its place, redelivered. */
    while ((long)ntaken < count && queue_get(q, true, &taken[ntaken])) {
        struct qentry *e = &taken[ntaken++];

        json_array_append_new(out,
                              got_json(e->msg, (e->id & QE_REDELIVERED) != 0,
                                       queue_message_count(q),
                                       strcmp(enc, "auto") == 0, truncate));
    }
    if (requeue) {
        for (size_t i = ntaken; i-- > 0;)
            queue_requeue(q, taken[i]);
    } else {
        /* reject_requeue_false dead-letters, as RabbitMQ's does */
        bool reject = strcmp(ackmode, "reject_requeue_false") == 0;

        for (size_t i = 0; i < ntaken; i++) {
            if (reject)
                queue_reject(q, taken[i]);
            else
                queue_ack(q, taken[i]);
        }
    }
    free(taken);
    json_decref(body);
    mgmt_reply_json(r, 200, out);
}
