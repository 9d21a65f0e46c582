/*
 * mirror_marks.c: a copy's marks of where the leader's cuts end in its
 * log (cluster/mirror_marks.h).
 */
#include "cluster/mirror_marks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#define MARK_SIZE    72u
#define MARKS_ROTATE 16384u
/* Buffered marks are written once this many bytes or this old (one
   write per loop pass would cost a syscall per pass on a busy mirror);
   a deletion's entry is written at once. */
#define MARKS_BATCH    4096u
#define MARKS_DELAY_MS 100u

enum mark_kind {
    MARK_CUT = 1,
    MARK_UNL = 2,
};

struct mark {
    uint64_t serial, kind, epoch, lead, seq, pos, dclen, unl;
};

struct marks {
    char *path[2];
    int fd;              /* the file appended to, or -1 */
    unsigned cur;        /* its index */
    size_t in_cur;       /* entries it holds */
    uint64_t serial;     /* the last entry's */
    uint64_t base;       /* unlinks counted before this open */
    uint64_t unl;        /* base + the store's count, as last logged */
    struct buf out;      /* entries not written yet */
    bool urgent;         /* out holds a deletion's entry */
    uint64_t written_ms; /* wr_now_ms of the last write */
};

static char *
mark_path(const char *dir, unsigned k)
{
    struct buf p;

    buf_init(&p);
    buf_printf(&p, "%s/marks.%u", dir, k);
    buf_put_u8(&p, 0);
    return (char *)p.data;
}

static void
mark_encode(struct buf *out, const struct mark *m)
{
    uint8_t *p = buf_reserve(out, MARK_SIZE);
    const uint64_t f[8] = {m->serial, m->kind, m->epoch, m->lead,
                           m->seq,    m->pos,  m->dclen, m->unl};

    for (int i = 0; i < 8; i++)
        be64_store(p + 8 * i, f[i]);
    be64_store(p + 64, XXH3_64bits(p, 64));
    out->len += MARK_SIZE;
}

static bool
mark_decode(const uint8_t *p, struct mark *m)
{
    uint64_t f[8];

    if (be64_load(p + 64) != XXH3_64bits(p, 64))
        return false;
    for (int i = 0; i < 8; i++)
        f[i] = be64_load(p + 8 * i);
    *m = (struct mark){f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
    return m->serial > 0 && (m->kind == MARK_CUT || m->kind == MARK_UNL);
}

/* Every valid entry of one file, in file order, through fn. */
static size_t
read_marks(const char *path, void (*fn)(const struct mark *, void *), void *arg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t chunk[MARK_SIZE * 512];
    size_t n = 0, have = 0;
    ssize_t got;
    struct mark m;

    if (fd < 0)
        return 0;
    while ((got = read(fd, chunk + have, sizeof(chunk) - have)) > 0) {
        size_t off = 0;

        have += (size_t)got;
        for (; off + MARK_SIZE <= have; off += MARK_SIZE, n++) {
            if (mark_decode(chunk + off, &m))
                fn(&m, arg);
        }
        memmove(chunk, chunk + off, have - off);
        have -= off;
    }
    close(fd);
    return n;
}

struct scan {
    uint64_t serial, unl;
};

static void
scan_one(const struct mark *m, void *arg)
{
    struct scan *s = arg;

    s->serial = WR_MAX(s->serial, m->serial);
    s->unl = WR_MAX(s->unl, m->unl);
}

struct marks *
marks_open(const char *dir)
{
    struct marks *mk = xcalloc(1, sizeof(*mk));
    struct scan sc[2] = {{0, 0}, {0, 0}};
    size_t n[2];

    buf_init(&mk->out);
    for (unsigned k = 0; k < 2; k++) {
        mk->path[k] = mark_path(dir, k);
        n[k] = read_marks(mk->path[k], scan_one, &sc[k]);
    }
    mk->cur = sc[1].serial > sc[0].serial ? 1 : 0;
    mk->in_cur = n[mk->cur];
    mk->serial = WR_MAX(sc[0].serial, sc[1].serial);
    mk->base = mk->unl = WR_MAX(sc[0].unl, sc[1].unl);
    mk->fd = open(mk->path[mk->cur], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                  0600);
    if (mk->fd < 0)
        log_warn("mirror: cannot open %s: %s (no truncation in place)",
                 mk->path[mk->cur], strerror(errno));
    return mk;
}

void
marks_close(struct marks *mk)
{
    if (!mk)
        return;
    marks_write(mk, true);
    if (mk->fd >= 0)
        close(mk->fd);
    free(mk->path[0]);
    free(mk->path[1]);
    buf_fini(&mk->out);
    free(mk);
}

void
marks_reset(struct marks *mk)
{
    buf_reset(&mk->out);
    if (mk->fd >= 0)
        close(mk->fd);
    unlink(mk->path[0]);
    unlink(mk->path[1]);
    mk->cur = 0;
    mk->in_cur = 0;
    mk->base = mk->unl = 0;
    mk->fd = open(mk->path[0], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static void
push(struct marks *mk, struct mark *m)
{
    m->serial = ++mk->serial;
    m->unl = mk->unl;
    mark_encode(&mk->out, m);
}

void
marks_cut(struct marks *mk, uint64_t epoch, uint64_t lead, uint64_t seq,
          uint64_t pos, uint64_t dclen)
{
    struct mark m = {0, MARK_CUT, epoch, lead, seq, pos, dclen, 0};

    push(mk, &m);
}

void
marks_unlinks(struct marks *mk, uint64_t planned)
{
    struct mark m = {0, MARK_UNL, 0, 0, 0, 0, 0, 0};

    if (mk->base + planned == mk->unl)
        return;
    mk->unl = mk->base + planned;
    push(mk, &m);
    mk->urgent = true;
}

void
marks_write(struct marks *mk, bool force)
{
    size_t off = 0;
    uint64_t now = wr_now_ms();

    if (!force && !mk->urgent && mk->out.len < MARKS_BATCH &&
        now - mk->written_ms < MARKS_DELAY_MS)
        return;
    mk->urgent = false;
    mk->written_ms = now;
    while (off < mk->out.len && mk->fd >= 0) {
        size_t room = (MARKS_ROTATE - mk->in_cur) * MARK_SIZE,
               n = WR_MIN(room, mk->out.len - off);

        if (n > 0 && write(mk->fd, mk->out.data + off, n) != (ssize_t)n) {
            /* a mark that is not there costs a snapshot, no more */
            log_warn("mirror: cannot write %s: %s", mk->path[mk->cur],
                     strerror(errno));
            break;
        }
        off += n;
        mk->in_cur += n / MARK_SIZE;
        if (mk->in_cur < MARKS_ROTATE)
            continue;
        /* the other file is emptied and taken: the last marks stay */
        close(mk->fd);
        mk->cur = 1 - mk->cur;
        mk->in_cur = 0;
        mk->fd =
            open(mk->path[mk->cur],
                 O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    buf_reset(&mk->out);
}

struct find {
    uint64_t epoch, lead, seq;
    struct mark hit;
    uint64_t unl;
};

static void
find_one(const struct mark *m, void *arg)
{
    struct find *f = arg;

    f->unl = WR_MAX(f->unl, m->unl);
    if (m->kind == MARK_CUT && m->epoch == f->epoch && m->lead == f->lead &&
        m->seq == f->seq && m->serial > f->hit.serial)
        f->hit = *m;
}

int
marks_find(const char *dir, uint64_t epoch, uint64_t lead, uint64_t seq,
           uint64_t *pos, uint64_t *dclen, char *why, size_t n)
{
    struct find f = {epoch, lead, seq, {0}, 0};

    for (unsigned k = 0; k < 2; k++) {
        char *p = mark_path(dir, k);

        read_marks(p, find_one, &f);
        free(p);
    }
    if (f.hit.serial == 0) {
        snprintf(why, n, "no mark of position %llu of that lead",
                 (unsigned long long)seq);
        return WR_ERR;
    }
    if (f.unl != f.hit.unl) {
        snprintf(why, n,
                 "the copy deleted segments after position %llu (a record "
                 "past it may have killed their messages)",
                 (unsigned long long)seq);
        return WR_ERR;
    }
    *pos = f.hit.pos;
    *dclen = f.hit.dclen;
    return WR_OK;
}

static void
last_one(const struct mark *m, void *arg)
{
    struct mark *last = arg;

    if (m->kind == MARK_CUT && m->serial > last->serial)
        *last = *m;
}

bool
marks_last_cut(const char *dir, uint64_t *epoch, uint64_t *lead)
{
    struct mark last = {0, 0, 0, 0, 0, 0, 0, 0};

    for (unsigned k = 0; k < 2; k++) {
        char *p = mark_path(dir, k);

        read_marks(p, last_one, &last);
        free(p);
    }
    *epoch = last.epoch;
    *lead = last.lead;
    return last.serial > 0;
}
