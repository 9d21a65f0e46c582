/*
 * node.c: the node-wide registry of vhosts and the dispatch list.
 *
 * Queues that may be able to deliver (a publish arrived, a consumer got
 * credit back) are appended to the dirty list with a reference held;
 * node_run_dispatch() drains the list once per loop iteration. A queue
 * appears on the list at most once (queue.dirty).
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <stdlib.h>

struct node *
node_new(const struct node_opts *opts)
{
    struct node *n = xcalloc(1, sizeof(struct node));

    n->perm_gen = 1; /* channels' permission caches start at 0 */
    n->next_expiry_us = UINT64_MAX;
    if (opts)
        n->opts = *opts;
    return n;
}

void
node_free(struct node *n)
{
    struct vhost *vh, *tmp;

    if (!n)
        return;
    /* Shutdown: free the model, keep every vhost's data. */
    deadletter__drop(n, NULL);
    HASH_ITER(hh, n->vhosts, vh, tmp)
    {
        HASH_DEL(n->vhosts, vh);
        vhost__free(vh);
    }
    node_run_dispatch(n);
    deadletter__drop(n, NULL);
    free(n->dl);
    node__users_free(n);
    node__perms_free(n);
    node__kv_free(n);
    free(n);
}

struct vhost *
node_vhost_find(struct node *n, const char *name)
{
    struct vhost *vh;

    HASH_FIND_STR(n->vhosts, name, vh);
    return vh;
}

struct vhost *
node_vhost_next(struct node *n, const struct vhost *vh)
{
    return vh ? vh->hh.next : n->vhosts;
}

size_t
node_vhost_count(const struct node *n)
{
    return HASH_COUNT(n->vhosts);
}

bool
node_vhost_name_check(const char *name, const char **why)
{
    size_t len = strlen(name);

    if (len == 0 || len > VHOST_NAME_MAX) {
        *why = "a vhost name is 1 to 255 bytes long";
        return false;
    }
    if (!bytes_is_utf8(bytes_of(name, len))) {
        *why = "a vhost name must be valid UTF-8";
        return false;
    }
    return true;
}

/* Forgets vh; with keep_data false, also removes its data directory (a
 * clustered node's, too, when the vhost was not served here lately). */
static void
vhost_drop(struct node *n, struct vhost *vh, bool keep_data)
{
    char *dir = vh->store_dir ? xstrdup(vh->store_dir)
                : n->opts.data_dir && !keep_data
                    ? vhostdir__path(n->opts.data_dir, vh->name)
                    : NULL;
    char *name = xstrdup(vh->name);

    if (n->opts.dropping)
        n->opts.dropping(n->opts.dropping_arg, vh, !keep_data);
    HASH_DEL(n->vhosts, vh);
    deadletter__drop(n, vh);
    node__perm_drop_vhost(n, vh->name);
    node__kv_drop_vhost(n, vh->name);
    vhost__free(vh);
    if (dir && !keep_data)
        vhostdir__remove(n->opts.data_dir, name, dir);
    free(dir);
    free(name);
    node_defs_changed(n);
}

struct vhost *
node_vhost_add(struct node *n, const char *name)
{
    struct vhost *vh;
    const char *why;

    if (node_vhost_find(n, name))
        return NULL;
    if (!node_vhost_name_check(name, &why)) {
        log_err("vhost '%.300s': %s", name, why);
        return NULL;
    }
    vh = vhost__new(n, name);
    HASH_ADD_KEYPTR(hh, n->vhosts, vh->name, strlen(vh->name), vh);
    node_defs_changed(n);
    /* A clustered node opens a vhost's log when it leads it. */
    if (n->booted && !n->opts.clustered) {
        char err[1024];

        if (vhost__open_store(vh, err, sizeof(err)) != WR_OK) {
            log_err("vhost '%s': %s", name, err);
            /* whatever is in its directory was there before: keep it */
            vhost_drop(n, vh, true);
            return NULL;
        }
    }
    return vh;
}

void
node_vhost_remove(struct node *n, struct vhost *vh)
{
    vhost_drop(n, vh, false);
}

int
node_vhost_serve(struct node *n, struct vhost *vh, char *err, size_t errlen)
{
    if (vh->serving)
        return WR_OK;
    /* served from the open on: the deduplication journal opens only for
     * a vhost this node serves (dedup_log.c) */
    vh->serving = true;
    if (n->booted && vhost__open_store(vh, err, errlen) != WR_OK) {
        vh->serving = false;
        return WR_ERR;
    }
    return WR_OK;
}

void
node_vhost_unserve(struct node *n, struct vhost *vh)
{
    (void)n;
    vh->serving = false;
}

bool
vhost_is_serving(const struct vhost *vh)
{
    return vh->serving;
}

bool
vhost_is_empty(const struct vhost *vh)
{
    const struct queue *q, *tmp;
    struct store_stats st;

    HASH_ITER(hh, vh->queues, q, tmp)
    {
        if (q->durable)
            return false;
    }
    for (struct exchange *x = xreg_first(vh->xr); x; x = xreg_next(vh->xr, x)) {
        if (defs__exchange_is_exported(x))
            return false;
    }
    if (!vh->store)
        return true;
    store_get_stats(vh->store, &st);
    return st.live_msgs == 0;
}

void
node__schedule(struct node *n, struct queue *q)
{
    q->dirty_next = NULL;
    if (n->dirty_tail)
        n->dirty_tail->dirty_next = q;
    else
        n->dirty_head = q;
    n->dirty_tail = q;
}

void
node_run_dispatch(struct node *n)
{
    struct queue *q;

    /* Dispatch may schedule more queues (an auto-delete cascade, a
     * consumer on another queue): they join the tail and run in this
     * same pass. Dead letters go first: their queues join the list. */
    for (;;) {
        if (n->ndl > 0) {
            deadletter__run(n);
            continue;
        }
        if ((q = n->dirty_head) == NULL)
            break;
        n->dirty_head = q->dirty_next;
        if (!n->dirty_head)
            n->dirty_tail = NULL;
        q->dirty = false;
        if (!q->deleted)
            queue_dispatch(q);
        queue_unref(q);
    }
}

void
node_set_now(struct node *n, uint64_t now_us)
{
    n->now_us = now_us;
}

uint64_t
node_now(const struct node *n)
{
    return n->now_us;
}

void
node_expire(struct node *n)
{
    struct queue *q, *qtmp;

    n->next_expiry_us = UINT64_MAX;
    DL_FOREACH_SAFE2(n->timed, q, qtmp, timed_next)
    {
        /* x-expires: unused (no consumer, no basic.get, no redeclare)
         * for that long, the queue goes, messages and all, as
         * RabbitMQ's does. A recovered queue's lease starts at the
         * first check. */
        if (q->expires_ms > 0 && q->nconsumers == 0) {
            uint64_t lease = (uint64_t)q->expires_ms * 1000u;

            if (q->used_us == 0 || q->used_us > n->now_us) {
                q->used_us = n->now_us;
            } else if (n->now_us - q->used_us >= lease) {
                vhost_queue_delete(q->vh, q);
                continue;
            }
            node__note_expiry(n, q->used_us + lease);
        }
        if (q->may_expire)
            queue_expire(q); /* notes when the new head expires */
    }
}

uint64_t
node_next_expiry(const struct node *n)
{
    return n->next_expiry_us;
}

bool
node_is_fresh(const struct node *n)
{
    return n->fresh;
}

uint64_t
node_queue_memory(const struct node *n)
{
    return n->mem_bytes;
}

void
node_queue_churn(const struct node *n, uint64_t *created, uint64_t *deleted)
{
    *created = n->queues_created;
    *deleted = n->queues_deleted;
}

bool
node_is_paging(const struct node *n)
{
    return n->lazy;
}

bool
node_has_dispatch(const struct node *n)
{
    return n->dirty_head != NULL;
}
