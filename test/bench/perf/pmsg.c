/*
 * pmsg.c: the frames of a warren-perf publish. The body itself (header
 * and padding) is pmsg_body.c's.
 *
 * A publish is three frames or more: basic.publish, the content header,
 * the body in frames of at most frame_max - 8 bytes. The first two depend
 * only on the route (exchange, routing key, properties, body size), so
 * each route encodes them once with the project's codec and a publish
 * copies the bytes. Padding slices of PMSG_EXT_MIN bytes or more are
 * queued by reference instead of copied.
 */
#include "amqp/ftable.h"
#include "test/bench/perf/perf.h"

#include <stdlib.h>

#define PMSG_EXT_MIN 2048

void
pmsg_factory_init(struct pmsg_factory *f, uint16_t producer, size_t size,
                  uint32_t frame_max)
{
    WR_ASSERT(size >= PMSG_HDR_SIZE);
    WR_ASSERT(frame_max >= FRAME_MIN_SIZE);
    memset(f, 0, sizeof(*f));
    f->producer = producer;
    f->size = size;
    f->chunk = frame_max - FRAME_OVERHEAD;
    f->pad = xmalloc(size - PMSG_HDR_SIZE + 1);
    pmsg_fill_pad(f->pad, size - PMSG_HDR_SIZE, producer);
    f->pad_hash = pmsg_pad_hash(f->pad, size - PMSG_HDR_SIZE);
}

void
pmsg_factory_fini(struct pmsg_factory *f)
{
    for (int i = 0; i < f->nroutes; i++)
        buf_fini(&f->routes[i].prefix);
    free(f->routes);
    free(f->pad);
    memset(f, 0, sizeof(*f));
}

int
pmsg_add_route(struct pmsg_factory *f, const char *exchange,
               const char *routing_key, bool persistent, int headers_q,
               uint16_t target)
{
    struct pmsg_route *r;
    struct amqp_method m;
    struct amqp_basic_props props;
    struct buf hdrs;

    f->routes =
        xrealloc(f->routes, (size_t)(f->nroutes + 1) * sizeof(*f->routes));
    r = &f->routes[f->nroutes];
    buf_init(&r->prefix);
    r->target = target;
    memset(&m, 0, sizeof(m));
    m.id = AMQP_BASIC_PUBLISH;
    m.u.basic_publish.exchange = bytes_str(exchange);
    m.u.basic_publish.routing_key = bytes_str(routing_key);
    frame_put_method(&r->prefix, 1, &m);
    memset(&props, 0, sizeof(props));
    buf_init(&hdrs);
    if (persistent) {
        props.flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        props.delivery_mode = 2;
    }
    if (headers_q >= 0) {
        fenc_i32(&hdrs, "perf-q", headers_q);
        props.flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers = buf_bytes(&hdrs);
    }
    frame_put_content_header_props(&r->prefix, 1, f->size, &props);
    buf_fini(&hdrs);
    return f->nroutes++;
}

/* Appends pad[off, off + n) by copy or by reference. */
static void
put_pad(struct pmsg_factory *f, struct wq *q, size_t off, size_t n)
{
    if (n >= PMSG_EXT_MIN)
        wq_put_ext(q, f->pad + off, n);
    else if (n > 0)
        buf_append(&q->b, f->pad + off, n);
}

static void
put_frame_head(struct buf *b, size_t n)
{
    uint8_t *p = buf_reserve(b, FRAME_HEADER_SIZE);

    p[0] = FRAME_BODY;
    be16_store(p + 1, 1);
    be32_store(p + 3, (uint32_t)n);
    b->len += FRAME_HEADER_SIZE;
}

void
pmsg_put(struct pmsg_factory *f, struct wq *q, int route,
         const struct pmsg_hdr *h)
{
    const struct pmsg_route *r = &f->routes[route];
    struct buf *b = &q->b;
    size_t first = WR_MIN((size_t)f->chunk, f->size);
    size_t off;
    uint8_t *p;

    buf_append(b, r->prefix.data, r->prefix.len);
    /* First body frame: header, then as much padding as fits. */
    put_frame_head(b, first);
    p = buf_reserve(b, PMSG_HDR_SIZE);
    pmsg_put_hdr(p, h, f->pad_hash);
    b->len += PMSG_HDR_SIZE;
    put_pad(f, q, 0, first - PMSG_HDR_SIZE);
    buf_put_u8(b, FRAME_END);
    /* Ensures: body bytes [0, off) are queued. */
    for (off = first; off < f->size;) {
        size_t n = WR_MIN((size_t)f->chunk, f->size - off);

        put_frame_head(b, n);
        put_pad(f, q, off - PMSG_HDR_SIZE, n);
        buf_put_u8(b, FRAME_END);
        off += n;
    }
    wq_commit(q);
}
