/*
 * auth.c: SASL PLAIN, AMQPLAIN and EXTERNAL.
 *
 * PLAIN's response is "authzid NUL authcid NUL password" (RFC 4616; the
 * authzid is ignored, as RabbitMQ does). AMQPLAIN's is a field table body
 * with LOGIN and PASSWORD long strings; some clients prefix it with the
 * table's u32 length, which is accepted too.
 *
 * Users are the node's (vhost/user.c): the password is checked against
 * the user's RabbitMQ-compatible salted hash. A user listed in
 * loopback_users may log in only over a loopback address.
 *
 * EXTERNAL is rabbitmq_auth_mechanism_ssl's: the user is named by the TLS
 * client certificate (its subject, or its CN with ssl_cert_login_from =
 * common_name), must exist, and no password is checked; the response is
 * ignored. It is offered only to TLS clients, and only when
 * auth_mechanisms.* lists it; a client without a certificate that
 * chooses it is refused like a wrong password.
 */
#include "server/conn.h"

#include "amqp/ftable.h"

#include <stdio.h>
#include <stdlib.h>

static bool
parse_plain(struct bytes r, struct bytes *user, struct bytes *pass)
{
    const uint8_t *nul1 = memchr(r.ptr, 0, r.len), *nul2;

    if (!nul1)
        return false;
    nul2 = memchr(nul1 + 1, 0, r.len - (size_t)(nul1 + 1 - r.ptr));
    if (!nul2)
        return false;
    *user = bytes_of(nul1 + 1, (size_t)(nul2 - nul1 - 1));
    *pass = bytes_of(nul2 + 1, r.len - (size_t)(nul2 + 1 - r.ptr));
    return true;
}

static bool
parse_amqplain(struct bytes r, struct bytes *user, struct bytes *pass)
{
    struct fvalue u, p;

    if (ftable_validate(r, NULL) != WR_OK) {
        if (r.len >= 4 && be32_load(r.ptr) == r.len - 4)
            r = bytes_of(r.ptr + 4, r.len - 4);
        if (ftable_validate(r, NULL) != WR_OK)
            return false;
    }
    if (!ftable_find(r, "LOGIN", &u) || !ftable_find(r, "PASSWORD", &p) ||
        u.type != 'S' || p.type != 'S')
        return false;
    *user = u.v.str;
    *pass = p.v.str;
    return true;
}

static bool
is_loopback_user(const struct wr_config *cfg, struct bytes user)
{
    for (size_t i = 0; i < cfg->nloopback_users; i++) {
        if (bytes_eq_str(user, cfg->loopback_users[i]))
            return true;
    }
    return false;
}

static const char *const default_mechanisms[] = {"PLAIN", "AMQPLAIN"};

/* Whether the configured mechanism m may be offered to c: EXTERNAL on
 * TLS connections only (with or without a client certificate: one
 * without is refused at start-ok, as RabbitMQ 3.10 does). */
static bool
may_offer(const struct conn *c, const char *m)
{
    return c->tls != NULL || strcmp(m, "EXTERNAL") != 0;
}

bool
auth_offered(const struct server *s, const struct conn *c,
             struct bytes mechanism)
{
    const struct wr_config *cfg = s->cfg;

    for (size_t i = 0; i < cfg->nauth_mechanisms; i++) {
        const char *m = cfg->auth_mechanisms[i].value;
        if (bytes_eq_str(mechanism, m))
            return may_offer(c, m);
    }
    for (size_t i = 0;
         cfg->nauth_mechanisms == 0 && i < WR_ARRAY_LEN(default_mechanisms);
         i++) {
        if (bytes_eq_str(mechanism, default_mechanisms[i]))
            return true;
    }
    return false;
}

void
auth_mechanisms(const struct server *s, const struct conn *c, struct buf *out)
{
    const struct wr_config *cfg = s->cfg;

    for (size_t i = 0; i < cfg->nauth_mechanisms; i++) {
        const char *m = cfg->auth_mechanisms[i].value;
        if (may_offer(c, m))
            buf_printf(out, "%s%s", out->len ? " " : "", m);
    }
    for (size_t i = 0;
         cfg->nauth_mechanisms == 0 && i < WR_ARRAY_LEN(default_mechanisms);
         i++)
        buf_printf(out, "%s%s", i ? " " : "", default_mechanisms[i]);
}

/* EXTERNAL: the certificate names an existing user. */
static int
auth_external(struct server *s, struct conn *c, char **out, char *why,
              size_t whylen)
{
    char name[256];

    if (!c->tls ||
        !tls_peer_name(c->tls,
                       s->cfg->ssl_cert_login_from == CONF_CERT_LOGIN_CN, name,
                       sizeof(name))) {
        snprintf(why, whylen, "no peer certificate");
        return WR_ERR;
    }
    if (!node_user_find(s->node, name)) {
        snprintf(why, whylen, "user '%s' - invalid credentials", name);
        return WR_ERR;
    }
    if (!c->loopback && is_loopback_user(s->cfg, bytes_str(name))) {
        snprintf(why, whylen, "user '%s' can only connect via localhost", name);
        return WR_ERR;
    }
    *out = xstrdup(name);
    return WR_OK;
}

int
auth_check(struct server *s, struct conn *c, struct bytes mechanism,
           struct bytes response, char **out, char *why, size_t whylen)
{
    struct bytes u, p;
    struct user *user;
    char *name;
    bool ok;

    if (bytes_eq_str(mechanism, "EXTERNAL"))
        return auth_external(s, c, out, why, whylen);
    ok = bytes_eq_str(mechanism, "PLAIN") ? parse_plain(response, &u, &p)
                                          : parse_amqplain(response, &u, &p);

    if (!ok) {
        snprintf(why, whylen, "malformed %.*s response", BYTES_FMT(mechanism));
        return AUTH_MALFORMED;
    }
    name = xstrndup(u.ptr, u.len);
    user = node_user_find(s->node, name);
    free(name);
    if (!user) {
        snprintf(why, whylen, "user '%.*s' - invalid credentials",
                 BYTES_FMT(u));
        return WR_ERR;
    }
    if (!user_check_password(user, p)) {
        snprintf(why, whylen, "user '%.*s' - invalid credentials",
                 BYTES_FMT(u));
        return WR_ERR;
    }
    if (!c->loopback && is_loopback_user(s->cfg, u)) {
        snprintf(why, whylen, "user '%.*s' can only connect via localhost",
                 BYTES_FMT(u));
        return WR_ERR;
    }
    *out = xstrndup(u.ptr, u.len);
    return WR_OK;
}
