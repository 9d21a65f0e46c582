/*
 * fuzz_record.c: libFuzzer target for the store's segment reader.
 *
 * Every byte on disk may be torn or hostile; recovery must refuse or
 * repair, never crash, hang or read out of bounds. The input's first
 * byte picks a mode:
 *
 *   raw     (0..63)    the rest is a whole segment file, header included
 *                      (named after the number in its header);
 *   framed  (64..255)  a valid header, then records built from the rest,
 *                      each [u8 type][u16 len][len bytes of payload], to
 *                      which the harness adds the record header with a
 *                      correct checksum, so that the decoders behind the
 *                      checksum (MSG, ACK, QDEL, SUMMARY, SEAL...) see the
 *                      fuzzer's payloads. Type 0xFF copies its bytes
 *                      verbatim (garbage, torn data). Type 0xFE ends a
 *                      segment: if the last record was a SUMMARY a SEAL
 *                      pointing at it is added (a sealed segment whose
 *                      summary is the fuzzer's), and the next records go
 *                      to the next segment file (up to 4).
 *
 * Each input also goes straight through the in-memory decoders (the
 * manifest's included: a seed starting with "WRNMAN" reaches it). Then
 * store_open runs on the files, without and with repair. Invariant: when
 * an open succeeded and the store was closed, a plain open succeeds
 * again and reports the same number of messages.
 */
#include "store/record.h"
#include "store/store.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(x)                                                        \
    do {                                                                     \
        if (!(x)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #x);                                                     \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define SALT 0x5a17c0ffee123457ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[512];

static void
clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void
setup(void)
{
    const char *t = getenv("TMPDIR");
    struct stat st;

    if (dir[0])
        return;
    if (!t)
        t = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/warren-fuzz-record-XXXXXX", t);
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    log_set_level(LOG_ERR);
}

static void
write_file(uint32_t no, const struct buf *b)
{
    char p[1024];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%016u.seg", dir, no);
    f = fopen(p, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(b->len == 0 || fwrite(b->data, 1, b->len, f) == b->len);
    fclose(f);
}

/* ---- in-memory decoders */

static void
decode_direct(const uint8_t *p, size_t n)
{
    struct rec r;
    struct rec_sum sum;
    struct seg_hdr h;
    const char *why;
    uint64_t seq;
    uint32_t nmf;

    if (rec_check(p, n, SALT, 40, &r, &why) == REC_OK &&
        r.type == REC_SUMMARY) {
        FUZZ_CHECK(rec_sum_decode(r.payload, &sum));
    }
    rec_hdr_decode(p, n, &h, &why);
    if (rec_manifest_decode(p, n, &seq, &nmf, &why)) {
        struct mf_entry e, prev = {0, 0};

        for (uint32_t i = 0; i < nmf; i++, prev = e) {
            rec_manifest_entry(p, i, &e);
            FUZZ_CHECK(e.no > prev.no);
        }
    }
    if (rec_sum_decode(bytes_of(p, n), &sum)) {
        struct rec_sum_it it;
        struct rec_sum_msg m;
        struct cursor c;
        struct rec_tomb t;

        rec_sum_msgs_begin(&sum, &it);
        for (uint32_t i = 0; i < sum.nmsgs; i++)
            FUZZ_CHECK(rec_sum_msg_next(&it, &m) && m.set < sum.nsets);
        cur_init(&c, sum.tombs.ptr, sum.tombs.len);
        for (uint32_t i = 0; i < sum.ntombs; i++)
            FUZZ_CHECK(rec_sum_tomb_next(&c, &t));
    }
}

/* ---- building files */

static void
put_header(struct buf *b, uint32_t no)
{
    struct seg_hdr h = {no, SALT + no, 1};

    rec_hdr_encode(buf_reserve(b, SEG_HDR_SIZE), &h);
    b->len += SEG_HDR_SIZE;
}

static uint32_t
build_framed(const uint8_t *p, size_t n)
{
    struct buf b;
    uint32_t no = 1;
    size_t last_sum = 0;
    bool last_was_sum = false;

    buf_init(&b);
    put_header(&b, no);
    while (n >= 3) {
        uint8_t type = p[0];
        size_t len = WR_MIN((size_t)be16_load(p + 1), n - 3);

        p += 3;
        n -= 3;
        if (type == 0xFF) {
            buf_append(&b, p, len);
            last_was_sum = false;
        } else if (type == 0xFE) {
            if (last_was_sum) {
                uint8_t *s = buf_reserve(&b, REC_SEAL_SIZE);

                rec_seal_encode(s, (uint32_t)last_sum, 1, SALT + no,
                                (uint32_t)b.len);
                b.len += REC_SEAL_SIZE;
            }
            write_file(no, &b);
            if (++no > 4)
                break;
            buf_reset(&b);
            put_header(&b, no);
            last_was_sum = false;
            len = 0;
        } else {
            /* any type byte, with a checksum that matches */
            uint8_t *r = buf_reserve(&b, REC_HDR_SIZE + len);

            memcpy(r + REC_HDR_SIZE, p, len);
            rec_finish(r, (uint32_t)(REC_HDR_SIZE + len), type, SALT + no,
                       (uint32_t)b.len);
            last_sum = b.len;
            b.len += REC_HDR_SIZE + len;
            last_was_sum = type == REC_SUMMARY;
        }
        p += len;
        n -= len;
    }
    if (no <= 4)
        write_file(no, &b);
    buf_fini(&b);
    return no;
}

/* ---- running the store */

struct count {
    size_t n;
    uint64_t pos[64];
};

static void
on_msg(void *ctx, const struct store_recovered *m)
{
    struct count *c = ctx;

    if (c->n < 64)
        c->pos[c->n] = m->pos;
    c->n++;
}

static bool
open_close(bool repair, size_t *nmsgs)
{
    struct store_config cfg = {0};
    struct store_recover_cb cb = {on_msg};
    struct count c = {0};
    struct store *s;
    char err[1024];
    struct buf out;
    struct bytes meta, body;

    cfg.dir = dir;
    cfg.fsync = STORE_FSYNC_NEVER;
    cfg.segment_size = 4096;
    cfg.repair = repair;
    if (store_open(&cfg, &cb, &c, &s, err, sizeof(err)) != WR_OK)
        return false;
    buf_init(&out);
    for (size_t i = 0; i < c.n && i < 64; i++)
        store_read_msg(s, c.pos[i], &out, &meta, &body);
    buf_fini(&out);
    store_close(s);
    *nmsgs = c.n;
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;

    setup();
    decode_direct(data, size);
    if (size < 1)
        return 0;
    clear_dir();
    if (data[0] < 64) {
        /* named after its header's number when it has one */
        struct seg_hdr h;
        const char *why;
        struct buf b;

        buf_init(&b);
        buf_append(&b, data + 1, size - 1);
        if (!rec_hdr_decode(b.data, b.len, &h, &why) || h.no == 0 ||
            h.no > 1000)
            h.no = 1;
        write_file((uint32_t)h.no, &b);
        buf_fini(&b);
    } else {
        build_framed(data + 1, size - 1);
    }
    if (open_close(false, &n1)) {
        FUZZ_CHECK(open_close(false, &n2));
        FUZZ_CHECK(n1 == n2);
    } else if (open_close(true, &n1)) {
        FUZZ_CHECK(open_close(false, &n2));
        FUZZ_CHECK(n1 == n2);
    }
    return 0;
}

#ifdef FUZZ_RECORD_MAKE_CORPUS
/*
 * Seed generator: cc -DFUZZ_RECORD_MAKE_CORPUS ... then
 *     ./make_record_corpus test/fuzz/corpus/fuzz_record
 * writes real segment files (sealed, crashed, with fan-out, acks, queue
 * deletes and compaction copies) as raw-mode seeds, and framed seeds with
 * one record of every type.
 */
#include <sys/wait.h>

static char out_dir[512];

static void
seed(const char *name, uint8_t mode, const uint8_t *p, size_t n)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(&mode, 1, 1, f) == 1);
    FUZZ_CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    fclose(f);
}

static void
seed_files(const char *prefix, const char *from)
{
    DIR *d = opendir(from);
    struct dirent *e;

    FUZZ_CHECK(d);
    while ((e = readdir(d)) != NULL) {
        char p[1024], name[256];
        struct buf b;
        FILE *f;
        long n;

        if (!strstr(e->d_name, ".seg"))
            continue;
        snprintf(p, sizeof(p), "%s/%s", from, e->d_name);
        f = fopen(p, "rb");
        FUZZ_CHECK(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf_init(&b);
        FUZZ_CHECK(fread(buf_reserve(&b, (size_t)n + 1), 1, (size_t)n, f) ==
                   (size_t)n);
        fclose(f);
        snprintf(name, sizeof(name), "%s-%.16s.bin", prefix, e->d_name);
        if (n <= 60000)
            seed(name, 0, b.data, (size_t)n);
        buf_fini(&b);
    }
    closedir(d);
}

static struct store *
gen_open(const char *d)
{
    struct store_config cfg = {0};
    struct store *s;
    char err[1024];

    cfg.dir = d;
    cfg.fsync = STORE_FSYNC_NEVER;
    cfg.segment_size = 4096;
    FUZZ_CHECK(store_open(&cfg, NULL, NULL, &s, err, sizeof(err)) == WR_OK);
    return s;
}

static uint64_t
gen_msg(struct store *s, const uint64_t *q, size_t nq, size_t blen)
{
    uint8_t body[1500];
    struct store_msg_in m = {q, nq, BYTES_LIT("meta"), {body, blen}, false};
    uint64_t id, pos;

    memset(body, 'b', sizeof(body));
    FUZZ_CHECK(store_append_msg(s, &m, &id, &pos) > 0);
    return id;
}

static void
gen_settle(struct store *s)
{
    for (int i = 0; i < 200; i++) {
        store_flush(s);
        store_poll(s, NULL, NULL);
        usleep(1000);
    }
}

static void
gen_store(const char *d, bool crash)
{
    uint64_t q[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, ids[40];
    struct store *s = gen_open(d);

    for (int i = 0; i < 40; i++)
        ids[i] =
            gen_msg(s, &q[i % 3], 1 + (i % 7 == 0), (size_t)(i * 37 % 300));
    gen_msg(s, q, 10, 5); /* wide fan-out */
    for (int i = 0; i < 40; i += 3)
        store_append_ack(s, q[i % 3], ids[i]);
    store_append_queue_delete(s, q[2]);
    gen_settle(s);
    if (crash)
        _exit(0);
    store_close(s);
}

static void
framed(struct buf *b, uint8_t type, const void *p, size_t n)
{
    buf_put_u8(b, type);
    buf_put_u16(b, (uint16_t)n);
    buf_append(b, p, n);
}

int
main(int argc, char **argv)
{
    char d[600], cmd[700];
    uint64_t q[2] = {7, 9}, ids[3] = {1, 2, 5};
    struct buf b, pl;
    struct rec_sumb sb;
    struct rec_sum_msg sm = {1, 0, 0, 40 + REC_BATCH_SIZE, 4, 3};
    uint8_t rec[256];
    size_t n;
    pid_t pid;

    FUZZ_CHECK(argc == 2);
    snprintf(out_dir, sizeof(out_dir), "%s", argv[1]);
    snprintf(d, sizeof(d), "/tmp/warren-gen-record-%d", (int)getpid());
    /* a clean store: every segment sealed */
    gen_store(d, false);
    seed_files("sealed", d);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    FUZZ_CHECK(system(cmd) == 0);
    /* a crashed one: the newest unsealed */
    pid = fork();
    if (pid == 0)
        gen_store(d, true);
    FUZZ_CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);
    seed_files("crashed", d);
    FUZZ_CHECK(system(cmd) == 0);
    seed("empty.bin", 0, NULL, 0);

    /* framed: one record of every type, then a sealed segment whose
       summary the fuzzer may mutate, then garbage */
    buf_init(&b);
    buf_init(&pl);
    buf_reserve(&pl, 64);
    n = rec_msg_size(1, 2, 4, 3);
    rec_msg_encode(rec, n, 1, 0, q, 2, BYTES_LIT("meta"), BYTES_LIT("bdy"), 0,
                   0);
    framed(&b, REC_BATCH, "\0\0\0\0", 4);
    framed(&b, REC_MSG, rec + REC_HDR_SIZE, n - REC_HDR_SIZE);
    rec_ack_payload(&pl, 7, ids, 3);
    framed(&b, REC_ACK, pl.data, pl.len);
    buf_reset(&pl);
    rec_qdel_payload(&pl, 9, 2);
    framed(&b, REC_QDEL, pl.data, pl.len);
    rec_sumb_init(&sb);
    rec_sumb_add_set(&sb, q, 2);
    rec_sumb_add_msg(&sb, &sm);
    buf_reset(&pl);
    rec_ack_payload(&pl, 7, ids, 3);
    rec_sumb_add_tomb(&sb, REC_ACK, buf_bytes(&pl));
    buf_reset(&pl);
    rec_summary_encode(&pl, &sb, 0, 0);
    framed(&b, REC_SUMMARY, pl.data + REC_HDR_SIZE, pl.len - REC_HDR_SIZE);
    framed(&b, 0xFE, NULL, 0);
    framed(&b, REC_MSG, rec + REC_HDR_SIZE, n - REC_HDR_SIZE);
    framed(&b, 0xFF, "\x01\x02garbage", 9);
    seed("framed-every-type.bin", 0x80, b.data, b.len);
    buf_reset(&b);
    framed(&b, REC_MSG, rec + REC_HDR_SIZE, n - REC_HDR_SIZE);
    framed(&b, REC_SEAL, "\0\0\0\x28\0\0\0\0\0\0\0\x02", 12);
    seed("framed-bad-seal.bin", 0x80, b.data, b.len);
    rec_sumb_fini(&sb);
    buf_fini(&b);
    buf_fini(&pl);
    return 0;
}
#endif
