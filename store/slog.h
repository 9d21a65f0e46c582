/*
 * store/slog.h: a stream log (store/slog.c): an append-only log of
 * records with dense 0-based offsets, kept in segment files with a
 * sparse index each, read back by any number of independent readers
 * from any offset or time, and trimmed by whole segments (retention by
 * total bytes and by age). It knows nothing of AMQP: the payload of a
 * record is opaque bytes; vhost/stream.c puts stream queues on it.
 *
 * Files, all in one directory and named by a caller's prefix:
 *   <prefix>.<first offset, 20 digits>.seg  16-byte header ("WSTRM001",
 *       the first offset), then records: a 24-byte header (payload
 *       length, XXH32 check over payload, offset, length and time; the
 *       offset; the time in ms) and the payload;
 *   <prefix>.<first offset>.idx  entries of (offset, position, time),
 *       24 bytes each: the segment's first record, one about every
 *       SLOG_INDEX_EVERY bytes after it, and its last record once the
 *       segment is sealed.
 *
 * Memory: a few words per segment and a bounded buffer per reader; no
 * per-record state, so a stream of 100 million records costs what its
 * segments cost. A reader finds an offset by binary search over the
 * segments (in memory) and over one segment's index file (pread), then
 * reads forward in chunks.
 *
 * Writes: appended records are buffered and written by slog_flush (the
 * caller flushes once per loop iteration, and before reading the tail);
 * a written record survives a kill of the process. A segment is
 * fdatasync'ed when it is sealed; its writeback is started
 * (sync_file_range, without waiting) every 8 MiB, so that the sync at a
 * roll finds little left to write. With a sync thread
 * (slog_set_syncer, store/fsyncer.h) the seal's syncs and the
 * directory's (for the new segment's name) run there, in its next
 * batch, and slog_sync_add puts the active segment in that batch too:
 * that is how the caller makes records durable before it confirms them
 * (vhost/stream.c, per the fsync policy). Without one, the seal syncs on
 * the caller's thread. Recovery trusts sealed segments and scans the
 * last one from its last valid index entry, truncating a torn tail.
 *
 * Single thread: every function is called from the loop thread.
 */
#ifndef WARREN_STORE_SLOG_H
#define WARREN_STORE_SLOG_H

#include "base/base.h"

/* One index entry about every this many bytes of records. */
#define SLOG_INDEX_EVERY 4096u
/* A reader's read-ahead buffer (grows for a larger record). */
#define SLOG_READ_CHUNK (128u << 10)

struct slog;
struct slog_reader;
struct fsyncer;

struct slog_opts {
    uint64_t max_segment_bytes; /* roll at this size (at least one record) */
    uint64_t max_bytes;         /* retention by total size; 0 = none */
    uint64_t max_age_ms;        /* retention by age; 0 = none */
};

/* One record as read: payload borrowed from the reader, valid until its
 * next slog_read or slog_reader_free. */
struct slog_rec {
    uint64_t offset;
    uint64_t ts_ms;
    struct bytes payload;
};

/* Opens (creating if need be) the log of `prefix` in dir, recovering
 * what is there. Returns NULL with a reason in err. */
struct slog *slog_open(const char *dir, const char *prefix,
                       const struct slog_opts *o, char *err, size_t errlen);
/* Writes what is buffered and closes. Readers must be freed first. */
void slog_close(struct slog *l);
/* Closes l and removes its files. */
void slog_destroy(struct slog *l);
/* New limits (a policy or redeclare); applied at the next roll. */
void slog_set_opts(struct slog *l, const struct slog_opts *o);

/* Appends a record of the concatenated parts, stamped ts_ms (raised to
 * the previous record's time if the clock went back). Returns its
 * offset, or UINT64_MAX when the log failed (a write error, logged). */
uint64_t slog_append(struct slog *l, uint64_t ts_ms, const struct bytes *parts,
                     size_t nparts);
/* Writes the buffered records. Returns WR_OK or WR_ERR (log failed). */
int slog_flush(struct slog *l);
/* From now on l's seals sync on f's thread (key: l's files in f's
 * batches); a log created empty also has its directory synced there. */
void slog_set_syncer(struct slog *l, struct fsyncer *f, uint64_t key);
/* Adds the active segment to f's open batch (after slog_flush: the
 * records written so far are durable once that batch is). */
void slog_sync_add(struct slog *l);
/* Drops whole old segments over max_bytes or older than max_age (never
 * the active one). Returns how many. */
size_t slog_retain(struct slog *l, uint64_t now_ms);

/* A replica of another node's log (cluster/mirror_side.c). Restart:
 * l is empty or its records are no longer wanted (the leader's log
 * starts later): its segments go and the next record gets offset
 * `first`. Drop: whole segments whose records are all below `first` go
 * (the leader's retention), never the active one. */
int slog_restart_at(struct slog *l, uint64_t first);
size_t slog_drop_before(struct slog *l, uint64_t first);

/* The first offset still kept, and the next offset to be given:
 * the log holds [first, next). */
uint64_t slog_first(const struct slog *l);
uint64_t slog_next(const struct slog *l);
/* Bytes in segment files, and the number of segments. */
uint64_t slog_bytes(const struct slog *l);
size_t slog_segments(const struct slog *l);
bool slog_failed(const struct slog *l);
/* The first offset whose record's time is >= ts_ms (slog_next when
 * none). */
uint64_t slog_offset_at(struct slog *l, uint64_t ts_ms);

/* A reader that returns records from `offset` on (from slog_first when
 * older records are gone). */
struct slog_reader *slog_reader_new(struct slog *l, uint64_t offset);
void slog_reader_free(struct slog_reader *r);
/* The offset of the record the next slog_read returns. */
uint64_t slog_reader_next(const struct slog_reader *r);
/* Reads the next record. Returns WR_OK, WR_AGAIN at the end of the log,
 * or WR_ERR for an unreadable record (logged; the reader stops there). */
int slog_read(struct slog_reader *r, struct slog_rec *out);

#endif
