/*
 * pmsg_body.c: the body every warren-perf and warren-everyday message
 * carries.
 *
 * The body starts with a 16-byte header (kit.h has the layout: sequence,
 * producer, target queue, send time, check) and is padded to the
 * configured size with bytes fixed per producer. The check is XXH3 over
 * the first 12 header bytes seeded with XXH3 of the padding, so a consumer
 * that recomputes it catches a flipped bit anywhere in the body, and a
 * producer pays only a 12-byte hash per message (the padding hash is
 * computed once).
 */
#include "test/bench/perf/kit.h"

#include <xxhash.h>

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void
pmsg_fill_pad(uint8_t *pad, size_t n, uint16_t producer)
{
    uint64_t state = 0x57415252454eull + producer; /* "WARREN" */

    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = splitmix64(&state);

        memcpy(pad + i, &v, WR_MIN(8, n - i));
    }
}

uint64_t
pmsg_pad_hash(const uint8_t *pad, size_t n)
{
    return n == 0 ? 0 : XXH3_64bits(pad, n);
}

void
pmsg_put_hdr(uint8_t *out, const struct pmsg_hdr *h, uint64_t pad_hash)
{
    be32_store(out, h->seq);
    be16_store(out + 4, h->producer);
    be16_store(out + 6, h->target);
    be32_store(out + 8, h->ts);
    be32_store(out + 12, (uint32_t)XXH3_64bits_withSeed(out, 12, pad_hash));
}

bool
pmsg_get_hdr(const uint8_t *in, uint64_t pad_hash, struct pmsg_hdr *h)
{
    h->seq = be32_load(in);
    h->producer = be16_load(in + 4);
    h->target = be16_load(in + 6);
    h->ts = be32_load(in + 8);
    h->check = be32_load(in + 12);
    return h->check == (uint32_t)XXH3_64bits_withSeed(in, 12, pad_hash);
}
