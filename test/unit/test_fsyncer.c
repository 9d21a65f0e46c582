/*
 * Unit tests for the sync thread (store/fsyncer.c): batch numbers,
 * durable after the syncs, one sync per file and batch, failures that
 * stick (a pipe cannot be fdatasync'ed: a real failed sync), and the
 * stream log's seals handed to it (store/slog.c).
 */
#include "store/fsyncer.h"
#include "store/slog.h"
#include "test/harness/t.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int wakes;

static void
wake(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakes, 1);
}

/* Waits (up to 5 s) until f is idle; returns its durable batch. */
static uint64_t
settle(struct fsyncer *f)
{
    for (int i = 0; i < 5000 && fsyncer_busy(f); i++) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    T_ASSERT(!fsyncer_busy(f));
    return fsyncer_durable(f);
}

static int
tfile(const char *name)
{
    char p[512];
    int fd;

    snprintf(p, sizeof(p), "%s/%s", t_tmpdir(), name);
    fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, "data", 4) == 4);
    return fd;
}

T_CASE(a_batch_is_durable_once_its_files_are_synced)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    int a = tfile("a"), b = tfile("b");

    T_ASSERT(f != NULL);
    T_EQ_INT(fsyncer_durable(f), 0);
    T_EQ_INT(fsyncer_batch(f), 1);
    /* nothing to sync and nobody waiting: nothing handed over */
    T_ASSERT(!fsyncer_kick(f));
    fsyncer_add(f, 1, a, false, false);
    fsyncer_add(f, 1, a, false, false); /* same key: once */
    fsyncer_add(f, 2, b, false, false);
    T_EQ_INT(fsyncer_ticket(f), 1);
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(fsyncer_batch(f), 2);
    T_EQ_INT(settle(f), 1);
    T_EQ_INT(fsyncer_syncs(f), 2);
    T_ASSERT(atomic_load(&wakes) >= 1);
    /* the caller's descriptors were dup'ed: still theirs */
    T_ASSERT(write(a, "x", 1) == 1);
    T_ASSERT(fsyncer_error(f) == NULL);
    fsyncer_stop(f);
    close(a);
    close(b);
}

T_CASE(an_awaited_batch_without_files_is_handed_over)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    uint64_t t = fsyncer_ticket(f);

    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), t);
    T_EQ_INT(fsyncer_syncs(f), 0);
    fsyncer_stop(f);
}

T_CASE(own_files_are_synced_and_closed_and_directories_fsynced)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    int a = tfile("a");
    int d = open(t_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    T_ASSERT(d >= 0);
    fsyncer_add(f, 1, a, true, false);
    fsyncer_add(f, 1, d, true, true); /* owned: never deduplicated */
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 1);
    T_EQ_INT(fsyncer_syncs(f), 2);
    T_ASSERT(fcntl(a, F_GETFD) < 0); /* closed by the thread */
    T_ASSERT(fcntl(d, F_GETFD) < 0);
    fsyncer_stop(f);
}

T_CASE(a_failed_sync_stops_durable_for_good)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    int p[2], a = tfile("a");

    T_ASSERT(pipe(p) == 0);
    fsyncer_add(f, 1, a, false, false);
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 1);
    /* fdatasync of a pipe fails (EINVAL): a sync that failed */
    fsyncer_add(f, 2, p[0], false, false);
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 1);
    T_ASSERT(fsyncer_error(f) != NULL);
    T_ASSERT(strstr(fsyncer_error(f), "fdatasync failed") != NULL);
    /* a later batch of good files is not synced, never durable */
    fsyncer_add(f, 1, a, false, false);
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 1);
    fsyncer_stop(f);
    close(p[0]);
    close(p[1]);
    close(a);
}

T_CASE(a_failure_reported_by_the_writer_sticks)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    int a = tfile("a");

    fsyncer_add(f, 1, a, false, false);
    fsyncer_fail(f, "a stream's write failed");
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 0);
    T_EQ_STR(fsyncer_error(f), "a stream's write failed");
    fsyncer_stop(f);
    close(a);
}

T_CASE(stream_log_seals_are_synced_by_the_thread)
{
    struct fsyncer *f = fsyncer_start("t", wake, NULL);
    struct slog_opts o = {8192, 0, 0};
    char err[256], b[1000];
    struct slog *l = slog_open(t_tmpdir(), "s", &o, err, sizeof(err));
    struct bytes part = bytes_of(b, sizeof(b));
    struct slog_reader *r;
    struct slog_rec rec;
    uint64_t n = 0;

    T_ASSERT(l != NULL);
    memset(b, 'x', sizeof(b));
    slog_set_syncer(l, f, 7); /* a new log: its directory */
    for (int i = 0; i < 40; i++)
        T_ASSERT(slog_append(l, 1000 + (uint64_t)i, &part, 1) != UINT64_MAX);
    T_ASSERT(slog_flush(l) == WR_OK);
    slog_sync_add(l);
    T_ASSERT(slog_segments(l) >= 4);
    T_ASSERT(fsyncer_kick(f));
    T_EQ_INT(settle(f), 1);
    /* per seal: segment, index, directory; plus the first directory and
     * the active segment */
    T_EQ_INT(fsyncer_syncs(f), 3 * (slog_segments(l) - 1) + 2);
    slog_close(l);
    fsyncer_stop(f);
    l = slog_open(t_tmpdir(), "s", &o, err, sizeof(err));
    T_ASSERT(l != NULL);
    r = slog_reader_new(l, 0);
    while (slog_read(r, &rec) == WR_OK)
        T_EQ_INT(rec.offset, n++);
    T_EQ_INT(n, 40);
    slog_reader_free(r);
    slog_close(l);
}

static const struct t_case cases[] = {
    T_REG(a_batch_is_durable_once_its_files_are_synced),
    T_REG(an_awaited_batch_without_files_is_handed_over),
    T_REG(own_files_are_synced_and_closed_and_directories_fsynced),
    T_REG(a_failed_sync_stops_durable_for_good),
    T_REG(a_failure_reported_by_the_writer_sticks),
    T_REG(stream_log_seals_are_synced_by_the_thread),
};

T_MAIN(cases)
