"""Policies acting on queues as in RabbitMQ 3.10: message-ttl, expires,
max-length(-bytes) (the lowest of argument and policy wins), overflow and
dead-letter-exchange/-routing-key (the argument wins), applied to queues
declared later and to queues that exist when the policy changes.

Runs against a private Warren with the management API, or with
WARREN_TEST_BROKER=host:port against that broker, whose management API
is at WARREN_TEST_MGMT_PORT (default 15672)."""

import os
import time
import uuid

import pytest

import conftest
import rawamqp
from test_20_mgmt_api import MGMT_CONF, Mgmt, http_port
from wireutil import confirm_select, get_bodies, publish_sync, wait_until


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    ext = conftest.external_broker()
    if ext is not None:
        port = int(os.environ.get("WARREN_TEST_MGMT_PORT", "15672"))
        yield ext[0], ext[1], Mgmt(port, host=ext[0])
        return
    b = conftest.new_warren(str(tmp_path_factory.mktemp("pol")), MGMT_CONF)
    yield b.host, b.port, Mgmt(http_port(b))
    conftest.stop_checked(b)


@pytest.fixture
def pol(env):
    """(channel connection, set_policy, unique prefix); cleans up."""
    host, port, api = env
    prefix = "pol-" + uuid.uuid4().hex[:8]
    names = []
    c = rawamqp.connect(host, port)
    c.open_channel(1)

    def set_policy(name, definition, pattern=None, priority=0):
        names.append(name)
        r = api.put("/api/policies/%2F/" + name, {
            "pattern": pattern or "^" + prefix, "definition": definition,
            "priority": priority, "apply-to": "queues"})
        assert r.status in (201, 204), r

    yield c, set_policy, prefix, api
    for n in names:
        api.delete("/api/policies/%2F/" + n)
    c2 = rawamqp.connect(host, port)
    c2.open_channel(1)
    for suffix in ("-q", "-dlq", "-x", "-y"):
        c2.call(1, "queue.delete", queue=prefix + suffix)
        c2.call(1, "exchange.delete", exchange=prefix + suffix)
    c2.close_socket()
    c.close_socket()


def count(c, q):
    return c.call(1, "queue.declare", queue=q, passive=True).message_count


def fill(c, q, n):
    confirm_select(c, 1)
    for i in range(n):
        publish_sync(c, 1, "", q, b"%d" % i)


def test_policy_ttl_and_dead_letter_exchange(pol):
    c, set_policy, p, api = pol
    set_policy(p + "-ttl", {"message-ttl": 50,
                            "dead-letter-exchange": "",
                            "dead-letter-routing-key": p + "-dlq"},
               pattern="^" + p + "-q$")
    c.call(1, "queue.declare", queue=p + "-dlq")
    c.call(1, "queue.declare", queue=p + "-q")
    fill(c, p + "-q", 1)
    assert wait_until(lambda: count(c, p + "-dlq") == 1)
    assert count(c, p + "-q") == 0
    # (RabbitMQ shows it once the queue's stats came in: wait)
    r = wait_until(lambda: (lambda j: j if j.get("policy") else None)(
        api.get("/api/queues/%2F/" + p + "-q").json), timeout=10)
    assert r and r["policy"] == p + "-ttl", r
    assert r["effective_policy_definition"]["message-ttl"] == 50


def test_lowest_max_length_wins(pol):
    c, set_policy, p, _ = pol
    set_policy(p + "-len", {"max-length": 2})
    c.call(1, "queue.declare", queue=p + "-q",
           arguments={"x-max-length": 5})
    c.call(1, "queue.declare", queue=p + "-x",
           arguments={"x-max-length": 1})
    fill(c, p + "-q", 4)
    fill(c, p + "-x", 4)
    assert get_bodies(c, 1, p + "-q") == [b"2", b"3"]
    assert get_bodies(c, 1, p + "-x") == [b"3"]


def test_argument_overflow_wins_over_policy(pol):
    c, set_policy, p, _ = pol
    set_policy(p + "-ovf", {"max-length": 1, "overflow": "reject-publish"})
    c.call(1, "queue.declare", queue=p + "-q")
    c.call(1, "queue.declare", queue=p + "-x",
           arguments={"x-overflow": "drop-head"})
    c.call(1, "confirm.select")
    c.publish(1, "", p + "-q", b"a")
    c.publish(1, "", p + "-q", b"b")
    acks = [c.read_method().name for _ in range(2)]
    assert acks == ["basic.ack", "basic.nack"]
    fill(c, p + "-x", 2)
    assert get_bodies(c, 1, p + "-x") == [b"1"]


def test_policy_change_applies_to_existing_queues(pol, env):
    c, set_policy, p, api = pol
    c.call(1, "queue.declare", queue=p + "-q")
    fill(c, p + "-q", 3)
    set_policy(p + "-late", {"max-length": 1})
    assert wait_until(lambda: count(c, p + "-q") == 1)
    assert api.delete("/api/policies/%2F/" + p + "-late").status == 204
    # without the policy the queue takes messages again
    time.sleep(0.2)
    fill(c, p + "-q", 2)
    assert wait_until(lambda: count(c, p + "-q") == 3)


def test_highest_priority_policy_applies(pol):
    c, set_policy, p, api = pol
    set_policy(p + "-lo", {"max-length": 3}, priority=1)
    set_policy(p + "-hi", {"max-length": 1}, priority=5)
    c.call(1, "queue.declare", queue=p + "-q")
    fill(c, p + "-q", 3)
    assert get_bodies(c, 1, p + "-q") == [b"2"]
    assert wait_until(lambda: api.get("/api/queues/%2F/" + p + "-q").json.get(
        "policy") == p + "-hi", timeout=10)
