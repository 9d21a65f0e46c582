/*
 * Unit tests for store/ through the I/O seam: group commit (one
 * fdatasync per flush, durability only after it), the fsync policies,
 * sticky failures on EIO/fdatasync/creation errors, short writes, and
 * the atomic definitions file. A full disk (ENOSPC) is not a failure:
 * test_store_full.c.
 */
#include "store/store_int.h"
#include "test/harness/t.h"
#include "test/unit/test_store_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define QA 0xa1ULL
#define QB 0xb2ULL

static struct store *
topen(struct store_config *cfg)
{
    struct store *s;
    char err[1024];

    if (store_open(cfg, NULL, NULL, &s, err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "open: %s", err);
    return s;
}

T_CASE(group_commit_one_fdatasync_per_flush)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn = 0, base, w, ids[1000], pos;
    uint8_t body[1024];
    struct store_stats st;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 64 << 20;
    s = topen(&cfg);
    base = atomic_load(&t.fdatasyncs);
    tio_gate(&t, true);
    for (int i = 0; i < 1000; i++) {
        tbody(body, sizeof(body), (uint64_t)i);
        lsn = tappend(s, q, 1, "m", body, sizeof(body), &ids[i], &pos);
    }
    store_flush(s);
    tio_wait_gated(&t);
    /* written, not yet synced: nothing is durable */
    T_EQ_INT(store_durable_lsn(s), 1);
    w = l.wakes;
    store_poll(s, &tloop_events, &l);
    T_EQ_INT(l.durable, 0);
    tio_gate(&t, false);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_EQ_INT(atomic_load(&t.fdatasyncs) - base, 1);
    T_ASSERT(l.wakes > w);
    T_EQ_INT(l.durable, lsn);
    /* head header, the manifest's first version (both copies), batch */
    T_EQ_INT(atomic_load(&t.pwrites), 1 + 2 + 1);

    /* 1000 acks of one queue in one flush: one ACK record, ~1 B per id */
    base = atomic_load(&t.fdatasyncs);
    store_get_stats(s, &st);
    w = st.bytes_written;
    for (int i = 999; i >= 0; i--)
        lsn = store_append_ack(s, QA, ids[i]);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    store_get_stats(s, &st);
    T_EQ_INT(atomic_load(&t.fdatasyncs) - base, 1);
    T_ASSERT(st.bytes_written - w < 1000 + 64);
    T_ASSERT(st.bytes_written - w > 1000);
    store_close(s);
    tloop_fini(&l);
}

/* Everything written for a message: its record, its share of the BATCH
   markers, of its queue's ACK record and of the segment summary. */
T_CASE(disk_bytes_per_message_under_64_plus_body_and_meta)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn = 0, ids[100], pos, base, total;
    uint8_t body[1024];
    const char *meta = "exchange=amq.direct rk=orders.created props=..";
    double per;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 64 << 20;
    s = topen(&cfg);
    base = atomic_load(&t.bytes_written);
    /* 100 rounds: 100 publishes in one flush, their acks in the next */
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 100; i++) {
            tbody(body, sizeof(body), (uint64_t)i);
            lsn = tappend(s, q, 1, meta, body, sizeof(body), &ids[i], &pos);
        }
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
        for (int i = 0; i < 100; i++)
            lsn = store_append_ack(s, QA, ids[i]);
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
    }
    store_close(s); /* writes the summary: it counts too */
    total = atomic_load(&t.bytes_written) - base;
    per = (double)total / 10000 - (double)(sizeof(body) + strlen(meta));
    log_info("disk overhead per message: %.1f bytes", per);
    T_ASSERT(per > 0 && per < 64);
    tloop_fini(&l);
}

T_CASE(fsync_never_does_not_sync_batches)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn, base;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.fsync = STORE_FSYNC_NEVER;
    cfg.segment_size = 64 << 20;
    s = topen(&cfg);
    base = atomic_load(&t.fdatasyncs);
    tio_gate(&t, true); /* would block any fdatasync */
    for (int i = 0; i < 50; i++) {
        lsn = tappend(s, q, 1, "m", "b", 1, NULL, NULL);
        T_ASSERT(tloop_wait_durable(&l, s, lsn));
    }
    T_EQ_INT(atomic_load(&t.fdatasyncs), base);
    tio_gate(&t, false);
    store_close(s); /* close syncs whatever the policy */
    T_ASSERT(atomic_load(&t.fdatasyncs) > base);
    tloop_fini(&l);
}

T_CASE(fsync_interval_syncs_in_the_background)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn, base;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.fsync = STORE_FSYNC_INTERVAL;
    /* long enough that the first write comes before the first sync is
       due, however slow the machine (a margin, not a speed) */
    cfg.fsync_interval_ms = 2000;
    cfg.segment_size = 64 << 20;
    s = topen(&cfg);
    base = atomic_load(&t.fdatasyncs);
    tio_gate(&t, true);
    /* durable once written, without waiting for a sync */
    lsn = tappend(s, q, 1, "m", "b", 1, NULL, NULL);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_EQ_INT(atomic_load(&t.fdatasyncs), base);
    /* the interval timer syncs the unsynced data by itself */
    tio_wait_gated(&t);
    tio_gate(&t, false);
    for (int i = 0; i < 6000 && atomic_load(&t.fdatasyncs) == base; i++)
        usleep(10000);
    T_EQ_INT(atomic_load(&t.fdatasyncs), base + 1);
    /* and only once: nothing new to sync */
    usleep(250000);
    T_EQ_INT(atomic_load(&t.fdatasyncs), base + 1);
    store_close(s);
    tloop_fini(&l);
}

/* Runs one failing scenario: the fault is armed by arm() after open. */
static void
failing_write(void (*arm)(struct tio *), const char *expect)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[1] = {QA}, lsn, good, id, pos;
    char err[1024];

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 64 << 10;
    s = topen(&cfg);
    good = tappend(s, q, 1, "ok", "durable", 7, &id, &pos);
    T_ASSERT(tloop_wait_durable(&l, s, good));
    arm(&t);
    for (int i = 0; i < 100; i++)
        lsn = tappend(s, q, 1, "m", "0123456789abcdef", 16, NULL, NULL);
    T_ASSERT(!tloop_wait_durable(&l, s, lsn));
    /* the failed batch never became durable */
    T_EQ_INT(store_durable_lsn(s), good);
    T_ASSERT(store_error(s) != NULL);
    if (!strstr(store_error(s), expect))
        t_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", store_error(s),
               expect);
    store_poll(s, &tloop_events, &l);
    T_EQ_INT(l.failed, 1);
    T_ASSERT(strstr(l.why, ".seg") || strstr(l.why, "directory"));
    /* sticky: appends fail, the event is not repeated */
    T_EQ_INT(tappend(s, q, 1, "m", "b", 1, NULL, NULL), 0);
    T_EQ_INT(store_append_ack(s, QA, id), 0);
    T_EQ_INT(store_append_queue_delete(s, QA), 0);
    store_flush(s);
    store_poll(s, &tloop_events, &l);
    T_EQ_INT(l.failed, 1);
    T_EQ_INT(store_durable_lsn(s), good);
    store_close(s);
    /* what was durable before the failure is still there */
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_ASSERT(rset_find(&r, QA, id) != NULL);
    T_ASSERT(tcheck_msg(s, rset_find(&r, QA, id)->pos, "ok", "durable", 7));
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

static void
arm_eio(struct tio *t)
{
    atomic_store(&t->pwrite_errno, EIO);
    atomic_store(&t->fail_pwrite_at, 1);
}

static void
arm_fdatasync(struct tio *t)
{
    atomic_store(&t->fdatasync_errno, EIO);
    atomic_store(&t->fail_fdatasync_at, 1);
}

T_CASE(write_eio_fails_the_store)
{
    failing_write(arm_eio, "Input/output error");
}

T_CASE(fdatasync_failure_fails_the_store_and_is_not_retried)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn, n;

    failing_write(arm_fdatasync, "fdatasync");
    /* no retry: after the failed fdatasync, no other one is attempted */
    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s2"), &t, &l);
    s = topen(&cfg);
    arm_fdatasync(&t);
    lsn = tappend(s, q, 1, "m", "b", 1, NULL, NULL);
    T_ASSERT(!tloop_wait_durable(&l, s, lsn));
    n = atomic_load(&t.fdatasyncs);
    for (int i = 0; i < 5; i++) {
        tappend(s, q, 1, "m", "b", 1, NULL, NULL);
        store_flush(s);
        store_poll(s, &tloop_events, &l);
    }
    store_close(s);
    T_EQ_INT(atomic_load(&t.fdatasyncs), n);
    tloop_fini(&l);
}

/* With fsync=interval, the background sync fails: the store fails, and
   the timer does not try again (no retried fsync, no busy loop). */
T_CASE(interval_sync_failure_is_not_retried)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, n;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.fsync = STORE_FSYNC_INTERVAL;
    cfg.fsync_interval_ms = 20;
    s = topen(&cfg);
    arm_fdatasync(&t);
    /* the sync that fails may come with the write or after it (the
       interval may have passed since the open): either way it fails */
    tappend(s, q, 1, "m", "b", 1, NULL, NULL);
    store_flush(s);
    for (int i = 0; i < 6000 && !store_error(s); i++)
        usleep(10000);
    T_ASSERT(store_error(s) && strstr(store_error(s), "fdatasync"));
    n = atomic_load(&t.fdatasyncs);
    usleep(200000);
    T_EQ_INT(atomic_load(&t.fdatasyncs), n);
    store_poll(s, &tloop_events, &l);
    T_EQ_INT(l.failed, 1);
    store_close(s);
    T_EQ_INT(atomic_load(&t.fdatasyncs), n);
    tloop_fini(&l);
}

static void
arm_open(struct tio *t)
{
    atomic_store(&t->fail_open_at, 1);
}

T_CASE(segment_creation_failure_fails_the_store)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn = 0, good;
    uint8_t body[3000] = {0};

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 8192;
    s = topen(&cfg);
    good = tappend(s, q, 1, "m", body, sizeof(body), NULL, NULL);
    T_ASSERT(tloop_wait_durable(&l, s, good));
    arm_open(&t);
    for (int i = 0; i < 3; i++) /* the 2nd one starts segment 2 */
        lsn = tappend(s, q, 1, "m", body, sizeof(body), NULL, NULL);
    T_ASSERT(!tloop_wait_durable(&l, s, lsn));
    T_ASSERT(strstr(store_error(s), "creating segment"));
    T_EQ_INT(store_durable_lsn(s), good);
    store_close(s);
    tloop_fini(&l);
}

T_CASE(directory_fsync_failure_fails_the_store)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn = 0, good;
    uint8_t body[3000] = {0};

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 8192;
    s = topen(&cfg);
    good = tappend(s, q, 1, "m", body, sizeof(body), NULL, NULL);
    T_ASSERT(tloop_wait_durable(&l, s, good));
    atomic_store(&t.fail_fsync_at, 1);
    for (int i = 0; i < 3; i++)
        lsn = tappend(s, q, 1, "m", body, sizeof(body), NULL, NULL);
    T_ASSERT(!tloop_wait_durable(&l, s, lsn));
    T_ASSERT(strstr(store_error(s), "directory"));
    T_EQ_INT(store_durable_lsn(s), good);
    store_close(s);
    tloop_fini(&l);
}

T_CASE(short_writes_are_completed)
{
    char dir[512], err[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    struct rset r = {0};
    uint64_t q[2] = {QA, QB}, lsn = 0;
    uint8_t body[777];

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    s = topen(&cfg);
    atomic_store(&t.short_write, 7);
    for (int i = 0; i < 200; i++) {
        tbody(body, sizeof(body), s->next_id);
        lsn = tappend(s, q, 2, "meta", body, sizeof(body), NULL, NULL);
    }
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    T_ASSERT(store_error(s) == NULL);
    T_ASSERT(atomic_load(&t.pwrites) > 200 * 777 / 7);
    store_close(s);
    atomic_store(&t.short_write, 0);
    T_EQ_INT(store_open(&cfg, &rset_cb, &r, &s, err, sizeof(err)), WR_OK);
    T_EQ_INT(r.n, 400);
    for (size_t i = 0; i < r.n; i++) {
        tbody(body, sizeof(body), r.v[i].id);
        T_ASSERT(tcheck_msg(s, r.v[i].pos, "meta", body, sizeof(body)));
    }
    store_close(s);
    rset_free(&r);
    tloop_fini(&l);
}

/* ---- atomic definitions file */

static size_t
count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    T_ASSERT(d);
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

T_CASE(atomic_file_write_read_and_failure)
{
    char path[512], err[512];
    struct buf b;
    struct tio t;
    const char *v1 = "{\"queues\":[]}", *v2 = "{\"queues\":[1]}";

    buf_init(&b);
    tpath(path, sizeof(path), "definitions.json");
    T_EQ_INT(store_read_file(path, &b, err, sizeof(err)), WR_ERR);
    T_EQ_INT(errno, ENOENT);
    T_ASSERT(strstr(err, path));
    T_EQ_INT(store_write_file_atomic(path, v1, strlen(v1), err, sizeof(err)),
             WR_OK);
    T_EQ_INT(store_read_file(path, &b, err, sizeof(err)), WR_OK);
    T_EQ_MEM(b.data, b.len, v1, strlen(v1));
    T_EQ_INT(store_write_file_atomic(path, v2, strlen(v2), err, sizeof(err)),
             WR_OK);
    T_EQ_INT(store_read_file(path, &b, err, sizeof(err)), WR_OK);
    T_EQ_MEM(b.data, b.len, v2, strlen(v2));
    T_EQ_INT(count_tmp(t_tmpdir()), 0);
    /* a failed fsync leaves the old content and no temporary file */
    tio_init(&t);
    atomic_store(&t.fail_fsync_at, 1);
    T_EQ_INT(store__write_file_atomic_io(&t.io, path, v1, strlen(v1), err,
                                         sizeof(err)),
             WR_ERR);
    T_ASSERT(strstr(err, "fsync"));
    T_EQ_INT(store_read_file(path, &b, err, sizeof(err)), WR_OK);
    T_EQ_MEM(b.data, b.len, v2, strlen(v2));
    T_EQ_INT(count_tmp(t_tmpdir()), 0);
    /* a failed write as well */
    atomic_store(&t.pwrite_errno, ENOSPC);
    atomic_store(&t.fail_pwrite_at, 1);
    T_EQ_INT(store__write_file_atomic_io(&t.io, path, v1, strlen(v1), err,
                                         sizeof(err)),
             WR_ERR);
    T_ASSERT(strstr(err, "No space"));
    T_EQ_INT(count_tmp(t_tmpdir()), 0);
    /* the directory is fsynced after the rename: 2 fsyncs per write */
    tio_init(&t);
    T_EQ_INT(store__write_file_atomic_io(&t.io, path, v1, strlen(v1), err,
                                         sizeof(err)),
             WR_OK);
    T_EQ_INT(atomic_load(&t.fsyncs), 2);
    T_EQ_INT(atomic_load(&t.renames), 1);
    /* an empty file reads back empty */
    T_EQ_INT(store_write_file_atomic(path, "", 0, err, sizeof(err)), WR_OK);
    T_EQ_INT(store_read_file(path, &b, err, sizeof(err)), WR_OK);
    T_EQ_INT(b.len, 0);
    buf_fini(&b);
}

/* While a batch is being synced, the loop keeps filling the next one:
   any number of loop iterations then share one fdatasync. */
T_CASE(group_commit_accumulates_while_a_sync_is_in_progress)
{
    char dir[512];
    struct tio t;
    struct tloop l;
    struct store_config cfg;
    struct store *s;
    uint64_t q[1] = {QA}, lsn, base, writes;

    tio_init(&t);
    tloop_init(&l);
    cfg = tcfg(tpath(dir, sizeof(dir), "s"), &t, &l);
    cfg.segment_size = 64 << 20;
    s = topen(&cfg);
    base = atomic_load(&t.fdatasyncs);
    tio_gate(&t, true);
    lsn = tappend(s, q, 1, "m", "first", 5, NULL, NULL);
    store_flush(s);
    tio_wait_gated(&t); /* batch 1 is in fdatasync */
    writes = atomic_load(&t.pwrites);
    for (int i = 0; i < 50; i++) { /* 50 loop iterations */
        lsn = tappend(s, q, 1, "m", "more", 4, NULL, NULL);
        store_flush(s);
        store_poll(s, &tloop_events, &l);
    }
    T_EQ_INT(atomic_load(&t.pwrites), writes); /* nothing handed over */
    T_EQ_INT(store_durable_lsn(s), 1);
    tio_gate(&t, false);
    T_ASSERT(tloop_wait_durable(&l, s, lsn));
    /* batch 1, then the 50 iterations' records as one batch */
    T_EQ_INT(atomic_load(&t.fdatasyncs) - base, 2);
    T_EQ_INT(atomic_load(&t.pwrites), writes + 1);
    store_close(s);
    tloop_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(group_commit_one_fdatasync_per_flush),
    T_REG(group_commit_accumulates_while_a_sync_is_in_progress),
    T_REG(disk_bytes_per_message_under_64_plus_body_and_meta),
    T_REG(fsync_never_does_not_sync_batches),
    T_REG(fsync_interval_syncs_in_the_background),
    T_REG(write_eio_fails_the_store),
    T_REG(fdatasync_failure_fails_the_store_and_is_not_retried),
    T_REG(interval_sync_failure_is_not_retried),
    T_REG(segment_creation_failure_fails_the_store),
    T_REG(directory_fsync_failure_fails_the_store),
    T_REG(short_writes_are_completed),
    T_REG(atomic_file_write_read_and_failure),
};

T_MAIN(cases)
