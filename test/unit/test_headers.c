/*
 * Unit tests for the headers exchange: x-match all/any and the -with-x
 * variants, empty tables, messages without headers, void (presence)
 * values, Erlang value equality (types ignored at the top level, typed
 * and ordered inside nested tables and arrays), duplicate keys, many
 * headers, and the exact RabbitMQ texts for invalid x-match values.
 * Expected results were checked against RabbitMQ 3.10.8 with pika.
 */
#include "exchange/exchange_int.h"
#include "test/harness/t.h"

#include <math.h>

static int qs[64];

static struct xdest
qd(int i)
{
    return (struct xdest){&qs[i], false};
}

/* ---- building tables */

struct tb {
    struct buf b;
    size_t m;
};

static struct tb *
tb_new(void)
{
    struct tb *t = calloc(1, sizeof(*t));

    buf_init(&t->b);
    t->m = ftable_begin(&t->b);
    return t;
}

/* Finishes t; the bytes stay valid until the test ends (leaked on
 * purpose: each case is its own process). */
static struct bytes
tb_end(struct tb *t)
{
    ftable_end(&t->b, t->m);
    return bytes_of(t->b.data + 4, t->b.len - 4);
}

static struct fvalue
I(int64_t v) {
    return (struct fvalue){.type = 'I', .v.i = v};
}

static struct fvalue
L(char type, int64_t v) /* 'l', 'L', 'b', 's' */
{
    return (struct fvalue){.type = type, .v.i = v};
}

static struct fvalue
U(char type, uint64_t v) /* 'B', 'u', 'i', 'T' */
{
    return (struct fvalue){.type = type, .v.u = v};
}

static struct fvalue
D(double v) {
    return (struct fvalue){.type = 'd', .v.d = v};
}

static struct fvalue
F32(float v) {
    return (struct fvalue){.type = 'f', .v.f = v};
}

static struct fvalue
S(const char *s) {
    return (struct fvalue){.type = 'S', .v.str = bytes_str(s)};
}

static struct fvalue
Sn(const char *s, size_t n)
{
    return (struct fvalue){.type = 'S', .v.str = bytes_of(s, n)};
}

static struct fvalue
X(const char *s) {
    return (struct fvalue){.type = 'x', .v.str = bytes_str(s)};
}

static struct fvalue
B(bool v) {
    return (struct fvalue){.type = 't', .v.b = v};
}

static struct fvalue
V(void) {
    return (struct fvalue){.type = 'V'};
}

static struct fvalue
DEC(uint8_t scale, uint32_t value) {
    return (struct fvalue){.type = 'D', .v.dec = {scale, value}};
}

static struct fvalue
TBL(struct bytes inner) {
    return (struct fvalue){.type = 'F', .v.str = inner};
}

static struct fvalue
ARR(struct bytes inner) {
    return (struct fvalue){.type = 'A', .v.str = inner};
}

/* A table of n (key, value) pairs. */
static struct bytes
tbl(int n, ...)
{
    struct tb *t = tb_new();
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *k = va_arg(ap, const char *);
        struct fvalue v = va_arg(ap, struct fvalue);
        fenc_value(&t->b, k, &v);
    }
    va_end(ap);
    return tb_end(t);
}

/* An array of n values. */
static struct bytes
arr(int n, ...)
{
    struct buf *b = calloc(1, sizeof(*b));
    va_list ap;

    buf_init(b);
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        struct fvalue v = va_arg(ap, struct fvalue);
        fenc_value_only(b, &v);
    }
    va_end(ap);
    return bytes_of(b->data, b->len);
}

/* A table {key: bool with the raw byte v} (RabbitMQ reads v != 0). */
static struct bytes
raw_bool(const char *key, uint8_t v)
{
    struct tb *t = tb_new();

    fenc_key(&t->b, key);
    buf_put_u8(&t->b, 't');
    buf_put_u8(&t->b, v);
    return tb_end(t);
}

/* Does a headers exchange bound with args route a message carrying
 * headers? */
static bool
routes(struct bytes args, struct bytes headers)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("h"), EXCHANGE_HEADERS, false,
                                  false, false, BYTES_NULL);
    struct routeset rs;
    struct buf err;
    size_t n;

    buf_init(&err);
    T_EQ_INT(exchange_check_binding_args(x, args, &err), WR_OK);
    T_EQ_INT(exchange_bind(x, BYTES_NULL, args, qd(0)), 1);
    routeset_init(&rs);
    n = exchange_route(r, x, BYTES_LIT("ignored"), headers, &rs);
    routeset_fini(&rs);
    buf_fini(&err);
    xreg_free(r);
    return n == 1;
}

#define YES(args, hdrs) T_ASSERT(routes(args, hdrs))
#define NO(args, hdrs)  T_ASSERT(!routes(args, hdrs))

T_CASE(all_and_any)
{
    struct bytes all = tbl(3, "x-match", S("all"), "a", S("1"), "b", S("2"));
    struct bytes any = tbl(3, "x-match", S("any"), "a", S("1"), "b", S("2"));
    struct bytes dflt = tbl(2, "a", S("1"), "b", S("2"));

    YES(all, tbl(2, "a", S("1"), "b", S("2")));
    YES(all, tbl(3, "c", S("3"), "b", S("2"), "a", S("1")));
    NO(all, tbl(1, "a", S("1")));
    NO(all, tbl(2, "a", S("1"), "b", S("3")));
    YES(dflt, tbl(2, "b", S("2"), "a", S("1")));
    NO(dflt, tbl(1, "b", S("2")));
    YES(any, tbl(1, "a", S("1")));
    YES(any, tbl(2, "b", S("2"), "c", S("3")));
    NO(any, tbl(2, "b", S("3"), "c", S("3")));
    NO(any, tbl(1, "c", S("1")));
}

T_CASE(empty_match_table_all_matches_everything_any_nothing)
{
    struct bytes all = tbl(1, "x-match", S("all"));
    struct bytes any = tbl(1, "x-match", S("any"));

    YES(all, BYTES_NULL);
    YES(all, tbl(1, "a", I(1)));
    YES(BYTES_NULL, BYTES_NULL); /* no args at all: "all" of nothing */
    YES(BYTES_NULL, tbl(1, "a", I(1)));
    NO(any, BYTES_NULL);
    NO(any, tbl(1, "a", I(1)));
    NO(any, tbl(1, "x-match", S("any")));
}

T_CASE(message_without_headers)
{
    NO(tbl(1, "a", V()), BYTES_NULL);
    NO(tbl(2, "x-match", S("any"), "a", I(1)), BYTES_NULL);
    NO(tbl(2, "x-match", S("all"), "a", I(1)), BYTES_NULL);
    YES(tbl(2, "x-match", S("all"), "x-a", I(1)), BYTES_NULL);
}

T_CASE(void_binding_value_matches_presence)
{
    struct bytes b = tbl(1, "a", V());

    YES(b, tbl(1, "a", S("whatever")));
    YES(b, tbl(1, "a", V()));
    YES(b, tbl(1, "a", I(0)));
    NO(b, tbl(1, "b", I(1)));
    NO(tbl(1, "a", S("x")), tbl(1, "a", V()));
    YES(tbl(2, "x-match", S("any-with-x"), "a", V()), tbl(1, "a", I(0)));
    YES(tbl(3, "x-match", S("any"), "a", V(), "b", I(1)), tbl(1, "a", B(0)));
}

T_CASE(x_keys_ignored_unless_with_x)
{
    struct bytes foo = tbl(1, "x-foo", S("bar"));

    YES(tbl(2, "x-match", S("all"), "x-foo", S("bar")), BYTES_NULL);
    NO(tbl(2, "x-match", S("all-with-x"), "x-foo", S("bar")), BYTES_NULL);
    YES(tbl(2, "x-match", S("all-with-x"), "x-foo", S("bar")), foo);
    NO(tbl(2, "x-match", S("all-with-x"), "x-foo", S("baz")), foo);
    YES(tbl(2, "x-match", S("any-with-x"), "x-foo", S("bar")), foo);
    NO(tbl(2, "x-match", S("any"), "x-foo", S("bar")), foo);
    /* x-match itself never takes part. */
    NO(tbl(1, "x-match", S("any-with-x")), tbl(1, "x-match", S("any")));
    YES(tbl(1, "x-match", S("all-with-x")), BYTES_NULL);
    YES(tbl(2, "x-match", S("all-with-x"), "x-match2", I(1)),
        tbl(1, "x-match2", I(1)));
    /* "x" without the dash is an ordinary key. */
    NO(tbl(2, "x-match", S("all"), "xfoo", S("bar")), BYTES_NULL);
}

T_CASE(top_level_values_compare_like_erlang)
{
    const double two53 = 9007199254740992.0;

    YES(tbl(1, "a", I(1)), tbl(1, "a", D(1.0)));
    YES(tbl(1, "a", D(1.0)), tbl(1, "a", I(1)));
    YES(tbl(1, "a", I(1)), tbl(1, "a", F32(1.0f)));
    NO(tbl(1, "a", D(0.1)), tbl(1, "a", F32(0.1f)));
    YES(tbl(1, "a", D(0.0)), tbl(1, "a", D(-0.0)));
    YES(tbl(1, "a", S("abc")), tbl(1, "a", X("abc")));
    YES(tbl(1, "a", I(5)), tbl(1, "a", U('T', 5)));
    YES(tbl(1, "a", U('B', 200)), tbl(1, "a", I(200)));
    YES(tbl(1, "a", U('i', 4000000000u)), tbl(1, "a", L('l', 4000000000)));
    YES(tbl(1, "a", L('s', -5)), tbl(1, "a", L('b', -5)));
    NO(tbl(1, "a", U('T', (1ULL << 63) + 5)),
       tbl(1, "a", L('l', INT64_MIN + 5)));
    NO(tbl(1, "a", L('l', -1)), tbl(1, "a", U('T', UINT64_MAX)));
    NO(tbl(1, "a", U('T', UINT64_MAX)), tbl(1, "a", D(18446744073709551616.0)));
    YES(tbl(1, "a", U('T', 1ULL << 63)), tbl(1, "a", D(9223372036854775808.0)));
    YES(tbl(1, "a", L('l', 1LL << 40)), tbl(1, "a", D(1099511627776.0)));
    NO(tbl(1, "a", L('l', (1LL << 53) + 1)), tbl(1, "a", D(two53)));
    YES(tbl(1, "a", L('l', 1LL << 53)), tbl(1, "a", D(two53)));
    NO(tbl(1, "a", I(1)), tbl(1, "a", L('l', 1LL << 40)));
    YES(tbl(1, "a", DEC(1, 15)), tbl(1, "a", DEC(1, 15)));
    NO(tbl(1, "a", DEC(1, 15)), tbl(1, "a", DEC(2, 150)));
    NO(tbl(1, "a", DEC(1, 15)), tbl(1, "a", D(1.5)));
    NO(tbl(1, "a", B(true)), tbl(1, "a", I(1)));
    YES(tbl(1, "a", B(true)), raw_bool("a", 7));
    NO(tbl(1, "a", B(false)), raw_bool("a", 7));
    NO(tbl(1, "a", S("1")), tbl(1, "a", I(1)));
    NO(tbl(1, "a", S("abc")), tbl(1, "a", S("abd")));
}

T_CASE(nested_tables_and_arrays_compare_typed_and_ordered)
{
    struct bytes b1 = tbl(1, "b", I(1));

    YES(tbl(1, "a", TBL(b1)), tbl(1, "a", TBL(tbl(1, "b", I(1)))));
    NO(tbl(1, "a", TBL(b1)), tbl(1, "a", TBL(tbl(1, "b", D(1.0)))));
    NO(tbl(1, "a", TBL(b1)), tbl(1, "a", TBL(tbl(1, "b", L('L', 1)))));
    NO(tbl(1, "a", TBL(b1)), tbl(1, "a", TBL(tbl(1, "b", L('b', 1)))));
    YES(tbl(1, "a", TBL(tbl(1, "b", L('l', 1)))),
        tbl(1, "a", TBL(tbl(1, "b", L('L', 1)))));
    YES(tbl(1, "a", TBL(tbl(1, "b", B(true)))),
        tbl(1, "a", TBL(raw_bool("b", 2))));
    YES(tbl(1, "a", TBL(tbl(1, "b", D(0.0)))),
        tbl(1, "a", TBL(tbl(1, "b", D(-0.0)))));
    NO(tbl(1, "a", TBL(tbl(2, "b", I(1), "c", I(2)))),
       tbl(1, "a", TBL(tbl(2, "c", I(2), "b", I(1)))));
    NO(tbl(1, "a", TBL(b1)), tbl(1, "a", TBL(tbl(2, "b", I(1), "c", I(2)))));
    YES(tbl(1, "a", TBL(tbl(1, "b", TBL(b1)))),
        tbl(1, "a", TBL(tbl(1, "b", TBL(tbl(1, "b", I(1)))))));
    YES(tbl(1, "a", ARR(arr(2, I(1), I(2)))),
        tbl(1, "a", ARR(arr(2, I(1), I(2)))));
    NO(tbl(1, "a", ARR(arr(2, I(1), I(2)))),
       tbl(1, "a", ARR(arr(2, I(2), I(1)))));
    NO(tbl(1, "a", ARR(arr(1, I(1)))), tbl(1, "a", ARR(arr(1, D(1.0)))));
    NO(tbl(1, "a", ARR(arr(1, I(1)))), tbl(1, "a", ARR(arr(1, L('L', 1)))));
    NO(tbl(1, "a", ARR(arr(1, I(1)))), tbl(1, "a", ARR(arr(0))));
    YES(tbl(1, "a", ARR(arr(1, S("s")))), tbl(1, "a", ARR(arr(1, S("s")))));
    NO(tbl(1, "a", ARR(arr(1, S("s")))), tbl(1, "a", ARR(arr(1, X("s")))));
    /* [] == []: an empty table equals an empty array. */
    YES(tbl(1, "a", TBL(BYTES_NULL)), tbl(1, "a", ARR(BYTES_NULL)));
    NO(tbl(1, "a", TBL(b1)), tbl(1, "a", ARR(arr(1, I(1)))));
}

T_CASE(value_eq_direct)
{
    struct fvalue a = I(3), b = D(3.0), c = S("3"), v = V();

    T_ASSERT(headers__value_eq(&a, &b));
    T_ASSERT(headers__value_eq(&b, &a));
    T_ASSERT(!headers__value_eq(&a, &c));
    T_ASSERT(headers__value_eq(&v, &v));
    T_ASSERT(!headers__value_eq(&v, &a));
    b = D(NAN);
    T_ASSERT(!headers__value_eq(&a, &b));
    b = D(INFINITY);
    T_ASSERT(!headers__value_eq(&a, &b));
    a = U('T', UINT64_MAX);
    b = D(18446744073709551616.0); /* 2^64: out of range */
    T_ASSERT(!headers__value_eq(&a, &b));
    a = L('l', INT64_MIN);
    b = D(-9223372036854775808.0);
    T_ASSERT(headers__value_eq(&a, &b));
}

/* The merge walks both sorted lists once, as headers_match/5 does, so
 * duplicate keys behave like RabbitMQ's: each header is used once. */
T_CASE(duplicate_keys_merge_like_rabbitmq)
{
    struct bytes a1 = tbl(1, "a", I(1));
    struct bytes a1any = tbl(2, "x-match", S("any"), "a", I(1));

    NO(a1, tbl(2, "a", I(2), "a", I(1)));
    NO(a1any, tbl(2, "a", I(2), "a", I(1)));
    YES(a1, tbl(2, "a", I(1), "a", I(2)));
    NO(tbl(2, "a", I(1), "a", I(2)), tbl(1, "a", I(1)));
    YES(tbl(3, "x-match", S("any"), "a", I(1), "a", I(2)), tbl(1, "a", I(1)));
    YES(tbl(2, "a", I(1), "a", I(2)), tbl(2, "a", I(1), "a", I(2)));
    NO(tbl(2, "a", I(1), "a", I(2)), tbl(2, "a", I(2), "a", I(1)));
}

T_CASE(key_order_and_prefix_keys)
{
    struct bytes b = tbl(3, "ab", I(2), "a", I(1), "b", I(3));

    YES(b, tbl(3, "b", I(3), "ab", I(2), "a", I(1)));
    YES(b, tbl(4, "aa", I(0), "a", I(1), "b", I(3), "ab", I(2)));
    NO(b, tbl(3, "b", I(3), "abc", I(2), "a", I(1)));
    YES(tbl(1, "\xff", I(1)), tbl(2, "\x01", I(0), "\xff", I(1)));
    YES(tbl(1, "", I(1)), tbl(2, "z", I(0), "", I(1)));
}

T_CASE(many_headers_sort_and_match)
{
    struct tb *h = tb_new(), *bnd = tb_new(), *bad = tb_new();
    char key[16];
    struct bytes hdrs, args, badargs;

    for (int i = 4999; i >= 0; i--) {
        snprintf(key, sizeof(key), "k%d", (i * 7919) % 5000);
        fenc_int(&h->b, key, i);
    }
    hdrs = tb_end(h);
    for (int i = 0; i < 50; i++) {
        int j = i * 97;
        int k = (j * 7919) % 5000;
        snprintf(key, sizeof(key), "k%d", k);
        fenc_i32(&bnd->b, key, j);
        fenc_i32(&bad->b, key, j + (i == 49));
    }
    args = tb_end(bnd);
    badargs = tb_end(bad);
    YES(args, hdrs);
    NO(badargs, hdrs);
}

T_CASE(headers_in_exchange_graphs)
{
    struct xreg *r = xreg_new();
    struct exchange *f = xreg_add(r, BYTES_LIT("f"), EXCHANGE_FANOUT, false,
                                  false, false, BYTES_NULL);
    struct exchange *h1 = xreg_add(r, BYTES_LIT("h1"), EXCHANGE_HEADERS, false,
                                   false, false, BYTES_NULL);
    struct exchange *h2 = xreg_add(r, BYTES_LIT("h2"), EXCHANGE_HEADERS, false,
                                   false, false, BYTES_NULL);
    struct routeset rs;
    struct bytes m1 = tbl(2, "b", I(2), "a", I(1));
    struct bytes m2 = tbl(1, "a", I(9));

    routeset_init(&rs);
    exchange_bind(f, BYTES_NULL, BYTES_NULL, (struct xdest){h1, true});
    exchange_bind(f, BYTES_NULL, BYTES_NULL, (struct xdest){h2, true});
    exchange_bind(h1, BYTES_NULL, tbl(1, "a", I(1)), qd(1));
    exchange_bind(h2, BYTES_NULL,
                  tbl(3, "x-match", S("any"), "b", I(2), "a", I(9)), qd(2));
    exchange_bind(h2, BYTES_NULL, tbl(1, "a", V()), qd(3));
    T_EQ_INT(exchange_route(r, f, BYTES_NULL, m1, &rs), 3);
    T_ASSERT(routeset_has(&rs, &qs[1]) && routeset_has(&rs, &qs[2]) &&
             routeset_has(&rs, &qs[3]));
    /* The next route decodes its own headers. */
    routeset_reset(&rs);
    T_EQ_INT(exchange_route(r, f, BYTES_NULL, m2, &rs), 2);
    T_ASSERT(routeset_has(&rs, &qs[2]) && routeset_has(&rs, &qs[3]));
    routeset_reset(&rs);
    T_EQ_INT(exchange_route(r, f, BYTES_NULL, BYTES_NULL, &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(bind_is_idempotent_across_key_order)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("h"), EXCHANGE_HEADERS, false,
                                  false, false, BYTES_NULL);
    struct bytes ab = tbl(3, "x-match", S("any"), "a", I(1), "b", I(2));
    struct bytes ba = tbl(3, "b", I(2), "x-match", S("any"), "a", I(1));
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(exchange_bind(x, BYTES_NULL, ab, qd(1)), 1);
    T_EQ_INT(exchange_bind(x, BYTES_NULL, ba, qd(1)), 0);
    T_EQ_INT(exchange_bind(x, BYTES_LIT("key"), ba, qd(1)), 1);
    T_EQ_INT(exchange_binding_count(x), 2);
    T_EQ_INT(exchange_route(r, x, BYTES_NULL, tbl(1, "b", I(2)), &rs), 1);
    T_EQ_INT(exchange_unbind(x, BYTES_NULL, ba, qd(1)), 1);
    T_EQ_INT(exchange_unbind(x, BYTES_NULL, ab, qd(1)), 0);
    T_EQ_INT(exchange_unbind(x, BYTES_LIT("key"), ab, qd(1)), 1);
    routeset_reset(&rs);
    T_EQ_INT(exchange_route(r, x, BYTES_NULL, tbl(1, "b", I(2)), &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

/* ---- x-match validation texts (RabbitMQ 3.10.8, verbatim) */

static void
expect_text(struct fvalue v, const char *want)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("h"), EXCHANGE_HEADERS, false,
                                  false, false, BYTES_NULL);
    struct buf err;

    buf_init(&err);
    T_EQ_INT(
        exchange_check_binding_args(x, tbl(2, "a", I(1), "x-match", v), &err),
        want ? WR_ERR : WR_OK);
    if (want) {
        buf_put_u8(&err, 0);
        T_EQ_STR((const char *)err.data, want);
    } else {
        T_EQ_INT(err.len, 0);
    }
    buf_fini(&err);
    xreg_free(r);
}

#define BADV(v)                      \
    "Invalid x-match field value " v \
    "; expected all, any, all-with-x, or any-with-x"
#define BADT(t, v) \
    "Invalid x-match field type " t " (value " v "); expected longstr"

T_CASE(x_match_values_accepted)
{
    expect_text(S("all"), NULL);
    expect_text(S("any"), NULL);
    expect_text(S("all-with-x"), NULL);
    expect_text(S("any-with-x"), NULL);
    struct buf err;
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("h"), EXCHANGE_HEADERS, false,
                                  false, false, BYTES_NULL);
    buf_init(&err);
    T_EQ_INT(exchange_check_binding_args(x, BYTES_NULL, &err), WR_OK);
    T_EQ_INT(exchange_check_binding_args(x, tbl(1, "a", I(1)), &err), WR_OK);
    /* Only the first x-match counts. */
    T_EQ_INT(exchange_check_binding_args(
                 x, tbl(2, "x-match", S("any"), "x-match", S("bad")), &err),
             WR_OK);
    T_EQ_INT(err.len, 0);
    buf_fini(&err);
    xreg_free(r);
}

T_CASE(x_match_invalid_string_texts)
{
    expect_text(S("foo"), BADV("<<\"foo\">>"));
    expect_text(S(""), BADV("<<>>"));
    expect_text(S("ALL"), BADV("<<\"ALL\">>"));
    expect_text(S("all "), BADV("<<\"all \">>"));
    expect_text(S("a\"b"), BADV("<<\"a\\\"b\">>"));
    expect_text(S("x\\y"), BADV("<<\"x\\\\y\">>"));
    expect_text(S("it's"), BADV("<<\"it's\">>"));
    expect_text(S("a\nb"), BADV("<<\"a\\nb\">>"));
    expect_text(S("a\tb"), BADV("<<\"a\\tb\">>"));
    expect_text(S("a\rb\033\v\b\f"), BADV("<<\"a\\rb\\e\\v\\b\\f\">>"));
    expect_text(Sn("\x01\x02", 2), BADV("<<1,2>>"));
    expect_text(Sn("\0", 1), BADV("<<0>>"));
    expect_text(S("\x7f"), BADV("<<127>>"));
    expect_text(S("\x07"), BADV("<<7>>"));
    expect_text(S("\xe9"
                  "a"),
                BADV("<<\"\xe9"
                     "a\">>")); /* Latin-1 */
    expect_text(S("caf\xc3\xa9"), BADV("<<\"caf\xc3\xa9\">>"));
    expect_text(S("\xe2\x82\xac"), BADV("<<226,130,172>>")); /* 0x82 */
}

T_CASE(x_match_invalid_type_texts)
{
    expect_text(I(5), BADT("signedint", "5"));
    expect_text(X("foo"), BADT("binary", "<<\"foo\">>"));
    expect_text(B(true), BADT("bool", "true"));
    expect_text(B(false), BADT("bool", "false"));
    expect_text(V(), BADT("void", "undefined"));
    expect_text(DEC(1, 15), BADT("decimal", "{1,15}"));
    expect_text(U('T', 5), BADT("timestamp", "5"));
    expect_text(L('l', 5), BADT("long", "5"));
    expect_text(L('L', -5), BADT("long", "-5"));
    expect_text(U('B', 3), BADT("unsignedbyte", "3"));
    expect_text(L('b', -3), BADT("byte", "-3"));
    expect_text(U('i', 7), BADT("unsignedint", "7"));
    expect_text(L('s', -2), BADT("short", "-2"));
    expect_text(U('u', 9), BADT("unsignedshort", "9"));
    expect_text(TBL(tbl(1, "k", S("v"))),
                BADT("table", "[{<<\"k\">>,longstr,<<\"v\">>}]"));
    expect_text(ARR(arr(2, I(1), S("a"))),
                BADT("array", "[{signedint,1},{longstr,<<\"a\">>}]"));
    expect_text(TBL(BYTES_NULL), BADT("table", "[]"));
    expect_text(ARR(BYTES_NULL), BADT("array", "[]"));
    expect_text(TBL(tbl(1, "d", DEC(2, 5))),
                BADT("table", "[{<<\"d\">>,decimal,{2,5}}]"));
}

T_CASE(x_match_float_texts)
{
    expect_text(D(1.5), BADT("double", "1.5"));
    expect_text(D(1e10), BADT("double", "1.0e10"));
    expect_text(D(1e-5), BADT("double", "1.0e-5"));
    expect_text(D(0.1), BADT("double", "0.1"));
    expect_text(D(123456789.125), BADT("double", "123456789.125"));
    expect_text(D(1e22), BADT("double", "1.0e22"));
    expect_text(D(-0.0), BADT("double", "-0.0"));
    expect_text(D(0.0), BADT("double", "0.0"));
    expect_text(F32(0.1f), BADT("float", "0.10000000149011612"));
    /* The rest as Erlang/OTP on this machine prints them. */
    expect_text(D(100.0), BADT("double", "100.0"));
    expect_text(D(1000.0), BADT("double", "1.0e3"));
    expect_text(D(0.001), BADT("double", "0.001"));
    expect_text(D(0.0001), BADT("double", "0.0001"));
    expect_text(D(12345600.0), BADT("double", "1.23456e7"));
    expect_text(D(1e15), BADT("double", "1.0e15"));
    expect_text(D(5e-324), BADT("double", "5.0e-324"));
    expect_text(D(1.7976931348623157e308),
                BADT("double", "1.7976931348623157e308"));
    expect_text(D(-2.5), BADT("double", "-2.5"));
}

static const struct t_case cases[] = {
    T_REG(all_and_any),
    T_REG(empty_match_table_all_matches_everything_any_nothing),
    T_REG(message_without_headers),
    T_REG(void_binding_value_matches_presence),
    T_REG(x_keys_ignored_unless_with_x),
    T_REG(top_level_values_compare_like_erlang),
    T_REG(nested_tables_and_arrays_compare_typed_and_ordered),
    T_REG(value_eq_direct),
    T_REG(duplicate_keys_merge_like_rabbitmq),
    T_REG(key_order_and_prefix_keys),
    T_REG(many_headers_sort_and_match),
    T_REG(headers_in_exchange_graphs),
    T_REG(bind_is_idempotent_across_key_order),
    T_REG(x_match_values_accepted),
    T_REG(x_match_invalid_string_texts),
    T_REG(x_match_invalid_type_texts),
    T_REG(x_match_float_texts),
};

T_MAIN(cases)
