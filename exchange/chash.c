/*
 * chash.c: the x-consistent-hash exchange (RabbitMQ's
 * rabbitmq_consistent_hash_exchange plugin, 3.10): each binding's key is
 * an integer weight, the number of buckets its destination owns; a
 * message goes to exactly one destination, chosen by hashing one value
 * of the message:
 *
 *   no argument            the routing key (the first one; CC is ignored)
 *   hash-header: "h"       the value of header h (absent: a fixed bucket)
 *   hash-property: "p"     message_id, correlation_id or timestamp (as its
 *                          decimal text), absent: a fixed bucket
 *
 * The algorithm is the plugin's: bucket numbers 0..N-1 are handed out to
 * bindings in the order they were made (a binding of weight w takes the
 * next w numbers), and Jump Consistent Hash (Lamping and Veach, 2014)
 * maps the value's 64-bit hash (XXH3) to a bucket. Adding a binding of
 * weight w to N buckets moves exactly the keys that now land in the new
 * buckets, w/(N+w) of them in expectation, and no key moves between old
 * bindings; removing a binding renumbers the buckets above it (as the
 * plugin does), which moves more. Bindings are restored in the order
 * they were made (the definitions file lists each exchange's bindings in
 * that order), so the mapping survives a restart.
 *
 * The index is the bindings in bucket order with the first bucket of
 * each (a prefix sum), so a weight costs no memory: routing is the jump
 * (O(log N) steps) plus a binary search over the bindings, and allocates
 * nothing.
 *
 * Invariant: segs[i].first == sum of segs[0..i).weight, total == the sum
 * of all weights; segs[i].b->slot == i.
 */
#include "exchange/exchange_int.h"
#include "amqp/amqp_methods.gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

/* The largest weight accepted: buckets are counted in 64 bits and the
 * jump runs in doubles, exact below 2^53 buckets. RabbitMQ accepts any
 * positive integer and allocates a record per bucket. */
#define CHASH_MAX_WEIGHT 2147483647u

enum hash_on {
    ON_ROUTING_KEY,
    ON_HEADER,
    ON_MESSAGE_ID,
    ON_CORRELATION_ID,
    ON_TIMESTAMP
};

struct cseg {
    struct xbind *b;
    uint64_t first, weight;
};

struct chash {
    struct cseg *segs;
    uint32_t n, cap;
    uint64_t total;
    enum hash_on on;
    char *header; /* hash-header, NUL-terminated */
};

static const struct {
    const char *name;
    enum hash_on on;
} properties[] = {
    {"correlation_id", ON_CORRELATION_ID},
    {"message_id", ON_MESSAGE_ID},
    {"timestamp", ON_TIMESTAMP},
};

enum weight_status { WEIGHT_OK, WEIGHT_NOT_INT, WEIGHT_SMALL, WEIGHT_LARGE };

/* The weight a binding key names, read as Erlang's list_to_integer reads
 * it (an optional sign, then digits, nothing else). */
static enum weight_status
parse_weight(struct bytes key, uint64_t *w)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (key.len > 0 && (key.ptr[0] == '+' || key.ptr[0] == '-')) {
        neg = key.ptr[0] == '-';
        i = 1;
    }
    if (i == key.len)
        return WEIGHT_NOT_INT;
    for (; i < key.len; i++) {
        if (key.ptr[i] < '0' || key.ptr[i] > '9')
            return WEIGHT_NOT_INT;
        if (v <= CHASH_MAX_WEIGHT) /* saturates above the limit */
            v = v * 10 + (uint64_t)(key.ptr[i] - '0');
    }
    if (neg || v == 0)
        return WEIGHT_SMALL;
    if (v > CHASH_MAX_WEIGHT)
        return WEIGHT_LARGE;
    *w = v;
    return WEIGHT_OK;
}

/* ---- declare and bind checks */

/* RabbitMQ's rabbit_exchange_type_consistent_hash:validate/1. A value
 * that is not a longstr crashes RabbitMQ's check (541); here it is a 406
 * naming the argument. */
static int
chash_check_decl(struct bytes args, struct buf *err)
{
    struct fvalue h, p;
    bool has_h = ftable_find(args, "hash-header", &h);
    bool has_p = ftable_find(args, "hash-property", &p);

    if (has_h && h.type != 'S') {
        buf_printf(err, "hash-header must be a string, got %s",
                   fvalue_type_name(h.type));
        return WR_ERR;
    }
    if (has_p && p.type != 'S') {
        buf_printf(err, "hash-property must be a string, got %s",
                   fvalue_type_name(p.type));
        return WR_ERR;
    }
    if (has_h && has_p) {
        buf_printf(err, "hash-header and hash-property are mutually exclusive");
        return WR_ERR;
    }
    if (!has_p)
        return WR_OK;
    for (size_t i = 0; i < WR_ARRAY_LEN(properties); i++) {
        if (bytes_eq_str(p.v.str, properties[i].name))
            return WR_OK;
    }
    buf_printf(err, "Unsupported property: %.*s", BYTES_FMT(p.v.str));
    return WR_ERR;
}

/* RabbitMQ's validate_binding/2 texts; the key is printed as Erlang's ~p
 * prints a binary of printable characters. */
static int
chash_check_key(struct bytes key, struct buf *err)
{
    uint64_t w;

    switch (parse_weight(key, &w)) {
    case WEIGHT_OK:
        return WR_OK;
    case WEIGHT_SMALL:
        buf_printf(err, "The binding key must be greater than 0");
        return WR_ERR;
    case WEIGHT_LARGE:
        buf_printf(err, "The binding key must not be greater than %u",
                   CHASH_MAX_WEIGHT);
        return WR_ERR;
    case WEIGHT_NOT_INT:
        break;
    }
    buf_printf(err, "The binding key must be an integer: ");
    buf_put_erl_binary(err, key);
    return WR_ERR;
}

/* ---- the index */

static void *
chash_new(void)
{
    return xcalloc(1, sizeof(struct chash));
}

static void
chash_configure(void *idx, struct bytes args)
{
    struct chash *h = idx;
    struct fvalue v;

    if (ftable_find(args, "hash-header", &v) && v.type == 'S') {
        h->on = ON_HEADER;
        h->header = xstrndup((const char *)v.v.str.ptr, v.v.str.len);
        return;
    }
    if (ftable_find(args, "hash-property", &v) && v.type == 'S') {
        for (size_t i = 0; i < WR_ARRAY_LEN(properties); i++) {
            if (bytes_eq_str(v.v.str, properties[i].name))
                h->on = properties[i].on;
        }
    }
}

static void
chash_free(void *idx)
{
    struct chash *h = idx;

    if (!h)
        return;
    free(h->segs);
    free(h->header);
    free(h);
}

static void
chash_bind(void *idx, struct xbind *b)
{
    struct chash *h = idx;
    uint64_t w = 1;

    /* The vhost checked the key; a key that slipped through (a unit test,
     * a definitions file edited by hand) weighs 1. */
    if (parse_weight(b->key, &w) != WEIGHT_OK)
        w = 1;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 4;
        h->segs = xrealloc(h->segs, h->cap * sizeof(*h->segs));
    }
    b->owner = h;
    b->slot = h->n;
    h->segs[h->n++] = (struct cseg){b, h->total, w};
    h->total += w;
}

/* Removes the binding's buckets; those above move down by its weight
 * (the plugin's remove_binding). */
static void
chash_unbind(void *idx, struct xbind *b)
{
    struct chash *h = idx;
    uint32_t i = b->slot;
    uint64_t w;

    WR_ASSERT(i < h->n && h->segs[i].b == b);
    w = h->segs[i].weight;
    memmove(&h->segs[i], &h->segs[i + 1], (h->n - i - 1) * sizeof(*h->segs));
    h->n--;
    for (; i < h->n; i++) {
        h->segs[i].first -= w;
        h->segs[i].b->slot = i;
    }
    h->total -= w;
}

/* Jump Consistent Hash: the bucket in [0, n) of key. Each step draws the
 * next bucket at which key would jump; the last one below n wins. */
static uint64_t
jump(uint64_t key, uint64_t n)
{
    uint64_t b = 0;
    double j = 0;

    while (j < (double)n) {
        b = (uint64_t)j;
        key = key * UINT64_C(2862933555777941757) + 1;
        j = (double)(b + 1) *
            ((double)(UINT64_C(1) << 31) / (double)((key >> 33) + 1));
    }
    return b;
}

/* The hash of a header value: strings by their bytes, other types by
 * their value, so that 5 and "5" differ as they do in RabbitMQ. */
static uint64_t
value_hash(const struct fvalue *v)
{
    uint64_t bits = 0;

    switch (v->type) {
    case 'S':
    case 'x':
    case 'F':
    case 'A':
        return XXH3_64bits_withSeed(v->v.str.ptr, v->v.str.len,
                                    (uint64_t)v->type);
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
    case 'V':
        break;
    default:
        bits = fvalue_is_int(v) && v->type != 'B' && v->type != 'u' &&
                       v->type != 'i' && v->type != 'T'
                   ? (uint64_t)v->v.i
                   : v->v.u;
        break;
    }
    return XXH3_64bits_withSeed(&bits, sizeof(bits), (uint64_t)v->type);
}

/* What a message without the value hashes to (RabbitMQ hashes the atom
 * undefined): one fixed bucket. */
#define ABSENT_HASH UINT64_C(0x9e3779b97f4a7c15)

static uint64_t
property_hash(const struct chash *h, struct bytes props)
{
    struct amqp_basic_props p;
    char ts[24];
    int n;

    if (props.len == 0 || amqp_basic_props_decode(props.ptr, props.len, &p,
                                                  NULL) != AMQP_DECODE_OK)
        return ABSENT_HASH;
    switch (h->on) {
    case ON_MESSAGE_ID:
        if (p.flags & AMQP_BASIC_MESSAGE_ID_FLAG)
            return XXH3_64bits(p.message_id.ptr, p.message_id.len);
        break;
    case ON_CORRELATION_ID:
        if (p.flags & AMQP_BASIC_CORRELATION_ID_FLAG)
            return XXH3_64bits(p.correlation_id.ptr, p.correlation_id.len);
        break;
    case ON_TIMESTAMP:
        if (p.flags & AMQP_BASIC_TIMESTAMP_FLAG) {
            n = snprintf(ts, sizeof(ts), "%" PRIu64, p.timestamp);
            return XXH3_64bits(ts, (size_t)n);
        }
        break;
    default:
        break;
    }
    return ABSENT_HASH;
}

static uint64_t
message_hash(const struct chash *h, const struct xroute *c)
{
    struct fvalue v;

    switch (h->on) {
    case ON_ROUTING_KEY:
        return XXH3_64bits(c->rks[0].ptr, c->rks[0].len);
    case ON_HEADER:
        if (c->headers.len && ftable_find(c->headers, h->header, &v))
            return value_hash(&v);
        return ABSENT_HASH;
    default:
        return property_hash(h, c->props);
    }
}

/* The binding owning bucket k: the last segment starting at or below k. */
static const struct cseg *
seg_of(const struct chash *h, uint64_t k)
{
    uint32_t lo = 0, hi = h->n;

    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->segs[mid].first <= k)
            lo = mid;
        else
            hi = mid;
    }
    return &h->segs[lo];
}

static size_t
chash_route(void *idx, struct xroute *c)
{
    struct chash *h = idx;
    uint64_t k;

    if (h->n == 0)
        return 0;
    k = h->total == 1 ? 0 : jump(message_hash(h, c), h->total);
    xroute_emit(c, seg_of(h, k)->b->dest);
    return 1;
}

const struct xtype_ops chash__ops = {
    .name = "x-consistent-hash",
    .index_new = chash_new,
    .configure = chash_configure,
    .index_free = chash_free,
    .bind = chash_bind,
    .unbind = chash_unbind,
    .route = chash_route,
    .check_args = NULL,
    .check_key = chash_check_key,
    .check_decl = chash_check_decl,
};
