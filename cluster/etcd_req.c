/*
 * etcd_req.c: unary requests to etcd: connection pools, failover,
 * retries, deadlines and the unknown-outcome rule.
 *
 * A request is a POST body for one path, a deadline and a callback. Its
 * states:
 *
 *   TIMER ──retry timer──> attempt ──idle conn / new conn──> ACTIVE
 *     ^                       │ pool full                      │
 *     │                       v                                │ answer
 *     │                    QUEUED ──conn freed (kick)──> TIMER │
 *     └── failed attempt (retry allowed) <─────────────────────┤
 *                                                              v
 *                                 DONE: callback, then freed
 *
 * The first attempt also starts from the retry timer (0 s), so that no
 * callback ever runs inside the call that made the request.
 *
 * Attempts go to e->cur_ep. A failure on an endpoint moves cur_ep to the
 * next one (for every request, not just this one); after a failure on
 * each endpoint in turn the request waits etcd__backoff_ms() before the
 * next round. The deadline timer bounds the whole thing; while ACTIVE,
 * the retry timer bounds one attempt to a third of it (an endpoint that
 * accepts but does not answer), unless the attempt is a sent write,
 * which only the deadline may end.
 *
 * The retry rule (etcd.h): a request is "sent" once an attempt wrote it
 * in full. From then on a request that is not retry_safe is never tried
 * again; whatever goes wrong before a clean answer (connection lost,
 * deadline, etcd's UNAVAILABLE/DEADLINE_EXCEEDED "request timed out",
 * an answer we cannot read) ends it with ETCD_E_UNKNOWN.
 *
 * A pool holds up to max_conns connections, idle ones in `idle` (always
 * to some endpoint; one to an endpoint other than cur_ep is closed when
 * met). A request that finds none idle and the pool full waits in
 * `waiting`; a completed request hands its connection straight to the
 * first waiter, and a closed connection lets the first waiter open one.
 *
 * Invariants: r->h is set exactly in ACTIVE; a QUEUED request is on its
 * pool's waiting list and nowhere else a pool knows of; a DONE request
 * is on no list (so freeing the client inside its callback cannot touch
 * it) and is freed right after its callback returns.
 */
#include "cluster/etcd_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

#define ATTEMPT_MIN_MS 100

enum rq_state {
    RQ_TIMER,  /* waiting for the retry timer (first attempt, backoff) */
    RQ_QUEUED, /* waiting for a pool connection */
    RQ_ACTIVE, /* on r->h */
    RQ_DONE,   /* its callback is running */
};

struct etcd_req {
    uint32_t magic;
    struct etcd *e;
    struct etcd_pool *pool;
    enum etcd_op op;
    const char *path;
    struct buf body;
    bool retry_safe;
    bool sent; /* an attempt wrote it in full */
    bool was_queued;
    enum rq_state state;
    unsigned timeout_ms;
    unsigned fails;  /* failed attempts in this round */
    unsigned rounds; /* failed rounds */
    size_t ep;
    uint64_t attempt_us;
    struct etcd_http *h;
    ev_timer deadline;
    ev_timer retry;
    char why[2 * ETCD_ERR_MAX]; /* the last failure */
    etcd_result_fn *cb;
    void *arg;
    struct etcd_req *prev, *next;   /* e->reqs */
    struct etcd_req *wprev, *wnext; /* pool->waiting */
};

static void attempt(struct etcd_req *r);
static void req_http_ev(struct etcd_http *h, enum etcd__http_ev ev);

/* ---- pools */

void
etcd__pool_init(struct etcd_pool *p, struct etcd *e, unsigned max_conns)
{
    memset(p, 0, sizeof(*p));
    p->e = e;
    p->max_conns = max_conns ? max_conns : 1;
}

void
etcd__pool_fini(struct etcd_pool *p)
{
    struct etcd_http *h, *tmp;

    WR_ASSERT(p->waiting == NULL);
    DL_FOREACH_SAFE(p->idle, h, tmp)
    {
        DL_DELETE(p->idle, h);
        etcd__http_close(h);
        p->n_conns--;
    }
}

static void
start_timer(struct etcd_req *r, unsigned ms)
{
    ev_timer_stop(r->e->loop, &r->retry);
    ev_timer_set(&r->retry, ms / 1000.0, 0);
    ev_timer_start(r->e->loop, &r->retry);
    r->state = RQ_TIMER;
}

/* A connection closed: the first waiter may open one, from its timer. */
static void
pool_kick(struct etcd_pool *p)
{
    struct etcd_req *r = p->waiting;

    if (!r || p->n_conns >= p->max_conns)
        return;
    DL_DELETE2(p->waiting, r, wprev, wnext);
    start_timer(r, 0);
}

static void
pool_close(struct etcd_pool *p, struct etcd_http *h)
{
    etcd__http_close(h);
    p->n_conns--;
    pool_kick(p);
}

/* An idle connection failed (peer closed it, or sent junk). */
static void
idle_http_ev(struct etcd_http *h, enum etcd__http_ev ev)
{
    struct etcd_pool *p = h->owner;

    DL_DELETE(p->idle, h);
    pool_close(p, h);
}

/* Returns an idle connection to ep, closing those met on the way that
 * go elsewhere or that the peer closed (the read watcher would notice
 * only on the next loop iteration), or NULL. */
static struct etcd_http *
pool_take(struct etcd_pool *p, size_t ep)
{
    struct etcd_http *h, *tmp;

    DL_FOREACH_SAFE(p->idle, h, tmp)
    {
        DL_DELETE(p->idle, h);
        if (h->ep == ep && etcd__http_is_alive(h))
            return h;
        pool_close(p, h);
    }
    return NULL;
}

static void start_on(struct etcd_req *r, struct etcd_http *h);

/* Takes back h after a complete answer: to the first waiter, to the
 * idle list, or closed when it cannot be reused. */
static void
pool_put(struct etcd_pool *p, struct etcd_http *h)
{
    struct etcd_req *r = p->waiting;

    if (!h->reusable || (r && h->ep != p->e->cur_ep)) {
        pool_close(p, h); /* lets the first waiter open a new one */
        return;
    }
    if (r) {
        DL_DELETE2(p->waiting, r, wprev, wnext);
        start_on(r, h);
        return;
    }
    etcd__http_set_owner(h, idle_http_ev, p);
    DL_APPEND(p->idle, h);
}

/* ---- completion */

/* Takes r off every list and stops its timers; r->h is dealt with by
 * the caller. */
static void
detach(struct etcd_req *r)
{
    ev_timer_stop(r->e->loop, &r->deadline);
    ev_timer_stop(r->e->loop, &r->retry);
    if (r->state == RQ_QUEUED)
        DL_DELETE2(r->pool->waiting, r, wprev, wnext);
    DL_DELETE2(r->e->reqs, r, prev, next);
}

static void
req_free(struct etcd_req *r)
{
    buf_fini(&r->body);
    r->magic = 0;
    free(r);
}

/* Ends r: off every list, then its callback, then freed. The caller must
 * not touch anything of the client afterwards (the callback may have
 * freed it). */
static void
finish(struct etcd_req *r, struct etcd_result *res)
{
    WR_ASSERT(r->h == NULL);
    detach(r);
    r->state = RQ_DONE;
    res->op = r->op;
    if (r->cb)
        r->cb(r->arg, res);
    req_free(r);
}

static void WR_PRINTF(4, 5)
    finish_error(struct etcd_req *r, enum etcd_status st, int code,
                 const char *fmt, ...)
{
    struct etcd_result res = {.status = st, .code = code};
    char msg[3 * ETCD_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    res.error = msg;
    finish(r, &res);
}

/* Drops r's connection: it is mid-request, so it cannot be reused. */
static void
drop_conn(struct etcd_req *r)
{
    struct etcd_http *h = r->h;

    r->h = NULL;
    if (h)
        pool_close(r->pool, h);
}

/* ---- failures and retries */

/* After a failed attempt (already reported): the next endpoint, the
 * next round after a backoff, or the end for a sent write. */
static void
retry_or_end(struct etcd_req *r)
{
    if (r->sent && !r->retry_safe) {
        finish_error(r, ETCD_E_UNKNOWN, 0,
                     "%s (the request was sent: outcome unknown)", r->why);
        return;
    }
    if (++r->fails < r->e->n_eps) {
        start_timer(r, 0);
        return;
    }
    r->fails = 0;
    start_timer(r, etcd__backoff_ms(r->rounds++));
}

/* The attempt on r->ep failed (r->why says why). */
static void
attempt_failed(struct etcd_req *r)
{
    etcd__ep_failed(r->e, r->ep, r->why);
    retry_or_end(r);
}

/* An answer that is not etcd's (or not readable): the end of r. */
static void
bad_answer(struct etcd_req *r)
{
    if (r->sent && !r->retry_safe)
        finish_error(r, ETCD_E_UNKNOWN, 0,
                     "%s (the request was sent: outcome unknown)", r->why);
    else
        finish_error(r, ETCD_E_PROTOCOL, 0, "%s", r->why);
}

static void
conn_failed(struct etcd_req *r)
{
    bool proto = r->h->proto_err;

    snprintf(r->why, sizeof(r->why), "%s", r->h->err);
    drop_conn(r);
    if (proto)
        bad_answer(r);
    else
        attempt_failed(r);
}

/* The attempt on r->h got no answer in time: its endpoint is hung (or
 * slow). Its watches move too: a stopped process that still accepts TCP
 * is not noticed otherwise. */
static void
hung(struct etcd_req *r)
{
    uint64_t ms = (wr_now_us() - r->attempt_us) / 1000;

    snprintf(r->why, sizeof(r->why), "no answer from %s within %" PRIu64 " ms",
             r->e->eps[r->ep].name, ms);
    drop_conn(r);
    etcd__ep_failed(r->e, r->ep, r->why);
    etcd__watch_ep_hung(r->e, r->ep);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct etcd_req *r = container_of(w, struct etcd_req, deadline);
    bool unknown = r->sent && !r->retry_safe;
    const char *sep = r->why[0] ? ": " : "";

    if (r->h) {
        hung(r);
        sep = ": ";
    }
    if (unknown)
        finish_error(r, ETCD_E_UNKNOWN, 0,
                     "timed out after %u ms%s%s (the request was sent: "
                     "outcome unknown)",
                     r->timeout_ms, sep, r->why);
    else
        finish_error(r, ETCD_E_UNAVAILABLE, 0, "timed out after %u ms%s%s",
                     r->timeout_ms, sep, r->why);
}

/* ---- answers */

/* gRPC codes after which another attempt may succeed: CANCELED,
 * UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE ("no leader",
 * "request timed out", "too many requests"). For a sent write they all
 * mean "outcome unknown" (retry_or_end sees to that). */
static bool
code_is_retryable(int code)
{
    return code == 1 || code == 2 || code == 4 || code == 13 || code == 14;
}

/* etcd's "no leader" (code 14) is refused before anything is proposed
 * (the hasleader check, or waitLeader for leases): not applied. */
static bool
is_no_leader(int code, const char *msg)
{
    return code == 14 && strcmp(msg, "etcdserver: no leader") == 0;
}

/* An answer that is not a result: non-200, or etcd's error object. */
static void
error_answer(struct etcd_req *r, int status, struct bytes body)
{
    char msg[ETCD_ERR_MAX];
    int code;

    if (!etcd__json_error(body, &code, msg, sizeof(msg))) {
        snprintf(r->why, sizeof(r->why), "HTTP %d from %s: %.*s", status,
                 r->e->eps[r->ep].name, (int)WR_MIN(body.len, 80),
                 (const char *)body.ptr);
        if (status >= 500)
            attempt_failed(r);
        else
            bad_answer(r);
        return;
    }
    snprintf(r->why, sizeof(r->why), "%s: %s (code %d)", r->e->eps[r->ep].name,
             msg, code);
    if (is_no_leader(code, msg))
        r->sent = false; /* so a write may go to another member */
    if (code_is_retryable(code))
        attempt_failed(r);
    else if (r->op == ETCD_OP_LEASE_REVOKE && code == 5)
        finish(r, &(struct etcd_result){.status = ETCD_OK});
    else
        finish_error(r, ETCD_E_SERVER, code, "%s", msg);
}

/* A 200 answer: a result, etcd's error object (a stream's), or junk. */
static void
ok_answer(struct etcd_req *r, struct bytes body)
{
    struct etcd_result res;
    struct etcd__arena a;
    char err[ETCD_ERR_MAX];
    int rc;

    etcd__arena_init(&a);
    rc = etcd__json_result(r->op, body, &a, &res, err, sizeof(err));
    if (rc == WR_OK) {
        finish(r, &res);
    } else if (rc == WR_AGAIN) {
        error_answer(r, 200, body);
    } else {
        snprintf(r->why, sizeof(r->why), "%s: %s", r->e->eps[r->ep].name, err);
        bad_answer(r);
    }
    etcd__arena_fini(&a);
}

/* A complete answer on r->h: the connection goes back to the pool (it
 * may serve a waiter at once), the body stays with r. */
static void
answer(struct etcd_req *r)
{
    struct etcd_http *h = r->h;
    struct buf body = h->body;
    int status = h->status;

    buf_init(&h->body);
    r->h = NULL;
    r->sent = true; /* an answer implies it all arrived */
    pool_put(r->pool, h);
    if (status == 200)
        ok_answer(r, buf_bytes(&body));
    else
        error_answer(r, status, buf_bytes(&body));
    buf_fini(&body);
}

static void
req_http_ev(struct etcd_http *h, enum etcd__http_ev ev)
{
    struct etcd_req *r = h->owner;

    WR_ASSERT(r->magic == ETCD_REQ_MAGIC && r->h == h);
    switch (ev) {
    case EH_SENT:
        r->sent = true;
        if (!r->retry_safe) /* its fate is the deadline's now */
            ev_timer_stop(r->e->loop, &r->retry);
        break;
    case EH_DATA:
        break;
    case EH_FAIL:
        conn_failed(r);
        break;
    case EH_DONE:
        answer(r);
        break;
    }
}

/* ---- attempts */

/* While ACTIVE, the retry timer bounds the attempt (a third of the
 * timeout, so that a hung endpoint leaves time for two more), for as
 * long as another attempt is allowed. */
static void
start_attempt_timer(struct etcd_req *r)
{
    ev_timer_stop(r->e->loop, &r->retry);
    ev_timer_set(&r->retry, WR_MAX(r->timeout_ms / 3, ATTEMPT_MIN_MS) / 1000.0,
                 0);
    ev_timer_start(r->e->loop, &r->retry);
}

static void
start_on(struct etcd_req *r, struct etcd_http *h)
{
    int rc;

    r->h = h;
    r->ep = h->ep;
    r->state = RQ_ACTIVE;
    etcd__http_set_owner(h, req_http_ev, r);
    r->attempt_us = wr_now_us();
    rc = etcd__http_send(h, r->path, buf_bytes(&r->body), false);
    if (rc == WR_OK)
        r->sent = true;
    if (rc == WR_ERR)
        conn_failed(r);
    else if (r->retry_safe || !r->sent)
        start_attempt_timer(r);
}

static void
attempt(struct etcd_req *r)
{
    struct etcd_pool *p = r->pool;
    struct etcd_http *h;

    r->ep = r->e->cur_ep;
    h = pool_take(p, r->ep);
    if (h) {
        start_on(r, h);
        return;
    }
    if (p->n_conns >= p->max_conns) {
        r->state = RQ_QUEUED;
        if (r->was_queued)
            DL_PREPEND2(p->waiting, r, wprev, wnext);
        else
            DL_APPEND2(p->waiting, r, wprev, wnext);
        r->was_queued = true;
        return;
    }
    h = etcd__http_open(r->e, r->ep, req_http_ev, r, r->why, sizeof(r->why));
    if (!h) {
        attempt_failed(r);
        return;
    }
    p->n_conns++;
    start_on(r, h);
}

/* The retry timer: the next attempt, or the end of an ACTIVE one. */
static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct etcd_req *r = container_of(w, struct etcd_req, retry);

    if (r->state != RQ_ACTIVE) {
        attempt(r);
        return;
    }
    hung(r);
    retry_or_end(r);
}

/* ---- interface */

struct etcd_req *
etcd__req_submit(struct etcd_pool *p, enum etcd_op op, const char *path,
                 struct buf *body, bool retry_safe, unsigned timeout_ms,
                 etcd_result_fn *cb, void *arg)
{
    struct etcd *e = p->e;
    struct etcd_req *r = xcalloc(1, sizeof(*r));

    r->magic = ETCD_REQ_MAGIC;
    r->e = e;
    r->pool = p;
    r->op = op;
    r->path = path;
    r->body = *body;
    buf_init(body);
    r->retry_safe = retry_safe;
    r->timeout_ms = timeout_ms ? timeout_ms : e->request_timeout_ms;
    r->cb = cb;
    r->arg = arg;
    ev_timer_init(&r->deadline, deadline_cb, r->timeout_ms / 1000.0, 0);
    ev_timer_init(&r->retry, retry_cb, 0, 0);
    ev_now_update(e->loop); /* a full timeout from now, not from when this
                               loop iteration began */
    ev_timer_start(e->loop, &r->deadline);
    start_timer(r, 0);
    DL_APPEND2(e->reqs, r, prev, next);
    return r;
}

uint64_t
etcd__req_sent_us(const struct etcd_req *r)
{
    WR_ASSERT(r->magic == ETCD_REQ_MAGIC);
    return r->attempt_us;
}

void
etcd__req_drop(struct etcd_req *r)
{
    if (!r)
        return;
    WR_ASSERT(r->magic == ETCD_REQ_MAGIC);
    if (r->state == RQ_DONE)
        return; /* its callback is running; freed when it returns */
    detach(r);
    drop_conn(r);
    req_free(r);
}

void
etcd_cancel(struct etcd_req *r)
{
    etcd__req_drop(r);
}
