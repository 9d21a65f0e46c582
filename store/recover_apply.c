/*
 * recover_apply.c: phases 3 and 4 of store_open's replay (recover.c):
 * what recovery writes, and what it hands to the loop.
 *
 * Phase 3: write: seal the scanned segments that need a trailer (the
 *   unsealed newest, repaired ones), after truncating a torn tail or
 *   junk; create the new head segment; fsync the directory; rewrite the
 *   manifest. On a full disk the head goes on in the newest segment
 *   instead of a new one.
 * Phase 4: build the loop's view (segments, live bits, relocation map)
 *   and report every live (queue, message) pair: originals in id order,
 *   merged with the moved copies sorted by id, so each queue sees
 *   increasing ids. Transient messages are dead here.
 */
#include "store/recover_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- phase 3: writing */

/* write_trailer and create_head: the disk is full (nothing was kept). */
#define NO_SPACE 1

static bool
is_no_space(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* Seals r at r->end. Returns WR_OK, WR_ERR (failed) or NO_SPACE (r is
   left ending at r->end, unsealed). */
static int
write_trailer(struct rctx *c, struct rseg *r)
{
    const struct store_io *io = c->s->io;
    char path[SEG_PATH_MAX];
    struct buf t;
    uint8_t *p;
    size_t len;
    int rc = WR_OK;

    seg_path(path, sizeof(path), c->s->dir, r->no);
    buf_init(&t);
    len = rec_summary_encode(&t, r->bld->sum, r->hdr.salt, (uint32_t)r->end);
    p = buf_reserve(&t, REC_SEAL_SIZE);
    rec_seal_encode(p, (uint32_t)r->end, c->next_id, r->hdr.salt,
                    (uint32_t)(r->end + len));
    t.len += REC_SEAL_SIZE;
    if (r->end + t.len > UINT32_MAX)
        rc = recover__fail(c, "store: %s would grow past 4 GiB", path);
    else if (r->size > r->end && io->ftruncate(io->arg, r->fd, r->end) < 0)
        rc = recover__fail(c,
                           "store: cannot truncate %s at byte offset %llu: %s",
                           path, (unsigned long long)r->end, strerror(errno));
    else if (io_pwrite_all(io, r->fd, t.data, t.len, r->end) < 0)
        rc = is_no_space(errno)
                 ? NO_SPACE
                 : recover__fail(
                       c, "store: cannot seal %s at byte offset %llu: %s", path,
                       (unsigned long long)r->end, strerror(errno));
    else if (io->fdatasync(io->arg, r->fd) < 0)
        rc = recover__fail(c, "store: cannot seal %s at byte offset %llu: %s",
                           path, (unsigned long long)r->end, strerror(errno));
    buf_fini(&t);
    if (rc == NO_SPACE) {
        /* what part of the trailer made it goes again */
        io->ftruncate(io->arg, r->fd, r->end);
        r->size = r->end;
        return rc;
    }
    /* the summary in r->raw stays valid: same sections */
    r->size = r->end + t.len;
    r->sealed = true;
    return rc;
}

/* Creates the new head segment's file (header, fdatasync, directory
   fsync); the loop's struct seg for it is pushed by recover__push_head().
   Returns WR_OK, WR_ERR or NO_SPACE (no file left behind). */
static int
create_head(struct rctx *c, struct seg_hdr *h)
{
    struct store *s = c->s;
    const struct store_io *io = s->io;
    char path[SEG_PATH_MAX];
    uint8_t hb[SEG_HDR_SIZE];
    int fd, e;

    if (c->max_no >= UINT32_MAX - 1)
        return recover__fail(c, "store: %s: segment numbers exhausted", s->dir);
    h->no = c->max_no + 1;
    wr_random(&h->salt, sizeof(h->salt));
    h->next_id = c->next_id;
    rec_hdr_encode(hb, h);
    seg_path(path, sizeof(path), s->dir, (uint32_t)h->no);
    fd = io->open(io->arg, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return is_no_space(errno)
                   ? NO_SPACE
                   : recover__fail(c, "store: cannot create %s: %s", path,
                                   strerror(errno));
    if (io_pwrite_all(io, fd, hb, sizeof(hb), 0) < 0 ||
        io->fdatasync(io->arg, fd) < 0 || io->fsync(io->arg, s->dirfd) < 0) {
        e = errno;
        io->close(io->arg, fd);
        if (!is_no_space(e))
            return recover__fail(c, "store: cannot create %s: %s", path,
                                 strerror(e));
        io->unlink(io->arg, path);
        return NO_SPACE;
    }
    s->wfd = fd;
    s->wseg = (uint32_t)h->no;
    return WR_OK;
}

struct rseg *
recover__newest_kept(struct rctx *c)
{
    for (size_t i = c->n; i > 0; i--) {
        if (!c->rs[i - 1].drop)
            return &c->rs[i - 1];
    }
    return NULL;
}

/*
 * The disk is full: instead of sealing the newest segment and starting
 * the next one, the head goes on in the newest segment, cut back to the
 * end of its last record (a sealed one loses its SUMMARY and SEAL, which
 * the next seal writes again). Needs no new disk block (store.h).
 */
static int
resume_newest(struct rctx *c, const char *what)
{
    const struct store_io *io = c->s->io;
    struct rseg *r = recover__newest_kept(c);
    char path[SEG_PATH_MAX];

    if (!r)
        return recover__fail(
            c,
            "store: %s: no space left on device %s, and no segment "
            "to go on with; free disk space and start again",
            c->s->dir, what);
    seg_path(path, sizeof(path), c->s->dir, r->no);
    if (!r->bld && recover__scan_segment(c, r, true, path) != WR_OK)
        return WR_ERR;
    r->end = r->data_end;
    if (r->size > r->end && io->ftruncate(io->arg, r->fd, r->end) < 0)
        return recover__fail(c, "store: cannot truncate %s: %s", path,
                             strerror(errno));
    r->size = r->end;
    r->sealed = false;
    r->resume = true;
    c->s->wfd = io->open(io->arg, path, O_WRONLY, 0);
    if (c->s->wfd < 0)
        return recover__fail(c, "store: cannot open %s: %s", path,
                             strerror(errno));
    c->s->wseg = r->no;
    log_err("store: no space left on device %s; the log goes on in %s at "
            "byte offset %llu. Free disk space",
            what, path, (unsigned long long)r->end);
    return WR_OK;
}

/* Phase 3: seals what needs it and starts the head (a new segment, or
   the newest one when the disk is full: *resumed). */
int
recover__write_phase(struct rctx *c, struct seg_hdr *head, bool *resumed)
{
    struct rseg *last = recover__newest_kept(c);
    int rc;

    *resumed = false;
    for (size_t i = 0; i < c->n; i++) {
        struct rseg *r = &c->rs[i];

        if (r->drop || !r->need_seal)
            continue;
        rc = write_trailer(c, r);
        if (rc == NO_SPACE && r == last)
            rc = resume_newest(c, "to seal the newest segment");
        else if (rc == NO_SPACE)
            rc = recover__fail(
                c,
                "store: %s: no space left on device to reseal a "
                "repaired segment; free disk space and start again",
                c->s->dir);
        if (rc != WR_OK)
            return WR_ERR;
    }
    *resumed = last && last->resume;
    if (*resumed)
        return WR_OK;
    rc = create_head(c, head);
    if (rc == NO_SPACE) {
        rc = resume_newest(c, "to create the next segment");
        *resumed = rc == WR_OK;
    }
    return rc;
}

void
recover__push_head(struct rctx *c, const struct seg_hdr *h)
{
    struct seg *g = seg_new((uint32_t)h->no, h->salt, h->next_id, true);

    g->size = SEG_HDR_SIZE;
    c->s->segs[c->s->nsegs++] = g;
}

/* The newest segment, built as a sealed one, becomes the head again:
   its summary builder (from the scan) and its sets' lookup table. */
void
recover__resume_head(struct rctx *c, struct rseg *r)
{
    struct seg *g = store_head(c->s);

    WR_ASSERT(g->no == r->no && r->bld && r->bld->sum);
    g->sealed = false;
    g->sum = r->bld->sum;
    r->bld->sum = NULL;
    for (uint32_t i = 0; i < g->nsets; i++) {
        struct qset *q = g->sets[i];

        HASH_ADD_KEYPTR(hh, g->set_hash, q->qids, 8 * (size_t)q->n, q);
    }
}

/* Phase 3, last: the manifest lists exactly the segments kept and the
   new head; then the segments torn at creation go. */
int
recover__record_manifest(struct rctx *c, const struct seg_hdr *head)
{
    struct store *s = c->s;
    char path[SEG_PATH_MAX], why[400];
    enum mf_status st;

    s->mf.n = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].drop)
            manifest_add(s, c->rs[i].no, c->rs[i].hdr.next_id);
    }
    if (head)
        manifest_add(s, (uint32_t)head->no, head->next_id);
    st = manifest_write(s, why, sizeof(why));
    if (st == MF_NO_SPACE) {
        /* the store thread writes it before anything becomes durable */
        log_warn("store: %s; it is written with the first records", why);
        s->mf_dirty = true;
    } else if (st != MF_OK) {
        return recover__fail(c, "store: %s", why);
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].remove)
            continue;
        seg_path(path, sizeof(path), s->dir, c->rs[i].no);
        if (s->mf_dirty && c->rs[i].listed)
            return recover__fail(
                c,
                "store: cannot remove %s, a segment torn at "
                "creation, while the manifest that lists it cannot "
                "be rewritten (%s); free disk space and start again",
                path, why);
        if (s->io->unlink(s->io->arg, path) < 0)
            return recover__fail(c, "store: cannot remove %s: %s", path,
                                 strerror(errno));
    }
    return WR_OK;
}

/* ---- phase 4: the loop's view */

/* Sets g's liveness state for id from bits; returns the mask byte. */
static uint8_t
install_bits(struct seg *g, uint64_t id, const struct qset *q,
             const uint64_t *bits, uint32_t cnt)
{
    struct wide *w;

    if (cnt == 0)
        return 0;
    g->live_pairs += cnt;
    g->live_msgs++;
    if (q->n <= SET_NARROW_MAX)
        return (uint8_t)bits[0];
    w = seg_wide(g, id, q->n, true);
    memcpy(w->bits, bits, 8 * (((size_t)q->n + 63) / 64));
    w->nlive = cnt;
    return 1;
}

struct live_copy {
    uint64_t id;
    struct seg *g;
    struct mv v;
};

static int
cmp_copy(const void *a, const void *b)
{
    const struct live_copy *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

static void
report(struct hot *hot, const struct store_recover_cb *cb, void *ctx,
       const struct seg *g, uint64_t id, const struct qset *q,
       const uint64_t *bits, uint32_t off, uint32_t meta_len, uint32_t body_len)
{
    struct store_recovered m;

    if ((!cb || !cb->message) && !hot)
        return;
    m.id = id;
    m.pos = POS_MAKE(g->no, off);
    m.meta_len = meta_len;
    m.body_len = body_len;
    for (uint32_t j = 0; j < q->n; j++) {
        if (bits[j / 64] >> (j % 64) & 1) {
            m.qid = q->qids[j];
            if (hot)
                hot_add(hot, &m.qid, 1, id, m.pos, meta_len, body_len);
            if (cb && cb->message)
                cb->message(ctx, &m);
        }
    }
}

static struct seg *
build_seg(struct rctx *c, struct rseg *r, uint64_t *floor)
{
    struct cursor cur;
    const uint8_t *qids;
    uint32_t n;
    struct seg *g =
        seg_new(r->no, r->hdr.salt, r->has_orig ? r->lo : *floor, false);

    /* first ids must grow with segment numbers (seg_find_by_id); a
       segment without originals takes the next id after the previous
       originals, whatever its header claims */
    if (r->has_orig)
        *floor = r->hi + 1;
    g->size = r->size;
    g->sealed = true;
    g->nrecs = r->sum.nmsgs;
    g->nwritten = r->sum.nmsgs + r->sum.ntombs;
    g->rfd = r->fd;
    r->fd = -1;
    cur_init(&cur, r->sum.sets.ptr, r->sum.sets.len);
    for (uint32_t i = 0; i < r->sum.nsets; i++) {
        rec_sum_set_next(&cur, &n, &qids);
        seg_set_append(g, qids, n);
    }
    c->s->segs[c->s->nsegs++] = g;
    return g;
}

/* The segment file holding the original record of id, if any: a binary
   search over the files with originals, whose [lo, hi] ranges increase
   (collect_msgs checked). */
static const struct rseg *
orig_holder(struct rctx *c, uint64_t id)
{
    size_t lo = 0, hi;

    if (!c->orig) {
        c->orig = xmalloc((c->n + 1) * sizeof(*c->orig));
        for (size_t i = 0; i < c->n; i++) {
            if (!c->rs[i].drop && c->rs[i].has_orig)
                c->orig[c->norig++] = &c->rs[i];
        }
    }
    hi = c->norig;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (id < c->orig[mid]->lo)
            hi = mid;
        else if (id > c->orig[mid]->hi)
            lo = mid + 1;
        else
            return c->orig[mid];
    }
    return NULL;
}

/* Moved copies: install the newest copy of each, list the live ones. */
static struct live_copy *
install_copies(struct rctx *c, size_t *ncopies, uint64_t *bits)
{
    struct store *s = c->s;
    struct live_copy *v = xmalloc((c->moved.count + 1) * sizeof(*v));
    size_t it = 0, n = 0;
    uint64_t id;
    void *val;

    idmap_reserve(&s->reloc, c->moved.count);
    while (idmap_next(&c->moved, &it, &id, &val)) {
        struct mv *m = val;
        struct seg *g = seg_find(s, m->seg);
        const struct rseg *o = orig_holder(c, id);
        const struct qset *q;
        struct reloc *rl;
        uint32_t cnt;

        /* the newest record of a message wins; the writer only ever puts
           copies after their original, a damaged or forged log may not */
        m->loses = o && o->no >= m->seg;
        recover__winner_deps(c, m, o);
        if (!g || m->set >= g->nsets || m->loses)
            continue;
        q = g->sets[m->set];
        cnt = recover__live_bits(c, id, m->flags, q, bits);
        if (cnt == 0)
            continue;
        rl = idmap_add(&s->reloc, id);
        rl->seg = m->seg;
        rl->prev = m->prev;
        rl->set = (uint16_t)m->set;
        rl->mask = install_bits(g, id, q, bits, cnt);
        v[n].id = id;
        v[n].g = g;
        v[n].v = *m;
        n++;
    }
    qsort(v, n, sizeof(*v), cmp_copy);
    *ncopies = n;
    return v;
}

static void
report_copy(struct rctx *c, const struct store_recover_cb *cb, void *ctx,
            const struct live_copy *lc)
{
    const struct qset *q = lc->g->sets[lc->v.set];
    uint64_t bits[1024]; /* 65535 bits */

    recover__live_bits(c, lc->id, lc->v.flags, q, bits);
    report(c->s->hot, cb, ctx, lc->g, lc->id, q, bits, lc->v.off,
           lc->v.meta_len, lc->v.body_len);
}

void
recover__build_and_report(struct rctx *c, const struct store_recover_cb *cb,
                          void *ctx)
{
    struct store *s = c->s;
    uint64_t *bits = xmalloc(8 * 1024); /* 65535 bits */
    struct live_copy *copies;
    size_t ncopies, ci = 0;
    uint64_t floor = 1;

    s->segs = xcalloc(c->n + 1, sizeof(*s->segs));
    s->capsegs = c->n + 1;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].drop)
            build_seg(c, &c->rs[i], &floor);
    }
    copies = install_copies(c, &ncopies, bits);
    for (size_t i = 0, k = 0; i < c->n; i++) {
        struct rseg *r = &c->rs[i];
        struct rec_sum_it it;
        struct rec_sum_msg m;
        struct seg *g;

        if (r->drop)
            continue;
        g = s->segs[k++];
        rec_sum_msgs_begin(&r->sum, &it);
        for (uint32_t e = 0; e < r->sum.nmsgs; e++) {
            const struct qset *q;
            uint32_t cnt = 0;
            struct mv *v;

            rec_sum_msg_next(&it, &m);
            if (m.flags & REC_F_MOVED)
                continue;
            q = g->sets[m.set];
            if (!c->moved.count || !(v = idmap_find(&c->moved, m.id)) ||
                v->loses)
                cnt = recover__live_bits(c, m.id, m.flags, q, bits);
            seg_add_original(g, m.id, (uint16_t)m.set, q->n,
                             install_bits(g, m.id, q, bits, cnt));
            while (ci < ncopies && copies[ci].id < m.id)
                report_copy(c, cb, ctx, &copies[ci++]);
            if (cnt)
                report(s->hot, cb, ctx, g, m.id, q, bits, m.off, m.meta_len,
                       m.body_len);
        }
    }
    while (ci < ncopies)
        report_copy(c, cb, ctx, &copies[ci++]);
    free(copies);
    free(bits);
}
