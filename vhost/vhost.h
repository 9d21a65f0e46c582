/*
 * vhost: the broker's model. A node holds vhosts (and, later, users);
 * each vhost is a namespace of exchanges, queues and the bindings between
 * them. Queues hold references to messages, dispatch them round-robin to
 * consumers with room in their prefetch window, and forget a message only
 * when it is acked.
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
 */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include "base/base.h"
#include "amqp/amqp_codes.h"
#include "amqp/amqp_props.h"
#include "amqp/ftable.h"
#include "base/ring.h"
#include "exchange/exchange.h"

#include <uthash.h>

typedef struct json_t json_t;

/* What a permission allows (vhost/perm.c). */
enum perm_kind { PERM_CONFIGURE, PERM_WRITE, PERM_READ };
struct node;
struct vhost;
struct queue;
struct consumer;
struct binding;

/* ---- errors: AMQP reply codes (amqp/amqp_codes.h) with RabbitMQ's texts */

struct vherr {
    uint16_t code;
    char text[512]; /* without the "NOT_FOUND - " prefix */
};

/* Sets err and returns WR_ERR. */
int vherr_set(struct vherr *err, uint16_t code, const char *fmt, ...)
    WR_PRINTF(3, 4);

/* ---- messages */

enum {
    MSG_PERSISTENT = 1, /* delivery_mode 2 */
    MSG_LOGGED = 2,     /* has a record in the vhost's log (store_pos) */
};

/*
 * A published message: one allocation holding the struct, the exchange
 * name, the routing key, the content header's property bytes exactly as
 * received (flags + list) and the body. Owned by its refcount.
 */
struct message {
    uint32_t refs;
    uint8_t flags;
    uint8_t exchange_len;
    uint8_t rk_len;
    uint8_t priority;
    uint32_t props_len;
    uint64_t body_size;
    uint64_t received;  /* body bytes filled in so far (assembly) */
    uint64_t body_cap;  /* room for the body in this allocation */
    uint64_t ts_us;     /* when it was published (node time) */
    int64_t ttl_ms;     /* the expiration property; -1 = none */
    uint64_t id;        /* vhost-wide, in publish order (the store's ids) */
    uint64_t store_pos; /* MSG_LOGGED: where its record is */
    uint8_t *body;      /* points into data[] */
    uint8_t data[];     /* exchange | routing key | props | body */
};

/* Allocates a message for a body of body_size bytes (caller checked the
 * size against the limit). Starts with one reference. Room for the body
 * grows as it arrives (message_append), so memory follows the bytes a
 * client really sent, not the size it announced. */
struct message *message_new(struct bytes exchange, struct bytes rk,
                            struct bytes props, uint64_t body_size);
/* Appends body bytes during assembly; may move the message, so it
 * returns the new pointer. Assumes m->refs == 1 and that the bytes fit in
 * body_size. */
struct message *message_append(struct message *m, struct bytes part);
/* Takes what the properties say the broker acts on (amqp/amqp_props.h):
 * persistence, priority and TTL. */
void message_set_props(struct message *m, const struct amqp_props *p);
void message_ref(struct message *m);
void message_unref(struct message *m);
/* Bytes allocated for the messages alive in the process (their structs,
 * headers and bodies in memory): what the memory alarm watches between
 * two readings of the resident size. */
uint64_t message_memory(void);

static inline struct bytes
message_exchange(const struct message *m)
{
    return (struct bytes){m->data, m->exchange_len};
}

static inline struct bytes
message_rk(const struct message *m)
{
    return (struct bytes){m->data + m->exchange_len, m->rk_len};
}

static inline struct bytes
message_props(const struct message *m)
{
    return (struct bytes){m->data + m->exchange_len + m->rk_len, m->props_len};
}

static inline struct bytes
message_body(const struct message *m)
{
    return (struct bytes){m->body, m->body_size};
}

static inline bool
message_is_persistent(const struct message *m)
{
    return (m->flags & MSG_PERSISTENT) != 0;
}

/* ---- queue entries */

#define QE_REDELIVERED (UINT64_C(1) << 63)
/* The body is on disk only: `pos` is valid, `msg` is not. */
#define QE_PAGED (UINT64_C(1) << 62)
/* This queue's id is in the message's log record: settling it appends an
 * ack to the log. */
#define QE_INSTORE (UINT64_C(1) << 61)
/* x-max-priority queues: 255 - the message's priority (capped at the
 * queue's maximum), above the id, so that entries sort by priority, then
 * publish order. 0 in other queues. */
#define QE_PRIO_SHIFT 52
#define QE_PRIO_MASK  (UINT64_C(0xff) << QE_PRIO_SHIFT)
/* Message ids stay below 2^52 (STORE_MAX_ID). */
#define QE_ID_MASK  ((UINT64_C(1) << QE_PRIO_SHIFT) - 1)
#define QE_KEY_MASK (QE_PRIO_MASK | QE_ID_MASK)

/*
 * One message in one queue, 16 bytes: id orders the queue (the message's
 * vhost-wide id, so publish order; a requeued entry goes back to its id's
 * place) and carries the flags above; then the message in memory, or the
 * position of its record when it was paged out or recovered.
 */
struct qentry {
    uint64_t id;
    union {
        struct message *msg;
        uint64_t pos;
    };
};

/* ---- consumers */

struct consumer_ops {
    /* True when the consumer's owner can take another delivery now
     * (channel-wide prefetch, flow, output backpressure). */
    bool (*ready)(struct consumer *c);
    /* Hands one message over. e.msg carries one reference that now
     * belongs to the callee. `remaining` is the queue's ready count. */
    void (*deliver)(struct consumer *c, struct queue *q, struct qentry e);
    /* The queue was deleted: c has been unlinked from it; the owner
     * tells its client (basic.cancel) and forgets c. */
    void (*cancel)(struct consumer *c);
};

/*
 * A consumer: allocated and owned by the server's channel, linked into
 * its queue's circular list between queue_consumer_add and
 * queue_consumer_remove.
 */
struct consumer {
    const struct consumer_ops *ops;
    void *owner;
    struct queue *q;
    char *tag;
    size_t tag_len;
    bool no_ack;
    bool exclusive;
    uint32_t prefetch; /* 0 = unlimited */
    int64_t priority;  /* x-priority: higher ones are served first */
    uint32_t unacked;  /* maintained by the owner */
    uint64_t delivered;
    struct bytes args;            /* owned copy */
    struct consumer *next, *prev; /* in q's list, in registration order */
    /* Dispatch (consumer.c): in its priority's ring while it may have
     * room, on q->blocked once found without it, until woken. */
    struct consumer *dnext, *dprev;
    bool blocked;
};

/* The consumers of one priority that may have room: a ring whose head is
 * the next to try (round-robin). */
struct clevel {
    int64_t priority;
    struct consumer *ring;
};

/* ---- queues */

/* The connection an operation comes from, embedded in the server's
 * connection: its exclusive queues, and its user, whose permissions the
 * operations check. NULL owner = the broker itself (definitions import,
 * management API acting as administrator): no checks. */
struct vh_owner {
    struct queue *exclusive; /* list through queue.owner_next */
    const char *user;        /* NULL: no permission checks */
};

struct queue {
    uint32_t magic;
    uint32_t refs;
    struct vhost *vh;
    char *name;
    size_t name_len;
    bool durable;
    bool exclusive;
    bool auto_delete;
    bool deleted;
    bool had_consumer;
    bool dirty;          /* on the node's dispatch list */
    bool may_expire;     /* has x-message-ttl or got a message with TTL */
    int64_t ttl_ms;      /* x-message-ttl; -1 = none */
    int64_t expires_ms;  /* x-expires; -1 = none */
    uint64_t used_us;    /* last declare, basic.get or consumer (x-expires);
                            0 = not yet (a recovered queue) */
    int64_t max_len;     /* x-max-length; -1 = none */
    int64_t max_bytes;   /* x-max-length-bytes; -1 = none */
    bool reject_publish; /* x-overflow reject-publish(-dlx), else drop-head */
    bool reject_publish_dlx; /* x-overflow reject-publish-dlx */
    uint8_t max_priority;    /* x-max-priority; 0 = not a priority queue */
    bool has_dlx, has_dlrk;  /* effective dead-lettering (args, policy) */
    struct bytes dlx, dlrk;  /* owned copies */
    char *policy;            /* applied policy's name, or NULL */
    char *op_policy;         /* applied operator policy's name, or NULL */
    bool single_active;      /* x-single-active-consumer: only the first
                                consumer (head of `consumers`) gets
                                messages; the next takes over when it goes */
    struct bytes args;
    struct vh_owner *owner;
    struct queue *owner_next, *owner_prev;
    struct ring ready; /* struct qentry, sorted by key (queue.c) */
    uint64_t ready_bytes;
    uint32_t unacked;
    struct consumer *consumers; /* circular list, registration order */
    struct clevel *levels;      /* by priority, highest first */
    uint32_t nlevels, caplevels;
    struct consumer *blocked; /* found without room (consumer.c) */
    uint32_t nconsumers;
    struct binding *bindings; /* where this queue is the destination */
    struct queue *dirty_next;
    uint64_t mem_bytes;   /* bodies of ready entries held in memory */
    uint32_t ready_paged; /* ready entries on disk only (QE_PAGED) */
    uint64_t qid;         /* the store's id of this queue (store_qid of name) */
    bool logged; /* some entry was ever INSTORE: delete needs a record */
    UT_hash_handle qid_hh; /* in vhost.by_qid */
    uint64_t stat_publish, stat_deliver, stat_ack, stat_redeliver;
    uint64_t stat_expired;
    UT_hash_handle hh;
};

#define QUEUE_MAGIC 0x51554555u

void queue_ref(struct queue *q);
void queue_unref(struct queue *q);

/* Drops expired messages from the head (message TTL, x-message-ttl;
 * like RabbitMQ's classic queues, only the head is examined). */
void queue_expire(struct queue *q);

/* The ready count, after dropping expired messages at the head. */
static inline uint32_t
queue_message_count(struct queue *q)
{
    if (q->may_expire)
        queue_expire(q);
    return (uint32_t)q->ready.n;
}

/* Adds a message (takes a new reference). Schedules dispatch. Returns
 * false when the queue refuses it (x-max-length with x-overflow
 * reject-publish): the publisher gets basic.nack. */
bool queue_push(struct queue *q, struct message *m);
/* Takes the head entry for basic.get. Returns false when empty. The
 * entry's reference passes to the caller. With ack, the delivery must
 * be settled later with queue_ack or queue_requeue. */
bool queue_get(struct queue *q, bool ack, struct qentry *out);
/* Settles a delivery taken from q (by dispatch or get with ack): an
 * ack forgets it, a requeue puts it back at its place, marked
 * redelivered. Both drop the reference the delivery held on q. */
void queue_ack(struct queue *q, struct qentry e);
/* basic.reject / basic.nack without requeue: like queue_ack, but the
 * message goes to the queue's dead-letter exchange if it has one. */
void queue_reject(struct queue *q, struct qentry e);
void queue_requeue(struct queue *q, struct qentry e);
/* Drops the ready messages; returns how many. */
uint32_t queue_purge(struct queue *q);

/* Registers c with q and schedules dispatch. O(log p) for p distinct
 * consumer priorities, whatever the number of consumers. */
void queue_consumer_add(struct queue *q, struct consumer *c);
/* Unlinks c. Deletes an auto-delete queue that lost its last consumer
 * (its other consumers would be cancelled, but there are none). */
void queue_consumer_remove(struct queue *q, struct consumer *c);
/* c may have room again (an ack, a freed channel or connection): dispatch
 * tries it again. Dispatch skips a consumer found without room until it
 * is woken, so the owner must wake it whenever its ready() may have
 * turned true. No-op for a consumer not registered. */
void queue_consumer_wake(struct consumer *c);
/* Marks q for dispatch at the end of the loop iteration. */
void queue_schedule(struct queue *q);
/* Hands ready messages to consumers with room, round-robin. */
void queue_dispatch(struct queue *q);
/* q's exclusive consumer, or NULL. An exclusive consumer is only ever
 * registered alone, so this is the first consumer when it is one. */
static inline struct consumer *
queue_exclusive_consumer(const struct queue *q)
{
    return q->consumers && q->consumers->exclusive ? q->consumers : NULL;
}

/* ---- vhosts */

struct vhost {
    uint32_t magic;
    struct node *node;
    char *name;
    struct xreg *xr;
    struct queue *queues; /* uthash by name */
    struct queue *by_qid; /* uthash by qid, durable queues and logged ones */
    struct routeset rs;   /* reused for every publish */
    uint32_t connections;
    uint32_t nqueues;
    int64_t max_connections; /* vhost-limits; -1 = none */
    int64_t max_queues;
    char *description;
    char *tags;          /* metadata, as given */
    struct store *store; /* the vhost's log; NULL when running in memory */
    char *store_dir;
    uint64_t next_id;     /* message ids when there is no store */
    uint64_t durable_lsn; /* the store's, as of the last poll */
    bool store_failed;
    /* Once the log failed: the messages it had from this id on never
     * reached the disk; they were taken out of their queues (their
     * publishers got basic.nack). UINT64_MAX until then. */
    uint64_t lost_from;
    struct buf scratch;  /* meta encoding, reads from the log */
    struct vmove *moves; /* positions moved while deliveries were out */
    UT_hash_handle hh;
};

#define VHOST_MAGIC 0x56484f53u

/* RabbitMQ's rules for a vhost name: 1 to 255 bytes (an AMQP short
 * string) of UTF-8. Any such name is safe as a directory name
 * (vhost/vhostdir.c). Returns false with *why set otherwise. */
#define VHOST_NAME_MAX 255
bool node_vhost_name_check(const char *name, const char **why);
/* Why persistent publishes to vh are refused (basic.nack), as a phrase
 * for a log line, or NULL when they are not: "the disk is full" while
 * its log waits for disk space, "its message log has failed". */
const char *vhost_log_refusal(const struct vhost *vh);
/* Whether some vhost's log waits for disk space (store_no_space): the
 * disk alarm holds meanwhile. */
bool node_disk_full(const struct node *n);
/* Finds a vhost; borrowed or NULL. */
struct vhost *node_vhost_find(struct node *n, const char *name);
/* The first vhost (iterate with vh->hh.next) and how many there are. */
struct vhost *node_vhosts(struct node *n);
size_t node_vhost_count(const struct node *n);
/* Creates a vhost with its standard exchanges. Returns NULL if it
 * exists, if the name is invalid, or if its log cannot be opened (then
 * logged; its data directory is left as it was). */
struct vhost *node_vhost_add(struct node *n, const char *name);
/* Deletes every queue, exchange and binding of vh and frees it; the
 * caller closes its connections first. */
void node_vhost_remove(struct node *n, struct vhost *vh);

/* How the node keeps durable state; all zero = in memory only. */
struct node_opts {
    const char *data_dir; /* NULL = nothing on disk */
    int fsync;            /* enum store_fsync */
    uint32_t fsync_interval_ms;
    uint64_t segment_size;
    bool repair; /* open damaged logs, dropping what is bad */
    /* Bytes of message bodies queues may hold in memory; above it, new
     * messages go to the log and queues keep only their position.
     * 0 = no limit. */
    uint64_t memory_budget;
    /* Called from a store thread when a log has news: the server wakes
     * its loop, which then calls node_poll(). */
    void (*wake)(void *arg);
    void *wake_arg;
    /* Called on the loop when a vhost's durable LSN advanced or its log
     * failed, for publisher confirms. */
    void (*durable)(void *arg, struct vhost *vh);
    void *durable_arg;
};

struct node *node_new(const struct node_opts *opts);
void node_free(struct node *n);
/* Loads <data_dir>/definitions.json (durable vhosts, exchanges, queues,
 * bindings), creates default_vhost if there is none, and opens every
 * vhost's log, recovering its messages into their queues. Returns WR_OK,
 * or WR_ERR with a message for the operator. */
int node_boot(struct node *n, const char *default_vhost, char *err,
              size_t errlen);
/* True when node_boot found no definitions file: a first start, when
 * the default user and vhost are created (as RabbitMQ does). */
bool node_is_fresh(const struct node *n);
/* Delivers the stores' events (durable LSNs, compaction moves,
 * failures). Loop thread, after a wake. */
void node_poll(struct node *n);
/* Once per loop iteration, before output is flushed: writes the
 * definitions file if a durable object changed, and hands every log's
 * appended records to its store thread. */
void node_flush(struct node *n);
/* Marks the definitions file for rewriting. */
void node_defs_changed(struct node *n);
/* Runs queue_dispatch on every queue scheduled since the last call. */
void node_run_dispatch(struct node *n);
/* True when some queue waits for dispatch. */
bool node_has_dispatch(const struct node *n);
/* Bytes of message bodies held in memory by queues, and whether the
 * node is paging new messages to the logs (over its memory budget). */
uint64_t node_queue_memory(const struct node *n);
/* The logs' counters summed over vhosts (store_get_stats): fsyncs,
 * bytes and records written, segments, disk bytes, live messages. */
struct node_log_stats {
    uint64_t fsyncs, bytes_written, records_written, segments, disk_bytes,
        live_msgs;
};
void node_log_stats(const struct node *n, struct node_log_stats *out);
/* *pending: bytes appended to the logs and not yet written (the server
 * stops reading from publishers while the disk lags too far behind);
 * *memory: the memory the logs' write buffers hold (store_buffer_bytes),
 * for the memory alarm. */
void node_log_backlog(const struct node *n, uint64_t *pending,
                      uint64_t *memory);
/* Message bytes appended to the logs so far: how much the write buffers
 * grew since the last node_log_backlog(). O(1). */
uint64_t node_log_appended(const struct node *n);
bool node_is_paging(const struct node *n);
/* The loop's notion of now, in microseconds (monotonic); the server sets
 * it once per loop iteration, so every publish of an iteration gets the
 * same timestamp. */
void node_set_now(struct node *n, uint64_t now_us);
uint64_t node_now(const struct node *n);
/* Drops expired messages at the head of every queue that may have some
 * (called about once a second). */
void node_expire(struct node *n);
/* When node_expire has work next (node time, µs); UINT64_MAX = none. */
uint64_t node_next_expiry(const struct node *n);

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
    bool refused;       /* the log has failed: persistent publishes are
                           refused (the publisher gets basic.nack) */
    bool rejected;      /* a queue at its length limit refused it
                           (reject-publish): basic.nack */
    bool feeds_waiting; /* a queue it went to has consumers and a
                           backlog: flow control under saturation */
};

/*
 * Routes m (published to exchange x with routing key rk and the given
 * headers table) and pushes it to every matching queue. x NULL means
 * the default exchange. Does not take over the caller's reference.
 */
void vhost_publish(struct vhost *vh, struct exchange *x, struct bytes rk,
                   struct bytes headers, struct message *m,
                   struct publish_result *res);
/* The same, pushing only to the routed queues for which keep(arg, q)
 * says true (dead-lettering leaves out queues that would close a cycle). */
void vhost_publish_to(struct vhost *vh, struct exchange *x, struct bytes rk,
                      struct bytes headers, struct message *m,
                      bool (*keep)(void *arg, struct queue *q), void *arg,
                      struct publish_result *res);

/* ---- users, permissions, limits, policies (user.c, perm.c, policy.c) */

/* User tags (RabbitMQ's management tags). */
enum {
    TAG_ADMINISTRATOR = 1,
    TAG_MONITORING = 2,
    TAG_POLICYMAKER = 4,
    TAG_MANAGEMENT = 8,
    TAG_IMPERSONATOR = 16,
};

/* A user of the node. Passwords are stored as RabbitMQ stores them:
 * base64(salt(4) || H(salt || password)), with H per hashing_algorithm
 * (rabbit_password_hashing_sha256 by default; sha512 and md5 accepted
 * on import). */
struct user {
    char *name;
    char *password_hash;     /* base64 text, "" = no password login */
    char *hashing_algorithm; /* "rabbit_password_hashing_sha256" */
    char *tags;              /* as given: "administrator,monitoring" */
    uint32_t tag_bits;       /* TAG_* of the tags Warren knows */
    UT_hash_handle hh;
};

/* Borrowed or NULL. Iterate with node_users(n) and u->hh.next. */
struct user *node_user_find(struct node *n, const char *name);
struct user *node_users(struct node *n);
size_t node_user_count(const struct node *n);
/*
 * Creates or replaces a user. Exactly one of password (hashed here with a
 * fresh salt) and password_hash (taken as is, with hashing_algorithm, or
 * sha256 when NULL) may be non-NULL; both NULL keeps the current password
 * of an existing user, or creates one who cannot log in with a password.
 * tags: comma separated (RabbitMQ accepts "administrator,management").
 */
int node_user_put(struct node *n, const char *name, const char *password,
                  const char *password_hash, const char *hashing_algorithm,
                  const char *tags, struct vherr *err);
/* Deletes a user and its permissions. Returns WR_ERR (404) if absent. */
int node_user_delete(struct node *n, const char *name, struct vherr *err);
/* Checks a password against the user's hash (constant time). */
bool user_check_password(const struct user *u, struct bytes password);

/* A user's rights in a vhost: three PCRE regular expressions matched
 * against resource names (unanchored, as RabbitMQ's re:run); "" matches
 * nothing. */
struct perm {
    char *user;
    char *vhost;
    char *re[3]; /* configure, write, read (the source texts) */
    void *code[3];
    struct perm *next; /* all permissions, in a list */
};

/* Sets (creates or replaces) permissions; 400-style WR_ERR (code 406)
 * with the regex error when a pattern does not compile; 404 when the
 * user or vhost does not exist. */
int node_perm_set(struct node *n, const char *vhost, const char *user,
                  const char *configure, const char *write, const char *read,
                  struct vherr *err);
int node_perm_clear(struct node *n, const char *vhost, const char *user,
                    struct vherr *err);
/* Borrowed or NULL. */
const struct perm *node_perm_find(struct node *n, const char *vhost,
                                  const char *user);
/* All permissions (iterate with ->next). */
const struct perm *node_perms(struct node *n);
/*
 * RabbitMQ's check_resource_access: may user do `kind` to the resource
 * (`what` is "queue" or "exchange")? Refusals are 403 with RabbitMQ's
 * text: "access to queue 'q' in vhost '/' refused for user 'bob'".
 * user NULL = internal (always allowed).
 */
int vhost_perm_check(struct vhost *vh, const char *user, enum perm_kind kind,
                     const char *what, struct bytes name, struct vherr *err);
/* Changes with every permission change: callers may cache checks. */
uint64_t node_perm_gen(const struct node *n);
/* May the user open the vhost at all (has any permission entry)? */
bool vhost_user_has_access(struct vhost *vh, const char *user);

/* Per-vhost limits (RabbitMQ's vhost-limits); -1 = none. */
int node_vhost_set_limit(struct node *n, struct vhost *vh, const char *name,
                         int64_t value, struct vherr *err);
int node_vhost_clear_limit(struct node *n, struct vhost *vh, const char *name,
                           struct vherr *err);

/*
 * Policies, operator policies, runtime parameters and global parameters
 * are kept and exported as given (JSON objects in RabbitMQ's shapes),
 * even where Warren does not act on them. Each is keyed by
 * (vhost, component/name); vhost NULL for global parameters. The json
 * values are owned by the node; put steals `value`.
 */
enum node_kv {
    KV_POLICY,
    KV_OPERATOR_POLICY,
    KV_PARAMETER,
    KV_GLOBAL_PARAMETER,
};
int node_kv_put(struct node *n, enum node_kv kind, const char *vhost,
                const char *component, const char *name, json_t *value,
                struct vherr *err);
int node_kv_delete(struct node *n, enum node_kv kind, const char *vhost,
                   const char *component, const char *name, struct vherr *err);
/* A new JSON array of the items of that kind (of one vhost, or all when
 * vhost is NULL), in the shape the management API returns and the
 * definitions hold (with "vhost", "name", "component"...). */
json_t *node_kv_list(struct node *n, enum node_kv kind, const char *vhost);
/* Borrowed or NULL: one item. */
json_t *node_kv_find(struct node *n, enum node_kv kind, const char *vhost,
                     const char *component, const char *name);

/* ---- definitions (definitions.c): RabbitMQ's definitions JSON */

/* Exports durable vhosts, exchanges, queues and bindings (all vhosts, or
 * only one). Returns a new reference. */
json_t *node_defs_export(struct node *n, const char *only_vhost);
/* Imports a definitions document, creating what is missing; an object
 * that exists with other properties is an error (RabbitMQ's rules).
 * Stops at the first error, leaving what was imported before it. */
int node_defs_import(struct node *n, json_t *doc, struct vherr *err);
/* A field table body as a JSON object, and back (RabbitMQ's mapping). */
json_t *defs_table_to_json(struct bytes tbl);
int defs_json_to_table(json_t *obj, struct buf *out);

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
static inline struct bytes
binding_dest_name(const struct binding *b)
{
    if (b->dest.is_exchange) {
        const struct exchange *x = b->dest.ptr;

        return bytes_of(x->name, x->name_len);
    }
    const struct queue *q = b->dest.ptr;

    return bytes_of(q->name, q->name_len);
}

/* Per-exchange data the vhost keeps in exchange.user. */
struct xinfo {
    struct binding *out; /* bindings with this exchange as source */
    struct binding *in;  /* bindings with this exchange as destination */
};

#endif
