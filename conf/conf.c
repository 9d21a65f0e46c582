/*
 * conf: the table-driven parser for Warren's config file (RabbitMQ's
 * new-style rabbitmq.conf syntax) into struct wr_config.
 *
 * Syntax, as cuttlefish's conf_parse.peg reads it (RabbitMQ 3.10):
 *
 *     # a comment line; blank lines are skipped
 *     heartbeat = 30                  # a comment may follow a value
 *     listeners.tcp.local = 127.0.0.1:5672
 *     loopback_users.some\.user = true
 *
 *  - A line is `key = value`, spaces and tabs allowed around both; lines
 *    end in LF or CRLF; a UTF-8 byte order mark at the start is skipped.
 *  - A key is words of [A-Za-z0-9_-] joined by dots; `\.` puts a dot
 *    inside a word (user names in loopback_users.<name>).
 *  - A value runs to the first `#` or the end of the line, minus trailing
 *    blanks. No quoting: quotes are part of the value, and `#` always
 *    starts a comment. Values must be non-empty UTF-8 without control
 *    characters.
 *  - The same key twice: the last one wins.
 *
 * One loop (parse_line → set_key) handles every key through the table in
 * conf/conf_keys.h: it finds the row, checks the value with the row's type
 * and range, and stores it at the row's offset in struct wr_config. The
 * first error stops the parse with "name:line: key: what (allowed: ...)".
 *
 * Parsing works on a heap copy of the caller's config and copies it back
 * only on success, so a bad file never leaves a half-applied config.
 *
 * RabbitMQ rules kept after the loop (finish()): `listeners.tcp = none` and
 * `loopback_users = none` empty their list whatever else the file says; a
 * list key replaces the inherited list; for the memory and disk limits, a
 * file that sets the `.relative` key zeroes the `.absolute` one (relative
 * wins, as in rabbit.schema's translations) and one that sets only
 * `.absolute` zeroes `.relative`. Ensures: of each such pair at most one is
 * non-zero, and users of the struct read "absolute if non-zero, else
 * relative".
 */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/cval.h"

enum conf_type {
    CONF_UINT,     /* decimal integer */
    CONF_SIZE,     /* bytes with RabbitMQ's information units */
    CONF_BYTESIZE, /* bytes with cuttlefish's KB/MB/GB (1024^n) */
    CONF_DOUBLE,   /* plain decimal */
    CONF_BOOL,     /* true | false */
    CONF_ENUM,     /* one name of an enum table, stored as int */
    CONF_STRING,   /* text into a char array */
    CONF_IP,       /* IPv4/IPv6 literal into a char array */
    CONF_NONE,     /* "none": empties a list (field = its count) */
    CONF_LISTENER, /* list item: [IP:]PORT */
    CONF_NAMESET,  /* list item: name = true | false */
    CONF_VALLIST,  /* list item: name = value (struct wr_confitem) */
    CONF_ALIASED,  /* another name for the row named in `help` */
};

#define CONF_F_INFINITY 0x1u /* "infinity" is accepted, stored as 0 */
#define CONF_F_UNSET0   0x2u /* 0 means "not set" (dumped as a comment) */
#define CONF_F_IGNORED  0x4u /* accepted, checked, not stored */
#define CONF_NOFIELD    SIZE_MAX

#define KEY_MAX         255         /* longest key, bytes */
#define FILE_MAX        (16u << 20) /* largest config file read */
#define MSG_MAX         512
#define ALLOWED_MAX     256

struct conf_enum {
    const char *name; /* NULL ends the table */
    int value;
};

static const struct conf_enum conf_log_levels[] = {
    {"debug", LOG_DEBUG},    {"info", LOG_INFO},
    {"notice", LOG_INFO},    {"warning", LOG_WARN},
    {"error", LOG_ERR},      {"critical", LOG_ERR},
    {"alert", LOG_ERR},      {"emergency", LOG_ERR},
    {"none", CONF_LOG_NONE}, {NULL, 0},
};
static const struct conf_enum conf_opt_log_levels[] = {
    {"debug", CONF_LOG_SET(LOG_DEBUG)},    {"info", CONF_LOG_SET(LOG_INFO)},
    {"notice", CONF_LOG_SET(LOG_INFO)},    {"warning", CONF_LOG_SET(LOG_WARN)},
    {"error", CONF_LOG_SET(LOG_ERR)},      {"critical", CONF_LOG_SET(LOG_ERR)},
    {"alert", CONF_LOG_SET(LOG_ERR)},      {"emergency", CONF_LOG_SET(LOG_ERR)},
    {"none", CONF_LOG_SET(CONF_LOG_NONE)}, {NULL, 0},
};
static const struct conf_enum conf_log_formats[] = {
    {"plaintext", CONF_LOG_PLAIN},
    {"json", CONF_LOG_JSON},
    {NULL, 0},
};
static const struct conf_enum conf_fsync_modes[] = {
    {"always", CONF_FSYNC_ALWAYS},
    {"interval", CONF_FSYNC_INTERVAL},
    {"never", CONF_FSYNC_NEVER},
    {NULL, 0},
};
static const struct conf_enum conf_false_only[] = {{"false", 0}, {NULL, 0}};
static const struct conf_enum conf_import_backends[] = {
    {"local_filesystem", 0},
    {NULL, 0},
};
static const struct conf_enum conf_mem_strategies[] = {
    {"rss", 0}, {"erlang", 1}, {"allocated", 2}, {"legacy", 3}, {NULL, 0},
};
static const struct conf_enum conf_partition_modes[] = {
    {"ignore", 0},
    {"autoheal", 1},
    {"pause_minority", 2},
    {"pause_if_all_down", 3},
    {NULL, 0},
};
static const struct conf_enum conf_backends[] = {
    {"classic_config", CONF_CLUSTER_NONE},
    {"rabbit_peer_discovery_classic_config", CONF_CLUSTER_NONE},
    {"etcd", CONF_CLUSTER_ETCD},
    {"rabbit_peer_discovery_etcd", CONF_CLUSTER_ETCD},
    {NULL, 0},
};
static const struct conf_enum conf_leader_locators[] = {
    {"client-local", CONF_LOCATOR_CLIENT_LOCAL},
    {"balanced", CONF_LOCATOR_BALANCED},
    {NULL, 0},
};
static const struct conf_enum conf_verify_modes[] = {
    {"verify_none", CONF_VERIFY_NONE},
    {"verify_peer", CONF_VERIFY_PEER},
    {NULL, 0},
};
static const struct conf_enum conf_cert_logins[] = {
    {"distinguished_name", CONF_CERT_LOGIN_DN},
    {"common_name", CONF_CERT_LOGIN_CN},
    {NULL, 0},
};
/* The values of the CONF_VALLIST rows that take names (value unused). */
static const struct conf_enum conf_tls_versions[] = {
    {"tlsv1", 0}, {"tlsv1.1", 0}, {"tlsv1.2", 0}, {"tlsv1.3", 0}, {NULL, 0},
};
static const struct conf_enum conf_auth_mechs[] = {
    {"PLAIN", 0},
    {"AMQPLAIN", 0},
    {"EXTERNAL", 0},
    {NULL, 0},
};
static const struct conf_enum conf_locators[] = {
    {"client-local", 0},
    {"min-masters", 1},
    {"random", 2},
    {NULL, 0},
};

/* One row of conf/conf_keys.h. */
struct conf_key {
    const char *key; /* "heartbeat"; "listeners.tcp.*" for list items */
    enum conf_type type;
    unsigned flags;   /* CONF_F_* */
    size_t off;       /* field offset, or CONF_NOFIELD */
    size_t size;      /* field size; lists: one item's size */
    size_t count_off; /* lists: offset of the size_t count */
    size_t cap;       /* lists: items the array holds */
    double min, max;  /* numbers; integers are exact (<= 2^53) */
    const char *unit; /* "seconds", for messages */
    const struct conf_enum *enums;
    const char *def_name; /* lists: the default item's name */
    const char *def;      /* default value text, or NULL */
    const char *help;     /* one line; CONF_ALIASED: the canonical key */
};

#define FIELD(f) ((struct wr_config *)0)->f
#define CONF_KEY(k, t, f, lo, hi, fl, u, e, d, h) \
    {.key = k,                                    \
     .type = t,                                   \
     .flags = fl,                                 \
     .off = offsetof(struct wr_config, f),        \
     .size = sizeof(FIELD(f)),                    \
     .count_off = CONF_NOFIELD,                   \
     .min = lo,                                   \
     .max = hi,                                   \
     .unit = u,                                   \
     .enums = e,                                  \
     .def = d,                                    \
     .help = h},
#define CONF_LIST(k, t, a, n, dn, d, h)             \
    {.key = k,                                      \
     .type = t,                                     \
     .off = offsetof(struct wr_config, a),          \
     .size = sizeof(FIELD(a)[0]),                   \
     .count_off = offsetof(struct wr_config, n),    \
     .cap = sizeof(FIELD(a)) / sizeof(FIELD(a)[0]), \
     .def_name = dn,                                \
     .def = d,                                      \
     .help = h},
#define CONF_VLIST(k, a, n, e, h)                   \
    {.key = k,                                      \
     .type = CONF_VALLIST,                          \
     .off = offsetof(struct wr_config, a),          \
     .size = sizeof(FIELD(a)[0]),                   \
     .count_off = offsetof(struct wr_config, n),    \
     .cap = sizeof(FIELD(a)) / sizeof(FIELD(a)[0]), \
     .enums = e,                                    \
     .help = h},
#define CONF_IGNORED(k, t, lo, hi, e, why) \
    {.key = k,                             \
     .type = t,                            \
     .flags = CONF_F_IGNORED,              \
     .off = CONF_NOFIELD,                  \
     .count_off = CONF_NOFIELD,            \
     .min = lo,                            \
     .max = hi,                            \
     .enums = e,                           \
     .help = why},
#define CONF_ALIAS(k, canon)    \
    {.key = k,                  \
     .type = CONF_ALIASED,      \
     .off = CONF_NOFIELD,       \
     .count_off = CONF_NOFIELD, \
     .help = canon},

static const struct conf_key conf_keys[] = {
#include "conf/conf_keys.h"
};

#undef CONF_KEY
#undef CONF_LIST
#undef CONF_VLIST
#undef CONF_IGNORED
#undef CONF_ALIAS

#define NKEYS WR_ARRAY_LEN(conf_keys)

/* The .relative/.absolute pairs; see the file comment. */
static const struct {
    const char *relative, *absolute;
} conf_pairs[] = {
    {"vm_memory_high_watermark.relative", "vm_memory_high_watermark.absolute"},
    {"disk_free_limit.relative", "disk_free_limit.absolute"},
};

/* State of one conf_parse() call. */
struct parse {
    struct wr_config *c; /* the working copy */
    const char *name;
    unsigned line;
    char *err;
    size_t errlen;
    bool seen[NKEYS]; /* rows set by this text */
};

/* ---- errors */

static int fail(struct parse *p, const char *fmt, ...) WR_PRINTF(2, 3);

/* Writes "name:line: " and the message into p->err. Returns WR_ERR. */
static int
fail(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
    if (n < 0 || (size_t)n >= p->errlen)
        return WR_ERR;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return WR_ERR;
}

/* Describes the values row k allows, for messages and --print-config. */
static void
describe(const struct conf_key *k, char *dst, size_t cap)
{
    char lo[32], hi[32];
    size_t o = 0;

    switch (k->type) {
    case CONF_UINT:
        snprintf(dst, cap, "%s%llu..%llu%s%s",
                 (k->flags & CONF_F_INFINITY) ? "infinity or " : "",
                 (unsigned long long)k->min, (unsigned long long)k->max,
                 k->unit ? " " : "", k->unit ? k->unit : "");
        return;
    case CONF_SIZE:
        cval_fmt_size((uint64_t)k->min, lo, sizeof(lo));
        cval_fmt_size((uint64_t)k->max, hi, sizeof(hi));
        snprintf(dst, cap,
                 "a size of %s..%s bytes (units kB MB GB TB: powers of "
                 "1000; KiB MiB GiB TiB: powers of 1024)",
                 lo, hi);
        return;
    case CONF_BYTESIZE:
        snprintf(dst, cap, "%llu..%llu bytes; units KB MB GB (powers of 1024)",
                 (unsigned long long)k->min, (unsigned long long)k->max);
        return;
    case CONF_DOUBLE:
        cval_fmt_double(k->min, lo, sizeof(lo));
        cval_fmt_double(k->max, hi, sizeof(hi));
        snprintf(dst, cap, "%s..%s%s%s", lo, hi, k->unit ? " " : "",
                 k->unit ? k->unit : "");
        return;
    case CONF_BOOL:
    case CONF_NAMESET:
        snprintf(dst, cap, "true or false");
        return;
    case CONF_ENUM:
        dst[0] = '\0';
        for (const struct conf_enum *e = k->enums; e->name && o < cap; e++)
            o += (size_t)snprintf(dst + o, cap - o, "%s%s",
                                  e == k->enums ? "" : ", ", e->name);
        return;
    case CONF_STRING:
        snprintf(dst, cap, "text of 1..%zu bytes", k->size - 1);
        return;
    case CONF_IP:
        snprintf(dst, cap, "an IPv4 or IPv6 address");
        return;
    case CONF_NONE:
        snprintf(dst, cap, "none");
        return;
    case CONF_LISTENER:
        snprintf(dst, cap, "PORT, IP:PORT or [IPv6]:PORT, port 0..65535");
        return;
    case CONF_VALLIST:
        if (k->enums) {
            dst[0] = '\0';
            for (const struct conf_enum *e = k->enums; e->name && o < cap; e++)
                o += (size_t)snprintf(dst + o, cap - o, "%s%s",
                                      e == k->enums ? "" : ", ", e->name);
        } else {
            snprintf(dst, cap, "text of 1..%zu bytes",
                     sizeof(FIELD(ssl.ciphers[0].value)) - 1);
        }
        return;
    case CONF_ALIASED:
        break;
    }
    snprintf(dst, cap, "?");
}

/* "name:line: key: msg (allowed: ...)". Returns WR_ERR. */
static int
fail_value(struct parse *p, const struct conf_key *k, struct bytes key,
           const char *msg)
{
    char allowed[ALLOWED_MAX];

    describe(k, allowed, sizeof(allowed));
    return fail(p, "%.*s: %s (allowed: %s)", BYTES_FMT(key), msg, allowed);
}

/* ---- key lookup */

static bool
is_word_char(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* Returns true when key is words joined by dots (`\.` inside a word). */
static bool
key_is_valid(struct bytes key)
{
    size_t word = 0; /* length of the current word */

    for (size_t i = 0; i < key.len; i++) {
        uint8_t ch = key.ptr[i];
        if (ch == '\\') {
            if (i + 1 == key.len || key.ptr[i + 1] != '.')
                return false;
            i++;
            word++;
        } else if (ch == '.') {
            if (word == 0)
                return false;
            word = 0;
        } else if (is_word_char(ch)) {
            word++;
        } else {
            return false;
        }
    }
    return word > 0;
}

/* Returns true when s has an unescaped dot. */
static bool
has_bare_dot(struct bytes s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] == '\\')
            i++;
        else if (s.ptr[i] == '.')
            return true;
    }
    return false;
}

/* Length of a list row's prefix: "listeners.tcp." of "listeners.tcp.*". */
static size_t
pattern_prefix(const struct conf_key *k)
{
    size_t n = strlen(k->key);

    return n >= 2 && k->key[n - 1] == '*' ? n - 1 : 0;
}

/*
 * Finds the row for key. For a list row, *item gets the raw last segment
 * (escapes still in). Returns NULL when no row matches.
 */
static const struct conf_key *
find_key(struct bytes key, struct bytes *item)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        size_t pre = pattern_prefix(k);
        if (pre == 0) {
            if (bytes_eq_str(key, k->key))
                return k;
            continue;
        }
        if (key.len > pre && memcmp(key.ptr, k->key, pre) == 0) {
            struct bytes rest = {key.ptr + pre, key.len - pre};
            if (!has_bare_dot(rest)) {
                *item = rest;
                return k;
            }
        }
    }
    return NULL;
}

static const struct conf_key *
find_fixed(const char *key)
{
    struct bytes item;

    return find_key(bytes_str(key), &item);
}

/* Levenshtein distance between a and b (each at most KEY_MAX * 2). */
static size_t
edit_distance(struct bytes a, struct bytes b)
{
    size_t prev[2 * KEY_MAX + 2], cur[2 * KEY_MAX + 2];

    WR_ASSERT(b.len < WR_ARRAY_LEN(prev));
    for (size_t j = 0; j <= b.len; j++)
        prev[j] = j;
    for (size_t i = 1; i <= a.len; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b.len; j++) {
            size_t sub = prev[j - 1] + (a.ptr[i - 1] != b.ptr[j - 1]);
            cur[j] = WR_MIN(WR_MIN(prev[j] + 1, cur[j - 1] + 1), sub);
        }
        memcpy(prev, cur, (b.len + 1) * sizeof(cur[0]));
    }
    return prev[b.len];
}

/* "unknown key", with the closest known key when one is close enough. */
static int
unknown_key(struct parse *p, struct bytes key)
{
    size_t best = SIZE_MAX, limit = WR_MAX(1, WR_MIN(2, key.len / 4));
    size_t last = key.len;
    char cand[2 * KEY_MAX + 2], sugg[2 * KEY_MAX + 2] = "";

    while (last > 0 && key.ptr[last - 1] != '.')
        last--;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        size_t pre = pattern_prefix(k), d;
        if (pre == 0)
            snprintf(cand, sizeof(cand), "%s", k->key);
        else /* compare with the pattern completed by the key's last word */
            snprintf(cand, sizeof(cand), "%.*s%.*s", (int)pre, k->key,
                     (int)(key.len - last), (const char *)key.ptr + last);
        d = edit_distance(key, bytes_str(cand));
        if (d < best) {
            best = d;
            memcpy(sugg, cand, strlen(cand) + 1);
        }
    }
    if (best <= limit)
        return fail(p, "unknown key \"%.*s\" (did you mean \"%s\"?)",
                    BYTES_FMT(key), sugg);
    return fail(p, "unknown key \"%.*s\"", BYTES_FMT(key));
}

/* ---- storing values */

static void *
field(struct parse *p, const struct conf_key *k)
{
    return (char *)p->c + k->off;
}

static size_t *
list_count(struct parse *p, const struct conf_key *k)
{
    size_t off = k->type == CONF_NONE ? k->off : k->count_off;

    return (size_t *)(void *)((char *)p->c + off);
}

static void
store_uint(void *dst, size_t size, uint64_t v)
{
    switch (size) {
    case 1:
        *(uint8_t *)dst = (uint8_t)v;
        break;
    case 2:
        *(uint16_t *)dst = (uint16_t)v;
        break;
    case 4:
        *(uint32_t *)dst = (uint32_t)v;
        break;
    default:
        WR_ASSERT(size == 8);
        *(uint64_t *)dst = v;
    }
}

static uint64_t
load_uint(const void *src, size_t size)
{
    switch (size) {
    case 1:
        return *(const uint8_t *)src;
    case 2:
        return *(const uint16_t *)src;
    case 4:
        return *(const uint32_t *)src;
    default:
        WR_ASSERT(size == 8);
        return *(const uint64_t *)src;
    }
}

/* Integer types: parse, check the range, store (or drop if ignored). */
static int
set_uint(struct parse *p, const struct conf_key *k, struct bytes key,
         struct bytes val)
{
    char msg[MSG_MAX], q[300];
    uint64_t v;
    int rc;

    if ((k->flags & CONF_F_INFINITY) && bytes_eq_str(val, "infinity")) {
        v = 0;
        goto store;
    }
    if (k->type == CONF_SIZE)
        rc = cval_size(val, &v, msg, sizeof(msg));
    else if (k->type == CONF_BYTESIZE)
        rc = cval_bytesize(val, &v, msg, sizeof(msg));
    else
        rc = cval_uint(val, &v, msg, sizeof(msg));
    if (rc != WR_OK)
        return fail_value(p, k, key, msg);
    /* min and max are integers <= 2^53, exact as doubles. */
    if (v < (uint64_t)k->min || v > (uint64_t)k->max) {
        cval_quote(val, q, sizeof(q));
        snprintf(msg, sizeof(msg), "%s is out of range", q);
        return fail_value(p, k, key, msg);
    }
store:
    if (k->off != CONF_NOFIELD)
        store_uint(field(p, k), k->size, v);
    return WR_OK;
}

static int
set_double(struct parse *p, const struct conf_key *k, struct bytes key,
           struct bytes val)
{
    char msg[MSG_MAX], q[300];
    double v;

    if (cval_double(val, &v, msg, sizeof(msg)) != WR_OK)
        return fail_value(p, k, key, msg);
    if (v < k->min || v > k->max) {
        cval_quote(val, q, sizeof(q));
        snprintf(msg, sizeof(msg), "%s is out of range", q);
        return fail_value(p, k, key, msg);
    }
    if (k->off != CONF_NOFIELD)
        memcpy(field(p, k), &v, sizeof(v));
    return WR_OK;
}

static int
set_bool(struct parse *p, const struct conf_key *k, struct bytes key,
         struct bytes val)
{
    char msg[MSG_MAX];
    bool v;

    if (cval_bool(val, &v, msg, sizeof(msg)) != WR_OK)
        return fail_value(p, k, key, msg);
    if (k->off != CONF_NOFIELD)
        memcpy(field(p, k), &v, sizeof(v));
    return WR_OK;
}

static int
set_enum(struct parse *p, const struct conf_key *k, struct bytes key,
         struct bytes val)
{
    char msg[MSG_MAX], q[300];

    for (const struct conf_enum *e = k->enums; e->name; e++) {
        if (bytes_eq_str(val, e->name)) {
            if (k->off != CONF_NOFIELD)
                memcpy(field(p, k), &e->value, sizeof(e->value));
            return WR_OK;
        }
    }
    cval_quote(val, q, sizeof(q));
    snprintf(msg, sizeof(msg), "%s is not a valid value", q);
    return fail_value(p, k, key, msg);
}

/* Copies val into a char array of `size` bytes, NUL-terminated. */
static int
set_string(struct parse *p, const struct conf_key *k, struct bytes key,
           struct bytes val)
{
    char msg[MSG_MAX], q[300];

    if (val.len >= k->size) {
        cval_quote(val, q, sizeof(q));
        snprintf(msg, sizeof(msg), "%s is too long (%zu bytes)", q, val.len);
        return fail_value(p, k, key, msg);
    }
    memcpy(field(p, k), val.ptr, val.len);
    ((char *)field(p, k))[val.len] = '\0';
    return WR_OK;
}

static int
set_ip(struct parse *p, const struct conf_key *k, struct bytes key,
       struct bytes val)
{
    char msg[MSG_MAX];

    if (cval_ip(val, field(p, k), k->size, msg, sizeof(msg)) != WR_OK)
        return fail_value(p, k, key, msg);
    return WR_OK;
}

static int
set_none(struct parse *p, const struct conf_key *k, struct bytes key,
         struct bytes val)
{
    char msg[MSG_MAX], q[300];

    if (!bytes_eq_str(val, "none")) {
        cval_quote(val, q, sizeof(q));
        snprintf(msg, sizeof(msg),
                 "%s is not allowed; add items with %s.<name>", q, k->key);
        return fail_value(p, k, key, msg);
    }
    *list_count(p, k) = 0;
    return WR_OK;
}

/* ---- lists */

/* Returns true when this parse already set a row of k's list. */
static bool
list_touched(struct parse *p, const struct conf_key *k)
{
    size_t *count = list_count(p, k);

    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *o = &conf_keys[i];
        if (p->seen[i] &&
            (o->type == CONF_NONE || o->count_off != CONF_NOFIELD) &&
            list_count(p, o) == count)
            return true;
    }
    return false;
}

/* Unescapes a list item's name into dst[cap]. Returns false if too long. */
static bool
item_name(struct bytes item, char *dst, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < item.len; i++) {
        if (item.ptr[i] == '\\')
            i++;
        if (o + 1 >= cap)
            return false;
        dst[o++] = (char)item.ptr[i];
    }
    dst[o] = '\0';
    return true;
}

/* The index of the item called name, or *count if there is none. */
static size_t
list_find(struct parse *p, const struct conf_key *k, const char *name)
{
    size_t n = *list_count(p, k);
    const char *base = field(p, k);

    for (size_t i = 0; i < n; i++) {
        const char *s =
            k->type == CONF_LISTENER
                ? ((const struct wr_listener *)(const void *)base)[i].name
            : k->type == CONF_VALLIST
                ? ((const struct wr_confitem *)(const void *)base)[i].name
                : base + i * k->size;
        if (strcmp(s, name) == 0)
            return i;
    }
    return n;
}

static int
set_listener(struct parse *p, const struct conf_key *k, struct bytes key,
             struct bytes item, struct bytes val)
{
    struct wr_listener l = {0}, *arr = field(p, k);
    size_t *count = list_count(p, k), i;
    char msg[MSG_MAX];

    if (!item_name(item, l.name, sizeof(l.name))) {
        snprintf(msg, sizeof(msg), "listener name longer than %zu bytes",
                 sizeof(l.name) - 1);
        return fail_value(p, k, key, msg);
    }
    if (cval_listener(val, &l, msg, sizeof(msg)) != WR_OK)
        return fail_value(p, k, key, msg);
    i = list_find(p, k, l.name);
    if (i == *count && *count == k->cap) {
        snprintf(msg, sizeof(msg), "more than %zu listeners", k->cap);
        return fail_value(p, k, key, msg);
    }
    arr[i] = l;
    if (i == *count)
        (*count)++;
    return WR_OK;
}

/* `prefix.<name> = true` adds name to the set, `= false` removes it. */
static int
set_nameset(struct parse *p, const struct conf_key *k, struct bytes key,
            struct bytes item, struct bytes val)
{
    char name[256], msg[MSG_MAX];
    size_t *count = list_count(p, k), i;
    char *base = field(p, k);
    bool on;

    WR_ASSERT(k->size <= sizeof(name));
    if (cval_bool(val, &on, msg, sizeof(msg)) != WR_OK)
        return fail_value(p, k, key, msg);
    if (!item_name(item, name, k->size)) {
        snprintf(msg, sizeof(msg), "name longer than %zu bytes", k->size - 1);
        return fail_value(p, k, key, msg);
    }
    i = list_find(p, k, name);
    if (!on && i < *count) {
        memmove(base + i * k->size, base + (i + 1) * k->size,
                (*count - i - 1) * k->size);
        (*count)--;
    } else if (on && i == *count) {
        if (*count == k->cap) {
            snprintf(msg, sizeof(msg), "more than %zu names", k->cap);
            return fail_value(p, k, key, msg);
        }
        memcpy(base + i * k->size, name, strlen(name) + 1);
        (*count)++;
    }
    return WR_OK;
}

/* `prefix.<name> = value`: sets item <name>, appended when new. */
static int
set_vallist(struct parse *p, const struct conf_key *k, struct bytes key,
            struct bytes item, struct bytes val)
{
    struct wr_confitem it = {0}, *arr = field(p, k);
    size_t *count = list_count(p, k), i;
    char msg[MSG_MAX];
    bool known = k->enums == NULL;

    if (!item_name(item, it.name, sizeof(it.name))) {
        snprintf(msg, sizeof(msg), "name longer than %zu bytes",
                 sizeof(it.name) - 1);
        return fail_value(p, k, key, msg);
    }
    if (val.len >= sizeof(it.value))
        return fail_value(p, k, key, "value too long");
    for (const struct conf_enum *e = k->enums; e && e->name; e++)
        known = known || bytes_eq_str(val, e->name);
    if (!known)
        return fail_value(p, k, key, "unknown value");
    memcpy(it.value, val.ptr, val.len);
    i = list_find(p, k, it.name);
    if (i == *count && *count == k->cap) {
        snprintf(msg, sizeof(msg), "more than %zu items", k->cap);
        return fail_value(p, k, key, msg);
    }
    arr[i] = it;
    if (i == *count)
        (*count)++;
    return WR_OK;
}

/* ---- the loop */

/* Returns true when v holds a byte below 0x20 (tab included) or DEL. */
static bool
has_control(struct bytes v)
{
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < 0x20 || v.ptr[i] == 0x7F)
            return true;
    }
    return false;
}

/*
 * Applies one `key = value` to row k (already resolved from aliases).
 * item is a list row's raw item name. Returns WR_OK or WR_ERR (p->err).
 */
static int
apply(struct parse *p, const struct conf_key *k, struct bytes key,
      struct bytes item, struct bytes val)
{
    if (val.len == 0)
        return fail_value(p, k, key, "missing value");
    if (!bytes_is_utf8(val))
        return fail_value(p, k, key, "value is not valid UTF-8");
    if (has_control(val))
        return fail_value(p, k, key, "value holds a control character");
    if ((k->type == CONF_LISTENER || k->type == CONF_NAMESET ||
         k->type == CONF_VALLIST) &&
        !list_touched(p, k))
        *list_count(p, k) = 0; /* the text's list replaces the old one */
    p->seen[k - conf_keys] = true;
    switch (k->type) {
    case CONF_UINT:
    case CONF_SIZE:
    case CONF_BYTESIZE:
        return set_uint(p, k, key, val);
    case CONF_DOUBLE:
        return set_double(p, k, key, val);
    case CONF_BOOL:
        return set_bool(p, k, key, val);
    case CONF_ENUM:
        return set_enum(p, k, key, val);
    case CONF_STRING:
        return set_string(p, k, key, val);
    case CONF_IP:
        return set_ip(p, k, key, val);
    case CONF_NONE:
        return set_none(p, k, key, val);
    case CONF_LISTENER:
        return set_listener(p, k, key, item, val);
    case CONF_NAMESET:
        return set_nameset(p, k, key, item, val);
    case CONF_VALLIST:
        return set_vallist(p, k, key, item, val);
    case CONF_ALIASED:
        break;
    }
    WR_ASSERT(!"unreachable: alias rows are resolved by set_key()");
    return WR_ERR;
}

static int
set_key(struct parse *p, struct bytes key, struct bytes val)
{
    struct bytes item = BYTES_NULL;
    const struct conf_key *k = find_key(key, &item);

    if (k == NULL)
        return unknown_key(p, key);
    if (k->type == CONF_ALIASED) {
        k = find_fixed(k->help);
        WR_ASSERT(k != NULL && k->type != CONF_ALIASED);
    }
    return apply(p, k, key, item, val);
}

static size_t
skip_blanks(struct bytes ln, size_t i)
{
    while (i < ln.len && (ln.ptr[i] == ' ' || ln.ptr[i] == '\t'))
        i++;
    return i;
}

/* Parses one line (without its line end). */
static int
parse_line(struct parse *p, struct bytes ln)
{
    size_t i = skip_blanks(ln, 0), start, eq, end;
    struct bytes key;
    const uint8_t *hash;
    char q[16];

    if (i == ln.len || ln.ptr[i] == '#')
        return WR_OK;
    start = i;
    while (i < ln.len &&
           (is_word_char(ln.ptr[i]) || ln.ptr[i] == '.' || ln.ptr[i] == '\\'))
        i++;
    key = (struct bytes){ln.ptr + start, i - start};
    eq = skip_blanks(ln, i);
    if (key.len == 0 && eq < ln.len && ln.ptr[eq] == '=')
        return fail(p, "missing key before \"=\"");
    if (eq == i && i < ln.len && ln.ptr[i] != '=' && ln.ptr[i] != '#') {
        cval_quote((struct bytes){ln.ptr + i, 1}, q, sizeof(q));
        return fail(p, "invalid character %s in key \"%.*s\"", q,
                    (int)WR_MIN(key.len, KEY_MAX), (const char *)key.ptr);
    }
    if (key.len > KEY_MAX)
        return fail(p, "key longer than %d bytes", KEY_MAX);
    if (!key_is_valid(key))
        return fail(p,
                    "invalid key \"%.*s\" (a key is words of A-Z a-z 0-9 _ - "
                    "joined by dots)",
                    BYTES_FMT(key));
    if (eq == ln.len || ln.ptr[eq] != '=')
        return fail(p, "expected \"=\" after \"%.*s\"", BYTES_FMT(key));
    i = skip_blanks(ln, eq + 1);
    hash = memchr(ln.ptr + i, '#', ln.len - i);
    end = hash ? (size_t)(hash - ln.ptr) : ln.len;
    while (end > i && (ln.ptr[end - 1] == ' ' || ln.ptr[end - 1] == '\t'))
        end--;
    return set_key(p, key, (struct bytes){ln.ptr + i, end - i});
}

/* The rules that span keys; see the file comment. */
static void
finish(struct parse *p)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (p->seen[i] && conf_keys[i].type == CONF_NONE)
            *list_count(p, &conf_keys[i]) = 0;
    }
    for (size_t i = 0; i < WR_ARRAY_LEN(conf_pairs); i++) {
        const struct conf_key *rk = find_fixed(conf_pairs[i].relative);
        const struct conf_key *ak = find_fixed(conf_pairs[i].absolute);
        WR_ASSERT(rk && ak && ak->size == sizeof(uint64_t));
        if (p->seen[rk - conf_keys])
            memset(field(p, ak), 0, sizeof(uint64_t));
        else if (p->seen[ak - conf_keys])
            memset(field(p, rk), 0, sizeof(double));
    }
}

static int
parse_text(struct parse *p, struct bytes text)
{
    size_t pos = 0;

    if (bytes_has_prefix(text, "\xEF\xBB\xBF"))
        pos = 3;
    while (pos < text.len) {
        const uint8_t *nl = memchr(text.ptr + pos, '\n', text.len - pos);
        size_t end = nl ? (size_t)(nl - text.ptr) : text.len;
        struct bytes ln = {text.ptr + pos, end - pos};
        if (ln.len > 0 && ln.ptr[ln.len - 1] == '\r')
            ln.len--;
        p->line++;
        if (parse_line(p, ln) != WR_OK)
            return WR_ERR;
        pos = end + 1;
    }
    finish(p);
    return WR_OK;
}

/* RabbitMQ's rules for outputs: `log.file = false` is no file, a
 * relative file is in log.dir, and a file set in this text silences the
 * console unless the text also sets log.console (so a systemd journal
 * does not get each line twice). Checks log.file.rotation.date. Returns
 * WR_OK, or WR_ERR with the reason in p->err. */
static int
settle_log_outputs(struct parse *p)
{
    struct wr_config *c = p->c;
    bool file_seen = p->seen[find_fixed("log.file") - conf_keys];
    struct log_date_spec spec;

    if (strcmp(c->log_file, "false") == 0)
        c->log_file[0] = '\0';
    if (c->log_file[0] && c->log_file[0] != '/' && c->log_dir[0]) {
        char joined[sizeof(c->log_file)];
        int n =
            snprintf(joined, sizeof(joined), "%s/%s", c->log_dir, c->log_file);

        if (n < 0 || (size_t)n >= sizeof(joined)) {
            snprintf(p->err, p->errlen,
                     "%s: log.file: log.dir/log.file is "
                     "longer than %zu bytes",
                     p->name, sizeof(joined) - 1);
            return WR_ERR;
        }
        memcpy(c->log_file, joined, (size_t)n + 1);
    }
    if (file_seen && c->log_file[0] &&
        !p->seen[find_fixed("log.console") - conf_keys])
        c->log_console = false;
    if (log_date_spec_parse(c->log_rotation_date, &spec) != WR_OK) {
        snprintf(p->err, p->errlen,
                 "%s: log.file.rotation.date: \"%s\" is not a date spec "
                 "(allowed: $D<hour>, $W<weekday 0-6>D<hour>, "
                 "$M<day 1-31 or L>D<hour>)",
                 p->name, c->log_rotation_date);
        return WR_ERR;
    }
    return WR_OK;
}

int
conf_parse(struct wr_config *c, const char *text, size_t len, const char *name,
           char *err, size_t errlen)
{
    char scratch[MSG_MAX];
    struct parse *p = xcalloc(1, sizeof(*p));
    int rc;

    p->c = xmemdup(c, sizeof(*c));
    p->name = name ? name : "config";
    p->err = err && errlen ? err : scratch;
    p->errlen = err && errlen ? errlen : sizeof(scratch);
    p->err[0] = '\0';
    rc = parse_text(p, bytes_of(text, text ? len : 0));
    if (rc == WR_OK && p->seen[find_fixed("cluster_name") - conf_keys])
        p->c->cluster_name_set = true;
    if (rc == WR_OK)
        rc = settle_log_outputs(p);
    if (rc == WR_OK)
        memcpy(c, p->c, sizeof(*c));
    free(p->c);
    free(p);
    return rc;
}

/* ---- defaults */

/* Checks a row's bounds once: integers exact as doubles, enum fields int. */
static void
check_row(const struct conf_key *k)
{
    bool integer = k->type == CONF_UINT || k->type == CONF_SIZE ||
                   k->type == CONF_BYTESIZE;

    if (integer) {
        WR_ASSERT(k->min >= 0 && k->max <= (double)CVAL_SIZE_MAX);
        WR_ASSERT(k->min == (double)(uint64_t)k->min);
        WR_ASSERT(k->max == (double)(uint64_t)k->max);
        WR_ASSERT(k->off == CONF_NOFIELD ||
                  k->max <= (double)(UINT64_MAX >> (64 - 8 * k->size)));
    }
    if (k->type == CONF_ENUM)
        WR_ASSERT(k->off == CONF_NOFIELD || k->size == sizeof(int));
    if (k->type == CONF_DOUBLE)
        WR_ASSERT(k->off == CONF_NOFIELD || k->size == sizeof(double));
    if (k->type == CONF_BOOL)
        WR_ASSERT(k->off == CONF_NOFIELD || k->size == sizeof(bool));
    if (k->type == CONF_STRING || k->type == CONF_IP)
        WR_ASSERT(k->off != CONF_NOFIELD && k->size >= 2);
    if (k->type == CONF_ALIASED)
        WR_ASSERT(find_fixed(k->help) != NULL);
}

/* Sets cluster_name to "warren@<hostname>", hostname made printable. */
static void
default_cluster_name(struct wr_config *c)
{
    static const char pre[] = "warren@";
    char host[256];
    size_t o = sizeof(pre) - 1;

    if (gethostname(host, sizeof(host)) != 0)
        memcpy(host, "localhost", sizeof("localhost"));
    host[sizeof(host) - 1] = '\0';
    memcpy(c->cluster_name, pre, o);
    for (size_t i = 0; host[i] && o + 1 < sizeof(c->cluster_name); i++) {
        unsigned char ch = (unsigned char)host[i];
        c->cluster_name[o++] = ch > 0x20 && ch < 0x7F ? (char)ch : '_';
    }
    c->cluster_name[o] = '\0';
}

void
conf_defaults(struct wr_config *c)
{
    struct parse *p = xcalloc(1, sizeof(*p));
    char err[MSG_MAX];

    memset(c, 0, sizeof(*c));
    p->c = c;
    p->name = "defaults";
    p->err = err;
    p->errlen = sizeof(err);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        check_row(k);
        if (k->def == NULL)
            continue;
        const char *key = k->def_name ? k->def_name : k->key;
        int rc = apply(p, k, bytes_str(key),
                       k->def_name ? bytes_str(k->def_name) : BYTES_NULL,
                       bytes_str(k->def));
        if (rc != WR_OK)
            log_err("conf: bad default: %s", err);
        WR_ASSERT(rc == WR_OK);
    }
    default_cluster_name(c);
    memcpy(c->node_name, c->cluster_name, sizeof(c->node_name));
    free(p);
}

/* ---- files */

int
conf_load_file(struct wr_config *c, const char *path, char *err, size_t errlen)
{
    struct buf b;
    struct stat st;
    int fd, rc = WR_ERR;
    ssize_t n;
    char scratch[MSG_MAX];

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    buf_init(&b);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return WR_ERR;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        goto out;
    }
    for (;;) {
        n = read(fd, buf_reserve(&b, 65536), 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
        if (b.len > FILE_MAX) {
            snprintf(err, errlen, "%s: larger than %u bytes", path, FILE_MAX);
            goto out;
        }
    }
    rc = conf_parse(c, (const char *)b.data, b.len, path, err, errlen);
out: /* close the file, drop the text */
    close(fd);
    buf_fini(&b);
    return rc;
}

int
conf_parse_listener(const char *s, struct wr_listener *out, char *err,
                    size_t errlen)
{
    struct wr_listener l = {0};
    char scratch[MSG_MAX];

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    if (cval_listener(bytes_str(s), &l, err, errlen) != WR_OK)
        return WR_ERR;
    *out = l;
    return WR_OK;
}

/* ---- --print-config */

/* Appends s with its dots escaped as `\.`. */
static void
put_escaped(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '.')
            buf_append(out, "\\", 1);
        buf_append(out, s, 1);
    }
}

/* Appends a + b as `#` comment lines wrapped before column 79. */
static void
put_comment(struct buf *out, const char *a, const char *b)
{
    char text[ALLOWED_MAX * 2];
    size_t n, i = 0;

    snprintf(text, sizeof(text), "%s%s", a, b);
    n = strlen(text);
    while (i < n) {
        size_t len = n - i, cut;
        if (len > 76) { /* break at the last space that fits */
            for (cut = 76; cut > 0 && text[i + cut] != ' '; cut--)
                ;
            len = cut ? cut : 76;
        }
        buf_printf(out, "# %.*s\n", (int)len, text + i);
        i += len;
        while (i < n && text[i] == ' ')
            i++;
    }
}

/* Returns true when row k is the inactive half of a relative/absolute pair
 * (rule: absolute if non-zero, else relative). */
static bool
pair_inactive(const struct wr_config *c, const struct conf_key *k)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(conf_pairs); i++) {
        const struct conf_key *ak = find_fixed(conf_pairs[i].absolute);
        uint64_t a = load_uint((const char *)c + ak->off, ak->size);
        if (strcmp(k->key, conf_pairs[i].relative) == 0)
            return a != 0;
        if (k == ak)
            return a == 0;
    }
    return false;
}

static void
dump_value(const struct wr_config *c, const struct conf_key *k, struct buf *out)
{
    const void *f = (const char *)c + k->off;
    char v[64];
    uint64_t u;
    double d;
    int e;

    switch (k->type) {
    case CONF_UINT:
    case CONF_SIZE:
    case CONF_BYTESIZE:
        u = load_uint(f, k->size);
        if (u == 0 && (k->flags & CONF_F_INFINITY))
            buf_printf(out, "infinity");
        else if (k->type == CONF_SIZE) {
            cval_fmt_size(u, v, sizeof(v));
            buf_printf(out, "%s", v);
        } else {
            buf_printf(out, "%llu", (unsigned long long)u);
        }
        break;
    case CONF_DOUBLE:
        memcpy(&d, f, sizeof(d));
        cval_fmt_double(d, v, sizeof(v));
        buf_printf(out, "%s", v);
        break;
    case CONF_BOOL:
        buf_printf(out, "%s", *(const bool *)f ? "true" : "false");
        break;
    case CONF_ENUM:
        memcpy(&e, f, sizeof(e));
        for (const struct conf_enum *en = k->enums; en->name; en++) {
            if (en->value == e) {
                buf_printf(out, "%s", en->name);
                return;
            }
        }
        buf_printf(out, "%d", e);
        break;
    default:
        buf_printf(out, "%s", (const char *)f);
    }
}

/* Returns true when a scalar row's value is "not set". */
static bool
is_unset(const struct wr_config *c, const struct conf_key *k)
{
    const char *f = (const char *)c + k->off;

    if (k->type == CONF_STRING || k->type == CONF_IP)
        return f[0] == '\0';
    if (k->flags & CONF_F_UNSET0)
        return load_uint(f, k->size) == 0;
    return pair_inactive(c, k);
}

/* Returns true when a CONF_NONE row exists for list row k. */
static bool
has_none_row(const struct conf_key *k)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (conf_keys[i].type == CONF_NONE && conf_keys[i].off == k->count_off)
            return true;
    }
    return false;
}

static void
dump_list(const struct wr_config *c, const struct conf_key *k, struct buf *out)
{
    size_t n = *(const size_t *)(const void *)((const char *)c + k->count_off);
    size_t pre = pattern_prefix(k);
    const char *base = (const char *)c + k->off;

    for (size_t i = 0; i < n; i++) {
        buf_printf(out, "%.*s", (int)pre, k->key);
        if (k->type == CONF_LISTENER) {
            const struct wr_listener *l =
                &((const struct wr_listener *)(const void *)base)[i];
            if (l->name[0])
                put_escaped(out, l->name);
            else
                buf_printf(out, "%zu", i + 1);
            if (l->host[0])
                buf_printf(out, " = %s:%u\n", l->host, l->port);
            else
                buf_printf(out, " = %u\n", l->port);
        } else if (k->type == CONF_VALLIST) {
            const struct wr_confitem *it =
                &((const struct wr_confitem *)(const void *)base)[i];
            put_escaped(out, it->name);
            buf_printf(out, " = %s\n", it->value);
        } else {
            put_escaped(out, base + i * k->size);
            buf_printf(out, " = true\n");
        }
    }
    if (n == 0 && k->type == CONF_NAMESET && !has_none_row(k))
        buf_printf(out, "%.*s%s = false\n", (int)pre, k->key, k->def_name);
}

void
conf_dump(const struct wr_config *c, struct buf *out)
{
    char allowed[ALLOWED_MAX];

    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        if (k->type == CONF_ALIASED || (k->flags & CONF_F_IGNORED))
            continue;
        if (k->type == CONF_NONE &&
            *(const size_t *)(const void *)((const char *)c + k->off) != 0)
            continue;
        describe(k, allowed, sizeof(allowed));
        put_comment(out, k->help, ".");
        put_comment(out, "Allowed: ", allowed);
        if (k->def && k->def_name)
            buf_printf(out, "# Default: %.*s%s = %s\n", (int)pattern_prefix(k),
                       k->key, k->def_name, k->def);
        else if (k->def)
            buf_printf(out, "# Default: %s\n", k->def);
        if (k->type == CONF_LISTENER || k->type == CONF_NAMESET ||
            k->type == CONF_VALLIST) {
            dump_list(c, k, out);
        } else if (k->type == CONF_NONE) {
            buf_printf(out, "%s = none\n", k->key);
        } else if (is_unset(c, k)) {
            buf_printf(out, "# %s = (not set)\n", k->key);
        } else {
            buf_printf(out, "%s = ", k->key);
            dump_value(c, k, out);
            buf_printf(out, "\n");
        }
        buf_printf(out, "\n");
    }
}
