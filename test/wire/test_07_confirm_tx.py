"""Publisher confirms and transactions.

Observed on RabbitMQ 3.10.8:
  - confirm delivery tags start at 1 per channel; acks may come out of
    order (unroutable publishes are acked at once, routed ones when their
    queue has them, often with multiple=true), so the tests require the
    acks to cover 1..N exactly once;
  - a mandatory unroutable publish gets its basic.return *before* its
    basic.ack; in a transaction the return is sent at tx.commit, before
    commit-ok, and dropped by tx.rollback;
  - switching between confirm and tx modes is 406 on the channel.
"""

import pytest

import rawamqp
from wireutil import (assert_channel_close, channel_error, get, get_bodies,
                      temp_queue)


def read_acks(conn, channel, n, timeout=30.0):
    """Read acks until delivery tags 1..n are all covered; return them.

    Acks may come out of order (RabbitMQ acks unroutable publishes at once
    and routed ones when the queue has them); multiple=true covers every
    tag up to its own that was not acked yet. No tag may be acked twice.
    """
    covered = set()
    acks = []
    while len(covered) < n:
        m = conn.read_method(timeout)
        assert m.name == "basic.ack" and m.channel == channel, m
        assert 1 <= m.delivery_tag <= n, m
        if m.multiple:
            new = set(range(1, m.delivery_tag + 1)) - covered
        else:
            assert m.delivery_tag not in covered, "acked twice: %r" % m
            new = {m.delivery_tag}
        covered |= new
        acks.append((m.delivery_tag, m.multiple))
    with pytest.raises(rawamqp.Timeout):
        m = conn.read_method(0.2)
        raise AssertionError("extra frame after all acks: %r" % m)
    return acks


# -- confirms -----------------------------------------------------------------


def test_confirm_select(rawch):
    m = rawch.call(1, "confirm.select")
    assert m.name == "confirm.select-ok"
    # A second select is accepted.
    rawch.call(1, "confirm.select")


def test_confirm_select_nowait(rawch):
    q = temp_queue(rawch)
    rawch.send_method(1, "confirm.select", nowait=True)
    rawch.publish(1, "", q, b"x")
    m = rawch.read_method()
    assert (m.name, m.delivery_tag) == ("basic.ack", 1)


def test_every_publish_acked(rawch, uname):
    q = temp_queue(rawch)
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.call(1, "confirm.select")
    n = 300
    frames = []
    for i in range(n):
        if i % 3 == 0:  # routed
            frames.append(rawch.publish_frames(1, "", q, b"%d" % i))
        elif i % 3 == 1:  # unroutable, not mandatory: acked all the same
            frames.append(rawch.publish_frames(1, x, "", b"%d" % i))
        else:
            frames.append(rawch.publish_frames(1, "amq.direct", "none",
                                               b"%d" % i))
    rawch.send(b"".join(frames))
    read_acks(rawch, 1, n)
    assert len(get_bodies(rawch, 1, q)) == n // 3


def test_confirm_tags_are_per_channel(rawch):
    q = temp_queue(rawch)
    rawch.open_channel(2)
    rawch.call(1, "confirm.select")
    rawch.call(2, "confirm.select")
    rawch.publish(1, "", q, b"a")
    assert rawch.expect("basic.ack", 1).delivery_tag == 1
    rawch.publish(2, "", q, b"b")
    assert rawch.expect("basic.ack", 2).delivery_tag == 1
    rawch.publish(1, "", q, b"c")
    assert rawch.expect("basic.ack", 1).delivery_tag == 2


def test_publishes_before_select_not_counted(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"before")
    rawch.call(1, "confirm.select")
    rawch.publish(1, "", q, b"after")
    assert rawch.expect("basic.ack", 1).delivery_tag == 1


def test_mandatory_return_precedes_ack(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "confirm.select")
    rawch.frames_seen.clear()
    rawch.publish(1, "amq.direct", "nowhere", b"unroutable", mandatory=True)
    rawch.publish(1, "", q, b"routed", mandatory=True)
    seen = []
    acked = 0
    while acked < 2:  # acks may come one by one or as one multiple=true
        m = rawch.read_method()
        seen.append((m.name, m.args.get("reply_code")))
        if m.name == "basic.ack":
            acked = m.delivery_tag
    assert seen[0] == ("basic.return", 312)
    assert all(s == ("basic.ack", None) for s in seen[1:])
    # At the frame level: method, header, body of the return, then acks.
    kinds = [(f.type, f.channel) for f in rawch.frames_seen]
    assert kinds[:3] == [(1, 1), (2, 1), (3, 1)]
    assert all(k == (1, 1) for k in kinds[3:]) and len(kinds) in (4, 5)


def test_publish_to_missing_exchange_in_confirm_mode(rawch, uname):
    rawch.call(1, "confirm.select")
    x = uname("x")
    rawch.publish(1, x, "", b"x")
    assert_channel_close(rawch, 1, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         60, 40)


def test_pika_confirms(pconn, uname):
    ch = pconn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(20):
        ch.basic_publish("", q, b"%d" % i)
    with pytest.raises(Exception) as e:
        ch.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
    assert type(e.value).__name__ == "UnroutableError"
    assert ch.queue_declare(q, passive=True).method.message_count == 20


# -- transactions -------------------------------------------------------------


def test_tx_commit_publishes(rawch):
    q = temp_queue(rawch)
    rawch.open_channel(2)
    assert rawch.call(2, "tx.select").name == "tx.select-ok"
    rawch.publish(2, "", q, b"1")
    rawch.publish(2, "", q, b"2")
    rawch.call(2, "basic.qos")
    assert get(rawch, 1, q).name == "basic.get-empty"
    assert rawch.call(2, "tx.commit").name == "tx.commit-ok"
    assert get_bodies(rawch, 1, q) == [b"1", b"2"]


def test_tx_rollback_publishes(rawch):
    q = temp_queue(rawch)
    rawch.open_channel(2)
    rawch.call(2, "tx.select")
    rawch.publish(2, "", q, b"never")
    assert rawch.call(2, "tx.rollback").name == "tx.rollback-ok"
    rawch.call(2, "tx.commit")
    assert get_bodies(rawch, 1, q) == []
    # The channel stays transactional.
    rawch.publish(2, "", q, b"later")
    rawch.call(2, "tx.commit")
    assert get_bodies(rawch, 1, q) == [b"later"]


def test_tx_acks_commit_and_rollback(rawch):
    q = temp_queue(rawch)
    for i in (1, 2):
        rawch.publish(1, "", q, b"%d" % i)
    rawch.open_channel(2)
    rawch.call(2, "tx.select")
    m1 = get(rawch, 2, q, no_ack=False)
    m2 = get(rawch, 2, q, no_ack=False)
    rawch.send_method(2, "basic.ack", delivery_tag=m1.delivery_tag)
    rawch.send_method(2, "basic.ack", delivery_tag=m2.delivery_tag)
    rawch.call(2, "tx.rollback")
    # Rolled-back acks leave both unacked: acking again is legal.
    rawch.send_method(2, "basic.ack", delivery_tag=m1.delivery_tag)
    rawch.call(2, "tx.commit")
    rawch.close_channel(2)
    # m1 is gone; m2 was still unacked and comes back redelivered.
    m = get(rawch, 1, q)
    assert (m.content.body, m.redelivered) == (b"2", True)
    assert get(rawch, 1, q).name == "basic.get-empty"


def test_tx_reject_requeue_on_commit(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"r")
    rawch.open_channel(2)
    rawch.call(2, "tx.select")
    m = get(rawch, 2, q, no_ack=False)
    rawch.send_method(2, "basic.reject", delivery_tag=m.delivery_tag,
                      requeue=True)
    rawch.call(2, "basic.qos")
    assert get(rawch, 1, q).name == "basic.get-empty"
    rawch.call(2, "tx.commit")
    m = get(rawch, 1, q)
    assert (m.content.body, m.redelivered) == (b"r", True)


def test_tx_mandatory_return_at_commit(rawch):
    rawch.call(1, "tx.select")
    rawch.publish(1, "amq.direct", "nowhere", b"x", mandatory=True)
    rawch.call(1, "basic.qos")  # nothing returned yet
    rawch.send_method(1, "tx.commit")
    m = rawch.read_method()
    assert (m.name, m.reply_code, m.reply_text) == (
        "basic.return", 312, "NO_ROUTE")
    assert rawch.read_method().name == "tx.commit-ok"
    rawch.publish(1, "amq.direct", "nowhere", b"y", mandatory=True)
    rawch.call(1, "tx.rollback")
    with pytest.raises(rawamqp.Timeout):
        rawch.read_method(0.3)


def test_tx_select_twice_and_empty_commit(rawch):
    rawch.call(1, "tx.select")
    rawch.call(1, "tx.select")
    rawch.call(1, "tx.commit")
    rawch.call(1, "tx.rollback")


def test_tx_select_after_confirm(rawch):
    rawch.call(1, "confirm.select")
    m = channel_error(rawch, 1, "tx.select")
    assert m.close_info == (
        406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        90, 10)


def test_confirm_select_after_tx(rawch):
    rawch.call(1, "tx.select")
    m = channel_error(rawch, 1, "confirm.select")
    assert m.close_info == (
        406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        85, 10)


@pytest.mark.parametrize("method,mid", [("tx.commit", 20),
                                        ("tx.rollback", 30)])
def test_commit_or_rollback_without_select(rawch, method, mid):
    m = channel_error(rawch, 1, method)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - channel is not transactional", 90, mid)


def test_pika_tx(pconn):
    ch = pconn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", q, b"a")
    ch.tx_rollback()
    ch.basic_publish("", q, b"b")
    ch.tx_commit()
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"b"
    assert ch.basic_get(q, auto_ack=True)[0] is None
