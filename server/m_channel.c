/*
 * m_channel.c: the channel class from the client (channel.open on a
 * channel that is not open yet is conn.c's: it creates the channel), and
 * access.request, the 0-8 leftover RabbitMQ still answers.
 */
#include "server/channel.h"

/* channel.open on an open channel. */
int
m_channel_open(struct channel *ch, const struct amqp_method *m)
{
    return conn_fail(ch->conn, AMQP_CHANNEL_ERROR, m->id,
                     "second 'channel.open' seen");
}

int
m_channel_flow(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_CHANNEL_FLOW_OK};

    /* RabbitMQ 3.x refuses to stop sending to a client this way. */
    if (!m->u.channel_flow.active)
        return conn_fail(ch->conn, AMQP_NOT_IMPLEMENTED, m->id, "active=false");
    ok.u.channel_flow_ok.active = true;
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_channel_close(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_CHANNEL_CLOSE_OK};
    struct conn *c = ch->conn;
    uint16_t id = ch->id;

    (void)m;
    chan_free(ch);
    conn_send_method(c, id, &ok);
    return WR_OK;
}

int
m_access_request(struct channel *ch, const struct amqp_method *m)
{
    struct amqp_method ok = {.id = AMQP_ACCESS_REQUEST_OK};

    (void)m;
    ok.u.access_request_ok.ticket = 1;
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}
