/*
 * topic.c: the topic exchange's index, a trie over the words of binding
 * keys with '*' and '#' wildcards, and a bounded routing cache.
 *
 * Words. A routing key or binding key is cut at every '.'; empty words
 * count, and the empty key has no words at all (RabbitMQ's
 * split_topic_key):
 *     ""      -> (no words)          "a"     -> a
 *     "."     -> "", ""              "a..b"  -> a, "", b
 *     ".a"    -> "", a               "a."    -> a, ""
 *
 * Wildcards. In a binding key, a word that is exactly "*" matches exactly
 * one word, and a word that is exactly "#" matches zero or more words,
 * anywhere and any number of times. Every binding key is valid: "*" or
 * "#" that is not a whole word is literal ("a*", "#b", "**", "*#").
 *
 *     binding     matches                          does not match
 *     "a.*"       "a.b", "a.", "a.*"               "a", "a.b.c"
 *     "*"         "a", "*", "#"                    "", ".", "a.b"
 *     "*.*"       ".", "a.b"                       "", "a"
 *     "#"         everything, "" and "." included
 *     "a.#"       "a", "a.", "a.b", "a.b.c"        "b.a", ""
 *     "#.a"       "a", "b.a", ".a"                 "a.b"
 *     "#.a.#"     "a", "x.a", "a.y", "x.a.y"       "x.b.y"
 *     "a.#.#.b"   "a.b", "a.x.b", "a.x.y.b"        "a", "b.a"
 *     "*.#"       "a", ".", "a.b"                  ""
 *     ""          ""                               ".", "a"
 *     "a*.b"      "a*.b" only (literal)            "ab.b"
 *     "a..b"      "a..b"                           "a.b"
 *
 * Trie. The root stands for the empty prefix. A node's children are: at
 * most one "*" child, at most one "#" child, and literal children found
 * through one open-addressing table per topic exchange keyed by
 * (parent node, word); each binding sits in the vector (dvec) of the
 * node its last word leads to. Unbinding prunes nodes left without
 * bindings and children.
 *
 * Matching walks the trie with the routing key's words (rabbit's
 * trie_match): at word i of n, follow the literal child for word i and
 * the "*" child to word i+1, and the "#" child at every word j >= i; at
 * the end (i == n) take the node's bindings and those reached through
 * "#" children that consume nothing. Backtracking over "#" is made
 * polynomial by a memo in each "#" node: (match generation, smallest
 * word index already expanded); since everything below a "#" node
 * depends only on the word index it is entered at, expanding it again
 * at a later index is redundant. A node below the nearest "#" ancestor
 * is then reached at most once per word index, so a match costs
 * O(nodes x words) at worst ("#.#.#.#..." patterns included) and
 * reports each binding at most once.
 *
 * Cache. Routing keys map to their results in a direct-mapped table of
 * at most TOPIC_CACHE_MAX_SLOTS entries, created on first use with 8 and
 * doubled when a live entry would be evicted. An entry is valid while
 * its epoch equals the topic's; every bind and unbind bumps the epoch,
 * which invalidates all entries at once without touching them. Entries
 * keep their key and result buffers when overwritten, so the steady
 * state allocates nothing even when keys churn. Results of more than
 * TOPIC_CACHE_MAX_DESTS destinations and keys longer than
 * TOPIC_CACHE_MAX_KEY bytes are not cached.
 */
#include "exchange/topic.h"

#include <stdlib.h>

enum { TN_ROOT, TN_LIT, TN_STAR, TN_HASH };

/* Words of a key handled without allocating; longer keys (never from
 * AMQP, whose keys are shortstrs) use the heap. */
#define TOPIC_STACK_WORDS 257

struct tnode {
    struct tnode *parent;
    struct tnode *star, *hash;
    uint64_t h; /* TN_LIT: edge hash of (parent, word) */
    uint8_t *word;
    uint32_t wlen;
    uint32_t nlit; /* literal children */
    uint8_t kind;
    struct dvec dv;    /* bindings ending here */
    uint64_t memo_gen; /* TN_HASH: match that last expanded it */
    uint32_t memo_min; /* ... from this word index on */
};

struct tedge {
    uint64_t h;
    struct tnode *n; /* NULL: empty slot */
};

struct tcache {
    uint64_t epoch; /* valid when == topic.epoch */
    uint64_t h;
    uint8_t *key;
    struct xdest *d;
    uint32_t klen, kcap, n, dcap;
};

struct topic {
    struct tnode root;
    struct tedge *edges; /* power-of-two size, load <= 1/2 */
    size_t ecap, en;
    size_t nodes;
    uint64_t match_gen;
    struct tcache *cache;
    size_t ccap;
    uint64_t epoch; /* starts at 1; slots start at 0 (invalid) */
    uint64_t hits, misses;
};

/* The state of one trie walk. */
struct tmatch {
    struct topic *t;
    const struct bytes *w;
    const uint64_t *wh; /* hash of each word */
    uint32_t nw;
    uint64_t gen;
    struct xdest **v;
    size_t *n, *cap;
};

static uint64_t
fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t
edge_hash(const struct tnode *parent, uint64_t wh)
{
    uint64_t h = wh ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ULL);

    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

static bool
word_is(struct bytes w, char c)
{
    return w.len == 1 && w.ptr[0] == (uint8_t)c;
}

/*
 * Cuts key into words, writing at most max of them to w. Returns the
 * number of words (which may exceed max).
 */
static size_t
split_words(struct bytes key, struct bytes *w, size_t max)
{
    size_t n = 0, start = 0;

    if (key.len == 0)
        return 0;
    for (size_t i = 0; i <= key.len; i++) {
        if (i == key.len || key.ptr[i] == '.') {
            if (n < max)
                w[n] = bytes_of(key.ptr + start, i - start);
            n++;
            start = i + 1;
        }
    }
    return n;
}

/* ---- literal edges */

static struct tnode *
edge_find(const struct topic *t, const struct tnode *parent, struct bytes w,
          uint64_t wh)
{
    size_t mask = t->ecap - 1;
    uint64_t h;
    size_t i;

    if (parent->nlit == 0)
        return NULL;
    h = edge_hash(parent, wh);
    for (i = (size_t)h & mask; t->edges[i].n; i = (i + 1) & mask) {
        const struct tnode *n = t->edges[i].n;
        if (t->edges[i].h == h && n->parent == parent && n->wlen == w.len &&
            (w.len == 0 || memcmp(n->word, w.ptr, w.len) == 0))
            return t->edges[i].n;
    }
    return NULL;
}

static void
edge_place(struct tedge *e, size_t cap, struct tnode *n)
{
    size_t i = (size_t)n->h & (cap - 1);

    while (e[i].n)
        i = (i + 1) & (cap - 1);
    e[i] = (struct tedge){n->h, n};
}

static void
edge_insert(struct topic *t, struct tnode *n)
{
    if (2 * (t->en + 1) > t->ecap) {
        size_t cap = t->ecap ? 2 * t->ecap : 16;
        struct tedge *e = xcalloc(cap, sizeof(*e));
        for (size_t i = 0; i < t->ecap; i++)
            if (t->edges[i].n)
                edge_place(e, cap, t->edges[i].n);
        free(t->edges);
        t->edges = e;
        t->ecap = cap;
    }
    edge_place(t->edges, t->ecap, n);
    t->en++;
}

/* Removes n's slot with backward-shift deletion (no tombstones). */
static void
edge_remove(struct topic *t, struct tnode *n)
{
    size_t mask = t->ecap - 1;
    size_t i = (size_t)n->h & mask;

    while (t->edges[i].n != n) {
        WR_ASSERT(t->edges[i].n != NULL);
        i = (i + 1) & mask;
    }
    t->edges[i].n = NULL;
    for (size_t j = (i + 1) & mask; t->edges[j].n; j = (j + 1) & mask) {
        size_t home = (size_t)t->edges[j].h & mask;
        /* Move j back into the hole at i unless its home lies in the
         * cyclic range (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->edges[i] = t->edges[j];
            t->edges[j].n = NULL;
            i = j;
        }
    }
    t->en--;
}

/* ---- trie maintenance */

static struct tnode *
node_new(struct topic *t, struct tnode *parent, int kind)
{
    struct tnode *n = xcalloc(1, sizeof(*n));

    n->parent = parent;
    n->kind = (uint8_t)kind;
    t->nodes++;
    return n;
}

static struct tnode *
child_get_or_create(struct topic *t, struct tnode *p, struct bytes w)
{
    struct tnode *n;
    uint64_t wh;

    if (word_is(w, '*')) {
        if (!p->star)
            p->star = node_new(t, p, TN_STAR);
        return p->star;
    }
    if (word_is(w, '#')) {
        if (!p->hash)
            p->hash = node_new(t, p, TN_HASH);
        return p->hash;
    }
    wh = fnv1a(w.ptr, w.len);
    n = edge_find(t, p, w, wh);
    if (n)
        return n;
    n = node_new(t, p, TN_LIT);
    n->word = xmemdup(w.len ? w.ptr : (const uint8_t *)"", w.len);
    n->wlen = (uint32_t)w.len;
    n->h = edge_hash(p, wh);
    edge_insert(t, n);
    p->nlit++;
    return n;
}

static bool
node_is_empty(const struct tnode *n)
{
    return n->dv.n == 0 && !n->star && !n->hash && n->nlit == 0;
}

static void
node_free(struct topic *t, struct tnode *n)
{
    dvec__fini(&n->dv);
    free(n->word);
    free(n);
    t->nodes--;
}

/* Detaches and frees empty nodes from n up to (not including) the root. */
static void
prune(struct topic *t, struct tnode *n)
{
    while (n->kind != TN_ROOT && node_is_empty(n)) {
        struct tnode *p = n->parent;
        if (n->kind == TN_STAR)
            p->star = NULL;
        else if (n->kind == TN_HASH)
            p->hash = NULL;
        else {
            edge_remove(t, n);
            p->nlit--;
        }
        node_free(t, n);
        n = p;
    }
}

static void *
topic_new(void)
{
    struct topic *t = xcalloc(1, sizeof(*t));

    t->root.kind = TN_ROOT;
    t->nodes = 1;
    t->epoch = 1;
    return t;
}

/* Frees wildcard node n and the wildcard nodes under it (literal nodes
 * are freed through the edge table). */
static void
free_wild(struct tnode *n)
{
    if (!n)
        return;
    free_wild(n->star);
    free_wild(n->hash);
    dvec__fini(&n->dv);
    free(n);
}

/*
 * Frees every node but the root. Literal nodes are all in the edge
 * table; a wildcard node hangs off the root, a literal node or another
 * wildcard node, so all of them are reached (once) before any literal
 * node is freed.
 */
static void
free_nodes(struct topic *t)
{
    free_wild(t->root.star);
    free_wild(t->root.hash);
    for (size_t i = 0; i < t->ecap; i++) {
        if (t->edges[i].n) {
            free_wild(t->edges[i].n->star);
            free_wild(t->edges[i].n->hash);
        }
    }
    for (size_t i = 0; i < t->ecap; i++) {
        struct tnode *c = t->edges[i].n;
        if (c) {
            dvec__fini(&c->dv);
            free(c->word);
            free(c);
        }
    }
}

static void
topic_free(void *idx)
{
    struct topic *t = idx;

    if (!t)
        return;
    free_nodes(t);
    dvec__fini(&t->root.dv);
    free(t->edges);
    for (size_t i = 0; i < t->ccap; i++) {
        free(t->cache[i].key);
        free(t->cache[i].d);
    }
    free(t->cache);
    free(t);
}

static void
topic_bind(void *idx, struct xbind *b)
{
    struct topic *t = idx;
    struct bytes wbuf[TOPIC_STACK_WORDS], *w = wbuf;
    size_t nw = split_words(b->key, wbuf, TOPIC_STACK_WORDS);
    struct tnode *n = &t->root;

    if (nw > TOPIC_STACK_WORDS) {
        w = xmalloc(nw * sizeof(*w));
        split_words(b->key, w, nw);
    }
    for (size_t i = 0; i < nw; i++)
        n = child_get_or_create(t, n, w[i]);
    if (w != wbuf)
        free(w);
    b->owner = n;
    dvec__add(&n->dv, b);
    t->epoch++;
}

static void
topic_unbind(void *idx, struct xbind *b)
{
    struct topic *t = idx;
    struct tnode *n = b->owner;

    dvec__del(&n->dv, b);
    prune(t, n);
    t->epoch++;
}

/* ---- matching */

static void
out_append(struct tmatch *m, const struct dvec *dv)
{
    if (dv->n == 0)
        return;
    if (*m->n + dv->n > *m->cap) {
        *m->cap = WR_MAX(2 * *m->cap, *m->n + dv->n);
        *m->cap = WR_MAX(*m->cap, 16);
        *m->v = xrealloc(*m->v, *m->cap * sizeof(**m->v));
    }
    for (uint32_t i = 0; i < dv->n; i++)
        (*m->v)[(*m->n)++] = dv->v[i].dest;
}

static void match_from(struct tmatch *m, struct tnode *n, uint32_t pos);

/* A "#" node h entered at word pos: it may swallow words pos..nw-1,
 * so continue below it from every index j >= pos (memoized). */
static void
skip_any(struct tmatch *m, struct tnode *h, uint32_t pos)
{
    uint32_t end = m->nw + 1;

    if (h->memo_gen == m->gen) {
        if (pos >= h->memo_min)
            return;
        end = h->memo_min;
    }
    h->memo_gen = m->gen;
    h->memo_min = pos;
    for (uint32_t j = pos; j < end; j++)
        match_from(m, h, j);
}

/* Matches words pos..nw-1 below node n. */
static void
match_from(struct tmatch *m, struct tnode *n, uint32_t pos)
{
    if (pos == m->nw) {
        out_append(m, &n->dv);
        if (n->hash)
            skip_any(m, n->hash, pos);
        return;
    }
    if (n->nlit) {
        struct tnode *c = edge_find(m->t, n, m->w[pos], m->wh[pos]);
        if (c)
            match_from(m, c, pos + 1);
    }
    if (n->star)
        match_from(m, n->star, pos + 1);
    if (n->hash)
        skip_any(m, n->hash, pos);
}

size_t
topic__match(struct topic *t, struct bytes rk, struct xdest **v, size_t *n,
             size_t *cap)
{
    struct bytes wbuf[TOPIC_STACK_WORDS], *w = wbuf;
    uint64_t hbuf[TOPIC_STACK_WORDS], *wh = hbuf;
    size_t nw = split_words(rk, wbuf, TOPIC_STACK_WORDS);
    size_t before = *n;
    struct tmatch m;

    if (nw > TOPIC_STACK_WORDS) {
        if (nw > UINT32_MAX - 1)
            return 0;
        w = xmalloc(nw * sizeof(*w));
        wh = xmalloc(nw * sizeof(*wh));
        split_words(rk, w, nw);
    }
    for (size_t i = 0; i < nw; i++)
        wh[i] = fnv1a(w[i].ptr, w[i].len);
    m = (struct tmatch){t, w, wh, (uint32_t)nw, ++t->match_gen, v, n, cap};
    match_from(&m, &t->root, 0);
    if (w != wbuf) {
        free(w);
        free(wh);
    }
    return *n - before;
}

/* ---- routing cache */

static struct tcache *
cache_lookup(struct topic *t, struct bytes rk, uint64_t h)
{
    struct tcache *e;

    if (t->ccap == 0)
        return NULL;
    e = &t->cache[h & (t->ccap - 1)];
    if (e->epoch == t->epoch && e->h == h && e->klen == rk.len &&
        (rk.len == 0 || memcmp(e->key, rk.ptr, rk.len) == 0))
        return e;
    return NULL;
}

static void
cache_entry_free(struct tcache *e)
{
    free(e->key);
    free(e->d);
    memset(e, 0, sizeof(*e));
}

/* Doubles the table, keeping the live entries that do not collide. */
static void
cache_grow(struct topic *t)
{
    size_t cap = 2 * t->ccap;
    struct tcache *c = xcalloc(cap, sizeof(*c));

    for (size_t i = 0; i < t->ccap; i++) {
        struct tcache *e = &t->cache[i];
        struct tcache *to = &c[e->h & (cap - 1)];
        if (e->epoch == t->epoch && to->epoch == 0)
            *to = *e;
        else
            cache_entry_free(e);
    }
    free(t->cache);
    t->cache = c;
    t->ccap = cap;
}

static void
cache_store(struct topic *t, struct bytes rk, uint64_t h, const struct xdest *d,
            size_t n)
{
    struct tcache *e;

    if (rk.len > TOPIC_CACHE_MAX_KEY || n > TOPIC_CACHE_MAX_DESTS)
        return;
    if (t->ccap == 0) {
        t->ccap = 8;
        t->cache = xcalloc(t->ccap, sizeof(*t->cache));
    }
    e = &t->cache[h & (t->ccap - 1)];
    if (e->epoch == t->epoch && t->ccap < TOPIC_CACHE_MAX_SLOTS) {
        cache_grow(t);
        e = &t->cache[h & (t->ccap - 1)];
    }
    if (e->kcap < rk.len) {
        e->kcap = (uint32_t)WR_MAX(rk.len, 32);
        e->key = xrealloc(e->key, e->kcap);
    }
    if (e->dcap < n) {
        e->dcap = (uint32_t)WR_MAX(n, 4);
        e->d = xrealloc(e->d, e->dcap * sizeof(*e->d));
    }
    if (rk.len)
        memcpy(e->key, rk.ptr, rk.len);
    if (n)
        memcpy(e->d, d, n * sizeof(*d));
    e->klen = (uint32_t)rk.len;
    e->n = (uint32_t)n;
    e->h = h;
    e->epoch = t->epoch;
}

static size_t
topic_route(void *idx, struct xroute *c)
{
    struct topic *t = idx;
    struct routeset *rs = c->rs;
    size_t total = 0;

    if (t->nodes == 1 && t->root.dv.n == 0)
        return 0; /* no bindings */
    for (size_t k = 0; k < c->nrk; k++) {
        struct bytes rk = c->rks[k];
        uint64_t h = fnv1a(rk.ptr, rk.len);
        struct tcache *e = cache_lookup(t, rk, h);
        const struct xdest *d;
        size_t n;

        if (e) {
            t->hits++;
            d = e->d;
            n = e->n;
        } else {
            t->misses++;
            rs->tmp_n = 0;
            n = topic__match(t, rk, &rs->tmp, &rs->tmp_n, &rs->tmp_cap);
            cache_store(t, rk, h, rs->tmp, n);
            d = rs->tmp;
        }
        for (size_t i = 0; i < n; i++)
            xroute_emit(c, d[i]);
        total += n;
    }
    return total;
}

void
topic__stats(const struct topic *t, struct topic_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->nodes = t->nodes;
    st->edges = t->en;
    st->cache_slots = t->ccap;
    for (size_t i = 0; i < t->ccap; i++)
        if (t->cache[i].epoch == t->epoch)
            st->cache_valid++;
    st->hits = t->hits;
    st->misses = t->misses;
}

const struct xtype_ops topic__ops = {
    .name = "topic",
    .index_new = topic_new,
    .index_free = topic_free,
    .bind = topic_bind,
    .unbind = topic_unbind,
    .route = topic_route,
    .check_args = NULL,
};
