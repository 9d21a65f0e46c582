/*
 * mgmt_int.h: the management HTTP API (RabbitMQ's rabbitmq_management
 * paths, methods, status codes and JSON shapes), shared by the files of
 * server/mgmt/ and private to them (mgmt.h is the public part).
 *
 *   mgmt_http.c            the HTTP/1.1 server on the broker's libev loop
 *                          (Debian's http-parser): connections, limits,
 *                          timeouts, keep-alive, write-behind output; it
 *                          hands each request to the handler it was
 *                          started with
 *   mgmt_routes.c          that handler: the route table, basic auth and
 *                          tags, dispatch; starting and stopping the API
 *   mgmt_api.c             what handlers share: replies and errors in
 *                          RabbitMQ's shapes, bodies, access checks, the
 *                          item skeleton (mgmt_item)
 *   mgmt_api_list.c        list queries: page, page_size, name,
 *                          use_regex, sort, sort_reverse, columns;
 *                          streamed bodies
 *   mgmt_api_admin.c       vhosts, users, permissions, limits, policies,
 *                          parameters, definitions
 *   mgmt_api_exchanges.c   exchanges
 *   mgmt_api_bindings.c    bindings
 *   mgmt_api_queues.c      a queue, its consumers, purge
 *   mgmt_api_queue_list.c  /api/queues, built for 100,000 queues
 *   mgmt_api_messages.c    the diagnostic publish and get
 *   mgmt_api_conns.c       connections, channels
 *   mgmt_api_node.c        overview, nodes, health checks, aliveness
 *   mgmt_api_stats.c       counters sampled on a timer, rates
 *   mgmt_metrics.c         the Prometheus pages: /metrics,
 *                          /metrics/per-object, /metrics/detailed
 *   mgmt_prom.c            the exposition format's escaping and values
 *   mgmt_api_phash.c       Erlang's phash2 of binding arguments (the hash
 *                          in RabbitMQ's binding properties_key)
 *   mgmt_ui.c              the web UI's static files (server/mgmt/www)
 *
 * One request is handled at a time per connection, synchronously on the
 * loop: the handler reads the model through its snapshots (conn_info,
 * chan_info, queue_info, vhost_info) and the node's functions and
 * queues a complete response, or a stream (a generator called whenever
 * the output runs low, for lists too big to build at once). Nothing here
 * runs on the AMQP hot path: statistics are sampled from the queues'
 * counters every MGMT_SAMPLE_INTERVAL seconds.
 */
#ifndef WARREN_SERVER_MGMT_INT_H
#define WARREN_SERVER_MGMT_INT_H

#include "server/mgmt/mgmt.h"
#include "server/mgmt/mgmt_prom.h"
#include "server/outq.h"

#include <http_parser.h>
#include <jansson.h>

/* ---- limits */

#define MGMT_MAX_HEADER_BYTES (16u << 10) /* request line + headers */
#define MGMT_DEFAULT_MAX_BODY (32u << 20) /* RabbitMQ's definitions limit */
#define MGMT_ANON_BODY        (64u << 10) /* read before credentials */
#define MGMT_HEADER_TIMEOUT   10.0        /* s from a request's first byte */
#define MGMT_BODY_TIMEOUT     30.0        /* s without body bytes */
#define MGMT_IDLE_TIMEOUT     60.0 /* s of keep-alive without a request */
#define MGMT_WRITE_TIMEOUT    60.0 /* s without the client reading */
#define MGMT_MAX_CONNS        256
#define MGMT_MAX_PEER_CONNS   64  /* from one address */
#define MGMT_ANON_TIMEOUT     5.0 /* s to authenticate after accept */
#define MGMT_MAX_SEGS         16  /* path segments */
#define MGMT_MAX_QPARAMS      32
#define MGMT_SAMPLE_INTERVAL  5.0

/* ---- requests and responses (mgmt_http.c) */

struct mgmt_conn;
struct mgmt_req;

/*
 * A body produced piece by piece: fill() appends more bytes to out and
 * returns true while more will follow, false when it has written the
 * last ones; it is called whenever the connection's output runs low.
 * free() releases the generator (also when the client goes away first).
 */
struct mgmt_stream {
    bool (*fill)(struct mgmt_stream *st, struct buf *out);
    void (*free)(struct mgmt_stream *st);
};

struct mgmt_qparam {
    char *key;
    char *value;
};

/* Authorization levels of a route (RabbitMQ's is_authorized_* checks). */
enum mgmt_auth {
    MGMT_AUTH_NONE,    /* no login (the /metrics endpoint) */
    MGMT_AUTH_ANY,     /* any user with a management tag */
    MGMT_AUTH_MONITOR, /* monitoring or administrator */
    MGMT_AUTH_POLICY,  /* policymaker or administrator */
    MGMT_AUTH_ADMIN,   /* administrator */
};

/*
 * One request, as the handlers see it. Strings are NUL-terminated and
 * owned by the request; path segments and query values are
 * percent-decoded (and refused when they decode to a NUL byte).
 */
struct mgmt_req {
    struct mgmt_conn *conn;
    enum http_method method;
    bool head; /* HEAD: answer as GET without the body */
    char *seg[MGMT_MAX_SEGS];
    size_t nseg;
    struct mgmt_qparam q[MGMT_MAX_QPARAMS];
    size_t nq;
    struct bytes body;
    const char *authorization; /* header values, or NULL */
    const char *x_reason;
    const char *content_type;
    const char *if_none_match;
    bool peer_loopback;
    bool bad_target; /* the path or query string did not parse */
    char *target;    /* the path and query as sent (still encoded) */
    bool local;      /* x-warren-local: 1: another node of the cluster
                        asks for this node's own answer */
    bool prometheus; /* came to the Prometheus listener: metrics only */
    /* after authentication */
    struct user *user; /* borrowed; until the handler changes users */
    const char *user_name;
    char *user_name_copy; /* owned: user_name points here */
    uint32_t tags;        /* TAG_* */
    const char *args[4];  /* the route's wildcard segments */
    /* the response */
    int status;
    struct buf hdrs; /* extra header lines, each ending in \r\n */
    struct buf out;  /* the body */
    struct mgmt_stream *stream;
    bool replied;
    /* hold: mgmt_http_respond keeps the response in r (replied is set)
     * until mgmt_http_release sends it, or the request is deferred */
    bool hold;
    const char *held_type;
    /* a deferred request (mgmt_http_defer): the handler's state, and
     * what to do if the client goes before the answer */
    void *ctx;
    void (*abort)(struct mgmt_req *r);
};

/* Queues the response: status, content-type (NULL for none), the extra
 * headers and the body in r->out (or r->stream, sent chunked). */
void mgmt_http_respond(struct mgmt_req *r, const char *content_type);
/* The peer text of the request's connection ("127.0.0.1:5555"). */
const char *mgmt_http_peer(const struct mgmt_req *r);
/*
 * A handler that answers later (another node's answer, etcd's): returns
 * a heap copy of r that owns its path, query and user name (not the
 * body or the headers: copy what is needed first), to reply to with
 * mgmt_http_respond and then give back with mgmt_http_resume. The
 * connection takes no other request meanwhile. When the client goes
 * first, d->abort(d) (if set) runs and the copy is freed.
 */
struct mgmt_req *mgmt_http_defer(struct mgmt_req *r);
/* Sends the response a held request (r->hold) has made. */
void mgmt_http_release(struct mgmt_req *r);
void mgmt_http_resume(struct mgmt_req *d);
/* The request's credentials were good: its connection is no longer
 * anonymous (no authentication deadline, never evicted). */
void mgmt_http_authenticated(struct mgmt_req *r);
/* Percent-decodes s[0..n) into a new NUL-terminated string; plus_space:
 * '+' means ' ' (query strings, mochiweb's unquote). NULL for a bad
 * escape, or for a NUL byte unless outlen (then set) is given. */
char *mgmt_pct_decode(const char *s, size_t n, bool plus_space, size_t *outlen);
/* The management listener's address ("127.0.0.1:15672") and port. */
const char *mgmt_http_addr(void);
uint16_t mgmt_http_port(void);
/* The HTTPS listener's address (management.ssl.port), or NULL. */
const char *mgmt_https_addr(void);
/* Open HTTP connections (sockets_used). */
uint32_t mgmt_http_nconns(void);

/* Who answers the HTTP server's requests (mgmt_routes.c). */
struct mgmt_http_handler {
    /* Handles a complete request; always produces a response. */
    void (*dispatch)(struct mgmt_req *r);
    /* Would these basic-auth credentials let a management user in? Asked
     * before a large body is read. */
    bool (*credentials_ok)(const char *authorization, bool loopback);
};

/* Opens the listener and answers requests with h. Returns WR_OK (also
 * when the port is in use and management.tcp.optional is set: then the
 * server does not run), or WR_ERR (logged). */
int mgmt_http_start(struct server *s, const struct mgmt_http_handler *h);
/* Whether the listener is open (mgmt_http_start succeeded with it). */
bool mgmt_http_running(void);
/* Closes the listener and every HTTP connection. */
void mgmt_http_stop(void);

/* ---- replies and what handlers share (mgmt_api.c) */

/* Query parameter value or NULL. */
const char *mgmt_qs(const struct mgmt_req *r, const char *key);
/* Query parameter "true". */
bool mgmt_qs_true(const struct mgmt_req *r, const char *key);

/* Replies with a JSON value (stolen) and status. */
void mgmt_reply_json(struct mgmt_req *r, int status, json_t *v);
/* 201/204 with an empty body. */
void mgmt_reply_empty(struct mgmt_req *r, int status);
/* The outcome of a change: an empty `status` (201 created, 204 done)
 * when rc is WR_OK, else err (mgmt_reply_vherr). */
void mgmt_reply_done(struct mgmt_req *r, int rc, const struct vherr *err,
                     int status);
/* {"error": error, "reason": reason} with status. */
void mgmt_reply_error(struct mgmt_req *r, int status, const char *error,
                      const char *fmt, ...) WR_PRINTF(4, 5);
/* 400 {"error":"bad_request","reason":...}. */
void mgmt_bad_request(struct mgmt_req *r, const char *fmt, ...) WR_PRINTF(2, 3);
/* 400 with a JSON reason (stolen), as RabbitMQ's ["not_int","x"]. */
void mgmt_bad_request_json(struct mgmt_req *r, json_t *reason);
/* 404 {"error":"Object Not Found","reason":"Not Found"}. */
void mgmt_not_found(struct mgmt_req *r);
/* 401 {"error":"not_authorised","reason":reason}. */
void mgmt_not_authorised(struct mgmt_req *r, const char *reason);
/* A vherr as RabbitMQ's management plugin reports a channel error:
 * 403 -> 401 "Access refused.", 404 -> 404, others -> 400 with text. */
void mgmt_reply_vherr(struct mgmt_req *r, const struct vherr *err);

/* Parses the request body as a JSON object ("" and "null" give {}).
 * Returns a new reference, or NULL after replying 400 not_json. */
json_t *mgmt_body_json(struct mgmt_req *r);
/* RabbitMQ's parse_bool of body[key]: true/false or "true"/"false"
 * (dflt when absent or null). Replies 400 ["not_boolean", V] and returns
 * false on anything else. */
bool mgmt_body_bool(struct mgmt_req *r, json_t *body, const char *key,
                    bool dflt, bool *out);
/* body["arguments"]: an object (or [] / null for none) as a field table
 * into out. Replies 400 and returns false when it is not one. */
bool mgmt_body_args(struct mgmt_req *r, json_t *body, struct buf *out);
/* body[key] when it is a string, else dflt. */
const char *mgmt_body_str(json_t *body, const char *key, const char *dflt);

/*
 * One item of a collection (an exchange, a queue, a vhost, a user, a
 * permission, a policy...): PUT creates or replaces it (obj NULL when it
 * does not exist yet), GET and HEAD show it, DELETE removes it; GET or
 * DELETE of one that does not exist is 404. Each operation replies.
 */
struct mgmt_item_ops {
    void (*get)(struct mgmt_req *r, void *obj, void *ctx);
    void (*put)(struct mgmt_req *r, void *obj, void *ctx);
    void (*del)(struct mgmt_req *r, void *obj, void *ctx);
};

void mgmt_item(struct mgmt_req *r, const struct mgmt_item_ops *ops, void *obj,
               void *ctx);

/* The vhost called name (a path segment), or NULL after replying 404. */
struct vhost *mgmt_vhost_arg(struct mgmt_req *r, const char *name);
/* The vhosts a list shows: the one in r->args[0] (checked) or every one
 * the user may read, in name order (a new array, *n long). NULL after
 * replying when the named one is refused. */
struct vhost **mgmt_list_vhosts(struct mgmt_req *r, size_t *n);
/* May the user see/use vhost vh? (administrator, monitoring for reads
 * when `read` is set, or any permission entry in the vhost.) */
bool mgmt_can_see_vhost(const struct mgmt_req *r, struct vhost *vh, bool read);
/* As RabbitMQ's is_authorized_vhost: replies 401 "User not authorised to
 * access virtual host" and returns false when the user may not. */
bool mgmt_check_vhost(struct mgmt_req *r, struct vhost *vh, bool read);
/* A GET or HEAD: what monitoring users may do anywhere. */
static inline bool
mgmt_is_read(const struct mgmt_req *r)
{
    return r->method == HTTP_GET || r->method == HTTP_HEAD;
}
/* A resource permission check (configure/write/read) for the user;
 * replies 401 "Access refused." and returns false when refused. */
bool mgmt_check_perm(struct mgmt_req *r, struct vhost *vh, enum perm_kind kind,
                     const char *what, struct bytes name);
/* RabbitMQ's name for the default exchange in paths. */
struct bytes mgmt_exchange_name(const char *path_name);

/* The node's name ("warren@host") and every vhost, in name order (a new
 * array the caller frees; *n gets the count). */
const char *mgmt_node_name(void);
struct vhost **mgmt_vhosts(size_t *n);

/* JSON helpers shared by the handlers */
json_t *mgmt_rate(double rate); /* {"rate": rate, to one decimal} */
/* A field table body as a JSON object (RabbitMQ's mapping). */
json_t *mgmt_table_json(struct bytes tbl);

/* ---- the web UI (mgmt_ui.c) */

/* Serves one of the UI's files (GET, HEAD; no login), or 405 for another
 * method. Returns false, having done nothing, when the path names none. */
bool mgmt_ui_serve(struct mgmt_req *r);

/* ---- list queries (mgmt_api_list.c) */

struct mgmt_listq {
    bool paged; /* page= given: filter by name and return a page object */
    long page, page_size;
    const char *name; /* filter (paged only); NULL or "" = none */
    bool use_regex;
    void *re;         /* pcre2_code when use_regex */
    void *md;         /* its pcre2_match_data */
    const char *sort; /* NULL = default sort; "" = no sort at all */
    bool sort_reverse;
    char **cols; /* columns=..., dotted; NULL = all */
    size_t ncols;
    struct mgmt_cols *colset; /* the same, parsed */
};

/* Parses the list parameters; on a bad value replies 400 as RabbitMQ
 * and returns WR_ERR. */
int mgmt_listq_parse(struct mgmt_req *r, struct mgmt_listq *lq);
void mgmt_listq_fini(struct mgmt_listq *lq);
/* Does the name pass the filter? */
bool mgmt_listq_match(const struct mgmt_listq *lq, const char *name,
                      size_t len);
/* Replies with a list of JSON objects (stolen array), sorted by the
 * `sort` parameter then by default_sort (NULL-terminated dotted keys),
 * filtered and paged as asked, with only the asked columns. */
void mgmt_reply_list(struct mgmt_req *r, json_t *items,
                     const char *const *default_sort);
/* Replies with the list of what add() appends for each vhost the list
 * shows (mgmt_list_vhosts), as mgmt_reply_list does. */
void mgmt_reply_per_vhost(struct mgmt_req *r,
                          void (*add)(json_t *items, struct vhost *vh),
                          const char *const *default_sort);
/* Replies 200 with one object (stolen), with the asked columns. */
void mgmt_reply_item(struct mgmt_req *r, json_t *item);
/* Keeps only the asked columns of one item (in place). */
void mgmt_columns_apply(const struct mgmt_listq *lq, json_t *item);
/* The paged response object around items (stolen). */
json_t *mgmt_page_object(const struct mgmt_listq *lq, json_t *items,
                         size_t total, size_t filtered);
/* Checks the page against the filtered count; replies 400
 * page_out_of_range and returns false when it is past the end. */
bool mgmt_page_in_range(struct mgmt_req *r, const struct mgmt_listq *lq,
                        size_t filtered);

/* Parsed columns (mgmt_api_list.c); NULL means every column. */
struct mgmt_cols;
struct mgmt_cols *mgmt_cols_new(char *const *spec, size_t nspec);
void mgmt_cols_free(struct mgmt_cols *c);

/*
 * A JSON writer that keeps only the asked columns while it writes, so a
 * large list is encoded straight from the structs: an unwanted key and
 * its value (scalar or object) are skipped. Keys are written with
 * mgmt_jw_key, then exactly one value. Borrowed strings only.
 */
#define MGMT_JW_DEPTH 8
struct mgmt_jw {
    struct buf *b;
    const struct mgmt_cols *cols;
    const char *path[MGMT_JW_DEPTH]; /* keys of the open objects */
    bool first[MGMT_JW_DEPTH];
    bool all[MGMT_JW_DEPTH]; /* this level is wanted entirely */
    int depth;
    int skip;        /* nesting of an unwanted object being skipped */
    bool skip_value; /* the key just given is unwanted */
    bool next_all;   /* the key just given is wanted entirely */
};

void mgmt_jw_init(struct mgmt_jw *w, struct buf *b,
                  const struct mgmt_cols *cols);
void mgmt_jw_obj_begin(struct mgmt_jw *w);
void mgmt_jw_obj_end(struct mgmt_jw *w);
void mgmt_jw_key(struct mgmt_jw *w, const char *key);
void mgmt_jw_str(struct mgmt_jw *w, const char *s, size_t n);
void mgmt_jw_cstr(struct mgmt_jw *w, const char *s); /* NULL -> null */
void mgmt_jw_int(struct mgmt_jw *w, int64_t v);
void mgmt_jw_rate(struct mgmt_jw *w, double rate); /* {"rate":x.x} */
void mgmt_jw_bool(struct mgmt_jw *w, bool v);
void mgmt_jw_null(struct mgmt_jw *w);
void mgmt_jw_raw(struct mgmt_jw *w, const char *json);
/* A jansson value (stolen), filtered by the columns below this key. */
void mgmt_jw_json(struct mgmt_jw *w, json_t *v);
/* Appends s as a JSON string (assumes valid UTF-8). */
void mgmt_jw_escape(struct buf *b, const char *s, size_t n);

/* Streams a JSON array of n items: write(ctx, i, w) writes item i with
 * the writer (columns applied) and returns false to leave it out;
 * ctx_free(ctx) runs at the end or when the client goes away. */
typedef bool mgmt_write_fn(void *ctx, size_t i, struct mgmt_jw *w);
void mgmt_reply_stream(struct mgmt_req *r, const struct mgmt_listq *lq,
                       size_t n, mgmt_write_fn *write,
                       void (*ctx_free)(void *ctx), void *ctx);

/* ---- objects (mgmt_api_queues.c, mgmt_api_exchanges.c) */

/* A queue as /api/queues shows it (columns applied by the caller). */
json_t *mgmt_queue_json(struct queue *q, bool details);
/* The same, written with the column-filtering writer. */
void mgmt_queue_write(struct queue *q, bool details, struct mgmt_jw *w);
json_t *mgmt_exchange_json(struct vhost *vh, struct exchange *x);

/* ---- statistics (mgmt_api_stats.c) */

struct mgmt_qrates {
    double publish, deliver, ack, redeliver; /* per second */
    double ready, unacked;                   /* change per second */
};

void mgmt_stats_start(struct server *s);
void mgmt_stats_stop(void);
/* The rates of q as of the last sample (zeros before the second). */
void mgmt_stats_queue(const struct queue *q, struct mgmt_qrates *out);
/* Node-wide totals: counters of every queue that ever existed. */
struct mgmt_totals {
    uint64_t publish, deliver, ack, redeliver, expired;
    double publish_rate, deliver_rate, ack_rate, redeliver_rate;
    uint64_t ready, unacked;
    double ready_rate, unacked_rate;
};
void mgmt_stats_totals(struct mgmt_totals *out);
/* What a vhost's queues hold and counted, summed (mgmt_stats_vhost adds
 * one vhost's to it): counts as of now, counters since each queue
 * began, rates as of the last sample. */
struct mgmt_vtotals {
    size_t exchanges, queues, consumers;
    uint64_t ready, unacked;
    uint64_t publish, deliver, ack, redeliver, expired;
    struct mgmt_qrates rates;
};
void mgmt_stats_vhost(struct vhost *vh, struct mgmt_vtotals *t);
/* Milliseconds since the statistics started (the broker's uptime). */
uint64_t mgmt_stats_uptime_ms(void);
/* A connection's octet rates (recv_oct, send_oct per second) as of the
 * last sample; 0 before its second. */
void mgmt_stats_conn(uint64_t conn_id, double *recv_rate, double *send_rate);
/* A channel's rates, as of the last sample, in struct chan_stats order:
 * publish, confirm, return_unroutable, drop_unroutable, deliver,
 * deliver_no_ack, get, get_no_ack, get_empty, redeliver, ack. */
#define MGMT_CH_COUNTERS 11
void mgmt_stats_channel(uint64_t conn_id, uint16_t number,
                        double rate[MGMT_CH_COUNTERS]);
/* Every channel's counters, closed ones included (as of now), the
 * channels open and their consumers. */
void mgmt_stats_channels(struct chan_stats *sum, uint64_t *channels,
                         uint64_t *consumers);
/* The node-wide rates of the channels' counters, in that order. */
void mgmt_stats_channel_rates(double rate[MGMT_CH_COUNTERS]);
/* The queues as of the last sample (each referenced by the set, deleted
 * ones included: check queue_info's `deleted`), or NULL before one; a
 * new reference to the set. */
struct mgmt_qset {
    uint32_t refs;
    size_t n;
    struct queue *q[];
};
struct mgmt_qset *mgmt_stats_qset(void);
void mgmt_qset_unref(struct mgmt_qset *s);
/* Churn since boot, as RabbitMQ's overview names it (connection_created,
 * connection_closed, channel_created, channel_closed, queue_declared,
 * queue_created, queue_deleted): counts as of now, rates per second as
 * of the last sample. */
#define MGMT_CHURN_N 7
extern const char *const mgmt_churn_names[MGMT_CHURN_N];
void mgmt_stats_churn(uint64_t count[MGMT_CHURN_N], double rate[MGMT_CHURN_N]);
/* RabbitMQ's message_stats of a channel: publish, confirm, get, ...,
 * each with its _details rate (a new object). */
json_t *mgmt_chan_message_stats(const struct chan_stats *k,
                                const double rate[MGMT_CH_COUNTERS]);

/* ---- Prometheus (mgmt_metrics.c, mgmt_prom.c) */

/* GET /metrics, /metrics/per-object, /metrics/detailed: the text
 * exposition with rabbitmq_prometheus's names (see mgmt_metrics.c). */
void mgmt_api_metrics(struct mgmt_req *r);
void mgmt_api_metrics_per_object(struct mgmt_req *r);
void mgmt_api_metrics_detailed(struct mgmt_req *r);

/* Node figures shared by /api/nodes and /metrics (mgmt_api_node.c). */
uint64_t mgmt_disk_free(void);
uint64_t mgmt_disk_free_limit(void);
size_t mgmt_fds_used(void);

/* ---- binding properties keys (mgmt_api_phash.c) */

/* erlang:phash2(Args, 1 bsl 32) of a binding's arguments as RabbitMQ
 * holds them: the list of {Key, Type, Value} triples of the table. */
uint32_t mgmt_phash2_args(struct bytes args);
/* RabbitMQ's properties_key of a binding: "~" for an empty key and no
 * arguments, else the quoted key, plus "~" and the base64url hash of the
 * arguments when there are some. Appends to out. */
void mgmt_props_key(struct bytes key, struct bytes args, struct buf *out);
/* RabbitMQ's quote_plus (as mochiweb_util), ~ as %7E. Appends. */
void mgmt_quote_plus(struct bytes s, struct buf *out);

/* ---- route handlers, by file */

typedef void mgmt_handler_fn(struct mgmt_req *r);

/* ---- a node of a cluster (mgmt_cluster.c) */

/* How a route spans the cluster (see mgmt_cluster.c). */
enum {
    MC_LEADER = 1,       /* to the leader of vhost args[0] */
    MC_LEADER_GET = 2,   /* the same, GET only */
    MC_MERGE = 4,        /* a list merged over the nodes */
    MC_VHOSTS = 8,       /* /api/vhosts, each from its leader */
    MC_FIND = 16,        /* a connection or channel: the node that has it */
    MC_OVERVIEW = 32,    /* totals summed over the nodes */
    MC_DEFS = 64,        /* a change of the definitions, written to etcd */
    MC_DEFINITIONS = 128 /* export and import */
};
/* Answers r as a node of a cluster when the route's `how` says so;
 * false when the route's handler (fn) answers as on a single node.
 * sort: the list's default sort (MC_MERGE, MC_VHOSTS). */
bool mgmt_cluster_route(struct mgmt_req *r, unsigned how,
                        const char *const *sort, mgmt_handler_fn *fn);

/* mgmt_api_node.c; mgmt_node_stats: the figures a clustered node
 * publishes for the others' /api/nodes (a new object) */
json_t *mgmt_node_stats(void);
mgmt_handler_fn mgmt_h_overview, mgmt_h_whoami, mgmt_h_cluster_name,
    mgmt_h_extensions, mgmt_h_nodes, mgmt_h_node, mgmt_h_aliveness,
    mgmt_h_health_alarms, mgmt_h_health_vhosts, mgmt_h_health_port,
    mgmt_h_health_protocol, mgmt_h_health_ok, mgmt_h_replication;
/* mgmt_api_admin.c */
mgmt_handler_fn mgmt_h_vhosts, mgmt_h_vhost, mgmt_h_users, mgmt_h_user,
    mgmt_h_users_without_perms, mgmt_h_user_perms, mgmt_h_vhost_perms,
    mgmt_h_permissions, mgmt_h_permission, mgmt_h_topic_permissions,
    mgmt_h_limits, mgmt_h_limit, mgmt_h_user_limits, mgmt_h_user_limit,
    mgmt_h_policies, mgmt_h_policy, mgmt_h_op_policies, mgmt_h_op_policy,
    mgmt_h_parameters, mgmt_h_parameter, mgmt_h_global_parameters,
    mgmt_h_global_parameter, mgmt_h_definitions;
/* The definitions document of an import (the body, or the web UI's
 * uploaded file); NULL after replying 400. */
json_t *mgmt_definitions_doc(struct mgmt_req *r);
/* Scopes an import to one vhost: drops what is not per vhost, names the
 * vhost in every object. */
void mgmt_definitions_scope(json_t *doc, const char *vhost);
/* mgmt_api_exchanges.c */
mgmt_handler_fn mgmt_h_exchanges, mgmt_h_exchange;
/* mgmt_api_bindings.c */
mgmt_handler_fn mgmt_h_bindings, mgmt_h_exchange_bindings,
    mgmt_h_queue_bindings, mgmt_h_bindings_between, mgmt_h_binding;
/* mgmt_api_queues.c, mgmt_api_queue_list.c */
mgmt_handler_fn mgmt_h_queue, mgmt_h_queue_contents, mgmt_h_consumers,
    mgmt_h_queues;
/* mgmt_api_messages.c */
mgmt_handler_fn mgmt_h_publish, mgmt_h_queue_get;
/* mgmt_api_conns.c */
mgmt_handler_fn mgmt_h_connections, mgmt_h_connection,
    mgmt_h_connection_channels, mgmt_h_vhost_connections, mgmt_h_channels,
    mgmt_h_channel, mgmt_h_vhost_channels;

#endif
