/*
 * placement.c: which node runs each vhost.
 *
 * Keys, under P/vhosts/<h>/ (h: 64 hex digits of SHA-256(vhost name)):
 *   home    {"vhost", "node", "empty"}: the node whose disk holds the
 *           vhost's data; empty = it holds none yet (a new vhost, or one
 *           handed off by a clean stop), so any node may take it
 *   leader  {"vhost", "node"} on the leader's lease; create_revision is
 *           the vhost's epoch (it only grows)
 *   isr     {"vhost", "epoch", "isr": [nodes]}: a replicated vhost's
 *           in-sync set, written by its leader of that epoch (fenced,
 *           server/replication.c). While it exists only its members may
 *           be elected (the set's order first, the election fenced on
 *           the set's mod_revision too), and only a member holding the
 *           newest data: the home, or a complete copy of that epoch
 *
 * Election (placement__tick, after every change and every tick): a
 * vhost with a home and no leader is tried by its home node at once, and,
 * when the home is empty and its node not running, by every running node
 * in turn (fewest leaderships first, CLUSTER_CANDIDATE_STEP_MS apart).
 * The transaction puts the leader key and takes the home (empty: false)
 * only if the leader key is absent and the home unchanged since this
 * node read it, so exactly one candidate wins. The node starts leading
 * when the follow shows the leader key on its lease, not on the answer,
 * so a win whose answer was lost counts too, and an answer that arrives
 * after the node began to leave does not.
 *
 * Leading is always fenced (cluster.c): while the lease is in doubt the
 * node leads nothing (placement__unlead_all); when it is confirmed again
 * and the leader keys on it are still there, it leads them again with
 * the same epochs, since nobody else can have won them meanwhile. A
 * leader key that names this node on an older lease (a restart before
 * the old lease ran out) is deleted so that the vhost is elected at once.
 *
 * Leaving (placement__leave): an empty vhost is handed to the running
 * node leading the fewest, any other is given up with its home left on
 * this node, so that nobody takes over data it does not have.
 */
#include "cluster/cluster_int.h"
#include "cluster/mirror.h"
#include "vhost/node.h"

#include <stdlib.h>

/* ---- the view */

static struct cvhost *
vh_find_hash(struct cluster *c, const char *hash)
{
    struct cvhost *v;

    HASH_FIND_STR(c->vhosts, hash, v);
    return v;
}

static struct cvhost *
vh_find(const struct cluster *c, const char *name)
{
    char h[65];

    vhost_name_hash(name, h);
    return vh_find_hash((struct cluster *)c, h);
}

static struct cvhost *
vh_get(struct cluster *c, const char *hash)
{
    struct cvhost *v = vh_find_hash(c, hash);

    if (v)
        return v;
    v = xcalloc(1, sizeof(*v));
    memcpy(v->hash, hash, sizeof(v->hash));
    v->name = xstrdup("");
    v->home_node = xstrdup("");
    v->leader_node = xstrdup("");
    HASH_ADD_STR(c->vhosts, hash, v);
    return v;
}

static void
vh_free(struct cvhost *v)
{
    free(v->name);
    free(v->home_node);
    free(v->leader_node);
    json_decref(v->isr);
    free(v);
}

static void
set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = xstrdup(s);
}

static bool
is_me(const struct cluster *c, const char *node)
{
    return strcmp(node, c->node_name) == 0;
}

/* Counts v's leader in its node's leaderships (+1 or -1). */
static void
count_lead(struct cluster *c, struct cvhost *v, int d)
{
    struct cnode *n;

    if (!v->has_leader)
        return;
    n = member__find(c, v->leader_node);
    if (!n && d > 0) {
        /* a leader not (yet) in the view: counted once it is */
        return;
    }
    if (n)
        n->leads = d > 0 ? n->leads + 1 : (n->leads ? n->leads - 1 : 0);
    if (is_me(c, v->leader_node))
        c->my_leads = d > 0 ? c->my_leads + 1 : c->my_leads - 1;
    c->list_stale = true;
}

static void
stop_leading(struct cluster *c, struct cvhost *v, const char *why)
{
    if (!v->leading)
        return;
    v->leading = false;
    log_info("cluster: no longer leading vhost '%s': %s", v->name, why);
    c->ops->unlead(c->arg, v->name, why);
}

static void
start_leading(struct cluster *c, struct cvhost *v)
{
    if (v->leading)
        return;
    v->leading = true;
    log_info("cluster: leading vhost '%s' (epoch %lld)", v->name,
             (long long)v->epoch);
    c->ops->lead(c->arg, v->name, v->epoch);
}

/* Drops v when no key of it is left. */
static void
maybe_drop(struct cluster *c, struct cvhost *v)
{
    if (v->has_home || v->has_leader || v->trying || v->isr)
        return;
    HASH_DEL(c->vhosts, v);
    vh_free(v);
}

static void
home_put(struct cvhost *v, const struct etcd_kv *kv, const json_t *doc)
{
    v->has_home = true;
    set_str(&v->name, cluster__jstr(doc, "vhost"));
    set_str(&v->home_node, cluster__jstr(doc, "node"));
    v->home_empty = json_is_true(json_object_get(doc, "empty"));
    v->home_mod = kv->mod_revision;
}

static void
leader_put(struct cluster *c, struct cvhost *v, const struct etcd_kv *kv,
           const json_t *doc)
{
    count_lead(c, v, -1);
    if (v->leading && !is_me(c, cluster__jstr(doc, "node")))
        stop_leading(c, v, "another node leads it now");
    v->has_leader = true;
    set_str(&v->name, cluster__jstr(doc, "vhost"));
    set_str(&v->leader_node, cluster__jstr(doc, "node"));
    v->epoch = kv->create_revision;
    v->leader_mod = kv->mod_revision;
    v->leader_lease = kv->lease;
    count_lead(c, v, +1);
    if (is_me(c, v->leader_node) && v->leader_lease == cluster__lease_id(c) &&
        c->state == CS_JOINED && c->available)
        start_leading(c, v);
}

static void
leader_delete(struct cluster *c, struct cvhost *v)
{
    count_lead(c, v, -1);
    v->has_leader = false;
    stop_leading(c, v, "its leader key is gone");
}

/* One key of P/vhosts/: "<hash>/home" or "<hash>/leader". */
static void
apply_kv(struct cluster *c, bool put, const struct etcd_kv *kv)
{
    size_t pre = strlen(c->prefix) + strlen("vhosts/");
    struct bytes rest = bytes_of(kv->key.ptr + pre, kv->key.len - pre);
    char hash[65];
    struct cvhost *v;
    json_t *doc = NULL;

    if (kv->key.len < pre + 65 || rest.ptr[64] != '/')
        return;
    memcpy(hash, rest.ptr, 64);
    hash[64] = '\0';
    rest = bytes_of(rest.ptr + 65, rest.len - 65);
    v = put ? vh_get(c, hash) : vh_find_hash(c, hash);
    if (!v)
        return;
    if (put)
        doc = json_loadb((const char *)kv->value.ptr, kv->value.len, 0, NULL);
    if (bytes_eq_str(rest, "home")) {
        if (put)
            home_put(v, kv, doc);
        else
            v->has_home = false;
    } else if (bytes_eq_str(rest, "leader")) {
        if (put)
            leader_put(c, v, kv, doc);
        else
            leader_delete(c, v);
    } else if (bytes_eq_str(rest, "isr")) {
        json_decref(v->isr);
        v->isr = NULL;
        if (put && json_is_array(json_object_get(doc, "isr"))) {
            set_str(&v->name, cluster__jstr(doc, "vhost"));
            v->isr = json_incref(doc);
            v->isr_mod = kv->mod_revision;
        }
    }
    json_decref(doc);
    maybe_drop(c, v);
}

static void
apply_snapshot(struct cluster *c, const struct etcd_follow_update *u)
{
    struct cvhost *v, *tmp;

    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        if (v->has_leader)
            leader_delete(c, v);
        v->has_home = false;
        json_decref(v->isr);
        v->isr = NULL;
        maybe_drop(c, v);
    }
    for (size_t i = 0; i < u->n_kvs; i++)
        apply_kv(c, true, &u->kvs[i]);
}

static void
follow_cb(void *arg, const struct etcd_follow_update *u)
{
    struct cluster *c = arg;

    if (u->kind == ETCD_FOLLOW_SNAPSHOT) {
        apply_snapshot(c, u);
        cluster__synced(c);
    } else {
        for (size_t i = 0; i < u->n_events; i++)
            apply_kv(c, u->events[i].type == ETCD_EV_PUT, &u->events[i].kv);
    }
    c->list_stale = true;
    if (c->state == CS_JOINED) {
        if (c->ops->changed)
            c->ops->changed(c->arg);
        placement__tick(c, wr_now_ms());
    }
}

void
placement__follow(struct cluster *c)
{
    struct buf k;

    buf_init(&k);
    c->f_vhosts =
        etcd_follow_new(c->etcd, cluster__key(c, &k, "vhosts/"), follow_cb, c);
    buf_fini(&k);
}

/* ---- elections */

static void answer_waits(struct cluster *c, uint64_t now_ms, bool all);
static void place_unplaced(struct cluster *c, uint64_t now_ms);

struct attempt {
    struct cluster *c;
    char hash[65];
};

static char *
home_value(const char *vhost, const char *node, bool empty)
{
    json_t *doc = json_pack("{s:s, s:s, s:b}", "vhost", vhost, "node", node,
                            "empty", empty);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

    json_decref(doc);
    return s;
}

/* The answer only ends the attempt: leading starts when the follow shows
 * the leader key on this node's lease (leader_put), whether this answer
 * came or was lost, and never after the node began to leave. */
static void
elect_cb(void *arg, const struct etcd_result *r)
{
    struct attempt *a = arg;
    struct cvhost *v = vh_find_hash(a->c, a->hash);

    if (v) {
        v->trying = false;
        if (r->status != ETCD_OK)
            log_warn("cluster: election for vhost '%s': %s", v->name,
                     r->error ? r->error : "error");
        maybe_drop(a->c, v);
    }
    free(a);
}

/* Sends the election transaction for v. */
static void
elect(struct cluster *c, struct cvhost *v)
{
    struct etcd_txn *t = etcd_txn_new();
    struct etcd_put_opts lease = {.lease = cluster__lease_id(c)};
    struct attempt *a = xmalloc(sizeof(*a));
    char *home = home_value(v->name, c->node_name, false);
    json_t *ld =
        json_pack("{s:s, s:s}", "vhost", v->name, "node", c->node_name);
    char *leader = json_dumps(ld, JSON_COMPACT | JSON_SORT_KEYS);
    struct buf lk, hk;

    buf_init(&lk);
    buf_init(&hk);
    cluster__key(c, &lk, "vhosts/%s/leader", v->hash);
    cluster__key(c, &hk, "vhosts/%s/home", v->hash);
    etcd_txn_if(t, buf_bytes(&lk), ETCD_CREATE, ETCD_EQUAL, 0);
    etcd_txn_if(t, buf_bytes(&hk), ETCD_MOD, ETCD_EQUAL, v->home_mod);
    if (v->isr) {
        /* the set this node read, which lists it, still stands */
        struct buf ik;

        buf_init(&ik);
        cluster__key(c, &ik, "vhosts/%s/isr", v->hash);
        etcd_txn_if(t, buf_bytes(&ik), ETCD_MOD, ETCD_EQUAL, v->isr_mod);
        buf_fini(&ik);
    }
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&lk), bytes_str(leader), &lease);
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&hk), bytes_str(home), NULL);
    a->c = c;
    memcpy(a->hash, v->hash, sizeof(a->hash));
    v->trying = true;
    etcd_txn_commit(c->etcd, t, elect_cb, a);
    buf_fini(&lk);
    buf_fini(&hk);
    free(home);
    free(leader);
    json_decref(ld);
}

/* This node's rank among the running candidates, or -1. */
static int
my_rank(struct cluster *c)
{
    struct cnode **run;
    size_t n = member__running(c, &run);
    int rank = -1;

    for (size_t i = 0; i < n; i++) {
        if (is_me(c, run[i]->name))
            rank = (int)i;
    }
    free(run);
    return rank;
}

/* Whether this node may take v as a member of its in-sync set of epoch:
 * it is the home (it led last: its own log is the newest), or it holds a
 * complete copy of that epoch's leader (cluster/mirror.h). */
static bool
isr_eligible(struct cluster *c, struct cvhost *v, int64_t epoch)
{
    uint64_t e = 0;
    bool synced = false;
    char err[512];

    if (is_me(c, v->home_node) && !v->home_empty)
        return true;
    if (mirror_copy_state(c->data_dir, v->name, &e, &synced, err,
                          sizeof(err)) != WR_OK) {
        log_warn("cluster: vhost '%s': %s", v->name, err);
        return false;
    }
    return synced && e == (uint64_t)epoch;
}

/* This node's rank among the running members of v's in-sync set, in
 * the set's order, or -1 when it is no member or may not take v. */
static int
isr_rank(struct cluster *c, struct cvhost *v)
{
    json_t *list = json_object_get(v->isr, "isr"), *it;
    int64_t epoch = json_integer_value(json_object_get(v->isr, "epoch"));
    int rank = 0;
    size_t i;

    json_array_foreach(list, i, it)
    {
        const char *name = json_string_value(it);
        const struct cnode *n;

        if (!name)
            continue;
        if (is_me(c, name))
            return isr_eligible(c, v, epoch) ? rank : -1;
        n = member__find(c, name);
        if (n && n->running)
            rank++;
    }
    return -1;
}

/* When this node may try to take v (ms, monotonic); UINT64_MAX: not. */
static uint64_t
candidate_at(struct cluster *c, struct cvhost *v, uint64_t now_ms)
{
    const struct cnode *home;
    int rank;

    if (now_ms < v->resigned_until)
        return UINT64_MAX;
    /* an empty vhost handed to this node by a clean stop: nothing to
       lose, whatever copy this node holds (without this, a hand-off to
       a node whose copy was not complete left the vhost unled) */
    if (v->isr && is_me(c, v->home_node) && v->home_empty)
        return now_ms;
    /* a replicated vhost: only a member of its in-sync set may take it
       (issue 12), the set's order first */
    if (v->isr) {
        rank = isr_rank(c, v);
        return rank < 0 ? UINT64_MAX
                        : now_ms + (uint64_t)rank * CLUSTER_CANDIDATE_STEP_MS;
    }
    if (is_me(c, v->home_node))
        return now_ms;
    home = member__find(c, v->home_node);
    if (!v->home_empty || (home && home->running))
        return UINT64_MAX;
    rank = my_rank(c);
    if (rank < 0)
        return UINT64_MAX;
    return now_ms + (uint64_t)rank * CLUSTER_CANDIDATE_STEP_MS;
}

/* A leader key of this node on an older lease: delete it (fenced). */
static void
drop_stale_leader(struct cluster *c, struct cvhost *v)
{
    struct etcd_txn *t = etcd_txn_new();
    struct buf k;

    buf_init(&k);
    cluster__key(c, &k, "vhosts/%s/leader", v->hash);
    etcd_txn_if(t, buf_bytes(&k), ETCD_MOD, ETCD_EQUAL, v->leader_mod);
    etcd_txn_delete(t, ETCD_THEN, buf_bytes(&k), NULL);
    etcd_txn_commit(c->etcd, t, NULL, NULL);
    buf_fini(&k);
}

static void
tick_one(struct cluster *c, struct cvhost *v, uint64_t now_ms)
{
    if (v->has_leader) {
        v->try_at = 0;
        if (!is_me(c, v->leader_node))
            return;
        if (v->leader_lease != cluster__lease_id(c))
            drop_stale_leader(c, v);
        else if (c->available && now_ms >= v->resigned_until)
            start_leading(c, v); /* again, after doubt cleared */
        return;
    }
    if (!v->has_home || v->trying || !c->available || c->draining)
        return;
    if (v->try_at == 0)
        v->try_at = candidate_at(c, v, now_ms);
    if (v->try_at <= now_ms)
        elect(c, v);
    else if (v->try_at == UINT64_MAX)
        v->try_at = 0; /* look again next time */
}

void
placement__tick(struct cluster *c, uint64_t now_ms)
{
    struct cvhost *v, *tmp;

    if (c->state != CS_JOINED)
        return;
    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        tick_one(c, v, now_ms);
    }
    answer_waits(c, now_ms, false);
    place_unplaced(c, now_ms);
}

void
placement__unlead_all(struct cluster *c, const char *why)
{
    struct cvhost *v, *tmp;

    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        stop_leading(c, v, why);
    }
}

void
cluster_resign(struct cluster *c, const char *vhost, unsigned hold_off_ms,
               const char *why)
{
    struct cvhost *v = vh_find(c, vhost);

    if (!v || !v->leading)
        return;
    v->resigned_until = wr_now_ms() + hold_off_ms;
    v->try_at = 0;
    stop_leading(c, v, why);
    /* the key goes (fenced on its revision: only this tenure's), so that
       an in-sync mirror is elected without waiting for the lease */
    if (v->has_leader && is_me(c, v->leader_node))
        drop_stale_leader(c, v);
}

/* ---- leaving */

static void
left_one(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;

    (void)r;
    if (--c->stop_pending == 0 && c->leave_done)
        c->leave_done(c);
}

/* Hands v to target (an empty vhost) or gives it up (target NULL). */
static void
leave_one(struct cluster *c, struct cvhost *v, const char *target)
{
    struct etcd_txn *t = etcd_txn_new();
    char *home =
        home_value(v->name, target ? target : c->node_name, target != NULL);
    struct buf lk, hk;

    buf_init(&lk);
    buf_init(&hk);
    cluster__key(c, &lk, "vhosts/%s/leader", v->hash);
    cluster__key(c, &hk, "vhosts/%s/home", v->hash);
    etcd_txn_if(t, buf_bytes(&lk), ETCD_MOD, ETCD_EQUAL, v->leader_mod);
    etcd_txn_delete(t, ETCD_THEN, buf_bytes(&lk), NULL);
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&hk), bytes_str(home), NULL);
    if (target && v->isr) {
        /* An empty vhost has nothing to lose: without this its in-sync
           set would still name only this node, and while it is down
           nobody, the target included, could take it. */
        struct buf ik;

        buf_init(&ik);
        cluster__key(c, &ik, "vhosts/%s/isr", v->hash);
        etcd_txn_delete(t, ETCD_THEN, buf_bytes(&ik), NULL);
        buf_fini(&ik);
    }
    c->stop_pending++;
    etcd_txn_commit(c->etcd, t, left_one, c);
    if (target)
        log_info("cluster: handing empty vhost '%s' to node '%s'", v->name,
                 target);
    buf_fini(&lk);
    buf_fini(&hk);
    free(home);
}

/* The running node leading the fewest, other than this one, or NULL. */
static const char *
hand_off_target(struct cluster *c)
{
    static char name[256];
    struct cnode **run;
    size_t n = member__running(c, &run);
    const char *pick = NULL;

    for (size_t i = 0; i < n && !pick; i++) {
        if (!is_me(c, run[i]->name)) {
            snprintf(name, sizeof(name), "%s", run[i]->name);
            pick = name;
            run[i]->leads++; /* spread the next ones */
        }
    }
    free(run);
    return pick;
}

void
placement__leave(struct cluster *c, void (*done)(struct cluster *))
{
    struct cvhost *v, *tmp;

    c->leave_done = done;
    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        bool empty;

        if (!v->has_leader || !is_me(c, v->leader_node) ||
            v->leader_lease != cluster__lease_id(c))
            continue;
        empty = v->leading && c->ops->vhost_is_empty(c->arg, v->name);
        stop_leading(c, v, "this node is stopping");
        leave_one(c, v, empty ? hand_off_target(c) : NULL);
    }
    left_one(c, NULL); /* the reference taken by cluster_stop */
}

void
placement__free_all(struct cluster *c)
{
    struct cvhost *v, *tmp;
    struct unplaced *u, *utmp;

    answer_waits(c, 0, true);
    HASH_ITER(hh, c->unplaced, u, utmp)
    {
        HASH_DEL(c->unplaced, u);
        free(u->name);
        free(u);
    }

    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        HASH_DEL(c->vhosts, v);
        vh_free(v);
    }
}

/* ---- queries and changes from the broker */

const char *
cluster_leader_of(const struct cluster *c, const char *vhost, int64_t *epoch)
{
    const struct cvhost *v = vh_find(c, vhost);

    if (!v || !v->has_leader)
        return NULL;
    if (epoch)
        *epoch = v->epoch;
    return v->leader_node;
}

bool
cluster_leads(const struct cluster *c, const char *vhost)
{
    const struct cvhost *v = vh_find(c, vhost);

    return v && v->leading && c->available;
}

const json_t *
cluster_isr_of(const struct cluster *c, const char *vhost, int64_t *mod,
               int64_t *epoch)
{
    const struct cvhost *v = vh_find(c, vhost);

    if (!v || !v->isr)
        return NULL;
    if (mod)
        *mod = v->isr_mod;
    if (epoch)
        *epoch = json_integer_value(json_object_get(v->isr, "epoch"));
    return json_object_get(v->isr, "isr");
}

json_t *
cluster_isr_critical(struct cluster *c, size_t keep)
{
    json_t *out = json_array();
    struct cvhost *v, *tmp;

    HASH_ITER(hh, c->vhosts, v, tmp)
    {
        json_t *list = v->isr ? json_object_get(v->isr, "isr") : NULL, *it;
        json_t *online;
        size_t i, others = 0;
        bool mine = false;

        if (!list || !v->name)
            continue;
        online = json_array();
        json_array_foreach(list, i, it)
        {
            const char *name = json_string_value(it);
            const struct cnode *n = name ? member__find(c, name) : NULL;

            if (name && is_me(c, name))
                mine = true;
            if (n && n->running) {
                json_array_append_new(online, json_string(name));
                others += !is_me(c, name);
            }
        }
        if (mine && others < keep)
            json_array_append_new(out,
                                  json_pack("{s:s, s:O, s:o}", "vhost", v->name,
                                            "isr", list, "online", online));
        else
            json_decref(online);
    }
    return out;
}

struct isr_ctx {
    cluster_isr_fn *cb;
    void *arg;
};

static void
isr_done(void *arg, const struct etcd_result *r)
{
    struct isr_ctx *x = arg;

    if (x->cb)
        x->cb(x->arg, r->status == ETCD_OK && r->succeeded, r->revision);
    free(x);
}

void
cluster_isr_commit(struct cluster *c, const char *vhost, int64_t epoch,
                   const char *const *nodes, size_t n, int64_t expect,
                   cluster_isr_fn *cb, void *arg)
{
    struct etcd_txn *t = etcd_txn_new();
    struct isr_ctx *x = xmalloc(sizeof(*x));
    json_t *list = json_array(), *doc;
    char hash[65], *value;
    struct buf lk, ik;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(nodes[i]));
    doc = json_pack("{s:s, s:I, s:o}", "vhost", vhost, "epoch",
                    (json_int_t)epoch, "isr", list);
    value = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    vhost_name_hash(vhost, hash);
    buf_init(&lk);
    buf_init(&ik);
    cluster__key(c, &lk, "vhosts/%s/leader", hash);
    cluster__key(c, &ik, "vhosts/%s/isr", hash);
    /* fenced: only the holder of the leader key of this epoch writes, and
       only over the set it last saw */
    etcd_txn_if(t, buf_bytes(&lk), ETCD_CREATE, ETCD_EQUAL, epoch);
    etcd_txn_if(t, buf_bytes(&ik), ETCD_MOD, ETCD_EQUAL, expect);
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&ik), bytes_str(value), NULL);
    x->cb = cb;
    x->arg = arg;
    etcd_txn_commit(c->etcd, t, isr_done, x);
    buf_fini(&lk);
    buf_fini(&ik);
    free(value);
    json_decref(doc);
}

const char *
cluster_home_of(const struct cluster *c, const char *vhost)
{
    const struct cvhost *v = vh_find(c, vhost);

    return v && v->has_home ? v->home_node : NULL;
}

struct done_ctx {
    cluster_done_fn *cb;
    void *arg;
};

static void
done_cb(void *arg, const struct etcd_result *r)
{
    struct done_ctx *d = arg;

    if (d->cb)
        d->cb(d->arg, r->status == ETCD_OK ? WR_OK : WR_ERR,
              r->status == ETCD_OK ? NULL : r->error);
    free(d);
}

static struct done_ctx *
done_new(cluster_done_fn *cb, void *arg)
{
    struct done_ctx *d = xmalloc(sizeof(*d));

    d->cb = cb;
    d->arg = arg;
    return d;
}

/* ---- placing the vhosts of the definitions */

/* Answers the waits whose vhost has a leader now, or whose time is up;
 * every wait when `all` (the node stops: WR_ERR). */
static void
answer_waits(struct cluster *c, uint64_t now_ms, bool all)
{
    struct place_wait **pp = &c->waits, *w, *ready = NULL;

    while ((w = *pp) != NULL) {
        const struct cvhost *v = vh_find_hash(c, w->hash);

        if (all || (v && v->has_leader) || now_ms >= w->until_ms) {
            *pp = w->next;
            w->next = ready;
            ready = w;
        } else {
            pp = &w->next;
        }
    }
    while ((w = ready) != NULL) {
        ready = w->next;
        if (!all && !vh_find_hash(c, w->hash))
            log_info("cluster: vhost '%s' placed, no leader after %u ms yet",
                     w->name, CLUSTER_PLACE_WAIT_MS);
        if (w->cb)
            w->cb(w->arg, all ? WR_ERR : WR_OK,
                  all ? "this node is stopping" : NULL);
        free(w->name);
        free(w);
    }
}

struct placing {
    struct cluster *c;
    char *name;
    cluster_done_fn *cb;
    void *arg;
};

static void
placed(void *arg, const struct etcd_result *r)
{
    struct placing *p = arg;
    struct cluster *c = p->c;

    if (r->status != ETCD_OK) {
        if (p->cb)
            p->cb(p->arg, WR_ERR, r->error);
    } else {
        struct place_wait *w = xcalloc(1, sizeof(*w));

        vhost_name_hash(p->name, w->hash);
        w->name = p->name;
        p->name = NULL;
        w->until_ms = wr_now_ms() + CLUSTER_PLACE_WAIT_MS;
        w->cb = p->cb;
        w->arg = p->arg;
        w->next = c->waits;
        c->waits = w;
        answer_waits(c, wr_now_ms(), false);
    }
    free(p->name);
    free(p);
}

void
cluster_vhost_place(struct cluster *c, const char *vhost, cluster_done_fn *cb,
                    void *arg)
{
    struct etcd_txn *t = etcd_txn_new();
    const char *node = c->node_name;
    struct cnode **run = NULL;
    struct placing *p = xmalloc(sizeof(*p));
    char h[65], *home;
    struct buf k;
    size_t n;

    if ((c->balanced || c->draining) && (n = member__running(c, &run)) > 0) {
        /* the fewest leaderships first; a draining node gives its turn */
        node = run[0]->name;
        if (c->draining && is_me(c, node) && n > 1)
            node = run[1]->name;
    }
    home = home_value(vhost, node, true);
    vhost_name_hash(vhost, h);
    buf_init(&k);
    cluster__key(c, &k, "vhosts/%s/home", h);
    etcd_txn_if(t, buf_bytes(&k), ETCD_CREATE, ETCD_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&k), bytes_str(home), NULL);
    *p = (struct placing){.c = c, .name = xstrdup(vhost), .cb = cb, .arg = arg};
    etcd_txn_commit(c->etcd, t, placed, p);
    buf_fini(&k);
    free(home);
    free(run);
}

/*
 * Every vhost of the definitions needs a home. The node that creates one
 * places it (cluster_defs_put); one that has none for
 * CLUSTER_UNPLACED_MS (the seeding node's, a placement whose answer was
 * lost, a node that died between the two writes) is placed by the first
 * running node. The delay covers the definitions and the placement
 * reaching this node by different watches.
 */
static void
place_unplaced(struct cluster *c, uint64_t now_ms)
{
    struct unplaced *u, *tmp;
    struct vhost *vh = NULL;

    if (!c->node || !c->defs_synced || !c->available || c->draining ||
        now_ms < c->unplaced_due_ms)
        return;
    c->unplaced_due_ms = now_ms + CLUSTER_UNPLACED_MS / 4;
    while ((vh = node_vhost_next(c->node, vh)) != NULL) {
        const char *name = vhost_name(vh);
        const struct cvhost *v = vh_find(c, name);

        if (v && v->has_home)
            continue;
        HASH_FIND_STR(c->unplaced, name, u);
        if (!u) {
            u = xcalloc(1, sizeof(*u));
            u->name = xstrdup(name);
            u->since = now_ms;
            HASH_ADD_KEYPTR(hh, c->unplaced, u->name, strlen(u->name), u);
        }
        u->seen = true;
    }
    HASH_ITER(hh, c->unplaced, u, tmp)
    {
        if (u->seen && now_ms - u->since >= CLUSTER_UNPLACED_MS &&
            my_rank(c) == 0) {
            log_info("cluster: placing vhost '%s', which has no home", u->name);
            cluster_vhost_place(c, u->name, NULL, NULL);
            u->since = now_ms; /* again later if that did not take */
        }
        if (!u->seen) {
            HASH_DEL(c->unplaced, u);
            free(u->name);
            free(u);
        } else {
            u->seen = false;
        }
    }
}

struct bytes
placement__prefix(const struct cluster *c, const char *vhost, struct buf *b)
{
    char h[65];

    vhost_name_hash(vhost, h);
    return cluster__key(c, b, "vhosts/%s/", h);
}

void
cluster_vhost_forget(struct cluster *c, const char *vhost, cluster_done_fn *cb,
                     void *arg)
{
    struct etcd_delete_opts prefix = {.prefix = true};
    char h[65];
    struct buf k;

    vhost_name_hash(vhost, h);
    buf_init(&k);
    etcd_delete(c->etcd, cluster__key(c, &k, "vhosts/%s/", h), &prefix, done_cb,
                done_new(cb, arg));
    buf_fini(&k);
}
