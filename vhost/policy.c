/*
 * policy.c: policies, operator policies, runtime parameters, global
 * parameters and vhost limits, kept in RabbitMQ's shapes.
 *
 * Warren keeps every item it is given and exports it again, so that
 * definitions move between Warren and RabbitMQ without loss, even where
 * Warren does not act on an item (federation upstreams, shovels, most
 * policy keys). The one parameter it acts on is RabbitMQ's vhost limits
 * (component "vhost-limits", name "limits"): max-connections and
 * max-queues, mirrored in struct vhost.
 *
 * Items live in one JSON array per kind (node.kv[]); lists are short
 * (operators write them by hand), so lookups scan.
 *
 * Policies and operator policies act on queues as in RabbitMQ 3.10's
 * classic queues (queue__apply_settings): the policy with the highest
 * priority whose pattern matches the queue's name (apply-to "queues" or
 * "all") gives message-ttl, expires, max-length and max-length-bytes
 * (the lowest of argument, policy and operator policy wins), and
 * overflow, dead-letter-exchange and dead-letter-routing-key (the
 * queue's argument wins). Other keys are kept, not acted on.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>

static json_t *
list_of(struct node *n, enum node_kv kind)
{
    if (!n->kv[kind])
        n->kv[kind] = json_array();
    return n->kv[kind];
}

static bool
same_str(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);

    if (!want)
        return v == NULL;
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static ssize_t
index_of(struct node *n, enum node_kv kind, const char *vhost,
         const char *component, const char *name)
{
    json_t *list = list_of(n, kind), *o;
    size_t i;

    json_array_foreach(list, i, o)
    {
        if (same_str(o, "name", name) &&
            (kind == KV_GLOBAL_PARAMETER || same_str(o, "vhost", vhost)) &&
            (kind != KV_PARAMETER || same_str(o, "component", component)))
            return (ssize_t)i;
    }
    return -1;
}

json_t *
node_kv_find(struct node *n, enum node_kv kind, const char *vhost,
             const char *component, const char *name)
{
    ssize_t i = index_of(n, kind, vhost, component, name);

    return i < 0 ? NULL : json_array_get(n->kv[kind], (size_t)i);
}

json_t *
node_kv_list(struct node *n, enum node_kv kind, const char *vhost)
{
    json_t *out = json_array(), *o;
    size_t i;

    json_array_foreach(list_of(n, kind), i, o)
    {
        if (!vhost || same_str(o, "vhost", vhost))
            json_array_append(out, o);
    }
    return out;
}

/* Applies a vhost-limits parameter value to the vhost's fields. */
static int
apply_limits(struct vhost *vh, json_t *value, struct vherr *err)
{
    const char *k;
    json_t *v;
    int64_t conns = -1, queues = -1;

    if (value && !json_is_object(value))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "vhost limits must be an object");
    json_object_foreach(value, k, v)
    {
        if (!json_is_integer(v))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "limit '%s' must be an integer", k);
        if (strcmp(k, "max-connections") == 0)
            conns = json_integer_value(v);
        else if (strcmp(k, "max-queues") == 0)
            queues = json_integer_value(v);
        else
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "unknown vhost limit '%s' (max-connections, "
                             "max-queues)",
                             k);
    }
    vh->max_connections = conns < 0 ? -1 : conns;
    vh->max_queues = queues < 0 ? -1 : queues;
    return WR_OK;
}

/* ---- ha-* policy keys (RabbitMQ 3.10's classic mirrored queues)
 *
 * Warren keeps them (a vhost's log is what a cluster mirrors) and checks
 * them as rabbit_mirror_queue_misc:validate_policy does, with its texts.
 */

/* A JSON value as RabbitMQ prints the Erlang term: <<"x">>, 5, [1]. */
static void
erl_term(json_t *v, struct buf *out)
{
    char *s;

    if (json_is_string(v)) {
        buf_printf(out, "<<\"%s\">>", json_string_value(v));
        return;
    }
    if (json_is_array(v)) {
        json_t *e;
        size_t i;

        buf_put_u8(out, '[');
        json_array_foreach(v, i, e)
        {
            if (i)
                buf_put_u8(out, ',');
            erl_term(e, out);
        }
        buf_put_u8(out, ']');
        return;
    }
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    buf_printf(out, "%s", s ? s : "?");
    free(s);
}

static int ha_invalid(struct vherr *err, const char *fmt, json_t *v)
    WR_PRINTF(2, 0);

/* "Validation failed\n\n" + fmt with %s the term of v + "\n". */
static int
ha_invalid(struct vherr *err, const char *fmt, json_t *v)
{
    struct buf t;
    int rc;

    buf_init(&t);
    if (v)
        erl_term(v, &t);
    buf_put_u8(&t, 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    rc = vherr_set(err, AMQP_PRECONDITION_FAILED, fmt, (const char *)t.data);
#pragma GCC diagnostic pop
    buf_fini(&t);
    return rc;
}

static bool
str_is(json_t *v, const char *a, const char *b)
{
    return json_is_string(v) && (strcmp(json_string_value(v), a) == 0 ||
                                 strcmp(json_string_value(v), b) == 0);
}

static int
check_ha_mode(json_t *mode, json_t *params, struct vherr *err)
{
    const char *m = json_is_string(mode) ? json_string_value(mode) : "";
    json_t *bad, *e;
    size_t i;
    int rc;

    if (strcmp(m, "all") == 0) {
        if (params)
            return ha_invalid(err,
                              "Validation failed\n\nha-mode=\"all\" does "
                              "not take parameters\n",
                              NULL);
        return WR_OK;
    }
    if (strcmp(m, "exactly") == 0) {
        if (json_is_integer(params) && json_integer_value(params) > 0)
            return WR_OK;
        return ha_invalid(err,
                          params ? "Validation failed\n\nha-mode=\"exactly\" "
                                   "takes an integer, %s given\n"
                                 : "Validation failed\n\nha-mode=\"exactly\" "
                                   "takes an integer, none given\n",
                          params);
    }
    if (strcmp(m, "nodes") == 0) {
        if (!params)
            return ha_invalid(err,
                              "Validation failed\n\nha-mode=\"nodes\" "
                              "takes a list, none given\n",
                              NULL);
        if (!json_is_array(params))
            return ha_invalid(err,
                              "Validation failed\n\nha-mode=\"nodes\" "
                              "takes a list, %s given\n",
                              params);
        if (json_array_size(params) == 0)
            return ha_invalid(err,
                              "Validation failed\n\nha-mode=\"nodes\" "
                              "list must be non-empty\n",
                              NULL);
        bad = json_array();
        json_array_foreach(params, i, e)
        {
            if (!json_is_string(e))
                json_array_append(bad, e);
        }
        rc = json_array_size(bad) == 0
                 ? WR_OK
                 : ha_invalid(err,
                              "Validation failed\n\nha-mode=\"nodes\" "
                              "takes a list of strings, %s was not a "
                              "string\n",
                              bad);
        json_decref(bad);
        return rc;
    }
    return ha_invalid(err,
                      "Validation failed\n\n%s is not a valid ha-mode "
                      "value\n",
                      mode);
}

static int
check_ha(json_t *def, struct vherr *err)
{
    json_t *mode = json_object_get(def, "ha-mode");
    json_t *params = json_object_get(def, "ha-params");
    json_t *sync = json_object_get(def, "ha-sync-mode");
    json_t *batch = json_object_get(def, "ha-sync-batch-size");
    json_t *shut = json_object_get(def, "ha-promote-on-shutdown");
    json_t *fail = json_object_get(def, "ha-promote-on-failure");

    if (!mode && !params && !sync && !batch && !shut && !fail)
        return WR_OK;
    if (!mode)
        return ha_invalid(err,
                          "Validation failed\n\nha-mode must be specified "
                          "to specify ha-params, ha-sync-mode or "
                          "ha-promote-on-shutdown\n",
                          NULL);
    if (check_ha_mode(mode, params, err) != WR_OK)
        return WR_ERR;
    if (sync && !str_is(sync, "manual", "automatic"))
        return ha_invalid(err,
                          "Validation failed\n\nha-sync-mode must be "
                          "\"manual\" or \"automatic\", got %s\n",
                          sync);
    if (batch && !(json_is_integer(batch) && json_integer_value(batch) > 0))
        return ha_invalid(err,
                          "Validation failed\n\nha-sync-batch-size takes an "
                          "integer greater than 0, %s given\n",
                          batch);
    if (shut && !str_is(shut, "always", "when-synced"))
        return ha_invalid(err,
                          "Validation failed\n\nha-promote-on-shutdown must "
                          "be \"always\" or \"when-synced\", got %s\n",
                          shut);
    if (fail && !str_is(fail, "always", "when-synced"))
        return ha_invalid(err,
                          "Validation failed\n\nha-promote-on-failure must "
                          "be \"always\" or \"when-synced\", got %s\n",
                          fail);
    return WR_OK;
}

/* Fills the identity and defaults of a stored item; checks its shape. */
static int
shape_item(enum node_kv kind, json_t *o, const char *vhost,
           const char *component, const char *name, struct vherr *err)
{
    json_t *v;

    json_object_set_new(o, "name", json_string(name));
    if (kind != KV_GLOBAL_PARAMETER)
        json_object_set_new(o, "vhost", json_string(vhost));
    switch (kind) {
    case KV_POLICY:
    case KV_OPERATOR_POLICY:
        if (!json_is_string(json_object_get(o, "pattern")))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "policy '%s': pattern must be a string", name);
        if (!json_is_object(json_object_get(o, "definition")))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "policy '%s': definition must be an object", name);
        v = json_object_get(o, "priority");
        if (!v)
            json_object_set_new(o, "priority", json_integer(0));
        else if (!json_is_integer(v))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "policy '%s': priority must be an integer", name);
        if (!json_object_get(o, "apply-to"))
            json_object_set_new(o, "apply-to", json_string("all"));
        if (kind == KV_POLICY &&
            check_ha(json_object_get(o, "definition"), err) != WR_OK)
            return WR_ERR;
        break;
    case KV_PARAMETER:
        json_object_set_new(o, "component", json_string(component));
        /* fall through */
    case KV_GLOBAL_PARAMETER:
        if (!json_object_get(o, "value"))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "parameter '%s' has no value", name);
        break;
    }
    return WR_OK;
}

int
node_kv_put(struct node *n, enum node_kv kind, const char *vhost,
            const char *component, const char *name, json_t *value,
            struct vherr *err)
{
    struct vhost *vh = NULL;
    ssize_t i;

    if (!json_is_object(value)) {
        json_decref(value);
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "'%s' must be a JSON object", name);
    }
    if (kind != KV_GLOBAL_PARAMETER && !(vh = node_vhost_find(n, vhost))) {
        json_decref(value);
        return vherr_set(err, AMQP_NOT_FOUND, "no vhost '%s'", vhost);
    }
    if (shape_item(kind, value, vhost, component, name, err) != WR_OK ||
        (kind == KV_PARAMETER && strcmp(component, "vhost-limits") == 0 &&
         apply_limits(vh, json_object_get(value, "value"), err) != WR_OK)) {
        json_decref(value);
        return WR_ERR;
    }
    i = index_of(n, kind, vhost, component, name);
    if (i >= 0)
        json_array_set_new(list_of(n, kind), (size_t)i, value);
    else
        json_array_append_new(list_of(n, kind), value);
    if (kind == KV_POLICY || kind == KV_OPERATOR_POLICY)
        vhost__apply_policies(vh);
    node_defs_changed(n);
    return WR_OK;
}

int
node_kv_delete(struct node *n, enum node_kv kind, const char *vhost,
               const char *component, const char *name, struct vherr *err)
{
    ssize_t i = index_of(n, kind, vhost, component, name);
    struct vhost *vh;

    if (i < 0)
        return vherr_set(err, AMQP_NOT_FOUND, "no such item '%s'", name);
    json_array_remove(list_of(n, kind), (size_t)i);
    if (kind == KV_PARAMETER && strcmp(component, "vhost-limits") == 0 &&
        (vh = node_vhost_find(n, vhost)))
        vh->max_connections = vh->max_queues = -1;
    if ((kind == KV_POLICY || kind == KV_OPERATOR_POLICY) &&
        (vh = node_vhost_find(n, vhost)))
        vhost__apply_policies(vh);
    node_defs_changed(n);
    return WR_OK;
}

/* ---- vhost limits, as one "vhost-limits"/"limits" parameter */

int
node_vhost_set_limit(struct node *n, struct vhost *vh, const char *name,
                     int64_t value, struct vherr *err)
{
    json_t *cur =
        node_kv_find(n, KV_PARAMETER, vh->name, "vhost-limits", "limits");
    json_t *val =
        cur ? json_deep_copy(json_object_get(cur, "value")) : json_object();

    if (!val || !json_is_object(val)) {
        json_decref(val);
        val = json_object();
    }
    json_object_set_new(val, name, json_integer(value));
    return node_kv_put(n, KV_PARAMETER, vh->name, "vhost-limits", "limits",
                       json_pack("{s:o}", "value", val), err);
}

int
node_vhost_clear_limit(struct node *n, struct vhost *vh, const char *name,
                       struct vherr *err)
{
    json_t *cur =
        node_kv_find(n, KV_PARAMETER, vh->name, "vhost-limits", "limits");
    json_t *val;

    if (!cur || !json_object_get(json_object_get(cur, "value"), name))
        return vherr_set(err, AMQP_NOT_FOUND, "no limit '%s' in vhost '%s'",
                         name, vh->name);
    val = json_deep_copy(json_object_get(cur, "value"));
    json_object_del(val, name);
    if (json_object_size(val) == 0) {
        json_decref(val);
        return node_kv_delete(n, KV_PARAMETER, vh->name, "vhost-limits",
                              "limits", err);
    }
    return node_kv_put(n, KV_PARAMETER, vh->name, "vhost-limits", "limits",
                       json_pack("{s:o}", "value", val), err);
}

void
node__kv_drop_vhost(struct node *n, const char *vhost)
{
    for (int k = 0; k < 4; k++) {
        json_t *list = n->kv[k];
        size_t i = 0;

        while (list && i < json_array_size(list)) {
            if (same_str(json_array_get(list, i), "vhost", vhost))
                json_array_remove(list, i);
            else
                i++;
        }
    }
}

void
node__kv_free(struct node *n)
{
    for (int k = 0; k < 4; k++) {
        json_decref(n->kv[k]);
        n->kv[k] = NULL;
    }
}

/* ---- policies applied to queues */

/* RabbitMQ's re:run: unanchored. A pattern that does not compile matches
 * nothing. */
static bool
pattern_matches(const char *re, struct bytes name)
{
    pcre2_match_data *md;
    pcre2_code *c;
    PCRE2_SIZE off;
    int code, rc;

    if (!re)
        return false;
    c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off,
                      NULL);
    if (!c)
        return false;
    md = pcre2_match_data_create_from_pattern(c, NULL);
    rc = pcre2_match(c, name.ptr, name.len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    return rc >= 0;
}

/* The policy of this kind that applies to q: highest priority among the
 * matching ones (the first listed among equals), or NULL. */
static json_t *
queue_policy(struct node *n, enum node_kv kind, const struct queue *q)
{
    json_t *list = n->kv[kind], *o, *best = NULL;
    size_t i;

    if (!list)
        return NULL;
    json_array_foreach(list, i, o)
    {
        const char *to = json_string_value(json_object_get(o, "apply-to"));

        if (!same_str(o, "vhost", q->vh->name) ||
            (to && strcmp(to, "all") != 0 && strcmp(to, "queues") != 0))
            continue;
        if (best && json_integer_value(json_object_get(o, "priority")) <=
                        json_integer_value(json_object_get(best, "priority")))
            continue;
        if (pattern_matches(json_string_value(json_object_get(o, "pattern")),
                            bytes_of(q->name, q->name_len)))
            best = o;
    }
    return best;
}

static json_t *
def_value(json_t *pol, const char *key)
{
    json_t *d = pol ? json_object_get(pol, "definition") : NULL;

    return d ? json_object_get(d, key) : NULL;
}

/* *cur = the lowest of *cur and the integer arg/policy values present
 * (-1 = none). */
static void
lowest(int64_t *cur, json_t *v)
{
    int64_t x;

    if (!json_is_integer(v) || (x = json_integer_value(v)) < 0)
        return;
    if (*cur < 0 || x < *cur)
        *cur = x;
}

static void
arg_int(const struct queue *q, const char *key, int64_t *out)
{
    struct fvalue v;

    *out = -1;
    if (ftable_find(q->args, key, &v))
        fvalue_get_int(&v, out);
}

/* The queue's string argument, else the policy's; false if neither. */
static bool
arg_or_policy_str(const struct queue *q, const char *arg, json_t *pol,
                  const char *key, struct bytes *out)
{
    struct fvalue v;
    json_t *j;

    if (ftable_find(q->args, arg, &v) && fvalue_is_str(&v)) {
        *out = v.v.str;
        return true;
    }
    j = def_value(pol, key);
    if (json_is_string(j)) {
        *out = bytes_of(json_string_value(j), json_string_length(j));
        return true;
    }
    return false;
}

static struct bytes
dup_bytes(struct bytes b)
{
    char *s = xmalloc(b.len + 1);

    if (b.len)
        memcpy(s, b.ptr, b.len);
    s[b.len] = '\0';
    return bytes_of(s, b.len);
}

static char *
name_of(json_t *pol)
{
    const char *s =
        pol ? json_string_value(json_object_get(pol, "name")) : NULL;

    return s ? xstrdup(s) : NULL;
}

/* Quorum queues (on a single node, a durable queue with a delivery
 * limit): the lowest of x-delivery-limit and the policies'
 * delivery-limit, else 20 as in RabbitMQ 4; a negative argument means no
 * limit. -1 for other queues. */
static int64_t
delivery_limit(const struct queue *q, json_t *pol, json_t *op)
{
    struct fvalue v;
    int64_t lim = -1;

    if (!q->quorum)
        return -1;
    if (ftable_find(q->args, "x-delivery-limit", &v) &&
        fvalue_get_int(&v, &lim) && lim < 0)
        return -1;
    lowest(&lim, def_value(pol, "delivery-limit"));
    lowest(&lim, def_value(op, "delivery-limit"));
    return lim < 0 ? 20 : lim;
}

void
queue__apply_settings(struct queue *q)
{
    struct node *n = q->vh->node;
    json_t *pol = queue_policy(n, KV_POLICY, q);
    json_t *op = queue_policy(n, KV_OPERATOR_POLICY, q);
    struct bytes b;

    arg_int(q, "x-message-ttl", &q->ttl_ms);
    lowest(&q->ttl_ms, def_value(pol, "message-ttl"));
    lowest(&q->ttl_ms, def_value(op, "message-ttl"));
    if (q->ttl_ms >= 0)
        queue__may_expire(q);
    arg_int(q, "x-expires", &q->expires_ms);
    lowest(&q->expires_ms, def_value(pol, "expires"));
    lowest(&q->expires_ms, def_value(op, "expires"));
    arg_int(q, "x-max-length", &q->max_len);
    lowest(&q->max_len, def_value(pol, "max-length"));
    lowest(&q->max_len, def_value(op, "max-length"));
    arg_int(q, "x-max-length-bytes", &q->max_bytes);
    lowest(&q->max_bytes, def_value(pol, "max-length-bytes"));
    lowest(&q->max_bytes, def_value(op, "max-length-bytes"));
    q->quorum = args__is_quorum(q->args);
    q->delivery_limit = delivery_limit(q, pol, op);
    arg_int(q, "x-consumer-timeout", &q->consumer_timeout_ms);
    lowest(&q->consumer_timeout_ms, def_value(pol, "consumer-timeout"));
    lowest(&q->consumer_timeout_ms, def_value(op, "consumer-timeout"));
    q->reject_publish = q->reject_publish_dlx = false;
    if (arg_or_policy_str(q, "x-overflow", pol, "overflow", &b)) {
        q->reject_publish = bytes_has_prefix(b, "reject-publish");
        q->reject_publish_dlx = bytes_eq_str(b, "reject-publish-dlx");
    }
    free((void *)q->dlx.ptr);
    free((void *)q->dlrk.ptr);
    q->dlx = q->dlrk = bytes_of(NULL, 0);
    q->has_dlx = arg_or_policy_str(q, "x-dead-letter-exchange", pol,
                                   "dead-letter-exchange", &b);
    if (q->has_dlx)
        q->dlx = dup_bytes(b);
    q->has_dlrk = arg_or_policy_str(q, "x-dead-letter-routing-key", pol,
                                    "dead-letter-routing-key", &b);
    if (q->has_dlrk)
        q->dlrk = dup_bytes(b);
    if (stream__is_declared(q->args)) /* its own keys only (stream.c) */
        stream__apply_policy(q, json_object_get(pol, "definition"),
                             json_object_get(op, "definition"));
    free(q->policy);
    free(q->op_policy);
    q->policy = name_of(pol);
    q->op_policy = name_of(op);
    if (q->expires_ms > 0)
        node__watch_expiry(n, q);
    if (q->expires_ms > 0 && q->used_us)
        node__note_expiry(n, q->used_us + (uint64_t)q->expires_ms * 1000u);
}

void
vhost__apply_policies(struct vhost *vh)
{
    struct queue *q, *tmp;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        queue__apply_settings(q);
        queue__enforce(q);
    }
}
