/*
 * Unit tests for exchange/: types, the registry, binding identity and
 * idempotence per type, routing through exchange graphs (diamonds,
 * cycles), alternate exchanges (missing, cyclic, on inner exchanges,
 * RabbitMQ's "no destination at all" rule), multi-key routing and the
 * routeset's deduplication. Queues are fake: addresses of ints.
 */
#include "amqp/ftable.h"
#include "exchange/exchange.h"
#include "test/harness/t.h"

#include <stdlib.h>
#include <string.h>

#define NQ 20000
static int qs[NQ];

static struct xdest
qd(int i)
{
    return (struct xdest){&qs[i], false};
}

static struct xdest
xd(struct exchange *x)
{
    return (struct xdest){x, true};
}

static bool
has(struct routeset *rs, int i)
{
    return routeset_has(rs, &qs[i]);
}

static struct exchange *
add(struct xreg *r, const char *name, enum exchange_type t)
{
    return xreg_add(r, bytes_str(name), t, false, false, false, BYTES_NULL);
}

/* An exchange whose "alternate-exchange" argument names ae. */
static struct exchange *
add_ae(struct xreg *r, const char *name, enum exchange_type t, const char *ae)
{
    struct buf b;
    size_t m;
    struct exchange *x;

    buf_init(&b);
    m = ftable_begin(&b);
    fenc_cstr(&b, "alternate-exchange", ae);
    ftable_end(&b, m);
    x = xreg_add(r, bytes_str(name), t, true, false, false,
                 bytes_of(b.data + 4, b.len - 4));
    buf_fini(&b);
    return x;
}

static int
bind(struct exchange *x, const char *key, struct xdest d)
{
    return exchange_bind(x, bytes_str(key), BYTES_NULL, d);
}

static int
unbind(struct exchange *x, const char *key, struct xdest d)
{
    return exchange_unbind(x, bytes_str(key), BYTES_NULL, d);
}

/* Routes rk from x into a reset rs; returns the queue count. */
static size_t
route(struct xreg *r, struct exchange *x, const char *rk, struct routeset *rs)
{
    routeset_reset(rs);
    return exchange_route(r, x, bytes_str(rk), BYTES_NULL, rs);
}

/* Table {k1: v1, k2: v2} of longstrs (k2 NULL: one entry). */
static struct bytes
tbl2(struct buf *b, const char *k1, const char *v1, const char *k2,
     const char *v2)
{
    size_t m;

    buf_init(b);
    m = ftable_begin(b);
    fenc_cstr(b, k1, v1);
    if (k2)
        fenc_cstr(b, k2, v2);
    ftable_end(b, m);
    return bytes_of(b->data + 4, b->len - 4);
}

T_CASE(type_names_parse_exactly)
{
    static const char *names[] = {"direct", "fanout", "topic", "headers"};
    enum exchange_type t;

    for (int i = 0; i < 4; i++) {
        T_EQ_INT(exchange_type_parse(bytes_str(names[i]), &t), WR_OK);
        T_EQ_STR(exchange_type_name(t), names[i]);
    }
    T_EQ_INT(exchange_type_parse(BYTES_LIT("Direct"), &t), WR_ERR);
    T_EQ_INT(exchange_type_parse(BYTES_LIT(""), &t), WR_ERR);
    T_EQ_INT(exchange_type_parse(BYTES_LIT("topicx"), &t), WR_ERR);
    T_EQ_INT(exchange_type_parse(BYTES_LIT("x-consistent-hash"), &t), WR_OK);
    T_EQ_INT(t, EXCHANGE_CONSISTENT_HASH);
    T_EQ_STR(exchange_type_name(t), "x-consistent-hash");
    T_EQ_INT(exchange_type_parse(BYTES_LIT("x-Consistent-hash"), &t), WR_ERR);
    T_EQ_INT(exchange_type_parse(bytes_of("direct\0", 7), &t), WR_ERR);
}

T_CASE(xreg_add_find_remove_keeps_fields)
{
    struct xreg *r = xreg_new();
    struct buf b;
    struct bytes args = tbl2(&b, "alternate-exchange", "ae", "x-foo", "1");
    struct exchange *x, *y;

    x = xreg_add(r, BYTES_LIT("logs"), EXCHANGE_TOPIC, true, true, false, args);
    y = add(r, "", EXCHANGE_DIRECT);
    T_EQ_INT(xreg_count(r), 2);
    T_ASSERT(xreg_find(r, BYTES_LIT("logs")) == x);
    T_ASSERT(xreg_find(r, BYTES_LIT("")) == y);
    T_ASSERT(xreg_find(r, BYTES_LIT("log")) == NULL);
    T_ASSERT(xreg_find(r, BYTES_LIT("logs2")) == NULL);
    T_EQ_STR(x->name, "logs");
    T_EQ_INT(x->name_len, 4);
    T_EQ_INT(x->type, EXCHANGE_TOPIC);
    T_ASSERT(x->durable && x->auto_delete && !x->internal);
    T_EQ_MEM(x->args.ptr, x->args.len, args.ptr, args.len);
    T_ASSERT(x->args.ptr != args.ptr); /* a copy */
    T_EQ_STR(x->alternate, "ae");
    T_EQ_INT(x->alternate_len, 2);
    T_EQ_STR(y->name, "");
    T_ASSERT(y->alternate == NULL);
    buf_fini(&b);
    xreg_remove(r, x);
    T_EQ_INT(xreg_count(r), 1);
    T_ASSERT(xreg_find(r, BYTES_LIT("logs")) == NULL);
    xreg_free(r);
}

T_CASE(alternate_argument_must_be_longstr)
{
    struct xreg *r = xreg_new();
    struct buf b;
    size_t m;
    struct exchange *x;

    buf_init(&b);
    m = ftable_begin(&b);
    fenc_int(&b, "alternate-exchange", 5);
    ftable_end(&b, m);
    x = xreg_add(r, BYTES_LIT("x"), EXCHANGE_DIRECT, false, false, false,
                 bytes_of(b.data + 4, b.len - 4));
    T_ASSERT(x->alternate == NULL);
    T_ASSERT(exchange_alternate(x).ptr == NULL);
    buf_fini(&b);
    xreg_free(r);
}

T_CASE(xreg_iterates_in_insertion_order_with_removal)
{
    struct xreg *r = xreg_new();
    struct exchange *x, *next;
    char name[16];
    int i = 0;

    for (int k = 0; k < 100; k++) {
        snprintf(name, sizeof(name), "x%d", k);
        add(r, name, EXCHANGE_FANOUT);
    }
    /* Remove every even one while iterating. */
    for (x = xreg_first(r); x; x = next, i++) {
        next = xreg_next(r, x);
        snprintf(name, sizeof(name), "x%d", i);
        T_EQ_STR(x->name, name);
        if (i % 2 == 0)
            xreg_remove(r, x);
    }
    T_EQ_INT(i, 100);
    T_EQ_INT(xreg_count(r), 50);
    i = 1;
    for (x = xreg_first(r); x; x = xreg_next(r, x), i += 2) {
        snprintf(name, sizeof(name), "x%d", i);
        T_EQ_STR(x->name, name);
    }
    T_EQ_INT(i, 101);
    /* Remove everything, the last element included. */
    for (x = xreg_first(r); x; x = next) {
        next = xreg_next(r, x);
        xreg_remove(r, x);
    }
    T_EQ_INT(xreg_count(r), 0);
    T_ASSERT(xreg_first(r) == NULL);
    add(r, "again", EXCHANGE_DIRECT);
    T_EQ_STR(xreg_first(r)->name, "again");
    xreg_free(r);
}

T_CASE(direct_bind_unbind_idempotent)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "d", EXCHANGE_DIRECT);
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(bind(x, "a", qd(1)), 1);
    T_EQ_INT(bind(x, "a", qd(1)), 0);
    T_EQ_INT(exchange_binding_count(x), 1);
    T_EQ_INT(route(r, x, "a", &rs), 1);
    T_ASSERT(has(&rs, 1));
    T_EQ_INT(route(r, x, "b", &rs), 0);
    T_EQ_INT(route(r, x, "", &rs), 0);
    T_EQ_INT(route(r, x, "A", &rs), 0);
    T_EQ_INT(bind(x, "a", qd(2)), 1);
    T_EQ_INT(bind(x, "", qd(3)), 1);
    T_EQ_INT(route(r, x, "a", &rs), 2);
    T_ASSERT(has(&rs, 1) && has(&rs, 2) && !has(&rs, 3));
    T_EQ_INT(route(r, x, "", &rs), 1);
    T_ASSERT(has(&rs, 3));
    T_EQ_INT(unbind(x, "a", qd(1)), 1);
    T_EQ_INT(unbind(x, "a", qd(1)), 0);
    T_EQ_INT(unbind(x, "b", qd(2)), 0);
    T_EQ_INT(route(r, x, "a", &rs), 1);
    T_ASSERT(has(&rs, 2));
    T_EQ_INT(unbind(x, "a", qd(2)), 1);
    T_EQ_INT(unbind(x, "", qd(3)), 1);
    T_EQ_INT(exchange_binding_count(x), 0);
    T_EQ_INT(route(r, x, "a", &rs), 0);
    /* Rebinding after the key's entry went away works. */
    T_EQ_INT(bind(x, "a", qd(4)), 1);
    T_EQ_INT(route(r, x, "a", &rs), 1);
    T_ASSERT(has(&rs, 4));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(binding_args_are_part_of_identity_sorted)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "d", EXCHANGE_DIRECT);
    struct buf b1, b2, b3;
    struct bytes ab = tbl2(&b1, "a", "1", "b", "2");
    struct bytes ba = tbl2(&b2, "b", "2", "a", "1");
    struct bytes a3 = tbl2(&b3, "a", "1", "b", "3");
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(exchange_bind(x, BYTES_LIT("k"), ab, qd(1)), 1);
    /* The same table in another order is the same binding. */
    T_EQ_INT(exchange_bind(x, BYTES_LIT("k"), ba, qd(1)), 0);
    T_ASSERT(exchange_args_equal(ab, ba));
    T_ASSERT(!exchange_args_equal(ab, a3));
    T_ASSERT(!exchange_args_equal(ab, BYTES_NULL));
    /* Other args or none: distinct bindings to the same queue. */
    T_EQ_INT(exchange_bind(x, BYTES_LIT("k"), a3, qd(1)), 1);
    T_EQ_INT(exchange_bind(x, BYTES_LIT("k"), BYTES_NULL, qd(1)), 1);
    T_EQ_INT(exchange_binding_count(x), 3);
    /* Routed once even though bound three times. */
    T_EQ_INT(route(r, x, "k", &rs), 1);
    T_EQ_INT(exchange_unbind(x, BYTES_LIT("k"), ba, qd(1)), 1);
    T_EQ_INT(exchange_unbind(x, BYTES_LIT("k"), ab, qd(1)), 0);
    T_EQ_INT(exchange_unbind(x, BYTES_LIT("k"), BYTES_NULL, qd(1)), 1);
    T_EQ_INT(route(r, x, "k", &rs), 1); /* a3 still there */
    T_EQ_INT(exchange_unbind(x, BYTES_LIT("k"), a3, qd(1)), 1);
    T_EQ_INT(route(r, x, "k", &rs), 0);
    buf_fini(&b1);
    buf_fini(&b2);
    buf_fini(&b3);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(args_sort_is_stable_and_bytewise)
{
    struct buf in, out, want;
    size_t m;

    buf_init(&in);
    m = ftable_begin(&in);
    fenc_cstr(&in, "b", "1");
    fenc_cstr(&in, "ab", "2");
    fenc_cstr(&in, "a", "3");
    fenc_cstr(&in, "b", "4"); /* duplicate key keeps its order */
    fenc_cstr(&in, "\xff", "5");
    fenc_cstr(&in, "B", "6");
    ftable_end(&in, m);
    buf_init(&want);
    m = ftable_begin(&want);
    fenc_cstr(&want, "B", "6");
    fenc_cstr(&want, "a", "3");
    fenc_cstr(&want, "ab", "2");
    fenc_cstr(&want, "b", "1");
    fenc_cstr(&want, "b", "4");
    fenc_cstr(&want, "\xff", "5");
    ftable_end(&want, m);
    buf_init(&out);
    exchange_args_sort(bytes_of(in.data + 4, in.len - 4), &out);
    T_EQ_MEM(out.data, out.len, want.data + 4, want.len - 4);
    buf_fini(&in);
    buf_fini(&out);
    buf_fini(&want);
}

T_CASE(fanout_routes_every_binding_ignoring_key)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "f", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(route(r, x, "any", &rs), 0);
    for (int i = 0; i < 3; i++)
        T_EQ_INT(bind(x, "ignored", qd(i)), 1);
    T_EQ_INT(bind(x, "ignored", qd(0)), 0);
    T_EQ_INT(bind(x, "other key", qd(0)), 1); /* distinct binding */
    T_EQ_INT(exchange_binding_count(x), 4);
    T_EQ_INT(route(r, x, "whatever", &rs), 3);
    T_ASSERT(has(&rs, 0) && has(&rs, 1) && has(&rs, 2));
    T_EQ_INT(route(r, x, "", &rs), 3);
    T_EQ_INT(unbind(x, "ignored", qd(0)), 1);
    T_EQ_INT(route(r, x, "", &rs), 3); /* still bound via "other key" */
    T_EQ_INT(unbind(x, "other key", qd(0)), 1);
    T_EQ_INT(route(r, x, "", &rs), 2);
    T_ASSERT(!has(&rs, 0));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(fanout_to_ten_thousand_queues_dedups)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "f", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    for (int i = 0; i < 10000; i++)
        T_EQ_INT(bind(x, "", qd(i)), 1);
    /* The first 100 queues are bound a second time with another key. */
    for (int i = 0; i < 100; i++)
        T_EQ_INT(bind(x, "dup", qd(i)), 1);
    T_EQ_INT(exchange_binding_count(x), 10100);
    for (int round = 0; round < 3; round++) {
        T_EQ_INT(route(r, x, "k", &rs), 10000);
        for (int i = 0; i < 10000; i++)
            T_ASSERT(has(&rs, i));
        T_ASSERT(!has(&rs, 10000));
    }
    /* Unbinding half and routing again reuses the set correctly. */
    for (int i = 0; i < 10000; i += 2)
        T_EQ_INT(unbind(x, "", qd(i)), 1);
    T_EQ_INT(route(r, x, "k", &rs), 5000 + 50);
    for (int i = 0; i < 10000; i++)
        T_EQ_INT(has(&rs, i), (i % 2 == 1) || i < 100);
    routeset_fini(&rs);
    xreg_free(r);
}

/* A fanout whose queues are distinct is copied into an empty routeset in
 * bulk and indexed lazily; later additions must still deduplicate. */
T_CASE(fanout_bulk_copy_then_more_destinations)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_FANOUT);
    struct exchange *y = add(r, "y", EXCHANGE_FANOUT);
    struct exchange *d = add(r, "d", EXCHANGE_DIRECT);
    struct routeset rs;

    routeset_init(&rs);
    for (int i = 0; i < 10000; i++) {
        bind(x, "", qd(i));
        bind(y, "", qd(i));
    }
    for (int i = 10000; i < 10005; i++)
        bind(y, "", qd(i));
    bind(x, "", xd(y));
    for (int round = 0; round < 2; round++) {
        T_EQ_INT(route(r, x, "", &rs), 10005);
        for (int i = 0; i < 10005; i++)
            T_ASSERT(rs.queues[i] == &qs[i]);
        T_ASSERT(!routeset_add(&rs, &qs[77]));
        T_ASSERT(routeset_add(&rs, &qs[10005]));
        T_EQ_INT(rs.n, 10006);
    }
    /* Into a non-empty routeset: deduplicated one by one. */
    bind(d, "k", qd(3));
    bind(d, "k", xd(x));
    T_EQ_INT(route(r, d, "k", &rs), 10005);
    T_ASSERT(rs.queues[0] == &qs[3]);
    /* A queue bound twice to x turns the bulk path off, and back on. */
    T_EQ_INT(bind(x, "again", qd(5)), 1);
    T_EQ_INT(route(r, x, "", &rs), 10005);
    T_EQ_INT(unbind(x, "again", qd(5)), 1);
    T_EQ_INT(unbind(x, "", xd(y)), 1);
    T_EQ_INT(route(r, x, "", &rs), 10000);
    T_ASSERT(has(&rs, 9999) && !has(&rs, 10000));
    /* Small distinct fanouts take the ordinary path. */
    T_EQ_INT(route(r, d, "nomatch", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(routeset_dedups_and_resets)
{
    static int other;
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(rs.n, 0);
    T_ASSERT(!routeset_has(&rs, &qs[0]));
    /* Cross the linear/hashed threshold several times. */
    for (int round = 0; round < 4; round++) {
        int n = round == 0 ? 5 : round == 1 ? 9 : round == 2 ? NQ : 3;
        for (int i = 0; i < n; i++)
            T_ASSERT(routeset_add(&rs, &qs[i]));
        for (int i = n - 1; i >= 0; i--)
            T_ASSERT(!routeset_add(&rs, &qs[i]));
        T_EQ_INT(rs.n, n);
        for (int i = 0; i < n; i++)
            T_ASSERT(rs.queues[i] == &qs[i]); /* first-reached order */
        T_ASSERT(!routeset_has(&rs, &other));
        routeset_reset(&rs);
        T_EQ_INT(rs.n, 0);
        for (int i = 0; i < NQ; i += 97)
            T_ASSERT(!routeset_has(&rs, &qs[i]));
    }
    /* Interleaved duplicates in the hashed regime. */
    for (int i = 0; i < 3000; i++) {
        T_EQ_INT(routeset_add(&rs, &qs[i]), true);
        T_EQ_INT(routeset_add(&rs, &qs[i / 2]), false);
    }
    T_EQ_INT(rs.n, 3000);
    routeset_fini(&rs);
}

T_CASE(route_does_not_reset_the_routeset)
{
    struct xreg *r = xreg_new();
    struct exchange *a = add(r, "a", EXCHANGE_DIRECT);
    struct exchange *b = add(r, "b", EXCHANGE_DIRECT);
    struct routeset rs;

    routeset_init(&rs);
    bind(a, "k", qd(1));
    bind(b, "k", qd(1));
    bind(b, "k", qd(2));
    T_EQ_INT(exchange_route(r, a, BYTES_LIT("k"), BYTES_NULL, &rs), 1);
    T_EQ_INT(exchange_route(r, b, BYTES_LIT("k"), BYTES_NULL, &rs), 2);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(e2e_chain_and_diamond_deliver_once)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_FANOUT);
    struct exchange *a = add(r, "a", EXCHANGE_DIRECT);
    struct exchange *b = add(r, "b", EXCHANGE_TOPIC);
    struct exchange *c = add(r, "c", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    /*   x -> a -(k)-> c -> q1, q2
     *   x -> b -(#)-> c
     *   a -(k)-> q3 and b -(k.#)-> q3 (a diamond ending in a queue) */
    T_EQ_INT(bind(x, "", xd(a)), 1);
    T_EQ_INT(bind(x, "", xd(b)), 1);
    T_EQ_INT(bind(a, "k", xd(c)), 1);
    T_EQ_INT(bind(b, "#", xd(c)), 1);
    T_EQ_INT(bind(c, "", qd(1)), 1);
    T_EQ_INT(bind(c, "", qd(2)), 1);
    T_EQ_INT(bind(a, "k", qd(3)), 1);
    T_EQ_INT(bind(b, "k.#", qd(3)), 1);
    T_EQ_INT(bind(x, "", xd(a)), 0);
    T_EQ_INT(route(r, x, "k", &rs), 3);
    T_ASSERT(has(&rs, 1) && has(&rs, 2) && has(&rs, 3));
    /* The routing key travels: "z" goes x -> b -> c only. */
    T_EQ_INT(route(r, x, "z", &rs), 2);
    T_ASSERT(has(&rs, 1) && has(&rs, 2) && !has(&rs, 3));
    /* Publishing to an inner exchange routes from there. */
    T_EQ_INT(route(r, a, "z", &rs), 0);
    T_EQ_INT(route(r, a, "k", &rs), 3);
    T_EQ_INT(unbind(x, "", xd(b)), 1);
    T_EQ_INT(route(r, x, "z", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(e2e_cycles_terminate)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_FANOUT);
    struct exchange *y = add(r, "y", EXCHANGE_FANOUT);
    struct exchange *z = add(r, "z", EXCHANGE_TOPIC);
    struct routeset rs;

    routeset_init(&rs);
    bind(x, "", xd(y));
    bind(y, "", xd(z));
    bind(z, "#", xd(x)); /* x -> y -> z -> x */
    bind(x, "", xd(x));  /* and a self-loop */
    T_EQ_INT(route(r, x, "k", &rs), 0);
    bind(z, "#", qd(7));
    bind(y, "", qd(8));
    for (int i = 0; i < 3; i++) {
        struct exchange *start = i == 0 ? x : i == 1 ? y : z;
        T_EQ_INT(route(r, start, "k", &rs), 2);
        T_ASSERT(has(&rs, 7) && has(&rs, 8));
    }
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(e2e_wide_graph_visits_each_exchange_once)
{
    struct xreg *r = xreg_new();
    struct exchange *xs[200];
    char name[16];
    struct routeset rs;

    routeset_init(&rs);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "x%d", i);
        xs[i] = add(r, name, EXCHANGE_FANOUT);
    }
    /* Every exchange binds to every later one (and to its queue). */
    for (int i = 0; i < 200; i++) {
        bind(xs[i], "", qd(i));
        for (int j = i + 1; j < 200; j++)
            bind(xs[i], "", xd(xs[j]));
    }
    T_EQ_INT(route(r, xs[0], "", &rs), 200);
    T_EQ_INT(route(r, xs[150], "", &rs), 50);
    T_ASSERT(!has(&rs, 149) && has(&rs, 150) && has(&rs, 199));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(ae_used_only_when_unroutable)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add_ae(r, "x", EXCHANGE_DIRECT, "ae");
    struct exchange *ae = add(r, "ae", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    T_ASSERT(bytes_eq_str(exchange_alternate(x), "ae"));
    bind(x, "k", qd(1));
    bind(ae, "", qd(2));
    T_EQ_INT(route(r, x, "k", &rs), 1);
    T_ASSERT(has(&rs, 1) && !has(&rs, 2));
    T_EQ_INT(route(r, x, "other", &rs), 1);
    T_ASSERT(has(&rs, 2));
    /* An AE that routes nowhere leaves the message unroutable. */
    unbind(ae, "", qd(2));
    T_EQ_INT(route(r, x, "other", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(ae_missing_is_ignored)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add_ae(r, "x", EXCHANGE_TOPIC, "nowhere");
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(route(r, x, "a.b", &rs), 0);
    /* Declaring the AE later makes it take effect (looked up by name). */
    struct exchange *ae = add(r, "nowhere", EXCHANGE_FANOUT);
    bind(ae, "", qd(3));
    T_EQ_INT(route(r, x, "a.b", &rs), 1);
    T_ASSERT(has(&rs, 3));
    xreg_remove(r, ae);
    T_EQ_INT(route(r, x, "a.b", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(ae_cycles_terminate)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add_ae(r, "x", EXCHANGE_DIRECT, "y");
    struct exchange *y = add_ae(r, "y", EXCHANGE_DIRECT, "z");
    struct exchange *z = add_ae(r, "z", EXCHANGE_DIRECT, "x");
    struct exchange *s = add_ae(r, "s", EXCHANGE_FANOUT, "s");
    struct routeset rs;

    routeset_init(&rs);
    T_EQ_INT(route(r, x, "k", &rs), 0);
    T_EQ_INT(route(r, s, "k", &rs), 0); /* its own AE */
    bind(z, "k", qd(5));
    T_EQ_INT(route(r, x, "k", &rs), 1); /* x -ae-> y -ae-> z */
    T_ASSERT(has(&rs, 5));
    T_EQ_INT(route(r, y, "k", &rs), 1);
    T_EQ_INT(route(r, x, "j", &rs), 0);
    (void)y;
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(ae_on_inner_exchange)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_FANOUT);
    struct exchange *y = add_ae(r, "y", EXCHANGE_DIRECT, "z");
    struct exchange *z = add(r, "z", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    bind(x, "", xd(y));
    bind(y, "match", qd(1));
    bind(z, "", qd(2));
    T_EQ_INT(route(r, x, "nomatch", &rs), 1);
    T_ASSERT(has(&rs, 2));
    T_EQ_INT(route(r, x, "match", &rs), 1);
    T_ASSERT(has(&rs, 1));
    routeset_fini(&rs);
    xreg_free(r);
}

/* RabbitMQ (checked on 3.10): an exchange whose type routing yields any
 * destination, even only an exchange that routes nowhere or one already
 * visited, does not use its AE. */
T_CASE(ae_not_used_when_exchange_destination_matched)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add_ae(r, "x", EXCHANGE_DIRECT, "ae");
    struct exchange *y = add(r, "y", EXCHANGE_FANOUT);
    struct exchange *s = add_ae(r, "s", EXCHANGE_FANOUT, "ae");
    struct exchange *ae = add(r, "ae", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    bind(ae, "", qd(9));
    bind(x, "k", xd(y)); /* y has no bindings and no AE */
    T_EQ_INT(route(r, x, "k", &rs), 0);
    T_EQ_INT(route(r, x, "other", &rs), 1);
    T_ASSERT(has(&rs, 9));
    bind(s, "", xd(s)); /* bound only to itself */
    T_EQ_INT(route(r, s, "k", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(ae_reached_twice_is_visited_once)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_FANOUT);
    struct exchange *a = add_ae(r, "a", EXCHANGE_DIRECT, "ae");
    struct exchange *b = add_ae(r, "b", EXCHANGE_DIRECT, "ae");
    struct exchange *ae = add(r, "ae", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    bind(x, "", xd(a));
    bind(x, "", xd(b));
    bind(x, "", xd(ae)); /* also bound directly */
    bind(ae, "", qd(4));
    T_EQ_INT(route(r, x, "k", &rs), 1);
    T_ASSERT(has(&rs, 4));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(policy_alternate_yields_to_argument)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "x", EXCHANGE_DIRECT);
    struct exchange *y = add_ae(r, "y", EXCHANGE_DIRECT, "arg-ae");
    struct exchange *pae = add(r, "pol-ae", EXCHANGE_FANOUT);
    struct exchange *aae = add(r, "arg-ae", EXCHANGE_FANOUT);
    struct routeset rs;

    routeset_init(&rs);
    bind(pae, "", qd(1));
    bind(aae, "", qd(2));
    T_EQ_INT(route(r, x, "k", &rs), 0);
    exchange_set_policy_alternate(x, BYTES_LIT("pol-ae"));
    exchange_set_policy_alternate(y, BYTES_LIT("pol-ae"));
    T_EQ_INT(route(r, x, "k", &rs), 1);
    T_ASSERT(has(&rs, 1));
    T_EQ_INT(route(r, y, "k", &rs), 1);
    T_ASSERT(has(&rs, 2));
    exchange_set_policy_alternate(x, BYTES_NULL);
    T_ASSERT(exchange_alternate(x).ptr == NULL);
    T_EQ_INT(route(r, x, "k", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(multiple_routing_keys_cc_style)
{
    struct xreg *r = xreg_new();
    struct exchange *d = add_ae(r, "d", EXCHANGE_DIRECT, "ae");
    struct exchange *t = add(r, "t", EXCHANGE_TOPIC);
    struct exchange *ae = add(r, "ae", EXCHANGE_FANOUT);
    struct bytes keys[3] = {BYTES_LIT("a"), BYTES_LIT("b"), BYTES_LIT("a")};
    struct routeset rs;

    routeset_init(&rs);
    bind(ae, "", qd(9));
    bind(d, "a", qd(1));
    bind(d, "b", qd(2));
    bind(d, "c", qd(3));
    bind(d, "b", xd(t));
    bind(t, "a", qd(4));
    bind(t, "b.#", qd(5));
    routeset_reset(&rs);
    /* d matches a and b; t gets every key too and matches a and b. */
    T_EQ_INT(exchange_route_keys(r, d, keys, 3, BYTES_NULL, BYTES_NULL, &rs),
             4);
    T_ASSERT(has(&rs, 1) && has(&rs, 2) && has(&rs, 4) && has(&rs, 5));
    T_ASSERT(!has(&rs, 9));
    /* Unroutable only when no key matches. */
    keys[0] = BYTES_LIT("x");
    keys[1] = BYTES_LIT("y");
    routeset_reset(&rs);
    T_EQ_INT(exchange_route_keys(r, d, keys, 2, BYTES_NULL, BYTES_NULL, &rs),
             1);
    T_ASSERT(has(&rs, 9));
    keys[1] = BYTES_LIT("c");
    routeset_reset(&rs);
    T_EQ_INT(exchange_route_keys(r, d, keys, 2, BYTES_NULL, BYTES_NULL, &rs),
             1);
    T_ASSERT(has(&rs, 3));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(check_binding_args_only_headers_checks)
{
    struct xreg *r = xreg_new();
    struct buf b, err;
    struct bytes bad = tbl2(&b, "x-match", "foo", NULL, NULL);

    buf_init(&err);
    for (int t = EXCHANGE_DIRECT; t <= EXCHANGE_TOPIC; t++) {
        char name[8];
        snprintf(name, sizeof(name), "x%d", t);
        T_EQ_INT(exchange_check_binding_args(add(r, name, t), bad, &err),
                 WR_OK);
    }
    T_EQ_INT(err.len, 0);
    T_EQ_INT(
        exchange_check_binding_args(add(r, "h", EXCHANGE_HEADERS), bad, &err),
        WR_ERR);
    T_ASSERT(err.len > 0);
    buf_fini(&err);
    buf_fini(&b);
    xreg_free(r);
}

T_CASE(removing_exchanges_with_bindings_frees_everything)
{
    struct xreg *r = xreg_new();
    struct exchange *xs[4];
    static const char *names[] = {"d", "f", "t", "h"};
    struct routeset rs;

    routeset_init(&rs);
    for (int t = 0; t < 4; t++) {
        xs[t] = add(r, names[t], (enum exchange_type)t);
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d.#.x", i % 7);
            bind(xs[t], key, qd(i));
        }
    }
    bind(xs[0], "k1.#.x", xd(xs[1]));
    routeset_reset(&rs);
    T_ASSERT(exchange_route(r, xs[0], BYTES_LIT("k1.#.x"), BYTES_NULL, &rs) >
             0);
    /* The vhost removes e2e bindings before the destination. */
    T_EQ_INT(unbind(xs[0], "k1.#.x", xd(xs[1])), 1);
    xreg_remove(r, xs[1]);
    xreg_remove(r, xs[2]);
    routeset_fini(&rs);
    xreg_free(r); /* the rest, with their bindings (ASan checks leaks) */
}

/* ---- x-consistent-hash */

/* Which of qs[0..nq) each of nkeys keys "k<i>" reaches; counts in cnt. */
static void
chash_map(struct xreg *r, struct exchange *x, int nkeys, int *to, int *cnt,
          int nq)
{
    struct routeset rs;
    char key[32];

    routeset_init(&rs);
    for (int i = 0; i < nq; i++)
        cnt[i] = 0;
    for (int i = 0; i < nkeys; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        T_EQ_INT(route(r, x, key, &rs), 1);
        to[i] = (int)((int *)rs.queues[0] - qs);
        T_ASSERT(to[i] >= 0 && to[i] < nq);
        cnt[to[i]]++;
    }
    routeset_fini(&rs);
}

T_CASE(chash_distributes_by_weight)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "h", EXCHANGE_CONSISTENT_HASH);
    enum { N = 100000 };
    static int to[N];
    int cnt[3];

    bind(x, "1", qd(0));
    bind(x, "1", qd(1));
    bind(x, "2", qd(2));
    chash_map(r, x, N, to, cnt, 3);
    /* 1:1:2 within 3% of the total. */
    T_ASSERT(abs(cnt[0] - N / 4) < N * 3 / 100);
    T_ASSERT(abs(cnt[1] - N / 4) < N * 3 / 100);
    T_ASSERT(abs(cnt[2] - N / 2) < N * 3 / 100);
    xreg_free(r);
}

T_CASE(chash_same_key_same_queue_and_new_queue_moves_one_nth)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "h", EXCHANGE_CONSISTENT_HASH);
    enum { N = 50000, Q = 8 };
    static int a[N], b[N];
    int cnt[Q + 1], moved = 0;

    for (int i = 0; i < Q; i++)
        bind(x, "10", qd(i));
    chash_map(r, x, N, a, cnt, Q + 1);
    chash_map(r, x, N, b, cnt, Q + 1);
    for (int i = 0; i < N; i++)
        T_EQ_INT(a[i], b[i]); /* stable while bindings are unchanged */
    bind(x, "10", qd(Q));
    chash_map(r, x, N, b, cnt, Q + 1);
    for (int i = 0; i < N; i++) {
        if (a[i] != b[i]) {
            moved++;
            T_EQ_INT(b[i], Q); /* keys only move to the new queue */
        }
    }
    printf("moved %d of %d keys to the 9th queue (1/9: %d)\n", moved, N,
           N / (Q + 1));
    /* 1/(Q+1) of the keys expected; between 0.5 and 1.5 times that. */
    T_ASSERT(moved > N / (Q + 1) / 2);
    T_ASSERT(moved < N * 3 / (Q + 1) / 2);
    /* Removing the last binding puts every key back. */
    T_EQ_INT(unbind(x, "10", qd(Q)), 1);
    chash_map(r, x, N, b, cnt, Q + 1);
    for (int i = 0; i < N; i++)
        T_EQ_INT(a[i], b[i]);
    xreg_free(r);
}

T_CASE(chash_unbind_middle_renumbers_and_keeps_routing_total)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "h", EXCHANGE_CONSISTENT_HASH);
    enum { N = 20000 };
    static int to[N];
    int cnt[4];

    bind(x, "1", qd(0));
    bind(x, "3", qd(1));
    bind(x, "1", qd(2));
    bind(x, "5", qd(1)); /* a second binding of the same queue */
    T_EQ_INT(unbind(x, "3", qd(1)), 1);
    chash_map(r, x, N, to, cnt, 4);
    T_EQ_INT(cnt[0] + cnt[1] + cnt[2], N);
    T_EQ_INT(cnt[3], 0);
    /* weights 1:5:1 */
    T_ASSERT(abs(cnt[1] - N * 5 / 7) < N * 3 / 100);
    T_EQ_INT(unbind(x, "1", qd(0)), 1);
    T_EQ_INT(unbind(x, "5", qd(1)), 1);
    chash_map(r, x, N, to, cnt, 4);
    T_EQ_INT(cnt[2], N);
    T_EQ_INT(unbind(x, "1", qd(2)), 1);
    struct routeset rs;
    routeset_init(&rs);
    T_EQ_INT(route(r, x, "k", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

/* A table {k: v} of one longstr. */
static struct exchange *
add_chash(struct xreg *r, const char *name, const char *k, const char *v,
          struct buf *b)
{
    return xreg_add(r, bytes_str(name), EXCHANGE_CONSISTENT_HASH, false, false,
                    false, tbl2(b, k, v, NULL, NULL));
}

/* Content properties with a message-id and a headers table {h: v}. */
static struct bytes
props_with(struct buf *b, const char *msgid, const char *h, const char *v)
{
    struct buf t;
    size_t m;

    buf_init(b);
    buf_init(&t);
    m = ftable_begin(&t);
    fenc_cstr(&t, h, v);
    ftable_end(&t, m);
    /* flags: headers (bit 13), message-id (bit 7) */
    buf_put_u16(b, (1u << 13) | (1u << 7));
    buf_append(b, t.data, t.len);
    buf_put_shortstr(b, bytes_str(msgid));
    buf_fini(&t);
    return buf_bytes(b);
}

T_CASE(chash_hash_header_and_property)
{
    struct xreg *r = xreg_new();
    struct buf a1, a2, p1;
    struct exchange *xh = add_chash(r, "hh", "hash-header", "acct", &a1);
    struct exchange *xp =
        add_chash(r, "hp", "hash-property", "message_id", &a2);
    struct routeset rs;
    int seen_h[16] = {0}, seen_p[16] = {0};

    routeset_init(&rs);
    for (int i = 0; i < 16; i++) {
        bind(xh, "1", qd(i));
        bind(xp, "1", qd(i));
    }
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id%d", i);
        struct bytes pr = props_with(&p1, id, "acct", id);
        struct bytes hdrs;
        /* the headers table body inside pr: after flags and its length */
        hdrs = bytes_of(pr.ptr + 6, pr.len - 6 - 1 - strlen(id));
        routeset_reset(&rs);
        T_EQ_INT(exchange_route_props(r, xh, bytes_str("rk1"), hdrs, pr, &rs),
                 1);
        int qh = (int)((int *)rs.queues[0] - qs);
        routeset_reset(&rs);
        /* another routing key, same header: same queue */
        exchange_route_props(r, xh, bytes_str("rk2"), hdrs, pr, &rs);
        T_EQ_INT((int)((int *)rs.queues[0] - qs), qh);
        seen_h[qh]++;
        routeset_reset(&rs);
        T_EQ_INT(exchange_route_props(r, xp, bytes_str("x"), hdrs, pr, &rs), 1);
        int qp = (int)((int *)rs.queues[0] - qs);
        routeset_reset(&rs);
        exchange_route_props(r, xp, bytes_str("y"), BYTES_NULL, pr, &rs);
        T_EQ_INT((int)((int *)rs.queues[0] - qs), qp);
        seen_p[qp]++;
        buf_fini(&p1);
    }
    /* spread over the queues, not all on one */
    int used_h = 0, used_p = 0;
    for (int i = 0; i < 16; i++) {
        used_h += seen_h[i] > 0;
        used_p += seen_p[i] > 0;
    }
    T_ASSERT(used_h >= 12 && used_p >= 12);
    /* no header / no property: one fixed queue */
    routeset_reset(&rs);
    exchange_route_props(r, xh, bytes_str("a"), BYTES_NULL, BYTES_NULL, &rs);
    void *fixed = rs.queues[0];
    routeset_reset(&rs);
    exchange_route_props(r, xh, bytes_str("b"), BYTES_NULL, BYTES_NULL, &rs);
    T_ASSERT(rs.queues[0] == fixed);
    routeset_fini(&rs);
    buf_fini(&a1);
    buf_fini(&a2);
    xreg_free(r);
}

T_CASE(chash_checks_keys_and_declare_args)
{
    struct xreg *r = xreg_new();
    struct exchange *x = add(r, "h", EXCHANGE_CONSISTENT_HASH);
    struct exchange *d = add(r, "d", EXCHANGE_DIRECT);
    struct buf err, a;
    static const struct {
        const char *key, *text;
    } bad[] = {
        {"abc", "The binding key must be an integer: <<\"abc\">>"},
        {"", "The binding key must be an integer: <<>>"},
        {"1.5", "The binding key must be an integer: <<\"1.5\">>"},
        {" 3", "The binding key must be an integer: <<\" 3\">>"},
        {"0", "The binding key must be greater than 0"},
        {"-1", "The binding key must be greater than 0"},
        {"2147483648", "The binding key must not be greater than 2147483647"},
        {"99999999999999999999999",
         "The binding key must not be greater than 2147483647"},
    };

    buf_init(&err);
    for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
        buf_reset(&err);
        T_EQ_INT(exchange_check_binding_key(x, bytes_str(bad[i].key), &err),
                 WR_ERR);
        T_EQ_MEM(err.data, err.len, bad[i].text, strlen(bad[i].text));
    }
    T_EQ_INT(exchange_check_binding_key(x, BYTES_LIT("+3"), &err), WR_OK);
    T_EQ_INT(exchange_check_binding_key(x, BYTES_LIT("007"), &err), WR_OK);
    T_EQ_INT(exchange_check_binding_key(x, BYTES_LIT("2147483647"), &err),
             WR_OK);
    T_EQ_INT(exchange_check_binding_key(d, BYTES_LIT("abc"), &err), WR_OK);

    buf_reset(&err);
    T_EQ_INT(exchange_check_decl_args(
                 EXCHANGE_CONSISTENT_HASH,
                 tbl2(&a, "hash-header", "h", "hash-property", "message_id"),
                 &err),
             WR_ERR);
    T_EQ_MEM(err.data, err.len,
             "hash-header and hash-property are mutually exclusive",
             strlen("hash-header and hash-property are mutually exclusive"));
    buf_fini(&a);
    buf_reset(&err);
    T_EQ_INT(exchange_check_decl_args(
                 EXCHANGE_CONSISTENT_HASH,
                 tbl2(&a, "hash-property", "app_id", NULL, NULL), &err),
             WR_ERR);
    T_EQ_MEM(err.data, err.len, "Unsupported property: app_id",
             strlen("Unsupported property: app_id"));
    buf_fini(&a);
    T_EQ_INT(exchange_check_decl_args(
                 EXCHANGE_CONSISTENT_HASH,
                 tbl2(&a, "hash-property", "timestamp", NULL, NULL), &err),
             WR_OK);
    buf_fini(&a);
    T_EQ_INT(exchange_check_decl_args(
                 EXCHANGE_DIRECT,
                 tbl2(&a, "hash-property", "app_id", NULL, NULL), &err),
             WR_OK);
    buf_fini(&a);
    buf_fini(&err);
    xreg_free(r);
}

static const struct t_case cases[] = {
    T_REG(type_names_parse_exactly),
    T_REG(chash_distributes_by_weight),
    T_REG(chash_same_key_same_queue_and_new_queue_moves_one_nth),
    T_REG(chash_unbind_middle_renumbers_and_keeps_routing_total),
    T_REG(chash_hash_header_and_property),
    T_REG(chash_checks_keys_and_declare_args),
    T_REG(xreg_add_find_remove_keeps_fields),
    T_REG(alternate_argument_must_be_longstr),
    T_REG(xreg_iterates_in_insertion_order_with_removal),
    T_REG(direct_bind_unbind_idempotent),
    T_REG(binding_args_are_part_of_identity_sorted),
    T_REG(args_sort_is_stable_and_bytewise),
    T_REG(fanout_routes_every_binding_ignoring_key),
    T_REG(fanout_to_ten_thousand_queues_dedups),
    T_REG(fanout_bulk_copy_then_more_destinations),
    T_REG(routeset_dedups_and_resets),
    T_REG(route_does_not_reset_the_routeset),
    T_REG(e2e_chain_and_diamond_deliver_once),
    T_REG(e2e_cycles_terminate),
    T_REG(e2e_wide_graph_visits_each_exchange_once),
    T_REG(ae_used_only_when_unroutable),
    T_REG(ae_missing_is_ignored),
    T_REG(ae_cycles_terminate),
    T_REG(ae_on_inner_exchange),
    T_REG(ae_not_used_when_exchange_destination_matched),
    T_REG(ae_reached_twice_is_visited_once),
    T_REG(policy_alternate_yields_to_argument),
    T_REG(multiple_routing_keys_cc_style),
    T_REG(check_binding_args_only_headers_checks),
    T_REG(removing_exchanges_with_bindings_frees_everything),
};

T_MAIN(cases)
