/*
 * queue.c: a queue's ready list and dispatch (its consumers: consumer.c).
 *
 * The ready list is a ring deque (base/ring.h) of entries sorted by id:
 * publishes append at the tail (ids grow), dispatch pops the head, and a
 * requeued entry is inserted back at its id's place, usually near the head, by
 * shifting the shorter side of the ring. So a requeued message keeps its
 * original position, as in RabbitMQ's classic queues.
 *
 * Dispatch is deferred: queue_push() and anything that frees consumer
 * credit only put the queue on the node's dirty list; the loop runs
 * node_run_dispatch() once per iteration, before output is flushed, so a
 * burst of publishes is delivered in one batch.
 *
 * Invariants:
 *   ready ids strictly increase from head to tail;
 *   ready_bytes = sum of body sizes in ready;
 *   unacked = deliveries taken with ack and not yet settled, each of
 *   which holds one reference on the queue.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include <stdlib.h>
#include <utlist.h>

/* ---- the ready list (a base/ring.h deque of entries) */

/* Gives memory back after a backlog drained. */
static void
qd_maybe_shrink(struct ring *d)
{
    if (d->cap > 1024 && d->n <= d->cap / 8)
        ring_resize(d, sizeof(struct qentry), d->cap / 4);
}

bool
qd_pop_front(struct ring *d, struct qentry *out)
{
    if (d->n == 0)
        return false;
    *out = *qd_at(d, 0);
    ring_pop_front(d);
    return true;
}

/* Inserts e at its key's place (priority, then id). Assumes no entry
 * with the same id. */
void
qd_insert_sorted(struct ring *d, struct qentry e)
{
    uint64_t id = e.id & QE_KEY_MASK;
    size_t lo = 0, hi = d->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((qd_at(d, mid)->id & QE_KEY_MASK) < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *(struct qentry *)ring_insert(d, sizeof(e), lo) = e;
}

/* ---- what others read */

uint32_t
queue_message_count(struct queue *q)
{
    if (q->may_expire)
        queue_expire(q);
    return (uint32_t)q->ready.n;
}

struct consumer *
queue_exclusive_consumer(const struct queue *q)
{
    return q->consumers && q->consumers->exclusive ? q->consumers : NULL;
}

struct consumer *
queue_consumer_next(const struct queue *q, const struct consumer *c)
{
    if (!c)
        return q->consumers;
    return c->next == q->consumers ? NULL : c->next;
}

struct bytes
queue_name(const struct queue *q)
{
    return bytes_of(q->name, q->name_len);
}

uint32_t
queue_consumer_count(const struct queue *q)
{
    return q->nconsumers;
}

uint64_t
queue_backlog_memory(const struct queue *q)
{
    return queue__backlog(q);
}

/* Consumers took a message lately: holding its publishers back is
 * worth it, they will be let go as the backlog drains. */
static bool
is_draining(const struct queue *q)
{
    return q->nconsumers > 0 &&
           node_now(q->vh->node) - q->drained_us < QUEUE_STALL_US;
}

bool
queue_credit_exhausted(const struct queue *q)
{
    return !q->deleted && queue__backlog(q) >= QUEUE_CREDIT_HIGH &&
           is_draining(q);
}

bool
queue_credit_restored(const struct queue *q)
{
    return q->deleted || queue__backlog(q) < QUEUE_CREDIT_LOW ||
           !is_draining(q);
}

int64_t
queue_consumer_timeout_ms(const struct queue *q)
{
    return q->consumer_timeout_ms;
}

void
queue_info(const struct queue *q, struct queue_info *out)
{
    *out = (struct queue_info){
        .name = queue_name(q),
        /* a deleted queue's vhost may be gone already */
        .vhost = q->deleted ? NULL : q->vh->name,
        .durable = q->durable,
        .exclusive = q->exclusive,
        .auto_delete = q->auto_delete,
        .deleted = q->deleted,
        .locked = q->owner != NULL,
        .single_active = q->single_active,
        .quorum = q->quorum,
        .args = q->args,
        .policy = q->policy,
        .op_policy = q->op_policy,
        .ready = (uint32_t)q->ready.n,
        .ready_paged = q->ready_paged,
        .unacked = q->unacked,
        .consumers = q->nconsumers,
        .ready_bytes = q->ready_bytes,
        .mem_bytes = q->mem_bytes,
        .memory = sizeof(*q) + q->name_len + q->args.len +
                  q->ready.cap * sizeof(struct qentry) + q->mem_bytes,
        .stat_publish = q->stat_publish,
        .stat_deliver = q->stat_deliver,
        .stat_ack = q->stat_ack,
        .stat_redeliver = q->stat_redeliver,
        .stat_expired = q->stat_expired,
    };
    if (q->dedup) {
        struct dedup_stats ds;

        dedup_stats(q->dedup, &ds);
        out->dedup = true;
        out->dedup_entries = ds.entries;
        out->dedup_size = ds.size;
        out->dedup_dropped = ds.dropped;
        out->memory += ds.memory;
    }
}

/* ---- lifetime */

void
queue_ref(struct queue *q)
{
    WR_ASSERT(q->magic == QUEUE_MAGIC && q->refs > 0);
    q->refs++;
}

static void dcounts_free(struct queue *q);
static void dcount_forget(struct queue *q, uint64_t id);

void
queue_unref(struct queue *q)
{
    WR_ASSERT(q->magic == QUEUE_MAGIC && q->refs > 0);
    if (--q->refs > 0)
        return;
    WR_ASSERT(q->deleted && q->ready.n == 0 && q->unacked == 0);
    WR_ASSERT(!q->dirty);
    ring_fini(&q->ready);
    dcounts_free(q);
    queue__consumers_fini(q);
    free(q->name);
    free((void *)q->args.ptr);
    free((void *)q->dlx.ptr);
    free((void *)q->dlrk.ptr);
    free(q->policy);
    free(q->op_policy);
    dedup_free(q->dedup);
    stream__free(q);
    q->magic = 0;
    free(q);
}

/* ---- messages in and out */

/* Takes a delivery that must be settled later: counts it and pins q. */
void
queue__track(struct queue *q)
{
    q->unacked++;
    q->refs++;
}

/* The entry's expiry in node time, or UINT64_MAX. The lower of the
 * message's and the queue's TTL applies, from the publish time. */
static uint64_t
expiry(const struct queue *q, const struct message *m)
{
    int64_t ttl = m->ttl_ms;

    if (q->ttl_ms >= 0 && (ttl < 0 || q->ttl_ms < ttl))
        ttl = q->ttl_ms;
    return ttl < 0 ? UINT64_MAX : m->ts_us + (uint64_t)ttl * 1000u;
}

/* Expired strictly after its expiry: a message with TTL 0 can still go to
 * a consumer that is ready in the same loop iteration, as RabbitMQ
 * promises ("expires unless it can be delivered immediately"). */
static bool
is_expired(const struct queue *q, const struct message *m)
{
    return node_now(q->vh->node) > expiry(q, m);
}

/* Forgets a ready entry for good: the log hears of it (INSTORE) and the
 * message reference goes. */
static void
drop_entry(struct queue *q, struct qentry e, bool log_ack)
{
    /* only a message that came back has a count */
    if (q->dcounts && (e.id & QE_REDELIVERED))
        dcount_forget(q, e.id);
    if ((e.id & QE_INSTORE) && log_ack)
        vhost__log_ack(q->vh, q, e.id);
    if (!(e.id & QE_PAGED))
        message_unref(e.msg);
}

/* An entry whose record never reached the disk before the log failed:
 * its publisher got basic.nack, it must not stay in a queue. */
static bool
is_lost(const struct queue *q, uint64_t id)
{
    return (id & QE_INSTORE) && (id & QE_ID_MASK) >= q->vh->lost_from;
}

/* Brings the head entry into memory. A record that cannot be read back
 * (logged by vhost__page_in with file and offset) is dropped: nothing
 * else can be done with it. Returns false when the queue is empty. */
static bool
load_head(struct queue *q)
{
    struct qentry *h;

    while (q->ready.n > 0) {
        h = qd_at(&q->ready, 0);
        if (!(h->id & QE_PAGED))
            return true;
        if (vhost__page_in(q->vh, h) == WR_OK) {
            q->ready_paged--;
            queue__mem(q, (int64_t)h->msg->body_size);
            /* its expiration property, read back from the log */
            if (h->msg->ttl_ms >= 0)
                queue__may_expire(q);
            return true;
        }
        log_err("queue '%s' in vhost '%s': message %llu lost: its record "
                "could not be read",
                q->name, q->vh->name, (unsigned long long)(h->id & QE_ID_MASK));
        struct qentry e = {0};

        qd_pop_front(&q->ready, &e);
        q->ready_paged--;
        drop_entry(q, e, true);
    }
    return false;
}

void
queue__mem(struct queue *q, int64_t delta)
{
    struct node *n = q->vh->node;
    uint64_t budget = n->opts.memory_budget;

    q->mem_bytes += (uint64_t)delta;
    n->mem_bytes += (uint64_t)delta;
    if (!budget)
        return;
    /* Hysteresis: page from the budget down to 80% of it. */
    if (!n->lazy && n->mem_bytes > budget) {
        n->lazy = true;
        log_info("queues hold %llu bytes of messages in memory, over the "
                 "budget of %llu: new messages go to disk",
                 (unsigned long long)n->mem_bytes, (unsigned long long)budget);
    } else if (n->lazy && n->mem_bytes < budget / 10 * 8) {
        n->lazy = false;
        log_info("queues hold %llu bytes of messages in memory: new "
                 "messages stay in memory again",
                 (unsigned long long)n->mem_bytes);
    }
}

/* Pops the (loaded) head entry. */
static void
pop_head(struct queue *q, struct qentry *out)
{
    q->drained_us = node_now(q->vh->node);
    qd_pop_front(&q->ready, out);
    queue__mem(q, -(int64_t)out->msg->body_size);
    q->ready_bytes -= WR_MIN(q->ready_bytes, out->msg->body_size);
    if (q->ready.n == 0)
        q->ready_bytes = 0;
}

void
queue_expire(struct queue *q)
{
    struct qentry e, *h;

    /* Paged entries keep their TTL on disk; they expire once loaded. */
    while (q->ready.n > 0) {
        h = qd_at(&q->ready, 0);
        if (h->id & QE_PAGED)
            break;
        if (!is_expired(q, h->msg)) {
            /* the server's expire timer comes back for it */
            uint64_t t = expiry(q, h->msg);

            if (t != UINT64_MAX)
                node__note_expiry(q->vh->node, t + 1);
            break;
        }
        pop_head(q, &e);
        q->stat_expired++;
        deadletter__add(q, e.msg, DL_EXPIRED);
        drop_entry(q, e, true);
    }
}

/* Would one more message of `size` bytes break x-max-length(-bytes)?
 * Only ready messages count, as in RabbitMQ. */
static bool
over_limit(const struct queue *q, uint64_t size)
{
    return (q->max_len >= 0 && q->ready.n + 1 > (uint64_t)q->max_len) ||
           (q->max_bytes >= 0 &&
            q->ready_bytes + size > (uint64_t)q->max_bytes);
}

/* x-overflow drop-head: drop the oldest ready messages until the queue
 * is within its limits. */
static void
drop_over_limit(struct queue *q)
{
    struct qentry e = {0};

    while (q->ready.n > 0 &&
           ((q->max_len >= 0 && q->ready.n > (uint64_t)q->max_len) ||
            (q->max_bytes >= 0 && q->ready_bytes > (uint64_t)q->max_bytes))) {
        if (!load_head(q))
            return;
        pop_head(q, &e);
        deadletter__add(q, e.msg, DL_MAXLEN);
        drop_entry(q, e, true);
    }
}

/* The priority part of an entry's key in q (0 unless x-max-priority). */
static uint64_t
prio_key(const struct queue *q, uint8_t priority)
{
    if (!q->max_priority)
        return 0;
    return (uint64_t)(255 - WR_MIN(priority, q->max_priority)) << QE_PRIO_SHIFT;
}

/* Appends e, or in a priority queue inserts it after every entry of its
 * priority and above. */
static void
ready_add(struct queue *q, struct qentry e)
{
    if (q->max_priority && q->ready.n > 0 &&
        (qd_at(&q->ready, q->ready.n - 1)->id & QE_KEY_MASK) >
            (e.id & QE_KEY_MASK))
        qd_insert_sorted(&q->ready, e);
    else
        qd_push_back(&q->ready, e);
}

static int
cmp_key(const void *a, const void *b)
{
    uint64_t x = ((const struct qentry *)a)->id & QE_KEY_MASK;
    uint64_t y = ((const struct qentry *)b)->id & QE_KEY_MASK;

    return x < y ? -1 : x > y;
}

void
queue__sort_recovered(struct queue *q)
{
    struct vhost *vh = q->vh;
    size_t n = q->ready.n;
    struct qentry *v = xmalloc((n + 1) * sizeof(*v));

    for (size_t i = 0; i < n; i++) {
        uint8_t prio = 0;

        v[i] = *qd_at(&q->ready, i);
        /* The priority is in the properties, in the record. An
         * unreadable record keeps priority 0; it is dropped when its
         * turn comes (load_head). */
        if (v[i].id & QE_PAGED)
            vhost__record_priority(vh, v[i].pos, &prio);
        else
            prio = v[i].msg->priority;
        v[i].id = (v[i].id & ~QE_PRIO_MASK) | prio_key(q, prio);
    }
    qsort(v, n, sizeof(*v), cmp_key);
    ring_fini(&q->ready);
    for (size_t i = 0; i < n; i++)
        qd_push_back(&q->ready, v[i]);
    free(v);
}

void
queue__enforce(struct queue *q)
{
    if (q->deleted)
        return;
    if (!q->reject_publish)
        drop_over_limit(q);
    if (q->may_expire)
        queue_expire(q);
    if (q->nconsumers)
        queue_schedule(q);
}

bool
queue_push(struct queue *q, struct message *m)
{
    struct qentry e = {.id = m->id, .msg = m};

    WR_ASSERT(!q->deleted);
    if (!m->id)
        e.id = m->id = vhost__next_id(q->vh);
    if (q->durable && (m->flags & MSG_LOGGED)) {
        e.id |= QE_INSTORE;
        q->logged = true;
    }
    e.id |= prio_key(q, m->priority);
    if (m->ttl_ms >= 0)
        queue__may_expire(q);
    /* TTL 0 (or already past) with nobody to take it now: RabbitMQ drops
     * it on arrival. With consumers it waits for this iteration's
     * dispatch. */
    if (q->nconsumers == 0 && q->may_expire &&
        expiry(q, m) <= node_now(q->vh->node)) {
        q->stat_publish++;
        q->stat_expired++;
        if (e.id & QE_INSTORE)
            vhost__log_ack(q->vh, q, e.id);
        deadletter__add(q, m, DL_EXPIRED);
        return true;
    }
    if (q->reject_publish && over_limit(q, m->body_size)) {
        if (e.id & QE_INSTORE)
            vhost__log_ack(q->vh, q, e.id);
        if (q->reject_publish_dlx)
            deadletter__add(q, m, DL_MAXLEN);
        return false;
    }
    message_ref(m);
    ready_add(q, e);
    if (q->may_expire) {
        uint64_t t = expiry(q, m);

        if (t != UINT64_MAX)
            node__note_expiry(q->vh->node, t + 1);
    }
    q->ready_bytes += m->body_size;
    queue__mem(q, (int64_t)m->body_size);
    q->stat_publish++;
    drop_over_limit(q);
    if (q->nconsumers)
        queue_schedule(q);
    return true;
}

bool
queue__push_paged(struct queue *q, uint64_t id, uint64_t pos, struct message *m)
{
    struct qentry e = {.id = id | QE_PAGED | QE_INSTORE, .pos = pos};
    uint64_t body_size = m->body_size;

    e.id |= prio_key(q, m->priority);
    WR_ASSERT(!q->deleted);
    q->logged = true;
    if (q->reject_publish && over_limit(q, body_size)) {
        vhost__log_ack(q->vh, q, e.id);
        if (q->reject_publish_dlx)
            deadletter__add(q, m, DL_MAXLEN);
        return false;
    }
    ready_add(q, e);
    q->ready_paged++;
    q->ready_bytes += body_size;
    q->stat_publish++;
    drop_over_limit(q);
    if (q->nconsumers)
        queue_schedule(q);
    return true;
}

bool
queue_get(struct queue *q, bool ack, struct qentry *out)
{
    return queue_get_counted(q, ack, out, NULL);
}

bool
queue_get_counted(struct queue *q, bool ack, struct qentry *out, int64_t *count)
{
    q->used_us = node_now(q->vh->node); /* renews x-expires */
    if (q->may_expire)
        queue_expire(q);
    if (!load_head(q))
        return false;
    if (q->may_expire) {
        queue_expire(q);
        if (!load_head(q))
            return false;
    }
    pop_head(q, out);
    if (count)
        *count = queue_delivery_count(q, *out);
    if (ack) {
        queue__track(q);
    } else {
        if (out->id & QE_INSTORE) {
            vhost__log_ack(q->vh, q, out->id);
            out->id &= ~QE_INSTORE;
        }
        if (q->dcounts)
            dcount_forget(q, out->id);
    }
    q->stat_deliver++;
    if (out->id & QE_REDELIVERED)
        q->stat_redeliver++;
    qd_maybe_shrink(&q->ready);
    return true;
}

/* A durable queue's count changed: the mirrors are told (replica.c). */
static void
dcount_tap(const struct queue *q, uint64_t id, uint32_t n)
{
    struct buf *t = q->vh->dcount_tap;

    if (!t || !q->durable)
        return;
    buf_put_u64(t, q->qid);
    buf_put_u64(t, id);
    buf_put_u32(t, n);
}

/* Forgets how often message id came back: it left the queue. */
static void
dcount_forget(struct queue *q, uint64_t id)
{
    struct dcount *d;

    id &= QE_ID_MASK;
    HASH_FIND(hh, q->dcounts, &id, sizeof(id), d);
    if (d) {
        HASH_DEL(q->dcounts, d);
        free(d);
        dcount_tap(q, id, 0);
    }
}

int64_t
queue_delivery_count(const struct queue *q, struct qentry e)
{
    uint64_t id = e.id & QE_ID_MASK;
    struct dcount *d;

    if (!q->quorum)
        return -1;
    if (!q->dcounts)
        return 0;
    HASH_FIND(hh, q->dcounts, &id, sizeof(id), d);
    return d ? d->n : 0;
}

/* The message of e comes back once more (a quorum queue's): true when
 * that is more often than the queue's delivery limit allows (RabbitMQ's
 * quorum queues count every return and drop, or dead-letter, past the
 * limit; the count is kept without a limit too, for x-delivery-count). */
static bool
dcount_over(struct queue *q, uint64_t id)
{
    struct dcount *d;

    id &= QE_ID_MASK;
    HASH_FIND(hh, q->dcounts, &id, sizeof(id), d);
    if (!d) {
        d = xcalloc(1, sizeof(*d));
        d->id = id;
        HASH_ADD(hh, q->dcounts, id, sizeof(d->id), d);
    }
    dcount_tap(q, id, ++d->n);
    return q->delivery_limit >= 0 && d->n > (uint64_t)q->delivery_limit;
}

static void
dcounts_free(struct queue *q)
{
    struct dcount *d, *tmp;

    HASH_ITER(hh, q->dcounts, d, tmp)
    {
        HASH_DEL(q->dcounts, d);
        free(d);
    }
}

void
queue_ack(struct queue *q, struct qentry e)
{
    if (q->stream) {
        stream__ack(q, e);
        return;
    }
    WR_ASSERT(q->unacked > 0);
    q->unacked--;
    q->stat_ack++;
    if (q->dcounts)
        dcount_forget(q, e.id);
    if (q->vh->moves)
        vhost__settle_moves(q->vh, e.msg, false);
    /* After a queue delete, the delete record covers it. */
    if (!q->deleted)
        drop_entry(q, e, true);
    else
        message_unref(e.msg);
    queue_unref(q);
}

void
queue_reject(struct queue *q, struct qentry e)
{
    if (!q->deleted)
        deadletter__add(q, e.msg, DL_REJECTED);
    queue_ack(q, e);
}

void
queue_requeue(struct queue *q, struct qentry e)
{
    if (q->stream) {
        stream__requeue(q, e);
        return;
    }
    WR_ASSERT(q->unacked > 0);
    q->unacked--;
    if (q->deleted || is_lost(q, e.id)) {
        /* gone, or never on disk after the log failed (nacked) */
        message_unref(e.msg);
    } else if (q->quorum && dcount_over(q, e.id)) {
        q->unacked++; /* queue_ack settles it */
        q->stat_ack--;
        deadletter__add(q, e.msg, DL_DELIVERY_LIMIT);
        queue_ack(q, e);
        return;
    } else {
        if (q->vh->moves)
            vhost__settle_moves(q->vh, e.msg, true);
        e.id |= QE_REDELIVERED;
        qd_insert_sorted(&q->ready, e);
        q->ready_bytes += e.msg->body_size;
        queue__mem(q, (int64_t)e.msg->body_size);
        if (q->nconsumers)
            queue_schedule(q);
    }
    queue_unref(q);
}

uint32_t
queue__drop_ready(struct queue *q, bool log_acks)
{
    struct qentry e;
    uint32_t n = 0;

    while (qd_pop_front(&q->ready, &e)) {
        if (!(e.id & QE_PAGED))
            queue__mem(q, -(int64_t)e.msg->body_size);
        drop_entry(q, e, log_acks);
        n++;
    }
    q->ready_bytes = 0;
    q->ready_paged = 0;
    qd_maybe_shrink(&q->ready);
    /* Counts of messages no longer in the queue go too (the others come
     * back with their deliveries). */
    if (q->unacked == 0)
        dcounts_free(q);
    return n;
}

uint32_t
queue__drop_lost(struct queue *q, uint64_t from)
{
    size_t k = 0, n = q->ready.n;

    WR_ASSERT(from == q->vh->lost_from);
    for (size_t i = 0; i < n; i++) {
        struct qentry e = *qd_at(&q->ready, i);

        if (!is_lost(q, e.id)) {
            *qd_at(&q->ready, k++) = e;
            continue;
        }
        /* a paged entry's size is in its unwritten record: not counted */
        if (!(e.id & QE_PAGED)) {
            queue__mem(q, -(int64_t)e.msg->body_size);
            q->ready_bytes -= WR_MIN(q->ready_bytes, e.msg->body_size);
        }
        drop_entry(q, e, false);
    }
    q->ready.n = k;
    if (k == 0) {
        ring_clear(&q->ready);
        q->ready_bytes = 0;
    }
    return (uint32_t)(n - k);
}

uint32_t
queue_purge(struct queue *q)
{
    return queue__drop_ready(q, true);
}

/* ---- dispatch */

void
queue_schedule(struct queue *q)
{
    if (q->dirty || q->deleted)
        return;
    q->dirty = true;
    queue_ref(q);
    node__schedule(q->vh->node, q);
}

void
queue_dispatch(struct queue *q)
{
    struct consumer *c;
    struct qentry e;

    if (q->stream) {
        stream__dispatch(q);
        return;
    }
    if (q->may_expire)
        queue_expire(q);
    while (!q->deleted && load_head(q) && (c = queue__pick_consumer(q))) {
        if (q->may_expire) {
            queue_expire(q);
            if (!load_head(q))
                break;
        }
        pop_head(q, &e);
        q->stat_deliver++;
        if (e.id & QE_REDELIVERED)
            q->stat_redeliver++;
        if (!c->no_ack) {
            queue__track(q);
        } else if (e.id & QE_INSTORE) {
            vhost__log_ack(q->vh, q, e.id);
            e.id &= ~QE_INSTORE;
        }
        c->delivered++;
        if (c->no_ack && q->dcounts) {
            /* the count goes with the delivery, then the message left */
            c->ops->deliver(c, q, e);
            dcount_forget(q, e.id);
            continue;
        }
        c->ops->deliver(c, q, e);
    }
    if (!q->deleted)
        qd_maybe_shrink(&q->ready);
}
