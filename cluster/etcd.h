/*
 * cluster/etcd.h: a non-blocking etcd v3 client for the broker's libev
 * loop. It speaks etcd's JSON gateway (POST /v3/..., HTTP/1.1, keys and
 * values in base64, int64s as strings) because no C gRPC client is
 * packaged; see ../shared/CLUSTER.md for the shapes.
 *
 * Everything runs on the one loop given to etcd_new(): connects, reads,
 * writes and timeouts are ev_io/ev_timer watchers, nothing blocks.
 * Endpoints are numeric ("127.0.0.1:2379", "http://[::1]:2379"): host
 * names are refused at creation, since resolving them would block the
 * loop (resolve them before configuring the client). TLS is not spoken.
 *
 * Calls and callbacks
 *   - Every unary call (range, put, delete, txn, compact) returns a
 *     handle and later calls its callback exactly once, never from
 *     inside the call itself. The handle dies when the callback is
 *     called; until then etcd_cancel() drops the request and guarantees
 *     the callback never runs. etcd_free() cancels everything the client
 *     still has (requests, leases, watches, follows) without calling any
 *     callback. Callbacks may call any function of this API, etcd_free()
 *     included.
 *   - Results are borrowed: every pointer in a struct etcd_result, an
 *     update or an event is valid only during the callback.
 *
 * Failover and unknown outcomes
 *   Requests go to the current endpoint over a small pool of keep-alive
 *   connections. An attempt that cannot connect, loses its connection,
 *   gets no answer within a third of the request timeout, or gets etcd's
 *   "unavailable" answer moves the client to the next endpoint, and the
 *   request is tried again there until its deadline, when that is safe:
 *   - a request that never reached a socket in full was not applied, so
 *     it is always retried; so is one etcd refused with "no leader"
 *     (every request asks for etcd's leader check, which refuses before
 *     anything is proposed);
 *   - reads (range, a txn of ranges only), lease grant, keepalive and
 *     revoke are retried even after they were sent (a second grant
 *     leaves an unused lease that expires after its TTL);
 *   - a write (put, delete, a txn with a write, compact) that was sent
 *     and then lost its answer (connection error, deadline, etcd's
 *     "request timed out", an answer that is not etcd's) is NEVER sent
 *     again: its callback gets ETCD_E_UNKNOWN. It may or may not have
 *     been applied; the caller finds out by reading (e.g. the key's
 *     mod_revision or value), as for any consensus system.
 *   ETCD_E_UNAVAILABLE and ETCD_E_SERVER mean "not applied". A read that
 *   gets an answer that is not etcd's fails at once with ETCD_E_PROTOCOL.
 *
 * Leases and the leader's rule
 *   A lease keeps itself alive every TTL/3 over its own connection (a
 *   busy request pool cannot delay it). etcd_lease_renewed_us() is the
 *   CLOCK_MONOTONIC time (wr_now_us) at which the keepalive (or grant)
 *   request whose answer last confirmed the lease was SENT. etcd restarts
 *   the TTL when it receives that request, which is later, so the lease
 *   is certainly alive until renewed + TTL. A leader holding a key on the
 *   lease must stop acting as leader at
 *
 *       etcd_lease_renewed_us(l) + TTL - margin
 *
 *   (etcd_lease_deadline_us), margin covering clock rate differences and
 *   its own reaction time, whether or not the loss callback has fired.
 *
 * Watches
 *   A watch delivers the events of a key range in revision order, each
 *   exactly once, across connection losses and member restarts: it
 *   reconnects (to the next endpoint when one fails) and resumes from the
 *   last delivered revision + 1. When etcd has compacted that revision
 *   away, the watch reports ETCD_WATCH_RESET and stops; the owner reads
 *   the range again and watches from that read's revision + 1, which is
 *   what etcd_follow does for a prefix. A member cut off from its
 *   cluster ends the stream (etcd's leader check), a vanished host is
 *   noticed by TCP keepalive (about 11 s); a member that still accepts
 *   TCP but does not answer (SIGSTOP) is noticed when a request to it
 *   gets no answer in time (a lease's keepalive goes to the current
 *   endpoint every TTL/3), and until then its watches are silent.
 */
#ifndef WARREN_CLUSTER_ETCD_H
#define WARREN_CLUSTER_ETCD_H

#include "base/base.h"

#include <ev.h>

struct etcd;
struct etcd_req;
struct etcd_txn;
struct etcd_lease;
struct etcd_watch;
struct etcd_follow;

/* ---- client */

struct etcd_config {
    const char *const *endpoints; /* "host:port" or "http://host:port" */
    size_t n_endpoints;
    unsigned request_timeout_ms; /* whole request, retries included; 5000 */
    unsigned connect_timeout_ms; /* one connection attempt; 1000 */
    unsigned max_conns;          /* pooled connections for requests; 4 */
    size_t max_response;         /* largest response or watch message; 8 MiB
                                    (one event of etcd's largest value, with
                                    prev_kv, in base64) */
};

/* Checks the endpoints. Returns WR_OK, or WR_ERR with the reason in err. */
int etcd_config_check(const struct etcd_config *cfg, char *err, size_t errlen);
/* Returns a client (no connection is opened yet), or NULL, logging why,
 * when the config is invalid. */
struct etcd *etcd_new(struct ev_loop *loop, const struct etcd_config *cfg);
/* Closes every connection and frees every request, lease, watch and
 * follow of the client. No callback runs afterwards. */
void etcd_free(struct etcd *e);
/* The endpoint new requests go to ("127.0.0.1:2379"). */
const char *etcd_endpoint(const struct etcd *e);

/* ---- results */

enum etcd_status {
    ETCD_OK = 0,
    ETCD_E_UNAVAILABLE, /* no endpoint took it before the deadline: not
                           applied */
    ETCD_E_SERVER,      /* etcd refused it (code, error): not applied */
    ETCD_E_PROTOCOL,    /* a read got an answer that is not etcd's */
    ETCD_E_UNKNOWN,     /* a write was sent, its answer lost: it may or
                           may not have been applied */
};

enum etcd_op {
    ETCD_OP_RANGE,
    ETCD_OP_PUT,
    ETCD_OP_DELETE,
    ETCD_OP_TXN,
    ETCD_OP_COMPACT,
    ETCD_OP_LEASE_GRANT,
    ETCD_OP_LEASE_KEEPALIVE,
    ETCD_OP_LEASE_REVOKE,
};

/* A key-value pair. Zero fields were absent (etcd omits defaults). */
struct etcd_kv {
    struct bytes key;
    struct bytes value;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

struct etcd_result {
    enum etcd_status status;
    int code;          /* ETCD_E_SERVER: etcd's gRPC code (5 not found,
                          11 compacted/future revision, ...) */
    const char *error; /* not ETCD_OK: why */
    enum etcd_op op;
    int64_t revision; /* header.revision: the store's revision after it */
    /* range: the kvs; put: prev_kv (0 or 1); delete: prev_kvs */
    const struct etcd_kv *kvs;
    size_t n_kvs;
    int64_t count;  /* range: keys in range (not limited); delete: deleted */
    bool more;      /* range: limit cut the answer */
    bool succeeded; /* txn: the compares held and success[] ran */
    const struct etcd_result *responses; /* txn: one per op of the branch */
    size_t n_responses;
    int64_t id;  /* lease grant: the lease */
    int64_t ttl; /* lease grant, keepalive: seconds (0: expired) */
};

typedef void etcd_result_fn(void *arg, const struct etcd_result *res);

/* ---- KV requests. key and the option bytes are copied. cb may be NULL. */

struct etcd_range_opts {
    struct bytes range_end; /* [key, range_end); "\0": every key >= key */
    bool prefix;            /* every key starting with key */
    int64_t limit;          /* 0: no limit */
    int64_t revision;       /* 0: the newest */
    bool keys_only;
    bool count_only;
};

struct etcd_put_opts {
    int64_t lease;
    bool prev_kv;
};

struct etcd_delete_opts {
    struct bytes range_end;
    bool prefix;
    bool prev_kv;
};

struct etcd_req *etcd_range(struct etcd *e, struct bytes key,
                            const struct etcd_range_opts *o, etcd_result_fn *cb,
                            void *arg);
struct etcd_req *etcd_put(struct etcd *e, struct bytes key, struct bytes value,
                          const struct etcd_put_opts *o, etcd_result_fn *cb,
                          void *arg);
struct etcd_req *etcd_delete(struct etcd *e, struct bytes key,
                             const struct etcd_delete_opts *o,
                             etcd_result_fn *cb, void *arg);
/* Compacts the history before revision (tests, maintenance). */
struct etcd_req *etcd_compact(struct etcd *e, int64_t revision,
                              etcd_result_fn *cb, void *arg);
/* Drops a request: its callback will not run. A write may still be
 * applied. No-op on a request whose callback is running. */
void etcd_cancel(struct etcd_req *r);

/* Writes the range_end covering every key that starts with prefix into
 * out and returns it ("\0" when every byte of prefix is 0xff or it is
 * empty). */
struct bytes etcd_prefix_end(struct bytes prefix, struct buf *out);

/* ---- transactions: if every compare holds, run THEN ops, else ELSE ops */

enum etcd_target {
    ETCD_VERSION,
    ETCD_CREATE,
    ETCD_MOD,
    ETCD_VALUE,
    ETCD_LEASE,
};

enum etcd_cmp {
    ETCD_EQUAL,
    ETCD_GREATER,
    ETCD_LESS,
    ETCD_NOT_EQUAL,
};

enum etcd_branch {
    ETCD_THEN,
    ETCD_ELSE,
};

struct etcd_txn *etcd_txn_new(void);
void etcd_txn_free(struct etcd_txn *t);
/* key's version, create_revision, mod_revision or lease <cmp> v.
 * ETCD_CREATE EQUAL 0 means "key absent". */
void etcd_txn_if(struct etcd_txn *t, struct bytes key, enum etcd_target target,
                 enum etcd_cmp cmp, int64_t v);
void etcd_txn_if_value(struct etcd_txn *t, struct bytes key, enum etcd_cmp cmp,
                       struct bytes value);
void etcd_txn_put(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
                  struct bytes value, const struct etcd_put_opts *o);
void etcd_txn_range(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
                    const struct etcd_range_opts *o);
void etcd_txn_delete(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
                     const struct etcd_delete_opts *o);
/* Sends the txn and frees t. res->succeeded tells which branch ran and
 * res->responses holds its ops' results in order. A txn with only range
 * ops is a read (retried); any write makes it a write (see above). etcd
 * allows at most 128 ops per branch. */
struct etcd_req *etcd_txn_commit(struct etcd *e, struct etcd_txn *t,
                                 etcd_result_fn *cb, void *arg);

/* ---- leases */

enum etcd_lease_state {
    ETCD_LEASE_GRANTING,
    ETCD_LEASE_ACTIVE,  /* granted; kept alive */
    ETCD_LEASE_LOST,    /* grant failed, expired, revoked by someone, or
                           no renewal confirmed within the TTL: final */
    ETCD_LEASE_REVOKED, /* etcd_lease_revoke() was called: final */
};

/* Called on ACTIVE (once, when granted) and on LOST (once, final). */
typedef void etcd_lease_fn(void *arg, struct etcd_lease *l,
                           enum etcd_lease_state state, const char *why);

/* Grants a lease of ttl_s seconds (etcd may grant a longer one) and keeps
 * it alive until etcd_lease_revoke() or etcd_lease_free(). */
struct etcd_lease *etcd_lease_new(struct etcd *e, int64_t ttl_s,
                                  etcd_lease_fn *cb, void *arg);
/* Stops the keepalives and frees the lease without revoking it: etcd
 * deletes its keys when the TTL runs out. No callback afterwards. */
void etcd_lease_free(struct etcd_lease *l);
enum etcd_lease_state etcd_lease_state(const struct etcd_lease *l);
/* The lease ID (0 until ACTIVE) and the TTL etcd granted, in seconds. */
int64_t etcd_lease_id(const struct etcd_lease *l);
int64_t etcd_lease_ttl(const struct etcd_lease *l);
/* Monotonic time (wr_now_us) the last confirmed renewal was sent; 0
 * before ACTIVE. */
uint64_t etcd_lease_renewed_us(const struct etcd_lease *l);
/* renewed + TTL - margin: when a holder must stop acting on the lease;
 * 0 when the lease is not ACTIVE. */
uint64_t etcd_lease_deadline_us(const struct etcd_lease *l, uint64_t margin_us);
/* Stops the keepalives (state REVOKED, no more lease callbacks) and asks
 * etcd to revoke the lease, deleting its keys at once. The revoke runs on
 * the client's pool, independent of l, which may be freed right away;
 * "lease not found" counts as success. Returns its handle, or NULL (and
 * cb is never called) when no lease was granted. */
struct etcd_req *etcd_lease_revoke(struct etcd_lease *l, etcd_result_fn *cb,
                                   void *arg);

/* ---- watches */

enum etcd_event_type {
    ETCD_EV_PUT,
    ETCD_EV_DELETE,
};

struct etcd_event {
    enum etcd_event_type type;
    struct etcd_kv kv; /* DELETE: key and mod_revision only */
    bool has_prev_kv;
    struct etcd_kv prev_kv;
};

enum etcd_watch_kind {
    ETCD_WATCH_EVENTS,
    ETCD_WATCH_RESET,  /* start revision compacted: final */
    ETCD_WATCH_FAILED, /* etcd cancelled or refused the watch: final */
};

struct etcd_watch_update {
    enum etcd_watch_kind kind;
    int64_t revision; /* header.revision of the message */
    const struct etcd_event *events;
    size_t n_events;
    int64_t compact_revision; /* RESET: oldest revision still kept */
    const char *error;        /* FAILED: why */
};

typedef void etcd_watch_fn(void *arg, const struct etcd_watch_update *u);

struct etcd_watch_opts {
    struct bytes range_end;
    bool prefix;
    int64_t start_revision; /* 0: from now */
    bool prev_kv;
};

struct etcd_watch *etcd_watch_new(struct etcd *e, struct bytes key,
                                  const struct etcd_watch_opts *o,
                                  etcd_watch_fn *cb, void *arg);
void etcd_watch_free(struct etcd_watch *w);
/* The revision the watch resumes from: last delivered + 1 (0 while a
 * watch "from now" has not been created yet). */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);

/* ---- follow: a consistent snapshot of a prefix, then its changes */

enum etcd_follow_kind {
    ETCD_FOLLOW_SNAPSHOT, /* replace everything known with kvs */
    ETCD_FOLLOW_EVENTS,   /* apply events in order */
};

struct etcd_follow_update {
    enum etcd_follow_kind kind;
    int64_t revision;          /* SNAPSHOT: the revision it was read at */
    const struct etcd_kv *kvs; /* SNAPSHOT, sorted by key */
    size_t n_kvs;
    const struct etcd_event *events; /* EVENTS, with prev_kv */
    size_t n_events;
};

typedef void etcd_follow_fn(void *arg, const struct etcd_follow_update *u);

/* Reads every key under prefix at one revision (in pages), delivers it
 * as a SNAPSHOT, then watches from that revision + 1. When the watch is
 * reset by compaction, or refused, it reads again and delivers a new
 * SNAPSHOT: applying the updates in order always yields the prefix's
 * state at the last revision delivered. Failed reads are retried, with
 * backoff, for as long as the follow lives. */
struct etcd_follow *etcd_follow_new(struct etcd *e, struct bytes prefix,
                                    etcd_follow_fn *cb, void *arg);
void etcd_follow_free(struct etcd_follow *f);

#endif
