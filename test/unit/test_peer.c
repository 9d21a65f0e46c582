/*
 * Unit tests for cluster/peer.c, the node-to-node handshake: a full
 * exchange, wrong secrets and replays refused, every truncation asks for
 * more, every flipped byte is refused, garbage and oversized lengths are
 * errors with a reason.
 */
#include "cluster/peer.h"
#include "cluster/repl.h"
#include "test/harness/t.h"

#define SECRET BYTES_LIT("0123456789abcdef0123456789abcdef")
#define OTHER  BYTES_LIT("0123456789abcdef0123456789abcdeX")

/* A HELLO and the AUTH answering it. */
static void
exchange(uint8_t sn[PEER_NONCE], uint8_t cn[PEER_NONCE], struct buf *auth)
{
    struct buf hello;
    uint8_t got[PEER_NONCE];
    size_t used = 0;
    const char *why = NULL;

    buf_init(&hello);
    peer_hello_encode(sn, &hello);
    T_EQ_INT(hello.len, PEER_HELLO_SIZE);
    T_EQ_INT(peer_hello_parse(buf_bytes(&hello), got, &used, &why), WR_OK);
    T_EQ_INT(used, PEER_HELLO_SIZE);
    T_ASSERT(memcmp(got, sn, PEER_NONCE) == 0);
    peer_auth_encode(SECRET, got, cn, "n1@host", PEER_RELAY,
                     BYTES_LIT("{\"vhost\":\"/\"}"), auth);
    buf_fini(&hello);
}

T_CASE(handshake_round_trip)
{
    uint8_t sn[PEER_NONCE], cn[PEER_NONCE], status = 9;
    struct buf auth, ok;
    struct peer_auth a;
    struct bytes text;
    size_t used = 0;
    const char *why = NULL;

    buf_init(&auth);
    buf_init(&ok);
    exchange(sn, cn, &auth);
    buf_put_u8(&auth, 0x42); /* a relayed byte after it stays unread */
    T_EQ_INT(peer_auth_parse(SECRET, sn, buf_bytes(&auth), &a, &used, &why),
             WR_OK);
    T_EQ_INT(used, auth.len - 1);
    T_ASSERT(bytes_eq_str(a.node, "n1@host"));
    T_EQ_INT(a.purpose, PEER_RELAY);
    T_ASSERT(bytes_eq_str(a.payload, "{\"vhost\":\"/\"}"));
    T_ASSERT(memcmp(a.client_nonce, cn, PEER_NONCE) == 0);
    peer_ok_encode(SECRET, a.client_nonce, PEER_REFUSED, "no such vhost", &ok);
    T_EQ_INT(
        peer_ok_parse(SECRET, cn, buf_bytes(&ok), &status, &text, &used, &why),
        WR_OK);
    T_EQ_INT(status, PEER_REFUSED);
    T_ASSERT(bytes_eq_str(text, "no such vhost"));
    T_EQ_INT(used, ok.len);
    buf_fini(&auth);
    buf_fini(&ok);
}

T_CASE(wrong_secret_and_replay_are_refused)
{
    uint8_t sn[PEER_NONCE], cn[PEER_NONCE], other[PEER_NONCE], status;
    struct buf auth, ok;
    struct peer_auth a;
    struct bytes text;
    size_t used;
    const char *why = NULL;

    buf_init(&auth);
    buf_init(&ok);
    exchange(sn, cn, &auth);
    T_EQ_INT(peer_auth_parse(OTHER, sn, buf_bytes(&auth), &a, &used, &why),
             WR_ERR);
    T_ASSERT(strstr(why, "wrong secret"));
    /* the same AUTH replayed on another connection (another nonce) */
    memcpy(other, sn, PEER_NONCE);
    other[0] ^= 1;
    T_EQ_INT(peer_auth_parse(SECRET, other, buf_bytes(&auth), &a, &used, &why),
             WR_ERR);
    /* a fake accepting node cannot make a good OK */
    peer_ok_encode(OTHER, cn, PEER_OK, "", &ok);
    T_EQ_INT(
        peer_ok_parse(SECRET, cn, buf_bytes(&ok), &status, &text, &used, &why),
        WR_ERR);
    T_ASSERT(strstr(why, "wrong secret"));
    buf_fini(&auth);
    buf_fini(&ok);
}

T_CASE(every_truncation_asks_for_more)
{
    uint8_t sn[PEER_NONCE], cn[PEER_NONCE], n[PEER_NONCE], status;
    struct buf auth, ok, hello;
    struct peer_auth a;
    struct bytes text;
    size_t used;
    const char *why;

    buf_init(&auth);
    buf_init(&ok);
    buf_init(&hello);
    exchange(sn, cn, &auth);
    peer_ok_encode(SECRET, cn, PEER_OK, "welcome", &ok);
    peer_hello_encode(n, &hello);
    for (size_t i = 0; i < auth.len; i++)
        T_EQ_INT(peer_auth_parse(SECRET, sn, bytes_of(auth.data, i), &a, &used,
                                 &why),
                 WR_AGAIN);
    for (size_t i = 0; i < ok.len; i++)
        T_EQ_INT(peer_ok_parse(SECRET, cn, bytes_of(ok.data, i), &status, &text,
                               &used, &why),
                 WR_AGAIN);
    for (size_t i = 0; i < hello.len; i++)
        T_EQ_INT(peer_hello_parse(bytes_of(hello.data, i), n, &used, &why),
                 WR_AGAIN);
    buf_fini(&auth);
    buf_fini(&ok);
    buf_fini(&hello);
}

T_CASE(every_flipped_byte_is_refused)
{
    uint8_t sn[PEER_NONCE], cn[PEER_NONCE];
    struct buf auth;
    struct peer_auth a;
    size_t used;
    const char *why;

    buf_init(&auth);
    exchange(sn, cn, &auth);
    for (size_t i = 0; i < auth.len; i++) {
        auth.data[i] ^= 0x20;
        /* a flipped length may ask for more; it is never accepted */
        T_ASSERT(peer_auth_parse(SECRET, sn, buf_bytes(&auth), &a, &used,
                                 &why) != WR_OK);
        auth.data[i] ^= 0x20;
    }
    buf_fini(&auth);
}

T_CASE(garbage_and_oversized_lengths_are_errors)
{
    uint8_t sn[PEER_NONCE] = {0}, n[PEER_NONCE];
    struct peer_auth a;
    struct buf big;
    size_t used;
    const char *why = NULL;

    T_EQ_INT(peer_auth_parse(SECRET, sn, BYTES_LIT("GET / HTTP/1.1\r\n"), &a,
                             &used, &why),
             WR_ERR);
    T_ASSERT(strstr(why, "not a Warren peer"));
    T_EQ_INT(
        peer_hello_parse(BYTES_LIT("AMQP\x00\x00\x09\x01"), n, &used, &why),
        WR_ERR);
    T_EQ_INT(peer_hello_parse(BYTES_LIT("WRNH\x07"), n, &used, &why), WR_ERR);
    T_ASSERT(strstr(why, "version"));
    buf_init(&big);
    buf_append(&big, "WRNA\x01", 5);
    buf_reserve(&big, PEER_NONCE);
    memset(big.data + big.len, 7, PEER_NONCE);
    big.len += PEER_NONCE;
    buf_put_shortstr(&big, BYTES_LIT("n"));
    buf_put_u8(&big, PEER_RELAY);
    buf_put_u32(&big, PEER_MAX_PAYLOAD + 1);
    T_EQ_INT(peer_auth_parse(SECRET, sn, buf_bytes(&big), &a, &used, &why),
             WR_ERR);
    T_ASSERT(strstr(why, "over the limit"));
    buf_fini(&big);
}

/* ---- replication frames (cluster/repl.h) */

static int
rparse(const struct buf *b, size_t n, bool from_leader, struct repl_frame *f,
       const char **why)
{
    size_t used = 0;
    int rc = repl_frame_parse(bytes_of(b->data, n), from_leader, f, &used, why);

    if (rc == WR_OK)
        T_EQ_INT(used, n);
    return rc;
}

T_CASE(repl_frames_round_trip_and_wait_for_all_bytes)
{
    struct buf b;
    struct repl_frame f;
    const char *why = NULL;

    buf_init(&b);
    repl_frame_encode(&b, REPL_RECS, 12, 345, bytes_str("records"));
    T_EQ_INT(b.len, REPL_HDR + 7);
    for (size_t n = 0; n < b.len; n++)
        T_EQ_INT(rparse(&b, n, true, &f, &why), WR_AGAIN);
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_OK);
    T_EQ_INT(f.kind, REPL_RECS);
    T_EQ_INT(f.epoch, 12);
    T_EQ_INT(f.seq, 345);
    T_ASSERT(bytes_eq_str(f.payload, "records"));
    buf_reset(&b);
    repl_frame_encode(&b, REPL_ACK, 12, 345, bytes_str(""));
    T_EQ_INT(rparse(&b, b.len, false, &f, &why), WR_OK);
    T_EQ_INT(f.kind, REPL_ACK);
    T_EQ_STR(repl_kind_name(REPL_ACK), "ACK");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_DACK, 12, 345, bytes_str(""));
    T_EQ_INT(rparse(&b, b.len, false, &f, &why), WR_OK);
    T_EQ_INT(f.kind, REPL_DACK);
    T_EQ_STR(repl_kind_name(REPL_DACK), "DACK");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_DCNT, 12, 345, bytes_str("counts"));
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_OK);
    T_EQ_INT(f.kind, REPL_DCNT);
    T_ASSERT(bytes_eq_str(f.payload, "counts"));
    T_EQ_INT(rparse(&b, b.len, false, &f, &why), WR_ERR);
    T_EQ_STR(why, "a leader's frame from a mirror");
    T_EQ_STR(repl_kind_name(200), "?");
    buf_fini(&b);
}

/* Garbage, each with its reason, recognised from the first bytes that
   show it (the kind byte, not the whole claimed length). */
T_CASE(repl_garbage_is_refused_with_a_reason)
{
    struct buf b;
    struct repl_frame f;
    const char *why = NULL;

    buf_init(&b);
    repl_frame_encode(&b, REPL_ACK, 1, 1, bytes_str(""));
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "an ACK from the leader");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_DACK, 1, 1, bytes_str(""));
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "an ACK from the leader");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_RECS, 1, 1, bytes_str("x"));
    T_EQ_INT(rparse(&b, 5, false, &f, &why), WR_ERR);
    T_EQ_STR(why, "a leader's frame from a mirror");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_PING, 1, 1, bytes_str("x"));
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "a payload in a frame that has none");
    buf_reset(&b);
    repl_frame_encode(&b, REPL_SYNCED, 0, 1, bytes_str(""));
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "epoch 0");
    buf_reset(&b);
    buf_put_u32(&b, 0xffffffffu);
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "frame length out of range");
    buf_reset(&b);
    buf_put_u32(&b, 3);
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    buf_reset(&b);
    buf_put_u32(&b, 100);
    buf_put_u8(&b, 77);
    T_EQ_INT(rparse(&b, b.len, true, &f, &why), WR_ERR);
    T_EQ_STR(why, "unknown frame kind");
    buf_fini(&b);
}

/* "prev" of a replication AUTH payload (KIP-101): all four positive
 * integers, or absent; anything else refused with a reason. */
T_CASE(repl_prev_is_all_there_or_refused)
{
    struct repl_prev p;
    const char *why = NULL;
    const char *bad[] = {
        "{\"prev\":1}",
        "{\"prev\":{\"epoch\":1,\"lead\":2,\"end\":3}}",
        "{\"prev\":{\"epoch\":1,\"lead\":2,\"end\":0,\"start\":1}}",
        "{\"prev\":{\"epoch\":1,\"lead\":2,\"end\":3,\"start\":-1}}",
        "{\"prev\":{\"epoch\":1,\"lead\":2,\"end\":3,\"start\":1.5}}",
        "{\"prev\":{\"epoch\":1,\"lead\":2,\"end\":3,\"start\":1,\"x\":1}}",
    };

    T_ASSERT(repl_prev_parse(
        BYTES_LIT("{\"vhost\":\"/\",\"prev\":{\"epoch\":7,\"lead\":9,"
                  "\"end\":1234,\"start\":1}}"),
        &p, &why));
    T_EQ_INT(p.epoch, 7);
    T_EQ_INT(p.lead, 9);
    T_EQ_INT(p.end, 1234);
    T_EQ_INT(p.start, 1);
    T_ASSERT(repl_prev_parse(BYTES_LIT("{\"vhost\":\"/\"}"), &p, &why));
    T_EQ_INT(p.end, 0);
    T_ASSERT(repl_prev_parse(BYTES_LIT("not json"), &p, &why));
    for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
        why = NULL;
        T_ASSERT(!repl_prev_parse(bytes_str(bad[i]), &p, &why));
        T_ASSERT(why != NULL && strstr(why, "garbage") != NULL);
        T_EQ_INT(p.epoch + p.lead + p.end + p.start, 0);
    }
}

static const struct t_case cases[] = {
    T_REG(handshake_round_trip),
    T_REG(wrong_secret_and_replay_are_refused),
    T_REG(every_truncation_asks_for_more),
    T_REG(every_flipped_byte_is_refused),
    T_REG(garbage_and_oversized_lengths_are_errors),
    T_REG(repl_frames_round_trip_and_wait_for_all_bytes),
    T_REG(repl_garbage_is_refused_with_a_reason),
    T_REG(repl_prev_is_all_there_or_refused),
};
T_MAIN(cases)
