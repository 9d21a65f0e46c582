/*
 * delay.c: delayed delivery for x-delayed-message exchanges, as RabbitMQ's
 * rabbitmq_delayed_message_exchange plugin does it, on the vhost's log.
 *
 * A message published to an x-delayed-message exchange with an x-delay
 * header of 1 .. 4294967295 ms (integer types; a string of digits or a
 * float is read as the plugin reads it) is held back; anything else
 * (no header, 0, negative, out of range, not a number) is routed at once
 * through the exchange's x-delayed-type. When due, the message goes
 * through the exchange with the bindings of that moment, its x-delay
 * header turned into -delay (the plugin's marker, so that it is not held
 * back again on its way through exchange-to-exchange bindings).
 *
 * Where the pending messages live. Each delayed exchange has a reserved
 * queue id in the vhost's log, store_qid("amq.delayed\0" + name): no
 * client can declare a queue of that name (the amq. prefix is refused,
 * and a NUL byte besides), so it cannot collide with a queue. A held-back
 * message is one ordinary MESSAGE record for that queue id, acked when
 * it has been routed, and dropped as a whole by one queue-delete record
 * when the exchange is deleted. So the log's group commit, checksums,
 * recovery, compaction and (where a cluster replicates the log) its
 * replication all carry delayed messages with no format of their own.
 * The record is persistent (recovered after a restart or a kill -9) when
 * the message is (delivery_mode 2) and the exchange durable; otherwise
 * the log marks it transient and drops it at the next start, as a
 * transient message in a queue. The meta is
 *   u8 version (1) | u64 due time (wall clock, µs) | the queue meta
 *   (persist.c: exchange, routing key, properties)
 * Bump the version and keep reading the old one to change it.
 *
 * What stays in memory: a struct dentry of 24 bytes per pending message
 * in its exchange's heap (delayheap.h) ordered by due time, plus an
 * entry in a small map when compaction moved the record. With no log
 * (no data directory), or for a transient message the log refused (disk
 * full), the message itself stays in memory: DELAY_INMEM in the entry's
 * id, the message pointer (one reference) in its pos.
 *
 * Timing. The server keeps one timer for the earliest due time over all
 * delayed exchanges (node_delay_wait_us) and calls node_run_delays when
 * it fires; a burst of due messages is routed in slices so that one pass
 * never holds the loop for long. Recovery reads each pending record's
 * due time back once at start (the heap is rebuilt in O(n)); overdue
 * messages come out at the first pass.
 *
 * Publisher confirms and mandatory, as the plugin: a persistent delayed
 * message is confirmed once its record is durable; a mandatory one gets
 * basic.return 312 NO_ROUTE at once, because at publish time it was
 * routed to no queue (plugin issues #7 and #136), and is still delivered
 * when due. When it is due, a message that no binding takes is dropped,
 * or goes to the exchange's alternate exchange: nobody is told.
 *
 * A message that reaches a delayed exchange through an exchange-to-
 * exchange binding is held back there too (the plugin's route/2 runs for
 * every exchange a message visits): routing stops at that exchange
 * (routeset.hold_delayed) and goes on from it when due.
 *
 * Ensures: every pending entry of an exchange is exactly one live
 * (qid, id) pair in the log (or one in-memory message reference), until
 * it is routed (then acked) or its exchange is deleted.
 */
#include "vhost/delayheap.h"
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <math.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <utlist.h>

#define DELAY_META_VERSION 1
#define DELAY_INMEM        (UINT64_C(1) << 63)
#define DELAY_MAX_MS       UINT64_C(4294967295) /* the plugin's (Erlang's) */
/* Messages routed per exchange and pass: a due burst yields to I/O. */
#define DELAY_SLICE 4096

struct delayx {
    struct exchange *x;
    uint64_t qid;      /* the log's queue id of its pending messages */
    bool logged;       /* a record for qid may be live in the log */
    struct dheap heap; /* pending messages by due time */
    struct dmoves moved;
    struct delay_stats stats;
    struct delayx *next, *prev; /* in vhost.delayed */
};

static uint64_t
wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t
delay_qid(const struct exchange *x)
{
    static const char prefix[] = "amq.delayed";
    struct buf b;
    uint64_t qid;

    buf_init(&b);
    buf_append(&b, prefix, sizeof(prefix)); /* with its NUL */
    buf_append(&b, x->name, x->name_len);
    qid = store_qid(buf_bytes(&b));
    buf_fini(&b);
    return qid;
}

static struct delayx *
delayx_of(const struct exchange *x)
{
    const struct xinfo *xi = x->user;

    return xi ? xi->delay : NULL;
}

/* ---- the x-delay header */

/* Reads a string of digits (optional sign) as the plugin's
 * binary_to_integer does; false for anything else. */
static bool
str_int(struct bytes s, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (s.len && (s.ptr[0] == '-' || s.ptr[0] == '+')) {
        neg = s.ptr[0] == '-';
        i = 1;
    }
    if (i == s.len || s.len - i > 18)
        return false;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static bool
trunc_float(double d, int64_t *out)
{
    if (!isfinite(d) || d > 9.2e18 || d < -9.2e18)
        return false;
    *out = (int64_t)d;
    return true;
}

/*
 * The message's x-delay in ms, read as the plugin reads it (get_delay):
 * integer types as they are, longstr as an integer, floats and decimals
 * truncated. Returns false when there is none to speak of (absent, or
 * a type or text that is no number: the plugin's channel would crash on
 * a non-numeric string; Warren routes such a message at once).
 */
static bool
header_delay(struct bytes headers, int64_t *ms)
{
    struct fvalue v;

    if (!headers.len || !ftable_find(headers, "x-delay", &v))
        return false;
    if (fvalue_get_int(&v, ms))
        return true;
    switch (v.type) {
    case 'S':
        return str_int(v.v.str, ms);
    case 'f':
        return trunc_float(v.v.f, ms);
    case 'd':
        return trunc_float(v.v.d, ms);
    case 'D': {
        double x = v.v.dec.value;

        for (uint8_t i = 0; i < v.v.dec.scale; i++)
            x /= 10;
        return trunc_float(x, ms);
    }
    default:
        return false;
    }
}

/* ---- exchanges */

void
delay__exchange_added(struct vhost *vh, struct exchange *x)
{
    struct xinfo *xi = x->user;
    struct delayx *d = xcalloc(1, sizeof(*d));

    d->x = x;
    d->qid = delay_qid(x);
    dheap_init(&d->heap);
    dmoves_init(&d->moved);
    xi->delay = d;
    DL_APPEND(vh->delayed, d);
}

static void
drop_entries(struct delayx *d)
{
    for (size_t i = 0; i < d->heap.n; i++) {
        if (d->heap.v[i].id & DELAY_INMEM)
            message_unref((struct message *)(uintptr_t)d->heap.v[i].pos);
    }
    dheap_fini(&d->heap);
    dmoves_fini(&d->moved);
}

void
delay__exchange_removed(struct vhost *vh, struct exchange *x)
{
    struct xinfo *xi = x->user;
    struct delayx *d = xi ? xi->delay : NULL;

    if (!d)
        return;
    /* One record drops every pending message of the exchange. */
    if (d->logged && vh->store)
        store_append_queue_delete(vh->store, d->qid);
    drop_entries(d);
    DL_DELETE(vh->delayed, d);
    xi->delay = NULL;
    free(d);
}

void
vhost_exchange_delay_stats(const struct exchange *x, struct delay_stats *out)
{
    const struct delayx *d = delayx_of(x);

    memset(out, 0, sizeof(*out));
    if (d)
        *out = d->stats;
}

uint64_t
vhost_exchange_delayed_count(const struct exchange *x)
{
    const struct delayx *d = delayx_of(x);

    return d ? d->heap.n : 0;
}

/* ---- publish */

/* Logs m for d, due at due_us. Returns the record's LSN, 0 when the log
 * refused it; fills *id and *pos. */
static uint64_t
log_delayed(struct vhost *vh, struct delayx *d, struct message *m,
            uint64_t due_us, bool persistent, uint64_t *id, uint64_t *pos)
{
    struct store_msg_in in;
    struct buf meta;
    uint64_t lsn;

    buf_init(&meta);
    buf_put_u8(&meta, DELAY_META_VERSION);
    buf_put_u64(&meta, due_us);
    persist__meta_encode(m, 0, &vh->scratch);
    buf_append(&meta, vh->scratch.data, vh->scratch.len);
    in = (struct store_msg_in){&d->qid, 1, buf_bytes(&meta), message_body(m),
                               !persistent};
    lsn = store_append_msg(vh->store, &in, id, pos);
    buf_fini(&meta);
    if (lsn)
        d->logged = true;
    return lsn;
}

/* The due time and the queue meta of a record's meta; false when it is
 * not one this version understands. */
static bool
meta_split(struct bytes meta, uint64_t *due_us, struct bytes *rest)
{
    struct cursor c;
    uint8_t version;

    cur_init(&c, meta.ptr, meta.len);
    if (!rd_u8(&c, &version) || version != DELAY_META_VERSION ||
        !rd_u64(&c, due_us))
        return false;
    *rest = bytes_of(c.p, c.left);
    return true;
}

bool
delay__publish(struct vhost *vh, struct exchange *x, struct bytes headers,
               struct message *m, struct publish_result *res)
{
    struct delayx *d = delayx_of(x);
    bool persistent = message_is_persistent(m) && x->durable;
    uint64_t due, id, pos, lsn;
    int64_t ms;

    if (!d || !header_delay(headers, &ms) || ms <= 0 ||
        (uint64_t)ms > DELAY_MAX_MS)
        return false;
    due = wall_us() + (uint64_t)ms * 1000u;
    if (vh->store) {
        lsn = log_delayed(vh, d, m, due, persistent, &id, &pos);
        if (lsn) {
            dheap_push(&d->heap, (struct dentry){due, id, pos});
            if (persistent)
                res->lsn = lsn;
            return true;
        }
        if (persistent) {
            res->refused = true; /* the publisher gets basic.nack */
            return true;
        }
    }
    /* No log, or a full disk for a transient message: keep it here. */
    message_ref(m);
    dheap_push(&d->heap, (struct dentry){due, vhost__next_id(vh) | DELAY_INMEM,
                                         (uintptr_t)m});
    return true;
}

bool
delay__wanted(struct bytes headers)
{
    int64_t ms;

    return header_delay(headers, &ms) && ms > 0 && (uint64_t)ms <= DELAY_MAX_MS;
}

void
delay__hold_reached(struct vhost *vh, const struct routeset *rs,
                    struct bytes headers, struct message *m,
                    struct publish_result *res)
{
    for (size_t i = 0; i < rs->held_n; i++) {
        struct publish_result r = {0};

        if (!delay__publish(vh, rs->held[i], headers, m, &r))
            continue;
        res->lsn = WR_MAX(res->lsn, r.lsn);
        res->refused = res->refused || r.refused;
    }
}

/* ---- due messages */

/* The message of a logged entry, rebuilt from its record; NULL (logged)
 * when it cannot be read. */
static struct message *
read_entry(struct vhost *vh, struct delayx *d, const struct dentry *e)
{
    uint64_t pos = e->pos, due;
    struct bytes meta, body, rest;
    struct message *m;

    dmoves_take(&d->moved, e->id, &pos);
    if (store_read_msg(vh->store, pos, &vh->scratch, &meta, &body) != WR_OK)
        return NULL;
    if (!meta_split(meta, &due, &rest))
        m = NULL;
    else
        m = persist__message_from_record(rest, body, vh->node->now_us,
                                         wr_wall_ms());
    if (!m)
        log_err("vhost '%s': delayed message %llu of exchange '%s': "
                "unreadable record, dropped",
                vh->name, (unsigned long long)e->id, d->x->name);
    return m;
}

/* The properties of m with x-delay turned into -delay, into out. */
static bool
swap_delay(const struct message *m, struct amqp_basic_props *p, struct buf *hdr,
           struct buf *out)
{
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;
    int64_t ms = 0;
    size_t mark;

    if (amqp_basic_props_decode(message_props(m).ptr, message_props(m).len, p,
                                NULL) != AMQP_DECODE_OK)
        return false;
    header_delay(p->headers, &ms);
    mark = ftable_begin(hdr);
    ftable_iter_init(&it, p->headers);
    while (ftable_next(&it, &key, &v)) {
        if (!bytes_eq_str(key, "x-delay"))
            fenc_value_key(hdr, key, &v);
        else if (ms <= INT32_MAX)
            fenc_i32(hdr, "x-delay", (int32_t)-ms);
        else
            fenc_int(hdr, "x-delay", -ms);
    }
    ftable_end(hdr, mark);
    p->headers = bytes_of(hdr->data + mark + 4, hdr->len - mark - 4);
    amqp_basic_props_encode(p, out);
    return true;
}

/* Routes m (as published) through d's exchange, now. */
static void
route_due(struct vhost *vh, struct delayx *d, struct message *m)
{
    struct amqp_basic_props p;
    struct publish_result res;
    struct amqp_props ap;
    struct buf hdr, props;
    struct message *nm;

    buf_init(&hdr);
    buf_init(&props);
    if (swap_delay(m, &p, &hdr, &props)) {
        nm = message_new(message_exchange(m), message_rk(m), buf_bytes(&props),
                         m->body_size);
        if (m->body_size)
            nm = message_append(nm, message_body(m));
        if (amqp_props_read(message_props(nm), &ap, NULL) == AMQP_DECODE_OK)
            message_set_props(nm, &ap);
        nm->ts_us = vh->node->now_us;
        vhost_publish(vh, d->x, message_rk(nm), p.headers, nm, &res);
        message_unref(nm);
    }
    buf_fini(&props);
    buf_fini(&hdr);
}

/* How late e is being routed (now, wall clock µs). */
static void
note_lateness(struct delayx *d, const struct dentry *e, uint64_t now)
{
    uint64_t late = now > e->due_us ? now - e->due_us : 0;

    d->stats.routed++;
    if (late > 10000)
        d->stats.late_10ms++;
    if (late > d->stats.max_late_us)
        d->stats.max_late_us = late;
}

static void
deliver(struct vhost *vh, struct delayx *d, const struct dentry *e)
{
    struct message *m;

    if (e->id & DELAY_INMEM) {
        m = (struct message *)(uintptr_t)e->pos;
        route_due(vh, d, m);
        message_unref(m);
        return;
    }
    if (!vh->store)
        return;
    m = read_entry(vh, d, e);
    if (m) {
        route_due(vh, d, m);
        message_unref(m);
    }
    /* After the queues' record, in the same batch: a crash between the
     * two can only deliver it twice, never lose it. */
    store_append_ack(vh->store, d->qid, e->id);
}

/* Routes d's due messages, at most `budget`; returns how many. */
static size_t
run_exchange(struct vhost *vh, struct delayx *d, uint64_t now, size_t budget)
{
    const struct dentry *top;
    struct dentry e;
    size_t n = 0;

    while (n < budget && (top = dheap_top(&d->heap)) && top->due_us <= now) {
        dheap_pop(&d->heap, &e);
        note_lateness(d, &e, now);
        deliver(vh, d, &e);
        n++;
    }
    /* A move reported after its message went out is never taken. */
    if (d->heap.n == 0)
        dmoves_fini(&d->moved);
    return n;
}

void
node_run_delays(struct node *n)
{
    struct vhost *vh, *tmp;
    struct delayx *d;
    uint64_t now = wall_us();

    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (!vh->serving)
            continue;
        DL_FOREACH(vh->delayed, d)
        {
            run_exchange(vh, d, now, DELAY_SLICE);
        }
    }
}

int64_t
node_delay_wait_us(const struct node *n)
{
    const struct vhost *vh, *tmp;
    const struct delayx *d;
    uint64_t first = UINT64_MAX, now;

    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (!vh->serving)
            continue;
        DL_FOREACH(vh->delayed, d)
        {
            const struct dentry *top = dheap_top(&d->heap);

            if (top && top->due_us < first)
                first = top->due_us;
        }
    }
    if (first == UINT64_MAX)
        return -1;
    now = wall_us();
    return first <= now ? 0 : (int64_t)(first - now);
}

/* ---- the log: recovery, compaction, failure */

static struct delayx *
by_qid(struct vhost *vh, uint64_t qid)
{
    struct delayx *d;

    DL_FOREACH(vh->delayed, d)
    {
        if (d->qid == qid)
            return d;
    }
    return NULL;
}

bool
delay__recovered(struct vhost *vh, uint64_t qid, uint64_t id, uint64_t pos)
{
    struct delayx *d = vh->delayed ? by_qid(vh, qid) : NULL;

    if (!d)
        return false;
    /* The due time is read once the log is open (delay__recovery_done). */
    dheap_append(&d->heap, (struct dentry){0, id, pos});
    d->logged = true;
    return true;
}

struct due_reader {
    struct vhost *vh;
    struct delayx *d;
    size_t dropped;
};

static bool
read_due(void *arg, struct dentry *e)
{
    struct due_reader *r = arg;
    struct bytes meta, body, rest;

    if (store_read_msg(r->vh->store, e->pos, &r->vh->scratch, &meta, &body) !=
            WR_OK ||
        !meta_split(meta, &e->due_us, &rest)) {
        store_append_ack(r->vh->store, r->d->qid, e->id);
        r->dropped++;
        return false;
    }
    return true;
}

void
delay__recovery_done(struct vhost *vh)
{
    struct delayx *d;

    DL_FOREACH(vh->delayed, d)
    {
        struct due_reader r = {vh, d, 0};
        uint64_t t0 = wr_now_us();

        if (!d->heap.n)
            continue;
        dheap_filter(&d->heap, read_due, &r);
        log_info("vhost '%s': exchange '%s': %zu delayed messages pending "
                 "(due times read in %.3f s)",
                 vh->name, d->x->name, d->heap.n,
                 (double)(wr_now_us() - t0) / 1e6);
        if (r.dropped)
            log_err("vhost '%s': exchange '%s': %zu delayed messages with "
                    "unreadable records dropped",
                    vh->name, d->x->name, r.dropped);
    }
}

bool
delay__moved(struct vhost *vh, uint64_t qid, uint64_t id, uint64_t new_pos)
{
    struct delayx *d = vh->delayed ? by_qid(vh, qid) : NULL;

    if (!d)
        return false;
    dmoves_put(&d->moved, id, new_pos);
    return true;
}

static bool
not_lost(void *arg, struct dentry *e)
{
    const uint64_t *from = arg;

    return (e->id & DELAY_INMEM) || e->id < *from;
}

void
delay__lost(struct vhost *vh, uint64_t from)
{
    struct delayx *d;

    DL_FOREACH(vh->delayed, d)
    {
        dheap_filter(&d->heap, not_lost, &from);
    }
}
