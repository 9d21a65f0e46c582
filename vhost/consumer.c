/*
 * consumer.c: a queue's consumers and the choice of the next one to
 * deliver to, at a cost that does not depend on how many there are.
 *
 * Every consumer is on q->consumers in registration order (what
 * x-single-active-consumer and management read). For dispatch, each is
 * in exactly one of two places:
 *
 *   q->levels  the consumers that may have room, grouped by x-priority
 *              in an array sorted from the highest priority down; each
 *              level is a ring whose head is the next to try, so equal
 *              priorities take turns (round-robin);
 *   q->blocked those found without room (their prefetch window full, or
 *              their owner's ready() said no), skipped until their owner
 *              wakes them (queue_consumer_wake) after an ack or when a
 *              channel or connection can take deliveries again.
 *
 * So picking a consumer costs O(1) amortized: a consumer found full is
 * looked at once, then moved aside until something changes for it, and
 * 50,000 consumers with full windows cost nothing per message (issue
 * 10). A new or woken consumer joins the tail of its level, as RabbitMQ
 * puts consumers that were blocked back in line. Levels are found by
 * binary search; adding or removing a level moves the array's tail,
 * O(p) for p distinct priorities in use, which is a few in practice.
 *
 * Invariants:
 *   every registered consumer is in exactly one level ring or on
 *   q->blocked, as c->blocked says; no level ring is empty;
 *   an exclusive consumer is registered alone (m_basic.c checks it).
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include <stdlib.h>
#include <utlist.h>

/* Index of the level of priority p, or where it would go (*found
 * false). Levels are sorted from the highest priority down. */
static uint32_t
level_find(const struct queue *q, int64_t p, bool *found)
{
    uint32_t lo = 0, hi = q->nlevels;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (q->levels[mid].priority > p)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < q->nlevels && q->levels[lo].priority == p;
    return lo;
}

/* Appends c to the tail of its level's ring (created if need be). */
static void
level_add(struct queue *q, struct consumer *c)
{
    bool found;
    uint32_t i = level_find(q, c->priority, &found);

    if (!found) {
        if (q->nlevels == q->caplevels) {
            q->caplevels = q->caplevels ? 2 * q->caplevels : 2;
            q->levels = xrealloc(q->levels, q->caplevels * sizeof(*q->levels));
        }
        memmove(&q->levels[i + 1], &q->levels[i],
                (q->nlevels - i) * sizeof(*q->levels));
        q->levels[i] = (struct clevel){.priority = c->priority};
        q->nlevels++;
    }
    CDL_APPEND2(q->levels[i].ring, c, dprev, dnext);
    c->blocked = false;
}

/* Takes c out of its level's ring, dropping the level if it empties. */
static void
level_remove(struct queue *q, struct consumer *c)
{
    bool found;
    uint32_t i = level_find(q, c->priority, &found);

    WR_ASSERT(found && !c->blocked);
    CDL_DELETE2(q->levels[i].ring, c, dprev, dnext);
    if (q->levels[i].ring)
        return;
    q->nlevels--;
    memmove(&q->levels[i], &q->levels[i + 1],
            (q->nlevels - i) * sizeof(*q->levels));
}

static void
block(struct queue *q, struct consumer *c)
{
    level_remove(q, c);
    DL_APPEND2(q->blocked, c, dprev, dnext);
    c->blocked = true;
}

void
queue_consumer_add(struct queue *q, struct consumer *c)
{
    c->q = q;
    CDL_APPEND(q->consumers, c);
    level_add(q, c);
    q->nconsumers++;
    q->had_consumer = true;
    if (q->stream)
        stream__consumer_add(q, c);
    queue_schedule(q);
}

static void unlink_consumer(struct queue *q, struct consumer *c);

void
queue_consumer_remove(struct queue *q, struct consumer *c)
{
    unlink_consumer(q, c);
    q->used_us = node_now(q->vh->node); /* x-expires counts from here */
    if (q->expires_ms > 0 && q->nconsumers == 0)
        node__note_expiry(q->vh->node,
                          q->used_us + (uint64_t)q->expires_ms * 1000u);
    if (q->single_active && q->nconsumers > 0)
        queue_schedule(q); /* the next one in line takes over */
    if (q->nconsumers == 0 && q->auto_delete && !q->deleted)
        vhost_queue_delete(q->vh, q);
}

void
queue_consumer_wake(struct consumer *c)
{
    struct queue *q = c->q;

    if (!q)
        return;
    if (c->blocked) {
        DL_DELETE2(q->blocked, c, dprev, dnext);
        level_add(q, c);
    }
    queue_schedule(q);
}

static inline bool
has_room(struct consumer *c)
{
    return (c->prefetch == 0 || c->unacked < c->prefetch) && c->ops->ready(c);
}

struct consumer *
queue__pick_consumer(struct queue *q)
{
    if (q->single_active)
        return q->consumers && has_room(q->consumers) ? q->consumers : NULL;
    while (q->nlevels > 0) {
        struct clevel *l = &q->levels[0];
        struct consumer *c = l->ring;

        if (has_room(c)) {
            l->ring = c->dnext; /* the next one's turn */
            return c;
        }
        block(q, c);
    }
    return NULL;
}

/* Takes c out of q's lists. */
static void
unlink_consumer(struct queue *q, struct consumer *c)
{
    WR_ASSERT(c->q == q && q->nconsumers > 0);
    CDL_DELETE(q->consumers, c);
    if (c->sreader)
        stream__consumer_remove(c);
    if (c->blocked)
        DL_DELETE2(q->blocked, c, dprev, dnext);
    else
        level_remove(q, c);
    c->blocked = false;
    c->q = NULL;
    q->nconsumers--;
}

void
queue__cancel_consumers(struct queue *q)
{
    struct consumer *c;

    while ((c = q->consumers) != NULL) {
        unlink_consumer(q, c);
        c->ops->cancel(c);
    }
}

void
queue__consumers_fini(struct queue *q)
{
    WR_ASSERT(q->nconsumers == 0 && q->nlevels == 0 && !q->blocked);
    free(q->levels);
    q->levels = NULL;
    q->caplevels = 0;
}
