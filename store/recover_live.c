/*
 * recover_live.c: phases 2 and 2b of store_open's replay (recover.c):
 * which messages are still live, and are their records intact.
 *
 * Phase 2: collect the kills (ACK ids, QDEL bounds) of every segment,
 *   the newest copy of every moved message, and check that original ids
 *   grow from segment to segment.
 * Phase 2b: read back and check the MSG records of live messages in the
 *   segments opened from their summaries (scanned ones were checked
 *   record by record), so damage to anything a queue still needs refuses
 *   the open; acked history is not read.
 *
 * The liveness rule itself (recover__live_bits): a message is live in
 * queue q unless it is transient, an ACK names (q, id), or a QDEL of q
 * has upto > id.
 */
#include "store/recover_int.h"

#include <stdlib.h>

static bool
acked(const struct rctx *c, uint64_t id, uint64_t qid)
{
    for (uint64_t *v = idmap_find(&c->acks, id); v;
         v = idmap_find_next(&c->acks, id, v)) {
        if (*v == qid)
            return true;
    }
    return false;
}

static bool
deleted(struct rctx *c, uint64_t qid, uint64_t id)
{
    struct qdel *d;

    if (!c->dels)
        return false;
    if (!c->cache_ok || c->cache_q != qid) {
        HASH_FIND(hh, c->dels, &qid, sizeof(qid), d);
        c->cache_q = qid;
        c->cache_upto = d ? d->upto : 0;
        c->cache_ok = true;
    }
    return id < c->cache_upto;
}

/* Live bits of a message of set q; returns how many. bits[] has
   (q->n + 63) / 64 words. */
uint32_t
recover__live_bits(struct rctx *c, uint64_t id, uint8_t flags,
                   const struct qset *q, uint64_t *bits)
{
    uint32_t cnt = 0;

    memset(bits, 0, 8 * (((size_t)q->n + 63) / 64));
    if (flags & REC_F_TRANSIENT)
        return 0;
    for (uint32_t j = 0; j < q->n; j++) {
        if (deleted(c, q->qids[j], id) ||
            (c->acks.count && acked(c, id, q->qids[j])))
            continue;
        bits[j / 64] |= 1ULL << (j % 64);
        cnt++;
    }
    return cnt;
}

/* ---- phase 2: kills and copies */

void
recover__collect_tombs(struct rctx *c, const struct rseg *r)
{
    struct cursor cur;
    struct rec_tomb t;

    cur_init(&cur, r->sum.tombs.ptr, r->sum.tombs.len);
    for (uint32_t i = 0; i < r->sum.ntombs; i++) {
        rec_sum_tomb_next(&cur, &t);
        if (t.type == REC_ACK) {
            struct rec_ack_it it;
            uint64_t id;

            rec_ack_begin(t.payload, &it);
            while (rec_ack_next(&it, &id)) {
                if (id != 0)
                    *(uint64_t *)idmap_add(&c->acks, id) = it.qid;
            }
        } else {
            uint64_t qid, upto;
            struct qdel *d;

            rec_qdel_decode(t.payload, &qid, &upto);
            HASH_FIND(hh, c->dels, &qid, sizeof(qid), d);
            if (!d) {
                d = xcalloc(1, sizeof(*d));
                d->qid = qid;
                HASH_ADD(hh, c->dels, qid, sizeof(d->qid), d);
            }
            d->upto = WR_MAX(d->upto, upto);
        }
    }
}

int
recover__collect_msgs(struct rctx *c, struct rseg *r, uint64_t *last_orig)
{
    struct rec_sum_it it;
    struct rec_sum_msg m;
    char path[SEG_PATH_MAX];

    rec_sum_msgs_begin(&r->sum, &it);
    for (uint32_t i = 0; i < r->sum.nmsgs; i++) {
        rec_sum_msg_next(&it, &m);
        if (m.id == 0 || m.id > STORE_MAX_ID) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return recover__fail(
                c, "store: %s: invalid message id at byte offset %u", path,
                m.off);
        }
        c->next_id = WR_MAX(c->next_id, m.id + 1);
        if (m.flags & REC_F_MOVED) {
            struct mv *v = idmap_find(&c->moved, m.id);

            if (!v) {
                v = idmap_add(&c->moved, m.id);
            } else {
                v->prev = v->seg;
                v->prev_set = v->set;
            }
            v->seg = r->no;
            v->off = m.off;
            v->meta_len = m.meta_len;
            v->body_len = m.body_len;
            v->set = m.set;
            v->flags = m.flags;
            continue;
        }
        if (m.id <= *last_orig) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return recover__fail(
                c,
                "store: %s: message id %llu at byte offset %u is "
                "out of order (previous %llu); the log is "
                "inconsistent. Restore the directory from a backup",
                path, (unsigned long long)m.id, m.off,
                (unsigned long long)*last_orig);
        }
        *last_orig = m.id;
        if (!r->has_orig)
            r->lo = m.id;
        r->hi = m.id;
        r->has_orig = true;
        /* the writer seals a segment before its ids span 2^32 */
        if (r->hi - r->lo >= UINT32_MAX - 1) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return recover__fail(
                c,
                "store: %s: message ids %llu..%llu cannot all be "
                "in this segment; the log is inconsistent. "
                "Restore the directory from a backup",
                path, (unsigned long long)r->lo, (unsigned long long)r->hi);
        }
    }
    c->next_id = WR_MAX(c->next_id, r->hdr.next_id);
    c->next_id = WR_MAX(c->next_id, r->seal_next_id);
    if (c->next_id > STORE_MAX_ID) {
        seg_path(path, sizeof(path), c->s->dir, r->no);
        return recover__fail(c,
                             "store: %s: message ids exhausted (next id %llu)",
                             path, (unsigned long long)c->next_id);
    }
    return WR_OK;
}

/* ---- phase 2b: reading back the live records of summarised segments */

#define VERIFY_READ_MAX (4u << 20) /* bytes per pread */
#define VERIFY_GAP_MAX  (4u << 10) /* dead bytes read to join two runs */

/* Whether a message of this set still belongs to some queue. */ static bool
msg_live(struct rctx *c, uint64_t id, uint8_t flags, const uint8_t *qids,
         uint32_t n)
{
    if (flags & REC_F_TRANSIENT)
        return false;
    for (uint32_t j = 0; j < n; j++) {
        uint64_t q = be64_load(qids + 8 * (size_t)j);

        if (!deleted(c, q, id) && !(c->acks.count && acked(c, id, q)))
            return true;
    }
    return false;
}

struct vrec {
    uint64_t id;
    uint32_t off;
    uint32_t len; /* from the summary; the record's own header decides */
    uint32_t body_len;
};

/* Checks the record v at p (avail bytes); NULL or what is wrong. */
static const char *
verify_one(const struct rseg *r, const struct vrec *v, const uint8_t *p,
           size_t avail)
{
    const char *why = NULL;
    struct rec_msg dm;
    struct rec rec;
    uint32_t len;

    if (avail < REC_HDR_SIZE)
        return "record cut short";
    len = be32_load(p);
    if (len < REC_HDR_SIZE || len > avail)
        return "bad record length";
    if (rec_check(p, len, r->hdr.salt, v->off, &rec, &why) != REC_OK)
        return why;
    if (rec.type != REC_MSG || !rec_msg_decode(rec.payload, &dm) ||
        dm.id != v->id || dm.body.len != v->body_len)
        return "the record is not the message its summary lists";
    return NULL;
}

/* The queue sets of a summary, by index. */
struct vset {
    uint32_t n;
    const uint8_t *qids;
};

/*
 * The MSG records of r's live messages, in file order, into v (room for
 * every message of the summary). Returns how many; on a summary that
 * contradicts itself, *why is set and the last one returned is the
 * culprit.
 */
static size_t
live_records(struct rctx *c, struct rseg *r, const struct vset *sets,
             struct vrec *v, const char **why)
{
    struct rec_sum_it it;
    struct rec_sum_msg m;
    size_t nv = 0;

    rec_sum_msgs_begin(&r->sum, &it);
    for (uint32_t e = 0; e < r->sum.nmsgs && !*why; e++) {
        uint64_t len;

        rec_sum_msg_next(&it, &m);
        if (m.set >= r->sum.nsets) {
            *why = "the summary names a queue set it does not hold";
        } else if (!msg_live(c, m.id, m.flags, sets[m.set].qids,
                             sets[m.set].n)) {
            continue;
        } else {
            len = rec_msg_size(m.id, sets[m.set].n, m.meta_len, m.body_len);
            if ((uint64_t)m.off + len > r->size)
                *why = "the summary points past the end of the file";
            v[nv].len = (uint32_t)len;
        }
        v[nv].id = m.id;
        v[nv].off = m.off;
        v[nv].body_len = m.body_len;
        nv++;
    }
    return nv;
}

/* Checks record v at p (avail bytes read for it); one longer than its
 * summary says (duplicate queue ids) is read again on its own. Returns
 * NULL or what is wrong. */
static const char *
verify_at(const struct store_io *io, const struct rseg *r, const struct vrec *v,
          const uint8_t *p, size_t avail)
{
    uint32_t len = be32_load(p);
    uint8_t *own = NULL;
    const char *why;

    if (len > avail && len <= REC_MAX_LEN &&
        (uint64_t)v->off + len <= r->size) {
        own = xmalloc(len);
        if (io_pread_all(io, r->fd, own, len, v->off) != (ssize_t)len) {
            free(own);
            return "read error";
        }
        p = own;
        avail = len;
    }
    why = verify_one(r, v, p, avail);
    free(own);
    return why;
}

/*
 * Reads v[0..nv) back and checks each record. Neighbouring records are
 * read together, up to VERIFY_READ_MAX bytes per pread. Returns NULL, or
 * what is wrong with v[*bad].
 */
static const char *
verify_records(struct rctx *c, const struct rseg *r, const struct vrec *v,
               size_t nv, size_t *bad)
{
    const struct store_io *io = c->s->io;
    const char *why = NULL;
    uint8_t *buf = NULL;
    size_t cap = 0;

    for (size_t i = 0; i < nv && !why;) {
        uint64_t lo = v[i].off, hi = lo + v[i].len;
        size_t j = i + 1;

        while (j < nv && v[j].off >= hi && v[j].off - hi <= VERIFY_GAP_MAX &&
               v[j].off + (uint64_t)v[j].len - lo <= VERIFY_READ_MAX) {
            hi = v[j].off + (uint64_t)v[j].len;
            j++;
        }
        if (hi - lo > cap) {
            free(buf);
            cap = (size_t)(hi - lo);
            buf = xmalloc(cap);
        }
        *bad = i;
        if (io_pread_all(io, r->fd, buf, (size_t)(hi - lo), lo) !=
            (ssize_t)(hi - lo))
            why = "read error";
        for (; i < j && !why; i++) {
            *bad = i;
            why = verify_at(io, r, &v[i], buf + (v[i].off - lo),
                            (size_t)(hi - v[i].off));
        }
    }
    free(buf);
    return why;
}

/*
 * A segment opened from its summary has had none of its records read.
 * Read back the ones recovery hands to the queues (the MSG records of
 * live messages: every byte a consumer could be sent) and check them, so
 * that damage there refuses the open now, with the file and offset,
 * rather than failing a delivery later. Acked history is not read:
 * recovery time follows the live data.
 */
int
recover__verify_live(struct rctx *c, struct rseg *r)
{
    struct vset *sets = xmalloc(((size_t)r->sum.nsets + 1) * sizeof(*sets));
    struct vrec *v = xmalloc(((size_t)r->sum.nmsgs + 1) * sizeof(*v));
    char path[SEG_PATH_MAX];
    const char *why = NULL;
    struct cursor cur;
    size_t nv, bad = 0;

    cur_init(&cur, r->sum.sets.ptr, r->sum.sets.len);
    for (uint32_t i = 0; i < r->sum.nsets; i++)
        rec_sum_set_next(&cur, &sets[i].n, &sets[i].qids);
    nv = live_records(c, r, sets, v, &why);
    if (why)
        bad = nv - 1;
    else
        why = verify_records(c, r, v, nv, &bad);
    if (why) {
        seg_path(path, sizeof(path), c->s->dir, r->no);
        recover__fail(c,
                      "store: %s: damaged record at byte offset %u (%s), "
                      "holding message %llu that a queue still needs. %s.",
                      path, v[bad].off, why, (unsigned long long)v[bad].id,
                      recover__repair_hint);
    }
    free(v);
    free(sets);
    return why ? WR_ERR : WR_OK;
}
