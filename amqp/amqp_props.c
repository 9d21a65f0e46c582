/*
 * amqp_props.c: reading the basic-class content properties a broker acts
 * on, and RabbitMQ's publish-time rules for them (amqp_props.h).
 *
 * Every reader of a message's properties comes here, so that a property
 * means the same whether the message came from a channel, from the
 * management API or from the log at recovery: delivery-mode 2 is
 * persistent, priority is an octet, and an expiration is a TTL only when
 * RabbitMQ would accept it (digits after an optional sign, not
 * negative); anything else is no TTL.
 */
#include "amqp/amqp_props.h"
#include "amqp/ftable.h"

#include <stdio.h>

enum amqp_decode_status
amqp_props_read(struct bytes raw, struct amqp_props *out, const char **why)
{
    const struct amqp_basic_props *p = &out->p;
    enum amqp_decode_status st;

    st = amqp_basic_props_decode(raw.ptr, raw.len, &out->p, why);
    if (st != AMQP_DECODE_OK)
        return st;
    out->persistent =
        (p->flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && p->delivery_mode == 2;
    out->priority = (p->flags & AMQP_BASIC_PRIORITY_FLAG) ? p->priority : 0;
    out->ttl_ms = -1;
    if ((p->flags & AMQP_BASIC_EXPIRATION_FLAG) &&
        amqp_expiration_parse(p->expiration, &out->ttl_ms, NULL, 0) != WR_OK)
        out->ttl_ms = -1;
    return AMQP_DECODE_OK;
}

/* Formats err (when there is room for it) and returns WR_ERR. */
static int WR_PRINTF(3, 4)
    refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return WR_ERR;
}

int
amqp_expiration_parse(struct bytes e, int64_t *ms, char *err, size_t errlen)
{
    size_t i = 0;
    bool neg = false;
    int64_t v = 0;

    if (i < e.len && (e.ptr[i] == '-' || e.ptr[i] == '+'))
        neg = e.ptr[i++] == '-';
    if (i == e.len || e.ptr[i] < '0' || e.ptr[i] > '9')
        return refuse(err, errlen, "invalid expiration '%.*s': no_integer",
                      BYTES_FMT(e));
    for (; i < e.len && e.ptr[i] >= '0' && e.ptr[i] <= '9'; i++)
        v = v > INT64_MAX / 10 ? INT64_MAX : v * 10 + (e.ptr[i] - '0');
    if (i < e.len)
        return refuse(err, errlen,
                      "invalid expiration '%.*s': {leftover_string,"
                      "\"%.*s\"}",
                      BYTES_FMT(e), (int)(e.len - i), (const char *)e.ptr + i);
    if (neg && v > 0)
        return refuse(err, errlen,
                      "invalid expiration '%.*s': {value_negative,-%lld}",
                      BYTES_FMT(e), (long long)v);
    *ms = v;
    return WR_OK;
}

int
amqp_props_check_user(const struct amqp_props *p, const char *user, char *err,
                      size_t errlen)
{
    if (!(p->p.flags & AMQP_BASIC_USER_ID_FLAG) ||
        bytes_eq_str(p->p.user_id, user))
        return WR_OK;
    return refuse(err, errlen,
                  "user_id property set to '%.*s' but authenticated user "
                  "was '%s'",
                  BYTES_FMT(p->p.user_id), user);
}

int
amqp_props_check(const struct amqp_props *p, const char *user, char *err,
                 size_t errlen)
{
    int64_t ms;

    if (amqp_props_check_user(p, user, err, errlen) != WR_OK)
        return WR_ERR;
    if ((p->p.flags & AMQP_BASIC_EXPIRATION_FLAG) &&
        amqp_expiration_parse(p->p.expiration, &ms, err, errlen) != WR_OK)
        return WR_ERR;
    if ((p->p.flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
        p->p.delivery_mode != 1 && p->p.delivery_mode != 2)
        return refuse(err, errlen,
                      "invalid message: {delivery_mode_unknown,%u}",
                      p->p.delivery_mode);
    return WR_OK;
}

int
amqp_props_put_long_header(struct bytes raw, const char *key, int64_t v,
                           struct buf *out)
{
    struct amqp_basic_props p;
    struct fvalue fv = {.type = 'l', .v.i = v};
    size_t h0 = out->len, p0;

    if (amqp_basic_props_decode(raw.ptr, raw.len, &p, NULL) != AMQP_DECODE_OK)
        return WR_ERR;
    /* the new headers table, then the properties after it, moved down
       over it: one buffer, never reallocated between (room for both) */
    buf_reserve(out, 2 * raw.len + 2 * strlen(key) + 64);
    ftable_put_set(out,
                   (p.flags & AMQP_BASIC_HEADERS_FLAG) ? p.headers
                                                       : bytes_of(NULL, 0),
                   key, &fv);
    p.flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = bytes_of(out->data + h0 + 4, out->len - h0 - 4);
    p0 = out->len;
    amqp_basic_props_encode(&p, out);
    memmove(out->data + h0, out->data + p0, out->len - p0);
    out->len = h0 + (out->len - p0);
    return WR_OK;
}
