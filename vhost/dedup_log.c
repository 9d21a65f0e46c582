/*
 * dedup_log.c: the deduplication journal of a vhost, which makes the
 * window of every durable deduplication cache survive a kill -9 (the
 * format is in dedup_log.h).
 *
 * Why a journal: the caches are rebuilt at a restart from the log's
 * messages, but a message consumed (acked) before a crash is gone from
 * the log, and so would its key be: its duplicate would then be taken.
 * So the key of every persistent message a durable queue (or exchange)
 * with x-message-deduplication remembers is appended here, with its
 * expiry in wall-clock time, written at the end of the loop iteration
 * (before the publish's confirm leaves, like a stream append) and, with
 * fsync = always, fdatasync'ed by the vhost's sync thread (the one
 * streams use, store/fsyncer.h) before the confirm: the publish takes
 * the sync batch number (publish_result.sync) and waits for it as well
 * as for its log record. interval and never: as their words in
 * store/store.h say.
 *
 * Open (vhost__open_store): after a clean stop the snapshot fills the
 * caches (persist.c); after a crash this journal does, in order (each
 * cache keeps its newest x-cache-size keys, FIFO, expired ones
 * skipped), then the recovered messages add the keys the journal may
 * have missed. Then the journal is rewritten from the caches (their live
 * durable keys, oldest first): that drops what expired, was evicted or
 * belonged to a deleted object, and a torn tail. The same rewrite runs
 * when the journal grows past four times its size after the last one
 * (and at least 1 MiB), so it stays within a few times the caches' keys.
 * A rewrite is an atomic file replace (store_write_file_atomic: write,
 * fsync, rename, fsync of the directory) on the loop thread: rare, and
 * bounded by the caches' sizes.
 *
 * Deleting a durable deduplicating queue or exchange appends a deletion
 * record, so that a new object of the same name does not inherit its
 * keys after a crash.
 */
#include "vhost/dedup_log.h"
#include "vhost/dedup.h"
#include "vhost/side.h"
#include "vhost/stream_int.h"
#include "vhost/vhost_int.h"
#include "store/fsyncer.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uthash.h>
#include <xxhash.h>

#define DEDUP_LOG   "dedup.journal"
#define REWRITE_MIN (1u << 20)
/* The sync thread's key for the journal (stream logs use queue ids). */
#define SYNC_KEY UINT64_MAX

/* ---- format */

void
dedup_log_put(struct buf *out, uint8_t kind, struct bytes name,
              const uint8_t *h, uint64_t expires)
{
    size_t at = out->len, body;

    buf_put_u32(out, 0);
    buf_put_u32(out, 0);
    buf_put_u8(out, kind);
    buf_put_shortstr(out, name);
    if (h) {
        buf_append(out, h, 16);
        buf_put_u64(out, expires);
    }
    body = out->len - at - 8;
    be32_store(out->data + at, (uint32_t)body);
    be32_store(out->data + at + 4, XXH32(out->data + at + 8, body, 0));
}

size_t
dedup_log_read(const uint8_t *p, size_t n,
               void (*fn)(void *arg, const struct dedup_log_rec *r), void *arg)
{
    size_t pos = 4;

    if (n < 4 || memcmp(p, DEDUP_LOG_MAGIC, 4) != 0)
        return 0;
    while (n - pos >= 8) {
        uint32_t len = be32_load(p + pos), check = be32_load(p + pos + 4);
        struct dedup_log_rec r = {0};
        struct cursor c;
        struct bytes h;

        if (len > n - pos - 8 || XXH32(p + pos + 8, len, 0) != check)
            break;
        cur_init(&c, p + pos + 8, len);
        if (!rd_u8(&c, &r.kind) || !rd_shortstr(&c, &r.name))
            break;
        if (r.kind == 'q' || r.kind == 'x') {
            if (!rd_bytes(&c, 16, &h) || !rd_u64(&c, &r.expires))
                break;
            memcpy(r.h, h.ptr, 16);
        } else if (r.kind != 'Q' && r.kind != 'X') {
            break;
        }
        fn(arg, &r);
        pos += 8 + len;
    }
    return pos;
}

/* ---- loading */

/* The keys of one object as read, in dedup_save's format. */
struct jobj {
    uint8_t kind; /* 'q', 'x' */
    char *name;
    size_t name_len;
    struct buf keys; /* u32 count (patched) + (16 bytes, u64) each */
    uint32_t n;
    UT_hash_handle hh; /* by kind + name */
};

struct jload {
    struct jobj *objs;
};

static struct jobj *
jobj_get(struct jload *l, uint8_t kind, struct bytes name)
{
    char key[257];
    struct jobj *o;

    key[0] = (char)kind;
    memcpy(key + 1, name.ptr, name.len);
    HASH_FIND(hh, l->objs, key, name.len + 1, o);
    if (o)
        return o;
    o = xcalloc(1, sizeof(*o));
    o->kind = kind;
    o->name = xmalloc(name.len + 1);
    memcpy(o->name, key, name.len + 1);
    o->name_len = name.len + 1;
    buf_init(&o->keys);
    buf_put_u32(&o->keys, 0);
    HASH_ADD_KEYPTR(hh, l->objs, o->name, o->name_len, o);
    return o;
}

static void
on_rec(void *arg, const struct dedup_log_rec *r)
{
    struct jload *l = arg;
    bool forget = r->kind == 'Q' || r->kind == 'X';
    struct jobj *o =
        jobj_get(l, forget ? r->kind - 'A' + 'a' : r->kind, r->name);

    if (forget) {
        buf_reset(&o->keys);
        buf_put_u32(&o->keys, 0);
        o->n = 0;
        return;
    }
    buf_append(&o->keys, r->h, 16);
    buf_put_u64(&o->keys, r->expires);
    o->n++;
}

/* The cache of the durable object a record names, or NULL. */
static struct dedup *
target(struct vhost *vh, uint8_t kind, struct bytes name)
{
    struct exchange *x;
    struct queue *q;

    if (kind == 'q') {
        q = vhost_queue_find(vh, name);
        return q && q->durable ? q->dedup : NULL;
    }
    x = xreg_find(vh->xr, name);
    return x && x->durable ? ((struct xinfo *)x->user)->dedup : NULL;
}

static char *
log_path(const struct vhost *vh)
{
    size_t n = strlen(vh->store_dir) + sizeof("/" DEDUP_LOG);
    char *p = xmalloc(n);

    snprintf(p, n, "%s/" DEDUP_LOG, vh->store_dir);
    return p;
}

bool
vhost__dedup_log_load(struct vhost *vh, uint64_t now_ms)
{
    char *path = log_path(vh), err[256];
    struct jload l = {0};
    struct jobj *o, *tmp;
    struct buf b;
    size_t good;
    uint64_t wall = wr_wall_ms();
    bool found = false;

    buf_init(&b);
    if (access(path, F_OK) != 0 ||
        store_read_file(path, &b, err, sizeof(err)) != WR_OK)
        goto out;
    found = true;
    good = dedup_log_read(b.data, b.len, on_rec, &l);
    if (good < b.len)
        log_warn("vhost '%s': %s: torn or damaged from byte %zu of %zu; the "
                 "records before are kept",
                 vh->name, path, good, b.len);
    HASH_ITER(hh, l.objs, o, tmp)
    {
        struct dedup *d =
            target(vh, o->kind, bytes_of(o->name + 1, o->name_len - 1));
        struct cursor c;

        if (d) {
            be32_store(o->keys.data, o->n);
            cur_init(&c, o->keys.data, o->keys.len);
            dedup_load(d, &c, now_ms, wall);
        }
        HASH_DEL(l.objs, o);
        buf_fini(&o->keys);
        free(o->name);
        free(o);
    }
out:
    buf_fini(&b);
    free(path);
    return found;
}

/* ---- writing */

/* The journal from the caches (oldest key first) into b. */
static void
image(struct vhost *vh, uint64_t now_ms, struct buf *b)
{
    uint64_t wall = wr_wall_ms();
    struct buf keys;
    struct queue *q, *tmp;

    buf_init(&keys);
    buf_append(b, DEDUP_LOG_MAGIC, 4);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (!q->dedup || !q->durable)
            continue;
        buf_reset(&keys);
        dedup_save(q->dedup, now_ms, wall, &keys);
        for (size_t at = 4; at + 24 <= keys.len; at += 24)
            dedup_log_put(b, 'q', bytes_of(q->name, q->name_len),
                          keys.data + at, be64_load(keys.data + at + 16));
    }
    for (struct exchange *x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        struct dedup *d = ((struct xinfo *)x->user)->dedup;

        if (!d || !x->durable)
            continue;
        buf_reset(&keys);
        dedup_save(d, now_ms, wall, &keys);
        for (size_t at = 4; at + 24 <= keys.len; at += 24)
            dedup_log_put(b, 'x', bytes_of(x->name, x->name_len),
                          keys.data + at, be64_load(keys.data + at + 16));
    }
    buf_fini(&keys);
}

bool
vhost__dedup_log_image(struct vhost *vh, struct buf *out)
{
    if (!vh->dedup_open)
        return false;
    image(vh, node_now(vh->node) / 1000, out);
    return true;
}

/* Writes the journal anew from the caches and opens it for appends; a
 * replicated vhost's mirrors replace theirs with it too. */
static void
rewrite(struct vhost *vh, uint64_t now_ms)
{
    char *path = log_path(vh), err[256];
    struct buf b;

    buf_init(&b);
    image(vh, now_ms, &b);
    side__tap(vh, SIDE_DFULL, NULL, 0, buf_bytes(&b), bytes_of(NULL, 0));
    if (vh->dedup_fd >= 0)
        close(vh->dedup_fd);
    vh->dedup_fd = -1;
    buf_reset(&vh->dedup_jbuf); /* the caches hold those keys too */
    if (store_write_file_atomic(path, b.data, b.len, err, sizeof(err)) !=
        WR_OK) {
        log_err("vhost '%s': cannot write %s: %s; deduplication keys are not "
                "kept across a crash from now on",
                vh->name, path, err);
    } else {
        vh->dedup_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (vh->dedup_fd < 0)
            log_syserr("vhost '%s': cannot open %s", vh->name, path);
    }
    vh->dedup_base = b.len;
    vh->dedup_size = b.len;
    buf_fini(&b);
    free(path);
}

void
vhost__dedup_log_open(struct vhost *vh, uint64_t now_ms)
{
    if (!vh->store_dir || !vh->serving)
        return;
    buf_init(&vh->dedup_jbuf);
    vh->dedup_fd = -1;
    vh->dedup_open = true;
    rewrite(vh, now_ms);
}

void
vhost__dedup_log_close(struct vhost *vh, uint64_t now_ms)
{
    if (!vh->dedup_open)
        return;
    vhost__dedup_log_flush(vh, now_ms);
    if (vh->dedup_fd >= 0)
        close(vh->dedup_fd);
    vh->dedup_fd = -1;
    buf_fini(&vh->dedup_jbuf);
    vh->dedup_open = false;
}

/* The publish waits for the journal's sync under fsync = always. */
static void
wait_sync(struct vhost *vh, struct publish_result *res)
{
    struct fsyncer *f;

    if (vh->node->opts.fsync != STORE_FSYNC_ALWAYS || !res)
        return;
    f = stream__syncer(vh);
    if (f)
        res->sync = WR_MAX(res->sync, fsyncer_ticket(f));
    else
        res->refused = true; /* cannot be made durable */
}

void
vhost__dedup_log_key(struct vhost *vh, uint8_t kind, struct bytes name,
                     const uint8_t h[16], uint64_t expires_ms, uint64_t now_ms,
                     struct publish_result *res)
{
    uint64_t wall, lsn;
    size_t at;

    if (!vh->dedup_open)
        return;
    if (vh->dedup_fd < 0) {
        /* the journal failed: the key cannot be made durable */
        if (res && vh->node->opts.fsync == STORE_FSYNC_ALWAYS)
            res->rejected = true;
        return;
    }
    wall = wr_wall_ms();
    at = vh->dedup_jbuf.len;
    dedup_log_put(&vh->dedup_jbuf, kind, name, h,
                  expires_ms == UINT64_MAX
                      ? UINT64_MAX
                      : wall + (expires_ms > now_ms ? expires_ms - now_ms : 0));
    wait_sync(vh, res);
    /* replicated: confirmed once the in-sync mirrors have the key */
    lsn = side__tap(vh, SIDE_DKEYS, NULL, 0,
                    bytes_of(vh->dedup_jbuf.data + at, vh->dedup_jbuf.len - at),
                    bytes_of(NULL, 0));
    if (res)
        res->lsn = WR_MAX(res->lsn, lsn);
}

void
vhost__dedup_log_forget(struct vhost *vh, uint8_t kind, struct bytes name)
{
    size_t at = vh->dedup_jbuf.len;

    if (!vh->dedup_open || vh->dedup_fd < 0)
        return;
    dedup_log_put(&vh->dedup_jbuf, kind, name, NULL, 0);
    side__tap(vh, SIDE_DKEYS, NULL, 0,
              bytes_of(vh->dedup_jbuf.data + at, vh->dedup_jbuf.len - at),
              bytes_of(NULL, 0));
}

void
vhost__dedup_log_flush(struct vhost *vh, uint64_t now_ms)
{
    struct fsyncer *f;

    if (!vh->dedup_open || vh->dedup_jbuf.len == 0 || vh->dedup_fd < 0)
        return;
    if (vh->dedup_size > REWRITE_MIN && vh->dedup_size > 4 * vh->dedup_base) {
        rewrite(vh, now_ms); /* holds the pending keys too */
        return;
    }
    f = stream__syncer(vh);
    if (write(vh->dedup_fd, vh->dedup_jbuf.data, vh->dedup_jbuf.len) !=
        (ssize_t)vh->dedup_jbuf.len) {
        log_syserr("vhost '%s': cannot append to the deduplication journal",
                   vh->name);
        if (f && vh->node->opts.fsync == STORE_FSYNC_ALWAYS)
            fsyncer_fail(f, "the deduplication journal's write failed");
        close(vh->dedup_fd);
        vh->dedup_fd = -1;
    } else {
        vh->dedup_size += vh->dedup_jbuf.len;
        if (f && vh->node->opts.fsync != STORE_FSYNC_NEVER)
            fsyncer_add(f, SYNC_KEY, vh->dedup_fd, false, false);
    }
    buf_reset(&vh->dedup_jbuf);
}
