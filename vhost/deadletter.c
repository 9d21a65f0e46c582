/*
 * deadletter.c: dead-lettering, as RabbitMQ 3.10 does it
 * (rabbit_dead_letter).
 *
 * A message rejected without requeue, expired, or pushed out by a length
 * limit in a queue with x-dead-letter-exchange leaves that queue (the log
 * hears of it as an ack) and waits in the node's list of dead letters
 * (deadletter__add), because a queue operation must not route. Between
 * callbacks (node_run_dispatch) each one is republished
 * (deadletter__run) as a new message:
 *   - published to the dead-letter exchange with
 *     x-dead-letter-routing-key, or its own routing key;
 *   - its headers get an x-death entry {count, reason, queue, time,
 *     exchange, routing-keys[, original-expiration]} at the front of the
 *     x-death array; an entry for the same queue and reason is moved to
 *     the front with its count raised instead. The first death also adds
 *     x-first-death-reason, -queue and -exchange;
 *   - its expiration property is removed (kept in original-expiration),
 *     so a per-message TTL does not kill it again;
 *   - a queue that would close a cycle of deaths with no rejection in it
 *     (a queue dead-lettering expired messages to itself, say) is left
 *     out, and the message is dropped there;
 *   - a dead-letter exchange that does not exist drops the message.
 * Persistent messages routed to durable queues are logged as any publish.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include <stdlib.h>
#include <string.h>

/* RabbitMQ's x-death reason. */
static const char *
reason_name(enum dl_reason r)
{
    switch (r) {
    case DL_REJECTED:
        return "rejected";
    case DL_EXPIRED:
        return "expired";
    case DL_MAXLEN:
        return "maxlen";
    case DL_DELIVERY_LIMIT:
        return "delivery_limit";
    }
    return "rejected";
}

/* The x-death list after this death, newest first, for the cycle check. */
struct deaths {
    struct {
        struct bytes queue;
        bool rejected;
    } * v;
    size_t n;
};

static void
deaths_add(struct deaths *d, struct bytes queue, struct bytes reason)
{
    d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
    d->v[d->n].queue = queue;
    d->v[d->n].rejected = bytes_eq_str(reason, "rejected");
    d->n++;
}

/* RabbitMQ's is_cycle: the deaths up to and including the first one in
 * q form a cycle; it is automatic (and q left out) when none of them was
 * a rejection. */
static bool
keep_queue(void *arg, struct queue *q)
{
    const struct deaths *d = arg;

    for (size_t i = 0; i < d->n; i++) {
        if (d->v[i].rejected)
            return true;
        if (bytes_eq(d->v[i].queue, bytes_of(q->name, q->name_len)))
            return false;
    }
    return true;
}

static struct bytes
str_field(struct bytes tbl, const char *key)
{
    struct fvalue v;

    if (ftable_find(tbl, key, &v) && fvalue_is_str(&v))
        return v.v.str;
    return bytes_of(NULL, 0);
}

static void
put_str_value(struct buf *b, struct bytes s)
{
    struct fvalue v = {.type = 'S', .v.str = s};

    fenc_value_only(b, &v);
}

/* Appends an x-death entry (as an 'F' value) for this death. */
static void
put_new_death(struct buf *b, const struct dead_letter *d, struct bytes rk,
              const struct amqp_basic_props *p, uint64_t now_s)
{
    size_t t, a;

    buf_put_u8(b, 'F');
    t = ftable_begin(b);
    fenc_int(b, "count", 1);
    fenc_cstr(b, "reason", reason_name(d->reason));
    fenc_str(b, "queue", d->queue);
    fenc_timestamp(b, "time", now_s);
    fenc_str(b, "exchange", message_exchange(d->m));
    fenc_key(b, "routing-keys");
    buf_put_u8(b, 'A');
    a = farray_begin(b);
    put_str_value(b, rk);
    farray_end(b, a);
    if (p->flags & AMQP_BASIC_EXPIRATION_FLAG)
        fenc_str(b, "original-expiration", p->expiration);
    ftable_end(b, t);
}

/* Appends an old x-death entry with its count raised by one. */
static void
put_counted_death(struct buf *b, struct bytes entry)
{
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;
    bool counted = false;
    size_t t;

    buf_put_u8(b, 'F');
    t = ftable_begin(b);
    ftable_iter_init(&it, entry);
    while (ftable_next(&it, &key, &v)) {
        int64_t n;

        if (bytes_eq_str(key, "count")) {
            /* a count that is not an integer starts again at 1 */
            if (!counted && fvalue_get_int(&v, &n)) {
                fenc_int(b, "count", n + 1);
                counted = true;
            }
        } else {
            fenc_value_key(b, key, &v);
        }
    }
    if (!counted)
        fenc_int(b, "count", 1);
    ftable_end(b, t);
}

/*
 * Writes the dead letter's headers table (with its u32 length) to b:
 * the old headers but x-death, the new x-death array, and on a first
 * death the x-first-death-* headers. Fills *dd for the cycle check.
 */
static void
build_headers(struct buf *b, const struct dead_letter *d,
              const struct amqp_basic_props *p, struct bytes rk, uint64_t now_s,
              struct deaths *dd)
{
    struct bytes old =
        (p->flags & AMQP_BASIC_HEADERS_FLAG) ? p->headers : bytes_of(NULL, 0);
    struct bytes reason = bytes_str(reason_name(d->reason));
    struct bytes deaths = bytes_of(NULL, 0), key;
    struct ftable_iter it;
    struct farray_iter ai;
    struct fvalue v;
    bool first = true, matched = false;
    size_t t, a;

    if (ftable_find(old, "x-death", &v) && v.type == 'A') {
        deaths = v.v.str;
        first = false;
    }
    t = ftable_begin(b);
    ftable_iter_init(&it, old);
    while (ftable_next(&it, &key, &v)) {
        if (!bytes_eq_str(key, "x-death"))
            fenc_value_key(b, key, &v);
    }
    fenc_key(b, "x-death");
    buf_put_u8(b, 'A');
    a = farray_begin(b);
    /* this death first: the matching old entry counted up, or a new one */
    farray_iter_init(&ai, deaths);
    while (farray_next(&ai, &v)) {
        if (v.type == 'F' && bytes_eq(str_field(v.v.str, "queue"), d->queue) &&
            bytes_eq(str_field(v.v.str, "reason"), reason)) {
            put_counted_death(b, v.v.str);
            matched = true;
            break;
        }
    }
    if (!matched)
        put_new_death(b, d, rk, p, now_s);
    deaths_add(dd, d->queue, reason);
    farray_iter_init(&ai, deaths);
    matched = false;
    while (farray_next(&ai, &v)) {
        if (v.type == 'F') {
            struct bytes q = str_field(v.v.str, "queue");
            struct bytes r = str_field(v.v.str, "reason");

            if (!matched && bytes_eq(q, d->queue) && bytes_eq(r, reason)) {
                matched = true;
                continue;
            }
            deaths_add(dd, q, r);
        }
        fenc_value_only(b, &v);
    }
    farray_end(b, a);
    if (first) {
        if (!ftable_find(old, "x-first-death-reason", &v))
            fenc_str(b, "x-first-death-reason", reason);
        if (!ftable_find(old, "x-first-death-queue", &v))
            fenc_str(b, "x-first-death-queue", d->queue);
        if (!ftable_find(old, "x-first-death-exchange", &v))
            fenc_str(b, "x-first-death-exchange", message_exchange(d->m));
    }
    ftable_end(b, t);
}

/* Republishes one dead letter (or drops it, as the header says). */
static void
republish(const struct dead_letter *d)
{
    struct amqp_basic_props p;
    struct exchange *x = NULL;
    struct publish_result res;
    struct deaths dd = {0};
    struct message *nm;
    struct buf hdr, props;
    struct bytes rk = message_rk(d->m);
    struct bytes orig_rk = rk;
    uint64_t now_us = node_now(d->vh->node);

    if (d->dlx.len > 0) {
        x = vhost_exchange_find(d->vh, d->dlx);
        if (!x)
            return; /* RabbitMQ drops it, silently */
    }
    if (d->has_dlrk)
        rk = d->dlrk;
    if (amqp_basic_props_decode(message_props(d->m).ptr,
                                message_props(d->m).len, &p,
                                NULL) != AMQP_DECODE_OK) {
        log_warn("dead letter from queue '%.*s' in vhost '%s' dropped: its "
                 "properties do not decode",
                 (int)d->queue.len, (const char *)d->queue.ptr, d->vh->name);
        return;
    }
    buf_init(&hdr);
    buf_init(&props);
    build_headers(&hdr, d, &p, orig_rk, now_us / 1000000u, &dd);
    p.flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = bytes_of(hdr.data + 4, hdr.len - 4);
    p.flags &= (uint16_t)~AMQP_BASIC_EXPIRATION_FLAG;
    amqp_basic_props_encode(&p, &props);
    nm = message_new(d->dlx, rk, buf_bytes(&props), d->m->body_size);
    if (d->m->body_size)
        nm = message_append(nm, message_body(d->m));
    nm->flags |= d->m->flags & MSG_PERSISTENT;
    nm->priority = d->m->priority;
    nm->ts_us = now_us;
    vhost_publish_to(d->vh, x, rk, p.headers, nm, keep_queue, &dd, &res);
    message_unref(nm);
    buf_fini(&props);
    buf_fini(&hdr);
    free(dd.v);
}

static struct bytes
dup_bytes(const void *p, size_t n)
{
    char *s = xmalloc(n + 1);

    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return bytes_of(s, n);
}

void
deadletter__add(struct queue *q, struct message *m, enum dl_reason r)
{
    struct node *n = q->vh->node;
    struct dead_letter *d;

    if (!q->has_dlx)
        return;
    if (n->ndl == n->capdl) {
        n->capdl = n->capdl ? 2 * n->capdl : 16;
        n->dl = xrealloc(n->dl, n->capdl * sizeof(*n->dl));
    }
    d = &n->dl[n->ndl++];
    memset(d, 0, sizeof(*d));
    d->vh = q->vh;
    d->m = m;
    message_ref(m);
    d->queue = dup_bytes(q->name, q->name_len);
    d->dlx = dup_bytes(q->dlx.ptr, q->dlx.len);
    if (q->has_dlrk) {
        d->dlrk = dup_bytes(q->dlrk.ptr, q->dlrk.len);
        d->has_dlrk = true;
    }
    d->reason = r;
}

static void
dead_letter_free(struct dead_letter *d)
{
    message_unref(d->m);
    free((void *)d->queue.ptr);
    free((void *)d->dlx.ptr);
    free((void *)d->dlrk.ptr);
}

void
deadletter__run(struct node *n)
{
    struct dead_letter *v = n->dl;
    size_t cnt = n->ndl;

    /* Republishing can kill more messages (a full queue dropping its
     * head): they wait in a fresh list for the next round. */
    n->dl = NULL;
    n->ndl = n->capdl = 0;
    for (size_t i = 0; i < cnt; i++) {
        republish(&v[i]);
        dead_letter_free(&v[i]);
    }
    free(v);
}

void
deadletter__drop(struct node *n, struct vhost *vh)
{
    size_t k = 0;

    for (size_t i = 0; i < n->ndl; i++) {
        if (vh == NULL || n->dl[i].vh == vh)
            dead_letter_free(&n->dl[i]);
        else
            n->dl[k++] = n->dl[i];
    }
    n->ndl = k;
}
