/* Unit tests for vhost/delayheap.c: the due-time heap of pending delayed
 * messages (x-delayed-message) and the map of their moved records. */
#include "vhost/delayheap.h"
#include "test/harness/t.h"

#include <stdlib.h>

/* A small deterministic generator (xorshift64). */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Pops everything, checking (due, id) never goes backwards. Returns the
 * number popped. */
static size_t
drain_in_order(struct dheap *h)
{
    struct dentry e, prev = {0, 0, 0};
    size_t n = 0;

    while (dheap_pop(h, &e)) {
        T_ASSERT(e.due_us > prev.due_us ||
                 (e.due_us == prev.due_us && e.id > prev.id) || n == 0);
        T_EQ_INT(e.pos, e.id * 10); /* the entry travelled whole */
        prev = e;
        n++;
    }
    return n;
}

T_CASE(pops_in_due_order)
{
    struct dheap h;
    uint64_t s = 42;

    dheap_init(&h);
    T_ASSERT(dheap_top(&h) == NULL);
    for (uint64_t id = 1; id <= 10000; id++)
        dheap_push(&h, (struct dentry){rnd(&s) % 5000, id, id * 10});
    T_EQ_INT(h.n, 10000);
    T_EQ_INT(drain_in_order(&h), 10000);
    T_ASSERT(h.v == NULL && h.cap == 0); /* empty gives its memory back */
    dheap_fini(&h);
}

T_CASE(equal_due_times_come_out_in_id_order)
{
    struct dheap h;
    struct dentry e;

    dheap_init(&h);
    for (uint64_t id = 100; id > 0; id--)
        dheap_push(&h, (struct dentry){7, id, id * 10});
    dheap_push(&h, (struct dentry){6, 500, 5000});
    T_ASSERT(dheap_pop(&h, &e) && e.id == 500);
    for (uint64_t id = 1; id <= 100; id++) {
        T_ASSERT(dheap_pop(&h, &e));
        T_EQ_INT(e.id, id);
    }
    T_ASSERT(!dheap_pop(&h, &e));
    dheap_fini(&h);
}

T_CASE(bulk_load_then_heapify)
{
    struct dheap h;
    uint64_t s = 7;

    dheap_init(&h);
    for (uint64_t id = 1; id <= 5000; id++)
        dheap_append(&h, (struct dentry){rnd(&s) % 100, id, id * 10});
    dheap_heapify(&h);
    T_EQ_INT(drain_in_order(&h), 5000);
    dheap_fini(&h);
}

static bool
keep_odd(void *arg, struct dentry *e)
{
    (void)arg;
    e->due_us = 1000 - e->due_us; /* filters may rewrite the key */
    return e->id % 2 == 1;
}

T_CASE(filter_keeps_and_reorders)
{
    struct dheap h;
    struct dentry e;

    dheap_init(&h);
    for (uint64_t id = 1; id <= 1000; id++)
        dheap_push(&h, (struct dentry){id, id, id * 10});
    dheap_filter(&h, keep_odd, NULL);
    T_EQ_INT(h.n, 500);
    T_ASSERT(dheap_pop(&h, &e));
    T_EQ_INT(e.id, 999); /* now the earliest */
    T_EQ_INT(drain_in_order(&h), 499);
    dheap_fini(&h);
}

T_CASE(shrinks_as_it_drains)
{
    struct dheap h;
    struct dentry e;

    dheap_init(&h);
    for (uint64_t id = 1; id <= 100000; id++)
        dheap_push(&h, (struct dentry){id, id, id * 10});
    size_t big = dheap_bytes(&h);
    while (h.n > 1000)
        dheap_pop(&h, &e);
    T_ASSERT(dheap_bytes(&h) < big / 8);
    T_ASSERT(dheap_bytes(&h) >= h.n * sizeof(struct dentry));
    T_EQ_INT(sizeof(struct dentry), 24);
    dheap_fini(&h);
}

T_CASE(moves_put_take_and_overwrite)
{
    struct dmoves m;
    uint64_t pos;

    dmoves_init(&m);
    T_ASSERT(!dmoves_take(&m, 5, &pos));
    for (uint64_t id = 1; id <= 20000; id++)
        dmoves_put(&m, id * 7, id);
    dmoves_put(&m, 7, 99); /* moved again: the last position wins */
    T_EQ_INT(m.n, 20000);
    T_ASSERT(dmoves_take(&m, 7, &pos) && pos == 99);
    T_ASSERT(!dmoves_take(&m, 7, &pos));
    T_ASSERT(!dmoves_take(&m, 8, &pos));
    /* Take the rest in a scrambled order: removal keeps every other
     * key reachable (no tombstones). */
    for (uint64_t k = 0; k < 19999; k++) {
        uint64_t id = 2 + (k * 7919) % 19999;

        T_ASSERT(dmoves_take(&m, id * 7, &pos));
        T_EQ_INT(pos, id);
    }
    T_EQ_INT(m.n, 0);
    T_ASSERT(m.slots == NULL);
    dmoves_fini(&m);
}

T_CASE(moves_colliding_runs)
{
    struct dmoves m;
    uint64_t pos;

    /* Keys that share low bits after hashing often enough to wrap runs
     * around the end of the table. */
    dmoves_init(&m);
    for (uint64_t id = 1; id <= 40; id++)
        dmoves_put(&m, id << 40, id);
    for (uint64_t id = 1; id <= 40; id += 2)
        T_ASSERT(dmoves_take(&m, id << 40, &pos) && pos == id);
    for (uint64_t id = 2; id <= 40; id += 2)
        T_ASSERT(dmoves_take(&m, id << 40, &pos) && pos == id);
    T_EQ_INT(m.n, 0);
    dmoves_fini(&m);
}

static const struct t_case cases[] = {
    T_REG(pops_in_due_order),      T_REG(equal_due_times_come_out_in_id_order),
    T_REG(bulk_load_then_heapify), T_REG(filter_keeps_and_reorders),
    T_REG(shrinks_as_it_drains),   T_REG(moves_put_take_and_overwrite),
    T_REG(moves_colliding_runs),
};
T_MAIN(cases)
