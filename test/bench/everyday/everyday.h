/*
 * everyday.h: warren-everyday, a load generator that drives a broker the
 * way everyday clients do.
 *
 * warren-perf (test/bench/perf) pipelines publishes and batches its
 * writes, which is how a broker is pushed to its limit but not how most
 * applications talk to it. warren-everyday is built on rabbitmq-c
 * (Debian's librabbitmq), the client library many C programs use, and
 * does what a plain application does:
 *
 *   - one connection per thread, blocking sockets with TCP_NODELAY (set by
 *     rabbitmq-c itself);
 *   - one amqp_basic_publish() per message: three send() calls (method,
 *     content header, body), the first two with MSG_MORE, so one small
 *     TCP segment per message, no batching beyond that;
 *   - consumers read with amqp_consume_message() and answer with one
 *     amqp_basic_ack() per message, or one with multiple=true every N;
 *   - publisher confirms waited for one by one (--confirm 1: publish, wait
 *     for its basic.ack) or in a window (--confirm W: block only while W
 *     are unconfirmed), the way a synchronous client library allows.
 *
 * Messages carry the same body as warren-perf's (kit.h: sequence,
 * producer, target queue, send time, check), and consumers count lost,
 * duplicated, corrupted, out-of-order and unexpected messages the same
 * way, with the same shared code (test/bench/perf/kit.h). Rates, latency,
 * its own CPU and the broker's (process and per thread) are reported in
 * warren-perf's JSON shape, so test/bench/compare.py reads either tool.
 *
 * Pieces, one file each:
 *   econn.c    connections (rabbitmq-c), error texts, topology
 *   eprod.c    a publishing connection's thread: pacing, publish,
 *              confirms
 *   econs.c    a consuming connection's thread: consume, check, ack
 *   erun.c     the main thread: phases, per-second lines, rate steps
 *              (sweep), draining, the final checks
 *   ereport.c  live lines, the human summary and the JSON summary
 *   everyday.c options and main
 *
 * Threads: one per producer or consumer connection; the main thread
 * coordinates and prints. Counters a thread owns and the main thread
 * reads are kit.h's single-writer ctr_t; everything else of a thread is
 * read by the main thread only after joining it.
 */
#ifndef WARREN_EVERYDAY_H
#define WARREN_EVERYDAY_H

#include <amqp.h>
#include <pthread.h>

#include "test/bench/perf/kit.h"

/* ---- options */

enum ed_mode { ED_THROUGHPUT, ED_LATENCY, ED_SWEEP };

enum ed_xtype { ED_DIRECT, ED_FANOUT, ED_TOPIC };

#define ED_MAX_RATES 64

struct ed_opts {
    enum ed_mode mode;
    char host[256];
    int port;
    char user[128];
    char pass[128];
    char vhost[128];
    bool tls;           /* AMQPS (amqp_ssl_socket) */
    const char *cacert; /* --cacert: CAs to check the broker against */
    int producers;
    int consumers;
    int queues;
    enum ed_xtype xtype;
    int topic_bindings; /* 0: one binding per queue */
    char queue_prefix[200];
    bool durable_queues;
    bool persistent;
    size_t size;        /* body bytes; at least PMSG_HDR_SIZE */
    uint32_t confirm;   /* 0: none; 1: each waited for; W: window */
    uint32_t ack_every; /* 0: auto-ack; 1: per message; N: multiple */
    uint16_t prefetch;  /* basic.qos prefetch-count; 0: none */
    double rate;        /* per producer, msg/s; 0: as fast as possible */
    double duration;    /* seconds of publishing (throughput, latency) */
    double drain_timeout;
    /* sweep: aggregate rates, one step each, until the broker lags */
    double rates[ED_MAX_RATES];
    int nrates;
    double step;   /* seconds measured per step */
    double settle; /* seconds at a step's rate before measuring */
    double lag;    /* a step lags when it delivers < (1 - lag) x rate */
    const char *json_path;
    pid_t broker_pid;
    bool quiet;
};

const char *ed_mode_name(enum ed_mode m);
const char *ed_xtype_name(enum ed_xtype t);

/* ---- econn: connections and topology */

/*
 * One route a producer publishes on: exchange and routing key, and the
 * queue its messages reach (PMSG_BROADCAST for fanout).
 */
struct ed_route {
    amqp_bytes_t exchange;
    amqp_bytes_t key;
    uint16_t target;
};

/* Per run: every route, built once from the options (econn_routes). */
struct ed_routes {
    struct ed_route *r;
    int n;
    char exchange[256];
    char (*keys)[256];
};

/*
 * Opens a connection the way a rabbitmq-c application does: TCP socket
 * (rabbitmq-c sets TCP_NODELAY), amqp_login with SASL PLAIN, frame_max
 * 131072, no heartbeats, then channel 1. Returns the connection or NULL
 * with err set.
 */
amqp_connection_state_t econn_open(const struct ed_opts *o, char *err,
                                   size_t n);
/* Closes channel 1 and the connection (each when open), frees it. */
void econn_close(amqp_connection_state_t c);
/*
 * Describes a failed RPC reply as "what: 404 NOT_FOUND - ..." (a channel
 * or connection close), or the library's error text. Returns false when r
 * is a normal reply (err untouched).
 */
bool econn_failed(amqp_rpc_reply_t r, const char *what, char *err, size_t n);
/* Formats a connection.close or channel.close method as "code text". */
void econn_close_text(const amqp_method_t *m, char *out, size_t n);
/*
 * Declares the exchange, the queues (purged) and the bindings on channel
 * 1 of c: the same names and patterns as warren-perf's topo.c. Returns
 * true, or false with err set.
 */
bool econn_setup(amqp_connection_state_t c, const struct ed_opts *o, char *err,
                 size_t n);
/* Deletes what econn_setup declared. Returns true or false with err. */
bool econn_teardown(amqp_connection_state_t c, const struct ed_opts *o,
                    char *err, size_t n);
void econn_queue_name(const struct ed_opts *o, int i, char *out, size_t n);
void econn_routes_init(struct ed_routes *rs, const struct ed_opts *o);
void econn_routes_fini(struct ed_routes *rs);

/* ---- the state one run shares between its threads */

enum ed_phase {
    EP_SETUP, /* threads connect; consumers start consuming */
    EP_RUN,   /* producers publish */
    EP_STOP,  /* producers wait for their confirms and close */
    EP_DONE   /* consumers ack what they hold and close */
};

/* Pacing: producers read it before every publish; the main thread
 * changes it at each rate step (sweep). */
struct ed_pace {
    _Atomic uint64_t gen;      /* bumped when the two below change */
    _Atomic uint64_t start;    /* perf_now_ns() of the step's start */
    _Atomic uint64_t interval; /* ns between a producer's publishes; 0: no
                                  pause */
};

struct ed_producer {
    struct ed_run *run;
    int id;
    pthread_t th;
    amqp_connection_state_t c;
    uint8_t *body;
    uint64_t pad_hash;
    uint32_t *seq; /* next seq per target: queues, then broadcast */
    uint64_t k;    /* messages published; picks the route */
    /* pacing */
    uint64_t gen;
    uint64_t due;
    /* confirms: tags [low, next_tag) are unconfirmed */
    uint64_t next_tag;
    uint64_t low;
    uint64_t *ring_ts;
    uint8_t *ring_done;
    uint64_t ring_mask;
    ctr_t published;
    ctr_t confirmed;
    ctr_t nacked;
    struct hist clat;
    atomic_bool ready;
    atomic_bool done;
    atomic_bool failed;
    char err[512];
};

struct ed_consumer {
    struct ed_run *run;
    int id;
    int queue;
    pthread_t th;
    amqp_connection_state_t c;
    struct track *tr; /* one per producer */
    struct hist lat;
    ctr_t received; /* deliveries */
    ctr_t unique;   /* deliveries of a seq this consumer had not seen */
    ctr_t bytes;
    uint64_t corrupted;
    uint64_t unexpected;
    uint64_t ack_every;
    uint64_t unacked;
    uint64_t last_tag;
    atomic_bool ready;
    atomic_bool done;
    atomic_bool failed;
    char err[512];
};

struct ed_run {
    const struct ed_opts *o;
    struct ed_routes routes;
    atomic_int phase;
    struct ed_pace pace;
    struct ed_producer *prod;
    int nprod;
    struct ed_consumer *cons;
    int ncons;
};

static inline int
ed_phase(struct ed_run *run)
{
    return atomic_load_explicit(&run->phase, memory_order_acquire);
}

/* Thread bodies: each sets `ready` after its setup and `done` at the end,
 * and `failed` with err on any error. */
void *eprod_main(void *arg);
void eprod_init(struct ed_producer *p, struct ed_run *run, int id);
void eprod_fini(struct ed_producer *p);
void *econs_main(void *arg);
void econs_init(struct ed_consumer *cs, struct ed_run *run, int id);
void econs_fini(struct ed_consumer *cs);

/* ---- results */

struct ed_checks {
    uint64_t lost;
    uint64_t duplicated;
    uint64_t corrupted;
    uint64_t out_of_order;
    uint64_t redelivered;
    uint64_t unexpected;
};

/* One second of a run, or one rate step of a sweep. */
struct ed_sample {
    double t;           /* seconds since publishing began (end of window) */
    double seconds;     /* the window's length */
    double target_rate; /* sweep: the step's aggregate rate; else 0 */
    double publish_rate;
    double confirm_rate;
    double consume_rate;
    uint64_t backlog;
    struct perf_lat lat;
    double tool_cpu_pct;
    double broker_cpu_pct; /* -1: unknown */
    long broker_rss_kb;
    bool lagging; /* sweep: delivered less than the step asked */
    struct sysstat_thread *threads; /* sweep: broker CPU per thread */
    int nthreads;
};

struct ed_result {
    const struct ed_opts *o;
    double elapsed; /* seconds of publishing */
    double drain;   /* seconds from the end of publishing to drained */
    uint64_t published;
    uint64_t confirmed;
    uint64_t nacked;
    uint64_t consumed;     /* deliveries, all of them */
    uint64_t consumed_run; /* deliveries while publishing */
    uint64_t expected;
    struct perf_lat lat;
    struct perf_lat confirm_lat;
    struct ed_checks checks;
    double tool_cpu;   /* seconds, whole run */
    double broker_cpu; /* seconds, whole run; -1: unknown */
    long broker_rss_kb_start;
    long broker_rss_kb_end;
    long broker_rss_kb_max;
    struct sysstat_thread *threads; /* broker CPU per thread, whole run */
    int nthreads;
    struct ed_sample *samples; /* per second */
    int nsamples;
    int cap_samples;
    struct ed_sample steps[ED_MAX_RATES]; /* sweep */
    int nsteps;
    char errors[8][512];
    int nerrors;
};

void ed_result_init(struct ed_result *r, const struct ed_opts *o);
void ed_result_fini(struct ed_result *r);
void ed_result_error(struct ed_result *r, const char *fmt, ...) WR_PRINTF(2, 3);
/* True when every check passed and nothing failed. */
bool ed_result_ok(const struct ed_result *r);

/* Runs throughput, latency or sweep. Returns WR_OK, or WR_ERR when setup
 * failed; check failures are in r. */
int erun_messages(const struct ed_opts *o, struct ed_result *r);

/* Set by SIGINT: stop publishing and finish as if the time were up. */
extern atomic_bool ed_interrupted;

/* ---- ereport */

/* Where live lines go (stdout, or stderr when the JSON goes to stdout). */
extern FILE *ereport_out;
void ereport_sample(const struct ed_sample *s);
void ereport_step(const struct ed_sample *s, pid_t broker_pid);
void ereport_summary(const struct ed_result *r);
/* Writes the JSON summary to o->json_path. Returns WR_OK or WR_ERR. */
int ereport_json(const struct ed_result *r);

#endif
