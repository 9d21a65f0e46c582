/*
 * base: the few basics every Warren module shares and that depend on
 * nothing else: status codes, logging, always-on assertions, allocation
 * that aborts on OOM, byte views, growable buffers, a bounds-checked
 * read cursor, big-endian helpers, clocks, and a ring deque
 * (base/ring.h). Nothing here knows AMQP: field tables and the rest of
 * the wire format live one floor up, in amqp/.
 */
#ifndef WARREN_BASE_H
#define WARREN_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Status vocabulary for plumbing (nginx style). */
#define WR_OK           0
#define WR_ERR          (-1)
#define WR_AGAIN        (-2)

#define WR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define WR_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define WR_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define WR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define WR_NORETURN     __attribute__((noreturn))
#define WR_LIKELY(x)    __builtin_expect(!!(x), 1)
#define WR_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#else
#define WR_PRINTF(f, a)
#define WR_NORETURN
#define WR_LIKELY(x)   (x)
#define WR_UNLIKELY(x) (x)
#endif

/* ---- assertions: WR_ASSERT is always on; never use on client/disk data */

WR_NORETURN void wr_assert_fail(const char *expr, const char *file, int line,
                                const char *func);
#define WR_ASSERT(x)                                          \
    do {                                                      \
        if (WR_UNLIKELY(!(x)))                                \
            wr_assert_fail(#x, __FILE__, __LINE__, __func__); \
    } while (0)
#ifdef NDEBUG
#define WR_DEBUG_ASSERT(x) ((void)0)
#else
#define WR_DEBUG_ASSERT(x) WR_ASSERT(x)
#endif

/* ---- logging (base/log.c): one line per call, to the console (stderr)
 * and/or a file, plain text or JSON, filtered by category and output */

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
#define LOG_NONE (-1) /* a level below every line: the output is off */

/* Categories, RabbitMQ's log.<category>.level: a line passes its
 * category's level, then each output's. */
enum log_category {
    LOG_CAT_DEFAULT,    /* log.default.level */
    LOG_CAT_CONNECTION, /* log.connection.level: connections opened,
                           authenticated, refused, closed */
    LOG_NCAT,
};

enum log_format { LOG_FMT_PLAIN, LOG_FMT_JSON };

/* log.file.rotation.date, RabbitMQ's date spec ("$D0", "$W5D16",
 * "$M1D0", "$ML"; see base/log.c). */
enum log_rot_every { LOG_ROT_NEVER, LOG_ROT_DAY, LOG_ROT_WEEK, LOG_ROT_MONTH };
#define LOG_ROT_LAST_DAY (-1) /* mday: the month's last day */
struct log_date_spec {
    enum log_rot_every every;
    int hour; /* 0..23 */
    int wday; /* LOG_ROT_WEEK: 0 (Sunday) .. 6 */
    int mday; /* LOG_ROT_MONTH: 1..31 (a shorter month's last day) or
                 LOG_ROT_LAST_DAY */
};

/* Parses a date spec ("" = never). Returns WR_OK or WR_ERR (out
 * unchanged). */
int log_date_spec_parse(const char *s, struct log_date_spec *out);
/* The first rotation time of d after now (local time), 0 for never. */
time_t log_date_next(const struct log_date_spec *d, time_t now);

/* Where and what to log; log_configure() takes it. Levels are enum
 * log_level values or LOG_NONE. */
struct log_settings {
    int level[LOG_NCAT]; /* per category */
    bool console;        /* log to stderr */
    int console_level;
    enum log_format console_format;
    const char *file; /* NULL or "": no log file */
    int file_level;
    enum log_format file_format;
    uint64_t rotation_size;             /* bytes; 0 = never rotate by size */
    struct log_date_spec rotation_date; /* zeroed: never by date */
    unsigned rotation_count;            /* archives kept: PATH.0 (newest) .. */
};

/* Applies s: opens s->file (created 0640, appended to) and closes an
 * earlier one. Call before other threads log. Returns WR_OK, or WR_ERR
 * with errno set and the earlier settings kept. */
int log_configure(const struct log_settings *s);
/* Reopens the log file at its path (after logrotate moved it away), from
 * any thread. Returns WR_OK (also when there is no file) or WR_ERR with
 * errno set, the old file kept. */
int log_reopen(void);
/* Every category and the console at level, the file untouched (tests). */
void log_set_level(enum log_level level);
/* The most verbose level a line of the default category can pass. */
int log_get_level(void);
int log_cat_level(enum log_category cat);
/* Parses "error", "warning", "info", "debug" (RabbitMQ's level names). */
int log_level_parse(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...) WR_PRINTF(2, 3);
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    WR_PRINTF(2, 0);
void log_cmsg(enum log_category cat, enum log_level level, const char *fmt, ...)
    WR_PRINTF(3, 4);
/* Like log_msg at LOG_ERR/WARN, adding file:line:func and strerror(errno). */
void log_sys(enum log_level level, const char *file, int line, const char *func,
             const char *fmt, ...) WR_PRINTF(5, 6);

#define log_enabled(l) ((int)(l) <= log_get_level())
#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)                       \
    do {                                    \
        if (log_enabled(LOG_INFO))          \
            log_msg(LOG_INFO, __VA_ARGS__); \
    } while (0)
#define log_debug(...)                       \
    do {                                     \
        if (log_enabled(LOG_DEBUG))          \
            log_msg(LOG_DEBUG, __VA_ARGS__); \
    } while (0)
/* A line of the connection category (log.connection.level). */
#define log_conn(l, ...)                                    \
    do {                                                    \
        if ((int)(l) <= log_cat_level(LOG_CAT_CONNECTION))  \
            log_cmsg(LOG_CAT_CONNECTION, (l), __VA_ARGS__); \
    } while (0)
#define log_syserr(...) \
    log_sys(LOG_ERR, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_syswarn(...) \
    log_sys(LOG_WARN, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* ---- allocation: small internal allocations abort on failure */

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
void *xmemdup(const void *p, size_t n);
/* Returns a NUL-terminated heap copy of n bytes. */
char *xstrndup(const void *p, size_t n);

/*
 * Test seam: when set, the allocator calls it first and fails (aborts)
 * if it returns false. NULL in production.
 */
extern bool (*wr_alloc_hook)(size_t n);

/* ---- byte views: borrowed {ptr, len}; never stored past their owner */

struct bytes {
    const uint8_t *ptr;
    size_t len;
};

#define BYTES_LIT(s) ((struct bytes){(const uint8_t *)(s), sizeof(s) - 1})
#define BYTES_NULL   ((struct bytes){NULL, 0})
/* printf helper: printf("%.*s", BYTES_FMT(b)) */
#define BYTES_FMT(b) (int)(b).len, (const char *)(b).ptr

static inline struct bytes
bytes_of(const void *p, size_t n)
{
    return (struct bytes){(const uint8_t *)p, n};
}

static inline struct bytes
bytes_str(const char *s)
{
    return (struct bytes){(const uint8_t *)s, strlen(s)};
}

static inline bool
bytes_eq(struct bytes a, struct bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool
bytes_eq_str(struct bytes a, const char *s)
{
    return bytes_eq(a, bytes_str(s));
}

static inline bool
bytes_has_prefix(struct bytes a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.ptr, prefix, n) == 0;
}

/* Returns true when b is well-formed UTF-8 (no overlongs, no surrogates). */
bool bytes_is_utf8(struct bytes b);

/* ---- big-endian loads and stores */

static inline uint16_t
be16_load(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
be32_load(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline uint64_t
be64_load(const uint8_t *p)
{
    return (uint64_t)be32_load(p) << 32 | be32_load(p + 4);
}

static inline void
be16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
be64_store(uint8_t *p, uint64_t v)
{
    be32_store(p, (uint32_t)(v >> 32));
    be32_store(p + 4, (uint32_t)v);
}

/* ---- bounds-checked read cursor (compares against what remains) */

struct cursor {
    const uint8_t *p;
    size_t left;
};

static inline void
cur_init(struct cursor *c, const void *p, size_t n)
{
    c->p = (const uint8_t *)p;
    c->left = n;
}

bool rd_u8(struct cursor *c, uint8_t *v);
bool rd_u16(struct cursor *c, uint16_t *v);
bool rd_u32(struct cursor *c, uint32_t *v);
bool rd_u64(struct cursor *c, uint64_t *v);
/* Takes a view of the next n bytes. */
bool rd_bytes(struct cursor *c, size_t n, struct bytes *v);
/* u8 length + bytes; u32 length + bytes. Views into the cursor's buffer. */
bool rd_shortstr(struct cursor *c, struct bytes *v);
bool rd_longstr(struct cursor *c, struct bytes *v);

/* ---- growable output buffer */

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_fini(struct buf *b);
/* Ensures room for n more bytes; returns a pointer to the free space. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
/* Assumes s.len <= 255; callers validate first. */
void buf_put_shortstr(struct buf *b, struct bytes s);
void buf_put_longstr(struct buf *b, struct bytes s);
void buf_printf(struct buf *b, const char *fmt, ...) WR_PRINTF(2, 3);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Appends s as Erlang's ~p prints a binary, which RabbitMQ's error texts
 * contain: <<"abc">> when every byte is printable Latin-1 (with \n-style
 * escapes), else <<0,60,255>>. */
void buf_put_erl_binary(struct buf *b, struct bytes s);

static inline void
buf_reset(struct buf *b)
{
    b->len = 0;
}

static inline struct bytes
buf_bytes(const struct buf *b)
{
    return (struct bytes){b->data, b->len};
}

/* ---- base64 (RFC 4648, standard alphabet) */

/* Appends the padded encoding of p[0..n) to out. */
void b64_encode(const uint8_t *p, size_t n, struct buf *out);
/* Appends the bytes s[0..n) encodes to out. strict: a multiple of 4
 * characters with '=' padding, as Erlang's base64:decode wants;
 * otherwise padding is optional. False for anything else. */
bool b64_decode(const char *s, size_t n, bool strict, struct buf *out);

/* ---- clocks */

/* Monotonic time. */
uint64_t wr_now_us(void);
uint64_t wr_now_ms(void);
/* Wall clock, seconds and milliseconds since the epoch. */
uint64_t wr_wall_ms(void);

/* Fills buf with n bytes from the OS's random source (getrandom). */
void wr_random(void *buf, size_t n);

#endif
