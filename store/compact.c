/*
 * compact.c: giving disk space back.
 *
 * Deleting (loop plans, thread unlinks). A sealed segment with no live
 * message may go once every segment its ACK/QDEL records depend on is
 * gone (store_int.h). The loop plans deletions in levels: level 0 holds
 * segments whose deps are all gone, level k those whose deps are gone or
 * in levels < k. The plan rides on the current batch; the thread runs it
 * after the batch is written and synced (so a moved copy is durable
 * before its old copy goes): it unlinks one level, fsyncs the directory,
 * then the next level, so a crash can never keep a segment while losing
 * one that protects it. Deps always point to older segments, so there are
 * no cycles and a chain of dead segments goes in one plan.
 *
 * Compacting (loop decides and re-encodes, thread reads). When the log
 * holds more than twice its live bytes plus two segments, the candidate
 * is the sparsest segment that nothing older pins. The loop sends the ids
 * of its live messages in slices; the thread reads the segment's summary
 * and the records (coalesced preads, checksums verified, paced by
 * compact_rate) and returns them; store_poll() appends each still-live
 * message again at the head, same id, flags | MOVED, listing only its
 * live queues, updates the relocation map and reports events->moved. The
 * old segment then has no live message and is deleted by the next plan,
 * after the batch holding the copies is durable. A record that cannot be
 * read marks the segment nocompact (it stays; the error is logged).
 *
 * While the disk is full (store.h), compaction pauses (its copies need
 * space; a job's result is dropped) and no dead head is sealed early;
 * deletions are still planned, and journal.c runs them without waiting
 * for the batch that waits for space, unless a batch before them holds
 * compaction copies (the batch's moves flag).
 *
 * A dead head segment larger than segment_size/8 is sealed early (at most
 * once a second, so that a consumer keeping up does not turn the log into
 * a stream of tiny segments) so that a fully consumed log shrinks to one
 * small segment; the store thread's idle tick makes sure this happens
 * once traffic stops.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- loop: deletion planning */

static bool
gone_or_planned(const struct store *s, uint32_t no, int level)
{
    const struct seg *g = seg_find(s, no);

    return !g || (g->plan_level >= 0 && g->plan_level < level);
}

static void
prune_deps(const struct store *s, struct seg *g)
{
    uint32_t k = 0;

    for (uint32_t i = 0; i < g->ndeps; i++) {
        if (seg_find(s, g->deps[i]))
            g->deps[k++] = g->deps[i];
    }
    g->ndeps = k;
}

static bool
deletable(const struct store *s, const struct seg *g)
{
    return g != store_head(s) && g->sealed && !g->unlinking &&
           g->live_pairs == 0;
}

static void
unl_push(struct batch *b, uint32_t no)
{
    if (b->nunl == b->capunl) {
        b->capunl = b->capunl ? 2 * b->capunl : 16;
        b->unl = xrealloc(b->unl, b->capunl * sizeof(*b->unl));
    }
    b->unl[b->nunl++] = no;
}

static void
plan_unlinks(struct store *s)
{
    struct batch *b = s->cur;

    for (size_t i = 0; i + 1 < s->nsegs; i++)
        prune_deps(s, s->segs[i]);
    for (int level = 0;; level++) {
        size_t planned = 0;

        for (size_t i = 0; i + 1 < s->nsegs; i++) {
            struct seg *g = s->segs[i];
            bool ok = deletable(s, g) && g->plan_level < 0;

            for (uint32_t d = 0; ok && d < g->ndeps; d++)
                ok = gone_or_planned(s, g->deps[d], level);
            if (!ok)
                continue;
            g->plan_level = level;
            unl_push(b, g->no);
            planned++;
        }
        if (planned == 0)
            break;
        unl_push(b, UNLINK_LEVEL);
    }
    for (size_t i = 0; i + 1 < s->nsegs; i++) {
        struct seg *g = s->segs[i];

        if (g->plan_level < 0)
            continue;
        g->plan_level = -1;
        g->unlinking = true;
        s->unlinks_planned++;
        if (g->rfd >= 0) {
            s->io->close(s->io->arg, g->rfd);
            g->rfd = -1;
        }
        seg_release_arrays(g);
    }
}

void
compact_unlinked(struct store *s, const uint32_t *nos, size_t n,
                 const uint32_t *failed, size_t nfailed)
{
    for (size_t i = 0; i < n; i++) {
        struct seg *g = seg_find(s, nos[i]);
        size_t k;

        if (!g)
            continue;
        for (k = 0; s->segs[k] != g; k++)
            ;
        memmove(s->segs + k, s->segs + k + 1,
                (s->nsegs - k - 1) * sizeof(*s->segs));
        s->nsegs--;
        seg_free(g, s->io);
        s->maint_dirty = true;
    }
    for (size_t i = 0; i < nfailed; i++) {
        struct seg *g = seg_find(s, failed[i]);

        if (g)
            g->unlinking = false;
    }
}

/* ---- loop: compaction */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static bool
deps_gone(const struct store *s, const struct seg *g)
{
    for (uint32_t d = 0; d < g->ndeps; d++) {
        if (seg_find(s, g->deps[d]))
            return false;
    }
    return true;
}

/*
 * Compaction runs only when the log holds more than twice its live data
 * plus two segments, so that a consumer lagging behind a FIFO queue (the
 * oldest segment half consumed) costs no extra writes. The victim is the
 * sparsest segment (ties: the oldest) that nothing older pins, i.e. one
 * that can be deleted as soon as its live messages have moved.
 */
static struct seg *
candidate(const struct store *s)
{
    uint64_t total = 0, live = 0;
    struct seg *best = NULL;

    for (size_t i = 0; i + 1 < s->nsegs; i++) {
        struct seg *g = s->segs[i];

        if (g->unlinking)
            continue;
        total += g->size;
        if (g->nrecs)
            live += g->size * g->live_msgs / g->nrecs;
        if (!g->sealed || g->live_pairs == 0 || g->nocompact ||
            !deps_gone(s, g))
            continue;
        if (!best || (uint64_t)g->live_msgs * best->nrecs <
                         (uint64_t)best->live_msgs * g->nrecs)
            best = g;
    }
    return best && total > 2 * live + 2 * s->seg_size ? best : NULL;
}

bool
compact_wanted(const struct store *s)
{
    return !atomic_load(&((struct store *)s)->failed) && candidate(s);
}

static void
ids_push(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = id;
}

static void
compact_begin(struct store *s, struct seg *g)
{
    size_t cap = 0, it = 0;
    uint64_t key;
    void *val;

    s->cp.nids = 0;
    for (uint32_t i = 0; g->mask && i < g->n; i++) {
        if (g->mask[i])
            ids_push(&s->cp.ids, &s->cp.nids, &cap, seg_slot_id(g, i));
    }
    while (idmap_next(&s->reloc, &it, &key, &val)) {
        const struct reloc *rl = val;

        if (rl->seg == g->no && rl->mask)
            ids_push(&s->cp.ids, &s->cp.nids, &cap, key);
    }
    qsort(s->cp.ids, s->cp.nids, sizeof(*s->cp.ids), cmp_u64);
    s->cp.seg = g->no;
    s->cp.next = 0;
    s->cp.active = true;
    log_debug("store %s: compacting segment %u (%u of %u messages live)",
              s->dir, g->no, g->live_msgs, g->nrecs);
}

static void
compact_send(struct store *s)
{
    struct seg *g = seg_find(s, s->cp.seg);
    struct cjob *j;
    size_t n;

    if (!g || s->cp.next >= s->cp.nids) {
        s->cp.active = false;
        free(s->cp.ids);
        s->cp.ids = NULL;
        return;
    }
    n = WR_MIN(COMPACT_JOB_IDS, s->cp.nids - s->cp.next);
    j = xcalloc(1, sizeof(*j));
    j->seg = g->no;
    j->salt = g->salt;
    j->ids = xmemdup(s->cp.ids + s->cp.next, n * sizeof(*j->ids));
    j->nids = n;
    pthread_mutex_lock(&s->mu);
    WR_ASSERT(s->job == NULL);
    s->job = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->cp.job_out = true;
}

void
compact_maintain(struct store *s)
{
    struct seg *h = store_head(s), *g;
    bool full = atomic_load(&s->nospace);

    if (atomic_load(&s->failed) || s->closing)
        return;
    if (!full && h->live_pairs == 0 && h->nwritten > 0 &&
        h->size > s->seg_size / 8 && wr_now_ms() - s->dead_roll_ms >= 1000) {
        s->dead_roll_ms = wr_now_ms();
        journal_roll(s);
    }
    if (s->maint_dirty) {
        s->maint_dirty = false;
        plan_unlinks(s);
    }
    /* a full disk: deletions go on (they give space back), copies wait */
    if (s->cp.job_out || full)
        return;
    if (s->cp.active) {
        compact_send(s);
        return;
    }
    /* scanning every segment is cheap, but not on every poll */
    if (wr_now_ms() - s->cand_ms < 100)
        return;
    s->cand_ms = wr_now_ms();
    g = candidate(s);
    if (g) {
        compact_begin(s, g);
        compact_send(s);
    }
}

static void
move_one(struct store *s, struct seg *old, const struct rec_msg *m,
         const struct store_events *ev, void *ctx)
{
    struct mref r;
    const struct qset *q;
    uint64_t live[64], *qids = live;
    uint32_t n = 0, cnt;
    uint64_t pos;
    uint16_t set;
    struct seg *h;
    struct reloc *rl;

    if (!live_find(s, m->id, &r) || r.g != old)
        return;
    cnt = live_count(&r);
    if (cnt == 0)
        return;
    q = old->sets[r.set];
    if (cnt > WR_ARRAY_LEN(live))
        qids = xmalloc(cnt * sizeof(*qids));
    for (uint32_t j = 0; j < q->n; j++) {
        if (live_test(&r, (int)j))
            qids[n++] = q->qids[j];
    }
    WR_ASSERT(n == cnt);
    /* The old copy leaves its segment (not an ack: no deps). */
    if (q->n > SET_NARROW_MAX)
        seg_wide_del(old, seg_wide(old, m->id, q->n, false));
    *r.mask = 0;
    old->live_pairs -= cnt;
    old->live_msgs--;
    h = journal_put_msg(s, m->id, (uint8_t)(m->flags | REC_F_MOVED), qids, n,
                        m->meta, m->body, &pos, &set);
    s->cur->moves = true;
    /* the copy must outlive the old record (recover.c, winner_deps) */
    seg_dep_add(h, old->no);
    rl = idmap_find(&s->reloc, m->id);
    if (!rl)
        rl = idmap_add(&s->reloc, m->id);
    rl->seg = h->no;
    rl->prev = old->no;
    rl->set = set;
    rl->mask = seg_full_mask(n);
    if (n > SET_NARROW_MAX)
        seg_wide(h, m->id, n, true);
    h->live_msgs++;
    h->live_pairs += n;
    s->lsn++;
    s->moved_msgs++;
    for (uint32_t i = 0; i < n; i++) {
        if (s->hot)
            hot_move(s->hot, qids[i], m->id, pos);
        if (ev && ev->moved)
            ev->moved(ctx, qids[i], m->id, pos);
    }
    if (qids != live)
        free(qids);
}

void
compact_apply(struct store *s, struct cres *r, const struct store_events *ev,
              void *ctx)
{
    struct seg *g = seg_find(s, r->seg);

    s->cp.job_out = false;
    if (!g || !s->cp.active || s->cp.seg != r->seg || g->unlinking ||
        atomic_load(&s->nospace)) {
        /* a full disk drops the copies: they would need space first */
        s->cp.active = false;
        return;
    }
    if (r->failed || r->nbad > 0) {
        log_err("store %s: compaction of segment %u stopped: %s; the "
                "segment stays on disk",
                s->dir, g->no,
                r->failed ? "its summary is unreadable"
                          : "some records are unreadable");
        g->nocompact = true;
    }
    for (size_t off = 0; off + REC_HDR_SIZE <= r->recs.len;) {
        const uint8_t *p = r->recs.data + off;
        uint32_t len = be32_load(p);
        struct rec_msg m;

        if (rec_msg_decode(bytes_of(p + REC_HDR_SIZE, len - REC_HDR_SIZE), &m))
            move_one(s, g, &m, ev, ctx);
        off += len;
    }
    s->cp.next += r->ndone;
    if (g->nocompact || s->cp.next >= s->cp.nids) {
        s->cp.active = false;
        free(s->cp.ids);
        s->cp.ids = NULL;
    }
    s->maint_dirty = true;
}

/* ---- thread: reading records for a compaction job */

void
compact_cache_drop(struct store *s)
{
    if (s->csum.valid && s->csum.fd >= 0)
        s->io->close(s->io->arg, s->csum.fd);
    buf_fini(&s->csum.raw);
    s->csum.valid = false;
    s->csum.fd = -1;
}

void
compact_job_free(struct cjob *j)
{
    if (!j)
        return;
    free(j->ids);
    free(j);
}

void
compact_res_free(struct cres *r)
{
    if (!r)
        return;
    buf_fini(&r->recs);
    free(r->bad);
    free(r);
}

static bool
cache_load(struct store *s, uint32_t no, uint64_t salt)
{
    char path[SEG_PATH_MAX];
    const char *why = NULL;
    uint64_t size, next_id;

    if (s->csum.valid && s->csum.seg == no)
        return true;
    compact_cache_drop(s);
    seg_path(path, sizeof(path), s->dir, no);
    s->csum.fd = s->io->open(s->io->arg, path, O_RDONLY, 0);
    if (s->csum.fd < 0 || s->io->fsize(s->io->arg, s->csum.fd, &size) < 0) {
        log_err("store: compaction cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    buf_init(&s->csum.raw);
    if (recover_read_trailer(s->io, s->csum.fd, size, salt, &s->csum.raw,
                             &s->csum.sum, &next_id, &why) != WR_OK) {
        log_err("store: compaction cannot read the summary of %s: %s", path,
                why);
        goto fail;
    }
    s->csum.seg = no;
    s->csum.valid = true;
    return true;
fail:
    if (s->csum.fd >= 0)
        s->io->close(s->io->arg, s->csum.fd);
    s->csum.fd = -1;
    buf_fini(&s->csum.raw);
    return false;
}

struct want {
    uint64_t id;
    uint32_t off;
    uint32_t size; /* 0: not in the summary */
};

static int
cmp_want_off(const void *a, const void *b)
{
    const struct want *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

static void
find_wanted(const struct store *s, const struct cjob *j, struct want *w)
{
    struct rec_sum_it it;
    struct rec_sum_msg m;
    struct cursor c;
    uint32_t *setn = xmalloc((s->csum.sum.nsets + 1) * sizeof(*setn));
    const uint8_t *qids;

    cur_init(&c, s->csum.sum.sets.ptr, s->csum.sum.sets.len);
    for (uint32_t i = 0; i < s->csum.sum.nsets; i++)
        rec_sum_set_next(&c, &setn[i], &qids);
    for (size_t i = 0; i < j->nids; i++)
        w[i] = (struct want){j->ids[i], 0, 0};
    rec_sum_msgs_begin(&s->csum.sum, &it);
    for (uint32_t i = 0; i < s->csum.sum.nmsgs; i++) {
        struct want *hit, key;

        rec_sum_msg_next(&it, &m);
        key.id = m.id;
        hit = bsearch(&key, w, j->nids, sizeof(*w), cmp_u64);
        if (hit)
            *hit =
                (struct want){m.id, m.off,
                              (uint32_t)rec_msg_size(m.id, setn[m.set],
                                                     m.meta_len, m.body_len)};
    }
    free(setn);
}

static void
bad_push(struct cres *r, uint64_t id)
{
    r->bad = xrealloc(r->bad, (r->nbad + 1) * sizeof(*r->bad));
    r->bad[r->nbad++] = id;
}

/* Reads w[0..n) (sorted by offset) in coalesced ranges. */
static void
read_wanted(struct store *s, const struct cjob *j, struct want *w, size_t n,
            struct cres *r)
{
    struct buf tmp;

    buf_init(&tmp);
    for (size_t i = 0; i < n;) {
        size_t k = i + 1;
        uint64_t start = w[i].off, end = w[i].off + (uint64_t)w[i].size;
        ssize_t got;

        while (k < n && w[k].off >= end && w[k].off - end < 65536 &&
               w[k].off + (uint64_t)w[k].size - start <= (1u << 20)) {
            end = w[k].off + (uint64_t)w[k].size;
            k++;
        }
        buf_reset(&tmp);
        buf_reserve(&tmp, end - start);
        got = io_pread_all(s->io, s->csum.fd, tmp.data, end - start, start);
        for (; i < k; i++) {
            uint64_t rel = w[i].off - start;
            struct rec rec;
            struct rec_msg m;
            const char *why;

            if (got < 0 || rel + w[i].size > (uint64_t)got ||
                rec_check(tmp.data + rel, w[i].size, j->salt, w[i].off, &rec,
                          &why) != REC_OK ||
                rec.type != REC_MSG || rec.len != w[i].size ||
                !rec_msg_decode(rec.payload, &m) || m.id != w[i].id) {
                log_err("store: compaction: record of message %llu in "
                        "segment %u at offset %u is unreadable",
                        (unsigned long long)w[i].id, j->seg, w[i].off);
                bad_push(r, w[i].id);
                continue;
            }
            buf_append(&r->recs, tmp.data + rel, w[i].size);
        }
    }
    buf_fini(&tmp);
}

void
compact_run_job(struct store *s, const struct cjob *j, struct cres *r)
{
    struct want *w;
    size_t n = 0, nread = 0;
    uint64_t bytes = 0;

    r->seg = j->seg;
    if (!cache_load(s, j->seg, j->salt)) {
        r->failed = true;
        r->ndone = j->nids;
        return;
    }
    w = xmalloc((j->nids + 1) * sizeof(*w));
    find_wanted(s, j, w);
    /* the leading ids that fit the byte budget (at least one) */
    while (n < j->nids && (n == 0 || bytes + w[n].size <= COMPACT_JOB_BYTES))
        bytes += w[n++].size;
    r->ndone = n;
    for (size_t i = 0; i < n; i++) {
        if (w[i].size == 0)
            bad_push(r, w[i].id);
        else
            w[nread++] = w[i];
    }
    qsort(w, nread, sizeof(*w), cmp_want_off);
    read_wanted(s, j, w, nread, r);
    free(w);
}

/* ---- thread: unlinking a plan */

static void
list_push(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

/* Removes the planned segments from the manifest. False when the new
   version could not be written: nothing may be unlinked then (logged;
   a failed sync also fails the store). */
static bool
unlist(struct store *s, const struct batch *b)
{
    struct mf_entry *gone = xmalloc((b->nunl + 1) * sizeof(*gone));
    char why[SEG_PATH_MAX + 64];
    enum mf_status st = MF_OK;
    size_t n = 0;

    for (size_t i = 0; i < b->nunl; i++) {
        if (b->unl[i] != UNLINK_LEVEL &&
            manifest_remove(s, b->unl[i], &gone[n]))
            n++;
    }
    if (n > 0)
        st = manifest_write(s, why, sizeof(why));
    if (st != MF_OK) {
        /* the version in force still lists them */
        for (size_t i = 0; i < n; i++)
            manifest_add(s, gone[i].no, gone[i].first_id);
        if (st == MF_SYNC_FAILED)
            journal_fail(s, "%s", why);
        else
            log_warn("store: %s; segments are deleted later", why);
    }
    free(gone);
    return st == MF_OK;
}

void
compact_do_unlinks(struct store *s, const struct batch *b)
{
    uint32_t *done = NULL, *failed = NULL;
    size_t ndone = 0, capdone = 0, nfailed = 0, capfailed = 0;
    char path[SEG_PATH_MAX];
    bool stop = false;

    /* moved copies and acks must be durable before their old copies go */
    if (!journal_sync(s))
        return;
    /* and the segments must leave the manifest before their files */
    if (!unlist(s, b)) {
        for (size_t i = 0; i < b->nunl; i++) {
            if (b->unl[i] != UNLINK_LEVEL)
                list_push(&failed, &nfailed, &capfailed, b->unl[i]);
        }
        stop = true;
    }
    for (size_t i = 0; i < b->nunl && !stop; i++) {
        size_t level_done = 0;

        for (; i < b->nunl && b->unl[i] != UNLINK_LEVEL; i++) {
            uint32_t no = b->unl[i];

            if (stop) {
                list_push(&failed, &nfailed, &capfailed, no);
                continue;
            }
            if (s->csum.valid && s->csum.seg == no)
                compact_cache_drop(s);
            seg_path(path, sizeof(path), s->dir, no);
            if (s->io->unlink(s->io->arg, path) < 0 && errno != ENOENT) {
                log_warn("store: cannot delete %s: %s; will retry", path,
                         strerror(errno));
                list_push(&failed, &nfailed, &capfailed, no);
                stop = true; /* later levels may depend on it */
                continue;
            }
            list_push(&done, &ndone, &capdone, no);
            level_done++;
        }
        if (level_done > 0 && !journal_sync_dir(s))
            stop = true;
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < ndone; i++)
        list_push(&s->unlinked, &s->nunlinked, &s->capunlinked, done[i]);
    for (size_t i = 0; i < nfailed; i++)
        list_push(&s->unl_failed, &s->nunl_failed, &s->capunl_failed,
                  failed[i]);
    pthread_mutex_unlock(&s->mu);
    free(done);
    free(failed);
}
