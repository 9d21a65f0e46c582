/*
 * test_store_util.h: helpers shared by the store's unit tests.
 *
 *   - struct tio: an I/O seam over the real syscalls that counts calls
 *     and bytes and injects failures (errno on the n-th pwrite or
 *     fdatasync, short writes, a gate that holds fdatasync until the test
 *     opens it, a disk of limited free space).
 *   - struct tloop: a simulated event loop: wake() signals a condition
 *     variable, tloop_wait_durable() flushes and polls until an LSN is
 *     durable, tloop_drain() runs until the store is quiet (everything
 *     written, compaction and deletions done). Events are recorded.
 *   - struct rset: what recovery reported.
 */
#ifndef WARREN_TEST_STORE_UTIL_H
#define WARREN_TEST_STORE_UTIL_H

#include "store/io.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>

struct tio {
    struct store_io io;
    _Atomic uint64_t pwrites, bytes_written;
    _Atomic uint64_t preads, bytes_read;
    _Atomic uint64_t fdatasyncs, fsyncs, opens, unlinks, renames;
    /* failure injection; 0 = off */
    _Atomic long fail_pwrite_at; /* 1 = the next pwrite fails */
    _Atomic int pwrite_errno;
    _Atomic long fail_fdatasync_at;
    _Atomic int fdatasync_errno;
    _Atomic long fail_open_at;
    _Atomic int open_errno; /* 0 = EIO */
    _Atomic long fail_fsync_at;
    _Atomic size_t short_write; /* cap every pwrite at this many bytes */
    /* a disk of this many free bytes (-1: no limit, the default): a
       write that grows a file past them fails with ENOSPC (after writing
       what fits; rewriting within a file takes no space), so does
       creating a file at 0, and unlinking a file gives its size back */
    _Atomic int64_t space;
    /* gate: while closed, fdatasync waits */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_closed;
    int gate_waiters;
};

void tio_init(struct tio *t);
void tio_gate(struct tio *t, bool closed);
/* Waits until a thread is blocked in the gate. */
void tio_wait_gated(struct tio *t);

struct moved_ev {
    uint64_t qid, id, pos;
};

struct tloop {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t wakes;
    uint64_t durable;
    int failed;
    char why[512];
    struct moved_ev *moved;
    size_t nmoved, capmoved;
};

void tloop_init(struct tloop *l);
void tloop_fini(struct tloop *l);
/* The wake callback for store_config. */
void tloop_wake(void *arg);
/* The events for store_poll. */
extern const struct store_events tloop_events;
/* Waits (<= ms) for a wake; returns whether one came. */
bool tloop_wait(struct tloop *l, uint64_t seen, int ms);
/* Flushes and polls until lsn is durable or the store failed. */
bool tloop_wait_durable(struct tloop *l, struct store *s, uint64_t lsn);
/* Flushes and polls until nothing is pending, compaction is idle and no
   deletion is in flight. */
void tloop_drain(struct tloop *l, struct store *s);

struct rmsg {
    uint64_t qid, id, pos;
    uint32_t body_len, meta_len;
};

struct rset {
    struct rmsg *v;
    size_t n, cap;
};

extern const struct store_recover_cb rset_cb;
void rset_free(struct rset *r);
/* The entry for (qid, id) or NULL. */
const struct rmsg *rset_find(const struct rset *r, uint64_t qid, uint64_t id);

/* A config with the test's dir and defaults (fsync always, 64 KiB). */
struct store_config tcfg(const char *dir, struct tio *io, struct tloop *l);
/* "<tmpdir>/<name>" in a static buffer (one per call site). */
const char *tpath(char *buf, size_t n, const char *name);

/* Appends one message; returns the LSN. */
uint64_t tappend(struct store *s, const uint64_t *qids, size_t nq,
                 const char *meta, const void *body, size_t blen, uint64_t *id,
                 uint64_t *pos);
/* Deterministic body for message number k (len bytes). */
void tbody(uint8_t *out, size_t len, uint64_t k);
/* Reads pos and checks meta and body. */
bool tcheck_msg(struct store *s, uint64_t pos, const char *meta,
                const void *body, size_t blen);

/* Files named *.seg in dir; their total size in *bytes. */
size_t tcount_segments(const char *dir, uint64_t *bytes);
/* The path of the highest-numbered segment. */
void tnewest_segment(const char *dir, char *out, size_t n);
/* Removes dir and the files in it (one level). */
void trm_dir(const char *dir);
/* Copies every regular file of src into dst (created). */
void tcopy_dir(const char *src, const char *dst);
uint64_t tfile_size(const char *path);
void ttruncate(const char *path, uint64_t size);
void tflip_byte(const char *path, uint64_t off);
void tappend_file(const char *path, const void *p, size_t n);

/* The segment numbers the manifest in force lists (its valid copy with
   the highest seq), up to max; returns how many, or -1 when neither
   copy is valid. *seq (if not NULL) gets its version. */
long tmanifest(const char *dir, uint32_t *nos, size_t max, uint64_t *seq);
/* Whether the segment file numbered no exists in dir. */
bool tsegment_exists(const char *dir, uint32_t no);

/* Offsets and lengths of every record of a segment file (by scanning
   lengths from the header on; the file must be intact). */
size_t tlist_records(const char *path, uint64_t *offs, uint32_t *lens,
                     uint8_t *types, size_t max);

#endif
