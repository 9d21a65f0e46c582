/*
 * m_connection.c: channel 0: the handshake and the connection's methods.
 *
 *   client                        server
 *   "AMQP" 0 0 9 1           ->
 *                            <-   connection.start (properties,
 *                                 mechanisms: auth_mechanisms.*)
 *   connection.start-ok      ->   (SASL check: auth.c)
 *                            <-   connection.tune (channel_max,
 *                                 frame_max, heartbeat)
 *   connection.tune-ok       ->   (limits checked as RabbitMQ's
 *                                 validate_negotiated_integer_value)
 *   connection.open (vhost)  ->   (vhost_connection_admit)
 *                            <-   connection.open-ok
 *
 * A method out of this order is a 504 "unexpected method in connection
 * state <state>", RabbitMQ's text: the method table (m_table.c) says
 * which state each handler here expects, and conn.c checks it.
 */
#include "server/channel.h"

#include "amqp/ftable.h"

#include <stdio.h>
#include <stdlib.h>

static void
server_properties(struct conn *c, struct buf *b)
{
    size_t caps;

    fenc_key(b, "capabilities");
    buf_put_u8(b, 'F');
    caps = ftable_begin(b);
    fenc_bool(b, "publisher_confirms", true);
    fenc_bool(b, "exchange_exchange_bindings", true);
    fenc_bool(b, "basic.nack", true);
    fenc_bool(b, "consumer_cancel_notify", true);
    fenc_bool(b, "connection.blocked", true);
    fenc_bool(b, "consumer_priorities", true);
    fenc_bool(b, "authentication_failure_close", true);
    fenc_bool(b, "per_consumer_qos", true);
    fenc_bool(b, "direct_reply_to", true);
    ftable_end(b, caps);
    fenc_cstr(b, "cluster_name", srv->cfg->cluster_name);
    fenc_cstr(b, "copyright", "Copyright (c) 2026 The Warren developers");
    fenc_cstr(b, "information", "Licensed under the MIT License");
    fenc_cstr(b, "platform", "C17 / libev");
    fenc_cstr(b, "product", "Warren");
    fenc_cstr(b, "version", WARREN_VERSION);
    (void)c;
}

void
m_connection_start(struct conn *c)
{
    struct amqp_method m = {.id = AMQP_CONNECTION_START};
    struct buf props, mechs;

    buf_init(&props);
    buf_init(&mechs);
    server_properties(c, &props);
    auth_mechanisms(srv, c, &mechs);
    m.u.connection_start.version_major = 0;
    m.u.connection_start.version_minor = 9;
    m.u.connection_start.server_properties = buf_bytes(&props);
    m.u.connection_start.mechanisms = buf_bytes(&mechs);
    m.u.connection_start.locales = BYTES_LIT("en_US");
    conn_send_method(c, 0, &m);
    buf_fini(&props);
    buf_fini(&mechs);
    c->state = CONN_START;
}

static bool
cap_set(struct bytes caps, const char *name)
{
    struct fvalue v;

    return ftable_find(caps, name, &v) && v.type == 't' && v.v.b;
}

int
m_connection_start_ok(struct conn *c, const struct amqp_method *method)
{
    const struct amqp_connection_start_ok *m = &method->u.connection_start_ok;
    struct amqp_method tune = {.id = AMQP_CONNECTION_TUNE};
    char why[256];
    struct fvalue caps;
    int rc;

    c->client_props =
        bytes_of(xmemdup(m->client_properties.ptr, m->client_properties.len),
                 m->client_properties.len);
    if (ftable_find(m->client_properties, "capabilities", &caps) &&
        caps.type == 'F') {
        c->cap_auth_failure_close =
            cap_set(caps.v.str, "authentication_failure_close");
        c->cap_blocked = cap_set(caps.v.str, "connection.blocked");
        c->cap_cancel_notify = cap_set(caps.v.str, "consumer_cancel_notify");
    }
    /* RabbitMQ 3.10 just closes the socket for an unknown mechanism or
     * a malformed response, whatever the client's capabilities. */
    if (!auth_offered(srv, c, m->mechanism)) {
        log_conn(LOG_WARN,
                 "connection %s -> %s: unknown authentication mechanism "
                 "'%.*s'",
                 c->peer, c->local, BYTES_FMT(m->mechanism));
        conn_drop(c, "unknown authentication mechanism");
        return WR_ERR;
    }
    rc = auth_check(srv, c, m->mechanism, m->response, &c->user, why,
                    sizeof(why));
    c->auth_mech = bytes_eq_str(m->mechanism, "EXTERNAL") ? "EXTERNAL"
                   : bytes_eq_str(m->mechanism, "PLAIN")  ? "PLAIN"
                                                          : "AMQPLAIN";
    if (rc != WR_OK) {
        log_conn(LOG_WARN, "connection %s -> %s: %.*s login refused: %s",
                 c->peer, c->local, BYTES_FMT(m->mechanism), why);
        if (rc == WR_ERR && c->cap_auth_failure_close) {
            conn_fail(c, AMQP_ACCESS_REFUSED, 0,
                      "Login was refused using authentication mechanism "
                      "%.*s. For details see the broker logfile.",
                      BYTES_FMT(m->mechanism));
            /* RabbitMQ closes right after this close; do the same once
             * it is written. */
            conn_flush(c);
        }
        conn_drop(c, "authentication failure");
        return WR_ERR;
    }
    tune.u.connection_tune.channel_max = srv->cfg->channel_max;
    tune.u.connection_tune.frame_max = srv->cfg->frame_max;
    tune.u.connection_tune.heartbeat = (uint16_t)srv->cfg->heartbeat;
    conn_send_method(c, 0, &tune);
    c->state = CONN_TUNE;
    return WR_OK;
}

/* RabbitMQ's validate_negotiated_integer_value. */
static int
check_negotiated(struct conn *c, const char *field, uint32_t min,
                 uint32_t server, uint32_t client)
{
    if (client != 0 && client < min)
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE,
                         "negotiated %s = %u is lower than the minimum "
                         "allowed value (%u)",
                         field, client, min);
    if (server != 0 && (client == 0 || client > server))
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE,
                         "negotiated %s = %u%s is higher than the maximum "
                         "allowed value (%u)",
                         field, client,
                         client == 0 && strcmp(field, "channel_max") == 0
                             ? " (no limit)"
                             : "",
                         server);
    return WR_OK;
}

int
m_connection_tune_ok(struct conn *c, const struct amqp_method *method)
{
    const struct amqp_connection_tune_ok *m = &method->u.connection_tune_ok;

    if (check_negotiated(c, "frame_max", FRAME_MIN_SIZE, srv->cfg->frame_max,
                         m->frame_max) != WR_OK ||
        check_negotiated(c, "channel_max", 1, srv->cfg->channel_max,
                         m->channel_max) != WR_OK)
        return WR_ERR;
    c->frame_max = m->frame_max ? m->frame_max : srv->cfg->frame_max;
    c->channel_max = m->channel_max ? m->channel_max : 65535;
    c->heartbeat = m->heartbeat;
    c->fp.frame_max = c->frame_max + FRAME_OVERHEAD;
    c->state = CONN_OPENING;
    return WR_OK;
}

int
m_connection_open(struct conn *c, const struct amqp_method *method)
{
    const struct amqp_connection_open *m = &method->u.connection_open;
    struct amqp_method ok = {.id = AMQP_CONNECTION_OPEN_OK};
    char name[256];
    struct vherr err;
    struct vhost *vh;

    snprintf(name, sizeof(name), "%.*s", BYTES_FMT(m->virtual_host));
    vh = node_vhost_find(srv->node, name);
    /* RabbitMQ's order: the vhost's connection limit, then whether it
     * exists, then whether the user may use it (a vhost that does not
     * exist has no limit to reach). */
    if (!vh)
        return conn_fail(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                         "vhost %s not found", name);
    if (!vhost_is_serving(vh))
        return clustering_open(c, vh); /* another node leads it */
    if (vhost_connection_admit(vh, c->user, &err) != WR_OK)
        return conn_fail(c, err.code, AMQP_CONNECTION_OPEN, "%s", err.text);
    if (node_user_connection_admit(srv->node, c->user, &err) != WR_OK) {
        vhost_connection_leave(vh);
        return conn_fail(c, err.code, AMQP_CONNECTION_OPEN, "%s", err.text);
    }
    c->user_counted = true;
    c->vh = vh;
    conn_send_method(c, 0, &ok);
    conn_opened(c);
    return WR_OK;
}

int
m_connection_close(struct conn *c, const struct amqp_method *method)
{
    const struct amqp_connection_close *m = &method->u.connection_close;
    char reason[400];

    snprintf(reason, sizeof(reason), "client closed the connection (%u %.*s)",
             m->reply_code, BYTES_FMT(m->reply_text));
    conn_close_ok(c, reason);
    return WR_OK;
}

int
m_connection_close_ok(struct conn *c, const struct amqp_method *m)
{
    (void)m;
    conn_drop(c, "connection closed");
    return WR_OK;
}

int
m_connection_update_secret(struct conn *c, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_CONNECTION_UPDATE_SECRET_OK};

    (void)m;
    conn_send_method(c, 0, &ok);
    return WR_OK;
}

/* connection.blocked and unblocked from a client: RabbitMQ ignores them. */
int
m_connection_blocked(struct conn *c, const struct amqp_method *m)
{
    (void)c;
    (void)m;
    return WR_OK;
}
