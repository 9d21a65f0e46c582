/*
 * store/io.h: the I/O seam. Every file operation of the store goes
 * through a struct store_io so that tests can count calls and bytes and
 * inject EIO, ENOSPC, short writes and fsync failures. store_io_default
 * maps each operation to the real syscall.
 *
 * Conventions: like the syscalls, each operation returns -1 and sets
 * errno on failure. Operations may be called from the loop thread and the
 * store thread at the same time, so an implementation must be
 * thread-safe. Offsets are absolute (pread/pwrite).
 */
#ifndef WARREN_STORE_IO_H
#define WARREN_STORE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store_io {
    int (*open)(void *arg, const char *path, int flags, unsigned mode);
    int (*close)(void *arg, int fd);
    ssize_t (*pread)(void *arg, int fd, void *buf, size_t n, uint64_t off);
    ssize_t (*pwrite)(void *arg, int fd, const void *buf, size_t n,
                      uint64_t off);
    int (*fdatasync)(void *arg, int fd);
    int (*fsync)(void *arg, int fd); /* files and directories */
    int (*ftruncate)(void *arg, int fd, uint64_t len);
    int (*fsize)(void *arg, int fd, uint64_t *size);
    int (*unlink)(void *arg, const char *path);
    int (*rename)(void *arg, const char *from, const char *to);
    void *arg;
};

extern const struct store_io store_io_default;

/*
 * Writes all n bytes at off, looping over short writes. A write that
 * makes no progress fails with ENOSPC. Returns 0 or -1 (errno set).
 */
int io_pwrite_all(const struct store_io *io, int fd, const void *p, size_t n,
                  uint64_t off);

/*
 * Reads up to n bytes at off, looping over short reads until EOF.
 * Returns the number of bytes read (< n only at end of file) or -1.
 */
ssize_t io_pread_all(const struct store_io *io, int fd, void *p, size_t n,
                     uint64_t off);

#endif
