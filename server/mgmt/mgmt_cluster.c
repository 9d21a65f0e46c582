/*
 * mgmt_cluster.c: the management API of a node in a cluster.
 *
 * Any node answers any request. The route table (mgmt_routes.c) says how
 * each route spans the cluster:
 *
 *   MC_LEADER       a vhost's objects (exchanges, queues, bindings,
 *                   consumers, its connections and channels, aliveness):
 *                   forwarded to the vhost's leader and its answer
 *                   relayed as it is; 503 when no node leads it now
 *   MC_LEADER_GET   the same for GET only (a vhost: its figures are its
 *                   leader's; a change of it is a definition)
 *   MC_MERGE        lists of the whole cluster: every running node's own
 *                   list (asked with x-warren-local: 1, without paging,
 *                   sorting or columns), merged, then sorted, paged and
 *                   cut here as one node's list is
 *   MC_VHOSTS       /api/vhosts: as MC_MERGE, each vhost as its leader
 *                   shows it
 *   MC_FIND         a connection or a channel by name: this node, else
 *                   the others in turn until one has it
 *   MC_OVERVIEW     /api/overview: totals summed over the nodes
 *   MC_DEFS         a change of the definitions (users, vhosts,
 *                   permissions, limits, policies, parameters): made in
 *                   this node's model, written to etcd before the answer
 *                   (cluster_defs_commit); 503 when etcd does not take it
 *   MC_DEFINITIONS  export and import: users, vhosts, permissions and
 *                   the rest from here (every node holds them), the
 *                   vhosts' exchanges, queues and bindings from and to
 *                   their leaders
 *
 * A request carrying x-warren-local: 1 (another node asking) is answered
 * by this node alone; MC_DEFS changes are still written to etcd.
 *
 * Every request to another node is one HTTP exchange (cluster/httpc.c)
 * with the client's credentials: the users are the same everywhere, so
 * the other node checks them as this one did. The client's request is
 * deferred meanwhile (mgmt_http_defer); if the client goes first, the
 * exchanges still in flight are cancelled.
 */
#include "server/mgmt/mgmt_int.h"

#include "cluster/cluster.h"
#include "cluster/httpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <utlist.h>

#define FWD_TIMEOUT_S    30.0
#define FWD_MAX_RESPONSE (512u << 20)

/* ---- requests to other nodes */

struct fwd;

/* One exchange with another node (or this one, for merged lists). */
struct call {
    struct fwd *f;
    struct httpc *h; /* NULL once answered */
    char *node;
    struct call *next;
};

/* One client request being answered with other nodes' help. */
struct fwd {
    struct mgmt_req *d; /* NULL once the client went */
    mgmt_handler_fn *fn;
    const char *const *sort;
    char *auth, *ctype, *reason, *method, *target;
    struct buf body;
    struct call *calls;
    size_t pending;
    char **todo; /* MC_FIND: the nodes still to ask */
    size_t ntodo, itodo;
    json_t *acc;     /* what the answers add up to */
    json_t *by_name; /* MC_VHOSTS: name -> item */
    int fail_status; /* import: the first failure */
    char *fail_body;
    bool committing; /* etcd's answer will come: freed then */
    json_t *parts;   /* import: vhost -> its exchanges, queues, bindings */
    void (*answered)(struct fwd *f, struct call *c, int status,
                     struct bytes body);
    void (*finish)(struct fwd *f);
};

static const struct cluster_node *
node_by_name(const char *name)
{
    const struct cluster_node *n = cluster_node_find(srv->cluster, name);

    return n && n->running && n->mgmt_addr[0] ? n : NULL;
}

static bool
is_me(const char *node)
{
    return strcmp(node, cluster_node_name(srv->cluster)) == 0;
}

static void
fwd_free(struct fwd *f)
{
    struct call *c;

    while ((c = f->calls) != NULL) {
        f->calls = c->next;
        if (c->h)
            httpc_cancel(c->h);
        free(c->node);
        free(c);
    }
    for (size_t i = 0; i < f->ntodo; i++)
        free(f->todo[i]);
    free(f->todo);
    free(f->auth);
    free(f->ctype);
    free(f->reason);
    free(f->method);
    free(f->target);
    free(f->fail_body);
    buf_fini(&f->body);
    json_decref(f->acc);
    json_decref(f->by_name);
    json_decref(f->parts);
    free(f);
}

static void
fwd_abort(struct mgmt_req *d)
{
    struct fwd *f = d->ctx;

    f->d = NULL;
    if (!f->committing)
        fwd_free(f);
}

/* Takes r over: what the calls need is copied, r is deferred. */
static struct fwd *
fwd_new(struct mgmt_req *r)
{
    struct fwd *f = xcalloc(1, sizeof(*f));

    f->auth = r->authorization ? xstrdup(r->authorization) : NULL;
    f->ctype = r->content_type ? xstrdup(r->content_type) : NULL;
    f->reason = r->x_reason ? xstrdup(r->x_reason) : NULL;
    /* HEAD goes as GET: the answer's body is left out here */
    f->method =
        xstrdup(r->method == HTTP_HEAD ? "GET" : http_method_str(r->method));
    f->target = xstrdup(r->target);
    buf_init(&f->body);
    buf_append(&f->body, r->body.ptr, r->body.len);
    f->d = mgmt_http_defer(r);
    f->d->ctx = f;
    f->d->abort = fwd_abort;
    return f;
}

/* The client's answer is queued on f->d: send it and forget f. */
static void
fwd_end(struct fwd *f)
{
    struct mgmt_req *d = f->d;

    d->ctx = NULL;
    d->abort = NULL;
    mgmt_http_resume(d);
    fwd_free(f);
}

static void
call_cb(void *arg, int status, const char *why, struct bytes ctype,
        struct bytes body)
{
    struct call *c = arg;
    struct fwd *f = c->f;

    (void)ctype;
    c->h = NULL;
    if (status == 0)
        log_warn("management API: node '%s' did not answer %s %s: %s", c->node,
                 f->method, f->target, why ? why : "");
    f->pending--;
    f->answered(f, c, status, body);
    if (f->pending == 0)
        f->finish(f);
}

/* Asks node (at its management address addr) for method target, with
 * the client's credentials, reason header and body. */
static void
call(struct fwd *f, const char *node, const char *addr, const char *method,
     const char *target, struct bytes body)
{
    char auth[4200], ctype[300], reason[600];
    const char *hdrs[4];
    size_t nh = 0;
    struct call *c = xcalloc(1, sizeof(*c));

    c->f = f;
    c->node = xstrdup(node);
    c->next = f->calls;
    f->calls = c;
    hdrs[nh++] = "X-Warren-Local: 1";
    if (f->auth) {
        snprintf(auth, sizeof(auth), "Authorization: %s", f->auth);
        hdrs[nh++] = auth;
    }
    if (f->ctype && body.len) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", f->ctype);
        hdrs[nh++] = ctype;
    }
    if (f->reason) {
        snprintf(reason, sizeof(reason), "X-Reason: %s", f->reason);
        hdrs[nh++] = reason;
    }
    f->pending++;
    c->h = httpc_request(srv->loop,
                         &(struct httpc_request){
                             .addr = addr,
                             .method = method,
                             .target = target,
                             .headers = hdrs,
                             .nheaders = nh,
                             .body = body,
                             .max_response = FWD_MAX_RESPONSE,
                             .timeout_s = FWD_TIMEOUT_S,
                         },
                         call_cb, c);
}

/* Every running node with a management address, this one included. */
static size_t
each_node(struct fwd *f, const char *target)
{
    const struct cluster_node *list;
    size_t n = cluster_nodes(srv->cluster, &list), k = 0;

    for (size_t i = 0; i < n; i++) {
        if (!list[i].running || !list[i].mgmt_addr[0])
            continue;
        call(f, list[i].name, list[i].mgmt_addr, "GET", target, BYTES_NULL);
        k++;
    }
    return k;
}

/* 503 {"error": "service_unavailable", "reason": ...}. */
static void WR_PRINTF(2, 3)
    unavailable(struct mgmt_req *r, const char *fmt, ...)
{
    char text[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    mgmt_reply_error(r, 503, "service_unavailable", "%s", text);
}

/* ---- MC_LEADER: one node's answer, relayed */

static void
relayed(struct fwd *f, struct call *c, int status, struct bytes body)
{
    struct mgmt_req *d = f->d;

    if (status == 0) {
        mgmt_reply_error(d, 503, "service_unavailable",
                         "node '%s' did not answer", c->node);
        return;
    }
    d->status = status;
    buf_reset(&d->out);
    if (!d->head)
        buf_append(&d->out, body.ptr, body.len);
    if (status == 401)
        buf_printf(&d->hdrs, "www-authenticate: Basic realm=\"RabbitMQ "
                             "Management\"\r\n");
    mgmt_http_respond(d, body.len ? "application/json" : NULL);
}

static void
relay_to(struct mgmt_req *r, const struct cluster_node *n)
{
    struct fwd *f = fwd_new(r);

    f->answered = relayed;
    f->finish = fwd_end;
    call(f, n->name, n->mgmt_addr, f->method, f->target, buf_bytes(&f->body));
}

/* Forwards r to the leader of vhost r->args[0]; false when this node
 * answers itself (it leads the vhost, or no such vhost: 404 here). */
static bool
to_leader(struct mgmt_req *r)
{
    const char *vhost = r->args[0], *leader;
    const struct cluster_node *n;

    if (!vhost || !node_vhost_find(srv->node, vhost))
        return false;
    leader = cluster_leader_of(srv->cluster, vhost, NULL);
    if (leader && is_me(leader))
        return false;
    if (!leader || !(n = node_by_name(leader))) {
        unavailable(r, "vhost '%s' is down: no node serves it now", vhost);
        return true;
    }
    relay_to(r, n);
    return true;
}

/* ---- MC_MERGE, MC_VHOSTS: lists merged */

/* target without the list parameters, which apply to the merged list. */
static char *
unpaged(const char *target)
{
    static const char *const drop[] = {
        "page",         "page_size", "name",       "use_regex", "sort",
        "sort_reverse", "columns",   "pagination", NULL};
    const char *q = strchr(target, '?'), *p;
    struct buf b;
    bool first = true;

    if (!q)
        return xstrdup(target);
    buf_init(&b);
    buf_append(&b, target, (size_t)(q - target));
    for (p = q + 1; *p;) {
        size_t len = strcspn(p, "&"), klen = strcspn(p, "=&");
        bool keep = true;

        for (size_t i = 0; drop[i]; i++)
            if (strlen(drop[i]) == klen && strncmp(p, drop[i], klen) == 0)
                keep = false;
        if (keep && len) {
            buf_printf(&b, "%c%.*s", first ? '?' : '&', (int)len, p);
            first = false;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    buf_put_u8(&b, 0);
    return (char *)b.data; /* the buffer's bytes, NUL-terminated */
}

static void
merged_item(struct fwd *f, struct call *c, int status, struct bytes body)
{
    json_t *a, *item;
    size_t i;

    if (status != 200)
        return;
    a = json_loadb((const char *)body.ptr, body.len, 0, NULL);
    json_array_foreach(a, i, item)
    {
        const char *name, *leader;
        json_t *had;

        if (!f->by_name) {
            json_array_append(f->acc, item);
            continue;
        }
        /* a vhost: as its leader shows it, else as any node does */
        name = json_string_value(json_object_get(item, "name"));
        leader = json_string_value(json_object_get(item, "leader"));
        had = name ? json_object_get(f->by_name, name) : NULL;
        if (name && (!had || (leader && strcmp(leader, c->node) == 0)))
            json_object_set(f->by_name, name, item);
    }
    json_decref(a);
}

static void
merged(struct fwd *f)
{
    const char *k;
    json_t *v;

    if (f->by_name) {
        json_object_foreach(f->by_name, k, v)
        {
            json_array_append(f->acc, v);
        }
    }
    mgmt_reply_list(f->d, json_incref(f->acc), f->sort);
    fwd_end(f);
}

static void
merge(struct mgmt_req *r, const char *const *sort, bool vhosts)
{
    struct mgmt_listq lq = {0};
    struct fwd *f;
    char *target;
    int rc = mgmt_listq_parse(r, &lq);

    mgmt_listq_fini(&lq);
    if (rc != WR_OK)
        return; /* a bad parameter: 400 before asking anyone */
    f = fwd_new(r);
    f->sort = sort;
    f->acc = json_array();
    f->by_name = vhosts ? json_object() : NULL;
    f->answered = merged_item;
    f->finish = merged;
    target = unpaged(f->target);
    if (each_node(f, target) == 0)
        merged(f);
    free(target);
}

/* ---- MC_FIND: the node that has it */

static void find_next(struct fwd *f);

static void
found(struct fwd *f, struct call *c, int status, struct bytes body)
{
    if (status == 404 || status == 0)
        return; /* the next node, in find_next */
    relayed(f, c, status, body);
}

static void
find_next(struct fwd *f)
{
    const struct cluster_node *n;

    if (f->d->replied) {
        fwd_end(f);
        return;
    }
    while (f->itodo < f->ntodo) {
        const char *name = f->todo[f->itodo++];

        if ((n = node_by_name(name)) != NULL) {
            call(f, n->name, n->mgmt_addr, f->method, f->target,
                 buf_bytes(&f->body));
            return;
        }
    }
    mgmt_not_found(f->d);
    fwd_end(f);
}

/* Answers here if this node has the object, else asks the others. */
static void
find(struct mgmt_req *r, mgmt_handler_fn *fn)
{
    const struct cluster_node *list;
    size_t n;
    struct fwd *f;

    r->hold = true;
    fn(r);
    if (r->status != 404 || !r->replied) {
        r->hold = false;
        if (r->replied)
            mgmt_http_release(r);
        return;
    }
    r->replied = false;
    r->hold = false;
    buf_reset(&r->out);
    buf_reset(&r->hdrs);
    f = fwd_new(r);
    f->answered = found;
    f->finish = find_next;
    n = cluster_nodes(srv->cluster, &list);
    f->todo = xcalloc(n + 1, sizeof(*f->todo));
    for (size_t i = 0; i < n; i++)
        if (!is_me(list[i].name) && list[i].running)
            f->todo[f->ntodo++] = xstrdup(list[i].name);
    find_next(f);
}

/* ---- MC_OVERVIEW: totals summed */

/* Adds the integers of from's object `key` to into's (not the rates). */
static void
add_ints(json_t *into, const json_t *from, const char *key)
{
    json_t *a = json_object_get(into, key), *b = json_object_get(from, key), *v;
    const char *k;

    if (!json_is_object(a) || !json_is_object(b))
        return;
    json_object_foreach(b, k, v)
    {
        json_t *mine = json_object_get(a, k);

        if (json_is_integer(v) && json_is_integer(mine))
            json_object_set_new(
                a, k,
                json_integer(json_integer_value(mine) + json_integer_value(v)));
    }
}

static void
summed_one(struct fwd *f, struct call *c, int status, struct bytes body)
{
    json_t *o;

    if (status != 200 || is_me(c->node))
        return;
    o = json_loadb((const char *)body.ptr, body.len, 0, NULL);
    add_ints(f->acc, o, "object_totals");
    add_ints(f->acc, o, "queue_totals");
    add_ints(f->acc, o, "message_stats");
    json_decref(o);
}

static void
summed(struct fwd *f)
{
    mgmt_reply_item(f->d, json_incref(f->acc));
    fwd_end(f);
}

/* This node's overview, with the other nodes' totals added. */
static void
overview(struct mgmt_req *r, mgmt_handler_fn *fn)
{
    const char *cols = mgmt_qs(r, "columns");
    struct fwd *f;
    json_t *o;

    if (cols && *cols) {
        fn(r); /* a cut overview: this node's */
        return;
    }
    r->hold = true;
    fn(r);
    r->hold = false;
    o = r->status == 200
            ? json_loadb((const char *)r->out.data, r->out.len, 0, NULL)
            : NULL;
    if (!o) {
        mgmt_http_release(r);
        return;
    }
    r->replied = false;
    buf_reset(&r->out);
    buf_reset(&r->hdrs);
    f = fwd_new(r);
    f->acc = o;
    f->answered = summed_one;
    f->finish = summed;
    if (each_node(f, "/api/overview") == 0)
        summed(f);
}

/* ---- a vhost's definitions changed: the answer waits for the in-sync set
 *
 * A change of a replicated vhost's exchanges, queues or bindings made
 * here (this node leads the vhost: PUT, POST or DELETE of MC_LEADER
 * routes, a vhost's part of a definitions import) is answered only once
 * every member of the in-sync set has the definitions that hold it on
 * its disk (repl_defs_durable), as a durable queue.declare-ok waits over
 * AMQP: a 201 or 204 is never a false ok, and a node that then takes the
 * vhost over has the change. A set that cannot acknowledge within twice
 * replication.timeout (one for the leader to drop a silent mirror from
 * the set, one for the others to answer) gets 503: the change is made on
 * this node and reaches the mirrors when they come back, but a failover
 * before that could lose it. A change that leaves the definitions
 * as they were (a queue declared again) is answered at once. */

struct defs_wait {
    struct mgmt_req *d;
    char *vhost;
    uint64_t gen;
    double since;
    ev_timer timer;
    struct defs_wait *next, *prev;
};

static struct defs_wait *defs_waits;
static ev_prepare defs_prep;

static double
defs_wait_limit(void)
{
    return 2 * srv->cfg->repl_timeout_ms / 1000.0;
}

static void
defs_wait_end(struct defs_wait *w)
{
    struct mgmt_req *d = w->d;

    ev_timer_stop(srv->loop, &w->timer);
    DL_DELETE(defs_waits, w);
    if (!defs_waits)
        ev_prepare_stop(srv->loop, &defs_prep);
    free(w->vhost);
    free(w);
    if (d) {
        d->ctx = NULL;
        d->abort = NULL;
    }
}

static void
defs_wait_abort(struct mgmt_req *d)
{
    struct defs_wait *w = d->ctx;

    w->d = NULL;
    defs_wait_end(w);
}

/* Every loop pass while changes wait: the ones the set now holds are
 * answered. */
static void
defs_prep_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct defs_wait *w, *tmp;

    (void)loop;
    (void)p;
    (void)revents;
    DL_FOREACH_SAFE(defs_waits, w, tmp)
    {
        struct vhost *vh = node_vhost_find(srv->node, w->vhost);
        struct mgmt_req *d = w->d;

        /* a vhost deleted meanwhile took the change with it */
        if (vh && !repl_defs_durable(vh, w->gen))
            continue;
        defs_wait_end(w);
        mgmt_http_release(d);
        mgmt_http_resume(d);
    }
}

static void
defs_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct defs_wait *w = container_of(t, struct defs_wait, timer);
    struct mgmt_req *d = w->d;
    double waited = ev_now(loop) - w->since;
    char *vhost = xstrdup(w->vhost);

    (void)revents;
    defs_wait_end(w);
    log_warn("management API: vhost '%s': the in-sync set did not take a "
             "change of its definitions by '%s' within %.1f s",
             vhost, d->user_name ? d->user_name : "", waited);
    d->hold = false;
    d->replied = false;
    buf_reset(&d->out);
    buf_reset(&d->hdrs);
    unavailable(d,
                "vhost '%s': the in-sync set did not acknowledge the change "
                "within %.1f s; it is made on this node (the vhost's leader) "
                "and reaches the mirrors when they come back, but a "
                "failover before that could lose it",
                vhost, waited);
    free(vhost);
    mgmt_http_resume(d);
}

/* Whether a change of vhost's definitions (node_defs_generation was
 * gen0 before it) is made and not yet on its in-sync set's disks. */
static bool
needs_wait(const char *vhost, uint64_t gen0)
{
    struct vhost *vh = vhost ? node_vhost_find(srv->node, vhost) : NULL;
    uint64_t gen = node_defs_generation(srv->node);

    return vh && gen != gen0 && !repl_defs_durable(vh, gen);
}

/* d (deferred, its answer held) is answered once vhost's in-sync set has
 * the definitions as of now, or 503 (defs_timeout_cb). */
static void
wait_in_sync(struct mgmt_req *d, const char *vhost)
{
    struct defs_wait *w = xcalloc(1, sizeof(*w));

    w->vhost = xstrdup(vhost);
    w->gen = node_defs_generation(srv->node);
    w->since = ev_now(srv->loop);
    w->d = d;
    d->hold = true;
    d->ctx = w;
    d->abort = defs_wait_abort;
    ev_timer_init(&w->timer, defs_timeout_cb, defs_wait_limit(), 0.);
    ev_timer_start(srv->loop, &w->timer);
    if (!defs_waits) {
        ev_prepare_init(&defs_prep, defs_prep_cb);
        ev_prepare_start(srv->loop, &defs_prep);
    }
    DL_APPEND(defs_waits, w);
}

/* Runs the handler here (this node leads the vhost), then holds its
 * answer until the in-sync set has the definitions it changed. */
static void
in_sync_change(struct mgmt_req *r, mgmt_handler_fn *fn)
{
    uint64_t gen0 = node_defs_generation(srv->node);
    char *vhost = r->args[0] ? xstrdup(r->args[0]) : NULL;

    r->hold = true;
    fn(r);
    if (!r->replied || r->status >= 300 || r->stream ||
        !needs_wait(vhost, gen0)) {
        r->hold = false;
        if (r->replied)
            mgmt_http_release(r);
    } else {
        wait_in_sync(mgmt_http_defer(r), vhost);
    }
    free(vhost);
}

/* ---- MC_DEFS: a change of the definitions */

struct defs_write {
    struct mgmt_req *d; /* NULL once the client went */
    char *vhost;        /* a vhost's part of an import, or NULL */
    uint64_t gen0;      /* node_defs_generation before the change */
};

static void
defs_abort(struct mgmt_req *d)
{
    struct defs_write *w = d->ctx;

    w->d = NULL; /* freed when etcd answers */
}

static void
committed(void *arg, int status, const char *why)
{
    struct defs_write *w = arg;
    struct mgmt_req *d = w->d;
    char *vhost = w->vhost;
    bool wait = status == WR_OK && d && needs_wait(vhost, w->gen0);

    free(w);
    if (!d) {
        free(vhost);
        return;
    }
    d->ctx = NULL;
    d->abort = NULL;
    if (wait) {
        wait_in_sync(d, vhost); /* its answer goes later */
        free(vhost);
        return;
    }
    free(vhost);
    if (status == WR_OK) {
        mgmt_http_release(d);
    } else {
        d->hold = false;
        d->replied = false;
        buf_reset(&d->out);
        buf_reset(&d->hdrs);
        unavailable(d, "%s", why ? why : "etcd did not take the change");
    }
    mgmt_http_resume(d);
}

/* Runs the handler on this node's model, then writes what it changed to
 * etcd; the answer waits for etcd's. A vhost's part of an import
 * (in_sync: made here, the vhost's leader) waits for its in-sync set
 * too. */
static void
defs_change(struct mgmt_req *r, mgmt_handler_fn *fn, bool in_sync)
{
    struct cluster_defs_snap *snap;
    struct defs_write *w;
    uint64_t gen0 = node_defs_generation(srv->node);
    const char *vhost = in_sync ? r->args[0] : NULL;

    if (!cluster_is_available(srv->cluster)) {
        unavailable(r, "%s",
                    "this node has lost contact with the cluster's etcd: "
                    "the definitions cannot change now; try again, or use "
                    "another node");
        return;
    }
    snap = cluster_defs_snapshot(srv->cluster);
    r->hold = true;
    fn(r);
    if (!r->replied || r->status >= 300 || r->stream) {
        cluster_defs_snap_free(snap);
        r->hold = false;
        if (r->replied)
            mgmt_http_release(r);
        return;
    }
    w = xcalloc(1, sizeof(*w));
    w->vhost = vhost ? xstrdup(vhost) : NULL;
    w->gen0 = gen0;
    if (!cluster_defs_commit(srv->cluster, snap, committed, w)) {
        free(w->vhost);
        free(w);
        if (needs_wait(vhost, gen0)) {
            struct mgmt_req *d = mgmt_http_defer(r);

            wait_in_sync(d, d->args[0]);
            return;
        }
        r->hold = false;
        mgmt_http_release(r);
        return;
    }
    w->d = mgmt_http_defer(r);
    w->d->hold = true;
    w->d->ctx = w;
    w->d->abort = defs_abort;
}

/* ---- MC_DEFINITIONS: export and import */

static const char *const vhost_lists[] = {"exchanges", "queues", "bindings",
                                          NULL};

/* Appends s to b percent-encoded as one path segment. */
static void
put_segment(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            buf_put_u8(b, *p);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

/* A node's export: the exchanges, queues and bindings of the vhosts it
 * leads. */
static void
export_part(struct fwd *f, struct call *c, int status, struct bytes body)
{
    json_t *doc;

    if (status != 200)
        return;
    doc = json_loadb((const char *)body.ptr, body.len, 0, NULL);
    for (size_t k = 0; vhost_lists[k]; k++) {
        json_t *a = json_object_get(doc, vhost_lists[k]), *item,
               *into = json_object_get(f->acc, vhost_lists[k]);
        size_t i;

        json_array_foreach(a, i, item)
        {
            const char *vh = json_string_value(json_object_get(item, "vhost"));
            const char *leader =
                vh ? cluster_leader_of(srv->cluster, vh, NULL) : NULL;

            if (leader && strcmp(leader, c->node) == 0)
                json_array_append(into, item);
        }
    }
    json_decref(doc);
}

static void
exported(struct fwd *f)
{
    struct mgmt_req *d = f->d;
    const char *dl = mgmt_qs(d, "download");

    if (dl && *dl && bytes_is_utf8(bytes_str(dl)) && !strpbrk(dl, "\"\r\n"))
        buf_printf(&d->hdrs,
                   "content-disposition: attachment; filename=\"%s\"\r\n", dl);
    mgmt_reply_json(d, 200, json_incref(f->acc));
    fwd_end(f);
}

static void
export_all(struct mgmt_req *r)
{
    struct fwd *f = fwd_new(r);

    f->acc = node_defs_export(srv->node, NULL);
    for (size_t k = 0; vhost_lists[k]; k++)
        json_object_set_new(f->acc, vhost_lists[k], json_array());
    f->answered = export_part;
    f->finish = exported;
    if (each_node(f, "/api/definitions") == 0)
        exported(f);
}

static void
imported_part(struct fwd *f, struct call *c, int status, struct bytes body)
{
    if (status == 204 || status == 200 || f->fail_status)
        return;
    f->fail_status = status ? status : 503;
    if (status)
        f->fail_body = xstrndup(body.ptr, body.len);
    else
        f->fail_body = xstrdup(c->node);
}

static void
imported(struct fwd *f)
{
    struct mgmt_req *d = f->d;

    if (!f->fail_status) {
        log_info("management API: user '%s' imported definitions",
                 d->user_name ? d->user_name : "");
        mgmt_reply_empty(d, 204);
    } else if (f->fail_status == 503 && !strchr(f->fail_body, '{')) {
        unavailable(d, "node '%s' did not answer the import", f->fail_body);
    } else {
        d->status = f->fail_status;
        buf_reset(&d->out);
        buf_append(&d->out, f->fail_body, strlen(f->fail_body));
        mgmt_http_respond(d, "application/json");
    }
    fwd_end(f);
}

/* The cluster's part is in etcd: each vhost's objects go to its leader. */
static void
import_parts(void *arg, int status, const char *why)
{
    struct fwd *f = arg;
    const char *vh;
    json_t *part;

    f->committing = false;
    if (!f->d) {
        fwd_free(f);
        return;
    }
    if (status != WR_OK) {
        unavailable(f->d, "%s", why ? why : "etcd did not take the change");
        fwd_end(f);
        return;
    }
    free(f->ctype);
    f->ctype = xstrdup("application/json");
    f->answered = imported_part;
    f->finish = imported;
    f->pending++; /* until every call is made */
    json_object_foreach(f->parts, vh, part)
    {
        const char *leader = cluster_leader_of(srv->cluster, vh, NULL);
        const struct cluster_node *n = leader ? node_by_name(leader) : NULL;
        char *body;
        struct buf t;

        if (!n) {
            if (!f->fail_status) {
                char text[600];

                snprintf(text, sizeof(text),
                         "{\"error\":\"%s\",\"reason\":\"vhost %s\"}",
                         node_vhost_find(srv->node, vh) ? "service_unavailable"
                                                        : "bad_request",
                         node_vhost_find(srv->node, vh)
                             ? "is down: no node serves it now"
                             : "does not exist");
                f->fail_status = node_vhost_find(srv->node, vh) ? 503 : 400;
                f->fail_body = xstrdup(text);
            }
            continue;
        }
        buf_init(&t);
        buf_printf(&t, "/api/definitions/");
        put_segment(&t, vh);
        buf_put_u8(&t, 0);
        body = json_dumps(part, JSON_COMPACT);
        call(f, n->name, n->mgmt_addr, "POST", (const char *)t.data,
             bytes_str(body));
        free(body);
        buf_fini(&t);
    }
    if (--f->pending == 0)
        imported(f);
}

/* An import: users, vhosts, permissions and the rest here and in etcd
 * first (new vhosts get their leaders), then each vhost's exchanges,
 * queues and bindings on its leader. */
static void
import(struct mgmt_req *r, const char *vhost)
{
    struct cluster_defs_snap *snap;
    struct vherr err;
    struct fwd *f;
    json_t *doc;

    if (!cluster_is_available(srv->cluster)) {
        unavailable(r, "%s",
                    "this node has lost contact with the cluster's etcd: "
                    "the definitions cannot change now");
        return;
    }
    if (!(doc = mgmt_definitions_doc(r)))
        return;
    if (vhost)
        mgmt_definitions_scope(doc, vhost);
    f = fwd_new(r);
    f->parts = node_defs_split_vhosts(doc);
    snap = cluster_defs_snapshot(srv->cluster);
    if (node_defs_import(srv->node, doc, &err) != WR_OK) {
        log_warn("management API: definitions import by '%s' failed: %s",
                 f->d->user_name, err.text);
        json_t *e =
            json_pack("{s:s, s:s}", "error", "bad_request", "reason", err.text);

        f->fail_status = 400;
        f->fail_body = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        json_object_clear(f->parts); /* what was made is still written */
    }
    json_decref(doc);
    f->committing = true;
    if (!cluster_defs_commit(srv->cluster, snap, import_parts, f))
        import_parts(f, WR_OK, NULL);
}

/* ---- dispatch */

bool
mgmt_cluster_route(struct mgmt_req *r, unsigned how, const char *const *sort,
                   mgmt_handler_fn *fn)
{
    bool get = r->method == HTTP_GET || r->method == HTTP_HEAD;

    if (!srv->cluster || !how)
        return false;
    if (r->local) {
        if ((how & MC_DEFS) && !get) {
            defs_change(r, fn, (how & MC_DEFINITIONS) && r->args[0]);
            return true;
        }
        /* another node relayed a change of a vhost this node leads, or
           sent it a vhost's part of an import */
        if ((how & (MC_LEADER | MC_DEFINITIONS)) && !get) {
            in_sync_change(r, fn);
            return true;
        }
        return false;
    }
    if (how & MC_LEADER) {
        if (to_leader(r))
            return true;
        if (get)
            return false;
        in_sync_change(r, fn);
        return true;
    }
    if ((how & MC_LEADER_GET) && get)
        return to_leader(r);
    if ((how & MC_MERGE) && get) {
        merge(r, sort, false);
        return true;
    }
    if ((how & MC_VHOSTS) && get) {
        merge(r, sort, true);
        return true;
    }
    if (how & MC_FIND) {
        find(r, fn);
        return true;
    }
    if ((how & MC_OVERVIEW) && get) {
        overview(r, fn);
        return true;
    }
    if (how & MC_DEFINITIONS) {
        if (r->args[0] && get) {
            if (!to_leader(r))
                fn(r);
            return true;
        }
        if (!get)
            import(r, r->args[0]);
        else
            export_all(r);
        return true;
    }
    if ((how & MC_DEFS) && !get) {
        defs_change(r, fn, false);
        return true;
    }
    return false;
}
