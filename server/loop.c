/*
 * loop.c: the process's one libev loop: what happens in every iteration,
 * and the loop's own watchers (expiry, consumer timeout, store wake-ups).
 *
 * Order within one iteration (the contract every handler relies on):
 *   1. I/O callbacks read and handle input, appending replies and
 *      deliveries to output queues, scheduling queues for dispatch;
 *   2. prepare: dispatch every scheduled queue (node_run_dispatch);
 *   3. prepare: for each pending connection, emit coalesced confirms and
 *      writev its output once;
 *   4. prepare: repeat 2-3 while that produced more work (bounded), then
 *      free the connections closed during the iteration.
 * Nothing here blocks: sockets are non-blocking and disk syncs run on the
 * store thread, which wakes the loop through store_wake.
 */
#include "server/channel.h"

#include "cluster/cluster.h"

#include <assert.h>
#include <math.h>
#include <utlist.h>

struct server *srv;

static ev_idle idle_kick;
/* Fires when the earliest delayed message (x-delayed-message) is due. */
static ev_timer delay_timer;

static void
idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    ev_idle_stop(loop, w);
}

/*
 * Steps 2-5 of an iteration: dispatch scheduled queues, hand log records
 * and definitions to disk, then writev every pending connection; again
 * while that produced more work (bounded). Runs in the prepare hook and
 * after every read callback, so that an ack turns into the next
 * deliveries at once instead of waiting for every other connection's
 * input of the iteration (a consumer's prefetch window refills as fast
 * as its acks arrive).
 */
void
loop_pump(struct server *s)
{
    /* no confirm or delivery past the lease's deadline (issue 12) */
    if (s->cluster)
        cluster_fence(s->cluster);
    for (int pass = 0; pass < 16; pass++) {
        struct conn *list;

        node_run_dispatch(s->node);
        /* publishers whose queues this dispatch drained go on now */
        flow_check(s);
        /* Definitions file and log records go before any reply that
         * announces them leaves. */
        /* deletions in the marks before the hand-off (none unclustered) */
        repl_before_flush(s);
        node_flush(s->node);
        if (s->cluster)
            repl_pump(s);
        if (!s->pending)
            break;
        list = s->pending;
        s->pending = NULL;
        while (list) {
            struct conn *c = list;

            list = c->pending_next;
            c->on_pending = false;
            conn_flush(c);
        }
    }
}

/* The expire timer sweeps once a second, and fires earlier when the
 * node knows a message or a queue expires sooner (message TTL,
 * x-expires), so expiry and its dead letters are on time. */
static void
rearm_expire(struct server *s, struct ev_loop *loop)
{
    uint64_t t = node_next_expiry(s->node);
    double at, due;

    if (t == UINT64_MAX)
        return;
    at = (double)t / 1e6;
    due = ev_now(loop) + ev_timer_remaining(loop, &s->expire_timer);
    if (at >= due - 0.0005)
        return;
    ev_timer_stop(loop, &s->expire_timer);
    ev_timer_set(&s->expire_timer, WR_MAX(at - ev_now(loop), 0.0), 1.0);
    ev_timer_start(loop, &s->expire_timer);
}

/* One timer for every delayed message: set to the earliest due time,
 * measured from the real time now (not the loop's iteration start), and
 * left alone when it already fires within half a millisecond of it. */
static void
rearm_delay(struct server *s, struct ev_loop *loop)
{
    int64_t wait = node_delay_wait_us(s->node);
    double after, at;

    if (wait < 0) {
        ev_timer_stop(loop, &delay_timer);
        return;
    }
    after = (double)wait / 1e6 + (ev_time() - ev_now(loop));
    at = ev_now(loop) + after;
    if (ev_is_active(&delay_timer) &&
        fabs(ev_now(loop) + ev_timer_remaining(loop, &delay_timer) - at) <
            0.0005)
        return;
    ev_timer_stop(loop, &delay_timer);
    ev_timer_set(&delay_timer, WR_MAX(after, 0.0), 0.0);
    ev_timer_start(loop, &delay_timer);
}

static void
delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    node_set_now(srv->node, (uint64_t)(ev_now(loop) * 1e6));
    node_run_delays(srv->node);
    loop_pump(srv); /* their queues dispatch now */
}

/* One iteration kept the loop busy for `busy` seconds. */
static void
loop_busy_note(struct server *s, double busy)
{
    static const double upper[] = LOOP_BUSY_BUCKETS;
    size_t i = 0;

    static_assert(WR_ARRAY_LEN(upper) == WR_ARRAY_LEN(s->busy_hist),
                  "one count per bucket");
    while (busy > upper[i])
        i++;
    s->busy_hist[i]++;
    s->busy_sum += busy;
}

static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct server *s = srv;

    (void)w;
    (void)revents;
    node_set_now(s->node, (uint64_t)(ev_now(loop) * 1e6));
    alarm_check_flow(s);
    loop_pump(s);
    rearm_expire(s, loop);
    rearm_delay(s, loop);
    s->prepared_at = ev_time();
    if (s->woke_at > 0)
        loop_busy_note(s, s->prepared_at - s->woke_at);
    while (s->reap) {
        struct conn *c = s->reap;

        s->reap = c->reap_next;
        conn_free(c);
    }
    if (s->pending || s->yielded || node_has_dispatch(s->node))
        ev_idle_start(loop, &idle_kick);
    if (s->stopping && s->conns == NULL && !s->loop_ended) {
        s->loop_ended = true;
        ev_break(loop, EVBREAK_ALL);
    }
}

/* Right after the loop woke up: how long it waited (saturation), and
 * the input of connections that used up their slice last time. */
static void
check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    double now = ev_time();

    (void)w;
    (void)revents;
    srv->woke_at = now;
    if (srv->prepared_at > 0)
        alarm_loop_waited(srv, now - srv->prepared_at, now);
    if (srv->yielded) {
        node_set_now(srv->node, (uint64_t)(ev_now(loop) * 1e6));
        conn_resume_yielded(srv);
    }
}

static void
expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    node_set_now(srv->node, (uint64_t)(ev_now(loop) * 1e6));
    node_expire(srv->node);
    loop_pump(srv); /* dead letters of expired messages */
}

/* consumer_timeout (RabbitMQ's, default 30 minutes): a channel whose
 * oldest unacknowledged delivery is older than that is closed with 406,
 * which requeues its deliveries. */
static void
ack_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    uint64_t limit = (uint64_t)srv->cfg->consumer_timeout_ms * 1000u;
    uint64_t now = (uint64_t)(ev_now(loop) * 1e6);
    struct conn *c, *tmp;

    (void)w;
    (void)revents;
    node_set_now(srv->node, now);
    DL_FOREACH_SAFE(srv->conns, c, tmp)
    {
        conn_check_consumer_timeout(c, now, limit);
    }
}

/* Store threads: wake the loop (ev_async_send is thread-safe). */
void
loop_store_wake(void *arg)
{
    struct server *s = arg;

    ev_async_send(s->loop, &s->store_wake);
}

static void
store_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    node_poll(srv->node);
    if (srv->cluster)
        repl_poll(srv);
}

static void
durable_cb(void *arg, struct vhost *vh)
{
    (void)arg;
    publish_durable_advanced(vh);
}

/* A vhost goes (deleted by management or the cluster, or the node's
 * model freed): its replication must not outlive it. */
static void
dropping_cb(void *arg, struct vhost *vh, bool deleted)
{
    struct server *s = arg;

    if (!s->cluster)
        return;
    repl_own_forget(vh);
    if (deleted)
        repl_forget(s, vhost_name(vh));
    else
        repl_unlead(s, vhost_name(vh));
}

void
loop_node_hooks(struct server *s, struct node_opts *opts)
{
    opts->wake = loop_store_wake;
    opts->wake_arg = s;
    opts->durable = durable_cb;
    opts->durable_arg = s;
    opts->dropping = dropping_cb;
    opts->dropping_arg = s;
    ev_async_init(&s->store_wake, store_async_cb);
    ev_async_start(s->loop, &s->store_wake);
}

void
loop_init(struct server *s)
{
    /* Once a second: queues may have ack timeouts of their own
     * (x-consumer-timeout), however long the node's is or without one.
     * A look at a channel is one comparison unless such queues are in
     * use. */
    ev_timer_init(&s->ack_timer, ack_timer_cb, 1.0, 1.0);
    ev_timer_start(s->loop, &s->ack_timer);
    ev_timer_init(&s->expire_timer, expire_cb, 1.0, 1.0);
    ev_timer_start(s->loop, &s->expire_timer);
    ev_check_init(&s->check, check_cb);
    ev_check_start(s->loop, &s->check);
    ev_prepare_init(&s->prepare, prepare_cb);
    ev_prepare_start(s->loop, &s->prepare);
    ev_idle_init(&idle_kick, idle_cb);
    ev_timer_init(&delay_timer, delay_cb, 0.0, 0.0);
}
