/*
 * ereport.c: warren-everyday's live lines, human summary and JSON
 * summary. The JSON has warren-perf's shape (test/bench/perf/report.c:
 * rates, latency_us, checks, broker.cpu_us_per_msg, broker.threads, ...)
 * with "tool": "warren-everyday", so compare.py reads either; a sweep adds
 * "steps", one object per rate step.
 */
#include "test/bench/everyday/everyday.h"

#include <stdarg.h>
#include <stdlib.h>

FILE *ereport_out;

void
ed_result_init(struct ed_result *r, const struct ed_opts *o)
{
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->broker_cpu = -1;
    r->broker_rss_kb_start = -1;
    r->broker_rss_kb_end = -1;
    r->broker_rss_kb_max = -1;
}

void
ed_result_fini(struct ed_result *r)
{
    free(r->samples);
    free(r->threads);
    for (int i = 0; i < r->nsteps; i++)
        free(r->steps[i].threads);
    memset(r, 0, sizeof(*r));
}

void
ed_result_error(struct ed_result *r, const char *fmt, ...)
{
    va_list ap;

    if (r->nerrors == (int)WR_ARRAY_LEN(r->errors))
        return;
    va_start(ap, fmt);
    vsnprintf(r->errors[r->nerrors++], sizeof(r->errors[0]), fmt, ap);
    va_end(ap);
}

bool
ed_result_ok(const struct ed_result *r)
{
    const struct ed_checks *k = &r->checks;

    return r->nerrors == 0 && k->lost == 0 && k->duplicated == 0 &&
           k->corrupted == 0 && k->out_of_order == 0 && k->unexpected == 0 &&
           r->nacked == 0;
}

static double
per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* Deliveries, or publishes when nothing was delivered. */
static double
msgs_of(const struct ed_result *r)
{
    return (double)(r->consumed ? r->consumed : r->published);
}

void
ereport_sample(const struct ed_sample *s)
{
    fprintf(ereport_out,
            "%6.1fs  pub %8.0f/s  conf %8.0f/s  recv %8.0f/s  backlog %8llu"
            "  lat p50 %7.1f p99 %8.1f us  cpu tool %3.0f%%",
            s->t, s->publish_rate, s->confirm_rate, s->consume_rate,
            (unsigned long long)s->backlog, s->lat.p50, s->lat.p99,
            s->tool_cpu_pct);
    if (s->broker_cpu_pct >= 0)
        fprintf(ereport_out, " broker %3.0f%%  rss %ld MiB", s->broker_cpu_pct,
                s->broker_rss_kb / 1024);
    fputc('\n', ereport_out);
    fflush(ereport_out);
}

/* CPU seconds of the thread whose tid is the pid (Warren's event loop). */
static double
main_thread_cpu(const struct sysstat_thread *t, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (t[i].tid == (int)pid)
            return t[i].cpu_s;
    return -1;
}

void
ereport_step(const struct ed_sample *s, pid_t broker_pid)
{
    double msgs = s->consume_rate * s->seconds;
    double main_cpu = main_thread_cpu(s->threads, s->nthreads, broker_pid);

    fprintf(ereport_out,
            "step %8.0f msg/s: pub %8.0f/s  recv %8.0f/s  lat p50 %7.1f "
            "p99 %8.1f us  broker %3.0f%% (%.2f us/msg)",
            s->target_rate, s->publish_rate, s->consume_rate, s->lat.p50,
            s->lat.p99, s->broker_cpu_pct,
            per(s->broker_cpu_pct / 100 * s->seconds * 1e6, msgs));
    if (main_cpu > 0)
        fprintf(ereport_out, "  main thread %3.0f%% (%.2f us/msg)",
                main_cpu / s->seconds * 100, per(main_cpu * 1e6, msgs));
    if (s->nthreads > 0 && s->threads[0].tid != (int)broker_pid)
        fprintf(ereport_out, "  busiest %s %3.0f%%", s->threads[0].name,
                s->threads[0].cpu_s / s->seconds * 100);
    fprintf(ereport_out, "  tool %3.0f%%%s\n", s->tool_cpu_pct,
            s->lagging ? "  LAGGING" : "");
    fflush(ereport_out);
}

void
ereport_summary(const struct ed_result *r)
{
    const struct ed_checks *k = &r->checks;
    double msgs = msgs_of(r);

    fprintf(ereport_out, "--- %s summary (warren-everyday)\n",
            ed_mode_name(r->o->mode));
    fprintf(ereport_out,
            "published %llu in %.2f s (%.0f msg/s), confirmed %llu, nacked "
            "%llu\n",
            (unsigned long long)r->published, r->elapsed,
            per((double)r->published, r->elapsed),
            (unsigned long long)r->confirmed, (unsigned long long)r->nacked);
    fprintf(ereport_out,
            "consumed %llu (%.0f msg/s while publishing), drained in %.2f s\n",
            (unsigned long long)r->consumed,
            per((double)r->consumed_run, r->elapsed), r->drain);
    if (r->lat.count > 0)
        fprintf(ereport_out,
                "latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max "
                "%.1f\n",
                r->lat.p50, r->lat.p90, r->lat.p99, r->lat.p999, r->lat.max);
    if (r->confirm_lat.count > 0)
        fprintf(ereport_out, "confirm latency us: p50 %.1f  p99 %.1f\n",
                r->confirm_lat.p50, r->confirm_lat.p99);
    fprintf(
        ereport_out,
        "checks: lost %llu  duplicated %llu  corrupted %llu  "
        "out-of-order %llu  unexpected %llu  (redelivered %llu)\n",
        (unsigned long long)k->lost, (unsigned long long)k->duplicated,
        (unsigned long long)k->corrupted, (unsigned long long)k->out_of_order,
        (unsigned long long)k->unexpected, (unsigned long long)k->redelivered);
    fprintf(ereport_out, "cpu: tool %.2f s (%.2f us/msg)", r->tool_cpu,
            per(r->tool_cpu * 1e6, msgs));
    if (r->broker_cpu >= 0)
        fprintf(ereport_out, ", broker %.2f s (%.2f us/msg), rss %ld MiB max",
                r->broker_cpu, per(r->broker_cpu * 1e6, msgs),
                r->broker_rss_kb_max / 1024);
    fputc('\n', ereport_out);
    for (int i = 0; i < WR_MIN(r->nthreads, 4); i++)
        fprintf(ereport_out, "broker thread %d (%s): %.2f s (%.2f us/msg)\n",
                r->threads[i].tid, r->threads[i].name, r->threads[i].cpu_s,
                per(r->threads[i].cpu_s * 1e6, msgs));
    for (int i = 0; i < r->nerrors; i++)
        fprintf(ereport_out, "error: %s\n", r->errors[i]);
    fprintf(ereport_out, "%s\n", ed_result_ok(r) ? "OK" : "FAILED");
    fflush(ereport_out);
}

static json_t *
config_json(const struct ed_opts *o)
{
    json_t *c = json_object();
    json_t *rates = json_array();

    for (int i = 0; i < o->nrates; i++)
        json_array_append_new(rates, json_real(o->rates[i]));
    json_object_set_new(c, "host", json_string(o->host));
    json_object_set_new(c, "port", json_integer(o->port));
    json_object_set_new(c, "vhost", json_string(o->vhost));
    json_object_set_new(c, "producers", json_integer(o->producers));
    json_object_set_new(c, "consumers", json_integer(o->consumers));
    json_object_set_new(c, "queues", json_integer(o->queues));
    json_object_set_new(c, "size", json_integer((json_int_t)o->size));
    json_object_set_new(c, "duration", json_real(o->duration));
    json_object_set_new(c, "exchange_type",
                        json_string(ed_xtype_name(o->xtype)));
    json_object_set_new(c, "topic_bindings", json_integer(o->topic_bindings));
    json_object_set_new(c, "persistent", json_boolean(o->persistent));
    json_object_set_new(c, "confirm", json_integer(o->confirm));
    json_object_set_new(c, "ack_every", json_integer(o->ack_every));
    json_object_set_new(c, "prefetch", json_integer(o->prefetch));
    json_object_set_new(c, "rate", json_real(o->rate));
    json_object_set_new(c, "durable_queues", json_boolean(o->durable_queues));
    json_object_set_new(c, "rates", rates);
    json_object_set_new(c, "step", json_real(o->step));
    json_object_set_new(c, "settle", json_real(o->settle));
    return c;
}

static json_t *
checks_json(const struct ed_checks *k)
{
    return json_pack(
        "{sI sI sI sI sI sI}", "lost", (json_int_t)k->lost, "duplicated",
        (json_int_t)k->duplicated, "corrupted", (json_int_t)k->corrupted,
        "out_of_order", (json_int_t)k->out_of_order, "redelivered",
        (json_int_t)k->redelivered, "unexpected", (json_int_t)k->unexpected);
}

static json_t *
broker_json(const struct ed_result *r, double msgs)
{
    json_t *b = json_object();

    json_object_set_new(b, "pid", json_integer(r->o->broker_pid));
    if (r->broker_cpu >= 0) {
        json_object_set_new(b, "cpu_s", json_real(r->broker_cpu));
        json_object_set_new(b, "cpu_us_per_msg",
                            json_real(per(r->broker_cpu * 1e6, msgs)));
    }
    if (r->nthreads > 0)
        json_object_set_new(b, "threads",
                            sysstat_threads_json(r->threads, r->nthreads));
    if (r->broker_rss_kb_start >= 0) {
        json_object_set_new(b, "rss_kb_start",
                            json_integer(r->broker_rss_kb_start));
        json_object_set_new(b, "rss_kb_end",
                            json_integer(r->broker_rss_kb_end));
        json_object_set_new(b, "rss_kb_max",
                            json_integer(r->broker_rss_kb_max));
    }
    return b;
}

static json_t *
sample_json(const struct ed_sample *s)
{
    return json_pack(
        "{sf sf sf sf sf sI sf sf sf sf sI}", "t", s->t, "seconds", s->seconds,
        "publish_rate", s->publish_rate, "confirm_rate", s->confirm_rate,
        "consume_rate", s->consume_rate, "backlog", (json_int_t)s->backlog,
        "lat_p50_us", s->lat.p50, "lat_p99_us", s->lat.p99, "tool_cpu_pct",
        s->tool_cpu_pct, "broker_cpu_pct", s->broker_cpu_pct, "broker_rss_kb",
        (json_int_t)s->broker_rss_kb);
}

static json_t *
step_json(const struct ed_sample *s)
{
    json_t *j = sample_json(s);
    double msgs = s->consume_rate * s->seconds;

    json_object_set_new(j, "target_rate", json_real(s->target_rate));
    json_object_set_new(j, "lagging", json_boolean(s->lagging));
    json_object_set_new(j, "latency_us", kit_lat_json(&s->lat));
    json_object_set_new(
        j, "broker_cpu_us_per_msg",
        json_real(per(s->broker_cpu_pct / 100 * s->seconds * 1e6, msgs)));
    json_object_set_new(
        j, "tool_cpu_us_per_msg",
        json_real(per(s->tool_cpu_pct / 100 * s->seconds * 1e6, msgs)));
    json_object_set_new(j, "threads",
                        sysstat_threads_json(s->threads, s->nthreads));
    return j;
}

static void
messages_json(json_t *j, const struct ed_result *r)
{
    double total_t = r->elapsed + r->drain;
    json_t *samples = json_array();
    json_t *steps = json_array();

    json_object_set_new(j, "elapsed_s", json_real(r->elapsed));
    json_object_set_new(j, "drain_s", json_real(r->drain));
    json_object_set_new(j, "published", json_integer((json_int_t)r->published));
    json_object_set_new(j, "publish_rate",
                        json_real(per((double)r->published, r->elapsed)));
    json_object_set_new(j, "confirmed", json_integer((json_int_t)r->confirmed));
    json_object_set_new(j, "confirm_rate",
                        json_real(per((double)r->confirmed, r->elapsed)));
    json_object_set_new(j, "nacked", json_integer((json_int_t)r->nacked));
    json_object_set_new(j, "returned", json_integer(0));
    json_object_set_new(j, "expected", json_integer((json_int_t)r->expected));
    json_object_set_new(j, "consumed", json_integer((json_int_t)r->consumed));
    json_object_set_new(j, "consumed_in_window",
                        json_integer((json_int_t)r->consumed_run));
    json_object_set_new(j, "consume_rate",
                        json_real(per((double)r->consumed_run, r->elapsed)));
    json_object_set_new(j, "consume_rate_total",
                        json_real(per((double)r->consumed, total_t)));
    json_object_set_new(
        j, "bytes_rate",
        json_real(
            per((double)r->consumed_run * (double)r->o->size, r->elapsed)));
    json_object_set_new(j, "latency_us", kit_lat_json(&r->lat));
    json_object_set_new(j, "confirm_latency_us", kit_lat_json(&r->confirm_lat));
    json_object_set_new(j, "checks", checks_json(&r->checks));
    for (int i = 0; i < r->nsamples; i++)
        json_array_append_new(samples, sample_json(&r->samples[i]));
    json_object_set_new(j, "samples", samples);
    for (int i = 0; i < r->nsteps; i++)
        json_array_append_new(steps, step_json(&r->steps[i]));
    json_object_set_new(j, "steps", steps);
}

int
ereport_json(const struct ed_result *r)
{
    const struct ed_opts *o = r->o;
    json_t *j = json_object();
    json_t *errors = json_array();
    double msgs = msgs_of(r);
    int rc;

    json_object_set_new(j, "tool", json_string("warren-everyday"));
    json_object_set_new(j, "version", json_string(WARREN_VERSION));
    json_object_set_new(j, "mode", json_string(ed_mode_name(o->mode)));
    json_object_set_new(j, "config", config_json(o));
    json_object_set_new(j, "ok", json_boolean(ed_result_ok(r)));
    messages_json(j, r);
    json_object_set_new(j, "tool_cpu_s", json_real(r->tool_cpu));
    json_object_set_new(j, "tool_cpu_us_per_msg",
                        json_real(per(r->tool_cpu * 1e6, msgs)));
    json_object_set_new(j, "broker", broker_json(r, msgs));
    for (int i = 0; i < r->nerrors; i++)
        json_array_append_new(
            errors, kit_ascii_json(r->errors[i], sizeof(r->errors[i])));
    json_object_set_new(j, "errors", errors);
    if (strcmp(o->json_path, "-") == 0) {
        rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        fputc('\n', stdout);
    } else {
        rc = json_dump_file(j, o->json_path,
                            JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    }
    json_decref(j);
    return rc == 0 ? WR_OK : WR_ERR;
}
