/*
 * faultio.c: an LD_PRELOAD shim for the wire tests: once the file named
 * by WARREN_FAULT_TRIGGER exists, fdatasync() and fsync() fail with EIO,
 * as a dying disk's would. Lets a test watch the broker's reaction to a
 * failed sync (refuse persistent publishes, basic.nack) end to end.
 */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int
tripped(void)
{
    const char *t = getenv("WARREN_FAULT_TRIGGER");

    return t && access(t, F_OK) == 0;
}

int
fdatasync(int fd)
{
    static int (*real)(int);

    if (tripped()) {
        errno = EIO;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int
fsync(int fd)
{
    static int (*real)(int);

    if (tripped()) {
        errno = EIO;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
