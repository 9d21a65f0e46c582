/*
 * routeset.c: the deduplicated set of queues one publish goes to.
 *
 * queues[0..n) lists the distinct queues in the order they were first
 * reached. Up to ROUTESET_LINEAR queues, membership is a linear scan of
 * that array (cheaper than hashing for the usual one to a few queues).
 * Past it, an open-addressing table `set` (linear probing, power-of-two
 * size, load <= 1/2) indexes queues[0..indexed).
 *
 * The index is brought up to date lazily: routeset__add_distinct() copies
 * a list known to hold distinct queues into an empty set without hashing
 * anything (a fanout to 10,000 queues is a copy), and the next membership
 * question indexes whatever is pending first.
 *
 * Invariants:
 *   - indexed <= n; indexed == 0 while n <= ROUTESET_LINEAR.
 *   - set holds exactly queues[0..indexed); every other slot is NULL.
 *   - queues[0..n) are distinct.
 *   - Entries enter set in queues[] order (also when it is rebuilt), so
 *     clearing them in reverse order finds each one on an intact probe
 *     path: reset costs O(n), not O(set_cap).
 *
 * The memory (queues, set, work list, header and topic scratch) is kept
 * across resets, so a publish allocates only when it outgrows every
 * publish before it.
 */
#include "exchange/exchange_int.h"

#include <stdlib.h>

#define ROUTESET_LINEAR 8

static inline size_t
ptr_hash(const void *p, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)p;

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t)h & mask;
}

void
routeset_init(struct routeset *rs)
{
    memset(rs, 0, sizeof(*rs));
}

void
routeset_fini(struct routeset *rs)
{
    free(rs->queues);
    free(rs->set);
    free(rs->work);
    free(rs->hdrs);
    free(rs->hdr_tmp);
    free(rs->tmp);
    free(rs->held);
    memset(rs, 0, sizeof(*rs));
}

/* Returns the slot holding q, or the empty slot where it would go. */
static size_t
set_slot(const struct routeset *rs, const void *q)
{
    size_t mask = rs->set_cap - 1;
    size_t i = ptr_hash(q, mask);

    while (rs->set[i] && rs->set[i] != q)
        i = (i + 1) & mask;
    return i;
}

/*
 * Indexes queues[indexed..n) (all of them when the table must grow to
 * keep load <= 1/2; the old table is then dropped, not cleared).
 * Ensures: indexed == n.
 */
static void
sync_set(struct routeset *rs)
{
    size_t cap = rs->set_cap ? rs->set_cap : 32;
    size_t from = rs->indexed;

    while (cap < 2 * rs->n)
        cap *= 2;
    if (cap != rs->set_cap) {
        free(rs->set);
        rs->set = xcalloc(cap, sizeof(*rs->set));
        rs->set_cap = cap;
        from = 0;
    }
    for (size_t i = from; i < rs->n; i++)
        rs->set[set_slot(rs, rs->queues[i])] = rs->queues[i];
    rs->indexed = rs->n;
}

void
routeset_reset(struct routeset *rs)
{
    /* Reverse insertion order keeps every probe path intact. */
    for (size_t i = rs->indexed; i-- > 0;)
        rs->set[set_slot(rs, rs->queues[i])] = NULL;
    rs->n = 0;
    rs->indexed = 0;
}

bool
routeset_has(struct routeset *rs, const void *q)
{
    if (rs->n <= ROUTESET_LINEAR) {
        for (size_t i = 0; i < rs->n; i++)
            if (rs->queues[i] == q)
                return true;
        return false;
    }
    if (rs->indexed < rs->n)
        sync_set(rs);
    return rs->set[set_slot(rs, q)] == q;
}

static void
reserve(struct routeset *rs, size_t more)
{
    if (rs->n + more <= rs->cap)
        return;
    rs->cap = WR_MAX(rs->cap ? 2 * rs->cap : 16, rs->n + more);
    rs->queues = xrealloc(rs->queues, rs->cap * sizeof(*rs->queues));
}

bool
routeset_add(struct routeset *rs, void *q)
{
    WR_ASSERT(q != NULL);
    if (routeset_has(rs, q))
        return false;
    reserve(rs, 1);
    rs->queues[rs->n++] = q;
    if (rs->n <= ROUTESET_LINEAR)
        return true;
    if (rs->indexed + 1 == rs->n && 2 * rs->n <= rs->set_cap) {
        /* has() left the slot for q free and nothing else pending. */
        rs->set[set_slot(rs, q)] = q;
        rs->indexed = rs->n;
    } else {
        sync_set(rs);
    }
    return true;
}

void
routeset__add_queue(struct routeset *rs, void *q)
{
    (void)routeset_add(rs, q);
}

void
routeset__add_distinct(struct routeset *rs, const struct xslot *v, uint32_t n)
{
    if (rs->n != 0 || n <= ROUTESET_LINEAR) {
        for (uint32_t i = 0; i < n; i++)
            (void)routeset_add(rs, v[i].dest.ptr);
        return;
    }
    reserve(rs, n);
    for (uint32_t i = 0; i < n; i++)
        rs->queues[i] = v[i].dest.ptr;
    rs->n = n;
    rs->indexed = 0; /* indexed on the next add or has */
}
