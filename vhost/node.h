/*
 * node.h: the node (vhost/node.c and its neighbours): every vhost, the
 * users, their permissions, per-vhost limits, policies and parameters,
 * and the definitions file that keeps them, plus the loop's hooks into
 * the queues and the logs (dispatch, expiry, log hand-off, polling).
 *
 * Every change to users, vhosts, permissions, limits and policies goes
 * through a node_* function here, whoever asks for it (the management
 * API, a definitions import, later the cluster applying what etcd
 * holds), so the rules and the definitions file follow from one place.
 */
#ifndef WARREN_VHOST_NODE_H
#define WARREN_VHOST_NODE_H

#include "vhost/vhost.h"

struct node;

/* How the node keeps durable state; all zero = in memory only. */
struct node_opts {
    const char *data_dir; /* NULL = nothing on disk */
    int fsync;            /* enum store_fsync */
    uint32_t fsync_interval_ms;
    uint64_t segment_size;
    bool repair; /* open damaged logs, dropping what is bad */
    /* Bytes of message bodies queues may hold in memory; above it, new
     * messages go to the log and queues keep only their position.
     * 0 = no limit. */
    uint64_t memory_budget;
    /* Called from a store thread when a log has news: the server wakes
     * its loop, which then calls node_poll(). */
    void (*wake)(void *arg);
    void *wake_arg;
    /* Called on the loop when a vhost's durable LSN advanced or its log
     * failed, for publisher confirms. */
    void (*durable)(void *arg, struct vhost *vh);
    void *durable_arg;
    /* A vhost is about to be freed (deleted: its data goes too). May be
     * NULL. */
    void (*dropping)(void *arg, struct vhost *vh, bool deleted);
    void *dropping_arg;
    /* A node of a cluster: it serves a vhost only while it leads it
     * (node_vhost_serve); the others exist here as names, permissions and
     * limits, without a log (cluster/). */
    bool clustered;
};

struct node *node_new(const struct node_opts *opts);
/* Frees the model, keeping every vhost's data on disk. NULL: no-op. */
void node_free(struct node *n);
/* Loads <data_dir>/definitions.json (durable vhosts, exchanges, queues,
 * bindings), creates default_vhost if there is none, and opens every
 * vhost's log, recovering its messages into their queues. Returns WR_OK,
 * or WR_ERR with a message for the operator. */
int node_boot(struct node *n, const char *default_vhost, char *err,
              size_t errlen);
/* True when node_boot found no definitions file: a first start, when
 * the default user and vhost are created (as RabbitMQ does). */
bool node_is_fresh(const struct node *n);
/* Delivers the stores' events (durable LSNs, compaction moves,
 * failures). Loop thread, after a wake. */
void node_poll(struct node *n);
/* Once per loop iteration, before output is flushed: writes the
 * definitions file if a durable object changed, and hands every log's
 * appended records to its store thread. */
void node_flush(struct node *n);
/* Marks the definitions file for rewriting. */
void node_defs_changed(struct node *n);
/* Grows with every node_defs_changed: a replicating leader compares it to
 * know when to ship a vhost's definitions again. */
uint64_t node_defs_generation(const struct node *n);
/* Runs queue_dispatch on every queue scheduled since the last call. */
void node_run_dispatch(struct node *n);
/* True when some queue waits for dispatch. */
bool node_has_dispatch(const struct node *n);
/* Bytes of message bodies held in memory by queues, and whether the
 * node is paging new messages to the logs (over its memory budget). */
uint64_t node_queue_memory(const struct node *n);
/* Queues created by a declare and queues deleted (any cause) since
 * boot, over every vhost: RabbitMQ's queues_created/deleted_total. */
void node_queue_churn(const struct node *n, uint64_t *created,
                      uint64_t *deleted);
/* The logs' counters summed over vhosts (store_get_stats): fsyncs,
 * bytes and records written, segments, disk bytes, live messages. */
struct node_log_stats {
    uint64_t fsyncs, bytes_written, records_written, segments, disk_bytes,
        live_msgs;
};
void node_log_stats(const struct node *n, struct node_log_stats *out);
/* *pending: bytes appended to the logs and not yet written (the server
 * stops reading from publishers while the disk lags too far behind);
 * *memory: the memory the logs' write buffers hold (store_buffer_bytes),
 * for the memory alarm. */
void node_log_backlog(const struct node *n, uint64_t *pending,
                      uint64_t *memory);
/* Message bytes appended to the logs so far: how much the write buffers
 * grew since the last node_log_backlog(). O(1). */
uint64_t node_log_appended(const struct node *n);
bool node_is_paging(const struct node *n);
/* The loop's notion of now, in microseconds (monotonic); the server sets
 * it once per loop iteration, so every publish of an iteration gets the
 * same timestamp. */
void node_set_now(struct node *n, uint64_t now_us);
uint64_t node_now(const struct node *n);
/* Drops expired messages at the head of every queue that may have some
 * (called about once a second). */
void node_expire(struct node *n);
/* When node_expire has work next (node time, µs); UINT64_MAX = none. */
uint64_t node_next_expiry(const struct node *n);
/* Delayed messages (x-delayed-message, vhost/delay.c): µs until the
 * earliest is due (0: some are due now), -1 when none is pending; and
 * routes the due ones (a bounded slice: call again while the wait is 0). */
int64_t node_delay_wait_us(const struct node *n);
void node_run_delays(struct node *n);

/* RabbitMQ's rules for a vhost name: 1 to 255 bytes (an AMQP short
 * string) of UTF-8. Any such name is safe as a directory name
 * (vhost/vhostdir.c). Returns false with *why set otherwise. */
#define VHOST_NAME_MAX 255
bool node_vhost_name_check(const char *name, const char **why);
/* The 64 hex digits of SHA-256(name): what names a vhost's directory
 * here and its keys and copies in a cluster. */
void vhost_name_hash(const char *name, char out[65]);
/* Whether some vhost's log waits for disk space (store_no_space): the
 * disk alarm holds meanwhile. */
bool node_disk_full(const struct node *n);
/* Finds a vhost; borrowed or NULL. */
struct vhost *node_vhost_find(struct node *n, const char *name);
/* The vhost after vh (the first when vh is NULL), in creation order;
 * NULL after the last. And how many there are. */
struct vhost *node_vhost_next(struct node *n, const struct vhost *vh);
size_t node_vhost_count(const struct node *n);
/* Creates a vhost with its standard exchanges. Returns NULL if it
 * exists, if the name is invalid, or if its log cannot be opened (then
 * logged; its data directory is left as it was). */
struct vhost *node_vhost_add(struct node *n, const char *name);
/* Deletes every queue, exchange and binding of vh and frees it; the
 * caller closes its connections first. */
void node_vhost_remove(struct node *n, struct vhost *vh);
/*
 * Clustered nodes (node_opts.clustered) run a vhost only while they lead
 * it. node_vhost_serve opens its log (recovering what this node's disk
 * holds of it) and makes it served; node_vhost_unserve stops serving it
 * (the caller closes its connections first) and keeps what it holds, for
 * when it is served again. A single node serves every vhost always.
 * Returns WR_OK, or WR_ERR with why in err (the log cannot be opened).
 */
int node_vhost_serve(struct node *n, struct vhost *vh, char *err,
                     size_t errlen);
void node_vhost_unserve(struct node *n, struct vhost *vh);
/* A replicated vhost's mirror takes over (issue 12): drops what this node
 * held of vh (log, queues, exchanges) and moves the log files of the
 * mirror's copy in directory from into the vhost's log directory. The
 * caller then imports the copy's definitions and serves vh. hot, when
 * not NULL, is the copy's log still open with its hot index
 * (mirror_hand_over; taken whatever happens): serving vh then goes on
 * with it and takes the queues' messages from its index instead of
 * recovering the log. */
struct store;
int node_vhost_adopt_log(struct node *n, struct vhost *vh, const char *from,
                         struct store *hot, char *err, size_t errlen);
/* The node's own log of vh (it led vh before, another node leads it now)
 * becomes a mirror's copy: the vhost's directory is renamed to (which must
 * not exist; same file system), what the node held of vh is dropped (as
 * node_vhost_adopt_log does). Not served. */
int node_vhost_release_log(struct node *n, struct vhost *vh, const char *to,
                           char *err, size_t errlen);
bool vhost_is_serving(const struct vhost *vh);
/* True when vh holds nothing durable: no durable queue, no durable
 * exchange of its own, no message in its log. A clean stop may then hand
 * it to another node, which starts it empty. */
bool vhost_is_empty(const struct vhost *vh);

/* Sets vh's metadata (RabbitMQ's description and tags; NULL keeps the
 * current value) and marks the definitions for rewriting. */
void node_vhost_set_meta(struct node *n, struct vhost *vh,
                         const char *description, const char *tags);

/* The replication settings a vhost's metadata may hold (issue 12):
 * "replicas" (copies of its log, the leader's included) and "min_isr"
 * (members of the in-sync set confirms need), each 1..VHOST_REPL_MAX; 0
 * in struct vhost_info and here: not set, the node's default applies. */
#define VHOST_REPL_MAX 16
struct vhost_repl_meta {
    uint32_t replicas, min_isr;
};
/* Reads "replicas" and "min_isr" from o (a PUT /api/vhosts body or a
 * definitions file's vhost item) or from its "metadata" object, which
 * wins. WR_ERR with why filled (a phrase for a 400 reply) when one is
 * not an integer in range, or min_isr exceeds replicas. A key absent
 * leaves its field 0. */
int node_vhost_repl_parse(const json_t *o, struct vhost_repl_meta *out,
                          char *why, size_t n);
/* Sets vh's replication metadata (0: not set) and marks the definitions
 * for rewriting. */
void node_vhost_set_repl(struct node *n, struct vhost *vh,
                         const struct vhost_repl_meta *m);

/* ---- users, permissions, limits, policies (user.c, perm.c, policy.c) */

/* User tags (RabbitMQ's management tags). */
enum {
    TAG_ADMINISTRATOR = 1,
    TAG_MONITORING = 2,
    TAG_POLICYMAKER = 4,
    TAG_MANAGEMENT = 8,
    TAG_IMPERSONATOR = 16,
};

/* A user of the node. Passwords are stored as RabbitMQ stores them:
 * base64(salt(4) || H(salt || password)), with H per hashing_algorithm
 * (rabbit_password_hashing_sha256 by default; sha512 and md5 accepted
 * on import). */
struct user {
    char *name;
    char *password_hash;     /* base64 text, "" = no password login */
    char *hashing_algorithm; /* "rabbit_password_hashing_sha256" */
    char *tags;              /* as given: "administrator,monitoring" */
    uint32_t tag_bits;       /* TAG_* of the tags Warren knows */
    /* RabbitMQ's user limits, USER_LIMIT_UNSET or the value set (a
     * negative one is shown but limits nothing) */
    int64_t max_connections, max_channels;
    uint32_t connections, channels; /* open now, node-wide */
    UT_hash_handle hh;
};

#define USER_LIMIT_UNSET INT64_MIN

/* Borrowed or NULL. Iterate with node_users(n) and u->hh.next. */
struct user *node_user_find(struct node *n, const char *name);
struct user *node_users(struct node *n);
size_t node_user_count(const struct node *n);
/*
 * Creates or replaces a user. Exactly one of password (hashed here with a
 * fresh salt) and password_hash (taken as is, with hashing_algorithm, or
 * sha256 when NULL) may be non-NULL; both NULL keeps the current password
 * of an existing user, or creates one who cannot log in with a password.
 * tags: comma separated (RabbitMQ accepts "administrator,management").
 */
int node_user_put(struct node *n, const char *name, const char *password,
                  const char *password_hash, const char *hashing_algorithm,
                  const char *tags, struct vherr *err);
/* Deletes a user and its permissions. Returns WR_ERR (404) if absent. */
int node_user_delete(struct node *n, const char *name, struct vherr *err);
/* Sets a user limit ("max-connections" or "max-channels"); 404 for no
 * such user, 400-worthy 406 with RabbitMQ's text for another name. */
int node_user_set_limit(struct node *n, const char *user, const char *name,
                        int64_t value, struct vherr *err);
/* Removes one (a limit not set is fine, as in RabbitMQ). */
int node_user_clear_limit(struct node *n, const char *user, const char *name,
                          struct vherr *err);
/* A connection of user is opened (connection.open): refused with
 * RabbitMQ's 530 text when the user is at max-connections; otherwise
 * counted until node_user_connection_leave. The same for channels. */
int node_user_connection_admit(struct node *n, const char *user,
                               struct vherr *err);
void node_user_connection_leave(struct node *n, const char *user);
int node_user_channel_admit(struct node *n, const char *user,
                            struct vherr *err);
void node_user_channel_leave(struct node *n, const char *user);
/* Checks a password against the user's hash (constant time). */
bool user_check_password(const struct user *u, struct bytes password);

/* A user's rights in a vhost: three PCRE regular expressions matched
 * against resource names (unanchored, as RabbitMQ's re:run); "" matches
 * nothing. */
struct perm {
    char *user;
    char *vhost;
    char *re[3]; /* configure, write, read (the source texts) */
    void *code[3];
    struct perm *next; /* all permissions, in a list */
};

/* Sets (creates or replaces) permissions; 400-style WR_ERR (code 406)
 * with the regex error when a pattern does not compile; 404 when the
 * user or vhost does not exist. */
int node_perm_set(struct node *n, const char *vhost, const char *user,
                  const char *configure, const char *write, const char *read,
                  struct vherr *err);
int node_perm_clear(struct node *n, const char *vhost, const char *user,
                    struct vherr *err);
/* Borrowed or NULL. */
const struct perm *node_perm_find(struct node *n, const char *vhost,
                                  const char *user);
/* All permissions (iterate with ->next). */
const struct perm *node_perms(struct node *n);
/* Changes with every permission change: callers may cache checks. */
uint64_t node_perm_gen(const struct node *n);

/* Per-vhost limits (RabbitMQ's vhost-limits); -1 = none. */
int node_vhost_set_limit(struct node *n, struct vhost *vh, const char *name,
                         int64_t value, struct vherr *err);
int node_vhost_clear_limit(struct node *n, struct vhost *vh, const char *name,
                           struct vherr *err);

/*
 * Policies, operator policies, runtime parameters and global parameters
 * are kept and exported as given (JSON objects in RabbitMQ's shapes),
 * even where Warren does not act on them. Each is keyed by
 * (vhost, component/name); vhost NULL for global parameters. The json
 * values are owned by the node; put steals `value`.
 */
enum node_kv {
    KV_POLICY,
    KV_OPERATOR_POLICY,
    KV_PARAMETER,
    KV_GLOBAL_PARAMETER,
};
int node_kv_put(struct node *n, enum node_kv kind, const char *vhost,
                const char *component, const char *name, json_t *value,
                struct vherr *err);
int node_kv_delete(struct node *n, enum node_kv kind, const char *vhost,
                   const char *component, const char *name, struct vherr *err);
/* A new JSON array of the items of that kind (of one vhost, or all when
 * vhost is NULL), in the shape the management API returns and the
 * definitions hold (with "vhost", "name", "component"...). */
json_t *node_kv_list(struct node *n, enum node_kv kind, const char *vhost);
/* Borrowed or NULL: one item. */
json_t *node_kv_find(struct node *n, enum node_kv kind, const char *vhost,
                     const char *component, const char *name);

/* ---- definitions (definitions.c): RabbitMQ's definitions JSON */

/* Exports durable vhosts, exchanges, queues and bindings (all vhosts, or
 * only one). Returns a new reference. */
json_t *node_defs_export(struct node *n, const char *only_vhost);
/* RabbitMQ's "limits" object of a user: the limits that are set
 * (definitions' users[].limits, /api/user-limits). */
json_t *user_limits_json(const struct user *u);
/* Imports a definitions document, creating what is missing; an object
 * that exists with other properties is an error (RabbitMQ's rules).
 * All or nothing: on an error the node is left as it was. */
int node_defs_import(struct node *n, json_t *doc, struct vherr *err);
/* Moves the exchanges, queues and bindings out of doc into a new object
 * keyed by vhost name, each value a definitions document holding that
 * vhost's three lists (a cluster imports them on each vhost's leader).
 * Items that name no vhost are dropped. Returns a new reference. */
json_t *node_defs_split_vhosts(json_t *doc);
/*
 * One object of the definitions at a time, for a cluster that keeps each
 * in its own etcd key (cluster/defs.c). The item is the object's entry in
 * RabbitMQ's definitions format, as node_defs_export writes it; the kinds
 * name the export's lists.
 */
enum defs_kind {
    DEFS_USER,             /* "users" */
    DEFS_VHOST,            /* "vhosts" */
    DEFS_PERMISSION,       /* "permissions" */
    DEFS_POLICY,           /* "policies" */
    DEFS_OPERATOR_POLICY,  /* "operator_policies" */
    DEFS_PARAMETER,        /* "parameters" (vhost limits among them) */
    DEFS_GLOBAL_PARAMETER, /* "global_parameters" */
    DEFS_NKINDS,
};
/* Creates or replaces the object (an import of that one item). */
int node_defs_put(struct node *n, enum defs_kind k, json_t *item,
                  struct vherr *err);
/* Removes the object the item names (for a vhost: the caller closes its
 * connections first, as for node_vhost_remove). */
int node_defs_remove(struct node *n, enum defs_kind k, json_t *item,
                     struct vherr *err);
/* Every object of that kind, as a new JSON array of items. */
json_t *node_defs_list(struct node *n, enum defs_kind k);
/* Every kind's list at once (new references), from one pass over the
 * model: what a snapshot of the cluster's definitions needs. */
void node_defs_lists(struct node *n, json_t *lists[DEFS_NKINDS]);

/* A field table body as a JSON object, and back (RabbitMQ's mapping). */
json_t *defs_table_to_json(struct bytes tbl);
int defs_json_to_table(json_t *obj, struct buf *out);

#endif
