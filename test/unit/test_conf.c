/*
 * Unit tests for conf/: defaults, every value type with its range and
 * errors, RabbitMQ's list and precedence rules, the line syntax (comments,
 * blanks, CRLF, BOM, `#` in values), error messages with file:line, hostile
 * input (long lines, non-UTF-8, NUL), --print-config round trips, and the
 * shipped conf/warren.conf.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "test/harness/t.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

static char err[512];

/* Parses text (NUL-terminated) named "t.conf" over c. */
static int
parse(struct wr_config *c, const char *text)
{
    err[0] = '\0';
    return conf_parse(c, text, strlen(text), "t.conf", err, sizeof(err));
}

/* Parses text over fresh defaults into *c and expects success. */
static void
parse_ok(struct wr_config *c, const char *text)
{
    conf_defaults(c);
    if (parse(c, text) != WR_OK)
        t_fail(__FILE__, __LINE__, "parse of [%s] failed: %s", text, err);
}

/* Parses text over defaults and expects exactly the error want. */
#define EXPECT_ERR(text, want)                \
    do {                                      \
        struct wr_config c_;                  \
        conf_defaults(&c_);                   \
        T_EQ_INT(parse(&c_, (text)), WR_ERR); \
        T_EQ_STR(err, (want));                \
    } while (0)

/* Parses text over defaults and expects an error containing part. */
#define EXPECT_ERR_HAS(text, part)                                       \
    do {                                                                 \
        struct wr_config c_;                                             \
        conf_defaults(&c_);                                              \
        T_EQ_INT(parse(&c_, (text)), WR_ERR);                            \
        if (strstr(err, (part)) == NULL)                                 \
            t_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, \
                   (part));                                              \
    } while (0)

static void
dump(const struct wr_config *c, struct buf *b)
{
    buf_init(b);
    conf_dump(c, b);
    buf_put_u8(b, 0);
}

/* ---- defaults */

T_CASE(defaults_match_rabbitmq)
{
    struct wr_config c;

    conf_defaults(&c);
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_STR(c.listeners[0].host, "");
    T_EQ_INT(c.listeners[0].port, 5672);
    T_EQ_STR(c.listeners[0].name, "default");
    T_EQ_INT(c.heartbeat, 60);
    T_EQ_INT(c.frame_max, 131072);
    T_EQ_INT(c.channel_max, 2047);
    T_EQ_INT(c.max_message_size, 134217728);
    T_EQ_INT(c.connection_max, 0);
    T_EQ_INT(c.handshake_timeout_ms, 10000);
    T_EQ_INT(c.consumer_timeout_ms, 1800000);
    T_EQ_STR(c.default_user, "guest");
    T_EQ_STR(c.default_pass, "guest");
    T_EQ_STR(c.default_vhost, "/");
    T_EQ_STR(c.default_perm_configure, ".*");
    T_EQ_STR(c.default_perm_write, ".*");
    T_EQ_STR(c.default_perm_read, ".*");
    T_EQ_INT(c.ndefault_user_tags, 1);
    T_EQ_STR(c.default_user_tags[0], "administrator");
    T_EQ_INT(c.nloopback_users, 1);
    T_EQ_STR(c.loopback_users[0], "guest");
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.4);
    T_EQ_INT(c.vm_memory_high_watermark_absolute, 0);
    T_EQ_INT(c.total_memory_available_override, 0);
    T_EQ_INT(c.memory_monitor_interval_ms, 2500);
    T_EQ_INT(c.disk_free_limit_absolute, 50000000);
    T_ASSERT(c.disk_free_limit_relative == 0);
    T_EQ_INT(c.memory_budget, 0);
    T_EQ_INT(c.management_port, 15672);
    T_EQ_STR(c.management_ip, "0.0.0.0");
    T_EQ_INT(c.prometheus_port, 15692);
    T_EQ_STR(c.prometheus_ip, "0.0.0.0");
    T_ASSERT(!c.prometheus_optional);
    T_EQ_STR(c.data_dir, "data");
    T_EQ_STR(c.load_definitions, "");
    T_EQ_INT(c.fsync, CONF_FSYNC_ALWAYS);
    T_EQ_INT(c.fsync_interval_ms, 200);
    T_EQ_INT(c.segment_size, 64 * MiB);
    T_EQ_INT(c.log_default_level, LOG_INFO);
    T_EQ_INT(c.log_console_level, 0);
    T_ASSERT(c.log_console);
    T_EQ_STR(c.log_file, "");
    T_EQ_INT(c.log_file_level, 0);
    T_EQ_INT(c.log_connection_level, 0);
    T_EQ_INT(c.log_console_format, CONF_LOG_PLAIN);
    T_EQ_INT(c.log_file_format, CONF_LOG_PLAIN);
    T_EQ_INT(c.log_rotation_size, 0);
    T_EQ_INT(c.log_rotation_count, 5);
    T_ASSERT(strncmp(c.cluster_name, "warren@", 7) == 0);
    T_ASSERT(strlen(c.cluster_name) > 7);
}

T_CASE(empty_text_changes_nothing)
{
    struct wr_config a, b;
    struct buf da, db;

    conf_defaults(&a);
    conf_defaults(&b);
    T_EQ_INT(conf_parse(&b, NULL, 0, "t.conf", err, sizeof(err)), WR_OK);
    T_EQ_INT(parse(&b, ""), WR_OK);
    T_EQ_INT(parse(&b, "\n\n   \n\t\n# only comments\n"), WR_OK);
    dump(&a, &da);
    dump(&b, &db);
    T_EQ_STR((char *)da.data, (char *)db.data);
    buf_fini(&da);
    buf_fini(&db);
}

/* ---- integers */

T_CASE(uint_in_range_is_stored)
{
    struct wr_config c;

    parse_ok(&c, "heartbeat = 30\nchannel_max = 65535\n"
                 "max_message_size = 536870912\nfsync_interval = 1\n"
                 "management.tcp.port = 0\nprometheus.tcp.port = 0\n");
    T_EQ_INT(c.heartbeat, 30);
    T_EQ_INT(c.channel_max, 65535);
    T_EQ_INT(c.max_message_size, 536870912);
    T_EQ_INT(c.fsync_interval_ms, 1);
    T_EQ_INT(c.management_port, 0);
    T_EQ_INT(c.prometheus_port, 0);
    parse_ok(&c, "heartbeat = 0\nchannel_max = 0\nheartbeat=007");
    T_EQ_INT(c.heartbeat, 7);
    T_EQ_INT(c.channel_max, 0);
}

T_CASE(uint_bad_values_name_key_and_range)
{
    EXPECT_ERR("heartbeat = sixty",
               "t.conf:1: heartbeat: \"sixty\" is not an integer "
               "(allowed: 0..65535 seconds)");
    EXPECT_ERR("\n\nheartbeat = 65536\n",
               "t.conf:3: heartbeat: \"65536\" is out of range "
               "(allowed: 0..65535 seconds)");
    EXPECT_ERR("heartbeat = -1", "t.conf:1: heartbeat: \"-1\" is negative "
                                 "(allowed: 0..65535 seconds)");
    EXPECT_ERR_HAS("heartbeat = +5", "\"+5\" is not an integer");
    EXPECT_ERR_HAS("heartbeat = 0x10", "\"0x10\" is not an integer");
    EXPECT_ERR_HAS("heartbeat = 1e3", "\"1e3\" is not an integer");
    EXPECT_ERR_HAS("heartbeat = 6 0", "\"6 0\" is not an integer");
    EXPECT_ERR_HAS("heartbeat = 60s", "\"60s\" is not an integer");
    EXPECT_ERR_HAS("heartbeat = 1.5", "\"1.5\" is not an integer");
    EXPECT_ERR("max_message_size = 536870913",
               "t.conf:1: max_message_size: \"536870913\" is out of range "
               "(allowed: 1..536870912 bytes)");
    EXPECT_ERR_HAS("max_message_size = 0", "out of range");
    EXPECT_ERR_HAS("channel_max = 65536", "out of range");
    EXPECT_ERR_HAS("management.tcp.port = 65536", "out of range");
    EXPECT_ERR_HAS("fsync_interval = 0", "(allowed: 1..60000 ms)");
}

T_CASE(uint_overflow_is_out_of_range)
{
    EXPECT_ERR_HAS("heartbeat = 18446744073709551616",
                   "\"18446744073709551616\" is out of range");
    EXPECT_ERR_HAS("heartbeat = 99999999999999999999999999999999",
                   "is out of range (allowed: 0..65535 seconds)");
    /* fits in uint64 but not in the uint32 field's range */
    EXPECT_ERR_HAS("connection_max = 4294967296", "out of range");
    EXPECT_ERR_HAS("handshake_timeout = 18446744073709551615", "out of range");
}

T_CASE(infinity_keyword_where_rabbitmq_allows_it)
{
    struct wr_config c;

    parse_ok(&c, "connection_max = 100\nhandshake_timeout = 5000\n"
                 "consumer_timeout = 60000");
    T_EQ_INT(c.connection_max, 100);
    T_EQ_INT(c.handshake_timeout_ms, 5000);
    T_EQ_INT(c.consumer_timeout_ms, 60000);
    T_EQ_INT(parse(&c, "connection_max = infinity\n"
                       "handshake_timeout = infinity\n"
                       "consumer_timeout = infinity"),
             WR_OK);
    T_EQ_INT(c.connection_max, 0);
    T_EQ_INT(c.handshake_timeout_ms, 0);
    T_EQ_INT(c.consumer_timeout_ms, 0);
    EXPECT_ERR("connection_max = 0",
               "t.conf:1: connection_max: \"0\" is out of range (allowed: "
               "infinity or 1..4294967295 connections)");
    EXPECT_ERR_HAS("heartbeat = infinity", "is not an integer");
    EXPECT_ERR_HAS("connection_max = Infinity", "is not an integer");
}

/* ---- sizes */

T_CASE(size_units_follow_rabbitmq)
{
    static const struct {
        const char *text;
        uint64_t want;
    } cases[] = {
        {"0", 0},
        {"50000000", 50000000},
        {"50MB", 50000000},
        {"50mb", 50000000},
        {"50Mb", 50000000},
        {"2GB", 2000000000},
        {"2gb", 2000000000},
        {"1kB", 1000},
        {"1KB", 1000},
        {"1k", 1000},
        {"1M", 1000000},
        {"1G", 1000000000},
        {"1T", 1000000000000},
        {"1TB", 1000000000000},
        {"1P", 1000000000000000},
        {"1KiB", 1024},
        {"1kib", 1024},
        {"1Ki", 1024},
        {"512MiB", 512 * MiB},
        {"512MIB", 512 * MiB},
        {"1GiB", GiB},
        {"1Gi", GiB},
        {"3TiB", 3 * 1024 * GiB},
        {"8PiB", (uint64_t)1 << 53},
    };
    struct wr_config c;
    char text[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "disk_free_limit.absolute = %s",
                 cases[i].text);
        parse_ok(&c, text);
        if (c.disk_free_limit_absolute != cases[i].want)
            t_fail(__FILE__, __LINE__, "%s: got %llu", cases[i].text,
                   (unsigned long long)c.disk_free_limit_absolute);
    }
    parse_ok(&c, "queue_memory_budget = 256MiB\nstore.segment_size = 1MiB\n"
                 "total_memory_available_override_value = 4GB");
    T_EQ_INT(c.memory_budget, 256 * MiB);
    T_EQ_INT(c.segment_size, MiB);
    T_EQ_INT(c.total_memory_available_override, 4000000000);
}

T_CASE(size_bad_values)
{
    EXPECT_ERR("disk_free_limit.absolute = 1.5GB",
               "t.conf:1: disk_free_limit.absolute: \"1.5GB\" has an unknown "
               "unit (allowed: a size of 0..8PiB bytes (units kB MB GB TB: "
               "powers of 1000; KiB MiB GiB TiB: powers of 1024))");
    EXPECT_ERR_HAS("disk_free_limit.absolute = GB", "\"GB\" is not a size");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 10 GB",
                   "\"10 GB\" has an unknown unit");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 10XB", "unknown unit");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 10GBB", "unknown unit");
    EXPECT_ERR_HAS("disk_free_limit.absolute = -1GB", "is not a size");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 8PiB1", "unknown unit");
    /* overflow in the digits, in the multiplication, and past 2^53 */
    EXPECT_ERR_HAS("disk_free_limit.absolute = 99999999999999999999",
                   "is out of range");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 20000PB", "is out of range");
    EXPECT_ERR_HAS("disk_free_limit.absolute = 9007199254740993",
                   "is out of range");
    EXPECT_ERR_HAS("store.segment_size = 1048575",
                   "allowed: a size of 1MiB..1GiB bytes");
    EXPECT_ERR_HAS("store.segment_size = 2GiB", "out of range");
    EXPECT_ERR_HAS("vm_memory_high_watermark.absolute = 0", "out of range");
}

T_CASE(frame_max_uses_cuttlefish_bytesize)
{
    struct wr_config c;

    parse_ok(&c, "frame_max = 128KB");
    T_EQ_INT(c.frame_max, 131072);
    parse_ok(&c, "frame_max = 4kb");
    T_EQ_INT(c.frame_max, 4096);
    parse_ok(&c, "frame_max = 1MB");
    T_EQ_INT(c.frame_max, MiB);
    parse_ok(&c, "frame_max = 1GB");
    T_EQ_INT(c.frame_max, GiB);
    parse_ok(&c, "frame_max = 4096");
    T_EQ_INT(c.frame_max, 4096);
    parse_ok(&c, "frame_max = 4294967295");
    T_EQ_INT(c.frame_max, 4294967295u);
    EXPECT_ERR("frame_max = 4095",
               "t.conf:1: frame_max: \"4095\" is out of range (allowed: "
               "4096..4294967295 bytes; units KB MB GB (powers of 1024))");
    EXPECT_ERR_HAS("frame_max = 4GB", "out of range");
    EXPECT_ERR_HAS("frame_max = 1KiB", "unknown unit");
}

/* ---- decimals */

T_CASE(double_values)
{
    struct wr_config c;

    parse_ok(&c, "vm_memory_high_watermark.relative = 0.6");
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.6);
    parse_ok(&c, "vm_memory_high_watermark.relative = 1");
    T_ASSERT(c.vm_memory_high_watermark_relative == 1.0);
    parse_ok(&c, "vm_memory_high_watermark.relative = 0");
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.0);
    parse_ok(&c, "vm_memory_high_watermark.relative = 0.123456789");
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.123456789);
    parse_ok(&c, "disk_free_limit.relative = 2.0");
    T_ASSERT(c.disk_free_limit_relative == 2.0);
    EXPECT_ERR("vm_memory_high_watermark.relative = 1.5",
               "t.conf:1: vm_memory_high_watermark.relative: \"1.5\" is out "
               "of range (allowed: 0..1 of RAM)");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = .5",
                   "\".5\" is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = 1.",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = 0,5",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = -0.1",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = 1e-1",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = nan",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = inf",
                   "is not a decimal number");
    EXPECT_ERR_HAS("vm_memory_high_watermark.relative = 0.1234567891",
                   "too many digits");
    EXPECT_ERR_HAS("disk_free_limit.relative = 1234567.0", "too many digits");
    EXPECT_ERR_HAS("disk_free_limit.relative = 100.5", "out of range");
}

/* ---- booleans and enums */

T_CASE(bool_values)
{
    struct wr_config c;

    parse_ok(&c, "log.console = false");
    T_ASSERT(!c.log_console);
    T_EQ_INT(parse(&c, "log.console = true"), WR_OK);
    T_ASSERT(c.log_console);
    EXPECT_ERR("log.console = yes", "t.conf:1: log.console: \"yes\" is not a "
                                    "boolean (allowed: true or false)");
    EXPECT_ERR_HAS("log.console = True", "is not a boolean");
    EXPECT_ERR_HAS("log.console = 1", "is not a boolean");
}

T_CASE(enum_values)
{
    static const struct {
        const char *name;
        int want;
    } levels[] = {
        {"debug", LOG_DEBUG},  {"info", LOG_INFO},     {"notice", LOG_INFO},
        {"warning", LOG_WARN}, {"error", LOG_ERR},     {"critical", LOG_ERR},
        {"alert", LOG_ERR},    {"emergency", LOG_ERR}, {"none", CONF_LOG_NONE},
    };
    struct wr_config c;
    char text[64];

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        snprintf(text, sizeof(text), "log.console.level = %s", levels[i].name);
        parse_ok(&c, text);
        T_EQ_INT(conf_log_level(c.log_console_level, 99), levels[i].want);
        snprintf(text, sizeof(text), "log.default.level = %s", levels[i].name);
        parse_ok(&c, text);
        T_EQ_INT(c.log_default_level, levels[i].want);
    }
    parse_ok(&c, "fsync = interval");
    T_EQ_INT(c.fsync, CONF_FSYNC_INTERVAL);
    parse_ok(&c, "fsync = never");
    T_EQ_INT(c.fsync, CONF_FSYNC_NEVER);
    parse_ok(&c, "fsync = never\nfsync = always");
    T_EQ_INT(c.fsync, CONF_FSYNC_ALWAYS);
    EXPECT_ERR("fsync = sometimes",
               "t.conf:1: fsync: \"sometimes\" is not a valid value "
               "(allowed: always, interval, never)");
    EXPECT_ERR_HAS("log.console.level = warn", "\"warn\" is not a valid");
    EXPECT_ERR_HAS("log.console.level = INFO", "is not a valid value");
}

/* ---- logging: outputs, formats, rotation, categories (RabbitMQ's keys) */

T_CASE(log_keys)
{
    struct wr_config c;

    parse_ok(&c, "log.file = /var/log/warren/warren.log\n"
                 "log.file.level = debug\nlog.file.formatter = json\n"
                 "log.file.rotation.size = 10485760\n"
                 "log.file.rotation.count = 3\n"
                 "log.connection.level = warning\n"
                 "log.console.formatter = json\nlog.default.level = error\n");
    T_EQ_STR(c.log_file, "/var/log/warren/warren.log");
    T_EQ_INT(conf_log_level(c.log_file_level, -5), LOG_DEBUG);
    T_EQ_INT(c.log_file_format, CONF_LOG_JSON);
    T_EQ_INT(c.log_rotation_size, 10485760);
    T_EQ_INT(c.log_rotation_count, 3);
    T_EQ_INT(conf_log_level(c.log_connection_level, -5), LOG_WARN);
    T_EQ_INT(c.log_console_format, CONF_LOG_JSON);
    T_EQ_INT(c.log_default_level, LOG_ERR);
    /* Unset levels inherit log.default.level. */
    T_EQ_INT(conf_log_level(c.log_console_level, c.log_default_level), LOG_ERR);
    /* A file set without log.console silences the console, as RabbitMQ. */
    T_ASSERT(!c.log_console);
    parse_ok(&c, "log.file = w.log\nlog.console = true\n");
    T_ASSERT(c.log_console);
    parse_ok(&c, "log.file = false\n");
    T_EQ_STR(c.log_file, "");
    T_ASSERT(c.log_console);
    parse_ok(&c, "log.file.level = none\n");
    T_EQ_INT(conf_log_level(c.log_file_level, LOG_INFO), CONF_LOG_NONE);
    EXPECT_ERR("log.file.formatter = xml",
               "t.conf:1: log.file.formatter: \"xml\" is not a valid value "
               "(allowed: plaintext, json)");
    EXPECT_ERR_HAS("log.file.rotation.size = big",
                   "t.conf:1: log.file.rotation.size: \"big\" is not an "
                   "integer");
    EXPECT_ERR_HAS("log.file.rotation.count = 1001",
                   "log.file.rotation.count: \"1001\" is out of range");
    EXPECT_ERR_HAS("log.connection.level = loud",
                   "log.connection.level: \"loud\" is not a valid value");
    EXPECT_ERR_HAS("log.file =", "log.file: missing value");

    /* log.dir holds a relative log.file, not an absolute one. */
    parse_ok(&c, "log.dir = /var/log/warren\nlog.file = w.log\n");
    T_EQ_STR(c.log_file, "/var/log/warren/w.log");
    parse_ok(&c, "log.dir = /var/log/warren\nlog.file = /tmp/w.log\n");
    T_EQ_STR(c.log_file, "/tmp/w.log");

    /* RabbitMQ's date specs; the rest is refused, naming the key. */
    static const char *const good[] = {"$D0",   "$D23",   "$W0D23", "$W5D16",
                                       "$M1D0", "$M5D6",  "$ML",    "$MLD3",
                                       "$H00",  "$M31D23"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "log.file.rotation.date = %s", good[i]);
        parse_ok(&c, text);
        T_EQ_STR(c.log_rotation_date, good[i]);
    }
    EXPECT_ERR("log.file.rotation.date = daily",
               "t.conf: log.file.rotation.date: \"daily\" is not a date "
               "spec (allowed: $D<hour>, $W<weekday 0-6>D<hour>, "
               "$M<day 1-31 or L>D<hour>)");
    EXPECT_ERR_HAS("log.file.rotation.date = $D24", "is not a date spec");
    EXPECT_ERR_HAS("log.file.rotation.date = $W7", "is not a date spec");
    EXPECT_ERR_HAS("log.file.rotation.date = $M0D0", "is not a date spec");
    EXPECT_ERR_HAS("log.file.rotation.date = $", "is not a date spec");
    /* Accepted as RabbitMQ files have them, only as false. */
    parse_ok(&c, "log.file.rotation.compress = false\nlog.syslog = false\n"
                 "log.exchange = false\n");
    EXPECT_ERR("log.file.rotation.compress = true",
               "t.conf:1: log.file.rotation.compress: \"true\" is not a "
               "valid value (allowed: false)");
}

/* ---- strings and addresses */

T_CASE(string_values)
{
    struct wr_config c;
    char text[8192];

    parse_ok(&c, "default_user = alice\n"
                 "default_pass = a=b c\"d'\n"
                 "default_vhost =   my vhost   \n"
                 "cluster_name = caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac\n"
                 "load_definitions = /etc/warren/defs.json\n"
                 "default_permissions.configure = ^amq\\.gen.*\n"
                 "data_dir = /var/lib/warren\n");
    T_EQ_STR(c.default_user, "alice");
    T_EQ_STR(c.default_pass, "a=b c\"d'"); /* no unquoting, = kept */
    T_EQ_STR(c.default_vhost, "my vhost");
    T_EQ_STR(c.cluster_name, "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac");
    T_EQ_STR(c.load_definitions, "/etc/warren/defs.json");
    T_EQ_STR(c.default_perm_configure, "^amq\\.gen.*");
    T_EQ_STR(c.data_dir, "/var/lib/warren");

    /* the longest that fits, and one more */
    memset(text, 'u', sizeof(text));
    memcpy(text, "default_user = ", 15);
    text[15 + 255] = '\0';
    parse_ok(&c, text);
    T_EQ_INT(strlen(c.default_user), 255);
    text[15 + 255] = 'u';
    text[15 + 256] = '\0';
    EXPECT_ERR_HAS(text, "is too long (256 bytes) (allowed: text of 1..255 "
                         "bytes)");
    memset(text, 'd', sizeof(text));
    memcpy(text, "data_dir = ", 11);
    text[11 + 4095] = '\0';
    parse_ok(&c, text);
    T_EQ_INT(strlen(c.data_dir), 4095);
    text[11 + 4095] = 'd';
    text[11 + 4096] = '\0';
    EXPECT_ERR_HAS(text, "is too long (4096 bytes)");
}

T_CASE(ip_values)
{
    struct wr_config c;

    parse_ok(&c, "management.tcp.ip = ::1");
    T_EQ_STR(c.management_ip, "::1");
    parse_ok(&c, "management.tcp.ip = 127.0.0.1");
    T_EQ_STR(c.management_ip, "127.0.0.1");
    parse_ok(&c, "prometheus.tcp.ip = ::1\nprometheus.tcp.optional = true");
    T_EQ_STR(c.prometheus_ip, "::1");
    T_ASSERT(c.prometheus_optional);
    EXPECT_ERR_HAS("prometheus.tcp.ip = localhost", "is not an IPv4");
    EXPECT_ERR_HAS("prometheus.tcp.port = 65536", "out of range");
    parse_ok(&c, "management.tcp.ip = ::");
    T_EQ_STR(c.management_ip, "::");
    EXPECT_ERR("management.tcp.ip = localhost",
               "t.conf:1: management.tcp.ip: \"localhost\" is not an IPv4 or "
               "IPv6 address (allowed: an IPv4 or IPv6 address)");
    EXPECT_ERR_HAS("management.tcp.ip = 256.1.1.1", "is not an IPv4");
    EXPECT_ERR_HAS("management.tcp.ip = [::1]", "is not an IPv4");
    EXPECT_ERR_HAS("management.tcp.ip = 127.0.0.1:80", "is not an IPv4");
}

/* ---- listeners */

T_CASE(listener_values)
{
    struct wr_config c;

    parse_ok(&c, "listeners.tcp.default = 5673");
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_STR(c.listeners[0].name, "default");
    T_EQ_STR(c.listeners[0].host, "");
    T_EQ_INT(c.listeners[0].port, 5673);

    /* RabbitMQ's example: one per address; the default one is replaced */
    parse_ok(&c, "listeners.tcp.local = 127.0.0.1:5672\n"
                 "listeners.tcp.local_v6 = ::1:5672\n"
                 "listeners.tcp.other = [fe80::1]:5674\n"
                 "listeners.tcp.any6 = :::5675\n"
                 "listeners.tcp.zero = 0\n");
    T_EQ_INT(c.nlisteners, 5);
    T_EQ_STR(c.listeners[0].name, "local");
    T_EQ_STR(c.listeners[0].host, "127.0.0.1");
    T_EQ_INT(c.listeners[0].port, 5672);
    T_EQ_STR(c.listeners[1].name, "local_v6");
    T_EQ_STR(c.listeners[1].host, "::1");
    T_EQ_INT(c.listeners[1].port, 5672);
    T_EQ_STR(c.listeners[2].host, "fe80::1");
    T_EQ_INT(c.listeners[2].port, 5674);
    T_EQ_STR(c.listeners[3].host, "::");
    T_EQ_INT(c.listeners[3].port, 5675);
    T_EQ_STR(c.listeners[4].host, "");
    T_EQ_INT(c.listeners[4].port, 0);

    /* the same name again replaces that listener in place */
    parse_ok(&c, "listeners.tcp.a = 1\nlisteners.tcp.b = 2\n"
                 "listeners.tcp.a = 10.0.0.1:3\n");
    T_EQ_INT(c.nlisteners, 2);
    T_EQ_STR(c.listeners[0].name, "a");
    T_EQ_STR(c.listeners[0].host, "10.0.0.1");
    T_EQ_INT(c.listeners[0].port, 3);
    T_EQ_INT(c.listeners[1].port, 2);

    /* an escaped dot belongs to the name */
    parse_ok(&c, "listeners.tcp.eth0\\.v4 = 1");
    T_EQ_STR(c.listeners[0].name, "eth0.v4");
}

T_CASE(listener_bad_values)
{
    EXPECT_ERR("listeners.tcp.default = 127.0.0.1",
               "t.conf:1: listeners.tcp.default: \"127.0.0.1\" is not PORT "
               "or IP:PORT (allowed: PORT, IP:PORT or [IPv6]:PORT, port "
               "0..65535)");
    EXPECT_ERR_HAS("listeners.tcp.default = 127.0.0.1:70000",
                   "port \"70000\" is out of range 0..65535");
    EXPECT_ERR_HAS("listeners.tcp.default = 70000",
                   "port \"70000\" is out of range");
    EXPECT_ERR_HAS("listeners.tcp.default = 1.2.3:80",
                   "\"1.2.3\" is not an IPv4 or IPv6 address");
    EXPECT_ERR_HAS("listeners.tcp.default = localhost:5672",
                   "\"localhost\" is not an IPv4");
    EXPECT_ERR_HAS("listeners.tcp.default = ::1", "is not an IPv4");
    EXPECT_ERR_HAS("listeners.tcp.default = 1.2.3.4:",
                   "has no port number after the colon");
    EXPECT_ERR_HAS("listeners.tcp.default = [::1]", "is not [IPv6]:PORT");
    EXPECT_ERR_HAS("listeners.tcp.default = []:1", "has no address");
    EXPECT_ERR_HAS("listeners.tcp.default = 1111111111111111111111111111111"
                   "111111111111111111111111111111111:1",
                   "is not an IPv4 or IPv6 address");
    EXPECT_ERR_HAS("listeners.tcp.a.b = 1",
                   "unknown key \"listeners.tcp.a.b\"");
    EXPECT_ERR_HAS("listeners.tcp.x23456789012345678901234567890123456789012"
                   "3456789012345678901234 = 1",
                   "listener name longer than 63 bytes");
    EXPECT_ERR("listeners.tcp = 5672",
               "t.conf:1: listeners.tcp: \"5672\" is not allowed; add items "
               "with listeners.tcp.<name> (allowed: none)");
}

T_CASE(listener_list_is_bounded)
{
    char text[1024];
    size_t o = 0;
    struct wr_config c;

    for (int i = 0; i < CONF_MAX_LISTENERS; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              "listeners.tcp.l%d = %d\n", i, 5000 + i);
    parse_ok(&c, text);
    T_EQ_INT(c.nlisteners, CONF_MAX_LISTENERS);
    T_EQ_INT(c.listeners[7].port, 5007);
    snprintf(text + o, sizeof(text) - o, "listeners.tcp.l8 = 6000\n");
    EXPECT_ERR_HAS(text, "t.conf:9: listeners.tcp.l8: more than 8 listeners");
}

T_CASE(listeners_none_wins_as_in_rabbitmq)
{
    struct wr_config c;

    parse_ok(&c, "listeners.tcp = none");
    T_EQ_INT(c.nlisteners, 0);
    parse_ok(&c, "listeners.tcp.a = 1\nlisteners.tcp = none\n");
    T_EQ_INT(c.nlisteners, 0);
    parse_ok(&c, "listeners.tcp = none\nlisteners.tcp.a = 1\n");
    T_EQ_INT(c.nlisteners, 0);
    /* a later file may add listeners again */
    T_EQ_INT(parse(&c, "listeners.tcp.b = 2"), WR_OK);
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_INT(c.listeners[0].port, 2);
}

T_CASE(parse_listener_override)
{
    struct wr_listener l;
    char e[128];

    memset(&l, 'x', sizeof(l));
    T_EQ_INT(conf_parse_listener("5673", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "");
    T_EQ_INT(l.port, 5673);
    T_EQ_STR(l.name, "");
    T_EQ_INT(conf_parse_listener(":5674", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "");
    T_EQ_INT(l.port, 5674);
    T_EQ_INT(conf_parse_listener("0.0.0.0:1", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "0.0.0.0");
    T_EQ_INT(conf_parse_listener("[::1]:65535", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "::1");
    T_EQ_INT(l.port, 65535);
    T_EQ_INT(conf_parse_listener("::1:5672", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "::1");
    T_EQ_INT(conf_parse_listener("[::]:0", &l, e, sizeof(e)), WR_OK);
    T_EQ_STR(l.host, "::");
    T_EQ_INT(l.port, 0);

    /* errors leave out unchanged and say why */
    T_EQ_INT(conf_parse_listener("localhost:5672", &l, e, sizeof(e)), WR_ERR);
    T_EQ_STR(e, "\"localhost:5672\": \"localhost\" is not an IPv4 or IPv6 "
                "address");
    T_EQ_STR(l.host, "::");
    T_EQ_INT(conf_parse_listener("", &l, e, sizeof(e)), WR_ERR);
    T_EQ_INT(conf_parse_listener("abc", &l, e, sizeof(e)), WR_ERR);
    T_EQ_INT(conf_parse_listener("1.2.3.4:-1", &l, e, sizeof(e)), WR_ERR);
    T_EQ_INT(conf_parse_listener("1.2.3.4:5 ", &l, e, sizeof(e)), WR_ERR);
    T_EQ_INT(conf_parse_listener("[::1]5672", &l, e, sizeof(e)), WR_ERR);
    T_EQ_INT(conf_parse_listener("99999", &l, NULL, 0), WR_ERR);
    T_EQ_INT(l.port, 0);
}

/* ---- name sets: loopback_users, default_user_tags */

T_CASE(loopback_users_follow_rabbitmq)
{
    struct wr_config c;

    parse_ok(&c, "loopback_users.guest = false");
    T_EQ_INT(c.nloopback_users, 0);
    /* the file's list replaces the default: guest is no longer in it */
    parse_ok(&c, "loopback_users.alice = true");
    T_EQ_INT(c.nloopback_users, 1);
    T_EQ_STR(c.loopback_users[0], "alice");
    parse_ok(&c, "loopback_users.alice = true\nloopback_users.bob = true\n"
                 "loopback_users.alice = true\n");
    T_EQ_INT(c.nloopback_users, 2);
    T_EQ_STR(c.loopback_users[1], "bob");
    parse_ok(&c, "loopback_users.alice = true\nloopback_users.bob = true\n"
                 "loopback_users.alice = false\n");
    T_EQ_INT(c.nloopback_users, 1);
    T_EQ_STR(c.loopback_users[0], "bob");
    parse_ok(&c, "loopback_users.john\\.doe = true");
    T_EQ_STR(c.loopback_users[0], "john.doe");
    parse_ok(&c, "loopback_users = none");
    T_EQ_INT(c.nloopback_users, 0);
    parse_ok(&c, "loopback_users = none\nloopback_users.bob = true");
    T_EQ_INT(c.nloopback_users, 0);
    /* a text without loopback keys keeps the list */
    parse_ok(&c, "loopback_users.carol = true");
    T_EQ_INT(parse(&c, "heartbeat = 5"), WR_OK);
    T_EQ_INT(c.nloopback_users, 1);
    T_EQ_STR(c.loopback_users[0], "carol");
    EXPECT_ERR("loopback_users.guest = yes",
               "t.conf:1: loopback_users.guest: \"yes\" is not a boolean "
               "(allowed: true or false)");
    EXPECT_ERR_HAS("loopback_users = guest", "\"guest\" is not allowed");
}

T_CASE(loopback_users_are_bounded)
{
    char text[2048];
    size_t o = 0;
    struct wr_config c;

    for (int i = 0; i < CONF_MAX_LOOPBACK_USERS; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              "loopback_users.u%d = true\n", i);
    parse_ok(&c, text);
    T_EQ_INT(c.nloopback_users, CONF_MAX_LOOPBACK_USERS);
    /* false for an absent name is fine even when full */
    snprintf(text + o, sizeof(text) - o, "loopback_users.zz = false\n");
    parse_ok(&c, text);
    snprintf(text + o, sizeof(text) - o, "loopback_users.zz = true\n");
    EXPECT_ERR_HAS(text, "t.conf:17: loopback_users.zz: more than 16 names");
}

T_CASE(default_user_tags)
{
    struct wr_config c;

    parse_ok(&c, "default_user_tags.monitoring = true");
    T_EQ_INT(c.ndefault_user_tags, 1);
    T_EQ_STR(c.default_user_tags[0], "monitoring");
    parse_ok(&c, "default_user_tags.administrator = true\n"
                 "default_user_tags.management = true\n");
    T_EQ_INT(c.ndefault_user_tags, 2);
    T_EQ_STR(c.default_user_tags[1], "management");
    parse_ok(&c, "default_user_tags.administrator = false");
    T_EQ_INT(c.ndefault_user_tags, 0);
    EXPECT_ERR_HAS("default_user_tags.x23456789012345678901234567890123456789"
                   "01234567890123456789012345 = true",
                   "name longer than 63 bytes");
}

T_CASE(default_permissions_and_vhost)
{
    struct wr_config c;

    parse_ok(&c, "default_vhost = prod\ndefault_permissions.configure = ^$\n"
                 "default_permissions.write = ^app\\.\n"
                 "default_permissions.read = .*\n");
    T_EQ_STR(c.default_vhost, "prod");
    T_EQ_STR(c.default_perm_configure, "^$");
    T_EQ_STR(c.default_perm_write, "^app\\.");
    T_EQ_STR(c.default_perm_read, ".*");
}

/* ---- relative/absolute precedence */

T_CASE(watermark_relative_wins_over_absolute)
{
    struct wr_config c;

    parse_ok(&c, "vm_memory_high_watermark.absolute = 2GB");
    T_EQ_INT(c.vm_memory_high_watermark_absolute, 2000000000);
    T_ASSERT(c.vm_memory_high_watermark_relative == 0);
    /* both in one file: relative wins whatever the order (rabbit.schema) */
    parse_ok(&c, "vm_memory_high_watermark.relative = 0.5\n"
                 "vm_memory_high_watermark.absolute = 1GiB\n");
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.5);
    T_EQ_INT(c.vm_memory_high_watermark_absolute, 0);
    /* across files the later file wins */
    parse_ok(&c, "vm_memory_high_watermark.absolute = 1GiB");
    T_EQ_INT(parse(&c, "vm_memory_high_watermark.relative = 0.3"), WR_OK);
    T_ASSERT(c.vm_memory_high_watermark_relative == 0.3);
    T_EQ_INT(c.vm_memory_high_watermark_absolute, 0);
    T_EQ_INT(parse(&c, "vm_memory_high_watermark.absolute = 3GB"), WR_OK);
    T_ASSERT(c.vm_memory_high_watermark_relative == 0);
    T_EQ_INT(c.vm_memory_high_watermark_absolute, 3000000000);

    parse_ok(&c, "disk_free_limit.relative = 1.5");
    T_ASSERT(c.disk_free_limit_relative == 1.5);
    T_EQ_INT(c.disk_free_limit_absolute, 0);
    parse_ok(&c, "disk_free_limit.absolute = 1GB\n"
                 "disk_free_limit.relative = 2\n");
    T_ASSERT(c.disk_free_limit_relative == 2);
    T_EQ_INT(c.disk_free_limit_absolute, 0);
    T_EQ_INT(parse(&c, "disk_free_limit.absolute = 0"), WR_OK);
    T_ASSERT(c.disk_free_limit_relative == 0);
    T_EQ_INT(c.disk_free_limit_absolute, 0);
}

/* ---- line syntax */

T_CASE(comments_whitespace_crlf_bom)
{
    struct wr_config c;

    parse_ok(&c, "\xEF\xBB\xBF# a BOM, then a comment\r\n"
                 "\r\n"
                 "   \t \r\n"
                 "\theartbeat\t=\t30\t# thirty seconds\r\n"
                 "  # an indented comment = not a key\r\n"
                 "channel_max=10\r\n"
                 "frame_max    =    8192    \r\n"
                 "default_user = bob# no space before the comment\r\n"
                 "default_vhost = v\r\n"
                 "cluster_name = last line without a newline");
    T_EQ_INT(c.heartbeat, 30);
    T_EQ_INT(c.channel_max, 10);
    T_EQ_INT(c.frame_max, 8192);
    T_EQ_STR(c.default_user, "bob");
    T_EQ_STR(c.default_vhost, "v");
    T_EQ_STR(c.cluster_name, "last line without a newline");
    /* line numbers count CRLF lines */
    EXPECT_ERR_HAS("a_comment = 1 # x\r\n", "t.conf:1: unknown key");
    EXPECT_ERR_HAS("# x\r\n\r\nheartbeat = x\r\n", "t.conf:3: heartbeat:");
    /* a CR that does not end a line is a control character */
    EXPECT_ERR_HAS("default_user = a\rb\n", "value holds a control character");
}

T_CASE(hash_always_starts_a_comment)
{
    struct wr_config c;

    parse_ok(&c, "default_pass = se#cret");
    T_EQ_STR(c.default_pass, "se");
    EXPECT_ERR("default_pass = #secret",
               "t.conf:1: default_pass: missing value (allowed: text of "
               "1..255 bytes)");
}

T_CASE(duplicate_keys_last_wins)
{
    struct wr_config c;

    parse_ok(&c, "heartbeat = 10\nheartbeat = 20\ndefault_user = a\n"
                 "default_user = b\n");
    T_EQ_INT(c.heartbeat, 20);
    T_EQ_STR(c.default_user, "b");
    /* an alias is the same setting */
    parse_ok(&c, "management.tcp.port = 1\nmanagement.listener.port = 2\n"
                 "management.listener.ip = ::1\n");
    T_EQ_INT(c.management_port, 2);
    T_EQ_STR(c.management_ip, "::1");
    parse_ok(&c, "load_definitions = /a.json\n"
                 "definitions.local.path = /b.json\n");
    T_EQ_STR(c.load_definitions, "/b.json");
    parse_ok(&c, "management.load_definitions = /c.json\n");
    T_EQ_STR(c.load_definitions, "/c.json");
}

T_CASE(missing_equals_or_key)
{
    EXPECT_ERR("heartbeat 60", "t.conf:1: expected \"=\" after \"heartbeat\"");
    EXPECT_ERR("\nheartbeat\n", "t.conf:2: expected \"=\" after \"heartbeat\"");
    EXPECT_ERR("heartbeat # = 60",
               "t.conf:1: expected \"=\" after \"heartbeat\"");
    EXPECT_ERR("= 60", "t.conf:1: missing key before \"=\"");
    EXPECT_ERR("heart%beat = 1",
               "t.conf:1: invalid character \"%\" in key \"heart\"");
    EXPECT_ERR("heart:beat = 1",
               "t.conf:1: invalid character \":\" in key \"heart\"");
    EXPECT_ERR("\"heartbeat\" = 1",
               "t.conf:1: invalid character \"\\\"\" in key \"\"");
    EXPECT_ERR("a..b = 1", "t.conf:1: invalid key \"a..b\" (a key is words "
                           "of A-Z a-z 0-9 _ - joined by dots)");
    EXPECT_ERR_HAS(".heartbeat = 1", "invalid key");
    EXPECT_ERR_HAS("heartbeat. = 1", "invalid key");
    EXPECT_ERR_HAS("heart\\beat = 1", "invalid key");
    EXPECT_ERR_HAS("heartbeat\\ = 1", "invalid key");
}

T_CASE(empty_value_is_an_error)
{
    EXPECT_ERR("heartbeat =", "t.conf:1: heartbeat: missing value (allowed: "
                              "0..65535 seconds)");
    EXPECT_ERR("heartbeat =    \t ", "t.conf:1: heartbeat: missing value "
                                     "(allowed: 0..65535 seconds)");
    EXPECT_ERR_HAS("default_user = ", "default_user: missing value");
    EXPECT_ERR_HAS("listeners.tcp.x =", "listeners.tcp.x: missing value");
    EXPECT_ERR_HAS("fsync=", "(allowed: always, interval, never)");
}

T_CASE(unknown_key_with_suggestion)
{
    EXPECT_ERR("heartbeat = 60\n\nhearbeat = 60\n",
               "t.conf:3: unknown key \"hearbeat\" (did you mean "
               "\"heartbeat\"?)");
    EXPECT_ERR("Heartbeat = 60",
               "t.conf:1: unknown key \"Heartbeat\" (did you mean "
               "\"heartbeat\"?)");
    EXPECT_ERR("listener.tcp.default = 5672",
               "t.conf:1: unknown key \"listener.tcp.default\" (did you mean "
               "\"listeners.tcp.default\"?)");
    EXPECT_ERR("loopback_user.guest = false",
               "t.conf:1: unknown key \"loopback_user.guest\" (did you mean "
               "\"loopback_users.guest\"?)");
    EXPECT_ERR("vm_memory_high_watermark.relativ = 0.4",
               "t.conf:1: unknown key \"vm_memory_high_watermark.relativ\" "
               "(did you mean \"vm_memory_high_watermark.relative\"?)");
    EXPECT_ERR("completely_unknown = 1",
               "t.conf:1: unknown key \"completely_unknown\"");
    EXPECT_ERR("listeners.ssl.defualt.x = 5671",
               "t.conf:1: unknown key \"listeners.ssl.defualt.x\"");
    EXPECT_ERR_HAS("log.journald = true", "unknown key");
    EXPECT_ERR_HAS("a = 1", "unknown key \"a\"");
}

T_CASE(ignored_rabbitmq_keys_are_checked)
{
    struct wr_config c;
    struct buf b;

    parse_ok(&c, "num_acceptors.tcp = 10\nreverse_dns_lookups = true\n"
                 "collect_statistics_interval = 5000\n"
                 "vm_memory_high_watermark_paging_ratio = 0.5\n"
                 "vm_memory_calculation_strategy = rss\n"
                 "cluster_partition_handling = autoheal\n"
                 "queue_master_locator = min-masters\n"
                 "background_gc_enabled = false\n"
                 "definitions.import_backend = local_filesystem\n");
    dump(&c, &b);
    T_ASSERT(strstr((char *)b.data, "num_acceptors") == NULL);
    buf_fini(&b);
    EXPECT_ERR_HAS("num_acceptors.tcp = ten", "is not an integer");
    EXPECT_ERR_HAS("num_acceptors.tcp = 0", "out of range");
    EXPECT_ERR_HAS("reverse_dns_lookups = maybe", "is not a boolean");
    EXPECT_ERR_HAS("vm_memory_high_watermark_paging_ratio = 2", "out of range");
    EXPECT_ERR_HAS("definitions.import_backend = https", "not a valid value");
}

/* ---- atomicity and layering */

T_CASE(error_leaves_config_unchanged)
{
    struct wr_config c;
    struct buf before, after;

    conf_defaults(&c);
    dump(&c, &before);
    T_EQ_INT(parse(&c, "heartbeat = 5\nlisteners.tcp.x = 1\n"
                       "loopback_users = none\nbogus = 1\n"),
             WR_ERR);
    T_EQ_STR(err, "t.conf:4: unknown key \"bogus\"");
    dump(&c, &after);
    T_EQ_STR((char *)before.data, (char *)after.data);
    T_EQ_INT(c.heartbeat, 60);
    T_EQ_INT(c.nlisteners, 1);
    buf_fini(&before);
    buf_fini(&after);
}

T_CASE(texts_layer_on_each_other)
{
    struct wr_config c;

    parse_ok(&c, "heartbeat = 5\nlisteners.tcp.a = 1\n");
    T_EQ_INT(parse(&c, "frame_max = 8192\n"), WR_OK);
    T_EQ_INT(c.heartbeat, 5);
    T_EQ_INT(c.frame_max, 8192);
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_STR(c.listeners[0].name, "a");
    /* a later file's listeners replace the earlier file's */
    T_EQ_INT(parse(&c, "listeners.tcp.b = 2\n"), WR_OK);
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_STR(c.listeners[0].name, "b");
}

T_CASE(error_buffer_is_bounded)
{
    struct wr_config c;
    char small[12];

    conf_defaults(&c);
    memset(small, 'x', sizeof(small));
    T_EQ_INT(
        conf_parse(&c, "heartbeat = x", 13, "file.conf", small, sizeof(small)),
        WR_ERR);
    T_EQ_STR(small, "file.conf:1");
    T_EQ_INT(conf_parse(&c, "heartbeat = x", 13, "f", NULL, 0), WR_ERR);
    T_EQ_INT(conf_parse(&c, "heartbeat = 1", 13, NULL, NULL, 0), WR_OK);
    T_EQ_INT(c.heartbeat, 1);
    T_EQ_INT(conf_parse(&c, "heartbeat = x", 13, NULL, err, sizeof(err)),
             WR_ERR);
    T_ASSERT(strncmp(err, "config:1: ", 10) == 0);
    /* len bounds the text: the bytes after it are never read */
    T_EQ_INT(conf_parse(&c, "heartbeat = 2junk", 13, "f", err, sizeof(err)),
             WR_OK);
    T_EQ_INT(c.heartbeat, 2);
}

/* ---- hostile input */

T_CASE(very_long_lines)
{
    size_t n = 1 << 20;
    char *text = malloc(n + 64);
    struct wr_config c;

    T_ASSERT(text != NULL);
    /* a 1 MiB value: refused, and the message stays short */
    memcpy(text, "default_user = ", 15);
    memset(text + 15, 'v', n);
    text[15 + n] = '\0';
    EXPECT_ERR_HAS(text, "is too long (1048576 bytes)");
    T_ASSERT(strlen(err) < 300);
    T_ASSERT(strstr(err, "vvv\"...") != NULL);
    /* a 1 MiB comment is fine */
    text[0] = '#';
    strcpy(text + 15 + n, "\nheartbeat = 9");
    parse_ok(&c, text);
    T_EQ_INT(c.heartbeat, 9);
    /* a 1 MiB key: refused without quoting all of it */
    memset(text, 'k', n);
    strcpy(text + n, " = 1");
    EXPECT_ERR_HAS(text, "t.conf:1: key longer than 255 bytes");
    T_ASSERT(strlen(err) < 100);
    free(text);
}

T_CASE(many_lines_count_right)
{
    size_t lines = 100000, o = 0;
    char *text = malloc(lines * 24 + 64);

    T_ASSERT(text != NULL);
    for (size_t i = 0; i < lines; i++)
        o += (size_t)sprintf(text + o, "heartbeat = %zu\n", i % 60000);
    strcpy(text + o, "heartbeat = oops\n");
    EXPECT_ERR_HAS(text, "t.conf:100001: heartbeat: \"oops\"");
    free(text);
}

T_CASE(non_utf8_and_control_bytes)
{
    static const char nul_value[] = "default_user = a\0b\n";
    static const char nul_key[] = "heart\0beat = 1\n";
    static const char nul_comment[] = "# a\0b\nheartbeat = 3\n";
    struct wr_config c;

    EXPECT_ERR("default_user = \xff\xfe",
               "t.conf:1: default_user: value is not valid UTF-8 (allowed: "
               "text of 1..255 bytes)");
    EXPECT_ERR_HAS("cluster_name = \xc0\xaf", "not valid UTF-8"); /* overlong */
    EXPECT_ERR_HAS("cluster_name = \xed\xa0\x80", "not valid UTF-8"); /* UTF-16
                                                                 surrogate */
    EXPECT_ERR_HAS("cluster_name = caf\xc3", "not valid UTF-8");
    EXPECT_ERR_HAS("default_user = a\x01z", "value holds a control character");
    EXPECT_ERR_HAS("default_user = a\x7fz", "value holds a control character");
    EXPECT_ERR_HAS("default_user = a\tz", "value holds a control character");
    EXPECT_ERR("h\xc3\xa9 = 1",
               "t.conf:1: invalid character \"\\xc3\" in key \"h\"");
    /* bytes in comments are not looked at */
    parse_ok(&c, "# \xff\xfe\x01 comment\nheartbeat = 4 # \xff\n");
    T_EQ_INT(c.heartbeat, 4);
    /* NUL bytes: the text has a length, not a terminator */
    conf_defaults(&c);
    T_EQ_INT(conf_parse(&c, nul_value, sizeof(nul_value) - 1, "t.conf", err,
                        sizeof(err)),
             WR_ERR);
    T_EQ_STR(err, "t.conf:1: default_user: value holds a control character "
                  "(allowed: text of 1..255 bytes)");
    T_EQ_INT(conf_parse(&c, nul_key, sizeof(nul_key) - 1, "t.conf", err,
                        sizeof(err)),
             WR_ERR);
    T_EQ_STR(err, "t.conf:1: invalid character \"\\x00\" in key \"heart\"");
    T_EQ_INT(conf_parse(&c, nul_comment, sizeof(nul_comment) - 1, "t.conf", err,
                        sizeof(err)),
             WR_OK);
    T_EQ_INT(c.heartbeat, 3);
    /* a long UTF-8 value is cut at a character boundary in messages */
    {
        char text[256] = "heartbeat = x"; /* odd: cut mid-character */
        for (int i = 0; i < 40; i++)
            strcat(text, "\xc3\xa9");
        EXPECT_ERR_HAS(text, "\xc3\xa9\"... is not an integer");
        T_ASSERT(bytes_is_utf8(bytes_str(err)));
    }
    /* a quoted value in a message escapes what is not printable */
    EXPECT_ERR("heartbeat = \"x\\y\"",
               "t.conf:1: heartbeat: \"\\\"x\\\\y\\\"\" is not an integer "
               "(allowed: 0..65535 seconds)");
}

/* ---- --print-config */

T_CASE(dump_parses_back_to_the_same_config)
{
    /* parenthesized: each element is one text of several literals */
    static const char *const texts[] = {
        "",
        ("listeners.tcp.local = 127.0.0.1:5672\n"
         "listeners.tcp.v6 = [::1]:5673\nlisteners.tcp.a\\.b = 0\n"
         "heartbeat = 0\nframe_max = 1MB\nchannel_max = 0\n"
         "max_message_size = 1\nconnection_max = 10\n"
         "handshake_timeout = infinity\nconsumer_timeout = 1\n"
         "default_user = u s\xc3\xa9r\ndefault_pass = p=w\n"
         "default_vhost = /v\ndefault_permissions.configure = ^x$\n"
         "default_permissions.write = a\\.b\ndefault_permissions.read = r\n"
         "default_user_tags.monitoring = true\n"
         "default_user_tags.a\\.b = true\n"
         "loopback_users.x\\.y = true\nloopback_users.z = true\n"
         "vm_memory_high_watermark.absolute = 1234567\n"
         "total_memory_available_override_value = 3GiB\n"
         "memory_monitor_interval = 7\n"
         "disk_free_limit.relative = 0.000000001\n"
         "queue_memory_budget = 1000kB\nmanagement.tcp.port = 0\n"
         "management.tcp.ip = ::\ndata_dir = d\nload_definitions = x.json\n"
         "fsync = interval\nfsync_interval = 60000\n"
         "store.segment_size = 1000000000\nlog.console = false\n"
         "log.console.level = none\ncluster_name = c\n"),
        ("listeners.tcp = none\nloopback_users = none\n"
         "default_user_tags.administrator = false\n"
         "vm_memory_high_watermark.relative = 0\n"
         "disk_free_limit.absolute = 0\nlog.console.level = critical\n"),
        ("vm_memory_high_watermark.relative = 0.987654321\n"
         "disk_free_limit.absolute = 8PiB\n"),
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct wr_config c, back;
        struct buf d1, d2;
        parse_ok(&c, texts[i]);
        dump(&c, &d1);
        conf_defaults(&back);
        if (conf_parse(&back, (char *)d1.data, d1.len - 1, "dump", err,
                       sizeof(err)) != WR_OK)
            t_fail(__FILE__, __LINE__, "dump %zu does not parse: %s", i, err);
        dump(&back, &d2);
        T_EQ_STR((char *)d1.data, (char *)d2.data);
        T_EQ_INT(back.nlisteners, c.nlisteners);
        T_EQ_INT(back.nloopback_users, c.nloopback_users);
        T_EQ_INT(back.ndefault_user_tags, c.ndefault_user_tags);
        T_ASSERT(back.vm_memory_high_watermark_relative ==
                 c.vm_memory_high_watermark_relative);
        T_ASSERT(back.disk_free_limit_relative == c.disk_free_limit_relative);
        T_EQ_INT(back.disk_free_limit_absolute, c.disk_free_limit_absolute);
        T_EQ_STR(back.default_user, c.default_user);
        T_EQ_STR(back.cluster_name, c.cluster_name);
        buf_fini(&d1);
        buf_fini(&d2);
    }
}

T_CASE(clustering_keys)
{
    struct wr_config c;

    conf_defaults(&c);
    T_EQ_INT(c.cluster_backend, CONF_CLUSTER_NONE); /* one node, no etcd */
    T_EQ_INT(c.netcd_endpoints, 1);
    T_EQ_STR(c.etcd_endpoints[0].host, "127.0.0.1");
    T_EQ_INT(c.etcd_endpoints[0].port, 2379);
    T_EQ_STR(c.etcd_key_prefix, "warren");
    T_EQ_STR(c.etcd_cluster, "default");
    T_EQ_INT(c.etcd_node_ttl_s, 10);
    T_EQ_INT(c.queue_leader_locator, CONF_LOCATOR_BALANCED);
    T_EQ_INT(c.catchup_window, 64 * MiB);
    T_EQ_STR(c.node_name, c.cluster_name);
    T_ASSERT(!c.cluster_name_set);
    parse_ok(&c, "cluster_formation.peer_discovery_backend = "
                 "rabbit_peer_discovery_etcd\n"
                 "cluster_formation.etcd.endpoints.1 = 10.0.0.1:2379\n"
                 "cluster_formation.etcd.endpoints.2 = [::1]:2479\n"
                 "cluster_formation.etcd.key_prefix = mq\n"
                 "cluster_formation.etcd.cluster_name = prod\n"
                 "cluster_formation.etcd.node_ttl = 5\n"
                 "cluster.node_name = n1\n"
                 "cluster.listen = 127.0.0.1:25672\n"
                 "queue_leader_locator = client-local\n"
                 "replication.catchup_window = 0\n"
                 "cluster_name = shown\n");
    T_EQ_INT(c.cluster_backend, CONF_CLUSTER_ETCD);
    T_EQ_INT(c.netcd_endpoints, 2);
    T_EQ_STR(c.etcd_endpoints[1].host, "::1");
    T_EQ_INT(c.etcd_endpoints[1].port, 2479);
    T_EQ_STR(c.etcd_key_prefix, "mq");
    T_EQ_STR(c.etcd_cluster, "prod");
    T_EQ_INT(c.etcd_node_ttl_s, 5);
    T_EQ_STR(c.node_name, "n1");
    T_EQ_STR(c.cluster_listen, "127.0.0.1:25672");
    T_EQ_INT(c.queue_leader_locator, CONF_LOCATOR_CLIENT_LOCAL);
    T_EQ_INT(c.catchup_window, 0);
    T_ASSERT(c.cluster_name_set);
    EXPECT_ERR_HAS("replication.catchup_window = 5GiB", "out of range");
    EXPECT_ERR_HAS("cluster_formation.peer_discovery_backend = dns",
                   "classic_config");
    EXPECT_ERR_HAS("cluster_formation.etcd.endpoints.1 = etcd.local:2379",
                   "IP");
    EXPECT_ERR_HAS("cluster_formation.etcd.node_ttl = 1", "2..3600");
}

T_CASE(replication_keys)
{
    struct wr_config c;

    conf_defaults(&c);
    T_EQ_INT(c.repl_replicas, 3);
    T_EQ_INT(c.repl_min_isr, 2);
    T_EQ_INT(c.repl_timeout_ms, 3000);
    T_EQ_INT(c.repl_blocked_after_ms, 1000);
    T_EQ_INT(c.repl_disk_stall_ms, 10000);
    parse_ok(&c, "replication.replicas = 5\n"
                 "replication.min_isr = 3\n"
                 "replication.timeout = 1500\n"
                 "replication.blocked_after = 0\n"
                 "replication.disk_stall_timeout = 2000\n");
    T_EQ_INT(c.repl_replicas, 5);
    T_EQ_INT(c.repl_min_isr, 3);
    T_EQ_INT(c.repl_timeout_ms, 1500);
    T_EQ_INT(c.repl_blocked_after_ms, 0);
    T_EQ_INT(c.repl_disk_stall_ms, 2000);
    EXPECT_ERR_HAS("replication.replicas = 0", "1..16");
    EXPECT_ERR_HAS("replication.min_isr = 17", "1..16");
    EXPECT_ERR_HAS("replication.timeout = 10", "100..3600000");
}

T_CASE(dump_shows_values_in_rabbitmq_syntax)
{
    struct wr_config c;
    struct buf b;
    const char *s;

    parse_ok(&c, "listeners.tcp.v6 = [::1]:5673\nlisteners.tcp.a\\.b = 7\n"
                 "store.segment_size = 32MiB\nconnection_max = infinity\n"
                 "log.console.level = notice\n");
    dump(&c, &b);
    s = (char *)b.data;
    T_ASSERT(strstr(s, "\nlisteners.tcp.v6 = ::1:5673\n") != NULL);
    T_ASSERT(strstr(s, "\nlisteners.tcp.a\\.b = 7\n") != NULL);
    T_ASSERT(strstr(s, "\nstore.segment_size = 32MiB\n") != NULL);
    T_ASSERT(strstr(s, "\ndisk_free_limit.absolute = 50MB\n") != NULL);
    T_ASSERT(strstr(s, "\nconnection_max = infinity\n") != NULL);
    T_ASSERT(strstr(s, "\nlog.console.level = info\n") != NULL);
    T_ASSERT(strstr(s, "\nvm_memory_high_watermark.relative = 0.4\n") != NULL);
    T_ASSERT(strstr(s, "\n# vm_memory_high_watermark.absolute = (not set)\n") !=
             NULL);
    T_ASSERT(strstr(s, "\n# load_definitions = (not set)\n") != NULL);
    T_ASSERT(strstr(s, "# Allowed: 0..65535 seconds\n# Default: 60\n"
                       "heartbeat = 60\n") != NULL);
    /* comment lines are wrapped */
    for (const char *l = s; *l;) {
        const char *nl = strchr(l, '\n');
        T_ASSERT(nl != NULL);
        if (*l == '#')
            T_ASSERT(nl - l <= 79);
        l = nl + 1;
    }
    buf_fini(&b);
}

T_CASE(dump_of_listeners_set_by_override)
{
    struct wr_config c, back;
    struct buf b;

    conf_defaults(&c);
    T_EQ_INT(
        conf_parse_listener("10.1.2.3:5600", &c.listeners[0], err, sizeof(err)),
        WR_OK);
    T_EQ_INT(
        conf_parse_listener("[::1]:5601", &c.listeners[1], err, sizeof(err)),
        WR_OK);
    c.nlisteners = 2;
    dump(&c, &b);
    T_ASSERT(strstr((char *)b.data, "\nlisteners.tcp.1 = 10.1.2.3:5600\n"
                                    "listeners.tcp.2 = ::1:5601\n") != NULL);
    conf_defaults(&back);
    T_EQ_INT(parse(&back, (char *)b.data), WR_OK);
    T_EQ_INT(back.nlisteners, 2);
    T_EQ_STR(back.listeners[1].host, "::1");
    T_EQ_INT(back.listeners[1].port, 5601);
    buf_fini(&b);
}

/* ---- files */

static char *
read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

T_CASE(default_file_parses)
{
    struct wr_config c;
    char e[512];

    conf_defaults(&c);
    if (conf_load_file(&c, WARREN_CONF_FILE, e, sizeof(e)) != WR_OK)
        t_fail(__FILE__, __LINE__, "%s", e);
    /* developer-machine settings the shipped file makes */
    T_EQ_INT(c.nlisteners, 1);
    T_EQ_STR(c.listeners[0].host, "127.0.0.1");
    T_EQ_INT(c.listeners[0].port, 5672);
    T_EQ_STR(c.management_ip, "127.0.0.1");
    T_EQ_INT(c.management_port, 15672);
    T_EQ_STR(c.data_dir, "data");
    T_EQ_INT(c.heartbeat, 60);
}

/*
 * Returns the key a --print-config line sets ("key = v" or
 * "# key = (not set)") in key[cap], list items cut to their prefix
 * ("listeners.tcp."), or false for other lines.
 */
static bool
dump_line_key(const char *l, const char *nl, char *key, size_t cap)
{
    static const char *const lists[] = {"listeners.tcp.", "loopback_users.",
                                        "default_user_tags."};
    const char *unset = strstr(l, " = (not set)"), *eq;
    size_t n;

    if (strncmp(l, "# ", 2) == 0 && unset && unset < nl)
        l += 2;
    else if (*l == '#' || l == nl)
        return false;
    eq = strstr(l, " = ");
    if (eq == NULL || eq > nl)
        return false;
    n = (size_t)(eq - l);
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (strncmp(l, lists[i], strlen(lists[i])) == 0) {
            snprintf(key, cap, "%s", lists[i]);
            return true;
        }
    }
    snprintf(key, cap, "%.*s = ", (int)n, l);
    return true;
}

T_CASE(default_file_documents_every_key)
{
    char *file = read_all(WARREN_CONF_FILE);
    struct wr_config c;
    struct buf b;
    char key[300];
    int checked = 0;

    T_ASSERT(file != NULL);
    conf_defaults(&c);
    c.nloopback_users = 0; /* so that loopback_users = none is dumped */
    dump(&c, &b);
    for (const char *l = (char *)b.data; *l;) {
        const char *nl = strchr(l, '\n');
        T_ASSERT(nl != NULL);
        if (dump_line_key(l, nl, key, sizeof(key))) {
            if (strstr(file, key) == NULL)
                t_fail(__FILE__, __LINE__, "warren.conf lacks \"%s\"", key);
            checked++;
        }
        l = nl + 1;
    }
    T_ASSERT(checked >= 30); /* 33 keys today */
    buf_fini(&b);
    free(file);
}

T_CASE(load_file_errors_name_the_file)
{
    struct wr_config c;
    char path[512], e[512];
    int fd;

    conf_defaults(&c);
    snprintf(path, sizeof(path), "%s/none.conf", t_tmpdir());
    T_EQ_INT(conf_load_file(&c, path, e, sizeof(e)), WR_ERR);
    T_ASSERT(strncmp(e, path, strlen(path)) == 0);
    T_ASSERT(strstr(e, ": No such file or directory") != NULL);

    T_EQ_INT(conf_load_file(&c, t_tmpdir(), e, sizeof(e)), WR_ERR);
    T_ASSERT(strstr(e, ": is a directory") != NULL);

    snprintf(path, sizeof(path), "%s/warren.conf", t_tmpdir());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, "heartbeat = 5\n\nhearbeat = 6\n", 28) == 28);
    close(fd);
    T_EQ_INT(conf_load_file(&c, path, e, sizeof(e)), WR_ERR);
    T_ASSERT(strstr(e, "/warren.conf:3: unknown key \"hearbeat\" (did you "
                       "mean \"heartbeat\"?)") != NULL);
    T_EQ_INT(c.heartbeat, 60);

    fd = open(path, O_WRONLY | O_TRUNC);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, "heartbeat = 5\r\n", 15) == 15);
    close(fd);
    T_EQ_INT(conf_load_file(&c, path, NULL, 0), WR_OK);
    T_EQ_INT(c.heartbeat, 5);

    /* a config file is small: more than 16 MiB is refused */
    T_ASSERT(truncate(path, (16 << 20) + 1) == 0);
    T_EQ_INT(conf_load_file(&c, path, e, sizeof(e)), WR_ERR);
    T_ASSERT(strstr(e, ": larger than 16777216 bytes") != NULL);
}

T_CASE(tls_keys_follow_rabbitmq)
{
    struct wr_config c;

    conf_defaults(&c);
    T_EQ_INT(c.nssl_listeners, 0);
    T_EQ_INT(c.ssl.verify, CONF_VERIFY_NONE);
    T_EQ_INT(c.ssl.fail_if_no_peer_cert, false);
    T_EQ_INT(c.ssl_cert_login_from, CONF_CERT_LOGIN_DN);
    T_EQ_INT(c.nauth_mechanisms, 0);
    T_EQ_INT(c.management_ssl_port, 0);
    T_EQ_INT(c.ssl_handshake_timeout_ms, 5000);
    parse_ok(&c, "ssl_handshake_timeout = infinity\n");
    T_EQ_INT(c.ssl_handshake_timeout_ms, 0);
    parse_ok(&c, "listeners.ssl.default = 5671\n"
                 "listeners.ssl.local = 127.0.0.1:5672\n"
                 "ssl_options.cacertfile = /etc/ca.pem\n"
                 "ssl_options.certfile = /etc/server.pem\n"
                 "ssl_options.keyfile = /etc/server.key\n"
                 "ssl_options.password = s3cret\n"
                 "ssl_options.verify = verify_peer\n"
                 "ssl_options.fail_if_no_peer_cert = true\n"
                 "ssl_options.versions.1 = tlsv1.3\n"
                 "ssl_options.versions.2 = tlsv1.2\n"
                 "ssl_options.ciphers.1 = TLS_AES_256_GCM_SHA384\n"
                 "ssl_options.ciphers.2 = ECDHE-RSA-AES256-GCM-SHA384\n"
                 "auth_mechanisms.1 = EXTERNAL\n"
                 "auth_mechanisms.2 = PLAIN\n"
                 "ssl_cert_login_from = common_name\n"
                 "management.ssl.port = 15671\n"
                 "management.ssl.certfile = /etc/m.pem\n"
                 "management.ssl.versions.1 = tlsv1.2\n");
    T_EQ_INT(c.nssl_listeners, 2);
    T_EQ_INT(c.ssl_listeners[0].port, 5671);
    T_EQ_STR(c.ssl_listeners[1].host, "127.0.0.1");
    T_EQ_INT(c.nlisteners, 1); /* the tcp default stays */
    T_EQ_STR(c.ssl.cacertfile, "/etc/ca.pem");
    T_EQ_STR(c.ssl.certfile, "/etc/server.pem");
    T_EQ_STR(c.ssl.keyfile, "/etc/server.key");
    T_EQ_STR(c.ssl.password, "s3cret");
    T_EQ_INT(c.ssl.verify, CONF_VERIFY_PEER);
    T_EQ_INT(c.ssl.fail_if_no_peer_cert, true);
    T_EQ_INT(c.ssl.nversions, 2);
    T_EQ_STR(c.ssl.versions[0].value, "tlsv1.3");
    T_EQ_STR(c.ssl.versions[1].value, "tlsv1.2");
    T_EQ_INT(c.ssl.nciphers, 2);
    T_EQ_STR(c.ssl.ciphers[1].value, "ECDHE-RSA-AES256-GCM-SHA384");
    T_EQ_INT(c.nauth_mechanisms, 2);
    T_EQ_STR(c.auth_mechanisms[0].value, "EXTERNAL");
    T_EQ_STR(c.auth_mechanisms[1].value, "PLAIN");
    T_EQ_INT(c.ssl_cert_login_from, CONF_CERT_LOGIN_CN);
    T_EQ_INT(c.management_ssl_port, 15671);
    T_EQ_STR(c.management_ssl.certfile, "/etc/m.pem");
    T_EQ_INT(c.management_ssl.nversions, 1);
    T_EQ_INT(c.ssl.nversions, 2); /* the blocks are separate */
}

T_CASE(tls_value_lists)
{
    struct wr_config c;

    /* the same item again replaces its value; a new text's items
     * replace the list */
    parse_ok(&c, "auth_mechanisms.1 = PLAIN\nauth_mechanisms.1 = AMQPLAIN\n");
    T_EQ_INT(c.nauth_mechanisms, 1);
    T_EQ_STR(c.auth_mechanisms[0].value, "AMQPLAIN");
    T_EQ_INT(parse(&c, "auth_mechanisms.x = EXTERNAL\n"), WR_OK);
    T_EQ_INT(c.nauth_mechanisms, 1);
    T_EQ_STR(c.auth_mechanisms[0].name, "x");
    EXPECT_ERR("auth_mechanisms.1 = CRAM-MD5",
               "t.conf:1: auth_mechanisms.1: unknown value (allowed: "
               "PLAIN, AMQPLAIN, EXTERNAL)");
    EXPECT_ERR_HAS("ssl_options.versions.1 = tlsv1.4", "unknown value");
    EXPECT_ERR_HAS("ssl_options.versions.1 = TLSv1.2", "unknown value");
    EXPECT_ERR_HAS("management.ssl.versions.1 = sslv3", "unknown value");
    EXPECT_ERR_HAS("ssl_options.versions.1 = tlsv1.2\n"
                   "ssl_options.versions.2 = tlsv1.3\n"
                   "ssl_options.versions.3 = tlsv1.1\n"
                   "ssl_options.versions.4 = tlsv1\n"
                   "ssl_options.versions.5 = tlsv1.3\n",
                   "more than 4 items");
    EXPECT_ERR_HAS("ssl_options.verify = verify_all", "is not a valid value");
    EXPECT_ERR_HAS("ssl_options.fail_if_no_peer_cert = yes",
                   "is not a boolean");
    EXPECT_ERR_HAS("ssl_cert_login_from = email", "is not a valid value");
    EXPECT_ERR_HAS("listeners.ssl.default = 70000", "listeners.ssl.default");
    EXPECT_ERR_HAS("management.ssl.port = 65536", "out of range");
    parse_ok(&c, "listeners.ssl.default = 5671\nlisteners.ssl = none\n");
    T_EQ_INT(c.nssl_listeners, 0);
}

T_CASE(tls_keys_dump_and_parse_back)
{
    struct wr_config a, b;
    struct buf out;

    parse_ok(&a, "listeners.ssl.default = 5671\n"
                 "ssl_options.certfile = /etc/server.pem\n"
                 "ssl_options.versions.1 = tlsv1.3\n"
                 "ssl_options.ciphers.a = TLS_AES_128_GCM_SHA256\n"
                 "auth_mechanisms.1 = EXTERNAL\n"
                 "management.ssl.port = 15671\n");
    buf_init(&out);
    conf_dump(&a, &out);
    buf_put_u8(&out, 0);
    T_ASSERT(strstr((char *)out.data, "ssl_options.versions.1 = tlsv1.3\n"));
    T_ASSERT(strstr((char *)out.data,
                    "ssl_options.ciphers.a = TLS_AES_128_GCM_SHA256\n"));
    T_ASSERT(strstr((char *)out.data, "auth_mechanisms.1 = EXTERNAL\n"));
    conf_defaults(&b);
    T_EQ_INT(
        conf_parse(&b, (char *)out.data, out.len - 1, "dump", err, sizeof(err)),
        WR_OK);
    T_EQ_INT(b.nssl_listeners, 1);
    T_EQ_STR(b.ssl.ciphers[0].name, "a");
    T_EQ_STR(b.auth_mechanisms[0].value, "EXTERNAL");
    T_EQ_INT(b.management_ssl_port, 15671);
    T_ASSERT(memcmp(&a.ssl, &b.ssl, sizeof(a.ssl)) == 0);
    buf_fini(&out);
}

static const struct t_case cases[] = {
    T_REG(defaults_match_rabbitmq),
    T_REG(empty_text_changes_nothing),
    T_REG(uint_in_range_is_stored),
    T_REG(uint_bad_values_name_key_and_range),
    T_REG(uint_overflow_is_out_of_range),
    T_REG(infinity_keyword_where_rabbitmq_allows_it),
    T_REG(size_units_follow_rabbitmq),
    T_REG(size_bad_values),
    T_REG(frame_max_uses_cuttlefish_bytesize),
    T_REG(double_values),
    T_REG(bool_values),
    T_REG(enum_values),
    T_REG(log_keys),
    T_REG(string_values),
    T_REG(ip_values),
    T_REG(listener_values),
    T_REG(listener_bad_values),
    T_REG(listener_list_is_bounded),
    T_REG(listeners_none_wins_as_in_rabbitmq),
    T_REG(parse_listener_override),
    T_REG(loopback_users_follow_rabbitmq),
    T_REG(loopback_users_are_bounded),
    T_REG(default_user_tags),
    T_REG(default_permissions_and_vhost),
    T_REG(watermark_relative_wins_over_absolute),
    T_REG(comments_whitespace_crlf_bom),
    T_REG(hash_always_starts_a_comment),
    T_REG(duplicate_keys_last_wins),
    T_REG(missing_equals_or_key),
    T_REG(empty_value_is_an_error),
    T_REG(unknown_key_with_suggestion),
    T_REG(ignored_rabbitmq_keys_are_checked),
    T_REG(error_leaves_config_unchanged),
    T_REG(texts_layer_on_each_other),
    T_REG(error_buffer_is_bounded),
    T_REG(very_long_lines),
    T_REG(many_lines_count_right),
    T_REG(non_utf8_and_control_bytes),
    T_REG(dump_parses_back_to_the_same_config),
    T_REG(clustering_keys),
    T_REG(replication_keys),
    T_REG(dump_shows_values_in_rabbitmq_syntax),
    T_REG(dump_of_listeners_set_by_override),
    T_REG(default_file_parses),
    T_REG(default_file_documents_every_key),
    T_REG(load_file_errors_name_the_file),
    T_REG(tls_keys_follow_rabbitmq),
    T_REG(tls_value_lists),
    T_REG(tls_keys_dump_and_parse_back),
};
T_MAIN(cases)
