/*
 * peer_link.c: the node-to-node listener (cluster.listen) and the
 * accepting side of the handshake of cluster/peer.h.
 *
 * A connection gets HELLO at once, must send a valid AUTH within
 * PEER_HANDSHAKE_S and at most PEER_MAX_PAYLOAD of payload, and is
 * dropped, with a log line naming its address and what was wrong, for
 * garbage, a wrong secret or silence. The purposes:
 *
 *   PEER_RELAY  a client of another node for a vhost this node leads
 *               (relay.c is the other side): the hand-over payload is
 *               checked (the vhost is led here, the user exists and may
 *               use it, the vhost's connection limit), OK is sent, and
 *               the socket becomes an open AMQP connection (conn_adopt)
 *               showing the client's own address and user.
 *   PEER_REPL   a vhost's leader streaming its log to this node, a
 *               mirror (replication.c takes the socket).
 */
#include "server/conn.h"

#include "cluster/cluster.h"
#include "cluster/peer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <utlist.h>

#define PEER_HANDSHAKE_S 5.0
#define PEER_MAX_PENDING 256 /* handshakes in progress */

struct peer_in {
    int fd;
    ev_io rio, wio;
    ev_timer timer;
    char addr[64];
    uint8_t nonce[PEER_NONCE];
    struct buf in, out;
    size_t head;
    bool adopting; /* OK sent: the socket becomes a connection */
    struct peer_in *next, *prev;
};

static struct peer_in *pending;
static unsigned npending;

static void peer_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void peer_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
peer_free(struct peer_in *p, bool close_fd)
{
    ev_io_stop(srv->loop, &p->rio);
    ev_io_stop(srv->loop, &p->wio);
    ev_timer_stop(srv->loop, &p->timer);
    if (close_fd)
        close(p->fd);
    buf_fini(&p->in);
    buf_fini(&p->out);
    DL_DELETE(pending, p);
    npending--;
    free(p);
}

static void
drop(struct peer_in *p, const char *why)
{
    log_warn("node-to-node connection from %s dropped: %s", p->addr, why);
    peer_free(p, true);
}

/* Writes p->out; WR_OK when all went, WR_AGAIN, WR_ERR. */
static int
flush(struct peer_in *p)
{
    while (p->head < p->out.len) {
        ssize_t n = write(p->fd, p->out.data + p->head, p->out.len - p->head);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            ev_io_start(srv->loop, &p->wio);
            return WR_AGAIN;
        }
        if (n <= 0)
            return WR_ERR;
        p->head += (size_t)n;
    }
    ev_io_stop(srv->loop, &p->wio);
    return WR_OK;
}

/* ---- PEER_RELAY */

static const char *
jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static bool
jtrue(json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

/* The hand-over in AUTH's payload; NULL (why set) when it does not
 * parse. */
static json_t *
handover_parse(struct bytes payload, struct relayed *out, const char **why)
{
    json_t *doc = json_loadb((const char *)payload.ptr, payload.len, 0, NULL);
    json_int_t fm, cm, hb;

    if (!json_is_object(doc) ||
        json_unpack(doc, "{s:I, s:I, s:I}", "frame_max", &fm, "channel_max",
                    &cm, "heartbeat", &hb) != 0 ||
        fm < FRAME_MIN_SIZE || fm > UINT32_MAX || cm < 0 || cm > 65535 ||
        hb < 0 || hb > 65535 || !jstr(doc, "vhost")[0] ||
        !jstr(doc, "user")[0]) {
        *why = "garbage: a relay hand-over that does not parse";
        json_decref(doc);
        return NULL;
    }
    out->vhost = jstr(doc, "vhost");
    out->user = jstr(doc, "user");
    out->peer = jstr(doc, "peer");
    out->local = jstr(doc, "local");
    out->frame_max = (uint32_t)fm;
    out->channel_max = (uint16_t)cm;
    out->heartbeat = (uint16_t)hb;
    out->loopback = jtrue(doc, "loopback");
    out->cap_blocked = jtrue(doc, "cap_blocked");
    out->cap_cancel_notify = jtrue(doc, "cap_cancel_notify");
    out->cap_auth_failure_close = jtrue(doc, "cap_auth_failure_close");
    return doc;
}

/* Whether this node takes the relayed client: NULL (then it counts in
 * the vhost, as connection.open's admission), or why not (the text the
 * client will read in its connection.close). */
static const char *
relay_refusal(const struct relayed *h, struct vhost **vh, char *why, size_t n)
{
    struct vherr err;

    *vh = node_vhost_find(srv->node, h->vhost);
    if (!*vh || !vhost_is_serving(*vh) ||
        !cluster_leads(srv->cluster, h->vhost)) {
        snprintf(why, n, "node '%s' does not lead it (any more)",
                 cluster_node_name(srv->cluster));
        return why;
    }
    if (!node_user_find(srv->node, h->user)) {
        snprintf(why, n, "no user '%s' on node '%s'", h->user,
                 cluster_node_name(srv->cluster));
        return why;
    }
    if (vhost_connection_admit(*vh, h->user, &err) != WR_OK) {
        snprintf(why, n, "%s", err.text);
        return why;
    }
    return NULL;
}

/* AUTH checked, purpose PEER_RELAY: answer, and adopt the socket. */
static void
take_relay(struct peer_in *p, const struct peer_auth *a, size_t used)
{
    struct relayed h = {0};
    struct vhost *vh = NULL;
    const char *why = NULL;
    char text[600], node[256];
    json_t *doc = handover_parse(a->payload, &h, &why);
    const char *refused =
        doc ? relay_refusal(&h, &vh, text, sizeof(text)) : why;

    snprintf(node, sizeof(node), "%.*s", BYTES_FMT(a->node));
    peer_ok_encode(cluster_secret(srv->cluster), a->client_nonce,
                   refused ? PEER_REFUSED : PEER_OK, refused ? refused : "",
                   &p->out);
    buf_consume(&p->in, used);
    if (refused) {
        /* written best-effort; the relay turns it into the client's
         * connection.close */
        log_info("relay from node '%s' for %s refused: %s", node,
                 doc ? h.peer : p->addr, refused);
        flush(p);
        peer_free(p, true);
        json_decref(doc);
        return;
    }
    h.via = node;
    h.client_props_b64 = jstr(doc, "client_properties");
    /* OK goes first on the connection, whatever of it is not written */
    conn_adopt(srv, p->fd, vh, &h, buf_bytes(&p->in),
               bytes_of(p->out.data + p->head, p->out.len - p->head));
    peer_free(p, false);
    json_decref(doc);
}

/* ---- PEER_REPL: a vhost's leader streams its log here (replication.c) */

static void
take_repl(struct peer_in *p, const struct peer_auth *a, size_t used)
{
    struct bytes early = bytes_of(p->in.data + used, p->in.len - used);

    repl_take(p->fd, p->addr, a, early, &p->out, p->head);
    peer_free(p, false);
}

/* ---- the handshake */

static void
read_auth(struct peer_in *p)
{
    struct peer_auth a;
    size_t used = 0;
    const char *why = NULL;
    int rc = peer_auth_parse(cluster_secret(srv->cluster), p->nonce,
                             buf_bytes(&p->in), &a, &used, &why);

    if (rc == WR_AGAIN) {
        if (p->in.len > PEER_MAX_PAYLOAD + 1024)
            drop(p, "garbage: an AUTH over the size limit");
        return;
    }
    if (rc == WR_ERR) {
        drop(p, why);
        return;
    }
    if (a.purpose == PEER_REPL) {
        take_repl(p, &a, used);
        return;
    }
    if (a.purpose != PEER_RELAY) {
        drop(p, "garbage: an unknown purpose");
        return;
    }
    take_relay(p, &a, used);
}

static void
peer_readable(struct peer_in *p)
{
    uint8_t *dst = buf_reserve(&p->in, 4096);
    ssize_t n = read(p->fd, dst, 4096);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(p, n == 0 ? "closed during the handshake" : strerror(errno));
        return;
    }
    p->in.len += (size_t)n;
    read_auth(p);
}

static void
peer_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct peer_in *p = w->data;

    (void)loop;
    (void)revents;
    if (w == &p->wio) {
        if (flush(p) == WR_ERR)
            drop(p, strerror(errno));
    } else {
        peer_readable(p);
    }
    loop_pump(srv);
}

static void
peer_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    drop(w->data, "no handshake within 5 s");
}

static void
peer_accept(struct listener *l, int fd, const struct sockaddr_storage *sa)
{
    struct peer_in *p;

    if (srv->stopping || npending >= PEER_MAX_PENDING) {
        if (wr_now_ms() - l->last_warn_ms > 1000) {
            l->last_warn_ms = wr_now_ms();
            log_warn("node-to-node listener: %u handshakes in progress, "
                     "refusing more",
                     npending);
        }
        close(fd);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->fd = fd;
    listener_addr_text(sa, p->addr, sizeof(p->addr), NULL);
    buf_init(&p->in);
    buf_init(&p->out);
    ev_io_init(&p->rio, peer_io_cb, fd, EV_READ);
    ev_io_init(&p->wio, peer_io_cb, fd, EV_WRITE);
    ev_timer_init(&p->timer, peer_timer_cb, PEER_HANDSHAKE_S, 0.);
    p->rio.data = p->wio.data = p->timer.data = p;
    DL_APPEND(pending, p);
    npending++;
    peer_hello_encode(p->nonce, &p->out);
    ev_io_start(srv->loop, &p->rio);
    ev_timer_start(srv->loop, &p->timer);
    if (flush(p) == WR_ERR)
        drop(p, strerror(errno));
}

int
peer_link_open(struct server *s, const char *addr)
{
    struct wr_listener l;
    const char *why;
    char err[256];

    if (conf_parse_listener(addr, &l, err, sizeof(err)) != WR_OK) {
        log_err("cluster.listen = %s: %s", addr, err);
        return WR_ERR;
    }
    if (listener_open(&s->peer_listener, s->loop,
                      l.host[0] ? l.host : "0.0.0.0", l.port, 128, "cluster",
                      peer_accept, &why) != WR_OK) {
        log_err("cannot listen on %s for other nodes: %s (change "
                "cluster.listen)",
                addr, why);
        return WR_ERR;
    }
    return WR_OK;
}

void
peer_link_close(struct server *s)
{
    listener_close(&s->peer_listener);
    while (pending)
        peer_free(pending, true);
}
