/*
 * stream_int.h: what the files of vhost/ call in vhost/stream.c (stream
 * queues), friend functions private to the folder.
 */
#ifndef WARREN_VHOST_STREAM_INT_H
#define WARREN_VHOST_STREAM_INT_H

#include "vhost/vhost.h"

#include <jansson.h>

struct stream;
struct queue_decl;

/* True when the arguments declare a stream (x-queue-type = stream). */
bool stream__is_declared(struct bytes args);
/* A new stream's name: RabbitMQ refuses a server-named one. Definitions
 * and management declare with server_named set and no connection: their
 * names are the user's. (Its arguments and properties are checked by
 * args__check_queue.) */
int stream__check_decl(const struct queue_decl *d, struct vherr *err);
/* q is a stream: its limits from its arguments and the definitions of
 * its policy and operator policy (either may be NULL): max-age and
 * stream-max-segment-size-bytes (the argument wins), max-length-bytes
 * (the lowest); none of a classic queue's settings (no TTL, expiry,
 * length limit or dead-lettering: RabbitMQ's streams ignore them). */
void stream__apply_policy(struct queue *q, json_t *pol, json_t *op);
/* "7D", "1h", "10m", ...: milliseconds, or 0 when not an interval. */
uint64_t stream__parse_interval(struct bytes s);
/* A new queue: when its arguments declare a stream, gives it its log
 * (opened when the vhost's data is). */
void stream__init(struct queue *q);
/* The vhost's data opened or closed: opens or closes its streams' logs. */
void stream__open_all(struct vhost *vh);
void stream__close_all(struct vhost *vh);
/* q deleted (its consumers cancelled): removes its log's files. */
void stream__delete(struct queue *q);
/* q freed. */
void stream__free(struct queue *q);
/* Writes the appends buffered in vh's streams and hands them to the
 * stream sync thread as the fsync policy says (node_flush). */
void stream__flush(struct vhost *vh);
/* The stream sync thread moved (a batch synced, or it failed): notes it
 * and tells the node's durable hook (node_poll). */
void stream__poll(struct vhost *vh);
/* vh's sync thread (streams and the deduplication journal), started
 * at the first call; NULL when it cannot be. */
struct fsyncer *stream__syncer(struct vhost *vh);
/* True once vh's stream sync failed (sticky). */
bool stream__sync_failed(const struct vhost *vh);
/* Appends m to the streams among qs[0..n) and takes them out of qs,
 * counting them in res; returns the number of other queues left. */
size_t stream__publish(struct message *m, struct queue **qs, size_t n,
                       struct publish_result *res);
/* A consumer registered with or leaving stream q: its reader. */
void stream__consumer_add(struct queue *q, struct consumer *c);
void stream__consumer_remove(struct consumer *c);
/* Feeds q's consumers from the log. */
void stream__dispatch(struct queue *q);
/* A delivery of q acked: returns the credit, moves its tracked offset. */
void stream__ack(struct queue *q, struct qentry e);
/* A delivery of q put back: a stream only returns the credit. */
void stream__requeue(struct queue *q, struct qentry e);
/* A new mirror's snapshot (side.c): begin appends an SOFFS record of
 * every stream's tracked offsets to out and tells add each open stream
 * (its qid, its log's generation, the offsets it holds); read appends
 * SAPP records of stream qid from *cursor up to end, about max bytes,
 * and returns true when that stream is done (or is gone, or is another
 * log now: gen differs). */
void stream__snap_begin(struct vhost *vh, struct buf *out,
                        void (*add)(void *arg, uint64_t qid, uint64_t gen,
                                    uint64_t first, uint64_t next),
                        void *arg);
bool stream__snap_read(struct vhost *vh, uint64_t qid, uint64_t gen,
                       uint64_t *cursor, uint64_t end, struct buf *out,
                       size_t max);

#endif
