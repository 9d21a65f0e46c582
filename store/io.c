/*
 * io.c: the real-syscall implementation of the store's I/O seam and the
 * two loops (write everything, read until EOF) every caller needs.
 */
#include "store/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int
sys_open(void *arg, const char *path, int flags, unsigned mode)
{
    (void)arg;
    return open(path, flags | O_CLOEXEC, (mode_t)mode);
}

static int
sys_close(void *arg, int fd)
{
    (void)arg;
    return close(fd);
}

static ssize_t
sys_pread(void *arg, int fd, void *buf, size_t n, uint64_t off)
{
    (void)arg;
    return pread(fd, buf, n, (off_t)off);
}

static ssize_t
sys_pwrite(void *arg, int fd, const void *buf, size_t n, uint64_t off)
{
    (void)arg;
    return pwrite(fd, buf, n, (off_t)off);
}

static int
sys_fdatasync(void *arg, int fd)
{
    (void)arg;
    return fdatasync(fd);
}

static int
sys_fsync(void *arg, int fd)
{
    (void)arg;
    return fsync(fd);
}

static int
sys_ftruncate(void *arg, int fd, uint64_t len)
{
    (void)arg;
    return ftruncate(fd, (off_t)len);
}

static int
sys_fsize(void *arg, int fd, uint64_t *size)
{
    struct stat st;

    (void)arg;
    if (fstat(fd, &st) < 0)
        return -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int
sys_unlink(void *arg, const char *path)
{
    (void)arg;
    return unlink(path);
}

static int
sys_rename(void *arg, const char *from, const char *to)
{
    (void)arg;
    return rename(from, to);
}

const struct store_io store_io_default = {
    .open = sys_open,
    .close = sys_close,
    .pread = sys_pread,
    .pwrite = sys_pwrite,
    .fdatasync = sys_fdatasync,
    .fsync = sys_fsync,
    .ftruncate = sys_ftruncate,
    .fsize = sys_fsize,
    .unlink = sys_unlink,
    .rename = sys_rename,
    .arg = NULL,
};

int
io_pwrite_all(const struct store_io *io, int fd, const void *p, size_t n,
              uint64_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t k = io->pwrite(io->arg, fd, b, n, off);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0) {
            errno = ENOSPC;
            return -1;
        }
        b += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

ssize_t
io_pread_all(const struct store_io *io, int fd, void *p, size_t n, uint64_t off)
{
    uint8_t *b = p;
    size_t got = 0;

    while (got < n) {
        ssize_t k = io->pread(io->arg, fd, b + got, n - got, off + got);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}
