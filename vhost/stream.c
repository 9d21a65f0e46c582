/*
 * stream.c: stream queues (x-queue-type = stream), as RabbitMQ 3.9+
 * serves them over AMQP 0-9-1: an append-only queue that keeps its
 * messages after they are consumed, each consumer reading at its own
 * offset (x-stream-offset), each delivery carrying the x-stream-offset
 * header, acks only returning credit.
 *
 * Where the messages live: in a stream log of their own (store/slog.h),
 * segment files in the vhost's data directory named after the queue's
 * id ("stream.<qid>.<first offset>.seg/.idx"), not in the vhost's
 * journal. That is what RabbitMQ does (osiris keeps a log per stream),
 * and it is what the workload wants: the journal is built for messages
 * that are acked and compacted away, a stream for messages that stay
 * and are read by offset, trimmed by whole segments. It also keeps this
 * work out of the journal's record format and replication while the
 * vhost log's replication is being built; replicating a stream then
 * means shipping its segments (append-only files, by offset), which the
 * format makes simple: in a cluster every append, retention trim,
 * deletion and save of the tracked offsets is also a side record
 * (side.h) shipped to the mirrors with the vhost log's records, and a
 * stream publish's confirm waits for the in-sync mirrors' ACK of it.
 *
 * Publish: a message routed to a stream is appended to its log, with
 * the x-stream-offset header already in its properties (the offset is
 * known at append), so delivery sends the record's bytes as they are.
 * Appends are buffered and written at the end of the loop iteration
 * (node_flush, before any confirm leaves), so a confirmed message
 * survives a kill of the broker.
 *
 * Durability follows the broker's fsync policy, with the words of
 * store/store.h, through a sync thread per vhost (store/fsyncer.h,
 * started with the first stream's log): group commit as in the store.
 *   always: stream__flush adds every stream it wrote to the thread's
 *     open batch and hands the batch over when the thread is idle; a
 *     publish takes the open batch's number (publish_result.sync) and
 *     its confirm waits until that batch was fdatasync'ed, as it waits
 *     for the store's durable LSN (a publish to a stream and a classic
 *     queue waits for both). One fdatasync per stream covers everything
 *     written while the previous batch synced.
 *   interval: confirmed after the write; the thread fdatasyncs the
 *     streams written to at most every fsync_interval_ms.
 *   never: confirmed after the write; no sync but the seals'.
 * Whatever the policy a sealed segment is synced (recovery trusts it)
 * and the directory too (the new segment's name), on the thread, not
 * the loop. A failed sync, or in "always" a failed write (its publishes
 * took a batch number that would otherwise come good), fails the
 * vhost's stream sync for good, as a failed fsync fails the store
 * (fsyncgate: never retried): publishes waiting for it and every later
 * publish to a stream of the vhost get basic.nack until a restart. The
 * whole vhost rather than the one stream: a batch number says nothing
 * of which stream a publish went to.
 *
 * Consumers: each has a reader of the log (c->sreader) and takes
 * messages while its prefetch and its channel allow; a reader reads the
 * files in chunks, so a consumer far behind costs its prefetch window
 * and a read buffer, never the stream in memory. A delivery is a
 * message allocated from the record and freed when acked; requeue
 * (channel closed, basic.recover) only returns the credit, as in
 * RabbitMQ, where a stream never redelivers.
 *
 * Offset tracking (Warren's own: RabbitMQ's stream protocol tracks
 * offsets, its AMQP 0-9-1 does not): a consumer that passes
 * x-warren-offset-tracking = "name" has the offset after the last one it
 * acked kept under that name, in stream.<qid>.offsets next to the
 * segments (written atomically, at most every 200 ms, and at shutdown);
 * a consumer of that name without x-stream-offset starts there. After a
 * kill -9 it may get again what it acked in the last moments: at least
 * once.
 */
#include "vhost/stream.h"
#include "vhost/side.h"
#include "vhost/stream_int.h"
#include "vhost/vhost_int.h"
#include "store/fsyncer.h"
#include "store/slog.h"
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <utlist.h>

/* RabbitMQ's default x-stream-max-segment-size-bytes. */
#define DEFAULT_SEGMENT_BYTES UINT64_C(500000000)
/* Tracked consumer names per stream: a delivery carries its name's slot
 * (1..TRACK_MAX) in the entry's priority bits, which streams do not
 * use. */
#define TRACK_MAX 255
/* The tracked offsets are written at most this often. */
#define TRACK_SAVE_MS 200

/* Server-side offset tracking (x-warren-offset-tracking): the offset
 * after the last one a consumer of this name acked. */
struct tracker {
    char *name;
    uint64_t next;
};

struct stream {
    struct queue *q;
    struct slog *log; /* NULL until the vhost's data is open */
    struct slog_opts o;
    bool dirty;           /* on vh->stream_dirty: appends or offsets to write */
    uint64_t log_written; /* slog_next at the last flush */
    bool unsynced;        /* on vh->stream_unsynced: written since its
                             last add to the sync thread */
    struct stream *sync_next;
    struct stream *dirty_next;
    struct buf scratch; /* a record being built */
    struct tracker trk[TRACK_MAX];
    uint32_t ntrk;
    bool trk_dirty; /* offsets changed since written */
    uint64_t trk_saved_ms;
    uint64_t gen;          /* of its log: a new one per open (side.c) */
    uint64_t tapped_first; /* slog_first as the mirrors last heard it */
};

/* Generations of stream logs, so that a snapshot being sent notices a
 * stream deleted and declared again (the same qid). Loop thread. */
static uint64_t log_gens;

/* A consumer's place in the stream (consumer.sreader). */
struct stream_reader {
    struct slog_reader *r;
    uint8_t slot; /* its tracked name's, 1-based; 0 = none */
};

/* ---- arguments */

/* RabbitMQ's interval syntax for x-max-age and x-stream-offset: a
 * positive integer and a unit (Y M D h m s). Returns milliseconds, 0 when
 * the text is not one. */
uint64_t
stream__parse_interval(struct bytes s)
{
    uint64_t v = 0, unit;
    size_t i;

    if (s.len < 2 || s.len > 20)
        return 0;
    for (i = 0; i + 1 < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    switch (s.ptr[i]) {
    case 'Y':
        unit = UINT64_C(365) * 24 * 3600 * 1000;
        break;
    case 'M':
        unit = UINT64_C(30) * 24 * 3600 * 1000;
        break;
    case 'D':
        unit = UINT64_C(24) * 3600 * 1000;
        break;
    case 'h':
        unit = UINT64_C(3600) * 1000;
        break;
    case 'm':
        unit = UINT64_C(60) * 1000;
        break;
    case 's':
        unit = 1000;
        break;
    default:
        return 0;
    }
    if (v == 0)
        return 0;
    /* a longer age than any clock will see: forever */
    return v > UINT64_MAX / 4 / unit ? UINT64_MAX / 4 : v * unit;
}

bool
stream__is_declared(struct bytes args)
{
    struct fvalue v;

    return ftable_find(args, "x-queue-type", &v) && fvalue_is_str(&v) &&
           bytes_eq_str(v.v.str, "stream");
}

int
stream__check_decl(const struct queue_decl *d, struct vherr *err)
{
    /* (its arguments and properties: args__check_queue, with the other
     * types') */
    if (stream__is_declared(d->args) && d->server_named && d->owner)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "Cannot declare a server-named queue for type "
                         "rabbit_stream_queue");
    return WR_OK;
}

/* A positive integer from the argument, else the policy, else the
 * operator policy; 0 when none. */
static uint64_t
first_int(struct bytes args, const char *arg, json_t *pol, json_t *op,
          const char *key)
{
    struct fvalue v;
    int64_t i;
    json_t *j;

    if (ftable_find(args, arg, &v) && fvalue_get_int(&v, &i) && i > 0)
        return (uint64_t)i;
    if (json_is_integer(j = json_object_get(pol, key)) &&
        json_integer_value(j) > 0)
        return (uint64_t)json_integer_value(j);
    if (json_is_integer(j = json_object_get(op, key)) &&
        json_integer_value(j) > 0)
        return (uint64_t)json_integer_value(j);
    return 0;
}

/* The lowest positive integer of the argument and the policies; 0 when
 * none. */
static uint64_t
lowest_int(struct bytes args, const char *arg, json_t *pol, json_t *op,
           const char *key)
{
    uint64_t a = first_int(args, arg, NULL, NULL, key);
    uint64_t p = first_int(bytes_of(NULL, 0), arg, pol, NULL, key);
    uint64_t o = first_int(bytes_of(NULL, 0), arg, NULL, op, key);
    uint64_t m = 0;

    if (a && (!m || a < m))
        m = a;
    if (p && (!m || p < m))
        m = p;
    if (o && (!m || o < m))
        m = o;
    return m;
}

/* max-age from the argument, else the policy, else the operator policy. */
static uint64_t
max_age(struct bytes args, json_t *pol, json_t *op)
{
    struct fvalue v;
    json_t *j;

    if (ftable_find(args, "x-max-age", &v) && fvalue_is_str(&v))
        return stream__parse_interval(v.v.str);
    j = json_is_string(json_object_get(pol, "max-age"))
            ? json_object_get(pol, "max-age")
            : json_object_get(op, "max-age");
    if (!json_is_string(j))
        return 0;
    return stream__parse_interval(
        bytes_of(json_string_value(j), json_string_length(j)));
}

void
stream__apply_policy(struct queue *q, json_t *pol, json_t *op)
{
    struct slog_opts *o;

    q->ttl_ms = q->expires_ms = q->max_len = q->max_bytes = -1;
    q->may_expire = q->reject_publish = q->reject_publish_dlx = false;
    q->has_dlx = q->has_dlrk = false;
    if (!q->stream)
        return; /* stream__init comes back */
    o = &q->stream->o;
    o->max_segment_bytes = first_int(q->args, "x-stream-max-segment-size-bytes",
                                     pol, op, "stream-max-segment-size-bytes");
    if (!o->max_segment_bytes)
        o->max_segment_bytes = DEFAULT_SEGMENT_BYTES;
    o->max_bytes =
        lowest_int(q->args, "x-max-length-bytes", pol, op, "max-length-bytes");
    o->max_age_ms = max_age(q->args, pol, op);
    if (q->stream->log)
        slog_set_opts(q->stream->log, o);
}

/* ---- tracked offsets: stream.<qid>.offsets, {"name": offset, ...} */

static char *
offsets_path(const struct stream *s)
{
    struct buf b;

    buf_init(&b);
    buf_printf(&b, "%s/stream.%016llx.offsets", s->q->vh->store_dir,
               (unsigned long long)s->q->qid);
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

static struct tracker *
tracker_find(struct stream *s, struct bytes name, uint8_t *slot)
{
    for (uint32_t i = 0; i < s->ntrk; i++) {
        if (bytes_eq_str(name, s->trk[i].name)) {
            *slot = (uint8_t)(i + 1);
            return &s->trk[i];
        }
    }
    return NULL;
}

/* The tracker of name, created when there is room; NULL when not. */
static struct tracker *
tracker_get(struct stream *s, struct bytes name, uint8_t *slot)
{
    struct tracker *t = tracker_find(s, name, slot);

    if (t || s->ntrk == TRACK_MAX)
        return t;
    t = &s->trk[s->ntrk++];
    t->name = xstrndup((const char *)name.ptr, name.len);
    t->next = UINT64_MAX; /* nothing acked yet */
    *slot = (uint8_t)s->ntrk;
    return t;
}

static void
trackers_load(struct stream *s)
{
    char *path = offsets_path(s);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr), *v;
    const char *name;
    uint8_t slot;

    if (!doc) {
        if (access(path, F_OK) == 0)
            log_err("stream queue '%s' in vhost '%s': %s unreadable (%s); "
                    "tracked offsets lost",
                    s->q->name, s->q->vh->name, path, jerr.text);
        free(path);
        return;
    }
    json_object_foreach(doc, name, v)
    {
        struct tracker *t = tracker_get(s, bytes_str(name), &slot);

        if (t && json_is_integer(v) && json_integer_value(v) >= 0)
            t->next = (uint64_t)json_integer_value(v);
    }
    json_decref(doc);
    free(path);
}

/* Writes the tracked offsets (atomically) when they changed. */
static void
trackers_save(struct stream *s)
{
    json_t *doc;
    char *path, *text, err[512];

    if (!s->trk_dirty || !s->q->vh->store_dir)
        return;
    doc = json_object();
    for (uint32_t i = 0; i < s->ntrk; i++) {
        if (s->trk[i].next != UINT64_MAX)
            json_object_set_new(doc, s->trk[i].name,
                                json_integer((json_int_t)s->trk[i].next));
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    side__tap(s->q->vh, SIDE_SOFFS, &s->q->qid, 1, bytes_str(text),
              bytes_of(NULL, 0));
    path = offsets_path(s);
    if (store_write_file_atomic(path, text, strlen(text), err, sizeof(err)) !=
        WR_OK)
        log_err("stream queue '%s' in vhost '%s': tracked offsets not "
                "saved: %s",
                s->q->name, s->q->vh->name, err);
    s->trk_dirty = false;
    s->trk_saved_ms = wr_now_ms();
    free(text);
    free(path);
    json_decref(doc);
}

static void
trackers_free(struct stream *s)
{
    for (uint32_t i = 0; i < s->ntrk; i++)
        free(s->trk[i].name);
    s->ntrk = 0;
}

/* ---- the log's lifetime */

/* The sync thread finished a batch (or failed): wake the loop, which
 * answers with stream__poll. */
static void
sync_wake(void *arg)
{
    struct node *n = arg;

    if (n->opts.wake)
        n->opts.wake(n->opts.wake_arg);
}

struct fsyncer *
stream__syncer(struct vhost *vh)
{
    if (!vh->stream_sync) {
        char name[300];

        snprintf(name, sizeof(name), "vhost '%s': sync thread", vh->name);
        vh->stream_sync = fsyncer_start(name, sync_wake, vh->node);
    }
    return vh->stream_sync;
}

static void
log_open(struct stream *s)
{
    struct vhost *vh = s->q->vh;
    char prefix[64], err[512];

    if (s->log || !vh->store_dir)
        return;
    snprintf(prefix, sizeof(prefix), "stream.%016llx",
             (unsigned long long)s->q->qid);
    s->log = slog_open(vh->store_dir, prefix, &s->o, err, sizeof(err));
    if (!s->log) {
        log_err("stream queue '%s' in vhost '%s': %s; it refuses messages",
                s->q->name, vh->name, err);
        return;
    }
    slog_retain(s->log, wr_wall_ms());
    if (stream__syncer(vh))
        slog_set_syncer(s->log, vh->stream_sync, s->q->qid);
    s->log_written = slog_next(s->log);
    s->gen = ++log_gens;
    s->tapped_first = slog_first(s->log);
    trackers_load(s);
    if (slog_next(s->log) > 0)
        log_info("stream queue '%s' in vhost '%s': offsets %llu to %llu in "
                 "%zu segments",
                 s->q->name, vh->name, (unsigned long long)slog_first(s->log),
                 (unsigned long long)slog_next(s->log) - 1,
                 slog_segments(s->log));
}

void
stream__init(struct queue *q)
{
    struct stream *s;

    if (!stream__is_declared(q->args))
        return;
    s = xcalloc(1, sizeof(*s));
    s->q = q;
    buf_init(&s->scratch);
    q->stream = s;
    queue__apply_settings(q); /* the log's limits (stream__apply_policy) */
    log_open(s);
}

void
stream__open_all(struct vhost *vh)
{
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (q->stream)
            log_open(q->stream);
    }
}

/* Puts s on its vhost's list of streams with something to write. */
static void
mark_dirty(struct stream *s)
{
    if (s->dirty)
        return;
    s->dirty = true;
    LL_PREPEND2(s->q->vh->stream_dirty, s, dirty_next);
}

/* Takes s off its vhost's lists of streams with something to write or
 * to sync. */
static void
undirty(struct stream *s)
{
    if (s->unsynced) {
        LL_DELETE2(s->q->vh->stream_unsynced, s, sync_next);
        s->unsynced = false;
    }
    if (!s->dirty)
        return;
    LL_DELETE2(s->q->vh->stream_dirty, s, dirty_next);
    s->dirty = false;
}

static void
reader_free(struct consumer *c)
{
    if (!c->sreader)
        return;
    slog_reader_free(c->sreader->r);
    free(c->sreader);
    c->sreader = NULL;
}

/* Closes the readers of q's consumers and the log (its files stay). */
static void
log_close(struct stream *s)
{
    struct consumer *c = NULL;

    while ((c = queue_consumer_next(s->q, c)) != NULL)
        reader_free(c);
    undirty(s);
    trackers_save(s);
    slog_close(s->log);
    s->log = NULL;
}

void
stream__close_all(struct vhost *vh)
{
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (q->stream && q->stream->log)
            log_close(q->stream);
    }
    /* after the logs: their last seals are in its open batch */
    fsyncer_stop(vh->stream_sync);
    vh->stream_sync = NULL;
}

bool
stream__sync_failed(const struct vhost *vh)
{
    return vh->stream_sync && fsyncer_error(vh->stream_sync);
}

void
stream__poll(struct vhost *vh)
{
    const char *err;
    uint64_t d;

    if (!vh->stream_sync)
        return;
    d = fsyncer_durable(vh->stream_sync);
    err = fsyncer_error(vh->stream_sync);
    if (d == vh->stream_durable && (!err || vh->stream_failed))
        return;
    vh->stream_durable = d;
    if (err && !vh->stream_failed) {
        vh->stream_failed = true;
        log_err("vhost '%s': the stream sync failed: %s. Publishes to its "
                "streams are refused (publishers get basic.nack) until the "
                "broker is restarted; fix the device, then restart.",
                vh->name, err);
    }
    if (vh->node->opts.durable)
        vh->node->opts.durable(vh->node->opts.durable_arg, vh);
}

void
stream__delete(struct queue *q)
{
    struct stream *s = q->stream;

    undirty(s);
    if (s->log) {
        char *path = offsets_path(s);

        side__tap(q->vh, SIDE_SDEL, &q->qid, 1, bytes_of(NULL, 0),
                  bytes_of(NULL, 0));
        if (unlink(path) != 0 && errno != ENOENT)
            log_syserr("cannot remove %s", path);
        free(path);
        slog_destroy(s->log); /* its consumers are gone (cancelled) */
    }
    s->log = NULL;
    s->trk_dirty = false;
}

void
stream__free(struct queue *q)
{
    struct stream *s = q->stream;

    if (!s)
        return;
    if (s->log)
        log_close(s);
    trackers_free(s);
    buf_fini(&s->scratch);
    free(s);
    q->stream = NULL;
}

/* Hands what was written to the sync thread as the fsync policy says
 * (see the top of this file). */
static void
sync_streams(struct vhost *vh, uint64_t now)
{
    struct stream *written = vh->stream_unsynced;

    struct fsyncer *f = vh->stream_sync;
    enum store_fsync mode = (enum store_fsync)vh->node->opts.fsync;
    uint32_t every = vh->node->opts.fsync_interval_ms
                         ? vh->node->opts.fsync_interval_ms
                         : 200;

    if (!f)
        return;
    if (mode == STORE_FSYNC_INTERVAL && now - vh->stream_sync_ms < every) {
        /* later: the expire timer wakes the loop for it */
        if (written || fsyncer_busy(f))
            node__note_expiry(vh->node,
                              node_now(vh->node) + every * UINT64_C(1000));
        return;
    }
    for (struct stream *s = written; s; s = s->sync_next) {
        if (mode != STORE_FSYNC_NEVER && s->log)
            slog_sync_add(s->log);
        s->unsynced = false;
    }
    vh->stream_unsynced = NULL;
    if (fsyncer_kick(f))
        vh->stream_sync_ms = now;
}

void
stream__flush(struct vhost *vh)
{
    struct stream *s, *next, *wait = NULL;
    uint64_t now = wr_now_ms();

    for (s = vh->stream_dirty; s; s = next) {
        next = s->dirty_next;
        s->dirty = false;
        if (s->log && s->log_written < slog_next(s->log)) {
            if (slog_flush(s->log) != WR_OK && vh->stream_sync &&
                vh->node->opts.fsync == STORE_FSYNC_ALWAYS)
                fsyncer_fail(vh->stream_sync, "a stream's write failed");
            s->log_written = slog_next(s->log);
            if (!s->unsynced) {
                s->unsynced = true;
                s->sync_next = vh->stream_unsynced;
                vh->stream_unsynced = s;
            }
        }
        if (s->trk_dirty && now - s->trk_saved_ms >= TRACK_SAVE_MS)
            trackers_save(s);
        if (s->trk_dirty) {
            /* later: the list keeps it, and the server's expire timer
             * wakes the loop for it */
            s->dirty = true;
            s->dirty_next = wait;
            wait = s;
            node__note_expiry(vh->node, node_now(vh->node) +
                                            TRACK_SAVE_MS * UINT64_C(1000));
        }
    }
    vh->stream_dirty = wait;
    sync_streams(vh, now);
}

/* ---- publish */

/* The record of m at offset off: flags, exchange, routing key, the
 * properties with x-stream-offset in the headers, the body. */
static void
encode_record(struct stream *s, const struct message *m, uint64_t off)
{
    struct buf *b = &s->scratch;
    struct amqp_basic_props p;
    struct bytes ex = message_exchange(m), rk = message_rk(m);
    struct buf hdr;
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;
    size_t at;

    buf_reset(b);
    buf_put_u8(b, m->flags & MSG_PERSISTENT);
    buf_put_shortstr(b, ex);
    buf_put_shortstr(b, rk);
    at = b->len;
    buf_put_u32(b, 0);
    if (amqp_basic_props_decode(message_props(m).ptr, m->props_len, &p, NULL) !=
        AMQP_DECODE_OK)
        memset(&p, 0, sizeof(p)); /* checked when the header arrived */
    buf_init(&hdr);
    if (p.flags & AMQP_BASIC_HEADERS_FLAG) {
        ftable_iter_init(&it, p.headers);
        while (ftable_next(&it, &key, &v)) {
            if (!bytes_eq_str(key, "x-stream-offset"))
                fenc_value_key(&hdr, key, &v);
        }
    }
    fenc_int(&hdr, "x-stream-offset", (int64_t)off);
    p.flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = buf_bytes(&hdr);
    amqp_basic_props_encode(&p, b);
    buf_fini(&hdr);
    be32_store(b->data + at, (uint32_t)(b->len - at - 4));
}

/* A replicated stream: the append (and a trim its roll made) as side
 * records. Returns the append's position. */
static uint64_t
tap_append(struct stream *s, uint64_t off, uint64_t ts,
           const struct bytes *parts)
{
    uint64_t nums[4] = {s->q->qid, off, ts, s->o.max_segment_bytes};

    if (slog_first(s->log) != s->tapped_first) {
        uint64_t trim[2] = {s->q->qid, slog_first(s->log)};

        side__tap(s->q->vh, SIDE_STRIM, trim, 2, bytes_of(NULL, 0),
                  bytes_of(NULL, 0));
        s->tapped_first = trim[1];
    }
    return side__tap(s->q->vh, SIDE_SAPP, nums, 4, parts[0], parts[1]);
}

/* Appends m to s. Returns false when the log refuses it; *lsn: the
 * append's position when replicated (side.c), else 0. */
static bool
append(struct stream *s, const struct message *m, uint64_t *lsn)
{
    struct bytes parts[2];
    struct queue *q = s->q;
    uint64_t ts = wr_wall_ms(), off;

    if (!s->log || slog_failed(s->log) || stream__sync_failed(q->vh))
        return false;
    encode_record(s, m, slog_next(s->log));
    parts[0] = buf_bytes(&s->scratch);
    parts[1] = message_body(m);
    off = slog_append(s->log, ts, parts, 2);
    if (off == UINT64_MAX)
        return false;
    *lsn = tap_append(s, off, ts, parts);
    q->stat_publish++;
    mark_dirty(s);
    if (q->nconsumers)
        queue_schedule(q);
    return true;
}

size_t
stream__publish(struct message *m, struct queue **qs, size_t n,
                struct publish_result *res)
{
    size_t k = 0;
    uint64_t lsn = 0;

    for (size_t i = 0; i < n; i++) {
        if (!qs[i]->stream) {
            qs[k++] = qs[i];
            continue;
        }
        if (!append(qs[i]->stream, m, &lsn)) {
            res->rejected = true;
            res->nqueues++;
            continue;
        }
        res->lsn = WR_MAX(res->lsn, lsn);
        if (qs[i]->vh->stream_sync &&
            qs[i]->vh->node->opts.fsync == STORE_FSYNC_ALWAYS)
            /* its confirm waits for the batch now open */
            res->sync = fsyncer_ticket(qs[i]->vh->stream_sync);
        res->nqueues++;
    }
    return k;
}

/* ---- consumers */

/* The consumer argument naming a consumer whose offset the broker keeps
 * (Warren's own: RabbitMQ tracks offsets only in its stream protocol). */
#define TRACK_ARG "x-warren-offset-tracking"

/* Where x-stream-offset says c starts (without it: after the last offset
 * its tracked name acked, tracked_from, if known; else next); WR_ERR with
 * err when it is not one RabbitMQ takes. */
static int
parse_offset(struct bytes args, struct slog *log, uint64_t tracked_from,
             uint64_t *out, const char *rs, struct vherr *err)
{
    struct fvalue v;
    int64_t i;
    uint64_t ms;

    if (!ftable_find(args, "x-stream-offset", &v)) {
        *out = log ? slog_next(log) : 0;
        if (log && tracked_from != UINT64_MAX)
            *out = WR_MAX(tracked_from, slog_first(log));
        return WR_OK;
    }
    if (v.type == 'T') {
        if (log)
            *out = slog_offset_at(log, v.v.u * 1000);
        return WR_OK;
    }
    if (fvalue_get_int(&v, &i)) {
        /* below the first: the first; beyond the end: it waits for
         * that offset, as in RabbitMQ */
        if (log)
            *out = WR_MAX((uint64_t)WR_MAX(i, 0), slog_first(log));
        return WR_OK;
    }
    if (fvalue_is_str(&v) || v.type == 'x') {
        if (bytes_eq_str(v.v.str, "first")) {
            if (log)
                *out = slog_first(log);
            return WR_OK;
        }
        if (bytes_eq_str(v.v.str, "last")) {
            /* RabbitMQ: the last chunk; here, the last message */
            if (log)
                *out = slog_next(log) > slog_first(log) ? slog_next(log) - 1
                                                        : slog_next(log);
            return WR_OK;
        }
        if (bytes_eq_str(v.v.str, "next")) {
            if (log)
                *out = slog_next(log);
            return WR_OK;
        }
        ms = stream__parse_interval(v.v.str);
        if (ms) {
            uint64_t now = wr_wall_ms();

            if (log)
                *out = slog_offset_at(log, now > ms ? now - ms : 0);
            return WR_OK;
        }
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "invalid arg 'x-stream-offset' for %s: "
                         "{invalid_stream_offset_arg,{%s,<<\"%.*s\">>}}",
                         rs, fvalue_type_name(v.type),
                         (int)WR_MIN(v.v.str.len, 200),
                         (const char *)v.v.str.ptr);
    }
    return vherr_set(err, AMQP_PRECONDITION_FAILED,
                     "invalid arg 'x-stream-offset' for %s: "
                     "{invalid_stream_offset_arg,%s}",
                     rs, fvalue_type_name(v.type));
}

static void
resource(const struct queue *q, char *out, size_t n)
{
    snprintf(out, n, "queue '%s' in vhost '%s'", q->name, q->vh->name);
}

bool
queue_is_stream(const struct queue *q)
{
    return q->stream != NULL;
}

int
stream_check_consume(struct queue *q, bool no_ack, uint32_t prefetch,
                     uint32_t prefetch_global, struct bytes args,
                     struct vherr *err)
{
    char rs[400];
    uint64_t off;
    struct fvalue v;
    uint8_t slot;

    resource(q, rs, sizeof(rs));
    if (prefetch == 0)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "consumer prefetch count is not set for '%s'", rs);
    if (no_ack)
        return vherr_set(err, AMQP_NOT_IMPLEMENTED,
                         "automatic acknowledgement not supported by stream "
                         "queues %s",
                         rs);
    if (prefetch_global)
        return vherr_set(err, AMQP_NOT_IMPLEMENTED,
                         "%s does not support global qos", rs);
    if (ftable_find(args, TRACK_ARG, &v) &&
        (!fvalue_is_str(&v) || v.v.str.len == 0 || v.v.str.len > 255))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "invalid arg '" TRACK_ARG "' for %s: %s", rs,
                         fvalue_is_str(&v) ? "a name of 1 to 255 bytes"
                                           : fvalue_type_name(v.type));
    if (ftable_find(args, TRACK_ARG, &v) && q->stream &&
        !tracker_find(q->stream, v.v.str, &slot) &&
        q->stream->ntrk == TRACK_MAX)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "%s tracks %d consumer names already", rs, TRACK_MAX);
    return parse_offset(args, NULL, UINT64_MAX, &off, rs, err);
}

int
stream_refuse(struct queue *q, const char *what, struct vherr *err)
{
    char rs[400];

    resource(q, rs, sizeof(rs));
    return vherr_set(err, AMQP_NOT_IMPLEMENTED,
                     "%s not supported by stream queues %s", what, rs);
}

void
stream__consumer_add(struct queue *q, struct consumer *c)
{
    struct stream *s = q->stream;
    struct slog *log = s->log;
    struct tracker *t = NULL;
    struct vherr err;
    struct fvalue v;
    uint64_t off = 0;
    uint8_t slot = 0;
    char rs[8] = "";

    if (!log)
        return;
    if (ftable_find(c->args, TRACK_ARG, &v) && fvalue_is_str(&v))
        t = tracker_get(s, v.v.str, &slot);
    /* checked at basic.consume (stream_check_consume) */
    if (parse_offset(c->args, log, t ? t->next : UINT64_MAX, &off, rs, &err) !=
        WR_OK)
        off = slog_next(log);
    c->sreader = xcalloc(1, sizeof(*c->sreader));
    c->sreader->r = slog_reader_new(log, off);
    c->sreader->slot = t ? slot : 0;
}

void
stream__consumer_remove(struct consumer *c)
{
    reader_free(c);
}

/* The message of a record, with one reference for the delivery. */
static struct message *
decode_record(struct bytes rec)
{
    struct cursor cur;
    struct bytes ex, rk, props;
    uint8_t flags;
    struct message *m;

    cur_init(&cur, rec.ptr, rec.len);
    if (!rd_u8(&cur, &flags) || !rd_shortstr(&cur, &ex) ||
        !rd_shortstr(&cur, &rk) || !rd_longstr(&cur, &props))
        return NULL;
    m = message_new(ex, rk, props, cur.left);
    m = message_append(m, bytes_of(cur.p, cur.left));
    m->flags = flags & MSG_PERSISTENT;
    return m;
}

static bool
has_room(struct consumer *c)
{
    return (c->prefetch == 0 || c->unacked < c->prefetch) && c->ops->ready(c);
}

/* Hands c what its credit allows from its reader. */
static void
feed(struct queue *q, struct consumer *c)
{
    struct slog_rec rec;
    struct message *m;
    int rc;

    while (c->sreader && has_room(c)) {
        rc = slog_read(c->sreader->r, &rec);
        if (rc != WR_OK)
            return; /* at the end, or an unreadable record (logged) */
        m = decode_record(rec.payload);
        if (!m) {
            log_err("stream queue '%s' in vhost '%s': record at offset %llu "
                    "is malformed; skipped",
                    q->name, q->vh->name, (unsigned long long)rec.offset);
            continue;
        }
        q->stat_deliver++;
        queue__track(q);
        c->delivered++;
        /* the entry says which offset, and for which tracked name */
        c->ops->deliver(
            c, q,
            (struct qentry){.id = (rec.offset & QE_ID_MASK) |
                                  ((uint64_t)c->sreader->slot << QE_PRIO_SHIFT),
                            .msg = m});
    }
}

void
stream__dispatch(struct queue *q)
{
    struct consumer *c = NULL, *next;

    if (!q->stream->log)
        return;
    for (c = queue_consumer_next(q, NULL); c; c = next) {
        next = queue_consumer_next(q, c);
        feed(q, c);
        if (q->deleted)
            return;
    }
}

void
stream__ack(struct queue *q, struct qentry e)
{
    struct stream *s = q->stream;
    uint32_t slot = (uint32_t)((e.id & QE_PRIO_MASK) >> QE_PRIO_SHIFT);
    uint64_t off = e.id & QE_ID_MASK;

    if (slot && slot <= s->ntrk && s->log) {
        struct tracker *t = &s->trk[slot - 1];

        if (t->next == UINT64_MAX || off + 1 > t->next) {
            t->next = off + 1;
            s->trk_dirty = true;
            mark_dirty(s);
        }
    }
    q->stat_ack++;
    stream__requeue(q, e);
}

void
stream__requeue(struct queue *q, struct qentry e)
{
    /* A stream never redelivers: the credit comes back, nothing else. */
    WR_ASSERT(q->unacked > 0);
    q->unacked--;
    message_unref(e.msg);
    queue_unref(q);
}

/* ---- what management reads */

bool
stream_info(const struct queue *q, struct stream_info *out)
{
    const struct slog *log;

    memset(out, 0, sizeof(*out));
    if (!q->stream)
        return false;
    log = q->stream->log;
    if (!log)
        return true;
    out->open = true;
    out->first = slog_first(log);
    out->next = slog_next(log);
    out->bytes = slog_bytes(log);
    out->segments = slog_segments(log);
    return true;
}

/* ---- a new mirror's snapshot (side.c) */

void
stream__snap_begin(struct vhost *vh, struct buf *out,
                   void (*add)(void *arg, uint64_t qid, uint64_t gen,
                               uint64_t first, uint64_t next),
                   void *arg)
{
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        struct stream *s = q->stream;
        json_t *doc;
        char *text;

        if (!s || !s->log)
            continue;
        /* what the mirrors hear from now on starts from here; an empty
         * stream that starts later than 0 says where (STRIM) */
        s->tapped_first = slog_first(s->log);
        if (slog_first(s->log) == slog_next(s->log) && slog_first(s->log)) {
            uint64_t trim[2] = {q->qid, slog_first(s->log)};

            side__encode(out, SIDE_STRIM, trim, 2, bytes_of(NULL, 0),
                         bytes_of(NULL, 0));
        }
        add(arg, q->qid, s->gen, slog_first(s->log), slog_next(s->log));
        if (s->ntrk == 0)
            continue;
        doc = json_object();
        for (uint32_t i = 0; i < s->ntrk; i++) {
            if (s->trk[i].next != UINT64_MAX)
                json_object_set_new(doc, s->trk[i].name,
                                    json_integer((json_int_t)s->trk[i].next));
        }
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        side__encode(out, SIDE_SOFFS, &q->qid, 1, bytes_str(text),
                     bytes_of(NULL, 0));
        free(text);
        json_decref(doc);
    }
}

bool
stream__snap_read(struct vhost *vh, uint64_t qid, uint64_t gen,
                  uint64_t *cursor, uint64_t end, struct buf *out, size_t max)
{
    struct queue *q;
    struct stream *s;
    struct slog_reader *r;
    struct slog_rec rec;
    size_t start = out->len;
    bool done = false;

    HASH_FIND(qid_hh, vh->by_qid, &qid, sizeof(qid), q);
    s = q ? q->stream : NULL;
    if (!s || !s->log || s->gen != gen || *cursor >= end)
        return true;
    /* the records written so far: the reader reads the files */
    slog_flush(s->log);
    r = slog_reader_new(s->log, *cursor);
    while (out->len - start < max) {
        uint64_t nums[4];

        if (slog_reader_next(r) >= end || slog_read(r, &rec) != WR_OK) {
            done = true;
            break;
        }
        if (rec.offset >= end) {
            done = true;
            break;
        }
        nums[0] = qid;
        nums[1] = rec.offset;
        nums[2] = rec.ts_ms;
        nums[3] = s->o.max_segment_bytes;
        side__encode(out, SIDE_SAPP, nums, 4, rec.payload, bytes_of(NULL, 0));
        *cursor = rec.offset + 1;
    }
    slog_reader_free(r);
    return done || *cursor >= end;
}
