/*
 * cluster/cluster.h: a Warren node's place in a cluster of nodes
 * coordinated by etcd.
 *
 * etcd holds the few facts the nodes must agree on; the nodes move the
 * data themselves. Under <key_prefix>/<cluster_name>/ ("P/"):
 *
 *   P/id                   the cluster's id (random, created by the first
 *                          node); a data directory records the id of the
 *                          cluster it belongs to and refuses any other
 *   P/secret               the secret nodes prove to each other (unless
 *                          cluster.secret is configured)
 *   P/members/<node>       every node that ever joined (no lease):
 *                          management lists them, running or not
 *   P/nodes/<node>         a running node: its addresses and statistics,
 *                          on the node's lease, so a node that dies
 *                          vanishes after the lease TTL
 *   P/vhosts/<h>/home      the node whose disk holds vhost h's data, and
 *                          whether that data is empty (h = hex SHA-256 of
 *                          the vhost name, as for its data directory)
 *   P/vhosts/<h>/leader    the node running the vhost, on its lease; the
 *                          key's create_revision is the vhost's epoch
 *
 * Leadership. A vhost is run by one node, its leader. A node tries to
 * lead a vhost that has no leader when the vhost's home is that node, or
 * when the home is empty (no durable data: a new vhost, or one handed off
 * by a clean stop) and its home node is not running; one etcd
 * transaction (leader absent, home unchanged since read) makes exactly
 * one candidate win, and it takes the home. A leader whose node dies
 * keeps its vhosts' data on its disk: those vhosts wait for it (the next
 * issue's replication lets an in-sync mirror take them over instead).
 * A clean stop hands every empty vhost to another running node.
 *
 * Fencing. A node acts as leader only while its lease is certainly alive:
 * until the last confirmed renewal + TTL - margin (monotonic clock,
 * etcd_lease_deadline_us). Past that, or when its leader key goes, it
 * stops serving the vhost (ops->unlead) before anyone else can win it.
 *
 * Threads: everything runs on the one libev loop given to cluster_start.
 */
#ifndef WARREN_CLUSTER_H
#define WARREN_CLUSTER_H

#include "base/base.h"
#include "vhost/node.h"

#include <ev.h>

struct cluster;

struct cluster_config {
    const char *node_name;
    const char *key_prefix;   /* "warren" */
    const char *cluster_name; /* "default" */
    unsigned ttl_s;           /* the node's lease */
    const char *const *endpoints;
    size_t n_endpoints;
    unsigned start_attempts;    /* reaching etcd at startup */
    unsigned start_interval_ms; /* between attempts */
    const char *data_dir;       /* cluster.json: which cluster it is in */
    const char *secret;         /* NULL or "": the one kept in etcd */
    /* What the other nodes are told (each "IP:PORT", may be ""). */
    const char *cluster_addr;
    const char *amqp_addr;
    const char *mgmt_addr;
    bool balanced; /* queue_leader_locator = balanced (else client-local) */
    /* The node whose users, vhosts, permissions and policies follow the
     * cluster's (defs.c); NULL: no definitions (tests of leadership). */
    struct node *node;
};

/* The broker's side of the cluster: called on the loop. */
struct cluster_ops {
    /* This node leads vhost from now on; epoch only grows. */
    void (*lead)(void *arg, const char *vhost, int64_t epoch);
    /* This node must stop serving vhost now (why: for the log and the
     * clients' connection.close). */
    void (*unlead)(void *arg, const char *vhost, const char *why);
    /* True when this node's copy of the vhost it leads has no durable
     * data, so that a clean stop may hand it to another node. */
    bool (*vhost_is_empty)(void *arg, const char *vhost);
    /* The nodes or the leaders changed (management, relays). */
    void (*changed)(void *arg);
    /* A JSON object of this node's statistics for P/nodes/<node>
     * (uptime, memory, file descriptors...); a new reference or NULL. */
    struct json_t *(*stats)(void *arg);
    /* The cluster deleted vhost: close its connections now, it goes
     * from the node right after. */
    void (*vhost_removing)(void *arg, struct vhost *vh);
};

/*
 * Joins the cluster: reads or creates the cluster's id and secret, checks
 * that the data directory belongs to this cluster (or claims it), takes a
 * lease and registers the node (refused when a live node holds the name
 * with another data directory), and follows the nodes and vhosts.
 * Runs `loop` until that is done: reaching etcd is tried start_attempts
 * times, start_interval_ms apart, each try given up after 3 s. Returns
 * WR_OK and sets *out, or
 * WR_ERR with a message for the operator in err.
 */
int cluster_start(struct ev_loop *loop, const struct cluster_config *cfg,
                  const struct cluster_ops *ops, void *arg,
                  struct cluster **out, char *err, size_t errlen);

/*
 * Leaves cleanly: hands every empty vhost this node leads to another
 * running node, gives up the others (they wait for this node), removes
 * the node's key and revokes its lease. Runs the loop for at most
 * timeout_ms. The broker has closed the vhosts' clients first.
 */
void cluster_stop(struct cluster *c, unsigned timeout_ms);
/*
 * The node is stopping (its clients are being closed, cluster_stop
 * comes next): from now on it takes no new leadership and places new
 * vhosts on other running nodes, whatever queue_leader_locator says.
 */
void cluster_drain(struct cluster *c);
/* Frees everything (no etcd request; the lease expires on its own). */
void cluster_free(struct cluster *c);

const char *cluster_node_name(const struct cluster *c);
/* The secret nodes prove to each other (configured or from etcd). */
struct bytes cluster_secret(const struct cluster *c);
/* The cluster's id (hex). */
const char *cluster_id(const struct cluster *c);
/* False while etcd cannot be reached or the lease is in doubt: no new
 * vhost work then. */
bool cluster_is_available(const struct cluster *c);

/* ---- nodes */

/* A node as this node sees it; borrowed, valid until the loop runs. */
struct cluster_node {
    const char *name;
    bool running;             /* its lease is alive */
    const char *cluster_addr; /* "" when unknown (not running) */
    const char *amqp_addr;
    const char *mgmt_addr;
    const struct json_t *info; /* its P/nodes value (statistics), or NULL */
    unsigned leads;            /* vhosts it leads */
};

/* Every member (running or not), sorted by name; returns how many and
 * points *out at a borrowed array. */
size_t cluster_nodes(struct cluster *c, const struct cluster_node **out);
/* One node by name, or NULL. */
const struct cluster_node *cluster_node_find(struct cluster *c,
                                             const char *name);

/* ---- vhosts */

/* Fencing by the clock: when the lease is no longer certainly alive, stop
 * leading every vhost now (ops->unlead) instead of at the next tick. The
 * loop calls it before every pass that could confirm or deliver (a pass
 * that follows a pause of the process, when the tick has not run yet).
 * Cheap: one read of the monotonic clock. */
void cluster_fence(struct cluster *c);

/* Gives up leading vhost (a stalled disk, issue 12): ops->unlead at once,
 * then its leader key is deleted (fenced on its revision), so that
 * another member of the in-sync set wins it; this node neither leads it
 * again nor stands for it for hold_off_ms. No-op when not leading it. */
void cluster_resign(struct cluster *c, const char *vhost, unsigned hold_off_ms,
                    const char *why);

/* The node leading vhost (borrowed name) and its epoch, or NULL when none
 * does now. */
const char *cluster_leader_of(const struct cluster *c, const char *vhost,
                              int64_t *epoch);
/* True when this node leads vhost and may act on it now (its lease is
 * certainly alive). */
bool cluster_leads(const struct cluster *c, const char *vhost);
/* The node whose disk holds vhost's data, or NULL for an unknown vhost. */
const char *cluster_home_of(const struct cluster *c, const char *vhost);

/* The vhost's in-sync set as committed in etcd (P/vhosts/<hash>/isr: a
 * JSON array of node names, the leader's included), its mod_revision and
 * the epoch of the leader that wrote it; NULL when there is none. */
const struct json_t *cluster_isr_of(const struct cluster *c, const char *vhost,
                                    int64_t *mod, int64_t *epoch);
/* Commits the vhost's in-sync set, fenced: only while the leader key's
 * create_revision is epoch (this leader) and the set's mod_revision is
 * still expect (0: none yet). cb gets whether it was committed and, if
 * so, the new mod_revision. */
typedef void cluster_isr_fn(void *arg, bool committed, int64_t mod);
void cluster_isr_commit(struct cluster *c, const char *vhost, int64_t epoch,
                        const char *const *nodes, size_t n, int64_t expect,
                        cluster_isr_fn *cb, void *arg);

/* The replicated vhosts whose committed in-sync set lists this node and
 * would keep fewer than keep running members without it (keep 1: this
 * node holds the last in-sync copy): a new JSON array of {"vhost",
 * "isr", "online"}. */
struct json_t *cluster_isr_critical(struct cluster *c, size_t keep);

typedef void cluster_done_fn(void *arg, int status, const char *why);

/*
 * Places a new vhost: writes its home (this node for client-local, the
 * running node leading the fewest vhosts for balanced), empty, unless it
 * has one already. cb gets WR_OK, or WR_ERR with why (etcd unreachable,
 * outcome unknown).
 */
void cluster_vhost_place(struct cluster *c, const char *vhost,
                         cluster_done_fn *cb, void *arg);
/* Forgets a deleted vhost: its home, and its leader key when this node
 * holds it. */
void cluster_vhost_forget(struct cluster *c, const char *vhost,
                          cluster_done_fn *cb, void *arg);

/* ---- cluster-wide definitions (defs.c) */

/*
 * Changes one object of the definitions for the whole cluster: etcd
 * first; once etcd has it, this node's model too (before cb runs, so the
 * reply that follows shows it), and every other node's as it follows
 * etcd. item is the object's entry in RabbitMQ's definitions format (a
 * reference is taken). Removing a vhost removes its permissions and
 * items with it. cb gets WR_OK, or WR_ERR with why (etcd unreachable,
 * or its answer lost: then the change may or may not have been made).
 */
void cluster_defs_put(struct cluster *c, enum defs_kind k, json_t *item,
                      cluster_done_fn *cb, void *arg);
void cluster_defs_remove(struct cluster *c, enum defs_kind k, json_t *item,
                         cluster_done_fn *cb, void *arg);

/*
 * A change made in this node's model first (the management API's
 * handlers, an import): cluster_defs_snapshot records the definitions,
 * the caller changes the model, and cluster_defs_commit writes to etcd
 * what changed since (one transaction per 120 operations), then places
 * the vhosts it created and waits for their leaders (at most
 * CLUSTER_PLACE_WAIT_MS). It returns false, calling nothing, when nothing
 * changed; else cb gets WR_OK, or WR_ERR with why, the model then put
 * back as it was for what etcd did not take. Either way the snapshot is
 * freed.
 */
struct cluster_defs_snap;
struct cluster_defs_snap *cluster_defs_snapshot(struct cluster *c);
bool cluster_defs_commit(struct cluster *c, struct cluster_defs_snap *snap,
                         cluster_done_fn *cb, void *arg);
void cluster_defs_snap_free(struct cluster_defs_snap *snap);

#endif
