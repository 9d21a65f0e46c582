/*
 * store/fsyncer.h: a thread that fdatasyncs files the loop thread writes
 * itself (stream segments, store/slog.h), in groups, and says up to
 * which group they are durable: group commit for writers that are not
 * the store.
 *
 * Batches. The loop writes to a file, then adds it to the open batch
 * (fsyncer_add, once per file and batch: the key deduplicates). A write
 * made while batch B is open is durable once fsyncer_durable() >= B
 * (fsyncer_batch() names the open batch; fsyncer_ticket() also marks
 * that someone waits for it). fsyncer_kick() hands the open batch to the
 * thread when the thread is idle; while it syncs, the next batch collects
 * everything written meanwhile, so one fdatasync per file covers many
 * writes. The thread calls wake(arg) (wire it to ev_async_send) after
 * each batch and after a failure.
 *
 * Files. An added descriptor is dup'ed (or taken over, `own`), so the
 * loop may close or unlink the file while the thread syncs it.
 *
 * Failure: a failed fdatasync (or fsync of a directory), or a write
 * failure the loop reports (fsyncer_fail), is sticky: durable stops for
 * good, fsyncer_error() says why, and later batches are dropped
 * unsynced. Never retried (a failed fsync may have dropped the dirty
 * pages: retrying would report success for lost data).
 *
 * Threads: fsyncer_durable() and fsyncer_error() may be called from any
 * thread; everything else only from the loop thread.
 */
#ifndef WARREN_STORE_FSYNCER_H
#define WARREN_STORE_FSYNCER_H

#include "base/base.h"

struct fsyncer;

/* Starts the thread; name is for log lines. NULL when the thread cannot
 * be created (logged). */
struct fsyncer *fsyncer_start(const char *name, void (*wake)(void *),
                              void *arg);
/* Syncs the open batch, stops the thread, frees f. Returns whether
 * every file added was synced (false once f failed). */
bool fsyncer_stop(struct fsyncer *f);

/* Adds fd to the open batch unless a file of this key is in it: dup'ed,
 * or taken over when own (then closed after its sync, or now on a
 * failure). dir: fsync (a directory's entries), else fdatasync. */
void fsyncer_add(struct fsyncer *f, uint64_t key, int fd, bool own, bool dir);
/* The open batch's number (from 1). */
uint64_t fsyncer_batch(const struct fsyncer *f);
/* Same, and marks the batch as awaited: it is handed over at the next
 * kick even when no file was added to it. */
uint64_t fsyncer_ticket(struct fsyncer *f);
/* Hands the open batch over when the thread is idle and the batch has
 * files or is awaited; returns true when it did. */
bool fsyncer_kick(struct fsyncer *f);
/* True while a batch is being synced or the open batch has files. */
bool fsyncer_busy(const struct fsyncer *f);
/* The last batch whose files are all synced (0: none yet). */
uint64_t fsyncer_durable(const struct fsyncer *f);
/* Fails f (sticky) with this reason, as a failed sync does. */
void fsyncer_fail(struct fsyncer *f, const char *why);
/* NULL, or why f failed. */
const char *fsyncer_error(const struct fsyncer *f);
/* fdatasync + fsync calls made so far. */
uint64_t fsyncer_syncs(const struct fsyncer *f);

#endif
