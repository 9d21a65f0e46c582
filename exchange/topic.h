/*
 * topic.h: the topic exchange's index (private to exchange/ and its unit
 * tests). See topic.c for the trie, the matching rules with examples,
 * and the routing cache.
 */
#ifndef WARREN_TOPIC_H
#define WARREN_TOPIC_H

#include "exchange/exchange_int.h"

/* Bounds of the routing cache of one topic exchange. */
#define TOPIC_CACHE_MAX_SLOTS 256 /* entries, direct-mapped */
#define TOPIC_CACHE_MAX_DESTS 64  /* larger results are not cached */
#define TOPIC_CACHE_MAX_KEY   255 /* longer routing keys are not cached */

/* The type's index (exchange_int.h's struct xtype_ops): new, free,
 * bind (b's key is the pattern; b->owner becomes the node it ends at),
 * unbind (pruning the nodes left empty), route (every binding matching
 * one of the routing keys, through the cache). Bind and unbind
 * invalidate the cache. */
extern const struct xtype_ops topic__ops;
/*
 * Walks the trie for rk without the cache and appends the destination of
 * every matching binding to (*v)[*n...] (grown with *cap). Each binding
 * is reported once; a destination bound by several matching patterns is
 * reported once per binding. Returns the number appended.
 */
size_t topic__match(struct topic *t, struct bytes rk, struct xdest **v,
                    size_t *n, size_t *cap);

struct topic_stats {
    size_t nodes;       /* trie nodes, the root included */
    size_t edges;       /* literal-word edges */
    size_t cache_slots; /* allocated cache slots */
    size_t cache_valid; /* slots holding a current entry */
    uint64_t hits, misses;
};

void topic__stats(const struct topic *t, struct topic_stats *st);

#endif
