/*
 * frame.c: the AMQP 0-9-1 frame parser and frame writers.
 *
 * Parsing is sans-IO and restartable: frame_parse() looks at the bytes the
 * caller has accumulated and either cuts one whole frame out of them,
 * asks for more (WR_AGAIN), or refuses the stream (WR_ERR). It never
 * buffers anything itself, so a caller reading from a socket just appends
 * to its input buffer, calls frame_parse() until WR_AGAIN, and drops the
 * consumed prefix.
 *
 * Invariants:
 * - Nothing past buf[len) is read, whatever the size field says.
 * - The type and size are judged on the 7-byte header alone, so a peer
 *   cannot make the caller buffer an oversized payload before being
 *   refused: with frame_max set, a caller never needs more than frame_max
 *   bytes of input buffer.
 * - Sizes are compared in 64 bits: size + FRAME_OVERHEAD cannot wrap.
 *
 * Writers append whole frames; frame_begin()/frame_end() bracket a payload
 * written in place so that no frame is assembled twice.
 */
#include "amqp/frame.h"

#include <assert.h>

static_assert(FRAME_METHOD == AMQP_FRAME_METHOD, "spec frame-method");
static_assert(FRAME_HEADER == AMQP_FRAME_HEADER, "spec frame-header");
static_assert(FRAME_BODY == AMQP_FRAME_BODY, "spec frame-body");
static_assert(FRAME_HEARTBEAT == AMQP_FRAME_HEARTBEAT, "spec frame-heartbeat");
static_assert(FRAME_END == AMQP_FRAME_END, "spec frame-end");
static_assert(FRAME_MIN_SIZE == AMQP_FRAME_MIN_SIZE, "spec frame-min-size");
static_assert(sizeof(AMQP_PROTOCOL_HEADER) - 1 == AMQP_PROTOCOL_HEADER_LEN,
              "protocol header is 8 octets");

void
frame_parser_init(struct frame_parser *p, uint32_t frame_max)
{
    p->frame_max = frame_max;
    p->err = FRAME_ERR_NONE;
    p->bad_type = 0;
    p->bad_size = 0;
}

static bool
type_is_known(uint8_t type)
{
    switch (type) {
    case FRAME_METHOD:
    case FRAME_HEADER:
    case FRAME_BODY:
    case FRAME_HEARTBEAT:
        return true;
    default:
        return false;
    }
}

static ssize_t
refuse(struct frame_parser *p, enum frame_error err)
{
    p->err = err;
    return WR_ERR;
}

ssize_t
frame_parse(struct frame_parser *p, const uint8_t *buf, size_t len,
            struct frame *out)
{
    uint32_t size;
    uint64_t total;

    if (len < FRAME_HEADER_SIZE)
        return WR_AGAIN;
    size = be32_load(buf + 3);
    if (!type_is_known(buf[0])) {
        p->bad_type = buf[0];
        return refuse(p, FRAME_ERR_BAD_TYPE);
    }
    total = (uint64_t)size + FRAME_OVERHEAD;
    if (p->frame_max != 0 && total > p->frame_max) {
        p->bad_type = buf[0];
        p->bad_size = size;
        return refuse(p, FRAME_ERR_TOO_LARGE);
    }
    if ((uint64_t)len < total)
        return WR_AGAIN;
    /* Ensures: buf[0 .. total) is present, total <= len fits size_t. */
    if (buf[FRAME_HEADER_SIZE + size] != FRAME_END)
        return refuse(p, FRAME_ERR_BAD_END);
    out->type = buf[0];
    out->channel = be16_load(buf + 1);
    out->payload = bytes_of(buf + FRAME_HEADER_SIZE, size);
    return (ssize_t)total;
}

const char *
frame_error_text(enum frame_error err)
{
    switch (err) {
    case FRAME_ERR_NONE:
        return "no error";
    case FRAME_ERR_BAD_END:
        return "bad frame end octet";
    case FRAME_ERR_BAD_TYPE:
        return "unknown frame type";
    case FRAME_ERR_TOO_LARGE:
        return "frame larger than frame_max";
    }
    return "unknown frame error";
}

int
frame_parse_content_header(struct bytes payload, uint16_t *class_id,
                           uint64_t *body_size, struct bytes *props)
{
    if (payload.len < FRAME_CONTENT_HEADER_SIZE + 2)
        return WR_ERR;
    *class_id = be16_load(payload.ptr);
    /* payload.ptr + 2: weight, unused in 0-9-1 (must be 0; not checked,
     * as RabbitMQ does not check it either) */
    *body_size = be64_load(payload.ptr + 4);
    *props = bytes_of(payload.ptr + FRAME_CONTENT_HEADER_SIZE,
                      payload.len - FRAME_CONTENT_HEADER_SIZE);
    return WR_OK;
}

size_t
frame_begin(struct buf *b, uint8_t type, uint16_t channel)
{
    size_t mark = b->len;
    uint8_t *p = buf_reserve(b, FRAME_HEADER_SIZE);

    p[0] = type;
    be16_store(p + 1, channel);
    be32_store(p + 3, 0);
    b->len += FRAME_HEADER_SIZE;
    return mark;
}

void
frame_end(struct buf *b, size_t mark)
{
    size_t size;

    WR_ASSERT(mark + FRAME_HEADER_SIZE <= b->len);
    size = b->len - mark - FRAME_HEADER_SIZE;
    WR_ASSERT(size <= UINT32_MAX);
    be32_store(b->data + mark + 3, (uint32_t)size);
    buf_put_u8(b, FRAME_END);
}

void
frame_put_method(struct buf *b, uint16_t channel, const struct amqp_method *m)
{
    size_t mark = frame_begin(b, FRAME_METHOD, channel);

    amqp_method_encode(m, b);
    frame_end(b, mark);
}

void
frame_put_heartbeat(struct buf *b)
{
    frame_end(b, frame_begin(b, FRAME_HEARTBEAT, 0));
}

/* class-id, weight 0, body size */
static void
put_content_header_start(struct buf *b, uint64_t body_size)
{
    buf_put_u16(b, AMQP_CLASS_BASIC);
    buf_put_u16(b, 0);
    buf_put_u64(b, body_size);
}

void
frame_put_content_header(struct buf *b, uint16_t channel, uint64_t body_size,
                         struct bytes props)
{
    size_t mark = frame_begin(b, FRAME_HEADER, channel);

    put_content_header_start(b, body_size);
    buf_append(b, props.ptr, props.len);
    frame_end(b, mark);
}

void
frame_put_content_header_props(struct buf *b, uint16_t channel,
                               uint64_t body_size,
                               const struct amqp_basic_props *props)
{
    size_t mark = frame_begin(b, FRAME_HEADER, channel);

    put_content_header_start(b, body_size);
    amqp_basic_props_encode(props, b);
    frame_end(b, mark);
}

void
frame_put_body(struct buf *b, uint16_t channel, struct bytes body,
               uint32_t frame_max)
{
    size_t chunk = UINT32_MAX;
    size_t off = 0;

    WR_ASSERT(frame_max == 0 || frame_max > FRAME_OVERHEAD);
    if (frame_max != 0)
        chunk = frame_max - FRAME_OVERHEAD;
    buf_reserve(b, body.len + (body.len / chunk + 1) * FRAME_OVERHEAD);
    while (off < body.len) {
        size_t n = WR_MIN(chunk, body.len - off);
        size_t mark = frame_begin(b, FRAME_BODY, channel);

        buf_append(b, body.ptr + off, n);
        frame_end(b, mark);
        off += n;
    }
}
