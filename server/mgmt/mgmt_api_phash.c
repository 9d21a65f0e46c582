/*
 * mgmt_api_phash.c: RabbitMQ's binding "properties_key", which clients
 * read from binding lists and send back to delete a binding:
 *
 *   pack_binding_props(<<>>, [])  -> "~"
 *   pack_binding_props(Key, [])   -> quote_plus(Key)
 *   pack_binding_props(Key, Args) -> quote_plus(Key) ++ "~" ++ args_hash
 *   args_hash(Args) = base64url(<<(erlang:phash2(Args, 1 bsl 32)):32>>)
 *
 * (rabbit_mgmt_format, RabbitMQ 3.10), with "~" in the quoted parts
 * written %7E. Args is the binding's argument table as RabbitMQ holds it:
 * a list of {Key, Type, Value} triples sorted by key, where Key is a
 * binary, Type an atom (longstr, signedint, long, bool, table, ...) and
 * Value a binary, an integer, a float, a boolean atom, a nested table (a
 * list of triples), an array (a list of {Type, Value} pairs), a
 * {Scale, Unscaled} decimal or the atom undefined (void).
 *
 * erlang:phash2 is make_hash2 in the Erlang runtime (erts
 * erl_term_hashing.c / utils.c): Bob Jenkins' mix over the term, walked
 * depth-first, left to right, with a constant per term type. Only the
 * term types above are needed here. Its value is part of Erlang's
 * external contract (stable across releases); the unit vectors in the
 * wire tests were computed with erlang:phash2/2 itself.
 */
#include "server/mgmt/mgmt_int.h"

#include "amqp/ftable.h"

#include <math.h>
#include <stdio.h>

/* (golden ratio * {1, 2, ...}) mod 2^32, as in the runtime */
#define HCONST    0x9e3779b9u
#define HCONST_2  0x3c6ef372u
#define HCONST_3  0xdaa66d2bu
#define HCONST_9  0x8ff34781u
#define HCONST_10 0x2e2ac13au
#define HCONST_11 0xcc623af3u
#define HCONST_12 0x6a99b4acu
#define HCONST_13 0x08d12e65u
/* The hash of [] when nothing came before it. */
#define NIL_FIRST 3468870702u
/* NIL_DEF: the tag value the runtime mixes in for [] */
#define NIL_DEF 2u

#define MIX(a, b, c)    \
    do {                \
        a -= b;         \
        a -= c;         \
        a ^= (c >> 13); \
        b -= c;         \
        b -= a;         \
        b ^= (a << 8);  \
        c -= a;         \
        c -= b;         \
        c ^= (b >> 13); \
        a -= b;         \
        a -= c;         \
        a ^= (c >> 12); \
        b -= c;         \
        b -= a;         \
        b ^= (a << 16); \
        c -= a;         \
        c -= b;         \
        c ^= (b >> 5);  \
        a -= b;         \
        a -= c;         \
        a ^= (c >> 3);  \
        b -= c;         \
        b -= a;         \
        b ^= (a << 10); \
        c -= a;         \
        c -= b;         \
        c ^= (b >> 15); \
    } while (0)

static void
u32_hash2(uint32_t *h, uint32_t x, uint32_t y, uint32_t k)
{
    uint32_t a = k + x, b = k + y;

    MIX(a, b, *h);
}

static void
u32_hash(uint32_t *h, uint32_t x, uint32_t k)
{
    u32_hash2(h, x, 0, k);
}

/* Bob Jenkins' block hash of a binary's bytes, seeded with init. */
static uint32_t
block_hash(const uint8_t *k, size_t len, uint32_t init)
{
    uint32_t a = HCONST, b = HCONST, c = init;
    size_t left = len;

    while (left >= 12) {
        a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) +
             ((uint32_t)k[3] << 24);
        b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) +
             ((uint32_t)k[7] << 24);
        c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) +
             ((uint32_t)k[11] << 24);
        MIX(a, b, c);
        k += 12;
        left -= 12;
    }
    c += (uint32_t)len;
    switch (left) { /* every case falls through */
    case 11:
        c += (uint32_t)k[10] << 24; /* fall through */
    case 10:
        c += (uint32_t)k[9] << 16; /* fall through */
    case 9:
        c += (uint32_t)k[8] << 8; /* fall through */
    case 8:
        b += (uint32_t)k[7] << 24; /* fall through */
    case 7:
        b += (uint32_t)k[6] << 16; /* fall through */
    case 6:
        b += (uint32_t)k[5] << 8; /* fall through */
    case 5:
        b += k[4]; /* fall through */
    case 4:
        a += (uint32_t)k[3] << 24; /* fall through */
    case 3:
        a += (uint32_t)k[2] << 16; /* fall through */
    case 2:
        a += (uint32_t)k[1] << 8; /* fall through */
    case 1:
        a += k[0]; /* fall through */
    default:
        break;
    }
    MIX(a, b, c);
    return c;
}

/* ---- terms */

static void
h_binary(uint32_t *h, struct bytes b)
{
    uint32_t con = HCONST_13 + *h;

    *h = b.len == 0 ? con : block_hash(b.ptr, b.len, con);
}

/* The atom's hash in the atom table: hashpjw over its name. */
static uint32_t
atom_value(const char *name)
{
    uint32_t h = 0, g;

    for (const uint8_t *p = (const uint8_t *)name; *p; p++) {
        h = (h << 4) + *p;
        if ((g = h & 0xf0000000u) != 0) {
            h ^= g >> 24;
            h ^= g;
        }
    }
    return h;
}

static void
h_atom(uint32_t *h, const char *name)
{
    if (*h == 0)
        *h = atom_value(name);
    else
        u32_hash(h, atom_value(name), HCONST_3);
}

static void
h_nil(uint32_t *h)
{
    if (*h == 0)
        *h = NIL_FIRST;
    else
        u32_hash(h, NIL_DEF, HCONST_2);
}

static void
h_int(uint32_t *h, int64_t v)
{
    if (v >= -(INT64_C(1) << 27) && v < (INT64_C(1) << 27)) {
        int32_t y = (int32_t)v;

        if (y < 0)
            u32_hash(h, (uint32_t)-y, HCONST);
        u32_hash(h, (uint32_t)y, HCONST);
        return;
    }
    /* Outside 28 bits: hashed like a bignum, magnitude in two words. */
    {
        uint64_t t = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

        u32_hash2(h, (uint32_t)t, (uint32_t)(t >> 32),
                  v < 0 ? HCONST_10 : HCONST_11);
    }
}

static void
h_float(uint32_t *h, double d)
{
    uint64_t bits;

    if (d == 0.0)
        d = 0.0; /* -0.0 hashes as 0.0 */
    memcpy(&bits, &d, sizeof(bits));
    u32_hash2(h, (uint32_t)(bits >> 32), (uint32_t)bits, HCONST_12);
}

static void
h_tuple(uint32_t *h, uint32_t arity)
{
    u32_hash(h, arity, HCONST_9);
}

/* RabbitMQ's type atom for a field value type letter. */
static const char *
type_atom(uint8_t t)
{
    const char *name = fvalue_type_name((char)t);

    return strcmp(name, "unknown") == 0 ? "void" : name;
}

static void h_table(uint32_t *h, struct bytes tbl, int depth);

static void
h_value(uint32_t *h, const struct fvalue *v, int depth)
{
    int64_t i;

    switch (v->type) {
    case 'S':
    case 'x':
        h_binary(h, v->v.str);
        return;
    case 't':
        h_atom(h, v->v.b ? "true" : "false");
        return;
    case 'f':
        h_float(h, (double)v->v.f);
        return;
    case 'd':
        h_float(h, v->v.d);
        return;
    case 'D':
        h_tuple(h, 2);
        h_int(h, v->v.dec.scale);
        h_int(h, (int64_t)v->v.dec.value);
        return;
    case 'T':
        h_int(h, (int64_t)v->v.u);
        return;
    case 'F':
        h_table(h, v->v.str, depth + 1);
        return;
    case 'A': {
        struct farray_iter it;
        struct fvalue e;

        if (depth < FTABLE_MAX_DEPTH) {
            farray_iter_init(&it, v->v.str);
            while (farray_next(&it, &e)) {
                h_tuple(h, 2);
                h_atom(h, type_atom(e.type));
                h_value(h, &e, depth + 1);
            }
        }
        h_nil(h);
        return;
    }
    default:
        if (fvalue_get_int(v, &i))
            h_int(h, i);
        else
            h_atom(h, "undefined");
        return;
    }
}

/* A table as the list of {Key, Type, Value}, in its stored order. */
static void
h_table(uint32_t *h, struct bytes tbl, int depth)
{
    struct ftable_iter it;
    struct bytes k;
    struct fvalue v;

    if (depth <= FTABLE_MAX_DEPTH) {
        ftable_iter_init(&it, tbl);
        while (ftable_next(&it, &k, &v)) {
            h_tuple(h, 3);
            h_binary(h, k);
            h_atom(h, type_atom(v.type));
            h_value(h, &v, depth);
        }
    }
    h_nil(h);
}

uint32_t
mgmt_phash2_args(struct bytes args)
{
    struct buf sorted;
    uint32_t h = 0;

    /* RabbitMQ keeps binding arguments sorted by key. */
    buf_init(&sorted);
    exchange_args_sort(args, &sorted);
    h_table(&h, buf_bytes(&sorted), 1);
    buf_fini(&sorted);
    return h;
}

/* ---- the key */

void
mgmt_quote_plus(struct bytes s, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < s.len; i++) {
        uint8_t ch = s.ptr[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_') {
            buf_put_u8(out, ch);
        } else if (ch == ' ') {
            buf_put_u8(out, '+');
        } else {
            buf_put_u8(out, '%');
            buf_put_u8(out, (uint8_t)hex[ch >> 4]);
            buf_put_u8(out, (uint8_t)hex[ch & 15]);
        }
    }
}

void
mgmt_props_key(struct bytes key, struct bytes args, struct buf *out)
{
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t hb[4];
    uint32_t h, v;

    if (key.len == 0 && args.len == 0) {
        buf_put_u8(out, '~');
        return;
    }
    mgmt_quote_plus(key, out);
    if (args.len == 0)
        return;
    h = mgmt_phash2_args(args);
    be32_store(hb, h);
    buf_put_u8(out, '~');
    /* base64url of 4 bytes, unpadded: 6 characters */
    v = (uint32_t)hb[0] << 16 | (uint32_t)hb[1] << 8 | hb[2];
    buf_put_u8(out, (uint8_t)b64url[v >> 18 & 63]);
    buf_put_u8(out, (uint8_t)b64url[v >> 12 & 63]);
    buf_put_u8(out, (uint8_t)b64url[v >> 6 & 63]);
    buf_put_u8(out, (uint8_t)b64url[v & 63]);
    v = (uint32_t)hb[3] << 16;
    buf_put_u8(out, (uint8_t)b64url[v >> 18 & 63]);
    buf_put_u8(out, (uint8_t)b64url[v >> 12 & 63]);
}
