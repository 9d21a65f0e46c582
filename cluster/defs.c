/*
 * defs.c: the cluster-wide definitions, kept in etcd and applied on every
 * node: users (with their password hashes and tags), vhosts (with their
 * metadata), permissions, and the key-value items (policies, operator
 * policies, runtime parameters such as vhost limits, global parameters
 * such as the cluster name). Exchanges, queues and bindings are not
 * here: they belong to their vhost's leader and its log.
 *
 * One etcd key per object, its value the object's item in RabbitMQ's
 * definitions format (what /api/definitions exports for it):
 *
 *   P/defs/users/<user>
 *   P/defs/vhosts/<vhost>
 *   P/defs/permissions/<vhost>/<user>
 *   P/defs/kv/<kind>/<vhost>/<component>/<name>   (kind: policy,
 *       operator_policy, parameter, global_parameter; vhost "" for global)
 *
 * Names are percent-encoded (every byte but A-Z a-z 0-9 - . _ ~), so a
 * '/' in a name never splits a key and every key maps back to one object.
 *
 * Applying: every node follows P/defs/ and applies what it sees to its
 * model (node_defs_put/node_defs_remove); a snapshot (first, or after a
 * compaction) also removes the local objects etcd no longer has. A change
 * made on this node is written to etcd first; once etcd has it, it is
 * applied here at once, so the reply that follows shows it, and the
 * follow's echo of it later changes nothing. Each key remembers the etcd
 * revision last applied, so an older event arriving after a newer local
 * apply is skipped.
 *
 * Seeding: when a node joins a cluster whose etcd has no definitions yet
 * (P/defs/seeded absent), it writes its own (a single node becoming a
 * cluster keeps its users and vhosts), guarded by one create-if-absent on
 * P/defs/seeded so that two first nodes do not both seed.
 */
#include "cluster/cluster_int.h"

#include "vhost/vhost.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const kind_dirs[] = {
    [DEFS_USER] = "users",
    [DEFS_VHOST] = "vhosts",
    [DEFS_PERMISSION] = "permissions",
    [DEFS_POLICY] = "kv/policy",
    [DEFS_OPERATOR_POLICY] = "kv/operator_policy",
    [DEFS_PARAMETER] = "kv/parameter",
    [DEFS_GLOBAL_PARAMETER] = "kv/global_parameter",
};

/* One applied key and the revision it was applied at. */
struct dkey {
    char *key;
    int64_t rev;
    UT_hash_handle hh;
};

/* ---- keys */

static void
put_escaped(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                     *p == '_' || *p == '~';

        if (plain) {
            buf_put_u8(b, *p);
        } else {
            buf_put_u8(b, '%');
            buf_put_u8(b, (uint8_t)hex[*p >> 4]);
            buf_put_u8(b, (uint8_t)hex[*p & 15]);
        }
    }
}

static const char *
jstr(const json_t *o, const char *k)
{
    return cluster__jstr(o, k);
}

/* The etcd key of an item of kind k, into b. */
static struct bytes
item_key(const struct cluster *c, enum defs_kind k, const json_t *item,
         struct buf *b)
{
    buf_reset(b);
    buf_printf(b, "%sdefs/%s/", c->prefix, kind_dirs[k]);
    switch (k) {
    case DEFS_USER:
    case DEFS_VHOST:
        put_escaped(b, jstr(item, "name"));
        break;
    case DEFS_PERMISSION:
        put_escaped(b, jstr(item, "vhost"));
        buf_put_u8(b, '/');
        put_escaped(b, jstr(item, "user"));
        break;
    default:
        put_escaped(b, jstr(item, "vhost"));
        buf_put_u8(b, '/');
        put_escaped(b, k == DEFS_PARAMETER ? jstr(item, "component") : "");
        buf_put_u8(b, '/');
        put_escaped(b, jstr(item, "name"));
        break;
    }
    return buf_bytes(b);
}

/* The kind of a key under P/defs/, or -1. */
static int
kind_of(const struct cluster *c, struct bytes key)
{
    size_t pre = strlen(c->prefix) + strlen("defs/");

    for (int k = 0; k < DEFS_NKINDS; k++) {
        size_t n = strlen(kind_dirs[k]);

        if (key.len > pre + n + 1 &&
            memcmp(key.ptr + pre, kind_dirs[k], n) == 0 &&
            key.ptr[pre + n] == '/')
            return k;
    }
    return -1;
}

/* ---- applying */

/* node_defs_remove, telling the broker first when a vhost goes. */
static int
defs_remove(struct cluster *c, enum defs_kind k, json_t *item,
            struct vherr *err)
{
    struct vhost *vh;

    if (k == DEFS_VHOST && c->ops->vhost_removing &&
        (vh = node_vhost_find(c->node, jstr(item, "name"))) != NULL)
        c->ops->vhost_removing(c->arg, vh);
    return node_defs_remove(c->node, k, item, err);
}

static struct dkey *
dkey_get(struct cluster *c, struct bytes key)
{
    struct dkey *d;

    HASH_FIND(hh, c->dkeys, key.ptr, key.len, d);
    if (d)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->key = xstrndup(key.ptr, key.len);
    HASH_ADD_KEYPTR(hh, c->dkeys, d->key, key.len, d);
    return d;
}

/* Applies a put (item) or a delete (prev item) of key at revision rev,
 * unless something newer was applied already. */
static void
apply(struct cluster *c, struct bytes key, bool put, struct bytes value,
      int64_t rev)
{
    int kind = kind_of(c, key);
    struct dkey *d = dkey_get(c, key);
    json_t *item;
    struct vherr err;
    int rc;

    if (kind < 0 || rev <= d->rev)
        return;
    d->rev = rev;
    item = json_loadb((const char *)value.ptr, value.len, 0, NULL);
    if (!json_is_object(item)) {
        log_warn("cluster: etcd key %.*s holds no definition", BYTES_FMT(key));
        json_decref(item);
        return;
    }
    rc = put ? node_defs_put(c->node, kind, item, &err)
             : defs_remove(c, kind, item, &err);
    if (rc != WR_OK)
        log_info("cluster: %s of %.*s not applied: %s",
                 put ? "change" : "removal", BYTES_FMT(key), err.text);
    json_decref(item);
}

static void
apply_events(struct cluster *c, const struct etcd_follow_update *u)
{
    for (size_t i = 0; i < u->n_events; i++) {
        const struct etcd_event *e = &u->events[i];

        if (e->type == ETCD_EV_PUT)
            apply(c, e->kv.key, true, e->kv.value, e->kv.mod_revision);
        else if (e->has_prev_kv)
            apply(c, e->kv.key, false, e->prev_kv.value, e->kv.mod_revision);
    }
}

/* The local objects of kind k that a snapshot does not hold go. */
static void
drop_missing(struct cluster *c, enum defs_kind k, json_t *local,
             struct buf *key)
{
    size_t i;
    json_t *item;
    struct dkey *d;
    struct vherr err;

    json_array_foreach(local, i, item)
    {
        struct bytes kb = item_key(c, k, item, key);

        HASH_FIND(hh, c->dkeys, kb.ptr, kb.len, d);
        if (!d || d->rev <= 0)
            defs_remove(c, k, item, &err);
    }
}

static void
apply_snapshot(struct cluster *c, const struct etcd_follow_update *u)
{
    struct dkey *d, *tmp;
    struct buf key;

    HASH_ITER(hh, c->dkeys, d, tmp)
    {
        d->rev = 0; /* anything is newer than nothing */
    }
    /* users and vhosts before the permissions and items that name them */
    for (int k = 0; k < DEFS_NKINDS; k++) {
        for (size_t i = 0; i < u->n_kvs; i++) {
            if (kind_of(c, u->kvs[i].key) == k)
                apply(c, u->kvs[i].key, true, u->kvs[i].value,
                      u->kvs[i].mod_revision);
        }
    }
    buf_init(&key);
    /* permissions and items before the vhosts and users they refer to */
    for (int k = DEFS_NKINDS - 1; k >= 0; k--) {
        json_t *local = node_defs_list(c->node, k);

        drop_missing(c, k, local, &key);
        json_decref(local);
    }
    buf_fini(&key);
}

static void seed(struct cluster *c);

static void
defs_follow_cb(void *arg, const struct etcd_follow_update *u)
{
    struct cluster *c = arg;

    if (u->kind == ETCD_FOLLOW_EVENTS) {
        apply_events(c, u);
        return;
    }
    if (u->n_kvs == 0 && !c->defs_synced) {
        seed(c); /* an empty cluster: this node's definitions start it */
        return;
    }
    apply_snapshot(c, u);
    if (!c->defs_synced) {
        c->defs_synced = true;
        cluster__synced(c);
    }
}

/* ---- seeding an empty cluster */

static void
seeded(void *arg, const struct etcd_result *r)
{
    struct cluster *c = arg;

    if (r->status != ETCD_OK)
        log_warn("cluster: could not write this node's definitions to etcd: "
                 "%s",
                 r->error ? r->error : "error");
    else if (!r->succeeded)
        log_info("cluster: another node started the cluster's definitions");
    /* either way, the follow brings the cluster's definitions */
    c->defs_synced = true;
    cluster__synced(c);
}

/* One txn: if P/defs/seeded is absent, it and every local definition
 * (etcd allows 128 operations; a larger seed goes in later puts). */
static void
seed(struct cluster *c)
{
    struct etcd_txn *t = etcd_txn_new();
    struct buf key, marker;
    unsigned ops = 1;

    buf_init(&key);
    buf_init(&marker);
    buf_printf(&marker, "%sdefs/seeded", c->prefix);
    etcd_txn_if(t, buf_bytes(&marker), ETCD_CREATE, ETCD_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, buf_bytes(&marker),
                 bytes_str(cluster_node_name(c)), NULL);
    for (int k = 0; k < DEFS_NKINDS; k++) {
        json_t *local = node_defs_list(c->node, k), *item;
        size_t i;

        json_array_foreach(local, i, item)
        {
            char *v = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS);

            if (ops++ < 128)
                etcd_txn_put(t, ETCD_THEN, item_key(c, k, item, &key),
                             bytes_str(v), NULL);
            else
                etcd_put(c->etcd, item_key(c, k, item, &key), bytes_str(v),
                         NULL, NULL, NULL);
            free(v);
        }
        json_decref(local);
    }
    etcd_txn_commit(c->etcd, t, seeded, c);
    buf_fini(&key);
    buf_fini(&marker);
}

void
defs__follow(struct cluster *c)
{
    struct buf k;

    buf_init(&k);
    c->f_defs = etcd_follow_new(c->etcd, cluster__key(c, &k, "defs/"),
                                defs_follow_cb, c);
    buf_fini(&k);
}

void
defs__free_all(struct cluster *c)
{
    struct dkey *d, *tmp;

    HASH_ITER(hh, c->dkeys, d, tmp)
    {
        HASH_DEL(c->dkeys, d);
        free(d->key);
        free(d);
    }
}

/* ---- changes made on this node */

struct dwrite {
    struct cluster *c;
    int kind;
    bool put;
    json_t *item;
    cluster_done_fn *cb;
    void *arg;
};

static void
written(void *arg, const struct etcd_result *r)
{
    struct dwrite *w = arg;
    struct buf key;
    struct vherr err;

    if (r->status == ETCD_OK) {
        buf_init(&key);
        dkey_get(w->c, item_key(w->c, w->kind, w->item, &key))->rev =
            r->revision;
        buf_fini(&key);
        if (w->put)
            node_defs_put(w->c->node, w->kind, w->item, &err);
        else
            defs_remove(w->c, w->kind, w->item, &err);
        if (w->put && w->kind == DEFS_VHOST) {
            /* answered once the vhost has a home and a leader */
            cluster_vhost_place(w->c, jstr(w->item, "name"), w->cb, w->arg);
            json_decref(w->item);
            free(w);
            return;
        }
    }
    if (w->cb)
        w->cb(w->arg, r->status == ETCD_OK ? WR_OK : WR_ERR,
              r->status == ETCD_OK ? NULL
              : r->status == ETCD_E_UNKNOWN
                  ? "etcd did not confirm the change (it may or may not "
                    "have been made)"
                  : "etcd is unreachable: the cluster's definitions cannot "
                    "change now");
    json_decref(w->item);
    free(w);
}

static struct dwrite *
dwrite_new(struct cluster *c, enum defs_kind k, bool put, json_t *item,
           cluster_done_fn *cb, void *arg)
{
    struct dwrite *w = xcalloc(1, sizeof(*w));

    w->c = c;
    w->kind = k;
    w->put = put;
    w->item = json_incref(item);
    w->cb = cb;
    w->arg = arg;
    return w;
}

void
cluster_defs_put(struct cluster *c, enum defs_kind k, json_t *item,
                 cluster_done_fn *cb, void *arg)
{
    char *v = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS);
    struct buf key;

    buf_init(&key);
    etcd_put(c->etcd, item_key(c, k, item, &key), bytes_str(v), NULL, written,
             dwrite_new(c, k, true, item, cb, arg));
    buf_fini(&key);
    free(v);
}

/* The prefixes a vhost's removal takes with it. */
static void
vhost_children(struct cluster *c, struct etcd_txn *t, const char *vhost,
               struct buf *k)
{
    struct etcd_delete_opts prefix = {.prefix = true};

    for (int kind = DEFS_PERMISSION; kind < DEFS_GLOBAL_PARAMETER; kind++) {
        buf_reset(k);
        buf_printf(k, "%sdefs/%s/", c->prefix, kind_dirs[kind]);
        put_escaped(k, vhost);
        buf_put_u8(k, '/');
        etcd_txn_delete(t, ETCD_THEN, buf_bytes(k), &prefix);
    }
    etcd_txn_delete(t, ETCD_THEN, placement__prefix(c, vhost, k), &prefix);
}

void
cluster_defs_remove(struct cluster *c, enum defs_kind k, json_t *item,
                    cluster_done_fn *cb, void *arg)
{
    struct etcd_txn *t = etcd_txn_new();
    struct buf key;

    buf_init(&key);
    etcd_txn_delete(t, ETCD_THEN, item_key(c, k, item, &key), NULL);
    if (k == DEFS_VHOST)
        vhost_children(c, t, jstr(item, "name"), &key);
    etcd_txn_commit(c->etcd, t, written,
                    dwrite_new(c, k, false, item, cb, arg));
    buf_fini(&key);
}

/* ---- changes made in this node's model, then written to etcd */

/* One definition as it was: its key, kind and item (compact JSON). */
struct sitem {
    char *key;
    int kind;
    json_t *item; /* compared with json_equal, encoded only when changed */
    bool seen;    /* still there (cluster_defs_commit) */
    UT_hash_handle hh;
};

struct cluster_defs_snap {
    struct sitem *items;
};

static void
snap_fill(struct cluster *c, struct sitem **map)
{
    struct buf key;

    json_t *lists[DEFS_NKINDS];

    buf_init(&key);
    node_defs_lists(c->node, lists);
    for (int k = 0; k < DEFS_NKINDS; k++) {
        json_t *local = lists[k], *item;
        size_t i;

        json_array_foreach(local, i, item)
        {
            struct bytes kb = item_key(c, k, item, &key);
            struct sitem *s = xcalloc(1, sizeof(*s));

            s->key = xstrndup(kb.ptr, kb.len);
            s->kind = k;
            s->item = json_incref(item);
            HASH_ADD_KEYPTR(hh, *map, s->key, kb.len, s);
        }
        json_decref(local);
    }
    buf_fini(&key);
}

static void
snap_free_map(struct sitem **map)
{
    struct sitem *s, *tmp;

    HASH_ITER(hh, *map, s, tmp)
    {
        HASH_DEL(*map, s);
        free(s->key);
        json_decref(s->item);
        free(s);
    }
}

struct cluster_defs_snap *
cluster_defs_snapshot(struct cluster *c)
{
    struct cluster_defs_snap *snap = xcalloc(1, sizeof(*snap));

    if (c->node)
        snap_fill(c, &snap->items);
    return snap;
}

void
cluster_defs_snap_free(struct cluster_defs_snap *snap)
{
    if (!snap)
        return;
    snap_free_map(&snap->items);
    free(snap);
}

/* One change: a put of val (old: what the snapshot held, or NULL) or a
 * removal (val: the item removed). */
struct dop {
    bool put;
    int kind;
    char *key;
    char *val;
    char *old;
};

struct commit {
    struct cluster *c;
    struct dop *ops;
    size_t n, next, end; /* ops [next, end) are in flight */
    unsigned placing;    /* vhosts placed, not yet led */
    int status;
    char why[300];
    cluster_done_fn *cb;
    void *arg;
};

/* etcd allows 128 operations in a transaction; a vhost's removal takes
 * its children's prefixes with it. */
#define COMMIT_MAX_OPS 120

static void commit_next(struct commit *cm);

static void
commit_finish(struct commit *cm)
{
    if (cm->cb)
        cm->cb(cm->arg, cm->status, cm->status == WR_OK ? NULL : cm->why);
    for (size_t i = 0; i < cm->n; i++) {
        free(cm->ops[i].key);
        free(cm->ops[i].val);
        free(cm->ops[i].old);
    }
    free(cm->ops);
    free(cm);
}

static void
placed_one(void *arg, int status, const char *why)
{
    struct commit *cm = arg;

    if (status != WR_OK)
        log_warn("cluster: placing a new vhost: %s", why ? why : "error");
    if (--cm->placing == 0)
        commit_finish(cm);
}

/* Puts this node's model back as the snapshot had the changes from
 * ops[from] on: etcd did not take them. */
static void
commit_revert(struct commit *cm, size_t from)
{
    struct vherr err;

    /* users and vhosts back before what names them, and the other way
     * round for what goes */
    for (int k = 0; k < DEFS_NKINDS; k++) {
        for (size_t i = from; i < cm->n; i++) {
            struct dop *o = &cm->ops[i];
            json_t *item;

            if (o->kind != k || !o->old)
                continue;
            item = json_loads(o->old, 0, NULL);
            if (item)
                node_defs_put(cm->c->node, k, item, &err);
            json_decref(item);
        }
    }
    for (int k = DEFS_NKINDS - 1; k >= 0; k--) {
        for (size_t i = from; i < cm->n; i++) {
            struct dop *o = &cm->ops[i];
            json_t *item;

            if (o->kind != k || !o->put || o->old)
                continue;
            item = json_loads(o->val, 0, NULL);
            if (item)
                defs_remove(cm->c, k, item, &err);
            json_decref(item);
        }
    }
}

static void
commit_answer(void *arg, const struct etcd_result *r)
{
    struct commit *cm = arg;
    struct cluster *c = cm->c;

    if (r->status != ETCD_OK) {
        cm->status = WR_ERR;
        snprintf(cm->why, sizeof(cm->why), "%s",
                 r->status == ETCD_E_UNKNOWN
                     ? "etcd did not confirm the change (it may or may not "
                       "have been made)"
                     : "etcd is unreachable: the cluster's definitions "
                       "cannot change now");
        log_warn("cluster: a change of the definitions failed: %s (%s)",
                 cm->why, r->error ? r->error : "");
        commit_revert(cm, cm->next);
        commit_finish(cm);
        return;
    }
    for (size_t i = cm->next; i < cm->end; i++) {
        struct bytes kb = bytes_str(cm->ops[i].key);

        dkey_get(c, kb)->rev = r->revision; /* its echo changes nothing */
    }
    cm->next = cm->end;
    commit_next(cm);
}

/* The vhosts this commit created: placed, then awaited. */
static void
commit_place(struct commit *cm)
{
    cm->placing = 1;
    for (size_t i = 0; i < cm->n; i++) {
        struct dop *o = &cm->ops[i];
        json_t *item;

        if (!o->put || o->kind != DEFS_VHOST || o->old)
            continue;
        item = json_loads(o->val, 0, NULL);
        cm->placing++;
        cluster_vhost_place(cm->c, jstr(item, "name"), placed_one, cm);
        json_decref(item);
    }
    placed_one(cm, WR_OK, NULL);
}

static void
commit_next(struct commit *cm)
{
    struct cluster *c = cm->c;
    struct etcd_txn *t;
    struct buf key;
    unsigned ops = 0;

    if (cm->next == cm->n) {
        commit_place(cm);
        return;
    }
    t = etcd_txn_new();
    buf_init(&key);
    for (cm->end = cm->next; cm->end < cm->n && ops < COMMIT_MAX_OPS;
         cm->end++) {
        struct dop *o = &cm->ops[cm->end];

        if (o->put) {
            etcd_txn_put(t, ETCD_THEN, bytes_str(o->key), bytes_str(o->val),
                         NULL);
            ops++;
        } else {
            etcd_txn_delete(t, ETCD_THEN, bytes_str(o->key), NULL);
            ops++;
            if (o->kind == DEFS_VHOST) {
                json_t *item = json_loads(o->val, 0, NULL);

                vhost_children(c, t, jstr(item, "name"), &key);
                json_decref(item);
                ops += DEFS_GLOBAL_PARAMETER - DEFS_PERMISSION + 1;
            }
        }
    }
    etcd_txn_commit(c->etcd, t, commit_answer, cm);
    buf_fini(&key);
}

static char *
encode(const json_t *item)
{
    return item ? json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static void
add_op(struct commit *cm, size_t *cap, bool put, int kind, const char *key,
       const json_t *val, const json_t *old)
{
    struct dop *o;

    if (cm->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        cm->ops = xrealloc(cm->ops, *cap * sizeof(*cm->ops));
    }
    o = &cm->ops[cm->n++];
    o->put = put;
    o->kind = kind;
    o->key = xstrdup(key);
    o->val = encode(val);
    o->old = encode(old);
}

bool
cluster_defs_commit(struct cluster *c, struct cluster_defs_snap *snap,
                    cluster_done_fn *cb, void *arg)
{
    struct sitem *now = NULL, *s, *tmp, *was;
    struct commit *cm = xcalloc(1, sizeof(*cm));
    size_t cap = 0;

    cm->c = c;
    cm->cb = cb;
    cm->arg = arg;
    cm->status = WR_OK;
    if (c->node)
        snap_fill(c, &now);
    HASH_ITER(hh, now, s, tmp)
    {
        HASH_FIND(hh, snap->items, s->key, strlen(s->key), was);
        if (was)
            was->seen = true;
        if (!was || !json_equal(was->item, s->item))
            add_op(cm, &cap, true, s->kind, s->key, s->item,
                   was ? was->item : NULL);
    }
    HASH_ITER(hh, snap->items, s, tmp)
    {
        if (!s->seen)
            add_op(cm, &cap, false, s->kind, s->key, s->item, s->item);
    }
    snap_free_map(&now);
    cluster_defs_snap_free(snap);
    if (cm->n == 0) {
        free(cm);
        return false;
    }
    commit_next(cm);
    return true;
}
