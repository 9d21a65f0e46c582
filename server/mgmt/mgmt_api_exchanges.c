/*
 * mgmt_api_exchanges.c: exchanges over HTTP.
 *
 *   /api/exchanges[/v]      GET: the exchanges of every visible vhost (or
 *                           of v), in RabbitMQ's shape
 *   /api/exchanges/v/x      GET, PUT {"type", "durable", "auto_delete",
 *                           "internal", "arguments"}, DELETE
 *                           [?if-unused=true]
 *
 * The default exchange is "amq.default" in paths. Declares and deletes go
 * through the same vhost calls as exchange.declare and exchange.delete,
 * with the same rules, after RabbitMQ's configure permission check.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdlib.h>

/* RabbitMQ's message_stats of an exchange, present once a message went
 * through it: publish_in (published into it) and publish_out (routed
 * from it, once per queue), with the sampler's rates. */
static void
exchange_message_stats(json_t *o, const struct exchange *x)
{
    if (x->stat_publish_in == 0)
        return;
    json_object_set_new(
        o, "message_stats",
        json_pack("{s:I, s:o, s:I, s:o}", "publish_in",
                  (json_int_t)x->stat_publish_in, "publish_in_details",
                  mgmt_rate(x->rate_in), "publish_out",
                  (json_int_t)x->stat_publish_out, "publish_out_details",
                  mgmt_rate(x->rate_out)));
}

static json_t *
exchange_json(struct vhost *vh, struct exchange *x)
{
    json_t *o = json_pack(
        "{s:s%, s:s, s:s, s:b, s:b, s:b, s:o, s:s}", "name", x->name,
        x->name_len, "vhost", vhost_name(vh), "type",
        exchange_type_name(x->type), "durable", x->durable, "auto_delete",
        x->auto_delete, "internal", x->internal, "arguments",
        mgmt_table_json(x->args), "user_who_performed_action",
        x->name_len == 0 || strncmp(x->name, "amq.", 4) == 0 ? "rmq-internal"
                                                             : "");

    exchange_message_stats(o, x);
    return o;
}

json_t *
mgmt_exchange_json(struct vhost *vh, struct exchange *x)
{
    json_t *o = exchange_json(vh, x);
    uint32_t entries, size;
    uint64_t dropped;

    /* As the delayed-message plugin's management extension shows it;
     * and, Warren's own, how on time the due messages went out. */
    if (x->type == EXCHANGE_DELAYED) {
        struct delay_stats ds;

        vhost_exchange_delay_stats(x, &ds);
        json_object_set_new(
            o, "messages_delayed",
            json_integer((json_int_t)vhost_exchange_delayed_count(x)));
        json_object_set_new(o, "delayed_routed",
                            json_pack("{s:I, s:I, s:f}", "messages",
                                      (json_int_t)ds.routed, "late_over_10ms",
                                      (json_int_t)ds.late_10ms, "max_late_ms",
                                      (double)ds.max_late_us / 1000.0));
    }
    /* Warren's: the x-message-deduplication cache's figures. */
    if (vhost_exchange_dedup(x, &entries, &size, &dropped))
        json_object_set_new(o, "deduplication",
                            json_pack("{s:I, s:i, s:i}", "dropped",
                                      (json_int_t)dropped, "entries",
                                      (int)entries, "size", (int)size));
    return o;
}

static void
add_exchanges(json_t *items, struct vhost *vh)
{
    struct exchange *x = NULL;

    while ((x = vhost_exchange_next(vh, x)) != NULL)
        json_array_append_new(items, mgmt_exchange_json(vh, x));
}

void
mgmt_h_exchanges(struct mgmt_req *r)
{
    mgmt_reply_per_vhost(r, add_exchanges,
                         (const char *const[]){"vhost", "name", NULL});
}

static void
exchange_show(struct mgmt_req *r, void *obj, void *vh)
{
    json_t *o = mgmt_exchange_json(vh, obj);

    json_object_set_new(o, "incoming", json_array());
    json_object_set_new(o, "outgoing", json_array());
    mgmt_reply_item(r, o);
}

static void
exchange_put(struct mgmt_req *r, void *obj, void *vh)
{
    struct bytes name = mgmt_exchange_name(r->args[1]);
    json_t *body = mgmt_body_json(r);
    struct exchange_decl d = {.name = name};
    struct vherr err;
    struct buf args;

    if (!body)
        return;
    buf_init(&args);
    if (name.len > 255) {
        mgmt_bad_request(r, "exchange name is longer than 255 bytes");
        goto out;
    }
    d.type = bytes_str(mgmt_body_str(body, "type", "direct"));
    if (!mgmt_body_bool(r, body, "durable", true, &d.durable) ||
        !mgmt_body_bool(r, body, "auto_delete", false, &d.auto_delete) ||
        !mgmt_body_bool(r, body, "internal", false, &d.internal) ||
        !mgmt_body_args(r, body, &args))
        goto out;
    d.args = buf_bytes(&args);
    if (mgmt_check_perm(r, vh, PERM_CONFIGURE, "exchange", name))
        mgmt_reply_done(r, vhost_exchange_declare(vh, &d, &err), &err,
                        obj ? 204 : 201);
out:
    buf_fini(&args);
    json_decref(body);
}

static void
exchange_delete(struct mgmt_req *r, void *obj, void *vh)
{
    struct bytes name = mgmt_exchange_name(r->args[1]);
    struct vherr err;

    (void)obj;
    if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "exchange", name))
        return;
    mgmt_reply_done(r,
                    vhost_exchange_delete(
                        vh, name, mgmt_qs_true(r, "if-unused"), NULL, &err),
                    &err, 204);
}

void
mgmt_h_exchange(struct mgmt_req *r)
{
    static const struct mgmt_item_ops ops = {exchange_show, exchange_put,
                                             exchange_delete};
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);

    if (!vh || !mgmt_check_vhost(r, vh, mgmt_is_read(r)))
        return;
    mgmt_item(r, &ops, vhost_exchange_find(vh, mgmt_exchange_name(r->args[1])),
              vh);
}
