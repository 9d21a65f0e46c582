/*
 * mgmt_api_admin.c: vhosts, users, permissions, vhost limits, policies,
 * parameters and definitions over HTTP.
 *
 *   /api/vhosts[/v]                   GET; PUT creates (201; 204 when it
 *                                     existed) and grants the acting user
 *                                     full permissions, as RabbitMQ does;
 *                                     DELETE closes the vhost's
 *                                     connections (320 "vhost 'v' is
 *                                     deleted") and removes its data
 *   /api/users[/u], /api/users/without-permissions, /api/users/u/permissions
 *   /api/permissions[/v/u], /api/vhosts/v/permissions
 *   /api/vhost-limits[/v[/name]]      {"value": N}
 *   /api/policies[/v[/name]], /api/operator-policies/...
 *   /api/parameters[/component[/v[/name]]], /api/global-parameters[/name]
 *   /api/definitions[/v]              GET exports, POST imports (a JSON
 *                                     body, or a multipart form with a
 *                                     "file" field as the web UI sends)
 *
 * The model's rules (password hashing, regex checks, limits, the
 * definitions format) live in vhost/; this file maps HTTP onto them and
 * their errors onto RabbitMQ's status codes.
 */
#include "server/mgmt/mgmt_int.h"

#include "cluster/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

/* ---- helpers */

/* "a,b" (or a JSON array of strings) -> JSON array of tags. */
static json_t *
tags_json(const char *text)
{
    json_t *a = json_array();
    const char *p = text;

    while (p && *p) {
        size_t len = strcspn(p, ",");
        size_t s = 0;

        while (s < len && p[s] == ' ')
            s++;
        if (len > s)
            json_array_append_new(a, json_stringn(p + s, len - s));
        p += len;
        if (*p == ',')
            p++;
    }
    return a;
}

/* "tags" of a body: a string "a,b" or an array of strings -> "a,b"
 * (new string), or NULL when absent or malformed. */
static char *
body_tags(json_t *body, bool *bad)
{
    json_t *t = json_object_get(body, "tags"), *e;
    struct buf b;
    size_t i;

    *bad = false;
    if (!t || json_is_null(t))
        return NULL;
    if (json_is_string(t))
        return xstrdup(json_string_value(t));
    if (!json_is_array(t)) {
        *bad = true;
        return NULL;
    }
    buf_init(&b);
    json_array_foreach(t, i, e)
    {
        if (!json_is_string(e)) {
            *bad = true;
            buf_fini(&b);
            return NULL;
        }
        buf_printf(&b, "%s%s", b.len ? "," : "", json_string_value(e));
    }
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

static void
reply_missing(struct mgmt_req *r, const char *const *keys, json_t *body)
{
    struct buf t;
    bool any = false;

    buf_init(&t);
    buf_put_u8(&t, '[');
    for (size_t i = 0; keys[i]; i++) {
        if (json_object_get(body, keys[i]))
            continue;
        buf_printf(&t, "%s{key_missing,%s}", any ? "," : "", keys[i]);
        any = true;
    }
    buf_put_u8(&t, ']');
    mgmt_bad_request(r, "%.*s", (int)t.len, (const char *)t.data);
    buf_fini(&t);
}

static bool
has_keys(json_t *body, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (!json_object_get(body, keys[i]))
            return false;
    return true;
}

/* ---- vhosts */

/* The bytes vh's connections received and sent. */
static void
vhost_octets(struct vhost *vh, uint64_t *recv, uint64_t *send)
{
    *recv = *send = 0;
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;

        conn_info(c, &ci);
        if (ci.vh == vh) {
            *recv += ci.recv_oct;
            *send += ci.send_oct;
        }
    }
}

/* "messages*" and "message_stats" of a vhost. */
static void
vhost_messages_json(json_t *o, const struct mgmt_vtotals *t)
{
    const struct mgmt_qrates *rt = &t->rates;

    json_object_set_new(o, "messages",
                        json_integer((json_int_t)(t->ready + t->unacked)));
    json_object_set_new(o, "messages_details",
                        mgmt_rate(rt->ready + rt->unacked));
    json_object_set_new(o, "messages_ready",
                        json_integer((json_int_t)t->ready));
    json_object_set_new(o, "messages_ready_details", mgmt_rate(rt->ready));
    json_object_set_new(o, "messages_unacknowledged",
                        json_integer((json_int_t)t->unacked));
    json_object_set_new(o, "messages_unacknowledged_details",
                        mgmt_rate(rt->unacked));
}

static json_t *
vhost_message_stats(const struct mgmt_vtotals *t)
{
    const struct mgmt_qrates *rt = &t->rates;

    return json_pack(
        "{s:I, s:o, s:I, s:o, s:I, s:o, s:I, s:o, s:I, s:o}", "publish",
        (json_int_t)t->publish, "publish_details", mgmt_rate(rt->publish),
        "deliver_get", (json_int_t)t->deliver, "deliver_get_details",
        mgmt_rate(rt->deliver), "ack", (json_int_t)t->ack, "ack_details",
        mgmt_rate(rt->ack), "redeliver", (json_int_t)t->redeliver,
        "redeliver_details", mgmt_rate(rt->redeliver), "deliver",
        (json_int_t)t->deliver, "deliver_details", mgmt_rate(rt->deliver));
}

/* The node leading vhost: this one on a single node; null when no node
 * does now. */
static json_t *
leader_json(const char *vhost)
{
    const char *leader;

    if (!srv->cluster)
        return json_string(mgmt_node_name());
    leader = cluster_leader_of(srv->cluster, vhost, NULL);
    /* A node that stopped leading (lost etcd, stopping) still holds its
     * own name as the last leader it saw until etcd tells it otherwise:
     * no known leader is the truth meanwhile, not this node. */
    if (leader && strcmp(leader, cluster_node_name(srv->cluster)) == 0 &&
        !cluster_leads(srv->cluster, vhost))
        return json_null();
    return leader ? json_string(leader) : json_null();
}

/* RabbitMQ's {node: "running"|"stopped"}: the leader running, or the
 * node holding the vhost's data stopped. */
static json_t *
cluster_state(const char *vhost)
{
    const char *node;

    if (!srv->cluster)
        return json_pack("{s:s}", mgmt_node_name(), "running");
    if ((node = cluster_leader_of(srv->cluster, vhost, NULL)) != NULL)
        return json_pack("{s:s}", node, "running");
    if ((node = cluster_home_of(srv->cluster, vhost)) != NULL)
        return json_pack("{s:s}", node, "stopped");
    return json_object();
}

/* The vhost's in-sync set as committed in etcd (issue 12): this node
 * alone on a single node. */
static json_t *
isr_json(const char *vhost)
{
    const json_t *isr;

    if (!srv->cluster)
        return json_pack("[s]", mgmt_node_name());
    isr = cluster_isr_of(srv->cluster, vhost, NULL, NULL);
    return isr ? json_deep_copy(isr) : json_array();
}

/* The effective replication settings, and the vhost's own in its
 * metadata (as definitions export them). */
static void
vhost_repl_json(json_t *o, const struct vhost_info *vi)
{
    json_t *meta = json_object_get(o, "metadata");
    uint32_t replicas, min_isr;

    repl_settings(vi, &replicas, &min_isr);
    json_object_set_new(o, "replicas", json_integer((json_int_t)replicas));
    json_object_set_new(o, "min_isr", json_integer((json_int_t)min_isr));
    if (vi->repl_replicas)
        json_object_set_new(meta, "replicas",
                            json_integer((json_int_t)vi->repl_replicas));
    if (vi->repl_min_isr)
        json_object_set_new(meta, "min_isr",
                            json_integer((json_int_t)vi->repl_min_isr));
}

static json_t *
vhost_json(struct vhost *vh)
{
    struct mgmt_vtotals t = {0};
    uint64_t recv, send;
    struct vhost_info vi;
    json_t *o;

    vhost_info(vh, &vi);
    recv = send = 0;
    if (vhost_is_serving(vh)) { /* else its leader's figures count */
        mgmt_stats_vhost(vh, &t);
        vhost_octets(vh, &recv, &send);
    }
    o = json_pack("{s:s, s:s, s:o, s:s, s:{s:s, s:o}, s:b, s:o, s:o}", "name",
                  vi.name, "description", vi.description ? vi.description : "",
                  "tags", tags_json(vi.tags), "default_queue_type", "undefined",
                  "metadata", "description",
                  vi.description ? vi.description : "", "tags",
                  tags_json(vi.tags), "tracing", 0, "cluster_state",
                  cluster_state(vi.name), "leader", leader_json(vi.name));
    vhost_messages_json(o, &t);
    vhost_repl_json(o, &vi);
    json_object_set_new(o, "isr", isr_json(vi.name));
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)recv));
    json_object_set_new(o, "recv_oct_details", mgmt_rate(0));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)send));
    json_object_set_new(o, "send_oct_details", mgmt_rate(0));
    json_object_set_new(o, "message_stats", vhost_message_stats(&t));
    return o;
}

void
mgmt_h_vhosts(struct mgmt_req *r)
{
    size_t n;
    struct vhost **vs = mgmt_vhosts(&n);
    json_t *items = json_array();

    for (size_t i = 0; i < n; i++)
        if (mgmt_can_see_vhost(r, vs[i], true))
            json_array_append_new(items, vhost_json(vs[i]));
    free(vs);
    mgmt_reply_list(r, items, (const char *const[]){"name", NULL});
}

static bool
has_repl_key(json_t *body, const char *key)
{
    return json_object_get(body, key) ||
           json_object_get(json_object_get(body, "metadata"), key);
}

/* The replication settings of a PUT: those the body names (null: back to
 * the node's default), the vhost's own for the others. False (400 sent)
 * when they are not valid. */
static bool
vhost_put_repl(struct mgmt_req *r, json_t *body, struct vhost *vh,
               struct vhost_repl_meta *out)
{
    struct vhost_info vi = {0};
    struct vhost_repl_meta given;
    uint32_t replicas, min_isr;
    char why[128];

    if (node_vhost_repl_parse(body, &given, why, sizeof(why)) != WR_OK) {
        mgmt_bad_request(r, "%s", why);
        return false;
    }
    if (vh)
        vhost_info(vh, &vi);
    out->replicas =
        has_repl_key(body, "replicas") ? given.replicas : vi.repl_replicas;
    out->min_isr =
        has_repl_key(body, "min_isr") ? given.min_isr : vi.repl_min_isr;
    vi.repl_replicas = out->replicas;
    vi.repl_min_isr = 0;
    repl_settings(&vi, &replicas, &min_isr);
    if (out->min_isr > replicas) {
        mgmt_bad_request(r, "min_isr (%u) must not exceed replicas (%u)",
                         out->min_isr, replicas);
        return false;
    }
    return true;
}

static void
vhost_put(struct mgmt_req *r, void *obj, void *ctx)
{
    const char *name = ctx;
    struct vhost *vh = obj;
    json_t *body = mgmt_body_json(r);
    const char *desc, *why;
    struct vhost_repl_meta repl;
    struct vherr err;
    bool bad, created = false;
    char *tags;

    if (!body)
        return;
    tags = body_tags(body, &bad);
    if (bad) {
        mgmt_bad_request(r, "tags must be a string or a list of strings");
        goto out;
    }
    if (!vhost_put_repl(r, body, vh, &repl))
        goto out;
    if (!vh) {
        if (!node_vhost_name_check(name, &why)) {
            mgmt_bad_request(r, "%s", why);
            goto out;
        }
        vh = node_vhost_add(srv->node, name);
        if (!vh) {
            mgmt_reply_error(r, 500, "internal_server_error",
                             "cannot create vhost '%s' (see the broker log)",
                             name);
            goto out;
        }
        created = true;
        log_info("management API: user '%s' created vhost '%s'", r->user_name,
                 name);
        /* RabbitMQ grants the creating user full access. */
        if (node_perm_set(srv->node, name, r->user_name, ".*", ".*", ".*",
                          &err) != WR_OK)
            log_warn("vhost '%s': cannot grant '%s' permissions: %s", name,
                     r->user_name, err.text);
    }
    desc = json_string_value(json_object_get(body, "description"));
    node_vhost_set_meta(srv->node, vh, desc, tags);
    node_vhost_set_repl(srv->node, vh, &repl);
    mgmt_reply_empty(r, created ? 201 : 204);
out:
    free(tags);
    json_decref(body);
}

static void
vhost_show(struct mgmt_req *r, void *vh, void *ctx)
{
    (void)ctx;
    if (mgmt_check_vhost(r, vh, true))
        mgmt_reply_item(r, vhost_json(vh));
}

/* Its connections close (320), then it goes with everything in it. */
static void
vhost_delete(struct mgmt_req *r, void *vh, void *ctx)
{
    char why[400];

    log_info("management API: user '%s' deleted vhost '%s'", r->user_name,
             (const char *)ctx);
    snprintf(why, sizeof(why), "vhost '%s' is deleted", vhost_name(vh));
    conn_close_vhost(srv, vh, why);
    node_vhost_remove(srv->node, vh);
    mgmt_reply_empty(r, 204);
}

void
mgmt_h_vhost(struct mgmt_req *r)
{
    static const struct mgmt_item_ops ops = {vhost_show, vhost_put,
                                             vhost_delete};
    const char *name = r->args[0];

    mgmt_item(r, &ops, node_vhost_find(srv->node, name), (void *)name);
}

/* ---- users */

static json_t *
user_json(const struct user *u)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:{}}", "name", u->name,
                     "password_hash", u->password_hash ? u->password_hash : "",
                     "hashing_algorithm",
                     u->hashing_algorithm ? u->hashing_algorithm
                                          : "rabbit_password_hashing_sha256",
                     "tags", tags_json(u->tags), "limits");
}

static bool
user_has_perms(const char *name)
{
    for (const struct perm *p = node_perms(srv->node); p; p = p->next)
        if (strcmp(p->user, name) == 0)
            return true;
    return false;
}

static void
reply_users(struct mgmt_req *r, bool without_perms)
{
    json_t *items = json_array();

    for (struct user *u = node_users(srv->node); u; u = u->hh.next)
        if (!without_perms || !user_has_perms(u->name))
            json_array_append_new(items, user_json(u));
    mgmt_reply_list(r, items, (const char *const[]){"name", NULL});
}

void
mgmt_h_users(struct mgmt_req *r)
{
    reply_users(r, false);
}

void
mgmt_h_users_without_perms(struct mgmt_req *r)
{
    reply_users(r, true);
}

static void
user_put(struct mgmt_req *r, void *obj, void *ctx)
{
    const char *name = ctx;
    struct user *u = obj;
    json_t *body = mgmt_body_json(r);
    const char *pw, *hash, *alg;
    struct vherr err;
    bool bad;
    char *tags;

    if (!body)
        return;
    tags = body_tags(body, &bad);
    if (bad) {
        mgmt_bad_request(r, "tags must be a string or a list of strings");
        goto out;
    }
    pw = json_string_value(json_object_get(body, "password"));
    hash = json_string_value(json_object_get(body, "password_hash"));
    alg = json_string_value(json_object_get(body, "hashing_algorithm"));
    if (pw && hash) {
        mgmt_bad_request(r, "password and password_hash are exclusive");
        goto out;
    }
    if (!*name || strlen(name) > 255) {
        mgmt_bad_request(r, "invalid user name");
        goto out;
    }
    mgmt_reply_done(r,
                    node_user_put(srv->node, name, pw, hash, hash ? alg : NULL,
                                  tags ? tags
                                  : u  ? u->tags
                                       : "",
                                  &err),
                    &err, u ? 204 : 201);
out:
    free(tags);
    json_decref(body);
}

static void
user_show(struct mgmt_req *r, void *u, void *ctx)
{
    (void)ctx;
    mgmt_reply_item(r, user_json(u));
}

static void
user_delete(struct mgmt_req *r, void *u, void *ctx)
{
    struct vherr err;

    (void)u;
    mgmt_reply_done(r, node_user_delete(srv->node, ctx, &err), &err, 204);
}

void
mgmt_h_user(struct mgmt_req *r)
{
    static const struct mgmt_item_ops ops = {user_show, user_put, user_delete};
    const char *name = r->args[0];

    mgmt_item(r, &ops, node_user_find(srv->node, name), (void *)name);
}

/* ---- permissions */

static json_t *
perm_json(const struct perm *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", p->user, "vhost",
                     p->vhost, "configure", p->re[PERM_CONFIGURE], "write",
                     p->re[PERM_WRITE], "read", p->re[PERM_READ]);
}

static void
reply_perms(struct mgmt_req *r, const char *vhost, const char *user)
{
    json_t *items = json_array();

    for (const struct perm *p = node_perms(srv->node); p; p = p->next)
        if ((!vhost || strcmp(p->vhost, vhost) == 0) &&
            (!user || strcmp(p->user, user) == 0))
            json_array_append_new(items, perm_json(p));
    mgmt_reply_list(r, items, (const char *const[]){"vhost", "user", NULL});
}

void
mgmt_h_permissions(struct mgmt_req *r)
{
    reply_perms(r, NULL, NULL);
}

void
mgmt_h_vhost_perms(struct mgmt_req *r)
{
    if (mgmt_vhost_arg(r, r->args[0]))
        reply_perms(r, r->args[0], NULL);
}

void
mgmt_h_user_perms(struct mgmt_req *r)
{
    if (!node_user_find(srv->node, r->args[0])) {
        mgmt_not_found(r);
        return;
    }
    reply_perms(r, NULL, r->args[0]);
}

void
mgmt_h_topic_permissions(struct mgmt_req *r)
{
    /* Topic permissions are not supported: there are never any. */
    if (strcmp(r->seg[1], "vhosts") == 0 && !mgmt_vhost_arg(r, r->args[0]))
        return;
    if (strcmp(r->seg[1], "users") == 0 &&
        !node_user_find(srv->node, r->args[0])) {
        mgmt_not_found(r);
        return;
    }
    mgmt_reply_list(r, json_array(), NULL);
}

static void
perm_show(struct mgmt_req *r, void *p, void *ctx)
{
    (void)ctx;
    mgmt_reply_item(r, perm_json(p));
}

static void
perm_delete(struct mgmt_req *r, void *p, void *ctx)
{
    struct vherr err;

    (void)p;
    (void)ctx;
    mgmt_reply_done(r, node_perm_clear(srv->node, r->args[0], r->args[1], &err),
                    &err, 204);
}

static void
perm_put(struct mgmt_req *r, void *p, void *ctx)
{
    static const char *const keys[] = {"configure", "write", "read", NULL};
    const char *vhost = r->args[0], *user = r->args[1];
    struct vherr err;
    json_t *body;

    (void)ctx;
    if (!(body = mgmt_body_json(r)))
        return;
    if (!has_keys(body, keys)) {
        reply_missing(r, keys, body);
    } else if (!json_is_string(json_object_get(body, "configure")) ||
               !json_is_string(json_object_get(body, "write")) ||
               !json_is_string(json_object_get(body, "read"))) {
        mgmt_bad_request(r, "configure, write and read must be strings");
    } else {
        mgmt_reply_done(
            r,
            node_perm_set(srv->node, vhost, user,
                          json_string_value(json_object_get(body, "configure")),
                          json_string_value(json_object_get(body, "write")),
                          json_string_value(json_object_get(body, "read")),
                          &err),
            &err, p ? 204 : 201);
    }
    json_decref(body);
}

void
mgmt_h_permission(struct mgmt_req *r)
{
    static const struct mgmt_item_ops ops = {perm_show, perm_put, perm_delete};
    const char *vhost = r->args[0], *user = r->args[1];

    if (!node_vhost_find(srv->node, vhost) ||
        !node_user_find(srv->node, user)) {
        mgmt_not_found(r);
        return;
    }
    mgmt_item(r, &ops, (void *)node_perm_find(srv->node, vhost, user), NULL);
}

/* ---- vhost limits */

/* The vhost's limits object (new), or NULL when it has none. */
static json_t *
limits_of(struct vhost *vh)
{
    json_t *item = node_kv_find(srv->node, KV_PARAMETER, vhost_name(vh),
                                "vhost-limits", "limits");
    json_t *v = json_object_get(item, "value");

    if (!json_is_object(v) || json_object_size(v) == 0)
        return NULL;
    return json_deep_copy(v);
}

void
mgmt_h_limits(struct mgmt_req *r)
{
    json_t *items = json_array(), *lim;
    struct vhost **vs, *one = NULL;
    size_t n;

    if (r->args[0]) {
        if (!(one = mgmt_vhost_arg(r, r->args[0])) ||
            !mgmt_check_vhost(r, one, true)) {
            json_decref(items);
            return;
        }
    }
    vs = mgmt_vhosts(&n);
    for (size_t i = 0; i < n; i++) {
        if ((one && vs[i] != one) || !mgmt_can_see_vhost(r, vs[i], true))
            continue;
        if ((lim = limits_of(vs[i])) != NULL)
            json_array_append_new(items,
                                  json_pack("{s:s, s:o}", "vhost",
                                            vhost_name(vs[i]), "value", lim));
    }
    free(vs);
    mgmt_reply_list(r, items, NULL);
}

void
mgmt_h_limit(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    const char *name = r->args[1];
    struct vherr err;
    json_t *body, *v;

    if (!vh)
        return;
    if (r->method == HTTP_DELETE) {
        mgmt_reply_done(r, node_vhost_clear_limit(srv->node, vh, name, &err),
                        &err, 204);
        return;
    }
    if (!(body = mgmt_body_json(r)))
        return;
    v = json_object_get(body, "value");
    if (!v) {
        mgmt_bad_request(r, "[{key_missing,value}]");
    } else if (strcmp(name, "max-connections") != 0 &&
               strcmp(name, "max-queues") != 0) {
        char *val = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

        mgmt_bad_request(r,
                         "Validation failed\n\nUnrecognised terms "
                         "[{<<\"%s\">>,%s}] in limits\n",
                         name, val ? val : "?");
        free(val);
    } else if (!json_is_integer(v)) {
        mgmt_bad_request(r, "Validation failed\n\n%s should be a number\n",
                         name);
    } else {
        mgmt_reply_done(r,
                        node_vhost_set_limit(srv->node, vh, name,
                                             json_integer_value(v), &err),
                        &err, 204);
    }
    json_decref(body);
}

/* ---- user limits (max-connections, max-channels) */

void
mgmt_h_user_limits(struct mgmt_req *r)
{
    json_t *items = json_array(), *lim;
    const char *only = r->args[0];

    if (only && !node_user_find(srv->node, only)) {
        json_decref(items);
        mgmt_not_found(r);
        return;
    }
    for (struct user *u = node_users(srv->node); u; u = u->hh.next) {
        if (only && strcmp(only, u->name) != 0)
            continue;
        lim = user_limits_json(u);
        if (json_object_size(lim) == 0) {
            json_decref(lim);
            continue;
        }
        json_array_append_new(
            items, json_pack("{s:s, s:o}", "user", u->name, "value", lim));
    }
    mgmt_reply_list(r, items, NULL);
}

/* RabbitMQ prints the value it refuses as an Erlang term. */
static char *
erlang_term(json_t *v)
{
    char *s;

    if (json_is_string(v)) {
        s = xmalloc(json_string_length(v) + 7);
        sprintf(s, "<<\"%s\">>", json_string_value(v));
        return s;
    }
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return s ? s : xstrdup("?");
}

void
mgmt_h_user_limit(struct mgmt_req *r)
{
    const char *user = r->args[0], *name = r->args[1];
    struct vherr err;
    json_t *body, *v;
    char *val;

    if (!node_user_find(srv->node, user)) {
        mgmt_bad_request_json(r, json_pack("[s,s]", "no_such_user", user));
        return;
    }
    if (r->method == HTTP_DELETE) {
        mgmt_reply_done(r, node_user_clear_limit(srv->node, user, name, &err),
                        &err, 204);
        return;
    }
    if (!(body = mgmt_body_json(r)))
        return;
    v = json_object_get(body, "value");
    if (!v) {
        mgmt_bad_request(r, "[{key_missing,value}]");
    } else if (!json_is_integer(v)) {
        val = erlang_term(v);
        mgmt_bad_request(r, "%s should be a number, actually was %s", name,
                         val);
        free(val);
    } else if (node_user_set_limit(srv->node, user, name, json_integer_value(v),
                                   &err) != WR_OK) {
        mgmt_bad_request(r, "%s", err.text);
    } else {
        mgmt_reply_empty(r, 204);
    }
    json_decref(body);
}

/* ---- policies and parameters */

/* Items of a kind in the user's visible vhosts (or one). */
static json_t *
kv_items(struct mgmt_req *r, enum node_kv kind, const char *vhost,
         const char *component)
{
    json_t *all = node_kv_list(srv->node, kind, vhost), *out = json_array();
    json_t *o;
    size_t i;

    json_array_foreach(all, i, o)
    {
        const char *v = json_string_value(json_object_get(o, "vhost"));
        const char *comp = json_string_value(json_object_get(o, "component"));
        struct vhost *vh = v ? node_vhost_find(srv->node, v) : NULL;

        if (kind != KV_GLOBAL_PARAMETER &&
            (!vh || !mgmt_can_see_vhost(r, vh, true)))
            continue;
        if (component && (!comp || strcmp(comp, component) != 0))
            continue;
        json_array_append(out, o);
    }
    json_decref(all);
    return out;
}

static void
reply_kv_list(struct mgmt_req *r, enum node_kv kind, const char *vhost,
              const char *component)
{
    if (vhost) {
        struct vhost *vh = mgmt_vhost_arg(r, vhost);

        if (!vh || !mgmt_check_vhost(r, vh, true))
            return;
    }
    mgmt_reply_list(r, kv_items(r, kind, vhost, component),
                    (const char *const[]){"vhost", "name", NULL});
}

void
mgmt_h_policies(struct mgmt_req *r)
{
    reply_kv_list(r, KV_POLICY, r->args[0], NULL);
}

void
mgmt_h_op_policies(struct mgmt_req *r)
{
    reply_kv_list(r, KV_OPERATOR_POLICY, r->args[0], NULL);
}

void
mgmt_h_parameters(struct mgmt_req *r)
{
    /* /api/parameters[/component[/vhost]] */
    reply_kv_list(r, KV_PARAMETER, r->args[1], r->args[0]);
}

void
mgmt_h_global_parameters(struct mgmt_req *r)
{
    reply_kv_list(r, KV_GLOBAL_PARAMETER, NULL, NULL);
}

/* Which policy or parameter a request names. */
struct kv_ref {
    enum node_kv kind;
    const char *vhost, *component, *name;
    const char *const *value_keys; /* what a PUT body must hold */
};

static void
kv_show(struct mgmt_req *r, void *item, void *ctx)
{
    (void)ctx;
    mgmt_reply_item(r, json_deep_copy(item));
}

static void
kv_delete(struct mgmt_req *r, void *item, void *ctx)
{
    const struct kv_ref *k = ctx;
    struct vherr err;

    (void)item;
    mgmt_reply_done(r,
                    node_kv_delete(srv->node, k->kind, k->vhost, k->component,
                                   k->name, &err),
                    &err, 204);
}

/* A policy's priority and apply-to, as RabbitMQ keeps them: a priority
 * given as a string of digits becomes an integer. */
static void
policy_fields(json_t *body, json_t *value)
{
    json_t *prio = json_object_get(body, "priority");
    json_t *apply = json_object_get(body, "apply-to");

    if (json_is_string(prio)) {
        const char *text = json_string_value(prio);
        char *end;
        long long v = strtoll(text, &end, 10);

        if (*text && !*end)
            json_object_set_new(value, "priority", json_integer(v));
        else
            json_object_set(value, "priority", prio);
    } else if (prio) {
        json_object_set(value, "priority", prio);
    }
    if (apply)
        json_object_set(value, "apply-to", apply);
}

/* The stored item is the body's object itself, cut to the value keys
 * (and a policy's priority and apply-to). */
static void
kv_put(struct mgmt_req *r, void *item, void *ctx)
{
    const struct kv_ref *k = ctx;
    json_t *body, *value;
    struct vherr err;

    if (!(body = mgmt_body_json(r)))
        return;
    if (!has_keys(body, k->value_keys)) {
        reply_missing(r, k->value_keys, body);
        json_decref(body);
        return;
    }
    value = json_object();
    for (size_t i = 0; k->value_keys[i]; i++)
        json_object_set(value, k->value_keys[i],
                        json_object_get(body, k->value_keys[i]));
    if (k->kind == KV_POLICY || k->kind == KV_OPERATOR_POLICY)
        policy_fields(body, value);
    json_decref(body);
    mgmt_reply_done(r,
                    node_kv_put(srv->node, k->kind, k->vhost, k->component,
                                k->name, value, &err),
                    &err, item ? 204 : 201);
}

/* GET, PUT or DELETE of one policy or parameter. */
static void
kv_one(struct mgmt_req *r, const struct kv_ref *k)
{
    static const struct mgmt_item_ops ops = {kv_show, kv_put, kv_delete};
    struct vhost *vh;

    if (k->vhost && (!(vh = mgmt_vhost_arg(r, k->vhost)) ||
                     !mgmt_check_vhost(r, vh, mgmt_is_read(r))))
        return;
    mgmt_item(r, &ops,
              node_kv_find(srv->node, k->kind, k->vhost, k->component, k->name),
              (void *)k);
}

void
mgmt_h_policy(struct mgmt_req *r)
{
    static const char *const keys[] = {"pattern", "definition", NULL};

    kv_one(r, &(struct kv_ref){KV_POLICY, r->args[0], NULL, r->args[1], keys});
}

void
mgmt_h_op_policy(struct mgmt_req *r)
{
    static const char *const keys[] = {"pattern", "definition", NULL};

    kv_one(r, &(struct kv_ref){KV_OPERATOR_POLICY, r->args[0], NULL, r->args[1],
                               keys});
}

void
mgmt_h_parameter(struct mgmt_req *r)
{
    static const char *const keys[] = {"value", NULL};

    /* /api/parameters/component/vhost/name */
    kv_one(r, &(struct kv_ref){KV_PARAMETER, r->args[1], r->args[0], r->args[2],
                               keys});
}

void
mgmt_h_global_parameter(struct mgmt_req *r)
{
    static const char *const keys[] = {"value", NULL};

    kv_one(r,
           &(struct kv_ref){KV_GLOBAL_PARAMETER, NULL, NULL, r->args[0], keys});
}

/* ---- definitions */

/* The "file" part of a multipart/form-data body (the web UI's upload).
 * Returns a view into the body, or BYTES_NULL. */
static struct bytes
multipart_file(const struct mgmt_req *r)
{
    const char *ct = r->content_type, *b;
    char boundary[200], delim[210];
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    size_t blen;

    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0 ||
        !(b = strstr(ct, "boundary=")))
        return BYTES_NULL;
    b += 9;
    blen = strcspn(b, "; ");
    if (*b == '"') {
        b++;
        blen = strcspn(b, "\"");
    }
    if (blen == 0 || blen >= sizeof(boundary))
        return BYTES_NULL;
    snprintf(boundary, sizeof(boundary), "%.*s", (int)blen, b);
    snprintf(delim, sizeof(delim), "--%s", boundary);
    blen = strlen(delim);
    while (p < end) {
        const uint8_t *part = memmem(p, (size_t)(end - p), delim, blen);
        const uint8_t *hdr_end, *next;

        if (!part)
            break;
        part += blen;
        hdr_end = memmem(part, (size_t)(end - part), "\r\n\r\n", 4);
        if (!hdr_end)
            break;
        next = memmem(hdr_end + 4, (size_t)(end - hdr_end - 4), delim, blen);
        if (!next)
            break;
        if (memmem(part, (size_t)(hdr_end - part), "name=\"file\"", 11))
            return bytes_of(hdr_end + 4, (size_t)(next - 2 - (hdr_end + 4)));
        p = next;
    }
    return BYTES_NULL;
}

/* A per-vhost import: every object goes to that vhost. */
void
mgmt_definitions_scope(json_t *doc, const char *vhost)
{
    static const char *const lists[] = {"queues",   "exchanges",  "bindings",
                                        "policies", "parameters", NULL};

    json_object_del(doc, "users");
    json_object_del(doc, "vhosts");
    json_object_del(doc, "permissions");
    json_object_del(doc, "topic_permissions");
    json_object_del(doc, "global_parameters");
    for (size_t i = 0; lists[i]; i++) {
        json_t *a = json_object_get(doc, lists[i]), *o;
        size_t k;

        json_array_foreach(a, k, o)
        {
            if (json_is_object(o))
                json_object_set_new(o, "vhost", json_string(vhost));
        }
    }
}

json_t *
mgmt_definitions_doc(struct mgmt_req *r)
{
    struct bytes file = multipart_file(r);
    json_error_t jerr;
    json_t *doc;

    if (file.ptr)
        doc = json_loadb((const char *)file.ptr, file.len, 0, &jerr);
    else if (r->body.len == 0)
        doc = NULL;
    else
        doc = json_loadb((const char *)r->body.ptr, r->body.len, 0, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        mgmt_bad_request(r, "not_json");
        return NULL;
    }
    return doc;
}

static void
definitions_post(struct mgmt_req *r, const char *vhost)
{
    struct vherr err;
    json_t *doc = mgmt_definitions_doc(r);

    if (!doc)
        return;
    if (vhost)
        mgmt_definitions_scope(doc, vhost);
    if (node_defs_import(srv->node, doc, &err) != WR_OK) {
        json_decref(doc);
        log_warn("management API: definitions import by '%s' failed: %s",
                 r->user_name, err.text);
        mgmt_bad_request(r, "%s", err.text);
        return;
    }
    json_decref(doc);
    log_info("management API: user '%s' imported definitions%s%s", r->user_name,
             vhost ? " into vhost " : "", vhost ? vhost : "");
    mgmt_reply_empty(r, 204);
}

void
mgmt_h_definitions(struct mgmt_req *r)
{
    const char *vhost = r->args[0];
    const char *dl = mgmt_qs(r, "download");

    if (vhost && !mgmt_vhost_arg(r, vhost))
        return;
    if (r->method == HTTP_POST) {
        definitions_post(r, vhost);
        return;
    }
    if (dl && *dl && bytes_is_utf8(bytes_str(dl)) && !strpbrk(dl, "\"\r\n"))
        buf_printf(&r->hdrs,
                   "content-disposition: attachment; filename=\"%s\"\r\n", dl);
    mgmt_reply_json(r, 200, node_defs_export(srv->node, vhost));
}
