/*
 * bodyrx.c: big body frames read straight into their message.
 *
 * A body used to cross user space twice: the kernel copied it into the
 * loop's read buffer, then publish_body copied it into the message (a
 * fifth of the broker's CPU for 64 KiB messages). Now, when a read ends
 * inside a body frame of at least BODYRX_MIN payload octets that its
 * channel takes, the payload read so far goes into the message and the
 * rest is read there: one readv whose first iovec is the rest of the
 * payload, in the message, and whose second is the loop's read buffer,
 * for the frame-end octet and what follows (where whole big bodies stay
 * as they are: message_adopt, conn.c). Only the part of a big body that
 * came before the cut is copied.
 *
 * Nothing is taken on trust. The frame's header has passed frame_parse
 * (type, frame_max); the channel's checks are publish_body's
 * (publish_body_room: the channel assembles a body with room for the
 * whole frame); the frame-end octet is checked when it comes, with the
 * close a frame read whole gets. When the channel or the connection
 * closes while the payload is still coming (a consumer timeout, a forced
 * close), the rest of the frame is read and dropped, as a frame read
 * whole would be. TLS connections read through OpenSSL and keep the
 * ordinary path.
 */
#include "server/channel.h"

#include <sys/uio.h>

/* Smaller body frames are cut from the read buffer like any frame: the
 * readv of their own would cost about what copying them does. */
#define BODYRX_MIN (16u << 10)

bool
bodyrx_begin(struct conn *c, const uint8_t *p, size_t len)
{
    struct channel *ch;
    struct frame f;
    uint8_t *dst;
    uint32_t size;
    size_t have;

    if (c->tls || c->state != CONN_OPEN || c->input_held || c->blocked ||
        c->yielded)
        return false;
    if (len < FRAME_HEADER_SIZE + sizeof(c->rx.first) || p[0] != FRAME_BODY ||
        frame_parse(&c->fp, p, len, &f) != WR_AGAIN)
        return false;
    /* Ensures: a body frame within frame_max, cut: len < size + 8. */
    size = be32_load(p + 3);
    have = len - FRAME_HEADER_SIZE;
    if (size < BODYRX_MIN || be16_load(p + 1) == 0)
        return false;
    ch = chan_find(c, be16_load(p + 1));
    if (!ch || !(dst = publish_body_room(ch, size)))
        return false;
    memcpy(dst, p + FRAME_HEADER_SIZE, have);
    publish_body_advance(ch, have);
    memcpy(c->rx.first, p + FRAME_HEADER_SIZE, sizeof(c->rx.first));
    c->rx.size = size;
    c->rx.channel = ch->id;
    c->rx.left = size - (uint32_t)have + 1;
    c->rx.dropping = false;
    return true;
}

/* The channel the frame's payload goes to, or NULL when it no longer
 * takes it; *dst: where the next n octets go. */
static struct channel *
taker(struct conn *c, size_t n, uint8_t **dst)
{
    struct channel *ch;

    if (c->rx.dropping || c->state != CONN_OPEN)
        return NULL;
    ch = chan_find(c, c->rx.channel);
    if (!ch || !(*dst = publish_body_room(ch, n)))
        return NULL;
    return ch;
}

/* The frame-end octet came. Returns false when it was not frame-end (the
 * connection failed or was dropped, as conn_process does). */
static bool
end_frame(struct conn *c, uint8_t octet)
{
    struct channel *ch;

    c->rx.left = 0;
    if (octet != FRAME_END) {
        if (c->state == CONN_CLOSING)
            conn_drop(c, c->close_reason);
        else if (c->state == CONN_OPEN)
            conn_fail_frame_end(c, FRAME_BODY, c->rx.first, c->rx.size, octet);
        return false;
    }
    if (!c->rx.dropping && c->state == CONN_OPEN &&
        (ch = chan_find(c, c->rx.channel)) != NULL)
        publish_body_end(ch);
    return true;
}

ssize_t
bodyrx_read(struct conn *c, uint8_t *buf, size_t room, const uint8_t **in,
            size_t *inlen, bool *more)
{
    size_t payload = c->rx.left - 1;
    uint8_t *dst = NULL;
    struct channel *ch = payload ? taker(c, payload, &dst) : NULL;
    struct iovec iov[2];
    size_t asked, body;
    int k = 0;
    ssize_t n;

    if (payload && !ch) {
        /* Dropped: the payload into buf, nothing after it this time. */
        c->rx.dropping = true;
        iov[k++] = (struct iovec){buf, WR_MIN(payload, room)};
    } else {
        if (payload)
            iov[k++] = (struct iovec){dst, payload};
        iov[k++] = (struct iovec){buf, room};
    }
    asked = iov[0].iov_len + (k > 1 ? iov[1].iov_len : 0);
    n = readv(c->fd, iov, k);
    if (n <= 0)
        return n;
    *more = (size_t)n == asked;
    body = WR_MIN((size_t)n, payload);
    if (ch)
        publish_body_advance(ch, body);
    c->rx.left -= (uint32_t)body;
    /* What followed the payload: in buf after it, or nothing when the
     * payload was read into buf to be dropped. */
    *in = ch || !payload ? buf : buf + n;
    *inlen = ch || !payload ? (size_t)n - body : 0;
    if (c->rx.left == 1 && *inlen > 0) {
        uint8_t octet = (*in)[0];

        (*in)++;
        (*inlen)--;
        if (!end_frame(c, octet))
            *inlen = 0; /* a refused frame: the rest of the read goes */
    }
    return n;
}
