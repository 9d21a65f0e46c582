/*
 * exchange: the exchanges of one vhost, their routing indexes, and the
 * routing of a publish through exchange graphs and alternate exchanges.
 *
 * This module is pure: it knows nothing of sockets, AMQP methods, queues'
 * internals or the vhost. Queues are opaque `void *` values that routing
 * hands back in a routeset. The vhost layer owns the binding *records*
 * (for listing and cleanup) and calls exchange_bind()/exchange_unbind()
 * in step with them; this module owns the exchanges (by name, in a
 * struct xreg) and the per-type routing indexes:
 *
 *   direct   hash of routing key -> destinations
 *   fanout   array of destinations, key ignored
 *   topic    trie over '.'-separated words with '*' and '#', plus a
 *            bounded routing cache (routing key -> result)
 *   headers  array of pre-sorted match tables, x-match all/any/...-with-x
 *   x-consistent-hash  bindings in bucket order, weights as prefix sums;
 *            one destination per message by Jump Consistent Hash
 *
 * Semantics follow RabbitMQ 3.10 (rabbit_exchange:route1 and the
 * rabbit_exchange_type_* modules), checked against a running RabbitMQ.
 *
 * Invariants:
 *   - Every binding of an exchange is in exactly one place of its type
 *     index and in its identity hash (exchange_binding_count()).
 *   - A binding's identity is (key, args sorted by key, destination),
 *     as in rabbit_binding: binding the same triple twice keeps one.
 *   - Routing allocates nothing once the routeset and the indexes have
 *     warmed up (the topic cache reuses its slots).
 */
#ifndef WARREN_EXCHANGE_H
#define WARREN_EXCHANGE_H

#include "base/base.h"

#include <uthash.h>

enum exchange_type {
    EXCHANGE_DIRECT,
    EXCHANGE_FANOUT,
    EXCHANGE_TOPIC,
    EXCHANGE_HEADERS,
    EXCHANGE_CONSISTENT_HASH, /* x-consistent-hash (chash.c) */
    EXCHANGE_DELAYED, /* x-delayed-message: routes as its x-delayed-type */
};

/* "direct", "fanout", "topic", "headers", "x-consistent-hash" (exact,
 * case-sensitive) -> *out.
 * Returns WR_OK, or WR_ERR for anything else (*out untouched). */
int exchange_type_parse(struct bytes name, enum exchange_type *out);
/* The type's AMQP name ("direct", ...). */
const char *exchange_type_name(enum exchange_type t);
/*
 * The routing type of an x-delayed-message exchange: its declare
 * arguments' "x-delayed-type", a string naming any other type (delayed.c).
 * Returns WR_OK with *out set; WR_ERR with *unknown false when the
 * argument is missing, not a string or names x-delayed-message itself,
 * with *unknown true when the string names no type (RabbitMQ tells the
 * two apart: 406 and 503).
 */
int exchange_delayed_type(struct bytes args, enum exchange_type *out,
                          bool *unknown);

/* A binding destination: a queue (opaque to this module) or an exchange
 * (a struct exchange * of the same xreg). ptr is never NULL. */
struct xdest {
    void *ptr;
    bool is_exchange;
};

struct xbind;
struct xtype_ops;
struct fanout;
struct direct;
struct topic;
struct headers;
struct chash;

/*
 * One exchange. Owned by its xreg; freed by xreg_remove()/xreg_free().
 * The fields above "private" are read-only for other modules, except
 * `user`, which belongs to the vhost layer.
 */
struct exchange {
    char *name; /* owned copy, NUL-terminated */
    size_t name_len;
    enum exchange_type type;
    enum exchange_type route_type; /* type, or an x-delayed-type's */
    bool durable, auto_delete, internal;
    struct bytes args; /* owned copy of the declare arguments table body */
    char *alternate;   /* "alternate-exchange" argument (longstr) or NULL */
    size_t alternate_len;
    void *user; /* free for the vhost layer's use */
    /* Message counters (RabbitMQ's exchange message_stats), counted by
     * the broker at publish: messages in, and queue deliveries out. The
     * management API samples them for rates (the sampled_* fields). */
    uint64_t stat_publish_in, stat_publish_out;
    uint64_t sampled_in, sampled_out;
    float rate_in, rate_out;

    /* private: owned by exchange/ */
    uint32_t magic;
    uint64_t route_mark;    /* == xreg route generation when visited */
    char *policy_alternate; /* alternate-exchange from a policy or NULL */
    size_t policy_alternate_len;
    struct xbind *binds;         /* uthash: identity of every binding */
    const struct xtype_ops *ops; /* the type's (exchange_int.h) */
    union {
        void *any; /* what the type's ops take */
        struct fanout *fanout;
        struct direct *direct;
        struct topic *topic;
        struct headers *headers;
        struct chash *chash;
    } idx;
    UT_hash_handle hh; /* in the xreg, by name, insertion-ordered */
};

/* ---- the registry of one vhost's exchanges */

struct xreg;

struct xreg *xreg_new(void);
/* Frees every exchange (and its index) and the registry itself. */
void xreg_free(struct xreg *r);
/* Looks an exchange up by exact name. Returns it (borrowed) or NULL. */
struct exchange *xreg_find(struct xreg *r, struct bytes name);
/*
 * Creates and registers an exchange. Assumes the name is not taken
 * (asserted). Copies name and args; args is a table body that passed
 * ftable_validate(). A longstr "alternate-exchange" argument becomes
 * x->alternate (other types are ignored here; the vhost refuses them at
 * declare time as RabbitMQ does). An EXCHANGE_DELAYED exchange routes
 * with the index of its x-delayed-type, which args must name (asserted;
 * exchange_delayed_type). Returns the new exchange (borrowed).
 */
struct exchange *xreg_add(struct xreg *r, struct bytes name,
                          enum exchange_type t, bool durable, bool auto_delete,
                          bool internal, struct bytes args);
/*
 * Unregisters and frees x together with its routing index. Assumes no
 * other exchange's index still points at x (the vhost removes
 * exchange-to-exchange bindings first).
 */
void xreg_remove(struct xreg *r, struct exchange *x);
size_t xreg_count(const struct xreg *r);
/*
 * Iteration in insertion order. Removing the current element is safe
 * when the next one is fetched first:
 *     for (x = xreg_first(r); x; x = next) {
 *         next = xreg_next(r, x);
 *         if (...) xreg_remove(r, x);
 *     }
 * Returns NULL at the end.
 */
struct exchange *xreg_first(struct xreg *r);
struct exchange *xreg_next(struct xreg *r, struct exchange *x);

/*
 * Sets (name.ptr != NULL) or clears (BYTES_NULL) the alternate exchange
 * a policy gives x. The "alternate-exchange" argument, when present,
 * wins over the policy (rabbit_policy:get_arg). Copies name.
 */
void exchange_set_policy_alternate(struct exchange *x, struct bytes name);
/* The alternate exchange name routing uses for x: the argument, else the
 * policy's; {NULL, 0} when none. */
struct bytes exchange_alternate(const struct exchange *x);

/* ---- bindings */

/*
 * Checks binding arguments for this exchange type before binding
 * (rabbit_exchange:validate_binding). Only headers exchanges check
 * anything: an "x-match" entry, when present, must be a longstr "all",
 * "any", "all-with-x" or "any-with-x". Otherwise appends RabbitMQ's text
 * (without the "PRECONDITION_FAILED - " prefix) to err and returns
 * WR_ERR:
 *   Invalid x-match field value <<"foo">>; expected all, any,
 *   all-with-x, or any-with-x
 *   Invalid x-match field type signedint (value 5); expected longstr
 * Values are rendered as Erlang's ~p does; tables and arrays are kept on
 * one line (RabbitMQ breaks very long ones over several lines). The
 * caller cuts the text to a shortstr. Returns WR_OK when acceptable.
 * Assumes args passed ftable_validate().
 */
int exchange_check_binding_args(const struct exchange *x, struct bytes args,
                                struct buf *err);
/*
 * Checks a binding key for x's type: x-consistent-hash wants an integer
 * weight (RabbitMQ's plugin texts, without "PRECONDITION_FAILED - ",
 * appended to err: "The binding key must be an integer: <<\"abc\">>",
 * "The binding key must be greater than 0"; and, Warren's bound, "The
 * binding key must not be greater than 2147483647"). Other types take
 * any key. Returns WR_OK or WR_ERR.
 */
int exchange_check_binding_key(const struct exchange *x, struct bytes key,
                               struct buf *err);
/*
 * Checks the declare arguments a type reads itself (x-consistent-hash:
 * hash-header, hash-property; the plugin's texts "hash-header and
 * hash-property are mutually exclusive", "Unsupported property: app_id").
 * Appends the text to err and returns WR_ERR, or returns WR_OK.
 */
int exchange_check_decl_args(enum exchange_type t, struct bytes args,
                             struct buf *err);
/*
 * Adds (key, args) -> dest to x's routing index. Idempotent: binding the
 * same (key, args, dest) twice keeps one; args are compared after a
 * stable sort by key, as RabbitMQ stores them. Copies key and args.
 * For headers exchanges, assumes exchange_check_binding_args() accepted
 * args (an invalid x-match would act as "all", RabbitMQ's legacy rule).
 * Returns 1 when added, 0 when it already existed.
 */
int exchange_bind(struct exchange *x, struct bytes key, struct bytes args,
                  struct xdest dest);
/* Removes (key, args, dest) from x's index. Returns 1 when removed, 0
 * when absent. */
int exchange_unbind(struct exchange *x, struct bytes key, struct bytes args,
                    struct xdest dest);
/* The number of bindings where x is the source. */
size_t exchange_binding_count(const struct exchange *x);

/*
 * Writes args with its entries stably sorted by key (Erlang binary order:
 * bytewise, a prefix first) into out (appended). This is the form in
 * which binding identity is compared; the vhost may use it to compare
 * its own binding records the same way. Assumes args is a valid table
 * body.
 */
void exchange_args_sort(struct bytes args, struct buf *out);
/* True when a and b are the same table once sorted by key. */
bool exchange_args_equal(struct bytes a, struct bytes b);

/* ---- routing */

struct hent;

/*
 * The queues one publish goes to, deduplicated. Embedded by its user
 * (routeset_init/fini); reused for every publish with routeset_reset(),
 * which keeps its memory, so routing allocates only when a publish
 * reaches more queues (or exchanges, or headers) than any before it, or
 * while a topic exchange's bounded cache is still filling.
 */
struct routeset {
    void **queues; /* the distinct queues, in the order first reached */
    size_t n;

    /* private */
    size_t cap;
    void **set; /* open addressing over queues[0..indexed) */
    size_t set_cap, indexed;
    struct exchange **work; /* exchanges still to visit */
    size_t work_n, work_cap;
    struct hent *hdrs; /* the publish's headers, sorted (headers x) */
    struct hent *hdr_tmp;
    size_t hdr_n, hdr_cap;
    bool hdr_ready;
    struct xdest *tmp; /* topic match results before caching */
    size_t tmp_n, tmp_cap;

    /* public: set by the caller before routing. When true, an
     * x-delayed-message exchange reached through a binding (not the one
     * routed from) is not routed through: it lands in held[0..held_n),
     * for the caller to hold the message back there (vhost/delay.c). */
    bool hold_delayed;
    struct exchange **held;
    size_t held_n, held_cap;
};

void routeset_init(struct routeset *rs);
/* Empties rs, keeping its memory. O(number of queues it held). */
void routeset_reset(struct routeset *rs);
void routeset_fini(struct routeset *rs);
/* Adds q unless rs already holds it. Returns true when added. */
bool routeset_add(struct routeset *rs, void *q);
/* True when rs holds q. (Not const: may index queues added in bulk.) */
bool routeset_has(struct routeset *rs, const void *q);

/*
 * Routes a message published to x (an exchange of r). rk: routing key;
 * headers: the message's headers table body (may be empty; assumed
 * validated). Adds each matching queue to rs exactly once (rs is not
 * reset first), following exchange-to-exchange bindings; an exchange
 * reached twice (diamond) or in a cycle is visited once. Alternate
 * exchanges as rabbit_exchange:route1 does it: for every exchange visited
 * whose own type-routing yields no destination at all (no queue and no
 * exchange, even one already visited), its alternate exchange is looked
 * up by name in r and visited as well (absent name: ignored).
 * Returns the number of queues in rs.
 */
size_t exchange_route(struct xreg *r, struct exchange *x, struct bytes rk,
                      struct bytes headers, struct routeset *rs);
/*
 * The same with several routing keys at once (the publish's key plus its
 * CC and BCC headers, as RabbitMQ routes them): direct and topic
 * exchanges match every key, and an exchange counts as unroutable (for
 * its alternate exchange) only when no key matched. nrk >= 1.
 */
size_t exchange_route_keys(struct xreg *r, struct exchange *x,
                           const struct bytes *rks, size_t nrk,
                           struct bytes headers, struct bytes props,
                           struct routeset *rs);
/* exchange_route with the message's raw content properties as well,
 * which x-consistent-hash exchanges with a hash-property read. */
size_t exchange_route_props(struct xreg *r, struct exchange *x, struct bytes rk,
                            struct bytes headers, struct bytes props,
                            struct routeset *rs);

#endif
