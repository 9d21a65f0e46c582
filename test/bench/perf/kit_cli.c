/*
 * kit_cli.c: what warren-perf and warren-everyday both need around their
 * measurements: numbers from the command line, checked against their
 * range, a usage error that names the program, and the JSON of a
 * latency summary and of a broker's reply text.
 */
#include "test/bench/perf/kit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

const char *kit_prog = "warren-perf";

void
kit_usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", kit_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help lists the options)\n", kit_prog);
    exit(2);
}

long
kit_num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        kit_usage_error("bad %s", what);
    return v;
}

double
kit_real(const char *s, double lo, double hi, const char *what)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        kit_usage_error("bad %s", what);
    return v;
}

json_t *
kit_ascii_json(const char *text, size_t max)
{
    char clean[1024];
    size_t i, n = WR_MIN(max, sizeof(clean));

    for (i = 0; text[i] != '\0' && i + 1 < n; i++)
        clean[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
    clean[i] = '\0';
    return json_string(clean);
}

json_t *
kit_lat_json(const struct perf_lat *l)
{
    return json_pack("{sI sf sf sf sf sf sf}", "count", (json_int_t)l->count,
                     "p50", l->p50, "p90", l->p90, "p99", l->p99, "p99_9",
                     l->p999, "max", l->max, "mean", l->mean);
}
