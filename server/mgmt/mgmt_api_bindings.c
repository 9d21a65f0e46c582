/*
 * mgmt_api_bindings.c: bindings over HTTP.
 *
 *   /api/bindings[/v]                        GET: every binding (the
 *                                            default exchange's implicit
 *                                            ones included)
 *   /api/exchanges/v/x/bindings/source|destination   GET
 *   /api/queues/v/q/bindings                 GET
 *   /api/bindings/v/e/x/q/q                  GET, POST {"routing_key",
 *                                            "arguments"}
 *   /api/bindings/v/e/x/q/q/props            GET, DELETE
 *   and the same with e/x/e/x2 for an exchange destination.
 *
 * A binding is named in paths by RabbitMQ's properties key: the quoted
 * routing key, plus "~" and the hash of the arguments when there are any
 * (mgmt_api_phash.c). Binding needs write permission on the destination
 * and read on the source, as RabbitMQ checks them; binds and unbinds go
 * through the same vhost calls as queue.bind and exchange.bind.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdlib.h>
#include <utlist.h>

static const char *const binding_sort[] = {
    "vhost",       "source",         "destination", "destination_type",
    "routing_key", "properties_key", NULL};

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
    mgmt_reply_per_vhost(r, append_vhost_bindings, binding_sort);
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
    key = mgmt_body_str(body, "routing_key", "");
    if (strlen(key) > 255) {
        mgmt_bad_request(r, "routing_key is longer than 255 bytes");
        goto out;
    }
    if (!mgmt_body_args(r, body, &args))
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
        mgmt_reply_done(r,
                        vhost_unbind(e.vh, e.src, e.dest, e.dest_is_exchange,
                                     buf_bytes(&key), buf_bytes(&a), NULL,
                                     &err),
                        &err, 204);
        buf_fini(&a);
    }
out:
    buf_fini(&key);
}
