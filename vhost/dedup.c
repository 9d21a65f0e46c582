/*
 * dedup.c: the deduplication cache (dedup.h), in two flat arrays:
 *
 *   slots  the entries (16-byte key, expiry, LSN: 32 bytes each) in
 *          insertion order, a ring of at most `size` slots, grown by
 *          doubling until it reaches `size`; `next` is where the next
 *          key goes once it is full, which is the oldest entry (FIFO
 *          eviction, as LavinMQ): its key leaves the index first
 *   index  open addressing with linear probing, at most half full; a
 *          cell holds a slot number + 1 (0: empty) and the key's first 4
 *          bytes, which place it (keys are XXH3 hashes) and spare a probe
 *          the slot's cache miss unless they match
 *
 * A lookup that finds an expired entry removes it (the slot stays empty
 * until the ring comes round to it). Removal from the index shifts the
 * following run back (no tombstones), so a lookup stops at the first
 * empty cell.
 *
 * Invariants: every live slot (expires_ms != 0) is in the index exactly
 * once, and nothing else is; n == the number of live slots <= size.
 *
 * Durability is not kept here: the cache is memory only. The vhost
 * makes the window of a durable object survive a restart and a kill -9
 * with a journal of the keys (vhost/dedup_log.c: each remembered key of
 * a persistent message, synced as the fsync policy says before the
 * publish is confirmed, replayed in order through dedup_load at open,
 * compacted by rewriting dedup_save's keys) and a snapshot at a clean
 * stop (persist.c).
 */
#include "vhost/dedup.h"

#include "amqp/amqp_methods.gen.h"
#include "amqp/ftable.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct dslot {
    uint8_t h[16];
    uint64_t expires_ms; /* 0: empty slot; UINT64_MAX: never */
    uint64_t lsn;        /* | SLOT_DURABLE */
};

/* The key's message is in the log (its LSN is not 0, or it came back
 * from it): only these keys outlive a restart, since a transient
 * message does not, and its publisher must be able to send it again. */
#define SLOT_DURABLE (UINT64_C(1) << 63)

struct dedup {
    struct dslot *slots;
    uint32_t used;  /* slots filled at least once (the ring's length) */
    uint32_t alloc; /* slots allocated */
    uint32_t next;  /* the ring's oldest slot, once used == size */
    uint32_t n;     /* live entries */
    uint32_t size;
    uint64_t *index; /* cells: first 4 key bytes << 32 | slot + 1 */
    uint32_t mask;   /* index cells - 1 */
    int64_t ttl_ms;
    char *header;
    bool message_id; /* header "message_id": the property too */
    uint64_t dropped;
    struct dedup_key pending; /* dedup_check's key, for dedup_commit */
    bool has_pending;
};

/* A key's first 4 bytes: its place in the index and the tag kept in its
 * cell, so that a probe reads its slot only when the tags match. */
static uint32_t
tag_of(const uint8_t h[16])
{
    uint32_t v;

    memcpy(&v, h, sizeof(v));
    return v;
}

static uint64_t
cell(const uint8_t h[16], uint32_t s)
{
    return (uint64_t)tag_of(h) << 32 | (s + 1);
}

/* The slot a (non-empty) cell points at. */
static uint32_t
cell_slot(uint64_t c)
{
    return (uint32_t)c - 1;
}

/* The index cell holding key h, or the empty cell where it would go. */
static uint32_t
find_cell(const struct dedup *d, const uint8_t h[16])
{
    uint32_t tag = tag_of(h), p = tag & d->mask;

    while (d->index[p] &&
           ((uint32_t)(d->index[p] >> 32) != tag ||
            memcmp(d->slots[cell_slot(d->index[p])].h, h, 16) != 0))
        p = (p + 1) & d->mask;
    return p;
}

/* Empties cell p and shifts back the run after it (Knuth's algorithm R). */
static void
index_remove(struct dedup *d, uint32_t p)
{
    uint32_t q = p;

    d->index[p] = 0;
    for (;;) {
        uint32_t r;

        q = (q + 1) & d->mask;
        if (!d->index[q])
            return;
        r = (uint32_t)(d->index[q] >> 32) & d->mask;
        /* The entry at q may move to p unless its home lies cyclically
         * in (p, q]. */
        if ((p <= q) ? (p < r && r <= q) : (p < r || r <= q))
            continue;
        d->index[p] = d->index[q];
        d->index[q] = 0;
        p = q;
    }
}

/* Drops the live entry in slot s. */
static void
slot_drop(struct dedup *d, uint32_t s)
{
    index_remove(d, find_cell(d, d->slots[s].h));
    d->slots[s].expires_ms = 0;
    d->n--;
}

/* Grows the slots (and the index, kept at most half full) by doubling,
 * up to size. */
static void
grow(struct dedup *d)
{
    uint32_t alloc = d->alloc ? d->alloc : 16;
    uint32_t cells;

    while (alloc <= d->used && alloc < d->size)
        alloc = alloc > d->size / 2 ? d->size : alloc * 2;
    alloc = WR_MIN(alloc, d->size);
    d->slots = xrealloc(d->slots, (size_t)alloc * sizeof(*d->slots));
    d->alloc = alloc;
    for (cells = 32; cells < 2 * (uint64_t)alloc; cells *= 2)
        ;
    if (cells - 1 == d->mask && d->index)
        return;
    free(d->index);
    d->index = xcalloc(cells, sizeof(*d->index));
    d->mask = cells - 1;
    for (uint32_t s = 0; s < d->used; s++) {
        if (d->slots[s].expires_ms)
            d->index[find_cell(d, d->slots[s].h)] = cell(d->slots[s].h, s);
    }
}

struct dedup *
dedup_new(uint32_t size, int64_t ttl_ms, const char *header)
{
    struct dedup *d = xcalloc(1, sizeof(*d));

    WR_ASSERT(size >= 1);
    d->size = size;
    d->ttl_ms = ttl_ms;
    d->header = xstrdup(header);
    d->message_id = strcmp(header, "message_id") == 0;
    return d;
}

struct dedup *
dedup_from_args(struct bytes args)
{
    struct fvalue v;
    int64_t size = DEDUP_DEFAULT_SIZE, ttl = -1;
    char *header = NULL;
    struct dedup *d;

    if (!ftable_find(args, "x-message-deduplication", &v) || v.type != 't' ||
        !v.v.b)
        return NULL;
    if (ftable_find(args, "x-cache-size", &v) && fvalue_get_int(&v, &size) &&
        (size < 1 || size > INT32_MAX))
        size = DEDUP_DEFAULT_SIZE;
    if (ftable_find(args, "x-cache-ttl", &v) && fvalue_get_int(&v, &ttl) &&
        ttl < 0)
        ttl = -1;
    if (ftable_find(args, "x-deduplication-header", &v) && fvalue_is_str(&v))
        header = xstrndup((const char *)v.v.str.ptr, v.v.str.len);
    d = dedup_new((uint32_t)size, ttl, header ? header : DEDUP_DEFAULT_HEADER);
    free(header);
    return d;
}

void
dedup_free(struct dedup *d)
{
    if (!d)
        return;
    free(d->slots);
    free(d->index);
    free(d->header);
    free(d);
}

/* The hash of a header value: strings by their bytes, other types by
 * their type and value. */
static void
value_key(const struct fvalue *v, uint8_t out[16])
{
    XXH128_hash_t h;
    uint8_t tmp[1 + 8];

    if (v->type == 'S' || v->type == 'x' || v->type == 'F' || v->type == 'A') {
        h = XXH3_128bits_withSeed(v->v.str.ptr, v->v.str.len,
                                  (uint64_t)(v->type == 'x' ? 'S' : v->type));
    } else {
        uint64_t bits = 0;

        if (fvalue_get_int(v, (int64_t *)&bits))
            tmp[0] = 'i'; /* 5 as a byte, a short or a long: one key */
        else {
            tmp[0] = (uint8_t)v->type;
            switch (v->type) {
            case 't':
                bits = v->v.b;
                break;
            case 'f':
                memcpy(&bits, &v->v.f, sizeof(v->v.f));
                break;
            case 'd':
                memcpy(&bits, &v->v.d, sizeof(v->v.d));
                break;
            case 'D':
                bits = ((uint64_t)v->v.dec.scale << 32) | v->v.dec.value;
                break;
            default:
                bits = v->v.u;
                break;
            }
        }
        memcpy(tmp + 1, &bits, 8);
        h = XXH3_128bits(tmp, sizeof(tmp));
    }
    memcpy(out, &h.low64, 8);
    memcpy(out + 8, &h.high64, 8);
}

bool
dedup_key(const struct dedup *d, struct bytes headers, struct bytes props,
          struct dedup_key *k)
{
    struct fvalue v;
    int64_t ttl;
    struct amqp_basic_props p;
    bool found = false;

    k->ttl_ms = d->ttl_ms;
    if (headers.len && ftable_find(headers, d->header, &v)) {
        value_key(&v, k->h);
        found = true;
    } else if (d->message_id && props.len &&
               amqp_basic_props_decode(props.ptr, props.len, &p, NULL) ==
                   AMQP_DECODE_OK &&
               (p.flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
        v = (struct fvalue){.type = 'S', .v.str = p.message_id};
        value_key(&v, k->h);
        found = true;
    }
    if (found && headers.len && ftable_find(headers, "x-cache-ttl", &v) &&
        fvalue_get_int(&v, &ttl) && ttl >= 0)
        k->ttl_ms = ttl;
    return found;
}

bool
dedup_seen(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
           uint64_t *lsn)
{
    uint32_t p, s;

    if (d->n == 0)
        return false;
    p = find_cell(d, k->h);
    if (!d->index[p])
        return false;
    s = cell_slot(d->index[p]);
    if (d->slots[s].expires_ms <= now_ms) {
        slot_drop(d, s);
        return false;
    }
    *lsn = d->slots[s].lsn & ~SLOT_DURABLE;
    return true;
}

void
dedup_add(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
          uint64_t lsn)
{
    uint64_t ignored;

    if (!dedup_seen(d, k, now_ms, &ignored))
        dedup_add_new(d, k, now_ms, lsn);
}

void
dedup_add_new(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
              uint64_t lsn)
{
    uint32_t s;
    struct dslot *e;

    if (d->used < d->size) { /* the ring is still growing */
        if (d->used == d->alloc)
            grow(d);
        s = d->used++;
        if (d->used == d->size)
            d->next = 0;
    } else { /* full ring: the oldest slot goes */
        s = d->next;
        d->next = d->next + 1 == d->size ? 0 : d->next + 1;
        if (d->slots[s].expires_ms)
            slot_drop(d, s);
    }
    e = &d->slots[s];
    memcpy(e->h, k->h, sizeof(e->h));
    e->expires_ms = k->ttl_ms < 0 ? UINT64_MAX : now_ms + (uint64_t)k->ttl_ms;
    if (e->expires_ms == 0) /* 0 marks an empty slot */
        e->expires_ms = 1;
    e->lsn = lsn ? lsn | SLOT_DURABLE : 0;
    d->index[find_cell(d, e->h)] = cell(e->h, s);
    d->n++;
}

bool
dedup_check(struct dedup *d, struct bytes headers, struct bytes props,
            uint64_t now_ms, uint64_t *lsn)
{
    d->has_pending = dedup_key(d, headers, props, &d->pending);
    if (!d->has_pending || !dedup_seen(d, &d->pending, now_ms, lsn))
        return false;
    d->has_pending = false;
    d->dropped++;
    return true;
}

void
dedup_commit(struct dedup *d, uint64_t now_ms, uint64_t lsn)
{
    uint64_t ignored;

    dedup_commit_out(d, now_ms, lsn, NULL, &ignored);
}

bool
dedup_commit_out(struct dedup *d, uint64_t now_ms, uint64_t lsn, uint8_t h[16],
                 uint64_t *expires_ms)
{
    bool added = d->has_pending;

    if (added) {
        dedup_add_new(d, &d->pending, now_ms, lsn);
        if (h)
            memcpy(h, d->pending.h, sizeof(d->pending.h));
        *expires_ms = d->pending.ttl_ms < 0
                          ? UINT64_MAX
                          : now_ms + (uint64_t)d->pending.ttl_ms;
    }
    d->has_pending = false;
    return added;
}

/* Slot i of the ring in age order, oldest first (i < used). */
static uint32_t
ring_at(const struct dedup *d, uint32_t i)
{
    if (d->used < d->size)
        return i;
    return d->next + i < d->size ? d->next + i : d->next + i - d->size;
}

void
dedup_add_durable(struct dedup *d, const struct dedup_key *k, uint64_t now_ms)
{
    uint64_t ignored;

    if (!dedup_seen(d, k, now_ms, &ignored)) {
        dedup_add_new(d, k, now_ms, 0);
        d->slots[cell_slot(d->index[find_cell(d, k->h)])].lsn = SLOT_DURABLE;
    }
}

static bool
saved(const struct dslot *e)
{
    return e->expires_ms && (e->lsn & SLOT_DURABLE);
}

void
dedup_save(const struct dedup *d, uint64_t now_ms, uint64_t wall_ms,
           struct buf *out)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < d->used; i++)
        n += saved(&d->slots[i]);
    buf_put_u32(out, n);
    for (uint32_t i = 0; i < d->used; i++) {
        const struct dslot *e = &d->slots[ring_at(d, i)];

        if (!saved(e))
            continue;
        buf_append(out, e->h, sizeof(e->h));
        if (e->expires_ms == UINT64_MAX)
            buf_put_u64(out, UINT64_MAX);
        else /* an expired one loads as expired */
            buf_put_u64(out, wall_ms + (e->expires_ms > now_ms
                                            ? e->expires_ms - now_ms
                                            : 0));
    }
}

bool
dedup_load(struct dedup *d, struct cursor *c, uint64_t now_ms, uint64_t wall_ms)
{
    uint32_t n;

    if (!rd_u32(c, &n))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct dedup_key k;
        struct bytes h;
        uint64_t until;

        if (!rd_bytes(c, sizeof(k.h), &h) || !rd_u64(c, &until))
            return false;
        if (until <= wall_ms)
            continue;
        memcpy(k.h, h.ptr, sizeof(k.h));
        k.ttl_ms = until == UINT64_MAX ? -1 : (int64_t)(until - wall_ms);
        dedup_add_durable(d, &k, now_ms);
    }
    return true;
}

void
dedup_note_drop(struct dedup *d)
{
    d->dropped++;
}

void
dedup_stats(const struct dedup *d, struct dedup_stats *out)
{
    out->entries = d->n;
    out->size = d->size;
    out->dropped = d->dropped;
    out->memory = sizeof(*d) + strlen(d->header) + 1 +
                  (uint64_t)d->alloc * sizeof(*d->slots) +
                  (d->index ? ((uint64_t)d->mask + 1) * sizeof(*d->index) : 0);
}
