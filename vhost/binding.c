/*
 * binding.c: the vhost's binding table, the owner of exchange->queue and
 * exchange->exchange edges.
 *
 * The exchange module keeps the routing index of each exchange; this file
 * keeps the records (source, destination, key, args) that listing and
 * cleanup need, linked twice: into the source exchange's `out` list and
 * into the destination's `in` list (queue.bindings, or the destination
 * exchange's xinfo.in). Deleting a queue or an exchange walks its own
 * lists, so cleanup never scans the vhost.
 *
 * Every record here has exactly one entry in the source's routing index,
 * and the other way round: both are changed together, and only here.
 *
 * An auto-delete exchange goes away when its last outgoing binding is
 * removed (RabbitMQ's rule), which may cascade.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include <stdlib.h>
#include <utlist.h>

static struct xinfo *
xinfo_of(const struct exchange *x)
{
    return (struct xinfo *)x->user;
}

static struct binding **
in_list(struct xdest dest)
{
    if (dest.is_exchange)
        return &xinfo_of((struct exchange *)dest.ptr)->in;
    return &((struct queue *)dest.ptr)->bindings;
}

struct bytes
binding_dest_name(const struct binding *b)
{
    if (b->dest.is_exchange) {
        const struct exchange *x = b->dest.ptr;

        return bytes_of(x->name, x->name_len);
    }
    return queue_name(b->dest.ptr);
}

struct binding *
vhost_bindings_out(const struct exchange *x)
{
    return xinfo_of(x)->out;
}

struct binding *
vhost_bindings_in(const struct exchange *x)
{
    return xinfo_of(x)->in;
}

struct binding *
queue_bindings(const struct queue *q)
{
    return q->bindings;
}

/* A binding between durable ends is part of the definitions file. */
static void
note_change(struct vhost *vh, const struct binding *b)
{
    bool dest_durable = b->dest.is_exchange
                            ? ((struct exchange *)b->dest.ptr)->durable
                            : ((struct queue *)b->dest.ptr)->durable;

    if (b->src->durable && dest_durable)
        node_defs_changed(vh->node);
}

static void
binding_free(struct binding *b)
{
    free(b->key);
    free((void *)b->args.ptr);
    free(b);
}

int
binding__add(struct vhost *vh, struct exchange *src, struct xdest dest,
             struct bytes key, struct bytes args)
{
    struct binding *b;

    (void)vh;
    if (exchange_bind(src, key, args, dest) == 0)
        return 0;
    b = xcalloc(1, sizeof(*b));
    b->src = src;
    b->dest = dest;
    b->key = xstrndup(key.ptr, key.len);
    b->key_len = key.len;
    b->args = bytes_of(xmemdup(args.ptr, args.len), args.len);
    DL_APPEND2(xinfo_of(src)->out, b, src_prev, src_next);
    DL_APPEND2(*in_list(dest), b, dest_prev, dest_next);
    note_change(vh, b);
    return 1;
}

/* Unlinks and frees b; deletes src when it is auto-delete and unused. */
static void
binding_drop(struct vhost *vh, struct binding *b)
{
    struct exchange *src = b->src;

    exchange_unbind(src, bytes_of(b->key, b->key_len), b->args, b->dest);
    DL_DELETE2(xinfo_of(src)->out, b, src_prev, src_next);
    DL_DELETE2(*in_list(b->dest), b, dest_prev, dest_next);
    note_change(vh, b);
    binding_free(b);
    if (src->auto_delete && xinfo_of(src)->out == NULL)
        vhost__exchange_delete(vh, src);
}

struct binding *
binding__find(struct exchange *src, struct xdest dest, struct bytes key,
              struct bytes args)
{
    struct binding *b;

    /* Search the destination's list: usually shorter than a fanout
     * source's. */
    for (b = *in_list(dest); b; b = b->dest_next) {
        if (b->src == src && b->dest.ptr == dest.ptr &&
            bytes_eq(bytes_of(b->key, b->key_len), key) &&
            exchange_args_equal(b->args, args))
            return b;
    }
    return NULL;
}

int
binding__remove(struct vhost *vh, struct exchange *src, struct xdest dest,
                struct bytes key, struct bytes args)
{
    struct binding *b = binding__find(src, dest, key, args);

    if (!b)
        return 0;
    binding_drop(vh, b);
    return 1;
}

void
binding__remove_all_in(struct vhost *vh, struct binding **list)
{
    while (*list)
        binding_drop(vh, *list);
}

void
binding__remove_all_out(struct vhost *vh, struct exchange *x)
{
    struct binding *b;

    /* Dropping a binding never deletes its source here: x itself is on
     * its way out, and the caller has marked it so (auto_delete off). */
    while ((b = xinfo_of(x)->out) != NULL) {
        exchange_unbind(x, bytes_of(b->key, b->key_len), b->args, b->dest);
        DL_DELETE2(xinfo_of(x)->out, b, src_prev, src_next);
        DL_DELETE2(*in_list(b->dest), b, dest_prev, dest_next);
        binding_free(b);
    }
    (void)vh;
}
