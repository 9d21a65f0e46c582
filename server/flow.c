/*
 * flow.c: credit flow, which keeps a publisher faster than the consumers
 * it feeds from filling memory. RabbitMQ's credit flow (the reader, the
 * channel and the queue each grant their sender a few hundred messages
 * before it must wait) ends in the same place by other means: a
 * publisher is read as fast as its queues drain, not faster.
 *
 * Here a queue gives its publishers credit in bytes of ready messages
 * held in memory (vhost/queue.h: QUEUE_CREDIT_HIGH, QUEUE_CREDIT_LOW).
 * A publish that leaves a draining queue above the high mark makes its
 * connection wait for that queue: after the frame that published, its
 * socket is read no more (no connection.blocked: that is for alarms).
 * The prepare pass of every loop iteration lets a waiting connection go
 * once its queue is under the low mark, has lost its consumers, was
 * deleted, or stalled (no consumer took a message for QUEUE_STALL_US: a
 * backlog that nobody drains is not the publisher's to wait for; it
 * builds up as in RabbitMQ, paged to disk past the memory budget).
 *
 * Invariants: c->flow_q is set exactly while c is on the waiting list,
 * and holds one reference on that queue. A connection that consumes
 * from the queue never waits for it: its own acks, unread, would be what
 * holds the queue up.
 */
#include "server/channel.h"

#include <utlist.h>

/* Connections waiting for their queue (flow_prev/flow_next). */
static struct conn *waiting;
/* Wakes the loop while some connection waits, so that a queue that
 * stalls lets its publishers go even when no socket stirs. */
static ev_timer stall_timer;

static void
stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* the prepare pass that follows looks (flow_check) */
}

/* Whether c has a consumer on q. */
static bool
consumes_from(const struct conn *c, const struct queue *q)
{
    struct channel *ch, *tmp;
    struct chconsumer *cc, *ctmp;

    HASH_ITER(hh, c->channels, ch, tmp)
    {
        HASH_ITER(hh, ch->consumers, cc, ctmp)
        {
            if (cc->c.q == q)
                return true;
        }
    }
    return false;
}

void
flow_wait(struct conn *c, struct queue *q)
{
    if (c->flow_q || c->state != CONN_OPEN || consumes_from(c, q))
        return;
    queue_ref(q);
    c->flow_q = q;
    DL_APPEND2(waiting, c, flow_prev, flow_next);
    conn_update_reading(c);
    if (!ev_is_active(&stall_timer)) {
        ev_timer_init(&stall_timer, stall_cb, 0.1, 0.1);
        ev_timer_start(srv->loop, &stall_timer);
    }
}

void
flow_forget(struct conn *c)
{
    if (!c->flow_q)
        return;
    DL_DELETE2(waiting, c, flow_prev, flow_next);
    queue_unref(c->flow_q);
    c->flow_q = NULL;
    /* the frames that came after the publish wait in `in` */
    c->resume_input = true;
    conn_pending(c);
    conn_update_reading(c);
}

void
flow_check(struct server *s)
{
    struct conn *c, *tmp;

    DL_FOREACH_SAFE2(waiting, c, tmp, flow_next)
    {
        if (queue_credit_restored(c->flow_q))
            flow_forget(c);
    }
    if (!waiting && ev_is_active(&stall_timer))
        ev_timer_stop(s->loop, &stall_timer);
}
