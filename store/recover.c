/*
 * recover.c: store_open's replay.
 *
 * Phase 1, per segment file in number order:
 *   - check the header (magic, version, checksum, number);
 *   - unless repairing, read the summary from the trailer (two preads
 *     from the end: SEAL, then SUMMARY). This is the fast path: recovery
 *     reads about 10 bytes per message of a sealed segment and no body;
 *   - otherwise scan every record (the newest segment when it was not
 *     sealed, any segment with an unreadable trailer, every segment when
 *     repairing), building the summary the trailer would have held.
 *   While scanning, a damaged record of the newest segment with no valid
 *   record after it is a torn tail: cut there. Any other damage
 *   fails the open with the file, the offset and what to do, or, when
 *   repairing, is skipped (resynchronising on the next valid record) and
 *   logged.
 * Phase 2: collect the kills (ACK ids, QDEL bounds) of every segment,
 *   the newest copy of every moved message, and check that original ids
 *   grow from segment to segment.
 * Phase 2b: read back and check the MSG records of live messages in the
 *   segments opened from their summaries (scanned ones were checked
 *   record by record), so damage to anything a queue still needs refuses
 *   the open; acked history is not read.
 * Phase 3: write: seal the scanned segments that need a trailer (the
 *   unsealed newest, repaired ones), after truncating a torn tail or
 *   junk; create the new head segment; fsync the directory.
 * Phase 4: build the loop's view (segments, live bits, relocation map,
 *   deps) and report every live (queue, message) pair: originals in id
 *   order, merged with the moved copies sorted by id, so each queue sees
 *   increasing ids. Transient messages are dead here.
 *
 * A message is live in queue q iff its newest MSG record (the original,
 *   or the latest copy compaction wrote) lists q and is not transient, no
 *   ACK anywhere names (q, id), and no QDEL of q has upto > id.
 *
 * Deleting a segment must never change that answer, so recovery rebuilds
 * the "deps" (store_int.h) record-exactly: an ACK/QDEL depends on every
 * segment holding a record it kills, older or (in a damaged or forged
 * log) newer; and the segment of a message's newest record depends on
 * the segments of its older records. Damaged or forged logs that the
 * writer could never produce are the fuzzer's (test/fuzz/fuzz_record.c)
 * job: whatever an open accepts, the next open must report the same.
 */
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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

static int fail(struct rctx *c, const char *fmt, ...) WR_PRINTF(2, 3);

static int
fail(struct rctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return WR_ERR;
}

static const char repair_hint[] =
    "Warren will not guess what the log should contain. Restart with "
    "--repair to open it anyway, keeping every intact record and logging "
    "what is dropped, or restore the directory from a backup";

/* ---- listing */

static int
cmp_rseg(const void *a, const void *b)
{
    const struct rseg *x = a, *y = b;

    return x->no < y->no ? -1 : x->no > y->no;
}

static int
list_segments(struct rctx *c)
{
    DIR *d = opendir(c->s->dir);
    struct dirent *e;
    size_t cap = 0;
    uint32_t no;

    if (!d)
        return fail(c, "store: cannot open directory %s: %s", c->s->dir,
                    strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (!seg_parse_name(e->d_name, &no))
            continue;
        if (c->n == cap) {
            cap = cap ? 2 * cap : 16;
            c->rs = xrealloc(c->rs, cap * sizeof(*c->rs));
        }
        memset(&c->rs[c->n], 0, sizeof(c->rs[0]));
        c->rs[c->n].no = no;
        c->rs[c->n].fd = -1;
        buf_init(&c->rs[c->n].raw);
        c->n++;
        c->max_no = WR_MAX(c->max_no, no);
    }
    closedir(d);
    if (c->n)
        qsort(c->rs, c->n, sizeof(*c->rs), cmp_rseg);
    return WR_OK;
}

/* ---- phase 0: the manifest */

static const struct rseg *
rs_find(const struct rctx *c, uint32_t no)
{
    size_t lo = 0, hi = c->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (c->rs[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->rs[lo].no == no ? &c->rs[lo] : NULL;
}

/* "ids 17 to 33" or "ids from 17 on": what segment k of the manifest
   held originals of (the next listed segment starts after them). */
static void
id_range(const struct store *s, size_t k, char *out, size_t n)
{
    uint64_t lo = s->mf.v[k].first_id;

    if (k + 1 < s->mf.n && s->mf.v[k + 1].first_id > lo)
        snprintf(out, n, "message ids %llu to %llu", (unsigned long long)lo,
                 (unsigned long long)(s->mf.v[k + 1].first_id - 1));
    else
        snprintf(out, n, "message ids from %llu on", (unsigned long long)lo);
}

static int
report_missing(struct rctx *c, const size_t *miss, size_t nmiss)
{
    char path[SEG_PATH_MAX], ids[96];
    struct buf names;
    int rc;

    if (c->repair) {
        for (size_t i = 0; i < nmiss; i++) {
            seg_path(path, sizeof(path), c->s->dir, c->s->mf.v[miss[i]].no);
            id_range(c->s, miss[i], ids, sizeof(ids));
            log_err("store: repair: %s is missing, although the manifest "
                    "lists it: the messages it held (%s) are lost, and "
                    "messages it acknowledged may be delivered again",
                    path, ids);
        }
        return WR_OK;
    }
    buf_init(&names);
    for (size_t i = 0; i < nmiss && i < 8; i++) {
        seg_path(path, sizeof(path), c->s->dir, c->s->mf.v[miss[i]].no);
        id_range(c->s, miss[i], ids, sizeof(ids));
        buf_printf(&names, "%s%s (%s)", i ? ", " : "", path, ids);
    }
    buf_put_u8(&names, 0);
    rc = fail(c,
              "store: %zu segment file%s missing, although the log's "
              "manifest lists %s: %s%s. Their messages would be lost and "
              "the acks they hold forgotten. Restore the file%s from a "
              "backup, or restart with --repair to open the log without "
              "%s, logging what is lost%s",
              nmiss, nmiss == 1 ? " is" : "s are", nmiss == 1 ? "it" : "them",
              (const char *)names.data, nmiss > 8 ? ", ..." : "",
              nmiss == 1 ? "" : "s", nmiss == 1 ? "it" : "them",
              c->s->mf_stale ? " (one copy of the manifest is damaged, so "
                               "an older version of the list is in force: "
                               "a segment deleted since may be among these)"
                             : "");
    buf_fini(&names);
    return rc;
}

/* Every segment the manifest lists must be there (record.c). */
static int
check_manifest(struct rctx *c)
{
    struct store *s = c->s;
    size_t *miss, nmiss = 0;
    char why[400];
    bool found;
    int rc;

    if (manifest_read(s, &found, why, sizeof(why)) != WR_OK) {
        if (!c->repair)
            return fail(c, "store: %s: %s. %s.", s->dir, why, repair_hint);
        log_err("store: repair: %s: %s; rebuilding it from the segment "
                "files present",
                s->dir, why);
        return WR_OK;
    }
    if (!found) {
        if (c->n)
            log_info("store: %s has no manifest (a log written by an older "
                     "Warren): recording the %zu segment files present",
                     s->dir, c->n);
        return WR_OK;
    }
    for (size_t i = 0; i < c->n; i++)
        c->rs[i].listed = manifest_has(s, c->rs[i].no);
    miss = xmalloc((s->mf.n + 1) * sizeof(*miss));
    for (size_t k = 0; k < s->mf.n; k++) {
        if (!rs_find(c, s->mf.v[k].no))
            miss[nmiss++] = k;
    }
    rc = nmiss ? report_missing(c, miss, nmiss) : WR_OK;
    free(miss);
    return rc;
}

/* Phase 3, last: the manifest lists exactly the segments kept and the
   new head; then the segments torn at creation go. */
static int
record_manifest(struct rctx *c, const struct seg_hdr *head)
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
        return fail(c, "store: %s", why);
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].remove)
            continue;
        seg_path(path, sizeof(path), s->dir, c->rs[i].no);
        if (s->mf_dirty && c->rs[i].listed)
            return fail(c,
                        "store: cannot remove %s, a segment torn at "
                        "creation, while the manifest that lists it cannot "
                        "be rewritten (%s); free disk space and start again",
                        path, why);
        if (s->io->unlink(s->io->arg, path) < 0)
            return fail(c, "store: cannot remove %s: %s", path,
                        strerror(errno));
    }
    return WR_OK;
}

/* ---- reading a trailer */

int
recover_read_trailer(const struct store_io *io, int fd, uint64_t size,
                     uint64_t salt, struct buf *raw, struct rec_sum *sum,
                     uint64_t *next_id, const char **why)
{
    uint8_t seal[REC_SEAL_SIZE];
    uint64_t seal_off, len;
    uint32_t sum_off;
    struct rec rec;

    if (size < SEG_HDR_SIZE + REC_SEAL_SIZE || size > UINT32_MAX) {
        *why = "no SEAL record at the end";
        return WR_ERR;
    }
    seal_off = size - REC_SEAL_SIZE;
    if (io_pread_all(io, fd, seal, sizeof(seal), seal_off) !=
            (ssize_t)sizeof(seal) ||
        rec_check(seal, sizeof(seal), salt, (uint32_t)seal_off, &rec, why) !=
            REC_OK ||
        rec.type != REC_SEAL) {
        *why = "no valid SEAL record at the end";
        return WR_ERR;
    }
    rec_seal_decode(rec.payload, &sum_off, next_id);
    if (sum_off < SEG_HDR_SIZE || sum_off >= seal_off) {
        *why = "SEAL points outside the segment";
        return WR_ERR;
    }
    len = seal_off - sum_off;
    buf_reset(raw);
    buf_reserve(raw, len);
    if (io_pread_all(io, fd, raw->data, len, sum_off) != (ssize_t)len) {
        *why = "summary unreadable";
        return WR_ERR;
    }
    raw->len = len;
    if (rec_check(raw->data, len, salt, sum_off, &rec, why) != REC_OK ||
        rec.type != REC_SUMMARY || rec.len != len) {
        *why = "summary record damaged";
        return WR_ERR;
    }
    rec_sum_decode(rec.payload, sum);
    return WR_OK;
}

/* ---- scanning */

/* The offset of the next valid record from `from` on, or size. */
static uint64_t
next_valid(const uint8_t *img, uint64_t size, uint64_t salt, uint64_t from)
{
    struct rec rec;
    const char *why;

    for (uint64_t p = from; p + REC_HDR_SIZE <= size; p++) {
        uint32_t len = be32_load(img + p);

        if (len < REC_HDR_SIZE || len > size - p || img[p + 8] < REC_MSG ||
            img[p + 8] > REC_SEAL || img[p + 9] != 1)
            continue;
        if (rec_check(img + p, size - p, salt, (uint32_t)p, &rec, &why) ==
            REC_OK)
            return p;
    }
    return size;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void
scan_msg(struct rseg *r, struct rec_msg *m, uint32_t off)
{
    uint64_t small[16], *q = small;
    struct rec_sum_msg sm;
    uint32_t n = 0;
    int k;

    if (m->nqids > WR_ARRAY_LEN(small))
        q = xmalloc(m->nqids * sizeof(*q));
    for (uint32_t i = 0; i < m->nqids; i++)
        q[i] = rec_msg_qid(m, i);
    qsort(q, m->nqids, sizeof(*q), cmp_u64);
    for (uint32_t i = 0; i < m->nqids; i++) {
        if (n == 0 || q[i] != q[n - 1])
            q[n++] = q[i];
    }
    k = seg_set_lookup(r->bld, q, n);
    if (k < 0) /* a full dictionary cannot come from a valid writer */
        k = 0;
    sm.id = m->id;
    sm.flags = m->flags;
    sm.set = (uint32_t)k;
    sm.off = off;
    sm.meta_len = (uint32_t)m->meta.len;
    sm.body_len = (uint32_t)m->body.len;
    rec_sumb_add_msg(r->bld->sum, &sm);
    if (q != small)
        free(q);
}

/* Scans the image; fills r->bld. Returns WR_OK or WR_ERR (c->err). */
static int
scan_image(struct rctx *c, struct rseg *r, const uint8_t *img, bool newest,
           const char *path)
{
    uint64_t off = SEG_HDR_SIZE, data_end = SEG_HDR_SIZE, size = r->size;
    uint64_t salt = r->hdr.salt;
    bool sealed = false, damaged = false;
    uint64_t sum_off = 0;

    while (off < size) {
        const char *why = NULL;
        struct rec rec;
        struct rec_msg m;
        enum rec_status st =
            rec_check(img + off, size - off, salt, (uint32_t)off, &rec, &why);

        if (st == REC_OK && sealed) {
            st = REC_BAD;
            why = "data after the segment's SEAL record";
        }
        if (st != REC_OK) {
            uint64_t next;

            /* Torn only when nothing valid follows: a kill can cut the
             * last write short, never punch a hole before intact
             * records. A hole in the newest segment (bit rot, or pages
             * of an unsynced last batch reordered by a power loss) is
             * for the operator: refuse, and let --repair keep what is
             * intact. */
            if (newest && next_valid(img, size, salt, off + 1) >= size) {
                log_warn("store: %s: torn tail at byte offset %llu (%s); "
                         "dropping its last %llu bytes",
                         path, (unsigned long long)off, why,
                         (unsigned long long)(size - off));
                break;
            }
            if (!c->repair)
                return fail(c,
                            "store: damaged record in %s at byte offset "
                            "%llu (%s). %s.",
                            path, (unsigned long long)off, why, repair_hint);
            next = next_valid(img, size, salt, off + 1);
            log_err("store: repair: %s: dropped %llu damaged bytes at byte "
                    "offset %llu (%s)",
                    path, (unsigned long long)(next - off),
                    (unsigned long long)off, why);
            damaged = true;
            off = next;
            continue;
        }
        switch (rec.type) {
        case REC_MSG:
            rec_msg_decode(rec.payload, &m);
            scan_msg(r, &m, (uint32_t)off);
            break;
        case REC_ACK:
        case REC_QDEL:
            rec_sumb_add_tomb(r->bld->sum, rec.type, rec.payload);
            break;
        case REC_SUMMARY:
            sum_off = off;
            break;
        case REC_SEAL: {
            uint32_t so;

            rec_seal_decode(rec.payload, &so, &r->seal_next_id);
            sealed = so == sum_off && sum_off != 0;
            if (!sealed) {
                if (!c->repair)
                    return fail(c,
                                "store: damaged record in %s at byte offset "
                                "%llu (SEAL does not follow its SUMMARY). "
                                "%s.",
                                path, (unsigned long long)off, repair_hint);
                damaged = true;
            }
            break;
        }
        default:
            break;
        }
        off += rec.len;
        if (rec.type != REC_SUMMARY && rec.type != REC_SEAL)
            data_end = off;
    }
    if (!sealed && !newest) {
        if (!c->repair)
            return fail(c,
                        "store: %s ends at byte offset %llu without its "
                        "SEAL record (truncated?). %s.",
                        path, (unsigned long long)data_end, repair_hint);
        log_err("store: repair: %s was not sealed; resealing it at byte "
                "offset %llu",
                path, (unsigned long long)data_end);
        damaged = true;
    }
    r->data_end = data_end;
    if (sealed && !damaged) {
        r->sealed = true;
        r->end = size;
        r->sum_at = sum_off;
    } else {
        r->need_seal = true;
        r->end = data_end;
    }
    return WR_OK;
}

static bool
all_zero(const struct store_io *io, int fd, uint64_t size)
{
    uint8_t b[65536];

    for (uint64_t off = 0; off < size; off += sizeof(b)) {
        size_t n = (size_t)WR_MIN(sizeof(b), size - off);

        if (io_pread_all(io, fd, b, n, off) != (ssize_t)n)
            return false;
        for (size_t i = 0; i < n; i++) {
            if (b[i])
                return false;
        }
    }
    return true;
}

static int
bad_header(struct rctx *c, struct rseg *r, bool newest, const char *path,
           const char *why)
{
    char to[SEG_PATH_MAX + 16];

    if (newest &&
        (r->size <= SEG_HDR_SIZE || all_zero(c->s->io, r->fd, r->size))) {
        /* created, never written: nothing in it was ever durable. It
           goes once the manifest no longer lists it (record_manifest). */
        log_warn("store: %s: removing a segment torn at creation (%s)", path,
                 why);
        r->drop = true;
        r->remove = true;
        return WR_OK;
    }
    if (!c->repair)
        return fail(c,
                    "store: damaged segment header in %s at byte offset 0 "
                    "(%s). %s.",
                    path, why, repair_hint);
    snprintf(to, sizeof(to), "%s.damaged", path);
    log_err("store: repair: %s has a damaged header (%s); every record in "
            "it is lost; renamed to %s",
            path, why, to);
    r->drop = true;
    if (c->s->io->rename(c->s->io->arg, path, to) < 0)
        return fail(c, "store: cannot rename %s: %s", path, strerror(errno));
    return WR_OK;
}

/* Does the SUMMARY on disk (scanned image) say what the records say? */
static bool
summary_matches(const struct rseg *r, const uint8_t *img)
{
    const uint8_t *disk = img + r->sum_at;
    uint32_t len = be32_load(disk);

    return len == r->raw.len &&
           memcmp(disk + REC_HDR_SIZE, r->raw.data + REC_HDR_SIZE,
                  len - REC_HDR_SIZE) == 0;
}

static int scan_segment(struct rctx *c, struct rseg *r, bool newest,
                        const char *path);

static int
load_segment(struct rctx *c, struct rseg *r, bool newest)
{
    const struct store_io *io = c->s->io;
    char path[SEG_PATH_MAX];
    uint8_t hb[SEG_HDR_SIZE];
    const char *why = NULL;

    seg_path(path, sizeof(path), c->s->dir, r->no);
    r->fd = io->open(io->arg, path, O_RDWR, 0);
    if (r->fd < 0 || io->fsize(io->arg, r->fd, &r->size) < 0)
        return fail(c, "store: cannot open %s: %s", path, strerror(errno));
    if (io_pread_all(io, r->fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
        !rec_hdr_decode(hb, sizeof(hb), &r->hdr, &why) || r->hdr.no != r->no) {
        if (!why)
            why = r->size < SEG_HDR_SIZE ? "segment header is short"
                                         : "header names another segment";
        return bad_header(c, r, newest, path, why);
    }
    if (r->size > UINT32_MAX)
        return fail(c, "store: %s is larger than 4 GiB. %s.", path,
                    repair_hint);
    if (!c->repair &&
        recover_read_trailer(io, r->fd, r->size, r->hdr.salt, &r->raw, &r->sum,
                             &r->seal_next_id, &why) == WR_OK) {
        r->sealed = true;
        r->end = r->size;
        return WR_OK;
    }
    if (!newest && !c->repair)
        log_warn("store: %s: %s; scanning the whole segment", path, why);
    return scan_segment(c, r, newest, path);
}

/* Reads all of r and scans it: builds r->bld and the summary (r->raw,
   r->sum) its records call for. */
static int
scan_segment(struct rctx *c, struct rseg *r, bool newest, const char *path)
{
    const struct store_io *io = c->s->io;
    uint8_t *img;
    int rc;

    img = xmalloc(r->size ? r->size : 1);
    if (io_pread_all(io, r->fd, img, r->size, 0) != (ssize_t)r->size) {
        free(img);
        return fail(c, "store: cannot read %s: %s", path, strerror(errno));
    }
    r->bld = seg_new(r->no, r->hdr.salt, 0, true);
    rc = scan_image(c, r, img, newest, path);
    if (rc == WR_OK) {
        /* the summary the trailer holds (or will hold once written) */
        buf_reset(&r->raw);
        rec_summary_encode(&r->raw, r->bld->sum, r->hdr.salt, (uint32_t)r->end);
        rec_sum_decode(
            bytes_of(r->raw.data + REC_HDR_SIZE, r->raw.len - REC_HDR_SIZE),
            &r->sum);
        if (r->sealed && !summary_matches(r, img)) {
            /* only repair scans sealed segments: it trusts the records */
            log_err("store: repair: %s: its summary disagrees with its "
                    "records; rewriting it",
                    path);
            r->sealed = false;
            r->need_seal = true;
            r->end = r->data_end;
        }
    }
    free(img);
    return rc;
}

/* ---- phase 2: kills and copies */

static void
collect_tombs(struct rctx *c, const struct rseg *r)
{
    struct cursor cur;
    struct rec_tomb t;

    cur_init(&cur, r->sum.tombs.ptr, r->sum.tombs.len);
    for (uint32_t i = 0; i < r->sum.ntombs; i++) {
        rec_sum_tomb_next(&cur, &t);
        if (t.type == REC_ACK) {
            struct rec_ack_it it;
            uint64_t id;

            rec_ack_begin(t.payload, &it);
            while (rec_ack_next(&it, &id)) {
                if (id != 0)
                    *(uint64_t *)idmap_add(&c->acks, id) = it.qid;
            }
        } else {
            uint64_t qid, upto;
            struct qdel *d;

            rec_qdel_decode(t.payload, &qid, &upto);
            HASH_FIND(hh, c->dels, &qid, sizeof(qid), d);
            if (!d) {
                d = xcalloc(1, sizeof(*d));
                d->qid = qid;
                HASH_ADD(hh, c->dels, qid, sizeof(d->qid), d);
            }
            d->upto = WR_MAX(d->upto, upto);
        }
    }
}

static int
collect_msgs(struct rctx *c, struct rseg *r, uint64_t *last_orig)
{
    struct rec_sum_it it;
    struct rec_sum_msg m;
    char path[SEG_PATH_MAX];

    rec_sum_msgs_begin(&r->sum, &it);
    for (uint32_t i = 0; i < r->sum.nmsgs; i++) {
        rec_sum_msg_next(&it, &m);
        if (m.id == 0 || m.id > STORE_MAX_ID) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return fail(c, "store: %s: invalid message id at byte offset %u",
                        path, m.off);
        }
        c->next_id = WR_MAX(c->next_id, m.id + 1);
        if (m.flags & REC_F_MOVED) {
            struct mv *v = idmap_find(&c->moved, m.id);

            if (!v) {
                v = idmap_add(&c->moved, m.id);
            } else {
                v->prev = v->seg;
                v->prev_set = v->set;
            }
            v->seg = r->no;
            v->off = m.off;
            v->meta_len = m.meta_len;
            v->body_len = m.body_len;
            v->set = m.set;
            v->flags = m.flags;
            continue;
        }
        if (m.id <= *last_orig) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return fail(c,
                        "store: %s: message id %llu at byte offset %u is "
                        "out of order (previous %llu); the log is "
                        "inconsistent. Restore the directory from a backup",
                        path, (unsigned long long)m.id, m.off,
                        (unsigned long long)*last_orig);
        }
        *last_orig = m.id;
        if (!r->has_orig)
            r->lo = m.id;
        r->hi = m.id;
        r->has_orig = true;
        /* the writer seals a segment before its ids span 2^32 */
        if (r->hi - r->lo >= UINT32_MAX - 1) {
            seg_path(path, sizeof(path), c->s->dir, r->no);
            return fail(c,
                        "store: %s: message ids %llu..%llu cannot all be "
                        "in this segment; the log is inconsistent. "
                        "Restore the directory from a backup",
                        path, (unsigned long long)r->lo,
                        (unsigned long long)r->hi);
        }
    }
    c->next_id = WR_MAX(c->next_id, r->hdr.next_id);
    c->next_id = WR_MAX(c->next_id, r->seal_next_id);
    if (c->next_id > STORE_MAX_ID) {
        seg_path(path, sizeof(path), c->s->dir, r->no);
        return fail(c, "store: %s: message ids exhausted (next id %llu)", path,
                    (unsigned long long)c->next_id);
    }
    return WR_OK;
}

/* ---- phase 2b: reading back the live records of summarised segments */

#define VERIFY_READ_MAX (4u << 20) /* bytes per pread */
#define VERIFY_GAP_MAX  (4u << 10) /* dead bytes read to join two runs */

/* Whether a message of this set still belongs to some queue. */
static bool deleted(struct rctx *c, uint64_t qid, uint64_t id);
static bool acked(const struct rctx *c, uint64_t id, uint64_t qid);

static bool
msg_live(struct rctx *c, uint64_t id, uint8_t flags, const uint8_t *qids,
         uint32_t n)
{
    if (flags & REC_F_TRANSIENT)
        return false;
    for (uint32_t j = 0; j < n; j++) {
        uint64_t q = be64_load(qids + 8 * (size_t)j);

        if (!deleted(c, q, id) && !(c->acks.count && acked(c, id, q)))
            return true;
    }
    return false;
}

struct vrec {
    uint64_t id;
    uint32_t off;
    uint32_t len; /* from the summary; the record's own header decides */
    uint32_t body_len;
};

/* Checks the record v at p (avail bytes); NULL or what is wrong. */
static const char *
verify_one(const struct rseg *r, const struct vrec *v, const uint8_t *p,
           size_t avail)
{
    const char *why = NULL;
    struct rec_msg dm;
    struct rec rec;
    uint32_t len;

    if (avail < REC_HDR_SIZE)
        return "record cut short";
    len = be32_load(p);
    if (len < REC_HDR_SIZE || len > avail)
        return "bad record length";
    if (rec_check(p, len, r->hdr.salt, v->off, &rec, &why) != REC_OK)
        return why;
    if (rec.type != REC_MSG || !rec_msg_decode(rec.payload, &dm) ||
        dm.id != v->id || dm.body.len != v->body_len)
        return "the record is not the message its summary lists";
    return NULL;
}

/*
 * A segment opened from its summary has had none of its records read.
 * Read back the ones recovery hands to the queues (the MSG records of
 * live messages: every byte a consumer could be sent) and check them, so
 * that damage there refuses the open now, with the file and offset,
 * rather than failing a delivery later. Acked history is not read:
 * recovery time follows the live data. Neighbouring live records are
 * read together, up to VERIFY_READ_MAX bytes per pread.
 */
static int
verify_live(struct rctx *c, struct rseg *r)
{
    const struct store_io *io = c->s->io;
    struct vset {
        uint32_t n;
        const uint8_t *qids;
    } * sets;
    struct vrec *v;
    size_t nv = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    struct rec_sum_it it;
    struct rec_sum_msg m;
    struct cursor cur;
    char path[SEG_PATH_MAX];
    const char *why = NULL;
    size_t bad = 0;

    sets = xmalloc(((size_t)r->sum.nsets + 1) * sizeof(*sets));
    v = xmalloc(((size_t)r->sum.nmsgs + 1) * sizeof(*v));
    cur_init(&cur, r->sum.sets.ptr, r->sum.sets.len);
    for (uint32_t i = 0; i < r->sum.nsets; i++)
        rec_sum_set_next(&cur, &sets[i].n, &sets[i].qids);
    rec_sum_msgs_begin(&r->sum, &it);
    for (uint32_t e = 0; e < r->sum.nmsgs; e++) {
        uint64_t len;

        rec_sum_msg_next(&it, &m);
        if (m.set >= r->sum.nsets) {
            why = "the summary names a queue set it does not hold";
        } else if (!msg_live(c, m.id, m.flags, sets[m.set].qids,
                             sets[m.set].n)) {
            continue;
        } else {
            len = rec_msg_size(m.id, sets[m.set].n, m.meta_len, m.body_len);
            if ((uint64_t)m.off + len > r->size)
                why = "the summary points past the end of the file";
            v[nv].len = (uint32_t)len;
        }
        v[nv].id = m.id;
        v[nv].off = m.off;
        v[nv].body_len = m.body_len;
        nv++;
        if (why) {
            bad = nv - 1;
            goto done;
        }
    }
    for (size_t i = 0; i < nv && !why;) {
        uint64_t lo = v[i].off, hi = lo + v[i].len;
        size_t j = i + 1;

        while (j < nv && v[j].off >= hi && v[j].off - hi <= VERIFY_GAP_MAX &&
               v[j].off + (uint64_t)v[j].len - lo <= VERIFY_READ_MAX) {
            hi = v[j].off + (uint64_t)v[j].len;
            j++;
        }
        if (hi - lo > cap) {
            free(buf);
            cap = (size_t)(hi - lo);
            buf = xmalloc(cap);
        }
        if (io_pread_all(io, r->fd, buf, (size_t)(hi - lo), lo) !=
            (ssize_t)(hi - lo)) {
            why = "read error";
            bad = i;
            break;
        }
        for (; i < j && !why; i++) {
            const uint8_t *p = buf + (v[i].off - lo);
            size_t avail = (size_t)(hi - v[i].off);
            uint32_t len = be32_load(p);
            uint8_t *own = NULL;

            bad = i;
            /* longer than its summary says (duplicate queue ids): alone */
            if (len > avail && len <= REC_MAX_LEN &&
                (uint64_t)v[i].off + len <= r->size) {
                own = xmalloc(len);
                if (io_pread_all(io, r->fd, own, len, v[i].off) !=
                    (ssize_t)len) {
                    free(own);
                    why = "read error";
                    break;
                }
                p = own;
                avail = len;
            }
            why = verify_one(r, &v[i], p, avail);
            free(own);
        }
    }
done:
    if (why) {
        seg_path(path, sizeof(path), c->s->dir, r->no);
        fail(c,
             "store: %s: damaged record at byte offset %u (%s), holding "
             "message %llu that a queue still needs. %s.",
             path, v[bad].off, why, (unsigned long long)v[bad].id, repair_hint);
    }
    free(buf);
    free(v);
    free(sets);
    return why ? WR_ERR : WR_OK;
}

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
        rc = fail(c, "store: %s would grow past 4 GiB", path);
    else if (r->size > r->end && io->ftruncate(io->arg, r->fd, r->end) < 0)
        rc = fail(c, "store: cannot truncate %s at byte offset %llu: %s", path,
                  (unsigned long long)r->end, strerror(errno));
    else if (io_pwrite_all(io, r->fd, t.data, t.len, r->end) < 0)
        rc = is_no_space(errno)
                 ? NO_SPACE
                 : fail(c, "store: cannot seal %s at byte offset %llu: %s",
                        path, (unsigned long long)r->end, strerror(errno));
    else if (io->fdatasync(io->arg, r->fd) < 0)
        rc = fail(c, "store: cannot seal %s at byte offset %llu: %s", path,
                  (unsigned long long)r->end, strerror(errno));
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
   fsync); the loop's struct seg for it is pushed by push_head(). Returns
   WR_OK, WR_ERR or NO_SPACE (no file left behind). */
static int
create_head(struct rctx *c, struct seg_hdr *h)
{
    struct store *s = c->s;
    const struct store_io *io = s->io;
    char path[SEG_PATH_MAX];
    uint8_t hb[SEG_HDR_SIZE];
    int fd, e;

    if (c->max_no >= UINT32_MAX - 1)
        return fail(c, "store: %s: segment numbers exhausted", s->dir);
    h->no = c->max_no + 1;
    wr_random(&h->salt, sizeof(h->salt));
    h->next_id = c->next_id;
    rec_hdr_encode(hb, h);
    seg_path(path, sizeof(path), s->dir, (uint32_t)h->no);
    fd = io->open(io->arg, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return is_no_space(errno) ? NO_SPACE
                                  : fail(c, "store: cannot create %s: %s", path,
                                         strerror(errno));
    if (io_pwrite_all(io, fd, hb, sizeof(hb), 0) < 0 ||
        io->fdatasync(io->arg, fd) < 0 || io->fsync(io->arg, s->dirfd) < 0) {
        e = errno;
        io->close(io->arg, fd);
        if (!is_no_space(e))
            return fail(c, "store: cannot create %s: %s", path, strerror(e));
        io->unlink(io->arg, path);
        return NO_SPACE;
    }
    s->wfd = fd;
    s->wseg = (uint32_t)h->no;
    return WR_OK;
}

static struct rseg *
newest_kept(struct rctx *c)
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
    struct rseg *r = newest_kept(c);
    char path[SEG_PATH_MAX];

    if (!r)
        return fail(c,
                    "store: %s: no space left on device %s, and no segment "
                    "to go on with; free disk space and start again",
                    c->s->dir, what);
    seg_path(path, sizeof(path), c->s->dir, r->no);
    if (!r->bld && scan_segment(c, r, true, path) != WR_OK)
        return WR_ERR;
    r->end = r->data_end;
    if (r->size > r->end && io->ftruncate(io->arg, r->fd, r->end) < 0)
        return fail(c, "store: cannot truncate %s: %s", path, strerror(errno));
    r->size = r->end;
    r->sealed = false;
    r->resume = true;
    c->s->wfd = io->open(io->arg, path, O_WRONLY, 0);
    if (c->s->wfd < 0)
        return fail(c, "store: cannot open %s: %s", path, strerror(errno));
    c->s->wseg = r->no;
    log_err("store: no space left on device %s; the log goes on in %s at "
            "byte offset %llu. Free disk space",
            what, path, (unsigned long long)r->end);
    return WR_OK;
}

/* Phase 3: seals what needs it and starts the head (a new segment, or
   the newest one when the disk is full: *resumed). */
static int
write_phase(struct rctx *c, struct seg_hdr *head, bool *resumed)
{
    struct rseg *last = newest_kept(c);
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
            rc = fail(c,
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

static void
push_head(struct rctx *c, const struct seg_hdr *h)
{
    struct seg *g = seg_new((uint32_t)h->no, h->salt, h->next_id, true);

    g->size = SEG_HDR_SIZE;
    c->s->segs[c->s->nsegs++] = g;
}

/* The newest segment, built as a sealed one, becomes the head again:
   its summary builder (from the scan) and its sets' lookup table. */
static void
resume_head(struct rctx *c, struct rseg *r)
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

/* ---- phase 4: the loop's view */

static bool
acked(const struct rctx *c, uint64_t id, uint64_t qid)
{
    for (uint64_t *v = idmap_find(&c->acks, id); v;
         v = idmap_find_next(&c->acks, id, v)) {
        if (*v == qid)
            return true;
    }
    return false;
}

static bool
deleted(struct rctx *c, uint64_t qid, uint64_t id)
{
    struct qdel *d;

    if (!c->dels)
        return false;
    if (!c->cache_ok || c->cache_q != qid) {
        HASH_FIND(hh, c->dels, &qid, sizeof(qid), d);
        c->cache_q = qid;
        c->cache_upto = d ? d->upto : 0;
        c->cache_ok = true;
    }
    return id < c->cache_upto;
}

/* Live bits of a message of set q; returns how many. bits[] has
   (q->n + 63) / 64 words. */
static uint32_t
live_bits(struct rctx *c, uint64_t id, uint8_t flags, const struct qset *q,
          uint64_t *bits)
{
    uint32_t cnt = 0;

    memset(bits, 0, 8 * (((size_t)q->n + 63) / 64));
    if (flags & REC_F_TRANSIENT)
        return 0;
    for (uint32_t j = 0; j < q->n; j++) {
        if (deleted(c, q->qids[j], id) ||
            (c->acks.count && acked(c, id, q->qids[j])))
            continue;
        bits[j / 64] |= 1ULL << (j % 64);
        cnt++;
    }
    return cnt;
}

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
report(const struct store_recover_cb *cb, void *ctx, const struct seg *g,
       uint64_t id, const struct qset *q, const uint64_t *bits, uint32_t off,
       uint32_t meta_len, uint32_t body_len)
{
    struct store_recovered m;

    if (!cb || !cb->message)
        return;
    m.id = id;
    m.pos = POS_MAKE(g->no, off);
    m.meta_len = meta_len;
    m.body_len = body_len;
    for (uint32_t j = 0; j < q->n; j++) {
        if (bits[j / 64] >> (j % 64) & 1) {
            m.qid = q->qids[j];
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

/*
 * The segment holding the record of a message that recovery uses must
 * outlive the segments holding its older records: if it went first, an
 * older record would win at the next recovery. (In a consistent log the
 * older ones are the original and the copy compaction replaced, deleted
 * right after the move.)
 */
static void
winner_deps(struct rctx *c, const struct mv *m, const struct rseg *o)
{
    struct seg *w = seg_find(c->s, m->loses ? o->no : m->seg);

    if (!w)
        return;
    if (!m->loses && o)
        seg_dep_add(w, o->no);
    if (m->loses)
        seg_dep_add(w, m->seg);
    if (m->prev)
        seg_dep_add(w, m->prev);
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
        winner_deps(c, m, o);
        if (!g || m->set >= g->nsets || m->loses)
            continue;
        q = g->sets[m->set];
        cnt = live_bits(c, id, m->flags, q, bits);
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

    live_bits(c, lc->id, lc->v.flags, q, bits);
    report(cb, ctx, lc->g, lc->id, q, bits, lc->v.off, lc->v.meta_len,
           lc->v.body_len);
}

static void
build_and_report(struct rctx *c, const struct store_recover_cb *cb, void *ctx)
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
                cnt = live_bits(c, m.id, m.flags, q, bits);
            seg_add_original(g, m.id, (uint16_t)m.set, q->n,
                             install_bits(g, m.id, q, bits, cnt));
            while (ci < ncopies && copies[ci].id < m.id)
                report_copy(c, cb, ctx, &copies[ci++]);
            if (cnt)
                report(cb, ctx, g, m.id, q, bits, m.off, m.meta_len,
                       m.body_len);
        }
    }
    while (ci < ncopies)
        report_copy(c, cb, ctx, &copies[ci++]);
    free(copies);
    free(bits);
}

static bool
set_has(const struct seg *g, uint32_t set, uint64_t qid)
{
    const struct qset *q;

    if (set >= g->nsets)
        return false;
    q = g->sets[set];
    for (uint32_t j = 0; j < q->n; j++) {
        if (q->qids[j] == qid)
            return true;
    }
    return false;
}

static int
cmp_mcopy(const void *a, const void *b)
{
    const struct mcopy *x = a, *y = b;

    return x->seg < y->seg ? -1 : x->seg > y->seg;
}

static void
build_mcopies(struct rctx *c)
{
    size_t it = 0;
    uint64_t id;
    void *val;

    c->mc_built = true;
    c->mc = xmalloc((2 * c->moved.count + 1) * sizeof(*c->mc));
    while (idmap_next(&c->moved, &it, &id, &val)) {
        const struct mv *v = val;

        c->mc[c->nmc++] = (struct mcopy){v->seg, v->set, id};
        if (v->prev)
            c->mc[c->nmc++] = (struct mcopy){v->prev, v->prev_set, id};
    }
    qsort(c->mc, c->nmc, sizeof(*c->mc), cmp_mcopy);
}

/* Does h hold a copy (original or moved) of a message below upto that
   lists qid? Only asked of segments newer than the QDEL's, which in a
   consistent log never do (their ids start above upto). */
static bool
holds_below(struct rctx *c, const struct seg *h, uint64_t qid, uint64_t upto)
{
    size_t lo = 0, hi;

    for (uint32_t i = 0; i < h->n && seg_slot_id(h, i) < upto; i++) {
        if (h->mask && set_has(h, h->qs[i], qid))
            return true;
    }
    if (!c->mc_built)
        build_mcopies(c);
    hi = c->nmc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (c->mc[mid].seg < h->no)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < c->nmc && c->mc[lo].seg == h->no; lo++) {
        if (c->mc[lo].id < upto && set_has(h, c->mc[lo].set, qid))
            return true;
    }
    return false;
}

/*
 * The segments a QDEL in g must outlive: every older one whose sets name
 * the queue (as at run time), and any newer one holding a record below
 * upto that lists it (none in a consistent log; a damaged or forged one
 * must still never bring back what the QDEL killed).
 */
static void
qdel_deps(struct rctx *c, struct seg *g, uint64_t qid, uint64_t upto)
{
    for (size_t i = 0; i < c->s->nsegs; i++) {
        struct seg *h = c->s->segs[i];
        bool named = false;

        if (h == g)
            continue;
        for (uint32_t k = 0; k < h->nsets && !named; k++)
            named = set_has(h, k, qid);
        if (named && (h->no < g->no || holds_below(c, h, qid, upto)))
            seg_dep_add(g, h->no);
    }
}

/* The segments holding a record of id that lists qid. */
static void
ack_deps(struct rctx *c, struct seg *g, uint64_t qid, uint64_t id)
{
    uint32_t slot;
    struct seg *h = seg_find_by_id(c->s, id, &slot);
    struct mv *v;

    if (h && h != g && set_has(h, h->qs[slot], qid))
        seg_dep_add(g, h->no);
    if (!c->moved.count || !(v = idmap_find(&c->moved, id)))
        return;
    h = seg_find(c->s, v->seg);
    if (h && h != g && set_has(h, v->set, qid))
        seg_dep_add(g, h->no);
    h = v->prev ? seg_find(c->s, v->prev) : NULL;
    if (h && h != g && set_has(h, v->prev_set, qid))
        seg_dep_add(g, h->no);
}

static void
build_deps(struct rctx *c)
{
    for (size_t i = 0, k = 0; i < c->n; i++) {
        struct rseg *r = &c->rs[i];
        struct cursor cur;
        struct rec_tomb t;
        struct seg *g;

        if (r->drop)
            continue;
        g = c->s->segs[k++];
        cur_init(&cur, r->sum.tombs.ptr, r->sum.tombs.len);
        for (uint32_t e = 0; e < r->sum.ntombs; e++) {
            rec_sum_tomb_next(&cur, &t);
            if (t.type == REC_ACK) {
                struct rec_ack_it it;
                uint64_t id;

                rec_ack_begin(t.payload, &it);
                while (rec_ack_next(&it, &id))
                    ack_deps(c, g, it.qid, id);
            } else {
                uint64_t qid, upto;

                rec_qdel_decode(t.payload, &qid, &upto);
                qdel_deps(c, g, qid, upto);
            }
        }
    }
}

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

    if (list_segments(c) != WR_OK || check_manifest(c) != WR_OK)
        return WR_ERR;
    for (size_t i = 0; i < c->n; i++) {
        if (load_segment(c, &c->rs[i], i + 1 == c->n) != WR_OK)
            return WR_ERR;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].drop)
            continue;
        collect_tombs(c, &c->rs[i]);
        if (collect_msgs(c, &c->rs[i], &last_orig) != WR_OK)
            return WR_ERR;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!c->rs[i].drop && !c->rs[i].bld &&
            verify_live(c, &c->rs[i]) != WR_OK)
            return WR_ERR;
    }
    /* every write happens before the first callback */
    if (write_phase(c, &head, &resumed) != WR_OK ||
        record_manifest(c, resumed ? NULL : &head) != WR_OK)
        return WR_ERR;
    c->s->next_id = c->next_id;
    build_and_report(c, cb, ctx);
    if (resumed)
        resume_head(c, newest_kept(c));
    else
        push_head(c, &head);
    build_deps(c);
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
