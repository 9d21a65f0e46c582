/*
 * cluster.c: joining and leaving the cluster, and the node's lease.
 *
 * Joining (cluster_start), one etcd step after the other:
 *   1. the data directory's cluster.json says which cluster and node it
 *      belongs to (absent on a first start);
 *   2. P/id is created (with the data directory's id, else a random
 *      one) unless it exists, then read: a data directory that belongs to
 *      another cluster, or to another node, refuses the start;
 *   3. P/secret likewise, unless cluster.secret is configured;
 *   4. the node's lease is granted and its P/nodes key written
 *      (member.c): a live node holding the name with another data
 *      directory refuses the start; this node's own key from before a
 *      crash is taken over;
 *   5. the follows of P/nodes/, P/members/ and P/vhosts/ deliver their
 *      first snapshots.
 * Steps 2 and 3 are tried start_attempts times, start_interval_ms apart,
 * while etcd cannot be reached (each try gives up after
 * CLUSTER_REQUEST_MS); then the start fails, saying so. Those
 * transactions are create-if-absent-then-read, so trying again after an
 * unknown outcome is safe.
 *
 * Running: a timer (CLUSTER_TICK_S) checks the lease. Past the last
 * confirmed renewal + TTL - CLUSTER_FENCE_MARGIN_US the node stops
 * leading (placement__unlead_all) and counts as unavailable; when the
 * lease is lost for good, it takes a new one and registers again, and
 * the vhosts whose home it is come back to it by election.
 */
#include "cluster/cluster_int.h"

#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void join_id(struct cluster *c);

const char *
cluster__jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

struct bytes
cluster__key(const struct cluster *c, struct buf *b, const char *fmt, ...)
{
    va_list ap;
    char tail[512];

    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    buf_reset(b);
    buf_printf(b, "%s%s", c->prefix, tail);
    return buf_bytes(b);
}

int64_t
cluster__lease_id(const struct cluster *c)
{
    return c->lease ? etcd_lease_id(c->lease) : 0;
}

static void fail(struct cluster *c, const char *fmt, ...) WR_PRINTF(2, 3);

static void
fail(struct cluster *c, const char *fmt, ...)
{
    va_list ap;

    if (c->state == CS_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->state = CS_FAILED;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void
random_hex(char *out, size_t nbytes)
{
    uint8_t r[32];

    WR_ASSERT(nbytes <= sizeof(r));
    wr_random(r, nbytes);
    hex(r, nbytes, out);
}

/* ---- step 1: the data directory's cluster.json */

static void
path_of(const struct cluster *c, char *out, size_t n)
{
    snprintf(out, n, "%s/cluster.json", c->data_dir);
}

/* Reads cluster.json into *doc (NULL when absent). WR_ERR: unreadable. */
static int
read_identity(struct cluster *c, json_t **doc)
{
    char path[4200], err[256];
    struct buf b;
    json_error_t je;
    int rc = WR_OK;

    *doc = NULL;
    path_of(c, path, sizeof(path));
    buf_init(&b);
    if (store_read_file(path, &b, err, sizeof(err)) != WR_OK) {
        if (errno != ENOENT) {
            fail(c, "%s", err);
            rc = WR_ERR;
        }
    } else if (!(*doc = json_loadb((const char *)b.data, b.len, 0, &je)) ||
               !json_is_object(*doc)) {
        fail(c,
             "%s: not a JSON object (%s); it says which cluster the "
             "data directory belongs to",
             path, je.text);
        json_decref(*doc);
        *doc = NULL;
        rc = WR_ERR;
    }
    buf_fini(&b);
    return rc;
}

static int
write_identity(struct cluster *c)
{
    char path[4200], err[512];
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s}", "cluster", c->prefix, "cluster_id",
                  c->id, "node", c->node_name, "data_id", c->data_id);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc;

    path_of(c, path, sizeof(path));
    rc = store_write_file_atomic(path, text, strlen(text), err, sizeof(err));
    if (rc != WR_OK)
        fail(c, "%s", err);
    free(text);
    json_decref(doc);
    return rc;
}

/* The id and node the data directory already belongs to must be this
 * cluster's and this node's. */
static int
check_identity(struct cluster *c, const json_t *doc)
{
    const char *id = cluster__jstr(doc, "cluster_id");
    const char *node = cluster__jstr(doc, "node");

    if (strcmp(id, c->id) != 0 ||
        strcmp(cluster__jstr(doc, "cluster"), c->prefix) != 0) {
        fail(c,
             "data directory %s belongs to another cluster (id %s, %s), "
             "not to %s (id %s): start this node with its own data_dir",
             c->data_dir, id, cluster__jstr(doc, "cluster"), c->prefix, c->id);
        return WR_ERR;
    }
    if (strcmp(node, c->node_name) != 0) {
        fail(c,
             "data directory %s belongs to node '%s', not '%s': set "
             "cluster.node_name = %s, or use another data_dir",
             c->data_dir, node, c->node_name, node);
        return WR_ERR;
    }
    return WR_OK;
}

/* ---- steps 2 and 3: create-if-absent, then read */

/* Retries `step` after the interval, or fails the start. */
static void
retry_or_fail(struct cluster *c, const char *what, const struct etcd_result *r,
              void (*step)(struct cluster *))
{
    if (c->attempts_left > 1 &&
        (r->status == ETCD_E_UNAVAILABLE || r->status == ETCD_E_UNKNOWN)) {
        c->attempts_left--;
        c->retry.data = (void *)step;
        ev_timer_set(&c->retry, c->interval_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &c->retry);
        return;
    }
    fail(c,
         "etcd (%s) could not %s: %s; check that etcd runs there and "
         "that cluster_formation.etcd.endpoints names it",
         etcd_endpoint(c->etcd), what, r->error ? r->error : "error");
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cluster *c = container_of(w, struct cluster, retry);
    void (*step)(struct cluster *) = (void (*)(struct cluster *))w->data;

    (void)loop;
    (void)revents;
    step(c);
}

/* Sends: if key absent, put value; else read it. */
static void
create_or_read(struct cluster *c, const char *suffix, const char *value,
               etcd_result_fn *cb)
{
    struct etcd_txn *t = etcd_txn_new();
    struct buf k;
    struct bytes key;

    buf_init(&k);
    key = cluster__key(c, &k, "%s", suffix);
    etcd_txn_if(t, key, ETCD_CREATE, ETCD_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, key, bytes_str(value), NULL);
    etcd_txn_range(t, ETCD_ELSE, key, NULL);
    etcd_txn_commit(c->etcd, t, cb, c);
    buf_fini(&k);
}

/* The value the txn of create_or_read settled on, or NULL. */
static struct bytes
settled_value(const struct etcd_result *r, const char *mine)
{
    if (r->succeeded)
        return bytes_str(mine);
    if (r->n_responses == 1 && r->responses[0].n_kvs == 1)
        return r->responses[0].kvs[0].value;
    return BYTES_NULL;
}

static void join_secret(struct cluster *c);
static void join_lease(struct cluster *c);

static void
id_done(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;
    json_t *doc = NULL;
    struct bytes v;

    if (r->status != ETCD_OK) {
        retry_or_fail(c, "create or read the cluster id", r, join_id);
        return;
    }
    v = settled_value(r, c->id);
    if (v.len == 0 || v.len >= sizeof(c->id)) {
        fail(c, "etcd key %sid holds no cluster id", c->prefix);
        return;
    }
    memcpy(c->id, v.ptr, v.len);
    c->id[v.len] = '\0';
    if (read_identity(c, &doc) != WR_OK)
        return;
    if (doc ? check_identity(c, doc) == WR_OK : write_identity(c) == WR_OK) {
        log_info("cluster %s (id %s): node '%s'", c->prefix, c->id,
                 c->node_name);
        join_secret(c);
    }
    json_decref(doc);
}

/* Step 2: the cluster id. The data directory's own id, when it has one,
 * is the one proposed (etcd wiped, nodes restarted: the cluster keeps
 * its identity). */
static void
join_id(struct cluster *c)
{
    json_t *doc = NULL;
    char want[65];

    if (read_identity(c, &doc) != WR_OK)
        return;
    if (doc && strlen(cluster__jstr(doc, "cluster_id")) < sizeof(c->id)) {
        snprintf(want, sizeof(want), "%s", cluster__jstr(doc, "cluster_id"));
        snprintf(c->data_id, sizeof(c->data_id), "%s",
                 cluster__jstr(doc, "data_id"));
    } else {
        random_hex(want, 16);
    }
    if (!c->data_id[0])
        random_hex(c->data_id, 16);
    snprintf(c->id, sizeof(c->id), "%s", want);
    json_decref(doc);
    create_or_read(c, "id", c->id, id_done);
}

static void
secret_done(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;
    char mine[65];
    struct bytes v;

    if (r->status != ETCD_OK) {
        retry_or_fail(c, "create or read the cluster secret", r, join_secret);
        return;
    }
    memcpy(mine, c->secret.data, c->secret.len);
    mine[c->secret.len] = '\0';
    v = settled_value(r, mine);
    if (v.len < 16) {
        fail(c, "etcd key %ssecret holds no usable secret", c->prefix);
        return;
    }
    buf_reset(&c->secret);
    buf_append(&c->secret, v.ptr, v.len);
    join_lease(c);
}

/* Step 3: the secret, unless configured. */
static void
join_secret(struct cluster *c)
{
    char s[65];

    if (c->secret_configured) {
        join_lease(c);
        return;
    }
    random_hex(s, 32);
    buf_reset(&c->secret);
    buf_append(&c->secret, s, 64);
    create_or_read(c, "secret", s, secret_done);
}

/* ---- step 4: the lease and the node's key */

static void registered(struct cluster *c, int rc);

static void
lease_cb(void *arg, struct etcd_lease *l, enum etcd_lease_state state,
         const char *why)
{
    struct cluster *c = arg;

    (void)l;
    if (state == ETCD_LEASE_ACTIVE) {
        member__register(c, registered);
        return;
    }
    if (c->state == CS_JOINING) {
        fail(c, "etcd lease lost while joining: %s", why ? why : "?");
        return;
    }
    log_warn("cluster: this node's etcd lease is lost (%s): it leads no "
             "vhost until it has a new one",
             why ? why : "?");
    c->registered = false;
    c->relink = true;
    placement__unlead_all(c, "this node lost its etcd lease");
}

static void
join_lease(struct cluster *c)
{
    c->lease = etcd_lease_new(c->etcd, c->ttl_s, lease_cb, c);
}

static void
registered(struct cluster *c, int rc)
{
    if (rc != WR_OK) {
        if (c->state == CS_JOINING)
            c->state = CS_FAILED; /* c->err says why */
        else
            log_warn("cluster: %s", c->err);
        return;
    }
    c->registered = true;
    if (c->state != CS_JOINING)
        return; /* registered again after a lost lease */
    c->pending_syncs = c->node ? 4 : 3;
    member__follow(c);
    placement__follow(c);
    if (c->node)
        defs__follow(c);
}

void
cluster__synced(struct cluster *c)
{
    if (c->state != CS_JOINING || c->pending_syncs == 0)
        return;
    if (--c->pending_syncs == 0) {
        c->state = CS_JOINED;
        c->available = true;
    }
}

/* ---- running: fencing, a new lease, statistics, elections */

/* The lease is certainly alive now, and the node registered on it. */
static bool
lease_holds(const struct cluster *c, uint64_t now_us)
{
    uint64_t deadline;

    if (!c->lease || !c->registered)
        return false;
    deadline = etcd_lease_deadline_us(c->lease, CLUSTER_FENCE_MARGIN_US);
    return deadline != 0 && now_us < deadline;
}

void
cluster_fence(struct cluster *c)
{
    bool was = c->available;

    if (c->state != CS_JOINED)
        return;
    c->available = lease_holds(c, wr_now_us());
    if (!c->available && was) {
        log_warn("cluster: no confirmed renewal of this node's etcd lease "
                 "for too long (etcd %s): it stops leading its vhosts",
                 etcd_endpoint(c->etcd));
        placement__unlead_all(c, "this node lost contact with etcd");
    } else if (c->available && !was) {
        log_info("cluster: in contact with etcd again");
    }
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cluster *c = container_of(w, struct cluster, tick);

    (void)loop;
    (void)revents;
    if (c->state != CS_JOINED)
        return;
    if (c->relink) {
        c->relink = false;
        etcd_lease_free(c->lease);
        join_lease(c);
    }
    cluster_fence(c);
    member__tick(c, wr_now_ms());
    placement__tick(c, wr_now_ms());
}

/* ---- lifecycle */

static char *
dup_or_empty(const char *s)
{
    return xstrdup(s ? s : "");
}

static struct cluster *
cluster_new(struct ev_loop *loop, const struct cluster_config *cfg,
            const struct cluster_ops *ops, void *arg)
{
    struct cluster *c = xcalloc(1, sizeof(*c));

    c->magic = CLUSTER_MAGIC;
    c->loop = loop;
    c->ops = ops;
    c->arg = arg;
    c->node_name = xstrdup(cfg->node_name);
    c->data_dir = xstrdup(cfg->data_dir);
    c->cluster_addr = dup_or_empty(cfg->cluster_addr);
    c->amqp_addr = dup_or_empty(cfg->amqp_addr);
    c->mgmt_addr = dup_or_empty(cfg->mgmt_addr);
    c->ttl_s = cfg->ttl_s;
    c->attempts_left = cfg->start_attempts ? cfg->start_attempts : 1;
    c->interval_ms = cfg->start_interval_ms;
    c->balanced = cfg->balanced;
    c->node = cfg->node;
    snprintf(c->prefix, sizeof(c->prefix), "%s/%s/", cfg->key_prefix,
             cfg->cluster_name);
    buf_init(&c->secret);
    if (cfg->secret && cfg->secret[0]) {
        buf_append(&c->secret, cfg->secret, strlen(cfg->secret));
        c->secret_configured = true;
    }
    ev_init(&c->retry, retry_cb);
    ev_timer_init(&c->tick, tick_cb, CLUSTER_TICK_S, CLUSTER_TICK_S);
    /* After a pause (SIGSTOP, a stalled VM) the lease check runs before
     * any socket's events of the same wake-up: a leader whose lease may
     * have ended stops leading before it confirms or delivers again. */
    ev_set_priority(&c->tick, EV_MAXPRI);
    return c;
}

static int
start_client(struct cluster *c, const struct cluster_config *cfg, char *err,
             size_t errlen)
{
    struct etcd_config ec = {
        .endpoints = cfg->endpoints,
        .n_endpoints = cfg->n_endpoints,
        .request_timeout_ms = CLUSTER_REQUEST_MS,
    };

    if (etcd_config_check(&ec, err, errlen) != WR_OK)
        return WR_ERR;
    c->etcd = etcd_new(c->loop, &ec);
    return c->etcd ? WR_OK : WR_ERR;
}

int
cluster_start(struct ev_loop *loop, const struct cluster_config *cfg,
              const struct cluster_ops *ops, void *arg, struct cluster **out,
              char *err, size_t errlen)
{
    struct cluster *c = cluster_new(loop, cfg, ops, arg);

    if (start_client(c, cfg, err, errlen) != WR_OK) {
        cluster_free(c);
        return WR_ERR;
    }
    join_id(c);
    /* Every step ends: etcd requests have deadlines, retries a count. */
    while (c->state == CS_JOINING)
        ev_run(loop, EVRUN_ONCE);
    if (c->state != CS_JOINED) {
        snprintf(err, errlen, "cluster: %s", c->err);
        cluster_free(c);
        return WR_ERR;
    }
    ev_timer_start(loop, &c->tick);
    *out = c;
    return WR_OK;
}

static void
left_node(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;

    (void)r;
    c->stop_pending--;
}

/* Every vhost handed off or given up: the node key goes, then the lease
 * (which would take the key with it anyway). */
static void
left_vhosts(struct cluster *c)
{
    struct buf k;

    buf_init(&k);
    c->stop_pending += 2;
    etcd_delete(c->etcd, cluster__key(c, &k, "nodes/%s", c->node_name), NULL,
                left_node, c);
    if (!etcd_lease_revoke(c->lease, left_node, c))
        c->stop_pending--;
    buf_fini(&k);
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

void
cluster_drain(struct cluster *c)
{
    if (c)
        c->draining = true;
}

void
cluster_stop(struct cluster *c, unsigned timeout_ms)
{
    ev_timer guard;

    if (!c || c->state != CS_JOINED)
        return;
    c->state = CS_STOPPING;
    ev_timer_stop(c->loop, &c->tick);
    c->stop_pending = 1;
    placement__leave(c, left_vhosts);
    ev_timer_init(&guard, guard_cb, timeout_ms / 1000.0, 0.);
    ev_timer_start(c->loop, &guard);
    while (c->stop_pending > 0 && ev_is_active(&guard))
        ev_run(c->loop, EVRUN_ONCE);
    ev_timer_stop(c->loop, &guard);
}

void
cluster_free(struct cluster *c)
{
    if (!c)
        return;
    ev_timer_stop(c->loop, &c->tick);
    ev_timer_stop(c->loop, &c->retry);
    etcd_free(c->etcd); /* leases, follows and requests: no callback */
    member__free_all(c);
    placement__free_all(c);
    defs__free_all(c);
    free(c->node_name);
    free(c->data_dir);
    free(c->cluster_addr);
    free(c->amqp_addr);
    free(c->mgmt_addr);
    buf_fini(&c->secret);
    c->magic = 0;
    free(c);
}

const char *
cluster_node_name(const struct cluster *c)
{
    return c->node_name;
}

struct bytes
cluster_secret(const struct cluster *c)
{
    return buf_bytes(&c->secret);
}

const char *
cluster_id(const struct cluster *c)
{
    return c->id;
}

bool
cluster_is_available(const struct cluster *c)
{
    return c->state == CS_JOINED && c->available;
}
