/*
 * mgmt_http.c: the management API's HTTP/1.1 server, on the broker's
 * one libev loop, parsing with Debian's http-parser.
 *
 * A connection reads into `in`, feeds it to the parser, and stops the
 * parser (http_parser_pause) at the end of each request: the request is
 * dispatched (to the handler given at start: mgmt_routes.c), its
 * response appended to `out` (an
 * outq, server/outq.h, flushed as the AMQP connections' are), and only
 * then is the next pipelined request parsed. Responses are written at
 * once and, when the socket is full, from the write watcher
 * (write-behind). A streamed body (struct mgmt_stream, chunked encoding)
 * is generated a slice at a time while the output is below
 * OUT_LOW, so a large list neither builds in memory nor holds the loop.
 *
 * Limits, so that nothing a client sends can hurt the broker:
 *   - request line + headers at most MGMT_MAX_HEADER_BYTES (431);
 *   - a body at most max_body bytes (413 as soon as Content-Length says
 *     so, or when a chunked body grows past it); a body larger than
 *     MGMT_ANON_BODY (or chunked) is read only after the credentials
 *     were checked (401 before it is sent), so an anonymous client
 *     cannot make the broker hold more than that per connection;
 *   - MGMT_HEADER_TIMEOUT from a request's first byte to its last
 *     header, MGMT_BODY_TIMEOUT between body bytes, MGMT_IDLE_TIMEOUT
 *     of keep-alive, MGMT_WRITE_TIMEOUT for a client that stops reading;
 *   - unparsed pipelined input and pending output are bounded (reading
 *     pauses above IN_HIGH/OUT_HIGH);
 *   - at most MGMT_MAX_CONNS connections, MGMT_MAX_PEER_CONNS of them
 *     from one address. A connection is anonymous until a request on it
 *     passes basic auth; anonymous ones must authenticate within
 *     MGMT_ANON_TIMEOUT of their accept, and when a limit is reached a
 *     new connection takes the place of the oldest anonymous one (of
 *     that address, for the per-address limit). So idle or slow sockets
 *     opened without credentials cannot lock a user out: there is always
 *     room for a connection that logs in.
 * After an error response the connection half-closes and drains input
 * for up to LINGER seconds, so that the client reads the response
 * instead of a reset.
 *
 * Invariants: a connection is freed only from the prepare hook (never in
 * its own callback); its state is MC_BUSY from the end of a request's
 * parse until its response is complete (a stream included), and no other
 * request of that connection is parsed meanwhile.
 */
#include "server/mgmt/mgmt_int.h"
#include "server/tls.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <utlist.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#define MGMT_CONN_MAGIC 0x48545450u /* "HTTP" */
#define RX_CHUNK        (64u << 10)
#define IN_HIGH         (256u << 10) /* unparsed input: stop reading */
#define OUT_LOW         (256u << 10) /* stream: generate more below this */
#define OUT_HIGH        (1u << 20)   /* stop parsing pipelined requests */
#define STREAM_SLICE    (512u << 10) /* generated per callback */
#define LINGER          2.0

enum mc_state {
    MC_IDLE,    /* waiting for a request's first byte */
    MC_HEADERS, /* request line and headers */
    MC_BODY,    /* body */
    MC_BUSY,    /* dispatched; response or stream in progress */
    MC_LINGER,  /* response sent, half-closed, draining input */
    MC_DEAD,
};

struct mgmt_conn {
    uint32_t magic;
    int fd;
    struct tls *tls; /* HTTPS (management.ssl.port); NULL: HTTP */
    enum mc_state state;
    ev_io rio, wio;
    ev_timer timer;
    http_parser parser;
    char peer[64];
    bool loopback;
    bool prometheus; /* accepted by the Prometheus listener */
    /* input */
    struct buf in; /* received, not yet parsed */
    ev_tstamp req_start, last_rx, last_tx, linger_since;
    /* the request being parsed */
    struct buf url;
    struct buf hname, hval;
    bool in_value;
    char *authorization, *x_reason, *content_type, *if_none_match;
    bool hdr_local; /* x-warren-local: 1 (another node asks this one) */
    bool expect_continue;
    struct buf body;
    size_t hdr_bytes;
    bool complete; /* on_message_complete ran */
    int err_status;
    /* output */
    struct outq out; /* written with outq_flush, as AMQP output is */
    struct mgmt_stream *stream;
    struct mgmt_req *deferred; /* answered later (mgmt_http_defer) */
    bool want_write;
    bool processing;  /* inside process_input: do not re-enter */
    bool peer_closed; /* EOF read: answer what is complete, then close */
    bool close_after; /* no more requests: close once out is written */
    /* admission (see the header) */
    struct mgmt_peer *from;
    bool authenticated;
    ev_tstamp accepted;
    struct mgmt_conn *anon_next, *anon_prev;           /* g.anon */
    struct mgmt_conn *peer_anon_next, *peer_anon_prev; /* from->anon */
    struct mgmt_conn *next, *prev;
    struct mgmt_conn *reap_next;
};

/* The connections from one address (host part of the peer text). */
struct mgmt_peer {
    char host[64];
    uint32_t nconns;
    struct mgmt_conn *anon; /* anonymous ones, oldest first */
    UT_hash_handle hh;
};

static struct mgmt {
    struct server *s;
    const struct mgmt_http_handler *h; /* who answers requests */
    bool running;
    struct listener l;
    struct listener ls;     /* HTTPS: management.ssl.port */
    struct tls_server *tls; /* management.ssl.*, for ls */
    struct listener prom;   /* prometheus.tcp.port: the metrics pages only */
    ev_prepare prepare;
    size_t max_body;
    struct mgmt_conn *conns;
    uint32_t nconns;
    struct mgmt_conn *anon; /* anonymous connections, oldest first */
    struct mgmt_peer *peers;
    struct mgmt_conn *reap;
    http_parser_settings settings;
} g;

static void mc_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void mc_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void mc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void req_free(struct mgmt_req *r);
static void process_input(struct mgmt_conn *c);
static void flush_output(struct mgmt_conn *c);

/* ---- small helpers */

static ev_tstamp
now(void)
{
    return ev_now(g.s->loop);
}

static const char *
status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static size_t
out_pending(const struct mgmt_conn *c)
{
    return outq_pending(&c->out);
}

/* The timeout that applies in c's state, as an absolute time. */
static ev_tstamp
state_deadline(const struct mgmt_conn *c)
{
    if (c->state == MC_LINGER)
        return c->linger_since + LINGER;
    if (out_pending(c) > 0)
        return WR_MAX(c->last_tx, c->last_rx) + MGMT_WRITE_TIMEOUT;
    switch (c->state) {
    case MC_HEADERS:
        return c->req_start + MGMT_HEADER_TIMEOUT;
    case MC_BODY:
        return c->last_rx + MGMT_BODY_TIMEOUT;
    case MC_BUSY:
        return WR_MAX(c->last_tx, c->last_rx) + MGMT_WRITE_TIMEOUT;
    default:
        return WR_MAX(c->last_tx, c->last_rx) + MGMT_IDLE_TIMEOUT;
    }
}

static ev_tstamp
deadline(const struct mgmt_conn *c)
{
    ev_tstamp d = state_deadline(c);

    /* A stream being written to an anonymous client (a scrape of the
     * metrics, which need no login) is bounded by the write timeout. */
    if (!c->authenticated && !c->stream)
        d = WR_MIN(d, c->accepted + MGMT_ANON_TIMEOUT);
    return d;
}

/* Arms the timer for the current state's deadline (libev's "smart"
 * timeouts: activity only moves timestamps; the callback re-arms). */
static void
rearm(struct mgmt_conn *c)
{
    ev_tstamp left = deadline(c) - now();

    c->timer.repeat = left > 0.001 ? left : 0.001;
    ev_timer_again(g.s->loop, &c->timer);
}

static void
reset_request(struct mgmt_conn *c)
{
    buf_reset(&c->url);
    buf_reset(&c->hname);
    buf_reset(&c->hval);
    buf_reset(&c->body);
    if (c->body.cap > (1u << 20))
        buf_fini(&c->body);
    free(c->authorization);
    free(c->x_reason);
    free(c->content_type);
    free(c->if_none_match);
    c->authorization = c->x_reason = c->content_type = NULL;
    c->if_none_match = NULL;
    c->hdr_local = false;
    c->in_value = false;
    c->expect_continue = false;
    c->hdr_bytes = 0;
    c->complete = false;
    c->err_status = 0;
}

/* ---- admission: per-address counts and the anonymous lists */

static void
anon_remove(struct mgmt_conn *c)
{
    if (c->authenticated)
        return;
    DL_DELETE2(g.anon, c, anon_prev, anon_next);
    DL_DELETE2(c->from->anon, c, peer_anon_prev, peer_anon_next);
    c->authenticated = true;
}

static void
admission_leave(struct mgmt_conn *c)
{
    struct mgmt_peer *p = c->from;

    anon_remove(c);
    if (--p->nconns == 0) {
        HASH_DEL(g.peers, p);
        free(p);
    }
}

/* The address's record, created with no connections. */
static struct mgmt_peer *
peer_get(const char *peer_text)
{
    const char *colon = strrchr(peer_text, ':');
    size_t n = colon ? (size_t)(colon - peer_text) : strlen(peer_text);
    struct mgmt_peer *p;

    n = WR_MIN(n, sizeof(p->host) - 1);
    HASH_FIND(hh, g.peers, peer_text, n, p);
    if (p)
        return p;
    p = xcalloc(1, sizeof(*p));
    memcpy(p->host, peer_text, n);
    HASH_ADD(hh, g.peers, host, n, p);
    return p;
}

void
mgmt_http_authenticated(struct mgmt_req *r)
{
    anon_remove(r->conn);
}

static void mc_close(struct mgmt_conn *c);

/* Makes room for one more connection from p: true when there is room,
 * after closing the oldest anonymous connection if a limit is reached. */
static bool
admit(struct mgmt_peer *p)
{
    if (p->nconns >= MGMT_MAX_PEER_CONNS) {
        if (!p->anon)
            return false;
        mc_close(p->anon);
    }
    if (g.nconns >= MGMT_MAX_CONNS) {
        if (!g.anon)
            return false;
        mc_close(g.anon);
    }
    return true;
}

static void
mc_close(struct mgmt_conn *c)
{
    if (c->state == MC_DEAD)
        return;
    ev_io_stop(g.s->loop, &c->rio);
    ev_io_stop(g.s->loop, &c->wio);
    ev_timer_stop(g.s->loop, &c->timer);
    tls_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = MC_DEAD;
    if (c->stream) {
        c->stream->free(c->stream);
        c->stream = NULL;
    }
    if (c->deferred) {
        struct mgmt_req *d = c->deferred;

        c->deferred = NULL;
        if (d->abort)
            d->abort(d);
        req_free(d);
        free(d);
    }
    admission_leave(c);
    DL_DELETE(g.conns, c);
    g.nconns--;
    c->reap_next = g.reap;
    g.reap = c;
}

static void
mc_free(struct mgmt_conn *c)
{
    WR_ASSERT(c->magic == MGMT_CONN_MAGIC && c->state == MC_DEAD);
    reset_request(c);
    buf_fini(&c->in);
    buf_fini(&c->url);
    buf_fini(&c->hname);
    buf_fini(&c->hval);
    buf_fini(&c->body);
    outq_fini(&c->out);
    c->magic = 0;
    free(c);
}

/* No more requests on c: close once the output is written, then linger. */
static void
finish_after_output(struct mgmt_conn *c)
{
    c->close_after = true;
    flush_output(c);
}

/* ---- responses */

static void
put_date(struct buf *b)
{
    char text[64];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    buf_printf(b, "date: %s\r\n", text);
}

/* A response that is not a handler's: errors found by the HTTP layer. */
static void
simple_response(struct mgmt_conn *c, int status, const char *json)
{
    size_t n = json ? strlen(json) : 0;

    buf_printf(&c->out.b, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    buf_printf(&c->out.b, "content-length: %zu\r\n", n);
    if (json)
        buf_printf(&c->out.b, "content-type: application/json\r\n");
    if (status == 401)
        buf_printf(&c->out.b, "www-authenticate: Basic realm=\"RabbitMQ "
                              "Management\"\r\n");
    put_date(&c->out.b);
    buf_printf(&c->out.b, "server: Warren\r\nconnection: close\r\n\r\n");
    buf_append(&c->out.b, json, n);
}

static void
fail_request(struct mgmt_conn *c, int status)
{
    const char *body = NULL;

    switch (status) {
    case 400:
        body = "{\"error\":\"bad_request\",\"reason\":\"Bad Request\"}";
        break;
    case 413:
        body = "{\"error\":\"bad_request\",\"reason\":\"Exceeded HTTP "
               "request body size limit\"}";
        break;
    case 431:
        body = "{\"error\":\"bad_request\",\"reason\":\"Request header "
               "fields too large\"}";
        break;
    case 401:
        body = "{\"error\":\"not_authorized\",\"reason\":\"Login "
               "failed\"}";
        break;
    default:
        break;
    }
    log_debug("mgmt: %s: HTTP %d", c->peer, status);
    simple_response(c, status, body);
    c->state = MC_BUSY;
    finish_after_output(c);
}

void
mgmt_http_respond(struct mgmt_req *r, const char *content_type)
{
    struct mgmt_conn *c = r->conn;
    struct buf *o = &c->out.b;
    bool has_body = r->status != 204 && r->status != 304;

    WR_ASSERT(!r->replied);
    r->replied = true;
    if (r->hold) {
        r->held_type = content_type;
        return;
    }
    buf_printf(o, "HTTP/1.1 %d %s\r\n", r->status, status_text(r->status));
    if (r->status == 200)
        buf_printf(o, "cache-control: no-cache\r\n");
    if (r->stream && !r->head)
        buf_printf(o, "transfer-encoding: chunked\r\n");
    else if (has_body)
        buf_printf(o, "content-length: %zu\r\n", r->out.len);
    if (content_type && has_body)
        buf_printf(o, "content-type: %s\r\n", content_type);
    put_date(o);
    buf_printf(o, "server: Warren\r\nvary: accept, accept-encoding, "
                  "origin\r\n");
    buf_append(o, r->hdrs.data, r->hdrs.len);
    if (c->close_after)
        buf_printf(o, "connection: close\r\n");
    buf_printf(o, "\r\n");
    if (r->head) {
        if (r->stream)
            r->stream->free(r->stream);
        r->stream = NULL;
        return;
    }
    if (r->stream) {
        c->stream = r->stream;
        r->stream = NULL;
        return;
    }
    if (has_body)
        buf_append(o, r->out.data, r->out.len);
}

const char *
mgmt_http_peer(const struct mgmt_req *r)
{
    return r->conn->peer;
}

const char *
mgmt_http_addr(void)
{
    return g.l.addr;
}

const char *
mgmt_https_addr(void)
{
    return g.ls.fd >= 0 ? g.ls.addr : NULL;
}

uint16_t
mgmt_http_port(void)
{
    return g.l.port;
}

uint32_t
mgmt_http_nconns(void)
{
    return g.nconns;
}

/* Appends one chunk of the stream (chunked transfer-encoding framing
 * around what fill() wrote). Returns false when the stream ended. */
static bool
stream_slice(struct mgmt_conn *c)
{
    struct buf piece;
    bool more;

    buf_init(&piece);
    more = true;
    while (more && piece.len < STREAM_SLICE)
        more = c->stream->fill(c->stream, &piece);
    if (piece.len > 0) {
        buf_printf(&c->out.b, "%zx\r\n", piece.len);
        buf_append(&c->out.b, piece.data, piece.len);
        buf_printf(&c->out.b, "\r\n");
    }
    buf_fini(&piece);
    if (!more) {
        buf_printf(&c->out.b, "0\r\n\r\n");
        c->stream->free(c->stream);
        c->stream = NULL;
    }
    return more;
}

static void
start_linger(struct mgmt_conn *c)
{
    if (c->tls) { /* close_notify; what still comes is only discarded */
        tls_free(c->tls);
        c->tls = NULL;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = MC_LINGER;
    c->linger_since = now();
    buf_fini(&c->in);
    if (!ev_is_active(&c->rio))
        ev_io_start(g.s->loop, &c->rio);
    rearm(c);
}

/* Writes what is pending; generates one more slice of a stream when the
 * output ran low. Closes, lingers or resumes parsing as the state says. */
static void
flush_output(struct mgmt_conn *c)
{
    if (c->state == MC_DEAD)
        return;
    if (c->stream && out_pending(c) < OUT_LOW)
        stream_slice(c);
    if (out_pending(c) > 0) {
        uint64_t sent = 0;

        if ((c->tls ? tls_flush(c->tls, &c->out, &sent)
                    : outq_flush(&c->out, c->fd, &sent)) == WR_ERR) {
            mc_close(c);
            return;
        }
        if (sent > 0)
            c->last_tx = now();
    }
    /* Keep the write watcher while bytes wait or a stream has more. */
    if ((out_pending(c) > 0 || c->stream) && !c->want_write) {
        c->want_write = true;
        ev_io_start(g.s->loop, &c->wio);
    } else if (out_pending(c) == 0 && !c->stream && c->want_write &&
               !(c->tls && tls_read_wants_write(c->tls))) {
        c->want_write = false;
        ev_io_stop(g.s->loop, &c->wio);
    }
    if (out_pending(c) > 0 || c->stream || c->deferred) {
        rearm(c);
        return;
    }
    if (c->state == MC_BUSY) {
        if (c->close_after) {
            start_linger(c);
            return;
        }
        c->state = MC_IDLE;
        rearm(c);
        if (c->in.len > 0 && !c->processing)
            process_input(c);
        if (c->peer_closed && !c->processing && c->state != MC_BUSY &&
            c->state != MC_DEAD && c->state != MC_LINGER) {
            mc_close(c);
            return;
        }
        if (c->state != MC_DEAD && !ev_is_active(&c->rio) &&
            c->state != MC_BUSY && !c->peer_closed)
            ev_io_start(g.s->loop, &c->rio);
    }
}

/* ---- parser callbacks */

static struct mgmt_conn *
mc_of(http_parser *p)
{
    return (struct mgmt_conn *)p->data;
}

static int
count_header_bytes(struct mgmt_conn *c, size_t n)
{
    c->hdr_bytes += n;
    if (c->hdr_bytes > MGMT_MAX_HEADER_BYTES) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int
on_message_begin(http_parser *p)
{
    struct mgmt_conn *c = mc_of(p);

    reset_request(c);
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct mgmt_conn *c = mc_of(p);

    if (count_header_bytes(c, len) != 0)
        return -1;
    buf_append(&c->url, at, len);
    return 0;
}

/* A complete header (name and value) is in hname/hval: keep what the
 * API needs. */
static void
header_done(struct mgmt_conn *c)
{
    char **slot = NULL;
    const char *name = (const char *)c->hname.data;
    size_t nlen = c->hname.len;

    if (nlen == 13 && strncasecmp(name, "authorization", 13) == 0)
        slot = &c->authorization;
    else if (nlen == 8 && strncasecmp(name, "x-reason", 8) == 0)
        slot = &c->x_reason;
    else if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0)
        slot = &c->content_type;
    else if (nlen == 13 && strncasecmp(name, "if-none-match", 13) == 0)
        slot = &c->if_none_match;
    else if (nlen == 14 && strncasecmp(name, "x-warren-local", 14) == 0)
        c->hdr_local = c->hval.len == 1 && c->hval.data[0] == '1';
    else if (nlen == 6 && strncasecmp(name, "expect", 6) == 0)
        c->expect_continue =
            c->hval.len == 12 &&
            strncasecmp((const char *)c->hval.data, "100-continue", 12) == 0;
    if (slot) {
        free(*slot);
        *slot = xstrndup(c->hval.data, c->hval.len);
    }
    buf_reset(&c->hname);
    buf_reset(&c->hval);
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct mgmt_conn *c = mc_of(p);

    if (count_header_bytes(c, len) != 0)
        return -1;
    if (c->in_value) {
        header_done(c);
        c->in_value = false;
    }
    buf_append(&c->hname, at, len);
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct mgmt_conn *c = mc_of(p);

    if (count_header_bytes(c, len) != 0)
        return -1;
    c->in_value = true;
    buf_append(&c->hval, at, len);
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    struct mgmt_conn *c = mc_of(p);

    if (c->in_value)
        header_done(c);
    c->in_value = false;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > g.max_body) {
        c->err_status = 413;
        return -1;
    }
    /* Only a management user may make the broker hold a large body:
     * an anonymous client gets its 401 before sending it. */
    if (((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) &&
                                    p->content_length > MGMT_ANON_BODY)) &&
        !g.h->credentials_ok(c->authorization, c->loopback)) {
        c->err_status = 401;
        return -1;
    }
    c->state = MC_BODY;
    if (c->expect_continue && (p->flags & (F_CHUNKED | F_CONTENTLENGTH)) &&
        p->content_length > 0) {
        buf_printf(&c->out.b, "HTTP/1.1 100 Continue\r\n\r\n");
        flush_output(c);
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct mgmt_conn *c = mc_of(p);

    if (c->body.len + len > g.max_body) {
        c->err_status = 413;
        return -1;
    }
    buf_append(&c->body, at, len);
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct mgmt_conn *c = mc_of(p);

    c->complete = true;
    /* One request at a time: stop here until it has been answered. */
    http_parser_pause(p, 1);
    return 0;
}

/* ---- requests */

static int
hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *
mgmt_pct_decode(const char *s, size_t n, bool plus_space, size_t *outlen)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];

        if (ch == '%') {
            int hi, lo;

            if (i + 2 >= n)
                goto bad;
            hi = hexval((uint8_t)s[i + 1]);
            lo = hexval((uint8_t)s[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad;
            ch = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (ch == 0 && !outlen)
            goto bad;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    if (outlen)
        *outlen = o;
    return out;
bad: /* a truncated or non-hex escape, or a NUL byte */
    free(out);
    return NULL;
}

static void
req_free(struct mgmt_req *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->seg[i]);
    for (size_t i = 0; i < r->nq; i++) {
        free(r->q[i].key);
        free(r->q[i].value);
    }
    free(r->user_name_copy);
    free(r->target);
    buf_fini(&r->hdrs);
    buf_fini(&r->out);
    if (r->stream)
        r->stream->free(r->stream);
}

/* Splits the path into decoded segments. Returns false on a bad escape
 * or too many segments. */
static bool
parse_path(struct mgmt_req *r, const char *p, size_t n)
{
    size_t i = 0;

    if (n == 0 || p[0] != '/')
        return false;
    i = 1;
    while (i <= n) {
        size_t j = i;

        while (j < n && p[j] != '/')
            j++;
        if (j == n && j == i && r->nseg > 0)
            break; /* one trailing slash */
        if (r->nseg == MGMT_MAX_SEGS)
            return false;
        r->seg[r->nseg] = mgmt_pct_decode(p + i, j - i, false, NULL);
        if (!r->seg[r->nseg])
            return false;
        r->nseg++;
        i = j + 1;
    }
    if (r->nseg == 1 && r->seg[0][0] == 0) {
        free(r->seg[0]);
        r->nseg = 0;
    }
    return true;
}

static bool
parse_query(struct mgmt_req *r, const char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t j = i, eq;

        while (j < n && p[j] != '&')
            j++;
        for (eq = i; eq < j && p[eq] != '='; eq++)
            ;
        if (j > i) {
            struct mgmt_qparam *qp;

            if (r->nq == MGMT_MAX_QPARAMS)
                return false;
            qp = &r->q[r->nq];
            qp->key = mgmt_pct_decode(p + i, eq - i, true, NULL);
            qp->value =
                eq < j ? mgmt_pct_decode(p + eq + 1, j - eq - 1, true, NULL)
                       : xstrdup("");
            if (!qp->key || !qp->value) {
                free(qp->key);
                free(qp->value);
                return false;
            }
            r->nq++;
        }
        i = j + 1;
    }
    return true;
}

/* Builds the request from what the parser collected and dispatches it. */
static void
dispatch(struct mgmt_conn *c)
{
    struct mgmt_req r;
    const char *url = (const char *)c->url.data;
    size_t n = c->url.len, qpos;
    bool ok;

    memset(&r, 0, sizeof(r));
    r.conn = c;
    r.method = (enum http_method)c->parser.method;
    r.head = r.method == HTTP_HEAD;
    r.peer_loopback = c->loopback;
    r.body = bytes_of(c->body.data, c->body.len);
    r.authorization = c->authorization;
    r.x_reason = c->x_reason;
    r.content_type = c->content_type;
    r.if_none_match = c->if_none_match;
    r.local = c->hdr_local;
    r.prometheus = c->prometheus;
    buf_init(&r.hdrs);
    buf_init(&r.out);
    /* absolute-form "http://host/path" */
    if (n > 7 && strncasecmp(url, "http://", 7) == 0) {
        const char *slash = memchr(url + 7, '/', n - 7);
        size_t skip = slash ? (size_t)(slash - url) : n;
        url += skip;
        n -= skip;
    }
    for (qpos = 0; qpos < n && url[qpos] != '?' && url[qpos] != '#'; qpos++)
        ;
    r.target = xstrndup(url, n);
    ok = parse_path(&r, url, qpos);
    if (ok && qpos < n && url[qpos] == '?') {
        size_t end = qpos + 1;
        while (end < n && url[end] != '#')
            end++;
        ok = parse_query(&r, url + qpos + 1, end - qpos - 1);
    }
    if (!http_should_keep_alive(&c->parser) || c->parser.upgrade)
        c->close_after = true;
    r.bad_target = !ok;
    g.h->dispatch(&r);
    req_free(&r);
}

struct mgmt_req *
mgmt_http_defer(struct mgmt_req *r)
{
    struct mgmt_req *d = xmalloc(sizeof(*d));
    struct mgmt_conn *c = r->conn;

    WR_ASSERT((!r->replied || r->hold) && !c->deferred);
    *d = *r;
    /* the copy owns the strings now; the original frees nothing */
    memset(r, 0, sizeof(*r));
    buf_init(&r->hdrs);
    buf_init(&r->out);
    r->replied = true;
    r->hold = false;
    d->body = BYTES_NULL; /* the connection reuses its body buffer */
    d->authorization = d->x_reason = d->content_type = d->if_none_match = NULL;
    if (d->user_name && d->user_name != d->user_name_copy)
        d->user_name = d->user_name_copy = xstrdup(d->user_name);
    d->user = NULL;
    c->deferred = d;
    return d;
}

void
mgmt_http_release(struct mgmt_req *r)
{
    WR_ASSERT(r->replied); /* and held, or hold just cleared */
    r->hold = false;
    r->replied = false;
    mgmt_http_respond(r, r->held_type);
}

void
mgmt_http_resume(struct mgmt_req *d)
{
    struct mgmt_conn *c = d->conn;

    WR_ASSERT(c->deferred == d && d->replied);
    c->deferred = NULL;
    req_free(d);
    free(d);
    flush_output(c);
}

/* Feeds buffered input to the parser, one request at a time. */
static void
process_input(struct mgmt_conn *c)
{
    c->processing = true;
    while (c->state != MC_DEAD && c->state != MC_BUSY &&
           c->state != MC_LINGER && c->in.len > 0) {
        size_t used;
        enum http_errno err;

        if (out_pending(c) > OUT_HIGH)
            break; /* resumed once the client has read its responses */
        if (c->state == MC_IDLE) {
            c->state = MC_HEADERS;
            c->req_start = now();
            rearm(c);
        }
        used = http_parser_execute(&c->parser, &g.settings,
                                   (const char *)c->in.data, c->in.len);
        err = HTTP_PARSER_ERRNO(&c->parser);
        buf_consume(&c->in, WR_MIN(used, c->in.len));
        if (c->state == MC_DEAD)
            break;
        if (err == HPE_PAUSED && c->complete) {
            http_parser_pause(&c->parser, 0);
            c->state = MC_BUSY;
            dispatch(c);
            reset_request(c);
            if (c->close_after)
                buf_fini(&c->in);
            flush_output(c);
            continue;
        }
        if (err != HPE_OK) {
            int status = c->err_status ? c->err_status : 400;

            log_debug("mgmt: %s: %s", c->peer, http_errno_description(err));
            buf_fini(&c->in);
            c->processing = false;
            fail_request(c, status);
            return;
        }
        if (used == 0)
            break;
    }
    c->processing = false;
    if (c->state != MC_DEAD && c->in.len > IN_HIGH && ev_is_active(&c->rio))
        ev_io_stop(g.s->loop, &c->rio);
}

/* ---- watchers */

static void
mc_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mgmt_conn *c = container_of(w, struct mgmt_conn, rio);
    uint8_t *dst;
    ssize_t n;

    (void)loop;
    (void)revents;
    WR_ASSERT(c->magic == MGMT_CONN_MAGIC);
    if (c->state == MC_LINGER) {
        uint8_t sink[4096];

        n = read(c->fd, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            mc_close(c);
        return;
    }
    dst = buf_reserve(&c->in, RX_CHUNK);
    n = c->tls ? tls_read(c->tls, dst, RX_CHUNK) : read(c->fd, dst, RX_CHUNK);
    if (n == 0) {
        /* The client is done sending: answer what is complete, then
         * close. A request cut short is dropped. */
        c->peer_closed = true;
        ev_io_stop(g.s->loop, &c->rio);
        if (c->state != MC_BUSY)
            process_input(c);
        if (c->state == MC_BUSY)
            c->close_after = true;
        else if (c->state != MC_DEAD)
            mc_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            mc_close(c);
        else if (c->tls && tls_read_wants_write(c->tls) && !c->want_write) {
            c->want_write = true; /* a handshake flight to send first */
            ev_io_start(loop, &c->wio);
        }
        return;
    }
    c->in.len += (size_t)n;
    c->last_rx = now();
    process_input(c);
    /* Decrypted input left inside OpenSSL: the socket may stay quiet. */
    if (c->state != MC_DEAD && c->tls && ev_is_active(&c->rio) &&
        tls_has_pending(c->tls))
        ev_feed_event(loop, &c->rio, EV_READ);
}

static void
mc_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mgmt_conn *c = container_of(w, struct mgmt_conn, wio);

    (void)revents;
    WR_ASSERT(c->magic == MGMT_CONN_MAGIC);
    if (c->tls && tls_take_read_wants_write(c->tls) && ev_is_active(&c->rio)) {
        mc_read_cb(loop, &c->rio, EV_READ);
        if (c->state == MC_DEAD)
            return;
    }
    flush_output(c);
}

static void
mc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mgmt_conn *c = container_of(w, struct mgmt_conn, timer);
    ev_tstamp left = deadline(c) - ev_now(loop);

    (void)revents;
    WR_ASSERT(c->magic == MGMT_CONN_MAGIC);
    if (left > 0) {
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    if (c->state == MC_HEADERS || c->state == MC_BODY) {
        log_debug("mgmt: %s: request timeout", c->peer);
        buf_fini(&c->in);
        ev_io_stop(loop, &c->rio);
        simple_response(c, 408, NULL);
        c->state = MC_BUSY;
        finish_after_output(c);
        if (c->state == MC_LINGER)
            mc_close(c); /* a timed-out client gets no linger */
        return;
    }
    mc_close(c);
}

/* ---- listener */

/* A new HTTP connection, or an HTTPS one when tls is set (its handshake
 * runs in the first reads, within the anonymous connection timeout). */
static struct mgmt_conn *
mc_new(int fd, const char *peer, bool loopback, struct mgmt_peer *from,
       struct tls_server *tls)
{
    struct mgmt_conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->magic = MGMT_CONN_MAGIC;
    c->fd = fd;
    c->tls = tls ? tls_new(tls, fd) : NULL;
    c->state = MC_IDLE;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->loopback = loopback;
    c->from = from;
    from->nconns++;
    c->accepted = now();
    DL_APPEND2(g.anon, c, anon_prev, anon_next);
    DL_APPEND2(from->anon, c, peer_anon_prev, peer_anon_next);
    buf_init(&c->in);
    buf_init(&c->url);
    buf_init(&c->hname);
    buf_init(&c->hval);
    buf_init(&c->body);
    outq_init(&c->out);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->last_rx = c->last_tx = now();
    ev_io_init(&c->rio, mc_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, mc_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, mc_timer_cb);
    ev_io_start(g.s->loop, &c->rio);
    rearm(c);
    DL_APPEND(g.conns, c);
    g.nconns++;
    return c;
}

static void
mgmt_accept(struct listener *l, int fd, const struct sockaddr_storage *sa)
{
    char peer[64];
    bool loopback;
    struct mgmt_peer *p;

    if (g.s->stopping) {
        close(fd);
        return;
    }
    listener_addr_text(sa, peer, sizeof(peer), &loopback);
    p = peer_get(peer);
    if (!admit(p)) {
        if (wr_now_ms() - l->last_warn_ms > 1000) {
            l->last_warn_ms = wr_now_ms();
            log_warn("management API: refusing a connection from %s: %u "
                     "open from that address, %u in all, every one "
                     "logged in",
                     peer, p->nconns, g.nconns);
        }
        if (p->nconns == 0) {
            HASH_DEL(g.peers, p);
            free(p);
        }
        close(fd);
        return;
    }
    mc_new(fd, peer, loopback, p, l->data)->prometheus = l == &g.prom;
}

static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    while (g.reap) {
        struct mgmt_conn *c = g.reap;

        g.reap = c->reap_next;
        mc_free(c);
    }
}

/* management.ssl.port: HTTPS beside HTTP, with management.ssl.*'s
 * certificate. A certificate that cannot be loaded, or a port that
 * cannot be had, stops the start. */
static int
https_start(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    const char *ip =
        cfg->management_ssl_ip[0] ? cfg->management_ssl_ip : "0.0.0.0";
    const char *why;
    char err[1024];

    if (cfg->management_ssl_port == 0)
        return WR_OK;
    g.tls = tls_server_new(&cfg->management_ssl, "management.ssl", err,
                           sizeof(err));
    if (!g.tls) {
        log_err("management API: cannot start HTTPS: %s", err);
        return WR_ERR;
    }
    if (listener_open(&g.ls, s->loop, ip, cfg->management_ssl_port, 128,
                      "https", mgmt_accept, &why) != WR_OK) {
        log_err("management API: cannot listen on %s:%u (HTTPS): %s", ip,
                cfg->management_ssl_port, why);
        tls_server_free(g.tls);
        g.tls = NULL;
        return WR_ERR;
    }
    g.ls.data = g.tls;
    return WR_OK;
}

/*
 * management.tcp.port = 0 lets the kernel choose the port (the wire tests
 * read it from the log line, as for the AMQP listener). A listener that
 * cannot be opened stops the start, as an AMQP one does, unless
 * management.tcp.optional says the broker may run without the API when
 * the port is in use (another broker, or a RabbitMQ, on 15672).
 */
/*
 * The Prometheus listener (RabbitMQ's rabbitmq_prometheus on 15692): the
 * same HTTP server, answering only the metrics pages (mgmt_routes.c). Its
 * port follows the management port's rules: 0 asks the kernel, a port in
 * use stops the start unless prometheus.tcp.optional is set. It runs
 * with the management API (not when that is skipped as optional).
 */
static int
prom_listen(struct server *s)
{
    const struct wr_config *cfg = s->cfg;
    const char *ip = cfg->prometheus_ip[0] ? cfg->prometheus_ip : "0.0.0.0";
    const char *why;
    bool optional;

    if (listener_open(&g.prom, s->loop, ip, cfg->prometheus_port, 128,
                      "prometheus", mgmt_accept, &why) == WR_OK)
        return WR_OK;
    optional = errno == EADDRINUSE && cfg->prometheus_optional;
    log_err("prometheus: cannot listen on %s:%u: %s%s", ip,
            cfg->prometheus_port, why,
            optional ? "; running without the Prometheus listener "
                       "(prometheus.tcp.optional)"
                     : " (is another broker running? change "
                       "prometheus.tcp.port, or set prometheus.tcp.optional "
                       "= true to run without it)");
    return optional ? WR_OK : WR_ERR;
}

int
mgmt_http_start(struct server *s, const struct mgmt_http_handler *h)
{
    const struct wr_config *cfg = s->cfg;
    const char *ip = cfg->management_ip[0] ? cfg->management_ip : "0.0.0.0";
    const char *why;

    memset(&g, 0, sizeof(g));
    g.s = s;
    g.h = h;
    g.l.fd = -1;
    g.ls.fd = -1;
    g.prom.fd = -1;
    g.max_body = s->cfg->management_max_body ? s->cfg->management_max_body
                                             : MGMT_DEFAULT_MAX_BODY;
    if (listener_open(&g.l, s->loop, ip, cfg->management_port, 128, "http",
                      mgmt_accept, &why) != WR_OK) {
        bool optional = errno == EADDRINUSE && cfg->management_optional;

        log_err("management API: cannot listen on %s:%u: %s%s", ip,
                cfg->management_port, why,
                optional ? "; running without the management API "
                           "(management.tcp.optional)"
                         : " (is another broker running? change "
                           "management.tcp.port, or set "
                           "management.tcp.optional = true to run without "
                           "the API)");
        return optional ? WR_OK : WR_ERR;
    }
    if (https_start(s) != WR_OK) {
        listener_close(&g.l);
        return WR_ERR;
    }
    if (prom_listen(s) != WR_OK) {
        listener_close(&g.ls);
        tls_server_free(g.tls);
        g.tls = NULL;
        listener_close(&g.l);
        return WR_ERR;
    }
    g.settings.on_message_begin = on_message_begin;
    g.settings.on_url = on_url;
    g.settings.on_header_field = on_header_field;
    g.settings.on_header_value = on_header_value;
    g.settings.on_headers_complete = on_headers_complete;
    g.settings.on_body = on_body;
    g.settings.on_message_complete = on_message_complete;
    ev_prepare_init(&g.prepare, prepare_cb);
    ev_prepare_start(s->loop, &g.prepare);
    g.running = true;
    return WR_OK;
}

bool
mgmt_http_running(void)
{
    return g.running;
}

void
mgmt_http_stop(void)
{
    if (!g.running)
        return;
    while (g.conns)
        mc_close(g.conns);
    prepare_cb(g.s->loop, &g.prepare, 0);
    listener_close(&g.l);
    listener_close(&g.ls);
    tls_server_free(g.tls);
    g.tls = NULL;
    listener_close(&g.prom);
    ev_prepare_stop(g.s->loop, &g.prepare);
    g.running = false;
}
