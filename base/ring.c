/*
 * ring.c: the ring deque's out-of-line half: growing, resizing and
 * inserting in the middle (ring.h has the layout and the invariants).
 *
 * Inserting at position i moves whichever side of i is shorter by one
 * slot, so an insert near either end (a requeued message going back near
 * the head of its queue, say) costs little whatever the length.
 */
#include "base/ring.h"

#include <stdlib.h>

void
ring_resize(struct ring *r, size_t esize, size_t cap)
{
    char *v;

    WR_ASSERT(cap >= r->n && (cap & (cap - 1)) == 0);
    v = xmalloc(cap * esize);
    for (size_t i = 0; i < r->n; i++)
        memcpy(v + i * esize, ring_at(r, esize, i), esize);
    free(r->v);
    r->v = v;
    r->cap = cap;
    r->head = 0;
}

void
ring__grow(struct ring *r, size_t esize)
{
    ring_resize(r, esize, r->cap ? r->cap * 2 : RING_MIN_CAP);
}

void *
ring_insert(struct ring *r, size_t esize, size_t i)
{
    WR_ASSERT(i <= r->n);
    if (r->n == r->cap)
        ring__grow(r, esize);
    if (i < r->n / 2) {
        /* the i elements before the slot move one step to the front */
        r->head = (r->head + r->cap - 1) & (r->cap - 1);
        for (size_t k = 0; k < i; k++)
            memcpy(ring_at(r, esize, k), ring_at(r, esize, k + 1), esize);
    } else {
        for (size_t k = r->n; k > i; k--)
            memcpy(ring_at(r, esize, k), ring_at(r, esize, k - 1), esize);
    }
    r->n++;
    return ring_at(r, esize, i);
}

void
ring_fini(struct ring *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}
