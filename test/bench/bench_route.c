/*
 * bench_route: the in-memory publish path of vhost/ (route, dedup check,
 * queue push), per message, for the exchange types and deduplication
 * against a direct exchange (not a test). Every case builds the same
 * message (routing key, one x-deduplication-header, 16-byte body) in the
 * loop and publishes it to one of 16 queues, purged every 4096 messages:
 *
 *   direct                 16 keys -> 16 queues
 *   x-consistent-hash      16 queues of weight 1, a new routing key each time
 *   x-consistent-hash, hash-header   the same, hashing the header
 *   dedup queue            direct into x-message-deduplication queues
 *                          (x-cache-size 10000), a new key each time
 *   dedup exchange         a direct exchange with x-message-deduplication
 *   dedup exchange, duplicates   the same key every time: dropped
 *
 *   build-dir/test/bench_route [messages per round (100000)] [rounds (15)]
 *
 * Times are the thread's CPU time, best round of each case.
 */
#include "amqp/ftable.h"
#include "vhost/node.h"
#include "vhost/queue.h"
#include "vhost/vhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NQ 16

static struct queue *qs[NQ];

/* A table body of the given entries: bool/int/longstr by tag. */
static struct bytes
args(struct buf *b, bool dedup, const char *hash_header)
{
    size_t m;

    buf_init(b);
    m = ftable_begin(b);
    if (dedup) {
        fenc_bool(b, "x-message-deduplication", true);
        fenc_int(b, "x-cache-size", 10000);
    }
    if (hash_header)
        fenc_cstr(b, "hash-header", hash_header);
    ftable_end(b, m);
    return bytes_of(b->data + 4, b->len - 4);
}

static struct exchange *
setup(struct vhost *vh, const char *x, const char *type, bool xdedup,
      bool qdedup, const char *hash_header)
{
    struct buf xa, qa;
    struct exchange_decl xd = {.name = bytes_str(x), .type = bytes_str(type)};
    struct vherr err;
    char name[32], key[16];

    xd.args = args(&xa, xdedup, hash_header);
    if (vhost_exchange_declare(vh, &xd, &err) != WR_OK) {
        fprintf(stderr, "%s: %s\n", x, err.text);
        abort();
    }
    for (int i = 0; i < NQ; i++) {
        struct queue_decl d = {0};
        snprintf(name, sizeof(name), "%s-q%d", x, i);
        d.name = bytes_str(name);
        d.args = args(&qa, qdedup, NULL);
        if (vhost_queue_declare(vh, &d, &qs[i], &err) != WR_OK) {
            fprintf(stderr, "%s: %s\n", name, err.text);
            abort();
        }
        buf_fini(&qa);
        if (strcmp(type, "direct") == 0)
            snprintf(key, sizeof(key), "k%d", i);
        else
            snprintf(key, sizeof(key), "1");
        if (vhost_bind(vh, bytes_str(x), bytes_str(name), false, bytes_str(key),
                       BYTES_NULL, NULL, &err) != WR_OK) {
            fprintf(stderr, "bind %s: %s\n", name, err.text);
            abort();
        }
    }
    buf_fini(&xa);
    return vhost_exchange_find(vh, bytes_str(x));
}

/* This thread's CPU time: the machine is shared, and time spent
 * preempted is not the publish path's. */
static uint64_t
cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Publishes n messages to x; returns ns per message. dup: the same
 * dedup key every time. */
static double
run(struct vhost *vh, struct exchange *x, long n, bool direct_keys, bool dup)
{
    struct buf props;
    char rk[32], id[32];
    static long serial; /* new keys stay new from round to round */
    uint64_t t0 = cpu_us();
    size_t routed = 0;

    buf_init(&props);
    for (long i = 0; i < n; i++) {
        struct publish_result res;
        struct message *m;
        size_t mark;

        if (direct_keys)
            snprintf(rk, sizeof(rk), "k%ld", i % NQ);
        else
            snprintf(rk, sizeof(rk), "acct-%ld", i);
        snprintf(id, sizeof(id), "id-%ld", dup ? 0 : serial++);
        buf_reset(&props);
        buf_put_u16(&props, 1u << 13); /* headers */
        mark = ftable_begin(&props);
        fenc_cstr(&props, "x-deduplication-header", id);
        ftable_end(&props, mark);
        m = message_new(BYTES_NULL, bytes_str(rk), buf_bytes(&props), 16);
        m = message_append(m, BYTES_LIT("0123456789abcdef"));
        vhost_publish(vh, x, bytes_str(rk),
                      bytes_of(props.data + 6, props.len - 6), m, &res);
        routed += res.nqueues;
        message_unref(m);
        if ((i & 4095) == 4095) {
            for (int q = 0; q < NQ; q++)
                queue_purge(qs[q]);
        }
    }
    for (int q = 0; q < NQ; q++)
        queue_purge(qs[q]);
    buf_fini(&props);
    if (routed == 0 && !dup)
        abort();
    return (double)(cpu_us() - t0) * 1000.0 / (double)n;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 15;
    struct node *nd = node_new(NULL);
    struct vhost *vh = node_vhost_add(nd, "/");
    struct {
        const char *what, *x, *type;
        bool xdedup, qdedup, direct_keys, dup;
        const char *hash_header;
    } cases[] = {
        {"direct", "d", "direct", false, false, true, false, NULL},
        {"x-consistent-hash (routing key)", "c", "x-consistent-hash", false,
         false, false, false, NULL},
        {"x-consistent-hash (hash-header)", "ch", "x-consistent-hash", false,
         false, false, false, "x-deduplication-header"},
        {"direct, dedup queues (new keys)", "dq", "direct", false, true, true,
         false, NULL},
        {"direct, dedup exchange (new keys)", "dx", "direct", true, false, true,
         false, NULL},
        {"direct, dedup exchange (duplicates)", "dd", "direct", true, false,
         true, true, NULL},
    };
    struct exchange *xs[WR_ARRAY_LEN(cases)];
    struct queue *qsets[WR_ARRAY_LEN(cases)][NQ];
    double best[WR_ARRAY_LEN(cases)];

    for (size_t i = 0; i < WR_ARRAY_LEN(cases); i++) {
        xs[i] = setup(vh, cases[i].x, cases[i].type, cases[i].xdedup,
                      cases[i].qdedup, cases[i].hash_header);
        memcpy(qsets[i], qs, sizeof(qs));
        best[i] = 1e30;
    }
    /* The machine is shared: rounds interleave the cases, and each
     * case's best round is reported. */
    for (int round = 0; round < rounds; round++) {
        for (size_t i = 0; i < WR_ARRAY_LEN(cases); i++) {
            memcpy(qs, qsets[i], sizeof(qs));
            double ns = run(vh, xs[i], n, cases[i].direct_keys, cases[i].dup);
            best[i] = WR_MIN(best[i], ns);
        }
    }
    for (size_t i = 0; i < WR_ARRAY_LEN(cases); i++)
        printf("%-40s %8.1f ns/publish  %6.2f M/s  %5.2fx direct\n",
               cases[i].what, best[i], 1000.0 / best[i], best[i] / best[0]);
    node_free(nd);
    return 0;
}
