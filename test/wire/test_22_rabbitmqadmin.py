"""Debian's rabbitmqadmin (the CLI shipped in rabbitmq-server's management
plugin) against Warren: list, declare, delete, publish, get, purge, close,
export and import, each checked through AMQP or the HTTP API.
"""

import glob
import json
import os
import subprocess

import pika
import pytest

from test_20_mgmt_api import http_port, mgmt_broker, q

pytestmark = pytest.mark.warren_only

CANDIDATES = sorted(glob.glob(
    "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/"
    "rabbitmq_management-*/priv/www/cli/rabbitmqadmin"))
ADMIN = os.environ.get("RABBITMQADMIN") or (CANDIDATES[-1] if CANDIDATES
                                             else None)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs a private Warren")
    if not ADMIN or not os.path.exists(ADMIN):
        pytest.skip("rabbitmqadmin not found (apt-get install "
                    "rabbitmq-server)")
    b = conftest.new_warren(str(tmp_path_factory.mktemp("admin")),
                            {"management.tcp.port": 0,
                             "management.tcp.ip": "127.0.0.1"})
    from test_20_mgmt_api import Mgmt
    yield b, Mgmt(http_port(b))
    conftest.stop_checked(b)


def admin(env, *args, vhost=None, user="guest", password="guest",
          check=True):
    b, api = env
    cmd = ["/usr/bin/python3", ADMIN, "-H", "127.0.0.1", "-P", str(api.port),
           "-u", user, "-p", password]
    if vhost:
        cmd += ["-V", vhost]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p


def admin_json(env, *args, **kw):
    return json.loads(admin(env, "-f", "raw_json", *args, **kw).stdout)


def pika_conn(b, vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        b.host, b.port, vhost, connection_attempts=1))


def test_declare_list_delete_queue_exchange_binding(env):
    b, api = env
    admin(env, "declare", "queue", "name=ra-q", "durable=true",
          'arguments={"x-max-length": 10}')
    admin(env, "declare", "exchange", "name=ra-x", "type=topic")
    admin(env, "declare", "binding", "source=ra-x", "destination=ra-q",
          "routing_key=a.*")
    admin(env, "declare", "exchange", "name=ra-x2", "type=fanout")
    admin(env, "declare", "binding", "source=ra-x", "destination=ra-x2",
          "destination_type=exchange", "routing_key=b.#")
    with pika_conn(b) as c:
        ch = c.channel()
        ch.queue_declare("ra-q", passive=True)
        ch.exchange_declare("ra-x", "topic", passive=True)
        ch.confirm_delivery()
        ch.basic_publish("ra-x", "a.b", b"routed")
        assert ch.basic_get("ra-q", auto_ack=True)[2] == b"routed"
    qs = admin_json(env, "list", "queues")
    x = [y for y in qs if y["name"] == "ra-q"][0]
    assert x["durable"] is True and x["arguments"] == {"x-max-length": 10}
    text = admin(env, "list", "queues").stdout
    assert "| ra-q " in text and "messages" in text
    xs = {y["name"]: y["type"] for y in admin_json(env, "list", "exchanges")}
    assert xs["ra-x"] == "topic" and xs["amq.direct"] == "direct"
    bs = admin_json(env, "list", "bindings")
    assert {(y["source"], y["destination"], y["routing_key"],
             y["destination_type"]) for y in bs} >= {
        ("", "ra-q", "ra-q", "queue"), ("ra-x", "ra-q", "a.*", "queue"),
        ("ra-x", "ra-x2", "b.#", "exchange")}
    pk = [y["properties_key"] for y in bs if y["routing_key"] == "a.*"][0]
    admin(env, "delete", "binding", "source=ra-x", "destination_type=queue",
          "destination=ra-q", "properties_key=" + pk)
    admin(env, "delete", "binding", "source=ra-x",
          "destination_type=exchange", "destination=ra-x2",
          "properties_key=b.%23")
    bs = admin_json(env, "list", "bindings")
    assert [y for y in bs if y["source"] == "ra-x"] == []
    admin(env, "delete", "exchange", "name=ra-x")
    admin(env, "delete", "exchange", "name=ra-x2")
    admin(env, "delete", "queue", "name=ra-q")
    assert api.get("/api/queues/%2F/ra-q").status == 404
    assert api.get("/api/exchanges/%2F/ra-x").status == 404
    p = admin(env, "delete", "queue", "name=ra-q", check=False)
    assert p.returncode != 0 and "Not found" in p.stderr


def test_publish_get_purge(env, tmp_path):
    b, api = env
    admin(env, "declare", "queue", "name=ra-pg", "durable=false")
    admin(env, "publish", "routing_key=ra-pg", "payload=hello",
          'properties={"delivery_mode": 2, "headers": {"h": "v"}}')
    admin(env, "publish", "exchange=amq.default", "routing_key=ra-pg",
          "payload=second")
    assert api.ok("GET", "/api/queues/%2F/ra-pg")["messages"] == 2
    got = admin_json(env, "get", "queue=ra-pg", "count=2")
    assert [m["payload"] for m in got] == ["hello", "second"]
    assert got[0]["properties"]["headers"] == {"h": "v"}
    text = admin(env, "get", "queue=ra-pg").stdout
    assert "hello" in text and "True" in text  # requeued: redelivered
    out = tmp_path / "payload.bin"
    admin(env, "get", "queue=ra-pg", "ackmode=ack_requeue_false",
          "payload_file=%s" % out)
    assert out.read_bytes() == b"hello"
    with pika_conn(b) as c:
        m = c.channel().basic_get("ra-pg", auto_ack=True)
        assert m[2] == b"second"
    admin(env, "publish", "routing_key=ra-pg", "payload=x")
    admin(env, "purge", "queue", "name=ra-pg")
    assert api.ok("GET", "/api/queues/%2F/ra-pg")["messages"] == 0
    admin(env, "delete", "queue", "name=ra-pg")


def test_vhosts_users_permissions(env):
    b, api = env
    admin(env, "declare", "vhost", "name=ra-vh")
    admin(env, "declare", "user", "name=ra-user", "password=ra-pw",
          "tags=management")
    admin(env, "declare", "permission", "vhost=ra-vh", "user=ra-user",
          "configure=.*", "write=.*", "read=.*")
    assert "ra-vh" in [v["name"] for v in admin_json(env, "list", "vhosts")]
    users = {u["name"]: u for u in admin_json(env, "list", "users")}
    assert users["ra-user"]["tags"] == ["management"]
    perms = admin_json(env, "list", "permissions")
    assert {"user": "ra-user", "vhost": "ra-vh", "configure": ".*",
            "write": ".*", "read": ".*"} in perms
    with pika.BlockingConnection(pika.ConnectionParameters(
            b.host, b.port, "ra-vh",
            pika.PlainCredentials("ra-user", "ra-pw"))) as c:
        c.channel().queue_declare("ra-in-vh")
        qs = admin_json(env, "list", "queues", vhost="ra-vh",
                        user="ra-user", password="ra-pw")
        assert [x["name"] for x in qs] == ["ra-in-vh"]
        conns = admin_json(env, "list", "connections")
        assert [x["user"] for x in conns] == ["ra-user"]
        assert admin_json(env, "list", "channels")[0]["user"] == "ra-user"
    admin(env, "delete", "permission", "vhost=ra-vh", "user=ra-user")
    p = admin(env, "list", "queues", vhost="ra-vh", user="ra-user",
              password="ra-pw", check=False)
    assert p.returncode != 0 and "Access refused" in p.stderr
    admin(env, "delete", "user", "name=ra-user")
    admin(env, "delete", "vhost", "name=ra-vh")
    assert "ra-vh" not in [v["name"] for v in
                           admin_json(env, "list", "vhosts")]
    assert api.get("/api/users/ra-user").status == 404


def test_close_connection_and_consumers(env):
    b, api = env
    c = pika_conn(b)
    try:
        ch = c.channel()
        ch.queue_declare("ra-cons", exclusive=True)
        ch.basic_consume("ra-cons", lambda *a: None, consumer_tag="ra-tag")
        cons = admin_json(env, "list", "consumers")
        assert [x["consumer_tag"] for x in cons] == ["ra-tag"]
        name = admin_json(env, "list", "connections")[0]["name"]
        admin(env, "close", "connection", "name=" + name)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(2)
            c.process_data_events(2)
        assert e.value.reply_code == 320
        assert e.value.reply_text == \
            "CONNECTION_FORCED - Closed via management plugin"
    finally:
        if c.is_open:
            c.close()


def test_policies_parameters_limits_nodes_overview(env):
    b, api = env
    admin(env, "declare", "policy", "name=ra-pol", "pattern=^ra-",
          'definition={"max-length": 5}', "priority=3",
          "apply-to=queues")
    pols = admin_json(env, "list", "policies")
    assert {"vhost": "/", "name": "ra-pol", "pattern": "^ra-",
            "definition": {"max-length": 5}, "priority": 3,
            "apply-to": "queues"} in pols
    admin(env, "delete", "policy", "name=ra-pol")
    assert admin_json(env, "list", "policies") == []
    admin(env, "declare", "parameter", "component=federation-upstream",
          "name=up", 'value={"uri": "amqp://x"}')
    assert admin_json(env, "list", "parameters")[0]["value"] == \
        {"uri": "amqp://x"}
    admin(env, "delete", "parameter", "component=federation-upstream",
          "name=up")
    admin(env, "declare", "vhost_limit", "vhost=/", "name=max-queues",
          "value=1000")
    assert admin_json(env, "list", "vhost_limits") == \
        [{"vhost": "/", "value": {"max-queues": 1000}}]
    admin(env, "delete", "vhost_limit", "vhost=/", "name=max-queues")
    nodes = admin_json(env, "list", "nodes")
    assert len(nodes) == 1 and nodes[0]["mem_used"] > 0
    text = admin(env, "show", "overview").stdout
    assert "3.10.8" in text and "queue_totals.messages" in text


def test_export_import(env, tmp_path, make_broker):
    b, api = env
    admin(env, "declare", "queue", "name=ra-exp", "durable=true")
    admin(env, "declare", "exchange", "name=ra-expx", "type=direct")
    admin(env, "declare", "binding", "source=ra-expx", "destination=ra-exp",
          "routing_key=k")
    path = tmp_path / "defs.json"
    admin(env, "export", str(path))
    defs = json.loads(path.read_text())
    assert "ra-exp" in [x["name"] for x in defs["queues"]]
    vpath = tmp_path / "vdefs.json"
    admin(env, "export", str(vpath), vhost="/")
    assert "users" not in json.loads(vpath.read_text())
    b2, api2 = mgmt_broker(make_broker)
    admin((b2, api2), "import", str(path))
    assert api2.ok("GET", "/api/queues/%2F/ra-exp")["durable"] is True
    assert [x["routing_key"] for x in
            api2.ok("GET", "/api/bindings/%2F/e/ra-expx/q/ra-exp")] == ["k"]
    api2.ok("PUT", "/api/vhosts/copy")
    admin((b2, api2), "import", str(vpath), vhost="copy")
    assert api2.ok("GET", "/api/queues/copy/ra-exp")["durable"] is True
    for name in ("ra-exp",):
        admin(env, "delete", "queue", "name=" + name)
    admin(env, "delete", "exchange", "name=ra-expx")
