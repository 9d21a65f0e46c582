/*
 * faultio.c: an LD_PRELOAD shim for the wire tests.
 *
 *   - once the file named by WARREN_FAULT_TRIGGER exists, fdatasync() and
 *     fsync() fail with EIO, as a dying disk's would: a test watches the
 *     broker's reaction to a failed sync (refuse persistent publishes,
 *     basic.nack) end to end;
 *   - while the file named by WARREN_FAULT_NOSPACE exists, the disk is
 *     full: writes to regular files fail with ENOSPC, so does creating a
 *     file, and statvfs() reports no free block. Sockets, pipes and
 *     stderr are not touched. For machines where a test cannot mount a
 *     small tmpfs (test_29_disk_full.py prefers one).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

static int
exists(const char *env)
{
    const char *t = getenv(env);

    return t && access(t, F_OK) == 0;
}

static int
tripped(void)
{
    return exists("WARREN_FAULT_TRIGGER");
}

static int
full(void)
{
    return exists("WARREN_FAULT_NOSPACE");
}

static void *
real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

int
fdatasync(int fd)
{
    static int (*next)(int);

    if (tripped()) {
        errno = EIO;
        return -1;
    }
    if (!next)
        next = (int (*)(int))real("fdatasync");
    return next(fd);
}

int
fsync(int fd)
{
    static int (*next)(int);

    if (tripped()) {
        errno = EIO;
        return -1;
    }
    if (!next)
        next = (int (*)(int))real("fsync");
    return next(fd);
}

/* ---- a full disk */

static int
regular(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*next)(int, const void *, size_t, off_t);

    if (n > 0 && full() && regular(fd)) {
        errno = ENOSPC;
        return -1;
    }
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t, off_t))real("pwrite");
    return next(fd, buf, n, off);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
    static ssize_t (*next)(int, const void *, size_t);

    if (n > 0 && full() && regular(fd)) {
        errno = ENOSPC;
        return -1;
    }
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t))real("write");
    return next(fd, buf, n);
}

int
open(const char *path, int flags, ...)
{
    static int (*next)(const char *, int, ...);
    mode_t mode = 0;

    if (flags & O_CREAT) {
        va_list ap;

        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
        if (full() && access(path, F_OK) != 0) {
            errno = ENOSPC;
            return -1;
        }
    }
    if (!next)
        next = (int (*)(const char *, int, ...))real("open");
    return next(path, flags, mode);
}

int
statvfs(const char *path, struct statvfs *st)
{
    static int (*next)(const char *, struct statvfs *);
    int rc;

    if (!next)
        next = (int (*)(const char *, struct statvfs *))real("statvfs");
    rc = next(path, st);
    if (rc == 0 && full())
        st->f_bavail = st->f_bfree = 0;
    return rc;
}
