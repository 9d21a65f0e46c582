/*
 * httpc.c: a one-shot HTTP/1.1 client for node-to-node management
 * requests (see httpc.h).
 *
 *   connect ──(wio)──> write the request ──> read until the response is
 *   complete (http-parser) or the server closes ──> callback, close
 *
 * Bounded: the whole exchange by timeout_s (ev_timer), the body by
 * max_response, the headers by http-parser's own limit. The callback is
 * the last thing a watcher callback does, after which the request is
 * freed; a request started from inside a callback is independent.
 */
#include "cluster/httpc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

struct httpc {
    struct ev_loop *loop;
    int fd;
    ev_io rio, wio;
    ev_timer timer;
    struct buf out;
    size_t head;
    http_parser parser;
    struct buf body, hname, ctype;
    bool in_ctype, complete, too_large;
    size_t max;
    char err[256]; /* a failure found before the loop ran */
    httpc_fn *cb;
    void *arg;
};

static void
finish(struct httpc *h, int status, const char *why)
{
    httpc_fn *cb = h->cb;
    void *arg = h->arg;

    h->cb = NULL;
    if (cb)
        cb(arg, status, why, buf_bytes(&h->ctype), buf_bytes(&h->body));
    httpc_cancel(h);
}

/* ---- the response */

static struct httpc *
of(http_parser *p)
{
    return p->data;
}

static int
on_field(http_parser *p, const char *at, size_t n)
{
    struct httpc *h = of(p);

    if (h->in_ctype || h->hname.len > 64)
        buf_reset(&h->hname), h->in_ctype = false;
    buf_append(&h->hname, at, n);
    return 0;
}

static int
on_value(http_parser *p, const char *at, size_t n)
{
    struct httpc *h = of(p);

    if (!h->in_ctype && h->hname.len == 12 &&
        strncasecmp((const char *)h->hname.data, "content-type", 12) == 0) {
        h->in_ctype = true;
        buf_reset(&h->ctype);
    }
    if (h->in_ctype && h->ctype.len + n < 256)
        buf_append(&h->ctype, at, n);
    else if (!h->in_ctype)
        buf_reset(&h->hname);
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    struct httpc *h = of(p);

    if (h->body.len + n > h->max) {
        h->too_large = true;
        return -1;
    }
    buf_append(&h->body, at, n);
    return 0;
}

static int
on_complete(http_parser *p)
{
    of(p)->complete = true;
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static void
readable(struct httpc *h)
{
    char chunk[16384];
    ssize_t n = read(h->fd, chunk, sizeof(chunk));
    size_t used;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        finish(h, 0, strerror(errno));
        return;
    }
    used = http_parser_execute(&h->parser, &settings, chunk, (size_t)n);
    if (h->complete) {
        finish(h, (int)h->parser.status_code, NULL);
        return;
    }
    if (h->parser.http_errno != HPE_OK || used != (size_t)n) {
        finish(h, 0,
               h->too_large ? "response too large" : "not an HTTP response");
        return;
    }
    if (n == 0)
        finish(h, 0, "connection closed before the response ended");
}

/* ---- the request */

static void
writable(struct httpc *h)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (h->head == 0 &&
        (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)) {
        finish(h, 0, strerror(err ? err : errno));
        return;
    }
    while (h->head < h->out.len) {
        ssize_t n = write(h->fd, h->out.data + h->head, h->out.len - h->head);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            finish(h, 0, strerror(errno));
            return;
        }
        h->head += (size_t)n;
    }
    ev_io_stop(h->loop, &h->wio);
    ev_io_start(h->loop, &h->rio);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpc *h = w->data;

    (void)loop;
    (void)revents;
    if (w == &h->wio)
        writable(h);
    else
        readable(h);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    finish(w->data, 0, "no answer in time");
}

static int
open_socket(const char *addr, char *why, size_t n)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_storage sa = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    int fd, one = 1, port;

    if (!colon || (size_t)(colon - addr) >= sizeof(host) ||
        (port = atoi(colon + 1)) <= 0 || port > 65535) {
        snprintf(why, n, "bad address '%s'", addr);
        return -1;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr),
             addr[0] == '[' ? addr + 1 : addr);
    if (host[0] && host[strlen(host) - 1] == ']')
        host[strlen(host) - 1] = '\0';
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    } else {
        snprintf(why, n, "bad address '%s'", addr);
        return -1;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        (connect(fd, (struct sockaddr *)&sa,
                 sa.ss_family == AF_INET ? sizeof(*s4) : sizeof(*s6)) != 0 &&
         errno != EINPROGRESS)) {
        snprintf(why, n, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void
format_request(struct httpc *h, const struct httpc_request *q)
{
    buf_printf(&h->out, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n",
               q->method, q->target, q->addr);
    for (size_t i = 0; i < q->nheaders; i++)
        buf_printf(&h->out, "%s\r\n", q->headers[i]);
    if (q->body.len || strcmp(q->method, "GET") != 0)
        buf_printf(&h->out, "Content-Length: %zu\r\n", q->body.len);
    buf_printf(&h->out, "\r\n");
    buf_append(&h->out, q->body.ptr, q->body.len);
}

static void
failed_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpc *h = w->data;

    (void)loop;
    (void)revents;
    finish(h, 0, h->err);
}

struct httpc *
httpc_request(struct ev_loop *loop, const struct httpc_request *q, httpc_fn *cb,
              void *arg)
{
    struct httpc *h = xcalloc(1, sizeof(*h));

    h->loop = loop;
    h->cb = cb;
    h->arg = arg;
    h->max = q->max_response;
    buf_init(&h->out);
    buf_init(&h->body);
    buf_init(&h->hname);
    buf_init(&h->ctype);
    http_parser_init(&h->parser, HTTP_RESPONSE);
    h->parser.data = h;
    format_request(h, q);
    h->fd = open_socket(q->addr, h->err, sizeof(h->err));
    if (h->fd < 0) {
        /* report it from the loop, never from inside this call */
        ev_timer_init(&h->timer, failed_cb, 0., 0.);
        h->timer.data = h;
        ev_timer_start(loop, &h->timer);
        return h;
    }
    ev_io_init(&h->rio, io_cb, h->fd, EV_READ);
    ev_io_init(&h->wio, io_cb, h->fd, EV_WRITE);
    h->rio.data = h->wio.data = h;
    ev_timer_init(&h->timer, timer_cb, q->timeout_s, 0.);
    h->timer.data = h;
    ev_io_start(loop, &h->wio);
    ev_timer_start(loop, &h->timer);
    return h;
}

void
httpc_cancel(struct httpc *h)
{
    if (!h)
        return;
    ev_io_stop(h->loop, &h->rio);
    ev_io_stop(h->loop, &h->wio);
    ev_timer_stop(h->loop, &h->timer);
    if (h->fd >= 0)
        close(h->fd);
    buf_fini(&h->out);
    buf_fini(&h->body);
    buf_fini(&h->hname);
    buf_fini(&h->ctype);
    free(h);
}
