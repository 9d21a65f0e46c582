/*
 * Unit tests for the topic exchange: the trie against a plain recursive
 * reference matcher for every pair of patterns (words from {a, b, *, #,
 * ""}, 1 to 4 words) and routing keys (words from {a, b, ""}, 1 to 5
 * words, plus keys holding literal "*" and "#"), RabbitMQ's own topic
 * test table, pruning on unbind, the routing cache (same answers,
 * invalidation, bounds) and "#"-heavy patterns that would make a naive
 * backtracking matcher exponential.
 */
#include "exchange/topic.h"
#include "test/harness/t.h"

#define NQ 4096
static int qs[NQ];

static struct xdest
qd(int i)
{
    return (struct xdest){&qs[i], false};
}

/* ---- the reference matcher: plain recursion over word arrays */

#define MAXW 1024

struct words {
    int n;
    const char *w[MAXW];
    size_t len[MAXW];
};

/* RabbitMQ's split: "" has no words; otherwise every '.' separates. */
static void
split(const char *s, struct words *r)
{
    const char *start = s;

    r->n = 0;
    if (*s == '\0')
        return;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            T_ASSERT(r->n < MAXW);
            r->w[r->n] = start;
            r->len[r->n] = (size_t)(p - start);
            r->n++;
            start = p + 1;
            if (*p == '\0')
                break;
        }
    }
}

static bool
word_eq(const struct words *a, int i, const char *lit)
{
    return a->len[i] == strlen(lit) && memcmp(a->w[i], lit, a->len[i]) == 0;
}

static bool
ref_match(const struct words *p, int pi, const struct words *k, int ki)
{
    if (pi == p->n)
        return ki == k->n;
    if (word_eq(p, pi, "#"))
        return ref_match(p, pi + 1, k, ki) ||
               (ki < k->n && ref_match(p, pi, k, ki + 1));
    if (ki == k->n)
        return false;
    if (word_eq(p, pi, "*") || (p->len[pi] == k->len[ki] &&
                                memcmp(p->w[pi], k->w[ki], p->len[pi]) == 0))
        return ref_match(p, pi + 1, k, ki + 1);
    return false;
}

static bool
ref(const char *pattern, const char *key)
{
    struct words p, k;

    split(pattern, &p);
    split(key, &k);
    return ref_match(&p, 0, &k, 0);
}

/* ---- generating every word sequence over an alphabet */

struct strs {
    char **v;
    size_t n, cap;
};

static void
strs_push(struct strs *s, const char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = strdup(str);
}

static void
gen(struct strs *out, const char *const *alpha, int na, int maxw, char *buf,
    size_t len, int depth)
{
    for (int i = 0; i < na; i++) {
        size_t l = len;
        if (depth > 0)
            buf[l++] = '.';
        strcpy(buf + l, alpha[i]);
        strs_push(out, buf);
        if (depth + 1 < maxw)
            gen(out, alpha, na, maxw, buf, l + strlen(alpha[i]), depth + 1);
        buf[len] = '\0';
    }
}

static void
strs_free(struct strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static void
all_patterns(struct strs *p)
{
    static const char *const alpha[] = {"a", "b", "*", "#", ""};
    char buf[64] = "";

    gen(p, alpha, 5, 4, buf, 0, 0);
}

static void
all_keys(struct strs *k)
{
    static const char *const alpha[] = {"a", "b", ""};
    static const char *const wild[] = {"a", "*", "#", ""};
    char buf[64] = "";

    gen(k, alpha, 3, 5, buf, 0, 0);
    gen(k, wild, 4, 3, buf, 0, 0); /* "*" and "#" are literal in keys */
}

static int
bind(struct exchange *x, const char *key, int q)
{
    return exchange_bind(x, bytes_str(key), BYTES_NULL, qd(q));
}

static int
unbind(struct exchange *x, const char *key, int q)
{
    return exchange_unbind(x, bytes_str(key), BYTES_NULL, qd(q));
}

static size_t
route(struct xreg *r, struct exchange *x, const char *rk, struct routeset *rs)
{
    routeset_reset(rs);
    return exchange_route(r, x, bytes_str(rk), BYTES_NULL, rs);
}

/*
 * Checks every key against patterns p[i] bound to queue i where
 * bound[i]: through routing (twice: miss then cache hit) and through the
 * uncached trie walk, which must also report each binding once.
 */
static void
check_all(struct xreg *r, struct exchange *x, const struct strs *p,
          const bool *bound, const struct strs *k)
{
    struct routeset rs;
    struct xdest *v = NULL;
    size_t vn, vcap = 0;
    static int seen[NQ];

    routeset_init(&rs);
    for (size_t ki = 0; ki < k->n; ki++) {
        size_t want = 0;
        for (size_t pi = 0; pi < p->n; pi++)
            want += bound[pi] && ref(p->v[pi], k->v[ki]);
        for (int pass = 0; pass < 2; pass++) {
            size_t got = route(r, x, k->v[ki], &rs);
            if (got != want)
                t_fail(__FILE__, __LINE__, "key '%s': %zu queues, want %zu",
                       k->v[ki], got, want);
            for (size_t pi = 0; pi < p->n; pi++) {
                bool m = bound[pi] && ref(p->v[pi], k->v[ki]);
                if (routeset_has(&rs, &qs[pi]) != m)
                    t_fail(__FILE__, __LINE__,
                           "pattern '%s' key '%s': got %d want %d", p->v[pi],
                           k->v[ki], !m, m);
            }
        }
        vn = 0;
        T_EQ_INT(
            topic__match(x->idx.topic, bytes_str(k->v[ki]), &v, &vn, &vcap),
            want);
        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < vn; i++) {
            int q = (int)((int *)v[i].ptr - qs);
            T_ASSERT(!v[i].is_exchange && q >= 0 && q < (int)p->n);
            T_ASSERT(bound[q] && ref(p->v[q], k->v[ki]));
            T_EQ_INT(seen[q]++, 0);
        }
    }
    free(v);
    routeset_fini(&rs);
}

T_CASE(exhaustive_all_patterns_in_one_trie)
{
    struct strs p = {0}, k = {0};
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    static bool bound[NQ];
    struct topic_stats st;

    all_patterns(&p);
    all_keys(&k);
    T_EQ_INT(p.n, 5 + 25 + 125 + 625);
    T_EQ_INT(k.n, (3 + 9 + 27 + 81 + 243) + (4 + 16 + 64));
    T_ASSERT(p.n <= NQ);
    for (size_t i = 0; i < p.n; i++) {
        T_EQ_INT(bind(x, p.v[i], (int)i), 1);
        bound[i] = true;
    }
    check_all(r, x, &p, bound, &k);

    /* Unbind every other pattern (pruning) and check again. */
    for (size_t i = 0; i < p.n; i += 2) {
        T_EQ_INT(unbind(x, p.v[i], (int)i), 1);
        bound[i] = false;
    }
    check_all(r, x, &p, bound, &k);

    /* Unbind the rest: the trie shrinks back to its root. */
    for (size_t i = 1; i < p.n; i += 2)
        T_EQ_INT(unbind(x, p.v[i], (int)i), 1);
    topic__stats(x->idx.topic, &st);
    T_EQ_INT(st.nodes, 1);
    T_EQ_INT(st.edges, 0);
    T_EQ_INT(exchange_binding_count(x), 0);
    memset(bound, 0, sizeof(bound));
    check_all(r, x, &p, bound, &k);
    strs_free(&p);
    strs_free(&k);
    xreg_free(r);
}

T_CASE(exhaustive_each_pattern_alone)
{
    struct strs p = {0}, k = {0};
    struct xreg *r = xreg_new();
    struct routeset rs;

    all_patterns(&p);
    all_keys(&k);
    routeset_init(&rs);
    for (size_t pi = 0; pi < p.n; pi++) {
        struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                      false, false, BYTES_NULL);
        bind(x, p.v[pi], 0);
        for (size_t ki = 0; ki < k.n; ki++) {
            bool want = ref(p.v[pi], k.v[ki]);
            if (route(r, x, k.v[ki], &rs) != (size_t)want)
                t_fail(__FILE__, __LINE__, "pattern '%s' key '%s': want %d",
                       p.v[pi], k.v[ki], want);
        }
        xreg_remove(r, x);
    }
    routeset_fini(&rs);
    strs_free(&p);
    strs_free(&k);
    xreg_free(r);
}

/* Known answers, independent of the reference matcher: RabbitMQ's
 * behaviour as checked on a live 3.10 and in its issue tracker (#1383:
 * "a.#.b" routes "a.b" and "a..b"). */
T_CASE(known_edge_cases)
{
    static const struct {
        const char *pattern, *key;
        bool match;
    } c[] = {
        {"*", "", false},
        {"#", "", true},
        {"", "", true},
        {"", ".", false},
        {"a.*", "a.", true},
        {"*", ".", false},
        {"*.*", ".", true},
        {"#", ".", true},
        {"#.#", "", true},
        {"*.#", "", false},
        {"a.#", "a", true},
        {"#.a", "a", true},
        {"a.#.#.b", "a.b", true},
        {"a.#.b", "a..b", true},
        {"a.#.b", "ab", false},
        {"a*.b", "ab.b", false},
        {"a*.b", "a*.b", true},
        {"#a", "a", false},
        {"#a", "#a", true},
        {"**", "a", false},
        {"*#", "*#", true},
        {"a.*.c.#", "a.b.c", true},
        {"#.a.#", "x.a.y", true},
        {"#.a.#", "x.b.y", false},
        {"a..b", "a..b", true},
        {"a..b", "a.b", false},
        {".", ".", true},
        {".", "", false},
        {"*.", "a.", true},
        {"*.", "a", false},
        {"a.#.b.#.c", "a.x.b.y.c", true},
        {"a.#.b.#.c", "a.b.c", true},
        {"a.#.b.#.c", "a.b.x.y", false},
    };
    struct xreg *r = xreg_new();
    struct routeset rs;

    routeset_init(&rs);
    for (size_t i = 0; i < WR_ARRAY_LEN(c); i++) {
        struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                      false, false, BYTES_NULL);
        bind(x, c[i].pattern, 0);
        if (route(r, x, c[i].key, &rs) != (size_t)c[i].match)
            t_fail(__FILE__, __LINE__, "'%s' vs '%s': want %d", c[i].pattern,
                   c[i].key, c[i].match);
        T_EQ_INT(ref(c[i].pattern, c[i].key), c[i].match);
        xreg_remove(r, x);
    }
    routeset_fini(&rs);
    xreg_free(r);
}

/* RabbitMQ's own topic routing test (test_topic_matching): 26 bindings
 * t1..t26, expected queues per key, then again after removing 5. */
static const char *const rmq_bindings[] = {
    "a.b.c", "a.*.c", "a.#.b", "a.b.b.c",       "#",
    "#.#",   "#.b",   "*.*",   "a.*",           "*.b.c",
    "a.#",   "a.#.#", "b.b.c", "a.b.b",         "a.b",
    "b.c",   "",      "*.*.*", "vodka.martini", "a.b.c",
    "*.#",   "#.*.#", "*.#.#", "#.#.#",         "*",
    "#.b.#",
};

struct rmq_expect {
    const char *key;
    int t[16]; /* 1-based queue numbers, 0-terminated */
};

static void
rmq_check(struct xreg *r, struct exchange *x, const struct rmq_expect *e,
          size_t n)
{
    struct routeset rs;

    routeset_init(&rs);
    for (size_t i = 0; i < n; i++) {
        bool want[27] = {false};
        size_t nwant = 0;
        for (int j = 0; e[i].t[j]; j++, nwant++)
            want[e[i].t[j]] = true;
        T_EQ_INT(route(r, x, e[i].key, &rs), nwant);
        for (int q = 1; q <= 26; q++)
            if (routeset_has(&rs, &qs[q]) != want[q])
                t_fail(__FILE__, __LINE__, "key '%s' t%d: want %d", e[i].key, q,
                       want[q]);
    }
    routeset_fini(&rs);
}

T_CASE(rabbitmq_topic_matching_table)
{
    static const struct rmq_expect before[] = {
        {"a.b.c", {1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26}},
        {"a.b", {3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26}},
        {"a.b.b", {3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26}},
        {"", {5, 6, 17, 24}},
        {"b.c.c", {5, 6, 18, 21, 22, 23, 24, 26}},
        {"a.a.a.a.a", {5, 6, 11, 12, 21, 22, 23, 24}},
        {"vodka.gin", {5, 6, 8, 21, 22, 23, 24}},
        {"vodka.martini", {5, 6, 8, 19, 21, 22, 23, 24}},
        {"b.b.c", {5, 6, 10, 13, 18, 21, 22, 23, 24, 26}},
        {"nothing.here.at.all", {5, 6, 21, 22, 23, 24}},
        {"oneword", {5, 6, 21, 22, 23, 24, 25}},
    };
    static const struct rmq_expect after[] = {
        {"a.b.c", {2, 6, 10, 12, 18, 20, 22, 23, 24, 26}},
        {"a.b", {3, 6, 7, 8, 9, 12, 15, 22, 23, 24, 26}},
        {"a.b.b", {3, 6, 7, 12, 14, 18, 22, 23, 24, 26}},
        {"", {6, 17, 24}},
        {"b.c.c", {6, 18, 22, 23, 24, 26}},
        {"a.a.a.a.a", {6, 12, 22, 23, 24}},
        {"vodka.gin", {6, 8, 22, 23, 24}},
        {"vodka.martini", {6, 8, 22, 23, 24}},
        {"b.b.c", {6, 10, 13, 18, 22, 23, 24, 26}},
        {"nothing.here.at.all", {6, 22, 23, 24}},
        {"oneword", {6, 22, 23, 24, 25}},
    };
    static const int removed[] = {1, 5, 11, 19, 21};
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);

    for (int i = 0; i < 26; i++)
        T_EQ_INT(bind(x, rmq_bindings[i], i + 1), 1);
    rmq_check(r, x, before, WR_ARRAY_LEN(before));
    for (size_t i = 0; i < WR_ARRAY_LEN(removed); i++)
        T_EQ_INT(unbind(x, rmq_bindings[removed[i] - 1], removed[i]), 1);
    rmq_check(r, x, after, WR_ARRAY_LEN(after));
    xreg_free(r);
}

T_CASE(cache_gives_same_answers_and_is_invalidated)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    struct topic *t = x->idx.topic;
    struct topic_stats st;
    struct routeset rs;

    routeset_init(&rs);
    bind(x, "a.#", 1);
    bind(x, "*.b", 2);
    T_EQ_INT(route(r, x, "a.b", &rs), 2);
    topic__stats(t, &st);
    T_EQ_INT(st.misses, 1);
    T_EQ_INT(st.hits, 0);
    T_EQ_INT(route(r, x, "a.b", &rs), 2);
    T_ASSERT(routeset_has(&rs, &qs[1]) && routeset_has(&rs, &qs[2]));
    topic__stats(t, &st);
    T_EQ_INT(st.hits, 1);
    T_EQ_INT(st.cache_valid, 1);
    /* An unmatched key is cached too (as empty). */
    T_EQ_INT(route(r, x, "z", &rs), 0);
    T_EQ_INT(route(r, x, "z", &rs), 0);
    topic__stats(t, &st);
    T_EQ_INT(st.hits, 2);
    T_EQ_INT(st.misses, 2);

    /* A bind invalidates: the next route recomputes and sees it. */
    T_EQ_INT(bind(x, "#.b", 3), 1);
    topic__stats(t, &st);
    T_EQ_INT(st.cache_valid, 0);
    T_EQ_INT(route(r, x, "a.b", &rs), 3);
    T_ASSERT(routeset_has(&rs, &qs[3]));
    topic__stats(t, &st);
    T_EQ_INT(st.misses, 3);
    T_EQ_INT(route(r, x, "a.b", &rs), 3);
    topic__stats(t, &st);
    T_EQ_INT(st.hits, 3);

    /* A failed (duplicate) bind changes nothing, cache included. */
    T_EQ_INT(bind(x, "#.b", 3), 0);
    T_EQ_INT(route(r, x, "a.b", &rs), 3);
    topic__stats(t, &st);
    T_EQ_INT(st.hits, 4);

    /* An unbind invalidates too. */
    T_EQ_INT(unbind(x, "a.#", 1), 1);
    T_EQ_INT(route(r, x, "a.b", &rs), 2);
    T_ASSERT(!routeset_has(&rs, &qs[1]));
    topic__stats(t, &st);
    T_EQ_INT(st.misses, 4);
    T_EQ_INT(route(r, x, "z", &rs), 0);
    topic__stats(t, &st);
    T_EQ_INT(st.misses, 5);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(cache_is_bounded_and_stays_correct_under_churn)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    struct topic_stats st;
    struct routeset rs;
    char key[64];

    routeset_init(&rs);
    bind(x, "*.even", 1);
    bind(x, "k.#", 2);
    bind(x, "#.7", 3);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3000; i++) {
            snprintf(key, sizeof(key), "%s.%s.%d", i % 3 ? "k" : "j",
                     i % 2 ? "odd" : "even", i % 10);
            size_t want = (i % 3 != 0) + (i % 10 == 7);
            T_EQ_INT(route(r, x, key, &rs), want);
            T_EQ_INT(routeset_has(&rs, &qs[2]), i % 3 != 0);
            T_EQ_INT(routeset_has(&rs, &qs[3]), i % 10 == 7);
        }
    }
    topic__stats(x->idx.topic, &st);
    T_ASSERT(st.cache_slots <= TOPIC_CACHE_MAX_SLOTS);
    T_ASSERT(st.cache_slots >= 8);
    T_EQ_INT(st.hits + st.misses, 9000);

    /* Results larger than the cache's bound are computed every time. */
    for (int i = 0; i < TOPIC_CACHE_MAX_DESTS + 10; i++)
        bind(x, "big.#", 100 + i);
    T_EQ_INT(route(r, x, "big.x", &rs), TOPIC_CACHE_MAX_DESTS + 10);
    topic__stats(x->idx.topic, &st);
    uint64_t misses = st.misses;
    T_EQ_INT(route(r, x, "big.x", &rs), TOPIC_CACHE_MAX_DESTS + 10);
    topic__stats(x->idx.topic, &st);
    T_EQ_INT(st.misses, misses + 1);
    routeset_fini(&rs);
    xreg_free(r);
}

/* "#"-heavy patterns: a naive backtracking matcher takes exponential
 * time here; the memo keeps it polynomial. */
T_CASE(many_hashes_stay_fast)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    char pat[256], key[256];
    struct routeset rs;
    size_t n = 0;
    uint64_t t0;

    routeset_init(&rs);
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(pat + n, sizeof(pat) - n, "#.a.");
    snprintf(pat + n, sizeof(pat) - n, "#.x");
    bind(x, pat, 1);
    bind(x, "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.y", 2);
    n = 0;
    for (int i = 0; i < 126; i++)
        n += (size_t)snprintf(key + n, sizeof(key) - n, "a.");
    key[n - 1] = '\0'; /* 126 words of "a" */
    t0 = wr_now_ms();
    for (int i = 0; i < 10; i++)
        T_EQ_INT(route(r, x, key, &rs), 0);
    key[n - 1] = '.';
    key[n] = 'x';
    key[n + 1] = '\0';
    T_EQ_INT(route(r, x, key, &rs), 1);
    T_ASSERT(routeset_has(&rs, &qs[1]));
    T_ASSERT(wr_now_ms() - t0 < 5000);
    T_ASSERT(ref(pat, key));
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(keys_longer_than_the_stack_buffer)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    struct routeset rs;
    struct buf key, pat;

    routeset_init(&rs);
    buf_init(&key);
    buf_init(&pat);
    for (int i = 0; i < 600; i++)
        buf_printf(&key, "%sw%d", i ? "." : "", i % 3);
    for (int i = 0; i < 600; i++)
        buf_printf(&pat, "%s%s", i ? "." : "", i == 300 ? "*" : "");
    /* pat: 600 words, empty but one "*": not matching w0.w1... */
    exchange_bind(x, buf_bytes(&pat), BYTES_NULL, qd(1));
    bind(x, "#", 2);
    bind(x, "w0.#", 3);
    bind(x, "*.#.w2", 4); /* word 599 is w2 (599 % 3 == 2) */
    bind(x, "*.#.w1", 5);
    T_EQ_INT(exchange_route(r, x, buf_bytes(&key), BYTES_NULL, &rs), 3);
    T_ASSERT(routeset_has(&rs, &qs[2]) && routeset_has(&rs, &qs[3]) &&
             routeset_has(&rs, &qs[4]));
    routeset_reset(&rs);
    T_EQ_INT(exchange_route(r, x, buf_bytes(&pat), BYTES_NULL, &rs), 2);
    T_ASSERT(routeset_has(&rs, &qs[1]) && routeset_has(&rs, &qs[2]));
    T_EQ_INT(exchange_unbind(x, buf_bytes(&pat), BYTES_NULL, qd(1)), 1);
    buf_fini(&key);
    buf_fini(&pat);
    routeset_fini(&rs);
    xreg_free(r);
}

T_CASE(thousand_bindings_route_correctly)
{
    struct xreg *r = xreg_new();
    struct exchange *x = xreg_add(r, BYTES_LIT("t"), EXCHANGE_TOPIC, false,
                                  false, false, BYTES_NULL);
    struct routeset rs;
    char key[64];

    routeset_init(&rs);
    /* 1,000 bindings in the shape of a real deployment. */
    for (int i = 0; i < 1000; i++) {
        switch (i % 4) {
        case 0:
            snprintf(key, sizeof(key), "region%d.orders.*", i);
            break;
        case 1:
            snprintf(key, sizeof(key), "region%d.#", i);
            break;
        case 2:
            snprintf(key, sizeof(key), "*.user%d.created", i);
            break;
        default:
            snprintf(key, sizeof(key), "#.tenant%d", i);
            break;
        }
        T_EQ_INT(bind(x, key, i), 1);
    }
    T_EQ_INT(route(r, x, "region0.orders.new", &rs), 1);
    T_ASSERT(routeset_has(&rs, &qs[0]));
    T_EQ_INT(route(r, x, "region1.a.b.c", &rs), 1);
    T_EQ_INT(route(r, x, "x.user2.created", &rs), 1);
    T_EQ_INT(route(r, x, "region1.user2.created.tenant3", &rs), 2);
    T_ASSERT(routeset_has(&rs, &qs[1]) && routeset_has(&rs, &qs[3]));
    T_EQ_INT(route(r, x, "nothing", &rs), 0);
    routeset_fini(&rs);
    xreg_free(r);
}

static const struct t_case cases[] = {
    T_REG(exhaustive_all_patterns_in_one_trie),
    T_REG(exhaustive_each_pattern_alone),
    T_REG(known_edge_cases),
    T_REG(rabbitmq_topic_matching_table),
    T_REG(cache_gives_same_answers_and_is_invalidated),
    T_REG(cache_is_bounded_and_stays_correct_under_churn),
    T_REG(many_hashes_stay_fast),
    T_REG(keys_longer_than_the_stack_buffer),
    T_REG(thousand_bindings_route_correctly),
};

T_MAIN(cases)
