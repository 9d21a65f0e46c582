/*
 * conn.h: one AMQP client connection (conn.c) and the machinery of the
 * loop it lives on: the iteration's pump (loop.c), the alarms that stop
 * publishers (alarm.c), authentication (auth.c). Private to server/.
 */
#ifndef WARREN_SERVER_CONN_H
#define WARREN_SERVER_CONN_H

#include "amqp/amqp_codes.h"
#include "amqp/frame.h"
#include "server/outq.h"
#include "server/server.h"
#include "server/tls.h"

#include <netinet/in.h>
#include <uthash.h>

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
    CONN_RELAYED, /* its vhost is led by another node: bytes are relayed
                     there both ways (relay.c) */
    CONN_DEAD,    /* socket closed, on the reap list */
};

#define CONN_MAGIC 0x434f4e4eu

/* A body frame read straight into its message (bodyrx.c). */
struct bodyrx {
    uint32_t left;     /* octets still to come, the frame-end octet
                          included; 0: no such frame in progress */
    uint32_t size;     /* its payload's */
    uint16_t channel;  /* the frame's */
    bool dropping;     /* its channel stopped taking it: the rest is read
                          and dropped, as a frame read whole would be */
    uint8_t first[16]; /* the payload's first octets (an error's text) */
};

struct conn {
    uint32_t magic;
    int fd;
    struct tls *tls; /* NULL: plain TCP (tls.h) */
    enum conn_state state;
    uint64_t id;
    ev_io rio, wio;
    ev_timer timer;        /* handshake timeout, heartbeats, close timeout */
    ev_tstamp accepted_at; /* loop time of the accept (handshake timeout) */
    struct frame_parser fp;
    struct buf in; /* bytes of an incomplete frame */
    struct bodyrx rx;
    struct outq out;
    uint64_t connected_at_ms; /* wall clock */
    char peer[64];            /* "127.0.0.1:5555" */
    char local[64];
    bool loopback;
    char *user;
    const char *auth_mech; /* the SASL mechanism it logged in with */
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
    /* A replicated vhost's durable definitions change (queue.declare-ok,
     * bind-ok, ...): its reply waits in `held`, and input with it, until
     * the in-sync set holds definitions generation held_gen (issue 12;
     * conn_hold_reply). */
    bool defs_held;
    struct buf held;
    uint64_t held_gen;
    bool yielded; /* used up its time slice: the rest of its input
                     waits in `in` for the next loop iteration */
    struct conn *yield_next, *yield_prev; /* srv->yielded */
    bool published;                       /* has published: alarms block it */
    bool user_counted; /* in its user's connection count (user limits) */
    bool feeding;      /* fed a queue with consumers and a backlog */
    bool blocked;      /* not read while an alarm or flow holds */
    /* credit flow (flow.c): the queue it waits for, with a reference;
     * not read meanwhile */
    struct queue *flow_q;
    struct conn *flow_next, *flow_prev;
    bool blocked_sent; /* connection.blocked went out */
    bool on_pending;
    bool want_write; /* wio started */
    char *close_reason;
    /* cluster: a client of another node's vhost (relay.c), or a client
     * relayed here by node `via` (peer_link.c) */
    struct relay *relay;
    char *relay_vhost;
    bool close_after_flush; /* the leader closed: drop once flushed */
    char *via;
    uint64_t recv_oct, send_oct;
    uint64_t recv_cnt, send_cnt; /* reads and writes that moved bytes */
    struct conn *next, *prev;    /* srv->conns */
    struct conn *pending_next;   /* srv->pending */
    struct conn *reap_next;
};

/* Input is handled for at most this long per connection and loop
 * iteration (s); the rest waits for the next iteration, so one flooding
 * client cannot hold the loop. */
#define CONN_SLICE 0.005

/* Output above this pauses reading and deliveries to the connection. */
#define CONN_OUT_HIGH (1u << 20)
#define CONN_OUT_LOW  (256u << 10)

/* A new client on fd; tls: the TLS server of an AMQPS listener, or NULL. */
void conn_accept(struct server *s, int fd, const struct sockaddr_storage *sa,
                 const struct sockaddr_storage *local, struct tls_server *tls);
/* Marks c for a flush in this iteration's prepare pass. */
void conn_pending(struct conn *c);
/* Sends a method frame on channel ch. */
void conn_send_method(struct conn *c, uint16_t ch, const struct amqp_method *m);
/* Sends method + content header + body (deliver, get-ok, return). */
void conn_send_content(struct conn *c, uint16_t ch, const struct amqp_method *m,
                       struct message *msg);
/* conn_send_content with x-delivery-count = count (a long) set in the
 * headers, as RabbitMQ's quorum queues send a message (issue 12): only
 * the content header is written again (amqp_props_put_long_header),
 * the body goes as conn_send_content sends it. */
void conn_send_counted(struct conn *c, uint16_t ch, const struct amqp_method *m,
                       struct message *msg, int64_t count);
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
/* 501 for a frame whose end octet is not frame-end, in RabbitMQ's words;
 * first: the payload's first min(size, 16) octets. Returns WR_ERR. */
int conn_fail_frame_end(struct conn *c, uint8_t type, const uint8_t *first,
                        size_t size, uint8_t octet);
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
/* connection.open succeeded: log, start heartbeats. */
void conn_opened(struct conn *c);
/* Resumes input held for tx.commit. */
void conn_release_input(struct conn *c);
/* The method just handled on c changed the node's definitions, and its
 * reply starts at out.b offset mark (out.refs held nrefs entries then):
 * if c's vhost is replicated from here and its in-sync set does not hold
 * the change yet, the reply moves aside and c's input stops until
 * conn_release_held finds it does. */
void conn_hold_reply(struct conn *c, size_t mark, size_t nrefs);
/* Sends the held replies whose definitions the in-sync set now holds. */
void conn_release_held(struct server *s);
/* Handles the input of the connections that used up their time slice in
 * the previous iteration (start of an iteration). */
void conn_resume_yielded(struct server *s);
/* Starts or stops reading c as backpressure, held input and alarms say. */
void conn_update_reading(struct conn *c);
/* Closes with 406 every channel of c whose oldest delivery waiting for
 * ack is older than limit_us at now_us (consumer_timeout). */
void conn_check_consumer_timeout(struct conn *c, uint64_t now_us,
                                 uint64_t limit_us);

/* The loop's read buffer when [p, p + len) lies in it: a body there may
 * be adopted by its message (message_adopt), and the next read then goes
 * to a new buffer. NULL for bytes anywhere else (a connection's own
 * buffer of a cut frame). */
struct msgblock *conn_rx_block(const uint8_t *p, size_t len);

/* ---- body frames read straight into their message (bodyrx.c) */

/* The tail p[0..len) of a read, a frame cut by its end: when it is a big
 * body frame its channel takes, its payload so far goes into the message
 * and true says the caller may drop the tail; the rest of the frame is
 * then read by bodyrx_read. */
bool bodyrx_begin(struct conn *c, const uint8_t *p, size_t len);
/* Reads c while such a frame is in progress: the rest of its payload
 * into the message, then up to room octets of what follows into buf.
 * Returns as read(2) does; after a read, *in and *inlen are the octets
 * that followed the frame (none while its payload is still coming) and
 * *more says the read took all it asked for. The frame ends here, and
 * when it is the message's last the message is published: callers check
 * c->state and held input. */
ssize_t bodyrx_read(struct conn *c, uint8_t *buf, size_t room,
                    const uint8_t **in, size_t *inlen, bool *more);

static inline bool
bodyrx_busy(const struct conn *c)
{
    return c->rx.left > 0;
}

/* ---- the cluster's relays (relay.c, peer_link.c) */

/* A client another node hands over (the relay's AUTH payload). Strings
 * are borrowed for the call. */
struct relayed {
    const char *vhost, *user, *peer, *local, *via;
    const char *client_props_b64;
    uint32_t frame_max;
    uint16_t channel_max, heartbeat;
    bool loopback, cap_blocked, cap_cancel_notify, cap_auth_failure_close;
};

/* connection.open named vhost, led by node `leader` at addr: hands the
 * client to it (the client's input is held until the leader answers).
 * Returns WR_OK, or WR_ERR having failed the connection. */
int relay_start(struct conn *c, const char *vhost, const char *leader,
                const char *addr);
/* The client's bytes, for the leader. */
void relay_client_input(struct conn *c, const uint8_t *p, size_t n);
/* The client is readable: true when its bytes went to the leader through
 * the kernel (splice), false when the caller must read and pass them to
 * relay_client_input. */
bool relay_client_splice(struct conn *c);
/* Whether the client may be read now (the leader takes bytes). */
bool relay_wants_client_input(const struct conn *c);
/* The client's output drained: read the leader again. */
void relay_client_drained(struct conn *c);
void relay_free(struct conn *c);
/* A non-blocking TCP connection to another node's "IP:PORT" (cluster
 * addresses): the fd, or -1 with why. */
int relay_connect(const char *addr, char *why, size_t n);
/* A relayed client accepted by peer_link.c: fd becomes an open
 * connection to vh (admitted by the caller) with what h says; `early`
 * are bytes the client sent after connection.open, `out_first` bytes to
 * send before anything else (the handshake's end). */
void conn_adopt(struct server *s, int fd, struct vhost *vh,
                const struct relayed *h, struct bytes early,
                struct bytes out_first);
/* replication.c (issue 12): a vhost's leader streams its log to its
 * mirrors; a mirror keeps a copy. No-ops on a single node. */
struct peer_auth;
struct json_t;
void repl_init(struct server *s);
void repl_fini(struct server *s);
/* This node now leads / no longer leads the vhost (clustering.c). */
struct repl_prev;
/* prev: where the previous lead ended here (cluster/repl.h), or NULL */
void repl_lead(struct server *s, struct vhost *vh, const char *name,
               int64_t epoch, const struct repl_prev *prev);
void repl_unlead(struct server *s, const char *name);
/* How long after winning the vhost this node served it (management). */
void repl_lead_served(const char *name, double ms);
/* Drops this node's copy of vhost. */
void repl_copy_drop(const char *vhost, const char *why);
/* This node is about to lead vhost: its copy, linked or kept since its
 * link dropped, still open (the caller closes it or hands it over:
 * cluster/mirror.h), or NULL. */
struct mirror;
struct mirror *repl_copy_take(const char *vhost, const char *why);
/* The vhost is deleted: stop replicating it, remove the copy. */
void repl_forget(struct server *s, const char *vhost);
/* The marks of this node's own vhost logs (KIP-101 for a returning old
 * leader): opened at start before the loop runs, forgotten with the
 * vhost, and written every loop pass before node_flush. */
void repl_own_boot(struct server *s);
void repl_own_forget(struct vhost *vh);
void repl_before_flush(struct server *s);
/* Every loop pass after node_flush; after store wake-ups. */
void repl_pump(struct server *s);
/* Whether vh's confirms have waited for its in-sync set longer than
 * replication.blocked_after: its publishers are blocked. */
bool repl_blocks(const struct vhost *vh);
void repl_poll(struct server *s);
/* peer_link.c: an AUTH of purpose PEER_REPL. Takes fd whatever happens:
 * answers OK (encoded into out, sent from head) or a refusal; `early` is
 * what the leader sent after its AUTH. */
void repl_take(int fd, const char *addr, const struct peer_auth *a,
               struct bytes early, struct buf *out, size_t head);
/* loop.c: a store thread's wake-up (store_config.wake). */
void loop_store_wake(void *arg);
/* The node-to-node listener (cluster.listen). */
int peer_link_open(struct server *s, const char *addr);
void peer_link_close(struct server *s);
/* clustering.c: joins the cluster when configured (WR_ERR, logged, when
 * that fails); frees its state (server_fini). */
int clustering_start(struct server *s);
/* load_definitions on a cluster node, after joining: WR_ERR (logged) when
 * the file is wrong or etcd does not take it. */
int clustering_load_definitions(struct server *s, const char *path);
/* The node is stopping: it takes no new vhost (cluster_drain). */
void clustering_drain(struct server *s);
void clustering_free(struct server *s);
/* clustering.c: connection.open of vh, which this node does not serve:
 * relayed to its leader, or refused. Returns WR_OK or WR_ERR. */
int clustering_open(struct conn *c, struct vhost *vh);

/* ---- channel 0's handlers (m_connection.c) */

/* A handler of a method on channel 0, and the connection states (bits
 * 1 << enum conn_state) it may come in: any other is a 504. */
typedef int conn_method_fn(struct conn *c, const struct amqp_method *m);

struct conn_method {
    conn_method_fn *fn;
    uint32_t states;
};

/* Sends connection.start, once the protocol header is in. */
void m_connection_start(struct conn *c);
conn_method_fn m_connection_start_ok, m_connection_tune_ok, m_connection_open,
    m_connection_close, m_connection_close_ok, m_connection_update_secret,
    m_connection_blocked;

/* ---- the loop (loop.c) */

/* The node's hooks into the loop (a store thread's wake-up, a vhost's
 * durable LSN moving), set in opts before the node is made; starts the
 * store wake-up watcher. */
void loop_node_hooks(struct server *s, struct node_opts *opts);
/* Starts the loop's other watchers: the prepare and check hooks, the
 * expiry and consumer timeout timers. */
void loop_init(struct server *s);
/* Steps 2-5 of an iteration: dispatch, log hand-off, confirms and output
 * flush, again while that made more work (bounded). */
void loop_pump(struct server *s);

/* ---- alarms and flow control (alarm.c) */

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
/* Some vhost's publishers are to be blocked (or no longer) because its
 * confirms wait for the in-sync set (replication.c). */
void alarm_set_repl(struct server *s, bool any);
/* The loop waited `waited` seconds in epoll (saturation measure). */
void alarm_loop_waited(struct server *s, double waited, double now);

/* ---- credit flow (flow.c) */

/* c published into q, whose credit is used up (queue_credit_exhausted):
 * c is read no more until q drains. No-op when c already waits or
 * consumes from q. */
void flow_wait(struct conn *c, struct queue *q);
/* c waits no more (its queue drained, or c ends): its input resumes. */
void flow_forget(struct conn *c);
/* Every loop iteration: lets go the connections whose queue drained,
 * lost its consumers or stalled. */
void flow_check(struct server *s);

/* ---- authentication (auth.c) */

/* Checks a SASL response; fills *user (heap) on success. Returns WR_OK,
 * WR_ERR (refused) or AUTH_MALFORMED (unparsable). */
#define AUTH_MALFORMED 1
int auth_check(struct server *s, struct conn *c, struct bytes mechanism,
               struct bytes response, char **user, char *why, size_t whylen);
/* Whether mechanism is offered to c: configured (auth_mechanisms.*, PLAIN
 * and AMQPLAIN when none is), and EXTERNAL only on a TLS connection (as
 * rabbitmq_auth_mechanism_ssl offers it). */
bool auth_offered(const struct server *s, const struct conn *c,
                  struct bytes mechanism);
/* The mechanisms offered to c, space-separated (connection.start). */
void auth_mechanisms(const struct server *s, const struct conn *c,
                     struct buf *out);

#endif
