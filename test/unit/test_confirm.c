/* Unit tests for server/confirm.c: which publisher confirms are due,
 * without a channel or a socket. */
#include "server/channel.h"
#include "test/harness/t.h"

/* The answers settle gave, as "a4*" (ack 4 multiple), "n5" (nack 5). */
struct answers {
    char text[256];
};

static void
record(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct answers *a = arg;
    size_t n = strlen(a->text);

    snprintf(a->text + n, sizeof(a->text) - n, "%s%c%llu%s", n ? " " : "",
             ack ? 'a' : 'n', (unsigned long long)tag, multiple ? "*" : "");
}

static const char *
settle(struct confirm_list *l, uint64_t durable, bool failed, struct answers *a)
{
    a->text[0] = '\0';
    struct confirm_durable d = {.lsn = durable, .log_failed = failed};

    confirm_settle(l, &d, record, a);
    return a->text;
}

T_CASE(publishes_that_need_no_log_are_acked_together)
{
    struct confirm_list l = {0};
    struct answers a;

    for (int i = 0; i < 3; i++)
        confirm_next(&l);
    T_EQ_STR(settle(&l, 0, false, &a), "a3*");
    T_EQ_STR(settle(&l, 0, false, &a), "");
    confirm_next(&l);
    T_EQ_STR(settle(&l, 0, false, &a), "a4");
    confirm_fini(&l);
}

T_CASE(acks_stop_at_the_first_publish_waiting_for_the_log)
{
    struct confirm_list l = {0};
    struct answers a;
    uint64_t s;

    for (uint64_t i = 1; i <= 7; i++) {
        s = confirm_next(&l);
        if (s == 3)
            confirm_wait(&l, s, 90, 0);
        else if (s == 5)
            confirm_refuse(&l, s);
        else if (s == 6)
            confirm_wait(&l, s, 120, 0);
    }
    T_EQ_INT(confirm_waiting(&l), 3);
    T_EQ_STR(settle(&l, 50, false, &a), "a2*");
    T_EQ_STR(settle(&l, 100, false, &a), "a4* n5");
    T_EQ_INT(confirm_waiting(&l), 1);
    T_EQ_STR(settle(&l, 120, false, &a), "a7*");
    T_EQ_INT(confirm_waiting(&l), 0);
    confirm_fini(&l);
}

T_CASE(a_failed_log_nacks_what_was_not_durable)
{
    struct confirm_list l = {0};
    struct answers a;

    confirm_wait(&l, confirm_next(&l), 10, 0);
    confirm_wait(&l, confirm_next(&l), 20, 0);
    confirm_next(&l);
    T_EQ_STR(settle(&l, 10, true, &a), "a1 n2 a3");
    confirm_fini(&l);
}

T_CASE(a_refused_publish_is_nacked_in_its_turn)
{
    struct confirm_list l = {0};
    struct answers a;

    confirm_refuse(&l, confirm_next(&l));
    confirm_refuse(&l, confirm_next(&l));
    confirm_next(&l);
    T_EQ_STR(settle(&l, 0, false, &a), "n1 n2 a3");
    confirm_fini(&l);
}

/* Answers given d (the log's and the stream sync's positions). */
static const char *
settle_d(struct confirm_list *l, struct confirm_durable d, struct answers *a)
{
    a->text[0] = '\0';
    confirm_settle(l, &d, record, a);
    return a->text;
}

T_CASE(a_publish_to_a_stream_and_a_queue_waits_for_both)
{
    struct confirm_list l = {0};
    struct answers a;

    confirm_wait(&l, confirm_next(&l), 10, 3); /* both */
    confirm_wait(&l, confirm_next(&l), 0, 4);  /* a stream only */
    confirm_next(&l);
    T_EQ_STR(settle_d(&l, (struct confirm_durable){.lsn = 10, .sync = 2}, &a),
             "");
    T_EQ_STR(settle_d(&l, (struct confirm_durable){.lsn = 9, .sync = 3}, &a),
             "");
    T_EQ_STR(settle_d(&l, (struct confirm_durable){.lsn = 10, .sync = 3}, &a),
             "a1");
    /* the stream sync failed: what waits for it is nacked, the rest acked */
    T_EQ_STR(settle_d(&l,
                      (struct confirm_durable){
                          .lsn = 10, .sync = 3, .sync_failed = true},
                      &a),
             "n2 a3");
    confirm_fini(&l);
}

T_CASE(a_failed_stream_sync_does_not_nack_what_waits_for_the_log_only)
{
    struct confirm_list l = {0};
    struct answers a;

    confirm_wait(&l, confirm_next(&l), 10, 0);
    T_EQ_STR(settle_d(&l,
                      (struct confirm_durable){.lsn = 5, .sync_failed = true},
                      &a),
             "");
    T_EQ_STR(settle_d(&l, (struct confirm_durable){.lsn = 10}, &a), "a1");
    confirm_fini(&l);
}

static const struct t_case cases[] = {
    T_REG(a_publish_to_a_stream_and_a_queue_waits_for_both),
    T_REG(a_failed_stream_sync_does_not_nack_what_waits_for_the_log_only),
    T_REG(publishes_that_need_no_log_are_acked_together),
    T_REG(acks_stop_at_the_first_publish_waiting_for_the_log),
    T_REG(a_failed_log_nacks_what_was_not_durable),
    T_REG(a_refused_publish_is_nacked_in_its_turn),
};
T_MAIN(cases)
