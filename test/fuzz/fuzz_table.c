/*
 * fuzz_table: field table validation, iteration and re-encoding
 * (amqp/ftable.c) against hostile bytes.
 *
 * The input is a table body (and, separately, an array body). When
 * ftable_validate() accepts it, every entry is read back with the
 * iterators, recursing into F and A values, and re-encoded with
 * fenc_value()/fenc_value_only() into a new table, which must validate,
 * have the same length and count, and hold equal entries (values compared
 * by their encodings, so NaN compares equal to itself and a bool byte 2
 * equal to 1). ftable_find() must find every key.
 */
#include "amqp/ftable.h"
#include "fuzz_util.h"

static void rebuild_table(struct bytes tbl, struct buf *out);
static void rebuild_array(struct bytes arr, struct buf *out);

/* Appends v (letter + value), rebuilding nested bodies entry by entry. */
static void
rebuild_value(const struct fvalue *v, struct buf *out)
{
    size_t mark;

    if (v->type != 'F' && v->type != 'A') {
        fenc_value_only(out, v);
        return;
    }
    buf_put_u8(out, (uint8_t)v->type);
    mark = ftable_begin(out);
    if (v->type == 'F')
        rebuild_table(v->v.str, out);
    else
        rebuild_array(v->v.str, out);
    ftable_end(out, mark);
}

static void
rebuild_table(struct bytes tbl, struct buf *out)
{
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;
    char cstr[256];

    ftable_iter_init(&it, tbl);
    while (ftable_next(&it, &key, &v)) {
        if (memchr(key.ptr, 0, key.len) == NULL && v.type != 'F' &&
            v.type != 'A') {
            /* a C-string key: the keyed encoder, and a lookup */
            memcpy(cstr, key.ptr, key.len);
            cstr[key.len] = '\0';
            fenc_value(out, cstr, &v);
            FUZZ_CHECK(ftable_find(tbl, cstr, &v));
        } else {
            buf_put_shortstr(out, key);
            rebuild_value(&v, out);
        }
    }
}

static void
rebuild_array(struct bytes arr, struct buf *out)
{
    struct farray_iter it;
    struct fvalue v;

    farray_iter_init(&it, arr);
    while (farray_next(&it, &v))
        rebuild_value(&v, out);
}

/* Equal when both encode to the same bytes. */
static bool
scalar_eq(const struct fvalue *a, const struct fvalue *b)
{
    struct buf x, y;
    bool eq;

    buf_init(&x);
    buf_init(&y);
    fenc_value_only(&x, a);
    fenc_value_only(&y, b);
    eq = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    buf_fini(&x);
    buf_fini(&y);
    return eq;
}

static bool arrays_eq(struct bytes a, struct bytes b);

static bool values_eq(const struct fvalue *a, const struct fvalue *b);

static bool
tables_eq(struct bytes a, struct bytes b)
{
    struct ftable_iter ia, ib;
    struct bytes ka, kb;
    struct fvalue va, vb;

    ftable_iter_init(&ia, a);
    ftable_iter_init(&ib, b);
    for (;;) {
        bool more_a = ftable_next(&ia, &ka, &va);
        bool more_b = ftable_next(&ib, &kb, &vb);

        if (more_a != more_b)
            return false;
        if (!more_a)
            return true;
        if (!bytes_eq(ka, kb) || !values_eq(&va, &vb))
            return false;
    }
}

static bool
arrays_eq(struct bytes a, struct bytes b)
{
    struct farray_iter ia, ib;
    struct fvalue va, vb;

    farray_iter_init(&ia, a);
    farray_iter_init(&ib, b);
    for (;;) {
        bool more_a = farray_next(&ia, &va);
        bool more_b = farray_next(&ib, &vb);

        if (more_a != more_b)
            return false;
        if (!more_a)
            return true;
        if (!values_eq(&va, &vb))
            return false;
    }
}

static bool
values_eq(const struct fvalue *a, const struct fvalue *b)
{
    struct buf out;

    if (a->type != b->type)
        return false;
    if (a->type == 'F')
        return tables_eq(a->v.str, b->v.str);
    if (a->type == 'A')
        return arrays_eq(a->v.str, b->v.str);
    /* exercise the readers RabbitMQ semantics rely on */
    buf_init(&out);
    fvalue_format(a, &out);
    buf_fini(&out);
    if (a->type != 'f' && a->type != 'd')
        FUZZ_CHECK(fvalue_eq(a, b));
    return scalar_eq(a, b);
}

static void
check_table(const uint8_t *data, size_t size)
{
    struct bytes in = bytes_of(data, size);
    struct buf out;
    struct bytes body;

    if (ftable_validate(in, NULL) != WR_OK)
        return;
    buf_init(&out);
    rebuild_table(in, &out);
    body = buf_bytes(&out);
    FUZZ_CHECK(ftable_validate(body, NULL) == WR_OK);
    FUZZ_CHECK(body.len == size);
    FUZZ_CHECK(ftable_count(body) == ftable_count(in));
    FUZZ_CHECK(tables_eq(in, body));
    buf_fini(&out);
}

static void
check_array(const uint8_t *data, size_t size)
{
    struct bytes in = bytes_of(data, size);
    struct buf out;

    if (farray_validate(in, NULL) != WR_OK)
        return;
    buf_init(&out);
    rebuild_array(in, &out);
    FUZZ_CHECK(farray_validate(buf_bytes(&out), NULL) == WR_OK);
    FUZZ_CHECK(out.len == size);
    FUZZ_CHECK(arrays_eq(in, buf_bytes(&out)));
    buf_fini(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;

    if (ftable_validate(bytes_of(data, size), &why) != WR_OK)
        FUZZ_CHECK(why != NULL);
    check_table(data, size);
    check_array(data, size);
    return 0;
}
