/*
 * store/idmap.h: an open-addressing hash table keyed by 64-bit message
 * ids (private to store/). Key 0 is reserved (message ids start at 1).
 * Values are fixed-size blobs chosen at init. Duplicate keys are allowed
 * (idmap_add always inserts), which makes it a multimap when needed:
 * idmap_find_next walks every value of one key.
 *
 * Why not uthash: its handle costs 56 bytes per entry; this table costs
 * 8 + vsize bytes per slot at <= 75% load, which matters for per-message
 * state (relocated messages, recovery sets of acks).
 *
 * Pointers returned are valid until the next idmap_add or idmap_del.
 */
#ifndef WARREN_STORE_IDMAP_H
#define WARREN_STORE_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint8_t *slots;
    size_t cap; /* power of two, 0 when empty */
    size_t count;
    size_t vsize; /* value bytes */
    size_t ssize; /* slot bytes: 8 + vsize rounded up to 8 */
};

void idmap_init(struct idmap *m, size_t vsize);
void idmap_fini(struct idmap *m);
/* Pre-sizes the table for n entries. */
void idmap_reserve(struct idmap *m, size_t n);
/* The first value stored under key, or NULL. */
void *idmap_find(const struct idmap *m, uint64_t key);
/* The next value under the same key after prev (from find/find_next). */
void *idmap_find_next(const struct idmap *m, uint64_t key, void *prev);
/* Inserts key (duplicates allowed); returns its zeroed value. */
void *idmap_add(struct idmap *m, uint64_t key);
/* Removes the entry whose value pointer is val. */
void idmap_del(struct idmap *m, void *val);
/*
 * Iterates: start with *it = 0; returns false at the end. The table must
 * not change during the walk.
 */
bool idmap_next(const struct idmap *m, size_t *it, uint64_t *key, void **val);

#endif
