/*
 * etcd_json.c: the JSON side of etcd's gRPC gateway, both ways.
 *
 * The gateway marshals protobuf with Go's jsonpb, which gives these
 * rules (checked against etcd 3.4.23):
 *   - bytes fields (keys, values, range_end) are standard base64 with
 *     padding: {"key":"Zm9v"};
 *   - int64 fields are JSON strings: "revision":"42", "ID":"7587...";
 *     numbers are accepted too, strings are what we send (lease IDs do
 *     not fit a double);
 *   - fields holding their default value are omitted, so absence means
 *     0, false, empty or the first enum member: a failed txn has no
 *     "succeeded", a PUT event no "type", a DELETE event's kv only key
 *     and mod_revision, a deleted count of 0 no "deleted";
 *   - a streaming reply (watch, keepalive) wraps each message:
 *     {"result":{...}} or {"error":{"grpc_code":14,"message":...}};
 *   - a failed unary call answers non-200 with
 *     {"error":"etcdserver: ...","message":"...","code":5}.
 *
 * Decoding is strict about types (a field of the wrong type is a
 * protocol error, never a crash or a guess) and lenient about absence.
 * Decoded keys and values, kv arrays and txn responses live in one
 * arena per message, freed together after the callback; jansson's tree
 * is released before the callback runs.
 */
#include "cluster/etcd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define ARENA_BLOCK   (16u << 10)
#define ARENA_ALIGN   16u
#define TXN_MAX_DEPTH 4

/* ---- arena */

struct etcd__arena_blk {
    struct etcd__arena_blk *next;
    size_t used;
    size_t cap;
    _Alignas(ARENA_ALIGN) uint8_t data[];
};

void
etcd__arena_init(struct etcd__arena *a)
{
    a->head = NULL;
    buf_init(&a->scratch);
}

void
etcd__arena_fini(struct etcd__arena *a)
{
    while (a->head) {
        struct etcd__arena_blk *b = a->head;

        a->head = b->next;
        free(b);
    }
    buf_fini(&a->scratch);
}

/* Returns n zeroed bytes, aligned, valid until etcd__arena_fini. */
void *
etcd__arena_alloc(struct etcd__arena *a, size_t n)
{
    struct etcd__arena_blk *b = a->head;
    void *p;

    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (!b || b->cap - b->used < n) {
        size_t cap = WR_MAX(n, (size_t)ARENA_BLOCK);

        b = xmalloc(sizeof(*b) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

/* Copies b into the arena. An empty result still has a valid pointer. */
struct bytes
etcd__arena_copy(struct etcd__arena *a, struct bytes b)
{
    uint8_t *p;

    if (b.len == 0)
        return bytes_of("", 0);
    p = etcd__arena_alloc(a, b.len);
    memcpy(p, b.ptr, b.len);
    return bytes_of(p, b.len);
}

/* ---- encoding */

void
etcd__json_set_bytes(json_t *o, const char *name, struct bytes b)
{
    struct buf t;

    buf_init(&t);
    b64_encode(b.ptr, b.len, &t);
    json_object_set_new(o, name,
                        t.len ? json_stringn((const char *)t.data, t.len)
                              : json_string(""));
    buf_fini(&t);
}

void
etcd__json_set_int(json_t *o, const char *name, int64_t v)
{
    char s[24];

    snprintf(s, sizeof(s), "%" PRId64, v);
    json_object_set_new(o, name, json_string(s));
}

static void
set_true(json_t *o, const char *name, bool v)
{
    if (v)
        json_object_set_new(o, name, json_true());
}

struct bytes
etcd_prefix_end(struct bytes prefix, struct buf *out)
{
    size_t n = prefix.len;

    buf_reset(out);
    while (n > 0 && prefix.ptr[n - 1] == 0xff)
        n--;
    if (n == 0) {
        buf_put_u8(out, 0);
        return buf_bytes(out);
    }
    buf_append(out, prefix.ptr, n);
    out->data[n - 1]++;
    return buf_bytes(out);
}

/* Sets "key" and "range_end" of a range-shaped request. An empty prefix
 * means every key: key "\0", range_end "\0" (etcd wants a key). */
static void
set_key_range(json_t *o, struct bytes key, struct bytes range_end, bool prefix)
{
    static const uint8_t zero = 0;
    struct buf end;

    buf_init(&end);
    if (prefix) {
        range_end = etcd_prefix_end(key, &end);
        if (key.len == 0)
            key = bytes_of(&zero, 1);
    }
    etcd__json_set_bytes(o, "key", key);
    if (range_end.len)
        etcd__json_set_bytes(o, "range_end", range_end);
    buf_fini(&end);
}

json_t *
etcd__json_range(struct bytes key, const struct etcd_range_opts *o)
{
    static const struct etcd_range_opts none;
    json_t *j = json_object();

    o = o ? o : &none;
    set_key_range(j, key, o->range_end, o->prefix);
    if (o->limit)
        etcd__json_set_int(j, "limit", o->limit);
    if (o->revision)
        etcd__json_set_int(j, "revision", o->revision);
    set_true(j, "keys_only", o->keys_only);
    set_true(j, "count_only", o->count_only);
    return j;
}

json_t *
etcd__json_put(struct bytes key, struct bytes value,
               const struct etcd_put_opts *o)
{
    json_t *j = json_object();

    etcd__json_set_bytes(j, "key", key);
    etcd__json_set_bytes(j, "value", value);
    if (o && o->lease)
        etcd__json_set_int(j, "lease", o->lease);
    set_true(j, "prev_kv", o && o->prev_kv);
    return j;
}

json_t *
etcd__json_delete(struct bytes key, const struct etcd_delete_opts *o)
{
    static const struct etcd_delete_opts none;
    json_t *j = json_object();

    o = o ? o : &none;
    set_key_range(j, key, o->range_end, o->prefix);
    set_true(j, "prev_kv", o->prev_kv);
    return j;
}

static int
dump_append(const char *p, size_t n, void *arg)
{
    buf_append(arg, p, n);
    return 0;
}

void
etcd__json_dump_steal(json_t *j, struct buf *out)
{
    WR_ASSERT(j);
    json_dump_callback(j, dump_append, out, JSON_COMPACT);
    json_decref(j);
}

/* ---- decoding: field readers. Absent fields read as their default. */

struct dec {
    struct etcd__arena *a;
    char *err;
    size_t errlen;
};

static int WR_PRINTF(2, 3) bad(struct dec *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return WR_ERR;
}

/* Parses a decimal int64 ("-12"), nothing else. */
static bool
parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!s[0] || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int
get_int(struct dec *d, json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);

    *out = 0;
    if (!v)
        return WR_OK;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return WR_OK;
    }
    if (json_is_string(v) && parse_int64(json_string_value(v), out))
        return WR_OK;
    return bad(d, "\"%s\" is not an int64", name);
}

static int
get_bool(struct dec *d, json_t *o, const char *name, bool *out)
{
    json_t *v = json_object_get(o, name);

    *out = false;
    if (!v)
        return WR_OK;
    if (!json_is_boolean(v))
        return bad(d, "\"%s\" is not a boolean", name);
    *out = json_is_true(v);
    return WR_OK;
}

static int
get_bytes(struct dec *d, json_t *o, const char *name, struct bytes *out)
{
    json_t *v = json_object_get(o, name);

    *out = bytes_of("", 0);
    if (!v)
        return WR_OK;
    if (!json_is_string(v))
        return bad(d, "\"%s\" is not a string", name);
    buf_reset(&d->a->scratch);
    if (!b64_decode(json_string_value(v), json_string_length(v), false,
                    &d->a->scratch))
        return bad(d, "\"%s\" is not base64", name);
    *out = etcd__arena_copy(d->a, buf_bytes(&d->a->scratch));
    return WR_OK;
}

/* The object member name, or NULL when absent; WR_ERR if not an object. */
static int
get_object(struct dec *d, json_t *o, const char *name, json_t **out)
{
    json_t *v = json_object_get(o, name);

    *out = v;
    if (v && !json_is_object(v))
        return bad(d, "\"%s\" is not an object", name);
    return WR_OK;
}

static int
get_array(struct dec *d, json_t *o, const char *name, json_t **out)
{
    json_t *v = json_object_get(o, name);

    *out = v;
    if (v && !json_is_array(v))
        return bad(d, "\"%s\" is not an array", name);
    return WR_OK;
}

static int
get_revision(struct dec *d, json_t *o, int64_t *rev)
{
    json_t *hdr;

    *rev = 0;
    if (get_object(d, o, "header", &hdr) != WR_OK)
        return WR_ERR;
    return hdr ? get_int(d, hdr, "revision", rev) : WR_OK;
}

/* ---- decoding: kvs */

static int
get_kv(struct dec *d, json_t *o, struct etcd_kv *kv)
{
    if (!json_is_object(o))
        return bad(d, "a kv is not an object");
    if (get_bytes(d, o, "key", &kv->key) != WR_OK ||
        get_bytes(d, o, "value", &kv->value) != WR_OK ||
        get_int(d, o, "create_revision", &kv->create_revision) != WR_OK ||
        get_int(d, o, "mod_revision", &kv->mod_revision) != WR_OK ||
        get_int(d, o, "version", &kv->version) != WR_OK ||
        get_int(d, o, "lease", &kv->lease) != WR_OK)
        return WR_ERR;
    return WR_OK;
}

static int
get_kvs(struct dec *d, json_t *o, const char *name, struct etcd_result *res)
{
    struct etcd_kv *kvs;
    json_t *arr;
    size_t n;

    if (get_array(d, o, name, &arr) != WR_OK)
        return WR_ERR;
    n = arr ? json_array_size(arr) : 0;
    if (n == 0)
        return WR_OK;
    kvs = etcd__arena_alloc(d->a, n * sizeof(*kvs));
    for (size_t i = 0; i < n; i++) {
        if (get_kv(d, json_array_get(arr, i), &kvs[i]) != WR_OK)
            return WR_ERR;
    }
    res->kvs = kvs;
    res->n_kvs = n;
    return WR_OK;
}

/* put's single prev_kv, as a 0- or 1-element kvs. */
static int
get_prev_kv(struct dec *d, json_t *o, struct etcd_result *res)
{
    struct etcd_kv *kv;
    json_t *v;

    if (get_object(d, o, "prev_kv", &v) != WR_OK)
        return WR_ERR;
    if (!v)
        return WR_OK;
    kv = etcd__arena_alloc(d->a, sizeof(*kv));
    if (get_kv(d, v, kv) != WR_OK)
        return WR_ERR;
    res->kvs = kv;
    res->n_kvs = 1;
    return WR_OK;
}

/* ---- decoding: responses by op */

static int decode_op(struct dec *d, enum etcd_op op, json_t *o,
                     struct etcd_result *res, int depth);

/* One element of a txn's "responses": {"response_put":{...}} etc. */
static int
decode_txn_item(struct dec *d, json_t *item, struct etcd_result *res, int depth)
{
    static const struct {
        const char *name;
        enum etcd_op op;
    } kinds[] = {
        {"response_range", ETCD_OP_RANGE},
        {"response_put", ETCD_OP_PUT},
        {"response_delete_range", ETCD_OP_DELETE},
        {"response_txn", ETCD_OP_TXN},
    };

    if (!json_is_object(item))
        return bad(d, "a txn response is not an object");
    for (size_t i = 0; i < WR_ARRAY_LEN(kinds); i++) {
        json_t *v;

        if (get_object(d, item, kinds[i].name, &v) != WR_OK)
            return WR_ERR;
        if (v)
            return decode_op(d, kinds[i].op, v, res, depth + 1);
    }
    return bad(d, "a txn response has no known response_* member");
}

static int
decode_txn(struct dec *d, json_t *o, struct etcd_result *res, int depth)
{
    struct etcd_result *rs;
    json_t *arr;
    size_t n;

    if (depth > TXN_MAX_DEPTH)
        return bad(d, "txn responses nested too deep");
    if (get_bool(d, o, "succeeded", &res->succeeded) != WR_OK ||
        get_array(d, o, "responses", &arr) != WR_OK)
        return WR_ERR;
    n = arr ? json_array_size(arr) : 0;
    if (n == 0)
        return WR_OK;
    rs = etcd__arena_alloc(d->a, n * sizeof(*rs));
    for (size_t i = 0; i < n; i++) {
        if (decode_txn_item(d, json_array_get(arr, i), &rs[i], depth) != WR_OK)
            return WR_ERR;
    }
    res->responses = rs;
    res->n_responses = n;
    return WR_OK;
}

/* Lease replies: ID and TTL; a keepalive's are inside "result". */
static int
decode_lease(struct dec *d, json_t *o, struct etcd_result *res)
{
    return get_int(d, o, "ID", &res->id) == WR_OK &&
                   get_int(d, o, "TTL", &res->ttl) == WR_OK
               ? WR_OK
               : WR_ERR;
}

static int
decode_op(struct dec *d, enum etcd_op op, json_t *o, struct etcd_result *res,
          int depth)
{
    res->op = op;
    if (get_revision(d, o, &res->revision) != WR_OK)
        return WR_ERR;
    switch (op) {
    case ETCD_OP_RANGE:
        if (get_bool(d, o, "more", &res->more) != WR_OK ||
            get_int(d, o, "count", &res->count) != WR_OK)
            return WR_ERR;
        return get_kvs(d, o, "kvs", res);
    case ETCD_OP_PUT:
        return get_prev_kv(d, o, res);
    case ETCD_OP_DELETE:
        if (get_int(d, o, "deleted", &res->count) != WR_OK)
            return WR_ERR;
        return get_kvs(d, o, "prev_kvs", res);
    case ETCD_OP_TXN:
        return decode_txn(d, o, res, depth);
    case ETCD_OP_LEASE_GRANT:
    case ETCD_OP_LEASE_KEEPALIVE:
        return decode_lease(d, o, res);
    case ETCD_OP_COMPACT:
    case ETCD_OP_LEASE_REVOKE:
        return WR_OK;
    }
    return bad(d, "unknown op %d", (int)op);
}

int
etcd__json_result(enum etcd_op op, struct bytes body, struct etcd__arena *a,
                  struct etcd_result *res, char *err, size_t errlen)
{
    struct dec d = {a, err, errlen};
    json_error_t je;
    json_t *root, *o;
    int rc;

    memset(res, 0, sizeof(*res));
    root = json_loadb((const char *)body.ptr, body.len, 0, &je);
    if (!root)
        return bad(&d, "response is not JSON: %s", je.text);
    o = root;
    /* A keepalive answers as a stream: {"result":{...}} */
    if (op == ETCD_OP_LEASE_KEEPALIVE && json_is_object(root))
        o = json_object_get(root, "result");
    if (json_is_object(root) && json_object_get(root, "error"))
        rc = WR_AGAIN;
    else if (!json_is_object(o))
        rc = bad(&d, "response is not a JSON object");
    else
        rc = decode_op(&d, op, o, res, 0);
    json_decref(root);
    return rc;
}

/* ---- errors */

static void
copy_str(char *dst, size_t n, json_t *s)
{
    snprintf(dst, n, "%s", json_is_string(s) ? json_string_value(s) : "");
}

bool
etcd__json_error(struct bytes body, int *code, char *msg, size_t msglen)
{
    json_t *root, *e, *c;
    bool ok = false;

    root = json_loadb((const char *)body.ptr, body.len, 0, NULL);
    e = json_is_object(root) ? json_object_get(root, "error") : NULL;
    if (json_is_string(e)) { /* unary: {"error","message","code"} */
        c = json_object_get(root, "code");
        copy_str(msg, msglen, e);
        ok = true;
    } else if (json_is_object(e)) { /* stream: {"error":{...}} */
        c = json_object_get(e, "grpc_code");
        copy_str(msg, msglen, json_object_get(e, "message"));
        ok = true;
    } else {
        c = NULL;
    }
    *code = json_is_integer(c) ? (int)json_integer_value(c) : 0;
    json_decref(root);
    return ok;
}

/* ---- watch stream messages */

static int
get_event(struct dec *d, json_t *o, struct etcd_event *ev)
{
    json_t *type, *kv, *prev;

    if (!json_is_object(o))
        return bad(d, "an event is not an object");
    type = json_object_get(o, "type");
    if (!type ||
        (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
        ev->type = ETCD_EV_PUT;
    else if (json_is_string(type) &&
             strcmp(json_string_value(type), "DELETE") == 0)
        ev->type = ETCD_EV_DELETE;
    else
        return bad(d, "unknown event type");
    if (get_object(d, o, "kv", &kv) != WR_OK ||
        get_object(d, o, "prev_kv", &prev) != WR_OK)
        return WR_ERR;
    if (!kv)
        return bad(d, "an event has no kv");
    if (get_kv(d, kv, &ev->kv) != WR_OK)
        return WR_ERR;
    ev->has_prev_kv = prev != NULL;
    return prev ? get_kv(d, prev, &ev->prev_kv) : WR_OK;
}

static int
get_events(struct dec *d, json_t *o, struct etcd__watch_msg *m)
{
    json_t *arr;
    size_t n;

    if (get_array(d, o, "events", &arr) != WR_OK)
        return WR_ERR;
    n = arr ? json_array_size(arr) : 0;
    if (n == 0)
        return WR_OK;
    m->events = etcd__arena_alloc(d->a, n * sizeof(*m->events));
    for (size_t i = 0; i < n; i++) {
        if (get_event(d, json_array_get(arr, i), &m->events[i]) != WR_OK)
            return WR_ERR;
    }
    m->n_events = n;
    return WR_OK;
}

static int
decode_watch_result(struct dec *d, json_t *o, struct etcd__watch_msg *m)
{
    json_t *reason;

    if (get_revision(d, o, &m->revision) != WR_OK ||
        get_bool(d, o, "created", &m->created) != WR_OK ||
        get_bool(d, o, "canceled", &m->canceled) != WR_OK ||
        get_bool(d, o, "fragment", &m->fragment) != WR_OK ||
        get_int(d, o, "compact_revision", &m->compact_revision) != WR_OK)
        return WR_ERR;
    reason = json_object_get(o, "cancel_reason");
    if (json_is_string(reason)) {
        struct bytes s = {(const uint8_t *)json_string_value(reason),
                          json_string_length(reason) + 1};

        m->cancel_reason = (const char *)etcd__arena_copy(d->a, s).ptr;
    }
    return get_events(d, o, m);
}

int
etcd__json_watch(struct bytes line, struct etcd__arena *a,
                 struct etcd__watch_msg *m, int *code, char *err, size_t errlen)
{
    struct dec d = {a, err, errlen};
    json_error_t je;
    json_t *root, *res;
    int rc;

    memset(m, 0, sizeof(*m));
    *code = 0;
    root = json_loadb((const char *)line.ptr, line.len, 0, &je);
    if (!root)
        return bad(&d, "watch message is not JSON: %s", je.text);
    res = json_is_object(root) ? json_object_get(root, "result") : NULL;
    if (json_is_object(res)) {
        rc = decode_watch_result(&d, res, m);
    } else if (etcd__json_error(line, code, err, errlen)) {
        rc = WR_ERR;
    } else {
        rc = bad(&d, "watch message has neither result nor error");
    }
    json_decref(root);
    return rc;
}
