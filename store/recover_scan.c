/*
 * recover_scan.c: phases 0 and 1 of store_open's replay (recover.c):
 * the segment files and what each holds.
 *
 * Phase 0: the segment files present are listed in number order and
 *   checked against the manifest: a segment it lists that is missing
 *   stops the open (--repair opens without it, logging the message ids
 *   it held); a log without a manifest (an older Warren) gets one.
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
 *   logged. A newest segment whose header never reached the disk (torn
 *   at creation) is removed once the manifest no longer lists it.
 */
#include "store/recover_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- failing, the same way in every phase */

int
recover__fail(struct rctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return WR_ERR;
}

const char recover__repair_hint[] =
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

int
recover__list_segments(struct rctx *c)
{
    DIR *d = opendir(c->s->dir);
    struct dirent *e;
    size_t cap = 0;
    uint32_t no;

    if (!d)
        return recover__fail(c, "store: cannot open directory %s: %s",
                             c->s->dir, strerror(errno));
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
    rc = recover__fail(
        c,
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
int
recover__check_manifest(struct rctx *c)
{
    struct store *s = c->s;
    size_t *miss, nmiss = 0;
    char why[400];
    bool found;
    int rc;

    if (manifest_read(s, &found, why, sizeof(why)) != WR_OK) {
        if (!c->repair)
            return recover__fail(c, "store: %s: %s. %s.", s->dir, why,
                                 recover__repair_hint);
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

/* The state of one scan (scan_image). */
struct scan {
    struct rctx *c;
    struct rseg *r;
    const uint8_t *img;
    uint64_t size, salt;
    bool newest;
    const char *path;
    uint64_t off, data_end, sum_off;
    bool sealed, damaged;
    bool stop; /* a torn tail: the segment ends here */
};

/*
 * A damaged record at sc->off. Torn only when nothing valid follows: a
 * kill can cut the last write short, never punch a hole before intact
 * records. A hole in the newest segment (bit rot, or pages of an unsynced
 * last batch reordered by a power loss) is for the operator: refuse, and
 * let --repair keep what is intact (resynchronising on the next valid
 * record). Returns WR_OK or WR_ERR (c->err).
 */
static int
scan_damage(struct scan *sc, const char *why)
{
    uint64_t next = next_valid(sc->img, sc->size, sc->salt, sc->off + 1);

    if (sc->newest && next >= sc->size) {
        log_warn("store: %s: torn tail at byte offset %llu (%s); "
                 "dropping its last %llu bytes",
                 sc->path, (unsigned long long)sc->off, why,
                 (unsigned long long)(sc->size - sc->off));
        sc->stop = true;
        return WR_OK;
    }
    if (!sc->c->repair)
        return recover__fail(sc->c,
                             "store: damaged record in %s at byte offset "
                             "%llu (%s). %s.",
                             sc->path, (unsigned long long)sc->off, why,
                             recover__repair_hint);
    log_err("store: repair: %s: dropped %llu damaged bytes at byte offset "
            "%llu (%s)",
            sc->path, (unsigned long long)(next - sc->off),
            (unsigned long long)sc->off, why);
    sc->damaged = true;
    sc->off = next;
    return WR_OK;
}

/* A SEAL record: it must follow the segment's SUMMARY. */
static int
scan_seal(struct scan *sc, const struct rec *rec)
{
    uint32_t so;

    rec_seal_decode(rec->payload, &so, &sc->r->seal_next_id);
    sc->sealed = so == sc->sum_off && sc->sum_off != 0;
    if (sc->sealed)
        return WR_OK;
    if (!sc->c->repair)
        return recover__fail(sc->c,
                             "store: damaged record in %s at byte offset "
                             "%llu (SEAL does not follow its SUMMARY). %s.",
                             sc->path, (unsigned long long)sc->off,
                             recover__repair_hint);
    sc->damaged = true;
    return WR_OK;
}

/* One valid record: into the summary being built. */
static int
scan_record(struct scan *sc, const struct rec *rec)
{
    struct rec_msg m;

    switch (rec->type) {
    case REC_MSG:
        rec_msg_decode(rec->payload, &m);
        scan_msg(sc->r, &m, (uint32_t)sc->off);
        break;
    case REC_ACK:
    case REC_QDEL:
        rec_sumb_add_tomb(sc->r->bld->sum, rec->type, rec->payload);
        break;
    case REC_SUMMARY:
        sc->sum_off = sc->off;
        break;
    case REC_SEAL:
        return scan_seal(sc, rec);
    default:
        break;
    }
    return WR_OK;
}

/* The scan is over: a segment other than the newest must have ended
 * with its SEAL; what is left decides whether it needs a new trailer. */
static int
scan_end(struct scan *sc)
{
    struct rseg *r = sc->r;

    if (!sc->sealed && !sc->newest) {
        if (!sc->c->repair)
            return recover__fail(sc->c,
                                 "store: %s ends at byte offset %llu without "
                                 "its SEAL record (truncated?). %s.",
                                 sc->path, (unsigned long long)sc->data_end,
                                 recover__repair_hint);
        log_err("store: repair: %s was not sealed; resealing it at byte "
                "offset %llu",
                sc->path, (unsigned long long)sc->data_end);
        sc->damaged = true;
    }
    r->data_end = sc->data_end;
    if (sc->sealed && !sc->damaged) {
        r->sealed = true;
        r->end = sc->size;
        r->sum_at = sc->sum_off;
    } else {
        r->need_seal = true;
        r->end = sc->data_end;
    }
    return WR_OK;
}

/* Scans the image; fills r->bld. Returns WR_OK or WR_ERR (c->err). */
static int
scan_image(struct rctx *c, struct rseg *r, const uint8_t *img, bool newest,
           const char *path)
{
    struct scan sc = {.c = c,
                      .r = r,
                      .img = img,
                      .size = r->size,
                      .salt = r->hdr.salt,
                      .newest = newest,
                      .path = path,
                      .off = SEG_HDR_SIZE,
                      .data_end = SEG_HDR_SIZE};

    while (sc.off < sc.size && !sc.stop) {
        const char *why = NULL;
        struct rec rec;
        enum rec_status st = rec_check(img + sc.off, sc.size - sc.off, sc.salt,
                                       (uint32_t)sc.off, &rec, &why);

        if (st == REC_OK && sc.sealed) {
            st = REC_BAD;
            why = "data after the segment's SEAL record";
        }
        if (st != REC_OK) {
            if (scan_damage(&sc, why) != WR_OK)
                return WR_ERR;
            continue;
        }
        if (scan_record(&sc, &rec) != WR_OK)
            return WR_ERR;
        sc.off += rec.len;
        if (rec.type != REC_SUMMARY && rec.type != REC_SEAL)
            sc.data_end = sc.off;
    }
    return scan_end(&sc);
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
        return recover__fail(
            c,
            "store: damaged segment header in %s at byte offset 0 "
            "(%s). %s.",
            path, why, recover__repair_hint);
    snprintf(to, sizeof(to), "%s.damaged", path);
    log_err("store: repair: %s has a damaged header (%s); every record in "
            "it is lost; renamed to %s",
            path, why, to);
    r->drop = true;
    if (c->s->io->rename(c->s->io->arg, path, to) < 0)
        return recover__fail(c, "store: cannot rename %s: %s", path,
                             strerror(errno));
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

int
recover__load_segment(struct rctx *c, struct rseg *r, bool newest)
{
    const struct store_io *io = c->s->io;
    char path[SEG_PATH_MAX];
    uint8_t hb[SEG_HDR_SIZE];
    const char *why = NULL;

    seg_path(path, sizeof(path), c->s->dir, r->no);
    r->fd = io->open(io->arg, path, O_RDWR, 0);
    if (r->fd < 0 || io->fsize(io->arg, r->fd, &r->size) < 0)
        return recover__fail(c, "store: cannot open %s: %s", path,
                             strerror(errno));
    if (io_pread_all(io, r->fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
        !rec_hdr_decode(hb, sizeof(hb), &r->hdr, &why) || r->hdr.no != r->no) {
        if (!why)
            why = r->size < SEG_HDR_SIZE ? "segment header is short"
                                         : "header names another segment";
        return bad_header(c, r, newest, path, why);
    }
    if (r->size > UINT32_MAX)
        return recover__fail(c, "store: %s is larger than 4 GiB. %s.", path,
                             recover__repair_hint);
    if (!c->repair &&
        recover_read_trailer(io, r->fd, r->size, r->hdr.salt, &r->raw, &r->sum,
                             &r->seal_next_id, &why) == WR_OK) {
        r->sealed = true;
        r->end = r->size;
        return WR_OK;
    }
    if (!newest && !c->repair)
        log_warn("store: %s: %s; scanning the whole segment", path, why);
    return recover__scan_segment(c, r, newest, path);
}

/* Reads all of r and scans it: builds r->bld and the summary (r->raw,
   r->sum) its records call for. */
int
recover__scan_segment(struct rctx *c, struct rseg *r, bool newest,
                      const char *path)
{
    const struct store_io *io = c->s->io;
    uint8_t *img;
    int rc;

    img = xmalloc(r->size ? r->size : 1);
    if (io_pread_all(io, r->fd, img, r->size, 0) != (ssize_t)r->size) {
        free(img);
        return recover__fail(c, "store: cannot read %s: %s", path,
                             strerror(errno));
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
