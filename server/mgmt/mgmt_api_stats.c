/*
 * mgmt_api_stats.c: message rates and node totals for the management
 * API, sampled on a timer, and the Prometheus text at /metrics.
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
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <utlist.h>

enum { C_PUBLISH, C_DELIVER, C_ACK, C_REDELIVER, C_EXPIRED, C_N };

struct qsample {
    struct queue *q; /* key; holds a reference */
    uint64_t c[C_N]; /* counters at the last sample */
    uint32_t ready, unacked;
    float rate[C_N];
    float rready, runacked;
    uint32_t seen; /* sampler generation */
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
    st.ready += qi.ready;
    st.unacked += qi.unacked;
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
sample(double dt)
{
    uint64_t sum[C_N] = {0}, prev_ready = st.ready, prev_unacked = st.unacked;
    size_t n;
    struct vhost **vs = mgmt_vhosts(&n);

    st.gen++;
    st.ready = st.unacked = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL)
            sample_queue(q, dt, sum);
    }
    free(vs);
    prune();
    for (int i = 0; i < C_N; i++) {
        uint64_t t = sum[i] + st.retired[i];

        st.total_rate[i] =
            t >= st.total[i] ? (double)(t - st.total[i]) / dt : 0;
        st.total[i] = t;
    }
    st.rready = ((double)st.ready - (double)prev_ready) / dt;
    st.runacked = ((double)st.unacked - (double)prev_unacked) / dt;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_tstamp now = ev_now(loop);
    double dt = now - st.last;

    (void)w;
    (void)revents;
    if (dt < 0.5)
        return;
    sample(dt);
    st.last = now;
}

void
mgmt_stats_start(struct server *s)
{
    memset(&st, 0, sizeof(st));
    st.s = s;
    st.running = true;
    st.started_ms = wr_now_ms();
    st.last = ev_now(s->loop);
    sample(MGMT_SAMPLE_INTERVAL);
    memset(st.total_rate, 0, sizeof(st.total_rate));
    st.rready = st.runacked = 0;
    ev_timer_init(&st.timer, timer_cb, MGMT_SAMPLE_INTERVAL,
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
    HASH_ITER(hh, st.samples, s, tmp)
    {
        HASH_DEL(st.samples, s);
        queue_unref(s->q);
        free(s);
    }
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

/* ---- /metrics */

static void
metric(struct buf *b, const char *name, const char *type, const char *help,
       double value)
{
    buf_printf(b, "# TYPE %s %s\n# HELP %s %s\n%s %.17g\n", name, type, name,
               help, name, value);
}

/* The loop's busy time per iteration, as a Prometheus histogram: what an
 * operator watches for stalls (a client that holds the loop). */
static void
loop_busy_metric(struct buf *b)
{
    static const double upper[] = LOOP_BUSY_BUCKETS;
    const char *name = "warren_loop_busy_seconds";
    uint64_t n = 0;

    buf_printf(b,
               "# TYPE %s histogram\n# HELP %s Time the event loop spent "
               "working per iteration, from waking up to waiting again\n",
               name, name);
    for (size_t i = 0; i < WR_ARRAY_LEN(upper); i++) {
        n += srv->busy_hist[i];
        if (i + 1 < WR_ARRAY_LEN(upper))
            buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, upper[i],
                       (unsigned long long)n);
        else
            buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                       (unsigned long long)n);
    }
    buf_printf(b, "%s_sum %.9f\n%s_count %llu\n", name, srv->busy_sum, name,
               (unsigned long long)n);
}

/* What /metrics counts over the whole node. */
struct node_counts {
    struct mgmt_vtotals v; /* counters: the retired queues' included */
    size_t channels;
};

static void
count_node(struct node_counts *t)
{
    size_t n;
    struct vhost **vs = mgmt_vhosts(&n);

    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++)
        if (vhost_is_serving(vs[i]))
            mgmt_stats_vhost(vs[i], &t->v);
    free(vs);
    t->v.publish += st.retired[C_PUBLISH];
    t->v.deliver += st.retired[C_DELIVER];
    t->v.ack += st.retired[C_ACK];
    t->v.redeliver += st.retired[C_REDELIVER];
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;

        conn_info(c, &ci);
        t->channels += ci.channels;
    }
}

/* rabbitmq_build_info and rabbitmq_identity_info. */
static void
identity_metrics(struct buf *b)
{
    buf_printf(b,
               "# TYPE rabbitmq_build_info untyped\n"
               "# HELP rabbitmq_build_info RabbitMQ & Erlang/OTP version "
               "info\n"
               "rabbitmq_build_info{rabbitmq_version=\"3.10.8\","
               "prometheus_plugin_version=\"3.10.8\",product=\"Warren\","
               "product_version=\"%s\"} 1\n",
               WARREN_VERSION);
    buf_printf(b,
               "# TYPE rabbitmq_identity_info untyped\n"
               "# HELP rabbitmq_identity_info RabbitMQ node & cluster "
               "identity info\n"
               "rabbitmq_identity_info{rabbitmq_node=\"%s\","
               "rabbitmq_cluster=\"%s\"} 1\n",
               mgmt_node_name(), srv->cfg->cluster_name);
}

/* Connections, channels, consumers, queues, exchanges, messages. */
static void
object_metrics(struct buf *b, const struct node_counts *t)
{
    const struct mgmt_vtotals *v = &t->v;
    const struct {
        const char *name, *type, *help;
        double value;
    } m[] = {
        {"rabbitmq_connections", "gauge", "Connections currently open",
         srv->nconns},
        {"rabbitmq_channels", "gauge", "Channels currently open",
         (double)t->channels},
        {"rabbitmq_consumers", "gauge", "Consumers currently connected",
         (double)v->consumers},
        {"rabbitmq_queues", "gauge", "Queues available", (double)v->queues},
        {"rabbitmq_exchanges", "gauge", "Exchanges available",
         (double)v->exchanges},
        {"rabbitmq_queue_messages_ready", "gauge",
         "Messages ready to be delivered to consumers", (double)v->ready},
        {"rabbitmq_queue_messages_unacked", "gauge",
         "Messages delivered to consumers but not yet acknowledged",
         (double)v->unacked},
        {"rabbitmq_queue_messages", "gauge",
         "Sum of ready and unacknowledged messages",
         (double)(v->ready + v->unacked)},
        {"rabbitmq_global_messages_received_total", "counter",
         "Total number of messages received by queues", (double)v->publish},
        {"rabbitmq_global_messages_delivered_total", "counter",
         "Total number of messages delivered to consumers", (double)v->deliver},
        {"rabbitmq_global_messages_acknowledged_total", "counter",
         "Total number of messages acknowledged by consumers", (double)v->ack},
        {"rabbitmq_global_messages_redelivered_total", "counter",
         "Total number of messages redelivered to consumers",
         (double)v->redeliver},
    };

    for (size_t i = 0; i < WR_ARRAY_LEN(m); i++)
        metric(b, m[i].name, m[i].type, m[i].help, m[i].value);
}

/* Memory, disk and the alarms on them. */
static void
resource_metrics(struct buf *b)
{
    struct statvfs sv;

    metric(b, "rabbitmq_process_resident_memory_bytes", "gauge",
           "Memory used in bytes", (double)alarm_resident_bytes());
    metric(b, "rabbitmq_resident_memory_limit_bytes", "gauge",
           "Memory high watermark in bytes",
           (double)alarm_memory_watermark(srv->cfg));
    if (statvfs(srv->cfg->data_dir, &sv) == 0)
        metric(b, "rabbitmq_disk_space_available_bytes", "gauge",
               "Disk space available in bytes",
               (double)sv.f_bavail * (double)sv.f_frsize);
    metric(b, "rabbitmq_alarms_memory_used_watermark", "gauge",
           "is 1 if VM memory watermark alarm is in effect",
           (srv->alarms & ALARM_MEMORY) ? 1 : 0);
    metric(b, "rabbitmq_alarms_free_disk_space_watermark", "gauge",
           "is 1 if free disk space watermark alarm is in effect",
           (srv->alarms & ALARM_DISK) ? 1 : 0);
}

void
mgmt_api_metrics(struct mgmt_req *r)
{
    struct node_counts t;

    count_node(&t);
    identity_metrics(&r->out);
    object_metrics(&r->out, &t);
    resource_metrics(&r->out);
    loop_busy_metric(&r->out);
    r->status = 200;
    mgmt_http_respond(r, "text/plain; version=0.0.4; charset=utf-8");
}
