"""Connection handshake: protocol header, start, SASL, tune, open, close,
update-secret, heartbeats.

Every expectation was observed on RabbitMQ 3.10.8. Where RabbitMQ closes
a refused connection "silently" it waits 3 s first (SILENT_CLOSE_DELAY in
rabbit_reader.erl); those cases run in parallel so the waits overlap.
"""

import socket
import time

import pytest

import rawamqp
from rawamqp import PROTOCOL_HEADER
from wireutil import assert_connection_close, run_parallel

# Headers RabbitMQ answers with its own header and a close. (It accepts
# AMQP\x01\x01\x08\x00 and AMQP\x01\x01\x09\x01 as AMQP 0-8 and
# AMQP\x01\x01\x00\x09 as 0-9; Warren need not, so they are not here.)
BAD_HEADERS = {
    "http": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "amqp-0-8-new-style": b"AMQP\x00\x00\x08\x00",
    "amqp-0-9": b"AMQP\x00\x00\x09\x00",
    "amqp-0-9-2": b"AMQP\x00\x00\x09\x02",
    "amqp-0-10": b"AMQP\x01\x01\x00\x0a",
    "amqp-0-10-new-style": b"AMQP\x00\x00\x00\x0a",
    "garbage": b"XXXXXXXX",
    "amqp-lowercase": b"amqp\x00\x00\x09\x01",
    "zeros": b"\x00" * 8,
}

# Headers RabbitMQ takes for older versions of the protocol: aioamqp
# sends 0-9's, py-amqplib the 0-8 header of the AMQP web site. RabbitMQ
# speaks 0-9-1 on the first and 0-8 on the second; Warren speaks 0-9-1 on
# both (0-8 clients use methods that are encoded alike in 0-9-1).
OLDER_HEADERS = {
    "amqp-0-9": b"AMQP\x01\x01\x00\x09",
    "amqp-0-8-website": b"AMQP\x01\x01\x09\x01",
}

SILENT_CLOSE_MAX = 6.0  # RabbitMQ: 3 s delay, then close without a frame

REFUSED_TEXT = ("ACCESS_REFUSED - Login was refused using authentication "
                "mechanism %s. For details see the broker logfile.")


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_wrong_protocol_header_gets_091_header_and_close(broker, raw, name):
    c = raw(handshake=False)
    c.send(BAD_HEADERS[name])
    assert c.read_all_until_closed(5) == PROTOCOL_HEADER


@pytest.mark.parametrize("name", sorted(OLDER_HEADERS))
def test_older_protocol_headers_are_accepted(broker, raw, uname, name):
    c = raw(handshake=False)
    c.begin(OLDER_HEADERS[name])
    assert c.login().name == "connection.tune"
    c.tune_ok()
    assert c.open().name == "connection.open-ok"
    if broker.target == "rabbitmq" and name == "amqp-0-8-website":
        # RabbitMQ speaks 0-8 from here on (its channel.open-ok has no
        # channel id); the handshake is all the two versions share.
        return
    c.open_channel(1)
    q = uname("q")
    c.call(1, "queue.declare", queue=q)
    c.publish(1, "", q, b"hello")
    m = c.call(1, "basic.get", queue=q, no_ack=True)
    assert m.name == "basic.get-ok" and m.content.body == b"hello"
    c.close()


def test_truncated_header_then_eof_closes(broker, raw):
    # Fewer than 8 bytes and a half-close: RabbitMQ closes at once without
    # sending anything. (Sending its header back would be fine too.)
    for data in (b"AMQP\x00\x00\x09", b"HELO\r\n", b"A"):
        c = raw(handshake=False)
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_all_until_closed(5) in (b"", PROTOCOL_HEADER)


def test_header_in_pieces_is_accepted(broker, raw):
    c = raw(handshake=False)
    for b in PROTOCOL_HEADER:
        c.send(bytes([b]))
        time.sleep(0.01)
    m = c.read_method()
    assert m.name == "connection.start"


def test_connection_start(broker, raw):
    c = raw(handshake=False)
    start = c.begin()
    assert start.channel == 0
    assert (start.version_major, start.version_minor) == (0, 9)
    props = start.server_properties
    for key in ("product", "version", "platform", "cluster_name",
                "copyright", "information"):
        assert key in props, key
        assert props[key].tag == "S", (key, props[key])
        assert props[key].value, key
    if broker.target == "rabbitmq":
        assert props["product"].value == b"RabbitMQ"
    else:
        assert props["product"].value == b"Warren"
    caps = props["capabilities"]
    assert caps.tag == "F"
    for cap in ("publisher_confirms", "exchange_exchange_bindings",
                "basic.nack", "consumer_cancel_notify", "connection.blocked",
                "consumer_priorities", "authentication_failure_close",
                "per_consumer_qos", "direct_reply_to"):
        assert caps.value.get(cap) == rawamqp.F("t", True), cap
    assert start.mechanisms.split(b" ")[:2] == [b"PLAIN", b"AMQPLAIN"]
    assert start.locales == b"en_US"


def test_tune_offer(broker, raw):
    c = raw(handshake=False)
    c.begin()
    tune = c.login()
    assert tune.name == "connection.tune"
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (
        2047, 131072, 60)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_login_succeeds(broker, raw, mechanism):
    c = raw(mechanism=mechanism)
    assert c.open_channel(1).name == "channel.open-ok"
    c.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_bad_password_with_auth_failure_close(broker, raw, mechanism):
    c = raw(handshake=False)
    c.begin()
    m = c.login(password="wrong-password", mechanism=mechanism)
    assert m.name == "connection.close"
    assert m.close_info == (403, REFUSED_TEXT % mechanism, 0, 0)
    c.send_method(0, "connection.close-ok")
    assert c.is_closed(5)


def test_unknown_user_with_auth_failure_close(broker, raw):
    c = raw(handshake=False)
    c.begin()
    m = c.login(user="no-such-user", password="x")
    assert m.close_info == (403, REFUSED_TEXT % "PLAIN", 0, 0)


def _silently_refused(broker, **login_kw):
    """Login that must end with the socket closed and no frame sent."""
    def run():
        c = broker.raw(handshake=False)
        try:
            c.begin()
            t0 = time.monotonic()
            with pytest.raises(rawamqp.Closed):
                m = c.login(**login_kw)
                raise AssertionError("expected a silent close, got %r" % m)
            assert time.monotonic() - t0 < SILENT_CLOSE_MAX
            assert not c.buf
        finally:
            c.close_socket()
    return run


def test_login_refusals_without_close_frame(broker):
    # Without the client capability authentication_failure_close a bad
    # password just closes the socket; an unknown mechanism and a garbled
    # PLAIN response do the same whatever the capabilities.
    run_parallel(
        _silently_refused(broker, password="wrong", capabilities={}),
        _silently_refused(broker, password="wrong",
                          capabilities={"authentication_failure_close":
                                        False}),
        _silently_refused(broker, mechanism="NOPE"),
        _silently_refused(broker, mechanism="EXTERNAL"),
        _silently_refused(broker, response=b"garbage-without-nuls"),
    )


def _bad_tune(broker, channel_max=None, frame_max=None):
    # RabbitMQ 3.10 closes silently (after 3 s). Newer RabbitMQ versions
    # send connection.close 530 "NOT_ALLOWED - negotiated frame_max = 4095
    # is lower than the minimum allowed value (4096)" first; both are
    # accepted here, nothing else is.
    def run():
        c = broker.raw(handshake=False)
        try:
            c.begin()
            assert c.login().name == "connection.tune"
            c.tune_ok(channel_max=channel_max, frame_max=frame_max)
            c.send_method(0, "connection.open", virtual_host="/")
            try:
                m = c.read_method(SILENT_CLOSE_MAX)
            except rawamqp.Closed:
                return
            assert m.name == "connection.close", m
            assert m.reply_code == 530
            assert m.reply_text.startswith("NOT_ALLOWED - negotiated ")
            c.send_method(0, "connection.close-ok")
            assert c.is_closed(5)
        finally:
            c.close_socket()
    return run


def test_bad_tune_ok_values_are_refused(broker):
    run_parallel(
        _bad_tune(broker, frame_max=4095),
        _bad_tune(broker, frame_max=0),  # 0 = unlimited > 131072
        _bad_tune(broker, frame_max=131073),
        _bad_tune(broker, frame_max=1 << 20),
        _bad_tune(broker, channel_max=0),  # 0 = unlimited > 2047
        _bad_tune(broker, channel_max=2048),
    )


def test_smaller_tune_values_accepted_and_frame_max_honoured(broker, raw,
                                                             uname):
    c = raw(frame_max=4096, channel_max=10, heartbeat=0)
    c.open_channel(1)
    q = uname("q")
    c.declare_queue(1, q)
    body = bytes(range(256)) * 40  # 10240 bytes
    c.publish(1, "", q, body)
    c.send_method(1, "basic.get", queue=q, no_ack=True)
    m = c.expect("basic.get-ok", 1)
    assert m.content.body == body
    body_frames = [f for f in c.frames_seen if f.type == rawamqp.FRAME_BODY]
    assert [len(f.payload) for f in body_frames] == [4088, 4088, 2064]


def test_unknown_vhost(broker, raw):
    c = raw(handshake=False)
    c.begin()
    c.login()
    c.tune_ok()
    m = c.open("no-such-vhost")
    assert m.name == "connection.close"
    assert m.close_info == (
        530, "NOT_ALLOWED - vhost no-such-vhost not found", 10, 40)
    c.send_method(0, "connection.close-ok")
    assert c.is_closed(5)


def test_client_close(broker, raw):
    c = raw()
    c.open_channel(1)
    c.send_method(0, "connection.close", reply_code=200,
                  reply_text="Goodbye", class_id=0, method_id=0)
    m = c.expect("connection.close-ok", 0)
    assert m.channel == 0
    # The client closes the socket now (RabbitMQ waits for it, up to 30 s);
    # nothing else may arrive in between.
    with pytest.raises((rawamqp.Timeout, rawamqp.Closed)):
        c.read_frame(0.3)


def test_input_after_close_ok_is_discarded_until_the_client_closes(broker,
                                                                   raw, uname):
    # A client may still be writing when its close-ok arrives (amqplib
    # flushes buffered publishes after sending connection.close): the
    # broker reads and drops the rest instead of closing the socket under
    # it, and does nothing with it (RabbitMQ's closed state).
    q = uname("q")
    c = raw()
    c.open_channel(1)
    c.call(1, "queue.declare", queue=q)
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    c.expect("connection.close-ok", 0)
    publish = c.publish_frames(1, "", q, b"x" * 100)
    for _ in range(20):
        c.send(publish * 100)
    c.send(b"garbage that is not a frame\x00\xff" * 100)
    with pytest.raises(rawamqp.Timeout):
        c.read_frame(0.5)
    c.send(publish)  # the socket is still open: no EPIPE / reset
    c.close_socket()
    with broker.raw() as d:
        d.open_channel(1)
        ok = d.call(1, "queue.declare", queue=q, passive=True)
        assert ok.message_count == 0


def test_server_close_waits_for_close_ok_then_closes(broker, raw):
    c = raw()
    c.open_channel(1)
    c.send_method(1, "channel.open")  # second open: a connection error
    assert_connection_close(
        c, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    assert c.is_closed(5)


def test_update_secret(broker, raw):
    c = raw()
    m = c.call(0, "connection.update-secret", new_secret=b"guest",
               reason="token refresh")
    assert m.name == "connection.update-secret-ok"
    c.open_channel(1)
    c.close()


def test_heartbeats(broker):
    """heartbeat=1: the server sends heartbeats while idle (RabbitMQ every
    0.5 s) and drops a client that sends nothing for more than two
    intervals (RabbitMQ: 3 s, no connection.close); a client that sends
    heartbeats stays; heartbeat=0 means no heartbeats at all."""

    def silent_client():
        c = broker.raw(heartbeat=1)
        try:
            t0 = time.monotonic()
            beats = []
            with pytest.raises(rawamqp.Closed):
                while True:
                    f = c.read_frame(6)
                    assert f.type == rawamqp.FRAME_HEARTBEAT, f
                    assert (f.channel, f.payload) == (0, b"")
                    beats.append(time.monotonic() - t0)
            closed_after = time.monotonic() - t0
            assert 1.5 <= closed_after <= 4.5, closed_after
            assert len(beats) >= 2, beats
            assert beats[0] <= 1.3, beats
        finally:
            c.close_socket()

    def beating_client():
        c = broker.raw(heartbeat=1)
        try:
            t0 = time.monotonic()
            beats = 0
            while time.monotonic() - t0 < 4.5:
                c.send_heartbeat()
                try:
                    f = c.read_frame(0.4)
                    assert f.type == rawamqp.FRAME_HEARTBEAT
                    beats += 1
                except rawamqp.Timeout:
                    pass
            assert beats >= 3
            assert c.open_channel(1).name == "channel.open-ok"
            c.close()
        finally:
            c.close_socket()

    def no_heartbeat_client():
        c = broker.raw(heartbeat=0)
        try:
            with pytest.raises(rawamqp.Timeout):
                c.read_frame(2.5)
            assert c.open_channel(1).name == "channel.open-ok"
            c.close()
        finally:
            c.close_socket()

    run_parallel(silent_client, beating_client, no_heartbeat_client)


def test_pika_connects(broker):
    conn = broker.pika(heartbeat=10)
    ch = conn.channel()
    ch.close()
    conn.close()


# -- Warren configuration (RabbitMQ equivalents noted) ------------------------


@pytest.mark.warren_only
def test_configured_tune_values(make_broker):
    # rabbitmq.conf: heartbeat, frame_max, channel_max set the tune offer.
    b = make_broker(extra_conf={"heartbeat": 7, "frame_max": 8192,
                                "channel_max": 16})
    c = b.raw(handshake=False)
    c.begin()
    tune = c.login()
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (16, 8192, 7)
    c.tune_ok()
    assert c.open().name == "connection.open-ok"
    c.open_channel(1)
    payload = rawamqp.encode_method("queue.declare", queue="q" * 200,
                                    arguments={"x-pad": "p" * 8100})
    c.send_frame(rawamqp.FRAME_METHOD, 1, payload)
    assert_connection_close(
        c, 501, "FRAME_ERROR - type 1, all octets = <<>>: "
        "{frame_too_large,%d,8184}" % len(payload), 0, 0)


@pytest.mark.warren_only
def test_configured_frame_max_caps_client(make_broker):
    b = make_broker(extra_conf={"frame_max": 8192})
    run_parallel(_bad_tune(b, frame_max=8193))


@pytest.mark.warren_only
def test_default_user_and_pass(make_broker):
    b = make_broker(extra_conf={"default_user": "wire-admin",
                                "default_pass": "s3cret-pass"})
    c = b.raw(user="wire-admin", password="s3cret-pass")
    c.open_channel(1)
    c.close()
    g = b.raw(handshake=False)
    g.begin()
    m = g.login(user="guest", password="guest")
    assert m.close_info == (403, REFUSED_TEXT % "PLAIN", 0, 0)


def _non_loopback_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


@pytest.mark.warren_only
@pytest.mark.parametrize("loopback_only", [True, False])
def test_guest_loopback_only(make_broker, loopback_only):
    # RabbitMQ: with loopback_users.guest = true, guest logging in from a
    # non-loopback address is refused like a bad password (the log says
    # "user 'guest' can only connect via localhost").
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    b = make_broker(extra_conf={"loopback_users.guest":
                                "true" if loopback_only else "false"},
                    listen="0.0.0.0:0")
    c = rawamqp.Connection(ip, b.port)
    try:
        c.begin()
        m = c.login()
        if loopback_only:
            assert m.close_info == (403, REFUSED_TEXT % "PLAIN", 0, 0)
        else:
            assert m.name == "connection.tune"
    finally:
        c.close_socket()
