/*
 * mgmt_api_node.c: the node as a whole over HTTP.
 *
 *   /api/overview, /api/whoami, /api/cluster-name, /api/extensions,
 *   /api/nodes[/name]
 *   /api/aliveness-test/v   declares "aliveness-test" in v, publishes
 *                           "test_message" to it and gets it back
 *   /api/health/checks/...  200 {"status":"ok"} or 503
 *                           {"status":"failed","reason":...}, as
 *                           RabbitMQ's health checks
 *
 * Node figures come from the process (/proc/self, statvfs on data_dir,
 * getrlimit), the alarms from srv->alarms, message rates from the
 * sampled statistics (mgmt_api_stats.c).
 */
#include "server/mgmt/mgmt_int.h"

#include "cluster/cluster.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <utlist.h>

#define RABBIT_VERSION "3.10.8"

static json_t *
exchange_types(void)
{
    static const char *const types[] = {"direct", "fanout", "headers", "topic"};
    json_t *a = json_array();
    char desc[80];

    for (size_t i = 0; i < WR_ARRAY_LEN(types); i++) {
        snprintf(desc, sizeof(desc),
                 "AMQP %s exchange, as per the AMQP specification", types[i]);
        json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "name", types[i],
                                           "description", desc, "enabled", 1));
    }
    /* As RabbitMQ lists its plugin's type once it is enabled. */
    json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "name",
                                       "x-consistent-hash", "description",
                                       "Consistent Hashing Exchange", "enabled",
                                       1));
    json_array_append_new(
        a, json_pack("{s:s, s:s, s:b}", "name", "x-delayed-message",
                     "description", "Delayed Message Exchange.", "enabled", 1));
    return a;
}

/* "host:port" or "[v6]:port" -> {"ip_address", "port"} */
static void
addr_parts(const char *addr, char *ip, size_t n, int *port)
{
    const char *colon = strrchr(addr, ':');
    size_t len = colon ? (size_t)(colon - addr) : strlen(addr);

    if (len >= 2 && addr[0] == '[') {
        addr++;
        len -= 2;
    }
    snprintf(ip, n, "%.*s", (int)len, addr);
    *port = colon ? atoi(colon + 1) : 0;
}

/* The running other nodes' AMQP and HTTP listeners, as they published
 * them. */
static void
other_listeners(json_t *a)
{
    const struct cluster_node *list;
    size_t n = cluster_nodes(srv->cluster, &list);
    char ip[300];
    int port;

    for (size_t i = 0; i < n; i++) {
        const struct cluster_node *cn = &list[i];
        const char *addrs[2] = {cn->amqp_addr, cn->mgmt_addr};
        const char *protos[2] = {"amqp", "http"};

        if (!cn->running || strcmp(cn->name, mgmt_node_name()) == 0)
            continue;
        for (int k = 0; k < 2; k++) {
            if (!addrs[k][0])
                continue;
            addr_parts(addrs[k], ip, sizeof(ip), &port);
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i, s:{}}",
                                               "node", cn->name, "protocol",
                                               protos[k], "ip_address", ip,
                                               "port", port, "socket_opts"));
        }
    }
}

/* {"total", "running"}: the cluster's nodes (1 and 1 for a single
 * node). */
static json_t *
node_totals_json(void)
{
    const struct cluster_node *list;
    size_t n, running = 0;

    if (!srv->cluster)
        return json_pack("{s:i, s:i}", "total", 1, "running", 1);
    n = cluster_nodes(srv->cluster, &list);
    for (size_t i = 0; i < n; i++)
        running += list[i].running;
    return json_pack("{s:I, s:I}", "total", (json_int_t)n, "running",
                     (json_int_t)running);
}

/* One listener as RabbitMQ lists it, protocol amqp, amqp/ssl, http or
 * https. */
static void
add_listener(json_t *a, const char *addr, const char *protocol)
{
    char ip[300];
    int port;

    addr_parts(addr, ip, sizeof(ip), &port);
    json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i, s:{}}", "node",
                                       mgmt_node_name(), "protocol", protocol,
                                       "ip_address", ip, "port", port,
                                       "socket_opts"));
}

static json_t *
listeners_json(void)
{
    json_t *a = json_array();

    for (size_t i = 0; i < srv->nlisteners; i++)
        add_listener(a, srv->listeners[i].addr, "amqp");
    for (size_t i = 0; i < srv->nssl_listeners; i++)
        add_listener(a, srv->ssl_listeners[i].addr, "amqp/ssl");
    add_listener(a, mgmt_http_addr(), "http");
    if (mgmt_https_addr())
        add_listener(a, mgmt_https_addr(), "https");
    if (srv->cluster)
        other_listeners(a);
    return a;
}

static json_t *
contexts_json(void)
{
    char port[16];

    snprintf(port, sizeof(port), "%u", mgmt_http_port());
    return json_pack("[{s:s, s:s, s:s, s:s}]", "node", mgmt_node_name(),
                     "description", "RabbitMQ Management", "path", "/", "port",
                     port);
}

static json_t *
tags_array(const char *text)
{
    json_t *a = json_array();
    const char *p = text;

    while (p && *p) {
        size_t len = strcspn(p, ",");

        if (len)
            json_array_append_new(a, json_stringn(p, len));
        p += len;
        if (*p == ',')
            p++;
    }
    return a;
}

void
mgmt_h_whoami(struct mgmt_req *r)
{
    mgmt_reply_json(r, 200,
                    json_pack("{s:s, s:o}", "name", r->user_name, "tags",
                              tags_array(r->user->tags)));
}

void
mgmt_h_cluster_name(struct mgmt_req *r)
{
    json_t *body;
    const char *name;

    if (r->method != HTTP_PUT) {
        mgmt_reply_json(r, 200,
                        json_pack("{s:s}", "name", srv->cfg->cluster_name));
        return;
    }
    if (!(body = mgmt_body_json(r)))
        return;
    name = json_string_value(json_object_get(body, "name"));
    if (!name) {
        mgmt_bad_request(r, "[{key_missing,name}]");
    } else if (strlen(name) >= sizeof(srv->cfg->cluster_name) ||
               strlen(name) > 255) {
        mgmt_bad_request(r, "cluster name too long");
    } else {
        snprintf(srv->cfg->cluster_name, sizeof(srv->cfg->cluster_name), "%s",
                 name);
        mgmt_reply_empty(r, 204);
    }
    json_decref(body);
}

void
mgmt_h_extensions(struct mgmt_req *r)
{
    mgmt_reply_json(r, 200, json_array());
}

/* ---- overview */

struct totals {
    size_t conns, channels;
    struct mgmt_vtotals v;
};

static void
count_visible(struct mgmt_req *r, struct totals *t)
{
    size_t n;
    struct vhost **vs = mgmt_vhosts(&n);

    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        if (mgmt_can_see_vhost(r, vs[i], true) && vhost_is_serving(vs[i]))
            mgmt_stats_vhost(vs[i], &t->v);
    }
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;

        conn_info(c, &ci);
        if (!ci.vh || !mgmt_can_see_vhost(r, ci.vh, true))
            continue;
        if (!(r->tags & (TAG_ADMINISTRATOR | TAG_MONITORING)) &&
            (!ci.user || strcmp(ci.user, r->user_name) != 0))
            continue;
        t->conns++;
        t->channels += ci.channels;
    }
    free(vs);
}

/* The queues' totals (publish, deliver, ack, redeliver, expired, as
 * before), and the channels' for what only channels count: confirm,
 * get, get_empty, deliver_no_ack, get_no_ack, return_unroutable,
 * drop_unroutable. */
static json_t *
message_stats_json(void)
{
    static const char *const from_channels[] = {
        "confirm",        "get",        "get_empty",
        "deliver_no_ack", "get_no_ack", "return_unroutable",
        "drop_unroutable"};
    struct mgmt_totals tt;
    struct chan_stats k;
    uint64_t nch, ncons;
    double rate[MGMT_CH_COUNTERS];
    json_t *o, *chans;

    mgmt_stats_totals(&tt);
    mgmt_stats_channels(&k, &nch, &ncons);
    mgmt_stats_channel_rates(rate);
    chans = mgmt_chan_message_stats(&k, rate);
    o = json_pack(
        "{s:I, s:o, s:I, s:o, s:I, s:o, s:I, s:o, s:I, s:o, s:I, s:o}",
        "publish", (json_int_t)tt.publish, "publish_details",
        mgmt_rate(tt.publish_rate), "deliver_get", (json_int_t)tt.deliver,
        "deliver_get_details", mgmt_rate(tt.deliver_rate), "deliver",
        (json_int_t)tt.deliver, "deliver_details", mgmt_rate(tt.deliver_rate),
        "ack", (json_int_t)tt.ack, "ack_details", mgmt_rate(tt.ack_rate),
        "redeliver", (json_int_t)tt.redeliver, "redeliver_details",
        mgmt_rate(tt.redeliver_rate), "expired", (json_int_t)tt.expired,
        "expired_details", mgmt_rate(0));
    for (size_t i = 0; i < WR_ARRAY_LEN(from_channels); i++) {
        char details[64];

        snprintf(details, sizeof(details), "%s_details", from_channels[i]);
        json_object_set(o, from_channels[i],
                        json_object_get(chans, from_channels[i]));
        json_object_set(o, details, json_object_get(chans, details));
    }
    json_decref(chans);
    return o;
}

/* RabbitMQ's churn_rates: each count with its _details rate. */
static json_t *
churn_json(void)
{
    uint64_t count[MGMT_CHURN_N];
    double rate[MGMT_CHURN_N];
    json_t *o = json_object();

    mgmt_stats_churn(count, rate);
    for (int i = 0; i < MGMT_CHURN_N; i++) {
        char details[64];

        snprintf(details, sizeof(details), "%s_details", mgmt_churn_names[i]);
        json_object_set_new(o, mgmt_churn_names[i],
                            json_integer((json_int_t)count[i]));
        json_object_set_new(o, details, mgmt_rate(rate[i]));
    }
    return o;
}

void
mgmt_h_overview(struct mgmt_req *r)
{
    struct totals t;
    json_t *o;

    count_visible(r, &t);
    o = json_pack("{s:s, s:s, s:{s:[i,i,i,i], s:[i,i], s:[i]}, s:o, s:s, "
                  "s:s, s:s, s:s, s:s, s:s, s:b, s:b}",
                  "management_version", RABBIT_VERSION, "rates_mode", "basic",
                  "sample_retention_policies", "global", 600, 3600, 28800,
                  86400, "basic", 600, 3600, "detailed", 600, "exchange_types",
                  exchange_types(), "product_version", WARREN_VERSION,
                  "product_name", "Warren", "rabbitmq_version", RABBIT_VERSION,
                  "cluster_name", srv->cfg->cluster_name, "erlang_version",
                  "none (C17)", "erlang_full_version",
                  "Warren " WARREN_VERSION " (C17, libev)", "disable_stats", 0,
                  "enable_queue_totals", 0);
    if (r->tags & (TAG_ADMINISTRATOR | TAG_MONITORING))
        json_object_set_new(o, "message_stats", message_stats_json());
    else
        json_object_set_new(o, "message_stats", json_object());
    json_object_set_new(
        o, "queue_totals",
        json_pack("{s:I, s:o, s:I, s:o, s:I, s:o}", "messages",
                  (json_int_t)(t.v.ready + t.v.unacked), "messages_details",
                  mgmt_rate(t.v.rates.ready + t.v.rates.unacked),
                  "messages_ready", (json_int_t)t.v.ready,
                  "messages_ready_details", mgmt_rate(t.v.rates.ready),
                  "messages_unacknowledged", (json_int_t)t.v.unacked,
                  "messages_unacknowledged_details",
                  mgmt_rate(t.v.rates.unacked)));
    json_object_set_new(
        o, "object_totals",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "channels",
                  (json_int_t)t.channels, "connections", (json_int_t)t.conns,
                  "consumers", (json_int_t)t.v.consumers, "exchanges",
                  (json_int_t)t.v.exchanges, "queues", (json_int_t)t.v.queues));
    json_object_set_new(o, "churn_rates", churn_json());
    json_object_set_new(o, "statistics_db_event_queue", json_integer(0));
    json_object_set_new(o, "node", json_string(mgmt_node_name()));
    json_object_set_new(o, "node_totals", node_totals_json());
    json_object_set_new(o, "listeners", listeners_json());
    json_object_set_new(o, "contexts", contexts_json());
    mgmt_reply_item(r, o);
}

/* ---- nodes */

uint64_t
mgmt_disk_free(void)
{
    struct statvfs st;

    if (statvfs(srv->cfg->data_dir, &st) != 0)
        return 0;
    return (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
}

uint64_t
mgmt_disk_free_limit(void)
{
    const struct wr_config *cfg = srv->cfg;

    if (cfg->disk_free_limit_relative > 0)
        return (uint64_t)(cfg->disk_free_limit_relative *
                          (double)alarm_total_ram(cfg));
    return cfg->disk_free_limit_absolute;
}

size_t
mgmt_fds_used(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own fd */
}

/* RabbitMQ's log_files: the log file's path, and "<stderr>" for the
 * console (RabbitMQ writes "<stdout>" for its console output). */
static json_t *
log_files_json(const struct wr_config *cfg)
{
    json_t *a = json_array();

    if (cfg->log_file[0])
        json_array_append_new(a, json_string(cfg->log_file));
    if (cfg->log_console)
        json_array_append_new(a, json_string("<stderr>"));
    return a;
}

static json_t *
node_json(void)
{
    struct rlimit rl;
    uint64_t fd_total;
    char pid[32];
    json_t *o;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        rl.rlim_cur = 1024;
    fd_total = rl.rlim_cur;
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:b, s:s, s:I, s:I, s:b}", "name",
                  mgmt_node_name(), "type", "disc", "running", 1, "mem_used",
                  (json_int_t)alarm_resident_bytes(), "mem_limit",
                  (json_int_t)alarm_memory_watermark(srv->cfg), "mem_alarm",
                  (srv->alarms & ALARM_MEMORY) != 0, "mem_calculation_strategy",
                  "rss", "disk_free", (json_int_t)mgmt_disk_free(),
                  "disk_free_limit", (json_int_t)mgmt_disk_free_limit(),
                  "disk_free_alarm", (srv->alarms & ALARM_DISK) != 0);
    json_object_set_new(o, "fd_used",
                        json_integer((json_int_t)mgmt_fds_used()));
    json_object_set_new(o, "fd_total", json_integer((json_int_t)fd_total));
    json_object_set_new(o, "sockets_used",
                        json_integer(srv->nconns + mgmt_http_nconns()));
    json_object_set_new(o, "sockets_total",
                        json_integer((json_int_t)(fd_total * 9 / 10)));
    json_object_set_new(o, "proc_used", json_integer(1));
    json_object_set_new(o, "proc_total", json_integer(1));
    json_object_set_new(o, "run_queue", json_integer(0));
    json_object_set_new(o, "processors",
                        json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(o, "uptime",
                        json_integer((json_int_t)mgmt_stats_uptime_ms()));
    json_object_set_new(o, "os_pid", json_string(pid));
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "net_ticktime", json_integer(60));
    json_object_set_new(o, "being_drained", json_false());
    json_object_set_new(o, "enabled_plugins",
                        json_pack("[s]", "rabbitmq_management"));
    json_object_set_new(o, "exchange_types", exchange_types());
    json_object_set_new(
        o, "auth_mechanisms",
        json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "name", "PLAIN",
                  "description", "SASL PLAIN authentication mechanism",
                  "enabled", 1, "name", "AMQPLAIN", "description",
                  "QPid AMQPLAIN mechanism", "enabled", 1));
    json_object_set_new(o, "applications",
                        json_pack("[{s:s, s:s, s:s}]", "name", "warren",
                                  "description", "Warren AMQP 0-9-1 broker",
                                  "version", WARREN_VERSION));
    json_object_set_new(o, "partitions", json_array());
    json_object_set_new(o, "cluster_links", json_array());
    json_object_set_new(o, "log_files", log_files_json(srv->cfg));
    json_object_set_new(o, "config_files", json_array());
    json_object_set_new(o, "db_dir", json_string(srv->cfg->data_dir));
    json_object_set_new(o, "contexts", contexts_json());
    return o;
}

/* The figures a clustered node publishes in its etcd key every few
 * seconds (cluster/member.c), for the other nodes' /api/nodes. */
static const char *const published[] = {
    "mem_used",        "mem_limit",       "mem_alarm", "disk_free",
    "disk_free_limit", "disk_free_alarm", "fd_used",   "fd_total",
    "sockets_used",    "sockets_total",   "proc_used", "proc_total",
    "processors",      "uptime",          "os_pid",    "run_queue",
    "db_dir",
};

json_t *
mgmt_node_stats(void)
{
    json_t *all = node_json(), *o = json_object();

    for (size_t i = 0; i < WR_ARRAY_LEN(published); i++) {
        json_t *v = json_object_get(all, published[i]);

        if (v)
            json_object_set(o, published[i], v);
    }
    json_decref(all);
    return o;
}

/* Another node as this one knows it: its last published figures when it
 * runs, only its name when it does not (as RabbitMQ shows a stopped
 * node). */
static json_t *
other_node_json(const struct cluster_node *n)
{
    json_t *o, *stats, *v;
    const char *k;
    char ip[300], port[16];
    int p;

    if (!n->running)
        return json_pack("{s:s, s:s, s:b, s:[], s:b}", "name", n->name, "type",
                         "disc", "running", 0, "partitions", "being_drained",
                         0);
    o = node_json();
    json_object_set_new(o, "name", json_string(n->name));
    stats = n->info ? json_object_get(n->info, "stats") : NULL;
    json_object_foreach(stats, k, v)
    {
        json_object_set(o, k, v);
    }
    addr_parts(n->mgmt_addr, ip, sizeof(ip), &p);
    snprintf(port, sizeof(port), "%d", p);
    json_object_set_new(o, "contexts",
                        json_pack("[{s:s, s:s, s:s, s:s}]", "node", n->name,
                                  "description", "RabbitMQ Management", "path",
                                  "/", "port", port));
    return o;
}

/* A node of the cluster (or this one) by name. */
static json_t *
cluster_node_json(const struct cluster_node *n)
{
    return strcmp(n->name, mgmt_node_name()) == 0 ? node_json()
                                                  : other_node_json(n);
}

void
mgmt_h_nodes(struct mgmt_req *r)
{
    json_t *items = json_array();
    const struct cluster_node *list;
    size_t n;

    if (!srv->cluster) {
        json_array_append_new(items, node_json());
    } else {
        n = cluster_nodes(srv->cluster, &list);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(items, cluster_node_json(&list[i]));
    }
    mgmt_reply_list(r, items, (const char *const[]){"name", NULL});
}

void
mgmt_h_node(struct mgmt_req *r)
{
    const struct cluster_node *n;

    if (srv->cluster) {
        n = cluster_node_find(srv->cluster, r->args[0]);
        if (!n)
            mgmt_not_found(r);
        else
            mgmt_reply_item(r, cluster_node_json(n));
        return;
    }
    if (strcmp(r->args[0], mgmt_node_name()) != 0) {
        mgmt_not_found(r);
        return;
    }
    mgmt_reply_item(r, node_json());
}

/* ---- aliveness and health checks */

static void
status_ok(struct mgmt_req *r)
{
    mgmt_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void
status_failed(struct mgmt_req *r, const char *reason, const char *key,
              json_t *extra)
{
    json_t *o = json_pack("{s:s, s:s}", "status", "failed", "reason", reason);

    if (key)
        json_object_set_new(o, key, extra);
    mgmt_reply_json(r, 503, o);
}

void
mgmt_h_aliveness(struct mgmt_req *r)
{
    static const char payload[] = "test_message";
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct queue_decl d = {.name = BYTES_LIT("aliveness-test")};
    struct publish_result res;
    struct queue *q;
    struct qentry e;
    struct message *m;
    struct vherr err;
    bool got;

    if (!vh || !mgmt_check_vhost(r, vh, false))
        return;
    if (vhost_queue_declare(vh, &d, &q, &err) != WR_OK) {
        status_failed(r, err.text, NULL, NULL);
        return;
    }
    m = message_new(BYTES_LIT(""), d.name, BYTES_LIT("\0\0"),
                    sizeof(payload) - 1);
    m = message_append(m, bytes_of(payload, sizeof(payload) - 1));
    m->ts_us = node_now(srv->node);
    vhost_publish(vh, vhost_exchange_find(vh, BYTES_LIT("")), d.name,
                  BYTES_NULL, m, &res);
    message_unref(m);
    got = queue_get(q, false, &e);
    if (got)
        message_unref(e.msg);
    if (res.nqueues == 0 || !got) {
        status_failed(r, "aliveness test failed", NULL, NULL);
        return;
    }
    status_ok(r);
}

/* Warren's own: this node's replication (server/replication.c). */
void
mgmt_h_replication(struct mgmt_req *r)
{
    mgmt_reply_json(r, 200, repl_info());
}

void
mgmt_h_health_alarms(struct mgmt_req *r)
{
    uint32_t a = srv->alarms & (ALARM_MEMORY | ALARM_DISK);
    bool local = strcmp(r->seg[3], "local-alarms") == 0;
    json_t *list;

    if (!a) {
        status_ok(r);
        return;
    }
    list = json_array();
    if (a & ALARM_MEMORY)
        json_array_append_new(list,
                              json_pack("{s:s, s:s}", "node", mgmt_node_name(),
                                        "resource", "memory"));
    if (a & ALARM_DISK)
        json_array_append_new(list,
                              json_pack("{s:s, s:s}", "node", mgmt_node_name(),
                                        "resource", "disk"));
    status_failed(r,
                  local ? "There are alarms in effect on the node"
                        : "There are alarms in effect in the cluster",
                  "alarms", list);
}

void
mgmt_h_health_vhosts(struct mgmt_req *r)
{
    size_t n;
    struct vhost **vs = mgmt_vhosts(&n);
    json_t *down = json_array();

    for (size_t i = 0; i < n; i++)
        if (vhost_log_failed(vs[i]))
            json_array_append_new(down, json_string(vhost_name(vs[i])));
    free(vs);
    if (json_array_size(down) == 0) {
        json_decref(down);
        status_ok(r);
        return;
    }
    status_failed(r, "Some virtual hosts are down", "virtual-hosts", down);
}

void
mgmt_h_health_port(struct mgmt_req *r)
{
    json_t *ports = json_array(), *o;
    char ip[300], *end;
    long want = strtol(r->args[0], &end, 10);
    int port;
    bool found = false;

    if (!*r->args[0] || *end || want < 0 || want > 65535) {
        json_decref(ports);
        mgmt_bad_request(r, "Invalid port");
        return;
    }
    for (size_t i = 0; i < srv->nlisteners; i++) {
        addr_parts(srv->listeners[i].addr, ip, sizeof(ip), &port);
        json_array_append_new(ports, json_integer(port));
        found |= port == want;
    }
    json_array_append_new(ports, json_integer(mgmt_http_port()));
    found |= mgmt_http_port() == want;
    if (found) {
        json_decref(ports);
        mgmt_reply_json(
            r, 200, json_pack("{s:s, s:i}", "status", "ok", "port", (int)want));
        return;
    }
    o = json_pack("{s:s, s:s, s:i, s:o}", "status", "failed", "reason",
                  "No active listener", "missing", (int)want, "ports", ports);
    mgmt_reply_json(r, 503, o);
}

void
mgmt_h_health_protocol(struct mgmt_req *r)
{
    const char *p = r->args[0];
    const char *norm = p;

    if (strcmp(p, "amqp091") == 0 || strcmp(p, "amqp0.9.1") == 0 ||
        strcmp(p, "amqp0-9-1") == 0 || strcmp(p, "amqp") == 0)
        norm = "amqp";
    else if (strcmp(p, "http") == 0 || strcmp(p, "management") == 0)
        norm = "http";
    if ((strcmp(norm, "amqp") == 0 && srv->nlisteners > 0) ||
        strcmp(norm, "http") == 0) {
        mgmt_reply_json(
            r, 200, json_pack("{s:s, s:s}", "status", "ok", "protocol", norm));
        return;
    }
    mgmt_reply_json(r, 503,
                    json_pack("{s:s, s:s, s:s, s:[s, s]}", "status", "failed",
                              "reason", "No active listener", "missing", p,
                              "protocols", "http", "amqp"));
}

/* A cluster node (issue 12): quorum-critical when stopping it would
 * leave a vhost's in-sync set with fewer than min_isr = 2 running
 * members (its confirms would stop), mirror-sync-critical when it holds
 * the last in-sync copy of a vhost. */
static void
health_isr(struct mgmt_req *r)
{
    bool sync = strcmp(r->seg[3], "node-is-mirror-sync-critical") == 0;
    json_t *list = cluster_isr_critical(srv->cluster, sync ? 1 : 2);

    if (json_array_size(list) == 0) {
        json_decref(list);
        status_ok(r);
        return;
    }
    status_failed(r,
                  sync ? "There are classic mirrored queues without online "
                         "synchronised mirrors"
                       : "There are quorum queues that would lose their "
                         "quorum if the target node is shut down",
                  "queues", list);
}

void
mgmt_h_health_ok(struct mgmt_req *r)
{
    if (strstr(r->seg[3], "critical") && srv->cluster) {
        health_isr(r);
        return;
    }
    if (strstr(r->seg[3], "critical"))
        mgmt_reply_json(r, 200,
                        json_pack("{s:s, s:s}", "status", "ok", "reason",
                                  "single node cluster"));
    else
        status_ok(r);
}
