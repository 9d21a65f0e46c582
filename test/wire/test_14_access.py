"""Users, passwords, permissions and vhost limits over AMQP (Warren only:
the broker is set up from a definitions file with load_definitions).

The password hash of "bob" below was made by RabbitMQ 3.10
(rabbitmqctl add_user bob secret; export_definitions): Warren checks it
unchanged. Texts are RabbitMQ's (checked against 3.10.8).
"""

import json
import os
import socket
import subprocess

import pytest

import rawamqp
from wireutil import confirm_select, publish_sync

pytestmark = pytest.mark.warren_only

BOB_HASH = "tPs6KPKvBRBVTIulXmTOkEcXGeQ4/7PHLyOb0gxBOaVzSbHy"

DEFS = {
    "users": [
        {"name": "guest", "password": "guest", "tags": ["administrator"]},
        {"name": "bob", "password_hash": BOB_HASH,
         "hashing_algorithm": "rabbit_password_hashing_sha256",
         "tags": ["monitoring", "management"]},
        {"name": "carol", "password": "pw", "tags": ""},
        {"name": "dave", "password": "pw", "tags": ""},
    ],
    "vhosts": [{"name": "/"}, {"name": "tv"}],
    "permissions": [
        {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*",
         "read": ".*"},
        {"user": "guest", "vhost": "tv", "configure": ".*", "write": ".*",
         "read": ".*"},
        {"user": "bob", "vhost": "tv", "configure": "^b.*", "write": ".*",
         "read": ""},
        {"user": "dave", "vhost": "tv", "configure": ".*", "write": "^a1$",
         "read": ".*"},
    ],
    "parameters": [
        {"vhost": "tv", "component": "vhost-limits", "name": "limits",
         "value": {"max-connections": 3, "max-queues": 5}},
    ],
    "policies": [
        {"vhost": "tv", "name": "ttl", "pattern": "^t", "apply-to": "queues",
         "definition": {"message-ttl": 1000}, "priority": 0},
    ],
}


@pytest.fixture
def access_broker(make_broker, tmp_path):
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(DEFS))
    return make_broker(extra_conf={"load_definitions": str(path)})


def connect(b, user, password, vhost="tv", host="127.0.0.1"):
    c = rawamqp.Connection(host, b.port, 5.0)
    c.handshake(user=user, password=password, vhost=vhost)
    c.open_channel(1)
    return c


def refused(c, method, **kw):
    c.send_method(1, method, **kw)
    m = c.read_method()
    assert m.name == "channel.close", m
    return m.reply_code, m.reply_text


def denied(user, what, name, vhost="tv"):
    return (403, "ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused "
            "for user '%s'" % (what, name, vhost, user))


def test_rabbitmq_password_hash_logs_in(access_broker):
    connect(access_broker, "bob", "secret").close()
    c = rawamqp.Connection("127.0.0.1", access_broker.port, 5.0)
    c.begin()
    m = c.login("bob", "wrong")
    assert m.name == "connection.close" and m.reply_code == 403, m


def test_permissions_at_rabbitmq_check_points(access_broker):
    b = access_broker
    c = connect(b, "bob", "secret")
    c.call(1, "queue.declare", queue="bq")          # configure ^b.* ok
    c.call(1, "exchange.declare", exchange="bx", type="direct")
    assert refused(c, "queue.declare", queue="xq") == denied(
        "bob", "queue", "xq")
    c = connect(b, "bob", "secret")
    confirm_select(c, 1)
    publish_sync(c, 1, "amq.direct", "k", b"x")     # write .* ok
    for method, kw in (("basic.get", {"queue": "bq"}),
                       ("basic.consume", {"queue": "bq"}),
                       ("queue.purge", {"queue": "bq"})):
        c = connect(b, "bob", "secret")
        assert refused(c, method, **kw) == denied("bob", "queue", "bq")
    c = connect(b, "bob", "secret")                 # read on the source
    assert refused(c, "queue.bind", queue="bq", exchange="amq.direct",
                   routing_key="k") == denied("bob", "exchange",
                                              "amq.direct")
    c = connect(b, "bob", "secret")
    c.call(1, "queue.delete", queue="bq")           # configure ok


def test_publish_needs_write(access_broker):
    c = connect(access_broker, "dave", "pw")
    c.call(1, "exchange.declare", exchange="a1", type="fanout")
    confirm_select(c, 1)
    publish_sync(c, 1, "a1", "", b"allowed")
    c.publish(1, "amq.direct", "k", b"refused")
    m = c.read_method()
    while m.name == "basic.ack":  # the confirm of the allowed one
        m = c.read_method()
    assert m.name == "channel.close", m
    assert m.close_info == denied("dave", "exchange", "amq.direct") + (60, 40)


def test_vhost_without_permissions_is_closed(access_broker):
    b = access_broker
    # carol has no permission in tv at all: the vhost is closed to her.
    cc = rawamqp.Connection("127.0.0.1", b.port, 5.0)
    cc.begin()
    assert cc.login("carol", "pw").name == "connection.tune"
    cc.tune_ok()
    m = cc.open("tv")
    assert m.name == "connection.close"
    assert (m.reply_code, m.reply_text) == (
        530, "NOT_ALLOWED - access to vhost 'tv' refused for user 'carol'")


def test_vhost_limits(access_broker):
    b = access_broker
    c = connect(b, "guest", "guest")
    for i in range(5):
        c.call(1, "queue.declare", queue="lq%d" % i)
    assert refused(c, "queue.declare", queue="lq5") == (
        406, "PRECONDITION_FAILED - cannot declare queue 'lq5': queue limit "
        "in vhost 'tv' (5) is reached")
    conns = [connect(b, "guest", "guest") for _ in range(2)]
    extra = rawamqp.Connection("127.0.0.1", b.port, 5.0)
    extra.begin()
    extra.login("guest", "guest")
    extra.tune_ok()
    m = extra.open("tv")
    assert (m.reply_code, m.reply_text) == (
        530, "NOT_ALLOWED - access to vhost 'tv' refused for user 'guest': "
        "connection limit (3) is reached")
    for x in conns:
        x.close()


def non_loopback_address():
    """An IPv4 address of this machine that is not 127.x, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"],
                             capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    return None


def test_guest_only_from_loopback(make_broker, tmp_path):
    addr = non_loopback_address()
    assert addr, "this test needs a non-loopback IPv4 address"
    b = make_broker(listen="0.0.0.0:0")
    c = rawamqp.Connection(addr, b.port, 5.0)
    c.begin()
    m = c.login("guest", "guest")
    assert (m.reply_code, m.reply_text) == (
        403, "ACCESS_REFUSED - Login was refused using authentication "
        "mechanism PLAIN. For details see the broker logfile.")
    assert b.wait_for_line("can only connect via localhost")
    # The same user over loopback is fine.
    rawamqp.connect("127.0.0.1", b.port).close()


def test_definitions_survive_restart(access_broker):
    b = access_broker
    b.extra_conf.pop("load_definitions")
    b.restart()
    connect(b, "bob", "secret").close()
    c = connect(b, "bob", "secret")
    assert refused(c, "queue.declare", queue="xq") == denied(
        "bob", "queue", "xq")
