/*
 * store: Warren's journaled persistent log, one per vhost.
 *
 * The store keeps opaque message metadata and bodies for 64-bit queue
 * ids in a directory of append-only segment files, and tells the vhost
 * after a restart which messages are still live in which queue. It knows
 * nothing of AMQP: "meta" is whatever the vhost wants back (exchange,
 * routing key, raw content header), "body" is the payload.
 *
 * Threads. Two threads touch a store:
 *   - the loop thread (the libev loop that owns the vhost) calls every
 *     function below except store_durable_lsn(), which any thread may
 *     call. The append functions only encode into an in-memory batch:
 *     no syscall, no lock. store_flush() hands the batch over with one
 *     mutex round trip, unless the previous batch is still being
 *     written: then the current batch keeps growing until the store
 *     thread is free (group commit: one fdatasync covers everything the
 *     loop appended meanwhile). store_read_msg() may pread() (usually
 *     page cache) and store_open() does the whole recovery; nothing else
 *     waits on the disk.
 *   - the store thread, started by store_open(), writes each batch with
 *     one pwrite per segment touched, syncs it as the fsync policy says,
 *     publishes the new durable LSN, deletes dead segments, reads records
 *     for compaction, and then calls cfg->wake(cfg->wake_arg) (wire it to
 *     ev_async_send; it also fires once a second after traffic stops).
 *     The loop answers with store_poll() and, as every iteration,
 *     store_flush().
 *
 * Ids. store_append_msg() assigns each message an id, strictly
 * increasing per store and across restarts. A message stays in a queue's
 * durable state until store_append_ack(qid, id) or a later
 * store_append_queue_delete(qid). Positions ("pos") name where a record
 * lives (segment number << 32 | byte offset); they change only when
 * compaction moves a message, which store_poll() reports through
 * events->moved before the old copy can disappear.
 *
 * LSNs. Every append returns a log sequence number, a counter local to
 * this process (LSN 1 is the recovered state, always durable). A record
 * is safe per the fsync policy once store_durable_lsn() >= its LSN.
 *
 * Failures. A failed write, fsync or segment creation puts the store in
 * a sticky failed state: durable LSN stops, every later append returns 0,
 * store_error() and events->failed (once) say what failed (file, offset,
 * errno text). The store never retries an fsync that failed.
 *
 * Disk full. A write or segment creation that fails for lack of space
 * (ENOSPC, EDQUOT) is not a failure: none of its batch became durable,
 * and the store thread writes the same bytes at the same offsets again
 * every second until they fit. Meanwhile store_no_space() is true and:
 * store_append_msg() refuses new messages (returns 0, store_error()
 * stays NULL), so a refused message is in no queue; the records appended
 * before wait, neither durable nor lost (their confirms wait); acks and
 * queue deletes are still taken, and segments they free are deleted
 * without waiting for the delayed batch, which is how consumers draining
 * queues give space back; compaction pauses. When the batch is written
 * the state clears (logged both ways). store_close() then tries once
 * more and gives the unwritten records up (they were never durable). A
 * failed fsync is never a full disk: it fails the store (fsyncgate).
 * store_open() on a full disk does not fail either: when the newest
 * segment cannot be sealed or the next one created, it goes on writing
 * the newest segment (unsealing it if needed).
 *
 * Corruption. Every record carries a checksum. store_open() checks the
 * segment headers and summaries, every record of a segment without a
 * valid summary (the newest, after a crash), and the record of every
 * live message in the others; damage there refuses the open with the
 * file and offset. A manifest (MANIFEST.0/.1, see store/record.c) lists
 * the segment files that must exist; one that is missing refuses the
 * open with its name and the message ids it held (repair opens without
 * it and logs the loss). Acked history in sealed segments is not read at open:
 * damage to a record no queue needs shows only if compaction or a read
 * touches it (store_read_msg fails and logs file and offset), or to an
 * open with repair, which checks every record. See store/record.c for
 * the format.
 *
 * One process at a time: store_open() takes an exclusive flock on
 * <dir>/LOCK (released by the kernel when the process dies).
 */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include "base/base.h"

/*
 * What each policy promises, exactly:
 *
 * STORE_FSYNC_ALWAYS: the durable LSN passes a record only after the
 *   batch holding it was written and fdatasync() returned success (and,
 *   for a new segment file, the directory was fsync'ed). A record at or
 *   below the durable LSN survives a process kill, a kernel crash and a
 *   power loss (on hardware that honours flushes). Many records share one
 *   fdatasync: everything appended while the previous one ran.
 *
 * STORE_FSYNC_INTERVAL: the durable LSN passes a record once its batch
 *   was written to the kernel (write() returned); the store thread calls
 *   fdatasync at most every fsync_interval_ms while there is unsynced
 *   data. A record at or below the durable LSN survives a process kill
 *   (SIGKILL, crash of Warren); a kernel crash or power loss may lose up
 *   to the last interval of records, and recovery may then ask for
 *   --repair if the kernel wrote pages out of order.
 *
 * STORE_FSYNC_NEVER: like INTERVAL without the periodic fdatasync: the
 *   kernel writes back when it wants (typically within 30 s). Survives a
 *   process kill; a kernel crash or power loss may lose any amount of
 *   recent data.
 *
 * Whatever the policy, the store syncs a segment before sealing it and
 * before starting the next one, syncs before deleting a segment, and
 * syncs everything in store_close().
 */
enum store_fsync {
    STORE_FSYNC_ALWAYS,
    STORE_FSYNC_INTERVAL,
    STORE_FSYNC_NEVER,
};

struct store_io; /* store/io.h: the I/O seam; NULL = real syscalls */

/* Default and bounds of store_config.segment_size. */
#define STORE_SEGMENT_SIZE_DEFAULT (64u << 20)
#define STORE_SEGMENT_SIZE_MIN     4096u
#define STORE_SEGMENT_SIZE_MAX     (1u << 31)
/* Largest meta + body accepted by store_append_msg() (a record of it with
   STORE_MAX_QIDS queue ids still fits the 1 GiB record limit). */
#define STORE_MAX_MSG ((1u << 30) - (1u << 20))
/* Most queue ids one message may carry. */
#define STORE_MAX_QIDS 65535u

struct store_config {
    const char *dir; /* created (with parents) if missing */
    enum store_fsync fsync;
    uint32_t fsync_interval_ms; /* for STORE_FSYNC_INTERVAL; 0 = 200 ms */
    uint64_t segment_size;      /* 0 = STORE_SEGMENT_SIZE_DEFAULT */
    /*
     * Open a damaged log: scan every segment fully (ignoring summaries),
     * drop damaged records and log each drop (file, offset, what was
     * lost), keep every intact record, reseal the damaged segments.
     */
    bool repair;
    /* Called on the store thread after a batch became durable, a failure,
       finished compaction reads and deleted segments. May be NULL. */
    void (*wake)(void *arg);
    void *wake_arg;
    const struct store_io *io;
    /* Compaction read budget in bytes per second; 0 = 64 MiB/s. */
    uint64_t compact_rate;
    /* Keep the hot index (see "Hot index" below): a mirror's copy. */
    bool hot_index;
};

struct store_msg_in {
    const uint64_t *qids; /* durable queues it entered; duplicates ok */
    size_t nqids;         /* 1 ..= STORE_MAX_QIDS */
    struct bytes meta;    /* opaque to the store */
    struct bytes body;
    /* A transient message paged out under memory pressure: readable and
       ackable like any other, never recovered after a restart. */
    bool transient;
};

/* One live message of one queue, found by recovery. */
struct store_recovered {
    uint64_t qid;
    uint64_t id;
    uint64_t pos; /* for store_read_msg() */
    uint32_t body_len;
    uint32_t meta_len;
};

struct store_recover_cb {
    void (*message)(void *ctx, const struct store_recovered *m);
};

struct store;

/*
 * Opens the log in cfg->dir, creating it when empty or recovering it:
 * replays segment summaries (and scans the newest segment), truncates a
 * torn tail of the newest segment, drops transient messages, starts a
 * fresh head segment and the store thread. Calls cb->message (if cb is
 * not NULL) for every live (queue, message) pair, in increasing id order
 * within each queue (queues interleaved), all before returning.
 *
 * Returns WR_OK and sets *out, or WR_ERR with a message for the operator
 * in err: what is wrong, the file and byte offset, and what to do (rerun
 * with repair, i.e. --repair). The callbacks run only after every check
 * and every write of the recovery succeeded, so on WR_ERR none was made.
 */
int store_open(const struct store_config *cfg,
               const struct store_recover_cb *cb, void *ctx, struct store **out,
               char *err, size_t errlen);

/*
 * Seals the head segment (so the next open reads its summary), hands over
 * everything appended, waits for the store thread to write and fdatasync
 * it whatever the policy, joins the thread and frees the store. Pending
 * events are dropped: call store_poll() first if they matter. Returns
 * whether everything appended is durable (no failure, no full disk gave
 * records up); NULL is a no-op that returns false.
 */
bool store_close(struct store *s);

/*
 * Appends a MESSAGE record. Fills *id with the new message id and *pos
 * with where the record lives. Returns the record's LSN (> 0), or 0 when
 * the store has failed (store_error() says why), when the disk is full
 * (store_no_space()), or when the message breaks a limit (nqids == 0 or
 * > STORE_MAX_QIDS, meta + body > STORE_MAX_MSG; store_error() is then
 * NULL). Queue ids are deduplicated.
 */
uint64_t store_append_msg(struct store *s, const struct store_msg_in *m,
                          uint64_t *id, uint64_t *pos);

/*
 * Takes the next message id without appending anything: for messages the
 * vhost keeps in memory only, so that every message of a vhost is ordered
 * by one counter. Ids taken this way never reach the disk.
 */
uint64_t store_alloc_id(struct store *s);

/*
 * Message id left queue qid (acked, purged, expired, dropped). Acks of
 * one queue within one flush share one ACK record. Acking a pair the
 * store does not hold as live (unknown, already acked, queue deleted) is
 * a no-op that returns the latest LSN. Returns the LSN, or 0 on failure.
 */
uint64_t store_append_ack(struct store *s, uint64_t qid, uint64_t id);

/*
 * Queue qid was deleted: every message of qid appended so far leaves it.
 * Messages appended to qid afterwards (a queue redeclared under the same
 * name) start fresh. Returns the LSN, or 0 on failure.
 */
uint64_t store_append_queue_delete(struct store *s, uint64_t qid);
/* Whether message id is still live in queue qid (appended or applied,
 * neither acked nor its queue deleted). Loop thread. */
bool store_is_live(struct store *s, uint64_t qid, uint64_t id);

/*
 * Hands everything appended so far (and due segment deletions) to the
 * store thread. Call once per loop iteration; cheap when nothing is new.
 */
void store_flush(struct store *s);

/* Everything with LSN <= the returned value is durable per the policy.
   Thread-safe. */
uint64_t store_durable_lsn(const struct store *s);

struct store_events {
    /* The durable LSN advanced to lsn. */
    void (*durable)(void *ctx, uint64_t lsn);
    /* Compaction rewrote message id of queue qid at new_pos; the old
       position stays readable until this store_poll() returns. */
    void (*moved)(void *ctx, uint64_t qid, uint64_t id, uint64_t new_pos);
    /* The store failed (sticky); reported once. */
    void (*failed)(void *ctx, const char *why);
};

/*
 * Loop thread, after wake(): delivers pending events (any callback may be
 * NULL), frees written batches, applies compaction results (appending the
 * moved records to the current batch) and plans segment deletions, which
 * the next store_flush() hands over.
 */
void store_poll(struct store *s, const struct store_events *ev, void *ctx);

/*
 * Reads message pos back into out (reset first, reused across calls) and
 * points *meta and *body into it. Works for records still in the
 * unflushed batch or in flight. Verifies the record's checksum. Returns
 * WR_OK, or WR_ERR (logged with file and offset) for an unknown position
 * or a damaged record.
 */
int store_read_msg(struct store *s, uint64_t pos, struct buf *out,
                   struct bytes *meta, struct bytes *body);
/* store_read_msg of a message at pos found while the log goes on:
 * WR_AGAIN (nothing logged) when the segment pos names is gone, because
 * the message was acked or compaction moved it (replication snapshots,
 * vhost_repl_slice). */
int store_read_msg_live(struct store *s, uint64_t pos, struct buf *out,
                        struct bytes *meta, struct bytes *body);

/* The 64-bit queue id of a vhost-local queue name (XXH3_64bits). */
uint64_t store_qid(struct bytes queue_name);

struct store_stats {
    uint64_t segments;        /* segment files, head included */
    uint64_t disk_bytes;      /* their total size, unflushed included */
    uint64_t live_msgs;       /* messages with at least one live queue */
    uint64_t bytes_written;   /* by this process, to segment files */
    uint64_t fsyncs;          /* fdatasync + fsync calls, this process */
    uint64_t records_written; /* records written, this process */
    uint64_t moved_msgs;      /* messages moved by compaction */
    uint64_t pending_bytes;   /* appended, not yet written */
};

void store_get_stats(const struct store *s, struct store_stats *out);

/* Bytes appended and not yet written (store_get_stats' pending_bytes,
 * without the walk over segments): what the loop has queued for the
 * disk. Loop thread. */
uint64_t store_pending_bytes(const struct store *s);

/* Bytes of memory held by the log's write buffers: what was appended to
 * the batch being filled and to the batches handed over and not yet
 * reclaimed by store_poll(), and the capacity of the spare batch kept for
 * reuse: about what the log adds to the process's resident size. Loop
 * thread. */
uint64_t store_buffer_bytes(const struct store *s);

/* Message bytes (meta + body) appended to any log of this process so
 * far: between two store_buffer_bytes() readings, the growth of the
 * write buffers. Loop thread. */
uint64_t store_appended_total(void);

/* NULL unless the store has failed; then the reason. */
const char *store_error(const struct store *s);

/* Whether a write waits for disk space (see "Disk full" above): message
   appends are refused meanwhile. Thread-safe. */
bool store_no_space(const struct store *s);

/* Every message appended with a smaller id is durable; after a failure,
   the messages appended with this id or a greater one never will be
   (ids taken by store_alloc_id do not count). */
uint64_t store_durable_next_id(const struct store *s);

/*
 * Moves the files of the log in directory from (segments, set-aside
 * damaged segments, the manifest; and the stream logs and the
 * deduplication journal kept beside it) into directory to, creating it, and
 * fsyncs both directories. Both must be on one file system. For a log
 * whose directory cannot be renamed as a whole; no store may be open on
 * either. Idempotent: a move cut short by a crash finishes when called
 * again. Returns the number of files moved, or -1 with err filled.
 */
long store_move_files(const char *from, const char *to, char *err,
                      size_t errlen);

/*
 * Writes path atomically: a temporary file in the same directory, fsync,
 * rename over path, fsync of the directory. Mode 0600 (definitions hold
 * password hashes). Returns WR_OK or WR_ERR with err filled.
 */
int store_write_file_atomic(const char *path, const void *data, size_t len,
                            char *err, size_t errlen);

/* fsyncs a directory, so that the names created, renamed or removed in
 * it are durable. Returns 0, or -1 with errno set. */
int store_sync_dir(const char *path);

/*
 * Reads the whole file into out (reset first). Returns WR_OK, or WR_ERR
 * with err filled and errno set (ENOENT when the file does not exist).
 */
int store_read_file(const char *path, struct buf *out, char *err,
                    size_t errlen);

/*
 * Replication (store/replica.c). A vhost leader streams its log to its
 * mirrors as "replication records", the records of the log's meaning in
 * a position-independent form:
 *
 *     u8 type (MSG 1, ACK 2, QDEL 3), u8 version, varint payload length,
 *     payload: exactly the bytes the batch holds after the record's
 *     10-byte header (see store/record.c)
 *
 * The segment-specific header (length, checksum seeded by the file's
 * salt and the offset) is left out: the mirror writes the payload into
 * its own segments with its own checksums, so compaction and segment
 * boundaries stay local while message ids are the leader's. Compaction
 * copies and transient (paged-out) messages are never replicated.
 */

/* Leader: from now on every MSG, ACK and QDEL record appended is also
   copied, as replication records, to the end of out (NULL stops). */
void store_tap(struct store *s, struct buf *out);

/* Leader: encodes the acks taken so far (normally encoded at the next
   hand-off) so that the tap holds every record up to the LSN returned:
   the last LSN assigned. Loop thread. */
uint64_t store_tap_cut(struct store *s);

/* Leader: a position for a record that travels beside the log's (a
   stream append, a deduplication key: vhost/side.h), so that its
   confirm waits for the mirrors like a message's: the next LSN, taken
   without writing anything (the batch it falls in is handed over and
   synced like any other). 0 when not tapping or failed. Loop thread. */
uint64_t store_tap_mark(struct store *s);

/*
 * Checks a run of replication records without applying anything: every
 * record complete, of a known type and version, its payload decoding
 * exactly, message flags 0, message ids strictly increasing from
 * next_id, below 2^52, queue deletes' bounds in range. Returns true, or
 * false with *why (static text). Pure: the fuzz target's entry.
 */
bool store_recs_check(struct bytes recs, uint64_t next_id, const char **why);

/*
 * Mirror: checks recs (store_recs_check against this log's next id) and,
 * only if all of them are valid, appends them as if the loop had made
 * them, keeping the leader's message ids. Returns the LSN of the last
 * (the log's latest LSN when recs is empty); 0 with err filled when recs
 * is invalid (nothing appended), when the store failed, or when the disk
 * is full (then nothing appended either).
 */
uint64_t store_apply(struct store *s, struct bytes recs, char *err,
                     size_t errlen);

/* Length of the longest run of whole records at the start of recs (as
   the tap made them) not longer than max, but at least one record; 0 for
   an empty or malformed run. For splitting a cut into frames. */
size_t store_recs_prefix(struct bytes recs, size_t max);

/* Leader, building a snapshot for a new mirror: appends to out the
   replication record of a live message (as store_tap would have copied
   it, listing the queues that still hold it). */
void store_snap_msg(struct buf *out, uint64_t id, const uint64_t *qids,
                    uint32_t nqids, struct bytes meta, struct bytes body);

/*
 * Mirror, for truncation in place (Kafka KIP-101; cluster/mirror.c):
 * the position (segment << 32 | offset) just past every record appended
 * so far, pending acks encoded first so that none of them falls after
 * it. Truncating the log at this position later leaves exactly the
 * records appended before this call. Loop thread.
 */
uint64_t store_end_pos(struct store *s);

/* How many segments this open of the store has planned to delete (they
   are deleted by the store thread after the next hand-off): a
   truncation in place is safe only back to a position after which no
   segment was deleted, since a deleted segment may hold a message that
   only a record past the position killed. Loop thread. */
uint64_t store_unlinks_planned(const struct store *s);

/*
 * Cuts the closed log in dir back to pos (store_end_pos): the segments
 * after pos's are dropped from the manifest (durably) and unlinked, pos's
 * segment is truncated at its offset and synced, the directory synced.
 * The next store_open recovers exactly the records before pos (the cut
 * segment, now the newest, is scanned). WR_ERR with err, changing
 * nothing, when the log has no such segment or it is shorter than pos,
 * or when dir is in use; a failure half-way leaves a log that opens
 * with the records before pos and possibly some after (the caller then
 * must not use it as truncated: it restarts the copy).
 */
int store_truncate(const char *dir, uint64_t pos, char *err, size_t errlen);

/* The id the next message will get (on a mirror: the lowest id the next
   replicated message may have). */
uint64_t store_next_id(const struct store *s);

/*
 * Hot index (store/hot.c; issue 12's "the new leader serves within 1 s
 * of winning"). A store opened with hot_index keeps every live (queue,
 * message) pair in memory as its records are appended (a mirror's
 * store_apply), acked, deleted with their queue or moved by compaction,
 * from its recovery on: 24 bytes per live pair. A mirror that wins the
 * vhost hands the open store over (store_suspend, its directory renamed
 * into the vhost's place, store_resume) and the vhost takes its queues
 * from store_hot_report instead of recovering the log.
 */

/* Live pairs in the hot index (0 without one). Loop thread. */
uint64_t store_hot_pairs(const struct store *s);

/* Every live pair of the hot index to cb->message, as store_open's
   recovery would report them after a close: queue by queue, each queue
   in increasing id order. The store must keep a hot index. */
void store_hot_report(const struct store *s, const struct store_recover_cb *cb,
                      void *ctx);

/*
 * Stops the store thread after it wrote and synced everything appended
 * (as store_close, without sealing the head): the store stays in memory
 * and its directory may be renamed (or its files moved) until
 * store_resume. No append, flush, poll or read meanwhile. Returns whether
 * everything appended is durable; on false the caller closes the store instead.
 */
bool store_suspend(struct store *s);

/*
 * Goes on in dir (the files moved there), locking it, with a new wake-up
 * (store_config.wake); restarts the store thread. WR_ERR with err: the
 * caller closes the store.
 */
int store_resume(struct store *s, const char *dir, void (*wake)(void *arg),
                 void *wake_arg, char *err, size_t errlen);

#endif
