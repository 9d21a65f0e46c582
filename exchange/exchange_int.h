/*
 * exchange_int.h: what the files of exchange/ share and nothing else
 * includes (tests aside): the binding record, the destination vector the
 * type indexes are built from, the routing context, and the "friend"
 * entry points of each type index (double underscore, STYLE.md).
 *
 * A type index never owns a binding: exchange.c allocates each struct
 * xbind, inserts it into the exchange's identity hash, then hands it to
 * the index (x__bind), and takes it back (x__unbind) before freeing it.
 */
#ifndef WARREN_EXCHANGE_INT_H
#define WARREN_EXCHANGE_INT_H

#include "exchange/exchange.h"
#include "amqp/ftable.h"

#define EXCHANGE_MAGIC 0x45584348u /* "EXCH" */

/*
 * One binding where the exchange is the source. The identity bytes are
 * dest pointer | is_exchange | u32 key length | key | sorted args; key
 * and args are views into them.
 */
struct xbind {
    UT_hash_handle hh; /* in exchange.binds, keyed by id */
    struct xdest dest;
    struct bytes key;
    struct bytes args; /* sorted by key */
    uint32_t slot;     /* position in the owning dvec */
    void *owner;       /* the index node whose dvec holds it */
    void *aux;         /* headers: the parsed match table */
    size_t idlen;
    uint8_t id[];
};

/* A destination as the indexes store it: inline for routing, with the
 * binding for O(1) removal. */
struct xslot {
    struct xdest dest;
    struct xbind *b;
};

/* Unordered vector of slots; removal moves the last slot into the hole
 * and updates that binding's `slot`. */
struct dvec {
    struct xslot *v;
    uint32_t n, cap;
};

void dvec__add(struct dvec *d, struct xbind *b);
void dvec__del(struct dvec *d, struct xbind *b);
void dvec__fini(struct dvec *d);

/* One header (or match-table entry): key and decoded value, views into
 * the table bytes. */
struct hent {
    struct bytes key;
    struct fvalue v;
};

/* Erlang's ordering of binaries: bytewise, a proper prefix first. */
int exchange__key_cmp(struct bytes a, struct bytes b);
/*
 * Decodes table body tbl into *out (grown with *cap as needed) and sorts
 * the entries stably by key using tmp (same capacity). Returns the
 * number of entries.
 */
size_t exchange__table_sorted(struct bytes tbl, struct hent **out,
                              struct hent **tmp, size_t *cap);

/* The state of one exchange_route call. */
struct xroute {
    struct xreg *r;
    struct routeset *rs;
    uint64_t gen;
    const struct bytes *rks;
    size_t nrk;
    struct bytes headers;
    struct bytes props; /* the raw content properties (may be empty) */
};

/* Adds q to the routeset's queues (deduplicated). */
void routeset__add_queue(struct routeset *rs, void *q);
/* Queues exchange y for a visit unless this route has seen it. */
void exchange__visit(struct xroute *c, struct exchange *y);

/* Hands one destination to the route: a queue to the set, an exchange
 * to the work list. */
static inline void
xroute_emit(struct xroute *c, struct xdest d)
{
    if (!d.is_exchange)
        routeset__add_queue(c->rs, d.ptr);
    else
        exchange__visit(c, (struct exchange *)d.ptr);
}

/*
 * Adds the queue destinations v[0..n), which the caller knows to be
 * distinct queues. Into an empty routeset this is a plain copy (indexed
 * lazily); otherwise each one is added with deduplication.
 */
void routeset__add_distinct(struct routeset *rs, const struct xslot *v,
                            uint32_t n);

/*
 * An exchange type: its name and its index of bindings. index_new and
 * index_free make and free one exchange's index; bind and unbind add and
 * remove a binding (owned by exchange.c, it outlives its stay in the
 * index); route emits every destination matched for c's keys or headers
 * and returns how many it emitted, repeats and already-visited exchanges
 * included; check_args vets binding arguments (NULL: any are fine),
 * check_key a binding key (NULL: any) and check_decl the exchange's
 * declare arguments (NULL: any); configure (NULL: nothing to read) hands
 * a new index the exchange's declare arguments.
 * One table per type, in its file; exchange.c holds the list.
 */
struct xtype_ops {
    const char *name; /* "direct", ... (AMQP's) */
    void *(*index_new)(void);
    void (*configure)(void *idx, struct bytes args);
    void (*index_free)(void *idx);
    void (*bind)(void *idx, struct xbind *b);
    void (*unbind)(void *idx, struct xbind *b);
    size_t (*route)(void *idx, struct xroute *c);
    int (*check_args)(struct bytes args, struct buf *err);
    int (*check_key)(struct bytes key, struct buf *err);
    int (*check_decl)(struct bytes args, struct buf *err);
};

extern const struct xtype_ops fanout__ops, direct__ops, headers__ops,
    chash__ops;
/* x-delayed-message's name only: its exchanges route with the ops of
 * their x-delayed-type (delayed.c). */
extern const struct xtype_ops delayed__ops;

/* topic__ops: see exchange/topic.h */

/* exchange_check_binding_args for headers exchanges. */
int headers__check_args(struct bytes args, struct buf *err);
/*
 * RabbitMQ's headers_match: does the sorted message header array
 * hdrs[0..n) satisfy binding b's match table?
 */
bool headers__match(const struct xbind *b, const struct hent *hdrs, size_t n);
/* Erlang's == on two decoded field values (types ignored at the top,
 * compared inside tables and arrays). */
bool headers__value_eq(const struct fvalue *a, const struct fvalue *b);
/* Appends v as Erlang's ~p prints RabbitMQ's decoded form of it. */
void headers__format_value(struct buf *out, const struct fvalue *v);

#endif
