/*
 * peer.c: the node-to-node handshake (layouts and rules in peer.h).
 *
 * Every parser reads through the bounded cursor and says WR_AGAIN while
 * the message is incomplete, so the caller may feed it whatever the
 * socket gave so far. The MAC is compared in constant time
 * (CRYPTO_memcmp); a message that does not fit its layout, a version
 * this node does not speak, or a length over the bounds is "garbage",
 * reported with what was wrong.
 */
#include "cluster/peer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAGIC_HELLO "WRNH"
#define MAGIC_AUTH  "WRNA"
#define MAGIC_OK    "WRNK"

/* HMAC-SHA256(secret, nonce | msg) into mac. */
static void
mac_of(struct bytes secret, const uint8_t nonce[], struct bytes msg,
       uint8_t mac[PEER_MAC])
{
    struct buf b;
    unsigned len = 0;

    buf_init(&b);
    buf_append(&b, nonce, PEER_NONCE);
    buf_append(&b, msg.ptr, msg.len);
    WR_ASSERT(HMAC(EVP_sha256(), secret.ptr, (int)secret.len, b.data, b.len,
                   mac, &len) != NULL &&
              len == PEER_MAC);
    buf_fini(&b);
}

/* The magic and version at the start of in: WR_OK, WR_AGAIN or WR_ERR. */
static int
head(struct cursor *c, const char *magic, const char **why)
{
    struct bytes m;
    uint8_t v;

    if (c->left < 5)
        return c->left > 0 && memcmp(c->p, magic, WR_MIN(c->left, 4)) != 0
                   ? (*why = "garbage: not a Warren peer", WR_ERR)
                   : WR_AGAIN;
    rd_bytes(c, 4, &m);
    rd_u8(c, &v);
    if (memcmp(m.ptr, magic, 4) != 0) {
        *why = "garbage: not a Warren peer";
        return WR_ERR;
    }
    if (v != PEER_VERSION) {
        *why = "garbage: an unknown version of the peer protocol";
        return WR_ERR;
    }
    return WR_OK;
}

void
peer_hello_encode(uint8_t nonce[PEER_NONCE], struct buf *out)
{
    wr_random(nonce, PEER_NONCE);
    buf_append(out, MAGIC_HELLO, 4);
    buf_put_u8(out, PEER_VERSION);
    buf_append(out, nonce, PEER_NONCE);
}

int
peer_hello_parse(struct bytes in, uint8_t nonce[PEER_NONCE], size_t *used,
                 const char **why)
{
    struct cursor c;
    struct bytes n;
    int rc;

    cur_init(&c, in.ptr, in.len);
    if ((rc = head(&c, MAGIC_HELLO, why)) != WR_OK)
        return rc;
    if (!rd_bytes(&c, PEER_NONCE, &n))
        return WR_AGAIN;
    memcpy(nonce, n.ptr, PEER_NONCE);
    *used = in.len - c.left;
    return WR_OK;
}

void
peer_auth_encode(struct bytes secret, const uint8_t server_nonce[],
                 uint8_t client_nonce[PEER_NONCE], const char *node,
                 enum peer_purpose purpose, struct bytes payload,
                 struct buf *out)
{
    size_t start = out->len;
    uint8_t mac[PEER_MAC];

    WR_ASSERT(strlen(node) <= 255 && payload.len <= PEER_MAX_PAYLOAD);
    wr_random(client_nonce, PEER_NONCE);
    buf_append(out, MAGIC_AUTH, 4);
    buf_put_u8(out, PEER_VERSION);
    buf_append(out, client_nonce, PEER_NONCE);
    buf_put_shortstr(out, bytes_str(node));
    buf_put_u8(out, (uint8_t)purpose);
    buf_put_longstr(out, payload);
    mac_of(secret, server_nonce, bytes_of(out->data + start, out->len - start),
           mac);
    buf_append(out, mac, PEER_MAC);
}

/* The fields of an AUTH after its head: WR_OK or WR_AGAIN. */
static int
auth_fields(struct cursor *c, struct peer_auth *out, const char **why)
{
    struct bytes n;
    uint32_t len;

    if (!rd_bytes(c, PEER_NONCE, &n) || !rd_shortstr(c, &out->node) ||
        !rd_u8(c, &out->purpose) || !rd_u32(c, &len))
        return WR_AGAIN;
    memcpy(out->client_nonce, n.ptr, PEER_NONCE);
    if (len > PEER_MAX_PAYLOAD) {
        *why = "garbage: a payload over the limit";
        return WR_ERR;
    }
    return rd_bytes(c, len, &out->payload) ? WR_OK : WR_AGAIN;
}

int
peer_auth_parse(struct bytes secret, const uint8_t server_nonce[],
                struct bytes in, struct peer_auth *out, size_t *used,
                const char **why)
{
    struct cursor c;
    struct bytes mac;
    uint8_t want[PEER_MAC];
    int rc;

    cur_init(&c, in.ptr, in.len);
    if ((rc = head(&c, MAGIC_AUTH, why)) != WR_OK ||
        (rc = auth_fields(&c, out, why)) != WR_OK)
        return rc;
    if (!rd_bytes(&c, PEER_MAC, &mac))
        return WR_AGAIN;
    mac_of(secret, server_nonce, bytes_of(in.ptr, in.len - c.left - PEER_MAC),
           want);
    if (CRYPTO_memcmp(mac.ptr, want, PEER_MAC) != 0) {
        *why = "wrong secret (cluster.secret differs, or not a cluster node)";
        return WR_ERR;
    }
    if (!bytes_is_utf8(out->node) || out->node.len == 0) {
        *why = "garbage: a node name that is not UTF-8";
        return WR_ERR;
    }
    *used = in.len - c.left;
    return WR_OK;
}

void
peer_ok_encode(struct bytes secret, const uint8_t client_nonce[],
               enum peer_status status, const char *text, struct buf *out)
{
    size_t start = out->len, n = WR_MIN(strlen(text), PEER_MAX_TEXT);
    uint8_t mac[PEER_MAC];

    buf_append(out, MAGIC_OK, 4);
    buf_put_u8(out, PEER_VERSION);
    buf_put_u8(out, (uint8_t)status);
    buf_put_u16(out, (uint16_t)n);
    buf_append(out, text, n);
    mac_of(secret, client_nonce, bytes_of(out->data + start, out->len - start),
           mac);
    buf_append(out, mac, PEER_MAC);
}

int
peer_ok_parse(struct bytes secret, const uint8_t client_nonce[],
              struct bytes in, uint8_t *status, struct bytes *text,
              size_t *used, const char **why)
{
    struct cursor c;
    struct bytes mac;
    uint8_t want[PEER_MAC];
    uint16_t n;
    int rc;

    cur_init(&c, in.ptr, in.len);
    if ((rc = head(&c, MAGIC_OK, why)) != WR_OK)
        return rc;
    if (!rd_u8(&c, status) || !rd_u16(&c, &n))
        return WR_AGAIN;
    if (n > PEER_MAX_TEXT) {
        *why = "garbage: a reply text over the limit";
        return WR_ERR;
    }
    if (!rd_bytes(&c, n, text) || !rd_bytes(&c, PEER_MAC, &mac))
        return WR_AGAIN;
    mac_of(secret, client_nonce, bytes_of(in.ptr, in.len - c.left - PEER_MAC),
           want);
    if (CRYPTO_memcmp(mac.ptr, want, PEER_MAC) != 0) {
        *why = "wrong secret (the other node does not know the cluster's)";
        return WR_ERR;
    }
    *used = in.len - c.left;
    return WR_OK;
}
