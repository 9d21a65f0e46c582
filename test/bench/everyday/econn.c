/*
 * econn.c: warren-everyday's connections and topology, through rabbitmq-c
 * exactly as an application would use it (amqp_socket_open, amqp_login,
 * amqp_channel_open, one synchronous RPC per declaration).
 *
 * The topology is warren-perf's (test/bench/perf/topo.c), so both tools
 * measure the same routing work:
 *
 *   direct  queue i bound with key "<prefix>-<i>"; route i uses that key
 *   fanout  every queue bound with ""; one route reaching all queues
 *   topic   binding k (of --topic-bindings, default one per queue) goes
 *           to queue k % queues with, by k % 4, "perf.<k>.*",
 *           "perf.<k>.#", "*.<k>.x" or "#.<k>.x"; route j publishes
 *           "perf.<j>.x", which matches binding j and no other
 *
 * Queues are purged after declaring, so leftovers of an interrupted run
 * cannot look like duplicates.
 */
#include "test/bench/everyday/everyday.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdlib.h>

#define FRAME_MAX       131072
#define CONNECT_TIMEOUT 30
#define RPC_TIMEOUT     120

void
econn_close_text(const amqp_method_t *m, char *out, size_t n)
{
    uint16_t code = 0;
    amqp_bytes_t text = amqp_empty_bytes;

    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = m->decoded;

        code = c->reply_code;
        text = c->reply_text;
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = m->decoded;

        code = c->reply_code;
        text = c->reply_text;
    } else {
        snprintf(out, n, "unexpected method 0x%08x", (unsigned)m->id);
        return;
    }
    snprintf(out, n, "%s closed by the broker: %u %.*s",
             m->id == AMQP_CONNECTION_CLOSE_METHOD ? "connection" : "channel",
             code, (int)WR_MIN(text.len, 300), (const char *)text.bytes);
}

bool
econn_failed(amqp_rpc_reply_t r, const char *what, char *err, size_t n)
{
    char text[400];

    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return false;
    case AMQP_RESPONSE_NONE:
        snprintf(err, n, "%s: no reply", what);
        return true;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, n, "%s: %s", what, amqp_error_string2(r.library_error));
        return true;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        econn_close_text(&r.reply, text, sizeof(text));
        snprintf(err, n, "%s: %s", what, text);
        return true;
    }
    snprintf(err, n, "%s: bad reply", what);
    return true;
}

/* --tls: an amqp_ssl_socket that checks the broker's certificate
 * against --cacert (its name is not checked: the host may be an IP). */
static amqp_socket_t *
tls_socket(amqp_connection_state_t c, const struct ed_opts *o, char *err,
           size_t n)
{
    amqp_socket_t *s = amqp_ssl_socket_new(c);

    if (s == NULL) {
        snprintf(err, n, "amqp_ssl_socket_new failed");
        return NULL;
    }
    amqp_ssl_socket_set_verify_hostname(s, 0);
    amqp_ssl_socket_set_verify_peer(s, o->cacert != NULL);
    if (o->cacert &&
        amqp_ssl_socket_set_cacert(s, o->cacert) != AMQP_STATUS_OK) {
        snprintf(err, n, "--cacert %s: cannot load it", o->cacert);
        return NULL;
    }
    return s;
}

amqp_connection_state_t
econn_open(const struct ed_opts *o, char *err, size_t n)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s;
    struct timeval connect_tv = {CONNECT_TIMEOUT, 0};
    struct timeval rpc_tv = {RPC_TIMEOUT, 0};
    int rc;

    if (c == NULL) {
        snprintf(err, n, "amqp_new_connection failed");
        return NULL;
    }
    s = o->tls ? tls_socket(c, o, err, n) : amqp_tcp_socket_new(c);
    if (s == NULL) {
        if (!o->tls)
            snprintf(err, n, "amqp_tcp_socket_new failed");
        goto fail;
    }
    rc = amqp_socket_open_noblock(s, o->host, o->port, &connect_tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, n, "connect to %s:%d: %s", o->host, o->port,
                 amqp_error_string2(rc));
        goto fail;
    }
    (void)amqp_set_rpc_timeout(c, &rpc_tv);
    if (econn_failed(amqp_login(c, o->vhost, 0, FRAME_MAX, 0,
                                AMQP_SASL_METHOD_PLAIN, o->user, o->pass),
                     "login", err, n))
        goto fail;
    amqp_channel_open(c, 1);
    if (econn_failed(amqp_get_rpc_reply(c), "channel.open", err, n))
        goto fail;
    return c;
fail: /* the socket, if any, belongs to the connection */
    amqp_destroy_connection(c);
    return NULL;
}

void
econn_close(amqp_connection_state_t c)
{
    if (c == NULL)
        return;
    (void)amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    (void)amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

void
econn_queue_name(const struct ed_opts *o, int i, char *out, size_t n)
{
    snprintf(out, n, "%s-%d", o->queue_prefix, i);
}

static void
exchange_name(const struct ed_opts *o, char *out, size_t n)
{
    snprintf(out, n, "%s.%s", o->queue_prefix, ed_xtype_name(o->xtype));
}

static void
topic_pattern(int k, char *out, size_t n)
{
    switch (k % 4) {
    case 0:
        snprintf(out, n, "perf.%d.*", k);
        break;
    case 1:
        snprintf(out, n, "perf.%d.#", k);
        break;
    case 2:
        snprintf(out, n, "*.%d.x", k);
        break;
    default:
        snprintf(out, n, "#.%d.x", k);
        break;
    }
}

static int
topic_bindings(const struct ed_opts *o)
{
    return o->topic_bindings > 0 ? o->topic_bindings : o->queues;
}

static bool
declare_queue(amqp_connection_state_t c, const struct ed_opts *o, int i,
              char *err, size_t n)
{
    char q[256];

    econn_queue_name(o, i, q, sizeof(q));
    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, o->durable_queues, 0, 0,
                       amqp_empty_table);
    if (econn_failed(amqp_get_rpc_reply(c), "queue.declare", err, n))
        return false;
    amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
    return !econn_failed(amqp_get_rpc_reply(c), "queue.purge", err, n);
}

static bool
bind_key(amqp_connection_state_t c, const char *q, const char *ex,
         const char *key, char *err, size_t n)
{
    amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(ex),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return !econn_failed(amqp_get_rpc_reply(c), "queue.bind", err, n);
}

/* Binds queue i as its exchange type wants (topic: see econn_setup). */
static bool
bind_queue(amqp_connection_state_t c, const struct ed_opts *o, const char *ex,
           int i, char *err, size_t n)
{
    char q[256];

    econn_queue_name(o, i, q, sizeof(q));
    switch (o->xtype) {
    case ED_DIRECT:
        return bind_key(c, q, ex, q, err, n);
    case ED_FANOUT:
        return bind_key(c, q, ex, "", err, n);
    case ED_TOPIC:
        break;
    }
    return true;
}

bool
econn_setup(amqp_connection_state_t c, const struct ed_opts *o, char *err,
            size_t n)
{
    char ex[256];
    char q[256];
    char key[64];

    exchange_name(o, ex, sizeof(ex));
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(ex),
                          amqp_cstring_bytes(ed_xtype_name(o->xtype)), 0,
                          o->durable_queues, 0, 0, amqp_empty_table);
    if (econn_failed(amqp_get_rpc_reply(c), "exchange.declare", err, n))
        return false;
    for (int i = 0; i < o->queues; i++)
        if (!declare_queue(c, o, i, err, n) || !bind_queue(c, o, ex, i, err, n))
            return false;
    if (o->xtype != ED_TOPIC)
        return true;
    for (int k = 0; k < topic_bindings(o); k++) {
        econn_queue_name(o, k % o->queues, q, sizeof(q));
        topic_pattern(k, key, sizeof(key));
        if (!bind_key(c, q, ex, key, err, n))
            return false;
    }
    return true;
}

bool
econn_teardown(amqp_connection_state_t c, const struct ed_opts *o, char *err,
               size_t n)
{
    char name[256];

    for (int i = 0; i < o->queues; i++) {
        econn_queue_name(o, i, name, sizeof(name));
        amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
        if (econn_failed(amqp_get_rpc_reply(c), "queue.delete", err, n))
            return false;
    }
    exchange_name(o, name, sizeof(name));
    amqp_exchange_delete(c, 1, amqp_cstring_bytes(name), 0);
    return !econn_failed(amqp_get_rpc_reply(c), "exchange.delete", err, n);
}

/* Adds a route whose key is keys[i] (copied there). */
static void
add_route(struct ed_routes *rs, const char *key, uint16_t target)
{
    int i = rs->n++;

    snprintf(rs->keys[i], sizeof(rs->keys[i]), "%s", key);
    rs->r[i].exchange = amqp_cstring_bytes(rs->exchange);
    rs->r[i].key = amqp_cstring_bytes(rs->keys[i]);
    rs->r[i].target = target;
}

void
econn_routes_init(struct ed_routes *rs, const struct ed_opts *o)
{
    int max = o->xtype == ED_TOPIC ? topic_bindings(o) : o->queues;
    char key[256];

    memset(rs, 0, sizeof(*rs));
    exchange_name(o, rs->exchange, sizeof(rs->exchange));
    rs->r = xcalloc((size_t)max, sizeof(*rs->r));
    rs->keys = xcalloc((size_t)max, sizeof(*rs->keys));
    switch (o->xtype) {
    case ED_DIRECT:
        for (int i = 0; i < o->queues; i++) {
            econn_queue_name(o, i, key, sizeof(key));
            add_route(rs, key, (uint16_t)i);
        }
        break;
    case ED_FANOUT:
        add_route(rs, "", PMSG_BROADCAST);
        break;
    case ED_TOPIC:
        for (int j = 0; j < max; j++) {
            snprintf(key, sizeof(key), "perf.%d.x", j);
            add_route(rs, key, (uint16_t)(j % o->queues));
        }
        break;
    }
}

void
econn_routes_fini(struct ed_routes *rs)
{
    free(rs->r);
    free(rs->keys);
    memset(rs, 0, sizeof(*rs));
}
