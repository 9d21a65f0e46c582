/*
 * mgmt_prom.c: Prometheus text exposition format (version 0.0.4), the
 * lexical part: family headers, label values and sample values. Knows
 * nothing of the broker, so it is unit-tested on its own
 * (test/unit/test_prom.c).
 *
 * Label values come from clients (queue, exchange and vhost names are
 * any bytes a declare carried), so they are escaped as the format asks:
 * backslash as \\, double quote as \", line feed as \n. A value that is
 * not valid UTF-8 has each byte above 0x7f replaced by U+FFFD, since the
 * format is UTF-8 and a scraper refuses the whole page otherwise.
 *
 *   queue  a"b\c<LF>d   ->   queue="a\"b\\c\nd"
 */
#include "server/mgmt/mgmt_prom.h"

#include <math.h>
#include <stdio.h>

void
prom_family(struct buf *b, const char *prefix, const char *name,
            const char *type, const char *help)
{
    buf_printf(b, "# TYPE %s%s %s\n# HELP %s%s %s\n", prefix, name, type,
               prefix, name, help);
}

void
prom_escape(struct buf *b, const void *s, size_t n)
{
    const uint8_t *p = s;
    bool utf8;
    uint8_t *o;
    size_t k = 0;

    if (n == 0)
        return;
    utf8 = bytes_is_utf8(bytes_of(p, n));
    o = buf_reserve(b, n * 3);

    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p[i];

        if (ch == '\\' || ch == '"') {
            o[k++] = '\\';
            o[k++] = ch;
        } else if (ch == '\n') {
            o[k++] = '\\';
            o[k++] = 'n';
        } else if (ch >= 0x80 && !utf8) {
            o[k++] = 0xef;
            o[k++] = 0xbf;
            o[k++] = 0xbd;
        } else {
            o[k++] = ch;
        }
    }
    b->len += k;
}

void
prom_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint8_t *o;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    o = buf_reserve(b, n);
    for (size_t i = 0; i < n; i++)
        o[i] = (uint8_t)tmp[n - 1 - i];
    b->len += n;
}

void
prom_value(struct buf *b, double v)
{
    if (isnan(v))
        buf_append(b, "NaN", 3);
    else if (isinf(v))
        buf_printf(b, "%sInf", v > 0 ? "+" : "-");
    else if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v)
        prom_u64(b, (uint64_t)v);
    else
        buf_printf(b, "%.17g", v);
}
