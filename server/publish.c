/*
 * publish.c: a channel's publishing side: content assembly, the checks
 * of a publish, routing it, and publisher confirms.
 *
 * Content assembly: basic.publish -> CS_HEADER -> (content header)
 * CS_BODY -> (body frames until body-size bytes) -> publish. The message
 * is allocated once, when the header gives its size (checked against
 * max_message_size first), and grows as body frames arrive.
 *
 * Checks, in RabbitMQ's order: write permission on the exchange (the
 * last exchange allowed is cached until permissions change), the
 * exchange exists and is not internal, the properties
 * (amqp_props_check). Under an alarm the publisher is blocked at the
 * message boundary.
 *
 * Confirms: each publish of a confirming channel takes a sequence number
 * in its confirm list (confirm.c). A channel with publishes waiting for
 * the log is on the server's waiting list; when a vhost's durable LSN
 * moves (publish_durable_advanced) those channels flush their confirms
 * in the prepare pass. A tx.commit whose persistent messages are not
 * durable holds its commit-ok, and the connection's input, the same way.
 */
#include "server/channel.h"

#include "amqp/amqp_props.h"
#include "amqp/ftable.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- confirms */

static void
wait_add(struct channel *ch)
{
    if (ch->waiting)
        return;
    ch->waiting = true;
    ch->wait_prev = NULL;
    ch->wait_next = srv->waiting;
    if (srv->waiting)
        srv->waiting->wait_prev = ch;
    srv->waiting = ch;
}

static void
wait_remove(struct channel *ch)
{
    if (!ch->waiting)
        return;
    ch->waiting = false;
    if (ch->wait_prev)
        ch->wait_prev->wait_next = ch->wait_next;
    else
        srv->waiting = ch->wait_next;
    if (ch->wait_next)
        ch->wait_next->wait_prev = ch->wait_prev;
}

/* A pending confirm that is a basic.nack whatever the log does. */
#define CONFIRM_NACK UINT64_MAX

/* Sends the answer confirm_settle hands over. */
static void
send_answer(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct channel *ch = arg;
    struct amqp_method m = {.id = ack ? AMQP_BASIC_ACK : AMQP_BASIC_NACK};

    if (ack) {
        m.u.basic_ack.delivery_tag = tag;
        m.u.basic_ack.multiple = multiple;
        /* Tags are the sequence numbers: an ack covers every publish
         * after the last one answered (a nack covers only its own). */
        ch->st.confirm += multiple ? tag - ch->confirm_answered : 1;
    } else {
        m.u.basic_nack.delivery_tag = tag;
        m.u.basic_nack.multiple = multiple;
    }
    ch->confirm_answered = tag;
    conn_send_method(ch->conn, ch->id, &m);
}

/* The commit-ok a tx.commit holds goes out once its records are durable;
 * a failed log fails the connection instead. Returns false when it did. */
static bool
flush_commit(struct channel *ch, struct vhost *vh)
{
    struct amqp_method ok = {.id = AMQP_TX_COMMIT_OK};

    bool log_wait = ch->commit_lsn > vhost_durable_lsn(vh);
    bool sync_wait = ch->commit_sync > vhost_streams_durable(vh);

    if (!ch->commit_held)
        return true;
    if (!log_wait && !sync_wait) {
        ch->commit_held = false;
        conn_send_method(ch->conn, ch->id, &ok);
        conn_release_input(ch->conn);
    } else if ((log_wait && vhost_log_failed(vh)) ||
               (sync_wait && vhost_streams_failed(vh))) {
        ch->commit_held = false;
        conn_fail(ch->conn, AMQP_INTERNAL_ERROR, AMQP_TX_COMMIT,
                  "the message log failed; the transaction's persistent "
                  "messages may not be on disk");
        return false;
    }
    return true;
}

void
publish_flush_confirms(struct channel *ch)
{
    struct vhost *vh = ch->conn->vh;

    ch->confirm_pending = false;
    if (ch->state != CH_OPEN)
        return;
    struct confirm_durable d = {
        .lsn = vhost_durable_lsn(vh),
        .sync = vhost_streams_durable(vh),
        .log_failed = vhost_log_failed(vh),
        .sync_failed = vhost_streams_failed(vh),
    };

    confirm_settle(&ch->confirms, &d, send_answer, ch);
    if (!flush_commit(ch, vh))
        return;
    if (confirm_waiting(&ch->confirms) == 0 && !ch->commit_held)
        wait_remove(ch);
}

/* A publish of a confirming channel was refused (nack) or waits for the
 * log (lsn) or the stream sync (sync); either way its answer is due at
 * the next flush. */
static void
confirm_later(struct channel *ch, uint64_t seq, uint64_t lsn, uint64_t sync)
{
    if (lsn == CONFIRM_NACK)
        confirm_refuse(&ch->confirms, seq);
    else
        confirm_wait(&ch->confirms, seq, lsn, sync);
    wait_add(ch);
}

void
publish_durable_advanced(struct vhost *vh)
{
    for (struct channel *ch = srv->waiting; ch; ch = ch->wait_next) {
        if (ch->conn->vh == vh) {
            ch->confirm_pending = true;
            conn_pending(ch->conn);
        }
    }
}

void
publish_hold_commit(struct channel *ch, uint64_t lsn, uint64_t sync)
{
    ch->commit_lsn = lsn;
    ch->commit_sync = sync;
    ch->commit_held = true;
    ch->conn->input_held = true;
    wait_add(ch);
}

void
publish_fini(struct channel *ch)
{
    wait_remove(ch);
    buf_fini(&ch->pub_bcc);
    if (ch->commit_held)
        conn_release_input(ch->conn);
    confirm_fini(&ch->confirms);
}

/* ---- publishing */

static void
send_return(struct channel *ch, struct message *msg)
{
    struct amqp_method m = {.id = AMQP_BASIC_RETURN};

    m.u.basic_return.reply_code = AMQP_NO_ROUTE;
    m.u.basic_return.reply_text = BYTES_LIT("NO_ROUTE");
    m.u.basic_return.exchange = message_exchange(msg);
    m.u.basic_return.routing_key = message_rk(msg);
    conn_send_content(ch->conn, ch->id, &m, msg);
}

/* The longstr elements of an array (a CC or BCC header) go to keys. */
static void
add_keys(struct bytes arr, struct bytes **keys, size_t *n, size_t *cap)
{
    struct farray_iter it;
    struct fvalue v;

    farray_iter_init(&it, arr);
    while (farray_next(&it, &v)) {
        if (v.type != 'S' || v.v.str.len > 255)
            continue;
        if (*n == *cap) {
            *cap *= 2;
            *keys = xrealloc(*keys, *cap * sizeof(**keys));
        }
        (*keys)[(*n)++] = v.v.str;
    }
}

uint64_t
publish_message(struct channel *ch, struct exchange *x, struct message *msg,
                bool mandatory, struct bytes bcc)
{
    static struct bytes *keys;
    static size_t cap;
    struct amqp_basic_props props;
    struct publish_result res;
    struct fvalue cc;
    static uint64_t last_warn;
    size_t nkeys = 1;

    if (amqp_basic_props_decode(message_props(msg).ptr, msg->props_len, &props,
                                NULL) != AMQP_DECODE_OK)
        props.headers = BYTES_NULL; /* checked when the header arrived */
    if (!keys) {
        cap = 8;
        keys = xmalloc(cap * sizeof(*keys));
    }
    /* The routing keys: the publish's, then CC's, then BCC's. */
    keys[0] = message_rk(msg);
    if (props.headers.len && ftable_find(props.headers, "CC", &cc) &&
        cc.type == 'A')
        add_keys(cc.v.str, &keys, &nkeys, &cap);
    if (bcc.len)
        add_keys(bcc, &keys, &nkeys, &cap);
    reply_route(x, msg);
    vhost_publish_keys(ch->conn->vh, x, keys, nkeys, props.headers, msg, &res);
    ch->st.publish++;
    x->stat_publish_in++;
    x->stat_publish_out += res.nqueues;
    if (res.refused) {
        /* The log failed or the disk is full: the message went nowhere
         * (no queue has it). A confirming publisher gets basic.nack;
         * others can only be told by the log. */
        ch->tx_refused = ch->tx;
        if (ch->confirm) {
            confirm_later(ch, confirm_next(&ch->confirms), CONFIRM_NACK, 0);
            ch->confirm_pending = true;
            conn_pending(ch->conn);
        } else if (!ch->tx && wr_now_ms() - last_warn > 5000) {
            const char *why = vhost_log_refusal(ch->conn->vh);

            last_warn = wr_now_ms();
            log_err("vhost '%s': persistent message refused: %s",
                    vhost_name(ch->conn->vh), why ? why : "the log refused it");
        }
        message_unref(msg);
        return 0;
    }
    if (res.feeds_waiting)
        ch->conn->feeding = true;
    if (res.flow_q)
        flow_wait(ch->conn, res.flow_q);
    /* A duplicate dropped by x-message-deduplication is not returned:
     * the broker took it (and confirms it, as the plugin does). */
    if (res.nqueues == 0 && mandatory && !res.duplicate) {
        send_return(ch, msg);
        ch->st.return_unroutable++;
    } else if (res.nqueues == 0) {
        ch->st.drop_unroutable++;
    }
    if (ch->tx)
        ch->tx_sync = WR_MAX(ch->tx_sync, res.sync);
    if (ch->confirm) {
        uint64_t seq = confirm_next(&ch->confirms);

        if (res.rejected) /* a queue at its limit refused it */
            confirm_later(ch, seq, CONFIRM_NACK, 0);
        else if (res.lsn > vhost_durable_lsn(ch->conn->vh) ||
                 res.sync > vhost_streams_durable(ch->conn->vh))
            confirm_later(ch, seq, res.lsn, res.sync);
        ch->confirm_pending = true;
        conn_pending(ch->conn);
    }
    message_unref(msg);
    return res.lsn;
}

/* RabbitMQ's publish-time checks of the properties (amqp_props_check).
 * Stamps the message's publish time. */
static int
check_properties(struct channel *ch, struct message *msg)
{
    struct amqp_props p;
    char err[600];

    if (amqp_props_read(message_props(msg), &p, NULL) != AMQP_DECODE_OK)
        return WR_OK; /* validated when the header arrived */
    if (amqp_props_check(&p, ch->conn->user, err, sizeof(err)) != WR_OK)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH, "%s",
                         err);
    msg->ts_us = node_now(srv->node);
    return WR_OK;
}

/* Write permission on the exchange, checked first as RabbitMQ does. The
 * last exchange allowed is cached until permissions change, so a
 * publisher pays for the regular expression once. */
static int
check_write(struct channel *ch, struct bytes x)
{
    uint64_t gen = node_perm_gen(srv->node);
    struct vherr err;

    if (ch->write_ok_gen == gen && ch->write_ok_len == x.len &&
        memcmp(ch->write_ok, x.ptr, x.len) == 0)
        return WR_OK;
    if (vhost_perm_check(ch->conn->vh, ch->conn->user, PERM_WRITE, "exchange",
                         x, &err) != WR_OK)
        return chan_fail_vherr(ch, &err, AMQP_BASIC_PUBLISH);
    ch->write_ok_gen = gen;
    ch->write_ok_len = (uint8_t)x.len;
    memcpy(ch->write_ok, x.ptr, x.len);
    return WR_OK;
}

/* The last body byte arrived: route it (or hold it for tx.commit). */
static int
content_complete(struct channel *ch)
{
    struct message *msg = ch->msg;
    struct exchange *x;

    ch->msg = NULL;
    ch->cs = CS_IDLE;
    /* Under an alarm, stop reading this publisher at a message boundary:
     * this message goes through, the next waits. */
    if (srv->alarms && !ch->conn->blocked && alarm_should_block(ch->conn))
        alarm_block(ch->conn);
    if (check_write(ch, message_exchange(msg)) != WR_OK) {
        message_unref(msg);
        return WR_ERR;
    }
    x = vhost_exchange_find(ch->conn->vh, message_exchange(msg));
    if (!x) {
        struct bytes name = message_exchange(msg);
        message_unref(msg);
        return chan_fail(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH,
                         "no exchange '%.*s' in vhost '%s'", BYTES_FMT(name),
                         vhost_name(ch->conn->vh));
    }
    if (x->internal) {
        message_unref(msg);
        return chan_fail(ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_PUBLISH,
                         "cannot publish to internal exchange '%s' in vhost "
                         "'%s'",
                         x->name, vhost_name(ch->conn->vh));
    }
    if (ch->pub_no_reply) {
        message_unref(msg);
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                         "fast reply consumer does not exist");
    }
    if (check_properties(ch, msg) != WR_OK) {
        message_unref(msg);
        return WR_ERR;
    }
    if (ch->pub_bad_route) {
        message_unref(msg);
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                         "invalid message: {unacceptable_type_in_header,"
                         "\"%s\",%s}",
                         ch->pub_bad_route, fvalue_type_name(ch->pub_bad_type));
    }
    if (ch->tx) {
        chan_tx_add_publish(ch, msg, ch->pub_mandatory,
                            buf_bytes(&ch->pub_bcc));
        return WR_OK;
    }
    publish_message(ch, x, msg, ch->pub_mandatory, buf_bytes(&ch->pub_bcc));
    return WR_OK;
}

/*
 * Sender-selected distribution (RabbitMQ's header_routes): a CC or BCC
 * header must be an array, whose longstr elements are routing keys of
 * the publish besides its own; anything else is refused once the
 * content is in (pub_bad_route). BCC is taken out of the message (into
 * ch->pub_bcc, for routing), its other headers kept in order; hdr gets
 * the new table. Returns true when p's headers changed.
 */
static bool
take_routing_headers(struct channel *ch, struct amqp_basic_props *p,
                     struct buf *hdr)
{
    static const char *const keys[] = {"CC", "BCC"};
    struct ftable_iter it;
    struct bytes key;
    struct fvalue v;
    size_t mark;

    ch->pub_bcc.len = 0;
    ch->pub_bad_route = NULL;
    if (!(p->flags & AMQP_BASIC_HEADERS_FLAG))
        return false;
    for (size_t i = 0; i < 2; i++) {
        if (ftable_find(p->headers, keys[i], &v) && v.type != 'A') {
            ch->pub_bad_route = keys[i];
            ch->pub_bad_type = v.type;
            return false;
        }
    }
    if (!ftable_find(p->headers, "BCC", &v))
        return false;
    buf_append(&ch->pub_bcc, v.v.str.ptr, v.v.str.len);
    mark = ftable_begin(hdr);
    ftable_iter_init(&it, p->headers);
    while (ftable_next(&it, &key, &v)) {
        if (!bytes_eq_str(key, "BCC"))
            fenc_value_key(hdr, key, &v);
    }
    ftable_end(hdr, mark);
    p->headers = bytes_of(hdr->data + mark + 4, hdr->len - mark - 4);
    return true;
}

/* The message a content header starts. Before anything else sees the
 * properties, a request's reply_to of amq.rabbitmq.reply-to is rewritten
 * to name the channel's reply consumer (reply_to.c) and a BCC header is
 * taken out. */
static struct message *
new_message(struct channel *ch, struct amqp_props *props, struct bytes raw,
            uint64_t size)
{
    struct amqp_basic_props p = props->p;
    struct message *msg;
    struct buf hdr, rewritten;
    char to[256];
    bool changed;
    int r;

    buf_init(&hdr);
    buf_init(&rewritten);
    r = reply_rewrite(ch, &p, to, sizeof(to));
    ch->pub_no_reply = r < 0;
    changed = take_routing_headers(ch, &p, &hdr) || r > 0;
    if (changed) {
        amqp_basic_props_encode(&p, &rewritten);
        raw = buf_bytes(&rewritten);
    }
    msg = message_new(bytes_of(ch->pub_exchange, ch->pub_exchange_len),
                      bytes_of(ch->pub_rk, ch->pub_rk_len), raw, size);
    if (changed)
        amqp_props_read(message_props(msg), props, NULL);
    message_set_props(msg, props);
    buf_fini(&rewritten);
    buf_fini(&hdr);
    return msg;
}

int
publish_header(struct channel *ch, const struct frame *f)
{
    struct amqp_props props;
    uint16_t class_id;
    uint64_t size;
    struct bytes raw;
    const char *why = NULL;

    if (frame_parse_content_header(f->payload, &class_id, &size, &raw) != WR_OK)
        return conn_fail_unknown_frame(ch->conn, f);
    if (class_id != AMQP_CLASS_BASIC)
        return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                         "expected content header for class %u, got one "
                         "for class %u instead",
                         AMQP_CLASS_BASIC, class_id);
    if (be16_load(f->payload.ptr + 2) != 0) /* weight */
        return conn_fail(ch->conn, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
                         "expected content header for class %u, got non "
                         "content header frame instead",
                         AMQP_CLASS_BASIC);
    if (amqp_props_read(raw, &props, &why) != AMQP_DECODE_OK)
        return conn_fail(ch->conn, AMQP_FRAME_ERROR, 0,
                         "malformed content header properties: %s", why);
    if (size > srv->cfg->max_message_size)
        return chan_fail(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
                         "message size %llu is larger than configured max "
                         "size %llu",
                         (unsigned long long)size,
                         (unsigned long long)srv->cfg->max_message_size);
    ch->msg = new_message(ch, &props, raw, size);
    alarm_note_memory(srv);
    if (size == 0)
        return content_complete(ch);
    ch->cs = CS_BODY;
    return WR_OK;
}

int
publish_body(struct channel *ch, const struct frame *f)
{
    struct message *msg = ch->msg;

    if (f->payload.len > msg->body_size - msg->received)
        return conn_fail(ch->conn, AMQP_FRAME_ERROR, 0,
                         "content body frame of %zu bytes overruns the "
                         "declared body size %llu",
                         f->payload.len, (unsigned long long)msg->body_size);
    msg = ch->msg = message_append(msg, f->payload);
    alarm_note_memory(srv);
    if (msg->received == msg->body_size)
        return content_complete(ch);
    return WR_OK;
}
