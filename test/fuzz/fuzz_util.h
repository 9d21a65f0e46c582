/*
 * fuzz_util.h: helpers shared by the codec fuzz targets.
 *
 * FUZZ_CHECK is the targets' assertion: a failed invariant aborts, which
 * libFuzzer and the replay driver both report as a crash with the input.
 * codec_fields_eq compares two decoded structs field by field through the
 * generated description tables, independently of the generated decoder.
 */
#ifndef WARREN_FUZZ_UTIL_H
#define WARREN_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "amqp/amqp_methods.gen.h"

#define FUZZ_CHECK(x)                                                        \
    do {                                                                     \
        if (!(x)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #x);                                                     \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline bool
codec_fields_eq(const void *a, const void *b,
                const struct amqp_field_info *fields, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        const char *x = (const char *)a + fields[i].offset;
        const char *y = (const char *)b + fields[i].offset;

        switch (fields[i].type) {
        case AMQP_T_BIT:
            if (*(const bool *)x != *(const bool *)y)
                return false;
            break;
        case AMQP_T_OCTET:
            if (*(const uint8_t *)x != *(const uint8_t *)y)
                return false;
            break;
        case AMQP_T_SHORT:
            if (*(const uint16_t *)x != *(const uint16_t *)y)
                return false;
            break;
        case AMQP_T_LONG:
            if (*(const uint32_t *)x != *(const uint32_t *)y)
                return false;
            break;
        case AMQP_T_LONGLONG:
        case AMQP_T_TIMESTAMP:
            if (*(const uint64_t *)x != *(const uint64_t *)y)
                return false;
            break;
        default:
            if (!bytes_eq(*(const struct bytes *)x, *(const struct bytes *)y))
                return false;
            break;
        }
    }
    return true;
}

static inline bool
codec_methods_eq(const struct amqp_method *a, const struct amqp_method *b)
{
    const struct amqp_method_info *mi = amqp_method_info(a->id);

    return a->id == b->id && mi != NULL &&
           codec_fields_eq(a, b, mi->fields, mi->nfields);
}

static inline bool
codec_props_eq(const struct amqp_basic_props *a,
               const struct amqp_basic_props *b)
{
    return a->flags == b->flags &&
           codec_fields_eq(a, b, amqp_basic_props_info, AMQP_BASIC_PROPS_COUNT);
}

#endif
