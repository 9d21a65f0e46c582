/*
 * outq.c: a connection's output queue and its writev flush.
 *
 * Frames are appended to one growable buffer. A large body is not copied:
 * outq_put_ref() records "at this point of the buffer, send these bytes of
 * that message", holding a message reference until they are written. A
 * flush turns the queue into one iovec array (buffer runs interleaved
 * with body slices) and calls writev once; the prepare pass calls it once
 * per connection per loop iteration (write-behind, as Redis does).
 *
 * Invariants: refs (a base/ring.h deque) are ordered by `at`; head <= the
 * first ref's `at` when a ref is pending; ref_bytes is the sum of unsent
 * ref lengths.
 */
#include "server/outq.h"

#include "vhost/message.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/uio.h>

#define OUTQ_IOV 256

void
outq_init(struct outq *q)
{
    memset(q, 0, sizeof(*q));
    buf_init(&q->b);
}

static struct oref *
ref_at(struct outq *q, size_t i)
{
    return ring_at(&q->refs, sizeof(struct oref), i);
}

void
outq_fini(struct outq *q)
{
    for (size_t i = 0; i < q->refs.n; i++)
        message_unref(ref_at(q, i)->m);
    ring_fini(&q->refs);
    buf_fini(&q->b);
    memset(q, 0, sizeof(*q));
}

void
outq_put_ref(struct outq *q, struct message *m, size_t off, size_t len)
{
    struct oref *r;

    WR_ASSERT(len > 0);
    r = ring_push_back(&q->refs, sizeof(*r));
    r->at = q->b.len;
    r->m = m;
    r->off = off;
    r->len = len;
    message_ref(m);
    q->ref_bytes += len;
}

int
outq_iov(struct outq *q, struct iovec *iov, int max)
{
    size_t pos = q->head;
    int n = 0;

    for (size_t i = 0; i < q->refs.n; i++) {
        struct oref *r = ref_at(q, i);

        if (n + 2 > max)
            return n;
        if (r->at > pos) {
            iov[n].iov_base = q->b.data + pos;
            iov[n++].iov_len = r->at - pos;
            pos = r->at;
        }
        iov[n].iov_base = r->m->body + r->off;
        iov[n++].iov_len = r->len;
    }
    if (q->b.len > pos && n < max) {
        iov[n].iov_base = q->b.data + pos;
        iov[n++].iov_len = q->b.len - pos;
    }
    return n;
}

void
outq_consume(struct outq *q, size_t n)
{
    while (n > 0) {
        struct oref *r = q->refs.n ? ref_at(q, 0) : NULL;
        size_t run = (r ? r->at : q->b.len) - q->head;

        if (run > 0) {
            size_t k = WR_MIN(run, n);
            q->head += k;
            n -= k;
            continue;
        }
        WR_ASSERT(r != NULL);
        {
            size_t k = WR_MIN(r->len, n);
            r->off += k;
            r->len -= k;
            q->ref_bytes -= k;
            n -= k;
            if (r->len == 0) {
                message_unref(r->m);
                ring_pop_front(&q->refs);
            }
        }
    }
    if (q->head == q->b.len && q->refs.n == 0) {
        q->head = 0;
        q->b.len = 0;
        if (q->b.cap > (256u << 10))
            buf_fini(&q->b);
    } else if (q->head > (64u << 10) && q->head > q->b.len / 2) {
        size_t h = q->head;

        memmove(q->b.data, q->b.data + h, q->b.len - h);
        q->b.len -= h;
        q->head = 0;
        for (size_t i = 0; i < q->refs.n; i++)
            ref_at(q, i)->at -= h;
    }
}

int
outq_flush(struct outq *q, int fd, uint64_t *sent)
{
    struct iovec iov[OUTQ_IOV];

    while (outq_pending(q) > 0) {
        int n = outq_iov(q, iov, OUTQ_IOV);
        ssize_t k;

        WR_ASSERT(n > 0);
        k = writev(fd, iov, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return WR_AGAIN;
            return WR_ERR;
        }
        *sent += (uint64_t)k;
        outq_consume(q, (size_t)k);
    }
    return WR_OK;
}
