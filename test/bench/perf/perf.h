/*
 * perf.h: warren-perf, the bundled AMQP 0-9-1 load generator.
 *
 * warren-perf drives a broker (Warren or RabbitMQ) the way RabbitMQ's
 * PerfTest does, checks every message it gets back, and reports rates,
 * latencies, its own CPU and (given the broker's pid) the broker's CPU and
 * memory. It is built on the project's own codec (amqp/frame.h and the
 * generated method codec) and links nothing of the broker itself.
 *
 * Pieces, one file each:
 *   wq.c      write queue: small frames in one buffer plus borrowed
 *             "external" slices (message padding), flushed with writev
 *   pconn.c   client connection: connect, SASL PLAIN handshake,
 *             synchronous RPCs for setup, non-blocking read/parse/write
 *   pmsg.c    publish frame templates
 * kit.h's, shared with warren-everyday (test/bench/everyday):
 *   pmsg_body.c  the message body format and its check
 *   track.c   per (producer, queue) sequence tracking: lost, duplicated,
 *             out of order
 *   hist.c    log-linear latency histograms
 *   sysstat.c CPU and RSS of this process and of the broker, per thread
 *             too (/proc)
 * and warren-perf's own again:
 *   topo.c    exchanges, queues and bindings a run needs
 *   run.c     throughput, latency and backlog runs: the main thread's
 *             phases, live lines, draining, the final checks (run.h holds
 *             what it shares with the two below)
 *   producer.c  a publishing connection's thread: batched publishes, one
 *             writev per batch, the confirm window, the fixed rate
 *   consumer.c  a consuming connection's thread: big reads, every frame
 *             handled before the next read, body checks, batched acks
 *   admin.c   connections and queues runs
 *   report.c  live lines and the JSON summary
 *   warren_perf.c  options and main
 *
 * Threads: one per producer or consumer connection, each with its own poll
 * loop on one non-blocking socket; the main thread coordinates and prints.
 * Counters a thread owns and the main thread reads are _Atomic with relaxed
 * single-writer updates (ctr_add), so reading them costs the writer
 * nothing.
 */
#ifndef WARREN_PERF_H
#define WARREN_PERF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/base.h"
#include "amqp/frame.h"
#include "test/bench/perf/kit.h"

/* ---- options */

enum perf_mode {
    MODE_THROUGHPUT,
    MODE_LATENCY,
    MODE_CONNECTIONS,
    MODE_QUEUES,
    MODE_BACKLOG
};

enum perf_xtype { XT_DIRECT, XT_FANOUT, XT_TOPIC, XT_HEADERS };

struct perf_opts {
    enum perf_mode mode;
    /* target */
    char host[256];
    char port[16];
    char user[256];
    char pass[256];
    char vhost[256];
    /* topology */
    int producers;
    int consumers;
    int queues;
    enum perf_xtype xtype;
    int topic_bindings; /* 0: one binding per queue */
    char exchange[256]; /* empty: "<prefix>.<type>" */
    char queue_prefix[200];
    bool durable_queues;
    bool predeclared; /* exchange, queues and bindings exist already */
    /* messages */
    size_t size; /* body bytes; at least PMSG_HDR_SIZE */
    bool persistent;
    uint32_t confirm;     /* publisher confirm window; 0 = no confirms */
    uint32_t multi_ack;   /* manual ack every N (multiple); 0 = auto-ack */
    uint16_t prefetch;    /* basic.qos prefetch-count; 0 = none */
    double rate;          /* per producer, msg/s; 0 = as fast as possible */
    double duration;      /* seconds of publishing */
    double drain_timeout; /* seconds without progress that end draining */
    /* consumers' x-stream-offset (stream queues), or NULL */
    const char *stream_offset;
    /* connections, queues, backlog */
    long count;
    double hold;
    int threads;
    bool keep; /* queues mode: do not delete the queues */
    /* reporting */
    const char *json_path; /* NULL, a file, or "-" for stdout */
    pid_t broker_pid;      /* 0: unknown */
    bool quiet;
};

/* Name of a mode or exchange type, for reports. */
const char *perf_mode_name(enum perf_mode m);
const char *perf_xtype_name(enum perf_xtype t);

/* ---- wq: a write queue of owned bytes and borrowed slices */

struct wseg {
    const uint8_t *ext; /* NULL: bytes at b.data + off */
    size_t off;
    size_t len;
};

/*
 * Writers append frames to `b` (buf_put_*, frame_put_*) and then call
 * wq_commit(); wq_put_ext() queues a borrowed slice that must stay valid
 * until written. Invariant: the segments, in order, are exactly the bytes
 * not yet written; `pending` is their total.
 */
struct wq {
    struct buf b;
    size_t committed; /* b.len at the last commit */
    struct wseg *seg;
    int nseg;
    int cap;
    int head;         /* first segment not fully written */
    size_t head_done; /* bytes of seg[head] already written */
    size_t pending;
};

void wq_init(struct wq *q);
void wq_fini(struct wq *q);
/* Makes the bytes appended to q->b since the last commit part of the
 * queue. */
void wq_commit(struct wq *q);
/* Commits, then queues n borrowed bytes at p. */
void wq_put_ext(struct wq *q, const void *p, size_t n);
/*
 * Writes as much as the socket takes (writev, at most IOV_MAX segments a
 * call, looping while it accepts everything). Returns WR_OK when the queue
 * is empty, WR_AGAIN when the socket is full, WR_ERR with errno set.
 */
int wq_write(struct wq *q, int fd);

/* ---- pconn: one client connection */

struct perf_target {
    const char *host;
    const char *port;
    const char *user;
    const char *pass;
    const char *vhost;
};

struct pconn {
    int fd;
    uint8_t *in; /* input buffer: bytes [in_off, in_len) not yet parsed */
    size_t in_off;
    size_t in_len;
    size_t in_cap;
    struct wq out;
    struct frame_parser fp;
    uint32_t frame_max; /* negotiated; what body frames may carry + 8 */
    uint16_t channel_max;
    size_t in_min;   /* first input buffer size; 0 = 1 MiB (set before open);
                        it grows to fit a frame of up to frame_max */
    bool rx_drained; /* the last read got less than it had room for */
    bool blocked;    /* connection.blocked received, not yet unblocked */
    char err[512];
};

/* Default deadline for setup steps. */
#define PCONN_SETUP_TIMEOUT_NS (30ull * 1000000000ull)

void pconn_init(struct pconn *c);
/* Closes the socket (if open) and frees the buffers. */
void pconn_fini(struct pconn *c);
/*
 * Connects, runs the handshake (SASL PLAIN; tune-ok with the server's
 * channel_max and frame_max, heartbeat 0), opens the vhost and channel 1.
 * The socket is non-blocking with TCP_NODELAY. Returns WR_OK or WR_ERR
 * with c->err set.
 */
int pconn_open(struct pconn *c, const struct perf_target *t);
/* Opens another channel. Returns WR_OK or WR_ERR. */
int pconn_channel_open(struct pconn *c, uint16_t ch);
/*
 * Sends a synchronous method on channel ch and waits for reply_id on that
 * channel, handling nothing else: frames that arrive after the reply stay
 * buffered for the caller's loop. *reply (may be NULL) holds views into
 * the input buffer, valid until the next read. A channel.close or
 * connection.close instead of the reply is answered (close-ok) and turns
 * into WR_ERR with c->err = "405 RESOURCE_LOCKED - ..." style text.
 */
int pconn_rpc(struct pconn *c, uint16_t ch, const struct amqp_method *req,
              uint32_t reply_id, struct amqp_method *reply);
/* Queues a method frame (no write). */
void pconn_put_method(struct pconn *c, uint16_t ch,
                      const struct amqp_method *m);
/* Writes everything queued, waiting up to deadline_ns (perf_now_ns
 * clock). Returns WR_OK or WR_ERR. */
int pconn_flush_wait(struct pconn *c, uint64_t deadline_ns);
/*
 * One non-blocking read into the input buffer (moving unparsed bytes to
 * its front first). Returns bytes read (> 0), WR_AGAIN when the socket has
 * nothing, WR_ERR on error or EOF (c->err set).
 */
ssize_t pconn_read(struct pconn *c);
/*
 * Cuts the next complete frame out of the input buffer. Returns WR_OK,
 * WR_AGAIN when none is complete, WR_ERR on a framing error (c->err set).
 * The frame's payload is a view valid until the next pconn_read().
 */
int pconn_next_frame(struct pconn *c, struct frame *f);
/* Waits for events on the socket until deadline_ns; returns revents (0
 * on timeout). */
short pconn_wait(struct pconn *c, short events, uint64_t deadline_ns);
/*
 * Handles a frame no loop expects: connection.close / channel.close
 * (answered, then WR_ERR with c->err), connection.blocked/unblocked,
 * heartbeats (WR_OK). Anything else is WR_ERR "unexpected ...".
 */
int pconn_handle_other(struct pconn *c, const struct frame *f);
/*
 * Sends connection.close and waits (discarding other frames) for close-ok
 * until deadline_ns, then closes the socket. Returns WR_OK or WR_ERR.
 */
int pconn_close(struct pconn *c, uint64_t deadline_ns);
/* Formats "code TEXT" of a received close into c->err. */
void pconn_set_close_err(struct pconn *c, const char *what, uint16_t code,
                         struct bytes text);

/* ---- pmsg: message bodies and publish templates */

/*
 * One publish route: the basic.publish method frame and content header
 * frame for one (exchange, routing key, properties) combination, encoded
 * once, and the queue its messages reach (or PMSG_BROADCAST).
 */
struct pmsg_route {
    struct buf prefix;
    uint16_t target;
};

/*
 * A producer's message factory. Bodies are [hdr][pad]; pad is built once
 * and queued by reference when large, so a 64 KiB message costs the
 * producer no copy.
 */
struct pmsg_factory {
    uint16_t producer;
    size_t size;    /* body size */
    uint32_t chunk; /* body bytes per body frame */
    uint8_t *pad;   /* size - PMSG_HDR_SIZE bytes */
    uint64_t pad_hash;
    struct pmsg_route *routes;
    int nroutes;
};

void pmsg_factory_init(struct pmsg_factory *f, uint16_t producer, size_t size,
                       uint32_t frame_max);
void pmsg_factory_fini(struct pmsg_factory *f);
/*
 * Adds a route. headers_q >= 0 adds a "perf-q" = headers_q header (for
 * headers exchanges). Returns its index.
 */
int pmsg_add_route(struct pmsg_factory *f, const char *exchange,
                   const char *routing_key, bool persistent, int headers_q,
                   uint16_t target);
/* Appends the frames of one publish on channel 1 to q. */
void pmsg_put(struct pmsg_factory *f, struct wq *q, int route,
              const struct pmsg_hdr *h);

/* ---- topo: what a run declares */

/* The exchange a run publishes to. */
void topo_exchange_name(const struct perf_opts *o, char *out, size_t n);
void topo_queue_name(const struct perf_opts *o, int i, char *out, size_t n);
/* Routing key of topic route j: "perf.<j>.x". */
void topo_topic_key(int j, char *out, size_t n);
/*
 * Declares the exchange, the queues and the bindings on channel 1 of c
 * (nothing with --predeclared). Returns WR_OK or WR_ERR (c->err).
 */
int topo_setup(struct pconn *c, const struct perf_opts *o);
/* Deletes what topo_setup declared. Returns WR_OK or WR_ERR. */
int topo_teardown(struct pconn *c, const struct perf_opts *o);
/* Adds the producer's routes for the run's exchange type. */
void topo_add_routes(const struct perf_opts *o, struct pmsg_factory *f);

/* ---- runs */

struct perf_checks {
    uint64_t lost;
    uint64_t duplicated;
    uint64_t corrupted;
    uint64_t out_of_order;
    uint64_t redelivered;
    uint64_t unexpected; /* seqs never published, or a wrong queue */
};

struct perf_sample {
    double t;
    double publish_rate;
    double confirm_rate;
    double consume_rate;
    uint64_t backlog;
    double lat_p50_us;
    double lat_p99_us;
    double tool_cpu_pct;
    double broker_cpu_pct;
    long broker_rss_kb;
};

struct perf_decile {
    uint64_t at; /* messages at the end of the step */
    double rate; /* msg/s during the step */
    double broker_cpu_us_per_msg;
    double tool_cpu_us_per_msg;
};

struct perf_result {
    const struct perf_opts *o;
    double elapsed; /* seconds of publishing */
    double drain;   /* seconds from the end of publishing to drained */
    uint64_t published;
    uint64_t confirmed;
    uint64_t nacked;
    uint64_t returned;
    uint64_t consumed;     /* deliveries, all of them */
    uint64_t consumed_run; /* deliveries during the publishing window */
    uint64_t expected;
    uint64_t body_bytes; /* delivered body bytes */
    struct perf_lat lat;
    struct perf_lat confirm_lat;
    struct perf_checks checks;
    double tool_cpu;   /* seconds, whole run */
    double broker_cpu; /* seconds, whole run; -1 unknown */
    long broker_rss_kb_start;
    long broker_rss_kb_end;
    long broker_rss_kb_max;
    struct sysstat_thread *broker_threads; /* CPU per thread, whole run */
    int nbroker_threads;
    struct perf_sample *samples;
    int nsamples;
    int cap_samples;
    /* backlog mode */
    struct perf_decile pub_steps[10];
    struct perf_decile con_steps[10];
    int npub_steps;
    int ncon_steps;
    /* connections / queues modes */
    long count;
    double open_rate;    /* connections or declares per second */
    double close_rate;   /* closes or deletes per second */
    double mem_per_item; /* broker RSS bytes per connection or queue */
    /* failures that are not message checks */
    char errors[8][512];
    int nerrors;
};

void perf_result_init(struct perf_result *r, const struct perf_opts *o);
void perf_result_fini(struct perf_result *r);
void perf_result_error(struct perf_result *r, const char *fmt, ...)
    WR_PRINTF(2, 3);
/* True when every check passed and nothing failed. */
bool perf_result_ok(const struct perf_result *r);

/* Runs throughput, latency or backlog. Returns WR_OK or WR_ERR (setup
 * failed); check failures are in r. */
int run_messages(const struct perf_opts *o, struct perf_result *r);
int admin_connections(const struct perf_opts *o, struct perf_result *r);
int admin_queues(const struct perf_opts *o, struct perf_result *r);

/* Set by SIGINT: stop publishing and finish as if the time were up. */
extern atomic_bool perf_interrupted;

/* ---- report */

/* Where live lines go (stdout, or stderr when the JSON goes to stdout). */
extern FILE *report_out;
void report_sample(const struct perf_sample *s);
/* The human summary at the end. */
void report_summary(const struct perf_result *r);
/* Writes the JSON summary to o->json_path. Returns WR_OK or WR_ERR. */
int report_json(const struct perf_result *r);

#endif
