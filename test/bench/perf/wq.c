/*
 * wq.c: warren-perf's write queue.
 *
 * A connection's pending output is a list of segments: ranges of one
 * owned buffer (frame headers, methods, small bodies) and borrowed
 * slices (a producer's padding, identical for all its messages). One
 * writev sends them all, so a burst of publishes costs one system call
 * and a 64 KiB body is never copied in user space.
 *
 * Invariants: segments refer to b by offset (b may move when it grows);
 * every byte of b below `committed` belongs to exactly one segment; when
 * the queue drains, b, the segments and `committed` reset to empty.
 */
#include "test/bench/perf/perf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#define WQ_MAX_IOV 1024

void
wq_init(struct wq *q)
{
    memset(q, 0, sizeof(*q));
    buf_init(&q->b);
}

void
wq_fini(struct wq *q)
{
    buf_fini(&q->b);
    free(q->seg);
    memset(q, 0, sizeof(*q));
}

static struct wseg *
push_seg(struct wq *q)
{
    if (q->nseg == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->seg = xrealloc(q->seg, (size_t)q->cap * sizeof(*q->seg));
    }
    return &q->seg[q->nseg++];
}

void
wq_commit(struct wq *q)
{
    size_t n = q->b.len - q->committed;
    struct wseg *last = q->nseg > q->head ? &q->seg[q->nseg - 1] : NULL;

    if (n == 0)
        return;
    if (last != NULL && last->ext == NULL &&
        last->off + last->len == q->committed) {
        last->len += n;
    } else {
        struct wseg *s = push_seg(q);

        s->ext = NULL;
        s->off = q->committed;
        s->len = n;
    }
    q->committed = q->b.len;
    q->pending += n;
}

void
wq_put_ext(struct wq *q, const void *p, size_t n)
{
    struct wseg *s;

    wq_commit(q);
    if (n == 0)
        return;
    s = push_seg(q);
    s->ext = p;
    s->off = 0;
    s->len = n;
    q->pending += n;
}

static void
reset(struct wq *q)
{
    q->nseg = 0;
    q->head = 0;
    q->head_done = 0;
    q->pending = 0;
    /* Bytes appended but not committed move to the front. */
    buf_consume(&q->b, q->committed);
    q->committed = 0;
}

/* Drops n written bytes from the front. */
static void
advance(struct wq *q, size_t n)
{
    q->pending -= n;
    while (n > 0) {
        struct wseg *s = &q->seg[q->head];
        size_t left = s->len - q->head_done;

        if (n < left) {
            q->head_done += n;
            return;
        }
        n -= left;
        q->head++;
        q->head_done = 0;
    }
}

int
wq_write(struct wq *q, int fd)
{
    struct iovec iov[WQ_MAX_IOV];

    while (q->pending > 0) {
        int n = 0;
        size_t want = 0;
        ssize_t w;

        for (int i = q->head; i < q->nseg && n < WQ_MAX_IOV; i++) {
            const struct wseg *s = &q->seg[i];
            const uint8_t *p = s->ext ? s->ext : q->b.data + s->off;
            size_t skip = i == q->head ? q->head_done : 0;

            iov[n].iov_base = (void *)(p + skip);
            iov[n].iov_len = s->len - skip;
            want += iov[n].iov_len;
            n++;
        }
        w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return WR_AGAIN;
            return WR_ERR;
        }
        advance(q, (size_t)w);
        if ((size_t)w < want)
            return WR_AGAIN;
    }
    reset(q);
    return WR_OK;
}
