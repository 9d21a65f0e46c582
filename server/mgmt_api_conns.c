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
#include "server/mgmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

static void
conn_name(const struct conn *c, char *out, size_t n)
{
    snprintf(out, n, "%s -> %s", c->peer, c->local);
}

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
conn_listed(const struct conn *c)
{
    return c->vh != NULL && (c->state == CONN_OPEN || c->state == CONN_CLOSING);
}

static bool
conn_visible(const struct mgmt_req *r, const struct conn *c)
{
    if (r->tags & (TAG_ADMINISTRATOR | TAG_MONITORING))
        return true;
    return c->user && strcmp(c->user, r->user_name) == 0;
}

static const char *
conn_state(const struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return "closing";
    if (c->blocked)
        return c->blocked_sent ? "blocked" : "blocking";
    return "running";
}

static json_t *
conn_json(const struct conn *c)
{
    char name[160], phost[80], lhost[80];
    int pport, lport;
    json_t *o;

    conn_name(c, name, sizeof(name));
    split_addr(c->peer, phost, sizeof(phost), &pport);
    split_addr(c->local, lhost, sizeof(lhost), &lport);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, "
                  "s:i, s:I}",
                  "name", name, "node", mgmt_node_name(), "type", "network",
                  "state", conn_state(c), "user", c->user ? c->user : "",
                  "vhost", c->vh ? vhost_name(c->vh) : "", "protocol",
                  "AMQP 0-9-1", "auth_mechanism", "PLAIN", "channels",
                  (int)c->nchannels, "channel_max", (int)c->channel_max,
                  "frame_max", (int)c->frame_max, "timeout", (int)c->heartbeat,
                  "connected_at", (json_int_t)c->connected_at_ms);
    json_object_set_new(o, "client_properties",
                        mgmt_table_json(c->client_props));
    json_object_set_new(o, "peer_host", json_string(phost));
    json_object_set_new(o, "peer_port", json_integer(pport));
    json_object_set_new(o, "host", json_string(lhost));
    json_object_set_new(o, "port", json_integer(lport));
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->recv_oct));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)c->send_oct));
    json_object_set_new(o, "recv_oct_details", mgmt_rate(0));
    json_object_set_new(o, "send_oct_details", mgmt_rate(0));
    json_object_set_new(o, "recv_cnt", json_integer(0));
    json_object_set_new(o, "send_cnt", json_integer(0));
    json_object_set_new(o, "send_pend",
                        json_integer((json_int_t)outq_pending(&c->out)));
    json_object_set_new(o, "ssl", json_false());
    json_object_set_new(o, "ssl_protocol", json_null());
    json_object_set_new(o, "ssl_key_exchange", json_null());
    json_object_set_new(o, "ssl_cipher", json_null());
    json_object_set_new(o, "ssl_hash", json_null());
    json_object_set_new(o, "peer_cert_subject", json_null());
    json_object_set_new(o, "peer_cert_issuer", json_null());
    json_object_set_new(o, "peer_cert_validity", json_null());
    json_object_set_new(o, "user_who_performed_action",
                        json_string(c->user ? c->user : ""));
    return o;
}

static json_t *
channel_json(const struct channel *ch)
{
    const struct conn *c = ch->conn;
    char cname[160], name[200], phost[80];
    int pport;
    size_t uncommitted = 0, acks = 0;

    conn_name(c, cname, sizeof(cname));
    snprintf(name, sizeof(name), "%s (%u)", cname, ch->id);
    split_addr(c->peer, phost, sizeof(phost), &pport);
    for (size_t i = 0; i < ch->ntx; i++) {
        if (ch->txops[i].kind == TX_PUBLISH)
            uncommitted++;
        else
            acks++;
    }
    return json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:i}, s:i, s:i, s:i, "
        "s:i, s:i, s:i, s:i, s:b, s:b, s:i, s:s}",
        "name", name, "number", (int)ch->id, "node", mgmt_node_name(), "user",
        c->user ? c->user : "", "vhost", c->vh ? vhost_name(c->vh) : "",
        "state", ch->state == CH_OPEN ? "running" : "closing",
        "connection_details", "name", cname, "peer_host", phost, "peer_port",
        pport, "consumer_count", (int)HASH_COUNT(ch->consumers),
        "messages_unacknowledged", (int)ch->unacked.live,
        "messages_unconfirmed", (int)confirm_waiting(&ch->confirms),
        "messages_uncommitted", (int)uncommitted, "acks_uncommitted", (int)acks,
        "prefetch_count", (int)ch->prefetch_consumer, "global_prefetch_count",
        (int)ch->prefetch_global, "confirm", ch->confirm, "transactional",
        ch->tx, "pending_raft_commands", 0, "user_who_performed_action",
        c->user ? c->user : "");
}

static struct conn *
find_conn(const char *name)
{
    struct conn *c;
    char n[160];

    DL_FOREACH(srv->conns, c)
    {
        if (!conn_listed(c))
            continue;
        conn_name(c, n, sizeof(n));
        if (strcmp(n, name) == 0)
            return c;
    }
    return NULL;
}

/* Lists connections: all, of one vhost (vh), visible to the user. */
static void
reply_conns(struct mgmt_req *r, struct vhost *vh)
{
    json_t *items = json_array();
    struct conn *c;

    DL_FOREACH(srv->conns, c)
    {
        if (conn_listed(c) && (!vh || c->vh == vh) && conn_visible(r, c))
            json_array_append_new(items, conn_json(c));
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
visible_conn(struct mgmt_req *r)
{
    struct conn *c = find_conn(r->args[0]);

    if (!c) {
        mgmt_not_found(r);
        return NULL;
    }
    if (!conn_visible(r, c)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return NULL;
    }
    return c;
}

void
mgmt_h_connection(struct mgmt_req *r)
{
    struct conn *c = visible_conn(r);
    const char *why;

    if (!c)
        return;
    if (r->method != HTTP_DELETE) {
        mgmt_reply_item(r, conn_json(c));
        return;
    }
    if (!(r->tags & TAG_ADMINISTRATOR) &&
        !(c->user && strcmp(c->user, r->user_name) == 0)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return;
    }
    why = r->x_reason && *r->x_reason && bytes_is_utf8(bytes_str(r->x_reason))
              ? r->x_reason
              : "Closed via management plugin";
    if (c->state == CONN_OPEN) {
        log_info("closing AMQP connection %s -> %s: requested by user '%s' "
                 "over the management API",
                 c->peer, c->local, r->user_name);
        conn_fail(c, AMQP_CONNECTION_FORCED, 0, "%s", why);
    }
    mgmt_reply_empty(r, 204);
}

static void
reply_channels(struct mgmt_req *r, struct conn *only, struct vhost *vh)
{
    json_t *items = json_array();
    struct conn *c;
    struct channel *ch, *tmp;

    DL_FOREACH(srv->conns, c)
    {
        if (!conn_listed(c) || (only && c != only) || (vh && c->vh != vh) ||
            !conn_visible(r, c))
            continue;
        HASH_ITER(hh, c->channels, ch, tmp)
        {
            json_array_append_new(items, channel_json(ch));
        }
    }
    mgmt_reply_list(r, items, (const char *const[]){"vhost", "name", NULL});
}

void
mgmt_h_connection_channels(struct mgmt_req *r)
{
    struct conn *c = visible_conn(r);

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
    struct conn *c;
    struct channel *ch;
    uint16_t id;
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
    c = find_conn(cname);
    id = (uint16_t)v;
    ch = NULL;
    if (c)
        HASH_FIND(hh, c->channels, &id, sizeof(id), ch);
    if (!ch) {
        mgmt_not_found(r);
        return;
    }
    if (!conn_visible(r, c)) {
        mgmt_not_authorised(r, "User not authorised to access object");
        return;
    }
    mgmt_reply_item(r, channel_json(ch));
}

void
mgmt_close_vhost_conns(struct vhost *vh, const char *why)
{
    struct conn *c, *tmp;

    DL_FOREACH_SAFE(srv->conns, c, tmp)
    {
        if (c->vh != vh)
            continue;
        if (c->state == CONN_OPEN)
            conn_fail(c, AMQP_CONNECTION_FORCED, 0, "%s", why);
        /* The connection outlives the vhost while it waits for
         * close-ok: detach it (conn_fail released its channels and
         * exclusive queues). */
        if (c->vh) {
            vhost_connection_leave(c->vh);
            c->vh = NULL;
        }
    }
}
