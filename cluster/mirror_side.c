/*
 * mirror_side.c: a mirror's copy of the stream logs, tracked offsets and
 * deduplication journal of a vhost (cluster/mirror_side.h).
 *
 * Streams are kept as stream logs (store/slog.h) of the same prefix the
 * vhost uses ("stream.<qid>"), appended record by record with the
 * leader's offsets and times, so that after a failover the new leader
 * opens them as its own and every offset names the same message. A
 * record whose offset is beyond the copy's next starts the copy's log
 * there while a snapshot is being taken (the leader's retention dropped
 * what lies between); one below it, or beyond it once the copy follows
 * the live stream, is an error: the copy would diverge. Segment
 * boundaries may differ from the leader's (a copy built from a snapshot
 * rolls on its own), offsets never do.
 */
#include "cluster/mirror_side.h"

#include "store/fsyncer.h"
#include "store/slog.h"
#include "store/store.h"
#include "vhost/dedup_log.h"
#include "vhost/side.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uthash.h>

#define DEDUP_FILE "dedup.journal"
/* The sync thread's key for the journal (stream logs use their qids). */
#define JOURNAL_KEY UINT64_MAX

struct mstream {
    uint64_t qid;
    struct slog *log;
    bool written; /* appended since the last hand-over */
    UT_hash_handle hh;
};

struct mside {
    char *dir;
    int fsync; /* enum store_fsync */
    void (*wake)(void *);
    void *wake_arg;
    struct fsyncer *f; /* started with the first write */
    struct mstream *streams;
    int jfd; /* the journal, open for appends; -1 */
    bool jwritten;
    bool failed;
    bool exact; /* the payload being applied follows the live stream */
};

static char *
file_path(const struct mside *ms, const char *name)
{
    struct buf p;

    buf_init(&p);
    buf_printf(&p, "%s/%s", ms->dir, name);
    buf_put_u8(&p, 0);
    return (char *)p.data;
}

static void
stream_prefix(uint64_t qid, char *out, size_t n)
{
    snprintf(out, n, "stream.%016llx", (unsigned long long)qid);
}

struct mside *
mside_open(const char *dir, int fsync, void (*wake)(void *), void *wake_arg)
{
    struct mside *ms = xcalloc(1, sizeof(*ms));

    ms->dir = xstrdup(dir);
    ms->fsync = fsync;
    ms->wake = wake;
    ms->wake_arg = wake_arg;
    ms->jfd = -1;
    return ms;
}

bool
mside_close(struct mside *ms)
{
    struct mstream *s, *tmp;
    bool ok;

    if (!ms)
        return true;
    HASH_ITER(hh, ms->streams, s, tmp)
    {
        HASH_DEL(ms->streams, s);
        if (slog_flush(s->log) != WR_OK)
            ms->failed = true;
        else if (ms->f && ms->fsync != STORE_FSYNC_NEVER)
            slog_sync_add(s->log);
        slog_close(s->log);
        free(s);
    }
    if (ms->jfd >= 0) {
        if (ms->f && ms->fsync != STORE_FSYNC_NEVER)
            fsyncer_add(ms->f, JOURNAL_KEY, ms->jfd, false, false);
        close(ms->jfd);
    }
    ok = fsyncer_stop(ms->f) && !ms->failed; /* syncs the open batch */
    free(ms->dir);
    free(ms);
    return ok;
}

static struct fsyncer *
syncer(struct mside *ms)
{
    if (!ms->f) {
        char name[64];

        snprintf(name, sizeof(name), "copy sync thread");
        ms->f = fsyncer_start(name, ms->wake, ms->wake_arg);
    }
    return ms->f;
}

/* The copy of stream qid, opened (created) when need be. */
static struct mstream *
stream_get(struct mside *ms, uint64_t qid, uint64_t segsize, char *err,
           size_t errlen)
{
    struct mstream *s;
    struct slog_opts o = {.max_segment_bytes = segsize ? segsize : 1};
    char prefix[64];

    HASH_FIND(hh, ms->streams, &qid, sizeof(qid), s);
    if (s) {
        if (segsize) /* the leader's, as of this append */
            slog_set_opts(s->log, &o);
        return s;
    }
    if (!syncer(ms)) {
        snprintf(err, errlen, "no sync thread for the stream copies");
        return NULL;
    }
    stream_prefix(qid, prefix, sizeof(prefix));
    s = xcalloc(1, sizeof(*s));
    s->qid = qid;
    s->log = slog_open(ms->dir, prefix, &o, err, errlen);
    if (!s->log) {
        free(s);
        return NULL;
    }
    slog_set_syncer(s->log, ms->f, qid);
    HASH_ADD(hh, ms->streams, qid, sizeof(s->qid), s);
    return s;
}

static int
apply_append(struct mside *ms, const struct side_rec *r, char *err,
             size_t errlen)
{
    struct mstream *s = stream_get(ms, r->qid, r->segsize, err, errlen);
    uint64_t next;

    if (!s)
        return WR_ERR;
    next = slog_next(s->log);
    if (r->offset < next || (ms->exact && r->offset > next)) {
        snprintf(err, errlen,
                 "stream %016llx: offset %llu where %llu comes next (the "
                 "copy would diverge)",
                 (unsigned long long)r->qid, (unsigned long long)r->offset,
                 (unsigned long long)next);
        return WR_ERR;
    }
    if (r->offset > next && slog_restart_at(s->log, r->offset) != WR_OK) {
        snprintf(err, errlen, "stream %016llx: cannot start at offset %llu",
                 (unsigned long long)r->qid, (unsigned long long)r->offset);
        return WR_ERR;
    }
    if (slog_append(s->log, r->ts_ms, &r->data, 1) != r->offset) {
        snprintf(err, errlen, "stream %016llx: append failed",
                 (unsigned long long)r->qid);
        return WR_ERR;
    }
    s->written = true;
    return WR_OK;
}

/* The copy of stream qid, opened from its files (an empty one when it
 * has none); NULL with err when it cannot be. */
static struct mstream *
stream_if_any(struct mside *ms, uint64_t qid, char *err, size_t errlen)
{
    return stream_get(ms, qid, 0, err, errlen);
}

static int
apply_delete(struct mside *ms, uint64_t qid, char *err, size_t errlen)
{
    struct mstream *s = stream_if_any(ms, qid, err, errlen);
    char name[96], *path;

    if (!s)
        return WR_ERR;
    HASH_DEL(ms->streams, s);
    slog_destroy(s->log);
    free(s);
    snprintf(name, sizeof(name), "stream.%016llx.offsets",
             (unsigned long long)qid);
    path = file_path(ms, name);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        free(path);
        return WR_ERR;
    }
    free(path);
    return WR_OK;
}

static int
apply_offsets(struct mside *ms, const struct side_rec *r, char *err,
              size_t errlen)
{
    char name[96], *path;
    int rc;

    snprintf(name, sizeof(name), "stream.%016llx.offsets",
             (unsigned long long)r->qid);
    path = file_path(ms, name);
    rc = store_write_file_atomic(path, r->data.ptr, r->data.len, err, errlen);
    free(path);
    return rc;
}

static int
journal_open(struct mside *ms, char *err, size_t errlen)
{
    char *path;

    if (ms->jfd >= 0)
        return WR_OK;
    path = file_path(ms, DEDUP_FILE);
    ms->jfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (ms->jfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return WR_ERR;
    }
    free(path);
    if (lseek(ms->jfd, 0, SEEK_END) == 0 &&
        write(ms->jfd, DEDUP_LOG_MAGIC, 4) != 4) {
        snprintf(err, errlen, "cannot write the journal: %s", strerror(errno));
        return WR_ERR;
    }
    return WR_OK;
}

static int
apply_keys(struct mside *ms, struct bytes data, char *err, size_t errlen)
{
    if (journal_open(ms, err, errlen) != WR_OK)
        return WR_ERR;
    if (write(ms->jfd, data.ptr, data.len) != (ssize_t)data.len) {
        snprintf(err, errlen, "cannot append to the journal: %s",
                 strerror(errno));
        return WR_ERR;
    }
    ms->jwritten = true;
    return WR_OK;
}

static int
apply_journal(struct mside *ms, struct bytes data, char *err, size_t errlen)
{
    char *path = file_path(ms, DEDUP_FILE);
    int rc;

    if (ms->jfd >= 0)
        close(ms->jfd);
    ms->jfd = -1;
    ms->jwritten = false;
    rc = store_write_file_atomic(path, data.ptr, data.len, err, errlen);
    free(path);
    return rc;
}

/* Checks the whole payload before anything is applied. */
static bool
check_all(struct bytes payload, const char **why)
{
    struct cursor c;
    struct side_rec r;

    cur_init(&c, payload.ptr, payload.len);
    while (c.left > 0) {
        if (!side_next(&c, &r, why))
            return false;
        if (r.type == SIDE_SOFFS) {
            json_t *doc =
                json_loadb((const char *)r.data.ptr, r.data.len, 0, NULL);
            bool ok = json_is_object(doc);

            json_decref(doc);
            if (!ok) {
                *why = "tracked offsets that are not a JSON object";
                return false;
            }
        }
    }
    return true;
}

static int
apply_one(struct mside *ms, const struct side_rec *r, char *err, size_t errlen)
{
    struct mstream *s;

    switch (r->type) {
    case SIDE_SAPP:
        return apply_append(ms, r, err, errlen);
    case SIDE_STRIM:
        s = stream_if_any(ms, r->qid, err, errlen);
        if (!s)
            return WR_ERR;
        /* an empty stream that starts later (a snapshot's) */
        if (slog_first(s->log) == slog_next(s->log) &&
            r->offset > slog_next(s->log))
            return slog_restart_at(s->log, r->offset);
        slog_drop_before(s->log, r->offset);
        return WR_OK;
    case SIDE_SDEL:
        return apply_delete(ms, r->qid, err, errlen);
    case SIDE_SOFFS:
        return apply_offsets(ms, r, err, errlen);
    case SIDE_DKEYS:
        return apply_keys(ms, r->data, err, errlen);
    default: /* SIDE_DFULL */
        return apply_journal(ms, r->data, err, errlen);
    }
}

int
mside_apply(struct mside *ms, struct bytes payload, bool exact,
            uint64_t *ticket, char *err, size_t errlen)
{
    const char *why;
    struct cursor c;
    struct side_rec r;
    struct mstream *s, *tmp;

    *ticket = 0;
    if (!ms || ms->failed) {
        snprintf(err, errlen, "the copy's side files failed");
        return WR_ERR;
    }
    if (!check_all(payload, &why)) {
        snprintf(err, errlen, "garbage: %s", why);
        return WR_ERR;
    }
    ms->exact = exact;
    cur_init(&c, payload.ptr, payload.len);
    while (c.left > 0) {
        side_next(&c, &r, &why);
        if (apply_one(ms, &r, err, errlen) != WR_OK) {
            ms->failed = true;
            return WR_ERR;
        }
    }
    /* written now, synced in the next batch */
    HASH_ITER(hh, ms->streams, s, tmp)
    {
        if (!s->written)
            continue;
        s->written = false;
        if (slog_flush(s->log) != WR_OK) {
            snprintf(err, errlen, "stream %016llx: write failed",
                     (unsigned long long)s->qid);
            ms->failed = true;
            return WR_ERR;
        }
        if (ms->fsync != STORE_FSYNC_NEVER)
            slog_sync_add(s->log);
    }
    if (ms->jwritten && ms->jfd >= 0 && syncer(ms) &&
        ms->fsync != STORE_FSYNC_NEVER)
        fsyncer_add(ms->f, JOURNAL_KEY, ms->jfd, false, false);
    ms->jwritten = false;
    if (ms->f && ms->fsync == STORE_FSYNC_ALWAYS)
        *ticket = fsyncer_ticket(ms->f);
    mside_kick(ms);
    return WR_OK;
}

void
mside_kick(struct mside *ms)
{
    if (ms && ms->f)
        fsyncer_kick(ms->f);
}

bool
mside_durable(const struct mside *ms, uint64_t ticket)
{
    if (ticket == 0)
        return true;
    return ms && ms->f && !fsyncer_error(ms->f) &&
           fsyncer_durable(ms->f) >= ticket;
}
