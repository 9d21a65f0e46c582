/*
 * tls.c: TLS for AMQPS and the management API's HTTPS, on OpenSSL.
 *
 * A TLS server is an SSL_CTX made from one config block (ssl_options.*,
 * management.ssl.*): certificate chain, key (its passphrase from the
 * config, never a prompt), CAs for client certificates, verify mode,
 * versions and ciphers. Every server is on a list that SIGHUP walks to
 * build each context again from its files; a new context replaces the
 * old one for the connections accepted from then on, while each open
 * connection keeps a reference to the context it was made with (OpenSSL
 * counts them), so nothing open is disturbed. A reload that fails keeps
 * the old context and says why in the log.
 *
 * A connection is an SSL object on the non-blocking socket itself (no
 * memory BIOs: OpenSSL reads and writes the fd, so no byte is copied
 * twice). The handshake needs no state of its own: it runs inside the
 * first tls_read calls, which the owner's read watcher makes as for any
 * input, and a client that never finishes it is dropped by the owner's
 * timer (ssl_handshake_timeout for AMQPS, the anonymous connection
 * timeout for HTTPS). So a slow or hostile handshake costs one SSL
 * object and never blocks the loop.
 *
 * Reads loop over SSL_read until OpenSSL wants more from the socket or
 * the caller's buffer is full; OpenSSL reads ahead (whole bursts, not a
 * record header and then its body), so in that last case bytes may wait
 * inside OpenSSL with the socket quiet, which tls_has_pending tells the
 * owner. Writes take the outq's front: a slice of a large body goes
 * to SSL_write as it is, small frames are gathered into one record-sized
 * stage first (one TLS record for many small frames, not one each).
 * SSL_MODE_ENABLE_PARTIAL_WRITE makes SSL_write return after each record
 * it wrote, and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a write that
 * wanted the socket be repeated from the stage or the body alike: the
 * outq does not move until bytes are written, so the repeat, with the
 * length remembered in wlen, carries the same bytes, as OpenSSL asks.
 * Renegotiation is refused (SSL_OP_NO_RENEGOTIATION), so a write never
 * waits for a read; a read may wait for a write (a handshake flight to a
 * full socket), which tls_read_wants_write tells the owner.
 */
#include "server/tls.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TLS_RECORD 16384 /* largest TLS record's plain text */

struct tls_server {
    SSL_CTX *ctx; /* for new connections; open ones hold their own ref */
    const struct wr_tls *o;
    char prefix[32]; /* "ssl_options", "management.ssl" */
    struct tls_server *next;
};

struct tls {
    SSL *ssl;
    size_t wlen; /* an SSL_write to repeat with this length, or 0 */
    bool read_wants_write;
    char err[200];
};

static struct tls_server *servers; /* every live one, for SIGHUP */
static ev_signal sighup;

/* ---- contexts */

/* The first queued OpenSSL error's reason ("bad decrypt"), or fallback. */
static const char *
ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    return r ? r : fallback;
}

/* The key's passphrase comes from the config, or there is none: OpenSSL
 * must never prompt on the terminal. */
static int
password_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    size_t n = strlen(pw);

    (void)rwflag;
    if (n == 0 || n >= (size_t)size)
        return 0;
    memcpy(buf, pw, n);
    return (int)n;
}

static int
version_of(const char *name)
{
    if (strcmp(name, "tlsv1.3") == 0)
        return TLS1_3_VERSION;
    if (strcmp(name, "tlsv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(name, "tlsv1.1") == 0)
        return TLS1_1_VERSION;
    return TLS1_VERSION;
}

/* versions.*: the lowest to the highest listed (OpenSSL takes a range). */
static void
set_versions(SSL_CTX *ctx, const struct wr_tls *o)
{
    int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;

    if (o->nversions > 0) {
        lo = hi = version_of(o->versions[0].value);
        for (size_t i = 1; i < o->nversions; i++) {
            lo = WR_MIN(lo, version_of(o->versions[i].value));
            hi = WR_MAX(hi, version_of(o->versions[i].value));
        }
    }
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
}

/* ciphers.*: TLS 1.3 suites (TLS_...) and the older cipher list apart,
 * as OpenSSL keeps them. */
static int
set_ciphers(SSL_CTX *ctx, const struct wr_tls *o, const char *prefix, char *err,
            size_t errlen)
{
    struct buf v13, v12;
    int rc = WR_OK;

    if (o->nciphers == 0)
        return WR_OK;
    buf_init(&v13);
    buf_init(&v12);
    for (size_t i = 0; i < o->nciphers; i++) {
        const char *c = o->ciphers[i].value;
        struct buf *b = strncmp(c, "TLS_", 4) == 0 ? &v13 : &v12;
        buf_printf(b, "%s%s", b->len ? ":" : "", c);
    }
    buf_put_u8(&v13, 0);
    buf_put_u8(&v12, 0);
    if (v13.len > 1 && !SSL_CTX_set_ciphersuites(ctx, (char *)v13.data))
        rc = WR_ERR;
    else if (v13.len == 1 && !SSL_CTX_set_ciphersuites(ctx, ""))
        rc = WR_ERR;
    if (rc == WR_OK && v12.len > 1 &&
        !SSL_CTX_set_cipher_list(ctx, (char *)v12.data))
        rc = WR_ERR;
    if (rc == WR_OK && v12.len == 1 &&
        !SSL_CTX_set_cipher_list(ctx, "aNULL:!aNULL"))
        ERR_clear_error(); /* TLS 1.3 suites only: no TLS 1.2 cipher */
    if (rc != WR_OK)
        snprintf(err, errlen,
                 "%s.ciphers: no cipher OpenSSL knows in \"%s%s%s\"", prefix,
                 (char *)v13.data, v13.len > 1 ? ":" : "", (char *)v12.data);
    buf_fini(&v13);
    buf_fini(&v12);
    return rc;
}

/* Checks path can be opened, for a message naming the key and the file
 * rather than OpenSSL's "system library". */
static int
check_file(const char *prefix, const char *key, const char *path, char *err,
           size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (!f) {
        snprintf(err, errlen, "%s.%s: %s: %s", prefix, key, path,
                 strerror(errno));
        return WR_ERR;
    }
    fclose(f);
    return WR_OK;
}

/* The PEM private key at path, decrypted with password if needed. */
static EVP_PKEY *
read_key(const char *path, const char *password)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *pk;

    if (!b)
        return NULL;
    pk = PEM_read_bio_PrivateKey(b, NULL, password_cb, (void *)password);
    BIO_free(b);
    return pk;
}

static int
load_cert_and_key(SSL_CTX *ctx, const struct wr_tls *o, const char *prefix,
                  char *err, size_t errlen)
{
    const char *key = o->keyfile[0] ? o->keyfile : o->certfile;
    const char *keykey = o->keyfile[0] ? "keyfile" : "certfile";
    EVP_PKEY *pk;
    bool ok;

    if (!o->certfile[0]) {
        snprintf(err, errlen, "%s.certfile is not set", prefix);
        return WR_ERR;
    }
    if (check_file(prefix, "certfile", o->certfile, err, errlen) != WR_OK ||
        check_file(prefix, keykey, key, err, errlen) != WR_OK)
        return WR_ERR;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1) {
        snprintf(err, errlen, "%s.certfile: %s: not a PEM certificate: %s",
                 prefix, o->certfile, ssl_reason("unreadable"));
        return WR_ERR;
    }
    pk = read_key(key, o->password);
    if (!pk) {
        snprintf(err, errlen, "%s.%s: %s: cannot load the private key: %s (%s)",
                 prefix, keykey, key, ssl_reason("unreadable"),
                 o->password[0] ? "wrong password?"
                                : "not a PEM key, or encrypted: set the "
                                  "password key");
        return WR_ERR;
    }
    ok = SSL_CTX_use_PrivateKey(ctx, pk) == 1;
    EVP_PKEY_free(pk);
    if (!ok) {
        snprintf(err, errlen,
                 "%s.%s: %s: the private key does not match the "
                 "certificate in %s.certfile (%s): %s",
                 prefix, keykey, key, prefix, o->certfile,
                 ssl_reason("mismatch"));
        return WR_ERR;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen,
                 "%s.%s: %s: the private key does not match the "
                 "certificate in %s.certfile (%s): %s",
                 prefix, keykey, key, prefix, o->certfile,
                 ssl_reason("mismatch"));
        return WR_ERR;
    }
    return WR_OK;
}

/* cacertfile and verify: which clients must show a certificate. */
static int
set_verify(SSL_CTX *ctx, const struct wr_tls *o, const char *prefix, char *err,
           size_t errlen)
{
    int mode = SSL_VERIFY_NONE;

    if (o->cacertfile[0]) {
        STACK_OF(X509_NAME) * names;

        if (check_file(prefix, "cacertfile", o->cacertfile, err, errlen) !=
            WR_OK)
            return WR_ERR;
        if (SSL_CTX_load_verify_locations(ctx, o->cacertfile, NULL) != 1 ||
            (names = SSL_load_client_CA_file(o->cacertfile)) == NULL) {
            snprintf(err, errlen, "%s.cacertfile: %s: no PEM certificate: %s",
                     prefix, o->cacertfile, ssl_reason("unreadable"));
            return WR_ERR;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (o->verify == CONF_VERIFY_PEER) {
        if (!o->cacertfile[0]) {
            snprintf(err, errlen,
                     "%s.verify = verify_peer needs %s.cacertfile (the CAs "
                     "client certificates are checked against)",
                     prefix, prefix);
            return WR_ERR;
        }
        mode = SSL_VERIFY_PEER;
        if (o->fail_if_no_peer_cert)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    return WR_OK;
}

static SSL_CTX *
ctx_new(const struct wr_tls *o, const char *prefix, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        snprintf(err, errlen, "%s: OpenSSL: %s", prefix, ssl_reason("?"));
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"warren", 6);
    /* OpenSSL reads what the socket has, not a record header and then
     * its body: half the read calls (scenario 1 over TLS: broker CPU per
     * message 3.6-5.0 -> 2.4-2.5 us). */
    SSL_CTX_set_read_ahead(ctx, 1);
    set_versions(ctx, o);
    if (load_cert_and_key(ctx, o, prefix, err, errlen) != WR_OK ||
        set_verify(ctx, o, prefix, err, errlen) != WR_OK ||
        set_ciphers(ctx, o, prefix, err, errlen) != WR_OK) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

struct tls_server *
tls_server_new(const struct wr_tls *o, const char *prefix, char *err,
               size_t errlen)
{
    SSL_CTX *ctx = ctx_new(o, prefix, err, errlen);
    struct tls_server *t;

    if (!ctx)
        return NULL;
    t = xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->o = o;
    snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
    t->next = servers;
    servers = t;
    return t;
}

void
tls_server_free(struct tls_server *t)
{
    struct tls_server **pp;

    if (!t)
        return;
    for (pp = &servers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    SSL_CTX_free(t->ctx);
    free(t);
}

/* "subject CN=x, serial 1A2B" of the context's certificate, for the log. */
static void
cert_text(SSL_CTX *ctx, char *out, size_t n)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long len;

    out[0] = '\0';
    if (!x || !b) {
        BIO_free(b);
        return;
    }
    BIO_puts(b, "subject ");
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    BIO_puts(b, ", serial ");
    i2a_ASN1_INTEGER(b, X509_get0_serialNumber(x));
    len = BIO_get_mem_data(b, &p);
    snprintf(out, n, "%.*s", (int)len, p);
    BIO_free(b);
}

void
tls_reload_all(void)
{
    for (struct tls_server *t = servers; t; t = t->next) {
        char err[1024], what[600];
        SSL_CTX *ctx = ctx_new(t->o, t->prefix, err, sizeof(err));

        if (!ctx) {
            log_err("SIGHUP: cannot reload the TLS certificate of %s: %s; "
                    "keeping the one in use",
                    t->prefix, err);
            continue;
        }
        SSL_CTX_free(t->ctx); /* open connections hold their own ref */
        t->ctx = ctx;
        cert_text(ctx, what, sizeof(what));
        log_info("SIGHUP: reloaded the TLS certificate of %s (%s): %s",
                 t->prefix, t->o->certfile, what);
    }
}

static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    tls_reload_all();
}

void
tls_watch_sighup(struct ev_loop *loop)
{
    if (ev_is_active(&sighup))
        return;
    ev_signal_init(&sighup, sighup_cb, SIGHUP);
    ev_signal_start(loop, &sighup);
    ev_unref(loop); /* it alone does not keep the loop running */
}

void
tls_unwatch_sighup(struct ev_loop *loop)
{
    if (!ev_is_active(&sighup))
        return;
    ev_ref(loop);
    ev_signal_stop(loop, &sighup);
}

/* ---- connections */

struct tls *
tls_new(struct tls_server *t, int fd)
{
    struct tls *s = xcalloc(1, sizeof(*s));

    s->ssl = SSL_new(t->ctx);
    WR_ASSERT(s->ssl != NULL); /* fails only out of memory */
    WR_ASSERT(SSL_set_fd(s->ssl, fd) == 1);
    SSL_set_accept_state(s->ssl);
    return s;
}

void
tls_free(struct tls *s)
{
    if (!s)
        return;
    /* close_notify, if the socket takes it now; no waiting for the
     * client's (RabbitMQ's ssl:close does not either). */
    if (SSL_is_init_finished(s->ssl) &&
        !(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(s->ssl);
    ERR_clear_error();
    SSL_free(s->ssl);
    free(s);
}

/* Records why an SSL call failed and sets errno; returns -1. */
static int
failed(struct tls *s, int e)
{
    int saved = errno;

    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(s->err, sizeof(s->err), "%s",
                 saved ? strerror(saved) : "unexpected EOF");
        errno = saved ? saved : ECONNRESET;
    } else {
        unsigned long code = ERR_peek_last_error();
        const char *r = code ? ERR_reason_error_string(code) : NULL;

        snprintf(s->err, sizeof(s->err), "TLS error: %s",
                 r ? r : "protocol error");
        errno = EPROTO;
    }
    ERR_clear_error();
    return -1;
}

ssize_t
tls_read(struct tls *s, void *buf, size_t len)
{
    size_t got = 0;

    s->read_wants_write = false;
    ERR_clear_error(); /* SSL_get_error reads the queue */
    while (got < len) {
        int n = SSL_read(s->ssl, (char *)buf + got,
                         (int)WR_MIN(len - got, (size_t)INT_MAX));
        int e;

        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            s->read_wants_write = true;
            break;
        }
        if (got > 0) /* the end or the error comes with the next call */
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return 0;
        }
        return failed(s, e);
    }
    if (got == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)got;
}

/* The next bytes of q's front, at most *want of them (*want is cut to
 * what the first iovecs hold): in place when the first run holds them,
 * else gathered into stage. A repeated write asks for the same count,
 * which the same front (an outq only grows at its end) still holds. */
static const void *
front_bytes(struct outq *q, size_t *want, uint8_t *stage)
{
    struct iovec iov[64];
    int n = outq_iov(q, iov, 64);
    size_t got = 0;

    if (iov[0].iov_len >= *want)
        return iov[0].iov_base;
    for (int i = 0; i < n && got < *want; i++) {
        size_t k = WR_MIN(iov[i].iov_len, *want - got);
        memcpy(stage + got, iov[i].iov_base, k);
        got += k;
    }
    *want = got;
    return stage;
}

int
tls_flush(struct tls *s, struct outq *q, uint64_t *sent)
{
    static uint8_t stage[TLS_RECORD];

    ERR_clear_error();
    while (outq_pending(q) > 0) {
        size_t want = s->wlen ? s->wlen : WR_MIN(outq_pending(q), TLS_RECORD);
        const void *p = front_bytes(q, &want, stage);
        int k, e;

        WR_ASSERT(s->wlen == 0 || want == s->wlen);
        k = SSL_write(s->ssl, p, (int)want);

        if (k > 0) {
            s->wlen = 0;
            *sent += (uint64_t)k;
            outq_consume(q, (size_t)k);
            continue;
        }
        e = SSL_get_error(s->ssl, k);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            s->wlen = want; /* repeated with the same bytes */
            return WR_AGAIN;
        }
        failed(s, e);
        return WR_ERR;
    }
    return WR_OK;
}

void
tls_write_now(struct tls *s, const void *buf, size_t len)
{
    if (SSL_write(s->ssl, buf, (int)len) <= 0)
        ERR_clear_error();
}

bool
tls_has_pending(const struct tls *s)
{
    return SSL_has_pending(s->ssl) == 1;
}

bool
tls_read_wants_write(const struct tls *s)
{
    return s->read_wants_write;
}

bool
tls_is_established(const struct tls *s)
{
    return SSL_is_init_finished(s->ssl);
}

bool
tls_take_read_wants_write(struct tls *s)
{
    bool was = s->read_wants_write;

    s->read_wants_write = false;
    return was;
}

const char *
tls_error(const struct tls *s)
{
    return s->err[0] ? s->err : "TLS error";
}

/* ---- what the management API shows */

static const char *
protocol_name(int v)
{
    switch (v) {
    case TLS1_3_VERSION:
        return "tlsv1.3";
    case TLS1_2_VERSION:
        return "tlsv1.2";
    case TLS1_1_VERSION:
        return "tlsv1.1";
    case TLS1_VERSION:
        return "tlsv1";
    }
    return "unknown";
}

/* OpenSSL's long name made Erlang's: "AES-256-GCM" -> "aes_256_gcm". */
static void
erl_name(const char *s, char *out, size_t n)
{
    size_t o = 0;

    for (; s && *s && o + 1 < n; s++)
        out[o++] = *s == '-' ? '_' : (char)tolower((unsigned char)*s);
    out[o] = '\0';
}

static const char *
auth_name(int nid)
{
    switch (nid) {
    case NID_auth_rsa:
        return "rsa";
    case NID_auth_ecdsa:
        return "ecdsa";
    case NID_auth_dss:
        return "dss";
    case NID_auth_psk:
        return "psk";
    }
    return "any";
}

/* Erlang's key_exchange: ecdhe_rsa, dhe_rsa, rsa; "any" in TLS 1.3. */
static void
kx_name(const SSL_CIPHER *c, char *out, size_t n)
{
    const char *auth = auth_name(SSL_CIPHER_get_auth_nid(c));

    switch (SSL_CIPHER_get_kx_nid(c)) {
    case NID_kx_ecdhe:
        snprintf(out, n, "ecdhe_%s", auth);
        return;
    case NID_kx_dhe:
        snprintf(out, n, "dhe_%s", auth);
        return;
    case NID_kx_rsa:
        snprintf(out, n, "rsa");
        return;
    case NID_kx_psk:
        snprintf(out, n, "psk");
        return;
    }
    snprintf(out, n, "any");
}

/* Erlang's mac: "aead" for AEAD ciphers, else the digest (sha, sha256). */
static void
hash_name(const SSL_CIPHER *c, char *out, size_t n)
{
    int nid = SSL_CIPHER_get_digest_nid(c);

    if (SSL_CIPHER_is_aead(c))
        snprintf(out, n, "aead");
    else if (nid == NID_sha1)
        snprintf(out, n, "sha");
    else
        erl_name(OBJ_nid2sn(nid), out, n);
}

static void
name_text(const X509_NAME *name, char *out, size_t n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long len;

    out[0] = '\0';
    if (!b)
        return;
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    len = BIO_get_mem_data(b, &p);
    snprintf(out, n, "%.*s", (int)len, p);
    BIO_free(b);
}

static void
time_text(const ASN1_TIME *t, char *out, size_t n)
{
    struct tm tm;

    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        snprintf(out, n, "?");
    else
        strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
tls_describe(const struct tls *s, struct tls_desc *d)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    X509 *x = SSL_get0_peer_certificate(s->ssl);
    char from[32], to[32];

    memset(d, 0, sizeof(*d));
    if (!c || !SSL_is_init_finished(s->ssl))
        return;
    snprintf(d->protocol, sizeof(d->protocol), "%s",
             protocol_name(SSL_version(s->ssl)));
    erl_name(OBJ_nid2ln(SSL_CIPHER_get_cipher_nid(c)), d->cipher,
             sizeof(d->cipher));
    kx_name(c, d->key_exchange, sizeof(d->key_exchange));
    hash_name(c, d->hash, sizeof(d->hash));
    if (!x)
        return;
    d->has_cert = true;
    name_text(X509_get_subject_name(x), d->subject, sizeof(d->subject));
    name_text(X509_get_issuer_name(x), d->issuer, sizeof(d->issuer));
    time_text(X509_get0_notBefore(x), from, sizeof(from));
    time_text(X509_get0_notAfter(x), to, sizeof(to));
    snprintf(d->validity, sizeof(d->validity), "%s - %s", from, to);
}

bool
tls_peer_name(const struct tls *s, bool cn, char *out, size_t n)
{
    X509 *x = SSL_get0_peer_certificate(s->ssl);
    const X509_NAME *name;
    int i;
    unsigned char *utf8 = NULL;
    int len;

    if (!x)
        return false;
    name = X509_get_subject_name(x);
    if (!cn) {
        name_text(name, out, n);
        return true;
    }
    i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0)
        return false;
    len = ASN1_STRING_to_UTF8(
        &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (len < 0)
        return false;
    snprintf(out, n, "%.*s", len, (const char *)utf8);
    OPENSSL_free(utf8);
    return true;
}
