/*
 * persist.c: what the vhost keeps on disk and how it comes back.
 *
 * Two things survive a restart:
 *
 *  - durable definitions (vhosts, durable exchanges and queues, bindings
 *    between durable objects): <data_dir>/definitions.json in RabbitMQ's
 *    definitions format, rewritten atomically (temp file, fsync, rename,
 *    fsync of the directory) at the end of a loop iteration in which one
 *    changed, before that iteration's replies leave;
 *  - persistent messages in durable queues: one record per message in
 *    the vhost's log (store/), whatever the number of queues it entered,
 *    then ack records as queues let it go. The publisher's confirm waits
 *    until the log is durable past the record (group commit).
 *
 * Recovery (node_boot): definitions first, then each vhost's log, whose
 * live messages come back as paged entries (position only, marked
 * redelivered) in id order, so a queue holds 16 bytes per recovered
 * message until its turn comes and the body is read back.
 *
 * A message record's meta is
 *   u8 version (1) | u8 flags (bit 0: publish time present)
 *   [u64 publish time, wall ms] | u8 exchange len | exchange
 *   | u8 routing key len | routing key | content properties as received
 * Bump the version and keep reading the old one to change it.
 *
 * Compaction moves records; store_poll reports (queue, id, new position).
 * A ready entry is found by binary search and updated; a message that is
 * out for delivery (unacked) is remembered in vhost.moves until it is
 * requeued or settled, so a requeued message never points at a deleted
 * segment.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_VERSION 1
#define META_HAS_TS  1

/* ---- meta */

void
persist__meta_encode(const struct message *m, uint64_t wall_ms, struct buf *out)
{
    bool ts = m->ttl_ms >= 0 || wall_ms != 0;

    buf_reset(out);
    buf_put_u8(out, META_VERSION);
    buf_put_u8(out, ts ? META_HAS_TS : 0);
    if (ts)
        buf_put_u64(out, wall_ms);
    buf_put_shortstr(out, message_exchange(m));
    buf_put_shortstr(out, message_rk(m));
    buf_append(out, message_props(m).ptr, m->props_len);
}

/* The raw properties in a record's meta; false when the meta is not one
 * this version understands. */
static bool
meta_props(struct bytes meta, struct bytes *props)
{
    struct cursor c;
    uint8_t version, flags;
    uint64_t wall;
    struct bytes ex, rk;

    cur_init(&c, meta.ptr, meta.len);
    if (!rd_u8(&c, &version) || version != META_VERSION || !rd_u8(&c, &flags) ||
        ((flags & META_HAS_TS) && !rd_u64(&c, &wall)) ||
        !rd_shortstr(&c, &ex) || !rd_shortstr(&c, &rk))
        return false;
    *props = bytes_of(c.p, c.left);
    return true;
}

bool
persist__record_persistent(struct bytes meta)
{
    struct bytes props;
    struct amqp_props p;

    return meta_props(meta, &props) &&
           amqp_props_read(props, &p, NULL) == AMQP_DECODE_OK && p.persistent;
}

void
vhost__record_priority(struct vhost *vh, uint64_t pos, uint8_t *prio)
{
    struct bytes meta, body, props;
    struct amqp_props p;

    *prio = 0;
    if (vh->store &&
        store_read_msg(vh->store, pos, &vh->scratch, &meta, &body) == WR_OK &&
        meta_props(meta, &props) &&
        amqp_props_read(props, &p, NULL) == AMQP_DECODE_OK)
        *prio = p.priority;
}

/* Rebuilds a message from its record. Returns NULL when the meta is not
 * one this version understands. */
struct message *
persist__message_from_record(struct bytes meta, struct bytes body,
                             uint64_t now_us, uint64_t wall_now_ms)
{
    struct cursor c;
    uint8_t version, flags;
    uint64_t wall = 0;
    struct bytes ex, rk;
    struct message *m;

    cur_init(&c, meta.ptr, meta.len);
    if (!rd_u8(&c, &version) || version != META_VERSION || !rd_u8(&c, &flags) ||
        ((flags & META_HAS_TS) && !rd_u64(&c, &wall)) ||
        !rd_shortstr(&c, &ex) || !rd_shortstr(&c, &rk))
        return NULL;
    m = message_new(ex, rk, bytes_of(c.p, c.left), body.len);
    if (body.len)
        m = message_append(m, body);
    /* Publish time in node time, as far back as the wall clock says. */
    m->ts_us = now_us;
    if (wall && wall < wall_now_ms)
        m->ts_us -= WR_MIN(now_us, (wall_now_ms - wall) * 1000u);
    return m;
}

/* ---- recovery */

struct recover_ctx {
    struct vhost *vh;
    uint64_t *unknown; /* qids with messages but no queue */
    size_t nunknown, capunknown;
    uint64_t count;
};

static void
recovered_message(void *arg, const struct store_recovered *r)
{
    struct recover_ctx *rc = arg;
    struct queue *q;
    struct qentry e;

    if (delay__recovered(rc->vh, r->qid, r->id, r->pos))
        return;
    HASH_FIND(qid_hh, rc->vh->by_qid, &r->qid, sizeof(r->qid), q);
    if (!q) {
        for (size_t i = 0; i < rc->nunknown; i++) {
            if (rc->unknown[i] == r->qid)
                return;
        }
        if (rc->nunknown == rc->capunknown) {
            rc->capunknown = rc->capunknown ? rc->capunknown * 2 : 8;
            rc->unknown =
                xrealloc(rc->unknown, rc->capunknown * sizeof(uint64_t));
        }
        rc->unknown[rc->nunknown++] = r->qid;
        return;
    }
    /* Recovered messages may have been delivered before: redelivered. */
    e.id = r->id | QE_PAGED | QE_INSTORE | QE_REDELIVERED;
    e.pos = r->pos;
    qd_push_back(&q->ready, e);
    q->ready_paged++;
    q->ready_bytes += r->body_len;
    q->logged = true;
    rc->count++;
}

/* ---- deduplication caches after a restart */

/* The node's clock in ms, the caches' clock. At boot, before the loop
 * first runs, it is not set yet; it follows libev's ev_now(), which is
 * the wall clock, so the wall clock stands in for it. */
static uint64_t
node_ms(const struct vhost *vh)
{
    uint64_t us = node_now(vh->node);

    return us ? us / 1000 : wr_wall_ms();
}

/* Does any exchange of vh deduplicate? */
static bool
any_dedup_exchange(struct vhost *vh)
{
    for (struct exchange *x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        if (((struct xinfo *)x->user)->dedup)
            return true;
    }
    return false;
}

/*
 * Puts the key of the message whose record is at pos back into the cache
 * of q and of the exchange it was published to, as if it had been
 * published when the record says (now, when the record has no time: the
 * window then runs a little longer than asked).
 */
static void
rebuild_dedup_one(struct vhost *vh, struct queue *q, uint64_t pos,
                  bool exchanges, uint64_t now_ms, uint64_t wall_now)
{
    struct bytes meta, body, props, ex, rk;
    struct amqp_basic_props p;
    struct dedup_key k;
    struct exchange *x;
    struct cursor c;
    uint8_t version, flags;
    uint64_t wall = 0, at = now_ms;

    if (store_read_msg(vh->store, pos, &vh->scratch, &meta, &body) != WR_OK)
        return;
    cur_init(&c, meta.ptr, meta.len);
    if (!rd_u8(&c, &version) || version != META_VERSION || !rd_u8(&c, &flags) ||
        ((flags & META_HAS_TS) && !rd_u64(&c, &wall)) ||
        !rd_shortstr(&c, &ex) || !rd_shortstr(&c, &rk))
        return;
    props = bytes_of(c.p, c.left);
    if (amqp_basic_props_decode(props.ptr, props.len, &p, NULL) !=
        AMQP_DECODE_OK)
        return;
    if (!(p.flags & AMQP_BASIC_HEADERS_FLAG))
        p.headers = BYTES_NULL;
    if (wall && wall < wall_now)
        at -= WR_MIN(at, wall_now - wall);
    if (q->dedup && dedup_key(q->dedup, p.headers, props, &k))
        dedup_add_durable(q->dedup, &k, at);
    x = exchanges && ex.len ? xreg_find(vh->xr, ex) : NULL;
    if (x && ((struct xinfo *)x->user)->dedup &&
        dedup_key(((struct xinfo *)x->user)->dedup, p.headers, props, &k))
        dedup_add_durable(((struct xinfo *)x->user)->dedup, &k, at);
}

/*
 * The deduplication caches after recovery: rebuilt from the persistent
 * messages that came back, each queue's from its own, each exchange's
 * from those published to it. A key whose message had already left every
 * queue before the restart is not rebuilt (README, "Deduplication").
 * Reads one record per recovered message of a deduplicating queue (of
 * every queue when an exchange deduplicates).
 */
static void
rebuild_dedup(struct vhost *vh)
{
    bool exchanges = any_dedup_exchange(vh);
    uint64_t now = node_ms(vh), wall_now = wr_wall_ms();
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (!q->dedup && !exchanges)
            continue;
        for (size_t i = 0; i < q->ready.n; i++) {
            const struct qentry *e = qd_at(&q->ready, i);
            if (e->id & QE_PAGED)
                rebuild_dedup_one(vh, q, e->pos, exchanges, now, wall_now);
        }
    }
}

/* ---- the deduplication snapshot of a clean stop
 *
 * At a clean stop every cache is written to <vhost dir>/dedup.snapshot:
 *   "WDD1" | per object: u8 'q' or 'x' | shortstr name | dedup_save's
 * and at the next start read back (into the objects that still have a
 * cache), then removed at once: a snapshot is never read twice, since
 * after a later crash it would bring back keys the caches had evicted
 * since. A crash leaves no snapshot; the caches then come from the
 * recovered messages (rebuild_dedup), which a snapshot makes needless.
 */
#define DEDUP_SNAPSHOT       "dedup.snapshot"
#define DEDUP_SNAPSHOT_MAGIC "WDD1"

static char *
snapshot_path(const struct vhost *vh)
{
    size_t n = strlen(vh->store_dir) + sizeof("/" DEDUP_SNAPSHOT);
    char *p = xmalloc(n);

    snprintf(p, n, "%s/" DEDUP_SNAPSHOT, vh->store_dir);
    return p;
}

static void
save_one(struct buf *b, char kind, struct bytes name, const struct dedup *d,
         uint64_t now, uint64_t wall)
{
    buf_put_u8(b, (uint8_t)kind);
    buf_put_shortstr(b, name);
    dedup_save(d, now, wall, b);
}

/* Writes the snapshot (nothing when no durable object deduplicates). */
static void
save_dedup(struct vhost *vh)
{
    uint64_t now = node_ms(vh), wall = wr_wall_ms();
    struct buf b;
    struct queue *q, *tmp;
    char *path, err[256];
    bool any = false;

    /* A clustered vhost this node no longer serves has caches of the
     * past: another node has served it since. */
    if (!vh->store || !vh->store_dir || !vh->serving)
        return;
    buf_init(&b);
    buf_append(&b, DEDUP_SNAPSHOT_MAGIC, 4);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (q->dedup && q->durable) {
            save_one(&b, 'q', bytes_of(q->name, q->name_len), q->dedup, now,
                     wall);
            any = true;
        }
    }
    for (struct exchange *x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        struct dedup *d = ((struct xinfo *)x->user)->dedup;
        if (d && x->durable) {
            save_one(&b, 'x', bytes_of(x->name, x->name_len), d, now, wall);
            any = true;
        }
    }
    path = snapshot_path(vh);
    if (any &&
        store_write_file_atomic(path, b.data, b.len, err, sizeof(err)) != WR_OK)
        log_warn("vhost '%s': deduplication caches not saved: %s", vh->name,
                 err);
    free(path);
    buf_fini(&b);
}

/* The cache a snapshot entry goes to, or NULL. */
static struct dedup *
snapshot_target(struct vhost *vh, uint8_t kind, struct bytes name)
{
    struct exchange *x;
    struct queue *q;

    if (kind == 'q') {
        q = vhost_queue_find(vh, name);
        return q ? q->dedup : NULL;
    }
    x = kind == 'x' ? xreg_find(vh->xr, name) : NULL;
    return x ? ((struct xinfo *)x->user)->dedup : NULL;
}

/* Reads the snapshot of the last clean stop, if any, and removes it.
 * Returns true when one was read whole. */
static bool
load_dedup(struct vhost *vh)
{
    uint64_t now = node_ms(vh), wall = wr_wall_ms();
    char *path = snapshot_path(vh), err[256];
    struct buf b;
    struct cursor c;
    struct bytes magic, name;
    uint8_t kind;
    bool loaded = false;

    buf_init(&b);
    if (access(path, F_OK) != 0 ||
        store_read_file(path, &b, err, sizeof(err)) != WR_OK)
        goto out;
    cur_init(&c, b.data, b.len);
    if (!rd_bytes(&c, 4, &magic) ||
        memcmp(magic.ptr, DEDUP_SNAPSHOT_MAGIC, 4) != 0)
        goto bad;
    while (c.left > 0) {
        struct dedup *d, *scratch = NULL;

        if (!rd_u8(&c, &kind) || !rd_shortstr(&c, &name))
            goto bad;
        d = snapshot_target(vh, kind, name);
        if (!d) /* gone, or no cache any more: read past it */
            d = scratch = dedup_new(1, -1, DEDUP_DEFAULT_HEADER);
        bool ok = dedup_load(d, &c, now, wall);
        dedup_free(scratch);
        if (!ok)
            goto bad;
    }
    loaded = true;
    goto done;
bad: /* a torn or foreign file: the log's messages still count */
    log_warn("vhost '%s': %s is damaged; deduplication caches rebuilt from "
             "the log only",
             vh->name, path);
done:
    /* Read once only (see above). */
    if (unlink(path) == 0)
        store_sync_dir(vh->store_dir);
    else
        log_syserr("vhost '%s': cannot remove %s; remove it before the "
                   "next start",
                   vh->name, path);
out:
    buf_fini(&b);
    free(path);
    return loaded;
}

static void
store_wake(void *arg)
{
    struct node *n = arg;

    if (n->opts.wake)
        n->opts.wake(n->opts.wake_arg);
}

/*
 * A mirror's copy taken over (node_vhost_adopt_log): its log goes on in
 * the vhost's directory and its hot index gives the queues their
 * messages, as a recovery would (store.h, "Hot index"). False when it
 * cannot go on (closed: the caller recovers the log instead).
 */
static bool
open_adopted(struct vhost *vh, const struct store_recover_cb *cb,
             struct recover_ctx *rc)
{
    struct store *s = vh->adopted;
    char err[512];

    vh->adopted = NULL;
    if (store_resume(s, vh->store_dir, store_wake, vh->node, err,
                     sizeof(err)) != WR_OK) {
        log_warn("vhost '%s': the copy's log cannot go on (%s); it is "
                 "recovered instead",
                 vh->name, err);
        store_close(s);
        return false;
    }
    vh->store = s;
    store_hot_report(s, cb, rc);
    return true;
}

int
vhost__open_store(struct vhost *vh, char *err, size_t errlen)
{
    struct node *n = vh->node;
    struct store_config cfg = {0};
    struct store_recover_cb cb = {recovered_message};
    struct recover_ctx rc = {.vh = vh};
    uint64_t t0 = wr_now_us();
    struct queue *q, *tmp;
    bool hot;

    if (!n->opts.data_dir || vh->store)
        return WR_OK;
    if (vhostdir__prepare(n->opts.data_dir, vh->name, &vh->store_dir, err,
                          errlen) != WR_OK)
        return WR_ERR;
    cfg.dir = vh->store_dir;
    cfg.fsync = (enum store_fsync)n->opts.fsync;
    cfg.fsync_interval_ms = n->opts.fsync_interval_ms;
    cfg.segment_size = n->opts.segment_size;
    cfg.repair = n->opts.repair;
    cfg.wake = store_wake;
    cfg.wake_arg = n;
    hot = vh->adopted && open_adopted(vh, &cb, &rc);
    if (!hot && store_open(&cfg, &cb, &rc, &vh->store, err, errlen) != WR_OK) {
        free(rc.unknown);
        return WR_ERR;
    }
    /* Messages whose queue is gone from the definitions (deleted just
     * before a crash): let the log reclaim them. */
    for (size_t i = 0; i < rc.nunknown; i++)
        store_append_queue_delete(vh->store, rc.unknown[i]);
    free(rc.unknown);
    delay__recovery_done(vh);
    /* After a clean stop the snapshot has every key the caches held; after
     * a crash the log's messages bring back theirs. */
    if (!load_dedup(vh)) {
        /* the journal first: its keys in their order, then those of
         * messages it may have missed */
        vhost__dedup_log_load(vh, node_ms(vh));
        rebuild_dedup(vh);
    }
    vhost__dedup_log_open(vh, node_ms(vh));
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (q->max_priority && q->ready.n)
            queue__sort_recovered(q);
        if (q->ready.n && q->nconsumers)
            queue_schedule(q);
    }
    vh->durable_lsn = store_durable_lsn(vh->store);
    stream__open_all(vh);
    if (hot)
        log_info("vhost '%s': %llu messages taken from the copy's hot "
                 "index in %.3f s",
                 vh->name, (unsigned long long)rc.count,
                 (double)(wr_now_us() - t0) / 1e6);
    else if (rc.count)
        log_info("vhost '%s': recovered %llu messages in %.3f s", vh->name,
                 (unsigned long long)rc.count,
                 (double)(wr_now_us() - t0) / 1e6);
    return WR_OK;
}

void
vhost__close_store(struct vhost *vh)
{
    struct vmove *mv, *tmp;

    save_dedup(vh);
    vhost__dedup_log_close(vh, node_ms(vh));
    stream__close_all(vh); /* stops the sync thread */
    if (vh->store) {
        vh->unlinks_closed += store_unlinks_planned(vh->store);
        store_close(vh->store);
    }
    vh->store = NULL;
    store_close(vh->adopted); /* taken over, never served */
    vh->adopted = NULL;
    free(vh->store_dir);
    vh->store_dir = NULL;
    HASH_ITER(hh, vh->moves, mv, tmp)
    {
        HASH_DEL(vh->moves, mv);
        free(mv);
    }
}

/* ---- ids, publish, acks */

uint64_t
vhost__next_id(struct vhost *vh)
{
    return vh->store ? store_alloc_id(vh->store) : ++vh->next_id;
}

/*
 * Logs m once for every durable queue in qs (m persistent). Returns the
 * LSN, or 0 when nothing was logged; sets *refused when the log failed.
 */
uint64_t
vhost__log_message(struct vhost *vh, struct message *m, struct queue **qs,
                   size_t n, bool *refused)
{
    uint64_t qids[64], *ids = qids, lsn, id, pos;
    struct store_msg_in in;
    size_t k = 0;

    *refused = false;
    if (!vh->store || !message_is_persistent(m))
        return 0;
    if (n > WR_ARRAY_LEN(qids))
        ids = xmalloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        if (qs[i]->durable)
            ids[k++] = qs[i]->qid;
    }
    lsn = 0;
    if (k > 0) {
        persist__meta_encode(m, m->ttl_ms >= 0 ? wr_wall_ms() : 0,
                             &vh->scratch);
        in = (struct store_msg_in){ids, k, buf_bytes(&vh->scratch),
                                   message_body(m), false};
        lsn = store_append_msg(vh->store, &in, &id, &pos);
        if (lsn == 0) {
            *refused = true;
        } else {
            m->id = id;
            m->store_pos = pos;
            m->flags |= MSG_LOGGED;
        }
    }
    if (ids != qids)
        free(ids);
    return lsn;
}

/*
 * Memory budget reached: publishes m into qs by writing it to the log and
 * queueing only positions. Persistent messages for durable queues get
 * their normal record; the other queues share one transient record
 * (never recovered). Returns the persistent record's LSN (0 if none).
 */
uint64_t
vhost__publish_paged(struct vhost *vh, struct message *m, struct queue **qs,
                     size_t n, bool *refused, bool *rejected)
{
    uint64_t *dq = xmalloc(2 * n * sizeof(uint64_t)), *tq = dq + n;
    uint64_t pid = 0, ppos = 0, tid = 0, tpos = 0, lsn = 0;
    bool persistent = message_is_persistent(m);
    size_t kd = 0, kt = 0;
    struct store_msg_in in;

    *refused = false;
    for (size_t i = 0; i < n; i++) {
        if (persistent && qs[i]->durable)
            dq[kd++] = qs[i]->qid;
        else
            tq[kt++] = qs[i]->qid;
    }
    persist__meta_encode(m, wr_wall_ms(), &vh->scratch);
    if (kd) {
        in = (struct store_msg_in){dq, kd, buf_bytes(&vh->scratch),
                                   message_body(m), false};
        lsn = store_append_msg(vh->store, &in, &pid, &ppos);
        if (!lsn) {
            *refused = true;
            free(dq);
            return 0;
        }
    }
    if (kt) {
        in = (struct store_msg_in){tq, kt, buf_bytes(&vh->scratch),
                                   message_body(m), true};
        if (!store_append_msg(vh->store, &in, &tid, &tpos))
            tid = 0; /* the log failed: keep those in memory */
    }
    for (size_t i = 0; i < n; i++) {
        bool ok;

        if (persistent && qs[i]->durable)
            ok = queue__push_paged(qs[i], pid, ppos, m);
        else if (tid)
            ok = queue__push_paged(qs[i], tid, tpos, m);
        else
            ok = queue_push(qs[i], m);
        if (!ok)
            *rejected = true;
    }
    free(dq);
    return lsn;
}

void
vhost__log_ack(struct vhost *vh, struct queue *q, uint64_t id)
{
    if (vh->store)
        store_append_ack(vh->store, q->qid, id & QE_ID_MASK);
}

void
vhost__log_queue_delete(struct vhost *vh, struct queue *q)
{
    if (vh->store && (q->logged || q->durable))
        store_append_queue_delete(vh->store, q->qid);
}

/* Reads a paged entry's message back into memory. Returns WR_ERR (and
 * logs) when the record cannot be read: the entry is then useless. */
int
vhost__page_in(struct vhost *vh, struct qentry *e)
{
    struct bytes meta, body;
    struct message *m;
    struct node *n = vh->node;
    struct amqp_props p;

    if (!(e->id & QE_PAGED))
        return WR_OK;
    if (!vh->store ||
        store_read_msg(vh->store, e->pos, &vh->scratch, &meta, &body) != WR_OK)
        return WR_ERR;
    m = persist__message_from_record(meta, body, n->now_us, wr_wall_ms());
    if (!m) {
        log_err("vhost '%s': message %llu: unreadable metadata", vh->name,
                (unsigned long long)(e->id & QE_ID_MASK));
        return WR_ERR;
    }
    m->id = e->id & QE_ID_MASK;
    m->store_pos = e->pos;
    m->flags |= MSG_LOGGED | MSG_PERSISTENT;
    if (amqp_props_read(message_props(m), &p, NULL) == AMQP_DECODE_OK)
        message_set_props(m, &p);
    e->msg = m;
    e->id &= ~QE_PAGED;
    return WR_OK;
}

/* ---- store events */

static struct qentry *
find_ready(struct queue *q, uint64_t id)
{
    size_t lo = 0, hi = q->ready.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct qentry *e = qd_at(&q->ready, mid);
        uint64_t eid = e->id & QE_ID_MASK;

        if (eid < id)
            lo = mid + 1;
        else if (eid > id)
            hi = mid;
        else
            return e;
    }
    return NULL;
}

static void
ev_moved(void *ctx, uint64_t qid, uint64_t id, uint64_t new_pos)
{
    struct vhost *vh = ctx;
    struct queue *q;
    struct qentry *e;
    struct vmove *mv;

    if (delay__moved(vh, qid, id, new_pos))
        return;
    HASH_FIND(qid_hh, vh->by_qid, &qid, sizeof(qid), q);
    e = q ? find_ready(q, id) : NULL;
    if (e) {
        if (e->id & QE_PAGED)
            e->pos = new_pos;
        else
            e->msg->store_pos = new_pos;
        return;
    }
    /* Out for delivery (or gone): remember it for a requeue. */
    HASH_FIND(hh, vh->moves, &id, sizeof(id), mv);
    if (!mv) {
        mv = xmalloc(sizeof(*mv));
        mv->id = id;
        HASH_ADD(hh, vh->moves, id, sizeof(mv->id), mv);
    }
    mv->pos = new_pos;
}

/* A delivery came back (requeue) or was settled: apply or forget a move
 * that happened while it was out. */
void
vhost__settle_moves(struct vhost *vh, struct message *m, bool requeued)
{
    struct vmove *mv;
    uint64_t id = m->id;

    if (!vh->moves)
        return;
    HASH_FIND(hh, vh->moves, &id, sizeof(id), mv);
    if (!mv)
        return;
    if (requeued)
        m->store_pos = mv->pos;
    HASH_DEL(vh->moves, mv);
    free(mv);
}

static void
ev_durable(void *ctx, uint64_t lsn)
{
    struct vhost *vh = ctx;

    vh->durable_lsn = lsn;
    if (vh->node->opts.durable)
        vh->node->opts.durable(vh->node->opts.durable_arg, vh);
}

static void
ev_failed(void *ctx, const char *why)
{
    struct vhost *vh = ctx;
    struct queue *q, *tmp;
    uint32_t n = 0;

    log_err("vhost '%s': the message log failed: %s. Persistent publishes "
            "are refused (publishers get basic.nack) until the broker is "
            "restarted; fix the device, then restart.",
            vh->name, why);
    vh->store_failed = true;
    /* Their publishers get basic.nack: they must be in no queue. */
    vh->lost_from = store_durable_next_id(vh->store);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        n += queue__drop_lost(q, vh->lost_from);
    }
    delay__lost(vh, vh->lost_from);
    if (n)
        log_err("vhost '%s': %u queued messages whose records never "
                "reached the disk were taken out of their queues",
                vh->name, n);
    if (vh->node->opts.durable)
        vh->node->opts.durable(vh->node->opts.durable_arg, vh);
}

const char *
vhost_log_refusal(const struct vhost *vh)
{
    if (vh->store_failed || (vh->store && store_error(vh->store)))
        return "its message log has failed";
    if (vh->store && store_no_space(vh->store))
        return "the disk is full";
    return NULL;
}

bool
node_disk_full(const struct node *n)
{
    const struct vhost *vh, *tmp;

    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (vh->store && store_no_space(vh->store))
            return true;
    }
    return false;
}

void
node_log_stats(const struct node *n, struct node_log_stats *out)
{
    const struct vhost *vh, *tmp;
    struct store_stats st;

    memset(out, 0, sizeof(*out));
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (!vh->store)
            continue;
        store_get_stats(vh->store, &st);
        out->fsyncs += st.fsyncs;
        out->bytes_written += st.bytes_written;
        out->records_written += st.records_written;
        out->segments += st.segments;
        out->disk_bytes += st.disk_bytes;
        out->live_msgs += st.live_msgs;
    }
}

void
node_log_backlog(const struct node *n, uint64_t *pending, uint64_t *memory)
{
    const struct vhost *vh, *tmp;

    *pending = *memory = 0;
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (vh->store) {
            *pending += store_pending_bytes(vh->store);
            *memory += store_buffer_bytes(vh->store);
        }
    }
}

uint64_t
node_log_appended(const struct node *n)
{
    (void)n;
    return store_appended_total();
}

void
node_poll(struct node *n)
{
    static const struct store_events ev = {ev_durable, ev_moved, ev_failed};
    struct vhost *vh, *tmp;

    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (vh->store)
            store_poll(vh->store, &ev, vh);
        stream__poll(vh);
    }
}

/* ---- definitions file */

static char *
defs_path(const struct node *n)
{
    struct buf b;

    buf_init(&b);
    buf_printf(&b, "%s/definitions.json", n->opts.data_dir);
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

void
node_defs_changed(struct node *n)
{
    n->defs_dirty = true;
    n->defs_gen++;
}

uint64_t
node_defs_generation(const struct node *n)
{
    return n->defs_gen;
}

static void
save_definitions(struct node *n)
{
    char err[512], *path = defs_path(n);
    json_t *doc = node_defs_export(n, NULL);
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);

    if (!text || store_write_file_atomic(path, text, strlen(text), err,
                                         sizeof(err)) != WR_OK) {
        /* retried once a second (a full disk may last), logged once */
        if (!n->defs_failing)
            log_err("cannot write the definitions file %s: %s (durable "
                    "exchanges, queues and bindings declared now may not "
                    "survive a restart); retrying every second",
                    path, text ? err : "out of memory");
        n->defs_failing = true;
        n->defs_retry_ms = wr_now_ms() + 1000;
    } else {
        if (n->defs_failing)
            log_warn("the definitions file %s is written again", path);
        n->defs_failing = false;
        n->defs_dirty = false;
    }
    free(text);
    json_decref(doc);
    free(path);
}

void
node_flush(struct node *n)
{
    struct vhost *vh, *tmp;

    if (n->defs_dirty && n->opts.data_dir && wr_now_ms() >= n->defs_retry_ms)
        save_definitions(n);
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (vh->store)
            store_flush(vh->store);
        vhost__dedup_log_flush(vh, node_ms(vh));
        stream__flush(vh); /* then hands both to the sync thread */
    }
}

int
node_boot(struct node *n, const char *default_vhost, char *err, size_t errlen)
{
    struct vhost *vh, *tmp;
    json_t *doc;
    json_error_t jerr;
    struct vherr verr;
    struct buf text;
    char *path;

    if (n->opts.data_dir) {
        path = defs_path(n);
        buf_init(&text);
        if (store_read_file(path, &text, err, errlen) == WR_OK) {
            doc = json_loadb((const char *)text.data, text.len, 0, &jerr);
            if (!doc) {
                snprintf(err, errlen,
                         "%s:%d: not valid JSON (%s); restore it from a "
                         "backup or move it away to start without the "
                         "durable definitions",
                         path, jerr.line, jerr.text);
                buf_fini(&text);
                free(path);
                return WR_ERR;
            }
            if (node_defs_import(n, doc, &verr) != WR_OK) {
                snprintf(err, errlen, "%s: %s", path, verr.text);
                json_decref(doc);
                buf_fini(&text);
                free(path);
                return WR_ERR;
            }
            json_decref(doc);
        } else if (errno != ENOENT) {
            buf_fini(&text);
            free(path);
            return WR_ERR;
        } else {
            n->fresh = true;
        }
        buf_fini(&text);
        free(path);
    }
    if (!n->opts.data_dir)
        n->fresh = true;
    if (n->fresh && !node_vhost_find(n, default_vhost) &&
        !node_vhost_add(n, default_vhost)) {
        snprintf(err, errlen, "invalid default_vhost '%s'", default_vhost);
        return WR_ERR;
    }
    if (n->opts.data_dir)
        vhostdir__sweep(n->opts.data_dir);
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (vhost__open_store(vh, err, errlen) != WR_OK)
            return WR_ERR;
    }
    n->booted = true;
    node_defs_changed(n);
    return WR_OK;
}
