/*
 * manifest.c: the durable list of the segment files that must exist
 * (format and rules: store/record.c, "The manifest").
 *
 * s->mf is the version in force: read and checked by recovery, which
 * then writes the store's current set (the loop thread, before the store
 * thread starts); afterwards only the store thread changes it, adding a
 * segment after creating its file (journal.c) and removing segments
 * before unlinking them (compact.c). Each change is one write of the
 * whole list over the copy not in force, padded to MF_PAD bytes so that
 * a rewrite of the same or a shorter list needs no new disk block.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#define MF_PAD      4096
#define MF_READ_MAX (64u << 20)

static void
mf_path(char *out, size_t n, const char *dir, unsigned slot)
{
    snprintf(out, n, "%s/MANIFEST.%u", dir, slot);
}

bool
manifest_is_file_name(const char *name)
{
    return strcmp(name, "MANIFEST.0") == 0 || strcmp(name, "MANIFEST.1") == 0;
}

/* Reads copy slot into raw. Returns 1 when read, 0 when it does not
   exist, -1 on a read error (errno). */
static int
read_slot(const struct store *s, unsigned slot, struct buf *raw)
{
    const struct store_io *io = s->io;
    char path[SEG_PATH_MAX];
    uint64_t size = 0;
    ssize_t got;
    int fd, e;

    mf_path(path, sizeof(path), s->dir, slot);
    fd = io->open(io->arg, path, O_RDONLY, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    buf_reset(raw);
    if (io->fsize(io->arg, fd, &size) < 0) {
        e = errno;
        io->close(io->arg, fd);
        errno = e;
        return -1;
    }
    size = WR_MIN(size, MF_READ_MAX);
    got = io_pread_all(io, fd, buf_reserve(raw, size), size, 0);
    e = errno;
    io->close(io->arg, fd);
    errno = e;
    if (got < 0)
        return -1;
    raw->len = (size_t)got;
    return 1;
}

static void
load_entries(struct store *s, const struct buf *raw, uint64_t seq, uint32_t n)
{
    s->mf.n = 0;
    s->mf.seq = seq;
    for (uint32_t i = 0; i < n; i++) {
        struct mf_entry e;

        rec_manifest_entry(raw->data, i, &e);
        manifest_add(s, e.no, e.first_id);
    }
}

int
manifest_read(struct store *s, bool *found, char *err, size_t errlen)
{
    struct buf raw[2];
    const char *why[2] = {NULL, NULL};
    uint64_t seq[2] = {0, 0};
    uint32_t n[2] = {0, 0};
    int got[2], best = -1, rc = WR_OK;

    *found = false;
    for (unsigned k = 0; k < 2; k++) {
        buf_init(&raw[k]);
        got[k] = read_slot(s, k, &raw[k]);
        if (got[k] < 0)
            why[k] = strerror(errno);
        else if (got[k] > 0 && !rec_manifest_decode(raw[k].data, raw[k].len,
                                                    &seq[k], &n[k], &why[k]))
            got[k] = -1;
        if (got[k] != 0)
            *found = true;
        if (got[k] > 0 && (best < 0 || seq[k] > seq[best]))
            best = (int)k;
    }
    s->mf_stale = best >= 0 && got[1 - best] < 0;
    if (best >= 0)
        load_entries(s, &raw[best], seq[best], n[best]);
    else if (*found) {
        snprintf(err, errlen,
                 "the manifest (MANIFEST.0: %s; MANIFEST.1: %s) cannot be "
                 "read, so Warren cannot tell whether segment files are "
                 "missing",
                 why[0] ? why[0] : "absent", why[1] ? why[1] : "absent");
        rc = WR_ERR;
    }
    buf_fini(&raw[0]);
    buf_fini(&raw[1]);
    return rc;
}

static size_t
mf_find(const struct store *s, uint32_t no)
{
    size_t lo = 0, hi = s->mf.n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (s->mf.v[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool
manifest_has(const struct store *s, uint32_t no)
{
    size_t k = mf_find(s, no);

    return k < s->mf.n && s->mf.v[k].no == no;
}

void
manifest_add(struct store *s, uint32_t no, uint64_t first_id)
{
    size_t k = mf_find(s, no);

    if (k < s->mf.n && s->mf.v[k].no == no)
        return;
    if (s->mf.n == s->mf.cap) {
        s->mf.cap = s->mf.cap ? 2 * s->mf.cap : 16;
        s->mf.v = xrealloc(s->mf.v, s->mf.cap * sizeof(*s->mf.v));
    }
    memmove(s->mf.v + k + 1, s->mf.v + k, (s->mf.n - k) * sizeof(*s->mf.v));
    s->mf.v[k] = (struct mf_entry){no, first_id};
    s->mf.n++;
}

bool
manifest_remove(struct store *s, uint32_t no, struct mf_entry *out)
{
    size_t k = mf_find(s, no);

    if (k >= s->mf.n || s->mf.v[k].no != no)
        return false;
    if (out)
        *out = s->mf.v[k];
    memmove(s->mf.v + k, s->mf.v + k + 1, (s->mf.n - k - 1) * sizeof(*s->mf.v));
    s->mf.n--;
    return true;
}

/* Opens copy slot for writing; *created when it did not exist. */
static int
open_slot(struct store *s, const char *path, bool *created)
{
    const struct store_io *io = s->io;
    int fd = io->open(io->arg, path, O_WRONLY, 0);

    *created = false;
    if (fd >= 0 || errno != ENOENT)
        return fd;
    *created = true;
    return io->open(io->arg, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
}

/* Writes the encoded version b into copy slot. */
static enum mf_status
write_slot(struct store *s, unsigned slot, const struct buf *b, char *err,
           size_t errlen)
{
    const struct store_io *io = s->io;
    char path[SEG_PATH_MAX];
    enum mf_status rc;
    bool created;
    int fd, e;

    mf_path(path, sizeof(path), s->dir, slot);
    fd = open_slot(s, path, &created);
    if (fd < 0 || io_pwrite_all(io, fd, b->data, b->len, 0) < 0) {
        e = errno;
        snprintf(err, errlen, "writing the manifest %s failed: %s", path,
                 strerror(e));
        rc = e == ENOSPC || e == EDQUOT ? MF_NO_SPACE : MF_WRITE_FAILED;
    } else if (io->fdatasync(io->arg, fd) < 0 ||
               (created && io->fsync(io->arg, s->dirfd) < 0)) {
        e = errno;
        snprintf(err, errlen, "syncing the manifest %s failed: %s", path,
                 strerror(e));
        rc = MF_SYNC_FAILED;
    } else {
        atomic_fetch_add(&s->fsyncs, created ? 2 : 1);
        rc = MF_OK;
    }
    if (fd >= 0)
        io->close(io->arg, fd);
    return rc;
}

static bool
slot_exists(const struct store *s, unsigned slot)
{
    char path[SEG_PATH_MAX];
    int fd;

    mf_path(path, sizeof(path), s->dir, slot);
    fd = s->io->open(s->io->arg, path, O_RDONLY, 0);
    if (fd >= 0)
        s->io->close(s->io->arg, fd);
    return fd >= 0;
}

enum mf_status
manifest_write(struct store *s, char *err, size_t errlen)
{
    uint64_t seq = s->mf.seq + 1;
    unsigned slot = (unsigned)(seq & 1);
    enum mf_status rc;
    struct buf b;
    size_t pad;

    buf_init(&b);
    rec_manifest_encode(&b, seq, s->mf.v, s->mf.n);
    pad = (MF_PAD - b.len % MF_PAD) % MF_PAD;
    memset(buf_reserve(&b, pad), 0, pad);
    b.len += pad;
    rc = write_slot(s, slot, &b, err, errlen);
    /* The first version goes to both copies, so that every later one
       is written over an existing file: no new block on a full disk. */
    if (rc == MF_OK && !slot_exists(s, 1 - slot))
        rc = write_slot(s, 1 - slot, &b, err, errlen);
    if (rc == MF_OK)
        s->mf.seq = seq;
    buf_fini(&b);
    return rc;
}
