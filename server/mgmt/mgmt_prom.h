/*
 * mgmt_prom.h: the Prometheus text exposition format's lexical parts
 * (mgmt_prom.c), kept apart from the management API's private header so
 * that its unit test (test/unit/test_prom.c) needs nothing but base/.
 */
#ifndef WARREN_SERVER_MGMT_PROM_H
#define WARREN_SERVER_MGMT_PROM_H

#include "base/base.h"

/* "# TYPE prefix+name type" and "# HELP prefix+name help" lines. */
void prom_family(struct buf *b, const char *prefix, const char *name,
                 const char *type, const char *help);
/* A label value, escaped (\\, \", \n; the bytes above 0x7f of a value
 * that is not valid UTF-8 become U+FFFD). */
void prom_escape(struct buf *b, const void *s, size_t n);
/* A sample value: integers below 2^53 exactly, NaN, +Inf, -Inf, others
 * as %.17g. */
void prom_value(struct buf *b, double v);
void prom_u64(struct buf *b, uint64_t v);

#endif
