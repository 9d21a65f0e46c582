/*
 * test_etcd_util.c: the etcd tests' fixtures (see test_etcd_util.h).
 *
 * Members are started with fork/exec, their output in <tmpdir>/<name>.log,
 * and polled with a blocking GET /health (outside the loop, before the
 * clients run) until {"health":"true"}. The proxy and the fake server are
 * plain sockets on the test's own loop.
 */
#include "test/unit/test_etcd_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define START_TIMEOUT_MS 20000
#define PORT_LOW         20000
#define PORT_HIGH        32000
#define MAX_CLUSTERS     4

static struct tu_cluster *live[MAX_CLUSTERS];

/* ---- processes */

static bool
in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[1024];

    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

static void
kill_member(struct tu_member *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGKILL);
    waitpid(m->pid, NULL, 0);
    m->pid = 0;
}

static void
stop_all_at_exit(void)
{
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (live[i])
            tu_cluster_stop(live[i]);
    }
}

static void
track(struct tu_cluster *c)
{
    static bool hooked;

    if (!hooked) {
        atexit(stop_all_at_exit);
        hooked = true;
    }
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (!live[i]) {
            live[i] = c;
            return;
        }
    }
    t_fail(__FILE__, __LINE__, "too many clusters");
}

/* A free loopback port below the kernel's ephemeral range (32768 and
 * up), so that no bind(0) of a concurrent test and no outgoing
 * connection can take it between now and etcd's bind; kept bound in *fd
 * until all ports are chosen so that none is handed out twice. Starts at
 * a point that depends on the pid: concurrent cases rarely meet. */
static int
free_port(int *fd)
{
    static unsigned next;
    struct sockaddr_in a = {.sin_family = AF_INET};

    if (next == 0)
        next = PORT_LOW + ((unsigned)getpid() * 7919u) % (PORT_HIGH - PORT_LOW);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (unsigned i = 0; i < PORT_HIGH - PORT_LOW; i++) {
        unsigned port =
            PORT_LOW + (next - PORT_LOW + i) % (PORT_HIGH - PORT_LOW);

        *fd = socket(AF_INET, SOCK_STREAM, 0);
        T_ASSERT(*fd >= 0);
        a.sin_port = htons((uint16_t)port);
        if (bind(*fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            next = port + 1;
            return (int)port;
        }
        close(*fd);
    }
    t_fail(__FILE__, __LINE__, "no free port in [%d, %d)", PORT_LOW, PORT_HIGH);
}

static void
exec_member(struct tu_cluster *c, struct tu_member *m, pid_t parent)
{
    char peer[64], token[64];
    const char *argv[40];
    int fd, n = 0;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0)
        dup2(fd, 0);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
    snprintf(token, sizeof(token), "warren-test-%d", (int)parent);
    {
        const char *fixed[] = {
            "etcd",
            "--name",
            m->name,
            "--data-dir",
            m->dir,
            "--listen-client-urls",
            m->url,
            "--advertise-client-urls",
            m->url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            c->initial,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            token,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger=zap",
            "--log-level=error",
        };

        for (size_t i = 0; i < WR_ARRAY_LEN(fixed); i++)
            argv[n++] = fixed[i];
    }
    for (int i = 0; c->extra[i]; i++)
        argv[n++] = c->extra[i];
    argv[n] = NULL;
    execvp("etcd", (char *const *)argv);
    _exit(127);
}

static void
spawn(struct tu_cluster *c, int i)
{
    struct tu_member *m = &c->m[i];
    pid_t parent = getpid();

    fflush(NULL);
    m->pid = fork();
    T_ASSERT(m->pid >= 0);
    if (m->pid == 0)
        exec_member(c, m, parent);
}

/* GET /health with a blocking socket and short timeouts. */
static bool
healthy(int port)
{
    static const char req[] = "GET /health HTTP/1.0\r\nHost: x\r\n\r\n";
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct timeval tv = {.tv_usec = 500000};
    char buf[2048];
    size_t got = 0;
    ssize_t n;
    int fd;

    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0) {
        close(fd);
        return false;
    }
    while (got < sizeof(buf) - 1 &&
           (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return strstr(buf, "\"health\":\"true\"") != NULL;
}

static void
dump_log(const struct tu_member *m)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", m->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", m->log);
}

static void
wait_healthy(struct tu_cluster *c, int i)
{
    struct tu_member *m = &c->m[i];
    uint64_t deadline = wr_now_ms() + START_TIMEOUT_MS;

    while (!healthy(m->client_port)) {
        int status;

        if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
            m->pid = 0;
            dump_log(m);
            t_fail(__FILE__, __LINE__,
                   "etcd member %s (ports %d, %d) exited (status %d)", m->name,
                   m->client_port, m->peer_port, status);
        }
        if (wr_now_ms() > deadline) {
            dump_log(m);
            t_fail(__FILE__, __LINE__,
                   "etcd member %s (ports %d, %d) not healthy in %d ms",
                   m->name, m->client_port, m->peer_port, START_TIMEOUT_MS);
        }
        usleep(20000);
    }
}

static void
name_members(struct tu_cluster *c)
{
    int fds[2 * TU_MAX_MEMBERS];
    size_t off = 0;

    for (int i = 0; i < c->n; i++) {
        struct tu_member *m = &c->m[i];
        char name[sizeof(m->name)];

        snprintf(name, sizeof(name), "e%d", (i + 1) % 10);
        memcpy(m->name, name, sizeof(name));
        m->client_port = free_port(&fds[2 * i]);
        m->peer_port = free_port(&fds[2 * i + 1]);
        snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->client_port);
        snprintf(m->dir, sizeof(m->dir), "%s/%s.data", t_tmpdir(), name);
        snprintf(m->log, sizeof(m->log), "%s/%s.log", t_tmpdir(), name);
        off += (size_t)snprintf(c->initial + off, sizeof(c->initial) - off,
                                "%s%s=http://127.0.0.1:%d", i ? "," : "", name,
                                m->peer_port);
        c->endpoints[i] = m->url;
    }
    for (int i = 0; i < 2 * c->n; i++)
        close(fds[i]);
}

void
tu_cluster_start(struct tu_cluster *c, int n)
{
    static const char *const none[] = {NULL};

    tu_cluster_start_with(c, n, none);
}

void
tu_cluster_start_with(struct tu_cluster *c, int n, const char *const *extra)
{
    if (!in_path("etcd"))
        t_fail(__FILE__, __LINE__,
               "etcd is not installed (Debian package etcd-server, which "
               ".ci/deps installs): these tests need a real etcd");
    memset(c, 0, sizeof(*c));
    T_ASSERT(n >= 1 && n <= TU_MAX_MEMBERS);
    c->n = n;
    for (int i = 0; extra[i]; i++) {
        T_ASSERT(i + 1 < (int)WR_ARRAY_LEN(c->extra));
        c->extra[i] = extra[i];
    }
    name_members(c);
    track(c);
    for (int i = 0; i < n; i++)
        spawn(c, i);
    for (int i = 0; i < n; i++)
        wait_healthy(c, i);
}

void
tu_member_kill(struct tu_cluster *c, int i)
{
    kill_member(&c->m[i]);
}

/* The state letter of a /proc/.../stat file ('T': stopped), or '?'. */
static char
stat_state(const char *path)
{
    char buf[512], *p;
    FILE *f;
    size_t n;

    f = fopen(path, "r");
    if (!f)
        return '?';
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the name may hold spaces and parens */
    return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

/* Whether every thread of pid is stopped. */
static bool
all_stopped(pid_t pid)
{
    char path[300];
    struct dirent *d;
    bool stopped = true;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    if (!dir)
        return false;
    while (stopped && (d = readdir(dir))) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.32s/stat", (int)pid,
                 d->d_name);
        stopped = stat_state(path) == 'T';
    }
    closedir(dir);
    return stopped;
}

/* kill() only queues the signal: a stopped member is one whose threads
 * all say so, else it may still answer a request sent right after. */
void
tu_member_signal(struct tu_cluster *c, int i, int sig)
{
    uint64_t deadline = wr_now_ms() + 2000;
    pid_t pid = c->m[i].pid;

    T_ASSERT(pid > 0);
    T_ASSERT(kill(pid, sig) == 0);
    while (sig == SIGSTOP && !all_stopped(pid)) {
        if (wr_now_ms() > deadline)
            t_fail(__FILE__, __LINE__, "member %s did not stop", c->m[i].name);
        usleep(1000);
    }
}

void
tu_member_restart(struct tu_cluster *c, int i)
{
    T_ASSERT(c->m[i].pid == 0);
    spawn(c, i);
    wait_healthy(c, i);
}

void
tu_cluster_stop(struct tu_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        kill_member(&c->m[i]);
        t_rm_rf(c->m[i].dir);
    }
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (live[i] == c)
            live[i] = NULL;
    }
}

int
tu_etcdctl(struct tu_cluster *c, const char *fmt, ...)
{
    char args[256], cmd[1024];
    va_list ap;
    int status;

    if (!in_path("etcdctl"))
        t_fail(__FILE__, __LINE__,
               "etcdctl is not installed (Debian package etcd-client)");
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd),
             "ETCDCTL_API=3 etcdctl --endpoints=%s --command-timeout=5s %s "
             ">>'%s/etcdctl.log' 2>&1",
             c->m[0].url, args, t_tmpdir());
    status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct etcd_config
tu_config(const char *const *endpoints, size_t n, unsigned timeout_ms)
{
    struct etcd_config cfg = {
        .endpoints = endpoints,
        .n_endpoints = n,
        .request_timeout_ms = timeout_ms,
        .connect_timeout_ms = 500,
    };

    return cfg;
}

/* ---- loop */

static ev_timer tick;

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

void
tu_tick(struct ev_loop *loop)
{
    if (ev_is_active(&tick))
        return;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    ev_unref(loop); /* the tick alone does not keep ev_run going */
}

void
tu_run_for(struct ev_loop *loop, unsigned ms)
{
    uint64_t end = wr_now_ms() + ms;

    tu_tick(loop);
    while (wr_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
}

/* ---- results */

void
tu_kv_copy(struct tu_kv *dst, const struct etcd_kv *src)
{
    T_ASSERT(src->key.len <= sizeof(dst->key));
    T_ASSERT(src->value.len <= sizeof(dst->val));
    memset(dst, 0, sizeof(*dst));
    if (src->key.len)
        memcpy(dst->key, src->key.ptr, src->key.len);
    if (src->value.len)
        memcpy(dst->val, src->value.ptr, src->value.len);
    dst->klen = src->key.len;
    dst->vlen = src->value.len;
    dst->create_revision = src->create_revision;
    dst->mod_revision = src->mod_revision;
    dst->version = src->version;
    dst->lease = src->lease;
}

bool
tu_kv_is(const struct tu_kv *kv, struct bytes key, struct bytes val)
{
    return bytes_eq(bytes_of(kv->key, kv->klen), key) &&
           bytes_eq(bytes_of(kv->val, kv->vlen), val);
}

void
tu_res_cb(void *arg, const struct etcd_result *r)
{
    struct tu_res *t = arg;

    t->calls++;
    t->at_ms = wr_now_ms();
    t->status = r->status;
    t->code = r->code;
    snprintf(t->error, sizeof(t->error), "%s", r->error ? r->error : "");
    t->op = r->op;
    t->revision = r->revision;
    t->count = r->count;
    t->id = r->id;
    t->ttl = r->ttl;
    t->more = r->more;
    t->succeeded = r->succeeded;
    t->n_kvs = r->n_kvs;
    for (size_t i = 0; i < r->n_kvs && i < TU_KVS; i++)
        tu_kv_copy(&t->kvs[i], &r->kvs[i]);
    t->n_resps = r->n_responses;
    for (size_t i = 0; i < r->n_responses && i < TU_RESPS; i++) {
        const struct etcd_result *s = &r->responses[i];

        t->resps[i].op = s->op;
        t->resps[i].revision = s->revision;
        t->resps[i].count = s->count;
        t->resps[i].n_kvs = s->n_kvs;
        if (s->n_kvs)
            tu_kv_copy(&t->resps[i].kv0, &s->kvs[0]);
    }
}

/* ---- sockets */

static int
listen_loopback(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    T_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    T_ASSERT(listen(fd, 64) == 0);
    T_ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Writes all of p, waiting (bounded) while the socket is full. */
static bool
write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};

        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (poll(&pfd, 1, 2000) <= 0)
            return false;
    }
    return true;
}

/* ---- proxy */

struct tu_pair {
    struct tu_proxy *p;
    int a, b; /* client side, upstream side */
    ev_io ra, rb;
    struct tu_pair *next;
};

struct tu_proxy {
    struct ev_loop *loop;
    int lfd, port, up;
    bool down;
    ev_io aio;
    struct tu_pair *pairs;
};

static void
pair_close(struct tu_pair *x)
{
    struct tu_pair **pp = &x->p->pairs;

    while (*pp != x)
        pp = &(*pp)->next;
    *pp = x->next;
    ev_io_stop(x->p->loop, &x->ra);
    ev_io_stop(x->p->loop, &x->rb);
    close(x->a);
    close(x->b);
    free(x);
}

static void
relay(struct tu_pair *x, int from, int to)
{
    uint8_t buf[65536];
    ssize_t n = recv(from, buf, sizeof(buf), 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || !write_all(to, buf, (size_t)n))
        pair_close(x);
}

static void
ra_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_pair *x = container_of(w, struct tu_pair, ra);

    relay(x, x->a, x->b);
}

static void
rb_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_pair *x = container_of(w, struct tu_pair, rb);

    relay(x, x->b, x->a);
}

static int
connect_upstream(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void
proxy_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_proxy *p = container_of(w, struct tu_proxy, aio);
    struct tu_pair *x;
    int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up;

    if (fd < 0)
        return;
    if (p->down || (up = connect_upstream(p->up)) < 0) {
        close(fd);
        return;
    }
    x = xcalloc(1, sizeof(*x));
    x->p = p;
    x->a = fd;
    x->b = up;
    ev_io_init(&x->ra, ra_cb, fd, EV_READ);
    ev_io_init(&x->rb, rb_cb, up, EV_READ);
    ev_io_start(loop, &x->ra);
    ev_io_start(loop, &x->rb);
    x->next = p->pairs;
    p->pairs = x;
}

struct tu_proxy *
tu_proxy_new(struct ev_loop *loop, int upstream_port)
{
    struct tu_proxy *p = xcalloc(1, sizeof(*p));

    p->loop = loop;
    p->up = upstream_port;
    p->lfd = listen_loopback(&p->port);
    ev_io_init(&p->aio, proxy_accept_cb, p->lfd, EV_READ);
    ev_io_start(loop, &p->aio);
    return p;
}

int
tu_proxy_port(const struct tu_proxy *p)
{
    return p->port;
}

void
tu_proxy_set_down(struct tu_proxy *p, bool down)
{
    p->down = down;
    while (down && p->pairs)
        pair_close(p->pairs);
}

void
tu_proxy_free(struct tu_proxy *p)
{
    while (p->pairs)
        pair_close(p->pairs);
    ev_io_stop(p->loop, &p->aio);
    close(p->lfd);
    free(p);
}

/* ---- fake server */

#define ENDLESS_CAP (256u << 20)

struct tu_fconn {
    struct tu_fake *f;
    int fd;
    bool answered;
    ev_io rio, wio;
    struct tu_fconn *next;
};

struct tu_fake {
    struct ev_loop *loop;
    enum tu_fake_mode mode;
    int lfd, port, accepted;
    size_t sent;
    ev_io aio;
    struct tu_fconn *conns;
};

static void
fconn_close(struct tu_fconn *c)
{
    struct tu_fconn **pp = &c->f->conns;

    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    ev_io_stop(c->f->loop, &c->rio);
    ev_io_stop(c->f->loop, &c->wio);
    close(c->fd);
    free(c);
}

static void
send_str(struct tu_fconn *c, const char *s)
{
    (void)write_all(c->fd, s, strlen(s));
}

static void
send_json(struct tu_fconn *c, const char *body)
{
    char hdr[128];

    snprintf(hdr, sizeof(hdr),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             strlen(body));
    send_str(c, hdr);
    send_str(c, body);
}

static void
send_chunk(struct tu_fconn *c, const char *s)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "%zx\r\n", strlen(s));
    send_str(c, hdr);
    send_str(c, s);
    send_str(c, "\r\n");
}

static const char *const chunked_200 =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

/* Answers one request as the mode says. Returns false if it closed c. */
static bool
answer(struct tu_fconn *c)
{
    switch (c->f->mode) {
    case FAKE_GARBAGE:
        send_str(c, "HELLO I AM NOT HTTP\r\n\r\n");
        break;
    case FAKE_TRUNCATED:
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                    "{\"header\":");
        fconn_close(c);
        return false;
    case FAKE_ENDLESS:
        send_str(c, chunked_200);
        ev_io_start(c->f->loop, &c->wio);
        break;
    case FAKE_HUGE_LENGTH:
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n{");
        break;
    case FAKE_NOT_JSON:
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        break;
    case FAKE_BAD_TYPES:
        send_json(c, "{\"header\":{\"revision\":\"5\"},\"kvs\":5,"
                     "\"prev_kv\":7,\"ID\":[1],\"TTL\":{}}");
        break;
    case FAKE_BAD_BASE64:
        send_json(c, "{\"kvs\":[{\"key\":\"!!not base64!!\"}],"
                     "\"prev_kv\":{\"key\":\"!!\"},\"ID\":\"x1\"}");
        break;
    case FAKE_SILENT:
        break;
    case FAKE_HTML_404:
        send_str(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\n"
                    "<html>nope</html>");
        break;
    case FAKE_WATCH_JUNK:
        send_str(c, chunked_200);
        send_chunk(c, "{\"result\":{\"created\":true}}\n");
        send_chunk(c, "{\"result\":{\"events\":[{\"type\":\"BOOM\"}]}}\n");
        break;
    }
    return true;
}

static void
fconn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_fconn *c = container_of(w, struct tu_fconn, rio);
    char buf[8192];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fconn_close(c);
        return;
    }
    if (!c->answered) {
        c->answered = true;
        answer(c);
    }
}

/* FAKE_ENDLESS: 4 KiB chunks for as long as the client reads them. */
static void
fconn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_fconn *c = container_of(w, struct tu_fconn, wio);
    char chunk[4096 + 16];
    int hdr = snprintf(chunk, sizeof(chunk), "1000\r\n");

    memset(chunk + hdr, 'x', 4096);
    memcpy(chunk + hdr + 4096, "\r\n", 2);
    for (;;) {
        ssize_t n = send(c->fd, chunk, (size_t)hdr + 4098, MSG_NOSIGNAL);

        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 || c->f->sent > ENDLESS_CAP) {
            fconn_close(c);
            return;
        }
        c->f->sent += (size_t)n;
        if ((size_t)n < (size_t)hdr + 4098) {
            fconn_close(c); /* a cut chunk: the stream is broken anyway */
            return;
        }
    }
}

static void
fake_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tu_fake *f = container_of(w, struct tu_fake, aio);
    int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct tu_fconn *c;

    if (fd < 0)
        return;
    f->accepted++;
    c = xcalloc(1, sizeof(*c));
    c->f = f;
    c->fd = fd;
    ev_io_init(&c->rio, fconn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, fconn_write_cb, fd, EV_WRITE);
    ev_io_start(loop, &c->rio);
    c->next = f->conns;
    f->conns = c;
}

struct tu_fake *
tu_fake_new(struct ev_loop *loop, enum tu_fake_mode mode)
{
    struct tu_fake *f = xcalloc(1, sizeof(*f));

    f->loop = loop;
    f->mode = mode;
    f->lfd = listen_loopback(&f->port);
    ev_io_init(&f->aio, fake_accept_cb, f->lfd, EV_READ);
    ev_io_start(loop, &f->aio);
    return f;
}

int
tu_fake_port(const struct tu_fake *f)
{
    return f->port;
}

int
tu_fake_accepted(const struct tu_fake *f)
{
    return f->accepted;
}

size_t
tu_fake_sent(const struct tu_fake *f)
{
    return f->sent;
}

void
tu_fake_free(struct tu_fake *f)
{
    while (f->conns)
        fconn_close(f->conns);
    ev_io_stop(f->loop, &f->aio);
    close(f->lfd);
    free(f);
}
