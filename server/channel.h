/*
 * channel.h: one AMQP channel, private to server/. A channel is a state
 * machine (channel.c) with consumers, deliveries waiting for ack
 * (unacked.c) and, on the publishing side, content assembly, the checks
 * of a publish and publisher confirms (publish.c, over the confirm list
 * of confirm.c). The method handlers (m_*.c) act on it.
 */
#ifndef WARREN_SERVER_CHANNEL_H
#define WARREN_SERVER_CHANNEL_H

#include "server/conn.h"

struct amqp_props;
struct amqp_basic_props;

enum chan_state { CH_OPEN, CH_CLOSING };

enum content_state { CS_IDLE, CS_HEADER, CS_BODY };

/* ---- deliveries waiting for ack (unacked.c) */

/* A delivery waiting for ack, in tag order. settled = tombstone. */
struct unacked {
    uint64_t tag;
    uint64_t at_us;  /* delivered at (node time): consumer_timeout */
    struct queue *q; /* NULL: a tombstone */
    struct qentry e;
    struct chconsumer *cons; /* NULL for basic.get */
};

/*
 * A ring deque of deliveries sorted by tag. Taking one out of the middle
 * (an ack out of order) leaves a tombstone, dropped once it reaches the
 * front, so acking in order costs O(1) and out of order O(log n).
 */
struct unacked_list {
    struct ring r; /* struct unacked, in tag order */
    size_t live;   /* entries that are not tombstones */
};

/* Appends u; its tag is above every other's. */
void unacked_push(struct unacked_list *l, const struct unacked *u);
/* Index of the live entry with this tag, or -1. */
ssize_t unacked_find(const struct unacked_list *l, uint64_t tag);
/* Entry i (0 = the oldest), live or tombstone. Assumes i < l->r.n. */
struct unacked *unacked_at(struct unacked_list *l, size_t i);
/* Copies out the live entry i and leaves a tombstone. */
struct unacked unacked_take(struct unacked_list *l, size_t i);
/* Drops the tombstones at the front; frees a large empty list. */
void unacked_compact(struct unacked_list *l);
/* Puts back n entries taken out earlier (tx.rollback), so that the list
 * holds every live entry in tag order again. */
void unacked_restore(struct unacked_list *l, const struct unacked *v, size_t n);
void unacked_fini(struct unacked_list *l);

/* ---- publisher confirms (confirm.c) */

/* A confirm that is a basic.nack whatever the log does. */
#define CONFIRM_NACK UINT64_MAX

/* A publish whose answer waits: for the log to be durable past lsn and
 * the stream sync past batch `sync`, or (lsn CONFIRM_NACK) for its nack
 * to go out. */
struct confirm_wait {
    uint64_t seq, lsn, sync;
};

/* How far a vhost's writes are durable (confirm_settle). */
struct confirm_durable {
    uint64_t lsn;     /* the log's durable LSN */
    uint64_t sync;    /* the stream sync's durable batch */
    bool log_failed;  /* the log failed: what waits for it is nacked */
    bool sync_failed; /* the stream sync failed: likewise */
};

/*
 * The sequence numbers of a confirming channel's publishes and the ones
 * not answered yet. Publishes whose log record is not durable wait in
 * seq order (their LSNs never decrease); the others are answered as soon
 * as every earlier one is.
 */
struct confirm_list {
    struct ring wait; /* struct confirm_wait */
    uint64_t seq;     /* the last sequence number given */
    uint64_t upto;    /* answered up to here */
};

/* The next publish's sequence number. */
uint64_t confirm_next(struct confirm_list *l);
/* seq is acked once the log is durable past lsn and the stream sync past
 * batch sync (0: neither waits). */
void confirm_wait(struct confirm_list *l, uint64_t seq, uint64_t lsn,
                  uint64_t sync);
/* seq is nacked: refused at publish (a queue at its limit, the log). */
void confirm_refuse(struct confirm_list *l, uint64_t seq);
/* Publishes waiting for their answer. */
size_t confirm_waiting(const struct confirm_list *l);
/* One answer: basic.ack (or nack) with this tag and multiple flag. */
typedef void confirm_answer_fn(void *arg, uint64_t tag, bool multiple,
                               bool ack);
/*
 * Answers what is due now that the log and the stream sync are durable
 * as far as d says (a publish waiting for one that failed is nacked), in
 * order, coalesced into runs: acks up to the first publish still
 * waiting, a nack for each refused one.
 */
void confirm_settle(struct confirm_list *l, const struct confirm_durable *d,
                    confirm_answer_fn *answer, void *arg);
void confirm_fini(struct confirm_list *l);

/* ---- the channel (channel.c) */

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
    struct bytes bcc; /* TX_PUBLISH: its BCC array (owned) or empty */
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
    /* the shortest queue ack timeout of a delivery so far (us) */
    uint64_t min_queue_limit_us;
    bool flow;
    /* confirms */
    bool confirm;
    struct confirm_list confirms;
    bool confirm_pending;      /* answers may be due: flush in prepare */
    uint64_t confirm_answered; /* the last tag answered (st.confirm) */
    struct channel *wait_next, *wait_prev; /* srv->waiting */
    bool waiting;
    /* tx.commit of persistent messages: commit-ok waits (commit_held)
     * for this LSN and this stream sync batch */
    uint64_t commit_lsn, commit_sync;
    bool commit_held;
    uint64_t tx_sync; /* the stream sync batch the committing tx needs */
    bool tx_refused;  /* the log refused a publish of the committing tx */
    /* transactions */
    bool tx;
    struct tx_op *txops;
    size_t ntx, txcap;
    struct reply_consumer *reply; /* direct reply-to (reply_to.c) */
    bool pub_no_reply;            /* reply_to names a reply consumer ch lacks */
    /* sender-selected distribution (publish.c): the publish's BCC array
     * (the header is stripped from the message), or a CC/BCC header of
     * the wrong type (pub_bad_route names it, RabbitMQ's 406) */
    struct buf pub_bcc;
    const char *pub_bad_route;
    char pub_bad_type;
    struct chan_stats st; /* what /api/channels and /metrics count */
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
/* Settles one delivery taken out of the list (unacked_take): ack (or
 * reject without requeue) forgets it, otherwise it goes back to its
 * queue. */
void chan_settle(struct channel *ch, struct unacked *u, bool ack, bool requeue);
/* Requeues every delivery waiting for ack, in tag order. */
void chan_requeue_all(struct channel *ch);
/* consumer_timeout: closes ch with 406 when a delivery waiting for ack
 * is older than its limit at now_us: its queue's timeout (a queue
 * argument or policy), else limit_us (the node's; 0 = none). */
void chan_check_consumer_timeout(struct channel *ch, uint64_t now_us,
                                 uint64_t limit_us);
/* A delivery from q waits for its ack: ch notes q's ack timeout. */
void chan_note_delivery_limit(struct channel *ch, const struct queue *q);
extern const struct consumer_ops chan_consumer_ops;
/* Unregisters cc from its queue and from ch (basic.cancel, close). */
void chan_consumer_remove(struct channel *ch, struct chconsumer *cc);
/* Every consumer of ch may have room (basic.qos, its global window no
 * longer full): wakes them all (queue_consumer_wake). */
void chan_wake_consumers(struct channel *ch);
/* Writes prefix + 22 base64url characters of 16 random bytes (RabbitMQ's
 * rabbit_guid:binary): "amq.gen-..." and "amq.ctag-...". out >= 40. */
void chan_gen_name(const char *prefix, char *out);
/* Holds an ack/nack/reject until tx.commit. */
void chan_tx_add_ack(struct channel *ch, const struct unacked *u, bool ack,
                     bool requeue);
/* Holds a complete publish (and its BCC keys) until tx.commit. */
void chan_tx_add_publish(struct channel *ch, struct message *msg,
                         bool mandatory, struct bytes bcc);
/* Forgets a held publish (tx.rollback, the channel closing). */
void chan_tx_drop_publish(struct tx_op *op);
/* The empty-name rule: "" means the channel's last declared queue. */
int chan_queue_name(struct channel *ch, struct bytes *name, uint32_t method_id);

/* ---- publishing (publish.c) */

/* The content header and body frames that follow basic.publish. */
int publish_header(struct channel *ch, const struct frame *f);
int publish_body(struct channel *ch, const struct frame *f);
/* A body frame of len payload octets read straight into its message
 * (bodyrx.c): where its bytes go, room made, or NULL when ch would not
 * take the frame as it is (not assembling a body, closing, or the frame
 * overruns the body size: the ordinary path then answers it).
 * publish_body_advance counts n octets written there; publish_body_end
 * ends the frame as publish_body does (the last one publishes). */
uint8_t *publish_body_room(struct channel *ch, size_t len);
void publish_body_advance(struct channel *ch, size_t n);
int publish_body_end(struct channel *ch);
/* Publishes a complete message (after the last body frame or at
 * tx.commit). Takes over the caller's reference to msg. Returns the LSN
 * of its log record, 0 when none. */
uint64_t publish_message(struct channel *ch, struct exchange *x,
                         struct message *msg, bool mandatory, struct bytes bcc);
/* Sends the confirms that are due (coalesced, see confirm_settle), and a
 * held tx.commit-ok once durable. */
void publish_flush_confirms(struct channel *ch);
/* A vhost's durable LSN moved (or its log failed): wakes the channels
 * that wait on it. */
void publish_durable_advanced(struct vhost *vh);
/* A tx.commit whose records are not durable yet: holds its commit-ok,
 * and the connection's later input, until they are. */
void publish_hold_commit(struct channel *ch, uint64_t lsn, uint64_t sync);
/* ch goes away: it stops waiting for the log and releases held input. */
void publish_fini(struct channel *ch);

/* ---- direct reply-to (reply_to.c) */

/* A channel's consumer of the pseudo-queue amq.rabbitmq.reply-to. */
struct reply_consumer {
    struct channel *ch;
    uint8_t tag_len, suffix_len;
    char tag[256];
    char suffix[64];   /* "<b64 id>.<b64 key>": the hash key */
    UT_hash_handle hh; /* node-wide, by suffix */
};

/* The pseudo-queue's exact name (basic.consume's special case). */
bool reply_is_queue(struct bytes name);
/* A queue.declare name under "amq.rabbitmq.reply-to" (reply_declare's). */
bool reply_declare_name(struct bytes name);
/* basic.consume of the pseudo-queue: the channel's reply consumer. */
int reply_consume(struct channel *ch, const struct amqp_method *m);
/* basic.cancel: true (and gone) when tag is the reply consumer's. */
bool reply_cancel(struct channel *ch, struct bytes tag);
/* queue.declare of a name reply_declare_name accepts. */
int reply_declare(struct channel *ch, const struct amqp_method *m);
/* The channel closes: its reply consumer goes. */
void reply_release(struct channel *ch);
/* A request's reply_to of "amq.rabbitmq.reply-to": 1 with p->reply_to
 * naming ch's reply consumer (written in to[tolen]), -1 when ch has none
 * (RabbitMQ's 406 once the content is in), 0 when reply_to is not it. */
int reply_rewrite(struct channel *ch, struct amqp_basic_props *p, char *to,
                  size_t tolen);
/* A publish to the default exchange with a reply name as routing key
 * goes to that reply consumer's channel, if it lives. */
void reply_route(const struct exchange *x, struct message *msg);

/* ---- method handlers (m_*.c): one per method, by class */

typedef int chan_method_fn(struct channel *ch, const struct amqp_method *m);
chan_method_fn m_channel_open, m_channel_flow, m_channel_close,
    m_access_request;
chan_method_fn m_exchange_declare, m_exchange_delete, m_exchange_bind,
    m_exchange_unbind;
chan_method_fn m_queue_declare, m_queue_bind, m_queue_unbind, m_queue_purge,
    m_queue_delete;
chan_method_fn m_basic_qos, m_basic_consume, m_basic_cancel, m_basic_publish,
    m_basic_get, m_basic_ack, m_basic_reject, m_basic_nack, m_basic_recover,
    m_basic_recover_async;
chan_method_fn m_confirm_select, m_tx_select, m_tx_commit, m_tx_rollback;

/*
 * The method table (m_table.c): for every method a client may send, by
 * its generated slot (amqp_method_slot), the handler above that acts on
 * it on channel 0 (with the states it may come in) and on other
 * channels. server_init installs it in struct server; conn.c and
 * channel.c dispatch through srv->methods and name no handler.
 */
struct m_table {
    void (*start)(struct conn *c); /* after the protocol header */
    struct conn_method conn[AMQP_SLOT_COUNT];
    chan_method_fn *chan[AMQP_SLOT_COUNT]; /* NULL: 503 unimplemented */
};

extern const struct m_table m_table;

#endif
