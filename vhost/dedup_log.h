/*
 * dedup_log.h: the format of a vhost's deduplication journal
 * (vhost/dedup_log.c), apart so that it can be tested alone.
 *
 * File "dedup.journal" in the vhost's data directory: "WDJ1", then
 * records, each u32 body length, u32 XXH32 of the body, the body:
 *   'q' or 'x' | shortstr name | 16-byte key | u64 expiry, wall-clock ms
 *       (UINT64_MAX: never): a key a durable queue (exchange) remembers
 *   'Q' or 'X' | shortstr name: the queue (exchange) was deleted: the
 *       keys before this record are forgotten
 * Integers big-endian. A record cut short or failing its check ends the
 * journal (a torn tail: nothing after it was confirmed).
 */
#ifndef WARREN_VHOST_DEDUP_LOG_H
#define WARREN_VHOST_DEDUP_LOG_H

#include "base/base.h"

#define DEDUP_LOG_MAGIC "WDJ1"

/* One record as read. */
struct dedup_log_rec {
    uint8_t kind; /* 'q', 'x', 'Q', 'X' */
    struct bytes name;
    uint8_t h[16];    /* 'q', 'x' */
    uint64_t expires; /* wall ms; 'q', 'x' */
};

/* Appends a key record (kind 'q' or 'x') or a deletion ('Q', 'X': h
 * NULL) to out. */
void dedup_log_put(struct buf *out, uint8_t kind, struct bytes name,
                   const uint8_t *h, uint64_t expires);
/* Reads the records of a journal's bytes, calling fn for each; returns
 * the length of the whole ones, the magic included (0 when the magic is
 * missing). */
size_t dedup_log_read(const uint8_t *p, size_t n,
                      void (*fn)(void *arg, const struct dedup_log_rec *r),
                      void *arg);

#endif
