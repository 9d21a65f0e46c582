/*
 * cluster/mirror.h: this node's copy of a vhost led by another node
 * (issue 12), fed by the replication frames of cluster/repl.h. The
 * server moves the bytes (server/replication.c); this keeps the copy.
 *
 * On disk, apart from anything the node holds of the vhost as its own
 * (vhosts/<hash>, vhost/vhostdir.c), so that a copy being rebuilt never
 * touches data the node may lead from:
 *
 *   <data_dir>/replicas/<SHA-256 of the vhost name, 64 hex>/
 *       log/               the copy of the vhost's log (store/, with the
 *                          leader's message ids), and beside it the
 *                          copies of its stream logs, tracked offsets
 *                          and deduplication journal under the vhost's
 *                          own names (SIDE frames, mirror_side.h)
 *       definitions.json   the vhost's exchanges, queues and bindings as
 *                          of the last DEFS frame (atomically replaced)
 *       dcounts            delivery counts of quorum queues (DCNT frames),
 *                          appended, not synced; emptied by a snapshot,
 *                          written again with the live counts only once
 *                          it holds 4 times as many (mirror.c)
 *                          appended, not synced; emptied by a snapshot
 *       marks.0, marks.1   where each cut of the leader ends in log/
 *                          (cluster/mirror_marks.h: truncation in place)
 *       state.json         {"vhost", "epoch", "synced", "position"}: the
 *                          highest epoch this node accepted frames of (an
 *                          older leader is refused: fencing), whether the
 *                          copy is complete (a snapshot reached SYNCED),
 *                          and after a clean close the position of that
 *                          epoch its log holds exactly (catch-up)
 *
 * Acks: a RECS, SIDE, SYNCED or PING frame carrying seq, once everything
 * the copy took up to it is durable in the copy's log (its own group
 * commit and fdatasync) and its side files (their sync thread), lets
 * mirror_acked() answer seq.
 */
#ifndef WARREN_CLUSTER_MIRROR_H
#define WARREN_CLUSTER_MIRROR_H

#include "base/base.h"
#include "cluster/repl.h"

struct mirror;
struct store;

struct mirror_config {
    const char *data_dir;
    const char *vhost;
    int fsync; /* enum store_fsync */
    uint32_t fsync_interval_ms;
    uint64_t segment_size;
    void (*wake)(void *arg); /* the store thread's wake-up (store.h) */
    void *wake_arg;
    /* which lead of the epoch the link is from (its positions count in
       that lead's log only: a node that stops and starts leading under
       the same key starts counting again); 0 when the leader did not say */
    uint64_t lead;
    /* where the previous lead ended on the leader (repl.h; all zero:
       unknown): a complete copy of that lead holding its position end
       is truncated in place to it and resumes from start (KIP-101) */
    struct repl_prev prev;
};

/* Opens (creating) the copy for a leader of this epoch. WR_ERR with err
 * when the copy has seen a newer epoch (a stale leader) or cannot be
 * opened. A complete copy of an older epoch is truncated in place when
 * cfg->prev allows it (see mirror.c), else it is complete for nothing
 * (the leader sends a snapshot). */
int mirror_open(const struct mirror_config *cfg, uint64_t epoch,
                struct mirror **out, char *err, size_t errlen);
void mirror_close(struct mirror *m);
/* This node wins the vhost (issue 12, the hot copy): closes the copy
 * except for its log, which stays in memory with its hot index, its
 * store thread stopped (store_suspend), for the vhost to go on with
 * once its files are moved (node_vhost_adopt_log). NULL when the log
 * cannot be handed over (then it is closed: recover it). *end and
 * *lead: where the copy of that lead ended exactly (KIP-101, as a clean
 * close would have written it; 0: not a whole cut with everything
 * durable); *at: the log's position when handed over, where the new lead
 * starts if nothing is appended before it. */
struct store *mirror_hand_over(struct mirror *m, uint64_t *end, uint64_t *lead,
                               uint64_t *at);
/* What the copy of vhost on this node's disk is (none open): the epoch
 * of the leader it follows (0: no copy) and whether it is complete.
 * WR_ERR (err) when its state cannot be read. */
int mirror_copy_state(const char *data_dir, const char *vhost, uint64_t *epoch,
                      bool *synced, char *err, size_t errlen);
/* Where the copy's log ends exactly, as its last clean close wrote it
 * (state.json): the position and its lead, 0 when it did not (kill -9,
 * a cut taken in part). WR_ERR (err) when the state cannot be read. */
int mirror_copy_end(const char *data_dir, const char *vhost, uint64_t *pos,
                    uint64_t *lead, char *err, size_t errlen);
/* The copy's directory (its log is in log/, its definitions in
 * definitions.json); the caller frees it. */
char *mirror_copy_dir(const char *data_dir, const char *vhost);

/* Appends the delivery counts (DCNT frames, vhost.h VH_DCOUNT_SIZE each)
 * the copy of vhost holds, in the order they came; none when it has
 * none. WR_ERR when the file cannot be read. */
int mirror_copy_dcounts(const char *data_dir, const char *vhost,
                        struct buf *out);

/* A node that led the vhost returns while another node leads it (KIP-101
 * for the old leader, server/replication.c): its own log becomes its copy
 * of the lead it ended, (epoch, the lead in its marks), so that
 * mirror_open truncates it in place like any copy. Whatever copy the node
 * held goes; move makes the vhost's directory logdir (one rename); its
 * marks (the leader's own, written as a copy's are) go beside the log, the
 * definitions (defs, or none) with it. The copy says synced only once all
 * of it is in. WR_ERR (err): a copy not synced, or none. */
struct mirror_own {
    const char *data_dir, *vhost, *defs;
    uint64_t epoch;
    int (*move)(const char *logdir, void *arg, char *err, size_t errlen);
    void *arg;
};
int mirror_copy_from_own(const struct mirror_own *o, char *err, size_t errlen);

/* The vhost is deleted: removes its copy's directory (none open). */
int mirror_remove(const char *data_dir, const char *vhost, char *err,
                  size_t errlen);

/* Takes one frame from the leader. WR_ERR with err (the link must be
 * dropped): a frame of another epoch, records that do not apply, a copy
 * that cannot be written. */
int mirror_frame(struct mirror *m, const struct repl_frame *f, char *err,
                 size_t errlen);

/* The loop's calls: hand records to the store thread (every pass), take
 * its events (after a wake-up). */
void mirror_flush(struct mirror *m);
void mirror_poll(struct mirror *m);

/* The highest seq of this epoch whose records are all durable here; 0
 * before any. */
uint64_t mirror_acked(const struct mirror *m);

struct mirror_info {
    const char *vhost;
    uint64_t epoch;
    uint64_t seq;    /* last frame's position taken */
    uint64_t acked;  /* mirror_acked */
    bool synced;     /* the snapshot is complete: the copy follows the log */
    uint64_t resume; /* the position of this epoch the copy was opened at,
                        complete and durable (0: none; see mirror.c) */
    uint64_t resume_lead; /* the lead that position counts in */
    /* this open truncated a copy of the previous lead back to its
       position truncated (0: none) */
    uint64_t truncated;
    uint64_t live_msgs;
};

void mirror_get_info(const struct mirror *m, struct mirror_info *out);

#endif
