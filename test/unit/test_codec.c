/*
 * Unit tests for the generated AMQP method and content property codec
 * (amqp/amqp_methods.gen.c).
 *
 * The round-trip tests fill every method generically through the field
 * description table (amqp_method_info), so they cover each method the
 * generator emits without repeating the spec here; the known-answer tests
 * pin the wire layout against bytes written by hand from the 0-9-1 spec,
 * and the pika tests against bytes another implementation wrote.
 */
#include <dirent.h>
#include <stdlib.h>

#include "amqp/ftable.h"
#include "amqp/amqp_methods.gen.h"
#include "test/harness/t.h"

#define ID_OF(id, member, name) id,
static const uint32_t all_ids[] = {AMQP_METHOD_LIST(ID_OF)};
#undef ID_OF

/* ---- generic field access through the description tables */

static void *
field_ptr(void *base, const struct amqp_field_info *f)
{
    return (char *)base + f->offset;
}

static const void *
field_cptr(const void *base, const struct amqp_field_info *f)
{
    return (const char *)base + f->offset;
}

/* Storage for the strings the fill patterns point at. */
static uint8_t long_bytes[70000];
static uint8_t short_bytes[255];
static struct buf all_types_tbl;

/* A table body holding one value of every RabbitMQ type letter. */
static struct bytes
every_type_table(void)
{
    struct buf *b = &all_types_tbl;
    struct fvalue v;
    size_t m, inner;

    if (b->len)
        return bytes_of(b->data + 4, b->len - 4);
    m = ftable_begin(b);
    fenc_bool(b, "t", true);
    v.type = 'b', v.v.i = -5, fenc_value(b, "b", &v);
    v.type = 'B', v.v.u = 250, fenc_value(b, "B", &v);
    v.type = 's', v.v.i = -300, fenc_value(b, "s", &v);
    v.type = 'u', v.v.u = 60000, fenc_value(b, "u", &v);
    fenc_i32(b, "I", -70000);
    v.type = 'i', v.v.u = 4000000000u, fenc_value(b, "i", &v);
    fenc_int(b, "l", -5000000000LL);
    v.type = 'L', v.v.i = 7, fenc_value(b, "L", &v);
    v.type = 'f', v.v.f = 1.5f, fenc_value(b, "f", &v);
    v.type = 'd', v.v.d = -2.25, fenc_value(b, "d", &v);
    v.type = 'D', v.v.dec.scale = 2, v.v.dec.value = 314;
    fenc_value(b, "D", &v);
    fenc_cstr(b, "S", "hello");
    fenc_key(b, "A");
    buf_put_u8(b, 'A');
    inner = farray_begin(b);
    v.type = 'I', v.v.i = 1, fenc_value_only(b, &v);
    v.type = 'S', v.v.str = BYTES_LIT("x"), fenc_value_only(b, &v);
    farray_end(b, inner);
    fenc_timestamp(b, "T", 1700000000);
    fenc_key(b, "F");
    buf_put_u8(b, 'F');
    inner = ftable_begin(b);
    fenc_cstr(b, "k", "v");
    ftable_end(b, inner);
    v.type = 'V', fenc_value(b, "V", &v);
    v.type = 'x', v.v.str = BYTES_LIT("\x00\x01"), fenc_value(b, "x", &v);
    ftable_end(b, m);
    T_ASSERT(ftable_validate(bytes_of(b->data + 4, b->len - 4), NULL) == WR_OK);
    return bytes_of(b->data + 4, b->len - 4);
}

enum pattern {
    PAT_MAX,   /* all-ones numbers and bits, 255-byte shortstrs, big longstr */
    PAT_ZERO,  /* zeros, false, empty strings and tables */
    PAT_MIXED, /* distinct values; bit i set when i is even */
    PAT_ODD,   /* distinct values; bit i set when i is odd */
    PAT_COUNT
};

/* Fills one field according to pattern p; i is the field's index. */
static void
fill_field(void *base, const struct amqp_field_info *f, enum pattern p,
           unsigned i)
{
    void *ptr = field_ptr(base, f);
    bool on = p == PAT_MAX || (p == PAT_MIXED && i % 2 == 0) ||
              (p == PAT_ODD && i % 2 == 1);
    uint64_t n = p == PAT_MAX    ? UINT64_MAX
                 : p == PAT_ZERO ? 0
                                 : 0x0102030405060708ull * (i + 1);
    size_t slen = p == PAT_MAX    ? 255
                  : p == PAT_ZERO ? 0
                                  : (i * 7 + (p == PAT_ODD)) % 40 + 1;

    switch (f->type) {
    case AMQP_T_BIT:
        *(bool *)ptr = on;
        break;
    case AMQP_T_OCTET:
        *(uint8_t *)ptr = (uint8_t)n;
        break;
    case AMQP_T_SHORT:
        *(uint16_t *)ptr = (uint16_t)n;
        break;
    case AMQP_T_LONG:
        *(uint32_t *)ptr = (uint32_t)n;
        break;
    case AMQP_T_LONGLONG:
    case AMQP_T_TIMESTAMP:
        *(uint64_t *)ptr = n;
        break;
    case AMQP_T_SHORTSTR:
        *(struct bytes *)ptr = p == PAT_MAX ? bytes_of(short_bytes, 255)
                                            : bytes_of(short_bytes + i, slen);
        break;
    case AMQP_T_LONGSTR:
        *(struct bytes *)ptr = p == PAT_MAX
                                   ? bytes_of(long_bytes, sizeof(long_bytes))
                                   : bytes_of(long_bytes + i, slen);
        break;
    case AMQP_T_TABLE:
        *(struct bytes *)ptr =
            p == PAT_ZERO ? bytes_of(long_bytes, 0) : every_type_table();
        break;
    default:
        T_ASSERT(!"unknown field type");
    }
}

static void
init_bytes(void)
{
    size_t i;

    for (i = 0; i < sizeof(long_bytes); i++)
        long_bytes[i] = (uint8_t)(i * 31 + 7);
    for (i = 0; i < sizeof(short_bytes); i++)
        short_bytes[i] = (uint8_t)('a' + i % 26);
}

static void
fill_method(struct amqp_method *m, uint32_t id, enum pattern p)
{
    const struct amqp_method_info *mi = amqp_method_info(id);
    unsigned i;

    T_ASSERT(mi != NULL);
    memset(m, 0, sizeof(*m));
    m->id = id;
    for (i = 0; i < mi->nfields; i++)
        fill_field(m, &mi->fields[i], p, i);
}

/* Field-by-field equality; fails the case naming the first difference. */
static void
expect_fields_eq(const void *a, const void *b,
                 const struct amqp_field_info *fields, unsigned n,
                 const char *what)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        const struct amqp_field_info *f = &fields[i];
        const void *x = field_cptr(a, f);
        const void *y = field_cptr(b, f);
        bool eq;

        switch (f->type) {
        case AMQP_T_BIT:
            eq = *(const bool *)x == *(const bool *)y;
            break;
        case AMQP_T_OCTET:
            eq = *(const uint8_t *)x == *(const uint8_t *)y;
            break;
        case AMQP_T_SHORT:
            eq = *(const uint16_t *)x == *(const uint16_t *)y;
            break;
        case AMQP_T_LONG:
            eq = *(const uint32_t *)x == *(const uint32_t *)y;
            break;
        case AMQP_T_LONGLONG:
        case AMQP_T_TIMESTAMP:
            eq = *(const uint64_t *)x == *(const uint64_t *)y;
            break;
        default:
            eq = bytes_eq(*(const struct bytes *)x, *(const struct bytes *)y);
            break;
        }
        if (!eq)
            t_fail(__FILE__, __LINE__, "%s: field %s differs", what, f->name);
    }
}

static void
expect_methods_eq(const struct amqp_method *a, const struct amqp_method *b)
{
    const struct amqp_method_info *mi = amqp_method_info(a->id);

    T_EQ_INT(a->id, b->id);
    T_ASSERT(mi != NULL);
    expect_fields_eq(a, b, mi->fields, mi->nfields, mi->name);
}

/* An exact-size heap copy of an input, so that ASan sees any overread.
 * Decoded views point into it: free it only after the last use. */
static uint8_t *
dup_input(const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);

    T_ASSERT(copy != NULL);
    if (len)
        memcpy(copy, p, len);
    return copy;
}

/* Decodes from a copy that is freed at once: for results without views. */
static enum amqp_decode_status
decode_copy(const uint8_t *p, size_t len, struct amqp_method *m,
            const char **why)
{
    uint8_t *copy = dup_input(p, len);
    enum amqp_decode_status st = amqp_method_decode(copy, len, m, why);

    free(copy);
    return st;
}

/* ---- methods: metadata */

T_CASE(method_list_names_info_and_content_agree)
{
#define CHECK(mid, member, name)              \
    T_EQ_STR(amqp_method_name(mid), name);    \
    T_EQ_INT(amqp_method_info(mid)->id, mid); \
    T_EQ_INT(amqp_method_has_content(mid), amqp_method_info(mid)->content);
    AMQP_METHOD_LIST(CHECK)
#undef CHECK
    T_EQ_INT(WR_ARRAY_LEN(all_ids), AMQP_METHOD_COUNT);
    T_ASSERT(amqp_method_has_content(AMQP_BASIC_PUBLISH));
    T_ASSERT(amqp_method_has_content(AMQP_BASIC_RETURN));
    T_ASSERT(amqp_method_has_content(AMQP_BASIC_DELIVER));
    T_ASSERT(amqp_method_has_content(AMQP_BASIC_GET_OK));
    T_ASSERT(!amqp_method_has_content(AMQP_BASIC_GET));
    T_ASSERT(!amqp_method_has_content(AMQP_QUEUE_DECLARE));
    T_ASSERT(amqp_method_name(AMQP_METHOD_ID(60, 41)) == NULL);
    T_ASSERT(amqp_method_info(0) == NULL);
    T_ASSERT(!amqp_method_has_content(AMQP_METHOD_ID(99, 40)));
    T_EQ_STR(amqp_method_name(AMQP_BASIC_RECOVER_ASYNC), "basic.recover-async");
    T_EQ_INT(AMQP_CLASS_CONNECTION, 10);
    T_EQ_INT(AMQP_CLASS_CHANNEL, 20);
    T_EQ_INT(AMQP_CLASS_EXCHANGE, 40);
    T_EQ_INT(AMQP_CLASS_QUEUE, 50);
    T_EQ_INT(AMQP_CLASS_BASIC, 60);
    T_EQ_INT(AMQP_CLASS_CONFIRM, 85);
    T_EQ_INT(AMQP_CLASS_TX, 90);
    T_EQ_INT(AMQP_EXCHANGE_UNBIND_OK, AMQP_METHOD_ID(40, 51));
    T_EQ_INT(AMQP_CONNECTION_BLOCKED, AMQP_METHOD_ID(10, 60));
}

T_CASE(method_info_matches_the_spec_for_basic_publish)
{
    const struct amqp_method_info *mi = amqp_method_info(AMQP_BASIC_PUBLISH);
    static const char *names[] = {"reserved-1", "exchange", "routing-key",
                                  "mandatory", "immediate"};
    static const uint8_t types[] = {AMQP_T_SHORT, AMQP_T_SHORTSTR,
                                    AMQP_T_SHORTSTR, AMQP_T_BIT, AMQP_T_BIT};
    unsigned i;

    T_EQ_INT(mi->nfields, 5);
    T_ASSERT(!mi->synchronous);
    T_ASSERT(mi->content);
    for (i = 0; i < 5; i++) {
        T_EQ_STR(mi->fields[i].name, names[i]);
        T_EQ_INT(mi->fields[i].type, types[i]);
    }
    T_EQ_INT(mi->fields[2].offset,
             offsetof(struct amqp_method, u.basic_publish.routing_key));
    T_ASSERT(amqp_method_info(AMQP_QUEUE_DECLARE)->synchronous);
}

/* ---- methods: round trips */

T_CASE(every_method_round_trips_in_every_pattern)
{
    struct amqp_method m, d;
    struct buf b1, b2;
    const char *why;
    uint8_t *copy;
    unsigned i;
    int p;

    init_bytes();
    buf_init(&b1);
    buf_init(&b2);
    for (i = 0; i < WR_ARRAY_LEN(all_ids); i++) {
        for (p = 0; p < PAT_COUNT; p++) {
            buf_reset(&b1);
            buf_reset(&b2);
            fill_method(&m, all_ids[i], (enum pattern)p);
            T_EQ_INT(amqp_method_encode(&m, &b1), b1.len);
            T_EQ_INT(be16_load(b1.data), AMQP_METHOD_CLASS(all_ids[i]));
            T_EQ_INT(be16_load(b1.data + 2), AMQP_METHOD_INDEX(all_ids[i]));
            why = NULL;
            copy = dup_input(b1.data, b1.len);
            T_EQ_INT(amqp_method_decode(copy, b1.len, &d, &why),
                     AMQP_DECODE_OK);
            T_ASSERT(why == NULL);
            expect_methods_eq(&m, &d);
            T_EQ_INT(amqp_method_encode(&d, &b2), b1.len);
            T_EQ_MEM(b2.data, b2.len, b1.data, b1.len);
            free(copy);
        }
    }
    buf_fini(&b1);
    buf_fini(&b2);
    buf_fini(&all_types_tbl);
}

T_CASE(encode_appends_and_returns_only_its_own_bytes)
{
    struct amqp_method m;
    struct buf b;
    size_t n;

    buf_init(&b);
    buf_append(&b, "xyz", 3);
    memset(&m, 0, sizeof(m));
    m.id = AMQP_BASIC_ACK;
    m.u.basic_ack.delivery_tag = 9;
    n = amqp_method_encode(&m, &b);
    T_EQ_INT(n, 4 + 8 + 1);
    T_EQ_INT(b.len, 3 + n);
    T_EQ_MEM(b.data, 3, "xyz", 3);
    buf_fini(&b);
}

/* ---- methods: known answers (bytes from the 0-9-1 spec, by hand) */

static void
expect_encoding(const struct amqp_method *m, const void *want, size_t len)
{
    struct buf b;
    struct amqp_method d;

    buf_init(&b);
    amqp_method_encode(m, &b);
    T_EQ_MEM(b.data, b.len, want, len);
    T_EQ_INT(amqp_method_decode(want, len, &d, NULL), AMQP_DECODE_OK);
    expect_methods_eq(m, &d);
    buf_fini(&b);
}

T_CASE(known_answer_connection_tune)
{
    static const uint8_t want[] = {0x00, 0x0a, 0x00, 0x1e, 0x07, 0xff,
                                   0x00, 0x02, 0x00, 0x00, 0x00, 0x3c};
    struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};

    m.u.connection_tune.channel_max = 2047;
    m.u.connection_tune.frame_max = 131072;
    m.u.connection_tune.heartbeat = 60;
    expect_encoding(&m, want, sizeof(want));
}

T_CASE(known_answer_basic_publish_mandatory)
{
    static const uint8_t want[] = "\x00\x3c\x00\x28"
                                  "\x00\x00"
                                  "\x0a"
                                  "amq.direct"
                                  "\x02"
                                  "rk"
                                  "\x01";
    struct amqp_method m = {.id = AMQP_BASIC_PUBLISH};
    uint8_t alt[sizeof(want)];

    m.u.basic_publish.exchange = BYTES_LIT("amq.direct");
    m.u.basic_publish.routing_key = BYTES_LIT("rk");
    m.u.basic_publish.mandatory = true;
    expect_encoding(&m, want, sizeof(want) - 1);
    m.u.basic_publish.mandatory = false;
    m.u.basic_publish.immediate = true;
    memcpy(alt, want, sizeof(want));
    alt[sizeof(want) - 2] = 0x02; /* immediate is bit 1 */
    expect_encoding(&m, alt, sizeof(want) - 1);
}

T_CASE(known_answer_basic_deliver)
{
    static const uint8_t want[] = "\x00\x3c\x00\x3c"
                                  "\x04"
                                  "ctag"
                                  "\x01\x02\x03\x04\x05\x06\x07\x08"
                                  "\x01"
                                  "\x00"
                                  "\x01"
                                  "q";
    struct amqp_method m = {.id = AMQP_BASIC_DELIVER};

    m.u.basic_deliver.consumer_tag = BYTES_LIT("ctag");
    m.u.basic_deliver.delivery_tag = 0x0102030405060708ull;
    m.u.basic_deliver.redelivered = true;
    m.u.basic_deliver.exchange = BYTES_LIT("");
    m.u.basic_deliver.routing_key = BYTES_LIT("q");
    expect_encoding(&m, want, sizeof(want) - 1);
}

T_CASE(known_answer_queue_declare_bits_in_spec_order)
{
    /* arguments: {"x-max-length": I 10} */
    static const uint8_t all[] = "\x00\x32\x00\x0a"
                                 "\x00\x00"
                                 "\x02"
                                 "q1"
                                 "\x1f"
                                 "\x00\x00\x00\x12"
                                 "\x0c"
                                 "x-max-length"
                                 "I"
                                 "\x00\x00\x00\x0a";
    struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
    struct amqp_queue_declare *q = &m.u.queue_declare;
    uint8_t one[sizeof(all)];
    bool *bits[] = {&q->passive, &q->durable, &q->exclusive, &q->auto_delete,
                    &q->no_wait};
    unsigned i;

    q->queue = BYTES_LIT("q1");
    q->arguments = bytes_of(all + 14, 18);
    q->passive = q->durable = q->exclusive = q->auto_delete = q->no_wait = true;
    expect_encoding(&m, all, sizeof(all) - 1);
    /* each bit alone: passive is bit 0 ... no-wait is bit 4 */
    for (i = 0; i < WR_ARRAY_LEN(bits); i++) {
        q->passive = q->durable = q->exclusive = q->auto_delete = q->no_wait =
            false;
        *bits[i] = true;
        memcpy(one, all, sizeof(all));
        one[9] = (uint8_t)(1u << i);
        q->arguments = bytes_of(one + 14, 18);
        expect_encoding(&m, one, sizeof(all) - 1);
    }
}

T_CASE(known_answer_connection_close_and_no_argument_methods)
{
    static const uint8_t conn_close[] = "\x00\x0a\x00\x32"
                                        "\x01\x40"
                                        "\x05"
                                        "bye!!"
                                        "\x00\x3c"
                                        "\x00\x28";
    static const uint8_t commit[] = {0x00, 0x5a, 0x00, 0x14};
    static const uint8_t conf_select[] = {0x00, 0x55, 0x00, 0x0a, 0x01};
    struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};

    m.u.connection_close.reply_code = 320;
    m.u.connection_close.reply_text = BYTES_LIT("bye!!");
    m.u.connection_close.class_id = 60;
    m.u.connection_close.method_id = 40;
    expect_encoding(&m, conn_close, sizeof(conn_close) - 1);
    memset(&m, 0, sizeof(m));
    m.id = AMQP_TX_COMMIT;
    expect_encoding(&m, commit, sizeof(commit));
    m.id = AMQP_CONFIRM_SELECT;
    m.u.confirm_select.nowait = true;
    expect_encoding(&m, conf_select, sizeof(conf_select));
}

T_CASE(unused_high_bits_are_ignored_and_rewritten_as_zero)
{
    static const uint8_t in[] = {0x00, 0x3c, 0x00, 0x50, 0, 0,   0,
                                 0,    0,    0,    0,    5, 0xfe};
    struct amqp_method m;

    T_EQ_INT(amqp_method_decode(in, sizeof(in), &m, NULL), AMQP_DECODE_OK);
    T_EQ_INT(m.u.basic_ack.delivery_tag, 5);
    T_ASSERT(!m.u.basic_ack.multiple);
}

/* ---- methods: hostile input */

T_CASE(truncation_at_every_offset_is_malformed)
{
    struct amqp_method m, d;
    struct buf b;
    const char *why;
    unsigned i;
    size_t cut;
    int p;

    init_bytes();
    buf_init(&b);
    for (i = 0; i < WR_ARRAY_LEN(all_ids); i++) {
        for (p = PAT_ZERO; p <= PAT_MIXED; p++) {
            buf_reset(&b);
            fill_method(&m, all_ids[i], (enum pattern)p);
            amqp_method_encode(&m, &b);
            for (cut = 0; cut < b.len; cut++) {
                why = NULL;
                T_EQ_INT(decode_copy(b.data, cut, &d, &why),
                         AMQP_DECODE_MALFORMED);
                T_ASSERT(why != NULL);
            }
        }
    }
    buf_fini(&b);
    buf_fini(&all_types_tbl);
}

T_CASE(trailing_bytes_are_malformed)
{
    struct amqp_method m, d;
    struct buf b;
    const char *why = NULL;
    unsigned i;

    init_bytes();
    buf_init(&b);
    for (i = 0; i < WR_ARRAY_LEN(all_ids); i++) {
        buf_reset(&b);
        fill_method(&m, all_ids[i], PAT_MIXED);
        amqp_method_encode(&m, &b);
        buf_put_u8(&b, 0);
        T_EQ_INT(decode_copy(b.data, b.len, &d, &why), AMQP_DECODE_MALFORMED);
        T_EQ_STR(why, "trailing bytes after method arguments");
    }
    buf_fini(&b);
    buf_fini(&all_types_tbl);
}

T_CASE(unknown_class_or_method_is_unknown)
{
    static const uint8_t bad_class[] = {0x00, 0x0b, 0x00, 0x0a};
    static const uint8_t bad_method[] = {0x00, 0x3c, 0x00, 0x29, 1, 2, 3};
    static const uint8_t zero[] = {0, 0, 0, 0};
    struct amqp_method m;
    const char *why = NULL;

    T_EQ_INT(amqp_method_decode(bad_class, 4, &m, &why), AMQP_DECODE_UNKNOWN);
    T_EQ_STR(why, "unknown class id");
    T_EQ_INT(m.id, AMQP_METHOD_ID(11, 10));
    T_EQ_INT(amqp_method_decode(bad_method, 7, &m, &why), AMQP_DECODE_UNKNOWN);
    T_EQ_STR(why, "unknown method id");
    T_EQ_INT(m.id, AMQP_METHOD_ID(60, 41));
    T_EQ_INT(amqp_method_decode(zero, 4, &m, NULL), AMQP_DECODE_UNKNOWN);
    T_EQ_INT(amqp_method_decode(zero, 3, &m, &why), AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "method frame too short");
}

/* Encodes method id with pattern PAT_MIXED but table field f replaced. */
static void
encode_with_table(struct buf *b, uint32_t id, const struct amqp_field_info *f,
                  struct bytes tbl)
{
    struct amqp_method m;

    fill_method(&m, id, PAT_MIXED);
    *(struct bytes *)field_ptr(&m, f) = tbl;
    buf_reset(b);
    amqp_method_encode(&m, b);
}

T_CASE(bad_table_inside_any_method_is_malformed)
{
    static const uint8_t unknown_type[] = "\x01k"
                                          "Z";
    static const uint8_t short_value[] = "\x01k"
                                         "I\x00\x01";
    struct amqp_method d;
    struct buf b;
    const char *why;
    unsigned i, j, tables = 0;

    init_bytes();
    buf_init(&b);
    for (i = 0; i < WR_ARRAY_LEN(all_ids); i++) {
        const struct amqp_method_info *mi = amqp_method_info(all_ids[i]);

        for (j = 0; j < mi->nfields; j++) {
            const struct amqp_field_info *f = &mi->fields[j];

            if (f->type != AMQP_T_TABLE)
                continue;
            tables++;
            encode_with_table(&b, all_ids[i], f, bytes_of(unknown_type, 3));
            why = NULL;
            T_EQ_INT(decode_copy(b.data, b.len, &d, &why),
                     AMQP_DECODE_MALFORMED);
            T_EQ_STR(why, "unknown field type");
            encode_with_table(&b, all_ids[i], f, bytes_of(short_value, 5));
            T_EQ_INT(decode_copy(b.data, b.len, &d, &why),
                     AMQP_DECODE_MALFORMED);
        }
    }
    T_ASSERT(tables >= 8); /* start, start-ok, declares, binds, consume */
    buf_fini(&b);
    buf_fini(&all_types_tbl);
}

T_CASE(table_nested_too_deeply_is_malformed)
{
    struct amqp_method m = {.id = AMQP_QUEUE_DECLARE}, d;
    struct buf tbl, b;
    size_t marks[64];
    int depth, i;
    const char *why = NULL;

    buf_init(&b);
    for (depth = FTABLE_MAX_DEPTH; depth <= FTABLE_MAX_DEPTH + 1; depth++) {
        /* depth tables: the outer body plus depth-1 nested F values */
        buf_init(&tbl);
        for (i = 0; i < depth - 1; i++) {
            fenc_key(&tbl, "k");
            buf_put_u8(&tbl, 'F');
            marks[i] = ftable_begin(&tbl);
        }
        for (i = depth - 2; i >= 0; i--)
            ftable_end(&tbl, marks[i]);
        m.u.queue_declare.arguments = buf_bytes(&tbl);
        buf_reset(&b);
        amqp_method_encode(&m, &b);
        T_EQ_INT(decode_copy(b.data, b.len, &d, &why),
                 depth <= FTABLE_MAX_DEPTH ? AMQP_DECODE_OK
                                           : AMQP_DECODE_MALFORMED);
        buf_fini(&tbl);
    }
    T_EQ_STR(why, "field table nested too deeply");
    buf_fini(&b);
}

T_CASE(string_lengths_past_the_end_are_malformed)
{
    /* queue.declare whose queue name claims 200 bytes but has 3 */
    static const uint8_t shortstr[] = "\x00\x32\x00\x0a\x00\x00\xc8"
                                      "abc";
    /* connection.secure whose challenge claims 4 GiB - 1 */
    static const uint8_t longstr[] = "\x00\x0a\x00\x14\xff\xff\xff\xff"
                                     "abc";
    /* queue.declare whose table claims more bytes than remain */
    static const uint8_t table[] = "\x00\x32\x00\x0a\x00\x00\x00\x00"
                                   "\x00\x00\x10\x00";
    struct amqp_method m;
    const char *why = NULL;

    T_EQ_INT(decode_copy(shortstr, sizeof(shortstr) - 1, &m, &why),
             AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "truncated method arguments");
    T_EQ_INT(decode_copy(longstr, sizeof(longstr) - 1, &m, &why),
             AMQP_DECODE_MALFORMED);
    T_EQ_INT(decode_copy(table, sizeof(table) - 1, &m, &why),
             AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "truncated method arguments");
}

/* ---- content properties */

static const char *const prop_names[AMQP_BASIC_PROPS_COUNT] = {
    "content-type", "content-encoding", "headers",  "delivery-mode",
    "priority",     "correlation-id",   "reply-to", "expiration",
    "message-id",   "timestamp",        "type",     "user-id",
    "app-id",       "cluster-id"};

T_CASE(basic_props_info_is_the_spec_list_in_flag_order)
{
    unsigned i;

    T_EQ_INT(AMQP_BASIC_PROPS_COUNT, 14);
    for (i = 0; i < AMQP_BASIC_PROPS_COUNT; i++) {
        T_EQ_STR(amqp_basic_props_info[i].name, prop_names[i]);
        T_EQ_INT(amqp_basic_props_info[i].flag, 1u << (15 - i));
    }
    T_EQ_INT(AMQP_BASIC_CONTENT_TYPE_FLAG, 0x8000);
    T_EQ_INT(AMQP_BASIC_HEADERS_FLAG, 0x2000);
    T_EQ_INT(AMQP_BASIC_DELIVERY_MODE_FLAG, 0x1000);
    T_EQ_INT(AMQP_BASIC_CLUSTER_ID_FLAG, 0x0004);
    T_EQ_INT(AMQP_BASIC_FLAGS_MASK, 0xfffc);
    T_EQ_INT(amqp_basic_props_info[9].type, AMQP_T_TIMESTAMP);
    T_EQ_INT(amqp_basic_props_info[2].offset,
             offsetof(struct amqp_basic_props, headers));
}

static void
fill_props(struct amqp_basic_props *p, uint16_t flags, enum pattern pat)
{
    unsigned i;

    memset(p, 0, sizeof(*p));
    p->flags = flags;
    for (i = 0; i < AMQP_BASIC_PROPS_COUNT; i++) {
        if (flags & amqp_basic_props_info[i].flag)
            fill_field(p, &amqp_basic_props_info[i], pat, i);
    }
}

static void
expect_props_eq(const struct amqp_basic_props *a,
                const struct amqp_basic_props *b)
{
    T_EQ_INT(a->flags, b->flags);
    expect_fields_eq(a, b, amqp_basic_props_info, AMQP_BASIC_PROPS_COUNT,
                     "basic properties");
}

/* Decodes from a copy that is freed at once: for results without views. */
static enum amqp_decode_status
props_decode_copy(const uint8_t *p, size_t len, struct amqp_basic_props *out,
                  const char **why)
{
    uint8_t *copy = dup_input(p, len);
    enum amqp_decode_status st = amqp_basic_props_decode(copy, len, out, why);

    free(copy);
    return st;
}

/* Encode, decode, compare, re-encode byte for byte. */
static void
props_round_trip(uint16_t flags, enum pattern pat)
{
    struct amqp_basic_props p, d;
    struct buf b1, b2;

    buf_init(&b1);
    buf_init(&b2);
    fill_props(&p, flags, pat);
    amqp_basic_props_encode(&p, &b1);
    T_EQ_INT(amqp_basic_props_decode(b1.data, b1.len, &d, NULL),
             AMQP_DECODE_OK);
    expect_props_eq(&p, &d);
    amqp_basic_props_encode(&d, &b2);
    T_EQ_MEM(b2.data, b2.len, b1.data, b1.len);
    buf_fini(&b1);
    buf_fini(&b2);
}

T_CASE(all_fourteen_properties_round_trip)
{
    int pat;

    init_bytes();
    for (pat = 0; pat < PAT_COUNT; pat++)
        props_round_trip(AMQP_BASIC_FLAGS_MASK, (enum pattern)pat);
    props_round_trip(0, PAT_MAX);
    buf_fini(&all_types_tbl);
}

T_CASE(every_subset_of_property_flags_round_trips)
{
    unsigned s;

    init_bytes();
    for (s = 0; s < (1u << AMQP_BASIC_PROPS_COUNT); s++) {
        uint16_t flags = (uint16_t)(s << 2);

        props_round_trip(flags, PAT_MIXED);
        if (s % 7 == 0) /* a sample in the slower patterns */
            props_round_trip(flags, s % 2 ? PAT_MAX : PAT_ZERO);
    }
    buf_fini(&all_types_tbl);
}

T_CASE(known_answer_properties)
{
    static const uint8_t want[] = "\x98\x40"
                                  "\x0a"
                                  "text/plain"
                                  "\x02"
                                  "\x05"
                                  "\x00\x00\x00\x00\x65\x53\xf1\x00";
    struct amqp_basic_props p, d;
    struct buf b;

    memset(&p, 0, sizeof(p));
    p.flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
              AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p.content_type = BYTES_LIT("text/plain");
    p.delivery_mode = 2;
    p.priority = 5;
    p.timestamp = 1700000000;
    buf_init(&b);
    amqp_basic_props_encode(&p, &b);
    T_EQ_MEM(b.data, b.len, want, sizeof(want) - 1);
    T_EQ_INT(amqp_basic_props_decode(want, sizeof(want) - 1, &d, NULL),
             AMQP_DECODE_OK);
    expect_props_eq(&p, &d);
    T_EQ_INT(d.content_encoding.len, 0);
    buf_fini(&b);
}

T_CASE(property_continuation_word_handling)
{
    /* content-type "a" with a (zero) continuation word between */
    static const uint8_t cont_zero[] = "\x80\x01\x00\x00\x01"
                                       "a";
    static const uint8_t cont_bits[] = "\x80\x01\x80\x00\x01"
                                       "a";
    static const uint8_t cont_chain[] = "\x80\x01\x00\x01\x00\x00\x01"
                                        "a";
    static const uint8_t cont_short[] = "\x80\x01\x00";
    static const uint8_t undefined_bit[] = "\x00\x02";
    struct amqp_basic_props d;
    const char *why = NULL;

    T_EQ_INT(amqp_basic_props_decode(cont_zero, 6, &d, &why), AMQP_DECODE_OK);
    T_EQ_INT(d.flags, AMQP_BASIC_CONTENT_TYPE_FLAG);
    T_ASSERT(bytes_eq_str(d.content_type, "a"));
    T_EQ_INT(props_decode_copy(cont_bits, 6, &d, &why), AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "unknown property flag in continuation word");
    T_EQ_INT(props_decode_copy(cont_chain, 8, &d, &why), AMQP_DECODE_MALFORMED);
    T_EQ_INT(props_decode_copy(cont_short, 3, &d, &why), AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "truncated property flags");
    T_EQ_INT(props_decode_copy(undefined_bit, 2, &d, &why),
             AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "unknown property flag");
}

T_CASE(property_truncation_trailing_bytes_and_bad_headers)
{
    static const uint8_t bad_headers[] = "\x20\x00\x00\x00\x00\x03\x01k"
                                         "Z";
    struct amqp_basic_props p, d;
    struct buf b;
    const char *why = NULL;
    size_t cut;

    init_bytes();
    buf_init(&b);
    fill_props(&p, AMQP_BASIC_FLAGS_MASK, PAT_MIXED);
    amqp_basic_props_encode(&p, &b);
    for (cut = 0; cut < b.len; cut++) {
        why = NULL;
        T_EQ_INT(props_decode_copy(b.data, cut, &d, &why),
                 AMQP_DECODE_MALFORMED);
        T_ASSERT(why != NULL);
    }
    buf_put_u8(&b, 0);
    T_EQ_INT(props_decode_copy(b.data, b.len, &d, &why), AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "trailing bytes after content properties");
    T_EQ_INT(props_decode_copy(bad_headers, 9, &d, &why),
             AMQP_DECODE_MALFORMED);
    T_EQ_STR(why, "unknown field type");
    buf_fini(&b);
    buf_fini(&all_types_tbl);
}

/* ---- bytes written by another implementation (pika, see
 * test/fuzz/make_corpus.py): every pika-method-* seed must decode and
 * re-encode to the same bytes, every pika-props-* seed likewise. */

static size_t
read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    long n;

    T_ASSERT(f != NULL);
    T_ASSERT(fseek(f, 0, SEEK_END) == 0);
    n = ftell(f);
    T_ASSERT(n >= 0);
    rewind(f);
    *out = malloc((size_t)n + 1);
    T_ASSERT(*out != NULL);
    T_EQ_INT(fread(*out, 1, (size_t)n, f), n);
    fclose(f);
    return (size_t)n;
}

T_CASE(pika_encodings_decode_and_re_encode_identically)
{
    char path[4096];
    DIR *dir = opendir(WR_FUZZ_CORPUS_DIR "/fuzz_method");
    struct dirent *de;
    unsigned methods = 0, props = 0;

    T_ASSERT(dir != NULL);
    while ((de = readdir(dir)) != NULL) {
        bool is_method = strncmp(de->d_name, "pika-method-", 12) == 0;
        bool is_props = strncmp(de->d_name, "pika-props-", 11) == 0;
        struct amqp_method m;
        struct amqp_basic_props p;
        struct buf b;
        const char *why = NULL;
        uint8_t *data;
        size_t n;

        if (!is_method && !is_props)
            continue;
        snprintf(path, sizeof(path), "%s/fuzz_method/%s", WR_FUZZ_CORPUS_DIR,
                 de->d_name);
        n = read_file(path, &data);
        buf_init(&b);
        if (is_method) {
            if (amqp_method_decode(data, n, &m, &why) != AMQP_DECODE_OK)
                t_fail(__FILE__, __LINE__, "%s: %s", de->d_name, why);
            amqp_method_encode(&m, &b);
            methods++;
        } else {
            if (amqp_basic_props_decode(data, n, &p, &why) != AMQP_DECODE_OK)
                t_fail(__FILE__, __LINE__, "%s: %s", de->d_name, why);
            amqp_basic_props_encode(&p, &b);
            props++;
        }
        T_EQ_MEM(b.data, b.len, data, n);
        buf_fini(&b);
        free(data);
    }
    closedir(dir);
    T_ASSERT(methods >= 50);
    T_ASSERT(props >= 3);
}

static const struct t_case cases[] = {
    T_REG(method_list_names_info_and_content_agree),
    T_REG(method_info_matches_the_spec_for_basic_publish),
    T_REG(every_method_round_trips_in_every_pattern),
    T_REG(encode_appends_and_returns_only_its_own_bytes),
    T_REG(known_answer_connection_tune),
    T_REG(known_answer_basic_publish_mandatory),
    T_REG(known_answer_basic_deliver),
    T_REG(known_answer_queue_declare_bits_in_spec_order),
    T_REG(known_answer_connection_close_and_no_argument_methods),
    T_REG(unused_high_bits_are_ignored_and_rewritten_as_zero),
    T_REG(truncation_at_every_offset_is_malformed),
    T_REG(trailing_bytes_are_malformed),
    T_REG(unknown_class_or_method_is_unknown),
    T_REG(bad_table_inside_any_method_is_malformed),
    T_REG(table_nested_too_deeply_is_malformed),
    T_REG(string_lengths_past_the_end_are_malformed),
    T_REG(basic_props_info_is_the_spec_list_in_flag_order),
    T_REG(all_fourteen_properties_round_trip),
    T_REG(every_subset_of_property_flags_round_trips),
    T_REG(known_answer_properties),
    T_REG(property_continuation_word_handling),
    T_REG(property_truncation_trailing_bytes_and_bad_headers),
    T_REG(pika_encodings_decode_and_re_encode_identically),
};
T_MAIN(cases)
