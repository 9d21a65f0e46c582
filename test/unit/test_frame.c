/*
 * Unit tests for amqp/frame.c: the sans-IO frame parser fed the way a
 * connection feeds it (every chunk size, unconsumed bytes kept), the
 * frame_max boundary (exactly frame_max accepted, one more refused at the
 * header), bad frame ends and types, heartbeats, and the frame writers
 * (body splitting at frame_max, content headers, methods).
 */
#include <stdlib.h>

#include "amqp/frame.h"
#include "test/harness/t.h"

/* Parses from an exact-size heap copy so ASan sees any overread. */
static ssize_t
parse_copy(struct frame_parser *p, const uint8_t *buf, size_t len,
           struct frame *out, uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    T_ASSERT(*copy != NULL);
    if (len)
        memcpy(*copy, buf, len);
    return frame_parse(p, *copy, len, out);
}

/* A frame as the tests expect to read it back. */
struct want {
    uint8_t type;
    uint16_t channel;
    struct bytes payload;
};

/* Builds a stream of assorted frames into b; fills w; returns the count. */
static size_t
build_stream(struct buf *b, struct want *w, size_t max)
{
    static uint8_t body[10000];
    struct amqp_method m = {.id = AMQP_BASIC_PUBLISH};
    size_t n = 0, i, start;

    for (i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i ^ (i >> 8));
    buf_init(b);
    m.u.basic_publish.exchange = BYTES_LIT("amq.topic");
    m.u.basic_publish.routing_key = BYTES_LIT("a.b.c");
    m.u.basic_publish.mandatory = true;

    start = b->len;
    frame_put_method(b, 1, &m);
    w[n++] = (struct want){FRAME_METHOD, 1, {NULL, b->len - start - 8}};
    start = b->len;
    frame_put_content_header(b, 1, sizeof(body),
                             BYTES_LIT("\x90\x00\x03"
                                       "a/b\x02"));
    w[n++] = (struct want){FRAME_HEADER, 1, {NULL, b->len - start - 8}};
    start = b->len;
    frame_put_body(b, 1, bytes_of(body, sizeof(body)), 4096);
    for (i = 0; i < sizeof(body); i += 4088)
        w[n++] = (struct want){
            FRAME_BODY, 1, {NULL, WR_MIN(4088, sizeof(body) - i)}};
    frame_put_heartbeat(b);
    w[n++] = (struct want){FRAME_HEARTBEAT, 0, {NULL, 0}};
    start = frame_begin(b, FRAME_BODY, 65535);
    frame_end(b, start); /* an empty body frame on the last channel */
    w[n++] = (struct want){FRAME_BODY, 65535, {NULL, 0}};
    T_ASSERT(n <= max);

    /* fill in the payload views from the stream itself */
    start = 0;
    for (i = 0; i < n; i++) {
        w[i].payload.ptr = b->data + start + FRAME_HEADER_SIZE;
        start += w[i].payload.len + FRAME_OVERHEAD;
    }
    T_EQ_INT(start, b->len);
    return n;
}

T_CASE(stream_parses_identically_in_every_chunk_size)
{
    struct want w[16];
    struct buf stream, in;
    size_t n = build_stream(&stream, w, 16);
    size_t chunk, fed, got;

    buf_init(&in);
    for (chunk = 1; chunk <= stream.len; chunk++) {
        struct frame_parser p;

        frame_parser_init(&p, 4096);
        buf_reset(&in);
        fed = got = 0;
        while (fed < stream.len) {
            size_t step = WR_MIN(chunk, stream.len - fed);

            buf_append(&in, stream.data + fed, step);
            fed += step;
            for (;;) {
                struct frame f;
                ssize_t r = frame_parse(&p, in.data, in.len, &f);

                if (r == WR_AGAIN)
                    break;
                T_ASSERT(r > 0);
                T_ASSERT(got < n);
                T_EQ_INT(f.type, w[got].type);
                T_EQ_INT(f.channel, w[got].channel);
                T_EQ_MEM(f.payload.ptr, f.payload.len, w[got].payload.ptr,
                         w[got].payload.len);
                T_EQ_INT(r, f.payload.len + FRAME_OVERHEAD);
                got++;
                buf_consume(&in, (size_t)r);
            }
        }
        T_EQ_INT(got, n);
        T_EQ_INT(in.len, 0);
        T_EQ_INT(p.err, FRAME_ERR_NONE);
    }
    buf_fini(&in);
    buf_fini(&stream);
}

T_CASE(parse_returns_one_frame_at_a_time_with_views_into_buf)
{
    struct want w[16];
    struct buf stream;
    struct frame_parser p;
    struct frame f;
    size_t n = build_stream(&stream, w, 16), off = 0, i;

    frame_parser_init(&p, 0);
    for (i = 0; i < n; i++) {
        ssize_t r = frame_parse(&p, stream.data + off, stream.len - off, &f);

        T_ASSERT(r > 0);
        T_ASSERT(f.payload.ptr == w[i].payload.ptr);
        off += (size_t)r;
    }
    T_EQ_INT(off, stream.len);
    T_EQ_INT(frame_parse(&p, stream.data + off, 0, &f), WR_AGAIN);
    buf_fini(&stream);
}

/* A 7-byte frame header. */
static void
put_header(uint8_t *h, uint8_t type, uint16_t channel, uint32_t size)
{
    h[0] = type;
    be16_store(h + 1, channel);
    be32_store(h + 3, size);
}

T_CASE(oversized_frame_is_refused_at_the_header)
{
    struct frame_parser p;
    struct frame f;
    uint8_t h[FRAME_HEADER_SIZE], *copy;
    size_t i;

    frame_parser_init(&p, 4096);
    put_header(h, FRAME_BODY, 3, 4096 - 8 + 1);
    /* with less than the header nothing is decided yet */
    for (i = 0; i < FRAME_HEADER_SIZE; i++) {
        T_EQ_INT(parse_copy(&p, h, i, &f, &copy), WR_AGAIN);
        free(copy);
    }
    T_EQ_INT(parse_copy(&p, h, sizeof(h), &f, &copy), WR_ERR);
    free(copy);
    T_EQ_INT(p.err, FRAME_ERR_TOO_LARGE);
    T_EQ_INT(p.bad_size, 4089);
    T_EQ_INT(p.bad_type, FRAME_BODY);
    T_EQ_STR(frame_error_text(p.err), "frame larger than frame_max");

    /* the largest size field there is */
    frame_parser_init(&p, 131072);
    put_header(h, FRAME_METHOD, 0, UINT32_MAX);
    T_EQ_INT(parse_copy(&p, h, sizeof(h), &f, &copy), WR_ERR);
    free(copy);
    T_EQ_INT(p.err, FRAME_ERR_TOO_LARGE);
    T_EQ_INT(p.bad_size, UINT32_MAX);
}

T_CASE(frame_of_exactly_frame_max_is_accepted_one_more_refused)
{
    uint32_t frame_max;

    for (frame_max = FRAME_MIN_SIZE; frame_max <= 131072; frame_max *= 32) {
        size_t len = frame_max + 1;
        uint8_t *buf = calloc(1, len), *copy;
        struct frame_parser p;
        struct frame f;

        T_ASSERT(buf != NULL);
        /* exactly frame_max: header says frame_max - 8 */
        put_header(buf, FRAME_BODY, 1, frame_max - FRAME_OVERHEAD);
        buf[frame_max - 1] = FRAME_END;
        frame_parser_init(&p, frame_max);
        T_EQ_INT(parse_copy(&p, buf, FRAME_HEADER_SIZE, &f, &copy), WR_AGAIN);
        free(copy);
        T_EQ_INT(parse_copy(&p, buf, frame_max - 1, &f, &copy), WR_AGAIN);
        free(copy);
        T_EQ_INT(parse_copy(&p, buf, frame_max, &f, &copy), frame_max);
        free(copy);
        T_EQ_INT(f.payload.len, frame_max - FRAME_OVERHEAD);
        /* frame_max + 1 */
        put_header(buf, FRAME_BODY, 1, frame_max - FRAME_OVERHEAD + 1);
        buf[frame_max] = FRAME_END;
        T_EQ_INT(parse_copy(&p, buf, FRAME_HEADER_SIZE, &f, &copy), WR_ERR);
        free(copy);
        T_EQ_INT(p.err, FRAME_ERR_TOO_LARGE);
        free(buf);
    }
}

T_CASE(bad_frame_end_is_refused)
{
    uint8_t buf[FRAME_HEADER_SIZE + 3 + 1], *copy;
    struct frame_parser p;
    struct frame f;

    put_header(buf, FRAME_METHOD, 1, 3);
    memcpy(buf + FRAME_HEADER_SIZE, "abc", 3);
    buf[sizeof(buf) - 1] = 0xCD;
    frame_parser_init(&p, 4096);
    T_EQ_INT(parse_copy(&p, buf, sizeof(buf) - 1, &f, &copy), WR_AGAIN);
    free(copy);
    T_EQ_INT(parse_copy(&p, buf, sizeof(buf), &f, &copy), WR_ERR);
    free(copy);
    T_EQ_INT(p.err, FRAME_ERR_BAD_END);
    T_EQ_STR(frame_error_text(p.err), "bad frame end octet");
    buf[sizeof(buf) - 1] = FRAME_END;
    frame_parser_init(&p, 4096);
    T_EQ_INT(parse_copy(&p, buf, sizeof(buf), &f, &copy), sizeof(buf));
    T_ASSERT(bytes_eq_str(f.payload, "abc"));
    T_ASSERT(f.payload.ptr == copy + FRAME_HEADER_SIZE);
    free(copy);
}

T_CASE(unknown_frame_types_are_refused_at_the_header)
{
    static const uint8_t bad[] = {0, 4, 5, 6, 7, 9, 65, 0xCE, 255};
    uint8_t h[FRAME_HEADER_SIZE], *copy;
    struct frame_parser p;
    struct frame f;
    size_t i;

    for (i = 0; i < sizeof(bad); i++) {
        frame_parser_init(&p, 4096);
        put_header(h, bad[i], 0, 10);
        T_EQ_INT(parse_copy(&p, h, sizeof(h) - 1, &f, &copy), WR_AGAIN);
        free(copy);
        T_EQ_INT(parse_copy(&p, h, sizeof(h), &f, &copy), WR_ERR);
        free(copy);
        T_EQ_INT(p.err, FRAME_ERR_BAD_TYPE);
        T_EQ_INT(p.bad_type, bad[i]);
    }
    /* the protocol header itself is not a frame: 'A' is no type */
    frame_parser_init(&p, 4096);
    T_EQ_INT(frame_parse(&p, (const uint8_t *)AMQP_PROTOCOL_HEADER,
                         AMQP_PROTOCOL_HEADER_LEN, &f),
             WR_ERR);
    T_EQ_INT(p.bad_type, 'A');
}

T_CASE(heartbeat_frames)
{
    static const uint8_t want[] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
    struct frame_parser p;
    struct frame f;
    struct buf b;
    size_t i;

    buf_init(&b);
    frame_put_heartbeat(&b);
    T_EQ_MEM(b.data, b.len, want, sizeof(want));
    frame_put_heartbeat(&b);
    frame_parser_init(&p, FRAME_MIN_SIZE);
    for (i = 0; i < 2; i++) {
        T_EQ_INT(frame_parse(&p, b.data + i * 8, b.len - i * 8, &f), 8);
        T_EQ_INT(f.type, FRAME_HEARTBEAT);
        T_EQ_INT(f.channel, 0);
        T_EQ_INT(f.payload.len, 0);
    }
    buf_fini(&b);
}

T_CASE(frame_max_zero_means_no_limit)
{
    size_t size = (1u << 20) + 5;
    uint8_t *buf = calloc(1, size + FRAME_OVERHEAD), *copy;
    uint8_t h[FRAME_HEADER_SIZE];
    struct frame_parser p;
    struct frame f;

    T_ASSERT(buf != NULL);
    put_header(buf, FRAME_BODY, 7, (uint32_t)size);
    buf[size + FRAME_HEADER_SIZE] = FRAME_END;
    frame_parser_init(&p, 0);
    T_EQ_INT(parse_copy(&p, buf, size + FRAME_OVERHEAD, &f, &copy),
             size + FRAME_OVERHEAD);
    free(copy);
    T_EQ_INT(f.payload.len, size);
    T_EQ_INT(f.channel, 7);
    free(buf);
    /* a 4 GiB frame is merely incomplete, and the sum does not wrap */
    put_header(h, FRAME_BODY, 7, UINT32_MAX);
    T_EQ_INT(parse_copy(&p, h, sizeof(h), &f, &copy), WR_AGAIN);
    free(copy);
    T_EQ_INT(p.err, FRAME_ERR_NONE);
}

/* ---- writers */

/* Parses every frame in b (frame_max 0) and reassembles body frames. */
static size_t
count_body_frames(const struct buf *b, uint16_t channel, struct buf *body,
                  size_t *largest)
{
    struct frame_parser p;
    struct frame f;
    size_t off = 0, n = 0;

    frame_parser_init(&p, 0);
    *largest = 0;
    while (off < b->len) {
        ssize_t r = frame_parse(&p, b->data + off, b->len - off, &f);

        T_ASSERT(r > 0);
        T_EQ_INT(f.type, FRAME_BODY);
        T_EQ_INT(f.channel, channel);
        T_ASSERT(f.payload.len > 0);
        buf_append(body, f.payload.ptr, f.payload.len);
        *largest = WR_MAX(*largest, (size_t)r);
        off += (size_t)r;
        n++;
    }
    return n;
}

static void
expect_body_split(size_t len, uint32_t frame_max, size_t frames)
{
    uint8_t *data = malloc(len ? len : 1);
    struct buf b, body;
    size_t i, largest;

    T_ASSERT(data != NULL);
    for (i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 13);
    buf_init(&b);
    buf_init(&body);
    frame_put_body(&b, 42, bytes_of(data, len), frame_max);
    T_EQ_INT(count_body_frames(&b, 42, &body, &largest), frames);
    T_EQ_MEM(body.data, body.len, data, len);
    T_EQ_INT(b.len, len + frames * FRAME_OVERHEAD);
    if (frame_max)
        T_ASSERT(largest <= frame_max);
    buf_fini(&b);
    buf_fini(&body);
    free(data);
}

T_CASE(body_is_split_at_frame_max_boundaries)
{
    const size_t room = 4096 - FRAME_OVERHEAD;

    expect_body_split(room * 3, 4096, 3);     /* exact multiple */
    expect_body_split(room * 3 + 1, 4096, 4); /* one byte over */
    expect_body_split(room * 3 - 1, 4096, 3);
    expect_body_split(room, 4096, 1);
    expect_body_split(1, 4096, 1);
    expect_body_split(0, 4096, 0);   /* empty: nothing */
    expect_body_split(100000, 0, 1); /* frame_max 0: one frame */
    expect_body_split(0, 0, 0);
    expect_body_split(10, 9, 10); /* 1 payload byte per frame */
}

T_CASE(body_frames_exactly_fill_frame_max)
{
    struct buf b, body;
    uint8_t data[3 * 4088];
    size_t largest;

    memset(data, 0x5a, sizeof(data));
    buf_init(&b);
    buf_init(&body);
    frame_put_body(&b, 1, bytes_of(data, sizeof(data)), 4096);
    T_EQ_INT(count_body_frames(&b, 1, &body, &largest), 3);
    T_EQ_INT(largest, 4096);
    buf_fini(&b);
    buf_fini(&body);
}

T_CASE(method_frame_known_answer)
{
    static const uint8_t want[] = {
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, /* header, channel 0 */
        0x00, 0x0a, 0x00, 0x1e, 0x07, 0xff,       /* connection.tune */
        0x00, 0x02, 0x00, 0x00, 0x00, 0x3c, 0xce};
    struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};
    struct frame_parser p;
    struct frame f;
    struct amqp_method d;
    struct buf b;

    m.u.connection_tune.channel_max = 2047;
    m.u.connection_tune.frame_max = 131072;
    m.u.connection_tune.heartbeat = 60;
    buf_init(&b);
    frame_put_method(&b, 0, &m);
    T_EQ_MEM(b.data, b.len, want, sizeof(want));
    frame_parser_init(&p, 4096);
    T_EQ_INT(frame_parse(&p, b.data, b.len, &f), sizeof(want));
    T_EQ_INT(amqp_method_decode(f.payload.ptr, f.payload.len, &d, NULL),
             AMQP_DECODE_OK);
    T_EQ_INT(d.u.connection_tune.frame_max, 131072);
    buf_fini(&b);
}

T_CASE(content_header_known_answer_and_parse)
{
    static const uint8_t props[] = "\x90\x00\x0a"
                                   "text/plain"
                                   "\x02";
    static const uint8_t want[] = "\x02\x00\x05\x00\x00\x00\x1a"
                                  "\x00\x3c\x00\x00"
                                  "\x00\x00\x00\x01\x00\x00\x00\x00"
                                  "\x90\x00\x0a"
                                  "text/plain"
                                  "\x02"
                                  "\xce";
    struct amqp_basic_props dp;
    struct frame_parser p;
    struct frame f;
    struct bytes raw;
    struct buf b, b2;
    uint16_t class_id;
    uint64_t body_size;

    buf_init(&b);
    frame_put_content_header(&b, 5, 1ull << 32,
                             bytes_of(props, sizeof(props) - 1));
    T_EQ_MEM(b.data, b.len, want, sizeof(want) - 1);
    frame_parser_init(&p, 4096);
    T_EQ_INT(frame_parse(&p, b.data, b.len, &f), b.len);
    T_EQ_INT(f.type, FRAME_HEADER);
    T_EQ_INT(f.channel, 5);
    T_EQ_INT(frame_parse_content_header(f.payload, &class_id, &body_size, &raw),
             WR_OK);
    T_EQ_INT(class_id, 60);
    T_ASSERT(body_size == 1ull << 32);
    T_EQ_MEM(raw.ptr, raw.len, props, sizeof(props) - 1);
    T_EQ_INT(amqp_basic_props_decode(raw.ptr, raw.len, &dp, NULL),
             AMQP_DECODE_OK);
    T_ASSERT(bytes_eq_str(dp.content_type, "text/plain"));
    /* writing from decoded properties gives the same frame */
    buf_init(&b2);
    frame_put_content_header_props(&b2, 5, 1ull << 32, &dp);
    T_EQ_MEM(b2.data, b2.len, b.data, b.len);
    buf_fini(&b2);
    buf_fini(&b);
}

T_CASE(short_content_header_payload_is_refused)
{
    static const uint8_t payload[] = {0, 60, 0, 0, 0, 0, 0,
                                      0, 0,  0, 0, 9, 0, 0};
    uint16_t class_id;
    uint64_t body_size;
    struct bytes props;
    size_t n;

    for (n = 0; n < sizeof(payload); n++)
        T_EQ_INT(frame_parse_content_header(bytes_of(payload, n), &class_id,
                                            &body_size, &props),
                 WR_ERR);
    T_EQ_INT(frame_parse_content_header(bytes_of(payload, sizeof(payload)),
                                        &class_id, &body_size, &props),
             WR_OK);
    T_EQ_INT(body_size, 9);
    T_EQ_INT(props.len, 2);
}

T_CASE(frame_begin_and_end_bracket_a_payload_written_in_place)
{
    struct buf b;
    size_t mark;

    buf_init(&b);
    buf_append(&b, "zz", 2);
    mark = frame_begin(&b, FRAME_BODY, 0x1234);
    T_EQ_INT(mark, 2);
    buf_append(&b, "hello", 5);
    frame_end(&b, mark);
    T_EQ_MEM(b.data, b.len,
             "zz\x03\x12\x34\x00\x00\x00\x05"
             "hello\xce",
             2 + 7 + 5 + 1);
    buf_fini(&b);
}

T_CASE(protocol_header_and_constants)
{
    T_EQ_MEM(AMQP_PROTOCOL_HEADER, AMQP_PROTOCOL_HEADER_LEN,
             "AMQP\x00\x00\x09\x01", 8);
    T_EQ_INT(FRAME_END, 206);
    T_EQ_INT(FRAME_OVERHEAD, FRAME_HEADER_SIZE + 1);
    T_ASSERT(strcmp(frame_error_text(FRAME_ERR_BAD_TYPE),
                    frame_error_text(FRAME_ERR_BAD_END)) != 0);
}

static const struct t_case cases[] = {
    T_REG(stream_parses_identically_in_every_chunk_size),
    T_REG(parse_returns_one_frame_at_a_time_with_views_into_buf),
    T_REG(oversized_frame_is_refused_at_the_header),
    T_REG(frame_of_exactly_frame_max_is_accepted_one_more_refused),
    T_REG(bad_frame_end_is_refused),
    T_REG(unknown_frame_types_are_refused_at_the_header),
    T_REG(heartbeat_frames),
    T_REG(frame_max_zero_means_no_limit),
    T_REG(body_is_split_at_frame_max_boundaries),
    T_REG(body_frames_exactly_fill_frame_max),
    T_REG(method_frame_known_answer),
    T_REG(content_header_known_answer_and_parse),
    T_REG(short_content_header_payload_is_refused),
    T_REG(frame_begin_and_end_bracket_a_payload_written_in_place),
    T_REG(protocol_header_and_constants),
};
T_MAIN(cases)
