/*
 * conn.c: one client connection: socket I/O, framing, the per-frame
 * routing to channels, heartbeats, and the connection's end.
 *
 * Input: the read callback reads into a loop-wide buffer and handles every
 * complete frame in it at once; only the tail of an incomplete frame is
 * copied into the connection's own buffer, so an idle connection holds no
 * input memory. A frame is refused as soon as its 7-byte header shows an
 * unknown type or a size over frame_max, before its payload is read.
 *
 * Output: handlers append frames to the outq; the connection joins the
 * server's pending list and the prepare pass flushes it with one writev.
 * When more than CONN_OUT_HIGH bytes wait (a client that does not read),
 * reading from it pauses and its consumers get no deliveries, so neither
 * side can make the broker buffer without bound.
 *
 * The end: conn_fail() sends connection.close and releases the channels at
 * once (their unacked messages go back to their queues); conn_drop()
 * closes the socket, logs one line, and puts the connection on the reap
 * list. It is freed in the prepare pass, never inside its own callback.
 */
#include "server/channel.h"

#include "amqp/amqp_props.h"
#include "amqp/ftable.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utlist.h>
#include <arpa/inet.h>

#define RX_CHUNK (256u << 10)

/* The loop's read buffer. Big bodies that come whole in it become their
 * messages' bodies where they are (message_adopt); a new buffer is then
 * taken for the next read (rx_area), the old one living on as long as
 * those messages do. */
static struct msgblock *rxblock;
/* Octets the last read put in rxblock: a block is adopted only when a
 * read filled half of it or more, so that what a message keeps alive
 * of it is mostly bodies (a slow publisher's one message per read is
 * copied). */
static size_t rx_filled;

/* When the current connection's time slice ends (ev_time()). */
static double slice_end;

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void resume_input(struct conn *c);

void
conn_accept(struct server *s, int fd, const struct sockaddr_storage *sa,
            const struct sockaddr_storage *local, struct tls_server *tls)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->magic = CONN_MAGIC;
    c->fd = fd;
    /* The TLS handshake happens in the first reads, within the
     * handshake timeout started below. */
    c->tls = tls ? tls_new(tls, fd) : NULL;
    c->id = ++s->next_conn_id;
    c->state = CONN_HEADER;
    c->connected_at_ms = wr_wall_ms();
    listener_addr_text(sa, c->peer, sizeof(c->peer), &c->loopback);
    listener_addr_text(local, c->local, sizeof(c->local), NULL);
    /* RabbitMQ accepts payloads up to frame_max itself, 8 octets more
     * than the spec, "since quite a few clients get it wrong". */
    frame_parser_init(&c->fp, s->cfg->frame_max + FRAME_OVERHEAD);
    c->frame_max = s->cfg->frame_max;
    buf_init(&c->in);
    outq_init(&c->out);
    c->last_rx = c->last_tx = ev_now(s->loop);
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_io_start(s->loop, &c->rio);
    c->accepted_at = ev_now(s->loop);
    {
        uint32_t ms = tls && s->cfg->ssl_handshake_timeout_ms
                          ? s->cfg->ssl_handshake_timeout_ms
                          : s->cfg->handshake_timeout_ms;

        ev_timer_init(&c->timer, conn_timer_cb, ms / 1000.0, 0.);
        if (ms)
            ev_timer_start(s->loop, &c->timer);
    }
    DL_APPEND(s->conns, c);
    s->nconns++;
    s->conns_opened++;
    log_conn(LOG_DEBUG, "accepting AMQP%s connection %s -> %s",
             c->tls ? "S" : "", c->peer, c->local);
}

void
conn_pending(struct conn *c)
{
    if (c->on_pending || c->state == CONN_DEAD)
        return;
    c->on_pending = true;
    c->pending_next = srv->pending;
    srv->pending = c;
}

static void
put_frame_method(struct conn *c, uint16_t ch, const struct amqp_method *m)
{
    frame_put_method(&c->out.b, ch, m);
}

void
conn_send_method(struct conn *c, uint16_t ch, const struct amqp_method *m)
{
    if (c->state == CONN_DEAD)
        return;
    put_frame_method(c, ch, m);
    conn_pending(c);
}

/* Bodies at least this large are sent from the message, not copied. */
#define ZERO_COPY_MIN 4096

/* conn_send_content with the content header's properties props. */
static void
send_content(struct conn *c, uint16_t ch, const struct amqp_method *m,
             struct message *msg, struct bytes props)
{
    struct bytes body = message_body(msg);
    size_t chunk = c->frame_max ? c->frame_max - FRAME_OVERHEAD : body.len;

    if (c->state == CONN_DEAD)
        return;
    put_frame_method(c, ch, m);
    frame_put_content_header(&c->out.b, ch, msg->body_size, props);
    if (body.len < ZERO_COPY_MIN) {
        frame_put_body(&c->out.b, ch, body, c->frame_max);
    } else {
        for (size_t off = 0; off < body.len; off += chunk) {
            size_t n = WR_MIN(chunk, body.len - off);
            size_t mark = frame_begin(&c->out.b, FRAME_BODY, ch);

            outq_put_ref(&c->out, msg, off, n);
            /* frame_end patches the size from the buffer's length, so
             * account the referenced bytes by hand. */
            be32_store(c->out.b.data + mark + 3, (uint32_t)n);
            buf_put_u8(&c->out.b, FRAME_END);
        }
    }
    conn_pending(c);
}

void
conn_send_content(struct conn *c, uint16_t ch, const struct amqp_method *m,
                  struct message *msg)
{
    send_content(c, ch, m, msg, message_props(msg));
}

void
conn_send_counted(struct conn *c, uint16_t ch, const struct amqp_method *m,
                  struct message *msg, int64_t count)
{
    static struct buf props; /* reused: the loop's only */

    buf_reset(&props);
    if (amqp_props_put_long_header(message_props(msg), "x-delivery-count",
                                   count, &props) != WR_OK) {
        /* cannot be: the properties decoded at publish */
        send_content(c, ch, m, msg, message_props(msg));
        return;
    }
    send_content(c, ch, m, msg, buf_bytes(&props));
}

bool
conn_can_deliver(const struct conn *c)
{
    return c->state == CONN_OPEN && outq_pending(&c->out) < CONN_OUT_HIGH;
}

/* ---- closing */

static void
release_channels(struct conn *c)
{
    struct channel *ch, *tmp;

    flow_forget(c);
    HASH_ITER(hh, c->channels, ch, tmp)
    {
        chan_free(ch);
    }
    c->last_ch = NULL;
    if (c->vh)
        vhost_owner_release(c->vh, &c->owner);
}

static void
set_reason(struct conn *c, const char *reason)
{
    if (!c->close_reason)
        c->close_reason = xstrdup(reason);
}

int
conn_fail(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt,
          ...)
{
    struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};
    char text[600], full[700];
    va_list ap;
    int n;

    if (c->state == CONN_CLOSING || c->state == CONN_DEAD)
        return WR_ERR;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    n = snprintf(full, sizeof(full), "%s - %s", amqp_code_name(code), text);
    n = amqp_reply_text_fit(full, n);
    m.u.connection_close.reply_code = code;
    m.u.connection_close.reply_text = bytes_of(full, (size_t)n);
    m.u.connection_close.class_id = AMQP_METHOD_CLASS(method_id);
    m.u.connection_close.method_id = AMQP_METHOD_INDEX(method_id);
    put_frame_method(c, 0, &m);
    conn_pending(c);
    set_reason(c, full);
    release_channels(c);
    c->state = CONN_CLOSING;
    c->closing_since = ev_now(srv->loop);
    /* Wait a little for close-ok, then drop (RabbitMQ does the same). */
    ev_timer_stop(srv->loop, &c->timer);
    ev_timer_set(&c->timer, 3.0, 0.);
    ev_timer_start(srv->loop, &c->timer);
    return WR_ERR;
}

/* The AMQP end of c: channels released, timers stopped, the vhost's
 * count and one log line. The socket stays open. */
static void
conn_end(struct conn *c, const char *reason)
{
    const char *vname;

    set_reason(c, reason);
    release_channels(c);
    ev_timer_stop(srv->loop, &c->timer);
    vname = c->vh ? vhost_name(c->vh) : c->relay_vhost;
    if (c->vh)
        vhost_connection_leave(c->vh);
    if (c->user_counted) {
        node_user_connection_leave(srv->node, c->user);
        c->user_counted = false;
    }
    log_conn(LOG_INFO,
             "closing AMQP connection %s -> %s (vhost %s%s%s%s, user '%s'): "
             "%s",
             c->peer, c->local, vname ? "'" : "", vname ? vname : "none",
             vname ? "'" : "", c->vh || !vname ? "" : ", relayed",
             c->user ? c->user : "", c->close_reason);
}

void
conn_drop(struct conn *c, const char *reason)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->state != CONN_CLOSED)
        conn_end(c, reason);
    ev_io_stop(srv->loop, &c->rio);
    ev_io_stop(srv->loop, &c->wio);
    ev_timer_stop(srv->loop, &c->timer);
    relay_free(c);
    if (c->tls) {
        tls_free(c->tls); /* close_notify */
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DEAD;
    if (c->yielded) {
        DL_DELETE2(srv->yielded, c, yield_prev, yield_next);
        c->yielded = false;
    }
    DL_DELETE(srv->conns, c);
    srv->nconns--;
    srv->conns_closed++;
    c->reap_next = srv->reap;
    srv->reap = c;
}

void
conn_close_ok(struct conn *c, const char *reason)
{
    struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};

    if (c->state == CONN_CLOSED || c->state == CONN_DEAD)
        return;
    set_reason(c, reason);
    conn_send_method(c, 0, &ok);
    conn_flush(c);
    if (c->state == CONN_DEAD)
        return; /* the socket failed */
    conn_end(c, reason);
    c->vh = NULL;
    c->state = CONN_CLOSED;
    c->reading_paused = c->input_held = c->blocked = false;
    conn_update_reading(c);
    ev_timer_set(&c->timer, CONN_LINGER_S, 0.);
    ev_timer_start(srv->loop, &c->timer);
}

void
conn_free(struct conn *c)
{
    WR_ASSERT(c->magic == CONN_MAGIC && c->state == CONN_DEAD);
    WR_ASSERT(c->channels == NULL);
    buf_fini(&c->in);
    outq_fini(&c->out);
    if (c->defs_held)
        srv->defs_held--;
    buf_fini(&c->held);
    free(c->user);
    free(c->close_reason);
    free(c->relay_vhost);
    free(c->via);
    free((void *)c->client_props.ptr);
    c->magic = 0;
    free(c);
}

void
conn_force_close_all(struct server *s, const char *why)
{
    struct conn *c, *tmp;

    DL_FOREACH_SAFE(s->conns, c, tmp)
    {
        if (c->state == CONN_OPEN)
            conn_fail(c, AMQP_CONNECTION_FORCED, 0,
                      "broker forced connection closure with reason '%s'", why);
        else if (c->state != CONN_CLOSING)
            conn_drop(c, "broker shutting down");
    }
}

/* ---- output */

static void
resume_reading(struct conn *c)
{
    struct channel *ch, *tmp;
    struct chconsumer *cc, *ctmp;

    if (c->reading_paused && c->state != CONN_DEAD) {
        c->reading_paused = false;
        conn_update_reading(c);
    }
    /* Consumers were skipped while the output was full. */
    HASH_ITER(hh, c->channels, ch, tmp)
    {
        HASH_ITER(hh, ch->consumers, cc, ctmp)
        {
            queue_consumer_wake(&cc->c);
        }
    }
}

void
conn_flush(struct conn *c)
{
    struct channel *ch, *tmp;
    size_t before;
    int rc;

    if (c->state == CONN_DEAD)
        return;
    HASH_ITER(hh, c->channels, ch, tmp)
    {
        if (ch->confirm_pending)
            publish_flush_confirms(ch);
    }
    before = outq_pending(&c->out);
    rc = c->tls ? tls_flush(c->tls, &c->out, &c->send_oct)
                : outq_flush(&c->out, c->fd, &c->send_oct);
    if (outq_pending(&c->out) < before) {
        c->last_tx = ev_now(srv->loop);
        c->send_cnt++;
    }
    if (rc == WR_ERR) {
        conn_drop(c, errno == EPIPE || errno == ECONNRESET
                         ? "client unexpectedly closed TCP connection"
                     : c->tls ? tls_error(c->tls)
                              : strerror(errno));
        return;
    }
    if (rc == WR_AGAIN) {
        if (!c->want_write) {
            c->want_write = true;
            ev_io_start(srv->loop, &c->wio);
        }
    } else if (c->want_write && !(c->tls && tls_read_wants_write(c->tls))) {
        c->want_write = false;
        ev_io_stop(srv->loop, &c->wio);
    }
    if (outq_pending(&c->out) < CONN_OUT_LOW && before >= CONN_OUT_LOW)
        resume_reading(c);
    else if (c->reading_paused && outq_pending(&c->out) < CONN_OUT_LOW)
        resume_reading(c);
    if (c->resume_input && c->state != CONN_DEAD)
        resume_input(c);
    if (c->relay && outq_pending(&c->out) < CONN_OUT_LOW)
        relay_client_drained(c);
    if (c->close_after_flush && outq_pending(&c->out) == 0)
        conn_drop(c, "the vhost's leader closed the connection");
}

static void
conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = container_of(w, struct conn, wio);

    (void)revents;
    WR_ASSERT(c->magic == CONN_MAGIC);
    /* A TLS read that had to write first (a handshake flight to a full
     * socket) goes on now. */
    if (c->tls && tls_take_read_wants_write(c->tls) && ev_is_active(&c->rio)) {
        conn_read_cb(loop, &c->rio, EV_READ);
        if (c->state == CONN_DEAD)
            return;
    }
    conn_flush(c);
}

/* ---- input */

/* RabbitMQ's rendering of a bad frame: "type 1, all octets = <<...>>"
 * (or "first 16 octets" when the payload is longer). */
static void
frame_text_of(struct buf *t, uint8_t type, const uint8_t *first, size_t size)
{
    buf_printf(t, "type %u, %s = ", type,
               size <= 16 ? "all octets" : "first 16 octets");
    buf_put_erl_binary(t, bytes_of(first, WR_MIN(size, 16)));
}

static void
frame_text(struct buf *t, uint8_t type, struct bytes payload)
{
    frame_text_of(t, type, payload.ptr, payload.len);
}

int
conn_fail_frame_end(struct conn *c, uint8_t type, const uint8_t *first,
                    size_t size, uint8_t octet)
{
    struct buf t;

    buf_init(&t);
    frame_text_of(&t, type, first, size);
    buf_printf(&t, ": {invalid_frame_end_marker,%u}", octet);
    conn_fail(c, AMQP_FRAME_ERROR, 0, "%.*s", (int)t.len, (const char *)t.data);
    buf_fini(&t);
    return WR_ERR;
}

/*
 * A frame the parser refused, at p (len bytes buffered). Returns the bytes
 * to consume: 0 while an unknown frame type is still arriving (RabbitMQ
 * reads it whole before naming its octets), len once the connection has
 * failed.
 */
static size_t
frame_error(struct conn *c, const uint8_t *p, size_t len)
{
    struct buf t;
    uint32_t size = len >= FRAME_HEADER_SIZE ? be32_load(p + 3) : 0;
    struct bytes payload = BYTES_NULL;

    if (c->fp.err == FRAME_ERR_BAD_TYPE && len < (size_t)size + 8)
        return 0; /* size is within frame_max: the parser checks that */
    if (c->fp.err == FRAME_ERR_BAD_END) {
        conn_fail_frame_end(c, p[0], p + FRAME_HEADER_SIZE, size,
                            p[FRAME_HEADER_SIZE + size]);
        return len;
    }
    if (c->fp.err != FRAME_ERR_TOO_LARGE)
        payload = bytes_of(p + FRAME_HEADER_SIZE, size);
    buf_init(&t);
    frame_text(&t, p[0], payload);
    switch (c->fp.err) {
    case FRAME_ERR_TOO_LARGE:
        buf_printf(&t, ": {frame_too_large,%u,%u}", size, c->frame_max - 8);
        break;
    default: /* FRAME_ERR_BAD_TYPE */
        buf_printf(&t, ": unknown_frame");
        break;
    }
    conn_fail(c, AMQP_FRAME_ERROR, 0, "%.*s", (int)t.len, (const char *)t.data);
    buf_fini(&t);
    return len;
}

/* A frame whose payload does not fit its type (too short for a method or
 * header, any payload on a heartbeat): 501, RabbitMQ's unknown_frame. */
int
conn_fail_unknown_frame(struct conn *c, const struct frame *f)
{
    struct buf t;

    buf_init(&t);
    frame_text(&t, f->type, f->payload);
    buf_printf(&t, ": unknown_frame");
    conn_fail(c, AMQP_FRAME_ERROR, 0, "%.*s", (int)t.len, (const char *)t.data);
    buf_fini(&t);
    return WR_ERR;
}

/* RabbitMQ checks every short string argument is UTF-8. */
static bool
shortstrs_are_utf8(const struct amqp_method *m)
{
    const struct amqp_method_info *mi = amqp_method_info(m->id);

    for (uint8_t i = 0; mi && i < mi->nfields; i++) {
        const struct amqp_field_info *fi = &mi->fields[i];
        const struct bytes *s;

        if (fi->type != AMQP_T_SHORTSTR)
            continue;
        s = (const struct bytes *)((const char *)m + fi->offset);
        if (!bytes_is_utf8(*s))
            return false;
    }
    return true;
}

/* Decodes a method frame, failing the connection as RabbitMQ does when it
 * cannot: a payload shorter than the ids, arguments that do not decode,
 * an unknown method, a short string that is not UTF-8. */
int
conn_decode_method(struct conn *c, const struct frame *f, struct amqp_method *m)
{
    uint32_t id;
    struct buf t;

    if (f->payload.len < 4)
        return conn_fail_unknown_frame(c, f);
    id = be32_load(f->payload.ptr);
    switch (amqp_method_decode(f->payload.ptr, f->payload.len, m, NULL)) {
    case AMQP_DECODE_OK:
        if (!shortstrs_are_utf8(m))
            return conn_fail(c, AMQP_FRAME_ERROR, 0,
                             "Malformed UTF-8 in shortstr");
        return WR_OK;
    case AMQP_DECODE_UNKNOWN:
        return conn_fail(c, AMQP_COMMAND_INVALID, id, "unknown method");
    default:
        buf_init(&t);
        buf_put_erl_binary(&t,
                           bytes_of(f->payload.ptr + 4, f->payload.len - 4));
        conn_fail(c, AMQP_FRAME_ERROR, id, "cannot decode %.*s", (int)t.len,
                  (const char *)t.data);
        buf_fini(&t);
        return WR_ERR;
    }
}

static struct channel *
find_channel(struct conn *c, uint16_t id)
{
    struct channel *ch;

    if (c->last_ch && c->last_ch->id == id)
        return c->last_ch;
    HASH_FIND(hh, c->channels, &id, sizeof(id), ch);
    if (ch)
        c->last_ch = ch;
    return ch;
}

/* A frame on a channel that is not open. RabbitMQ limits how many
 * channels are open (channel_max), not their numbers. */
static int
unopened_channel_frame(struct conn *c, const struct frame *f)
{
    struct amqp_method m;
    struct vherr err;

    if (f->type != FRAME_METHOD)
        return conn_fail(c, AMQP_UNEXPECTED_FRAME, 0,
                         "expected method frame, got non method frame "
                         "instead");
    if (conn_decode_method(c, f, &m) != WR_OK)
        return WR_ERR;
    if (m.id != AMQP_CHANNEL_OPEN)
        return conn_fail(c, AMQP_CHANNEL_ERROR, m.id,
                         "expected 'channel.open'");
    if (c->nchannels >= c->channel_max)
        return conn_fail(c, AMQP_NOT_ALLOWED, 0,
                         "number of channels opened (%u) has reached the "
                         "negotiated channel_max (%u)",
                         c->nchannels, c->channel_max);
    if (node_user_channel_admit(srv->node, c->user, &err) != WR_OK)
        return conn_fail(c, err.code, 0, "%s", err.text);
    chan_open(c, f->channel);
    return WR_OK;
}

static const char *const state_names[] = {
    [CONN_HEADER] = "starting", [CONN_START] = "starting",
    [CONN_TUNE] = "tuning",     [CONN_OPENING] = "opening",
    [CONN_OPEN] = "running",    [CONN_CLOSING] = "closing",
    [CONN_CLOSED] = "closed",   [CONN_DEAD] = "closed",
};

/* A method on channel 0: its handler in the method table, when the
 * connection is in a state the method may come in. */
static int
channel0_method(struct conn *c, const struct amqp_method *m)
{
    int slot = amqp_method_slot(m->id);
    const struct conn_method *h = slot >= 0 ? &srv->methods->conn[slot] : NULL;

    if (h && h->fn && (h->states & (1u << c->state)))
        return h->fn(c, m);
    return conn_fail(c, AMQP_CHANNEL_ERROR, m->id,
                     "unexpected method in connection state %s",
                     state_names[c->state]);
}

static int
conn_handle_frame(struct conn *c, const struct frame *f)
{
    struct channel *ch;
    struct amqp_method m;
    struct buf t;

    if (f->type == FRAME_HEARTBEAT) {
        /* RabbitMQ: a payload makes it an unknown frame (501), whatever
         * the channel; an empty one on a channel is unexpected (505). */
        if (f->payload.len > 0)
            return conn_fail_unknown_frame(c, f);
        if (f->channel == 0)
            return WR_OK;
        buf_init(&t);
        frame_text(&t, f->type, f->payload);
        conn_fail(c, AMQP_UNEXPECTED_FRAME, 0, "%.*s", (int)t.len,
                  (const char *)t.data);
        buf_fini(&t);
        return WR_ERR;
    }
    if (f->channel == 0) {
        if (f->type != FRAME_METHOD)
            return conn_fail(c, AMQP_UNEXPECTED_FRAME, 0,
                             "expected method frame, got non method frame "
                             "instead");
        if (conn_decode_method(c, f, &m) != WR_OK)
            return WR_ERR;
        return channel0_method(c, &m);
    }
    if (c->state != CONN_OPEN)
        return conn_fail(c, AMQP_CHANNEL_ERROR, 0,
                         "unexpected frame on channel %u in connection "
                         "state %s",
                         f->channel,
                         c->state == CONN_OPENING ? "opening" : "starting");
    ch = find_channel(c, f->channel);
    if (!ch)
        return unopened_channel_frame(c, f);
    return chan_handle_frame(ch, f);
}

/* During CONN_CLOSING only close and close-ok matter. */
static void
closing_frame(struct conn *c, const struct frame *f)
{
    struct amqp_method m;

    if (f->channel != 0 || f->type != FRAME_METHOD ||
        amqp_method_decode(f->payload.ptr, f->payload.len, &m, NULL) !=
            AMQP_DECODE_OK)
        return;
    if (m.id == AMQP_CONNECTION_CLOSE_OK) {
        conn_drop(c, c->close_reason ? c->close_reason : "closed");
    } else if (m.id == AMQP_CONNECTION_CLOSE) {
        conn_close_ok(c, c->close_reason ? c->close_reason : "closed");
    }
}

static void
bad_protocol_header(struct conn *c)
{
    static const char hdr[] = AMQP_PROTOCOL_HEADER;

    if (c->tls) {
        tls_write_now(c->tls, hdr, AMQP_PROTOCOL_HEADER_LEN);
    } else {
        ssize_t k = write(c->fd, hdr, AMQP_PROTOCOL_HEADER_LEN);
        (void)k;
    }
    conn_drop(c, "bad protocol header");
}

/* The protocol headers spoken as 0-9-1, as RabbitMQ does: 0-9-1 itself,
 * 0-9 ("AMQP" 1 1 0 9, which aioamqp sends) and the 0-8 header of the
 * spec on the AMQP web site ("AMQP" 1 1 9 1, py-amqplib). */
static const char *const accepted_headers[] = {
    AMQP_PROTOCOL_HEADER,
    "AMQP\x01\x01\x00\x09",
    "AMQP\x01\x01\x09\x01",
};

/* Returns WR_OK for a whole accepted header in p[0..len), WR_AGAIN for
 * the start of one, WR_ERR for anything else. */
static int
protocol_header_check(const uint8_t *p, size_t len)
{
    size_t n = WR_MIN(len, AMQP_PROTOCOL_HEADER_LEN);

    for (size_t i = 0; i < WR_ARRAY_LEN(accepted_headers); i++) {
        if (memcmp(p, accepted_headers[i], n) == 0)
            return n == AMQP_PROTOCOL_HEADER_LEN ? WR_OK : WR_AGAIN;
    }
    return WR_ERR;
}

/* The time slice is used up: the rest of the input waits. */
static bool
slice_over(struct conn *c, unsigned frames)
{
    if (frames % 32 != 0 || ev_time() < slice_end)
        return false;
    c->yielded = true;
    DL_APPEND2(srv->yielded, c, yield_prev, yield_next);
    return true;
}

/* Handles every complete frame in p, or as many as fit in the time
 * slice; returns the bytes consumed. */
static size_t
conn_process(struct conn *c, const uint8_t *p, size_t len)
{
    size_t off = 0;
    struct frame f;
    unsigned frames = 0;

    if (c->state == CONN_CLOSED)
        return len; /* after close-ok: discarded */
    if (c->state == CONN_HEADER) {
        switch (protocol_header_check(p, len)) {
        case WR_AGAIN:
            return 0;
        case WR_ERR:
            bad_protocol_header(c);
            return len;
        }
        off = AMQP_PROTOCOL_HEADER_LEN;
        srv->methods->start(c);
    }
    while (off < len && c->state != CONN_DEAD) {
        ssize_t n = frame_parse(&c->fp, p + off, len - off, &f);

        if (n == WR_AGAIN)
            break;
        if (n == WR_ERR) {
            if (c->state == CONN_CLOSING) {
                conn_drop(c, c->close_reason);
                return len;
            }
            return off + frame_error(c, p + off, len - off);
        }
        off += (size_t)n;
        if (c->state == CONN_CLOSING)
            closing_frame(c, &f);
        else
            conn_handle_frame(c, &f);
        if (c->state == CONN_CLOSED)
            return len; /* the rest is discarded */
        if (c->input_held || c->blocked || c->flow_q || c->defs_held)
            break;
        if (off < len && slice_over(c, ++frames))
            break;
    }
    return off;
}

/* Starts or stops the read watcher as output backpressure and held input
 * say. */
void
conn_update_reading(struct conn *c)
{
    bool want = c->state != CONN_DEAD && !c->reading_paused && !c->input_held &&
                !c->blocked && !c->flow_q && !c->yielded && !c->defs_held &&
                (c->state != CONN_RELAYED || relay_wants_client_input(c));

    if (want && !ev_is_active(&c->rio)) {
        ev_io_start(srv->loop, &c->rio);
        /* Decrypted input waiting inside OpenSSL: the socket may stay
         * quiet, so do not wait for it. */
        if (c->tls && tls_has_pending(c->tls))
            ev_feed_event(srv->loop, &c->rio, EV_READ);
    } else if (!want && ev_is_active(&c->rio))
        ev_io_stop(srv->loop, &c->rio);
}

void
conn_release_input(struct conn *c)
{
    if (!c->input_held)
        return;
    c->input_held = false;
    c->resume_input = true;
    conn_pending(c);
}

/* ---- replies that wait for the in-sync set (issue 12)
 *
 * A durable queue.declare-ok (bind-ok, delete-ok, exchange.declare-ok,
 * ...) in a replicated vhost leaves only once every member of the
 * in-sync set has the definitions that hold the change on its disk
 * (replication.c, repl_defs_durable): the reply's bytes move from the
 * output queue to c->held, and c's input stops (later methods could
 * otherwise be answered first), as a publisher waits for its confirm.
 * A connection closed meanwhile never gets the reply: never a false ok. */

void
conn_hold_reply(struct conn *c, size_t mark, size_t nrefs)
{
    uint64_t gen = node_defs_generation(srv->node);

    if (c->state != CONN_OPEN || !c->vh || c->defs_held ||
        c->out.refs.n != nrefs || mark < c->out.head || mark > c->out.b.len ||
        repl_defs_durable(c->vh, gen))
        return;
    buf_append(&c->held, c->out.b.data + mark, c->out.b.len - mark);
    c->out.b.len = mark;
    c->held_gen = gen;
    c->defs_held = true;
    srv->defs_held++;
    conn_update_reading(c);
}

void
conn_release_held(struct server *s)
{
    struct conn *c;

    if (s->defs_held == 0)
        return;
    DL_FOREACH(s->conns, c)
    {
        if (!c->defs_held)
            continue;
        if (c->state == CONN_OPEN && c->vh &&
            !repl_defs_durable(c->vh, c->held_gen))
            continue;
        if (c->state == CONN_OPEN)
            buf_append(&c->out.b, c->held.data, c->held.len);
        buf_reset(&c->held);
        c->defs_held = false;
        s->defs_held--;
        c->resume_input = true;
        conn_pending(c);
        conn_update_reading(c);
    }
}

/* Handles input that waited in `in` while it was held. */
static void
resume_input(struct conn *c)
{
    size_t used;

    c->resume_input = false;
    slice_end = ev_time() + CONN_SLICE;
    if (c->in.len > 0 && !c->yielded && !c->blocked && !c->flow_q) {
        used = conn_process(c, c->in.data, c->in.len);
        if (c->state == CONN_DEAD)
            return;
        buf_consume(&c->in, used);
    }
    conn_update_reading(c);
}

/* A TLS read found nothing to return: the handshake (or a key update)
 * may need the socket writable before it can go on. */
static void
tls_wait(struct conn *c)
{
    if (tls_read_wants_write(c->tls) && !c->want_write) {
        c->want_write = true;
        ev_io_start(srv->loop, &c->wio);
    }
}

/* Where the next read goes: the read buffer, a new one when messages
 * adopted bodies in the last. */
static uint8_t *
rx_area(void)
{
    if (rxblock && rxblock->refs > 1) {
        msgblock_unref(rxblock);
        rxblock = NULL;
    }
    if (!rxblock)
        rxblock = msgblock_new(RX_CHUNK);
    return rxblock->data;
}

struct msgblock *
conn_rx_block(const uint8_t *p, size_t len)
{
    uintptr_t at, start;

    if (!rxblock || rx_filled < RX_CHUNK / 2)
        return NULL;
    at = (uintptr_t)p;
    start = (uintptr_t)rxblock->data;
    if (at < start || at - start > rxblock->size ||
        len > rxblock->size - (at - start))
        return NULL;
    return rxblock;
}

/* Handles n octets read into the read buffer (c->in is empty). What is
 * left of a frame cut by the end of the read goes straight into its
 * message when it is a big body frame (bodyrx_begin), else into c->in.
 * Returns false when the connection died. */
static bool
take_input(struct conn *c, const uint8_t *p, size_t n)
{
    size_t used = conn_process(c, p, n);

    if (c->state == CONN_DEAD)
        return false;
    if (used < n && !bodyrx_begin(c, p + used, n - used))
        buf_append(&c->in, p + used, n - used);
    return true;
}

/* Handles the octets that followed a body frame read straight into its
 * message; the frame's end may have held the input (an alarm blocks a
 * publisher after its message), and then they wait in c->in as input
 * conn_process stopped at does. Returns false when the connection died. */
static bool
take_after_body(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->state == CONN_DEAD)
        return false;
    if (n == 0)
        return true;
    if (c->input_held || c->blocked) {
        buf_append(&c->in, p, n);
        return true;
    }
    return take_input(c, p, n);
}

/* Handles the octets read into c->in (a frame was cut there before).
 * Returns false when the connection died. */
static bool
take_own_input(struct conn *c)
{
    size_t used = conn_process(c, c->in.data, c->in.len);

    if (c->state == CONN_DEAD)
        return false;
    if (used < c->in.len &&
        bodyrx_begin(c, c->in.data + used, c->in.len - used))
        used = c->in.len;
    buf_consume(&c->in, used);
    if (c->in.len == 0)
        buf_fini(&c->in);
    return true;
}

/* Reads and handles what the socket has, one chunk: a connection that
 * sends a flood is read again in the next loop iteration, after the
 * others had their turn. Input normally lands in the read buffer; only
 * a frame cut by the end of a read waits in c->in, and reads continue
 * there with RX_CHUNK of room, so that moving the cut frame's bytes to
 * the front (buf_consume) is paid once per RX_CHUNK read, not once per
 * frame (64 KiB bodies: 5% of the broker's CPU with 64 KiB of room). A
 * big body frame cut by a read goes on straight into its message
 * instead (bodyrx.c). */
static void
conn_read(struct ev_loop *loop, struct conn *c)
{
    for (int round = 0; round < 8; round++) {
        bool own = c->in.len > 0;
        bool body = bodyrx_busy(c);
        uint8_t *dst = own ? buf_reserve(&c->in, RX_CHUNK) : rx_area();
        size_t room = own ? c->in.cap - c->in.len : RX_CHUNK;
        const uint8_t *after = NULL;
        size_t nafter = 0;
        bool more = false;
        ssize_t n;

        WR_ASSERT(!(own && body)); /* bodyrx_begin took c->in's tail */
        if (body)
            n = bodyrx_read(c, dst, room, &after, &nafter, &more);
        else
            n = c->tls ? tls_read(c->tls, dst, room) : read(c->fd, dst, room);
        if (n == 0) {
            conn_drop(c, c->state == CONN_CLOSING || c->state == CONN_CLOSED
                             ? c->close_reason
                             : "client unexpectedly closed TCP connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_drop(c, c->tls ? tls_error(c->tls) : strerror(errno));
            else if (c->tls)
                tls_wait(c);
            return;
        }
        c->recv_oct += (uint64_t)n;
        c->recv_cnt++;
        c->last_rx = ev_now(loop);
        if (!own)
            rx_filled = body ? (size_t)(after + nafter - dst) : (size_t)n;
        if (body) {
            if (!take_after_body(c, after, nafter))
                return;
        } else if (own) {
            c->in.len += (size_t)n;
            if (!take_own_input(c))
                return;
        } else {
            if (!take_input(c, dst, (size_t)n))
                return;
        }
        if (outq_pending(&c->out) >= CONN_OUT_HIGH) {
            /* The client is not reading what we send: stop reading
             * what it sends until it catches up. */
            c->reading_paused = true;
            conn_update_reading(c);
            return;
        }
        if (c->input_held || c->blocked || c->flow_q || c->yielded ||
            c->defs_held) {
            conn_update_reading(c);
            return;
        }
        if (body ? !more : (size_t)n < room)
            return;
    }
    if (c->tls && ev_is_active(&c->rio) && tls_has_pending(c->tls))
        ev_feed_event(loop, &c->rio, EV_READ); /* the rest, next turn */
}

/* A relayed client's bytes go to its vhost's leader as they come. */
static void
relayed_read(struct conn *c)
{
    uint8_t *rx;
    ssize_t n;

    if (relay_client_splice(c))
        return;
    rx = rx_area();
    n = c->tls ? tls_read(c->tls, rx, RX_CHUNK) : read(c->fd, rx, RX_CHUNK);
    if (n == 0) {
        conn_drop(c, "client closed the connection");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_drop(c, strerror(errno));
        return;
    }
    c->recv_oct += (uint64_t)n;
    c->recv_cnt++;
    relay_client_input(c, rx, (size_t)n);
}

static void
conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = container_of(w, struct conn, rio);

    (void)revents;
    WR_ASSERT(c->magic == CONN_MAGIC);
    node_set_now(srv->node, (uint64_t)(ev_now(loop) * 1e6));
    slice_end = ev_time() + CONN_SLICE;
    if (c->state == CONN_RELAYED)
        relayed_read(c);
    else
        conn_read(loop, c);
    loop_pump(srv);
}

/* Each connection waiting now gets one slice; one that uses it up again
 * goes back to the tail, for the next iteration. (A connection dropped
 * meanwhile has left the list: conn_drop.) */
void
conn_resume_yielded(struct server *s)
{
    struct conn *c;
    size_t n = 0;

    DL_COUNT2(s->yielded, c, n, yield_next);
    while (n-- > 0 && (c = s->yielded) != NULL) {
        DL_DELETE2(s->yielded, c, yield_prev, yield_next);
        c->yielded = false;
        resume_input(c);
        if (c->state != CONN_DEAD)
            loop_pump(s);
    }
}

/* ---- timers: handshake timeout, heartbeats, close timeout */

/* The handshake's timer fired. An AMQPS client first has
 * ssl_handshake_timeout for TLS, then what is left of handshake_timeout
 * (counted from the accept) for AMQP. */
static void
handshake_timer(struct conn *c, ev_tstamp now)
{
    const struct wr_config *cfg = srv->cfg;
    double left = cfg->handshake_timeout_ms / 1000.0 - (now - c->accepted_at);

    if (c->tls && !tls_is_established(c->tls) &&
        cfg->ssl_handshake_timeout_ms) {
        conn_drop(c, "TLS handshake timeout");
        return;
    }
    if (c->tls && (cfg->handshake_timeout_ms == 0 || left > 0)) {
        if (cfg->handshake_timeout_ms) {
            ev_timer_set(&c->timer, left, 0.);
            ev_timer_start(srv->loop, &c->timer);
        }
        return;
    }
    conn_drop(c, "handshake timeout");
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = container_of(w, struct conn, timer);
    ev_tstamp now = ev_now(loop);
    ev_tstamp hb = c->heartbeat;

    (void)revents;
    WR_ASSERT(c->magic == CONN_MAGIC);
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED) {
        conn_drop(c, c->close_reason);
        return;
    }
    if (c->state != CONN_OPEN) {
        handshake_timer(c, now);
        return;
    }
    if (hb <= 0)
        return;
    /* Not read while an alarm or credit flow holds it: its heartbeats
     * wait unread, as RabbitMQ pauses the monitor of a blocked reader. */
    if (c->blocked || c->flow_q)
        c->last_rx = now;
    if (now - c->last_rx > 2 * hb) {
        char why[80];
        snprintf(why, sizeof(why),
                 "missed heartbeats from client, timeout: %us", c->heartbeat);
        conn_drop(c, why);
        return;
    }
    if (now - c->last_tx >= hb / 2 && outq_pending(&c->out) == 0) {
        frame_put_heartbeat(&c->out.b);
        conn_pending(c);
    }
    ev_timer_again(loop, w);
}

/* Switches the timer to heartbeat mode (after tune-ok). */
static void
start_heartbeat(struct conn *c)
{
    ev_timer_stop(srv->loop, &c->timer);
    if (c->heartbeat == 0)
        return;
    c->timer.repeat = c->heartbeat / 2.0;
    ev_timer_again(srv->loop, &c->timer);
}

/* The handshake timeout stays until connection.open; then heartbeats. */
void
conn_opened(struct conn *c)
{
    c->state = CONN_OPEN;
    c->owner.user = c->user;
    log_conn(LOG_INFO,
             "connection %s -> %s: user '%s' authenticated and granted "
             "access to vhost '%s'",
             c->peer, c->local, c->user, vhost_name(c->vh));
    start_heartbeat(c);
}

void
conn_check_consumer_timeout(struct conn *c, uint64_t now_us, uint64_t limit_us)
{
    struct channel *ch, *tmp;

    HASH_ITER(hh, c->channels, ch, tmp)
    {
        chan_check_consumer_timeout(ch, now_us, limit_us);
    }
}

/* ---- what others read */

struct conn *
conn_next(const struct server *s, const struct conn *c)
{
    return c ? c->next : s->conns;
}

static const char *
state_text(const struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return "closing";
    if (c->blocked)
        return c->blocked_sent ? "blocked" : "blocking";
    if (c->flow_q)
        return "flow"; /* RabbitMQ's name for a publisher held by credit */
    return "running";
}

void
conn_info(const struct conn *c, struct conn_info *out)
{
    *out = (struct conn_info){
        .id = c->id,
        .peer = c->peer,
        .local = c->local,
        .user = c->user,
        .vh = c->vh,
        .open = c->state == CONN_OPEN,
        .listed = c->vh != NULL &&
                  (c->state == CONN_OPEN || c->state == CONN_CLOSING),
        .state = state_text(c),
        .channels = c->nchannels,
        .channel_max = c->channel_max,
        .frame_max = c->frame_max,
        .heartbeat = c->heartbeat,
        .connected_at_ms = c->connected_at_ms,
        .client_props = c->client_props,
        .recv_oct = c->recv_oct,
        .send_oct = c->send_oct,
        .recv_cnt = c->recv_cnt,
        .send_cnt = c->send_cnt,
        .send_pend = outq_pending(&c->out),
        .tls = c->tls,
        .auth_mechanism = c->auth_mech,
    };
    snprintf(out->name, sizeof(out->name), "%s -> %s", c->peer, c->local);
}

void
conn_force_close(struct conn *c, const char *why)
{
    if (c->state == CONN_OPEN)
        conn_fail(c, AMQP_CONNECTION_FORCED, 0, "%s", why);
}

void
conn_close_vhost(struct server *s, struct vhost *vh, const char *why)
{
    struct conn *c, *tmp;

    DL_FOREACH_SAFE(s->conns, c, tmp)
    {
        if (c->vh != vh)
            continue;
        conn_force_close(c, why);
        /* The connection outlives the vhost while it waits for
         * close-ok: detach it (conn_fail released its channels and
         * exclusive queues). */
        if (c->vh) {
            vhost_connection_leave(c->vh);
            c->vh = NULL;
        }
    }
}

/* ---- a client relayed here by another node (peer_link.c) */

/* The hand-over's client properties (base64 of the table body), kept
 * when they are a valid table. */
static void
adopt_props(struct conn *c, const char *b64)
{
    struct buf b;

    buf_init(&b);
    if (b64 && b64_decode(b64, strlen(b64), false, &b) &&
        ftable_validate(buf_bytes(&b), NULL) == WR_OK && b.len > 0)
        c->client_props = bytes_of(xmemdup(b.data, b.len), b.len);
    buf_fini(&b);
}

void
conn_adopt(struct server *s, int fd, struct vhost *vh, const struct relayed *h,
           struct bytes early, struct bytes out_first)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->magic = CONN_MAGIC;
    c->fd = fd;
    c->id = ++s->next_conn_id;
    c->connected_at_ms = wr_wall_ms();
    snprintf(c->peer, sizeof(c->peer), "%s", h->peer);
    snprintf(c->local, sizeof(c->local), "%s", h->local);
    c->loopback = h->loopback;
    c->user = xstrdup(h->user);
    c->via = xstrdup(h->via);
    c->frame_max = h->frame_max;
    c->channel_max = h->channel_max ? h->channel_max : 65535;
    c->heartbeat = h->heartbeat;
    c->cap_blocked = h->cap_blocked;
    c->cap_cancel_notify = h->cap_cancel_notify;
    c->cap_auth_failure_close = h->cap_auth_failure_close;
    adopt_props(c, h->client_props_b64);
    frame_parser_init(&c->fp, c->frame_max + FRAME_OVERHEAD);
    buf_init(&c->in);
    outq_init(&c->out);
    c->last_rx = c->last_tx = ev_now(s->loop);
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, conn_timer_cb);
    DL_APPEND(s->conns, c);
    s->nconns++;
    s->conns_opened++;
    c->vh = vh;
    c->state = CONN_OPEN;
    c->owner.user = c->user;
    log_conn(LOG_INFO,
             "connection %s -> %s: user '%s', vhost '%s', relayed by node "
             "'%s'",
             c->peer, c->local, c->user, vhost_name(vh), c->via);
    start_heartbeat(c);
    ev_io_start(s->loop, &c->rio);
    if (out_first.len > 0) {
        buf_append(&c->out.b, out_first.ptr, out_first.len);
        conn_pending(c);
    }
    if (early.len > 0) {
        buf_append(&c->in, early.ptr, early.len);
        c->resume_input = true;
        conn_pending(c);
    }
}
