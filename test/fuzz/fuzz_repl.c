/*
 * fuzz_repl: the replication stream's parsers (cluster/repl.c, frames;
 * store/replica.c, the records inside RECS frames; vhost/side.c, the
 * side records inside SIDE frames) against hostile
 * bytes. A mirror receives whatever its leader's node sends; a bug or a
 * damaged link there must end in a clear error and a dropped link, never
 * a crash, an over-read or a wait without end.
 *
 * The input's first byte picks a mode:
 *
 *   raw     (0..127)   the rest is a stream: frames are parsed one after
 *                      the other as a mirror (even first byte) or a
 *                      leader (odd) would, and every RECS payload goes
 *                      through store_recs_check, every SIDE payload
 *                      through side_next. WR_OK never uses more
 *                      than the input, and no shorter prefix of a frame
 *                      parses;
 *   framed  (128..255) the rest is the payload of a RECS frame the
 *                      harness builds correctly, so the record checks
 *                      behind the frame see the fuzzer's records (and
 *                      the side record parser the same bytes); the
 *                      frame round-trips. The same bytes are also read
 *                      as the AUTH payload of a replication link, whose
 *                      "prev" (where the previous lead ended, KIP-101)
 *                      is all there or refused.
 */
#include "cluster/repl.h"
#include "fuzz_util.h"
#include "store/store.h"
#include "vhost/side.h"

static void
check_recs(struct bytes recs)
{
    const char *why = NULL;

    if (!store_recs_check(recs, 0, &why))
        FUZZ_CHECK(why != NULL);
}

/* Side records: each read stays inside the payload, and a failure says
 * why. */
static void
check_side(struct bytes side)
{
    struct cursor c;
    struct side_rec r;
    const char *why = NULL;

    cur_init(&c, side.ptr, side.len);
    while (c.left > 0) {
        size_t left = c.left;

        if (!side_next(&c, &r, &why)) {
            FUZZ_CHECK(why != NULL);
            return;
        }
        FUZZ_CHECK(c.left < left);
        FUZZ_CHECK(r.data.len <= side.len);
        FUZZ_CHECK(r.type >= SIDE_SAPP && r.type <= SIDE_DFULL);
    }
}

/* "prev" of an AUTH payload: all four fields positive, or none and a
 * reason when it is refused. */
static void
check_prev(struct bytes payload)
{
    struct repl_prev p;
    const char *why = NULL;
    bool ok = repl_prev_parse(payload, &p, &why);
    bool none = !p.epoch && !p.lead && !p.end && !p.start;

    if (!ok)
        FUZZ_CHECK(why != NULL && none);
    else
        FUZZ_CHECK(none || (p.epoch && p.lead && p.end && p.start &&
                            p.epoch <= INT64_MAX && p.end <= INT64_MAX &&
                            p.lead <= INT64_MAX && p.start <= INT64_MAX));
}

static void
raw(struct bytes in, bool from_leader)
{
    struct repl_frame f;
    const char *why = NULL;
    size_t used, u2;

    for (int n = 0; n < 64 && in.len > 0; n++) {
        int rc = repl_frame_parse(in, from_leader, &f, &used, &why);

        FUZZ_CHECK(rc == WR_OK || rc == WR_AGAIN || rc == WR_ERR);
        if (rc == WR_ERR)
            FUZZ_CHECK(why != NULL);
        if (rc != WR_OK)
            return;
        FUZZ_CHECK(used >= REPL_HDR && used <= in.len);
        FUZZ_CHECK(f.epoch > 0 && f.kind >= REPL_SNAP &&
                   (f.kind <= REPL_DCNT || f.kind == REPL_SIDE));
        for (size_t cut = 0; cut < used; cut += 1 + cut / 8)
            FUZZ_CHECK(repl_frame_parse(bytes_of(in.ptr, cut), from_leader, &f,
                                        &u2, &why) != WR_OK);
        repl_frame_parse(in, from_leader, &f, &used, &why);
        if (f.kind == REPL_RECS)
            check_recs(f.payload);
        if (f.kind == REPL_SIDE)
            check_side(f.payload);
        in = bytes_of(in.ptr + used, in.len - used);
    }
}

static void
framed(struct bytes payload)
{
    struct buf out;
    struct repl_frame f;
    const char *why = NULL;
    size_t used;

    buf_init(&out);
    repl_frame_encode(&out, REPL_RECS, 7, 42, payload);
    FUZZ_CHECK(repl_frame_parse(buf_bytes(&out), true, &f, &used, &why) ==
               WR_OK);
    FUZZ_CHECK(used == out.len && f.kind == REPL_RECS && f.epoch == 7 &&
               f.seq == 42 && bytes_eq(f.payload, payload));
    /* the same frame at a leader is refused */
    FUZZ_CHECK(repl_frame_parse(buf_bytes(&out), false, &f, &used, &why) ==
               WR_ERR);
    check_recs(payload);
    check_side(payload);
    check_prev(payload);
    buf_fini(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bytes rest;

    if (size == 0)
        return 0;
    rest = bytes_of(data + 1, size - 1);
    if (data[0] < 128)
        raw(rest, (data[0] & 1) == 0);
    else
        framed(rest);
    return 0;
}
