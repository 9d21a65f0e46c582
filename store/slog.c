/*
 * slog.c: the stream log (slog.h): segments with sparse index files,
 * buffered appends, readers, retention and recovery.
 *
 * Invariants:
 *   segs[] is sorted by first offset; segs[i].first < segs[i+1].first;
 *   the last segment is the active one (fd, ifd open on it); every other
 *   one is sealed: complete, its index ending with its last record;
 *   next = the offset the next append gets; written = the offsets below
 *   it that are in the file (the rest is in wbuf);
 *   segs[last].bytes counts written bytes only; wpos adds wbuf.
 */
#include "store/slog.h"
#include "store/fsyncer.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define SEG_MAGIC     "WSTRM001"
#define SEG_HDR       16u
#define REC_HDR       24u
#define IDX_ENT       24u
#define WBUF_FLUSH_AT (1u << 20)
/* Written bytes handed to the kernel's writeback (without waiting) every
 * this much, so that sealing a segment (fdatasync) finds little left. */
#define WRITEBACK_EVERY (8u << 20)
/* A record larger than this is corrupt (RabbitMQ's largest message is
 * 512 MiB; Warren's frame limits keep bodies far below). */
#define REC_MAX (UINT32_C(1) << 30)

struct seg {
    uint64_t first;    /* its first offset */
    uint64_t bytes;    /* file size (the active one: written so far) */
    uint64_t first_ts; /* ms, its first record's (0 when empty) */
    uint64_t last_ts;  /* ms, its last record's */
};

struct slog {
    char *dir, *prefix;
    struct slog_opts o;
    struct seg *segs;
    size_t nsegs, capsegs;
    uint64_t next, written;
    uint64_t total_bytes; /* sum of segs[].bytes */
    int fd, ifd;          /* the active segment and its index */
    struct buf wbuf;      /* records not written yet */
    struct buf ibuf;      /* index entries not written yet */
    uint64_t wpos;        /* active segment size counting wbuf */
    uint64_t idx_pos;     /* position of the active segment's last entry */
    uint64_t wb_pos;      /* active segment: writeback started up to here */
    uint64_t last_off, last_pos, last_ts; /* the newest record */
    bool has_last;                        /* the active segment has a record */
    bool failed;
    struct fsyncer *syncer; /* seals sync there (slog_set_syncer); NULL:
                               here */
    uint64_t sync_key;
};

struct slog_reader {
    struct slog *l;
    uint64_t next;       /* offset of the next record in the file */
    uint64_t want;       /* records below it are skipped (an index entry's
                            record comes before the one asked for) */
    uint64_t first;      /* first offset of the open segment */
    int fd;              /* its file, -1 when none */
    uint64_t pos;        /* file position of the next record */
    uint64_t sealed_end; /* of a segment retention removed; 0 = unknown */
    uint8_t *buf;
    size_t cap, len; /* buffer holds file bytes [bpos, bpos + len) */
    uint64_t bpos;
};

/* ---- names and small I/O helpers */

static char *
seg_path(const struct slog *l, uint64_t first, const char *ext)
{
    size_t n = strlen(l->dir) + strlen(l->prefix) + 40;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s.%020llu.%s", l->dir, l->prefix,
             (unsigned long long)first, ext);
    return p;
}

static int
open_file(const struct slog *l, uint64_t first, const char *ext, int flags)
{
    char *p = seg_path(l, first, ext);
    int fd = open(p, flags | O_CLOEXEC, 0644);

    if (fd < 0 && !(flags & O_CREAT) && errno == ENOENT)
        fd = -2; /* gone (retention) */
    else if (fd < 0)
        log_syserr("stream log: cannot open %s", p);
    free(p);
    return fd;
}

static uint64_t
fd_size(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static bool
pread_full(int fd, void *p, size_t n, uint64_t off)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static bool
write_full(int fd, const void *p, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = write(fd, (const uint8_t *)p + done, n - done);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ENOSPC;
            return false;
        }
        done += (size_t)r;
    }
    return true;
}

static uint32_t
rec_check(const uint8_t *payload, uint32_t len, uint64_t off, uint64_t ts)
{
    uint32_t seed = (uint32_t)(off * 2654435761u) ^ len ^ (uint32_t)ts ^
                    (uint32_t)(ts >> 32);

    return XXH32(payload, len, seed);
}

struct rec_hdr {
    uint32_t len, check;
    uint64_t off, ts;
};
static_assert(sizeof(struct rec_hdr) == REC_HDR, "record header layout");

struct idx_ent {
    uint64_t off, pos, ts;
};
static_assert(sizeof(struct idx_ent) == IDX_ENT, "index entry layout");

/* ---- segments */

static struct seg *
seg_add(struct slog *l, uint64_t first)
{
    if (l->nsegs == l->capsegs) {
        l->capsegs = l->capsegs ? l->capsegs * 2 : 8;
        l->segs = xrealloc(l->segs, l->capsegs * sizeof(*l->segs));
    }
    l->segs[l->nsegs] = (struct seg){.first = first};
    return &l->segs[l->nsegs++];
}

/* The segment holding offset off: the last one whose first <= off.
 * Assumes off >= segs[0].first. */
static size_t
seg_find(const struct slog *l, uint64_t off)
{
    size_t lo = 0, hi = l->nsegs;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (l->segs[mid].first <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void
index_add(struct slog *l, uint64_t off, uint64_t pos, uint64_t ts)
{
    struct idx_ent e = {off, pos, ts};

    buf_append(&l->ibuf, &e, sizeof(e));
    l->idx_pos = pos;
}

/* Creates the active segment for offsets from first on. */
static int
seg_create(struct slog *l, uint64_t first)
{
    uint8_t hdr[SEG_HDR];
    struct seg *s;

    l->fd = open_file(l, first, "seg", O_RDWR | O_CREAT | O_TRUNC);
    l->ifd = l->fd >= 0 ? open_file(l, first, "idx",
                                    O_RDWR | O_CREAT | O_TRUNC | O_APPEND)
                        : -1;
    if (l->fd < 0 || l->ifd < 0)
        return WR_ERR;
    memcpy(hdr, SEG_MAGIC, 8);
    memcpy(hdr + 8, &first, 8);
    if (!write_full(l->fd, hdr, sizeof(hdr))) {
        log_syserr("stream log %s/%s: cannot write a segment header", l->dir,
                   l->prefix);
        return WR_ERR;
    }
    s = seg_add(l, first);
    s->bytes = SEG_HDR;
    l->total_bytes += SEG_HDR;
    l->wpos = SEG_HDR;
    l->wb_pos = 0;
    l->has_last = false;
    return WR_OK;
}

static void
fail(struct slog *l, const char *what)
{
    if (!l->failed)
        log_syserr("stream log %s/%s: %s; the stream refuses messages from "
                   "now on",
                   l->dir, l->prefix, what);
    l->failed = true;
}

int
slog_flush(struct slog *l)
{
    struct seg *s;

    if (l->failed)
        return WR_ERR;
    if (l->wbuf.len == 0)
        return WR_OK;
    if (!write_full(l->fd, l->wbuf.data, l->wbuf.len)) {
        fail(l, "write failed");
        return WR_ERR;
    }
    if (l->ibuf.len && !write_full(l->ifd, l->ibuf.data, l->ibuf.len)) {
        fail(l, "index write failed");
        return WR_ERR;
    }
    s = &l->segs[l->nsegs - 1];
    s->bytes += l->wbuf.len;
    if (s->bytes - l->wb_pos >= WRITEBACK_EVERY) {
        /* starts the writeback, does not wait for it */
        sync_file_range(l->fd, (off_t)l->wb_pos, (off_t)(s->bytes - l->wb_pos),
                        SYNC_FILE_RANGE_WRITE);
        l->wb_pos = s->bytes;
    }
    l->total_bytes += l->wbuf.len;
    if (l->has_last) {
        if (!s->first_ts)
            s->first_ts = l->last_ts;
        s->last_ts = l->last_ts;
    }
    l->written = l->next;
    buf_reset(&l->wbuf);
    buf_reset(&l->ibuf);
    return WR_OK;
}

static void sync_dir(struct slog *l);

/* Seals the active segment (its index ends with its last record) and
 * starts the next. */
static int
roll(struct slog *l)
{
    if (l->has_last && l->idx_pos != l->last_pos)
        index_add(l, l->last_off, l->last_pos, l->last_ts);
    if (slog_flush(l) != WR_OK)
        return WR_ERR;
    if (l->syncer) {
        /* Sealed segments are trusted at recovery: the sync thread makes
         * them whole on disk (and closes them) in its next batch. */
        fsyncer_add(l->syncer, l->sync_key, l->fd, true, false);
        fsyncer_add(l->syncer, l->sync_key, l->ifd, true, false);
    } else if (fdatasync(l->fd) != 0 || fdatasync(l->ifd) != 0) {
        fail(l, "fdatasync failed");
        return WR_ERR;
    } else {
        close(l->fd);
        close(l->ifd);
    }
    l->fd = l->ifd = -1;
    if (seg_create(l, l->next) != WR_OK) {
        fail(l, "cannot create a segment");
        return WR_ERR;
    }
    if (l->syncer) /* the new segment's name */
        sync_dir(l);
    return WR_OK;
}

/* Adds l's directory to its sync thread's next batch (a new name). */
static void
sync_dir(struct slog *l)
{
    int dfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0) {
        fail(l, "cannot open its directory to sync it");
        fsyncer_fail(l->syncer, "a stream's directory cannot be opened");
        return;
    }
    fsyncer_add(l->syncer, l->sync_key, dfd, true, true);
}

void
slog_set_syncer(struct slog *l, struct fsyncer *f, uint64_t key)
{
    l->syncer = f;
    l->sync_key = key;
    /* a segment created at open: its name */
    if (f && l->nsegs == 1 && l->next == l->segs[0].first)
        sync_dir(l);
}

void
slog_sync_add(struct slog *l)
{
    if (l->syncer && l->fd >= 0 && !l->failed)
        fsyncer_add(l->syncer, l->sync_key, l->fd, false, false);
}

uint64_t
slog_append(struct slog *l, uint64_t ts_ms, const struct bytes *parts,
            size_t nparts)
{
    struct rec_hdr h = {0};
    size_t len = 0, at;
    uint8_t *p;

    if (l->failed)
        return UINT64_MAX;
    for (size_t i = 0; i < nparts; i++)
        len += parts[i].len;
    WR_ASSERT(len < REC_MAX);
    if (l->has_last && l->wpos + REC_HDR + len > l->o.max_segment_bytes) {
        if (roll(l) != WR_OK)
            return UINT64_MAX;
        slog_retain(l, ts_ms);
    }
    if (ts_ms < l->last_ts)
        ts_ms = l->last_ts;
    at = l->wbuf.len;
    buf_reserve(&l->wbuf, REC_HDR + len);
    p = l->wbuf.data + at + REC_HDR;
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len)
            memcpy(p, parts[i].ptr, parts[i].len);
        p += parts[i].len;
    }
    h.len = (uint32_t)len;
    h.off = l->next;
    h.ts = ts_ms;
    h.check = rec_check(l->wbuf.data + at + REC_HDR, h.len, h.off, h.ts);
    memcpy(l->wbuf.data + at, &h, sizeof(h));
    l->wbuf.len = at + REC_HDR + len;
    if (!l->has_last || l->wpos - l->idx_pos >= SLOG_INDEX_EVERY)
        index_add(l, h.off, l->wpos, ts_ms);
    l->last_off = h.off;
    l->last_pos = l->wpos;
    l->last_ts = ts_ms;
    l->has_last = true;
    l->wpos += REC_HDR + len;
    l->next++;
    if (l->wbuf.len >= WBUF_FLUSH_AT && slog_flush(l) != WR_OK)
        return UINT64_MAX;
    return h.off;
}

static void
seg_unlink(struct slog *l, uint64_t first)
{
    char *p = seg_path(l, first, "seg");

    if (unlink(p) != 0 && errno != ENOENT)
        log_syserr("stream log: cannot remove %s", p);
    free(p);
    p = seg_path(l, first, "idx");
    if (unlink(p) != 0 && errno != ENOENT)
        log_syserr("stream log: cannot remove %s", p);
    free(p);
}

size_t
slog_retain(struct slog *l, uint64_t now_ms)
{
    size_t n = 0;

    while (l->nsegs > 1) {
        struct seg *s = &l->segs[0];
        bool too_big = l->o.max_bytes && l->total_bytes > l->o.max_bytes;
        bool too_old = l->o.max_age_ms && s->last_ts + l->o.max_age_ms < now_ms;

        if (!too_big && !too_old)
            break;
        seg_unlink(l, s->first);
        l->total_bytes -= s->bytes;
        memmove(&l->segs[0], &l->segs[1], (l->nsegs - 1) * sizeof(*l->segs));
        l->nsegs--;
        n++;
    }
    return n;
}

/* Closes l's files and removes every segment (and its index). */
static void
drop_segments(struct slog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->ifd >= 0)
        close(l->ifd);
    l->fd = l->ifd = -1;
    for (size_t i = 0; i < l->nsegs; i++)
        seg_unlink(l, l->segs[i].first);
    buf_reset(&l->wbuf);
}

int
slog_restart_at(struct slog *l, uint64_t first)
{
    if (l->failed)
        return WR_ERR;
    drop_segments(l);
    buf_reset(&l->ibuf);
    l->nsegs = 0;
    l->total_bytes = 0;
    l->last_ts = 0;
    if (seg_create(l, first) != WR_OK) {
        fail(l, "cannot create a segment");
        return WR_ERR;
    }
    l->next = l->written = first;
    l->idx_pos = 0;
    if (l->syncer) /* the new segment's name */
        sync_dir(l);
    return WR_OK;
}

size_t
slog_drop_before(struct slog *l, uint64_t first)
{
    size_t n = 0;

    while (l->nsegs > 1 && l->segs[1].first <= first) {
        seg_unlink(l, l->segs[0].first);
        l->total_bytes -= l->segs[0].bytes;
        memmove(&l->segs[0], &l->segs[1], (l->nsegs - 1) * sizeof(*l->segs));
        l->nsegs--;
        n++;
    }
    return n;
}

/* ---- recovery */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The first offsets of the segments of l found in its directory, sorted.
 * Returns how many (*out allocated), or -1. */
static ssize_t
list_segments(struct slog *l, uint64_t **out)
{
    DIR *d = opendir(l->dir);
    struct dirent *e;
    size_t plen = strlen(l->prefix), n = 0, cap = 0;
    uint64_t *v = NULL;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        char *end;
        unsigned long long first;

        if (strncmp(s, l->prefix, plen) != 0 || s[plen] != '.' ||
            strlen(s) != plen + 1 + 20 + 4 || strcmp(s + plen + 21, ".seg"))
            continue;
        errno = 0;
        first = strtoull(s + plen + 1, &end, 10);
        if (errno || end != s + plen + 21)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = first;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof(*v), cmp_u64);
    *out = v;
    return (ssize_t)n;
}

/* Reads a sealed segment's size and times. */
static void
load_sealed(struct slog *l, struct seg *s)
{
    int fd = open_file(l, s->first, "seg", O_RDONLY);
    int ifd = open_file(l, s->first, "idx", O_RDONLY);
    struct idx_ent e;
    uint64_t isz;

    if (fd >= 0) {
        s->bytes = fd_size(fd);
        close(fd);
    }
    if (ifd >= 0) {
        isz = fd_size(ifd) / IDX_ENT * IDX_ENT;
        if (isz && pread_full(ifd, &e, sizeof(e), 0))
            s->first_ts = e.ts;
        if (isz && pread_full(ifd, &e, sizeof(e), isz - IDX_ENT))
            s->last_ts = e.ts;
        close(ifd);
    }
}

/* Checks the record at pos of the active segment (size fsize) and
 * returns its total size, or 0 when it is torn or corrupt. */
static uint64_t
check_record(int fd, uint64_t pos, uint64_t fsize, uint64_t want_off,
             struct buf *tmp, struct rec_hdr *h)
{
    if (pos + REC_HDR > fsize || !pread_full(fd, h, sizeof(*h), pos))
        return 0;
    if (h->off != want_off || h->len >= REC_MAX ||
        pos + REC_HDR + h->len > fsize)
        return 0;
    buf_reset(tmp);
    buf_reserve(tmp, h->len);
    if (!pread_full(fd, tmp->data, h->len, pos + REC_HDR) ||
        rec_check(tmp->data, h->len, h->off, h->ts) != h->check)
        return 0;
    return REC_HDR + h->len;
}

/* Opens the last segment as the active one: keeps its index up to the
 * last entry that points at a valid record, scans on from there and
 * truncates a torn tail. */
static int
recover_active(struct slog *l, struct seg *s)
{
    uint64_t fsize, isz, pos = SEG_HDR, off = s->first, ipos = 0, n;
    struct buf tmp;
    struct idx_ent e = {0};
    struct rec_hdr h;
    bool have_entry = false;
    uint8_t hdr[SEG_HDR];

    l->fd = open_file(l, s->first, "seg", O_RDWR);
    l->ifd = open_file(l, s->first, "idx", O_RDWR | O_CREAT | O_APPEND);
    if (l->fd < 0 || l->ifd < 0)
        return WR_ERR;
    fsize = fd_size(l->fd);
    if (fsize < SEG_HDR || !pread_full(l->fd, hdr, SEG_HDR, 0) ||
        memcmp(hdr, SEG_MAGIC, 8) != 0) {
        /* torn at creation: rewrite the header */
        memcpy(hdr, SEG_MAGIC, 8);
        memcpy(hdr + 8, &s->first, 8);
        if (ftruncate(l->fd, 0) != 0 ||
            pwrite(l->fd, hdr, SEG_HDR, 0) != SEG_HDR)
            return WR_ERR;
        fsize = SEG_HDR;
    }
    buf_init(&tmp);
    isz = fd_size(l->ifd) / IDX_ENT * IDX_ENT;
    /* the last entry that points at a good record */
    while (isz >= IDX_ENT) {
        if (pread_full(l->ifd, &e, sizeof(e), isz - IDX_ENT) &&
            check_record(l->fd, e.pos, fsize, e.off, &tmp, &h)) {
            have_entry = true;
            break;
        }
        isz -= IDX_ENT;
    }
    if (have_entry) {
        pos = e.pos;
        off = e.off;
        ipos = e.pos;
        s->first_ts = 0;
    }
    if (ftruncate(l->ifd, (off_t)isz) != 0) {
        buf_fini(&tmp);
        return WR_ERR;
    }
    l->idx_pos = ipos;
    l->has_last = false;
    while ((n = check_record(l->fd, pos, fsize, off, &tmp, &h)) > 0) {
        if (!l->has_last && !have_entry)
            index_add(l, off, pos, h.ts);
        else if (pos - l->idx_pos >= SLOG_INDEX_EVERY)
            index_add(l, off, pos, h.ts);
        l->has_last = true;
        l->last_off = off;
        l->last_pos = pos;
        l->last_ts = h.ts;
        pos += n;
        off++;
    }
    buf_fini(&tmp);
    if (pos < fsize) {
        log_err("stream log %s/%s: segment %llu: torn or corrupt tail at "
                "byte %llu of %llu truncated",
                l->dir, l->prefix, (unsigned long long)s->first,
                (unsigned long long)pos, (unsigned long long)fsize);
        if (ftruncate(l->fd, (off_t)pos) != 0)
            return WR_ERR;
    }
    if (lseek(l->fd, (off_t)pos, SEEK_SET) < 0)
        return WR_ERR;
    /* the first entry's time, if the index had it */
    if (isz >= IDX_ENT && pread_full(l->ifd, &e, sizeof(e), 0))
        s->first_ts = e.ts;
    else if (l->ibuf.len)
        s->first_ts = ((struct idx_ent *)l->ibuf.data)->ts;
    s->last_ts = l->has_last ? l->last_ts : s->first_ts;
    s->bytes = pos;
    l->wpos = pos;
    l->next = l->written = off;
    /* the rebuilt entries */
    if (l->ibuf.len && !write_full(l->ifd, l->ibuf.data, l->ibuf.len))
        return WR_ERR;
    buf_reset(&l->ibuf);
    return WR_OK;
}

struct slog *
slog_open(const char *dir, const char *prefix, const struct slog_opts *o,
          char *err, size_t errlen)
{
    struct slog *l = xcalloc(1, sizeof(*l));
    uint64_t *firsts = NULL;
    ssize_t n;

    l->dir = xstrdup(dir);
    l->prefix = xstrdup(prefix);
    l->o = *o;
    l->fd = l->ifd = -1;
    buf_init(&l->wbuf);
    buf_init(&l->ibuf);
    n = list_segments(l, &firsts);
    if (n < 0) {
        snprintf(err, errlen, "cannot read directory %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    for (ssize_t i = 0; i < n; i++) {
        struct seg *s = seg_add(l, firsts[i]);

        if (i + 1 < n) {
            load_sealed(l, s);
            l->total_bytes += s->bytes;
        }
    }
    free(firsts);
    firsts = NULL;
    if (n == 0) {
        if (seg_create(l, 0) != WR_OK) {
            snprintf(err, errlen, "cannot create a segment in %s: %s", dir,
                     strerror(errno));
            goto fail;
        }
        l->next = l->written = 0;
        return l;
    }
    if (recover_active(l, &l->segs[l->nsegs - 1]) != WR_OK) {
        snprintf(err, errlen, "cannot recover stream %s in %s: %s", prefix, dir,
                 strerror(errno));
        goto fail;
    }
    l->total_bytes += l->segs[l->nsegs - 1].bytes;
    return l;
fail: /* undo the partial open */
    free(firsts);
    slog_close(l);
    return NULL;
}

void
slog_set_opts(struct slog *l, const struct slog_opts *o)
{
    l->o = *o;
}

void
slog_close(struct slog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        slog_flush(l);
    if (l->fd >= 0)
        close(l->fd);
    if (l->ifd >= 0)
        close(l->ifd);
    buf_fini(&l->wbuf);
    buf_fini(&l->ibuf);
    free(l->segs);
    free(l->dir);
    free(l->prefix);
    free(l);
}

void
slog_destroy(struct slog *l)
{
    drop_segments(l);
    slog_close(l);
}

uint64_t
slog_first(const struct slog *l)
{
    return l->segs[0].first;
}

uint64_t
slog_next(const struct slog *l)
{
    return l->next;
}

uint64_t
slog_bytes(const struct slog *l)
{
    return l->total_bytes + l->wbuf.len;
}

size_t
slog_segments(const struct slog *l)
{
    return l->nsegs;
}

bool
slog_failed(const struct slog *l)
{
    return l->failed;
}

/* ---- readers */

/* The index entry of segment s to start a search from: the last one
 * whose key (offset, or time when by_ts) is below `key` (<= for
 * offsets). Fills *e; false when there is none (start at the header). */
static bool
index_search(struct slog *l, const struct seg *s, uint64_t key, bool by_ts,
             struct idx_ent *e)
{
    int ifd;
    uint64_t lo = 0, hi, n;
    bool found = false;
    struct idx_ent x;

    if (s == &l->segs[l->nsegs - 1] && l->ibuf.len)
        slog_flush(l);
    ifd = open_file(l, s->first, "idx", O_RDONLY);
    if (ifd < 0)
        return false;
    n = fd_size(ifd) / IDX_ENT;
    hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;

        if (!pread_full(ifd, &x, sizeof(x), mid * IDX_ENT))
            break;
        if (by_ts ? x.ts < key : x.off <= key) {
            *e = x;
            found = true;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    close(ifd);
    return found;
}

/* Points r at offset off (>= the log's first): opens its segment and
 * starts at the index entry before it. */
static int
reader_seek(struct slog_reader *r, uint64_t off)
{
    struct slog *l = r->l;
    size_t i = seg_find(l, off);
    struct idx_ent e;

    if (r->fd >= 0)
        close(r->fd);
    r->fd = open_file(l, l->segs[i].first, "seg", O_RDONLY);
    if (r->fd < 0)
        return WR_ERR;
    r->first = l->segs[i].first;
    r->sealed_end = 0;
    r->len = 0;
    if (index_search(l, &l->segs[i], off, false, &e)) {
        r->pos = e.pos;
        r->next = e.off;
    } else {
        r->pos = SEG_HDR;
        r->next = l->segs[i].first;
    }
    return WR_OK;
}

struct slog_reader *
slog_reader_new(struct slog *l, uint64_t offset)
{
    struct slog_reader *r = xcalloc(1, sizeof(*r));

    r->l = l;
    r->fd = -1;
    r->next = r->want = WR_MAX(offset, slog_first(l));
    return r;
}

void
slog_reader_free(struct slog_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
}

uint64_t
slog_reader_next(const struct slog_reader *r)
{
    return WR_MAX(r->next, r->want);
}

/* The valid end of the reader's segment; *last when it is the active
 * one (its end grows). */
static uint64_t
reader_seg_end(struct slog_reader *r, bool *last)
{
    struct slog *l = r->l;
    size_t i;

    *last = false;
    if (r->first >= slog_first(l)) {
        i = seg_find(l, r->first);
        if (l->segs[i].first == r->first) {
            *last = i == l->nsegs - 1;
            return l->segs[i].bytes;
        }
    }
    /* removed by retention while being read: it is complete */
    if (!r->sealed_end)
        r->sealed_end = fd_size(r->fd);
    return r->sealed_end;
}

/* Makes [pos, pos + n) available in the buffer. */
static bool
reader_fill(struct slog_reader *r, uint64_t n, uint64_t end)
{
    size_t want;
    ssize_t got;

    if (r->pos >= r->bpos && r->pos + n <= r->bpos + r->len)
        return true;
    if (n > r->cap || !r->buf) {
        r->cap = (size_t)WR_MAX(n, (uint64_t)SLOG_READ_CHUNK);
        free(r->buf);
        r->buf = xmalloc(r->cap);
    }
    want = (size_t)WR_MIN((uint64_t)r->cap, end - r->pos);
    if (want < n)
        return false;
    do {
        got = pread(r->fd, r->buf, want, (off_t)r->pos);
    } while (got < 0 && errno == EINTR);
    if (got < (ssize_t)n)
        return false;
    r->bpos = r->pos;
    r->len = (size_t)got;
    return true;
}

int
slog_read(struct slog_reader *r, struct slog_rec *out)
{
    struct slog *l = r->l;

    for (;;) {
        uint64_t end;
        bool last;
        struct rec_hdr h;
        const uint8_t *p;

        if (r->next >= l->written) {
            if (r->next >= l->next || slog_flush(l) != WR_OK)
                return WR_AGAIN;
        }
        if (r->next < slog_first(l) || r->fd < 0) {
            if (reader_seek(r, WR_MAX(r->next, slog_first(l))) != WR_OK)
                return WR_ERR;
        }
        end = reader_seg_end(r, &last);
        if (r->pos + REC_HDR > end) {
            if (last)
                return WR_AGAIN;
            /* the next segment */
            if (reader_seek(r, WR_MAX(r->next, slog_first(l))) != WR_OK)
                return WR_ERR;
            continue;
        }
        if (!reader_fill(r, REC_HDR, end))
            goto bad;
        memcpy(&h, r->buf + (r->pos - r->bpos), sizeof(h));
        if (h.len >= REC_MAX || r->pos + REC_HDR + h.len > end ||
            !reader_fill(r, REC_HDR + (uint64_t)h.len, end))
            goto bad;
        p = r->buf + (r->pos - r->bpos) + REC_HDR;
        if (h.off != r->next || rec_check(p, h.len, h.off, h.ts) != h.check)
            goto bad;
        r->pos += REC_HDR + h.len;
        r->next++;
        if (h.off < r->want)
            continue;
        r->want = r->next;
        out->offset = h.off;
        out->ts_ms = h.ts;
        out->payload = bytes_of(p, h.len);
        return WR_OK;
    }
bad:
    log_err("stream log %s/%s: unreadable record at offset %llu (segment "
            "%llu, byte %llu)",
            l->dir, l->prefix, (unsigned long long)r->next,
            (unsigned long long)r->first, (unsigned long long)r->pos);
    return WR_ERR;
}

uint64_t
slog_offset_at(struct slog *l, uint64_t ts_ms)
{
    struct slog_reader *r;
    struct slog_rec rec;
    struct idx_ent e;
    size_t i = 0;
    uint64_t start, found;

    slog_flush(l);
    while (i < l->nsegs && l->segs[i].last_ts < ts_ms)
        i++;
    if (i == l->nsegs)
        return l->next;
    start = l->segs[i].first;
    if (index_search(l, &l->segs[i], ts_ms, true, &e))
        start = e.off;
    r = slog_reader_new(l, start);
    found = l->next;
    while (slog_read(r, &rec) == WR_OK) {
        if (rec.ts_ms >= ts_ms) {
            found = rec.offset;
            break;
        }
    }
    slog_reader_free(r);
    return found;
}
