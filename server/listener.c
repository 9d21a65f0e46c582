/*
 * listener.c: listening sockets and the accept loop, shared by the AMQP
 * listeners and the management HTTP server.
 *
 * A listener accepts up to ACCEPT_BATCH connections per wake-up and hands
 * each to its owner's callback, which keeps it or closes it (connection
 * limits are the owner's business). When the process runs out of file
 * descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM), the
 * pending connection stays in the kernel's backlog and the listening
 * socket stays readable: accepting again at once would spin the loop at
 * full CPU (issue 10). Instead the listener stops watching its socket
 * for ACCEPT_BACKOFF seconds, logs once per episode, and then tries
 * again (nginx disables accept events the same way; RabbitMQ's ranch
 * sleeps). Connections already open are served meanwhile, and closing
 * them frees the descriptors the next attempt needs.
 */
#include "server/listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define ACCEPT_BATCH   64
#define ACCEPT_BACKOFF 0.1 /* s without accepting after EMFILE */

static bool
out_of_resources(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

void
listener_addr_text(const struct sockaddr_storage *sa, char *out, size_t n,
                   bool *loopback)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (loopback)
        *loopback = false;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        if (loopback)
            *loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        snprintf(out, n, "%s:%u", host, ntohs(s4->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        if (loopback)
            *loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
                        (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
                         s6->sin6_addr.s6_addr[12] == 127);
        snprintf(out, n, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        snprintf(out, n, "unknown");
    }
}

/* Writes "h:p" or "[h]:p" of a bound socket to addr; returns the port. */
static uint16_t
bound_address(int fd, char *addr, size_t addrlen)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char h[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;

    getsockname(fd, (struct sockaddr *)&sa, &len);
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
        port = ntohs(s6->sin6_port);
        snprintf(addr, addrlen, "[%s]:%u", h, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;

        inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
        port = ntohs(s4->sin_port);
        snprintf(addr, addrlen, "%s:%u", h, port);
    }
    return port;
}

int
listener_bind(const char *host, uint16_t port, int backlog, char *addr,
              size_t addrlen, uint16_t *bound_port, const char **why)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char ports[8];
    int one = 1, rc, fd, e;

    *why = NULL;
    snprintf(ports, sizeof(ports), "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, ports, &hints, &ai);
    if (rc != 0) {
        *why = gai_strerror(rc);
        errno = EINVAL;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
            listen(fd, backlog) < 0) {
            e = errno;
            close(fd);
            errno = e;
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    *bound_port = bound_address(fd, addr, addrlen);
    return fd;
}

/* Out of descriptors: stop accepting for a while (see the header). */
static void
back_off(struct listener *l, int e)
{
    ev_io_stop(l->loop, &l->io);
    ev_timer_set(&l->backoff, ACCEPT_BACKOFF, 0.);
    ev_timer_start(l->loop, &l->backoff);
    if (l->backoffs++ == 0)
        log_warn("accept on %s (%s): %s: not accepting connections for "
                 "%.0f ms at a time until some close (raise the file "
                 "descriptor limit, ulimit -n)",
                 l->addr, l->proto, strerror(e), ACCEPT_BACKOFF * 1000);
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct listener *l = container_of(w, struct listener, backoff);

    (void)loop;
    (void)revents;
    ev_io_start(l->loop, &l->io);
}

/* An accept that worked after a back-off episode ends it. */
static void
backoff_over(struct listener *l)
{
    if (l->backoffs == 0)
        return;
    log_warn("accept on %s (%s): accepting again after %llu back-off%s",
             l->addr, l->proto, (unsigned long long)l->backoffs,
             l->backoffs == 1 ? "" : "s");
    l->backoffs = 0;
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = container_of(w, struct listener, io);

    (void)loop;
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH && ev_is_active(&l->io); i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (out_of_resources(errno))
                back_off(l, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                     wr_now_ms() - l->last_warn_ms > 1000) {
                l->last_warn_ms = wr_now_ms();
                log_syswarn("accept on %s (%s)", l->addr, l->proto);
            }
            return;
        }
        backoff_over(l);
        l->on_accept(l, fd, &sa);
    }
}

int
listener_open(struct listener *l, struct ev_loop *loop, const char *host,
              uint16_t port, int backlog, const char *proto,
              listener_accept_fn *on_accept, const char **why)
{
    int fd = listener_bind(host, port, backlog, l->addr, sizeof(l->addr),
                           &l->port, why);

    if (fd < 0)
        return WR_ERR;
    l->fd = fd;
    l->loop = loop;
    l->proto = proto;
    l->on_accept = on_accept;
    l->backoffs = 0;
    l->last_warn_ms = 0;
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    ev_timer_init(&l->backoff, backoff_cb, ACCEPT_BACKOFF, 0.);
    ev_io_start(loop, &l->io);
    log_info("listening on %s (%s)", l->addr, proto);
    return WR_OK;
}

void
listener_close(struct listener *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->backoff);
    close(l->fd);
    l->fd = -1;
}
