/*
 * cluster/mirror_side.h: a mirror's copy of what its vhost keeps beside
 * the log (issue 14): stream logs, their tracked offsets and the
 * deduplication journal, written from the SIDE frames of the
 * replication stream (vhost/side.h) into the copy's log directory under
 * the names the vhost uses, so that a copy taken over on failover is the
 * vhost's data directory as it is (cluster/mirror.h).
 *
 * Durability: the stream logs and the journal are written on the loop
 * and fdatasync'ed by a sync thread of the copy's own (store/fsyncer.h)
 * in groups; an applied frame's ticket says which batch makes it
 * durable, and the copy ACKs its position only after that batch (and
 * the log's records up to it) are on disk.
 */
#ifndef WARREN_CLUSTER_MIRROR_SIDE_H
#define WARREN_CLUSTER_MIRROR_SIDE_H

#include "base/base.h"

struct mside;

/* The side copy in dir (the copy's log directory); fsync: enum
 * store_fsync; wake: the loop's wake-up, called by the sync thread. */
struct mside *mside_open(const char *dir, int fsync, void (*wake)(void *),
                         void *wake_arg);
/* Writes what is buffered, syncs, closes. Returns whether everything
 * applied is durable (for a copy that keeps its position). */
bool mside_close(struct mside *ms);

/* Applies one SIDE payload: checked whole first (side_next, offsets
 * that are JSON objects), then applied. WR_ERR with err: garbage, a
 * stream append out of order (an offset below the copy's next; with
 * exact, the copy following the live stream, also one beyond it), a
 * write that failed. *ticket: the sync batch that makes it durable (0:
 * none needed). */
int mside_apply(struct mside *ms, struct bytes payload, bool exact,
                uint64_t *ticket, char *err, size_t errlen);
/* Every loop pass: hands written files to the sync thread. */
void mside_kick(struct mside *ms);
/* Whether the batch ticket is durable; false for good once a sync
 * failed. */
bool mside_durable(const struct mside *ms, uint64_t ticket);

#endif
