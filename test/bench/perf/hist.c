/*
 * hist.c: log-linear histograms (HdrHistogram's idea, 4 bits of
 * precision): values below HIST_SUB have a bucket each; above, bucket
 * (e - 3) * 16 + the 4 bits after the leading one, where e is the position
 * of the leading one. So every bucket is at most 1/16 (6.25%) wide
 * relative to its values, and a histogram is a fixed 8 KiB array that
 * recording never allocates.
 *
 * One thread records (hist_record, single-writer counters); the main
 * thread may read at any time for live percentiles.
 */
#include "test/bench/perf/kit.h"

static int
bucket_of(uint64_t v)
{
    int e;

    if (v < HIST_SUB)
        return (int)v;
    e = 63 - __builtin_clzll(v);
    return (e - 3) * HIST_SUB + (int)((v >> (e - 4)) & (HIST_SUB - 1));
}

/* Largest value that falls in bucket i. */
static uint64_t
bucket_top(int i)
{
    int e;
    uint64_t sub;

    if (i < HIST_SUB)
        return (uint64_t)i;
    e = i / HIST_SUB + 3;
    sub = (uint64_t)(i % HIST_SUB);
    if (e >= 63)
        return UINT64_MAX;
    return ((HIST_SUB + sub + 1) << (e - 4)) - 1;
}

void
hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

void
hist_record(struct hist *h, uint64_t v)
{
    ctr_add(&h->n[bucket_of(v)], 1);
    ctr_add(&h->count, 1);
    ctr_add(&h->sum, v);
    if (v > ctr_get(&h->max))
        atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

void
hist_add(struct hist *dst, struct hist *src)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        ctr_add(&dst->n[i], ctr_get(&src->n[i]));
    ctr_add(&dst->count, ctr_get(&src->count));
    ctr_add(&dst->sum, ctr_get(&src->sum));
    if (ctr_get(&src->max) > ctr_get(&dst->max))
        atomic_store(&dst->max, ctr_get(&src->max));
}

void
hist_sub(struct hist *dst, struct hist *a, struct hist *b)
{
    uint64_t count = 0;

    for (int i = 0; i < HIST_BUCKETS; i++) {
        uint64_t x = ctr_get(&a->n[i]);
        uint64_t y = ctr_get(&b->n[i]);
        uint64_t d = x > y ? x - y : 0;

        atomic_store(&dst->n[i], d);
        count += d;
    }
    /* Ensures: count agrees with the buckets even when a was read while
     * being written. */
    atomic_store(&dst->count, count);
    atomic_store(&dst->sum, ctr_get(&a->sum) - ctr_get(&b->sum));
    atomic_store(&dst->max, ctr_get(&a->max));
}

uint64_t
hist_quantile(struct hist *h, double q)
{
    uint64_t count = 0;
    uint64_t rank;
    uint64_t seen = 0;
    uint64_t max = ctr_get(&h->max);

    for (int i = 0; i < HIST_BUCKETS; i++)
        count += ctr_get(&h->n[i]);
    if (count == 0)
        return 0;
    rank = (uint64_t)(q * (double)count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > count)
        rank = count;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += ctr_get(&h->n[i]);
        if (seen >= rank) {
            uint64_t top = bucket_top(i);

            return max != 0 && top > max ? max : top;
        }
    }
    return max;
}

void
perf_lat_of(struct hist *h, struct perf_lat *out)
{
    uint64_t count = ctr_get(&h->count);

    out->count = count;
    out->p50 = (double)hist_quantile(h, 0.50) / 1000.0;
    out->p90 = (double)hist_quantile(h, 0.90) / 1000.0;
    out->p99 = (double)hist_quantile(h, 0.99) / 1000.0;
    out->p999 = (double)hist_quantile(h, 0.999) / 1000.0;
    out->max = (double)ctr_get(&h->max) / 1000.0;
    out->mean = count ? (double)ctr_get(&h->sum) / (double)count / 1000.0 : 0;
}
