/*
 * mgmt_api.c: the management API's route table, dispatch, HTTP basic
 * authentication, and the replies and errors in RabbitMQ's shapes.
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
#include <unistd.h>

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
};

#define ANY     MGMT_AUTH_ANY
#define MONITOR MGMT_AUTH_MONITOR
#define POLICY  MGMT_AUTH_POLICY
#define ADMIN   MGMT_AUTH_ADMIN

/* Literal routes before the wildcard routes of the same length. */
static const struct route routes[] = {
    {"/api/overview", M_GET, ANY, ANY, mgmt_h_overview},
    {"/api/whoami", M_GET, ANY, ANY, mgmt_h_whoami},
    {"/api/cluster-name", M_GET | M_PUT, ANY, ADMIN, mgmt_h_cluster_name},
    {"/api/extensions", M_GET, ANY, ANY, mgmt_h_extensions},
    {"/api/nodes", M_GET, MONITOR, MONITOR, mgmt_h_nodes},
    {"/api/nodes/*", M_GET, MONITOR, MONITOR, mgmt_h_node},
    {"/api/definitions", M_GET | M_POST, ADMIN, ADMIN, mgmt_h_definitions},
    {"/api/definitions/*", M_GET | M_POST, ADMIN, ADMIN, mgmt_h_definitions},
    {"/api/all-configuration", M_GET | M_POST, ADMIN, ADMIN,
     mgmt_h_definitions},
    {"/api/vhosts", M_GET, ANY, ANY, mgmt_h_vhosts},
    {"/api/vhosts/*", M_GET | M_PUT | M_DELETE, ANY, ADMIN, mgmt_h_vhost},
    {"/api/vhosts/*/permissions", M_GET, ADMIN, ADMIN, mgmt_h_vhost_perms},
    {"/api/vhosts/*/topic-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_topic_permissions},
    {"/api/vhosts/*/connections", M_GET, ANY, ANY, mgmt_h_vhost_connections},
    {"/api/vhosts/*/channels", M_GET, ANY, ANY, mgmt_h_vhost_channels},
    {"/api/users", M_GET, ADMIN, ADMIN, mgmt_h_users},
    {"/api/users/without-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_users_without_perms},
    {"/api/users/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN, mgmt_h_user},
    {"/api/users/*/permissions", M_GET, ADMIN, ADMIN, mgmt_h_user_perms},
    {"/api/users/*/topic-permissions", M_GET, ADMIN, ADMIN,
     mgmt_h_topic_permissions},
    {"/api/permissions", M_GET, ADMIN, ADMIN, mgmt_h_permissions},
    {"/api/permissions/*/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN,
     mgmt_h_permission},
    {"/api/topic-permissions", M_GET, ADMIN, ADMIN, mgmt_h_topic_permissions},
    {"/api/vhost-limits", M_GET, ANY, ANY, mgmt_h_limits},
    {"/api/vhost-limits/*", M_GET, ANY, ANY, mgmt_h_limits},
    {"/api/vhost-limits/*/*", M_PUT | M_DELETE, ADMIN, ADMIN, mgmt_h_limit},
    {"/api/policies", M_GET, ANY, ANY, mgmt_h_policies},
    {"/api/policies/*", M_GET, ANY, ANY, mgmt_h_policies},
    {"/api/policies/*/*", M_GET | M_PUT | M_DELETE, ANY, POLICY, mgmt_h_policy},
    {"/api/operator-policies", M_GET, ADMIN, ADMIN, mgmt_h_op_policies},
    {"/api/operator-policies/*", M_GET, ADMIN, ADMIN, mgmt_h_op_policies},
    {"/api/operator-policies/*/*", M_GET | M_PUT | M_DELETE, ADMIN, ADMIN,
     mgmt_h_op_policy},
    {"/api/parameters", M_GET, ANY, ANY, mgmt_h_parameters},
    {"/api/parameters/*", M_GET, ANY, ANY, mgmt_h_parameters},
    {"/api/parameters/*/*", M_GET, ANY, ANY, mgmt_h_parameters},
    {"/api/parameters/*/*/*", M_GET | M_PUT | M_DELETE, ANY, POLICY,
     mgmt_h_parameter},
    {"/api/global-parameters", M_GET, ANY, ANY, mgmt_h_global_parameters},
    {"/api/global-parameters/*", M_GET | M_PUT | M_DELETE, ANY, ADMIN,
     mgmt_h_global_parameter},
    {"/api/exchanges", M_GET, ANY, ANY, mgmt_h_exchanges},
    {"/api/exchanges/*", M_GET, ANY, ANY, mgmt_h_exchanges},
    {"/api/exchanges/*/*", M_GET | M_PUT | M_DELETE, ANY, ANY, mgmt_h_exchange},
    {"/api/exchanges/*/*/bindings/source", M_GET, ANY, ANY,
     mgmt_h_exchange_bindings},
    {"/api/exchanges/*/*/bindings/destination", M_GET, ANY, ANY,
     mgmt_h_exchange_bindings},
    {"/api/exchanges/*/*/publish", M_POST, ANY, ANY, mgmt_h_publish},
    {"/api/queues", M_GET, ANY, ANY, mgmt_h_queues},
    {"/api/queues/*", M_GET, ANY, ANY, mgmt_h_queues},
    {"/api/queues/*/*", M_GET | M_PUT | M_DELETE, ANY, ANY, mgmt_h_queue},
    {"/api/queues/*/*/contents", M_DELETE, ANY, ANY, mgmt_h_queue_contents},
    {"/api/queues/*/*/get", M_POST, ANY, ANY, mgmt_h_queue_get},
    {"/api/queues/*/*/bindings", M_GET, ANY, ANY, mgmt_h_queue_bindings},
    {"/api/bindings", M_GET, ANY, ANY, mgmt_h_bindings},
    {"/api/bindings/*", M_GET, ANY, ANY, mgmt_h_bindings},
    {"/api/bindings/*/e/*/q/*", M_GET | M_POST, ANY, ANY,
     mgmt_h_bindings_between},
    {"/api/bindings/*/e/*/e/*", M_GET | M_POST, ANY, ANY,
     mgmt_h_bindings_between},
    {"/api/bindings/*/e/*/q/*/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_binding},
    {"/api/bindings/*/e/*/e/*/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_binding},
    {"/api/connections", M_GET, ANY, ANY, mgmt_h_connections},
    {"/api/connections/*", M_GET | M_DELETE, ANY, ANY, mgmt_h_connection},
    {"/api/connections/*/channels", M_GET, ANY, ANY,
     mgmt_h_connection_channels},
    {"/api/channels", M_GET, ANY, ANY, mgmt_h_channels},
    {"/api/channels/*", M_GET, ANY, ANY, mgmt_h_channel},
    {"/api/consumers", M_GET, ANY, ANY, mgmt_h_consumers},
    {"/api/consumers/*", M_GET, ANY, ANY, mgmt_h_consumers},
    {"/api/aliveness-test/*", M_GET, ANY, ANY, mgmt_h_aliveness},
    {"/api/health/checks/alarms", M_GET, ANY, ANY, mgmt_h_health_alarms},
    {"/api/health/checks/local-alarms", M_GET, ANY, ANY, mgmt_h_health_alarms},
    {"/api/health/checks/virtual-hosts", M_GET, ANY, ANY, mgmt_h_health_vhosts},
    {"/api/health/checks/port-listener/*", M_GET, ANY, ANY, mgmt_h_health_port},
    {"/api/health/checks/protocol-listener/*", M_GET, ANY, ANY,
     mgmt_h_health_protocol},
    {"/api/health/checks/node-is-quorum-critical", M_GET, ANY, ANY,
     mgmt_h_health_ok},
    {"/api/health/checks/node-is-mirror-sync-critical", M_GET, ANY, ANY,
     mgmt_h_health_ok},
    {"/api/health/checks/certificate-expiration/*/*", M_GET, ANY, ANY,
     mgmt_h_health_ok},
    {"/api/health/checks/is-in-service", M_GET, ANY, ANY, mgmt_h_health_ok},
    {"/metrics", M_GET, MGMT_AUTH_NONE, MGMT_AUTH_NONE, mgmt_api_metrics},
};

#undef ANY
#undef MONITOR
#undef POLICY
#undef ADMIN

/* ---- query parameters */

const char *
mgmt_qs(const struct mgmt_req *r, const char *key)
{
    for (size_t i = 0; i < r->nq; i++)
        if (strcmp(r->q[i].key, key) == 0)
            return r->q[i].value;
    return NULL;
}

bool
mgmt_qs_true(const struct mgmt_req *r, const char *key)
{
    const char *v = mgmt_qs(r, key);

    return v && strcmp(v, "true") == 0;
}

/* ---- replies */

/* Appends v's encoding. Returns false when jansson cannot encode it. */
static bool
dump_into(struct buf *b, json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    uint8_t *p;

    if (n == 0)
        return false;
    p = buf_reserve(b, n);
    json_dumpb(v, (char *)p, n, JSON_COMPACT | JSON_ENCODE_ANY);
    b->len += n;
    return true;
}

void
mgmt_reply_json(struct mgmt_req *r, int status, json_t *v)
{
    bool ok = v && dump_into(&r->out, v);

    json_decref(v);
    if (!ok) {
        static const char err[] =
            "{\"error\":\"internal_server_error\",\"reason\":\"JSON "
            "encode error\"}";

        buf_reset(&r->out);
        buf_append(&r->out, err, sizeof(err) - 1);
        status = 500;
    }
    r->status = status;
    mgmt_http_respond(r, "application/json");
}

void
mgmt_reply_empty(struct mgmt_req *r, int status)
{
    r->status = status;
    buf_reset(&r->out);
    mgmt_http_respond(r, NULL);
}

static void
reply_error_text(struct mgmt_req *r, int status, const char *error,
                 const char *reason)
{
    mgmt_reply_json(r, status,
                    json_pack("{s:s, s:s}", "error", error, "reason", reason));
}

void
mgmt_reply_error(struct mgmt_req *r, int status, const char *error,
                 const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    /* Reasons quote client bytes: make them valid UTF-8 for JSON. */
    if (!bytes_is_utf8(bytes_str(reason)))
        snprintf(reason, sizeof(reason), "(unprintable reason)");
    reply_error_text(r, status, error, reason);
}

void
mgmt_bad_request(struct mgmt_req *r, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    mgmt_reply_error(r, 400, "bad_request", "%s", reason);
}

void
mgmt_bad_request_json(struct mgmt_req *r, json_t *reason)
{
    mgmt_reply_json(
        r, 400,
        json_pack("{s:s, s:o}", "error", "bad_request", "reason", reason));
}

void
mgmt_not_found(struct mgmt_req *r)
{
    reply_error_text(r, 404, "Object Not Found", "Not Found");
}

void
mgmt_not_authorised(struct mgmt_req *r, const char *reason)
{
    reply_error_text(r, 401, "not_authorised", reason);
}

void
mgmt_reply_vherr(struct mgmt_req *r, const struct vherr *err)
{
    switch (err->code) {
    case AMQP_ACCESS_REFUSED:
        mgmt_not_authorised(r, "Access refused.");
        break;
    case AMQP_NOT_FOUND:
        mgmt_not_found(r);
        break;
    default:
        mgmt_bad_request(r, "%s", err->text);
        break;
    }
}

json_t *
mgmt_body_json(struct mgmt_req *r)
{
    json_error_t jerr;
    json_t *v;

    if (r->body.len == 0 ||
        (r->body.len == 4 && memcmp(r->body.ptr, "null", 4) == 0))
        return json_object();
    v = json_loadb((const char *)r->body.ptr, r->body.len, 0, &jerr);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        mgmt_bad_request(r, "not_json");
        return NULL;
    }
    return v;
}

json_t *
mgmt_rate(double rate)
{
    /* RabbitMQ reports rates with one decimal */
    double r = (double)(int64_t)(rate * 10 + (rate >= 0 ? 0.5 : -0.5)) / 10;

    return json_pack("{s:f}", "rate", r);
}

/* Replaces every string that is not UTF-8 (a table's longstr may hold
 * any bytes) by its Latin-1 reading, so that the JSON encodes. */
static void
sanitize_strings(json_t *v, int depth)
{
    const char *key;
    json_t *e;
    size_t i;

    if (depth > 64)
        return;
    if (json_is_string(v)) {
        struct bytes s = bytes_of(json_string_value(v), json_string_length(v));
        struct buf b;

        if (bytes_is_utf8(s))
            return;
        buf_init(&b);
        for (i = 0; i < s.len; i++) {
            uint8_t ch = s.ptr[i];

            if (ch < 0x80) {
                buf_put_u8(&b, ch);
            } else {
                buf_put_u8(&b, (uint8_t)(0xc0 | ch >> 6));
                buf_put_u8(&b, (uint8_t)(0x80 | (ch & 0x3f)));
            }
        }
        json_string_setn(v, (const char *)b.data, b.len);
        buf_fini(&b);
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, e) sanitize_strings(e, depth + 1);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) sanitize_strings(e, depth + 1);
    }
}

json_t *
mgmt_table_json(struct bytes tbl)
{
    json_t *o = defs_table_to_json(tbl);

    sanitize_strings(o, 0);
    return o;
}

/* ---- the node's vhosts and name */

/* Every vhost, sorted by name. */
static int
vhost_cmp(const void *a, const void *b)
{
    const struct vhost *x = *(struct vhost *const *)a;
    const struct vhost *y = *(struct vhost *const *)b;

    return strcmp(vhost_name(x), vhost_name(y));
}

struct vhost **
mgmt_vhosts(size_t *n)
{
    struct node *node = srv->node;
    size_t count = node_vhost_count(node), i = 0;
    struct vhost **v = xcalloc(count + 1, sizeof(*v));

    for (struct vhost *vh = node_vhost_next(node, NULL); vh;
         vh = node_vhost_next(node, vh))
        v[i++] = vh;
    qsort(v, count, sizeof(*v), vhost_cmp);
    *n = count;
    return v;
}

const char *
mgmt_node_name(void)
{
    static char name[300];

    if (!name[0]) {
        char host[256] = "localhost";

        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        host[strcspn(host, ".")] = 0;
        snprintf(name, sizeof(name), "warren@%s", host);
    }
    return name;
}

/* ---- vhost access and permissions */

struct vhost *
mgmt_vhost_arg(struct mgmt_req *r, const char *name)
{
    struct vhost *vh = node_vhost_find(srv->node, name);

    if (!vh)
        mgmt_not_found(r);
    return vh;
}

bool
mgmt_can_see_vhost(const struct mgmt_req *r, struct vhost *vh, bool read)
{
    if (r->tags & TAG_ADMINISTRATOR)
        return true;
    if (read && (r->tags & TAG_MONITORING))
        return true;
    return r->user_name && vhost_user_has_access(vh, r->user_name);
}

bool
mgmt_check_vhost(struct mgmt_req *r, struct vhost *vh, bool read)
{
    if (mgmt_can_see_vhost(r, vh, read))
        return true;
    mgmt_not_authorised(r, "User not authorised to access virtual host");
    return false;
}

bool
mgmt_check_perm(struct mgmt_req *r, struct vhost *vh, enum perm_kind kind,
                const char *what, struct bytes name)
{
    struct vherr err;

    if (vhost_perm_check(vh, r->user_name, kind, what, name, &err) == WR_OK)
        return true;
    mgmt_not_authorised(r, "Access refused.");
    return false;
}

struct bytes
mgmt_exchange_name(const char *path_name)
{
    if (strcmp(path_name, "amq.default") == 0)
        return BYTES_LIT("");
    return bytes_str(path_name);
}

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
        reply_error_text(r, 401, "not_authorized", "Login failed");
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

bool
mgmt_api_credentials_ok(const char *authorization, bool loopback)
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

void
mgmt_api_dispatch(struct mgmt_req *r)
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
    rt->fn(r);
}
