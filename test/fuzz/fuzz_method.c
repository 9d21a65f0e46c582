/*
 * fuzz_method: the generated method decoder (and the content property
 * decoder, on the same input) against hostile bytes.
 *
 * Invariants checked: decoding never reads outside the input (ASan);
 * a decoded method re-encodes to the same length (only unused bits of bit
 * octets may differ), decodes again to equal fields, and re-encodes to the
 * same bytes; UNKNOWN is given exactly for ids without a name; the same
 * holds for property lists (a zero continuation word is dropped).
 */
#include "fuzz_util.h"

static void
method_round_trip(const uint8_t *data, size_t size)
{
    struct amqp_method m, d;
    struct buf b1, b2;
    const char *why = NULL;
    enum amqp_decode_status st = amqp_method_decode(data, size, &m, &why);

    if (size >= 4)
        FUZZ_CHECK((st == AMQP_DECODE_UNKNOWN) ==
                   (amqp_method_name(m.id) == NULL));
    if (st != AMQP_DECODE_OK) {
        FUZZ_CHECK(why != NULL);
        return;
    }
    buf_init(&b1);
    buf_init(&b2);
    FUZZ_CHECK(amqp_method_encode(&m, &b1) == size);
    FUZZ_CHECK(amqp_method_decode(b1.data, b1.len, &d, NULL) == AMQP_DECODE_OK);
    FUZZ_CHECK(codec_methods_eq(&m, &d));
    amqp_method_encode(&d, &b2);
    FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    buf_fini(&b1);
    buf_fini(&b2);
}

static void
props_round_trip(const uint8_t *data, size_t size)
{
    struct amqp_basic_props p, d;
    struct buf b1, b2;
    const char *why = NULL;

    if (amqp_basic_props_decode(data, size, &p, &why) != AMQP_DECODE_OK) {
        FUZZ_CHECK(why != NULL);
        return;
    }
    buf_init(&b1);
    buf_init(&b2);
    amqp_basic_props_encode(&p, &b1);
    /* equal, or 2 shorter when a zero continuation word was dropped */
    FUZZ_CHECK(b1.len == size || (b1.len + 2 == size && (data[1] & 1)));
    FUZZ_CHECK(amqp_basic_props_decode(b1.data, b1.len, &d, NULL) ==
               AMQP_DECODE_OK);
    FUZZ_CHECK(codec_props_eq(&p, &d));
    amqp_basic_props_encode(&d, &b2);
    FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    buf_fini(&b1);
    buf_fini(&b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    method_round_trip(data, size);
    props_round_trip(data, size);
    return 0;
}
