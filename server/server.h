/*
 * server.h: the broker process: the libev loop, listeners, connections,
 * channels and the AMQP method handlers. Shared by the files of server/;
 * nothing below server/ includes it.
 *
 * Order of work within one loop iteration (server/loop.c):
 *   1. read and handle input (conn.c: every complete frame of a read);
 *   2. dispatch queues that became ready (node_run_dispatch);
 *   3. emit coalesced publisher confirms;
 *   4. (later) hand the journal batch to the store thread;
 *   5. writev pending output, once per connection;
 *   6. reap closed connections.
 * Steps 2-6 run in the ev_prepare hook, just before the loop blocks.
 */
#ifndef WARREN_SERVER_H
#define WARREN_SERVER_H

#include "base/base.h"
#include "base/ring.h"
#include "conf/conf.h"
#include "amqp/amqp_codes.h"
#include "amqp/amqp_props.h"
#include "amqp/frame.h"
#include "server/listener.h"
#include "vhost/node.h"

#include <ev.h>
#include <netinet/in.h>
#include <uthash.h>

struct conn;
struct channel;

/* ---- the process */

#define MEM_BASE_SAMPLES 5 /* seconds of memory readings kept (alarm.c) */

struct server {
    struct ev_loop *loop;
    struct wr_config *cfg;
    struct node *node;
    struct listener listeners[8];
    size_t nlisteners;
    ev_prepare prepare;
    ev_signal sigterm, sigint;
    ev_timer shutdown_timer;
    ev_timer expire_timer; /* message TTL sweep, once a second */
    ev_timer ack_timer;    /* consumer_timeout checks */
    bool stopping;
    struct conn *conns;      /* every connection, through conn.next */
    struct conn *pending;    /* connections with output or confirms */
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
    uint64_t busy_hist[9];
    double busy_sum;
    uint32_t nconns;
    uint64_t next_conn_id;
};

extern struct server *srv;

/* Boots the node (definitions, logs: repair drops damaged records) and
 * opens the listeners. */
int server_init(struct server *s, struct wr_config *cfg, bool repair);
void server_fini(struct server *s);
int server_run(struct server *s);
/* Dispatch, log hand-off and output flush (loop.c). */
void server_pump(struct server *s);
/* RAM (or total_memory_available_override), the memory alarm threshold,
 * and the queues' memory budget, in bytes. */
uint64_t server_total_ram(const struct wr_config *cfg);
uint64_t server_memory_watermark(const struct wr_config *cfg);
/* Resident memory of the process in bytes, from /proc/self/statm
 * (alarm.c). */
uint64_t server_resident_bytes(void);
uint64_t server_memory_budget(const struct wr_config *cfg);

/* ---- service manager (notify.c) */

/* systemd's sd_notify (Type=notify): READY=1 once the node has booted and
 * every listener is open, STOPPING=1 when shutdown begins. No-ops without
 * libsystemd or outside systemd. */
void notify_ready(void);
void notify_stopping(void);

/* ---- alarms and flow control (alarm.c) */

enum {
    ALARM_MEMORY = 1,    /* resident memory above the high watermark */
    ALARM_DISK = 2,      /* free disk below disk_free_limit */
    ALARM_FLOW = 4,      /* the logs' write backlog is too long */
    ALARM_SATURATED = 8, /* the loop is CPU bound: slow queue feeders */
};

void alarm_init(struct server *s);
/* Memory and disk, once a second. */
void alarm_check(struct server *s);
/* A message was allocated or grew: raises the memory alarm when the
 * estimate of the resident size crosses the watermark (cheap: a few
 * loads and a compare). */
void alarm_note_memory(struct server *s);
/* The logs' backlog, every loop iteration. */
void alarm_check_flow(struct server *s);
/* Blocks c (it published while an alarm holds). */
void alarm_block(struct conn *c);
/* Whether c is to be blocked under the alarms in force. */
bool alarm_should_block(const struct conn *c);
/* The loop waited `waited` seconds in epoll (saturation measure). */
void alarm_loop_waited(struct server *s, double waited, double now);

/* ---- output queue (outq.c) */

/* A body slice sent straight from a message, without copying. */
struct oref {
    size_t at; /* position in outq.b before which it goes */
    struct message *m;
    size_t off, len;
};

/*
 * Bytes waiting for the socket: frames are appended to b; large bodies
 * are referenced (refs) instead of copied. Everything in b before the
 * first ref's `at` goes first, then that slice, and so on.
 */
struct outq {
    struct buf b;
    size_t head;      /* first unsent byte of b */
    struct ring refs; /* struct oref, in `at` order */
    size_t ref_bytes; /* unsent bytes in refs */
};

void outq_init(struct outq *q);
void outq_fini(struct outq *q);
static inline size_t
outq_pending(const struct outq *q)
{
    return q->b.len - q->head + q->ref_bytes;
}
/* Queues body bytes from m (takes a reference while they wait). */
void outq_put_ref(struct outq *q, struct message *m, size_t off, size_t len);
/* Writes as much as the socket takes. Returns WR_OK when everything went,
 * WR_AGAIN when the socket is full, WR_ERR on a socket error. */
int outq_flush(struct outq *q, int fd, uint64_t *sent);

/* ---- connections (conn.c, m_connection.c) */

enum conn_state {
    CONN_HEADER,  /* waiting for the protocol header */
    CONN_START,   /* sent connection.start */
    CONN_TUNE,    /* sent connection.tune */
    CONN_OPENING, /* got tune-ok, waiting for connection.open */
    CONN_OPEN,
    CONN_CLOSING, /* sent connection.close, waiting for close-ok */
    CONN_CLOSED,  /* sent close-ok: discarding input until the client
                     closes the socket (at most CONN_LINGER_S) */
    CONN_DEAD,    /* socket closed, on the reap list */
};

#define CONN_MAGIC 0x434f4e4eu

struct conn {
    uint32_t magic;
    int fd;
    enum conn_state state;
    uint64_t id;
    ev_io rio, wio;
    ev_timer timer; /* handshake timeout, heartbeats, close timeout */
    struct frame_parser fp;
    struct buf in; /* bytes of an incomplete frame */
    struct outq out;
    uint64_t connected_at_ms; /* wall clock */
    char peer[64];            /* "127.0.0.1:5555" */
    char local[64];
    bool loopback;
    char *user;
    struct vhost *vh;
    struct vh_owner owner;
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat;
    ev_tstamp last_rx, last_tx;
    ev_tstamp closing_since;
    /* client capabilities from start-ok */
    bool cap_auth_failure_close;
    bool cap_blocked;
    bool cap_cancel_notify;
    struct bytes client_props; /* owned copy of the table body */
    struct channel *channels;  /* uthash by id */
    struct channel *last_ch;   /* lookup cache */
    uint32_t nchannels;
    bool reading_paused;
    /* Input processing stops here until a durable LSN (tx.commit). The
     * unprocessed bytes stay in `in`. */
    bool input_held;
    bool resume_input; /* released: handle what waited in the prepare pass */
    bool yielded;      /* used up its time slice: the rest of its input
                          waits in `in` for the next loop iteration */
    struct conn *yield_next, *yield_prev; /* srv->yielded */
    bool published;                       /* has published: alarms block it */
    bool feeding;      /* fed a queue with consumers and a backlog */
    bool blocked;      /* not read while an alarm or flow holds */
    bool blocked_sent; /* connection.blocked went out */
    bool on_pending;
    bool want_write; /* wio started */
    char *close_reason;
    uint64_t recv_oct, send_oct;
    struct conn *next, *prev;  /* srv->conns */
    struct conn *pending_next; /* srv->pending */
    struct conn *reap_next;
};

/* Upper bounds (s) of the loop busy histogram's buckets, the last +Inf. */
#define LOOP_BUSY_BUCKETS                                     \
    {                                                         \
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 1e300 \
    }

/* Input is handled for at most this long per connection and loop
 * iteration (s); the rest waits for the next iteration, so one flooding
 * client cannot hold the loop. */
#define CONN_SLICE 0.005

/* Output above this pauses reading and deliveries to the connection. */
#define CONN_OUT_HIGH (1u << 20)
#define CONN_OUT_LOW  (256u << 10)

void conn_accept(struct server *s, int fd, const struct sockaddr_storage *sa,
                 const struct sockaddr_storage *local);
/* Marks c for a flush in this iteration's prepare pass. */
void conn_pending(struct conn *c);
/* Sends a method frame on channel ch. */
void conn_send_method(struct conn *c, uint16_t ch, const struct amqp_method *m);
/* Sends method + content header + body (deliver, get-ok, return). */
void conn_send_content(struct conn *c, uint16_t ch, const struct amqp_method *m,
                       struct message *msg);
/* Hard error: sends connection.close(code, "NAME - text", class, method),
 * releases channels, and waits for close-ok. Returns WR_ERR. */
int conn_fail(struct conn *c, uint16_t code, uint32_t method_id,
              const char *fmt, ...) WR_PRINTF(4, 5);
/* Decodes a method frame; on failure fails the connection with
 * RabbitMQ's code and text and returns WR_ERR. */
int conn_decode_method(struct conn *c, const struct frame *f,
                       struct amqp_method *m);
/* A frame whose payload does not fit its type (too short, or a heartbeat
 * with a payload): 501 "type T, all octets = ...: unknown_frame". */
int conn_fail_unknown_frame(struct conn *c, const struct frame *f);
/* Closes the socket and schedules the free. reason goes to the log. */
void conn_drop(struct conn *c, const char *reason);
/* The client closed the connection (connection.close): sends close-ok,
 * ends the connection (channels released, reason logged) and keeps
 * reading and discarding what the client still sends until it closes the
 * socket, as RabbitMQ does: a client that was still writing when it asked
 * to close gets no EPIPE. */
#define CONN_LINGER_S 30.0
void conn_close_ok(struct conn *c, const char *reason);
/* Called by the prepare pass: flush output, confirms. */
void conn_flush(struct conn *c);
void conn_free(struct conn *c);
bool conn_can_deliver(const struct conn *c);
/* Sends 320 to every connection (shutdown). */
void conn_force_close_all(struct server *s, const char *why);
/* m_connection.c: the handshake and channel 0. */
void conn_send_start(struct conn *c);
int conn_handle_method(struct conn *c, const struct amqp_method *m);
/* connection.open succeeded: log, count, start heartbeats. */
void conn_opened(struct conn *c);

/* ---- channels (channel.c, m_*.c) */

enum chan_state { CH_OPEN, CH_CLOSING };

enum content_state { CS_IDLE, CS_HEADER, CS_BODY };

/* A delivery waiting for ack, in tag order. settled = tombstone. */
struct unacked {
    uint64_t tag;
    uint64_t at_us; /* delivered at (node time): consumer_timeout */
    struct queue *q;
    struct qentry e;
    struct chconsumer *cons; /* NULL for basic.get */
};

struct unacked_list {
    struct ring r; /* struct unacked, in tag order */
    size_t live;   /* entries that are not tombstones */
};

struct chconsumer {
    struct consumer c; /* what the queue sees */
    struct channel *ch;
    uint32_t refs; /* 1 while registered + 1 per unacked delivery */
    bool cancelled;
    UT_hash_handle hh; /* in ch->consumers by tag */
};

/* A publish or an ack held back by a transaction. */
struct tx_op {
    enum { TX_PUBLISH, TX_ACK, TX_REJECT } kind;
    bool mandatory;
    bool requeue;
    struct message *msg;
    struct unacked u;
};

struct channel {
    uint16_t id;
    enum chan_state state;
    struct conn *conn;
    /* content assembly */
    enum content_state cs;
    bool pub_mandatory;
    uint8_t pub_exchange_len, pub_rk_len;
    char pub_exchange[256]; /* basic.publish's, until the content is in */
    char pub_rk[256];
    struct message *msg;
    /* the last exchange this channel may publish to (check_write) */
    uint64_t write_ok_gen;
    uint8_t write_ok_len;
    char write_ok[256];
    /* consumers and acks */
    struct chconsumer *consumers;
    uint32_t prefetch_global;   /* basic.qos global=true */
    uint32_t prefetch_consumer; /* basic.qos global=false, for new ones */
    uint64_t next_tag;
    struct unacked_list unacked;
    uint32_t consumer_unacked; /* unacked deliveries to consumers */
    bool flow;
    /* confirms */
    bool confirm;
    uint64_t pub_seq;     /* last publish sequence number given */
    uint64_t acked_upto;  /* confirms sent up to here */
    bool confirm_pending; /* seqs (acked_upto, pub_seq] wait for a flush */
    /* Publishes whose log record is not durable yet, in seq order (their
     * LSNs never decrease): the confirm waits for them. */
    struct pending_confirm {
        uint64_t seq, lsn;
    } * pend;
    size_t phead, pn, pcap;
    struct channel *wait_next, *wait_prev; /* srv->waiting */
    bool waiting;
    /* tx.commit of persistent messages: commit-ok waits for this LSN */
    uint64_t commit_lsn;
    bool tx_refused; /* the log refused a publish of the committing tx */
    /* transactions */
    bool tx;
    struct tx_op *txops;
    size_t ntx, txcap;
    /* queue.declare's name, for an empty queue name later */
    char last_queue[256];
    size_t last_queue_len;
    UT_hash_handle hh;
};

struct channel *chan_open(struct conn *c, uint16_t id);
/* Frees ch after releasing everything it holds (requeues unacked). */
void chan_free(struct channel *ch);
/* Releases consumers, unacked and tx state (requeues), keeps ch. */
void chan_release(struct channel *ch);
/* Soft error: sends channel.close and drops input until close-ok.
 * Hard codes escalate to conn_fail. Returns WR_ERR. */
int chan_fail(struct channel *ch, uint16_t code, uint32_t method_id,
              const char *fmt, ...) WR_PRINTF(4, 5);
int chan_fail_vherr(struct channel *ch, const struct vherr *err,
                    uint32_t method_id);
/* Handles one frame for ch (method, header or body). */
int chan_handle_frame(struct channel *ch, const struct frame *f);
/* Emits coalesced confirms: acks up to the first publish still waiting
 * for the log, nacks for publishes the failed log refused. Also sends a
 * held tx.commit-ok once durable. */
void chan_flush_confirms(struct channel *ch);
/* A vhost's durable LSN moved (or its log failed): wake the channels that
 * wait on it. */
void chan_durable_advanced(struct vhost *vh);
/* conn.c: resumes input held for tx.commit. */
void conn_release_input(struct conn *c);
/* conn.c: handles the input of the connections that used up their time
 * slice in the previous iteration (start of an iteration). */
void conn_resume_yielded(struct server *s);
/* Starts or stops reading c as backpressure, held input and alarms say. */
void conn_update_reading(struct conn *c);
/* Publishes a complete message (after the last body frame or at
 * tx.commit). Takes over the caller's reference to msg. Returns the LSN
 * of its log record, 0 when none. */
uint64_t chan_publish(struct channel *ch, struct exchange *x,
                      struct message *msg, bool mandatory);
void chan_hold_commit(struct channel *ch, uint64_t lsn);
/* Settles one delivery taken out of the list (unacked_take): ack (or
 * reject without requeue) forgets it, otherwise it goes back to its
 * queue. */
void chan_settle(struct channel *ch, struct unacked *u, bool ack, bool requeue);
extern const struct consumer_ops chan_consumer_ops;
/* Unregisters cc from its queue and from ch (basic.cancel, close). */
void chan_consumer_remove(struct channel *ch, struct chconsumer *cc);
/* Every consumer of ch may have room (basic.qos, its global window no
 * longer full): wakes them all (queue_consumer_wake). */
void chan_wake_consumers(struct channel *ch);
/* Writes prefix + 22 base64url characters of 16 random bytes (RabbitMQ's
 * rabbit_guid:binary): "amq.gen-..." and "amq.ctag-...". out >= 40. */
void chan_gen_name(const char *prefix, char *out);
/* m_confirm_tx.c: holds an ack/nack/reject until tx.commit. */
void chan_tx_add_ack(struct channel *ch, const struct unacked *u, bool ack,
                     bool requeue);
/* m_confirm_tx.c: holds a complete publish until tx.commit. */
void chan_tx_add_publish(struct channel *ch, struct message *msg,
                         bool mandatory);

/* The empty-name rule: "" means the channel's last declared queue. */
int chan_queue_name(struct channel *ch, struct bytes *name, uint32_t method_id);

/* m_*.c: one handler per method, by class. */
typedef int chan_method_fn(struct channel *ch, const struct amqp_method *m);
chan_method_fn m_channel_flow, m_channel_close;
chan_method_fn m_exchange_declare, m_exchange_delete, m_exchange_bind,
    m_exchange_unbind;
chan_method_fn m_queue_declare, m_queue_bind, m_queue_unbind, m_queue_purge,
    m_queue_delete;
chan_method_fn m_basic_qos, m_basic_consume, m_basic_cancel, m_basic_publish,
    m_basic_get, m_basic_ack, m_basic_reject, m_basic_nack, m_basic_recover,
    m_basic_recover_async;
chan_method_fn m_confirm_select, m_tx_select, m_tx_commit, m_tx_rollback;

/* unacked list (channel.c) */
void unacked_push(struct unacked_list *l, const struct unacked *u);
/* Index of the live entry with this tag, or -1. */
ssize_t unacked_find(const struct unacked_list *l, uint64_t tag);
struct unacked *unacked_at(struct unacked_list *l, size_t i);
/* Copies out the live entry i and leaves a tombstone. */
struct unacked unacked_take(struct unacked_list *l, size_t i);
void unacked_compact(struct unacked_list *l);

/* auth.c: checks a SASL response; fills *user (heap) on success.
 * Returns WR_OK, WR_ERR (refused) or AUTH_MALFORMED (unparsable). */
#define AUTH_MALFORMED 1
int auth_check(struct server *s, struct conn *c, struct bytes mechanism,
               struct bytes response, char **user, char *why, size_t whylen);

#endif
