/*
 * m_channel.c: channel.flow and channel.close from the client.
 * (channel.open is handled by conn.c, which creates the channel.)
 */
#include "server/channel.h"

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
