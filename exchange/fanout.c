/*
 * fanout.c: the fanout exchange's index, flat vectors of every bound
 * destination: queues in one, exchanges in the other. The routing key
 * (and headers) are ignored: routing emits both vectors whole.
 *
 * A queue bound twice (with different keys or arguments) appears twice
 * in `queues`; `count` (a uthash by queue pointer) knows how many times
 * each queue is bound and `dups` how many entries are repeats. While
 * dups == 0 the queue vector is known distinct, and a route that starts
 * here hands it to the routeset as one copy, with no per-queue hashing:
 * a fanout to 10,000 queues costs a memcpy-like loop.
 *
 * Invariants: queues + exchanges hold exactly the exchange's bindings;
 * sum over count of (n - 1) == dups.
 */
#include "exchange/exchange_int.h"

#include <stdlib.h>

struct qcount {
    UT_hash_handle hh; /* in fanout.count, keyed by q */
    void *q;
    uint32_t n;
};

struct fanout {
    struct dvec queues;
    struct dvec exchanges;
    struct qcount *count;
    size_t dups;
};

static void *
fanout_new(void)
{
    return xcalloc(1, sizeof(struct fanout));
}

static void
fanout_free(void *idx)
{
    struct fanout *f = idx;
    struct qcount *c, *tmp;

    if (!f)
        return;
    HASH_ITER(hh, f->count, c, tmp)
    {
        HASH_DEL(f->count, c);
        free(c);
    }
    dvec__fini(&f->queues);
    dvec__fini(&f->exchanges);
    free(f);
}

static void
fanout_bind(void *idx, struct xbind *b)
{
    struct fanout *f = idx;
    struct qcount *c;

    b->owner = f;
    if (b->dest.is_exchange) {
        dvec__add(&f->exchanges, b);
        return;
    }
    dvec__add(&f->queues, b);
    HASH_FIND_PTR(f->count, &b->dest.ptr, c);
    if (c) {
        c->n++;
        f->dups++;
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->q = b->dest.ptr;
    c->n = 1;
    HASH_ADD_PTR(f->count, q, c);
}

static void
fanout_unbind(void *idx, struct xbind *b)
{
    struct fanout *f = idx;
    struct qcount *c;

    WR_ASSERT(b->owner == f);
    if (b->dest.is_exchange) {
        dvec__del(&f->exchanges, b);
        return;
    }
    dvec__del(&f->queues, b);
    HASH_FIND_PTR(f->count, &b->dest.ptr, c);
    WR_ASSERT(c != NULL && c->n > 0);
    if (--c->n > 0) {
        f->dups--;
        return;
    }
    HASH_DEL(f->count, c);
    free(c);
}

static size_t
fanout_route(void *idx, struct xroute *c)
{
    struct fanout *f = idx;
    const struct xslot *v = f->queues.v;
    uint32_t n = f->queues.n;

    if (f->dups == 0) {
        routeset__add_distinct(c->rs, v, n);
    } else {
        for (uint32_t i = 0; i < n; i++)
            routeset__add_queue(c->rs, v[i].dest.ptr);
    }
    for (uint32_t i = 0; i < f->exchanges.n; i++)
        exchange__visit(c, (struct exchange *)f->exchanges.v[i].dest.ptr);
    return n + f->exchanges.n;
}

const struct xtype_ops fanout__ops = {
    .name = "fanout",
    .index_new = fanout_new,
    .index_free = fanout_free,
    .bind = fanout_bind,
    .unbind = fanout_unbind,
    .route = fanout_route,
    .check_args = NULL,
};
