/*
 * replica.c: the store's side of replication (store.h, "Replication"):
 * the leader's tap of encoded records, and a mirror's checked apply.
 *
 * Why payloads and not the batch bytes as they are: a record's 10-byte
 * header carries a checksum seeded by its segment's random salt and its
 * offset (record.c), so the on-disk bytes mean nothing in another file.
 * The payload after it is position-independent and is exactly what the
 * loop already encoded, so the tap is one memcpy per record, and a
 * message routed to N queues is one MSG record listing N queue ids,
 * shipped once.
 *
 * A mirror never trusts the stream: store_apply validates every record
 * of a frame before appending any, so a hostile or damaged frame leaves
 * the log as it was and the caller drops the link.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
store_tap(struct store *s, struct buf *out)
{
    s->tap = out;
}

void
replica_tap(struct store *s, uint8_t type, const uint8_t *payload, size_t len)
{
    buf_put_u8(s->tap, type);
    buf_put_u8(s->tap, rec_version((enum rec_type)type));
    rec_buf_varint(s->tap, len);
    buf_append(s->tap, payload, len);
}

void
store_snap_msg(struct buf *out, uint64_t id, const uint64_t *qids,
               uint32_t nqids, struct bytes meta, struct bytes body)
{
    size_t size = rec_msg_size(id, nqids, meta.len, body.len);
    uint8_t *p;

    /* encoded as a record (header and all), then the header dropped */
    buf_put_u8(out, REC_MSG);
    buf_put_u8(out, rec_version(REC_MSG));
    rec_buf_varint(out, size - REC_HDR_SIZE);
    p = buf_reserve(out, size);
    rec_msg_encode(p, size, id, 0, qids, nqids, meta, body, 0, 0);
    memmove(p, p + REC_HDR_SIZE, size - REC_HDR_SIZE);
    out->len += size - REC_HDR_SIZE;
}

int
store_read_msg_live(struct store *s, uint64_t pos, struct buf *out,
                    struct bytes *meta, struct bytes *body)
{
    const uint8_t *p;
    size_t avail;
    uint64_t salt;
    struct seg *g;

    /* segments are never written over: while the one pos names is there,
       the record at pos is still this message's */
    if (!journal_find(s, POS_SEG(pos), POS_OFF(pos), &p, &avail, &salt)) {
        g = seg_find(s, POS_SEG(pos));
        if (!g || g->unlinking)
            return WR_AGAIN;
    }
    return store_read_msg(s, pos, out, meta, body);
}

uint64_t
store_tap_cut(struct store *s)
{
    if (!atomic_load(&s->failed))
        journal_encode_acks(s);
    return s->lsn;
}

uint64_t
store_end_pos(struct store *s)
{
    struct seg *h = store_head(s);

    if (!atomic_load(&s->failed))
        journal_encode_acks(s);
    return POS_MAKE(h->no, h->size);
}

uint64_t
store_unlinks_planned(const struct store *s)
{
    return s->unlinks_planned;
}

uint64_t
store_tap_mark(struct store *s)
{
    if (!s->tap || atomic_load(&s->failed))
        return 0;
    return ++s->lsn;
}

uint64_t
store_next_id(const struct store *s)
{
    return s->next_id;
}

/* One replication record, as read. */
struct rrec {
    uint8_t type;
    struct bytes payload;
};

static bool
rrec_next(struct cursor *c, struct rrec *r, const char **why)
{
    uint8_t version;
    uint64_t len;

    if (!rd_u8(c, &r->type) || !rd_u8(c, &version) || !rec_rd_varint(c, &len)) {
        *why = "truncated record header";
        return false;
    }
    if (r->type != REC_MSG && r->type != REC_ACK && r->type != REC_QDEL) {
        *why = "unknown record type";
        return false;
    }
    if (version != rec_version((enum rec_type)r->type)) {
        *why = "unknown record version";
        return false;
    }
    if (len > c->left || len > REC_MAX_LEN - REC_HDR_SIZE) {
        *why = "record longer than the frame";
        return false;
    }
    rd_bytes(c, len, &r->payload);
    return true;
}

size_t
store_recs_prefix(struct bytes recs, size_t max)
{
    struct cursor c;
    size_t n = 0;

    cur_init(&c, recs.ptr, recs.len);
    while (c.left > 0) {
        struct rrec r;
        const char *why;
        size_t end;

        if (!rrec_next(&c, &r, &why))
            return 0;
        end = recs.len - c.left;
        if (n > 0 && end > max)
            break;
        n = end;
    }
    return n;
}

static bool
check_msg(struct bytes pl, uint64_t *next_id, const char **why)
{
    struct rec_msg m;

    if (!rec_msg_decode(pl, &m)) {
        *why = "bad message record";
        return false;
    }
    if (m.flags != 0) {
        *why = "message flags must be 0";
        return false;
    }
    if (m.id < *next_id || m.id > STORE_MAX_ID) {
        *why = "message id out of order";
        return false;
    }
    if (m.meta.len + m.body.len > STORE_MAX_MSG) {
        *why = "message too large";
        return false;
    }
    *next_id = m.id + 1;
    return true;
}

static bool
check_ack(struct bytes pl, const char **why)
{
    struct rec_ack_it it;
    uint64_t id;
    uint64_t n = 0;

    if (!rec_ack_begin(pl, &it)) {
        *why = "bad ack record";
        return false;
    }
    while (rec_ack_next(&it, &id))
        n++;
    if (it.left != 0 || it.c.left != 0 || n == 0) {
        *why = "bad ack record";
        return false;
    }
    return true;
}

bool
store_recs_check(struct bytes recs, uint64_t next_id, const char **why)
{
    struct cursor c;
    struct rrec r;
    uint64_t qid, upto;

    cur_init(&c, recs.ptr, recs.len);
    while (c.left > 0) {
        if (!rrec_next(&c, &r, why))
            return false;
        switch (r.type) {
        case REC_MSG:
            if (!check_msg(r.payload, &next_id, why))
                return false;
            break;
        case REC_ACK:
            if (!check_ack(r.payload, why))
                return false;
            break;
        default:
            if (!rec_qdel_decode(r.payload, &qid, &upto) ||
                upto > STORE_MAX_ID + 1) {
                *why = "bad queue delete record";
                return false;
            }
            if (upto > next_id)
                next_id = upto;
            break;
        }
    }
    return true;
}

static void
apply_msg(struct store *s, struct bytes pl)
{
    struct rec_msg m;
    struct store_msg_in in = {0};
    uint64_t pos, *qids;

    rec_msg_decode(pl, &m);
    /* store_append_msg_id sorts a copy into s->qtmp: a separate array */
    qids = xmalloc(m.nqids * sizeof(*qids));
    for (uint32_t i = 0; i < m.nqids; i++)
        qids[i] = rec_msg_qid(&m, i);
    in.qids = qids;
    in.nqids = m.nqids;
    in.meta = m.meta;
    in.body = m.body;
    store_append_msg_id(s, &in, m.id, &pos);
    free(qids);
}

static void
apply_ack(struct store *s, struct bytes pl)
{
    struct rec_ack_it it;
    uint64_t id;

    rec_ack_begin(pl, &it);
    while (rec_ack_next(&it, &id))
        store_append_ack(s, it.qid, id);
}

static void
apply_qdel(struct store *s, struct bytes pl)
{
    uint64_t qid, upto;

    rec_qdel_decode(pl, &qid, &upto);
    /* the leader's bound: its ids below upto are spent, ours too */
    if (upto > s->next_id)
        s->next_id = upto;
    store_append_queue_delete(s, qid);
}

uint64_t
store_apply(struct store *s, struct bytes recs, char *err, size_t errlen)
{
    const char *why;
    struct cursor c;
    struct rrec r;

    if (atomic_load(&s->failed) || s->closing) {
        snprintf(err, errlen, "log failed: %s", s->err);
        return 0;
    }
    if (atomic_load(&s->nospace)) {
        snprintf(err, errlen, "log waits for disk space");
        return 0;
    }
    if (!store_recs_check(recs, s->next_id, &why)) {
        snprintf(err, errlen, "bad replication records: %s", why);
        return 0;
    }
    cur_init(&c, recs.ptr, recs.len);
    while (c.left > 0) {
        rrec_next(&c, &r, &why);
        if (r.type == REC_MSG)
            apply_msg(s, r.payload);
        else if (r.type == REC_ACK)
            apply_ack(s, r.payload);
        else
            apply_qdel(s, r.payload);
    }
    return s->lsn;
}
