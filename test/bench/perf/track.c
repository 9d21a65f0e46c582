/*
 * track.c: what a consumer saw of one (producer, queue) stream.
 *
 * Every sequence number a stream delivers sets a bit in a bitmap that
 * grows by doubling (amortised: no allocation per message). From it:
 *
 *   duplicated    a seq seen again without the redelivered flag
 *   redelivered   deliveries flagged redelivered (counted, not failures)
 *   out of order  a new seq lower than the highest seen so far
 *   lost          seqs below the published count never seen (at the end)
 *   unexpected    seqs at or above the published count
 *
 * A corrupted body (consumer.c) never reaches a stream, since its sequence
 * number cannot be trusted, so it also counts as lost.
 *
 * A queue's messages go to one stream per producer; a queue with several
 * consumers splits each stream between them (each one still sees it in
 * order), and track_merge() unites their bitmaps at the end.
 */
#include "test/bench/perf/kit.h"

#include <stdlib.h>

void
track_init(struct track *t)
{
    memset(t, 0, sizeof(*t));
}

void
track_fini(struct track *t)
{
    free(t->bits);
    memset(t, 0, sizeof(*t));
}

static void
grow(struct track *t, size_t words)
{
    size_t n = t->nwords ? t->nwords : 1024;

    while (n < words)
        n *= 2;
    t->bits = xrealloc(t->bits, n * sizeof(uint64_t));
    memset(t->bits + t->nwords, 0, (n - t->nwords) * sizeof(uint64_t));
    t->nwords = n;
}

bool
track_see(struct track *t, uint32_t seq, bool redelivered)
{
    size_t w = seq / 64;
    uint64_t bit = 1ull << (seq % 64);

    if (redelivered)
        t->redelivered++;
    if (WR_UNLIKELY(w >= t->nwords))
        grow(t, w + 1);
    if (t->bits[w] & bit) {
        if (!redelivered)
            t->dups++;
        return false;
    }
    t->bits[w] |= bit;
    t->distinct++;
    if (seq + 1ull > t->top)
        t->top = seq + 1ull;
    else if (!redelivered)
        t->out_of_order++;
    return true;
}

void
track_merge(struct track *dst, const struct track *src)
{
    uint64_t overlap = 0;

    if (src->nwords > dst->nwords)
        grow(dst, src->nwords);
    for (size_t i = 0; i < src->nwords; i++) {
        uint64_t both = dst->bits[i] & src->bits[i];

        overlap += (uint64_t)__builtin_popcountll(both);
        dst->bits[i] |= src->bits[i];
    }
    /* Ensures: distinct counts the union; seqs both saw are duplicates. */
    dst->distinct = dst->distinct + src->distinct - overlap;
    dst->dups += src->dups + overlap;
    dst->redelivered += src->redelivered;
    dst->out_of_order += src->out_of_order;
    if (src->top > dst->top)
        dst->top = src->top;
}

static uint64_t
count_range(const struct track *t, uint64_t lo, uint64_t hi)
{
    uint64_t n = 0;

    hi = WR_MIN(hi, (uint64_t)t->nwords * 64);
    for (uint64_t s = lo; s < hi;) {
        size_t w = (size_t)(s / 64);

        if (s % 64 == 0 && s + 64 <= hi) {
            n += (uint64_t)__builtin_popcountll(t->bits[w]);
            s += 64;
        } else {
            n += (t->bits[w] >> (s % 64)) & 1;
            s++;
        }
    }
    return n;
}

uint64_t
track_missing(const struct track *t, uint64_t expected)
{
    return expected - count_range(t, 0, expected);
}

uint64_t
track_beyond(const struct track *t, uint64_t expected)
{
    return count_range(t, expected, UINT64_MAX);
}
