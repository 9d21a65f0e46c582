"""Channels: open, close, many channels, channel_max, flow, misuse.

Observed on RabbitMQ 3.10.8. Notably RabbitMQ enforces channel_max as a
limit on the number of open channels, not on channel numbers, and misuse of
channel.open / channel 0 is a connection error (504), not a channel error.
"""

import pytest

import rawamqp
from wireutil import assert_connection_close


def test_open_close_reopen(broker, raw):
    c = raw()
    m = c.open_channel(1)
    assert m.channel == 1
    m = c.call(1, "channel.close", reply_code=200, reply_text="done")
    assert m.name == "channel.close-ok" and m.channel == 1
    assert c.open_channel(1).name == "channel.open-ok"
    c.close()


def test_500_channels_on_one_connection(broker, raw, uname):
    c = raw()
    n = 500
    c.send(b"".join(rawamqp.method_frame(i, "channel.open")
                    for i in range(1, n + 1)))
    # Replies on different channels may come in any order.
    expect_on_each(c, "channel.open-ok", n)
    q = uname("q")
    c.declare_queue(1, q)
    # One round trip on every channel, pipelined.
    c.send(b"".join(rawamqp.method_frame(i, "queue.declare", queue=q,
                                         passive=True)
                    for i in range(1, n + 1)))
    oks = expect_on_each(c, "queue.declare-ok", n)
    assert {m.queue for m in oks.values()} == {q}
    c.send(b"".join(rawamqp.method_frame(i, "channel.close", reply_code=200)
                    for i in range(1, n + 1)))
    expect_on_each(c, "channel.close-ok", n)
    c.close()


def expect_on_each(c, name, n):
    """Read one `name` on each channel 1..n, in any order."""
    got = {}
    for _ in range(n):
        m = c.read_method()
        assert m.name == name, m
        assert m.channel not in got
        got[m.channel] = m
    assert sorted(got) == list(range(1, n + 1))
    return got


def test_pika_many_channels(broker, pconn):
    chans = [pconn.channel() for _ in range(100)]
    assert len({ch.channel_number for ch in chans}) == 100
    for ch in chans:
        ch.basic_qos(prefetch_count=1)
        ch.close()


def test_second_channel_open_is_connection_error(broker, raw):
    c = raw()
    c.open_channel(1)
    c.send_method(1, "channel.open")
    assert_connection_close(
        c, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


def test_channel_method_on_channel_zero(broker, raw):
    c = raw()
    c.send_method(0, "channel.open")
    assert_connection_close(
        c, 504, "CHANNEL_ERROR - unexpected method in connection state "
        "running", 20, 10)


def test_non_connection_method_on_channel_zero(broker, raw):
    c = raw()
    c.send_method(0, "basic.qos", prefetch_count=1)
    assert_connection_close(
        c, 504, "CHANNEL_ERROR - unexpected method in connection state "
        "running", 60, 10)


def test_channel_close_on_unopened_channel(broker, raw):
    c = raw()
    c.send_method(3, "channel.close", reply_code=200)
    assert_connection_close(
        c, 504, "CHANNEL_ERROR - expected 'channel.open'", 20, 40)


def test_channel_close_ok_without_close(broker, raw):
    c = raw()
    c.open_channel(1)
    c.send_method(1, "channel.close-ok")
    assert_connection_close(
        c, 503, "COMMAND_INVALID - unimplemented method", 20, 41)


@pytest.mark.parametrize("method", ["channel.open-ok", "channel.flow-ok",
                                    "basic.qos-ok", "queue.declare-ok"])
def test_server_methods_from_client(broker, raw, method):
    # Server-to-client methods sent by a client.
    spec = rawamqp.METHODS_BY_NAME[method]
    c = raw()
    c.open_channel(1)
    c.send_method(1, method)
    assert_connection_close(
        c, 503, "COMMAND_INVALID - unimplemented method", spec.class_id,
        spec.method_id)


def test_flow_active_true(broker, raw):
    c = raw()
    c.open_channel(1)
    m = c.call(1, "channel.flow", active=True)
    assert m.active is True
    c.close()


def test_flow_active_false_not_implemented(broker, raw):
    c = raw()
    c.open_channel(1)
    c.send_method(1, "channel.flow", active=False)
    assert_connection_close(c, 540, "NOT_IMPLEMENTED - active=false", 20, 20)


def test_channel_max_counts_open_channels(broker, raw):
    c = raw(channel_max=3)
    for i in (1, 2, 3):
        c.open_channel(i)
    c.send_method(4, "channel.open")
    assert_connection_close(
        c, 530, "NOT_ALLOWED - number of channels opened (3) has reached "
        "the negotiated channel_max (3)", 0, 0)
    assert c.is_closed(5)


def test_channel_max_frees_slot_on_close(broker, raw):
    c = raw(channel_max=2)
    c.open_channel(1)
    c.open_channel(2)
    c.close_channel(2)
    assert c.open_channel(7).name == "channel.open-ok"
    c.close()


def test_channel_number_above_channel_max_is_allowed(broker, raw):
    # RabbitMQ limits the number of open channels, not their numbers.
    c = raw(channel_max=10)
    for n in (11, 2048, 65535):
        assert c.open_channel(n).channel == n
    c.close()


def test_access_request_is_a_noop(broker, raw):
    c = raw()
    c.open_channel(1)
    m = c.call(1, "access.request", realm="/data", active=True, read=True)
    assert m.ticket == 1
    c.close()
