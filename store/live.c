/*
 * live.c: which (queue, message) pairs the log still holds, on the loop
 * thread. A message is found through the relocation map when compaction
 * copied it, else through the originals of the segment its id falls in
 * (binary search on first_id). Killing a pair clears one bit and keeps
 * the segment's counters exact; the journal records the kill (ACK/QDEL)
 * and the segments it depends on.
 *
 * Ensures: g->live_pairs == number of set bits over g's messages and
 * g->live_msgs == number of g's messages with any bit set.
 */
#include "store/store_int.h"

#include <stdlib.h>

bool
live_find(struct store *s, uint64_t id, struct mref *r)
{
    struct reloc *rl = s->reloc.count ? idmap_find(&s->reloc, id) : NULL;
    struct seg *g;
    uint32_t slot;

    if (rl) {
        g = seg_find(s, rl->seg);
        if (!g)
            return false;
        r->g = g;
        r->id = id;
        r->mask = &rl->mask;
        r->set = rl->set;
        r->rl = rl;
        return true;
    }
    g = seg_find_by_id(s, id, &slot);
    if (!g)
        return false;
    r->g = g;
    r->id = id;
    r->mask = &g->mask[slot];
    r->set = g->qs[slot];
    r->rl = NULL;
    return true;
}

static int
set_index(const struct qset *q, uint64_t qid)
{
    size_t lo = 0, hi = q->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (q->qids[mid] < qid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < q->n && q->qids[lo] == qid ? (int)lo : -1;
}

int
live_index(const struct mref *r, uint64_t qid)
{
    if (r->set >= r->g->nsets)
        return -1;
    return set_index(r->g->sets[r->set], qid);
}

bool
live_test(const struct mref *r, int j)
{
    const struct qset *q = r->g->sets[r->set];
    struct wide *w;

    if (q->n <= SET_NARROW_MAX)
        return (*r->mask >> j) & 1;
    if (!*r->mask)
        return false;
    w = seg_wide(r->g, r->id, q->n, false);
    return w && (w->bits[j / 64] >> (j % 64)) & 1;
}

uint32_t
live_count(const struct mref *r)
{
    const struct qset *q = r->g->sets[r->set];
    struct wide *w;

    if (q->n <= SET_NARROW_MAX)
        return (uint32_t)__builtin_popcount(*r->mask);
    if (!*r->mask)
        return 0;
    w = seg_wide(r->g, r->id, q->n, false);
    return w ? w->nlive : 0;
}

void
live_kill(struct store *s, struct mref *r, int j)
{
    const struct qset *q = r->g->sets[r->set];
    struct seg *g = r->g;
    bool empty;

    if (q->n <= SET_NARROW_MAX) {
        *r->mask &= (uint8_t) ~(1u << j);
        empty = *r->mask == 0;
    } else {
        struct wide *w = seg_wide(g, r->id, q->n, false);

        WR_ASSERT(w && w->nlive > 0);
        w->bits[j / 64] &= ~(1ULL << (j % 64));
        empty = --w->nlive == 0;
        if (empty) {
            seg_wide_del(g, w);
            *r->mask = 0;
        }
    }
    WR_ASSERT(g->live_pairs > 0);
    g->live_pairs--;
    if (empty) {
        WR_ASSERT(g->live_msgs > 0);
        g->live_msgs--;
        if (r->rl) {
            idmap_del(&s->reloc, r->rl);
            r->rl = NULL;
            r->mask = NULL;
        }
    }
    if (g->live_pairs == 0)
        s->maint_dirty = true;
}

/* hit[k] = 1 + index of qid in set k, or 0. Returns whether any hit. */
static bool
sets_with(const struct seg *g, uint64_t qid, uint32_t *hit)
{
    bool any = false;

    for (uint32_t k = 0; k < g->nsets; k++) {
        int j = set_index(g->sets[k], qid);

        hit[k] = j < 0 ? 0 : (uint32_t)j + 1;
        any |= j >= 0;
    }
    return any;
}

static void
kill_originals(struct store *s, struct seg *g, const uint32_t *hit)
{
    for (uint32_t i = 0; g->mask && i < g->n; i++) {
        struct mref r;
        int j;

        if (!g->mask[i] || !hit[g->qs[i]])
            continue;
        r.g = g;
        r.id = seg_slot_id(g, i);
        r.mask = &g->mask[i];
        r.set = g->qs[i];
        r.rl = NULL;
        j = (int)hit[g->qs[i]] - 1;
        if (live_test(&r, j))
            live_kill(s, &r, j);
    }
}

static void
kill_copies(struct store *s, uint64_t qid)
{
    uint64_t *ids = NULL, key;
    size_t n = 0, cap = 0, it = 0;
    void *val;

    while (idmap_next(&s->reloc, &it, &key, &val)) {
        struct reloc *rl = val;
        struct seg *g = seg_find(s, rl->seg);

        if (!g || rl->set >= g->nsets || set_index(g->sets[rl->set], qid) < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = key;
    }
    for (size_t i = 0; i < n; i++) {
        struct mref r;
        int j;

        if (!live_find(s, ids[i], &r) || !r.rl)
            continue;
        j = live_index(&r, qid);
        if (j >= 0 && live_test(&r, j))
            live_kill(s, &r, j);
    }
    free(ids);
}

void
live_queue_delete(struct store *s, uint64_t qid, uint32_t **deps, size_t *ndeps,
                  size_t *capdeps)
{
    for (size_t i = 0; i < s->nsegs; i++) {
        struct seg *g = s->segs[i];
        uint32_t *hit;

        if (g->nsets == 0)
            continue;
        hit = xmalloc(g->nsets * sizeof(*hit));
        if (sets_with(g, qid, hit)) {
            deps_insert(deps, ndeps, capdeps, g->no);
            kill_originals(s, g, hit);
        }
        free(hit);
    }
    if (s->reloc.count)
        kill_copies(s, qid);
}

bool
store_is_live(struct store *s, uint64_t qid, uint64_t id)
{
    struct mref r;
    int j;

    if (!live_find(s, id, &r))
        return false;
    j = live_index(&r, qid);
    return j >= 0 && live_test(&r, j);
}
