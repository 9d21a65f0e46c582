"""Issue 14 in a cluster: stream queues, tracked stream offsets, the
deduplication window and delayed messages are replicated with their
vhost and survive the loss of its leader.

Three Warren nodes on loopback (test/cluster/localcluster.py), each test
on a vhost of its own: it kills (kill -9) the vhost's leader and checks
on the node that takes over. RabbitMQ has no AMQP 0-9-1 equivalent of
these failovers to compare with (its streams replicate through osiris,
its delayed and deduplication plugins do not replicate at all).
"""

import datetime
import glob
import json
import os
import signal
import struct
import sys
import time

import pika
import pytest
import rawamqp

from test_20_mgmt_api import Mgmt
from test_31_replication import (closed, cluster_fixture, confirmed,
                                 copy_of, etcd_isr, frame, lead_of,
                                 leader_node, leader_node_seen, q, repl,
                                 repl_handshake, replica_dir)
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))

pytestmark = pytest.mark.warren_only

TTL = 4
PERSISTENT = 2
SIDE = 10  # the replication frame of side records (cluster/repl.h)


lc = cluster_fixture("frepl")


def new_vhost(lc, vh):
    """vh created, guest allowed, led, its set complete (all three)."""
    api = Mgmt(lc.node(0).mgmt_port)
    assert api.put("/api/vhosts/" + q(vh)).status in (201, 204)
    assert api.put("/api/permissions/%s/guest" % q(vh), {
        "configure": ".*", "write": ".*", "read": ".*"}).status in (201, 204)
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: leader_node(lc, vh) is not None, 30), \
        Mgmt(lc.node(0).mgmt_port).get("/api/vhosts/" + q(vh)).json
    assert wait_until(lambda: sorted((etcd_isr(lc, vh) or {}).get(
        "isr", [])) == everyone, 30), etcd_isr(lc, vh)
    return leader_node(lc, vh)


def conn_to(node, vh):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=node.amqp_port, virtual_host=vh,
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, heartbeat=0))


def caught_up(lc, leader, vh):
    """Both mirrors streaming, past any snapshot, acked at the head."""
    d = lead_of(leader, vh)
    if not d or len(d["mirrors"]) != 2:
        return False
    for m in d["mirrors"]:
        if m["state"] != "streaming" or m["acked"] != d["position"]:
            return False
        node = next(n for n in lc.nodes if n.name == m["node"])
        c = copy_of(node, vh)
        if not c or not c["synced"] or c["acked"] != d["position"]:
            return False
    return True


def take_over(lc, dead, vh, among):
    """After the kill of `dead`: the node of `among` that leads vh, once
    it took over its copy."""
    names = {n.name for n in among}
    assert wait_until(lambda: leader_node_seen(among[0], vh) in names,
                      TTL + 15), vh
    new = next(n for n in among if n.name == leader_node_seen(among[0], vh))
    assert new.wait_for_line(r"vhost '%s': taking over from this node's "
                             r"copy of epoch \d+" % vh, 10)
    return new


def restart(lc, nodes):
    for n in nodes:
        if not n.running():
            n.start()


def read_stream(node, vh, name, args, n, prefetch=100, ack_upto=None):
    """n deliveries of stream name from a consumer with args: (offset,
    body) pairs; acks those up to offset ack_upto (all when None)."""
    c = conn_to(node, vh)
    ch = c.channel()
    ch.basic_qos(prefetch_count=prefetch)
    got = []

    def on_msg(ch, m, p, body):
        off = p.headers["x-stream-offset"]
        got.append((off, body))
        if ack_upto is None or off <= ack_upto:
            ch.basic_ack(m.delivery_tag)

    ch.basic_consume(name, on_msg, arguments=args)
    deadline = time.monotonic() + 15
    while len(got) < n and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.2)
    c.process_data_events(time_limit=0.3)  # nothing more should come
    try:
        # (pika nacks deliveries it still buffers: a stream answers 540)
        c.close()
    except pika.exceptions.AMQPError:
        pass
    return got


def body(i):
    return b"m%05d" % i + b"." * 3000


def test_a_stream_keeps_its_offsets_and_tracked_consumers_on_the_new_leader(
        lc):
    """A stream of several segments: every confirmed message is on both
    mirrors; a mirror restarted meanwhile gets the stream in its
    snapshot (in slices); the tracked offset of a named consumer travels
    too. The leader and the other mirror die: the restarted mirror leads
    and serves the same message at every offset, and the named consumer
    resumes where it was."""
    vh = "frepl-stream"
    leader = new_vhost(lc, vh)
    c = conn_to(leader, vh)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("st", durable=True, arguments={
        "x-queue-type": "stream",
        "x-stream-max-segment-size-bytes": 65536})
    for i in range(300):
        ch.basic_publish("", "st", body(i),
                         pika.BasicProperties(delivery_mode=PERSISTENT))
    c.close()
    # a named consumer acks offsets 0..99 of what it gets
    got = read_stream(leader, vh, "st", {"x-stream-offset": "first",
                      "x-warren-offset-tracking": "app"}, 150, prefetch=150,
                      ack_upto=99)
    assert [o for o, _ in got][:150] == list(range(150))
    assert wait_until(lambda: caught_up(lc, leader, vh), 15), repl(leader)
    mirrors = [n for n in lc.nodes if n is not leader]
    snap, other = mirrors
    # one mirror away while the stream grows: it comes back to a snapshot
    snap.kill()
    # a time between the two batches: a consumer from it starts at 300,
    # here and on the new leader (the records keep their times)
    time.sleep(1.2)
    between = datetime.datetime.utcnow().replace(microsecond=0)
    time.sleep(1.2)
    c = conn_to(leader, vh)
    ch = c.channel()
    ch.confirm_delivery()  # confirmed once the set shrank to the others
    for i in range(300, 400):
        ch.basic_publish("", "st", body(i),
                         pika.BasicProperties(delivery_mode=PERSISTENT))
    c.close()
    mark = len(leader.lines)
    snap.start()
    assert leader.wait_for_line(
        r"replicating vhost '%s' \(epoch \d+\) to node '%s' from position"
        % (vh, snap.name), 20, mark)
    assert wait_until(lambda: caught_up(lc, leader, vh), 20), repl(leader)
    assert wait_until(lambda: snap.name in etcd_isr(lc, vh)["isr"], 10)
    # the copy holds the stream's segments and the tracked offset
    logdir = os.path.join(replica_dir(snap, vh), "log")
    assert len(glob.glob(os.path.join(logdir, "stream.*.seg"))) > 1
    offsets = glob.glob(os.path.join(logdir, "stream.*.offsets"))
    assert len(offsets) == 1
    with open(offsets[0]) as f:
        assert json.load(f) == {"app": 100}
    # the leader and the other mirror die: the snapshot's copy leads
    other.kill()
    leader.kill()
    new = take_over(lc, leader, vh, [snap])
    try:
        got = read_stream(new, vh, "st", {"x-stream-offset": "first"}, 400)
        assert [o for o, _ in got] == list(range(400))
        assert [b for _, b in got] == [body(i) for i in range(400)]
        got = read_stream(new, vh, "st", {"x-stream-offset": 250}, 150)
        assert got[0] == (250, body(250)) and len(got) == 150
        got = read_stream(new, vh, "st", {"x-stream-offset": between}, 100)
        assert got[0][0] == 300 and len(got) == 100
        # the named consumer resumes after the last offset it acked
        got = read_stream(new, vh, "st",
                          {"x-warren-offset-tracking": "app"}, 300)
        assert [o for o, _ in got] == list(range(100, 400))
    finally:
        restart(lc, [leader, other])
    # the stream goes on at the next offset, confirmed by the new set
    assert wait_until(lambda: caught_up(lc, new, vh), 20), repl(new)
    c = conn_to(new, vh)
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "st", b"after",
                     pika.BasicProperties(delivery_mode=PERSISTENT))
    c.close()
    got = read_stream(new, vh, "st", {"x-stream-offset": 400}, 1)
    assert got == [(400, b"after")]


def stream_firsts(node, vh):
    """The first offsets of the stream segments in node's copy of vh."""
    logdir = os.path.join(replica_dir(node, vh), "log")
    return sorted(int(p.rsplit(".", 2)[1]) for p in
                  glob.glob(os.path.join(logdir, "stream.*.seg")))


def test_a_stream_publish_is_confirmed_only_once_the_in_sync_set_has_it(lc):
    """Retention on the leader trims the mirrors' copies by whole
    segments too. Both mirrors paused: a stream publish is not confirmed
    (before replication it was, from the leader's disk alone); one
    resumes and catches up: the confirm goes out."""
    vh = "frepl-confirm"
    leader = new_vhost(lc, vh)
    mirrors = [n for n in lc.nodes if n is not leader]
    c = conn_to(leader, vh)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("sr", durable=True, arguments={
        "x-queue-type": "stream", "x-max-length-bytes": 40000,
        "x-stream-max-segment-size-bytes": 10000})
    for i in range(100):
        ch.basic_publish("", "sr", body(i),
                         pika.BasicProperties(delivery_mode=PERSISTENT))
    c.close()
    st = Mgmt(leader.mgmt_port).get("/api/queues/%s/sr" % q(vh)).json[
        "stream"]
    assert st["first_offset"] > 0 and st["next_offset"] == 100, st
    assert wait_until(lambda: caught_up(lc, leader, vh), 15), repl(leader)
    for n in mirrors:  # the same whole segments dropped
        assert stream_firsts(n, vh)[0] == st["first_offset"], n.name
        assert len(stream_firsts(n, vh)) == st["segments"], n.name
    conn = rawamqp.connect("127.0.0.1", leader.amqp_port, vhost=vh)
    conn.open_channel(1)
    conn.call(1, "queue.declare", queue="sc", durable=True,
              arguments={"x-queue-type": "stream"})
    conn.call(1, "confirm.select")
    conn.publish(1, "", "sc", b"before")
    assert confirmed(conn, 5) is not None
    try:
        mirrors[0].signal(signal.SIGSTOP)
        mirrors[1].signal(signal.SIGSTOP)
        conn.publish(1, "", "sc", b"held")
        assert confirmed(conn, 6) is None, "confirmed with no mirror"
        assert lead_of(leader, vh)["confirms_held"] is True
        mirrors[1].signal(signal.SIGCONT)
        assert confirmed(conn, 10) is not None, repl(leader)
    finally:
        for n in mirrors:
            n.signal(signal.SIGCONT)
    conn.close_socket()
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: sorted(etcd_isr(lc, vh)["isr"]) == everyone,
                      20), repl(leader)


def test_a_duplicate_of_a_message_confirmed_before_the_failover_is_dropped(
        lc):
    """Queue and exchange deduplication windows: their keys travel with
    the journal, so a duplicate of a consumed (acked) message confirmed
    before the leader's kill -9 is still dropped by the new leader."""
    vh = "frepl-dedup"
    leader = new_vhost(lc, vh)
    c = conn_to(leader, vh)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("dq", durable=True, arguments={
        "x-message-deduplication": True, "x-cache-size": 1000})
    ch.exchange_declare("dx", "fanout", durable=True, arguments={
        "x-message-deduplication": True, "x-cache-size": 1000})
    ch.queue_declare("dxq", durable=True)
    ch.queue_bind("dxq", "dx")

    def props(key):
        return pika.BasicProperties(delivery_mode=PERSISTENT,
                                    headers={"x-deduplication-header": key})
    for i in range(20):
        ch.basic_publish("", "dq", b"q%d" % i, props("k%d" % i))
        ch.basic_publish("dx", "", b"x%d" % i, props("e%d" % i))
    # consumed and acked: only the journal remembers their keys now
    for queue in ("dq", "dxq"):
        for _ in range(20):
            assert ch.basic_get(queue, auto_ack=True)[0] is not None
    assert ch.basic_get("dq", auto_ack=True)[0] is None
    c.close()
    assert wait_until(lambda: caught_up(lc, leader, vh), 15), repl(leader)
    others = [n for n in lc.nodes if n is not leader]
    leader.kill()
    new = take_over(lc, leader, vh, others)
    try:
        c = conn_to(new, vh)
        ch = c.channel()
        ch.confirm_delivery()  # once the other node is in sync again
        ch.basic_publish("", "dq", b"dup", props("k5"))
        ch.basic_publish("", "dq", b"new", props("k100"))
        ch.basic_publish("dx", "", b"dup", props("e7"))
        ch.basic_publish("dx", "", b"new", props("e100"))
        for queue in ("dq", "dxq"):
            m = ch.basic_get(queue, auto_ack=True)
            assert m[2] == b"new", (queue, m)
            assert ch.basic_get(queue, auto_ack=True)[0] is None, queue
        c.close()
    finally:
        restart(lc, [leader])


def test_pending_delayed_messages_come_due_on_the_new_leader(lc):
    """Persistent messages held by an x-delayed-message exchange when
    the leader dies come due on the node that takes over, not before
    their time."""
    vh = "frepl-delayed"
    leader = new_vhost(lc, vh)
    c = conn_to(leader, vh)
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("later", "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare("due", durable=True)
    ch.queue_bind("due", "later", "k")
    t0 = time.time()
    delay_ms = 9000
    for i in range(5):
        ch.basic_publish("later", "k", b"d%d" % i, pika.BasicProperties(
            delivery_mode=PERSISTENT, headers={"x-delay": delay_ms}))
    c.close()
    assert wait_until(lambda: caught_up(lc, leader, vh), 10), repl(leader)
    others = [n for n in lc.nodes if n is not leader]
    leader.kill()
    new = take_over(lc, leader, vh, others)
    try:
        c = conn_to(new, vh)
        ch = c.channel()
        # still held: nothing before the due time
        if time.time() - t0 < delay_ms / 1000 - 1:
            assert ch.queue_declare("due", passive=True).method \
                .message_count == 0
        got = []
        deadline = t0 + delay_ms / 1000 + 15
        while len(got) < 5 and time.time() < deadline:
            m = ch.basic_get("due", auto_ack=True)
            if m[0] is None:
                time.sleep(0.2)
                continue
            got.append((m[2], time.time() - t0))
        c.close()
        assert sorted(b for b, _ in got) == [b"d%d" % i for i in range(5)]
        assert all(t >= delay_ms / 1000 - 0.5 for _, t in got), got
    finally:
        restart(lc, [leader])


def side(kind, payload):
    return struct.pack(">BI", kind, len(payload)) + payload


def sapp(offset, record=b"\x02\x00\x00rec"):
    return side(1, struct.pack(">QQQQ", 0xAB, offset, 1, 65536) + record)


def test_hostile_side_frames_drop_the_link_with_a_reason(lc):
    """SIDE frames are checked whole before anything is applied; a stream
    append that would make the copy diverge is refused too. Each drops
    the link with a log line; the node carries on."""
    vh = "frepl-hostile"
    leader = new_vhost(lc, vh)
    target = next(n for n in lc.nodes if n is not leader)
    epoch = lead_of(leader, vh)["epoch"] + 1000
    cases = [
        (side(9, b"x"), r"garbage: unknown side record type"),
        (side(1, b"\x00" * 12), r"garbage: side record too short"),
        (struct.pack(">BI", 2, 99) + b"\x00" * 8, r"garbage: side record "
                                                  r"cut short"),
        (side(5, b"not journal records"),
         r"garbage: bad deduplication journal records"),
        (side(4, struct.pack(">Q", 0xAB) + b"[1, 2]"),
         r"garbage: tracked offsets that are not a JSON object"),
        (sapp(5) + sapp(6) + sapp(3),
         r"stream 00000000000000ab: offset 3 where 7 comes next \(the "
         r"copy would diverge\)"),
    ]
    snap = frame(1, epoch, 1)  # SNAP: a snapshot's streams start anywhere
    cases = [(snap + frame(SIDE, epoch, 2, p), line) for p, line in cases]
    # once the copy follows the live stream (SYNCED), a gap is refused too
    cases.append((snap + frame(4, epoch, 2) + frame(SIDE, epoch, 3, sapp(5)),
                  r"stream 00000000000000ab: offset 5 where 0 comes next"))
    for data, line in cases:
        mark = len(target.lines)
        s, status, text = repl_handshake(lc, target, vh, epoch)
        assert status == 0, text
        s.sendall(data)
        assert closed(s)
        assert target.wait_for_line(
            r"copy of vhost '%s' from node 'warren9@test': link dropped: "
            r"SIDE frame: %s" % (vh, line), 5, mark), line
    # the node still serves and replicates its other vhosts
    assert Mgmt(lc.node(0).mgmt_port).delete(
        "/api/vhosts/" + q(vh)).status == 204
    lead = leader_node(lc, "/")
    c = conn_to(lead, "/")
    c.channel().queue_declare("frepl-after", durable=True)
    c.channel().queue_delete("frepl-after")
    c.close()
    assert wait_until(lambda: caught_up(lc, lead, "/"), 15), repl(lead)
