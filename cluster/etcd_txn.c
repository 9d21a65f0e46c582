/*
 * etcd_txn.c: the transaction builder.
 *
 * A txn is etcd's "if every compare holds then success[] else
 * failure[]", applied atomically at one revision. The builder keeps the
 * three JSON arrays of the request; commit wraps them and sends
 * /v3/kv/txn. Examples:
 *
 *   create-if-absent (the leader key; its create_revision is the epoch):
 *     if   CREATE(leader) == 0
 *     then put(leader, me, lease)  else range(leader)
 *
 *   fenced update (only while the ISR key is what we read):
 *     if   MOD(isr) == <mod_revision read>
 *     then put(isr, new)           else range(isr)
 *
 * A txn of ranges only is a read, retried like a range; one with any put
 * or delete is a write, never sent twice (etcd.h).
 */
#include "cluster/etcd_int.h"

#include <stdlib.h>

struct etcd_txn {
    json_t *compare;
    json_t *success;
    json_t *failure;
    bool writes;
};

static const char *const target_names[] = {
    [ETCD_VERSION] = "VERSION", [ETCD_CREATE] = "CREATE", [ETCD_MOD] = "MOD",
    [ETCD_VALUE] = "VALUE",     [ETCD_LEASE] = "LEASE",
};

/* The Compare field holding the operand of each target. */
static const char *const target_fields[] = {
    [ETCD_VERSION] = "version",  [ETCD_CREATE] = "create_revision",
    [ETCD_MOD] = "mod_revision", [ETCD_VALUE] = "value",
    [ETCD_LEASE] = "lease",
};

static const char *const cmp_names[] = {
    [ETCD_EQUAL] = "EQUAL",
    [ETCD_GREATER] = "GREATER",
    [ETCD_LESS] = "LESS",
    [ETCD_NOT_EQUAL] = "NOT_EQUAL",
};

struct etcd_txn *
etcd_txn_new(void)
{
    struct etcd_txn *t = xcalloc(1, sizeof(*t));

    t->compare = json_array();
    t->success = json_array();
    t->failure = json_array();
    return t;
}

void
etcd_txn_free(struct etcd_txn *t)
{
    if (!t)
        return;
    json_decref(t->compare);
    json_decref(t->success);
    json_decref(t->failure);
    free(t);
}

static json_t *
compare_new(struct bytes key, enum etcd_target target, enum etcd_cmp cmp)
{
    json_t *c = json_object();

    WR_ASSERT((size_t)target < WR_ARRAY_LEN(target_names));
    WR_ASSERT((size_t)cmp < WR_ARRAY_LEN(cmp_names));
    etcd__json_set_bytes(c, "key", key);
    json_object_set_new(c, "target", json_string(target_names[target]));
    json_object_set_new(c, "result", json_string(cmp_names[cmp]));
    return c;
}

void
etcd_txn_if(struct etcd_txn *t, struct bytes key, enum etcd_target target,
            enum etcd_cmp cmp, int64_t v)
{
    json_t *c = compare_new(key, target, cmp);

    WR_ASSERT(target != ETCD_VALUE);
    etcd__json_set_int(c, target_fields[target], v);
    json_array_append_new(t->compare, c);
}

void
etcd_txn_if_value(struct etcd_txn *t, struct bytes key, enum etcd_cmp cmp,
                  struct bytes value)
{
    json_t *c = compare_new(key, ETCD_VALUE, cmp);

    etcd__json_set_bytes(c, target_fields[ETCD_VALUE], value);
    json_array_append_new(t->compare, c);
}

/* Appends {"<kind>": op} to the branch's ops. */
static void
add_op(struct etcd_txn *t, enum etcd_branch b, const char *kind, json_t *op)
{
    json_t *wrap = json_object();

    json_object_set_new(wrap, kind, op);
    json_array_append_new(b == ETCD_THEN ? t->success : t->failure, wrap);
}

void
etcd_txn_put(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
             struct bytes value, const struct etcd_put_opts *o)
{
    add_op(t, b, "request_put", etcd__json_put(key, value, o));
    t->writes = true;
}

void
etcd_txn_range(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
               const struct etcd_range_opts *o)
{
    add_op(t, b, "request_range", etcd__json_range(key, o));
}

void
etcd_txn_delete(struct etcd_txn *t, enum etcd_branch b, struct bytes key,
                const struct etcd_delete_opts *o)
{
    add_op(t, b, "request_delete_range", etcd__json_delete(key, o));
    t->writes = true;
}

struct etcd_req *
etcd_txn_commit(struct etcd *e, struct etcd_txn *t, etcd_result_fn *cb,
                void *arg)
{
    json_t *j = json_object();
    bool writes = t->writes;
    struct buf body;

    WR_ASSERT(e->magic == ETCD_MAGIC);
    json_object_set_new(j, "compare", t->compare);
    json_object_set_new(j, "success", t->success);
    json_object_set_new(j, "failure", t->failure);
    free(t);
    buf_init(&body);
    etcd__json_dump_steal(j, &body);
    return etcd__req_submit(&e->pool, ETCD_OP_TXN, "/v3/kv/txn", &body, !writes,
                            0, cb, arg);
}
