/*
 * cluster/mirror_marks.h: where each cut of the leader ends in a
 * mirror's copy of the log, kept so that the copy can be truncated in
 * place (Kafka KIP-101) when a new leader's copy of the same lead ended
 * earlier than this one.
 *
 * The copy's log has its own segments and offsets (the leader's
 * positions are not in it), so the copy appends one mark per complete
 * cut it takes: (epoch, lead, the leader's position, the copy log's
 * position just past the cut's records, the length of its dcounts file).
 * A truncation to the leader's position E finds E's mark and cuts the
 * log there (store_truncate).
 *
 * That is only right if nothing was destroyed because of a record past
 * the mark: a segment the store deleted after the mark may hold a
 * message that only a later ACK or queue delete killed, and cutting that
 * record off would not bring the message back. So every mark also
 * carries a counter of the segments the copy's store planned to delete,
 * counted over the copy's whole life (kept across opens through the
 * file), and a mark is usable only while the counter has not moved
 * since: a change is written before the store thread is handed the
 * deletion (marks_write runs before store_flush and writes such an
 * entry at once).
 *
 * On disk: <copy dir>/marks.0 and marks.1, 64-byte entries, each with a
 * checksum (a torn or zeroed entry is skipped); one file is appended to
 * until it holds MARKS_ROTATE entries, then the other one is emptied
 * and taken, so the two hold the last 16-32 K cuts. Not synced: a mark
 * lost to a power cut costs a snapshot, never a wrong truncation (a
 * mark is checked against the log's length before use).
 */
#ifndef WARREN_CLUSTER_MIRROR_MARKS_H
#define WARREN_CLUSTER_MIRROR_MARKS_H

#include "base/base.h"

struct marks;

/* Opens the marks in dir (the copy's directory); the unlink counter
 * starts at the highest one the files hold. */
struct marks *marks_open(const char *dir);
/* Writes what is buffered and closes. */
void marks_close(struct marks *mk);
/* The copy restarts from nothing (SNAP) or was truncated: no mark holds
 * any more. Removes both files. */
void marks_reset(struct marks *mk);

/* A complete cut of (epoch, lead) taken up to the leader's position seq:
 * the copy's log ends at pos, its dcounts file at dclen. Buffered. */
void marks_cut(struct marks *mk, uint64_t epoch, uint64_t lead, uint64_t seq,
               uint64_t pos, uint64_t dclen);
/* The copy's store has planned planned deletions since it was opened
 * (store_unlinks_planned): a change is logged. Buffered. */
void marks_unlinks(struct marks *mk, uint64_t planned);
/* The buffered entries to the file, before the store's hand-off: a
 * deletion's entry at once (it must be on file before the store thread
 * can delete), marks in batches (MARKS_BATCH bytes or MARKS_DELAY_MS),
 * everything with force. A mark lost to a kill -9 before its batch was
 * written costs a snapshot, never a wrong truncation. */
void marks_write(struct marks *mk, bool force);

/* The mark of (epoch, lead, seq) in dir, usable for a truncation: *pos
 * and *dclen filled, WR_OK; WR_ERR with why (no such mark, a segment
 * deleted since). */
int marks_find(const char *dir, uint64_t epoch, uint64_t lead, uint64_t seq,
               uint64_t *pos, uint64_t *dclen, char *why, size_t n);

/* The (epoch, lead) of the newest cut marked in dir: false when none (a
 * leader's own log, server/replication.c, says which lead it was). */
bool marks_last_cut(const char *dir, uint64_t *epoch, uint64_t *lead);

#endif
