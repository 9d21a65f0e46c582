/*
 * test_etcd_util.h: helpers for the etcd client's tests: real etcd
 * members on free loopback ports, loop runners with deadlines, a TCP
 * proxy that can cut a client off, and a hostile fake HTTP server.
 *
 * Every process a test starts is killed when the case ends, passed or
 * failed: explicitly, from an atexit hook (t_fail exits), and by
 * PR_SET_PDEATHSIG if the case dies of a signal. Data directories are
 * removed with them; the members' logs stay in the case's temp dir,
 * which the harness keeps when the case fails.
 */
#ifndef WARREN_TEST_ETCD_UTIL_H
#define WARREN_TEST_ETCD_UTIL_H

#include "base/base.h"
#include "cluster/etcd.h"
#include "test/harness/t.h"

#include <ev.h>
#include <sys/types.h>

#define TU_MAX_MEMBERS 3

/* ---- etcd members */

struct tu_member {
    pid_t pid;
    int client_port;
    int peer_port;
    char name[8];
    char dir[512];
    char log[512];
    char url[64]; /* http://127.0.0.1:port */
};

struct tu_cluster {
    int n;
    struct tu_member m[TU_MAX_MEMBERS];
    const char *endpoints[TU_MAX_MEMBERS];
    char initial[512];    /* --initial-cluster */
    const char *extra[8]; /* more etcd arguments, NULL-terminated */
};

/* Starts an n-member cluster (fast election settings) and waits until
 * every member reports healthy. Fails the case, clearly, when etcd is not
 * installed or does not come up within 20 s. */
void tu_cluster_start(struct tu_cluster *c, int n);
/* The same with more etcd arguments (NULL-terminated), kept for
 * restarts. */
void tu_cluster_start_with(struct tu_cluster *c, int n,
                           const char *const *extra);
/* SIGKILLs member i and reaps it. */
void tu_member_kill(struct tu_cluster *c, int i);
/* Sends sig to member i (SIGSTOP, SIGCONT). */
void tu_member_signal(struct tu_cluster *c, int i, int sig);
/* Starts member i again on the same ports and data dir and waits until
 * it is healthy. */
void tu_member_restart(struct tu_cluster *c, int i);
/* Kills every member and removes their data. */
void tu_cluster_stop(struct tu_cluster *c);
/* Runs etcdctl against member 0 with args (a printf format); returns
 * its exit status. */
int tu_etcdctl(struct tu_cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A client config for the given endpoints. */
struct etcd_config tu_config(const char *const *endpoints, size_t n,
                             unsigned timeout_ms);

/* ---- loop */

/* Runs the loop for ms milliseconds. */
void tu_run_for(struct ev_loop *loop, unsigned ms);
/* Runs the loop until cond holds; fails the case after ms. */
#define TU_RUN_UNTIL(loop, cond, ms)                                        \
    do {                                                                    \
        uint64_t tu_dl_ = wr_now_ms() + (ms);                               \
        tu_tick(loop);                                                      \
        while (!(cond)) {                                                   \
            if (wr_now_ms() > tu_dl_)                                       \
                t_fail(__FILE__, __LINE__, "timed out (%u ms) waiting: %s", \
                       (unsigned)(ms), #cond);                              \
            ev_run(loop, EVRUN_ONCE);                                       \
        }                                                                   \
    } while (0)
/* Makes ev_run(EVRUN_ONCE) return at least every 10 ms. */
void tu_tick(struct ev_loop *loop);

/* ---- results copied out of callbacks */

#define TU_KVS   16
#define TU_RESPS 4

struct tu_kv {
    uint8_t key[64];
    size_t klen;
    uint8_t val[512];
    size_t vlen;
    int64_t create_revision, mod_revision, version, lease;
};

struct tu_res {
    int calls;
    uint64_t at_ms; /* when the callback ran */
    enum etcd_status status;
    int code;
    char error[1024];
    enum etcd_op op;
    int64_t revision, count, id, ttl;
    bool more, succeeded;
    size_t n_kvs;
    struct tu_kv kvs[TU_KVS];
    size_t n_resps;
    struct {
        enum etcd_op op;
        int64_t revision, count;
        size_t n_kvs;
        struct tu_kv kv0;
    } resps[TU_RESPS];
};

/* etcd_result_fn storing into the struct tu_res arg. */
void tu_res_cb(void *arg, const struct etcd_result *r);
void tu_kv_copy(struct tu_kv *dst, const struct etcd_kv *src);
bool tu_kv_is(const struct tu_kv *kv, struct bytes key, struct bytes val);

/* ---- TCP proxy: relays to 127.0.0.1:upstream; "down" cuts it off */

struct tu_proxy;
struct tu_proxy *tu_proxy_new(struct ev_loop *loop, int upstream_port);
int tu_proxy_port(const struct tu_proxy *p);
/* down: closes every relayed connection and closes new ones at once. */
void tu_proxy_set_down(struct tu_proxy *p, bool down);
void tu_proxy_free(struct tu_proxy *p);

/* ---- hostile HTTP server: answers every request with one bad reply */

enum tu_fake_mode {
    FAKE_GARBAGE,     /* not HTTP */
    FAKE_TRUNCATED,   /* Content-Length 100, 10 bytes, close */
    FAKE_ENDLESS,     /* chunked body that never ends */
    FAKE_HUGE_LENGTH, /* Content-Length: 10^11 */
    FAKE_NOT_JSON,    /* 200 with a text body */
    FAKE_BAD_TYPES,   /* 200 with {"kvs":5} */
    FAKE_BAD_BASE64,  /* 200 with a kv whose key is not base64 */
    FAKE_SILENT,      /* reads, never answers */
    FAKE_HTML_404,    /* 404 with a non-etcd body */
    FAKE_WATCH_JUNK,  /* 200 chunked, then junk lines */
};

struct tu_fake;
struct tu_fake *tu_fake_new(struct ev_loop *loop, enum tu_fake_mode mode);
int tu_fake_port(const struct tu_fake *f);
/* Connections accepted so far, and bytes of endless body written. */
int tu_fake_accepted(const struct tu_fake *f);
size_t tu_fake_sent(const struct tu_fake *f);
void tu_fake_free(struct tu_fake *f);

#endif
