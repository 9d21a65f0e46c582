/*
 * listener.h: listening sockets and their accept loop (listener.c), for
 * the AMQP listeners and the management HTTP server alike.
 */
#ifndef WARREN_SERVER_LISTENER_H
#define WARREN_SERVER_LISTENER_H

#include "base/base.h"

#include <ev.h>
#include <sys/socket.h>

struct listener;

/* A new connection (non-blocking, close-on-exec): the callee owns fd and
 * keeps it or closes it. */
typedef void listener_accept_fn(struct listener *l, int fd,
                                const struct sockaddr_storage *peer);

struct listener {
    ev_io io;
    ev_timer backoff; /* accepting paused: out of file descriptors */
    int fd;
    struct ev_loop *loop;
    char addr[300];    /* "h:p" or "[h]:p", as bound */
    uint16_t port;     /* as bound (port 0 asks the kernel for one) */
    const char *proto; /* "amqp", "http": for log lines */
    listener_accept_fn *on_accept;
    void *data; /* the owner's */
    uint64_t backoffs;
    uint64_t last_warn_ms;
};

/*
 * Opens a non-blocking TCP socket listening on host:port (numeric; port 0:
 * the kernel chooses) and writes the bound address to addr and its port
 * to *bound_port. Returns the fd, or -1 with errno set and *why saying
 * what failed.
 */
int listener_bind(const char *host, uint16_t port, int backlog, char *addr,
                  size_t addrlen, uint16_t *bound_port, const char **why);

/* Writes a socket address as "h:p" or "[h]:p" ("unknown" for other
 * families); *loopback (may be NULL) says whether h is a loopback
 * address (127/8, ::1, or 127/8 mapped into IPv6). */
void listener_addr_text(const struct sockaddr_storage *sa, char *out, size_t n,
                        bool *loopback);

/*
 * listener_bind, then accepts on loop, calling on_accept for each new
 * connection, and logs "listening on ADDR (PROTO)". Returns WR_OK, or
 * WR_ERR with errno set and *why saying what failed (nothing logged).
 */
int listener_open(struct listener *l, struct ev_loop *loop, const char *host,
                  uint16_t port, int backlog, const char *proto,
                  listener_accept_fn *on_accept, const char **why);
/* Stops accepting and closes the socket. A no-op once closed (fd -1). */
void listener_close(struct listener *l);

#endif
