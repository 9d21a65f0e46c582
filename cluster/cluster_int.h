/*
 * cluster_int.h: what cluster.c, member.c and placement.c share; nothing
 * outside cluster/ includes it.
 *
 *   cluster.c    joining (cluster id, data directory, secret, lease,
 *                registration), the once-a-tick checks (fencing, etcd
 *                reachable), leaving
 *   member.c     the nodes: this node's P/nodes key and the view of
 *                every member, running or not
 *   placement.c  the vhosts: homes and leaders, elections, hand-offs
 */
#ifndef WARREN_CLUSTER_INT_H
#define WARREN_CLUSTER_INT_H

#include "cluster/cluster.h"
#include "cluster/etcd.h"

#include <jansson.h>
#include <uthash.h>

#define CLUSTER_MAGIC 0x434c5553u /* "CLUS" */
/* Deadline of one etcd request, retries between endpoints included. */
#define CLUSTER_REQUEST_MS 3000u
/* The loop's housekeeping period: fencing, elections, node statistics. */
#define CLUSTER_TICK_S 0.25
/* A leader stops this long before its lease could have ended. */
#define CLUSTER_FENCE_MARGIN_US 1000000u
/* How often a node rewrites its statistics into P/nodes/<node>. */
#define CLUSTER_STATS_MS 5000u
/* A candidate that is not the vhost's home waits this long per rank. */
#define CLUSTER_CANDIDATE_STEP_MS 300u
/* A vhost of the definitions with no home this long is placed (by the
 * first running node); one placed here is awaited this long for a
 * leader before the change that created it is answered. */
#define CLUSTER_UNPLACED_MS   2000u
#define CLUSTER_PLACE_WAIT_MS 5000u

/* A member of the cluster, as this node sees it. */
struct cnode {
    char *name;
    bool member;  /* P/members/<name> exists */
    bool running; /* P/nodes/<name> exists */
    char *cluster_addr, *amqp_addr, *mgmt_addr, *data_id;
    json_t *info; /* the P/nodes value, or NULL */
    unsigned leads;
    UT_hash_handle hh;
};

/* A vhost of the definitions seen without a home since `since`. */
struct unplaced {
    char *name;
    uint64_t since;
    bool seen; /* in this pass */
    UT_hash_handle hh;
};

/* A cluster_vhost_place waiting for the vhost's leader. */
struct place_wait {
    char hash[65];
    char *name;
    uint64_t until_ms;
    cluster_done_fn *cb;
    void *arg;
    struct place_wait *next;
};

/* A vhost, as this node sees it: P/vhosts/<hash>/{home,leader}. */
struct cvhost {
    char hash[65];
    char *name;
    bool has_home;
    char *home_node;
    bool home_empty;
    int64_t home_mod;
    bool has_leader;
    char *leader_node;
    int64_t epoch; /* the leader key's create_revision */
    int64_t leader_mod;
    int64_t leader_lease;
    json_t *isr;     /* P/vhosts/<hash>/isr's value, or NULL */
    int64_t isr_mod; /* its mod_revision */
    bool leading;    /* ops->lead said so, and no unlead since */
    bool trying;     /* an election transaction is in flight */
    uint64_t try_at; /* not before (ms, monotonic), as a candidate */
    /* cluster_resign: neither leads nor stands until then (ms, monotonic) */
    uint64_t resigned_until;
    UT_hash_handle hh;
};

enum cluster_state {
    CS_JOINING,
    CS_JOINED,
    CS_STOPPING,
    CS_FAILED,
};

struct cluster {
    uint32_t magic;
    struct ev_loop *loop;
    const struct cluster_ops *ops;
    void *arg;
    struct etcd *etcd;
    struct etcd_lease *lease;
    enum cluster_state state;
    char err[512];
    /* config (owned copies) */
    char *node_name, *data_dir, *cluster_addr, *amqp_addr, *mgmt_addr;
    char **endpoints;
    size_t n_endpoints;
    unsigned ttl_s, attempts_left, interval_ms;
    bool balanced;
    bool draining;    /* cluster_drain: lead nothing new */
    char prefix[600]; /* "<key_prefix>/<cluster_name>/" */
    char id[65];
    char data_id[33];
    struct buf secret;
    bool secret_configured;
    /* joining */
    ev_timer retry;
    unsigned pending_syncs; /* initial snapshots still to come */
    /* views */
    struct etcd_follow *f_nodes, *f_members, *f_vhosts, *f_defs;
    /* definitions (defs.c) */
    struct node *node;
    struct dkey *dkeys;
    bool defs_synced;
    struct cnode *nodes;
    struct cluster_node *list; /* cluster_nodes() */
    size_t nlist, caplist;
    bool list_stale;
    struct cvhost *vhosts;
    unsigned my_leads;
    struct unplaced *unplaced; /* vhosts of the definitions without home */
    struct place_wait *waits;  /* placed, waiting for a leader */
    uint64_t unplaced_due_ms;
    /* running */
    ev_timer tick;
    uint64_t stats_due_ms;
    bool registered; /* P/nodes/<me> is ours on the current lease */
    bool available;
    bool relink; /* the lease was lost: take a new one, register again */
    void (*reg_done)(struct cluster *c, int rc); /* member__register */
    unsigned stop_pending;
    void (*leave_done)(struct cluster *c); /* placement__leave */
};

/* cluster.c: "<prefix><suffix>" into b, as bytes. */
struct bytes cluster__key(const struct cluster *c, struct buf *b,
                          const char *fmt, ...) WR_PRINTF(3, 4);
/* cluster.c: the lease's ID, 0 when there is none. */
int64_t cluster__lease_id(const struct cluster *c);
/* cluster.c: one of the initial follows delivered its snapshot. */
void cluster__synced(struct cluster *c);
/* cluster.c: a JSON value's string member, or "" */
const char *cluster__jstr(const json_t *o, const char *key);

/* member.c */
void member__follow(struct cluster *c);
/* Writes P/nodes/<me> (on the lease) and P/members/<me>; once it is
 * ours, calls done(c, WR_OK), else done(c, WR_ERR) with c->err set. */
void member__register(struct cluster *c, void (*done)(struct cluster *, int));
/* Rewrites this node's statistics when due. */
void member__tick(struct cluster *c, uint64_t now_ms);
struct cnode *member__find(struct cluster *c, const char *name);
/* Running nodes in candidate order: fewest leaderships, then name. */
size_t member__running(struct cluster *c, struct cnode ***out);
void member__free_all(struct cluster *c);

/* defs.c */
void defs__follow(struct cluster *c);
void defs__free_all(struct cluster *c);

/* placement.c */
void placement__follow(struct cluster *c);
/* Elections due, fencing: once per tick and after every change. */
void placement__tick(struct cluster *c, uint64_t now_ms);
/* Stops leading everything (fencing, stop). */
void placement__unlead_all(struct cluster *c, const char *why);
/* Clean stop: hand off or give up every vhost this node leads; calls
 * done(c) when every transaction is answered. */
void placement__leave(struct cluster *c, void (*done)(struct cluster *));
void placement__free_all(struct cluster *c);
/* The P/vhosts/<h>/ prefix of vhost, into b (a vhost's removal). */
struct bytes placement__prefix(const struct cluster *c, const char *vhost,
                               struct buf *b);

#endif
