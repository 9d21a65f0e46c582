/*
 * conf_keys.h: every configuration key Warren reads, one row each, in the
 * order `warren --print-config` writes them. X-macro table (Varnish style):
 * conf/conf.c defines the four macros below, includes this file, and gets
 * the table its one parse loop walks. Private to conf/; no include guard.
 *
 *   CONF_KEY(key, type, field, min, max, flags, unit, enums, default, help)
 *       A scalar stored in struct wr_config's `field`. min/max bound
 *       numbers (integers up to 2^53, exact as doubles); `unit` names them
 *       in messages; `enums` is the name table of a CONF_ENUM; `default` is
 *       the value text conf_defaults() parses (NULL: zero/empty, or set by
 *       conf_defaults() itself).
 *   CONF_LIST(key, type, array, count, default_name, default, help)
 *       A per-item key "prefix.*": the last key segment names the item
 *       (listener name, user, tag; `\.` escapes a dot in it). Items fill
 *       `array`, `count` says how many. The first item key of a parse
 *       replaces the list inherited from defaults or an earlier file.
 *   CONF_IGNORED(key, type, min, max, enums, why)
 *       A RabbitMQ key Warren accepts so that existing rabbitmq.conf files
 *       load, checks like any other, and then does not act on; `why` says
 *       why that is harmless. Keys that would change behaviour Warren lacks
 *       (syslog, the log exchange) are NOT listed: they are
 *       unknown keys and stop startup.
 *   CONF_ALIAS(key, canonical)
 *       Another RabbitMQ spelling of the same setting.
 *
 *   CONF_VLIST(key, array, count, enums, help)
 *       A list of values, `prefix.<name> = value` (auth_mechanisms.1 =
 *       PLAIN), kept in the order the keys come; the same <name> again
 *       replaces its value. `enums` (NULL: any text) lists the values
 *       allowed. No default: the user of the list says what none means.
 *
 * Names, types and defaults are RabbitMQ 3.10's (deps/rabbit/priv/schema/
 * rabbit.schema and rabbitmq_management.schema) unless the help text says
 * "Warren:". To add a key: add a field to struct wr_config, a row here, a
 * commented line in conf/warren.conf (a unit test checks it is there), and
 * a test in test/unit/test_conf.c.
 */

/* ---- AMQP listeners and protocol limits */

CONF_KEY("listeners.tcp", CONF_NONE, nlisteners, 0, 0, 0, NULL, NULL, NULL,
         "\"none\" disables every AMQP listener, even those set by "
         "listeners.tcp.<name> keys")
CONF_LIST("listeners.tcp.*", CONF_LISTENER, listeners, nlisteners, "default",
          "5672",
          "AMQP listener <name>: PORT (all interfaces) or IP:PORT "
          "(IPv6 as ::1:5672 or [::1]:5672)")
CONF_KEY("heartbeat", CONF_UINT, heartbeat, 0, 65535, 0, "seconds", NULL, "60",
         "Heartbeat timeout the server proposes in connection.tune; 0 = off")
CONF_KEY("frame_max", CONF_BYTESIZE, frame_max, 4096, 4294967295, 0, "bytes",
         NULL, "131072",
         "Largest frame the server accepts, proposed in connection.tune "
         "(KB/MB/GB suffixes are powers of 1024 here, as in RabbitMQ)")
CONF_KEY("channel_max", CONF_UINT, channel_max, 0, 65535, 0, "channels", NULL,
         "2047",
         "Channels per connection proposed in connection.tune; 0 = no limit")
CONF_KEY("max_message_size", CONF_UINT, max_message_size, 1, 536870912, 0,
         "bytes", NULL, "134217728",
         "Largest message body accepted; a larger publish is refused")
CONF_KEY("connection_max", CONF_UINT, connection_max, 1, 4294967295,
         CONF_F_INFINITY, "connections", NULL, "infinity",
         "Node-wide limit on client connections")
CONF_KEY("handshake_timeout", CONF_UINT, handshake_timeout_ms, 1, 4294967295,
         CONF_F_INFINITY, "ms", NULL, "10000",
         "Time a client has for the AMQP handshake after connecting")
CONF_KEY("consumer_timeout", CONF_UINT, consumer_timeout_ms, 1, 4294967295,
         CONF_F_INFINITY, "ms", NULL, "1800000",
         "A delivery not acknowledged within this time closes its channel")

/* ---- TLS (AMQPS) and authentication mechanisms */

CONF_KEY("listeners.ssl", CONF_NONE, nssl_listeners, 0, 0, 0, NULL, NULL, NULL,
         "\"none\" disables every AMQPS listener")
CONF_LIST("listeners.ssl.*", CONF_LISTENER, ssl_listeners, nssl_listeners, NULL,
          NULL,
          "AMQPS (AMQP over TLS) listener <name>: PORT or IP:PORT, as "
          "listeners.tcp; needs ssl_options.certfile")
CONF_KEY("ssl_options.cacertfile", CONF_STRING, ssl.cacertfile, 0, 0, 0, NULL,
         NULL, NULL,
         "PEM file of the CAs that sign the client certificates AMQPS accepts")
CONF_KEY("ssl_options.certfile", CONF_STRING, ssl.certfile, 0, 0, 0, NULL, NULL,
         NULL, "PEM file of the server's certificate (and its chain) for AMQPS")
CONF_KEY("ssl_options.keyfile", CONF_STRING, ssl.keyfile, 0, 0, 0, NULL, NULL,
         NULL, "PEM file of the certificate's private key; default: certfile")
CONF_KEY("ssl_options.password", CONF_STRING, ssl.password, 0, 0, 0, NULL, NULL,
         NULL, "Passphrase of an encrypted keyfile")
CONF_KEY("ssl_options.verify", CONF_ENUM, ssl.verify, 0, 0, 0, NULL,
         conf_verify_modes, "verify_none",
         "verify_peer asks clients for a certificate and checks one sent "
         "against cacertfile; verify_none asks for none")
CONF_KEY("ssl_options.fail_if_no_peer_cert", CONF_BOOL,
         ssl.fail_if_no_peer_cert, 0, 0, 0, NULL, NULL, "false",
         "With verify_peer: refuse a client that sends no certificate")
CONF_VLIST("ssl_options.versions.*", ssl.versions, ssl.nversions,
           conf_tls_versions,
           "TLS version <n> AMQPS accepts (tlsv1.2, tlsv1.3); none set: "
           "tlsv1.2 and tlsv1.3")
CONF_VLIST("ssl_options.ciphers.*", ssl.ciphers, ssl.nciphers, NULL,
           "Cipher suite <n>, OpenSSL's name (TLS_AES_256_GCM_SHA384, "
           "ECDHE-RSA-AES256-GCM-SHA384); none set: OpenSSL's defaults")
CONF_VLIST("auth_mechanisms.*", auth_mechanisms, nauth_mechanisms,
           conf_auth_mechs,
           "SASL mechanism <n> offered to AMQP clients (PLAIN, AMQPLAIN, "
           "EXTERNAL: the TLS client certificate); none set: PLAIN and "
           "AMQPLAIN")
CONF_KEY("ssl_handshake_timeout", CONF_UINT, ssl_handshake_timeout_ms, 1,
         4294967295, CONF_F_INFINITY, "ms", NULL, "5000",
         "Time an AMQPS client has for the TLS handshake; then "
         "handshake_timeout for the AMQP one")
CONF_KEY("ssl_cert_login_from", CONF_ENUM, ssl_cert_login_from, 0, 0, 0, NULL,
         conf_cert_logins, "distinguished_name",
         "EXTERNAL: the user name is the client certificate's subject "
         "(distinguished_name, as CN=...,O=...) or its common_name")

/* ---- users and access, created on first start */

CONF_KEY("default_user", CONF_STRING, default_user, 0, 0, 0, NULL, NULL,
         "guest", "User created on first start")
CONF_KEY("default_pass", CONF_STRING, default_pass, 0, 0, 0, NULL, NULL,
         "guest", "Password of default_user (a # starts a comment, even here)")
CONF_KEY("default_vhost", CONF_STRING, default_vhost, 0, 0, 0, NULL, NULL, "/",
         "Virtual host created on first start")
CONF_KEY("default_permissions.configure", CONF_STRING, default_perm_configure,
         0, 0, 0, NULL, NULL, ".*",
         "Regular expression: what default_user may configure in "
         "default_vhost")
CONF_KEY("default_permissions.write", CONF_STRING, default_perm_write, 0, 0, 0,
         NULL, NULL, ".*",
         "Regular expression: where default_user may write in default_vhost")
CONF_KEY("default_permissions.read", CONF_STRING, default_perm_read, 0, 0, 0,
         NULL, NULL, ".*",
         "Regular expression: what default_user may read in default_vhost")
CONF_LIST("default_user_tags.*", CONF_NAMESET, default_user_tags,
          ndefault_user_tags, "administrator", "true",
          "true gives default_user the tag <tag> (administrator, "
          "monitoring, policymaker, management)")
CONF_KEY("loopback_users", CONF_NONE, nloopback_users, 0, 0, 0, NULL, NULL,
         NULL, "\"none\" lets every user log in from any address")
CONF_LIST("loopback_users.*", CONF_NAMESET, loopback_users, nloopback_users,
          "guest", "true",
          "true: user <name> may log in only from a loopback address")

/* ---- resources and alarms */

CONF_KEY("vm_memory_high_watermark.relative", CONF_DOUBLE,
         vm_memory_high_watermark_relative, 0, 1, 0, "of RAM", NULL, "0.4",
         "Memory alarm (publishers blocked) above this fraction of RAM; "
         "0 blocks all publishing")
CONF_KEY("vm_memory_high_watermark.absolute", CONF_SIZE,
         vm_memory_high_watermark_absolute, 1, CVAL_SIZE_MAX, 0, "bytes", NULL,
         NULL,
         "Memory alarm above this many bytes (e.g. 2GB) instead; the "
         "relative key wins if a file sets both")
CONF_KEY("total_memory_available_override_value", CONF_SIZE,
         total_memory_available_override, 1, CVAL_SIZE_MAX, CONF_F_UNSET0,
         "bytes", NULL, NULL, "RAM size to assume instead of the detected one")
CONF_KEY("memory_monitor_interval", CONF_UINT, memory_monitor_interval_ms, 1,
         86400000, 0, "ms", NULL, "2500",
         "How often memory use is checked against the watermark")
CONF_KEY("disk_free_limit.absolute", CONF_SIZE, disk_free_limit_absolute, 0,
         CVAL_SIZE_MAX, 0, "bytes", NULL, "50MB",
         "Disk alarm (publishers blocked) when free space on data_dir's disk "
         "falls below this; 0 = never")
CONF_KEY("disk_free_limit.relative", CONF_DOUBLE, disk_free_limit_relative, 0,
         100, 0, "times RAM", NULL, NULL,
         "Disk alarm threshold as a multiple of RAM (e.g. 1.5) instead; "
         "wins if a file sets both")
CONF_KEY("queue_memory_budget", CONF_SIZE, memory_budget, 0, CVAL_SIZE_MAX, 0,
         "bytes", NULL, "0",
         "Warren: RAM for message bodies before queues page them to disk; "
         "0 = derived from the memory watermark")

/* ---- management HTTP API */

CONF_KEY("management.tcp.port", CONF_UINT, management_port, 0, 65535, 0, NULL,
         NULL, "15672",
         "Port of the management HTTP API; 0 = a port the kernel picks "
         "(tests read it from the log)")
CONF_KEY("management.http.max_body_size", CONF_UINT, management_max_body, 1024,
         536870912, 0, "bytes", NULL, "33554432",
         "Largest request body the management API accepts (413 above it)")
CONF_KEY("management.tcp.ip", CONF_IP, management_ip, 0, 0, 0, NULL, NULL,
         "0.0.0.0", "Address the management HTTP API listens on")
CONF_KEY("management.tcp.optional", CONF_BOOL, management_optional, 0, 0, 0,
         NULL, NULL, "false",
         "Warren: when the management port is in use, run without the API "
         "instead of refusing to start")
CONF_KEY("management.ssl.port", CONF_UINT, management_ssl_port, 0, 65535,
         CONF_F_UNSET0, NULL, NULL, NULL,
         "Port of the management API over HTTPS; not set: no HTTPS "
         "listener")
CONF_KEY("management.ssl.ip", CONF_IP, management_ssl_ip, 0, 0, 0, NULL, NULL,
         "0.0.0.0", "Address the management API's HTTPS listener listens on")
CONF_KEY("management.ssl.cacertfile", CONF_STRING, management_ssl.cacertfile, 0,
         0, 0, NULL, NULL, NULL,
         "PEM file of the CAs that sign the client certificates the management "
         "API accepts")
CONF_KEY("management.ssl.certfile", CONF_STRING, management_ssl.certfile, 0, 0,
         0, NULL, NULL, NULL,
         "PEM file of the server's certificate (and its chain) for the "
         "management API")
CONF_KEY("management.ssl.keyfile", CONF_STRING, management_ssl.keyfile, 0, 0, 0,
         NULL, NULL, NULL,
         "PEM file of the certificate's private key; default: certfile")
CONF_KEY("management.ssl.password", CONF_STRING, management_ssl.password, 0, 0,
         0, NULL, NULL, NULL, "Passphrase of an encrypted keyfile")
CONF_KEY("management.ssl.verify", CONF_ENUM, management_ssl.verify, 0, 0, 0,
         NULL, conf_verify_modes, "verify_none",
         "verify_peer asks clients for a certificate and checks one sent "
         "against cacertfile; verify_none asks for none")
CONF_KEY("management.ssl.fail_if_no_peer_cert", CONF_BOOL,
         management_ssl.fail_if_no_peer_cert, 0, 0, 0, NULL, NULL, "false",
         "With verify_peer: refuse a client that sends no certificate")
CONF_VLIST(
    "management.ssl.versions.*", management_ssl.versions,
    management_ssl.nversions, conf_tls_versions,
    "TLS version <n> the management API accepts (tlsv1.2, tlsv1.3); none set: "
    "tlsv1.2 and tlsv1.3")
CONF_VLIST("management.ssl.ciphers.*", management_ssl.ciphers,
           management_ssl.nciphers, NULL,
           "Cipher suite <n>, OpenSSL's name (TLS_AES_256_GCM_SHA384, "
           "ECDHE-RSA-AES256-GCM-SHA384); none set: OpenSSL's defaults")
CONF_ALIAS("management.listener.port", "management.tcp.port")
CONF_ALIAS("management.listener.ip", "management.tcp.ip")

/* ---- Prometheus (rabbitmq_prometheus.schema) */

CONF_KEY("prometheus.tcp.port", CONF_UINT, prometheus_port, 0, 65535, 0, NULL,
         NULL, "15692",
         "Port of the Prometheus listener (/metrics, /metrics/per-object, "
         "/metrics/detailed, no login); 0 = a port the kernel picks (tests "
         "read it from the log)")
CONF_KEY("prometheus.tcp.ip", CONF_IP, prometheus_ip, 0, 0, 0, NULL, NULL,
         "0.0.0.0", "Address the Prometheus listener listens on")
CONF_KEY("prometheus.tcp.optional", CONF_BOOL, prometheus_optional, 0, 0, 0,
         NULL, NULL, "false",
         "Warren: when the Prometheus port is in use, run without that "
         "listener instead of refusing to start")

/* ---- storage and definitions */

CONF_KEY("data_dir", CONF_STRING, data_dir, 0, 0, 0, NULL, NULL, "data",
         "Warren: directory of the message store and durable definitions, "
         "relative to the working directory")
CONF_KEY("load_definitions", CONF_STRING, load_definitions, 0, 0, 0, NULL, NULL,
         NULL, "Definitions JSON file (RabbitMQ's format) imported at boot")
CONF_ALIAS("definitions.local.path", "load_definitions")
CONF_ALIAS("management.load_definitions", "load_definitions")
CONF_KEY("fsync", CONF_ENUM, fsync, 0, 0, 0, NULL, conf_fsync_modes, "always",
         "Warren: when the store calls fsync: always (before publisher "
         "confirms), interval, or never")
CONF_KEY("fsync_interval", CONF_UINT, fsync_interval_ms, 1, 60000, 0, "ms",
         NULL, "200", "Warren: fsync period when fsync = interval")
CONF_KEY("store.segment_size", CONF_SIZE, segment_size, 1048576, 1073741824, 0,
         "bytes", NULL, "64MiB",
         "Warren: size of one message store segment file")

/* ---- logging and identity */

CONF_KEY("log.default.level", CONF_ENUM, log_default_level, 0, 0, 0, NULL,
         conf_log_levels, "info",
         "Least severe level logged by every output whose own level is not "
         "set (notice = info; critical, alert and emergency = error; "
         "none = nothing)")
CONF_KEY("log.console", CONF_BOOL, log_console, 0, 0, 0, NULL, NULL, "true",
         "Log to standard error (journald under systemd); when log.file is "
         "set and this key is not, false, as in RabbitMQ")
CONF_KEY("log.console.level", CONF_ENUM, log_console_level, 0, 0, CONF_F_UNSET0,
         NULL, conf_opt_log_levels, NULL,
         "Least severe level logged to the console; default "
         "log.default.level")
CONF_KEY("log.console.formatter", CONF_ENUM, log_console_format, 0, 0, 0, NULL,
         conf_log_formats, "plaintext",
         "Console lines as plain text or one JSON object each (time, "
         "level, msg, pid)")
CONF_KEY("log.dir", CONF_STRING, log_dir, 0, 0, 0, NULL, NULL, NULL,
         "Directory of a relative log.file (default: the working "
         "directory)")
CONF_KEY("log.file", CONF_STRING, log_file, 0, 0, 0, NULL, NULL, NULL,
         "Log file (\"false\": none); reopened on SIGHUP and SIGUSR1, for "
         "logrotate")
CONF_KEY("log.file.level", CONF_ENUM, log_file_level, 0, 0, CONF_F_UNSET0, NULL,
         conf_opt_log_levels, NULL,
         "Least severe level logged to log.file; default log.default.level")
CONF_KEY("log.file.formatter", CONF_ENUM, log_file_format, 0, 0, 0, NULL,
         conf_log_formats, "plaintext",
         "log.file lines as plain text or one JSON object each")
CONF_KEY("log.file.rotation.size", CONF_UINT, log_rotation_size, 0,
         1099511627776, 0, "bytes", NULL, "0",
         "Rotate log.file when a line would take it past this size: the "
         "file becomes <file>.0, <file>.0 becomes <file>.1, ...; "
         "0 = never (leave it to logrotate)")
CONF_KEY("log.file.rotation.date", CONF_STRING, log_rotation_date, 0, 0, 0,
         NULL, NULL, NULL,
         "Rotate log.file at a time of day, week or month (local time), "
         "RabbitMQ's date spec: $D0 every midnight, $D23 every day at "
         "23:00, $W5D16 Fridays at 16:00, $M1D0 the 1st of each month, $ML "
         "its last day; not set = never")
CONF_KEY("log.file.rotation.count", CONF_UINT, log_rotation_count, 0, 1000, 0,
         "files", NULL, "5",
         "Rotated files kept, <file>.0 (the newest) to <file>.<count-1>")
CONF_KEY("log.connection.level", CONF_ENUM, log_connection_level, 0, 0,
         CONF_F_UNSET0, NULL, conf_opt_log_levels, NULL,
         "Least severe level of the connection category (connections "
         "accepted, authenticated, refused, closed), applied before the "
         "outputs' levels; default: the outputs' levels alone")
CONF_KEY("cluster_name", CONF_STRING, cluster_name, 0, 0, 0, NULL, NULL, NULL,
         "Name shown to clients and in the management API; default "
         "warren@<hostname>")

/* ---- clustering (cluster/: nodes coordinated by etcd) */

CONF_KEY("cluster_formation.peer_discovery_backend", CONF_ENUM, cluster_backend,
         0, 0, 0, NULL, conf_backends, "classic_config",
         "classic_config: one node on its own (no etcd); etcd: a cluster "
         "of nodes coordinated by etcd")
CONF_LIST("cluster_formation.etcd.endpoints.*", CONF_LISTENER, etcd_endpoints,
          netcd_endpoints, "1", "127.0.0.1:2379",
          "etcd member <n>: IP:PORT (numeric: Warren resolves no names on "
          "its event loop); requests fail over between them")
CONF_KEY("cluster_formation.etcd.key_prefix", CONF_STRING, etcd_key_prefix, 0,
         0, 0, NULL, NULL, "warren", "Prefix of every key Warren keeps in etcd")
CONF_KEY("cluster_formation.etcd.cluster_name", CONF_STRING, etcd_cluster, 0, 0,
         0, NULL, NULL, "default",
         "The cluster's name in etcd (nodes with the same name form one "
         "cluster); also the cluster_name shown when that key is not set")
CONF_KEY("cluster_formation.etcd.node_ttl", CONF_UINT, etcd_node_ttl_s, 2, 3600,
         0, "seconds", NULL, "10",
         "TTL of a node's etcd lease: a node that stops renewing it is "
         "taken for dead after this long")
CONF_KEY("cluster_formation.discovery_retry_limit", CONF_UINT,
         discovery_retries, 1, 100000, 0, NULL, NULL, "10",
         "Attempts to reach etcd at startup before giving up")
CONF_KEY("cluster_formation.discovery_retry_interval", CONF_UINT,
         discovery_interval_ms, 1, 3600000, 0, "ms", NULL, "500",
         "Time between those attempts")
CONF_KEY("cluster.node_name", CONF_STRING, node_name, 0, 0, 0, NULL, NULL, NULL,
         "Warren: this node's name in the cluster, unique; default "
         "warren@<hostname>")
CONF_KEY("cluster.listen", CONF_STRING, cluster_listen, 0, 0, 0, NULL, NULL,
         "0.0.0.0:25672",
         "Warren: IP:PORT of the node-to-node listener (relayed clients, "
         "replication)")
CONF_KEY("cluster.advertise", CONF_STRING, cluster_advertise, 0, 0, 0, NULL,
         NULL, NULL,
         "Warren: IP:PORT other nodes use to reach this one; default "
         "cluster.listen (required when that listens on every interface "
         "and the node has several addresses)")
CONF_KEY("cluster.secret", CONF_STRING, cluster_secret, 0, 0, 0, NULL, NULL,
         NULL,
         "Warren: the secret nodes prove to each other; default: one kept "
         "in etcd for the cluster (anyone who can read etcd can join)")
CONF_KEY("replication.catchup_window", CONF_SIZE, catchup_window, 0, 4294967296,
         0, "bytes", NULL, "64MiB",
         "Warren: bytes of recent replication frames a vhost's leader keeps "
         "in memory, so that a mirror back within them catches up from its "
         "position instead of taking a snapshot; 0 = none (a mirror that "
         "missed anything gets a snapshot)")
CONF_KEY("queue_leader_locator", CONF_ENUM, queue_leader_locator, 0, 0, 0, NULL,
         conf_leader_locators, "balanced",
         "Which node leads a new vhost: balanced (the node leading the "
         "fewest) or client-local (the node it was created on)")

CONF_KEY("replication.replicas", CONF_UINT, repl_replicas, 1, 16, 0, "copies",
         NULL, "3",
         "Warren: copies of each vhost's log, the leader's included (the "
         "vhost's metadata \"replicas\" overrides it); fewer when the "
         "cluster has fewer nodes")
CONF_KEY("replication.min_isr", CONF_UINT, repl_min_isr, 1, 16, 0, "copies",
         NULL, "2",
         "Warren: publisher confirms wait until the in-sync set has this many "
         "members, the leader included (vhost metadata \"min_isr\"); at "
         "most replication.replicas, and fewer in a smaller cluster")
CONF_KEY("replication.timeout", CONF_UINT, repl_timeout_ms, 100, 3600000, 0,
         "ms", NULL, "3000",
         "Warren: a mirror that has not caught up with the leader's position "
         "of this long ago leaves the in-sync set")
CONF_KEY("replication.blocked_after", CONF_UINT, repl_blocked_after_ms, 0,
         3600000, 0, "ms", NULL, "1000",
         "Warren: publishers of a vhost whose confirms wait for the in-sync "
         "set this long are blocked (connection.blocked); 0 = never")
CONF_KEY("replication.disk_stall_timeout", CONF_UINT, repl_disk_stall_ms, 0,
         3600000, 0, "ms", NULL, "10000",
         "Warren: a leader whose log write or fdatasync has not returned for "
         "this long gives up its vhost (clients get 320); 0 = never")

/* ---- RabbitMQ keys accepted, checked, and not acted on */

CONF_IGNORED("definitions.import_backend", CONF_ENUM, 0, 0,
             conf_import_backends,
             "the only backend is the local file named by load_definitions")
CONF_IGNORED("log.file.rotation.compress", CONF_ENUM, 0, 0, conf_false_only,
             "Warren does not compress rotated logs (logrotate's compress "
             "does); only \"false\" is accepted")
CONF_IGNORED("log.syslog", CONF_ENUM, 0, 0, conf_false_only,
             "Warren has no syslog output; only \"false\" is accepted")
CONF_IGNORED("log.exchange", CONF_ENUM, 0, 0, conf_false_only,
             "Warren has no amq.rabbitmq.log exchange; only \"false\" is "
             "accepted")
CONF_IGNORED("num_acceptors.tcp", CONF_UINT, 1, 65535, NULL,
             "Erlang acceptor processes; Warren accepts on its event loop")
CONF_IGNORED("reverse_dns_lookups", CONF_BOOL, 0, 0, NULL,
             "Warren shows peer IP addresses only")
CONF_IGNORED("collect_statistics_interval", CONF_UINT, 1, 4294967295, NULL,
             "Warren's statistics are always current")
CONF_IGNORED("vm_memory_high_watermark_paging_ratio", CONF_DOUBLE, 0, 1, NULL,
             "Warren pages message bodies by queue_memory_budget")
CONF_IGNORED("vm_memory_calculation_strategy", CONF_ENUM, 0, 0,
             conf_mem_strategies, "Warren measures its resident set size")
CONF_IGNORED("cluster_partition_handling", CONF_ENUM, 0, 0,
             conf_partition_modes, "Warren does not form an Erlang cluster")
CONF_IGNORED("queue_master_locator", CONF_ENUM, 0, 0, conf_locators,
             "a single node holds every queue")
CONF_IGNORED("background_gc_enabled", CONF_BOOL, 0, 0, NULL,
             "Erlang garbage collection; Warren has none")
