/*
 * channel.c: one AMQP channel: its state machine, content assembly,
 * deliveries waiting for ack, consumers, and publisher confirms.
 *
 * States: CH_OPEN handles everything; after the server sends
 * channel.close (a soft error) the channel is CH_CLOSING and drops every
 * frame until channel.close-ok (0-9-1 section 2.2.4), then it is freed.
 * Releasing happens at the moment of the error, not at close-ok, so
 * other consumers see requeued messages at once.
 *
 * Content assembly: basic.publish -> CS_HEADER -> (content header)
 * CS_BODY -> (body frames until body-size bytes) -> publish. The message
 * is allocated once, when the header gives its size (checked against
 * max_message_size first), and body frames are copied into it.
 *
 * Deliveries waiting for ack live in a ring deque (base/ring.h) sorted
 * by delivery tag. An ack in the middle leaves a tombstone (q == NULL) that is
 * dropped once it reaches the head, so acking in order costs O(1) and
 * out of order O(log n).
 *
 * Consumers are struct chconsumer: the struct consumer the queue sees,
 * plus a refcount: one for being registered and one per unacked delivery,
 * so a cancelled consumer's deliveries can still be acked.
 */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- unacked list (a base/ring.h deque of struct unacked) */

struct unacked *
unacked_at(struct unacked_list *l, size_t i)
{
    return ring_at(&l->r, sizeof(struct unacked), i);
}

void
unacked_push(struct unacked_list *l, const struct unacked *u)
{
    WR_DEBUG_ASSERT(l->r.n == 0 || unacked_at(l, l->r.n - 1)->tag < u->tag);
    *(struct unacked *)ring_push_back(&l->r, sizeof(*u)) = *u;
    l->live++;
}

ssize_t
unacked_find(const struct unacked_list *l, uint64_t tag)
{
    size_t lo = 0, hi = l->r.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct unacked *u = ring_at(&l->r, sizeof(*u), mid);

        if (u->tag < tag)
            lo = mid + 1;
        else if (u->tag > tag)
            hi = mid;
        else
            return u->q ? (ssize_t)mid : -1;
    }
    return -1;
}

struct unacked
unacked_take(struct unacked_list *l, size_t i)
{
    struct unacked *u = unacked_at(l, i), copy = *u;

    WR_ASSERT(u->q != NULL);
    u->q = NULL;
    l->live--;
    return copy;
}

void
unacked_compact(struct unacked_list *l)
{
    while (l->r.n > 0 && unacked_at(l, 0)->q == NULL)
        ring_pop_front(&l->r);
    if (l->r.n == 0 && l->r.cap > 1024)
        ring_fini(&l->r);
}

static void wait_remove(struct channel *ch);

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

    d->consumer_tag = bytes_of(c->tag, c->tag_len);
    d->delivery_tag = tag;
    d->redelivered = (e.id & QE_REDELIVERED) != 0;
    d->exchange = message_exchange(e.msg);
    d->routing_key = message_rk(e.msg);
    conn_send_content(ch->conn, ch->id, &m, e.msg);
    if (c->no_ack) {
        message_unref(e.msg);
        return;
    }
    unacked_push(&ch->unacked, &(struct unacked){.tag = tag,
                                                 .at_us = node_now(srv->node),
                                                 .q = q,
                                                 .e = e,
                                                 .cons = cc});
    cc->refs++;
    c->unacked++;
    ch->consumer_unacked++;
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
    if (ack)
        queue_ack(q, u->e);
    else if (!requeue)
        queue_reject(q, u->e);
    else
        queue_requeue(q, u->e);
}

/* Requeues every delivery still waiting, in tag order. */
static void
requeue_all(struct channel *ch)
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
    HASH_ADD(hh, c->channels, id, sizeof(ch->id), ch);
    c->nchannels++;
    conn_send_method(c, id, &ok);
    return ch;
}

static void
tx_discard(struct channel *ch)
{
    for (size_t i = 0; i < ch->ntx; i++) {
        struct tx_op *op = &ch->txops[i];

        if (op->kind == TX_PUBLISH)
            message_unref(op->msg);
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
    requeue_all(ch);
    HASH_ITER(hh, ch->consumers, cc, tmp)
    {
        chan_consumer_remove(ch, cc);
    }
}

void
chan_free(struct channel *ch)
{
    struct conn *c = ch->conn;

    chan_release(ch);
    WR_ASSERT(ch->unacked.live == 0);
    HASH_DEL(c->channels, ch);
    if (c->last_ch == ch)
        c->last_ch = NULL;
    c->nchannels--;
    wait_remove(ch);
    if (ch->commit_lsn)
        conn_release_input(c);
    free(ch->pend);
    ring_fini(&ch->unacked.r);
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

int
chan_fail_vherr(struct channel *ch, const struct vherr *err, uint32_t method_id)
{
    return chan_fail(ch, err->code, method_id, "%s", err->text);
}

/* ---- confirms */

static void
wait_add(struct channel *ch)
{
    if (ch->waiting)
        return;
    ch->waiting = true;
    ch->wait_prev = NULL;
    ch->wait_next = srv->waiting;
    if (srv->waiting)
        srv->waiting->wait_prev = ch;
    srv->waiting = ch;
}

static void
wait_remove(struct channel *ch)
{
    if (!ch->waiting)
        return;
    ch->waiting = false;
    if (ch->wait_prev)
        ch->wait_prev->wait_next = ch->wait_next;
    else
        srv->waiting = ch->wait_next;
    if (ch->wait_next)
        ch->wait_next->wait_prev = ch->wait_prev;
}

/* A pending confirm that is a basic.nack whatever the log does. */
#define CONFIRM_NACK UINT64_MAX

static void
pend_push(struct channel *ch, uint64_t seq, uint64_t lsn)
{
    if (ch->phead + ch->pn == ch->pcap) {
        if (ch->phead > ch->pcap / 2) {
            memmove(ch->pend, ch->pend + ch->phead, ch->pn * sizeof(*ch->pend));
            ch->phead = 0;
        } else {
            ch->pcap = ch->pcap ? ch->pcap * 2 : 64;
            ch->pend = xrealloc(ch->pend, ch->pcap * sizeof(*ch->pend));
        }
    }
    ch->pend[ch->phead + ch->pn++] = (struct pending_confirm){seq, lsn};
    wait_add(ch);
}

static void
pend_pop(struct channel *ch)
{
    ch->phead++;
    if (--ch->pn == 0)
        ch->phead = 0;
}

/* Sends basic.ack (or nack) for every publish up to seq not yet
 * answered. */
static void
confirm_upto(struct channel *ch, uint64_t seq, bool ack)
{
    struct amqp_method m = {.id = ack ? AMQP_BASIC_ACK : AMQP_BASIC_NACK};

    if (seq <= ch->acked_upto)
        return;
    if (ack) {
        m.u.basic_ack.delivery_tag = seq;
        m.u.basic_ack.multiple = seq - ch->acked_upto > 1;
    } else {
        m.u.basic_nack.delivery_tag = seq;
        m.u.basic_nack.multiple = seq - ch->acked_upto > 1;
    }
    ch->acked_upto = seq;
    conn_send_method(ch->conn, ch->id, &m);
}

void
chan_flush_confirms(struct channel *ch)
{
    struct vhost *vh = ch->conn->vh;
    struct amqp_method ok = {.id = AMQP_TX_COMMIT_OK};

    ch->confirm_pending = false;
    if (ch->state != CH_OPEN)
        return;
    while (ch->pn > 0) {
        struct pending_confirm *p = &ch->pend[ch->phead];

        if (p->lsn == CONFIRM_NACK) {
            /* refused at publish: a full queue, or a failed log */
            confirm_upto(ch, p->seq - 1, true);
            confirm_upto(ch, p->seq, false);
            pend_pop(ch);
            continue;
        }
        if (p->lsn <= vhost_durable_lsn(vh)) {
            pend_pop(ch);
            continue;
        }
        if (!vhost_log_failed(vh))
            break;
        /* The log failed before this record was safe: refuse it. */
        confirm_upto(ch, p->seq - 1, true);
        confirm_upto(ch, p->seq, false);
        pend_pop(ch);
    }
    confirm_upto(ch, ch->pn ? ch->pend[ch->phead].seq - 1 : ch->pub_seq, true);
    if (ch->commit_lsn && ch->commit_lsn <= vhost_durable_lsn(vh)) {
        ch->commit_lsn = 0;
        conn_send_method(ch->conn, ch->id, &ok);
        conn_release_input(ch->conn);
    } else if (ch->commit_lsn && vhost_log_failed(vh)) {
        ch->commit_lsn = 0;
        conn_fail(ch->conn, AMQP_INTERNAL_ERROR, AMQP_TX_COMMIT,
                  "the message log failed; the transaction's persistent "
                  "messages may not be on disk");
        return;
    }
    if (ch->pn == 0 && ch->commit_lsn == 0)
        wait_remove(ch);
}

void
chan_durable_advanced(struct vhost *vh)
{
    for (struct channel *ch = srv->waiting; ch; ch = ch->wait_next) {
        if (ch->conn->vh == vh) {
            ch->confirm_pending = true;
            conn_pending(ch->conn);
        }
    }
}

/* A tx.commit whose records are not durable yet: hold its commit-ok, and
 * the connection's later input, until they are. */
void
chan_hold_commit(struct channel *ch, uint64_t lsn)
{
    ch->commit_lsn = lsn;
    ch->conn->input_held = true;
    wait_add(ch);
}

/* ---- publishing */

static void
send_return(struct channel *ch, struct message *msg)
{
    struct amqp_method m = {.id = AMQP_BASIC_RETURN};

    m.u.basic_return.reply_code = AMQP_NO_ROUTE;
    m.u.basic_return.reply_text = BYTES_LIT("NO_ROUTE");
    m.u.basic_return.exchange = message_exchange(msg);
    m.u.basic_return.routing_key = message_rk(msg);
    conn_send_content(ch->conn, ch->id, &m, msg);
}

uint64_t
chan_publish(struct channel *ch, struct exchange *x, struct message *msg,
             bool mandatory)
{
    struct amqp_basic_props props;
    struct publish_result res;
    static uint64_t last_warn;

    if (amqp_basic_props_decode(message_props(msg).ptr, msg->props_len, &props,
                                NULL) != AMQP_DECODE_OK)
        props.headers = BYTES_NULL; /* checked when the header arrived */
    vhost_publish(ch->conn->vh, x, message_rk(msg), props.headers, msg, &res);
    if (res.refused) {
        /* The log failed or the disk is full: the message went nowhere
         * (no queue has it). A confirming publisher gets basic.nack;
         * others can only be told by the log. */
        ch->tx_refused = ch->tx;
        if (ch->confirm) {
            pend_push(ch, ++ch->pub_seq, CONFIRM_NACK);
            ch->confirm_pending = true;
            conn_pending(ch->conn);
        } else if (!ch->tx && wr_now_ms() - last_warn > 5000) {
            const char *why = vhost_log_refusal(ch->conn->vh);

            last_warn = wr_now_ms();
            log_err("vhost '%s': persistent message refused: %s",
                    vhost_name(ch->conn->vh), why ? why : "the log refused it");
        }
        message_unref(msg);
        return 0;
    }
    if (res.feeds_waiting)
        ch->conn->feeding = true;
    if (res.nqueues == 0 && mandatory)
        send_return(ch, msg);
    if (ch->confirm) {
        ch->pub_seq++;
        if (res.rejected) /* a queue at its limit refused it */
            pend_push(ch, ch->pub_seq, CONFIRM_NACK);
        else if (res.lsn > vhost_durable_lsn(ch->conn->vh))
            pend_push(ch, ch->pub_seq, res.lsn);
        ch->confirm_pending = true;
        conn_pending(ch->conn);
    }
    message_unref(msg);
    return res.lsn;
}

/* RabbitMQ's publish-time checks of the properties (amqp_props_check).
 * Stamps the message's publish time. */
static int
check_properties(struct channel *ch, struct message *msg)
{
    struct amqp_props p;
    char err[600];

    if (amqp_props_read(message_props(msg), &p, NULL) != AMQP_DECODE_OK)
        return WR_OK; /* validated when the header arrived */
    if (amqp_props_check(&p, ch->conn->user, err, sizeof(err)) != WR_OK)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH, "%s",
                         err);
    msg->ts_us = node_now(srv->node);
    return WR_OK;
}

/* Write permission on the exchange, checked first as RabbitMQ does. The
 * last exchange allowed is cached until permissions change, so a
 * publisher pays for the regular expression once. */
static int
check_write(struct channel *ch, struct bytes x)
{
    uint64_t gen = node_perm_gen(srv->node);
    struct vherr err;

    if (ch->write_ok_gen == gen && ch->write_ok_len == x.len &&
        memcmp(ch->write_ok, x.ptr, x.len) == 0)
        return WR_OK;
    if (vhost_perm_check(ch->conn->vh, ch->conn->user, PERM_WRITE, "exchange",
                         x, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, AMQP_BASIC_PUBLISH);
    ch->write_ok_gen = gen;
    ch->write_ok_len = (uint8_t)x.len;
    memcpy(ch->write_ok, x.ptr, x.len);
    return WR_OK;
}

/* The last body byte arrived: route it (or hold it for tx.commit). */
static int
content_complete(struct channel *ch)
{
    struct message *msg = ch->msg;
    struct exchange *x;

    ch->msg = NULL;
    ch->cs = CS_IDLE;
    /* Under an alarm, stop reading this publisher at a message boundary:
     * this message goes through, the next waits. */
    if (srv->alarms && !ch->conn->blocked && alarm_should_block(ch->conn))
        alarm_block(ch->conn);
    if (check_write(ch, message_exchange(msg)) != WR_OK) {
        message_unref(msg);
        return WR_ERR;
    }
    x = vhost_exchange_find(ch->conn->vh, message_exchange(msg));
    if (!x) {
        struct bytes name = message_exchange(msg);
        message_unref(msg);
        return chan_fail(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH,
                         "no exchange '%.*s' in vhost '%s'", BYTES_FMT(name),
                         vhost_name(ch->conn->vh));
    }
    if (x->internal) {
        message_unref(msg);
        return chan_fail(ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_PUBLISH,
                         "cannot publish to internal exchange '%s' in vhost "
                         "'%s'",
                         x->name, vhost_name(ch->conn->vh));
    }
    if (check_properties(ch, msg) != WR_OK) {
        message_unref(msg);
        return WR_ERR;
    }
    if (ch->tx) {
        chan_tx_add_publish(ch, msg, ch->pub_mandatory);
        return WR_OK;
    }
    chan_publish(ch, x, msg, ch->pub_mandatory);
    return WR_OK;
}

static int
on_content_header(struct channel *ch, const struct frame *f)
{
    struct amqp_props props;
    uint16_t class_id;
    uint64_t size;
    struct bytes raw;
    const char *why = NULL;

    if (frame_parse_content_header(f->payload, &class_id, &size, &raw) != WR_OK)
        return conn_fail_unknown_frame(ch->conn, f);
    if (class_id != AMQP_CLASS_BASIC)
        return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                         "expected content header for class %u, got one "
                         "for class %u instead",
                         AMQP_CLASS_BASIC, class_id);
    if (be16_load(f->payload.ptr + 2) != 0) /* weight */
        return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                         "expected content header for class %u, got non "
                         "content header frame instead",
                         AMQP_CLASS_BASIC);
    if (amqp_props_read(raw, &props, &why) != AMQP_DECODE_OK)
        return conn_fail(ch->conn, AMQP_FRAME_ERROR, 0,
                         "malformed content header properties: %s", why);
    if (size > srv->cfg->max_message_size)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                         "message size %llu is larger than configured max "
                         "size %llu",
                         (unsigned long long)size,
                         (unsigned long long)srv->cfg->max_message_size);
    ch->msg = message_new(bytes_of(ch->pub_exchange, ch->pub_exchange_len),
                          bytes_of(ch->pub_rk, ch->pub_rk_len), raw, size);
    message_set_props(ch->msg, &props);
    alarm_note_memory(srv);
    if (size == 0)
        return content_complete(ch);
    ch->cs = CS_BODY;
    return WR_OK;
}

static int
on_content_body(struct channel *ch, const struct frame *f)
{
    struct message *msg = ch->msg;

    if (f->payload.len > msg->body_size - msg->received)
        return conn_fail(ch->conn, AMQP_FRAME_ERROR, 0,
                         "content body frame of %zu bytes overruns the "
                         "declared body size %llu",
                         f->payload.len, (unsigned long long)msg->body_size);
    msg = ch->msg = message_append(msg, f->payload);
    alarm_note_memory(srv);
    if (msg->received == msg->body_size)
        return content_complete(ch);
    return WR_OK;
}

/* ---- method dispatch */

static int
dispatch(struct channel *ch, const struct amqp_method *m)
{
    switch (m->id) {
    case AMQP_CHANNEL_OPEN:
        return conn_fail(ch->conn, AMQP_CHANNEL_ERROR, m->id,
                         "second 'channel.open' seen");
    case AMQP_CHANNEL_FLOW:
        return m_channel_flow(ch, m);
    case AMQP_CHANNEL_CLOSE:
        return m_channel_close(ch, m);
    case AMQP_ACCESS_REQUEST: {
        struct amqp_method ok = {.id = AMQP_ACCESS_REQUEST_OK};
        ok.u.access_request_ok.ticket = 1;
        conn_send_method(ch->conn, ch->id, &ok);
        return WR_OK;
    }
    case AMQP_EXCHANGE_DECLARE:
        return m_exchange_declare(ch, m);
    case AMQP_EXCHANGE_DELETE:
        return m_exchange_delete(ch, m);
    case AMQP_EXCHANGE_BIND:
        return m_exchange_bind(ch, m);
    case AMQP_EXCHANGE_UNBIND:
        return m_exchange_unbind(ch, m);
    case AMQP_QUEUE_DECLARE:
        return m_queue_declare(ch, m);
    case AMQP_QUEUE_BIND:
        return m_queue_bind(ch, m);
    case AMQP_QUEUE_UNBIND:
        return m_queue_unbind(ch, m);
    case AMQP_QUEUE_PURGE:
        return m_queue_purge(ch, m);
    case AMQP_QUEUE_DELETE:
        return m_queue_delete(ch, m);
    case AMQP_BASIC_QOS:
        return m_basic_qos(ch, m);
    case AMQP_BASIC_CONSUME:
        return m_basic_consume(ch, m);
    case AMQP_BASIC_CANCEL:
        return m_basic_cancel(ch, m);
    case AMQP_BASIC_PUBLISH:
        return m_basic_publish(ch, m);
    case AMQP_BASIC_GET:
        return m_basic_get(ch, m);
    case AMQP_BASIC_ACK:
        return m_basic_ack(ch, m);
    case AMQP_BASIC_REJECT:
        return m_basic_reject(ch, m);
    case AMQP_BASIC_NACK:
        return m_basic_nack(ch, m);
    case AMQP_BASIC_RECOVER:
        return m_basic_recover(ch, m);
    case AMQP_BASIC_RECOVER_ASYNC:
        return m_basic_recover_async(ch, m);
    case AMQP_CONFIRM_SELECT:
        return m_confirm_select(ch, m);
    case AMQP_TX_SELECT:
        return m_tx_select(ch, m);
    case AMQP_TX_COMMIT:
        return m_tx_commit(ch, m);
    case AMQP_TX_ROLLBACK:
        return m_tx_rollback(ch, m);
    default:
        /* A connection method, or one only a server sends (deliver,
         * get-ok, channel.close-ok with no close pending, ...). */
        return conn_fail(ch->conn, AMQP_COMMAND_INVALID, m->id,
                         "unimplemented method");
    }
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
        return on_content_header(ch, f);
    case CS_BODY:
        if (f->type != FRAME_BODY)
            return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME,
                             AMQP_BASIC_PUBLISH,
                             "expected content body, got non content body "
                             "frame instead");
        return on_content_body(ch, f);
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
