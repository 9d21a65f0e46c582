/*
 * bench_store: micro-benchmark of store/ (not a test).
 *
 *   bench_store [-d dir] [-n msgs] [-s body_bytes] [-w window]
 *               [-f always|interval|never] [-r recovery_msgs] [-q queues]
 *               [-P] [-R] [-H]
 *
 * Part 1 (skip with -P), publish + consume: a simulated event loop
 * publishes persistent messages to -q queues with at most -w of them
 * unconfirmed (like confirming publishers), flushes once per loop
 * iteration, and acks each message as soon as it is durable (a manual-ack
 * consumer keeping up). Prints messages/s, fdatasyncs/s, messages per
 * fdatasync, and the disk bytes written per message beyond its body and
 * meta (record framing, BATCH markers, ACK records, summaries), and the
 * loop thread's CPU per message. -H keeps the hot index (store.h), as a
 * mirror's copy does: run with and without it to see what it costs.
 *
 * Part 2 (skip with -R), restart: fills a store with -r live messages of
 * -s bytes over -q queues, then times store_open after a clean close
 * (every segment sealed: summaries only) and after a crash (the filling
 * process _exit()s without closing: the newest segment is scanned).
 * Prints the time, the bytes read, and the store's heap per recovered
 * message. The page cache is warm: dropping it needs root and
 * would disturb everyone else on the machine.
 */
#include "store/io.h"
#include "store/store.h"

#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- an I/O seam that counts */

static _Atomic uint64_t n_fdatasync, n_read, n_written;

static ssize_t
c_pread(void *arg, int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t k = store_io_default.pread(arg, fd, buf, n, off);

    if (k > 0)
        atomic_fetch_add(&n_read, (uint64_t)k);
    return k;
}

static ssize_t
c_pwrite(void *arg, int fd, const void *buf, size_t n, uint64_t off)
{
    ssize_t k = store_io_default.pwrite(arg, fd, buf, n, off);

    if (k > 0)
        atomic_fetch_add(&n_written, (uint64_t)k);
    return k;
}

static int
c_fdatasync(void *arg, int fd)
{
    atomic_fetch_add(&n_fdatasync, 1);
    return store_io_default.fdatasync(arg, fd);
}

static struct store_io cio;

/* ---- the simulated loop's wake-up (ev_async in the broker) */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t wakes;

static void
wake(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    wakes++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static uint64_t
get_wakes(void)
{
    uint64_t w;

    pthread_mutex_lock(&mu);
    w = wakes;
    pthread_mutex_unlock(&mu);
    return w;
}

static void
wait_wake(uint64_t seen)
{
    pthread_mutex_lock(&mu);
    while (wakes == seen)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Heap bytes in use (RSS would not grow into pages malloc kept). */
static long
heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();

    return (long)(mi.uordblks + mi.hblkhd);
}

static void
die(const char *what, const char *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err);
    exit(1);
}

static void
rm_store(const char *dir)
{
    char cmd[1200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_store: could not remove %s\n", dir);
}

struct opts {
    char dir[1024];
    uint64_t n;
    size_t body;
    size_t window;
    enum store_fsync fsync;
    uint64_t recovery;
    int queues;
    bool publish;
    bool restart;
    bool hot;
};

static const char meta[] =
    "exchange=amq.direct rk=bench.key props=0123456789012345";

static const char *
policy_name(enum store_fsync f)
{
    return f == STORE_FSYNC_ALWAYS     ? "always"
           : f == STORE_FSYNC_INTERVAL ? "interval"
                                       : "never";
}

static struct store *
open_store(const struct opts *o, enum store_fsync f,
           const struct store_recover_cb *cb, void *ctx)
{
    struct store_config cfg = {0};
    struct store *s;
    char err[1024];

    cfg.dir = o->dir;
    cfg.fsync = f;
    cfg.io = &cio;
    cfg.wake = wake;
    cfg.hot_index = o->hot;
    if (store_open(&cfg, cb, ctx, &s, err, sizeof(err)) != WR_OK)
        die("open", err);
    return s;
}

/* CPU time of the calling thread, s. */
static double
thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- part 1 */

struct inflight {
    uint64_t lsn, id, qid;
};

static void
publish_consume(const struct opts *o)
{
    struct inflight *ring = calloc(o->window, sizeof(*ring));
    uint8_t *body = malloc(o->body ? o->body : 1);
    uint64_t sent = 0, acked = 0, head = 0, tail = 0, f0, w0, iters = 0;
    struct store_msg_in m = {0};
    uint64_t qids[64];
    struct store *s;
    double t0, t1, c0, c1, per;

    for (int i = 0; i < o->queues; i++)
        qids[i] = store_qid(bytes_str("bench")) + (uint64_t)i;
    memset(body, 'x', o->body);
    rm_store(o->dir);
    s = open_store(o, o->fsync, NULL, NULL);
    f0 = atomic_load(&n_fdatasync);
    w0 = atomic_load(&n_written);
    m.meta = bytes_str(meta);
    m.body = bytes_of(body, o->body);
    m.nqids = 1;
    t0 = now_s();
    c0 = thread_cpu_s();
    while (acked < o->n) {
        uint64_t w = get_wakes(), durable;

        iters++;
        /* one loop iteration: publish what the window allows, */
        while (sent < o->n && head - tail < o->window) {
            struct inflight *f = &ring[head % o->window];
            uint64_t pos;

            f->qid = qids[sent % (uint64_t)o->queues];
            m.qids = &f->qid;
            f->lsn = store_append_msg(s, &m, &f->id, &pos);
            if (!f->lsn)
                die("append", store_error(s) ? store_error(s) : "limit");
            head++;
            sent++;
        }
        /* confirm and consume (ack) what became durable, */
        store_poll(s, NULL, NULL);
        durable = store_durable_lsn(s);
        while (tail < head && ring[tail % o->window].lsn <= durable) {
            struct inflight *f = &ring[tail % o->window];

            if (!store_append_ack(s, f->qid, f->id))
                die("ack", store_error(s));
            tail++;
            acked++;
        }
        /* hand the batch over, sleep until the store thread has news */
        store_flush(s);
        if (tail < head && (head - tail >= o->window || sent == o->n) &&
            store_durable_lsn(s) < ring[tail % o->window].lsn)
            wait_wake(w);
    }
    t1 = now_s();
    c1 = thread_cpu_s();
    f0 = atomic_load(&n_fdatasync) - f0;
    store_close(s);
    per = (double)(atomic_load(&n_written) - w0) / (double)o->n -
          (double)(o->body + sizeof(meta) - 1);
    printf("publish+consume: %llu msgs, body %zu B, meta %zu B, fsync=%s, "
           "%d queues, window %zu\n",
           (unsigned long long)o->n, o->body, sizeof(meta) - 1,
           policy_name(o->fsync), o->queues, o->window);
    printf("  %.0f msgs/s, %.0f fdatasyncs/s, %.1f msgs per fdatasync, "
           "%.1f loop iterations per fdatasync\n",
           (double)o->n / (t1 - t0), (double)f0 / (t1 - t0),
           f0 ? (double)o->n / (double)f0 : 0.0,
           f0 ? (double)iters / (double)f0 : 0.0);
    printf("  disk bytes written per message beyond body+meta: %.1f\n", per);
    printf("  loop thread CPU per message (append + ack%s): %.3f us\n",
           o->hot ? ", hot index" : "", (c1 - c0) * 1e6 / (double)o->n);
    rm_store(o->dir);
    free(ring);
    free(body);
}

/* ---- part 2 */

static void
count_cb(void *ctx, const struct store_recovered *m)
{
    (void)m;
    (*(uint64_t *)ctx)++;
}

static void
fill(const struct opts *o, bool crash)
{
    uint8_t *body = malloc(o->body ? o->body : 1);
    struct store_msg_in m = {0};
    uint64_t qids[64], id, pos, lsn = 0;
    struct store *s;

    memset(body, 'y', o->body);
    for (int i = 0; i < o->queues; i++)
        qids[i] = store_qid(bytes_str("bench")) + (uint64_t)i;
    s = open_store(o, STORE_FSYNC_NEVER, NULL, NULL);
    m.meta = bytes_str(meta);
    m.body = bytes_of(body, o->body);
    m.nqids = 1;
    for (uint64_t i = 0; i < o->recovery; i++) {
        m.qids = &qids[i % (uint64_t)o->queues];
        lsn = store_append_msg(s, &m, &id, &pos);
        if (!lsn)
            die("append", store_error(s) ? store_error(s) : "limit");
        if (i % 1000 == 999) {
            store_flush(s);
            store_poll(s, NULL, NULL);
        }
    }
    while (store_durable_lsn(s) < lsn) {
        uint64_t w = get_wakes();

        store_flush(s);
        store_poll(s, NULL, NULL);
        if (store_durable_lsn(s) < lsn)
            wait_wake(w);
    }
    if (crash)
        _exit(0); /* no close: the newest segment stays unsealed */
    store_close(s);
    free(body);
}

static void
time_open(const struct opts *o, const char *what)
{
    uint64_t n = 0;
    struct store_recover_cb cb = {count_cb};
    long heap0 = heap_bytes(), heap1;
    uint64_t r0 = atomic_load(&n_read);
    struct store *s;
    double t0 = now_s(), t1;

    s = open_store(o, STORE_FSYNC_ALWAYS, &cb, &n);
    t1 = now_s();
    heap1 = heap_bytes();
    printf("  restart after %s: %.3f s for %llu live messages, %.1f MB "
           "read, store heap %.1f bytes/message\n",
           what, t1 - t0, (unsigned long long)n,
           (double)(atomic_load(&n_read) - r0) / 1e6,
           n ? (double)(heap1 - heap0) / (double)n : 0.0);
    store_close(s);
}

static void
restart(const struct opts *o)
{
    pid_t pid;
    int status;
    double t0;

    printf("restart: %llu live messages, body %zu B, %d queues\n",
           (unsigned long long)o->recovery, o->body, o->queues);
    rm_store(o->dir);
    t0 = now_s();
    fill(o, false);
    printf("  filled in %.1f s\n", now_s() - t0);
    time_open(o, "a clean close");
    /* a crash: fill more in a child that exits without closing */
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct opts small = *o;

        small.recovery = 20000;
        fill(&small, true);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        die("fork", "child failed");
    time_open(o, "a crash");
    rm_store(o->dir);
}

int
main(int argc, char **argv)
{
    struct opts o = {.n = 200000,
                     .body = 1024,
                     .window = 2000,
                     .fsync = STORE_FSYNC_ALWAYS,
                     .recovery = 1000000,
                     .queues = 10,
                     .publish = true,
                     .restart = true};
    const char *tmp = getenv("TMPDIR");
    int c;

    snprintf(o.dir, sizeof(o.dir), "%s/warren-bench-store-%d",
             tmp ? tmp : "/tmp", (int)getpid());
    while ((c = getopt(argc, argv, "d:n:s:w:f:r:q:PRH")) != -1) {
        switch (c) {
        case 'd':
            snprintf(o.dir, sizeof(o.dir), "%s", optarg);
            break;
        case 'n':
            o.n = strtoull(optarg, NULL, 0);
            break;
        case 's':
            o.body = strtoul(optarg, NULL, 0);
            break;
        case 'w':
            o.window = strtoul(optarg, NULL, 0);
            break;
        case 'f':
            o.fsync = strcmp(optarg, "never") == 0      ? STORE_FSYNC_NEVER
                      : strcmp(optarg, "interval") == 0 ? STORE_FSYNC_INTERVAL
                                                        : STORE_FSYNC_ALWAYS;
            break;
        case 'r':
            o.recovery = strtoull(optarg, NULL, 0);
            break;
        case 'q':
            o.queues = atoi(optarg);
            break;
        case 'P':
            o.publish = false;
            break;
        case 'R':
            o.restart = false;
            break;
        case 'H':
            o.hot = true;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-d dir] [-n msgs] [-s body] "
                    "[-w window] [-f always|interval|never] "
                    "[-r recovery_msgs] [-q queues] [-P] [-R] [-H]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.queues < 1 || o.queues > 64 || o.window < 1)
        die("options", "need 1..64 queues and a window >= 1");
    cio = store_io_default;
    cio.pread = c_pread;
    cio.pwrite = c_pwrite;
    cio.fdatasync = c_fdatasync;
    if (o.publish)
        publish_consume(&o);
    if (o.restart)
        restart(&o);
    return 0;
}
