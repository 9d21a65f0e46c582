/*
 * pconn.c: warren-perf's client side of one AMQP 0-9-1 connection.
 *
 * Setup (handshake, declares, qos, consume, confirm.select) is
 * synchronous: pconn_rpc() sends a method and waits for its reply. The hot
 * loops in run.c use the non-blocking pieces directly: pconn_read() fills
 * the input buffer with one big read, pconn_next_frame() cuts every
 * complete frame out of it before the next read, and the write queue
 * (wq.c) sends whatever was queued with one writev.
 *
 * Invariants: the socket is non-blocking from the start; the input buffer
 * grows (up to frame_max) whenever a frame does not fit, so a frame never
 * needs more room than there is; frame views stay valid until the
 * next pconn_read(), which is the only call that moves bytes.
 */
#include "amqp/ftable.h"
#include "test/bench/perf/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PCONN_IN_MIN     (1u << 20)
#define PCONN_FRAME_DFLT 131072u

static void set_err(struct pconn *c, const char *fmt, ...) WR_PRINTF(2, 3);

static void
set_err(struct pconn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

void
pconn_init(struct pconn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    wq_init(&c->out);
    frame_parser_init(&c->fp, PCONN_IN_MIN);
}

void
pconn_fini(struct pconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_cap = c->in_len = c->in_off = 0;
    wq_fini(&c->out);
}

/* The first input buffer: in_min bytes, or PCONN_IN_MIN for big reads. */
static void
size_input(struct pconn *c)
{
    c->in_cap = c->in_min ? c->in_min : PCONN_IN_MIN;
    c->in = xrealloc(c->in, c->in_cap);
}

/*
 * Called with a full buffer that holds no whole frame: grows it to fit the
 * frame being received (the parser has already refused one larger than
 * frame_max). Returns WR_OK or WR_ERR.
 */
static int
grow_input(struct pconn *c)
{
    size_t need = c->in_cap * 2;

    if (c->in_len >= FRAME_HEADER_SIZE)
        need = WR_MAX(need, (size_t)be32_load(c->in + 3) + FRAME_OVERHEAD);
    if (c->fp.frame_max != 0 && need > (size_t)c->fp.frame_max + 64)
        need = (size_t)c->fp.frame_max + 64;
    if (need <= c->in_cap) {
        set_err(c, "input buffer full (%zu bytes) without a whole frame",
                c->in_cap);
        return WR_ERR;
    }
    c->in = xrealloc(c->in, need);
    c->in_cap = need;
    return WR_OK;
}

short
pconn_wait(struct pconn *c, short events, uint64_t deadline_ns)
{
    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = events};
        uint64_t now = perf_now_ns();
        struct timespec ts;
        int n;

        if (now >= deadline_ns) {
            ts.tv_sec = 0;
            ts.tv_nsec = 0;
        } else {
            ts.tv_sec = (time_t)((deadline_ns - now) / 1000000000u);
            ts.tv_nsec = (long)((deadline_ns - now) % 1000000000u);
        }
        n = ppoll(&pfd, 1, &ts, NULL);
        if (n < 0 && errno == EINTR) {
            if (perf_now_ns() >= deadline_ns)
                return 0;
            continue;
        }
        return n > 0 ? pfd.revents : 0;
    }
}

static int
connect_to(struct pconn *c, const struct perf_target *t, uint64_t deadline)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(t->host, t->port, &hints, &res);

    if (rc != 0) {
        set_err(c, "resolving %s:%s: %s", t->host, t->port, gai_strerror(rc));
        return WR_ERR;
    }
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        int one = 1;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   a->ai_protocol);

        if (fd < 0) {
            set_err(c, "socket: %s", strerror(errno));
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                set_err(c, "connect %s:%s: %s", t->host, t->port,
                        strerror(errno));
                goto next;
            }
            if (!(pconn_wait(c, POLLOUT, deadline) &
                  (POLLOUT | POLLERR | POLLHUP))) {
                set_err(c, "connect %s:%s: timed out", t->host, t->port);
                goto next;
            }
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (soerr != 0) {
                set_err(c, "connect %s:%s: %s", t->host, t->port,
                        strerror(soerr));
                goto next;
            }
        }
        freeaddrinfo(res);
        return WR_OK;
    next: /* try the next address */
        close(fd);
        c->fd = -1;
    }
    freeaddrinfo(res);
    return WR_ERR;
}

ssize_t
pconn_read(struct pconn *c)
{
    ssize_t n;

    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == c->in_cap && grow_input(c) != WR_OK)
        return WR_ERR;
    for (;;) {
        size_t room = c->in_cap - c->in_len;

        n = read(c->fd, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            c->rx_drained = (size_t)n < room;
            return n;
        }
        if (n == 0) {
            set_err(c, "connection closed by the broker");
            return WR_ERR;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WR_AGAIN;
        set_err(c, "read: %s", strerror(errno));
        return WR_ERR;
    }
}

int
pconn_next_frame(struct pconn *c, struct frame *f)
{
    ssize_t n =
        frame_parse(&c->fp, c->in + c->in_off, c->in_len - c->in_off, f);

    if (n == WR_AGAIN)
        return WR_AGAIN;
    if (n < 0) {
        set_err(c, "framing error from the broker: %s",
                frame_error_text(c->fp.err));
        return WR_ERR;
    }
    c->in_off += (size_t)n;
    return WR_OK;
}

void
pconn_put_method(struct pconn *c, uint16_t ch, const struct amqp_method *m)
{
    frame_put_method(&c->out.b, ch, m);
    wq_commit(&c->out);
}

int
pconn_flush_wait(struct pconn *c, uint64_t deadline_ns)
{
    for (;;) {
        int rc = wq_write(&c->out, c->fd);

        if (rc == WR_OK)
            return WR_OK;
        if (rc == WR_ERR) {
            set_err(c, "write: %s", strerror(errno));
            return WR_ERR;
        }
        if (pconn_wait(c, POLLOUT, deadline_ns) == 0) {
            set_err(c, "write timed out");
            return WR_ERR;
        }
    }
}

void
pconn_set_close_err(struct pconn *c, const char *what, uint16_t code,
                    struct bytes text)
{
    set_err(c, "%s: %u %.*s", what, code, BYTES_FMT(text));
}

static int
decode(struct pconn *c, const struct frame *f, struct amqp_method *m)
{
    const char *why = NULL;

    if (amqp_method_decode(f->payload.ptr, f->payload.len, m, &why) !=
        AMQP_DECODE_OK) {
        set_err(c, "undecodable method from the broker: %s", why ? why : "?");
        return WR_ERR;
    }
    return WR_OK;
}

int
pconn_handle_other(struct pconn *c, const struct frame *f)
{
    struct amqp_method m;
    struct amqp_method ok;

    if (f->type == FRAME_HEARTBEAT)
        return WR_OK;
    if (f->type != FRAME_METHOD) {
        set_err(c, "unexpected frame type %u on channel %u", f->type,
                f->channel);
        return WR_ERR;
    }
    if (decode(c, f, &m) != WR_OK)
        return WR_ERR;
    switch (m.id) {
    case AMQP_CONNECTION_BLOCKED:
        c->blocked = true;
        return WR_OK;
    case AMQP_CONNECTION_UNBLOCKED:
        c->blocked = false;
        return WR_OK;
    case AMQP_CONNECTION_CLOSE:
        pconn_set_close_err(c, "broker closed the connection",
                            m.u.connection_close.reply_code,
                            m.u.connection_close.reply_text);
        ok.id = AMQP_CONNECTION_CLOSE_OK;
        pconn_put_method(c, 0, &ok);
        (void)wq_write(&c->out, c->fd);
        return WR_ERR;
    case AMQP_CHANNEL_CLOSE:
        pconn_set_close_err(c, "broker closed the channel",
                            m.u.channel_close.reply_code,
                            m.u.channel_close.reply_text);
        ok.id = AMQP_CHANNEL_CLOSE_OK;
        pconn_put_method(c, f->channel, &ok);
        (void)wq_write(&c->out, c->fd);
        return WR_ERR;
    default:
        set_err(c, "unexpected %s on channel %u",
                amqp_method_name(m.id) ? amqp_method_name(m.id) : "method",
                f->channel);
        return WR_ERR;
    }
}

/* Waits for method `id` on channel ch; see pconn_rpc. */
static int
wait_method(struct pconn *c, uint16_t ch, uint32_t id, struct amqp_method *m,
            uint64_t deadline)
{
    for (;;) {
        struct frame f;
        int rc = pconn_next_frame(c, &f);

        if (rc == WR_ERR)
            return WR_ERR;
        if (rc == WR_OK) {
            if (f.type == FRAME_METHOD && f.channel == ch &&
                f.payload.len >= 4 && be32_load(f.payload.ptr) == id)
                return decode(c, &f, m);
            if (pconn_handle_other(c, &f) != WR_OK)
                return WR_ERR;
            continue;
        }
        if (!(pconn_wait(c, POLLIN, deadline) & (POLLIN | POLLERR | POLLHUP))) {
            set_err(c, "timed out waiting for %s", amqp_method_name(id));
            return WR_ERR;
        }
        if (pconn_read(c) == WR_ERR)
            return WR_ERR;
    }
}

int
pconn_rpc(struct pconn *c, uint16_t ch, const struct amqp_method *req,
          uint32_t reply_id, struct amqp_method *reply)
{
    uint64_t deadline = perf_now_ns() + PCONN_SETUP_TIMEOUT_NS;
    struct amqp_method scratch;

    pconn_put_method(c, ch, req);
    if (pconn_flush_wait(c, deadline) != WR_OK)
        return WR_ERR;
    return wait_method(c, ch, reply_id, reply ? reply : &scratch, deadline);
}

/* client-properties: product, version, capabilities. */
static void
put_client_props(struct buf *b)
{
    size_t mark;

    fenc_cstr(b, "product", "warren-perf");
    fenc_cstr(b, "version", WARREN_VERSION);
    fenc_cstr(b, "platform", "C");
    fenc_key(b, "capabilities");
    buf_put_u8(b, 'F');
    mark = ftable_begin(b);
    fenc_bool(b, "publisher_confirms", true);
    fenc_bool(b, "consumer_cancel_notify", true);
    fenc_bool(b, "basic.nack", true);
    fenc_bool(b, "connection.blocked", true);
    fenc_bool(b, "exchange_exchange_bindings", true);
    ftable_end(b, mark);
}

static bool
has_plain(struct bytes mechs)
{
    for (size_t i = 0; i + 5 <= mechs.len; i++) {
        if (memcmp(mechs.ptr + i, "PLAIN", 5) == 0 &&
            (i == 0 || mechs.ptr[i - 1] == ' ') &&
            (i + 5 == mechs.len || mechs.ptr[i + 5] == ' '))
            return true;
    }
    return false;
}

/* Queues start-ok: SASL PLAIN "\0user\0pass". */
static void
put_start_ok(struct pconn *c, const struct perf_target *t)
{
    struct amqp_method out;
    struct buf props;
    struct buf resp;

    buf_init(&props);
    buf_init(&resp);
    put_client_props(&props);
    buf_put_u8(&resp, 0);
    buf_append(&resp, t->user, strlen(t->user));
    buf_put_u8(&resp, 0);
    buf_append(&resp, t->pass, strlen(t->pass));
    memset(&out, 0, sizeof(out));
    out.id = AMQP_CONNECTION_START_OK;
    out.u.connection_start_ok.client_properties = buf_bytes(&props);
    out.u.connection_start_ok.mechanism = BYTES_LIT("PLAIN");
    out.u.connection_start_ok.response = buf_bytes(&resp);
    out.u.connection_start_ok.locale = BYTES_LIT("en_US");
    pconn_put_method(c, 0, &out);
    buf_fini(&props);
    buf_fini(&resp);
}

/* Takes the server's tune, queues tune-ok (its channel_max and frame_max,
 * heartbeat 0) and connection.open. */
static int
put_tune_ok_open(struct pconn *c, const struct perf_target *t,
                 const struct amqp_connection_tune *tune)
{
    struct amqp_method out;
    uint32_t frame_max = tune->frame_max ? tune->frame_max : PCONN_FRAME_DFLT;

    if (frame_max < FRAME_MIN_SIZE) {
        set_err(c, "broker's frame_max %u is below 4096", frame_max);
        return WR_ERR;
    }
    c->frame_max = frame_max;
    c->channel_max = tune->channel_max;
    frame_parser_init(&c->fp, frame_max);
    memset(&out, 0, sizeof(out));
    out.id = AMQP_CONNECTION_TUNE_OK;
    out.u.connection_tune_ok.channel_max = c->channel_max;
    out.u.connection_tune_ok.frame_max = frame_max;
    out.u.connection_tune_ok.heartbeat = 0;
    pconn_put_method(c, 0, &out);
    memset(&out, 0, sizeof(out));
    out.id = AMQP_CONNECTION_OPEN;
    out.u.connection_open.virtual_host = bytes_str(t->vhost);
    pconn_put_method(c, 0, &out);
    return WR_OK;
}

static int
handshake(struct pconn *c, const struct perf_target *t, uint64_t deadline)
{
    struct amqp_method m;

    buf_append(&c->out.b, AMQP_PROTOCOL_HEADER, AMQP_PROTOCOL_HEADER_LEN);
    wq_commit(&c->out);
    if (pconn_flush_wait(c, deadline) != WR_OK ||
        wait_method(c, 0, AMQP_CONNECTION_START, &m, deadline) != WR_OK)
        return WR_ERR;
    if (!has_plain(m.u.connection_start.mechanisms)) {
        set_err(c, "the broker does not offer SASL PLAIN");
        return WR_ERR;
    }
    put_start_ok(c, t);
    if (pconn_flush_wait(c, deadline) != WR_OK ||
        wait_method(c, 0, AMQP_CONNECTION_TUNE, &m, deadline) != WR_OK ||
        put_tune_ok_open(c, t, &m.u.connection_tune) != WR_OK ||
        pconn_flush_wait(c, deadline) != WR_OK)
        return WR_ERR;
    return wait_method(c, 0, AMQP_CONNECTION_OPEN_OK, &m, deadline);
}

int
pconn_channel_open(struct pconn *c, uint16_t ch)
{
    struct amqp_method m;

    memset(&m, 0, sizeof(m));
    m.id = AMQP_CHANNEL_OPEN;
    return pconn_rpc(c, ch, &m, AMQP_CHANNEL_OPEN_OK, NULL);
}

int
pconn_open(struct pconn *c, const struct perf_target *t)
{
    uint64_t deadline = perf_now_ns() + PCONN_SETUP_TIMEOUT_NS;

    size_input(c);
    if (connect_to(c, t, deadline) != WR_OK)
        return WR_ERR;
    if (handshake(c, t, deadline) != WR_OK)
        return WR_ERR;
    return pconn_channel_open(c, 1);
}

int
pconn_close(struct pconn *c, uint64_t deadline_ns)
{
    struct amqp_method m;
    int rc = WR_ERR;

    if (c->fd < 0)
        return WR_ERR;
    memset(&m, 0, sizeof(m));
    m.id = AMQP_CONNECTION_CLOSE;
    m.u.connection_close.reply_code = 200;
    m.u.connection_close.reply_text = BYTES_LIT("Goodbye");
    pconn_put_method(c, 0, &m);
    if (pconn_flush_wait(c, deadline_ns) != WR_OK)
        goto out;
    for (;;) {
        struct frame f;
        int st = pconn_next_frame(c, &f);

        if (st == WR_ERR)
            goto out;
        if (st == WR_OK) {
            if (f.type != FRAME_METHOD || f.channel != 0 || f.payload.len < 4)
                continue; /* deliveries, confirms in flight */
            if (be32_load(f.payload.ptr) == AMQP_CONNECTION_CLOSE_OK) {
                rc = WR_OK;
                goto out;
            }
            if (be32_load(f.payload.ptr) == AMQP_CONNECTION_CLOSE) {
                (void)pconn_handle_other(c, &f);
                goto out;
            }
            continue;
        }
        if (pconn_wait(c, POLLIN, deadline_ns) == 0) {
            set_err(c, "timed out waiting for connection.close-ok");
            goto out;
        }
        if (pconn_read(c) == WR_ERR)
            goto out;
    }
out: /* the socket goes either way */
    close(c->fd);
    c->fd = -1;
    return rc;
}
