/*
 * Unit tests for cluster/mirror.c's delivery counts: a copy fed a
 * leader's records (its tap) and a long churn of DCNT frames (returns,
 * messages acked and replaced, counts of messages the copy never had)
 * keeps its dcounts file bounded (written again with the live counts
 * only), and the counts it holds, folded as a new leader applies them
 * (vhost_repl_dcounts_apply: in order, the last one wins, 0 forgets),
 * are exactly the leader's, across a compaction and a restart.
 */
#include "cluster/mirror.h"
#include "store/store.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"
#include "vhost/vhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QA    0x0aULL
#define QB    0x0bULL /* a queue the copy holds nothing of */
#define NLIVE 200
#define EPOCH 7

/* A leader's log and its tap, a copy, and what the leader counts. */
struct rig {
    struct tloop ll, ml;
    struct store *l;
    struct mirror *m;
    struct buf tap;
    uint64_t seq;
    uint64_t id[NLIVE];
    uint32_t n[NLIVE];
};

static void
feed(struct rig *r, enum repl_kind kind, struct bytes payload)
{
    struct repl_frame f = {kind, EPOCH, ++r->seq, payload};
    char err[512] = "";

    if (mirror_frame(r->m, &f, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "frame %d: %s", kind, err);
}

/* Ships what the leader's tap holds (a cut). */
static void
ship(struct rig *r)
{
    store_tap_cut(r->l);
    feed(r, REPL_RECS, buf_bytes(&r->tap));
    buf_reset(&r->tap);
    mirror_flush(r->m);
    mirror_poll(r->m);
}

static void
dcnt(struct rig *r, uint64_t qid, uint64_t id, uint32_t n)
{
    struct buf b;

    buf_init(&b);
    buf_put_u64(&b, qid);
    buf_put_u64(&b, id);
    buf_put_u32(&b, n);
    feed(r, REPL_DCNT, buf_bytes(&b));
    buf_fini(&b);
}

static void
mopen(struct rig *r)
{
    struct mirror_config c = {0};
    char err[512] = "";

    c.data_dir = t_tmpdir();
    c.vhost = "v";
    c.fsync = STORE_FSYNC_NEVER;
    c.segment_size = 1u << 20;
    c.wake = tloop_wake;
    c.wake_arg = &r->ml;
    if (mirror_open(&c, EPOCH, &r->m, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "mirror_open: %s", err);
}

static void
put_msg(struct rig *r, int i)
{
    uint64_t qa[1] = {QA}, pos;
    uint8_t body[64];

    tbody(body, sizeof(body), r->seq);
    tappend(r->l, qa, 1, "meta", body, sizeof(body), &r->id[i], &pos);
    r->n[i] = 0;
}

static void
rig_open(struct rig *r)
{
    char ldir[512];
    struct store_config lcfg;
    char err[512];

    memset(r, 0, sizeof(*r));
    buf_init(&r->tap);
    tloop_init(&r->ll);
    tloop_init(&r->ml);
    lcfg = tcfg(tpath(ldir, sizeof(ldir), "leader"), NULL, &r->ll);
    lcfg.fsync = STORE_FSYNC_NEVER;
    if (store_open(&lcfg, NULL, NULL, &r->l, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    store_tap(r->l, &r->tap);
    mopen(r);
    /* a snapshot: the copy starts empty, takes the messages, is synced */
    feed(r, REPL_SNAP, bytes_of(NULL, 0));
    for (int i = 0; i < NLIVE; i++)
        put_msg(r, i);
    ship(r);
    feed(r, REPL_SYNCED, bytes_of(NULL, 0));
}

static void
rig_close(struct rig *r)
{
    mirror_close(r->m);
    store_close(r->l);
    buf_fini(&r->tap);
    tloop_fini(&r->ll);
    tloop_fini(&r->ml);
}

static uint64_t
dcounts_size(void)
{
    char path[1024];
    char *dir = mirror_copy_dir(t_tmpdir(), "v");

    snprintf(path, sizeof(path), "%s/dcounts", dir);
    free(dir);
    return tfile_size(path);
}

/* One step of churn: message k comes back once more; every 7th step the
 * message is acked instead (count 0) and a new one takes its place;
 * every 50th a count of a message the copy never had (a transient one,
 * another queue's) that nothing ever clears. */
static void
churn(struct rig *r, uint64_t step)
{
    int k = (int)(step * 31 % NLIVE);

    if (step % 7 == 0) {
        store_append_ack(r->l, QA, r->id[k]);
        ship(r);
        dcnt(r, QA, r->id[k], 0);
        put_msg(r, k);
        ship(r);
    } else {
        dcnt(r, QA, r->id[k], ++r->n[k]);
    }
    if (step % 50 == 0)
        dcnt(r, QB, 1000000 + step, 3);
}

/* The copy's counts as a new leader applies them equal the leader's:
 * every message with a count has its last one, and nothing of QB or of
 * an acked message survives a compaction (stale ones appended after the
 * last compaction are allowed: at most `slack`). */
static void
check_counts(struct rig *r, size_t slack)
{
    struct buf all;
    struct cursor c;
    uint64_t qid, id;
    uint32_t n;
    size_t stale = 0, found = 0;

    buf_init(&all);
    T_EQ_INT(mirror_copy_dcounts(t_tmpdir(), "v", &all), WR_OK);
    T_EQ_INT(all.len % VH_DCOUNT_SIZE, 0);
    for (int i = 0; i < NLIVE; i++) {
        uint32_t last = 0;

        cur_init(&c, all.data, all.len);
        while (rd_u64(&c, &qid) && rd_u64(&c, &id) && rd_u32(&c, &n))
            if (qid == QA && id == r->id[i])
                last = n;
        if (last != r->n[i])
            t_fail(__FILE__, __LINE__, "message %llu: count %u, not %u",
                   (unsigned long long)r->id[i], last, r->n[i]);
        found += last > 0;
    }
    cur_init(&c, all.data, all.len);
    while (rd_u64(&c, &qid) && rd_u64(&c, &id) && rd_u32(&c, &n))
        stale += qid == QB;
    T_ASSERT(found > 0);
    T_ASSERT(stale <= slack);
    buf_fini(&all);
}

T_CASE(dcounts_stay_bounded_under_churn_and_keep_the_live_counts)
{
    struct rig r;
    uint64_t max = 0, appended = 0;
    /* compaction: more than 4096 entries and 4 times the live ones */
    const uint64_t bound = (4096 + 1 + 3) * VH_DCOUNT_SIZE;

    rig_open(&r);
    for (uint64_t step = 1; step <= 60000; step++) {
        churn(&r, step);
        appended += VH_DCOUNT_SIZE * (1 + (step % 50 == 0));
        max = WR_MAX(max, dcounts_size());
    }
    /* 60,000 returns and acks: over 1.2 MB appended, the file stayed
       within its bound */
    T_ASSERT(appended > 1200000);
    if (max > bound)
        t_fail(__FILE__, __LINE__, "dcounts grew to %llu bytes",
               (unsigned long long)max);
    /* QB's counts appended since the last rewrite only: at most one in
       50 of the 4096 entries a rewrite waits for */
    check_counts(&r, 4096 / 50 + 1);
    rig_close(&r);
}

T_CASE(dcounts_survive_compaction_restart_and_take_over)
{
    struct rig r;
    struct buf before;
    uint64_t step = 1;

    rig_open(&r);
    for (; step <= 20000; step++)
        churn(&r, step);
    check_counts(&r, 4096 / 50 + 1);
    /* a restart of the mirror: the file is read back into its map */
    mirror_close(r.m);
    buf_init(&before);
    T_EQ_INT(mirror_copy_dcounts(t_tmpdir(), "v", &before), WR_OK);
    mopen(&r);
    /* positions go on past the ones the copy took */
    r.seq += 10;
    /* more churn: the rewrites after the restart keep the counts the
       file had (those of messages not touched since included) */
    for (; step <= 40000; step++)
        churn(&r, step);
    check_counts(&r, 4096 / 50 + 1);
    T_ASSERT(dcounts_size() <= (4096 + 4) * VH_DCOUNT_SIZE);
    /* what a new leader takes over once this node wins the vhost (no
       copy open: the leader closed it) */
    mirror_close(r.m);
    r.m = NULL;
    check_counts(&r, 4096 / 50 + 1);
    /* a snapshot empties them */
    mopen(&r);
    feed(&r, REPL_SNAP, bytes_of(NULL, 0));
    T_EQ_INT(dcounts_size(), 0);
    buf_fini(&before);
    rig_close(&r);
}

/* A file left long (by a version that never rewrote it) is rewritten at
 * the first count after the copy opens. */
T_CASE(a_long_file_found_at_open_is_rewritten)
{
    struct rig r;
    struct buf junk;
    char path[1024];
    char *dir;

    rig_open(&r);
    dcnt(&r, QA, r.id[0], 1);
    r.n[0] = 1;
    mirror_close(r.m);
    dir = mirror_copy_dir(t_tmpdir(), "v");
    snprintf(path, sizeof(path), "%s/dcounts", dir);
    free(dir);
    buf_init(&junk);
    for (int i = 0; i < 50000; i++) { /* one message counted up and down */
        buf_put_u64(&junk, QA);
        buf_put_u64(&junk, r.id[1]);
        buf_put_u32(&junk, (uint32_t)(i % 2));
    }
    tappend_file(path, junk.data, junk.len);
    r.n[1] = 1; /* its last count */
    mopen(&r);
    r.seq += 10;
    T_ASSERT(dcounts_size() > 50000 * VH_DCOUNT_SIZE);
    dcnt(&r, QA, r.id[2], 5);
    r.n[2] = 5;
    T_ASSERT(dcounts_size() <= 4 * VH_DCOUNT_SIZE);
    check_counts(&r, 0);
    buf_fini(&junk);
    rig_close(&r);
}

static const struct t_case cases[] = {
    T_REG(dcounts_stay_bounded_under_churn_and_keep_the_live_counts),
    T_REG(dcounts_survive_compaction_restart_and_take_over),
    T_REG(a_long_file_found_at_open_is_rewritten),
};

T_MAIN(cases)
