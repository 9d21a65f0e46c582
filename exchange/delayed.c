/*
 * delayed.c: the x-delayed-message exchange type, as RabbitMQ's
 * rabbitmq_delayed_message_exchange plugin names it. Routing is not this
 * type's: an exchange of it routes with the index of the type its
 * "x-delayed-type" argument names (direct, fanout, topic, headers, ...),
 * so xreg_add gives it that type's ops and this table only carries the
 * name. Holding messages back until their x-delay has passed is the
 * vhost's business (vhost/delay.c): this module stays pure.
 *
 *   {"x-delayed-type": "topic"}      routes as a topic exchange
 *   {} or {"x-delayed-type": 5}      refused (406, the plugin's text)
 *   {"x-delayed-type": "nope"}       refused (503 unknown exchange type)
 */
#include "exchange/exchange_int.h"

int
exchange_delayed_type(struct bytes args, enum exchange_type *out, bool *unknown)
{
    enum exchange_type t;
    struct fvalue v;

    *unknown = false;
    if (!ftable_find(args, "x-delayed-type", &v) || !fvalue_is_str(&v))
        return WR_ERR;
    if (exchange_type_parse(v.v.str, &t) != WR_OK) {
        *unknown = true;
        return WR_ERR;
    }
    /* The plugin would accept itself and then loop at routing time. */
    if (t == EXCHANGE_DELAYED)
        return WR_ERR;
    *out = t;
    return WR_OK;
}

static void *
no_index(void)
{
    WR_ASSERT(!"an x-delayed-message exchange has its routing type's index");
    return NULL;
}

const struct xtype_ops delayed__ops = {
    .name = "x-delayed-message",
    .index_new = no_index,
};
