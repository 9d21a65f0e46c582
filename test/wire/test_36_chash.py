"""The x-consistent-hash exchange (RabbitMQ's
rabbitmq_consistent_hash_exchange plugin): integer weights as binding
keys, one queue per message chosen by the routing key, a header
(hash-header) or a property (hash-property), the same key always to the
same queue, about 1/N of the keys moving when a queue joins, the
plugin's error texts, and (Warren only) the mapping kept across a
restart and through definitions export/import.

Every test not marked warren_only passes against RabbitMQ 3.10 with the
plugin enabled (rabbitmq-plugins enable rabbitmq_consistent_hash_exchange).
Warren's key -> queue mapping is its own (XXH3 where RabbitMQ uses
erlang:phash2), so the tests compare properties of the mapping, never
the mapping itself.
"""

import json

import pika
import pytest

from test_20_mgmt_api import Mgmt, http_port

CHX = "x-consistent-hash"
N_KEYS = 10000


def declare(ch, x, queues, weights, arguments=None, durable=False):
    ch.exchange_declare(x, CHX, durable=durable, arguments=arguments)
    for q, w in zip(queues, weights):
        ch.queue_declare(q, durable=durable)
        ch.queue_bind(q, x, str(w))


def publish_keys(ch, x, keys, props_for=None, rk_for=None):
    """Publishes one message per key (body = key) with confirms."""
    ch.confirm_delivery()
    for k in keys:
        ch.basic_publish(x, rk_for(k) if rk_for else k, k.encode(),
                         props_for(k) if props_for else None)


def drain_map(ch, queues, expected):
    """Consumes every message of queues: {body: queue}; checks the count
    and that no body came twice to different queues."""
    where = {}
    total = 0
    for q in queues:
        for _m, _p, body in ch.consume(q, auto_ack=True,
                                       inactivity_timeout=0.5):
            if body is None:
                break
            k = body.decode()
            assert where.setdefault(k, q) == q, "key %s in two queues" % k
            total += 1
        ch.cancel()
    assert total == expected
    return where


def counts(ch, queues):
    return [ch.queue_declare(q, passive=True).method.message_count
            for q in queues]


def test_declare_and_bad_binding_keys(pconn, uname):
    ch = pconn.channel()
    x, q = uname("x"), uname("q")
    ch.exchange_declare(x, CHX)
    ch.queue_declare(q)
    for key, text in [
            ("abc", 'The binding key must be an integer: <<"abc">>'),
            ("1.5", 'The binding key must be an integer: <<"1.5">>'),
            ("", "The binding key must be an integer: <<>>"),
            (" 3", 'The binding key must be an integer: <<" 3">>'),
            ("0", "The binding key must be greater than 0"),
            ("-1", "The binding key must be greater than 0")]:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_bind(q, x, key)
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - " + text)
        ch = pconn.channel()
    # Erlang's list_to_integer reads a sign and leading zeros.
    ch.queue_bind(q, x, "+3")
    ch.queue_bind(q, x, "007")
    # exchange.bind to a consistent-hash exchange checks the key too.
    x2 = uname("x")
    ch.exchange_declare(x2, "fanout")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_bind(x2, x, "w")
    assert e.value.reply_code == 406


@pytest.mark.warren_only
def test_weight_above_limit_is_refused(pconn, uname):
    # RabbitMQ takes any positive weight and makes a record per bucket
    # (a weight of 10^8 grew it past 10 GB); Warren bounds it.
    ch = pconn.channel()
    x, q = uname("x"), uname("q")
    ch.exchange_declare(x, CHX)
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_bind(q, x, "2147483648")
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - The binding key must not be greater "
        "than 2147483647")
    ch = pconn.channel()
    ch.queue_bind(q, x, "2147483647")


def test_bad_exchange_arguments(pconn, uname):
    ch = pconn.channel()
    for args, text in [
            ({"hash-header": "h", "hash-property": "message_id"},
             "hash-header and hash-property are mutually exclusive"),
            ({"hash-property": "app_id"}, "Unsupported property: app_id")]:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.exchange_declare(uname("x"), CHX, arguments=args)
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - " + text)
        ch = pconn.channel()


@pytest.mark.warren_only
def test_non_string_hash_argument_is_a_406(pconn, uname):
    # RabbitMQ 3.10 crashes on these (541 INTERNAL_ERROR, connection
    # closed); Warren refuses them on the channel.
    ch = pconn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(uname("x"), CHX, arguments={"hash-header": 5})
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - hash-header must be a string, got signedint")


def test_routing_key_same_key_same_queue_by_weight(pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    qs = [uname("q") for _ in range(3)]
    declare(ch, x, qs, [1, 1, 2])
    keys = ["key-%d" % i for i in range(N_KEYS)]
    publish_keys(ch, x, keys)
    c = counts(ch, qs)
    assert sum(c) == N_KEYS
    # weights 1:1:2, within 5% of the total each
    for got, share in zip(c, [0.25, 0.25, 0.5]):
        assert abs(got - share * N_KEYS) < 0.05 * N_KEYS, c
    first = drain_map(ch, qs, N_KEYS)
    # The same keys again, in another order: every key to its queue.
    publish_keys(ch, x, list(reversed(keys)))
    assert drain_map(ch, qs, N_KEYS) == first


def test_adding_a_queue_moves_about_one_nth(pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    qs = [uname("q") for _ in range(5)]
    declare(ch, x, qs[:4], [1] * 4)
    keys = ["acct-%d" % i for i in range(4000)]
    publish_keys(ch, x, keys)
    before = drain_map(ch, qs[:4], len(keys))
    ch.queue_declare(qs[4])
    ch.queue_bind(qs[4], x, "1")
    publish_keys(ch, x, keys)
    after = drain_map(ch, qs, len(keys))
    moved = [k for k in keys if before[k] != after[k]]
    # Keys move only to the new queue, and about 1/5 of them.
    assert all(after[k] == qs[4] for k in moved)
    assert 0.5 / 5 * len(keys) < len(moved) < 1.5 / 5 * len(keys), len(moved)


def test_hash_header(pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    qs = [uname("q") for _ in range(4)]
    declare(ch, x, qs, [1] * 4, arguments={"hash-header": "account"})
    accounts = ["a%d" % i for i in range(300)]
    msgs = ["%s/%d" % (a, n) for a in accounts for n in range(3)]
    # The routing key changes with every message; the header decides.
    publish_keys(
        ch, x, msgs, rk_for=lambda k: k,
        props_for=lambda k: pika.BasicProperties(
            headers={"account": k.split("/")[0]}))
    where = drain_map(ch, qs, len(msgs))
    for a in accounts:
        assert len({where["%s/%d" % (a, n)] for n in range(3)}) == 1
    assert len(set(where.values())) == 4
    # Messages without the header all go to one queue.
    publish_keys(ch, x, ["none-%d" % i for i in range(50)])
    assert len(set(drain_map(ch, qs, 50).values())) == 1


@pytest.mark.parametrize("prop", ["message_id", "correlation_id",
                                  "timestamp"])
def test_hash_property(pconn, uname, prop):
    ch = pconn.channel()
    x = uname("x")
    qs = [uname("q") for _ in range(4)]
    declare(ch, x, qs, [1] * 4, arguments={"hash-property": prop})

    def props(k):
        v = k.split("/")[0]
        if prop == "timestamp":
            return pika.BasicProperties(timestamp=1700000000 + int(v))
        return pika.BasicProperties(**{prop: "id-" + v})

    msgs = ["%d/%d" % (i, n) for i in range(200) for n in range(2)]
    publish_keys(ch, x, msgs, rk_for=lambda k: k, props_for=props)
    where = drain_map(ch, qs, len(msgs))
    for i in range(200):
        assert where["%d/0" % i] == where["%d/1" % i]
    assert len(set(where.values())) == 4


def test_listed_in_management(broker, pconn, uname):
    if broker.target == "rabbitmq":
        pytest.skip("management port of the external broker unknown")
    api = Mgmt(http_port(broker))
    types = [t["name"] for t in api.get("/api/overview").json["exchange_types"]]
    assert CHX in types
    ch = pconn.channel()
    x = uname("x")
    ch.exchange_declare(x, CHX, arguments={"hash-header": "h"})
    e = api.get("/api/exchanges/%2F/" + x).json
    assert (e["type"], e["arguments"]) == (CHX, {"hash-header": "h"})


@pytest.mark.warren_only
def test_mapping_survives_restart_and_definitions(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    qs = ["chq%d" % i for i in range(4)]
    declare(ch, "chx", qs, [1, 3, 2, 1], durable=True)
    # A binding removed before the restart renumbers the buckets.
    ch.queue_declare("chq-gone", durable=True)
    ch.queue_bind("chq-gone", "chx", "2")
    ch.queue_unbind("chq-gone", "chx", "2")
    ch.queue_delete("chq-gone")
    keys = ["k%d" % i for i in range(3000)]
    publish_keys(ch, "chx", keys)
    before = drain_map(ch, qs, len(keys))
    conn.close()
    defs = Mgmt(http_port(b)).get("/api/definitions").json
    b.restart()
    conn = b.pika()
    ch = conn.channel()
    publish_keys(ch, "chx", keys)
    assert drain_map(ch, qs, len(keys)) == before
    conn.close()

    # The exported definitions, imported into another broker, give the
    # same mapping (bindings keep their order).
    b2 = make_broker()
    api2 = Mgmt(http_port(b2))
    r = api2.request("POST", "/api/definitions", body=defs)
    assert r.status in (200, 204), r.body
    binds = [(x["destination"], x["routing_key"])
             for x in api2.get("/api/definitions").json["bindings"]
             if x["source"] == "chx"]
    assert binds == [(q, str(w)) for q, w in zip(qs, [1, 3, 2, 1])]
    conn = b2.pika()
    ch = conn.channel()
    publish_keys(ch, "chx", keys)
    assert drain_map(ch, qs, len(keys)) == before
    conn.close()
    assert json.dumps(defs)  # exported as plain JSON
