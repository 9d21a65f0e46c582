"""The management HTTP API (RabbitMQ's rabbitmq_management, port 15672):
every endpoint against real objects, created through AMQP and checked over
HTTP and the other way round; auth and tags; list queries; publish and
get; health checks; connection close; vhost deletion; definitions.

Expected paths, status codes, headers, JSON field names and error texts
were taken from RabbitMQ 3.10.8 with the management plugin (see
RABBITMQ-NOTES.md); properties_key hashes were computed by RabbitMQ
itself for the same bindings.

This module also holds the helpers the other mgmt test files import:
Mgmt (an HTTP client on urllib), http_port(broker), mgmt_broker(...).
"""

import base64
import hashlib
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pytest

import conftest
import rawamqp

MGMT_CONF = {"management.tcp.port": 0, "management.tcp.ip": "127.0.0.1"}
HTTP_RE = r"listening on (\S+):(\d+) \(http\)"

pytestmark = pytest.mark.warren_only


# ---------------------------------------------------------------------------
# helpers shared with test_21/22/23
# ---------------------------------------------------------------------------


def http_port(broker):
    """The management port, from the broker's log line."""
    line = broker.wait_for_line(HTTP_RE, timeout=10)
    assert line, "no 'listening on ... (http)' line:\n" + broker.stderr_text()
    return int(re.search(HTTP_RE, line).group(2))


def q(name):
    """A path segment (vhost '/' is %2F)."""
    return urllib.parse.quote(name, safe="")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Mgmt:
    """A minimal client: mgmt.get('/api/queues') -> Response."""

    def __init__(self, port, user="guest", password="guest",
                 host="127.0.0.1"):
        self.base = "http://%s:%d" % (host, port)
        self.port = port
        self.user = user
        self.password = password

    def as_user(self, user, password):
        return Mgmt(self.port, user, password)

    def request(self, method, path, body=None, headers=None, auth=True,
                raw_body=None):
        data = raw_body
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method, headers=hdrs)
        if auth:
            token = base64.b64encode(
                ("%s:%s" % (self.user, self.password)).encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Response(resp.status,
                                {k.lower(): v for k, v in resp.getheaders()},
                                resp.read())
        except urllib.error.HTTPError as e:
            return Response(e.code,
                            {k.lower(): v for k, v in e.headers.items()},
                            e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body if body is not None else {},
                            **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body if body is not None else {},
                            **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, body=None, status=None):
        """Request that must succeed; returns the parsed body or None."""
        r = self.request(method, path, body)
        want = status or {"GET": 200, "POST": 200}.get(method, (201, 204))
        assert (r.status in want if isinstance(want, tuple)
                else r.status == want), (method, path, r)
        return r.json if r.body else None


def mgmt_broker(make_broker, extra=None, **kw):
    """A private Warren with the management API on an ephemeral port.
    Returns (broker, Mgmt for guest)."""
    conf = dict(MGMT_CONF)
    conf.update(extra or {})
    b = make_broker(conf, **kw)
    return b, Mgmt(http_port(b))


def rabbit_hash(password, salt=b"\x01\x02\x03\x04"):
    """rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ pw))."""
    return base64.b64encode(
        salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def wait_until(fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------
# one broker for most of this file
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    if conftest.external_broker() is not None:
        pytest.skip("needs a private Warren")
    b = conftest.new_warren(str(tmp_path_factory.mktemp("mgmt")), MGMT_CONF)
    yield b
    conftest.stop_checked(b)


@pytest.fixture(scope="module")
def api(mb):
    return Mgmt(http_port(mb))


@pytest.fixture
def vh(api, request):
    """A fresh vhost (guest has full permissions, as its creator)."""
    name = "vh-" + re.sub(r"\W+", "-", request.node.name)[:40]
    assert api.put("/api/vhosts/" + q(name)).status == 201
    yield name
    api.delete("/api/vhosts/" + q(name))


def amqp(mb, vhost="/", user="guest", password="guest"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        mb.host, mb.port, vhost, pika.PlainCredentials(user, password),
        connection_attempts=1))


# ---------------------------------------------------------------------------
# listener, overview, node
# ---------------------------------------------------------------------------


def test_listener_logs_port_and_serves(mb, api):
    assert api.port != 0
    r = api.get("/api/overview")
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    assert r.header("cache-control") == "no-cache"
    o = r.json
    assert o["product_name"] == "Warren"
    assert o["rabbitmq_version"] == "3.10.8"
    assert o["management_version"] == "3.10.8"
    for k in ("queue_totals", "object_totals", "message_stats", "listeners",
              "node", "cluster_name", "exchange_types", "contexts"):
        assert k in o
    protos = {(l["protocol"], l["port"]) for l in o["listeners"]}
    assert ("amqp", mb.port) in protos and ("http", api.port) in protos
    assert set(o["object_totals"]) == {"channels", "connections",
                                       "consumers", "exchanges", "queues"}


def test_whoami_cluster_name_extensions(api):
    assert api.ok("GET", "/api/whoami") == {"name": "guest",
                                            "tags": ["administrator"]}
    assert api.ok("GET", "/api/extensions") == []
    name = api.ok("GET", "/api/cluster-name")["name"]
    assert name
    api.ok("PUT", "/api/cluster-name", {"name": "mgmt-test-cluster"})
    assert api.ok("GET", "/api/cluster-name") == {"name": "mgmt-test-cluster"}
    api.ok("PUT", "/api/cluster-name", {"name": name})


def test_nodes(mb, api):
    nodes = api.ok("GET", "/api/nodes")
    assert len(nodes) == 1
    n = nodes[0]
    assert n["running"] is True and n["type"] == "disc"
    assert n["mem_used"] > 1 << 20
    assert n["mem_limit"] > n["mem_used"]
    assert n["mem_alarm"] is False and n["disk_free_alarm"] is False
    assert n["disk_free"] > 0 and n["disk_free_limit"] == 50000000
    assert n["fd_used"] > 0 and n["fd_total"] >= n["fd_used"]
    assert n["sockets_used"] >= 1 and n["uptime"] >= 0
    assert n["os_pid"] == str(mb.pid)
    one = api.ok("GET", "/api/nodes/" + q(n["name"]))
    assert one["name"] == n["name"]
    assert api.get("/api/nodes/nope@nowhere").status == 404


def test_metrics_text(mb, api):
    with amqp(mb) as c:
        ch = c.channel()
        ch.queue_declare("metrics-q")
        try:
            r = api.get("/metrics", auth=False)
            assert r.status == 200
            assert r.header("content-type").startswith("text/plain")
            text = r.body.decode()
            m = re.search(r"^rabbitmq_queues (\d+)", text, re.M)
            assert m and int(m.group(1)) >= 1
            assert re.search(r"^rabbitmq_connections 1$", text, re.M)
            assert "rabbitmq_build_info{" in text
        finally:
            ch.queue_delete("metrics-q")


# ---------------------------------------------------------------------------
# authentication and tags
# ---------------------------------------------------------------------------


def test_auth_missing_wrong_and_tags(api, vh):
    r = api.get("/api/overview", auth=False)
    assert r.status == 401 and r.body == b""
    assert r.header("www-authenticate") == 'Basic realm="RabbitMQ Management"'
    r = api.as_user("guest", "wrong").get("/api/overview")
    assert r.status == 401
    assert r.json == {"error": "not_authorized", "reason": "Login failed"}
    assert r.header("www-authenticate") == 'Basic realm="RabbitMQ Management"'
    r = api.as_user("nobody", "x").get("/api/overview")
    assert r.status == 401 and r.json["reason"] == "Login failed"

    for user, tags in (("t-none", ""), ("t-mon", "monitoring"),
                       ("t-mgmt", "management"), ("t-pol", "policymaker")):
        assert api.put("/api/users/" + user,
                       {"password": "pw", "tags": tags}).status == 201
    try:
        r = api.as_user("t-none", "pw").get("/api/overview")
        assert r.status == 401
        assert r.json == {"error": "not_authorised",
                          "reason": "Not management user"}
        mon = api.as_user("t-mon", "pw")
        mgmt = api.as_user("t-mgmt", "pw")
        pol = api.as_user("t-pol", "pw")
        assert mon.get("/api/nodes").status == 200
        r = mgmt.get("/api/nodes")
        assert r.status == 401 and r.json["reason"] == "Not monitor user"
        r = mon.put("/api/vhosts/x")
        assert r.status == 401 and r.json["reason"] == "Not administrator user"
        assert mgmt.get("/api/users").json["reason"] == \
            "Not administrator user"
        assert mon.ok("GET", "/api/whoami") == {"name": "t-mon",
                                                "tags": ["monitoring"]}
        # management: only its vhosts
        names = [v["name"] for v in mgmt.ok("GET", "/api/vhosts")]
        assert names == []
        r = mgmt.get("/api/queues/" + q(vh))
        assert r.status == 401
        assert r.json == {"error": "not_authorised", "reason":
                          "User not authorised to access virtual host"}
        api.ok("PUT", "/api/permissions/%s/t-mgmt" % q(vh),
               {"configure": "^own-", "write": ".*", "read": ".*"})
        names = [v["name"] for v in mgmt.ok("GET", "/api/vhosts")]
        assert names == [vh]
        assert mgmt.put("/api/queues/%s/own-q" % q(vh)).status == 201
        r = mgmt.put("/api/queues/%s/other-q" % q(vh))
        assert r.status == 401
        assert r.json == {"error": "not_authorised",
                          "reason": "Access refused."}
        assert [x["name"] for x in mgmt.ok("GET", "/api/queues")] == \
            ["own-q"]
        # monitoring sees every vhost
        assert vh in [v["name"] for v in mon.ok("GET", "/api/vhosts")]
        # policymaker: policies in its vhosts only
        r = pol.put("/api/policies/%s/p" % q(vh),
                    {"pattern": ".*", "definition": {"max-length": 1}})
        assert r.status == 401
        api.ok("PUT", "/api/permissions/%s/t-pol" % q(vh),
               {"configure": ".*", "write": ".*", "read": ".*"})
        assert pol.put("/api/policies/%s/p" % q(vh),
                       {"pattern": ".*",
                        "definition": {"max-length": 1}}).status == 201
        r = mgmt.put("/api/policies/%s/p2" % q(vh),
                     {"pattern": ".*", "definition": {}})
        assert r.status == 401 and r.json["reason"] == "Not policymaker user"
        assert len(mgmt.ok("GET", "/api/policies/" + q(vh))) == 1
    finally:
        for user in ("t-none", "t-mon", "t-mgmt", "t-pol"):
            api.delete("/api/users/" + user)


def test_loopback_user_refused_from_remote(make_broker):
    """guest is in loopback_users: from another address of this machine
    it gets RabbitMQ's 401 "User can only log in via localhost"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent
        addr = s.getsockname()[0]
    except OSError:
        addr = "127.0.0.1"
    finally:
        s.close()
    if addr.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    b, api = mgmt_broker(make_broker, {"management.tcp.ip": "0.0.0.0"})
    api.ok("PUT", "/api/users/remote", {"password": "pw",
                                        "tags": "administrator"})
    remote = Mgmt(api.port, host=addr)
    r = remote.get("/api/whoami")
    assert r.status == 401
    assert r.json == {"error": "not_authorised",
                      "reason": "User can only log in via localhost"}
    assert remote.as_user("remote", "pw").get("/api/whoami").status == 200


# ---------------------------------------------------------------------------
# vhosts, users, permissions
# ---------------------------------------------------------------------------


def test_vhost_crud(mb, api):
    name = "crud-vh"
    assert api.put("/api/vhosts/" + name,
                   {"description": "d", "tags": "a,b"}).status == 201
    v = api.ok("GET", "/api/vhosts/" + name)
    assert v["name"] == name and v["description"] == "d"
    assert v["tags"] == ["a", "b"]
    assert v["metadata"] == {"description": "d", "tags": ["a", "b"]}
    assert v["tracing"] is False and v["messages"] == 0
    assert api.put("/api/vhosts/" + name, {"description": "e"}).status == 204
    assert api.ok("GET", "/api/vhosts/" + name)["description"] == "e"
    # the creator got full permissions
    p = api.ok("GET", "/api/permissions/%s/guest" % name)
    assert (p["configure"], p["write"], p["read"]) == (".*", ".*", ".*")
    with amqp(mb, name) as c:
        c.channel().queue_declare("in-new-vhost")
    assert [x["name"] for x in api.ok("GET", "/api/queues/" + name)] == \
        ["in-new-vhost"]
    assert api.delete("/api/vhosts/" + name).status == 204
    assert api.get("/api/vhosts/" + name).status == 404
    assert api.delete("/api/vhosts/" + name).status == 404
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        amqp(mb, name)
    assert "/" in [v["name"] for v in api.ok("GET", "/api/vhosts")]


def test_vhost_delete_closes_its_connections(mb, api, vh):
    c = mb.raw(vhost=vh)
    other = mb.raw()
    try:
        c.open_channel(1)
        c.call(1, "queue.declare", queue="doomed", durable=True)
        assert api.delete("/api/vhosts/" + q(vh)).status == 204
        m = c.expect_connection_close(timeout=5)
        assert m.close_info == (320, "CONNECTION_FORCED - vhost '%s' is "
                                "deleted" % vh, 0, 0)
        # the other vhost's connection is untouched
        other.open_channel(1)
        assert api.get("/api/queues/%s/doomed" % q(vh)).status == 404
    finally:
        c.close_socket()
        other.close_socket()
    # the data directory is gone with it
    assert not os.path.exists(os.path.join(mb.data_dir, "vhosts", vh))


def test_users_and_permissions(mb, api, vh):
    assert api.put("/api/users/alice", {"password": "s3cret",
                                        "tags": "management"}).status == 201
    try:
        u = api.ok("GET", "/api/users/alice")
        assert u["name"] == "alice" and u["tags"] == ["management"]
        assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        raw = base64.b64decode(u["password_hash"])
        assert len(raw) == 36 and \
            hashlib.sha256(raw[:4] + b"s3cret").digest() == raw[4:]
        assert "alice" in [x["name"] for x in
                           api.ok("GET", "/api/users/without-permissions")]
        # no permission yet: AMQP login to the vhost is refused (530)
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            amqp(mb, vh, "alice", "s3cret")
        assert api.put("/api/permissions/%s/alice" % q(vh),
                       {"configure": ".*", "write": ".*",
                        "read": ".*"}).status == 201
        assert api.put("/api/permissions/%s/alice" % q(vh),
                       {"configure": "^a", "write": ".*",
                        "read": ".*"}).status == 204
        p = api.ok("GET", "/api/permissions/%s/alice" % q(vh))
        assert p == {"user": "alice", "vhost": vh, "configure": "^a",
                     "write": ".*", "read": ".*"}
        assert p in api.ok("GET", "/api/users/alice/permissions")
        assert p in api.ok("GET", "/api/vhosts/%s/permissions" % q(vh))
        assert p in api.ok("GET", "/api/permissions")
        with amqp(mb, vh, "alice", "s3cret") as c:
            c.channel().queue_declare("a-queue")
        # a password hash in RabbitMQ's format
        api.ok("PUT", "/api/users/alice",
               {"password_hash": rabbit_hash("other"), "tags": ""})
        with amqp(mb, vh, "alice", "other"):
            pass
        r = api.put("/api/permissions/%s/alice" % q(vh),
                    {"configure": "(", "write": ".*", "read": ".*"})
        assert r.status == 400 and r.json["error"] == "bad_request"
        r = api.put("/api/permissions/%s/alice" % q(vh), {"configure": ".*"})
        assert r.status == 400
        assert r.json["reason"] == "[{key_missing,write},{key_missing,read}]"
        assert api.put("/api/permissions/%s/nobody" % q(vh),
                       {"configure": ".*", "write": ".*",
                        "read": ".*"}).status == 404
        assert api.delete("/api/permissions/%s/alice" % q(vh)).status == 204
        assert api.get("/api/permissions/%s/alice" % q(vh)).status == 404
    finally:
        assert api.delete("/api/users/alice").status == 204
    assert api.get("/api/users/alice").status == 404
    assert api.delete("/api/users/alice").status == 404


# ---------------------------------------------------------------------------
# exchanges, queues, bindings
# ---------------------------------------------------------------------------


def test_exchanges(mb, api, vh):
    base = "/api/exchanges/" + q(vh)
    assert api.put(base + "/hx", {"type": "topic", "durable": True,
                                  "arguments": {"alternate-exchange":
                                                "ae"}}).status == 201
    assert api.put(base + "/hx", {"type": "topic", "arguments":
                                  {"alternate-exchange": "ae"}}).status == 204
    x = api.ok("GET", base + "/hx")
    assert (x["name"], x["vhost"], x["type"], x["durable"], x["auto_delete"],
            x["internal"]) == ("hx", vh, "topic", True, False, False)
    assert x["arguments"] == {"alternate-exchange": "ae"}
    r = api.put(base + "/hx", {"type": "direct"})
    assert r.status == 400
    assert r.json["reason"] == ("inequivalent arg 'type' for exchange 'hx' "
                                "in vhost '%s': received 'direct' but "
                                "current is 'topic'" % vh)
    assert api.put(base + "/bad", {"type": "bogus"}).json == {
        "error": "bad_request", "reason": "unknown exchange type 'bogus'"}
    assert api.put(base + "/bad", {"durable": "yes"}).json == {
        "error": "bad_request", "reason": ["not_boolean", "yes"]}
    with amqp(mb, vh) as c:
        ch = c.channel()
        ch.exchange_declare("hx", "topic", passive=True)
        ch.exchange_declare("ax", "fanout", durable=False, auto_delete=True)
        ch.queue_declare("xq")
        ch.queue_bind("xq", "hx", "k.#")
        names = [e["name"] for e in api.ok("GET", base)]
        assert names == sorted(names) and {"", "amq.direct", "ax",
                                           "hx"} <= set(names)
        r = api.delete(base + "/hx?if-unused=true")
        assert r.status == 400
        assert r.json["reason"] == "exchange 'hx' in vhost '%s' in use" % vh
        assert api.delete(base + "/hx").status == 204
        assert api.get(base + "/hx").status == 404
        assert api.delete(base + "/hx").status == 404
        d = api.ok("GET", base + "/amq.default")
        assert d["name"] == "" and d["type"] == "direct"
        r = api.delete(base + "/amq.direct")
        assert r.status == 401 and r.json["reason"] == "Access refused."
    # an auto-delete exchange that never had a binding stays (RabbitMQ)
    assert "ax" in [e["name"] for e in api.ok("GET", "/api/exchanges")
                    if e["vhost"] == vh]


def test_queues_counts_and_rates(mb, api, vh):
    base = "/api/queues/" + q(vh)
    assert api.put(base + "/hq", {"durable": True, "arguments":
                                  {"x-max-length": 100}}).status == 201
    assert api.put(base + "/hq", {"durable": True, "arguments":
                                  {"x-max-length": 100}}).status == 204
    r = api.put(base + "/hq", {"durable": False})
    assert r.status == 400
    assert r.json["reason"] == ("inequivalent arg 'durable' for queue 'hq' "
                                "in vhost '%s': received 'false' but "
                                "current is 'true'" % vh)
    r = api.put(base + "/amq.nope", {})
    assert r.status == 401 and r.json["reason"] == "Access refused."
    with amqp(mb, vh) as c:
        ch = c.channel()
        ch.queue_declare("hq", passive=True)
        ch.confirm_delivery()
        for i in range(10):
            ch.basic_publish("", "hq", b"m%d" % i)
        ch.basic_qos(prefetch_count=3)
        got = []
        ch.basic_consume("hq", lambda *a: got.append(a), consumer_tag="ct-1")
        wait_until(lambda: c.process_data_events(0.05) or len(got) >= 3)
        assert len(got) == 3
        x = api.ok("GET", base + "/hq")
        assert (x["messages"], x["messages_ready"],
                x["messages_unacknowledged"], x["consumers"]) == (10, 7, 3, 1)
        assert x["durable"] is True and x["exclusive"] is False
        assert x["arguments"] == {"x-max-length": 100}
        assert x["state"] == "running" and x["type"] == "classic"
        assert x["memory"] > 0 and x["node"]
        assert x["message_stats"]["publish"] == 10
        assert x["message_stats"]["deliver_get"] == 3
        assert x["consumer_details"][0]["consumer_tag"] == "ct-1"
        assert x["consumer_details"][0]["prefetch_count"] == 3
        for m in got:
            ch.basic_ack(m[1].delivery_tag)
        # rates: publish more, then wait for a sample (every 5 s)
        for i in range(20):
            ch.basic_publish("", "hq", b"r")

        def rated():
            c.process_data_events(0)
            s = api.ok("GET", base + "/hq")["message_stats"]
            return s["publish_details"]["rate"] > 0 and \
                s["ack_details"]["rate"] >= 0 and s
        s = wait_until(rated, timeout=30, interval=0.3)
        assert s, "no publish rate within 30 s (samples every 5 s)"
        assert s["publish"] == 30 and s["ack"] >= 3
        o = api.ok("GET", "/api/overview")
        assert o["message_stats"]["publish"] >= 30
        assert o["object_totals"]["consumers"] >= 1
    r = api.delete(base + "/hq?if-empty=true")
    assert r.status == 400
    assert r.json["reason"] == "queue 'hq' in vhost '%s' not empty" % vh
    assert api.delete(base + "/hq/contents").status == 204
    assert api.ok("GET", base + "/hq")["messages"] == 0
    assert api.delete(base + "/hq?if-empty=true").status == 204
    assert api.get(base + "/hq").status == 404


def test_queue_list_pagination_sort_columns_regex(mb, api, vh):
    with amqp(mb, vh) as c:
        ch = c.channel()
        for i in range(25):
            ch.queue_declare("pq-%02d" % i)
        ch.queue_declare("Other-A")
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", "pq-07", b"x")
        base = "/api/queues/" + q(vh)
        page = api.ok("GET", base + "?page=2&page_size=10")
        assert set(page) == {"filtered_count", "item_count", "items", "page",
                             "page_count", "page_size", "total_count"}
        assert (page["page"], page["page_size"], page["page_count"],
                page["total_count"], page["filtered_count"],
                page["item_count"]) == (2, 10, 3, 26, 26, 10)
        assert [x["name"] for x in page["items"]] == \
            ["pq-%02d" % i for i in range(9, 19)]
        page = api.ok("GET", base + "?page=1&page_size=100&name=OTHER")
        assert [x["name"] for x in page["items"]] == ["Other-A"]
        assert page["filtered_count"] == 1 and page["total_count"] == 26
        page = api.ok("GET", base + "?page=1&name=%s&use_regex=true" %
                      q("^pq-0[0-4]$"))
        assert [x["name"] for x in page["items"]] == \
            ["pq-%02d" % i for i in range(5)]
        items = api.ok("GET", base + "?sort=name&sort_reverse=true")
        assert [x["name"] for x in items][:2] == ["pq-24", "pq-23"]
        items = api.ok("GET", base + "?sort=messages&sort_reverse=true"
                       "&columns=name,messages,message_stats.publish")
        assert items[0] == {"name": "pq-07", "messages": 5,
                            "message_stats": {"publish": 5}}
        assert set(items[1]) == {"name", "messages", "message_stats"}
        # a sort key that is not a struct field takes the slow path
        items = api.ok("GET", base + "?sort=backing_queue_status.len"
                       "&sort_reverse=true&columns=name")
        assert items[0] == {"name": "pq-07"}
        # the default sort is vhost, name; a name filter without page
        # is ignored, as RabbitMQ does
        items = api.ok("GET", base + "?name=zzz&columns=name")
        assert [x["name"] for x in items] == \
            ["Other-A"] + ["pq-%02d" % i for i in range(25)]
        for path, err, reason in (
            ("?page=0", "invalid_pagination_parameters",
             "Invalid pagination parameters: page number 0, page size "
             "undefined"),
            ("?page=1&page_size=501", "invalid_pagination_parameters",
             "Invalid pagination parameters: page number 1, page size 501"),
            ("?page=x", "bad_request", "Pagination parameters are invalid"),
            ("?page_size=1.5", "bad_request",
             "Pagination parameters are invalid"),
            ("?page=9", "page_out_of_range",
             "Page out of range, page: 9 page size: 100, len: 26"),
        ):
            r = api.get(base + path)
            assert r.status == 400, path
            assert r.json == {"error": err, "reason": reason}, path
        # the other list endpoints take the same parameters
        page = api.ok("GET", "/api/exchanges/%s?page=1&page_size=2&sort=name"
                      % q(vh))
        assert page["item_count"] == 2 and page["total_count"] == 7
        assert [x["name"] for x in page["items"]] == ["", "amq.direct"]
        page = api.ok("GET", "/api/vhosts?page=1&name=%s&columns=name" %
                      q(vh))
        assert page["items"] == [{"name": vh}]
        for i in range(25):
            ch.queue_delete("pq-%02d" % i)


def test_publish_get_purge(mb, api, vh):
    api.ok("PUT", "/api/queues/%s/pg" % q(vh))
    xpath = "/api/exchanges/%s/amq.default/publish" % q(vh)
    r = api.post(xpath, {"routing_key": "pg", "payload": "hello",
                         "payload_encoding": "string",
                         "properties": {"delivery_mode": 2,
                                        "headers": {"h": 1},
                                        "content_type": "text/plain"}})
    assert r.status == 200 and r.json == {"routed": True}
    assert api.ok("POST", xpath, {"routing_key": "nowhere", "payload": "x",
                                  "payload_encoding": "string",
                                  "properties": {}}) == {"routed": False}
    assert api.ok("POST", xpath, {"routing_key": "pg",
                                  "payload": base64.b64encode(
                                      b"\x00\xff").decode(),
                                  "payload_encoding": "base64",
                                  "properties": {}}) == {"routed": True}
    for body, reason in (
        ({"routing_key": "pg", "payload": "x", "payload_encoding": "bogus",
          "properties": {}}, ["unsupported_encoding", "bogus"]),
        ({"routing_key": "pg", "payload": "@@", "payload_encoding": "base64",
          "properties": {}}, ["not_base64", "@@"]),
        ({"routing_key": "pg", "payload": "x"},
         "[{key_missing,properties},{key_missing,payload_encoding}]"),
        ({"routing_key": "pg", "payload": "x", "payload_encoding": "string",
          "properties": {"priority": "x"}}, ["not_int", "priority"]),
    ):
        r = api.post(xpath, body)
        assert r.status == 400 and r.json["reason"] == reason, body
    r = api.post("/api/exchanges/%s/nox/publish" % q(vh),
                 {"routing_key": "a", "payload": "x",
                  "payload_encoding": "string", "properties": {}})
    assert r.status == 400
    assert r.json["reason"] == "404 NOT_FOUND - no exchange 'nox' in vhost " \
        "'%s'" % vh
    gpath = "/api/queues/%s/pg/get" % q(vh)
    msgs = api.ok("POST", gpath, {"count": 5, "ackmode": "ack_requeue_true",
                                  "encoding": "auto", "truncate": 50000})
    assert len(msgs) == 2
    m = msgs[0]
    assert (m["payload"], m["payload_encoding"], m["payload_bytes"],
            m["redelivered"], m["exchange"], m["routing_key"],
            m["message_count"]) == ("hello", "string", 5, False, "", "pg", 1)
    assert m["properties"] == {"delivery_mode": 2, "headers": {"h": 1},
                               "content_type": "text/plain"}
    assert msgs[1]["payload"] == "AP8=" and \
        msgs[1]["payload_encoding"] == "base64"
    # requeued: again, now redelivered; truncated
    msgs = api.ok("POST", gpath, {"count": "1", "ackmode": "ack_requeue_true",
                                  "encoding": "auto", "truncate": 2})
    assert msgs[0]["redelivered"] is True and msgs[0]["payload"] == "he"
    # the message reached AMQP consumers with its properties
    with amqp(mb, vh) as c:
        ch = c.channel()
        method, props, body = ch.basic_get("pg", auto_ack=False)
        assert body == b"hello" and props.delivery_mode == 2
        assert props.headers == {"h": 1} and method.redelivered
        ch.basic_nack(method.delivery_tag, requeue=True)
    msgs = api.ok("POST", gpath, {"count": 1, "ackmode": "ack_requeue_false",
                                  "encoding": "base64"})
    assert msgs[0]["payload"] == base64.b64encode(b"hello").decode()
    assert api.ok("GET", "/api/queues/%s/pg" % q(vh))["messages"] == 1
    r = api.post(gpath, {"count": 1, "ackmode": "bogus", "encoding": "auto"})
    assert r.status == 400
    assert api.delete("/api/queues/%s/pg/contents" % q(vh)).status == 204
    assert api.ok("POST", gpath, {"count": 1, "ackmode": "ack_requeue_true",
                                  "encoding": "auto"}) == []
    assert api.post("/api/queues/%s/nope/get" % q(vh),
                    {"count": 1, "ackmode": "ack_requeue_true",
                     "encoding": "auto"}).status == 404


# properties_key values RabbitMQ 3.10.8 computes for bindings declared
# over AMQP with these arguments (erlang:phash2 of the sorted table).
PROPS_KEY_VECTORS = [
    ([("b", 1), ("a", "x")], "tKQzIw"),
    ([("z", True), ("y", False)], "die8aA"),
    ([("n", rawamqp.F("l", 2**40)), ("m", rawamqp.F("I", -7)),
      ("big", rawamqp.F("l", -(2**40)))], "n3kbvQ"),
    ([("f", rawamqp.F("d", 1.5)), ("g", rawamqp.F("f", 2.5))], "N2OraA"),
    ([("t", rawamqp.F("F", [("num", 3), ("inner", "v")]))], "OArZww"),
    ([("arr", rawamqp.F("A", [1, "two", True]))], "llme2w"),
    ([("d", rawamqp.F("D", (2, 125)))], "-ZhbpA"),
    ([("nul", rawamqp.F("V", None))], "zEDE0A"),
    ([("ts", rawamqp.F("T", 1577836800))], "7lSqOg"),
    ([("bytes", rawamqp.F("x", b"\x00\x01"))], "yYk3zg"),
    ([("sb", rawamqp.F("b", -3)), ("ub", rawamqp.F("B", 200)),
      ("ss", rawamqp.F("s", -300)), ("us", rawamqp.F("u", 60000)),
      ("ui", rawamqp.F("i", 4000000000))], "xk7JUg"),
    ([("x-match", "any"), ("k", "v")], "AIDNeg"),
]


def test_binding_properties_keys_match_rabbitmq(mb, api, vh):
    c = mb.raw(vhost=vh)
    try:
        c.open_channel(1)
        c.call(1, "exchange.declare", exchange="pk-x", type="headers")
        c.call(1, "queue.declare", queue="pk-q")
        for i, (args, _) in enumerate(PROPS_KEY_VECTORS):
            c.call(1, "queue.bind", queue="pk-q", exchange="pk-x",
                   routing_key="rk%d" % i, arguments=args)
        c.call(1, "queue.bind", queue="pk-q", exchange="pk-x",
               routing_key="a b/c")
        bs = api.ok("GET", "/api/exchanges/%s/pk-x/bindings/source" % q(vh))
        got = {b["routing_key"]: b["properties_key"] for b in bs}
        for i, (_, h) in enumerate(PROPS_KEY_VECTORS):
            assert got["rk%d" % i] == "rk%d~%s" % (i, h)
        assert got["a b/c"] == "a+b%2Fc"
        # each one names its binding: GET and DELETE by properties_key
        for pk in got.values():
            path = "/api/bindings/%s/e/pk-x/q/pk-q/%s" % (q(vh), q(pk))
            assert api.ok("GET", path)["properties_key"] == pk
            assert api.delete(path).status == 204
            assert api.get(path).status == 404
        assert api.ok("GET", "/api/exchanges/%s/pk-x/bindings/source" %
                      q(vh)) == []
    finally:
        c.close_socket()


def test_bindings_http_and_amqp(mb, api, vh):
    v = q(vh)
    api.ok("PUT", "/api/exchanges/%s/bx" % v, {"type": "direct"})
    api.ok("PUT", "/api/exchanges/%s/bx2" % v, {"type": "fanout"})
    api.ok("PUT", "/api/queues/%s/bq" % v)
    r = api.post("/api/bindings/%s/e/bx/q/bq" % v,
                 {"routing_key": "a.b", "arguments": {"k": "v"}})
    assert r.status == 201 and r.header("location") == "bq/a.b~8IXMRA"
    r = api.post("/api/bindings/%s/e/bx/q/bq" % v, {"routing_key": "plain"})
    assert r.status == 201 and r.header("location") == "bq/plain"
    r = api.post("/api/bindings/%s/e/bx/e/bx2" % v, {})
    assert r.status == 201 and r.header("location") == "bx2/~"
    r = api.post("/api/bindings/%s/e/nox/q/bq" % v, {})
    assert r.status == 404
    assert r.json == {"error": "not_found",
                      "reason": "no exchange 'nox' in vhost '%s'" % vh}
    between = api.ok("GET", "/api/bindings/%s/e/bx/q/bq" % v)
    assert sorted(b["properties_key"] for b in between) == \
        ["a.b~8IXMRA", "plain"]
    b = api.ok("GET", "/api/bindings/%s/e/bx/q/bq/plain" % v)
    assert b == {"source": "bx", "vhost": vh, "destination": "bq",
                 "destination_type": "queue", "routing_key": "plain",
                 "arguments": {}, "properties_key": "plain"}
    qb = api.ok("GET", "/api/queues/%s/bq/bindings" % v)
    assert qb[0]["source"] == "" and qb[0]["properties_key"] == "bq"
    assert len(qb) == 3
    assert len(api.ok("GET", "/api/exchanges/%s/bx2/bindings/destination"
                      % v)) == 1
    allb = api.ok("GET", "/api/bindings/" + v)
    assert {(x["source"], x["destination"], x["routing_key"]) for x in allb} \
        == {("", "bq", "bq"), ("bx", "bq", "a.b"), ("bx", "bq", "plain"),
            ("bx", "bx2", "")}
    # HTTP bindings route AMQP publishes, and AMQP ones show up here
    with amqp(mb, vh) as c:
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("bx", "plain", b"via-http-binding")
        assert ch.basic_get("bq", auto_ack=True)[2] == b"via-http-binding"
        ch.queue_bind("bq", "bx", "amqp-key")
        assert api.ok("GET", "/api/bindings/%s/e/bx/q/bq/amqp-key" %
                      v)["routing_key"] == "amqp-key"
    assert api.delete("/api/bindings/%s/e/bx/q/bq/plain" % v).status == 204
    assert api.delete("/api/bindings/%s/e/bx/e/bx2/~" % v).status == 204
    assert api.delete("/api/bindings/%s/e/bx/q/bq/nope" % v).status == 404
    assert api.ok("GET", "/api/bindings/%s/e/nox/q/bq" % v) == []


# ---------------------------------------------------------------------------
# connections, channels, consumers
# ---------------------------------------------------------------------------


def test_connections_channels_consumers(mb, api):
    c = mb.raw()
    c2 = mb.raw()
    try:
        c.open_channel(1)
        c.open_channel(2)
        c.call(1, "basic.qos", prefetch_count=7)
        c.call(1, "queue.declare", queue="cc-q", exclusive=True)
        c.call(1, "basic.consume", queue="cc-q", consumer_tag="cc-tag",
               arguments={"x-priority": 3})
        local = c.local_addr
        name = "%s -> %s:%d" % (local, mb.host, mb.port)
        conns = {x["name"]: x for x in api.ok("GET", "/api/connections")}
        assert name in conns
        x = conns[name]
        assert (x["user"], x["vhost"], x["channels"], x["protocol"],
                x["state"], x["peer_host"], x["port"]) == \
            ("guest", "/", 2, "AMQP 0-9-1", "running", "127.0.0.1", mb.port)
        assert x["client_properties"]["product"]
        assert x["connected_at"] > 1.6e12
        assert api.ok("GET", "/api/connections/" + q(name))["name"] == name
        assert name in [y["name"] for y in
                        api.ok("GET", "/api/vhosts/%2F/connections")]
        chans = api.ok("GET", "/api/connections/%s/channels" % q(name))
        assert sorted(ch["number"] for ch in chans) == [1, 2]
        ch1 = [ch for ch in chans if ch["number"] == 1][0]
        assert ch1["name"] == name + " (1)"
        assert ch1["consumer_count"] == 1 and ch1["prefetch_count"] == 7
        assert ch1["connection_details"]["name"] == name
        assert api.ok("GET", "/api/channels/" + q(name + " (1)"))["number"] \
            == 1
        assert api.get("/api/channels/" + q(name + " (9)")).status == 404
        assert name + " (2)" in [y["name"] for y in
                                 api.ok("GET", "/api/channels")]
        cons = api.ok("GET", "/api/consumers/%2F")
        mine = [y for y in cons if y["consumer_tag"] == "cc-tag"]
        assert len(mine) == 1
        assert mine[0]["queue"] == {"name": "cc-q", "vhost": "/"}
        assert mine[0]["channel_details"]["name"] == name + " (1)"
        assert mine[0]["ack_required"] is True
        assert mine[0]["arguments"] == {"x-priority": 3}
        assert mine[0]["prefetch_count"] == 7
        # close one with the default reason, the other with X-Reason
        assert api.delete("/api/connections/" + q(name)).status == 204
        m = c.expect_connection_close(timeout=5)
        assert m.close_info == (320, "CONNECTION_FORCED - Closed via "
                                "management plugin", 0, 0)
        name2 = "%s -> %s:%d" % (c2.local_addr, mb.host, mb.port)
        assert api.delete("/api/connections/" + q(name2),
                          headers={"X-Reason": "bye now"}).status == 204
        m = c2.expect_connection_close(timeout=5)
        assert m.close_info == (320, "CONNECTION_FORCED - bye now", 0, 0)
        assert api.get("/api/connections/nope").status == 404
        assert api.delete("/api/connections/nope").status == 404
    finally:
        c.close_socket()
        c2.close_socket()


# ---------------------------------------------------------------------------
# limits, policies, parameters
# ---------------------------------------------------------------------------


def test_limits_policies_parameters(mb, api, vh):
    v = q(vh)
    assert api.put("/api/vhost-limits/%s/max-queues" % v,
                   {"value": 2}).status == 204
    assert api.put("/api/vhost-limits/%s/max-connections" % v,
                   {"value": 10}).status == 204
    lim = {"vhost": vh, "value": {"max-queues": 2, "max-connections": 10}}
    assert lim in api.ok("GET", "/api/vhost-limits")
    assert api.ok("GET", "/api/vhost-limits/" + v) == [lim]
    r = api.put("/api/vhost-limits/%s/max-bogus" % v, {"value": 10})
    assert r.json == {"error": "bad_request", "reason": "Validation failed\n"
                      "\nUnrecognised terms [{<<\"max-bogus\">>,10}] in "
                      "limits\n"}
    r = api.put("/api/vhost-limits/%s/max-queues" % v, {"valu": 1})
    assert r.json == {"error": "bad_request",
                      "reason": "[{key_missing,value}]"}
    with amqp(mb, vh) as c:
        ch = c.channel()
        ch.queue_declare("l1")
        ch.queue_declare("l2")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("l3")
        assert e.value.reply_code == 406
    assert api.delete("/api/vhost-limits/%s/max-queues" % v).status == 204
    assert api.ok("GET", "/api/vhost-limits/" + v) == \
        [{"vhost": vh, "value": {"max-connections": 10}}]

    pol = {"pattern": "^q", "definition": {"max-length": 5}, "priority": 1,
           "apply-to": "queues"}
    assert api.put("/api/policies/%s/p1" % v, pol).status == 201
    assert api.put("/api/policies/%s/p1" % v, pol).status == 204
    want = dict(pol, vhost=vh, name="p1")
    assert api.ok("GET", "/api/policies/%s/p1" % v) == want
    assert api.ok("GET", "/api/policies/" + v) == [want]
    assert want in api.ok("GET", "/api/policies")
    r = api.put("/api/policies/%s/p2" % v, {"pattern": "x"})
    assert r.json == {"error": "bad_request",
                      "reason": "[{key_missing,definition}]"}
    assert api.delete("/api/policies/%s/p1" % v).status == 204
    assert api.get("/api/policies/%s/p1" % v).status == 404

    assert api.put("/api/operator-policies/%s/op" % v,
                   {"pattern": ".*",
                    "definition": {"max-length": 9}}).status == 201
    assert api.ok("GET", "/api/operator-policies/%s/op" % v)["definition"] \
        == {"max-length": 9}
    assert api.delete("/api/operator-policies/%s/op" % v).status == 204

    par = {"value": {"uri": "amqp://elsewhere"}}
    assert api.put("/api/parameters/federation-upstream/%s/up" % v,
                   par).status == 201
    got = api.ok("GET", "/api/parameters/federation-upstream/%s/up" % v)
    assert got["value"] == par["value"] and got["component"] == \
        "federation-upstream"
    assert got in api.ok("GET", "/api/parameters/federation-upstream")
    assert got in api.ok("GET", "/api/parameters/federation-upstream/" + v)
    assert api.delete("/api/parameters/federation-upstream/%s/up" %
                      v).status == 204
    assert api.put("/api/global-parameters/g1",
                   {"value": {"a": 1}}).status == 201
    assert api.ok("GET", "/api/global-parameters/g1") == {"name": "g1",
                                                         "value": {"a": 1}}
    assert api.delete("/api/global-parameters/g1").status == 204
    assert api.get("/api/global-parameters/g1").status == 404


# ---------------------------------------------------------------------------
# health checks
# ---------------------------------------------------------------------------


def test_health_checks_and_aliveness(mb, api, vh):
    ok = {"status": "ok"}
    assert api.ok("GET", "/api/health/checks/alarms") == ok
    assert api.ok("GET", "/api/health/checks/local-alarms") == ok
    assert api.ok("GET", "/api/health/checks/virtual-hosts") == ok
    assert api.ok("GET", "/api/health/checks/port-listener/%d" % mb.port) == \
        {"status": "ok", "port": mb.port}
    r = api.get("/api/health/checks/port-listener/1")
    assert r.status == 503
    assert r.json["status"] == "failed" and r.json["missing"] == 1
    assert r.json["reason"] == "No active listener"
    assert set(r.json["ports"]) == {mb.port, api.port}
    r = api.get("/api/health/checks/port-listener/abc")
    assert r.status == 400 and r.json == {"error": "bad_request",
                                          "reason": "Invalid port"}
    assert api.ok("GET", "/api/health/checks/protocol-listener/amqp") == \
        {"status": "ok", "protocol": "amqp"}
    assert api.ok("GET", "/api/health/checks/protocol-listener/amqp091") == \
        {"status": "ok", "protocol": "amqp"}
    r = api.get("/api/health/checks/protocol-listener/mqtt")
    assert r.status == 503 and r.json["missing"] == "mqtt"
    assert api.ok("GET", "/api/health/checks/node-is-quorum-critical") == \
        {"status": "ok", "reason": "single node cluster"}
    assert api.ok("GET", "/api/aliveness-test/" + q(vh)) == ok
    assert api.ok("GET", "/api/queues/%s/aliveness-test" %
                  q(vh))["messages"] == 0
    assert api.get("/api/aliveness-test/nope").status == 404


def test_alarm_health_check_fails(make_broker):
    b, api = mgmt_broker(make_broker,
                         {"vm_memory_high_watermark.absolute": "1MB",
                          "memory_monitor_interval": 100})
    r = wait_until(lambda: (lambda r: r.status == 503 and r)(
        api.get("/api/health/checks/alarms")), timeout=30)
    assert r, "memory alarm not reported"
    assert r.json["status"] == "failed"
    assert r.json["reason"] == "There are alarms in effect in the cluster"
    assert {"node": api.ok("GET", "/api/nodes")[0]["name"],
            "resource": "memory"} in r.json["alarms"]
    assert api.ok("GET", "/api/nodes")[0]["mem_alarm"] is True
    r = api.get("/api/health/checks/local-alarms")
    assert r.status == 503
    assert r.json["reason"] == "There are alarms in effect on the node"


# ---------------------------------------------------------------------------
# definitions
# ---------------------------------------------------------------------------


def test_definitions_round_trip(make_broker, mb, api, vh):
    v = q(vh)
    api.ok("PUT", "/api/users/defs-user",
           {"password_hash": rabbit_hash("pw"), "tags": "monitoring"})
    api.ok("PUT", "/api/permissions/%s/defs-user" % v,
           {"configure": "^d", "write": ".*", "read": ".*"})
    api.ok("PUT", "/api/exchanges/%s/dx" % v, {"type": "topic"})
    api.ok("PUT", "/api/queues/%s/dq" % v,
           {"durable": True, "arguments": {"x-message-ttl": 1000}})
    api.ok("POST", "/api/bindings/%s/e/dx/q/dq" % v,
           {"routing_key": "r.#", "arguments": {"a": "b"}}, status=201)
    api.ok("PUT", "/api/policies/%s/dp" % v,
           {"pattern": "^dq$", "definition": {"max-length": 3}})
    api.ok("PUT", "/api/vhost-limits/%s/max-connections" % v, {"value": 7})
    try:
        r = api.get("/api/definitions?download=defs.json")
        assert r.status == 200
        assert r.header("content-disposition") == \
            'attachment; filename="defs.json"'
        defs = r.json
        assert defs["rabbit_version"] == "3.10.8"
        assert {"name": "dq", "vhost": vh, "durable": True,
                "auto_delete": False,
                "arguments": {"x-message-ttl": 1000}} in defs["queues"]
        one = api.ok("GET", "/api/definitions/" + v)
        assert "users" not in one and "vhosts" not in one
        assert [x["name"] for x in one["queues"]] == ["dq"]

        b2, api2 = mgmt_broker(make_broker)
        assert api2.post("/api/definitions", defs).status == 204
        x = api2.ok("GET", "/api/queues/%s/dq" % v)
        assert x["durable"] and x["arguments"] == {"x-message-ttl": 1000}
        assert api2.ok("GET", "/api/exchanges/%s/dx" % v)["type"] == "topic"
        bs = api2.ok("GET", "/api/bindings/%s/e/dx/q/dq" % v)
        assert [(b["routing_key"], b["arguments"]) for b in bs] == \
            [("r.#", {"a": "b"})]
        assert api2.ok("GET", "/api/policies/%s/dp" % v)["definition"] == \
            {"max-length": 3}
        assert api2.ok("GET", "/api/vhost-limits/" + v)[0]["value"] == \
            {"max-connections": 7}
        u = api2.ok("GET", "/api/users/defs-user")
        assert u["tags"] == ["monitoring"]
        assert api2.ok("GET", "/api/permissions/%s/defs-user" %
                       v)["configure"] == "^d"
        # the imported password hash logs in over AMQP and HTTP
        c = pika.BlockingConnection(pika.ConnectionParameters(
            b2.host, b2.port, vh, pika.PlainCredentials("defs-user", "pw"),
            connection_attempts=1))
        c.close()
        assert api2.as_user("defs-user", "pw").get(
            "/api/whoami").status == 200
        # per-vhost import, into another vhost
        api2.ok("PUT", "/api/vhosts/other")
        one["queues"][0]["name"] = "dq-copy"
        one["bindings"][0]["destination"] = "dq-copy"
        assert api2.post("/api/definitions/other", one).status == 204
        assert api2.ok("GET", "/api/queues/other/dq-copy")["durable"]
        assert len(api2.ok("GET", "/api/bindings/other/e/dx/q/dq-copy")) == 1
        # the web UI's multipart upload
        boundary = "----warrenboundary"
        doc = {"queues": [{"name": "multi-q", "vhost": "/", "durable": True,
                           "auto_delete": False, "arguments": {}}]}
        form = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                "filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n"
                "%s\r\n--%s--\r\n" % (boundary, json.dumps(doc), boundary))
        r = api2.request("POST", "/api/definitions", raw_body=form.encode(),
                         headers={"Content-Type": "multipart/form-data; "
                                  "boundary=" + boundary})
        assert r.status == 204
        assert api2.get("/api/queues/%2F/multi-q").status == 200
        # bad documents
        r = api2.request("POST", "/api/definitions", raw_body=b"{nope",
                         headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.json == {"error": "bad_request",
                                              "reason": "not_json"}
        r = api2.post("/api/definitions", {"queues": [{"name": "q",
                                                       "vhost": "nope"}]})
        assert r.status == 400 and r.json["error"] == "bad_request"
    finally:
        api.delete("/api/users/defs-user")


def test_definitions_load_at_boot(make_broker, tmp_path, api):
    defs = api.ok("GET", "/api/definitions")
    defs["queues"].append({"name": "boot-q", "vhost": "/", "durable": True,
                           "auto_delete": False, "arguments": {}})
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    b, api2 = mgmt_broker(make_broker, {"load_definitions": str(path)})
    assert api2.ok("GET", "/api/queues/%2F/boot-q")["durable"] is True
