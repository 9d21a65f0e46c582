/*
 * dedup.h: the deduplication cache of a queue or an exchange declared
 * with x-message-deduplication = true (the arguments of the
 * rabbitmq-message-deduplication plugin and of LavinMQ):
 *
 *   x-cache-size            the most keys kept (default 128); the oldest
 *                           goes first when full (FIFO, as LavinMQ)
 *   x-cache-ttl             how long a key is kept, ms (default: until
 *                           evicted); a message's own x-cache-ttl header
 *                           overrides it for its key
 *   x-deduplication-header  the header holding the key (default
 *                           "x-deduplication-header"); "message_id" also
 *                           takes the message-id property when the
 *                           message has no such header
 *
 * A message without the key is never a duplicate. A key is a 128-bit
 * XXH3 of the header's value (its bytes for a string, its type and value
 * otherwise), so an entry has a fixed size whatever the header's length.
 * Each entry keeps the log position (LSN) of the message that put it
 * there, so that a duplicate's confirm waits until the original is on
 * disk.
 *
 * Costs: one hash lookup per check, one per add; nothing is allocated
 * once the cache is full (the evicted entry is reused).
 */
#ifndef WARREN_VHOST_DEDUP_H
#define WARREN_VHOST_DEDUP_H

#include "base/base.h"

#define DEDUP_DEFAULT_SIZE   128
#define DEDUP_DEFAULT_HEADER "x-deduplication-header"

struct dedup;

/* One message's key under a cache's rules. */
struct dedup_key {
    uint8_t h[16];
    int64_t ttl_ms; /* the message's x-cache-ttl, else the cache's; -1 none */
};

/*
 * The cache an object's declare arguments ask for, or NULL when
 * x-message-deduplication is not true. Assumes the arguments passed the
 * vhost's checks (args.c); wrong types there fall back to the defaults.
 */
struct dedup *dedup_from_args(struct bytes args);
/* A cache of at most size keys (>= 1) kept ttl_ms each (-1: no limit),
 * keyed on header (copied). */
struct dedup *dedup_new(uint32_t size, int64_t ttl_ms, const char *header);
void dedup_free(struct dedup *d);

/*
 * The key of a message with the given headers table body and raw content
 * properties (either may be empty). Returns false when the message
 * carries no key: it is never a duplicate.
 */
bool dedup_key(const struct dedup *d, struct bytes headers, struct bytes props,
               struct dedup_key *k);
/*
 * True when k is in the cache and has not expired at now_ms (a
 * monotonic clock); then *lsn is the LSN its original was logged at (0
 * when not logged). An expired entry found is removed.
 */
bool dedup_seen(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
                uint64_t *lsn);
/*
 * Remembers k from now_ms for its TTL, with the original's LSN. A key
 * already held (not expired) is left as it is. Evicts the oldest entry
 * when the cache is full.
 */
void dedup_add(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
               uint64_t lsn);
/* dedup_add for a key that came back from the log (its message, or the
 * snapshot of a clean stop): kept across the next restart too. */
void dedup_add_durable(struct dedup *d, const struct dedup_key *k,
                       uint64_t now_ms);
/* dedup_add for a key dedup_seen has just not found (one lookup less). */
void dedup_add_new(struct dedup *d, const struct dedup_key *k, uint64_t now_ms,
                   uint64_t lsn);
/*
 * One publish: dedup_check computes the message's key and returns true
 * (counting a drop, *lsn set as dedup_seen does) when it is a duplicate;
 * otherwise it keeps the key, and dedup_commit, once the message has been
 * taken, remembers it. A check not followed by a commit is forgotten by
 * the next check.
 */
bool dedup_check(struct dedup *d, struct bytes headers, struct bytes props,
                 uint64_t now_ms, uint64_t *lsn);
void dedup_commit(struct dedup *d, uint64_t now_ms, uint64_t lsn);
/* dedup_commit that says whether it remembered a key, and which: its
 * hash in h (when not NULL) and its expiry on the cache's clock
 * (UINT64_MAX: never) in *expires_ms. */
bool dedup_commit_out(struct dedup *d, uint64_t now_ms, uint64_t lsn,
                      uint8_t h[16], uint64_t *expires_ms);
/* Counts one dropped duplicate (shown by the management API). */
void dedup_note_drop(struct dedup *d);

/*
 * The live keys of logged messages (added with an LSN, or by
 * dedup_add_durable), oldest first, for a snapshot (persist.c): u32 count,
 * then per key its 16 bytes and u64 expiry in wall-clock ms (UINT64_MAX:
 * never), appended to out. now_ms is the cache's clock, wall_ms the wall
 * clock at the same moment.
 */
void dedup_save(const struct dedup *d, uint64_t now_ms, uint64_t wall_ms,
                struct buf *out);
/*
 * Adds the keys dedup_save wrote, read from c, to d (those expired by
 * now are skipped; the oldest go first if they do not all fit). Returns
 * false when the bytes are cut short.
 */
bool dedup_load(struct dedup *d, struct cursor *c, uint64_t now_ms,
                uint64_t wall_ms);

struct dedup_stats {
    uint32_t entries, size;
    uint64_t dropped;
    uint64_t memory; /* bytes held by the cache */
};
void dedup_stats(const struct dedup *d, struct dedup_stats *out);

#endif
