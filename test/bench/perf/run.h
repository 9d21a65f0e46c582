/*
 * run.h: private to run.c, producer.c and consumer.c: the state one
 * message run shares between the main thread and the producer and
 * consumer threads.
 *
 * Ownership: struct run owns its producers and consumers; each thread owns
 * its struct (connection, buffers, trackers) and publishes progress only
 * through ctr_t counters and the atomic `done` and `failed` flags. The
 * main thread reads a thread's other fields only after joining it.
 */
#ifndef WARREN_PERF_RUN_H
#define WARREN_PERF_RUN_H

#include <xxhash.h>

#include "test/bench/perf/perf.h"

enum run_phase {
    PH_SETUP, /* threads connect and declare */
    PH_RUN,   /* producers publish */
    PH_STOP,  /* producers stop, flush, wait for confirms, close */
    PH_DONE   /* consumers ack what they hold and close */
};

struct producer {
    struct run *run;
    int id;
    pthread_t th;
    struct pconn c;
    struct pmsg_factory f;
    uint32_t *seq;  /* next seq per target: queues, then broadcast */
    uint64_t limit; /* messages to publish; 0 = until the time is up */
    uint64_t k;     /* messages built, picks the route */
    /* confirms: tags [low, next_tag) are unconfirmed */
    uint64_t next_tag;
    uint64_t low;
    uint64_t *ring_ts;
    uint8_t *ring_done;
    uint64_t ring_mask;
    /* basic.return content being skipped */
    uint64_t skip_body;
    bool skip_header;
    ctr_t published;
    ctr_t confirmed;
    ctr_t nacked;
    ctr_t returned;
    struct hist clat;
    atomic_bool ready;
    atomic_bool done;
    atomic_bool failed;
    uint64_t stop_ns; /* when publishing ended */
};

enum cons_state { CS_METHOD, CS_HEADER, CS_BODY };

struct consumer {
    struct run *run;
    int id;
    int queue;
    pthread_t th;
    struct pconn c;
    struct track *tr; /* one per producer */
    struct hist lat;
    ctr_t received; /* deliveries */
    ctr_t unique;   /* deliveries of a seq this consumer had not seen */
    ctr_t bytes;
    uint64_t corrupted;
    uint64_t unexpected;
    /* the delivery being assembled */
    enum cons_state st;
    uint64_t tag;
    bool redelivered;
    uint64_t body_size;
    uint64_t body_got;
    uint8_t head[PMSG_HDR_SIZE];
    size_t head_got;
    XXH3_state_t *xs;
    uint64_t now_ns; /* time of the read being handled */
    /* manual acks */
    uint64_t unacked;
    uint64_t ack_every;
    atomic_bool ready;
    atomic_bool done;
    atomic_bool failed;
};

struct run {
    const struct perf_opts *o;
    struct perf_target t;
    atomic_int phase;
    uint64_t t0;       /* publishing starts (perf_now_ns) */
    uint64_t deadline; /* publishing ends; UINT64_MAX in backlog mode */
    struct producer *prod;
    int nprod;
    struct consumer *cons;
    int ncons;
    bool cons_started;               /* consumer threads exist (to be joined) */
    struct sysstat_thread *threads0; /* the broker's threads at t0 */
    int nthreads0;
};

static inline int
run_phase(struct run *r)
{
    return atomic_load_explicit(&r->phase, memory_order_acquire);
}

/* Thread bodies. Each sets `ready` after its setup and `done` at the end,
 * and `failed` with c.err on any error. */
void *prod_main(void *arg);
void *cons_main(void *arg);
void prod_init(struct producer *p, struct run *run, int id, uint64_t limit);
void prod_fini(struct producer *p);
void cons_init(struct consumer *cs, struct run *run, int id);
void cons_fini(struct consumer *cs);

#endif
