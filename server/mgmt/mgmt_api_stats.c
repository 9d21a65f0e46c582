/*
 * mgmt_api_stats.c: message rates and node totals for the management
 * API, sampled on a timer (the Prometheus pages are mgmt_metrics.c).
 *
 * The AMQP hot path only increments the queues' own counters
 * (stat_publish, stat_deliver, stat_ack, stat_redeliver, stat_expired);
 * nothing here runs per message. Every MGMT_SAMPLE_INTERVAL seconds the
 * sampler walks every queue and keeps, per queue, the counters of the
 * previous sample: a rate is (now - then) / interval, as RabbitMQ's
 * "basic" rates mode reports over its 5 s collection interval.
 *
 * Each sample holds a reference on its queue, so a queue deleted between
 * two samples is still readable at the next one: its final counters are
 * folded into `retired`, which keeps the node-wide totals monotonic when
 * queues come and go. A sample therefore keeps a deleted queue's struct
 * (not its messages) for at most one interval.
 *
 * Channels and connections are sampled the same way, keyed by the
 * connection's id (never reused) and the channel's number, so that a
 * sample needs no reference: one not seen at a sample is dropped. Their
 * counters (struct chan_stats, the connections' octets) are plain
 * increments where things happen (server/). A channel that closes hands
 * its counters to srv->chans_retired, so node-wide channel totals stay
 * monotonic. Exchanges keep their sampled counters and rates in their
 * own struct (exchange.h's sampled_*, rate_*), written only here.
 *
 * A sample of 100,000 queues takes tens of milliseconds, so it does not
 * run in one go: the timer takes a reference on every queue (the walk),
 * and a zero-delay timer samples WALK_SLICE of them per loop iteration;
 * the node totals and rates change when the walk is done. A queue
 * deleted meanwhile is skipped. The first sample, at start, runs whole.
 * The walk's array (struct mgmt_qset, each queue referenced) is kept
 * until the next walk ends: the Prometheus pages of a large node list
 * its queues from it instead of walking 100,000 queues at once. The
 * timer is half a second out of phase with the loop's once-a-second
 * expiry sweep, so that the two never add up in one iteration.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <utlist.h>

enum { C_PUBLISH, C_DELIVER, C_ACK, C_REDELIVER, C_EXPIRED, C_N };

#define WALK_SLICE 4096 /* queues sampled per loop iteration */

struct qsample {
    struct queue *q; /* key; holds a reference */
    uint64_t c[C_N]; /* counters at the last sample */
    uint32_t ready, unacked;
    float rate[C_N];
    float rready, runacked;
    uint32_t seen; /* sampler generation */
    UT_hash_handle hh;
};

/* A channel's counters, in struct chan_stats order (chan_counters). */
enum {
    K_PUBLISH,
    K_CONFIRM,
    K_RETURN,
    K_DROP,
    K_DELIVER,
    K_DELIVER_NOACK,
    K_GET,
    K_GET_NOACK,
    K_GET_EMPTY,
    K_REDELIVER,
    K_ACK,
    K_N
};

/* A channel (key: conn id << 16 | number) or a connection (key: its id,
 * c[0] and c[1] its octets received and sent). */
struct osample {
    uint64_t key;
    uint64_t c[K_N];
    float rate[K_N];
    uint32_t seen;
    UT_hash_handle hh;
};

static struct {
    bool running;
    struct server *s;
    ev_timer timer;
    ev_tstamp last;
    uint32_t gen;
    struct qsample *samples;
    uint64_t retired[C_N];   /* counters of queues that are gone */
    uint64_t total[C_N];     /* node-wide, as of the last sample */
    double total_rate[C_N];  /* per second, over the last interval */
    uint64_t ready, unacked; /* node-wide, as of the last sample */
    double rready, runacked;
    uint64_t started_ms;
    struct osample *chans, *conns;
    uint64_t ch_total[K_N]; /* every channel's, as of the last sample */
    double ch_rate[K_N];
    uint64_t churn[MGMT_CHURN_N]; /* as of the last sample */
    double churn_rate[MGMT_CHURN_N];
    /* the walk in progress (see the header) */
    bool walking;
    ev_timer step;
    struct mgmt_qset *walk;  /* the queues of the walk in progress */
    struct mgmt_qset *known; /* those of the last walk done */
    size_t wi;
    double wdt;
    uint64_t wsum[C_N];
    uint64_t wready, wunacked;
} st;

static void
counters_of(const struct queue_info *qi, uint64_t c[C_N])
{
    c[C_PUBLISH] = qi->stat_publish;
    c[C_DELIVER] = qi->stat_deliver;
    c[C_ACK] = qi->stat_ack;
    c[C_REDELIVER] = qi->stat_redeliver;
    c[C_EXPIRED] = qi->stat_expired;
}

static void
sample_queue(struct queue *q, double dt, uint64_t sum[C_N])
{
    struct queue_info qi;
    struct qsample *s;
    uint64_t c[C_N];

    queue_info(q, &qi);
    counters_of(&qi, c);
    HASH_FIND_PTR(st.samples, &q, s);
    if (!s) {
        /* New since the last sample: everything it counted happened in
         * this interval (at the first sample, counters say nothing). */
        s = xcalloc(1, sizeof(*s));
        s->q = q;
        queue_ref(q);
        for (int i = 0; i < C_N && st.gen > 1; i++)
            s->rate[i] = (float)((double)c[i] / dt);
        memcpy(s->c, c, sizeof(c));
        s->ready = qi.ready;
        s->unacked = qi.unacked;
        HASH_ADD_PTR(st.samples, q, s);
    } else {
        for (int i = 0; i < C_N; i++) {
            s->rate[i] = (float)((double)(c[i] - s->c[i]) / dt);
            s->c[i] = c[i];
        }
        s->rready = (float)(((double)qi.ready - s->ready) / dt);
        s->runacked = (float)(((double)qi.unacked - s->unacked) / dt);
        s->ready = qi.ready;
        s->unacked = qi.unacked;
    }
    s->seen = st.gen;
    for (int i = 0; i < C_N; i++)
        sum[i] += c[i];
    st.wready += qi.ready;
    st.wunacked += qi.unacked;
}

/* Samples of queues that were not seen: fold their final counters into
 * the retired totals and let the queues go. */
static void
prune(void)
{
    struct qsample *s, *tmp;

    HASH_ITER(hh, st.samples, s, tmp)
    {
        struct queue_info qi;
        uint64_t c[C_N];

        if (s->seen == st.gen)
            continue;
        queue_info(s->q, &qi);
        counters_of(&qi, c);
        for (int i = 0; i < C_N; i++)
            st.retired[i] += c[i];
        HASH_DEL(st.samples, s);
        queue_unref(s->q);
        free(s);
    }
}

static void
chan_counters(const struct chan_stats *cs, uint64_t c[K_N])
{
    c[K_PUBLISH] = cs->publish;
    c[K_CONFIRM] = cs->confirm;
    c[K_RETURN] = cs->return_unroutable;
    c[K_DROP] = cs->drop_unroutable;
    c[K_DELIVER] = cs->deliver;
    c[K_DELIVER_NOACK] = cs->deliver_no_ack;
    c[K_GET] = cs->get;
    c[K_GET_NOACK] = cs->get_no_ack;
    c[K_GET_EMPTY] = cs->get_empty;
    c[K_REDELIVER] = cs->redeliver;
    c[K_ACK] = cs->ack;
}

/* Takes the counters of the object at key: rates since its last sample
 * (for a new one, since it began, as queues). */
static void
osample_take(struct osample **h, uint64_t key, const uint64_t *c, size_t n,
             double dt)
{
    struct osample *s;

    HASH_FIND(hh, *h, &key, sizeof(key), s);
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->key = key;
        HASH_ADD(hh, *h, key, sizeof(s->key), s);
        for (size_t i = 0; i < n && st.gen > 1; i++)
            s->rate[i] = (float)((double)c[i] / dt);
    } else {
        for (size_t i = 0; i < n; i++)
            s->rate[i] =
                c[i] >= s->c[i] ? (float)((double)(c[i] - s->c[i]) / dt) : 0;
    }
    memcpy(s->c, c, n * sizeof(*c));
    s->seen = st.gen;
}

static void
osample_prune(struct osample **h, bool all)
{
    struct osample *s, *tmp;

    HASH_ITER(hh, *h, s, tmp)
    {
        if (!all && s->seen == st.gen)
            continue;
        HASH_DEL(*h, s);
        free(s);
    }
}

static uint64_t
chan_key(uint64_t conn_id, uint16_t number)
{
    return conn_id << 16 | number;
}

/* Connections and channels; node-wide channel totals and their rates. */
static void
sample_conns(double dt)
{
    uint64_t sum[K_N];

    chan_counters(&srv->chans_retired, sum);
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;
        uint64_t oct[2];

        conn_info(c, &ci);
        oct[0] = ci.recv_oct;
        oct[1] = ci.send_oct;
        osample_take(&st.conns, ci.id, oct, 2, dt);
        for (struct channel *ch = chan_next(c, NULL); ch;
             ch = chan_next(c, ch)) {
            struct chan_info chi;
            uint64_t k[K_N];

            chan_info(ch, &chi);
            chan_counters(&chi.stats, k);
            osample_take(&st.chans, chan_key(ci.id, chi.number), k, K_N, dt);
            for (int i = 0; i < K_N; i++)
                sum[i] += k[i];
        }
    }
    osample_prune(&st.conns, false);
    osample_prune(&st.chans, false);
    for (int i = 0; i < K_N; i++) {
        st.ch_rate[i] = sum[i] >= st.ch_total[i]
                            ? (double)(sum[i] - st.ch_total[i]) / dt
                            : 0;
        st.ch_total[i] = sum[i];
    }
}

/* The churn counters, in mgmt_churn_names order. */
static void
churn_counters(uint64_t c[MGMT_CHURN_N])
{
    uint64_t created, deleted;

    node_queue_churn(srv->node, &created, &deleted);
    c[0] = srv->conns_opened;
    c[1] = srv->conns_closed;
    c[2] = srv->chans_opened;
    c[3] = srv->chans_closed;
    c[4] = srv->queues_declared;
    c[5] = created;
    c[6] = deleted;
}

static void
sample_churn(double dt)
{
    uint64_t c[MGMT_CHURN_N];

    churn_counters(c);
    for (int i = 0; i < MGMT_CHURN_N; i++) {
        st.churn_rate[i] = st.gen > 1 ? (double)(c[i] - st.churn[i]) / dt : 0;
        st.churn[i] = c[i];
    }
}

/* Exchanges keep their own sampled counters (exchange.h). */
static void
sample_exchanges(struct vhost *vh, double dt)
{
    struct exchange *x = NULL;

    while ((x = vhost_exchange_next(vh, x)) != NULL) {
        x->rate_in = (float)((double)(x->stat_publish_in - x->sampled_in) / dt);
        x->rate_out =
            (float)((double)(x->stat_publish_out - x->sampled_out) / dt);
        x->sampled_in = x->stat_publish_in;
        x->sampled_out = x->stat_publish_out;
    }
}

/* Begins a walk: a reference on every queue, and the exchanges'
 * rates (few, sampled at once). */
static void
walk_begin(double dt)
{
    size_t n, cap = 0;
    struct vhost **vs = mgmt_vhosts(&n);

    for (size_t i = 0; i < n; i++) {
        struct vhost_info vi;

        vhost_info(vs[i], &vi);
        cap += vi.queues;
    }
    st.walk = xmalloc(sizeof(*st.walk) + (cap + 1) * sizeof(st.walk->q[0]));
    st.walk->refs = 1;
    st.walk->n = st.wi = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL && st.walk->n < cap) {
            queue_ref(q);
            st.walk->q[st.walk->n++] = q;
        }
        sample_exchanges(vs[i], dt);
    }
    free(vs);
    st.gen++;
    st.wdt = dt;
    memset(st.wsum, 0, sizeof(st.wsum));
    st.wready = st.wunacked = 0;
    st.walking = true;
}

/* Samples up to max more queues of the walk; true when all are done. */
static bool
walk_step(size_t max)
{
    size_t n = st.walk->n, end = n - st.wi > max ? st.wi + max : n;

    for (; st.wi < end; st.wi++) {
        struct queue *q = st.walk->q[st.wi];
        struct queue_info qi;

        queue_info(q, &qi);
        if (!qi.deleted)
            sample_queue(q, st.wdt, st.wsum);
    }
    return st.wi == n;
}

/* The walk is done: drop the samples of queues that are gone, sample the
 * connections and channels, and make the node totals and rates. */
static void
walk_end(void)
{
    double dt = st.wdt;
    uint64_t prev_ready = st.ready, prev_unacked = st.unacked;

    if (st.known)
        mgmt_qset_unref(st.known);
    st.known = st.walk;
    st.walk = NULL;
    st.walking = false;
    prune();
    sample_conns(dt);
    sample_churn(dt);
    for (int i = 0; i < C_N; i++) {
        uint64_t t = st.wsum[i] + st.retired[i];

        st.total_rate[i] =
            t >= st.total[i] ? (double)(t - st.total[i]) / dt : 0;
        st.total[i] = t;
    }
    st.ready = st.wready;
    st.unacked = st.wunacked;
    st.rready = ((double)st.ready - (double)prev_ready) / dt;
    st.runacked = ((double)st.unacked - (double)prev_unacked) / dt;
}

static void
step_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    if (!walk_step(WALK_SLICE)) {
        ev_timer_set(w, 0., 0.);
        ev_timer_start(loop, w);
        return;
    }
    walk_end();
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_tstamp now = ev_now(loop);
    double dt = now - st.last;

    (void)w;
    (void)revents;
    if (dt < 0.5 || st.walking)
        return;
    walk_begin(dt);
    st.last = now;
    ev_timer_set(&st.step, 0., 0.);
    ev_timer_start(loop, &st.step);
}

void
mgmt_stats_start(struct server *s)
{
    memset(&st, 0, sizeof(st));
    st.s = s;
    st.running = true;
    st.started_ms = wr_now_ms();
    st.last = ev_now(s->loop);
    ev_init(&st.step, step_cb);
    walk_begin(MGMT_SAMPLE_INTERVAL);
    walk_step(SIZE_MAX);
    walk_end();
    memset(st.total_rate, 0, sizeof(st.total_rate));
    memset(st.ch_rate, 0, sizeof(st.ch_rate));
    st.rready = st.runacked = 0;
    ev_timer_init(&st.timer, timer_cb, MGMT_SAMPLE_INTERVAL + 0.5,
                  MGMT_SAMPLE_INTERVAL);
    ev_timer_start(s->loop, &st.timer);
}

void
mgmt_stats_stop(void)
{
    struct qsample *s, *tmp;

    if (!st.running)
        return;
    ev_timer_stop(st.s->loop, &st.timer);
    ev_timer_stop(st.s->loop, &st.step);
    if (st.walk)
        mgmt_qset_unref(st.walk);
    if (st.known)
        mgmt_qset_unref(st.known);
    st.walk = st.known = NULL;
    st.walking = false;
    HASH_ITER(hh, st.samples, s, tmp)
    {
        HASH_DEL(st.samples, s);
        queue_unref(s->q);
        free(s);
    }
    osample_prune(&st.chans, true);
    osample_prune(&st.conns, true);
    st.running = false;
}

void
mgmt_stats_queue(const struct queue *q, struct mgmt_qrates *out)
{
    struct qsample *s = NULL;

    memset(out, 0, sizeof(*out));
    if (st.running)
        HASH_FIND_PTR(st.samples, &q, s);
    if (!s)
        return;
    out->publish = s->rate[C_PUBLISH];
    out->deliver = s->rate[C_DELIVER];
    out->ack = s->rate[C_ACK];
    out->redeliver = s->rate[C_REDELIVER];
    out->ready = s->rready;
    out->unacked = s->runacked;
}

void
mgmt_stats_totals(struct mgmt_totals *out)
{
    memset(out, 0, sizeof(*out));
    out->publish = st.total[C_PUBLISH];
    out->deliver = st.total[C_DELIVER];
    out->ack = st.total[C_ACK];
    out->redeliver = st.total[C_REDELIVER];
    out->expired = st.total[C_EXPIRED];
    out->publish_rate = st.total_rate[C_PUBLISH];
    out->deliver_rate = st.total_rate[C_DELIVER];
    out->ack_rate = st.total_rate[C_ACK];
    out->redeliver_rate = st.total_rate[C_REDELIVER];
    out->ready = st.ready;
    out->unacked = st.unacked;
    out->ready_rate = st.rready;
    out->unacked_rate = st.runacked;
}

void
mgmt_stats_vhost(struct vhost *vh, struct mgmt_vtotals *t)
{
    struct vhost_info vi;
    struct queue *q = NULL;

    vhost_info(vh, &vi);
    t->exchanges += vi.exchanges;
    t->queues += vi.queues;
    while ((q = vhost_queue_next(vh, q)) != NULL) {
        struct mgmt_qrates rt;
        struct queue_info qi;

        queue_info(q, &qi);
        mgmt_stats_queue(q, &rt);
        t->consumers += qi.consumers;
        t->ready += qi.ready;
        t->unacked += qi.unacked;
        t->publish += qi.stat_publish;
        t->deliver += qi.stat_deliver;
        t->ack += qi.stat_ack;
        t->redeliver += qi.stat_redeliver;
        t->expired += qi.stat_expired;
        t->rates.publish += rt.publish;
        t->rates.deliver += rt.deliver;
        t->rates.ack += rt.ack;
        t->rates.redeliver += rt.redeliver;
        t->rates.ready += rt.ready;
        t->rates.unacked += rt.unacked;
    }
}

uint64_t
mgmt_stats_uptime_ms(void)
{
    return st.started_ms ? wr_now_ms() - st.started_ms : 0;
}

/* A sample's rate i, 0 when there is none. */
static double
osample_rate(struct osample *h, uint64_t key, int i)
{
    struct osample *s = NULL;

    if (st.running)
        HASH_FIND(hh, h, &key, sizeof(key), s);
    return s ? s->rate[i] : 0;
}

void
mgmt_stats_conn(uint64_t conn_id, double *recv_rate, double *send_rate)
{
    *recv_rate = osample_rate(st.conns, conn_id, 0);
    *send_rate = osample_rate(st.conns, conn_id, 1);
}

void
mgmt_stats_channel(uint64_t conn_id, uint16_t number,
                   double rate[MGMT_CH_COUNTERS])
{
    for (int i = 0; i < K_N; i++)
        rate[i] = osample_rate(st.chans, chan_key(conn_id, number), i);
}

void
mgmt_stats_channels(struct chan_stats *sum, uint64_t *channels,
                    uint64_t *consumers)
{
    *sum = srv->chans_retired;
    *channels = *consumers = 0;
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        for (struct channel *ch = chan_next(c, NULL); ch;
             ch = chan_next(c, ch)) {
            struct chan_info ci;
            const struct chan_stats *k = &ci.stats;

            chan_info(ch, &ci);
            ++*channels;
            *consumers += ci.consumers;
            sum->publish += k->publish;
            sum->confirm += k->confirm;
            sum->return_unroutable += k->return_unroutable;
            sum->drop_unroutable += k->drop_unroutable;
            sum->deliver += k->deliver;
            sum->deliver_no_ack += k->deliver_no_ack;
            sum->get += k->get;
            sum->get_no_ack += k->get_no_ack;
            sum->get_empty += k->get_empty;
            sum->redeliver += k->redeliver;
            sum->ack += k->ack;
        }
    }
}

void
mgmt_stats_channel_rates(double rate[MGMT_CH_COUNTERS])
{
    for (int i = 0; i < K_N; i++)
        rate[i] = st.ch_rate[i];
}

json_t *
mgmt_chan_message_stats(const struct chan_stats *k,
                        const double rate[MGMT_CH_COUNTERS])
{
    const struct {
        const char *name;
        uint64_t n;
        double rate;
    } f[] = {
        {"publish", k->publish, rate[K_PUBLISH]},
        {"confirm", k->confirm, rate[K_CONFIRM]},
        {"return_unroutable", k->return_unroutable, rate[K_RETURN]},
        {"drop_unroutable", k->drop_unroutable, rate[K_DROP]},
        {"deliver", k->deliver, rate[K_DELIVER]},
        {"deliver_no_ack", k->deliver_no_ack, rate[K_DELIVER_NOACK]},
        {"get", k->get, rate[K_GET]},
        {"get_no_ack", k->get_no_ack, rate[K_GET_NOACK]},
        {"get_empty", k->get_empty, rate[K_GET_EMPTY]},
        {"deliver_get", k->deliver + k->deliver_no_ack + k->get + k->get_no_ack,
         rate[K_DELIVER] + rate[K_DELIVER_NOACK] + rate[K_GET] +
             rate[K_GET_NOACK]},
        {"redeliver", k->redeliver, rate[K_REDELIVER]},
        {"ack", k->ack, rate[K_ACK]},
    };
    json_t *o = json_object();

    for (size_t i = 0; i < WR_ARRAY_LEN(f); i++) {
        char details[64];

        snprintf(details, sizeof(details), "%s_details", f[i].name);
        json_object_set_new(o, f[i].name, json_integer((json_int_t)f[i].n));
        json_object_set_new(o, details, mgmt_rate(f[i].rate));
    }
    return o;
}

struct mgmt_qset *
mgmt_stats_qset(void)
{
    if (!st.running || !st.known)
        return NULL;
    st.known->refs++;
    return st.known;
}

void
mgmt_qset_unref(struct mgmt_qset *s)
{
    WR_ASSERT(s->refs > 0);
    if (--s->refs > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        queue_unref(s->q[i]);
    free(s);
}

const char *const mgmt_churn_names[MGMT_CHURN_N] = {
    "connection_created", "connection_closed", "channel_created",
    "channel_closed",     "queue_declared",    "queue_created",
    "queue_deleted"};

void
mgmt_stats_churn(uint64_t count[MGMT_CHURN_N], double rate[MGMT_CHURN_N])
{
    churn_counters(count);
    memcpy(rate, st.churn_rate, sizeof(st.churn_rate));
}
