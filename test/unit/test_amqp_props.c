/* Unit tests for amqp/amqp_props.c: what the broker reads from a
 * message's properties, and RabbitMQ's publish-time rules and texts. */
#include "amqp/amqp_props.h"
#include "test/harness/t.h"

/* Encodes p and reads it back. */
static void
roundtrip(const struct amqp_basic_props *p, struct buf *raw,
          struct amqp_props *out)
{
    buf_init(raw);
    amqp_basic_props_encode(p, raw);
    T_EQ_INT(amqp_props_read(buf_bytes(raw), out, NULL), AMQP_DECODE_OK);
}

static void
expect_expiration_error(const char *e, const char *want)
{
    char err[200];
    int64_t ms = 42;

    T_EQ_INT(amqp_expiration_parse(bytes_str(e), &ms, err, sizeof(err)),
             WR_ERR);
    T_EQ_STR(err, want);
    T_EQ_INT(ms, 42);
}

T_CASE(expiration_errors_have_rabbitmq_texts)
{
    expect_expiration_error("abc", "invalid expiration 'abc': no_integer");
    expect_expiration_error("", "invalid expiration '': no_integer");
    expect_expiration_error("-", "invalid expiration '-': no_integer");
    expect_expiration_error(
        "1.5", "invalid expiration '1.5': {leftover_string,\".5\"}");
    expect_expiration_error("-1",
                            "invalid expiration '-1': {value_negative,-1}");
}

T_CASE(expiration_values_as_erlang_reads_them)
{
    int64_t ms;

    T_EQ_INT(amqp_expiration_parse(BYTES_LIT("0"), &ms, NULL, 0), WR_OK);
    T_EQ_INT(ms, 0);
    T_EQ_INT(amqp_expiration_parse(BYTES_LIT("+15"), &ms, NULL, 0), WR_OK);
    T_EQ_INT(ms, 15);
    T_EQ_INT(amqp_expiration_parse(BYTES_LIT("-0"), &ms, NULL, 0), WR_OK);
    T_EQ_INT(ms, 0);
    T_EQ_INT(amqp_expiration_parse(BYTES_LIT("99999999999999999999999"), &ms,
                                   NULL, 0),
             WR_OK);
    T_EQ_INT(ms, INT64_MAX);
}

T_CASE(read_gives_persistence_priority_and_ttl)
{
    struct amqp_basic_props p = {0};
    struct amqp_props r;
    struct buf raw;

    roundtrip(&p, &raw, &r);
    T_ASSERT(!r.persistent);
    T_EQ_INT(r.priority, 0);
    T_EQ_INT(r.ttl_ms, -1);
    buf_fini(&raw);

    p.flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
              AMQP_BASIC_EXPIRATION_FLAG;
    p.delivery_mode = 2;
    p.priority = 7;
    p.expiration = BYTES_LIT("1500");
    roundtrip(&p, &raw, &r);
    T_ASSERT(r.persistent);
    T_EQ_INT(r.priority, 7);
    T_EQ_INT(r.ttl_ms, 1500);
    buf_fini(&raw);

    /* delivery mode 1 is transient; an expiration RabbitMQ would refuse
     * is no TTL */
    p.delivery_mode = 1;
    p.expiration = BYTES_LIT("soon");
    roundtrip(&p, &raw, &r);
    T_ASSERT(!r.persistent);
    T_EQ_INT(r.ttl_ms, -1);
    buf_fini(&raw);
}

T_CASE(read_refuses_malformed_properties)
{
    const uint8_t bad[] = {0x00, 0x01}; /* a continuation flag word */
    struct amqp_props r;
    const char *why = NULL;

    T_ASSERT(amqp_props_read(bytes_of(bad, sizeof(bad)), &r, &why) !=
             AMQP_DECODE_OK);
    T_ASSERT(why != NULL);
}

T_CASE(checks_come_in_rabbitmq_order)
{
    struct amqp_basic_props p = {0};
    struct amqp_props r;
    struct buf raw;
    char err[200];

    p.flags = AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
              AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.user_id = BYTES_LIT("mallory");
    p.expiration = BYTES_LIT("x");
    p.delivery_mode = 3;
    roundtrip(&p, &raw, &r);
    T_EQ_INT(amqp_props_check(&r, "bob", err, sizeof(err)), WR_ERR);
    T_EQ_STR(err, "user_id property set to 'mallory' but authenticated user "
                  "was 'bob'");
    T_EQ_INT(amqp_props_check(&r, "mallory", err, sizeof(err)), WR_ERR);
    T_EQ_STR(err, "invalid expiration 'x': no_integer");
    buf_fini(&raw);

    p.expiration = BYTES_LIT("10");
    roundtrip(&p, &raw, &r);
    T_EQ_INT(amqp_props_check(&r, "mallory", err, sizeof(err)), WR_ERR);
    T_EQ_STR(err, "invalid message: {delivery_mode_unknown,3}");
    T_EQ_INT(amqp_props_check_user(&r, "mallory", err, sizeof(err)), WR_OK);
    buf_fini(&raw);

    p.delivery_mode = 2;
    roundtrip(&p, &raw, &r);
    T_EQ_INT(amqp_props_check(&r, "mallory", err, sizeof(err)), WR_OK);
    buf_fini(&raw);
}

static const struct t_case cases[] = {
    T_REG(expiration_errors_have_rabbitmq_texts),
    T_REG(expiration_values_as_erlang_reads_them),
    T_REG(read_gives_persistence_priority_and_ttl),
    T_REG(read_refuses_malformed_properties),
    T_REG(checks_come_in_rabbitmq_order),
};
T_MAIN(cases)
