/*
 * kit.h: what warren-perf and warren-everyday share to measure a broker
 * the same way, whatever client library drives it: the message body
 * layout and its check, per-stream sequence tracking, latency histograms,
 * clocks, and the CPU and memory of the broker (whole process and per
 * thread, from /proc). Nothing here speaks AMQP.
 *
 *   pmsg_body.c  the body header (sequence, producer, target, send time,
 *                check) and the padding
 *   track.c      per (producer, queue) sequence tracking
 *   hist.c       log-linear latency histograms
 *   sysstat.c    clocks; CPU and RSS of this process, of the broker and of
 *                each of the broker's threads
 *   kit_cli.c    numbers from the command line, usage errors, the JSON of
 *                a latency summary and of a reply text
 *
 * Built as the static library warren_benchkit (test/bench/perf/perf.cmake).
 */
#ifndef WARREN_BENCH_KIT_H
#define WARREN_BENCH_KIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "base/base.h"

/* ---- clocks and single-writer counters */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t perf_now_ns(void);
/* The run's epoch (perf_now_ns at startup); message timestamps count from
 * it. */
extern uint64_t perf_epoch_ns;

typedef _Atomic uint64_t ctr_t;

/* Adds n to a counter only its owner thread writes: a plain load and store,
 * no locked instruction; other threads read it with ctr_get. */
static inline void
ctr_add(ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t
ctr_get(ctr_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- pmsg_body: the body every message carries */

/*
 * Body layout (big-endian), padded to the configured size:
 *
 *     0  u32 seq       per (producer, target) stream, from 0
 *     4  u16 producer
 *     6  u16 target    queue index, or PMSG_BROADCAST (fanout)
 *     8  u32 ts        send time, 100 ns ticks since perf_epoch_ns, mod 2^32
 *    12  u32 check     low 32 bits of XXH3(bytes 0..12, seed = XXH3(pad))
 *    16  pad           the producer's fixed padding
 *
 * A latency is (now_ticks - ts) mod 2^32, exact up to 429 s.
 */
#define PMSG_HDR_SIZE  16
#define PMSG_BROADCAST 0xffff
#define PMSG_TICK_NS   100

struct pmsg_hdr {
    uint32_t seq;
    uint16_t producer;
    uint16_t target;
    uint32_t ts;
    uint32_t check;
};

/* Ticks for a perf_now_ns() value. */
static inline uint32_t
pmsg_ticks(uint64_t now_ns)
{
    return (uint32_t)((now_ns - perf_epoch_ns) / PMSG_TICK_NS);
}

/* Fills the producer's padding deterministically. */
void pmsg_fill_pad(uint8_t *pad, size_t n, uint16_t producer);
/* Seed for the check: XXH3 of the padding (0 when there is none). */
uint64_t pmsg_pad_hash(const uint8_t *pad, size_t n);
/* Writes the 16-byte header, computing the check. */
void pmsg_put_hdr(uint8_t *out, const struct pmsg_hdr *h, uint64_t pad_hash);
/* Reads the header; returns true when its check matches pad_hash. */
bool pmsg_get_hdr(const uint8_t *in, uint64_t pad_hash, struct pmsg_hdr *h);

/* ---- track: sequence tracking for one (producer, queue) stream */

struct track {
    uint64_t *bits; /* seen bitmap, grown by doubling */
    size_t nwords;
    uint64_t top;         /* highest seq seen + 1 */
    uint64_t distinct;    /* distinct seqs seen */
    uint64_t dups;        /* seen again without the redelivered flag */
    uint64_t redelivered; /* deliveries flagged redelivered */
    uint64_t out_of_order;
};

void track_init(struct track *t);
void track_fini(struct track *t);
/* Records one delivery of seq. Returns true if it was new. */
bool track_see(struct track *t, uint32_t seq, bool redelivered);
/*
 * Merges src into dst (streams of the same queue seen by two consumers):
 * seqs both saw count as duplicates.
 */
void track_merge(struct track *dst, const struct track *src);
/* Seqs below `expected` never seen, and distinct seqs at or above it. */
uint64_t track_missing(const struct track *t, uint64_t expected);
uint64_t track_beyond(const struct track *t, uint64_t expected);

/* ---- hist: latency histogram, ~6% buckets, nanoseconds */

#define HIST_SUB     16
#define HIST_BUCKETS 1024

struct hist {
    ctr_t n[HIST_BUCKETS];
    ctr_t count;
    ctr_t sum;
    ctr_t max;
};

void hist_init(struct hist *h);
/* Owner thread only. */
void hist_record(struct hist *h, uint64_t v);
/* Adds src's counts to dst (any thread; src may be written meanwhile). */
void hist_add(struct hist *dst, struct hist *src);
/* dst = a - b, bucket by bucket (for per-second windows); max = a's. */
void hist_sub(struct hist *dst, struct hist *a, struct hist *b);
/* Value at quantile q (0..1): the upper bound of its bucket, or max. */
uint64_t hist_quantile(struct hist *h, double q);

/* ---- sysstat: CPU and memory */

/* CPU seconds (user + system) this process has used. */
double sysstat_self_cpu(void);
/* CPU seconds of another process (utime + stime), or -1. */
double sysstat_pid_cpu(pid_t pid);
/* VmRSS of a process in KiB, or -1. */
long sysstat_pid_rss_kb(pid_t pid);
/* The peak resident size of a process (VmHWM) in KiB, or -1; reset to
 * the current size by sysstat_pid_peak_reset (writes 5 to its
 * /proc/PID/clear_refs: needs the right to trace it), so that a run's
 * peak counts every moment, not only the samples taken once a second.
 * Returns false when the peak could not be reset. */
long sysstat_pid_peak_kb(pid_t pid);
bool sysstat_pid_peak_reset(pid_t pid);
/* Raises RLIMIT_NOFILE's soft limit to the hard limit. */
void sysstat_raise_nofile(void);

/*
 * One thread of a process and the CPU it used: from /proc/<pid>/task/
 * <tid>/stat (utime + stime) and .../comm. For Warren the thread whose
 * tid is the pid is the event loop; for RabbitMQ beam.smp names its
 * threads ("1_scheduler", "1_dirty_cpu_sch", "1_dirty_io_sche", "aux",
 * ...).
 */
struct sysstat_thread {
    int tid;
    char name[16];
    double cpu_s;
};

/*
 * Reads every thread of pid into a new array (*out, free() it); returns
 * how many, or -1 when the process cannot be read.
 */
int sysstat_threads(pid_t pid, struct sysstat_thread **out);
/*
 * The CPU each thread of `b` used since `a` (threads missing from `a`
 * count from zero; threads gone from `b` are dropped), sorted by CPU,
 * busiest first, into a new array *out. Returns its length.
 */
int sysstat_threads_delta(const struct sysstat_thread *a, int na,
                          const struct sysstat_thread *b, int nb,
                          struct sysstat_thread **out);
/* [{"tid", "name", "cpu_s"}, ...] of the n threads at t. */
json_t *sysstat_threads_json(const struct sysstat_thread *t, int n);

/* Quantiles of a histogram in microseconds. */
struct perf_lat {
    uint64_t count;
    double p50, p90, p99, p999, max, mean;
};

void perf_lat_of(struct hist *h, struct perf_lat *out);
/* {"count", "p50", "p90", "p99", "p99_9", "max", "mean"}. */
json_t *kit_lat_json(const struct perf_lat *l);

/* ---- kit_cli: the command line */

/* The program's name in usage errors (each tool's main sets it). */
extern const char *kit_prog;
/* "PROG: what\n(PROG --help lists the options)" on stderr, exit 2. */
WR_NORETURN void kit_usage_error(const char *fmt, ...) WR_PRINTF(1, 2);
/* A whole decimal number in [lo, hi], else a usage error naming what. */
long kit_num(const char *s, long lo, long hi, const char *what);
double kit_real(const char *s, double lo, double hi, const char *what);
/* A JSON string of text (at most max - 1 bytes) with every byte outside
 * printable ASCII as '?': reply texts from a broker need not be UTF-8. */
json_t *kit_ascii_json(const char *text, size_t max);

#endif
