/*
 * eprod.c: one publishing connection, on its own thread, publishing the
 * way an everyday application does: one amqp_basic_publish() per message
 * (rabbitmq-c writes the method and content header with MSG_MORE and the
 * body without it, on a TCP_NODELAY socket: one small segment per
 * message), nothing batched, nothing pipelined beyond what the library
 * does.
 *
 * Pacing: with a rate (struct ed_pace), publish k of a step is due at
 * start + offset + k * interval, the offset spreading the producers over
 * one interval so they do not wake together. A producer that falls more
 * than LAG_RESET_NS behind (the broker, or this machine, cannot keep up)
 * drops the debt instead of bursting to catch up: the rate it reaches is
 * what is measured.
 *
 * Confirms (--confirm W): tags [low, next_tag) are outstanding. After a
 * publish the producer reads the broker's basic.ack/nack frames, blocking,
 * until fewer than W are outstanding, so W = 1 waits for each message's
 * confirm before the next publish, the way a synchronous client does. A
 * ring of the window's size (a power of two) holds each tag's send time
 * and whether it was resolved, so acks with or without `multiple` resolve
 * each tag once and give its confirm latency.
 *
 * Ensures at the end (EP_STOP): every confirm has arrived (or
 * FINISH_NS passed) and the channel and connection were closed with
 * close-ok, so the broker has handled every publish before the main
 * thread computes what the consumers must receive.
 */
#include "test/bench/everyday/everyday.h"

#include <stdlib.h>
#include <time.h>

#define LAG_RESET_NS (100ull * 1000000ull)
#define NAP_MAX_NS   (100ull * 1000000ull)
#define FINISH_NS    (60ull * 1000000000ull)
#define WAIT_US      100000

void
eprod_init(struct ed_producer *p, struct ed_run *run, int id)
{
    const struct ed_opts *o = run->o;

    memset(p, 0, sizeof(*p));
    p->run = run;
    p->id = id;
    p->body = xmalloc(o->size);
    pmsg_fill_pad(p->body + PMSG_HDR_SIZE, o->size - PMSG_HDR_SIZE,
                  (uint16_t)id);
    p->pad_hash =
        pmsg_pad_hash(p->body + PMSG_HDR_SIZE, o->size - PMSG_HDR_SIZE);
    p->seq = xcalloc((size_t)o->queues + 1, sizeof(*p->seq));
    p->next_tag = 1;
    p->low = 1;
    hist_init(&p->clat);
    if (o->confirm > 0) {
        uint64_t n = 1;

        while (n < o->confirm)
            n *= 2;
        p->ring_ts = xcalloc(n, sizeof(*p->ring_ts));
        p->ring_done = xcalloc(n, 1);
        p->ring_mask = n - 1;
    }
}

void
eprod_fini(struct ed_producer *p)
{
    if (p->c != NULL)
        amqp_destroy_connection(p->c);
    free(p->body);
    free(p->seq);
    free(p->ring_ts);
    free(p->ring_done);
}

static void
nap_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000ull),
                          (long)(t % 1000000000ull)};

    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Waits until the next publish is due. Returns false when the run left
 * EP_RUN meanwhile. */
static bool
pace(struct ed_producer *p)
{
    struct ed_pace *pc = &p->run->pace;
    uint64_t gen = atomic_load(&pc->gen);
    uint64_t interval = atomic_load(&pc->interval);
    uint64_t now;

    if (gen != p->gen) {
        p->gen = gen;
        p->due = atomic_load(&pc->start) +
                 interval * (uint64_t)p->id / (uint64_t)p->run->nprod;
    }
    if (interval == 0)
        return ed_phase(p->run) == EP_RUN;
    for (;;) {
        if (ed_phase(p->run) != EP_RUN)
            return false;
        now = perf_now_ns();
        if (now >= p->due)
            break;
        nap_until(WR_MIN(p->due, now + NAP_MAX_NS));
    }
    if (now - p->due > LAG_RESET_NS)
        p->due = now;
    p->due += interval;
    return true;
}

static void
resolve(struct ed_producer *p, uint64_t tag, bool nack, uint64_t now)
{
    uint64_t slot = tag & p->ring_mask;

    if (p->ring_done[slot])
        return;
    p->ring_done[slot] = 1;
    if (nack) {
        ctr_add(&p->nacked, 1);
        return;
    }
    ctr_add(&p->confirmed, 1);
    hist_record(&p->clat, now - p->ring_ts[slot]);
}

static bool
on_confirm(struct ed_producer *p, uint64_t tag, bool multiple, bool nack)
{
    uint64_t now = perf_now_ns();

    if (p->ring_done == NULL || tag >= p->next_tag || tag == 0) {
        snprintf(p->err, sizeof(p->err),
                 "broker confirmed delivery tag %llu, never published",
                 (unsigned long long)tag);
        return false;
    }
    if (tag < p->low)
        return true; /* already resolved */
    if (multiple) {
        for (uint64_t t = p->low; t <= tag; t++)
            resolve(p, t, nack, now);
    } else {
        resolve(p, tag, nack, now);
    }
    while (p->low < p->next_tag && p->ring_done[p->low & p->ring_mask]) {
        p->ring_done[p->low & p->ring_mask] = 0;
        p->low++;
    }
    return true;
}

/* Handles one method frame the broker sent. Returns false with err set
 * when it ends the run. */
static bool
on_method(struct ed_producer *p, const amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m->decoded;

        return on_confirm(p, a->delivery_tag, a->multiple, false);
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = m->decoded;

        return on_confirm(p, a->delivery_tag, a->multiple, true);
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        return true;
    default:
        econn_close_text(m, p->err, sizeof(p->err));
        return false;
    }
}

/*
 * Reads the broker's frames until at most `max` publishes are
 * unconfirmed. Returns false with err set on an error, a close, or when
 * FINISH_NS passed.
 */
static bool
await_confirms(struct ed_producer *p, uint64_t max)
{
    uint64_t deadline = perf_now_ns() + FINISH_NS;

    while (p->next_tag - p->low > max) {
        amqp_frame_t f;
        struct timeval tv = {0, WAIT_US};
        int rc = amqp_simple_wait_frame_noblock(p->c, &f, &tv);
        bool ok = true;

        if (rc == AMQP_STATUS_TIMEOUT) {
            if (perf_now_ns() < deadline)
                continue;
            snprintf(p->err, sizeof(p->err),
                     "%llu confirms missing after %llu s",
                     (unsigned long long)(p->next_tag - p->low),
                     FINISH_NS / 1000000000ull);
            return false;
        }
        if (rc != AMQP_STATUS_OK) {
            snprintf(p->err, sizeof(p->err), "waiting for confirms: %s",
                     amqp_error_string2(rc));
            return false;
        }
        if (f.frame_type == AMQP_FRAME_METHOD && f.channel <= 1)
            ok = on_method(p, &f.payload.method);
        amqp_maybe_release_buffers(p->c);
        if (!ok)
            return false;
    }
    return true;
}

/* Publishes the next message with one amqp_basic_publish. Returns false
 * with err set when the library fails. */
static bool
publish(struct ed_producer *p)
{
    const struct ed_opts *o = p->run->o;
    const struct ed_routes *rs = &p->run->routes;
    const struct ed_route *rt = &rs->r[(p->id + p->k++) % (uint64_t)rs->n];
    int slot = rt->target == PMSG_BROADCAST ? o->queues : rt->target;
    uint64_t now = perf_now_ns();
    struct pmsg_hdr h = {p->seq[slot], (uint16_t)p->id, rt->target,
                         pmsg_ticks(now), 0};
    amqp_basic_properties_t props;
    int rc;

    pmsg_put_hdr(p->body, &h, p->pad_hash);
    memset(&props, 0, sizeof(props));
    if (o->persistent) {
        props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
        props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    rc = amqp_basic_publish(p->c, 1, rt->exchange, rt->key, 0, 0, &props,
                            (amqp_bytes_t){o->size, p->body});
    if (rc != AMQP_STATUS_OK) {
        snprintf(p->err, sizeof(p->err), "basic.publish: %s",
                 amqp_error_string2(rc));
        return false;
    }
    p->seq[slot]++;
    ctr_add(&p->published, 1);
    if (p->ring_ts != NULL) {
        p->ring_ts[p->next_tag & p->ring_mask] = now;
        p->ring_done[p->next_tag & p->ring_mask] = 0;
        p->next_tag++;
    }
    return true;
}

static bool
setup(struct ed_producer *p)
{
    p->c = econn_open(p->run->o, p->err, sizeof(p->err));
    if (p->c == NULL)
        return false;
    if (p->run->o->confirm == 0)
        return true;
    amqp_confirm_select(p->c, 1);
    return !econn_failed(amqp_get_rpc_reply(p->c), "confirm.select", p->err,
                         sizeof(p->err));
}

void *
eprod_main(void *arg)
{
    struct ed_producer *p = arg;
    uint32_t window = p->run->o->confirm;

    if (!setup(p))
        goto fail;
    atomic_store(&p->ready, true);
    while (ed_phase(p->run) == EP_SETUP)
        nap_until(perf_now_ns() + 1000000);
    while (pace(p)) {
        if (!publish(p))
            goto fail;
        if (window > 0 && !await_confirms(p, window - 1))
            goto fail;
    }
    if (window > 0 && !await_confirms(p, 0))
        goto fail;
    econn_close(p->c);
    p->c = NULL;
    atomic_store(&p->done, true);
    return NULL;
fail: /* err says why */
    atomic_store(&p->failed, true);
    atomic_store(&p->done, true);
    return NULL;
}
