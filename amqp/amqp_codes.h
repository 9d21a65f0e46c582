/*
 * amqp_codes.h: AMQP reply codes, one X-macro table (Varnish style).
 *
 * X(code, NAME, hard): `hard` errors close the connection, soft ones only
 * the channel (0-9-1 spec section 1.2 "Constants"; RabbitMQ raises a hard
 * code from a channel as a connection error too). The name is what
 * RabbitMQ prefixes to every reply text: "NOT_FOUND - no queue 'q' ...".
 */
#ifndef WARREN_AMQP_CODES_H
#define WARREN_AMQP_CODES_H

#include <stdbool.h>
#include <stdint.h>

#define AMQP_REPLY_CODES(X)            \
    X(200, REPLY_SUCCESS, false)       \
    X(311, CONTENT_TOO_LARGE, false)   \
    X(312, NO_ROUTE, false)            \
    X(313, NO_CONSUMERS, false)        \
    X(320, CONNECTION_FORCED, true)    \
    X(402, INVALID_PATH, true)         \
    X(403, ACCESS_REFUSED, false)      \
    X(404, NOT_FOUND, false)           \
    X(405, RESOURCE_LOCKED, false)     \
    X(406, PRECONDITION_FAILED, false) \
    X(501, FRAME_ERROR, true)          \
    X(502, SYNTAX_ERROR, true)         \
    X(503, COMMAND_INVALID, true)      \
    X(504, CHANNEL_ERROR, true)        \
    X(505, UNEXPECTED_FRAME, true)     \
    X(506, RESOURCE_ERROR, true)       \
    X(530, NOT_ALLOWED, true)          \
    X(540, NOT_IMPLEMENTED, true)      \
    X(541, INTERNAL_ERROR, true)

enum amqp_reply_code {
#define X(code, name, hard) AMQP_##name = code,
    AMQP_REPLY_CODES(X)
#undef X
};

/* "NOT_FOUND" for 404; "UNKNOWN" for codes not in the table. */
static inline const char *
amqp_code_name(uint16_t code)
{
    switch (code) {
#define X(c, name, hard) \
    case c:              \
        return #name;
        AMQP_REPLY_CODES(X)
#undef X
    default:
        return "UNKNOWN";
    }
}

/* True when the code closes the whole connection. */
static inline bool
amqp_code_is_hard(uint16_t code)
{
    switch (code) {
#define X(c, name, hard) \
    case c:              \
        return hard;
        AMQP_REPLY_CODES(X)
#undef X
    default:
        return true;
    }
}

/* Reply texts are shortstrs: RabbitMQ cuts a longer one to 252 bytes and
 * "...". Returns the length to send; text must have room for 256 bytes. */
static inline int
amqp_reply_text_fit(char *text, int n)
{
    if (n <= 255)
        return n < 0 ? 0 : n;
    text[252] = text[253] = text[254] = '.';
    return 255;
}

#endif
