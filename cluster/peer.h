/*
 * cluster/peer.h: the handshake that opens every node-to-node connection
 * (relayed clients now, replication next), sans I/O: the caller moves the
 * bytes, these functions make and check them.
 *
 *   accepting node                        connecting node
 *   HELLO  "WRNH" v1 nonce_s[32]   ->
 *                                  <-     AUTH  "WRNA" v1 nonce_c[32]
 *                                               node purpose payload
 *                                               mac_c
 *   OK     "WRNK" v1 status text
 *          mac_s                   ->
 *
 *   mac_c = HMAC-SHA256(secret, nonce_s | AUTH without mac_c)
 *   mac_s = HMAC-SHA256(secret, nonce_c | OK without mac_s)
 *
 * Each side proves it knows the cluster's secret over a nonce the other
 * just chose, so neither a replayed AUTH nor a fake accepting node gets
 * anywhere. After OK (status 0) the connection belongs to the purpose
 * (PEER_RELAY: raw AMQP bytes both ways). Everything a peer sends is
 * bounded (PEER_MAX_PAYLOAD) and checked; a wrong secret or garbage is an
 * error with a reason for the log, never a crash.
 *
 * Layouts (big-endian):
 *   HELLO  "WRNH" u8 version, 32 bytes nonce                    (37)
 *   AUTH   "WRNA" u8 version, 32 nonce, u8 len + node name,
 *          u8 purpose, u32 len + payload, 32 mac
 *   OK     "WRNK" u8 version, u8 status, u16 len + text, 32 mac
 */
#ifndef WARREN_CLUSTER_PEER_H
#define WARREN_CLUSTER_PEER_H

#include "base/base.h"

#define PEER_VERSION     1
#define PEER_NONCE       32
#define PEER_MAC         32
#define PEER_HELLO_SIZE  (4 + 1 + PEER_NONCE)
#define PEER_MAX_PAYLOAD (64u << 10)
#define PEER_MAX_TEXT    1024u

enum peer_purpose {
    PEER_RELAY = 1, /* a client's AMQP connection, relayed to its leader */
    PEER_REPL = 2,  /* a vhost's replication stream (cluster/repl.h) */
};

/* OK's status: 0 accepted, else refused with the text. */
enum peer_status {
    PEER_OK = 0,
    PEER_REFUSED = 1,
};

/* A fresh nonce and the HELLO carrying it. */
void peer_hello_encode(uint8_t nonce[PEER_NONCE], struct buf *out);
/* Parses a HELLO from in: WR_OK (nonce filled, *used set), WR_AGAIN (need
 * more bytes), WR_ERR (why). */
int peer_hello_parse(struct bytes in, uint8_t nonce[PEER_NONCE], size_t *used,
                     const char **why);

/* The AUTH for a connection whose HELLO carried server_nonce; client_nonce
 * is made fresh here and kept by the caller to check the OK. */
void peer_auth_encode(struct bytes secret, const uint8_t server_nonce[],
                      uint8_t client_nonce[PEER_NONCE], const char *node,
                      enum peer_purpose purpose, struct bytes payload,
                      struct buf *out);

/* An AUTH as parsed: views into the input. */
struct peer_auth {
    uint8_t client_nonce[PEER_NONCE];
    struct bytes node;
    uint8_t purpose;
    struct bytes payload;
};

/* Parses and checks an AUTH against the secret and the nonce this side
 * sent: WR_OK, WR_AGAIN, or WR_ERR with why ("wrong secret", "garbage:
 * ..."). */
int peer_auth_parse(struct bytes secret, const uint8_t server_nonce[],
                    struct bytes in, struct peer_auth *out, size_t *used,
                    const char **why);

void peer_ok_encode(struct bytes secret, const uint8_t client_nonce[],
                    enum peer_status status, const char *text, struct buf *out);
/* Parses and checks an OK: WR_OK (status and text, a view, filled),
 * WR_AGAIN, or WR_ERR with why. */
int peer_ok_parse(struct bytes secret, const uint8_t client_nonce[],
                  struct bytes in, uint8_t *status, struct bytes *text,
                  size_t *used, const char **why);

#endif
