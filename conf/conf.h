/*
 * conf: Warren's configuration, read from a file in RabbitMQ's new-style
 * `rabbitmq.conf` syntax (sysctl-like `key = value` lines, `#` comments)
 * into one plain struct, struct wr_config.
 *
 * Keys are RabbitMQ's where the concept is the same (`listeners.tcp.*`,
 * `heartbeat`, `vm_memory_high_watermark.relative`, ...) plus Warren's own
 * (`data_dir`, `fsync`, `queue_memory_budget`, `store.segment_size`). The
 * full list with types, ranges, defaults and help text is the X-macro table
 * conf/conf_keys.h; conf/warren.conf is the shipped, commented example.
 *
 * Typical startup:
 *
 *     struct wr_config cfg;
 *     char err[512];
 *     conf_defaults(&cfg);
 *     if (conf_load_file(&cfg, path, err, sizeof(err)) != WR_OK)
 *         die("%s", err);        // "warren.conf:12: heartbeat: ..."
 *
 * Invariants of a struct wr_config filled by conf_defaults() and then only
 * by conf_parse()/conf_load_file(): every field is within the range its
 * table row allows, every string is NUL-terminated valid UTF-8 without
 * control characters, and nlisteners/nloopback_users/ndefault_user_tags
 * never exceed their arrays.
 */
#ifndef WARREN_CONF_H
#define WARREN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define CONF_MAX_LISTENERS      8
#define CONF_MAX_ETCD_ENDPOINTS 8
#define CONF_MAX_LOOPBACK_USERS 16
#define CONF_MAX_USER_TAGS      8
#define CONF_MAX_TLS_VERSIONS   4
#define CONF_MAX_CIPHERS        64
#define CONF_MAX_AUTH_MECHS     4

/* A level value for `none` (base's LOG_NONE): nothing is logged. */
#define CONF_LOG_NONE (-1)
/* A level that may be left unset to inherit log.default.level (output and
 * category levels) is stored as CONF_LOG_SET(level), 0 = not set; read it
 * with conf_log_level(). */
#define CONF_LOG_SET(l) ((l) + 2)
static inline int
conf_log_level(int stored, int inherit)
{
    return stored ? stored - 2 : inherit;
}

/* Values of the log.*.formatter keys. */
enum conf_log_format { CONF_LOG_PLAIN = 0, CONF_LOG_JSON };

/* Values of wr_config.fsync (Warren's key `fsync`). */
enum conf_fsync {
    CONF_FSYNC_ALWAYS = 0, /* group commit before a publisher confirm */
    CONF_FSYNC_INTERVAL,   /* every fsync_interval_ms */
    CONF_FSYNC_NEVER,      /* leave it to the OS */
};

/* Values of wr_config.cluster_backend
 * (cluster_formation.peer_discovery_backend). */
enum conf_cluster_backend {
    CONF_CLUSTER_NONE = 0, /* classic_config: one node on its own */
    CONF_CLUSTER_ETCD,     /* etcd: a cluster coordinated by etcd */
};

/* Values of wr_config.queue_leader_locator. */
enum conf_locator {
    CONF_LOCATOR_CLIENT_LOCAL = 0, /* the node the declaring client is on */
    CONF_LOCATOR_BALANCED,         /* the node leading the fewest vhosts */
};

/* One AMQP listening socket: `listeners.tcp.<name> = [IP:]PORT`. */
struct wr_listener {
    char host[256]; /* "" (or "0.0.0.0") = all interfaces; "::" allowed;
                       otherwise an IPv4 or IPv6 literal, no brackets */
    uint16_t port;  /* 0 = let the kernel choose (tests) */
    char name[64];  /* the <name> in listeners.tcp.<name>; "" when set
                       through conf_parse_listener() (--listen) */
};

/* One item of a list of values: `prefix.<name> = value`
 * (auth_mechanisms.1 = PLAIN, ssl_options.versions.1 = tlsv1.3). */
struct wr_confitem {
    char name[32];
    char value[96];
};

/* Values of wr_tls.verify (ssl_options.verify). */
enum conf_verify {
    CONF_VERIFY_NONE = 0, /* verify_none: no client certificate asked */
    CONF_VERIFY_PEER,     /* verify_peer: a client certificate is asked
                             for and, if sent, checked against cacertfile */
};

/* Values of wr_config.ssl_cert_login_from. */
enum conf_cert_login {
    CONF_CERT_LOGIN_DN = 0, /* distinguished_name (RabbitMQ's default) */
    CONF_CERT_LOGIN_CN,     /* common_name */
};

/* One TLS server's settings: `ssl_options.*` for AMQPS, `management.ssl.*`
 * for HTTPS (RabbitMQ's keys). Files are PEM. */
struct wr_tls {
    char cacertfile[4096];     /* CAs client certificates are checked against */
    char certfile[4096];       /* the server's certificate (chain) */
    char keyfile[4096];        /* its private key; "" = in certfile */
    char password[256];        /* the key's passphrase; "" = none */
    int verify;                /* enum conf_verify, default verify_none */
    bool fail_if_no_peer_cert; /* verify_peer: refuse clients without a
                                  certificate (default false) */
    struct wr_confitem versions[CONF_MAX_TLS_VERSIONS]; /* tlsv1.2, ... */
    size_t nversions;                                   /* 0: TLS 1.2 and 1.3 */
    struct wr_confitem ciphers[CONF_MAX_CIPHERS];       /* OpenSSL names */
    size_t nciphers; /* 0: OpenSSL's defaults */
};

/*
 * Every setting. Durations carry their unit in the field name; sizes are
 * bytes. conf_defaults() gives RabbitMQ's defaults where a key is shared.
 */
struct wr_config {
    /* ---- AMQP listeners and protocol limits */
    struct wr_listener listeners[CONF_MAX_LISTENERS]; /* listeners.tcp.* */
    size_t nlisteners;             /* default 1: ""/5672 (all interfaces);
                                      0 after `listeners.tcp = none` */
    uint32_t heartbeat;            /* seconds, default 60, 0 = off */
    uint32_t frame_max;            /* bytes, default 131072, min 4096 */
    uint16_t channel_max;          /* default 2047, 0 = no limit (65535) */
    uint64_t max_message_size;     /* default 134217728, max 536870912 */
    uint32_t connection_max;       /* node-wide limit; 0 = infinity (default) */
    uint32_t handshake_timeout_ms; /* default 10000; 0 = infinity */
    uint32_t consumer_timeout_ms;  /* delivery ack timeout, default
                                      1800000; 0 = infinity */

    /* ---- TLS (server/tls.c) */
    struct wr_listener ssl_listeners[CONF_MAX_LISTENERS]; /* listeners.ssl.*,
                                                             none default */
    size_t nssl_listeners;
    struct wr_tls ssl; /* ssl_options.* */
    struct wr_confitem auth_mechanisms[CONF_MAX_AUTH_MECHS];
    size_t nauth_mechanisms;           /* 0: PLAIN and AMQPLAIN */
    int ssl_cert_login_from;           /* enum conf_cert_login */
    uint32_t ssl_handshake_timeout_ms; /* ssl_handshake_timeout: the TLS
                                          handshake, default 5000 ms */

    /* ---- users and access: created on first start (RabbitMQ keys) */
    char default_user[256];           /* default "guest" */
    char default_pass[256];           /* default "guest" */
    char default_vhost[256];          /* default "/" */
    char default_perm_configure[256]; /* default_permissions.configure,
                                         default ".*" */
    char default_perm_write[256];     /* default_permissions.write, ".*" */
    char default_perm_read[256];      /* default_permissions.read, ".*" */
    /* Tags of default_user (default_user_tags.<tag> = true); default
     * administrator. */
    char default_user_tags[CONF_MAX_USER_TAGS][64];
    size_t ndefault_user_tags;
    /* Users that may log in only from a loopback address; default guest. */
    char loopback_users[CONF_MAX_LOOPBACK_USERS][256];
    size_t nloopback_users;

    /* ---- resources and alarms */
    /* Alarm thresholds come in relative/absolute pairs, as in RabbitMQ.
     * Use the absolute value if non-zero, else relative * RAM (RAM =
     * total_memory_available_override if non-zero, else detected). A file
     * that sets the .relative key zeroes .absolute (relative wins, as in
     * RabbitMQ) and one that sets only .absolute zeroes .relative, so at
     * most one of each pair is non-zero. */
    double vm_memory_high_watermark_relative;   /* default 0.4; 0 blocks
                                                   all publishing */
    uint64_t vm_memory_high_watermark_absolute; /* 0 = use relative */
    uint64_t total_memory_available_override;   /* 0 = detect */
    uint32_t memory_monitor_interval_ms;        /* default 2500 */
    uint64_t disk_free_limit_absolute;          /* default 50000000 */
    double disk_free_limit_relative;            /* a multiple of RAM;
                                                   default 0 (use absolute);
                                                   a limit of 0 = no alarm */
    uint64_t memory_budget; /* Warren's `queue_memory_budget`: RAM for
                               message bodies before paging to disk;
                               0 = derived from the watermark (default) */

    /* ---- management HTTP API */
    uint16_t management_port;     /* management.tcp.port, default 15672,
                                     0 = kernel-chosen (tests) */
    char management_ip[256];      /* management.tcp.ip, default "0.0.0.0" */
    uint64_t management_max_body; /* management.http.max_body_size,
                                     default 32 MiB */
    bool management_optional;     /* management.tcp.optional: a port in
                                     use is not fatal (default false) */
    uint16_t management_ssl_port; /* management.ssl.port; 0 = no HTTPS */
    char management_ssl_ip[256];  /* management.ssl.ip, default 0.0.0.0 */
    struct wr_tls management_ssl; /* management.ssl.* */

    /* ---- Prometheus listener */
    uint16_t prometheus_port; /* prometheus.tcp.port, default 15692,
                                 0 = kernel-chosen (tests) */
    char prometheus_ip[256];  /* prometheus.tcp.ip, default "0.0.0.0" */
    bool prometheus_optional; /* prometheus.tcp.optional (default false) */

    /* ---- storage and definitions */
    char data_dir[4096];         /* Warren's `data_dir`, default "data"
                                    (relative to the working directory) */
    char load_definitions[4096]; /* definitions JSON loaded at boot;
                                    "" = none (default) */
    int fsync;                   /* enum conf_fsync, default always */
    uint32_t fsync_interval_ms;  /* Warren's `fsync_interval`, default 200 */
    uint64_t segment_size;       /* Warren's `store.segment_size`,
                                    default 64MiB */

    /* ---- logging and identity */
    int log_default_level;       /* enum log_level or CONF_LOG_NONE;
                                    log.default.level, default LOG_INFO */
    bool log_console;            /* log.console, default true; false when the
                                    file sets log.file but not log.console */
    int log_console_level;       /* log.console.level, CONF_LOG_SET(level) or
                                    0 = log.default.level (default) */
    int log_console_format;      /* enum conf_log_format, default plaintext */
    char log_dir[4096];          /* log.dir: a relative log.file's
                                    directory, joined to log_file */
    char log_file[4096];         /* log.file; "" = none (default) */
    int log_file_level;          /* log.file.level, as log_console_level */
    int log_file_format;         /* enum conf_log_format, default plaintext */
    uint64_t log_rotation_size;  /* log.file.rotation.size, bytes; 0 =
                                    never (default) */
    char log_rotation_date[64];  /* log.file.rotation.date, RabbitMQ's
                                    date spec (base/log.c); "" = never */
    uint32_t log_rotation_count; /* log.file.rotation.count, default 5 */
    int log_connection_level;    /* log.connection.level, as
                                    log_console_level; 0 = no filter
                                    beyond the outputs' levels */
    char cluster_name[256];      /* default "warren@<hostname>" */
    bool cluster_name_set;       /* cluster_name came from a config file */

    /* ---- clustering (cluster/) */
    int cluster_backend; /* enum conf_cluster_backend,
                            cluster_formation.peer_discovery_backend,
                            default classic_config (one node) */
    struct wr_listener etcd_endpoints[CONF_MAX_ETCD_ENDPOINTS];
    size_t netcd_endpoints;     /* cluster_formation.etcd.endpoints.*,
                                   default 127.0.0.1:2379 */
    char etcd_key_prefix[256];  /* cluster_formation.etcd.key_prefix,
                                   default "warren" */
    char etcd_cluster[256];     /* cluster_formation.etcd.cluster_name,
                                   default "default" */
    uint32_t etcd_node_ttl_s;   /* cluster_formation.etcd.node_ttl, 10 */
    uint32_t discovery_retries; /* cluster_formation.discovery_retry_limit */
    uint32_t discovery_interval_ms; /* ..._retry_interval, default 500 */
    char node_name[256];            /* cluster.node_name, default
                                       "warren@<hostname>" */
    char cluster_listen[300];       /* cluster.listen: node-to-node
                                       IP:PORT, default 0.0.0.0:25672 */
    char cluster_advertise[300];    /* cluster.advertise: IP:PORT other nodes
                                       use; default: the listen address */
    char cluster_secret[256];       /* cluster.secret; default: one kept in
                                       etcd for the cluster */
    uint64_t catchup_window;        /* replication.catchup_window: bytes of
                                       recent cuts a vhost's leader keeps
                                       for returning mirrors, 64MiB */
    int queue_leader_locator;       /* enum conf_locator, default balanced */
    uint32_t repl_replicas;         /* replication.replicas, 3 */
    uint32_t repl_min_isr;          /* replication.min_isr, 2 */
    uint32_t repl_timeout_ms;       /* replication.timeout, 3000 */
    uint32_t repl_blocked_after_ms; /* replication.blocked_after, 1000 */
    uint32_t repl_disk_stall_ms;    /* replication.disk_stall_timeout */
};

/* Fills c with every default. */
void conf_defaults(struct wr_config *c);

/*
 * Parses text (len bytes, need not be NUL-terminated; `name` is used in
 * messages, e.g. the file name) into c, on top of what c holds: keys the
 * text sets replace c's values, the others stay. A list key
 * (listeners.tcp.*, loopback_users.*, default_user_tags.*) met in the text
 * replaces the whole list c held, as RabbitMQ builds those lists from the
 * file alone. The same key twice: the last one wins.
 *
 * Returns WR_OK, or WR_ERR with "name:line: ..." in err (truncated to
 * errlen; err may be NULL) and c unchanged.
 */
int conf_parse(struct wr_config *c, const char *text, size_t len,
               const char *name, char *err, size_t errlen);

/* Reads the file at path and conf_parse()s it, named by its path.
 * Returns WR_OK, or WR_ERR with the reason in err and c unchanged. */
int conf_load_file(struct wr_config *c, const char *path, char *err,
                   size_t errlen);

/*
 * Parses "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" (the --listen override
 * and listener values). HOST must be an IPv4 or IPv6 literal; IPv6 may also
 * be written bare, as RabbitMQ does ("::1:5672" splits at the last colon).
 * Sets out->name to "". Returns WR_OK, or WR_ERR with the reason in err and
 * out unchanged.
 */
int conf_parse_listener(const char *s, struct wr_listener *out, char *err,
                        size_t errlen);

/*
 * Appends every directive with its current value, each preceded by `#`
 * comment lines (what it does, what it allows, its default), for
 * `warren --print-config`. Accepted-and-ignored RabbitMQ keys and aliases
 * are left out. For a config
 * built by conf_defaults() and conf_parse(), the output parses back over
 * conf_defaults() into an equal config. Unset strings are written as
 * comments.
 */
void conf_dump(const struct wr_config *c, struct buf *out);

#endif
