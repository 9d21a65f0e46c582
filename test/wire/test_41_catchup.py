"""Issue 12, catch-up: a mirror that comes back to the same leader gets
only what follows its position, not a snapshot.

Three Warren nodes on loopback (test/cluster/localcluster.py). A copy
closed cleanly (a stopped node, a dropped link) remembers the position of
the leader's epoch its log holds exactly; the leader keeps its recent cuts
(a window of 64 MiB) and sends a returning mirror the cuts after that
position. A copy that died with kill -9, or whose position left the
window, gets a snapshot as before. GET /api/replication counts both
(leads[].snapshots, leads[].catch_ups; mirrors[].start).
"""

import json
import os
import signal
import sys
import time

import pika
import pytest

from test_20_mgmt_api import Mgmt
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from test_31_replication import (  # noqa: E402
    cluster_fixture, copy_of, etcd_isr, lead_of, leader_node, leader_node_seen,
    mirrors_caught_up, pika_conn, repl, replica_dir)

pytestmark = pytest.mark.warren_only

TTL = 4
PERSISTENT = pika.BasicProperties(delivery_mode=2)


lc = cluster_fixture("catchup")


def counts(leader):
    d = lead_of(leader, "/")
    return d["snapshots"], d["catch_ups"]


def mirror_start(leader, node):
    m = next(m for m in lead_of(leader, "/")["mirrors"]
             if m["node"] == node.name)
    return m.get("start")


def publish(ch, queue, first, n, size=16):
    for i in range(first, first + n):
        ch.basic_publish("", queue, b"c%06d" % i + b"x" * size, PERSISTENT)


def settle(lc, leader, messages):
    assert wait_until(lambda: mirrors_caught_up(lc, leader, "/", messages),
                      30), [repl(n) for n in lc.nodes if n.running()]


def test_a_mirror_stopped_cleanly_catches_up_from_its_position(lc):
    leader = leader_node(lc, "/")
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("cu-q", durable=True)
    publish(ch, "cu-q", 0, 300)
    settle(lc, leader, 300)
    mirror = next(n for n in lc.nodes if n is not leader)
    snaps, catch_ups = counts(leader)
    assert mirror.stop() == 0
    with open(os.path.join(replica_dir(mirror, "/"), "state.json")) as f:
        state = json.load(f)
    assert state["synced"] and state["position"] > 0, state
    assert state["epoch"] == lead_of(leader, "/")["epoch"]
    # the leader keeps serving; what the mirror misses: messages, acks,
    # a queue and a binding (definitions travel in the same cuts)
    publish(ch, "cu-q", 300, 200)
    for _ in range(50):
        assert ch.basic_get("cu-q", auto_ack=True)[0] is not None
    ch.queue_declare("cu-q2", durable=True)
    ch.queue_bind("cu-q2", "amq.fanout")
    ch.basic_publish("amq.fanout", "", b"fan", PERSISTENT)
    mark = len(leader.lines)
    mirror.start()
    assert leader.wait_for_line(
        r"catching up vhost '/' \(epoch \d+\) on node '%s' from position "
        r"%d to \d+" % (mirror.name, state["position"]), 20, mark), \
        leader.lines[mark:]
    settle(lc, leader, 451)
    assert counts(leader) == (snaps, catch_ups + 1)
    assert mirror_start(leader, mirror) == "catch-up"
    # the position is good for one open only: it is gone from the file
    with open(os.path.join(replica_dir(mirror, "/"), "state.json")) as f:
        assert "position" not in json.load(f)
    with open(os.path.join(replica_dir(mirror, "/"),
                           "definitions.json")) as f:
        defs = json.load(f)
    assert "cu-q2" in {x["name"] for x in defs["queues"]}
    assert any(b["destination"] == "cu-q2" for b in defs["bindings"])
    # back in the in-sync set
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      15)
    # the DEFS of the caught-up cuts were awaited like any other (issue
    # 12's durable declare-ok waits for every member's DACK): the link
    # stays, and the next durable declare is answered
    started = time.monotonic()
    ch.queue_declare("cu-q3", durable=True)
    assert time.monotonic() - started < 5
    assert not any("DACK with no DEFS" in x for x in leader.lines[mark:])
    assert mirror_start(leader, mirror) == "catch-up"
    ch.queue_delete("cu-q2")
    ch.queue_delete("cu-q3")
    conn.close()


def test_a_mirror_killed_gets_a_snapshot(lc):
    """kill -9 leaves no position: the copy's log may hold part of a cut
    it never acked, so only a snapshot is safe."""
    leader = leader_node(lc, "/")
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    settle(lc, leader, 450)
    mirror = next(n for n in lc.nodes if n is not leader)
    snaps, catch_ups = counts(leader)
    mirror.kill()
    publish(ch, "cu-q", 500, 100)
    mark = len(leader.lines)
    mirror.start()
    assert leader.wait_for_line(
        r"replicating vhost '/' \(epoch \d+\) to node '%s' from position"
        % mirror.name, 20, mark)
    settle(lc, leader, 550)
    assert counts(leader) == (snaps + 1, catch_ups)
    assert mirror_start(leader, mirror) == "snapshot"
    conn.close()


def test_a_position_older_than_the_window_gets_a_snapshot(lc):
    """More than the window (64 MiB of frames) went by while the mirror
    was away: its position is gone from the leader's memory."""
    leader = leader_node(lc, "/")
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    settle(lc, leader, 550)
    mirror = next(n for n in lc.nodes if n is not leader)
    snaps, catch_ups = counts(leader)
    assert mirror.stop() == 0
    ch.queue_declare("cu-big", durable=True)
    body = b"b" * (1 << 20)
    for _ in range(80):  # 80 MiB through the log, gone again after
        ch.basic_publish("", "cu-big", body, PERSISTENT)
    ch.queue_purge("cu-big")
    mark = len(leader.lines)
    mirror.start()
    assert leader.wait_for_line(
        r"replicating vhost '/' \(epoch \d+\) to node '%s' from position"
        % mirror.name, 20, mark)
    settle(lc, leader, 550)
    assert counts(leader) == (snaps + 1, catch_ups)
    ch.queue_delete("cu-big")
    conn.close()


def test_a_big_snapshot_goes_in_slices_while_publishers_carry_on(lc):
    """64 MiB of live messages to a mirror that lost its copy's position:
    the snapshot is read a slice per loop iteration, publishes are
    confirmed meanwhile (the other mirror keeps the in-sync set), acks of
    messages not yet shipped are honoured, and the copy ends up exact."""
    leader = leader_node(lc, "/")
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_purge("cu-q")
    ch.queue_declare("cu-snap", durable=True)
    body = b"s" * (64 << 10)
    for i in range(1024):
        ch.basic_publish("", "cu-snap", b"%06d" % i + body, PERSISTENT)
    settle(lc, leader, 1024)
    mirror = next(n for n in lc.nodes if n is not leader)
    mirror.kill()
    mark = len(leader.lines)
    mirror.start()
    assert leader.wait_for_line(
        r"replicating vhost '/' \(epoch \d+\) to node '%s' from position"
        % mirror.name, 20, mark)
    # while it goes: publish (confirmed) and consume (acked) some
    during = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ch.basic_publish("", "cu-snap", b"late%06d" % during, PERSISTENT)
        during += 1
        if during <= 100:
            m = ch.basic_get("cu-snap", auto_ack=False)
            ch.basic_ack(m[0].delivery_tag)
        if leader.wait_for_line(r"snapshot of vhost '/' .* to node '%s'"
                                % mirror.name, 0, mark) and during >= 100:
            break
    line = leader.wait_for_line(
        r"snapshot of vhost '/' \(epoch \d+\) to node '%s': (\d+) "
        r"queue entries" % mirror.name, 30, mark)
    assert line, leader.lines[mark:]
    settle(lc, leader, 1024 + during - 100)
    d = lead_of(leader, "/")
    # slices of 1 MiB: the loop never spent long on the snapshot at once
    assert d["snapshot_slice_max_ms"] < 500, d
    ch.queue_delete("cu-snap")
    conn.close()


def test_a_caught_up_copy_takes_over_with_every_confirmed_message(lc):
    """The proof that catch-up neither lost nor repeated anything: the
    copy that caught up becomes the leader and holds exactly what was
    confirmed."""
    leader = leader_node(lc, "/")
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_purge("cu-q")
    settle(lc, leader, 0)
    mirrors = [n for n in lc.nodes if n is not leader]
    # each mirror in turn misses a stretch and catches up
    publish(ch, "cu-q", 0, 100)
    for k, m in enumerate(mirrors):
        snaps, catch_ups = counts(leader)
        assert m.stop() == 0
        publish(ch, "cu-q", 100 + 100 * k, 100)
        for _ in range(10):  # acks travel too
            assert ch.basic_get("cu-q", auto_ack=True)[0] is not None
        m.start()
        settle(lc, leader, 100 * (k + 2) - 10 * (k + 1))
        assert counts(leader) == (snaps, catch_ups + 1)
    conn.close()
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      15)
    want = [b"c%06d" % i + b"x" * 16 for i in range(20, 300)]
    leader.kill()
    assert wait_until(lambda: leader_node_seen(mirrors[0], "/") in
                      {n.name for n in mirrors}, TTL + 10)
    new = next(n for n in mirrors
               if n.name == leader_node_seen(mirrors[0], "/"))
    c2 = pika_conn(new)
    ch2 = c2.channel()
    got = []
    while True:
        m = ch2.basic_get("cu-q", auto_ack=True)
        if m[0] is None:
            break
        got.append(m[2])
    assert got == want
    ch2.queue_delete("cu-q")
    c2.close()
    leader.start()
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      30)


def drain(node, queue):
    c = pika_conn(node)
    ch = c.channel()
    out = []
    while True:
        m = ch.basic_get(queue, auto_ack=True)
        if m[0] is None:
            break
        out.append(m[2])
    c.close()
    return out


def test_a_diverged_old_leader_comes_back_without_what_it_alone_had(lc):
    """KIP-101's case: the leader logs records no mirror got (both
    paused, their links backed up), then dies. A mirror takes over
    without them; the old leader returns as a mirror whose copy is
    rebuilt from the new leader (a snapshot: its log is of an older
    epoch), and the records it alone had never reappear, even after one
    more failover."""
    leader = leader_node(lc, "/")
    mirrors = [n for n in lc.nodes if n is not leader]
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      20)
    conn = pika_conn(leader)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("cu-div", durable=True)
    for i in range(10):
        ch.basic_publish("", "cu-div", b"a%d" % i, PERSISTENT)
    for m in mirrors:
        m.signal(signal.SIGSTOP)
    try:
        # unconfirmed: 40 MiB backs the links up (more than the socket
        # buffers hold), so what follows stays on the leader alone
        ch2 = conn.channel()
        filler = b"f" * (1 << 20)
        for _ in range(40):
            ch2.basic_publish("", "cu-div", filler, PERSISTENT)
        ch2.basic_publish("", "cu-div", b"only-on-the-old-leader",
                          PERSISTENT)
        api = Mgmt(leader.mgmt_port)
        assert wait_until(lambda: api.get("/api/queues/%2F/cu-div").json.get(
            "messages") == 51, 2)
        leader.kill()
    finally:
        for m in mirrors:
            m.signal(signal.SIGCONT)
    assert wait_until(lambda: leader_node_seen(mirrors[0], "/") in
                      {n.name for n in mirrors}, TTL + 10)
    new = next(n for n in mirrors
               if n.name == leader_node_seen(mirrors[0], "/"))
    other = next(n for n in mirrors if n is not new)
    got = drain(new, "cu-div")
    assert got[:10] == [b"a%d" % i for i in range(10)]  # confirmed: kept
    assert b"only-on-the-old-leader" not in got
    assert all(b == filler for b in got[10:])
    # what is left for the old leader to bring back: a marker
    c = pika_conn(new)
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "cu-div", b"after", PERSISTENT)
    c.close()
    leader.start()
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      30), repl(new)
    assert wait_until(lambda: (copy_of(leader, "/") or {}).get("messages")
                      == 1, 10), repl(leader)
    # one more failover: the old leader or the other mirror, whichever
    # wins, serves the new leader's state, never the old leader's own
    new.kill()
    assert wait_until(lambda: leader_node_seen(leader, "/") in
                      {leader.name, other.name}, TTL + 10)
    final = next(n for n in (leader, other)
                 if n.name == leader_node_seen(leader, "/"))
    assert drain(final, "cu-div") == [b"after"]
    new.start()
    assert wait_until(lambda: sorted(etcd_isr(lc, "/")["isr"]) == everyone,
                      30)
