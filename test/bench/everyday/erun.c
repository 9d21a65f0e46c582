/*
 * erun.c: warren-everyday's main thread: throughput, latency and sweep
 * runs.
 *
 * A run goes through the phases of enum ed_phase:
 *
 *   SETUP  a setup connection declares the topology (econn.c); consumer
 *          and producer threads connect, consumers start consuming, and
 *          the main thread waits until every one is ready
 *   RUN    producers publish, paced by struct ed_pace: for --duration
 *          seconds at --rate per producer (throughput, latency), or
 *          through the aggregate rates of --rates, one step each (sweep);
 *          the main thread prints a line per second
 *   STOP   producers wait for their confirms and close; then the main
 *          thread knows exactly what each queue must deliver, and waits
 *          until the consumers have it all, or until nothing new arrived
 *          for --drain-timeout seconds
 *   DONE   consumers ack what they hold and close; the main thread merges
 *          what they saw per (producer, queue) stream and counts lost,
 *          duplicated, corrupted, out-of-order and unexpected messages
 *
 * A sweep step holds its rate for --settle seconds, then measures for
 * --step seconds: publish and delivery rates, latency, and the broker's
 * CPU per thread (for Warren, the event loop is the thread whose id is
 * the pid). A step lags when it delivers less than (1 - --lag) of what it
 * asked; the sweep stops after the first step that lags, since that rate
 * is past what the broker (or this machine) sustains.
 */
#include "test/bench/everyday/everyday.h"

#include <stdlib.h>
#include <time.h>

#define SEC_NS        1000000000ull
#define READY_NS      (120ull * SEC_NS)
#define POLL_SLEEP_NS (5ull * 1000000ull)
#define STACK_SIZE    (512u << 10)

/* Totals at one instant. */
struct snap {
    uint64_t t;
    uint64_t published;
    uint64_t confirmed;
    uint64_t received;
    double tool_cpu;
    double broker_cpu;
    struct hist lat;
    struct sysstat_thread *threads; /* NULL unless asked for */
    int nthreads;
};

static void
sleep_until(uint64_t t)
{
    uint64_t now = perf_now_ns();
    struct timespec ts;

    if (t <= now)
        return;
    ts.tv_sec = (time_t)((t - now) / SEC_NS);
    ts.tv_nsec = (long)((t - now) % SEC_NS);
    nanosleep(&ts, NULL);
}

static uint64_t
sum_received(struct ed_run *run, bool unique)
{
    uint64_t n = 0;

    for (int i = 0; i < run->ncons; i++)
        n += ctr_get(unique ? &run->cons[i].unique : &run->cons[i].received);
    return n;
}

static void
take_snap(struct ed_run *run, struct snap *s, bool threads)
{
    s->t = perf_now_ns();
    s->published = 0;
    s->confirmed = 0;
    for (int i = 0; i < run->nprod; i++) {
        s->published += ctr_get(&run->prod[i].published);
        s->confirmed += ctr_get(&run->prod[i].confirmed);
    }
    s->received = sum_received(run, false);
    s->tool_cpu = sysstat_self_cpu();
    s->broker_cpu = sysstat_pid_cpu(run->o->broker_pid);
    hist_init(&s->lat);
    for (int i = 0; i < run->ncons; i++)
        hist_add(&s->lat, &run->cons[i].lat);
    s->threads = NULL;
    s->nthreads = 0;
    if (threads)
        s->nthreads = sysstat_threads(run->o->broker_pid, &s->threads);
}

/* Deliveries per publish (fanout reaches every queue). */
static uint64_t
fanout_factor(const struct ed_opts *o)
{
    return o->xtype == ED_FANOUT ? (uint64_t)o->queues : 1;
}

/* The window from a to b; t counts from t0. */
static void
sample_of(struct ed_run *run, uint64_t t0, const struct snap *a,
          const struct snap *b, struct ed_sample *s)
{
    static struct hist win;
    double dt = (double)(b->t - a->t) / 1e9;
    uint64_t routed = b->published * fanout_factor(run->o);

    memset(s, 0, sizeof(*s));
    if (dt <= 0)
        return;
    hist_sub(&win, (struct hist *)&b->lat, (struct hist *)&a->lat);
    s->t = (double)(b->t - t0) / 1e9;
    s->seconds = dt;
    s->publish_rate = (double)(b->published - a->published) / dt;
    s->confirm_rate = (double)(b->confirmed - a->confirmed) / dt;
    s->consume_rate = (double)(b->received - a->received) / dt;
    s->backlog = routed > b->received ? routed - b->received : 0;
    perf_lat_of(&win, &s->lat);
    s->tool_cpu_pct = (b->tool_cpu - a->tool_cpu) / dt * 100.0;
    s->broker_cpu_pct = a->broker_cpu >= 0 && b->broker_cpu >= 0
                            ? (b->broker_cpu - a->broker_cpu) / dt * 100.0
                            : -1;
    s->broker_rss_kb = sysstat_pid_rss_kb(run->o->broker_pid);
    if (a->nthreads > 0 && b->nthreads > 0)
        s->nthreads = sysstat_threads_delta(a->threads, a->nthreads, b->threads,
                                            b->nthreads, &s->threads);
}

static void
note_rss(struct ed_result *r, long kb)
{
    if (kb > r->broker_rss_kb_max)
        r->broker_rss_kb_max = kb;
}

/* Per-second lines: records one when a second has passed since *prev. */
static void
tick(struct ed_run *run, struct ed_result *r, uint64_t t0, struct snap *prev)
{
    struct snap cur;
    struct ed_sample s;

    if (perf_now_ns() < prev->t + SEC_NS)
        return;
    take_snap(run, &cur, false);
    sample_of(run, t0, prev, &cur, &s);
    *prev = cur;
    note_rss(r, s.broker_rss_kb);
    if (r->nsamples == r->cap_samples) {
        r->cap_samples = r->cap_samples ? r->cap_samples * 2 : 64;
        r->samples =
            xrealloc(r->samples, (size_t)r->cap_samples * sizeof(*r->samples));
    }
    r->samples[r->nsamples++] = s;
    if (!run->o->quiet)
        ereport_sample(&s);
}

static bool
start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    int rc;

    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, STACK_SIZE);
    rc = pthread_create(th, &a, fn, arg);
    pthread_attr_destroy(&a);
    return rc == 0;
}

/* Starts every thread; returns false (and how many of each started) when
 * one could not be created. */
static bool
start_threads(struct ed_run *run, int *nc, int *np)
{
    for (*nc = 0; *nc < run->ncons; (*nc)++)
        if (!start(&run->cons[*nc].th, econs_main, &run->cons[*nc]))
            return false;
    for (*np = 0; *np < run->nprod; (*np)++)
        if (!start(&run->prod[*np].th, eprod_main, &run->prod[*np]))
            return false;
    return true;
}

static bool
any_failed(struct ed_run *run)
{
    for (int i = 0; i < run->ncons; i++)
        if (atomic_load(&run->cons[i].failed))
            return true;
    for (int i = 0; i < run->nprod; i++)
        if (atomic_load(&run->prod[i].failed))
            return true;
    return false;
}

/* Waits until every thread is ready. Returns false when one failed or
 * READY_NS passed. */
static bool
wait_ready(struct ed_run *run)
{
    uint64_t deadline = perf_now_ns() + READY_NS;

    while (perf_now_ns() < deadline) {
        bool all = true;

        if (any_failed(run))
            return false;
        for (int i = 0; all && i < run->nprod; i++)
            all = atomic_load(&run->prod[i].ready);
        for (int i = 0; all && i < run->ncons; i++)
            all = atomic_load(&run->cons[i].ready);
        if (all)
            return true;
        sleep_until(perf_now_ns() + 1000000);
    }
    return false;
}

static bool
producers_done(struct ed_run *run)
{
    for (int i = 0; i < run->nprod; i++)
        if (!atomic_load(&run->prod[i].done))
            return false;
    return true;
}

static bool
consumer_failed(struct ed_run *run)
{
    for (int i = 0; i < run->ncons; i++)
        if (atomic_load(&run->cons[i].failed))
            return true;
    return false;
}

/* Sets every producer's pace: `rate` msg/s each, 0 = no pause. */
static void
set_pace(struct ed_run *run, double rate)
{
    atomic_store(&run->pace.interval, rate > 0 ? (uint64_t)(1e9 / rate) : 0);
    atomic_store(&run->pace.start, perf_now_ns());
    atomic_fetch_add(&run->pace.gen, 1);
}

/* Waits until t (or the run cannot go on), printing per-second lines.
 * Returns false when it cannot go on. */
static bool
run_until(struct ed_run *run, struct ed_result *r, uint64_t t0, uint64_t t,
          struct snap *prev)
{
    for (;;) {
        uint64_t now = perf_now_ns();

        if (atomic_load(&ed_interrupted) || producers_done(run) ||
            consumer_failed(run))
            return false;
        if (now >= t)
            return true;
        tick(run, r, t0, prev);
        sleep_until(WR_MIN(t, prev->t + SEC_NS));
    }
}

static void
timed_run(struct ed_run *run, struct ed_result *r, uint64_t t0,
          struct snap *prev)
{
    set_pace(run, run->o->rate);
    (void)run_until(run, r, t0, t0 + (uint64_t)(run->o->duration * 1e9), prev);
}

/* Measures one sweep step at `rate` msg/s in all. Returns false when the
 * run cannot go on. */
static bool
sweep_step(struct ed_run *run, struct ed_result *r, uint64_t t0, double rate,
           struct snap *prev)
{
    const struct ed_opts *o = run->o;
    struct ed_sample *s = &r->steps[r->nsteps];
    struct snap a;
    struct snap b;
    double want = rate * (double)fanout_factor(o);

    set_pace(run, rate / run->nprod);
    if (!run_until(run, r, t0, perf_now_ns() + (uint64_t)(o->settle * 1e9),
                   prev))
        return false;
    take_snap(run, &a, true);
    if (!run_until(run, r, t0, a.t + (uint64_t)(o->step * 1e9), prev)) {
        free(a.threads);
        return false;
    }
    take_snap(run, &b, true);
    sample_of(run, t0, &a, &b, s);
    free(a.threads);
    free(b.threads);
    s->target_rate = rate;
    s->lagging = s->consume_rate < (1 - o->lag) * want ||
                 s->publish_rate < (1 - o->lag) * rate;
    note_rss(r, s->broker_rss_kb);
    r->nsteps++;
    ereport_step(s, o->broker_pid); /* one line a step, even --quiet */
    return !s->lagging;
}

static void
sweep_run(struct ed_run *run, struct ed_result *r, uint64_t t0,
          struct snap *prev)
{
    for (int i = 0; i < run->o->nrates; i++)
        if (!sweep_step(run, r, t0, run->o->rates[i], prev))
            break;
}

/* What producer p routed to queue q. */
static uint64_t
expected_of(struct ed_run *run, int p, int q)
{
    if (run->o->xtype == ED_FANOUT)
        return run->prod[p].seq[run->o->queues];
    return run->prod[p].seq[q];
}

static bool
queue_has_consumer(struct ed_run *run, int q)
{
    for (int i = 0; i < run->ncons; i++)
        if (run->cons[i].queue == q)
            return true;
    return false;
}

static uint64_t
expected_total(struct ed_run *run)
{
    uint64_t n = 0;

    for (int q = 0; q < run->o->queues; q++)
        for (int p = 0; queue_has_consumer(run, q) && p < run->nprod; p++)
            n += expected_of(run, p, q);
    return n;
}

/* Waits until the consumers hold every expected message, nothing new came
 * for drain_timeout, or one failed. */
static void
drain(struct ed_run *run, struct ed_result *r, uint64_t t0, struct snap *prev)
{
    uint64_t last = sum_received(run, true);
    uint64_t last_t = perf_now_ns();
    uint64_t quiet_ns = (uint64_t)(run->o->drain_timeout * 1e9);

    while (!consumer_failed(run)) {
        uint64_t got = sum_received(run, true);
        uint64_t now = perf_now_ns();

        if (got >= r->expected)
            break;
        if (got != last) {
            last = got;
            last_t = now;
        } else if (now - last_t > quiet_ns) {
            ed_result_error(r,
                            "no delivery for %.0f s: stopped waiting with "
                            "%llu of %llu messages not received (they count "
                            "as lost)",
                            run->o->drain_timeout,
                            (unsigned long long)(r->expected - got),
                            (unsigned long long)r->expected);
            break;
        }
        tick(run, r, t0, prev);
        sleep_until(now + POLL_SLEEP_NS);
    }
}

static void
add_checks(struct ed_run *run, struct ed_result *r)
{
    struct ed_checks *k = &r->checks;

    for (int q = 0; q < run->o->queues; q++) {
        for (int p = 0; queue_has_consumer(run, q) && p < run->nprod; p++) {
            struct track all;
            uint64_t exp = expected_of(run, p, q);

            track_init(&all);
            for (int i = 0; i < run->ncons; i++)
                if (run->cons[i].queue == q)
                    track_merge(&all, &run->cons[i].tr[p]);
            k->lost += track_missing(&all, exp);
            k->unexpected += track_beyond(&all, exp);
            k->duplicated += all.dups;
            k->out_of_order += all.out_of_order;
            k->redelivered += all.redelivered;
            track_fini(&all);
        }
    }
    for (int i = 0; i < run->ncons; i++) {
        k->corrupted += run->cons[i].corrupted;
        k->unexpected += run->cons[i].unexpected;
    }
}

static void
collect(struct ed_run *run, struct ed_result *r)
{
    struct hist h;

    for (int i = 0; i < run->nprod; i++) {
        r->published += ctr_get(&run->prod[i].published);
        r->confirmed += ctr_get(&run->prod[i].confirmed);
        r->nacked += ctr_get(&run->prod[i].nacked);
    }
    r->consumed = sum_received(run, false);
    hist_init(&h);
    for (int i = 0; i < run->ncons; i++)
        hist_add(&h, &run->cons[i].lat);
    perf_lat_of(&h, &r->lat);
    hist_init(&h);
    for (int i = 0; i < run->nprod; i++)
        hist_add(&h, &run->prod[i].clat);
    perf_lat_of(&h, &r->confirm_lat);
    add_checks(run, r);
}

static void
join(struct ed_run *run, struct ed_result *r, int nc, int np)
{
    for (int i = 0; i < np; i++) {
        pthread_join(run->prod[i].th, NULL);
        if (atomic_load(&run->prod[i].failed))
            ed_result_error(r, "producer %d: %s", i, run->prod[i].err);
    }
    atomic_store(&run->phase, EP_DONE);
    for (int i = 0; i < nc; i++) {
        pthread_join(run->cons[i].th, NULL);
        if (atomic_load(&run->cons[i].failed))
            ed_result_error(r, "consumer %d: %s", i, run->cons[i].err);
    }
}

/* RUN, STOP and the drain, once every thread is ready. */
static void
run_phases(struct ed_run *run, struct ed_result *r)
{
    struct snap prev;
    uint64_t t0;
    uint64_t stop;

    take_snap(run, &prev, false);
    t0 = prev.t;
    atomic_store_explicit(&run->phase, EP_RUN, memory_order_release);
    if (run->o->mode == ED_SWEEP)
        sweep_run(run, r, t0, &prev);
    else
        timed_run(run, r, t0, &prev);
    stop = perf_now_ns();
    r->consumed_run = sum_received(run, false);
    r->elapsed = (double)(stop - t0) / 1e9;
    atomic_store(&run->phase, EP_STOP);
    while (!producers_done(run))
        sleep_until(perf_now_ns() + POLL_SLEEP_NS);
    r->expected = expected_total(run);
    drain(run, r, t0, &prev);
    r->drain = (double)(perf_now_ns() - stop) / 1e9;
}

static void
run_init(struct ed_run *run, const struct ed_opts *o)
{
    memset(run, 0, sizeof(*run));
    run->o = o;
    econn_routes_init(&run->routes, o);
    atomic_store(&run->phase, EP_SETUP);
    run->nprod = o->producers;
    run->ncons = o->consumers;
    run->prod = xcalloc((size_t)WR_MAX(1, run->nprod), sizeof(*run->prod));
    run->cons = xcalloc((size_t)WR_MAX(1, run->ncons), sizeof(*run->cons));
    for (int i = 0; i < run->nprod; i++)
        eprod_init(&run->prod[i], run, i);
    for (int i = 0; i < run->ncons; i++)
        econs_init(&run->cons[i], run, i);
}

static void
run_free(struct ed_run *run)
{
    for (int i = 0; i < run->nprod; i++)
        eprod_fini(&run->prod[i]);
    for (int i = 0; i < run->ncons; i++)
        econs_fini(&run->cons[i]);
    free(run->prod);
    free(run->cons);
    econn_routes_fini(&run->routes);
}

/* The threads' part of a run; false when they could not all start. */
static bool
run_threads(struct ed_run *run, struct ed_result *r)
{
    int nc = 0;
    int np = 0;
    bool ok = start_threads(run, &nc, &np) && wait_ready(run);

    if (!ok) {
        atomic_store(&run->phase, EP_STOP);
        join(run, r, nc, np);
        if (r->nerrors == 0)
            ed_result_error(r, "threads did not start or get ready");
        return false;
    }
    run_phases(run, r);
    join(run, r, nc, np);
    collect(run, r);
    return true;
}

int
erun_messages(const struct ed_opts *o, struct ed_result *r)
{
    struct ed_run run;
    char err[512];
    amqp_connection_state_t setup;
    struct sysstat_thread *t0 = NULL;
    struct sysstat_thread *t1 = NULL;
    int n0;
    int n1;
    double cpu0;
    double broker0;
    int rc = WR_ERR;
    bool peak;

    run_init(&run, o);
    r->broker_rss_kb_start = sysstat_pid_rss_kb(o->broker_pid);
    note_rss(r, r->broker_rss_kb_start);
    peak = sysstat_pid_peak_reset(o->broker_pid);
    setup = econn_open(o, err, sizeof(err));
    if (setup == NULL || !econn_setup(setup, o, err, sizeof(err))) {
        ed_result_error(r, "setup: %s", err);
        goto out;
    }
    cpu0 = sysstat_self_cpu();
    broker0 = sysstat_pid_cpu(o->broker_pid);
    n0 = sysstat_threads(o->broker_pid, &t0);
    if (run_threads(&run, r))
        rc = WR_OK;
    r->tool_cpu = sysstat_self_cpu() - cpu0;
    r->broker_cpu =
        broker0 >= 0 ? sysstat_pid_cpu(o->broker_pid) - broker0 : -1;
    n1 = sysstat_threads(o->broker_pid, &t1);
    if (n0 > 0 && n1 > 0)
        r->nthreads = sysstat_threads_delta(t0, n0, t1, n1, &r->threads);
    r->broker_rss_kb_end = sysstat_pid_rss_kb(o->broker_pid);
    note_rss(r, r->broker_rss_kb_end);
    /* every moment of the run, not only the samples */
    if (peak)
        note_rss(r, sysstat_pid_peak_kb(o->broker_pid));
    if (!econn_teardown(setup, o, err, sizeof(err)))
        ed_result_error(r, "teardown: %s", err);
out: /* threads are joined; free everything */
    econn_close(setup);
    free(t0);
    free(t1);
    run_free(&run);
    return rc;
}
