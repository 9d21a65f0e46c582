/*
 * args.c: queue and exchange x-arguments: validation at declare time and
 * the equivalence check on redeclare, with RabbitMQ 3.10's texts.
 *
 * Examples of the texts (all 406 PRECONDITION_FAILED):
 *   invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}
 *   invalid arg 'x-expires' for queue 'q' in vhost '/': "expected integer, got
 * longstr" inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/':
 * received '2000' but current is '1000' inequivalent arg 'x-message-ttl' for
 * queue 'q' in vhost '/': received none but current is the value '1000' of type
 * 'signedint'
 *
 * Only the keys RabbitMQ knows are validated or compared, and the
 * deduplication arguments (x-message-deduplication, x-cache-size,
 * x-cache-ttl, x-deduplication-header: dedup.h), in RabbitMQ's style:
 *   invalid arg 'x-cache-size' for queue 'q' in vhost '/': {value_zero,0}
 *   invalid arg 'x-deduplication-header' for exchange 'x' in vhost '/':
 * {unacceptable_type,signedint}
 * Other keys are kept as given and ignored, as RabbitMQ does.
 *
 * Queue types (x-queue-type): classic, and quorum, which on a single
 * node is a durable classic queue with a delivery limit (queue.c). As in
 * RabbitMQ 3.10, the values of the keys the type knows are checked
 * first (in RabbitMQ's order), then the first key the type does not take
 * (in the table's order) gets "... of queue type rabbit_quorum_queue",
 * then a quorum queue must be durable, not exclusive, not auto-delete:
 *   invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type
 * rabbit_quorum_queue invalid property 'non-durable' for queue 'q' in vhost '/'
 * Stream queues (stream.c) follow the same rules with their own keys
 * (x-max-age, x-stream-max-segment-size-bytes, x-initial-cluster-size,
 * x-max-length-bytes) and "rabbit_stream_queue".
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"
#include "vhost/stream_int.h"

#include <stdio.h>

#define MAX_EXPIRY UINT64_C(4294967295)

enum arg_check {
    ARG_EXPIRES,     /* integer > 0 */
    ARG_TTL,         /* integer >= 0 */
    ARG_NON_NEG_INT, /* integer >= 0 */
    ARG_PRIORITY,    /* integer 0..255 */
    ARG_DLX,         /* longstr (invalid type text) */
    ARG_DLRK,        /* longstr, and needs a DLX */
    ARG_OVERFLOW,    /* drop-head | reject-publish | reject-publish-dlx */
    ARG_QUEUE_MODE,  /* default | lazy */
    ARG_BOOL,        /* bool */
    ARG_QUEUE_TYPE,  /* classic | quorum | stream */
    ARG_MAX_AGE,     /* "7D", "1h", ...: stream__parse_interval */
    ARG_POS_INT,     /* integer > 0 (x-quorum-initial-group-size) */
    ARG_DL_STRATEGY, /* at-most-once | at-least-once */
    ARG_LOCATOR,     /* client-local | balanced | random | least-leaders */
    ARG_CACHE_SIZE,  /* integer 1..2^31-1 */
    ARG_STR,         /* longstr */
    ARG_ANY,         /* compared, not checked */
};

/* The queue types a key is valid for. */
enum { QT_CLASSIC = 1, QT_QUORUM = 2, QT_BOTH = 3, QT_STREAM = 4 };
#define QT_ALL (QT_BOTH | QT_STREAM)

static const struct {
    const char *key;
    enum arg_check check;
    int types;
} queue_args[] = {
    {"x-expires", ARG_EXPIRES, QT_BOTH},
    {"x-message-ttl", ARG_TTL, QT_BOTH},
    {"x-dead-letter-exchange", ARG_DLX, QT_BOTH},
    {"x-dead-letter-routing-key", ARG_DLRK, QT_BOTH},
    {"x-max-length", ARG_NON_NEG_INT, QT_BOTH},
    {"x-max-length-bytes", ARG_NON_NEG_INT, QT_ALL},
    {"x-max-in-memory-length", ARG_NON_NEG_INT, QT_QUORUM},
    {"x-max-in-memory-bytes", ARG_NON_NEG_INT, QT_QUORUM},
    {"x-max-priority", ARG_PRIORITY, QT_CLASSIC},
    {"x-overflow", ARG_OVERFLOW, QT_BOTH},
    {"x-queue-mode", ARG_QUEUE_MODE, QT_CLASSIC},
    {"x-single-active-consumer", ARG_BOOL, QT_BOTH},
    {"x-queue-type", ARG_QUEUE_TYPE, QT_ALL},
    {"x-quorum-initial-group-size", ARG_POS_INT, QT_QUORUM},
    {"x-max-age", ARG_MAX_AGE, QT_STREAM},
    {"x-stream-max-segment-size-bytes", ARG_NON_NEG_INT, QT_STREAM},
    {"x-initial-cluster-size", ARG_POS_INT, QT_STREAM},
    {"x-queue-leader-locator", ARG_LOCATOR, QT_QUORUM | QT_STREAM},
    {"x-dead-letter-strategy", ARG_DL_STRATEGY, QT_QUORUM},
    /* RabbitMQ 3.10 does not check its value */
    {"x-delivery-limit", ARG_ANY, QT_QUORUM},
    {"x-queue-master-locator", ARG_ANY, QT_CLASSIC},
    {"x-queue-version", ARG_ANY, QT_CLASSIC},
    {"x-consumer-timeout", ARG_NON_NEG_INT, QT_ALL},
    /* deduplication (dedup.h) */
    {"x-message-deduplication", ARG_BOOL, QT_ALL},
    {"x-cache-size", ARG_CACHE_SIZE, QT_ALL},
    {"x-cache-ttl", ARG_TTL, QT_ALL},
    {"x-deduplication-header", ARG_STR, QT_ALL},
};

/* The exchange arguments validated and compared besides
 * alternate-exchange (whose texts differ): deduplication. */
static const struct {
    const char *key;
    enum arg_check check;
} exchange_args[] = {
    {"x-message-deduplication", ARG_BOOL},
    {"x-cache-size", ARG_CACHE_SIZE},
    {"x-cache-ttl", ARG_TTL},
    {"x-deduplication-header", ARG_STR},
};

static int invalid(struct vherr *err, const char *key, const char *rs,
                   const char *fmt, ...) WR_PRINTF(4, 5);

static int
invalid(struct vherr *err, const char *key, const char *rs, const char *fmt,
        ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return vherr_set(err, AMQP_PRECONDITION_FAILED,
                     "invalid arg '%s' for %s: %s", key, rs, why);
}

static int
check_int(const struct fvalue *v, const char *key, const char *rs, int64_t min,
          uint64_t max, struct vherr *err)
{
    int64_t i;

    if (!fvalue_get_int(v, &i))
        return invalid(err, key, rs, "\"expected integer, got %s\"",
                       fvalue_type_name(v->type));
    if (i < 0)
        return invalid(err, key, rs, "{value_negative,%lld}", (long long)i);
    if (i == 0 && min > 0)
        return invalid(err, key, rs, "{value_zero,0}");
    if ((uint64_t)i > max)
        return invalid(err, key, rs,
                       max == 255 ? "{max_value_exceeded,%lld}"
                                  : "{value_too_large,%lld}",
                       (long long)i);
    return WR_OK;
}

static bool
str_in(const struct fvalue *v, const char *const *allowed)
{
    for (; *allowed; allowed++) {
        if (bytes_eq_str(v->v.str, *allowed))
            return true;
    }
    return false;
}

static int
check_one(const char *key, enum arg_check check, const struct fvalue *v,
          struct bytes args, const char *rs, struct vherr *err)
{
    static const char *const overflow[] = {"drop-head", "reject-publish",
                                           "reject-publish-dlx", NULL};
    static const char *const modes[] = {"default", "lazy", NULL};
    static const char *const types[] = {"classic", "quorum", "stream", NULL};
    static const char *const strategies[] = {"at-most-once", "at-least-once",
                                             NULL};
    static const char *const locators[] = {"client-local", "balanced", "random",
                                           "least-leaders", NULL};
    struct fvalue dlx;

    switch (check) {
    case ARG_EXPIRES:
        return check_int(v, key, rs, 1, MAX_EXPIRY, err);
    case ARG_TTL:
        return check_int(v, key, rs, 0, MAX_EXPIRY, err);
    case ARG_NON_NEG_INT:
        return check_int(v, key, rs, 0, INT64_MAX, err);
    case ARG_PRIORITY:
        return check_int(v, key, rs, 0, 255, err);
    case ARG_DLX:
        if (!fvalue_is_str(v))
            return vherr_set(err, AMQP_PRECONDITION_FAILED,
                             "invalid type '%s' for arg '%s' in %s",
                             fvalue_type_name(v->type), key, rs);
        return WR_OK;
    case ARG_DLRK:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        if (!ftable_find(args, "x-dead-letter-exchange", &dlx))
            return invalid(err, key, rs, "routing_key_but_no_dlx_defined");
        return WR_OK;
    case ARG_OVERFLOW:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        if (!str_in(v, overflow))
            return invalid(err, key, rs, "invalid_overflow");
        return WR_OK;
    case ARG_QUEUE_MODE:
        if (!fvalue_is_str(v) || !str_in(v, modes))
            return invalid(err, key, rs, "\"unsupported queue mode '%.*s'\"",
                           fvalue_is_str(v) ? (int)v->v.str.len : 0,
                           fvalue_is_str(v) ? (const char *)v->v.str.ptr : "");
        return WR_OK;
    case ARG_BOOL:
        if (v->type != 't')
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        return WR_OK;
    case ARG_QUEUE_TYPE:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        if (!str_in(v, types))
            return invalid(err, key, rs, "\"unsupported queue type '%.*s'\"",
                           (int)v->v.str.len, (const char *)v->v.str.ptr);
        return WR_OK;
    case ARG_POS_INT:
        return check_int(v, key, rs, 1, INT64_MAX, err);
    case ARG_MAX_AGE:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        if (!stream__parse_interval(v->v.str))
            return invalid(err, key, rs, "invalid_max_age");
        return WR_OK;
    case ARG_DL_STRATEGY:
    case ARG_LOCATOR:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        if (!str_in(v, check == ARG_LOCATOR ? locators : strategies))
            return invalid(err, key, rs, "%s",
                           check == ARG_LOCATOR ? "invalid_queue_locator_arg"
                                                : "invalid_dlx_strategy");
        return WR_OK;
    case ARG_CACHE_SIZE:
        return check_int(v, key, rs, 1, INT32_MAX, err);
    case ARG_STR:
        if (!fvalue_is_str(v))
            return invalid(err, key, rs, "{unacceptable_type,%s}",
                           fvalue_type_name(v->type));
        return WR_OK;
    case ARG_ANY:
        return WR_OK;
    }
    return WR_OK;
}

bool
args__is_quorum(struct bytes args)
{
    struct fvalue v;

    return ftable_find(args, "x-queue-type", &v) && fvalue_is_str(&v) &&
           bytes_eq_str(v.v.str, "quorum");
}

/* The first key of args (in its order) that the type does not take. */
static int
check_type_keys(struct bytes args, int type, const char *rs, struct vherr *err)
{
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;

    ftable_iter_init(&it, args);
    while (ftable_next(&it, &key, &v)) {
        for (size_t i = 0; i < WR_ARRAY_LEN(queue_args); i++) {
            if (bytes_eq_str(key, queue_args[i].key) &&
                !(queue_args[i].types & type))
                return vherr_set(err, AMQP_PRECONDITION_FAILED,
                                 "invalid arg '%s' for %s of queue type %s",
                                 queue_args[i].key, rs,
                                 type == QT_QUORUM   ? "rabbit_quorum_queue"
                                 : type == QT_STREAM ? "rabbit_stream_queue"
                                                     : "rabbit_classic_queue");
        }
    }
    return WR_OK;
}

int
args__check_queue(struct bytes args, const char *rs, bool durable,
                  bool exclusive, bool auto_delete, struct vherr *err)
{
    int type = args__is_quorum(args)       ? QT_QUORUM
               : stream__is_declared(args) ? QT_STREAM
                                           : QT_CLASSIC;
    const char *prop = NULL;
    struct fvalue v;

    for (size_t i = 0; i < WR_ARRAY_LEN(queue_args); i++) {
        if ((queue_args[i].types & type) &&
            ftable_find(args, queue_args[i].key, &v) &&
            check_one(queue_args[i].key, queue_args[i].check, &v, args, rs,
                      err) != WR_OK)
            return WR_ERR;
    }
    if (check_type_keys(args, type, rs, err) != WR_OK)
        return WR_ERR;
    if (type == QT_QUORUM || type == QT_STREAM)
        prop = auto_delete ? "auto-delete"
               : exclusive ? "exclusive-owner"
               : !durable  ? "non-durable"
                           : NULL;
    if (prop)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "invalid property '%s' for %s", prop, rs);
    return WR_OK;
}

/* "the value '1000' of type 'signedint'" or "none" */
static void
describe(const struct fvalue *v, bool present, struct buf *out)
{
    if (!present) {
        buf_printf(out, "none");
        return;
    }
    buf_printf(out, "the value '");
    fvalue_format(v, out);
    buf_printf(out, "' of type '%s'", fvalue_type_name(v->type));
}

/* Compares one key; RabbitMQ's assert_args_equivalence1. */
static int
equiv_one(struct bytes cur, struct bytes req, const char *key, const char *rs,
          struct vherr *err)
{
    struct fvalue a, b;
    bool has_a = ftable_find(cur, key, &a);
    bool has_b = ftable_find(req, key, &b);
    struct buf t;
    int rc;

    if (!has_a && !has_b)
        return WR_OK;
    if (has_a && has_b && fvalue_eq(&a, &b))
        return WR_OK;
    buf_init(&t);
    if (has_a && has_b) {
        buf_printf(&t, "received '");
        fvalue_format(&b, &t);
        buf_printf(&t, "' but current is '");
        fvalue_format(&a, &t);
        buf_printf(&t, "'");
    } else {
        buf_printf(&t, "received ");
        describe(&b, has_b, &t);
        buf_printf(&t, " but current is ");
        describe(&a, has_a, &t);
    }
    rc = vherr_set(err, AMQP_PRECONDITION_FAILED,
                   "inequivalent arg '%s' for %s: %.*s", key, rs, (int)t.len,
                   (const char *)t.data);
    buf_fini(&t);
    return rc;
}

int
args__equiv_queue(struct bytes cur, struct bytes req, const char *rs,
                  struct vherr *err)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(queue_args); i++) {
        if (equiv_one(cur, req, queue_args[i].key, rs, err) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

int
args__equiv_exchange(struct bytes cur, struct bytes req, const char *rs,
                     struct vherr *err)
{
    if (equiv_one(cur, req, "alternate-exchange", rs, err) != WR_OK)
        return WR_ERR;
    for (size_t i = 0; i < WR_ARRAY_LEN(exchange_args); i++) {
        if (equiv_one(cur, req, exchange_args[i].key, rs, err) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

int
args__check_exchange(struct bytes args, enum exchange_type t, const char *rs,
                     struct vherr *err)
{
    struct fvalue v;
    struct buf why;
    int rc;

    if (ftable_find(args, "alternate-exchange", &v) && !fvalue_is_str(&v))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "invalid type '%s' for arg 'alternate-exchange' in %s",
                         fvalue_type_name(v.type), rs);
    for (size_t i = 0; i < WR_ARRAY_LEN(exchange_args); i++) {
        if (ftable_find(args, exchange_args[i].key, &v) &&
            check_one(exchange_args[i].key, exchange_args[i].check, &v, args,
                      rs, err) != WR_OK)
            return WR_ERR;
    }
    /* The type's own arguments (x-consistent-hash: hash-header, ...). */
    buf_init(&why);
    rc = exchange_check_decl_args(t, args, &why);
    if (rc != WR_OK)
        vherr_set(err, AMQP_PRECONDITION_FAILED, "%.*s", (int)why.len,
                  (const char *)why.data);
    buf_fini(&why);
    return rc;
}
