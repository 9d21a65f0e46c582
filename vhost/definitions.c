/*
 * definitions.c: RabbitMQ's definitions JSON, export and import.
 *
 * The same document describes what survives a restart (the node writes
 * it to <data_dir>/definitions.json whenever a durable object changes)
 * and what `/api/definitions` and `load_definitions` exchange with
 * RabbitMQ:
 *
 *   {"rabbit_version": "3.10.8", "product_name": "Warren", ...,
 *    "vhosts": [{"name": "/", ...}],
 *    "exchanges": [{"name", "vhost", "type", "durable", "auto_delete",
 *                   "internal", "arguments"}],
 *    "queues": [{"name", "vhost", "durable", "auto_delete", "arguments"}],
 *    "bindings": [{"source", "vhost", "destination", "destination_type",
 *                  "routing_key", "arguments"}], ...}
 *
 * Only durable objects are exported: non-durable exchanges and queues,
 * exclusive queues, the default and amq.* exchanges, and bindings that
 * touch a non-durable object are runtime state, as in RabbitMQ.
 *
 * Field tables map to JSON as RabbitMQ's management plugin maps them:
 * longstr -> string, integers -> number, float/double -> number, bool ->
 * bool, table -> object, array -> array, void -> null. Back from JSON:
 * string -> longstr, integer -> long, real -> double, object -> table,
 * array -> array, null -> void (so an imported x-message-ttl is a long,
 * which the type-class equivalence treats like a signedint).
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

#define RABBIT_VERSION "3.10.8"

/* ---- field tables <-> JSON */

static json_t *table_to_json(struct bytes tbl, int depth);

static json_t *
value_to_json(const struct fvalue *v, int depth)
{
    int64_t i;
    struct farray_iter it;
    struct fvalue e;
    json_t *a;

    if (fvalue_get_int(v, &i))
        return json_integer(i);
    switch (v->type) {
    case 't':
        return json_boolean(v->v.b);
    case 'f':
        return json_real(v->v.f);
    case 'd':
        return json_real(v->v.d);
    case 'T':
        return json_integer((json_int_t)v->v.u);
    case 'D': {
        double d = v->v.dec.value;
        for (int k = 0; k < v->v.dec.scale; k++)
            d /= 10;
        return json_real(d);
    }
    case 'S':
    case 'x':
        return json_stringn_nocheck((const char *)v->v.str.ptr, v->v.str.len);
    case 'F':
        return table_to_json(v->v.str, depth + 1);
    case 'A':
        a = json_array();
        if (depth < FTABLE_MAX_DEPTH) {
            farray_iter_init(&it, v->v.str);
            while (farray_next(&it, &e))
                json_array_append_new(a, value_to_json(&e, depth + 1));
        }
        return a;
    default:
        return json_null();
    }
}

static json_t *
table_to_json(struct bytes tbl, int depth)
{
    json_t *o = json_object();
    struct ftable_iter it;
    struct bytes k;
    struct fvalue v;

    if (depth > FTABLE_MAX_DEPTH)
        return o;
    ftable_iter_init(&it, tbl);
    while (ftable_next(&it, &k, &v)) {
        char *key = xstrndup(k.ptr, k.len);
        json_object_set_new(o, key, value_to_json(&v, depth));
        free(key);
    }
    return o;
}

json_t *
defs_table_to_json(struct bytes tbl)
{
    return table_to_json(tbl, 1);
}

static int json_to_table_body(json_t *o, struct buf *b, int depth);

static int
json_to_value(json_t *j, struct buf *b, int depth)
{
    struct fvalue v;
    size_t mark, i;
    json_t *e;

    switch (json_typeof(j)) {
    case JSON_STRING:
        v.type = 'S';
        v.v.str = bytes_of(json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        v.type = 'l';
        v.v.i = json_integer_value(j);
        break;
    case JSON_REAL:
        v.type = 'd';
        v.v.d = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v.type = 't';
        v.v.b = json_is_true(j);
        break;
    case JSON_NULL:
        v.type = 'V';
        break;
    case JSON_OBJECT:
        if (depth >= FTABLE_MAX_DEPTH)
            return WR_ERR;
        buf_put_u8(b, 'F');
        mark = ftable_begin(b);
        if (json_to_table_body(j, b, depth + 1) != WR_OK)
            return WR_ERR;
        ftable_end(b, mark);
        return WR_OK;
    case JSON_ARRAY:
        if (depth >= FTABLE_MAX_DEPTH)
            return WR_ERR;
        buf_put_u8(b, 'A');
        mark = farray_begin(b);
        json_array_foreach(j, i, e)
        {
            if (json_to_value(e, b, depth + 1) != WR_OK)
                return WR_ERR;
        }
        farray_end(b, mark);
        return WR_OK;
    default:
        return WR_ERR;
    }
    fenc_value_only(b, &v);
    return WR_OK;
}

static int
json_to_table_body(json_t *o, struct buf *b, int depth)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v)
    {
        if (strlen(k) > 255)
            return WR_ERR;
        fenc_key(b, k);
        if (json_to_value(v, b, depth) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

int
defs_json_to_table(json_t *o, struct buf *out)
{
    buf_reset(out);
    if (o == NULL || json_is_null(o))
        return WR_OK;
    if (!json_is_object(o))
        return WR_ERR;
    return json_to_table_body(o, out, 1);
}

/* ---- export */

bool
defs__exchange_is_exported(const struct exchange *x)
{
    return x->durable && x->name_len > 0 &&
           !bytes_has_prefix(bytes_of(x->name, x->name_len), "amq.");
}

static bool
queue_is_exported(const struct queue *q)
{
    return q->durable && !q->exclusive;
}

static bool
binding_is_exported(const struct binding *b)
{
    /* Bindings from amq.* exchanges to durable queues are kept too. */
    if (b->src->name_len == 0 || !b->src->durable)
        return false;
    if (b->dest.is_exchange)
        return ((struct exchange *)b->dest.ptr)->durable;
    return queue_is_exported((struct queue *)b->dest.ptr);
}

/* The objects a dry run of an import starts from (dry_run): besides the
 * exported ones, the transient ones an import may refer to. */
static bool
exchange_in_scratch(const struct exchange *x)
{
    return x->name_len > 0 &&
           !bytes_has_prefix(bytes_of(x->name, x->name_len), "amq.");
}

static bool
queue_in_scratch(const struct queue *q)
{
    return !q->exclusive;
}

static bool
binding_in_scratch(const struct binding *b)
{
    if (b->src->name_len == 0)
        return false;
    return b->dest.is_exchange || queue_in_scratch(b->dest.ptr);
}

/* all: everything a dry run needs, not only what is exported. */
static void
export_vhost(struct vhost *vh, json_t *doc, bool all)
{
    json_t *xs = json_object_get(doc, "exchanges");
    json_t *qs = json_object_get(doc, "queues");
    json_t *bs = json_object_get(doc, "bindings");
    struct exchange *x;
    struct queue *q, *tmp;
    struct binding *b;

    for (x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        if (all ? !exchange_in_scratch(x) : !defs__exchange_is_exported(x))
            continue;
        json_array_append_new(
            xs,
            json_pack("{s:s%, s:s, s:s, s:b, s:b, s:b, s:o}", "name", x->name,
                      x->name_len, "vhost", vh->name, "type",
                      exchange_type_name(x->type), "durable", x->durable,
                      "auto_delete", x->auto_delete, "internal", x->internal,
                      "arguments", defs_table_to_json(x->args)));
    }
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (all ? !queue_in_scratch(q) : !queue_is_exported(q))
            continue;
        json_array_append_new(
            qs, json_pack("{s:s%, s:s, s:b, s:b, s:o}", "name", q->name,
                          q->name_len, "vhost", vh->name, "durable", q->durable,
                          "auto_delete", q->auto_delete, "arguments",
                          defs_table_to_json(q->args)));
    }
    for (x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        DL_FOREACH2(((struct xinfo *)x->user)->out, b, src_next)
        {
            struct bytes dest = binding_dest_name(b);

            if (all ? !binding_in_scratch(b) : !binding_is_exported(b))
                continue;
            json_array_append_new(
                bs, json_pack("{s:s%, s:s, s:s%, s:s, s:s%, s:o}", "source",
                              x->name, x->name_len, "vhost", vh->name,
                              "destination", (const char *)dest.ptr, dest.len,
                              "destination_type",
                              b->dest.is_exchange ? "exchange" : "queue",
                              "routing_key", b->key, b->key_len, "arguments",
                              defs_table_to_json(b->args)));
        }
    }
}

static json_t *
tags_array(const char *tags)
{
    json_t *a = json_array();
    const char *p = tags, *end;

    while (p && *p) {
        end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (end > p)
            json_array_append_new(a, json_stringn(p, (size_t)(end - p)));
        p = *end ? end + 1 : end;
    }
    return a;
}

json_t *
user_limits_json(const struct user *u)
{
    json_t *o = json_object();

    if (u->max_channels != USER_LIMIT_UNSET)
        json_object_set_new(o, "max-channels", json_integer(u->max_channels));
    if (u->max_connections != USER_LIMIT_UNSET)
        json_object_set_new(o, "max-connections",
                            json_integer(u->max_connections));
    return o;
}

static void
export_users(struct node *n, json_t *doc)
{
    json_t *users = json_object_get(doc, "users");
    json_t *perms = json_object_get(doc, "permissions");
    const struct perm *p;

    for (struct user *u = node_users(n); u; u = u->hh.next)
        json_array_append_new(
            users,
            json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", u->name,
                      "password_hash", u->password_hash, "hashing_algorithm",
                      u->hashing_algorithm, "tags", tags_array(u->tags),
                      "limits", user_limits_json(u)));
    for (p = node_perms(n); p; p = p->next)
        json_array_append_new(
            perms, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", p->user,
                             "vhost", p->vhost, "configure", p->re[0], "write",
                             p->re[1], "read", p->re[2]));
}

static void
extend(json_t *doc, const char *key, json_t *items)
{
    json_array_extend(json_object_get(doc, key), items);
    json_decref(items);
}

/* A vhost's item in the "vhosts" list: RabbitMQ's, with Warren's
 * replication settings in its metadata when they are set. */
static json_t *
vhost_item(const struct vhost *vh)
{
    json_t *o = json_pack("{s:s, s:[], s:{s:s, s:o}}", "name", vh->name,
                          "limits", "metadata", "description",
                          vh->description ? vh->description : "", "tags",
                          tags_array(vh->tags));
    json_t *meta = json_object_get(o, "metadata");

    if (vh->repl_replicas)
        json_object_set_new(meta, "replicas",
                            json_integer((json_int_t)vh->repl_replicas));
    if (vh->repl_min_isr)
        json_object_set_new(meta, "min_isr",
                            json_integer((json_int_t)vh->repl_min_isr));
    return o;
}

/* The definitions document; objects false leaves the exchanges, queues
 * and bindings out (what the cluster keeps in etcd is all the rest). */
static json_t *
defs_export(struct node *n, const char *only_vhost, bool objects, bool all)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:[], s:[], s:[], s:[], s:[], s:[], s:[], "
        "s:[], s:[], s:[]}",
        "rabbit_version", RABBIT_VERSION, "rabbitmq_version", RABBIT_VERSION,
        "product_name", "Warren", "product_version", WARREN_VERSION, "users",
        "vhosts", "permissions", "topic_permissions", "parameters",
        "global_parameters", "policies", "queues", "exchanges", "bindings");
    struct vhost *vh, *tmp;

    if (!only_vhost) {
        export_users(n, doc);
        extend(doc, "global_parameters",
               node_kv_list(n, KV_GLOBAL_PARAMETER, NULL));
        /* Warren's own key (RabbitMQ exports these as parameters its own
         * import refuses): kept so that they survive a restart. */
        json_object_set_new(doc, "operator_policies",
                            node_kv_list(n, KV_OPERATOR_POLICY, NULL));
    }
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        if (only_vhost && strcmp(only_vhost, vh->name) != 0)
            continue;
        if (!only_vhost)
            json_array_append_new(json_object_get(doc, "vhosts"),
                                  vhost_item(vh));
        extend(doc, "parameters", node_kv_list(n, KV_PARAMETER, vh->name));
        extend(doc, "policies", node_kv_list(n, KV_POLICY, vh->name));
        if (objects)
            export_vhost(vh, doc, all);
    }
    if (only_vhost) {
        /* RabbitMQ's per-vhost export holds only the vhost's objects. */
        json_object_del(doc, "users");
        json_object_del(doc, "vhosts");
        json_object_del(doc, "permissions");
        json_object_del(doc, "topic_permissions");
        json_object_del(doc, "global_parameters");
    }
    return doc;
}

json_t *
node_defs_export(struct node *n, const char *only_vhost)
{
    return defs_export(n, only_vhost, true, false);
}

/* ---- import */

int
node_vhost_repl_parse(const json_t *o, struct vhost_repl_meta *out, char *why,
                      size_t n)
{
    static const char *const keys[] = {"replicas", "min_isr"};
    const json_t *meta = json_object_get(o, "metadata");
    uint32_t *fields[] = {&out->replicas, &out->min_isr};

    *out = (struct vhost_repl_meta){0};
    for (size_t i = 0; i < WR_ARRAY_LEN(keys); i++) {
        const json_t *v = json_object_get(meta, keys[i]);

        if (!v)
            v = json_object_get(o, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > VHOST_REPL_MAX) {
            snprintf(why, n, "%s must be an integer from 1 to %d", keys[i],
                     VHOST_REPL_MAX);
            return WR_ERR;
        }
        *fields[i] = (uint32_t)json_integer_value(v);
    }
    if (out->replicas && out->min_isr > out->replicas) {
        snprintf(why, n, "min_isr (%u) must not exceed replicas (%u)",
                 out->min_isr, out->replicas);
        return WR_ERR;
    }
    return WR_OK;
}

static const char *
jstr(json_t *o, const char *key, const char *dflt)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

static bool
jbool(json_t *o, const char *key, bool dflt)
{
    json_t *v = json_object_get(o, key);

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static struct vhost *
import_vhost_of(struct node *n, json_t *o, const char *what, struct vherr *err)
{
    const char *name = jstr(o, "vhost", NULL);
    struct vhost *vh;

    if (!name) {
        vherr_set(err, AMQP_PRECONDITION_FAILED, "%s without a vhost", what);
        return NULL;
    }
    vh = node_vhost_find(n, name);
    if (!vh)
        vherr_set(err, AMQP_NOT_FOUND,
                  "%s refers to vhost '%s', which does "
                  "not exist",
                  what, name);
    return vh;
}

static int
import_exchange(struct node *n, json_t *o, struct buf *args, struct vherr *err)
{
    struct vhost *vh = import_vhost_of(n, o, "exchange", err);
    const char *name = jstr(o, "name", NULL);
    struct exchange_decl d;

    if (!vh)
        return WR_ERR;
    if (!name)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "exchange without a name");
    if (defs_json_to_table(json_object_get(o, "arguments"), args) != WR_OK)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "bad arguments for exchange '%s'", name);
    d = (struct exchange_decl){
        .name = bytes_str(name),
        .type = bytes_str(jstr(o, "type", "direct")),
        .durable = jbool(o, "durable", true),
        .auto_delete = jbool(o, "auto_delete", false),
        .internal = jbool(o, "internal", false),
        .args = buf_bytes(args),
    };
    /* amq.* are there already; redeclaring them equal is fine. */
    return vhost_exchange_declare(vh, &d, err);
}

static int
import_queue(struct node *n, json_t *o, struct buf *args, struct vherr *err)
{
    struct vhost *vh = import_vhost_of(n, o, "queue", err);
    const char *name = jstr(o, "name", NULL);
    struct queue_decl d;
    struct queue *q;

    if (!vh)
        return WR_ERR;
    if (!name || !*name)
        return vherr_set(err, AMQP_PRECONDITION_FAILED, "queue without a name");
    if (defs_json_to_table(json_object_get(o, "arguments"), args) != WR_OK)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "bad arguments for queue '%s'", name);
    d = (struct queue_decl){
        .name = bytes_str(name),
        .server_named = true, /* amq.gen- names come back as they were */
        .durable = jbool(o, "durable", true),
        .auto_delete = jbool(o, "auto_delete", false),
        .args = buf_bytes(args),
    };
    return vhost_queue_declare(vh, &d, &q, err);
}

static int
import_binding(struct node *n, json_t *o, struct buf *args, struct vherr *err)
{
    struct vhost *vh = import_vhost_of(n, o, "binding", err);
    const char *src = jstr(o, "source", NULL);
    const char *dst = jstr(o, "destination", NULL);
    const char *dtype = jstr(o, "destination_type", "queue");

    if (!vh)
        return WR_ERR;
    if (!src || !dst)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "binding without source or destination");
    if (defs_json_to_table(json_object_get(o, "arguments"), args) != WR_OK)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "bad arguments for binding '%s' -> '%s'", src, dst);
    return vhost_bind(
        vh, bytes_str(src), bytes_str(dst), strcmp(dtype, "exchange") == 0,
        bytes_str(jstr(o, "routing_key", "")), buf_bytes(args), NULL, err);
}

typedef int import_fn(struct node *n, json_t *o, struct buf *args,
                      struct vherr *err);

static int
import_list(struct node *n, json_t *doc, const char *key, import_fn *fn,
            struct vherr *err)
{
    json_t *list = json_object_get(doc, key), *o;
    struct buf args;
    size_t i;
    int rc = WR_OK;

    if (list == NULL)
        return WR_OK;
    if (!json_is_array(list))
        return vherr_set(err, AMQP_PRECONDITION_FAILED, "'%s' must be a list",
                         key);
    buf_init(&args);
    json_array_foreach(list, i, o)
    {
        if (!json_is_object(o) || fn(n, o, &args, err) != WR_OK) {
            if (json_is_object(o) == false)
                vherr_set(err, AMQP_PRECONDITION_FAILED,
                          "'%s' entries must be objects", key);
            rc = WR_ERR;
            break;
        }
    }
    buf_fini(&args);
    return rc;
}

/* "tags": "a,b" (RabbitMQ before 3.9) or ["a", "b"]. */
static char *
tags_text(json_t *t)
{
    struct buf b;
    json_t *e;
    size_t i;

    if (json_is_string(t))
        return xstrdup(json_string_value(t));
    buf_init(&b);
    json_array_foreach(t, i, e)
    {
        if (!json_is_string(e))
            continue;
        if (b.len)
            buf_put_u8(&b, ',');
        buf_append(&b, json_string_value(e), json_string_length(e));
    }
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

/* A user's "limits" in a definitions file replace the ones it has. */
static int
import_user_limits(struct node *n, const char *user, json_t *limits,
                   struct vherr *err)
{
    static const char *const names[] = {"max-connections", "max-channels"};
    const char *k;
    json_t *v;

    if (!limits)
        return WR_OK;
    if (!json_is_object(limits))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "limits of user '%s' must be an object", user);
    json_object_foreach(limits, k, v)
    {
        if (!json_is_integer(v))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "%s should be a number, in the limits of "
                             "user '%s'",
                             k, user);
    }
    for (size_t i = 0; i < WR_ARRAY_LEN(names); i++) {
        v = json_object_get(limits, names[i]);
        if (node_user_clear_limit(n, user, names[i], err) != WR_OK ||
            (v && node_user_set_limit(n, user, names[i], json_integer_value(v),
                                      err) != WR_OK))
            return WR_ERR;
    }
    return WR_OK;
}

static int
import_user(struct node *n, json_t *o, struct buf *unused, struct vherr *err)
{
    const char *name = jstr(o, "name", NULL);
    char *tags;
    int rc;

    (void)unused;
    if (!name)
        return vherr_set(err, AMQP_PRECONDITION_FAILED, "user without a name");
    tags = tags_text(json_object_get(o, "tags"));
    rc = node_user_put(n, name, jstr(o, "password", NULL),
                       jstr(o, "password", NULL) ? NULL
                                                 : jstr(o, "password_hash", ""),
                       jstr(o, "hashing_algorithm", NULL), tags, err);
    free(tags);
    if (rc == WR_OK)
        rc = import_user_limits(n, name, json_object_get(o, "limits"), err);
    return rc;
}

static int
import_permission(struct node *n, json_t *o, struct buf *unused,
                  struct vherr *err)
{
    (void)unused;
    return node_perm_set(n, jstr(o, "vhost", ""), jstr(o, "user", ""),
                         jstr(o, "configure", ""), jstr(o, "write", ""),
                         jstr(o, "read", ""), err);
}

static int
import_kv(struct node *n, json_t *o, enum node_kv kind, struct vherr *err)
{
    return node_kv_put(n, kind, jstr(o, "vhost", ""), jstr(o, "component", ""),
                       jstr(o, "name", ""), json_deep_copy(o), err);
}

static int
import_parameter(struct node *n, json_t *o, struct buf *u, struct vherr *e)
{
    (void)u;
    return import_kv(n, o, KV_PARAMETER, e);
}

static int
import_policy(struct node *n, json_t *o, struct buf *u, struct vherr *e)
{
    (void)u;
    return import_kv(n, o, KV_POLICY, e);
}

static int
import_global(struct node *n, json_t *o, struct buf *u, struct vherr *e)
{
    (void)u;
    return import_kv(n, o, KV_GLOBAL_PARAMETER, e);
}

static int
import_operator_policy(struct node *n, json_t *o, struct buf *u,
                       struct vherr *e)
{
    (void)u;
    return import_kv(n, o, KV_OPERATOR_POLICY, e);
}

/* The item's replication settings replace the vhost's (absent: not set),
 * so that a cluster's copy of the item (cluster/defs.c) is exact. */
static void
import_vhost_meta(struct vhost *vh, json_t *o, const struct vhost_repl_meta *r)
{
    json_t *meta = json_object_get(o, "metadata");
    const char *d = jstr(meta, "description", jstr(o, "description", NULL));
    json_t *t = json_object_get(meta, "tags");

    if (d) {
        free(vh->description);
        vh->description = xstrdup(d);
    }
    if (t) {
        free(vh->tags);
        vh->tags = tags_text(t);
    }
    vh->repl_replicas = r->replicas;
    vh->repl_min_isr = r->min_isr;
}

static int
defs_apply(struct node *n, json_t *doc, struct vherr *err)
{
    json_t *vhosts = json_object_get(doc, "vhosts"), *o;
    size_t i;

    if (!json_is_object(doc))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "definitions must be a JSON object");
    if (import_list(n, doc, "users", import_user, err) != WR_OK)
        return WR_ERR;
    if (json_is_array(vhosts)) {
        json_array_foreach(vhosts, i, o)
        {
            const char *name = jstr(o, "name", NULL), *why;
            struct vhost_repl_meta r;
            char rwhy[128];
            struct vhost *vh;

            if (!name)
                continue;
            if (!node_vhost_name_check(name, &why))
                return vherr_set(err, AMQP_PRECONDITION_FAILED,
                                 "vhost '%.300s': %s", name, why);
            if (node_vhost_repl_parse(o, &r, rwhy, sizeof(rwhy)) != WR_OK)
                return vherr_set(err, AMQP_PRECONDITION_FAILED,
                                 "vhost '%.300s': %s", name, rwhy);
            vh = node_vhost_find(n, name);
            if (!vh && !(vh = node_vhost_add(n, name)))
                return vherr_set(err, AMQP_INTERNAL_ERROR,
                                 "cannot create vhost '%s' (see the log)",
                                 name);
            import_vhost_meta(vh, o, &r);
        }
    }
    if (import_list(n, doc, "permissions", import_permission, err) != WR_OK ||
        import_list(n, doc, "parameters", import_parameter, err) != WR_OK ||
        import_list(n, doc, "policies", import_policy, err) != WR_OK ||
        import_list(n, doc, "global_parameters", import_global, err) != WR_OK ||
        import_list(n, doc, "operator_policies", import_operator_policy, err) !=
            WR_OK)
        return WR_ERR;
    /* Exchanges before queues before bindings: each may refer to the
     * ones before it. */
    if (import_list(n, doc, "exchanges", import_exchange, err) != WR_OK ||
        import_list(n, doc, "queues", import_queue, err) != WR_OK ||
        import_list(n, doc, "bindings", import_binding, err) != WR_OK)
        return WR_ERR;
    return WR_OK;
}

/*
 * An import changes all or nothing: it is first applied to a scratch
 * node (nothing on disk, no clients) holding a copy of this node's users,
 * vhosts, permissions, parameters, policies and objects, and only when
 * that succeeds to the node itself. Objects only a connection holds
 * (exclusive queues) are not copied, so a clash with one still shows up
 * midway, as before.
 */
static int
dry_run(struct node *n, json_t *doc, struct vherr *err)
{
    struct node *scratch = node_new(NULL);
    json_t *now = defs_export(n, NULL, true, true);
    int rc = defs_apply(scratch, now, err);

    if (rc != WR_OK)
        log_warn("definitions: the scratch copy of the node does not load "
                 "(%s); importing without a dry run",
                 err->text);
    else
        rc = defs_apply(scratch, doc, err) == WR_OK ? WR_OK : -2;
    json_decref(now);
    node_free(scratch);
    return rc;
}

int
node_defs_import(struct node *n, json_t *doc, struct vherr *err)
{
    /* The node's own definitions file at boot is applied as it is. */
    if (n->booted && dry_run(n, doc, err) == -2)
        return WR_ERR;
    return defs_apply(n, doc, err);
}

json_t *
node_defs_split_vhosts(json_t *doc)
{
    static const char *const lists[] = {"exchanges", "queues", "bindings"};
    json_t *parts = json_object();

    for (size_t k = 0; k < WR_ARRAY_LEN(lists); k++) {
        json_t *a = json_object_get(doc, lists[k]), *item;
        size_t i;

        json_array_foreach(a, i, item)
        {
            const char *vh = json_string_value(json_object_get(item, "vhost"));
            json_t *part;

            if (!vh)
                continue;
            if (!(part = json_object_get(parts, vh))) {
                part = json_pack("{s:[], s:[], s:[]}", lists[0], lists[1],
                                 lists[2]);
                json_object_set_new(parts, vh, part);
            }
            json_array_append(json_object_get(part, lists[k]), item);
        }
        json_object_del(doc, lists[k]);
    }
    return parts;
}

/* ---- one object at a time (a cluster's definitions in etcd) */

static const char *const kind_lists[] = {
    [DEFS_USER] = "users",
    [DEFS_VHOST] = "vhosts",
    [DEFS_PERMISSION] = "permissions",
    [DEFS_POLICY] = "policies",
    [DEFS_OPERATOR_POLICY] = "operator_policies",
    [DEFS_PARAMETER] = "parameters",
    [DEFS_GLOBAL_PARAMETER] = "global_parameters",
};

static const enum node_kv kind_kv[] = {
    [DEFS_POLICY] = KV_POLICY,
    [DEFS_OPERATOR_POLICY] = KV_OPERATOR_POLICY,
    [DEFS_PARAMETER] = KV_PARAMETER,
    [DEFS_GLOBAL_PARAMETER] = KV_GLOBAL_PARAMETER,
};

int
node_defs_put(struct node *n, enum defs_kind k, json_t *item, struct vherr *err)
{
    json_t *doc = json_pack("{s:[O]}", kind_lists[k], item);
    int rc = defs_apply(n, doc, err); /* one item: all or nothing already */

    json_decref(doc);
    return rc;
}

int
node_defs_remove(struct node *n, enum defs_kind k, json_t *item,
                 struct vherr *err)
{
    struct vhost *vh;

    switch (k) {
    case DEFS_USER:
        return node_user_delete(n, jstr(item, "name", ""), err);
    case DEFS_VHOST:
        vh = node_vhost_find(n, jstr(item, "name", ""));
        if (!vh)
            return vherr_set(err, AMQP_NOT_FOUND, "no vhost '%s'",
                             jstr(item, "name", ""));
        node_vhost_remove(n, vh);
        return WR_OK;
    case DEFS_PERMISSION:
        return node_perm_clear(n, jstr(item, "vhost", ""),
                               jstr(item, "user", ""), err);
    default:
        return node_kv_delete(n, kind_kv[k], jstr(item, "vhost", ""),
                              jstr(item, "component", ""),
                              jstr(item, "name", ""), err);
    }
}

void
node_defs_lists(struct node *n, json_t *lists[DEFS_NKINDS])
{
    json_t *doc = defs_export(n, NULL, false, false);

    for (int k = 0; k < DEFS_NKINDS; k++) {
        lists[k] = json_incref(json_object_get(doc, kind_lists[k]));
        if (!lists[k])
            lists[k] = json_array();
    }
    json_decref(doc);
}

json_t *
node_defs_list(struct node *n, enum defs_kind k)
{
    json_t *lists[DEFS_NKINDS], *items;

    node_defs_lists(n, lists);
    items = lists[k];
    for (int i = 0; i < DEFS_NKINDS; i++) {
        if (i != (int)k)
            json_decref(lists[i]);
    }
    return items;
}
