/*
 * mgmt_routes.c: the management API's route table, HTTP basic
 * authentication and user tags, and the dispatch of each request; with
 * the start and stop of the whole API (the HTTP server it answers for,
 * the statistics sampler).
 *
 * Dispatch follows the order of RabbitMQ's cowboy_rest handlers, which
 * is what clients see when several things are wrong at once:
 *   1. no route for the path               -> a web UI file (mgmt_ui.c),
 *                                             else 404 Object Not Found
 *   2. a method the route does not allow   -> 405 with `allow`
 *   3. no credentials                      -> 401 (empty body)
 *      wrong credentials                   -> 401 not_authorized "Login
 *                                             failed"
 *      no management tag                   -> 401 not_authorised "Not
 *                                             management user"
 *      below the route's level             -> 401 "Not administrator
 *                                             user" / "Not monitor user"
 *   4. the handler: vhost access (401 "User not authorised to access
 *      virtual host"), resource permissions (401 "Access refused."),
 *      404 for missing objects, 400 for bad bodies, then the work.
 *
 * Routes are "/"-separated patterns where "*" captures one decoded path
 * segment into r->args, in order. The first route whose pattern matches
 * (literal segments before wildcards) owns the path.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

enum {
    M_GET = 1,
    M_PUT = 2,
    M_POST = 4,
    M_DELETE = 8,
};

struct route {
    const char *pattern;
    unsigned methods;
    enum mgmt_auth read_auth;  /* GET, HEAD */
    enum mgmt_auth write_auth; /* PUT, POST, DELETE */
    mgmt_handler_fn *fn;
    unsigned cluster;             /* MC_*: how it spans a cluster */
    const char *const *list_sort; /* MC_MERGE: the default sort */
};

static const char *const by_name[] = {"name", NULL};
static const char *const by_vhost_name[] = {"vhost", "name", NULL};
static const char *const by_binding[] = {
    "vhost",       "source",         "destination", "destination_type",
    "routing_key", "properties_key", NULL};
static const char *const by_consumer[] = {"queue.vhost", "queue.name",
                                          "consumer_tag", NULL};

#define ANY     MGMT_AUTH_ANY
#define MONITOR MGMT_AUTH_MONITOR
#define POLICY  MGMT_AUTH_POLICY
#define ADMIN   MGMT_AUTH_ADMIN

/* Literal routes before the wildcard routes of the same length. */
static const struct route routes[] = {
    {"/api/overview", M_GET, ANY, ANY, mgmt_h_overview, MC_OVERVIEW, NULL},
    {"/api/whoami", M_GET, ANY, ANY, mgmt_h_whoami, 0, NULL},
    {"/api/cluster-name", M_GET | M_PUT, ANY, ADMIN, mgmt_h_cluster_name, 0,
     NULL},
    {"/api/extensions", M_GET, ANY, ANY, mgmt_h_extensions, 0, NULL},
    {"/api/nodes", M_GET, MONITOR, MONITOR, mgmt_h_nodes, 0, NULL},
    {"/api/nodes/*", M_GET, MONITOR, MONITOR, mgmt_h_node, 0, NULL},
    {"/api/definitions", M_GET | M_POST, ADMIN, ADMIN, mgmt_h_definitions,
     MC_DEFINITIONS | MC_DEFS, NULL},
    {"/api/definitions/*", M_GET | M_POST, ADMIN, ADMIN, mgmt_h_definitions,
     MC_DEFINITIONS | MC_DEFS, NULL},
    {"/api/all-configuration", M_GET | M_POST, ADMIN, ADMIN, mgmt_h_definitions,
     MC_DEFINITIONS | MC_DEFS, NULL},
    {"/api/vhosts", M_GET, ANY, ANY, mgmt_h_vhosts, MC_VHOSTS, by_name},
    {"/api/vhosts/*", M_GET | M_PUT | M_DELETE, ANY, ADMIN, mgmt_h_vhost,
     MC_LEADER_GET | MC_DEFS, NULL},
    {"/api/vhosts/*/permissions", M_GET, ADMIN, ADMIN, mgmt_h_vhost_perms, 0,
     NULL},
    {"/api/vhosts/*/topic-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_topic_permissions, 0, NULL},
    {"/api/vhosts/*/connections", M_GET, ANY, ANY, mgmt_h_vhost_connections,
     MC_LEADER, NULL},
    {"/api/vhosts/*/channels", M_GET, ANY, ANY, mgmt_h_vhost_channels,
     MC_LEADER, NULL},
    {"/api/users", M_GET, ADMIN, ADMIN, mgmt_h_users, 0, NULL},
    {"/api/users/without-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_users_without_perms, 0, NULL},
    {"/api/users/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN, mgmt_h_user,
     MC_DEFS, NULL},
    {"/api/users/*/permissions", M_GET, ADMIN, ADMIN, mgmt_h_user_perms, 0,
     NULL},
    {"/api/users/*/topic-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_topic_permissions, 0, NULL},
    {"/api/permissions", M_GET, ADMIN, ADMIN, mgmt_h_permissions, 0, NULL},
    {"/api/permissions/*/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN,
     mgmt_h_permission, MC_DEFS, NULL},
    {"/api/topic-permissions", M_GET, ADMIN, ADMIN, mgmt_h_topic_permissions, 0,
     NULL},
    {"/api/vhost-limits", M_GET, ANY, ANY, mgmt_h_limits, 0, NULL},
    {"/api/vhost-limits/*", M_GET, ANY, ANY, mgmt_h_limits, 0, NULL},
    {"/api/vhost-limits/*/*", M_PUT | M_DELETE, ADMIN, ADMIN, mgmt_h_limit,
     MC_DEFS, NULL},
    {"/api/user-limits", M_GET, ADMIN, ADMIN, mgmt_h_user_limits, 0, NULL},
    {"/api/user-limits/*", M_GET, ADMIN, ADMIN, mgmt_h_user_limits, 0, NULL},
    {"/api/user-limits/*/*", M_PUT | M_DELETE, ADMIN, ADMIN, mgmt_h_user_limit,
     MC_DEFS, NULL},
    {"/api/policies", M_GET, ANY, ANY, mgmt_h_policies, 0, NULL},
    {"/api/policies/*", M_GET, ANY, ANY, mgmt_h_policies, 0, NULL},
    {"/api/policies/*/*", M_GET | M_PUT | M_DELETE, ANY, POLICY, mgmt_h_policy,
     MC_DEFS, NULL},
    {"/api/operator-policies", M_GET, ADMIN, ADMIN, mgmt_h_op_policies, 0,
     NULL},
    {"/api/operator-policies/*", M_GET, ADMIN, ADMIN, mgmt_h_op_policies, 0,
     NULL},
    {"/api/operator-policies/*/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN,
     mgmt_h_op_policy, MC_DEFS, NULL},
    {"/api/parameters", M_GET, ANY, ANY, mgmt_h_parameters, 0, NULL},
    {"/api/parameters/*", M_GET, ANY, ANY, mgmt_h_parameters, 0, NULL},
    {"/api/parameters/*/*", M_GET, ANY, ANY, mgmt_h_parameters, 0, NULL},
    {"/api/parameters/*/*/*", M_GET | M_PUT | M_DELETE, ANY, POLICY,
     mgmt_h_parameter, MC_DEFS, NULL},
    {"/api/global-parameters", M_GET, ANY, ANY, mgmt_h_global_parameters, 0,
     NULL},
    {"/api/global-parameters/*", M_GET | M_PUT | M_DELETE, ANY, ADMIN,
     mgmt_h_global_parameter, MC_DEFS, NULL},
    {"/api/exchanges", M_GET, ANY, ANY, mgmt_h_exchanges, MC_MERGE,
     by_vhost_name},
    {"/api/exchanges/*", M_GET, ANY, ANY, mgmt_h_exchanges, MC_LEADER, NULL},
    {"/api/exchanges/*/*", M_GET | M_PUT | M_DELETE, ANY, ANY, mgmt_h_exchange,
     MC_LEADER, NULL},
    {"/api/exchanges/*/*/bindings/source", M_GET, ANY, ANY,
     mgmt_h_exchange_bindings, MC_LEADER, NULL},
    {"/api/exchanges/*/*/bindings/destination", M_GET, ANY, ANY,
     mgmt_h_exchange_bindings, MC_LEADER, NULL},
    {"/api/exchanges/*/*/publish", M_POST, ANY, ANY, mgmt_h_publish, MC_LEADER,
     NULL},
    {"/api/queues", M_GET, ANY, ANY, mgmt_h_queues, MC_MERGE, by_vhost_name},
    {"/api/queues/*", M_GET, ANY, ANY, mgmt_h_queues, MC_LEADER, NULL},
    {"/api/queues/*/*", M_GET | M_PUT | M_DELETE, ANY, ANY, mgmt_h_queue,
     MC_LEADER, NULL},
    {"/api/queues/*/*/contents", M_DELETE, ANY, ANY, mgmt_h_queue_contents,
     MC_LEADER, NULL},
    {"/api/queues/*/*/get", M_POST, ANY, ANY, mgmt_h_queue_get, MC_LEADER,
     NULL},
    {"/api/queues/*/*/bindings", M_GET, ANY, ANY, mgmt_h_queue_bindings,
     MC_LEADER, NULL},
    {"/api/bindings", M_GET, ANY, ANY, mgmt_h_bindings, MC_MERGE, by_binding},
    {"/api/bindings/*", M_GET, ANY, ANY, mgmt_h_bindings, MC_LEADER, NULL},
    {"/api/bindings/*/e/*/q/*", M_GET | M_POST, ANY, ANY,
     mgmt_h_bindings_between, MC_LEADER, NULL},
    {"/api/bindings/*/e/*/e/*", M_GET | M_POST, ANY, ANY,
     mgmt_h_bindings_between, MC_LEADER, NULL},
    {"/api/bindings/*/e/*/q/*/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_binding,
     MC_LEADER, NULL},
    {"/api/bindings/*/e/*/e/*/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_binding,
     MC_LEADER, NULL},
    {"/api/connections", M_GET, ANY, ANY, mgmt_h_connections, MC_MERGE,
     by_vhost_name},
    {"/api/connections/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_connection,
     MC_FIND, NULL},
    {"/api/connections/*/channels", M_GET, ANY, ANY, mgmt_h_connection_channels,
     MC_FIND, NULL},
    {"/api/channels", M_GET, ANY, ANY, mgmt_h_channels, MC_MERGE,
     by_vhost_name},
    {"/api/channels/*", M_GET, ANY, ANY, mgmt_h_channel, MC_FIND, NULL},
    {"/api/consumers", M_GET, ANY, ANY, mgmt_h_consumers, MC_MERGE,
     by_consumer},
    {"/api/consumers/*", M_GET, ANY, ANY, mgmt_h_consumers, MC_LEADER, NULL},
    {"/api/aliveness-test/*", M_GET, ANY, ANY, mgmt_h_aliveness, MC_LEADER,
     NULL},
    {"/api/replication", M_GET, MONITOR, MONITOR, mgmt_h_replication, 0, NULL},
    {"/api/health/checks/alarms", M_GET, ANY, ANY, mgmt_h_health_alarms, 0,
     NULL},
    {"/api/health/checks/local-alarms", M_GET, ANY, ANY, mgmt_h_health_alarms,
     0, NULL},
    {"/api/health/checks/virtual-hosts", M_GET, ANY, ANY, mgmt_h_health_vhosts,
     0, NULL},
    {"/api/health/checks/port-listener/*", M_GET, ANY, ANY, mgmt_h_health_port,
     0, NULL},
    {"/api/health/checks/protocol-listener/*", M_GET, ANY, ANY,
     mgmt_h_health_protocol, 0, NULL},
    {"/api/health/checks/node-is-quorum-critical", M_GET, ANY, ANY,
     mgmt_h_health_ok, 0, NULL},
    {"/api/health/checks/node-is-mirror-sync-critical", M_GET, ANY, ANY,
     mgmt_h_health_ok, 0, NULL},
    {"/api/health/checks/certificate-expiration/*/*", M_GET, ANY, ANY,
     mgmt_h_health_ok, 0, NULL},
    {"/api/health/checks/is-in-service", M_GET, ANY, ANY, mgmt_h_health_ok, 0,
     NULL},
    {"/metrics", M_GET, MGMT_AUTH_NONE, MGMT_AUTH_NONE, mgmt_api_metrics, 0,
     NULL},
    {"/metrics/per-object", M_GET, MGMT_AUTH_NONE, MGMT_AUTH_NONE,
     mgmt_api_metrics_per_object, 0, NULL},
    {"/metrics/detailed", M_GET, MGMT_AUTH_NONE, MGMT_AUTH_NONE,
     mgmt_api_metrics_detailed, 0, NULL},
};

#undef ANY
#undef MONITOR
#undef POLICY
#undef ADMIN

/* ---- authentication */

/* The user (NUL-terminated, in cred) and password of a Basic
 * authorization header h; false when it is not one. */
static bool
basic_credentials(const char *h, struct buf *cred, struct bytes *password)
{
    char *colon;

    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    for (h += 6; *h == ' '; h++)
        ;
    if (!b64_decode(h, strlen(h), false, cred))
        return false;
    buf_put_u8(cred, 0); /* before taking pointers into it */
    colon = memchr(cred->data, ':', cred->len - 1);
    if (!colon)
        return false;
    *colon = 0;
    *password = bytes_of(
        colon + 1, cred->len - 1 - (size_t)(colon + 1 - (char *)cred->data));
    return true;
}

static bool
is_loopback_user(const char *name)
{
    const struct wr_config *cfg = srv->cfg;

    for (size_t i = 0; i < cfg->nloopback_users; i++)
        if (strcmp(cfg->loopback_users[i], name) == 0)
            return true;
    return false;
}

static void
unauthorized(struct mgmt_req *r, bool with_body)
{
    buf_printf(&r->hdrs,
               "www-authenticate: Basic realm=\"RabbitMQ Management\"\r\n");
    if (with_body) {
        mgmt_reply_error(r, 401, "not_authorized", "Login failed");
    } else {
        r->status = 401;
        mgmt_http_respond(r, NULL);
    }
}

/* Authenticates the request (basic auth). Returns false after replying
 * 401 when the credentials or the tags do not let the user in. */
static bool
authenticate(struct mgmt_req *r)
{
    const char *h = r->authorization;
    struct bytes password;
    struct user *u;
    struct buf cred;

    if (!h || strncasecmp(h, "Basic ", 6) != 0) {
        unauthorized(r, false);
        return false;
    }
    buf_init(&cred);
    if (!basic_credentials(h, &cred, &password)) {
        buf_fini(&cred);
        unauthorized(r, true);
        return false;
    }
    u = node_user_find(srv->node, (const char *)cred.data);
    if (!u || !user_check_password(u, password)) {
        log_info("management API: HTTP access denied: user '%s' - invalid "
                 "credentials (%s)",
                 (const char *)cred.data, mgmt_http_peer(r));
        buf_fini(&cred);
        unauthorized(r, true);
        return false;
    }
    buf_fini(&cred);
    if (is_loopback_user(u->name) && !r->peer_loopback) {
        mgmt_not_authorised(r, "User can only log in via localhost");
        return false;
    }
    if (!(u->tag_bits & (TAG_ADMINISTRATOR | TAG_MONITORING | TAG_POLICYMAKER |
                         TAG_MANAGEMENT))) {
        mgmt_not_authorised(r, "Not management user");
        return false;
    }
    r->user = u;
    r->user_name_copy = xstrdup(u->name); /* the handler may delete u */
    r->user_name = r->user_name_copy;
    r->tags = u->tag_bits;
    return true;
}

/* Would these basic-auth credentials let a management user in? The
 * HTTP server asks before it reads a large body. */
static bool
credentials_ok(const char *authorization, bool loopback)
{
    struct bytes password;
    struct user *u;
    struct buf cred;
    bool ok;

    buf_init(&cred);
    ok = basic_credentials(authorization, &cred, &password) &&
         (u = node_user_find(srv->node, (const char *)cred.data)) &&
         user_check_password(u, password) &&
         (loopback || !is_loopback_user(u->name)) &&
         (u->tag_bits & (TAG_ADMINISTRATOR | TAG_MONITORING | TAG_POLICYMAKER |
                         TAG_MANAGEMENT));
    buf_fini(&cred);
    return ok;
}

/* The route's level for this method. */
static bool
authorize(struct mgmt_req *r, enum mgmt_auth level)
{
    switch (level) {
    case MGMT_AUTH_ADMIN:
        if (r->tags & TAG_ADMINISTRATOR)
            return true;
        mgmt_not_authorised(r, "Not administrator user");
        return false;
    case MGMT_AUTH_MONITOR:
        if (r->tags & (TAG_ADMINISTRATOR | TAG_MONITORING))
            return true;
        mgmt_not_authorised(r, "Not monitor user");
        return false;
    case MGMT_AUTH_POLICY:
        if (r->tags & (TAG_ADMINISTRATOR | TAG_POLICYMAKER))
            return true;
        mgmt_not_authorised(r, "Not policymaker user");
        return false;
    default:
        return true;
    }
}

/* ---- routing */

static bool
route_match(const struct route *rt, struct mgmt_req *r)
{
    const char *p = rt->pattern + 1;
    size_t i = 0, nargs = 0;

    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (i >= r->nseg)
            return false;
        if (len == 1 && *p == '*') {
            if (nargs < WR_ARRAY_LEN(r->args))
                r->args[nargs++] = r->seg[i];
        } else if (strlen(r->seg[i]) != len || memcmp(r->seg[i], p, len) != 0) {
            return false;
        }
        i++;
        p += len;
        if (*p == '/')
            p++;
    }
    return i == r->nseg;
}

static unsigned
method_bit(enum http_method m)
{
    switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
        return M_GET;
    case HTTP_PUT:
        return M_PUT;
    case HTTP_POST:
        return M_POST;
    case HTTP_DELETE:
        return M_DELETE;
    default:
        return 0;
    }
}

/* cowboy_rest's allow header: the module's methods in its order. */
static void
put_allow(struct buf *b, unsigned methods)
{
    buf_printf(b, "allow: %s%s%s%s%sOPTIONS\r\n",
               methods & M_GET ? "HEAD, GET, " : "",
               methods & M_PUT ? "PUT, " : "", methods & M_POST ? "POST, " : "",
               methods & M_DELETE ? "DELETE, " : "", "");
}

/* Routes, authenticates and authorizes r, and calls its handler. */
static void
route(struct mgmt_req *r)
{
    const struct route *rt = NULL;
    unsigned bit;

    for (size_t i = 0; i < WR_ARRAY_LEN(routes); i++) {
        memset(r->args, 0, sizeof(r->args));
        if (route_match(&routes[i], r)) {
            rt = &routes[i];
            break;
        }
    }
    if (r->prometheus && (!rt || strncmp(rt->pattern, "/metrics", 8) != 0)) {
        mgmt_not_found(r); /* the Prometheus port serves metrics only */
        return;
    }
    if (!rt) {
        if (!mgmt_ui_serve(r))
            mgmt_not_found(r);
        return;
    }
    for (size_t i = 0; i < r->nseg; i++) {
        if (!bytes_is_utf8(bytes_str(r->seg[i]))) {
            mgmt_bad_request(r, "path segment is not UTF-8");
            return;
        }
    }
    bit = method_bit(r->method);
    if (r->method == HTTP_OPTIONS) {
        put_allow(&r->hdrs, rt->methods);
        mgmt_reply_empty(r, 200);
        return;
    }
    if (!(rt->methods & bit)) {
        put_allow(&r->hdrs, rt->methods);
        r->status = 405;
        mgmt_http_respond(r, NULL);
        return;
    }
    if (rt->read_auth != MGMT_AUTH_NONE) {
        if (!authenticate(r))
            return;
        mgmt_http_authenticated(r);
        if (!authorize(r, bit == M_GET ? rt->read_auth : rt->write_auth))
            return;
    }
    if (mgmt_cluster_route(r, rt->cluster, rt->list_sort, rt->fn))
        return;
    rt->fn(r);
}

/* A complete request; it always gets a response. */
static void
dispatch(struct mgmt_req *r)
{
    if (r->bad_target)
        mgmt_reply_error(r, 400, "bad_request", "Invalid path or query string");
    else
        route(r);
    if (!r->replied)
        mgmt_reply_error(r, 500, "internal_server_error", "no response");
}

int
mgmt_start(struct server *s)
{
    static const struct mgmt_http_handler handler = {dispatch, credentials_ok};

    if (mgmt_http_start(s, &handler) != WR_OK)
        return WR_ERR;
    s->node_info = mgmt_node_stats;
    if (mgmt_http_running())
        mgmt_stats_start(s);
    return WR_OK;
}

void
mgmt_stop(struct server *s)
{
    (void)s;
    if (!mgmt_http_running())
        return;
    mgmt_http_stop();
    mgmt_stats_stop();
}
