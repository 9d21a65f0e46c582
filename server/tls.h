/*
 * tls.h: TLS for the AMQPS listeners and the management API's HTTPS
 * (tls.c), on OpenSSL. A TLS server (struct tls_server) is one SSL_CTX
 * made from a config block (ssl_options.*, management.ssl.*) that SIGHUP
 * rebuilds; a TLS connection (struct tls) wraps one accepted socket.
 *
 * The connection's owner keeps its own watchers and buffers: tls_read and
 * tls_flush behave like read(2) and outq_flush on the plain socket, with
 * the handshake done inside them on the first reads, so plain text goes
 * through the same connection code whether it came over TLS or not.
 */
#ifndef WARREN_SERVER_TLS_H
#define WARREN_SERVER_TLS_H

#include "base/base.h"
#include "conf/conf.h"
#include "server/outq.h"

#include <ev.h>
#include <sys/types.h>

struct tls_server;
struct tls;

/*
 * Makes a TLS server from o, whose keys are named `prefix`.* in messages
 * ("ssl_options"). o is borrowed for the server's life (SIGHUP reads the
 * files again). Returns NULL with err saying which key and file failed
 * (missing file, wrong password, key not matching the certificate).
 */
struct tls_server *tls_server_new(const struct wr_tls *o, const char *prefix,
                                  char *err, size_t errlen);
void tls_server_free(struct tls_server *t);
/* Reads every TLS server's files again (SIGHUP): new connections get the
 * new certificate, open ones keep theirs. A server whose files fail keeps
 * its old context (logged). */
void tls_reload_all(void);
/* Starts a SIGHUP watcher on loop that calls tls_reload_all (libev takes
 * several watchers of one signal). */
void tls_watch_sighup(struct ev_loop *loop);
void tls_unwatch_sighup(struct ev_loop *loop);

/* A TLS connection on accepted socket fd (not owned: the caller closes
 * it after tls_free). */
struct tls *tls_new(struct tls_server *t, int fd);
/* Sends close_notify when the handshake was done (best effort, never
 * blocks) and frees. */
void tls_free(struct tls *s);

/* As read(2): bytes of plain text, 0 at the end (close_notify or EOF),
 * -1 with errno EAGAIN when nothing can be read now (the handshake may
 * be under way), another errno on failure (tls_error says why). */
ssize_t tls_read(struct tls *s, void *buf, size_t len);
/* As outq_flush: WR_OK when q is written, WR_AGAIN when the socket is
 * full (or the handshake waits for the client), WR_ERR on failure. */
int tls_flush(struct tls *s, struct outq *q, uint64_t *sent);
/* Writes buf now if the socket takes it (a last word before a close). */
void tls_write_now(struct tls *s, const void *buf, size_t len);
/* Plain text decrypted and not yet returned by tls_read: the socket may
 * not become readable again for it. */
bool tls_has_pending(const struct tls *s);
/* The last read or flush needs the socket writable (a handshake message
 * or a key update to send): the caller watches for EV_WRITE and reads
 * again then. */
bool tls_read_wants_write(const struct tls *s);
/* The same, and forgets it: the socket became writable, the owner reads
 * again if it is reading (a later read retries the write anyway). */
bool tls_take_read_wants_write(struct tls *s);
/* The TLS handshake is done. */
bool tls_is_established(const struct tls *s);
/* Why the last call failed (OpenSSL's reason, for the log). */
const char *tls_error(const struct tls *s);

/* The negotiated session as RabbitMQ's management API names it. */
struct tls_desc {
    char protocol[16];     /* "tlsv1.3" */
    char cipher[48];       /* "aes_256_gcm" */
    char key_exchange[32]; /* "ecdhe_rsa", "any" (TLS 1.3) */
    char hash[16];         /* "aead", "sha384" */
    bool has_cert;         /* the client sent a certificate */
    char subject[256];     /* "CN=alice,O=example" */
    char issuer[256];
    char validity[80]; /* "2026-01-01T00:00:00Z - 2027-01-01T00:00:00Z" */
};
/* Fills d (empty strings before the handshake's end). */
void tls_describe(const struct tls *s, struct tls_desc *d);
/* The client certificate's user name for EXTERNAL (its subject, or its
 * common name when cn): true with the name in out, false when the client
 * sent no certificate. */
bool tls_peer_name(const struct tls *s, bool cn, char *out, size_t n);

#endif
