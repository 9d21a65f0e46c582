/*
 * Crash test of store/ at the module level. A child process opens the
 * store (fsync=always, small segments so that rollover, deletion and
 * compaction all happen), then appends and acks in a loop; after each
 * batch became durable it reports the batch's message ids and acks to
 * the parent through a pipe. The parent SIGKILLs it at a random moment,
 * reopens the store and checks:
 *   - every message reported durable and not acked is recovered, byte
 *     exact, in increasing id order per queue;
 *   - no ack reported durable is undone;
 *   - anything else recovered was really appended (its bytes match);
 *   - the manifest the kill left lists every segment holding a message
 *     reported durable (and, or the reopen fails, no missing one).
 * Then it starts a new child on the recovered store: 20 rounds.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NQ     3
#define MAXID  200000
#define ROUNDS 20

static const uint64_t queues[NQ] = {0xc1, 0xc2, 0xc3};

/* One report: 'M' (qid, id) appended durable, 'P' (qid, id) about to be
   acked (sent before the ack can reach the disk), 'A' ack durable. */
struct rep {
    uint64_t type;
    uint64_t qid;
    uint64_t id;
};

static uint64_t
xr(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

struct pairs {
    uint64_t (*v)[2];
    size_t n, cap;
};

static void
pairs_push(struct pairs *p, uint64_t qid, uint64_t id)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->v = realloc(p->v, p->cap * sizeof(*p->v));
    }
    p->v[p->n][0] = qid;
    p->v[p->n][1] = id;
    p->n++;
}

static void
child_rec(void *ctx, const struct store_recovered *m)
{
    pairs_push(ctx, m->qid, m->id);
}

static void
send_reps(int fd, const struct rep *r, size_t n)
{
    /* writes of at most PIPE_BUF bytes are atomic: no torn report */
    const size_t per = 4096 / sizeof(*r);

    for (size_t i = 0; i < n; i += per) {
        size_t k = WR_MIN(per, n - i) * sizeof(*r);

        if (write(fd, r + i, k) != (ssize_t)k)
            _exit(9);
    }
}

static void
child(const char *dir, int fd, uint64_t seed)
{
    struct store_recover_cb cb = {child_rec};
    struct pairs live = {0};
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rep reps[256];
    uint8_t body[3000];
    char err[1024], meta[32];

    tloop_init(&l);
    cfg = tcfg(dir, NULL, &l);
    cfg.segment_size = 64 << 10;
    if (store_open(&cfg, &cb, &live, &s, err, sizeof(err)) != WR_OK) {
        fprintf(stderr, "child: %s\n", err);
        _exit(8);
    }
    for (;;) {
        size_t nrep = 0;
        int nmsg = 1 + (int)(xr(&seed) % 40);
        int nack = (int)(xr(&seed) % 45);

        for (int i = 0; i < nmsg; i++) {
            uint64_t q[2], id, pos;
            int nq = 1 + (xr(&seed) % 4 == 0);
            size_t blen = xr(&seed) % 4 == 0 ? xr(&seed) % 3000 : 200;

            q[0] = queues[xr(&seed) % NQ];
            q[1] = q[0] == queues[0] ? queues[1] : queues[0];
            snprintf(meta, sizeof(meta), "m%llu",
                     (unsigned long long)s->next_id);
            tbody(body, blen, s->next_id);
            if (!tappend(s, q, (size_t)nq, meta, body, blen, &id, &pos))
                _exit(7);
            for (int j = 0; j < nq; j++) {
                reps[nrep++] = (struct rep){'M', q[j], id};
                pairs_push(&live, q[j], id);
            }
        }
        for (int i = 0; i < nack && live.n > 0; i++) {
            size_t k = xr(&seed) % live.n;
            struct rep p = {'P', live.v[k][0], live.v[k][1]};

            /* before the ack can be flushed: the parent knows it may
               be gone */
            send_reps(fd, &p, 1);
            if (!store_append_ack(s, live.v[k][0], live.v[k][1]))
                _exit(6);
            reps[nrep++] = (struct rep){'A', live.v[k][0], live.v[k][1]};
            live.v[k][0] = live.v[live.n - 1][0];
            live.v[k][1] = live.v[live.n - 1][1];
            live.n--;
        }
        if (!tloop_wait_durable(&l, s, s->lsn))
            _exit(5);
        send_reps(fd, reps, nrep);
    }
}

/* Parent's knowledge per (queue, id): bit q of live/acked. */
struct pmodel {
    uint8_t live[MAXID];  /* reported durable (or recovered) and not acked */
    uint8_t pend[MAXID];  /* ack announced, maybe durable */
    uint8_t acked[MAXID]; /* ack reported durable */
};

static int
qbit(uint64_t qid)
{
    for (int i = 0; i < NQ; i++) {
        if (queues[i] == qid)
            return 1 << i;
    }
    T_ASSERT(!"unknown queue");
    return 0;
}

static void
read_reports(int fd, struct pmodel *m, uint64_t *nmsg, uint64_t *nack)
{
    struct rep r;
    ssize_t k;

    while ((k = read(fd, &r, sizeof(r))) == (ssize_t)sizeof(r)) {
        T_ASSERT(r.id < MAXID);
        if (r.type == 'M') {
            m->live[r.id] |= (uint8_t)qbit(r.qid);
            (*nmsg)++;
        } else if (r.type == 'P') {
            m->pend[r.id] |= (uint8_t)qbit(r.qid);
        } else {
            T_EQ_INT(r.type, 'A');
            m->live[r.id] &= (uint8_t)~qbit(r.qid);
            m->acked[r.id] |= (uint8_t)qbit(r.qid);
            (*nack)++;
        }
    }
    T_EQ_INT(k, 0);
}

static void
verify(const char *dir, struct pmodel *m, uint64_t *dups, uint64_t *checked,
       uint64_t *inflight)
{
    struct store_config cfg = tcfg(dir, NULL, NULL);
    static uint8_t got[MAXID];
    uint64_t last[NQ] = {0};
    struct rset r = {0};
    struct store *s;
    uint8_t body[3000];
    char err[1024], meta[32];
    static uint32_t listed[100000];
    long nlisted = tmanifest(dir, listed, WR_ARRAY_LEN(listed), NULL);

    /* the manifest the kill left names only segments that exist (or the
       open below refuses) and every one holding a durable message */
    if (store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "reopen after kill: %s", err);
    for (size_t i = 0; nlisted >= 0 && i < r.n; i++) {
        bool in = false;

        if (!(m->live[r.v[i].id] & qbit(r.v[i].qid)))
            continue;
        for (long k = 0; k < nlisted && !in; k++)
            in = listed[k] == POS_SEG(r.v[i].pos);
        if (!in)
            t_fail(__FILE__, __LINE__,
                   "durable message %llu is in segment %u, which the "
                   "manifest does not list",
                   (unsigned long long)r.v[i].id, POS_SEG(r.v[i].pos));
    }
    memset(got, 0, sizeof(got));
    for (size_t i = 0; i < r.n; i++) {
        int b = qbit(r.v[i].qid), qi = __builtin_ctz((unsigned)b);

        T_ASSERT(r.v[i].id < MAXID);
        T_ASSERT(r.v[i].id > last[qi]); /* order within a queue */
        last[qi] = r.v[i].id;
        got[r.v[i].id] |= (uint8_t)b;
        if (m->acked[r.v[i].id] & b)
            t_fail(__FILE__, __LINE__, "acked message %llu came back",
                   (unsigned long long)r.v[i].id);
        snprintf(meta, sizeof(meta), "m%llu", (unsigned long long)r.v[i].id);
        tbody(body, r.v[i].body_len, r.v[i].id);
        T_ASSERT(r.v[i].body_len <= sizeof(body));
        T_ASSERT(tcheck_msg(s, r.v[i].pos, meta, body, r.v[i].body_len));
    }
    for (uint64_t id = 1; id < MAXID; id++) {
        uint8_t missing = m->live[id] & ~got[id];

        /* gone without a durable ack: only if an ack was announced */
        if (missing & ~m->pend[id])
            t_fail(__FILE__, __LINE__, "durable message %llu lost",
                   (unsigned long long)id);
        *inflight += (uint64_t)__builtin_popcount(missing);
        m->pend[id] = 0;
        /* recovered but not known live: its ack was not durable yet, or
           its append was durable but not reported yet */
        *dups += (uint64_t)__builtin_popcount(got[id] & ~m->live[id]);
        *checked += (uint64_t)__builtin_popcount(m->live[id]);
        m->live[id] = got[id];
    }
    store_close(s);
    rset_free(&r);
}

T_CASE(sigkill_at_random_moments_loses_nothing_durable)
{
    char dir[512];
    struct pmodel *m = calloc(1, sizeof(*m));
    uint64_t seed = (uint64_t)time(NULL) | 1, nmsg = 0, nack = 0, dups = 0;
    uint64_t checked = 0, inflight = 0;

    if (getenv("STORE_TEST_SEED"))
        seed = strtoull(getenv("STORE_TEST_SEED"), NULL, 0);
    fprintf(stderr, "seed %llu\n", (unsigned long long)seed);
    tpath(dir, sizeof(dir), "s");
    for (int round = 0; round < ROUNDS; round++) {
        int fds[2], status;
        pid_t pid;
        useconds_t delay = (useconds_t)(20000 + xr(&seed) % 150000);

        T_ASSERT(pipe(fds) == 0);
        fflush(NULL);
        pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(dir, fds[1], xr(&seed));
        }
        close(fds[1]);
        usleep(delay);
        T_ASSERT(kill(pid, SIGKILL) == 0);
        T_ASSERT(waitpid(pid, &status, 0) == pid);
        if (!WIFSIGNALED(status))
            t_fail(__FILE__, __LINE__, "child exited early: status %d",
                   WEXITSTATUS(status));
        read_reports(fds[0], m, &nmsg, &nack);
        close(fds[0]);
        verify(dir, m, &dups, &checked, &inflight);
    }
    fprintf(stderr,
            "crash test: %d kills, %llu durable appends and %llu durable "
            "acks reported, %llu live pairs checked after kills, %llu "
            "unreported pairs recovered (ack not durable or append not "
            "reported yet), %llu announced acks found durable\n",
            ROUNDS, (unsigned long long)nmsg, (unsigned long long)nack,
            (unsigned long long)checked, (unsigned long long)dups,
            (unsigned long long)inflight);
    T_ASSERT(nmsg > 0 && nack > 0);
    free(m);
}

static const struct t_case cases[] = {
    T_REG(sigkill_at_random_moments_loses_nothing_durable),
};

T_MAIN(cases)
