/*
 * mgmt_metrics.c: the Prometheus endpoints, with rabbitmq_prometheus's
 * metric names, label names and families:
 *
 *   /metrics               node totals: every object metric summed into
 *                          one unlabelled sample (RabbitMQ's default,
 *                          prometheus.return_per_object_metrics = false)
 *   /metrics/per-object    every metric once per queue, channel,
 *                          connection, exchange, vhost
 *   /metrics/detailed      only the families asked for (family=NAME,
 *                          repeatable), per object, named
 *                          rabbitmq_detailed_*, optionally of one vhost
 *                          (vhost=NAME, repeatable)
 *
 * served on the management port and on the Prometheus listener
 * (prometheus.tcp.port, mgmt_http.c), without login as RabbitMQ.
 *
 * One table (families[]) says, for every metric, its RabbitMQ family
 * (the `family=` of /metrics/detailed), name, type, help, the kind of
 * object it describes and how to read its value from that object's
 * snapshot. The exposition format wants each metric's samples together,
 * so a page walks the table and, for each metric, every object.
 *
 * Large pages are streams (struct mgmt_stream): the request takes a
 * reference on every queue (and copies the few fields of channels,
 * connections, exchanges it needs), and the body is then written
 * FILL_BYTES at a time whenever the HTTP output runs low, one slice per
 * loop iteration, so 100,000 queues never hold the AMQP loop for long.
 * A queue deleted meanwhile is left out; its reference goes at the end.
 * A queue's label text ({vhost="..",queue=".."}, escaped) is built once,
 * in the first queue metric's pass, and reused by the others. On a node
 * with more than LIVE_QUEUES queues, walking them all to take references
 * would itself hold the loop for milliseconds: the page lists the queues
 * of the statistics' last sample instead (mgmt_stats_qset: a queue
 * declared since shows up within two sampling intervals; RabbitMQ's own
 * metrics lag by its collection interval too), and reads each queue's
 * figures live as it writes them. At most MAX_STREAMS pages are written
 * at once (a scrape needs no login, and each page holds memory until its
 * client has read it).
 *
 * What Warren does not break down as RabbitMQ does (said in the README):
 * channel counters are per channel (RabbitMQ: per channel and exchange,
 * per channel and queue), labelled {channel, vhost}; per-queue counters
 * of publishes, deliveries, acks and redeliveries come from the queue.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#define FILL_BYTES   (64u << 10) /* written per fill() call */
#define LIVE_QUEUES  10000       /* above: the sampled queue list */
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- what the metrics read: snapshots */

enum kind { K_NODE, K_QUEUE, K_CHANNEL, K_CONN, K_EXCHANGE, K_VHOST };

/* An object's label text, in the page's label buffer. */
struct lab {
    size_t off, len;
};

struct qsnap {
    struct queue *q; /* holds a reference */
    struct lab lab;  /* built on first use */
};

struct chsnap {
    struct chan_info ci;
    struct lab lab;
};

struct csnap {
    struct conn_info ci;
    struct lab lab;
};

struct xsnap {
    uint64_t in, out;
    struct lab lab;
};

struct vsnap {
    bool serving;
    struct lab lab;
};

/* Node-wide figures, read once per page. */
struct nodefig {
    uint64_t conns, channels, consumers, queues, exchanges;
    struct chan_stats ch; /* every channel that ever was */
    uint64_t q_created, q_deleted;
    uint64_t rss, mem_limit, disk_free, disk_limit;
    uint64_t fds, max_fds;
    double uptime_s;
    bool mem_alarm, disk_alarm;
};

/* A value read from an object's snapshot. */
typedef double value_fn(const void *obj);

struct family {
    const char *group; /* RabbitMQ's family (family= of /detailed) */
    const char *name;  /* after the prefix */
    const char *type;
    const char *help;
    enum kind kind;
    value_fn *value;
    const char *labels; /* fixed labels of a node metric, or NULL */
    const char *prefix; /* NULL: the page's (rabbitmq_, rabbitmq_detailed_);
                           "rabbitmq_" for the cluster-wide ones, "warren_"
                           for Warren's own */
};

/* ---- value readers, one per metric */

#define NODE(fn, expr)               \
    static double fn(const void *o)  \
    {                                \
        const struct nodefig *n = o; \
        (void)n;                     \
        return (double)(expr);       \
    }
#define QUEUE(fn, expr)                  \
    static double fn(const void *o)      \
    {                                    \
        const struct queue_info *qi = o; \
        return (double)(expr);           \
    }
#define CHAN(fn, expr)              \
    static double fn(const void *o) \
    {                               \
        const struct chsnap *s = o; \
        return (double)(expr);      \
    }
#define CONN(fn, expr)              \
    static double fn(const void *o) \
    {                               \
        const struct csnap *s = o;  \
        return (double)(expr);      \
    }

NODE(n_conns_opened, srv->conns_opened)
NODE(n_conns_closed, srv->conns_closed)
NODE(n_chans_opened, srv->chans_opened)
NODE(n_chans_closed, srv->chans_closed)
NODE(n_q_declared, srv->queues_declared)
NODE(n_q_created, n->q_created)
NODE(n_q_deleted, n->q_deleted)
NODE(n_open_fds, n->fds)
NODE(n_open_sockets, n->conns)
NODE(n_rss, n->rss)
NODE(n_disk_free, n->disk_free)
NODE(n_max_fds, n->max_fds)
NODE(n_max_sockets, n->max_fds * 9 / 10)
NODE(n_mem_limit, n->mem_limit)
NODE(n_disk_limit, n->disk_limit)
NODE(n_uptime, n->uptime_s)
NODE(n_mem_alarm, n->mem_alarm)
NODE(n_disk_alarm, n->disk_alarm)
NODE(n_conns, n->conns)
NODE(n_channels, n->channels)
NODE(n_consumers, n->consumers)
NODE(n_queues, n->queues)
NODE(n_exchanges, n->exchanges)
NODE(n_received, n->ch.publish)
NODE(n_routed, n->ch.publish - n->ch.return_unroutable - n->ch.drop_unroutable)
NODE(n_confirmed, n->ch.confirm)
NODE(n_returned, n->ch.return_unroutable)
NODE(n_dropped, n->ch.drop_unroutable)
NODE(n_delivered,
     n->ch.deliver + n->ch.deliver_no_ack + n->ch.get + n->ch.get_no_ack)
NODE(n_del_consume_ack, n->ch.deliver)
NODE(n_del_consume_noack, n->ch.deliver_no_ack)
NODE(n_del_get_ack, n->ch.get)
NODE(n_del_get_noack, n->ch.get_no_ack)
NODE(n_redelivered, n->ch.redeliver)
NODE(n_acked, n->ch.ack)
NODE(n_get_empty, n->ch.get_empty)

QUEUE(q_ready, qi->ready)
QUEUE(q_unacked, qi->unacked)
QUEUE(q_messages, (uint64_t)qi->ready + qi->unacked)
QUEUE(q_consumers, qi->consumers)
QUEUE(q_memory, qi->memory)
QUEUE(q_ram, (uint64_t)qi->ready - qi->ready_paged + qi->unacked)
QUEUE(q_ram_bytes, qi->mem_bytes)
QUEUE(q_ready_ram, qi->ready - qi->ready_paged)
QUEUE(q_unacked_ram, qi->unacked)
QUEUE(q_ready_bytes, qi->ready_bytes)
QUEUE(q_paged_out, qi->ready_paged)
QUEUE(q_published, qi->stat_publish)
QUEUE(q_delivered, qi->stat_deliver)
QUEUE(q_acked, qi->stat_ack)
QUEUE(q_redelivered, qi->stat_redeliver)

CHAN(c_consumers, s->ci.consumers)
CHAN(c_unacked, s->ci.unacked)
CHAN(c_unconfirmed, s->ci.unconfirmed)
CHAN(c_uncommitted, s->ci.uncommitted)
CHAN(c_acks_uncommitted, s->ci.acks_uncommitted)
CHAN(c_consumer_prefetch, s->ci.prefetch_count)
CHAN(c_prefetch, s->ci.global_prefetch_count)
CHAN(c_published, s->ci.stats.publish)
CHAN(c_confirmed, s->ci.stats.confirm)
CHAN(c_returned, s->ci.stats.return_unroutable)
CHAN(c_dropped, s->ci.stats.drop_unroutable)
CHAN(c_get_ack, s->ci.stats.get)
CHAN(c_get, s->ci.stats.get_no_ack)
CHAN(c_delivered_ack, s->ci.stats.deliver)
CHAN(c_delivered, s->ci.stats.deliver_no_ack)
CHAN(c_redelivered, s->ci.stats.redeliver)
CHAN(c_acked, s->ci.stats.ack)
CHAN(c_get_empty, s->ci.stats.get_empty)

CONN(k_in_bytes, s->ci.recv_oct)
CONN(k_out_bytes, s->ci.send_oct)
CONN(k_in_packets, s->ci.recv_cnt)
CONN(k_out_packets, s->ci.send_cnt)
CONN(k_pending, s->ci.send_pend > 0)
CONN(k_channels, s->ci.channels)

static double
x_in(const void *o)
{
    return (double)((const struct xsnap *)o)->in;
}

static double
x_out(const void *o)
{
    return (double)((const struct xsnap *)o)->out;
}

static double
x_one(const void *o)
{
    (void)o;
    return 1;
}

static double
v_status(const void *o)
{
    return ((const struct vsnap *)o)->serving ? 1 : 0;
}

#define AMQP091 "protocol=\"amqp091\""
#define CLUSTER "rabbitmq_" /* cluster-wide: not rabbitmq_detailed_ */
#define WARREN  "warren_"   /* Warren's own, not RabbitMQ's */
#define CLASSIC AMQP091 ",queue_type=\"rabbit_classic_queue\""

/* Every metric, in RabbitMQ's order within each family. */
static const struct family families[] = {
    /* connection_churn_metrics */
    {"connection_churn_metrics", "connections_opened_total", "counter",
     "Total number of connections opened", K_NODE, n_conns_opened, NULL, NULL},
    {"connection_churn_metrics", "connections_closed_total", "counter",
     "Total number of connections closed or terminated", K_NODE, n_conns_closed,
     NULL, NULL},
    {"connection_churn_metrics", "channels_opened_total", "counter",
     "Total number of channels opened", K_NODE, n_chans_opened, NULL, NULL},
    {"connection_churn_metrics", "channels_closed_total", "counter",
     "Total number of channels closed", K_NODE, n_chans_closed, NULL, NULL},
    {"connection_churn_metrics", "queues_declared_total", "counter",
     "Total number of queues declared", K_NODE, n_q_declared, NULL, NULL},
    {"connection_churn_metrics", "queues_created_total", "counter",
     "Total number of queues created", K_NODE, n_q_created, NULL, NULL},
    {"connection_churn_metrics", "queues_deleted_total", "counter",
     "Total number of queues deleted", K_NODE, n_q_deleted, NULL, NULL},
    /* node_coarse_metrics */
    {"node_coarse_metrics", "process_open_fds", "gauge",
     "Open file descriptors", K_NODE, n_open_fds, NULL, NULL},
    {"node_coarse_metrics", "process_open_tcp_sockets", "gauge",
     "Open TCP sockets", K_NODE, n_open_sockets, NULL, NULL},
    {"node_coarse_metrics", "process_resident_memory_bytes", "gauge",
     "Memory used in bytes", K_NODE, n_rss, NULL, NULL},
    {"node_coarse_metrics", "disk_space_available_bytes", "gauge",
     "Disk space available in bytes", K_NODE, n_disk_free, NULL, NULL},
    /* node_metrics */
    {"node_metrics", "process_max_fds", "gauge", "Open file descriptors limit",
     K_NODE, n_max_fds, NULL, NULL},
    {"node_metrics", "process_max_tcp_sockets", "gauge",
     "Open TCP sockets limit", K_NODE, n_max_sockets, NULL, NULL},
    {"node_metrics", "resident_memory_limit_bytes", "gauge",
     "Memory high watermark in bytes", K_NODE, n_mem_limit, NULL, NULL},
    {"node_metrics", "disk_space_available_limit_bytes", "gauge",
     "Free disk space low watermark in bytes", K_NODE, n_disk_limit, NULL,
     NULL},
    {"node_metrics", "erlang_uptime_seconds", "gauge", "Node uptime", K_NODE,
     n_uptime, NULL, NULL},
    /* alarms (RabbitMQ's rabbitmq_alarms_* of the default page) */
    {"node_metrics", "alarms_memory_used_watermark", "gauge",
     "is 1 if VM memory watermark alarm is in effect", K_NODE, n_mem_alarm,
     NULL, NULL},
    {"node_metrics", "alarms_free_disk_space_watermark", "gauge",
     "is 1 if free disk space watermark alarm is in effect", K_NODE,
     n_disk_alarm, NULL, NULL},
    /* queue_coarse_metrics */
    {"queue_coarse_metrics", "queue_messages_ready", "gauge",
     "Messages ready to be delivered to consumers", K_QUEUE, q_ready, NULL,
     NULL},
    {"queue_coarse_metrics", "queue_messages_unacked", "gauge",
     "Messages delivered to consumers but not yet acknowledged", K_QUEUE,
     q_unacked, NULL, NULL},
    {"queue_coarse_metrics", "queue_messages", "gauge",
     "Sum of ready and unacknowledged messages - total queue depth", K_QUEUE,
     q_messages, NULL, NULL},
    /* queue_metrics */
    {"queue_metrics", "queue_consumers", "gauge", "Consumers on a queue",
     K_QUEUE, q_consumers, NULL, NULL},
    {"queue_metrics", "queue_process_memory_bytes", "gauge",
     "Memory in bytes used by the Erlang queue process", K_QUEUE, q_memory,
     NULL, NULL},
    {"queue_metrics", "queue_messages_ram", "gauge",
     "Ready and unacknowledged messages stored in memory", K_QUEUE, q_ram, NULL,
     NULL},
    {"queue_metrics", "queue_messages_ram_bytes", "gauge",
     "Size of ready and unacknowledged messages stored in memory", K_QUEUE,
     q_ram_bytes, NULL, NULL},
    {"queue_metrics", "queue_messages_ready_ram", "gauge",
     "Ready messages stored in memory", K_QUEUE, q_ready_ram, NULL, NULL},
    {"queue_metrics", "queue_messages_unacked_ram", "gauge",
     "Unacknowledged messages stored in memory", K_QUEUE, q_unacked_ram, NULL,
     NULL},
    {"queue_metrics", "queue_messages_ready_bytes", "gauge",
     "Size in bytes of ready messages", K_QUEUE, q_ready_bytes, NULL, NULL},
    {"queue_metrics", "queue_messages_paged_out", "gauge",
     "Messages paged out to disk", K_QUEUE, q_paged_out, NULL, NULL},
    /* queue_consumer_count */
    {"queue_consumer_count", "queue_consumers", "gauge", "Consumers on a queue",
     K_QUEUE, q_consumers, NULL, NULL},
    /* channel_queue_exchange_metrics: per queue in Warren */
    {"channel_queue_exchange_metrics", "queue_messages_published_total",
     "counter", "Total number of messages published to queues", K_QUEUE,
     q_published, NULL, NULL},
    /* queue_delivery_metrics: Warren's per-queue counters */
    {"queue_delivery_metrics", "queue_messages_delivered_total", "counter",
     "Total number of messages delivered from a queue, to consumers or "
     "basic.get, in either acknowledgement mode",
     K_QUEUE, q_delivered, NULL, WARREN},
    {"queue_delivery_metrics", "queue_messages_acked_total", "counter",
     "Total number of messages acknowledged by consumers", K_QUEUE, q_acked,
     NULL, WARREN},
    {"queue_delivery_metrics", "queue_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", K_QUEUE,
     q_redelivered, NULL, WARREN},
    /* channel_metrics */
    {"channel_metrics", "channel_consumers", "gauge", "Consumers on a channel",
     K_CHANNEL, c_consumers, NULL, NULL},
    {"channel_metrics", "channel_messages_unacked", "gauge",
     "Delivered but not yet acknowledged messages", K_CHANNEL, c_unacked, NULL,
     NULL},
    {"channel_metrics", "channel_messages_unconfirmed", "gauge",
     "Published but not yet confirmed messages", K_CHANNEL, c_unconfirmed, NULL,
     NULL},
    {"channel_metrics", "channel_messages_uncommitted", "gauge",
     "Messages received in a transaction but not yet committed", K_CHANNEL,
     c_uncommitted, NULL, NULL},
    {"channel_metrics", "channel_acks_uncommitted", "gauge",
     "Message acknowledgements in a transaction not yet committed", K_CHANNEL,
     c_acks_uncommitted, NULL, NULL},
    {"channel_metrics", "consumer_prefetch", "gauge",
     "Limit of unacknowledged messages for each consumer", K_CHANNEL,
     c_consumer_prefetch, NULL, NULL},
    {"channel_metrics", "channel_prefetch", "gauge",
     "Total limit of unacknowledged messages for all consumers on a channel",
     K_CHANNEL, c_prefetch, NULL, NULL},
    /* channel_exchange_metrics: per channel in Warren */
    {"channel_exchange_metrics", "channel_messages_published_total", "counter",
     "Total number of messages published into an exchange on a channel",
     K_CHANNEL, c_published, NULL, NULL},
    {"channel_exchange_metrics", "channel_messages_confirmed_total", "counter",
     "Total number of messages published into an exchange and confirmed on "
     "the channel",
     K_CHANNEL, c_confirmed, NULL, NULL},
    {"channel_exchange_metrics", "channel_messages_unroutable_returned_total",
     "counter",
     "Total number of messages published as mandatory into an exchange and "
     "returned to the publisher as unroutable",
     K_CHANNEL, c_returned, NULL, NULL},
    {"channel_exchange_metrics", "channel_messages_unroutable_dropped_total",
     "counter",
     "Total number of messages published as non-mandatory into an exchange "
     "and dropped as unroutable",
     K_CHANNEL, c_dropped, NULL, NULL},
    /* channel_queue_metrics: per channel in Warren */
    {"channel_queue_metrics", "channel_get_ack_total", "counter",
     "Total number of messages fetched with basic.get in manual "
     "acknowledgement mode",
     K_CHANNEL, c_get_ack, NULL, NULL},
    {"channel_queue_metrics", "channel_get_total", "counter",
     "Total number of messages fetched with basic.get in automatic "
     "acknowledgement mode",
     K_CHANNEL, c_get, NULL, NULL},
    {"channel_queue_metrics", "channel_messages_delivered_ack_total", "counter",
     "Total number of messages delivered to consumers in manual "
     "acknowledgement mode",
     K_CHANNEL, c_delivered_ack, NULL, NULL},
    {"channel_queue_metrics", "channel_messages_delivered_total", "counter",
     "Total number of messages delivered to consumers in automatic "
     "acknowledgement mode",
     K_CHANNEL, c_delivered, NULL, NULL},
    {"channel_queue_metrics", "channel_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", K_CHANNEL,
     c_redelivered, NULL, NULL},
    {"channel_queue_metrics", "channel_messages_acked_total", "counter",
     "Total number of messages acknowledged by consumers", K_CHANNEL, c_acked,
     NULL, NULL},
    {"channel_queue_metrics", "channel_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message", K_CHANNEL,
     c_get_empty, NULL, NULL},
    /* connection_coarse_metrics */
    {"connection_coarse_metrics", "connection_incoming_bytes_total", "counter",
     "Total number of bytes received on a connection", K_CONN, k_in_bytes, NULL,
     NULL},
    {"connection_coarse_metrics", "connection_outgoing_bytes_total", "counter",
     "Total number of bytes sent on a connection", K_CONN, k_out_bytes, NULL,
     NULL},
    /* connection_metrics */
    {"connection_metrics", "connection_incoming_packets_total", "counter",
     "Total number of packets received on a connection", K_CONN, k_in_packets,
     NULL, NULL},
    {"connection_metrics", "connection_outgoing_packets_total", "counter",
     "Total number of packets sent on a connection", K_CONN, k_out_packets,
     NULL, NULL},
    {"connection_metrics", "connection_pending_packets", "gauge",
     "Number of packets waiting to be sent on a connection", K_CONN, k_pending,
     NULL, NULL},
    {"connection_metrics", "connection_channels", "gauge",
     "Channels on a connection", K_CONN, k_channels, NULL, NULL},
    /* exchange_metrics: Warren's per-exchange counters */
    {"exchange_metrics", "exchange_messages_published_in_total", "counter",
     "Total number of messages published into an exchange", K_EXCHANGE, x_in,
     NULL, WARREN},
    {"exchange_metrics", "exchange_messages_published_out_total", "counter",
     "Total number of messages routed from an exchange to queues (one per "
     "queue)",
     K_EXCHANGE, x_out, NULL, WARREN},
    /* exchange_names, vhost_status: cluster-wide, not prefixed */
    {"exchange_names", "cluster_exchange_name", "gauge",
     "Enumerates exchanges without any additional info. This value is "
     "cluster-wide. A cheaper alternative to `exchange_bindings`",
     K_EXCHANGE, x_one, NULL, CLUSTER},
    {"vhost_status", "cluster_vhost_status", "gauge",
     "Whether a given vhost is running", K_VHOST, v_status, NULL, CLUSTER},
    /* the default page's totals (not a family of /metrics/detailed) */
    {NULL, "connections", "gauge", "Connections currently open", K_NODE,
     n_conns, NULL, NULL},
    {NULL, "channels", "gauge", "Channels currently open", K_NODE, n_channels,
     NULL, NULL},
    {NULL, "consumers", "gauge", "Consumers currently connected", K_NODE,
     n_consumers, NULL, NULL},
    {NULL, "queues", "gauge", "Queues available", K_NODE, n_queues, NULL, NULL},
    {NULL, "exchanges", "gauge", "Exchanges available", K_NODE, n_exchanges,
     NULL, WARREN},
    {NULL, "global_consumers", "gauge", "Current number of consumers", K_NODE,
     n_consumers, AMQP091, NULL},
    {NULL, "global_messages_received_total", "counter",
     "Total number of messages received from publishers", K_NODE, n_received,
     AMQP091, NULL},
    {NULL, "global_messages_routed_total", "counter",
     "Total number of messages routed to queues or streams", K_NODE, n_routed,
     AMQP091, NULL},
    {NULL, "global_messages_confirmed_total", "counter",
     "Total number of messages confirmed to publishers", K_NODE, n_confirmed,
     AMQP091, NULL},
    {NULL, "global_messages_unroutable_returned_total", "counter",
     "Total number of messages published as mandatory into an exchange and "
     "returned to the publisher as unroutable",
     K_NODE, n_returned, AMQP091, NULL},
    {NULL, "global_messages_unroutable_dropped_total", "counter",
     "Total number of messages published as non-mandatory into an exchange "
     "and dropped as unroutable",
     K_NODE, n_dropped, AMQP091, NULL},
    {NULL, "global_messages_delivered_total", "counter",
     "Total number of messages delivered to consumers", K_NODE, n_delivered,
     CLASSIC, NULL},
    {NULL, "global_messages_delivered_consume_manual_ack_total", "counter",
     "Total number of messages delivered to consumers using basic.consume "
     "with manual acknowledgment",
     K_NODE, n_del_consume_ack, CLASSIC, NULL},
    {NULL, "global_messages_delivered_consume_auto_ack_total", "counter",
     "Total number of messages delivered to consumers using basic.consume "
     "with automatic acknowledgment",
     K_NODE, n_del_consume_noack, CLASSIC, NULL},
    {NULL, "global_messages_delivered_get_manual_ack_total", "counter",
     "Total number of messages delivered to consumers using basic.get with "
     "manual acknowledgment",
     K_NODE, n_del_get_ack, CLASSIC, NULL},
    {NULL, "global_messages_delivered_get_auto_ack_total", "counter",
     "Total number of messages delivered to consumers using basic.get with "
     "automatic acknowledgment",
     K_NODE, n_del_get_noack, CLASSIC, NULL},
    {NULL, "global_messages_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message", K_NODE,
     n_get_empty, CLASSIC, NULL},
    {NULL, "global_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", K_NODE, n_redelivered,
     CLASSIC, NULL},
    {NULL, "global_messages_acknowledged_total", "counter",
     "Total number of messages acknowledged by consumers", K_NODE, n_acked,
     CLASSIC, NULL},
};

#define NFAM WR_ARRAY_LEN(families)

/* ---- one page */

/* Pages being streamed: each holds its queue list and label text (a few
 * MB with 100,000 queues) until its client has read it, and a scrape
 * needs no login, so at most MAX_STREAMS are written at once; a scrape
 * beyond them gets 503 and tries again at its next interval. */
#define MAX_STREAMS 16
static unsigned nstreams;

enum mode { M_TOTALS, M_PER_OBJECT, M_DETAILED };

struct page {
    struct mgmt_stream st;
    enum mode mode;
    const char *prefix;
    bool want[NFAM]; /* metrics on this page */
    size_t fi, oi;   /* the metric and object being written */
    bool head_done;  /* the metric's HELP and TYPE are out */
    bool tail_done;  /* build_info, loop histogram */
    bool streamed;   /* counted in nstreams */
    struct nodefig node;
    struct buf labels; /* every object's label text */
    struct qsnap *qs;
    size_t nq;
    struct mgmt_qset *qset; /* qs from the last sample (no own refs) */
    char **vhosts;          /* vhost= filter, or none */
    size_t nvhosts;
    bool qlabels; /* every qs[i].lab is built */
    struct chsnap *chs;
    size_t nch;
    struct csnap *cs;
    size_t nc;
    struct xsnap *xs;
    size_t nx;
    struct vsnap *vs;
    size_t nv;
    double sums[NFAM]; /* M_TOTALS: each object metric summed */
};

static void
put(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

/* Appends name="value" (escaped), after a comma unless first. */
static void
label(struct buf *b, bool first, const char *name, const void *v, size_t n)
{
    if (!first)
        buf_put_u8(b, ',');
    buf_append(b, name, strlen(name));
    buf_append(b, "=\"", 2);
    prom_escape(b, v, n);
    buf_put_u8(b, '"');
}

static struct lab
lab_begin(struct page *p)
{
    return (struct lab){p->labels.len, 0};
}

static void
lab_end(struct page *p, struct lab *l)
{
    l->len = p->labels.len - l->off;
}

/* The vhosts a page shows: all, or those named by vhost= (repeatable;
 * copied from the request, which goes before the page is written). */
static void
vhost_filter(struct page *p, const struct mgmt_req *r)
{
    p->vhosts = xcalloc(r->nq + 1, sizeof(*p->vhosts));
    for (size_t i = 0; i < r->nq; i++)
        if (strcmp(r->q[i].key, "vhost") == 0)
            p->vhosts[p->nvhosts++] = xstrdup(r->q[i].value);
}

static bool
vhost_wanted(const struct page *p, const char *name)
{
    for (size_t i = 0; i < p->nvhosts; i++)
        if (strcmp(p->vhosts[i], name) == 0)
            return true;
    return p->nvhosts == 0;
}

/* A channel's name as RabbitMQ's management shows it. */
static void
channel_name(const struct conn_info *ci, uint16_t number, char *out, size_t n)
{
    snprintf(out, n, "%s (%u)", ci->name, (unsigned)number);
}

static void
snap_conns(struct page *p)
{
    size_t cap = srv->nconns + 1, chcap = 16;

    p->cs = xcalloc(cap, sizeof(*p->cs));
    p->chs = xcalloc(chcap, sizeof(*p->chs));
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct csnap *s;
        const char *vh;

        if (p->nc == cap)
            break;
        s = &p->cs[p->nc];
        conn_info(c, &s->ci);
        if (!s->ci.listed || !s->ci.vh)
            continue;
        vh = vhost_name(s->ci.vh);
        if (!vhost_wanted(p, vh))
            continue;
        p->nc++;
        s->lab = lab_begin(p);
        label(&p->labels, true, "channel", s->ci.name, strlen(s->ci.name));
        lab_end(p, &s->lab);
        for (struct channel *ch = chan_next(c, NULL); ch;
             ch = chan_next(c, ch)) {
            struct chsnap *t;
            char name[200];

            if (p->nch == chcap) {
                chcap *= 2;
                p->chs = xrealloc(p->chs, chcap * sizeof(*p->chs));
            }
            t = &p->chs[p->nch++];
            chan_info(ch, &t->ci);
            channel_name(&s->ci, t->ci.number, name, sizeof(name));
            t->lab = lab_begin(p);
            label(&p->labels, true, "channel", name, strlen(name));
            label(&p->labels, false, "vhost", vh, strlen(vh));
            lab_end(p, &t->lab);
        }
    }
}

/* The queues (each holding a reference, unless the page only sums
 * them), exchanges and vhosts shown. */
static void
snap_vhosts(struct page *p)
{
    bool queues = p->mode != M_TOTALS;
    size_t n, qcap = 0, xcap = 0;
    struct vhost **vs = mgmt_vhosts(&n);

    for (size_t i = 0; i < n; i++) {
        struct vhost_info vi;

        vhost_info(vs[i], &vi);
        qcap += vi.queues;
        xcap += vi.exchanges;
    }
    if (queues && qcap > LIVE_QUEUES && (p->qset = mgmt_stats_qset())) {
        queues = false;
        p->nq = p->qset->n;
        p->qs = xcalloc(p->nq + 1, sizeof(*p->qs));
        for (size_t i = 0; i < p->nq; i++)
            p->qs[i].q = p->qset->q[i];
    } else {
        p->qs = xcalloc(qcap + 1, sizeof(*p->qs));
    }
    p->xs = xcalloc(xcap + 1, sizeof(*p->xs));
    p->vs = xcalloc(n + 1, sizeof(*p->vs));
    for (size_t i = 0; i < n; i++) {
        const char *vh = vhost_name(vs[i]);
        struct queue *q = NULL;
        struct exchange *x = NULL;
        struct vsnap *v;

        if (!vhost_wanted(p, vh))
            continue;
        v = &p->vs[p->nv++];
        v->serving = vhost_is_serving(vs[i]);
        v->lab = lab_begin(p);
        label(&p->labels, true, "vhost", vh, strlen(vh));
        lab_end(p, &v->lab);
        while (queues && (q = vhost_queue_next(vs[i], q)) != NULL &&
               p->nq < qcap) {
            queue_ref(q);
            p->qs[p->nq++].q = q;
        }
        while ((x = vhost_exchange_next(vs[i], x)) != NULL && p->nx < xcap) {
            struct xsnap *s = &p->xs[p->nx++];
            const char *type = exchange_type_name(x->type);

            s->in = x->stat_publish_in;
            s->out = x->stat_publish_out;
            s->lab = lab_begin(p);
            label(&p->labels, true, "vhost", vh, strlen(vh));
            label(&p->labels, false, "exchange", x->name, x->name_len);
            label(&p->labels, false, "type", type, strlen(type));
            lab_end(p, &s->lab);
        }
    }
    free(vs);
}

/* The node's figures, once per page. */
static void
read_node(struct nodefig *n)
{
    struct rlimit rl;
    size_t nv;
    struct vhost **vs = mgmt_vhosts(&nv);

    memset(n, 0, sizeof(*n));
    mgmt_stats_channels(&n->ch, &n->channels, &n->consumers);
    n->conns = srv->nconns;
    for (size_t i = 0; i < nv; i++) {
        struct vhost_info vi;

        vhost_info(vs[i], &vi);
        n->queues += vi.queues;
        n->exchanges += vi.exchanges;
    }
    free(vs);
    node_queue_churn(srv->node, &n->q_created, &n->q_deleted);
    n->rss = alarm_resident_bytes();
    n->mem_limit = alarm_memory_watermark(srv->cfg);
    n->disk_free = mgmt_disk_free();
    n->disk_limit = mgmt_disk_free_limit();
    n->fds = mgmt_fds_used();
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        rl.rlim_cur = 1024;
    n->max_fds = rl.rlim_cur;
    n->uptime_s = (double)mgmt_stats_uptime_ms() / 1000.0;
    n->mem_alarm = (srv->alarms & ALARM_MEMORY) != 0;
    n->disk_alarm = (srv->alarms & ALARM_DISK) != 0;
}

/* How many objects a metric has on this page. */
static size_t
nobjects(const struct page *p, enum kind k)
{
    switch (k) {
    case K_QUEUE:
        return p->nq;
    case K_CHANNEL:
        return p->nch;
    case K_CONN:
        return p->nc;
    case K_EXCHANGE:
        return p->nx;
    case K_VHOST:
        return p->nv;
    default:
        return 1;
    }
}

/* Writes object oi of metric f; false when it is left out (a queue
 * deleted since the page began). */
static bool
write_object(struct page *p, const struct family *f, size_t oi, struct buf *b)
{
    struct queue_info qi;
    const void *obj;
    const struct lab *l;

    switch (f->kind) {
    case K_QUEUE:
        queue_info(p->qs[oi].q, &qi);
        if (qi.deleted || (p->qset && !vhost_wanted(p, qi.vhost)))
            return false;
        if (!p->qlabels) {
            struct lab *ql = &p->qs[oi].lab;

            *ql = lab_begin(p);
            label(&p->labels, true, "vhost", qi.vhost, strlen(qi.vhost));
            label(&p->labels, false, "queue", qi.name.ptr, qi.name.len);
            lab_end(p, ql);
        }
        obj = &qi;
        l = &p->qs[oi].lab;
        break;
    case K_CHANNEL:
        obj = &p->chs[oi];
        l = &p->chs[oi].lab;
        break;
    case K_CONN:
        obj = &p->cs[oi];
        l = &p->cs[oi].lab;
        break;
    case K_EXCHANGE:
        obj = &p->xs[oi];
        l = &p->xs[oi].lab;
        break;
    case K_VHOST:
        obj = &p->vs[oi];
        l = &p->vs[oi].lab;
        break;
    default:
        return false;
    }
    put(b, f->prefix ? f->prefix : p->prefix);
    buf_append(b, f->name, strlen(f->name));
    buf_put_u8(b, '{');
    buf_append(b, p->labels.data + l->off, l->len);
    buf_append(b, "} ", 2);
    prom_value(b, f->value(obj));
    buf_put_u8(b, '\n');
    return true;
}

static void
write_head(const struct page *p, const struct family *f, struct buf *b)
{
    prom_family(b, f->prefix ? f->prefix : p->prefix, f->name, f->type,
                f->help);
}

/* A node metric, or (M_TOTALS) an object metric's sum. */
static void
write_single(const struct page *p, size_t fi, struct buf *b)
{
    const struct family *f = &families[fi];

    buf_printf(b, "%s%s", f->prefix ? f->prefix : p->prefix, f->name);
    if (f->labels)
        buf_printf(b, "{%s}", f->labels);
    buf_put_u8(b, ' ');
    prom_value(b, f->kind == K_NODE ? f->value(&p->node) : p->sums[fi]);
    buf_put_u8(b, '\n');
}

/* rabbitmq_build_info, rabbitmq_identity_info, on every page. */
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
    put(b, "# TYPE rabbitmq_identity_info untyped\n"
           "# HELP rabbitmq_identity_info RabbitMQ node & cluster identity "
           "info\n"
           "rabbitmq_identity_info{rabbitmq_node=\"");
    prom_escape(b, mgmt_node_name(), strlen(mgmt_node_name()));
    put(b, "\",rabbitmq_cluster=\"");
    prom_escape(b, srv->cfg->cluster_name, strlen(srv->cfg->cluster_name));
    put(b, "\"} 1\n");
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

/* Writes the next piece of the page: whole metrics, or objects of one,
 * until about FILL_BYTES went out. Returns false after the last. */
static bool
page_fill(struct mgmt_stream *st, struct buf *b)
{
    struct page *p = (struct page *)st;
    size_t start = b->len;

    while (p->fi < NFAM && b->len - start < FILL_BYTES) {
        const struct family *f = &families[p->fi];
        bool single = f->kind == K_NODE || p->mode == M_TOTALS;

        if (!p->want[p->fi]) {
            p->fi++;
            continue;
        }
        if (!p->head_done) {
            write_head(p, f, b);
            p->head_done = true;
            if (single)
                write_single(p, p->fi, b);
        }
        if (!single) {
            size_t n = nobjects(p, f->kind);

            while (p->oi < n && b->len - start < FILL_BYTES)
                write_object(p, f, p->oi++, b);
            if (p->oi < n)
                return true;
            if (f->kind == K_QUEUE)
                p->qlabels = true;
        }
        p->fi++;
        p->oi = 0;
        p->head_done = false;
    }
    if (p->fi < NFAM)
        return true;
    if (!p->tail_done) {
        identity_metrics(b);
        if (p->mode != M_DETAILED)
            loop_busy_metric(b);
        p->tail_done = true;
    }
    return false;
}

static void
page_free(struct mgmt_stream *st)
{
    struct page *p = (struct page *)st;

    if (p->streamed)
        nstreams--;
    if (p->qset)
        mgmt_qset_unref(p->qset);
    else
        for (size_t i = 0; i < p->nq; i++)
            queue_unref(p->qs[i].q);
    for (size_t i = 0; i < p->nvhosts; i++)
        free(p->vhosts[i]);
    free(p->vhosts);
    free(p->qs);
    free(p->chs);
    free(p->cs);
    free(p->xs);
    free(p->vs);
    buf_fini(&p->labels);
    free(p);
}

/* M_TOTALS: every object metric summed over its objects, one pass over
 * the queues (straight from the vhosts: the page is written at once). */
static void
sum_objects(struct page *p)
{
    for (size_t fi = 0; fi < NFAM; fi++) {
        const struct family *f = &families[fi];

        if (f->kind == K_NODE || f->kind == K_QUEUE || !p->want[fi])
            continue;
        for (size_t i = 0; i < nobjects(p, f->kind); i++) {
            const void *obj = f->kind == K_CHANNEL    ? (void *)&p->chs[i]
                              : f->kind == K_CONN     ? (void *)&p->cs[i]
                              : f->kind == K_EXCHANGE ? (void *)&p->xs[i]
                                                      : (void *)&p->vs[i];
            p->sums[fi] += f->value(obj);
        }
    }
    size_t nv;
    struct vhost **vs = mgmt_vhosts(&nv);

    for (size_t i = 0; i < nv; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL) {
            struct queue_info qi;

            queue_info(q, &qi);
            for (size_t fi = 0; fi < NFAM; fi++)
                if (families[fi].kind == K_QUEUE && p->want[fi])
                    p->sums[fi] += families[fi].value(&qi);
        }
    }
    free(vs);
}

/* Which metrics a page shows. /metrics/detailed: those of the families
 * named by family= (none: an empty page of identity info, as RabbitMQ);
 * the other pages: every metric of a family, and the totals, except
 * what only makes sense per object (exchange names, vhost status) and
 * queue_consumer_count (queue_metrics has queue_consumers already). */
static void
choose(struct page *p, const struct mgmt_req *r)
{
    for (size_t fi = 0; fi < NFAM; fi++) {
        const struct family *f = &families[fi];

        if (p->mode != M_DETAILED) {
            p->want[fi] =
                !(f->group && strcmp(f->group, "queue_consumer_count") == 0) &&
                !(p->mode == M_TOTALS && f->prefix &&
                  strcmp(f->prefix, CLUSTER) == 0);
            continue;
        }
        for (size_t i = 0; i < r->nq && f->group; i++)
            if (strcmp(r->q[i].key, "family") == 0 &&
                strcmp(r->q[i].value, f->group) == 0)
                p->want[fi] = true;
    }
    /* queue_consumer_count and queue_metrics both name queue_consumers:
     * a page shows it once. */
    if (p->mode == M_DETAILED) {
        size_t qm = 0, qc = 0;

        for (size_t fi = 0; fi < NFAM; fi++) {
            if (strcmp(families[fi].name, "queue_consumers") != 0)
                continue;
            if (strcmp(families[fi].group, "queue_metrics") == 0)
                qm = fi;
            else
                qc = fi;
        }
        if (p->want[qm])
            p->want[qc] = false;
    }
}

static void
serve(struct mgmt_req *r, enum mode mode)
{
    struct page *p;

    if (mode != M_TOTALS && !r->head && nstreams >= MAX_STREAMS) {
        r->status = 503;
        buf_printf(&r->out, "too many metrics pages in progress (%u)\n",
                   MAX_STREAMS);
        buf_printf(&r->hdrs, "retry-after: 1\r\n");
        mgmt_http_respond(r, "text/plain; charset=utf-8");
        return;
    }
    p = xcalloc(1, sizeof(*p));

    p->st.fill = page_fill;
    p->st.free = page_free;
    p->mode = mode;
    p->prefix = mode == M_DETAILED ? "rabbitmq_detailed_" : "rabbitmq_";
    buf_init(&p->labels);
    choose(p, r);
    vhost_filter(p, r);
    read_node(&p->node);
    snap_conns(p);
    snap_vhosts(p);
    r->status = 200;
    if (mode == M_TOTALS) {
        sum_objects(p);
        while (page_fill(&p->st, &r->out))
            ;
        page_free(&p->st);
        mgmt_http_respond(r, CONTENT_TYPE);
        return;
    }
    if (r->head) {
        page_free(&p->st);
        mgmt_http_respond(r, CONTENT_TYPE);
        return;
    }
    p->streamed = true;
    nstreams++;
    r->stream = &p->st;
    mgmt_http_respond(r, CONTENT_TYPE);
}

void
mgmt_api_metrics(struct mgmt_req *r)
{
    serve(r, M_TOTALS);
}

void
mgmt_api_metrics_per_object(struct mgmt_req *r)
{
    serve(r, M_PER_OBJECT);
}

void
mgmt_api_metrics_detailed(struct mgmt_req *r)
{
    serve(r, M_DETAILED);
}
