/* Unit tests for base/: cursor bounds, buffers, UTF-8, log levels and
 * outputs. */
#include "base/base.h"
#include "test/harness/t.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

T_CASE(cursor_stops_at_end)
{
    const uint8_t data[] = {0x01, 0x02, 0x03};
    struct cursor c;
    uint16_t v16;
    uint32_t v32;
    uint8_t v8;

    cur_init(&c, data, sizeof(data));
    T_ASSERT(rd_u16(&c, &v16));
    T_EQ_INT(v16, 0x0102);
    T_ASSERT(!rd_u32(&c, &v32));
    T_EQ_INT(c.left, 1);
    T_ASSERT(rd_u8(&c, &v8));
    T_EQ_INT(v8, 3);
    T_ASSERT(!rd_u8(&c, &v8));
}

T_CASE(shortstr_length_checked_against_remaining)
{
    const uint8_t data[] = {5, 'a', 'b'};
    struct cursor c;
    struct bytes s;

    cur_init(&c, data, sizeof(data));
    T_ASSERT(!rd_shortstr(&c, &s));
}

T_CASE(longstr_huge_length_does_not_wrap)
{
    const uint8_t data[] = {0xff, 0xff, 0xff, 0xff, 'x'};
    struct cursor c;
    struct bytes s;

    cur_init(&c, data, sizeof(data));
    T_ASSERT(!rd_longstr(&c, &s));
}

T_CASE(buf_grows_and_encodes_big_endian)
{
    struct buf b;
    const uint8_t want[] = {0xab, 0x01, 0x02, 0, 0, 0, 3, 0,   0,
                            0,    0,    0,    0, 0, 4, 2, 'h', 'i'};

    buf_init(&b);
    buf_put_u8(&b, 0xab);
    buf_put_u16(&b, 0x0102);
    buf_put_u32(&b, 3);
    buf_put_u64(&b, 4);
    buf_put_shortstr(&b, BYTES_LIT("hi"));
    T_EQ_MEM(b.data, b.len, want, sizeof(want));
    for (int i = 0; i < 10000; i++)
        buf_put_u8(&b, (uint8_t)i);
    T_EQ_INT(b.len, sizeof(want) + 10000);
    buf_consume(&b, sizeof(want));
    T_EQ_INT(b.data[1], 1);
    buf_fini(&b);
}

T_CASE(utf8_validation)
{
    T_ASSERT(bytes_is_utf8(BYTES_LIT("plain")));
    T_ASSERT(bytes_is_utf8(BYTES_LIT("caf\xc3\xa9")));
    T_ASSERT(bytes_is_utf8(BYTES_LIT("\xf0\x9f\x90\x87")));
    T_ASSERT(!bytes_is_utf8(BYTES_LIT("\xc3")));
    T_ASSERT(!bytes_is_utf8(BYTES_LIT("\xc0\x80")));         /* overlong */
    T_ASSERT(!bytes_is_utf8(BYTES_LIT("\xed\xa0\x80")));     /* surrogate */
    T_ASSERT(!bytes_is_utf8(BYTES_LIT("\xf4\x90\x80\x80"))); /* > U+10FFFF */
    T_ASSERT(!bytes_is_utf8(BYTES_LIT("\xff")));
}

/* b holds exactly the string s (memcmp wants no NULL, even for 0). */
static bool
buf_is(const struct buf *b, const char *s)
{
    return b->len == strlen(s) &&
           (b->len == 0 || memcmp(b->data, s, b->len) == 0);
}

T_CASE(base64_round_trip_strict_and_lenient)
{
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="};
    static const char *const dec[] = {"", "f", "fo", "foo", "foob"};
    struct buf b;

    buf_init(&b);
    for (size_t i = 0; i < 5; i++) {
        buf_reset(&b);
        b64_encode((const uint8_t *)dec[i], strlen(dec[i]), &b);
        T_ASSERT(buf_is(&b, enc[i]));
        buf_reset(&b);
        T_ASSERT(b64_decode(enc[i], strlen(enc[i]), true, &b));
        T_ASSERT(buf_is(&b, dec[i]));
    }
    /* strict wants the padding; lenient (HTTP basic auth) does not */
    buf_reset(&b);
    T_ASSERT(!b64_decode("Zg", 2, true, &b));
    buf_reset(&b);
    T_ASSERT(b64_decode("Zg", 2, false, &b) && b.len == 1 && b.data[0] == 'f');
    T_ASSERT(!b64_decode("Zg=g", 4, false, &b)); /* data after padding */
    T_ASSERT(!b64_decode("Z!==", 4, true, &b));  /* not the alphabet */
    T_ASSERT(!b64_decode("Z===", 4, true, &b));  /* three pads */
    buf_fini(&b);
}

T_CASE(log_levels_parse)
{
    enum log_level l;

    T_EQ_INT(log_level_parse("debug", &l), WR_OK);
    T_EQ_INT(l, LOG_DEBUG);
    T_EQ_INT(log_level_parse("warning", &l), WR_OK);
    T_EQ_INT(l, LOG_WARN);
    T_EQ_INT(log_level_parse("loud", &l), WR_ERR);
}

/* The whole text of the file at path (malloc'd), "" when missing. */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = xcalloc(1, 1 << 16);

    if (f) {
        size_t n = fread(text, 1, (1 << 16) - 1, f);
        text[n] = 0;
        fclose(f);
    }
    return text;
}

static void
log_to(const char *path, enum log_format fmt, int level, uint64_t rot_size,
       unsigned rot_count)
{
    struct log_settings s = {
        .level = {LOG_INFO, level},
        .console = false,
        .console_level = LOG_DEBUG,
        .file = path,
        .file_level = LOG_DEBUG,
        .file_format = fmt,
        .rotation_size = rot_size,
        .rotation_count = rot_count,
    };
    T_EQ_INT(log_configure(&s), WR_OK);
}

T_CASE(log_json_escapes_and_categories)
{
    char path[512];
    char *text;

    snprintf(path, sizeof(path), "%s/w.log", t_tmpdir());
    log_to(path, LOG_FMT_JSON, LOG_WARN, 0, 0);
    log_info("a \"quote\", a \\, a tab\t, bad \xff\xc3 end \xc3\xa9");
    log_debug("not logged: default category is at info");
    log_conn(LOG_INFO, "not logged: connection category is at warning");
    log_conn(LOG_WARN, "refused");
    T_ASSERT(log_enabled(LOG_INFO) && !log_enabled(LOG_DEBUG));
    text = slurp(path);
    T_ASSERT(strstr(text,
                    "\"level\":\"info\",\"msg\":\"a \\\"quote\\\", a "
                    "\\\\, a tab\\u0009, bad \xEF\xBF\xBD\xEF\xBF\xBD end "
                    "\xc3\xa9\",\"pid\":") != NULL);
    T_ASSERT(strstr(text, "not logged") == NULL);
    T_ASSERT(strstr(text, "\"level\":\"warning\",\"msg\":\"refused\",\"pid\":"
                          "") != NULL);
    T_ASSERT(strstr(text, "\"domain\":\"rabbitmq.connection\"}\n") != NULL);
    free(text);
    log_set_level(LOG_ERR);
}

T_CASE(log_rotates_and_reopens)
{
    char path[512], p0[600], p1[600], p2[600], moved[600];
    struct stat st;
    char *text;

    snprintf(path, sizeof(path), "%s/w.log", t_tmpdir());
    snprintf(p0, sizeof(p0), "%s.0", path);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    log_to(path, LOG_FMT_PLAIN, LOG_INFO, 200, 2);
    for (int i = 0; i < 20; i++)
        log_info("line %02d of a rotating log, padded to some length", i);
    T_EQ_INT(stat(path, &st), 0);
    T_ASSERT(st.st_size <= 200);
    T_EQ_INT(stat(p0, &st), 0);
    T_EQ_INT(stat(p1, &st), 0);
    T_ASSERT(stat(p2, &st) < 0); /* count 2: .0 and .1 only */
    text = slurp(path);
    T_ASSERT(strstr(text, "line 19") != NULL);
    free(text);
    text = slurp(p1);
    T_ASSERT(strstr(text, "line 19") == NULL && strstr(text, "line 1") != NULL);
    free(text);

    /* logrotate: move the file away; the next line notices (a new inode
     * at the path, as RabbitMQ checks) and goes to a new file there. */
    log_to(path, LOG_FMT_PLAIN, LOG_INFO, 0, 0);
    log_info("before the move");
    snprintf(moved, sizeof(moved), "%s/moved.log", t_tmpdir());
    T_EQ_INT(rename(path, moved), 0);
    log_info("after the move");
    text = slurp(moved);
    T_ASSERT(strstr(text, "before the move") &&
             !strstr(text, "after the move"));
    free(text);
    text = slurp(path);
    T_ASSERT(strstr(text, "after the move") &&
             !strstr(text, "before the move"));
    free(text);
    T_EQ_INT(log_reopen(), WR_OK); /* the same file: nothing lost */
    log_info("after reopen");
    text = slurp(path);
    T_ASSERT(strstr(text, "after the move") && strstr(text, "after reopen"));
    free(text);
    /* A path that cannot be reopened keeps the old file. */
    T_EQ_INT(rename(path, p2), 0);
    T_EQ_INT(mkdir(path, 0755), 0);
    T_EQ_INT(log_reopen(), WR_ERR);
    log_info("still in the old file");
    text = slurp(p2);
    T_ASSERT(strstr(text, "still in the old file") != NULL);
    free(text);
    log_set_level(LOG_ERR);
}

/* Local time of y-m-d h:00 (month 1-based), for the date spec cases. */
static time_t
at(int y, int mon, int d, int h)
{
    struct tm tm = {0};

    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

T_CASE(log_date_spec_next)
{
    struct log_date_spec d;
    time_t now = at(2026, 12, 6, 21) + 1800; /* Sunday 2026-12-06 21:30 */

    T_EQ_INT(log_date_spec_parse("", &d), WR_OK);
    T_EQ_INT(log_date_next(&d, now), 0);
    T_EQ_INT(log_date_spec_parse("$D0", &d), WR_OK);
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 7, 0));
    T_EQ_INT(log_date_spec_parse("$D23", &d), WR_OK);
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 6, 23));
    T_EQ_INT(log_date_next(&d, at(2026, 12, 6, 23)), at(2026, 12, 7, 23));
    T_EQ_INT(log_date_spec_parse("$W0D23", &d), WR_OK); /* Sundays */
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 6, 23));
    T_EQ_INT(log_date_spec_parse("$W5D16", &d), WR_OK); /* Fridays */
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 11, 16));
    T_EQ_INT(log_date_spec_parse("$W0D20", &d), WR_OK); /* passed today */
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 13, 20));
    T_EQ_INT(log_date_spec_parse("$M1D0", &d), WR_OK);
    T_EQ_INT(log_date_next(&d, now), at(2027, 1, 1, 0));
    T_EQ_INT(log_date_spec_parse("$ML", &d), WR_OK);
    T_EQ_INT(log_date_next(&d, now), at(2026, 12, 31, 0));
    T_EQ_INT(log_date_spec_parse("$M31D2", &d), WR_OK); /* February */
    T_EQ_INT(log_date_next(&d, at(2027, 2, 1, 0)), at(2027, 2, 28, 2));
    T_EQ_INT(log_date_spec_parse("$D24", &d), WR_ERR);
    T_EQ_INT(log_date_spec_parse("$X1", &d), WR_ERR);
    T_EQ_INT(log_date_spec_parse("$", &d), WR_ERR);
}

static const struct t_case cases[] = {
    T_REG(cursor_stops_at_end),
    T_REG(shortstr_length_checked_against_remaining),
    T_REG(longstr_huge_length_does_not_wrap),
    T_REG(buf_grows_and_encodes_big_endian),
    T_REG(utf8_validation),
    T_REG(base64_round_trip_strict_and_lenient),
    T_REG(log_levels_parse),
    T_REG(log_json_escapes_and_categories),
    T_REG(log_rotates_and_reopens),
    T_REG(log_date_spec_next),
};
T_MAIN(cases)
