/*
 * m_queue.c: queue.declare, bind, unbind, purge, delete.
 *
 * An empty queue name means the channel's most recently declared queue
 * (RabbitMQ's expand_queue_name_shortcut); queue.bind with an empty queue
 * name and an empty routing key binds with that queue's name as the key.
 * Server-named queues are "amq.gen-" + 22 base64url characters of 16
 * random bytes, as RabbitMQ's rabbit_guid makes them.
 */
#include "server/channel.h"
#include "vhost/stream.h"

void
chan_gen_name(const char *prefix, char *out)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[16];
    char *p = out;

    wr_random(r, sizeof(r));
    memcpy(p, prefix, strlen(prefix));
    p += strlen(prefix);
    for (int i = 0; i < 22; i++) {
        int bit = i * 6;
        int v = (r[bit / 8] << 8 | (bit / 8 + 1 < 16 ? r[bit / 8 + 1] : 0)) >>
                (10 - bit % 8);
        *p++ = b64[v & 63];
    }
    *p = '\0';
}

static void
remember_queue(struct channel *ch, struct bytes name)
{
    memcpy(ch->last_queue, name.ptr, name.len);
    ch->last_queue_len = name.len;
}

int
m_queue_declare(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_declare *a = &m->u.queue_declare;
    struct amqp_method ok = {.id = AMQP_QUEUE_DECLARE_OK};
    char gen[32];
    struct queue_decl d = {
        .name = a->queue,
        .passive = a->passive,
        .durable = a->durable,
        .exclusive = a->exclusive,
        .auto_delete = a->auto_delete,
        .args = a->arguments,
        .owner = &ch->conn->owner,
    };
    struct queue *q;
    struct vherr err;

    if (reply_declare_name(d.name))
        return reply_declare(ch, m);
    if (d.name.len == 0) {
        /* A passive declare of "" looks for a queue named "" (RabbitMQ
         * does not apply the last-queue shortcut here). */
        if (!d.passive) {
            chan_gen_name("amq.gen-", gen);
            d.name = bytes_str(gen);
            d.server_named = true;
        }
    }
    if (vhost_queue_declare(ch->conn->vh, &d, &q, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (!d.passive) /* RabbitMQ's queues_declared: not the passive ones */
        srv->queues_declared++;
    remember_queue(ch, d.name);
    if (a->no_wait)
        return WR_OK;
    ok.u.queue_declare_ok.queue = d.name;
    ok.u.queue_declare_ok.message_count = queue_message_count(q);
    ok.u.queue_declare_ok.consumer_count = queue_consumer_count(q);
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_queue_bind(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_bind *a = &m->u.queue_bind;
    struct amqp_method ok = {.id = AMQP_QUEUE_BIND_OK};
    struct bytes name = a->queue, key = a->routing_key;
    struct vherr err;

    if (name.len == 0 && key.len == 0)
        key = bytes_of(ch->last_queue, ch->last_queue_len);
    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    if (vhost_bind(ch->conn->vh, a->exchange, name, false, key, a->arguments,
                   &ch->conn->owner, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (!a->no_wait)
        conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_queue_unbind(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_unbind *a = &m->u.queue_unbind;
    struct amqp_method ok = {.id = AMQP_QUEUE_UNBIND_OK};
    struct bytes name = a->queue;
    struct vherr err;

    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    if (vhost_unbind(ch->conn->vh, a->exchange, name, false, a->routing_key,
                     a->arguments, &ch->conn->owner, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_queue_purge(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_purge *a = &m->u.queue_purge;
    struct amqp_method ok = {.id = AMQP_QUEUE_PURGE_OK};
    struct bytes name = a->queue;
    struct queue *q;
    struct vherr err;

    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    if (vhost_queue_access(ch->conn->vh, name, &ch->conn->owner, PERM_READ, &q,
                           &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (queue_is_stream(q)) {
        stream_refuse(q, "queue.purge", &err);
        return chan_fail_vherr(ch, &err, m->id);
    }
    ok.u.queue_purge_ok.message_count = queue_purge(q);
    if (!a->no_wait)
        conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

int
m_queue_delete(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_delete *a = &m->u.queue_delete;
    struct amqp_method ok = {.id = AMQP_QUEUE_DELETE_OK};
    struct bytes name = a->queue;
    struct vhost *vh = ch->conn->vh;
    struct queue *q;
    struct vherr err;

    if (chan_queue_name(ch, &name, m->id) != WR_OK)
        return WR_ERR;
    /* RabbitMQ checks configure before looking: deleting an absent
     * queue still needs the right. */
    if (vhost_perm_check(vh, ch->conn->user, PERM_CONFIGURE, "queue", name,
                         &err) != WR_OK)
        return chan_fail_vherr(ch, &err, m->id);
    if (vhost_queue_find(vh, name)) {
        if (vhost_queue_lookup(vh, name, &ch->conn->owner, &q, &err) != WR_OK)
            return chan_fail_vherr(ch, &err, m->id);
        if (a->if_unused && queue_consumer_count(q) > 0)
            return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                             "queue '%.*s' in vhost '%s' in use",
                             BYTES_FMT(name), vhost_name(vh));
        if (a->if_empty && queue_message_count(q) > 0)
            return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                             "queue '%.*s' in vhost '%s' not empty",
                             BYTES_FMT(name), vhost_name(vh));
        ok.u.queue_delete_ok.message_count = vhost_queue_delete(vh, q);
    }
    if (!a->no_wait)
        conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}
