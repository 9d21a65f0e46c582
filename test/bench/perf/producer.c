/*
 * producer.c: one publishing connection, on its own thread.
 *
 * The loop builds a batch of publishes into the write queue only when the
 * previous batch is entirely in the kernel, and writes it with one writev,
 * so the socket always has data while the producer spends its time
 * building frames rather than in system calls. What limits a batch:
 * BATCH_BYTES of output, the confirm window (tags published and not yet
 * confirmed), the fixed rate (messages due by now), the message limit
 * (backlog mode), and connection.blocked.
 *
 * Confirms: tags [low, next_tag) are outstanding; a ring of the window's
 * size (a power of two) holds each one's send time and whether it was
 * resolved, so acks with or without `multiple`, in any order, resolve each
 * tag once and give its confirm latency.
 *
 * Ensures at the end (PH_STOP or the deadline): every built frame is
 * written, every confirm has arrived (or 60 s passed), and the connection
 * is closed with close-ok, so the broker has handled every publish before
 * the main thread computes what the consumers must receive.
 */
#include "test/bench/perf/run.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define BATCH_BYTES (512u << 10)
#define BATCH_MAX   4096u
#define WAKE_MAX_NS (100ull * 1000000ull)
#define FINISH_NS   (60ull * 1000000000ull)
/* A broker applying flow control reads our close only after every
 * publish before it, which can take as long as its backlog: wait. */
#define CLOSE_NS (120ull * 1000000000ull)

void
prod_init(struct producer *p, struct run *run, int id, uint64_t limit)
{
    const struct perf_opts *o = run->o;

    memset(p, 0, sizeof(*p));
    p->run = run;
    p->id = id;
    p->limit = limit;
    pconn_init(&p->c);
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
prod_fini(struct producer *p)
{
    pconn_fini(&p->c);
    pmsg_factory_fini(&p->f);
    free(p->seq);
    free(p->ring_ts);
    free(p->ring_done);
}

static int
setup(struct producer *p)
{
    const struct perf_opts *o = p->run->o;
    struct amqp_method m;

    if (pconn_open(&p->c, &p->run->t) != WR_OK)
        return WR_ERR;
    if (o->confirm > 0) {
        memset(&m, 0, sizeof(m));
        m.id = AMQP_CONFIRM_SELECT;
        if (pconn_rpc(&p->c, 1, &m, AMQP_CONFIRM_SELECT_OK, NULL) != WR_OK)
            return WR_ERR;
    }
    pmsg_factory_init(&p->f, (uint16_t)p->id, o->size, p->c.frame_max);
    topo_add_routes(o, &p->f);
    return WR_OK;
}

static void
resolve(struct producer *p, uint64_t tag, bool nack, uint64_t now)
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

static int
on_confirm(struct producer *p, uint64_t tag, bool multiple, bool nack)
{
    uint64_t now = perf_now_ns();

    if (p->ring_done == NULL || tag >= p->next_tag || tag == 0) {
        snprintf(p->c.err, sizeof(p->c.err),
                 "broker confirmed delivery tag %llu, never published",
                 (unsigned long long)tag);
        return WR_ERR;
    }
    if (tag < p->low)
        return WR_OK; /* already resolved */
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
    return WR_OK;
}

static int
handle_method(struct producer *p, const struct frame *f)
{
    struct amqp_method m;
    const char *why = NULL;

    if (f->channel != 1)
        return pconn_handle_other(&p->c, f);
    if (amqp_method_decode(f->payload.ptr, f->payload.len, &m, &why) !=
        AMQP_DECODE_OK)
        return pconn_handle_other(&p->c, f);
    switch (m.id) {
    case AMQP_BASIC_ACK:
        return on_confirm(p, m.u.basic_ack.delivery_tag, m.u.basic_ack.multiple,
                          false);
    case AMQP_BASIC_NACK:
        return on_confirm(p, m.u.basic_nack.delivery_tag,
                          m.u.basic_nack.multiple, true);
    case AMQP_BASIC_RETURN:
        ctr_add(&p->returned, 1);
        p->skip_header = true;
        return WR_OK;
    default:
        return pconn_handle_other(&p->c, f);
    }
}

static int
handle_frame(struct producer *p, const struct frame *f)
{
    uint16_t class_id;
    struct bytes props;

    if (p->skip_header && f->type == FRAME_HEADER) {
        if (frame_parse_content_header(f->payload, &class_id, &p->skip_body,
                                       &props) != WR_OK) {
            snprintf(p->c.err, sizeof(p->c.err), "bad content header");
            return WR_ERR;
        }
        p->skip_header = false;
        return WR_OK;
    }
    if (p->skip_body > 0 && f->type == FRAME_BODY) {
        p->skip_body -= WR_MIN(p->skip_body, (uint64_t)f->payload.len);
        return WR_OK;
    }
    if (f->type == FRAME_METHOD)
        return handle_method(p, f);
    return pconn_handle_other(&p->c, f);
}

/* Reads and handles everything the socket has. */
static int
drain_input(struct producer *p)
{
    for (;;) {
        ssize_t n = pconn_read(&p->c);
        struct frame f;

        if (n == WR_AGAIN)
            return WR_OK;
        if (n < 0)
            return WR_ERR;
        while (pconn_next_frame(&p->c, &f) == WR_OK) {
            if (handle_frame(p, &f) != WR_OK)
                return WR_ERR;
        }
        if (p->c.fp.err != FRAME_ERR_NONE)
            return WR_ERR;
    }
}

static void
build(struct producer *p, uint64_t n, uint64_t now)
{
    const struct perf_opts *o = p->run->o;
    struct pmsg_hdr h;

    h.producer = (uint16_t)p->id;
    h.ts = pmsg_ticks(now);
    h.check = 0;
    for (uint64_t i = 0; i < n; i++) {
        int route = (int)((p->id + p->k++) % (uint64_t)p->f.nroutes);
        uint16_t target = p->f.routes[route].target;
        int idx = target == PMSG_BROADCAST ? o->queues : target;

        h.seq = p->seq[idx]++;
        h.target = target;
        pmsg_put(&p->f, &p->c.out, route, &h);
        if (p->ring_ts != NULL)
            p->ring_ts[p->next_tag & p->ring_mask] = now;
        p->next_tag++;
    }
    ctr_add(&p->published, n);
}

/*
 * How many messages may be built now, and until when to sleep if none:
 * *wake is left alone unless the rate says when the next one is due.
 */
static uint64_t
budget(struct producer *p, uint64_t now, uint64_t *wake)
{
    const struct perf_opts *o = p->run->o;
    uint64_t published = ctr_get(&p->published);
    uint64_t n = WR_MAX(1, WR_MIN(BATCH_MAX, BATCH_BYTES / (o->size + 64)));

    if (p->c.blocked)
        return 0;
    if (o->confirm > 0)
        n = WR_MIN(n, o->confirm - (p->next_tag - p->low));
    if (p->limit > 0)
        n = WR_MIN(n, p->limit - published);
    if (o->rate > 0) {
        uint64_t due =
            (uint64_t)((double)(now - p->run->t0) * o->rate / 1e9) + 1;

        n = due > published ? WR_MIN(n, due - published) : 0;
        if (n == 0) {
            uint64_t next =
                p->run->t0 + (uint64_t)((double)published * 1e9 / o->rate);

            *wake = WR_MIN(*wake, next);
        }
    }
    return n;
}

static bool
time_up(struct producer *p, uint64_t now)
{
    return run_phase(p->run) >= PH_STOP || now >= p->run->deadline ||
           (p->limit > 0 && ctr_get(&p->published) >= p->limit);
}

static int
publish_loop(struct producer *p)
{
    struct pconn *c = &p->c;

    for (;;) {
        uint64_t now = perf_now_ns();
        uint64_t wake = WR_MIN(now + WAKE_MAX_NS, p->run->deadline);
        uint64_t n;
        short ev;

        if (time_up(p, now))
            break;
        if (c->out.pending == 0 && (n = budget(p, now, &wake)) > 0) {
            build(p, n, now);
            if (wq_write(&c->out, c->fd) == WR_ERR) {
                snprintf(c->err, sizeof(c->err), "write failed");
                return WR_ERR;
            }
            /* More may be due at once: only look at the input. */
            if (c->out.pending == 0 && budget(p, now, &wake) > 0)
                wake = now;
        }
        ev = pconn_wait(c, POLLIN | (c->out.pending ? POLLOUT : 0), wake);
        if ((ev & (POLLIN | POLLERR | POLLHUP)) && drain_input(p) != WR_OK)
            return WR_ERR;
        if ((ev & POLLOUT) && wq_write(&c->out, c->fd) == WR_ERR) {
            snprintf(c->err, sizeof(c->err), "write failed");
            return WR_ERR;
        }
    }
    p->stop_ns = perf_now_ns();
    return WR_OK;
}

/* Flushes what is queued and waits for the outstanding confirms. */
static int
finish(struct producer *p)
{
    struct pconn *c = &p->c;
    uint64_t deadline = perf_now_ns() + FINISH_NS;

    while (c->out.pending > 0 || (p->ring_done && p->low < p->next_tag)) {
        short ev =
            pconn_wait(c, POLLIN | (c->out.pending ? POLLOUT : 0), deadline);

        if (ev == 0) {
            snprintf(c->err, sizeof(c->err),
                     "%llu confirms still missing 60 s after publishing",
                     (unsigned long long)(p->next_tag - p->low));
            return WR_ERR;
        }
        if ((ev & (POLLIN | POLLERR | POLLHUP)) && drain_input(p) != WR_OK)
            return WR_ERR;
        if ((ev & POLLOUT) && wq_write(&c->out, c->fd) == WR_ERR)
            return WR_ERR;
    }
    return pconn_close(c, perf_now_ns() + CLOSE_NS);
}

void *
prod_main(void *arg)
{
    struct producer *p = arg;

    if (setup(p) != WR_OK)
        goto fail;
    atomic_store(&p->ready, true);
    while (run_phase(p->run) == PH_SETUP)
        usleep(1000);
    if (run_phase(p->run) < PH_DONE) {
        if (publish_loop(p) != WR_OK || finish(p) != WR_OK)
            goto fail;
    }
    atomic_store(&p->done, true);
    return NULL;
fail: /* c.err says why */
    if (p->stop_ns == 0)
        p->stop_ns = perf_now_ns();
    atomic_store(&p->failed, true);
    atomic_store(&p->done, true);
    return NULL;
}
