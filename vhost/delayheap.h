/*
 * vhost/delayheap.h: the due-time index of one delayed exchange's pending
 * messages (vhost/delay.c), private to vhost/ and its unit test.
 *
 * A pending delayed message costs the broker one 24-byte struct dentry in
 * a binary min-heap ordered by (due, id): the body and the meta stay in
 * the vhost's log, found again by `pos`. Ties in due time come out in id
 * (publish) order. Compaction may move a pending record; the new position
 * goes to a small open-addressing map (struct dmoves, 16 bytes a slot)
 * that delivery consults and clears, so the heap is never searched.
 */
#ifndef WARREN_VHOST_DELAYHEAP_H
#define WARREN_VHOST_DELAYHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dentry {
    uint64_t due_us; /* wall clock, µs since the epoch */
    uint64_t id;     /* message id (delay.c may set a flag bit) */
    uint64_t pos;    /* where the record is (or what delay.c keeps) */
};

struct dheap {
    struct dentry *v;
    size_t n, cap;
};

void dheap_init(struct dheap *h);
void dheap_fini(struct dheap *h);
/* Adds e. O(log n). */
void dheap_push(struct dheap *h, struct dentry e);
/* The earliest entry (smallest due, then id), or NULL when empty. */
static inline const struct dentry *
dheap_top(const struct dheap *h)
{
    return h->n ? &h->v[0] : NULL;
}
/* Removes the earliest entry into *out. False when empty. O(log n).
 * Gives memory back when the heap has shrunk to a quarter. */
bool dheap_pop(struct dheap *h, struct dentry *out);
/* Appends e without ordering (bulk load); dheap_heapify() must follow
 * before any top/pop. */
void dheap_append(struct dheap *h, struct dentry e);
/* Restores the heap order over everything appended. O(n). */
void dheap_heapify(struct dheap *h);
/* Keeps only the entries for which keep(arg, e) is true, then restores
 * the order. O(n). */
void dheap_filter(struct dheap *h, bool (*keep)(void *arg, struct dentry *e),
                  void *arg);
/* Bytes allocated. */
size_t dheap_bytes(const struct dheap *h);

/* id -> position of records moved by compaction while pending. */
struct dmoves {
    uint64_t *slots; /* pairs (id, pos); id 0 = empty */
    size_t cap, n;   /* cap: pairs, a power of two or 0 */
};

void dmoves_init(struct dmoves *m);
void dmoves_fini(struct dmoves *m);
/* Sets id's position (id != 0). */
void dmoves_put(struct dmoves *m, uint64_t id, uint64_t pos);
/* When id has moved: removes it, sets *pos and returns true. */
bool dmoves_take(struct dmoves *m, uint64_t id, uint64_t *pos);

#endif
