/*
 * direct.c: the direct exchange's index, a hash from binding key to the
 * destinations bound with exactly that key (uthash, one entry per
 * distinct key). Routing looks each routing key up once: a publish costs
 * one hash of the key plus one emit per destination.
 *
 * Invariant: an entry exists only while its vector is non-empty; each
 * binding's owner is the entry holding it.
 */
#include "exchange/exchange_int.h"

#include <stdlib.h>

struct dkey {
    UT_hash_handle hh; /* in direct.keys, keyed by key[0..len) */
    struct dvec dv;
    size_t len;
    uint8_t key[];
};

struct direct {
    struct dkey *keys;
};

static void *
direct_new(void)
{
    return xcalloc(1, sizeof(struct direct));
}

static void
direct_free(void *idx)
{
    struct direct *d = idx;
    struct dkey *k, *tmp;

    if (!d)
        return;
    HASH_ITER(hh, d->keys, k, tmp)
    {
        HASH_DEL(d->keys, k);
        dvec__fini(&k->dv);
        free(k);
    }
    free(d);
}

static struct dkey *
find(struct direct *d, struct bytes key)
{
    struct dkey *k;
    const void *p = key.ptr ? (const void *)key.ptr : (const void *)"";

    HASH_FIND(hh, d->keys, p, key.len, k);
    return k;
}

static void
direct_bind(void *idx, struct xbind *b)
{
    struct direct *d = idx;
    struct dkey *k = find(d, b->key);

    if (!k) {
        k = xcalloc(1, sizeof(*k) + b->key.len + 1);
        memcpy(k->key, b->key.ptr, b->key.len);
        k->len = b->key.len;
        HASH_ADD(hh, d->keys, key, k->len, k);
    }
    b->owner = k;
    dvec__add(&k->dv, b);
}

static void
direct_unbind(void *idx, struct xbind *b)
{
    struct direct *d = idx;
    struct dkey *k = b->owner;

    dvec__del(&k->dv, b);
    if (k->dv.n == 0) {
        HASH_DEL(d->keys, k);
        dvec__fini(&k->dv);
        free(k);
    }
}

static size_t
direct_route(void *idx, struct xroute *c)
{
    struct direct *d = idx;
    size_t total = 0;

    if (!d->keys)
        return 0;
    for (size_t i = 0; i < c->nrk; i++) {
        struct dkey *k = find(d, c->rks[i]);
        if (!k)
            continue;
        for (uint32_t j = 0; j < k->dv.n; j++)
            xroute_emit(c, k->dv.v[j].dest);
        total += k->dv.n;
    }
    return total;
}

const struct xtype_ops direct__ops = {
    .name = "direct",
    .index_new = direct_new,
    .index_free = direct_free,
    .bind = direct_bind,
    .unbind = direct_unbind,
    .route = direct_route,
    .check_args = NULL,
};
