/*
 * fuzz_frame: the frame parser fed like a connection feeds it, then every
 * method and content header frame through the codec.
 *
 * Input: byte 0 seeds the chunk sizes, byte 1 picks frame_max (0: no
 * limit, 1: 4096, 2: 131072, n >= 3: n itself, below the overhead too),
 * the rest is the byte stream. Chunks are appended to an input buffer and
 * the parser is called until it wants more, consuming what it returns, as
 * server/conn.c does. Each call sees an exact-size heap copy of the
 * unconsumed bytes so that ASan catches any read past them.
 *
 * Invariants checked: a frame never claims more bytes than it was given
 * nor more than frame_max; its payload lies inside them; a refused stream
 * says why; decoded methods and properties re-encode into frames that
 * parse and decode back to the same thing.
 */
#include "fuzz_util.h"
#include "amqp/frame.h"

/* Re-frames a decoded method and checks that it parses back whole. */
static void
check_method(uint16_t channel, const struct amqp_method *m)
{
    struct frame_parser p;
    struct frame f;
    struct amqp_method d;
    struct buf b;

    buf_init(&b);
    frame_put_method(&b, channel, m);
    frame_parser_init(&p, 0);
    FUZZ_CHECK(frame_parse(&p, b.data, b.len, &f) == (ssize_t)b.len);
    FUZZ_CHECK(f.type == FRAME_METHOD && f.channel == channel);
    FUZZ_CHECK(amqp_method_decode(f.payload.ptr, f.payload.len, &d, NULL) ==
               AMQP_DECODE_OK);
    FUZZ_CHECK(codec_methods_eq(m, &d));
    buf_fini(&b);
}

static void
check_header(const struct frame *f)
{
    struct amqp_basic_props props, d;
    struct bytes raw, raw2;
    uint16_t class_id, class2;
    uint64_t body_size, size2;
    struct frame_parser p;
    struct frame g;
    struct buf b;

    if (frame_parse_content_header(f->payload, &class_id, &body_size, &raw) !=
        WR_OK) {
        FUZZ_CHECK(f->payload.len < FRAME_CONTENT_HEADER_SIZE + 2);
        return;
    }
    FUZZ_CHECK(raw.ptr + raw.len == f->payload.ptr + f->payload.len);
    if (class_id != AMQP_CLASS_BASIC ||
        amqp_basic_props_decode(raw.ptr, raw.len, &props, NULL) !=
            AMQP_DECODE_OK)
        return;
    buf_init(&b);
    frame_put_content_header_props(&b, f->channel, body_size, &props);
    frame_parser_init(&p, 0);
    FUZZ_CHECK(frame_parse(&p, b.data, b.len, &g) == (ssize_t)b.len);
    FUZZ_CHECK(frame_parse_content_header(g.payload, &class2, &size2, &raw2) ==
               WR_OK);
    FUZZ_CHECK(class2 == AMQP_CLASS_BASIC && size2 == body_size);
    FUZZ_CHECK(amqp_basic_props_decode(raw2.ptr, raw2.len, &d, NULL) ==
               AMQP_DECODE_OK);
    FUZZ_CHECK(codec_props_eq(&props, &d));
    buf_fini(&b);
}

static void
check_frame(const struct frame_parser *p, const struct frame *f, ssize_t r,
            const uint8_t *win, size_t len)
{
    struct amqp_method m;

    FUZZ_CHECK(r > 0 && (size_t)r <= len);
    FUZZ_CHECK((size_t)r == f->payload.len + FRAME_OVERHEAD);
    FUZZ_CHECK(p->frame_max == 0 || (size_t)r <= p->frame_max);
    FUZZ_CHECK(f->payload.ptr == win + FRAME_HEADER_SIZE);
    FUZZ_CHECK(win[r - 1] == FRAME_END);
    switch (f->type) {
    case FRAME_METHOD:
        if (amqp_method_decode(f->payload.ptr, f->payload.len, &m, NULL) ==
            AMQP_DECODE_OK)
            check_method(f->channel, &m);
        break;
    case FRAME_HEADER:
        check_header(f);
        break;
    case FRAME_BODY:
    case FRAME_HEARTBEAT:
        break;
    default:
        FUZZ_CHECK(!"parser returned an unknown frame type");
    }
}

static uint32_t
pick_frame_max(uint8_t sel)
{
    switch (sel) {
    case 0:
        return 0;
    case 1:
        return FRAME_MIN_SIZE;
    case 2:
        return 131072;
    default:
        return sel;
    }
}

static size_t
next_chunk(uint32_t *rng)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    if (*rng % 8 == 0)
        return 1 + *rng % 5000;
    return 1 + *rng % 64;
}

/* Parses stream[start, fed) until the parser wants more. Returns the new
 * start, or SIZE_MAX when the stream was refused. */
static size_t
drain(struct frame_parser *p, const uint8_t *stream, size_t start, size_t fed)
{
    for (;;) {
        size_t len = fed - start;
        uint8_t *win = malloc(len ? len : 1);
        struct frame f;
        ssize_t r;

        FUZZ_CHECK(win != NULL);
        memcpy(win, stream + start, len);
        r = frame_parse(p, win, len, &f);
        if (r == WR_AGAIN) {
            free(win);
            return start;
        }
        if (r == WR_ERR) {
            FUZZ_CHECK(p->err != FRAME_ERR_NONE);
            free(win);
            return SIZE_MAX;
        }
        check_frame(p, &f, r, win, len);
        free(win);
        start += (size_t)r;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frame_parser p;
    uint32_t rng;
    size_t fed = 0, start = 0, len;
    const uint8_t *stream;

    if (size < 2)
        return 0;
    rng = 0x9e3779b9u ^ data[0];
    frame_parser_init(&p, pick_frame_max(data[1]));
    stream = data + 2;
    len = size - 2;
    while (fed < len) {
        size_t chunk = next_chunk(&rng); /* once: WR_MIN evaluates twice */

        fed += WR_MIN(chunk, len - fed);
        start = drain(&p, stream, start, fed);
        if (start == SIZE_MAX)
            break;
    }
    return 0;
}
