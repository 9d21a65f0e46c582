/*
 * cval: the scalar value parsers and printers behind conf/conf.c (private
 * to conf/). Each parser takes a borrowed view of one config value (already
 * trimmed, non-empty, UTF-8 without control characters) and returns WR_OK,
 * or WR_ERR with a short reason in err that quotes the value, e.g.
 * `"sixty" is not an integer`. Range checks against a key's min and max are
 * the caller's job; the parsers only refuse what cannot be represented.
 */
#ifndef WARREN_CONF_CVAL_H
#define WARREN_CONF_CVAL_H

#include "base/base.h"
#include "conf/conf.h"

/* Largest value of a size key: 2^53 bytes (8 PiB), so that every integer
 * bound is exact as a double in the key table. */
#define CVAL_SIZE_MAX ((uint64_t)1 << 53)

/* Decimal digits only: "0", "65535". No sign, no spaces, no units. */
int cval_uint(struct bytes v, uint64_t *out, char *err, size_t errlen);

/*
 * A byte count with an optional unit directly after the digits, as
 * RabbitMQ's information units (vm_memory_high_watermark.absolute,
 * disk_free_limit.absolute): k/kB = 1000, M/MB = 1000^2, G/GB = 1000^3,
 * T/TB = 1000^4, P/PB = 1000^5; Ki/KiB = 1024, Mi/MiB, Gi/GiB, Ti/TiB,
 * Pi/PiB = 1024^n. Units are case-insensitive. The bare letters follow
 * RabbitMQ 3.13+ (decimal; 3.10 read them as powers of 1024).
 */
int cval_size(struct bytes v, uint64_t *out, char *err, size_t errlen);

/* cuttlefish's `bytesize` (frame_max): digits with an optional KB, MB or
 * GB suffix (any case), all powers of 1024: "128KB" = 131072. */
int cval_bytesize(struct bytes v, uint64_t *out, char *err, size_t errlen);

/* A plain decimal: "0.4", "2", "1.25". At most 6 integer and 9 fraction
 * digits (so that cval_fmt_double() reproduces it exactly); no sign or
 * exponent. */
int cval_double(struct bytes v, double *out, char *err, size_t errlen);

/* "true" or "false", as RabbitMQ's {enum, [true, false]}. */
int cval_bool(struct bytes v, bool *out, char *err, size_t errlen);

/* An IPv4 or IPv6 literal (no brackets) copied into dst[cap]. */
int cval_ip(struct bytes v, char *dst, size_t cap, char *err, size_t errlen);

/* "PORT", ":PORT", "IP:PORT" (split at the last colon, so "::1:5672"
 * works) or "[IPv6]:PORT" into out->host and out->port; out->name is not
 * touched. On error out is unchanged. */
int cval_listener(struct bytes v, struct wr_listener *out, char *err,
                  size_t errlen);

/* Writes v to dst[cap] in double quotes for an error message, escaping
 * quotes, backslashes and bytes outside printable ASCII as \xNN, and
 * cutting it to about 60 bytes with "..." after it. */
void cval_quote(struct bytes v, char *dst, size_t cap);

/* Prints a size the shortest exact way cval_size() reads back: "64MiB",
 * "50MB", "0", "1234". */
void cval_fmt_size(uint64_t v, char *dst, size_t cap);

/* Prints a double as cval_double() reads it back: "0.4", "2". */
void cval_fmt_double(double v, char *dst, size_t cap);

#endif
