/*
 * delayheap.c: the binary min-heap of pending delayed messages and the
 * map of their moved records (see delayheap.h).
 *
 * Invariant (heap): for every i > 0, v[(i-1)/2] <= v[i] in (due, id)
 * order. Invariant (moves): linear probing without tombstones; removal
 * shifts the following entries of the run back (Knuth's algorithm R), so
 * a lookup stops at the first empty slot.
 */
#include "vhost/delayheap.h"
#include "base/base.h"

#include <stdlib.h>

static bool
before(const struct dentry *a, const struct dentry *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->id < b->id);
}

void
dheap_init(struct dheap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void
dheap_fini(struct dheap *h)
{
    free(h->v);
    dheap_init(h);
}

static void
sift_up(struct dheap *h, size_t i)
{
    struct dentry e = h->v[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (!before(&e, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = e;
}

static void
sift_down(struct dheap *h, size_t i)
{
    struct dentry e = h->v[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &e))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = e;
}

void
dheap_append(struct dheap *h, struct dentry e)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap + h->cap / 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n++] = e;
}

void
dheap_push(struct dheap *h, struct dentry e)
{
    dheap_append(h, e);
    sift_up(h, h->n - 1);
}

bool
dheap_pop(struct dheap *h, struct dentry *out)
{
    if (h->n == 0)
        return false;
    *out = h->v[0];
    h->v[0] = h->v[--h->n];
    if (h->n > 0)
        sift_down(h, 0);
    if (h->n == 0) {
        dheap_fini(h);
    } else if (h->cap > 1024 && h->n < h->cap / 4) {
        h->cap /= 2;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    return true;
}

void
dheap_heapify(struct dheap *h)
{
    for (size_t i = h->n / 2; i-- > 0;)
        sift_down(h, i);
}

void
dheap_filter(struct dheap *h, bool (*keep)(void *arg, struct dentry *e),
             void *arg)
{
    size_t k = 0;

    for (size_t i = 0; i < h->n; i++) {
        if (keep(arg, &h->v[i]))
            h->v[k++] = h->v[i];
    }
    h->n = k;
    dheap_heapify(h);
}

size_t
dheap_bytes(const struct dheap *h)
{
    return h->cap * sizeof(struct dentry);
}

/* ---- moved records */

void
dmoves_init(struct dmoves *m)
{
    m->slots = NULL;
    m->cap = m->n = 0;
}

void
dmoves_fini(struct dmoves *m)
{
    free(m->slots);
    dmoves_init(m);
}

static size_t
home(const struct dmoves *m, uint64_t id)
{
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (m->cap - 1);
}

static void
grow(struct dmoves *m)
{
    uint64_t *old = m->slots;
    size_t oldcap = m->cap;

    m->cap = oldcap ? 2 * oldcap : 64;
    m->slots = xcalloc(2 * m->cap, sizeof(uint64_t));
    m->n = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[2 * i])
            dmoves_put(m, old[2 * i], old[2 * i + 1]);
    }
    free(old);
}

void
dmoves_put(struct dmoves *m, uint64_t id, uint64_t pos)
{
    size_t i;

    WR_ASSERT(id != 0);
    if (4 * (m->n + 1) > 3 * m->cap)
        grow(m);
    for (i = home(m, id); m->slots[2 * i]; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[2 * i] == id) {
            m->slots[2 * i + 1] = pos;
            return;
        }
    }
    m->slots[2 * i] = id;
    m->slots[2 * i + 1] = pos;
    m->n++;
}

bool
dmoves_take(struct dmoves *m, uint64_t id, uint64_t *pos)
{
    size_t i, j;

    if (m->n == 0)
        return false;
    for (i = home(m, id); m->slots[2 * i] != id; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[2 * i] == 0)
            return false;
    }
    *pos = m->slots[2 * i + 1];
    /* Shift the rest of the run back over the hole. */
    for (j = (i + 1) & (m->cap - 1); m->slots[2 * j];
         j = (j + 1) & (m->cap - 1)) {
        size_t h = home(m, m->slots[2 * j]);

        /* Entry j may move to i when its home is not in (i, j]. */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            m->slots[2 * i] = m->slots[2 * j];
            m->slots[2 * i + 1] = m->slots[2 * j + 1];
            i = j;
        }
    }
    m->slots[2 * i] = 0;
    m->n--;
    if (m->n == 0)
        dmoves_fini(m);
    return true;
}
