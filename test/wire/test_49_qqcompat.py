"""Issue 12: quorum queues' x-delivery-count, and management changes of
a replicated vhost's definitions that wait for the in-sync set.

x-delivery-count, as RabbitMQ 3.10.8 sends it (observed; these tests
pass against it with WARREN_TEST_BROKER set):

* basic.get from a quorum queue always carries it, a long ('l'), 0 on
  the first delivery, then how often the message came back (reject or
  nack with requeue, basic.recover, its channel closed);
* a consumer's first delivery goes as published; from the first return
  on, its deliveries carry the count;
* adding it is rabbit_basic:add_header: the first header of that name
  takes the count (whatever its type was), the headers are sorted by
  name, and an 'L' letter comes back as 'l' (RabbitMQ decoded the table);
* classic queues never add it; a message dead-lettered past
  x-delivery-limit does not carry it (the header is never stored).

The cluster tests (Warren only) check that the count survives a kill of
the vhost's leader, and that a management PUT/DELETE of a queue,
exchange or binding answers only once the in-sync set has the change,
or 503 after the replication timeout.
"""

import collections
import os
import signal
import sys
import threading
import time

import pytest
import rawamqp
from rawamqp import F, encode_properties

from test_20_mgmt_api import Mgmt
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from test_31_replication import (  # noqa: E402
    cluster_fixture, etcd_isr, lead_of, leader_node, q, repl)

QUORUM = {"x-queue-type": F("S", b"quorum")}


def quorum_queue(conn, name, **args):
    a = dict(QUORUM)
    a.update(args)
    conn.call(1, "queue.declare", queue=name, durable=True, arguments=a)


def publish_confirmed(conn, queue, body, props=None):
    conn.publish(1, "", queue, body, props=props)
    m = conn.read_method()
    assert m.name == "basic.ack", m


def get(conn, queue, channel=1, no_ack=False):
    conn.send_method(channel, "basic.get", queue=queue, no_ack=no_ack)
    m = conn.read_method()
    assert m.name == "basic.get-ok", m
    return m


def headers(m):
    return m.content.props.get("headers")


def count_of(m):
    h = headers(m) or {}
    return h.get("x-delivery-count")


def confirming(rawch):
    rawch.call(1, "confirm.select")
    return rawch


def test_get_carries_the_count_from_0_as_a_long_and_sorts_the_headers(
        rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    quorum_queue(conn, name)
    published = collections.OrderedDict([("b", F("S", b"x")),
                                         ("a", F("I", 1))])
    publish_confirmed(conn, name, b"m1", {"headers": published})
    m = get(conn, name)
    assert m.redelivered is False
    # the exact bytes RabbitMQ sends: a, b, then the count
    assert m.content.props_raw == encode_properties({"headers": [
        ("a", F("I", 1)), ("b", F("S", b"x")),
        ("x-delivery-count", F("l", 0))]})
    conn.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                     requeue=True)
    m = get(conn, name)
    assert m.redelivered is True and count_of(m) == F("l", 1)
    conn.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                     multiple=False, requeue=True)
    m = get(conn, name)
    assert count_of(m) == F("l", 2)
    # a closed channel returns its deliveries: counted too
    conn.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                     requeue=True)
    conn.open_channel(2)
    m = get(conn, name, channel=2)
    assert count_of(m) == F("l", 3)
    conn.close_channel(2)
    m = get(conn, name)
    assert count_of(m) == F("l", 4)
    assert m.content.body == b"m1"
    conn.send_method(1, "basic.ack", delivery_tag=m.delivery_tag,
                     multiple=False)
    assert conn.call(1, "queue.declare", queue=name,
                     passive=True).message_count == 0


def test_get_closed_channel_counts_one_return(rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    quorum_queue(conn, name)
    publish_confirmed(conn, name, b"c1")
    conn.open_channel(2)
    m = get(conn, name, channel=2)
    assert count_of(m) == F("l", 0)
    conn.close_channel(2)
    m = get(conn, name)
    assert m.redelivered is True and count_of(m) == F("l", 1)
    # without properties at all, the header is all there is
    assert m.content.props_raw == encode_properties(
        {"headers": {"x-delivery-count": F("l", 1)}})


def test_consumer_first_delivery_as_published_then_counted(rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    quorum_queue(conn, name)
    props = {"content_type": "t/p", "priority": 3,
             "headers": collections.OrderedDict([("z", F("t", True)),
                                                 ("k", F("l", 5))])}
    publish_confirmed(conn, name, b"c1", props)
    conn.call(1, "basic.qos", prefetch_count=1)
    conn.call_buffered(1, "basic.consume", queue=name, consumer_tag="t")
    m = conn.read_method()
    assert m.name == "basic.deliver" and m.redelivered is False
    assert m.content.props_raw == encode_properties(props)
    conn.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                     requeue=True)
    m = conn.read_method()
    assert m.name == "basic.deliver" and m.redelivered is True
    assert m.content.props_raw == encode_properties({
        "content_type": "t/p", "priority": 3, "headers": [
            ("k", F("l", 5)), ("x-delivery-count", F("l", 1)),
            ("z", F("t", True))]})
    assert m.content.body == b"c1"
    conn.send_method(1, "basic.recover", requeue=True)
    m = conn.read_method()
    assert m.name == "basic.recover-ok", m
    m = conn.read_method()
    assert m.name == "basic.deliver" and count_of(m) == F("l", 2)
    conn.call(1, "basic.cancel", consumer_tag="t")
    conn.send_method(1, "basic.ack", delivery_tag=m.delivery_tag,
                     multiple=False)


def test_the_first_header_of_the_name_takes_the_count_and_L_becomes_l(
        rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    quorum_queue(conn, name)
    publish_confirmed(conn, name, b"own", {"headers": [
        ("x-delivery-count", F("S", b"bogus")),
        ("n", F("F", collections.OrderedDict([("z", F("L", 1)),
                                              ("a", F("I", 2))]))),
        ("big", F("L", 7)), ("arr", F("A", [F("L", 3)])),
        ("x-delivery-count", F("S", b"again"))]})
    m = get(conn, name)
    assert m.content.props_raw == encode_properties({"headers": [
        ("arr", F("A", [F("l", 3)])), ("big", F("l", 7)),
        ("n", F("F", collections.OrderedDict([("z", F("l", 1)),
                                              ("a", F("I", 2))]))),
        ("x-delivery-count", F("l", 0)),
        ("x-delivery-count", F("S", b"again"))]})
    conn.send_method(1, "basic.ack", delivery_tag=m.delivery_tag,
                     multiple=False)


def test_classic_queues_add_nothing(rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    conn.call(1, "queue.declare", queue=name, durable=True)
    props = {"headers": collections.OrderedDict([("b", F("S", b"x")),
                                                 ("a", F("L", 1))])}
    publish_confirmed(conn, name, b"c", props)
    m = get(conn, name)
    conn.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                     requeue=True)
    m = get(conn, name, no_ack=True)
    assert m.redelivered is True
    assert m.content.props_raw == encode_properties(props)


def test_past_the_delivery_limit_the_dead_letter_has_no_count(rawch, uname):
    conn = confirming(rawch)
    name, dead = uname("q"), uname("dead")
    conn.call(1, "queue.declare", queue=dead, durable=True)
    quorum_queue(conn, name, **{
        "x-delivery-limit": F("I", 2),
        "x-dead-letter-exchange": F("S", b""),
        "x-dead-letter-routing-key": F("S", dead.encode())})
    publish_confirmed(conn, name, b"l1", {"headers": {"h": F("S", b"v")}})
    for n in range(3):
        m = get(conn, name)
        assert count_of(m) == F("l", n)
        conn.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                         requeue=True)
    assert wait_until(lambda: conn.call(1, "queue.declare", queue=dead,
                                        passive=True).message_count == 1, 5)
    m = get(conn, dead, no_ack=True)
    h = headers(m)
    assert "x-delivery-count" not in h
    assert rawamqp.plain(h["x-death"])[0]["reason"] == b"delivery_limit"
    assert conn.call(1, "queue.declare", queue=name,
                     passive=True).message_count == 0


def test_a_get_without_ack_carries_the_count_and_settles_it(rawch, uname):
    conn = confirming(rawch)
    name = uname("q")
    quorum_queue(conn, name)
    publish_confirmed(conn, name, b"n1")
    m = get(conn, name)
    conn.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                     multiple=False, requeue=True)
    m = get(conn, name, no_ack=True)
    assert count_of(m) == F("l", 1)
    publish_confirmed(conn, name, b"n2")
    m = get(conn, name, no_ack=True)
    assert m.content.body == b"n2" and count_of(m) == F("l", 0)


@pytest.mark.warren_only
def test_a_management_get_shows_the_count(make_broker):
    """POST /api/queues/{vhost}/{queue}/get is a basic.get: RabbitMQ
    3.10.8 shows {"headers": {"b": "x", "x-delivery-count": 0}}, then 1
    after its ack_requeue_true (observed)."""
    from test_20_mgmt_api import mgmt_broker
    b, api = mgmt_broker(make_broker)
    assert api.put("/api/queues/%2F/mg1", {
        "durable": True,
        "arguments": {"x-queue-type": "quorum"}}).status == 201
    assert api.post("/api/exchanges/%2F/amq.default/publish", {
        "properties": {"headers": {"b": "x"}}, "routing_key": "mg1",
        "payload": "hi", "payload_encoding": "string"}).json == {
            "routed": True}
    want = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
    for n in range(2):
        r = api.post("/api/queues/%2F/mg1/get", want)
        assert r.status == 200, r
        assert r.json[0]["properties"] == {
            "headers": {"b": "x", "x-delivery-count": n}}
        assert r.json[0]["redelivered"] is (n > 0)


# -- in a cluster (Warren only) ---------------------------------------------

lc = cluster_fixture("qqcompat")


def new_vhost(lc, name):
    from test_40_repl_rules import in_sync
    api = Mgmt(lc.node(0).mgmt_port)
    assert api.put("/api/vhosts/" + q(name), {}).status in (201, 204)
    assert wait_until(lambda: leader_node(lc, name) is not None, 20)
    for n in lc.nodes:
        assert wait_until(lambda: Mgmt(n.mgmt_port).get(
            "/api/vhosts/" + q(name)).status == 200, 10)
        Mgmt(n.mgmt_port).put("/api/permissions/%s/guest" % q(name),
                              {"configure": ".*", "write": ".*",
                               "read": ".*"})
    assert wait_until(lambda: in_sync(lc, name, 3), 20)
    return leader_node(lc, name)


@pytest.mark.warren_only
def test_the_count_survives_a_kill_of_the_leader(lc):
    from test_40_repl_rules import in_sync
    leader = new_vhost(lc, "qq-count")
    conn = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="qq-count")
    conn.open_channel(1)
    conn.call(1, "confirm.select")
    # no delivery limit: counted all the same
    quorum_queue(conn, "qc", **{"x-delivery-limit": F("I", -1)})
    publish_confirmed(conn, "qc", b"counted", {"delivery_mode": 2})
    for n in range(3):
        m = get(conn, "qc")
        assert count_of(m) == F("l", n)
        conn.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                         multiple=False, requeue=True)
    assert conn.call(1, "queue.declare", queue="qc",
                     passive=True).message_count == 1
    mirrors = [n for n in lc.nodes if n is not leader]
    conn.close_socket()
    # the last count is on the mirrors once a later record is: a durable
    # declare waits for the in-sync set's DEFS acks
    c1 = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost="qq-count")
    c1.open_channel(1)
    c1.call(1, "queue.declare", queue="qc-after", durable=True)
    c1.close_socket()
    time.sleep(0.5)
    leader.kill()
    try:
        assert wait_until(lambda: leader_node(lc, "qq-count", mirrors[0])
                          in mirrors, 20)
        new = leader_node(lc, "qq-count", mirrors[0])
        assert new.wait_for_line(
            r"vhost 'qq-count': 1 delivery counts taken over", 10)
        c2 = rawamqp.connect("127.0.0.1", new.amqp_port, vhost="qq-count")
        c2.open_channel(1)
        m = get(c2, "qc")
        assert m.content.body == b"counted" and m.redelivered is True
        assert count_of(m) == F("l", 3)
        c2.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                       requeue=True)
        # a consumer sees it too
        c2.call_buffered(1, "basic.consume", queue="qc", consumer_tag="t")
        m = c2.read_method()
        assert m.name == "basic.deliver" and count_of(m) == F("l", 4)
        c2.send_method(1, "basic.ack", delivery_tag=m.delivery_tag,
                       multiple=False)
        c2.call(1, "basic.cancel", consumer_tag="t")
        c2.call(1, "queue.delete", queue="qc")
        c2.call(1, "queue.delete", queue="qc-after")
        c2.close_socket()
    finally:
        leader.start()
    assert wait_until(lambda: in_sync(lc, "qq-count", 3), 30)
    assert Mgmt(mirrors[0].mgmt_port).delete(
        "/api/vhosts/qq-count").status == 204


class Later:
    """A management request made in a thread: when it was answered, and
    with what."""

    def __init__(self, api, method, path, body=None):
        self.reply = None
        self.at = None
        self.isr_then = None
        self.thread = threading.Thread(
            target=self._run, args=(api, method, path, body), daemon=True)
        self.thread.start()

    def _run(self, api, method, path, body):
        self.reply = api.request(method, path, body)
        self.at = time.monotonic()

    def wait(self, timeout):
        self.thread.join(timeout)
        return self.reply


def all_in_sync(lc, vhost):
    everyone = sorted(n.name for n in lc.nodes)
    return wait_until(lambda: sorted(
        (etcd_isr(lc, vhost) or {}).get("isr", [])) == everyone, 30)


@pytest.mark.warren_only
def test_management_changes_wait_for_the_in_sync_set(lc):
    """A PUT of a durable queue is answered only once the mirrors have
    it: not while both are paused, at once when they resume; an exchange
    PUT and a definitions import that the set cannot take within twice
    replication.timeout (3 s) get 503; a change relayed by a mirror node
    while the other mirror is paused is answered once the paused one has
    left the in-sync set, never before."""
    vh = "qq-mgmt"
    leader = new_vhost(lc, vh)
    mirrors = [n for n in lc.nodes if n is not leader]
    api = Mgmt(leader.mgmt_port)
    base = "/api/queues/%s/" % q(vh)
    t = time.monotonic()
    assert api.put(base + "m0", {"durable": True}).status == 201
    assert time.monotonic() - t < 2.0
    try:
        for m in mirrors:
            m.signal(signal.SIGSTOP)
        put = Later(api, "PUT", base + "m1", {"durable": True})
        assert put.wait(2.0) is None, "answered with both mirrors paused"
        resumed = time.monotonic()
        for m in mirrors:
            m.signal(signal.SIGCONT)
        r = put.wait(10.0)
        assert r is not None and r.status == 201, r
        assert put.at >= resumed
    finally:
        for m in mirrors:
            m.signal(signal.SIGCONT)
    assert all_in_sync(lc, vh), repl(leader)
    # the set cannot take it: 503 after twice the replication timeout
    try:
        for m in mirrors:
            m.signal(signal.SIGSTOP)
        t = time.monotonic()
        x = Later(api, "PUT", "/api/exchanges/%s/x1" % q(vh),
                  {"type": "fanout", "durable": True})
        imp = Later(api, "POST", "/api/definitions", {"queues": [{
            "name": "imported", "vhost": vh, "durable": True,
            "auto_delete": False, "arguments": {}}]})
        r = x.wait(15.0)
        assert r is not None and r.status == 503, r
        assert 5.5 <= x.at - t <= 12.0, x.at - t
        assert r.json["error"] == "service_unavailable"
        assert "in-sync set did not acknowledge" in r.json["reason"], r.json
        r = imp.wait(15.0)
        assert r is not None and r.status == 503, r
        assert "in-sync set did not acknowledge" in r.body.decode(), r
    finally:
        for m in mirrors:
            m.signal(signal.SIGCONT)
    assert all_in_sync(lc, vh), repl(leader)
    # made on the leader all the same; the mirrors have it now
    assert api.get("/api/exchanges/%s/x1" % q(vh)).status == 200
    # relayed by a mirror node while the other mirror is paused: answered
    # once the paused one left the set (3 s), never while it is in it
    via, paused = mirrors
    try:
        paused.signal(signal.SIGSTOP)
        t = time.monotonic()
        b = Later(Mgmt(via.mgmt_port), "POST",
                  "/api/bindings/%s/e/x1/q/m1" % q(vh), {"routing_key": "k"})
        r = b.wait(15.0)
        assert r is not None and r.status == 201, r
        assert b.at - t >= 2.0, b.at - t
        assert paused.name not in etcd_isr(lc, vh)["isr"]
    finally:
        paused.signal(signal.SIGCONT)
    assert all_in_sync(lc, vh), repl(leader)
    # a change the set already has is answered at once
    t = time.monotonic()
    assert api.delete(base + "m0").status == 204
    assert api.put(base + "m1", {"durable": True}).status == 204
    assert time.monotonic() - t < 2.0


@pytest.mark.warren_only
def test_a_queue_put_answered_201_survives_a_kill_of_the_leader(lc):
    vh = "qq-mgmt-kill"
    leader = new_vhost(lc, vh)
    mirrors = [n for n in lc.nodes if n is not leader]
    r = Mgmt(leader.mgmt_port).put("/api/queues/%s/k1" % q(vh),
                                   {"durable": True,
                                    "arguments": {"x-queue-type": "quorum"}})
    assert r.status == 201, r
    leader.kill()
    try:
        assert wait_until(lambda: leader_node(lc, vh, mirrors[0])
                          in mirrors, 20)
        new = leader_node(lc, vh, mirrors[0])
        r = Mgmt(new.mgmt_port).get("/api/queues/%s/k1" % q(vh))
        assert r.status == 200, r
        assert r.json["durable"] is True and r.json["type"] == "quorum"
    finally:
        leader.start()
    assert all_in_sync(lc, vh)
    assert Mgmt(mirrors[0].mgmt_port).delete(
        "/api/vhosts/" + q(vh)).status == 204
