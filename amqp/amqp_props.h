/*
 * amqp_props.h: the content properties a broker acts on, read in one
 * place: persistence (delivery-mode 2), priority, the expiration as a
 * TTL in milliseconds, and the publish-time rules RabbitMQ applies to
 * them (user-id must name the authenticated user, the expiration must be
 * a non-negative integer, delivery-mode must be 1 or 2), with RabbitMQ's
 * error texts.
 *
 * The channel reads a message's properties here when its content header
 * arrives and checks them when its body is complete; the management
 * API's publish and the log's recovery read them here too.
 */
#ifndef WARREN_AMQP_PROPS_H
#define WARREN_AMQP_PROPS_H

#include "amqp/amqp_methods.gen.h"

struct amqp_props {
    struct amqp_basic_props p; /* every property; views into the raw bytes */
    bool persistent;           /* delivery-mode 2 */
    uint8_t priority;          /* 0 when absent */
    int64_t ttl_ms;            /* the expiration; -1 when absent or not valid */
};

/*
 * Decodes raw content properties (flags + property list, as a content
 * header carries them) into *out. Returns AMQP_DECODE_OK, or the
 * decoder's status with *why (may be NULL) set; then *out must not be
 * used.
 */
enum amqp_decode_status
amqp_props_read(struct bytes raw, struct amqp_props *out, const char **why);
/*
 * RabbitMQ's publish-time checks, in its order: user-id, expiration,
 * delivery-mode. Returns WR_OK, or WR_ERR with RabbitMQ's text (for a
 * 406 PRECONDITION_FAILED) in err.
 */
int amqp_props_check(const struct amqp_props *p, const char *user, char *err,
                     size_t errlen);
/* The user-id check alone. */
int amqp_props_check_user(const struct amqp_props *p, const char *user,
                          char *err, size_t errlen);
/*
 * An expiration property as RabbitMQ reads it (Erlang's
 * string:to_integer/1): an optional sign and digits, nothing after them,
 * not below zero. Sets *ms (saturating at INT64_MAX) and returns WR_OK;
 * otherwise WR_ERR with one of RabbitMQ's texts in err:
 *   invalid expiration 'abc': no_integer
 *   invalid expiration '1.5': {leftover_string,".5"}
 *   invalid expiration '-1': {value_negative,-1}
 */
int amqp_expiration_parse(struct bytes e, int64_t *ms, char *err,
                          size_t errlen);
/*
 * Appends raw content properties (flags + list) to out with the long
 * header `key` set to v, as RabbitMQ's rabbit_basic:add_header writes
 * them (ftable_put_set: the headers sorted by key, 'L' written 'l'):
 * what its quorum queues send as x-delivery-count. WR_ERR when raw does
 * not decode; then out is unchanged.
 */
int amqp_props_put_long_header(struct bytes raw, const char *key, int64_t v,
                               struct buf *out);

#endif
