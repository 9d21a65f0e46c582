/*
 * side.h: the side records of replication (issue 14): what a vhost keeps
 * beside its log and ships to the mirrors with it, so that a mirror's
 * copy becomes the whole vhost on failover: stream appends and trims,
 * the offsets tracked for named stream consumers, and the deduplication
 * journal. The log's own records (store.h, "Replication") travel in RECS
 * frames; these in SIDE frames (cluster/repl.h) of the same cut.
 *
 * Positions. Every side record the loop makes while the vhost is
 * replicated takes a position of the log (store_tap_mark: an LSN without
 * a record), and the publish it belongs to takes that position as its
 * LSN: its confirm then waits for the in-sync mirrors' ACK as a
 * message's does (a stream publish is confirmed once the in-sync set
 * has the append; a deduplicated publish once it has the key).
 *
 * One record (integers big-endian):
 *
 *     u8 type, u32 length, payload[length]
 *
 *   SAPP   u64 qid, u64 offset, u64 time ms, u64 the stream's segment
 *          size, then the stream record (vhost/stream.c's bytes)
 *   STRIM  u64 qid, u64 first offset kept (retention dropped segments)
 *   SDEL   u64 qid (the stream queue was deleted: its files go)
 *   SOFFS  u64 qid, then the tracked offsets as a JSON object
 *          {"name": next offset} (stream.<qid>.offsets, replaced whole)
 *   DKEYS  deduplication journal records (vhost/dedup_log.h), appended
 *   DFULL  a whole deduplication journal ("WDJ1" and records), replacing
 *          the copy's (the leader rewrote its journal, or a snapshot)
 *
 * A new mirror's snapshot sends DFULL, an SOFFS per stream, then every
 * stream's records as SAPP, a bounded slice per call (side_snap_next),
 * before the records that follow the snapshot's position.
 */
#ifndef WARREN_VHOST_SIDE_H
#define WARREN_VHOST_SIDE_H

#include "vhost/vhost.h"

enum side_type {
    SIDE_SAPP = 1,
    SIDE_STRIM = 2,
    SIDE_SDEL = 3,
    SIDE_SOFFS = 4,
    SIDE_DKEYS = 5,
    SIDE_DFULL = 6,
};

#define SIDE_HDR 5u
/* Largest stream record a SAPP may carry (a message and its header). */
#define SIDE_MAX_REC ((size_t)1 << 30)

/* One side record as read: views into the input. */
struct side_rec {
    uint8_t type;
    uint64_t qid;      /* SAPP STRIM SDEL SOFFS */
    uint64_t offset;   /* SAPP; STRIM: the first kept */
    uint64_t ts_ms;    /* SAPP */
    uint64_t segsize;  /* SAPP, >= 1 */
    struct bytes data; /* SAPP: the record; SOFFS: JSON; DKEYS, DFULL */
};

/*
 * Reads the next record of c. False with *why (static text) when it is
 * cut short, of an unknown type, or its fields do not parse (DKEYS and
 * DFULL must hold whole journal records only). Pure: the fuzz target's
 * entry.
 */
bool side_next(struct cursor *c, struct side_rec *r, const char **why);

/* Leader: from now on the vhost's side records are appended to out
 * (NULL stops). */
void vhost_repl_side_tap(struct vhost *vh, struct buf *out);

/* Leader: a new mirror's snapshot of the side data, at the current
 * position (after the cut of the tap). Begin appends the small part
 * (DFULL, SOFFS) to out; next appends about max bytes of the streams'
 * records and returns true when every stream is complete up to where it
 * was at begin (a stream deleted meanwhile is skipped: its SDEL follows
 * in the live records). */
struct side_snap;
struct side_snap *side_snap_begin(struct vhost *vh, struct buf *out);
bool side_snap_next(struct side_snap *ss, struct buf *out, size_t max);
void side_snap_free(struct side_snap *ss);

#endif
