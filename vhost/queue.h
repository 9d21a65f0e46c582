/*
 * queue.h: queues (vhost/queue.c, vhost/consumer.c), as the rest of the
 * broker sees them: an opaque, refcounted struct queue (the vhost's
 * table holds one reference, every delivery waiting for ack one more, so
 * a deleted queue stays readable until its last delivery is settled),
 * the entries it hands out, and the consumers the server registers with
 * it. Its representation is vhost/'s own (vhost_int.h); readers outside
 * vhost/ take a struct queue_info snapshot.
 */
#ifndef WARREN_VHOST_QUEUE_H
#define WARREN_VHOST_QUEUE_H

#include "vhost/message.h"

struct queue;
struct consumer;
struct vh_owner;
struct stream_reader;

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
    /* On a stream queue: where it reads (vhost/stream.c). */
    struct stream_reader *sreader;
};

void queue_ref(struct queue *q);
void queue_unref(struct queue *q);

/* Drops expired messages from the head (message TTL, x-message-ttl;
 * like RabbitMQ's classic queues, only the head is examined). */
void queue_expire(struct queue *q);

/* The ready count, after dropping expired messages at the head. */
uint32_t queue_message_count(struct queue *q);

/* Adds a message (takes a new reference). Schedules dispatch. Returns
 * false when the queue refuses it (x-max-length with x-overflow
 * reject-publish): the publisher gets basic.nack. */
bool queue_push(struct queue *q, struct message *m);
/* Takes the head entry for basic.get. Returns false when empty. The
 * entry's reference passes to the caller. With ack, the delivery must
 * be settled later with queue_ack or queue_requeue. */
bool queue_get(struct queue *q, bool ack, struct qentry *out);
/* queue_get, also setting *count to queue_delivery_count of the message,
 * read before a get without ack forgets it. */
bool queue_get_counted(struct queue *q, bool ack, struct qentry *out,
                       int64_t *count);
/* How often e's message came back to q (requeued: rejected, nacked,
 * recovered, its channel closed), RabbitMQ's x-delivery-count: counted
 * by quorum queues only, kept across failovers (DCNT frames); -1 for
 * other queues. */
int64_t queue_delivery_count(const struct queue *q, struct qentry e);
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
struct consumer *queue_exclusive_consumer(const struct queue *q);
/* The consumer registered after c (the first when c is NULL), in
 * registration order; NULL after the last. */
struct consumer *queue_consumer_next(const struct queue *q,
                                     const struct consumer *c);
/*
 * Credit flow (server/flow.c): a queue that its consumers drain lets
 * publishers fill it with about QUEUE_CREDIT_HIGH bytes of ready messages
 * in memory (bodies, plus QUEUE_ENTRY_OVERHEAD each for the rest); a
 * publisher that finds it fuller is read no more until it is back under
 * QUEUE_CREDIT_LOW, so a flood costs the consumers' pace instead of
 * memory. A queue that is not draining (no consumer, or none took a
 * message for QUEUE_STALL_US) never holds anyone: it takes what comes,
 * as RabbitMQ's queues do, in memory up to the node's memory budget and
 * paged to disk beyond (queue_memory_budget), until the memory alarm.
 */
#define QUEUE_CREDIT_HIGH (8u << 20)
#define QUEUE_CREDIT_LOW  (4u << 20)
#define QUEUE_ENTRY_OVERHEAD \
    (sizeof(struct message) + sizeof(struct qentry) + 64)
#define QUEUE_STALL_US 1000000u
/* Bytes of q's ready messages in memory, overhead included (above). */
uint64_t queue_backlog_memory(const struct queue *q);
/* Whether a publisher that just pushed to q is to wait for it. */
bool queue_credit_exhausted(const struct queue *q);
/* Whether a publisher waiting for q may go on: under the low mark, not
 * drained any more, or deleted. */
bool queue_credit_restored(const struct queue *q);

/* The queue's name. */
struct bytes queue_name(const struct queue *q);
/* How many consumers are registered. */
uint32_t queue_consumer_count(const struct queue *q);
/* How long a delivery from q may wait for its ack (x-consumer-timeout,
 * or the consumer-timeout of a policy: the lowest), in ms; -1 = the
 * node's consumer_timeout. */
int64_t queue_consumer_timeout_ms(const struct queue *q);

/*
 * A snapshot of a queue, for readers outside vhost/ (the management API;
 * later the cluster), so that the queue's representation can change
 * under them. Strings are borrowed from the queue and valid until it
 * changes; counts are as of the call (ready is not expired first: call
 * queue_message_count for that).
 */
struct queue_info {
    struct bytes name;
    const char *vhost; /* NULL once deleted: its vhost may be gone */
    bool durable, exclusive, auto_delete;
    bool deleted;       /* deleted, still held by a delivery or a sample */
    bool locked;        /* exclusive to a connection (its owner) */
    bool single_active; /* x-single-active-consumer */
    bool quorum;        /* x-queue-type = quorum */
    struct bytes args;
    const char *policy;    /* applied policy's name, or NULL */
    const char *op_policy; /* applied operator policy's name, or NULL */
    uint32_t ready;        /* ready messages */
    uint32_t ready_paged;  /* of which on disk only */
    uint32_t unacked;
    uint32_t consumers;
    uint64_t ready_bytes; /* bodies of the ready messages */
    uint64_t mem_bytes;   /* of which held in memory */
    uint64_t memory;      /* what the queue holds in memory, all told */
    uint64_t stat_publish, stat_deliver, stat_ack, stat_redeliver;
    uint64_t stat_expired;
    bool dedup; /* x-message-deduplication: the cache's figures follow */
    uint32_t dedup_entries, dedup_size;
    uint64_t dedup_dropped; /* duplicates not enqueued */
};

void queue_info(const struct queue *q, struct queue_info *out);

#endif
