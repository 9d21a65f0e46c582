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
 *
 * Big messages (BIG_MIN and more) are allocated in whole pages and, when
 * freed, kept for the next ones, most recently freed first (`spare`, at
 * most SPARE_BYTES): a new 64 KiB body is then read into memory the
 * kernel has just sent the last one from, still in the CPU's caches.
 * glibc hands back the oldest free chunk of that size instead, whose
 * lines are long gone, and its first touch of it cost the kernel's copy
 * of the body from the socket twice its copy out of a hot buffer.
 */
#include "vhost/message.h"
#include "amqp/amqp_props.h"

#include <stdlib.h>

/* Bodies up to this size are allocated whole at once. */
#define BODY_FIRST_CHUNK (256u << 10)

/* Bytes allocated for messages alive now (loop thread only). */
static uint64_t held;

#define BIG_MIN     (16u << 10)
#define BIG_ROUND   4096u
#define SPARE_SLOTS 64
#define SPARE_BYTES (8u << 20)

/* Freed big allocations, the most recent last (loop thread only). */
static struct spare {
    void *p;
    size_t size;
} spare[SPARE_SLOTS];
static unsigned nspare;
static size_t spare_bytes;

static size_t
head_len(const struct message *m)
{
    return (size_t)m->exchange_len + m->rk_len + m->props_len;
}

/* What m's own allocation holds (an adopted body is its block's). */
static size_t
alloc_size(const struct message *m)
{
    return sizeof(*m) + head_len(m) + m->body_cap;
}

/* The allocation size for n bytes: big ones in whole pages, so that
 * messages of one body size share a size whatever their names. */
static size_t
round_size(size_t n)
{
    return n < BIG_MIN ? n : (n + BIG_ROUND - 1) / BIG_ROUND * BIG_ROUND;
}

/* Drops spare[i], keeping the order of the others. */
static void
spare_remove(unsigned i)
{
    spare_bytes -= spare[i].size;
    memmove(&spare[i], &spare[i + 1], (nspare - i - 1) * sizeof(spare[0]));
    nspare--;
}

/* A block of exactly size bytes (a round_size): the most recently freed
 * spare one, else a new one. */
static void *
alloc_block(size_t size)
{
    for (unsigned i = nspare; size >= BIG_MIN && i-- > 0;) {
        if (spare[i].size == size) {
            void *p = spare[i].p;

            spare_remove(i);
            return p;
        }
    }
    return xmalloc(size);
}

/* Frees a block of size bytes, or keeps it when it is big: the oldest
 * spare goes when there is no room. */
static void
free_block(void *p, size_t size)
{
    if (size < BIG_MIN || size > SPARE_BYTES / 4) {
        free(p);
        return;
    }
    while (nspare == SPARE_SLOTS || spare_bytes + size > SPARE_BYTES) {
        free(spare[0].p);
        spare_remove(0);
    }
    spare[nspare++] = (struct spare){p, size};
    spare_bytes += size;
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
    /* A big body may come whole in a read buffer and be adopted: its
     * room is made when its bytes come (message_reserve). */
    uint64_t cap = body_size >= MESSAGE_ADOPT_MIN
                       ? 0
                       : WR_MIN(body_size, BODY_FIRST_CHUNK);
    size_t size = round_size(sizeof(struct message) + head + cap);
    struct message *m;
    uint8_t *p;

    WR_ASSERT(exchange.len <= 255 && rk.len <= 255);
    m = alloc_block(size);
    m->body_cap = size - sizeof(*m) - head;
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
    m->block = NULL;
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

/* m moved to an allocation of size bytes (a round_size); a big one
 * comes from the spares. */
static struct message *
grow(struct message *m, size_t size)
{
    size_t used = sizeof(*m) + head_len(m) + m->received;
    struct message *n;

    if (size < BIG_MIN)
        return xrealloc(m, size);
    n = alloc_block(size);
    memcpy(n, m, used);
    free_block(m, alloc_size(m));
    return n;
}

struct msgblock *
msgblock_new(size_t size)
{
    size_t total = round_size(sizeof(struct msgblock) + size);
    struct msgblock *b = alloc_block(total);

    b->refs = 1;
    b->size = (uint32_t)(total - sizeof(*b));
    held += total;
    return b;
}

void
msgblock_unref(struct msgblock *b)
{
    WR_ASSERT(b->refs > 0);
    if (--b->refs == 0) {
        held -= sizeof(*b) + b->size;
        free_block(b, sizeof(*b) + b->size);
    }
}

void
message_adopt(struct message *m, struct msgblock *b, const uint8_t *body)
{
    WR_ASSERT(m->received == 0 && m->body_cap == 0 && !m->block);
    WR_ASSERT(body >= b->data && body + m->body_size <= b->data + b->size);
    b->refs++;
    m->block = b;
    m->body = (uint8_t *)body;
    m->received = m->body_size;
}

struct message *
message_reserve(struct message *m, size_t n)
{
    size_t head = head_len(m);

    WR_ASSERT(m->refs == 1 && m->received + n <= m->body_size);
    if (m->received + n > m->body_cap) {
        uint64_t cap = WR_MAX(m->body_cap * 2, (uint64_t)4096);

        while (cap < m->received + n)
            cap *= 2;
        cap = WR_MIN(cap, m->body_size);
        cap = round_size(sizeof(*m) + head + cap) - sizeof(*m) - head;
        m = grow(m, sizeof(*m) + head + cap);
        held += cap - m->body_cap;
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
        if (m->block)
            msgblock_unref(m->block);
        free_block(m, alloc_size(m));
    }
}
