/*
 * mgmt_api_queues.c: a queue over HTTP, as RabbitMQ's management shows
 * it, its consumers, and what one can do to it.
 *
 *   /api/queues/v/q            GET (with consumer details), PUT
 *                              {"durable", "auto_delete", "arguments"},
 *                              DELETE [?if-empty=true&if-unused=true]
 *   /api/queues/v/q/contents   DELETE: purge
 *   /api/consumers[/v]         GET
 *
 * A queue is read from its snapshot (queue_info) and its sampled rates
 * (mgmt_api_stats.c), and written with the column-filtering JSON writer
 * so that long lists (mgmt_api_queue_list.c) are encoded straight from
 * the snapshots. Declares and deletes go through the same vhost calls as
 * queue.declare and queue.delete, after RabbitMQ's permission checks.
 */
#include "server/mgmt/mgmt_int.h"
#include "vhost/stream.h"

#include <stdio.h>
#include <stdlib.h>

static const char *
exclusive_consumer_tag(const struct queue *q)
{
    const struct consumer *c = queue_exclusive_consumer(q);

    return c ? c->tag : NULL;
}

static json_t *consumer_json(struct queue *q, const struct queue_info *qi,
                             const struct consumer *c);

/* The applied policy's definition, operator policy keys over it where
 * they are lower (RabbitMQ's effective_policy_definition); new ref. */
static json_t *
policy_definition(const struct queue_info *qi)
{
    struct node *n = srv->node;
    json_t *p = qi->policy
                    ? node_kv_find(n, KV_POLICY, qi->vhost, NULL, qi->policy)
                    : NULL;
    json_t *o = qi->op_policy ? node_kv_find(n, KV_OPERATOR_POLICY, qi->vhost,
                                             NULL, qi->op_policy)
                              : NULL;
    json_t *def = json_object_get(p, "definition");
    json_t *out = def ? json_deep_copy(def) : json_object();
    json_t *odef = json_object_get(o, "definition"), *v;
    const char *k;

    json_object_foreach(odef, k, v)
    {
        json_t *cur = json_object_get(out, k);

        if (!json_is_integer(cur) ||
            (json_is_integer(v) &&
             json_integer_value(v) < json_integer_value(cur)))
            json_object_set(out, k, v);
    }
    return out;
}

/* key: value pairs of the writer, for readability below */
#define K(k)        mgmt_jw_key(w, k)
#define KINT(k, v)  (K(k), mgmt_jw_int(w, (int64_t)(v)))
#define KRATE(k, v) (K(k), mgmt_jw_rate(w, v))
#define KBOOL(k, v) (K(k), mgmt_jw_bool(w, v))
#define KSTR(k, v)  (K(k), mgmt_jw_cstr(w, v))
#define KNULL(k)    (K(k), mgmt_jw_null(w))

/* "message_stats" of a queue. */
static void
write_message_stats(const struct queue_info *qi, const struct mgmt_qrates *rt,
                    struct mgmt_jw *w)
{
    K("message_stats");
    mgmt_jw_obj_begin(w);
    KINT("ack", qi->stat_ack);
    KRATE("ack_details", rt->ack);
    KINT("deliver", qi->stat_deliver);
    KRATE("deliver_details", rt->deliver);
    KINT("deliver_get", qi->stat_deliver);
    KRATE("deliver_get_details", rt->deliver);
    KINT("publish", qi->stat_publish);
    KRATE("publish_details", rt->publish);
    KINT("redeliver", qi->stat_redeliver);
    KRATE("redeliver_details", rt->redeliver);
    mgmt_jw_obj_end(w);
}

/* The counts of a queue's messages, from "memory" to "messages_*". */
static void
write_counts(const struct queue_info *qi, const struct mgmt_qrates *rt,
             struct mgmt_jw *w)
{
    uint64_t paged =
        qi->ready_bytes > qi->mem_bytes ? qi->ready_bytes - qi->mem_bytes : 0;

    KINT("memory", qi->memory);
    KINT("message_bytes", qi->ready_bytes);
    KINT("message_bytes_paged_out", paged);
    KINT("message_bytes_ram", qi->mem_bytes);
    KINT("message_bytes_ready", qi->ready_bytes);
    KINT("message_bytes_unacknowledged", 0);
    write_message_stats(qi, rt, w);
    KINT("messages", (uint64_t)qi->ready + qi->unacked);
    KRATE("messages_details", rt->ready + rt->unacked);
    KINT("messages_paged_out", qi->ready_paged);
    KINT("messages_ram", (uint64_t)qi->ready - qi->ready_paged + qi->unacked);
    KINT("messages_ready", qi->ready);
    KRATE("messages_ready_details", rt->ready);
    KINT("messages_ready_ram", (uint64_t)qi->ready - qi->ready_paged);
    KINT("messages_unacknowledged", qi->unacked);
    KRATE("messages_unacknowledged_details", rt->unacked);
    KINT("messages_unacknowledged_ram", qi->unacked);
}

/* The consumers of a queue, for its details. */
static void
write_details(struct queue *q, const struct queue_info *qi, struct mgmt_jw *w)
{
    json_t *cs = json_array();

    for (const struct consumer *c = queue_consumer_next(q, NULL); c;
         c = queue_consumer_next(q, c))
        json_array_append_new(cs, consumer_json(q, qi, c));
    K("consumer_details");
    mgmt_jw_json(w, cs);
    K("deliveries");
    mgmt_jw_raw(w, "[]");
    K("incoming");
    mgmt_jw_raw(w, "[]");
}

static void
write_policies(const struct queue_info *qi, struct mgmt_jw *w)
{
    if (qi->op_policy)
        KSTR("operator_policy", qi->op_policy);
    else
        KNULL("operator_policy");
    if (qi->policy)
        KSTR("policy", qi->policy);
    else
        KNULL("policy");
}
/* A cluster node: where the queue's vhost is replicated (issue 12). */
static void
write_members(const struct queue_info *qi, struct mgmt_jw *w)
{
    json_t *m =
        qi->vhost ? repl_queue_members(qi->vhost, qi->durable && !qi->exclusive)
                  : NULL;
    static const char *const keys[] = {"leader", "members", "online",
                                       "slave_nodes",
                                       "synchronised_slave_nodes"};

    for (size_t i = 0; m && i < WR_ARRAY_LEN(keys); i++) {
        mgmt_jw_key(w, keys[i]);
        mgmt_jw_json(w, json_incref(json_object_get(m, keys[i])));
    }
    json_decref(m);
}

void
mgmt_queue_write(struct queue *q, bool details, struct mgmt_jw *w)
{
    struct mgmt_qrates rt;
    struct queue_info qi;
    const struct consumer *first;
    struct stream_info si;
    bool is_stream;

    queue_message_count(q); /* expired messages go first */
    queue_info(q, &qi);
    mgmt_stats_queue(q, &rt);
    first = queue_consumer_next(q, NULL);
    is_stream = stream_info(q, &si);
    if (is_stream) {
        /* every message kept counts, on disk; a delivery does not take
         * one out, so none is "unacknowledged" (RabbitMQ shows 0 too) */
        qi.ready = (uint32_t)WR_MIN(si.next - si.first, UINT32_MAX);
        qi.unacked = 0;
        qi.ready_paged = qi.ready;
        qi.ready_bytes = si.bytes;
    }
    mgmt_jw_obj_begin(w);
    K("arguments");
    if (qi.args.len == 0)
        mgmt_jw_raw(w, "{}");
    else
        mgmt_jw_json(w, mgmt_table_json(qi.args));
    KBOOL("auto_delete", qi.auto_delete);
    K("backing_queue_status");
    mgmt_jw_obj_begin(w);
    KSTR("mode", "default");
    KINT("len", qi.ready);
    KINT("version", 1);
    mgmt_jw_obj_end(w);
    K("consumer_capacity");
    mgmt_jw_raw(w, qi.consumers ? "1.0" : "0.0");
    K("consumer_utilisation");
    mgmt_jw_raw(w, qi.consumers ? "1.0" : "0.0");
    KINT("consumers", qi.consumers);
    if (qi.dedup) { /* Warren's: x-message-deduplication's cache */
        K("deduplication");
        mgmt_jw_obj_begin(w);
        KINT("dropped", qi.dedup_dropped);
        KINT("entries", qi.dedup_entries);
        KINT("size", qi.dedup_size);
        mgmt_jw_obj_end(w);
    }
    KBOOL("durable", qi.durable);
    K("effective_policy_definition");
    mgmt_jw_json(w, policy_definition(&qi));
    KBOOL("exclusive", qi.exclusive);
    KSTR("exclusive_consumer_tag", exclusive_consumer_tag(q));
    KNULL("head_message_timestamp");
    if (qi.quorum) /* one member on one node: this one leads */
        KSTR("leader", mgmt_node_name());
    write_counts(&qi, &rt, w);
    if (qi.quorum) {
        K("members");
        mgmt_jw_json(w, json_pack("[s]", mgmt_node_name()));
    }
    K("name");
    mgmt_jw_str(w, (const char *)qi.name.ptr, qi.name.len);
    KSTR("node", mgmt_node_name());
    if (qi.quorum) {
        K("online");
        mgmt_jw_json(w, json_pack("[s]", mgmt_node_name()));
    }
    write_policies(&qi, w);
    KNULL("recoverable_slaves");
    K("single_active_consumer_tag");
    if (qi.single_active && first)
        mgmt_jw_str(w, first->tag, first->tag_len);
    else
        mgmt_jw_null(w);
    KSTR("state", "running");
    if (is_stream) {
        K("stream");
        mgmt_jw_obj_begin(w);
        KINT("first_offset", si.first);
        KINT("next_offset", si.next);
        KINT("segments", si.segments);
        KINT("bytes", si.bytes);
        mgmt_jw_obj_end(w);
    }
    KSTR("type", is_stream ? "stream" : qi.quorum ? "quorum" : "classic");
    KSTR("vhost", qi.vhost);
    write_members(&qi, w);
    if (details)
        write_details(q, &qi, w);
    mgmt_jw_obj_end(w);
}

#undef K
#undef KINT
#undef KRATE
#undef KBOOL
#undef KSTR
#undef KNULL

json_t *
mgmt_queue_json(struct queue *q, bool details)
{
    struct mgmt_jw w;
    struct buf b;
    json_t *o;

    buf_init(&b);
    mgmt_jw_init(&w, &b, NULL);
    mgmt_queue_write(q, details, &w);
    o = json_loadb((const char *)b.data, b.len, 0, NULL);
    buf_fini(&b);
    return o;
}

static json_t *
consumer_json(struct queue *q, const struct queue_info *qi,
              const struct consumer *c)
{
    struct chan_info hi;
    struct conn_info ci;
    char ch_name[200];
    const char *colon;
    bool active = !qi->single_active || queue_consumer_next(q, NULL) == c;

    chan_info(c->owner, &hi); /* every consumer is a channel's */
    conn_info(hi.conn, &ci);
    colon = strrchr(ci.peer, ':');
    snprintf(ch_name, sizeof(ch_name), "%s (%u)", ci.name, hi.number);
    return json_pack(
        "{s:s%, s:{s:s%, s:s}, s:{s:s, s:s, s:s, s:i, s:s%, s:i, s:s}, s:b, "
        "s:i, s:b, s:o, s:b, s:s}",
        "consumer_tag", c->tag, c->tag_len, "queue", "name",
        (const char *)qi->name.ptr, qi->name.len, "vhost", qi->vhost,
        "channel_details", "connection_name", ci.name, "name", ch_name, "node",
        mgmt_node_name(), "number", (int)hi.number, "peer_host", ci.peer,
        colon ? (size_t)(colon - ci.peer) : strlen(ci.peer), "peer_port",
        colon ? atoi(colon + 1) : 0, "user", ci.user ? ci.user : "",
        "ack_required", !c->no_ack, "prefetch_count", (int)c->prefetch,
        "exclusive", c->exclusive, "arguments", mgmt_table_json(c->args),
        "active", active, "activity_status",
        !qi->single_active ? "up"
        : active           ? "single_active"
                           : "waiting");
}

static void
add_consumers(json_t *items, struct vhost *vh)
{
    struct queue *q = NULL;

    while ((q = vhost_queue_next(vh, q)) != NULL) {
        struct queue_info qi;

        queue_info(q, &qi);
        for (const struct consumer *c = queue_consumer_next(q, NULL); c;
             c = queue_consumer_next(q, c))
            json_array_append_new(items, consumer_json(q, &qi, c));
    }
}

/* Consumers of every visible vhost (or one): /api/consumers[/v]. */
void
mgmt_h_consumers(struct mgmt_req *r)
{
    mgmt_reply_per_vhost(r, add_consumers,
                         (const char *const[]){"queue.vhost", "queue.name",
                                               "consumer_tag", NULL});
}

static void
queue_show(struct mgmt_req *r, void *obj, void *vh)
{
    (void)vh;
    mgmt_reply_item(r, mgmt_queue_json(obj, true));
}

static void
queue_put(struct mgmt_req *r, void *obj, void *vh)
{
    struct bytes name = bytes_str(r->args[1]);
    json_t *body = mgmt_body_json(r);
    struct queue_decl d = {.name = name};
    struct queue *q;
    struct vherr err;
    struct buf args;

    if (!body)
        return;
    buf_init(&args);
    if (name.len > 255 || name.len == 0) {
        mgmt_bad_request(r, "queue name must be 1 to 255 bytes");
        goto out;
    }
    if (!mgmt_body_bool(r, body, "durable", false, &d.durable) ||
        !mgmt_body_bool(r, body, "auto_delete", false, &d.auto_delete) ||
        !mgmt_body_args(r, body, &args))
        goto out;
    d.args = buf_bytes(&args);
    if (mgmt_check_perm(r, vh, PERM_CONFIGURE, "queue", name))
        mgmt_reply_done(r, vhost_queue_declare(vh, &d, &q, &err), &err,
                        obj ? 204 : 201);
out:
    buf_fini(&args);
    json_decref(body);
}

static void
queue_delete(struct mgmt_req *r, void *q, void *vh)
{
    struct queue_info qi;
    struct bytes name = queue_name(q);

    queue_info(q, &qi);
    if (!mgmt_check_perm(r, vh, PERM_CONFIGURE, "queue", name))
        return;
    if (mgmt_qs_true(r, "if-empty") && qi.ready + qi.unacked > 0) {
        mgmt_bad_request(r, "queue '%.*s' in vhost '%s' not empty",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    if (mgmt_qs_true(r, "if-unused") && qi.consumers > 0) {
        mgmt_bad_request(r, "queue '%.*s' in vhost '%s' in use",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    if (qi.locked) {
        mgmt_bad_request(r,
                         "cannot obtain exclusive access to locked queue "
                         "'%.*s' in vhost '%s'. It could be originally "
                         "declared on another connection or the exclusive "
                         "property value does not match that of the "
                         "original declaration.",
                         BYTES_FMT(name), vhost_name(vh));
        return;
    }
    vhost_queue_delete(vh, q);
    mgmt_reply_empty(r, 204);
}

void
mgmt_h_queue(struct mgmt_req *r)
{
    static const struct mgmt_item_ops ops = {queue_show, queue_put,
                                             queue_delete};
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);

    if (!vh || !mgmt_check_vhost(r, vh, mgmt_is_read(r)))
        return;
    mgmt_item(r, &ops, vhost_queue_find(vh, bytes_str(r->args[1])), vh);
}

void
mgmt_h_queue_contents(struct mgmt_req *r)
{
    struct vhost *vh = mgmt_vhost_arg(r, r->args[0]);
    struct queue *q;

    if (!vh || !mgmt_check_vhost(r, vh, false))
        return;
    q = vhost_queue_find(vh, bytes_str(r->args[1]));
    if (!q) {
        mgmt_not_found(r);
        return;
    }
    if (!mgmt_check_perm(r, vh, PERM_READ, "queue", queue_name(q)))
        return;
    queue_purge(q);
    mgmt_reply_empty(r, 204);
}
