/*
 * m_basic.c: the basic class: qos, consume, cancel, publish, get, ack,
 * nack, reject, recover.
 *
 * RabbitMQ's meanings: basic.qos global=false sets the prefetch of
 * consumers created afterwards on this channel, global=true a limit
 * shared by the channel's consumers; prefetch_size is not supported
 * (540). Acks name a delivery tag that must be waiting (else 406 "unknown
 * delivery tag N"); with multiple=true every waiting delivery up to it is
 * settled as well, and tag 0 with multiple=true settles them all.
 */
#include "server/channel.h"

#include "amqp/ftable.h"
#include "vhost/stream.h"

#include <stdio.h>
#include <stdlib.h>

int
m_basic_qos(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_qos *a = &m->u.basic_qos;
    struct amqp_method ok = {.id = AMQP_BASIC_QOS_OK};

    if (a->prefetch_size != 0)
        return conn_fail(ch->conn, AMQP_NOT_IMPLEMENTED, m->id,
                         "prefetch_size!=0 (%u)", a->prefetch_size);
    if (a->global)
        ch->prefetch_global = a->prefetch_count;
    else
        ch->prefetch_consumer = a->prefetch_count;
    conn_send_method(ch->conn, ch->id, &ok);
    chan_wake_consumers(ch);
    return WR_OK;
}

int
m_basic_consume(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_consume *a = &m->u.basic_consume;
    struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
    struct bytes name = a->queue, tag = a->consumer_tag;
    struct chconsumer *cc;
    struct queue *q;
    struct vherr err;
    struct fvalue prio = {0};
    int64_t priority = 0;
    char gen[32];

    HASH_FIND(hh, ch->consumers, tag.ptr, tag.len, cc);
    if (cc && tag.len > 0)
        return conn_fail(ch->conn, AMQP_NOT_ALLOWED, m->id,
                         "attempt to reuse consumer tag '%.*s'",
                         BYTES_FMT(tag));
    if (reply_is_queue(name))
        return reply_consume(ch, m);
    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    if (vhost_queue_access(ch->conn->vh, name, &ch->conn->owner, PERM_READ, &q,
                           &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (queue_exclusive_consumer(q) ||
        (a->exclusive && queue_consumer_count(q)))
        return chan_fail(ch, AMQP_ACCESS_REFUSED, m->id,
                         "queue '%.*s' in vhost '%s' in exclusive use",
                         BYTES_FMT(name), vhost_name(ch->conn->vh));
    if (queue_is_stream(q) &&
        stream_check_consume(q, a->no_ack, ch->prefetch_consumer,
                             ch->prefetch_global, a->arguments, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (ftable_find(a->arguments, "x-priority", &prio) &&
        !fvalue_get_int(&prio, &priority))
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "invalid arg 'x-priority' for queue '%.*s' in vhost "
                         "'%s': \"expected integer, got %s\"",
                         BYTES_FMT(name), vhost_name(ch->conn->vh),
                         fvalue_type_name(prio.type));
    if (tag.len == 0) {
        chan_gen_name("amq.ctag-", gen);
        tag = bytes_str(gen);
    }
    cc = xcalloc(1, sizeof(*cc));
    cc->ch = ch;
    cc->refs = 1;
    cc->c.ops = &chan_consumer_ops;
    cc->c.owner = ch;
    cc->c.tag = xstrndup(tag.ptr, tag.len);
    cc->c.tag_len = tag.len;
    cc->c.no_ack = a->no_ack;
    cc->c.exclusive = a->exclusive;
    cc->c.prefetch = a->no_ack ? 0 : ch->prefetch_consumer;
    cc->c.priority = priority;
    cc->c.args =
        bytes_of(xmemdup(a->arguments.ptr, a->arguments.len), a->arguments.len);
    HASH_ADD_KEYPTR(hh, ch->consumers, cc->c.tag, cc->c.tag_len, cc);
    if (!a->no_wait) {
        ok.u.basic_consume_ok.consumer_tag = tag;
        conn_send_method(ch->conn, ch->id, &ok);
    }
    queue_consumer_add(q, &cc->c);
    return WR_OK;
}

int
m_basic_cancel(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_cancel *a = &m->u.basic_cancel;
    struct amqp_method ok = {.id = AMQP_BASIC_CANCEL_OK};
    struct chconsumer *cc = NULL;

    if (!reply_cancel(ch, a->consumer_tag))
        HASH_FIND(hh, ch->consumers, a->consumer_tag.ptr, a->consumer_tag.len,
                  cc);
    /* The reply goes first: removing the last consumer of an auto-delete
     * queue deletes it, which must not look like a server cancel. */
    if (!a->no_wait) {
        ok.u.basic_cancel_ok.consumer_tag = a->consumer_tag;
        conn_send_method(ch->conn, ch->id, &ok);
    }
    if (cc)
        chan_consumer_remove(ch, cc);
    return WR_OK;
}

int
m_basic_publish(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_publish *a = &m->u.basic_publish;

    if (a->immediate)
        return conn_fail(ch->conn, AMQP_NOT_IMPLEMENTED, m->id,
                         "immediate=true");
    ch->conn->published = true;
    memcpy(ch->pub_exchange, a->exchange.ptr, a->exchange.len);
    ch->pub_exchange_len = (uint8_t)a->exchange.len;
    memcpy(ch->pub_rk, a->routing_key.ptr, a->routing_key.len);
    ch->pub_rk_len = (uint8_t)a->routing_key.len;
    ch->pub_mandatory = a->mandatory;
    ch->cs = CS_HEADER;
    return WR_OK;
}

int
m_basic_get(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_get *a = &m->u.basic_get;
    struct amqp_method r;
    struct bytes name = a->queue;
    struct queue *q;
    struct qentry e;
    struct vherr err;
    uint64_t tag;
    int64_t count;

    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    if (vhost_queue_access(ch->conn->vh, name, &ch->conn->owner, PERM_READ, &q,
                           &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (queue_is_stream(q)) {
        stream_refuse(q, "basic.get", &err);
        return chan_fail_vherr(ch, &err, m->id);
    }
    if (!queue_get_counted(q, !a->no_ack, &e, &count)) {
        r.id = AMQP_BASIC_GET_EMPTY;
        r.u.basic_get_empty.reserved_1 = BYTES_NULL;
        conn_send_method(ch->conn, ch->id, &r);
        ch->st.get_empty++;
        return WR_OK;
    }
    tag = ++ch->next_tag;
    r.id = AMQP_BASIC_GET_OK;
    r.u.basic_get_ok.delivery_tag = tag;
    r.u.basic_get_ok.redelivered = (e.id & QE_REDELIVERED) != 0;
    r.u.basic_get_ok.exchange = message_exchange(e.msg);
    r.u.basic_get_ok.routing_key = message_rk(e.msg);
    r.u.basic_get_ok.message_count = queue_message_count(q);
    /* RabbitMQ 3.10's quorum queues add x-delivery-count to every get,
     * 0 included */
    if (count >= 0)
        conn_send_counted(ch->conn, ch->id, &r, e.msg, count);
    else
        conn_send_content(ch->conn, ch->id, &r, e.msg);
    ch->st.redeliver += r.u.basic_get_ok.redelivered;
    if (a->no_ack)
        ch->st.get_no_ack++;
    else
        ch->st.get++;
    if (a->no_ack)
        message_unref(e.msg);
    else {
        chan_note_delivery_limit(ch, q);
        unacked_push(
            &ch->unacked,
            &(struct unacked){
                .tag = tag, .at_us = node_now(srv->node), .q = q, .e = e});
    }
    return WR_OK;
}

/* RabbitMQ 3.10 refuses basic.nack and basic.reject of a stream's
 * deliveries (540). True when it closed the connection for that. */
static bool
refuse_stream_nack(struct channel *ch, uint32_t method_id,
                   struct unacked_list *l, size_t from, size_t to)
{
    struct vherr err;

    for (size_t i = from; i <= to; i++) {
        struct queue *q = unacked_at(l, i)->q;

        if (q && queue_is_stream(q)) {
            stream_refuse(q, "basic.nack and basic.reject", &err);
            chan_fail_vherr(ch, &err, method_id);
            return true;
        }
    }
    return false;
}

/*
 * Settles the deliveries an ack/nack/reject names. In a transaction they
 * are taken out of the list now and settled at tx.commit (RabbitMQ's
 * collect_acks, then the tx holds them).
 */
static int
settle(struct channel *ch, uint32_t method_id, uint64_t tag, bool multiple,
       bool ack, bool requeue)
{
    struct unacked_list *l = &ch->unacked;
    ssize_t idx;
    size_t from;

    if (multiple && tag == 0) {
        if (l->r.n == 0)
            return WR_OK;
        idx = (ssize_t)l->r.n - 1;
    } else {
        idx = unacked_find(l, tag);
        if (idx < 0)
            return chan_fail(ch, AMQP_PRECONDITION_FAILED, method_id,
                             "unknown delivery tag %llu",
                             (unsigned long long)tag);
    }
    from = multiple ? 0 : (size_t)idx;
    if (!ack && refuse_stream_nack(ch, method_id, l, from, (size_t)idx))
        return WR_ERR;
    for (size_t i = from; i <= (size_t)idx; i++) {
        struct unacked u;

        if (!unacked_at(l, i)->q)
            continue;
        u = unacked_take(l, i);
        if (ch->tx)
            chan_tx_add_ack(ch, &u, ack, requeue);
        else
            chan_settle(ch, &u, ack, requeue);
    }
    unacked_compact(l);
    return WR_OK;
}

int
m_basic_ack(struct channel *ch, const struct amqp_method *m)
{
    return settle(ch, m->id, m->u.basic_ack.delivery_tag,
                  m->u.basic_ack.multiple, true, false);
}

int
m_basic_nack(struct channel *ch, const struct amqp_method *m)
{
    return settle(ch, m->id, m->u.basic_nack.delivery_tag,
                  m->u.basic_nack.multiple, false, m->u.basic_nack.requeue);
}

int
m_basic_reject(struct channel *ch, const struct amqp_method *m)
{
    return settle(ch, m->id, m->u.basic_reject.delivery_tag, false, false,
                  m->u.basic_reject.requeue);
}

static int
recover(struct channel *ch, const struct amqp_method *m, bool requeue,
        bool reply)
{
    struct amqp_method ok = {.id = AMQP_BASIC_RECOVER_OK};

    if (!requeue)
        return conn_fail(ch->conn, AMQP_NOT_IMPLEMENTED, m->id,
                         "requeue=false");
    /* Everything waiting goes back, transaction or not. */
    chan_requeue_all(ch);
    if (reply)
        conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_basic_recover(struct channel *ch, const struct amqp_method *m)
{
    return recover(ch, m, m->u.basic_recover.requeue, true);
}

int
m_basic_recover_async(struct channel *ch, const struct amqp_method *m)
{
    return recover(ch, m, m->u.basic_recover_async.requeue, false);
}
