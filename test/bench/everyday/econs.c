/*
 * econs.c: one consuming connection, on its own thread, consuming the way
 * an everyday application does: amqp_consume_message() returns one
 * delivery at a time (rabbitmq-c reads what the socket has into its own
 * buffer and decodes from there), the application looks at it, acks it
 * with amqp_basic_ack() (one per message, or multiple=true every N
 * deliveries, never later than a full prefetch window) and asks for the
 * next one. Auto-ack (--ack-every 0) sends nothing back.
 *
 * Each body is checked as warren-perf's consumer checks it (kit.h): its
 * size, the check over header and padding, that it reached the queue it
 * was routed to, and its sequence number per producer (track.c). Its
 * latency is the time amqp_consume_message returned it minus the send
 * time in its header.
 */
#include "test/bench/everyday/everyday.h"

#include <stdlib.h>

#define WAKE_US 100000

void
econs_init(struct ed_consumer *cs, struct ed_run *run, int id)
{
    const struct ed_opts *o = run->o;

    memset(cs, 0, sizeof(*cs));
    cs->run = run;
    cs->id = id;
    cs->queue = id % o->queues;
    cs->tr = xcalloc((size_t)WR_MAX(run->nprod, 1), sizeof(*cs->tr));
    for (int i = 0; i < run->nprod; i++)
        track_init(&cs->tr[i]);
    hist_init(&cs->lat);
    cs->ack_every = o->ack_every;
    if (o->prefetch > 0 && o->prefetch < cs->ack_every)
        cs->ack_every = o->prefetch;
}

void
econs_fini(struct ed_consumer *cs)
{
    if (cs->c != NULL)
        amqp_destroy_connection(cs->c);
    for (int i = 0; i < cs->run->nprod; i++)
        track_fini(&cs->tr[i]);
    free(cs->tr);
}

static bool
setup(struct ed_consumer *cs)
{
    const struct ed_opts *o = cs->run->o;
    char queue[256];
    char tag[32];

    cs->c = econn_open(o, cs->err, sizeof(cs->err));
    if (cs->c == NULL)
        return false;
    if (o->prefetch > 0) {
        amqp_basic_qos(cs->c, 1, 0, o->prefetch, 0);
        if (econn_failed(amqp_get_rpc_reply(cs->c), "basic.qos", cs->err,
                         sizeof(cs->err)))
            return false;
    }
    econn_queue_name(o, cs->queue, queue, sizeof(queue));
    snprintf(tag, sizeof(tag), "everyday-c%d", cs->id);
    amqp_basic_consume(cs->c, 1, amqp_cstring_bytes(queue),
                       amqp_cstring_bytes(tag), 0, o->ack_every == 0, 0,
                       amqp_empty_table);
    return !econn_failed(amqp_get_rpc_reply(cs->c), "basic.consume", cs->err,
                         sizeof(cs->err));
}

/* Judges one delivery received at now_ns. */
static void
verify(struct ed_consumer *cs, const amqp_envelope_t *env, uint64_t now_ns)
{
    const struct ed_run *run = cs->run;
    amqp_bytes_t b = env->message.body;
    const uint8_t *p = b.bytes;
    struct pmsg_hdr h;

    ctr_add(&cs->received, 1);
    ctr_add(&cs->bytes, b.len);
    if (b.len != run->o->size ||
        !pmsg_get_hdr(
            p, pmsg_pad_hash(p + PMSG_HDR_SIZE, b.len - PMSG_HDR_SIZE), &h)) {
        cs->corrupted++;
    } else if (h.producer >= run->nprod ||
               (h.target != cs->queue &&
                !(h.target == PMSG_BROADCAST && run->o->xtype == ED_FANOUT))) {
        cs->unexpected++;
    } else {
        uint32_t lat = pmsg_ticks(now_ns) - h.ts;

        if (track_see(&cs->tr[h.producer], h.seq, env->redelivered))
            ctr_add(&cs->unique, 1);
        hist_record(&cs->lat, (uint64_t)lat * PMSG_TICK_NS);
    }
}

/* Acks the delivery just checked when one is due. Returns false with err
 * set when the library fails. */
static bool
ack(struct ed_consumer *cs, uint64_t tag)
{
    int rc;

    if (cs->ack_every == 0)
        return true;
    cs->last_tag = tag;
    if (++cs->unacked < cs->ack_every)
        return true;
    cs->unacked = 0;
    rc = amqp_basic_ack(cs->c, 1, tag, cs->ack_every > 1);
    if (rc != AMQP_STATUS_OK) {
        snprintf(cs->err, sizeof(cs->err), "basic.ack: %s",
                 amqp_error_string2(rc));
        return false;
    }
    return true;
}

/*
 * amqp_consume_message met a frame other than a delivery: reads it and
 * decides. Returns false with err set when it ends the consumer.
 */
static bool
other_frame(struct ed_consumer *cs)
{
    amqp_frame_t f;
    struct timeval tv = {1, 0};
    int rc = amqp_simple_wait_frame_noblock(cs->c, &f, &tv);

    if (rc == AMQP_STATUS_TIMEOUT)
        return true;
    if (rc != AMQP_STATUS_OK) {
        snprintf(cs->err, sizeof(cs->err), "reading a frame: %s",
                 amqp_error_string2(rc));
        return false;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
        return true;
    switch (f.payload.method.id) {
    case AMQP_CONNECTION_BLOCKED_METHOD:
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        return true;
    case AMQP_BASIC_CANCEL_METHOD:
        snprintf(cs->err, sizeof(cs->err), "the broker cancelled the consumer");
        return false;
    default:
        econn_close_text(&f.payload.method, cs->err, sizeof(cs->err));
        return false;
    }
}

static bool
consume_loop(struct ed_consumer *cs)
{
    while (ed_phase(cs->run) != EP_DONE) {
        amqp_envelope_t env;
        struct timeval tv = {0, WAKE_US};
        amqp_rpc_reply_t r;
        bool ok;

        amqp_maybe_release_buffers(cs->c);
        r = amqp_consume_message(cs->c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            verify(cs, &env, perf_now_ns());
            ok = ack(cs, env.delivery_tag);
            amqp_destroy_envelope(&env);
            if (!ok)
                return false;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (!other_frame(cs))
                return false;
            continue;
        }
        (void)econn_failed(r, "consume", cs->err, sizeof(cs->err));
        return false;
    }
    return true;
}

void *
econs_main(void *arg)
{
    struct ed_consumer *cs = arg;

    if (!setup(cs))
        goto fail;
    atomic_store(&cs->ready, true);
    if (!consume_loop(cs))
        goto fail;
    if (cs->unacked > 0 &&
        amqp_basic_ack(cs->c, 1, cs->last_tag, true) != AMQP_STATUS_OK) {
        snprintf(cs->err, sizeof(cs->err), "basic.ack failed");
        goto fail;
    }
    econn_close(cs->c);
    cs->c = NULL;
    atomic_store(&cs->done, true);
    return NULL;
fail: /* err says why */
    atomic_store(&cs->failed, true);
    atomic_store(&cs->done, true);
    return NULL;
}
