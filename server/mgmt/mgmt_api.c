/*
 * mgmt_api.c: what every handler of the management API uses: query
 * parameters, request bodies, replies and errors in RabbitMQ's shapes,
 * the vhosts a user may see and the permission checks, and the skeleton
 * of an item's GET, PUT and DELETE (mgmt_item).
 *
 * Errors follow RabbitMQ's: {"error": ..., "reason": ...} with the
 * status its cowboy handlers give; a channel error from a vhost call
 * (struct vherr) maps to 401 "Access refused." for 403, 404 for 404 and
 * 400 with its text for the rest (mgmt_reply_vherr).
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- query parameters */

const char *
mgmt_qs(const struct mgmt_req *r, const char *key)
{
    for (size_t i = 0; i < r->nq; i++)
        if (strcmp(r->q[i].key, key) == 0)
            return r->q[i].value;
    return NULL;
}

bool
mgmt_qs_true(const struct mgmt_req *r, const char *key)
{
    const char *v = mgmt_qs(r, key);

    return v && strcmp(v, "true") == 0;
}

/* ---- replies */

/* Appends v's encoding. Returns false when jansson cannot encode it. */
static bool
dump_into(struct buf *b, json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    uint8_t *p;

    if (n == 0)
        return false;
    p = buf_reserve(b, n);
    json_dumpb(v, (char *)p, n, JSON_COMPACT | JSON_ENCODE_ANY);
    b->len += n;
    return true;
}

void
mgmt_reply_json(struct mgmt_req *r, int status, json_t *v)
{
    bool ok = v && dump_into(&r->out, v);

    json_decref(v);
    if (!ok) {
        static const char err[] =
            "{\"error\":\"internal_server_error\",\"reason\":\"JSON "
            "encode error\"}";

        buf_reset(&r->out);
        buf_append(&r->out, err, sizeof(err) - 1);
        status = 500;
    }
    r->status = status;
    mgmt_http_respond(r, "application/json");
}

void
mgmt_reply_empty(struct mgmt_req *r, int status)
{
    r->status = status;
    buf_reset(&r->out);
    mgmt_http_respond(r, NULL);
}

void
mgmt_reply_done(struct mgmt_req *r, int rc, const struct vherr *err, int status)
{
    if (rc == WR_OK)
        mgmt_reply_empty(r, status);
    else
        mgmt_reply_vherr(r, err);
}

static void
reply_error_text(struct mgmt_req *r, int status, const char *error,
                 const char *reason)
{
    mgmt_reply_json(r, status,
                    json_pack("{s:s, s:s}", "error", error, "reason", reason));
}

void
mgmt_reply_error(struct mgmt_req *r, int status, const char *error,
                 const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    /* Reasons quote client bytes: make them valid UTF-8 for JSON. */
    if (!bytes_is_utf8(bytes_str(reason)))
        snprintf(reason, sizeof(reason), "(unprintable reason)");
    reply_error_text(r, status, error, reason);
}

void
mgmt_bad_request(struct mgmt_req *r, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    mgmt_reply_error(r, 400, "bad_request", "%s", reason);
}

void
mgmt_bad_request_json(struct mgmt_req *r, json_t *reason)
{
    mgmt_reply_json(
        r, 400,
        json_pack("{s:s, s:o}", "error", "bad_request", "reason", reason));
}

void
mgmt_not_found(struct mgmt_req *r)
{
    reply_error_text(r, 404, "Object Not Found", "Not Found");
}

void
mgmt_not_authorised(struct mgmt_req *r, const char *reason)
{
    reply_error_text(r, 401, "not_authorised", reason);
}

void
mgmt_reply_vherr(struct mgmt_req *r, const struct vherr *err)
{
    switch (err->code) {
    case AMQP_ACCESS_REFUSED:
        mgmt_not_authorised(r, "Access refused.");
        break;
    case AMQP_NOT_FOUND:
        mgmt_not_found(r);
        break;
    default:
        mgmt_bad_request(r, "%s", err->text);
        break;
    }
}

json_t *
mgmt_body_json(struct mgmt_req *r)
{
    json_error_t jerr;
    json_t *v;

    if (r->body.len == 0 ||
        (r->body.len == 4 && memcmp(r->body.ptr, "null", 4) == 0))
        return json_object();
    v = json_loadb((const char *)r->body.ptr, r->body.len, 0, &jerr);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        mgmt_bad_request(r, "not_json");
        return NULL;
    }
    return v;
}

json_t *
mgmt_rate(double rate)
{
    /* RabbitMQ reports rates with one decimal */
    double r = (double)(int64_t)(rate * 10 + (rate >= 0 ? 0.5 : -0.5)) / 10;

    return json_pack("{s:f}", "rate", r);
}

/* Replaces every string that is not UTF-8 (a table's longstr may hold
 * any bytes) by its Latin-1 reading, so that the JSON encodes. */
static void
sanitize_strings(json_t *v, int depth)
{
    const char *key;
    json_t *e;
    size_t i;

    if (depth > 64)
        return;
    if (json_is_string(v)) {
        struct bytes s = bytes_of(json_string_value(v), json_string_length(v));
        struct buf b;

        if (bytes_is_utf8(s))
            return;
        buf_init(&b);
        for (i = 0; i < s.len; i++) {
            uint8_t ch = s.ptr[i];

            if (ch < 0x80) {
                buf_put_u8(&b, ch);
            } else {
                buf_put_u8(&b, (uint8_t)(0xc0 | ch >> 6));
                buf_put_u8(&b, (uint8_t)(0x80 | (ch & 0x3f)));
            }
        }
        json_string_setn(v, (const char *)b.data, b.len);
        buf_fini(&b);
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, e) sanitize_strings(e, depth + 1);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) sanitize_strings(e, depth + 1);
    }
}

json_t *
mgmt_table_json(struct bytes tbl)
{
    json_t *o = defs_table_to_json(tbl);

    sanitize_strings(o, 0);
    return o;
}

/* ---- the node's vhosts and name */

/* Every vhost, sorted by name. */
static int
vhost_cmp(const void *a, const void *b)
{
    const struct vhost *x = *(struct vhost *const *)a;
    const struct vhost *y = *(struct vhost *const *)b;

    return strcmp(vhost_name(x), vhost_name(y));
}

struct vhost **
mgmt_vhosts(size_t *n)
{
    struct node *node = srv->node;
    size_t count = node_vhost_count(node), i = 0;
    struct vhost **v = xcalloc(count + 1, sizeof(*v));

    for (struct vhost *vh = node_vhost_next(node, NULL); vh;
         vh = node_vhost_next(node, vh))
        v[i++] = vh;
    qsort(v, count, sizeof(*v), vhost_cmp);
    *n = count;
    return v;
}

const char *
mgmt_node_name(void)
{
    return srv->cfg->node_name; /* cluster.node_name, "warren@<host>" */
}

/* ---- vhost access and permissions */

struct vhost *
mgmt_vhost_arg(struct mgmt_req *r, const char *name)
{
    struct vhost *vh = node_vhost_find(srv->node, name);

    if (!vh)
        mgmt_not_found(r);
    return vh;
}

bool
mgmt_can_see_vhost(const struct mgmt_req *r, struct vhost *vh, bool read)
{
    if (r->tags & TAG_ADMINISTRATOR)
        return true;
    if (read && (r->tags & TAG_MONITORING))
        return true;
    return r->user_name && vhost_user_has_access(vh, r->user_name);
}

bool
mgmt_check_vhost(struct mgmt_req *r, struct vhost *vh, bool read)
{
    if (mgmt_can_see_vhost(r, vh, read))
        return true;
    mgmt_not_authorised(r, "User not authorised to access virtual host");
    return false;
}

bool
mgmt_check_perm(struct mgmt_req *r, struct vhost *vh, enum perm_kind kind,
                const char *what, struct bytes name)
{
    struct vherr err;

    if (vhost_perm_check(vh, r->user_name, kind, what, name, &err) == WR_OK)
        return true;
    mgmt_not_authorised(r, "Access refused.");
    return false;
}

struct bytes
mgmt_exchange_name(const char *path_name)
{
    if (strcmp(path_name, "amq.default") == 0)
        return BYTES_LIT("");
    return bytes_str(path_name);
}

/* ---- request bodies */

/* RabbitMQ's parse_bool: true/false or "true"/"false". Replies 400
 * ["not_boolean", V] and returns false on anything else. */
bool
mgmt_body_bool(struct mgmt_req *r, json_t *body, const char *key, bool dflt,
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
bool
mgmt_body_args(struct mgmt_req *r, json_t *body, struct buf *out)
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

const char *
mgmt_body_str(json_t *body, const char *key, const char *dflt)
{
    json_t *v = json_object_get(body, key);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Visible vhosts: the one in args[0] (checked) or every one the user may
 * read. Returns NULL after replying when the named one is refused. */
struct vhost **
mgmt_list_vhosts(struct mgmt_req *r, size_t *n)
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
        /* a clustered node lists what it serves: the others, theirs */
        if (mgmt_can_see_vhost(r, all[i], true) && vhost_is_serving(all[i]))
            all[k++] = all[i];
    *n = k;
    return all;
}

/* ---- one item of a collection */

void
mgmt_item(struct mgmt_req *r, const struct mgmt_item_ops *ops, void *obj,
          void *ctx)
{
    if (r->method == HTTP_PUT)
        ops->put(r, obj, ctx);
    else if (!obj)
        mgmt_not_found(r);
    else if (r->method == HTTP_DELETE)
        ops->del(r, obj, ctx);
    else
        ops->get(r, obj, ctx);
}
