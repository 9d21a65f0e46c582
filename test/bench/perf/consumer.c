/*
 * consumer.c: one consuming connection, on its own thread.
 *
 * The loop reads as much as the socket has (one read into a buffer of at
 * least 1 MiB), handles every complete frame in it, queues the acks that
 * came due, and writes them with one writev before reading again. A
 * delivery is three frames or more (basic.deliver, content header, body);
 * enum cons_state says which is next.
 *
 * Each body is checked: its size, the check over header and padding (a
 * body in one frame is hashed in place; one spread over several frames is
 * hashed incrementally, never reassembled), that it reached the queue it
 * was routed to, and its sequence number (track.c). Its latency is the
 * time of the read that completed it minus the send time in its header.
 *
 * Manual acks go out every ack_every deliveries with multiple=true, and
 * never later than a full prefetch window (or the consumer would stall).
 */
#include "test/bench/perf/run.h"
#include "amqp/ftable.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define WAKE_NS  (100ull * 1000000ull)
#define CLOSE_NS (10ull * 1000000000ull)

void
cons_init(struct consumer *cs, struct run *run, int id)
{
    const struct perf_opts *o = run->o;

    memset(cs, 0, sizeof(*cs));
    cs->run = run;
    cs->id = id;
    cs->queue = id % o->queues;
    pconn_init(&cs->c);
    cs->tr = xcalloc((size_t)run->nprod, sizeof(*cs->tr));
    for (int i = 0; i < run->nprod; i++)
        track_init(&cs->tr[i]);
    hist_init(&cs->lat);
    cs->xs = XXH3_createState();
    WR_ASSERT(cs->xs != NULL);
    cs->ack_every = o->multi_ack;
    if (o->prefetch > 0 && o->prefetch < cs->ack_every)
        cs->ack_every = o->prefetch;
}

void
cons_fini(struct consumer *cs)
{
    pconn_fini(&cs->c);
    for (int i = 0; i < cs->run->nprod; i++)
        track_fini(&cs->tr[i]);
    free(cs->tr);
    XXH3_freeState(cs->xs);
}

/* Sends basic.consume m, with x-stream-offset when given (a number as a
 * long, else the word). */
static int
consume(struct consumer *cs, struct amqp_method *m, const char *offset)
{
    struct buf args;
    char *end;
    long long n;
    int rc;

    buf_init(&args);
    if (offset) {
        n = strtoll(offset, &end, 10);
        if (*offset && !*end)
            fenc_int(&args, "x-stream-offset", n);
        else
            fenc_cstr(&args, "x-stream-offset", offset);
    }
    m->u.basic_consume.arguments = buf_bytes(&args);
    rc = pconn_rpc(&cs->c, 1, m, AMQP_BASIC_CONSUME_OK, NULL);
    buf_fini(&args);
    return rc;
}

static int
setup(struct consumer *cs)
{
    const struct perf_opts *o = cs->run->o;
    struct amqp_method m;
    char queue[256];
    char tag[32];

    if (pconn_open(&cs->c, &cs->run->t) != WR_OK)
        return WR_ERR;
    if (o->prefetch > 0) {
        memset(&m, 0, sizeof(m));
        m.id = AMQP_BASIC_QOS;
        m.u.basic_qos.prefetch_count = o->prefetch;
        if (pconn_rpc(&cs->c, 1, &m, AMQP_BASIC_QOS_OK, NULL) != WR_OK)
            return WR_ERR;
    }
    topo_queue_name(o, cs->queue, queue, sizeof(queue));
    snprintf(tag, sizeof(tag), "perf-c%d", cs->id);
    memset(&m, 0, sizeof(m));
    m.id = AMQP_BASIC_CONSUME;
    m.u.basic_consume.queue = bytes_str(queue);
    m.u.basic_consume.consumer_tag = bytes_str(tag);
    m.u.basic_consume.no_ack = o->multi_ack == 0;
    return consume(cs, &m, o->stream_offset);
}

static void
put_ack(struct consumer *cs)
{
    struct amqp_method m;

    memset(&m, 0, sizeof(m));
    m.id = AMQP_BASIC_ACK;
    m.u.basic_ack.delivery_tag = cs->tag;
    m.u.basic_ack.multiple = true;
    pconn_put_method(&cs->c, 1, &m);
    cs->unacked = 0;
}

/* Judges one complete body whose first 16 bytes are `head`. */
static void
verify(struct consumer *cs, const uint8_t *head, uint64_t pad_hash)
{
    const struct run *run = cs->run;
    struct pmsg_hdr h;

    ctr_add(&cs->received, 1);
    ctr_add(&cs->bytes, cs->body_size);
    if (cs->body_size != run->o->size || !pmsg_get_hdr(head, pad_hash, &h)) {
        cs->corrupted++;
    } else if (h.producer >= run->nprod ||
               (h.target != cs->queue &&
                !(h.target == PMSG_BROADCAST && run->o->xtype == XT_FANOUT))) {
        cs->unexpected++;
    } else {
        uint32_t lat = pmsg_ticks(cs->now_ns) - h.ts;

        if (track_see(&cs->tr[h.producer], h.seq, cs->redelivered))
            ctr_add(&cs->unique, 1);
        hist_record(&cs->lat, (uint64_t)lat * PMSG_TICK_NS);
    }
    if (cs->ack_every > 0 && ++cs->unacked >= cs->ack_every)
        put_ack(cs);
    cs->st = CS_METHOD;
}

static void
body_part(struct consumer *cs, struct bytes part)
{
    const uint8_t *p = part.ptr;
    size_t n = part.len;

    if (cs->body_got == 0 && n == cs->body_size) {
        /* The whole body in one frame: hash it in place. verify() reads
         * the header only when the size is right, so at least 16. */
        verify(cs, p,
               n > PMSG_HDR_SIZE
                   ? pmsg_pad_hash(p + PMSG_HDR_SIZE, n - PMSG_HDR_SIZE)
                   : 0);
        return;
    }
    if (cs->body_got == 0) {
        XXH3_64bits_reset(cs->xs);
        cs->head_got = 0;
    }
    cs->body_got += n;
    if (cs->head_got < PMSG_HDR_SIZE) {
        size_t take = WR_MIN(PMSG_HDR_SIZE - cs->head_got, n);

        memcpy(cs->head + cs->head_got, p, take);
        cs->head_got += take;
        p += take;
        n -= take;
    }
    if (n > 0)
        XXH3_64bits_update(cs->xs, p, n);
    if (cs->body_got < cs->body_size)
        return;
    if (cs->head_got < PMSG_HDR_SIZE)
        memset(cs->head + cs->head_got, 0, PMSG_HDR_SIZE - cs->head_got);
    verify(cs, cs->head,
           cs->body_size > PMSG_HDR_SIZE ? XXH3_64bits_digest(cs->xs) : 0);
}

static int
fail_with(struct consumer *cs, const char *what)
{
    snprintf(cs->c.err, sizeof(cs->c.err), "%s", what);
    return WR_ERR;
}

static int
on_method(struct consumer *cs, const struct frame *f)
{
    struct amqp_method m;
    const char *why = NULL;

    if (f->channel != 1 || amqp_method_decode(f->payload.ptr, f->payload.len,
                                              &m, &why) != AMQP_DECODE_OK)
        return pconn_handle_other(&cs->c, f);
    if (m.id == AMQP_BASIC_DELIVER) {
        cs->tag = m.u.basic_deliver.delivery_tag;
        cs->redelivered = m.u.basic_deliver.redelivered;
        cs->st = CS_HEADER;
        return WR_OK;
    }
    if (m.id == AMQP_BASIC_CANCEL)
        return fail_with(cs, "the broker cancelled the consumer");
    return pconn_handle_other(&cs->c, f);
}

static int
on_frame(struct consumer *cs, const struct frame *f)
{
    uint16_t class_id;
    struct bytes props;

    if (f->type == FRAME_HEARTBEAT)
        return WR_OK;
    switch (cs->st) {
    case CS_METHOD:
        if (f->type != FRAME_METHOD)
            return fail_with(cs, "content frame without basic.deliver");
        return on_method(cs, f);
    case CS_HEADER:
        if (f->type != FRAME_HEADER || f->channel != 1 ||
            frame_parse_content_header(f->payload, &class_id, &cs->body_size,
                                       &props) != WR_OK)
            return fail_with(cs, "expected a content header");
        cs->body_got = 0;
        cs->st = CS_BODY;
        if (cs->body_size == 0)
            verify(cs, (const uint8_t *)"", 0); /* corrupted: too short */
        return WR_OK;
    case CS_BODY:
        if (f->type != FRAME_BODY || f->channel != 1)
            return fail_with(cs, "expected a body frame");
        if (cs->body_got + f->payload.len > cs->body_size)
            return fail_with(cs, "body longer than its content header");
        body_part(cs, f->payload);
        return WR_OK;
    }
    return WR_ERR;
}

static int
handle_input(struct consumer *cs)
{
    struct frame f;
    int rc;

    while ((rc = pconn_next_frame(&cs->c, &f)) == WR_OK) {
        if (on_frame(cs, &f) != WR_OK)
            return WR_ERR;
    }
    return rc == WR_AGAIN ? WR_OK : WR_ERR;
}

static int
consume_loop(struct consumer *cs)
{
    struct pconn *c = &cs->c;

    while (run_phase(cs->run) != PH_DONE) {
        ssize_t n = pconn_read(c);
        short ev;

        if (n > 0) {
            cs->now_ns = perf_now_ns();
            if (handle_input(cs) != WR_OK)
                return WR_ERR;
            if (c->out.pending > 0 && wq_write(&c->out, c->fd) == WR_ERR)
                return fail_with(cs, "write failed");
            if (!c->rx_drained)
                continue; /* the buffer filled up: more is likely there */
        } else if (n != WR_AGAIN) {
            return WR_ERR;
        }
        ev = pconn_wait(c, POLLIN | (c->out.pending ? POLLOUT : 0),
                        perf_now_ns() + WAKE_NS);
        if ((ev & POLLOUT) && wq_write(&c->out, c->fd) == WR_ERR)
            return fail_with(cs, "write failed");
    }
    return WR_OK;
}

void *
cons_main(void *arg)
{
    struct consumer *cs = arg;

    if (setup(cs) != WR_OK)
        goto fail;
    atomic_store(&cs->ready, true);
    if (consume_loop(cs) != WR_OK)
        goto fail;
    if (cs->unacked > 0)
        put_ack(cs);
    if (pconn_close(&cs->c, perf_now_ns() + CLOSE_NS) != WR_OK)
        goto fail;
    atomic_store(&cs->done, true);
    return NULL;
fail: /* c.err says why */
    atomic_store(&cs->failed, true);
    atomic_store(&cs->done, true);
    return NULL;
}
