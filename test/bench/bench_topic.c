/*
 * bench_topic: routing micro-benchmarks for exchange/ (not a test).
 * Prints the time per route for the hot cases the design names: fanout
 * to 10,000 queues, topic with 1,000 bindings (cache hits and misses),
 * direct with 1,000 keys, headers with 100 bindings, and an
 * exchange-to-exchange chain.
 *
 *   build-dir/test/bench_topic [iterations]
 */
#include "amqp/ftable.h"
#include "exchange/exchange.h"

#include <stdio.h>
#include <stdlib.h>

static int qs[10000];

static struct xdest
qd(int i)
{
    return (struct xdest){&qs[i], false};
}

static void
report(const char *what, uint64_t t0, long iters, size_t routed)
{
    double us = (double)(wr_now_us() - t0) / (double)iters;

    printf("%-44s %10.3f us/route  (%zu queues)\n", what, us, routed);
}

int
main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    struct xreg *r = xreg_new();
    struct routeset rs;
    char key[64];
    uint64_t t0;
    size_t n = 0;

    routeset_init(&rs);

    struct exchange *f = xreg_add(r, BYTES_LIT("f"), EXCHANGE_FANOUT, false,
                                  false, false, BYTES_NULL);
    for (int i = 0; i < 10000; i++)
        exchange_bind(f, BYTES_NULL, BYTES_NULL, qd(i));
    t0 = wr_now_us();
    for (long i = 0; i < iters / 10; i++) {
        routeset_reset(&rs);
        n = exchange_route(r, f, BYTES_LIT("k"), BYTES_NULL, &rs);
    }
    report("fanout, 10,000 queues", t0, iters / 10, n);

    struct exchange *t = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    for (int i = 0; i < 1000; i++) {
        switch (i % 4) {
        case 0:
            snprintf(key, sizeof(key), "region%d.orders.*", i % 50);
            break;
        case 1:
            snprintf(key, sizeof(key), "region%d.#", i);
            break;
        case 2:
            snprintf(key, sizeof(key), "*.user%d.created", i);
            break;
        default:
            snprintf(key, sizeof(key), "#.tenant%d", i);
            break;
        }
        exchange_bind(t, bytes_str(key), BYTES_NULL, qd(i));
    }
    t0 = wr_now_us();
    for (long i = 0; i < iters; i++) {
        snprintf(key, sizeof(key), "region%ld.orders.new", i % 50);
        routeset_reset(&rs);
        n = exchange_route(r, t, bytes_str(key), BYTES_NULL, &rs);
    }
    report("topic, 1,000 bindings, 50 keys (cache hits)", t0, iters, n);
    t0 = wr_now_us();
    for (long i = 0; i < iters; i++) {
        snprintf(key, sizeof(key), "region%ld.user%ld.created.tenant%ld",
                 i % 1000, i % 997, i % 991);
        routeset_reset(&rs);
        n = exchange_route(r, t, bytes_str(key), BYTES_NULL, &rs);
    }
    report("topic, 1,000 bindings, distinct keys (misses)", t0, iters, n);

    struct exchange *d = xreg_add(r, BYTES_LIT("d"), EXCHANGE_DIRECT, false,
                                  false, false, BYTES_NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "queue.%d", i);
        exchange_bind(d, bytes_str(key), BYTES_NULL, qd(i));
    }
    t0 = wr_now_us();
    for (long i = 0; i < iters; i++) {
        snprintf(key, sizeof(key), "queue.%ld", i % 1000);
        routeset_reset(&rs);
        n = exchange_route(r, d, bytes_str(key), BYTES_NULL, &rs);
    }
    report("direct, 1,000 keys", t0, iters, n);

    struct exchange *h = xreg_add(r, BYTES_LIT("h"), EXCHANGE_HEADERS, false,
                                  false, false, BYTES_NULL);
    struct buf b, hb;
    buf_init(&b);
    for (int i = 0; i < 100; i++) {
        size_t m;
        buf_reset(&b);
        m = ftable_begin(&b);
        fenc_cstr(&b, "x-match", i % 2 ? "any" : "all");
        fenc_int(&b, "tenant", i);
        fenc_cstr(&b, "kind", "order");
        ftable_end(&b, m);
        exchange_bind(h, BYTES_NULL, bytes_of(b.data + 4, b.len - 4), qd(i));
    }
    buf_init(&hb);
    size_t m = ftable_begin(&hb);
    fenc_cstr(&hb, "kind", "order");
    fenc_int(&hb, "tenant", 42);
    fenc_cstr(&hb, "trace-id", "abcdef");
    ftable_end(&hb, m);
    t0 = wr_now_us();
    for (long i = 0; i < iters; i++) {
        routeset_reset(&rs);
        n = exchange_route(r, h, BYTES_NULL, bytes_of(hb.data + 4, hb.len - 4),
                           &rs);
    }
    report("headers, 100 bindings, 3 headers", t0, iters, n);

    struct exchange *prev = NULL, *first = NULL;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "chain%d", i);
        struct exchange *x = xreg_add(r, bytes_str(key), EXCHANGE_FANOUT, false,
                                      false, false, BYTES_NULL);
        exchange_bind(x, BYTES_NULL, BYTES_NULL, qd(i));
        if (prev)
            exchange_bind(prev, BYTES_NULL, BYTES_NULL,
                          (struct xdest){x, true});
        else
            first = x;
        prev = x;
    }
    t0 = wr_now_us();
    for (long i = 0; i < iters; i++) {
        routeset_reset(&rs);
        n = exchange_route(r, first, BYTES_LIT("k"), BYTES_NULL, &rs);
    }
    report("e2e chain of 10 fanouts", t0, iters, n);

    buf_fini(&b);
    buf_fini(&hb);
    routeset_fini(&rs);
    xreg_free(r);
    return 0;
}
