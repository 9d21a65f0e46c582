/*
 * vhost.c: one vhost's namespace: exchanges, queues, bindings, publish.
 *
 * The rules follow RabbitMQ 3.10's rabbit_channel and rabbit_amqqueue,
 * including the order in which checks happen (which error a client sees
 * when several apply) and the texts. A resource is named in texts as
 * RabbitMQ's rs/1 does: "queue 'q' in vhost '/'".
 *
 * Every vhost starts with the default exchange "" and the amq.*
 * exchanges; they are durable and can be neither redeclared with other
 * properties nor deleted.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include "store/fsyncer.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>

static const struct {
    const char *name;
    enum exchange_type type;
    bool internal;
} standard_exchanges[] = {
    {"", EXCHANGE_DIRECT, false},
    {"amq.direct", EXCHANGE_DIRECT, false},
    {"amq.fanout", EXCHANGE_FANOUT, false},
    {"amq.topic", EXCHANGE_TOPIC, false},
    {"amq.headers", EXCHANGE_HEADERS, false},
    {"amq.match", EXCHANGE_HEADERS, false},
    {"amq.rabbitmq.trace", EXCHANGE_TOPIC, true},
};

int
vherr_set(struct vherr *err, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return WR_ERR;
}

/* ---- what others read */

void
vhost_info(const struct vhost *vh, struct vhost_info *out)
{
    out->name = vh->name;
    out->description = vh->description;
    out->tags = vh->tags;
    out->repl_replicas = vh->repl_replicas;
    out->repl_min_isr = vh->repl_min_isr;
    out->max_connections = vh->max_connections;
    out->max_queues = vh->max_queues;
    out->connections = vh->connections;
    out->queues = vh->nqueues;
    out->exchanges = xreg_count(vh->xr);
    out->log_failed = vh->store_failed;
}

const char *
vhost_name(const struct vhost *vh)
{
    return vh->name;
}

uint64_t
vhost_durable_lsn(const struct vhost *vh)
{
    /* replicated: also on the disks of the in-sync mirrors */
    return WR_MIN(vh->durable_lsn, vh->repl_limit);
}

uint64_t
vhost_disk_lsn(const struct vhost *vh)
{
    return vh->durable_lsn;
}

void
vhost_set_repl_limit(struct vhost *vh, uint64_t lsn)
{
    vh->repl_limit = lsn;
}

uint64_t
vhost_streams_durable(const struct vhost *vh)
{
    return vh->stream_durable;
}

bool
vhost_streams_failed(const struct vhost *vh)
{
    return vh->stream_failed;
}

bool
vhost_log_failed(const struct vhost *vh)
{
    return vh->store_failed;
}

struct queue *
vhost_queue_next(const struct vhost *vh, const struct queue *q)
{
    return q ? q->hh.next : vh->queues;
}

struct exchange *
vhost_exchange_next(const struct vhost *vh, struct exchange *x)
{
    return x ? xreg_next(vh->xr, x) : xreg_first(vh->xr);
}

void
node_vhost_set_meta(struct node *n, struct vhost *vh, const char *description,
                    const char *tags)
{
    if (description) {
        free(vh->description);
        vh->description = xstrdup(description);
    }
    if (tags) {
        free(vh->tags);
        vh->tags = xstrdup(tags);
    }
    node_defs_changed(n);
}

void
node_vhost_set_repl(struct node *n, struct vhost *vh,
                    const struct vhost_repl_meta *m)
{
    vh->repl_replicas = m->replicas;
    vh->repl_min_isr = m->min_isr;
    node_defs_changed(n);
}

int
vhost_connection_admit(struct vhost *vh, const char *user, struct vherr *err)
{
    if (vh->max_connections >= 0 &&
        vh->connections >= (uint64_t)vh->max_connections)
        return vherr_set(err, AMQP_NOT_ALLOWED,
                         "access to vhost '%s' refused for user '%s': "
                         "connection limit (%lld) is reached",
                         vh->name, user, (long long)vh->max_connections);
    if (!vhost_user_has_access(vh, user))
        return vherr_set(err, AMQP_NOT_ALLOWED,
                         "access to vhost '%s' refused for user '%s'", vh->name,
                         user);
    vh->connections++;
    return WR_OK;
}

void
vhost_connection_leave(struct vhost *vh)
{
    WR_ASSERT(vh->connections > 0);
    vh->connections--;
}

/* RabbitMQ's rs/1: "queue 'q' in vhost '/'". */
static const char *
rs(char *out, size_t n, const char *kind, struct bytes name,
   const struct vhost *vh)
{
    snprintf(out, n, "%s '%.*s' in vhost '%s'", kind, BYTES_FMT(name),
             vh->name);
    return out;
}

static int
not_found(struct vherr *err, const char *kind, struct bytes name,
          const struct vhost *vh)
{
    char r[400];

    return vherr_set(err, AMQP_NOT_FOUND, "no %s",
                     rs(r, sizeof(r), kind, name, vh));
}

static int
default_exchange_refused(struct vherr *err)
{
    return vherr_set(err, AMQP_ACCESS_REFUSED,
                     "operation not permitted on the default exchange");
}

/* ---- exchanges */

static struct exchange *
exchange_create(struct vhost *vh, struct bytes name, enum exchange_type t,
                bool durable, bool auto_delete, bool internal,
                struct bytes args)
{
    struct exchange *x;

    x = xreg_add(vh->xr, name, t, durable, auto_delete, internal, args);
    x->user = xcalloc(1, sizeof(struct xinfo));
    ((struct xinfo *)x->user)->dedup = dedup_from_args(args);
    if (t == EXCHANGE_DELAYED)
        delay__exchange_added(vh, x);
    if (durable)
        node_defs_changed(vh->node);
    return x;
}

struct vhost *
vhost__new(struct node *n, const char *name)
{
    struct vhost *vh = xcalloc(1, sizeof(*vh));

    vh->repl_limit = UINT64_MAX;

    vh->magic = VHOST_MAGIC;
    vh->node = n;
    vh->name = xstrdup(name);
    vh->xr = xreg_new();
    vh->max_connections = vh->max_queues = -1;
    vh->lost_from = UINT64_MAX;
    vh->serving = !n->opts.clustered;
    routeset_init(&vh->rs);
    for (size_t i = 0; i < WR_ARRAY_LEN(standard_exchanges); i++)
        exchange_create(vh, bytes_str(standard_exchanges[i].name),
                        standard_exchanges[i].type, true, false,
                        standard_exchanges[i].internal, BYTES_NULL);
    return vh;
}

void
vhost__free(struct vhost *vh)
{
    struct queue *q, *tmp;
    struct exchange *x;

    /* Close the log first: tearing down the in-memory model must not
     * append deletes to it. */
    vhost__close_store(vh);
    HASH_ITER(hh, vh->queues, q, tmp)
    {
        vhost_queue_delete(vh, q);
    }
    /* No queue is left, so only exchange-to-exchange bindings remain;
     * drop them all before freeing any exchange. */
    for (x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x))
        binding__remove_all_out(vh, x);
    while ((x = xreg_first(vh->xr)) != NULL) {
        dedup_free(((struct xinfo *)x->user)->dedup);
        delay__exchange_removed(vh, x);
        free(x->user);
        xreg_remove(vh->xr, x);
    }
    xreg_free(vh->xr);
    routeset_fini(&vh->rs);
    buf_fini(&vh->scratch);
    free(vh->name);
    free(vh->description);
    free(vh->tags);
    vh->magic = 0;
    free(vh);
}

struct exchange *
vhost_exchange_find(struct vhost *vh, struct bytes name)
{
    return xreg_find(vh->xr, name);
}

static int
field_mismatch(struct vherr *err, const char *field, const char *r,
               const char *got, const char *cur)
{
    return vherr_set(err, AMQP_PRECONDITION_FAILED,
                     "inequivalent arg '%s' for %s: received '%s' but "
                     "current is '%s'",
                     field, r, got, cur);
}

static const char *
tf(bool b)
{
    return b ? "true" : "false";
}

static int
exchange_equiv(struct exchange *x, enum exchange_type t,
               const struct exchange_decl *d, const char *r, struct vherr *err)
{
    if (x->type != t)
        return field_mismatch(err, "type", r, exchange_type_name(t),
                              exchange_type_name(x->type));
    if (x->durable != d->durable)
        return field_mismatch(err, "durable", r, tf(d->durable),
                              tf(x->durable));
    if (x->auto_delete != d->auto_delete)
        return field_mismatch(err, "auto_delete", r, tf(d->auto_delete),
                              tf(x->auto_delete));
    if (x->internal != d->internal)
        return field_mismatch(err, "internal", r, tf(d->internal),
                              tf(x->internal));
    return args__equiv_exchange(x->args, d->args, r, err);
}

/* The x-delayed-message plugin's validate: an existing type named by
 * x-delayed-type (its text, typos and all), else check_type's 503. */
static int
delayed_type_check(struct bytes args, struct vherr *err)
{
    enum exchange_type t;
    struct fvalue v;
    bool unknown;

    if (exchange_delayed_type(args, &t, &unknown) == WR_OK)
        return WR_OK;
    if (unknown && ftable_find(args, "x-delayed-type", &v))
        return vherr_set(err, AMQP_COMMAND_INVALID,
                         "unknown exchange type '%.*s'", BYTES_FMT(v.v.str));
    return vherr_set(err, AMQP_PRECONDITION_FAILED,
                     "Invalid argument, 'x-delayed-type' must bean existing "
                     "exchnage type");
}

int
vhost_exchange_declare(struct vhost *vh, const struct exchange_decl *d,
                       struct vherr *err)
{
    struct exchange *x;
    enum exchange_type t;
    struct fvalue ae;
    char r[400];

    rs(r, sizeof(r), "exchange", d->name, vh);
    if (d->passive) {
        if (d->name.len == 0)
            return default_exchange_refused(err);
        if (!vhost_exchange_find(vh, d->name))
            return not_found(err, "exchange", d->name, vh);
        return WR_OK;
    }
    if (exchange_type_parse(d->type, &t) != WR_OK)
        return vherr_set(err, AMQP_COMMAND_INVALID,
                         "unknown exchange type '%.*s'", BYTES_FMT(d->type));
    if (d->name.len == 0)
        return default_exchange_refused(err);
    if (d->owner && vhost_perm_check(vh, d->owner->user, PERM_CONFIGURE,
                                     "exchange", d->name, err) != WR_OK)
        return WR_ERR;
    x = vhost_exchange_find(vh, d->name);
    if (x)
        return exchange_equiv(x, t, d, r, err);
    if (bytes_has_prefix(d->name, "amq."))
        return vherr_set(err, AMQP_ACCESS_REFUSED,
                         "exchange name '%.*s' contains reserved prefix "
                         "'amq.*'",
                         BYTES_FMT(d->name));
    if (args__check_exchange(d->args, t, r, err) != WR_OK)
        return WR_ERR;
    /* An alternate exchange: RabbitMQ wants read on this exchange and
     * write on the alternate. */
    if (d->owner && ftable_find(d->args, "alternate-exchange", &ae) &&
        (vhost_perm_check(vh, d->owner->user, PERM_READ, "exchange", d->name,
                          err) != WR_OK ||
         vhost_perm_check(vh, d->owner->user, PERM_WRITE, "exchange", ae.v.str,
                          err) != WR_OK))
        return WR_ERR;
    if (t == EXCHANGE_DELAYED && delayed_type_check(d->args, err) != WR_OK)
        return WR_ERR;
    exchange_create(vh, d->name, t, d->durable, d->auto_delete, d->internal,
                    d->args);
    return WR_OK;
}

void
vhost__exchange_delete(struct vhost *vh, struct exchange *x)
{
    struct xinfo *xi = x->user;

    /* Outgoing bindings first, without the auto-delete rule (x is going
     * anyway); then incoming ones, which may cascade to their sources. */
    x->auto_delete = false;
    binding__remove_all_out(vh, x);
    binding__remove_all_in(vh, &xi->in);
    if (x->durable)
        node_defs_changed(vh->node);
    if (xi->dedup && x->durable)
        vhost__dedup_log_forget(vh, 'X', bytes_of(x->name, x->name_len));
    dedup_free(xi->dedup);
    delay__exchange_removed(vh, x);
    free(xi);
    xreg_remove(vh->xr, x);
}

int
vhost_exchange_delete(struct vhost *vh, struct bytes name, bool if_unused,
                      const struct vh_owner *owner, struct vherr *err)
{
    struct exchange *x;
    char r[400];

    rs(r, sizeof(r), "exchange", name, vh);
    if (name.len == 0)
        return default_exchange_refused(err);
    if (bytes_has_prefix(name, "amq."))
        return vherr_set(err, AMQP_ACCESS_REFUSED,
                         "deletion of system %s not allowed", r);
    if (owner && vhost_perm_check(vh, owner->user, PERM_CONFIGURE, "exchange",
                                  name, err) != WR_OK)
        return WR_ERR;
    x = vhost_exchange_find(vh, name);
    if (!x)
        return WR_OK;
    if (if_unused && ((struct xinfo *)x->user)->out != NULL)
        return vherr_set(err, AMQP_PRECONDITION_FAILED, "%s in use", r);
    vhost__exchange_delete(vh, x);
    return WR_OK;
}

/* ---- queues */

struct queue *
vhost_queue_find(struct vhost *vh, struct bytes name)
{
    struct queue *q;

    HASH_FIND(hh, vh->queues, name.ptr, name.len, q);
    return q;
}

static int
locked(struct vherr *err, struct bytes name, const struct vhost *vh)
{
    char r[400];

    return vherr_set(err, AMQP_RESOURCE_LOCKED,
                     "cannot obtain exclusive access to locked %s. It could "
                     "be originally declared on another connection or the "
                     "exclusive property value does not match that of the "
                     "original declaration.",
                     rs(r, sizeof(r), "queue", name, vh));
}

int
vhost_queue_access(struct vhost *vh, struct bytes name,
                   const struct vh_owner *owner, enum perm_kind kind,
                   struct queue **out, struct vherr *err)
{
    if (owner &&
        vhost_perm_check(vh, owner->user, kind, "queue", name, err) != WR_OK)
        return WR_ERR;
    return vhost_queue_lookup(vh, name, owner, out, err);
}

int
vhost_queue_lookup(struct vhost *vh, struct bytes name,
                   const struct vh_owner *owner, struct queue **out,
                   struct vherr *err)
{
    struct queue *q = vhost_queue_find(vh, name);

    if (!q)
        return not_found(err, "queue", name, vh);
    if (q->owner && q->owner != owner)
        return locked(err, name, vh);
    *out = q;
    return WR_OK;
}

static struct queue *
queue_create(struct vhost *vh, const struct queue_decl *d, bool durable)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    struct fvalue v;

    q->magic = QUEUE_MAGIC;
    q->refs = 1;
    q->vh = vh;
    q->name = xstrndup(d->name.ptr, d->name.len);
    q->name_len = d->name.len;
    q->durable = durable;
    q->exclusive = d->exclusive;
    q->auto_delete = d->auto_delete;
    q->args = bytes_of(xmemdup(d->args.ptr, d->args.len), d->args.len);
    q->qid = store_qid(d->name);
    q->used_us = node_now(vh->node);
    /* TTL, x-expires, length limits, overflow, dead-lettering: from the
     * arguments and the policies that apply (policy.c) */
    queue__apply_settings(q);
    if (ftable_find(q->args, "x-max-priority", &v)) {
        int64_t p = 0;

        fvalue_get_int(&v, &p);
        q->max_priority = (uint8_t)WR_MIN(WR_MAX(p, 0), 255);
    }
    q->single_active = ftable_find(q->args, "x-single-active-consumer", &v) &&
                       v.type == 't' && v.v.b;
    q->dedup = dedup_from_args(q->args);
    if (d->exclusive) {
        q->owner = d->owner;
        DL_APPEND2(d->owner->exclusive, q, owner_prev, owner_next);
    }
    HASH_ADD_KEYPTR(hh, vh->queues, q->name, q->name_len, q);
    vh->nqueues++;
    if (durable) {
        HASH_ADD(qid_hh, vh->by_qid, qid, sizeof(q->qid), q);
        node_defs_changed(vh->node);
    }
    stream__init(q);
    return q;
}

int
vhost_queue_declare(struct vhost *vh, const struct queue_decl *d,
                    struct queue **out, struct vherr *err)
{
    /* RabbitMQ: an exclusive queue is never durable. */
    bool durable = d->durable && !d->exclusive;
    struct vh_owner *want = d->exclusive ? d->owner : NULL;
    struct queue *q;
    char r[400];

    if (d->passive)
        return vhost_queue_lookup(vh, d->name, d->owner, out, err);
    if (!d->server_named && bytes_has_prefix(d->name, "amq."))
        return vherr_set(err, AMQP_ACCESS_REFUSED,
                         "queue name '%.*s' contains reserved prefix 'amq.*'",
                         BYTES_FMT(d->name));
    if (d->owner && vhost_perm_check(vh, d->owner->user, PERM_CONFIGURE,
                                     "queue", d->name, err) != WR_OK)
        return WR_ERR;
    rs(r, sizeof(r), "queue", d->name, vh);
    q = vhost_queue_find(vh, d->name);
    if (q) {
        if (q->owner != want)
            return locked(err, d->name, vh);
        if (q->durable != durable)
            return field_mismatch(err, "durable", r, tf(durable),
                                  tf(q->durable));
        if (q->auto_delete != d->auto_delete)
            return field_mismatch(err, "auto_delete", r, tf(d->auto_delete),
                                  tf(q->auto_delete));
        if (args__equiv_queue(q->args, d->args, r, err) != WR_OK)
            return WR_ERR;
        q->used_us = node_now(vh->node); /* renews x-expires */
        *out = q;
        return WR_OK;
    }
    if (vh->max_queues >= 0 && vh->nqueues >= (uint64_t)vh->max_queues)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "cannot declare queue '%.*s': queue limit in vhost "
                         "'%s' (%lld) is reached",
                         BYTES_FMT(d->name), vh->name,
                         (long long)vh->max_queues);
    if (stream__check_decl(d, err) != WR_OK ||
        args__check_queue(d->args, r, d->durable, d->exclusive, d->auto_delete,
                          err) != WR_OK)
        return WR_ERR;
    *out = queue_create(vh, d, durable);
    vh->node->queues_created++;
    return WR_OK;
}

uint32_t
vhost_queue_delete(struct vhost *vh, struct queue *q)
{
    uint32_t n;

    WR_ASSERT(q->magic == QUEUE_MAGIC && !q->deleted);
    q->deleted = true;
    HASH_DEL(vh->queues, q);
    if (q->timed) {
        DL_DELETE2(vh->node->timed, q, timed_prev, timed_next);
        q->timed = false;
    }
    vh->nqueues--;
    vh->node->queues_deleted++;
    if (q->durable) {
        HASH_DELETE(qid_hh, vh->by_qid, q);
        node_defs_changed(vh->node);
        if (q->dedup)
            vhost__dedup_log_forget(vh, 'Q', bytes_of(q->name, q->name_len));
    }
    /* One record drops every logged message of the queue, ready or out
     * for delivery; their later acks are no-ops. */
    vhost__log_queue_delete(vh, q);
    if (q->owner)
        DL_DELETE2(q->owner->exclusive, q, owner_prev, owner_next);
    q->owner = NULL;
    queue__cancel_consumers(q);
    if (q->stream)
        stream__delete(q);
    binding__remove_all_in(vh, &q->bindings);
    n = queue__drop_ready(q, false);
    queue_unref(q);
    return n;
}

void
vhost_owner_release(struct vhost *vh, struct vh_owner *owner)
{
    while (owner->exclusive)
        vhost_queue_delete(vh, owner->exclusive);
}

/* ---- bindings */

/* The permission checks of a bind/unbind, in RabbitMQ's order
 * (binding_action): write on the destination, the default exchange
 * refused, read on the source. */
static int
binding_checks(struct vhost *vh, struct bytes src, struct bytes dest,
               bool dest_is_exchange, const struct vh_owner *owner,
               struct vherr *err)
{
    const char *user = owner ? owner->user : NULL;

    if (vhost_perm_check(vh, user, PERM_WRITE,
                         dest_is_exchange ? "exchange" : "queue", dest,
                         err) != WR_OK)
        return WR_ERR;
    if (src.len == 0 || (dest_is_exchange && dest.len == 0))
        return default_exchange_refused(err);
    return vhost_perm_check(vh, user, PERM_READ, "exchange", src, err);
}

/* Resolves source and destination of a bind/unbind in RabbitMQ's order:
 * permissions, then source, then destination, then the exclusive rule. */
static int
resolve_binding(struct vhost *vh, struct bytes src, struct bytes dest,
                bool dest_is_exchange, const struct vh_owner *owner,
                struct exchange **sx, struct xdest *xd, struct vherr *err)
{
    struct queue *q = NULL; /* gcc 12 -O3 cannot see it is set */
    struct exchange *dx;

    if (binding_checks(vh, src, dest, dest_is_exchange, owner, err) != WR_OK)
        return WR_ERR;
    *sx = vhost_exchange_find(vh, src);
    if (!*sx)
        return not_found(err, "exchange", src, vh);
    if (dest_is_exchange) {
        dx = vhost_exchange_find(vh, dest);
        if (!dx)
            return not_found(err, "exchange", dest, vh);
        *xd = (struct xdest){dx, true};
        return WR_OK;
    }
    if (vhost_queue_lookup(vh, dest, owner, &q, err) != WR_OK)
        return WR_ERR;
    *xd = (struct xdest){q, false};
    return WR_OK;
}

int
vhost_bind(struct vhost *vh, struct bytes src, struct bytes dest,
           bool dest_is_exchange, struct bytes key, struct bytes args,
           const struct vh_owner *owner, struct vherr *err)
{
    struct exchange *sx = NULL;
    struct xdest xd;
    struct buf why;
    int rc;

    if (resolve_binding(vh, src, dest, dest_is_exchange, owner, &sx, &xd,
                        err) != WR_OK)
        return WR_ERR;
    buf_init(&why);
    rc = exchange_check_binding_key(sx, key, &why);
    if (rc == WR_OK)
        rc = exchange_check_binding_args(sx, args, &why);
    if (rc != WR_OK) {
        vherr_set(err, AMQP_PRECONDITION_FAILED, "%.*s", (int)why.len,
                  (const char *)why.data);
        buf_fini(&why);
        return WR_ERR;
    }
    buf_fini(&why);
    binding__add(vh, sx, xd, key, args);
    return WR_OK;
}

int
vhost_unbind(struct vhost *vh, struct bytes src, struct bytes dest,
             bool dest_is_exchange, struct bytes key, struct bytes args,
             const struct vh_owner *owner, struct vherr *err)
{
    struct exchange *sx, *dx;
    struct queue *q = NULL;
    struct xdest xd;

    /* RabbitMQ 3.10: removing what does not exist (binding, source or
     * destination) succeeds; only a real binding to another
     * connection's exclusive queue is locked. */
    if (binding_checks(vh, src, dest, dest_is_exchange, owner, err) != WR_OK)
        return WR_ERR;
    sx = vhost_exchange_find(vh, src);
    if (!sx)
        return WR_OK;
    if (dest_is_exchange) {
        dx = vhost_exchange_find(vh, dest);
        if (!dx)
            return WR_OK;
        xd = (struct xdest){dx, true};
    } else {
        q = vhost_queue_find(vh, dest);
        if (!q)
            return WR_OK;
        xd = (struct xdest){q, false};
    }
    if (!binding__find(sx, xd, key, args))
        return WR_OK;
    if (q && q->owner && q->owner != owner)
        return locked(err, dest, vh);
    binding__remove(vh, sx, xd, key, args);
    return WR_OK;
}

/* ---- publish */

void
vhost_publish(struct vhost *vh, struct exchange *x, struct bytes rk,
              struct bytes headers, struct message *m,
              struct publish_result *res)
{
    vhost_publish_to(vh, x, rk, headers, m, NULL, NULL, res);
}

/* ---- deduplication at publish (x-message-deduplication, dedup.h) */

bool
vhost_exchange_dedup(const struct exchange *x, uint32_t *entries,
                     uint32_t *size, uint64_t *dropped)
{
    const struct dedup *d = ((const struct xinfo *)x->user)->dedup;
    struct dedup_stats ds;

    if (!d)
        return false;
    dedup_stats(d, &ds);
    *entries = ds.entries;
    *size = ds.size;
    *dropped = ds.dropped;
    return true;
}

static uint64_t
now_ms(const struct vhost *vh)
{
    return node_now(vh->node) / 1000;
}

/* A duplicate's confirm waits for its original's key to be durable too:
 * the journal's sync batch now open covers it (fsync = always). */
static void
duplicate_waits(struct vhost *vh, struct publish_result *res)
{
    if (vh->stream_sync && vh->node->opts.fsync == STORE_FSYNC_ALWAYS)
        res->sync = fsyncer_ticket(vh->stream_sync);
}

/* The exchange's cache, if it has one: true when m is a duplicate there
 * (res says so, with the original's LSN for the confirm). */
static bool
exchange_duplicate(struct vhost *vh, struct exchange *x, struct bytes headers,
                   struct message *m, struct publish_result *res)
{
    struct dedup *d = x ? ((struct xinfo *)x->user)->dedup : NULL;
    uint64_t lsn;

    if (!d || !dedup_check(d, headers, message_props(m), now_ms(vh), &lsn))
        return false;
    res->duplicate = true;
    res->lsn = lsn;
    duplicate_waits(vh, res);
    return true;
}

/* Leaves out of qs[0..n) the queues whose cache holds m's key. Returns
 * how many are left; the others' caches keep m's key for
 * remember_in_queue. */
static size_t
drop_queue_duplicates(struct vhost *vh, struct queue **qs, size_t n,
                      struct bytes headers, struct message *m,
                      struct publish_result *res)
{
    uint64_t lsn;
    size_t left = 0;

    for (size_t i = 0; i < n; i++) {
        struct dedup *d = qs[i]->dedup;

        if (d && dedup_check(d, headers, message_props(m), now_ms(vh), &lsn)) {
            res->duplicate = true;
            res->lsn = WR_MAX(res->lsn, lsn);
            duplicate_waits(vh, res);
            continue;
        }
        qs[left++] = qs[i];
    }
    return left;
}

/* q took m (logged at lsn): its cache remembers m's key, durably when
 * both are (dedup_log.c; res then waits for the key's sync). */
static void
remember_in_queue(struct vhost *vh, struct queue *q, uint64_t lsn,
                  struct publish_result *res)
{
    uint8_t h[16];
    uint64_t until, now = now_ms(vh);

    if (q->dedup && dedup_commit_out(q->dedup, now, lsn, h, &until) && lsn &&
        q->durable)
        vhost__dedup_log_key(vh, 'q', bytes_of(q->name, q->name_len), h, until,
                             now, res);
}

/* The first of qs[0..n) whose credit is used up: the publisher is to
 * wait for it (credit flow, queue.h). */
static void
note_credit(struct queue **qs, size_t n, struct publish_result *res)
{
    for (size_t i = 0; i < n && !res->flow_q; i++) {
        if (queue__backlog(qs[i]) >= QUEUE_CREDIT_HIGH &&
            queue_credit_exhausted(qs[i]))
            res->flow_q = qs[i];
    }
}

/* Logs m when it must be and pushes it to qs[0..n), n >= 1. */
static void
push_routed(struct vhost *vh, struct message *m, struct queue **qs, size_t n,
            struct publish_result *res)
{
    uint64_t lsn;

    /* Streams take it into their own logs (stream.c); replicated, their
     * appends take a position of the log (side.c) in res->lsn. */
    n = stream__publish(m, qs, n, res);
    if (n == 0)
        return;
    if (vh->node->lazy && vh->store) {
        lsn = vhost__publish_paged(vh, m, qs, n, &res->refused, &res->rejected);
        res->lsn = WR_MAX(res->lsn, lsn);
        res->nqueues += res->refused ? 0 : n;
        for (size_t i = 0; i < n && !res->refused && !res->rejected; i++)
            remember_in_queue(vh, qs[i], lsn, res);
        note_credit(qs, n, res);
        return;
    }
    /* Persistent and routed to durable queues: one record for all of
     * them, written before any queue takes it. */
    lsn = vhost__log_message(vh, m, qs, n, &res->refused);
    res->lsn = WR_MAX(res->lsn, lsn);
    if (res->refused)
        return;
    if (!m->id)
        m->id = vhost__next_id(vh);
    for (size_t i = 0; i < n; i++) {
        if (!queue_push(qs[i], m))
            res->rejected = true;
        else if (qs[i]->dedup)
            remember_in_queue(vh, qs[i], lsn, res);
        if (qs[i]->nconsumers && qs[i]->ready.n > 100000)
            res->feeds_waiting = true;
    }
    res->nqueues += n;
    note_credit(qs, n, res);
}

static void publish_keys(struct vhost *vh, struct exchange *x,
                         const struct bytes *rks, size_t nrk,
                         struct bytes headers, struct message *m,
                         bool (*keep)(void *arg, struct queue *q), void *arg,
                         struct publish_result *res);

void
vhost_publish_keys(struct vhost *vh, struct exchange *x,
                   const struct bytes *rks, size_t nrk, struct bytes headers,
                   struct message *m, struct publish_result *res)
{
    publish_keys(vh, x, rks, nrk, headers, m, NULL, NULL, res);
}

void
vhost_publish_to(struct vhost *vh, struct exchange *x, struct bytes rk,
                 struct bytes headers, struct message *m,
                 bool (*keep)(void *arg, struct queue *q), void *arg,
                 struct publish_result *res)
{
    publish_keys(vh, x, &rk, 1, headers, m, keep, arg, res);
}

/* The queues m goes to, by x's type or, for the default exchange, by
 * name: in vh->rs, or in *one when that is the only lookup. */
static size_t
route_keys(struct vhost *vh, struct exchange *x, const struct bytes *rks,
           size_t nrk, struct bytes headers, struct message *m,
           struct queue **one, struct queue ***qs, struct publish_result *res)
{
    if ((x == NULL || x->name_len == 0) && nrk == 1) {
        *one = vhost_queue_find(vh, rks[0]);
        *qs = one;
        return *one ? 1 : 0;
    }
    routeset_reset(&vh->rs);
    if (x == NULL || x->name_len == 0) {
        for (size_t i = 0; i < nrk; i++) {
            struct queue *q = vhost_queue_find(vh, rks[i]);

            if (q)
                routeset_add(&vh->rs, q);
        }
    } else {
        /* (the header is looked for only where it could matter) */
        vh->rs.hold_delayed = vh->delayed && delay__wanted(headers);
        exchange_route_keys(vh->xr, x, rks, nrk, headers, message_props(m),
                            &vh->rs);
        if (vh->rs.held_n)
            delay__hold_reached(vh, &vh->rs, headers, m, res);
    }
    *qs = (struct queue **)vh->rs.queues;
    return vh->rs.n;
}

static void
publish_keys(struct vhost *vh, struct exchange *x, const struct bytes *rks,
             size_t nrk, struct bytes headers, struct message *m,
             bool (*keep)(void *arg, struct queue *q), void *arg,
             struct publish_result *res)
{
    struct queue *one, **qs;
    uint64_t dup_lsn;
    size_t n;

    memset(res, 0, sizeof(*res));
    if (exchange_duplicate(vh, x, headers, m, res))
        return;
    if (x && x->type == EXCHANGE_DELAYED &&
        delay__publish(vh, x, headers, m, res)) {
        qs = NULL; /* held back: routed when due (delay.c) */
        n = 0;
    } else {
        n = route_keys(vh, x, rks, nrk, headers, m, &one, &qs, res);
    }
    if (keep) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
            if (keep(arg, qs[i]))
                qs[k++] = qs[i];
        }
        n = k;
    }
    n = drop_queue_duplicates(vh, qs, n, headers, m, res);
    dup_lsn = res->lsn;
    if (n > 0)
        push_routed(vh, m, qs, n, res);
    res->lsn = WR_MAX(res->lsn, dup_lsn);
    /* (A dead-lettering cycle back into x while pushing would have
     * replaced x's pending key: that key is then not remembered.) */
    if (x && ((struct xinfo *)x->user)->dedup && !res->refused &&
        !res->rejected) {
        uint8_t h[16];
        uint64_t until, now = now_ms(vh);

        if (dedup_commit_out(((struct xinfo *)x->user)->dedup, now, res->lsn, h,
                             &until) &&
            res->lsn && x->durable)
            vhost__dedup_log_key(vh, 'x', bytes_of(x->name, x->name_len), h,
                                 until, now, res);
    }
}
