/*
 * ring.h: a double-ended queue of fixed-size elements in a growable ring
 * buffer, the one Warren uses wherever items come and go at both ends: a
 * queue's ready list (vhost/queue.c), a channel's deliveries waiting for
 * ack (server/unacked.c) and publishes waiting for a confirm
 * (server/confirm.c), a connection's body references (server/outq.c).
 *
 * The element size is passed to every call; at each call site it is a
 * sizeof, so ring_at() compiles to a mask and a multiply. Users wrap the
 * calls in small typed helpers (unacked_at, qd_at...).
 *
 * Invariants: cap is 0 or a power of two; n <= cap; element i (0 is the
 * front) lives in slot (head + i) & (cap - 1); an empty ring has head 0.
 * Elements are moved with memcpy: they must not point into themselves.
 */
#ifndef WARREN_RING_H
#define WARREN_RING_H

#include "base/base.h"

/* Slots of a ring's first allocation. */
#define RING_MIN_CAP 8

struct ring {
    void *v;
    size_t head;
    size_t n;
    size_t cap;
};

/* Grows r to twice its capacity (RING_MIN_CAP at first). */
void ring__grow(struct ring *r, size_t esize);

/* Element i (0 = front). Assumes i < cap; only i < n holds an element. */
static inline void *
ring_at(const struct ring *r, size_t esize, size_t i)
{
    return (char *)r->v + ((r->head + i) & (r->cap - 1)) * esize;
}

/* Appends a slot at the back and returns it, for the caller to fill. */
static inline void *
ring_push_back(struct ring *r, size_t esize)
{
    if (r->n == r->cap)
        ring__grow(r, esize);
    return ring_at(r, esize, r->n++);
}

/* Drops the front element. Assumes n > 0. */
static inline void
ring_pop_front(struct ring *r)
{
    WR_ASSERT(r->n > 0);
    r->head = (r->head + 1) & (r->cap - 1);
    if (--r->n == 0)
        r->head = 0;
}

/* Forgets every element, keeping the memory. */
static inline void
ring_clear(struct ring *r)
{
    r->head = r->n = 0;
}

/* Opens a slot at position i (0..n) by moving the shorter side one step,
 * and returns it, for the caller to fill. O(min(i, n - i)). */
void *ring_insert(struct ring *r, size_t esize, size_t i);
/* Reallocates to cap slots (a power of two, at least n), the front at
 * slot 0: how a user gives memory back after a backlog drained. */
void ring_resize(struct ring *r, size_t esize, size_t cap);
/* Frees the buffer; the ring is empty and may be used again. */
void ring_fini(struct ring *r);

#endif
