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
 *     small tmpfs (test_29_disk_full.py prefers one);
 *   - while the file named by WARREN_FAULT_HOLD exists, fdatasync() waits
 *     (before syncing): a test sees what the broker answers while a sync
 *     is in flight (a confirm must not leave before it). A file that
 *     holds a process id holds that process only (one node of a cluster
 *     whose nodes share the environment: a stalled disk);
 *   - WARREN_FAULT_SYNCLOG names a file where every fdatasync() appends
 *     the path of the file it syncs and "ok" or "EIO", one line each,
 *     once the sync returned.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
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

/* The hold file exists, and is empty or names this process. */
static int
held(void)
{
    const char *t = getenv("WARREN_FAULT_HOLD");
    char text[32] = "";
    FILE *f;

    if (!t || !(f = fopen(t, "r")))
        return 0;
    if (!fgets(text, sizeof(text), f))
        text[0] = '\0';
    fclose(f);
    return text[0] == '\0' || atol(text) == (long)getpid();
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

/* Appends "<path of fd> <what>" to WARREN_FAULT_SYNCLOG, if set. */
static void
log_sync(int fd, const char *what)
{
    static ssize_t (*wr)(int, const void *, size_t);
    static int (*op)(const char *, int, ...);
    const char *logp = getenv("WARREN_FAULT_SYNCLOG");
    char link[64], path[4096], line[4200];
    ssize_t n;
    int lfd, len;

    if (!logp)
        return;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = '\0';
    len = snprintf(line, sizeof(line), "%s %s\n", path, what);
    if (!wr)
        wr = (ssize_t(*)(int, const void *, size_t))real("write");
    if (!op)
        op = (int (*)(const char *, int, ...))real("open");
    lfd = op(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0)
        return;
    if (wr(lfd, line, (size_t)len) < 0) {
        /* nothing to do: the test sees the line missing */
    }
    close(lfd);
}

int
fdatasync(int fd)
{
    static int (*next)(int);
    int rc;

    while (held())
        usleep(2000);
    if (tripped()) {
        log_sync(fd, "EIO");
        errno = EIO;
        return -1;
    }
    if (!next)
        next = (int (*)(int))real("fdatasync");
    rc = next(fd);
    log_sync(fd, rc == 0 ? "ok" : "failed");
    return rc;
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
