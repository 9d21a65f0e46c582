/*
 * dedup.c: the deduplication cache (dedup.h): a uthash of fixed-size
 * entries keyed by the 128-bit hash of the key, threaded on a list in
 * insertion order. The list's head is the oldest entry, the one evicted
 * when the cache is full; an entry past its expiry is dropped when a
 * lookup finds it (or when its turn to be evicted comes).
 *
 * Invariant: every entry is in both the hash and the list; n <= size.
 */
#include "vhost/dedup.h"

#include "amqp/amqp_methods.gen.h"
#include "amqp/ftable.h"

#include <stdlib.h>
#include <string.h>
#include <utlist.h>
#include <uthash.h>
#include <xxhash.h>

struct dentry {
    uint8_t h[16];
    uint64_t expires_ms; /* UINT64_MAX: never */
    uint64_t lsn;
    UT_hash_handle hh;
    struct dentry *prev, *next; /* insertion order, oldest first */
};

struct dedup {
    struct dentry *map;  /* uthash by h */
    struct dentry *list; /* utlist (DL), oldest first */
    uint32_t n, size;
    int64_t ttl_ms;
    char *header;
    bool message_id; /* header "message_id": the property too */
    uint64_t dropped;
};

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
    struct dentry *e, *tmp;

    if (!d)
        return;
    HASH_ITER(hh, d->map, e, tmp)
    {
        HASH_DEL(d->map, e);
        free(e);
    }
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

static void
drop(struct dedup *d, struct dentry *e)
{
    HASH_DEL(d->map, e);
    DL_DELETE(d->list, e);
    d->n--;
}

bool
dedup_seen(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
           uint64_t *lsn)
{
    struct dentry *e;

    HASH_FIND(hh, d->map, k->h, sizeof(k->h), e);
    if (!e)
        return false;
    if (e->expires_ms <= now_ms) {
        drop(d, e);
        free(e);
        return false;
    }
    *lsn = e->lsn;
    return true;
}

void
dedup_add(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
          uint64_t lsn)
{
    struct dentry *e;
    uint64_t ignored;

    if (dedup_seen(d, k, now_ms, &ignored))
        return;
    if (d->n == d->size) { /* full: reuse the oldest */
        e = d->list;
        drop(d, e);
    } else {
        e = xmalloc(sizeof(*e));
    }
    memcpy(e->h, k->h, sizeof(e->h));
    e->expires_ms = k->ttl_ms < 0 ? UINT64_MAX : now_ms + (uint64_t)k->ttl_ms;
    e->lsn = lsn;
    HASH_ADD(hh, d->map, h, sizeof(e->h), e);
    DL_APPEND(d->list, e);
    d->n++;
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
}
