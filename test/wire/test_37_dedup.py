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
is reached. After a kill -9 the caches are rebuilt from the vhost's
deduplication journal (every key of a persistent message a durable
cache remembered, consumed or not) and the persistent messages that
come back.
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


def restart_killed(b):
    # A confirmed persistent publish: everything logged before it (acks,
    # purges) is on disk too, in order.
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("barrier", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "barrier", b"", props(None, persistent=True))
    conn.close()
    b.kill()  # SIGKILL: no snapshot
    b.start("127.0.0.1:%d" % b.port)
    assert not os.path.exists(os.path.join(vhost_dir(b.data_dir),
                                           "dedup.snapshot"))


def test_window_of_consumed_messages_survives_kill_9(make_broker):
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
    # consumed and acked: the log no longer has them
    assert bodies(ch, "dq") == ["q1"]
    assert bodies(ch, "plain") == ["x1"]
    conn.close()
    restart_killed(b)
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()  # pika raises on a nack: duplicates are acked
    ch.basic_publish("", "dq", b"q2", props("k", persistent=True))
    ch.basic_publish("dx", "", b"x2", props("k", persistent=True))
    ch.basic_publish("", "dq", b"q3", props("new", persistent=True))
    assert bodies(ch, "dq") == ["q3"]
    assert bodies(ch, "plain") == []
    api = Mgmt(http_port(b))
    assert api.get("/api/queues/%2F/dq").json["deduplication"]["dropped"] == 1
    conn.close()


def test_ttl_is_honoured_across_kill_9(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("dq", durable=True, arguments=dict(DEDUP, **{
        "x-cache-ttl": 2500}))
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"a1", props("a", persistent=True))
    # its own, longer TTL
    ch.basic_publish("", "dq", b"b1", props("b", persistent=True,
                                            **{"x-cache-ttl": 600000}))
    assert bodies(ch, "dq") == ["a1", "b1"]
    conn.close()
    t0 = time.monotonic()
    restart_killed(b)
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    if time.monotonic() - t0 < 2.0:
        # still inside the window: dropped
        ch.basic_publish("", "dq", b"a2", props("a", persistent=True))
        assert bodies(ch, "dq") == []
    time.sleep(max(0.0, 2.7 - (time.monotonic() - t0)))
    ch.basic_publish("", "dq", b"a3", props("a", persistent=True))
    ch.basic_publish("", "dq", b"b3", props("b", persistent=True))
    assert bodies(ch, "dq") == ["a3"]
    conn.close()


def test_cache_size_bound_and_order_kept_across_kill_9(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("dq", durable=True, arguments=dict(DEDUP, **{
        "x-cache-size": 3}))
    ch.confirm_delivery()
    for k in "abcde":  # the cache keeps c, d, e
        ch.basic_publish("", "dq", k.encode(), props(k, persistent=True))
    assert bodies(ch, "dq") == list("abcde")
    conn.close()
    restart_killed(b)
    api = Mgmt(http_port(b))
    assert api.get("/api/queues/%2F/dq").json["deduplication"]["entries"] == 3
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    for k in "cdeab":
        ch.basic_publish("", "dq", k.encode() + b"2",
                         props(k, persistent=True))
    # c, d, e dropped; a then b taken, evicting c and d (oldest first)
    assert bodies(ch, "dq") == ["a2", "b2"]
    # the cache is now e, a, b: e still dropped, c taken
    ch.basic_publish("", "dq", b"e3", props("e", persistent=True))
    ch.basic_publish("", "dq", b"c3", props("c", persistent=True))
    assert bodies(ch, "dq") == ["c3"]
    conn.close()


def test_a_deleted_queue_does_not_pass_its_keys_on(make_broker):
    b = make_broker()
    conn = b.pika()
    ch = conn.channel()
    ch.queue_declare("dq", durable=True, arguments=DEDUP)
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"k1", props("k", persistent=True))
    ch.queue_delete("dq")
    ch.queue_declare("dq", durable=True, arguments=DEDUP)
    conn.close()
    restart_killed(b)
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"k2", props("k", persistent=True))
    assert bodies(ch, "dq") == ["k2"]
    conn.close()


def test_journal_is_compacted(make_broker):
    """Far more keys than the cache holds: the journal is rewritten with
    the live keys once it passes 1 MiB (and four times its last
    rewrite), so it stays near that bound, and the window is intact."""
    b = make_broker()
    rc = b.raw()
    rc.open_channel(1)
    rc.call(1, "queue.declare", queue="dq", durable=True,
            arguments=dict(DEDUP, **{"x-cache-size": 100}))
    rc.call(1, "confirm.select")
    journal = os.path.join(vhost_dir(b.data_dir), "dedup.journal")
    n, batch = 80000, 10000  # ~40 bytes a record: ~3.2 MB uncompacted
    for start in range(0, n, batch):
        rc.send(b"".join(rc.publish_frames(
            1, "", "dq", b"", props={"delivery_mode": 2,
                                     "headers": {HDR: "key-%d" % i}})
            for i in range(start, start + batch)))
        acked = start
        while acked < start + batch:
            m = rc.read_method(timeout=30)
            assert m.name == "basic.ack", m
            acked = m.delivery_tag if m.multiple else acked + 1
    size = os.path.getsize(journal)
    assert size < (1 << 20) + 200000, size
    rc.call(1, "queue.purge", queue="dq")
    rc.close_socket()
    restart_killed(b)
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "dq", b"old", props("key-%d" % (n - 101),
                                             persistent=True))
    ch.basic_publish("", "dq", b"new", props("key-%d" % (n - 50),
                                             persistent=True))
    ch.basic_publish("", "dq", b"first", props("key-0", persistent=True))
    assert bodies(ch, "dq") == ["old", "first"]
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
