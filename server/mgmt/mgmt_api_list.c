/*
 * mgmt_api_list.c: the list query parameters every list endpoint takes,
 * with RabbitMQ's semantics (rabbit_mgmt_util: reply_list_or_paginate,
 * sort_list, filter_and_paginate, columns), and streamed list bodies.
 *
 *   page, page_size  1-based page, 1..500 items (default 100). Only when
 *                    `page` is given is the list filtered by name and
 *                    wrapped in {"filtered_count", "item_count", "items",
 *                    "page", "page_count", "page_size", "total_count"}.
 *   name, use_regex  keep items whose "name" contains `name` (case-
 *                    insensitive), or matches it as a caseless PCRE.
 *   sort             a dotted key sorted on first, then the endpoint's
 *                    default keys (vhost, name); "" = no sorting. Values
 *                    compare in Erlang's term order (numbers < atoms <
 *                    objects < lists < strings); a missing key is 0.
 *   sort_reverse     true reverses the sorted list.
 *   columns          comma-separated dotted keys: every item keeps only
 *                    those (a.b keeps {"a": {"b": ...}}).
 *
 * Errors are RabbitMQ's texts: "Pagination parameters are invalid" for
 * a non-integer, "Invalid pagination parameters: page number P, page
 * size S" for values out of range, "Page out of range, page: P page
 * size: S, len: N" past the last page.
 *
 * Large lists go out as a stream: items are encoded a slice at a time
 * as the client reads, so a 100,000-item list neither sits in memory as
 * one string nor holds the loop while it is encoded.
 */
#include "server/mgmt/mgmt_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_PAGE_SIZE     500
#define DEFAULT_PAGE_SIZE 100
#define STREAM_MIN_ITEMS  2000 /* smaller lists are sent in one piece */

/* ---- parameters */

/* list_to_integer/1: optional sign, decimal digits, nothing else. */
static bool
parse_int(const char *s, long *out)
{
    char *end;

    if (!*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && *end == 0;
}

static void
cols_parse(struct mgmt_listq *lq, const char *spec)
{
    const char *p = spec;

    while (*p) {
        size_t len = strcspn(p, ",");

        if (len > 0) {
            lq->cols = xrealloc(lq->cols, (lq->ncols + 1) * sizeof(char *));
            lq->cols[lq->ncols++] = xstrndup(p, len);
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

int
mgmt_listq_parse(struct mgmt_req *r, struct mgmt_listq *lq)
{
    const char *page = mgmt_qs(r, "page"), *size = mgmt_qs(r, "page_size");
    const char *cols = mgmt_qs(r, "columns");
    char sizetext[32];
    long pn = 0, ps = 0;

    memset(lq, 0, sizeof(*lq));
    if ((page && !parse_int(page, &pn)) || (size && !parse_int(size, &ps))) {
        mgmt_bad_request(r, "Pagination parameters are invalid");
        return WR_ERR;
    }
    if (page) {
        if (size)
            snprintf(sizetext, sizeof(sizetext), "%ld", ps);
        else
            snprintf(sizetext, sizeof(sizetext), "undefined");
        if (pn <= 0 || (size && (ps <= 0 || ps > MAX_PAGE_SIZE))) {
            mgmt_reply_error(r, 400, "invalid_pagination_parameters",
                             "Invalid pagination parameters: page number "
                             "%ld, page size %s",
                             pn, sizetext);
            return WR_ERR;
        }
        lq->paged = true;
        lq->page = pn;
        lq->page_size = size ? ps : DEFAULT_PAGE_SIZE;
        lq->name = mgmt_qs(r, "name");
        lq->use_regex = mgmt_qs_true(r, "use_regex");
        if (lq->name && !*lq->name)
            lq->name = NULL;
    }
    if (lq->name && lq->use_regex) {
        int errcode;
        PCRE2_SIZE erroff;

        lq->re = pcre2_compile((PCRE2_SPTR)lq->name, PCRE2_ZERO_TERMINATED,
                               PCRE2_CASELESS, &errcode, &erroff, NULL);
        if (lq->re)
            lq->md = pcre2_match_data_create_from_pattern(lq->re, NULL);
        if (!lq->re) {
            PCRE2_UCHAR msg[256];

            pcre2_get_error_message(errcode, msg, sizeof(msg));
            mgmt_bad_request(r, "invalid regular expression '%s': %s", lq->name,
                             (const char *)msg);
            return WR_ERR;
        }
    }
    lq->sort = mgmt_qs(r, "sort");
    lq->sort_reverse = mgmt_qs_true(r, "sort_reverse");
    if (cols) {
        cols_parse(lq, cols);
        lq->colset = mgmt_cols_new(lq->cols, lq->ncols);
    }
    return WR_OK;
}

void
mgmt_listq_fini(struct mgmt_listq *lq)
{
    for (size_t i = 0; i < lq->ncols; i++)
        free(lq->cols[i]);
    free(lq->cols);
    mgmt_cols_free(lq->colset);
    lq->colset = NULL;
    if (lq->md)
        pcre2_match_data_free(lq->md);
    if (lq->re)
        pcre2_code_free(lq->re);
    lq->md = NULL;
    lq->cols = NULL;
    lq->ncols = 0;
    lq->re = NULL;
}

static bool
contains_caseless(const char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle);

    if (nlen > hlen)
        return false;
    for (size_t i = 0; i + nlen <= hlen; i++) {
        size_t k = 0;

        while (k < nlen && tolower((unsigned char)hay[i + k]) ==
                               tolower((unsigned char)needle[k]))
            k++;
        if (k == nlen)
            return true;
    }
    return false;
}

bool
mgmt_listq_match(const struct mgmt_listq *lq, const char *name, size_t len)
{
    if (!lq->paged || !lq->name)
        return true;
    if (!lq->re)
        return contains_caseless(name, len, lq->name);
    return pcre2_match(lq->re, (PCRE2_SPTR)name, len, 0, 0, lq->md, NULL) >= 0;
}

/* ---- columns (rabbit_mgmt_util:extract_column_items) */

struct colpath {
    const char *const *seg;
    size_t n;
};

/* Parsed columns: each dotted column split into its segments. */
struct mgmt_cols {
    struct colpath *p;
    size_t n;
    char **copies;
    const char **segs;
    size_t ncopies;
};

#define COL_MAX_SEGS 16

/* Splits "a.b.c" into segments (string:tokens: empty ones dropped). */
static size_t
split_dots(char *s, const char **seg, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    for (char *t = strtok_r(s, ".", &save); t && n < max;
         t = strtok_r(NULL, ".", &save))
        seg[n++] = t;
    return n;
}

struct mgmt_cols *
mgmt_cols_new(char *const *spec, size_t nspec)
{
    struct mgmt_cols *c;

    if (!spec || nspec == 0)
        return NULL;
    c = xcalloc(1, sizeof(*c));
    c->p = xcalloc(nspec, sizeof(*c->p));
    c->segs = xcalloc(nspec * COL_MAX_SEGS, sizeof(*c->segs));
    c->copies = xcalloc(nspec, sizeof(*c->copies));
    c->ncopies = nspec;
    for (size_t i = 0; i < nspec; i++) {
        const char **seg = c->segs + i * COL_MAX_SEGS;
        size_t n;

        c->copies[i] = xstrdup(spec[i]);
        n = split_dots(c->copies[i], seg, COL_MAX_SEGS);
        if (n > 0)
            c->p[c->n++] = (struct colpath){seg, n};
    }
    return c;
}

void
mgmt_cols_free(struct mgmt_cols *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ncopies; i++)
        free(c->copies[i]);
    free(c->copies);
    free(c->segs);
    free(c->p);
    free(c);
}

static void filter_value(json_t *v, const struct colpath *cols, size_t ncols);

static void
filter_object(json_t *o, const struct colpath *cols, size_t ncols)
{
    const char *key;
    json_t *val;
    void *tmp;
    struct colpath *sub = xcalloc(ncols + 1, sizeof(*sub));

    json_object_foreach_safe(o, tmp, key, val)
    {
        bool want = false, all = false;
        size_t nsub = 0;

        for (size_t i = 0; i < ncols && !all; i++) {
            if (cols[i].n == 0 || strcmp(cols[i].seg[0], key) != 0)
                continue;
            want = true;
            if (cols[i].n == 1)
                all = true;
            else
                sub[nsub++] = (struct colpath){cols[i].seg + 1, cols[i].n - 1};
        }
        if (!want)
            json_object_del(o, key);
        else if (!all)
            filter_value(val, sub, nsub);
    }
    free(sub);
}

static void
filter_value(json_t *v, const struct colpath *cols, size_t ncols)
{
    size_t i;
    json_t *e;

    if (json_is_object(v)) {
        filter_object(v, cols, ncols);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) filter_value(e, cols, ncols);
    }
}

static void
cols_apply(const struct mgmt_cols *c, json_t *item)
{
    if (c && json_is_object(item))
        filter_object(item, c->p, c->n);
}

void
mgmt_columns_apply(const struct mgmt_listq *lq, json_t *item)
{
    cols_apply(lq->colset, item);
}

/* ---- a streaming JSON writer that applies the columns as it goes */

void
mgmt_jw_init(struct mgmt_jw *w, struct buf *b, const struct mgmt_cols *cols)
{
    memset(w, 0, sizeof(*w));
    w->b = b;
    w->cols = cols;
}

/* Is the value about to be written wanted? Swallows it when not. */
static bool
jw_value_wanted(struct mgmt_jw *w)
{
    if (w->skip)
        return false;
    if (w->skip_value) {
        w->skip_value = false;
        return false;
    }
    return true;
}

void
mgmt_jw_key(struct mgmt_jw *w, const char *key)
{
    int d = w->depth; /* keys of the item's object are at depth 1 */
    bool want = false, whole = false;

    if (w->skip)
        return;
    if (d < 1 || d > MGMT_JW_DEPTH)
        return;
    if (w->all[d - 1] || !w->cols) {
        want = whole = true;
    } else {
        for (size_t i = 0; i < w->cols->n && !whole; i++) {
            const struct colpath *c = &w->cols->p[i];
            bool prefix = c->n >= (size_t)d;

            for (int k = 0; prefix && k < d - 1; k++)
                prefix = strcmp(c->seg[k], w->path[k]) == 0;
            if (!prefix || strcmp(c->seg[d - 1], key) != 0)
                continue;
            want = true;
            whole = c->n == (size_t)d;
        }
    }
    if (!want) {
        w->skip_value = true;
        return;
    }
    if (!w->first[d - 1])
        buf_put_u8(w->b, ',');
    w->first[d - 1] = false;
    mgmt_jw_escape(w->b, key, strlen(key));
    buf_put_u8(w->b, ':');
    w->path[d - 1] = key;
    w->next_all = whole;
}

void
mgmt_jw_obj_begin(struct mgmt_jw *w)
{
    if (w->skip || w->skip_value) {
        w->skip_value = false;
        w->skip++;
        return;
    }
    buf_put_u8(w->b, '{');
    if (w->depth < MGMT_JW_DEPTH) {
        w->first[w->depth] = true;
        w->all[w->depth] = w->depth == 0
                               ? w->cols == NULL
                               : (w->all[w->depth - 1] || w->next_all);
    }
    w->depth++;
}

void
mgmt_jw_obj_end(struct mgmt_jw *w)
{
    if (w->skip) {
        w->skip--;
        return;
    }
    buf_put_u8(w->b, '}');
    w->depth--;
}

void
mgmt_jw_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    buf_put_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"':
            buf_append(b, "\\\"", 2);
            break;
        case '\\':
            buf_append(b, "\\\\", 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        default:
            buf_append(b, "\\u00", 4);
            buf_put_u8(b, (uint8_t)hex[ch >> 4]);
            buf_put_u8(b, (uint8_t)hex[ch & 15]);
            break;
        }
    }
    buf_append(b, s + run, n - run);
    buf_put_u8(b, '"');
}

void
mgmt_jw_str(struct mgmt_jw *w, const char *s, size_t n)
{
    if (jw_value_wanted(w))
        mgmt_jw_escape(w->b, s, n);
}

void
mgmt_jw_cstr(struct mgmt_jw *w, const char *s)
{
    if (!s)
        mgmt_jw_null(w);
    else
        mgmt_jw_str(w, s, strlen(s));
}

void
mgmt_jw_int(struct mgmt_jw *w, int64_t v)
{
    if (jw_value_wanted(w))
        buf_printf(w->b, "%lld", (long long)v);
}

void
mgmt_jw_rate(struct mgmt_jw *w, double v)
{
    if (!jw_value_wanted(w))
        return;
    /* RabbitMQ's rates have one decimal: {"rate":0.0} */
    buf_printf(w->b, "{\"rate\":%.1f}", v);
}

void
mgmt_jw_bool(struct mgmt_jw *w, bool v)
{
    if (jw_value_wanted(w))
        buf_append(w->b, v ? "true" : "false", v ? 4 : 5);
}

void
mgmt_jw_null(struct mgmt_jw *w)
{
    if (jw_value_wanted(w))
        buf_append(w->b, "null", 4);
}

void
mgmt_jw_raw(struct mgmt_jw *w, const char *json)
{
    if (jw_value_wanted(w))
        buf_append(w->b, json, strlen(json));
}

static int
dump_cb(const char *p, size_t n, void *data)
{
    buf_append(data, p, n);
    return 0;
}

void
mgmt_jw_json(struct mgmt_jw *w, json_t *v)
{
    if (jw_value_wanted(w) && v) {
        if (w->depth > 0 && w->depth <= MGMT_JW_DEPTH &&
            !w->all[w->depth - 1] && !w->next_all && w->cols) {
            /* a nested selection inside this value: filter it */
            struct colpath *sub = xcalloc(w->cols->n + 1, sizeof(*sub));
            size_t nsub = 0, d = (size_t)w->depth;

            for (size_t i = 0; i < w->cols->n; i++) {
                const struct colpath *c = &w->cols->p[i];
                bool prefix = c->n > d;

                for (size_t k = 0; prefix && k < d; k++)
                    prefix = strcmp(c->seg[k], w->path[k]) == 0;
                if (prefix)
                    sub[nsub++] = (struct colpath){c->seg + d, c->n - d};
            }
            filter_value(v, sub, nsub);
            free(sub);
        }
        json_dump_callback(v, dump_cb, w->b, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    json_decref(v);
}

/* ---- pages */

json_t *
mgmt_page_object(const struct mgmt_listq *lq, json_t *items, size_t total,
                 size_t filtered)
{
    size_t count = json_array_size(items);
    long pages =
        (long)((filtered + (size_t)lq->page_size - 1) / (size_t)lq->page_size);

    return json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I}", "filtered_count",
                     (json_int_t)filtered, "item_count", (json_int_t)count,
                     "items", items, "page", (json_int_t)lq->page, "page_count",
                     (json_int_t)pages, "page_size", (json_int_t)lq->page_size,
                     "total_count", (json_int_t)total);
}

bool
mgmt_page_in_range(struct mgmt_req *r, const struct mgmt_listq *lq,
                   size_t filtered)
{
    /* lists:sublist(L, Start, N) takes 1 <= Start <= length(L) + 1. */
    if ((uint64_t)(lq->page - 1) * (uint64_t)lq->page_size <= filtered)
        return true;
    mgmt_reply_error(r, 400, "page_out_of_range",
                     "Page out of range, page: %ld page size: %ld, len: %zu",
                     lq->page, lq->page_size, filtered);
    return false;
}

/* ---- Erlang term order over JSON values */

static int
type_rank(const json_t *v)
{
    if (!v || json_is_number(v))
        return 0;
    if (json_is_boolean(v) || json_is_null(v))
        return 1;
    if (json_is_object(v))
        return 2;
    if (json_is_array(v))
        return 3;
    return 4;
}

static const char *
atom_name(const json_t *v)
{
    return json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false";
}

static int
value_cmp(const json_t *a, const json_t *b)
{
    int ra = type_rank(a), rb = type_rank(b);

    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 0: {
        double x = a ? json_number_value(a) : 0,
               y = b ? json_number_value(b) : 0;
        return x < y ? -1 : x > y ? 1 : 0;
    }
    case 1:
        return strcmp(atom_name(a), atom_name(b));
    case 4: {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int c =
            memcmp(json_string_value(a), json_string_value(b), WR_MIN(la, lb));
        return c ? c : la < lb ? -1 : la > lb ? 1 : 0;
    }
    default: {
        size_t la = ra == 2 ? json_object_size(a) : json_array_size(a);
        size_t lb = ra == 2 ? json_object_size(b) : json_array_size(b);
        return la < lb ? -1 : la > lb ? 1 : 0;
    }
    }
}

/* get_dotted_value: the value at a dotted path; NULL (0) when absent. */
static json_t *
dotted(json_t *item, const char *key)
{
    char buf[256];
    const char *seg[16];
    size_t n;

    snprintf(buf, sizeof(buf), "%s", key);
    n = split_dots(buf, seg, 16);
    for (size_t i = 0; i < n && item; i++)
        item = json_is_object(item) ? json_object_get(item, seg[i]) : NULL;
    return n ? item : NULL;
}

struct sortrow {
    json_t *item;
    json_t **keys; /* one value per sort key */
    size_t idx;
};

static size_t sort_nkeys;
static bool sort_reverse;

static int
row_cmp(const void *pa, const void *pb)
{
    const struct sortrow *a = pa, *b = pb;
    int c = 0;

    for (size_t k = 0; k < sort_nkeys && c == 0; k++)
        c = value_cmp(a->keys[k], b->keys[k]);
    if (c == 0)
        c = a->idx < b->idx ? -1 : a->idx > b->idx ? 1 : 0;
    return sort_reverse ? -c : c;
}

/* Sorts items in place as RabbitMQ's sort_list does. */
static void
sort_items(const struct mgmt_listq *lq, json_t *items,
           const char *const *default_sort)
{
    size_t n = json_array_size(items), nk = 0;
    const char *keys[8];
    struct sortrow *rows;
    json_t **vals;

    if (lq->sort && !*lq->sort)
        return; /* sort= (empty): keep the order */
    if (lq->sort)
        keys[nk++] = lq->sort;
    for (size_t i = 0; default_sort && default_sort[i] && nk < 8; i++)
        keys[nk++] = default_sort[i];
    rows = xcalloc(n + 1, sizeof(*rows));
    vals = xcalloc(n * nk + 1, sizeof(*vals));
    for (size_t i = 0; i < n; i++) {
        rows[i].item = json_incref(json_array_get(items, i));
        rows[i].keys = vals + i * nk;
        rows[i].idx = i;
        for (size_t k = 0; k < nk; k++)
            rows[i].keys[k] = dotted(rows[i].item, keys[k]);
    }
    sort_nkeys = nk;
    sort_reverse = lq->sort_reverse;
    qsort(rows, n, sizeof(*rows), row_cmp);
    json_array_clear(items);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, rows[i].item);
    free(vals);
    free(rows);
}

/* ---- streams */

/* A JSON array written item by item. */
struct item_stream {
    struct mgmt_stream st;
    size_t i, n;
    mgmt_write_fn *write;
    void (*ctx_free)(void *ctx);
    void *ctx;
    struct mgmt_cols *cols;
    bool first; /* "[" not written yet */
    bool any;   /* an item was written: the next needs a comma */
};

static bool
item_stream_fill(struct mgmt_stream *st, struct buf *out)
{
    struct item_stream *s = (struct item_stream *)st;
    size_t start = out->len;

    if (s->first) {
        buf_put_u8(out, '[');
        s->first = false;
    }
    while (s->i < s->n && out->len - start < (64u << 10)) {
        struct mgmt_jw w;
        size_t mark = out->len;

        if (s->any)
            buf_put_u8(out, ',');
        mgmt_jw_init(&w, out, s->cols);
        if (s->write(s->ctx, s->i++, &w))
            s->any = true;
        else
            out->len = mark; /* left out */
    }
    if (s->i < s->n)
        return true;
    buf_put_u8(out, ']');
    return false;
}

static void
item_stream_free(struct mgmt_stream *st)
{
    struct item_stream *s = (struct item_stream *)st;

    if (s->ctx_free)
        s->ctx_free(s->ctx);
    mgmt_cols_free(s->cols);
    free(s);
}

void
mgmt_reply_stream(struct mgmt_req *r, const struct mgmt_listq *lq, size_t n,
                  mgmt_write_fn *write, void (*ctx_free)(void *ctx), void *ctx)
{
    struct item_stream *s = xcalloc(1, sizeof(*s));

    s->st.fill = item_stream_fill;
    s->st.free = item_stream_free;
    s->n = n;
    s->write = write;
    s->ctx_free = ctx_free;
    s->ctx = ctx;
    s->first = true;
    s->cols = mgmt_cols_new(lq->cols, lq->ncols);
    r->status = 200;
    r->stream = &s->st;
    mgmt_http_respond(r, "application/json");
}

/* A jansson array item, through the writer (columns applied). */
static bool
array_write(void *ctx, size_t i, struct mgmt_jw *w)
{
    json_t *v = json_array_get(ctx, i);

    cols_apply(w->cols, v);
    json_dump_callback(v, dump_cb, w->b, JSON_COMPACT);
    return true;
}

static void
array_free(void *ctx)
{
    json_decref(ctx);
}

/* ---- the generic list reply */

void
mgmt_reply_list(struct mgmt_req *r, json_t *items,
                const char *const *default_sort)
{
    struct mgmt_listq lq;
    size_t total = json_array_size(items), filtered, from, i;
    json_t *page, *e;

    if (mgmt_listq_parse(r, &lq) != WR_OK) {
        json_decref(items);
        return;
    }
    sort_items(&lq, items, default_sort);
    if (!lq.paged) {
        if (total >= STREAM_MIN_ITEMS && !r->head) {
            mgmt_reply_stream(r, &lq, total, array_write, array_free, items);
        } else {
            json_array_foreach(items, i, e) mgmt_columns_apply(&lq, e);
            mgmt_reply_json(r, 200, items);
        }
        mgmt_listq_fini(&lq);
        return;
    }
    if (lq.name) {
        json_t *kept = json_array();

        json_array_foreach(items, i, e)
        {
            json_t *name = json_object_get(e, "name");

            if (json_is_string(name) &&
                mgmt_listq_match(&lq, json_string_value(name),
                                 json_string_length(name)))
                json_array_append(kept, e);
        }
        json_decref(items);
        items = kept;
    }
    filtered = json_array_size(items);
    if (!mgmt_page_in_range(r, &lq, filtered)) {
        json_decref(items);
        mgmt_listq_fini(&lq);
        return;
    }
    page = json_array();
    from = (size_t)(lq.page - 1) * (size_t)lq.page_size;
    for (i = from; i < filtered && i < from + (size_t)lq.page_size; i++) {
        e = json_array_get(items, i);
        mgmt_columns_apply(&lq, e);
        json_array_append(page, e);
    }
    json_decref(items);
    mgmt_reply_json(r, 200, mgmt_page_object(&lq, page, total, filtered));
    mgmt_listq_fini(&lq);
}

void
mgmt_reply_item(struct mgmt_req *r, json_t *item)
{
    struct mgmt_listq lq;

    if (mgmt_listq_parse(r, &lq) != WR_OK) {
        json_decref(item);
        return;
    }
    mgmt_columns_apply(&lq, item);
    mgmt_listq_fini(&lq);
    mgmt_reply_json(r, 200, item);
}

void
mgmt_reply_per_vhost(struct mgmt_req *r,
                     void (*add)(json_t *items, struct vhost *vh),
                     const char *const *default_sort)
{
    size_t nv;
    struct vhost **vs = mgmt_list_vhosts(r, &nv);
    json_t *items;

    if (!vs)
        return;
    items = json_array();
    for (size_t i = 0; i < nv; i++)
        add(items, vs[i]);
    free(vs);
    mgmt_reply_list(r, items, default_sort);
}
