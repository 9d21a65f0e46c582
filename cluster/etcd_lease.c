/*
 * etcd_lease.c: a lease, granted once and kept alive until revoked,
 * freed or lost.
 *
 *   GRANTING ──grant ok──> ACTIVE ──keepalive ok (TTL > 0)──> ACTIVE
 *      │                     │  keepalive says TTL 0 / not found
 *      │ grant failed        │  or nothing confirmed for a TTL
 *      v                     v
 *     LOST <─────────────────┘          any state ──revoke──> REVOKED
 *
 * The grant and the keepalives run over the lease's own pool of one
 * connection, so that requests queued on the client's pool never delay a
 * keepalive. A keepalive is sent TTL/3 after the previous answer, with
 * TTL/3 to succeed (the request engine moves to the next endpoint within
 * that time when one fails); a failed one is tried again after
 * RETRY_MS, until the expire timer decides.
 *
 * Time rule (etcd.h): renewed_us is the monotonic time the request whose
 * answer confirmed the lease started to be written (the grant's too).
 * etcd restarted the TTL when it read that request, so the lease lives at
 * least until renewed_us + TTL; the expire timer fires then, and a
 * holder must stop before, at etcd_lease_deadline_us().
 */
#include "cluster/etcd_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

#define RETRY_MS         100
#define KEEPALIVE_MIN_MS 200

struct etcd_lease {
    uint32_t magic;
    struct etcd *e;
    struct etcd_pool pool; /* the lease's own connection */
    enum etcd_lease_state state;
    int64_t id;
    int64_t ttl;
    uint64_t renewed_us;
    struct etcd_req *req; /* grant or keepalive in flight */
    ev_timer tick;        /* the next keepalive */
    ev_timer expire;      /* renewed_us + ttl */
    etcd_lease_fn *cb;
    void *arg;
    struct etcd_lease *prev, *next; /* e->leases */
};

static void
stop_all(struct etcd_lease *l)
{
    ev_timer_stop(l->e->loop, &l->tick);
    ev_timer_stop(l->e->loop, &l->expire);
    etcd__req_drop(l->req);
    l->req = NULL;
}

/* Final: the lease is gone or unusable. The callback is the last action
 * (it may free l or the client). */
static void WR_PRINTF(2, 3) lost(struct etcd_lease *l, const char *fmt, ...)
{
    char why[ETCD_ERR_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    stop_all(l);
    l->state = ETCD_LEASE_LOST;
    if (l->id)
        log_warn("etcd: lease %" PRId64 " lost: %s", l->id, why);
    else
        log_warn("etcd: lease lost: %s", why);
    l->cb(l->arg, l, ETCD_LEASE_LOST, why);
}

static unsigned
keepalive_ms(const struct etcd_lease *l)
{
    return WR_MAX((unsigned)(l->ttl * 1000 / 3), (unsigned)KEEPALIVE_MIN_MS);
}

static void
schedule(struct etcd_lease *l, unsigned ms)
{
    ev_timer_stop(l->e->loop, &l->tick);
    ev_timer_set(&l->tick, ms / 1000.0, 0);
    ev_timer_start(l->e->loop, &l->tick);
}

/* A renewal sent at sent_us was confirmed with ttl seconds left. */
static void
renewed(struct etcd_lease *l, uint64_t sent_us, int64_t ttl)
{
    uint64_t end, now = wr_now_us();

    l->renewed_us = WR_MAX(l->renewed_us, sent_us);
    l->ttl = ttl;
    end = l->renewed_us + (uint64_t)ttl * 1000000u;
    ev_now_update(l->e->loop); /* the timer counts from ev_now() */
    ev_timer_stop(l->e->loop, &l->expire);
    ev_timer_set(&l->expire, end > now ? (double)(end - now) / 1e6 : 0, 0);
    ev_timer_start(l->e->loop, &l->expire);
    schedule(l, keepalive_ms(l));
}

static void
keepalive_done(void *arg, const struct etcd_result *res)
{
    struct etcd_lease *l = arg;
    uint64_t sent;

    WR_ASSERT(l->magic == ETCD_LEASE_MAGIC);
    sent = etcd__req_sent_us(l->req);
    l->req = NULL;
    if (res->status == ETCD_OK && res->ttl > 0)
        renewed(l, sent, res->ttl);
    else if (res->status == ETCD_OK)
        lost(l, "etcd says it expired or was revoked");
    else if (res->status == ETCD_E_SERVER && res->code == 5)
        lost(l, "etcd does not know it: %s", res->error);
    else
        schedule(l, RETRY_MS);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct etcd_lease *l = container_of(w, struct etcd_lease, tick);
    json_t *j = json_object();
    struct buf body;

    buf_init(&body);
    etcd__json_set_int(j, "ID", l->id);
    etcd__json_dump_steal(j, &body);
    l->req = etcd__req_submit(&l->pool, ETCD_OP_LEASE_KEEPALIVE,
                              "/v3/lease/keepalive", &body, true,
                              keepalive_ms(l), keepalive_done, l);
}

static void
expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct etcd_lease *l = container_of(w, struct etcd_lease, expire);

    lost(l, "no renewal confirmed within its TTL of %" PRId64 " s", l->ttl);
}

static void
grant_done(void *arg, const struct etcd_result *res)
{
    struct etcd_lease *l = arg;
    uint64_t sent;

    WR_ASSERT(l->magic == ETCD_LEASE_MAGIC);
    sent = etcd__req_sent_us(l->req);
    l->req = NULL;
    if (res->status != ETCD_OK) {
        lost(l, "grant failed: %s", res->error);
        return;
    }
    if (res->id == 0 || res->ttl <= 0) {
        lost(l, "grant answered without an ID or TTL");
        return;
    }
    l->id = res->id;
    l->state = ETCD_LEASE_ACTIVE;
    renewed(l, sent, res->ttl);
    l->cb(l->arg, l, ETCD_LEASE_ACTIVE, "granted");
}

struct etcd_lease *
etcd_lease_new(struct etcd *e, int64_t ttl_s, etcd_lease_fn *cb, void *arg)
{
    struct etcd_lease *l = xcalloc(1, sizeof(*l));
    json_t *j = json_object();
    struct buf body;

    WR_ASSERT(e->magic == ETCD_MAGIC && ttl_s > 0);
    l->magic = ETCD_LEASE_MAGIC;
    l->e = e;
    l->state = ETCD_LEASE_GRANTING;
    l->cb = cb;
    l->arg = arg;
    etcd__pool_init(&l->pool, e, 1);
    ev_timer_init(&l->tick, tick_cb, 0, 0);
    ev_timer_init(&l->expire, expire_cb, 0, 0);
    DL_APPEND(e->leases, l);
    buf_init(&body);
    etcd__json_set_int(j, "TTL", ttl_s);
    etcd__json_dump_steal(j, &body);
    l->req = etcd__req_submit(&l->pool, ETCD_OP_LEASE_GRANT, "/v3/lease/grant",
                              &body, true, 0, grant_done, l);
    return l;
}

void
etcd_lease_free(struct etcd_lease *l)
{
    if (!l)
        return;
    WR_ASSERT(l->magic == ETCD_LEASE_MAGIC);
    stop_all(l);
    etcd__pool_fini(&l->pool);
    DL_DELETE(l->e->leases, l);
    l->magic = 0;
    free(l);
}

enum etcd_lease_state
etcd_lease_state(const struct etcd_lease *l)
{
    return l->state;
}

int64_t
etcd_lease_id(const struct etcd_lease *l)
{
    return l->id;
}

int64_t
etcd_lease_ttl(const struct etcd_lease *l)
{
    return l->ttl;
}

uint64_t
etcd_lease_renewed_us(const struct etcd_lease *l)
{
    return l->renewed_us;
}

uint64_t
etcd_lease_deadline_us(const struct etcd_lease *l, uint64_t margin_us)
{
    uint64_t end;

    if (l->state != ETCD_LEASE_ACTIVE)
        return 0;
    end = l->renewed_us + (uint64_t)l->ttl * 1000000u;
    return end > margin_us ? end - margin_us : 0;
}

struct etcd_req *
etcd_lease_revoke(struct etcd_lease *l, etcd_result_fn *cb, void *arg)
{
    json_t *j;
    struct buf body;

    WR_ASSERT(l->magic == ETCD_LEASE_MAGIC);
    stop_all(l);
    l->state = ETCD_LEASE_REVOKED;
    if (l->id == 0)
        return NULL;
    j = json_object();
    buf_init(&body);
    etcd__json_set_int(j, "ID", l->id);
    etcd__json_dump_steal(j, &body);
    return etcd__req_submit(&l->e->pool, ETCD_OP_LEASE_REVOKE,
                            "/v3/lease/revoke", &body, true, 0, cb, arg);
}
