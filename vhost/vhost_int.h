/*
 * vhost_int.h: what only the files of vhost/ share (and its unit test):
 * the representation of the node, the vhosts and the queues, which the
 * public headers (message.h, queue.h, vhost.h, node.h) keep opaque, and
 * the friend functions (double underscore) between the files.
 */
#ifndef WARREN_VHOST_INT_H
#define WARREN_VHOST_INT_H

#include "vhost/node.h"
#include "vhost/dedup.h"
#include "base/ring.h"
#include "amqp/amqp_props.h"
#include "amqp/ftable.h"

#include <uthash.h>
#include <utlist.h>

/* ---- the representation of the model (private to vhost/) */

/* The consumers of one priority that may have room: a ring whose head is
 * the next to try (round-robin). */
struct clevel {
    int64_t priority;
    struct consumer *ring;
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
    bool dirty;      /* on the node's dispatch list */
    bool may_expire; /* has x-message-ttl or got a message with TTL */
    bool timed;      /* on the node's timed list (node__watch_expiry) */
    struct queue *timed_next, *timed_prev;
    int64_t ttl_ms;     /* x-message-ttl; -1 = none */
    int64_t expires_ms; /* x-expires; -1 = none */
    uint64_t used_us;   /* last declare, basic.get or consumer (x-expires);
                           0 = not yet (a recovered queue) */
    int64_t max_len;    /* x-max-length; -1 = none */
    int64_t max_bytes;  /* x-max-length-bytes; -1 = none */
    int64_t consumer_timeout_ms; /* x-consumer-timeout; -1 = none */
    bool quorum;                 /* x-queue-type = quorum */
    int64_t delivery_limit;      /* quorum: returns allowed; -1 = none */
    struct dcount *dcounts;      /* quorum: by message id */
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
    uint64_t drained_us;  /* the last time a ready entry left (credit) */
    uint64_t qid;         /* the store's id of this queue (store_qid of name) */
    bool logged; /* some entry was ever INSTORE: delete needs a record */
    UT_hash_handle qid_hh; /* in vhost.by_qid */
    uint64_t stat_publish, stat_deliver, stat_ack, stat_redeliver;
    uint64_t stat_expired;
    struct dedup *dedup; /* x-message-deduplication, or NULL (dedup.h) */
    /* x-queue-type stream (stream.c), or NULL */
    struct stream *stream;
    UT_hash_handle hh;
};

#define QUEUE_MAGIC 0x51554555u

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
    char *tags; /* metadata, as given */
    /* metadata "replicas", "min_isr" (issue 12); 0: the node's default */
    uint32_t repl_replicas, repl_min_isr;
    bool serving;        /* runs here (always, unless the node is clustered) */
    struct store *store; /* the vhost's log; NULL when running in memory */
    char *store_dir;
    /* segments its closed stores planned to delete (vhost_repl_unlinks) */
    uint64_t unlinks_closed;
    /* a mirror's copy of the log, open with its hot index, taken over
       (node_vhost_adopt_log) and not yet served (vhost__open_store) */
    struct store *adopted;
    uint64_t next_id;       /* message ids when there is no store */
    uint64_t durable_lsn;   /* the store's, as of the last poll */
    uint64_t repl_limit;    /* vhost_set_repl_limit; UINT64_MAX: none */
    struct buf *dcount_tap; /* vhost_repl_dcount_tap, or NULL */
    bool store_failed;
    /* Once the log failed: the messages it had from this id on never
     * reached the disk; they were taken out of their queues (their
     * publishers got basic.nack). UINT64_MAX until then. */
    uint64_t lost_from;
    struct buf scratch;     /* meta encoding, reads from the log */
    struct vmove *moves;    /* positions moved while deliveries were out */
    struct delayx *delayed; /* x-delayed-message exchanges (delay.c) */
    /* streams with appends or offsets to write (stream.c) */
    struct stream *stream_dirty;
    /* stream durability (stream.c): the sync thread, the streams written
     * since their last sync batch, the last batch seen synced, whether
     * its failure was seen, when the last batch was handed over (ms) */
    struct fsyncer *stream_sync;
    struct stream *stream_unsynced;
    uint64_t stream_durable;
    bool stream_failed;
    uint64_t stream_sync_ms;
    /* the deduplication journal (dedup_log.c): open for appends
     * (dedup_fd, -1 after a failure), records not written yet, its size
     * after the last rewrite and now */
    bool dedup_open;
    int dedup_fd;
    struct buf dedup_jbuf;
    uint64_t dedup_base, dedup_size;
    /* replicated: side records go here (side.c), or NULL */
    struct buf *side_tap;
    UT_hash_handle hh;
};

#define VHOST_MAGIC 0x56484f53u

/* Per-exchange data the vhost keeps in exchange.user. */
struct xinfo {
    struct binding *out;  /* bindings with this exchange as source */
    struct binding *in;   /* bindings with this exchange as destination */
    struct dedup *dedup;  /* x-message-deduplication, or NULL (dedup.h) */
    struct delayx *delay; /* x-delayed-message: its pending messages */
};

/* Why a message left its queue for a dead-letter exchange: RabbitMQ's
 * x-death reasons. */
enum dl_reason {
    DL_REJECTED,       /* basic.reject / basic.nack with requeue=false */
    DL_EXPIRED,        /* message TTL */
    DL_MAXLEN,         /* x-max-length(-bytes): drop-head, reject-publish-dlx */
    DL_DELIVERY_LIMIT, /* quorum queues: returned too often */
};

/* How often a message of a quorum queue came back (requeued), while it
 * is in the queue: only messages that came back have one. */
struct dcount {
    uint64_t id; /* the message's id (QE_ID_MASK) */
    uint32_t n;
    UT_hash_handle hh;
};

/* A message on its way to a dead-letter exchange. */
struct dead_letter {
    struct vhost *vh;
    struct message *m;  /* as it was in the queue */
    struct bytes queue; /* the queue it died in */
    struct bytes dlx;   /* x-dead-letter-exchange */
    struct bytes dlrk;  /* x-dead-letter-routing-key */
    bool has_dlrk;      /* else the message's own routing key */
    enum dl_reason reason;
};

/* The node: every vhost, and the list of queues waiting for dispatch. */
struct node {
    struct node_opts opts;
    struct vhost *vhosts; /* uthash by name */
    struct queue *dirty_head, *dirty_tail;
    uint64_t now_us;
    bool defs_dirty;        /* definitions.json needs rewriting */
    uint64_t defs_gen;      /* node_defs_generation */
    bool defs_failing;      /* the last write of it failed (logged once) */
    uint64_t defs_retry_ms; /* after a failure: not before then */
    struct user *users;     /* uthash by name */
    struct perm *perms;     /* list */
    uint64_t perm_gen;      /* bumped on every permission change */
    json_t *kv[4];          /* enum node_kv: JSON arrays, kept as given */
    uint64_t mem_bytes;     /* sum of queue.mem_bytes */
    bool lazy;              /* over the memory budget: page new messages */
    bool booted; /* node_boot ran: new vhosts open their log at once */
    bool fresh;  /* no definitions file at boot: a first start */
    /* Dead letters waiting for node_run_dispatch (deadletter.c): never
     * republished from inside a queue operation. */
    struct dead_letter *dl;
    size_t ndl, capdl;
    /* Earliest node time at which a message may expire or a queue may
     * expire (x-expires); UINT64_MAX = none known. The server's expire
     * timer fires then (node_next_expiry). */
    uint64_t next_expiry_us;
    /* The queues node_expire looks at: those with x-expires or that may
     * hold messages with a TTL. The others (most of 100,000 queues) cost
     * the expire timer nothing. */
    struct queue *timed;
    uint64_t queues_created, queues_deleted; /* node_queue_churn */
};

/* node.c: something may expire at t (node time). */
static inline void
node__note_expiry(struct node *n, uint64_t t)
{
    if (t < n->next_expiry_us)
        n->next_expiry_us = t;
}

/* q has x-expires or may hold messages with a TTL: node_expire must
 * look at it. */
static inline void
node__watch_expiry(struct node *n, struct queue *q)
{
    if (!q->timed && !q->deleted) {
        DL_APPEND2(n->timed, q, timed_prev, timed_next);
        q->timed = true;
    }
}

/* q may hold messages with a TTL from now on. */
static inline void
queue__may_expire(struct queue *q)
{
    q->may_expire = true;
    node__watch_expiry(q->vh->node, q);
}

/* policy.c: sets q's TTL, expiry, length limits, overflow and
 * dead-lettering from its arguments and the policies that apply. */
void queue__apply_settings(struct queue *q);
/* policy.c: the same for every queue of vh, after a policy changed. */
void vhost__apply_policies(struct vhost *vh);
/* queue.c: applies changed settings to what q holds (length limits,
 * TTL) and schedules dispatch. */
void queue__enforce(struct queue *q);
/* queue.c: puts the entries recovered into an x-max-priority queue in
 * priority order, reading each message's priority from the log. */
void queue__sort_recovered(struct queue *q);
/* deadletter.c: queues m (a new reference) for q's dead-letter exchange,
 * if q has one (x-dead-letter-exchange). */
void deadletter__add(struct queue *q, struct message *m, enum dl_reason r);
/* deadletter.c: republishes the waiting dead letters (node_run_dispatch,
 * between callbacks: never from inside a queue operation). */
void deadletter__run(struct node *n);
/* deadletter.c: forgets the dead letters of vh (being removed), or of
 * every vhost when vh is NULL. */
void deadletter__drop(struct node *n, struct vhost *vh);

/* A log position that changed while its message was out for delivery. */
struct vmove {
    uint64_t id;
    uint64_t pos;
    UT_hash_handle hh;
};

/* user.c, perm.c, policy.c */
void node__users_free(struct node *n);
void node__perm_drop_user(struct node *n, const char *user);
void node__perm_drop_vhost(struct node *n, const char *vhost);
void node__perms_free(struct node *n);
void node__kv_drop_vhost(struct node *n, const char *vhost);
void node__kv_free(struct node *n);

/* persist.c */
void persist__meta_encode(const struct message *m, uint64_t wall_ms,
                          struct buf *out);
struct message *persist__message_from_record(struct bytes meta,
                                             struct bytes body, uint64_t now_us,
                                             uint64_t wall_now_ms);
/* Whether a record's meta says delivery-mode 2 (persistent). */
bool persist__record_persistent(struct bytes meta);
/* The priority of the message whose record is at pos (0 when unknown). */
void vhost__record_priority(struct vhost *vh, uint64_t pos, uint8_t *prio);
int vhost__open_store(struct vhost *vh, char *err, size_t errlen);
/* definitions.c: a durable exchange of the user's own (not "", not amq.*):
 * what the definitions keep and what makes a vhost not empty. */
bool defs__exchange_is_exported(const struct exchange *x);
void vhost__close_store(struct vhost *vh);
uint64_t vhost__next_id(struct vhost *vh);
uint64_t vhost__log_message(struct vhost *vh, struct message *m,
                            struct queue **qs, size_t n, bool *refused);
void vhost__log_ack(struct vhost *vh, struct queue *q, uint64_t id);
uint64_t vhost__publish_paged(struct vhost *vh, struct message *m,
                              struct queue **qs, size_t n, bool *refused,
                              bool *rejected);
void vhost__log_queue_delete(struct vhost *vh, struct queue *q);
int vhost__page_in(struct vhost *vh, struct qentry *e);
void vhost__settle_moves(struct vhost *vh, struct message *m, bool requeued);

/* delay.c: x-delayed-message exchanges. added/removed keep an
 * exchange's pending messages (removed drops them, in the log too);
 * publish holds m back when its x-delay says so and returns true (res
 * filled: lsn of a persistent record, or refused); the log's recovery
 * hands over the records of a delayed exchange's queue id (recovered
 * returns false for any other), then recovery_done reads their due
 * times; moved and lost follow compaction and a failed log. */
struct publish_result;
void delay__exchange_added(struct vhost *vh, struct exchange *x);
void delay__exchange_removed(struct vhost *vh, struct exchange *x);
bool delay__publish(struct vhost *vh, struct exchange *x, struct bytes headers,
                    struct message *m, struct publish_result *res);
bool delay__recovered(struct vhost *vh, uint64_t qid, uint64_t id,
                      uint64_t pos);
void delay__recovery_done(struct vhost *vh);
bool delay__moved(struct vhost *vh, uint64_t qid, uint64_t id,
                  uint64_t new_pos);
void delay__lost(struct vhost *vh, uint64_t from);
/* Whether headers' x-delay holds a message back (routing then stops at
 * delayed exchanges reached through bindings: routeset.hold_delayed);
 * hold_reached holds m back at each exchange rs->held names, adding to
 * res (the largest LSN; refused if any refused it). */
bool delay__wanted(struct bytes headers);
void delay__hold_reached(struct vhost *vh, const struct routeset *rs,
                         struct bytes headers, struct message *m,
                         struct publish_result *res);

/* vhostdir.c: <data_dir>/vhosts/<SHA-256 of the name, hex> */
char *vhostdir__path(const char *data_dir, const char *name);
/* Migrates an old directory, creates the directory, checks or writes its
 * name file. Sets *out (malloc'ed) or returns WR_ERR with err filled. */
int vhostdir__prepare(const char *data_dir, const char *name, char **out,
                      char *err, size_t errlen);
/* Removes dir, which must be the data directory of vhost name. */
void vhostdir__remove(const char *data_dir, const char *name, const char *dir);
/* Finishes deletions cut short by a crash. */
void vhostdir__sweep(const char *data_dir);
/* The directory from (a mirror's copy of the log) becomes the vhost's
 * directory: its name file written, the vhost's old directory removed,
 * then one rename (vhosts/ and from's parent fsynced), so that a crash
 * leaves the copy whole where it was or whole in the vhost's place. */
int vhostdir__adopt(const char *data_dir, const char *name, const char *from,
                    char *err, size_t errlen);

/* queue.c: the ready list, a ring of struct qentry */
static inline struct qentry *
qd_at(struct ring *d, size_t i)
{
    return ring_at(d, sizeof(struct qentry), i);
}
static inline void
qd_push_back(struct ring *d, struct qentry e)
{
    *(struct qentry *)ring_push_back(d, sizeof(e)) = e;
}
bool qd_pop_front(struct ring *d, struct qentry *out);
void qd_insert_sorted(struct ring *d, struct qentry e);
void queue__track(struct queue *q);
/* Adds a message that lives only in the log (paging): id and position of
 * its record, which includes this queue; m is the message (not kept). */
bool queue__push_paged(struct queue *q, uint64_t id, uint64_t pos,
                       struct message *m);
/* Accounts bytes of bodies a queue holds in memory (+ or -). */
void queue__mem(struct queue *q, int64_t delta);
/* queue_backlog_memory, inlined for the publish path's look at every
 * queue a message goes to (credit flow). */
static inline uint64_t
queue__backlog(const struct queue *q)
{
    return q->mem_bytes +
           (q->ready.n - q->ready_paged) * (uint64_t)QUEUE_ENTRY_OVERHEAD;
}
/* Drops every ready entry; log_acks = tell the log (not when a queue
 * delete record covers them). Returns how many. */
uint32_t queue__drop_ready(struct queue *q, bool log_acks);
/* consumer.c: the consumer the next message of q goes to, or NULL when
 * none has room: the highest priority first, round-robin among equals;
 * with x-single-active-consumer only the earliest registered one. */
struct consumer *queue__pick_consumer(struct queue *q);
/* consumer.c: unregisters every consumer of q (being deleted), telling
 * each owner (ops->cancel). */
void queue__cancel_consumers(struct queue *q);
/* consumer.c: frees q's dispatch structures (q has no consumers). */
void queue__consumers_fini(struct queue *q);
/* The log failed: drops the ready entries whose records never reached
 * the disk (logged, id >= from). Returns how many. */
uint32_t queue__drop_lost(struct queue *q, uint64_t from);

/* node.c: q is on the dirty list and holds a reference for it. */
void node__schedule(struct node *n, struct queue *q);

/* binding.c */
/* Adds the binding record (and the routing index entry). Returns 1 when
 * new, 0 when it existed. */
int binding__add(struct vhost *vh, struct exchange *src, struct xdest dest,
                 struct bytes key, struct bytes args);
struct binding *binding__find(struct exchange *src, struct xdest dest,
                              struct bytes key, struct bytes args);
/* Returns 1 when removed, 0 when there was no such binding. */
int binding__remove(struct vhost *vh, struct exchange *src, struct xdest dest,
                    struct bytes key, struct bytes args);
/* Removes every binding whose destination is the given list's owner. */
void binding__remove_all_in(struct vhost *vh, struct binding **list);
/* Removes every binding whose source is x. */
void binding__remove_all_out(struct vhost *vh, struct exchange *x);

/* args.c: rs is RabbitMQ's resource text, "queue 'q' in vhost '/'" */
int args__check_queue(struct bytes args, const char *rs, bool durable,
                      bool exclusive, bool auto_delete, struct vherr *err);
/* x-queue-type = quorum */
bool args__is_quorum(struct bytes args);
int args__equiv_queue(struct bytes cur, struct bytes req, const char *rs,
                      struct vherr *err);
int args__check_exchange(struct bytes args, enum exchange_type t,
                         const char *rs, struct vherr *err);
int args__equiv_exchange(struct bytes cur, struct bytes req, const char *rs,
                         struct vherr *err);

/* vhost.c */
void vhost__exchange_delete(struct vhost *vh, struct exchange *x);
struct vhost *vhost__new(struct node *n, const char *name);
void vhost__free(struct vhost *vh);

/* dedup_log.c: the deduplication journal (see there). load: replays
 * it into the caches, true when there was one; open: rewrites it from
 * the caches and opens it for appends; key: a durable cache remembered
 * a key (expiry on the caches' clock), res (may be NULL) then waits for
 * its sync; forget: a durable deduplicating object was deleted; flush:
 * writes what was appended (node_flush, before the sync thread's kick). */
bool vhost__dedup_log_load(struct vhost *vh, uint64_t now_ms);
void vhost__dedup_log_open(struct vhost *vh, uint64_t now_ms);
void vhost__dedup_log_close(struct vhost *vh, uint64_t now_ms);
void vhost__dedup_log_key(struct vhost *vh, uint8_t kind, struct bytes name,
                          const uint8_t h[16], uint64_t expires_ms,
                          uint64_t now_ms, struct publish_result *res);
void vhost__dedup_log_forget(struct vhost *vh, uint8_t kind, struct bytes name);
void vhost__dedup_log_flush(struct vhost *vh, uint64_t now_ms);
/* The journal as a rewrite would make it now (its magic and the caches'
 * live durable keys) into out; false when vh keeps no journal. */
bool vhost__dedup_log_image(struct vhost *vh, struct buf *out);

/* side.c: side records (side.h). encode: one record of type with the
 * u64 fields nums, then the bytes a and b, to out; tap: the same to the
 * vhost's side tap, returning the position it took (0: not
 * replicated). */
void side__encode(struct buf *out, uint8_t type, const uint64_t *nums,
                  size_t nn, struct bytes a, struct bytes b);
uint64_t side__tap(struct vhost *vh, uint8_t type, const uint64_t *nums,
                   size_t nn, struct bytes a, struct bytes b);

#endif
