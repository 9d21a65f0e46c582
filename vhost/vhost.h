/*
 * vhost.h: the broker's model, one vhost at a time: a namespace of
 * exchanges, queues and the bindings between them, what declares, binds
 * and deletes them with RabbitMQ's rules, and the route of a publish.
 * The rest of the model has its own headers: message.h (messages),
 * queue.h (queues, their entries and consumers), node.h (the node that
 * holds the vhosts, users, permissions, policies and definitions).
 *
 * This module speaks AMQP's model (reply codes such as 404 or 406 and
 * RabbitMQ's texts are part of it) but nothing of frames or sockets: the
 * server decodes methods and calls in here, and learns about deliveries
 * through the consumer_ops callbacks it installs.
 *
 * Ownership at a glance:
 *   struct message   refcounted; every queue entry and every unacked
 *                    delivery holds one reference; bytes immutable.
 *   struct queue     refcounted; the vhost's table holds one reference,
 *                    every unacked delivery one more, so a deleted queue
 *                    stays readable until its last delivery is settled.
 *   struct consumer  owned by the server (its channel); linked into its
 *                    queue while registered.
 *   struct binding   owned by the vhost's binding table (binding.c).
 *   struct vhost     owned by the node. Its representation, like the
 *                    queue's, is private to vhost/ (vhost_int.h);
 *                    others read a struct vhost_info snapshot.
 */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include "base/base.h"
#include "amqp/amqp_codes.h"
#include "exchange/exchange.h"
#include "vhost/message.h"
#include "vhost/queue.h"

typedef struct json_t json_t;

/* What a permission allows (vhost/perm.c). */
enum perm_kind { PERM_CONFIGURE, PERM_WRITE, PERM_READ };
struct node;
struct vhost;
struct binding;

/* ---- errors: AMQP reply codes (amqp/amqp_codes.h) with RabbitMQ's texts */

struct vherr {
    uint16_t code;
    char text[512]; /* without the "NOT_FOUND - " prefix */
};

/* Sets err and returns WR_ERR. */
int vherr_set(struct vherr *err, uint16_t code, const char *fmt, ...)
    WR_PRINTF(3, 4);

/* The connection an operation comes from, embedded in the server's
 * connection: its exclusive queues, and its user, whose permissions the
 * operations check. NULL owner = the broker itself (definitions import,
 * management API acting as administrator): no checks. */
struct vh_owner {
    struct queue *exclusive; /* list through queue.owner_next */
    const char *user;        /* NULL: no permission checks */
};

/* ---- vhosts */

/* A snapshot of a vhost, for readers outside vhost/. Strings are
 * borrowed from the vhost and valid until it changes. */
struct vhost_info {
    const char *name;
    const char *description; /* NULL: none */
    const char *tags;        /* as given, NULL: none */
    uint32_t repl_replicas;  /* metadata "replicas"; 0: not set */
    uint32_t repl_min_isr;   /* metadata "min_isr"; 0: not set */
    int64_t max_connections; /* vhost-limits; -1 = none */
    int64_t max_queues;
    uint32_t connections;
    uint32_t queues;
    size_t exchanges;
    bool log_failed; /* its message log has failed */
};

void vhost_info(const struct vhost *vh, struct vhost_info *out);
const char *vhost_name(const struct vhost *vh);
/* The log position up to which vh's records are durable (publisher
 * confirms wait for it), and whether its log has failed. */
uint64_t vhost_durable_lsn(const struct vhost *vh);
/* A replicated vhost's leader: records above lsn are not yet on the
 * disks of every in-sync mirror, so vhost_durable_lsn stops there
 * (UINT64_MAX, the default: no limit). */
void vhost_set_repl_limit(struct vhost *vh, uint64_t lsn);
/* The log position durable on this node's disk, whatever the mirrors
 * hold (a leader watches it for a stalled disk). */
uint64_t vhost_disk_lsn(const struct vhost *vh);
bool vhost_log_failed(const struct vhost *vh);
/* The stream sync batch up to which vh's stream appends are durable
 * (publish_result.sync), and whether its stream sync failed. */
uint64_t vhost_streams_durable(const struct vhost *vh);
bool vhost_streams_failed(const struct vhost *vh);
/* Why persistent publishes to vh are refused (basic.nack), as a phrase
 * for a log line, or NULL when they are not: "the disk is full" while
 * its log waits for disk space, "its message log has failed". */
const char *vhost_log_refusal(const struct vhost *vh);
/* connection.open's checks of the vhost, in RabbitMQ's order: its
 * connection limit, then whether user may use it at all (530 with
 * RabbitMQ's texts). On success the connection counts as open in vh
 * until vhost_connection_leave. */
int vhost_connection_admit(struct vhost *vh, const char *user,
                           struct vherr *err);
void vhost_connection_leave(struct vhost *vh);
/* The queue (exchange) after q (x); the first when it is NULL; NULL after
 * the last. Queues and exchanges come in no promised order. */
struct queue *vhost_queue_next(const struct vhost *vh, const struct queue *q);
struct exchange *vhost_exchange_next(const struct vhost *vh,
                                     struct exchange *x);

/* The messages an x-delayed-message exchange holds back (0 for other
 * types): management's messages_delayed. */
uint64_t vhost_exchange_delayed_count(const struct exchange *x);
/* How on time an x-delayed-message exchange has been since it was
 * declared or recovered (all 0 for other types): messages routed when
 * due, how many of them more than 10 ms after their due time (a restart
 * makes the overdue ones late), and the largest lateness. */
struct delay_stats {
    uint64_t routed;
    uint64_t late_10ms;
    uint64_t max_late_us;
};
void vhost_exchange_delay_stats(const struct exchange *x,
                                struct delay_stats *out);

/* Looks an exchange up ("" is the default exchange). Borrowed or NULL. */
struct exchange *vhost_exchange_find(struct vhost *vh, struct bytes name);

struct exchange_decl {
    struct bytes name;
    struct bytes type;
    bool passive, durable, auto_delete, internal;
    struct bytes args;
    const struct vh_owner *owner; /* NULL: internal, no permission check */
};

/* exchange.declare's rules (RabbitMQ 3.10): passive lookup, the amq.
 * prefix, type check, equivalence of an existing one. */
int vhost_exchange_declare(struct vhost *vh, const struct exchange_decl *d,
                           struct vherr *err);
int vhost_exchange_delete(struct vhost *vh, struct bytes name, bool if_unused,
                          const struct vh_owner *owner, struct vherr *err);

struct queue_decl {
    struct bytes name; /* never empty: the caller generates amq.gen- */
    bool server_named; /* name generated by the server: skip the amq. rule */
    bool passive, durable, exclusive, auto_delete;
    struct bytes args;
    struct vh_owner *owner; /* the declaring connection */
};

/* queue.declare's rules. Fills *out (borrowed) on success. */
int vhost_queue_declare(struct vhost *vh, const struct queue_decl *d,
                        struct queue **out, struct vherr *err);
/* Finds a queue usable by owner: 404 when absent, 405 when exclusive to
 * another connection. */
int vhost_queue_lookup(struct vhost *vh, struct bytes name,
                       const struct vh_owner *owner, struct queue **out,
                       struct vherr *err);
struct queue *vhost_queue_find(struct vhost *vh, struct bytes name);
/* vhost_queue_lookup after RabbitMQ's permission check for an operation
 * on the queue (read: consume, get, purge; configure: delete), which
 * comes first: a refused user learns nothing of the queue. */
int vhost_queue_access(struct vhost *vh, struct bytes name,
                       const struct vh_owner *owner, enum perm_kind kind,
                       struct queue **out, struct vherr *err);
/* Deletes q: cancels its consumers, removes its bindings, drops its
 * ready messages. Returns the number of messages it held. */
uint32_t vhost_queue_delete(struct vhost *vh, struct queue *q);
/* Deletes every exclusive queue of owner (its connection closed). */
void vhost_owner_release(struct vhost *vh, struct vh_owner *owner);

/* queue.bind/unbind and exchange.bind/unbind. dest_is_exchange selects
 * what dest names. */
int vhost_bind(struct vhost *vh, struct bytes src, struct bytes dest,
               bool dest_is_exchange, struct bytes key, struct bytes args,
               const struct vh_owner *owner, struct vherr *err);
int vhost_unbind(struct vhost *vh, struct bytes src, struct bytes dest,
                 bool dest_is_exchange, struct bytes key, struct bytes args,
                 const struct vh_owner *owner, struct vherr *err);

/* Where a publish went. */
struct publish_result {
    size_t nqueues;     /* queues that took the message */
    uint64_t lsn;       /* its log record's LSN; 0 when not logged */
    uint64_t sync;      /* the stream sync batch its stream appends wait
                           for (vhost_streams_durable); 0 = none */
    bool refused;       /* the log has failed: persistent publishes are
                           refused (the publisher gets basic.nack) */
    bool rejected;      /* a queue at its length limit refused it
                           (reject-publish): basic.nack */
    bool feeds_waiting; /* a queue it went to has consumers and a
                           backlog: flow control under saturation */
    bool duplicate;     /* dropped as a duplicate (x-message-deduplication
                           of the exchange, or of every queue it reached):
                           confirmed once lsn is durable, never returned */
    /* A queue it went to that used up its credit (queue_credit_exhausted):
     * the publisher waits for it. Borrowed. */
    struct queue *flow_q;
};

/*
 * Routes m (published to exchange x with routing key rk and the given
 * headers table) and pushes it to every matching queue. x NULL means
 * the default exchange. Does not take over the caller's reference.
 */
void vhost_publish(struct vhost *vh, struct exchange *x, struct bytes rk,
                   struct bytes headers, struct message *m,
                   struct publish_result *res);
/* The same with several routing keys (the publish's, then those of its
 * CC and BCC headers): a queue matched by several keys gets m once. */
void vhost_publish_keys(struct vhost *vh, struct exchange *x,
                        const struct bytes *rks, size_t nrk,
                        struct bytes headers, struct message *m,
                        struct publish_result *res);
/* The same, pushing only to the routed queues for which keep(arg, q)
 * says true (dead-lettering leaves out queues that would close a cycle). */
void vhost_publish_to(struct vhost *vh, struct exchange *x, struct bytes rk,
                      struct bytes headers, struct message *m,
                      bool (*keep)(void *arg, struct queue *q), void *arg,
                      struct publish_result *res);

/*
 * RabbitMQ's check_resource_access: may user do `kind` to the resource
 * (`what` is "queue" or "exchange")? Refusals are 403 with RabbitMQ's
 * text: "access to queue 'q' in vhost '/' refused for user 'bob'".
 * user NULL = internal (always allowed).
 */
int vhost_perm_check(struct vhost *vh, const char *user, enum perm_kind kind,
                     const char *what, struct bytes name, struct vherr *err);
/* May the user open the vhost at all (has any permission entry)? */
bool vhost_user_has_access(struct vhost *vh, const char *user);

/*
 * An exchange's deduplication cache (x-message-deduplication): false
 * when it has none; otherwise its entries, size and the duplicates it
 * dropped.
 */
bool vhost_exchange_dedup(const struct exchange *x, uint32_t *entries,
                          uint32_t *size, uint64_t *dropped);

/* ---- bindings (binding.c) */

struct binding {
    struct exchange *src;
    struct xdest dest;
    char *key;
    size_t key_len;
    struct bytes args;
    struct binding *src_next, *src_prev;   /* in the source's list */
    struct binding *dest_next, *dest_prev; /* in the destination's list */
};

/* The name of a binding's destination, exchange or queue. */
struct bytes binding_dest_name(const struct binding *b);
/* The bindings with x as source (linked through src_next), with x as
 * destination, and with q as destination (both through dest_next). */
struct binding *vhost_bindings_out(const struct exchange *x);
struct binding *vhost_bindings_in(const struct exchange *x);
struct binding *queue_bindings(const struct queue *q);

/* ---- replication (replica.c): what a vhost's leader ships its mirrors */

/* A (queue, message) pair of the log: qid, message id, record position. */
struct vh_logged {
    uint64_t qid, id, pos;
};

/* Copies every record the vhost's log appends into out (store_tap; NULL
 * stops). No-op for a vhost without a log. */
void vhost_repl_tap(struct vhost *vh, struct buf *out);
/* Makes the tap hold every record up to the LSN returned (store_tap_cut);
 * 0 without a log. */
uint64_t vhost_repl_cut(struct vhost *vh);
/* For the marks of the leader's own cuts (a returning old leader's log is
 * truncated in place, server/replication.c): the position just past every
 * record appended so far (store_end_pos; 0 without a log), the segments
 * its logs planned to delete since the process started (every open
 * counted, store_unlinks_planned), and its log's directory (NULL when
 * none is open). */
uint64_t vhost_repl_end_pos(struct vhost *vh);
uint64_t vhost_repl_unlinks(const struct vhost *vh);
const char *vhost_repl_dir(const struct vhost *vh);
/* Whether the delivery e of q (held by a channel, unacked) is in the
 * log as a persistent message: then *out says where. */
bool vhost_entry_logged(const struct queue *q, struct qentry e,
                        struct vh_logged *out);
/*
 * A snapshot: the replication records of every live persistent message
 * of the vhost's durable queues, the ready ones and the deliveries the
 * caller found unacked (extra, n), one record per message (ids
 * increasing) listing every queue holding it, with the bodies read from
 * the log (page cache, usually); made in slices while the log goes on
 * (issue 12: no pause for a large vhost).
 *
 * vhost_repl_gather lists the logged pairs as of now (ready ones and
 * extra), sorted by message id then queue; *count says how many (free
 * the array). vhost_repl_slice appends the records of the
 * messages from v[*i] on, about budget bytes of them and at most
 * max_msgs messages, and advances *i:
 *   WR_OK     done up to *i (== count: the snapshot is complete)
 *   WR_AGAIN  a message's record has moved since the list was made
 *             (compaction): vhost_repl_regather, then call again
 *   WR_ERR    a record that should be there cannot be read (err)
 * A message acked or deleted since the list was made is skipped: its
 * ack follows in the stream after the snapshot. vhost_repl_regather
 * takes the current positions of v[*i..count) from a new list (a pair
 * no longer logged gets position 0: skipped).
 */
struct vh_logged *vhost_repl_gather(struct vhost *vh,
                                    const struct vh_logged *extra, size_t n,
                                    size_t *count);
int vhost_repl_slice(struct vhost *vh, struct vh_logged *v, size_t count,
                     size_t *i, size_t budget, size_t max_msgs, struct buf *out,
                     char *err, size_t errlen);
void vhost_repl_regather(struct vh_logged *v, size_t count, size_t i,
                         const struct vh_logged *now, size_t nnow);

/*
 * Delivery counts (x-delivery-limit of quorum queues), which the log does
 * not hold: the leader ships them beside it so that they survive a
 * failover. A count is VH_DCOUNT_SIZE bytes, big-endian: u64 qid, u64
 * message id, u32 returns (0: forgotten, the message was settled).
 */
#define VH_DCOUNT_SIZE 20
/* From now on every count a durable queue of vh sets or forgets is
 * appended to out (NULL stops). */
void vhost_repl_dcount_tap(struct vhost *vh, struct buf *out);
/* Appends every count vh's durable queues hold now. */
void vhost_repl_dcounts(struct vhost *vh, struct buf *out);
/* A new leader: applies counts in order (a later one of the same message
 * replaces an earlier one) to the queues that have a delivery limit.
 * Returns how many counts are held after. */
size_t vhost_repl_dcounts_apply(struct vhost *vh, struct bytes counts);

#endif
