/*
 * repl.c: encoding and checking replication frames (cluster/repl.h).
 * Every byte comes from another node that passed the handshake, but a
 * bug or a damaged link there must not take this node down: every field
 * is checked before use.
 */
#include "cluster/repl.h"

#include "store/store.h"
#include "vhost/side.h"

#include <jansson.h>

void
repl_frame_encode(struct buf *out, enum repl_kind kind, uint64_t epoch,
                  uint64_t seq, struct bytes payload)
{
    WR_ASSERT(payload.len <= REPL_MAX_FRAME - (REPL_HDR - 4));
    buf_put_u32(out, (uint32_t)(REPL_HDR - 4 + payload.len));
    buf_put_u8(out, (uint8_t)kind);
    buf_put_u64(out, epoch);
    buf_put_u64(out, seq);
    if (payload.len)
        buf_append(out, payload.ptr, payload.len);
}

void
repl_encode_recs(struct buf *out, uint64_t epoch, uint64_t from, uint64_t seq,
                 struct bytes recs)
{
    while (recs.len > 0) {
        size_t n = store_recs_prefix(recs, REPL_SPLIT);

        WR_ASSERT(n > 0); /* the store made them: they parse */
        repl_frame_encode(out, REPL_RECS, epoch, n == recs.len ? seq : from,
                          bytes_of(recs.ptr, n));
        recs = bytes_of(recs.ptr + n, recs.len - n);
    }
}

/* Length of the whole side records at the start of side not longer
 * than max, but at least one. */
static size_t
side_prefix(struct bytes side, size_t max)
{
    size_t n = 0;

    while (n + SIDE_HDR <= side.len) {
        size_t end = n + SIDE_HDR + be32_load(side.ptr + n + 1);

        if (n > 0 && end > max)
            break;
        n = end;
    }
    return n;
}

void
repl_encode_side(struct buf *out, uint64_t epoch, uint64_t from, uint64_t seq,
                 struct bytes side)
{
    while (side.len > 0) {
        size_t n = side_prefix(side, REPL_SPLIT);

        WR_ASSERT(n > 0 && n <= side.len); /* the vhost made them */
        repl_frame_encode(out, REPL_SIDE, epoch, n == side.len ? seq : from,
                          bytes_of(side.ptr, n));
        side = bytes_of(side.ptr + n, side.len - n);
    }
}

const char *
repl_kind_name(uint8_t kind)
{
    static const char *const names[] = {
        "?", "SNAP", "DEFS", "RECS", "SYNCED", "PING", "ACK", "DACK", "DCNT"};

    if (kind == REPL_SIDE)
        return "SIDE";
    return kind < WR_ARRAY_LEN(names) ? names[kind] : "?";
}

/* Whether a kind may come this way, and may carry a payload. */
static bool
kind_ok(uint8_t kind, bool from_leader, bool has_payload, const char **why)
{
    if (kind < REPL_SNAP || (kind > REPL_DCNT && kind != REPL_SIDE)) {
        *why = "unknown frame kind";
        return false;
    }
    if ((kind == REPL_ACK || kind == REPL_DACK) == from_leader) {
        *why = from_leader ? "an ACK from the leader"
                           : "a leader's frame from a mirror";
        return false;
    }
    if (has_payload && kind != REPL_DEFS && kind != REPL_RECS &&
        kind != REPL_DCNT && kind != REPL_SIDE) {
        *why = "a payload in a frame that has none";
        return false;
    }
    return true;
}

int
repl_frame_parse(struct bytes in, bool from_leader, struct repl_frame *f,
                 size_t *used, const char **why)
{
    struct cursor c;
    uint32_t len;

    cur_init(&c, in.ptr, in.len);
    if (!rd_u32(&c, &len))
        return WR_AGAIN;
    if (len < REPL_HDR - 4 || len > REPL_MAX_FRAME) {
        *why = "frame length out of range";
        return WR_ERR;
    }
    /* the kind is checked as soon as it arrives: garbage fails early */
    if (c.left >= 1 && !kind_ok(c.p[0], from_leader, len > REPL_HDR - 4, why))
        return WR_ERR;
    if (c.left < len)
        return WR_AGAIN;
    rd_u8(&c, &f->kind);
    rd_u64(&c, &f->epoch);
    rd_u64(&c, &f->seq);
    if (f->epoch == 0) {
        *why = "epoch 0";
        return WR_ERR;
    }
    rd_bytes(&c, len - (REPL_HDR - 4), &f->payload);
    *used = 4 + (size_t)len;
    return WR_OK;
}

/* One field of "prev": an integer in 1..2^63-1. */
static bool
prev_field(json_t *prev, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(prev, key);

    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

bool
repl_prev_parse(struct bytes payload, struct repl_prev *out, const char **why)
{
    json_t *doc = json_loadb((const char *)payload.ptr, payload.len, 0, NULL);
    json_t *prev = json_object_get(doc, "prev");
    bool ok = true;

    *out = (struct repl_prev){0, 0, 0, 0};
    if (prev && (!json_is_object(prev) || json_object_size(prev) != 4 ||
                 !prev_field(prev, "epoch", &out->epoch) ||
                 !prev_field(prev, "lead", &out->lead) ||
                 !prev_field(prev, "end", &out->end) ||
                 !prev_field(prev, "start", &out->start))) {
        *out = (struct repl_prev){0, 0, 0, 0};
        *why = "garbage: \"prev\" is not {\"epoch\", \"lead\", \"end\", "
               "\"start\"} of positive integers";
        ok = false;
    }
    json_decref(doc);
    return ok;
}
