/*
 * store/record.h: the on-disk byte layout of segment headers, records and
 * segment summaries (private to store/). store/record.c documents the
 * layout, the validity rule and the workflow for changing the format.
 */
#ifndef WARREN_STORE_RECORD_H
#define WARREN_STORE_RECORD_H

#include "base/base.h"

#include <assert.h>

/* ---- segment header */

#define SEG_MAGIC          "WRNLOG"
#define SEG_FORMAT_VERSION 1
#define SEG_HDR_SIZE       40

struct seg_hdr {
    uint64_t no;      /* segment number, as in the file name */
    uint64_t salt;    /* random per file: seeds every record checksum */
    uint64_t next_id; /* next message id when the file was created */
};

void rec_hdr_encode(uint8_t out[SEG_HDR_SIZE], const struct seg_hdr *h);
/* Returns false (with *why) unless p holds a valid header. */
bool rec_hdr_decode(const uint8_t *p, size_t n, struct seg_hdr *h,
                    const char **why);

/* ---- records */

enum rec_type {
    REC_MSG = 1,
    REC_ACK = 2,
    REC_QDEL = 3,
    REC_BATCH = 4,
    REC_SUMMARY = 5,
    REC_SEAL = 6,
};

#define REC_HDR_SIZE   10
#define REC_MAX_LEN    (1u << 30)
#define REC_BATCH_SIZE (REC_HDR_SIZE + 4)
#define REC_SEAL_SIZE  (REC_HDR_SIZE + 12)
/* Upper bound of the summary record's own framing beyond its sections. */
#define REC_SUMMARY_OVERHEAD (REC_HDR_SIZE + 3 * 10)

/* MSG flags */
#define REC_F_TRANSIENT 0x01 /* never recovered */
#define REC_F_MOVED     0x02 /* a copy written by compaction */
#define REC_F_ALL       0x03

static_assert(REC_HDR_SIZE == 4 + 4 + 1 + 1, "record header layout");
static_assert(SEG_HDR_SIZE == 6 + 2 + 8 + 8 + 8 + 4 + 4, "segment header");

/* The version this build writes for a type. */
uint8_t rec_version(enum rec_type type);

enum rec_status {
    REC_OK,
    REC_SHORT, /* fewer bytes than the header or the length claims */
    REC_BAD,   /* bad length, checksum, type, version or payload */
};

struct rec {
    uint8_t type;
    uint8_t version;
    uint32_t len; /* whole record, header included */
    struct bytes payload;
};

/*
 * Checks the record at p (avail bytes from p to the end of what was read)
 * that sits at byte offset off of a segment with this salt. On REC_OK
 * fills *out (payload is a view into p) and the payload is known to
 * decode. On REC_SHORT/REC_BAD sets *why to a static description.
 */
enum rec_status rec_check(const uint8_t *p, size_t avail, uint64_t salt,
                          uint32_t off, struct rec *out, const char **why);

/* Fills the 10-byte header of a record whose payload is already in place
   at rec + REC_HDR_SIZE, len = whole record; computes the checksum. */
void rec_finish(uint8_t *rec, uint32_t len, uint8_t type, uint64_t salt,
                uint32_t off);

/* ---- varints (unsigned LEB128, at most 10 bytes) */

size_t rec_varint_len(uint64_t v);
uint8_t *rec_varint_put(uint8_t *p, uint64_t v);
void rec_buf_varint(struct buf *b, uint64_t v);
bool rec_rd_varint(struct cursor *c, uint64_t *v);

/* ---- MSG */

struct rec_msg {
    uint64_t id;
    uint8_t flags;
    uint32_t nqids;
    const uint8_t *qids; /* nqids big-endian u64 */
    struct bytes meta;
    struct bytes body;
};

/* Bytes of a whole MSG record. */
size_t rec_msg_size(uint64_t id, uint32_t nqids, size_t meta_len,
                    size_t body_len);
/* Encodes a whole MSG record of size bytes (rec_msg_size) at dst, which
   lands at offset off of a segment with this salt. */
void rec_msg_encode(uint8_t *dst, size_t size, uint64_t id, uint8_t flags,
                    const uint64_t *qids, uint32_t nqids, struct bytes meta,
                    struct bytes body, uint64_t salt, uint32_t off);
bool rec_msg_decode(struct bytes payload, struct rec_msg *m);

static inline uint64_t
rec_msg_qid(const struct rec_msg *m, uint32_t i)
{
    return be64_load(m->qids + 8 * (size_t)i);
}

/* ---- ACK: one queue, a sorted batch of ids, delta-encoded */

/* Appends the ACK payload for ids (strictly increasing, n >= 1). */
void rec_ack_payload(struct buf *out, uint64_t qid, const uint64_t *ids,
                     size_t n);

struct rec_ack_it {
    struct cursor c;
    uint64_t qid;
    uint64_t left;
    uint64_t id;
    bool started;
};

bool rec_ack_begin(struct bytes payload, struct rec_ack_it *it);
/* Next id in increasing order; false at the end (or on a bad payload,
   which rec_check has already ruled out for records it accepted). */
bool rec_ack_next(struct rec_ack_it *it, uint64_t *id);

/* ---- QDEL: every message of qid with id < upto is gone */

void rec_qdel_payload(struct buf *out, uint64_t qid, uint64_t upto);
bool rec_qdel_decode(struct bytes payload, uint64_t *qid, uint64_t *upto);

/* ---- BATCH marker: starts every write unit */

void rec_batch_encode(uint8_t *dst, uint32_t unit_len, uint64_t salt,
                      uint32_t off);

/* ---- SEAL: the last record of a sealed segment */

void rec_seal_encode(uint8_t *dst, uint32_t summary_off, uint64_t next_id,
                     uint64_t salt, uint32_t off);
bool rec_seal_decode(struct bytes payload, uint32_t *summary_off,
                     uint64_t *next_id);

/* ---- SUMMARY: the index of a sealed segment */

/* One MSG record as the summary lists it. */
struct rec_sum_msg {
    uint64_t id;
    uint8_t flags;
    uint32_t set; /* index into the segment's queue-id sets */
    uint32_t off; /* record offset in the segment */
    uint32_t meta_len;
    uint32_t body_len;
};

/* Builds the msgs and tombs sections incrementally (head segment). */
struct rec_sumb {
    struct buf sets; /* encoded queue-id sets */
    struct buf msgs;
    struct buf tombs;
    uint32_t nsets;
    uint32_t nmsgs;
    uint32_t ntombs;
    uint64_t last_id;
    uint32_t last_off;
};

void rec_sumb_init(struct rec_sumb *b);
void rec_sumb_fini(struct rec_sumb *b);
void rec_sumb_add_set(struct rec_sumb *b, const uint64_t *qids, uint32_t n);
void rec_sumb_add_msg(struct rec_sumb *b, const struct rec_sum_msg *m);
void rec_sumb_add_tomb(struct rec_sumb *b, uint8_t type, struct bytes pl);
/* Bytes the SUMMARY record would take now (upper bound). */
size_t rec_sumb_record_size(const struct rec_sumb *b);
/* Appends the whole SUMMARY record for offset off to out; returns its
   length. */
size_t rec_summary_encode(struct buf *out, const struct rec_sumb *b,
                          uint64_t salt, uint32_t off);

struct rec_sum {
    uint32_t nsets;
    struct bytes sets;
    uint32_t nmsgs;
    struct bytes msgs;
    uint32_t ntombs;
    struct bytes tombs;
};

/* Splits and fully validates a SUMMARY payload. */
bool rec_sum_decode(struct bytes payload, struct rec_sum *s);

/* Iterates the sets section: n queue ids (big-endian u64) at *qids. */
bool rec_sum_set_next(struct cursor *c, uint32_t *n, const uint8_t **qids);

struct rec_sum_it {
    struct cursor c;
    uint64_t id;
    uint32_t off;
};

void rec_sum_msgs_begin(const struct rec_sum *s, struct rec_sum_it *it);
bool rec_sum_msg_next(struct rec_sum_it *it, struct rec_sum_msg *m);

struct rec_tomb {
    uint8_t type; /* REC_ACK or REC_QDEL */
    uint8_t version;
    struct bytes payload;
};

bool rec_sum_tomb_next(struct cursor *c, struct rec_tomb *t);

/* ---- manifest: the segments that must exist (see record.c) */

#define MF_MAGIC          "WRNMAN"
#define MF_FORMAT_VERSION 1
#define MF_HDR_SIZE       20
#define MF_ENTRY_SIZE     12

struct mf_entry {
    uint32_t no;       /* segment number */
    uint64_t first_id; /* its header's next_id */
};

/* Appends manifest version seq listing e[0..n) (numbers increasing). */
void rec_manifest_encode(struct buf *out, uint64_t seq,
                         const struct mf_entry *e, size_t n);
/* Checks the manifest at p[0..len) (trailing bytes ignored). Returns
   false with *why, or true with *seq and *n set; read the entries with
   rec_manifest_entry(p, i, ...). */
bool rec_manifest_decode(const uint8_t *p, size_t len, uint64_t *seq,
                         uint32_t *n, const char **why);
void rec_manifest_entry(const uint8_t *p, uint32_t i, struct mf_entry *e);

#endif
