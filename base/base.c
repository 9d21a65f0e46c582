/*
 * base.c: assertions, allocation, cursors, buffers, clocks (logging is
 * base/log.c).
 */
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

bool (*wr_alloc_hook)(size_t n);

void
wr_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    log_err("assertion failed: %s at %s:%d in %s()", expr, file, line, func);
    abort();
}

/* ---- allocation */

static void *
oom(size_t n)
{
    log_err("out of memory allocating %zu bytes", n);
    abort();
}

static void
check_hook(size_t n)
{
    if (wr_alloc_hook && !wr_alloc_hook(n))
        oom(n);
}

void *
xmalloc(size_t n)
{
    void *p;

    check_hook(n);
    p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *
xcalloc(size_t n, size_t size)
{
    void *p;

    check_hook(n * size);
    p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *
xrealloc(void *p, size_t n)
{
    void *q;

    check_hook(n);
    q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *
xstrdup(const char *s)
{
    return xmemdup(s, strlen(s) + 1);
}

void *
xmemdup(const void *p, size_t n)
{
    void *q = xmalloc(n);

    if (n)
        memcpy(q, p, n);
    return q;
}

char *
xstrndup(const void *p, size_t n)
{
    char *q = xmalloc(n + 1);

    if (n)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

/* ---- UTF-8 */

bool
bytes_is_utf8(struct bytes b)
{
    const uint8_t *p = b.ptr, *end = b.ptr + b.len;

    /* Names are nearly always ASCII: skip 8 bytes at a time while no
     * byte has its high bit set. */
    while (end - p >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
        p += 8;
    }
    while (p < end) {
        uint8_t c = *p;
        uint32_t cp;
        int n;

        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (end - p <= n)
            return false;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* ---- cursor */

bool
rd_u8(struct cursor *c, uint8_t *v)
{
    if (c->left < 1)
        return false;
    *v = c->p[0];
    c->p++;
    c->left--;
    return true;
}

bool
rd_u16(struct cursor *c, uint16_t *v)
{
    if (c->left < 2)
        return false;
    *v = be16_load(c->p);
    c->p += 2;
    c->left -= 2;
    return true;
}

bool
rd_u32(struct cursor *c, uint32_t *v)
{
    if (c->left < 4)
        return false;
    *v = be32_load(c->p);
    c->p += 4;
    c->left -= 4;
    return true;
}

bool
rd_u64(struct cursor *c, uint64_t *v)
{
    if (c->left < 8)
        return false;
    *v = be64_load(c->p);
    c->p += 8;
    c->left -= 8;
    return true;
}

bool
rd_bytes(struct cursor *c, size_t n, struct bytes *v)
{
    if (c->left < n)
        return false;
    v->ptr = c->p;
    v->len = n;
    c->p += n;
    c->left -= n;
    return true;
}

bool
rd_shortstr(struct cursor *c, struct bytes *v)
{
    uint8_t n;

    return rd_u8(c, &n) && rd_bytes(c, n, v);
}

bool
rd_longstr(struct cursor *c, struct bytes *v)
{
    uint32_t n;

    return rd_u32(c, &n) && rd_bytes(c, n, v);
}

/* ---- buffers */

void
buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
buf_fini(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *
buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;

        while (cap - b->len < n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(buf_reserve(b, n), p, n);
    b->len += n;
}

void
buf_put_u8(struct buf *b, uint8_t v)
{
    *buf_reserve(b, 1) = v;
    b->len++;
}

void
buf_put_u16(struct buf *b, uint16_t v)
{
    be16_store(buf_reserve(b, 2), v);
    b->len += 2;
}

void
buf_put_u32(struct buf *b, uint32_t v)
{
    be32_store(buf_reserve(b, 4), v);
    b->len += 4;
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
    be64_store(buf_reserve(b, 8), v);
    b->len += 8;
}

void
buf_put_shortstr(struct buf *b, struct bytes s)
{
    WR_ASSERT(s.len <= 255);
    buf_put_u8(b, (uint8_t)s.len);
    buf_append(b, s.ptr, s.len);
}

void
buf_put_longstr(struct buf *b, struct bytes s)
{
    WR_ASSERT(s.len <= UINT32_MAX);
    buf_put_u32(b, (uint32_t)s.len);
    buf_append(b, s.ptr, s.len);
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
buf_consume(struct buf *b, size_t n)
{
    WR_ASSERT(n <= b->len);
    if (n < b->len)
        memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ---- base64 */

static int
b64_value(uint8_t ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

void
b64_encode(const uint8_t *p, size_t n, struct buf *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;

        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        buf_put_u8(out, (uint8_t)tbl[v >> 18 & 63]);
        buf_put_u8(out, (uint8_t)tbl[v >> 12 & 63]);
        buf_put_u8(out, left > 1 ? (uint8_t)tbl[v >> 6 & 63] : '=');
        buf_put_u8(out, left > 2 ? (uint8_t)tbl[v & 63] : '=');
    }
}

bool
b64_decode(const char *s, size_t n, bool strict, struct buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;

    if (strict && n % 4 != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        int v;

        if (s[i] == '=') {
            pad++;
            continue;
        }
        if (pad || (v = b64_value((uint8_t)s[i])) < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_put_u8(out, (uint8_t)(acc >> bits));
        }
    }
    return !strict || pad <= 2;
}

/* ---- Erlang's rendering of binaries (RabbitMQ's error texts) */

/* Erlang's printable Latin-1 characters (io_lib:printable_latin1_list). */
static bool
is_printable(uint8_t c)
{
    return (c >= 32 && c <= 126) || c >= 160 || (c >= 8 && c <= 13) || c == 27;
}

void
buf_put_erl_binary(struct buf *o, struct bytes s)
{
    bool printable = true;

    for (size_t i = 0; i < s.len && printable; i++)
        printable = is_printable(s.ptr[i]);
    if (s.len == 0) {
        buf_printf(o, "<<>>");
        return;
    }
    if (!printable) {
        buf_printf(o, "<<");
        for (size_t i = 0; i < s.len; i++)
            buf_printf(o, "%s%u", i ? "," : "", s.ptr[i]);
        buf_printf(o, ">>");
        return;
    }
    buf_printf(o, "<<\"");
    for (size_t i = 0; i < s.len; i++) {
        static const char esc_from[] = "\n\r\t\v\b\f\033\"\\";
        static const char esc_to[] = "nrtvbfe\"\\";
        const char *e = s.ptr[i] ? strchr(esc_from, s.ptr[i]) : NULL;
        if (e) {
            buf_put_u8(o, '\\');
            buf_put_u8(o, (uint8_t)esc_to[e - esc_from]);
        } else {
            buf_put_u8(o, s.ptr[i]);
        }
    }
    buf_printf(o, "\">>");
}

/* ---- clocks and randomness */

uint64_t
wr_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
wr_now_ms(void)
{
    return wr_now_us() / 1000u;
}

uint64_t
wr_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
wr_random(void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n > 0) {
        ssize_t k = getrandom(p, n, 0);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            log_syserr("getrandom");
            abort();
        }
        p += k;
        n -= (size_t)k;
    }
}
