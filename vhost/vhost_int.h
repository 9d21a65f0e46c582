/*
 * vhost_int.h: friend functions shared only inside vhost/.
 */
#ifndef WARREN_VHOST_INT_H
#define WARREN_VHOST_INT_H

#include "vhost/vhost.h"

/* The node: every vhost, and the list of queues waiting for dispatch. */
struct node {
    struct vhost *vhosts; /* uthash by name */
    struct queue *dirty_head, *dirty_tail;
    uint64_t now_us;
};

/* queue.c */
void qd_push_back(struct qdeque *d, struct qentry e);
bool qd_pop_front(struct qdeque *d, struct qentry *out);
void qd_insert_sorted(struct qdeque *d, struct qentry e);
void qd_fini(struct qdeque *d);
void queue__track(struct queue *q);

/* node.c: q is on the dirty list and holds a reference for it. */
void node__schedule(struct node *n, struct queue *q);

/* binding.c */
/* Adds the binding record (and the routing index entry). Returns 1 when
 * new, 0 when it existed. */
int binding__add(struct vhost *vh, struct exchange *src, struct xdest dest,
                 struct bytes key, struct bytes args);
struct binding *binding__find(struct exchange *src, struct xdest dest,
                              struct bytes key, struct bytes args);
/* Returns 1 when removed, 0 when there was no such binding. */
int binding__remove(struct vhost *vh, struct exchange *src, struct xdest dest,
                    struct bytes key, struct bytes args);
/* Removes every binding whose destination is the given list's owner. */
void binding__remove_all_in(struct vhost *vh, struct binding **list);
/* Removes every binding whose source is x. */
void binding__remove_all_out(struct vhost *vh, struct exchange *x);

/* args.c: rs is RabbitMQ's resource text, "queue 'q' in vhost '/'" */
int args__check_queue(struct bytes args, const char *rs, struct vherr *err);
int args__equiv_queue(struct bytes cur, struct bytes req, const char *rs,
                      struct vherr *err);
int args__check_exchange(struct bytes args, const char *rs, struct vherr *err);
int args__equiv_exchange(struct bytes cur, struct bytes req, const char *rs,
                         struct vherr *err);

/* vhost.c */
void vhost__exchange_delete(struct vhost *vh, struct exchange *x);
struct vhost *vhost__new(struct node *n, const char *name);
void vhost__free(struct vhost *vh);

#endif
