/*
 * side.c: the side records of replication (vhost/side.h): their format,
 * the leader's tap of them, and a new mirror's snapshot of the streams
 * in bounded slices.
 *
 * Why not records of the vhost's log: a stream's messages live in its
 * own log (stream.c), read by offset and trimmed by whole segments, and
 * the deduplication journal is a file of its own (dedup_log.c); putting
 * their bytes in the log too would write every stream message twice on
 * the leader. So they travel beside the log's records in the same cut,
 * each taking a position of the log (store_tap_mark) for its confirm.
 */
#include "vhost/side.h"
#include "vhost/dedup_log.h"
#include "vhost/stream_int.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <stdlib.h>

/* ---- format */

void
side__encode(struct buf *out, uint8_t type, const uint64_t *nums, size_t nn,
             struct bytes a, struct bytes b)
{
    size_t len = nn * 8 + a.len + b.len;

    WR_ASSERT(len <= UINT32_MAX);
    buf_put_u8(out, type);
    buf_put_u32(out, (uint32_t)len);
    for (size_t i = 0; i < nn; i++)
        buf_put_u64(out, nums[i]);
    if (a.len)
        buf_append(out, a.ptr, a.len);
    if (b.len)
        buf_append(out, b.ptr, b.len);
}

static void
count_rec(void *arg, const struct dedup_log_rec *r)
{
    (void)r;
    (*(size_t *)arg)++;
}

/* Whether data is whole journal records only (after the magic when
 * magic is set). */
static bool
journal_ok(struct bytes data, bool magic)
{
    struct buf b;
    size_t n = 0, good;

    buf_init(&b);
    if (!magic)
        buf_append(&b, DEDUP_LOG_MAGIC, 4);
    buf_append(&b, data.ptr, data.len);
    good = dedup_log_read(b.data, b.len, count_rec, &n);
    buf_fini(&b);
    return good == (magic ? data.len : data.len + 4) && good >= 4;
}

bool
side_next(struct cursor *c, struct side_rec *r, const char **why)
{
    uint32_t len;
    struct cursor p;
    size_t nums;

    memset(r, 0, sizeof(*r));
    if (!rd_u8(c, &r->type) || !rd_u32(c, &len) || len > c->left) {
        *why = "side record cut short";
        return false;
    }
    cur_init(&p, c->p, len);
    rd_bytes(c, len, &r->data);
    switch (r->type) {
    case SIDE_SAPP:
        nums = 4;
        break;
    case SIDE_STRIM:
        nums = 2;
        break;
    case SIDE_SDEL:
    case SIDE_SOFFS:
        nums = 1;
        break;
    case SIDE_DKEYS:
    case SIDE_DFULL:
        nums = 0;
        break;
    default:
        *why = "unknown side record type";
        return false;
    }
    if ((nums >= 1 && !rd_u64(&p, &r->qid)) ||
        (nums >= 2 && !rd_u64(&p, &r->offset)) ||
        (nums >= 3 && !rd_u64(&p, &r->ts_ms)) ||
        (nums >= 4 && !rd_u64(&p, &r->segsize))) {
        *why = "side record too short for its fields";
        return false;
    }
    rd_bytes(&p, p.left, &r->data);
    switch (r->type) {
    case SIDE_SAPP:
        if (r->segsize == 0 || r->data.len == 0 || r->data.len > SIDE_MAX_REC ||
            r->offset >= UINT64_MAX / 2) {
            *why = "bad stream append";
            return false;
        }
        break;
    case SIDE_STRIM:
    case SIDE_SDEL:
        if (r->data.len != 0 || r->offset >= UINT64_MAX / 2) {
            *why = "bad stream trim or delete";
            return false;
        }
        break;
    case SIDE_DKEYS:
    case SIDE_DFULL:
        if (!journal_ok(r->data, r->type == SIDE_DFULL)) {
            *why = "bad deduplication journal records";
            return false;
        }
        break;
    default: /* SOFFS: the mirror checks its JSON */
        break;
    }
    return true;
}

/* ---- the leader's tap */

void
vhost_repl_side_tap(struct vhost *vh, struct buf *out)
{
    vh->side_tap = out;
}

uint64_t
side__tap(struct vhost *vh, uint8_t type, const uint64_t *nums, size_t nn,
          struct bytes a, struct bytes b)
{
    uint64_t lsn;

    if (!vh->side_tap || !vh->store)
        return 0;
    /* 0 when the log failed (nothing is confirmed any more); the record
       still goes, so that the copies do not miss an offset */
    lsn = store_tap_mark(vh->store);
    side__encode(vh->side_tap, type, nums, nn, a, b);
    return lsn;
}

/* ---- a new mirror's snapshot */

struct snap_stream {
    uint64_t qid, gen, cursor, end;
};

struct side_snap {
    struct vhost *vh;
    struct snap_stream *v;
    size_t n, cap, at;
};

static void
snap_add(void *arg, uint64_t qid, uint64_t gen, uint64_t first, uint64_t next)
{
    struct side_snap *ss = arg;

    if (first >= next)
        return;
    if (ss->n == ss->cap) {
        ss->cap = ss->cap ? 2 * ss->cap : 8;
        ss->v = xrealloc(ss->v, ss->cap * sizeof(*ss->v));
    }
    ss->v[ss->n++] = (struct snap_stream){qid, gen, first, next};
}

struct side_snap *
side_snap_begin(struct vhost *vh, struct buf *out)
{
    struct side_snap *ss = xcalloc(1, sizeof(*ss));
    struct buf img;

    ss->vh = vh;
    buf_init(&img);
    if (vhost__dedup_log_image(vh, &img))
        side__encode(out, SIDE_DFULL, NULL, 0, buf_bytes(&img),
                     bytes_of(NULL, 0));
    buf_fini(&img);
    stream__snap_begin(vh, out, snap_add, ss);
    return ss;
}

bool
side_snap_next(struct side_snap *ss, struct buf *out, size_t max)
{
    size_t start = out->len;

    while (ss->at < ss->n && out->len - start < max) {
        struct snap_stream *s = &ss->v[ss->at];

        if (stream__snap_read(ss->vh, s->qid, s->gen, &s->cursor, s->end, out,
                              max - (out->len - start)))
            ss->at++;
    }
    return ss->at == ss->n;
}

void
side_snap_free(struct side_snap *ss)
{
    if (!ss)
        return;
    free(ss->v);
    free(ss);
}
