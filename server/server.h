/*
 * server.h: the broker process (server/), as its callers see it: main/
 * boots and runs it, the management API (server/mgmt/) reads it. The
 * connections and channels behind it (conn.h, channel.h) are private to
 * server/; others read them through the snapshots at the end.
 *
 * Order of work within one loop iteration (server/loop.c):
 *   1. read and handle input (conn.c: every complete frame of a read);
 *   2. dispatch queues that became ready (node_run_dispatch);
 *   3. emit coalesced publisher confirms;
 *   4. hand the log records to the store threads (node_flush);
 *   5. writev pending output, once per connection;
 *   6. reap closed connections.
 * Steps 2-6 run in the ev_prepare hook, just before the loop blocks.
 */
#ifndef WARREN_SERVER_H
#define WARREN_SERVER_H

#include "base/base.h"
#include "conf/conf.h"
#include "server/listener.h"
#include "vhost/node.h"

#include <ev.h>

struct conn;
struct channel;
struct m_table;
struct tls;
struct tls_server;

/* A channel's message counters (RabbitMQ's channel message_stats), plain
 * increments where each event happens: nothing per message but an add.
 * deliver and get count deliveries in ack mode, the _no_ack ones the
 * others; redeliver counts deliveries (either kind) flagged redelivered;
 * confirm counts publishes acked by a basic.ack. */
struct chan_stats {
    uint64_t publish, confirm, return_unroutable, drop_unroutable;
    uint64_t deliver, deliver_no_ack, get, get_no_ack, get_empty;
    uint64_t redeliver, ack;
};

/* ---- the process */

#define MEM_BASE_SAMPLES 5 /* seconds of memory readings kept (alarm.c) */

struct server {
    const struct m_table *methods; /* the handlers (server/m_table.c) */
    struct ev_loop *loop;
    struct wr_config *cfg;
    struct node *node;
    struct listener listeners[8];
    size_t nlisteners;
    struct listener ssl_listeners[8]; /* listeners.ssl.* (AMQPS) */
    size_t nssl_listeners;
    struct tls_server *tls;  /* ssl_options.*: NULL without AMQPS */
    struct cluster *cluster; /* NULL: a single node (clustering.c) */
    /* load_definitions on a cluster node: the exchanges, queues and
     * bindings of each vhost, imported when this node first leads it
     * (clustering.c); NULL when none wait. */
    struct json_t *boot_parts;
    struct listener peer_listener; /* cluster.listen (peer_link.c) */
    /* This node's description as management shows it (set by the
     * management API), which the cluster shares with the other nodes. */
    struct json_t *(*node_info)(void);
    ev_prepare prepare;
    ev_signal sigterm, sigint;
    ev_signal log_sighup, log_sigusr1; /* reopen the log file */
    ev_timer shutdown_timer;
    ev_timer expire_timer; /* message TTL sweep, once a second */
    ev_timer ack_timer;    /* consumer_timeout checks */
    bool stopping;
    /* The loop was told to end once; the loop runs again while the
     * cluster is left (clustering_stop) and must not be broken anew. */
    bool loop_ended;
    struct conn *conns;      /* every connection, through conn.next */
    struct conn *pending;    /* connections with output or confirms */
    unsigned defs_held;      /* connections whose reply waits (conn.h) */
    struct channel *waiting; /* channels waiting for a durable LSN */
    uint32_t alarms;         /* enum alarm bits in force */
    uint64_t mem_mark;       /* memory watermark, 0 = not watched (alarm.c) */
    uint64_t mem_base;       /* resident bytes beside tracked ones */
    uint64_t mem_bases[MEM_BASE_SAMPLES]; /* recent readings of it */
    size_t mem_nbase;
    uint64_t log_memory;          /* the logs' write buffers, as of this
                                     iteration */
    uint64_t log_appended;        /* node_log_appended() then */
    double sat_since, sat_waited; /* saturation window (alarm.c) */
    double prepared_at;           /* when the loop went to wait */
    ev_check check;
    ev_timer sat_timer; /* wakes the loop while saturated */
    ev_timer alarm_timer;
    ev_async store_wake;  /* a store thread has news */
    struct conn *reap;    /* closed, to be freed in prepare */
    struct conn *yielded; /* input left for the next iteration */
    /* How long loop iterations kept the loop busy (woken to waiting
     * again): a histogram over LOOP_BUSY_BUCKETS, for /metrics. */
    double woke_at;
    uint64_t busy_hist[10];
    double busy_sum;
    uint32_t nconns;
    uint64_t next_conn_id;
    /* Churn, since boot (RabbitMQ's connection_churn_metrics), and the
     * message counters of the channels that are gone, so that node-wide
     * sums stay monotonic as channels come and go (chan_free). */
    uint64_t conns_opened, conns_closed, chans_opened, chans_closed;
    uint64_t queues_declared;
    struct chan_stats chans_retired;
};

extern struct server *srv;

/* Boots the node (definitions, logs: repair drops damaged records) and
 * opens the AMQP listeners. Returns WR_OK, or WR_ERR (logged). */
int server_init(struct server *s, struct wr_config *cfg, bool repair);
/* Runs the loop until a signal stops the broker. */
int server_run(struct server *s);
/* Closes every connection and listener and frees the node. */
void server_fini(struct server *s);
/* A clustered node leaves the cluster cleanly (clustering.c): its empty
 * vhosts go to other nodes. After server_run, before server_fini. */
void clustering_stop(struct server *s);

/* Upper bounds (s) of the loop busy histogram's buckets, the last +Inf. */
#define LOOP_BUSY_BUCKETS                                           \
    {                                                               \
        0.001, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.5, 1.0, 1e300 \
    }

/* ---- connections and channels, as others read them (conn.c, channel.c)
 *
 * Snapshots, so that the management API (and, later, the cluster) does
 * not depend on how connections and channels are built. Strings are
 * borrowed from the connection and valid while it lives (until the next
 * loop iteration at least: connections are freed in the prepare pass).
 */

struct conn_info {
    uint64_t id;
    char name[160];    /* RabbitMQ's: "PEER -> LOCAL" */
    const char *peer;  /* "127.0.0.1:5555", "[::1]:5555" */
    const char *local; /* the listener's side */
    const char *user;  /* NULL before authentication */
    struct vhost *vh;  /* NULL before connection.open */
    bool open;         /* running (not closing or closed) */
    bool listed;       /* has opened a vhost and is open or closing:
                          what RabbitMQ lists */
    const char *state; /* RabbitMQ's: running, blocking, blocked, closing */
    uint32_t channels;
    uint16_t channel_max;
    uint32_t frame_max;
    uint16_t heartbeat;
    uint64_t connected_at_ms;  /* wall clock */
    struct bytes client_props; /* start-ok's table body */
    uint64_t recv_oct, send_oct;
    uint64_t recv_cnt, send_cnt; /* reads and writes that moved bytes */
    uint64_t send_pend;          /* bytes waiting for the socket */
    const struct tls *tls;       /* NULL: plain TCP; else tls_describe() */
    const char *auth_mechanism;  /* "PLAIN", "AMQPLAIN", "EXTERNAL"; NULL
                                    before start-ok */
};

struct chan_info {
    uint16_t number;
    struct conn *conn;
    const char *state; /* running, closing */
    uint32_t consumers;
    uint32_t unacked;          /* deliveries waiting for ack */
    uint32_t unconfirmed;      /* publishes waiting for a confirm */
    uint32_t uncommitted;      /* publishes held by a transaction */
    uint32_t acks_uncommitted; /* acks held by a transaction */
    uint32_t prefetch_count;   /* basic.qos global=false */
    uint32_t global_prefetch_count;
    bool confirm, transactional;
    struct chan_stats stats;
};

/* The connection after c (the first when c is NULL), in accept order;
 * NULL after the last. */
struct conn *conn_next(const struct server *s, const struct conn *c);
void conn_info(const struct conn *c, struct conn_info *out);
/* An open connection closes with 320 CONNECTION_FORCED and why; others
 * are left as they are. */
void conn_force_close(struct conn *c, const char *why);
/* Closes every connection of vh with 320 (vh is being deleted) and
 * detaches them from it. */
void conn_close_vhost(struct server *s, struct vhost *vh, const char *why);
/* The channel of c after ch (the first when ch is NULL), in no promised
 * order; NULL after the last. And the channel numbered id, or NULL. */
struct channel *chan_next(const struct conn *c, const struct channel *ch);
struct channel *chan_find(const struct conn *c, uint16_t id);
void chan_info(const struct channel *ch, struct chan_info *out);

/* ---- service manager (notify.c) */

/* systemd's sd_notify (Type=notify): READY=1 once the node has booted and
 * every listener is open, STOPPING=1 when shutdown begins. No-ops without
 * libsystemd or outside systemd. */
void notify_ready(void);
void notify_stopping(void);

/* ---- alarms and memory (alarm.c) */

enum {
    ALARM_MEMORY = 1,    /* resident memory above the high watermark */
    ALARM_DISK = 2,      /* free disk below disk_free_limit */
    ALARM_FLOW = 4,      /* the logs' write backlog is too long */
    ALARM_SATURATED = 8, /* the loop is CPU bound: slow queue feeders */
    ALARM_REPL = 16,     /* a vhost's confirms wait for its in-sync set
                            (replication.c repl_blocks) */
};

/* RAM (or total_memory_available_override), the memory alarm threshold,
 * and the queues' memory budget, in bytes. */
uint64_t alarm_total_ram(const struct wr_config *cfg);
uint64_t alarm_memory_watermark(const struct wr_config *cfg);
uint64_t alarm_memory_budget(const struct wr_config *cfg);
/* Resident memory of the process in bytes, from /proc/self/statm. */
uint64_t alarm_resident_bytes(void);

/* GET /api/replication (replication.c): the vhosts this node leads with
 * their mirrors' positions, and the copies it keeps of other nodes'
 * vhosts. A new reference. */
struct json_t *repl_info(void);
/* A queue of a vhost this node leads, as RabbitMQ shows replicated
 * queues: {"leader", "members", "online", "slave_nodes",
 * "synchronised_slave_nodes"}; a durable queue's members are the leader
 * and the vhost's mirrors, any other queue's the leader alone. NULL when
 * the vhost is not replicated from here. A new reference. */
struct json_t *repl_queue_members(const char *vhost, bool durable);
/* The replication settings in force for a vhost (issue 12): its
 * metadata's "replicas" and "min_isr", else the node's replication.*
 * keys; min_isr is at most replicas. */
void repl_settings(const struct vhost_info *vi, uint32_t *replicas,
                   uint32_t *min_isr);

/* Whether every member of vh's in-sync set holds vh's definitions as of
 * node_defs_generation gen on its disk; true when vh is not replicated
 * from this node (server/replication.c). The management API's changes
 * wait for it as AMQP's durable declare-oks do (issue 12). */
bool repl_defs_durable(const struct vhost *vh, uint64_t gen);

#endif
