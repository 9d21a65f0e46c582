/*
 * etcd.c: the etcd client object, its endpoints, and the KV calls.
 *
 * A client is a list of endpoints, the index new attempts go to
 * (cur_ep), a pool of keep-alive connections for unary requests, and
 * the lists of everything it must free in etcd_free(): requests, leases,
 * watches and follows.
 *
 * Endpoints are parsed once, at creation, into socket addresses:
 *
 *     127.0.0.1:2379   http://127.0.0.1:2379   http://127.0.0.1:2379/
 *     [::1]:2379       http://[::1]:2379
 *
 * are accepted; "localhost:2379" (a name: resolving it would block the
 * loop, or need a resolver thread; resolve before configuring),
 * "https://..." (no TLS), "::1:2379" (ambiguous) and a missing or bad
 * port are refused with a message saying so.
 *
 * Endpoint failures are logged at warning level, at most once per
 * LOG_EVERY_MS per endpoint, with the count of those not logged: a dead
 * member costs one line every ten seconds, not one per request.
 */
#include "cluster/etcd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <utlist.h>
#include <arpa/inet.h>

#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_MAX_CONNS          4
#define DEFAULT_MAX_RESPONSE       (8u << 20)
#define LOG_EVERY_MS               10000
#define BACKOFF_FIRST_MS           50
#define BACKOFF_MAX_MS             1000

/* ---- endpoints */

/* Splits "host:port" / "[v6]:port" (scheme already stripped) into host
 * and port text. Returns WR_OK or WR_ERR with err set. */
static int
split_host_port(const char *s, char *host, size_t hostlen, const char **port,
                char *err, size_t errlen)
{
    const char *h = s, *end;

    if (*s == '[') {
        h = s + 1;
        end = strchr(h, ']');
        if (!end || end[1] != ':')
            goto bad;
        *port = end + 2;
    } else {
        end = strrchr(s, ':');
        if (!end || memchr(s, ':', (size_t)(end - s)))
            goto bad;
        *port = end + 1;
    }
    if (end == h || (size_t)(end - h) >= hostlen)
        goto bad;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    return WR_OK;
bad: /* no host, no port, or an IPv6 address without brackets */
    snprintf(err, errlen, "endpoint '%s': expected host:port or [v6]:port", s);
    return WR_ERR;
}

static int
parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (!*s)
        return WR_ERR;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 65535)
            return WR_ERR;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return WR_ERR;
    *port = (uint16_t)v;
    return WR_OK;
}

/* Fills ep->addr from numeric host and port. */
static int
set_addr(struct etcd_ep *ep, const char *host, uint16_t port)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ep->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ep->addr;

    memset(&ep->addr, 0, sizeof(ep->addr));
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        ep->addrlen = sizeof(*v4);
        return WR_OK;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        ep->addrlen = sizeof(*v6);
        return WR_OK;
    }
    return WR_ERR;
}

static int
parse_endpoint(const char *s, struct etcd_ep *ep, char *err, size_t errlen)
{
    char text[ETCD_EP_NAME_MAX], host[ETCD_EP_NAME_MAX];
    const char *port_s;
    uint16_t port;
    size_t n;

    if (strncmp(s, "https://", 8) == 0) {
        snprintf(err, errlen, "endpoint '%s': TLS is not supported", s);
        return WR_ERR;
    }
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    n = strlen(s);
    if (n > 0 && s[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof(text)) {
        snprintf(err, errlen, "endpoint '%s': empty or too long", s);
        return WR_ERR;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (split_host_port(text, host, sizeof(host), &port_s, err, errlen))
        return WR_ERR;
    if (parse_port(port_s, &port) != WR_OK) {
        snprintf(err, errlen, "endpoint '%s': bad port", text);
        return WR_ERR;
    }
    if (set_addr(ep, host, port) != WR_OK) {
        snprintf(err, errlen,
                 "endpoint '%s': '%s' is not a numeric IP address (host "
                 "names are not resolved: that would block the loop)",
                 text, host);
        return WR_ERR;
    }
    snprintf(ep->name, sizeof(ep->name), "%s", text);
    return WR_OK;
}

int
etcd_config_check(const struct etcd_config *cfg, char *err, size_t errlen)
{
    struct etcd_ep ep;

    if (cfg->n_endpoints == 0) {
        snprintf(err, errlen, "no etcd endpoint");
        return WR_ERR;
    }
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        if (parse_endpoint(cfg->endpoints[i], &ep, err, errlen) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

void
etcd__ep_failed(struct etcd *e, size_t ep, const char *why)
{
    struct etcd_ep *p = &e->eps[ep];
    uint64_t now = wr_now_ms();

    if (e->cur_ep == ep)
        e->cur_ep = (ep + 1) % e->n_eps;
    if (p->log_ms && now - p->log_ms < LOG_EVERY_MS) {
        p->suppressed++;
        return;
    }
    if (p->suppressed) /* why names the endpoint */
        log_warn("etcd: %s (and %u more errors with %s)", why, p->suppressed,
                 p->name);
    else
        log_warn("etcd: %s", why);
    p->log_ms = now;
    p->suppressed = 0;
}

unsigned
etcd__backoff_ms(unsigned rounds)
{
    unsigned ms = BACKOFF_FIRST_MS;

    while (rounds-- > 0 && ms < BACKOFF_MAX_MS)
        ms *= 2;
    return WR_MIN(ms, (unsigned)BACKOFF_MAX_MS);
}

/* ---- the client */

struct etcd *
etcd_new(struct ev_loop *loop, const struct etcd_config *cfg)
{
    char err[ETCD_ERR_MAX];
    struct etcd *e;

    if (etcd_config_check(cfg, err, sizeof(err)) != WR_OK) {
        log_err("etcd: %s", err);
        return NULL;
    }
    e = xcalloc(1, sizeof(*e));
    e->magic = ETCD_MAGIC;
    e->loop = loop;
    e->n_eps = cfg->n_endpoints;
    e->eps = xcalloc(e->n_eps, sizeof(*e->eps));
    for (size_t i = 0; i < e->n_eps; i++)
        parse_endpoint(cfg->endpoints[i], &e->eps[i], err, sizeof(err));
    e->request_timeout_ms = cfg->request_timeout_ms
                                ? cfg->request_timeout_ms
                                : DEFAULT_REQUEST_TIMEOUT_MS;
    e->connect_timeout_ms = cfg->connect_timeout_ms
                                ? cfg->connect_timeout_ms
                                : DEFAULT_CONNECT_TIMEOUT_MS;
    e->max_response =
        cfg->max_response ? cfg->max_response : DEFAULT_MAX_RESPONSE;
    etcd__pool_init(&e->pool, e,
                    cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS);
    return e;
}

void
etcd_free(struct etcd *e)
{
    if (!e)
        return;
    WR_ASSERT(e->magic == ETCD_MAGIC);
    while (e->follows)
        etcd_follow_free(e->follows);
    while (e->watches)
        etcd_watch_free(e->watches);
    while (e->leases)
        etcd_lease_free(e->leases);
    while (e->reqs)
        etcd__req_drop(e->reqs);
    etcd__pool_fini(&e->pool);
    WR_ASSERT(e->pool.n_conns == 0);
    free(e->eps);
    e->magic = 0;
    free(e);
}

const char *
etcd_endpoint(const struct etcd *e)
{
    return e->eps[e->cur_ep].name;
}

/* ---- KV */

static struct etcd_req *
submit_json(struct etcd *e, enum etcd_op op, const char *path, json_t *j,
            bool retry_safe, etcd_result_fn *cb, void *arg)
{
    struct buf body;

    WR_ASSERT(e->magic == ETCD_MAGIC);
    buf_init(&body);
    etcd__json_dump_steal(j, &body);
    return etcd__req_submit(&e->pool, op, path, &body, retry_safe, 0, cb, arg);
}

struct etcd_req *
etcd_range(struct etcd *e, struct bytes key, const struct etcd_range_opts *o,
           etcd_result_fn *cb, void *arg)
{
    return submit_json(e, ETCD_OP_RANGE, "/v3/kv/range",
                       etcd__json_range(key, o), true, cb, arg);
}

struct etcd_req *
etcd_put(struct etcd *e, struct bytes key, struct bytes value,
         const struct etcd_put_opts *o, etcd_result_fn *cb, void *arg)
{
    return submit_json(e, ETCD_OP_PUT, "/v3/kv/put",
                       etcd__json_put(key, value, o), false, cb, arg);
}

struct etcd_req *
etcd_delete(struct etcd *e, struct bytes key, const struct etcd_delete_opts *o,
            etcd_result_fn *cb, void *arg)
{
    return submit_json(e, ETCD_OP_DELETE, "/v3/kv/deleterange",
                       etcd__json_delete(key, o), false, cb, arg);
}

/* physical: etcd answers once the old revisions are really gone, so a
 * watch started right after sees the compaction. */
struct etcd_req *
etcd_compact(struct etcd *e, int64_t revision, etcd_result_fn *cb, void *arg)
{
    json_t *j = json_object();

    etcd__json_set_int(j, "revision", revision);
    json_object_set_new(j, "physical", json_true());
    return submit_json(e, ETCD_OP_COMPACT, "/v3/kv/compaction", j, false, cb,
                       arg);
}
