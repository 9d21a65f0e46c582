/*
 * etcd_follow.c: range + watch on a prefix, for an owner that keeps a
 * copy of it (cluster-wide definitions, the member list).
 *
 *   READ ──pages at one revision──> SNAPSHOT(rev) ──> WATCH from rev + 1
 *    ^  │ a page failed                                 │ RESET (compacted)
 *    │  v                                               │ or FAILED
 *   backoff <───────────────────────────────────────────┘
 *
 * The read is paged (PAGE_KEYS keys per range, the next page starting
 * after the last key) and every page after the first asks for the first
 * page's header revision, so the snapshot is the prefix at exactly one
 * revision. If that revision is compacted between pages (code 11), the
 * read starts over. The watch starts at rev + 1, so no change is missed
 * or seen twice between the snapshot and the first event. After a RESET
 * the whole prefix is read again and a new SNAPSHOT replaces the old
 * state: whatever changed while the watch was away is in it.
 *
 * Keys and values of the snapshot being read live in an arena, freed
 * once the SNAPSHOT callback returned. A page must fit the client's
 * max_response: PAGE_KEYS suits small values (definitions, members); a
 * page that cannot be read halves the page size for the next reads.
 */
#include "cluster/etcd_int.h"

#include <stdlib.h>
#include <utlist.h>

#define PAGE_KEYS 500

struct etcd_follow {
    uint32_t magic;
    struct etcd *e;
    struct buf prefix; /* the first key ("\0" for every key) */
    struct buf end;    /* its range_end */
    struct etcd_req *req;
    struct etcd_watch *w;
    ev_timer retry;
    unsigned rounds; /* failed reads in a row */
    int64_t page;    /* keys per range */
    /* the snapshot being read */
    int64_t rev;
    struct buf next_key;
    struct etcd__arena arena;
    struct etcd_kv *kvs;
    size_t n_kvs;
    size_t cap_kvs;
    bool *dead; /* set by etcd_follow_free during the callback */
    etcd_follow_fn *cb;
    void *arg;
    struct etcd_follow *prev, *next; /* e->follows */
};

static void start_read(struct etcd_follow *f, unsigned delay_ms);

static void
reset_snapshot(struct etcd_follow *f)
{
    etcd__arena_fini(&f->arena);
    etcd__arena_init(&f->arena);
    free(f->kvs);
    f->kvs = NULL;
    f->n_kvs = 0;
    f->cap_kvs = 0;
    f->rev = 0;
}

/* Copies a page's kvs into the snapshot. */
static void
add_kvs(struct etcd_follow *f, const struct etcd_kv *kvs, size_t n)
{
    if (f->n_kvs + n > f->cap_kvs) {
        f->cap_kvs = WR_MAX(f->cap_kvs * 2, f->n_kvs + n);
        f->kvs = xrealloc(f->kvs, f->cap_kvs * sizeof(*f->kvs));
    }
    for (size_t i = 0; i < n; i++) {
        struct etcd_kv *kv = &f->kvs[f->n_kvs++];

        *kv = kvs[i];
        kv->key = etcd__arena_copy(&f->arena, kvs[i].key);
        kv->value = etcd__arena_copy(&f->arena, kvs[i].value);
    }
}

/* ---- watching */

static void
watch_cb(void *arg, const struct etcd_watch_update *u)
{
    struct etcd_follow *f = arg;
    struct etcd_follow_update fu = {.kind = ETCD_FOLLOW_EVENTS};

    WR_ASSERT(f->magic == ETCD_FOLLOW_MAGIC);
    if (u->kind != ETCD_WATCH_EVENTS) {
        etcd_watch_free(f->w);
        f->w = NULL;
        log_info("etcd: follow: watch %s, reading the prefix again",
                 u->kind == ETCD_WATCH_RESET ? "reset by compaction"
                                             : "failed");
        start_read(
            f, u->kind == ETCD_WATCH_RESET ? 0 : etcd__backoff_ms(f->rounds++));
        return;
    }
    fu.revision = u->revision;
    fu.events = u->events;
    fu.n_events = u->n_events;
    f->cb(f->arg, &fu);
}

static void
start_watch(struct etcd_follow *f, int64_t from)
{
    struct etcd_watch_opts o = {
        .range_end = buf_bytes(&f->end),
        .start_revision = from,
        .prev_kv = true,
    };

    f->w = etcd_watch_new(f->e, buf_bytes(&f->prefix), &o, watch_cb, f);
}

/* ---- reading */

static void page_done(void *arg, const struct etcd_result *res);

static void
request_page(struct etcd_follow *f)
{
    struct etcd_range_opts o = {
        .range_end = buf_bytes(&f->end),
        .limit = f->page,
        .revision = f->rev,
    };

    f->req = etcd_range(f->e, buf_bytes(&f->next_key), &o, page_done, f);
}

/* The whole prefix is read: SNAPSHOT, then the watch. */
static void
snapshot_done(struct etcd_follow *f)
{
    struct etcd_follow_update u = {
        .kind = ETCD_FOLLOW_SNAPSHOT,
        .revision = f->rev,
        .kvs = f->kvs,
        .n_kvs = f->n_kvs,
    };
    bool dead = false;

    f->rounds = 0;
    f->dead = &dead;
    f->cb(f->arg, &u);
    if (dead)
        return;
    f->dead = NULL;
    start_watch(f, u.revision + 1);
    reset_snapshot(f);
}

/* A page failed: read again from the start; at once when our revision
 * was compacted, with smaller pages when the answer was unreadable
 * (perhaps over max_response), else after a backoff. */
static void
read_failed(struct etcd_follow *f, const struct etcd_result *res)
{
    log_info("etcd: follow: read failed: %s", res->error);
    if (res->status == ETCD_E_SERVER && res->code == 11) {
        start_read(f, 0);
    } else if (res->status == ETCD_E_PROTOCOL && f->page > 1) {
        f->page /= 2;
        start_read(f, 0);
    } else {
        start_read(f, etcd__backoff_ms(f->rounds++));
    }
}

static void
page_done(void *arg, const struct etcd_result *res)
{
    struct etcd_follow *f = arg;
    const struct etcd_kv *last;

    WR_ASSERT(f->magic == ETCD_FOLLOW_MAGIC);
    f->req = NULL;
    if (res->status != ETCD_OK) {
        read_failed(f, res);
        return;
    }
    if (f->rev == 0)
        f->rev = res->revision;
    add_kvs(f, res->kvs, res->n_kvs);
    if (!res->more || res->n_kvs == 0) {
        snapshot_done(f);
        return;
    }
    last = &res->kvs[res->n_kvs - 1];
    buf_reset(&f->next_key);
    buf_append(&f->next_key, last->key.ptr, last->key.len);
    buf_put_u8(&f->next_key, 0); /* the smallest key after it */
    request_page(f);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct etcd_follow *f = container_of(t, struct etcd_follow, retry);

    reset_snapshot(f);
    buf_reset(&f->next_key);
    buf_append(&f->next_key, f->prefix.data, f->prefix.len);
    request_page(f);
}

static void
start_read(struct etcd_follow *f, unsigned delay_ms)
{
    ev_timer_stop(f->e->loop, &f->retry);
    ev_timer_set(&f->retry, delay_ms / 1000.0, 0);
    ev_timer_start(f->e->loop, &f->retry);
}

struct etcd_follow *
etcd_follow_new(struct etcd *e, struct bytes prefix, etcd_follow_fn *cb,
                void *arg)
{
    struct etcd_follow *f = xcalloc(1, sizeof(*f));

    WR_ASSERT(e->magic == ETCD_MAGIC);
    f->magic = ETCD_FOLLOW_MAGIC;
    f->e = e;
    f->cb = cb;
    f->arg = arg;
    f->page = PAGE_KEYS;
    buf_init(&f->prefix);
    buf_init(&f->end);
    buf_init(&f->next_key);
    etcd_prefix_end(prefix, &f->end);
    if (prefix.len == 0)
        prefix = bytes_of("", 1); /* every key: ["\0", "\0") */
    buf_append(&f->prefix, prefix.ptr, prefix.len);
    etcd__arena_init(&f->arena);
    ev_timer_init(&f->retry, retry_cb, 0, 0);
    DL_APPEND(e->follows, f);
    start_read(f, 0);
    return f;
}

void
etcd_follow_free(struct etcd_follow *f)
{
    if (!f)
        return;
    WR_ASSERT(f->magic == ETCD_FOLLOW_MAGIC);
    if (f->dead)
        *f->dead = true;
    ev_timer_stop(f->e->loop, &f->retry);
    etcd__req_drop(f->req);
    etcd_watch_free(f->w);
    reset_snapshot(f);
    etcd__arena_fini(&f->arena);
    buf_fini(&f->prefix);
    buf_fini(&f->end);
    buf_fini(&f->next_key);
    DL_DELETE(f->e->follows, f);
    f->magic = 0;
    free(f);
}
