/*
 * ftable.c: field table and array validation, iteration and encoding.
 *
 * Layout of one entry:  shortstr key | u8 letter | value
 * Values:  t B b: 1 byte   s u: 2   I i f: 4   l L d T: 8   D: 1 + 4
 *          S x: u32 len + bytes   F A: u32 len + nested body   V: nothing
 *
 * Invariant: ftable_next()/farray_next() never read outside the buffer,
 * even on input that was not validated; they just stop early.
 */
#include "amqp/ftable.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>

/* Reads a big-endian integer of `width` bytes into v: sign-extended
 * into v.i when is_signed, else into v.u. */
static bool
read_int(struct cursor *c, int width, bool is_signed, struct fvalue *v)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    switch (width) {
    case 1:
        if (!rd_u8(c, &u8))
            return false;
        v->v.i = is_signed ? (int8_t)u8 : (int64_t)u8;
        return true;
    case 2:
        if (!rd_u16(c, &u16))
            return false;
        v->v.i = is_signed ? (int16_t)u16 : (int64_t)u16;
        return true;
    case 4:
        if (!rd_u32(c, &u32))
            return false;
        v->v.i = is_signed ? (int32_t)u32 : (int64_t)u32;
        return true;
    default:
        if (!rd_u64(c, &u64))
            return false;
        v->v.u = u64;
        return true;
    }
}

/* f, d and D. */
static bool
read_float(struct cursor *c, char t, struct fvalue *v)
{
    uint8_t u8;
    uint32_t u32;
    uint64_t u64;

    if (t == 'f') {
        if (!rd_u32(c, &u32))
            return false;
        memcpy(&v->v.f, &u32, 4);
    } else if (t == 'd') {
        if (!rd_u64(c, &u64))
            return false;
        memcpy(&v->v.d, &u64, 8);
    } else {
        if (!rd_u8(c, &u8) || !rd_u32(c, &u32))
            return false;
        v->v.dec.scale = u8;
        v->v.dec.value = u32;
    }
    return true;
}

/* Reads one value of type t from c into v. Returns false when short or
 * the letter is unknown. Nested bodies are not descended here. */
static bool
read_value(struct cursor *c, char t, struct fvalue *v)
{
    uint8_t u8;

    v->type = t;
    switch (t) {
    case 't':
        if (!rd_u8(c, &u8))
            return false;
        v->v.b = u8 != 0;
        return true;
    case 'b':
    case 'B':
        return read_int(c, 1, t == 'b', v);
    case 's':
    case 'u':
        return read_int(c, 2, t == 's', v);
    case 'I':
    case 'i':
        return read_int(c, 4, t == 'I', v);
    case 'l':
    case 'L':
    case 'T':
        return read_int(c, 8, t != 'T', v);
    case 'f':
    case 'd':
    case 'D':
        return read_float(c, t, v);
    case 'S':
    case 'x':
    case 'F':
    case 'A':
        return rd_longstr(c, &v->v.str);
    case 'V':
        return true;
    default:
        return false;
    }
}

static int validate_table(struct bytes tbl, int depth, const char **why);
static int validate_array(struct bytes arr, int depth, const char **why);

static int
fail(const char **why, const char *text)
{
    if (why)
        *why = text;
    return WR_ERR;
}

static int
validate_value(struct cursor *c, int depth, const char **why)
{
    struct fvalue v;
    uint8_t t;

    if (!rd_u8(c, &t))
        return fail(why, "truncated field value");
    if (!read_value(c, (char)t, &v)) {
        if (strchr("tbBsuIilLTfdDSxFAV", t) && t)
            return fail(why, "truncated field value");
        return fail(why, "unknown field type");
    }
    if (t == 'F')
        return validate_table(v.v.str, depth + 1, why);
    if (t == 'A')
        return validate_array(v.v.str, depth + 1, why);
    return WR_OK;
}

static int
validate_table(struct bytes tbl, int depth, const char **why)
{
    struct cursor c;
    struct bytes key;

    if (depth > FTABLE_MAX_DEPTH)
        return fail(why, "field table nested too deeply");
    cur_init(&c, tbl.ptr, tbl.len);
    while (c.left > 0) {
        if (!rd_shortstr(&c, &key))
            return fail(why, "truncated field name");
        if (validate_value(&c, depth, why) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

static int
validate_array(struct bytes arr, int depth, const char **why)
{
    struct cursor c;

    if (depth > FTABLE_MAX_DEPTH)
        return fail(why, "field array nested too deeply");
    cur_init(&c, arr.ptr, arr.len);
    while (c.left > 0) {
        if (validate_value(&c, depth, why) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

int
ftable_validate(struct bytes tbl, const char **why)
{
    return validate_table(tbl, 1, why);
}

int
farray_validate(struct bytes arr, const char **why)
{
    return validate_array(arr, 1, why);
}

void
ftable_iter_init(struct ftable_iter *it, struct bytes tbl)
{
    cur_init(&it->c, tbl.ptr, tbl.len);
}

bool
ftable_next(struct ftable_iter *it, struct bytes *key, struct fvalue *v)
{
    uint8_t t;

    if (it->c.left == 0)
        return false;
    if (!rd_shortstr(&it->c, key) || !rd_u8(&it->c, &t) ||
        !read_value(&it->c, (char)t, v)) {
        it->c.left = 0;
        return false;
    }
    return true;
}

bool
ftable_find(struct bytes tbl, const char *key, struct fvalue *v)
{
    struct ftable_iter it;
    struct bytes k;

    ftable_iter_init(&it, tbl);
    while (ftable_next(&it, &k, v)) {
        if (bytes_eq_str(k, key))
            return true;
    }
    return false;
}

size_t
ftable_count(struct bytes tbl)
{
    struct ftable_iter it;
    struct bytes k;
    struct fvalue v;
    size_t n = 0;

    ftable_iter_init(&it, tbl);
    while (ftable_next(&it, &k, &v))
        n++;
    return n;
}

void
farray_iter_init(struct farray_iter *it, struct bytes arr)
{
    cur_init(&it->c, arr.ptr, arr.len);
}

bool
farray_next(struct farray_iter *it, struct fvalue *v)
{
    uint8_t t;

    if (it->c.left == 0)
        return false;
    if (!rd_u8(&it->c, &t) || !read_value(&it->c, (char)t, v)) {
        it->c.left = 0;
        return false;
    }
    return true;
}

bool
fvalue_is_int(const struct fvalue *v)
{
    return v->type && strchr("bBsuIilL", v->type) != NULL;
}

bool
fvalue_get_int(const struct fvalue *v, int64_t *out)
{
    switch (v->type) {
    case 'b':
    case 's':
    case 'I':
    case 'l':
    case 'L':
        *out = v->v.i;
        return true;
    case 'B':
    case 'u':
    case 'i':
        *out = (int64_t)v->v.u;
        return true;
    default:
        return false;
    }
}

uint64_t
fvalue_bits(const struct fvalue *v)
{
    uint64_t bits = 0;
    int64_t i;

    switch (v->type) {
    case 't':
        return v->v.b;
    case 'f':
        memcpy(&bits, &v->v.f, sizeof(v->v.f));
        return bits;
    case 'd':
        memcpy(&bits, &v->v.d, sizeof(v->v.d));
        return bits;
    case 'D':
        return ((uint64_t)v->v.dec.scale << 32) | v->v.dec.value;
    case 'V':
        return 0;
    default:
        return fvalue_get_int(v, &i) ? (uint64_t)i : v->v.u;
    }
}

static int
type_class(char t)
{
    switch (t) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
    case 'L':
        return 'l';
    case 'f':
    case 'd':
        return 'd';
    default:
        return t;
    }
}

bool
fvalue_eq(const struct fvalue *a, const struct fvalue *b)
{
    int64_t x, y;

    if (type_class(a->type) != type_class(b->type))
        return false;
    switch (type_class(a->type)) {
    case 'l':
        return fvalue_get_int(a, &x) && fvalue_get_int(b, &y) && x == y;
    case 'd': {
        double p = a->type == 'f' ? a->v.f : a->v.d;
        double q = b->type == 'f' ? b->v.f : b->v.d;
        return p == q;
    }
    case 't':
        return a->v.b == b->v.b;
    case 'T':
        return a->v.u == b->v.u;
    case 'D':
        return a->v.dec.scale == b->v.dec.scale &&
               a->v.dec.value == b->v.dec.value;
    case 'V':
        return true;
    default: /* S x F A */
        return bytes_eq(a->v.str, b->v.str);
    }
}

const char *
fvalue_type_name(char type)
{
    switch (type) {
    case 't':
        return "bool";
    case 'b':
        return "byte";
    case 'B':
        return "unsignedbyte";
    case 's':
        return "short";
    case 'u':
        return "unsignedshort";
    case 'I':
        return "signedint";
    case 'i':
        return "unsignedint";
    case 'l':
    case 'L':
        return "long";
    case 'f':
        return "float";
    case 'd':
        return "double";
    case 'D':
        return "decimal";
    case 'S':
        return "longstr";
    case 'x':
        return "binary";
    case 'A':
        return "array";
    case 'T':
        return "timestamp";
    case 'F':
        return "table";
    case 'V':
        return "void";
    default:
        return "unknown";
    }
}

void
fvalue_format(const struct fvalue *v, struct buf *out)
{
    int64_t i;

    if (fvalue_get_int(v, &i)) {
        buf_printf(out, "%lld", (long long)i);
        return;
    }
    switch (v->type) {
    case 't':
        buf_printf(out, "%s", v->v.b ? "true" : "false");
        break;
    case 'f':
        buf_printf(out, "%g", (double)v->v.f);
        break;
    case 'd':
        buf_printf(out, "%g", v->v.d);
        break;
    case 'T':
        buf_printf(out, "%llu", (unsigned long long)v->v.u);
        break;
    case 'D':
        buf_printf(out, "{%u,%u}", v->v.dec.scale, v->v.dec.value);
        break;
    case 'S':
    case 'x':
        buf_append(out, v->v.str.ptr, v->v.str.len);
        break;
    case 'V':
        buf_printf(out, "undefined");
        break;
    default:
        buf_printf(out, "<%s>", fvalue_type_name(v->type));
        break;
    }
}

/* ---- encoding */

size_t
ftable_begin(struct buf *b)
{
    size_t mark = b->len;

    buf_put_u32(b, 0);
    return mark;
}

void
ftable_end(struct buf *b, size_t mark)
{
    WR_ASSERT(mark + 4 <= b->len);
    be32_store(b->data + mark, (uint32_t)(b->len - mark - 4));
}

void
fenc_key(struct buf *b, const char *key)
{
    buf_put_shortstr(b, bytes_str(key));
}

void
fenc_bool(struct buf *b, const char *key, bool v)
{
    fenc_key(b, key);
    buf_put_u8(b, 't');
    buf_put_u8(b, v ? 1 : 0);
}

void
fenc_int(struct buf *b, const char *key, int64_t v)
{
    fenc_key(b, key);
    buf_put_u8(b, 'l');
    buf_put_u64(b, (uint64_t)v);
}

void
fenc_i32(struct buf *b, const char *key, int32_t v)
{
    fenc_key(b, key);
    buf_put_u8(b, 'I');
    buf_put_u32(b, (uint32_t)v);
}

void
fenc_str(struct buf *b, const char *key, struct bytes v)
{
    fenc_key(b, key);
    buf_put_u8(b, 'S');
    buf_put_longstr(b, v);
}

void
fenc_cstr(struct buf *b, const char *key, const char *v)
{
    fenc_str(b, key, bytes_str(v));
}

void
fenc_timestamp(struct buf *b, const char *key, uint64_t v)
{
    fenc_key(b, key);
    buf_put_u8(b, 'T');
    buf_put_u64(b, v);
}

void
fenc_value_only(struct buf *b, const struct fvalue *v)
{
    uint32_t u32;
    uint64_t u64;

    buf_put_u8(b, (uint8_t)v->type);
    switch (v->type) {
    case 't':
        buf_put_u8(b, v->v.b ? 1 : 0);
        break;
    case 'b':
        buf_put_u8(b, (uint8_t)(int8_t)v->v.i);
        break;
    case 'B':
        buf_put_u8(b, (uint8_t)v->v.u);
        break;
    case 's':
        buf_put_u16(b, (uint16_t)(int16_t)v->v.i);
        break;
    case 'u':
        buf_put_u16(b, (uint16_t)v->v.u);
        break;
    case 'I':
        buf_put_u32(b, (uint32_t)(int32_t)v->v.i);
        break;
    case 'i':
        buf_put_u32(b, (uint32_t)v->v.u);
        break;
    case 'l':
    case 'L':
        buf_put_u64(b, (uint64_t)v->v.i);
        break;
    case 'T':
        buf_put_u64(b, v->v.u);
        break;
    case 'f':
        memcpy(&u32, &v->v.f, 4);
        buf_put_u32(b, u32);
        break;
    case 'd':
        memcpy(&u64, &v->v.d, 8);
        buf_put_u64(b, u64);
        break;
    case 'D':
        buf_put_u8(b, v->v.dec.scale);
        buf_put_u32(b, v->v.dec.value);
        break;
    case 'S':
    case 'x':
    case 'F':
    case 'A':
        buf_put_longstr(b, v->v.str);
        break;
    case 'V':
        break;
    default:
        WR_ASSERT(!"unknown field type");
    }
}

void
fenc_value(struct buf *b, const char *key, const struct fvalue *v)
{
    fenc_key(b, key);
    fenc_value_only(b, v);
}

void
fenc_value_key(struct buf *b, struct bytes key, const struct fvalue *v)
{
    buf_put_shortstr(b, key);
    fenc_value_only(b, v);
}

/* ---- RabbitMQ's set_table_value */

/* One entry of a table being rewritten: its key, the bytes of its value
 * (letter included) and its place, which keeps the sort stable. */
struct fentry {
    struct bytes key;
    struct bytes val;
    size_t i;
};

/* Erlang's order of binaries: bytewise, a prefix first; then the place
 * (lists:keysort is stable). */
static int
fentry_cmp(const void *a, const void *b)
{
    const struct fentry *x = a, *y = b;
    size_t n = WR_MIN(x->key.len, y->key.len);
    int c = n ? memcmp(x->key.ptr, y->key.ptr, n) : 0;

    if (c != 0)
        return c;
    if (x->key.len != y->key.len)
        return x->key.len < y->key.len ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Writes every 'L' letter of the values in p[0..n) (a table body, or an
 * array body when !table) as 'l', nested ones too: RabbitMQ reads both
 * as a long and writes a long as 'l'. Same width, so in place. Assumes
 * a validated table (the nesting is bounded). */
static void
letters_as_rabbit(uint8_t *p, size_t n, bool table)
{
    struct cursor c;
    struct bytes key;
    struct fvalue v;
    uint8_t t;

    cur_init(&c, p, n);
    while (c.left > 0) {
        uint8_t *letter;

        if (table && !rd_shortstr(&c, &key))
            return;
        letter = p + (n - c.left);
        if (!rd_u8(&c, &t) || !read_value(&c, (char)t, &v))
            return;
        if (t == 'L')
            *letter = 'l';
        else if (t == 'F' || t == 'A')
            letters_as_rabbit(p + (v.v.str.ptr - (const uint8_t *)p),
                              v.v.str.len, t == 'F');
    }
}

void
ftable_put_set(struct buf *b, struct bytes tbl, const char *key,
               const struct fvalue *v)
{
    size_t n = ftable_count(tbl) + 1, k = 0, keylen = strlen(key);
    size_t nvat, nvlen, mark, len;
    struct fentry small[32];
    struct fentry *e =
        n <= WR_ARRAY_LEN(small) ? small : xmalloc(n * sizeof(*e));
    struct ftable_iter it;
    struct bytes name, nv;
    struct fvalue fv;
    bool set = false;

    /* the new value first, at the end of b, then room for the table so
       that nothing moves while entries point into b (no allocation when
       b has room: a delivery's properties are rewritten in a reused
       buffer) */
    nvat = b->len;
    fenc_value_only(b, v);
    nvlen = b->len - nvat;
    buf_reserve(b, 4 + tbl.len + 1 + keylen + nvlen);
    nv = bytes_of(b->data + nvat, nvlen);
    ftable_iter_init(&it, tbl);
    while (k < n - 1 && ftable_next(&it, &name, &fv)) {
        const uint8_t *val = name.ptr + name.len;

        e[k].key = name;
        e[k].val = bytes_of(val, (size_t)(it.c.p - val));
        e[k].i = k;
        if (!set && bytes_eq_str(name, key)) {
            e[k].val = nv; /* keystore: the first one */
            set = true;
        }
        k++;
    }
    if (!set) {
        e[k].key = bytes_str(key);
        e[k].val = nv;
        e[k].i = k;
        k++;
    }
    qsort(e, k, sizeof(*e), fentry_cmp);
    mark = ftable_begin(b);
    for (size_t i = 0; i < k; i++) {
        buf_put_shortstr(b, e[i].key);
        buf_append(b, e[i].val.ptr, e[i].val.len);
    }
    ftable_end(b, mark);
    len = b->len - mark;
    memmove(b->data + nvat, b->data + mark, len);
    b->len = nvat + len;
    letters_as_rabbit(b->data + nvat + 4, len - 4, true);
    if (e != small)
        free(e);
}
