/*
 * Unit tests for store/: record format (every type, checksums, versions,
 * golden bytes), append/read, recovery of the live set, torn tails at
 * every byte offset, garbage, corruption and repair.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define QA 0x1111111111111111ULL
#define QB 0x2222222222222222ULL
#define QC 0x3333333333333333ULL

/* ---- records */

static size_t
enc_msg(uint8_t *out, uint64_t id, uint8_t flags, const uint64_t *q,
        uint32_t nq, const char *meta, const char *body, uint64_t salt,
        uint32_t off)
{
    size_t n = rec_msg_size(id, nq, strlen(meta), strlen(body));

    rec_msg_encode(out, n, id, flags, q, nq, bytes_str(meta), bytes_str(body),
                   salt, off);
    return n;
}

static size_t
enc_tomb(uint8_t *out, uint8_t type, struct bytes pl, uint64_t salt,
         uint32_t off)
{
    memcpy(out + REC_HDR_SIZE, pl.ptr, pl.len);
    rec_finish(out, (uint32_t)(REC_HDR_SIZE + pl.len), type, salt, off);
    return REC_HDR_SIZE + pl.len;
}

T_CASE(records_roundtrip_every_type)
{
    uint8_t b[4096];
    uint64_t q[3] = {QA, QB, QC}, ids[4] = {5, 6, 7, 300}, id, qid, upto;
    const char *why;
    struct rec r;
    struct rec_msg m;
    struct rec_ack_it it;
    struct buf pl;
    uint32_t so;
    size_t n;

    n = enc_msg(b, 12345, REC_F_TRANSIENT, q, 3, "meta", "body!", 7, 40);
    T_EQ_INT(rec_check(b, n, 7, 40, &r, &why), REC_OK);
    T_EQ_INT(r.type, REC_MSG);
    T_EQ_INT(r.version, 1);
    T_EQ_INT(r.len, n);
    T_ASSERT(rec_msg_decode(r.payload, &m));
    T_EQ_INT(m.id, 12345);
    T_EQ_INT(m.flags, REC_F_TRANSIENT);
    T_EQ_INT(m.nqids, 3);
    T_EQ_INT(rec_msg_qid(&m, 2), QC);
    T_ASSERT(bytes_eq_str(m.meta, "meta") && bytes_eq_str(m.body, "body!"));

    buf_init(&pl);
    rec_ack_payload(&pl, QB, ids, 4);
    n = enc_tomb(b, REC_ACK, buf_bytes(&pl), 7, 99);
    T_EQ_INT(rec_check(b, n, 7, 99, &r, &why), REC_OK);
    T_ASSERT(rec_ack_begin(r.payload, &it));
    T_EQ_INT(it.qid, QB);
    for (int i = 0; i < 4; i++) {
        T_ASSERT(rec_ack_next(&it, &id));
        T_EQ_INT(id, ids[i]);
    }
    T_ASSERT(!rec_ack_next(&it, &id));

    buf_reset(&pl);
    rec_qdel_payload(&pl, QC, 77);
    n = enc_tomb(b, REC_QDEL, buf_bytes(&pl), 7, 1000);
    T_EQ_INT(rec_check(b, n, 7, 1000, &r, &why), REC_OK);
    T_ASSERT(rec_qdel_decode(r.payload, &qid, &upto));
    T_EQ_INT(qid, QC);
    T_EQ_INT(upto, 77);

    rec_batch_encode(b, 1234, 7, 2000);
    T_EQ_INT(rec_check(b, REC_BATCH_SIZE, 7, 2000, &r, &why), REC_OK);
    T_EQ_INT(r.type, REC_BATCH);
    T_EQ_INT(be32_load(r.payload.ptr), 1234);

    rec_seal_encode(b, 4321, 99, 7, 3000);
    T_EQ_INT(rec_check(b, REC_SEAL_SIZE, 7, 3000, &r, &why), REC_OK);
    T_ASSERT(rec_seal_decode(r.payload, &so, &upto));
    T_EQ_INT(so, 4321);
    T_EQ_INT(upto, 99);
    buf_fini(&pl);
}

T_CASE(records_summary_roundtrip)
{
    struct rec_sumb sb;
    struct rec_sum sum;
    struct rec_sum_it it;
    struct rec_sum_msg m, in[3] = {
                              {10, 0, 0, 40, 5, 1000},
                              {11, REC_F_TRANSIENT, 1, 1100, 0, 7},
                              {3, REC_F_MOVED, 0, 1200, 9, 0},
                          };
    uint64_t q1[1] = {QA}, q2[2] = {QA, QB}, ids[2] = {1, 2};
    struct buf out, pl;
    struct cursor c;
    struct rec_tomb t;
    const uint8_t *qids;
    struct rec r;
    const char *why;
    uint32_t n;

    rec_sumb_init(&sb);
    buf_init(&out);
    buf_init(&pl);
    rec_sumb_add_set(&sb, q1, 1);
    rec_sumb_add_set(&sb, q2, 2);
    for (int i = 0; i < 3; i++)
        rec_sumb_add_msg(&sb, &in[i]);
    rec_ack_payload(&pl, QA, ids, 2);
    rec_sumb_add_tomb(&sb, REC_ACK, buf_bytes(&pl));
    rec_summary_encode(&out, &sb, 42, 5000);
    T_ASSERT(out.len <= rec_sumb_record_size(&sb));
    T_EQ_INT(rec_check(out.data, out.len, 42, 5000, &r, &why), REC_OK);
    T_EQ_INT(r.type, REC_SUMMARY);
    T_ASSERT(rec_sum_decode(r.payload, &sum));
    T_EQ_INT(sum.nsets, 2);
    T_EQ_INT(sum.nmsgs, 3);
    T_EQ_INT(sum.ntombs, 1);
    cur_init(&c, sum.sets.ptr, sum.sets.len);
    T_ASSERT(rec_sum_set_next(&c, &n, &qids) && n == 1);
    T_ASSERT(rec_sum_set_next(&c, &n, &qids) && n == 2);
    T_EQ_INT(be64_load(qids + 8), QB);
    rec_sum_msgs_begin(&sum, &it);
    for (int i = 0; i < 3; i++) {
        T_ASSERT(rec_sum_msg_next(&it, &m));
        T_EQ_INT(m.id, in[i].id);
        T_EQ_INT(m.flags, in[i].flags);
        T_EQ_INT(m.set, in[i].set);
        T_EQ_INT(m.off, in[i].off);
        T_EQ_INT(m.meta_len, in[i].meta_len);
        T_EQ_INT(m.body_len, in[i].body_len);
    }
    cur_init(&c, sum.tombs.ptr, sum.tombs.len);
    T_ASSERT(rec_sum_tomb_next(&c, &t));
    T_EQ_INT(t.type, REC_ACK);
    T_EQ_MEM(t.payload.ptr, t.payload.len, pl.data, pl.len);
    rec_sumb_fini(&sb);
    buf_fini(&out);
    buf_fini(&pl);
}

T_CASE(records_every_damaged_byte_detected)
{
    uint8_t b[256], c[256];
    uint64_t q[1] = {QA};
    struct rec r;
    const char *why;
    size_t n = enc_msg(b, 77, 0, q, 1, "m", "hello world", 0xabcdef, 64);

    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(c, b, n);
            c[i] ^= (uint8_t)(1u << bit);
            T_ASSERT(rec_check(c, n, 0xabcdef, 64, &r, &why) != REC_OK);
        }
    }
    /* a stale record: right bytes, another file's salt or another offset */
    T_EQ_INT(rec_check(b, n, 0xabcdee, 64, &r, &why), REC_BAD);
    T_EQ_INT(rec_check(b, n, 0xabcdef, 65, &r, &why), REC_BAD);
    /* every strict prefix is short, never valid */
    for (size_t k = 0; k < n; k++)
        T_EQ_INT(rec_check(b, k, 0xabcdef, 64, &r, &why), REC_SHORT);
}

/* Rewrites type/version and a correct checksum, as a newer writer would. */
static void
forge(uint8_t *rec, uint32_t len, uint8_t type, uint8_t version, uint64_t salt,
      uint32_t off)
{
    rec[8] = type;
    rec[9] = version;
    be32_store(rec + 4,
               (uint32_t)XXH3_64bits_withSeed(
                   rec + 8, len - 8, salt ^ ((uint64_t)len << 32 | off)));
}

T_CASE(records_version_and_type_checked)
{
    uint8_t b[256];
    uint64_t q[1] = {QA};
    struct rec r;
    const char *why;
    size_t n = enc_msg(b, 1, 0, q, 1, "", "x", 5, 40);

    T_EQ_INT(rec_check(b, n, 5, 40, &r, &why), REC_OK);
    forge(b, (uint32_t)n, REC_MSG, 2, 5, 40);
    T_EQ_INT(rec_check(b, n, 5, 40, &r, &why), REC_BAD);
    T_ASSERT(strstr(why, "version"));
    forge(b, (uint32_t)n, 42, 1, 5, 40);
    T_EQ_INT(rec_check(b, n, 5, 40, &r, &why), REC_BAD);
    T_ASSERT(strstr(why, "type"));
    /* valid checksum but a payload that does not decode */
    forge(b, (uint32_t)n, REC_SEAL, 1, 5, 40);
    T_EQ_INT(rec_check(b, n, 5, 40, &r, &why), REC_BAD);
    T_ASSERT(strstr(why, "malformed"));
}

/* rec_check's verdict on a record of this type and payload. */
static enum rec_status
check_payload(uint8_t type, const uint8_t *pl, size_t n)
{
    uint8_t b[256];
    struct rec r;
    const char *why;

    return rec_check(b, enc_tomb(b, type, bytes_of(pl, n), 1, 40), 1, 40, &r,
                     &why);
}

T_CASE(records_payload_validation)
{
    /* ACK: count 2 but zero delta (ids must strictly increase) */
    uint8_t ack0[] = {1, 2, 3, 4, 5, 6, 7, 8, 2, 5, 0};
    /* ACK: count larger than the bytes left */
    uint8_t ack1[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 5};
    /* QDEL with a trailing byte */
    uint8_t qdel[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
    /* MSG with zero queues */
    uint8_t msg0[] = {1, 0, 0, 0};
    /* MSG with unknown flags */
    uint8_t msg1[] = {1, 0x80, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0};
    /* varint longer than 64 bits */
    uint8_t msg2[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                      0xff, 0xff, 0x7f, 0,    1,    0};

    T_EQ_INT(check_payload(REC_ACK, ack0, sizeof(ack0)), REC_BAD);
    T_EQ_INT(check_payload(REC_ACK, ack1, sizeof(ack1)), REC_BAD);
    T_EQ_INT(check_payload(REC_QDEL, qdel, sizeof(qdel)), REC_BAD);
    T_EQ_INT(check_payload(REC_MSG, msg0, sizeof(msg0)), REC_BAD);
    T_EQ_INT(check_payload(REC_MSG, msg1, sizeof(msg1)), REC_BAD);
    T_EQ_INT(check_payload(REC_MSG, msg2, sizeof(msg2)), REC_BAD);
}

static void
hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* The exact bytes of version 1 of each type: if this test breaks, the
   format changed: follow the workflow in store/record.c. */
T_CASE(records_golden_bytes)
{
    uint8_t b[256];
    char h[600];
    uint64_t q[2] = {QA, QB}, ids[3] = {1000, 1001, 1005};
    struct seg_hdr sh = {3, 0x0102030405060708ULL, 500}, sh2;
    struct mf_entry mfe[2] = {{1, 1}, {3, 500}};
    struct buf pl;
    const char *why;
    uint64_t seq;
    uint32_t nmf;
    size_t n;

    /* len 35, checksum, MSG v1, id 300, TRANSIENT, 2 queues, meta, body */
    n = enc_msg(b, 300, REC_F_TRANSIENT, q, 2, "mt", "bd", 0x55, 40);
    hex(h, b, n);
    T_EQ_STR(h, "00000023"
                "4b53a21a"
                "0101"
                "ac020102"
                "11111111111111112222222222222222"
                "026d74"
                "6264");
    /* queue A, 3 ids: 1000, +1, +4 */
    buf_init(&pl);
    rec_ack_payload(&pl, QA, ids, 3);
    n = enc_tomb(b, REC_ACK, buf_bytes(&pl), 0x55, 100);
    hex(h, b, n);
    T_EQ_STR(h, "00000017"
                "4ec11e62"
                "0201"
                "1111111111111111"
                "03e8070104");
    buf_reset(&pl);
    rec_qdel_payload(&pl, QB, 129);
    n = enc_tomb(b, REC_QDEL, buf_bytes(&pl), 0x55, 200);
    hex(h, b, n);
    T_EQ_STR(h, "00000014"
                "52d44a81"
                "0301"
                "2222222222222222"
                "8101");
    rec_batch_encode(b, 4096, 0x55, 300);
    hex(h, b, REC_BATCH_SIZE);
    T_EQ_STR(h, "0000000e"
                "6350b840"
                "0401"
                "00001000");
    rec_seal_encode(b, 4000, 777, 0x55, 400);
    hex(h, b, REC_SEAL_SIZE);
    T_EQ_STR(h, "00000016"
                "18bad1e4"
                "0601"
                "00000fa0"
                "0000000000000309");
    rec_hdr_encode(b, &sh);
    hex(h, b, SEG_HDR_SIZE);
    T_EQ_STR(h, "57524e4c4f47"
                "0001"
                "0000000000000003"
                "0102030405060708"
                "00000000000001f4"
                "00000000"
                "b95a6da2");
    T_ASSERT(rec_hdr_decode(b, SEG_HDR_SIZE, &sh2, &why));
    T_EQ_INT(sh2.no, 3);
    T_EQ_INT(sh2.salt, sh.salt);
    T_EQ_INT(sh2.next_id, 500);
    /* manifest v1, seq 7: segments 1 (ids from 1) and 3 (from 500) */
    buf_reset(&pl);
    rec_manifest_encode(&pl, 7, mfe, 2);
    hex(h, pl.data, pl.len);
    T_EQ_STR(h, "57524e4d414e"
                "0001"
                "0000000000000007"
                "00000002"
                "00000001"
                "0000000000000001"
                "00000003"
                "00000000000001f4"
                "6bfd9458");
    T_ASSERT(rec_manifest_decode(pl.data, pl.len, &seq, &nmf, &why));
    T_EQ_INT(seq, 7);
    T_EQ_INT(nmf, 2);
    buf_fini(&pl);
}

T_CASE(records_ack_batches_cost_about_a_byte_per_id)
{
    uint64_t ids[1000];
    struct buf pl;

    for (int i = 0; i < 1000; i++)
        ids[i] = 1000000 + (uint64_t)i * 2;
    buf_init(&pl);
    rec_ack_payload(&pl, QA, ids, 1000);
    /* qid 8 + count 2 + first 3 + 999 one-byte deltas */
    T_EQ_INT(pl.len, 8 + 2 + 3 + 999);
    buf_fini(&pl);
}

/* ---- append, read back, recovery */

T_CASE(open_creates_dir_and_reads_back_everywhere)
{
    char dir[512];
    struct tloop l;
    struct store *s;
    struct store_config cfg;
    char err[512];
    uint8_t body[3000];
    uint64_t q[1] = {QA}, id1, id2, pos1, pos2, lsn;

    tloop_init(&l);
    tpath(dir, sizeof(dir), "a/b/store");
    cfg = tcfg(dir, NULL, &l);
    T_EQ_INT(store_open(&cfg, &rset_cb, NULL, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(store_durable_lsn(s), 1);
    tbody(body, sizeof(body), 1);
    lsn = tappend(s, q, 1, "m1", body, sizeof(body), &id1, &pos1);
    T_ASSERT(lsn > 1);
    /* unflushed: read from the batch */
    T_ASSERT(tcheck_msg(s, pos1, "m1", body, sizeof(body)));
    store_flush(s);
    /* in flight or written: either way readable */
    T_ASSERT(tcheck_msg(s, pos1, "m1", body, sizeof(body)));
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_EQ_INT(l.durable, lsn);
    T_ASSERT(tcheck_msg(s, pos1, "m1", body, sizeof(body)));
    lsn = tappend(s, q, 1, "", "", 0, &id2, &pos2);
    T_ASSERT(id2 > id1);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    /* written, batch freed: read from the file */
    T_ASSERT(s->infl_head == NULL);
    T_ASSERT(tcheck_msg(s, pos2, "", "", 0));
    T_ASSERT(tcheck_msg(s, pos1, "m1", body, sizeof(body)));
    {
        struct buf b;
        struct bytes m, bd;

        buf_init(&b);
        T_EQ_INT(store_read_msg(s, pos1 + 1, &b, &m, &bd), WR_ERR);
        T_EQ_INT(store_read_msg(s, POS_MAKE(999, 40), &b, &m, &bd), WR_ERR);
        buf_fini(&b);
    }
    store_close(s);
    tloop_fini(&l);
}

T_CASE(limits_are_refused_without_failing)
{
    char dir[512], err[512];
    struct store_config cfg;
    struct store *s;
    struct store_msg_in m;
    uint64_t id, pos, q[1] = {QA};

    tpath(dir, sizeof(dir), "s");
    cfg = tcfg(dir, NULL, NULL);
    T_EQ_INT(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)), WR_OK);
    memset(&m, 0, sizeof(m));
    T_EQ_INT(store_append_msg(s, &m, &id, &pos), 0); /* no queue */
    m.qids = q;
    m.nqids = STORE_MAX_QIDS + 1;
    T_EQ_INT(store_append_msg(s, &m, &id, &pos), 0);
    /* too big: refused before anything is read from the view */
    m.nqids = 1;
    m.body = bytes_of(q, STORE_MAX_MSG);
    m.meta = bytes_of(q, 1);
    T_EQ_INT(store_append_msg(s, &m, &id, &pos), 0);
    T_ASSERT(store_error(s) == NULL);
    m.body = bytes_of(q, 8);
    T_ASSERT(store_append_msg(s, &m, &id, &pos) > 0);
    {
        struct store *s2;

        /* one process (one open) per directory */
        T_EQ_INT(store_open(&cfg, NULL, NULL, &s2, err, sizeof(err)), WR_ERR);
        T_ASSERT(strstr(err, "in use"));
        cfg.segment_size = 100;
        T_EQ_INT(store_open(&cfg, NULL, NULL, &s2, err, sizeof(err)), WR_ERR);
        T_ASSERT(strstr(err, "segment size"));
    }
    store_close(s);
}

struct model_msg {
    uint64_t id, pos;
    uint64_t qids[3];
    int nq;
    bool live[3];
    bool transient;
    char meta[32];
    uint32_t blen;
};

static bool
model_live(const struct model_msg *m, uint64_t qid)
{
    for (int j = 0; j < m->nq; j++) {
        if (m->qids[j] == qid)
            return m->live[j] && !m->transient;
    }
    return false;
}

/* Checks recovery against the model: exactly the live pairs, increasing
   id order per queue, positions that read back byte-exact. */
static void
check_recovered(struct store *s, const struct rset *r,
                const struct model_msg *mm, size_t n, const uint64_t *qs,
                size_t nqs)
{
    size_t expect = 0;
    uint8_t body[8192];

    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nqs; k++) {
            const struct rmsg *x = rset_find(r, qs[k], mm[i].id);

            if (!model_live(&mm[i], qs[k])) {
                T_ASSERT(x == NULL);
                continue;
            }
            expect++;
            T_ASSERT(x != NULL);
            T_EQ_INT(x->body_len, mm[i].blen);
            T_EQ_INT(x->meta_len, strlen(mm[i].meta));
            tbody(body, mm[i].blen, mm[i].id);
            T_ASSERT(tcheck_msg(s, x->pos, mm[i].meta, body, mm[i].blen));
        }
    }
    T_EQ_INT(r->n, expect);
    for (size_t k = 0; k < nqs; k++) {
        uint64_t last = 0;

        for (size_t i = 0; i < r->n; i++) {
            if (r->v[i].qid != qs[k])
                continue;
            T_ASSERT(r->v[i].id > last);
            last = r->v[i].id;
        }
    }
}

static uint64_t
model_append(struct store *s, struct model_msg *m, const uint64_t *q, int nq,
             uint32_t blen, bool transient, uint64_t k)
{
    uint8_t body[8192];
    struct store_msg_in in;
    uint64_t lsn;

    memset(m, 0, sizeof(*m));
    memcpy(m->qids, q, (size_t)nq * sizeof(*q));
    m->nq = nq;
    for (int j = 0; j < nq; j++)
        m->live[j] = true;
    m->transient = transient;
    m->blen = blen;
    snprintf(m->meta, sizeof(m->meta), "meta-%llu", (unsigned long long)k);
    in.qids = q;
    in.nqids = (size_t)nq;
    in.meta = bytes_str(m->meta);
    in.transient = transient;
    /* the body depends on the id, which we learn only after: peek it */
    tbody(body, blen, s->next_id);
    in.body = bytes_of(body, blen);
    lsn = store_append_msg(s, &in, &m->id, &m->pos);
    T_ASSERT(lsn > 0);
    return lsn;
}

static void
model_ack(struct store *s, struct model_msg *m, uint64_t qid)
{
    for (int j = 0; j < m->nq; j++) {
        if (m->qids[j] == qid)
            m->live[j] = false;
    }
    T_ASSERT(store_append_ack(s, qid, m->id) > 0);
}

T_CASE(recovery_reports_exactly_the_live_set)
{
    char dir[512], err[512];
    struct store_config cfg;
    struct tloop l;
    struct store *s;
    struct rset r = {0};
    struct model_msg mm[600];
    uint64_t qs[3] = {QA, QB, QC}, last_id, lsn = 0, id, pos;
    size_t n = 0;

    tloop_init(&l);
    tpath(dir, sizeof(dir), "s");
    cfg = tcfg(dir, NULL, &l);
    cfg.segment_size = 32 << 10; /* several segments */
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 0);
    for (int i = 0; i < 500; i++) {
        uint64_t q[2];
        int nq = 1;

        q[0] = qs[i % 3];
        if (i % 7 == 0)
            q[nq++] = qs[(i + 1) % 3];
        lsn = model_append(s, &mm[n], q, nq, (uint32_t)(i * 37 % 700),
                           i % 11 == 5, (uint64_t)i);
        n++;
        if (i % 3 == 0)
            model_ack(s, &mm[n - 1 - (size_t)(i % 5)], q[0]);
        if (i % 50 == 49)
            T_ASSERT(tloop_wait_durable(&l, s, lsn));
    }
    /* queue C is deleted; a later message to C (redeclared) survives */
    store_append_queue_delete(s, QC);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < mm[i].nq; j++) {
            if (mm[i].qids[j] == QC)
                mm[i].live[j] = false;
        }
    }
    lsn = model_append(s, &mm[n++], &qs[2], 1, 100, false, 999);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    last_id = mm[n - 1].id;
    store_close(s);

    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    check_recovered(s, &r, mm, n, qs, 3);
    T_ASSERT(rset_find(&r, QC, last_id) != NULL);
    /* ids continue after the highest one */
    T_ASSERT(tappend(s, qs, 1, "x", "y", 1, &id, &pos) > 0);
    T_ASSERT(id > last_id);
    store_close(s);
    /* and survive a second restart unchanged */
    {
        size_t before = r.n;

        rset_free(&r);
        T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
        T_EQ_INT(r.n, before + 1);
        store_close(s);
        rset_free(&r);
    }
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_ASSERT(rset_find(&r, QA, id) != NULL);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

T_CASE(wide_fanout_message_is_written_once)
{
    char dir[512], err[512];
    struct store_config cfg;
    struct tloop l;
    struct store *s;
    struct rset r = {0};
    uint64_t q[20], id, pos, lsn;
    struct store_stats st;

    tloop_init(&l);
    for (int i = 0; i < 20; i++)
        q[i] = 1000 + (uint64_t)i;
    tpath(dir, sizeof(dir), "s");
    cfg = tcfg(dir, NULL, &l);
    T_EQ_INT(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)), WR_OK);
    lsn = tappend(s, q, 20, "fan", "out", 3, &id, &pos);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_get_stats(s, &st);
    T_EQ_INT(st.live_msgs, 1);
    /* one MSG record (plus its BATCH marker) */
    T_ASSERT(st.bytes_written < 20 * 8 + 100);
    for (int i = 0; i < 20; i += 2)
        store_append_ack(s, q[i], id);
    /* acking twice or acking a queue it never entered changes nothing */
    T_EQ_INT(store_append_ack(s, q[0], id), s->lsn);
    T_EQ_INT(store_append_ack(s, 77, id), s->lsn);
    T_ASSERT(tloop_wait_durable(&l, s, s->lsn));
    store_close(s);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 10);
    for (int i = 1; i < 20; i += 2)
        T_ASSERT(rset_find(&r, q[i], id));
    for (int i = 1; i < 20; i += 2)
        store_append_ack(s, q[i], id);
    T_ASSERT(tloop_wait_durable(&l, s, s->lsn));
    store_get_stats(s, &st);
    T_EQ_INT(st.live_msgs, 0);
    store_close(s);
    rset_free(&r);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 0);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* ---- crashes at the module level: a child appends, the parent cuts */

/* Child: appends n messages to QA in `batches` flushes, each waited
   durable, then exits without closing (a crash). Message k has meta
   "m<k>" and tbody(k-th id). */
static void
crash_writer(const char *dir, int n, int batches, uint32_t blen)
{
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    char err[512];
    uint64_t q[1] = {QA}, lsn = 0;
    uint8_t body[4096];
    pid_t pid = fork();
    int status;

    T_ASSERT(pid >= 0);
    if (pid > 0) {
        T_ASSERT(waitpid(pid, &status, 0) == pid);
        T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return;
    }
    tloop_init(&l);
    cfg = tcfg(dir, NULL, &l);
    cfg.segment_size = 1 << 20;
    if (store_open(&cfg, NULL, NULL, &s, err, sizeof(err)) != WR_OK)
        _exit(1);
    for (int i = 0; i < n; i++) {
        char meta[32];
        uint64_t id, pos;

        snprintf(meta, sizeof(meta), "m%llu", (unsigned long long)s->next_id);
        tbody(body, blen, s->next_id);
        lsn = tappend(s, q, 1, meta, body, blen, &id, &pos);
        if ((i + 1) % (n / batches) == 0 && !tloop_wait_durable(&l, s, lsn))
            _exit(2);
    }
    if (!tloop_wait_durable(&l, s, lsn))
        _exit(3);
    _exit(0);
}

static void
check_prefix(const char *dir, int expect, uint32_t blen)
{
    struct store_config cfg = tcfg(dir, NULL, NULL);
    struct store *s;
    struct rset r = {0};
    char err[1024], meta[32];
    uint8_t body[4096];

    if (store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open failed: %s", err);
    T_EQ_INT(r.n, expect);
    for (size_t i = 0; i < r.n; i++) {
        snprintf(meta, sizeof(meta), "m%llu", (unsigned long long)r.v[i].id);
        tbody(body, blen, r.v[i].id);
        T_ASSERT(tcheck_msg(s, r.v[i].pos, meta, body, blen));
    }
    store_close(s);
    rset_free(&r);
}

T_CASE(torn_tail_cut_at_every_offset_of_the_last_record)
{
    char dir[512], work[512], seg[1024], wseg[1024];
    uint64_t offs[64];
    uint32_t lens[64];
    uint8_t types[64];
    size_t n;

    tpath(dir, sizeof(dir), "orig");
    crash_writer(dir, 6, 3, 150);
    tnewest_segment(dir, seg, sizeof(seg));
    n = tlist_records(seg, offs, lens, types, 64);
    /* [BATCH MSG MSG] x 3: the last record is the 6th message */
    T_EQ_INT(n, 9);
    T_EQ_INT(types[n - 1], REC_MSG);
    T_EQ_INT(offs[n - 1] + lens[n - 1], tfile_size(seg));
    for (uint64_t cut = offs[n - 1]; cut < offs[n - 1] + lens[n - 1]; cut++) {
        tpath(work, sizeof(work), "work");
        trm_dir(work);
        tcopy_dir(dir, work);
        snprintf(wseg, sizeof(wseg), "%s/%s", work, seg + strlen(dir) + 1);
        ttruncate(wseg, cut);
        check_prefix(work, 5, 150);
        /* the torn bytes were cut, the segment sealed right after the
           5th message, and the next open agrees */
        {
            uint64_t o2[64];
            uint32_t l2[64];
            uint8_t t2[64];
            size_t n2 = tlist_records(wseg, o2, l2, t2, 64);

            T_EQ_INT(n2, n - 1 + 2);
            T_EQ_INT(t2[n - 1], REC_SUMMARY);
            T_EQ_INT(o2[n - 1], offs[n - 1]);
        }
        check_prefix(work, 5, 150);
    }
    /* cuts inside the last batch's marker lose the whole last batch */
    for (uint64_t cut = offs[n - 3]; cut < offs[n - 3] + lens[n - 3]; cut++) {
        tpath(work, sizeof(work), "work");
        trm_dir(work);
        tcopy_dir(dir, work);
        snprintf(wseg, sizeof(wseg), "%s/%s", work, seg + strlen(dir) + 1);
        ttruncate(wseg, cut);
        check_prefix(work, 4, 150);
    }
}

T_CASE(garbage_after_the_last_record_is_cut)
{
    char dir[512], seg[1024];
    uint8_t junk[3000];
    uint64_t size;

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 10, 2, 300);
    tnewest_segment(dir, seg, sizeof(seg));
    size = tfile_size(seg);
    tbody(junk, sizeof(junk), 99);
    tappend_file(seg, junk, sizeof(junk));
    check_prefix(dir, 10, 300);
    /* the junk was cut and the segment sealed right after its data */
    {
        uint64_t offs[64];
        uint32_t lens[64];
        uint8_t types[64];
        size_t n = tlist_records(seg, offs, lens, types, 64);

        T_EQ_INT(types[n - 1], REC_SEAL);
        T_EQ_INT(types[n - 2], REC_SUMMARY);
        T_EQ_INT(offs[n - 2], size);
    }
    /* zeros (a preallocated or half-written tail) as well */
    crash_writer(dir, 3, 1, 300);
    tnewest_segment(dir, seg, sizeof(seg));
    memset(junk, 0, sizeof(junk));
    tappend_file(seg, junk, sizeof(junk));
    check_prefix(dir, 13, 300);
}

/* ---- corruption and repair */

/* The byte offset of the k-th MSG record of a segment file. */
static uint64_t
nth_msg(const char *seg, int k)
{
    uint64_t offs[256];
    uint32_t lens[256];
    uint8_t types[256];
    size_t n = tlist_records(seg, offs, lens, types, 256);

    for (size_t i = 0; i < n; i++) {
        if (types[i] == REC_MSG && k-- == 0)
            return offs[i];
    }
    T_ASSERT(!"no such record");
    return 0;
}

T_CASE(damaged_middle_record_refuses_then_repair_keeps_the_rest)
{
    char dir[512], seg[1024], err[1024], want[1200];
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t off;

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 12, 4, 200); /* 4 batches of 3 */
    tnewest_segment(dir, seg, sizeof(seg));
    off = nth_msg(seg, 4); /* in the second batch */
    tflip_byte(seg, off + 30);
    cfg = tcfg(dir, NULL, NULL);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_ERR);
    snprintf(want, sizeof(want), "%s at byte offset %llu", seg,
             (unsigned long long)off);
    if (!strstr(err, want) || !strstr(err, "--repair"))
        t_fail(__FILE__, __LINE__, "unexpected error: %s", err);
    /* refusing changed nothing: still refused */
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_ERR);
    cfg.repair = true;
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 11);
    T_ASSERT(r.v[3].id + 2 == r.v[4].id); /* the 5th message is gone */
    store_close(s);
    rset_free(&r);
    /* the damaged segment was resealed: a normal open works now */
    cfg.repair = false;
    check_prefix(dir, 11, 200);
}

T_CASE(damaged_live_record_of_a_sealed_segment_refuses_then_repair)
{
    char dir[512], seg[1024], err[1024], want[1200];
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t off;

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 8, 2, 200);
    /* a clean open seals the crashed segment (and starts another) */
    check_prefix(dir, 8, 200);
    tnewest_segment(dir, seg, sizeof(seg));
    seg[strlen(seg) - 5] -= 1; /* the sealed one, number - 1 */
    off = nth_msg(seg, 2);
    tflip_byte(seg, off + 25);
    /* the summary is intact, but the open reads live records back */
    cfg = tcfg(dir, NULL, NULL);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_ERR);
    snprintf(want, sizeof(want), "%s: damaged record at byte offset %llu", seg,
             (unsigned long long)off);
    if (!strstr(err, want) || !strstr(err, "--repair"))
        t_fail(__FILE__, __LINE__, "unexpected error: %s", err);
    T_EQ_INT(r.n, 0); /* refused before reporting anything */
    /* repair scans everything and drops the damaged record */
    cfg.repair = true;
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 7);
    store_close(s);
    rset_free(&r);
    check_prefix(dir, 7, 200);
}

T_CASE(damaged_acked_record_of_a_sealed_segment_is_not_read)
{
    char dir[512], seg[1024], err[1024];
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    struct tloop l;
    struct buf b;
    struct bytes m, bd;
    uint64_t lsn, pos;

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 8, 2, 200);
    check_prefix(dir, 8, 200);
    tloop_init(&l);
    cfg = tcfg(dir, NULL, &l);
    /* ack the third message, then damage its record */
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 8);
    pos = r.v[2].pos;
    lsn = store_append_ack(s, r.v[2].qid, r.v[2].id);
    T_ASSERT(lsn > 0);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_close(s);
    rset_free(&r);
    seg_path(seg, sizeof(seg), dir, POS_SEG(pos));
    tflip_byte(seg, POS_OFF(pos) + 25);
    /* history is not read back: the open succeeds, the rest is intact */
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 7);
    buf_init(&b);
    for (size_t i = 0; i < r.n; i++)
        T_EQ_INT(store_read_msg(s, r.v[i].pos, &b, &m, &bd), WR_OK);
    buf_fini(&b);
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

T_CASE(damaged_trailer_of_a_sealed_segment_refuses)
{
    char dir[512], seg[1024], err[1024];
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 5, 1, 100);
    check_prefix(dir, 5, 100);
    tnewest_segment(dir, seg, sizeof(seg));
    seg[strlen(seg) - 5] -= 1;
    tflip_byte(seg, tfile_size(seg) - 3); /* in the SEAL */
    cfg = tcfg(dir, NULL, NULL);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, seg) && strstr(err, "byte offset"));
    cfg.repair = true;
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 5);
    store_close(s);
    rset_free(&r);
    check_prefix(dir, 5, 100);
}

T_CASE(segment_torn_at_creation_is_removed)
{
    char dir[512], seg[1024], next[1100];
    uint8_t zeros[100] = {0};
    FILE *f;

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 4, 1, 100);
    check_prefix(dir, 4, 100); /* seals the crashed segment */
    tnewest_segment(dir, seg, sizeof(seg));
    /* a newer segment that was created but never written */
    snprintf(next, sizeof(next), "%s/0000000000000099.seg", dir);
    f = fopen(next, "w");
    T_ASSERT(f);
    fclose(f);
    check_prefix(dir, 4, 100);
    f = fopen(next, "r");
    T_ASSERT(f == NULL);
    /* zero-filled (size set, data never written) as well */
    snprintf(next, sizeof(next), "%s/0000000000000199.seg", dir);
    f = fopen(next, "w");
    T_ASSERT(f && fwrite(zeros, 1, sizeof(zeros), f) == sizeof(zeros));
    fclose(f);
    check_prefix(dir, 4, 100);
}

T_CASE(damaged_header_refuses_then_repair_sets_it_aside)
{
    char dir[512], seg[1024], err[1024], aside[1100];
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};

    tpath(dir, sizeof(dir), "s");
    crash_writer(dir, 4, 1, 100);
    check_prefix(dir, 4, 100); /* seals it, starts a new head */
    crash_writer(dir, 3, 1, 100);
    /* the first session's (sealed) segment */
    snprintf(seg, sizeof(seg), "%s/0000000000000001.seg", dir);
    tflip_byte(seg, 20);
    cfg = tcfg(dir, NULL, NULL);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "header") && strstr(err, seg));
    cfg.repair = true;
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 3);
    store_close(s);
    rset_free(&r);
    snprintf(aside, sizeof(aside), "%s.damaged", seg);
    T_ASSERT(tfile_size(aside) > 0);
}

/* ---- the manifest (issue 10, item 2) */

#define MF_MSGS 24

/* A closed log of MF_MSGS messages of ~1 KiB in QA over several 4 KiB
   segments; message k (ids[k]) has meta "m<id>" and body tbody(id). */
static void
mf_fill(const char *dir, uint64_t *ids)
{
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn = 0, pos;
    uint8_t body[1000];
    char meta[32], err[512];

    tloop_init(&l);
    cfg = tcfg(dir, NULL, &l);
    cfg.segment_size = 4096;
    T_EQ_INT(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)), WR_OK);
    for (int k = 0; k < MF_MSGS; k++) {
        snprintf(meta, sizeof(meta), "m%d", k);
        tbody(body, sizeof(body), (uint64_t)k);
        lsn = tappend(s, q, 1, meta, body, sizeof(body), &ids[k], &pos);
    }
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_close(s);
    tloop_fini(&l);
}

/* Opens dir (repair as asked) and returns which of the MF_MSGS messages
   came back, checking each one's bytes. */
static int
mf_open(const char *dir, bool repair, const uint64_t *ids, bool *back,
        char *err, size_t errlen)
{
    struct store_config cfg = tcfg(dir, NULL, NULL);
    struct rset r = {0};
    struct store *s;
    uint8_t body[1000];
    char meta[32];

    cfg.segment_size = 4096;
    cfg.repair = repair;
    if (store_open(&cfg, &rset_cb, &r, &s, err, errlen) != WR_OK)
        return WR_ERR;
    for (int k = 0; k < MF_MSGS; k++) {
        const struct rmsg *m = rset_find(&r, QA, ids[k]);

        back[k] = m != NULL;
        snprintf(meta, sizeof(meta), "m%d", k);
        tbody(body, sizeof(body), (uint64_t)k);
        T_ASSERT(!m || tcheck_msg(s, m->pos, meta, body, sizeof(body)));
    }
    store_close(s);
    rset_free(&r);
    return WR_OK;
}

/* The segment (number) holding message k, from an open of the log. */
static uint32_t
mf_segment_of(const char *dir, uint64_t id)
{
    struct store_config cfg = tcfg(dir, NULL, NULL);
    struct rset r = {0};
    struct store *s;
    char err[512];
    uint32_t no;

    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_ASSERT(rset_find(&r, QA, id));
    no = POS_SEG(rset_find(&r, QA, id)->pos);
    store_close(s);
    rset_free(&r);
    return no;
}

T_CASE(missing_segment_refuses_then_repair_reports_the_loss)
{
    char dir[512], err[2048], seg[1024];
    uint64_t ids[MF_MSGS];
    bool back[MF_MSGS];
    uint32_t gone;
    int lost = 0;

    tpath(dir, sizeof(dir), "s");
    mf_fill(dir, ids);
    gone = mf_segment_of(dir, ids[MF_MSGS / 2]);
    T_ASSERT(gone > 1 && tsegment_exists(dir, gone + 1));
    seg_path(seg, sizeof(seg), dir, gone);
    T_ASSERT(unlink(seg) == 0);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_ERR);
    if (!strstr(err, seg) || !strstr(err, "missing") ||
        !strstr(err, "--repair") || !strstr(err, "message ids"))
        t_fail(__FILE__, __LINE__, "unclear refusal: %s", err);
    T_EQ_INT(mf_open(dir, true, ids, back, err, sizeof(err)), WR_OK);
    for (int k = 0; k < MF_MSGS; k++)
        lost += !back[k];
    T_ASSERT(!back[MF_MSGS / 2] && lost > 0 && lost < MF_MSGS / 2);
    /* the repaired log's manifest no longer lists it: opens plainly */
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_OK);
    T_ASSERT(!back[MF_MSGS / 2] && back[0] && back[MF_MSGS - 1]);
}

T_CASE(log_without_a_manifest_opens_and_gets_one)
{
    char dir[512], err[2048], path[1024], seg[1024];
    uint64_t ids[MF_MSGS];
    bool back[MF_MSGS];
    uint32_t nos[64];
    long n;

    tpath(dir, sizeof(dir), "s");
    mf_fill(dir, ids);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s/MANIFEST.%d", dir, k);
        unlink(path);
    }
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_OK);
    for (int k = 0; k < MF_MSGS; k++)
        T_ASSERT(back[k]);
    /* it lists every segment present */
    n = tmanifest(dir, nos, 64, NULL);
    T_EQ_INT(n, (long)tcount_segments(dir, NULL));
    for (long i = 0; i < n; i++)
        T_ASSERT(tsegment_exists(dir, nos[i]));
    /* and from now on a missing segment is noticed */
    seg_path(seg, sizeof(seg), dir, nos[1]);
    T_ASSERT(unlink(seg) == 0);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, seg) != NULL);
}

T_CASE(a_torn_manifest_copy_leaves_the_previous_version_in_force)
{
    char dir[512], err[2048], path[1024];
    uint64_t ids[MF_MSGS], seq;
    bool back[MF_MSGS];
    uint32_t nos[64];

    tpath(dir, sizeof(dir), "s");
    mf_fill(dir, ids);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_OK);
    T_ASSERT(tmanifest(dir, nos, 64, &seq) > 0);
    /* the copy in force is cut short, as by a crash mid-write */
    snprintf(path, sizeof(path), "%s/MANIFEST.%d", dir, (int)(seq & 1));
    ttruncate(path, 30);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_OK);
    for (int k = 0; k < MF_MSGS; k++)
        T_ASSERT(back[k]);
    /* both copies damaged: refused, and repair rebuilds it */
    T_ASSERT(tmanifest(dir, nos, 64, &seq) > 0);
    snprintf(path, sizeof(path), "%s/MANIFEST.0", dir);
    tflip_byte(path, 12);
    snprintf(path, sizeof(path), "%s/MANIFEST.1", dir);
    tflip_byte(path, 12);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "manifest") && strstr(err, "--repair"));
    T_EQ_INT(mf_open(dir, true, ids, back, err, sizeof(err)), WR_OK);
    T_EQ_INT(mf_open(dir, false, ids, back, err, sizeof(err)), WR_OK);
    for (int k = 0; k < MF_MSGS; k++)
        T_ASSERT(back[k]);
}

/* While the store runs, the manifest follows rollover and deletion: once
   quiet, it lists exactly the segment files present. */
T_CASE(manifest_follows_rollover_and_deletion)
{
    char dir[512];
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, ids[400], lsn = 0, pos;
    uint8_t body[700];
    uint32_t nos[256];
    char err[512];
    long n;

    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), NULL, &l);
    cfg.segment_size = 4096;
    T_EQ_INT(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)), WR_OK);
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < 100; k++) {
            tbody(body, sizeof(body), (uint64_t)k);
            lsn = tappend(s, q, 1, "m", body, sizeof(body),
                          &ids[round * 100 + k], &pos);
        }
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
        /* acks all but the last 5 of the round */
        for (int k = 0; k < 95; k++)
            lsn = store_append_ack(s, QA, ids[round * 100 + k]);
        tloop_drain(&l, s);
        n = tmanifest(dir, nos, 256, NULL);
        T_EQ_INT(n, (long)tcount_segments(dir, NULL));
        for (long i = 0; i < n; i++)
            T_ASSERT(tsegment_exists(dir, nos[i]));
    }
    store_close(s);
    tloop_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(records_roundtrip_every_type),
    T_REG(records_summary_roundtrip),
    T_REG(records_every_damaged_byte_detected),
    T_REG(records_version_and_type_checked),
    T_REG(records_payload_validation),
    T_REG(records_golden_bytes),
    T_REG(records_ack_batches_cost_about_a_byte_per_id),
    T_REG(open_creates_dir_and_reads_back_everywhere),
    T_REG(limits_are_refused_without_failing),
    T_REG(recovery_reports_exactly_the_live_set),
    T_REG(wide_fanout_message_is_written_once),
    T_REG(torn_tail_cut_at_every_offset_of_the_last_record),
    T_REG(garbage_after_the_last_record_is_cut),
    T_REG(damaged_middle_record_refuses_then_repair_keeps_the_rest),
    T_REG(damaged_live_record_of_a_sealed_segment_refuses_then_repair),
    T_REG(damaged_acked_record_of_a_sealed_segment_is_not_read),
    T_REG(damaged_trailer_of_a_sealed_segment_refuses),
    T_REG(segment_torn_at_creation_is_removed),
    T_REG(damaged_header_refuses_then_repair_sets_it_aside),
    T_REG(missing_segment_refuses_then_repair_reports_the_loss),
    T_REG(log_without_a_manifest_opens_and_gets_one),
    T_REG(a_torn_manifest_copy_leaves_the_previous_version_in_force),
    T_REG(manifest_follows_rollover_and_deletion),
};

T_MAIN(cases)
