/*
 * hot.c: a log's hot index (store.h, "Hot index"): every live (queue,
 * message) pair with its position, kept up to date as records are
 * appended, so that a mirror's copy can be served without a recovery.
 *
 * Per queue id, a vector of entries in increasing id order: appends of
 * one queue come in id order (ids grow), an ACK marks its entry dead (a
 * binary search; the oldest entry first, as a queue acks in order), a
 * queue delete drops the vector, a compaction move rewrites an entry's
 * position. Dead entries at the head are skipped at once; dead ones
 * further in are squeezed out once they outnumber the live ones. An
 * entry is 24 bytes: the price, per live pair, of serving at once.
 *
 * What it reports is what a recovery of the same log would report
 * (recover.c's liveness rule): test_store_hot checks the two against
 * each other.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define HOT_DEAD    (1ULL << 63)
#define HOT_SQUEEZE 1024 /* dead entries worth a pass */

struct hot_ent {
    uint64_t id; /* HOT_DEAD set once acked */
    uint64_t pos;
    uint32_t meta_len;
    uint32_t body_len;
};

struct hotq {
    UT_hash_handle hh;
    uint64_t qid;
    struct hot_ent *v;
    size_t head, n, cap;
    size_t dead; /* dead entries in [head, n) */
};

struct hot {
    struct hotq *qs;
    struct hotq *last; /* the queue of the last append: a cache */
    uint64_t pairs;    /* live pairs */
};

struct hot *
hot_new(void)
{
    return xcalloc(1, sizeof(struct hot));
}

static void
hotq_free(struct hot *h, struct hotq *q)
{
    HASH_DEL(h->qs, q);
    if (h->last == q)
        h->last = NULL;
    free(q->v);
    free(q);
}

void
hot_free(struct hot *h)
{
    struct hotq *q, *tmp;

    if (!h)
        return;
    HASH_ITER(hh, h->qs, q, tmp)
    {
        hotq_free(h, q);
    }
    free(h);
}

static struct hotq *
hotq_find(struct hot *h, uint64_t qid, bool create)
{
    struct hotq *q;

    if (h->last && h->last->qid == qid)
        return h->last;
    HASH_FIND(hh, h->qs, &qid, sizeof(qid), q);
    if (!q && create) {
        q = xcalloc(1, sizeof(*q));
        q->qid = qid;
        HASH_ADD(hh, h->qs, qid, sizeof(q->qid), q);
    }
    if (q)
        h->last = q;
    return q;
}

void
hot_add(struct hot *h, const uint64_t *qids, uint32_t n, uint64_t id,
        uint64_t pos, uint32_t meta_len, uint32_t body_len)
{
    for (uint32_t i = 0; i < n; i++) {
        struct hotq *q = hotq_find(h, qids[i], true);

        if (q->n == q->cap) {
            if (q->head > q->n / 2) {
                /* reuse the room of the entries gone from the head */
                memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof(*q->v));
                q->n -= q->head;
                q->head = 0;
            } else {
                q->cap = q->cap ? 2 * q->cap : 64;
                q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
            }
        }
        q->v[q->n++] = (struct hot_ent){id, pos, meta_len, body_len};
        h->pairs++;
    }
}

/* The entry of id in q (live or dead), or NULL. */
static struct hot_ent *
hotq_entry(struct hotq *q, uint64_t id)
{
    size_t lo = q->head, hi = q->n;

    /* a queue acks its oldest message first */
    if (lo < hi && (q->v[lo].id & ~HOT_DEAD) == id)
        return &q->v[lo];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t at = q->v[mid].id & ~HOT_DEAD;

        if (at == id)
            return &q->v[mid];
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Drops q's dead entries: those at the head at once, the others once
   they are many. */
static void
hotq_tidy(struct hotq *q)
{
    size_t k;

    while (q->head < q->n && (q->v[q->head].id & HOT_DEAD)) {
        q->head++;
        q->dead--;
    }
    if (q->head == q->n) {
        q->head = q->n = 0;
        return;
    }
    if (q->dead < HOT_SQUEEZE || q->dead < (q->n - q->head) / 2)
        return;
    k = 0;
    for (size_t i = q->head; i < q->n; i++) {
        if (!(q->v[i].id & HOT_DEAD))
            q->v[k++] = q->v[i];
    }
    q->head = 0;
    q->n = k;
    q->dead = 0;
}

void
hot_ack(struct hot *h, uint64_t qid, uint64_t id)
{
    struct hotq *q = hotq_find(h, qid, false);
    struct hot_ent *e = q ? hotq_entry(q, id) : NULL;

    if (!e || (e->id & HOT_DEAD))
        return;
    e->id |= HOT_DEAD;
    q->dead++;
    h->pairs--;
    hotq_tidy(q);
}

void
hot_qdel(struct hot *h, uint64_t qid)
{
    struct hotq *q = hotq_find(h, qid, false);

    if (!q)
        return;
    h->pairs -= q->n - q->head - q->dead;
    hotq_free(h, q);
}

void
hot_move(struct hot *h, uint64_t qid, uint64_t id, uint64_t pos)
{
    struct hotq *q = hotq_find(h, qid, false);
    struct hot_ent *e = q ? hotq_entry(q, id) : NULL;

    if (e && !(e->id & HOT_DEAD))
        e->pos = pos;
}

uint64_t
hot_pairs(const struct hot *h)
{
    return h ? h->pairs : 0;
}

void
hot_report(const struct hot *h, const struct store_recover_cb *cb, void *ctx)
{
    const struct hotq *q, *tmp;
    struct store_recovered r;

    HASH_ITER(hh, h->qs, q, tmp)
    {
        r.qid = q->qid;
        for (size_t i = q->head; i < q->n; i++) {
            const struct hot_ent *e = &q->v[i];

            if (e->id & HOT_DEAD)
                continue;
            r.id = e->id;
            r.pos = e->pos;
            r.meta_len = e->meta_len;
            r.body_len = e->body_len;
            cb->message(ctx, &r);
        }
    }
}
