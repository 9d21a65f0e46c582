/*
 * frame: AMQP 0-9-1 framing, sans-IO (rabbitmq-c's amqp_handle_input).
 *
 * A frame on the wire is
 *
 *     type u8 | channel u16 | size u32 | payload (size bytes) | 0xCE
 *
 * frame_parse() cuts one frame out of whatever the caller has buffered and
 * knows nothing of sockets; the writers append complete frames to a
 * struct buf. Views handed out point into the caller's buffer.
 */
#ifndef WARREN_FRAME_H
#define WARREN_FRAME_H

#include <sys/types.h>

#include "base/base.h"
#include "amqp/amqp_methods.gen.h"

/* What a client sends first: "AMQP" 0 0 9 1. */
#define AMQP_PROTOCOL_HEADER     "AMQP\x00\x00\x09\x01"
#define AMQP_PROTOCOL_HEADER_LEN 8

enum frame_type {
    FRAME_METHOD = 1,
    FRAME_HEADER = 2,
    FRAME_BODY = 3,
    FRAME_HEARTBEAT = 8
};

#define FRAME_END         0xCE
#define FRAME_HEADER_SIZE 7 /* type u8, channel u16, size u32 */
#define FRAME_OVERHEAD    8 /* header + frame-end octet */
#define FRAME_MIN_SIZE    4096
/* Content header payload before the property flags: class-id u16,
 * weight u16, body-size u64. */
#define FRAME_CONTENT_HEADER_SIZE 12

struct frame {
    uint8_t type; /* enum frame_type */
    uint16_t channel;
    struct bytes payload; /* view into the parsed buffer */
};

enum frame_error {
    FRAME_ERR_NONE,
    FRAME_ERR_BAD_END,  /* the octet after the payload is not FRAME_END */
    FRAME_ERR_BAD_TYPE, /* type not one of enum frame_type */
    FRAME_ERR_TOO_LARGE /* size + FRAME_OVERHEAD > frame_max */
};

struct frame_parser {
    uint32_t frame_max; /* whole frame incl. overhead; 0 = no limit */
    enum frame_error err;
    uint8_t bad_type;  /* the type octet, for BAD_TYPE */
    uint32_t bad_size; /* the size field, for TOO_LARGE */
};

void frame_parser_init(struct frame_parser *p, uint32_t frame_max);
/*
 * Parses one frame from buf[0..len). Returns bytes consumed (> 0) and
 * fills *out with a view into buf; WR_AGAIN when more bytes are needed;
 * WR_ERR with p->err set. Checks type and size as soon as the 7-byte
 * header is present, so an oversized or unknown frame is refused before
 * its payload arrives. A frame whose size + 8 > frame_max is TOO_LARGE.
 * The parser keeps no state between calls except frame_max and the last
 * error: the caller keeps unconsumed bytes and calls again with more.
 */
ssize_t frame_parse(struct frame_parser *p, const uint8_t *buf, size_t len,
                    struct frame *out);
/* "bad frame end octet" etc.; for log lines and close texts. */
const char *frame_error_text(enum frame_error err);

/*
 * Content header payload: class-id u16, weight u16, body-size u64, then
 * property flags + list (*props, a view into payload, for
 * amqp_basic_props_decode() or to keep as raw bytes). Returns WR_OK, or
 * WR_ERR when the payload is shorter than the 12 fixed bytes plus the
 * 2-byte flag word. Does not check the class id or the weight.
 */
int frame_parse_content_header(struct bytes payload, uint16_t *class_id,
                               uint64_t *body_size, struct bytes *props);

/* Frame writers: append complete frames to b. */
void frame_put_method(struct buf *b, uint16_t channel,
                      const struct amqp_method *m);
void frame_put_heartbeat(struct buf *b);
/* Content header frame for class 60 from raw property bytes (flags + list)
 * exactly as received. */
void frame_put_content_header(struct buf *b, uint16_t channel,
                              uint64_t body_size, struct bytes props);
/* Content header frame for class 60 from decoded properties. */
void frame_put_content_header_props(struct buf *b, uint16_t channel,
                                    uint64_t body_size,
                                    const struct amqp_basic_props *props);
/*
 * Body split into frames of at most frame_max - 8 payload bytes (frame_max
 * 0 = one frame, or frames of UINT32_MAX bytes for a body that large);
 * nothing for an empty body. Assumes frame_max is 0 or > FRAME_OVERHEAD.
 */
void frame_put_body(struct buf *b, uint16_t channel, struct bytes body,
                    uint32_t frame_max);
/*
 * Helpers for writers that fill the payload in place: frame_begin writes
 * the 7-byte header with size 0 and returns its offset; frame_end patches
 * the size and appends FRAME_END.
 */
size_t frame_begin(struct buf *b, uint8_t type, uint16_t channel);
void frame_end(struct buf *b, size_t mark);

#endif
