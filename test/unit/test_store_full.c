/*
 * Unit tests for store/ on a full disk (issue 10, item 4), through the
 * I/O seam's simulated disk (struct tio, space): a write that does not
 * fit waits and is retried instead of failing the store; appends of
 * messages are refused meanwhile (nothing half-accepted), acks are not;
 * deletions give space back without waiting; closing gives the unwritten
 * records up; opening on a full disk goes on in the newest segment. A
 * failed fsync stays fatal (test_store_io.c).
 *
 * Deadlines are generous (a minute): the store retries every second, and
 * the tests wait for what they expect, never for a time.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define QA       0xa1ULL
#define DEADLINE 3000 /* x 20 ms */

static struct store *
topen(struct store_config *cfg)
{
    struct store *s;
    char err[1024];

    if (store_open(cfg, NULL, NULL, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    return s;
}

static uint64_t
wakes(struct tloop *l)
{
    uint64_t w;

    pthread_mutex_lock(&l->mu);
    w = l->wakes;
    pthread_mutex_unlock(&l->mu);
    return w;
}

/* Runs the loop's side (flush, poll) until store_no_space(s) == want. */
static bool
wait_space(struct tloop *l, struct store *s, bool want)
{
    for (int i = 0; i < DEADLINE; i++) {
        uint64_t w = wakes(l);

        store_flush(s);
        store_poll(s, &tloop_events, l);
        if (store_no_space(s) == want)
            return true;
        tloop_wait(l, w, 20);
    }
    return false;
}

/* CPU time (user + system) the process used while sleeping ms: a bound,
   whatever the machine's speed, on a thread that should be waiting. */
static double
cpu_seconds_over(int ms)
{
    struct rusage a, b;

    getrusage(RUSAGE_SELF, &a);
    usleep((useconds_t)ms * 1000);
    getrusage(RUSAGE_SELF, &b);
    return (double)(b.ru_utime.tv_sec - a.ru_utime.tv_sec) +
           (double)(b.ru_utime.tv_usec - a.ru_utime.tv_usec) / 1e6 +
           (double)(b.ru_stime.tv_sec - a.ru_stime.tv_sec) +
           (double)(b.ru_stime.tv_usec - a.ru_stime.tv_usec) / 1e6;
}

/* Appends message k of n (meta "m<k>", body tbody(k, 600 B)). */
static uint64_t
put(struct store *s, uint64_t k, uint64_t *id)
{
    uint64_t q[1] = {QA}, pos;
    uint8_t body[600];
    char meta[32];

    snprintf(meta, sizeof(meta), "m%llu", (unsigned long long)k);
    tbody(body, sizeof(body), k);
    return tappend(s, q, 1, meta, body, sizeof(body), id, &pos);
}

/* Opens dir and checks that exactly the messages k with want[k] came
   back, intact. */
static void
check(const char *dir, const bool *want, size_t n, const uint64_t *ids)
{
    struct store_config cfg = tcfg(dir, NULL, NULL);
    struct rset r = {0};
    struct store *s;
    uint8_t body[600];
    char err[1024], meta[32];
    size_t count = 0;

    if (store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    for (size_t k = 0; k < n; k++) {
        const struct rmsg *m = rset_find(&r, QA, ids[k]);

        if (!want[k]) {
            T_ASSERT(m == NULL);
            continue;
        }
        T_ASSERT(m != NULL);
        snprintf(meta, sizeof(meta), "m%zu", k);
        tbody(body, sizeof(body), k);
        T_ASSERT(tcheck_msg(s, m->pos, meta, body, sizeof(body)));
        count++;
    }
    T_EQ_INT(r.n, count);
    store_close(s);
    rset_free(&r);
}

T_CASE(a_full_disk_delays_records_refuses_messages_then_resumes)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t ids[102], good, lsn = 0;
    bool want[102];

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    s = topen(&cfg);
    good = put(s, 0, &ids[0]);
    T_ASSERT(tloop_wait_durable(&l, s, good));
    atomic_store(&t.space, 1000); /* a part of the next batch fits */
    for (uint64_t k = 1; k <= 100; k++)
        lsn = put(s, k, &ids[k]);
    T_ASSERT(wait_space(&l, s, true));
    /* not a failure: nothing lost, nothing durable, no event */
    T_ASSERT(store_error(s) == NULL);
    T_EQ_INT(store_durable_lsn(s), good);
    T_EQ_INT(l.failed, 0);
    /* the store thread waits for its next try; it does not spin */
    T_ASSERT(cpu_seconds_over(2500) < 0.5);
    /* new messages are refused; acks are taken */
    T_EQ_INT(put(s, 999, NULL), 0);
    T_ASSERT(store_append_ack(s, QA, ids[0]) > 0);
    /* space is back: the same records are written */
    atomic_store(&t.space, -1);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(wait_space(&l, s, false));
    T_ASSERT(put(s, 101, &ids[101]) > 0);
    store_close(s);
    for (int k = 0; k <= 101; k++)
        want[k] = k > 0;
    check(dir, want, 102, ids);
    tloop_fini(&l);
}

T_CASE(segment_creation_on_a_full_disk_waits_then_resumes)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t ids[12], lsn = 0;
    bool want[12];
    uint32_t nos[64];
    long n;

    for (int pass = 0; pass < 2; pass++) {
        tio_init(&t);
        tloop_init(&l);
        cfg = tcfg(tpath(dir, sizeof(dir), pass ? "b" : "a"), &t, &l);
        cfg.segment_size = 4096;
        s = topen(&cfg);
        lsn = put(s, 0, &ids[0]);
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
        if (pass == 0) {
            /* the next segment cannot be created */
            atomic_store(&t.open_errno, ENOSPC);
            atomic_store(&t.fail_open_at, 1);
        } else {
            /* it is created, but its first write fails: the retry must
               not create it again */
            atomic_store(&t.pwrite_errno, ENOSPC);
            atomic_store(&t.fail_pwrite_at, 2);
        }
        for (uint64_t k = 1; k < 12; k++) /* several segments */
            lsn = put(s, k, &ids[k]);
        T_ASSERT(wait_space(&l, s, true));
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
        T_ASSERT(wait_space(&l, s, false));
        T_ASSERT(store_error(s) == NULL);
        /* the manifest lists every segment (record.c) */
        n = tmanifest(dir, nos, 64, NULL);
        T_EQ_INT(n, (long)tcount_segments(dir, NULL));
        store_close(s);
        for (int k = 0; k < 12; k++)
            want[k] = true;
        check(dir, want, 12, ids);
        tloop_fini(&l);
    }
}

T_CASE(closing_on_a_full_disk_gives_the_unwritten_records_up)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t ids[11], good;
    bool want[11] = {true};

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    s = topen(&cfg);
    good = put(s, 0, &ids[0]);
    T_ASSERT(tloop_wait_durable(&l, s, good));
    atomic_store(&t.space, 300); /* part of a record: a torn tail */
    for (uint64_t k = 1; k <= 10; k++)
        put(s, k, &ids[k]);
    T_ASSERT(wait_space(&l, s, true));
    store_close(s); /* returns: one more try, then gives up */
    check(dir, want, 11, ids);
    tloop_fini(&l);
}

/* Opens dir on a disk with no free byte: it must open, go on in the
   newest segment (no new file), and write there once space is back. */
static void
open_full_then_write(const char *dir, uint64_t *ids, size_t n)
{
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    size_t before = tcount_segments(dir, NULL);
    uint64_t lsn;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(dir, &t, &l);
    atomic_store(&t.space, 0);
    s = topen(&cfg);
    T_EQ_INT(tcount_segments(dir, NULL), before);
    T_ASSERT(store_error(s) == NULL);
    lsn = put(s, n, &ids[n]);
    T_ASSERT(lsn > 0);
    T_ASSERT(wait_space(&l, s, true)); /* that batch does not fit */
    atomic_store(&t.space, -1);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_close(s);
    tloop_fini(&l);
}

T_CASE(opening_on_a_full_disk_goes_on_in_the_newest_segment)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t ids[8], lsn = 0;
    bool want[8];

    /* a head left unsealed (closed while the disk was full) */
    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    s = topen(&cfg);
    for (uint64_t k = 0; k < 5; k++)
        lsn = put(s, k, &ids[k]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    atomic_store(&t.space, 0);
    put(s, 100, NULL);
    T_ASSERT(wait_space(&l, s, true));
    store_close(s);
    tloop_fini(&l);
    open_full_then_write(dir, ids, 5); /* sealing it finds no space */
    /* sealed at a clean close: creating the next segment finds none */
    open_full_then_write(dir, ids, 6);
    open_full_then_write(dir, ids, 7);
    for (int k = 0; k < 8; k++)
        want[k] = true;
    check(dir, want, 8, ids);
}

T_CASE(deletions_give_space_back_while_the_disk_is_full)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t ids[60], lsn = 0;
    bool want[60];
    size_t before;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 4096;
    s = topen(&cfg);
    for (uint64_t k = 0; k < 60; k++)
        lsn = put(s, k, &ids[k]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    before = tcount_segments(dir, NULL);
    T_ASSERT(before > 5);
    /* nothing fits any more; consumers ack all but the last 5 */
    atomic_store(&t.space, 0);
    for (int k = 0; k < 55; k++)
        lsn = store_append_ack(s, QA, ids[k]);
    T_ASSERT(wait_space(&l, s, true));
    /* the acked segments go although the acks wait for space; the space
       they give back lets the acks be written */
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(wait_space(&l, s, false));
    T_ASSERT(tcount_segments(dir, NULL) < before - 3);
    T_ASSERT(atomic_load(&t.space) >= 0); /* still a limited disk */
    store_close(s);
    for (int k = 0; k < 60; k++)
        want[k] = k >= 55;
    check(dir, want, 60, ids);
    tloop_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(a_full_disk_delays_records_refuses_messages_then_resumes),
    T_REG(segment_creation_on_a_full_disk_waits_then_resumes),
    T_REG(closing_on_a_full_disk_gives_the_unwritten_records_up),
    T_REG(opening_on_a_full_disk_goes_on_in_the_newest_segment),
    T_REG(deletions_give_space_back_while_the_disk_is_full),
};

T_MAIN(cases)
