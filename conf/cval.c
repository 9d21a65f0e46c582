/*
 * cval: parsers and printers for single config values (see cval.h).
 *
 * Every parser reads a borrowed view, never past v.len, and never needs a
 * NUL: the config text may hold any bytes. Numbers are parsed by hand, not
 * with strtoull/strtod, to refuse signs, spaces, hex and exponents, and to
 * stay independent of the C locale. The printers emit exactly the syntax
 * the parsers accept, so `warren --print-config` output parses back to the
 * same values (Ensures: parse(fmt(x)) == x for every x a parser returned).
 *
 * Units, checked against RabbitMQ 3.10's sources:
 *  - information units (rabbit_resource_monitor_misc:parse_information_unit,
 *    used for memory and disk limits): a number directly followed by
 *    kB/MB/GB (powers of 1000), kiB/MiB/GiB (powers of 1024), or a bare
 *    k/M/G, which 3.10 read as powers of 1024 and 3.13+ reads as powers of
 *    1000. We follow the current meaning (1000) and also take T, P, Ti, Pi.
 *  - cuttlefish `bytesize` (frame_max): KB/MB/GB, all powers of 1024.
 */
#include "conf/cval.h"

#include <arpa/inet.h>
#include <stdio.h>

#define QUOTE_MAX 60 /* value bytes shown in a message */

static const char *
fmt_err(char *err, size_t errlen, struct bytes v, const char *what)
{
    char q[QUOTE_MAX * 4 + 8];

    cval_quote(v, q, sizeof(q));
    snprintf(err, errlen, "%s %s", q, what);
    return err;
}

static bool
is_digit(uint8_t ch)
{
    return ch >= '0' && ch <= '9';
}

/* Number of leading decimal digits in v. */
static size_t
digits_len(struct bytes v)
{
    size_t n = 0;

    while (n < v.len && is_digit(v.ptr[n]))
        n++;
    return n;
}

/* Accumulates digits [0, n) of v; returns false on uint64 overflow. */
static bool
digits_value(struct bytes v, size_t n, uint64_t *out)
{
    uint64_t u = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned d = v.ptr[i] - '0';
        if (u > (UINT64_MAX - d) / 10)
            return false;
        u = u * 10 + d;
    }
    *out = u;
    return true;
}

int
cval_uint(struct bytes v, uint64_t *out, char *err, size_t errlen)
{
    size_t n = digits_len(v);

    if (v.len > 0 && v.ptr[0] == '-' && v.len > 1 && is_digit(v.ptr[1])) {
        fmt_err(err, errlen, v, "is negative");
        return WR_ERR;
    }
    if (n == 0 || n != v.len) {
        fmt_err(err, errlen, v, "is not an integer");
        return WR_ERR;
    }
    if (!digits_value(v, n, out)) {
        fmt_err(err, errlen, v, "is out of range");
        return WR_ERR;
    }
    return WR_OK;
}

/* Case-insensitive comparison of a unit suffix with a lower-case name. */
static bool
unit_is(struct bytes u, const char *lower)
{
    size_t n = strlen(lower);

    if (u.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = u.ptr[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch - 'A' + 'a');
        if (ch != (uint8_t)lower[i])
            return false;
    }
    return true;
}

struct unit {
    const char *name; /* lower case, as matched */
    uint64_t mult;
};

#define KI ((uint64_t)1024)
static const struct unit info_units[] = {
    {"k", 1000},
    {"kb", 1000},
    {"m", 1000000},
    {"mb", 1000000},
    {"g", 1000000000},
    {"gb", 1000000000},
    {"t", 1000000000000},
    {"tb", 1000000000000},
    {"p", 1000000000000000},
    {"pb", 1000000000000000},
    {"ki", KI},
    {"kib", KI},
    {"mi", KI *KI},
    {"mib", KI *KI},
    {"gi", KI *KI *KI},
    {"gib", KI *KI *KI},
    {"ti", KI *KI *KI *KI},
    {"tib", KI *KI *KI *KI},
    {"pi", KI *KI *KI *KI *KI},
    {"pib", KI *KI *KI *KI *KI},
};

static const struct unit bytesize_units[] = {
    {"kb", KI},
    {"mb", KI *KI},
    {"gb", KI *KI *KI},
};

/* Digits then an optional unit from units[]; shared by both size kinds. */
static int
parse_sized(struct bytes v, const struct unit *units, size_t nunits,
            uint64_t *out, char *err, size_t errlen)
{
    size_t n = digits_len(v);
    struct bytes suffix = {v.ptr + n, v.len - n};
    uint64_t num, mult = 1;

    if (n == 0) {
        fmt_err(err, errlen, v, "is not a size");
        return WR_ERR;
    }
    if (suffix.len > 0) {
        size_t i;
        for (i = 0; i < nunits && !unit_is(suffix, units[i].name); i++)
            ;
        if (i == nunits) {
            fmt_err(err, errlen, v, "has an unknown unit");
            return WR_ERR;
        }
        mult = units[i].mult;
    }
    if (!digits_value(v, n, &num) || __builtin_mul_overflow(num, mult, out)) {
        fmt_err(err, errlen, v, "is out of range");
        return WR_ERR;
    }
    return WR_OK;
}

int
cval_size(struct bytes v, uint64_t *out, char *err, size_t errlen)
{
    return parse_sized(v, info_units, WR_ARRAY_LEN(info_units), out, err,
                       errlen);
}

int
cval_bytesize(struct bytes v, uint64_t *out, char *err, size_t errlen)
{
    return parse_sized(v, bytesize_units, WR_ARRAY_LEN(bytesize_units), out,
                       err, errlen);
}

int
cval_double(struct bytes v, double *out, char *err, size_t errlen)
{
    size_t ni = digits_len(v), nf = 0;
    uint64_t whole, scale = 1;

    if (ni < v.len && v.ptr[ni] == '.') {
        struct bytes frac = {v.ptr + ni + 1, v.len - ni - 1};
        nf = digits_len(frac);
        if (nf == 0 || nf != frac.len)
            goto bad;
    } else if (ni != v.len) {
        goto bad;
    }
    if (ni == 0)
        goto bad;
    if (ni > 6 || nf > 9) {
        fmt_err(err, errlen, v, "has too many digits (at most 6.9)");
        return WR_ERR;
    }
    /* The decimal is whole / 10^nf with whole < 10^15 < 2^53: both exact
     * as doubles, so one division gives the correctly rounded value. */
    whole = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] == '.')
            continue;
        whole = whole * 10 + (unsigned)(v.ptr[i] - '0');
    }
    for (size_t i = 0; i < nf; i++)
        scale *= 10;
    *out = (double)whole / (double)scale;
    return WR_OK;
bad:
    fmt_err(err, errlen, v, "is not a decimal number");
    return WR_ERR;
}

int
cval_bool(struct bytes v, bool *out, char *err, size_t errlen)
{
    if (bytes_eq_str(v, "true")) {
        *out = true;
        return WR_OK;
    }
    if (bytes_eq_str(v, "false")) {
        *out = false;
        return WR_OK;
    }
    fmt_err(err, errlen, v, "is not a boolean");
    return WR_ERR;
}

/* Returns true when v is an IPv4 or IPv6 literal. */
static bool
is_ip(struct bytes v)
{
    char s[64];
    uint8_t addr[16];

    if (v.len == 0 || v.len >= sizeof(s))
        return false;
    memcpy(s, v.ptr, v.len);
    s[v.len] = '\0';
    if (memchr(s, '\0', v.len) != NULL)
        return false;
    return inet_pton(AF_INET, s, addr) == 1 ||
           inet_pton(AF_INET6, s, addr) == 1;
}

int
cval_ip(struct bytes v, char *dst, size_t cap, char *err, size_t errlen)
{
    if (!is_ip(v) || v.len >= cap) {
        fmt_err(err, errlen, v, "is not an IPv4 or IPv6 address");
        return WR_ERR;
    }
    memcpy(dst, v.ptr, v.len);
    dst[v.len] = '\0';
    return WR_OK;
}

/* Parses a port, 0..65535, from all of p. */
static int
parse_port(struct bytes v, struct bytes p, uint16_t *out, char *err,
           size_t errlen)
{
    char q[QUOTE_MAX * 4 + 8], qp[32];
    uint64_t u;

    cval_quote(v, q, sizeof(q));
    if (p.len == 0 || digits_len(p) != p.len) {
        snprintf(err, errlen, "%s has no port number after the colon", q);
        return WR_ERR;
    }
    if (!digits_value(p, p.len, &u) || u > 65535) {
        cval_quote(p, qp, sizeof(qp));
        snprintf(err, errlen, "%s: port %s is out of range 0..65535", q, qp);
        return WR_ERR;
    }
    *out = (uint16_t)u;
    return WR_OK;
}

/* The last colon in v, or v.len when there is none. */
static size_t
last_colon(struct bytes v)
{
    size_t i = v.len;

    while (i > 0 && v.ptr[i - 1] != ':')
        i--;
    return i == 0 ? v.len : i - 1;
}

int
cval_listener(struct bytes v, struct wr_listener *out, char *err, size_t errlen)
{
    struct bytes host, port;
    size_t colon;
    uint16_t p;

    if (v.len > 0 && digits_len(v) == v.len) {
        host = BYTES_NULL; /* a bare port: all interfaces */
        port = v;
    } else if (v.len > 0 && v.ptr[0] == '[') {
        const uint8_t *close = memchr(v.ptr, ']', v.len);
        size_t at = close ? (size_t)(close - v.ptr) : v.len;
        if (at + 1 >= v.len || v.ptr[at + 1] != ':') {
            fmt_err(err, errlen, v, "is not [IPv6]:PORT");
            return WR_ERR;
        }
        host = (struct bytes){v.ptr + 1, at - 1};
        port = (struct bytes){v.ptr + at + 2, v.len - at - 2};
        if (host.len == 0) {
            fmt_err(err, errlen, v, "has no address between [ and ]");
            return WR_ERR;
        }
    } else {
        colon = last_colon(v);
        if (colon == v.len) {
            fmt_err(err, errlen, v, "is not PORT or IP:PORT");
            return WR_ERR;
        }
        host = (struct bytes){v.ptr, colon};
        port = (struct bytes){v.ptr + colon + 1, v.len - colon - 1};
    }
    if (parse_port(v, port, &p, err, errlen) != WR_OK)
        return WR_ERR;
    if (host.len > 0 && (!is_ip(host) || host.len >= sizeof(out->host))) {
        char q[QUOTE_MAX * 4 + 8], qh[QUOTE_MAX * 4 + 8];
        cval_quote(v, q, sizeof(q));
        cval_quote(host, qh, sizeof(qh));
        snprintf(err, errlen, "%s: %s is not an IPv4 or IPv6 address", q, qh);
        return WR_ERR;
    }
    memcpy(out->host, host.ptr ? (const char *)host.ptr : "", host.len);
    out->host[host.len] = '\0';
    out->port = p;
    return WR_OK;
}

void
cval_quote(struct bytes v, char *dst, size_t cap)
{
    bool utf8 = bytes_is_utf8(v);
    size_t n = WR_MIN(v.len, (size_t)QUOTE_MAX), o = 0;

    if (cap < 8) {
        if (cap > 0)
            dst[0] = '\0';
        return;
    }
    /* Cut at a character boundary so that the message stays UTF-8. */
    while (utf8 && n < v.len && n > 0 && (v.ptr[n] & 0xC0) == 0x80)
        n--;
    dst[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        uint8_t ch = v.ptr[i];
        if (ch == '"' || ch == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)ch;
        } else if ((ch >= 0x20 && ch < 0x7F) || (ch >= 0x80 && utf8)) {
            dst[o++] = (char)ch;
        } else {
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", ch);
        }
    }
    dst[o++] = '"';
    if (n < v.len && o + 4 <= cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

void
cval_fmt_size(uint64_t v, char *dst, size_t cap)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"PiB", KI * KI * KI * KI * KI},
        {"TiB", KI * KI * KI * KI},
        {"GiB", KI * KI * KI},
        {"MiB", KI * KI},
        {"KiB", KI},
        {"PB", 1000000000000000},
        {"TB", 1000000000000},
        {"GB", 1000000000},
        {"MB", 1000000},
        {"kB", 1000},
    };
    size_t best = WR_ARRAY_LEN(units);

    for (size_t i = 0; v != 0 && i < WR_ARRAY_LEN(units); i++) {
        if (v % units[i].mult == 0 &&
            (best == WR_ARRAY_LEN(units) ||
             v / units[i].mult < v / units[best].mult))
            best = i;
    }
    if (best == WR_ARRAY_LEN(units))
        snprintf(dst, cap, "%llu", (unsigned long long)v);
    else
        snprintf(dst, cap, "%llu%s", (unsigned long long)(v / units[best].mult),
                 units[best].name);
}

void
cval_fmt_double(double v, char *dst, size_t cap)
{
    uint64_t scaled, whole, frac;
    char fbuf[16];
    size_t n;

    if (!(v >= 0 && v < 1e6)) { /* not from cval_double(); also NaN */
        snprintf(dst, cap, "%g", v);
        return;
    }
    /* Ensures: cval_double() of the output gives v back, for any v that
     * cval_double() produced (see its comment on exactness). */
    scaled = (uint64_t)(v * 1e9 + 0.5);
    whole = scaled / 1000000000;
    frac = scaled % 1000000000;
    if (frac == 0) {
        snprintf(dst, cap, "%llu", (unsigned long long)whole);
        return;
    }
    snprintf(fbuf, sizeof(fbuf), "%09llu", (unsigned long long)frac);
    n = strlen(fbuf);
    while (n > 1 && fbuf[n - 1] == '0')
        fbuf[--n] = '\0';
    snprintf(dst, cap, "%llu.%s", (unsigned long long)whole, fbuf);
}
