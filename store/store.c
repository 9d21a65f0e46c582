/*
 * store.c: the public API (store/store.h) over the journal, the liveness
 * bookkeeping, recovery and compaction.
 *
 * Hot paths, all on the loop thread and free of syscalls and locks:
 *   store_append_msg: sort the queue ids, reserve the record's bytes in
 *     the current batch (journal_put_msg), encode, checksum, append one
 *     summary entry, set the message's live bits in the head segment.
 *   store_append_ack: locate the message (relocation map, else binary
 *     search on the segments' first ids), clear the queue's bit, note the
 *     segments the future ACK record depends on, and queue the id for the
 *     queue's ACK record of this flush.
 */
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t
store_qid(struct bytes queue_name)
{
    return XXH3_64bits(queue_name.ptr, queue_name.len);
}

/* ---- open and close */

static int
mkdir_p(const char *dir, char *err, size_t errlen)
{
    char *p = xstrdup(dir);
    int rc = WR_OK;

    for (char *q = p + 1;; q++) {
        bool end = *q == '\0';

        if (*q != '/' && !end)
            continue;
        *q = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "store: cannot create directory %s: %s", p,
                     strerror(errno));
            rc = WR_ERR;
            break;
        }
        if (end)
            break;
        *q = '/';
    }
    free(p);
    return rc;
}

/* One process per store directory: a second broker (or a forgotten one)
   on the same directory would interleave segments. flock is released by
   the kernel when the process dies, kill -9 included. */
static int
lock_dir(struct store *s, char *err, size_t errlen)
{
    char path[SEG_PATH_MAX];

    snprintf(path, sizeof(path), "%s/LOCK", s->dir);
    s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0) {
        snprintf(err, errlen, "store: cannot open %s: %s", path,
                 strerror(errno));
        return WR_ERR;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen,
                 "store: %s is in use by another process (%s is locked)",
                 s->dir, path);
        return WR_ERR;
    }
    return WR_OK;
}

static void
store_free(struct store *s)
{
    struct pend_ack *pa, *tmp;

    for (size_t i = 0; i < s->nsegs; i++)
        seg_free(s->segs[i], s->io);
    free(s->segs);
    idmap_fini(&s->reloc);
    journal_batch_free(s->cur);
    journal_batch_free(s->spare);
    while (s->infl_head) {
        struct batch *b = s->infl_head;

        s->infl_head = b->next;
        journal_batch_free(b);
    }
    HASH_ITER(hh, s->acks, pa, tmp)
    {
        HASH_DEL(s->acks, pa);
        free(pa->ids);
        free(pa);
    }
    free(s->dirty);
    free(s->pdeps);
    free(s->qtmp);
    free(s->cp.ids);
    buf_fini(&s->scratch);
    buf_fini(&s->rblock.data);
    compact_job_free(s->job);
    compact_res_free(s->res);
    free(s->unlinked);
    free(s->unl_failed);
    free(s->mf.v);
    if (s->wfd >= 0)
        s->io->close(s->io->arg, s->wfd);
    if (s->csum.fd >= 0)
        compact_cache_drop(s);
    if (s->dirfd >= 0)
        s->io->close(s->io->arg, s->dirfd);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    hot_free(s->hot);
    free(s->dir);
    free(s);
}

static int
check_config(const struct store_config *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->dir || !*cfg->dir) {
        snprintf(err, errlen, "store: no directory given");
        return WR_ERR;
    }
    if (cfg->fsync != STORE_FSYNC_ALWAYS &&
        cfg->fsync != STORE_FSYNC_INTERVAL && cfg->fsync != STORE_FSYNC_NEVER) {
        snprintf(err, errlen, "store: unknown fsync policy %d",
                 (int)cfg->fsync);
        return WR_ERR;
    }
    if (cfg->segment_size && (cfg->segment_size < STORE_SEGMENT_SIZE_MIN ||
                              cfg->segment_size > STORE_SEGMENT_SIZE_MAX)) {
        snprintf(err, errlen, "store: segment size %llu out of range [%u, %u]",
                 (unsigned long long)cfg->segment_size, STORE_SEGMENT_SIZE_MIN,
                 STORE_SEGMENT_SIZE_MAX);
        return WR_ERR;
    }
    return WR_OK;
}

static struct store *
store_alloc(const struct store_config *cfg)
{
    struct store *s = xcalloc(1, sizeof(*s));
    pthread_condattr_t ca;
    size_t n;

    s->dir = xstrdup(cfg->dir);
    n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    s->fsync = cfg->fsync;
    s->interval_ms = cfg->fsync_interval_ms ? cfg->fsync_interval_ms : 200;
    s->seg_size =
        cfg->segment_size ? cfg->segment_size : STORE_SEGMENT_SIZE_DEFAULT;
    s->compact_rate = cfg->compact_rate ? cfg->compact_rate : 64u << 20;
    s->io = cfg->io ? cfg->io : &store_io_default;
    s->wake = cfg->wake;
    s->wake_arg = cfg->wake_arg;
    if (cfg->hot_index)
        s->hot = hot_new();
    s->dirfd = -1;
    s->lockfd = -1;
    s->wfd = -1;
    s->csum.fd = -1;
    idmap_init(&s->reloc, sizeof(struct reloc));
    buf_init(&s->scratch);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    wr_random(&s->rng, sizeof(s->rng));
    s->cur = journal_batch_new();
    /* LSN 1 is the recovered state: durable from the start */
    s->lsn = 1;
    s->handed_lsn = 1;
    s->durable_seen = 1;
    atomic_store(&s->durable_lsn, 1);
    return s;
}

int
store_open(const struct store_config *cfg, const struct store_recover_cb *cb,
           void *ctx, struct store **out, char *err, size_t errlen)
{
    struct store *s;

    *out = NULL;
    if (check_config(cfg, err, errlen) != WR_OK ||
        mkdir_p(cfg->dir, err, errlen) != WR_OK)
        return WR_ERR;
    s = store_alloc(cfg);
    s->dirfd = s->io->open(s->io->arg, s->dir, O_RDONLY | O_DIRECTORY, 0);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "store: cannot open directory %s: %s", s->dir,
                 strerror(errno));
        goto fail;
    }
    if (lock_dir(s, err, errlen) != WR_OK ||
        recover_run(s, cb, ctx, cfg->repair, err, errlen) != WR_OK)
        goto fail;
    s->maint_dirty = true;
    atomic_store(&s->durable_next_id, s->next_id);
    compact_maintain(s);
    if (journal_start(s, err, errlen) != WR_OK)
        goto fail;
    *out = s;
    return WR_OK;
fail: /* nothing was started */
    store_free(s);
    return WR_ERR;
}

/* The numbers of dir's segment files above no, and whether no's exists. */
static int
segs_after(const char *dir, uint32_t no, uint32_t **out, size_t *n, bool *has,
           char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;
    uint32_t k;

    *out = NULL;
    *n = 0;
    *has = false;
    if (!d) {
        snprintf(err, errlen, "store: cannot list %s: %s", dir,
                 strerror(errno));
        return WR_ERR;
    }
    while ((e = readdir(d)) != NULL) {
        if (!seg_parse_name(e->d_name, &k) || k < no)
            continue;
        if (k == no) {
            *has = true;
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = k;
    }
    closedir(d);
    return WR_OK;
}

/* The segments after the cut leave the manifest durably, then go. */
static int
drop_later(struct store *s, const uint32_t *later, size_t n, char *err,
           size_t errlen)
{
    char path[SEG_PATH_MAX];
    bool found;

    if (n == 0)
        return WR_OK;
    if (manifest_read(s, &found, err, errlen) != WR_OK)
        return WR_ERR;
    if (found) {
        for (size_t i = 0; i < n; i++)
            manifest_remove(s, later[i], NULL);
        if (manifest_write(s, err, errlen) != MF_OK)
            return WR_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        seg_path(path, sizeof(path), s->dir, later[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "store: cannot remove %s: %s", path,
                     strerror(errno));
            return WR_ERR;
        }
    }
    return WR_OK;
}

int
store_truncate(const char *dir, uint64_t pos, char *err, size_t errlen)
{
    struct store_config cfg = {.dir = dir};
    uint32_t no = POS_SEG(pos), off = POS_OFF(pos), *later = NULL;
    char path[SEG_PATH_MAX];
    struct store *s;
    struct stat st;
    size_t nlater = 0;
    bool has = false;
    int fd = -1, rc = WR_ERR;

    if (off < SEG_HDR_SIZE) {
        snprintf(err, errlen, "store: %s: no record ends at offset %u", dir,
                 off);
        return WR_ERR;
    }
    s = store_alloc(&cfg);
    seg_path(path, sizeof(path), s->dir, no);
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "store: cannot open directory %s: %s", s->dir,
                 strerror(errno));
        goto out;
    }
    if (lock_dir(s, err, errlen) != WR_OK ||
        segs_after(s->dir, no, &later, &nlater, &has, err, errlen) != WR_OK)
        goto out;
    /* nothing changes unless the cut is inside what the log holds */
    if (!has || stat(path, &st) != 0 || (uint64_t)st.st_size < off) {
        snprintf(err, errlen, "store: %s is shorter than position %u:%u", dir,
                 no, off);
        goto out;
    }
    if (drop_later(s, later, nlater, err, errlen) != WR_OK)
        goto out;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0 ||
        fsync(s->dirfd) != 0) {
        snprintf(err, errlen, "store: cannot truncate %s at %u: %s", path, off,
                 strerror(errno));
        goto out;
    }
    rc = WR_OK;
out:
    if (fd >= 0)
        close(fd);
    free(later);
    store_free(s);
    return rc;
}

bool
store_close(struct store *s)
{
    bool clean;

    if (!s)
        return false;
    s->closing = true;
    atomic_store(&s->stopping, true); /* a full disk is not waited for */
    if (!atomic_load(&s->failed)) {
        /* after a clean close every segment is sealed: the next open
           reads summaries only */
        journal_encode_acks(s);
        journal_seal_head(s);
    }
    journal_handoff(s, true);
    journal_join(s);
    /* the thread is gone: nothing can still fail or become durable */
    clean = !atomic_load(&s->failed) && !atomic_load(&s->nospace);
    store_free(s);
    return clean;
}

/* ---- handing an open log over (store.h, "Hot index") */

uint64_t
store_hot_pairs(const struct store *s)
{
    return hot_pairs(s->hot);
}

void
store_hot_report(const struct store *s, const struct store_recover_cb *cb,
                 void *ctx)
{
    WR_ASSERT(s->hot);
    hot_report(s->hot, cb, ctx);
}

bool
store_suspend(struct store *s)
{
    atomic_store(&s->stopping, true); /* a full disk is not waited for */
    journal_handoff(s, true);
    journal_join(s);
    atomic_store(&s->stopping, false);
    return !atomic_load(&s->failed) && !atomic_load(&s->nospace);
}

int
store_resume(struct store *s, const char *dir, void (*wake)(void *arg),
             void *wake_arg, char *err, size_t errlen)
{
    int dirfd = s->io->open(s->io->arg, dir, O_RDONLY | O_DIRECTORY, 0);

    if (dirfd < 0) {
        snprintf(err, errlen, "store: cannot open directory %s: %s", dir,
                 strerror(errno));
        return WR_ERR;
    }
    s->io->close(s->io->arg, s->dirfd);
    s->dirfd = dirfd;
    free(s->dir);
    s->dir = xstrdup(dir);
    /* the LOCK file may have moved with the directory: a second flock of
       it would conflict with the first, so that one goes first */
    if (s->lockfd >= 0)
        close(s->lockfd);
    s->lockfd = -1;
    if (lock_dir(s, err, errlen) != WR_OK)
        return WR_ERR;
    s->wake = wake;
    s->wake_arg = wake_arg;
    return journal_start(s, err, errlen);
}

/* ---- moving a log */

/* A file of the log: a segment, a set-aside damaged one, the manifest;
 * or of the logs kept beside it in the vhost's directory: stream logs
 * and their tracked offsets (slog.h, "stream.*"), the deduplication
 * journal. */
static bool
is_log_file(const char *name)
{
    char seg[21];
    uint32_t no;
    size_t n = strlen(name);

    if (seg_parse_name(name, &no) || manifest_is_file_name(name))
        return true;
    if (strncmp(name, "stream.", 7) == 0 || strcmp(name, "dedup.journal") == 0)
        return true;
    if (n != 20 + strlen(".damaged") || strcmp(name + 20, ".damaged") != 0)
        return false;
    memcpy(seg, name, 20);
    seg[20] = '\0';
    return seg_parse_name(seg, &no);
}

int
store_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc, e;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    e = errno;
    close(fd);
    errno = e;
    return rc;
}

long
store_move_files(const char *from, const char *to, char *err, size_t errlen)
{
    DIR *d;
    struct dirent *e;
    long n = 0;

    if (mkdir_p(to, err, errlen) != WR_OK)
        return -1;
    if (!(d = opendir(from))) {
        snprintf(err, errlen, "cannot open directory %s: %s", from,
                 strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char a[SEG_PATH_MAX], b[SEG_PATH_MAX];

        if (!is_log_file(e->d_name))
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
        if (rename(a, b) != 0) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", a, b,
                     strerror(errno));
            n = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n >= 0 && (store_sync_dir(to) != 0 || store_sync_dir(from) != 0)) {
        snprintf(err, errlen, "cannot fsync %s or %s: %s", to, from,
                 strerror(errno));
        n = -1;
    }
    return n;
}

/* ---- appends */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Copies, sorts and deduplicates the queue ids into s->qtmp. */
static uint32_t
sorted_qids(struct store *s, const uint64_t *qids, size_t n)
{
    uint32_t k = 0;

    if (n > s->capqtmp) {
        s->capqtmp = n;
        s->qtmp = xrealloc(s->qtmp, n * sizeof(*s->qtmp));
    }
    memcpy(s->qtmp, qids, n * sizeof(*qids));
    if (n > 1)
        qsort(s->qtmp, n, sizeof(*s->qtmp), cmp_u64);
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || s->qtmp[i] != s->qtmp[k - 1])
            s->qtmp[k++] = s->qtmp[i];
    }
    return k;
}

uint64_t
store_alloc_id(struct store *s)
{
    return s->next_id++;
}

/* Message bytes appended to every log of the process (loop thread). */
static uint64_t appended_total;

uint64_t
store_appended_total(void)
{
    return appended_total;
}

/* Appends a message under id nid (>= s->next_id), shared by
   store_append_msg and a mirror's store_apply (replica.c). */
uint64_t
store_append_msg_id(struct store *s, const struct store_msg_in *m, uint64_t nid,
                    uint64_t *pos)
{
    uint32_t n;
    uint16_t set;
    struct seg *h;

    n = sorted_qids(s, m->qids, m->nqids);
    /* a segment's original ids span less than 2^32 (32-bit slot offsets);
       ids taken by store_alloc_id could stretch a quiet head that far */
    h = store_head(s);
    if (h->n > 0 && nid - h->first_id >= UINT32_MAX - 1)
        journal_roll(s);
    /* a rollover here starts the next segment at this id */
    h = journal_put_msg(s, nid, m->transient ? REC_F_TRANSIENT : 0, s->qtmp, n,
                        m->meta, m->body, pos, &set);
    s->next_id = nid + 1;
    seg_add_original(h, nid, set, n, seg_full_mask(n));
    if (n > SET_NARROW_MAX)
        seg_wide(h, nid, n, true);
    h->live_msgs++;
    h->live_pairs += n;
    if (s->hot && !m->transient)
        hot_add(s->hot, s->qtmp, n, nid, *pos, (uint32_t)m->meta.len,
                (uint32_t)m->body.len);
    appended_total += m->meta.len + m->body.len;
    return ++s->lsn;
}

uint64_t
store_append_msg(struct store *s, const struct store_msg_in *m, uint64_t *id,
                 uint64_t *pos)
{
    if (atomic_load_explicit(&s->failed, memory_order_relaxed) ||
        atomic_load_explicit(&s->nospace, memory_order_relaxed) || s->closing)
        return 0;
    if (m->nqids == 0 || m->nqids > STORE_MAX_QIDS ||
        m->meta.len > STORE_MAX_MSG ||
        m->body.len > STORE_MAX_MSG - m->meta.len)
        return 0;
    *id = s->next_id;
    return store_append_msg_id(s, m, s->next_id, pos);
}

static void
pdeps_add(struct store *s, uint32_t no)
{
    deps_insert(&s->pdeps, &s->npdeps, &s->cappdeps, no);
}

static void
pend_ack(struct store *s, uint64_t qid, uint64_t id)
{
    struct pend_ack *pa;

    HASH_FIND(hh, s->acks, &qid, sizeof(qid), pa);
    if (!pa) {
        pa = xcalloc(1, sizeof(*pa));
        pa->qid = qid;
        HASH_ADD(hh, s->acks, qid, sizeof(pa->qid), pa);
    }
    if (pa->n == 0) {
        if (s->ndirty == s->capdirty) {
            s->capdirty = s->capdirty ? 2 * s->capdirty : 16;
            s->dirty = xrealloc(s->dirty, s->capdirty * sizeof(*s->dirty));
        }
        s->dirty[s->ndirty++] = pa;
    }
    if (pa->n == pa->cap) {
        pa->cap = pa->cap ? 2 * pa->cap : 64;
        pa->ids = xrealloc(pa->ids, pa->cap * sizeof(*pa->ids));
    }
    pa->ids[pa->n++] = id;
}

uint64_t
store_append_ack(struct store *s, uint64_t qid, uint64_t id)
{
    struct seg *orig;
    struct mref r;
    int j;

    if (atomic_load_explicit(&s->failed, memory_order_relaxed) || s->closing)
        return 0;
    if (!live_find(s, id, &r))
        return s->lsn;
    j = live_index(&r, qid);
    if (j < 0 || !live_test(&r, j))
        return s->lsn;
    /* the ACK record protects every copy of the message listing qid */
    pdeps_add(s, r.g->no);
    if (r.rl && r.rl->prev)
        pdeps_add(s, r.rl->prev);
    orig = seg_find_by_id(s, id, NULL);
    if (orig && orig != r.g)
        pdeps_add(s, orig->no);
    live_kill(s, &r, j);
    if (s->hot)
        hot_ack(s->hot, qid, id);
    pend_ack(s, qid, id);
    return ++s->lsn;
}

uint64_t
store_append_queue_delete(struct store *s, uint64_t qid)
{
    uint32_t *deps = NULL, seg;
    size_t ndeps = 0, capdeps = 0;
    struct pend_ack *pa;
    struct seg *g;

    if (atomic_load_explicit(&s->failed, memory_order_relaxed) || s->closing)
        return 0;
    journal_encode_acks(s);
    HASH_FIND(hh, s->acks, &qid, sizeof(qid), pa);
    if (pa) {
        HASH_DEL(s->acks, pa);
        free(pa->ids);
        free(pa);
    }
    live_queue_delete(s, qid, &deps, &ndeps, &capdeps);
    if (s->hot)
        hot_qdel(s->hot, qid);
    buf_reset(&s->scratch);
    rec_qdel_payload(&s->scratch, qid, s->next_id);
    seg = journal_put_tomb(s, REC_QDEL, buf_bytes(&s->scratch));
    g = seg_find(s, seg);
    for (size_t i = 0; i < ndeps; i++)
        seg_dep_add(g, deps[i]);
    free(deps);
    return ++s->lsn;
}

/* ---- hand-off and events */

void
store_flush(struct store *s)
{
    if (!s->closing)
        journal_handoff(s, false);
}

uint64_t
store_durable_lsn(const struct store *s)
{
    return atomic_load(&((struct store *)s)->durable_lsn);
}

void
store_poll(struct store *s, const struct store_events *ev, void *ctx)
{
    uint32_t *unl, *unl_failed;
    size_t nunl, nunl_failed;
    struct cres *res;
    uint64_t d;

    journal_reclaim(s);
    pthread_mutex_lock(&s->mu);
    res = s->res;
    s->res = NULL;
    unl = s->unlinked;
    nunl = s->nunlinked;
    unl_failed = s->unl_failed;
    nunl_failed = s->nunl_failed;
    s->unlinked = NULL;
    s->nunlinked = s->capunlinked = 0;
    s->unl_failed = NULL;
    s->nunl_failed = s->capunl_failed = 0;
    pthread_mutex_unlock(&s->mu);

    d = atomic_load(&s->durable_lsn);
    if (d > s->durable_seen) {
        s->durable_seen = d;
        if (ev && ev->durable)
            ev->durable(ctx, d);
    }
    if (atomic_load(&s->failed) && !s->failed_seen) {
        s->failed_seen = true;
        if (ev && ev->failed)
            ev->failed(ctx, s->err);
    }
    if (nunl || nunl_failed)
        compact_unlinked(s, unl, nunl, unl_failed, nunl_failed);
    free(unl);
    free(unl_failed);
    if (res) {
        compact_apply(s, res, ev, ctx);
        compact_res_free(res);
    }
    compact_maintain(s);
}

/* ---- reading */

/* The record at off of g from the last block read, when it is whole
 * there (segments are never written over: the bytes still hold). */
static bool
rblock_take(struct store *s, const struct seg *g, uint32_t off, struct buf *out)
{
    const struct buf *b = &s->rblock.data;
    size_t at, len;

    if (b->len == 0 || s->rblock.segno != g->no || s->rblock.salt != g->salt ||
        off < s->rblock.off || off - s->rblock.off + 4 > b->len)
        return false;
    at = off - s->rblock.off;
    len = be32_load(b->data + at);
    if (len < REC_HDR_SIZE || len > b->len - at)
        return false;
    buf_append(out, b->data + at, len);
    return true;
}

static int
read_file_rec(struct store *s, struct seg *g, uint32_t off, struct buf *out)
{
    char path[SEG_PATH_MAX];
    size_t want;
    ssize_t got;

    if (off >= g->size)
        return WR_ERR;
    if (rblock_take(s, g, off, out))
        return WR_OK;
    if (g->rfd < 0) {
        seg_path(path, sizeof(path), s->dir, g->no);
        g->rfd = s->io->open(s->io->arg, path, O_RDONLY, 0);
        if (g->rfd < 0) {
            log_err("store: cannot open %s: %s", path, strerror(errno));
            return WR_ERR;
        }
    }
    /* one pread for records up to 4 KiB, two for longer ones */
    want = (size_t)WR_MIN(4096, g->size - off);
    got = io_pread_all(s->io, g->rfd, buf_reserve(out, want), want, off);
    if (got < REC_HDR_SIZE)
        return WR_ERR;
    out->len = (size_t)got;
    /* kept for the records after this one (one pread, not one each) */
    buf_reset(&s->rblock.data);
    buf_append(&s->rblock.data, out->data, out->len);
    s->rblock.segno = g->no;
    s->rblock.salt = g->salt;
    s->rblock.off = off;
    want = be32_load(out->data);
    if (want > (size_t)got && want <= REC_MAX_LEN && want <= g->size - off) {
        got = io_pread_all(s->io, g->rfd, buf_reserve(out, want - out->len),
                           want - out->len, off + out->len);
        if (got < 0)
            return WR_ERR;
        out->len += (size_t)got;
    }
    return WR_OK;
}

int
store_read_msg(struct store *s, uint64_t pos, struct buf *out,
               struct bytes *meta, struct bytes *body)
{
    uint32_t segno = POS_SEG(pos), off = POS_OFF(pos);
    char path[SEG_PATH_MAX];
    const uint8_t *p;
    const char *why = "unknown position";
    size_t avail;
    uint64_t salt;
    struct rec rec;
    struct rec_msg m;
    struct seg *g;

    buf_reset(out);
    if (journal_find(s, segno, off, &p, &avail, &salt)) {
        uint32_t len = avail >= 4 ? be32_load(p) : 0;

        buf_append(out, p, WR_MIN(avail, len ? len : avail));
    } else {
        g = seg_find(s, segno);
        if (!g || g->unlinking || read_file_rec(s, g, off, out) != WR_OK)
            goto bad;
        salt = g->salt;
    }
    if (rec_check(out->data, out->len, salt, off, &rec, &why) != REC_OK)
        goto bad;
    if (rec.type != REC_MSG || !rec_msg_decode(rec.payload, &m)) {
        why = "not a message record";
        goto bad;
    }
    *meta = m.meta;
    *body = m.body;
    return WR_OK;
bad:
    seg_path(path, sizeof(path), s->dir, segno);
    log_err("store: cannot read message at %s byte offset %u: %s", path, off,
            why);
    return WR_ERR;
}

/* ---- stats */

void
store_get_stats(const struct store *s, struct store_stats *out)
{
    struct store *w = (struct store *)s;

    memset(out, 0, sizeof(*out));
    out->segments = s->nsegs;
    for (size_t i = 0; i < s->nsegs; i++) {
        out->disk_bytes += s->segs[i]->size;
        out->live_msgs += s->segs[i]->live_msgs;
    }
    out->bytes_written = atomic_load(&w->bytes_written);
    out->fsyncs = atomic_load(&w->fsyncs);
    out->records_written = atomic_load(&w->records_written);
    out->moved_msgs = s->moved_msgs;
    out->pending_bytes = atomic_load(&w->pending_bytes);
    for (size_t i = 0; i < s->cur->nch; i++)
        out->pending_bytes += s->cur->ch[i].data.len;
}

uint64_t
store_pending_bytes(const struct store *s)
{
    struct store *w = (struct store *)s;
    uint64_t n = atomic_load(&w->pending_bytes);

    for (size_t i = 0; i < s->cur->nch; i++)
        n += s->cur->ch[i].data.len;
    return n;
}

/* What a batch's buffers hold in resident pages: what was written into
 * them (len), or, for a reset one kept for reuse, what may have been
 * (cap). Capacity a buffer grew to but has not filled yet is mostly
 * untouched pages. */
static uint64_t
batch_bytes(const struct batch *b, bool reset)
{
    uint64_t n = 0;

    for (size_t i = 0; b && i < b->capch; i++)
        n += reset ? b->ch[i].data.cap : b->ch[i].data.len;
    return n;
}

uint64_t
store_buffer_bytes(const struct store *s)
{
    uint64_t n = batch_bytes(s->cur, false) + batch_bytes(s->spare, true);

    for (const struct batch *b = s->infl_head; b; b = b->next)
        n += batch_bytes(b, false);
    return n;
}

const char *
store_error(const struct store *s)
{
    return atomic_load(&((struct store *)s)->failed) ? s->err : NULL;
}

bool
store_no_space(const struct store *s)
{
    return atomic_load(&((struct store *)s)->nospace);
}

uint64_t
store_durable_next_id(const struct store *s)
{
    return atomic_load(&((struct store *)s)->durable_next_id);
}
