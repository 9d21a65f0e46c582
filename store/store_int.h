/*
 * store/store_int.h: the store's internal structures, shared by the files
 * of store/ and by its unit tests; nothing outside store/ includes it.
 *
 * Ownership and threads (see store.h for the public contract):
 *   - struct seg, the segment array, the relocation map, the current
 *     batch and everything marked "loop" belong to the loop thread.
 *   - A batch handed over by store_flush() is immutable from then on;
 *     the store thread reads it, the loop may still read it (read path)
 *     and frees it in store_poll() once the thread counted it done.
 *   - Fields marked "mu" are shared under s->mu; "atomic" ones are C11
 *     atomics; "thread" ones belong to the store thread.
 *
 * Liveness bookkeeping (loop): every segment keeps, per message record
 * written there originally ("originals", in increasing id order), a
 * 2-byte index into the segment's dictionary of queue-id sets and a
 * 1-byte mask of the set's members still holding the message. While the
 * segment's original ids are (nearly) contiguous, slot i is id
 * first_id + i ("dense": 3 bytes per stored message, a few dead filler
 * slots for skipped ids); once more ids are skipped than stored (ids
 * taken by store_alloc_id for messages never logged), slots also keep
 * their id as a 32-bit offset from first_id ("sparse": 7 bytes per
 * stored message, binary search by id). A segment never spans 2^32 ids:
 * the writer seals it first. Copies written by compaction are found
 * through the relocation map (id -> segment, set, mask). Sets of more
 * than 8 queues keep their bits in a per-segment "wide" table instead of
 * the mask.
 *
 * Deletion rule: a segment may be deleted when no live message has its
 * current copy there and every segment it depends on ("deps") is already
 * deleted: the segments holding a message killed by one of its ACK/QDEL
 * records (or the killed message would come back at the next recovery),
 * and, for a segment holding compaction copies, the segments holding the
 * older records of those messages (or an older record would win).
 */
#ifndef WARREN_STORE_INT_H
#define WARREN_STORE_INT_H

#include "store/idmap.h"
#include "store/io.h"
#include "store/record.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uthash.h>

#define POS_MAKE(seg, off) ((uint64_t)(seg) << 32 | (uint32_t)(off))
#define POS_SEG(pos)       ((uint32_t)((pos) >> 32))
#define POS_OFF(pos)       ((uint32_t)(pos))

#define SEG_PATH_MAX       4096
#define SET_NARROW_MAX     8      /* sets up to this size use the mask */
#define SEG_MAX_SETS       65535u /* u16 set index; roll over when full */
#define UNLINK_LEVEL       UINT32_MAX
#define COMPACT_JOB_IDS    4096
#define COMPACT_JOB_BYTES  (4u << 20)
/* Ids stay below 2^52: queues keep them in 52 bits (vhost/queue.h,
   QE_ID_MASK). At 10 million messages a second that lasts 14 years. */
#define STORE_MAX_ID ((1ULL << 52) - 1)

/* A set of queue ids, sorted and unique. */
struct qset {
    UT_hash_handle hh; /* head segment only: lookup by content */
    uint64_t key;      /* XXH3 of the ids */
    uint32_t idx;
    uint32_t n;
    uint64_t qids[];
};

/* Live bits of one message whose set has more than 8 queues. */
struct wide {
    UT_hash_handle hh;
    uint64_t id;
    uint32_t nlive;
    uint64_t bits[];
};

/* A segment file as the loop knows it. */
struct seg {
    uint32_t no;
    uint64_t salt;
    uint64_t size;     /* bytes, including what is not yet written */
    uint64_t first_id; /* id of slot 0 (before any: a lower bound) */
    uint32_t n;        /* slots */
    uint32_t cap;
    uint32_t holes; /* dense: filler slots for skipped ids */
    uint16_t *qs;   /* per slot: set index */
    uint8_t *mask;  /* per slot: live bits (or 1 = see wide) */
    uint32_t *ioff; /* sparse: per slot, id - first_id; NULL = dense */
    struct qset **sets;
    uint32_t nsets;
    uint32_t capsets;
    struct qset *set_hash; /* head only */
    struct wide *wide;
    uint64_t live_pairs; /* live (queue, message) pairs held here */
    uint32_t live_msgs;  /* MSG records here with a live queue */
    uint32_t nrecs;      /* MSG records here */
    uint32_t nwritten;   /* records other than BATCH markers */
    uint32_t *deps;      /* sorted segment numbers */
    uint32_t ndeps;
    uint32_t capdeps;
    int rfd; /* loop's read fd, -1 until needed */
    int plan_level;
    bool sealed;
    bool unlinking;
    bool nocompact;
    struct rec_sumb *sum; /* head only: summary being built */
};

/* Relocation map value: where compaction put a message. */
struct reloc {
    uint32_t seg;
    uint32_t prev; /* segment of the copy it replaced */
    uint16_t set;
    uint8_t mask;
};

/* A located message: its current copy. Valid until the next change. */
struct mref {
    struct seg *g;
    uint64_t id;
    uint8_t *mask;
    uint16_t set;
    struct reloc *rl; /* non-NULL for a compaction copy */
};

/* Bytes for one segment of one write unit. */
struct chunk {
    uint32_t seg;
    uint32_t off; /* file offset of data[0] */
    uint64_t salt;
    uint32_t marker; /* offset in data of the BATCH record */
    uint32_t nrecs;
    bool create;       /* data starts with the segment header at offset 0 */
    uint64_t first_id; /* create: the new segment's header next_id */
    bool seal;         /* data ends with SUMMARY + SEAL */
    struct buf data;
};

struct batch {
    struct batch *next; /* mu: FIFO of handed-over batches */
    uint64_t lsn_hi;
    uint64_t bytes;
    struct chunk *ch;
    size_t nch;
    size_t capch;
    uint32_t *unl; /* segment numbers; UNLINK_LEVEL closes a level */
    size_t nunl;
    size_t capunl;
    uint64_t id_hi; /* next message id when handed over */
    bool final;     /* store_close: sync, then the thread exits */
    bool moves;     /* holds compaction copies */
    bool unl_done;  /* thread: its deletions ran early (disk full) */
};

/* Compaction read request (loop -> thread) and its answer. */
struct cjob {
    uint32_t seg;
    uint64_t salt;
    uint64_t *ids;
    size_t nids;
};

struct cres {
    uint32_t seg;
    struct buf recs; /* verified MSG records, back to back */
    size_t ndone;    /* leading ids of the job handled */
    uint64_t *bad;   /* ids that could not be read */
    size_t nbad;
    bool failed; /* summary unreadable: nothing was read */
};

struct pend_ack {
    UT_hash_handle hh;
    uint64_t qid;
    uint64_t *ids;
    size_t n;
    size_t cap;
};

struct store {
    /* immutable after open */
    char *dir;
    int dirfd;
    enum store_fsync fsync;
    uint32_t interval_ms;
    uint64_t seg_size;
    uint64_t compact_rate;
    const struct store_io *io;
    void (*wake)(void *arg);
    void *wake_arg;

    /* loop */
    struct seg **segs; /* sorted by number; the last is the head */
    size_t nsegs;
    size_t capsegs;
    struct idmap reloc; /* id -> struct reloc */
    uint64_t next_id;
    uint64_t lsn;
    uint64_t handed_lsn;
    uint64_t unlinks_planned; /* segments marked unlinking since open */
    uint64_t rng;
    struct batch *cur;
    struct batch *spare;
    struct batch *infl_head; /* handed over, not yet freed */
    struct batch *infl_tail;
    size_t nreclaimed;
    struct pend_ack *acks;
    struct pend_ack **dirty;
    size_t ndirty;
    size_t capdirty;
    uint32_t *pdeps; /* deps of the pending acks */
    size_t npdeps;
    size_t cappdeps;
    struct buf scratch;
    /* the last block read_file_rec read from a segment file, [off, off +
       data.len) of segment segno (salt: that file, not a later one of the
       same number): a snapshot reads records in position order, dozens
       of small ones to a block (loop thread) */
    struct {
        uint32_t segno, off;
        uint64_t salt;
        struct buf data;
    } rblock;
    struct buf *tap; /* replica.c: store_tap's output, or NULL */
    struct hot *hot; /* hot.c: the live pairs (store_config.hot_index) */
    uint64_t *qtmp;  /* sorted qids of the message being appended */
    size_t capqtmp;
    uint64_t durable_seen;
    bool failed_seen;
    bool maint_dirty;
    bool closing;
    uint64_t moved_msgs;
    uint64_t dead_roll_ms;
    uint64_t cand_ms; /* last compaction candidate scan */
    int lockfd;
    struct {
        uint32_t seg;
        uint64_t *ids;
        size_t nids;
        size_t next;
        bool active;
        bool job_out;
    } cp;

    /* The manifest in force (manifest.c): the loop's during store_open,
       the store thread's from journal_start on. */
    struct {
        struct mf_entry *v;
        size_t n;
        size_t cap;
        uint64_t seq;
    } mf;
    bool mf_stale; /* open: the other copy was damaged (maybe newer) */

    /* mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct batch *q_next; /* next batch for the thread */
    size_t ndone;
    struct cjob *job;
    struct cres *res;
    uint32_t *unlinked;
    size_t nunlinked;
    size_t capunlinked;
    uint32_t *unl_failed;
    size_t nunl_failed;
    size_t capunl_failed;
    char err[768];

    /* atomic */
    _Atomic uint64_t durable_lsn;
    _Atomic uint64_t durable_next_id; /* id_hi of the last durable batch */
    _Atomic bool failed;
    _Atomic bool nospace;  /* a write waits for disk space (journal.c) */
    _Atomic bool stopping; /* store_close: give up waiting for space */
    _Atomic uint64_t bytes_written;
    _Atomic uint64_t fsyncs;
    _Atomic uint64_t records_written;
    _Atomic uint64_t pending_bytes;

    /* thread */
    pthread_t thr;
    bool thr_started;
    int wfd;
    uint32_t wseg;
    bool unsynced; /* written since the last fdatasync */
    bool mf_dirty; /* the manifest on disk lags s->mf: write it first */
    struct {       /* progress in the batch being written */
        size_t chunk;
        bool created;
        bool listed;
    } wb;
    uint64_t retry_ms; /* disk full: when to try the batch again */
    char space_why[SEG_PATH_MAX + 128];
    uint64_t last_sync_ms;
    uint64_t compact_next_ms;
    uint64_t tick_due_ms; /* mu: idle wake-up, 0 = none */
    struct {
        uint32_t seg;
        int fd;
        struct buf raw;
        struct rec_sum sum;
        bool valid;
    } csum;
};

static inline struct seg *
store_head(const struct store *s)
{
    return s->segs[s->nsegs - 1];
}

/* ---- hot.c: the hot index (store.h), loop thread */

struct hot;
struct hot *hot_new(void);
void hot_free(struct hot *h);
/* Message id at pos entered the queues qids (n of them). */
void hot_add(struct hot *h, const uint64_t *qids, uint32_t n, uint64_t id,
             uint64_t pos, uint32_t meta_len, uint32_t body_len);
/* The pair left (no-op when it is not there). */
void hot_ack(struct hot *h, uint64_t qid, uint64_t id);
/* Every pair of qid left. */
void hot_qdel(struct hot *h, uint64_t qid);
/* Compaction moved the pair's record to pos. */
void hot_move(struct hot *h, uint64_t qid, uint64_t id, uint64_t pos);
uint64_t hot_pairs(const struct hot *h);
/* Every live pair to cb, queue by queue, each in increasing id order. */
void hot_report(const struct hot *h, const struct store_recover_cb *cb,
                void *ctx);

/* ---- segment.c: struct seg, sets, originals, deps */

struct seg *seg_new(uint32_t no, uint64_t salt, uint64_t first_id, bool head);
void seg_free(struct seg *g, const struct store_io *io);
void seg_path(char *out, size_t n, const char *dir, uint32_t no);
/* Whether name is a segment file's name (16 digits, ".seg"); sets *no. */
bool seg_parse_name(const char *name, uint32_t *no);
/* Head: the index of this set (sorted, unique qids), adding it if new.
   Returns -1 when the dictionary is full. */
int seg_set_lookup(struct seg *g, const uint64_t *qids, uint32_t n);
/* Recovery: appends a set to the dictionary. */
void seg_set_append(struct seg *g, const uint8_t *qids_be, uint32_t n);
/* Records an original message id (greater than any before in g, less
   than first_id + 2^32 once g has one) with its live bits. */
void seg_add_original(struct seg *g, uint64_t id, uint16_t set, uint32_t n,
                      uint8_t mask);
/* The slot of original id in g, or -1. */
int64_t seg_slot(const struct seg *g, uint64_t id);

static inline uint64_t
seg_slot_id(const struct seg *g, uint32_t i)
{
    return g->first_id + (g->ioff ? g->ioff[i] : i);
}
void seg_dep_add(struct seg *g, uint32_t no);
/* Loop: the segment numbered no, or NULL. */
struct seg *seg_find(const struct store *s, uint32_t no);
/* Loop: the segment holding the original record of id (and its slot in
 *slot), or NULL. */
struct seg *seg_find_by_id(const struct store *s, uint64_t id, uint32_t *slot);
/* The wide entry of id in g (creating it with all n bits set). */
struct wide *seg_wide(struct seg *g, uint64_t id, uint32_t n, bool create);
void seg_wide_del(struct seg *g, struct wide *w);
/* The live bits value for a set of n queues, all live. */
uint8_t seg_full_mask(uint32_t n);
/* Drops the per-message arrays of a dead segment. */
void seg_release_arrays(struct seg *g);

/* ---- live.c: locating messages, killing (queue, message) pairs */

bool live_find(struct store *s, uint64_t id, struct mref *r);
/* The index of qid in the message's set, or -1. */
int live_index(const struct mref *r, uint64_t qid);
bool live_test(const struct mref *r, int j);
uint32_t live_count(const struct mref *r);
/* Clears bit j; updates the counts; may delete r->rl. */
void live_kill(struct store *s, struct mref *r, int j);
/* Kills every live message of qid; adds the segments holding any of its
   records to *deps (sorted unique). */
void live_queue_delete(struct store *s, uint64_t qid, uint32_t **deps,
                       size_t *ndeps, size_t *capdeps);
void deps_insert(uint32_t **v, size_t *n, size_t *cap, uint32_t no);

/* ---- journal.c: batches, the store thread, events */

/* Reserves size bytes for a record in the head (rolling over first when
   the record, the summary growth sum_extra and the trailer would not
   fit). Returns where to encode it; sets *pos. */
uint8_t *journal_reserve(struct store *s, size_t size, size_t sum_extra,
                         uint64_t *pos);
/* Seals the head and starts the next segment. */
void journal_roll(struct store *s);
/* Seals the head without starting another (store_close). */
void journal_seal_head(struct store *s);
/* Appends an ACK or QDEL record with this payload; returns its segment. */
uint32_t journal_put_tomb(struct store *s, uint8_t type, struct bytes pl);
/* Appends a MSG record (qids sorted, unique) at the head; sets *pos and
   the set index in the returned head segment. Counts nothing live. */
/* replica.c: copies one record's payload to s->tap (when tapping). */
void replica_tap(struct store *s, uint8_t type, const uint8_t *payload,
                 size_t len);
uint64_t store_append_msg_id(struct store *s, const struct store_msg_in *m,
                             uint64_t nid, uint64_t *pos);
struct seg *journal_put_msg(struct store *s, uint64_t id, uint8_t flags,
                            const uint64_t *qids, uint32_t n, struct bytes meta,
                            struct bytes body, uint64_t *pos, uint16_t *set);
/* Encodes the pending acks as ACK records. */
void journal_encode_acks(struct store *s);
/* Hands the current batch over (final: last one, thread exits). */
void journal_handoff(struct store *s, bool final);
/* Frees the batches the thread finished. */
void journal_reclaim(struct store *s);
/* Finds the bytes of (seg, off) in a batch not yet freed. */
bool journal_find(const struct store *s, uint32_t seg, uint32_t off,
                  const uint8_t **p, size_t *avail, uint64_t *salt);
int journal_start(struct store *s, char *err, size_t errlen);
void journal_join(struct store *s);
/* Thread: fdatasync of the head if it has unsynced writes; false (and
   failed) on error. */
bool journal_sync(struct store *s);
bool journal_sync_dir(struct store *s);
/* Thread: records a sticky failure. */
void journal_fail(struct store *s, const char *fmt, ...) WR_PRINTF(2, 3);
void journal_wake(struct store *s);
struct batch *journal_batch_new(void);
void journal_batch_free(struct batch *b);

/* ---- compact.c: deletion planning, compaction (both threads) */

void compact_maintain(struct store *s);
/* Whether a compaction would start if the loop looked now (tests). */
bool compact_wanted(const struct store *s);
void compact_apply(struct store *s, struct cres *r,
                   const struct store_events *ev, void *ctx);
void compact_unlinked(struct store *s, const uint32_t *nos, size_t n,
                      const uint32_t *failed, size_t nfailed);
/* Thread: */
void compact_run_job(struct store *s, const struct cjob *j, struct cres *r);
void compact_do_unlinks(struct store *s, const struct batch *b);
void compact_cache_drop(struct store *s);
void compact_job_free(struct cjob *j);
void compact_res_free(struct cres *r);

/* ---- recover.c */

int recover_run(struct store *s, const struct store_recover_cb *cb, void *ctx,
                bool repair, char *err, size_t errlen);
/* Reads a sealed segment's summary (two preads from the end). */
int recover_read_trailer(const struct store_io *io, int fd, uint64_t size,
                         uint64_t salt, struct buf *raw, struct rec_sum *sum,
                         uint64_t *next_id, const char **why);

/* ---- manifest.c */

enum mf_status {
    MF_OK,
    MF_NO_SPACE,     /* the write failed with ENOSPC/EDQUOT: nothing synced */
    MF_WRITE_FAILED, /* another write error */
    MF_SYNC_FAILED,  /* fdatasync failed: never retried */
};

bool manifest_is_file_name(const char *name);
/* Loads the copy in force into s->mf; *found is false when neither copy
   exists. WR_ERR (err filled) when copies exist but none is valid. */
int manifest_read(struct store *s, bool *found, char *err, size_t errlen);
bool manifest_has(const struct store *s, uint32_t no);
void manifest_add(struct store *s, uint32_t no, uint64_t first_id);
/* Returns whether no was listed, and its entry in *out (if not NULL). */
bool manifest_remove(struct store *s, uint32_t no, struct mf_entry *out);
/* Writes s->mf as the next version. */
enum mf_status manifest_write(struct store *s, char *err, size_t errlen);

/* ---- atomicfile.c */

int store__write_file_atomic_io(const struct store_io *io, const char *path,
                                const void *data, size_t len, char *err,
                                size_t errlen);

#endif
