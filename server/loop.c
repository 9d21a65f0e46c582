/*
 * loop.c: the process's one libev loop: listeners, accept, signals, and
 * the prepare pass that ends every loop iteration.
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
 * store thread.
 */
#include "server/server.h"

#include "server/mgmt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utlist.h>
#include <arpa/inet.h>

struct server *srv;

static ev_idle idle_kick;

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
server_pump(struct server *s)
{
    for (int pass = 0; pass < 16; pass++) {
        struct conn *list;

        node_run_dispatch(s->node);
        /* Definitions file and log records go before any reply that
         * announces them leaves. */
        node_flush(s->node);
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
    server_pump(s);
    rearm_expire(s, loop);
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
    if (s->stopping && s->conns == NULL)
        ev_break(loop, EVBREAK_ALL);
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

/* ---- listeners */

/* A new AMQP connection, unless the node is stopping or at
 * connection_max. */
static void
amqp_accept(struct listener *l, int fd, const struct sockaddr_storage *sa)
{
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);

    if (srv->stopping ||
        (srv->cfg->connection_max && srv->nconns >= srv->cfg->connection_max)) {
        if (!srv->stopping && wr_now_ms() - l->last_warn_ms > 1000) {
            l->last_warn_ms = wr_now_ms();
            log_warn("connection_max (%u) reached: refusing connections",
                     srv->cfg->connection_max);
        }
        close(fd);
        return;
    }
    getsockname(fd, (struct sockaddr *)&local, &llen);
    conn_accept(srv, fd, sa, &local);
}

static int
amqp_listener_open(struct server *s, const struct wr_listener *wl,
                   struct listener *l)
{
    const char *h = wl->host[0] ? wl->host : "0.0.0.0", *why;

    if (listener_open(l, s->loop, h, wl->port, 1024, "amqp", amqp_accept,
                      &why) != WR_OK) {
        log_err("cannot listen on %s:%u: %s (is another broker running? "
                "change listeners.tcp.default or use --listen)",
                h, wl->port, why);
        return WR_ERR;
    }
    return WR_OK;
}

static void
expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    node_set_now(srv->node, (uint64_t)(ev_now(loop) * 1e6));
    node_expire(srv->node);
    server_pump(srv); /* dead letters of expired messages */
}

/* consumer_timeout (RabbitMQ's, default 30 minutes): a channel whose
 * oldest unacknowledged delivery is older than that is closed with 406,
 * which requeues its deliveries. Deliveries are in tag order, so the
 * oldest is the first live one. */
static void
ack_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    uint64_t limit = (uint64_t)srv->cfg->consumer_timeout_ms * 1000u;
    uint64_t now = (uint64_t)(ev_now(loop) * 1e6);
    struct conn *c, *ctmp;
    struct channel *ch, *tmp;

    (void)w;
    (void)revents;
    node_set_now(srv->node, now);
    DL_FOREACH_SAFE(srv->conns, c, ctmp)
    {
        HASH_ITER(hh, c->channels, ch, tmp)
        {
            unacked_compact(&ch->unacked);
            if (ch->state != CH_OPEN || ch->unacked.r.n == 0 ||
                now - unacked_at(&ch->unacked, 0)->at_us <= limit)
                continue;
            chan_fail(ch, AMQP_PRECONDITION_FAILED, 0,
                      "delivery acknowledgement on channel %u timed out. "
                      "Timeout value used: %u ms. This timeout value can "
                      "be configured, see consumers doc guide to learn more",
                      ch->id, srv->cfg->consumer_timeout_ms);
        }
    }
}

/* ---- shutdown */

static void
shutdown_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = srv;

    (void)revents;
    if (s->stopping)
        return;
    log_info("received %s, closing %u connection(s) and shutting down",
             w->signum == SIGTERM ? "SIGTERM" : "SIGINT", s->nconns);
    s->stopping = true;
    notify_stopping();
    for (size_t i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    s->nlisteners = 0;
    conn_force_close_all(s, "shutdown");
    /* Give clients a moment to answer close-ok; then go anyway. */
    ev_timer_init(&s->shutdown_timer, shutdown_timeout_cb, 3.0, 0.);
    ev_timer_start(loop, &s->shutdown_timer);
}

uint64_t
server_total_ram(const struct wr_config *cfg)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

    if (cfg->total_memory_available_override)
        return cfg->total_memory_available_override;
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size
                                 : UINT64_C(1) << 30;
}

uint64_t
server_memory_watermark(const struct wr_config *cfg)
{
    if (cfg->vm_memory_high_watermark_absolute)
        return cfg->vm_memory_high_watermark_absolute;
    return (uint64_t)(cfg->vm_memory_high_watermark_relative *
                      (double)server_total_ram(cfg));
}

/* Memory for message bodies before queues page to disk: the configured
 * queue_memory_budget, else half the memory high watermark (so paging
 * starts well before the alarm blocks publishers). */
uint64_t
server_memory_budget(const struct wr_config *cfg)
{
    return cfg->memory_budget ? cfg->memory_budget
                              : server_memory_watermark(cfg) / 2;
}

/* Store threads: wake the loop (ev_async_send is thread-safe). */
static void
store_wake(void *arg)
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
}

static void
durable_cb(void *arg, struct vhost *vh)
{
    (void)arg;
    chan_durable_advanced(vh);
}

/* A first start: the default user, with its tags and permissions on the
 * default vhost (RabbitMQ's default_user, default_pass, default_user_tags,
 * default_permissions). */
static int
create_defaults(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    struct vherr err;
    struct buf tags;
    int rc;

    buf_init(&tags);
    for (size_t i = 0; i < cfg->ndefault_user_tags; i++)
        buf_printf(&tags, "%s%s", i ? "," : "", cfg->default_user_tags[i]);
    buf_put_u8(&tags, 0);
    rc = node_user_put(s->node, cfg->default_user, cfg->default_pass, NULL,
                       NULL, (const char *)tags.data, &err);
    buf_fini(&tags);
    if (rc == WR_OK)
        rc = node_perm_set(s->node, cfg->default_vhost, cfg->default_user,
                           cfg->default_perm_configure, cfg->default_perm_write,
                           cfg->default_perm_read, &err);
    if (rc != WR_OK)
        log_err("cannot create the default user '%s': %s", cfg->default_user,
                err.text);
    return rc;
}

/* load_definitions: a RabbitMQ definitions file imported at every boot,
 * as RabbitMQ does. */
static int
load_definitions(struct server *s, const char *path)
{
    json_error_t jerr;
    struct vherr err;
    json_t *doc = json_load_file(path, 0, &jerr);

    if (!doc) {
        log_err("load_definitions: %s:%d: %s", path, jerr.line, jerr.text);
        return WR_ERR;
    }
    if (node_defs_import(s->node, doc, &err) != WR_OK) {
        log_err("load_definitions: %s: %s", path, err.text);
        json_decref(doc);
        return WR_ERR;
    }
    json_decref(doc);
    log_info("imported definitions from %s", path);
    return WR_OK;
}

int
server_init(struct server *s, struct wr_config *cfg, bool repair)
{
    struct node_opts opts = {0};
    char err[1024];

    memset(s, 0, sizeof(*s));
    srv = s;
    s->cfg = cfg;
    s->loop = ev_default_loop(EVFLAG_AUTO);
    opts.data_dir = cfg->data_dir;
    opts.fsync = cfg->fsync;
    opts.fsync_interval_ms = cfg->fsync_interval_ms;
    opts.segment_size = cfg->segment_size;
    opts.memory_budget = server_memory_budget(cfg);
    opts.repair = repair;
    opts.wake = store_wake;
    opts.wake_arg = s;
    opts.durable = durable_cb;
    opts.durable_arg = s;
    ev_async_init(&s->store_wake, store_async_cb);
    ev_async_start(s->loop, &s->store_wake);
    s->node = node_new(&opts);
    if (node_boot(s->node, cfg->default_vhost, err, sizeof(err)) != WR_OK) {
        log_err("cannot start: %s", err);
        return WR_ERR;
    }
    if (node_is_fresh(s->node) && create_defaults(s) != WR_OK)
        return WR_ERR;
    if (cfg->load_definitions[0] &&
        load_definitions(s, cfg->load_definitions) != WR_OK)
        return WR_ERR;
    alarm_init(s);
    signal(SIGPIPE, SIG_IGN);
    /* Signals first: a supervisor may send SIGTERM as soon as it sees the
     * "listening on" line. */
    ev_signal_init(&s->sigterm, signal_cb, SIGTERM);
    ev_signal_init(&s->sigint, signal_cb, SIGINT);
    ev_signal_start(s->loop, &s->sigterm);
    ev_signal_start(s->loop, &s->sigint);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (amqp_listener_open(s, &cfg->listeners[i], &s->listeners[i]) !=
            WR_OK)
            return WR_ERR;
        s->nlisteners++;
    }
    if (mgmt_start(s) != WR_OK)
        return WR_ERR;
    if (cfg->consumer_timeout_ms) {
        /* Check a few times per timeout, at most once a second and at
         * least once a minute. */
        double every = cfg->consumer_timeout_ms / 4000.0;

        every = every < 1.0 ? 1.0 : every > 60.0 ? 60.0 : every;
        ev_timer_init(&s->ack_timer, ack_timer_cb, every, every);
        ev_timer_start(s->loop, &s->ack_timer);
    }
    ev_timer_init(&s->expire_timer, expire_cb, 1.0, 1.0);
    ev_timer_start(s->loop, &s->expire_timer);
    ev_check_init(&s->check, check_cb);
    ev_check_start(s->loop, &s->check);
    s->sat_since = ev_time();
    ev_prepare_init(&s->prepare, prepare_cb);
    ev_prepare_start(s->loop, &s->prepare);
    ev_idle_init(&idle_kick, idle_cb);
    notify_ready();
    return WR_OK;
}

int
server_run(struct server *s)
{
    ev_run(s->loop, 0);
    return WR_OK;
}

void
server_fini(struct server *s)
{
    struct conn *c;

    while ((c = s->conns) != NULL)
        conn_drop(c, "broker stopped");
    while (s->reap) {
        c = s->reap;
        s->reap = c->reap_next;
        conn_free(c);
    }
    for (size_t i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    mgmt_stop(s);
    node_free(s->node);
    ev_loop_destroy(s->loop);
    log_info("stopped");
}
