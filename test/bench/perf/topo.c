/*
 * topo.c: the exchange, queues and bindings of a run, and the routes the
 * producers publish on.
 *
 * Queues are "<prefix>-<i>", the exchange "<prefix>.<type>" unless
 * --exchange names one. Every route knows which queue its messages reach,
 * so consumers can check that each message arrived where it was sent:
 *
 *   direct   queue i bound with key "<prefix>-<i>"; route i uses that key
 *   fanout   every queue bound with ""; one route reaching all queues
 *   topic    binding k (of --topic-bindings, default one per queue) goes
 *            to queue k % queues with, by k % 4, "perf.<k>.*",
 *            "perf.<k>.#", "*.<k>.x" or "#.<k>.x"; route j publishes
 *            "perf.<j>.x", which matches binding j and no other
 *   headers  queue i bound with x-match=all, perf-q=i; route i sends
 *            header perf-q=i
 *
 * Queues are purged after declaring so that leftovers of an earlier,
 * interrupted run cannot look like duplicates.
 */
#include "amqp/ftable.h"
#include "test/bench/perf/perf.h"

void
topo_exchange_name(const struct perf_opts *o, char *out, size_t n)
{
    if (o->exchange[0] != '\0')
        snprintf(out, n, "%s", o->exchange);
    else
        snprintf(out, n, "%s.%s", o->queue_prefix, perf_xtype_name(o->xtype));
}

void
topo_queue_name(const struct perf_opts *o, int i, char *out, size_t n)
{
    snprintf(out, n, "%s-%d", o->queue_prefix, i);
}

void
topo_topic_key(int j, char *out, size_t n)
{
    snprintf(out, n, "perf.%d.x", j);
}

static void
topic_pattern(int k, char *out, size_t n)
{
    switch (k % 4) {
    case 0:
        snprintf(out, n, "perf.%d.*", k);
        break;
    case 1:
        snprintf(out, n, "perf.%d.#", k);
        break;
    case 2:
        snprintf(out, n, "*.%d.x", k);
        break;
    default:
        snprintf(out, n, "#.%d.x", k);
        break;
    }
}

static int
topic_bindings(const struct perf_opts *o)
{
    return o->topic_bindings > 0 ? o->topic_bindings : o->queues;
}

static int
declare_exchange(struct pconn *c, const struct perf_opts *o, const char *ex)
{
    struct amqp_method m;

    memset(&m, 0, sizeof(m));
    m.id = AMQP_EXCHANGE_DECLARE;
    m.u.exchange_declare.exchange = bytes_str(ex);
    m.u.exchange_declare.type = bytes_str(perf_xtype_name(o->xtype));
    m.u.exchange_declare.durable = o->durable_queues;
    return pconn_rpc(c, 1, &m, AMQP_EXCHANGE_DECLARE_OK, NULL);
}

static int
declare_queue(struct pconn *c, const struct perf_opts *o, const char *q)
{
    struct amqp_method m;

    memset(&m, 0, sizeof(m));
    m.id = AMQP_QUEUE_DECLARE;
    m.u.queue_declare.queue = bytes_str(q);
    m.u.queue_declare.durable = o->durable_queues;
    if (pconn_rpc(c, 1, &m, AMQP_QUEUE_DECLARE_OK, NULL) != WR_OK)
        return WR_ERR;
    memset(&m, 0, sizeof(m));
    m.id = AMQP_QUEUE_PURGE;
    m.u.queue_purge.queue = bytes_str(q);
    return pconn_rpc(c, 1, &m, AMQP_QUEUE_PURGE_OK, NULL);
}

static int
bind_key(struct pconn *c, const char *q, const char *ex, const char *key,
         struct bytes args)
{
    struct amqp_method m;

    memset(&m, 0, sizeof(m));
    m.id = AMQP_QUEUE_BIND;
    m.u.queue_bind.queue = bytes_str(q);
    m.u.queue_bind.exchange = bytes_str(ex);
    m.u.queue_bind.routing_key = bytes_str(key);
    m.u.queue_bind.arguments = args;
    return pconn_rpc(c, 1, &m, AMQP_QUEUE_BIND_OK, NULL);
}

static int
bind_queue(struct pconn *c, const struct perf_opts *o, const char *ex, int i)
{
    char q[256];
    struct buf args;
    int rc;

    topo_queue_name(o, i, q, sizeof(q));
    switch (o->xtype) {
    case XT_DIRECT:
        return bind_key(c, q, ex, q, BYTES_NULL);
    case XT_FANOUT:
        return bind_key(c, q, ex, "", BYTES_NULL);
    case XT_HEADERS:
        buf_init(&args);
        fenc_cstr(&args, "x-match", "all");
        fenc_i32(&args, "perf-q", i);
        rc = bind_key(c, q, ex, "", buf_bytes(&args));
        buf_fini(&args);
        return rc;
    case XT_TOPIC:
        break; /* bound by pattern below */
    }
    return WR_OK;
}

int
topo_setup(struct pconn *c, const struct perf_opts *o)
{
    char ex[256];
    char q[256];
    char key[64];

    if (o->predeclared)
        return WR_OK;
    topo_exchange_name(o, ex, sizeof(ex));
    if (declare_exchange(c, o, ex) != WR_OK)
        return WR_ERR;
    for (int i = 0; i < o->queues; i++) {
        topo_queue_name(o, i, q, sizeof(q));
        if (declare_queue(c, o, q) != WR_OK || bind_queue(c, o, ex, i) != WR_OK)
            return WR_ERR;
    }
    if (o->xtype != XT_TOPIC)
        return WR_OK;
    for (int k = 0; k < topic_bindings(o); k++) {
        topo_queue_name(o, k % o->queues, q, sizeof(q));
        topic_pattern(k, key, sizeof(key));
        if (bind_key(c, q, ex, key, BYTES_NULL) != WR_OK)
            return WR_ERR;
    }
    return WR_OK;
}

int
topo_teardown(struct pconn *c, const struct perf_opts *o)
{
    struct amqp_method m;
    char name[256];

    if (o->predeclared)
        return WR_OK;
    for (int i = 0; i < o->queues; i++) {
        topo_queue_name(o, i, name, sizeof(name));
        memset(&m, 0, sizeof(m));
        m.id = AMQP_QUEUE_DELETE;
        m.u.queue_delete.queue = bytes_str(name);
        if (pconn_rpc(c, 1, &m, AMQP_QUEUE_DELETE_OK, NULL) != WR_OK)
            return WR_ERR;
    }
    topo_exchange_name(o, name, sizeof(name));
    memset(&m, 0, sizeof(m));
    m.id = AMQP_EXCHANGE_DELETE;
    m.u.exchange_delete.exchange = bytes_str(name);
    return pconn_rpc(c, 1, &m, AMQP_EXCHANGE_DELETE_OK, NULL);
}

void
topo_add_routes(const struct perf_opts *o, struct pmsg_factory *f)
{
    char ex[256];
    char key[256];

    topo_exchange_name(o, ex, sizeof(ex));
    switch (o->xtype) {
    case XT_DIRECT:
        for (int i = 0; i < o->queues; i++) {
            topo_queue_name(o, i, key, sizeof(key));
            pmsg_add_route(f, ex, key, o->persistent, -1, (uint16_t)i);
        }
        break;
    case XT_FANOUT:
        pmsg_add_route(f, ex, "", o->persistent, -1, PMSG_BROADCAST);
        break;
    case XT_TOPIC:
        for (int j = 0; j < topic_bindings(o); j++) {
            topo_topic_key(j, key, sizeof(key));
            pmsg_add_route(f, ex, key, o->persistent, -1,
                           (uint16_t)(j % o->queues));
        }
        break;
    case XT_HEADERS:
        for (int i = 0; i < o->queues; i++)
            pmsg_add_route(f, ex, "", o->persistent, i, (uint16_t)i);
        break;
    }
}
