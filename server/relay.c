/*
 * relay.c: a client's connection to a vhost that another node leads.
 *
 * AMQP names the vhost only in connection.open, after the handshake, so
 * no TCP proxy in front of the cluster could pick the leader. This node
 * completes the handshake itself (the users are the same on every node),
 * and when connection.open names a vhost led by another node it opens a
 * node-to-node connection to that leader, proves the cluster's secret and
 * hands over the client (cluster/peer.h: purpose PEER_RELAY, a JSON
 * payload with the vhost, the user, the client's address, its properties
 * and the tuned limits). Once the leader accepts, this node sends
 * connection.open-ok and from then on only moves bytes: the client's to
 * the leader, the leader's to the client. The leader runs the connection
 * (heartbeats, channels, permissions, user_id checks) as if the client
 * were its own; management there shows the client's address and user.
 *
 *   client ── AMQP ──> this node ──(HELLO/AUTH/OK)── leader
 *          <── bytes ──          <────── bytes ──────
 *
 * States: CONNECTING (non-blocking connect) -> HELLO (wait for the
 * leader's nonce) -> AUTH (sent, wait for OK) -> RELAYING. A refusal,
 * garbage, a wrong secret or RELAY_HANDSHAKE_S without progress ends the
 * client's connection with a connection.close saying why. The client's
 * input is held (c->input_held) until RELAYING; bytes it pipelined after
 * connection.open go to the leader first.
 *
 * Once relaying, the bytes move from socket to socket through a pipe
 * in the kernel (splice(2)), never copied into this process: one pipe
 * each way, read from a socket only while its pipe is empty. Bytes that
 * were already in user space when relaying began (what the leader sent
 * after OK, what the client pipelined after connection.open) go first
 * through the copying path, which is also the fallback when no pipe can
 * be made.
 *
 * Flow control is TCP's, both ways: a leader that stops reading (its
 * alarms block the publisher) leaves bytes in the up pipe (or `out`),
 * and this node stops reading the client; a client that stops reading
 * leaves bytes in the down pipe (or its outq above CONN_OUT_HIGH), and
 * this node stops reading the leader. Either side closing closes the
 * other once what it sent is written.
 */
#include "server/conn.h"

#include "cluster/cluster.h"
#include "cluster/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#define RELAY_HANDSHAKE_S 5.0
#define RELAY_HIGH        (1u << 20)  /* bytes for the leader: stop reading */
#define RELAY_CHUNK       (64u << 10) /* one read */
#define RELAY_SPLICES     16          /* pipe loads per wake-up, at most */
#define RELAY_PIPE        (1u << 20)  /* each pipe's size, if allowed */

enum relay_state {
    R_CONNECTING,
    R_HELLO,
    R_AUTH,
    R_RELAYING,
};

struct relay {
    struct conn *c;
    enum relay_state state;
    int fd;
    ev_io rio, wio;
    ev_timer timer;
    struct buf in;  /* handshake bytes from the leader */
    struct buf out; /* bytes for the leader, unsent from `head` */
    size_t head;
    bool up_eof;         /* the leader closed: drop the client once flushed */
    bool spliced;        /* the pipes exist */
    int up[2], down[2];  /* client -> leader, leader -> client */
    size_t up_n, down_n; /* bytes each pipe holds */
    ev_io cwio;          /* the client writable, for the down pipe */
    uint8_t client_nonce[PEER_NONCE];
    char leader[256];
};

static void relay_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void relay_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* ---- setup */

int
relay_connect(const char *addr, char *why, size_t n)
{
    struct wr_listener l;
    struct sockaddr_storage sa = {0};
    socklen_t len;
    int fd, one = 1;

    if (conf_parse_listener(addr, &l, why, n) != WR_OK)
        return -1;
    if (inet_pton(AF_INET6, l.host, &((struct sockaddr_in6 *)&sa)->sin6_addr)) {
        sa.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(l.port);
        len = sizeof(struct sockaddr_in6);
    } else if (inet_pton(AF_INET, l.host[0] ? l.host : "127.0.0.1",
                         &((struct sockaddr_in *)&sa)->sin_addr)) {
        sa.ss_family = AF_INET;
        ((struct sockaddr_in *)&sa)->sin_port = htons(l.port);
        len = sizeof(struct sockaddr_in);
    } else {
        snprintf(why, n, "bad address %s", addr);
        return -1;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, len) != 0 &&
                   errno != EINPROGRESS)) {
        snprintf(why, n, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* The hand-over the leader gets in AUTH. */
static char *
handover(const struct conn *c)
{
    struct buf props;
    json_t *doc;
    char *s;

    buf_init(&props);
    b64_encode(c->client_props.ptr, c->client_props.len, &props);
    buf_put_u8(&props, 0);
    doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:b, s:b,"
                    " s:b}",
                    "vhost", c->relay_vhost, "user", c->user, "peer", c->peer,
                    "local", c->local, "frame_max", (json_int_t)c->frame_max,
                    "channel_max", (json_int_t)c->channel_max, "heartbeat",
                    (json_int_t)c->heartbeat, "client_properties",
                    (const char *)props.data, "loopback", c->loopback,
                    "cap_blocked", c->cap_blocked, "cap_cancel_notify",
                    c->cap_cancel_notify, "cap_auth_failure_close",
                    c->cap_auth_failure_close);
    s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    buf_fini(&props);
    return s;
}

/* Ends the relay and the client's connection with code and text. */
static void
relay_fail(struct relay *r, uint16_t code, const char *why)
{
    struct conn *c = r->c;

    log_warn("connection %s -> %s: relay to vhost '%s' on node '%s' "
             "failed: %s",
             c->peer, c->local, c->relay_vhost, r->leader, why);
    relay_free(c);
    c->input_held = false;
    conn_fail(c, code, AMQP_CONNECTION_OPEN, "vhost '%s': %s", c->relay_vhost,
              why);
}

int
relay_start(struct conn *c, const char *vhost, const char *leader,
            const char *addr)
{
    struct relay *r = xcalloc(1, sizeof(*r));
    char why[300];

    r->c = c;
    snprintf(r->leader, sizeof(r->leader), "%s", leader);
    c->relay = r;
    c->relay_vhost = xstrdup(vhost);
    buf_init(&r->in);
    buf_init(&r->out);
    c->input_held = true; /* frames after open wait for the leader */
    conn_update_reading(c);
    r->fd = relay_connect(addr, why, sizeof(why));
    if (r->fd < 0) {
        relay_fail(r, AMQP_CONNECTION_FORCED, why);
        return WR_ERR;
    }
    ev_io_init(&r->rio, relay_io_cb, r->fd, EV_READ);
    ev_io_init(&r->wio, relay_io_cb, r->fd, EV_WRITE);
    r->rio.data = r->wio.data = r;
    ev_timer_init(&r->timer, relay_timer_cb, RELAY_HANDSHAKE_S, 0.);
    r->timer.data = r;
    ev_io_start(srv->loop, &r->wio);
    ev_timer_start(srv->loop, &r->timer);
    r->state = R_CONNECTING;
    return WR_OK;
}

void
relay_free(struct conn *c)
{
    struct relay *r = c->relay;

    if (!r)
        return;
    ev_io_stop(srv->loop, &r->rio);
    ev_io_stop(srv->loop, &r->wio);
    ev_timer_stop(srv->loop, &r->timer);
    ev_io_stop(srv->loop, &r->cwio);
    if (r->fd >= 0)
        close(r->fd);
    if (r->spliced) {
        close(r->up[0]);
        close(r->up[1]);
        close(r->down[0]);
        close(r->down[1]);
    }
    buf_fini(&r->in);
    buf_fini(&r->out);
    free(r);
    c->relay = NULL;
}

/* ---- bytes to the leader */

/* Writes what waits for the leader. Returns WR_OK, WR_AGAIN, WR_ERR. */
static int
up_flush(struct relay *r)
{
    while (r->head < r->out.len) {
        ssize_t n = write(r->fd, r->out.data + r->head, r->out.len - r->head);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(srv->loop, &r->wio);
            return WR_AGAIN;
        }
        if (n < 0)
            return WR_ERR;
        r->head += (size_t)n;
    }
    buf_reset(&r->out);
    r->head = 0;
    ev_io_stop(srv->loop, &r->wio);
    return WR_OK;
}

bool
relay_wants_client_input(const struct conn *c)
{
    const struct relay *r = c->relay;

    return r->state == R_RELAYING && r->out.len - r->head < RELAY_HIGH &&
           r->up_n == 0 && !r->up_eof;
}

void
relay_client_input(struct conn *c, const uint8_t *p, size_t n)
{
    struct relay *r = c->relay;

    buf_append(&r->out, p, n);
    if (up_flush(r) == WR_ERR) {
        conn_drop(c, "the vhost's leader closed the relay");
        return;
    }
    if (!relay_wants_client_input(c))
        conn_update_reading(c);
}

/* ---- splicing */

static void
splice_open(struct relay *r)
{
    if (pipe2(r->up, O_NONBLOCK | O_CLOEXEC) != 0)
        return;
    if (pipe2(r->down, O_NONBLOCK | O_CLOEXEC) != 0) {
        close(r->up[0]);
        close(r->up[1]);
        return;
    }
    /* room for what a socket holds, so that a wake-up moves it at once */
    (void)fcntl(r->up[1], F_SETPIPE_SZ, (int)RELAY_PIPE);
    (void)fcntl(r->down[1], F_SETPIPE_SZ, (int)RELAY_PIPE);
    r->spliced = true;
}

/* Moves what a pipe holds on to fd: WR_OK (empty), WR_AGAIN, WR_ERR. */
static int
pipe_drain(int from, size_t *held, int fd)
{
    while (*held > 0) {
        ssize_t n = splice(from, NULL, fd, NULL, *held,
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return WR_AGAIN;
        if (n <= 0)
            return WR_ERR;
        *held -= (size_t)n;
    }
    return WR_OK;
}

/* Socket `from` into the pipe until it has no more (or the pipe is
 * full), then the pipe on to socket `to` in as few sends as that makes,
 * up to RELAY_SPLICES rounds: WR_OK (from has nothing more now, or
 * *eof), WR_AGAIN (to is full: wait until it is writable), WR_ERR. */
static int
splice_through(int from, int pipe[2], size_t *held, int to, uint64_t *count,
               bool *eof)
{
    for (int i = 0; i < RELAY_SPLICES; i++) {
        int rc = pipe_drain(pipe[0], held, to);
        bool more = true;

        if (rc != WR_OK)
            return rc;
        while (more) {
            /* EAGAIN: the socket is empty, or the pipe full */
            ssize_t n = splice(from, NULL, pipe[1], NULL, RELAY_CHUNK,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                more = false;
            else if (n < 0)
                return WR_ERR;
            else if (n == 0)
                *eof = true, more = false;
            else
                *held += (size_t)n, *count += (uint64_t)n;
        }
        if (*held == 0 || *eof)
            return *held ? pipe_drain(pipe[0], held, to) : WR_OK;
    }
    return pipe_drain(pipe[0], held, to);
}

bool
relay_client_splice(struct conn *c)
{
    struct relay *r = c->relay;
    bool eof = false;
    int rc;

    if (!r->spliced || r->state != R_RELAYING || r->head < r->out.len)
        return false;
    rc = splice_through(c->fd, r->up, &r->up_n, r->fd, &c->recv_oct, &eof);
    if (rc == WR_ERR) {
        conn_drop(c, strerror(errno));
    } else if (eof) {
        conn_drop(c, "client closed the connection");
    } else if (rc == WR_AGAIN) {
        ev_io_start(srv->loop, &r->wio); /* the leader is full */
        conn_update_reading(c);
    }
    return true;
}

/* The leader is readable and the client's outq empty. */
static void
splice_down(struct relay *r)
{
    struct conn *c = r->c;
    bool eof = false;
    int rc =
        splice_through(r->fd, r->down, &r->down_n, c->fd, &c->send_oct, &eof);

    if (rc == WR_ERR) {
        conn_drop(c, errno == EPIPE || errno == ECONNRESET
                         ? "client unexpectedly closed TCP connection"
                         : strerror(errno));
        return;
    }
    if (rc == WR_AGAIN) {
        ev_io_stop(srv->loop, &r->rio);
        ev_io_start(srv->loop, &r->cwio);
    }
    if (eof) {
        r->up_eof = true;
        ev_io_stop(srv->loop, &r->rio);
        if (r->down_n == 0)
            conn_drop(c, "the vhost's leader closed the connection");
    }
}

/* The client takes bytes again: the rest of the down pipe. */
static void
client_writable(struct relay *r)
{
    struct conn *c = r->c;
    int rc = pipe_drain(r->down[0], &r->down_n, c->fd);

    if (rc == WR_AGAIN)
        return;
    if (rc == WR_ERR) {
        conn_drop(c, "client unexpectedly closed TCP connection");
        return;
    }
    ev_io_stop(srv->loop, &r->cwio);
    if (r->up_eof)
        conn_drop(c, "the vhost's leader closed the connection");
    else
        ev_io_start(srv->loop, &r->rio);
}

/* The leader takes bytes again: what waits for it, copied then spliced. */
static void
leader_writable(struct relay *r)
{
    int rc = up_flush(r);

    if (rc == WR_OK && r->spliced && r->up_n > 0) {
        rc = pipe_drain(r->up[0], &r->up_n, r->fd);
        if (rc == WR_AGAIN)
            ev_io_start(srv->loop, &r->wio);
    }
    if (rc == WR_ERR)
        conn_drop(r->c, "the vhost's leader closed the relay");
    else if (relay_wants_client_input(r->c))
        conn_update_reading(r->c);
}

/* ---- the handshake */

static void
send_auth(struct relay *r)
{
    struct bytes secret = cluster_secret(srv->cluster);
    uint8_t nonce[PEER_NONCE];
    const char *why = NULL;
    size_t used = 0;
    char *payload;
    int rc = peer_hello_parse(buf_bytes(&r->in), nonce, &used, &why);

    if (rc == WR_AGAIN)
        return;
    if (rc == WR_ERR) {
        relay_fail(r, AMQP_INTERNAL_ERROR, why);
        return;
    }
    buf_consume(&r->in, used);
    payload = handover(r->c);
    peer_auth_encode(secret, nonce, r->client_nonce,
                     cluster_node_name(srv->cluster), PEER_RELAY,
                     bytes_str(payload), &r->out);
    free(payload);
    r->state = R_AUTH;
    if (up_flush(r) == WR_ERR)
        relay_fail(r, AMQP_CONNECTION_FORCED, strerror(errno));
}

/* The leader took the client: open-ok, then everything it pipelined. */
static void
start_relaying(struct relay *r, size_t used)
{
    struct conn *c = r->c;
    struct amqp_method ok = {.id = AMQP_CONNECTION_OPEN_OK};

    ev_timer_stop(srv->loop, &r->timer);
    r->state = R_RELAYING;
    c->state = CONN_RELAYED;
    if (!c->tls) /* TLS bytes are decrypted here: copied, not spliced */
        splice_open(r);
    ev_io_init(&r->cwio, relay_io_cb, c->fd, EV_WRITE);
    r->cwio.data = r;
    conn_send_method(c, 0, &ok);
    log_info("connection %s -> %s: user '%s', vhost '%s' relayed to node "
             "'%s'",
             c->peer, c->local, c->user, c->relay_vhost, r->leader);
    /* what the leader sent after OK goes to the client */
    if (r->in.len > used)
        buf_append(&c->out.b, r->in.data + used, r->in.len - used);
    buf_fini(&r->in);
    buf_append(&r->out, c->in.data, c->in.len);
    buf_fini(&c->in);
    c->input_held = false;
    conn_update_reading(c);
    if (up_flush(r) == WR_ERR)
        conn_drop(c, "the vhost's leader closed the relay");
}

static void
read_ok(struct relay *r)
{
    struct bytes text;
    uint8_t status;
    const char *why = NULL;
    size_t used = 0;
    char msg[PEER_MAX_TEXT + 1];
    int rc = peer_ok_parse(cluster_secret(srv->cluster), r->client_nonce,
                           buf_bytes(&r->in), &status, &text, &used, &why);

    if (rc == WR_AGAIN)
        return;
    if (rc == WR_ERR) {
        relay_fail(r, AMQP_INTERNAL_ERROR, why);
        return;
    }
    if (status != PEER_OK) {
        snprintf(msg, sizeof(msg), "%.*s", BYTES_FMT(text));
        relay_fail(r, AMQP_NOT_ALLOWED, msg);
        return;
    }
    start_relaying(r, used);
}

/* ---- bytes from the leader */

static void
up_readable(struct relay *r)
{
    struct conn *c = r->c;
    uint8_t *dst;
    ssize_t n;

    if (r->state == R_RELAYING && outq_pending(&c->out) >= CONN_OUT_HIGH) {
        ev_io_stop(srv->loop, &r->rio); /* relay_client_drained resumes */
        return;
    }
    if (r->state == R_RELAYING && r->spliced && outq_pending(&c->out) == 0) {
        splice_down(r);
        return;
    }
    dst = r->state == R_RELAYING ? buf_reserve(&c->out.b, RELAY_CHUNK)
                                 : buf_reserve(&r->in, RELAY_CHUNK);
    n = read(r->fd, dst, RELAY_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (r->state != R_RELAYING) {
            relay_fail(r, AMQP_CONNECTION_FORCED,
                       n == 0 ? "the leader closed the connection"
                              : strerror(errno));
            return;
        }
        r->up_eof = true;
        ev_io_stop(srv->loop, &r->rio);
        c->close_after_flush = true;
        conn_pending(c);
        return;
    }
    if (r->state == R_RELAYING) {
        c->out.b.len += (size_t)n;
        conn_pending(c);
        return;
    }
    r->in.len += (size_t)n;
    if (r->state == R_HELLO)
        send_auth(r);
    else if (r->state == R_AUTH)
        read_ok(r);
}

void
relay_client_drained(struct conn *c)
{
    struct relay *r = c->relay;

    if (r && r->state == R_RELAYING && !r->up_eof && !ev_is_active(&r->cwio))
        ev_io_start(srv->loop, &r->rio);
}

static void
connected(struct relay *r)
{
    int err = 0;
    socklen_t len = sizeof(err);

    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        relay_fail(r, AMQP_CONNECTION_FORCED, strerror(err));
        return;
    }
    ev_io_stop(srv->loop, &r->wio);
    ev_io_start(srv->loop, &r->rio);
    r->state = R_HELLO;
}

static void
relay_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct relay *r = w->data;

    (void)loop;
    (void)revents;
    if (w == &r->wio && r->state == R_CONNECTING) {
        connected(r);
    } else if (w == &r->wio) {
        leader_writable(r);
    } else if (w == &r->cwio) {
        client_writable(r);
    } else {
        up_readable(r);
    }
    loop_pump(srv);
}

static void
relay_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct relay *r = w->data;

    (void)loop;
    (void)revents;
    relay_fail(r, AMQP_CONNECTION_FORCED,
               "the leader did not answer within 5 s");
    loop_pump(srv);
}
