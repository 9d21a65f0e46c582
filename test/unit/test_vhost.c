/*
 * Unit tests for vhost/: queue dispatch (round-robin, prefetch, readiness),
 * requeue order, purge, deletion (consumers cancelled, bindings removed),
 * exclusive owners, auto-delete, declare rules, publish routing, credit
 * flow; vhost names and their data directories.
 *
 * Consumers here are test doubles that record deliveries; messages are
 * real ones.
 */
#include "vhost/vhost.h"
#include "test/harness/t.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct tcons {
    struct consumer c;
    bool ready;
    int cancelled;
    size_t n;
    struct qentry got[64];
};

static bool
t_ready(struct consumer *c)
{
    return ((struct tcons *)c)->ready;
}

static void
t_deliver(struct consumer *c, struct queue *q, struct qentry e)
{
    struct tcons *t = (struct tcons *)c;

    (void)q;
    T_ASSERT(t->n < 64);
    t->got[t->n++] = e;
    if (!c->no_ack)
        c->unacked++;
}

static void
t_cancel(struct consumer *c)
{
    ((struct tcons *)c)->cancelled++;
}

static const struct consumer_ops tops = {t_ready, t_deliver, t_cancel};

static void
tcons_init(struct tcons *t, const char *tag, uint32_t prefetch)
{
    memset(t, 0, sizeof(*t));
    t->c.ops = &tops;
    t->c.tag = (char *)tag;
    t->c.tag_len = strlen(tag);
    t->c.prefetch = prefetch;
    t->ready = true;
}

static struct message *
msg(const char *body)
{
    struct message *m = message_new(BYTES_LIT(""), BYTES_LIT("k"),
                                    BYTES_LIT("\x00\x00"), strlen(body));

    m = message_append(m, bytes_str(body));
    return m;
}

static struct queue *
declare(struct vhost *vh, const char *name, struct vh_owner *owner,
        bool exclusive, bool auto_delete)
{
    struct queue_decl d = {
        .name = bytes_str(name),
        .exclusive = exclusive,
        .auto_delete = auto_delete,
        .owner = owner,
    };
    struct queue *q = NULL;
    struct vherr err;

    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_OK);
    return q;
}

static void
push(struct queue *q, const char *body)
{
    struct message *m = msg(body);

    queue_push(q, m);
    message_unref(m);
}

static bool
body_is(struct qentry e, const char *s)
{
    return bytes_eq_str(message_body(e.msg), s);
}

T_CASE(round_robin_across_consumers)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct tcons a, b, c;
    char body[8];

    tcons_init(&a, "a", 0);
    tcons_init(&b, "b", 0);
    tcons_init(&c, "c", 0);
    a.c.no_ack = b.c.no_ack = c.c.no_ack = true;
    queue_consumer_add(q, &a.c);
    queue_consumer_add(q, &b.c);
    queue_consumer_add(q, &c.c);
    for (int i = 0; i < 9; i++) {
        snprintf(body, sizeof(body), "%d", i);
        push(q, body);
    }
    node_run_dispatch(n);
    T_EQ_INT(a.n, 3);
    T_EQ_INT(b.n, 3);
    T_EQ_INT(c.n, 3);
    T_ASSERT(body_is(a.got[0], "0") && body_is(b.got[0], "1") &&
             body_is(c.got[0], "2") && body_is(a.got[1], "3"));
    for (size_t i = 0; i < 3; i++) {
        message_unref(a.got[i].msg);
        message_unref(b.got[i].msg);
        message_unref(c.got[i].msg);
    }
    queue_consumer_remove(q, &a.c);
    queue_consumer_remove(q, &b.c);
    queue_consumer_remove(q, &c.c);
    node_free(n);
}

T_CASE(prefetch_limits_and_credit_resumes)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct tcons a;

    tcons_init(&a, "a", 2);
    queue_consumer_add(q, &a.c);
    for (int i = 0; i < 5; i++)
        push(q, "m");
    node_run_dispatch(n);
    T_EQ_INT(a.n, 2); /* prefetch exactly full */
    T_EQ_INT(q->unacked, 2);
    T_EQ_INT(queue_message_count(q), 3);
    a.c.unacked--;
    queue_ack(q, a.got[0]);
    node_run_dispatch(n);
    T_EQ_INT(a.n, 2); /* found full: skipped until woken */
    queue_consumer_wake(&a.c);
    node_run_dispatch(n);
    T_EQ_INT(a.n, 3);
    /* a consumer that is not ready gets nothing */
    a.ready = false;
    a.c.unacked = 0;
    queue_consumer_wake(&a.c);
    node_run_dispatch(n);
    T_EQ_INT(a.n, 3);
    for (size_t i = 1; i < a.n; i++)
        queue_ack(q, a.got[i]);
    queue_consumer_remove(q, &a.c);
    node_free(n);
}

/* Counts ready() calls: what dispatch costs per consumer looked at. */
static uint64_t ready_calls;

static bool
counting_ready(struct consumer *c)
{
    ready_calls++;
    return t_ready(c);
}

static const struct consumer_ops counting_ops = {counting_ready, t_deliver,
                                                 t_cancel};

/* 50,000 consumers whose windows are full cost nothing per message: each
 * is looked at once, then skipped until woken (issue 10). Priorities
 * still go first, round-robin among equals. */
T_CASE(full_consumers_are_not_rescanned)
{
    enum { N = 50000 };
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct tcons *cs = xcalloc(N, sizeof(*cs));

    for (int i = 0; i < N; i++) {
        tcons_init(&cs[i], "c", 1);
        cs[i].c.ops = &counting_ops;
        cs[i].c.priority = i % 3 == 0 ? 5 : 0;
        queue_consumer_add(q, &cs[i].c);
    }
    for (int i = 0; i < N; i++)
        push(q, "m");
    node_run_dispatch(n);
    /* priority 5 first: consumers 0, 3, 6, ... */
    T_ASSERT(cs[0].n == 1 && cs[3].n == 1 && cs[N - 1].n == 1);
    for (int i = 0; i < N; i++)
        T_EQ_INT(cs[i].n, 1);
    ready_calls = 0;
    for (int i = 0; i < 1000; i++)
        push(q, "m");
    node_run_dispatch(n);
    T_ASSERT(ready_calls <= N); /* each full consumer once, at most */
    ready_calls = 0;
    for (int i = 0; i < 1000; i++)
        push(q, "m");
    node_run_dispatch(n);
    T_EQ_INT(ready_calls, 0);
    /* an ack wakes one consumer, which gets the next message */
    cs[7].c.unacked--;
    queue_ack(q, cs[7].got[0]);
    cs[7].n = 0;
    queue_consumer_wake(&cs[7].c);
    node_run_dispatch(n);
    T_EQ_INT(cs[7].n, 1);
    T_ASSERT(ready_calls <= 2);
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < cs[i].n; k++)
            queue_ack(q, cs[i].got[k]);
        queue_consumer_remove(q, &cs[i].c);
    }
    free(cs);
    node_free(n);
}

T_CASE(requeue_goes_back_to_original_position)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct qentry e[5], g;
    const char *want[] = {"2", "4", "5"};

    push(q, "1");
    push(q, "2");
    push(q, "3");
    push(q, "4");
    push(q, "5");
    for (int i = 0; i < 4; i++)
        T_ASSERT(queue_get(q, true, &e[i]));
    T_EQ_INT(q->unacked, 4);
    queue_requeue(q, e[3]); /* "4" */
    queue_ack(q, e[0]);
    queue_requeue(q, e[1]); /* "2" */
    queue_ack(q, e[2]);
    T_EQ_INT(q->unacked, 0);
    for (int i = 0; i < 3; i++) {
        T_ASSERT(queue_get(q, false, &g));
        T_ASSERT(body_is(g, want[i]));
        T_EQ_INT((g.id & QE_REDELIVERED) != 0, i < 2);
        message_unref(g.msg);
    }
    T_ASSERT(!queue_get(q, false, &g));
    node_free(n);
}

T_CASE(requeue_order_survives_ring_wraparound)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct qentry taken[40], g;
    uint64_t last = 0;

    /* Move the ring's head around, then requeue in a scrambled order. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++)
            push(q, "x");
        for (int i = 0; i < 40; i++)
            T_ASSERT(queue_get(q, true, &taken[i]));
        for (int i = 0; i < 40; i += 2)
            queue_requeue(q, taken[(i * 7) % 40]);
        for (int i = 1; i < 40; i += 2)
            queue_requeue(q, taken[(i * 7) % 40]);
        last = 0;
        for (int i = 0; i < 40; i++) {
            T_ASSERT(queue_get(q, false, &g));
            T_ASSERT((g.id & QE_ID_MASK) > last);
            last = g.id & QE_ID_MASK;
            message_unref(g.msg);
        }
    }
    node_free(n);
}

T_CASE(delete_cancels_consumers_and_drops_bindings)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    struct tcons a;
    struct vherr err;
    struct publish_result res;
    struct message *m;

    tcons_init(&a, "a", 0);
    queue_consumer_add(q, &a.c);
    T_EQ_INT(vhost_bind(vh, BYTES_LIT("amq.fanout"), BYTES_LIT("q"), false,
                        BYTES_LIT(""), BYTES_NULL, NULL, &err),
             WR_OK);
    a.ready = false;
    push(q, "1");
    push(q, "2");
    T_EQ_INT(vhost_queue_delete(vh, q), 2);
    T_EQ_INT(a.cancelled, 1);
    T_ASSERT(vhost_queue_find(vh, BYTES_LIT("q")) == NULL);
    m = msg("after");
    vhost_publish(vh, vhost_exchange_find(vh, BYTES_LIT("amq.fanout")),
                  BYTES_LIT(""), BYTES_NULL, m, &res);
    T_EQ_INT(res.nqueues, 0);
    message_unref(m);
    node_run_dispatch(n);
    node_free(n);
}

T_CASE(exclusive_owner_release_and_locking)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct vh_owner o1 = {0}, o2 = {0};
    struct queue *q;
    struct vherr err;

    declare(vh, "ex", &o1, true, false);
    T_EQ_INT(vhost_queue_lookup(vh, BYTES_LIT("ex"), &o2, &q, &err), WR_ERR);
    T_EQ_INT(err.code, AMQP_RESOURCE_LOCKED);
    T_EQ_INT(vhost_queue_lookup(vh, BYTES_LIT("ex"), &o1, &q, &err), WR_OK);
    vhost_owner_release(vh, &o1);
    T_ASSERT(vhost_queue_find(vh, BYTES_LIT("ex")) == NULL);
    node_free(n);
}

T_CASE(auto_delete_after_last_consumer)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "ad", NULL, false, true);
    struct tcons a, b;

    tcons_init(&a, "a", 0);
    tcons_init(&b, "b", 0);
    queue_consumer_add(q, &a.c);
    queue_consumer_add(q, &b.c);
    queue_consumer_remove(q, &a.c);
    T_ASSERT(vhost_queue_find(vh, BYTES_LIT("ad")) != NULL);
    queue_consumer_remove(q, &b.c);
    T_ASSERT(vhost_queue_find(vh, BYTES_LIT("ad")) == NULL);
    node_run_dispatch(n);
    node_free(n);
}

T_CASE(declare_rules_and_texts)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct vherr err;
    struct queue *q;
    struct buf args;
    size_t mark;
    struct queue_decl d = {.name = BYTES_LIT("amq.x")};
    struct exchange_decl x = {.name = BYTES_LIT("e"),
                              .type = BYTES_LIT("direct")};

    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_ERR);
    T_EQ_INT(err.code, 403);
    T_EQ_STR(err.text, "queue name 'amq.x' contains reserved prefix 'amq.*'");
    buf_init(&args);
    mark = ftable_begin(&args);
    fenc_i32(&args, "x-message-ttl", 1000);
    ftable_end(&args, mark);
    d.name = BYTES_LIT("q");
    d.args = bytes_of(args.data + 4, args.len - 4);
    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_OK);
    d.args = BYTES_NULL;
    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_ERR);
    T_EQ_STR(err.text, "inequivalent arg 'x-message-ttl' for queue 'q' in "
                       "vhost '/': received none but current is the value "
                       "'1000' of type 'signedint'");
    d.durable = true;
    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_ERR);
    T_EQ_STR(err.text, "inequivalent arg 'durable' for queue 'q' in vhost "
                       "'/': received 'true' but current is 'false'");
    T_EQ_INT(vhost_exchange_declare(vh, &x, &err), WR_OK);
    x.type = BYTES_LIT("fanout");
    T_EQ_INT(vhost_exchange_declare(vh, &x, &err), WR_ERR);
    T_EQ_STR(err.text, "inequivalent arg 'type' for exchange 'e' in vhost "
                       "'/': received 'fanout' but current is 'direct'");
    x.type = BYTES_LIT("nope");
    T_EQ_INT(vhost_exchange_declare(vh, &x, &err), WR_ERR);
    T_EQ_INT(err.code, 503);
    T_EQ_INT(
        vhost_exchange_delete(vh, BYTES_LIT("amq.direct"), false, NULL, &err),
        WR_ERR);
    T_EQ_INT(err.code, 403);
    buf_fini(&args);
    node_free(n);
}

T_CASE(fanout_message_shared_not_copied)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q1 = declare(vh, "q1", NULL, false, false);
    struct queue *q2 = declare(vh, "q2", NULL, false, false);
    struct publish_result res;
    struct qentry e1, e2;
    struct vherr err;
    struct message *m;

    vhost_bind(vh, BYTES_LIT("amq.fanout"), BYTES_LIT("q1"), false, BYTES_NULL,
               BYTES_NULL, NULL, &err);
    vhost_bind(vh, BYTES_LIT("amq.fanout"), BYTES_LIT("q2"), false, BYTES_NULL,
               BYTES_NULL, NULL, &err);
    m = msg("shared");
    vhost_publish(vh, vhost_exchange_find(vh, BYTES_LIT("amq.fanout")),
                  BYTES_LIT("k"), BYTES_NULL, m, &res);
    T_EQ_INT(res.nqueues, 2);
    T_EQ_INT(m->refs, 3);
    message_unref(m);
    T_ASSERT(queue_get(q1, false, &e1) && queue_get(q2, false, &e2));
    T_ASSERT(e1.msg == e2.msg);
    message_unref(e1.msg);
    message_unref(e2.msg);
    node_free(n);
}

T_CASE(message_body_grows_with_data)
{
    struct message *m = message_new(BYTES_LIT("x"), BYTES_LIT("k"),
                                    BYTES_LIT("\x00\x00"), 10u << 20);
    uint8_t chunk[4096];

    T_ASSERT(m->body_cap < (1u << 20));
    memset(chunk, 7, sizeof(chunk));
    for (int i = 0; i < 2560; i++)
        m = message_append(m, bytes_of(chunk, sizeof(chunk)));
    T_EQ_INT(m->received, 10u << 20);
    T_EQ_INT(m->body[(10u << 20) - 1], 7);
    T_ASSERT(bytes_eq_str(message_exchange(m), "x"));
    message_unref(m);
}

/* A body frame read straight into the message (server/bodyrx.c): room
 * is made ahead, the bytes written in place are counted, and what the
 * memory alarm sees follows the room. */
T_CASE(message_body_filled_in_place)
{
    uint64_t before = message_memory();
    struct message *m = message_new(BYTES_LIT("x"), BYTES_LIT("k"),
                                    BYTES_LIT("\x00\x00"), 1u << 20);
    uint64_t first = message_memory() - before;

    m = message_append(m, BYTES_LIT("ab"));
    m = message_reserve(m, 512u << 10); /* beyond the first allocation */
    T_ASSERT(m->body_cap >= 2 + (512u << 10));
    T_ASSERT(message_memory() - before > first);
    memset(m->body + m->received, 9, 512u << 10);
    message_advance(m, 512u << 10);
    T_EQ_INT(m->received, 2 + (512u << 10));
    T_ASSERT(memcmp(m->body, "ab", 2) == 0 && m->body[m->received - 1] == 9);
    m = message_reserve(m, (1u << 20) - m->received); /* up to body_size */
    T_ASSERT(m->body_cap >= 1u << 20);
    T_ASSERT(bytes_eq_str(message_rk(m), "k"));
    message_unref(m);
    T_EQ_INT(message_memory(), before);
}

/* Bodies that came whole in a read buffer stay there (message_adopt):
 * the block lives while any of its messages does, and counts as message
 * memory until then. */
T_CASE(message_adopts_a_body_in_a_block)
{
    uint64_t before = message_memory();
    struct msgblock *b = msgblock_new(256u << 10);
    struct message *m1, *m2, *small;

    for (size_t i = 0; i < b->size; i++)
        b->data[i] = (uint8_t)(i * 7);
    m1 = message_new(BYTES_LIT("x"), BYTES_LIT("k"), BYTES_LIT("\x00\x00"),
                     65536);
    m2 = message_new(BYTES_LIT("x"), BYTES_LIT("k"), BYTES_LIT("\x00\x00"),
                     40000);
    small =
        message_new(BYTES_LIT("x"), BYTES_LIT("k"), BYTES_LIT("\x00\x00"), 16);
    /* Big bodies get no room until their bytes come; small ones do. */
    T_EQ_INT(m1->body_cap, 0);
    T_ASSERT(small->body_cap >= 16);
    message_adopt(m1, b, b->data + 100);
    message_adopt(m2, b, b->data + 100 + 65536);
    T_EQ_INT(b->refs, 3);
    T_EQ_INT(m1->received, 65536);
    T_ASSERT(message_body(m1).ptr == b->data + 100);
    msgblock_unref(b); /* the reader takes another buffer */
    message_unref(m1);
    T_EQ_INT(b->refs, 1);
    T_EQ_INT(message_body(m2).ptr[0], (uint8_t)((100 + 65536) * 7));
    T_ASSERT(message_memory() - before > 256u << 10);
    message_unref(m2);
    message_unref(small);
    T_EQ_INT(message_memory(), before);
}

/* A freed big message is the next one of its size, most recent first:
 * its memory is still in the caches. */
T_CASE(message_big_allocations_are_reused_most_recent_first)
{
    struct message *a = message_new(BYTES_LIT("x"), BYTES_LIT("k"),
                                    BYTES_LIT("\x00\x00"), 20000);
    struct message *b = message_new(BYTES_LIT("x"), BYTES_LIT("k"),
                                    BYTES_LIT("\x00\x00"), 20000);
    struct message *c;
    void *pa = a;

    message_unref(b);
    message_unref(a);
    /* The same size for another name: allocations are in whole pages. */
    c = message_new(BYTES_LIT("xy"), BYTES_LIT("k"), BYTES_LIT("\x00\x00"),
                    20000);
    c = message_reserve(c, 20000);
    T_ASSERT((void *)c == pa);
    message_unref(c);
}

/* A 64 KiB message published to q through the default exchange: the
 * queue it says the publisher must wait for, or NULL. */
static struct queue *
publish_64k(struct vhost *vh, const char *q)
{
    static uint8_t body[64 << 10];
    struct message *m = message_new(BYTES_LIT(""), bytes_str(q),
                                    BYTES_LIT("\x00\x00"), sizeof(body));
    struct publish_result res;

    m = message_append(m, bytes_of(body, sizeof(body)));
    vhost_publish(vh, NULL, bytes_str(q), BYTES_NULL, m, &res);
    T_EQ_INT(res.nqueues, 1);
    message_unref(m);
    return res.flow_q;
}

/* Takes n messages with basic.get (no ack). */
static void
get_n(struct queue *q, int n)
{
    struct qentry e;

    for (int i = 0; i < n; i++) {
        T_ASSERT(queue_get(q, false, &e));
        message_unref(e.msg);
    }
}

/* Credit flow (queue.h): a publisher waits only for a queue whose
 * consumers drain it, from the high mark down to the low one. */
T_CASE(credit_holds_publishers_only_while_consumers_drain)
{
    struct node *n = node_new(NULL);
    struct vhost *vh = node_vhost_add(n, "/");
    struct queue *q = declare(vh, "q", NULL, false, false);
    uint64_t t0 = UINT64_C(10000000), each = (64 << 10) + QUEUE_ENTRY_OVERHEAD;
    int high = (int)(QUEUE_CREDIT_HIGH / each) + 1;
    struct tcons a;

    node_set_now(n, t0);
    /* no consumer: the backlog builds up, nobody waits */
    for (int i = 0; i < high + 10; i++)
        T_ASSERT(publish_64k(vh, "q") == NULL);
    T_ASSERT(queue_backlog_memory(q) >= QUEUE_CREDIT_HIGH);
    T_ASSERT(!queue_credit_exhausted(q) && queue_credit_restored(q));
    /* a consumer that has taken nothing yet does not drain it */
    tcons_init(&a, "a", 0);
    a.ready = false;
    queue_consumer_add(q, &a.c);
    T_ASSERT(publish_64k(vh, "q") == NULL);
    /* one taken: it drains, publishers over the high mark wait */
    get_n(q, 1);
    T_ASSERT(publish_64k(vh, "q") == q);
    T_ASSERT(queue_credit_exhausted(q) && !queue_credit_restored(q));
    /* nothing taken for QUEUE_STALL_US: stalled, nobody waits */
    node_set_now(n, t0 + QUEUE_STALL_US);
    T_ASSERT(queue_credit_restored(q));
    T_ASSERT(publish_64k(vh, "q") == NULL);
    /* draining again, down to the low mark: waiters go on */
    get_n(q, 1);
    T_ASSERT(!queue_credit_restored(q));
    while (queue_backlog_memory(q) >= QUEUE_CREDIT_LOW) {
        T_ASSERT(!queue_credit_restored(q));
        get_n(q, 1);
    }
    T_ASSERT(queue_credit_restored(q) && !queue_credit_exhausted(q));
    /* filled again: the publish that crosses the high mark waits */
    for (int k = 0; publish_64k(vh, "q") == NULL; k++)
        T_ASSERT(k < high);
    T_ASSERT(queue_backlog_memory(q) >= QUEUE_CREDIT_HIGH);
    /* the consumer gone: nothing drains it, waiters go on */
    queue_consumer_remove(q, &a.c);
    T_ASSERT(queue_credit_restored(q) && !queue_credit_exhausted(q));
    node_free(n);
}

static bool
exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void
touch(const char *dir, const char *name)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    T_ASSERT(f != NULL);
    fclose(f);
}

/* Regression (issue 10, item 1): "." and ".." were directory names. */
T_CASE(vhost_directories_are_hashed_and_removal_stays_inside)
{
    struct node_opts o = {.data_dir = t_tmpdir()};
    struct node *n = node_new(&o);
    const char *names[] = {".", "..", "/", "a/b", ""};
    const char *why;
    char err[1024], *dir;

    T_EQ_INT(node_boot(n, "/", err, sizeof(err)), WR_OK);
    touch(t_tmpdir(), "sentinel");
    touch(o.data_dir, "vhosts/sentinel");
    for (size_t i = 0; i + 1 < WR_ARRAY_LEN(names); i++) {
        struct vhost *vh = names[i][0] == '/' ? node_vhost_find(n, "/")
                                              : node_vhost_add(n, names[i]);

        T_ASSERT(vh != NULL && vh->store_dir != NULL);
        dir = vhostdir__path(o.data_dir, names[i]);
        T_EQ_STR(vh->store_dir, dir);
        /* <data_dir>/vhosts/ + 64 hex digits */
        T_EQ_INT(strlen(dir), strlen(o.data_dir) + 8 + 64);
        T_ASSERT(exists(dir, "vhost-name"));
        free(dir);
    }
    node_vhost_remove(n, node_vhost_find(n, "."));
    node_vhost_remove(n, node_vhost_find(n, ".."));
    T_ASSERT(exists(t_tmpdir(), "sentinel"));
    T_ASSERT(exists(o.data_dir, "vhosts/sentinel"));
    T_ASSERT(node_vhost_find(n, "a/b")->store != NULL);
    /* a directory that is not the vhost's own is never removed */
    vhostdir__remove(o.data_dir, "a/b", o.data_dir);
    T_ASSERT(exists(t_tmpdir(), "sentinel"));
    T_ASSERT(!node_vhost_name_check("", &why));
    T_ASSERT(!node_vhost_name_check("\xff", &why));
    T_ASSERT(node_vhost_add(n, "\xc3") == NULL);
    node_free(n);
}

/* A copy's log in <tmp>/<name>/log as a mirror keeps it (hot index):
 * n persistent messages of queue "q", the first `acked` acked. */
static struct store *
copy_log(const char *name, char *from, size_t fromlen, int n, int acked)
{
    struct store_config cfg = {0};
    struct store_msg_in in = {0};
    uint64_t qid = store_qid(BYTES_LIT("q")), id, pos, first = 0, lsn = 0;
    struct store *s;
    char err[512];

    snprintf(from, fromlen, "%s/%s/log", t_tmpdir(), name);
    cfg.dir = from;
    cfg.fsync = STORE_FSYNC_NEVER;
    cfg.hot_index = true;
    T_EQ_INT(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)), WR_OK);
    in.qids = &qid;
    in.nqids = 1;
    in.meta = BYTES_LIT("meta");
    in.body = BYTES_LIT("body");
    for (int i = 0; i < n; i++) {
        lsn = store_append_msg(s, &in, &id, &pos);
        first = first ? first : id;
    }
    for (int i = 0; i < acked; i++)
        lsn = store_append_ack(s, qid, first + (uint64_t)i);
    T_ASSERT(lsn > 0);
    return s;
}

static struct queue *
declare_durable(struct vhost *vh, const char *name)
{
    struct queue_decl d = {.name = bytes_str(name), .durable = true};
    struct queue *q = NULL;
    struct vherr err;

    T_EQ_INT(vhost_queue_declare(vh, &d, &q, &err), WR_OK);
    return q;
}

/* Issue 12, the hot index: a mirror's open copy becomes the vhost's log
 * in one rename and its queues come from the index; a take-over cut
 * short after the rename keeps the vhost's directory. */
T_CASE(adopted_copy_is_served_from_its_hot_index)
{
    struct node_opts o = {.data_dir = t_tmpdir(), .clustered = true};
    struct node *n = node_new(&o);
    struct vhost *vh, *vw;
    struct store *s;
    struct queue *q;
    char err[1024], from[1024], *dir;
    struct stat st;

    T_EQ_INT(node_boot(n, "/", err, sizeof(err)), WR_OK);
    vh = node_vhost_add(n, "v");
    T_ASSERT(vh != NULL && !vhost_is_serving(vh));
    s = copy_log("copy-v", from, sizeof(from), 100, 30);
    T_ASSERT(store_suspend(s));
    T_EQ_INT(node_vhost_adopt_log(n, vh, from, s, err, sizeof(err)), WR_OK);
    T_ASSERT(stat(from, &st) != 0); /* renamed, not copied */
    dir = vhostdir__path(o.data_dir, "v");
    T_ASSERT(exists(dir, "vhost-name"));
    q = declare_durable(vh, "q"); /* the copy's definitions */
    T_EQ_INT(node_vhost_serve(n, vh, err, sizeof(err)), WR_OK);
    T_ASSERT(vh->store == s); /* the copy's log goes on, not recovered */
    T_EQ_INT(q->ready.n, 70);
    for (size_t i = 0; i < q->ready.n; i++) {
        const struct qentry *e = qd_at(&q->ready, i);

        T_ASSERT(e->id & QE_REDELIVERED);
        T_ASSERT(i == 0 || (e->id & QE_ID_MASK) >
                               (qd_at(&q->ready, i - 1)->id & QE_ID_MASK));
    }
    free(dir);

    /* cut short: the copy's log was renamed into the vhost's place, then
       the node died before serving; the next take-over keeps it */
    vw = node_vhost_add(n, "w");
    s = copy_log("copy-w", from, sizeof(from), 10, 0);
    store_close(s);
    dir = vhostdir__path(o.data_dir, "w");
    T_EQ_INT(vhostdir__adopt(o.data_dir, "w", from, err, sizeof(err)), WR_OK);
    T_EQ_INT(node_vhost_adopt_log(n, vw, from, NULL, err, sizeof(err)), WR_OK);
    T_ASSERT(exists(dir, "vhost-name"));
    q = declare_durable(vw, "q");
    T_EQ_INT(node_vhost_serve(n, vw, err, sizeof(err)), WR_OK);
    T_EQ_INT(q->ready.n, 10);
    free(dir);
    node_free(n);
}

static const struct t_case cases[] = {
    T_REG(round_robin_across_consumers),
    T_REG(prefetch_limits_and_credit_resumes),
    T_REG(full_consumers_are_not_rescanned),
    T_REG(requeue_goes_back_to_original_position),
    T_REG(requeue_order_survives_ring_wraparound),
    T_REG(delete_cancels_consumers_and_drops_bindings),
    T_REG(exclusive_owner_release_and_locking),
    T_REG(auto_delete_after_last_consumer),
    T_REG(declare_rules_and_texts),
    T_REG(fanout_message_shared_not_copied),
    T_REG(message_body_grows_with_data),
    T_REG(message_body_filled_in_place),
    T_REG(message_adopts_a_body_in_a_block),
    T_REG(message_big_allocations_are_reused_most_recent_first),
    T_REG(credit_holds_publishers_only_while_consumers_drain),
    T_REG(vhost_directories_are_hashed_and_removal_stays_inside),
    T_REG(adopted_copy_is_served_from_its_hot_index),
};
T_MAIN(cases)
