/*
 * recover.c: store_open's replay, phase by phase.
 *
 *   0, 1  recover_scan.c   list the segment files, check them against
 *                          the manifest, read each one's summary from
 *                          its trailer or scan its records (cutting a
 *                          torn tail of the newest)
 *   2, 2b recover_live.c   collect the kills and the moved copies, check
 *                          that original ids grow, read back and check
 *                          the records of the live messages
 *   3, 4  recover_apply.c  write (seal, new head, manifest), then build
 *                          the loop's view and report every live
 *                          (queue, message) pair to the vhost
 *   deps  recover_deps.c   rebuild which segment must outlive which
 *
 * Every write happens before the first callback, and nothing is written
 * before every segment has been read and checked: a log that cannot be
 * opened is left as it was.
 *
 * A message is live in queue q iff its newest MSG record (the original,
 *   or the latest copy compaction wrote) lists q and is not transient, no
 *   ACK anywhere names (q, id), and no QDEL of q has upto > id.
 *
 * Damaged or forged logs that the writer could never produce are the
 * fuzzer's (test/fuzz/fuzz_record.c) job: whatever an open accepts, the
 * next open must report the same.
 */
#include "store/recover_int.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- driver */

static void
rctx_fini(struct rctx *c)
{
    struct qdel *d, *tmp;

    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].fd >= 0)
            c->s->io->close(c->s->io->arg, c->rs[i].fd);
        seg_free(c->rs[i].bld, c->s->io);
        buf_fini(&c->rs[i].raw);
    }
    free(c->rs);
    idmap_fini(&c->acks);
    idmap_fini(&c->moved);
    free(c->mc);
    free(c->orig);
    HASH_ITER(hh, c->dels, d, tmp)
    {
        HASH_DEL(c->dels, d);
        free(d);
    }
}

static int
phases(struct rctx *c, const struct store_recover_cb *cb, void *ctx)
{
    uint64_t last_orig = 0;
    struct seg_hdr head;
    bool resumed;

    if (recover__list_segments(c) != WR_OK ||
        recover__check_manifest(c) != WR_OK)
        return WR_ERR;
    for (size_t i = 0; i < c->n; i++) {
        if (recover__load_segment(c, &c->rs[i], i + 1 == c->n) != WR_OK)
            return WR_ERR;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].drop)
            continue;
        recover__collect_tombs(c, &c->rs[i]);
        if (recover__collect_msgs(c, &c->rs[i], &last_orig) != WR_OK)
            return WR_ERR;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].drop && !c->rs[i].bld &&
            recover__verify_live(c, &c->rs[i]) != WR_OK)
            return WR_ERR;
    }
    /* every write happens before the first callback */
    if (recover__write_phase(c, &head, &resumed) != WR_OK ||
        recover__record_manifest(c, resumed ? NULL : &head) != WR_OK)
        return WR_ERR;
    c->s->next_id = c->next_id;
    recover__build_and_report(c, cb, ctx);
    if (resumed)
        recover__resume_head(c, recover__newest_kept(c));
    else
        recover__push_head(c, &head);
    recover__build_deps(c);
    return WR_OK;
}

int
recover_run(struct store *s, const struct store_recover_cb *cb, void *ctx,
            bool repair, char *err, size_t errlen)
{
    struct rctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.s = s;
    c.repair = repair;
    c.err = err;
    c.errlen = errlen;
    c.next_id = 1;
    idmap_init(&c.acks, sizeof(uint64_t));
    idmap_init(&c.moved, sizeof(struct mv));
    rc = phases(&c, cb, ctx);
    rctx_fini(&c);
    return rc;
}
