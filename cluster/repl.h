/*
 * cluster/repl.h: the replication stream's frames (issue 12), sans I/O.
 *
 * A vhost's leader opens one node-to-node connection per mirror with the
 * peer handshake (cluster/peer.h, purpose PEER_REPL; the AUTH payload is
 * {"vhost": name, "epoch": E}), then streams frames; the mirror answers
 * with ACK frames. Every frame, both ways (big-endian):
 *
 *     u32 len    bytes after this field (REPL_HDR - 4 ..= REPL_MAX_FRAME)
 *     u8  kind   enum repl_kind
 *     u64 epoch  the leader key's create_revision (> 0)
 *     u64 seq    see below
 *     payload    len - 17 bytes
 *
 * seq is the leader's log position: its store LSN (store.h), which only
 * grows within an epoch (a new leader, or the same node after a restart,
 * always has a new epoch). Kinds:
 *
 *   leader -> mirror
 *     SNAP     the mirror's copy restarts from nothing: it sets aside
 *              what it holds of the vhost and takes what follows
 *     DEFS     the vhost's exchanges, queues and bindings as a complete
 *              RabbitMQ definitions document (JSON), valid from position
 *              seq: sent before the records that follow the change
 *     RECS     replication records (store.h, "Replication") bringing the
 *              log to position seq; one cut of the leader's tap may span
 *              several RECS frames, only the last carries the cut's seq
 *     SYNCED   the snapshot is complete at position seq
 *     PING     nothing new; seq is the leader's head (keeps the link
 *              warm and tells an idle mirror it is current)
 *     DCNT     delivery counts of quorum queues (vhost.h, VH_DCOUNT_SIZE
 *              bytes each, in order), which the log does not hold: the
 *              mirror keeps them beside its copy for a failover; after a
 *              snapshot, every count the leader holds
 *     SIDE     (kind 10) side records (vhost/side.h: stream appends and
 *              trims, tracked stream offsets, deduplication journal) of the
 *              same cut, sent before its RECS; the last frame of a cut
 *              carries its seq only when no RECS follow. In a snapshot,
 *              after its RECS and before SYNCED (the streams' records,
 *              in bounded slices)
 *   mirror -> leader
 *     ACK      everything up to seq of this epoch is durable here (after
 *              the mirror's own fdatasync)
 *     DACK     the DEFS frame of position seq is durable here (its
 *              definitions.json replaced and synced); one per DEFS frame,
 *              in order, so the leader knows which document it was (a
 *              durable queue.declare-ok waits for it)
 *
 * A frame of an unknown kind, of the wrong direction, with epoch 0, a
 * length out of range, or a payload where none belongs is garbage: the
 * receiver logs why and drops the link.
 */
#ifndef WARREN_CLUSTER_REPL_H
#define WARREN_CLUSTER_REPL_H

#include "base/base.h"

#define REPL_HDR 21u
/* Largest frame: one message record (store.h, STORE_MAX_MSG) fits. */
#define REPL_MAX_FRAME (1u << 30)
/* A cut of the tap is split into RECS frames of about this size. */
#define REPL_SPLIT (4u << 20)

enum repl_kind {
    REPL_SNAP = 1,
    REPL_DEFS = 2,
    REPL_RECS = 3,
    REPL_SYNCED = 4,
    REPL_PING = 5,
    REPL_ACK = 6,
    REPL_DACK = 7,
    REPL_DCNT = 8,
    /* 9: unknown (test_31's garbage kind) */
    REPL_SIDE = 10,
};

struct repl_frame {
    uint8_t kind;
    uint64_t epoch;
    uint64_t seq;
    struct bytes payload; /* a view into the input */
};

/* Appends one frame to out. */
void repl_frame_encode(struct buf *out, enum repl_kind kind, uint64_t epoch,
                       uint64_t seq, struct bytes payload);

/*
 * Parses the frame at the start of in, as received by a mirror
 * (from_leader) or by the leader. WR_OK: *f filled, *used set; WR_AGAIN:
 * need more bytes (never more than REPL_MAX_FRAME + 4 in all); WR_ERR:
 * garbage, *why says what.
 */
int repl_frame_parse(struct bytes in, bool from_leader, struct repl_frame *f,
                     size_t *used, const char **why);

/* RECS frames for a run of replication records (as the store's tap made
 * them), split at record boundaries near REPL_SPLIT bytes; only the last
 * frame carries seq, the others from (no position is complete before the
 * last). Nothing for an empty run. */
void repl_encode_recs(struct buf *out, uint64_t epoch, uint64_t from,
                      uint64_t seq, struct bytes recs);

/* SIDE frames for a run of side records (vhost/side.h), split at record
 * boundaries near REPL_SPLIT; the last frame carries seq, the others
 * from. Nothing for an empty run. */
void repl_encode_side(struct buf *out, uint64_t epoch, uint64_t from,
                      uint64_t seq, struct bytes side);

/*
 * Where the previous lead ended on this leader (KIP-101), named in the
 * AUTH payload as "prev": {"epoch", "lead", "end", "start"}: this lead
 * began from a copy holding lead `lead` of epoch `epoch` exactly up to
 * its position `end`, and this lead's position `start` is that state. A
 * mirror whose copy of that lead holds `end` can cut its copy back to it
 * and catch up from `start` (cluster/mirror.h). All zero: none known.
 */
struct repl_prev {
    uint64_t epoch, lead, end, start;
};

/* Reads "prev" from an AUTH payload (JSON). Absent: *out all zero,
 * true. Present but not an object of four integers in 1..2^63-1:
 * false with *why (garbage: the link is refused). Pure. */
bool repl_prev_parse(struct bytes payload, struct repl_prev *out,
                     const char **why);

/* The kind's name for logs ("RECS"), "?" for an unknown one. */
const char *repl_kind_name(uint8_t kind);

#endif
