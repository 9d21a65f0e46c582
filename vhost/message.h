/*
 * message.h: a published message (vhost/message.c): one refcounted
 * allocation holding the exchange name, the routing key, the content
 * header's property bytes exactly as received and the body. Every queue
 * entry and every delivery waiting for ack holds one reference; the
 * bytes never change after publish, so a message routed to N queues is
 * stored once and sent N times from the same bytes.
 */
#ifndef WARREN_VHOST_MESSAGE_H
#define WARREN_VHOST_MESSAGE_H

#include "base/base.h"

struct amqp_props;

enum {
    MSG_PERSISTENT = 1, /* delivery_mode 2 */
    MSG_LOGGED = 2,     /* has a record in the vhost's log (store_pos) */
};

/*
 * A published message: one allocation holding the struct, the exchange
 * name, the routing key, the content header's property bytes exactly as
 * received (flags + list) and the body. Owned by its refcount.
 */
struct message {
    uint32_t refs;
    uint8_t flags;
    uint8_t exchange_len;
    uint8_t rk_len;
    uint8_t priority;
    uint32_t props_len;
    uint64_t body_size;
    uint64_t received;      /* body bytes filled in so far (assembly) */
    uint64_t body_cap;      /* room for the body in this allocation */
    uint64_t ts_us;         /* when it was published (node time) */
    int64_t ttl_ms;         /* the expiration property; -1 = none */
    uint64_t id;            /* vhost-wide, in publish order (the store's ids) */
    uint64_t store_pos;     /* MSG_LOGGED: where its record is */
    uint8_t *body;          /* points into data[], or into block */
    struct msgblock *block; /* holds the body (message_adopt), or NULL */
    uint8_t data[];         /* exchange | routing key | props | body */
};

/* A block of memory whose parts are the bodies of messages: a read
 * buffer whose body frames became messages without a copy. Refcounted:
 * its reader and each message whose body is in it hold a reference; the
 * last unref frees it. Its whole size counts as message memory. */
struct msgblock {
    uint32_t refs;
    uint32_t size;
    uint8_t data[];
};

struct msgblock *msgblock_new(size_t size);
void msgblock_unref(struct msgblock *b);

/* Allocates a message for a body of body_size bytes (caller checked the
 * size against the limit). Starts with one reference. Room for the body
 * grows as it arrives (message_append), so memory follows the bytes a
 * client really sent, not the size it announced. */
struct message *message_new(struct bytes exchange, struct bytes rk,
                            struct bytes props, uint64_t body_size);
/* Appends body bytes during assembly; may move the message, so it
 * returns the new pointer. Assumes m->refs == 1 and that the bytes fit in
 * body_size. */
struct message *message_append(struct message *m, struct bytes part);
/* Makes body_size bytes of b at body m's body, without a copy; m holds a
 * reference to b from now on. Assumes nothing of the body came yet and
 * no room was made for it (message_new leaves big bodies without room
 * until their first bytes: MESSAGE_ADOPT_MIN). */
#define MESSAGE_ADOPT_MIN (32u << 10)
void message_adopt(struct message *m, struct msgblock *b, const uint8_t *body);
/* Makes room for n more body bytes during assembly, for a caller that
 * writes them in place (a body frame read straight into the message):
 * they go to m->body + m->received, and message_advance counts them.
 * Same assumptions as message_append; may move the message. */
struct message *message_reserve(struct message *m, size_t n);
void message_advance(struct message *m, size_t n);
/* Takes what the properties say the broker acts on (amqp/amqp_props.h):
 * persistence, priority and TTL. */
void message_set_props(struct message *m, const struct amqp_props *p);
void message_ref(struct message *m);
void message_unref(struct message *m);
/* Bytes allocated for the messages alive in the process (their structs,
 * headers and bodies in memory): what the memory alarm watches between
 * two readings of the resident size. */
uint64_t message_memory(void);

static inline struct bytes
message_exchange(const struct message *m)
{
    return (struct bytes){m->data, m->exchange_len};
}

static inline struct bytes
message_rk(const struct message *m)
{
    return (struct bytes){m->data + m->exchange_len, m->rk_len};
}

static inline struct bytes
message_props(const struct message *m)
{
    return (struct bytes){m->data + m->exchange_len + m->rk_len, m->props_len};
}

static inline struct bytes
message_body(const struct message *m)
{
    return (struct bytes){m->body, m->body_size};
}

static inline bool
message_is_persistent(const struct message *m)
{
    return (m->flags & MSG_PERSISTENT) != 0;
}

#endif
