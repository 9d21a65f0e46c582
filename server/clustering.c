/*
 * clustering.c: the broker's side of the cluster (cluster/cluster.h).
 *
 * With cluster_formation.peer_discovery_backend = etcd, server_init
 * joins the cluster after the node booted from its own data directory
 * and before any listener opens: the cluster's users, vhosts and
 * permissions are this node's from the first client on. Then:
 *
 *   lead(vhost)    this node runs the vhost: its log opens (recovering
 *                  what this disk holds of it) and it is served;
 *   unlead(vhost)  it stops serving it (fencing, a hand-off, a deleted
 *                  vhost): its clients get 320 CONNECTION_FORCED and
 *                  reconnect, to any node;
 *   connection.open of a vhost served elsewhere is relayed to its
 *   leader (relay.c); of one that no node serves now, refused (530).
 *
 * A clean stop closes every client first, then hands the empty vhosts to
 * other nodes and leaves the cluster (cluster_stop).
 */
#include "server/conn.h"

#include "cluster/cluster.h"
#include "cluster/mirror.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define CLUSTER_STOP_MS 2000

/* ---- load_definitions on a cluster node
 *
 * The file's users, vhosts, permissions, limits, parameters and policies
 * are the cluster's: they go into this node's model, and what changed
 * into etcd, before the node listens (as a management import does; new
 * vhosts get their leaders). Its exchanges, queues and bindings belong
 * to their vhosts' leaders: each vhost's are kept until this node leads
 * that vhost and imported then, once. So every node configured with the
 * same file brings the cluster to it, whichever node leads which vhost,
 * and a vhost led elsewhere gets its objects when its leader starts. */

struct boot_commit {
    bool done;
    int status;
    char why[512];
};

static void
boot_committed(void *arg, int status, const char *why)
{
    struct boot_commit *bc = arg;

    bc->done = true;
    bc->status = status;
    snprintf(bc->why, sizeof(bc->why), "%s", why ? why : "");
}

static void
import_vhost_part(struct server *s, const char *name)
{
    json_t *part = s->boot_parts ? json_object_get(s->boot_parts, name) : NULL;
    struct vherr err;

    if (!part)
        return;
    if (node_defs_import(s->node, part, &err) != WR_OK)
        log_err("load_definitions: vhost '%s': %s", name, err.text);
    else
        log_info("load_definitions: imported the exchanges, queues and "
                 "bindings of vhost '%s'",
                 name);
    json_object_del(s->boot_parts, name);
}

int
clustering_load_definitions(struct server *s, const char *path)
{
    struct boot_commit bc = {0};
    struct cluster_defs_snap *snap;
    json_error_t jerr;
    struct vherr err;
    const char *name;
    json_t *doc = json_load_file(path, 0, &jerr), *part;
    void *tmp;

    if (!json_is_object(doc)) {
        log_err("load_definitions: %s:%d: %s", path, jerr.line,
                doc ? "definitions must be a JSON object" : jerr.text);
        json_decref(doc);
        return WR_ERR;
    }
    s->boot_parts = node_defs_split_vhosts(doc);
    snap = cluster_defs_snapshot(s->cluster);
    if (node_defs_import(s->node, doc, &err) != WR_OK) {
        log_err("load_definitions: %s: %s", path, err.text);
        cluster_defs_snap_free(snap);
        json_decref(doc);
        return WR_ERR;
    }
    json_decref(doc);
    if (cluster_defs_commit(s->cluster, snap, boot_committed, &bc)) {
        while (!bc.done)
            ev_run(s->loop, EVRUN_ONCE);
        if (bc.status != WR_OK) {
            log_err("load_definitions: %s: the cluster's etcd did not take "
                    "the definitions (%s): start again when etcd answers",
                    path, bc.why);
            return WR_ERR;
        }
    }
    log_info("imported definitions from %s into the cluster", path);
    json_object_foreach_safe(s->boot_parts, tmp, name, part)
    {
        struct vhost *vh = node_vhost_find(s->node, name);

        if (vh && vhost_is_serving(vh))
            import_vhost_part(s, name);
    }
    return WR_OK;
}

/* ---- failover to a mirror's copy (issue 12) */

static bool
isr_lists(const json_t *isr, const char *node)
{
    size_t i;
    json_t *it;

    json_array_foreach(isr, i, it)
    {
        if (json_is_string(it) && strcmp(json_string_value(it), node) == 0)
            return true;
    }
    return false;
}

/* The copy's exchanges, queues and bindings into the model. */
static void
import_copy_defs(struct server *s, const char *name, const char *dir)
{
    struct buf path;
    json_error_t jerr;
    json_t *doc, *parts, *part;
    struct vherr err;

    buf_init(&path);
    buf_printf(&path, "%s/definitions.json", dir);
    buf_put_u8(&path, 0);
    doc = json_load_file((const char *)path.data, 0, &jerr);
    if (!json_is_object(doc)) {
        log_err("vhost '%s': the copy's definitions %s: %s", name,
                (const char *)path.data, jerr.text);
    } else {
        parts = node_defs_split_vhosts(doc);
        part = json_object_get(parts, name);
        if (part && node_defs_import(s->node, part, &err) != WR_OK)
            log_err("vhost '%s': the copy's definitions: %s", name, err.text);
        json_decref(parts);
    }
    json_decref(doc);
    buf_fini(&path);
}

/*
 * This node was elected as a member of the vhost's in-sync set: when it
 * holds a complete copy of the set's epoch, the copy becomes the vhost's
 * log (what the node held of the vhost before is older), and its delivery
 * counts go to *dcounts (applied once the vhost is served). m is the copy
 * still open, or NULL (taken: handed over with its hot index, or
 * closed). Whatever it holds of a copy goes afterwards: a leader keeps
 * none. *prev: where the lead it copied ended exactly (KIP-101: the
 * mirrors' copies of that lead are cut back to it), zero when the copy
 * did not end a whole cut with everything durable (a cut taken in part,
 * side files not durable); prev->start: the log's position it was taken
 * over at (0: recovered, the log starts at 1).
 */
static void
take_over_copy(struct server *s, struct vhost *vh, const char *name,
               struct mirror *m, struct buf *dcounts, struct repl_prev *prev)
{
    uint64_t epoch = 0;
    int64_t isr_epoch = 0;
    bool synced = false;
    const json_t *isr = cluster_isr_of(s->cluster, name, NULL, &isr_epoch);
    char err[1024], *dir, *log;

    if (mirror_copy_state(s->cfg->data_dir, name, &epoch, &synced, err,
                          sizeof(err)) != WR_OK) {
        log_err("vhost '%s': %s", name, err);
        mirror_close(m);
        return;
    }
    if (epoch == 0) {
        mirror_close(m);
        return;
    }
    dir = mirror_copy_dir(s->cfg->data_dir, name);
    if (synced && isr && (int64_t)epoch == isr_epoch &&
        isr_lists(isr, cluster_node_name(s->cluster)) &&
        !vhost_is_serving(vh)) {
        struct store *hot = NULL;
        bool open = m != NULL;

        /* open: where it ended is in memory (an open copy's state.json
           holds no position); closed: its clean close wrote it */
        if (open)
            hot = mirror_hand_over(m, &prev->end, &prev->lead, &prev->start);
        m = NULL;
        log = xmalloc(strlen(dir) + 8);
        sprintf(log, "%s/log", dir);
        if (!open && mirror_copy_end(s->cfg->data_dir, name, &prev->end,
                                     &prev->lead, err, sizeof(err)) != WR_OK)
            prev->end = prev->lead = 0;
        prev->epoch = epoch;
        if (node_vhost_adopt_log(s->node, vh, log, hot, err, sizeof(err)) !=
            WR_OK) {
            log_err("vhost '%s': cannot take over the copy of epoch %llu: %s",
                    name, (unsigned long long)epoch, err);
            prev->end = 0;
        } else {
            log_info("vhost '%s': taking over from this node's copy of "
                     "epoch %llu (lead %llu, position %llu; %s)",
                     name, (unsigned long long)epoch,
                     (unsigned long long)prev->lead,
                     (unsigned long long)prev->end,
                     hot ? "open, with its hot index" : "to be recovered");
        }
        import_copy_defs(s, name, dir);
        if (mirror_copy_dcounts(s->cfg->data_dir, name, dcounts) != WR_OK)
            log_warn("vhost '%s': the copy's delivery counts cannot be read: "
                     "%s",
                     name, strerror(errno));
        free(log);
    }
    mirror_close(m);
    if (mirror_remove(s->cfg->data_dir, name, err, sizeof(err)) != WR_OK)
        log_warn("vhost '%s': %s", name, err);
    free(dir);
}

/* ---- the cluster's calls */

static void
on_lead(void *arg, const char *name, int64_t epoch)
{
    struct server *s = arg;
    struct vhost *vh = node_vhost_find(s->node, name);
    struct mirror *m;
    struct buf dcounts;
    struct repl_prev prev = {0, 0, 0, 0};
    char err[1024];
    uint64_t t0 = wr_now_us();
    double ms;

    if (!vh)
        vh = node_vhost_add(s->node, name); /* its definition comes later */
    m = repl_copy_take(name, "this node leads the vhost now");
    buf_init(&dcounts);
    if (vh)
        take_over_copy(s, vh, name, m, &dcounts, &prev);
    else
        mirror_close(m);
    if (!vh || node_vhost_serve(s->node, vh, err, sizeof(err)) != WR_OK) {
        log_err("vhost '%s': cannot be served here (epoch %lld): %s", name,
                (long long)epoch, vh ? err : "no such vhost");
        buf_fini(&dcounts);
        return;
    }
    /* operators see how long a failover kept the vhost's messages away */
    ms = (double)(wr_now_us() - t0) / 1e3;
    log_info("vhost '%s' served here (epoch %lld), %.1f ms after winning it",
             name, (long long)epoch, ms);
    import_vhost_part(s, name);
    if (dcounts.len)
        log_info("vhost '%s': %zu delivery counts taken over", name,
                 vhost_repl_dcounts_apply(vh, buf_bytes(&dcounts)));
    buf_fini(&dcounts);
    repl_lead(s, vh, name, epoch, &prev);
    repl_lead_served(name, ms);
}

static void
on_unlead(void *arg, const char *name, const char *why)
{
    struct server *s = arg;
    struct vhost *vh = node_vhost_find(s->node, name);
    char text[300];

    repl_unlead(s, name);
    if (!vh || !vhost_is_serving(vh))
        return;
    snprintf(text, sizeof(text),
             "vhost '%s' is no longer served by this node (%s); reconnect",
             name, why);
    conn_close_vhost(s, vh, text);
    node_vhost_unserve(s->node, vh);
}

static bool
on_is_empty(void *arg, const char *name)
{
    struct server *s = arg;
    struct vhost *vh = node_vhost_find(s->node, name);

    return !vh || vhost_is_empty(vh);
}

static json_t *
on_stats(void *arg)
{
    struct server *s = arg;

    return s->node_info ? s->node_info() : NULL;
}

static void
on_vhost_removing(void *arg, struct vhost *vh)
{
    struct server *s = arg;
    char text[300];

    snprintf(text, sizeof(text), "vhost '%s' is deleted", vhost_name(vh));
    conn_close_vhost(s, vh, text);
}

static const struct cluster_ops ops = {
    .lead = on_lead,
    .unlead = on_unlead,
    .vhost_is_empty = on_is_empty,
    .stats = on_stats,
    .vhost_removing = on_vhost_removing,
};

/* ---- joining */

/* "IP:PORT" of a listener, brackets around IPv6. */
static void
addr_text(const struct wr_listener *l, const char *dflt_host, char *out,
          size_t n)
{
    const char *h = l->host[0] ? l->host : dflt_host;

    snprintf(out, n, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h, l->port);
}

/* The address other nodes use: cluster.advertise, else cluster.listen
 * unless that is a wildcard. */
static int
advertised(const struct wr_config *cfg, char *out, size_t n)
{
    struct wr_listener l;
    char err[256];
    const char *a = cfg->cluster_advertise[0] ? cfg->cluster_advertise
                                              : cfg->cluster_listen;

    if (conf_parse_listener(a, &l, err, sizeof(err)) != WR_OK) {
        log_err("cluster.advertise = %s: %s", a, err);
        return WR_ERR;
    }
    if (!l.host[0] || strcmp(l.host, "0.0.0.0") == 0 ||
        strcmp(l.host, "::") == 0) {
        log_err("cluster.listen = %s listens on every address: set "
                "cluster.advertise = IP:PORT to the address other nodes "
                "reach this one at",
                cfg->cluster_listen);
        return WR_ERR;
    }
    addr_text(&l, "", out, n);
    return WR_OK;
}

/* "IP:PORT" of a listener as other nodes reach it: a wildcard address
 * becomes the advertised node address's host. */
static void
reachable(const char *host, unsigned port, const char *advertised, char *out,
          size_t n)
{
    if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        const char *colon = strrchr(advertised, ':');

        snprintf(out, n, "%.*s:%u", (int)(colon ? colon - advertised : 0),
                 advertised, port);
        return;
    }
    snprintf(out, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

int
clustering_start(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    char eps[CONF_MAX_ETCD_ENDPOINTS][300], caddr[300],
        amqp[300] = "", mgmt[300] = "", err[1024];
    const char *ep[CONF_MAX_ETCD_ENDPOINTS];
    struct cluster_config cc = {0};

    if (cfg->cluster_backend != CONF_CLUSTER_ETCD)
        return WR_OK;
    if (advertised(cfg, caddr, sizeof(caddr)) != WR_OK)
        return WR_ERR;
    for (size_t i = 0; i < cfg->netcd_endpoints; i++) {
        addr_text(&cfg->etcd_endpoints[i], "127.0.0.1", eps[i], sizeof(eps[i]));
        ep[i] = eps[i];
    }
    if (cfg->nlisteners > 0)
        reachable(cfg->listeners[0].host, cfg->listeners[0].port, caddr, amqp,
                  sizeof(amqp));
    if (cfg->management_port)
        reachable(cfg->management_ip, cfg->management_port, caddr, mgmt,
                  sizeof(mgmt));
    cc = (struct cluster_config){
        .node_name = cfg->node_name,
        .key_prefix = cfg->etcd_key_prefix,
        .cluster_name = cfg->etcd_cluster,
        .ttl_s = cfg->etcd_node_ttl_s,
        .endpoints = ep,
        .n_endpoints = cfg->netcd_endpoints,
        .start_attempts = cfg->discovery_retries,
        .start_interval_ms = cfg->discovery_interval_ms,
        .data_dir = cfg->data_dir,
        .secret = cfg->cluster_secret,
        .cluster_addr = caddr,
        .amqp_addr = amqp,
        .mgmt_addr = mgmt,
        .balanced = cfg->queue_leader_locator == CONF_LOCATOR_BALANCED,
        .node = s->node,
    };
    /* before any hand-off to a store thread (KIP-101 marks) */
    repl_own_boot(s);
    if (cluster_start(s->loop, &cc, &ops, s, &s->cluster, err, sizeof(err)) !=
        WR_OK) {
        log_err("cannot join the cluster: %s", err);
        return WR_ERR;
    }
    if (!cfg->cluster_name_set)
        snprintf(s->cfg->cluster_name, sizeof(s->cfg->cluster_name), "%s",
                 cfg->etcd_cluster);
    repl_init(s);
    return peer_link_open(s, cfg->cluster_listen);
}

void
clustering_drain(struct server *s)
{
    cluster_drain(s->cluster);
}

void
clustering_stop(struct server *s)
{
    if (!s->cluster)
        return;
    cluster_stop(s->cluster, CLUSTER_STOP_MS);
}

void
clustering_free(struct server *s)
{
    peer_link_close(s);
    repl_fini(s);
    json_decref(s->boot_parts);
    s->boot_parts = NULL;
    cluster_free(s->cluster);
    s->cluster = NULL;
}

/* ---- connection.open of a vhost not served here */

int
clustering_open(struct conn *c, struct vhost *vh)
{
    const char *name = vhost_name(vh), *leader;
    const struct cluster_node *ln;
    int64_t epoch;

    if (!vhost_user_has_access(vh, c->user))
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                         "access to vhost '%s' refused for user '%s'", name,
                         c->user);
    leader = cluster_leader_of(srv->cluster, name, &epoch);
    if (!cluster_is_available(srv->cluster))
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                         "vhost %s is down: this node has lost contact with "
                         "the cluster's etcd",
                         name);
    if (!leader || strcmp(leader, cluster_node_name(srv->cluster)) == 0 ||
        !(ln = cluster_node_find(srv->cluster, leader)) || !ln->running ||
        !ln->cluster_addr[0])
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                         "vhost %s is down: no node serves it now%s%s%s", name,
                         cluster_home_of(srv->cluster, name)
                             ? " (its data is on node '"
                             : "",
                         cluster_home_of(srv->cluster, name)
                             ? cluster_home_of(srv->cluster, name)
                             : "",
                         cluster_home_of(srv->cluster, name) ? "')" : "");
    ev_timer_stop(srv->loop, &c->timer); /* the handshake's */
    return relay_start(c, name, leader, ln->cluster_addr);
}
