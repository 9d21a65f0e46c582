/*
 * admin.c: the connections and queues runs.
 *
 * connections: --threads workers open --count connections between them,
 * each with a full handshake and channel 1, one after the other per
 * worker; the opening rate is count / wall time. They stay open for
 * --hold seconds, then the broker's RSS is read (so its growth divided by
 * the count is the memory per idle connection), and they are closed.
 *
 * queues: each worker has one connection and declares its share of
 * --count queues ("<prefix>-q<i>"), one synchronous queue.declare at a
 * time; the rate is count / wall time. After --hold seconds the broker's
 * RSS gives the memory per empty queue; then (unless --keep) the queues
 * are deleted, which gives the delete rate.
 *
 * Workers are plain threads over a slice [from, to) of the items; any
 * failure stops that worker and is reported with the first error text.
 */
#include "test/bench/perf/perf.h"

#include <stdlib.h>
#include <time.h>

enum admin_op { OP_OPEN, OP_CLOSE, OP_DECLARE, OP_DELETE };

struct worker {
    pthread_t th;
    const struct perf_opts *o;
    struct perf_target t;
    enum admin_op op;
    struct pconn *conns; /* OP_OPEN/OP_CLOSE: the slice's connections */
    struct pconn *conn;  /* OP_DECLARE/OP_DELETE: the worker's own */
    long from;
    long to;
    long done;
    char err[512];
};

static int
declare_or_delete(struct worker *w, long i)
{
    struct amqp_method m;
    char name[256];

    snprintf(name, sizeof(name), "%s-q%ld", w->o->queue_prefix, i);
    memset(&m, 0, sizeof(m));
    if (w->op == OP_DECLARE) {
        m.id = AMQP_QUEUE_DECLARE;
        m.u.queue_declare.queue = bytes_str(name);
        m.u.queue_declare.durable = w->o->durable_queues;
        return pconn_rpc(w->conn, 1, &m, AMQP_QUEUE_DECLARE_OK, NULL);
    }
    m.id = AMQP_QUEUE_DELETE;
    m.u.queue_delete.queue = bytes_str(name);
    return pconn_rpc(w->conn, 1, &m, AMQP_QUEUE_DELETE_OK, NULL);
}

static int
one(struct worker *w, long i)
{
    struct pconn *c;

    switch (w->op) {
    case OP_OPEN:
        c = &w->conns[i];
        c->in_min = FRAME_MIN_SIZE;
        return pconn_open(c, &w->t);
    case OP_CLOSE:
        c = &w->conns[i];
        return c->fd < 0
                   ? WR_OK
                   : pconn_close(c, perf_now_ns() + PCONN_SETUP_TIMEOUT_NS);
    case OP_DECLARE:
    case OP_DELETE:
        return declare_or_delete(w, i);
    }
    return WR_ERR;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    for (long i = w->from; i < w->to; i++) {
        if (one(w, i) != WR_OK) {
            struct pconn *c = w->conn ? w->conn : &w->conns[i];

            snprintf(w->err, sizeof(w->err), "%s", c->err);
            break;
        }
        w->done++;
    }
    return NULL;
}

/*
 * Runs op over [0, count) on `threads` workers; returns the wall time in
 * seconds and adds the items done to *done. Records the first error.
 */
static double
run_workers(struct worker *ws, int threads, enum admin_op op, long count,
            long *done, struct perf_result *r)
{
    uint64_t t0 = perf_now_ns();

    for (int i = 0; i < threads; i++) {
        ws[i].op = op;
        ws[i].from = count * i / threads;
        ws[i].to = count * (i + 1) / threads;
        ws[i].done = 0;
        ws[i].err[0] = '\0';
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
            WR_ASSERT(!"pthread_create");
    }
    *done = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].th, NULL);
        *done += ws[i].done;
        if (ws[i].err[0] != '\0')
            perf_result_error(r, "worker %d: %s", i, ws[i].err);
    }
    return (double)(perf_now_ns() - t0) / 1e9;
}

static void
hold(const struct perf_opts *o, const char *what, long n)
{
    struct timespec ts;

    if (o->hold <= 0)
        return;
    if (!o->quiet) {
        fprintf(report_out, "holding %ld %s for %.1f s\n", n, what, o->hold);
        fflush(report_out);
    }
    ts.tv_sec = (time_t)o->hold;
    ts.tv_nsec = (long)((o->hold - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* Broker memory per item, bytes; -1 when the broker is unknown. */
static double
per_item(long kb0, long kb1, long n)
{
    if (kb0 < 0 || kb1 < 0 || n <= 0)
        return -1;
    return (double)(kb1 - kb0) * 1024.0 / (double)n;
}

static void
init_workers(struct worker *ws, int threads, const struct perf_opts *o)
{
    for (int i = 0; i < threads; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].o = o;
        ws[i].t =
            (struct perf_target){o->host, o->port, o->user, o->pass, o->vhost};
    }
}

int
admin_connections(const struct perf_opts *o, struct perf_result *r)
{
    int threads = WR_MAX(1, o->threads);
    struct worker *ws = xcalloc((size_t)threads, sizeof(*ws));
    struct pconn *conns = xcalloc((size_t)o->count, sizeof(*conns));
    double cpu0 = sysstat_self_cpu();
    double broker0 = sysstat_pid_cpu(o->broker_pid);
    long opened;
    long closed;
    double t;

    for (long i = 0; i < o->count; i++)
        pconn_init(&conns[i]);
    init_workers(ws, threads, o);
    for (int i = 0; i < threads; i++)
        ws[i].conns = conns;
    r->broker_rss_kb_start = sysstat_pid_rss_kb(o->broker_pid);
    t = run_workers(ws, threads, OP_OPEN, o->count, &opened, r);
    r->count = opened;
    r->elapsed = t;
    r->open_rate = t > 0 ? (double)opened / t : 0;
    if (!o->quiet) {
        fprintf(report_out, "opened %ld connections in %.3f s: %.0f/s\n",
                opened, t, r->open_rate);
        fflush(report_out);
    }
    hold(o, "connections", opened);
    r->broker_rss_kb_end = sysstat_pid_rss_kb(o->broker_pid);
    r->broker_rss_kb_max = r->broker_rss_kb_end;
    r->mem_per_item =
        per_item(r->broker_rss_kb_start, r->broker_rss_kb_end, opened);
    t = run_workers(ws, threads, OP_CLOSE, o->count, &closed, r);
    r->close_rate = t > 0 ? (double)closed / t : 0;
    r->tool_cpu = sysstat_self_cpu() - cpu0;
    r->broker_cpu =
        broker0 >= 0 ? sysstat_pid_cpu(o->broker_pid) - broker0 : -1;
    for (long i = 0; i < o->count; i++)
        pconn_fini(&conns[i]);
    free(conns);
    free(ws);
    return opened == o->count ? WR_OK : WR_ERR;
}

int
admin_queues(const struct perf_opts *o, struct perf_result *r)
{
    int threads = WR_MAX(1, o->threads);
    struct worker *ws = xcalloc((size_t)threads, sizeof(*ws));
    struct pconn *conns = xcalloc((size_t)threads, sizeof(*conns));
    double cpu0 = sysstat_self_cpu();
    double broker0 = sysstat_pid_cpu(o->broker_pid);
    long declared = 0;
    long deleted = 0;
    double t;
    int rc = WR_ERR;

    init_workers(ws, threads, o);
    for (int i = 0; i < threads; i++) {
        pconn_init(&conns[i]);
        ws[i].conn = &conns[i];
        if (pconn_open(&conns[i], &ws[i].t) != WR_OK) {
            perf_result_error(r, "connect: %s", conns[i].err);
            goto out;
        }
    }
    r->broker_rss_kb_start = sysstat_pid_rss_kb(o->broker_pid);
    t = run_workers(ws, threads, OP_DECLARE, o->count, &declared, r);
    r->count = declared;
    r->elapsed = t;
    r->open_rate = t > 0 ? (double)declared / t : 0;
    if (!o->quiet) {
        fprintf(report_out, "declared %ld queues in %.3f s: %.0f/s\n", declared,
                t, r->open_rate);
        fflush(report_out);
    }
    hold(o, "queues", declared);
    r->broker_rss_kb_end = sysstat_pid_rss_kb(o->broker_pid);
    r->broker_rss_kb_max = r->broker_rss_kb_end;
    r->mem_per_item =
        per_item(r->broker_rss_kb_start, r->broker_rss_kb_end, declared);
    if (!o->keep) {
        t = run_workers(ws, threads, OP_DELETE, o->count, &deleted, r);
        r->close_rate = t > 0 ? (double)deleted / t : 0;
        if (!o->quiet) {
            fprintf(report_out, "deleted %ld queues in %.3f s: %.0f/s\n",
                    deleted, t, r->close_rate);
            fflush(report_out);
        }
    }
    for (int i = 0; i < threads; i++)
        (void)pconn_close(&conns[i], perf_now_ns() + PCONN_SETUP_TIMEOUT_NS);
    rc = declared == o->count ? WR_OK : WR_ERR;
out: /* connections closed or never opened */
    r->tool_cpu = sysstat_self_cpu() - cpu0;
    r->broker_cpu =
        broker0 >= 0 ? sysstat_pid_cpu(o->broker_pid) - broker0 : -1;
    for (int i = 0; i < threads; i++)
        pconn_fini(&conns[i]);
    free(conns);
    free(ws);
    return rc;
}
