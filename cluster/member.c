/*
 * member.c: the cluster's nodes, this one's registration and everyone's
 * view of the others.
 *
 * This node writes
 *   P/nodes/<me>    on its lease: {"name", "cluster", "amqp", "mgmt",
 *                   "data_id", "pid", "started", "version", "stats"},
 *                   rewritten every CLUSTER_STATS_MS with fresh
 *                   statistics (management shows every node from these);
 *   P/members/<me>  without a lease: the node stays listed (running:
 *                   false) after it stops or dies.
 * Registration is one transaction: both keys are written when
 * P/nodes/<me> is absent, else the key is read. A key that carries this
 * data directory's id is this node's own, left by a crash before its
 * lease ran out: it is replaced (fenced on its mod_revision). Any other
 * holder is a live node with the same name: the start is refused.
 *
 * The view follows P/nodes/ and P/members/ into c->nodes, one entry per
 * name that is a member, running, or named as a vhost's leader.
 */
#include "cluster/cluster_int.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- the view */

struct cnode *
member__find(struct cluster *c, const char *name)
{
    struct cnode *n;

    HASH_FIND_STR(c->nodes, name, n);
    return n;
}

/* The entry for name, created when missing. */
static struct cnode *
member_get(struct cluster *c, const char *name)
{
    struct cnode *n = member__find(c, name);

    if (n)
        return n;
    n = xcalloc(1, sizeof(*n));
    n->name = xstrdup(name);
    n->cluster_addr = xstrdup("");
    n->amqp_addr = xstrdup("");
    n->mgmt_addr = xstrdup("");
    n->data_id = xstrdup("");
    HASH_ADD_KEYPTR(hh, c->nodes, n->name, strlen(n->name), n);
    return n;
}

static void
set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = xstrdup(s);
}

static void
cnode_free(struct cnode *n)
{
    free(n->name);
    free(n->cluster_addr);
    free(n->amqp_addr);
    free(n->mgmt_addr);
    free(n->data_id);
    json_decref(n->info);
    free(n);
}

/* Drops an entry nothing refers to any more. */
static void
maybe_drop(struct cluster *c, struct cnode *n)
{
    if (n->member || n->running || n->leads > 0)
        return;
    HASH_DEL(c->nodes, n);
    cnode_free(n);
}

/* The node named by a key under P/<dir>/; false when it names none. */
static bool
key_name(const struct cluster *c, const char *dir, struct bytes key, char *out,
         size_t n)
{
    size_t pre = strlen(c->prefix) + strlen(dir);

    if (key.len <= pre || key.len - pre >= n)
        return false;
    memcpy(out, key.ptr + pre, key.len - pre);
    out[key.len - pre] = '\0';
    return strchr(out, '/') == NULL;
}

static void
running_put(struct cnode *n, struct bytes value)
{
    json_t *doc = json_loadb((const char *)value.ptr, value.len, 0, NULL);

    n->running = true;
    json_decref(n->info);
    n->info = json_is_object(doc) ? doc : NULL;
    if (!n->info) {
        json_decref(doc);
        return;
    }
    set_str(&n->cluster_addr, cluster__jstr(doc, "cluster"));
    set_str(&n->amqp_addr, cluster__jstr(doc, "amqp"));
    set_str(&n->mgmt_addr, cluster__jstr(doc, "mgmt"));
    set_str(&n->data_id, cluster__jstr(doc, "data_id"));
}

static void
running_delete(struct cluster *c, struct cnode *n)
{
    n->running = false;
    json_decref(n->info);
    n->info = NULL;
    maybe_drop(c, n);
}

static void
changed(struct cluster *c)
{
    c->list_stale = true;
    if (c->state == CS_JOINED && c->ops->changed)
        c->ops->changed(c->arg);
    if (c->state == CS_JOINED)
        placement__tick(c, wr_now_ms());
}

/* Applies one key of P/nodes/ (running) or P/members/ (member). */
static void
apply_kv(struct cluster *c, bool members, bool put, struct bytes key,
         struct bytes value)
{
    char name[256];
    struct cnode *n;

    if (!key_name(c, members ? "members/" : "nodes/", key, name, sizeof(name)))
        return;
    n = put ? member_get(c, name) : member__find(c, name);
    if (!n)
        return;
    if (members) {
        n->member = put;
        maybe_drop(c, n);
    } else if (put) {
        running_put(n, value);
    } else {
        running_delete(c, n);
    }
}

/* A snapshot replaces what was known of that kind. */
static void
apply_snapshot(struct cluster *c, bool members,
               const struct etcd_follow_update *u)
{
    struct cnode *n, *tmp;

    HASH_ITER(hh, c->nodes, n, tmp)
    {
        if (members) {
            n->member = false;
            maybe_drop(c, n);
        } else {
            running_delete(c, n);
        }
    }
    for (size_t i = 0; i < u->n_kvs; i++)
        apply_kv(c, members, true, u->kvs[i].key, u->kvs[i].value);
}

static void
follow_cb(struct cluster *c, bool members, const struct etcd_follow_update *u)
{
    if (u->kind == ETCD_FOLLOW_SNAPSHOT) {
        apply_snapshot(c, members, u);
        cluster__synced(c);
    } else {
        for (size_t i = 0; i < u->n_events; i++) {
            const struct etcd_event *e = &u->events[i];

            apply_kv(c, members, e->type == ETCD_EV_PUT, e->kv.key,
                     e->kv.value);
        }
    }
    changed(c);
}

static void
nodes_cb(void *arg, const struct etcd_follow_update *u)
{
    follow_cb(arg, false, u);
}

static void
members_cb(void *arg, const struct etcd_follow_update *u)
{
    follow_cb(arg, true, u);
}

void
member__follow(struct cluster *c)
{
    struct buf k;

    buf_init(&k);
    c->f_nodes =
        etcd_follow_new(c->etcd, cluster__key(c, &k, "nodes/"), nodes_cb, c);
    c->f_members = etcd_follow_new(c->etcd, cluster__key(c, &k, "members/"),
                                   members_cb, c);
    buf_fini(&k);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct cluster_node *)a)->name,
                  ((const struct cluster_node *)b)->name);
}

size_t
cluster_nodes(struct cluster *c, const struct cluster_node **out)
{
    struct cnode *n, *tmp;

    if (c->list_stale || !c->list) {
        c->nlist = 0;
        HASH_ITER(hh, c->nodes, n, tmp)
        {
            if (!n->member && !n->running)
                continue;
            if (c->nlist == c->caplist) {
                c->caplist = c->caplist ? 2 * c->caplist : 8;
                c->list = xrealloc(c->list, c->caplist * sizeof(*c->list));
            }
            c->list[c->nlist++] = (struct cluster_node){
                n->name,      n->running, n->cluster_addr, n->amqp_addr,
                n->mgmt_addr, n->info,    n->leads};
        }
        qsort(c->list, c->nlist, sizeof(*c->list), by_name);
        c->list_stale = false;
    }
    *out = c->list;
    return c->nlist;
}

const struct cluster_node *
cluster_node_find(struct cluster *c, const char *name)
{
    const struct cluster_node *all;
    size_t n = cluster_nodes(c, &all);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].name, name) == 0)
            return &all[i];
    }
    return NULL;
}

static int
by_leads(const void *a, const void *b)
{
    const struct cnode *x = *(struct cnode *const *)a;
    const struct cnode *y = *(struct cnode *const *)b;

    if (x->leads != y->leads)
        return x->leads < y->leads ? -1 : 1;
    return strcmp(x->name, y->name);
}

size_t
member__running(struct cluster *c, struct cnode ***out)
{
    struct cnode *n, *tmp,
        **v = xmalloc((HASH_COUNT(c->nodes) + 1) * sizeof(*v));
    size_t k = 0;

    HASH_ITER(hh, c->nodes, n, tmp)
    {
        if (n->running)
            v[k++] = n;
    }
    qsort(v, k, sizeof(*v), by_leads);
    *out = v;
    return k;
}

void
member__free_all(struct cluster *c)
{
    struct cnode *n, *tmp;

    HASH_ITER(hh, c->nodes, n, tmp)
    {
        HASH_DEL(c->nodes, n);
        cnode_free(n);
    }
    free(c->list);
    c->list = NULL;
    c->nlist = c->caplist = 0;
}

/* ---- this node's keys */

static char *
node_value(struct cluster *c)
{
    json_t *stats = c->ops->stats ? c->ops->stats(c->arg) : NULL;
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o}", "name", c->node_name,
        "cluster", c->cluster_addr, "amqp", c->amqp_addr, "mgmt", c->mgmt_addr,
        "data_id", c->data_id, "pid", (json_int_t)getpid(), "version",
        WARREN_VERSION, "stats", stats ? stats : json_object());
    char *text = json_dumps(doc, JSON_COMPACT);

    json_decref(doc);
    return text;
}

/* Then-branch of the registration: both keys. */
static void
put_both(struct cluster *c, struct etcd_txn *t, const char *value)
{
    struct etcd_put_opts lease = {.lease = cluster__lease_id(c)};
    struct buf k;

    buf_init(&k);
    etcd_txn_put(t, ETCD_THEN, cluster__key(c, &k, "nodes/%s", c->node_name),
                 bytes_str(value), &lease);
    etcd_txn_put(t, ETCD_THEN, cluster__key(c, &k, "members/%s", c->node_name),
                 bytes_str("{}"), NULL);
    buf_fini(&k);
}

static void register_cb(void *arg, const struct etcd_result *r);

/* Sends the registration: if P/nodes/<me> is absent (mod 0) or still at
 * mod (this node's own old key), put both keys; else read it. */
static void
register_send(struct cluster *c, int64_t mod)
{
    struct etcd_txn *t = etcd_txn_new();
    char *value = node_value(c);
    struct buf k;
    struct bytes key;

    buf_init(&k);
    key = cluster__key(c, &k, "nodes/%s", c->node_name);
    etcd_txn_if(t, key, mod ? ETCD_MOD : ETCD_CREATE, ETCD_EQUAL, mod);
    etcd_txn_range(t, ETCD_ELSE, key, NULL);
    put_both(c, t, value);
    etcd_txn_commit(c->etcd, t, register_cb, c);
    buf_fini(&k);
    free(value);
}

/* The name is held: by this data directory's own old key (take it over)
 * or by a live node (refuse). */
static void
name_held(struct cluster *c, const struct etcd_kv *kv)
{
    json_t *doc =
        json_loadb((const char *)kv->value.ptr, kv->value.len, 0, NULL);

    if (strcmp(cluster__jstr(doc, "data_id"), c->data_id) == 0) {
        log_info("cluster: taking over this node's key from before a "
                 "restart (lease %lld)",
                 (long long)kv->lease);
        register_send(c, kv->mod_revision);
    } else {
        snprintf(c->err, sizeof(c->err),
                 "node name '%s' is taken by a running node (cluster "
                 "address %s, pid %lld): choose another cluster.node_name",
                 c->node_name, cluster__jstr(doc, "cluster"),
                 (long long)json_integer_value(json_object_get(doc, "pid")));
        c->reg_done(c, WR_ERR);
    }
    json_decref(doc);
}

static void
register_cb(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;

    if (r->status != ETCD_OK) {
        snprintf(c->err, sizeof(c->err),
                 "could not register node '%s' in etcd: %s", c->node_name,
                 r->error ? r->error : "error");
        c->reg_done(c, WR_ERR);
    } else if (r->succeeded) {
        c->stats_due_ms = wr_now_ms() + CLUSTER_STATS_MS;
        c->reg_done(c, WR_OK);
    } else if (r->n_responses == 1 && r->responses[0].n_kvs == 1) {
        name_held(c, &r->responses[0].kvs[0]);
    } else {
        register_send(c, 0); /* gone meanwhile: try again */
    }
}

void
member__register(struct cluster *c, void (*done)(struct cluster *, int))
{
    c->reg_done = done;
    register_send(c, 0);
}

void
member__tick(struct cluster *c, uint64_t now_ms)
{
    struct etcd_put_opts lease = {.lease = cluster__lease_id(c)};
    struct buf k;
    char *value;

    if (!c->registered || !c->available || now_ms < c->stats_due_ms)
        return;
    c->stats_due_ms = now_ms + CLUSTER_STATS_MS;
    value = node_value(c);
    buf_init(&k);
    etcd_put(c->etcd, cluster__key(c, &k, "nodes/%s", c->node_name),
             bytes_str(value), &lease, NULL, NULL);
    buf_fini(&k);
    free(value);
}
