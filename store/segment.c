/*
 * segment.c: a segment as the loop thread knows it: its number, salt and
 * size, the dictionary of queue-id sets its messages use, the live bits
 * of its original messages, and the segments it depends on.
 *
 * Invariants:
 *   - s->segs is sorted by number and by first_id (ids only grow), so
 *     both lookups are binary searches.
 *   - Originals of a segment are ids [first_id, first_id + n); slot i is
 *     message first_id + i. A slot whose record was lost (repair) or
 *     whose message moved away has mask 0.
 *   - mask is the live bits of the message's set when the set has at
 *     most 8 queues; for wider sets it is 1 while any bit in the wide
 *     table entry is set, and 0 after.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>

struct seg *
seg_new(uint32_t no, uint64_t salt, uint64_t first_id, bool head)
{
    struct seg *g = xcalloc(1, sizeof(*g));

    g->no = no;
    g->salt = salt;
    g->first_id = first_id;
    g->rfd = -1;
    g->plan_level = -1;
    if (head) {
        g->sum = xmalloc(sizeof(*g->sum));
        rec_sumb_init(g->sum);
    }
    return g;
}

void
seg_release_arrays(struct seg *g)
{
    struct wide *w, *tmp;

    HASH_ITER(hh, g->wide, w, tmp)
    {
        HASH_DEL(g->wide, w);
        free(w);
    }
    free(g->qs);
    free(g->mask);
    g->qs = NULL;
    g->mask = NULL;
    g->n = 0;
    g->cap = 0;
}

void
seg_free(struct seg *g, const struct store_io *io)
{
    if (!g)
        return;
    if (g->rfd >= 0)
        io->close(io->arg, g->rfd);
    seg_release_arrays(g);
    HASH_CLEAR(hh, g->set_hash);
    for (uint32_t i = 0; i < g->nsets; i++)
        free(g->sets[i]);
    free(g->sets);
    free(g->deps);
    if (g->sum) {
        rec_sumb_fini(g->sum);
        free(g->sum);
    }
    free(g);
}

void
seg_path(char *out, size_t n, const char *dir, uint32_t no)
{
    snprintf(out, n, "%s/%016u.seg", dir, no);
}

static struct qset *
set_push(struct seg *g, uint32_t n)
{
    struct qset *q = xmalloc(sizeof(*q) + 8 * (size_t)n);

    memset(&q->hh, 0, sizeof(q->hh));
    q->n = n;
    q->idx = g->nsets;
    q->key = 0;
    if (g->nsets == g->capsets) {
        g->capsets = g->capsets ? 2 * g->capsets : 8;
        g->sets = xrealloc(g->sets, g->capsets * sizeof(*g->sets));
    }
    g->sets[g->nsets++] = q;
    return q;
}

int
seg_set_lookup(struct seg *g, const uint64_t *qids, uint32_t n)
{
    struct qset *q;

    HASH_FIND(hh, g->set_hash, qids, 8 * (size_t)n, q);
    if (q)
        return (int)q->idx;
    if (g->nsets >= SEG_MAX_SETS)
        return -1;
    q = set_push(g, n);
    memcpy(q->qids, qids, 8 * (size_t)n);
    HASH_ADD_KEYPTR(hh, g->set_hash, q->qids, 8 * (size_t)n, q);
    rec_sumb_add_set(g->sum, qids, n);
    return (int)q->idx;
}

void
seg_set_append(struct seg *g, const uint8_t *qids_be, uint32_t n)
{
    struct qset *q = set_push(g, n);

    for (uint32_t i = 0; i < n; i++)
        q->qids[i] = be64_load(qids_be + 8 * (size_t)i);
}

void
seg_add_original(struct seg *g, uint64_t id, uint16_t set, uint32_t n,
                 uint8_t mask)
{
    uint64_t idx = id - g->first_id;

    WR_ASSERT(id >= g->first_id && idx >= g->n && idx < UINT32_MAX);
    if (idx >= g->cap) {
        uint32_t cap = g->cap ? g->cap : 64;

        while (cap <= idx)
            cap *= 2;
        g->qs = xrealloc(g->qs, cap * sizeof(*g->qs));
        g->mask = xrealloc(g->mask, cap);
        g->cap = cap;
    }
    for (uint64_t i = g->n; i < idx; i++) {
        g->qs[i] = 0;
        g->mask[i] = 0;
    }
    g->qs[idx] = set;
    g->mask[idx] = mask;
    g->n = (uint32_t)idx + 1;
    (void)n;
}

void
deps_insert(uint32_t **v, size_t *n, size_t *cap, uint32_t no)
{
    size_t lo = 0, hi = *n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if ((*v)[mid] < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < *n && (*v)[lo] == no)
        return;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    memmove(*v + lo + 1, *v + lo, (*n - lo) * sizeof(**v));
    (*v)[lo] = no;
    (*n)++;
}

void
seg_dep_add(struct seg *g, uint32_t no)
{
    size_t n = g->ndeps, cap = g->capdeps;

    if (no == g->no)
        return;
    deps_insert(&g->deps, &n, &cap, no);
    g->ndeps = (uint32_t)n;
    g->capdeps = (uint32_t)cap;
}

struct seg *
seg_find(const struct store *s, uint32_t no)
{
    size_t lo = 0, hi = s->nsegs;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (s->segs[mid]->no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nsegs && s->segs[lo]->no == no ? s->segs[lo] : NULL;
}

struct seg *
seg_find_by_id(const struct store *s, uint64_t id)
{
    size_t lo = 0, hi = s->nsegs;
    struct seg *g;

    /* the last segment with first_id <= id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (s->segs[mid]->first_id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    g = s->segs[lo - 1];
    return id - g->first_id < g->n ? g : NULL;
}

struct wide *
seg_wide(struct seg *g, uint64_t id, uint32_t n, bool create)
{
    struct wide *w;
    uint32_t words = (n + 63) / 64;

    HASH_FIND(hh, g->wide, &id, sizeof(id), w);
    if (w || !create)
        return w;
    w = xcalloc(1, sizeof(*w) + 8 * (size_t)words);
    w->id = id;
    w->nlive = n;
    for (uint32_t i = 0; i < n; i++)
        w->bits[i / 64] |= 1ULL << (i % 64);
    HASH_ADD(hh, g->wide, id, sizeof(w->id), w);
    return w;
}

void
seg_wide_del(struct seg *g, struct wide *w)
{
    HASH_DEL(g->wide, w);
    free(w);
}

uint8_t
seg_full_mask(uint32_t n)
{
    return n <= SET_NARROW_MAX ? (uint8_t)((1u << n) - 1) : 1;
}
