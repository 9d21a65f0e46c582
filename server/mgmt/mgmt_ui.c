/*
 * mgmt_ui.c: the web management UI's static files, served from the
 * management port without authentication (as RabbitMQ serves its UI; the
 * UI's API calls carry HTTP basic auth and are checked as any other).
 *
 * The files live in server/mgmt/www/ and are compiled into the binary:
 * at build time gen/embed_www.cmake turns each one into a byte array
 * with its URL path, Content-Type and a strong ETag (a prefix of its
 * SHA-256), in mgmt_www.gen.inc in the build directory, included below.
 * So the UI works from the build tree and from an installed binary with
 * nothing to configure, and always matches the broker it came with.
 *
 *   GET or HEAD /             index.html
 *   GET or HEAD /<path>       the file at <path>, e.g. /js/app.js
 *   If-None-Match: <etag>     304 Not Modified, no body
 *   another method            405, allow: GET, HEAD
 *   any other path            not ours: mgmt_ui_serve returns false
 *
 * Every file is sent with "cache-control: no-cache" (the browser keeps
 * it but revalidates each use, a 304 when unchanged, so a new broker's
 * UI is never mixed with an old one's cached modules), nosniff, and a
 * Content-Security-Policy that allows scripts, styles and fetches from
 * this origin only: no inline script, no eval, no framing.
 */
#include "server/mgmt/mgmt_int.h"

#include <stdio.h>
#include <string.h>

struct ui_asset {
    const char *path; /* URL path without the leading "/" */
    const char *type; /* Content-Type */
    const char *etag; /* quoted, strong */
    const unsigned char *data;
    size_t len;
};

#include "mgmt_www.gen.inc" /* static const struct ui_asset ui_assets[] */

#define UI_INDEX "index.html"
#define UI_CSP                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; " \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; "     \
    "form-action 'none'; frame-ancestors 'none'"

/* The asset the request's path names ("" is the index), or NULL. The
 * path is rebuilt from its decoded segments; a segment holding "/" (an
 * encoded %2F) names nothing here. */
static const struct ui_asset *
asset_find(const struct mgmt_req *r)
{
    char path[256];
    size_t len = 0;

    for (size_t i = 0; i < r->nseg; i++) {
        size_t n = strlen(r->seg[i]);

        if (n == 0 || memchr(r->seg[i], '/', n) || len + n + 1 >= sizeof(path))
            return NULL;
        if (i > 0)
            path[len++] = '/';
        memcpy(path + len, r->seg[i], n);
        len += n;
    }
    path[len] = 0;
    if (len == 0)
        snprintf(path, sizeof(path), "%s", UI_INDEX);
    for (size_t i = 0; i < WR_ARRAY_LEN(ui_assets); i++)
        if (strcmp(ui_assets[i].path, path) == 0)
            return &ui_assets[i];
    return NULL;
}

/*
 * Does an If-None-Match header value match etag? The value is "*" or a
 * comma-separated list of entity tags; If-None-Match compares weakly, so
 * a W/ prefix is ignored (RFC 9110, 13.1.2).
 */
static bool
etag_matches(const char *h, const char *etag)
{
    size_t elen = strlen(etag);

    if (!h)
        return false;
    while (*h) {
        size_t n;

        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        if (*h == '*')
            return true;
        if (h[0] == 'W' && h[1] == '/')
            h += 2;
        n = strcspn(h, ", \t");
        if (n == elen && memcmp(h, etag, n) == 0)
            return true;
        h += n;
    }
    return false;
}

bool
mgmt_ui_serve(struct mgmt_req *r)
{
    const struct ui_asset *a = asset_find(r);

    if (!a)
        return false;
    if (r->method != HTTP_GET && r->method != HTTP_HEAD) {
        buf_printf(&r->hdrs, "allow: GET, HEAD\r\n");
        r->status = 405;
        mgmt_http_respond(r, NULL);
        return true;
    }
    buf_printf(&r->hdrs,
               "etag: %s\r\nx-content-type-options: nosniff\r\n"
               "x-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n"
               "content-security-policy: %s\r\n",
               a->etag, UI_CSP);
    if (etag_matches(r->if_none_match, a->etag)) {
        /* mgmt_http_respond adds cache-control to 200s only */
        buf_printf(&r->hdrs, "cache-control: no-cache\r\n");
        r->status = 304;
        mgmt_http_respond(r, NULL);
        return true;
    }
    buf_append(&r->out, a->data, a->len);
    r->status = 200;
    mgmt_http_respond(r, a->type);
    return true;
}
