/*
 * journal.c: batching on the loop thread, writing and group commit on the
 * store thread.
 *
 * The loop encodes every record straight into the current batch: one
 * chunk per segment touched, each starting with a BATCH marker (filled
 * in at hand-off, when the unit's length is known). Because the loop
 * assigns every byte's final position itself (segment number and
 * offset), appends return positions without asking the store thread, and
 * rollover (sealing the head with its SUMMARY and SEAL, starting the next
 * segment with its header) is just more bytes in the batch.
 *
 * store_flush() appends the batch to a FIFO under s->mu and signals the
 * thread, unless a batch is already waiting: then the loop keeps filling
 * the current one (group commit happens on the loop side: one batch per
 * sync, however many loop iterations it took). For each batch in order
 * the thread:
 *   1. creates the segment files the batch starts (O_EXCL),
 *   2. writes each chunk with one pwrite (looping only on short writes),
 *   3. fdatasyncs and closes a segment it sealed (whatever the policy:
 *      a sealed segment is never torn, see record.c),
 *   4. fsyncs the directory if it created a file,
 *   5. fdatasyncs the head per the policy (always: every batch;
 *      interval: when the interval elapsed; never: not),
 *   6. publishes the batch's last LSN as durable,
 *   7. deletes the segments the batch asked for (compact.c),
 *   8. counts the batch done and calls wake().
 * Any failure makes the store fail for good (journal_fail): later batches
 * are counted done without being written, the durable LSN never moves
 * again, and a failed fdatasync is never retried (after a failed fsync
 * the kernel may have dropped the dirty pages; a retry that "succeeds"
 * proves nothing).
 *
 * Except a full disk: a write or file creation that fails with ENOSPC or
 * EDQUOT made nothing durable, and the loop assigned every byte's place,
 * so the thread keeps the batch and tries it again every second from the
 * step that failed (s->wb: the chunk, then the manifest), rewriting the
 * same bytes at the same offsets; a segment created by the failed try is
 * not created again. s->nospace is set meanwhile (store.h, "Disk full"),
 * and the deletions planned in the batches behind are run early
 * (early_unlinks): they need no space and give some back. Closing gives
 * the waiting batches up after one more try.
 *
 * Between batches the thread serves one compaction read job at a time,
 * paced by cfg->compact_rate, the interval policy's timer, and an idle
 * tick: one wake() a second after the last batch, so that the loop gets
 * a chance to seal a dead head segment once traffic stops.
 *
 * The loop frees a batch only after the thread counted it done, so the
 * read path can read a record from a batch in flight without locking:
 * batches are immutable once handed over.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ACK_MAX_IDS    4096
#define IDLE_TICK_MS   1000
#define CHUNK_KEEP_CAP (8u << 20)
#define SPACE_RETRY_MS 1000

/* ---- batches */

struct batch *
journal_batch_new(void)
{
    return xcalloc(1, sizeof(struct batch));
}

void
journal_batch_free(struct batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->capch; i++)
        buf_fini(&b->ch[i].data);
    free(b->ch);
    free(b->unl);
    free(b);
}

static void
batch_reset(struct batch *b)
{
    for (size_t i = 0; i < b->nch; i++) {
        if (b->ch[i].data.cap > CHUNK_KEEP_CAP)
            buf_fini(&b->ch[i].data);
        buf_reset(&b->ch[i].data);
    }
    b->nch = 0;
    b->nunl = 0;
    b->lsn_hi = 0;
    b->id_hi = 0;
    b->bytes = 0;
    b->final = false;
    b->moves = false;
    b->unl_done = false;
    b->next = NULL;
}

static struct chunk *
chunk_push(struct batch *b, uint32_t seg, uint32_t off, uint64_t salt)
{
    struct chunk *c;

    if (b->nch == b->capch) {
        size_t cap = b->capch ? 2 * b->capch : 2;

        b->ch = xrealloc(b->ch, cap * sizeof(*b->ch));
        for (size_t i = b->capch; i < cap; i++)
            buf_init(&b->ch[i].data);
        b->capch = cap;
    }
    c = &b->ch[b->nch++];
    c->seg = seg;
    c->off = off;
    c->salt = salt;
    c->marker = 0;
    c->nrecs = 0;
    c->create = false;
    c->first_id = 0;
    c->seal = false;
    buf_reset(&c->data);
    return c;
}

static void
put_marker(struct chunk *c, struct seg *h)
{
    c->marker = (uint32_t)c->data.len;
    memset(buf_reserve(&c->data, REC_BATCH_SIZE), 0, REC_BATCH_SIZE);
    c->data.len += REC_BATCH_SIZE;
    c->nrecs++;
    h->size += REC_BATCH_SIZE;
}

static bool
has_head_chunk(const struct store *s)
{
    const struct batch *b = s->cur;

    return b->nch > 0 && b->ch[b->nch - 1].seg == store_head(s)->no &&
           !b->ch[b->nch - 1].seal;
}

/* The head's chunk in the current batch, started (with its BATCH
   marker) if needed. */
static struct chunk *
head_chunk(struct store *s)
{
    struct seg *h = store_head(s);
    struct chunk *c;

    if (has_head_chunk(s))
        return &s->cur->ch[s->cur->nch - 1];
    c = chunk_push(s->cur, h->no, (uint32_t)h->size, h->salt);
    put_marker(c, h);
    return c;
}

static uint64_t
next_rand(struct store *s)
{
    /* splitmix64, seeded from getrandom at open */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
segs_push(struct store *s, struct seg *g)
{
    if (s->nsegs == s->capsegs) {
        s->capsegs = s->capsegs ? 2 * s->capsegs : 16;
        s->segs = xrealloc(s->segs, s->capsegs * sizeof(*s->segs));
    }
    s->segs[s->nsegs++] = g;
}

void
journal_seal_head(struct store *s)
{
    struct seg *h = store_head(s);
    struct chunk *c = head_chunk(s);
    uint32_t sum_off = (uint32_t)h->size;
    uint8_t *p;

    h->size += rec_summary_encode(&c->data, h->sum, h->salt, sum_off);
    p = buf_reserve(&c->data, REC_SEAL_SIZE);
    rec_seal_encode(p, sum_off, s->next_id, h->salt, (uint32_t)h->size);
    c->data.len += REC_SEAL_SIZE;
    h->size += REC_SEAL_SIZE;
    c->nrecs += 2;
    c->seal = true;
    h->sealed = true;
    rec_sumb_fini(h->sum);
    free(h->sum);
    h->sum = NULL;
    HASH_CLEAR(hh, h->set_hash);
    s->maint_dirty = true;
}

void
journal_roll(struct store *s)
{
    struct seg *h = store_head(s), *n;
    struct seg_hdr hdr;
    struct chunk *c;

    WR_ASSERT(h->no < UINT32_MAX - 1);
    journal_seal_head(s);
    hdr.no = h->no + 1;
    hdr.salt = next_rand(s);
    hdr.next_id = s->next_id;
    n = seg_new((uint32_t)hdr.no, hdr.salt, s->next_id, true);
    segs_push(s, n);
    c = chunk_push(s->cur, n->no, 0, n->salt);
    c->create = true;
    c->first_id = hdr.next_id;
    rec_hdr_encode(buf_reserve(&c->data, SEG_HDR_SIZE), &hdr);
    c->data.len += SEG_HDR_SIZE;
    n->size = SEG_HDR_SIZE;
    put_marker(c, n);
    s->maint_dirty = true;
}

uint8_t *
journal_reserve(struct store *s, size_t size, size_t sum_extra, uint64_t *pos)
{
    struct seg *h = store_head(s);
    size_t need = size + (has_head_chunk(s) ? 0 : REC_BATCH_SIZE);
    struct chunk *c;
    uint64_t off;
    uint8_t *p;

    if (h->nwritten > 0 && h->size + need + rec_sumb_record_size(h->sum) +
                                   sum_extra + REC_SEAL_SIZE >
                               s->seg_size)
        journal_roll(s);
    c = head_chunk(s);
    h = store_head(s);
    off = h->size;
    WR_ASSERT(off + size < UINT32_MAX);
    p = buf_reserve(&c->data, size);
    c->data.len += size;
    c->nrecs++;
    h->size += size;
    h->nwritten++;
    *pos = POS_MAKE(h->no, off);
    return p;
}

uint32_t
journal_put_tomb(struct store *s, uint8_t type, struct bytes pl)
{
    size_t size = REC_HDR_SIZE + pl.len;
    uint64_t pos;
    uint8_t *p = journal_reserve(s, size, 12 + pl.len, &pos);
    struct seg *h = store_head(s);

    memcpy(p + REC_HDR_SIZE, pl.ptr, pl.len);
    rec_finish(p, (uint32_t)size, type, h->salt, POS_OFF(pos));
    rec_sumb_add_tomb(h->sum, type, pl);
    if (s->tap)
        replica_tap(s, type, pl.ptr, pl.len);
    return POS_SEG(pos);
}

struct seg *
journal_put_msg(struct store *s, uint64_t id, uint8_t flags,
                const uint64_t *qids, uint32_t n, struct bytes meta,
                struct bytes body, uint64_t *pos, uint16_t *set)
{
    size_t size = rec_msg_size(id, n, meta.len, body.len);
    struct rec_sum_msg sm;
    struct seg *h = store_head(s);
    uint8_t *p;
    int k;

    /* at most one new set per record: roll before the dictionary fills */
    if (h->nsets >= SEG_MAX_SETS - 1 && h->nwritten > 0)
        journal_roll(s);
    p = journal_reserve(s, size, 64 + 8 * (size_t)n, pos);
    h = store_head(s);
    k = seg_set_lookup(h, qids, n);
    WR_ASSERT(k >= 0);
    rec_msg_encode(p, size, id, flags, qids, n, meta, body, h->salt,
                   POS_OFF(*pos));
    sm.id = id;
    sm.flags = flags;
    sm.set = (uint32_t)k;
    sm.off = POS_OFF(*pos);
    sm.meta_len = (uint32_t)meta.len;
    sm.body_len = (uint32_t)body.len;
    rec_sumb_add_msg(h->sum, &sm);
    h->nrecs++;
    *set = (uint16_t)k;
    /* compaction copies and transient messages stay on this node */
    if (s->tap && !(flags & (REC_F_MOVED | REC_F_TRANSIENT)))
        replica_tap(s, REC_MSG, p + REC_HDR_SIZE, size - REC_HDR_SIZE);
    return h;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorts and deduplicates; returns the new count. */
static size_t
sort_unique(uint64_t *v, size_t n)
{
    size_t k = 0;
    bool sorted = true;

    for (size_t i = 1; i < n && sorted; i++)
        sorted = v[i] > v[i - 1];
    if (sorted)
        return n;
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    }
    return k;
}

void
journal_encode_acks(struct store *s)
{
    uint32_t touched[8];
    size_t ntouched = 0;
    bool overflow = false;

    if (s->ndirty == 0)
        return;
    for (size_t d = 0; d < s->ndirty; d++) {
        struct pend_ack *pa = s->dirty[d];
        size_t n = sort_unique(pa->ids, pa->n);

        for (size_t k = 0; k < n; k += ACK_MAX_IDS) {
            size_t m = WR_MIN(ACK_MAX_IDS, n - k);
            uint32_t seg;
            bool seen = false;

            buf_reset(&s->scratch);
            rec_ack_payload(&s->scratch, pa->qid, pa->ids + k, m);
            seg = journal_put_tomb(s, REC_ACK, buf_bytes(&s->scratch));
            for (size_t t = 0; t < ntouched; t++)
                seen |= touched[t] == seg;
            if (!seen && ntouched < WR_ARRAY_LEN(touched))
                touched[ntouched++] = seg;
            else if (!seen)
                overflow = true;
        }
        pa->n = 0;
    }
    s->ndirty = 0;
    /* The segments that got ACK records depend on the acked messages'
       segments. (With more than 8 rollovers in one flush, every segment
       of the batch takes the deps: conservative.) */
    for (size_t i = 0; i < s->nsegs; i++) {
        struct seg *g = s->segs[i];
        bool hit = overflow && g->no >= touched[0];

        for (size_t t = 0; t < ntouched && !hit; t++)
            hit = touched[t] == g->no;
        for (size_t k = 0; hit && k < s->npdeps; k++)
            seg_dep_add(g, s->pdeps[k]);
    }
    s->npdeps = 0;
}

void
journal_handoff(struct store *s, bool final)
{
    struct batch *b;
    bool waiting;

    /* Group commit: while a batch waits for the thread, keep filling the
       current one; the thread wakes us when it takes the waiting batch.
       So the thread writes and syncs one batch at a time, and a batch's
       BATCH markers delimit exactly one sync unit (record.c, torn tails). */
    pthread_mutex_lock(&s->mu);
    waiting = s->q_next != NULL;
    pthread_mutex_unlock(&s->mu);
    /* While the disk is full the waiting batch may wait long: deletions
       go to the thread at once, they give space back (write_batch). */
    if (waiting && !final && !(atomic_load(&s->nospace) && s->cur->nunl > 0))
        return;
    if (!atomic_load(&s->failed))
        journal_encode_acks(s);
    b = s->cur;
    if (!final && b->nch == 0 && b->nunl == 0 && s->lsn == s->handed_lsn)
        return;
    for (size_t i = 0; i < b->nch; i++) {
        struct chunk *c = &b->ch[i];

        rec_batch_encode(c->data.data + c->marker,
                         (uint32_t)(c->data.len - c->marker), c->salt,
                         c->off + c->marker);
        b->bytes += c->data.len;
    }
    b->lsn_hi = s->lsn;
    b->id_hi = s->next_id;
    b->final = final;
    b->next = NULL;
    s->handed_lsn = s->lsn;
    atomic_fetch_add(&s->pending_bytes, b->bytes);

    pthread_mutex_lock(&s->mu);
    if (s->infl_tail)
        s->infl_tail->next = b;
    else
        s->infl_head = b;
    s->infl_tail = b;
    if (!s->q_next)
        s->q_next = b;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);

    s->cur = s->spare ? s->spare : journal_batch_new();
    s->spare = NULL;
}

void
journal_reclaim(struct store *s)
{
    size_t ndone;

    pthread_mutex_lock(&s->mu);
    ndone = s->ndone;
    pthread_mutex_unlock(&s->mu);
    while (s->nreclaimed < ndone) {
        struct batch *b = s->infl_head;

        WR_ASSERT(b != NULL);
        s->infl_head = b->next;
        if (!s->infl_head)
            s->infl_tail = NULL;
        s->nreclaimed++;
        batch_reset(b);
        if (!s->spare)
            s->spare = b;
        else
            journal_batch_free(b);
    }
}

static bool
find_in(const struct batch *b, uint32_t seg, uint32_t off, const uint8_t **p,
        size_t *avail, uint64_t *salt)
{
    for (size_t i = 0; i < b->nch; i++) {
        const struct chunk *c = &b->ch[i];

        if (c->seg == seg && off >= c->off && off - c->off < c->data.len) {
            *p = c->data.data + (off - c->off);
            *avail = c->data.len - (off - c->off);
            *salt = c->salt;
            return true;
        }
    }
    return false;
}

bool
journal_find(const struct store *s, uint32_t seg, uint32_t off,
             const uint8_t **p, size_t *avail, uint64_t *salt)
{
    if (find_in(s->cur, seg, off, p, avail, salt))
        return true;
    for (const struct batch *b = s->infl_head; b; b = b->next) {
        if (find_in(b, seg, off, p, avail, salt))
            return true;
    }
    return false;
}

/* ---- the store thread */

void
journal_fail(struct store *s, const char *fmt, ...)
{
    char text[sizeof(s->err)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_err("store %s: %s", s->dir, text);
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->failed)) {
        snprintf(s->err, sizeof(s->err), "%s", text);
        atomic_store(&s->failed, true);
    }
    pthread_mutex_unlock(&s->mu);
}

void
journal_wake(struct store *s)
{
    if (s->wake)
        s->wake(s->wake_arg);
}

bool
journal_sync(struct store *s)
{
    char path[SEG_PATH_MAX];

    if (atomic_load(&s->failed))
        return false; /* never retry a failed sync (nor sync after one) */
    if (s->wfd < 0 || !s->unsynced)
        return true;
    atomic_fetch_add(&s->fsyncs, 1);
    if (s->io->fdatasync(s->io->arg, s->wfd) < 0) {
        seg_path(path, sizeof(path), s->dir, s->wseg);
        journal_fail(s,
                     "fdatasync of %s failed: %s; writes since the last "
                     "successful sync may be lost, so the store stopped "
                     "accepting writes",
                     path, strerror(errno));
        return false;
    }
    s->unsynced = false;
    s->last_sync_ms = wr_now_ms();
    return true;
}

bool
journal_sync_dir(struct store *s)
{
    atomic_fetch_add(&s->fsyncs, 1);
    if (s->io->fsync(s->io->arg, s->dirfd) < 0) {
        journal_fail(s, "fsync of directory %s failed: %s", s->dir,
                     strerror(errno));
        return false;
    }
    return true;
}

/* Outcome of a write step on the store thread. */
enum jw {
    JW_OK,
    JW_NO_SPACE, /* ENOSPC/EDQUOT: nothing became durable; retried */
    JW_FAILED,   /* the store failed for good (journal_fail) */
};

static bool
is_no_space(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* Thread: a write found the disk full (store.h, "Disk full"). */
static enum jw no_space(struct store *s, const char *fmt, ...) WR_PRINTF(2, 3);

static enum jw
no_space(struct store *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->space_why, sizeof(s->space_why), fmt, ap);
    va_end(ap);
    if (!atomic_load(&s->nospace)) {
        log_err("store %s: %s. New messages are refused and the write is "
                "retried every second until it fits: free disk space "
                "(consuming queued messages frees some too)",
                s->dir, s->space_why);
        atomic_store(&s->nospace, true);
    }
    return JW_NO_SPACE;
}

static enum jw
create_segment(struct store *s, uint32_t no)
{
    char path[SEG_PATH_MAX];
    int fd;

    if (s->wfd >= 0) {
        s->io->close(s->io->arg, s->wfd);
        s->wfd = -1;
    }
    seg_path(path, sizeof(path), s->dir, no);
    fd = s->io->open(s->io->arg, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        if (is_no_space(errno))
            return no_space(s, "creating segment %s failed: %s", path,
                            strerror(errno));
        journal_fail(s, "creating segment %s failed: %s", path,
                     strerror(errno));
        return JW_FAILED;
    }
    s->wfd = fd;
    s->wseg = no;
    return JW_OK;
}

static enum jw
write_chunk(struct store *s, const struct chunk *c)
{
    char path[SEG_PATH_MAX];
    enum jw st;

    /* on a retry, the file may be there from the first attempt */
    if (c->create && !(s->wfd >= 0 && s->wseg == c->seg) &&
        (st = create_segment(s, c->seg)) != JW_OK)
        return st;
    if (s->wfd < 0 || c->seg != s->wseg) {
        journal_fail(s, "internal error: segment %u is not open for writing",
                     c->seg);
        return JW_FAILED;
    }
    if (io_pwrite_all(s->io, s->wfd, c->data.data, c->data.len, c->off) < 0) {
        int e = errno;

        seg_path(path, sizeof(path), s->dir, c->seg);
        if (is_no_space(e))
            return no_space(s,
                            "writing %zu bytes to %s at offset %u failed: %s",
                            c->data.len, path, c->off, strerror(e));
        journal_fail(s, "writing %zu bytes to %s at offset %u failed: %s",
                     c->data.len, path, c->off, strerror(e));
        return JW_FAILED;
    }
    atomic_fetch_add(&s->bytes_written, c->data.len);
    atomic_fetch_add(&s->records_written, c->nrecs);
    s->unsynced = true;
    if (c->seal) {
        if (!journal_sync(s))
            return JW_FAILED;
        s->io->close(s->io->arg, s->wfd);
        s->wfd = -1;
    }
    return JW_OK;
}

static bool
interval_due(const struct store *s)
{
    return s->fsync == STORE_FSYNC_INTERVAL && s->unsynced &&
           !atomic_load(&((struct store *)s)->failed) &&
           wr_now_ms() - s->last_sync_ms >= s->interval_ms;
}

/* The segments the batch created join the manifest, before any record
   in them counts as durable (record.c); so does a manifest that could
   not be written at open (mf_dirty). */
static enum jw
list_created(struct store *s, const struct batch *b)
{
    char why[SEG_PATH_MAX + 64];

    if (s->wb.created && !journal_sync_dir(s))
        return JW_FAILED;
    for (size_t k = 0; k < b->nch; k++) {
        if (b->ch[k].create)
            manifest_add(s, b->ch[k].seg, b->ch[k].first_id);
    }
    switch (manifest_write(s, why, sizeof(why))) {
    case MF_OK:
        s->mf_dirty = false;
        return JW_OK;
    case MF_NO_SPACE:
        return no_space(s, "%s", why);
    default:
        journal_fail(s, "%s", why);
        return JW_FAILED;
    }
}

/*
 * Writes one batch, makes it durable per the policy, runs its deletions.
 * Returns JW_NO_SPACE when the disk is full: b is not done, and the next
 * call resumes at the step that failed (s->wb), rewriting the same bytes
 * at the same offsets. Anything else completes b (written, or skipped by
 * a failed store).
 */
static enum jw
write_batch(struct store *s, struct batch *b)
{
    bool ok = !atomic_load(&s->failed);
    enum jw st;

    for (; ok && s->wb.chunk < b->nch; s->wb.chunk++) {
        s->wb.created |= b->ch[s->wb.chunk].create;
        st = write_chunk(s, &b->ch[s->wb.chunk]);
        if (st == JW_NO_SPACE)
            return st;
        ok = st == JW_OK;
    }
    if (ok && (s->wb.created || s->mf_dirty) && !s->wb.listed) {
        st = list_created(s, b);
        if (st == JW_NO_SPACE)
            return st;
        ok = s->wb.listed = st == JW_OK;
    }
    if (ok && (s->fsync == STORE_FSYNC_ALWAYS || interval_due(s)))
        ok = journal_sync(s);
    if (ok && b->lsn_hi > atomic_load(&s->durable_lsn)) {
        atomic_store(&s->durable_next_id, b->id_hi);
        atomic_store(&s->durable_lsn, b->lsn_hi);
    }
    if (ok && b->nunl > 0 && !b->unl_done)
        compact_do_unlinks(s, b);
    if (ok && b->final)
        journal_sync(s);
    atomic_fetch_sub(&s->pending_bytes, b->bytes);
    memset(&s->wb, 0, sizeof(s->wb));
    return JW_OK;
}

/*
 * While b waits for disk space, the deletions planned in it and in the
 * batches handed over behind it run now: they need no space and give
 * some back. That is safe up to the first batch holding compaction
 * copies (a copy must be durable before its old record goes); ACK and
 * QDEL records only kill messages in segments that stay or go with
 * them, so they need not be on disk first (compact.c, deletion rule).
 */
static void
early_unlinks(struct store *s, struct batch *b)
{
    struct batch *v[64];
    size_t n = 0;

    pthread_mutex_lock(&s->mu);
    for (struct batch *x = b; x && n < WR_ARRAY_LEN(v); x = x->next)
        v[n++] = x;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n && !v[i]->moves; i++) {
        if (v[i]->nunl > 0 && !v[i]->unl_done) {
            compact_do_unlinks(s, v[i]);
            v[i]->unl_done = true;
        }
    }
}

/* b found the disk full. Returns JW_NO_SPACE (retry later) or, when the
   store is closing, gives b and everything after it up. */
static enum jw
stuck(struct store *s, struct batch *b)
{
    if (atomic_load(&s->stopping)) {
        journal_fail(s,
                     "closing with %llu bytes of records never written "
                     "(%s); the publishes among them were never confirmed",
                     (unsigned long long)b->bytes, s->space_why);
        return write_batch(s, b); /* counts it, writes nothing */
    }
    s->retry_ms = wr_now_ms() + SPACE_RETRY_MS;
    early_unlinks(s, b);
    return JW_NO_SPACE;
}

static void
space_back(struct store *s)
{
    atomic_store(&s->nospace, false);
    if (atomic_load(&s->failed))
        return; /* gave up at close */
    log_warn("store %s: disk space is back: the delayed records are "
             "written and new messages are accepted again",
             s->dir);
}

static void
deadline_wait(struct store *s, uint64_t due_ms)
{
    struct timespec ts;
    uint64_t now = wr_now_ms();

    if (due_ms == UINT64_MAX) {
        pthread_cond_wait(&s->cv, &s->mu);
        return;
    }
    if (due_ms <= now)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)((due_ms - now) / 1000);
    ts.tv_nsec += (long)((due_ms - now) % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static bool
run_job(struct store *s)
{
    struct cjob *j;
    struct cres *r;
    uint64_t read_bytes;

    if (!s->job || s->res || atomic_load(&s->failed) ||
        wr_now_ms() < s->compact_next_ms)
        return false;
    j = s->job;
    s->job = NULL;
    pthread_mutex_unlock(&s->mu);
    r = xcalloc(1, sizeof(*r));
    buf_init(&r->recs);
    compact_run_job(s, j, r);
    read_bytes = r->recs.len;
    compact_job_free(j);
    /* pace the next job: bytes / rate */
    s->compact_next_ms = wr_now_ms() + read_bytes * 1000 / s->compact_rate;
    pthread_mutex_lock(&s->mu);
    s->res = r;
    pthread_mutex_unlock(&s->mu);
    journal_wake(s);
    pthread_mutex_lock(&s->mu);
    return true;
}

/*
 * Thread, mu held (released meanwhile): writes batch b. Returns false
 * when b waits for disk space (tried again at retry_ms), true when it is
 * done and counted (the loop may free it).
 */
static bool
serve_batch(struct store *s, struct batch *b)
{
    enum jw st;

    pthread_mutex_unlock(&s->mu);
    st = write_batch(s, b);
    if (st == JW_NO_SPACE)
        st = stuck(s, b);
    else if (atomic_load(&s->nospace))
        space_back(s);
    if (st == JW_NO_SPACE) {
        journal_wake(s);
        pthread_mutex_lock(&s->mu);
        return false;
    }
    pthread_mutex_lock(&s->mu);
    s->q_next = b->next;
    s->ndone++; /* the loop may free b from here on */
    s->tick_due_ms = wr_now_ms() + IDLE_TICK_MS;
    pthread_mutex_unlock(&s->mu);
    journal_wake(s);
    pthread_mutex_lock(&s->mu);
    return true;
}

/* Thread, mu held: when to wake up next with nothing to write now. */
static uint64_t
next_due(struct store *s, const struct batch *waiting)
{
    uint64_t due = UINT64_MAX;

    if (s->job && !s->res && !atomic_load(&s->failed))
        due = s->compact_next_ms;
    /* waiting for disk space: the next try is all that is due */
    if (waiting)
        return WR_MIN(due, s->retry_ms);
    if (s->fsync == STORE_FSYNC_INTERVAL && s->unsynced &&
        !atomic_load(&s->failed))
        due = WR_MIN(due, s->last_sync_ms + s->interval_ms);
    if (s->tick_due_ms)
        due = WR_MIN(due, s->tick_due_ms);
    return due;
}

static void *
thread_main(void *arg)
{
    struct store *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct batch *b = s->q_next;

        if (b && (wr_now_ms() >= s->retry_ms || atomic_load(&s->stopping))) {
            bool final = b->final;

            if (serve_batch(s, b) && final)
                break;
            continue;
        }
        if (run_job(s))
            continue;
        deadline_wait(s, next_due(s, b));
        if (s->tick_due_ms && wr_now_ms() >= s->tick_due_ms && !s->q_next) {
            /* idle for a while: let the loop tidy up (compact.c) */
            s->tick_due_ms = 0;
            pthread_mutex_unlock(&s->mu);
            journal_wake(s);
            pthread_mutex_lock(&s->mu);
        }
        if (interval_due(s) && !s->q_next) {
            pthread_mutex_unlock(&s->mu);
            journal_sync(s);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    compact_cache_drop(s);
    return NULL;
}

int
journal_start(struct store *s, char *err, size_t errlen)
{
    int rc;

    s->last_sync_ms = wr_now_ms();
    rc = pthread_create(&s->thr, NULL, thread_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "store %s: cannot start the store thread: %s",
                 s->dir, strerror(rc));
        return WR_ERR;
    }
    s->thr_started = true;
    return WR_OK;
}

void
journal_join(struct store *s)
{
    if (s->thr_started)
        pthread_join(s->thr, NULL);
    s->thr_started = false;
}
