/*
 * Tests of the etcd client (cluster/etcd*.c) against real etcd members
 * that each case starts on free loopback ports (test_etcd_util.c), plus a
 * hostile fake server and a TCP proxy on the case's own loop. Every wait
 * is bounded by TU_RUN_UNTIL; every member is killed when the case ends.
 */
#include "test/unit/test_etcd_util.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define B(s)       BYTES_LIT(s)
#define WAIT_MS    10000
#define CASE_MAX_S 100

static struct ev_loop *loop;

/* Each case gets its own loop, and a watchdog: the waits are bounded,
 * but a case that hangs anyway dies of SIGALRM (its etcd members with it,
 * by PR_SET_PDEATHSIG) instead of waiting for ctest's timeout. */
static void
setup(void)
{
    alarm(CASE_MAX_S);
    loop = ev_loop_new(EVFLAG_AUTO);
    T_ASSERT(loop);
}

static void
teardown(void)
{
    ev_loop_destroy(loop);
    loop = NULL;
}

static struct etcd *
client_of(const struct tu_cluster *c, unsigned timeout_ms)
{
    struct etcd_config cfg = tu_config(c->endpoints, (size_t)c->n, timeout_ms);
    struct etcd *e = etcd_new(loop, &cfg);

    T_ASSERT(e);
    return e;
}

/* ---- synchronous wrappers: start, run the loop until the callback */

static void
wait_res(struct tu_res *r)
{
    TU_RUN_UNTIL(loop, r->calls > 0, WAIT_MS);
    T_EQ_INT(r->calls, 1);
}

static void
expect_ok(const struct tu_res *r)
{
    if (r->status != ETCD_OK)
        t_fail(__FILE__, __LINE__, "status %d (code %d): %s", r->status,
               r->code, r->error);
}

static int64_t
put_ok(struct etcd *e, struct bytes k, struct bytes v,
       const struct etcd_put_opts *o, struct tu_res *out)
{
    struct tu_res r = {0};

    etcd_put(e, k, v, o, tu_res_cb, &r);
    wait_res(&r);
    expect_ok(&r);
    if (out)
        *out = r;
    return r.revision;
}

static void
range_res(struct etcd *e, struct bytes k, const struct etcd_range_opts *o,
          struct tu_res *out)
{
    memset(out, 0, sizeof(*out));
    etcd_range(e, k, o, tu_res_cb, out);
    wait_res(out);
}

static void
delete_ok(struct etcd *e, struct bytes k, const struct etcd_delete_opts *o,
          struct tu_res *out)
{
    memset(out, 0, sizeof(*out));
    etcd_delete(e, k, o, tu_res_cb, out);
    wait_res(out);
    expect_ok(out);
}

static void
txn_res(struct etcd *e, struct etcd_txn *t, struct tu_res *out)
{
    memset(out, 0, sizeof(*out));
    etcd_txn_commit(e, t, tu_res_cb, out);
    wait_res(out);
    expect_ok(out);
}

/* Whether key exists. */
static bool
exists(struct etcd *e, struct bytes k)
{
    struct tu_res r;

    range_res(e, k, NULL, &r);
    expect_ok(&r);
    return r.n_kvs == 1;
}

/* ---- lease observer */

struct lease_obs {
    int calls;
    int active;
    int lost;
    enum etcd_lease_state last;
    uint64_t lost_us;
    char why[512];
};

static void
lease_cb(void *arg, struct etcd_lease *l, enum etcd_lease_state st,
         const char *why)
{
    struct lease_obs *o = arg;

    o->calls++;
    o->last = st;
    o->active += st == ETCD_LEASE_ACTIVE;
    o->lost += st == ETCD_LEASE_LOST;
    if (st == ETCD_LEASE_LOST)
        o->lost_us = wr_now_us();
    snprintf(o->why, sizeof(o->why), "%s", why);
    T_ASSERT(etcd_lease_state(l) == st);
}

static struct etcd_lease *
lease_active(struct etcd *e, int64_t ttl, struct lease_obs *o)
{
    struct etcd_lease *l;

    memset(o, 0, sizeof(*o));
    l = etcd_lease_new(e, ttl, lease_cb, o);
    TU_RUN_UNTIL(loop, o->calls > 0, WAIT_MS);
    if (o->active != 1)
        t_fail(__FILE__, __LINE__, "lease not granted: %s", o->why);
    T_ASSERT(etcd_lease_id(l) != 0);
    T_ASSERT(etcd_lease_ttl(l) >= ttl);
    return l;
}

/* ---- watch observer */

#define OBS_EVENTS 64

struct obs_event {
    enum etcd_event_type type;
    struct tu_kv kv;
    bool has_prev;
    struct tu_kv prev;
};

struct watch_obs {
    int calls;
    int resets;
    int fails;
    int64_t compact_revision;
    int n;
    struct obs_event ev[OBS_EVENTS];
};

static void
watch_cb(void *arg, const struct etcd_watch_update *u)
{
    struct watch_obs *o = arg;

    o->calls++;
    if (u->kind == ETCD_WATCH_RESET) {
        o->resets++;
        o->compact_revision = u->compact_revision;
        return;
    }
    if (u->kind == ETCD_WATCH_FAILED) {
        o->fails++;
        return;
    }
    T_ASSERT(u->n_events > 0);
    for (size_t i = 0; i < u->n_events; i++) {
        const struct etcd_event *ev = &u->events[i];
        struct obs_event *x;

        T_ASSERT(o->n < OBS_EVENTS);
        x = &o->ev[o->n++];
        x->type = ev->type;
        tu_kv_copy(&x->kv, &ev->kv);
        x->has_prev = ev->has_prev_kv;
        if (ev->has_prev_kv)
            tu_kv_copy(&x->prev, &ev->prev_kv);
    }
}

/* Checks o's events are exactly PUTs of key<i> = "v<i>" for i in
 * [1, n], in order, each once. */
static void
expect_numbered_puts(const struct watch_obs *o, const char *prefix, int n)
{
    int64_t last = 0;

    T_EQ_INT(o->n, n);
    for (int i = 0; i < n; i++) {
        char k[64], v[16];

        snprintf(k, sizeof(k), "%s%d", prefix, i + 1);
        snprintf(v, sizeof(v), "v%d", i + 1);
        T_EQ_INT(o->ev[i].type, ETCD_EV_PUT);
        T_ASSERT(tu_kv_is(&o->ev[i].kv, bytes_str(k), bytes_str(v)));
        T_ASSERT(o->ev[i].kv.mod_revision > last);
        last = o->ev[i].kv.mod_revision;
    }
}

static int64_t
put_numbered(struct etcd *e, const char *prefix, int i)
{
    char k[64], v[16];

    snprintf(k, sizeof(k), "%s%d", prefix, i);
    snprintf(v, sizeof(v), "v%d", i);
    return put_ok(e, bytes_str(k), bytes_str(v), NULL, NULL);
}

/* ---- cases without etcd */

T_CASE(endpoints_are_numeric_and_checked)
{
    static const char *const good[] = {
        "127.0.0.1:2379", "http://127.0.0.1:2379", "http://127.0.0.1:2379/",
        "[::1]:2379",     "http://[::1]:12379",
    };
    static const char *const bad[] = {
        "localhost:2379", "https://127.0.0.1:2379",
        "::1:2379",       "127.0.0.1",
        "127.0.0.1:0",    "127.0.0.1:70000",
        "127.0.0.1:23x",  "",
        "http://",        "etcd.example.com:2379",
        "[::1]2379",
    };
    char err[256];

    for (size_t i = 0; i < WR_ARRAY_LEN(good); i++) {
        struct etcd_config cfg = {.endpoints = &good[i], .n_endpoints = 1};

        if (etcd_config_check(&cfg, err, sizeof(err)) != WR_OK)
            t_fail(__FILE__, __LINE__, "%s refused: %s", good[i], err);
    }
    for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
        struct etcd_config cfg = {.endpoints = &bad[i], .n_endpoints = 1};

        err[0] = '\0';
        if (etcd_config_check(&cfg, err, sizeof(err)) != WR_ERR)
            t_fail(__FILE__, __LINE__, "%s accepted", bad[i]);
        T_ASSERT(err[0] != '\0');
    }
    {
        struct etcd_config cfg = {.endpoints = bad, .n_endpoints = 1};

        T_ASSERT(etcd_config_check(&cfg, err, sizeof(err)) == WR_ERR);
        T_ASSERT(strstr(err, "not a numeric IP address"));
        setup();
        T_ASSERT(etcd_new(loop, &cfg) == NULL);
        teardown();
    }
}

T_CASE(prefix_end_increments_the_last_byte_below_0xff)
{
    struct buf out;
    struct bytes end;

    buf_init(&out);
    end = etcd_prefix_end(B("abc"), &out);
    T_EQ_MEM(end.ptr, end.len, "abd", 3);
    end = etcd_prefix_end(B("a\xff\xff"), &out);
    T_EQ_MEM(end.ptr, end.len, "b", 1);
    end = etcd_prefix_end(B("\xff\xff"), &out);
    T_EQ_MEM(end.ptr, end.len, "\0", 1);
    end = etcd_prefix_end(BYTES_NULL, &out);
    T_EQ_MEM(end.ptr, end.len, "\0", 1);
    buf_fini(&out);
}

/* ---- KV */

/* Binary keys under a prefix ending in 0xff (its range_end is "t\x01",
 * which must stay outside), values empty, binary and with NULs. */
static const uint8_t k1[] = {'t', 0x00, 0xff, 0x00};
static const uint8_t k2[] = {'t', 0x00, 0xff, 'a', 0xff, 0x00, 'b'};
static const uint8_t k3[] = {'t', 0x00, 0xff, 0xff, 0xff};
static const uint8_t outside[] = {'t', 0x01};
static const uint8_t v3[] = {0xff, 0x00};
static uint8_t v2[200];

#define K1      bytes_of(k1, sizeof(k1))
#define K2      bytes_of(k2, sizeof(k2))
#define K3      bytes_of(k3, sizeof(k3))
#define V2      bytes_of(v2, sizeof(v2))
#define V3      bytes_of(v3, sizeof(v3))
#define OUTSIDE bytes_of(outside, sizeof(outside))
#define PREFIX  bytes_of(k1, 3)

/* Writes the keys; returns k2's revision. */
static int64_t
kv_write(struct etcd *e)
{
    int64_t rev;

    for (size_t i = 0; i < sizeof(v2); i++)
        v2[i] = (uint8_t)(i * 37);
    put_ok(e, K1, BYTES_NULL, NULL, NULL);
    rev = put_ok(e, K2, V2, NULL, NULL);
    put_ok(e, K3, V3, NULL, NULL);
    put_ok(e, OUTSIDE, B("out"), NULL, NULL);
    return rev;
}

static void
kv_check_prefix(struct etcd *e, int64_t rev_k2)
{
    struct tu_res r;

    range_res(e, PREFIX, &(struct etcd_range_opts){.prefix = true}, &r);
    expect_ok(&r);
    T_EQ_INT(r.n_kvs, 3);
    T_EQ_INT(r.count, 3);
    T_ASSERT(!r.more);
    T_ASSERT(tu_kv_is(&r.kvs[0], K1, BYTES_NULL));
    T_ASSERT(tu_kv_is(&r.kvs[1], K2, V2));
    T_ASSERT(tu_kv_is(&r.kvs[2], K3, V3));
    T_EQ_INT(r.kvs[1].create_revision, rev_k2);
    T_EQ_INT(r.kvs[1].mod_revision, rev_k2);
    T_EQ_INT(r.kvs[1].version, 1);
    T_EQ_INT(r.kvs[1].lease, 0);
}

/* prev_kv on put, limit, keys_only, count_only, an old revision. */
static void
kv_check_options(struct etcd *e, int64_t rev_k2)
{
    struct tu_res r;

    put_ok(e, K2, B("new"), &(struct etcd_put_opts){.prev_kv = true}, &r);
    T_EQ_INT(r.n_kvs, 1);
    T_ASSERT(tu_kv_is(&r.kvs[0], K2, V2));
    range_res(e, PREFIX, &(struct etcd_range_opts){.prefix = true, .limit = 1},
              &r);
    T_EQ_INT(r.n_kvs, 1);
    T_ASSERT(r.more);
    T_EQ_INT(r.count, 3);
    range_res(e, PREFIX,
              &(struct etcd_range_opts){.prefix = true, .keys_only = true}, &r);
    T_EQ_INT(r.n_kvs, 3);
    T_EQ_INT(r.kvs[1].vlen, 0);
    T_EQ_INT(r.kvs[1].version, 2);
    range_res(e, PREFIX,
              &(struct etcd_range_opts){.prefix = true, .count_only = true},
              &r);
    T_EQ_INT(r.n_kvs, 0);
    T_EQ_INT(r.count, 3);
    range_res(e, K2, &(struct etcd_range_opts){.revision = rev_k2}, &r);
    expect_ok(&r);
    T_ASSERT(tu_kv_is(&r.kvs[0], K2, V2));
}

/* An absent key; a future revision is etcd's error 11. */
static void
kv_check_absent(struct etcd *e, int64_t rev_k2)
{
    struct tu_res r;

    range_res(e, B("absent"), NULL, &r);
    expect_ok(&r);
    T_EQ_INT(r.n_kvs, 0);
    T_EQ_INT(r.count, 0);
    T_ASSERT(r.revision > rev_k2);
    range_res(e, B("absent"), &(struct etcd_range_opts){.revision = 1000000},
              &r);
    T_EQ_INT(r.status, ETCD_E_SERVER);
    T_EQ_INT(r.code, 11);
    T_ASSERT(strstr(r.error, "future revision"));
}

static void
kv_check_deletes(struct etcd *e)
{
    struct tu_res r;

    delete_ok(e, K1, &(struct etcd_delete_opts){.prev_kv = true}, &r);
    T_EQ_INT(r.count, 1);
    T_EQ_INT(r.n_kvs, 1);
    T_ASSERT(tu_kv_is(&r.kvs[0], K1, BYTES_NULL));
    delete_ok(e, PREFIX, &(struct etcd_delete_opts){.prefix = true}, &r);
    T_EQ_INT(r.count, 2);
    range_res(e, PREFIX, &(struct etcd_range_opts){.prefix = true}, &r);
    T_EQ_INT(r.n_kvs, 0);
    T_ASSERT(exists(e, OUTSIDE));
}

/* etcdctl reads what we write, we read what it writes. */
static void
kv_check_etcdctl(struct etcd *e, struct tu_cluster *c)
{
    struct tu_res r;

    put_ok(e, B("warren/ctl"), B("hello world"), NULL, NULL);
    T_EQ_INT(tu_etcdctl(c, "get warren/ctl --print-value-only | "
                           "grep -qx 'hello world'"),
             0);
    T_EQ_INT(tu_etcdctl(c, "put warren/from-ctl 'a b\tc'"), 0);
    range_res(e, B("warren/from-ctl"), NULL, &r);
    T_ASSERT(tu_kv_is(&r.kvs[0], B("warren/from-ctl"), B("a b\tc")));
}

T_CASE(kv_roundtrip_binary_keys_and_values)
{
    struct tu_cluster c;
    struct etcd *e;
    int64_t rev_k2;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 5000);
    rev_k2 = kv_write(e);
    kv_check_prefix(e, rev_k2);
    kv_check_options(e, rev_k2);
    kv_check_absent(e, rev_k2);
    kv_check_deletes(e);
    kv_check_etcdctl(e, &c);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* create-if-absent: the first wins and its revision is the key's
 * create_revision (the epoch); the second sees the first's key. Returns
 * the epoch. */
static int64_t
txn_check_create_if_absent(struct etcd *e, struct bytes leader)
{
    struct tu_res r;
    int64_t epoch = 0;

    for (int i = 0; i < 2; i++) {
        struct etcd_txn *t = etcd_txn_new();

        etcd_txn_if(t, leader, ETCD_CREATE, ETCD_EQUAL, 0);
        etcd_txn_put(t, ETCD_THEN, leader, i ? B("n2") : B("n1"), NULL);
        etcd_txn_range(t, ETCD_ELSE, leader, NULL);
        txn_res(e, t, &r);
        T_EQ_INT(r.succeeded, i == 0); /* etcd omits "succeeded": false */
        T_EQ_INT(r.n_resps, 1);
        if (i == 0) {
            T_EQ_INT(r.resps[0].op, ETCD_OP_PUT);
            T_EQ_INT(r.resps[0].revision, r.revision);
            epoch = r.revision;
            continue;
        }
        T_EQ_INT(r.resps[0].op, ETCD_OP_RANGE);
        T_EQ_INT(r.resps[0].n_kvs, 1);
        T_ASSERT(tu_kv_is(&r.resps[0].kv0, leader, B("n1")));
        T_EQ_INT(r.resps[0].kv0.create_revision, epoch);
    }
    return epoch;
}

/* A fenced update on mod_revision applies once only. */
static void
txn_check_fenced(struct etcd *e, struct bytes leader, int64_t mod)
{
    struct tu_res r;

    for (int i = 0; i < 2; i++) {
        struct etcd_txn *t = etcd_txn_new();

        etcd_txn_if(t, leader, ETCD_MOD, ETCD_EQUAL, mod);
        etcd_txn_put(t, ETCD_THEN, leader, B("n1b"), NULL);
        txn_res(e, t, &r);
        T_EQ_INT(r.succeeded, i == 0);
        if (i == 0)
            T_ASSERT(r.revision > mod);
    }
}

/* Value and version compares, in a read-only txn. */
static void
txn_check_value_version(struct etcd *e, struct bytes leader)
{
    struct etcd_txn *t = etcd_txn_new();
    struct tu_res r;

    etcd_txn_if_value(t, leader, ETCD_NOT_EQUAL, B("zzz"));
    etcd_txn_if_value(t, leader, ETCD_EQUAL, B("n1b"));
    etcd_txn_if(t, leader, ETCD_VERSION, ETCD_GREATER, 1);
    etcd_txn_range(t, ETCD_THEN, leader, NULL);
    txn_res(e, t, &r);
    T_ASSERT(r.succeeded);
    T_EQ_INT(r.resps[0].kv0.version, 2);
    t = etcd_txn_new();
    etcd_txn_if(t, leader, ETCD_VERSION, ETCD_LESS, 2);
    txn_res(e, t, &r);
    T_ASSERT(!r.succeeded);
    T_EQ_INT(r.n_resps, 0);
}

static void
txn_check_lease(struct etcd *e)
{
    struct lease_obs lo;
    struct etcd_lease *l = lease_active(e, 30, &lo);
    struct tu_res r;

    put_ok(e, B("election/leased"), B("x"),
           &(struct etcd_put_opts){.lease = etcd_lease_id(l)}, NULL);
    for (int i = 0; i < 2; i++) {
        struct etcd_txn *t = etcd_txn_new();

        etcd_txn_if(t, B("election/leased"), ETCD_LEASE, ETCD_EQUAL,
                    etcd_lease_id(l) + i);
        txn_res(e, t, &r);
        T_EQ_INT(r.succeeded, i == 0);
    }
    etcd_lease_free(l);
}

/* Several ops in one branch run in order, at one revision. */
static void
txn_check_several_ops(struct etcd *e, struct bytes leader)
{
    struct etcd_txn *t = etcd_txn_new();
    struct tu_res r;

    etcd_txn_if(t, B("election/absent"), ETCD_CREATE, ETCD_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, B("election/a"), B("1"), NULL);
    etcd_txn_put(t, ETCD_THEN, B("election/b"), B("2"), NULL);
    etcd_txn_delete(t, ETCD_THEN, leader,
                    &(struct etcd_delete_opts){.prev_kv = true});
    txn_res(e, t, &r);
    T_ASSERT(r.succeeded);
    T_EQ_INT(r.n_resps, 3);
    T_EQ_INT(r.resps[0].op, ETCD_OP_PUT);
    T_EQ_INT(r.resps[1].op, ETCD_OP_PUT);
    T_EQ_INT(r.resps[2].op, ETCD_OP_DELETE);
    T_EQ_INT(r.resps[1].revision, r.revision);
    T_EQ_INT(r.resps[2].count, 1);
    T_ASSERT(tu_kv_is(&r.resps[2].kv0, leader, B("n1b")));
    T_ASSERT(!exists(e, leader));
}

T_CASE(txn_compares_create_mod_value_version_lease)
{
    const struct bytes leader = B("election/leader");
    struct tu_cluster c;
    struct etcd *e;
    int64_t epoch;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 5000);
    epoch = txn_check_create_if_absent(e, leader);
    txn_check_fenced(e, leader, epoch);
    txn_check_value_version(e, leader);
    txn_check_lease(e);
    txn_check_several_ops(e, leader);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- leases */

T_CASE(lease_keepalive_keeps_key_past_several_ttls)
{
    struct tu_cluster c;
    struct lease_obs lo;
    struct etcd_lease *l;
    struct etcd *e;
    struct tu_res r;
    uint64_t last, end, freed;
    int64_t ttl, id;
    int renewals = 0;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 3000);
    l = lease_active(e, 1, &lo);
    ttl = etcd_lease_ttl(l);
    id = etcd_lease_id(l);
    put_ok(e, B("lease/k"), B("v"), &(struct etcd_put_opts){.lease = id}, NULL);
    last = etcd_lease_renewed_us(l);
    T_ASSERT(last > 0 && last <= wr_now_us());
    end = wr_now_ms() + (uint64_t)(3 * ttl * 1000 + 500);
    while (wr_now_ms() < end) {
        uint64_t now = wr_now_us(), renewed = etcd_lease_renewed_us(l);

        /* the rule the leader lives by never lapses while renewals flow */
        T_ASSERT(renewed <= now);
        T_ASSERT(now < etcd_lease_deadline_us(l, 0));
        T_EQ_INT(etcd_lease_deadline_us(l, 100000),
                 renewed + (uint64_t)ttl * 1000000 - 100000);
        renewals += renewed > last;
        last = renewed;
        tu_run_for(loop, 50);
    }
    T_ASSERT(renewals >= 6); /* every TTL/3 */
    T_EQ_INT(lo.lost, 0);
    range_res(e, B("lease/k"), NULL, &r);
    T_EQ_INT(r.n_kvs, 1);
    T_EQ_INT(r.kvs[0].lease, id);

    /* without keepalives etcd drops the key within about a TTL */
    etcd_lease_free(l);
    freed = wr_now_ms();
    TU_RUN_UNTIL(loop, !exists(e, B("lease/k")), (unsigned)(ttl * 1000 + 3000));
    T_ASSERT(wr_now_ms() - freed >= 200);

    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

T_CASE(lease_loss_is_reported)
{
    struct tu_cluster c;
    struct lease_obs lo, lo2;
    struct etcd_lease *l, *l2;
    struct tu_proxy *proxy;
    struct etcd *e, *ep;
    char url[64];
    const char *eps[1] = {url};
    struct etcd_config cfg;
    uint64_t renewed;
    int calls;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 3000);

    /* revoked from the outside: the next keepalive reports it */
    l = lease_active(e, 1, &lo);
    T_EQ_INT(tu_etcdctl(&c, "lease revoke %" PRIx64, etcd_lease_id(l)), 0);
    TU_RUN_UNTIL(loop, lo.lost == 1, 3000);
    T_EQ_INT(etcd_lease_state(l), ETCD_LEASE_LOST);
    T_EQ_INT(etcd_lease_deadline_us(l, 0), 0);
    T_ASSERT(strstr(lo.why, "expired or was revoked"));
    calls = lo.calls;
    tu_run_for(loop, 1200);
    T_EQ_INT(lo.calls, calls); /* LOST is final */
    etcd_lease_free(l);

    /* unreachable: lost once a TTL passed since the last renewal sent */
    proxy = tu_proxy_new(loop, c.m[0].client_port);
    snprintf(url, sizeof(url), "127.0.0.1:%d", tu_proxy_port(proxy));
    cfg = tu_config(eps, 1, 3000);
    ep = etcd_new(loop, &cfg);
    l2 = lease_active(ep, 1, &lo2);
    tu_run_for(loop, 500);
    tu_proxy_set_down(proxy, true);
    renewed = etcd_lease_renewed_us(l2);
    TU_RUN_UNTIL(loop, lo2.lost == 1, 4000);
    T_ASSERT(strstr(lo2.why, "no renewal confirmed"));
    T_ASSERT(lo2.lost_us + 50000 >=
             renewed + (uint64_t)etcd_lease_ttl(l2) * 1000000);

    etcd_free(ep); /* frees l2 too */
    tu_proxy_free(proxy);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

T_CASE(lease_revoke_deletes_keys_at_once)
{
    struct tu_cluster c;
    struct lease_obs lo, lo2;
    struct etcd_lease *l, *l2;
    struct etcd *e;
    struct tu_res r = {0};
    int64_t id;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 3000);
    l = lease_active(e, 60, &lo);
    id = etcd_lease_id(l);
    put_ok(e, B("rv/a"), B("1"), &(struct etcd_put_opts){.lease = id}, NULL);
    put_ok(e, B("rv/b"), B("2"), &(struct etcd_put_opts){.lease = id}, NULL);
    T_ASSERT(etcd_lease_revoke(l, tu_res_cb, &r));
    T_EQ_INT(etcd_lease_state(l), ETCD_LEASE_REVOKED);
    etcd_lease_free(l); /* the revoke does not need l */
    wait_res(&r);
    expect_ok(&r);
    range_res(e, B("rv/"), &(struct etcd_range_opts){.prefix = true}, &r);
    T_EQ_INT(r.n_kvs, 0);
    T_EQ_INT(lo.calls, 1); /* ACTIVE only */

    /* revoking a lease someone else revoked is still a success */
    l2 = lease_active(e, 60, &lo2);
    T_EQ_INT(tu_etcdctl(&c, "lease revoke %" PRIx64, etcd_lease_id(l2)), 0);
    memset(&r, 0, sizeof(r));
    T_ASSERT(etcd_lease_revoke(l2, tu_res_cb, &r));
    wait_res(&r);
    expect_ok(&r);
    etcd_lease_free(l2);

    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- election */

#define CANDIDATES 5
#define ROUNDS     200

struct candidate {
    char name[8];
    struct etcd *e;
    struct etcd_lease *l;
    struct lease_obs lo;
    struct tu_res res;
};

static void
race(struct candidate *cs, struct bytes leader)
{
    for (int i = 0; i < CANDIDATES; i++) {
        struct etcd_txn *t = etcd_txn_new();
        struct etcd_put_opts o = {.lease = etcd_lease_id(cs[i].l)};

        etcd_txn_if(t, leader, ETCD_CREATE, ETCD_EQUAL, 0);
        etcd_txn_put(t, ETCD_THEN, leader, bytes_str(cs[i].name), &o);
        etcd_txn_range(t, ETCD_ELSE, leader, NULL);
        memset(&cs[i].res, 0, sizeof(cs[i].res));
        etcd_txn_commit(cs[i].e, t, tu_res_cb, &cs[i].res);
    }
    for (int i = 0; i < CANDIDATES; i++) {
        TU_RUN_UNTIL(loop, cs[i].res.calls == 1, WAIT_MS);
        expect_ok(&cs[i].res);
    }
}

/* Checks one winner and that every loser saw it. Returns the winner. */
static int
check_round(struct candidate *cs, struct bytes leader, int64_t *epoch)
{
    int winner = -1;

    for (int i = 0; i < CANDIDATES; i++) {
        if (!cs[i].res.succeeded)
            continue;
        T_EQ_INT(winner, -1);
        winner = i;
    }
    T_ASSERT(winner >= 0);
    T_EQ_INT(cs[winner].res.resps[0].op, ETCD_OP_PUT);
    T_ASSERT(cs[winner].res.revision > *epoch);
    *epoch = cs[winner].res.revision;
    for (int i = 0; i < CANDIDATES; i++) {
        const struct tu_kv *kv = &cs[i].res.resps[0].kv0;

        if (i == winner)
            continue;
        T_EQ_INT(cs[i].res.resps[0].op, ETCD_OP_RANGE);
        T_ASSERT(tu_kv_is(kv, leader, bytes_str(cs[winner].name)));
        T_EQ_INT(kv->create_revision, *epoch);
        T_EQ_INT(kv->lease, etcd_lease_id(cs[winner].l));
    }
    return winner;
}

/* The winner steps down: deletes its key, or revokes its lease (and
 * takes a new one for the next round). */
static void
step_down(struct candidate *w, struct bytes leader, int round)
{
    struct tu_res r = {0};

    if (round % 2 == 0) {
        delete_ok(w->e, leader, NULL, &r);
        T_EQ_INT(r.count, 1);
        return;
    }
    T_ASSERT(etcd_lease_revoke(w->l, tu_res_cb, &r));
    wait_res(&r);
    expect_ok(&r);
    etcd_lease_free(w->l);
    w->l = lease_active(w->e, 30, &w->lo);
}

T_CASE(election_racing_candidates_one_winner_per_round)
{
    const struct bytes leader = B("vhost/v1/leader");
    struct candidate cs[CANDIDATES];
    int wins[CANDIDATES] = {0};
    struct tu_cluster c;
    int64_t epoch = 0;
    uint64_t t0;

    setup();
    tu_cluster_start(&c, 1);
    for (int i = 0; i < CANDIDATES; i++) {
        snprintf(cs[i].name, sizeof(cs[i].name), "node%d", i);
        cs[i].e = client_of(&c, 5000);
        cs[i].l = lease_active(cs[i].e, 30, &cs[i].lo);
    }
    t0 = wr_now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        int w;

        race(cs, leader);
        w = check_round(cs, leader, &epoch);
        wins[w]++;
        step_down(&cs[w], leader, round);
    }
    printf("%d rounds in %" PRIu64 " ms; wins:", ROUNDS, wr_now_ms() - t0);
    for (int i = 0; i < CANDIDATES; i++)
        printf(" %d", wins[i]);
    printf("\n");
    for (int i = 0; i < CANDIDATES; i++) {
        T_EQ_INT(cs[i].lo.lost, 0);
        etcd_free(cs[i].e);
    }
    tu_cluster_stop(&c);
    teardown();
}

/* ---- watches */

static void
expect_event(const struct obs_event *x, enum etcd_event_type type,
             struct bytes key, struct bytes val, bool has_prev,
             struct bytes prev)
{
    T_EQ_INT(x->type, type);
    T_ASSERT(tu_kv_is(&x->kv, key, type == ETCD_EV_PUT ? val : BYTES_NULL));
    T_EQ_INT(x->has_prev, has_prev);
    if (has_prev)
        T_ASSERT(tu_kv_is(&x->prev, key, prev));
}

/* Revisions of the writes watch_write makes. */
struct wrevs {
    int64_t a2; /* the second put of w/a */
    int64_t txn;
    int64_t del;
};

/* put a=1, a=2, b=x; delete a; txn put c=3, d=4; delete the prefix. */
static void
watch_write(struct etcd *e, struct wrevs *rv)
{
    struct etcd_txn *t = etcd_txn_new();
    struct tu_res r;

    put_ok(e, B("w/a"), B("1"), NULL, NULL);
    rv->a2 = put_ok(e, B("w/a"), B("2"), NULL, NULL);
    put_ok(e, B("w/b"), B("x"), NULL, NULL);
    delete_ok(e, B("w/a"), NULL, &r);
    etcd_txn_put(t, ETCD_THEN, B("w/c"), B("3"), NULL);
    etcd_txn_put(t, ETCD_THEN, B("w/d"), B("4"), NULL);
    txn_res(e, t, &r);
    rv->txn = r.revision;
    delete_ok(e, B("w/"), &(struct etcd_delete_opts){.prefix = true}, &r);
    T_EQ_INT(r.count, 3);
    rv->del = r.revision;
}

/* The prefix watch with prev_kv saw all of it, in order. */
static void
watch_check_prefix(const struct watch_obs *o, const struct wrevs *rv)
{
    const struct obs_event *ev = o->ev;

    T_EQ_INT(o->n, 9);
    expect_event(&ev[0], ETCD_EV_PUT, B("w/a"), B("1"), false, BYTES_NULL);
    expect_event(&ev[1], ETCD_EV_PUT, B("w/a"), B("2"), true, B("1"));
    T_EQ_INT(ev[1].kv.mod_revision, rv->a2);
    T_EQ_INT(ev[1].kv.version, 2);
    expect_event(&ev[2], ETCD_EV_PUT, B("w/b"), B("x"), false, BYTES_NULL);
    expect_event(&ev[3], ETCD_EV_DELETE, B("w/a"), BYTES_NULL, true, B("2"));
    expect_event(&ev[4], ETCD_EV_PUT, B("w/c"), B("3"), false, BYTES_NULL);
    expect_event(&ev[5], ETCD_EV_PUT, B("w/d"), B("4"), false, BYTES_NULL);
    T_EQ_INT(ev[4].kv.mod_revision, rv->txn);
    T_EQ_INT(ev[5].kv.mod_revision, rv->txn);
    expect_event(&ev[6], ETCD_EV_DELETE, B("w/b"), BYTES_NULL, true, B("x"));
    expect_event(&ev[7], ETCD_EV_DELETE, B("w/c"), BYTES_NULL, true, B("3"));
    expect_event(&ev[8], ETCD_EV_DELETE, B("w/d"), BYTES_NULL, true, B("4"));
    for (int i = 1; i < 9; i++)
        T_ASSERT(ev[i].kv.mod_revision >= ev[i - 1].kv.mod_revision);
    T_EQ_INT(ev[8].kv.mod_revision, rv->del);
}

T_CASE(watch_delivers_puts_and_deletes_in_order_with_prev_kv)
{
    struct watch_obs o1 = {0}, o2 = {0};
    struct etcd_watch *w1, *w2;
    struct tu_cluster c;
    struct wrevs rv;
    struct etcd *e;
    struct tu_res r;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 3000);
    range_res(e, B("w/"), NULL, &r);
    w1 = etcd_watch_new(
        e, B("w/"),
        &(struct etcd_watch_opts){
            .prefix = true, .start_revision = r.revision + 1, .prev_kv = true},
        watch_cb, &o1);
    w2 = etcd_watch_new(e, B("w/a"), NULL, watch_cb, &o2); /* from now */
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w2) != 0, WAIT_MS);
    watch_write(e, &rv);
    TU_RUN_UNTIL(loop, o1.n == 9 && o2.n == 3, WAIT_MS);
    watch_check_prefix(&o1, &rv);
    T_EQ_INT(etcd_watch_next_revision(w1), rv.del + 1);
    /* the single-key watch, without prev_kv */
    expect_event(&o2.ev[0], ETCD_EV_PUT, B("w/a"), B("1"), false, BYTES_NULL);
    expect_event(&o2.ev[1], ETCD_EV_PUT, B("w/a"), B("2"), false, BYTES_NULL);
    expect_event(&o2.ev[2], ETCD_EV_DELETE, B("w/a"), BYTES_NULL, false,
                 BYTES_NULL);
    tu_run_for(loop, 300);
    T_EQ_INT(o1.n, 9); /* nothing repeated */
    T_EQ_INT(o1.resets + o1.fails + o2.resets + o2.fails, 0);
    etcd_watch_free(w1);
    etcd_watch_free(w2);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- a watch catching up on more than a message may weigh */

#define BIG_TXNS  60
#define BIG_PUTS  10
#define BIG_VALUE 2000

struct big_obs {
    int calls;
    int n;
    int64_t last_rev;
    bool split; /* a revision was delivered in two callbacks */
    bool bad;   /* an event out of order or not the one expected */
};

static void
big_cb(void *arg, const struct etcd_watch_update *u)
{
    struct big_obs *o = arg;

    o->calls++;
    if (u->kind != ETCD_WATCH_EVENTS) {
        o->bad = true;
        return;
    }
    for (size_t i = 0; i < u->n_events; i++) {
        const struct etcd_kv *kv = &u->events[i].kv;
        char key[16];

        snprintf(key, sizeof(key), "big/%04d", o->n++);
        o->split |= i == 0 && kv->mod_revision == o->last_rev;
        o->bad |= kv->mod_revision < o->last_rev ||
                  !bytes_eq_str(kv->key, key) || kv->value.len != BIG_VALUE;
        o->last_rev = kv->mod_revision;
    }
}

/* 60 revisions of 10 puts of 2000 bytes each: about 2 MB of JSON. */
static void
big_write(struct etcd *e)
{
    static uint8_t value[BIG_VALUE];

    memset(value, 'v', sizeof(value));
    for (int t = 0; t < BIG_TXNS; t++) {
        struct etcd_txn *txn = etcd_txn_new();
        struct tu_res r;

        for (int i = 0; i < BIG_PUTS; i++) {
            char key[16];

            snprintf(key, sizeof(key), "big/%04d", t * BIG_PUTS + i);
            etcd_txn_put(txn, ETCD_THEN, bytes_str(key),
                         bytes_of(value, sizeof(value)), NULL);
        }
        txn_res(e, txn, &r);
    }
}

/* etcd sends a catch-up as one response (up to 1000 revisions), here
 * about 2 MB, over the watching client's 1 MiB limit. Fragments (with a
 * 32 KiB request limit, about 550 KiB each) get through, a revision
 * split over two fragments is delivered whole, and every event once. */
T_CASE(watch_catch_up_bigger_than_the_response_limit)
{
    static const char *const extra[] = {"--max-request-bytes", "32768", NULL};
    struct big_obs o = {0};
    struct etcd_config cfg;
    struct etcd_watch *w;
    struct tu_cluster c;
    struct etcd *e, *we;
    struct tu_res r;

    setup();
    tu_cluster_start_with(&c, 1, extra);
    e = client_of(&c, 5000);
    range_res(e, B("big/"), NULL, &r);
    big_write(e);
    cfg = tu_config(c.endpoints, 1, 5000);
    cfg.max_response = 1u << 20;
    we = etcd_new(loop, &cfg);
    w = etcd_watch_new(we, B("big/"),
                       &(struct etcd_watch_opts){
                           .prefix = true, .start_revision = r.revision + 1},
                       big_cb, &o);
    TU_RUN_UNTIL(loop, o.n >= BIG_TXNS * BIG_PUTS || o.bad, WAIT_MS);
    tu_run_for(loop, 200);
    T_ASSERT(!o.bad);
    T_ASSERT(!o.split);
    T_EQ_INT(o.n, BIG_TXNS * BIG_PUTS);
    T_ASSERT(o.calls >= 3); /* it came in fragments */
    T_EQ_INT(etcd_watch_next_revision(w), o.last_rev + 1);
    etcd_free(we);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- compaction and follow */

#define MODEL_MAX 1200

struct model {
    int snapshots;
    int event_batches;
    int64_t revision;
    size_t n;
    struct {
        char key[32];
        char val[32];
    } kv[MODEL_MAX];
};

static int
model_find(const struct model *m, struct bytes key)
{
    for (size_t i = 0; i < m->n; i++) {
        if (bytes_eq_str(key, m->kv[i].key))
            return (int)i;
    }
    return -1;
}

static void
model_put(struct model *m, struct bytes key, struct bytes val)
{
    int i = model_find(m, key);

    T_ASSERT(key.len < 32 && val.len < 32);
    if (i < 0) {
        T_ASSERT(m->n < MODEL_MAX);
        i = (int)m->n++;
        snprintf(m->kv[i].key, 32, "%.*s", BYTES_FMT(key));
    }
    snprintf(m->kv[i].val, 32, "%.*s", BYTES_FMT(val));
}

static void
model_del(struct model *m, struct bytes key)
{
    int i = model_find(m, key);

    T_ASSERT(i >= 0); /* a delete of something we never saw: a gap */
    m->kv[i] = m->kv[--m->n];
}

static void
follow_cb(void *arg, const struct etcd_follow_update *u)
{
    struct model *m = arg;

    if (u->kind == ETCD_FOLLOW_SNAPSHOT) {
        m->snapshots++;
        m->n = 0;
        for (size_t i = 0; i < u->n_kvs; i++)
            model_put(m, u->kvs[i].key, u->kvs[i].value);
        T_ASSERT(u->revision > m->revision);
        m->revision = u->revision;
        return;
    }
    m->event_batches++;
    for (size_t i = 0; i < u->n_events; i++) {
        const struct etcd_event *ev = &u->events[i];

        T_ASSERT(ev->kv.mod_revision > m->revision ||
                 (i > 0 && ev->kv.mod_revision == m->revision));
        m->revision = ev->kv.mod_revision;
        if (ev->type == ETCD_EV_PUT)
            model_put(m, ev->kv.key, ev->kv.value);
        else
            model_del(m, ev->kv.key);
    }
}

static bool
model_has(const struct model *m, const char *key, const char *val)
{
    int i = model_find(m, bytes_str(key));

    if (!val)
        return i < 0;
    return i >= 0 && strcmp(m->kv[i].val, val) == 0;
}

struct compare {
    const struct model *m;
    int calls;
    bool equal;
};

static void
compare_cb(void *arg, const struct etcd_result *r)
{
    struct compare *c = arg;

    c->calls++;
    c->equal = r->status == ETCD_OK && r->n_kvs == c->m->n;
    for (size_t i = 0; c->equal && i < r->n_kvs; i++) {
        int j = model_find(c->m, r->kvs[i].key);

        c->equal = j >= 0 && bytes_eq_str(r->kvs[i].value, c->m->kv[j].val);
    }
}

/* The model equals what etcd holds under prefix now. */
static void
expect_model_is_etcd(struct etcd *e, const struct model *m, const char *pfx)
{
    struct compare cmp = {.m = m};

    etcd_range(e, bytes_str(pfx), &(struct etcd_range_opts){.prefix = true},
               compare_cb, &cmp);
    TU_RUN_UNTIL(loop, cmp.calls == 1, WAIT_MS);
    T_ASSERT(cmp.equal);
}

/* 1100 keys f/0000.. in txns of 100 puts. */
static void
bulk_load(struct etcd *e)
{
    for (int b = 0; b < 11; b++) {
        struct etcd_txn *t = etcd_txn_new();
        struct tu_res r;

        for (int i = 0; i < 100; i++) {
            char k[16];

            snprintf(k, sizeof(k), "f/%04d", b * 100 + i);
            etcd_txn_put(t, ETCD_THEN, bytes_str(k), B("v0"), NULL);
        }
        txn_res(e, t, &r);
        T_ASSERT(r.succeeded);
    }
}

static void
compact_now(struct etcd *e)
{
    struct tu_res r;
    int64_t rev;

    range_res(e, B("any"), NULL, &r);
    expect_ok(&r);
    rev = r.revision;
    memset(&r, 0, sizeof(r));
    etcd_compact(e, rev, tu_res_cb, &r);
    wait_res(&r);
    expect_ok(&r);
}

/* A watch from a compacted revision is reset, with the compact revision,
 * and delivers nothing. */
static void
check_watch_reset(struct etcd *e)
{
    struct watch_obs o = {0};
    struct etcd_watch *w;
    struct tu_res r = {0};
    int64_t last = 0;

    for (int i = 0; i < 3; i++)
        last = put_ok(e, B("c/k"), B("v"), NULL, NULL);
    etcd_compact(e, last, tu_res_cb, &r);
    wait_res(&r);
    expect_ok(&r);
    w = etcd_watch_new(
        e, B("c/"),
        &(struct etcd_watch_opts){.prefix = true, .start_revision = 2},
        watch_cb, &o);
    TU_RUN_UNTIL(loop, o.calls == 1, WAIT_MS);
    T_EQ_INT(o.resets, 1);
    T_EQ_INT(o.compact_revision, last);
    T_EQ_INT(o.n, 0);
    tu_run_for(loop, 200);
    T_EQ_INT(o.calls, 1); /* RESET is final */
    etcd_watch_free(w);
}

T_CASE(compaction_resets_watch_and_follow_recovers)
{
    static struct model m;
    struct tu_proxy *proxy;
    struct etcd_follow *f;
    struct tu_cluster c;
    struct etcd *e, *fe;
    struct etcd_config cfg;
    struct tu_res r;
    char url[64];
    const char *eps[1] = {url};

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 5000);
    check_watch_reset(e);

    /* the follower reaches etcd through a proxy the test can cut */
    proxy = tu_proxy_new(loop, c.m[0].client_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", tu_proxy_port(proxy));
    cfg = tu_config(eps, 1, 2000);
    fe = etcd_new(loop, &cfg);
    bulk_load(e);
    f = etcd_follow_new(fe, B("f/"), follow_cb, &m);
    TU_RUN_UNTIL(loop, m.snapshots == 1, WAIT_MS);
    T_EQ_INT(m.n, 1100); /* read in three pages, at one revision */
    expect_model_is_etcd(e, &m, "f/");

    put_ok(e, B("f/new1"), B("n1"), NULL, NULL);
    delete_ok(e, B("f/0001"), NULL, &r);
    TU_RUN_UNTIL(loop,
                 model_has(&m, "f/new1", "n1") && model_has(&m, "f/0001", NULL),
                 WAIT_MS);

    /* cut off: changes and a compaction happen behind its back */
    tu_proxy_set_down(proxy, true);
    put_ok(e, B("f/new2"), B("n2"), NULL, NULL);
    delete_ok(e, B("f/0002"), NULL, &r);
    put_ok(e, B("f/0003"), B("changed"), NULL, NULL);
    compact_now(e);
    tu_run_for(loop, 300);
    T_EQ_INT(m.snapshots, 1);
    tu_proxy_set_down(proxy, false);

    /* the watch resumes at a compacted revision: reset, read again */
    TU_RUN_UNTIL(loop, m.snapshots == 2, WAIT_MS);
    T_ASSERT(model_has(&m, "f/new2", "n2") && model_has(&m, "f/0002", NULL) &&
             model_has(&m, "f/0003", "changed"));
    expect_model_is_etcd(e, &m, "f/");
    put_ok(e, B("f/new3"), B("n3"), NULL, NULL);
    delete_ok(e, B("f/0004"), NULL, &r);
    TU_RUN_UNTIL(loop,
                 model_has(&m, "f/new3", "n3") && model_has(&m, "f/0004", NULL),
                 WAIT_MS);
    expect_model_is_etcd(e, &m, "f/");

    etcd_follow_free(f);
    etcd_free(fe);
    tu_proxy_free(proxy);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

struct big_follow {
    int snapshots;
    size_t n_kvs;
    size_t events;
    bool bad;
};

static void
big_follow_cb(void *arg, const struct etcd_follow_update *u)
{
    struct big_follow *b = arg;

    if (u->kind == ETCD_FOLLOW_SNAPSHOT) {
        b->snapshots++;
        b->n_kvs = u->n_kvs;
        for (size_t i = 0; i < u->n_kvs; i++)
            b->bad |= u->kvs[i].value.len != 20000;
        return;
    }
    b->events += u->n_events;
}

/* Pages of 500 keys of 20 kB do not fit a 64 KiB limit: the follow reads
 * with smaller pages until they do. */
T_CASE(follow_pages_shrink_to_fit_the_response_limit)
{
    static uint8_t value[20000];
    struct big_follow b = {0};
    struct etcd_config cfg;
    struct etcd_follow *f;
    struct tu_cluster c;
    struct etcd *e, *fe;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 5000);
    memset(value, 'x', sizeof(value));
    for (int i = 0; i < 10; i++) {
        char k[16];

        snprintf(k, sizeof(k), "fb/%d", i);
        put_ok(e, bytes_str(k), bytes_of(value, sizeof(value)), NULL, NULL);
    }
    cfg = tu_config(c.endpoints, 1, 5000);
    cfg.max_response = 64u << 10;
    fe = etcd_new(loop, &cfg);
    f = etcd_follow_new(fe, B("fb/"), big_follow_cb, &b);
    TU_RUN_UNTIL(loop, b.snapshots == 1, WAIT_MS);
    T_EQ_INT(b.n_kvs, 10);
    T_ASSERT(!b.bad);
    put_ok(e, B("fb/new"), bytes_of(value, sizeof(value)), NULL, NULL);
    TU_RUN_UNTIL(loop, b.events == 1, WAIT_MS);
    etcd_follow_free(f);
    etcd_free(fe);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- faults */

T_CASE(member_restart_keeps_watch_and_lease)
{
    struct watch_obs o = {0};
    struct etcd_watch *w;
    struct tu_cluster c;
    struct lease_obs lo;
    struct etcd_lease *l;
    struct tu_res r = {0};
    struct etcd *e;
    uint64_t t0, restarted;
    int64_t last = 0;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 1000);
    l = lease_active(e, 10, &lo);
    put_ok(e, B("r/lease"), B("mine"),
           &(struct etcd_put_opts){.lease = etcd_lease_id(l)}, NULL);
    w = etcd_watch_new(e, B("r/"), &(struct etcd_watch_opts){.prefix = true},
                       watch_cb, &o);
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w) != 0, WAIT_MS);
    for (int i = 1; i <= 3; i++)
        put_numbered(e, "r/", i);
    TU_RUN_UNTIL(loop, o.n == 3, WAIT_MS);

    tu_member_kill(&c, 0);
    tu_run_for(loop, 100);
    /* during the outage: clean errors within the request timeout */
    t0 = wr_now_ms();
    range_res(e, B("r/1"), NULL, &r);
    T_EQ_INT(r.status, ETCD_E_UNAVAILABLE);
    T_ASSERT(r.at_ms - t0 >= 900 && r.at_ms - t0 <= 1500);
    memset(&r, 0, sizeof(r));
    etcd_put(e, B("r/lost"), B("x"), NULL, tu_res_cb, &r);
    wait_res(&r);
    T_EQ_INT(r.status, ETCD_E_UNAVAILABLE); /* never sent: not applied */

    restarted = wr_now_us();
    tu_member_restart(&c, 0);
    for (int i = 4; i <= 6; i++)
        last = put_numbered(e, "r/", i);
    TU_RUN_UNTIL(loop, o.n == 6, WAIT_MS);
    tu_run_for(loop, 200);
    expect_numbered_puts(&o, "r/", 6);
    T_EQ_INT(etcd_watch_next_revision(w), last + 1);
    T_EQ_INT(o.resets + o.fails, 0);
    T_ASSERT(!exists(e, B("r/lost")));

    /* the lease survived and is renewed again */
    TU_RUN_UNTIL(loop, etcd_lease_renewed_us(l) > restarted, WAIT_MS);
    T_EQ_INT(lo.lost, 0);
    T_ASSERT(exists(e, B("r/lease")));

    etcd_free(e); /* with the watch and the lease */
    tu_cluster_stop(&c);
    teardown();
}

static int
member_of(const struct tu_cluster *c, const char *endpoint)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->m[i].url + strlen("http://"), endpoint) == 0)
            return i;
    }
    t_fail(__FILE__, __LINE__, "no member at %s", endpoint);
}

T_CASE(failover_to_another_member)
{
    struct watch_obs o = {0};
    struct etcd_watch *w;
    struct tu_cluster c;
    struct lease_obs lo;
    struct etcd_lease *l;
    struct tu_res r;
    struct etcd *e;
    uint64_t killed;
    int victim;

    setup();
    tu_cluster_start(&c, 3);
    e = client_of(&c, 5000);
    l = lease_active(e, 5, &lo);
    w = etcd_watch_new(e, B("fo/"), &(struct etcd_watch_opts){.prefix = true},
                       watch_cb, &o);
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w) != 0, WAIT_MS);
    for (int i = 1; i <= 5; i++)
        put_numbered(e, "fo/", i);

    victim = member_of(&c, etcd_endpoint(e));
    tu_member_kill(&c, victim);
    killed = wr_now_us();
    range_res(e, B("fo/1"), NULL, &r); /* a read fails over at once */
    expect_ok(&r);
    T_EQ_INT(r.n_kvs, 1);
    T_ASSERT(member_of(&c, etcd_endpoint(e)) != victim);
    for (int i = 6; i <= 25; i++)
        put_numbered(e, "fo/", i);
    TU_RUN_UNTIL(loop, o.n == 25, WAIT_MS);
    tu_run_for(loop, 200);
    expect_numbered_puts(&o, "fo/", 25);
    TU_RUN_UNTIL(loop, etcd_lease_renewed_us(l) > killed, WAIT_MS);
    T_EQ_INT(lo.lost, 0);

    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* A member that is stopped (SIGSTOP: its kernel still accepts and ACKs)
 * is left after an attempt timeout, within the request's deadline; the
 * watch streaming from it moves too. */
T_CASE(frozen_member_is_left_within_the_deadline)
{
    struct watch_obs o = {0};
    struct etcd_watch *w;
    struct tu_cluster c;
    struct lease_obs lo;
    struct etcd_lease *l;
    struct tu_res r;
    struct etcd *e;
    uint64_t t0;
    int victim;

    setup();
    tu_cluster_start(&c, 3);
    e = client_of(&c, 5000);
    l = lease_active(e, 5, &lo);
    w = etcd_watch_new(e, B("fz/"), &(struct etcd_watch_opts){.prefix = true},
                       watch_cb, &o);
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w) != 0, WAIT_MS);
    for (int i = 1; i <= 3; i++)
        put_numbered(e, "fz/", i);
    victim = member_of(&c, etcd_endpoint(e));
    tu_member_signal(&c, victim, SIGSTOP);
    t0 = wr_now_ms();
    range_res(e, B("fz/1"), NULL, &r);
    expect_ok(&r);
    T_ASSERT(r.at_ms - t0 < 5000);
    T_ASSERT(member_of(&c, etcd_endpoint(e)) != victim);
    for (int i = 4; i <= 10; i++)
        put_numbered(e, "fz/", i);
    TU_RUN_UNTIL(loop, o.n == 10, WAIT_MS); /* while it is still stopped */
    tu_member_signal(&c, victim, SIGCONT);
    tu_run_for(loop, 300);
    expect_numbered_puts(&o, "fz/", 10);
    T_EQ_INT(lo.lost, 0);
    T_ASSERT(etcd_lease_state(l) == ETCD_LEASE_ACTIVE);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* Without quorum a write is refused ("no leader", before anything is
 * proposed) or cannot connect: UNAVAILABLE, never UNKNOWN. Quorum back,
 * everything resumes and the watch misses nothing. */
T_CASE(quorum_loss_refuses_writes_then_recovers)
{
    struct watch_obs o = {0};
    struct etcd_watch *w;
    struct tu_cluster c;
    struct tu_res r = {0};
    struct etcd *e;

    setup();
    tu_cluster_start(&c, 3);
    e = client_of(&c, 1500);
    w = etcd_watch_new(e, B("q/"), &(struct etcd_watch_opts){.prefix = true},
                       watch_cb, &o);
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w) != 0, WAIT_MS);
    put_numbered(e, "q/", 1);
    put_numbered(e, "q/", 2);

    tu_member_kill(&c, 1);
    tu_member_kill(&c, 2);
    tu_run_for(loop, 1500); /* the survivor finds it has no leader */
    etcd_put(e, B("q/lost"), B("x"), NULL, tu_res_cb, &r);
    wait_res(&r);
    if (r.status != ETCD_E_UNAVAILABLE)
        t_fail(__FILE__, __LINE__, "put without quorum: %d (%s)", r.status,
               r.error);

    tu_member_restart(&c, 1);
    put_numbered(e, "q/", 3);
    put_numbered(e, "q/", 4);
    TU_RUN_UNTIL(loop, o.n == 4, WAIT_MS);
    tu_run_for(loop, 200);
    expect_numbered_puts(&o, "q/", 4);
    T_ASSERT(!exists(e, B("q/lost")));

    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

/* ---- hostile server */

struct hostile_case {
    enum tu_fake_mode mode;
    enum etcd_status read; /* what a range gets */
};

static struct etcd *
client_of_fake(const struct tu_fake *f, char *url, size_t n)
{
    const char *eps[1] = {url};
    struct etcd_config cfg = tu_config(eps, 1, 800);

    snprintf(url, n, "127.0.0.1:%d", tu_fake_port(f));
    cfg.max_response = 64u << 10;
    return etcd_new(loop, &cfg);
}

static void
check_hostile(const struct hostile_case *hc)
{
    struct tu_fake *f = tu_fake_new(loop, hc->mode);
    struct tu_res r = {0}, w = {0};
    struct lease_obs lo = {0};
    struct etcd_lease *l;
    char url[64];
    struct etcd *e = client_of_fake(f, url, sizeof(url));
    uint64_t t0 = wr_now_ms();

    etcd_range(e, B("k"), NULL, tu_res_cb, &r);
    etcd_put(e, B("k"), B("v"), NULL, tu_res_cb, &w);
    l = etcd_lease_new(e, 5, lease_cb, &lo);
    TU_RUN_UNTIL(loop, r.calls && w.calls && lo.calls, 3000);
    if (r.status != hc->read)
        t_fail(__FILE__, __LINE__, "mode %d: range got %d (%s)", hc->mode,
               r.status, r.error);
    /* a write that reached the server and got no usable answer */
    if (w.status != ETCD_E_UNKNOWN)
        t_fail(__FILE__, __LINE__, "mode %d: put got %d (%s)", hc->mode,
               w.status, w.error);
    T_EQ_INT(lo.lost, 1);
    T_ASSERT(wr_now_ms() - t0 < 800 + 1000);
    if (hc->mode == FAKE_ENDLESS) /* it stopped reading at the limit */
        T_ASSERT(tu_fake_sent(f) >= (64u << 10) &&
                 tu_fake_sent(f) < (16u << 20));
    etcd_lease_free(l);
    etcd_free(e);
    tu_fake_free(f);
}

T_CASE(hostile_server_answers_are_errors)
{
    static const struct hostile_case cases[] = {
        {FAKE_GARBAGE, ETCD_E_PROTOCOL},
        {FAKE_TRUNCATED, ETCD_E_UNAVAILABLE}, /* retried to the deadline */
        {FAKE_ENDLESS, ETCD_E_PROTOCOL},
        {FAKE_HUGE_LENGTH, ETCD_E_PROTOCOL},
        {FAKE_NOT_JSON, ETCD_E_PROTOCOL},
        {FAKE_BAD_TYPES, ETCD_E_PROTOCOL},
        {FAKE_BAD_BASE64, ETCD_E_PROTOCOL},
        {FAKE_SILENT, ETCD_E_UNAVAILABLE}, /* the deadline */
        {FAKE_HTML_404, ETCD_E_PROTOCOL},
    };

    setup();
    for (size_t i = 0; i < WR_ARRAY_LEN(cases); i++)
        check_hostile(&cases[i]);
    teardown();
}

/* The retry rule, counted on the server: a write whose connection broke
 * after it was sent reaches the server once (UNKNOWN); a read is sent
 * again and again until its deadline. */
T_CASE(sent_write_is_never_sent_twice)
{
    struct tu_fake *f;
    struct tu_res r = {0};
    struct etcd *e;
    char url[64];

    setup();
    f = tu_fake_new(loop, FAKE_TRUNCATED);
    e = client_of_fake(f, url, sizeof(url));
    etcd_put(e, B("k"), B("v"), NULL, tu_res_cb, &r);
    wait_res(&r);
    T_EQ_INT(r.status, ETCD_E_UNKNOWN);
    T_ASSERT(strstr(r.error, "outcome unknown"));
    tu_run_for(loop, 300);
    T_EQ_INT(tu_fake_accepted(f), 1);
    memset(&r, 0, sizeof(r));
    etcd_range(e, B("k"), NULL, tu_res_cb, &r);
    wait_res(&r);
    T_EQ_INT(r.status, ETCD_E_UNAVAILABLE);
    T_ASSERT(tu_fake_accepted(f) >= 3);
    etcd_free(e);
    tu_fake_free(f);
    teardown();
}

T_CASE(hostile_watch_stream_reconnects_without_events)
{
    static const enum tu_fake_mode modes[] = {FAKE_WATCH_JUNK, FAKE_GARBAGE,
                                              FAKE_ENDLESS, FAKE_NOT_JSON};

    setup();
    for (size_t i = 0; i < WR_ARRAY_LEN(modes); i++) {
        struct tu_fake *f = tu_fake_new(loop, modes[i]);
        struct watch_obs o = {0};
        struct etcd_watch *w;
        char url[64];
        struct etcd *e = client_of_fake(f, url, sizeof(url));

        w = etcd_watch_new(e, B("x/"),
                           &(struct etcd_watch_opts){.prefix = true}, watch_cb,
                           &o);
        TU_RUN_UNTIL(loop, tu_fake_accepted(f) >= 3, 5000);
        T_EQ_INT(o.calls, 0);
        etcd_watch_free(w);
        etcd_free(e);
        tu_fake_free(f);
    }
    teardown();
}

/* ---- cancel and free */

struct counter {
    int calls;
};

static void
count_cb(void *arg, const struct etcd_result *r)
{
    ((struct counter *)arg)->calls++;
}

static void
count_watch_cb(void *arg, const struct etcd_watch_update *u)
{
    ((struct counter *)arg)->calls++;
}

static void
count_lease_cb(void *arg, struct etcd_lease *l, enum etcd_lease_state st,
               const char *why)
{
    ((struct counter *)arg)->calls++;
}

static void
count_follow_cb(void *arg, const struct etcd_follow_update *u)
{
    ((struct counter *)arg)->calls++;
}

/* Frees the client given as arg from inside a callback. */
struct freeing {
    struct etcd *e;
    int calls;
};

static void
free_client_cb(void *arg, const struct etcd_result *r)
{
    struct freeing *x = arg;

    x->calls++;
    etcd_free(x->e);
}

struct canceling {
    struct etcd_req *victim;
    int calls;
};

static void
cancel_other_cb(void *arg, const struct etcd_result *r)
{
    struct canceling *x = arg;

    x->calls++;
    etcd_cancel(x->victim);
}

static void
free_watch_cb(void *arg, const struct etcd_watch_update *u)
{
    struct etcd_watch **w = arg;

    etcd_watch_free(*w);
    *w = NULL;
}

/* Requests cancelled before and after their first attempt never call. */
static void
check_cancel(struct etcd *e, struct counter *n)
{
    struct etcd_req *reqs[40];

    for (int i = 0; i < 40; i++) {
        char k[16];

        snprintf(k, sizeof(k), "cx/%d", i);
        reqs[i] = i % 2 ? etcd_range(e, bytes_str(k), NULL, count_cb, n)
                        : etcd_put(e, bytes_str(k), B("v"), NULL, count_cb, n);
        if (i < 20)
            etcd_cancel(reqs[i]); /* before the first attempt */
    }
    ev_run(loop, EVRUN_NOWAIT); /* the rest connect and are sent */
    for (int i = 20; i < 40; i++)
        etcd_cancel(reqs[i]);
    tu_run_for(loop, 300);
    T_EQ_INT(n->calls, 0);
}

/* A client freed with requests, a watch and a lease outstanding on a
 * server that never answers: nothing calls, even past the deadlines. */
static void
check_free_outstanding(struct counter *n)
{
    struct tu_fake *silent = tu_fake_new(loop, FAKE_SILENT);
    char url[64];
    struct etcd *b = client_of_fake(silent, url, sizeof(url));

    for (int i = 0; i < 8; i++)
        etcd_range(b, B("k"), NULL, count_cb, n);
    etcd_watch_new(b, B("k"), NULL, count_watch_cb, n);
    etcd_lease_new(b, 5, count_lease_cb, n);
    tu_run_for(loop, 100);
    etcd_free(b);
    tu_run_for(loop, 1000);
    T_EQ_INT(n->calls, 0);
    tu_fake_free(silent);
}

/* The same with a real etcd: watch, lease, follow and a put in flight. */
static void
check_free_live(struct tu_cluster *c, struct etcd *e, struct counter *n)
{
    struct etcd *b = client_of(c, 3000);

    put_ok(e, B("cf/a"), B("1"), NULL, NULL);
    etcd_watch_new(b, B("cf/"), &(struct etcd_watch_opts){.prefix = true},
                   count_watch_cb, n);
    etcd_lease_new(b, 5, count_lease_cb, n);
    etcd_follow_new(b, B("cf/"), count_follow_cb, n);
    etcd_put(b, B("cf/b"), B("2"), NULL, count_cb, n);
    ev_run(loop, EVRUN_NOWAIT);
    etcd_free(b);
    put_ok(e, B("cf/c"), B("3"), NULL, NULL);
    tu_run_for(loop, 500);
    T_EQ_INT(n->calls, 0);
}

/* Freeing the client inside a callback stops the other requests. */
static void
check_free_in_callback(struct tu_cluster *c)
{
    struct freeing fr = {.e = client_of(c, 3000)};

    for (int i = 0; i < 5; i++)
        etcd_range(fr.e, B("cf/a"), NULL, free_client_cb, &fr);
    TU_RUN_UNTIL(loop, fr.calls > 0, WAIT_MS);
    tu_run_for(loop, 300);
    T_EQ_INT(fr.calls, 1);
}

/* Cancelling an in-flight request (one that would time out after 800 ms)
 * inside another's callback. */
static void
check_cancel_in_callback(struct etcd *e, struct counter *n)
{
    struct tu_fake *silent = tu_fake_new(loop, FAKE_SILENT);
    struct canceling cx = {0};
    struct tu_res r = {0};
    char url[64];
    struct etcd *b = client_of_fake(silent, url, sizeof(url));

    cx.victim = etcd_range(b, B("k"), NULL, count_cb, n);
    TU_RUN_UNTIL(loop, tu_fake_accepted(silent) == 1, WAIT_MS);
    etcd_range(e, B("cf/a"), NULL, cancel_other_cb, &cx);
    etcd_range(e, B("cf/a"), NULL, tu_res_cb, &r);
    TU_RUN_UNTIL(loop, cx.calls == 1 && r.calls == 1, WAIT_MS);
    tu_run_for(loop, 1000);
    T_EQ_INT(n->calls, 0);
    etcd_free(b);
    tu_fake_free(silent);
}

/* A watch freed inside its own callback gets no more. */
static void
check_watch_free_in_callback(struct etcd *e)
{
    struct etcd_watch *w;

    w = etcd_watch_new(e, B("cw/"), &(struct etcd_watch_opts){.prefix = true},
                       free_watch_cb, &w);
    TU_RUN_UNTIL(loop, etcd_watch_next_revision(w) != 0, WAIT_MS);
    put_ok(e, B("cw/1"), B("1"), NULL, NULL);
    TU_RUN_UNTIL(loop, w == NULL, WAIT_MS);
    put_ok(e, B("cw/2"), B("2"), NULL, NULL);
    tu_run_for(loop, 200);
}

T_CASE(cancel_and_free_fire_no_callback)
{
    struct counter n = {0};
    struct tu_cluster c;
    struct etcd *e;

    setup();
    tu_cluster_start(&c, 1);
    e = client_of(&c, 3000);
    check_cancel(e, &n);
    check_free_outstanding(&n);
    check_free_live(&c, e, &n);
    check_free_in_callback(&c);
    check_cancel_in_callback(e, &n);
    check_watch_free_in_callback(e);
    etcd_free(e);
    tu_cluster_stop(&c);
    teardown();
}

static const struct t_case cases[] = {
    T_REG(endpoints_are_numeric_and_checked),
    T_REG(prefix_end_increments_the_last_byte_below_0xff),
    T_REG(kv_roundtrip_binary_keys_and_values),
    T_REG(txn_compares_create_mod_value_version_lease),
    T_REG(lease_keepalive_keeps_key_past_several_ttls),
    T_REG(lease_loss_is_reported),
    T_REG(lease_revoke_deletes_keys_at_once),
    T_REG(election_racing_candidates_one_winner_per_round),
    T_REG(watch_delivers_puts_and_deletes_in_order_with_prev_kv),
    T_REG(watch_catch_up_bigger_than_the_response_limit),
    T_REG(compaction_resets_watch_and_follow_recovers),
    T_REG(follow_pages_shrink_to_fit_the_response_limit),
    T_REG(member_restart_keeps_watch_and_lease),
    T_REG(failover_to_another_member),
    T_REG(frozen_member_is_left_within_the_deadline),
    T_REG(quorum_loss_refuses_writes_then_recovers),
    T_REG(hostile_server_answers_are_errors),
    T_REG(sent_write_is_never_sent_twice),
    T_REG(hostile_watch_stream_reconnects_without_events),
    T_REG(cancel_and_free_fire_no_callback),
};

T_MAIN(cases)
