/*
 * cluster/etcd_int.h: the etcd client's internal structures, shared by
 * the cluster/etcd*.c files only.
 *
 * Layers, bottom up:
 *   etcd_http.c   one HTTP/1.1 connection: non-blocking connect, request
 *                 write, response parse (http-parser), bounded body;
 *   etcd_json.c   request bodies and response decoding (jansson), into
 *                 a per-response arena;
 *   etcd_req.c    unary requests: connection pools, failover, retries,
 *                 deadlines, the unknown-outcome rule, completion;
 *   etcd.c        the client and the public KV calls;
 *   etcd_txn.c, etcd_lease.c, etcd_watch.c, etcd_follow.c on top.
 *
 * Ownership: the client owns every request, lease, watch and follow it
 * lists; a pool owns its idle connections; a request owns the connection
 * it is using; a watch owns its stream connection.
 *
 * Re-entrancy rule, which replaces a reap list: any code that calls an
 * owner's callback (the HTTP layer notifying its owner, a request calling
 * the user) does it as its last action and touches none of its state
 * afterwards, or checks a "dead" flag the object's free function sets.
 * That is what lets a callback free the client, and etcd_free() free
 * everything synchronously.
 */
#ifndef WARREN_CLUSTER_ETCD_INT_H
#define WARREN_CLUSTER_ETCD_INT_H

#include "cluster/etcd.h"

#include <http_parser.h>
#include <jansson.h>
#include <sys/socket.h>

#define ETCD_MAGIC        0x45544344u /* "ETCD" */
#define ETCD_HTTP_MAGIC   0x45485454u
#define ETCD_REQ_MAGIC    0x45524551u
#define ETCD_LEASE_MAGIC  0x454c4553u
#define ETCD_WATCH_MAGIC  0x45574154u
#define ETCD_FOLLOW_MAGIC 0x45464f4cu

#define ETCD_EP_NAME_MAX  64
#define ETCD_ERR_MAX      256

/* ---- HTTP connection (etcd_http.c) */

enum etcd__http_ev {
    EH_SENT, /* the request is written in full */
    EH_DATA, /* streaming: new body bytes in h->body */
    EH_DONE, /* the response is complete: h->status, h->body */
    EH_FAIL, /* the connection failed (h->err); close it */
};

struct etcd_http;
/* An owner's handler. It may close h; the HTTP layer calls it last. */
typedef void etcd__http_fn(struct etcd_http *h, enum etcd__http_ev ev);

struct etcd_http {
    uint32_t magic;
    struct etcd *e;
    size_t ep;
    int fd;
    bool connected;
    bool busy;      /* a request is outstanding */
    bool sent;      /* it is written in full */
    bool streaming; /* deliver body bytes as they come (EH_DATA) */
    bool complete;  /* the response ended */
    bool reusable;  /* keep-alive, and nothing extra after the response */
    bool proto_err; /* EH_FAIL because of the peer's bytes, not the net */
    int status;
    ev_io rio, wio;
    ev_timer ctimer; /* connect timeout */
    http_parser parser;
    struct buf out;
    size_t out_off;
    struct buf body; /* unary: whole body; streaming: not yet consumed */
    char err[ETCD_ERR_MAX];
    etcd__http_fn *fn;
    void *owner;
    struct etcd_http *prev, *next; /* pool idle list */
};

/* Starts a non-blocking connection to endpoint ep. Returns NULL with the
 * reason in err when it fails at once. */
struct etcd_http *etcd__http_open(struct etcd *e, size_t ep, etcd__http_fn *fn,
                                  void *owner, char *err, size_t errlen);
/* Queues a POST of body to path and writes what it can. Returns WR_OK
 * when written in full now, WR_AGAIN when EH_SENT (or EH_FAIL) will
 * follow, WR_ERR with h->err when the write failed (nothing was received
 * in full). */
int etcd__http_send(struct etcd_http *h, const char *path, struct bytes body,
                    bool streaming);
/* An idle connection: true unless the peer closed it or sent bytes. */
bool etcd__http_is_alive(const struct etcd_http *h);
void etcd__http_set_owner(struct etcd_http *h, etcd__http_fn *fn, void *owner);
/* Closes the socket and frees h. */
void etcd__http_close(struct etcd_http *h);

/* ---- JSON (etcd_json.c) */

/* A bump allocator for one decoded message; freed at once. */
struct etcd__arena_blk;
struct etcd__arena {
    struct etcd__arena_blk *head;
    struct buf scratch;
};

void etcd__arena_init(struct etcd__arena *a);
void etcd__arena_fini(struct etcd__arena *a);
void *etcd__arena_alloc(struct etcd__arena *a, size_t n);
struct bytes etcd__arena_copy(struct etcd__arena *a, struct bytes b);

/* Request encoding. Bytes become base64 strings, int64s strings. */
void etcd__json_set_bytes(json_t *o, const char *name, struct bytes b);
void etcd__json_set_int(json_t *o, const char *name, int64_t v);
json_t *etcd__json_range(struct bytes key, const struct etcd_range_opts *o);
json_t *etcd__json_put(struct bytes key, struct bytes value,
                       const struct etcd_put_opts *o);
json_t *etcd__json_delete(struct bytes key, const struct etcd_delete_opts *o);
/* Appends the compact text of j to out and releases j. */
void etcd__json_dump_steal(json_t *j, struct buf *out);

/* Decodes a 200 response body of op into res, allocating in a. Returns
 * WR_OK, WR_AGAIN when body is etcd's error object (etcd__json_error
 * reads it), or WR_ERR with the reason in err. */
int etcd__json_result(enum etcd_op op, struct bytes body, struct etcd__arena *a,
                      struct etcd_result *res, char *err, size_t errlen);
/* Reads etcd's error object ({"error","code"} or a stream's
 * {"error":{"grpc_code","message"}}). Returns false when body is not one. */
bool etcd__json_error(struct bytes body, int *code, char *msg, size_t msglen);

/* One message of a watch stream. */
struct etcd__watch_msg {
    int64_t revision;
    bool created;
    bool canceled;
    bool fragment; /* more of this response follows */
    int64_t compact_revision;
    const char *cancel_reason;
    struct etcd_event *events;
    size_t n_events;
};

/* Decodes one line of a watch stream. Returns WR_OK, or WR_ERR with the
 * reason in err (an etcd error object in the stream included, *code set
 * to its gRPC code, else 0). */
int etcd__json_watch(struct bytes line, struct etcd__arena *a,
                     struct etcd__watch_msg *m, int *code, char *err,
                     size_t errlen);

/* ---- requests and pools (etcd_req.c) */

struct etcd_pool {
    struct etcd *e;
    unsigned max_conns;
    unsigned n_conns;         /* idle + busy */
    struct etcd_http *idle;   /* DL list */
    struct etcd_req *waiting; /* FIFO of requests waiting for a conn */
};

void etcd__pool_init(struct etcd_pool *p, struct etcd *e, unsigned max_conns);
/* Closes the idle connections. Assumes no request uses the pool. */
void etcd__pool_fini(struct etcd_pool *p);

/* Queues a POST of body (taken over) to path on pool p. retry_safe: may
 * reach etcd twice. The first attempt starts from the loop, never inside
 * this call. timeout_ms 0: the client's request timeout. */
struct etcd_req *etcd__req_submit(struct etcd_pool *p, enum etcd_op op,
                                  const char *path, struct buf *body,
                                  bool retry_safe, unsigned timeout_ms,
                                  etcd_result_fn *cb, void *arg);
/* During the request's callback: the monotonic time (us) the attempt
 * that got the answer started writing the request. */
uint64_t etcd__req_sent_us(const struct etcd_req *r);
/* Frees a request without calling it (etcd_cancel, etcd_free). */
void etcd__req_drop(struct etcd_req *r);

/* ---- the client (etcd.c) */

struct etcd_ep {
    char name[ETCD_EP_NAME_MAX]; /* host:port, as the Host header wants */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t log_ms;     /* last warning about this endpoint */
    unsigned suppressed; /* warnings not logged since */
};

struct etcd {
    uint32_t magic;
    struct ev_loop *loop;
    struct etcd_ep *eps;
    size_t n_eps;
    size_t cur_ep; /* where new attempts go */
    unsigned request_timeout_ms;
    unsigned connect_timeout_ms;
    size_t max_response;
    struct etcd_pool pool;
    struct etcd_req *reqs; /* every live request, of every pool */
    struct etcd_lease *leases;
    struct etcd_watch *watches;
    struct etcd_follow *follows;
};

/* After a failure on endpoint ep: moves new attempts to the next one
 * (unless someone already did) and logs why (which names the endpoint),
 * rate-limited per endpoint. */
void etcd__ep_failed(struct etcd *e, size_t ep, const char *why);

/* An attempt on endpoint ep got no answer in time: the watches
 * streaming from it reconnect elsewhere (etcd_watch.c). */
void etcd__watch_ep_hung(struct etcd *e, size_t ep);

/* Backoff before the next round over the endpoints: 50 ms doubling to
 * 1 s, from the number of rounds already failed. */
unsigned etcd__backoff_ms(unsigned rounds);

#endif
