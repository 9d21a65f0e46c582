/*
 * m_table.c: the server's side of AMQP 0-9-1 as one table: for every
 * method a client may send (its slot, generated from the spec's
 * "server" chassis: amqp_method_slot), the handler of m_*.c that acts on
 * it.
 *
 * Channel 0 carries the connection class; each handler there comes with
 * the connection states it is valid in (RabbitMQ answers anything else
 * with 504 "unexpected method in connection state S"). Other channels
 * carry the rest; a method without a handler there (a connection
 * method, a close-ok with no close pending, ...) is 503 "unimplemented
 * method". server_init installs the table (struct server.methods), so
 * the state machines in conn.c and channel.c name no handler and the
 * handlers sit above them.
 */
#include "server/channel.h"

#define IN(state) (1u << (state))
#define ANY_STATE UINT32_MAX

const struct m_table m_table = {
    .start = m_connection_start,
    .conn =
        {
            [AMQP_SLOT_CONNECTION_START_OK] = {m_connection_start_ok,
                                               IN(CONN_START)},
            [AMQP_SLOT_CONNECTION_TUNE_OK] = {m_connection_tune_ok,
                                              IN(CONN_TUNE)},
            [AMQP_SLOT_CONNECTION_OPEN] = {m_connection_open, IN(CONN_OPENING)},
            [AMQP_SLOT_CONNECTION_CLOSE] = {m_connection_close, ANY_STATE},
            [AMQP_SLOT_CONNECTION_CLOSE_OK] = {m_connection_close_ok,
                                               ANY_STATE},
            [AMQP_SLOT_CONNECTION_UPDATE_SECRET] = {m_connection_update_secret,
                                                    IN(CONN_OPEN)},
            [AMQP_SLOT_CONNECTION_BLOCKED] = {m_connection_blocked,
                                              IN(CONN_OPEN)},
            [AMQP_SLOT_CONNECTION_UNBLOCKED] = {m_connection_blocked,
                                                IN(CONN_OPEN)},
        },
    .chan =
        {
            [AMQP_SLOT_CHANNEL_OPEN] = m_channel_open,
            [AMQP_SLOT_CHANNEL_FLOW] = m_channel_flow,
            [AMQP_SLOT_CHANNEL_CLOSE] = m_channel_close,
            [AMQP_SLOT_ACCESS_REQUEST] = m_access_request,
            [AMQP_SLOT_EXCHANGE_DECLARE] = m_exchange_declare,
            [AMQP_SLOT_EXCHANGE_DELETE] = m_exchange_delete,
            [AMQP_SLOT_EXCHANGE_BIND] = m_exchange_bind,
            [AMQP_SLOT_EXCHANGE_UNBIND] = m_exchange_unbind,
            [AMQP_SLOT_QUEUE_DECLARE] = m_queue_declare,
            [AMQP_SLOT_QUEUE_BIND] = m_queue_bind,
            [AMQP_SLOT_QUEUE_UNBIND] = m_queue_unbind,
            [AMQP_SLOT_QUEUE_PURGE] = m_queue_purge,
            [AMQP_SLOT_QUEUE_DELETE] = m_queue_delete,
            [AMQP_SLOT_BASIC_QOS] = m_basic_qos,
            [AMQP_SLOT_BASIC_CONSUME] = m_basic_consume,
            [AMQP_SLOT_BASIC_CANCEL] = m_basic_cancel,
            [AMQP_SLOT_BASIC_PUBLISH] = m_basic_publish,
            [AMQP_SLOT_BASIC_GET] = m_basic_get,
            [AMQP_SLOT_BASIC_ACK] = m_basic_ack,
            [AMQP_SLOT_BASIC_REJECT] = m_basic_reject,
            [AMQP_SLOT_BASIC_NACK] = m_basic_nack,
            [AMQP_SLOT_BASIC_RECOVER] = m_basic_recover,
            [AMQP_SLOT_BASIC_RECOVER_ASYNC] = m_basic_recover_async,
            [AMQP_SLOT_CONFIRM_SELECT] = m_confirm_select,
            [AMQP_SLOT_TX_SELECT] = m_tx_select,
            [AMQP_SLOT_TX_COMMIT] = m_tx_commit,
            [AMQP_SLOT_TX_ROLLBACK] = m_tx_rollback,
        },
};
