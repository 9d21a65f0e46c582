/*
 * channel.c: one AMQP channel: its state machine, its consumers and its
 * lifecycle. The publishing side (content assembly, checks, confirms) is
 * publish.c; the deliveries waiting for ack are a list of unacked.c.
 *
 * States: CH_OPEN handles everything; after the server sends
 * channel.close (a soft error) the channel is CH_CLOSING and drops every
 * frame until channel.close-ok (0-9-1 section 2.2.4), then it is freed.
 * Releasing happens at the moment of the error, not at close-ok, so
 * other consumers see requeued messages at once.
 *
 * A frame goes to publish.c while content is being assembled (CS_HEADER,
 * CS_BODY), else it must be a method, which the handler table of the
 * m_*.c files handles.
 *
 * Consumers are struct chconsumer: the struct consumer the queue sees,
 * plus a refcount: one for being registered and one per unacked delivery,
 * so a cancelled consumer's deliveries can still be acked.
 */
#include "server/channel.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- consumers */

static void
cc_unref(struct chconsumer *cc)
{
    WR_ASSERT(cc->refs > 0);
    if (--cc->refs > 0)
        return;
    free(cc->c.tag);
    free((void *)cc->c.args.ptr);
    free(cc);
}

static bool
cc_ready(struct consumer *c)
{
    struct chconsumer *cc = container_of(c, struct chconsumer, c);
    struct channel *ch = cc->ch;

    return ch->state == CH_OPEN && ch->flow && conn_can_deliver(ch->conn) &&
           (ch->prefetch_global == 0 || c->no_ack ||
            ch->consumer_unacked < ch->prefetch_global);
}

static void
cc_deliver(struct consumer *c, struct queue *q, struct qentry e)
{
    struct chconsumer *cc = container_of(c, struct chconsumer, c);
    struct channel *ch = cc->ch;
    struct amqp_method m = {.id = AMQP_BASIC_DELIVER};
    struct amqp_basic_deliver *d = &m.u.basic_deliver;
    uint64_t tag = ++ch->next_tag;
    int64_t count;

    d->consumer_tag = bytes_of(c->tag, c->tag_len);
    d->delivery_tag = tag;
    d->redelivered = (e.id & QE_REDELIVERED) != 0;
    d->exchange = message_exchange(e.msg);
    d->routing_key = message_rk(e.msg);
    /* A quorum queue's consumer hears how often a message came back
     * (RabbitMQ 3.10 adds x-delivery-count from the first return on); a
     * first delivery goes as it came. */
    if (d->redelivered && (count = queue_delivery_count(q, e)) > 0)
        conn_send_counted(ch->conn, ch->id, &m, e.msg, count);
    else
        conn_send_content(ch->conn, ch->id, &m, e.msg);
    ch->st.redeliver += d->redelivered;
    if (c->no_ack) {
        ch->st.deliver_no_ack++;
        message_unref(e.msg);
        return;
    }
    unacked_push(&ch->unacked, &(struct unacked){.tag = tag,
                                                 .at_us = node_now(srv->node),
                                                 .q = q,
                                                 .e = e,
                                                 .cons = cc});
    chan_note_delivery_limit(ch, q);
    cc->refs++;
    c->unacked++;
    ch->consumer_unacked++;
    ch->st.deliver++;
}

static void
cc_cancel(struct consumer *c)
{
    struct chconsumer *cc = container_of(c, struct chconsumer, c);
    struct channel *ch = cc->ch;
    struct amqp_method m = {.id = AMQP_BASIC_CANCEL};

    if (ch->conn->cap_cancel_notify && ch->state == CH_OPEN) {
        m.u.basic_cancel.consumer_tag = bytes_of(c->tag, c->tag_len);
        m.u.basic_cancel.no_wait = true;
        conn_send_method(ch->conn, ch->id, &m);
    }
    HASH_DEL(ch->consumers, cc);
    cc->cancelled = true;
    cc_unref(cc);
}

const struct consumer_ops chan_consumer_ops = {
    .ready = cc_ready,
    .deliver = cc_deliver,
    .cancel = cc_cancel,
};

void
chan_consumer_remove(struct channel *ch, struct chconsumer *cc)
{
    HASH_DEL(ch->consumers, cc);
    cc->cancelled = true;
    if (cc->c.q)
        queue_consumer_remove(cc->c.q, &cc->c);
    cc_unref(cc);
}

/* Consumers of ch may deliver again: schedule their queues. */
void
chan_wake_consumers(struct channel *ch)
{
    struct chconsumer *cc, *tmp;

    HASH_ITER(hh, ch->consumers, cc, tmp)
    {
        queue_consumer_wake(&cc->c);
    }
}

/* ---- settling deliveries */

void
chan_settle(struct channel *ch, struct unacked *u, bool ack, bool requeue)
{
    struct chconsumer *cc = u->cons;
    struct queue *q = u->q;

    if (cc) {
        /* Room for this consumer; for all of the channel's when its
         * global window was full (basic.qos global). */
        bool was_full = ch->prefetch_global && !cc->c.no_ack &&
                        ch->consumer_unacked >= ch->prefetch_global;

        cc->c.unacked--;
        ch->consumer_unacked--;
        if (was_full)
            chan_wake_consumers(ch);
        else
            queue_consumer_wake(&cc->c);
        cc_unref(cc);
    }
    if (ack) {
        queue_ack(q, u->e);
        ch->st.ack++;
    } else if (!requeue)
        queue_reject(q, u->e);
    else
        queue_requeue(q, u->e);
}

void
chan_requeue_all(struct channel *ch)
{
    for (size_t i = 0; i < ch->unacked.r.n; i++) {
        struct unacked u;

        if (!unacked_at(&ch->unacked, i)->q)
            continue;
        u = unacked_take(&ch->unacked, i);
        chan_settle(ch, &u, false, true);
    }
    unacked_compact(&ch->unacked);
}

/* ---- lifecycle */

struct channel *
chan_open(struct conn *c, uint16_t id)
{
    struct channel *ch = xcalloc(1, sizeof(*ch));
    struct amqp_method ok = {.id = AMQP_CHANNEL_OPEN_OK};

    ch->id = id;
    ch->conn = c;
    ch->flow = true;
    ch->min_queue_limit_us = UINT64_MAX;
    HASH_ADD(hh, c->channels, id, sizeof(ch->id), ch);
    c->nchannels++;
    srv->chans_opened++;
    conn_send_method(c, id, &ok);
    return ch;
}

/* ---- transactions: what tx.commit will do */

static struct tx_op *
tx_push(struct channel *ch)
{
    if (ch->ntx == ch->txcap) {
        ch->txcap = ch->txcap ? ch->txcap * 2 : 16;
        ch->txops = xrealloc(ch->txops, ch->txcap * sizeof(*ch->txops));
    }
    return memset(&ch->txops[ch->ntx++], 0, sizeof(struct tx_op));
}

void
chan_tx_add_publish(struct channel *ch, struct message *msg, bool mandatory,
                    struct bytes bcc)
{
    struct tx_op *op = tx_push(ch);

    op->kind = TX_PUBLISH;
    op->msg = msg;
    op->mandatory = mandatory;
    if (bcc.len)
        op->bcc = bytes_of(xmemdup(bcc.ptr, bcc.len), bcc.len);
}

void
chan_tx_drop_publish(struct tx_op *op)
{
    message_unref(op->msg);
    free((void *)op->bcc.ptr);
    op->bcc = BYTES_NULL;
}

void
chan_tx_add_ack(struct channel *ch, const struct unacked *u, bool ack,
                bool requeue)
{
    struct tx_op *op = tx_push(ch);

    op->kind = ack ? TX_ACK : TX_REJECT;
    op->u = *u;
    op->requeue = requeue;
}

static void
tx_discard(struct channel *ch)
{
    for (size_t i = 0; i < ch->ntx; i++) {
        struct tx_op *op = &ch->txops[i];

        if (op->kind == TX_PUBLISH)
            chan_tx_drop_publish(op);
        else if (op->u.q)
            chan_settle(ch, &op->u, false, true);
    }
    ch->ntx = 0;
}

void
chan_release(struct channel *ch)
{
    struct chconsumer *cc, *tmp;

    if (ch->msg) {
        message_unref(ch->msg);
        ch->msg = NULL;
    }
    ch->cs = CS_IDLE;
    tx_discard(ch);
    chan_requeue_all(ch);
    reply_release(ch);
    HASH_ITER(hh, ch->consumers, cc, tmp)
    {
        chan_consumer_remove(ch, cc);
    }
}

/* A channel goes: its counters join the node's retired ones. */
static void
chan_stats_retire(const struct chan_stats *st)
{
    struct chan_stats *r = &srv->chans_retired;

    r->publish += st->publish;
    r->confirm += st->confirm;
    r->return_unroutable += st->return_unroutable;
    r->drop_unroutable += st->drop_unroutable;
    r->deliver += st->deliver;
    r->deliver_no_ack += st->deliver_no_ack;
    r->get += st->get;
    r->get_no_ack += st->get_no_ack;
    r->get_empty += st->get_empty;
    r->redeliver += st->redeliver;
    r->ack += st->ack;
    srv->chans_closed++;
}

void
chan_free(struct channel *ch)
{
    struct conn *c = ch->conn;

    chan_release(ch);
    WR_ASSERT(ch->unacked.live == 0);
    chan_stats_retire(&ch->st);
    HASH_DEL(c->channels, ch);
    if (c->last_ch == ch)
        c->last_ch = NULL;
    c->nchannels--;
    node_user_channel_leave(srv->node, c->user);
    publish_fini(ch);
    unacked_fini(&ch->unacked);
    free(ch->txops);
    free(ch);
}

int
chan_fail(struct channel *ch, uint16_t code, uint32_t method_id,
          const char *fmt, ...)
{
    struct amqp_method m = {.id = AMQP_CHANNEL_CLOSE};
    char text[600], full[700];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (amqp_code_is_hard(code))
        return conn_fail(ch->conn, code, method_id, "%s", text);
    if (ch->state != CH_OPEN)
        return WR_ERR;
    n = snprintf(full, sizeof(full), "%s - %s", amqp_code_name(code), text);
    n = amqp_reply_text_fit(full, n);
    m.u.channel_close.reply_code = code;
    m.u.channel_close.reply_text = bytes_of(full, (size_t)n);
    m.u.channel_close.class_id = AMQP_METHOD_CLASS(method_id);
    m.u.channel_close.method_id = AMQP_METHOD_INDEX(method_id);
    conn_send_method(ch->conn, ch->id, &m);
    log_debug("connection %s, channel %u: closing with %s", ch->conn->peer,
              ch->id, full);
    ch->state = CH_CLOSING;
    chan_release(ch);
    return WR_ERR;
}

/* A delivery's ack timeout: its queue's (x-consumer-timeout or a
 * policy's consumer-timeout), else the node's; 0 = none. */
static uint64_t
delivery_limit_us(const struct unacked *u, uint64_t node_limit_us)
{
    int64_t ms = queue_consumer_timeout_ms(u->q);

    return ms < 0 ? node_limit_us : (uint64_t)ms * 1000u;
}

void
chan_note_delivery_limit(struct channel *ch, const struct queue *q)
{
    int64_t ms = queue_consumer_timeout_ms(q);

    if (ms >= 0 && (uint64_t)ms * 1000u < ch->min_queue_limit_us)
        ch->min_queue_limit_us = (uint64_t)ms * 1000u;
}

/*
 * Deliveries wait in delivery order, so with one timeout for all only
 * the oldest needs a look. Queues with their own timeout make the limit
 * differ per delivery: the scan goes on while a delivery is older than
 * the shortest limit it could have (the node's, or the shortest queue
 * timeout this channel delivered from or consumes from now).
 */
void
chan_check_consumer_timeout(struct channel *ch, uint64_t now_us,
                            uint64_t limit_us)
{
    uint64_t bound = limit_us ? limit_us : UINT64_MAX;
    struct chconsumer *cc, *tmp;

    unacked_compact(&ch->unacked);
    if (ch->state != CH_OPEN || ch->unacked.r.n == 0)
        return;
    HASH_ITER(hh, ch->consumers, cc, tmp)
    {
        if (cc->c.q)
            chan_note_delivery_limit(ch, cc->c.q);
    }
    bound = WR_MIN(bound, ch->min_queue_limit_us);
    for (size_t i = 0; i < ch->unacked.r.n; i++) {
        struct unacked *u = unacked_at(&ch->unacked, i);
        uint64_t age = now_us - u->at_us, limit;

        if (age <= bound)
            return;
        if (!u->q || !(limit = delivery_limit_us(u, limit_us)) || age <= limit)
            continue;
        chan_fail(ch, AMQP_PRECONDITION_FAILED, 0,
                  "delivery acknowledgement on channel %u timed out. "
                  "Timeout value used: %llu ms. This timeout value can "
                  "be configured, see consumers doc guide to learn more",
                  ch->id, (unsigned long long)(limit / 1000));
        return;
    }
}

int
chan_fail_vherr(struct channel *ch, const struct vherr *err, uint32_t method_id)
{
    return chan_fail(ch, err->code, method_id, "%s", err->text);
}

/* ---- method dispatch */

/* The handler the method table has for m, or 503 for a method a client
 * may not send on a channel (a connection method, or one only a server
 * sends: deliver, get-ok, a close-ok with no close pending, ...). */
static int
dispatch(struct channel *ch, const struct amqp_method *m)
{
    int slot = amqp_method_slot(m->id);
    chan_method_fn *fn = slot >= 0 ? srv->methods->chan[slot] : NULL;

    uint64_t gen = node_defs_generation(srv->node);
    size_t mark = ch->conn->out.b.len, nrefs = ch->conn->out.refs.n;
    int rc;

    if (!fn)
        return conn_fail(ch->conn, AMQP_COMMAND_INVALID, m->id,
                         "unimplemented method");
    rc = fn(ch, m);
    /* a durable definitions change: its reply waits for the in-sync set */
    if (srv->cluster && node_defs_generation(srv->node) != gen)
        conn_hold_reply(ch->conn, mark, nrefs);
    return rc;
}

/* In CH_CLOSING: only channel.close and channel.close-ok matter. */
static int
closing_frame(struct channel *ch, const struct frame *f)
{
    struct amqp_method m;

    if (f->type != FRAME_METHOD ||
        amqp_method_decode(f->payload.ptr, f->payload.len, &m, NULL) !=
            AMQP_DECODE_OK)
        return WR_OK;
    if (m.id == AMQP_CHANNEL_CLOSE_OK) {
        chan_free(ch);
    } else if (m.id == AMQP_CHANNEL_CLOSE) {
        /* Both sides closed at once: answer, and still wait for the
         * close-ok of ours. */
        struct amqp_method ok = {.id = AMQP_CHANNEL_CLOSE_OK};
        conn_send_method(ch->conn, ch->id, &ok);
    }
    return WR_OK;
}

int
chan_handle_frame(struct channel *ch, const struct frame *f)
{
    struct amqp_method m;

    if (ch->state == CH_CLOSING)
        return closing_frame(ch, f);
    switch (ch->cs) {
    case CS_HEADER:
        if (f->type != FRAME_HEADER)
            return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME,
                             AMQP_BASIC_PUBLISH,
                             "expected content header for class %u, got non "
                             "content header frame instead",
                             AMQP_CLASS_BASIC);
        return publish_header(ch, f);
    case CS_BODY:
        if (f->type != FRAME_BODY)
            return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME,
                             AMQP_BASIC_PUBLISH,
                             "expected content body, got non content body "
                             "frame instead");
        return publish_body(ch, f);
    case CS_IDLE:
        break;
    }
    if (f->type != FRAME_METHOD)
        return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME, 0,
                         "expected method frame, got non method frame "
                         "instead");
    if (conn_decode_method(ch->conn, f, &m) != WR_OK)
        return WR_ERR;
    return dispatch(ch, &m);
}

int
chan_queue_name(struct channel *ch, struct bytes *name, uint32_t method_id)
{
    if (name->len > 0)
        return WR_OK;
    if (ch->last_queue_len == 0)
        return chan_fail(ch, AMQP_NOT_FOUND, method_id,
                         "no previously declared queue");
    *name = bytes_of(ch->last_queue, ch->last_queue_len);
    return WR_OK;
}

/* ---- what others read */

struct channel *
chan_next(const struct conn *c, const struct channel *ch)
{
    return ch ? ch->hh.next : c->channels;
}

struct channel *
chan_find(const struct conn *c, uint16_t id)
{
    struct channel *ch;

    HASH_FIND(hh, c->channels, &id, sizeof(id), ch);
    return ch;
}

void
chan_info(const struct channel *ch, struct chan_info *out)
{
    *out = (struct chan_info){
        .number = ch->id,
        .conn = ch->conn,
        .state = ch->state == CH_OPEN ? "running" : "closing",
        .consumers = HASH_COUNT(ch->consumers),
        .unacked = (uint32_t)ch->unacked.live,
        .unconfirmed = (uint32_t)confirm_waiting(&ch->confirms),
        .prefetch_count = ch->prefetch_consumer,
        .global_prefetch_count = ch->prefetch_global,
        .confirm = ch->confirm,
        .transactional = ch->tx,
        .stats = ch->st,
    };
    for (size_t i = 0; i < ch->ntx; i++) {
        if (ch->txops[i].kind == TX_PUBLISH)
            out->uncommitted++;
        else
            out->acks_uncommitted++;
    }
}
