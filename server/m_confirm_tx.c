/*
 * m_confirm_tx.c: publisher confirms and transactions.
 *
 * Confirms: after confirm.select every publish on the channel gets the
 * next sequence number from 1; the broker confirms a publish once every
 * queue it was routed to has it. Confirms are coalesced: the prepare pass
 * sends one basic.ack with multiple=true covering everything confirmed
 * since the last one (publish_flush_confirms). A mandatory return is queued
 * when the publish is routed, so it always precedes its ack.
 *
 * Transactions (RabbitMQ's semantics, not atomic across queues): after
 * tx.select, publishes and acks are held in order and applied at
 * tx.commit; tx.rollback drops the publishes and puts the held acks back
 * among the deliveries waiting for ack. A channel cannot be in both
 * modes.
 */
#include "server/channel.h"

#include <stdlib.h>

int
m_confirm_select(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_CONFIRM_SELECT_OK};

    if (ch->tx)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "cannot switch from tx to confirm mode");
    ch->confirm = true;
    if (!m->u.confirm_select.nowait)
        conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_tx_select(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_TX_SELECT_OK};

    if (ch->confirm)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "cannot switch from confirm to tx mode");
    ch->tx = true;
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_tx_commit(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_TX_COMMIT_OK};
    size_t n = ch->ntx;
    uint64_t lsn = 0, sync;

    if (!ch->tx)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "channel is not transactional");
    ch->ntx = 0;
    ch->tx_refused = false;
    for (size_t i = 0; i < n; i++) {
        struct tx_op *op = &ch->txops[i];
        struct exchange *x;

        if (op->kind != TX_PUBLISH) {
            chan_settle(ch, &op->u, op->kind == TX_ACK, op->requeue);
            continue;
        }
        /* The exchange may have gone since the publish: then the
         * message routes nowhere. */
        x = vhost_exchange_find(ch->conn->vh, message_exchange(op->msg));
        if (x) {
            uint64_t l =
                publish_message(ch, x, op->msg, op->mandatory, op->bcc);
            lsn = WR_MAX(lsn, l);
        } else
            message_unref(op->msg);
        free((void *)op->bcc.ptr);
        op->bcc = BYTES_NULL;
    }
    /* commit-ok means the persistent messages are safe (as RabbitMQ's
     * does): never after the log refused one (disk full, log failed),
     * and only once the log is durable past the others. */
    if (ch->tx_refused)
        return conn_fail(ch->conn, AMQP_INTERNAL_ERROR, m->id,
                         "the message log refused a persistent message of "
                         "the transaction (%s); the transaction is not "
                         "committed whole",
                         vhost_log_refusal(ch->conn->vh)
                             ? vhost_log_refusal(ch->conn->vh)
                             : "disk full or log failed");
    sync = ch->tx_sync;
    ch->tx_sync = 0;
    if (lsn > vhost_durable_lsn(ch->conn->vh) ||
        sync > vhost_streams_durable(ch->conn->vh)) {
        publish_hold_commit(ch, lsn, sync);
        return WR_OK;
    }
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

/* Puts held acks back among the waiting deliveries, in tag order. */
static void
restore_acks(struct channel *ch)
{
    struct unacked *held = xmalloc((ch->ntx + 1) * sizeof(*held));
    size_t n = 0;

    for (size_t i = 0; i < ch->ntx; i++) {
        if (ch->txops[i].kind != TX_PUBLISH)
            held[n++] = ch->txops[i].u;
    }
    unacked_restore(&ch->unacked, held, n);
    free(held);
}

int
m_tx_rollback(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_TX_ROLLBACK_OK};

    if (!ch->tx)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "channel is not transactional");
    restore_acks(ch);
    for (size_t i = 0; i < ch->ntx; i++) {
        if (ch->txops[i].kind == TX_PUBLISH)
            chan_tx_drop_publish(&ch->txops[i]);
    }
    ch->ntx = 0;
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}
