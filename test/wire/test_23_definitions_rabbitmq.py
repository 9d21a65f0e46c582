"""Definitions round trip with a real RabbitMQ 3.10.

1. A private RabbitMQ (rabbitmq-local, its own port, node name and data
   directory) gets users with passwords, vhosts, permissions, durable
   exchanges and queues with arguments, bindings, a policy, vhost limits
   (a runtime parameter) and a global parameter, through rabbitmqctl and
   AMQP; `rabbitmqctl export_definitions` writes them out. (Not operator
   policies: RabbitMQ 3.10 exports them in a form its own
   import_definitions refuses.)
2. Warren loads that file at boot (load_definitions) and, in a second
   Warren, through POST /api/definitions; every object is checked over
   HTTP, and the users log in over AMQP with their RabbitMQ passwords.
3. Warren's own export goes back into a freshly reset RabbitMQ with
   `rabbitmqctl import_definitions`, and is checked there.

The RabbitMQ started here is stopped and its directory removed at the
end, whatever happens. Skipped (with the reason) only when
rabbitmq-server is not installed.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile

import pika
import pytest

from test_20_mgmt_api import mgmt_broker, q, rabbit_hash

pytestmark = pytest.mark.warren_only

RMQ_BIN = os.environ.get("RABBITMQ_BIN_DIR", "/usr/lib/rabbitmq/bin")
LOCAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                     "tools", "rabbitmq-local")
LOCAL = os.environ.get("RABBITMQ_LOCAL", os.path.abspath(LOCAL)
                       if os.path.exists(LOCAL)
                       else "/work/shared/tools/rabbitmq-local")

VH = "defs-vh"


def port_free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


class Rabbit:
    def __init__(self, port, workdir):
        self.port = port
        self.dir = os.path.join(workdir, "rabbit")
        self.node = "harness%d@localhost" % port

    def local(self, *args, check=True):
        p = subprocess.run([LOCAL] + list(args) + ["--port", str(self.port),
                                                   "--dir", self.dir],
                           capture_output=True, text=True, timeout=180)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def ctl(self, *args, check=True):
        env = dict(os.environ, RABBITMQ_NODENAME=self.node)
        p = subprocess.run([os.path.join(RMQ_BIN, "rabbitmqctl"), "-n",
                            self.node] + list(args), capture_output=True,
                           text=True, timeout=120, env=env)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def ctl_json(self, *args):
        out = self.ctl(*args, "--formatter", "json", "-q").stdout
        return json.loads(out) if out.strip() else []

    def amqp(self, vhost="/", user="guest", password="guest"):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, vhost,
            pika.PlainCredentials(user, password), connection_attempts=1))


@pytest.fixture(scope="module")
def rabbit():
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs a private Warren")
    if not os.access(os.path.join(RMQ_BIN, "rabbitmq-server"), os.X_OK):
        pytest.skip("rabbitmq-server is not installed (apt-get install "
                    "rabbitmq-server): cannot compare with RabbitMQ")
    if not os.access(LOCAL, os.X_OK):
        pytest.skip("rabbitmq-local helper not found at %s" % LOCAL)
    port = next((p for p in range(5711, 5799)
                 if port_free(p) and port_free(p + 20000)), None)
    assert port, "no free port for a private RabbitMQ"
    work = tempfile.mkdtemp(prefix="warren-rmq-defs-")
    r = Rabbit(port, work)
    try:
        r.local("start", "--mgmt-port", "0")
        yield r
    finally:
        r.local("wipe", check=False)
        shutil.rmtree(work, ignore_errors=True)


def populate(r):
    """Objects of every kind, created the ways operators create them."""
    r.ctl("add_vhost", VH)
    r.ctl("add_user", "app", "app-secret")
    r.ctl("set_user_tags", "app", "management")
    r.ctl("add_user", "ops", "ops-secret")
    r.ctl("set_user_tags", "ops", "administrator", "monitoring")
    r.ctl("set_permissions", "-p", VH, "app", "^app-", ".*", ".*")
    r.ctl("set_permissions", "-p", VH, "guest", ".*", ".*", ".*")
    r.ctl("set_permissions", "-p", VH, "ops", ".*", ".*", ".*")
    r.ctl("set_policy", "-p", VH, "--priority", "2", "--apply-to", "queues",
          "ttl-pol", "^app-", '{"message-ttl": 60000}')
    r.ctl("set_vhost_limits", "-p", VH, '{"max-connections": 50}')
    r.ctl("set_global_parameter", "warren_test", '{"a": [1, 2]}')
    with r.amqp(VH) as c:
        ch = c.channel()
        ch.exchange_declare("app-topic", "topic", durable=True)
        ch.exchange_declare("app-fan", "fanout", durable=True,
                            arguments={"alternate-exchange": "app-ae"})
        ch.exchange_declare("app-ae", "fanout", durable=True)
        ch.queue_declare("app-orders", durable=True,
                         arguments={"x-max-length": 1000,
                                    "x-dead-letter-exchange": "app-ae",
                                    "x-queue-mode": "lazy"})
        ch.queue_declare("app-audit", durable=True)
        ch.queue_bind("app-orders", "app-topic", "orders.*")
        ch.queue_bind("app-audit", "app-topic", "#",
                      arguments={"x-note": "all"})
        ch.exchange_bind("app-fan", "app-topic", "fan.#")
        ch.queue_bind("app-audit", "app-ae", "")


def check_warren(b, api, doc):
    """Everything populate() made, as Warren shows it."""
    users = {u["name"]: u for u in api.ok("GET", "/api/users")}
    assert users["app"]["tags"] == ["management"]
    assert sorted(users["ops"]["tags"]) == ["administrator", "monitoring"]
    assert users["app"]["hashing_algorithm"] == \
        "rabbit_password_hashing_sha256"
    assert VH in [v["name"] for v in api.ok("GET", "/api/vhosts")]
    p = api.ok("GET", "/api/permissions/%s/app" % q(VH))
    assert (p["configure"], p["write"], p["read"]) == ("^app-", ".*", ".*")
    x = api.ok("GET", "/api/exchanges/%s/app-fan" % q(VH))
    assert (x["type"], x["durable"], x["arguments"]) == \
        ("fanout", True, {"alternate-exchange": "app-ae"})
    assert api.ok("GET", "/api/exchanges/%s/app-topic" % q(VH))["type"] == \
        "topic"
    qq = api.ok("GET", "/api/queues/%s/app-orders" % q(VH))
    assert qq["durable"] is True
    assert qq["arguments"] == {"x-max-length": 1000,
                               "x-dead-letter-exchange": "app-ae",
                               "x-queue-mode": "lazy"}
    bs = {(x["source"], x["destination"], x["destination_type"],
           x["routing_key"], json.dumps(x["arguments"], sort_keys=True))
          for x in api.ok("GET", "/api/bindings/" + q(VH))
          if x["source"]}
    assert bs == {("app-topic", "app-orders", "queue", "orders.*", "{}"),
                  ("app-topic", "app-audit", "queue", "#",
                   '{"x-note": "all"}'),
                  ("app-topic", "app-fan", "exchange", "fan.#", "{}"),
                  ("app-ae", "app-audit", "queue", "", "{}")}
    pol = api.ok("GET", "/api/policies/%s/ttl-pol" % q(VH))
    assert (pol["pattern"], pol["definition"], pol["priority"],
            pol["apply-to"]) == ("^app-", {"message-ttl": 60000}, 2,
                                 "queues")
    # RabbitMQ 3.10 exports global parameter values as lists of pairs:
    # kept exactly as given.
    assert api.ok("GET", "/api/vhost-limits/" + q(VH)) == \
        [{"vhost": VH, "value": {"max-connections": 50}}]
    want = [g for g in doc["global_parameters"]
            if g["name"] == "warren_test"][0]["value"]
    assert api.ok("GET", "/api/global-parameters/warren_test")["value"] == \
        want
    # RabbitMQ's password hashes work in Warren, over AMQP and HTTP
    c = pika.BlockingConnection(pika.ConnectionParameters(
        b.host, b.port, VH, pika.PlainCredentials("app", "app-secret"),
        connection_attempts=1))
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("app-topic", "orders.new", b"o1")
    assert ch.basic_get("app-orders", auto_ack=True)[2] == b"o1"
    c.close()
    assert api.as_user("ops", "ops-secret").ok("GET", "/api/whoami")[
        "name"] == "ops"
    assert api.as_user("app", "wrong").get("/api/whoami").status == 401


def args_dict(a):
    """rabbitmqctl's JSON for arguments: [[key, type, value], ...]."""
    if isinstance(a, list):
        return {k: v for k, _, v in a}
    return a


def check_rabbit(r):
    """What Warren exported, as RabbitMQ shows it after the import."""
    users = {u["user"]: u for u in r.ctl_json("list_users")}
    assert "warren-user" in users and "app" in users
    assert users["warren-user"]["tags"] == ["policymaker"]
    vhosts = [v["name"] for v in r.ctl_json("list_vhosts")]
    assert VH in vhosts and "from-warren" in vhosts
    perms = {p["user"]: p for p in r.ctl_json("list_permissions", "-p",
                                               "from-warren")}
    assert (perms["warren-user"]["configure"], perms["warren-user"]["write"],
            perms["warren-user"]["read"]) == ("^w", "w.*", ".*")
    qs = {x["name"]: x for x in r.ctl_json(
        "list_queues", "-p", "from-warren", "name", "durable", "arguments")}
    assert qs["w-queue"]["durable"] is True
    assert args_dict(qs["w-queue"]["arguments"]) == {"x-message-ttl": 5000}
    xs = {x["name"]: x for x in r.ctl_json(
        "list_exchanges", "-p", "from-warren", "name", "type", "durable")}
    assert xs["w-headers"]["type"] == "headers"
    bs = r.ctl_json("list_bindings", "-p", "from-warren", "source_name",
                    "destination_name", "routing_key", "arguments")
    assert any(b["source_name"] == "w-headers" and
               b["destination_name"] == "w-queue" and
               args_dict(b["arguments"]) == {"x-match": "any", "k": "v"}
               for b in bs)
    pols = {p["name"]: p for p in r.ctl_json("list_policies", "-p",
                                             "from-warren")}
    d = pols["w-pol"]["definition"]
    assert (json.loads(d) if isinstance(d, str) else d) == {"max-length": 7}
    lim = r.ctl_json("list_vhost_limits", "-p", "from-warren")
    assert "max-queues" in json.dumps(lim)
    # the round trip kept RabbitMQ's own objects too
    qs = {x["name"]: x for x in r.ctl_json("list_queues", "-p", VH, "name",
                                            "durable")}
    assert qs["app-orders"]["durable"] is True
    # a password set in Warren logs in to RabbitMQ, and one that went
    # RabbitMQ -> Warren -> RabbitMQ still does
    r.amqp("from-warren", "warren-user", "w-pass").close()
    r.amqp(VH, "app", "app-secret").close()


def test_definitions_round_trip_with_rabbitmq(rabbit, make_broker, tmp_path):
    populate(rabbit)
    exported = tmp_path / "rabbit-defs.json"
    rabbit.ctl("export_definitions", str(exported))
    doc = json.loads(exported.read_text())
    assert any(u["name"] == "app" and u["password_hash"]
               for u in doc["users"])

    # 1. load_definitions at boot
    b1, api1 = mgmt_broker(make_broker,
                           {"load_definitions": str(exported)})
    check_warren(b1, api1, doc)

    # 2. POST /api/definitions into a fresh Warren
    b2, api2 = mgmt_broker(make_broker)
    r = api2.request("POST", "/api/definitions",
                     raw_body=exported.read_bytes(),
                     headers={"Content-Type": "application/json"})
    assert r.status == 204, r
    check_warren(b2, api2, doc)

    # 3. Warren's own objects, then its export into a reset RabbitMQ
    api2.ok("PUT", "/api/vhosts/from-warren")
    api2.ok("PUT", "/api/users/warren-user",
            {"password": "w-pass", "tags": "policymaker"})
    api2.ok("PUT", "/api/permissions/from-warren/warren-user",
            {"configure": "^w", "write": "w.*", "read": ".*"})
    api2.ok("PUT", "/api/queues/from-warren/w-queue",
            {"durable": True, "arguments": {"x-message-ttl": 5000}})
    api2.ok("PUT", "/api/exchanges/from-warren/w-headers",
            {"type": "headers", "durable": True})
    api2.ok("POST", "/api/bindings/from-warren/e/w-headers/q/w-queue",
            {"routing_key": "", "arguments": {"x-match": "any", "k": "v"}},
            status=201)
    api2.ok("PUT", "/api/policies/from-warren/w-pol",
            {"pattern": "^w-", "definition": {"max-length": 7}})
    api2.ok("PUT", "/api/vhost-limits/from-warren/max-queues",
            {"value": 10})
    out = tmp_path / "warren-defs.json"
    out.write_bytes(api2.get("/api/definitions").body)

    rabbit.ctl("stop_app")
    rabbit.ctl("reset")
    rabbit.ctl("start_app")
    assert VH not in [v["name"] for v in rabbit.ctl_json("list_vhosts")]
    rabbit.ctl("import_definitions", str(out))
    check_rabbit(rabbit)
