/*
 * user.c: the node's users and their passwords, compatible with
 * RabbitMQ's definitions.
 *
 * A password hash is base64(salt || H(salt || password)) with a 4-byte
 * random salt, H per hashing_algorithm:
 *   rabbit_password_hashing_sha256 (RabbitMQ's default, and Warren's)
 *   rabbit_password_hashing_sha512
 *   rabbit_password_hashing_md5    (very old RabbitMQ; import only)
 * so definitions exported by RabbitMQ log in unchanged on Warren and the
 * other way round. An empty hash means no password login.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>

#define SALT_LEN   4
#define ALG_SHA256 "rabbit_password_hashing_sha256"

static const struct {
    const char *name;
    const EVP_MD *(*md)(void);
} algorithms[] = {
    {ALG_SHA256, EVP_sha256},
    {"rabbit_password_hashing_sha512", EVP_sha512},
    {"rabbit_password_hashing_md5", EVP_md5},
};

static const EVP_MD *
find_md(const char *alg)
{
    for (size_t i = 0; i < WR_ARRAY_LEN(algorithms); i++) {
        if (strcmp(alg, algorithms[i].name) == 0)
            return algorithms[i].md();
    }
    return NULL;
}

static const struct {
    const char *name;
    uint32_t bit;
} tag_names[] = {
    {"administrator", TAG_ADMINISTRATOR}, {"monitoring", TAG_MONITORING},
    {"policymaker", TAG_POLICYMAKER},     {"management", TAG_MANAGEMENT},
    {"impersonator", TAG_IMPERSONATOR},
};

/* Normalises "a, b ,c" to "a,b,c" and returns the known tags' bits. */
static uint32_t
parse_tags(const char *in, char **out)
{
    struct buf b;
    uint32_t bits = 0;
    const char *p = in ? in : "";

    buf_init(&b);
    while (*p) {
        const char *end;
        size_t len;

        while (*p == ' ' || *p == ',')
            p++;
        end = p;
        while (*end && *end != ',')
            end++;
        len = (size_t)(end - p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len) {
            if (b.len)
                buf_put_u8(&b, ',');
            buf_append(&b, p, len);
            for (size_t i = 0; i < WR_ARRAY_LEN(tag_names); i++) {
                if (strlen(tag_names[i].name) == len &&
                    memcmp(p, tag_names[i].name, len) == 0)
                    bits |= tag_names[i].bit;
            }
        }
        p = end;
    }
    buf_put_u8(&b, 0);
    *out = (char *)b.data;
    return bits;
}

/* base64(salt || md(salt || password)) into out (heap string). */
static char *
hash_password(const EVP_MD *md, const uint8_t salt[SALT_LEN],
              struct bytes password)
{
    uint8_t raw[SALT_LEN + EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char *out;

    WR_ASSERT(ctx != NULL);
    memcpy(raw, salt, SALT_LEN);
    EVP_DigestInit_ex(ctx, md, NULL);
    EVP_DigestUpdate(ctx, salt, SALT_LEN);
    EVP_DigestUpdate(ctx, password.ptr, password.len);
    EVP_DigestFinal_ex(ctx, raw + SALT_LEN, &dlen);
    EVP_MD_CTX_free(ctx);
    out = xmalloc(4 * ((SALT_LEN + dlen + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, raw, (int)(SALT_LEN + dlen));
    return out;
}

bool
user_check_password(const struct user *u, struct bytes password)
{
    const EVP_MD *md = find_md(u->hashing_algorithm);
    size_t hlen = strlen(u->password_hash);
    uint8_t raw[4 * 64 / 3 + 8];
    char *again;
    int n;
    bool ok;

    if (!md || hlen == 0 || hlen > sizeof(raw) / 3 * 4 || hlen % 4)
        return false;
    n = EVP_DecodeBlock(raw, (const unsigned char *)u->password_hash,
                        (int)hlen);
    if (n < SALT_LEN)
        return false;
    again = hash_password(md, raw, password);
    ok = strlen(again) == hlen &&
         CRYPTO_memcmp(again, u->password_hash, hlen) == 0;
    free(again);
    return ok;
}

struct user *
node_user_find(struct node *n, const char *name)
{
    struct user *u;

    HASH_FIND_STR(n->users, name, u);
    return u;
}

struct user *
node_users(struct node *n)
{
    return n->users;
}

size_t
node_user_count(const struct node *n)
{
    return HASH_COUNT(n->users);
}

static void
user_free(struct user *u)
{
    free(u->name);
    free(u->password_hash);
    free(u->hashing_algorithm);
    free(u->tags);
    free(u);
}

int
node_user_put(struct node *n, const char *name, const char *password,
              const char *password_hash, const char *hashing_algorithm,
              const char *tags, struct vherr *err)
{
    struct user *u = node_user_find(n, name);
    const char *alg = hashing_algorithm ? hashing_algorithm : ALG_SHA256;
    uint8_t salt[SALT_LEN];

    if (!*name)
        return vherr_set(err, AMQP_PRECONDITION_FAILED, "user name is empty");
    if (password && password_hash)
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "give password or password_hash, not both");
    if (password_hash && !find_md(alg))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "unknown hashing algorithm '%s'", alg);
    if (!u) {
        u = xcalloc(1, sizeof(*u));
        u->name = xstrdup(name);
        u->password_hash = xstrdup("");
        u->hashing_algorithm = xstrdup(ALG_SHA256);
        u->max_connections = u->max_channels = USER_LIMIT_UNSET;
        HASH_ADD_KEYPTR(hh, n->users, u->name, strlen(u->name), u);
    }
    if (password) {
        wr_random(salt, sizeof(salt));
        free(u->password_hash);
        u->password_hash =
            hash_password(EVP_sha256(), salt, bytes_str(password));
        free(u->hashing_algorithm);
        u->hashing_algorithm = xstrdup(ALG_SHA256);
    } else if (password_hash) {
        free(u->password_hash);
        u->password_hash = xstrdup(password_hash);
        free(u->hashing_algorithm);
        u->hashing_algorithm = xstrdup(alg);
    }
    free(u->tags);
    u->tag_bits = parse_tags(tags, &u->tags);
    node_defs_changed(n);
    return WR_OK;
}

int
node_user_delete(struct node *n, const char *name, struct vherr *err)
{
    struct user *u = node_user_find(n, name);

    if (!u)
        return vherr_set(err, AMQP_NOT_FOUND, "no user '%s'", name);
    node__perm_drop_user(n, name);
    HASH_DEL(n->users, u);
    user_free(u);
    node_defs_changed(n);
    return WR_OK;
}

/* ---- user limits */

static int64_t *
limit_field(struct user *u, const char *name)
{
    if (strcmp(name, "max-connections") == 0)
        return &u->max_connections;
    if (strcmp(name, "max-channels") == 0)
        return &u->max_channels;
    return NULL;
}

static int
set_limit(struct node *n, const char *user, const char *name, int64_t value,
          struct vherr *err)
{
    struct user *u = node_user_find(n, user);
    int64_t *f;

    if (!u)
        return vherr_set(err, AMQP_NOT_FOUND, "no user '%s'", user);
    if (!(f = limit_field(u, name)))
        return vherr_set(err, AMQP_PRECONDITION_FAILED,
                         "Unrecognised terms [{<<\"%s\">>,%lld}] in "
                         "user-limits",
                         name, (long long)value);
    *f = value;
    node_defs_changed(n);
    return WR_OK;
}

int
node_user_set_limit(struct node *n, const char *user, const char *name,
                    int64_t value, struct vherr *err)
{
    return set_limit(n, user, name, value, err);
}

int
node_user_clear_limit(struct node *n, const char *user, const char *name,
                      struct vherr *err)
{
    return set_limit(n, user, name, USER_LIMIT_UNSET, err);
}

static bool
at_limit(int64_t limit, uint32_t open)
{
    return limit >= 0 && open >= (uint64_t)limit;
}

int
node_user_connection_admit(struct node *n, const char *user, struct vherr *err)
{
    struct user *u = node_user_find(n, user);

    if (!u)
        return WR_OK;
    if (at_limit(u->max_connections, u->connections))
        return vherr_set(err, AMQP_NOT_ALLOWED,
                         "connection refused for user '%s': user connection "
                         "limit (%lld) is reached",
                         user, (long long)u->max_connections);
    u->connections++;
    return WR_OK;
}

/* A user deleted and created again while its connections live starts
 * from 0: the counts never go below. */
void
node_user_connection_leave(struct node *n, const char *user)
{
    struct user *u = node_user_find(n, user);

    if (u && u->connections)
        u->connections--;
}

int
node_user_channel_admit(struct node *n, const char *user, struct vherr *err)
{
    struct user *u = node_user_find(n, user);

    if (!u)
        return WR_OK;
    if (at_limit(u->max_channels, u->channels))
        return vherr_set(err, AMQP_NOT_ALLOWED,
                         "number of channels opened for user '%s' has reached "
                         "the maximum allowed user limit of (%lld)",
                         user, (long long)u->max_channels);
    u->channels++;
    return WR_OK;
}

void
node_user_channel_leave(struct node *n, const char *user)
{
    struct user *u = node_user_find(n, user);

    if (u && u->channels)
        u->channels--;
}

void
node__users_free(struct node *n)
{
    struct user *u, *tmp;

    HASH_ITER(hh, n->users, u, tmp)
    {
        HASH_DEL(n->users, u);
        user_free(u);
    }
}
