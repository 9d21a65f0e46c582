/*
 * outq.h: a connection's output queue (outq.c): frames appended to one
 * buffer, large bodies referenced from their message instead of copied,
 * all written with one writev when the prepare pass flushes it. The AMQP
 * connections and the management API's HTTP connections both write
 * through it.
 */
#ifndef WARREN_SERVER_OUTQ_H
#define WARREN_SERVER_OUTQ_H

#include "base/base.h"
#include "base/ring.h"

struct message;

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
/* Fills iov (max >= 2 entries) from the queue's front; returns the count.
 * For writers other than writev (tls.c). */
struct iovec;
int outq_iov(struct outq *q, struct iovec *iov, int max);
/* Consumes n written bytes from the front. */
void outq_consume(struct outq *q, size_t n);
/* Writes as much as the socket takes. Returns WR_OK when everything went,
 * WR_AGAIN when the socket is full, WR_ERR on a socket error. */
int outq_flush(struct outq *q, int fd, uint64_t *sent);

#endif
