/*
 * fuzz_peer: the node-to-node handshake's parsers (cluster/peer.c)
 * against hostile bytes. Any process that reaches cluster.listen can send
 * anything; the accepting node must answer garbage and a wrong secret
 * with an error, never a crash, an over-read or a wait without end.
 *
 * The input's first byte picks a mode:
 *
 *   raw     (0..127)   the rest goes to each parser as a peer would send
 *                      it (HELLO, AUTH and OK, with a fixed secret and
 *                      nonces). A result of WR_OK must have used no more
 *                      than the input, and every shorter prefix of it must
 *                      ask for more (WR_AGAIN) or fail the same way, never
 *                      succeed;
 *   sealed  (128..255) the rest becomes the fields of a correctly signed
 *                      AUTH and OK (the next byte is the node name's
 *                      length, then the name, then the payload or text),
 *                      so the checks behind the MAC see the fuzzer's
 *                      names and payloads. An AUTH round-trips exactly
 *                      when its node name is non-empty UTF-8; an OK always
 *                      does; a wrong secret is always refused.
 */
#include "cluster/peer.h"
#include "fuzz_util.h"

#include <string.h>

static const uint8_t nonce_s[PEER_NONCE] = "server-nonce-of-the-fuzz-target";
static const uint8_t nonce_c[PEER_NONCE] = "client-nonce-of-the-fuzz-target";

static struct bytes
secret(void)
{
    return bytes_str("the cluster's secret");
}

/* One parser, by number, over in. */
static int
parse(int which, struct bytes in, size_t *used)
{
    uint8_t nonce[PEER_NONCE], status;
    struct peer_auth a;
    struct bytes text;
    const char *why = NULL;
    int rc;

    *used = 0;
    if (which == 0)
        rc = peer_hello_parse(in, nonce, used, &why);
    else if (which == 1)
        rc = peer_auth_parse(secret(), nonce_s, in, &a, used, &why);
    else
        rc = peer_ok_parse(secret(), nonce_c, in, &status, &text, used, &why);
    FUZZ_CHECK(rc == WR_OK || rc == WR_AGAIN || rc == WR_ERR);
    FUZZ_CHECK(rc != WR_ERR || why != NULL);
    if (rc == WR_OK)
        FUZZ_CHECK(*used > 0 && *used <= in.len);
    if (rc == WR_OK && which == 1) {
        FUZZ_CHECK(a.node.ptr >= in.ptr &&
                   a.node.ptr + a.node.len <= in.ptr + in.len);
        FUZZ_CHECK(a.payload.len <= PEER_MAX_PAYLOAD);
    }
    if (rc == WR_OK && which == 2)
        FUZZ_CHECK(text.len <= PEER_MAX_TEXT);
    return rc;
}

static void
raw(struct bytes in)
{
    size_t used, u2, cut;
    int which, rc;

    for (which = 0; which < 3; which++) {
        rc = parse(which, in, &used);
        if (rc != WR_OK)
            continue;
        /* A message is recognised only once all of it is there. */
        for (cut = 0; cut < used; cut += 1 + cut / 8)
            FUZZ_CHECK(parse(which, bytes_of(in.ptr, cut), &u2) != WR_OK);
        FUZZ_CHECK(parse(which, bytes_of(in.ptr, used), &u2) == WR_OK &&
                   u2 == used);
    }
}

static void
sealed_auth(struct bytes node, struct bytes payload)
{
    uint8_t client[PEER_NONCE];
    char name[256];
    struct peer_auth a;
    struct buf out;
    const char *why = NULL;
    size_t used;
    int rc;

    memcpy(name, node.ptr, node.len);
    name[node.len] = '\0';
    node.len = strlen(name); /* the encoder takes a C string */
    buf_init(&out);
    peer_auth_encode(secret(), nonce_s, client, name, PEER_RELAY, payload,
                     &out);
    rc = peer_auth_parse(secret(), nonce_s, bytes_of(out.data, out.len), &a,
                         &used, &why);
    if (node.len > 0 && bytes_is_utf8(node)) {
        FUZZ_CHECK(rc == WR_OK && used == out.len);
        FUZZ_CHECK(bytes_eq(a.node, node) && bytes_eq(a.payload, payload));
        FUZZ_CHECK(a.purpose == PEER_RELAY);
        FUZZ_CHECK(memcmp(a.client_nonce, client, PEER_NONCE) == 0);
    } else {
        FUZZ_CHECK(rc == WR_ERR && why != NULL);
    }
    /* The same bytes under another secret, or for another HELLO. */
    FUZZ_CHECK(peer_auth_parse(bytes_str("another secret"), nonce_s,
                               bytes_of(out.data, out.len), &a, &used,
                               &why) == WR_ERR);
    FUZZ_CHECK(peer_auth_parse(secret(), nonce_c, bytes_of(out.data, out.len),
                               &a, &used, &why) == WR_ERR);
    buf_fini(&out);
}

static void
sealed_ok(struct bytes text)
{
    char t[PEER_MAX_TEXT + 1];
    struct bytes got;
    struct buf out;
    const char *why = NULL;
    uint8_t status;
    size_t used, n = WR_MIN(text.len, PEER_MAX_TEXT);

    memcpy(t, text.ptr, n);
    t[n] = '\0';
    buf_init(&out);
    peer_ok_encode(secret(), nonce_c, PEER_REFUSED, t, &out);
    FUZZ_CHECK(peer_ok_parse(secret(), nonce_c, bytes_of(out.data, out.len),
                             &status, &got, &used, &why) == WR_OK);
    FUZZ_CHECK(used == out.len && status == PEER_REFUSED);
    FUZZ_CHECK(got.len == strlen(t) && memcmp(got.ptr, t, got.len) == 0);
    FUZZ_CHECK(peer_ok_parse(bytes_str("another secret"), nonce_c,
                             bytes_of(out.data, out.len), &status, &got, &used,
                             &why) == WR_ERR);
    buf_fini(&out);
}

static void
sealed(struct bytes in)
{
    size_t n;

    if (in.len == 0)
        return;
    n = WR_MIN((size_t)in.ptr[0], in.len - 1);
    sealed_auth(bytes_of(in.ptr + 1, n),
                bytes_of(in.ptr + 1 + n,
                         WR_MIN(in.len - 1 - n, (size_t)PEER_MAX_PAYLOAD)));
    sealed_ok(bytes_of(in.ptr + 1, in.len - 1));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] < 128)
        raw(bytes_of(data + 1, size - 1));
    else
        sealed(bytes_of(data + 1, size - 1));
    return 0;
}
