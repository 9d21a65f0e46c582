/*
 * exchange.c: exchanges by name (struct xreg), binding identity, and the
 * route of one publish through the exchange graph.
 *
 * An xreg is a uthash of exchanges keyed by name; uthash keeps insertion
 * order in hh.next, which is the iteration order.
 *
 * Each exchange keeps its bindings twice: in `binds`, a uthash keyed by
 * the binding's identity bytes (dest | key | args sorted by key), which
 * makes bind/unbind idempotent and O(1); and in its type index (fanout,
 * direct, topic, headers, x-consistent-hash), which routing reads. Each type is
 * one table of operations (struct xtype_ops, in its own file); xtypes[] lists
 * them, and this file never asks which type an exchange is.
 *
 * Routing (rabbit_exchange:route1): a work list starts with the
 * published-to exchange. Visiting an exchange asks its type index for
 * the destinations: queues go to the routeset, exchanges join the work
 * list unless this route has already seen them. An exchange whose own
 * type routing yields no destination at all also sends the message to
 * its alternate exchange, looked up by name. "Seen" is a per-route
 * generation number stored in each exchange (route_mark), so no visited
 * set is allocated or cleared per publish:
 *
 *   Ensures: every exchange reachable from x (via bindings and alternate
 *   exchanges) is visited exactly once per route; a diamond delivers
 *   once, a cycle (of bindings or of alternate exchanges) terminates.
 */
#include "exchange/exchange_int.h"
#include "exchange/topic.h"

#include <stdlib.h>

struct xreg {
    struct exchange *byname; /* uthash head; insertion order */
    uint64_t route_gen;      /* bumped once per route */
};

/* Every exchange type, by enum exchange_type. */
static const struct xtype_ops *const xtypes[] = {
    [EXCHANGE_DIRECT] = &direct__ops,
    [EXCHANGE_FANOUT] = &fanout__ops,
    [EXCHANGE_TOPIC] = &topic__ops,
    [EXCHANGE_HEADERS] = &headers__ops,
    [EXCHANGE_CONSISTENT_HASH] = &chash__ops,
    [EXCHANGE_DELAYED] = &delayed__ops,
};

int
exchange_type_parse(struct bytes name, enum exchange_type *out)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(xtypes); i++) {
        if (bytes_eq_str(name, xtypes[i]->name)) {
            *out = (enum exchange_type)i;
            return WR_OK;
        }
    }
    return WR_ERR;
}

const char *
exchange_type_name(enum exchange_type t)
{
    WR_ASSERT((size_t)t < WR_ARRAY_LEN(xtypes));
    return xtypes[t]->name;
}

/* A non-NULL pointer for empty views (memcmp/uthash on NULL is UB). */
static const uint8_t *
nonnull(struct bytes b)
{
    return b.ptr ? b.ptr : (const uint8_t *)"";
}

/* ---- destination vectors */

void
dvec__add(struct dvec *d, struct xbind *b)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4;
        d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
    }
    b->slot = d->n;
    d->v[d->n++] = (struct xslot){b->dest, b};
}

void
dvec__del(struct dvec *d, struct xbind *b)
{
    uint32_t i = b->slot;

    WR_ASSERT(i < d->n && d->v[i].b == b);
    d->v[i] = d->v[--d->n];
    d->v[i].b->slot = i;
}

void
dvec__fini(struct dvec *d)
{
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}

/* ---- tables sorted by key */

int
exchange__key_cmp(struct bytes a, struct bytes b)
{
    size_t n = WR_MIN(a.len, b.len);
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;

    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Stable sort of e[0..n) by key: insertion sort for short runs, then
 * bottom-up merges through tmp. O(n log n) for hostile header counts. */
static void
hent_sort(struct hent *e, struct hent *tmp, size_t n)
{
    const size_t run = 16;
    struct hent *src = e, *dst = tmp;

    for (size_t lo = 0; lo < n; lo += run) {
        size_t hi = WR_MIN(lo + run, n);
        for (size_t i = lo + 1; i < hi; i++) {
            struct hent v = e[i];
            size_t j = i;
            while (j > lo && exchange__key_cmp(e[j - 1].key, v.key) > 0) {
                e[j] = e[j - 1];
                j--;
            }
            e[j] = v;
        }
    }
    for (size_t w = run; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = WR_MIN(lo + w, n), hi = WR_MIN(lo + 2 * w, n);
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = exchange__key_cmp(src[j].key, src[i].key) < 0
                               ? src[j++]
                               : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        struct hent *t = src;
        src = dst;
        dst = t;
    }
    if (src != e)
        memcpy(e, src, n * sizeof(*e));
}

size_t
exchange__table_sorted(struct bytes tbl, struct hent **out, struct hent **tmp,
                       size_t *cap)
{
    struct ftable_iter it;
    struct hent h;
    size_t n = 0;

    ftable_iter_init(&it, tbl);
    while (ftable_next(&it, &h.key, &h.v)) {
        if (n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *out = xrealloc(*out, *cap * sizeof(**out));
            *tmp = xrealloc(*tmp, *cap * sizeof(**tmp));
        }
        (*out)[n++] = h;
    }
    hent_sort(*out, *tmp, n);
    return n;
}

/* An entry's raw bytes within its table, for re-emitting it sorted. */
struct rawent {
    struct bytes key;
    struct bytes raw;
};

static int
rawent_cmp(const void *a, const void *b)
{
    const struct rawent *x = a, *y = b;
    int c = exchange__key_cmp(x->key, y->key);

    /* Ties keep table order (stable), as lists:keysort does. */
    if (c == 0)
        c = x->raw.ptr < y->raw.ptr ? -1 : x->raw.ptr > y->raw.ptr;
    return c;
}

void
exchange_args_sort(struct bytes args, struct buf *out)
{
    struct ftable_iter it;
    struct rawent *e = NULL;
    size_t n = 0, cap = 0;
    struct bytes key;
    struct fvalue v;

    ftable_iter_init(&it, args);
    for (;;) {
        const uint8_t *start = it.c.p;
        if (!ftable_next(&it, &key, &v))
            break;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            e = xrealloc(e, cap * sizeof(*e));
        }
        e[n++] = (struct rawent){key, {start, (size_t)(it.c.p - start)}};
    }
    if (n > 1)
        qsort(e, n, sizeof(*e), rawent_cmp);
    for (size_t i = 0; i < n; i++)
        buf_append(out, e[i].raw.ptr, e[i].raw.len);
    free(e);
}

bool
exchange_args_equal(struct bytes a, struct bytes b)
{
    struct buf x, y;
    bool eq;

    if (bytes_eq(a, b))
        return true;
    if (a.len != b.len)
        return false;
    buf_init(&x);
    buf_init(&y);
    exchange_args_sort(a, &x);
    exchange_args_sort(b, &y);
    eq = bytes_eq(buf_bytes(&x), buf_bytes(&y));
    buf_fini(&x);
    buf_fini(&y);
    return eq;
}

/* ---- exchanges and the registry */

static struct bytes
find_alternate_arg(struct bytes args)
{
    struct fvalue v;

    if (ftable_find(args, "alternate-exchange", &v) && fvalue_is_str(&v))
        return v.v.str;
    return BYTES_NULL;
}

static void
exchange_free(struct exchange *x)
{
    struct xbind *b, *tmp;

    WR_ASSERT(x->magic == EXCHANGE_MAGIC);
    HASH_ITER(hh, x->binds, b, tmp)
    {
        HASH_DEL(x->binds, b);
        x->ops->unbind(x->idx.any, b);
        free(b);
    }
    x->ops->index_free(x->idx.any);
    x->magic = 0;
    free(x->name);
    free((void *)x->args.ptr);
    free(x->alternate);
    free(x->policy_alternate);
    free(x);
}

struct xreg *
xreg_new(void)
{
    return xcalloc(1, sizeof(struct xreg));
}

void
xreg_free(struct xreg *r)
{
    struct exchange *x, *tmp;

    if (!r)
        return;
    HASH_ITER(hh, r->byname, x, tmp)
    {
        HASH_DEL(r->byname, x);
        exchange_free(x);
    }
    free(r);
}

struct exchange *
xreg_find(struct xreg *r, struct bytes name)
{
    struct exchange *x;

    HASH_FIND(hh, r->byname, nonnull(name), name.len, x);
    return x;
}

struct exchange *
xreg_add(struct xreg *r, struct bytes name, enum exchange_type t, bool durable,
         bool auto_delete, bool internal, struct bytes args)
{
    struct exchange *x = xcalloc(1, sizeof(*x));
    struct bytes ae = find_alternate_arg(args);

    WR_ASSERT((size_t)t < WR_ARRAY_LEN(xtypes));
    WR_ASSERT(xreg_find(r, name) == NULL);
    x->magic = EXCHANGE_MAGIC;
    x->name = xstrndup(nonnull(name), name.len);
    x->name_len = name.len;
    x->type = x->route_type = t;
    if (t == EXCHANGE_DELAYED) {
        bool unknown;
        int rc = exchange_delayed_type(args, &x->route_type, &unknown);

        WR_ASSERT(rc == WR_OK);
    }
    x->ops = xtypes[x->route_type];
    x->durable = durable;
    x->auto_delete = auto_delete;
    x->internal = internal;
    x->args = bytes_of(xmemdup(nonnull(args), args.len), args.len);
    if (ae.ptr) {
        x->alternate = xstrndup(ae.ptr, ae.len);
        x->alternate_len = ae.len;
    }
    x->idx.any = x->ops->index_new();
    if (x->ops->configure)
        x->ops->configure(x->idx.any, x->args);
    HASH_ADD_KEYPTR(hh, r->byname, x->name, x->name_len, x);
    return x;
}

void
xreg_remove(struct xreg *r, struct exchange *x)
{
    WR_ASSERT(x->magic == EXCHANGE_MAGIC);
    HASH_DEL(r->byname, x);
    exchange_free(x);
}

size_t
xreg_count(const struct xreg *r)
{
    return HASH_COUNT(r->byname);
}

struct exchange *
xreg_first(struct xreg *r)
{
    return r->byname;
}

struct exchange *
xreg_next(struct xreg *r, struct exchange *x)
{
    (void)r;
    return x->hh.next;
}

void
exchange_set_policy_alternate(struct exchange *x, struct bytes name)
{
    free(x->policy_alternate);
    x->policy_alternate = NULL;
    x->policy_alternate_len = 0;
    if (name.ptr) {
        x->policy_alternate = xstrndup(name.ptr, name.len);
        x->policy_alternate_len = name.len;
    }
}

struct bytes
exchange_alternate(const struct exchange *x)
{
    if (x->alternate)
        return bytes_of(x->alternate, x->alternate_len);
    if (x->policy_alternate)
        return bytes_of(x->policy_alternate, x->policy_alternate_len);
    return BYTES_NULL;
}

/* ---- bindings */

int
exchange_check_binding_args(const struct exchange *x, struct bytes args,
                            struct buf *err)
{
    if (!x->ops->check_args)
        return WR_OK;
    return x->ops->check_args(args, err);
}

int
exchange_check_binding_key(const struct exchange *x, struct bytes key,
                           struct buf *err)
{
    if (!x->ops->check_key)
        return WR_OK;
    return x->ops->check_key(key, err);
}

int
exchange_check_decl_args(enum exchange_type t, struct bytes args,
                         struct buf *err)
{
    bool unknown;

    WR_ASSERT((size_t)t < WR_ARRAY_LEN(xtypes));
    /* x-delayed-message: the arguments of the type it routes as (a bad
     * x-delayed-type is refused by the caller). */
    if (t == EXCHANGE_DELAYED)
        exchange_delayed_type(args, &t, &unknown);
    if (!xtypes[t]->check_decl)
        return WR_OK;
    return xtypes[t]->check_decl(args, err);
}

/* Writes the identity bytes of (key, args, dest) into id. */
static void
binding_id(struct buf *id, struct bytes key, struct bytes args,
           struct xdest dest)
{
    buf_append(id, &dest.ptr, sizeof(dest.ptr));
    buf_put_u8(id, dest.is_exchange);
    buf_put_u32(id, (uint32_t)key.len);
    buf_append(id, nonnull(key), key.len);
    exchange_args_sort(args, id);
}

enum { ID_KEY_OFF = sizeof(void *) + 1 + 4 };

int
exchange_bind(struct exchange *x, struct bytes key, struct bytes args,
              struct xdest dest)
{
    struct buf id;
    struct xbind *b;

    WR_ASSERT(x->magic == EXCHANGE_MAGIC);
    WR_ASSERT(dest.ptr != NULL);
    WR_ASSERT(key.len <= UINT32_MAX);
    buf_init(&id);
    binding_id(&id, key, args, dest);
    HASH_FIND(hh, x->binds, id.data, id.len, b);
    if (b) {
        buf_fini(&id);
        return 0;
    }
    b = xcalloc(1, sizeof(*b) + id.len);
    memcpy(b->id, id.data, id.len);
    b->idlen = id.len;
    b->dest = dest;
    b->key = bytes_of(b->id + ID_KEY_OFF, key.len);
    b->args =
        bytes_of(b->id + ID_KEY_OFF + key.len, id.len - ID_KEY_OFF - key.len);
    buf_fini(&id);
    HASH_ADD(hh, x->binds, id, b->idlen, b);
    x->ops->bind(x->idx.any, b);
    return 1;
}

int
exchange_unbind(struct exchange *x, struct bytes key, struct bytes args,
                struct xdest dest)
{
    struct buf id;
    struct xbind *b;

    WR_ASSERT(x->magic == EXCHANGE_MAGIC);
    buf_init(&id);
    binding_id(&id, key, args, dest);
    HASH_FIND(hh, x->binds, id.data, id.len, b);
    buf_fini(&id);
    if (!b)
        return 0;
    HASH_DEL(x->binds, b);
    x->ops->unbind(x->idx.any, b);
    free(b);
    return 1;
}

size_t
exchange_binding_count(const struct exchange *x)
{
    return HASH_COUNT(x->binds);
}

/* ---- routing */

void
exchange__visit(struct xroute *c, struct exchange *y)
{
    struct routeset *rs = c->rs;

    WR_DEBUG_ASSERT(y->magic == EXCHANGE_MAGIC);
    if (y->route_mark == c->gen)
        return;
    y->route_mark = c->gen;
    if (rs->work_n == rs->work_cap) {
        rs->work_cap = rs->work_cap ? 2 * rs->work_cap : 16;
        rs->work = xrealloc(rs->work, rs->work_cap * sizeof(*rs->work));
    }
    rs->work[rs->work_n++] = y;
}

/* y, a delayed exchange, keeps the message (the plugin's route/2 gives
 * no destination for it, and no alternate exchange is tried). */
static void
hold(struct routeset *rs, struct exchange *y)
{
    if (rs->held_n == rs->held_cap) {
        rs->held_cap = rs->held_cap ? 2 * rs->held_cap : 4;
        rs->held = xrealloc(rs->held, rs->held_cap * sizeof(*rs->held));
    }
    rs->held[rs->held_n++] = y;
}

static size_t
route_msg(struct xreg *r, struct exchange *x, const struct bytes *rks,
          size_t nrk, struct bytes headers, struct bytes props,
          struct routeset *rs)
{
    struct xroute c = {r, rs, ++r->route_gen, rks, nrk, headers, props};

    WR_ASSERT(x->magic == EXCHANGE_MAGIC);
    WR_ASSERT(nrk >= 1);
    rs->work_n = 0;
    rs->held_n = 0;
    rs->hdr_ready = false;
    exchange__visit(&c, x);
    while (rs->work_n > 0) {
        struct exchange *y = rs->work[--rs->work_n];
        if (y != x && y->type == EXCHANGE_DELAYED && rs->hold_delayed) {
            hold(rs, y);
            continue;
        }
        if (y->ops->route(y->idx.any, &c) == 0) {
            struct bytes ae = exchange_alternate(y);
            struct exchange *a = ae.ptr ? xreg_find(r, ae) : NULL;
            if (a)
                exchange__visit(&c, a);
        }
    }
    return rs->n;
}

size_t
exchange_route_keys(struct xreg *r, struct exchange *x, const struct bytes *rks,
                    size_t nrk, struct bytes headers, struct bytes props,
                    struct routeset *rs)
{
    return route_msg(r, x, rks, nrk, headers, props, rs);
}

size_t
exchange_route(struct xreg *r, struct exchange *x, struct bytes rk,
               struct bytes headers, struct routeset *rs)
{
    return route_msg(r, x, &rk, 1, headers, BYTES_NULL, rs);
}

size_t
exchange_route_props(struct xreg *r, struct exchange *x, struct bytes rk,
                     struct bytes headers, struct bytes props,
                     struct routeset *rs)
{
    return route_msg(r, x, &rk, 1, headers, props, rs);
}
