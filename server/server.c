/*
 * server.c: the broker process: booting the node (definitions, logs, the
 * default user on a first start, load_definitions), the AMQP listeners,
 * the signals that stop it, and the method table the connections and
 * channels dispatch through.
 *
 * Booting opens the listeners last, once the node is ready, and only
 * then tells a service manager (notify_ready): a client that can connect
 * finds every durable queue recovered. SIGTERM and SIGINT close every
 * connection with 320 CONNECTION_FORCED and stop the loop once they are
 * gone, or after 3 s.
 */
#include "server/channel.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- listeners */

/* A new AMQP connection, unless the node is stopping or at
 * connection_max. */
static void
amqp_accept(struct listener *l, int fd, const struct sockaddr_storage *sa)
{
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);

    if (srv->stopping ||
        (srv->cfg->connection_max && srv->nconns >= srv->cfg->connection_max)) {
        if (!srv->stopping && wr_now_ms() - l->last_warn_ms > 1000) {
            l->last_warn_ms = wr_now_ms();
            log_warn("connection_max (%u) reached: refusing connections",
                     srv->cfg->connection_max);
        }
        close(fd);
        return;
    }
    getsockname(fd, (struct sockaddr *)&local, &llen);
    conn_accept(srv, fd, sa, &local, l->data);
}

/* An AMQP listener (proto "amqp"), or an AMQPS one ("amqps") whose
 * connections speak TLS with tls. */
static int
amqp_listener_open(struct server *s, const struct wr_listener *wl,
                   struct listener *l, const char *proto,
                   struct tls_server *tls)
{
    const char *h = wl->host[0] ? wl->host : "0.0.0.0", *why;

    if (listener_open(l, s->loop, h, wl->port, 1024, proto, amqp_accept,
                      &why) != WR_OK) {
        log_err("cannot listen on %s:%u: %s (is another broker running? "
                "change listeners.%s.%s%s)",
                h, wl->port, why, tls ? "ssl" : "tcp",
                wl->name[0] ? wl->name : "default",
                tls ? "" : " or use --listen");
        return WR_ERR;
    }
    l->data = tls;
    return WR_OK;
}

/* listeners.ssl.*: the TLS server of ssl_options.* and its listeners. A
 * certificate that cannot be loaded stops the start. */
static int
amqps_listeners_open(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    char err[1024];

    if (cfg->nssl_listeners == 0)
        return WR_OK;
    s->tls = tls_server_new(&cfg->ssl, "ssl_options", err, sizeof(err));
    if (!s->tls) {
        log_err("cannot start the AMQPS listeners: %s", err);
        return WR_ERR;
    }
    for (size_t i = 0; i < cfg->nssl_listeners; i++) {
        if (amqp_listener_open(s, &cfg->ssl_listeners[i], &s->ssl_listeners[i],
                               "amqps", s->tls) != WR_OK)
            return WR_ERR;
        s->nssl_listeners++;
    }
    return WR_OK;
}

/* ---- shutdown */

static void
shutdown_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    if (!srv->loop_ended) {
        srv->loop_ended = true;
        ev_break(loop, EVBREAK_ALL);
    }
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct server *s = srv;

    (void)revents;
    if (s->stopping)
        return;
    log_info("received %s, closing %u connection(s) and shutting down",
             w->signum == SIGTERM ? "SIGTERM" : "SIGINT", s->nconns);
    s->stopping = true;
    notify_stopping();
    clustering_drain(s);
    for (size_t i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    s->nlisteners = 0;
    for (size_t i = 0; i < s->nssl_listeners; i++)
        listener_close(&s->ssl_listeners[i]);
    s->nssl_listeners = 0;
    conn_force_close_all(s, "shutdown");
    /* Give clients a moment to answer close-ok; then go anyway. */
    ev_timer_init(&s->shutdown_timer, shutdown_timeout_cb, 3.0, 0.);
    ev_timer_start(loop, &s->shutdown_timer);
}

/* SIGHUP and SIGUSR1: reopen the log file at its path, for logrotate
 * (`mv warren.log warren.log.1; kill -HUP <pid>`). Never fatal: a file
 * that cannot be reopened leaves the old one in use. Other SIGHUP
 * watchers (certificates) may run beside this one. */
static void
log_reopen_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    const char *name = w->signum == SIGHUP ? "SIGHUP" : "SIGUSR1";

    (void)loop;
    (void)revents;
    if (log_reopen() != WR_OK)
        log_syswarn("received %s: cannot reopen the log file, still "
                    "writing the old one",
                    name);
    else
        log_info("received %s: log file reopened", name);
}

/* A first start: the default user, with its tags and permissions on the
 * default vhost (RabbitMQ's default_user, default_pass, default_user_tags,
 * default_permissions). */
static int
create_defaults(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    struct vherr err;
    struct buf tags;
    int rc;

    buf_init(&tags);
    for (size_t i = 0; i < cfg->ndefault_user_tags; i++)
        buf_printf(&tags, "%s%s", i ? "," : "", cfg->default_user_tags[i]);
    buf_put_u8(&tags, 0);
    rc = node_user_put(s->node, cfg->default_user, cfg->default_pass, NULL,
                       NULL, (const char *)tags.data, &err);
    buf_fini(&tags);
    if (rc == WR_OK)
        rc = node_perm_set(s->node, cfg->default_vhost, cfg->default_user,
                           cfg->default_perm_configure, cfg->default_perm_write,
                           cfg->default_perm_read, &err);
    if (rc != WR_OK)
        log_err("cannot create the default user '%s': %s", cfg->default_user,
                err.text);
    return rc;
}

/* load_definitions: a RabbitMQ definitions file imported at every boot,
 * as RabbitMQ does (on a cluster node, clustering_load_definitions). */
static int
load_definitions(struct server *s, const char *path)
{
    json_error_t jerr;
    struct vherr err;
    json_t *doc = json_load_file(path, 0, &jerr);

    if (!doc) {
        log_err("load_definitions: %s:%d: %s", path, jerr.line, jerr.text);
        return WR_ERR;
    }
    if (node_defs_import(s->node, doc, &err) != WR_OK) {
        log_err("load_definitions: %s: %s", path, err.text);
        json_decref(doc);
        return WR_ERR;
    }
    json_decref(doc);
    log_info("imported definitions from %s", path);
    return WR_OK;
}

int
server_init(struct server *s, struct wr_config *cfg, bool repair)
{
    struct node_opts opts = {0};
    char err[1024];

    memset(s, 0, sizeof(*s));
    srv = s;
    s->methods = &m_table;
    s->cfg = cfg;
    s->loop = ev_default_loop(EVFLAG_AUTO);
    /* At once: logrotate's signal during a long recovery must not kill
     * the broker (the reopen waits for the loop to run). */
    ev_signal_init(&s->log_sighup, log_reopen_cb, SIGHUP);
    ev_signal_init(&s->log_sigusr1, log_reopen_cb, SIGUSR1);
    ev_signal_start(s->loop, &s->log_sighup);
    ev_signal_start(s->loop, &s->log_sigusr1);
    /* SIGHUP reloads TLS certificates; from here on it never stops the
     * broker, even while the node boots. */
    tls_watch_sighup(s->loop);
    opts.data_dir = cfg->data_dir;
    opts.fsync = cfg->fsync;
    opts.fsync_interval_ms = cfg->fsync_interval_ms;
    opts.segment_size = cfg->segment_size;
    opts.memory_budget = alarm_memory_budget(cfg);
    opts.repair = repair;
    opts.clustered = cfg->cluster_backend == CONF_CLUSTER_ETCD;
    loop_node_hooks(s, &opts);
    s->node = node_new(&opts);
    if (node_boot(s->node, cfg->default_vhost, err, sizeof(err)) != WR_OK) {
        log_err("cannot start: %s", err);
        return WR_ERR;
    }
    if (node_is_fresh(s->node) && create_defaults(s) != WR_OK)
        return WR_ERR;
    if (cfg->load_definitions[0] && !opts.clustered &&
        load_definitions(s, cfg->load_definitions) != WR_OK)
        return WR_ERR;
    alarm_init(s);
    signal(SIGPIPE, SIG_IGN);
    if (clustering_start(s) != WR_OK)
        return WR_ERR;
    if (cfg->load_definitions[0] && opts.clustered &&
        clustering_load_definitions(s, cfg->load_definitions) != WR_OK)
        return WR_ERR;
    /* Signals first: a supervisor may send SIGTERM as soon as it sees the
     * "listening on" line. */
    ev_signal_init(&s->sigterm, signal_cb, SIGTERM);
    ev_signal_init(&s->sigint, signal_cb, SIGINT);
    ev_signal_start(s->loop, &s->sigterm);
    ev_signal_start(s->loop, &s->sigint);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (amqp_listener_open(s, &cfg->listeners[i], &s->listeners[i], "amqp",
                               NULL) != WR_OK)
            return WR_ERR;
        s->nlisteners++;
    }
    if (amqps_listeners_open(s) != WR_OK)
        return WR_ERR;
    s->sat_since = ev_time();
    loop_init(s);
    return WR_OK;
}

int
server_run(struct server *s)
{
    ev_run(s->loop, 0);
    return WR_OK;
}

void
server_fini(struct server *s)
{
    struct conn *c;

    while ((c = s->conns) != NULL)
        conn_drop(c, "broker stopped");
    while (s->reap) {
        c = s->reap;
        s->reap = c->reap_next;
        conn_free(c);
    }
    for (size_t i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    for (size_t i = 0; i < s->nssl_listeners; i++)
        listener_close(&s->ssl_listeners[i]);
    tls_server_free(s->tls);
    tls_unwatch_sighup(s->loop);
    clustering_free(s);
    node_free(s->node);
    ev_loop_destroy(s->loop);
    log_info("stopped");
}
