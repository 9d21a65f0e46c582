"""Issue 12: the confirm rule's settings and surroundings.

Three Warren nodes on loopback (test/cluster/localcluster.py), as in
test_31_replication. A vhost's metadata sets how many copies of its log
there are ("replicas") and how many in-sync members confirms need
("min_isr"), over the node's replication.* defaults; bad values get 400
with the reason. Publishers of a vhost whose confirms wait for the
in-sync set longer than replication.blocked_after get connection.blocked
(if they announced the capability) and connection.unblocked when
confirms flow again. RabbitMQ has no such settings (its quorum queues
take x-quorum-initial-group-size per queue); these tests are Warren's.
"""

import os
import sys
import time

import pika
import pytest
import rawamqp

from test_20_mgmt_api import Mgmt
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
import localcluster  # noqa: E402
from test_31_replication import (  # noqa: E402
    cluster_fixture, lead_of, leader_node, q)

pytestmark = pytest.mark.warren_only

TTL = 4


lc = cluster_fixture("rules")


def new_vhost(lc, name, body=None):
    api = Mgmt(lc.node(0).mgmt_port)
    r = api.put("/api/vhosts/" + q(name), body or {})
    assert r.status in (201, 204), r
    assert wait_until(lambda: leader_node(lc, name) is not None, 20)
    assert wait_until(lambda: all(
        Mgmt(n.mgmt_port).get("/api/vhosts/" + q(name)).status == 200
        for n in lc.nodes), 10)
    for n in lc.nodes:
        Mgmt(n.mgmt_port).put("/api/permissions/%s/guest" % q(name),
                              {"configure": ".*", "write": ".*",
                               "read": ".*"})
    return leader_node(lc, name)


def in_sync(lc, vhost, count):
    node = leader_node(lc, vhost, next(n for n in lc.nodes if n.running()))
    d = lead_of(node, vhost) if node else None
    return d is not None and len(d["isr"]) == count


# -- settings ----------------------------------------------------------------


def test_bad_replication_settings_get_400_with_the_reason(lc):
    api = Mgmt(lc.node(0).mgmt_port)
    cases = [
        ({"replicas": 0}, "replicas must be an integer from 1 to 16"),
        ({"replicas": 17}, "replicas must be an integer from 1 to 16"),
        ({"metadata": {"replicas": "3"}},
         "replicas must be an integer from 1 to 16"),
        ({"min_isr": -1}, "min_isr must be an integer from 1 to 16"),
        ({"min_isr": 1.5}, "min_isr must be an integer from 1 to 16"),
        ({"replicas": 2, "min_isr": 3},
         "min_isr (3) must not exceed replicas (2)"),
        # the node's default replicas (3) bounds a min_isr given alone
        ({"min_isr": 4}, "min_isr (4) must not exceed replicas (3)"),
    ]
    for body, reason in cases:
        r = api.put("/api/vhosts/rules-bad", body)
        assert r.status == 400, (body, r)
        assert r.json == {"error": "bad_request", "reason": reason}, body
    # nothing was created by the refused requests
    assert api.get("/api/vhosts/rules-bad").status == 404
    # definitions are checked the same way, and refused whole
    r = api.post("/api/definitions", {"vhosts": [
        {"name": "rules-bad", "metadata": {"replicas": 2, "min_isr": 3}}]})
    assert r.status == 400, r
    assert "min_isr (3) must not exceed replicas (2)" in r.json["reason"]
    assert api.get("/api/vhosts/rules-bad").status == 404


def test_settings_are_shown_kept_and_exported_on_every_node(lc):
    new_vhost(lc, "rules-set", {"metadata": {"replicas": 2, "min_isr": 2},
                                "description": "two copies"})
    for n in lc.nodes:  # the vhost's metadata travels through etcd
        api = Mgmt(n.mgmt_port)
        assert wait_until(lambda: api.get("/api/vhosts/rules-set").json.get(
            "replicas") == 2, 10), n.name
        v = api.get("/api/vhosts/rules-set").json
        assert v["min_isr"] == 2
        assert v["metadata"]["replicas"] == 2
        assert v["metadata"]["min_isr"] == 2
        assert v["description"] == "two copies"
    # a vhost without its own settings shows the node's defaults, and
    # keeps nothing in its metadata
    v = Mgmt(lc.node(1).mgmt_port).get("/api/vhosts/%2F").json
    assert (v["replicas"], v["min_isr"]) == (3, 2)
    assert "replicas" not in v["metadata"]
    # replicas = 2: one mirror, and an in-sync set of two
    leader = leader_node(lc, "rules-set")
    assert wait_until(lambda: len(lead_of(leader, "rules-set")["mirrors"])
                      == 1, 10), lead_of(leader, "rules-set")
    assert wait_until(lambda: in_sync(lc, "rules-set", 2), 15)
    time.sleep(1.5)  # a third node is never added
    assert len(lead_of(leader, "rules-set")["isr"]) == 2
    # a PUT that names one setting keeps the other; null clears one
    api = Mgmt(lc.node(2).mgmt_port)
    assert api.put("/api/vhosts/rules-set", {"replicas": 3}).status == 204
    v = api.get("/api/vhosts/rules-set").json
    assert (v["metadata"]["replicas"], v["metadata"]["min_isr"]) == (3, 2)
    assert wait_until(lambda: in_sync(lc, "rules-set", 3), 15)
    assert api.put("/api/vhosts/rules-set",
                   {"metadata": {"min_isr": None}}).status == 204
    v = api.get("/api/vhosts/rules-set").json
    assert "min_isr" not in v["metadata"] and v["min_isr"] == 2
    # exported with the definitions, imported back
    doc = api.get("/api/definitions").json
    item = next(x for x in doc["vhosts"] if x["name"] == "rules-set")
    assert item["metadata"]["replicas"] == 3
    assert "min_isr" not in item["metadata"]
    item["metadata"]["min_isr"] = 3
    r = api.post("/api/definitions", {"vhosts": [item]})
    assert r.status in (200, 201, 204), r
    for n in lc.nodes:
        assert wait_until(lambda: Mgmt(n.mgmt_port).get(
            "/api/vhosts/rules-set").json["min_isr"] == 3, 10), n.name
    assert api.delete("/api/vhosts/rules-set").status == 204


# -- min_isr and connection.blocked ------------------------------------------


def read_until(c, name, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            m = c.read_method(timeout=left)
        except rawamqp.Timeout:
            return None
        if m.name == name:
            return m


def read_all(c, seconds):
    """Every method within seconds, each with its arrival time (.at)."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            m = c.read_method(timeout=deadline - time.monotonic())
        except rawamqp.Timeout:
            break
        m.at = time.monotonic()
        out.append(m)
    return out


def test_min_isr_3_holds_confirms_and_blocks_publishers_until_the_mirror_returns(
        lc):
    leader = new_vhost(lc, "rules-isr", {"min_isr": 3})
    assert wait_until(lambda: in_sync(lc, "rules-isr", 3), 20)
    mirror = next(n for n in lc.nodes if n is not leader)
    # confirms of a raw client; pika sees connection.blocked
    raw = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="rules-isr")
    raw.open_channel(1)
    raw.call(1, "queue.declare", queue="held", durable=True)
    raw.call(1, "confirm.select")
    persistent = {"delivery_mode": 2}
    raw.publish(1, "", "held", b"before", props=persistent)
    assert read_until(raw, "basic.ack", 5) is not None
    # a client without the capability is blocked but never told
    mute = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="rules-isr",
                           capabilities={"publisher_confirms": True})
    mute.open_channel(1)
    mute.publish(1, "", "held", b"mute", props=persistent)
    events = []
    pk = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=leader.amqp_port, virtual_host="rules-isr",
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1))
    pk.add_on_connection_blocked_callback(
        lambda conn, m: events.append(("blocked", m.method.reason)))
    pk.add_on_connection_unblocked_callback(
        lambda conn, m: events.append(("unblocked", None)))
    pch = pk.channel()
    try:
        mirror.stop()
        t = time.monotonic()
        # the stopped mirror leaves the set: 2 members, below min_isr 3
        pch.basic_publish("", "held", b"from-pika",
                          pika.BasicProperties(delivery_mode=2))
        raw.publish(1, "", "held", b"held", props=persistent)
        got = read_all(raw, 5)
        assert "basic.ack" not in [m.name for m in got], "confirmed early"
        m = next((m for m in got if m.name == "connection.blocked"), None)
        assert m is not None, got
        assert m.args["reason"] == "replication: waiting for in-sync replicas"
        assert m.at - t >= 1.0
        assert wait_until(lambda: (pk.process_data_events(0.1) or True)
                          and events, 5), events
        assert events == [("blocked",
                           "replication: waiting for in-sync replicas")]
        assert lead_of(leader, "rules-isr")["confirms_held"] is True
        mirror.start()
        # caught up and back in the set: the confirm, then unblocked
        names = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {
                "basic.ack", "connection.unblocked"} <= names:
            names |= {m.name for m in read_all(raw, 0.5)}
        assert {"basic.ack", "connection.unblocked"} <= names, names
        assert wait_until(lambda: (pk.process_data_events(0.1) or True)
                          and len(events) == 2, 5), events
        assert events[1] == ("unblocked", None)
        # the mute client was never told either way, and is read again
        with pytest.raises(rawamqp.Timeout):
            mute.read_method(timeout=0.5)
        mute.call(1, "queue.declare", queue="held", durable=True,
                  passive=True)
    finally:
        if not mirror.running():
            mirror.start()
    pk.close()
    raw.call(1, "queue.delete", queue="held")
    raw.close_socket()
    mute.close_socket()
    assert Mgmt(lc.node(0).mgmt_port).delete(
        "/api/vhosts/rules-isr").status == 204


# -- durable declarations wait for the in-sync set ---------------------------


def test_durable_declare_ok_waits_for_the_in_sync_set(lc):
    leader = new_vhost(lc, "rules-defs", {"min_isr": 3})
    assert wait_until(lambda: in_sync(lc, "rules-defs", 3), 20)
    mirror = next(n for n in lc.nodes if n is not leader)
    conn = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="rules-defs")
    conn.open_channel(1)
    conn.open_channel(2)
    # all in sync: the ok comes at once
    t = time.monotonic()
    conn.call(1, "queue.declare", queue="d-first", durable=True)
    assert time.monotonic() - t < 2
    try:
        mirror.stop()
        assert wait_until(lambda: in_sync(lc, "rules-defs", 2), 10)
        # an exclusive queue is the leader's alone: no wait
        conn.call(2, "queue.declare", queue="d-excl", exclusive=True)
        # a durable one: no declare-ok (nor anything after it) while the
        # set is below min_isr 3
        conn.send_method(1, "queue.declare", queue="d-held", durable=True)
        conn.send_method(2, "queue.declare", queue="d-excl-2",
                         exclusive=True)
        got = read_all(conn, 3)
        assert got == [], got
        # the queue exists on the leader meanwhile, as a published message
        # does before its confirm (a passive declare elsewhere sees it)
        other = rawamqp.connect("127.0.0.1", leader.amqp_port,
                                vhost="rules-defs")
        other.open_channel(1)
        other.call(1, "queue.declare", queue="d-held", passive=True)
        other.close_socket()
        mirror.start()
        got = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got) < 2:
            got += read_all(conn, 0.5)
        assert [(m.channel, m.name) for m in got] == [
            (1, "queue.declare-ok"), (2, "queue.declare-ok")], got
        # the mirrors' copies have it, as the ok said
        assert got[0].queue == "d-held"
    finally:
        if not mirror.running():
            mirror.start()
    conn.call(1, "queue.bind", queue="d-held", exchange="amq.direct",
              routing_key="k")
    conn.call(1, "queue.delete", queue="d-held")
    conn.call(1, "queue.delete", queue="d-first")
    conn.close_socket()
    assert Mgmt(lc.node(0).mgmt_port).delete(
        "/api/vhosts/rules-defs").status == 204


# -- delivery counts survive a failover ---------------------------------------


def test_x_delivery_limit_counts_across_a_leader_kill(lc):
    leader = new_vhost(lc, "rules-dl")
    assert wait_until(lambda: in_sync(lc, "rules-dl", 3), 20)
    conn = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="rules-dl")
    conn.open_channel(1)
    conn.call(1, "queue.declare", queue="dl-dead", durable=True)
    conn.call(1, "queue.declare", queue="dl-q", durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 2,
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-dead"})
    conn.call(1, "confirm.select")
    conn.publish(1, "", "dl-q", b"counted", props={"delivery_mode": 2})
    assert read_until(conn, "basic.ack", 5) is not None
    # two returns: the limit (2) allows them
    for _ in range(2):
        m = conn.call(1, "basic.get", queue="dl-q")
        assert m.name == "basic.get-ok", m
        conn.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                         requeue=True)
    m = conn.call(1, "queue.declare", queue="dl-q", passive=True)
    assert m.message_count == 1
    # the mirrors hold both counts beside their copies
    import hashlib
    h = hashlib.sha256(b"rules-dl").hexdigest()
    mirrors = [n for n in lc.nodes if n is not leader]
    assert wait_until(lambda: all(os.path.exists(p) and os.path.getsize(p)
                                  == 40 for p in (os.path.join(
                                      n.data_dir, "replicas", h, "dcounts")
                                      for n in mirrors)), 10)
    conn.close_socket()
    leader.kill()
    try:
        assert wait_until(lambda: leader_node(lc, "rules-dl", mirrors[0])
                          in mirrors, TTL + 15)
        new = leader_node(lc, "rules-dl", mirrors[0])
        assert new.wait_for_line(
            r"vhost 'rules-dl': 1 delivery counts taken over", 5)
        c2 = rawamqp.connect("127.0.0.1", new.amqp_port, vhost="rules-dl")
        c2.open_channel(1)
        m = c2.call(1, "basic.get", queue="dl-q")
        assert m.name == "basic.get-ok" and m.content.body == b"counted", m
        # the third return is one too many: dead-lettered, as on the old
        # leader (a count that started over would requeue it)
        c2.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                       requeue=True)
        assert wait_until(lambda: c2.call(
            1, "queue.declare", queue="dl-dead", passive=True)
            .message_count == 1, 5)
        assert c2.call(1, "queue.declare", queue="dl-q",
                       passive=True).message_count == 0
        c2.call(1, "queue.delete", queue="dl-q")
        c2.call(1, "queue.delete", queue="dl-dead")
        c2.close_socket()
    finally:
        leader.start()
    assert wait_until(lambda: in_sync(lc, "rules-dl", 3), 30)
    assert Mgmt(mirrors[0].mgmt_port).delete(
        "/api/vhosts/rules-dl").status == 204


# -- a leader whose disk stalls resigns --------------------------------------


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    """A second cluster whose nodes' fdatasync() goes through faultio: a
    hold file naming a node's pid stalls that node's disk."""
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs private Warren nodes")
    lib = os.environ.get("WARREN_FAULTIO")
    assert lib and os.path.exists(lib), "WARREN_FAULTIO: the sync-fault shim"
    work = tmp_path_factory.mktemp("stall")
    hold = str(work / "hold")
    saved = {k: os.environ.get(k) for k in
             ("LD_PRELOAD", "WARREN_FAULT_HOLD", "ASAN_OPTIONS")}
    os.environ["LD_PRELOAD"] = lib
    os.environ["WARREN_FAULT_HOLD"] = hold
    os.environ["ASAN_OPTIONS"] = (saved["ASAN_OPTIONS"] or "") + \
        ":verify_asan_link_order=0"
    c = localcluster.LocalCluster(
        nodes=3, workdir=str(work / "nodes"), ttl=TTL,
        extra_conf={"replication.disk_stall_timeout": "2000"})
    try:
        c.start()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        assert wait_until(lambda: leader_node(c, "/") is not None, 20)
        c.hold = hold
        yield c
    finally:
        c.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stall_disk(path, pid):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % pid)
    os.rename(tmp, path)


def test_a_leader_whose_disk_stalls_resigns_and_a_mirror_takes_over(stalled):
    lc = stalled
    assert wait_until(lambda: in_sync(lc, "/", 3), 20)
    leader = leader_node(lc, "/")
    conn = rawamqp.connect("127.0.0.1", leader.amqp_port)
    conn.open_channel(1)
    conn.call(1, "queue.declare", queue="stall-q", durable=True)
    conn.call(1, "confirm.select")
    persistent = {"delivery_mode": 2}
    conn.publish(1, "", "stall-q", b"before", props=persistent)
    assert read_until(conn, "basic.ack", 5) is not None
    mark = len(leader.lines)
    try:
        stall_disk(lc.hold, leader.proc.pid)
        t = time.monotonic()
        conn.publish(1, "", "stall-q", b"during", props=persistent)
        # nothing is confirmed; after the bound (2 s) the node resigns
        # and its clients get 320
        got = read_all(conn, 8)
        assert "basic.ack" not in [m.name for m in got], got
        close = next((m for m in got if m.name == "connection.close"), None)
        assert close is not None, got
        assert close.reply_code == 320, close
        assert "disk_stall_timeout" in close.reply_text, close
        assert close.at - t >= 2.0
        assert leader.wait_for_line(
            r"vhost '/': this node resigns as its leader: its disk made "
            r"nothing durable for", 1, mark)
        # an in-sync mirror takes over, with what was confirmed (asked of
        # another node: the stalled one may block on its disk as a mirror)
        other = next(n for n in lc.nodes if n is not leader)
        assert wait_until(lambda: leader_node(lc, "/", other) not in (
            None, leader), 15)
        new = leader_node(lc, "/", other)
        ch = rawamqp.connect("127.0.0.1", new.amqp_port)
        ch.open_channel(1)
        m = ch.call(1, "basic.get", queue="stall-q", no_ack=True)
        assert m.name == "basic.get-ok" and m.content.body == b"before", m
        ch.call(1, "confirm.select")
        ch.publish(1, "", "stall-q", b"after", props=persistent)
        assert read_until(ch, "basic.ack", 15) is not None
        assert leader_node(lc, "/", other) is new
    finally:
        os.unlink(lc.hold)
    ch.call(1, "queue.delete", queue="stall-q")
    ch.close_socket()
    conn.close_socket()
