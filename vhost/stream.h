/*
 * stream.h: stream queues (x-queue-type = stream, vhost/stream.c), what
 * the server asks of them: RabbitMQ 3.10's rules for consumers and the
 * methods a stream refuses, and a snapshot of the log for management.
 */
#ifndef WARREN_VHOST_STREAM_H
#define WARREN_VHOST_STREAM_H

#include "vhost/vhost.h"

/* True when q is a stream queue. */
bool queue_is_stream(const struct queue *q);

/*
 * basic.consume on stream q: a consumer prefetch is required (406), no
 * automatic ack and no global prefetch (540), and x-stream-offset must
 * be one of first, last, next, an offset, a timestamp or an interval
 * like "10m" (406). Returns WR_OK or WR_ERR with err filled, RabbitMQ's
 * codes and texts.
 */
int stream_check_consume(struct queue *q, bool no_ack, uint32_t prefetch,
                         uint32_t prefetch_global, struct bytes args,
                         struct vherr *err);

/* 540 "<what> not supported by stream queues queue 'q' in vhost 'v'"
 * (basic.get, queue.purge, basic.nack and basic.reject). Returns
 * WR_ERR. */
int stream_refuse(struct queue *q, const char *what, struct vherr *err);

/* The log of a stream queue, as of now. */
struct stream_info {
    bool open;      /* false: its vhost's data is not open here */
    uint64_t first; /* the oldest offset kept */
    uint64_t next;  /* the offset the next message gets */
    uint64_t bytes; /* in segment files */
    uint64_t segments;
};

/* Fills *out for stream q; false when q is not a stream. */
bool stream_info(const struct queue *q, struct stream_info *out);

#endif
