"""Consuming: consumer tags, exclusive consumers, no-ack, round robin,
cancel, basic.get, ack/nack/reject (multiple, requeue), requeue order,
delivery-tag errors, requeue on channel/connection close, recover, QoS.

Observed on RabbitMQ 3.10.8. Notable:
  - a reused consumer tag is a *connection* error (530);
  - requeued messages return to their original position (ahead of newer
    messages, in original order) with redelivered=true;
  - ack with delivery tag 0 and multiple=true acks everything outstanding;
  - basic.recover requeue=false and basic.qos prefetch_size != 0 are
    connection errors 540;
  - qos global=false limits each consumer created afterwards; global=true
    limits the channel as a whole; both can apply at once.
"""

import re
import time

import pytest

import rawamqp
from wireutil import (assert_channel_close, assert_connection_close,
                      channel_error, confirm_select, get, get_bodies,
                      publish_sync, temp_queue)


def deliveries(conn, quiet=0.3):
    """Read deliveries until `quiet` seconds pass without one."""
    out = []
    while True:
        try:
            m = conn.read_method(quiet)
        except rawamqp.Timeout:
            return out
        assert m.name == "basic.deliver", m
        out.append(m)


def fill(conn, channel, queue, n, prefix=b""):
    """Publish n messages (confirmed, so counts are exact)."""
    confirm_select(conn, channel)
    for i in range(1, n + 1):
        publish_sync(conn, channel, "", queue, prefix + b"%d" % i)


def bodies(ms):
    return [m.content.body for m in ms]


# -- consumer tags and exclusivity --------------------------------------------


def test_client_and_server_consumer_tags(rawch):
    q = temp_queue(rawch)
    m = rawch.call(1, "basic.consume", queue=q, consumer_tag="my-tag")
    assert m.consumer_tag == "my-tag"
    m = rawch.call(1, "basic.consume", queue=q)
    assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", m.consumer_tag)
    m2 = rawch.call(1, "basic.consume", queue=q)
    assert m2.consumer_tag != m.consumer_tag
    rawch.publish(1, "", q, b"x")
    d = rawch.expect("basic.deliver", 1)
    assert d.consumer_tag in ("my-tag", m.consumer_tag, m2.consumer_tag)


def test_duplicate_consumer_tag_closes_connection(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="dup")
    rawch.send_method(1, "basic.consume", queue=q, consumer_tag="dup")
    assert_connection_close(
        rawch, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'",
        60, 20)


def test_same_tag_on_different_channels_is_fine(rawch):
    q = temp_queue(rawch)
    rawch.open_channel(2)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="same")
    rawch.call(2, "basic.consume", queue=q, consumer_tag="same")


def test_exclusive_consumer_refused_when_others_exist(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="plain")
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "basic.consume", queue=q,
                      consumer_tag="excl", exclusive=True)
    assert m.close_info == (
        403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q,
        60, 20)


def test_consumer_refused_when_exclusive_consumer_exists(raw):
    a, b = raw(), raw()
    a.open_channel(1)
    b.open_channel(1)
    q = a.call(1, "queue.declare", queue="").queue
    try:
        a.call(1, "basic.consume", queue=q, consumer_tag="excl",
               exclusive=True)
        for conn in (a, b):
            conn.open_channel(2)
            m = channel_error(conn, 2, "basic.consume", queue=q,
                              consumer_tag="late")
            assert m.close_info == (
                403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive "
                "use" % q, 60, 20)
        # basic.get is still allowed.
        b.open_channel(3)
        assert get(b, 3, q).name == "basic.get-empty"
        a.call(1, "basic.cancel", consumer_tag="excl")
        b.call(3, "basic.consume", queue=q, consumer_tag="now-ok")
    finally:
        a.call(1, "queue.delete", queue=q)


# -- delivery -----------------------------------------------------------------


def test_no_ack_consumer(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="na", no_ack=True)
    rawch.publish(1, "", q, b"one")
    rawch.publish(1, "", q, b"two")
    ms = deliveries(rawch)
    assert [(m.consumer_tag, m.delivery_tag, m.redelivered, m.exchange,
             m.routing_key, m.content.body) for m in ms] == [
        ("na", 1, False, "", q, b"one"), ("na", 2, False, "", q, b"two")]
    # Nothing to ack: the tags are unknown.
    rawch.send_method(1, "basic.ack", delivery_tag=1)
    assert_channel_close(rawch, 1, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 1",
                         60, 80)
    rawch.open_channel(2)
    assert rawch.call(2, "queue.declare", queue=q,
                      passive=True).message_count == 0


def test_round_robin_across_three_consumers(rawch):
    q = temp_queue(rawch)
    for tag in ("c1", "c2", "c3"):
        rawch.call(1, "basic.consume", queue=q, consumer_tag=tag,
                   no_ack=True)
    for i in range(9):
        rawch.publish(1, "", q, b"%d" % i)
    ms = deliveries(rawch)
    assert [(m.consumer_tag, m.delivery_tag, m.content.body) for m in ms] == [
        ("c%d" % (i % 3 + 1), i + 1, b"%d" % i) for i in range(9)]


def test_consume_existing_messages_then_new(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 3)
    rawch.open_channel(2)
    m = rawch.call_buffered(2, "basic.consume", queue=q, consumer_tag="c",
                            no_ack=True)
    assert m.consumer_tag == "c"
    assert bodies(deliveries(rawch)) == [b"1", b"2", b"3"]
    rawch.publish(2, "", q, b"4")
    assert bodies(deliveries(rawch)) == [b"4"]


def test_cancel(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c")
    m = rawch.call(1, "basic.cancel", consumer_tag="c")
    assert m.consumer_tag == "c"
    rawch.publish(1, "", q, b"stays")
    assert deliveries(rawch) == []
    assert get_bodies(rawch, 1, q) == [b"stays"]
    # Cancelling an unknown tag is answered with cancel-ok.
    assert rawch.call(1, "basic.cancel",
                      consumer_tag="never").consumer_tag == "never"


def test_cancel_nowait(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c")
    rawch.send_method(1, "basic.cancel", consumer_tag="c", nowait=True)
    rawch.call(1, "basic.qos")
    rawch.publish(1, "", q, b"stays")
    assert get_bodies(rawch, 1, q) == [b"stays"]


def test_consume_nowait(rawch):
    q = temp_queue(rawch)
    rawch.send_method(1, "basic.consume", queue=q, consumer_tag="nw",
                      no_ack=True, nowait=True)
    rawch.publish(1, "", q, b"x")
    m = rawch.read_method()
    assert (m.name, m.consumer_tag, m.content.body) == (
        "basic.deliver", "nw", b"x")


def test_unacked_cancelled_consumer_keeps_messages_unacked(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 2)
    rawch.open_channel(2)
    rawch.call_buffered(2, "basic.consume", queue=q, consumer_tag="c")
    ms = deliveries(rawch)
    assert len(ms) == 2
    rawch.call(2, "basic.cancel", consumer_tag="c")
    # Still acknowledgeable after the cancel.
    rawch.send_method(2, "basic.ack", delivery_tag=ms[1].delivery_tag,
                      multiple=True)
    rawch.call(2, "basic.qos")
    assert get_bodies(rawch, 2, q) == []


# -- basic.get ----------------------------------------------------------------


def test_get_and_get_empty(rawch):
    q = temp_queue(rawch)
    m = get(rawch, 1, q)
    assert m.name == "basic.get-empty"
    assert m.cluster_id == ""
    fill(rawch, 1, q, 3)
    counts = []
    for _ in range(3):
        m = get(rawch, 1, q, no_ack=False)
        counts.append((m.delivery_tag, m.message_count, m.content.body))
    assert counts == [(1, 2, b"1"), (2, 1, b"2"), (3, 0, b"3")]
    assert get(rawch, 1, q).name == "basic.get-empty"


def test_get_and_consume_share_delivery_tags(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 3)
    assert get(rawch, 1, q, no_ack=False).delivery_tag == 1
    rawch.call_buffered(1, "basic.consume", queue=q, consumer_tag="c")
    assert [m.delivery_tag for m in deliveries(rawch)] == [2, 3]


# -- ack / nack / reject ------------------------------------------------------


def _get_all(conn, ch, q):
    out = []
    while True:
        m = get(conn, ch, q, no_ack=False)
        if m.name == "basic.get-empty":
            return out
        out.append(m)


def test_ack_single_and_multiple(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 5)
    ms = _get_all(rawch, 1, q)
    assert [m.delivery_tag for m in ms] == [1, 2, 3, 4, 5]
    rawch.send_method(1, "basic.ack", delivery_tag=2)
    rawch.send_method(1, "basic.ack", delivery_tag=4, multiple=True)
    rawch.send_method(1, "basic.ack", delivery_tag=5)
    rawch.close_channel(1)
    rawch.open_channel(1)
    assert get_bodies(rawch, 1, q) == []


def test_ack_zero_multiple_acks_everything(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 3)
    _get_all(rawch, 1, q)
    rawch.send_method(1, "basic.ack", delivery_tag=0, multiple=True)
    rawch.close_channel(1)
    rawch.open_channel(1)
    assert get_bodies(rawch, 1, q) == []


def test_requeued_messages_keep_their_position(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 5)
    _get_all(rawch, 1, q)
    rawch.send_method(1, "basic.reject", delivery_tag=4, requeue=True)
    rawch.send_method(1, "basic.reject", delivery_tag=2, requeue=True)
    publish_sync(rawch, 1, "", q, b"6")
    publish_sync(rawch, 1, "", q, b"7")
    got = [(m.content.body, m.redelivered, m.delivery_tag)
           for m in _get_all(rawch, 1, q)]
    assert got == [(b"2", True, 6), (b"4", True, 7), (b"6", False, 8),
                   (b"7", False, 9)]


def test_nack_multiple_requeue_and_drop(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 5)
    _get_all(rawch, 1, q)
    rawch.send_method(1, "basic.nack", delivery_tag=3, multiple=True,
                      requeue=True)
    rawch.send_method(1, "basic.nack", delivery_tag=4, requeue=False)
    rawch.send_method(1, "basic.reject", delivery_tag=5, requeue=False)
    got = [(m.content.body, m.redelivered) for m in _get_all(rawch, 1, q)]
    assert got == [(b"1", True), (b"2", True), (b"3", True)]


def test_nack_single_requeue_to_consumer(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 1)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=1)
    rawch.call_buffered(2, "basic.consume", queue=q, consumer_tag="c")
    (m,) = deliveries(rawch)
    assert (m.delivery_tag, m.redelivered) == (1, False)
    rawch.send_method(2, "basic.nack", delivery_tag=1, requeue=True)
    (m,) = deliveries(rawch)
    assert (m.delivery_tag, m.redelivered, m.content.body) == (2, True, b"1")


@pytest.mark.parametrize("method,mid", [("basic.ack", 80),
                                        ("basic.reject", 90),
                                        ("basic.nack", 120)])
def test_unknown_delivery_tag(rawch, method, mid):
    rawch.send_method(1, method, delivery_tag=5)
    assert_channel_close(rawch, 1, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 5",
                         60, mid)


def test_unknown_delivery_tag_zero(rawch):
    rawch.send_method(1, "basic.ack", delivery_tag=0)
    assert_channel_close(rawch, 1, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 0",
                         60, 80)


def test_double_ack(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 1)
    m = get(rawch, 1, q, no_ack=False)
    rawch.send_method(1, "basic.ack", delivery_tag=m.delivery_tag)
    rawch.send_method(1, "basic.ack", delivery_tag=m.delivery_tag)
    assert_channel_close(rawch, 1, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 1",
                         60, 80)


def test_ack_multiple_beyond_last_tag(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 2)
    _get_all(rawch, 1, q)
    rawch.send_method(1, "basic.ack", delivery_tag=9, multiple=True)
    assert_channel_close(rawch, 1, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 9",
                         60, 80)


def test_tag_of_other_channel_is_unknown(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 1)
    get(rawch, 1, q, no_ack=False)
    rawch.open_channel(2)
    rawch.send_method(2, "basic.ack", delivery_tag=1)
    assert_channel_close(rawch, 2, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 1",
                         60, 80)


# -- requeue on close ---------------------------------------------------------


def test_unacked_requeued_when_channel_closes(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 5)
    rawch.open_channel(2)
    for _ in range(3):
        get(rawch, 2, q, no_ack=False)
    rawch.close_channel(2)
    got = [(m.content.body, m.redelivered) for m in _get_all(rawch, 1, q)]
    assert got == [(b"1", True), (b"2", True), (b"3", True), (b"4", False),
                   (b"5", False)]


def test_unacked_requeued_when_consumer_channel_closes(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 3)
    rawch.open_channel(2)
    rawch.call_buffered(2, "basic.consume", queue=q, consumer_tag="c")
    assert len(deliveries(rawch)) == 3
    rawch.close_channel(2)
    assert [(m.content.body, m.redelivered)
            for m in _get_all(rawch, 1, q)] == [
        (b"1", True), (b"2", True), (b"3", True)]


@pytest.mark.parametrize("how", ["close", "drop"])
def test_unacked_requeued_when_connection_closes(raw, uname, how):
    owner, consumer = raw(), raw()
    owner.open_channel(1)
    consumer.open_channel(1)
    q = uname("q")
    owner.call(1, "queue.declare", queue=q)
    fill(owner, 1, q, 3)
    get(consumer, 1, q, no_ack=False)
    get(consumer, 1, q, no_ack=False)
    if how == "close":
        consumer.close()
        ms = _get_all(owner, 1, q)
    else:
        consumer.close_socket()
        deadline = time.monotonic() + 30  # requeue after a drop: async
        while time.monotonic() < deadline:
            m = owner.call(1, "queue.declare", queue=q, passive=True)
            if m.message_count == 3:
                break
            time.sleep(0.02)
        ms = _get_all(owner, 1, q)
    assert [(m.content.body, m.redelivered) for m in ms] == [
        (b"1", True), (b"2", True), (b"3", False)]


# -- recover ------------------------------------------------------------------


def test_recover_requeue_true(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 3)
    rawch.open_channel(2)
    rawch.call_buffered(2, "basic.consume", queue=q, consumer_tag="r")
    first = deliveries(rawch)
    assert [(m.delivery_tag, m.redelivered) for m in first] == [
        (1, False), (2, False), (3, False)]
    rawch.send_method(2, "basic.ack", delivery_tag=2)
    m = rawch.call_buffered(2, "basic.recover", requeue=True)
    assert m.name == "basic.recover-ok"
    again = deliveries(rawch)
    assert [(m.content.body, m.redelivered) for m in again] == [
        (b"1", True), (b"3", True)]
    assert [m.delivery_tag for m in again] == [4, 5]


def test_recover_requeue_false_not_implemented(rawch):
    rawch.send_method(1, "basic.recover", requeue=False)
    assert_connection_close(rawch, 540, "NOT_IMPLEMENTED - requeue=false",
                            60, 110)


def test_recover_async(rawch):
    q = temp_queue(rawch)
    fill(rawch, 1, q, 1)
    get(rawch, 1, q, no_ack=False)
    rawch.send_method(1, "basic.recover-async", requeue=True)
    rawch.call(1, "basic.qos")
    m = get(rawch, 1, q)
    assert (m.content.body, m.redelivered) == (b"1", True)


# -- QoS ----------------------------------------------------------------------


def _two_queues(rawch, n=6):
    qa, qb = temp_queue(rawch), temp_queue(rawch)
    confirm_select(rawch, 1)
    for i in range(n):
        publish_sync(rawch, 1, "", qa, b"a%d" % i)
        publish_sync(rawch, 1, "", qb, b"b%d" % i)
    return qa, qb


def _per_tag(ms):
    out = {}
    for m in ms:
        out[m.consumer_tag] = out.get(m.consumer_tag, 0) + 1
    return out


def test_qos_per_consumer(rawch):
    qa, qb = _two_queues(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=2, global_=False)
    rawch.call_buffered(2, "basic.consume", queue=qa, consumer_tag="A")
    rawch.call_buffered(2, "basic.consume", queue=qb, consumer_tag="B")
    ms = deliveries(rawch)
    assert _per_tag(ms) == {"A": 2, "B": 2}
    a_tag = [m.delivery_tag for m in ms if m.consumer_tag == "A"][0]
    rawch.send_method(2, "basic.ack", delivery_tag=a_tag)
    assert _per_tag(deliveries(rawch)) == {"A": 1}


def test_qos_global_per_channel(rawch):
    qa, qb = _two_queues(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=3, global_=True)
    rawch.call_buffered(2, "basic.consume", queue=qa, consumer_tag="A")
    rawch.call_buffered(2, "basic.consume", queue=qb, consumer_tag="B")
    ms = deliveries(rawch)
    assert len(ms) == 3
    rawch.send_method(2, "basic.ack", delivery_tag=ms[-1].delivery_tag,
                      multiple=True)
    assert len(deliveries(rawch)) == 3


def test_qos_per_consumer_and_global_combined(rawch):
    # Per-consumer limit 2, then a channel limit of 3: A takes 2, B only
    # the 1 left in the channel's window. (RabbitMQ 3.10 quirk, not
    # tested: with the global qos sent *before* the per-consumer one, the
    # channel limit was not enforced, A 2 + B 2.)
    qa, qb = _two_queues(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=2, global_=False)
    rawch.call(2, "basic.qos", prefetch_count=3, global_=True)
    rawch.call_buffered(2, "basic.consume", queue=qa, consumer_tag="A")
    rawch.call_buffered(2, "basic.consume", queue=qb, consumer_tag="B")
    ms = deliveries(rawch)
    assert _per_tag(ms) == {"A": 2, "B": 1}
    a_tags = [m.delivery_tag for m in ms if m.consumer_tag == "A"]
    rawch.send_method(2, "basic.ack", delivery_tag=a_tags[0])
    # One slot freed in the channel window; A and B are both below their
    # own limit, so either may take it.
    more = deliveries(rawch)
    assert len(more) == 1 and more[0].consumer_tag in ("A", "B")


def test_qos_applies_to_later_consumers_only(rawch):
    qa, qb = _two_queues(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=1)
    rawch.call_buffered(2, "basic.consume", queue=qa, consumer_tag="A")
    rawch.call_buffered(2, "basic.qos", prefetch_count=4)
    rawch.call_buffered(2, "basic.consume", queue=qb, consumer_tag="B")
    assert _per_tag(deliveries(rawch)) == {"A": 1, "B": 4}


def test_qos_zero_is_unlimited_and_get_ignores_qos(rawch):
    qa, qb = _two_queues(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=1, global_=True)
    # basic.get is not limited by prefetch.
    assert len(_get_all(rawch, 2, qb)) == 6
    rawch.open_channel(3)
    rawch.call(3, "basic.qos", prefetch_count=0)
    rawch.call_buffered(3, "basic.consume", queue=qa, consumer_tag="A")
    assert len(deliveries(rawch)) == 6


@pytest.mark.parametrize("global_", [False, True])
def test_qos_prefetch_size_not_implemented(rawch, global_):
    rawch.send_method(1, "basic.qos", prefetch_size=10, prefetch_count=5,
                      global_=global_)
    assert_connection_close(
        rawch, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10)


def test_pika_consume_and_ack(pconn, uname):
    ch = pconn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    ch.basic_qos(prefetch_count=2)
    got = []
    for method, props, body in ch.consume(q, inactivity_timeout=1):
        if method is None:
            break
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == 5:
            break
    ch.cancel()
    assert got == [b"0", b"1", b"2", b"3", b"4"]
