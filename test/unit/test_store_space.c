/*
 * Unit tests for store/ disk space: dead segments are deleted (and only
 * when no acked message can come back), compaction moves the few live
 * messages of old segments, a random workload checked against a model
 * at snapshots and restarts, recovery reads summaries instead of
 * segments, and segment size bounds.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <stdlib.h>

#define QA 0x0aULL
#define QB 0x0bULL

static struct store *
topen(struct store_config *cfg, struct rset *r)
{
    struct store *s;
    char err[1024];

    if (store_open(cfg, r ? &rset_cb : NULL, r, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    return s;
}

T_CASE(publish_and_ack_gives_the_space_back)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[1] = {QA}, ids[4000], pos, lsn = 0, bytes, peak = 0;
    uint8_t body[1024];
    struct store_stats st;
    size_t nseg;

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 4000; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        lsn = tappend(s, q, 1, "m", body, sizeof(body), &ids[i], &pos);
        if (i % 100 == 99) {
            T_ASSERT(tloop_wait_durable(&l, s, lsn));
            /* consume with a lag of 1000 messages */
            for (int k = i - 1099; k >= 0 && k <= i - 1000; k++)
                lsn = store_append_ack(s, QA, ids[k]);
        }
        nseg = tcount_segments(dir, &bytes);
        peak = WR_MAX(peak, bytes);
    }
    for (int k = 3000; k < 4000; k++)
        lsn = store_append_ack(s, QA, ids[k]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    tloop_drain(&l, s);
    /* about 4 MB went through 64 KiB segments; one small one is left */
    nseg = tcount_segments(dir, &bytes);
    store_get_stats(s, &st);
    T_ASSERT(peak < (1100 * 1100) * 2);
    T_EQ_INT(nseg, st.segments);
    T_EQ_INT(st.live_msgs, 0);
    T_ASSERT(nseg <= 2);
    T_ASSERT(bytes <= cfg.segment_size / 4);
    T_EQ_INT(l.nmoved, 0); /* FIFO consumption needs no compaction */
    store_close(s);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 0);
    T_ASSERT(tappend(s, q, 1, "m", "x", 1, &ids[0], &pos) > 0);
    T_ASSERT(ids[0] > ids[3999]);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

T_CASE(queue_delete_gives_the_space_back)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t qa[1] = {QA}, qb[1] = {QB}, lsn = 0, bytes, keep, kpos;
    uint8_t body[1024] = {1};

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 1000; i++)
        lsn = tappend(s, qa, 1, "m", body, sizeof(body), NULL, NULL);
    tappend(s, qb, 1, "keep", "me", 2, &keep, &kpos);
    for (int i = 0; i < 1000; i++)
        lsn = tappend(s, qa, 1, "m", body, sizeof(body), NULL, NULL);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(tcount_segments(dir, NULL) > 20);
    lsn = store_append_queue_delete(s, QA);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    tloop_drain(&l, s);
    /* the lone message of B pins at most its own segment (no need to
       move it: nothing else is pinned) */
    T_ASSERT(tcount_segments(dir, &bytes) <= 3);
    T_ASSERT(bytes < 3 * cfg.segment_size);
    if (l.nmoved)
        kpos = l.moved[l.nmoved - 1].pos;
    T_ASSERT(tcheck_msg(s, kpos, "keep", "me", 2));
    store_close(s);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 1);
    T_EQ_INT(r.v[0].id, keep);
    T_EQ_INT(r.v[0].qid, QB);
    T_ASSERT(tcheck_msg(s, r.v[0].pos, "keep", "me", 2));
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

T_CASE(long_lived_messages_do_not_pin_history)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t qa[1] = {QA}, qb[2] = {QB, QA + 100}, keep[10], kpos[10];
    uint64_t ids[5000], pos, lsn = 0, bytes;
    uint8_t body[1024];
    struct store_stats st;

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 10; i++) {
        tbody(body, 500, (uint64_t)i + 1000);
        tappend(s, qa, 1, "keep", body, 500, &keep[i], &kpos[i]);
    }
    /* lots of traffic on B (and a second queue) behind them, consumed
       with a lag: acks land in later segments than their messages, so
       dependency chains reach back to the first segment */
    for (int i = 0; i < 5000; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        lsn = tappend(s, qb, 2, "m", body, sizeof(body), &ids[i], &pos);
        if (i >= 100) {
            store_append_ack(s, QB, ids[i - 100]);
            store_append_ack(s, QA + 100, ids[i - 100]);
        }
        if (i % 50 == 0) {
            store_flush(s);
            store_poll(s, &tloop_events, &l);
        }
    }
    for (int i = 4900; i < 5000; i++) {
        store_append_ack(s, QB, ids[i]);
        lsn = store_append_ack(s, QA + 100, ids[i]);
    }
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    tloop_drain(&l, s);
    store_get_stats(s, &st);
    T_EQ_INT(st.live_msgs, 10);
    /* Whether the first segment was compacted or only the dead ones
     * behind it were deleted depends on how fast deletions ran (the
     * store compacts only when the log is over twice its live data plus
     * two segments); either way every kept message reads back at its
     * latest position and the history is gone. */
    for (int i = 0; i < 10; i++) {
        uint64_t latest = kpos[i];

        for (size_t k = 0; k < l.nmoved; k++) {
            if (l.moved[k].id == keep[i]) {
                T_EQ_INT(l.moved[k].qid, QA);
                latest = l.moved[k].pos;
            }
        }
        kpos[i] = latest;
        tbody(body, 500, (uint64_t)i + 1000);
        T_ASSERT(tcheck_msg(s, kpos[i], "keep", body, 500));
    }
    /* the 5 MB of history is gone */
    if (tcount_segments(dir, &bytes) > 3 || bytes >= 3 * cfg.segment_size)
        for (size_t i = 0; i < s->nsegs; i++)
            fprintf(stderr, "seg %u size %llu live %u/%u deps %u\n",
                    s->segs[i]->no, (unsigned long long)s->segs[i]->size,
                    s->segs[i]->live_msgs, s->segs[i]->nrecs,
                    s->segs[i]->ndeps);
    T_ASSERT(tcount_segments(dir, &bytes) <= 3);
    T_ASSERT(bytes < 3 * cfg.segment_size);
    store_close(s);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 10);
    for (int i = 0; i < 10; i++) {
        T_EQ_INT(r.v[i].id, keep[i]);
        T_EQ_INT(r.v[i].pos, kpos[i]);
        tbody(body, 500, (uint64_t)i + 1000);
        T_ASSERT(tcheck_msg(s, r.v[i].pos, "keep", body, 500));
    }
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* ---- a random workload against a model */

#define MAXM 100000
#define NQ   5

struct mmsg {
    uint64_t pos;
    uint64_t q[3];
    int nq;
    bool live[3];
    bool transient;
    bool exists;
    uint32_t blen;
};

struct model {
    struct mmsg *m; /* indexed by id */
    uint64_t (*pairs)[2];
    size_t npairs;
    uint64_t rng;
    uint64_t qs[NQ];
};

static uint64_t trace_id;

#define TRACE(id, ...)                    \
    do {                                  \
        if ((id) == trace_id)             \
            fprintf(stderr, __VA_ARGS__); \
    } while (0)

static uint64_t
rnd(struct model *md)
{
    md->rng ^= md->rng << 13;
    md->rng ^= md->rng >> 7;
    md->rng ^= md->rng << 17;
    return md->rng;
}

static void
meta_of(char *out, size_t n, uint64_t id)
{
    snprintf(out, n, "meta-%llu", (unsigned long long)id);
}

static void
m_append(struct model *md, struct store *s)
{
    struct store_msg_in in;
    uint8_t body[2048];
    char meta[32];
    uint64_t id = s->next_id, pos;
    struct mmsg *m = &md->m[id];

    T_ASSERT(id < MAXM);
    m->nq = 1 + (int)(rnd(md) % 3);
    for (int j = 0; j < m->nq; j++) {
        bool dup;

        do {
            m->q[j] = md->qs[rnd(md) % NQ];
            dup = false;
            for (int k = 0; k < j; k++)
                dup |= m->q[k] == m->q[j];
        } while (dup);
        m->live[j] = true;
    }
    m->transient = rnd(md) % 10 == 0;
    m->blen = (uint32_t)(rnd(md) % 4 == 0 ? rnd(md) % 2000 : rnd(md) % 300);
    m->exists = true;
    meta_of(meta, sizeof(meta), id);
    tbody(body, m->blen, id);
    in.qids = m->q;
    in.nqids = (size_t)m->nq;
    in.meta = bytes_str(meta);
    in.body = bytes_of(body, m->blen);
    in.transient = m->transient;
    T_ASSERT(store_append_msg(s, &in, &id, &pos) > 0);
    T_EQ_INT(id, (uint64_t)(m - md->m));
    m->pos = pos;
    TRACE(id, "append %llu nq %d q0 %llx pos %llx tr %d\n",
          (unsigned long long)id, m->nq, (unsigned long long)m->q[0],
          (unsigned long long)pos, m->transient);
    for (int j = 0; j < m->nq; j++) {
        md->pairs = realloc(md->pairs, (md->npairs + 1) * sizeof(*md->pairs));
        md->pairs[md->npairs][0] = id;
        md->pairs[md->npairs][1] = (uint64_t)j;
        md->npairs++;
    }
}

static void
m_ack(struct model *md, struct store *s)
{
    size_t k;
    struct mmsg *m;
    int j;

    if (md->npairs == 0)
        return;
    k = rnd(md) % md->npairs;
    m = &md->m[md->pairs[k][0]];
    j = (int)md->pairs[k][1];
    if (m->live[j]) {
        T_ASSERT(store_append_ack(s, m->q[j], md->pairs[k][0]) > 0);
        TRACE(md->pairs[k][0], "ack %llu q %llx head seg %u\n",
              (unsigned long long)md->pairs[k][0], (unsigned long long)m->q[j],
              store_head(s)->no);
        m->live[j] = false;
    }
    md->pairs[k][0] = md->pairs[md->npairs - 1][0];
    md->pairs[k][1] = md->pairs[md->npairs - 1][1];
    md->npairs--;
}

static void
m_qdel(struct model *md, struct store *s)
{
    uint64_t q = md->qs[rnd(md) % NQ];

    T_ASSERT(store_append_queue_delete(s, q) > 0);
    if (trace_id)
        fprintf(stderr, "qdel %llx head %u next id %llu\n",
                (unsigned long long)q, store_head(s)->no,
                (unsigned long long)s->next_id);
    for (uint64_t id = 1; id < MAXM; id++) {
        for (int j = 0; j < md->m[id].nq; j++) {
            if (md->m[id].q[j] == q)
                md->m[id].live[j] = false;
        }
    }
}

static void
m_moves(struct model *md, struct tloop *l)
{
    for (size_t i = 0; i < l->nmoved; i++) {
        struct mmsg *m = &md->m[l->moved[i].id];
        bool listed = false;

        T_ASSERT(m->exists);
        for (int j = 0; j < m->nq; j++)
            listed |= m->q[j] == l->moved[i].qid && m->live[j];
        T_ASSERT(listed); /* only live pairs move */
        m->pos = l->moved[i].pos;
        TRACE(l->moved[i].id, "moved %llu q %llx to %llx\n",
              (unsigned long long)l->moved[i].id,
              (unsigned long long)l->moved[i].qid, (unsigned long long)m->pos);
    }
    l->nmoved = 0;
}

static void
m_poll(struct model *md, struct store *s, struct tloop *l)
{
    store_flush(s);
    store_poll(s, &tloop_events, l);
    m_moves(md, l);
}

/* Recovery of dir must report exactly the model's live pairs (transient
   ones excluded), at the model's positions, readable byte-exact. */
static void
m_verify(struct model *md, struct store *rs, const struct rset *r,
         bool same_pos)
{
    size_t expect = 0;
    uint8_t body[2048];
    char meta[32];

    for (uint64_t id = 1; id < MAXM; id++) {
        struct mmsg *m = &md->m[id];

        for (int j = 0; m->exists && j < m->nq; j++) {
            const struct rmsg *x = rset_find(r, m->q[j], id);

            if (!m->live[j] || m->transient) {
                if (x)
                    t_fail(__FILE__, __LINE__,
                           "message %llu of queue %llx came back",
                           (unsigned long long)id, (unsigned long long)m->q[j]);
                continue;
            }
            expect++;
            if (!x)
                t_fail(__FILE__, __LINE__, "message %llu of queue %llx lost",
                       (unsigned long long)id, (unsigned long long)m->q[j]);
            if (same_pos && x->pos != m->pos)
                t_fail(__FILE__, __LINE__,
                       "message %llu of queue %llx at %llx, not %llx",
                       (unsigned long long)id, (unsigned long long)m->q[j],
                       (unsigned long long)x->pos, (unsigned long long)m->pos);
            meta_of(meta, sizeof(meta), id);
            tbody(body, m->blen, id);
            T_ASSERT(tcheck_msg(rs, x->pos, meta, body, m->blen));
        }
    }
    T_EQ_INT(r->n, expect);
}

static void
m_snapshot(struct model *md, struct store *s, struct tloop *l, int k)
{
    char copy[512], name[64];
    struct store_config cfg;
    struct store *cs;
    struct rset r = {0};

    /* polling may append moved copies: wait until they are durable too */
    for (uint64_t lsn = 0; lsn != s->lsn;) {
        lsn = s->lsn;
        T_ASSERT(tloop_wait_durable(l, s, lsn));
    }
    m_moves(md, l);
    snprintf(name, sizeof(name), "snap%d", k);
    tpath(copy, sizeof(copy), name);
    tcopy_dir(s->dir, copy);
    cfg = tcfg(copy, NULL, NULL);
    cs = topen(&cfg, &r);
    fprintf(stderr, "snapshot %d\n", k);
    m_verify(md, cs, &r, true);
    store_close(cs);
    rset_free(&r);
    trm_dir(copy);
}

static struct store *
m_restart(struct model *md, struct store *s, struct store_config *cfg,
          struct tloop *l)
{
    struct rset r = {0};

    m_poll(md, s, l);
    store_close(s);
    l->nmoved = 0;
    s = topen(cfg, &r);
    fprintf(stderr, "restart\n");
    m_verify(md, s, &r, false);
    /* transient messages are gone now; positions come from recovery */
    for (size_t i = 0; i < r.n; i++)
        md->m[r.v[i].id].pos = r.v[i].pos;
    for (uint64_t id = 1; id < MAXM; id++) {
        if (md->m[id].transient)
            memset(md->m[id].live, 0, sizeof(md->m[id].live));
    }
    rset_free(&r);
    return s;
}

T_CASE(random_workload_matches_the_model)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct model md;
    uint64_t bytes;
    const char *seed = getenv("STORE_TEST_SEED");
    int snaps = 0;

    memset(&md, 0, sizeof(md));
    md.m = calloc(MAXM, sizeof(*md.m));
    md.rng = seed ? strtoull(seed, NULL, 0) : 0x5eed1234abcdULL;
    trace_id = getenv("STORE_TRACE_ID")
                   ? strtoull(getenv("STORE_TRACE_ID"), NULL, 0)
                   : 0;
    fprintf(stderr, "seed 0x%llx\n", (unsigned long long)md.rng);
    for (int i = 0; i < NQ; i++)
        md.qs[i] = 0x100 + (uint64_t)i;
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    cfg.segment_size = 16 << 10;
    /* the page cache is enough for snapshots; spare the disk */
    cfg.fsync = STORE_FSYNC_NEVER;
    s = topen(&cfg, NULL);
    for (int step = 0; step < 30000; step++) {
        uint64_t r = rnd(&md) % 1000;

        if (r < 30) /* messages the vhost keeps in memory only */
            for (uint64_t k = rnd(&md) % 20; k > 0; k--)
                store_alloc_id(s);
        else if (r < 450)
            m_append(&md, s);
        else if (r < 880)
            m_ack(&md, s);
        else if (r < 883)
            m_qdel(&md, s);
        else if (r < 990)
            m_poll(&md, s, &l);
        else if (r < 998 && snaps < 25)
            m_snapshot(&md, s, &l, snaps++);
        else if (r >= 998)
            s = m_restart(&md, s, &cfg, &l);
    }
    s = m_restart(&md, s, &cfg, &l);
    /* consume everything: the log shrinks to about one segment */
    while (md.npairs)
        m_ack(&md, s);
    T_ASSERT(tloop_wait_durable(&l, s, s->lsn));
    tloop_drain(&l, s);
    m_moves(&md, &l);
    T_ASSERT(tcount_segments(dir, &bytes) <= 2);
    T_ASSERT(bytes <= cfg.segment_size);
    s = m_restart(&md, s, &cfg, &l);
    store_close(s);
    free(md.pairs);
    free(md.m);
    tloop_fini(&l);
}

/* ---- recovery reads summaries, not segments */

T_CASE(recovery_reads_live_records_not_history)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[3] = {QA, QB, QA + 7}, lsn = 0, bytes, got;
    uint64_t ids[3000];
    uint8_t body[1024];
    size_t nseg;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 3000; i++) {
        ids[i] = s->next_id;
        tbody(body, sizeof(body), s->next_id);
        lsn = tappend(s, &q[i % 3], 1, "m", body, sizeof(body), NULL, NULL);
        if (i % 100 == 0)
            store_flush(s);
    }
    /* ack all but every tenth: each segment keeps a few live messages */
    for (int i = 0; i < 3000; i++) {
        if (i % 10 != 0)
            lsn = store_append_ack(s, q[i % 3], ids[i]);
    }
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_close(s);
    nseg = tcount_segments(dir, &bytes);
    T_ASSERT(nseg > 40);
    atomic_store(&t.bytes_read, 0);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 300);
    /* the 300 live records are read back and checked, plus ~10 bytes of
       summary per message; the 2,700 acked bodies are not read */
    got = atomic_load(&t.bytes_read);
    fprintf(stderr, "recovery read %llu of %llu bytes\n",
            (unsigned long long)got, (unsigned long long)bytes);
    T_ASSERT(got >= 300 * sizeof(body));
    T_ASSERT(got * 4 < bytes);
    store_close(s);
    rset_free(&r);
    /* repair reads everything (the slow path, for comparison) */
    cfg.repair = true;
    atomic_store(&t.bytes_read, 0);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 300);
    T_ASSERT(atomic_load(&t.bytes_read) >= bytes);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

T_CASE(segments_stay_within_their_size)
{
    char dir[512], path[600];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[1] = {QA}, lsn = 0, big_id, big_pos;
    uint8_t body[200000];

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    cfg.segment_size = 8192;
    s = topen(&cfg, NULL);
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i * 7919 % 3000);

        tbody(body, n, s->next_id);
        lsn = tappend(s, q, 1, "m", body, n, NULL, NULL);
        store_append_ack(s, q[0], s->next_id - 1 - (uint64_t)(i % 2));
    }
    /* a record larger than a segment gets a segment of its own */
    tbody(body, sizeof(body), s->next_id);
    lsn = tappend(s, q, 1, "big", body, sizeof(body), &big_id, &big_pos);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(tcheck_msg(s, big_pos, "big", body, sizeof(body)));
    for (size_t i = 0; i + 1 < s->nsegs; i++) {
        struct seg *g = s->segs[i];

        seg_path(path, sizeof(path), dir, g->no);
        if (g->no == POS_SEG(big_pos)) {
            T_EQ_INT(POS_OFF(big_pos), SEG_HDR_SIZE + REC_BATCH_SIZE);
            continue;
        }
        if (!g->unlinking)
            T_ASSERT(tfile_size(path) <= cfg.segment_size);
    }
    store_close(s);
    s = topen(&cfg, &r);
    T_ASSERT(rset_find(&r, QA, big_id));
    T_ASSERT(tcheck_msg(s, rset_find(&r, QA, big_id)->pos, "big", body,
                        sizeof(body)));
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* Every message of a vhost takes a store id, persistent or not
   (store_alloc_id), so stored ids have gaps: segments go sparse, acks of
   ids never stored are no-ops, and a head spanning 2^32 ids is sealed. */
T_CASE(sparse_ids_from_memory_only_messages)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[2] = {QA, QB}, ids[3000], pos, lsn = 0, x = 0, far, farpos;
    uint8_t body[100];
    bool sparse = false;
    int live = 0;

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    s = topen(&cfg, NULL);
    for (int i = 0; i < 3000; i++) {
        for (int k = i % 37; k > 0; k--)
            x = store_alloc_id(s);
        /* an id never stored: acking it changes nothing */
        T_EQ_INT(store_append_ack(s, QA, x), s->lsn);
        tbody(body, sizeof(body), s->next_id);
        lsn = tappend(s, &q[i % 2], 1, "m", body, sizeof(body), &ids[i], &pos);
        if (i % 3 == 0)
            store_append_ack(s, q[i % 2], ids[i]);
        if (i % 200 == 0)
            T_ASSERT(tloop_wait_durable(&l, s, lsn));
        for (size_t k = 0; k < s->nsegs; k++)
            sparse |= s->segs[k]->ioff != NULL;
    }
    T_ASSERT(sparse);
    /* a quiet head while 2^32 ids go by: sealed before the next append */
    x = store_head(s)->no;
    s->next_id += 1ULL << 32;
    lsn = tappend(s, q, 1, "far", "away", 4, &far, &farpos);
    T_ASSERT(store_head(s)->no > x);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(tcheck_msg(s, farpos, "far", "away", 4));
    store_close(s);
    s = topen(&cfg, &r);
    for (int i = 0; i < 3000; i++) {
        const struct rmsg *m = rset_find(&r, q[i % 2], ids[i]);

        T_ASSERT((m != NULL) == (i % 3 != 0));
        if (m) {
            tbody(body, sizeof(body), ids[i]);
            T_ASSERT(tcheck_msg(s, m->pos, "m", body, sizeof(body)));
            live++;
        }
    }
    T_ASSERT(rset_find(&r, QA, far) != NULL);
    T_EQ_INT(r.n, (size_t)live + 1);
    /* and acks after the restart find the sparse originals */
    for (int i = 0; i < 3000; i++) {
        if (i % 3 != 0)
            lsn = store_append_ack(s, q[i % 2], ids[i]);
    }
    lsn = store_append_ack(s, QA, far);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    tloop_drain(&l, s);
    T_ASSERT(tcount_segments(dir, NULL) <= 2);
    store_close(s);
    rset_free(&r);
    s = topen(&cfg, &r);
    T_EQ_INT(r.n, 0);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(publish_and_ack_gives_the_space_back),
    T_REG(queue_delete_gives_the_space_back),
    T_REG(long_lived_messages_do_not_pin_history),
    T_REG(random_workload_matches_the_model),
    T_REG(recovery_reads_live_records_not_history),
    T_REG(segments_stay_within_their_size),
    T_REG(sparse_ids_from_memory_only_messages),
};

T_MAIN(cases)
