/*
 * report.c: what warren-perf prints: a live line per second, a human
 * summary at the end, and the JSON summary (jansson) that scripts read.
 *
 * Rates: publish_rate and consume_rate count what happened during the
 * publishing window (duration), consume_rate_total what the consumers
 * got until drained. "Per message" costs divide by the deliveries (or by
 * the publishes when nothing was consumed), so with fanout to 10 queues a
 * message is one delivery.
 */
#include "test/bench/perf/perf.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>

FILE *report_out;

void
perf_result_init(struct perf_result *r, const struct perf_opts *o)
{
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->broker_cpu = -1;
    r->broker_rss_kb_start = -1;
    r->broker_rss_kb_end = -1;
    r->broker_rss_kb_max = -1;
    r->mem_per_item = -1;
}

void
perf_result_fini(struct perf_result *r)
{
    free(r->samples);
    r->samples = NULL;
    free(r->broker_threads);
    r->broker_threads = NULL;
}

void
perf_result_error(struct perf_result *r, const char *fmt, ...)
{
    va_list ap;

    if (r->nerrors == (int)WR_ARRAY_LEN(r->errors))
        return;
    va_start(ap, fmt);
    vsnprintf(r->errors[r->nerrors++], sizeof(r->errors[0]), fmt, ap);
    va_end(ap);
}

bool
perf_result_ok(const struct perf_result *r)
{
    const struct perf_checks *k = &r->checks;

    return r->nerrors == 0 && k->lost == 0 && k->duplicated == 0 &&
           k->corrupted == 0 && k->out_of_order == 0 && k->unexpected == 0 &&
           r->nacked == 0;
}

static double
msgs_of(const struct perf_result *r)
{
    if (r->o->mode == MODE_CONNECTIONS || r->o->mode == MODE_QUEUES)
        return (double)r->count;
    return (double)(r->consumed ? r->consumed : r->published);
}

static double
per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

void
report_sample(const struct perf_sample *s)
{
    fprintf(report_out,
            "%6.1fs  pub %9.0f/s  conf %9.0f/s  recv %9.0f/s  backlog %9llu"
            "  lat p50 %7.1f p99 %8.1f us  cpu tool %3.0f%%",
            s->t, s->publish_rate, s->confirm_rate, s->consume_rate,
            (unsigned long long)s->backlog, s->lat_p50_us, s->lat_p99_us,
            s->tool_cpu_pct);
    if (s->broker_cpu_pct >= 0)
        fprintf(report_out, " broker %3.0f%%  rss %ld MiB", s->broker_cpu_pct,
                s->broker_rss_kb / 1024);
    fputc('\n', report_out);
    fflush(report_out);
}

static void
summary_messages(const struct perf_result *r)
{
    const struct perf_checks *k = &r->checks;
    double msgs = msgs_of(r);

    fprintf(report_out,
            "published %llu in %.2f s (%.0f msg/s), confirmed %llu, nacked "
            "%llu, returned %llu\n",
            (unsigned long long)r->published, r->elapsed,
            per((double)r->published, r->elapsed),
            (unsigned long long)r->confirmed, (unsigned long long)r->nacked,
            (unsigned long long)r->returned);
    fprintf(report_out,
            "consumed %llu (%.0f msg/s while publishing, %.1f MB/s), "
            "drained in %.2f s\n",
            (unsigned long long)r->consumed,
            per((double)r->consumed_run, r->elapsed),
            per((double)r->consumed_run * (double)r->o->size, r->elapsed) / 1e6,
            r->drain);
    if (r->lat.count > 0)
        fprintf(report_out,
                "latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max "
                "%.1f\n",
                r->lat.p50, r->lat.p90, r->lat.p99, r->lat.p999, r->lat.max);
    if (r->confirm_lat.count > 0)
        fprintf(report_out, "confirm latency us: p50 %.1f  p99 %.1f\n",
                r->confirm_lat.p50, r->confirm_lat.p99);
    fprintf(
        report_out,
        "checks: lost %llu  duplicated %llu  corrupted %llu  "
        "out-of-order %llu  unexpected %llu  (redelivered %llu)\n",
        (unsigned long long)k->lost, (unsigned long long)k->duplicated,
        (unsigned long long)k->corrupted, (unsigned long long)k->out_of_order,
        (unsigned long long)k->unexpected, (unsigned long long)k->redelivered);
    for (int i = 0; i < r->npub_steps; i++)
        fprintf(report_out,
                "backlog %9llu: publish %9.0f msg/s  broker %.2f "
                "us/msg\n",
                (unsigned long long)r->pub_steps[i].at, r->pub_steps[i].rate,
                r->pub_steps[i].broker_cpu_us_per_msg);
    for (int i = 0; i < r->ncon_steps; i++)
        fprintf(report_out,
                "drained %9llu: consume %9.0f msg/s  broker %.2f "
                "us/msg\n",
                (unsigned long long)r->con_steps[i].at, r->con_steps[i].rate,
                r->con_steps[i].broker_cpu_us_per_msg);
    fprintf(report_out, "cpu: tool %.2f s (%.2f us/msg)", r->tool_cpu,
            per(r->tool_cpu * 1e6, msgs));
    if (r->broker_cpu >= 0)
        fprintf(report_out, ", broker %.2f s (%.2f us/msg), rss %ld MiB max",
                r->broker_cpu, per(r->broker_cpu * 1e6, msgs),
                r->broker_rss_kb_max / 1024);
    fputc('\n', report_out);
}

void
report_summary(const struct perf_result *r)
{
    const struct perf_opts *o = r->o;

    fprintf(report_out, "--- %s summary\n", perf_mode_name(o->mode));
    if (o->mode == MODE_CONNECTIONS || o->mode == MODE_QUEUES) {
        fprintf(report_out, "%s %ld: %.0f/s, %s %.0f/s",
                o->mode == MODE_QUEUES ? "declared" : "opened", r->count,
                r->open_rate, o->mode == MODE_QUEUES ? "deleted" : "closed",
                r->close_rate);
        if (r->mem_per_item >= 0)
            fprintf(report_out, ", broker memory %.0f bytes each",
                    r->mem_per_item);
        fputc('\n', report_out);
    } else {
        summary_messages(r);
    }
    for (int i = 0; i < r->nerrors; i++)
        fprintf(report_out, "error: %s\n", r->errors[i]);
    fprintf(report_out, "%s\n", perf_result_ok(r) ? "OK" : "FAILED");
    fflush(report_out);
}

static json_t *
config_json(const struct perf_opts *o)
{
    json_t *c = json_object();

    json_object_set_new(c, "host", json_string(o->host));
    json_object_set_new(c, "port", json_string(o->port));
    json_object_set_new(c, "vhost", json_string(o->vhost));
    json_object_set_new(c, "producers", json_integer(o->producers));
    json_object_set_new(c, "consumers", json_integer(o->consumers));
    json_object_set_new(c, "queues", json_integer(o->queues));
    json_object_set_new(c, "size", json_integer((json_int_t)o->size));
    json_object_set_new(c, "duration", json_real(o->duration));
    json_object_set_new(c, "exchange_type",
                        json_string(perf_xtype_name(o->xtype)));
    json_object_set_new(c, "topic_bindings", json_integer(o->topic_bindings));
    json_object_set_new(c, "persistent", json_boolean(o->persistent));
    json_object_set_new(c, "confirm", json_integer(o->confirm));
    json_object_set_new(c, "multi_ack_every", json_integer(o->multi_ack));
    json_object_set_new(c, "prefetch", json_integer(o->prefetch));
    json_object_set_new(c, "rate", json_real(o->rate));
    json_object_set_new(c, "durable_queues", json_boolean(o->durable_queues));
    json_object_set_new(c, "predeclared", json_boolean(o->predeclared));
    json_object_set_new(c, "count", json_integer(o->count));
    json_object_set_new(c, "hold", json_real(o->hold));
    json_object_set_new(c, "threads", json_integer(o->threads));
    return c;
}

static json_t *
checks_json(const struct perf_checks *k)
{
    return json_pack(
        "{sI sI sI sI sI sI}", "lost", (json_int_t)k->lost, "duplicated",
        (json_int_t)k->duplicated, "corrupted", (json_int_t)k->corrupted,
        "out_of_order", (json_int_t)k->out_of_order, "redelivered",
        (json_int_t)k->redelivered, "unexpected", (json_int_t)k->unexpected);
}

static json_t *
broker_json(const struct perf_result *r, double msgs)
{
    json_t *b = json_object();

    json_object_set_new(b, "pid", json_integer(r->o->broker_pid));
    if (r->broker_cpu >= 0) {
        json_object_set_new(b, "cpu_s", json_real(r->broker_cpu));
        json_object_set_new(b, "cpu_us_per_msg",
                            json_real(per(r->broker_cpu * 1e6, msgs)));
    }
    if (r->nbroker_threads > 0)
        json_object_set_new(
            b, "threads",
            sysstat_threads_json(r->broker_threads, r->nbroker_threads));
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
samples_json(const struct perf_result *r)
{
    json_t *a = json_array();

    for (int i = 0; i < r->nsamples; i++) {
        const struct perf_sample *s = &r->samples[i];

        json_array_append_new(
            a, json_pack("{sf sf sf sf sI sf sf sf sf sI}", "t", s->t,
                         "publish_rate", s->publish_rate, "confirm_rate",
                         s->confirm_rate, "consume_rate", s->consume_rate,
                         "backlog", (json_int_t)s->backlog, "lat_p50_us",
                         s->lat_p50_us, "lat_p99_us", s->lat_p99_us,
                         "tool_cpu_pct", s->tool_cpu_pct, "broker_cpu_pct",
                         s->broker_cpu_pct, "broker_rss_kb",
                         (json_int_t)s->broker_rss_kb));
    }
    return a;
}

static json_t *
steps_json(const struct perf_decile *d, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{sI sf sf sf}", "at", (json_int_t)d[i].at, "rate",
                         d[i].rate, "broker_cpu_us_per_msg",
                         d[i].broker_cpu_us_per_msg, "tool_cpu_us_per_msg",
                         d[i].tool_cpu_us_per_msg));
    return a;
}

static void
messages_json(json_t *j, const struct perf_result *r)
{
    double total_t = r->elapsed + r->drain;

    json_object_set_new(j, "elapsed_s", json_real(r->elapsed));
    json_object_set_new(j, "drain_s", json_real(r->drain));
    json_object_set_new(j, "published", json_integer((json_int_t)r->published));
    json_object_set_new(j, "publish_rate",
                        json_real(per((double)r->published, r->elapsed)));
    json_object_set_new(j, "confirmed", json_integer((json_int_t)r->confirmed));
    json_object_set_new(j, "confirm_rate",
                        json_real(per((double)r->confirmed, r->elapsed)));
    json_object_set_new(j, "nacked", json_integer((json_int_t)r->nacked));
    json_object_set_new(j, "returned", json_integer((json_int_t)r->returned));
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
    json_object_set_new(j, "samples", samples_json(r));
    if (r->o->mode == MODE_BACKLOG)
        json_object_set_new(j, "backlog",
                            json_pack("{so so}", "publish",
                                      steps_json(r->pub_steps, r->npub_steps),
                                      "consume",
                                      steps_json(r->con_steps, r->ncon_steps)));
}

int
report_json(const struct perf_result *r)
{
    const struct perf_opts *o = r->o;
    json_t *j = json_object();
    json_t *errors = json_array();
    double msgs = msgs_of(r);
    int rc;

    json_object_set_new(j, "tool", json_string("warren-perf"));
    json_object_set_new(j, "version", json_string(WARREN_VERSION));
    json_object_set_new(j, "mode", json_string(perf_mode_name(o->mode)));
    json_object_set_new(j, "config", config_json(o));
    json_object_set_new(j, "ok", json_boolean(perf_result_ok(r)));
    if (o->mode == MODE_CONNECTIONS || o->mode == MODE_QUEUES) {
        json_object_set_new(j, "count", json_integer(r->count));
        json_object_set_new(j, "elapsed_s", json_real(r->elapsed));
        json_object_set_new(j, "open_rate", json_real(r->open_rate));
        json_object_set_new(j, "close_rate", json_real(r->close_rate));
        if (r->mem_per_item >= 0)
            json_object_set_new(j, "broker_bytes_per_item",
                                json_real(r->mem_per_item));
    } else {
        messages_json(j, r);
    }
    json_object_set_new(j, "tool_cpu_s", json_real(r->tool_cpu));
    json_object_set_new(j, "tool_cpu_us_per_msg",
                        json_real(per(r->tool_cpu * 1e6, msgs)));
    json_object_set_new(j, "broker", broker_json(r, msgs));
    for (int i = 0; i < r->nerrors; i++)
        json_array_append_new(
            errors, kit_ascii_json(r->errors[i], sizeof(r->errors[i])));
    json_object_set_new(j, "errors", errors);
    if (strcmp(o->json_path, "-") == 0)
        rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    else
        rc = json_dump_file(j, o->json_path,
                            JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (strcmp(o->json_path, "-") == 0)
        fputc('\n', stdout);
    json_decref(j);
    return rc == 0 ? WR_OK : WR_ERR;
}
