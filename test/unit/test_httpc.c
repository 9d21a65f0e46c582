/*
 * Unit tests for cluster/httpc.c, the one-shot HTTP client of management
 * forwarding: a good exchange (request line, headers and body as sent;
 * status, content type and body as answered), and hostile or absent
 * servers (test_etcd_util's fake server, a closed port, silence), each an
 * error within its bound, never a hang or unbounded memory.
 */
#include "cluster/httpc.h"
#include "test/unit/test_etcd_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

static struct ev_loop *loop;

struct answer {
    int calls, status;
    char why[256], ctype[128], body[256];
};

static void
answer_cb(void *arg, int status, const char *why, struct bytes ctype,
          struct bytes body)
{
    struct answer *a = arg;

    a->calls++;
    a->status = status;
    snprintf(a->why, sizeof(a->why), "%s", why ? why : "");
    snprintf(a->ctype, sizeof(a->ctype), "%.*s", BYTES_FMT(ctype));
    snprintf(a->body, sizeof(a->body), "%.*s", BYTES_FMT(body));
}

/* A server answering one request with a fixed response; it keeps what it
 * read. */
struct server {
    int lfd, fd;
    ev_io lio, io;
    char got[4096];
    size_t ngot;
    const char *reply;
};

static void
server_io(struct ev_loop *l, ev_io *w, int revents)
{
    struct server *s = w->data;
    ssize_t n = read(s->fd, s->got + s->ngot, sizeof(s->got) - 1 - s->ngot);

    (void)revents;
    if (n > 0)
        s->ngot += (size_t)n;
    s->got[s->ngot] = '\0';
    if (strstr(s->got, "\r\n\r\nbody!") || n <= 0) {
        T_ASSERT(write(s->fd, s->reply, strlen(s->reply)) > 0);
        ev_io_stop(l, w);
        close(s->fd);
    }
}

static void
server_accept(struct ev_loop *l, ev_io *w, int revents)
{
    struct server *s = w->data;

    (void)revents;
    s->fd = accept(s->lfd, NULL, NULL);
    T_ASSERT(s->fd >= 0);
    ev_io_init(&s->io, server_io, s->fd, EV_READ);
    s->io.data = s;
    ev_io_start(l, &s->io);
}

static int
server_start(struct server *s, const char *reply)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->reply = reply;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    T_ASSERT(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    T_ASSERT(listen(s->lfd, 4) == 0);
    getsockname(s->lfd, (struct sockaddr *)&sa, &len);
    ev_io_init(&s->lio, server_accept, s->lfd, EV_READ);
    s->lio.data = s;
    ev_io_start(loop, &s->lio);
    return ntohs(sa.sin_port);
}

static struct httpc_request
request_to(const char *addr)
{
    static const char *const hdrs[] = {"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=",
                                       "Content-Type: application/json"};
    struct httpc_request q = {
        .addr = addr,
        .method = "PUT",
        .target = "/api/queues/%2F/q?x=1",
        .headers = hdrs,
        .nheaders = 2,
        .body = BYTES_LIT("body!"),
        .max_response = 1024,
        .timeout_s = 2.0,
    };

    return q;
}

static void
setup(void)
{
    alarm(60);
    loop = ev_loop_new(EVFLAG_AUTO);
    tu_tick(loop);
}

T_CASE(request_and_response)
{
    struct server s = {0};
    struct answer a = {0};
    char addr[64];
    struct httpc_request q;

    setup();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d",
             server_start(&s, "HTTP/1.1 201 Created\r\nContent-Type: "
                              "application/json\r\nContent-Length: 9\r\n\r\n"
                              "{\"ok\":1}\n"));
    q = request_to(addr);
    httpc_request(loop, &q, answer_cb, &a);
    T_EQ_INT(a.calls, 0); /* never from inside the call */
    TU_RUN_UNTIL(loop, a.calls > 0, 5000);
    T_EQ_INT(a.status, 201);
    T_EQ_STR(a.ctype, "application/json");
    T_EQ_STR(a.body, "{\"ok\":1}\n");
    T_ASSERT(strncmp(s.got, "PUT /api/queues/%2F/q?x=1 HTTP/1.1\r\n", 36) == 0);
    T_ASSERT(strstr(s.got, "\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n"));
    T_ASSERT(strstr(s.got, "\r\nContent-Length: 5\r\n"));
    T_ASSERT(strstr(s.got, "\r\nConnection: close\r\n"));
    tu_run_for(loop, 50);
    T_EQ_INT(a.calls, 1);
}

T_CASE(a_body_until_close_and_a_body_too_large)
{
    struct server s = {0}, big = {0};
    struct answer a = {0}, b = {0};
    char addr[64], addr2[64], huge[2200];
    struct httpc_request q;

    setup();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d",
             server_start(&s, "HTTP/1.1 200 OK\r\n\r\nread until close"));
    memset(huge, 'x', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    memcpy(huge, "HTTP/1.1 200 OK\r\n\r\n", 19);
    snprintf(addr2, sizeof(addr2), "127.0.0.1:%d", server_start(&big, huge));
    q = request_to(addr);
    httpc_request(loop, &q, answer_cb, &a);
    q.addr = addr2;
    httpc_request(loop, &q, answer_cb, &b);
    TU_RUN_UNTIL(loop, a.calls > 0 && b.calls > 0, 5000);
    T_EQ_INT(a.status, 200);
    T_EQ_STR(a.body, "read until close");
    T_EQ_INT(b.status, 0);
    T_EQ_STR(b.why, "response too large");
}

T_CASE(hostile_or_absent_servers_are_errors_in_time)
{
    struct tu_fake *garbage =
        tu_fake_new(loop = ev_loop_new(EVFLAG_AUTO), FAKE_GARBAGE);
    struct tu_fake *silent = tu_fake_new(loop, FAKE_SILENT);
    struct tu_fake *endless = tu_fake_new(loop, FAKE_ENDLESS);
    struct answer a[4] = {{0}};
    char addr[4][64];
    struct httpc_request q;
    uint64_t t0 = wr_now_ms();

    alarm(60);
    tu_tick(loop);
    snprintf(addr[0], 64, "127.0.0.1:%d", tu_fake_port(garbage));
    snprintf(addr[1], 64, "127.0.0.1:%d", tu_fake_port(silent));
    snprintf(addr[2], 64, "127.0.0.1:%d", tu_fake_port(endless));
    snprintf(addr[3], 64, "127.0.0.1:1"); /* nothing listens */
    for (int i = 0; i < 4; i++) {
        q = request_to(addr[i]);
        httpc_request(loop, &q, answer_cb, &a[i]);
    }
    TU_RUN_UNTIL(loop, a[0].calls && a[1].calls && a[2].calls && a[3].calls,
                 10000);
    for (int i = 0; i < 4; i++) {
        T_EQ_INT(a[i].calls, 1);
        T_EQ_INT(a[i].status, 0);
        T_ASSERT(a[i].why[0]);
    }
    T_EQ_STR(a[1].why, "no answer in time");
    T_EQ_STR(a[2].why, "response too large");
    T_ASSERT(wr_now_ms() - t0 < 5000);
    tu_fake_free(garbage);
    tu_fake_free(silent);
    tu_fake_free(endless);
}

T_CASE(cancel_means_no_callback)
{
    struct server s = {0};
    struct answer a = {0};
    char addr[64];
    struct httpc_request q;

    setup();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d",
             server_start(&s, "HTTP/1.1 204 No Content\r\n\r\n"));
    q = request_to(addr);
    httpc_cancel(httpc_request(loop, &q, answer_cb, &a));
    q.addr = "127.0.0.1:1";
    httpc_cancel(httpc_request(loop, &q, answer_cb, &a));
    tu_run_for(loop, 300);
    T_EQ_INT(a.calls, 0);
}

static const struct t_case cases[] = {
    T_REG(request_and_response),
    T_REG(a_body_until_close_and_a_body_too_large),
    T_REG(hostile_or_absent_servers_are_errors_in_time),
    T_REG(cancel_means_no_callback),
};
T_MAIN(cases)
