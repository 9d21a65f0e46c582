/*
 * mirror.c: a vhost's copy on a mirror node (cluster/mirror.h).
 *
 * The copy trusts nothing it is sent: a frame of another epoch, records
 * that fail store_apply's checks (store/replica.c validates a whole RECS
 * payload before appending any of it) or a DEFS payload that is not a
 * JSON object are errors, and the server drops the link.
 *
 * A snapshot (SNAP) restarts the copy: the old log directory is renamed
 * aside (atomic, directory fsynced) and removed, a fresh log opened, and
 * state.json says synced = false until SYNCED arrives. A crash at any
 * point leaves either the old copy or a fresh partial one marked not
 * synced; a leftover log.old is removed at the next open.
 *
 * Catch-up from a position: a complete copy closed cleanly (its log all
 * durable, the last frame taken ending a cut of the leader) writes that
 * frame's position into state.json; the next open of the same epoch
 * takes it back and erases it from the file before anything is
 * appended, so a copy that then dies with kill -9 never claims a
 * position its log has gone past. The server offers the position to the
 * leader, which sends what follows it, or a snapshot.
 *
 * Truncation in place (Kafka KIP-101): a copy of an older epoch is
 * complete for nothing, unless the new leader says where the lead this
 * copy follows ended on it (cfg->prev: the new leader's own copy held
 * it exactly up to position end when it won) and this copy has a mark
 * of that position (mirror_marks.h) with no segment deleted since. Then
 * state.json first says "not synced" (a crash half-way leaves a copy to
 * be rebuilt, never one claiming what it is not), the log is cut back at
 * the mark (store_truncate: later segments dropped, the tail cut, synced)
 * and the dcounts file to its length then, and the copy is the new
 * leader's state at its position start, from which it catches up. What
 * only the old lead had is gone before anything of the new one comes.
 * Not truncated in place, so a snapshot instead: a copy holding stream,
 * offsets or deduplication files with a key (mirror_side.c: they are cut
 * by offset, not by the log's position), one whose copy ended before `end` (the
 * new leader keeps no cuts of the previous lead), one without the mark.
 */
#include "cluster/mirror.h"
#include "cluster/mirror_marks.h"
#include "cluster/mirror_side.h"

#include "store/store.h"
#include "vhost/node.h"
#include "vhost/vhost.h"

#include <uthash.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The last count the leader sent for one message of one queue (DCNT),
 * while not 0: what the dcounts file means. */
struct dcount_key {
    uint64_t qid, id;
};

struct mcount {
    struct dcount_key k;
    uint32_t n;
    UT_hash_handle hh;
};
/* A deduplication journal this long holds no key (its 4-byte magic,
   vhost/dedup_log.c). */
#define DEDUP_EMPTY_MAX 4

/* A frame's position, the copy's LSN that covers it and the side
 * files' sync batch (mirror_side.h; 0: none). */
struct pend {
    uint64_t seq, lsn, ticket;
};

struct mirror {
    char *vhost;
    char *dir;    /* replicas/<hash> */
    char *logdir; /* replicas/<hash>/log */
    struct store_config scfg;
    struct store *store;
    struct mside *side;  /* streams, offsets, dedup journal (issue 14) */
    struct marks *marks; /* where the leader's cuts end in the log */
    uint64_t dclen;      /* bytes of the dcounts file */
    uint64_t truncated;  /* this open cut the copy back to this position */
    uint64_t epoch;
    uint64_t seq;   /* last position taken */
    uint64_t acked; /* last position durable */
    bool synced;
    /* the last RECS frame taken did not end its cut (the leader splits a
       cut into frames, only the last carries the cut's position): the
       log holds records past seq, which is no place to resume from */
    bool partial;
    uint64_t resume; /* the position this open took back, or 0 */
    uint64_t resume_lead;
    uint64_t lead;      /* the lead of the link (mirror_config) */
    uint64_t state_pos; /* write_state writes this position, unless 0 */
    struct pend *pend;  /* FIFO of positions waiting for the disk */
    size_t npend, cappend, head;
    /* the dcounts file: its counts by (queue, message), the entries it
       holds and those it held when last written whole (compaction) */
    struct mcount *counts;
    uint64_t dc_entries, dc_kept;
};

static void counts_clear(struct mirror *m);
static int counts_load(struct mirror *m, char *err, size_t errlen);

static char *
path_of(const char *a, const char *b)
{
    struct buf p;

    buf_init(&p);
    buf_printf(&p, "%s/%s", a, b);
    buf_put_u8(&p, 0);
    return (char *)p.data;
}

static int
mkdir_one(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return WR_ERR;
    }
    return WR_OK;
}

/* Removes the regular files of dir, then dir (one level: Warren makes no
 * subdirectory in a log). Missing is fine. */
static void
rm_log_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char *p;

        if (e->d_name[0] == '.')
            continue;
        p = path_of(dir, e->d_name);
        if (unlink(p) != 0)
            log_warn("mirror: cannot remove %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT)
        log_warn("mirror: cannot remove %s: %s", dir, strerror(errno));
}

static int
write_state(struct mirror *m, char *err, size_t errlen)
{
    json_t *doc = json_pack("{s:s, s:I, s:b}", "vhost", m->vhost, "epoch",
                            (json_int_t)m->epoch, "synced", m->synced);
    char *text, *path = path_of(m->dir, "state.json");
    int rc;

    if (m->state_pos > 0) {
        json_object_set_new(doc, "position",
                            json_integer((json_int_t)m->state_pos));
        json_object_set_new(doc, "lead", json_integer((json_int_t)m->lead));
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    rc = store_write_file_atomic(path, text, strlen(text), err, errlen);

    free(path);
    free(text);
    json_decref(doc);
    return rc;
}

/* The epoch, synced flag and resume position state.json holds (0,
 * false, 0 when absent). */
static int
read_state(struct mirror *m, uint64_t *epoch, bool *synced, uint64_t *pos,
           uint64_t *lead, char *err, size_t errlen)
{
    char *path = path_of(m->dir, "state.json");
    struct buf text;
    json_t *doc;
    json_int_t e = 0;
    int rc = WR_OK;

    *epoch = 0;
    *synced = false;
    *pos = 0;
    *lead = 0;
    buf_init(&text);
    if (store_read_file(path, &text, err, errlen) != WR_OK) {
        rc = errno == ENOENT ? WR_OK : WR_ERR;
    } else {
        doc = json_loadb((const char *)text.data, text.len, 0, NULL);
        if (!doc || json_unpack(doc, "{s:I}", "epoch", &e) != 0 || e < 0) {
            snprintf(err, errlen,
                     "%s: damaged; remove the directory %s to "
                     "have the copy rebuilt",
                     path, m->dir);
            rc = WR_ERR;
        } else {
            *epoch = (uint64_t)e;
            json_t *p = json_object_get(doc, "position"),
                   *l = json_object_get(doc, "lead");

            *synced = json_is_true(json_object_get(doc, "synced"));
            if (json_is_integer(p) && json_integer_value(p) > 0)
                *pos = (uint64_t)json_integer_value(p);
            if (json_is_integer(l) && json_integer_value(l) > 0)
                *lead = (uint64_t)json_integer_value(l);
        }
        json_decref(doc);
    }
    buf_fini(&text);
    free(path);
    return rc;
}

static int
open_log(struct mirror *m, char *err, size_t errlen)
{
    m->scfg.dir = m->logdir;
    /* the index a new leader serves from (store.h, "Hot index") */
    m->scfg.hot_index = true;
    if (store_open(&m->scfg, NULL, NULL, &m->store, err, errlen) != WR_OK)
        return WR_ERR;
    /* the side files live in the log's directory, as in the vhost's */
    m->side = mside_open(m->logdir, (int)m->scfg.fsync, m->scfg.wake,
                         m->scfg.wake_arg);
    return WR_OK;
}

static uint64_t
file_size(const char *dir, const char *name)
{
    char *path = path_of(dir, name);
    struct stat st;
    uint64_t n = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;

    free(path);
    return n;
}

/* Whether the copy's log directory holds the log only: stream logs,
 * tracked offsets and the deduplication journal (mirror_side.c) are cut
 * by their own offsets, not by the log's position, so a copy with any
 * of them is not truncated in place. */
static bool
log_only(const char *dir, char *why, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool ok = true;

    if (!d) {
        snprintf(why, n, "cannot list %s: %s", dir, strerror(errno));
        return false;
    }
    while (ok && (e = readdir(d)) != NULL) {
        const char *f = e->d_name;
        size_t len = strlen(f);

        /* a returning leader's own log brings its vhost's name file */
        if (f[0] == '.' || strcmp(f, "LOCK") == 0 ||
            strcmp(f, "vhost-name") == 0 || strncmp(f, "MANIFEST.", 9) == 0 ||
            (len == 20 && strcmp(f + 16, ".seg") == 0))
            continue;
        /* a snapshot writes the journal even with no key: its magic */
        if (strcmp(f, "dedup.journal") == 0 &&
            file_size(dir, f) <= DEDUP_EMPTY_MAX)
            continue;
        snprintf(why, n,
                 "it holds %s: stream logs, tracked offsets and the "
                 "deduplication journal are not truncated in place",
                 f);
        ok = false;
    }
    closedir(d);
    return ok;
}

/* The dcounts file back to its length at the mark (not synced, as it
 * never is). */
static int
cut_dcounts(struct mirror *m, uint64_t len, char *why, size_t n)
{
    char *path = path_of(m->dir, "dcounts");
    struct stat st;
    int rc = WR_OK;

    if (stat(path, &st) == 0 && (uint64_t)st.st_size > len &&
        truncate(path, (off_t)len) != 0) {
        snprintf(why, n, "cannot truncate %s: %s", path, strerror(errno));
        rc = WR_ERR;
    }
    free(path);
    return rc;
}

/* KIP-101 (see the top): the copy of epoch seen, closed, cut back to
 * where its lead ended on the new leader. WR_ERR (logged) when it
 * cannot be: the copy stays marked incomplete and gets a snapshot. */
static int
truncate_copy(struct mirror *m, const struct mirror_config *cfg, uint64_t seen)
{
    const struct repl_prev *p = &cfg->prev;
    uint64_t pos, dclen;
    char why[600];

    if (p->end == 0 || p->epoch != seen || cfg->lead == 0)
        return WR_ERR;
    if (!log_only(m->logdir, why, sizeof(why)) ||
        marks_find(m->dir, p->epoch, p->lead, p->end, &pos, &dclen, why,
                   sizeof(why)) != WR_OK ||
        store_truncate(m->logdir, pos, why, sizeof(why)) != WR_OK ||
        cut_dcounts(m, dclen, why, sizeof(why)) != WR_OK) {
        log_info("vhost '%s': the copy of epoch %llu is not truncated in "
                 "place (%s); the leader sends a snapshot",
                 m->vhost, (unsigned long long)seen, why);
        return WR_ERR;
    }
    log_info("vhost '%s': the copy of epoch %llu truncated in place at "
             "position %llu (where that lead ended on the new leader); it "
             "is position %llu of epoch %llu",
             m->vhost, (unsigned long long)seen, (unsigned long long)p->end,
             (unsigned long long)p->start, (unsigned long long)m->epoch);
    return WR_OK;
}

int
mirror_open(const struct mirror_config *cfg, uint64_t epoch,
            struct mirror **out, char *err, size_t errlen)
{
    struct mirror *m = xcalloc(1, sizeof(*m));
    char hash[65], *root = path_of(cfg->data_dir, "replicas"), *old;
    uint64_t seen, pos, lead;

    vhost_name_hash(cfg->vhost, hash);
    m->vhost = xstrdup(cfg->vhost);
    m->dir = path_of(root, hash);
    m->logdir = path_of(m->dir, "log");
    m->epoch = epoch;
    m->scfg.fsync = (enum store_fsync)cfg->fsync;
    m->scfg.fsync_interval_ms = cfg->fsync_interval_ms;
    m->scfg.segment_size = cfg->segment_size;
    m->scfg.wake = cfg->wake;
    m->scfg.wake_arg = cfg->wake_arg;
    m->lead = cfg->lead;
    old = path_of(m->dir, "log.old");
    rm_log_dir(old);
    free(old);
    if (mkdir_one(root, err, errlen) != WR_OK ||
        mkdir_one(m->dir, err, errlen) != WR_OK ||
        read_state(m, &seen, &m->synced, &pos, &lead, err, errlen) != WR_OK)
        goto fail;
    if (seen > epoch) {
        snprintf(err, errlen,
                 "vhost '%s': epoch %llu is older than epoch %llu this copy "
                 "already follows (a stale leader)",
                 cfg->vhost, (unsigned long long)epoch,
                 (unsigned long long)seen);
        goto fail;
    }
    if (seen < epoch) {
        bool was_synced = m->synced;

        /* fencing: from now on, leaders older than this one are refused;
           what the copy holds is an older leader's, complete for nothing
           unless it can be cut back to where the new leader took over */
        m->synced = false;
        if (write_state(m, err, errlen) != WR_OK)
            goto fail;
        if (was_synced && truncate_copy(m, cfg, seen) == WR_OK) {
            m->synced = true;
            m->seq = m->resume = cfg->prev.start;
            m->resume_lead = cfg->lead;
            m->truncated = cfg->prev.end;
            if (write_state(m, err, errlen) != WR_OK)
                goto fail;
        }
    } else if (pos > 0) {
        /* the position is good for this open only (see the top) */
        if (write_state(m, err, errlen) != WR_OK)
            goto fail;
        if (m->synced) {
            m->seq = m->resume = pos;
            m->resume_lead = lead;
        }
    }
    if (open_log(m, err, errlen) != WR_OK ||
        counts_load(m, err, errlen) != WR_OK)
        goto fail;
    m->marks = marks_open(m->dir);
    if (m->truncated) /* the old lead's marks name what is gone */
        marks_reset(m->marks);
    /* deletions planned by the open are logged before they are handed */
    marks_unlinks(m->marks, store_unlinks_planned(m->store));
    marks_write(m->marks, false);
    m->dclen = file_size(m->dir, "dcounts");
    free(root);
    *out = m;
    return WR_OK;
fail:
    free(root);
    mirror_close(m);
    return WR_ERR;
}

static void
mirror_free(struct mirror *m)
{
    counts_clear(m);
    free(m->pend);
    free(m->vhost);
    free(m->dir);
    free(m->logdir);
    marks_close(m->marks);
    free(m);
}

void
mirror_close(struct mirror *m)
{
    char err[512];
    bool resumable, side_ok;

    if (!m)
        return;
    resumable = m->store && m->synced && !m->partial && m->seq > 0;
    /* the side files (streams, offsets, dedup journal) must be durable
       too for the copy to claim its position */
    side_ok = mside_close(m->side);
    if (m->store && m->marks) {
        marks_unlinks(m->marks, store_unlinks_planned(m->store));
        marks_write(m->marks, true);
    }
    if (store_close(m->store) && side_ok && resumable) {
        m->state_pos = m->seq;
        if (write_state(m, err, sizeof(err)) != WR_OK)
            log_warn("mirror: vhost '%s': %s", m->vhost, err);
    }
    mirror_free(m);
}

struct store *
mirror_hand_over(struct mirror *m, uint64_t *end, uint64_t *lead, uint64_t *at)
{
    struct store *s = m->store;
    bool complete = m->store && m->synced && !m->partial && m->seq > 0;

    *end = *lead = *at = 0;
    if (s)
        *at = store_tap_cut(s);
    /* the side files are moved with the log; the copy's state.json
       goes with the copy (no position: it becomes the vhost's log) */
    complete = mside_close(m->side) && complete;
    if (s && m->marks) {
        marks_unlinks(m->marks, store_unlinks_planned(s));
        marks_write(m->marks, true);
    }
    if (s && !store_suspend(s)) {
        log_warn("mirror: vhost '%s': the copy's log is not all durable; "
                 "it is recovered instead",
                 m->vhost);
        store_close(s);
        s = NULL;
    }
    /* where the lead it copied ended exactly, as a clean close would have
       written it (KIP-101: the other copies of that lead are cut back to
       it): only for a whole cut with everything durable */
    if (s && complete) {
        *end = m->seq;
        *lead = m->lead;
    }
    mirror_free(m);
    return s;
}

/* The leader's own marks (server/replication.c) move with its log. */
static int
move_marks(const char *from, const char *to, char *err, size_t errlen)
{
    for (unsigned k = 0; k < 2; k++) {
        char name[16], *a, *b;
        int rc = 0;

        snprintf(name, sizeof(name), "marks.%u", k);
        a = path_of(from, name);
        b = path_of(to, name);
        if (rename(a, b) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", a, b,
                     strerror(errno));
            rc = -1;
        }
        free(a);
        free(b);
        if (rc)
            return WR_ERR;
    }
    return WR_OK;
}

int
mirror_copy_from_own(const struct mirror_own *o, char *err, size_t errlen)
{
    struct mirror m = {0};
    char *root = path_of(o->data_dir, "replicas"), *defs = NULL;
    int rc = WR_ERR;

    m.vhost = (char *)o->vhost;
    m.dir = mirror_copy_dir(o->data_dir, o->vhost);
    m.logdir = path_of(m.dir, "log");
    m.epoch = o->epoch;
    /* not synced until everything is in: a kill -9 half-way leaves a
       copy that gets a snapshot */
    if (mirror_remove(o->data_dir, o->vhost, err, errlen) != WR_OK ||
        mkdir_one(root, err, errlen) != WR_OK ||
        mkdir_one(m.dir, err, errlen) != WR_OK ||
        write_state(&m, err, errlen) != WR_OK ||
        o->move(m.logdir, o->arg, err, errlen) != WR_OK ||
        move_marks(m.logdir, m.dir, err, errlen) != WR_OK)
        goto out;
    defs = path_of(m.dir, "definitions.json");
    if (o->defs && store_write_file_atomic(defs, o->defs, strlen(o->defs), err,
                                           errlen) != WR_OK)
        goto out;
    if (store_sync_dir(m.dir) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", m.dir, strerror(errno));
        goto out;
    }
    m.synced = true;
    rc = write_state(&m, err, errlen);
out:
    free(defs);
    free(root);
    free(m.dir);
    free(m.logdir);
    return rc;
}

char *
mirror_copy_dir(const char *data_dir, const char *vhost)
{
    char hash[65], *root = path_of(data_dir, "replicas"), *dir;

    vhost_name_hash(vhost, hash);
    dir = path_of(root, hash);
    free(root);
    return dir;
}

int
mirror_copy_state(const char *data_dir, const char *vhost, uint64_t *epoch,
                  bool *synced, char *err, size_t errlen)
{
    struct mirror m = {0};
    uint64_t pos, lead;
    int rc;

    m.dir = mirror_copy_dir(data_dir, vhost);
    rc = read_state(&m, epoch, synced, &pos, &lead, err, errlen);
    free(m.dir);
    return rc;
}

int
mirror_copy_end(const char *data_dir, const char *vhost, uint64_t *pos,
                uint64_t *lead, char *err, size_t errlen)
{
    struct mirror m = {0};
    uint64_t epoch;
    bool synced;
    int rc;

    m.dir = mirror_copy_dir(data_dir, vhost);
    rc = read_state(&m, &epoch, &synced, pos, lead, err, errlen);
    free(m.dir);
    if (!synced)
        *pos = *lead = 0;
    return rc;
}

int
mirror_remove(const char *data_dir, const char *vhost, char *err, size_t errlen)
{
    char hash[65], *root = path_of(data_dir, "replicas"), *dir, *p;
    const char *files[] = {"state.json", "definitions.json", "dcounts",
                           "marks.0", "marks.1"};
    int rc = WR_OK;

    vhost_name_hash(vhost, hash);
    dir = path_of(root, hash);
    p = path_of(dir, "log");
    rm_log_dir(p);
    free(p);
    p = path_of(dir, "log.old");
    rm_log_dir(p);
    free(p);
    for (size_t i = 0; i < WR_ARRAY_LEN(files); i++) {
        p = path_of(dir, files[i]);
        unlink(p);
        free(p);
    }
    if (rmdir(dir) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", dir, strerror(errno));
        rc = WR_ERR;
    }
    free(dir);
    free(root);
    return rc;
}

/* SNAP: the copy restarts from nothing. */
static int
restart_copy(struct mirror *m, char *err, size_t errlen)
{
    char *old = path_of(m->dir, "log.old");
    int rc = WR_ERR;

    mside_close(m->side);
    m->side = NULL;
    store_close(m->store);
    m->store = NULL;
    marks_reset(m->marks);
    m->synced = false;
    m->partial = false;
    m->npend = m->head = 0;
    if (write_state(m, err, errlen) != WR_OK)
        goto out;
    if (rename(m->logdir, old) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot rename %s: %s", m->logdir,
                 strerror(errno));
        goto out;
    }
    if (store_sync_dir(m->dir) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", m->dir, strerror(errno));
        goto out;
    }
    rm_log_dir(old);
    rc = open_log(m, err, errlen);
out:
    free(old);
    return rc;
}

/* ---- delivery counts
 *
 * DCNT frames go to the end of <dir>/dcounts, not synced: a count is
 * kept for a failover, and one a crash of this node lost only lets a
 * message be delivered again. The file would only grow (every return
 * and every settled message of a quorum queue appends 20 bytes), so the
 * copy keeps its meaning in memory (the last count of each message,
 * while not 0) and, once the file holds more than DCOUNTS_SLACK times
 * the entries it held when last written whole (and at least
 * DCOUNTS_MIN), writes it again with the counts of the messages still
 * live in the copy's log only (atomically: a temporary file, fsync,
 * rename). Each rewrite costs the live counts and comes after at least
 * three times as many appends: O(1) per count, and the file stays below
 * DCOUNTS_SLACK times the live counts (or DCOUNTS_MIN). The counts of
 * messages that left without a count of 0 (a queue deleted, a transient
 * message never in the copy) go at the rewrite. A copy still taking its
 * snapshot is not rewritten: its counts come before its messages. */

#define DCOUNTS_SLACK 4
#define DCOUNTS_MIN   4096 /* entries (80 KiB) */

static void
counts_clear(struct mirror *m)
{
    struct mcount *c, *tmp;

    HASH_ITER(hh, m->counts, c, tmp)
    {
        HASH_DEL(m->counts, c);
        free(c);
    }
    m->dc_entries = m->dc_kept = 0;
}

/* Takes a run of counts (VH_DCOUNT_SIZE each) into the map. */
static void
counts_take(struct mirror *m, struct bytes run)
{
    struct cursor cur;
    struct dcount_key k;
    struct mcount *c;
    uint32_t n;

    cur_init(&cur, run.ptr, run.len);
    while (rd_u64(&cur, &k.qid) && rd_u64(&cur, &k.id) && rd_u32(&cur, &n)) {
        m->dc_entries++;
        HASH_FIND(hh, m->counts, &k, sizeof(k), c);
        if (!c && n == 0)
            continue;
        if (!c) {
            c = xcalloc(1, sizeof(*c));
            c->k = k;
            HASH_ADD(hh, m->counts, k, sizeof(c->k), c);
        }
        if (n > 0) {
            c->n = n;
        } else {
            HASH_DEL(m->counts, c);
            free(c);
        }
    }
}

/* Writes the dcounts file again with the counts of messages live in the
 * copy's log (see above). */
static int
counts_compact(struct mirror *m, char *err, size_t errlen)
{
    char *path = path_of(m->dir, "dcounts");
    struct mcount *c, *tmp;
    struct buf out;
    int rc;

    buf_init(&out);
    HASH_ITER(hh, m->counts, c, tmp)
    {
        if (!store_is_live(m->store, c->k.qid, c->k.id)) {
            HASH_DEL(m->counts, c);
            free(c);
            continue;
        }
        buf_put_u64(&out, c->k.qid);
        buf_put_u64(&out, c->k.id);
        buf_put_u32(&out, c->n);
    }
    rc = store_write_file_atomic(path, out.data, out.len, err, errlen);
    if (rc == WR_OK) {
        m->dc_entries = m->dc_kept = out.len / VH_DCOUNT_SIZE;
        /* the marks' dcounts lengths name the file before the rewrite: a
           truncation to one of them would cut the wrong counts, so none
           is usable any more (a later divergence gets a snapshot) */
        m->dclen = out.len;
        marks_reset(m->marks);
    }
    buf_fini(&out);
    free(path);
    return rc;
}

static bool
counts_due(const struct mirror *m)
{
    return m->synced && m->dc_entries > DCOUNTS_MIN &&
           m->dc_entries > DCOUNTS_SLACK * m->dc_kept;
}

/* The counts of the dcounts file in dir (none when it does not exist). */
static int
copy_dcounts_at(const char *dir, struct buf *out)
{
    char *path = path_of(dir, "dcounts");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t chunk[65536];
    ssize_t n;

    free(path);
    if (fd < 0)
        return errno == ENOENT ? WR_OK : WR_ERR;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(out, chunk, (size_t)n);
    close(fd);
    out->len -= out->len % VH_DCOUNT_SIZE; /* a torn last count */
    return n < 0 ? WR_ERR : WR_OK;
}

/* Reads the dcounts file into the map (mirror_open). */
static int
counts_load(struct mirror *m, char *err, size_t errlen)
{
    struct buf all;
    int rc;

    buf_init(&all);
    rc = copy_dcounts_at(m->dir, &all);
    if (rc != WR_OK)
        snprintf(err, errlen, "cannot read %s/dcounts: %s", m->dir,
                 strerror(errno));
    counts_take(m, buf_bytes(&all));
    /* a file of many stale entries (left by a version that never
       rewrote it) is rewritten at the next count */
    m->dc_kept = HASH_COUNT(m->counts);
    buf_fini(&all);
    return rc;
}

/* Appends a DCNT payload to <dir>/dcounts (truncate: a snapshot starts
 * it afresh), then compacts it when due. */
static int
take_dcounts(struct mirror *m, struct bytes payload, bool truncate, char *err,
             size_t errlen)
{
    char *path = path_of(m->dir, "dcounts");
    int fd, rc = WR_OK;

    if (payload.len % VH_DCOUNT_SIZE != 0) {
        snprintf(err, errlen, "garbage: delivery counts of %zu bytes",
                 payload.len);
        free(path);
        return WR_ERR;
    }
    fd = open(path,
              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
                  (truncate ? O_TRUNC : 0),
              0644);
    if (fd < 0 || (payload.len > 0 && write(fd, payload.ptr, payload.len) !=
                                          (ssize_t)payload.len)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = WR_ERR;
    } else {
        m->dclen = (truncate ? 0 : m->dclen) + payload.len;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    if (rc != WR_OK)
        return rc;
    if (truncate)
        counts_clear(m);
    counts_take(m, payload);
    return counts_due(m) ? counts_compact(m, err, errlen) : WR_OK;
}

int
mirror_copy_dcounts(const char *data_dir, const char *vhost, struct buf *out)
{
    char *dir = mirror_copy_dir(data_dir, vhost);
    int rc = copy_dcounts_at(dir, out);

    free(dir);
    return rc;
}

static int
take_defs(struct mirror *m, struct bytes payload, char *err, size_t errlen)
{
    json_t *doc = json_loadb((const char *)payload.ptr, payload.len, 0, NULL);
    char *path = path_of(m->dir, "definitions.json");
    int rc = WR_ERR;

    if (!json_is_object(doc))
        snprintf(err, errlen,
                 "garbage: definitions that are not a JSON "
                 "object");
    else
        rc = store_write_file_atomic(path, payload.ptr, payload.len, err,
                                     errlen);
    json_decref(doc);
    free(path);
    return rc;
}

/* Position seq is taken once the log's LSN lsn is durable. */
static void
pend_push(struct mirror *m, uint64_t seq, uint64_t lsn, uint64_t ticket)
{
    if (m->head > 0 && m->head == m->npend)
        m->head = m->npend = 0;
    if (m->npend == m->cappend) {
        m->cappend = m->cappend ? 2 * m->cappend : 64;
        m->pend = xrealloc(m->pend, m->cappend * sizeof(*m->pend));
    }
    m->pend[m->npend++] = (struct pend){seq, lsn, ticket};
}

int
mirror_frame(struct mirror *m, const struct repl_frame *f, char *err,
             size_t errlen)
{
    uint64_t lsn, ticket;

    if (f->epoch != m->epoch) {
        snprintf(err, errlen, "a frame of epoch %llu on a link of epoch %llu",
                 (unsigned long long)f->epoch, (unsigned long long)m->epoch);
        return WR_ERR;
    }
    if (f->kind != REPL_SNAP && f->seq < m->seq) {
        snprintf(err, errlen, "position %llu after %llu",
                 (unsigned long long)f->seq, (unsigned long long)m->seq);
        return WR_ERR;
    }
    switch (f->kind) {
    case REPL_SNAP:
        if (restart_copy(m, err, errlen) != WR_OK ||
            take_dcounts(m, bytes_of(NULL, 0), true, err, errlen) != WR_OK)
            return WR_ERR;
        m->acked = 0;
        break;
    case REPL_DCNT:
        if (take_dcounts(m, f->payload, false, err, errlen) != WR_OK)
            return WR_ERR;
        break;
    case REPL_DEFS:
        if (take_defs(m, f->payload, err, errlen) != WR_OK)
            return WR_ERR;
        break;
    case REPL_RECS:
        lsn = store_apply(m->store, f->payload, err, errlen);
        if (lsn == 0)
            return WR_ERR;
        pend_push(m, f->seq, lsn, 0);
        m->partial = f->seq == m->seq && f->payload.len > 0;
        break;
    case REPL_SIDE:
        /* a snapshot's streams may start anywhere; the live ones go on
           where they are */
        if (mside_apply(m->side, f->payload, m->synced, &ticket, err, errlen) !=
            WR_OK)
            return WR_ERR;
        lsn = store_apply(m->store, bytes_of(NULL, 0), err, errlen);
        if (lsn == 0)
            return WR_ERR;
        pend_push(m, f->seq, lsn, ticket);
        /* side frames come first in a cut: most do not end it */
        m->partial = f->seq == m->seq && f->payload.len > 0;
        break;
    case REPL_SYNCED:
        m->synced = true;
        if (write_state(m, err, errlen) != WR_OK)
            return WR_ERR;
        /* the position is taken like a PING's */
        __attribute__((fallthrough));
    default: /* PING: sent between cuts only */
        m->partial = false;
        lsn = store_apply(m->store, bytes_of(NULL, 0), err, errlen);
        if (lsn == 0)
            return WR_ERR;
        pend_push(m, f->seq, lsn, 0);
        break;
    }
    m->seq = f->seq;
    /* a cut ends here: where, for a truncation in place later */
    if (m->synced && !m->partial && f->kind != REPL_SNAP)
        marks_cut(m->marks, m->epoch, m->lead, m->seq, store_end_pos(m->store),
                  m->dclen);
    return WR_OK;
}

void
mirror_flush(struct mirror *m)
{
    /* a deletion is in the marks before the store thread can do it */
    marks_unlinks(m->marks, store_unlinks_planned(m->store));
    marks_write(m->marks, false);
    store_flush(m->store);
    mside_kick(m->side);
}

void
mirror_poll(struct mirror *m)
{
    uint64_t durable;

    store_poll(m->store, NULL, NULL);
    durable = store_durable_lsn(m->store);
    /* a position counts only once the snapshot is complete */
    while (m->head < m->npend && m->pend[m->head].lsn <= durable &&
           mside_durable(m->side, m->pend[m->head].ticket)) {
        if (m->synced)
            m->acked = m->pend[m->head].seq;
        m->head++;
    }
}

uint64_t
mirror_acked(const struct mirror *m)
{
    return m->acked;
}

void
mirror_get_info(const struct mirror *m, struct mirror_info *out)
{
    struct store_stats st;

    store_get_stats(m->store, &st);
    out->vhost = m->vhost;
    out->epoch = m->epoch;
    out->seq = m->seq;
    out->acked = m->acked;
    out->synced = m->synced;
    out->resume = m->resume;
    out->resume_lead = m->resume_lead;
    out->truncated = m->truncated;
    out->live_msgs = st.live_msgs;
}
