/*
 * segment.c: a segment as the loop thread knows it: its number, salt and
 * size, the dictionary of queue-id sets its messages use, the live bits
 * of its original messages, and the segments it depends on.
 *
 * Invariants:
 *   - s->segs is sorted by number and by first_id (ids only grow), so
 *     both lookups are binary searches.
 *   - Slots hold originals in increasing id order; slot i is message
 *     seg_slot_id(g, i) (first_id + i while dense). A filler slot, a slot
 *     whose record was lost (repair) and one whose message moved away
 *     have mask 0.
 *   - Dense keeps fillers <= real slots + DENSE_SLACK, so they never cost
 *     much more than the sparse form would.
 *   - mask is the live bits of the message's set when the set has at
 *     most 8 queues; for wider sets it is 1 while any bit in the wide
 *     table entry is set, and 0 after.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>

#define DENSE_SLACK 64

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
    free(g->ioff);
    g->qs = NULL;
    g->mask = NULL;
    g->ioff = NULL;
    g->n = 0;
    g->cap = 0;
    g->holes = 0;
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

bool
seg_parse_name(const char *name, uint32_t *no)
{
    uint64_t v = 0;

    if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
        return false;
    for (int i = 0; i < 16; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (v == 0 || v >= UINT32_MAX)
        return false;
    *no = (uint32_t)v;
    return true;
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

static void
grow(struct seg *g, uint32_t need)
{
    uint32_t cap = g->cap ? g->cap : 64;

    if (need <= g->cap)
        return;
    while (cap < need)
        cap *= 2;
    g->qs = xrealloc(g->qs, cap * sizeof(*g->qs));
    g->mask = xrealloc(g->mask, cap);
    if (g->ioff)
        g->ioff = xrealloc(g->ioff, cap * sizeof(*g->ioff));
    g->cap = cap;
}

/* Dense to sparse: every slot (fillers included) gets its offset. */
static void
make_sparse(struct seg *g)
{
    g->ioff = xmalloc((g->cap ? g->cap : 1) * sizeof(*g->ioff));
    for (uint32_t i = 0; i < g->n; i++)
        g->ioff[i] = i;
}

void
seg_add_original(struct seg *g, uint64_t id, uint16_t set, uint32_t n,
                 uint8_t mask)
{
    uint64_t off;

    (void)n;
    if (g->n == 0) {
        /* ids below the first original are not in this segment */
        WR_ASSERT(id >= g->first_id);
        g->first_id = id;
    }
    off = id - g->first_id;
    WR_ASSERT(id >= g->first_id && off < UINT32_MAX);
    WR_ASSERT(g->n == 0 || off > (g->ioff ? g->ioff[g->n - 1] : g->n - 1));
    if (!g->ioff && off > g->n) {
        uint64_t gap = off - g->n;

        /* fillers cost 3 bytes each, sparse 4 more per real slot */
        if (g->holes + gap <= (uint64_t)(g->n - g->holes) + DENSE_SLACK) {
            grow(g, (uint32_t)off + 1);
            memset(g->qs + g->n, 0, gap * sizeof(*g->qs));
            memset(g->mask + g->n, 0, gap);
            g->holes += (uint32_t)gap;
            g->n = (uint32_t)off;
        } else {
            make_sparse(g);
        }
    }
    WR_ASSERT(g->n < UINT32_MAX - 1);
    grow(g, g->n + 1);
    if (g->ioff)
        g->ioff[g->n] = (uint32_t)off;
    g->qs[g->n] = set;
    g->mask[g->n] = mask;
    g->n++;
}

int64_t
seg_slot(const struct seg *g, uint64_t id)
{
    uint64_t off;
    uint32_t lo = 0, hi = g->n;

    if (id < g->first_id || g->n == 0 || !g->mask)
        return -1;
    off = id - g->first_id;
    if (!g->ioff)
        return off < g->n ? (int64_t)off : -1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (g->ioff[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n && g->ioff[lo] == off ? (int64_t)lo : -1;
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
seg_find_by_id(const struct store *s, uint64_t id, uint32_t *slot)
{
    size_t lo = 0, hi = s->nsegs;
    struct seg *g;
    int64_t k;

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
    k = seg_slot(g, id);
    if (k < 0)
        return NULL;
    if (slot)
        *slot = (uint32_t)k;
    return g;
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
