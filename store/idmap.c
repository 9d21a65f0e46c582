/*
 * idmap.c: linear probing with backward-shift deletion, so there are no
 * tombstones and lookups stay short after many deletions. Invariant:
 * every entry sits in the probe run that starts at its home slot, with
 * no empty slot in between (this is what backward shift preserves).
 */
#include "store/idmap.h"

#include "base/base.h"

#include <stdlib.h>

static uint64_t
mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t *
slot_key(const struct idmap *m, size_t i)
{
    return (uint64_t *)(void *)(m->slots + i * m->ssize);
}

static void *
slot_val(const struct idmap *m, size_t i)
{
    return m->slots + i * m->ssize + 8;
}

static size_t
slot_of(const struct idmap *m, const void *val)
{
    return (size_t)((const uint8_t *)val - 8 - m->slots) / m->ssize;
}

void
idmap_init(struct idmap *m, size_t vsize)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
    m->vsize = vsize;
    m->ssize = 8 + ((vsize + 7) & ~(size_t)7);
}

void
idmap_fini(struct idmap *m)
{
    free(m->slots);
    idmap_init(m, m->vsize);
}

static void
rehash(struct idmap *m, size_t cap)
{
    struct idmap old = *m;

    m->slots = xcalloc(cap, m->ssize);
    m->cap = cap;
    m->count = 0;
    for (size_t i = 0; i < old.cap; i++) {
        uint64_t k = *slot_key(&old, i);

        if (k != 0)
            memcpy(idmap_add(m, k), slot_val(&old, i), m->vsize);
    }
    free(old.slots);
}

void
idmap_reserve(struct idmap *m, size_t n)
{
    size_t cap = m->cap ? m->cap : 16;

    while (n + n / 3 >= cap)
        cap *= 2;
    if (cap != m->cap)
        rehash(m, cap);
}

void *
idmap_find(const struct idmap *m, uint64_t key)
{
    if (m->count == 0)
        return NULL;
    for (size_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        uint64_t k = *slot_key(m, i);

        if (k == key)
            return slot_val(m, i);
        if (k == 0)
            return NULL;
    }
}

void *
idmap_find_next(const struct idmap *m, uint64_t key, void *prev)
{
    size_t i = slot_of(m, prev);

    for (i = (i + 1) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        uint64_t k = *slot_key(m, i);

        if (k == key)
            return slot_val(m, i);
        if (k == 0)
            return NULL;
    }
}

void *
idmap_add(struct idmap *m, uint64_t key)
{
    size_t i;

    WR_ASSERT(key != 0);
    if ((m->count + 1) * 4 > m->cap * 3)
        rehash(m, m->cap ? m->cap * 2 : 16);
    for (i = mix(key) & (m->cap - 1); *slot_key(m, i) != 0;
         i = (i + 1) & (m->cap - 1))
        ;
    *slot_key(m, i) = key;
    memset(slot_val(m, i), 0, m->vsize);
    m->count++;
    return slot_val(m, i);
}

void
idmap_del(struct idmap *m, void *val)
{
    size_t mask = m->cap - 1, hole = slot_of(m, val);

    WR_ASSERT(hole < m->cap && *slot_key(m, hole) != 0);
    for (size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
        uint64_t k = *slot_key(m, i);
        size_t home;

        if (k == 0)
            break;
        home = mix(k) & mask;
        /* Move i into the hole unless its home lies in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            memcpy(m->slots + hole * m->ssize, m->slots + i * m->ssize,
                   m->ssize);
            hole = i;
        }
    }
    *slot_key(m, hole) = 0;
    m->count--;
}

bool
idmap_next(const struct idmap *m, size_t *it, uint64_t *key, void **val)
{
    while (*it < m->cap) {
        size_t i = (*it)++;
        uint64_t k = *slot_key(m, i);

        if (k != 0) {
            *key = k;
            *val = slot_val(m, i);
            return true;
        }
    }
    return false;
}
