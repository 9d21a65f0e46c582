/*
 * unacked.c: a channel's deliveries waiting for ack, in delivery-tag
 * order, in a ring deque (base/ring.h).
 *
 * Tags grow with every delivery, so pushing at the back keeps the list
 * sorted and an ack finds its delivery by binary search. Taking a
 * delivery out of the middle leaves a tombstone (q == NULL) where it
 * was; tombstones are dropped once they reach the front. Acking in
 * order therefore costs O(1), out of order O(log n), and the oldest
 * delivery (consumer_timeout) is the first live one.
 *
 * Invariants: tags strictly increase from front to back; live counts the
 * entries that are not tombstones; a list whose ring is empty holds no
 * more than 1024 slots.
 */
#include "server/channel.h"

#include <stdlib.h>

struct unacked *
unacked_at(struct unacked_list *l, size_t i)
{
    return ring_at(&l->r, sizeof(struct unacked), i);
}

void
unacked_push(struct unacked_list *l, const struct unacked *u)
{
    WR_DEBUG_ASSERT(l->r.n == 0 || unacked_at(l, l->r.n - 1)->tag < u->tag);
    *(struct unacked *)ring_push_back(&l->r, sizeof(*u)) = *u;
    l->live++;
}

ssize_t
unacked_find(const struct unacked_list *l, uint64_t tag)
{
    size_t lo = 0, hi = l->r.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct unacked *u = ring_at(&l->r, sizeof(*u), mid);

        if (u->tag < tag)
            lo = mid + 1;
        else if (u->tag > tag)
            hi = mid;
        else
            return u->q ? (ssize_t)mid : -1;
    }
    return -1;
}

struct unacked
unacked_take(struct unacked_list *l, size_t i)
{
    struct unacked *u = unacked_at(l, i), copy = *u;

    WR_ASSERT(u->q != NULL);
    u->q = NULL;
    l->live--;
    return copy;
}

void
unacked_compact(struct unacked_list *l)
{
    while (l->r.n > 0 && unacked_at(l, 0)->q == NULL)
        ring_pop_front(&l->r);
    if (l->r.n == 0 && l->r.cap > 1024)
        ring_fini(&l->r);
}

static int
cmp_tag(const void *a, const void *b)
{
    const struct unacked *x = a, *y = b;

    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

void
unacked_restore(struct unacked_list *l, const struct unacked *v, size_t n)
{
    struct unacked *all = xmalloc((l->live + n + 1) * sizeof(*all));
    size_t k = 0;

    for (size_t i = 0; i < l->r.n; i++) {
        if (unacked_at(l, i)->q)
            all[k++] = *unacked_at(l, i);
    }
    memcpy(all + k, v, n * sizeof(*v));
    k += n;
    qsort(all, k, sizeof(*all), cmp_tag);
    ring_clear(&l->r);
    l->live = 0;
    for (size_t i = 0; i < k; i++)
        unacked_push(l, &all[i]);
    free(all);
}

void
unacked_fini(struct unacked_list *l)
{
    ring_fini(&l->r);
    l->live = 0;
}
