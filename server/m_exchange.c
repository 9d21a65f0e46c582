/*
 * m_exchange.c: exchange.declare, delete, bind, unbind. Each handler
 * validates, calls vhost/, and replies; the rules and texts are vhost's.
 */
#include "server/channel.h"

static void
reply(struct channel *ch, uint32_t id, bool nowait)
{
    struct amqp_method ok = {.id = id};

    if (!nowait)
        conn_send_method(ch->conn, ch->id, &ok);
}

int
m_exchange_declare(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_exchange_declare *a = &m->u.exchange_declare;
    struct exchange_decl d = {
        .name = a->exchange,
        .type = a->type,
        .passive = a->passive,
        .durable = a->durable,
        .auto_delete = a->auto_delete,
        .internal = a->internal,
        .args = a->arguments,
        .owner = &ch->conn->owner,
    };
    struct vherr err;

    if (vhost_exchange_declare(ch->conn->vh, &d, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    reply(ch, AMQP_EXCHANGE_DECLARE_OK, a->no_wait);
    return WR_OK;
}

int
m_exchange_delete(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_exchange_delete *a = &m->u.exchange_delete;
    struct vherr err;

    if (vhost_exchange_delete(ch->conn->vh, a->exchange, a->if_unused,
                              &ch->conn->owner, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    reply(ch, AMQP_EXCHANGE_DELETE_OK, a->no_wait);
    return WR_OK;
}

int
m_exchange_bind(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_exchange_bind *a = &m->u.exchange_bind;
    struct vherr err;

    if (vhost_bind(ch->conn->vh, a->source, a->destination, true,
                   a->routing_key, a->arguments, &ch->conn->owner,
                   &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    reply(ch, AMQP_EXCHANGE_BIND_OK, a->no_wait);
    return WR_OK;
}

int
m_exchange_unbind(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_exchange_unbind *a = &m->u.exchange_unbind;
    struct vherr err;

    if (vhost_unbind(ch->conn->vh, a->source, a->destination, true,
                     a->routing_key, a->arguments, &ch->conn->owner,
                     &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    reply(ch, AMQP_EXCHANGE_UNBIND_OK, a->no_wait);
    return WR_OK;
}
