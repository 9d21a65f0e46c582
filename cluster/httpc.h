/*
 * cluster/httpc.h: one HTTP/1.1 request to another node's management API
 * (forwarded requests, lists merged across nodes), on the libev loop.
 *
 * Each request has its own connection ("Connection: close"), a deadline
 * for the whole exchange and a cap on the response; the callback runs
 * exactly once, later, never inside httpc_request(), unless
 * httpc_cancel() comes first.
 */
#ifndef WARREN_CLUSTER_HTTPC_H
#define WARREN_CLUSTER_HTTPC_H

#include "base/base.h"

#include <ev.h>

struct httpc;

/* status: the HTTP status, or 0 when no response came (why says what
 * happened). content_type and body are borrowed for the callback. */
typedef void httpc_fn(void *arg, int status, const char *why,
                      struct bytes content_type, struct bytes body);

struct httpc_request {
    const char *addr;           /* "IP:PORT" */
    const char *method;         /* "GET", "PUT", ... */
    const char *target;         /* path and query, already encoded */
    const char *const *headers; /* "Name: value", without CRLF */
    size_t nheaders;
    struct bytes body;
    size_t max_response; /* body bytes; more fails the request */
    double timeout_s;
};

/* Starts the request; returns its handle (valid until the callback runs
 * or httpc_cancel). */
struct httpc *httpc_request(struct ev_loop *loop, const struct httpc_request *q,
                            httpc_fn *cb, void *arg);
/* Drops the request; its callback never runs. */
void httpc_cancel(struct httpc *h);

#endif
