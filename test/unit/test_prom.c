/* Unit tests for server/mgmt/mgmt_prom.c: label escaping and sample
 * values of the Prometheus text format, for names a client chose. */
#include "server/mgmt/mgmt_prom.h"
#include "test/harness/t.h"

#include <math.h>
#include <string.h>

/* What prom_escape makes of n bytes, as a NUL-terminated string. */
static const char *
escaped(const void *s, size_t n)
{
    static char out[256];
    struct buf b;

    buf_init(&b);
    prom_escape(&b, s, n);
    T_ASSERT(b.len < sizeof(out));
    if (b.len > 0) /* an empty buf may have no data at all */
        memcpy(out, b.data, b.len);
    out[b.len] = 0;
    buf_fini(&b);
    return out;
}

static const char *
value(double v)
{
    static char out[64];
    struct buf b;

    buf_init(&b);
    prom_value(&b, v);
    memcpy(out, b.data, b.len);
    out[b.len] = 0;
    buf_fini(&b);
    return out;
}

T_CASE(quotes_backslashes_and_newlines_are_escaped)
{
    T_EQ_STR(escaped("plain", 5), "plain");
    T_EQ_STR(escaped("a\"b", 3), "a\\\"b");
    T_EQ_STR(escaped("a\\b", 3), "a\\\\b");
    T_EQ_STR(escaped("a\nb", 3), "a\\nb");
    T_EQ_STR(escaped("\\\"\n", 3), "\\\\\\\"\\n");
    T_EQ_STR(escaped("", 0), "");
    /* other control bytes are legal in a label value, as they are */
    T_EQ_STR(escaped("a\tb\rc", 5), "a\tb\rc");
}

T_CASE(utf8_is_kept_and_invalid_bytes_become_replacement_chars)
{
    T_EQ_STR(escaped("caf\xc3\xa9", 5), "caf\xc3\xa9");
    T_EQ_STR(escaped("\xe6\x97\xa5\"", 4), "\xe6\x97\xa5\\\"");
    T_EQ_STR(escaped("a\xff"
                     "b",
                     3),
             "a\xef\xbf\xbd"
             "b");
    /* a truncated sequence: every byte above 0x7f is replaced */
    T_EQ_STR(escaped("\xc3", 1), "\xef\xbf\xbd");
}

T_CASE(a_nul_byte_stays_inside_the_value)
{
    struct buf b;

    buf_init(&b);
    prom_escape(&b, "a\0b", 3);
    T_EQ_MEM(b.data, b.len, "a\0b", 3);
    buf_fini(&b);
}

T_CASE(values_integers_exactly_others_round_trip)
{
    T_EQ_STR(value(0), "0");
    T_EQ_STR(value(42), "42");
    T_EQ_STR(value(9007199254740991.0), "9007199254740991");
    T_EQ_STR(value(1.5), "1.5");
    T_EQ_STR(value(-3), "-3");
    T_EQ_STR(value(NAN), "NaN");
    T_EQ_STR(value(INFINITY), "+Inf");
    T_EQ_STR(value(-INFINITY), "-Inf");
    T_EQ_STR(value(0.1), "0.10000000000000001");
}

T_CASE(family_header_has_type_and_help)
{
    struct buf b;
    const char *want = "# TYPE rabbitmq_queues gauge\n"
                       "# HELP rabbitmq_queues Queues available\n";

    buf_init(&b);
    prom_family(&b, "rabbitmq_", "queues", "gauge", "Queues available");
    T_EQ_MEM(b.data, b.len, want, strlen(want));
    buf_fini(&b);
}

static const struct t_case cases[] = {
    T_REG(quotes_backslashes_and_newlines_are_escaped),
    T_REG(utf8_is_kept_and_invalid_bytes_become_replacement_chars),
    T_REG(a_nul_byte_stays_inside_the_value),
    T_REG(values_integers_exactly_others_round_trip),
    T_REG(family_header_has_type_and_help),
};
T_MAIN(cases)
