#!/usr/bin/python3
"""fsync_rate.py: the disk's fdatasync rate with one writer and with three
(a single node against a leader and two mirrors on one disk, issue 12).

    /usr/bin/python3 test/bench/fsync_rate.py [DIR] [SECONDS]

Each writer appends blocks of a given size to its own file in DIR
(default: the build directory of this checkout, on the data disk) and
fdatasyncs after every block, as Warren's group commit does after every
batch. Prints, per block size and writer count, the syncs a second of
each writer, their sum and the MB/s written in all.
"""

import multiprocessing as mp
import os
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def writer(path, size, seconds, q):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block, n, t0 = b"x" * size, 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        os.write(fd, block)
        os.fdatasync(fd)
        n += 1
    os.close(fd)
    os.unlink(path)
    q.put(n / seconds)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build")
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    for size in (32 << 10, 128 << 10, 512 << 10):
        for k in (1, 3):
            q = mp.Queue()
            ps = [mp.Process(target=writer, args=(
                os.path.join(d, "fsync-rate-%d.tmp" % i), size, seconds, q))
                for i in range(k)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            r = [q.get() for _ in ps]
            print("%4d KiB blocks, %d writer(s): %s syncs/s each, %5.0f in "
                  "all, %5.0f MB/s in all" % (
                      size >> 10, k, "/".join("%.0f" % x for x in r), sum(r),
                      sum(r) * size / 1e6), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
