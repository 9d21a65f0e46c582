/*
 * mgmt_api_queue_list.c: GET /api/queues[/v], built for 100,000 queues.
 *
 * When the sort key is one this file knows (name, vhost, the counts and
 * rates of a queue's snapshot), the queues whose names pass the filter
 * become rows holding the key's value, read once per queue; a page is
 * cut out of them with a partial heap sort (O(n log k) for a page of k),
 * and JSON is built only for that page. A full list is sorted and then
 * written item by item, streamed when it is long, each queue holding a
 * reference until it is written. Any other sort key takes the slow path:
 * JSON for every queue, then the generic list machinery
 * (mgmt_api_list.c).
 */
#include "server/mgmt/mgmt_int.h"

#include <stdlib.h>

static const char *const vhost_name_sort[] = {"vhost", "name", NULL};

/*
 * A queue as the fast path sorts it: its name and vhost, and the value
 * of the one asked-for sort key, read once from its snapshot (and its
 * sampled rates) instead of at every comparison.
 */
struct qrow {
    struct queue *q;
    struct bytes name;
    const char *vhost;
    double key;
};

enum qkey_kind { QK_NAME, QK_VHOST, QK_VALUE };

struct qkey {
    const char *name;
    enum qkey_kind kind;
    double (*value)(const struct queue_info *qi, const struct mgmt_qrates *rt);
    bool rates; /* needs the sampled rates */
};

/* One accessor per fast sort key: a count or a flag of the snapshot, or
 * a rate from the sampled counters. */
#define INFO_KEY(fn, expr)                         \
    static double fn(const struct queue_info *qi,  \
                     const struct mgmt_qrates *rt) \
    {                                              \
        (void)rt;                                  \
        return (double)(expr);                     \
    }
INFO_KEY(qk_messages, qi->ready + qi->unacked)
INFO_KEY(qk_ram, qi->ready - qi->ready_paged + qi->unacked)
INFO_KEY(qk_ready, qi->ready)
INFO_KEY(qk_unacked, qi->unacked)
INFO_KEY(qk_consumers, qi->consumers)
INFO_KEY(qk_memory, qi->memory)
INFO_KEY(qk_bytes, qi->ready_bytes)
INFO_KEY(qk_publish, qi->stat_publish)
INFO_KEY(qk_deliver, qi->stat_deliver)
INFO_KEY(qk_ack, qi->stat_ack)
INFO_KEY(qk_redeliver, qi->stat_redeliver)
INFO_KEY(qk_durable, qi->durable)
INFO_KEY(qk_auto_delete, qi->auto_delete)
INFO_KEY(qk_exclusive, qi->exclusive)
INFO_KEY(qk_publish_rate, rt->publish)
INFO_KEY(qk_deliver_rate, rt->deliver)
INFO_KEY(qk_ack_rate, rt->ack)
INFO_KEY(qk_ready_rate, rt->ready)
INFO_KEY(qk_unacked_rate, rt->unacked)
#undef INFO_KEY

/* Sort keys the fast path knows; any other key takes the slow path
 * (JSON for every queue). */
static const struct qkey qkeys[] = {
    {"name", QK_NAME, NULL, false},
    {"vhost", QK_VHOST, NULL, false},
    {"messages", QK_VALUE, qk_messages, false},
    {"messages_ready", QK_VALUE, qk_ready, false},
    {"messages_unacknowledged", QK_VALUE, qk_unacked, false},
    {"messages_ram", QK_VALUE, qk_ram, false},
    {"consumers", QK_VALUE, qk_consumers, false},
    {"memory", QK_VALUE, qk_memory, false},
    {"message_bytes", QK_VALUE, qk_bytes, false},
    {"message_bytes_ready", QK_VALUE, qk_bytes, false},
    {"message_stats.publish", QK_VALUE, qk_publish, false},
    {"message_stats.deliver_get", QK_VALUE, qk_deliver, false},
    {"message_stats.ack", QK_VALUE, qk_ack, false},
    {"message_stats.redeliver", QK_VALUE, qk_redeliver, false},
    {"message_stats.publish_details.rate", QK_VALUE, qk_publish_rate, true},
    {"message_stats.deliver_get_details.rate", QK_VALUE, qk_deliver_rate, true},
    {"message_stats.ack_details.rate", QK_VALUE, qk_ack_rate, true},
    {"messages_ready_details.rate", QK_VALUE, qk_ready_rate, true},
    {"messages_unacknowledged_details.rate", QK_VALUE, qk_unacked_rate, true},
    {"durable", QK_VALUE, qk_durable, false},
    {"auto_delete", QK_VALUE, qk_auto_delete, false},
    {"exclusive", QK_VALUE, qk_exclusive, false},
};

static const struct qkey *
qkey_find(const char *name)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(qkeys); i++)
        if (strcmp(qkeys[i].name, name) == 0)
            return &qkeys[i];
    return NULL;
}

struct qsort_ctx {
    const struct qkey *keys[4];
    size_t nkeys;
    const struct qkey *value; /* the key whose value rows hold, or NULL */
    bool reverse;
};

static struct qsort_ctx qs_ctx;

static int
bytes_cmp(struct bytes a, struct bytes b)
{
    int c = memcmp(a.ptr, b.ptr, WR_MIN(a.len, b.len));

    return c ? c : a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static int
qkey_cmp(const struct qkey *k, const struct qrow *a, const struct qrow *b)
{
    switch (k->kind) {
    case QK_NAME:
        return bytes_cmp(a->name, b->name);
    case QK_VHOST:
        return a->vhost == b->vhost ? 0 : strcmp(a->vhost, b->vhost);
    default:
        return a->key < b->key ? -1 : a->key > b->key ? 1 : 0;
    }
}

/* Total order: keys, then the name (unique within a vhost). */
static int
row_cmp(const void *pa, const void *pb)
{
    const struct qrow *a = pa, *b = pb;
    int c = 0;

    for (size_t i = 0; i < qs_ctx.nkeys && c == 0; i++)
        c = qkey_cmp(qs_ctx.keys[i], a, b);
    return qs_ctx.reverse ? -c : c;
}

static void
row_swap(struct qrow *a, struct qrow *b)
{
    struct qrow t = *a;

    *a = *b;
    *b = t;
}

/* Binary heap of the k smallest (by row_cmp) seen so far: the root is
 * the largest of them. */
static void
heap_sift_down(struct qrow *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n && row_cmp(&h[l], &h[m]) > 0)
            m = l;
        if (r < n && row_cmp(&h[r], &h[m]) > 0)
            m = r;
        if (m == i)
            return;
        row_swap(&h[i], &h[m]);
        i = m;
    }
}

static void
heap_sift_up(struct qrow *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (row_cmp(&h[i], &h[p]) <= 0)
            return;
        row_swap(&h[i], &h[p]);
        i = p;
    }
}

/* Puts the k first rows (in sort order) at the front of v, sorted.
 * O(n log k) instead of sorting all n. */
static void
partial_sort(struct qrow *v, size_t n, size_t k)
{
    struct qrow *h;
    size_t hn = 0;

    if (k >= n / 2) {
        qsort(v, n, sizeof(*v), row_cmp);
        return;
    }
    h = xmalloc((k + 1) * sizeof(*h));
    for (size_t i = 0; i < n; i++) {
        if (hn < k) {
            h[hn++] = v[i];
            heap_sift_up(h, hn - 1);
        } else if (k > 0 && row_cmp(&v[i], &h[0]) < 0) {
            h[0] = v[i];
            heap_sift_down(h, hn, 0);
        }
    }
    qsort(h, hn, sizeof(*h), row_cmp);
    memcpy(v, h, hn * sizeof(*h));
    free(h);
}

struct qlist {
    struct qrow *v;
    size_t n;
};

static bool
qlist_write(void *ctx, size_t i, struct mgmt_jw *w)
{
    struct qlist *l = ctx;
    struct queue *q = l->v[i].q;
    struct queue_info qi;

    /* A queue deleted while the list streams is left out. */
    queue_info(q, &qi);
    if (qi.deleted)
        return false;
    mgmt_queue_write(q, false, w);
    return true;
}

static void
qlist_free(void *ctx)
{
    struct qlist *l = ctx;

    for (size_t i = 0; i < l->n; i++)
        queue_unref(l->v[i].q);
    free(l->v);
    free(l);
}

/* Sets up the sort keys; false when one is not a fast key. */
static bool
queue_sort_keys(const struct mgmt_listq *lq)
{
    memset(&qs_ctx, 0, sizeof(qs_ctx));
    qs_ctx.reverse = lq->sort_reverse;
    if (lq->sort && !*lq->sort)
        return true;
    if (lq->sort && !(qs_ctx.keys[qs_ctx.nkeys++] = qkey_find(lq->sort)))
        return false;
    if (qs_ctx.nkeys && qs_ctx.keys[0]->kind == QK_VALUE)
        qs_ctx.value = qs_ctx.keys[0];
    qs_ctx.keys[qs_ctx.nkeys++] = qkey_find("vhost");
    qs_ctx.keys[qs_ctx.nkeys++] = qkey_find("name");
    return true;
}

static void
queues_slow(struct mgmt_req *r, struct vhost **vs, size_t nv)
{
    json_t *items = json_array();

    for (size_t i = 0; i < nv; i++) {
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL)
            json_array_append_new(items, mgmt_queue_json(q, false));
    }
    mgmt_reply_list(r, items, vhost_name_sort);
}

/* The row of q in vhost vh, with the value of the sort key. */
static struct qrow
queue_row(struct queue *q, const char *vh)
{
    struct qrow row = {q, queue_name(q), vh, 0};
    const struct qkey *k = qs_ctx.value;
    struct mgmt_qrates rt = {0};
    struct queue_info qi;

    if (k) {
        queue_info(q, &qi);
        if (k->rates)
            mgmt_stats_queue(q, &rt);
        row.key = k->value(&qi, &rt);
    }
    return row;
}

/* The rows of the queues whose names pass the filter; *total gets the
 * number of queues. */
static struct qrow *
queue_rows(const struct mgmt_listq *lq, struct vhost **vs, size_t nv, size_t *n,
           size_t *total)
{
    struct qrow *v;

    *total = *n = 0;
    for (size_t i = 0; i < nv; i++) {
        struct vhost_info vi;

        vhost_info(vs[i], &vi);
        *total += vi.queues;
    }
    v = xmalloc((*total + 1) * sizeof(*v));
    for (size_t i = 0; i < nv; i++) {
        const char *vh = vhost_name(vs[i]);
        struct queue *q = NULL;

        while ((q = vhost_queue_next(vs[i], q)) != NULL) {
            struct bytes name = queue_name(q);

            if (mgmt_listq_match(lq, (const char *)name.ptr, name.len))
                v[(*n)++] = queue_row(q, vh);
        }
    }
    return v;
}

/* The whole list: built at once when small, streamed otherwise. */
static void
queues_all(struct mgmt_req *r, struct mgmt_listq *lq, struct qrow *v, size_t n)
{
    struct qlist *l = xcalloc(1, sizeof(*l));

    if (qs_ctx.nkeys)
        qsort(v, n, sizeof(*v), row_cmp);
    for (size_t i = 0; i < n; i++)
        queue_ref(v[i].q);
    l->v = v;
    l->n = n;
    if (n >= 2000 && !r->head) {
        mgmt_reply_stream(r, lq, n, qlist_write, qlist_free, l);
        return;
    }
    buf_put_u8(&r->out, '[');
    for (size_t i = 0; i < n; i++) {
        struct mgmt_jw w;

        if (i)
            buf_put_u8(&r->out, ',');
        mgmt_jw_init(&w, &r->out, lq->colset);
        mgmt_queue_write(v[i].q, false, &w);
    }
    buf_put_u8(&r->out, ']');
    qlist_free(l);
    r->status = 200;
    mgmt_http_respond(r, "application/json");
}

static void
queues_fast(struct mgmt_req *r, struct mgmt_listq *lq, struct vhost **vs,
            size_t nv)
{
    size_t total, n, from, k;
    struct qrow *v = queue_rows(lq, vs, nv, &n, &total);
    json_t *page;

    if (!lq->paged) {
        queues_all(r, lq, v, n);
        return;
    }
    if (!mgmt_page_in_range(r, lq, n)) {
        free(v);
        return;
    }
    from = (size_t)(lq->page - 1) * (size_t)lq->page_size;
    k = WR_MIN(n, from + (size_t)lq->page_size);
    if (qs_ctx.nkeys)
        partial_sort(v, n, k);
    page = json_array();
    for (size_t i = from; i < k; i++) {
        json_t *o = mgmt_queue_json(v[i].q, false);

        mgmt_columns_apply(lq, o);
        json_array_append_new(page, o);
    }
    free(v);
    mgmt_reply_json(r, 200, mgmt_page_object(lq, page, total, n));
}

void
mgmt_h_queues(struct mgmt_req *r)
{
    struct mgmt_listq lq;
    size_t nv;
    struct vhost **vs = mgmt_list_vhosts(r, &nv);

    if (!vs)
        return;
    if (mgmt_listq_parse(r, &lq) != WR_OK) {
        free(vs);
        return;
    }
    if (queue_sort_keys(&lq))
        queues_fast(r, &lq, vs, nv);
    else
        queues_slow(r, vs, nv);
    mgmt_listq_fini(&lq);
    free(vs);
}
