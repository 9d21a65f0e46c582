/*
 * replica.c: the vhost's side of replication (vhost.h, "replication").
 *
 * The leader ships its mirrors the records its log appends (the store's
 * tap, store/replica.c); a mirror that joins late or lost its place gets
 * a snapshot first: every live persistent message of the durable queues,
 * read back from the log, one record per message listing every queue
 * still holding it. Ready messages are found here; unacked deliveries
 * are held by the server's channels, which pass them in. Transient
 * messages (in memory, or paged out to the log with a transient record)
 * and non-durable queues are never shipped: they live on the leader only.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void
vhost_repl_tap(struct vhost *vh, struct buf *out)
{
    if (vh->store)
        store_tap(vh->store, out);
}

uint64_t
vhost_repl_cut(struct vhost *vh)
{
    return vh->store ? store_tap_cut(vh->store) : 0;
}

uint64_t
vhost_repl_end_pos(struct vhost *vh)
{
    return vh->store ? store_end_pos(vh->store) : 0;
}

uint64_t
vhost_repl_unlinks(const struct vhost *vh)
{
    return vh->unlinks_closed +
           (vh->store ? store_unlinks_planned(vh->store) : 0);
}

const char *
vhost_repl_dir(const struct vhost *vh)
{
    return vh->store ? vh->store_dir : NULL;
}

bool
vhost_entry_logged(const struct queue *q, struct qentry e,
                   struct vh_logged *out)
{
    if (!q->durable || !(e.id & QE_INSTORE))
        return false;
    /* in memory: only persistent messages have a record of this queue
       (a paged-out one is told apart when its record is read) */
    if (!(e.id & QE_PAGED) && !message_is_persistent(e.msg))
        return false;
    out->qid = q->qid;
    out->id = e.id & QE_ID_MASK;
    out->pos = (e.id & QE_PAGED) ? e.pos : e.msg->store_pos;
    return true;
}

static int
cmp_logged(const void *a, const void *b)
{
    const struct vh_logged *x = a, *y = b;

    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->qid < y->qid ? -1 : x->qid > y->qid;
}

/* Every ready logged pair of the durable queues, then extra. */
static struct vh_logged *
collect(struct vhost *vh, const struct vh_logged *extra, size_t n,
        size_t *count)
{
    size_t cap = n + 16, k = 0;
    struct vh_logged *v = xmalloc(cap * sizeof(*v));
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        for (size_t i = 0; q->durable && i < q->ready.n; i++) {
            struct qentry e =
                *(struct qentry *)ring_at(&q->ready, sizeof(e), i);

            if (k == cap) {
                cap *= 2;
                v = xrealloc(v, cap * sizeof(*v));
            }
            if (vhost_entry_logged(q, e, &v[k]))
                k++;
        }
    }
    if (k + n > cap)
        v = xrealloc(v, (k + n) * sizeof(*v));
    if (n)
        memcpy(v + k, extra, n * sizeof(*v));
    *count = k + n;
    return v;
}

struct vh_logged *
vhost_repl_gather(struct vhost *vh, const struct vh_logged *extra, size_t n,
                  size_t *count)
{
    struct vh_logged *v = collect(vh, extra, n, count);
    size_t k = 1;

    /* one queue in publish order is sorted already: a million pairs take
       a pass instead of a sort */
    while (k < *count && cmp_logged(&v[k - 1], &v[k]) <= 0)
        k++;
    if (k < *count)
        qsort(v, *count, sizeof(*v), cmp_logged);
    return v;
}

void
vhost_repl_regather(struct vh_logged *v, size_t count, size_t i,
                    const struct vh_logged *now, size_t nnow)
{
    size_t k = 0;

    /* both sorted by (id, qid): one merge walk */
    for (; i < count; i++) {
        while (k < nnow && cmp_logged(&now[k], &v[i]) < 0)
            k++;
        v[i].pos = k < nnow && cmp_logged(&now[k], &v[i]) == 0 ? now[k].pos : 0;
    }
}

int
vhost_repl_slice(struct vhost *vh, struct vh_logged *v, size_t count, size_t *i,
                 size_t budget, size_t max_msgs, struct buf *out, char *err,
                 size_t errlen)
{
    size_t start = out->len, cap = 0, msgs = 0;
    uint64_t *qids = NULL;
    struct bytes meta, body;
    int rc = WR_OK;

    while (*i < count && out->len - start < budget && msgs++ < max_msgs &&
           rc == WR_OK) {
        size_t j = *i, at = *i;
        uint32_t nq = 0;

        /* the queues still holding it (pairs acked since: position 0),
           and a position that holds its record */
        for (; j < count && v[j].id == v[*i].id; j++) {
            if (v[j].pos == 0)
                continue;
            if (nq == cap) {
                cap = cap ? 2 * cap : 16;
                qids = xrealloc(qids, cap * sizeof(*qids));
            }
            if (nq == 0 || qids[nq - 1] != v[j].qid)
                qids[nq++] = v[j].qid;
            at = j;
        }
        if (nq > 0) {
            rc = store_read_msg_live(vh->store, v[at].pos, &vh->scratch, &meta,
                                     &body);
            if (rc == WR_ERR)
                snprintf(err, errlen,
                         "vhost '%s': message %llu cannot be read from the "
                         "log",
                         vh->name, (unsigned long long)v[at].id);
            else if (rc == WR_OK && persist__record_persistent(meta))
                store_snap_msg(out, v[at].id, qids, nq, meta, body);
        }
        if (rc == WR_OK)
            *i = j; /* on WR_AGAIN *i stays: read again after regather */
    }
    free(qids);
    return rc;
}

/*
 * A mirror becomes the vhost's leader: what this node held of the vhost
 * (a log and objects from when it led it before, older than the copy) is
 * dropped, and the copy's log directory takes its place in one rename
 * (vhostdir__adopt). The vhost must not be served. The caller imports
 * the copy's definitions next, then serves the vhost (node_vhost_serve
 * goes on with the hot log, or recovers the log into the new queues).
 *
 * A complete copy whose log directory is gone was moved by a take-over
 * that a crash cut short (a copy is never complete without one): the
 * vhost's directory holds it already, and stays.
 */
int
node_vhost_adopt_log(struct node *n, struct vhost *vh, const char *from,
                     struct store *hot, char *err, size_t errlen)
{
    struct queue *q, *tmp;
    struct exchange *x, *next;
    struct stat st;

    WR_ASSERT(!vh->serving);
    if (!n->opts.data_dir) {
        snprintf(err, errlen, "no data directory");
        store_close(hot);
        return WR_ERR;
    }
    /* close the old log first: the teardown must not append to it */
    vhost__close_store(vh);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        vhost_queue_delete(vh, q);
    }
    for (x = xreg_first(vh->xr); x; x = next) {
        next = xreg_next(vh->xr, x);
        if (defs__exchange_is_exported(x))
            vhost__exchange_delete(vh, x);
    }
    if (stat(from, &st) != 0 && errno == ENOENT && !hot) {
        log_warn("vhost '%s': %s is gone: a take-over cut short moved it "
                 "to the vhost's directory already",
                 vh->name, from);
        return WR_OK;
    }
    /* the open log's files move under it: it writes nothing meanwhile
       (store_suspend), and goes on in the new directory when served */
    if (vhostdir__adopt(n->opts.data_dir, vh->name, from, err, errlen) !=
        WR_OK) {
        store_close(hot);
        return WR_ERR;
    }
    vh->adopted = hot;
    return WR_OK;
}

/*
 * The node led the vhost before and another node leads it now: its own
 * log goes to directory to (a copy of the lead it ended, server/
 * replication.c), and what it held of the vhost (queues, exchanges) is
 * dropped as node_vhost_adopt_log drops it. The vhost must not be served.
 */
/* The directory's parent, synced after a rename in or out of it. */
static int
sync_parent(const char *path)
{
    char *p = xstrdup(path), *slash = strrchr(p, '/');
    int rc;

    if (slash)
        *slash = '\0';
    rc = store_sync_dir(slash ? p : ".");
    free(p);
    return rc;
}

/* The vhost's whole directory becomes to, in one rename: a kill -9 leaves
 * it in one place or the other, never half moved (the next start makes
 * the vhost's directory again, empty). */
static int
move_dir(const char *dir, const char *to, char *err, size_t errlen)
{
    if (rename(dir, to) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", dir, to,
                 strerror(errno));
        return WR_ERR;
    }
    if (sync_parent(to) != 0 || sync_parent(dir) != 0) {
        snprintf(err, errlen, "cannot fsync the directories of %s and %s: %s",
                 dir, to, strerror(errno));
        return WR_ERR;
    }
    return WR_OK;
}

int
node_vhost_release_log(struct node *n, struct vhost *vh, const char *to,
                       char *err, size_t errlen)
{
    struct queue *q, *tmp;
    struct exchange *x, *next;
    char *dir;
    int rc;

    WR_ASSERT(!vh->serving);
    if (!n->opts.data_dir || !vh->store_dir) {
        snprintf(err, errlen, "no log open");
        return WR_ERR;
    }
    dir = xstrdup(vh->store_dir);
    /* close the log first: the teardown must not append to it */
    vhost__close_store(vh);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        vhost_queue_delete(vh, q);
    }
    for (x = xreg_first(vh->xr); x; x = next) {
        next = xreg_next(vh->xr, x);
        if (defs__exchange_is_exported(x))
            vhost__exchange_delete(vh, x);
    }
    rc = move_dir(dir, to, err, errlen);
    free(dir);
    return rc;
}

/* ---- delivery counts */

void
vhost_repl_dcount_tap(struct vhost *vh, struct buf *out)
{
    vh->dcount_tap = out;
}

void
vhost_repl_dcounts(struct vhost *vh, struct buf *out)
{
    struct queue *q, *tmp;
    struct dcount *d, *dtmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (!q->durable)
            continue;
        HASH_ITER(hh, q->dcounts, d, dtmp)
        {
            buf_put_u64(out, q->qid);
            buf_put_u64(out, d->id);
            buf_put_u32(out, d->n);
        }
    }
}

/* Sets (n > 0) or forgets (n = 0) q's count of message id. */
static void
dcount_set(struct queue *q, uint64_t id, uint32_t n)
{
    struct dcount *d;

    HASH_FIND(hh, q->dcounts, &id, sizeof(id), d);
    if (!d && n == 0)
        return;
    if (!d) {
        d = xcalloc(1, sizeof(*d));
        d->id = id;
        HASH_ADD(hh, q->dcounts, id, sizeof(d->id), d);
    }
    if (n > 0) {
        d->n = n;
        return;
    }
    HASH_DEL(q->dcounts, d);
    free(d);
}

size_t
vhost_repl_dcounts_apply(struct vhost *vh, struct bytes counts)
{
    struct cursor c;
    struct queue *q, *tmp;
    size_t held = 0;
    uint64_t qid, id;
    uint32_t n;

    cur_init(&c, counts.ptr, counts.len);
    while (rd_u64(&c, &qid) && rd_u64(&c, &id) && rd_u32(&c, &n)) {
        HASH_FIND(qid_hh, vh->by_qid, &qid, sizeof(qid), q);
        if (q && q->quorum)
            dcount_set(q, id & QE_ID_MASK, n);
    }
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        held += HASH_COUNT(q->dcounts);
    }
    return held;
}
