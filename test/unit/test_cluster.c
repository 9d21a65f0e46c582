/*
 * Tests of cluster/ (joining, membership, vhost leadership) against a real
 * etcd member each case starts (test_etcd_util.c). Several nodes run in
 * one process, each a struct cluster with its own etcd client, on the
 * case's one loop; a "crash" is cluster_free without cluster_stop (the
 * lease then runs out on its own).
 */
#include "cluster/cluster.h"
#include "test/unit/test_etcd_util.h"
#include "vhost/node.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define TTL_S      2
#define WAIT_MS    15000
#define CASE_MAX_S 110
#define MAX_NODES  3

static struct ev_loop *loop;
static struct tu_cluster etcd;

/* One node: its cluster object and what the broker side saw. */
struct tnode {
    char name[16];
    char dir[600];
    struct cluster *c;
    int leads, unleads;
    int64_t last_epoch;
    char last_vhost[64];
    char last_why[200];
    char empty[32];     /* the vhost vhost_is_empty says is empty */
    struct node *model; /* definitions follow the cluster's, when set */
    int removing;       /* vhost_removing calls */
};

static struct tnode nodes[MAX_NODES];
static bool balanced = true; /* queue_leader_locator of new nodes */

static void
on_lead(void *arg, const char *vhost, int64_t epoch)
{
    struct tnode *n = arg;

    n->leads++;
    n->last_epoch = epoch;
    snprintf(n->last_vhost, sizeof(n->last_vhost), "%s", vhost);
}

static void
on_unlead(void *arg, const char *vhost, const char *why)
{
    struct tnode *n = arg;

    n->unleads++;
    snprintf(n->last_vhost, sizeof(n->last_vhost), "%s", vhost);
    snprintf(n->last_why, sizeof(n->last_why), "%s", why);
}

static bool
on_is_empty(void *arg, const char *vhost)
{
    return strcmp(vhost, ((struct tnode *)arg)->empty) == 0;
}

static json_t *
on_stats(void *arg)
{
    (void)arg;
    return json_pack("{s:i}", "fd_used", 7);
}

static void
on_vhost_removing(void *arg, struct vhost *vh)
{
    (void)vh;
    ((struct tnode *)arg)->removing++;
}

static const struct cluster_ops ops = {
    .lead = on_lead,
    .unlead = on_unlead,
    .vhost_is_empty = on_is_empty,
    .stats = on_stats,
    .vhost_removing = on_vhost_removing,
};

static void
setup(void)
{
    alarm(CASE_MAX_S);
    loop = ev_loop_new(EVFLAG_AUTO);
    T_ASSERT(loop);
    memset(nodes, 0, sizeof(nodes));
    balanced = true;
    tu_cluster_start(&etcd, 1);
    tu_tick(loop);
}

static void
teardown(void)
{
    for (int i = 0; i < MAX_NODES; i++) {
        cluster_free(nodes[i].c);
        node_free(nodes[i].model);
    }
    tu_cluster_stop(&etcd);
    ev_loop_destroy(loop);
}

static struct cluster_config
config_of(struct tnode *n, const char *cluster_name)
{
    struct cluster_config cfg = {
        .node_name = n->name,
        .key_prefix = "warren-test",
        .cluster_name = cluster_name,
        .ttl_s = TTL_S,
        .endpoints = etcd.endpoints,
        .n_endpoints = (size_t)etcd.n,
        .start_attempts = 3,
        .start_interval_ms = 200,
        .data_dir = n->dir,
        .cluster_addr = "127.0.0.1:25672",
        .amqp_addr = "127.0.0.1:5672",
        .balanced = balanced,
        .node = n->model,
    };

    return cfg;
}

/* Node i with its own data directory; returns cluster_start's status. */
static int
join_as(int i, const char *name, const char *cluster_name, char *err,
        size_t errlen)
{
    struct tnode *n = &nodes[i];
    struct cluster_config cfg;

    snprintf(n->name, sizeof(n->name), "%s", name);
    if (!n->dir[0]) {
        snprintf(n->dir, sizeof(n->dir), "%s/node%d", t_tmpdir(), i);
        mkdir(n->dir, 0700);
    }
    cfg = config_of(n, cluster_name);
    return cluster_start(loop, &cfg, &ops, n, &n->c, err, errlen);
}

static void
join_ok(int i, const char *name)
{
    char err[600];

    if (join_as(i, name, "c1", err, sizeof(err)) != WR_OK)
        t_fail(__FILE__, __LINE__, "%s could not join: %s", name, err);
}

/* Simulates a crash: no cluster_stop, the lease runs out by itself. */
static void
crash(int i)
{
    cluster_free(nodes[i].c);
    nodes[i].c = NULL;
}

static void
place(struct cluster *c, const char *vhost)
{
    cluster_vhost_place(c, vhost, NULL, NULL);
}

static int
leaders_of(const char *vhost)
{
    int n = 0;

    for (int i = 0; i < MAX_NODES; i++) {
        if (nodes[i].c && cluster_leads(nodes[i].c, vhost))
            n++;
    }
    return n;
}

static const char *
leader_seen_by(int i, const char *vhost)
{
    return cluster_leader_of(nodes[i].c, vhost, NULL);
}

static bool
running_in_view(int i, const char *name, bool running)
{
    const struct cluster_node *n = cluster_node_find(nodes[i].c, name);

    return n && n->running == running;
}

/* ---- joining */

T_CASE(join_registers_the_node_and_claims_the_data_dir)
{
    char path[700];
    struct stat st;
    const struct cluster_node *n;

    setup();
    join_ok(0, "n1");
    T_ASSERT(strlen(cluster_id(nodes[0].c)) == 32);
    T_ASSERT(cluster_secret(nodes[0].c).len == 64);
    T_EQ_INT(tu_etcdctl(&etcd, "get warren-test/c1/nodes/n1"), 0);
    T_EQ_INT(tu_etcdctl(&etcd, "get warren-test/c1/members/n1"), 0);
    snprintf(path, sizeof(path), "%s/cluster.json", nodes[0].dir);
    T_EQ_INT(stat(path, &st), 0);
    TU_RUN_UNTIL(loop, running_in_view(0, "n1", true), WAIT_MS);
    n = cluster_node_find(nodes[0].c, "n1");
    T_EQ_STR(n->cluster_addr, "127.0.0.1:25672");
    T_ASSERT(json_integer_value(json_object_get(
                 json_object_get(n->info, "stats"), "fd_used")) == 7);
    /* a second node sees the same id and secret */
    join_ok(1, "n2");
    T_EQ_STR(cluster_id(nodes[1].c), cluster_id(nodes[0].c));
    T_ASSERT(bytes_eq(cluster_secret(nodes[1].c), cluster_secret(nodes[0].c)));
    TU_RUN_UNTIL(loop, running_in_view(0, "n2", true), WAIT_MS);
    teardown();
}

T_CASE(a_name_held_by_a_live_node_is_refused)
{
    char err[600];

    setup();
    join_ok(0, "n1");
    T_EQ_INT(join_as(1, "n1", "c1", err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "node name 'n1' is taken by a running node"));
    teardown();
}

T_CASE(a_restart_after_a_crash_takes_its_own_key_over)
{
    char err[600];

    setup();
    join_ok(0, "n1");
    crash(0); /* its lease is alive for up to TTL_S more */
    T_EQ_INT(join_as(0, "n1", "c1", err, sizeof(err)), WR_OK);
    TU_RUN_UNTIL(loop, running_in_view(0, "n1", true), WAIT_MS);
    teardown();
}

T_CASE(a_data_dir_of_another_cluster_is_refused)
{
    char err[600];

    setup();
    join_ok(0, "n1");
    cluster_stop(nodes[0].c, 3000);
    crash(0);
    /* the same directory, another cluster name (so another id) */
    T_EQ_INT(join_as(0, "n1", "other", err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "belongs to another cluster"));
    /* and the same cluster under another node name */
    T_EQ_INT(join_as(0, "n9", "c1", err, sizeof(err)), WR_ERR);
    T_ASSERT(strstr(err, "belongs to node 'n1'"));
    teardown();
}

T_CASE(unreachable_etcd_refuses_the_start_within_the_bounded_wait)
{
    char err[600];
    uint64_t t0;

    setup();
    tu_member_kill(&etcd, 0);
    t0 = wr_now_ms();
    T_EQ_INT(join_as(0, "n1", "c1", err, sizeof(err)), WR_ERR);
    /* 3 attempts of at most 3 s each, 200 ms apart */
    T_ASSERT(wr_now_ms() - t0 < 12000);
    T_ASSERT(strstr(err, "etcd"));
    tu_member_restart(&etcd, 0);
    teardown();
}

/* ---- leadership */

T_CASE(exactly_one_node_leads_a_placed_vhost)
{
    setup();
    join_ok(0, "n1");
    join_ok(1, "n2");
    join_ok(2, "n3");
    TU_RUN_UNTIL(loop, running_in_view(0, "n3", true), WAIT_MS);
    for (int k = 0; k < 6; k++) {
        char vh[16];

        snprintf(vh, sizeof(vh), "vh%d", k);
        place(nodes[k % 3].c, vh);
        TU_RUN_UNTIL(loop, leaders_of(vh) == 1, WAIT_MS);
        for (int i = 0; i < 3; i++)
            TU_RUN_UNTIL(loop, leader_seen_by(i, vh) != NULL, WAIT_MS);
        T_EQ_STR(leader_seen_by(0, vh), leader_seen_by(1, vh));
        T_EQ_STR(leader_seen_by(1, vh), leader_seen_by(2, vh));
    }
    /* balanced: 6 vhosts over 3 nodes, 2 each */
    for (int i = 0; i < 3; i++)
        T_EQ_INT(nodes[i].leads, 2);
    teardown();
}

T_CASE(a_clean_stop_hands_empty_vhosts_over_and_keeps_the_others)
{
    int64_t epoch = 0, epoch2 = 0;

    setup();
    balanced = false; /* client-local: both vhosts on n1 */
    join_ok(0, "n1");
    join_ok(1, "n2");
    TU_RUN_UNTIL(loop, running_in_view(0, "n2", true), WAIT_MS);
    place(nodes[0].c, "empty");
    place(nodes[0].c, "full");
    TU_RUN_UNTIL(loop,
                 cluster_leads(nodes[0].c, "empty") &&
                     cluster_leads(nodes[0].c, "full"),
                 WAIT_MS);
    cluster_leader_of(nodes[0].c, "empty", &epoch);
    snprintf(nodes[0].empty, sizeof(nodes[0].empty), "empty");
    cluster_stop(nodes[0].c, 5000);
    T_EQ_INT(nodes[0].unleads, 2);
    crash(0);
    /* "empty" moves to n2 at once, with a later epoch */
    TU_RUN_UNTIL(loop, cluster_leads(nodes[1].c, "empty"), WAIT_MS);
    cluster_leader_of(nodes[1].c, "empty", &epoch2);
    T_ASSERT(epoch2 > epoch);
    /* "full" keeps its home on n1 and waits for it */
    tu_run_for(loop, (TTL_S + 1) * 1000);
    T_EQ_INT(leaders_of("full"), 0);
    T_EQ_STR(cluster_home_of(nodes[1].c, "full"), "n1");
    teardown();
}

T_CASE(a_draining_node_places_new_vhosts_elsewhere)
{
    setup();
    balanced = false; /* client-local: n1 would take what it places */
    join_ok(0, "n1");
    join_ok(1, "n2");
    TU_RUN_UNTIL(loop, running_in_view(0, "n2", true), WAIT_MS);
    place(nodes[0].c, "before");
    TU_RUN_UNTIL(loop, cluster_leads(nodes[0].c, "before"), WAIT_MS);
    cluster_drain(nodes[0].c);
    place(nodes[0].c, "during");
    TU_RUN_UNTIL(loop, cluster_leads(nodes[1].c, "during"), WAIT_MS);
    T_EQ_STR(cluster_home_of(nodes[0].c, "during"), "n2");
    T_ASSERT(!cluster_leads(nodes[0].c, "during"));
    /* what it led before stays led until it stops */
    T_ASSERT(cluster_leads(nodes[0].c, "before"));
    teardown();
}

T_CASE(a_crashed_leaders_vhosts_wait_for_it)
{
    char err[600];
    int at;

    setup();
    join_ok(0, "n1");
    join_ok(1, "n2");
    TU_RUN_UNTIL(loop, running_in_view(0, "n2", true), WAIT_MS);
    place(nodes[0].c, "v");
    TU_RUN_UNTIL(loop, leaders_of("v") == 1, WAIT_MS);
    at = cluster_leads(nodes[0].c, "v") ? 0 : 1;
    crash(at);
    /* the other node sees it stop running, and does not take "v" */
    TU_RUN_UNTIL(loop, running_in_view(1 - at, at ? "n2" : "n1", false),
                 (TTL_S + 3) * 1000);
    tu_run_for(loop, 1000);
    T_EQ_INT(leaders_of("v"), 0);
    /* it comes back with its data directory and leads it again */
    nodes[at].leads = 0;
    T_EQ_INT(join_as(at, at ? "n2" : "n1", "c1", err, sizeof(err)), WR_OK);
    TU_RUN_UNTIL(loop, cluster_leads(nodes[at].c, "v"), WAIT_MS);
    teardown();
}

T_CASE(a_leader_out_of_touch_with_etcd_stops_before_its_lease_ends)
{
    uint64_t stopped;

    setup();
    join_ok(0, "n1");
    place(nodes[0].c, "v");
    TU_RUN_UNTIL(loop, cluster_leads(nodes[0].c, "v"), WAIT_MS);
    tu_member_signal(&etcd, 0, SIGSTOP);
    stopped = wr_now_ms();
    TU_RUN_UNTIL(loop, nodes[0].unleads == 1, WAIT_MS);
    /* before the lease could have run out for etcd */
    T_ASSERT(wr_now_ms() - stopped < TTL_S * 1000);
    T_ASSERT(!cluster_is_available(nodes[0].c));
    T_ASSERT(!cluster_leads(nodes[0].c, "v"));
    tu_member_signal(&etcd, 0, SIGCONT);
    /* back in touch: a new lease, and "v" (its home) comes back to it */
    TU_RUN_UNTIL(loop, cluster_leads(nodes[0].c, "v"), WAIT_MS);
    T_ASSERT(cluster_is_available(nodes[0].c));
    teardown();
}

T_CASE(forgetting_a_vhost_unleads_it)
{
    setup();
    join_ok(0, "n1");
    place(nodes[0].c, "v");
    TU_RUN_UNTIL(loop, cluster_leads(nodes[0].c, "v"), WAIT_MS);
    cluster_vhost_forget(nodes[0].c, "v", NULL, NULL);
    TU_RUN_UNTIL(loop, nodes[0].unleads == 1, WAIT_MS);
    TU_RUN_UNTIL(loop, cluster_home_of(nodes[0].c, "v") == NULL, WAIT_MS);
    teardown();
}

/* ---- cluster-wide definitions */

/* A node model (in memory) with one local user and the default vhost. */
static struct node *
model_with_user(const char *user)
{
    struct node_opts o = {.clustered = true};
    struct node *n = node_new(&o);
    char err[256];
    struct vherr verr;

    T_EQ_INT(node_boot(n, "/", err, sizeof(err)), WR_OK);
    T_EQ_INT(node_user_put(n, user, "pw", NULL, NULL, "", &verr), WR_OK);
    return n;
}

static json_t *
item(const char *fmt, ...)
{
    va_list ap;
    json_error_t e;
    char text[512];
    json_t *j;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    j = json_loads(text, 0, &e);
    T_ASSERT(j != NULL);
    return j;
}

struct done {
    int calls, status;
};

static void
done_cb(void *arg, int status, const char *why)
{
    struct done *d = arg;

    (void)why;
    d->calls++;
    d->status = status;
}

/* cluster_defs_put/remove and wait: the local model has it at the
 * callback. */
static void
change(int i, bool put, enum defs_kind k, json_t *it)
{
    struct done d = {0};

    if (put)
        cluster_defs_put(nodes[i].c, k, it, done_cb, &d);
    else
        cluster_defs_remove(nodes[i].c, k, it, done_cb, &d);
    json_decref(it);
    TU_RUN_UNTIL(loop, d.calls == 1, WAIT_MS);
    T_EQ_INT(d.status, WR_OK);
}

T_CASE(definitions_reach_every_node)
{
    setup();
    nodes[0].model = model_with_user("alice");
    nodes[1].model = model_with_user("bob");
    join_ok(0, "n1"); /* an empty cluster: n1's definitions seed it */
    join_ok(1, "n2"); /* n2 takes the cluster's: alice, not bob */
    T_ASSERT(node_user_find(nodes[1].model, "alice") != NULL);
    T_ASSERT(node_user_find(nodes[1].model, "bob") == NULL);
    T_ASSERT(node_vhost_find(nodes[1].model, "/") != NULL);
    change(0, true, DEFS_USER,
           item("{\"name\":\"carol\",\"password_hash\":\"\","
                "\"tags\":[\"management\"]}"));
    T_ASSERT(node_user_find(nodes[0].model, "carol") != NULL); /* at once */
    TU_RUN_UNTIL(loop, node_user_find(nodes[1].model, "carol") != NULL,
                 WAIT_MS);
    change(1, true, DEFS_VHOST, item("{\"name\":\"v/2\"}"));
    change(1, true, DEFS_PERMISSION,
           item("{\"vhost\":\"v/2\",\"user\":\"carol\",\"configure\":"
                "\".*\",\"write\":\"\",\"read\":\".*\"}"));
    TU_RUN_UNTIL(loop, node_perm_find(nodes[0].model, "v/2", "carol") != NULL,
                 WAIT_MS);
    change(0, true, DEFS_POLICY,
           item("{\"vhost\":\"v/2\",\"name\":\"p\",\"pattern\":\".*\","
                "\"apply-to\":\"queues\",\"definition\":{\"max-length\":2},"
                "\"priority\":0}"));
    TU_RUN_UNTIL(
        loop, node_kv_find(nodes[1].model, KV_POLICY, "v/2", "", "p") != NULL,
        WAIT_MS);
    /* a vhost goes with its permissions and policies, on every node */
    change(0, false, DEFS_VHOST, item("{\"name\":\"v/2\"}"));
    TU_RUN_UNTIL(loop, node_vhost_find(nodes[1].model, "v/2") == NULL, WAIT_MS);
    T_ASSERT(node_perm_find(nodes[1].model, "v/2", "carol") == NULL);
    T_ASSERT(nodes[0].removing == 1 && nodes[1].removing == 1);
    change(1, false, DEFS_USER, item("{\"name\":\"carol\"}"));
    TU_RUN_UNTIL(loop, node_user_find(nodes[0].model, "carol") == NULL,
                 WAIT_MS);
    teardown();
}

static const struct t_case cases[] = {
    T_REG(join_registers_the_node_and_claims_the_data_dir),
    T_REG(a_name_held_by_a_live_node_is_refused),
    T_REG(a_restart_after_a_crash_takes_its_own_key_over),
    T_REG(a_data_dir_of_another_cluster_is_refused),
    T_REG(unreachable_etcd_refuses_the_start_within_the_bounded_wait),
    T_REG(exactly_one_node_leads_a_placed_vhost),
    T_REG(a_clean_stop_hands_empty_vhosts_over_and_keeps_the_others),
    T_REG(a_draining_node_places_new_vhosts_elsewhere),
    T_REG(a_crashed_leaders_vhosts_wait_for_it),
    T_REG(a_leader_out_of_touch_with_etcd_stops_before_its_lease_ends),
    T_REG(forgetting_a_vhost_unleads_it),
    T_REG(definitions_reach_every_node),
};
T_MAIN(cases)
