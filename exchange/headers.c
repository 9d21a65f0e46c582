/*
 * headers.c: the headers exchange (RabbitMQ 3.10's
 * rabbit_exchange_type_headers, checked against a running broker).
 *
 * A binding's arguments are its match table. "x-match" chooses the rule:
 *   all (default)  every binding entry must match a header
 *   any            at least one must
 *   all-with-x / any-with-x   the same, but entries whose key starts with
 *                  "x-" take part (with all/any they are ignored);
 *                  "x-match" itself never does.
 * An entry matches a header with the same key when the binding value is
 * void ('V': presence is enough) or the two values are equal by Erlang's
 * == on RabbitMQ's decoded form: types are ignored at the top level
 * (1 == 1.0, longstr "a" == bytes "a", timestamp 5 == 5), but not
 * inside nested tables and arrays, which compare as lists of typed
 * tuples ({key, type, value}, in order). So base's fvalue_eq (type
 * classes) is not the rule here; headers__value_eq is.
 * Consequences: an empty match table matches every message with "all"
 * and none with "any"; a message without headers matches only "all"
 * bindings whose table has no (counted) entries.
 *
 * Both sides are sorted by key (stable, Erlang binary order) and merged
 * in one pass, exactly as RabbitMQ's headers_match/5, so duplicate keys
 * behave the same too. Binding tables are parsed and sorted once, at
 * bind time (x-match and ignored x- entries dropped); a message's
 * headers are decoded and sorted at most once per route, into the
 * routeset's scratch arrays.
 *
 * Invalid x-match values are refused before binding with RabbitMQ's
 * text, which renders the value as Erlang's ~p does (headers__format_value).
 */
#include "exchange/exchange_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum hkind { H_ALL, H_ANY, H_ALL_X, H_ANY_X };

/* A binding's match table: entries sorted by key, x-match removed, x-
 * entries removed unless the kind counts them. Views into the binding's
 * args bytes. */
struct hpat {
    uint8_t kind;
    uint32_t n;
    struct hent e[];
};

struct headers {
    struct dvec dv;
};

/* ---- Erlang's == on decoded field values */

enum ekind {
    EK_INT,
    EK_FLOAT,
    EK_BIN,
    EK_BOOL,
    EK_VOID,
    EK_DEC,
    EK_TABLE,
    EK_ARRAY,
    EK_NONE
};

static enum ekind
ekind_of(char t)
{
    switch (t) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'l':
    case 'L':
    case 'T':
        return EK_INT;
    case 'f':
    case 'd':
        return EK_FLOAT;
    case 'S':
    case 'x':
        return EK_BIN;
    case 't':
        return EK_BOOL;
    case 'V':
        return EK_VOID;
    case 'D':
        return EK_DEC;
    case 'F':
        return EK_TABLE;
    case 'A':
        return EK_ARRAY;
    default:
        return EK_NONE;
    }
}

/* An integer of any width as sign and magnitude. */
struct eint {
    bool neg;
    uint64_t mag;
};

static struct eint
eint_of(const struct fvalue *v)
{
    switch (v->type) {
    case 'B':
    case 'u':
    case 'i':
    case 'T':
        return (struct eint){false, v->v.u};
    default:
        if (v->v.i < 0)
            return (struct eint){true, (uint64_t)(-(v->v.i + 1)) + 1};
        return (struct eint){false, (uint64_t)v->v.i};
    }
}

static double
double_of(const struct fvalue *v)
{
    return v->type == 'f' ? (double)v->v.f : v->v.d;
}

/*
 * Erlang compares an integer with a float by converting the less precise
 * one: the integer to a float while |f| < 2^53, else the float (then
 * integral) to an integer, exactly.
 */
static bool
int_float_eq(struct eint a, double f)
{
    const double two53 = 9007199254740992.0, two64 = 18446744073709551616.0;

    if (isnan(f) || isinf(f))
        return false;
    if (fabs(f) < two53)
        return (a.neg ? -(double)a.mag : (double)a.mag) == f;
    if (f < 0)
        return a.neg && -f < two64 && (uint64_t)(-f) == a.mag;
    return !a.neg && f < two64 && (uint64_t)f == a.mag;
}

static bool
num_eq(const struct fvalue *a, const struct fvalue *b)
{
    enum ekind ka = ekind_of(a->type), kb = ekind_of(b->type);

    if (ka == EK_INT && kb == EK_INT) {
        struct eint x = eint_of(a), y = eint_of(b);
        return x.neg == y.neg && x.mag == y.mag;
    }
    if (ka == EK_FLOAT && kb == EK_FLOAT)
        return double_of(a) == double_of(b);
    if (ka == EK_INT)
        return int_float_eq(eint_of(a), double_of(b));
    return int_float_eq(eint_of(b), double_of(a));
}

/* RabbitMQ decodes 'l' and 'L' to the same type atom, long. */
static char
atom_of(char t)
{
    return t == 'L' ? 'l' : t;
}

/* Tables as lists of {key, type, value}: same length, pairwise equal. */
static bool
table_eq(struct bytes a, struct bytes b)
{
    struct ftable_iter ia, ib;
    struct bytes ka, kb;
    struct fvalue va, vb;

    ftable_iter_init(&ia, a);
    ftable_iter_init(&ib, b);
    for (;;) {
        bool more_a = ftable_next(&ia, &ka, &va);
        bool more_b = ftable_next(&ib, &kb, &vb);
        if (!more_a || !more_b)
            return more_a == more_b;
        if (!bytes_eq(ka, kb) || atom_of(va.type) != atom_of(vb.type) ||
            !headers__value_eq(&va, &vb))
            return false;
    }
}

/* Arrays as lists of {type, value}. */
static bool
array_eq(struct bytes a, struct bytes b)
{
    struct farray_iter ia, ib;
    struct fvalue va, vb;

    farray_iter_init(&ia, a);
    farray_iter_init(&ib, b);
    for (;;) {
        bool more_a = farray_next(&ia, &va);
        bool more_b = farray_next(&ib, &vb);
        if (!more_a || !more_b)
            return more_a == more_b;
        if (atom_of(va.type) != atom_of(vb.type) ||
            !headers__value_eq(&va, &vb))
            return false;
    }
}

bool
headers__value_eq(const struct fvalue *a, const struct fvalue *b)
{
    enum ekind ka = ekind_of(a->type), kb = ekind_of(b->type);

    if ((ka == EK_INT || ka == EK_FLOAT) && (kb == EK_INT || kb == EK_FLOAT))
        return num_eq(a, b);
    if (ka != kb) {
        /* A table and an array are both Erlang lists: equal when both
         * are empty ([] == []). */
        return ((ka == EK_TABLE && kb == EK_ARRAY) ||
                (ka == EK_ARRAY && kb == EK_TABLE)) &&
               a->v.str.len == 0 && b->v.str.len == 0;
    }
    switch (ka) {
    case EK_BIN:
        return bytes_eq(a->v.str, b->v.str);
    case EK_BOOL:
        return a->v.b == b->v.b;
    case EK_VOID:
        return true;
    case EK_DEC:
        return a->v.dec.scale == b->v.dec.scale &&
               a->v.dec.value == b->v.dec.value;
    case EK_TABLE:
        return table_eq(a->v.str, b->v.str);
    case EK_ARRAY:
        return array_eq(a->v.str, b->v.str);
    default:
        return false;
    }
}

/* ---- matching */

bool
headers__match(const struct xbind *b, const struct hent *d, size_t nd)
{
    const struct hpat *p = b->aux;
    bool all = p->kind == H_ALL || p->kind == H_ALL_X;
    size_t i = 0, j = 0;

    /*
     * headers_match/5 with its early exits folded in: "all" fails at
     * the first miss, "any" succeeds at the first hit; binding entries
     * left over when the headers run out are misses.
     */
    while (i < p->n) {
        const struct hent *pe = &p->e[i];
        int c;
        bool hit;

        if (j == nd)
            return false;
        c = exchange__key_cmp(pe->key, d[j].key);
        if (c > 0) { /* header not in the binding */
            j++;
            continue;
        }
        if (c < 0) { /* binding entry not in the headers */
            if (all)
                return false;
            i++;
            continue;
        }
        hit = pe->v.type == 'V' || headers__value_eq(&pe->v, &d[j].v);
        if (hit != all)
            return hit;
        i++;
        j++;
    }
    return all;
}

static enum hkind
kind_of(struct bytes args)
{
    struct fvalue v;

    if (!ftable_find(args, "x-match", &v) || v.type != 'S')
        return H_ALL;
    if (bytes_eq_str(v.v.str, "any"))
        return H_ANY;
    if (bytes_eq_str(v.v.str, "all-with-x"))
        return H_ALL_X;
    if (bytes_eq_str(v.v.str, "any-with-x"))
        return H_ANY_X;
    return H_ALL; /* "all", or legacy unvalidated values */
}

/* Parses a binding's args (already sorted by key) into its match table. */
static struct hpat *
pat_new(struct bytes args)
{
    size_t max = ftable_count(args);
    struct hpat *p = xcalloc(1, sizeof(*p) + max * sizeof(p->e[0]));
    bool with_x;
    struct ftable_iter it;
    struct hent h;

    p->kind = (uint8_t)kind_of(args);
    with_x = p->kind == H_ALL_X || p->kind == H_ANY_X;
    ftable_iter_init(&it, args);
    while (p->n < max && ftable_next(&it, &h.key, &h.v)) {
        if (bytes_eq_str(h.key, "x-match"))
            continue;
        if (!with_x && bytes_has_prefix(h.key, "x-"))
            continue;
        p->e[p->n++] = h;
    }
    return p;
}

static void *
headers_new(void)
{
    return xcalloc(1, sizeof(struct headers));
}

static void
headers_free(void *idx)
{
    struct headers *h = idx;

    if (!h)
        return;
    for (uint32_t i = 0; i < h->dv.n; i++) {
        free(h->dv.v[i].b->aux);
        h->dv.v[i].b->aux = NULL;
    }
    dvec__fini(&h->dv);
    free(h);
}

static void
headers_bind(void *idx, struct xbind *b)
{
    struct headers *h = idx;

    b->aux = pat_new(b->args);
    b->owner = h;
    dvec__add(&h->dv, b);
}

static void
headers_unbind(void *idx, struct xbind *b)
{
    struct headers *h = idx;

    WR_ASSERT(b->owner == h);
    dvec__del(&h->dv, b);
    free(b->aux);
    b->aux = NULL;
}

static size_t
headers_route(void *idx, struct xroute *c)
{
    struct headers *h = idx;
    struct routeset *rs = c->rs;
    size_t total = 0;

    if (h->dv.n == 0)
        return 0;
    if (!rs->hdr_ready) {
        rs->hdr_n = exchange__table_sorted(c->headers, &rs->hdrs, &rs->hdr_tmp,
                                           &rs->hdr_cap);
        rs->hdr_ready = true;
    }
    for (uint32_t i = 0; i < h->dv.n; i++) {
        const struct xslot *s = &h->dv.v[i];
        if (headers__match(s->b, rs->hdrs, rs->hdr_n)) {
            xroute_emit(c, s->dest);
            total++;
        }
    }
    return total;
}

/* ---- x-match validation and Erlang's ~p */

/*
 * Erlang's shortest round-trip float rendering (float_to_list(F,
 * [short])): the fewest significant digits that read back as d, written
 * as fixed ("0.001", "100.0", "123456789.125") or scientific ("1.0e3",
 * "1.0e-5"), whichever is shorter; fixed on a tie.
 */
static void
format_double(struct buf *o, double d)
{
    char s[40], dig[24];
    int nd = 0, e, p, fixed_len, sci_len;
    bool neg;
    const char *q;

    if (d == 0) {
        buf_printf(o, "%s", signbit(d) ? "-0.0" : "0.0");
        return;
    }
    if (!isfinite(d)) {
        buf_printf(o, "%g", d);
        return;
    }
    for (p = 1; p <= 17; p++) {
        snprintf(s, sizeof(s), "%.*e", p - 1, d);
        if (strtod(s, NULL) == d)
            break;
    }
    neg = s[0] == '-';
    for (q = s + neg; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < (int)sizeof(dig) - 1)
            dig[nd++] = *q;
    e = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    dig[nd] = '\0';
    if (e >= 0)
        fixed_len = (e + 1) + 1 + WR_MAX(nd - e - 1, 1);
    else
        fixed_len = 2 + (-e - 1) + nd;
    sci_len = 2 + WR_MAX(nd - 1, 1) + 1 + snprintf(NULL, 0, "%d", e);
    if (neg)
        buf_put_u8(o, '-');
    if (sci_len < fixed_len) {
        buf_printf(o, "%c.%s", dig[0], nd > 1 ? dig + 1 : "0");
        buf_printf(o, "e%d", e);
    } else if (e >= 0) {
        for (int i = 0; i <= e; i++)
            buf_put_u8(o, (uint8_t)(i < nd ? dig[i] : '0'));
        buf_printf(o, ".%s", nd > e + 1 ? dig + e + 1 : "0");
    } else {
        buf_printf(o, "0.");
        for (int i = 0; i < -e - 1; i++)
            buf_put_u8(o, '0');
        buf_printf(o, "%s", dig);
    }
}

void
headers__format_value(struct buf *o, const struct fvalue *v)
{
    switch (v->type) {
    case 'b':
    case 's':
    case 'I':
    case 'l':
    case 'L':
        buf_printf(o, "%lld", (long long)v->v.i);
        break;
    case 'B':
    case 'u':
    case 'i':
    case 'T':
        buf_printf(o, "%llu", (unsigned long long)v->v.u);
        break;
    case 't':
        buf_printf(o, "%s", v->v.b ? "true" : "false");
        break;
    case 'f':
    case 'd':
        format_double(o, double_of(v));
        break;
    case 'D':
        buf_printf(o, "{%u,%u}", v->v.dec.scale, v->v.dec.value);
        break;
    case 'S':
    case 'x':
        buf_put_erl_binary(o, v->v.str);
        break;
    case 'V':
        buf_printf(o, "undefined");
        break;
    case 'F': {
        struct ftable_iter it;
        struct bytes k;
        struct fvalue e;
        bool first = true;
        buf_put_u8(o, '[');
        ftable_iter_init(&it, v->v.str);
        while (ftable_next(&it, &k, &e)) {
            buf_printf(o, "%s{", first ? "" : ",");
            buf_put_erl_binary(o, k);
            buf_printf(o, ",%s,", fvalue_type_name(e.type));
            headers__format_value(o, &e);
            buf_put_u8(o, '}');
            first = false;
        }
        buf_put_u8(o, ']');
        break;
    }
    case 'A': {
        struct farray_iter it;
        struct fvalue e;
        bool first = true;
        buf_put_u8(o, '[');
        farray_iter_init(&it, v->v.str);
        while (farray_next(&it, &e)) {
            buf_printf(o, "%s{%s,", first ? "" : ",", fvalue_type_name(e.type));
            headers__format_value(o, &e);
            buf_put_u8(o, '}');
            first = false;
        }
        buf_put_u8(o, ']');
        break;
    }
    default:
        buf_printf(o, "undefined");
        break;
    }
}

int
headers__check_args(struct bytes args, struct buf *err)
{
    static const char *const ok[] = {"all", "any", "all-with-x", "any-with-x"};
    struct fvalue v;

    if (!ftable_find(args, "x-match", &v))
        return WR_OK; /* the spec is vague; RabbitMQ allows omitting it */
    if (v.type == 'S') {
        for (size_t i = 0; i < WR_ARRAY_LEN(ok); i++)
            if (bytes_eq_str(v.v.str, ok[i]))
                return WR_OK;
        buf_printf(err, "Invalid x-match field value ");
        buf_put_erl_binary(err, v.v.str);
        buf_printf(err, "; expected all, any, all-with-x, or any-with-x");
        return WR_ERR;
    }
    buf_printf(err, "Invalid x-match field type %s (value ",
               fvalue_type_name(v.type));
    headers__format_value(err, &v);
    buf_printf(err, "); expected longstr");
    return WR_ERR;
}

const struct xtype_ops headers__ops = {
    .name = "headers",
    .index_new = headers_new,
    .index_free = headers_free,
    .bind = headers_bind,
    .unbind = headers_unbind,
    .route = headers_route,
    .check_args = headers__check_args,
};
