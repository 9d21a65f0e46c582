"""A three-node Warren cluster on loopback (test/cluster/localcluster.py:
one etcd member, three nodes with their own ports and data directories):
any node serves any vhost, cluster-wide definitions reach every node,
management answers the same on every node, and a killed node shows as
not running.

Each node relays a client of a vhost it does not lead to the vhost's
leader after connection.open, so every check below goes through every
node: pika, amqp-tools and rabbitmqadmin.
"""

import glob
import json
import os
import subprocess
import sys
import time

import pika
import pytest

from test_20_mgmt_api import Mgmt
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
import localcluster  # noqa: E402

pytestmark = pytest.mark.warren_only

TTL = 4
VHOSTS = ["/", "tenant-a", "tenant-b", "tenant-c"]
ADMIN = ("/usr/bin/rabbitmqadmin" if os.path.exists("/usr/bin/rabbitmqadmin")
         else (sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/"
                                "plugins/rabbitmq_management-*/priv/www/cli/"
                                "rabbitmqadmin")) or [None])[-1])


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs private Warren nodes")
    c = localcluster.LocalCluster(
        nodes=3, workdir=str(tmp_path_factory.mktemp("cluster")), ttl=TTL)
    try:
        c.start()
        api = Mgmt(c.node(0).mgmt_port)
        for vh in VHOSTS[1:]:
            r = api.put("/api/vhosts/" + q(vh))
            assert r.status in (201, 204), r
            r = api.put("/api/permissions/%s/guest" % q(vh),
                        {"configure": ".*", "write": ".*", "read": ".*"})
            assert r.status in (201, 204), r
        for n in c.nodes:
            assert wait_until(lambda: all(
                leader_of(n, vh) for vh in VHOSTS), 20), \
                "every vhost has a leader, seen from %s" % n.name
        yield c
    finally:
        c.close()


def q(name):
    import urllib.parse
    return urllib.parse.quote(name, safe="")


def mgmt(node):
    return Mgmt(node.mgmt_port)


def leader_of(node, vhost):
    """The vhost's leader as node sees it (management's "leader"), or
    None."""
    r = mgmt(node).get("/api/vhosts/" + q(vhost))
    return r.json.get("leader") if r.status == 200 else None


def pika_conn(node, vhost="/", user="guest", password="guest"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=node.amqp_port, virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1))


# -- any node serves any vhost -------------------------------------------


@pytest.mark.parametrize("vhost", VHOSTS)
def test_pika_through_every_node_for_every_vhost(lc, vhost):
    """Publish through node i, consume through node j: the same queue,
    whichever node leads the vhost."""
    name = "cq-" + q(vhost)
    for i, n in enumerate(lc.nodes):
        conn = pika_conn(n, vhost)
        ch = conn.channel()
        ch.queue_declare(name)
        ch.confirm_delivery()
        ch.basic_publish("", name, ("from %d" % i).encode())
        conn.close()
    got = []
    for n in lc.nodes:
        conn = pika_conn(n, vhost)
        ch = conn.channel()
        m = ch.basic_get(name, auto_ack=True)
        if m[0] is not None:
            got.append(m[2])
        if n is lc.nodes[-1]:
            ch.queue_delete(name)
        conn.close()
    assert sorted(got) == [b"from 0", b"from 1", b"from 2"]


def test_amqp_tools_through_every_node(lc):
    for i, n in enumerate(lc.nodes):
        url = "amqp://guest:guest@127.0.0.1:%d/tenant-a" % n.amqp_port
        subprocess.run(["amqp-declare-queue", "-u", url, "-q", "tools"],
                       check=True, capture_output=True, timeout=20)
        subprocess.run(["amqp-publish", "-u", url, "-r", "tools", "-b",
                        "msg %d" % i], check=True, timeout=20)
    bodies = []
    for n in lc.nodes:
        url = "amqp://guest:guest@127.0.0.1:%d/tenant-a" % n.amqp_port
        p = subprocess.run(["amqp-get", "-u", url, "-q", "tools"],
                           capture_output=True, timeout=20)
        if p.returncode == 0:
            bodies.append(p.stdout.strip())
    subprocess.run(["amqp-delete-queue", "-u", url, "-q", "tools"],
                   capture_output=True, timeout=20)
    assert sorted(bodies) == [b"msg 0", b"msg 1", b"msg 2"]


@pytest.mark.skipif(not ADMIN, reason="rabbitmqadmin not installed")
def test_rabbitmqadmin_through_every_node(lc):
    for i, n in enumerate(lc.nodes):
        base = ["/usr/bin/python3", ADMIN, "-H", "127.0.0.1", "-P",
                str(n.mgmt_port), "-u", "guest", "-p", "guest",
                "-V", "tenant-b"]
        subprocess.run(base + ["declare", "queue", "name=adm%d" % i],
                       check=True, capture_output=True, timeout=30)
        subprocess.run(base + ["publish", "routing_key=adm%d" % i,
                               "payload=p%d" % i],
                       check=True, capture_output=True, timeout=30)
    listed = subprocess.run(
        ["/usr/bin/python3", ADMIN, "-H", "127.0.0.1", "-P",
         str(lc.node(2).mgmt_port), "-u", "guest", "-p", "guest", "-f",
         "raw_json", "list", "queues"], check=True, capture_output=True,
        timeout=30)
    names = {x["name"]: x for x in json.loads(listed.stdout)
             if x["vhost"] == "tenant-b"}
    for i in range(3):
        assert "adm%d" % i in names
        assert names["adm%d" % i]["node"].startswith("warren")
    for i in range(3):
        mgmt(lc.node(i)).delete("/api/queues/tenant-b/adm%d" % i)


# -- cluster-wide definitions ---------------------------------------------


def test_a_user_created_on_node_1_logs_in_on_node_3(lc):
    r = mgmt(lc.node(0)).put("/api/users/carol",
                             {"password": "secret", "tags": "management"})
    assert r.status in (201, 204), r
    r = mgmt(lc.node(0)).put("/api/permissions/tenant-c/carol",
                             {"configure": ".*", "write": ".*", "read": ".*"})
    assert r.status in (201, 204), r

    def logs_in():
        try:
            pika_conn(lc.node(2), "tenant-c", "carol", "secret").close()
            return True
        except pika.exceptions.AMQPError:
            return False

    assert wait_until(logs_in, 5)
    assert mgmt(lc.node(2)).as_user("carol", "secret") \
        .get("/api/whoami").json["name"] == "carol"
    mgmt(lc.node(1)).delete("/api/users/carol")
    assert wait_until(lambda: mgmt(lc.node(2)).get(
        "/api/users/carol").status == 404, 5)


def test_a_policy_set_on_node_2_applies_to_a_queue_led_elsewhere(lc):
    conn = pika_conn(lc.node(0), "tenant-a")
    ch = conn.channel()
    ch.queue_declare("capped")
    r = mgmt(lc.node(1)).put("/api/policies/tenant-a/cap",
                             {"pattern": "^capped$",
                              "definition": {"max-length": 2},
                              "apply-to": "queues"})
    assert r.status in (201, 204), r

    def capped():
        info = mgmt(lc.node(2)).get("/api/queues/tenant-a/capped").json
        return info.get("policy") == "cap"

    assert wait_until(capped, 5)
    for i in range(5):
        ch.basic_publish("", "capped", b"%d" % i)
    assert wait_until(lambda: mgmt(lc.node(1)).get(
        "/api/queues/tenant-a/capped").json.get("messages") == 2, 5)
    mgmt(lc.node(2)).delete("/api/policies/tenant-a/cap")
    ch.queue_delete("capped")
    conn.close()


# -- nodes ------------------------------------------------------------------


def test_every_node_lists_three_running_nodes_and_the_cluster_name(lc):
    for n in lc.nodes:
        nodes = mgmt(n).get("/api/nodes").json
        assert sorted(x["name"] for x in nodes) == sorted(
            m.name for m in lc.nodes)
        assert all(x["running"] for x in nodes)
        assert all(x["uptime"] > 0 and x["fd_used"] > 0 for x in nodes)
        assert mgmt(n).get("/api/overview").json["cluster_name"] == "local"


def test_a_killed_node_is_not_running_within_ttl_plus_2s(lc):
    victim = lc.node(2)
    led = [vh for vh in VHOSTS if leader_of(lc.node(0), vh) == victim.name]
    victim.kill()
    start = time.monotonic()

    def gone():
        nodes = mgmt(lc.node(0)).get("/api/nodes").json
        return any(x["name"] == victim.name and not x["running"]
                   for x in nodes)

    assert wait_until(gone, TTL + 2)
    assert time.monotonic() - start <= TTL + 2
    victim.start()
    assert wait_until(lambda: all(
        x["running"] for x in mgmt(lc.node(0)).get("/api/nodes").json), 20)
    # its vhosts come back to it (their data is on its disk)
    for vh in led:
        assert wait_until(lambda: leader_of(lc.node(1), vh) == victim.name,
                          20)
