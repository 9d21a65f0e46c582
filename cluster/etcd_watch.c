/*
 * etcd_watch.c: a watch on a key range, one HTTP stream per watch.
 *
 * The stream is POST /v3/watch with one create_request; the gateway
 * answers with a chunked body of newline-separated JSON messages:
 *
 *   {"result":{"header":{...,"revision":"7"},"created":true}}
 *   {"result":{"header":{...},"events":[{"kv":{...}},
 *                                        {"type":"DELETE","kv":{...},
 *                                         "prev_kv":{...}}]}}
 *   {"result":{"header":{...},"canceled":true,"compact_revision":"3"}}
 *
 * States:
 *
 *   WAIT ──timer──> OPEN (connecting, created, streaming) ──canceled──> DONE
 *     ^                │ connection lost, stream ended, etcd error,
 *     └── backoff ─────┘ no "created" within the request timeout
 *
 * Exactly once, in order: next_rev is the last delivered event's
 * revision + 1 (for a watch "from now", the created header's revision +
 * 1). Every (re)connect asks for start_revision = next_rev, and events
 * below next_rev are dropped, so a replay after reconnecting is never
 * delivered twice. Only whole revisions are delivered, so resuming at
 * next_rev loses nothing: etcd keeps a revision's events in one
 * response, but a response can hold up to 1000 revisions, more than a
 * message may weigh (max_response) when a watch catches up. So the
 * watch asks for fragments (etcd splits a response into messages of
 * about its request size limit + 512 KiB, "fragment":true on all but the
 * last) and delivers each fragment's events but those of its last
 * revision, which may continue in the next fragment: they wait in
 * `carry` (at most one revision's events), and are dropped, undelivered,
 * when the stream fails. A cancel with compact_revision (next_rev was
 * compacted) ends the watch with RESET; any other cancel, or an etcd
 * refusal other than "unavailable", with FAILED.
 *
 * Failover: a failed stream moves the client's cur_ep on and reconnects
 * at once to the next endpoint; after a failure on every endpoint it
 * waits etcd__backoff_ms(), which grows until a stream lives for
 * STREAM_WORKED_MS. It never gives up. The request asks for
 * etcd's leader check (metadata hasleader, as clientv3's
 * WithRequireLeader), so a member cut off from its cluster ends the
 * stream instead of going silent.
 *
 * Callbacks run from process(); a callback may free the watch (or the
 * client), which sets *w->dead, and process() then returns at once.
 */
#include "cluster/etcd_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

/* A stream that lived this long resets the reconnect backoff; one that
 * fails sooner (a broken member, a proxy answering junk) backs off. */
#define STREAM_WORKED_MS 10000

enum w_state {
    W_WAIT, /* the timer starts the next connection */
    W_OPEN, /* stream requested; timer: "created" must come in time */
    W_DONE, /* reset or failed: inert until freed */
};

struct etcd_watch {
    uint32_t magic;
    struct etcd *e;
    struct buf key;
    struct buf range_end;
    bool prev_kv;
    int64_t next_rev; /* 0: "now", until created */
    enum w_state state;
    struct etcd_http *h;
    size_t ep;
    ev_timer timer;
    unsigned fails;      /* failed streams in this round over the endpoints */
    unsigned rounds;     /* failed rounds since a stream last worked */
    uint64_t created_ms; /* when this stream was created, 0: not yet */
    bool *dead;          /* set by etcd_watch_free during a callback */
    /* the events of a revision split over fragments, not yet delivered */
    struct etcd__arena carry_arena;
    struct etcd_event *carry;
    size_t n_carry;
    etcd_watch_fn *cb;
    void *arg;
    struct etcd_watch *prev, *next; /* e->watches */
};

static void watch_http_ev(struct etcd_http *h, enum etcd__http_ev ev);

static void
set_timer(struct etcd_watch *w, unsigned ms)
{
    ev_timer_stop(w->e->loop, &w->timer);
    ev_timer_set(&w->timer, ms / 1000.0, 0);
    ev_timer_start(w->e->loop, &w->timer);
}

/* Closes the stream; undelivered fragments go with it. */
static void
close_stream(struct etcd_watch *w)
{
    etcd__http_close(w->h);
    w->h = NULL;
    etcd__arena_fini(&w->carry_arena);
    etcd__arena_init(&w->carry_arena);
    w->carry = NULL;
    w->n_carry = 0;
}

/* The stream failed: reconnect, to the next endpoint, after a backoff
 * once every endpoint failed in turn. */
static void WR_PRINTF(2, 3)
    stream_failed(struct etcd_watch *w, const char *fmt, ...)
{
    char why[ETCD_ERR_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    close_stream(w);
    etcd__ep_failed(w->e, w->ep, why);
    w->state = W_WAIT;
    if (w->created_ms && wr_now_ms() - w->created_ms >= STREAM_WORKED_MS) {
        w->fails = 0; /* it worked for a while: no backoff */
        w->rounds = 0;
    }
    w->created_ms = 0;
    if (++w->fails < w->e->n_eps) {
        set_timer(w, 0);
        return;
    }
    w->fails = 0;
    set_timer(w, etcd__backoff_ms(w->rounds++));
}

/* Ends the watch (RESET or FAILED). The callback is the last action. */
static void
finish(struct etcd_watch *w, const struct etcd_watch_update *u)
{
    close_stream(w);
    ev_timer_stop(w->e->loop, &w->timer);
    w->state = W_DONE;
    if (u->kind == ETCD_WATCH_FAILED)
        log_warn("etcd: watch failed: %s", u->error);
    w->cb(w->arg, u);
}

/* ---- messages */

/* Copies n events into a new carry, then frees the old one (evs may
 * point into it). */
static void
keep_carry(struct etcd_watch *w, const struct etcd_event *evs, size_t n)
{
    struct etcd__arena old = w->carry_arena;
    struct etcd__arena *a = &w->carry_arena;

    etcd__arena_init(a);
    w->carry = n ? etcd__arena_alloc(a, n * sizeof(*evs)) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct etcd_event *ev = &w->carry[i];

        *ev = evs[i];
        ev->kv.key = etcd__arena_copy(a, evs[i].kv.key);
        ev->kv.value = etcd__arena_copy(a, evs[i].kv.value);
        ev->prev_kv.key = etcd__arena_copy(a, evs[i].prev_kv.key);
        ev->prev_kv.value = etcd__arena_copy(a, evs[i].prev_kv.value);
    }
    w->n_carry = n;
    etcd__arena_fini(&old);
}

/* The carry followed by m's events at or above next_rev, in a's memory;
 * returns their number. */
static size_t
gather(struct etcd_watch *w, const struct etcd__watch_msg *m,
       struct etcd__arena *a, struct etcd_event **out)
{
    struct etcd_event *evs;
    size_t n = w->n_carry;

    if (n + m->n_events == 0)
        return 0;
    evs = etcd__arena_alloc(a, (n + m->n_events) * sizeof(*evs));
    if (n)
        memcpy(evs, w->carry, n * sizeof(*evs));
    for (size_t i = 0; i < m->n_events; i++) {
        if (m->events[i].kv.mod_revision >= w->next_rev)
            evs[n++] = m->events[i];
    }
    *out = evs;
    return n;
}

/* How many of evs end at a revision boundary: all but the last
 * revision's when more fragments follow. */
static size_t
whole_revisions(const struct etcd_event *evs, size_t n, bool fragment)
{
    int64_t last;

    if (!fragment || n == 0)
        return n;
    last = evs[n - 1].kv.mod_revision;
    while (n > 0 && evs[n - 1].kv.mod_revision == last)
        n--;
    return n;
}

/* Delivers n events (n > 0). Returns false when the callback freed the
 * watch. */
static bool
call(struct etcd_watch *w, int64_t revision, const struct etcd_event *evs,
     size_t n)
{
    struct etcd_watch_update u = {
        .kind = ETCD_WATCH_EVENTS,
        .revision = revision,
        .events = evs,
        .n_events = n,
    };
    bool dead = false;

    w->next_rev = evs[n - 1].kv.mod_revision + 1;
    w->dead = &dead;
    w->cb(w->arg, &u);
    if (dead)
        return false;
    w->dead = NULL;
    return true;
}

/* Delivers the whole revisions among the carry and m's new events and
 * carries the rest. Returns false when the callback freed the watch. */
static bool
deliver_events(struct etcd_watch *w, const struct etcd__watch_msg *m,
               struct etcd__arena *a)
{
    struct etcd_event *evs = NULL;
    size_t n = gather(w, m, a, &evs);
    size_t ready = whole_revisions(evs, n, m->fragment);

    if (ready > 0 && !call(w, m->revision, evs, ready))
        return false;
    if (n > ready || w->n_carry > 0)
        keep_carry(w, evs + ready, n - ready);
    return true;
}

static void
created(struct etcd_watch *w, const struct etcd__watch_msg *m)
{
    ev_timer_stop(w->e->loop, &w->timer);
    w->created_ms = wr_now_ms();
    if (w->next_rev == 0)
        w->next_rev = m->revision + 1;
}

/* A cancel: RESET when our start revision was compacted, else FAILED. */
static void
canceled(struct etcd_watch *w, const struct etcd__watch_msg *m)
{
    struct etcd_watch_update u = {.revision = m->revision};
    char why[ETCD_ERR_MAX];

    if (m->compact_revision > 0) {
        u.kind = ETCD_WATCH_RESET;
        u.compact_revision = m->compact_revision;
    } else {
        snprintf(why, sizeof(why), "etcd cancelled the watch: %s",
                 m->cancel_reason ? m->cancel_reason : "no reason given");
        u.kind = ETCD_WATCH_FAILED;
        u.error = why;
    }
    finish(w, &u);
}

/* gRPC codes after which a new stream may work: the member lost its
 * leader, is stopping, or timed out. */
static bool
code_is_transient(int code)
{
    return code == 0 || code == 1 || code == 4 || code == 14;
}

/* Handles one stream line. Returns false when the stream or the watch
 * ended (the caller must then touch nothing). */
static bool
handle_line(struct etcd_watch *w, struct bytes line)
{
    struct etcd__watch_msg m;
    struct etcd__arena a;
    char err[ETCD_ERR_MAX];
    bool go_on = false;
    int code;

    etcd__arena_init(&a);
    if (etcd__json_watch(line, &a, &m, &code, err, sizeof(err)) != WR_OK) {
        if (code_is_transient(code))
            stream_failed(w, "watch stream from %s: %s", w->e->eps[w->ep].name,
                          err);
        else
            finish(w, &(struct etcd_watch_update){.kind = ETCD_WATCH_FAILED,
                                                  .error = err});
    } else if (m.canceled) {
        canceled(w, &m);
    } else {
        if (m.created)
            created(w, &m);
        go_on = deliver_events(w, &m, &a);
    }
    etcd__arena_fini(&a);
    return go_on;
}

/* Handles every complete line in the stream's body, then keeps the
 * partial one. Returns false when the stream or the watch ended. */
static bool
process(struct etcd_watch *w)
{
    struct etcd_http *h = w->h;
    size_t pos = 0;

    for (;;) {
        const uint8_t *p = h->body.data + pos;
        const uint8_t *nl = memchr(p, '\n', h->body.len - pos);
        struct bytes line;

        if (!nl)
            break;
        line = bytes_of(p, (size_t)(nl - p));
        pos += line.len + 1;
        if (line.len > 0 && line.ptr[line.len - 1] == '\r')
            line.len--;
        if (line.len > 0 && !handle_line(w, line))
            return false;
    }
    buf_consume(&h->body, pos);
    return true;
}

/* At the end of the stream: a last message without its newline (etcd
 * ends a stream with {"error":...} so). Returns false when it ended the
 * stream or the watch. */
static bool
process_tail(struct etcd_watch *w)
{
    struct buf tail = w->h->body;
    bool go_on = true;

    buf_init(&w->h->body);
    if (tail.len > 0)
        go_on = handle_line(w, buf_bytes(&tail));
    buf_fini(&tail);
    return go_on;
}

/* A non-200 answer to the watch request. */
static void
refused(struct etcd_watch *w, int status, struct bytes body)
{
    char msg[ETCD_ERR_MAX];
    int code;

    if (!etcd__json_error(body, &code, msg, sizeof(msg))) {
        stream_failed(w, "watch: HTTP %d from %s", status,
                      w->e->eps[w->ep].name);
        return;
    }
    if (code_is_transient(code)) {
        stream_failed(w, "watch: %s: %s (code %d)", w->e->eps[w->ep].name, msg,
                      code);
        return;
    }
    finish(w, &(struct etcd_watch_update){.kind = ETCD_WATCH_FAILED,
                                          .error = msg});
}

static void
watch_http_ev(struct etcd_http *h, enum etcd__http_ev ev)
{
    struct etcd_watch *w = h->owner;
    char why[ETCD_ERR_MAX];

    WR_ASSERT(w->magic == ETCD_WATCH_MAGIC && w->h == h);
    if (ev == EH_SENT)
        return;
    if (ev == EH_FAIL) {
        memcpy(why, h->err, sizeof(why));
        stream_failed(w, "watch: %s", why);
    } else if (h->status != 200) {
        if (ev == EH_DONE)
            refused(w, h->status, buf_bytes(&h->body));
    } else if (ev == EH_DATA) {
        process(w);
    } else if (process(w) && process_tail(w)) {
        stream_failed(w, "watch stream from %s ended", w->e->eps[w->ep].name);
    }
}

/* ---- connecting */

static void
request_body(const struct etcd_watch *w, struct buf *out)
{
    json_t *root = json_object(), *c = json_object();

    etcd__json_set_bytes(c, "key", buf_bytes(&w->key));
    if (w->range_end.len)
        etcd__json_set_bytes(c, "range_end", buf_bytes(&w->range_end));
    if (w->next_rev > 0)
        etcd__json_set_int(c, "start_revision", w->next_rev);
    if (w->prev_kv)
        json_object_set_new(c, "prev_kv", json_true());
    json_object_set_new(c, "fragment", json_true());
    json_object_set_new(root, "create_request", c);
    etcd__json_dump_steal(root, out);
}

static void
open_stream(struct etcd_watch *w)
{
    char err[ETCD_ERR_MAX];
    struct buf body;
    int rc;

    w->ep = w->e->cur_ep;
    w->h = etcd__http_open(w->e, w->ep, watch_http_ev, w, err, sizeof(err));
    if (!w->h) {
        stream_failed(w, "watch: %s", err);
        return;
    }
    buf_init(&body);
    request_body(w, &body);
    rc = etcd__http_send(w->h, "/v3/watch", buf_bytes(&body), true);
    buf_fini(&body);
    if (rc == WR_ERR) {
        memcpy(err, w->h->err, sizeof(err));
        stream_failed(w, "watch: %s", err);
        return;
    }
    w->state = W_OPEN;
    set_timer(w, w->e->request_timeout_ms);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct etcd_watch *w = container_of(t, struct etcd_watch, timer);

    if (w->state == W_WAIT)
        open_stream(w);
    else if (w->state == W_OPEN)
        stream_failed(w, "watch: %s: not created within %u ms",
                      w->e->eps[w->ep].name, w->e->request_timeout_ms);
}

struct etcd_watch *
etcd_watch_new(struct etcd *e, struct bytes key,
               const struct etcd_watch_opts *o, etcd_watch_fn *cb, void *arg)
{
    static const struct etcd_watch_opts none;
    struct etcd_watch *w = xcalloc(1, sizeof(*w));

    WR_ASSERT(e->magic == ETCD_MAGIC);
    o = o ? o : &none;
    w->magic = ETCD_WATCH_MAGIC;
    w->e = e;
    buf_init(&w->key);
    buf_init(&w->range_end);
    etcd__arena_init(&w->carry_arena);
    if (o->prefix) {
        etcd_prefix_end(key, &w->range_end);
        if (key.len == 0)
            key = bytes_of("", 1); /* every key: ["\0", "\0") */
    } else {
        buf_append(&w->range_end, o->range_end.ptr, o->range_end.len);
    }
    buf_append(&w->key, key.ptr, key.len);
    w->prev_kv = o->prev_kv;
    w->next_rev = o->start_revision > 0 ? o->start_revision : 0;
    w->cb = cb;
    w->arg = arg;
    w->state = W_WAIT;
    ev_timer_init(&w->timer, timer_cb, 0, 0);
    set_timer(w, 0);
    DL_APPEND(e->watches, w);
    return w;
}

void
etcd_watch_free(struct etcd_watch *w)
{
    if (!w)
        return;
    WR_ASSERT(w->magic == ETCD_WATCH_MAGIC);
    if (w->dead)
        *w->dead = true;
    ev_timer_stop(w->e->loop, &w->timer);
    close_stream(w);
    etcd__arena_fini(&w->carry_arena);
    DL_DELETE(w->e->watches, w);
    buf_fini(&w->key);
    buf_fini(&w->range_end);
    w->magic = 0;
    free(w);
}

void
etcd__watch_ep_hung(struct etcd *e, size_t ep)
{
    struct etcd_watch *w, *tmp;

    DL_FOREACH_SAFE(e->watches, w, tmp)
    {
        if (w->state == W_OPEN && w->ep == ep)
            stream_failed(w, "watch: %s stopped answering requests",
                          e->eps[ep].name);
    }
}

int64_t
etcd_watch_next_revision(const struct etcd_watch *w)
{
    return w->next_rev;
}
