/*
 * bench_dcount: the cost of x-delivery-count on a quorum queue's counted
 * delivery (not a test): amqp_props_put_long_header on typical
 * properties (content type, persistent, message id, 5 headers), in a
 * reused buffer as conn_send_counted calls it. A consumer's first
 * delivery does not pay it; a basic.get and every delivery after a
 * return do.
 *
 *   build-dir/test/bench_dcount [iterations]
 */
#include "amqp/amqp_props.h"
#include "amqp/ftable.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    struct amqp_basic_props p = {0};
    struct buf hdr, props, out;
    uint64_t t0;
    size_t m;

    buf_init(&hdr);
    buf_init(&props);
    buf_init(&out);
    m = ftable_begin(&hdr);
    fenc_cstr(&hdr, "tenant", "acme");
    fenc_int(&hdr, "attempt", 1);
    fenc_cstr(&hdr, "trace-id", "4bf92f3577b34da6a3ce929d0e0e4736");
    fenc_bool(&hdr, "priority-lane", true);
    fenc_i32(&hdr, "version", 3);
    ftable_end(&hdr, m);
    p.flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG |
              AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    p.content_type = bytes_str("application/json");
    p.headers = bytes_of(hdr.data + 4, hdr.len - 4);
    p.delivery_mode = 2;
    p.message_id = bytes_str("msg-000001");
    amqp_basic_props_encode(&p, &props);
    t0 = wr_now_us();
    for (long i = 0; i < n; i++) {
        buf_reset(&out);
        if (amqp_props_put_long_header(buf_bytes(&props), "x-delivery-count", i,
                                       &out) != WR_OK)
            return 1;
    }
    printf("properties of %zu bytes -> %zu bytes: %.1f ns per counted "
           "delivery\n",
           props.len, out.len, 1000.0 * (double)(wr_now_us() - t0) / (double)n);
    buf_fini(&hdr);
    buf_fini(&props);
    buf_fini(&out);
    return 0;
}
