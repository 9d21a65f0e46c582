/* Unit tests for base/ring.c: the deque under the queues' ready lists,
 * the channels' unacked lists and confirm lists, and the output queues. */
#include "base/ring.h"
#include "test/harness/t.h"

/* Pushes 0..n-1 at the back. */
static void
fill(struct ring *r, int n)
{
    for (int i = 0; i < n; i++)
        *(int *)ring_push_back(r, sizeof(int)) = i;
}

static int
at(const struct ring *r, size_t i)
{
    return *(const int *)ring_at(r, sizeof(int), i);
}

T_CASE(push_and_pop_in_order_across_growth)
{
    struct ring r = {0};

    fill(&r, 100);
    T_EQ_INT(r.n, 100);
    T_EQ_INT(r.cap, 128);
    for (int i = 0; i < 100; i++) {
        T_EQ_INT(at(&r, 0), i);
        ring_pop_front(&r);
    }
    T_EQ_INT(r.n, 0);
    T_EQ_INT(r.head, 0); /* an empty ring starts again at slot 0 */
    ring_fini(&r);
}

T_CASE(wraps_around_without_growing)
{
    struct ring r = {0};

    fill(&r, RING_MIN_CAP);
    for (int round = 0; round < 50; round++) {
        ring_pop_front(&r);
        *(int *)ring_push_back(&r, sizeof(int)) = RING_MIN_CAP + round;
        T_EQ_INT(r.cap, RING_MIN_CAP);
    }
    for (size_t i = 0; i < r.n; i++)
        T_EQ_INT(at(&r, i), 50 + (int)i);
    ring_fini(&r);
}

T_CASE(insert_moves_the_shorter_side)
{
    struct ring r = {0};

    fill(&r, 6);                                  /* 0 1 2 3 4 5 */
    ring_pop_front(&r);                           /* 1 2 3 4 5, head 1 */
    *(int *)ring_insert(&r, sizeof(int), 1) = 10; /* front side moves */
    T_EQ_INT(r.head, 0);
    *(int *)ring_insert(&r, sizeof(int), 5) = 20;   /* back side moves */
    *(int *)ring_insert(&r, sizeof(int), 0) = 30;   /* at the front */
    *(int *)ring_insert(&r, sizeof(int), r.n) = 40; /* at the back */
    {
        const int want[] = {30, 1, 10, 2, 3, 4, 20, 5, 40};

        T_EQ_INT(r.n, WR_ARRAY_LEN(want));
        for (size_t i = 0; i < r.n; i++)
            T_EQ_INT(at(&r, i), want[i]);
    }
    ring_fini(&r);
}

T_CASE(insert_into_a_full_ring_grows_it)
{
    struct ring r = {0};

    fill(&r, RING_MIN_CAP);
    *(int *)ring_insert(&r, sizeof(int), 3) = 99;
    T_EQ_INT(r.cap, 2 * RING_MIN_CAP);
    T_EQ_INT(at(&r, 3), 99);
    T_EQ_INT(at(&r, 4), 3);
    T_EQ_INT(at(&r, r.n - 1), RING_MIN_CAP - 1);
    ring_fini(&r);
}

T_CASE(resize_keeps_order_and_clear_keeps_memory)
{
    struct ring r = {0};

    fill(&r, 1000);
    for (int i = 0; i < 990; i++)
        ring_pop_front(&r);
    ring_resize(&r, sizeof(int), 16);
    T_EQ_INT(r.cap, 16);
    T_EQ_INT(r.head, 0);
    for (size_t i = 0; i < r.n; i++)
        T_EQ_INT(at(&r, i), 990 + (int)i);
    ring_clear(&r);
    T_EQ_INT(r.n, 0);
    T_EQ_INT(r.cap, 16);
    ring_fini(&r);
    T_ASSERT(r.v == NULL && r.cap == 0);
}

static const struct t_case cases[] = {
    T_REG(push_and_pop_in_order_across_growth),
    T_REG(wraps_around_without_growing),
    T_REG(insert_moves_the_shorter_side),
    T_REG(insert_into_a_full_ring_grows_it),
    T_REG(resize_keeps_order_and_clear_keeps_memory),
};
T_MAIN(cases)
