/*
 * Unit tests for store/replica.c: a leader's tap and a mirror's apply.
 * A mirror fed the tap of a leader recovers exactly the leader's live
 * (queue, message id) pairs and bodies; a message routed to several
 * queues is one record; transient messages and compaction copies stay
 * local; a frame with any bad record is refused whole.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QA 0x0aULL
#define QB 0x0bULL
#define QC 0x0cULL

static struct store *
topen(struct store_config *cfg, struct rset *r)
{
    struct store *s;
    char err[1024];

    if (store_open(cfg, r ? &rset_cb : NULL, r, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    return s;
}

/* Number of records of each type in a run of replication records. */
static void
count_recs(struct bytes recs, size_t n[4])
{
    struct cursor c;
    uint8_t type, version;
    uint64_t len;
    struct bytes pl;

    memset(n, 0, 4 * sizeof(*n));
    cur_init(&c, recs.ptr, recs.len);
    while (c.left > 0) {
        T_ASSERT(rd_u8(&c, &type) && rd_u8(&c, &version));
        T_ASSERT(rec_rd_varint(&c, &len));
        T_ASSERT(rd_bytes(&c, len, &pl));
        T_ASSERT(type >= 1 && type <= 3);
        n[type]++;
    }
}

static uint64_t
tapply(struct store *m, struct bytes recs)
{
    char err[256] = "";
    uint64_t lsn = store_apply(m, recs, err, sizeof(err));

    if (lsn == 0)
        t_fail(__FILE__, __LINE__, "apply: %s", err);
    return lsn;
}

T_CASE(mirror_fed_the_tap_recovers_the_leaders_queues)
{
    char ldir[512], mdir[512];
    struct tloop ll, ml;
    struct store_config lcfg, mcfg;
    struct store *l, *m;
    struct rset lr = {0}, mr = {0};
    struct buf tap;
    uint64_t qa[1] = {QA}, qab[2] = {QB, QA}, qc[1] = {QC}, ids[300], pos;
    uint64_t lsn, mlsn, tid;
    uint8_t body[700];
    size_t n[4];
    struct store_msg_in tr = {
        qa, 1, {(const uint8_t *)"t", 1}, {(const uint8_t *)"x", 1}, true};

    buf_init(&tap);
    tloop_init(&ll);
    tloop_init(&ml);
    lcfg = tcfg(tpath(ldir, sizeof(ldir), "leader"), NULL, &ll);
    mcfg = tcfg(tpath(mdir, sizeof(mdir), "mirror"), NULL, &ml);
    l = topen(&lcfg, NULL);
    m = topen(&mcfg, NULL);
    store_tap(l, &tap);
    for (int i = 0; i < 300; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(l, i % 3 == 0 ? qab : (i % 3 == 1 ? qa : qc),
                i % 3 == 0 ? 2 : 1, "meta", body, sizeof(body), &ids[i], &pos);
        if (i % 50 == 0) /* a paged-out transient message: not shipped */
            store_append_msg(l, &tr, &tid, &pos);
    }
    for (int i = 0; i < 300; i += 2)
        store_append_ack(l, i % 3 == 2 ? QC : QA, ids[i]);
    lsn = store_tap_cut(l);
    count_recs(buf_bytes(&tap), n);
    /* 300 messages, the one routed to two queues once each */
    T_EQ_INT(n[REC_MSG], 300);
    T_ASSERT(n[REC_ACK] >= 1);
    mlsn = tapply(m, buf_bytes(&tap));
    buf_reset(&tap);
    /* a queue delete, then the queue redeclared under the same name */
    store_append_queue_delete(l, QC);
    tbody(body, sizeof(body), 1000);
    tappend(l, qc, 1, "meta", body, sizeof(body), NULL, &pos);
    lsn = store_tap_cut(l);
    count_recs(buf_bytes(&tap), n);
    T_EQ_INT(n[REC_QDEL], 1);
    T_EQ_INT(n[REC_MSG], 1);
    mlsn = tapply(m, buf_bytes(&tap));
    T_ASSERT(tloop_wait_durable(&ll, l, lsn));
    T_ASSERT(tloop_wait_durable(&ml, m, mlsn));
    T_EQ_INT(store_next_id(m), store_next_id(l));
    store_close(l);
    store_close(m);

    /* both recover the same pairs, with the same bodies */
    l = topen(&lcfg, &lr);
    m = topen(&mcfg, &mr);
    T_EQ_INT(mr.n, lr.n);
    T_ASSERT(lr.n > 0);
    for (size_t i = 0; i < lr.n; i++) {
        const struct rmsg *x = rset_find(&mr, lr.v[i].qid, lr.v[i].id);
        struct buf a, b;
        struct bytes am, ab, bm, bb;

        T_ASSERT(x != NULL);
        buf_init(&a);
        buf_init(&b);
        T_EQ_INT(store_read_msg(l, lr.v[i].pos, &a, &am, &ab), WR_OK);
        T_EQ_INT(store_read_msg(m, x->pos, &b, &bm, &bb), WR_OK);
        T_EQ_MEM(am.ptr, am.len, bm.ptr, bm.len);
        T_EQ_MEM(ab.ptr, ab.len, bb.ptr, bb.len);
        buf_fini(&a);
        buf_fini(&b);
    }
    store_close(l);
    store_close(m);
    rset_free(&lr);
    rset_free(&mr);
    buf_fini(&tap);
    tloop_fini(&ll);
    tloop_fini(&ml);
}

/* Applies recs to a fresh mirror and expects refusal naming why. */
static void
expect_refused(struct store *m, const uint8_t *p, size_t n, const char *why)
{
    char err[256] = "";
    uint64_t before = store_next_id(m);

    T_EQ_INT(store_apply(m, bytes_of(p, n), err, sizeof(err)), 0);
    if (!strstr(err, why))
        t_fail(__FILE__, __LINE__, "error '%s' does not say '%s'", err, why);
    T_EQ_INT(store_next_id(m), before);
}

T_CASE(mirror_refuses_a_frame_with_any_bad_record_whole)
{
    char dir[512];
    struct tloop ml;
    struct store_config cfg;
    struct store *m;
    struct rset r = {0};
    struct buf good, bad;
    uint8_t hdr[3];

    tloop_init(&ml);
    cfg = tcfg(tpath(dir, sizeof(dir), "m"), NULL, &ml);
    m = topen(&cfg, NULL);
    /* one valid MSG record with id 5: u8 type, u8 version, varint len */
    buf_init(&good);
    buf_init(&bad);
    {
        uint8_t pl[64];
        size_t k = 0;

        pl[k++] = 5; /* id */
        pl[k++] = 0; /* flags */
        pl[k++] = 1; /* nqids */
        be64_store(pl + k, QA);
        k += 8;
        pl[k++] = 1; /* meta_len */
        pl[k++] = 'm';
        pl[k++] = 'b'; /* body */
        buf_put_u8(&good, REC_MSG);
        buf_put_u8(&good, rec_version(REC_MSG));
        buf_put_u8(&good, (uint8_t)k);
        buf_append(&good, pl, k);
    }
    /* good record, then a truncated header: nothing applied */
    buf_append(&bad, good.data, good.len);
    buf_put_u8(&bad, REC_ACK);
    expect_refused(m, bad.data, bad.len, "truncated record header");
    /* unknown type; unknown version; a compaction-only type */
    hdr[0] = 9, hdr[1] = 1, hdr[2] = 0;
    expect_refused(m, hdr, 3, "unknown record type");
    hdr[0] = REC_SEAL;
    expect_refused(m, hdr, 3, "unknown record type");
    hdr[0] = REC_MSG, hdr[1] = 7;
    expect_refused(m, hdr, 3, "unknown record version");
    /* a length past the end */
    hdr[0] = REC_QDEL, hdr[1] = 1, hdr[2] = 100;
    expect_refused(m, hdr, 3, "longer than the frame");
    /* the same message twice: ids must grow */
    buf_reset(&bad);
    buf_append(&bad, good.data, good.len);
    buf_append(&bad, good.data, good.len);
    expect_refused(m, bad.data, bad.len, "out of order");
    /* transient flag set */
    buf_reset(&bad);
    buf_append(&bad, good.data, good.len);
    bad.data[4] = REC_F_TRANSIENT;
    expect_refused(m, bad.data, bad.len, "flags must be 0");
    /* a message claiming more queue ids than it carries */
    bad.data[4] = 0;
    bad.data[5] = 9;
    expect_refused(m, bad.data, bad.len, "bad message record");
    /* an ACK with trailing garbage */
    {
        uint8_t a[] = {REC_ACK, 1, 11, 0, 0, 0, 0, 0, 0, 0, 10, 1, 5, 0x33};

        expect_refused(m, a, sizeof(a), "bad ack record");
    }
    /* the good record alone goes in, keeps id 5, and survives a restart */
    T_ASSERT(tloop_wait_durable(&ml, m, tapply(m, buf_bytes(&good))));
    T_EQ_INT(store_next_id(m), 6);
    expect_refused(m, good.data, good.len, "out of order");
    store_close(m);
    m = topen(&cfg, &r);
    T_EQ_INT(r.n, 1);
    T_EQ_INT(r.v[0].id, 5);
    T_EQ_INT(r.v[0].qid, QA);
    store_close(m);
    rset_free(&r);
    buf_fini(&good);
    buf_fini(&bad);
    tloop_fini(&ml);
}

T_CASE(tap_leaves_out_compaction_copies)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct buf tap;
    uint64_t qa[1] = {QA}, qb[1] = {QB}, keep[8], id, pos, lsn = 0;
    uint8_t body[1024];
    size_t n[4], k = 0;
    struct store_stats st;

    buf_init(&tap);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    /* a few long-lived messages among many acked ones: compaction moves
       them out of old segments */
    for (int i = 0; i < 2000; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        if (i % 250 == 0) {
            lsn = tappend(s, qb, 1, "k", body, sizeof(body), &keep[k++], &pos);
            continue;
        }
        tappend(s, qa, 1, "m", body, sizeof(body), &id, &pos);
        lsn = store_append_ack(s, QA, id);
    }
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_tap(s, &tap);
    tloop_drain(&l, s);
    store_get_stats(s, &st);
    T_ASSERT(st.moved_msgs > 0);
    store_tap_cut(s);
    count_recs(buf_bytes(&tap), n);
    T_EQ_INT(n[REC_MSG], 0);
    store_tap(s, NULL);
    store_close(s);
    buf_fini(&tap);
    tloop_fini(&l);
}

/* A side record's position (vhost/side.h): a new LSN without a record,
 * only while tapping, made durable by the next batch like any other,
 * covered by the next cut; nothing reaches the tap or the segment. */
T_CASE(tap_mark_takes_a_position_that_becomes_durable)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct buf tap;
    struct store_stats before, after;
    uint64_t a, b;

    buf_init(&tap);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    T_EQ_INT(store_tap_mark(s), 0); /* not tapping */
    store_tap(s, &tap);
    store_get_stats(s, &before);
    a = store_tap_mark(s);
    b = store_tap_mark(s);
    T_ASSERT(a > 0 && b == a + 1);
    T_ASSERT(store_tap_cut(s) >= b);
    T_ASSERT(tloop_wait_durable(&l, s, b));
    store_get_stats(s, &after);
    T_EQ_INT(tap.len, 0);
    T_EQ_INT(after.live_msgs, before.live_msgs);
    store_tap(s, NULL);
    store_close(s);
    buf_fini(&tap);
    tloop_fini(&l);
}

static const char *
tpath_seg(const char *dir, uint32_t no)
{
    static char p[600];

    snprintf(p, sizeof(p), "%s/%016u.seg", dir, no);
    return p;
}

/* A mirror's truncation in place (KIP-101): the log cut at a position
 * store_end_pos gave recovers exactly the pairs it had then: messages
 * appended after it are gone, acks and a queue delete after it are
 * undone, across segments; the log takes appends again and reopens. */
T_CASE(truncate_at_end_pos_keeps_exactly_the_records_before)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t qa[1] = {QA}, qb[1] = {QB}, ids[400], pos, cut, lsn, next;
    uint8_t body[700];
    char err[512] = "";

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "trunc"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 200; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(s, i % 2 ? qb : qa, 1, "meta", body, sizeof(body), &ids[i],
                &pos);
    }
    for (int i = 0; i < 20; i += 2)
        store_append_ack(s, QA, ids[i]);
    cut = store_end_pos(s);
    next = store_next_id(s);
    /* the tail that only the old lead had: new messages across several
       64 KiB segments, acks of messages from before the cut, a delete */
    for (int i = 200; i < 400; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(s, qa, 1, "meta", body, sizeof(body), &ids[i], &pos);
    }
    for (int i = 20; i < 60; i += 2)
        store_append_ack(s, QA, ids[i]);
    lsn = store_append_queue_delete(s, QB);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_EQ_INT(store_unlinks_planned(s), 0);
    store_close(s);
    T_ASSERT(tsegment_exists(dir, POS_SEG(cut) + 1));

    T_EQ_INT(store_truncate(dir, cut, err, sizeof(err)), WR_OK);
    T_ASSERT(tsegment_exists(dir, POS_SEG(cut)));
    T_ASSERT(!tsegment_exists(dir, POS_SEG(cut) + 1));
    T_EQ_INT(tfile_size(tpath_seg(dir, POS_SEG(cut))), POS_OFF(cut));
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 190);
    for (int i = 0; i < 200; i++) {
        bool acked = i % 2 == 0 && i < 20;

        T_EQ_INT(rset_find(&r, i % 2 ? QB : QA, ids[i]) != NULL, !acked);
    }
    for (int i = 200; i < 400; i++)
        T_ASSERT(rset_find(&r, QA, ids[i]) == NULL);
    T_ASSERT(store_next_id(s) >= next);
    /* the cut log is a log: it takes appends and opens again */
    tbody(body, sizeof(body), 999);
    lsn = tappend(s, qa, 1, "meta", body, sizeof(body), &ids[0], &pos);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_close(s);
    rset_free(&r);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 191);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* A position the log does not reach (a segment gone, an offset past the
 * end, none at all) is refused and changes nothing. */
T_CASE(truncate_refuses_a_position_beyond_the_log)
{
    char dir[512], err[512] = "";
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t qa[1] = {QA}, pos, end, lsn;
    uint8_t body[100];

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "trunc2"), NULL, &l);
    s = topen(&cfg, NULL);
    tbody(body, sizeof(body), 1);
    lsn = tappend(s, qa, 1, "meta", body, sizeof(body), NULL, &pos);
    end = store_end_pos(s);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    /* the store is open: its directory is locked */
    T_EQ_INT(store_truncate(dir, end, err, sizeof(err)), WR_ERR);
    store_close(s);
    T_EQ_INT(store_truncate(dir, end + 4096, err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "shorter") != NULL);
    T_EQ_INT(
        store_truncate(dir, POS_MAKE(POS_SEG(end) + 5, 100), err, sizeof(err)),
        WR_ERR);
    T_EQ_INT(store_truncate(dir, POS_MAKE(POS_SEG(end), 3), err, sizeof(err)),
             WR_ERR);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 1);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* Segments whose messages all died are counted as they are planned for
 * deletion: what tells a mirror it can no longer truncate back past
 * that point. */
T_CASE(unlinks_planned_counts_dead_segments)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t qa[1] = {QA}, ids[300], pos, lsn = 0;
    uint8_t body[700];

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "unl"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 300; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(s, qa, 1, "meta", body, sizeof(body), &ids[i], &pos);
    }
    T_EQ_INT(store_unlinks_planned(s), 0);
    for (int i = 0; i < 150; i++)
        lsn = store_append_ack(s, QA, ids[i]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    tloop_drain(&l, s);
    T_ASSERT(store_unlinks_planned(s) >= 1);
    store_close(s);
    tloop_fini(&l);
}

/* A snapshot reads live messages in position order (store_read_msg_live):
 * small records already read with the block before them come from that
 * block, not one pread each; every one reads back exactly, a position
 * inside a record is still refused, and a record longer than the block
 * is read whole. */
T_CASE(snapshot_reads_small_records_a_block_at_a_time)
{
    char dir[512];
    struct tloop l;
    struct tio io;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, pos[400], bigpos, id, lsn = 0, before;
    uint8_t body[16], big[10000];
    struct buf b;
    struct bytes m, bd;

    tio_init(&io);
    tloop_init(&l);
    buf_init(&b);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &io, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 400; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        lsn = tappend(s, q, 1, "m", body, sizeof(body), &id, &pos[i]);
    }
    tbody(big, sizeof(big), 7);
    tappend(s, q, 1, "big", big, sizeof(big), &id, &bigpos);
    tbody(body, sizeof(body), 0);
    lsn = tappend(s, q, 1, "m", body, sizeof(body), &id, &pos[0]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(s->infl_head == NULL); /* every record is in the file */
    before = atomic_load(&io.preads);
    for (int i = 1; i < 400; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        T_ASSERT(tcheck_msg(s, pos[i], "m", body, sizeof(body)));
    }
    /* ~50-byte records: dozens to a 4 KiB block, not 400 preads */
    T_ASSERT(atomic_load(&io.preads) - before < 20);
    for (int i = 1; i < 400; i++)
        T_EQ_INT(store_read_msg(s, pos[i] + 1, &b, &m, &bd), WR_ERR);
    /* longer than a block: read whole (a second pread) */
    T_ASSERT(tcheck_msg(s, bigpos, "big", big, sizeof(big)));
    T_ASSERT(tcheck_msg(s, bigpos, "big", big, sizeof(big)));
    tbody(body, sizeof(body), 0);
    T_ASSERT(tcheck_msg(s, pos[0], "m", body, sizeof(body)));
    store_close(s);
    buf_fini(&b);
    tloop_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(truncate_at_end_pos_keeps_exactly_the_records_before),
    T_REG(truncate_refuses_a_position_beyond_the_log),
    T_REG(unlinks_planned_counts_dead_segments),
    T_REG(tap_mark_takes_a_position_that_becomes_durable),
    T_REG(mirror_fed_the_tap_recovers_the_leaders_queues),
    T_REG(mirror_refuses_a_frame_with_any_bad_record_whole),
    T_REG(tap_leaves_out_compaction_copies),
    T_REG(snapshot_reads_small_records_a_block_at_a_time),
};

T_MAIN(cases)
