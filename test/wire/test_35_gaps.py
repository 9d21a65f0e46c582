"""Behaviour gaps found while using Warren as a RabbitMQ user would, each
checked against RabbitMQ 3.10.8 where it applies:

* sender-selected distribution: the CC and BCC headers (arrays of
  longstr) add routing keys on the same exchange; BCC is stripped from
  the message before routing and delivery; any other type is refused;
* user limits (/api/user-limits, max-connections, max-channels): kept,
  exported in definitions and enforced with RabbitMQ's texts;
* x-queue-type = quorum (a durable queue with a delivery limit on one
  node) with its arguments, properties and errors, and the ha-* policy
  keys with RabbitMQ's validation;
* /api/overview names Warren in product_name/product_version and keeps
  rabbitmq_version for tools that check it.
"""

import html
import json
import os
import uuid

import pytest

import conftest
import rawamqp
from test_20_mgmt_api import MGMT_CONF, Mgmt, http_port, mgmt_broker
from wireutil import assert_channel_close, confirm_select, get


# ---- CC / BCC


def queues(c, n):
    return [c.call(1, "queue.declare", queue="", exclusive=True).queue
            for _ in range(n)]


def publish_confirmed(c, x, rk, headers, mandatory=False):
    """Publishes on confirming channel 1; returns the methods up to the
    ack (a basic.return first for an unroutable mandatory message)."""
    c.publish(1, x, rk, b"m", props={"headers": headers},
              mandatory=mandatory)
    out = []
    while not out or out[-1].name not in ("basic.ack", "channel.close"):
        out.append(c.read_method())
    return out


def contents(c, qs):
    """{queue index: (routing key, headers)} of what each queue holds."""
    got = {}
    for i, q in enumerate(qs):
        m = get(c, 1, q)
        if m.name == "basic.get-ok":
            got[i] = (m.routing_key, dict(m.content.props.get("headers")))
            assert get(c, 1, q).name == "basic.get-empty"
    return got


@pytest.fixture
def cc(raw):
    c = raw()
    c.open_channel(1)
    qs = queues(c, 4)
    confirm_select(c, 1)
    return c, qs


def arr(*names):
    return rawamqp.F("A", [rawamqp.F("S", n.encode()) for n in names])


def test_cc_and_bcc_route_on_the_default_exchange(cc):
    c, qs = cc
    publish_confirmed(c, "", qs[0], {"CC": arr(qs[1], qs[2]),
                                     "BCC": arr(qs[3])})
    cc_header = {"CC": arr(qs[1], qs[2])}
    assert contents(c, qs) == {i: (qs[0], cc_header) for i in range(4)}


def test_bcc_alone_leaves_an_empty_headers_table(cc):
    c, qs = cc
    publish_confirmed(c, "", qs[0], {"BCC": arr(qs[3], qs[0])})
    assert contents(c, qs) == {0: (qs[0], {}), 3: (qs[0], {})}


def test_cc_elements_that_are_not_strings_are_skipped(cc):
    c, qs = cc
    h = {"CC": rawamqp.F("A", [rawamqp.F("S", qs[1].encode()),
                               rawamqp.F("I", 5),
                               rawamqp.F("S", qs[0].encode())])}
    publish_confirmed(c, "", qs[0], h)
    assert contents(c, qs) == {0: (qs[0], h), 1: (qs[0], h)}


def test_cc_routes_an_unroutable_key(cc):
    c, qs = cc
    out = publish_confirmed(c, "", "nowhere", {"CC": arr(qs[1])},
                            mandatory=True)
    assert [m.name for m in out] == ["basic.ack"]
    out = publish_confirmed(c, "", "nowhere", {"BCC": arr("nowhere-either")},
                            mandatory=True)
    assert [m.name for m in out] == ["basic.return", "basic.ack"]
    assert contents(c, qs) == {1: ("nowhere", {"CC": arr(qs[1])})}


def test_cc_and_bcc_on_a_direct_exchange_keep_other_headers(cc):
    c, qs = cc
    for i, q in enumerate(qs):
        c.call(1, "queue.bind", queue=q, exchange="amq.direct",
               routing_key="k%d" % i)
    publish_confirmed(c, "amq.direct", "k0", {
        "CC": arr("k1"), "BCC": arr("k2"), "x": rawamqp.F("I", 1)})
    h = {"CC": arr("k1"), "x": rawamqp.F("I", 1)}
    assert contents(c, qs) == {0: ("k0", h), 1: ("k0", h), 2: ("k0", h)}


def test_bcc_is_stripped_before_a_headers_exchange_matches(cc):
    c, qs = cc
    c.call(1, "queue.bind", queue=qs[0], exchange="amq.match",
           arguments={"x-match": "any", "BCC": "k"})
    publish_confirmed(c, "amq.match", "", {"BCC": arr("k")})
    assert contents(c, qs) == {}


def test_bcc_in_a_transaction(raw):
    c = raw()
    c.open_channel(1)
    qs = queues(c, 2)
    c.call(1, "tx.select")
    c.publish(1, "", qs[0], b"m", props={"headers": {"BCC": arr(qs[1])}})
    c.call(1, "tx.commit")
    assert contents(c, qs) == {0: (qs[0], {}), 1: (qs[0], {})}


@pytest.mark.parametrize("key,value,typ", [
    ("CC", "q", "longstr"), ("BCC", "q", "longstr"),
    ("CC", rawamqp.F("I", 5), "signedint")])
def test_cc_and_bcc_must_be_arrays(raw, key, value, typ):
    c = raw()
    c.open_channel(1)
    c.publish(1, "", "x", b"m", props={"headers": {key: value}})
    assert_channel_close(
        c, 1, 406,
        'PRECONDITION_FAILED - invalid message: '
        '{unacceptable_type_in_header,"%s",%s}' % (key, typ), 60, 40)


# ---- /api/overview


@pytest.mark.warren_only
def test_overview_names_warren_and_keeps_rabbitmq_version(make_broker):
    b, api = mgmt_broker(make_broker)
    o = api.ok("GET", "/api/overview")
    c = b.raw(handshake=False)
    start = c.begin()
    version = start.server_properties["version"].value.decode()
    assert (o["product_name"], o["product_version"]) == ("Warren", version)
    assert o["rabbitmq_version"] == o["management_version"] == "3.10.8"


# ---- definitions: all or nothing
#
# RabbitMQ 3.10 applies an import item by item and keeps what came before
# a failure; Warren validates the whole document first (a dry run), so a
# failed import changes nothing.


def bad_import_doc():
    return {
        "users": [{"name": "imp-user", "password": "pw", "tags": ""},
                  {"name": "guest", "password": "guest",
                   "tags": "management"}],
        "vhosts": [{"name": "imp-vh"}],
        "permissions": [{"user": "imp-user", "vhost": "imp-vh",
                         "configure": ".*", "write": ".*", "read": ".*"}],
        "policies": [{"vhost": "/", "name": "imp-pol", "pattern": "^imp",
                      "definition": {"max-length": 3}}],
        "exchanges": [{"name": "imp-x", "vhost": "/", "type": "fanout",
                       "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        "queues": [{"name": "imp-q1", "vhost": "/", "durable": True,
                    "auto_delete": False, "arguments": {}},
                   {"name": "imp-q2", "vhost": "/", "durable": True,
                    "auto_delete": False,
                    "arguments": {"x-max-priority": 300}}],
        "bindings": [],
    }


@pytest.mark.warren_only
def test_failed_definitions_import_changes_nothing(make_broker):
    b, api = mgmt_broker(make_broker)
    before = api.ok("GET", "/api/definitions")
    r = api.post("/api/definitions", bad_import_doc())
    assert r.status == 400
    assert "x-max-priority" in r.json["reason"]
    assert api.get("/api/users/imp-user").status == 404
    assert api.get("/api/vhosts/imp-vh").status == 404
    assert api.get("/api/policies/%2F/imp-pol").status == 404
    assert api.get("/api/exchanges/%2F/imp-x").status == 404
    assert api.get("/api/queues/%2F/imp-q1").status == 404
    after = api.ok("GET", "/api/definitions")
    assert after == before  # guest kept its administrator tag
    # The same document without the bad queue goes in whole.
    doc = bad_import_doc()
    doc["queues"].pop()
    doc["users"].pop()
    assert api.post("/api/definitions", doc).status in (200, 201, 204)
    assert api.get("/api/queues/%2F/imp-q1").status == 200
    assert api.get("/api/users/imp-user").status == 200



@pytest.mark.warren_only
def test_failed_load_definitions_changes_nothing(make_broker, tmp_path):
    # load_definitions at boot: the broker refuses to start, and the data
    # directory keeps what it had (the user before the bad queue is not
    # in the node's definitions).
    b, api = mgmt_broker(make_broker)
    api.ok("PUT", "/api/users/kept", {"password": "pw", "tags": ""})
    assert b.stop() == 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad_import_doc()))
    b.extra_conf["load_definitions"] = str(path)
    with pytest.raises(pytest.fail.Exception):
        b.start()
    assert any("x-max-priority" in line for line in b.stderr_lines())
    b.extra_conf.pop("load_definitions")
    b.start()
    api = Mgmt(http_port(b))
    assert api.get("/api/users/kept").status == 200
    assert api.get("/api/users/imp-user").status == 404
    assert api.get("/api/vhosts/imp-vh").status == 404


@pytest.mark.warren_only
def test_import_may_refer_to_transient_objects(make_broker, raw):
    b, api = mgmt_broker(make_broker)
    c = b.raw()
    c.open_channel(1)
    c.call(1, "queue.declare", queue="tq", durable=False)
    c.call(1, "exchange.declare", exchange="tx", type="direct",
           durable=False)
    doc = {"bindings": [{"source": "tx", "vhost": "/", "destination": "tq",
                         "destination_type": "queue", "routing_key": "k",
                         "arguments": {}}]}
    assert api.post("/api/definitions", doc).status in (200, 201, 204)
    bs = api.ok("GET", "/api/queues/%2F/tq/bindings")
    assert [x["source"] for x in bs] == ["", "tx"]


# ---- user limits
#
# With WARREN_TEST_BROKER set, the broker's management API is at
# WARREN_TEST_MGMT_PORT (default 15672), as in test_24.


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    ext = conftest.external_broker()
    if ext is not None:
        port = int(os.environ.get("WARREN_TEST_MGMT_PORT", "15672"))
        yield ext[0], ext[1], Mgmt(port, host=ext[0])
        return
    b = conftest.new_warren(str(tmp_path_factory.mktemp("gaps")), MGMT_CONF)
    yield b.host, b.port, Mgmt(http_port(b))
    conftest.stop_checked(b)


@pytest.fixture
def limited_user(env):
    host, port, api = env
    user = "ul-" + uuid.uuid4().hex[:8]
    api.ok("PUT", "/api/users/" + user, {"password": "pw", "tags": ""})
    api.ok("PUT", "/api/permissions/%2F/" + user,
           {"configure": ".*", "write": ".*", "read": ".*"})
    yield host, port, api, user
    api.delete("/api/users/" + user)


def test_user_limits_api(limited_user):
    host, port, api, user = limited_user
    base = "/api/user-limits/" + user
    assert api.ok("GET", base) == []
    api.ok("PUT", base + "/max-connections", {"value": 3})
    api.ok("PUT", base + "/max-channels", {"value": 2})
    want = [{"user": user, "value": {"max-channels": 2,
                                     "max-connections": 3}}]
    assert api.ok("GET", base) == want
    assert [x for x in api.ok("GET", "/api/user-limits")
            if x["user"] == user] == want
    defs = api.ok("GET", "/api/definitions")
    assert [u["limits"] for u in defs["users"] if u["name"] == user] == [
        {"max-channels": 2, "max-connections": 3}]
    # -1 is kept (and limits nothing); DELETE removes one, twice is fine.
    api.ok("PUT", base + "/max-channels", {"value": -1})
    assert api.ok("GET", base)[0]["value"]["max-channels"] == -1
    api.ok("DELETE", base + "/max-channels")
    api.ok("DELETE", base + "/max-channels")
    assert api.ok("GET", base) == [{"user": user, "value": {
        "max-connections": 3}}]
    for body, reason in (
            ({"value": "x"},
             'max-channels should be a number, actually was <<"x">>'),
            ({"value": 1.5}, "max-channels should be a number, actually "
             "was 1.5"),
            ({}, "[{key_missing,value}]")):
        r = api.put(base + "/max-channels", body)
        assert (r.status, r.json["reason"]) == (400, reason)
    r = api.put(base + "/max-bogus", {"value": 1})
    assert (r.status, r.json["reason"]) == (
        400, 'Unrecognised terms [{<<"max-bogus">>,1}] in user-limits')
    r = api.put("/api/user-limits/no-such-user-x/max-channels", {"value": 1})
    assert (r.status, r.json["reason"]) == (400, ["no_such_user",
                                                  "no-such-user-x"])
    assert api.get("/api/user-limits/no-such-user-x").status == 404


def test_user_connection_limit(limited_user):
    host, port, api, user = limited_user
    api.ok("PUT", "/api/user-limits/%s/max-connections" % user, {"value": 1})
    first = rawamqp.connect(host, port, user=user, password="pw")
    c = rawamqp.Connection(host, port)
    c.begin()
    c.login(user, "pw")
    c.tune_ok()
    m = c.open()
    assert m.name == "connection.close" and m.close_info == (
        530, "NOT_ALLOWED - connection refused for user '%s': user "
        "connection limit (1) is reached" % user, 10, 40)
    c.close_socket()
    first.close()
    # The count goes down when a connection closes.
    again = rawamqp.connect(host, port, user=user, password="pw")
    again.close()


def test_user_channel_limit_counts_every_connection(limited_user):
    host, port, api, user = limited_user
    api.ok("PUT", "/api/user-limits/%s/max-channels" % user, {"value": 2})
    a = rawamqp.connect(host, port, user=user, password="pw")
    a.open_channel(1)
    b = rawamqp.connect(host, port, user=user, password="pw")
    b.open_channel(1)
    b.send_method(2, "channel.open")
    m = b.read_method()
    assert m.name == "connection.close" and m.close_info == (
        530, "NOT_ALLOWED - number of channels opened for user '%s' has "
        "reached the maximum allowed user limit of (2)" % user, 0, 0)
    b.close_socket()
    # A channel closed makes room.
    a.close_channel(1)
    a.open_channel(2)
    a.close()


@pytest.mark.warren_only
def test_user_limits_survive_a_restart(make_broker):
    b, api = mgmt_broker(make_broker)
    api.ok("PUT", "/api/users/lim", {"password": "pw", "tags": ""})
    api.ok("PUT", "/api/user-limits/lim/max-channels", {"value": 7})
    b.restart()
    api = Mgmt(http_port(b))
    assert api.ok("GET", "/api/user-limits/lim") == [
        {"user": "lim", "value": {"max-channels": 7}}]
    doc = {"users": [{"name": "lim2", "password": "pw", "tags": "",
                      "limits": {"max-connections": 5}}]}
    assert api.post("/api/definitions", doc).status in (200, 201, 204)
    assert api.ok("GET", "/api/user-limits/lim2") == [
        {"user": "lim2", "value": {"max-connections": 5}}]


# ---- quorum queues on a single node, ha-* policies
#
# A quorum queue on one node is a durable queue with a delivery limit;
# its arguments, properties and errors are RabbitMQ 3.10's. RabbitMQ
# escapes '<' and '>' in management reasons (&lt;), Warren does not:
# reasons are compared unescaped.

Q = {"x-queue-type": "quorum"}
IP = "PRECONDITION_FAILED - invalid property '%s' for queue '%s' in vhost '/'"
IA = ("PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/' "
      "of queue type rabbit_%s_queue")
VA = "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/': %s"


@pytest.mark.parametrize("kw,text", [
    ({"durable": False, "arguments": Q}, IP % ("non-durable", "{q}")),
    ({"durable": True, "exclusive": True, "arguments": Q},
     IP % ("exclusive-owner", "{q}")),
    ({"durable": False, "exclusive": True, "arguments": Q},
     IP % ("exclusive-owner", "{q}")),
    ({"durable": True, "auto_delete": True, "exclusive": True,
      "arguments": Q}, IP % ("auto-delete", "{q}")),
    ({"durable": True, "arguments": dict(Q, **{"x-max-priority": 300})},
     IA % ("x-max-priority", "{q}", "quorum")),
    ({"durable": True, "arguments": dict(Q, **{"x-queue-mode": "lazy",
                                               "x-max-priority": 3})},
     IA % ("x-queue-mode", "{q}", "quorum")),
    ({"durable": True, "arguments": dict(Q, **{"x-queue-version": 2})},
     IA % ("x-queue-version", "{q}", "quorum")),
    ({"durable": False, "arguments": dict(Q, **{"x-max-length": -1,
                                                "x-max-priority": 3})},
     VA % ("x-max-length", "{q}", "{value_negative,-1}")),
    ({"durable": True,
      "arguments": dict(Q, **{"x-quorum-initial-group-size": 0})},
     VA % ("x-quorum-initial-group-size", "{q}", "{value_zero,0}")),
    ({"durable": True,
      "arguments": dict(Q, **{"x-dead-letter-strategy": "bogus"})},
     VA % ("x-dead-letter-strategy", "{q}", "invalid_dlx_strategy")),
    ({"durable": True,
      "arguments": dict(Q, **{"x-queue-leader-locator": 5})},
     VA % ("x-queue-leader-locator", "{q}", "{unacceptable_type,signedint}")),
    ({"durable": True, "arguments": {"x-delivery-limit": 3}},
     IA % ("x-delivery-limit", "{q}", "classic")),
    ({"durable": True, "arguments": {"x-queue-type": "classic",
                                     "x-quorum-initial-group-size": 0}},
     IA % ("x-quorum-initial-group-size", "{q}", "classic")),
    ({"durable": True, "arguments": {"x-queue-type": "bogus"}},
     VA % ("x-queue-type", "{q}", "\"unsupported queue type 'bogus'\"")),
    ({"durable": True, "arguments": {"x-queue-type": 5}},
     VA % ("x-queue-type", "{q}", "{unacceptable_type,signedint}")),
])
def test_quorum_declare_errors(raw, uname, kw, text):
    q = uname("qq")
    c = raw()
    c.open_channel(1)
    c.send_method(1, "queue.declare", queue=q, **kw)
    assert_channel_close(c, 1, 406, text.replace("{q}", q), 50, 10)


def test_quorum_and_classic_declares(uname, env):
    host, port, api = env
    c = rawamqp.connect(host, port)
    c.open_channel(1)
    q, cq = uname("qq"), uname("cq")
    args = dict(Q, **{"x-quorum-initial-group-size": 3,
                      "x-delivery-limit": 5,
                      "x-dead-letter-strategy": "at-least-once",
                      "x-queue-leader-locator": "balanced",
                      "x-overflow": "reject-publish",
                      "x-max-in-memory-length": 3})
    c.call(1, "queue.declare", queue=q, durable=True, arguments=args)
    c.call(1, "queue.declare", queue=q, durable=True, arguments=args)
    c.call(1, "queue.declare", queue=cq, durable=True,
           arguments={"x-queue-type": "classic"})
    got = api.ok("GET", "/api/queues/%2F/" + q)
    assert got["type"] == "quorum"
    assert got["members"] == got["online"] == [got["leader"]]
    assert api.ok("GET", "/api/queues/%2F/" + cq)["type"] == "classic"
    # Redeclared without the type: RabbitMQ compares x-queue-type.
    q = uname("qq")
    c.call(1, "queue.declare", queue=q, durable=True, arguments=Q)
    c.send_method(1, "queue.declare", queue=q, durable=True)
    assert_channel_close(
        c, 1, 406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' "
        "for queue '%s' in vhost '/': received none but current is the "
        "value 'quorum' of type 'longstr'" % q, 50, 10)


def test_quorum_queue_from_definitions(env, uname):
    host, port, api = env
    q = uname("qq")
    doc = {"queues": [{"name": q, "vhost": "/", "durable": True,
                       "auto_delete": False,
                       "arguments": {"x-queue-type": "quorum",
                                     "x-delivery-limit": 4}}]}
    assert api.post("/api/definitions", doc).status in (200, 201, 204)
    got = api.ok("GET", "/api/queues/%2F/" + q)
    assert got["type"] == "quorum" and got["durable"] is True
    assert got["arguments"]["x-delivery-limit"] == 4


def deliver_and_requeue(c, q, times):
    """Gets the message of q and nacks it with requeue, `times` times."""
    for _ in range(times):
        m = get(c, 1, q, no_ack=False)
        assert m.name == "basic.get-ok", m
        c.send_method(1, "basic.nack", delivery_tag=m.delivery_tag,
                      requeue=True)


def test_quorum_delivery_limit_dead_letters(raw, uname):
    q, dlq = uname("qq"), uname("dlq")
    c = raw()
    c.open_channel(1)
    c.call(1, "queue.declare", queue=dlq, durable=True)
    c.call(1, "queue.declare", queue=q, durable=True, arguments=dict(
        Q, **{"x-delivery-limit": 2, "x-dead-letter-exchange": "",
              "x-dead-letter-routing-key": dlq}))
    confirm_select(c, 1)
    c.publish(1, "", q, b"poison")
    assert c.read_method().name == "basic.ack"
    # Returned twice it stays; the third return is one too many.
    deliver_and_requeue(c, q, 3)
    for _ in range(100):
        m = get(c, 1, dlq)
        if m.name == "basic.get-ok":
            break
    assert m.name == "basic.get-ok" and m.content.body == b"poison"
    death = m.content.props["headers"]["x-death"].value[0].value
    assert death["reason"].value == b"delivery_limit"
    assert death["queue"].value == q.encode()
    assert get(c, 1, q).name == "basic.get-empty"


@pytest.mark.warren_only
def test_quorum_delivery_limit_from_a_policy(make_broker):
    # The lowest of argument and policy; a negative argument: no limit.
    b, api = mgmt_broker(make_broker)
    api.ok("PUT", "/api/policies/%2F/dl", {
        "pattern": "^dl-", "definition": {"delivery-limit": 1}})
    c = b.raw()
    c.open_channel(1)
    confirm_select(c, 1)
    for q, args, kept in (("dl-pol", Q, 1), ("dl-arg", dict(Q, **{
            "x-delivery-limit": 5}), 1), ("dl-none", dict(Q, **{
                "x-delivery-limit": -1}), 30), ("other", Q, 20)):
        c.call(1, "queue.declare", queue=q, durable=True, arguments=args)
        c.publish(1, "", q, b"x")
        assert c.read_method().name == "basic.ack"
        deliver_and_requeue(c, q, kept)
        assert c.call(1, "queue.declare", queue=q,
                      passive=True).message_count == 1, q
        if q != "dl-none":
            deliver_and_requeue(c, q, 1)
            assert c.call(1, "queue.declare", queue=q,
                          passive=True).message_count == 0, q


@pytest.mark.warren_only
def test_quorum_default_delivery_limit_is_20(raw, uname):
    # RabbitMQ 4's default (3.10 has none): the 21st return drops it.
    q = uname("qq")
    c = raw()
    c.open_channel(1)
    c.call(1, "queue.declare", queue=q, durable=True, arguments=Q)
    confirm_select(c, 1)
    c.publish(1, "", q, b"x")
    assert c.read_method().name == "basic.ack"
    deliver_and_requeue(c, q, 20)
    assert c.call(1, "queue.declare", queue=q,
                  passive=True).message_count == 1
    deliver_and_requeue(c, q, 1)
    assert c.call(1, "queue.declare", queue=q,
                  passive=True).message_count == 0


VF = "Validation failed\n\n%s\n"


@pytest.mark.parametrize("definition,reason", [
    ({"ha-mode": "bogus"}, '<<"bogus">> is not a valid ha-mode value'),
    ({"ha-mode": "all", "ha-params": 1},
     'ha-mode="all" does not take parameters'),
    ({"ha-mode": "exactly"}, 'ha-mode="exactly" takes an integer, none given'),
    ({"ha-mode": "exactly", "ha-params": 0},
     'ha-mode="exactly" takes an integer, 0 given'),
    ({"ha-mode": "exactly", "ha-params": "x"},
     'ha-mode="exactly" takes an integer, <<"x">> given'),
    ({"ha-mode": "nodes"}, 'ha-mode="nodes" takes a list, none given'),
    ({"ha-mode": "nodes", "ha-params": []},
     'ha-mode="nodes" list must be non-empty'),
    ({"ha-mode": "nodes", "ha-params": ["a", 1]},
     'ha-mode="nodes" takes a list of strings, [1] was not a string'),
    ({"ha-mode": "nodes", "ha-params": "a"},
     'ha-mode="nodes" takes a list, <<"a">> given'),
    ({"ha-params": 2}, "ha-mode must be specified to specify ha-params, "
     "ha-sync-mode or ha-promote-on-shutdown"),
    ({"ha-promote-on-failure": "always"}, "ha-mode must be specified to "
     "specify ha-params, ha-sync-mode or ha-promote-on-shutdown"),
    ({"ha-mode": "all", "ha-sync-mode": "bogus"},
     'ha-sync-mode must be "manual" or "automatic", got <<"bogus">>'),
    ({"ha-mode": "all", "ha-sync-mode": 5},
     'ha-sync-mode must be "manual" or "automatic", got 5'),
    ({"ha-mode": "all", "ha-promote-on-shutdown": "bogus"},
     'ha-promote-on-shutdown must be "always" or "when-synced", got '
     '<<"bogus">>'),
    ({"ha-mode": "all", "ha-promote-on-failure": "bogus"},
     'ha-promote-on-failure must be "always" or "when-synced", got '
     '<<"bogus">>'),
    ({"ha-mode": "all", "ha-sync-batch-size": 0},
     "ha-sync-batch-size takes an integer greater than 0, 0 given"),
])
def test_ha_policy_validation(env, definition, reason):
    host, port, api = env
    name = "ha-" + uuid.uuid4().hex[:8]
    r = api.put("/api/policies/%2F/" + name,
                {"pattern": "^" + name, "definition": definition})
    try:
        assert r.status == 400
        assert html.unescape(r.json["reason"]) == VF % reason
    finally:
        api.delete("/api/policies/%2F/" + name)


@pytest.mark.parametrize("definition", [
    {"ha-mode": "all", "ha-sync-mode": "automatic",
     "ha-promote-on-shutdown": "always",
     "ha-promote-on-failure": "when-synced", "ha-sync-batch-size": 5},
    {"ha-mode": "exactly", "ha-params": 2, "ha-sync-mode": "manual"},
    {"ha-mode": "nodes", "ha-params": ["rabbit@a", "rabbit@b"]},
    {"delivery-limit": 5},
])
def test_ha_policies_are_kept(env, definition):
    host, port, api = env
    name = "ha-" + uuid.uuid4().hex[:8]
    r = api.put("/api/policies/%2F/" + name,
                {"pattern": "^" + name, "definition": definition})
    try:
        assert r.status in (201, 204), r
        got = api.ok("GET", "/api/policies/%2F/" + name)
        assert got["definition"] == definition
    finally:
        api.delete("/api/policies/%2F/" + name)
