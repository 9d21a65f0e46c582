/* Unit tests for base/: cursor bounds, buffers, UTF-8, log levels. */
#include "base/base.h"
#include "test/harness/t.h"

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

static const struct t_case cases[] = {
    T_REG(cursor_stops_at_end),
    T_REG(shortstr_length_checked_against_remaining),
    T_REG(longstr_huge_length_does_not_wrap),
    T_REG(buf_grows_and_encodes_big_endian),
    T_REG(utf8_validation),
    T_REG(base64_round_trip_strict_and_lenient),
    T_REG(log_levels_parse),
};
T_MAIN(cases)
