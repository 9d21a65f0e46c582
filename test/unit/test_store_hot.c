/*
 * Unit tests for store/hot.c and the hand-over of an open log (store.h,
 * "Hot index"): the hot index of a log reports exactly what a recovery
 * of the same log reports (through acks in any order, queue deletes,
 * a queue redeclared, compaction moves, a mirror's store_apply), and a
 * suspended store goes on in another directory, its records readable
 * and recovered from there.
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

static int
cmp_rmsg(const void *a, const void *b)
{
    const struct rmsg *x = a, *y = b;

    if (x->qid != y->qid)
        return x->qid < y->qid ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The hot index's report, checked to be in id order per queue, sorted. */
static void
hot_set(struct store *s, struct rset *r)
{
    store_hot_report(s, &rset_cb, r);
    T_EQ_INT(store_hot_pairs(s), r->n);
    for (size_t i = 1; i < r->n; i++) {
        if (r->v[i].qid == r->v[i - 1].qid)
            T_ASSERT(r->v[i].id > r->v[i - 1].id);
    }
    qsort(r->v, r->n, sizeof(*r->v), cmp_rmsg);
}

static void
expect_same(struct rset *a, struct rset *b)
{
    qsort(a->v, a->n, sizeof(*a->v), cmp_rmsg);
    qsort(b->v, b->n, sizeof(*b->v), cmp_rmsg);
    T_EQ_INT(a->n, b->n);
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        T_EQ_INT(a->v[i].qid, b->v[i].qid);
        T_EQ_INT(a->v[i].id, b->v[i].id);
        T_EQ_INT(a->v[i].pos, b->v[i].pos);
        T_EQ_INT(a->v[i].body_len, b->v[i].body_len);
        T_EQ_INT(a->v[i].meta_len, b->v[i].meta_len);
    }
}

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

T_CASE(hot_index_reports_what_recovery_reports)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset hot = {0}, rec = {0}, again = {0};
    uint64_t qa[1] = {QA}, qab[2] = {QB, QA}, qc[1] = {QC},
             qabc[3] = {QA, QB, QC};
    uint64_t ids[3000], pos, lsn = 0, x = 88172645463325252ULL;
    uint8_t body[512];
    struct store_stats st;
    const uint64_t *sets[4] = {qa, qab, qc, qabc};
    const size_t nset[4] = {1, 2, 1, 3};

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "hot"), NULL, &l);
    cfg.hot_index = true;
    s = topen(&cfg, NULL);
    for (int i = 0; i < 3000; i++) {
        size_t k = i % 4;

        tbody(body, 1 + (size_t)i % sizeof(body), (uint64_t)i);
        lsn = tappend(s, sets[k], nset[k], i % 2 ? "meta" : "m", body,
                      1 + (size_t)i % sizeof(body), &ids[i], &pos);
        /* the oldest first, as queues ack, but for a few long-lived
           ones (compaction moves them), and now and then any */
        if (i >= 10 && (i - 10) % 100 != 0)
            store_append_ack(s, QA, ids[i - 10]);
        if (i >= 5 && i % 4 != 0)
            store_append_ack(s, QB, ids[i - 5]);
        if (i % 7 == 0)
            store_append_ack(s, QB, ids[rnd(&x) % (uint64_t)(i + 1)]);
    }
    /* queue C deleted, then redeclared under the same name */
    store_append_queue_delete(s, QC);
    for (int i = 0; i < 20; i++)
        lsn = tappend(s, qc, 1, "c", body, 10, NULL, &pos);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    /* compaction moves the long-lived messages of old segments */
    tloop_drain(&l, s);
    store_get_stats(s, &st);
    T_ASSERT(st.moved_msgs > 0);
    hot_set(s, &hot);
    T_ASSERT(hot.n > 20);
    store_close(s);

    /* a recovery finds the same pairs at the same positions, and a store
       opened with a hot index fills it from its recovery */
    s = topen(&cfg, &rec);
    expect_same(&hot, &rec);
    hot_set(s, &again);
    expect_same(&again, &rec);
    store_close(s);
    rset_free(&hot);
    rset_free(&rec);
    rset_free(&again);
    tloop_fini(&l);
}

T_CASE(mirror_apply_keeps_the_hot_index)
{
    char ldir[512], mdir[512];
    struct tloop ll, ml;
    struct store_config lcfg, mcfg;
    struct store *l, *m;
    struct rset hot = {0}, rec = {0};
    struct buf tap;
    uint64_t qa[1] = {QA}, qab[2] = {QA, QB}, ids[500], pos, mlsn;
    uint8_t body[100];
    char err[256];

    buf_init(&tap);
    tloop_init(&ll);
    tloop_init(&ml);
    lcfg = tcfg(tpath(ldir, sizeof(ldir), "leader"), NULL, &ll);
    mcfg = tcfg(tpath(mdir, sizeof(mdir), "mirror"), NULL, &ml);
    mcfg.hot_index = true;
    l = topen(&lcfg, NULL);
    m = topen(&mcfg, NULL);
    store_tap(l, &tap);
    for (int i = 0; i < 500; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(l, i % 2 ? qa : qab, i % 2 ? 1 : 2, "meta", body, sizeof(body),
                &ids[i], &pos);
        if (i % 5 == 4)
            store_append_ack(l, QA, ids[i - 2]);
    }
    store_append_queue_delete(l, QB);
    store_tap_cut(l);
    mlsn = store_apply(m, buf_bytes(&tap), err, sizeof(err));
    T_ASSERT(mlsn > 0);
    T_ASSERT(tloop_wait_durable(&ml, m, mlsn));
    hot_set(m, &hot);
    T_EQ_INT(hot.n, 400); /* QA's 500 less 100 acked; QB deleted */
    store_tap(l, NULL);
    store_close(l);
    store_close(m);
    m = topen(&mcfg, &rec);
    expect_same(&hot, &rec);
    store_close(m);
    rset_free(&hot);
    rset_free(&rec);
    buf_fini(&tap);
    tloop_fini(&ll);
    tloop_fini(&ml);
}

T_CASE(suspended_store_goes_on_in_another_directory)
{
    char adir[512], bdir[512], err[512];
    struct tloop l, l2;
    struct store_config cfg;
    struct store *s;
    struct rset hot = {0}, rec = {0};
    uint64_t qa[1] = {QA}, ids[200], pos[200], lsn = 0;
    uint8_t body[300];
    uint64_t bytes;

    tloop_init(&l);
    tloop_init(&l2);
    cfg = tcfg(tpath(adir, sizeof(adir), "copy"), NULL, &l);
    tpath(bdir, sizeof(bdir), "vhost");
    cfg.hot_index = true;
    cfg.segment_size = 16 << 10; /* several segments to move */
    s = topen(&cfg, NULL);
    for (int i = 0; i < 100; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        lsn = tappend(s, qa, 1, "m", body, sizeof(body), &ids[i], &pos[i]);
    }
    /* appended, not yet flushed: the suspension writes it */
    T_ASSERT(store_suspend(s));
    /* the whole directory moves, its LOCK file with it (as a take-over
       does: vhostdir__adopt) */
    T_EQ_INT(rename(adir, bdir), 0);
    T_ASSERT(tcount_segments(bdir, &bytes) > 1);
    T_EQ_INT(store_resume(s, bdir, tloop_wake, &l2, err, sizeof(err)), WR_OK);
    T_ASSERT(store_durable_lsn(s) >= lsn);
    /* reads, appends, acks and new segments go on in the new directory */
    for (int i = 0; i < 100; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        T_ASSERT(tcheck_msg(s, pos[i], "m", body, sizeof(body)));
    }
    for (int i = 100; i < 200; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        tappend(s, qa, 1, "m", body, sizeof(body), &ids[i], &pos[i]);
    }
    for (int i = 0; i < 50; i++)
        lsn = store_append_ack(s, QA, ids[i]);
    T_ASSERT(tloop_wait_durable(&l2, s, lsn));
    T_EQ_INT(tcount_segments(adir, &bytes), 0); /* nothing came back */
    hot_set(s, &hot);
    T_EQ_INT(hot.n, 150);
    store_close(s);
    cfg.dir = bdir;
    cfg.wake_arg = &l2;
    s = topen(&cfg, &rec);
    expect_same(&hot, &rec);
    for (size_t i = 0; i < rec.n; i++) {
        uint64_t k = rec.v[i].id - ids[0];

        tbody(body, sizeof(body), k);
        T_ASSERT(tcheck_msg(s, rec.v[i].pos, "m", body, sizeof(body)));
    }
    store_close(s);
    rset_free(&hot);
    rset_free(&rec);
    tloop_fini(&l);
    tloop_fini(&l2);
}

static const struct t_case cases[] = {
    T_REG(hot_index_reports_what_recovery_reports),
    T_REG(mirror_apply_keeps_the_hot_index),
    T_REG(suspended_store_goes_on_in_another_directory),
};

T_MAIN(cases)
