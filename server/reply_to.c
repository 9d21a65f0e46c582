/*
 * reply_to.c: direct reply-to (RabbitMQ's amq.rabbitmq.reply-to), RPC
 * replies sent straight to the requester's channel without a queue.
 *
 * A requester consumes, in no-ack mode, from the pseudo-queue
 * "amq.rabbitmq.reply-to": the channel gets its reply consumer (at most
 * one) and a suffix, "<id>.<key>": base64 of a node-wide serial number
 * and of 16 random bytes. A request it publishes with reply_to =
 * "amq.rabbitmq.reply-to" leaves with reply_to =
 * "amq.rabbitmq.reply-to.<suffix>". A responder publishing to the
 * default exchange with that routing key reaches the channel found by
 * the whole suffix in a node-wide table: without the random key no one
 * can aim at another channel, as with RabbitMQ's pid + key. RabbitMQ
 * does not count the reply as routed to a queue, so a mandatory reply
 * also comes back with basic.return (its documented behaviour), and
 * RabbitMQ delivers it with the channel's next delivery tag without
 * taking it (no ack is possible); so does Warren.
 */
#include "server/channel.h"

#include "amqp/amqp_props.h"

#include <stdio.h>
#include <stdlib.h>

#define REPLY_QUEUE  "amq.rabbitmq.reply-to"
#define REPLY_PREFIX REPLY_QUEUE "."

/* Every reply consumer of the node by suffix (loop thread only). */
static struct reply_consumer *by_suffix;
static uint64_t next_id;

bool
reply_is_queue(struct bytes name)
{
    return bytes_eq_str(name, REPLY_QUEUE);
}

/* Makes "<b64 id>.<b64 key>" for a new reply consumer. */
static void
make_suffix(struct reply_consumer *rc)
{
    uint8_t id[8], key[16];
    struct buf b;

    be64_store(id, ++next_id);
    wr_random(key, sizeof(key));
    buf_init(&b);
    b64_encode(id, sizeof(id), &b);
    buf_put_u8(&b, '.');
    b64_encode(key, sizeof(key), &b);
    WR_ASSERT(b.len < sizeof(rc->suffix));
    memcpy(rc->suffix, b.data, b.len);
    rc->suffix_len = (uint8_t)b.len;
    buf_fini(&b);
}

int
reply_consume(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_basic_consume *a = &m->u.basic_consume;
    struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
    struct bytes tag = a->consumer_tag;
    struct reply_consumer *rc;
    char gen[40];

    /* RabbitMQ's order: the reply consumer must not ack, then there is
     * one per channel. */
    if (!a->no_ack)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "reply consumer cannot acknowledge");
    if (ch->reply)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, m->id,
                         "reply consumer already set");
    if (tag.len == 0) {
        chan_gen_name("amq.ctag-", gen);
        tag = bytes_str(gen);
    }
    rc = xcalloc(1, sizeof(*rc));
    rc->ch = ch;
    rc->tag_len = (uint8_t)tag.len;
    memcpy(rc->tag, tag.ptr, tag.len);
    make_suffix(rc);
    HASH_ADD(hh, by_suffix, suffix, rc->suffix_len, rc);
    ch->reply = rc;
    if (!a->no_wait) {
        ok.u.basic_consume_ok.consumer_tag = tag;
        conn_send_method(ch->conn, ch->id, &ok);
    }
    return WR_OK;
}

void
reply_release(struct channel *ch)
{
    if (!ch->reply)
        return;
    HASH_DEL(by_suffix, ch->reply);
    free(ch->reply);
    ch->reply = NULL;
}

bool
reply_cancel(struct channel *ch, struct bytes tag)
{
    if (!ch->reply ||
        !bytes_eq(tag, bytes_of(ch->reply->tag, ch->reply->tag_len)))
        return false;
    reply_release(ch);
    return true;
}

/* The reply consumer a routing key "amq.rabbitmq.reply-to.<suffix>"
 * names, or NULL. */
static struct reply_consumer *
find(struct bytes name)
{
    struct reply_consumer *rc;
    size_t n = strlen(REPLY_PREFIX);

    if (!bytes_has_prefix(name, REPLY_PREFIX) ||
        name.len - n >= sizeof(rc->suffix))
        return NULL;
    HASH_FIND(hh, by_suffix, name.ptr + n, name.len - n, rc);
    return rc;
}

int
reply_declare(struct channel *ch, const struct amqp_method *m)
{
    const struct amqp_queue_declare *a = &m->u.queue_declare;
    struct amqp_method ok = {.id = AMQP_QUEUE_DECLARE_OK};

    /* RabbitMQ answers for the pseudo-queue (passive or not) with 0
     * messages and 1 consumer, and for a reply name while its consumer
     * lives; anything else under the prefix is not found. */
    if (!reply_is_queue(a->queue) && !find(a->queue))
        return chan_fail(ch, AMQP_NOT_FOUND, m->id,
                         "no queue '%.*s' in vhost '%s'", BYTES_FMT(a->queue),
                         vhost_name(ch->conn->vh));
    if (a->no_wait)
        return WR_OK;
    ok.u.queue_declare_ok.queue = a->queue;
    ok.u.queue_declare_ok.message_count = 0;
    ok.u.queue_declare_ok.consumer_count = 1;
    conn_send_method(ch->conn, ch->id, &ok);
    return WR_OK;
}

bool
reply_declare_name(struct bytes name)
{
    return bytes_has_prefix(name, REPLY_QUEUE);
}

int
reply_rewrite(struct channel *ch, struct amqp_basic_props *p, char *to,
              size_t tolen)
{
    int n;

    if (!(p->flags & AMQP_BASIC_REPLY_TO_FLAG) || !reply_is_queue(p->reply_to))
        return 0;
    if (!ch->reply)
        return -1;
    n = snprintf(to, tolen, REPLY_PREFIX "%.*s", (int)ch->reply->suffix_len,
                 ch->reply->suffix);
    WR_ASSERT(n > 0 && (size_t)n < tolen);
    p->reply_to = bytes_of(to, (size_t)n);
    return 1;
}

void
reply_route(const struct exchange *x, struct message *msg)
{
    struct amqp_method m = {.id = AMQP_BASIC_DELIVER};
    struct amqp_basic_deliver *d = &m.u.basic_deliver;
    struct reply_consumer *rc;
    struct channel *ch;

    if (x->name_len != 0)
        return;
    rc = find(message_rk(msg));
    if (!rc || rc->ch->state != CH_OPEN)
        return;
    ch = rc->ch;
    d->consumer_tag = bytes_of(rc->tag, rc->tag_len);
    d->delivery_tag = ch->next_tag + 1;
    d->redelivered = false;
    d->exchange = message_exchange(msg);
    d->routing_key = message_rk(msg);
    conn_send_content(ch->conn, ch->id, &m, msg);
}
