/*
 * mgmt_api_conns.c: AMQP connections and channels over HTTP.
 *
 *   /api/connections[/name]          GET; DELETE closes it with 320
 *                                    CONNECTION_FORCED ("Closed via
 *                                    management plugin", or the X-Reason
 *                                    header's text)
 *   /api/connections/name/channels   GET
 *   /api/vhosts/v/connections        GET
 *   /api/channels[/name], /api/vhosts/v/channels
 *
 * Names are RabbitMQ's: "PEER -> LOCAL" for a connection and
 * "PEER -> LOCAL (N)" for its channel N. Only connections that have
 * opened a vhost are listed (RabbitMQ tracks them from connection.open).
 * A user sees its own connections; monitoring and administrator users
 * see all; only an administrator (or the owner) may close one.
 */
#include "server/mgmt/mgmt_int.h"
#include "server/tls.h"

#include <stdio.h>
#include <stdlib.h>

/* "1.2.3.4:5" or "[::1]:5" -> host, port. */
static void
split_addr(const char *a, char *host, size_t n, int *port)
{
    const char *colon = strrchr(a, ':');
    size_t len = colon ? (size_t)(colon - a) : strlen(a);

    if (len >= 2 && a[0] == '[' && a[len - 1] == ']') {
        a++;
        len -= 2;
    }
    snprintf(host, n, "%.*s", (int)len, a);
    *port = colon ? atoi(colon + 1) : 0;
}

static bool
conn_visible(const struct mgmt_req *r, const struct conn_info *ci)
{
    if (r->tags & (TAG_ADMINISTRATOR | TAG_MONITORING))
        return true;
    return ci->user && strcmp(ci->user, r->user_name) == 0;
}

/* The addresses and the TLS fields (there is no TLS) of a connection. */
static void
conn_json_addrs(json_t *o, const struct conn_info *ci)
{
    char phost[80], lhost[80];
    int pport, lport;

    split_addr(ci->peer, phost, sizeof(phost), &pport);
    split_addr(ci->local, lhost, sizeof(lhost), &lport);
    json_object_set_new(o, "peer_host", json_string(phost));
    json_object_set_new(o, "peer_port", json_integer(pport));
    json_object_set_new(o, "host", json_string(lhost));
    json_object_set_new(o, "port", json_integer(lport));
}

static void
conn_json_io(json_t *o, const struct conn_info *ci)
{
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)ci->recv_oct));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)ci->send_oct));
    double recv_rate, send_rate;

    mgmt_stats_conn(ci->id, &recv_rate, &send_rate);
    json_object_set_new(o, "recv_oct_details", mgmt_rate(recv_rate));
    json_object_set_new(o, "send_oct_details", mgmt_rate(send_rate));
    json_object_set_new(o, "recv_cnt", json_integer((json_int_t)ci->recv_cnt));
    json_object_set_new(o, "send_cnt", json_integer((json_int_t)ci->send_cnt));
    json_object_set_new(o, "send_pend",
                        json_integer((json_int_t)ci->send_pend));
}

/* A string, or null when empty (RabbitMQ's undefined). */
static json_t *
str_or_null(const char *v)
{
    return v && v[0] ? json_string(v) : json_null();
}

/* RabbitMQ's TLS fields: the session's protocol and cipher suite in
 * Erlang's names, the client certificate's subject, issuer and validity;
 * false and nulls for a plain connection. */
static void
conn_json_tls(json_t *o, const struct conn_info *ci)
{
    struct tls_desc d = {0};

    if (ci->tls)
        tls_describe(ci->tls, &d);
    json_object_set_new(o, "ssl", json_boolean(ci->tls != NULL));
    json_object_set_new(o, "ssl_protocol", str_or_null(d.protocol));
    json_object_set_new(o, "ssl_key_exchange", str_or_null(d.key_exchange));
    json_object_set_new(o, "ssl_cipher", str_or_null(d.cipher));
    json_object_set_new(o, "ssl_hash", str_or_null(d.hash));
    json_object_set_new(o, "peer_cert_subject", str_or_null(d.subject));
    json_object_set_new(o, "peer_cert_issuer", str_or_null(d.issuer));
    json_object_set_new(o, "peer_cert_validity", str_or_null(d.validity));
}

static json_t *
conn_json(const struct conn_info *ci)
{
    json_t *o;

    o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, "
        "s:i, s:I}",
        "name", ci->name, "node", mgmt_node_name(), "type", "network", "state",
        ci->state, "user", ci->user ? ci->user : "", "vhost",
        ci->vh ? vhost_name(ci->vh) : "", "protocol", "AMQP 0-9-1",
        "auth_mechanism", ci->auth_mechanism ? ci->auth_mechanism : "PLAIN",
        "channels", (int)ci->channels, "channel_max", (int)ci->channel_max,
        "frame_max", (int)ci->frame_max, "timeout", (int)ci->heartbeat,
        "connected_at", (json_int_t)ci->connected_at_ms);
    json_object_set_new(o, "client_properties",
                        mgmt_table_json(ci->client_props));
    conn_json_addrs(o, ci);
    conn_json_io(o, ci);
    conn_json_tls(o, ci);
    json_object_set_new(o, "user_who_performed_action",
                        json_string(ci->user ? ci->user : ""));
    return o;
}

static json_t *
channel_json(const struct channel *ch)
{
    struct chan_info hi;
    struct conn_info ci;
    char name[200], phost[80];
    int pport;
    double rate[MGMT_CH_COUNTERS];
    json_t *o;

    chan_info(ch, &hi);
    conn_info(hi.conn, &ci);
    snprintf(name, sizeof(name), "%s (%u)", ci.name, hi.number);
    split_addr(ci.peer, phost, sizeof(phost), &pport);
    mgmt_stats_channel(ci.id, hi.number, rate);
    o = json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:i}, s:i, s:i, s:i, "
        "s:i, s:i, s:i, s:i, s:b, s:b, s:i, s:s}",
        "name", name, "number", (int)hi.number, "node", mgmt_node_name(),
        "user", ci.user ? ci.user : "", "vhost", ci.vh ? vhost_name(ci.vh) : "",
        "state", hi.state, "connection_details", "name", ci.name, "peer_host",
        phost, "peer_port", pport, "consumer_count", (int)hi.consumers,
        "messages_unacknowledged", (int)hi.unacked, "messages_unconfirmed",
        (int)hi.unconfirmed, "messages_uncommitted", (int)hi.uncommitted,
        "acks_uncommitted", (int)hi.acks_uncommitted, "prefetch_count",
        (int)hi.prefetch_count, "global_prefetch_count",
        (int)hi.global_prefetch_count, "confirm", hi.confirm, "transactional",
        hi.transactional, "pending_raft_commands", 0,
        "user_who_performed_action", ci.user ? ci.user : "");
    json_object_set_new(o, "message_stats",
                        mgmt_chan_message_stats(&hi.stats, rate));
    return o;
}

/* The listed connection called name; ci gets its snapshot. */
static struct conn *
find_conn(const char *name, struct conn_info *ci)
{
    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        conn_info(c, ci);
        if (ci->listed && strcmp(ci->name, name) == 0)
            return c;
    }
    return NULL;
}

/* Lists connections: all, of one vhost (vh), visible to the user. */
static void
reply_conns(struct mgmt_req *r, struct vhost *vh)
{
    json_t *items = json_array();

    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;

        conn_info(c, &ci);
        if (ci.listed && (!vh || ci.vh == vh) && conn_visible(r, &ci))
            json_array_append_new(items, conn_json(&ci));
    }
    mgmt_reply_list(r, items, (const char *const[]){"vhost", "name", NULL});
}

void
mgmt_h_connections(struct mgmt_req *r)
{
    reply_conns(r, NULL);
}

void
mgmt_h_vhost_connections(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);

    if (vh && mgmt_check_vhost(r, vh, true))
        reply_conns(r, vh);
}

/* The connection r->args[0] names, or NULL after replying 404 (none) or
 * 401 (not the user's). */
static struct conn *
visible_conn(struct mgmt_req *r, struct conn_info *ci)
{
    struct conn *c = find_conn(r->args[0], ci);

    if (!c) {
        mgmt_not_found(r);
        return NULL;
    }
    if (!conn_visible(r, ci)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return NULL;
    }
    return c;
}

void
mgmt_h_connection(struct mgmt_req *r)
{
    struct conn_info ci;
    struct conn *c = visible_conn(r, &ci);
    const char *why;

    if (!c)
        return;
    if (r->method != HTTP_DELETE) {
        mgmt_reply_item(r, conn_json(&ci));
        return;
    }
    if (!(r->tags & TAG_ADMINISTRATOR) &&
        !(ci.user && strcmp(ci.user, r->user_name) == 0)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return;
    }
    why = r->x_reason && *r->x_reason && bytes_is_utf8(bytes_str(r->x_reason))
              ? r->x_reason
              : "Closed via management plugin";
    if (ci.open) {
        log_info("closing AMQP connection %s: requested by user '%s' "
                 "over the management API",
                 ci.name, r->user_name);
        conn_force_close(c, why);
    }
    mgmt_reply_empty(r, 204);
}

static void
reply_channels(struct mgmt_req *r, struct conn *only, struct vhost *vh)
{
    json_t *items = json_array();

    for (struct conn *c = conn_next(srv, NULL); c; c = conn_next(srv, c)) {
        struct conn_info ci;

        conn_info(c, &ci);
        if (!ci.listed || (only && c != only) || (vh && ci.vh != vh) ||
            !conn_visible(r, &ci))
            continue;
        for (struct channel *ch = chan_next(c, NULL); ch; ch = chan_next(c, ch))
            json_array_append_new(items, channel_json(ch));
    }
    mgmt_reply_list(r, items, (const char *const[]){"vhost", "name", NULL});
}

void
mgmt_h_connection_channels(struct mgmt_req *r)
{
    struct conn_info ci;
    struct conn *c = visible_conn(r, &ci);

    if (c)
        reply_channels(r, c, NULL);
}

void
mgmt_h_channels(struct mgmt_req *r)
{
    reply_channels(r, NULL, NULL);
}

void
mgmt_h_vhost_channels(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);

    if (vh && mgmt_check_vhost(r, vh, true))
        reply_channels(r, NULL, vh);
}

void
mgmt_h_channel(struct mgmt_req *r)
{
    const char *name = r->args[0];
    const char *open = strrchr(name, '(');
    char cname[160];
    struct conn_info ci;
    struct conn *c;
    struct channel *ch;
    char *end;
    long v;

    if (!open || open == name || open[-1] != ' ') {
        mgmt_not_found(r);
        return;
    }
    v = strtol(open + 1, &end, 10);
    if (v <= 0 || v > 65535 || strcmp(end, ")") != 0) {
        mgmt_not_found(r);
        return;
    }
    snprintf(cname, sizeof(cname), "%.*s", (int)(open - 1 - name), name);
    c = find_conn(cname, &ci);
    ch = c ? chan_find(c, (uint16_t)v) : NULL;
    if (!ch) {
        mgmt_not_found(r);
        return;
    }
    if (!conn_visible(r, &ci)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return;
    }
    mgmt_reply_item(r, channel_json(ch));
}
