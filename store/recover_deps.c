/*
 * recover_deps.c: rebuilding the segments' dependencies (store_int.h's
 * "deps") at the end of store_open's replay.
 *
 * Deleting a segment must never change which messages recovery finds
 * live, so recovery rebuilds the deps record-exactly: an ACK or a QDEL
 * depends on every segment holding a record it kills, older or (in a
 * damaged or forged log) newer; and the segment of a message's newest
 * record depends on the segments of its older records. At run time the
 * writer keeps the same deps as it writes (compact.c, live.c).
 */
#include "store/recover_int.h"

#include <stdlib.h>

/*
 * The segment holding the record of a message that recovery uses must
 * outlive the segments holding its older records: if it went first, an
 * older record would win at the next recovery. (In a consistent log the
 * older ones are the original and the copy compaction replaced, deleted
 * right after the move.)
 */
void
recover__winner_deps(struct rctx *c, const struct mv *m, const struct rseg *o)
{
    struct seg *w = seg_find(c->s, m->loses ? o->no : m->seg);

    if (!w)
        return;
    if (!m->loses && o)
        seg_dep_add(w, o->no);
    if (m->loses)
        seg_dep_add(w, m->seg);
    if (m->prev)
        seg_dep_add(w, m->prev);
}

static bool
set_has(const struct seg *g, uint32_t set, uint64_t qid)
{
    const struct qset *q;

    if (set >= g->nsets)
        return false;
    q = g->sets[set];
    for (uint32_t j = 0; j < q->n; j++) {
        if (q->qids[j] == qid)
            return true;
    }
    return false;
}

static int
cmp_mcopy(const void *a, const void *b)
{
    const struct mcopy *x = a, *y = b;

    return x->seg < y->seg ? -1 : x->seg > y->seg;
}

static void
build_mcopies(struct rctx *c)
{
    size_t it = 0;
    uint64_t id;
    void *val;

    c->mc_built = true;
    c->mc = xmalloc((2 * c->moved.count + 1) * sizeof(*c->mc));
    while (idmap_next(&c->moved, &it, &id, &val)) {
        const struct mv *v = val;

        c->mc[c->nmc++] = (struct mcopy){v->seg, v->set, id};
        if (v->prev)
            c->mc[c->nmc++] = (struct mcopy){v->prev, v->prev_set, id};
    }
    qsort(c->mc, c->nmc, sizeof(*c->mc), cmp_mcopy);
}

/* Does h hold a copy (original or moved) of a message below upto that
   lists qid? Only asked of segments newer than the QDEL's, which in a
   consistent log never do (their ids start above upto). */
static bool
holds_below(struct rctx *c, const struct seg *h, uint64_t qid, uint64_t upto)
{
    size_t lo = 0, hi;

    for (uint32_t i = 0; i < h->n && seg_slot_id(h, i) < upto; i++) {
        if (h->mask && set_has(h, h->qs[i], qid))
            return true;
    }
    if (!c->mc_built)
        build_mcopies(c);
    hi = c->nmc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (c->mc[mid].seg < h->no)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < c->nmc && c->mc[lo].seg == h->no; lo++) {
        if (c->mc[lo].id < upto && set_has(h, c->mc[lo].set, qid))
            return true;
    }
    return false;
}

/*
 * The segments a QDEL in g must outlive: every older one whose sets name
 * the queue (as at run time), and any newer one holding a record below
 * upto that lists it (none in a consistent log; a damaged or forged one
 * must still never bring back what the QDEL killed).
 */
static void
qdel_deps(struct rctx *c, struct seg *g, uint64_t qid, uint64_t upto)
{
    for (size_t i = 0; i < c->s->nsegs; i++) {
        struct seg *h = c->s->segs[i];
        bool named = false;

        if (h == g)
            continue;
        for (uint32_t k = 0; k < h->nsets && !named; k++)
            named = set_has(h, k, qid);
        if (named && (h->no < g->no || holds_below(c, h, qid, upto)))
            seg_dep_add(g, h->no);
    }
}

/* The segments holding a record of id that lists qid. */
static void
ack_deps(struct rctx *c, struct seg *g, uint64_t qid, uint64_t id)
{
    uint32_t slot;
    struct seg *h = seg_find_by_id(c->s, id, &slot);
    struct mv *v;

    if (h && h != g && set_has(h, h->qs[slot], qid))
        seg_dep_add(g, h->no);
    if (!c->moved.count || !(v = idmap_find(&c->moved, id)))
        return;
    h = seg_find(c->s, v->seg);
    if (h && h != g && set_has(h, v->set, qid))
        seg_dep_add(g, h->no);
    h = v->prev ? seg_find(c->s, v->prev) : NULL;
    if (h && h != g && set_has(h, v->prev_set, qid))
        seg_dep_add(g, h->no);
}

void
recover__build_deps(struct rctx *c)
{
    for (size_t i = 0, k = 0; i < c->n; i++) {
        struct rseg *r = &c->rs[i];
        struct cursor cur;
        struct rec_tomb t;
        struct seg *g;

        if (r->drop)
            continue;
        g = c->s->segs[k++];
        cur_init(&cur, r->sum.tombs.ptr, r->sum.tombs.len);
        for (uint32_t e = 0; e < r->sum.ntombs; e++) {
            rec_sum_tomb_next(&cur, &t);
            if (t.type == REC_ACK) {
                struct rec_ack_it it;
                uint64_t id;

                rec_ack_begin(t.payload, &it);
                while (rec_ack_next(&it, &id))
                    ack_deps(c, g, it.qid, id);
            } else {
                uint64_t qid, upto;

                rec_qdel_decode(t.payload, &qid, &upto);
                qdel_deps(c, g, qid, upto);
            }
        }
    }
}
