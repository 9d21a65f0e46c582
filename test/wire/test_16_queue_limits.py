"""Queue length limits (x-max-length, x-max-length-bytes, x-overflow) and
queue expiry (x-expires) as RabbitMQ 3.10 applies them, and
consumer_timeout (Warren only: it needs a small timeout in the config)."""

import time

import pytest

import rawamqp
from wireutil import (confirm_select, get_bodies, publish_sync, temp_queue,
                      wait_until)


def test_max_length_drops_head(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 2})
    confirm_select(rawch, 1)
    for i in range(5):
        publish_sync(rawch, 1, "", q, b"%d" % i)
    assert get_bodies(rawch, 1, q) == [b"3", b"4"]


def test_max_length_bytes_drops_head(rawch):
    q = temp_queue(rawch, arguments={"x-max-length-bytes": 10})
    confirm_select(rawch, 1)
    for i in range(5):
        publish_sync(rawch, 1, "", q, b"%05d" % i)
    assert get_bodies(rawch, 1, q) == [b"00003", b"00004"]


def test_reject_publish_nacks(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 2,
                                     "x-overflow": "reject-publish"})
    rawch.call(1, "confirm.select")
    got = []
    for i in range(4):
        rawch.publish(1, "", q, b"%d" % i)
        m = rawch.read_method()
        got.append((m.name, m.delivery_tag))
    assert got == [("basic.ack", 1), ("basic.ack", 2), ("basic.nack", 3),
                   ("basic.nack", 4)]
    assert get_bodies(rawch, 1, q) == [b"0", b"1"]


def test_limit_counts_ready_messages_only(rawch):
    q = temp_queue(rawch, arguments={"x-max-length": 1})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"a")
    rawch.send_method(1, "basic.get", queue=q, no_ack=False)
    assert rawch.read_method().name == "basic.get-ok"  # "a" is unacked
    publish_sync(rawch, 1, "", q, b"b")
    m = rawch.call(1, "queue.declare", queue=q, passive=True)
    assert m.message_count == 1


@pytest.mark.warren_only
def test_consumer_timeout_closes_the_channel(make_broker):
    b = make_broker(extra_conf={"consumer_timeout": 1000})
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    q = temp_queue(c)
    confirm_select(c, 1)
    publish_sync(c, 1, "", q, b"slow")
    c.call(1, "basic.consume", queue=q, consumer_tag="t")
    assert c.read_method().name == "basic.deliver"
    t0 = time.monotonic()
    m = c.read_method(timeout=10)  # never acked
    assert m.name == "channel.close", m
    assert m.close_info[:2] == (
        406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 "
        "timed out. Timeout value used: 1000 ms. This timeout value can be "
        "configured, see consumers doc guide to learn more")
    assert 0.9 < time.monotonic() - t0 < 4
    c.send_method(1, "channel.close-ok")
    # The delivery went back to the queue.
    c.open_channel(1)
    m = c.call(1, "queue.declare", queue=q, passive=True)
    assert m.message_count == 1



def timeout_text(ms, ch=1):
    return ("PRECONDITION_FAILED - delivery acknowledgement on channel %d "
            "timed out. Timeout value used: %d ms. This timeout value can be "
            "configured, see consumers doc guide to learn more" % (ch, ms))


# x-consumer-timeout (queue argument) and consumer-timeout (policy key)
# are RabbitMQ 3.12's; 3.10 has only the node's consumer_timeout. The
# shortest of argument and policies wins, as for the length limits.
@pytest.mark.warren_only
@pytest.mark.parametrize("how", ["argument", "policy"])
def test_queue_consumer_timeout(make_broker, how):
    from test_20_mgmt_api import mgmt_broker

    # The node's timeout is off: only the queue's applies.
    b, api = mgmt_broker(make_broker, {"consumer_timeout": "infinity"})
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.open_channel(2)
    args = {}
    if how == "argument":
        args = {"x-consumer-timeout": 1000}
    else:
        assert api.put("/api/policies/%2F/ct", {
            "pattern": "^ct-", "definition": {"consumer-timeout": 1000},
            "apply-to": "queues"}).status in (201, 204)
    c.call(1, "queue.declare", queue="ct-slow", arguments=args)
    c.call(1, "queue.declare", queue="other")
    confirm_select(c, 1)
    publish_sync(c, 1, "", "other", b"patient")
    publish_sync(c, 1, "", "ct-slow", b"slow")
    # Channel 2 holds a delivery from a queue without a timeout: it lives.
    c.call_buffered(2, "basic.consume", queue="other", consumer_tag="o")
    c.call_buffered(1, "basic.consume", queue="ct-slow", consumer_tag="t")
    got = {c.read_method().channel, c.read_method().channel}
    assert got == {1, 2}
    t0 = time.monotonic()
    m = c.read_method(timeout=10)  # never acked
    assert (m.name, m.channel) == ("channel.close", 1), m
    assert m.close_info[:2] == (406, timeout_text(1000))
    assert 0.9 < time.monotonic() - t0 < 4
    c.send_method(1, "channel.close-ok")
    with pytest.raises(rawamqp.Timeout):
        c.read_method(timeout=2.5)
    c.open_channel(1)
    assert c.call(1, "queue.declare", queue="ct-slow",
                  passive=True).message_count == 1


@pytest.mark.warren_only
def test_queue_timeout_shorter_than_the_nodes_and_older_deliveries(
        make_broker):
    # An older delivery from a queue with the node's long timeout does not
    # hide a younger one from a queue with a short timeout.
    b = make_broker(extra_conf={"consumer_timeout": 600000})
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.call(1, "queue.declare", queue="long")
    c.call(1, "queue.declare", queue="short",
           arguments={"x-consumer-timeout": 1500})
    confirm_select(c, 1)
    publish_sync(c, 1, "", "long", b"a")
    publish_sync(c, 1, "", "short", b"b")
    c.call_buffered(1, "basic.consume", queue="long", consumer_tag="l")
    assert c.read_method().name == "basic.deliver"
    time.sleep(0.5)
    c.call_buffered(1, "basic.consume", queue="short", consumer_tag="s")
    assert c.read_method().name == "basic.deliver"
    m = c.read_method(timeout=10)
    assert m.name == "channel.close" and m.close_info[:2] == (
        406, timeout_text(1500))


# RabbitMQ 3.10 ignores the argument (it does not know it); Warren checks
# it as the other integer arguments.
@pytest.mark.warren_only
def test_consumer_timeout_argument_is_validated(raw, uname):
    c = raw()
    c.open_channel(1)
    q = uname("ct")
    c.send_method(1, "queue.declare", queue=q,
                  arguments={"x-consumer-timeout": -1})
    m = c.read_method()
    assert m.name == "channel.close" and m.close_info == (
        406, "PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for "
        "queue '%s' in vhost '/': {value_negative,-1}" % q, 50, 10)


def queue_exists(raw, queue):
    """One passive declare on a fresh connection: True, or False on 404."""
    c = raw()
    c.open_channel(1)
    c.send_method(1, "queue.declare", queue=queue, passive=True)
    m = c.read_method()
    c.close_socket()
    assert m.name in ("queue.declare-ok", "channel.close"), m
    if m.name == "channel.close":
        assert m.reply_code == 404, m
        return False
    return True


def test_x_expires_deletes_an_unused_queue(raw, rawch, uname):
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 500})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"gone with it")
    assert wait_until(lambda: not queue_exists(raw, q))


def test_x_expires_waits_for_the_last_consumer(raw, rawch, uname):
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 500})
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c1")
    time.sleep(1.5)
    assert queue_exists(raw, q)
    rawch.call(1, "basic.cancel", consumer_tag="c1")
    assert wait_until(lambda: not queue_exists(raw, q))


def test_x_expires_is_renewed_by_redeclare_and_get(raw, rawch, uname):
    # Renewals every 0.5 s keep a 3 s lease alive however slow the machine
    # is within that margin; 3.6 s in all is longer than the lease.
    q = uname("exp")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-expires": 3000})
    for _ in range(4):
        time.sleep(0.45)
        rawch.call(1, "queue.declare", queue=q,
                   arguments={"x-expires": 3000})
    for _ in range(4):
        time.sleep(0.45)
        rawch.send_method(1, "basic.get", queue=q, no_ack=True)
        assert rawch.read_method().name == "basic.get-empty"
    assert queue_exists(raw, q)
    assert wait_until(lambda: not queue_exists(raw, q))
