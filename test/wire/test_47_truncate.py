"""Issue 12, KIP-101: a returning mirror's copy is truncated in place.

Three Warren nodes on loopback (test/cluster/localcluster.py). When a
mirror wins a vhost, the position its copy of the previous lead held
exactly is where that lead ended on the new leader; the new leader names
it in its replication handshake ("prev"). A mirror whose copy of that
lead went further (it got records the new leader never had) cuts its log
back to that position in place, using the marks it keeps of where each
cut ends in its log, and catches up from the new lead's first position
through the catch-up window: no snapshot, and none of the old lead's
extra records survive, not even when the truncated copy leads in turn.
GET /api/replication counts it (leads[].truncations; the mirror's start
is "truncation"; the copy's truncated_at).
"""

import os
import signal
import sys

import pika
import pytest

from test_20_mgmt_api import Mgmt
from wireutil import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from test_31_replication import (  # noqa: E402
    closed, cluster_fixture, copy_of, etcd_isr, lead_of, leader_node,
    leader_node_seen, pika_conn, repl, repl_handshake)

pytestmark = pytest.mark.warren_only

TTL = 4
PERSISTENT = pika.BasicProperties(delivery_mode=2)
FILLER = b"f" * (1 << 20)

lc = cluster_fixture("truncate")


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


def queue_messages(node, queue):
    r = Mgmt(node.mgmt_port).get("/api/queues/%2F/" + queue)
    return r.json.get("messages") if r.status == 200 else None


def isr_is(lc, names):
    r = etcd_isr(lc, "/")
    return r is not None and sorted(r["isr"]) == sorted(names)


def diverge(lc, queue, before=None):
    """The leader's records reach one mirror ("ahead") but not the other
    ("lagging", paused: 24 MiB back its link up, more than the socket
    buffers hold); none of them is confirmed (the set waits for lagging).
    Then the leader is killed and ahead stopped cleanly, so lagging wins
    with a copy that ends before ahead's. Returns (old, lagging, ahead,
    the old leader's last position)."""
    old = leader_node(lc, "/")
    lagging, ahead = [n for n in lc.nodes if n is not old]
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: isr_is(lc, everyone), 30)
    conn = pika_conn(old)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    if before:
        before(ch)
    for i in range(10):
        ch.basic_publish("", queue, b"a%d" % i, PERSISTENT)
    lagging.signal(signal.SIGSTOP)
    try:
        ch2 = conn.channel()
        for _ in range(24):
            ch2.basic_publish("", queue, FILLER, PERSISTENT)
        for i in range(5):
            ch2.basic_publish("", queue, b"only-on-the-old-lead-%d" % i,
                              PERSISTENT)
        assert wait_until(lambda: queue_messages(old, queue) == 39, 2)
        pos = lead_of(old, "/")["position"]
        assert wait_until(lambda: (copy_of(ahead, "/") or {}).get("acked")
                          == pos, 2), repl(ahead)
        old.kill()
        # the mirror that has everything leaves too (cleanly: its copy
        # keeps its position), so only the lagging one can win
        assert ahead.stop() == 0
    finally:
        lagging.signal(signal.SIGCONT)
    assert wait_until(lambda: leader_node_seen(lagging, "/") == lagging.name,
                      TTL + 10)
    return old, lagging, ahead, pos


def rejoin_all(lc, leader, *nodes):
    for n in nodes:
        n.start()
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: isr_is(lc, everyone), 30), repl(leader)


def test_a_mirror_ahead_of_the_new_leader_is_truncated_not_snapshotted(lc):
    old, lagging, ahead, pos = diverge(lc, "tr-q")
    d = lead_of(lagging, "/")
    prev = d.get("previous_lead")
    assert prev and prev["start"] >= 1, d
    assert prev["end"] < pos  # its copy ended before the old lead did
    kept = queue_messages(lagging, "tr-q")
    assert 10 <= kept < 39
    # the mirror that went further returns: cut back, then caught up
    ahead.start()
    assert wait_until(lambda: any(
        m["node"] == ahead.name and m["state"] == "streaming"
        for m in lead_of(lagging, "/")["mirrors"]), 20), repl(lagging)
    d = lead_of(lagging, "/")
    assert d["truncations"] == 1 and d["snapshots"] == 0, d
    m = next(m for m in d["mirrors"] if m["node"] == ahead.name)
    assert m["start"] == "truncation", m
    c = copy_of(ahead, "/")
    assert c["truncated_at"] == prev["end"] and c["synced"], c
    assert wait_until(lambda: (copy_of(ahead, "/") or {}).get("messages")
                      == kept, 10), repl(ahead)
    assert ahead.wait_for_line(r"truncated in place at position %d"
                               % prev["end"], 1)
    # a confirmed message of the new lead
    c2 = pika_conn(lagging)
    ch3 = c2.channel()
    ch3.confirm_delivery()
    assert wait_until(lambda: isr_is(lc, [lagging.name, ahead.name]), 20)
    ch3.basic_publish("", "tr-q", b"after", PERSISTENT)
    c2.close()
    # the truncated copy leads: it serves the new leader's state, never
    # what only the old lead had
    lagging.kill()
    assert wait_until(lambda: leader_node_seen(ahead, "/") == ahead.name,
                      TTL + 10)
    got = drain(ahead, "tr-q")
    assert got[:10] == [b"a%d" % i for i in range(10)]
    assert got[-1] == b"after"
    assert len(got) == kept + 1
    assert all(b == FILLER for b in got[10:-1])
    assert not any(b.startswith(b"only-on-the-old-lead") for b in got)
    rejoin_all(lc, ahead, old, lagging)


def test_a_copy_with_a_stream_gets_a_snapshot_instead(lc):
    """Stream logs are cut by their own offsets, not by the log's
    position: a copy holding one is not truncated in place, and the
    snapshot still drops what only the old lead had."""
    def stream(ch):
        ch.queue_declare("tr-stream", durable=True,
                         arguments={"x-queue-type": "stream"})
        ch.basic_publish("", "tr-stream", b"s0", PERSISTENT)

    old, lagging, ahead, pos = diverge(lc, "tr-q2", before=stream)
    kept = queue_messages(lagging, "tr-q2")
    ahead.start()  # its log lines start again
    assert wait_until(lambda: any(
        m["node"] == ahead.name and m["state"] == "streaming"
        for m in lead_of(lagging, "/")["mirrors"]), 30), repl(lagging)
    d = lead_of(lagging, "/")
    assert d["truncations"] == 0 and d["snapshots"] >= 1, d
    assert ahead.wait_for_line(r"not truncated in place \(it holds "
                               r"stream\.", 1), "\n".join(ahead.lines)
    assert wait_until(lambda: (copy_of(ahead, "/") or {}).get("messages")
                      == kept, 10), repl(ahead)  # (a stream's are not)
    got = drain(lagging, "tr-q2")
    assert not any(b.startswith(b"only-on-the-old-lead") for b in got)
    c = pika_conn(lagging)
    c.channel().queue_delete("tr-stream")
    c.close()
    rejoin_all(lc, lagging, old)


def test_garbage_prev_in_the_handshake_is_refused(lc):
    leader = leader_node(lc, "/")
    target = next(n for n in lc.nodes if n is not leader)
    epoch = lead_of(leader, "/")["epoch"] + 1000
    for prev in ("x", [1, 2], {"epoch": 1}, {"epoch": 1, "lead": 2,
                                              "end": -3, "start": 1},
                 {"epoch": 1, "lead": 2, "end": 3, "start": "1"},
                 {"epoch": 1, "lead": 2, "end": 3, "start": 1, "x": 0}):
        s, status, text = repl_handshake(lc, target, "/", epoch,
                                         extra={"prev": prev})
        assert status == 1 and "garbage: \"prev\"" in text, (prev, text)
        assert closed(s)
    # the real leader's link is untouched: its epoch is still the newest
    assert wait_until(lambda: all(
        m["state"] == "streaming" for m in lead_of(leader, "/")["mirrors"]),
        15), repl(leader)


def test_the_old_leader_returning_is_truncated_not_snapshotted(lc):
    """Both mirrors paused, the leader takes records neither of them gets
    (unconfirmed), is killed, and a mirror wins. The old leader's own log
    becomes its copy of the lead it ended and is cut back in place to
    where that lead ended on the new leader: no snapshot, nothing only
    the old lead had survives, not even when it leads again, and every
    confirmed message is there."""
    everyone = sorted(n.name for n in lc.nodes)
    assert wait_until(lambda: isr_is(lc, everyone), 30)
    old = leader_node(lc, "/")
    mirrors = [n for n in lc.nodes if n is not old]
    conn = pika_conn(old)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("tr-old", durable=True)
    for i in range(10):
        ch.basic_publish("", "tr-old", b"a%d" % i, PERSISTENT)  # confirmed
    for n in mirrors:
        n.signal(signal.SIGSTOP)
    try:
        ch2 = conn.channel()  # no confirms: none would come
        for _ in range(24):  # more than the links' socket buffers hold
            ch2.basic_publish("", "tr-old", FILLER, PERSISTENT)
        for i in range(5):
            ch2.basic_publish("", "tr-old", b"only-on-the-old-lead-%d" % i,
                              PERSISTENT)
        assert wait_until(lambda: queue_messages(old, "tr-old") == 39, 2)
        old.kill()
    finally:
        for n in mirrors:
            n.signal(signal.SIGCONT)
    assert wait_until(lambda: leader_node_seen(mirrors[0], "/") in
                      [m.name for m in mirrors], TTL + 10)
    new = next(m for m in mirrors
               if m.name == leader_node_seen(mirrors[0], "/"))
    other = next(m for m in mirrors if m is not new)
    assert wait_until(lambda: any(
        m["node"] == other.name and m["state"] == "streaming"
        for m in lead_of(new, "/")["mirrors"]), 30), repl(new)
    d = lead_of(new, "/")
    prev = d["previous_lead"]
    kept = queue_messages(new, "tr-old")
    assert 10 <= kept < 39
    # the old leader returns: its own log is cut back, then caught up
    old.start()
    assert wait_until(lambda: any(
        m["node"] == old.name and m["state"] == "streaming"
        for m in lead_of(new, "/")["mirrors"]), 30), repl(new)
    d2 = lead_of(new, "/")
    assert d2["truncations"] == d["truncations"] + 1, d2
    assert d2["snapshots"] == d["snapshots"], d2
    m = next(m for m in d2["mirrors"] if m["node"] == old.name)
    assert m["start"] == "truncation", m
    assert old.wait_for_line(r"which it led, is its copy now", 1)
    assert old.wait_for_line(r"truncated in place at position %d"
                             % prev["end"], 1)
    c = copy_of(old, "/")
    assert c["truncated_at"] == prev["end"] and c["synced"], c
    assert wait_until(lambda: (copy_of(old, "/") or {}).get("messages")
                      == kept, 10), repl(old)
    assert wait_until(lambda: isr_is(lc, everyone), 30), repl(new)
    c2 = pika_conn(new)
    ch3 = c2.channel()
    ch3.confirm_delivery()
    ch3.basic_publish("", "tr-old", b"after", PERSISTENT)
    c2.close()
    # the old leader leads again, from its truncated copy
    assert other.stop() == 0
    new.kill()
    assert wait_until(lambda: leader_node_seen(old, "/") == old.name,
                      TTL + 10)
    got = drain(old, "tr-old")
    assert got[:10] == [b"a%d" % i for i in range(10)]
    assert got[-1] == b"after"
    assert len(got) == kept + 1
    assert all(b == FILLER for b in got[10:-1])
    assert not any(b.startswith(b"only-on-the-old-lead") for b in got)
    rejoin_all(lc, old, new, other)
