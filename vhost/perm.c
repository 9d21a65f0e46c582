/*
 * perm.c: users' permissions per vhost: configure, write and read
 * regular expressions, as RabbitMQ's internal authorisation backend
 * applies them (rabbit_auth_backend_internal:check_resource_access):
 * the resource name must match the expression, unanchored (re:run); the
 * empty expression matches nothing. Expressions are PCRE (libpcre2), the
 * dialect RabbitMQ's re module speaks.
 *
 * Where the checks happen (RabbitMQ's rabbit_channel):
 *   configure  declaring or deleting a queue or an exchange
 *   write      publishing to an exchange; binding: write on the queue (or
 *              destination exchange)
 *   read       consuming from, getting from or purging a queue; binding:
 *              read on the source exchange
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

/* A compiled expression; NULL code for "" (matches nothing). ".*" is
 * recognised to skip the matcher on the hot path. */
#define MATCH_ALL ((void *)1)

static void *
compile(const char *re, struct vherr *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *c;
    char msg[256];

    if (!*re)
        return NULL;
    if (strcmp(re, ".*") == 0)
        return MATCH_ALL;
    c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off,
                      NULL);
    if (!c) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        vherr_set(err, AMQP_PRECONDITION_FAILED,
                  "invalid regular expression '%s': %s at %zu", re, msg,
                  (size_t)off);
        return MATCH_ALL + 1; /* error marker, never stored */
    }
    return c;
}

static void
code_free(void *c)
{
    if (c && c != MATCH_ALL)
        pcre2_code_free((pcre2_code *)c);
}

static bool
matches(void *c, struct bytes name)
{
    pcre2_match_data *md;
    int rc;

    if (!c)
        return false;
    if (c == MATCH_ALL)
        return true;
    md = pcre2_match_data_create_from_pattern((pcre2_code *)c, NULL);
    rc = pcre2_match((pcre2_code *)c, name.ptr, name.len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void
perm_free(struct perm *p)
{
    for (int i = 0; i < 3; i++) {
        free(p->re[i]);
        code_free(p->code[i]);
    }
    free(p->user);
    free(p->vhost);
    free(p);
}

static struct perm **
find_slot(struct node *n, const char *vhost, const char *user)
{
    struct perm **pp;

    for (pp = &n->perms; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->vhost, vhost) == 0 && strcmp((*pp)->user, user) == 0)
            return pp;
    }
    return pp;
}

const struct perm *
node_perm_find(struct node *n, const char *vhost, const char *user)
{
    return *find_slot(n, vhost, user);
}

const struct perm *
node_perms(struct node *n)
{
    return n->perms;
}

int
node_perm_set(struct node *n, const char *vhost, const char *user,
              const char *configure, const char *write, const char *read,
              struct vherr *err)
{
    const char *src[3] = {configure, write, read};
    void *code[3];
    struct perm **pp, *p;

    if (!node_vhost_find(n, vhost))
        return vherr_set(err, AMQP_NOT_FOUND, "no vhost '%s'", vhost);
    if (!node_user_find(n, user))
        return vherr_set(err, AMQP_NOT_FOUND, "no user '%s'", user);
    for (int i = 0; i < 3; i++) {
        code[i] = compile(src[i] ? src[i] : "", err);
        if (code[i] == MATCH_ALL + 1) {
            while (i-- > 0)
                code_free(code[i]);
            return WR_ERR;
        }
    }
    pp = find_slot(n, vhost, user);
    if (*pp) {
        p = *pp;
        for (int i = 0; i < 3; i++) {
            free(p->re[i]);
            code_free(p->code[i]);
        }
    } else {
        p = xcalloc(1, sizeof(*p));
        p->user = xstrdup(user);
        p->vhost = xstrdup(vhost);
        *pp = p;
    }
    for (int i = 0; i < 3; i++) {
        p->re[i] = xstrdup(src[i] ? src[i] : "");
        p->code[i] = code[i];
    }
    n->perm_gen++;
    node_defs_changed(n);
    return WR_OK;
}

int
node_perm_clear(struct node *n, const char *vhost, const char *user,
                struct vherr *err)
{
    struct perm **pp = find_slot(n, vhost, user), *p = *pp;

    if (!p)
        return vherr_set(err, AMQP_NOT_FOUND,
                         "no permissions for user '%s' in vhost '%s'", user,
                         vhost);
    *pp = p->next;
    perm_free(p);
    n->perm_gen++;
    node_defs_changed(n);
    return WR_OK;
}

static void
drop_where(struct node *n, const char *vhost, const char *user)
{
    struct perm **pp = &n->perms;

    while (*pp) {
        struct perm *p = *pp;

        if ((vhost && strcmp(p->vhost, vhost) == 0) ||
            (user && strcmp(p->user, user) == 0)) {
            *pp = p->next;
            perm_free(p);
            n->perm_gen++;
        } else {
            pp = &p->next;
        }
    }
}

void
node__perm_drop_user(struct node *n, const char *user)
{
    drop_where(n, NULL, user);
}

void
node__perm_drop_vhost(struct node *n, const char *vhost)
{
    drop_where(n, vhost, NULL);
}

void
node__perms_free(struct node *n)
{
    while (n->perms) {
        struct perm *p = n->perms;

        n->perms = p->next;
        perm_free(p);
    }
}

uint64_t
node_perm_gen(const struct node *n)
{
    return n->perm_gen;
}

bool
vhost_user_has_access(struct vhost *vh, const char *user)
{
    return node_perm_find(vh->node, vh->name, user) != NULL;
}

int
vhost_perm_check(struct vhost *vh, const char *user, enum perm_kind kind,
                 const char *what, struct bytes name, struct vherr *err)
{
    const struct perm *p;

    if (!user)
        return WR_OK;
    p = node_perm_find(vh->node, vh->name, user);
    if (p && matches(p->code[kind], name))
        return WR_OK;
    return vherr_set(err, AMQP_ACCESS_REFUSED,
                     "access to %s '%.*s' in vhost '%s' refused for user "
                     "'%s'",
                     what, BYTES_FMT(name), vh->name, user);
}
