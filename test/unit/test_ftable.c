/*
 * Unit tests for amqp/ftable: every RabbitMQ type letter, nesting limit,
 * truncation at every offset, type-class equality, encode/decode.
 */
#include "amqp/ftable.h"
#include "test/harness/t.h"

#include <stdio.h>
#include <string.h>

/* A table holding one value of every type letter. */
static struct bytes
all_types(struct buf *b)
{
    struct fvalue v;
    size_t m, inner;

    buf_init(b);
    m = ftable_begin(b);
    fenc_bool(b, "t", true);
    v.type = 'b', v.v.i = -5, fenc_value(b, "b", &v);
    v.type = 'B', v.v.u = 250, fenc_value(b, "B", &v);
    v.type = 's', v.v.i = -300, fenc_value(b, "s", &v);
    v.type = 'u', v.v.u = 60000, fenc_value(b, "u", &v);
    fenc_i32(b, "I", -70000);
    v.type = 'i', v.v.u = 4000000000u, fenc_value(b, "i", &v);
    fenc_int(b, "l", -5000000000LL);
    v.type = 'L', v.v.i = 7, fenc_value(b, "L", &v);
    v.type = 'f', v.v.f = 1.5f, fenc_value(b, "f", &v);
    v.type = 'd', v.v.d = -2.25, fenc_value(b, "d", &v);
    v.type = 'D', v.v.dec.scale = 2, v.v.dec.value = 314,
    fenc_value(b, "D", &v);
    fenc_cstr(b, "S", "hello");
    fenc_key(b, "A");
    buf_put_u8(b, 'A');
    inner = farray_begin(b);
    v.type = 'I', v.v.i = 1, fenc_value_only(b, &v);
    v.type = 'S', v.v.str = BYTES_LIT("x"), fenc_value_only(b, &v);
    farray_end(b, inner);
    fenc_timestamp(b, "T", 1700000000);
    fenc_key(b, "F");
    buf_put_u8(b, 'F');
    inner = ftable_begin(b);
    fenc_cstr(b, "k", "v");
    ftable_end(b, inner);
    v.type = 'V', fenc_value(b, "V", &v);
    v.type = 'x', v.v.str = BYTES_LIT("\x00\x01"), fenc_value(b, "x", &v);
    ftable_end(b, m);
    return (struct bytes){b->data + 4, b->len - 4};
}

T_CASE(every_type_letter_validates_and_reads_back)
{
    struct buf b;
    struct bytes t = all_types(&b);
    struct fvalue v;
    int64_t i;

    T_EQ_INT(ftable_validate(t, NULL), WR_OK);
    T_EQ_INT(ftable_count(t), 18);
    T_ASSERT(ftable_find(t, "t", &v) && v.type == 't' && v.v.b);
    T_ASSERT(ftable_find(t, "b", &v) && fvalue_get_int(&v, &i) && i == -5);
    T_ASSERT(ftable_find(t, "B", &v) && fvalue_get_int(&v, &i) && i == 250);
    T_ASSERT(ftable_find(t, "s", &v) && fvalue_get_int(&v, &i) && i == -300);
    T_ASSERT(ftable_find(t, "u", &v) && fvalue_get_int(&v, &i) && i == 60000);
    T_ASSERT(ftable_find(t, "I", &v) && fvalue_get_int(&v, &i) && i == -70000);
    T_ASSERT(ftable_find(t, "i", &v) && fvalue_get_int(&v, &i) &&
             i == 4000000000LL);
    T_ASSERT(ftable_find(t, "l", &v) && fvalue_get_int(&v, &i) &&
             i == -5000000000LL);
    T_ASSERT(ftable_find(t, "L", &v) && fvalue_get_int(&v, &i) && i == 7);
    T_ASSERT(ftable_find(t, "f", &v) && v.v.f == 1.5f);
    T_ASSERT(ftable_find(t, "d", &v) && v.v.d == -2.25);
    T_ASSERT(ftable_find(t, "D", &v) && v.v.dec.scale == 2 &&
             v.v.dec.value == 314);
    T_ASSERT(ftable_find(t, "S", &v) && bytes_eq_str(v.v.str, "hello"));
    T_ASSERT(ftable_find(t, "T", &v) && v.v.u == 1700000000);
    T_ASSERT(ftable_find(t, "V", &v) && v.type == 'V');
    T_ASSERT(ftable_find(t, "x", &v) && v.v.str.len == 2);
    T_ASSERT(ftable_find(t, "F", &v) && ftable_find(v.v.str, "k", &v) &&
             bytes_eq_str(v.v.str, "v"));
    T_ASSERT(ftable_find(t, "A", &v));
    {
        struct farray_iter it;
        struct fvalue e;
        farray_iter_init(&it, v.v.str);
        T_ASSERT(farray_next(&it, &e) && e.type == 'I');
        T_ASSERT(farray_next(&it, &e) && e.type == 'S');
        T_ASSERT(!farray_next(&it, &e));
    }
    T_ASSERT(!ftable_find(t, "missing", &v));
    buf_fini(&b);
}

T_CASE(truncation_at_every_offset_is_refused_or_shorter)
{
    struct buf b;
    struct bytes t = all_types(&b);

    /* Every proper prefix either fails validation or is itself a complete
     * shorter table (cut exactly at an entry boundary); reading it never
     * goes past the cut. */
    for (size_t n = 0; n < t.len; n++) {
        struct bytes p = {t.ptr, n};
        if (ftable_validate(p, NULL) == WR_OK)
            T_ASSERT(ftable_count(p) < 18);
    }
    buf_fini(&b);
}

T_CASE(unknown_type_letter_refused)
{
    const uint8_t bad[] = {1, 'k', 'Z', 0};
    const char *why = NULL;

    T_EQ_INT(ftable_validate(bytes_of(bad, sizeof(bad)), &why), WR_ERR);
    T_EQ_STR(why, "unknown field type");
}

T_CASE(nesting_limit)
{
    struct buf b;
    size_t marks[FTABLE_MAX_DEPTH + 2];
    const char *why = NULL;
    int depth;

    for (depth = FTABLE_MAX_DEPTH; depth <= FTABLE_MAX_DEPTH + 1; depth++) {
        buf_init(&b);
        /* depth tables nested: outermost is depth 1 */
        marks[0] = ftable_begin(&b);
        for (int i = 1; i < depth; i++) {
            fenc_key(&b, "n");
            buf_put_u8(&b, 'F');
            marks[i] = ftable_begin(&b);
        }
        for (int i = depth - 1; i >= 0; i--)
            ftable_end(&b, marks[i]);
        int rc = ftable_validate(bytes_of(b.data + 4, b.len - 4), &why);
        T_EQ_INT(rc, depth <= FTABLE_MAX_DEPTH ? WR_OK : WR_ERR);
        buf_fini(&b);
    }
}

T_CASE(type_class_equality)
{
    struct fvalue a = {.type = 'b', .v.i = 5};
    struct fvalue b = {.type = 'l', .v.i = 5};
    struct fvalue c = {.type = 'S', .v.str = BYTES_LIT("5")};
    struct fvalue d = {.type = 'f', .v.f = 2.0f};
    struct fvalue e = {.type = 'd', .v.d = 2.0};

    T_ASSERT(fvalue_eq(&a, &b));
    T_ASSERT(!fvalue_eq(&a, &c));
    T_ASSERT(fvalue_eq(&d, &e));
    b.v.i = 6;
    T_ASSERT(!fvalue_eq(&a, &b));
}

T_CASE(type_names_match_rabbitmq)
{
    T_EQ_STR(fvalue_type_name('I'), "signedint");
    T_EQ_STR(fvalue_type_name('l'), "long");
    T_EQ_STR(fvalue_type_name('S'), "longstr");
    T_EQ_STR(fvalue_type_name('t'), "bool");
}

/* rabbit_misc:set_table_value, as RabbitMQ's quorum queues add
 * x-delivery-count: the first entry of the key replaced, the entries
 * sorted by key (a prefix first, equal keys in their order), 'L'
 * written 'l' at every depth. */
T_CASE(put_set_sorts_replaces_the_first_and_writes_L_as_l)
{
    struct buf in, out, want;
    struct fvalue v = {.type = 'l', .v.i = 3};
    size_t m;

    buf_init(&in);
    buf_init(&out);
    buf_init(&want);
    fenc_cstr(&in, "k", "old");
    fenc_key(&in, "ab");
    buf_put_u8(&in, 'L');
    buf_put_u64(&in, 7);
    fenc_key(&in, "n");
    buf_put_u8(&in, 'F');
    m = ftable_begin(&in);
    fenc_key(&in, "z");
    buf_put_u8(&in, 'A');
    {
        size_t a = farray_begin(&in);

        buf_put_u8(&in, 'L');
        buf_put_u64(&in, 1);
        farray_end(&in, a);
    }
    fenc_i32(&in, "a", 2);
    ftable_end(&in, m);
    fenc_cstr(&in, "k", "again");
    fenc_i32(&in, "a", 1);
    T_EQ_INT(ftable_validate(buf_bytes(&in), NULL), WR_OK);
    ftable_put_set(&out, buf_bytes(&in), "k", &v);

    m = ftable_begin(&want);
    fenc_i32(&want, "a", 1);
    fenc_int(&want, "ab", 7);
    fenc_int(&want, "k", 3);
    fenc_cstr(&want, "k", "again");
    fenc_key(&want, "n");
    buf_put_u8(&want, 'F');
    {
        size_t t = ftable_begin(&want), a;

        fenc_key(&want, "z");
        buf_put_u8(&want, 'A');
        a = farray_begin(&want);
        buf_put_u8(&want, 'l');
        buf_put_u64(&want, 1);
        farray_end(&want, a);
        fenc_i32(&want, "a", 2);
        ftable_end(&want, t);
    }
    ftable_end(&want, m);
    T_EQ_MEM(out.data, out.len, want.data, want.len);

    /* absent: added in its place; an empty table gets it alone */
    buf_reset(&out);
    ftable_put_set(&out, bytes_of(NULL, 0), "x-delivery-count", &v);
    buf_reset(&want);
    m = ftable_begin(&want);
    fenc_int(&want, "x-delivery-count", 3);
    ftable_end(&want, m);
    T_EQ_MEM(out.data, out.len, want.data, want.len);
    buf_fini(&in);
    buf_fini(&out);
    buf_fini(&want);
}

/* A client's table of 40,000 one-byte entries in reverse order: sorted
 * in n log n, every entry kept. */
T_CASE(put_set_of_a_huge_table_is_quick)
{
    struct buf in, out;
    struct fvalue v = {.type = 'l', .v.i = 1};
    struct ftable_iter it;
    struct bytes key, prev = {0};
    struct fvalue fv;
    size_t n = 0;

    buf_init(&in);
    buf_init(&out);
    for (int i = 40000; i > 0; i--) {
        char k[16];

        snprintf(k, sizeof(k), "%05d", i);
        fenc_bool(&in, k, true);
    }
    ftable_put_set(&out, buf_bytes(&in), "x-delivery-count", &v);
    ftable_iter_init(&it, bytes_of(out.data + 4, out.len - 4));
    while (ftable_next(&it, &key, &fv)) {
        if (prev.ptr)
            T_ASSERT(memcmp(prev.ptr, key.ptr, WR_MIN(prev.len, key.len)) < 0);
        prev = key;
        n++;
    }
    T_EQ_INT(n, 40001);
    buf_fini(&in);
    buf_fini(&out);
}

static const struct t_case cases[] = {
    T_REG(every_type_letter_validates_and_reads_back),
    T_REG(truncation_at_every_offset_is_refused_or_shorter),
    T_REG(unknown_type_letter_refused),
    T_REG(nesting_limit),
    T_REG(type_class_equality),
    T_REG(type_names_match_rabbitmq),
    T_REG(put_set_sorts_replaces_the_first_and_writes_L_as_l),
    T_REG(put_set_of_a_huge_table_is_quick),
};
T_MAIN(cases)
