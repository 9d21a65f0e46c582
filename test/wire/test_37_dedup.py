"""Deduplication (Warren only): the queue and exchange argument
x-message-deduplication = true with x-cache-size, x-cache-ttl and
x-deduplication-header, as LavinMQ and the rabbitmq-message-deduplication
plugin name them (neither ships with RabbitMQ 3.10, so these tests run
against Warren only).

A message whose key (the x-deduplication-header header, or the header
the argument names) is in the cache is dropped: not enqueued (queue
level) or not routed (exchange level), and still confirmed with
basic.ack, never returned. Keys leave the cache after x-cache-ttl (or the
message's own x-cache-ttl header) and, oldest first, when x-cache-size
is reached. After a kill -9 the caches are rebuilt from the persistent
messages that come back.
"""

import os
import time

import pika
import pytest

from test_20_mgmt_api import Mgmt, http_port
from wireutil import vhost_dir

pytestmark = pytest.mark.warren_only

DEDUP = {"x-message-deduplication": True}
HDR = "x-deduplication-header"


def props(key, persistent=False, **headers):
    h = {HDR: key} if key is not None else {}
    h.update(headers)
    return pika.BasicProperties(headers=h,
                                delivery_mode=2 if persistent else None)


def count(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def bodies(ch, q):
    out = []
    while True:
        m, _p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(body.decode())


def test_queue_level_drops_duplicates_and_confirms_them(pconn, uname):
    ch = pconn.channel()
    q = uname("q")
    ch.queue_declare(q, arguments=dict(DEDUP, **{"x-cache-size": 100}))
    ch.confirm_delivery()
    # Every publish is confirmed (pika raises on a nack or a return).
    for i, key in enumerate(["a", "b", "a", "c", "b", "a"]):
        ch.basic_publish("", q, b"%d" % i, props(key), mandatory=True)
    # Messages without the header are never duplicates.
    for i in range(3):
        ch.basic_publish("", q, b"n%d" % i, props(None), mandatory=True)
    assert bodies(ch, q) == ["0", "1", "3", "n0", "n1", "n2"]
    # Consumed, but still in the window: still a duplicate.
    ch.basic_publish("", q, b"again", props("a"), mandatory=True)
    assert count(ch, q) == 0


def test_queue_level_only_for_that_queue(pconn, uname):
    ch = pconn.channel()
    x, q1, q2 = uname("x"), uname("q"), uname("q")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q1, arguments=DEDUP)
    ch.queue_declare(q2)
    ch.queue_bind(q1, x)
    ch.queue_bind(q2, x)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish(x, "", b"%d" % i, props("k"), mandatory=True)
    assert (count(ch, q1), count(ch, q2)) == (1, 3)


def test_exchange_level(pconn, uname):
    ch = pconn.channel()
    x, q1, q2 = uname("x"), uname("q"), uname("q")
    ch.exchange_declare(x, "direct", arguments=dict(DEDUP, **{
        "x-cache-size": 10, "x-cache-ttl": 60000}))
    for q in (q1, q2):
        ch.queue_declare(q)
    ch.queue_bind(q1, x, "one")
    ch.queue_bind(q2, x, "two")
    ch.confirm_delivery()
    ch.basic_publish(x, "one", b"1", props("k1"), mandatory=True)
    # The same key, any routing key: dropped before routing.
    ch.basic_publish(x, "two", b"2", props("k1"), mandatory=True)
    ch.basic_publish(x, "two", b"3", props("k2"), mandatory=True)
    assert (bodies(ch, q1), bodies(ch, q2)) == (["1"], ["3"])


def test_custom_header_and_message_id(pconn, uname):
    ch = pconn.channel()
    q1, q2 = uname("q"), uname("q")
    ch.queue_declare(q1, arguments=dict(DEDUP, **{
        "x-deduplication-header": "order"}))
    ch.queue_declare(q2, arguments=dict(DEDUP, **{
        "x-deduplication-header": "message_id"}))
    ch.confirm_delivery()
    ch.basic_publish("", q1, b"1", pika.BasicProperties(headers={"order": 7}))
    ch.basic_publish("", q1, b"2", pika.BasicProperties(headers={"order": 7}))
    ch.basic_publish("", q1, b"3", pika.BasicProperties(headers={"order": "7"}))
    ch.basic_publish("", q1, b"4", props("x"))  # not the header it reads
    assert bodies(ch, q1) == ["1", "3", "4"]
    for i, mid in enumerate(["m1", "m2", "m1"]):
        ch.basic_publish("", q2, b"%d" % i,
                         pika.BasicProperties(message_id=mid))
    assert bodies(ch, q2) == ["0", "1"]


def test_ttl_expiry_lets_the_key_in_again(pconn, uname):
    ch = pconn.channel()
    q = uname("q")
    ch.queue_declare(q, arguments=dict(DEDUP, **{"x-cache-ttl": 300}))
    ch.confirm_delivery()
    ch.basic_publish("", q, b"1", props("k"))
    ch.basic_publish("", q, b"2", props("k"))
    # A message's own x-cache-ttl header overrides the queue's.
    ch.basic_publish("", q, b"3", props("long", **{"x-cache-ttl": 60000}))
    time.sleep(0.5)
    ch.basic_publish("", q, b"4", props("k"))
    ch.basic_publish("", q, b"5", props("long"))
    assert bodies(ch, q) == ["1", "3", "4"]


def test_cache_size_evicts_the_oldest(pconn, uname):
    ch = pconn.channel()
    q = uname("q")
    ch.queue_declare(q, arguments=dict(DEDUP, **{"x-cache-size": 3}))
    ch.confirm_delivery()
    for k in ["a", "b", "c", "d"]:  # "a" is evicted by "d"
        ch.basic_publish("", q, k.encode(), props(k))
    for k in ["b", "c", "d", "a"]:
        ch.basic_publish("", q, (k + "2").encode(), props(k))
    assert bodies(ch, q) == ["a", "b", "c", "d", "a2"]


def test_management_shows_arguments_and_counts(broker, pconn, uname):
    api = Mgmt(http_port(broker))
    ch = pconn.channel()
    q, x = uname("q"), uname("x")
    args = dict(DEDUP, **{"x-cache-size": 5})
    ch.queue_declare(q, arguments=args)
    ch.exchange_declare(x, "fanout", arguments=args)
    ch.queue_bind(q, x)
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish(x, "", b"m", props("k"))
    ch.basic_publish("", q, b"m", props("k"))
    qj = api.get("/api/queues/%2F/" + q).json
    assert qj["arguments"] == args
    assert qj["deduplication"] == {"dropped": 1, "entries": 1, "size": 5}
    xj = api.get("/api/exchanges/%2F/" + x).json
    assert xj["arguments"] == args
    assert xj["deduplication"] == {"dropped": 2, "entries": 1, "size": 5}


@pytest.mark.parametrize("kind", ["queue", "exchange"])
def test_argument_errors(pconn, uname, kind):
    cases = [
        ({"x-message-deduplication": "yes"},
         "x-message-deduplication", "{unacceptable_type,longstr}"),
        ({"x-cache-size": 0}, "x-cache-size", "{value_zero,0}"),
        ({"x-cache-size": -5}, "x-cache-size", "{value_negative,-5}"),
        ({"x-cache-size": "10"}, "x-cache-size",
         '"expected integer, got longstr"'),
        ({"x-cache-size": 2 ** 31}, "x-cache-size",
         "{value_too_large,2147483648}"),
        ({"x-cache-ttl": -1}, "x-cache-ttl", "{value_negative,-1}"),
        ({"x-deduplication-header": 5}, "x-deduplication-header",
         "{unacceptable_type,signedint}"),
    ]
    for args, key, why in cases:
        name = uname(kind[0])
        ch = pconn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            if kind == "queue":
                ch.queue_declare(name, arguments=dict(DEDUP, **args))
            else:
                ch.exchange_declare(name, "direct",
                                    arguments=dict(DEDUP, **args))
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - invalid arg '%s' for %s '%s' in "
            "vhost '/': %s" % (key, kind, name, why))


def test_redeclare_with_other_cache_size_is_inequivalent(pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    ch.exchange_declare(x, "direct", arguments=dict(DEDUP, **{
        "x-cache-size": 5}))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "direct", arguments=dict(DEDUP, **{
            "x-cache-size": 6}))
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - inequivalent arg 'x-cache-size' for "
        "exchange '%s' in vhost '/': received '6' but current is '5'" % x)


def test_duplicate_of_confirmed_message_dropped_after_kill_9(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("dq", durable=True, arguments=dict(DEDUP, **{
        "x-cache-ttl": 600000}))
    ch.exchange_declare("dx", "fanout", durable=True, arguments=DEDUP)
    ch.queue_declare("plain", durable=True)
    ch.queue_bind("plain", "dx")
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"q1", props("k", persistent=True))
    ch.basic_publish("dx", "", b"x1", props("k", persistent=True))
    # Transient messages do not survive, and neither do their keys.
    ch.basic_publish("", "dq", b"t1", props("t"))
    b.kill()
    b.start("127.0.0.1:%d" % b.port)
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"q2", props("k", persistent=True))
    ch.basic_publish("dx", "", b"x2", props("k", persistent=True))
    ch.basic_publish("", "dq", b"t2", props("t"))
    assert bodies(ch, "dq") == ["q1", "t2"]
    assert bodies(ch, "plain") == ["x1"]
    conn.close()


def test_window_survives_a_clean_restart_for_logged_messages(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("dq", durable=True, arguments=dict(DEDUP, **{
        "x-cache-ttl": 600000}))
    ch.exchange_declare("dx", "fanout", durable=True, arguments=DEDUP)
    ch.queue_declare("plain", durable=True)
    ch.queue_bind("plain", "dx")
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"q1", props("k", persistent=True))
    ch.basic_publish("dx", "", b"x1", props("k", persistent=True))
    ch.basic_publish("", "dq", b"t1", props("t"))
    # All consumed before the restart: only the caches remember them.
    assert bodies(ch, "dq") == ["q1", "t1"]
    assert bodies(ch, "plain") == ["x1"]
    conn.close()
    b.restart()
    snapshot = os.path.join(vhost_dir(b.data_dir), "dedup.snapshot")
    assert not os.path.exists(snapshot)  # read once, then removed
    api = Mgmt(http_port(b))
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"q2", props("k", persistent=True))
    ch.basic_publish("dx", "", b"x2", props("k", persistent=True))
    # A transient message did not survive, so neither did its key: its
    # publisher may send it again.
    ch.basic_publish("", "dq", b"t2", props("t"))
    assert bodies(ch, "dq") == ["t2"]
    assert bodies(ch, "plain") == []
    assert api.get("/api/queues/%2F/dq").json["deduplication"]["dropped"] == 1
    conn.close()


def test_definitions_export_import_keeps_arguments(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    args = dict(DEDUP, **{"x-cache-size": 7, "x-cache-ttl": 1000,
                          "x-deduplication-header": "h"})
    ch.queue_declare("dq", durable=True, arguments=args)
    ch.exchange_declare("dx", "topic", durable=True, arguments=args)
    conn.close()
    defs = Mgmt(http_port(b)).get("/api/definitions").json
    b2 = make_broker()
    api2 = Mgmt(http_port(b2))
    r = api2.request("POST", "/api/definitions", body=defs)
    assert r.status in (200, 204), r.body
    assert api2.get("/api/queues/%2F/dq").json["arguments"] == args
    assert api2.get("/api/exchanges/%2F/dx").json["arguments"] == args
    conn = b2.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(2):
        ch.basic_publish("", "dq", b"%d" % i,
                         pika.BasicProperties(headers={"h": "v"}))
    assert count(ch, "dq") == 1
    conn.close()
