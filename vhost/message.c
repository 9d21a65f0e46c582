/*
 * message.c: the refcounted message.
 *
 * A message is one allocation: the struct, then exchange name, routing
 * key, the content header's property bytes as received, and the body.
 * The body is filled in as body frames arrive (`received` counts); the
 * allocation starts small and doubles as bytes come, so a client that
 * announces 128 MiB and sends nothing costs nothing. The body is
 * immutable once the message is routed. Fanout to N queues is N
 * references to the same bytes: queue entries and unacked deliveries each
 * hold one; the last unref frees.
 */
#include "vhost/message.h"
#include "amqp/amqp_props.h"

#include <stdlib.h>

/* Bodies up to this size are allocated whole at once. */
#define BODY_FIRST_CHUNK (256u << 10)

/* Bytes allocated for messages alive now (loop thread only). */
static uint64_t held;

static size_t
alloc_size(const struct message *m)
{
    return sizeof(*m) + (size_t)(m->body - m->data) + m->body_cap;
}

uint64_t
message_memory(void)
{
    return held;
}

struct message *
message_new(struct bytes exchange, struct bytes rk, struct bytes props,
            uint64_t body_size)
{
    size_t head = exchange.len + rk.len + props.len;
    uint64_t cap = WR_MIN(body_size, BODY_FIRST_CHUNK);
    struct message *m;
    uint8_t *p;

    WR_ASSERT(exchange.len <= 255 && rk.len <= 255);
    m = xmalloc(sizeof(*m) + head + cap);
    m->body_cap = cap;
    m->refs = 1;
    m->flags = 0;
    m->priority = 0;
    m->exchange_len = (uint8_t)exchange.len;
    m->rk_len = (uint8_t)rk.len;
    m->props_len = (uint32_t)props.len;
    m->body_size = body_size;
    m->received = 0;
    m->ts_us = 0;
    m->ttl_ms = -1;
    m->id = 0;
    m->store_pos = 0;
    p = m->data;
    if (exchange.len)
        memcpy(p, exchange.ptr, exchange.len);
    p += exchange.len;
    if (rk.len)
        memcpy(p, rk.ptr, rk.len);
    p += rk.len;
    if (props.len)
        memcpy(p, props.ptr, props.len);
    m->body = p + props.len;
    held += alloc_size(m);
    return m;
}

struct message *
message_reserve(struct message *m, size_t n)
{
    size_t head = (size_t)(m->body - m->data);

    WR_ASSERT(m->refs == 1 && m->received + n <= m->body_size);
    if (m->received + n > m->body_cap) {
        uint64_t cap = WR_MAX(m->body_cap * 2, (uint64_t)4096);

        while (cap < m->received + n)
            cap *= 2;
        cap = WR_MIN(cap, m->body_size);
        held += cap - m->body_cap;
        m = xrealloc(m, sizeof(*m) + head + cap);
        m->body = m->data + head;
        m->body_cap = cap;
    }
    return m;
}

void
message_advance(struct message *m, size_t n)
{
    WR_ASSERT(m->received + n <= m->body_cap);
    m->received += n;
}

struct message *
message_append(struct message *m, struct bytes part)
{
    m = message_reserve(m, part.len);
    memcpy(m->body + m->received, part.ptr, part.len);
    m->received += part.len;
    return m;
}

void
message_set_props(struct message *m, const struct amqp_props *p)
{
    if (p->persistent)
        m->flags |= MSG_PERSISTENT;
    m->priority = p->priority;
    m->ttl_ms = p->ttl_ms;
}

void
message_ref(struct message *m)
{
    WR_ASSERT(m->refs > 0);
    m->refs++;
}

void
message_unref(struct message *m)
{
    WR_ASSERT(m->refs > 0);
    if (--m->refs == 0) {
        held -= alloc_size(m);
        free(m);
    }
}
