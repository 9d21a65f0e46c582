/*
 * Unit tests for vhost/dedup.c, the deduplication cache: keys from a
 * header (strings by bytes, numbers by value), from message-id when the
 * header is "message_id", none without the header; TTL expiry (the
 * cache's and a message's x-cache-ttl); FIFO eviction at x-cache-size
 * with entries reused; the arguments read by dedup_from_args.
 */
#include "amqp/amqp_methods.gen.h"
#include "amqp/ftable.h"
#include "test/harness/t.h"
#include "vhost/dedup.h"
#include "vhost/dedup_log.h"

/* A headers table body with one longstr entry (and an int x-cache-ttl
 * when ttl >= 0). */
static struct bytes
hdrs(struct buf *b, const char *k, const char *v, int64_t ttl)
{
    size_t m;

    buf_init(b);
    m = ftable_begin(b);
    if (k)
        fenc_cstr(b, k, v);
    if (ttl >= 0)
        fenc_int(b, "x-cache-ttl", ttl);
    ftable_end(b, m);
    return bytes_of(b->data + 4, b->len - 4);
}

static struct dedup_key
key_of(struct dedup *d, const char *v)
{
    struct buf b;
    struct dedup_key k;

    T_ASSERT(
        dedup_key(d, hdrs(&b, DEDUP_DEFAULT_HEADER, v, -1), BYTES_NULL, &k));
    buf_fini(&b);
    return k;
}

T_CASE(keys_come_from_the_header_only)
{
    struct dedup *d = dedup_new(8, -1, DEDUP_DEFAULT_HEADER);
    struct dedup_key a = key_of(d, "a"), a2 = key_of(d, "a"),
                     b = key_of(d, "b");
    struct buf t;
    struct dedup_key k;

    T_EQ_MEM(a.h, 16, a2.h, 16);
    T_ASSERT(memcmp(a.h, b.h, 16) != 0);
    T_EQ_INT(a.ttl_ms, -1);
    T_ASSERT(!dedup_key(d, hdrs(&t, "other", "a", -1), BYTES_NULL, &k));
    buf_fini(&t);
    T_ASSERT(!dedup_key(d, BYTES_NULL, BYTES_NULL, &k));
    dedup_free(d);
}

T_CASE(message_id_header_falls_back_to_the_property)
{
    struct dedup *d = dedup_new(8, -1, "message_id");
    struct buf p;
    struct dedup_key k1, k2;

    buf_init(&p);
    buf_put_u16(&p, 1u << 7); /* message-id only */
    buf_put_shortstr(&p, BYTES_LIT("m-1"));
    T_ASSERT(dedup_key(d, BYTES_NULL, buf_bytes(&p), &k1));
    T_ASSERT(dedup_key(d, BYTES_NULL, buf_bytes(&p), &k2));
    T_EQ_MEM(k1.h, 16, k2.h, 16);
    buf_reset(&p);
    buf_put_u16(&p, 0);
    T_ASSERT(!dedup_key(d, BYTES_NULL, buf_bytes(&p), &k1));
    buf_fini(&p);
    dedup_free(d);
}

T_CASE(seen_until_the_ttl_runs_out)
{
    struct dedup *d = dedup_new(8, 100, DEDUP_DEFAULT_HEADER);
    struct dedup_key a = key_of(d, "a");
    uint64_t lsn = 0;
    struct dedup_stats st;

    T_ASSERT(!dedup_seen(d, &a, 1000, &lsn));
    dedup_add(d, &a, 1000, 42);
    T_ASSERT(dedup_seen(d, &a, 1099, &lsn));
    T_EQ_INT(lsn, 42);
    T_ASSERT(!dedup_seen(d, &a, 1100, &lsn)); /* expired: removed */
    dedup_stats(d, &st);
    T_EQ_INT(st.entries, 0);
    /* A message's own x-cache-ttl overrides the cache's. */
    struct buf b;
    struct dedup_key k;
    T_ASSERT(dedup_key(d, hdrs(&b, DEDUP_DEFAULT_HEADER, "a", 5000), BYTES_NULL,
                       &k));
    buf_fini(&b);
    T_EQ_INT(k.ttl_ms, 5000);
    dedup_add(d, &k, 2000, 0);
    T_ASSERT(dedup_seen(d, &k, 6999, &lsn));
    T_ASSERT(!dedup_seen(d, &k, 7000, &lsn));
    dedup_free(d);
}

T_CASE(full_cache_evicts_the_oldest_first)
{
    struct dedup *d = dedup_new(3, -1, DEDUP_DEFAULT_HEADER);
    const char *ks[] = {"a", "b", "c", "d", "e"};
    struct dedup_key k[5];
    struct dedup_stats st;
    uint64_t lsn;

    for (int i = 0; i < 5; i++) {
        k[i] = key_of(d, ks[i]);
        dedup_add(d, &k[i], 10, 0);
        dedup_add(d, &k[i], 10, 0); /* held already: no change */
    }
    T_ASSERT(!dedup_seen(d, &k[0], 11, &lsn));
    T_ASSERT(!dedup_seen(d, &k[1], 11, &lsn));
    for (int i = 2; i < 5; i++)
        T_ASSERT(dedup_seen(d, &k[i], 11, &lsn));
    dedup_stats(d, &st);
    T_EQ_INT(st.entries, 3);
    T_EQ_INT(st.size, 3);
    /* A million adds stay within the size. */
    for (int i = 0; i < 1000000; i++) {
        struct dedup_key x = {{0}, -1};
        memcpy(x.h, &i, sizeof(i));
        dedup_add(d, &x, 10, 0);
    }
    dedup_stats(d, &st);
    T_EQ_INT(st.entries, 3);
    dedup_free(d);
}

/* Random adds, lookups and expiries against a model: a key inserted as
 * the t-th insert leaves at the (t + size)-th, or when found expired. */
T_CASE(random_churn_matches_a_model)
{
    enum { SIZE = 37, KEYS = 300, OPS = 200000 };
    struct dedup *d = dedup_new(SIZE, -1, DEDUP_DEFAULT_HEADER);
    static bool live[KEYS];
    static uint64_t expires[KEYS];
    static int by_ins[OPS];
    struct dedup_key k;
    struct dedup_stats st;
    uint64_t now = 1, lsn;
    int inserts = 0, nlive = 0;

    srand(7);
    for (int op = 0; op < OPS; op++) {
        int id = rand() % KEYS;
        bool seen, model;

        memset(&k, 0, sizeof(k));
        memcpy(k.h, &id, sizeof(id));
        k.h[5] = (uint8_t)(id * 31); /* spread the low bits a little */
        k.ttl_ms = rand() % 4 ? -1 : rand() % 50;
        now += (uint64_t)(rand() % 3);
        seen = dedup_seen(d, &k, now, &lsn);
        model = live[id] && expires[id] > now;
        if (live[id] && !model) { /* the lookup removed it */
            live[id] = false;
            nlive--;
        }
        T_EQ_INT(seen, model);
        if (!seen) {
            if (inserts >= SIZE) {
                int old = by_ins[inserts - SIZE];
                if (old >= 0 && live[old]) {
                    live[old] = false;
                    nlive--;
                }
            }
            dedup_add_new(d, &k, now, (uint64_t)op);
            by_ins[inserts++] = id;
            /* a later insert of the same key is a new slot */
            for (int t = 0; t < inserts - 1; t++) {
                if (by_ins[t] == id)
                    by_ins[t] = -1;
            }
            live[id] = true;
            nlive++;
            expires[id] = k.ttl_ms < 0 ? UINT64_MAX : now + (uint64_t)k.ttl_ms;
            if (expires[id] == 0)
                expires[id] = 1;
        }
        dedup_stats(d, &st);
        T_EQ_INT(st.entries, nlive);
        T_ASSERT(st.entries <= SIZE);
        if (inserts > OPS / 20)
            break;
    }
    dedup_free(d);
}

/* Only keys of logged messages are saved, oldest first, with the time
 * they have left; loading skips what expired meanwhile. */
T_CASE(snapshot_keeps_logged_keys_in_order)
{
    struct dedup *d = dedup_new(3, 1000, DEDUP_DEFAULT_HEADER);
    struct dedup *e = dedup_new(2, -1, DEDUP_DEFAULT_HEADER);
    struct dedup_key a = key_of(d, "a"), b = key_of(d, "b"), c = key_of(d, "c"),
                     t = key_of(d, "t"), f = key_of(d, "f");
    struct dedup_stats st;
    struct cursor cur;
    struct buf out;
    uint64_t lsn;

    f.ttl_ms = 10;
    dedup_add(d, &t, 100, 0); /* transient: not saved */
    dedup_add(d, &a, 100, 7);
    dedup_add(d, &b, 100, 8);
    dedup_add(d, &c, 100, 9); /* evicts t */
    buf_init(&out);
    dedup_save(d, 500, 1000000, &out); /* 600 ms left for a, b, c */
    cur_init(&cur, out.data, out.len);
    /* into a cache of 2, 5 s later by its own clock, 100 ms later by
     * the wall: the oldest does not fit */
    T_ASSERT(dedup_load(e, &cur, 5000, 1000100));
    T_EQ_INT(cur.left, 0);
    dedup_stats(e, &st);
    T_EQ_INT(st.entries, 2);
    T_ASSERT(!dedup_seen(e, &a, 5000, &lsn));
    T_ASSERT(dedup_seen(e, &b, 5000, &lsn));
    T_EQ_INT(lsn, 0);
    T_ASSERT(dedup_seen(e, &c, 5499, &lsn));
    T_ASSERT(!dedup_seen(e, &c, 5500, &lsn)); /* 500 ms were left */
    /* loaded keys are saved again; expired ones are not loaded */
    buf_reset(&out);
    dedup_save(e, 5000, 1000100, &out);
    T_EQ_INT(out.len, 4 + 24);
    dedup_add(d, &f, 500, 3);
    buf_reset(&out);
    dedup_save(d, 500, 1000000, &out);
    cur_init(&cur, out.data, out.len);
    dedup_free(e);
    e = dedup_new(8, -1, DEDUP_DEFAULT_HEADER);
    T_ASSERT(dedup_load(e, &cur, 0, 1000010)); /* f expired */
    dedup_stats(e, &st);
    T_EQ_INT(st.entries, 2);
    /* cut short: refused */
    cur_init(&cur, out.data, out.len - 1);
    T_ASSERT(!dedup_load(e, &cur, 0, 1000000));
    buf_fini(&out);
    dedup_free(d);
    dedup_free(e);
}

T_CASE(arguments_turn_it_on_and_set_it)
{
    struct buf b;
    size_t m;
    struct dedup *d;
    struct dedup_stats st;
    struct dedup_key k;
    struct buf h;

    T_ASSERT(dedup_from_args(BYTES_NULL) == NULL);
    buf_init(&b);
    m = ftable_begin(&b);
    fenc_bool(&b, "x-message-deduplication", false);
    ftable_end(&b, m);
    T_ASSERT(dedup_from_args(bytes_of(b.data + 4, b.len - 4)) == NULL);
    buf_reset(&b);
    m = ftable_begin(&b);
    fenc_bool(&b, "x-message-deduplication", true);
    fenc_int(&b, "x-cache-size", 9);
    fenc_int(&b, "x-cache-ttl", 250);
    fenc_cstr(&b, "x-deduplication-header", "order");
    ftable_end(&b, m);
    d = dedup_from_args(bytes_of(b.data + 4, b.len - 4));
    T_ASSERT(d != NULL);
    dedup_stats(d, &st);
    T_EQ_INT(st.size, 9);
    T_ASSERT(dedup_key(d, hdrs(&h, "order", "1", -1), BYTES_NULL, &k));
    T_EQ_INT(k.ttl_ms, 250);
    buf_fini(&h);
    dedup_free(d);
    buf_reset(&b);
    m = ftable_begin(&b);
    fenc_bool(&b, "x-message-deduplication", true);
    ftable_end(&b, m);
    d = dedup_from_args(bytes_of(b.data + 4, b.len - 4));
    dedup_stats(d, &st);
    T_EQ_INT(st.size, DEDUP_DEFAULT_SIZE);
    dedup_free(d);
    buf_fini(&b);
}

/* ---- the journal's format (dedup_log.h) */

struct seen {
    char text[512];
};

static void
on_rec(void *arg, const struct dedup_log_rec *r)
{
    struct seen *s = arg;
    size_t n = strlen(s->text);

    snprintf(s->text + n, sizeof(s->text) - n, "%s%c:%.*s", n ? " " : "",
             r->kind, (int)r->name.len, (const char *)r->name.ptr);
    if (r->kind == 'q' || r->kind == 'x') {
        n = strlen(s->text);
        snprintf(s->text + n, sizeof(s->text) - n, ":%u:%llu", r->h[0],
                 (unsigned long long)r->expires);
    }
}

static void
journal(struct buf *b)
{
    uint8_t h[16] = {7};

    buf_init(b);
    buf_append(b, DEDUP_LOG_MAGIC, 4);
    dedup_log_put(b, 'q', bytes_str("dq"), h, 1234);
    h[0] = 8;
    dedup_log_put(b, 'x', bytes_str("dx"), h, UINT64_MAX);
    dedup_log_put(b, 'Q', bytes_str("dq"), NULL, 0);
}

T_CASE(journal_records_read_back_in_order)
{
    struct buf b;
    struct seen s = {{0}};

    journal(&b);
    T_EQ_INT(dedup_log_read(b.data, b.len, on_rec, &s), b.len);
    T_EQ_STR(s.text, "q:dq:7:1234 x:dx:8:18446744073709551615 Q:dq");
    buf_fini(&b);
}

T_CASE(journal_torn_tail_ends_it_at_the_last_whole_record)
{
    struct buf b;
    struct seen s = {{0}};
    size_t whole;

    journal(&b);
    whole = b.len;
    {
        uint8_t h[16] = {9};

        dedup_log_put(&b, 'q', bytes_str("dq"), h, 99);
    }
    /* every cut inside the last record: the first three stay */
    for (size_t cut = whole; cut < b.len; cut++) {
        s.text[0] = '\0';
        T_EQ_INT(dedup_log_read(b.data, cut, on_rec, &s), whole);
        T_EQ_STR(s.text, "q:dq:7:1234 x:dx:8:18446744073709551615 Q:dq");
    }
    /* a flipped byte in a record: it and everything after are dropped */
    b.data[4 + 8 + 2] ^= 1;
    s.text[0] = '\0';
    T_EQ_INT(dedup_log_read(b.data, b.len, on_rec, &s), 4);
    T_EQ_STR(s.text, "");
    /* not a journal */
    T_EQ_INT(dedup_log_read((const uint8_t *)"WDJ0", 4, on_rec, &s), 0);
    buf_fini(&b);
}

T_CASE(commit_out_says_which_key_and_until_when)
{
    struct dedup *d = dedup_new(4, 1000, DEDUP_DEFAULT_HEADER);
    struct buf hdr;
    uint8_t h[16];
    uint64_t until = 0, lsn;

    buf_init(&hdr);
    fenc_cstr(&hdr, DEDUP_DEFAULT_HEADER, "k");
    T_ASSERT(!dedup_check(d, buf_bytes(&hdr), BYTES_NULL, 50, &lsn));
    T_ASSERT(dedup_commit_out(d, 50, 9, h, &until));
    T_EQ_INT(until, 1050);
    T_ASSERT(dedup_check(d, buf_bytes(&hdr), BYTES_NULL, 60, &lsn));
    /* a duplicate leaves nothing to commit */
    T_ASSERT(!dedup_commit_out(d, 60, 9, h, &until));
    buf_fini(&hdr);
    dedup_free(d);
}

static const struct t_case cases[] = {
    T_REG(journal_records_read_back_in_order),
    T_REG(journal_torn_tail_ends_it_at_the_last_whole_record),
    T_REG(commit_out_says_which_key_and_until_when),
    T_REG(keys_come_from_the_header_only),
    T_REG(message_id_header_falls_back_to_the_property),
    T_REG(seen_until_the_ttl_runs_out),
    T_REG(full_cache_evicts_the_oldest_first),
    T_REG(random_churn_matches_a_model),
    T_REG(snapshot_keeps_logged_keys_in_order),
    T_REG(arguments_turn_it_on_and_set_it),
};
T_MAIN(cases)
