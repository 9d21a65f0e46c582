/*
 * atomicfile.c: the definitions file. store_write_file_atomic() writes a
 * temporary file next to the target (same directory, hence the same file
 * system, so rename is atomic), fsyncs it, renames it over the target and
 * fsyncs the directory so the rename itself is durable. A reader sees the
 * old content or the new, never a mix; after a crash the target holds
 * one of them, plus possibly a stale "<path>.tmp.*" file, which the next
 * write ignores (its name is unique) and the operator may delete.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int
dir_fsync(const struct store_io *io, const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int fd, rc = 0, e;

    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    fd = io->open(io->arg, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0 || io->fsync(io->arg, fd) < 0)
        rc = -1;
    e = errno;
    if (fd >= 0)
        io->close(io->arg, fd);
    free(dir);
    errno = e;
    return rc;
}

int
store__write_file_atomic_io(const struct store_io *io, const char *path,
                            const void *data, size_t len, char *err,
                            size_t errlen)
{
    char tmp[SEG_PATH_MAX];
    uint32_t r;
    int fd;

    wr_random(&r, sizeof(r));
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%08x", path, (long)getpid(), r);
    fd = io->open(io->arg, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return WR_ERR;
    }
    if (io_pwrite_all(io, fd, data, len, 0) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (io->fsync(io->arg, fd) < 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (io->close(io->arg, fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (io->rename(io->arg, tmp, path) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
                 strerror(errno));
        goto fail;
    }
    if (dir_fsync(io, path) < 0) {
        /* the new content is in place but its name may not be durable */
        snprintf(err, errlen, "cannot fsync the directory of %s: %s", path,
                 strerror(errno));
        return WR_ERR;
    }
    return WR_OK;
fail: /* the target is untouched; drop the temporary file */
    if (fd >= 0)
        io->close(io->arg, fd);
    io->unlink(io->arg, tmp);
    return WR_ERR;
}

int
store_write_file_atomic(const char *path, const void *data, size_t len,
                        char *err, size_t errlen)
{
    return store__write_file_atomic_io(&store_io_default, path, data, len, err,
                                       errlen);
}

int
store_read_file(const char *path, struct buf *out, char *err, size_t errlen)
{
    const struct store_io *io = &store_io_default;
    int fd = io->open(io->arg, path, O_RDONLY, 0), e;
    uint64_t size = 0;
    ssize_t got;

    buf_reset(out);
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return WR_ERR;
    }
    io->fsize(io->arg, fd, &size);
    /* read until EOF even if the file grew since fstat */
    for (;;) {
        size_t want = (size_t)WR_MAX(size + 1 - out->len, 65536);

        got = io_pread_all(io, fd, buf_reserve(out, want), want, out->len);
        if (got <= 0)
            break;
        out->len += (size_t)got;
        if ((size_t)got < want)
            break;
    }
    e = errno;
    io->close(io->arg, fd);
    if (got < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        errno = e;
        return WR_ERR;
    }
    return WR_OK;
}
