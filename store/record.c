/*
 * record.c: the byte layout of Warren's log, in one place.
 *
 * A store is a directory of segment files named by a 16-digit decimal
 * number, 0000000000000001.seg, 0000000000000002.seg, ... Numbers only
 * grow; a number is never reused. All integers are big-endian unless
 * marked varint (unsigned LEB128, at most 10 bytes).
 *
 * Segment header (40 bytes, offset 0):
 *
 *     0  "WRNLOG"          magic
 *     6  u16 version       SEG_FORMAT_VERSION (1)
 *     8  u64 number        same as the file name
 *    16  u64 salt          random, seeds every record checksum
 *    24  u64 next_id       next message id when the file was created
 *    32  u32 flags         0
 *    36  u32 checksum      low 32 bits of XXH3_64bits(bytes 0..35)
 *
 * Records follow back to back from offset 40:
 *
 *     0  u32 len           whole record, header included (10 ..= 2^30)
 *     4  u32 checksum      see the validity rule
 *     8  u8  type          enum rec_type
 *     9  u8  version       per type, see rec_version()
 *    10  payload           len - 10 bytes
 *
 * Payloads (version 1 of every type):
 *
 *   MSG     varint id, u8 flags (TRANSIENT 1, MOVED 2), varint nqids
 *           (1..65535), nqids x u64 queue id, varint meta_len, meta,
 *           body = the rest. 26 bytes of framing for one queue and a
 *           1 KiB body with ids below 2^21.
 *   ACK     u64 queue id, varint count (>= 1), varint first id, count-1 x
 *           varint delta (>= 1): the ids, strictly increasing. A busy
 *           queue's acks of one flush cost about one byte each.
 *   QDEL    u64 queue id, varint upto: every message of the queue with
 *           id < upto is gone; later ids (a redeclared queue) are not.
 *   BATCH   u32 unit length. Starts every write unit (one pwrite of one
 *           flush to one segment). See "torn tails" below.
 *   SUMMARY the index of a sealed segment, so that recovery never reads
 *           bodies of sealed segments:
 *             varint nsets, nsets x (varint n, n x u64 queue id)
 *             varint nmsgs, nmsgs x (varint zigzag(id - previous id),
 *               u8 flags, varint set index, varint (offset - previous
 *               offset), varint meta_len, varint body_len)
 *             varint ntombs, ntombs x (u8 type, u8 version, varint len,
 *               the ACK or QDEL payload as written)
 *   SEAL    u32 offset of the SUMMARY record, u64 next message id. The
 *           last record of a sealed segment; a sealed segment ends
 *           exactly at the end of its SEAL record, so recovery finds the
 *           summary with two preads from the end of the file.
 *
 * Validity rule. A record at byte offset `off` of a segment is valid iff
 * 10 <= len <= 2^30, len bytes are present, the type and version are
 * known, the payload decodes exactly (no trailing bytes, counts and
 * deltas in range), and
 *
 *     checksum == (u32)XXH3_64bits_withSeed(record + 8, len - 8,
 *                                           salt ^ (len << 32 | off))
 *
 * Seeding with the file's random salt means a record left over from
 * another file (a reused or copied file, a stale block) cannot validate;
 * seeding with len and off means a record that was shifted, or whose
 * length field was damaged, cannot validate either.
 *
 * Torn tails. Only the newest segment is ever written to, and a write
 * unit is only ever appended after the previous one, so a killed process
 * can leave only a cut-short last write. Recovery treats a damaged record
 * of the newest segment as a torn tail, and truncates there, iff no valid
 * record follows it. Any other damage is refused (the operator reruns
 * with --repair, which keeps every intact record): that covers bit rot,
 * and also the rarer hole a power loss can punch in an unsynced last
 * write unit by persisting its pages out of order, where refusing costs
 * a --repair but never a confirmed message (confirmed records were
 * synced before the next unit was written).
 *
 * The manifest. Which segment files must exist is kept apart from the
 * segments, so that a segment that went missing (deleted by hand, lost
 * with a restored backup) is noticed instead of silently taking its
 * messages with it. The store directory holds two copies, MANIFEST.0 and
 * MANIFEST.1, written alternately in place (pwrite, fdatasync), each:
 *
 *     0  "WRNMAN"          magic
 *     6  u16 version       MF_FORMAT_VERSION (1)
 *     8  u64 seq           grows by one with every write
 *    16  u32 count         n
 *    20  n x (u32 segment number, u64 first message id), numbers strictly
 *        increasing; first id is the segment header's next_id
 *    20 + 12n  u32 checksum  low 32 bits of XXH3_64bits(bytes before it)
 *
 * then zeros up to a multiple of 4096 bytes, or stale bytes of a longer
 * earlier version, which are ignored. The valid copy with the higher seq
 * is in force. Version seq goes to MANIFEST.<seq & 1>, over the copy
 * that is not in force, so a write torn by a crash leaves the previous
 * version in force; and rewriting within the file's size needs no new
 * disk blocks, so the manifest can still shrink (segments be deleted)
 * on a full disk. The store keeps it so (store/manifest.c):
 *   - a segment is listed once its file exists durably (created, the
 *     directory fsynced) and before any record in it is reported
 *     durable: the manifest never omits a segment that holds confirmed
 *     data, and never names one that a crash could legitimately undo;
 *   - a segment leaves the list durably before its file is unlinked;
 *   - a file present but not listed is one being created or deleted
 *     when the process stopped: it is read as usual.
 * A directory without either copy (written by a Warren before the
 * manifest) gets one from the segments present at its first open.
 * Downgrading: an older Warren ignores the manifest and does not keep it
 * up to date, so delete MANIFEST.0 and MANIFEST.1 before starting this
 * version again on a directory an older one has used.
 *
 * Changing the format (the workflow; keep it):
 *  1. Never change the meaning of an existing (type, version) pair or of
 *     an existing segment-header version. Old data must stay readable.
 *  2. To change a payload, add version N+1 for that type: make
 *     rec_version() return it, write the new encoder, and keep the old
 *     decoder in rec_validate()/the decoders next to the new one.
 *  3. A new record type gets a new enum rec_type number. An older Warren
 *     treats unknown types and versions as damage and refuses to open
 *     (never guesses), so say in the release notes that downgrading after
 *     the new format was written needs the old data directory.
 *  4. Add golden bytes for the new (type, version) to
 *     test/unit/test_store.c (records_golden_bytes) and keep the old
 *     vectors: they are how we know old logs still decode. The same for
 *     a new manifest version (MF_FORMAT_VERSION; keep reading the old).
 *  5. Add a seed for it to test/fuzz/corpus/fuzz_record/.
 */
#include "store/record.h"

#include <xxhash.h>

/* ---- segment header */

static uint32_t
hdr_checksum(const uint8_t *p)
{
    return (uint32_t)XXH3_64bits(p, 36);
}

void
rec_hdr_encode(uint8_t out[SEG_HDR_SIZE], const struct seg_hdr *h)
{
    memcpy(out, SEG_MAGIC, 6);
    be16_store(out + 6, SEG_FORMAT_VERSION);
    be64_store(out + 8, h->no);
    be64_store(out + 16, h->salt);
    be64_store(out + 24, h->next_id);
    be32_store(out + 32, 0);
    be32_store(out + 36, hdr_checksum(out));
}

bool
rec_hdr_decode(const uint8_t *p, size_t n, struct seg_hdr *h, const char **why)
{
    if (n < SEG_HDR_SIZE) {
        *why = "segment header is short";
        return false;
    }
    if (memcmp(p, SEG_MAGIC, 6) != 0) {
        *why = "not a Warren segment (bad magic)";
        return false;
    }
    if (be32_load(p + 36) != hdr_checksum(p)) {
        *why = "segment header checksum mismatch";
        return false;
    }
    if (be16_load(p + 6) != SEG_FORMAT_VERSION) {
        *why = "segment format version not supported by this Warren";
        return false;
    }
    h->no = be64_load(p + 8);
    h->salt = be64_load(p + 16);
    h->next_id = be64_load(p + 24);
    return true;
}

/* ---- varints */

size_t
rec_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint8_t *
rec_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

void
rec_buf_varint(struct buf *b, uint64_t v)
{
    uint8_t *p = buf_reserve(b, 10);

    b->len += (size_t)(rec_varint_put(p, v) - p);
}

bool
rec_rd_varint(struct cursor *c, uint64_t *v)
{
    uint64_t r = 0;

    for (unsigned i = 0; i < 10; i++) {
        uint8_t byte;

        if (!rd_u8(c, &byte))
            return false;
        if (i == 9 && byte > 1)
            return false; /* more than 64 bits */
        r |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool
rd_varint32(struct cursor *c, uint32_t *v)
{
    uint64_t x;

    if (!rec_rd_varint(c, &x) || x > UINT32_MAX)
        return false;
    *v = (uint32_t)x;
    return true;
}

static uint64_t
zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t
unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* ---- header and checksum */

uint8_t
rec_version(enum rec_type type)
{
    (void)type;
    return 1;
}

static uint32_t
rec_checksum(const uint8_t *rec, uint32_t len, uint64_t salt, uint32_t off)
{
    uint64_t seed = salt ^ ((uint64_t)len << 32 | off);

    return (uint32_t)XXH3_64bits_withSeed(rec + 8, len - 8, seed);
}

void
rec_finish(uint8_t *rec, uint32_t len, uint8_t type, uint64_t salt,
           uint32_t off)
{
    WR_ASSERT(len >= REC_HDR_SIZE && len <= REC_MAX_LEN);
    be32_store(rec, len);
    rec[8] = type;
    rec[9] = rec_version((enum rec_type)type);
    be32_store(rec + 4, rec_checksum(rec, len, salt, off));
}

/* ---- payload validation (version 1 of every type) */

static bool
ack_valid(struct bytes pl)
{
    struct rec_ack_it it;
    uint64_t id;

    if (!rec_ack_begin(pl, &it))
        return false;
    while (it.left > 0) {
        if (!rec_ack_next(&it, &id))
            return false;
    }
    return it.c.left == 0;
}

static bool
payload_valid(uint8_t type, uint8_t version, struct bytes pl)
{
    struct rec_msg m;
    struct rec_sum sum;
    uint64_t u64a, u64b;
    uint32_t u32;

    if (version != 1)
        return false;
    switch (type) {
    case REC_MSG:
        return rec_msg_decode(pl, &m);
    case REC_ACK:
        return ack_valid(pl);
    case REC_QDEL:
        return rec_qdel_decode(pl, &u64a, &u64b);
    case REC_BATCH:
        return pl.len == 4;
    case REC_SUMMARY:
        return rec_sum_decode(pl, &sum);
    case REC_SEAL:
        return rec_seal_decode(pl, &u32, &u64a);
    default:
        return false;
    }
}

static bool
type_known(uint8_t type)
{
    return type >= REC_MSG && type <= REC_SEAL;
}

enum rec_status
rec_check(const uint8_t *p, size_t avail, uint64_t salt, uint32_t off,
          struct rec *out, const char **why)
{
    uint32_t len;

    if (avail < REC_HDR_SIZE) {
        *why = "record header cut short";
        return REC_SHORT;
    }
    len = be32_load(p);
    if (len < REC_HDR_SIZE || len > REC_MAX_LEN) {
        *why = "bad record length";
        return REC_BAD;
    }
    if (!type_known(p[8])) {
        *why = "unknown record type (written by a newer Warren?)";
        return REC_BAD;
    }
    if (len > avail) {
        *why = "record cut short";
        return REC_SHORT;
    }
    if (be32_load(p + 4) != rec_checksum(p, len, salt, off)) {
        *why = "record checksum mismatch";
        return REC_BAD;
    }
    out->type = p[8];
    out->version = p[9];
    out->len = len;
    out->payload = bytes_of(p + REC_HDR_SIZE, len - REC_HDR_SIZE);
    if (out->version != rec_version((enum rec_type)out->type)) {
        *why = "unsupported record version (written by a newer Warren?)";
        return REC_BAD;
    }
    if (!payload_valid(out->type, out->version, out->payload)) {
        *why = "malformed record payload";
        return REC_BAD;
    }
    return REC_OK;
}

/* ---- MSG */

size_t
rec_msg_size(uint64_t id, uint32_t nqids, size_t meta_len, size_t body_len)
{
    return REC_HDR_SIZE + rec_varint_len(id) + 1 + rec_varint_len(nqids) +
           8 * (size_t)nqids + rec_varint_len(meta_len) + meta_len + body_len;
}

void
rec_msg_encode(uint8_t *dst, size_t size, uint64_t id, uint8_t flags,
               const uint64_t *qids, uint32_t nqids, struct bytes meta,
               struct bytes body, uint64_t salt, uint32_t off)
{
    uint8_t *p = dst + REC_HDR_SIZE;

    p = rec_varint_put(p, id);
    *p++ = flags;
    p = rec_varint_put(p, nqids);
    for (uint32_t i = 0; i < nqids; i++, p += 8)
        be64_store(p, qids[i]);
    p = rec_varint_put(p, meta.len);
    if (meta.len)
        memcpy(p, meta.ptr, meta.len);
    p += meta.len;
    if (body.len)
        memcpy(p, body.ptr, body.len);
    p += body.len;
    WR_ASSERT((size_t)(p - dst) == size);
    rec_finish(dst, (uint32_t)size, REC_MSG, salt, off);
}

bool
rec_msg_decode(struct bytes payload, struct rec_msg *m)
{
    struct cursor c;
    uint64_t nqids, meta_len;
    struct bytes qids;

    cur_init(&c, payload.ptr, payload.len);
    if (!rec_rd_varint(&c, &m->id) || !rd_u8(&c, &m->flags))
        return false;
    if (m->flags & ~REC_F_ALL)
        return false;
    if (!rec_rd_varint(&c, &nqids) || nqids == 0 || nqids > 65535)
        return false;
    if (!rd_bytes(&c, 8 * nqids, &qids))
        return false;
    if (!rec_rd_varint(&c, &meta_len) || meta_len > c.left)
        return false;
    m->nqids = (uint32_t)nqids;
    m->qids = qids.ptr;
    rd_bytes(&c, meta_len, &m->meta);
    rd_bytes(&c, c.left, &m->body);
    return true;
}

/* ---- ACK */

void
rec_ack_payload(struct buf *out, uint64_t qid, const uint64_t *ids, size_t n)
{
    WR_ASSERT(n >= 1);
    buf_put_u64(out, qid);
    rec_buf_varint(out, n);
    rec_buf_varint(out, ids[0]);
    for (size_t i = 1; i < n; i++) {
        WR_ASSERT(ids[i] > ids[i - 1]);
        rec_buf_varint(out, ids[i] - ids[i - 1]);
    }
}

bool
rec_ack_begin(struct bytes payload, struct rec_ack_it *it)
{
    cur_init(&it->c, payload.ptr, payload.len);
    it->started = false;
    it->id = 0;
    if (!rd_u64(&it->c, &it->qid) || !rec_rd_varint(&it->c, &it->left))
        return false;
    /* every id takes at least one byte */
    return it->left >= 1 && it->left <= it->c.left;
}

bool
rec_ack_next(struct rec_ack_it *it, uint64_t *id)
{
    uint64_t v;

    if (it->left == 0 || !rec_rd_varint(&it->c, &v))
        return false;
    if (it->started) {
        if (v == 0 || it->id + v < it->id)
            return false;
        v += it->id;
    }
    it->started = true;
    it->id = v;
    it->left--;
    *id = v;
    return true;
}

/* ---- QDEL */

void
rec_qdel_payload(struct buf *out, uint64_t qid, uint64_t upto)
{
    buf_put_u64(out, qid);
    rec_buf_varint(out, upto);
}

bool
rec_qdel_decode(struct bytes payload, uint64_t *qid, uint64_t *upto)
{
    struct cursor c;

    cur_init(&c, payload.ptr, payload.len);
    return rd_u64(&c, qid) && rec_rd_varint(&c, upto) && c.left == 0;
}

/* ---- BATCH and SEAL */

void
rec_batch_encode(uint8_t *dst, uint32_t unit_len, uint64_t salt, uint32_t off)
{
    be32_store(dst + REC_HDR_SIZE, unit_len);
    rec_finish(dst, REC_BATCH_SIZE, REC_BATCH, salt, off);
}

void
rec_seal_encode(uint8_t *dst, uint32_t summary_off, uint64_t next_id,
                uint64_t salt, uint32_t off)
{
    be32_store(dst + REC_HDR_SIZE, summary_off);
    be64_store(dst + REC_HDR_SIZE + 4, next_id);
    rec_finish(dst, REC_SEAL_SIZE, REC_SEAL, salt, off);
}

bool
rec_seal_decode(struct bytes payload, uint32_t *summary_off, uint64_t *next_id)
{
    if (payload.len != 12)
        return false;
    *summary_off = be32_load(payload.ptr);
    *next_id = be64_load(payload.ptr + 4);
    return true;
}

/* ---- SUMMARY */

void
rec_sumb_init(struct rec_sumb *b)
{
    memset(b, 0, sizeof(*b));
    buf_init(&b->sets);
    buf_init(&b->msgs);
    buf_init(&b->tombs);
}

void
rec_sumb_fini(struct rec_sumb *b)
{
    buf_fini(&b->sets);
    buf_fini(&b->msgs);
    buf_fini(&b->tombs);
}

void
rec_sumb_add_set(struct rec_sumb *b, const uint64_t *qids, uint32_t n)
{
    rec_buf_varint(&b->sets, n);
    for (uint32_t i = 0; i < n; i++)
        buf_put_u64(&b->sets, qids[i]);
    b->nsets++;
}

void
rec_sumb_add_msg(struct rec_sumb *b, const struct rec_sum_msg *m)
{
    uint8_t *p = buf_reserve(&b->msgs, 10 * 5 + 1), *start = p;

    WR_ASSERT(b->nmsgs == 0 || m->off > b->last_off);
    p = rec_varint_put(p, zigzag((int64_t)(m->id - b->last_id)));
    *p++ = m->flags;
    p = rec_varint_put(p, m->set);
    p = rec_varint_put(p, m->off - b->last_off);
    p = rec_varint_put(p, m->meta_len);
    p = rec_varint_put(p, m->body_len);
    b->msgs.len += (size_t)(p - start);
    b->last_id = m->id;
    b->last_off = m->off;
    b->nmsgs++;
}

void
rec_sumb_add_tomb(struct rec_sumb *b, uint8_t type, struct bytes pl)
{
    buf_put_u8(&b->tombs, type);
    buf_put_u8(&b->tombs, rec_version((enum rec_type)type));
    rec_buf_varint(&b->tombs, pl.len);
    buf_append(&b->tombs, pl.ptr, pl.len);
    b->ntombs++;
}

size_t
rec_sumb_record_size(const struct rec_sumb *b)
{
    return REC_SUMMARY_OVERHEAD + b->sets.len + b->msgs.len + b->tombs.len;
}

size_t
rec_summary_encode(struct buf *out, const struct rec_sumb *b, uint64_t salt,
                   uint32_t off)
{
    size_t start = out->len, len;

    buf_reserve(out, rec_sumb_record_size(b));
    out->len += REC_HDR_SIZE;
    rec_buf_varint(out, b->nsets);
    buf_append(out, b->sets.data, b->sets.len);
    rec_buf_varint(out, b->nmsgs);
    buf_append(out, b->msgs.data, b->msgs.len);
    rec_buf_varint(out, b->ntombs);
    buf_append(out, b->tombs.data, b->tombs.len);
    len = out->len - start;
    rec_finish(out->data + start, (uint32_t)len, REC_SUMMARY, salt, off);
    return len;
}

bool
rec_sum_set_next(struct cursor *c, uint32_t *n, const uint8_t **qids)
{
    uint64_t k;
    struct bytes v;

    if (!rec_rd_varint(c, &k) || k == 0 || k > 65535)
        return false;
    if (!rd_bytes(c, 8 * k, &v))
        return false;
    *n = (uint32_t)k;
    *qids = v.ptr;
    return true;
}

void
rec_sum_msgs_begin(const struct rec_sum *s, struct rec_sum_it *it)
{
    cur_init(&it->c, s->msgs.ptr, s->msgs.len);
    it->id = 0;
    it->off = 0;
}

bool
rec_sum_msg_next(struct rec_sum_it *it, struct rec_sum_msg *m)
{
    uint64_t zz, off_delta;
    int64_t delta;

    if (!rec_rd_varint(&it->c, &zz) || !rd_u8(&it->c, &m->flags) ||
        !rd_varint32(&it->c, &m->set) || !rec_rd_varint(&it->c, &off_delta) ||
        !rd_varint32(&it->c, &m->meta_len) ||
        !rd_varint32(&it->c, &m->body_len))
        return false;
    if (m->flags & ~REC_F_ALL)
        return false;
    delta = unzigzag(zz);
    if (off_delta > UINT32_MAX - it->off)
        return false;
    m->id = it->id + (uint64_t)delta;
    m->off = it->off + (uint32_t)off_delta;
    it->id = m->id;
    it->off = m->off;
    return true;
}

bool
rec_sum_tomb_next(struct cursor *c, struct rec_tomb *t)
{
    uint64_t len;

    if (!rd_u8(c, &t->type) || !rd_u8(c, &t->version) ||
        !rec_rd_varint(c, &len) || !rd_bytes(c, len, &t->payload))
        return false;
    if (t->type != REC_ACK && t->type != REC_QDEL)
        return false;
    return payload_valid(t->type, t->version, t->payload);
}

static bool
rd_count(struct cursor *c, uint32_t *n)
{
    uint64_t v;

    /* every element takes at least one byte */
    if (!rec_rd_varint(c, &v) || v > c->left)
        return false;
    *n = (uint32_t)v;
    return true;
}

static bool
sum_msgs_valid(struct rec_sum *s)
{
    struct rec_sum_it it;
    struct rec_sum_msg m;

    rec_sum_msgs_begin(s, &it);
    for (uint32_t i = 0; i < s->nmsgs; i++) {
        uint32_t prev_off = it.off;

        if (!rec_sum_msg_next(&it, &m) || m.set >= s->nsets)
            return false;
        if (i > 0 && m.off <= prev_off)
            return false;
    }
    s->msgs.len -= it.c.left;
    return true;
}

bool
rec_sum_decode(struct bytes payload, struct rec_sum *s)
{
    struct cursor c;
    const uint8_t *start;
    const uint8_t *qids;
    struct rec_tomb t;
    uint32_t n;

    cur_init(&c, payload.ptr, payload.len);
    if (!rd_count(&c, &s->nsets) || s->nsets > 65535)
        return false;
    start = c.p;
    for (uint32_t i = 0; i < s->nsets; i++) {
        if (!rec_sum_set_next(&c, &n, &qids))
            return false;
    }
    s->sets = bytes_of(start, (size_t)(c.p - start));
    if (!rd_count(&c, &s->nmsgs))
        return false;
    /* the msgs section ends where its last entry ends */
    s->msgs = bytes_of(c.p, c.left);
    if (!sum_msgs_valid(s))
        return false;
    c.p += s->msgs.len;
    c.left -= s->msgs.len;
    if (!rd_count(&c, &s->ntombs))
        return false;
    start = c.p;
    for (uint32_t i = 0; i < s->ntombs; i++) {
        if (!rec_sum_tomb_next(&c, &t))
            return false;
    }
    s->tombs = bytes_of(start, (size_t)(c.p - start));
    return c.left == 0;
}

/* ---- manifest */

static uint32_t
mf_checksum(const uint8_t *p, size_t n)
{
    return (uint32_t)XXH3_64bits(p, n);
}

void
rec_manifest_encode(struct buf *out, uint64_t seq, const struct mf_entry *e,
                    size_t n)
{
    size_t start = out->len;
    uint8_t *p = buf_reserve(out, MF_HDR_SIZE + MF_ENTRY_SIZE * n + 4);

    WR_ASSERT(n <= UINT32_MAX);
    memcpy(p, MF_MAGIC, 6);
    be16_store(p + 6, MF_FORMAT_VERSION);
    be64_store(p + 8, seq);
    be32_store(p + 16, (uint32_t)n);
    p += MF_HDR_SIZE;
    for (size_t i = 0; i < n; i++, p += MF_ENTRY_SIZE) {
        be32_store(p, e[i].no);
        be64_store(p + 4, e[i].first_id);
    }
    be32_store(p,
               mf_checksum(out->data + start, MF_HDR_SIZE + MF_ENTRY_SIZE * n));
    out->len += MF_HDR_SIZE + MF_ENTRY_SIZE * n + 4;
}

bool
rec_manifest_decode(const uint8_t *p, size_t len, uint64_t *seq, uint32_t *n,
                    const char **why)
{
    uint64_t need;
    uint32_t prev = 0;

    if (len < MF_HDR_SIZE + 4 || memcmp(p, MF_MAGIC, 6) != 0) {
        *why = "not a Warren manifest";
        return false;
    }
    if (be16_load(p + 6) != MF_FORMAT_VERSION) {
        *why = "manifest version not supported by this Warren";
        return false;
    }
    *n = be32_load(p + 16);
    need = MF_HDR_SIZE + (uint64_t)MF_ENTRY_SIZE * *n;
    if (need + 4 > len || be32_load(p + need) != mf_checksum(p, need)) {
        *why = "manifest checksum mismatch (torn or damaged)";
        return false;
    }
    for (uint32_t i = 0; i < *n; i++) {
        uint32_t no = be32_load(p + MF_HDR_SIZE + MF_ENTRY_SIZE * (size_t)i);

        if (no <= prev) {
            *why = "manifest segment numbers out of order";
            return false;
        }
        prev = no;
    }
    *seq = be64_load(p + 8);
    return true;
}

void
rec_manifest_entry(const uint8_t *p, uint32_t i, struct mf_entry *e)
{
    const uint8_t *q = p + MF_HDR_SIZE + MF_ENTRY_SIZE * (size_t)i;

    e->no = be32_load(q);
    e->first_id = be64_load(q + 4);
}
