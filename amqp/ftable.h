/*
 * ftable: AMQP field tables and arrays, as RabbitMQ reads and writes them.
 *
 * A table on the wire is a u32 byte length followed by entries of
 * (shortstr key, u8 type letter, value). Warren keeps tables as raw bytes
 * (the part after the length prefix) and reads them with an iterator;
 * nothing is decoded until a feature asks for a key. Type letters are
 * RabbitMQ's (rabbit_binary_parser.erl), not the 0-9-1 PDF's:
 *
 *   t bool      b int8     B uint8    s int16    u uint16   I int32
 *   i uint32    l int64    L int64    f float32  d float64  D decimal
 *   S longstr   A array    T timestamp          F table    V void
 *   x byte array
 *
 * Every table that comes from a client goes through ftable_validate()
 * once, at decode time; the iterators then assume well-formed input and
 * never read past the end even if that assumption is broken.
 */
#ifndef WARREN_FTABLE_H
#define WARREN_FTABLE_H

#include "base/base.h"

/* Tables nested deeper than this (tables or arrays) are refused. */
#define FTABLE_MAX_DEPTH 32

struct fvalue {
    char type; /* one of the letters above */
    union {
        bool b;     /* t */
        int64_t i;  /* b s I l L (sign-extended) */
        uint64_t u; /* B u i T */
        float f;    /* f */
        double d;   /* d */
        struct {    /* D */
            uint8_t scale;
            uint32_t value;
        } dec;
        struct bytes str; /* S x: the bytes; F A: the raw inner bytes */
    } v;
};

/*
 * Checks a table body (without its u32 length prefix): known type letters,
 * lengths inside the buffer, nesting at most
 * FTABLE_MAX_DEPTH. Returns WR_OK or WR_ERR; on error *why (if not NULL)
 * is a static text naming the fault.
 */
int ftable_validate(struct bytes tbl, const char **why);
/* The same for an array body. */
int farray_validate(struct bytes arr, const char **why);

struct ftable_iter {
    struct cursor c;
};

void ftable_iter_init(struct ftable_iter *it, struct bytes tbl);
/* Yields the next entry; returns false at the end (or on malformed input). */
bool ftable_next(struct ftable_iter *it, struct bytes *key, struct fvalue *v);
/* Looks a key up; returns true and fills *v when found (first match). */
bool ftable_find(struct bytes tbl, const char *key, struct fvalue *v);
size_t ftable_count(struct bytes tbl);

struct farray_iter {
    struct cursor c;
};

void farray_iter_init(struct farray_iter *it, struct bytes arr);
bool farray_next(struct farray_iter *it, struct fvalue *v);

/* True for the integer letters (b B s u I i l L T is not one). */
bool fvalue_is_int(const struct fvalue *v);
/* Reads any integer type as int64; false when v is not an integer or an
 * unsigned value does not fit. */
bool fvalue_get_int(const struct fvalue *v, int64_t *out);
/* A value that is not a string as 64 bits, for hashing: integers by
 * value (signed or unsigned as their type), booleans, floats and doubles
 * by their bits, decimals as scale << 32 | value, void as 0. */
uint64_t fvalue_bits(const struct fvalue *v);
/* True for S (longstr); x byte arrays are not strings. */
static inline bool
fvalue_is_str(const struct fvalue *v)
{
    return v->type == 'S';
}
/*
 * RabbitMQ's "type class" comparison (rabbit_misc:type_class): integers
 * compare by value whatever their width, floats likewise; otherwise the
 * letters must match and the values be equal (tables and arrays by bytes).
 */
bool fvalue_eq(const struct fvalue *a, const struct fvalue *b);
/* RabbitMQ's type name for error texts: "signedint", "longstr", "long",
 * "bool", "table", "array", "double", ... */
const char *fvalue_type_name(char type);
/* Appends a human rendering of v (as RabbitMQ prints values in
 * "inequivalent arg" texts: 2000, <<"text">> shown as text, true). */
void fvalue_format(const struct fvalue *v, struct buf *out);

/*
 * Encoding. ftable_begin() reserves the u32 length and returns its
 * offset; ftable_end() fills it in. Between them, put entries with the
 * fenc_* functions, each writing key, type letter and value. Arrays work
 * the same with farray_begin/end and the fenc_*_value functions (no key).
 */
size_t ftable_begin(struct buf *b);
void ftable_end(struct buf *b, size_t mark);
#define farray_begin ftable_begin
#define farray_end   ftable_end

void fenc_key(struct buf *b, const char *key);
void fenc_bool(struct buf *b, const char *key, bool v);
void fenc_int(struct buf *b, const char *key, int64_t v);      /* 'l' */
void fenc_i32(struct buf *b, const char *key, int32_t v);      /* 'I' */
void fenc_str(struct buf *b, const char *key, struct bytes v); /* 'S' */
void fenc_cstr(struct buf *b, const char *key, const char *v);
void fenc_timestamp(struct buf *b, const char *key, uint64_t v);
/* Appends a raw value of any type (letter + encoded value) under key. */
void fenc_value(struct buf *b, const char *key, const struct fvalue *v);
/* The same with a key that is not NUL-terminated (at most 255 bytes). */
void fenc_value_key(struct buf *b, struct bytes key, const struct fvalue *v);
/* Value-only encoders for arrays. */
void fenc_value_only(struct buf *b, const struct fvalue *v);

/*
 * Appends table tbl (a validated body; with its u32 length) with key set
 * to v, as RabbitMQ's rabbit_misc:set_table_value writes it: the first
 * entry of that key takes v (else one is added), the entries are sorted
 * by key (bytewise, a prefix first; equal keys keep their order), and
 * every 'L' letter, nested ones too, becomes 'l' (RabbitMQ decoded the
 * table and writes a long as 'l'). Nested tables keep their order.
 */
void ftable_put_set(struct buf *b, struct bytes tbl, const char *key,
                    const struct fvalue *v);

#endif
