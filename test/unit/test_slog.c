/*
 * Unit tests for the stream log (store/slog.c): dense offsets, readers
 * from any offset and time across segments, retention by bytes and age
 * by whole segments, recovery after a reopen and of a torn tail.
 */
#include "store/slog.h"
#include "test/harness/t.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct slog *
topen(const char *dir, uint64_t seg, uint64_t max_bytes, uint64_t max_age)
{
    struct slog_opts o = {seg, max_bytes, max_age};
    char err[512];
    struct slog *l = slog_open(dir, "s.00000000000000ab", &o, err, sizeof(err));

    if (!l)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    return l;
}

/* Appends "m<i>" padded to `size` bytes, at time ts. */
static uint64_t
put(struct slog *l, uint64_t i, size_t size, uint64_t ts)
{
    char b[4096];
    struct bytes part;

    memset(b, 'x', sizeof(b));
    snprintf(b, sizeof(b), "m%llu", (unsigned long long)i);
    part = bytes_of(b, WR_MAX(size, strlen(b)));
    return slog_append(l, ts, &part, 1);
}

/* Reads from `from` to the end, checking every payload and offset;
 * returns how many. */
static uint64_t
read_all(struct slog *l, uint64_t from, uint64_t expect_first)
{
    struct slog_reader *r = slog_reader_new(l, from);
    struct slog_rec rec;
    uint64_t n = 0, want = expect_first;
    char tag[32];

    while (slog_read(r, &rec) == WR_OK) {
        snprintf(tag, sizeof(tag), "m%llu", (unsigned long long)want);
        T_EQ_INT(rec.offset, want);
        T_ASSERT(rec.payload.len >= strlen(tag));
        T_ASSERT(memcmp(rec.payload.ptr, tag, strlen(tag)) == 0);
        want++;
        n++;
    }
    slog_reader_free(r);
    return n;
}

static char *
tdir(const char *name)
{
    static char d[512];

    snprintf(d, sizeof(d), "%s/%s", t_tmpdir(), name);
    mkdir(d, 0755);
    return d;
}

T_CASE(offsets_are_dense_and_readers_start_anywhere)
{
    char *d = tdir("a");
    struct slog *l = topen(d, 64 << 10, 0, 0);

    for (uint64_t i = 0; i < 5000; i++)
        T_EQ_INT(put(l, i, 100, 1000 + i), i);
    T_ASSERT(slog_segments(l) > 5); /* rolled many times */
    T_EQ_INT(slog_first(l), 0);
    T_EQ_INT(slog_next(l), 5000);
    T_EQ_INT(read_all(l, 0, 0), 5000);
    T_EQ_INT(read_all(l, 1234, 1234), 5000 - 1234);
    T_EQ_INT(read_all(l, 4999, 4999), 1);
    T_EQ_INT(read_all(l, 5000, 5000), 0);
    T_EQ_INT(read_all(l, 99999, 99999), 0);
    /* by time: the first record at or after it */
    T_EQ_INT(slog_offset_at(l, 0), 0);
    T_EQ_INT(slog_offset_at(l, 1000 + 3210), 3210);
    T_EQ_INT(slog_offset_at(l, 1000 + 5000), 5000);
    slog_close(l);
}

T_CASE(a_reader_at_the_tail_sees_new_records)
{
    char *d = tdir("b");
    struct slog *l = topen(d, 4096, 0, 0);
    struct slog_reader *r = slog_reader_new(l, 0);
    struct slog_rec rec;

    T_EQ_INT(slog_read(r, &rec), WR_AGAIN);
    for (uint64_t i = 0; i < 100; i++) {
        put(l, i, 300, 1);
        T_EQ_INT(slog_read(r, &rec), WR_OK);
        T_EQ_INT(rec.offset, i);
        T_EQ_INT(slog_read(r, &rec), WR_AGAIN);
    }
    slog_reader_free(r);
    slog_close(l);
}

T_CASE(retention_by_bytes_drops_whole_old_segments)
{
    char *d = tdir("c");
    struct slog *l = topen(d, 10000, 50000, 0);
    struct slog_reader *r = slog_reader_new(l, 0);
    struct slog_rec rec;

    T_EQ_INT(slog_read(r, &rec), WR_AGAIN);
    for (uint64_t i = 0; i < 1000; i++)
        put(l, i, 1000, 1);
    slog_flush(l);
    T_ASSERT(slog_bytes(l) <= 50000 + 10000);
    T_ASSERT(slog_first(l) > 0);
    T_EQ_INT(read_all(l, 0, slog_first(l)), 1000 - slog_first(l));
    /* a reader left behind jumps to the first kept record */
    T_EQ_INT(slog_read(r, &rec), WR_OK);
    T_EQ_INT(rec.offset, slog_first(l));
    slog_reader_free(r);
    slog_close(l);
}

T_CASE(retention_by_age_drops_segments_older_than_max_age)
{
    char *d = tdir("d");
    struct slog *l = topen(d, 4096, 0, 60000);

    for (uint64_t i = 0; i < 100; i++)
        put(l, i, 500, 1000);
    T_EQ_INT(slog_first(l), 0);
    /* a minute and more later, the next roll drops the old ones */
    for (uint64_t i = 100; i < 120; i++)
        put(l, i, 500, 1000 + 61000);
    T_ASSERT(slog_first(l) >= 90);
    T_EQ_INT(read_all(l, 0, slog_first(l)), 120 - slog_first(l));
    slog_close(l);
}

T_CASE(reopen_keeps_everything_and_continues_offsets)
{
    char *d = tdir("e");
    struct slog *l = topen(d, 8192, 0, 0);

    for (uint64_t i = 0; i < 777; i++)
        put(l, i, 200, 5000 + i);
    slog_close(l);
    l = topen(d, 8192, 0, 0);
    T_EQ_INT(slog_next(l), 777);
    T_EQ_INT(read_all(l, 0, 0), 777);
    T_EQ_INT(slog_offset_at(l, 5000 + 500), 500);
    T_EQ_INT(put(l, 777, 10, 9999), 777);
    T_EQ_INT(read_all(l, 770, 770), 8);
    slog_close(l);
}

/* The active segment's name in d. */
static void
last_seg(const char *d, uint64_t first, char *out, size_t n, const char *ext)
{
    snprintf(out, n, "%s/s.00000000000000ab.%020llu.%s", d,
             (unsigned long long)first, ext);
}

T_CASE(a_torn_tail_is_truncated_at_the_last_whole_record)
{
    char *d = tdir("f"), path[600];
    struct slog *l = topen(d, 1 << 20, 0, 0);
    struct stat st;
    int fd;

    for (uint64_t i = 0; i < 300; i++)
        put(l, i, 100, 1);
    slog_close(l);
    last_seg(d, 0, path, sizeof(path), "seg");
    T_ASSERT(stat(path, &st) == 0);
    /* cut the last record in half, and garble the index's tail */
    T_ASSERT(truncate(path, st.st_size - 60) == 0);
    last_seg(d, 0, path, sizeof(path), "idx");
    fd = open(path, O_WRONLY | O_APPEND);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, "garbage-garbage-garbage-", 24) == 24);
    close(fd);
    l = topen(d, 1 << 20, 0, 0);
    T_EQ_INT(slog_next(l), 299);
    T_EQ_INT(read_all(l, 0, 0), 299);
    T_EQ_INT(read_all(l, 250, 250), 49);
    T_EQ_INT(put(l, 299, 100, 1), 299);
    slog_close(l);
    l = topen(d, 1 << 20, 0, 0);
    T_EQ_INT(read_all(l, 0, 0), 300);
    slog_close(l);
}

T_CASE(a_corrupt_record_is_never_returned)
{
    char *d = tdir("g"), path[600];
    struct slog *l = topen(d, 1 << 20, 0, 0);
    struct slog_reader *r;
    struct slog_rec rec;
    uint64_t n = 0;
    int fd;

    for (uint64_t i = 0; i < 100; i++)
        put(l, i, 100, 1);
    slog_close(l);
    last_seg(d, 0, path, sizeof(path), "seg");
    fd = open(path, O_WRONLY);
    /* record i starts at 16 + i * 124: flip a payload byte of the last
     * one (recovery scans the tail) and of record 50 (a reader finds
     * it) */
    T_ASSERT(pwrite(fd, "Z", 1, 16 + 99 * 124 + 24 + 5) == 1);
    T_ASSERT(pwrite(fd, "Z", 1, 16 + 50 * 124 + 24 + 5) == 1);
    close(fd);
    l = topen(d, 1 << 20, 0, 0);
    T_EQ_INT(slog_next(l), 99);
    r = slog_reader_new(l, 0);
    while (slog_read(r, &rec) == WR_OK)
        n++;
    T_EQ_INT(n, 50);
    T_EQ_INT(slog_read(r, &rec), WR_ERR);
    slog_reader_free(r);
    slog_close(l);
}

T_CASE(destroy_removes_the_files)
{
    char *d = tdir("h"), path[600];
    struct slog *l = topen(d, 4096, 0, 0);
    struct stat st;

    for (uint64_t i = 0; i < 100; i++)
        put(l, i, 500, 1);
    slog_destroy(l);
    last_seg(d, 0, path, sizeof(path), "seg");
    T_ASSERT(stat(path, &st) != 0);
    T_ASSERT(rmdir(d) == 0); /* empty */
}

T_CASE(a_large_record_is_read_whole)
{
    char *d = tdir("i");
    struct slog *l = topen(d, 1 << 20, 0, 0);
    size_t big = 3 * SLOG_READ_CHUNK + 17;
    uint8_t *b = xmalloc(big);
    struct bytes part = bytes_of(b, big);
    struct slog_reader *r;
    struct slog_rec rec;

    memset(b, 'q', big);
    put(l, 0, 10, 1);
    T_EQ_INT(slog_append(l, 2, &part, 1), 1);
    put(l, 2, 10, 3);
    r = slog_reader_new(l, 1);
    T_EQ_INT(slog_read(r, &rec), WR_OK);
    T_EQ_INT(rec.payload.len, big);
    T_EQ_INT(rec.ts_ms, 2);
    T_EQ_INT(slog_read(r, &rec), WR_OK);
    T_EQ_INT(rec.offset, 2);
    slog_reader_free(r);
    free(b);
    slog_close(l);
}

/* A replica (cluster/mirror_side.c): a log that starts at the leader's
 * first kept offset, keeps it across a reopen, and drops whole segments
 * below a first offset the leader's retention chose. */
T_CASE(a_replica_starts_at_any_offset_and_drops_segments_below_one)
{
    char *d = tdir("r");
    struct slog *l = topen(d, 4096, 0, 0);
    uint64_t first;
    size_t n;

    T_EQ_INT(slog_restart_at(l, 5000), WR_OK);
    T_EQ_INT(slog_first(l), 5000);
    T_EQ_INT(slog_next(l), 5000);
    for (uint64_t i = 5000; i < 5200; i++)
        T_EQ_INT(put(l, i, 200, 7000 + i), i);
    T_ASSERT(slog_segments(l) > 5);
    slog_close(l);
    l = topen(d, 4096, 0, 0);
    T_EQ_INT(slog_first(l), 5000);
    T_EQ_INT(slog_next(l), 5200);
    T_EQ_INT(read_all(l, 0, 5000), 200);
    /* nothing below the second segment's first offset: only the first
       segment goes, and never the active one */
    T_EQ_INT(slog_drop_before(l, 5001), 0);
    T_ASSERT(slog_drop_before(l, 5100) >= 1);
    first = slog_first(l);
    T_ASSERT(first > 5000 && first <= 5100);
    T_EQ_INT(read_all(l, 0, first), 5200 - first);
    n = slog_segments(l);
    T_EQ_INT(slog_drop_before(l, UINT64_MAX / 4), n - 1);
    T_EQ_INT(slog_segments(l), 1);
    T_EQ_INT(slog_next(l), 5200);
    /* a gap: the log starts again later */
    T_EQ_INT(slog_restart_at(l, 9000), WR_OK);
    T_EQ_INT(put(l, 9000, 10, 1), 9000);
    T_EQ_INT(read_all(l, 0, 9000), 1);
    slog_close(l);
}

static const struct t_case cases[] = {
    T_REG(offsets_are_dense_and_readers_start_anywhere),
    T_REG(a_reader_at_the_tail_sees_new_records),
    T_REG(retention_by_bytes_drops_whole_old_segments),
    T_REG(retention_by_age_drops_segments_older_than_max_age),
    T_REG(reopen_keeps_everything_and_continues_offsets),
    T_REG(a_torn_tail_is_truncated_at_the_last_whole_record),
    T_REG(a_corrupt_record_is_never_returned),
    T_REG(destroy_removes_the_files),
    T_REG(a_large_record_is_read_whole),
    T_REG(a_replica_starts_at_any_offset_and_drops_segments_below_one),
};

T_MAIN(cases)
