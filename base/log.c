/*
 * log.c: Warren's log, RabbitMQ's outputs and formats.
 *
 * A line has a level and a category (default or connection). It is
 * written when its level passes its category's level (log.default.level,
 * log.connection.level) and then, per output, that output's level
 * (log.console.level, log.file.level). Two outputs: the console (stderr,
 * which journald collects under systemd) and one file.
 *
 *   plain: 2026-12-06 21:30:00.123 [info] accepting AMQP connection ...
 *   json:  {"time":"2026-12-06T21:30:00.123+00:00","level":"info",
 *           "msg":"...","pid":4242,"domain":"rabbitmq.connection"}
 *
 * JSON lines carry RabbitMQ's field names (rabbit_logger_json_fmt: time,
 * level, msg, pid, and domain for a category); pid is the process id, not
 * an Erlang pid. Times are UTC with milliseconds. One JSON object a line,
 * valid UTF-8 whatever bytes the message held (a client's bad bytes
 * become U+FFFD).
 *
 * Each line is one write(2), never fsync'd: a line is in the kernel when
 * the call returns, and a slow disk costs the writer a page-cache copy.
 * The loop and the store threads log, so the outputs are under one mutex
 * (lines never interleave, rotation and reopening are atomic to writers).
 *
 * Rotation (log.file.rotation.size, .date, .count), as RabbitMQ's file
 * handler: when a line would take the file past the size, or is the
 * first written after the date spec's time, PATH.<count-2> becomes
 * PATH.<count-1>, ..., PATH becomes PATH.0 (the newest archive) and a new
 * PATH is opened; count 0 keeps no archive. As RabbitMQ does, each write
 * first checks that PATH is still the open file (same device and inode)
 * and opens it anew when logrotate has moved it away; log_reopen()
 * (SIGHUP, SIGUSR1) does the same at once.
 *
 * Date specs (RabbitMQ's, from lager), in local time:
 *
 *   $D0     every day at midnight        $D23    every day at 23:00
 *   $W0D23  every Sunday at 23:00        $W5D16  every Friday at 16:00
 *   $M1D0   the 1st of every month       $ML     the last day of every
 *           at midnight                          month at midnight
 *   ""      never                        $M31 is the last day of a
 *                                                shorter month
 */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_TEXT 2048 /* a message's text, truncated past this */
#define PATH_MAX_LOG  4096

/* One output. */
struct log_out {
    bool on;
    int fd; /* the console's is stderr, never closed */
    int level;
    enum log_format format;
};

/* Everything below is guarded by log_lock, except the levels, which are
 * written by log_configure() only, before other threads start. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_out console = {true, STDERR_FILENO, LOG_INFO, LOG_FMT_PLAIN};
static struct log_out file = {false, -1, LOG_INFO, LOG_FMT_PLAIN};
static char file_path[PATH_MAX_LOG];
static dev_t file_dev; /* the open file's identity, to notice a move */
static ino_t file_ino;
static uint64_t file_size; /* bytes in the open file */
static uint64_t rot_size;
static unsigned rot_count;
static struct log_date_spec rot_date;
static time_t rot_next; /* when rot_date rotates next; 0 = never */
static int cat_level[LOG_NCAT] = {LOG_INFO, LOG_INFO};
/* Per category: the most verbose level a line can have and still reach
 * some output, so that callers skip formatting what nobody writes. */
static int cat_gate[LOG_NCAT] = {LOG_INFO, LOG_INFO};

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const char *const cat_domains[] = {NULL, "rabbitmq.connection"};

static void
update_gates(void)
{
    int out = LOG_NONE;

    if (console.on)
        out = WR_MAX(out, console.level);
    if (file.on)
        out = WR_MAX(out, file.level);
    for (size_t i = 0; i < LOG_NCAT; i++)
        cat_gate[i] = WR_MIN(cat_level[i], out);
}

int
log_get_level(void)
{
    return cat_gate[LOG_CAT_DEFAULT];
}

int
log_cat_level(enum log_category cat)
{
    return cat_gate[cat];
}

void
log_set_level(enum log_level level)
{
    for (size_t i = 0; i < LOG_NCAT; i++)
        cat_level[i] = level;
    console.level = level;
    update_gates();
}

int
log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return WR_OK;
        }
    }
    if (strcmp(name, "warn") == 0) {
        *out = LOG_WARN;
        return WR_OK;
    }
    return WR_ERR;
}

/* ---- the file */

/* Opens path for appending; *st describes it. Returns the descriptor, or
 * -1 with errno set (EINVAL: not a regular file). */
static int
open_log_file(const char *path, struct stat *st)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        int saved = S_ISREG(st->st_mode) ? errno : EINVAL;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The file just opened as fd becomes the log file. Assumes log_lock. */
static void
take_file(int fd, const struct stat *st)
{
    if (file.fd >= 0)
        close(file.fd);
    file.fd = fd;
    file_dev = st->st_dev;
    file_ino = st->st_ino;
    file_size = (uint64_t)st->st_size;
}

/* Swaps the open file for a new one at file_path. Assumes log_lock held.
 * Returns WR_OK, or WR_ERR with errno set and the old file kept. */
static int
reopen_locked(void)
{
    struct stat st;
    int fd;

    if (!file.on)
        return WR_OK;
    fd = open_log_file(file_path, &st);
    if (fd < 0)
        return WR_ERR;
    take_file(fd, &st);
    return WR_OK;
}

/* RabbitMQ's check before each write: is PATH still the open file? When
 * it was moved or deleted, open PATH anew (a failure keeps the old one).
 * Assumes log_lock held. */
static void
ensure_file_locked(void)
{
    struct stat st;

    if (stat(file_path, &st) == 0 && st.st_dev == file_dev &&
        st.st_ino == file_ino)
        return;
    (void)reopen_locked();
}

/* PATH.i -> PATH.i+1 for the archives kept, PATH -> PATH.0, a new PATH.
 * Assumes log_lock held. A failed rename (a full or read-only disk) is
 * not fatal: the file goes on growing and the next line tries again. A
 * new PATH that cannot be opened (out of descriptors) leaves lines going
 * to the moved file until it has grown by the size again, so that the
 * archives are not shifted on every line. */
static void
rotate_locked(void)
{
    char from[PATH_MAX_LOG + 16], to[PATH_MAX_LOG + 16];

    if (rot_count == 0) {
        if (unlink(file_path) < 0 && errno != ENOENT)
            return;
    } else {
        for (unsigned i = rot_count - 1; i > 0; i--) {
            snprintf(from, sizeof(from), "%s.%u", file_path, i - 1);
            snprintf(to, sizeof(to), "%s.%u", file_path, i);
            if (rename(from, to) < 0 && errno != ENOENT)
                return;
        }
        snprintf(to, sizeof(to), "%s.0", file_path);
        if (rename(file_path, to) < 0)
            return;
    }
    if (reopen_locked() != WR_OK)
        file_size = 0;
}

/* ---- rotation by date */

/* Reads 1 or 2 digits at *p into *out, within lo..hi. Returns false on
 * anything else. */
static bool
spec_number(const char **p, int lo, int hi, int *out)
{
    int v = 0, n = 0;

    while (n < 2 && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int
log_date_spec_parse(const char *s, struct log_date_spec *out)
{
    struct log_date_spec d = {LOG_ROT_NEVER, 0, 0, 0};
    const char *p = s;
    int minute;

    while (*p) {
        bool every = *p == '$';
        char what = every ? p[1] : p[0];

        if (what == '\0')
            return WR_ERR;
        p += every ? 2 : 1;
        if (what == 'D') {
            if (every)
                d.every = LOG_ROT_DAY;
            if (!spec_number(&p, 0, 23, &d.hour))
                return WR_ERR;
        } else if (what == 'H') {
            /* RabbitMQ reads the minute and rotates daily at 00:00. */
            if (every) {
                d.every = LOG_ROT_DAY;
                d.hour = 0;
            }
            if (!spec_number(&p, 0, 59, &minute))
                return WR_ERR;
        } else if (what == 'W' && every) {
            d.every = LOG_ROT_WEEK;
            d.hour = 0;
            if (*p < '0' || *p > '6')
                return WR_ERR;
            d.wday = *p++ - '0';
        } else if (what == 'M' && every) {
            d.every = LOG_ROT_MONTH;
            d.hour = 0;
            if (*p == 'L' || *p == 'l') {
                d.mday = LOG_ROT_LAST_DAY;
                p++;
            } else if (!spec_number(&p, 1, 31, &d.mday)) {
                return WR_ERR;
            }
        } else {
            return WR_ERR;
        }
    }
    *out = d;
    return WR_OK;
}

/* Local midnight of year/month (0-based)/day plus hour, normalized. */
static time_t
local_time_at(int year, int month, int day, int hour)
{
    struct tm tm = {0};

    tm.tm_year = year;
    tm.tm_mon = month;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

static int
days_in_month(int year, int month)
{
    struct tm tm = {0};
    time_t t = local_time_at(year, month + 1, 0, 12); /* day 0: the last */

    localtime_r(&t, &tm);
    return tm.tm_mday;
}

/* The rotation time in month `month` (0-based, may overflow) of year. */
static time_t
month_target(const struct log_date_spec *d, int year, int month)
{
    int y = year + month / 12, m = month % 12;
    int last = days_in_month(y, m);
    int day = d->mday == LOG_ROT_LAST_DAY ? last : WR_MIN(d->mday, last);

    return local_time_at(y, m, day, d->hour);
}

time_t
log_date_next(const struct log_date_spec *d, time_t now)
{
    struct tm tm;
    time_t t;
    int ahead;

    localtime_r(&now, &tm);
    switch (d->every) {
    case LOG_ROT_DAY:
        t = local_time_at(tm.tm_year, tm.tm_mon, tm.tm_mday, d->hour);
        return t > now ? t
                       : local_time_at(tm.tm_year, tm.tm_mon, tm.tm_mday + 1,
                                       d->hour);
    case LOG_ROT_WEEK:
        ahead = (d->wday - tm.tm_wday + 7) % 7;
        t = local_time_at(tm.tm_year, tm.tm_mon, tm.tm_mday + ahead, d->hour);
        return t > now ? t
                       : local_time_at(tm.tm_year, tm.tm_mon,
                                       tm.tm_mday + ahead + 7, d->hour);
    case LOG_ROT_MONTH:
        t = month_target(d, tm.tm_year, tm.tm_mon);
        return t > now ? t : month_target(d, tm.tm_year, tm.tm_mon + 1);
    default:
        return 0;
    }
}

int
log_reopen(void)
{
    int rc;

    pthread_mutex_lock(&log_lock);
    rc = reopen_locked();
    pthread_mutex_unlock(&log_lock);
    return rc;
}

int
log_configure(const struct log_settings *s)
{
    struct stat st = {0};
    int fd = -1;

    if (s->file && s->file[0]) {
        if (strlen(s->file) >= sizeof(file_path)) {
            errno = ENAMETOOLONG;
            return WR_ERR;
        }
        fd = open_log_file(s->file, &st);
        if (fd < 0)
            return WR_ERR;
    }
    pthread_mutex_lock(&log_lock);
    if (fd >= 0) {
        take_file(fd, &st);
    } else if (file.fd >= 0) {
        close(file.fd);
        file.fd = -1;
    }
    file.on = fd >= 0;
    file.level = s->file_level;
    file.format = s->file_format;
    snprintf(file_path, sizeof(file_path), "%s", fd >= 0 ? s->file : "");
    rot_size = s->rotation_size;
    rot_count = s->rotation_count;
    rot_date = s->rotation_date;
    rot_next = log_date_next(&rot_date, time(NULL));
    console.on = s->console;
    console.level = s->console_level;
    console.format = s->console_format;
    for (size_t i = 0; i < LOG_NCAT; i++)
        cat_level[i] = s->level[i];
    update_gates();
    pthread_mutex_unlock(&log_lock);
    return WR_OK;
}

/* ---- formatting */

/* Appends s as the inside of a JSON string: quotes, backslashes and
 * control characters escaped, invalid UTF-8 as U+FFFD. Stops before
 * overflowing dst (cap bytes from *n). */
static void
json_escape(char *dst, size_t cap, size_t *n, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;

    while (*p) {
        char esc[8];
        const char *put = esc;
        size_t k = 1, len;

        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = 0;
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else if (*p < 0x80) {
            esc[0] = (char)*p;
            esc[1] = 0;
        } else {
            k = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
            if (strnlen((const char *)p, k) == k &&
                bytes_is_utf8((struct bytes){p, k})) {
                memcpy(esc, p, k);
                esc[k] = 0;
            } else {
                put = "\xEF\xBF\xBD"; /* U+FFFD */
                k = 1;
            }
        }
        len = strlen(put);
        if (*n + len >= cap)
            return;
        memcpy(dst + *n, put, len);
        *n += len;
        p += k;
    }
}

/* "2026-12-06 21:30:00.123 [info] text\n" into line. Returns its length. */
static size_t
format_plain(char *line, size_t cap, const struct timespec *ts,
             enum log_level level, const char *text)
{
    struct tm tm;
    size_t n;
    int k;

    gmtime_r(&ts->tv_sec, &tm);
    n = strftime(line, cap, "%Y-%m-%d %H:%M:%S", &tm);
    k = snprintf(line + n, cap - n, ".%03ld [%s] %s", ts->tv_nsec / 1000000,
                 level_names[level], text);
    if (k > 0)
        n += WR_MIN((size_t)k, cap - n - 2);
    line[n++] = '\n';
    return n;
}

/* One JSON object and "\n" into line. Returns its length. */
static size_t
format_json(char *line, size_t cap, const struct timespec *ts,
            enum log_category cat, enum log_level level, const char *text)
{
    struct tm tm;
    size_t n;
    int k;

    gmtime_r(&ts->tv_sec, &tm);
    n = strftime(line, cap, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, cap - n,
                 ".%03ld+00:00\",\"level\":\"%s\",\"msg\":\"",
                 ts->tv_nsec / 1000000, level_names[level]);
    n += (size_t)k;
    /* Room kept for the closing fields. */
    json_escape(line, cap - 96, &n, text);
    k = snprintf(line + n, cap - n, "\",\"pid\":%ld%s%s%s}\n", (long)getpid(),
                 cat_domains[cat] ? ",\"domain\":\"" : "",
                 cat_domains[cat] ? cat_domains[cat] : "",
                 cat_domains[cat] ? "\"" : "");
    return n + (size_t)k;
}

/* Writes one line to o in its format, rotating a full file. Assumes
 * log_lock held. */
static void
emit(struct log_out *o, const struct timespec *ts, enum log_category cat,
     enum log_level level, const char *text)
{
    char line[LINE_MAX_TEXT * 6 + 256];
    size_t n;
    ssize_t w;

    if (!o->on || (int)level > o->level)
        return;
    if (o->format == LOG_FMT_JSON)
        n = format_json(line, sizeof(line), ts, cat, level, text);
    else
        n = format_plain(line, sizeof(line), ts, level, text);
    if (o == &file) {
        ensure_file_locked();
        if ((rot_size && file_size > 0 && file_size + n > rot_size) ||
            (rot_next && ts->tv_sec >= rot_next)) {
            rotate_locked();
            rot_next = log_date_next(&rot_date, ts->tv_sec);
        }
    }
    /* One write per line; a short write to a log is not worth a retry. */
    w = write(o->fd, line, n);
    if (o == &file && w > 0)
        file_size += (uint64_t)w;
}

static void
log_vcmsg(enum log_category cat, enum log_level level, const char *fmt,
          va_list ap)
{
    char text[LINE_MAX_TEXT];
    struct timespec ts;
    int saved = errno;

    if ((int)level > cat_gate[cat])
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    vsnprintf(text, sizeof(text), fmt, ap);
    pthread_mutex_lock(&log_lock);
    emit(&console, &ts, cat, level, text);
    emit(&file, &ts, cat, level, text);
    pthread_mutex_unlock(&log_lock);
    errno = saved;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    log_vcmsg(LOG_CAT_DEFAULT, level, fmt, ap);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vcmsg(LOG_CAT_DEFAULT, level, fmt, ap);
    va_end(ap);
}

void
log_cmsg(enum log_category cat, enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vcmsg(cat, level, fmt, ap);
    va_end(ap);
}

void
log_sys(enum log_level level, const char *file_name, int line, const char *func,
        const char *fmt, ...)
{
    char text[1024];
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_msg(level, "%s:%d:%s: %s: %s", file_name, line, func, text,
            strerror(saved));
    errno = saved;
}
