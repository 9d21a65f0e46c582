/*
 * recover_int.h: what the files of store_open's replay share (recover.c
 * drives the phases; recover_scan.c, recover_live.c, recover_deps.c and
 * recover_apply.c each do some of them): the state of one recovery and
 * the friend functions between the phases. Private to store/.
 */
#ifndef WARREN_STORE_RECOVER_INT_H
#define WARREN_STORE_RECOVER_INT_H

#include "store/store_int.h"

struct rseg {
    uint32_t no;
    int fd;
    uint64_t size;
    uint64_t end;      /* where valid data ends (trailer goes there) */
    uint64_t data_end; /* end of the last record before the trailer */
    uint64_t sum_at;   /* scanned and sealed: its SUMMARY's offset */
    struct seg_hdr hdr;
    bool drop;       /* torn creation or damaged header: not used */
    bool remove;     /* torn creation: unlinked once the manifest is new */
    bool listed;     /* in the manifest found at open */
    bool resume;     /* disk full: the head goes on in this segment */
    bool sealed;     /* valid trailer on disk */
    bool need_seal;  /* write a trailer at end (truncating first) */
    struct seg *bld; /* scanned: sets dictionary + summary builder */
    struct buf raw;  /* the SUMMARY record (read or built) */
    struct rec_sum sum;
    uint64_t seal_next_id;
    uint64_t lo, hi; /* original ids */
    bool has_orig;
};

struct qdel {
    UT_hash_handle hh;
    uint64_t qid;
    uint64_t upto;
};

/* Newest copy of a moved message. */
struct mv {
    uint32_t seg;
    uint32_t prev;
    uint32_t prev_set;
    uint32_t off;
    uint32_t meta_len;
    uint32_t body_len;
    uint32_t set;
    uint8_t flags;
    bool loses; /* the original is newer: this copy does not count */
};

/* A moved copy (newest or the one before) by segment, for qdel_deps. */
struct mcopy {
    uint32_t seg;
    uint32_t set;
    uint64_t id;
};

struct rctx {
    struct store *s;
    bool repair;
    char *err;
    size_t errlen;
    struct rseg *rs;
    size_t n;
    uint32_t max_no;
    struct idmap acks;  /* id -> qid, multimap */
    struct idmap moved; /* id -> struct mv */
    struct qdel *dels;
    uint64_t next_id;
    uint64_t cache_q, cache_upto;
    bool cache_ok;
    const struct rseg **orig; /* files with originals, built on use */
    size_t norig;
    struct mcopy *mc; /* sorted by segment, built on first use */
    size_t nmc;
    bool mc_built;
};

/* Fills c->err and returns WR_ERR (recover_scan.c, with the hint). */
int recover__fail(struct rctx *c, const char *fmt, ...) WR_PRINTF(2, 3);
/* What an error that --repair would get past tells the operator. */
extern const char recover__repair_hint[];

/* ---- phases 0 and 1 (recover_scan.c) */

/* Lists the segment files in number order (c->rs). */
int recover__list_segments(struct rctx *c);
/* Every segment the manifest lists must be there. */
int recover__check_manifest(struct rctx *c);
/* Opens r, checks its header, reads its summary from the trailer or
 * scans it (newest: it is the newest segment, which may be torn). */
int recover__load_segment(struct rctx *c, struct rseg *r, bool newest);
/* Reads all of r and scans it: builds r->bld and the summary (r->raw,
 * r->sum) its records call for. */
int recover__scan_segment(struct rctx *c, struct rseg *r, bool newest,
                          const char *path);

/* ---- phase 2 and 2b, and the liveness rule (recover_live.c) */

void recover__collect_tombs(struct rctx *c, const struct rseg *r);
/* Collects r's messages: the newest copy of each moved one, the range of
 * its originals (which must grow), the next id. */
int recover__collect_msgs(struct rctx *c, struct rseg *r, uint64_t *last_orig);
/* Reads back and checks the MSG records of r's live messages. */
int recover__verify_live(struct rctx *c, struct rseg *r);
/* Live bits of a message of set q; returns how many. bits[] has
 * (q->n + 63) / 64 words. */
uint32_t recover__live_bits(struct rctx *c, uint64_t id, uint8_t flags,
                            const struct qset *q, uint64_t *bits);

/* ---- dependencies (recover_deps.c) */

/* The segment of the record recovery uses for moved message m (o holds
 * its original, or NULL) must outlive those of its older records. */
void recover__winner_deps(struct rctx *c, const struct mv *m,
                          const struct rseg *o);
/* The dependencies of every ACK and QDEL of the log. */
void recover__build_deps(struct rctx *c);

/* ---- phases 3 and 4 (recover_apply.c) */

/* The newest segment not dropped, or NULL. */
struct rseg *recover__newest_kept(struct rctx *c);
/* Seals what needs it and starts the head (a new segment, or the newest
 * one when the disk is full: *resumed). */
int recover__write_phase(struct rctx *c, struct seg_hdr *head, bool *resumed);
/* The manifest lists exactly the segments kept and the new head (NULL:
 * the newest goes on); then the segments torn at creation go. */
int recover__record_manifest(struct rctx *c, const struct seg_hdr *head);
/* Builds the loop's segments and reports every live (queue, message)
 * pair to cb, in id order per queue. */
void recover__build_and_report(struct rctx *c,
                               const struct store_recover_cb *cb, void *ctx);
void recover__push_head(struct rctx *c, const struct seg_hdr *h);
void recover__resume_head(struct rctx *c, struct rseg *r);

#endif
