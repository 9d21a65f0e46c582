/*
 * etcd_http.c: one HTTP/1.1 client connection to an etcd endpoint, on
 * the loop, parsing responses with Debian's http-parser.
 *
 * Life of a connection:
 *
 *   open ──connect (wio)──> connected ──send──> busy ──response──> idle
 *                                          ^                        │
 *                                          └────────── send ────────┘
 *
 * The socket is non-blocking from socket(2) on; connect completes on the
 * write watcher, bounded by ctimer (the client's connect timeout). A
 * request is formatted into `out` and written at once, the rest from the
 * write watcher. The read watcher runs from connect to close: while idle
 * it only notices the peer closing (or sending junk), which fails the
 * connection so that a pool never hands out a dead one.
 *
 * One read per callback, fed to the parser, which appends the body to
 * `body`. A response completes at on_message_complete, which pauses the
 * parser: bytes after it make the connection not reusable. Streaming
 * responses (a watch) report each read's body bytes with EH_DATA; the
 * owner consumes them from `body`.
 *
 * Bounds, so that a hostile or broken server costs an error, never
 * memory or a hang: a Content-Length above the client's max_response is
 * refused at the headers; a body (streaming: its unconsumed part) growing
 * past it fails the connection; headers are capped by http-parser
 * (HTTP_MAX_HEADER_SIZE, 80 KiB); time is bounded by the owner's timers.
 *
 * Every notification to the owner is the last thing a callback here
 * does (the owner may close h inside it), and a failure stops every
 * watcher first, so a failed connection stays quiet until closed.
 */
#include "cluster/etcd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define RX_CHUNK       (16u << 10)
#define TCP_KA_IDLE_S  5
#define TCP_KA_INTVL_S 2
#define TCP_KA_CNT     3
#define TCP_USER_TO_MS 10000

static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static const char *
ep_name(const struct etcd_http *h)
{
    return h->e->eps[h->ep].name;
}

static void
stop_watchers(struct etcd_http *h)
{
    ev_io_stop(h->e->loop, &h->rio);
    ev_io_stop(h->e->loop, &h->wio);
    ev_timer_stop(h->e->loop, &h->ctimer);
}

/* Records why h failed, silences it and tells the owner (last action). */
static void WR_PRINTF(3, 4)
    fail(struct etcd_http *h, bool proto, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(h->err, sizeof(h->err), fmt, ap);
    va_end(ap);
    h->proto_err = proto;
    stop_watchers(h);
    h->fn(h, EH_FAIL);
}

/* ---- parser callbacks: they only record; nothing calls out from here */

static int
on_headers_complete(http_parser *p)
{
    struct etcd_http *h = p->data;

    h->status = p->status_code;
    if (p->content_length != UINT64_MAX &&
        p->content_length > h->e->max_response) {
        snprintf(h->err, sizeof(h->err),
                 "response of %" PRIu64 " bytes is over the %zu-byte limit",
                 (uint64_t)p->content_length, h->e->max_response);
        return -1;
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct etcd_http *h = p->data;

    if (len > h->e->max_response - h->body.len) {
        snprintf(h->err, sizeof(h->err),
                 "response body over the %zu-byte limit", h->e->max_response);
        return -1;
    }
    buf_append(&h->body, at, len);
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct etcd_http *h = p->data;

    h->complete = true;
    h->reusable = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

/* ---- reading */

/* Feeds n bytes (0: end of stream) to the parser. Returns WR_OK, or
 * WR_ERR with h->err set. */
static int
parse(struct etcd_http *h, const uint8_t *p, size_t n)
{
    size_t used;
    enum http_errno he;

    h->err[0] = '\0';
    used =
        http_parser_execute(&h->parser, &parser_settings, (const char *)p, n);
    he = HTTP_PARSER_ERRNO(&h->parser);
    if (he != HPE_OK && he != HPE_PAUSED) {
        if (h->err[0] == '\0')
            snprintf(h->err, sizeof(h->err), "bad HTTP response: %s",
                     http_errno_description(he));
        return WR_ERR;
    }
    if (h->complete && used < n)
        h->reusable = false; /* bytes after the response */
    return WR_OK;
}

static void
fail_parse(struct etcd_http *h)
{
    char why[ETCD_ERR_MAX];

    memcpy(why, h->err, sizeof(why));
    fail(h, true, "%s: %s", ep_name(h), why);
}

static void
done(struct etcd_http *h)
{
    if (!h->sent) /* answered before it read all: our bytes are pending */
        h->reusable = false;
    h->busy = false;
    h->fn(h, EH_DONE);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct etcd_http *h = container_of(w, struct etcd_http, rio);
    uint8_t in[RX_CHUNK];
    size_t before = h->body.len;
    ssize_t n;

    n = recv(h->fd, in, sizeof(in), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        fail(h, false, "read from %s: %s", ep_name(h), strerror(errno));
    } else if (!h->busy) {
        fail(h, n > 0, "%s %s while idle", ep_name(h),
             n > 0 ? "sent bytes" : "closed the connection");
    } else if (n == 0) {
        /* the end of a response that runs to EOF, else a cut one */
        if (parse(h, NULL, 0) == WR_OK && h->complete)
            done(h);
        else
            fail(h, false, "%s closed the connection mid-response", ep_name(h));
    } else if (parse(h, in, (size_t)n) != WR_OK) {
        fail_parse(h);
    } else if (h->complete) {
        done(h);
    } else if (h->streaming && h->body.len > before) {
        h->fn(h, EH_DATA);
    }
}

/* ---- connecting and writing */

/* Writes out. Returns WR_OK when all is written, WR_AGAIN, or WR_ERR
 * with errno set. */
static int
flush(struct etcd_http *h)
{
    while (h->out_off < h->out.len) {
        ssize_t n = send(h->fd, h->out.data + h->out_off,
                         h->out.len - h->out_off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return WR_AGAIN;
        if (n < 0)
            return WR_ERR;
        h->out_off += (size_t)n;
    }
    buf_reset(&h->out);
    h->out_off = 0;
    return WR_OK;
}

/* Returns WR_OK once the connect finished well; else fails h. */
static int
finish_connect(struct etcd_http *h)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return WR_AGAIN;
    if (soerr != 0) {
        fail(h, false, "connect to %s: %s", ep_name(h), strerror(soerr));
        return WR_ERR;
    }
    h->connected = true;
    ev_timer_stop(h->e->loop, &h->ctimer);
    ev_io_start(h->e->loop, &h->rio);
    return WR_OK;
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct etcd_http *h = container_of(w, struct etcd_http, wio);
    int rc;

    if (!h->connected && finish_connect(h) != WR_OK)
        return;
    rc = flush(h);
    if (rc == WR_AGAIN)
        return;
    if (rc == WR_ERR) {
        fail(h, false, "write to %s: %s", ep_name(h), strerror(errno));
        return;
    }
    ev_io_stop(loop, &h->wio);
    if (h->busy && !h->sent) {
        h->sent = true;
        h->fn(h, EH_SENT);
    }
}

static void
ctimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct etcd_http *h = container_of(w, struct etcd_http, ctimer);

    fail(h, false, "connect to %s: timed out after %u ms", ep_name(h),
         h->e->connect_timeout_ms);
}

/* TCP_NODELAY for small requests; keepalive and a user timeout so that a
 * watch notices a peer that vanished without a reset. Best effort. */
static void
set_sockopts(int fd)
{
    int one = 1, idle = TCP_KA_IDLE_S, intvl = TCP_KA_INTVL_S;
    int cnt = TCP_KA_CNT;
    unsigned user_to = TCP_USER_TO_MS;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_to,
                     sizeof(user_to));
}

struct etcd_http *
etcd__http_open(struct etcd *e, size_t ep, etcd__http_fn *fn, void *owner,
                char *err, size_t errlen)
{
    const struct etcd_ep *p = &e->eps[ep];
    struct etcd_http *h;
    int fd;

    fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    set_sockopts(fd);
    if (connect(fd, (const struct sockaddr *)&p->addr, p->addrlen) < 0 &&
        errno != EINPROGRESS) {
        snprintf(err, errlen, "connect to %s: %s", p->name, strerror(errno));
        close(fd);
        return NULL;
    }
    h = xcalloc(1, sizeof(*h));
    h->magic = ETCD_HTTP_MAGIC;
    h->e = e;
    h->ep = ep;
    h->fd = fd;
    h->fn = fn;
    h->owner = owner;
    ev_io_init(&h->rio, read_cb, fd, EV_READ);
    ev_io_init(&h->wio, write_cb, fd, EV_WRITE);
    ev_timer_init(&h->ctimer, ctimer_cb, e->connect_timeout_ms / 1000.0, 0);
    ev_io_start(e->loop, &h->wio);
    ev_timer_start(e->loop, &h->ctimer);
    return h;
}

/* Prepares the parser and state for the next response. */
static void
reset_response(struct etcd_http *h, bool streaming)
{
    http_parser_init(&h->parser, HTTP_RESPONSE);
    h->parser.data = h;
    buf_reset(&h->body);
    h->status = 0;
    h->complete = false;
    h->reusable = false;
    h->proto_err = false;
    h->streaming = streaming;
    h->busy = true;
    h->sent = false;
    h->err[0] = '\0';
}

int
etcd__http_send(struct etcd_http *h, const char *path, struct bytes body,
                bool streaming)
{
    int rc;

    WR_ASSERT(h->magic == ETCD_HTTP_MAGIC && !h->busy);
    reset_response(h, streaming);
    /* Grpc-Metadata-Hasleader: etcd refuses the call with "no leader"
     * (code 14) instead of hanging when its member lost the leader, and
     * ends a watch stream when that happens later (clientv3's
     * WithRequireLeader). */
    buf_printf(&h->out,
               "POST %s HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: application/json\r\n"
               "Grpc-Metadata-Hasleader: true\r\n"
               "Content-Length: %zu\r\n\r\n",
               path, ep_name(h), body.len);
    buf_append(&h->out, body.ptr, body.len);
    if (!h->connected)
        return WR_AGAIN;
    rc = flush(h);
    if (rc == WR_OK)
        h->sent = true;
    else if (rc == WR_AGAIN)
        ev_io_start(h->e->loop, &h->wio);
    else {
        snprintf(h->err, sizeof(h->err), "write to %s: %s", ep_name(h),
                 strerror(errno));
        stop_watchers(h);
    }
    return rc;
}

bool
etcd__http_is_alive(const struct etcd_http *h)
{
    uint8_t c;
    ssize_t n = recv(h->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void
etcd__http_set_owner(struct etcd_http *h, etcd__http_fn *fn, void *owner)
{
    WR_ASSERT(h->magic == ETCD_HTTP_MAGIC);
    h->fn = fn;
    h->owner = owner;
}

void
etcd__http_close(struct etcd_http *h)
{
    if (!h)
        return;
    WR_ASSERT(h->magic == ETCD_HTTP_MAGIC);
    stop_watchers(h);
    close(h->fd);
    buf_fini(&h->out);
    buf_fini(&h->body);
    h->magic = 0;
    free(h);
}
