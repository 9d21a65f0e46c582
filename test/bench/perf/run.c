/*
 * run.c: throughput, latency and backlog runs; the main thread's side.
 *
 * A run goes through the phases of enum run_phase:
 *
 *   SETUP  a setup connection declares the topology (topo.c); producer
 *          and consumer threads connect, consumers start consuming, and
 *          the main thread waits until every one is ready
 *   RUN    t0: producers publish until t0 + duration (throughput,
 *          latency) or until they have published --count messages
 *          (backlog); the main thread prints a line per second
 *   STOP   producers flush, wait for their confirms and close; then the
 *          main thread knows exactly what each queue must deliver, and
 *          waits until the consumers have it all, or until nothing new
 *          arrived for --drain-timeout seconds
 *   DONE   consumers ack and close; the main thread merges what they saw
 *          per (producer, queue) stream and counts lost, duplicated,
 *          corrupted, out-of-order and unexpected messages
 *
 * Backlog mode publishes first with no consumer and starts the consumers
 * only when publishing is over, recording the publish and then the
 * consume rate (and the broker's CPU per message) over each tenth of the
 * backlog, so that a cost growing with the backlog shows.
 */
#include "test/bench/perf/run.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SEC_NS        1000000000ull
#define READY_NS      (60ull * SEC_NS)
#define POLL_SLEEP_NS (5ull * 1000000ull)

/* Totals at one instant, for per-second rates. */
struct snap {
    uint64_t t;
    uint64_t published;
    uint64_t confirmed;
    uint64_t received;
    uint64_t unique;
    double tool_cpu;
    double broker_cpu;
    struct hist lat;
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
sum_published(struct run *run)
{
    uint64_t n = 0;

    for (int i = 0; i < run->nprod; i++)
        n += ctr_get(&run->prod[i].published);
    return n;
}

static uint64_t
sum_received(struct run *run, bool unique)
{
    uint64_t n = 0;

    for (int i = 0; i < run->ncons; i++)
        n += ctr_get(unique ? &run->cons[i].unique : &run->cons[i].received);
    return n;
}

static void
take_snap(struct run *run, struct snap *s)
{
    s->t = perf_now_ns();
    s->published = sum_published(run);
    s->confirmed = 0;
    for (int i = 0; i < run->nprod; i++)
        s->confirmed += ctr_get(&run->prod[i].confirmed);
    s->received = sum_received(run, false);
    s->unique = sum_received(run, true);
    s->tool_cpu = sysstat_self_cpu();
    s->broker_cpu = sysstat_pid_cpu(run->o->broker_pid);
    hist_init(&s->lat);
    for (int i = 0; i < run->ncons; i++)
        hist_add(&s->lat, &run->cons[i].lat);
}

/* Deliveries per publish while publishing (fanout reaches every queue). */
static uint64_t
fanout_factor(const struct perf_opts *o)
{
    return o->xtype == XT_FANOUT ? (uint64_t)o->queues : 1;
}

static void
emit_sample(struct run *run, struct perf_result *r, const struct snap *a,
            const struct snap *b)
{
    static struct hist win;
    double dt = (double)(b->t - a->t) / 1e9;
    uint64_t routed = b->published * fanout_factor(run->o);
    struct perf_sample s;

    if (dt <= 0)
        return;
    hist_sub(&win, (struct hist *)&b->lat, (struct hist *)&a->lat);
    memset(&s, 0, sizeof(s));
    s.t = (double)(b->t - run->t0) / 1e9;
    s.publish_rate = (double)(b->published - a->published) / dt;
    s.confirm_rate = (double)(b->confirmed - a->confirmed) / dt;
    s.consume_rate = (double)(b->received - a->received) / dt;
    s.backlog = routed > b->received ? routed - b->received : 0;
    s.lat_p50_us = (double)hist_quantile(&win, 0.5) / 1000.0;
    s.lat_p99_us = (double)hist_quantile(&win, 0.99) / 1000.0;
    s.tool_cpu_pct = (b->tool_cpu - a->tool_cpu) / dt * 100.0;
    s.broker_cpu_pct = a->broker_cpu >= 0 && b->broker_cpu >= 0
                           ? (b->broker_cpu - a->broker_cpu) / dt * 100.0
                           : -1;
    s.broker_rss_kb = sysstat_pid_rss_kb(run->o->broker_pid);
    if (s.broker_rss_kb > r->broker_rss_kb_max)
        r->broker_rss_kb_max = s.broker_rss_kb;
    if (r->nsamples == r->cap_samples) {
        r->cap_samples = r->cap_samples ? r->cap_samples * 2 : 64;
        r->samples =
            xrealloc(r->samples, (size_t)r->cap_samples * sizeof(*r->samples));
    }
    r->samples[r->nsamples++] = s;
    if (!run->o->quiet)
        report_sample(&s);
}

/* Live lines: prints one when a second has passed since *prev. */
static void
tick(struct run *run, struct perf_result *r, struct snap *prev,
     struct snap *cur)
{
    if (perf_now_ns() < prev->t + SEC_NS)
        return;
    take_snap(run, cur);
    emit_sample(run, r, prev, cur);
    *prev = *cur;
}

static void
start_threads(struct run *run, bool producers, bool consumers)
{
    if (consumers) {
        run->cons_started = true;
        for (int i = 0; i < run->ncons; i++)
            if (pthread_create(&run->cons[i].th, NULL, cons_main,
                               &run->cons[i]) != 0)
                WR_ASSERT(!"pthread_create");
    }
    if (producers) {
        for (int i = 0; i < run->nprod; i++)
            if (pthread_create(&run->prod[i].th, NULL, prod_main,
                               &run->prod[i]) != 0)
                WR_ASSERT(!"pthread_create");
    }
}

/* Waits until the threads started are ready. Returns false when one
 * failed or READY_NS passed. */
static bool
wait_ready(struct run *run, bool producers, bool consumers)
{
    uint64_t deadline = perf_now_ns() + READY_NS;

    while (perf_now_ns() < deadline) {
        bool all = true;

        for (int i = 0; producers && i < run->nprod; i++) {
            if (atomic_load(&run->prod[i].failed))
                return false;
            all = all && atomic_load(&run->prod[i].ready);
        }
        for (int i = 0; consumers && i < run->ncons; i++) {
            if (atomic_load(&run->cons[i].failed))
                return false;
            all = all && atomic_load(&run->cons[i].ready);
        }
        if (all)
            return true;
        sleep_until(perf_now_ns() + 1000000);
    }
    return false;
}

static bool
any_consumer_failed(struct run *run)
{
    for (int i = 0; i < run->ncons; i++)
        if (atomic_load(&run->cons[i].failed))
            return true;
    return false;
}

static bool
producers_done(struct run *run)
{
    for (int i = 0; i < run->nprod; i++)
        if (!atomic_load(&run->prod[i].done))
            return false;
    return true;
}

static void
join_producers(struct run *run, struct perf_result *r)
{
    for (int i = 0; i < run->nprod; i++) {
        struct producer *p = &run->prod[i];

        pthread_join(p->th, NULL);
        if (atomic_load(&p->failed))
            perf_result_error(r, "producer %d: %s", i, p->c.err);
    }
}

static void
join_consumers(struct run *run, struct perf_result *r)
{
    for (int i = 0; run->cons_started && i < run->ncons; i++) {
        struct consumer *cs = &run->cons[i];

        pthread_join(cs->th, NULL);
        if (atomic_load(&cs->failed))
            perf_result_error(r, "consumer %d: %s", i, cs->c.err);
    }
}

/* What producer p routed to queue q. */
static uint64_t
expected_of(struct run *run, int p, int q)
{
    const struct perf_opts *o = run->o;

    if (o->xtype == XT_FANOUT)
        return run->prod[p].seq[o->queues];
    return run->prod[p].seq[q];
}

static bool
queue_has_consumer(struct run *run, int q)
{
    for (int i = 0; i < run->ncons; i++)
        if (run->cons[i].queue == q)
            return true;
    return false;
}

/* Deliveries the consumers must receive in all. */
static uint64_t
expected_total(struct run *run)
{
    uint64_t n = 0;

    for (int q = 0; q < run->o->queues; q++) {
        if (!queue_has_consumer(run, q))
            continue;
        for (int p = 0; p < run->nprod; p++)
            n += expected_of(run, p, q);
    }
    return n;
}

/*
 * Waits until the consumers hold every expected message, nothing new came
 * for drain_timeout, or one failed. Keeps printing live lines.
 */
static void
drain(struct run *run, struct perf_result *r, struct snap *prev,
      uint64_t expected, void (*step)(struct run *, struct perf_result *))
{
    struct snap cur;
    uint64_t last = sum_received(run, true);
    uint64_t last_t = perf_now_ns();
    uint64_t quiet_ns = (uint64_t)(run->o->drain_timeout * 1e9);

    while (!any_consumer_failed(run)) {
        uint64_t got = sum_received(run, true);
        uint64_t now = perf_now_ns();

        if (step != NULL)
            step(run, r);
        if (got >= expected)
            break;
        if (got != last) {
            last = got;
            last_t = now;
        } else if (now - last_t > quiet_ns) {
            perf_result_error(r,
                              "no delivery for %.0f s: stopped waiting with "
                              "%llu of %llu messages not received (they "
                              "count as lost)",
                              run->o->drain_timeout,
                              (unsigned long long)(expected - got),
                              (unsigned long long)expected);
            break;
        }
        tick(run, r, prev, &cur);
        sleep_until(now + POLL_SLEEP_NS);
    }
}

static void
add_checks(struct run *run, struct perf_result *r)
{
    struct perf_checks *k = &r->checks;

    for (int q = 0; q < run->o->queues; q++) {
        if (!queue_has_consumer(run, q))
            continue;
        for (int p = 0; p < run->nprod; p++) {
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
collect(struct run *run, struct perf_result *r)
{
    struct hist h;

    for (int i = 0; i < run->nprod; i++) {
        struct producer *p = &run->prod[i];

        r->published += ctr_get(&p->published);
        r->confirmed += ctr_get(&p->confirmed);
        r->nacked += ctr_get(&p->nacked);
        r->returned += ctr_get(&p->returned);
    }
    for (int i = 0; i < run->ncons; i++) {
        r->consumed += ctr_get(&run->cons[i].received);
        r->body_bytes += ctr_get(&run->cons[i].bytes);
    }
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
timed_run(struct run *run, struct perf_result *r)
{
    struct snap prev;
    struct snap cur;
    uint64_t stop = 0;

    take_snap(run, &prev);
    for (;;) {
        uint64_t now = perf_now_ns();

        /* The time is up, ^C, or nothing more can happen: every
         * producer ended (failed) or a consumer failed. */
        if (stop == 0 &&
            (now >= run->deadline || atomic_load(&perf_interrupted) ||
             producers_done(run) || any_consumer_failed(run))) {
            stop = now;
            r->consumed_run = sum_received(run, false);
            atomic_store(&run->phase, PH_STOP);
        }
        if (stop != 0 && producers_done(run))
            break;
        tick(run, r, &prev, &cur);
        sleep_until(WR_MIN(stop ? now + POLL_SLEEP_NS : run->deadline,
                           prev.t + SEC_NS));
    }
    join_producers(run, r);
    r->elapsed = (double)(stop - run->t0) / 1e9;
    r->expected = expected_total(run);
    drain(run, r, &prev, r->expected, NULL);
    r->drain = (double)(perf_now_ns() - stop) / 1e9;
}

/* Backlog mode: one tenth of the way at a time. */
struct steps {
    struct perf_decile *out;
    int *n;
    uint64_t total;
    uint64_t last_at;
    uint64_t last_t;
    double last_broker;
    double last_tool;
};

static struct steps g_steps;

static void
steps_begin(struct perf_decile *out, int *n, uint64_t total)
{
    g_steps.out = out;
    g_steps.n = n;
    g_steps.total = total;
    g_steps.last_at = 0;
    g_steps.last_t = perf_now_ns();
    g_steps.last_broker = -1;
    g_steps.last_tool = sysstat_self_cpu();
    *n = 0;
}

static void
steps_note(struct run *run, uint64_t at)
{
    struct steps *s = &g_steps;

    if (s->last_broker < 0)
        s->last_broker = sysstat_pid_cpu(run->o->broker_pid);
    while (*s->n < 10 && at >= s->total * (uint64_t)(*s->n + 1) / 10) {
        uint64_t now = perf_now_ns();
        double broker = sysstat_pid_cpu(run->o->broker_pid);
        double tool = sysstat_self_cpu();
        struct perf_decile *d = &s->out[(*s->n)++];
        double msgs = (double)(at - s->last_at);

        d->at = at;
        d->rate = msgs / ((double)(now - s->last_t) / 1e9);
        d->broker_cpu_us_per_msg = broker >= 0 && msgs > 0
                                       ? (broker - s->last_broker) * 1e6 / msgs
                                       : -1;
        d->tool_cpu_us_per_msg =
            msgs > 0 ? (tool - s->last_tool) * 1e6 / msgs : 0;
        s->last_at = at;
        s->last_t = now;
        s->last_broker = broker;
        s->last_tool = tool;
    }
}

static void
step_published(struct run *run, struct perf_result *r)
{
    (void)r;
    steps_note(run, sum_published(run));
}

static void
step_consumed(struct run *run, struct perf_result *r)
{
    (void)r;
    steps_note(run, sum_received(run, true));
}

static void
backlog_run(struct run *run, struct perf_result *r)
{
    struct snap prev;
    struct snap cur;
    uint64_t stop;

    take_snap(run, &prev);
    steps_begin(r->pub_steps, &r->npub_steps, (uint64_t)run->o->count);
    while (!producers_done(run)) {
        if (atomic_load(&perf_interrupted))
            atomic_store(&run->phase, PH_STOP);
        step_published(run, r);
        tick(run, r, &prev, &cur);
        sleep_until(perf_now_ns() + POLL_SLEEP_NS);
    }
    step_published(run, r);
    join_producers(run, r);
    stop = perf_now_ns();
    r->elapsed = (double)(stop - run->t0) / 1e9;
    r->expected = expected_total(run);
    if (r->nerrors > 0)
        return;
    start_threads(run, false, true);
    if (!wait_ready(run, false, true)) {
        perf_result_error(r, "consumers did not start");
        return;
    }
    steps_begin(r->con_steps, &r->ncon_steps, r->expected);
    drain(run, r, &prev, r->expected, step_consumed);
    r->drain = (double)(perf_now_ns() - stop) / 1e9;
}

static void
run_free(struct run *run)
{
    for (int i = 0; i < run->nprod; i++)
        prod_fini(&run->prod[i]);
    for (int i = 0; i < run->ncons; i++)
        cons_fini(&run->cons[i]);
    free(run->prod);
    free(run->cons);
    free(run->threads0);
}

static void
run_init(struct run *run, const struct perf_opts *o)
{
    bool backlog = o->mode == MODE_BACKLOG;

    memset(run, 0, sizeof(*run));
    run->o = o;
    run->t = (struct perf_target){o->host, o->port, o->user, o->pass, o->vhost};
    atomic_store(&run->phase, PH_SETUP);
    run->deadline = UINT64_MAX;
    run->nprod = o->producers;
    run->ncons = o->consumers;
    run->prod = xcalloc((size_t)WR_MAX(1, run->nprod), sizeof(*run->prod));
    run->cons = xcalloc((size_t)WR_MAX(1, run->ncons), sizeof(*run->cons));
    for (int i = 0; i < run->nprod; i++) {
        uint64_t limit = 0;

        if (backlog) {
            limit = (uint64_t)o->count / (uint64_t)run->nprod;
            if (i == 0)
                limit += (uint64_t)o->count % (uint64_t)run->nprod;
        }
        prod_init(&run->prod[i], run, i, limit);
    }
    for (int i = 0; i < run->ncons; i++)
        cons_init(&run->cons[i], run, i);
}

/* Runs the phases after SETUP; returns false when setup failed. */
static bool
run_phases(struct run *run, struct perf_result *r, double *cpu0,
           double *broker0)
{
    bool backlog = run->o->mode == MODE_BACKLOG;

    start_threads(run, true, !backlog);
    if (!wait_ready(run, true, !backlog)) {
        atomic_store(&run->phase, PH_DONE);
        join_producers(run, r);
        join_consumers(run, r);
        if (r->nerrors == 0)
            perf_result_error(r, "threads did not get ready in 60 s");
        return false;
    }
    *cpu0 = sysstat_self_cpu();
    *broker0 = sysstat_pid_cpu(run->o->broker_pid);
    run->nthreads0 = sysstat_threads(run->o->broker_pid, &run->threads0);
    run->t0 = perf_now_ns();
    if (!backlog)
        run->deadline = run->t0 + (uint64_t)(run->o->duration * 1e9);
    atomic_store_explicit(&run->phase, PH_RUN, memory_order_release);
    if (backlog)
        backlog_run(run, r);
    else
        timed_run(run, r);
    atomic_store(&run->phase, PH_DONE);
    join_consumers(run, r);
    return true;
}

/* The CPU of each of the broker's threads since t0. */
static void
broker_threads(struct run *run, struct perf_result *r)
{
    struct sysstat_thread *now;
    int n = sysstat_threads(run->o->broker_pid, &now);

    if (run->nthreads0 > 0 && n > 0)
        r->nbroker_threads = sysstat_threads_delta(
            run->threads0, run->nthreads0, now, n, &r->broker_threads);
    free(now);
}

int
run_messages(const struct perf_opts *o, struct perf_result *r)
{
    struct run run;
    struct pconn setup;
    double cpu0 = 0;
    double broker0 = -1;
    double broker1;
    int rc = WR_ERR;
    bool peak;

    run_init(&run, o);
    pconn_init(&setup);
    r->broker_rss_kb_start = sysstat_pid_rss_kb(o->broker_pid);
    r->broker_rss_kb_max = r->broker_rss_kb_start;
    peak = sysstat_pid_peak_reset(o->broker_pid);
    if (pconn_open(&setup, &run.t) != WR_OK || topo_setup(&setup, o) != WR_OK) {
        perf_result_error(r, "setup: %s", setup.err);
        goto out;
    }
    if (run_phases(&run, r, &cpu0, &broker0)) {
        collect(&run, r);
        rc = WR_OK;
    }
    r->tool_cpu = sysstat_self_cpu() - cpu0;
    broker1 = sysstat_pid_cpu(o->broker_pid);
    r->broker_cpu = broker0 >= 0 && broker1 >= 0 ? broker1 - broker0 : -1;
    broker_threads(&run, r);
    r->broker_rss_kb_end = sysstat_pid_rss_kb(o->broker_pid);
    if (r->broker_rss_kb_end > r->broker_rss_kb_max)
        r->broker_rss_kb_max = r->broker_rss_kb_end;
    /* every moment of the run, not only the samples */
    if (peak)
        r->broker_rss_kb_max =
            WR_MAX(r->broker_rss_kb_max, sysstat_pid_peak_kb(o->broker_pid));
    if (topo_teardown(&setup, o) != WR_OK)
        perf_result_error(r, "teardown: %s", setup.err);
    else
        (void)pconn_close(&setup, perf_now_ns() + 10 * SEC_NS);
out: /* threads are joined; free everything */
    pconn_fini(&setup);
    run_free(&run);
    return rc;
}
