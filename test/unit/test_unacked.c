/* Unit tests for server/unacked.c: a channel's deliveries waiting for
 * ack, without a channel or a socket. */
#include "server/channel.h"
#include "test/harness/t.h"

/* A stand-in for the queue a delivery came from: only its address
 * matters here (NULL marks a tombstone). */
static int queue_token;
#define Q ((struct queue *)&queue_token)

static void
push_tags(struct unacked_list *l, uint64_t from, uint64_t to)
{
    for (uint64_t t = from; t <= to; t++)
        unacked_push(l, &(struct unacked){.tag = t, .at_us = t * 10, .q = Q});
}

T_CASE(find_by_tag_and_take_leaves_a_tombstone)
{
    struct unacked_list l = {0};
    struct unacked u;
    ssize_t i;

    push_tags(&l, 1, 100);
    T_EQ_INT(l.live, 100);
    i = unacked_find(&l, 42);
    T_EQ_INT(i, 41);
    u = unacked_take(&l, (size_t)i);
    T_EQ_INT(u.tag, 42);
    T_EQ_INT(u.at_us, 420);
    T_EQ_INT(l.live, 99);
    T_EQ_INT(l.r.n, 100); /* the tombstone keeps its place */
    T_EQ_INT(unacked_find(&l, 42), -1);
    T_EQ_INT(unacked_find(&l, 43), 42);
    T_EQ_INT(unacked_find(&l, 0), -1);
    T_EQ_INT(unacked_find(&l, 101), -1);
    unacked_fini(&l);
}

T_CASE(compact_drops_tombstones_at_the_front_only)
{
    struct unacked_list l = {0};

    push_tags(&l, 1, 5);
    unacked_take(&l, 0);
    unacked_take(&l, 1);
    unacked_take(&l, 3);
    unacked_compact(&l);
    T_EQ_INT(l.r.n, 3); /* 3, tombstone 4, 5 */
    T_EQ_INT(unacked_at(&l, 0)->tag, 3);
    T_EQ_INT(unacked_find(&l, 5), 2);
    T_EQ_INT(l.live, 2);
    unacked_fini(&l);
}

T_CASE(acking_in_order_keeps_the_list_short)
{
    struct unacked_list l = {0};

    for (uint64_t t = 1; t <= 100000; t++) {
        push_tags(&l, t, t);
        unacked_take(&l, (size_t)unacked_find(&l, t));
        unacked_compact(&l);
        T_ASSERT(l.r.n == 0);
    }
    T_ASSERT(l.r.cap <= 1024);
    unacked_fini(&l);
}

T_CASE(a_large_list_gives_memory_back_once_empty)
{
    struct unacked_list l = {0};

    push_tags(&l, 1, 5000);
    T_ASSERT(l.r.cap > 1024);
    for (size_t i = 0; i < 5000; i++)
        unacked_take(&l, i);
    unacked_compact(&l);
    T_EQ_INT(l.r.n, 0);
    T_EQ_INT(l.r.cap, 0);
    unacked_fini(&l);
}

T_CASE(restore_puts_taken_entries_back_in_tag_order)
{
    struct unacked_list l = {0};
    struct unacked held[3];

    push_tags(&l, 1, 6);
    held[0] = unacked_take(&l, 4); /* 5 */
    held[1] = unacked_take(&l, 1); /* 2 */
    held[2] = unacked_take(&l, 0); /* 1 */
    unacked_compact(&l);
    unacked_restore(&l, held, 3);
    T_EQ_INT(l.live, 6);
    T_EQ_INT(l.r.n, 6);
    for (size_t i = 0; i < 6; i++)
        T_EQ_INT(unacked_at(&l, i)->tag, i + 1);
    T_EQ_INT(unacked_find(&l, 5), 4);
    unacked_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(find_by_tag_and_take_leaves_a_tombstone),
    T_REG(compact_drops_tombstones_at_the_front_only),
    T_REG(acking_in_order_keeps_the_list_short),
    T_REG(a_large_list_gives_memory_back_once_empty),
    T_REG(restore_puts_taken_entries_back_in_tag_order),
};
T_MAIN(cases)
