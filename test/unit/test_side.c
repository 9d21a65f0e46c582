/*
 * Unit tests for the side records of replication (vhost/side.c): what
 * side__encode writes side_next reads back field by field, and hostile
 * bytes (cut short, unknown types, fields missing, journal records that
 * do not check) are refused with a reason, never read past their end.
 */
#include "test/harness/t.h"
#include "vhost/dedup_log.h"
#include "vhost/side.h"
#include "vhost/vhost_int.h"

static struct buf
sample(void)
{
    struct buf b, keys;
    uint64_t app[4] = {0xab, 7, 1700000000000ull, 65536};
    uint64_t trim[2] = {0xab, 3};
    uint64_t qid = 0xab;
    uint8_t h[16] = {1, 2, 3};

    buf_init(&b);
    buf_init(&keys);
    side__encode(&b, SIDE_SAPP, app, 4, bytes_str("head"), bytes_str("body"));
    side__encode(&b, SIDE_STRIM, trim, 2, bytes_of(NULL, 0), bytes_of(NULL, 0));
    side__encode(&b, SIDE_SOFFS, &qid, 1, bytes_str("{\"app\":5}"),
                 bytes_of(NULL, 0));
    dedup_log_put(&keys, 'q', bytes_str("orders"), h, 99);
    dedup_log_put(&keys, 'Q', bytes_str("orders"), NULL, 0);
    side__encode(&b, SIDE_DKEYS, NULL, 0, buf_bytes(&keys), bytes_of(NULL, 0));
    side__encode(&b, SIDE_SDEL, &qid, 1, bytes_of(NULL, 0), bytes_of(NULL, 0));
    buf_fini(&keys);
    return b;
}

T_CASE(records_read_back_as_written)
{
    struct buf b = sample();
    struct cursor c;
    struct side_rec r;
    const char *why = NULL;

    cur_init(&c, b.data, b.len);
    T_ASSERT(side_next(&c, &r, &why));
    T_EQ_INT(r.type, SIDE_SAPP);
    T_EQ_INT(r.qid, 0xab);
    T_EQ_INT(r.offset, 7);
    T_EQ_INT(r.ts_ms, 1700000000000ull);
    T_EQ_INT(r.segsize, 65536);
    T_ASSERT(bytes_eq(r.data, bytes_str("headbody")));
    T_ASSERT(side_next(&c, &r, &why));
    T_EQ_INT(r.type, SIDE_STRIM);
    T_EQ_INT(r.offset, 3);
    T_ASSERT(side_next(&c, &r, &why));
    T_EQ_INT(r.type, SIDE_SOFFS);
    T_ASSERT(bytes_eq(r.data, bytes_str("{\"app\":5}")));
    T_ASSERT(side_next(&c, &r, &why));
    T_EQ_INT(r.type, SIDE_DKEYS);
    T_ASSERT(side_next(&c, &r, &why));
    T_EQ_INT(r.type, SIDE_SDEL);
    T_EQ_INT(c.left, 0);
    buf_fini(&b);
}

T_CASE(hostile_records_are_refused_with_a_reason)
{
    struct buf b = sample(), bad;
    struct cursor c;
    struct side_rec r;
    const char *why;
    uint64_t zero[4] = {1, 0, 0, 0};

    /* every cut inside the first record fails without reading past it */
    for (size_t cut = 0; cut < 5 + 32 + 8; cut++) {
        why = NULL;
        cur_init(&c, b.data, cut);
        T_ASSERT(!side_next(&c, &r, &why));
        T_ASSERT(why != NULL);
    }
    buf_init(&bad);
    buf_put_u8(&bad, 42); /* unknown type */
    buf_put_u32(&bad, 0);
    cur_init(&c, bad.data, bad.len);
    T_ASSERT(!side_next(&c, &r, &why));
    buf_reset(&bad); /* a stream append of segment size 0 */
    side__encode(&bad, SIDE_SAPP, zero, 4, bytes_str("x"), bytes_of(NULL, 0));
    cur_init(&c, bad.data, bad.len);
    T_ASSERT(!side_next(&c, &r, &why));
    buf_reset(&bad); /* a trim without its offset */
    side__encode(&bad, SIDE_STRIM, zero, 1, bytes_of(NULL, 0),
                 bytes_of(NULL, 0));
    cur_init(&c, bad.data, bad.len);
    T_ASSERT(!side_next(&c, &r, &why));
    buf_reset(&bad); /* journal bytes that do not check */
    side__encode(&bad, SIDE_DKEYS, NULL, 0, bytes_str("garbage!garbage!"),
                 bytes_of(NULL, 0));
    cur_init(&c, bad.data, bad.len);
    T_ASSERT(!side_next(&c, &r, &why));
    buf_reset(&bad); /* a whole journal without its magic */
    side__encode(&bad, SIDE_DFULL, NULL, 0, bytes_str("WDJ0"),
                 bytes_of(NULL, 0));
    cur_init(&c, bad.data, bad.len);
    T_ASSERT(!side_next(&c, &r, &why));
    buf_fini(&bad);
    buf_fini(&b);
}

static const struct t_case cases[] = {
    T_REG(records_read_back_as_written),
    T_REG(hostile_records_are_refused_with_a_reason),
};

T_MAIN(cases)
