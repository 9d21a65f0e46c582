"""Queues: declare (server-named, passive, durable, exclusive, auto-delete,
argument equivalence and validation), reserved names, counts, the "last
declared queue" shorthand, bind/unbind, purge, delete, consumer cancel
notification.

Exact replies observed on RabbitMQ 3.10.8. Surprises:
  - the empty queue name means "last queue declared on this channel" for
    bind/unbind/purge/delete/get/consume, but a *passive declare* of ''
    is 404 "no queue ''"; a passive declare by name also sets the last
    queue; the name survives the queue's deletion;
  - queue.unbind on another connection's exclusive queue succeeds (no 405);
  - re-declaring a server-named amq.gen-* queue non-passively is 403;
  - numeric argument types compare by value (I 1000 == l 1000 == s 1000),
    but a string '1000' is inequivalent to an integer 1000;
  - only RabbitMQ-known x- arguments are checked for equivalence.
"""

import re

import pytest

import rawamqp
from rawamqp import F
from wireutil import (channel_error, confirm_select, get, get_bodies,
                      publish_sync, rabbit_text, temp_queue, wait_until)

LOCKED_FMT = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked "
              "queue '%s' in vhost '/'. It could be originally declared on "
              "another connection or the exclusive property value does not "
              "match that of the original declaration.")


def LOCKED(q):
    # Long names push this text past 255 bytes: RabbitMQ cuts it.
    return rabbit_text(LOCKED_FMT % q)


NO_PREVIOUS = "NOT_FOUND - no previously declared queue"


def no_queue(q):
    return "NOT_FOUND - no queue '%s' in vhost '/'" % q


def test_server_named_queue(rawch):
    m = rawch.call(1, "queue.declare", queue="", exclusive=True)
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", m.queue), m.queue
    assert (m.message_count, m.consumer_count) == (0, 0)
    m2 = rawch.call(1, "queue.declare", queue="", exclusive=True)
    assert m2.queue != m.queue
    # It exists and can be declared passively by name ...
    rawch.call(1, "queue.declare", queue=m.queue, passive=True)
    # ... but not re-declared: the amq. prefix is reserved.
    m = channel_error(rawch, 1, "queue.declare", queue=m.queue,
                      exclusive=True)
    assert m.close_info[0] == 403


def test_passive_declare(rawch, uname):
    q = uname("q")
    m = channel_error(rawch, 1, "queue.declare", queue=q, passive=True)
    assert m.close_info == (404, no_queue(q), 50, 10)
    rawch.open_channel(2)
    rawch.call(2, "queue.declare", queue=q)
    confirm_select(rawch, 2)
    publish_sync(rawch, 2, "", q, b"x")
    # Passive ignores every other field.
    m = rawch.call(2, "queue.declare", queue=q, passive=True, durable=True,
                   exclusive=True, auto_delete=True,
                   arguments={"x-message-ttl": 5})
    assert (m.queue, m.message_count, m.consumer_count) == (q, 1, 0)


def test_declare_ok_counts_ready_messages_and_consumers(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    confirm_select(rawch, 1)
    for i in range(3):
        publish_sync(rawch, 1, "", q, b"%d" % i)
    m = rawch.call(1, "queue.declare", queue=q)
    assert (m.message_count, m.consumer_count) == (3, 0)
    rawch.open_channel(2)
    rawch.call(2, "basic.qos", prefetch_count=1)
    rawch.send_method(2, "basic.consume", queue=q, consumer_tag="a")
    rawch.send_method(2, "basic.consume", queue=q, consumer_tag="b")
    names = sorted(rawch.read_method().name for _ in range(4))
    assert names == ["basic.consume-ok"] * 2 + ["basic.deliver"] * 2
    m = rawch.call(1, "queue.declare", queue=q, passive=True)
    # Unacknowledged deliveries are not counted.
    assert (m.message_count, m.consumer_count) == (1, 2)


def test_amq_prefix_reserved(rawch):
    m = channel_error(rawch, 1, "queue.declare", queue="amq.wire-test")
    assert m.close_info == (
        403, "ACCESS_REFUSED - queue name 'amq.wire-test' contains reserved "
        "prefix 'amq.*'", 50, 10)
    rawch.open_channel(2)
    # Passive declare of a missing amq. queue is a plain 404.
    m = channel_error(rawch, 2, "queue.declare", queue="amq.wire-test",
                      passive=True)
    assert m.close_info == (404, no_queue("amq.wire-test"), 50, 10)


def test_durable_queue_flags_kept(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, durable=True)
    rawch.call(1, "queue.declare", queue=q, durable=True)
    m = channel_error(rawch, 1, "queue.declare", queue=q, durable=False)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue "
        "'%s' in vhost '/': received 'false' but current is 'true'" % q,
        50, 10)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "queue.declare", queue=q, durable=True,
                      auto_delete=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue "
        "'%s' in vhost '/': received 'true' but current is 'false'" % q,
        50, 10)


def test_redeclare_non_durable_as_durable(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    m = channel_error(rawch, 1, "queue.declare", queue=q, durable=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue "
        "'%s' in vhost '/': received 'true' but current is 'false'" % q,
        50, 10)


# -- exclusive queues ---------------------------------------------------------


@pytest.mark.parametrize("method,kw,ids", [
    ("queue.declare", {}, (50, 10)),
    ("queue.declare", {"exclusive": True}, (50, 10)),
    ("queue.declare", {"passive": True}, (50, 10)),
    ("basic.consume", {}, (60, 20)),
    ("queue.bind", {"exchange": "amq.fanout"}, (50, 20)),
    ("queue.delete", {}, (50, 40)),
    ("queue.purge", {}, (50, 30)),
    ("basic.get", {}, (60, 70)),
])
def test_exclusive_queue_locked_for_other_connections(raw, uname, method, kw,
                                                      ids):
    owner, other = raw(), raw()
    owner.open_channel(1)
    other.open_channel(1)
    q = uname("q")
    owner.call(1, "queue.declare", queue=q, exclusive=True)
    m = channel_error(other, 1, method, queue=q, **kw)
    assert m.close_info == (405, LOCKED(q)) + ids


def test_exclusive_queue_other_connection_publish_and_unbind(raw, uname):
    owner, other = raw(), raw()
    owner.open_channel(1)
    other.open_channel(1)
    q = uname("q")
    owner.call(1, "queue.declare", queue=q, exclusive=True)
    owner.call(1, "queue.bind", queue=q, exchange="amq.fanout")
    # Publishing to it is allowed ...
    other.publish(1, "", q, b"from other")
    # ... unbinding a binding that does not exist is a no-op ...
    other.call(1, "queue.unbind", queue=q, exchange="amq.direct",
               routing_key="never-bound")
    # ... but removing a real binding is locked.
    m = channel_error(other, 1, "queue.unbind", queue=q,
                      exchange="amq.fanout")
    assert m.close_info == (405, LOCKED(q), 50, 50)
    assert get_bodies(owner, 1, q) == [b"from other"]


def test_exclusive_flag_mismatch_on_owner(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, exclusive=True)
    m = channel_error(rawch, 1, "queue.declare", queue=q, exclusive=False)
    assert m.close_info == (405, LOCKED(q), 50, 10)


def test_non_exclusive_declared_exclusive(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    m = channel_error(rawch, 1, "queue.declare", queue=q, exclusive=True)
    assert m.close_info == (405, LOCKED(q), 50, 10)


def test_exclusive_queue_deleted_on_connection_close(raw, uname):
    owner, other = raw(), raw()
    owner.open_channel(1)
    other.open_channel(1)
    q = uname("q")
    owner.call(1, "queue.declare", queue=q, exclusive=True)
    owner.close()
    m = channel_error(other, 1, "queue.declare", queue=q, passive=True)
    assert m.close_info == (404, no_queue(q), 50, 10)


def test_exclusive_queue_deleted_on_socket_drop(broker, raw, uname):
    owner, other = raw(), raw()
    owner.open_channel(1)
    q = uname("q")
    owner.call(1, "queue.declare", queue=q, exclusive=True)
    owner.close_socket()
    ch = [0]

    def gone():
        ch[0] += 1
        other.open_channel(ch[0])
        other.send_method(ch[0], "queue.declare", queue=q, passive=True)
        m = other.read_method()
        if m.name == "channel.close":
            other.send_method(ch[0], "channel.close-ok")
            assert m.close_info[0] in (404, 405)
            return m.close_info[0] == 404
        return False

    assert wait_until(gone, 30.0, 0.05)


def test_exclusive_queue_survives_channel_close(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, exclusive=True)
    rawch.close_channel(1)
    rawch.open_channel(2)
    rawch.call(2, "queue.declare", queue=q, passive=True)


# -- auto-delete --------------------------------------------------------------


def test_auto_delete_not_before_first_consumer(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, auto_delete=True)
    rawch.open_channel(2)
    rawch.close_channel(2)
    rawch.call(1, "queue.declare", queue=q, passive=True)


def test_auto_delete_after_last_consumer_cancelled(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, auto_delete=True)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c1")
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c2")
    rawch.call(1, "basic.cancel", consumer_tag="c1")
    rawch.call(1, "queue.declare", queue=q, passive=True)
    rawch.call(1, "basic.cancel", consumer_tag="c2")
    m = channel_error(rawch, 1, "queue.declare", queue=q, passive=True)
    assert m.close_info == (404, no_queue(q), 50, 10)


def test_auto_delete_when_consumer_channel_closes(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, auto_delete=True)
    rawch.open_channel(2)
    rawch.call(2, "basic.consume", queue=q, consumer_tag="c1")
    rawch.close_channel(2)
    m = channel_error(rawch, 1, "queue.declare", queue=q, passive=True)
    assert m.close_info == (404, no_queue(q), 50, 10)


def test_auto_delete_queue_survives_basic_get(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, auto_delete=True)
    rawch.publish(1, "", q, b"x")
    assert get_bodies(rawch, 1, q) == [b"x"]
    rawch.call(1, "queue.declare", queue=q, passive=True)


# -- arguments ----------------------------------------------------------------


def inequivalent(q, arg, received, current):
    return ("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in "
            "vhost '/': received %s but current is %s"
            % (arg, q, received, current))


@pytest.mark.parametrize("first,second,received,current", [
    # argument added
    ({}, {"x-message-ttl": 1000},
     "the value '1000' of type 'signedint'", "none"),
    # argument removed
    ({"x-message-ttl": 1000}, {},
     "none", "the value '1000' of type 'signedint'"),
    # value changed
    ({"x-message-ttl": 1000}, {"x-message-ttl": 2000}, "'2000'", "'1000'"),
    # type changed (string vs integer)
    ({"x-message-ttl": 1000}, {"x-message-ttl": "1000"}, "'1000'", "'1000'"),
    ({"x-max-length": 10}, {"x-max-length": 10, "x-expires": 5000},
     "the value '5000' of type 'signedint'", "none"),
    ({"x-dead-letter-exchange": "a"}, {"x-dead-letter-exchange": "b"},
     "'b'", "'a'"),
])
def test_inequivalent_arguments(rawch, uname, first, second, received,
                                current):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, arguments=first)
    m = channel_error(rawch, 1, "queue.declare", queue=q, arguments=second)
    arg = (set(first) ^ set(second)) or {k for k in first
                                          if first[k] != second.get(k)}
    assert m.close_info == (406, inequivalent(q, arg.pop(), received,
                                              current), 50, 10)


@pytest.mark.parametrize("tag,value,shown,typename", [
    ("t", True, "true", "bool"),
    ("b", -3, "-3", "byte"),
    ("B", 200, "200", "unsignedbyte"),
    ("s", -300, "-300", "short"),
    ("u", 60000, "60000", "unsignedshort"),
    ("I", -70000, "-70000", "signedint"),
    ("i", 3000000000, "3000000000", "unsignedint"),
    ("l", -5, "-5", "long"),
    ("f", 1.5, "1.5", "float"),
    ("d", 2.25, "2.25", "double"),
    ("S", b"str", "str", "longstr"),
    ("T", 1700000000, "1700000000", "timestamp"),
    ("V", None, "undefined", "void"),
    ("x", b"bin", "bin", "binary"),
])
def test_inequivalent_argument_type_names(rawch, uname, tag, value, shown,
                                          typename):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    m = channel_error(rawch, 1, "queue.declare", queue=q,
                      arguments={"x-message-ttl": F(tag, value)})
    assert m.close_info == (406, inequivalent(
        q, "x-message-ttl", "the value '%s' of type '%s'" % (shown, typename),
        "none"), 50, 10)


@pytest.mark.parametrize("tag", ["b", "B", "s", "u", "I", "i", "l"])
def test_equivalent_across_integer_types(rawch, uname, tag):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q,
               arguments={"x-message-ttl": F("I", 100)})
    rawch.call(1, "queue.declare", queue=q,
               arguments={"x-message-ttl": F(tag, 100)})


def test_unknown_arguments_not_compared(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q, arguments={"x-foo": 1})
    rawch.call(1, "queue.declare", queue=q, arguments={"x-foo": "two"})
    rawch.call(1, "queue.declare", queue=q, arguments={"bar": 3})
    rawch.call(1, "queue.declare", queue=q)


@pytest.mark.parametrize("args,text", [
    ({"x-message-ttl": "abc"}, "'x-message-ttl' for queue '%s' in vhost "
     "'/': \"expected integer, got longstr\""),
    ({"x-message-ttl": -5}, "'x-message-ttl' for queue '%s' in vhost '/': "
     "{value_negative,-5}"),
    ({"x-message-ttl": 1.5}, "'x-message-ttl' for queue '%s' in vhost '/': "
     "\"expected integer, got double\""),
    ({"x-expires": 0}, "'x-expires' for queue '%s' in vhost '/': "
     "{value_zero,0}"),
    ({"x-max-length": -1}, "'x-max-length' for queue '%s' in vhost '/': "
     "{value_negative,-1}"),
    ({"x-max-priority": 300}, "'x-max-priority' for queue '%s' in vhost "
     "'/': {max_value_exceeded,300}"),
    ({"x-overflow": "nope"}, "'x-overflow' for queue '%s' in vhost '/': "
     "invalid_overflow"),
    ({"x-queue-type": "nope"}, "'x-queue-type' for queue '%s' in vhost "
     "'/': \"unsupported queue type 'nope'\""),
])
def test_invalid_arguments(rawch, uname, args, text):
    q = uname("q")
    m = channel_error(rawch, 1, "queue.declare", queue=q, arguments=args)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - invalid arg " + text % q, 50, 10)


def test_invalid_argument_type(rawch, uname):
    q = uname("q")
    m = channel_error(rawch, 1, "queue.declare", queue=q,
                      arguments={"x-dead-letter-exchange": 1})
    assert m.close_info == (
        406, "PRECONDITION_FAILED - invalid type 'signedint' for arg "
        "'x-dead-letter-exchange' in queue '%s' in vhost '/'" % q, 50, 10)


def test_valid_arguments_accepted(rawch, uname):
    q = uname("q")
    args = {"x-message-ttl": 60000, "x-expires": 600000,
            "x-max-length": 100, "x-max-length-bytes": 1 << 20,
            "x-overflow": "reject-publish", "x-dead-letter-exchange": "dlx",
            "x-dead-letter-routing-key": "dead", "x-max-priority": 10,
            "x-queue-type": "classic", "x-queue-mode": "lazy",
            "x-single-active-consumer": True}
    rawch.call(1, "queue.declare", queue=q, arguments=args)
    rawch.call(1, "queue.declare", queue=q, arguments=args)


# -- the empty queue name -----------------------------------------------------


@pytest.mark.parametrize("method,kw,ids", [
    ("queue.bind", {"exchange": "amq.direct"}, (50, 20)),
    ("queue.unbind", {"exchange": "amq.direct"}, (50, 50)),
    ("basic.consume", {}, (60, 20)),
    ("queue.purge", {}, (50, 30)),
    ("queue.delete", {}, (50, 40)),
    ("basic.get", {}, (60, 70)),
])
def test_empty_name_without_previous_declare(rawch, method, kw, ids):
    m = channel_error(rawch, 1, method, queue="", **kw)
    assert m.close_info == (404, NO_PREVIOUS) + ids


def test_empty_name_passive_declare(rawch):
    temp_queue(rawch)
    m = channel_error(rawch, 1, "queue.declare", queue="", passive=True)
    assert m.close_info == (404, no_queue(""), 50, 10)


def test_empty_name_means_last_declared_queue(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"m1")
    rawch.call(1, "queue.bind", queue="", exchange="amq.direct",
               routing_key="wire-empty-name")
    rawch.publish(1, "amq.direct", "wire-empty-name", b"m2")
    m = rawch.call(1, "queue.purge", queue="")
    assert m.message_count == 2
    rawch.publish(1, "", q, b"m3")
    m = get(rawch, 1, "")
    assert (m.routing_key, m.content.body) == (q, b"m3")
    rawch.publish(1, "", q, b"m4")
    m = rawch.call(1, "basic.consume", queue="", consumer_tag="c1",
                   no_ack=True)
    d = rawch.expect("basic.deliver", 1)
    assert d.content.body == b"m4"
    rawch.call(1, "basic.cancel", consumer_tag="c1")
    rawch.call(1, "queue.unbind", queue="", exchange="amq.direct",
               routing_key="wire-empty-name")
    rawch.publish(1, "amq.direct", "wire-empty-name", b"unrouted")
    rawch.call(1, "queue.delete", queue="")
    # The name is remembered after the queue is gone.
    rawch.call(1, "queue.delete", queue="")
    m = channel_error(rawch, 1, "basic.get", queue="")
    assert m.close_info == (404, no_queue(q), 60, 70)


def test_empty_name_is_per_channel(rawch):
    temp_queue(rawch, 1)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "basic.get", queue="")
    assert m.close_info == (404, NO_PREVIOUS, 60, 70)


def test_passive_declare_sets_last_queue(rawch):
    q = temp_queue(rawch, 1)
    rawch.open_channel(2)
    rawch.call(2, "queue.declare", queue=q, passive=True)
    rawch.publish(2, "", q, b"x")
    assert get(rawch, 2, "").content.body == b"x"


# -- bind / unbind ------------------------------------------------------------


def test_bind_is_idempotent(rawch):
    q = temp_queue(rawch)
    for _ in range(3):
        rawch.call(1, "queue.bind", queue=q, exchange="amq.direct",
                   routing_key="wire-idem")
    rawch.publish(1, "amq.direct", "wire-idem", b"once")
    assert get_bodies(rawch, 1, q) == [b"once"]
    rawch.call(1, "queue.unbind", queue=q, exchange="amq.direct",
               routing_key="wire-idem")
    rawch.publish(1, "amq.direct", "wire-idem", b"gone")
    assert get_bodies(rawch, 1, q) == []
    rawch.call(1, "queue.unbind", queue=q, exchange="amq.direct",
               routing_key="wire-idem")


def test_bindings_differ_by_arguments(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="headers")
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x,
               arguments={"x-match": "all", "a": 1})
    rawch.call(1, "queue.bind", queue=q, exchange=x,
               arguments={"x-match": "all", "b": 2})
    rawch.publish(1, x, "", b"a", props={"headers": {"a": 1}})
    rawch.publish(1, x, "", b"b", props={"headers": {"b": 2}})
    rawch.publish(1, x, "", b"ab", props={"headers": {"a": 1, "b": 2}})
    assert get_bodies(rawch, 1, q) == [b"a", b"b", b"ab"]
    rawch.call(1, "queue.unbind", queue=q, exchange=x,
               arguments={"x-match": "all", "a": 1})
    rawch.publish(1, x, "", b"a", props={"headers": {"a": 1}})
    rawch.publish(1, x, "", b"b", props={"headers": {"b": 2}})
    assert get_bodies(rawch, 1, q) == [b"b"]


def test_unbind_missing_things_is_ok(rawch, uname):
    q = temp_queue(rawch)
    rawch.call(1, "queue.unbind", queue=q, exchange="amq.direct",
               routing_key="never-bound")
    rawch.call(1, "queue.unbind", queue=q, exchange=uname("x"))
    rawch.call(1, "queue.unbind", queue=uname("q"), exchange="amq.direct")


def test_bind_missing_exchange(rawch, uname):
    q, x = temp_queue(rawch), uname("x")
    m = channel_error(rawch, 1, "queue.bind", queue=q, exchange=x)
    assert m.close_info == (
        404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x, 50, 20)


def test_bind_missing_queue(rawch, uname):
    q = uname("q")
    m = channel_error(rawch, 1, "queue.bind", queue=q, exchange="amq.direct")
    assert m.close_info == (404, no_queue(q), 50, 20)


def test_bind_missing_queue_and_exchange_names_exchange(rawch, uname):
    q, x = uname("q"), uname("x")
    m = channel_error(rawch, 1, "queue.bind", queue=q, exchange=x)
    assert m.close_info == (
        404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x, 50, 20)


# -- purge / delete -----------------------------------------------------------


def test_purge_returns_count(rawch):
    q = temp_queue(rawch)
    for i in range(7):
        rawch.publish(1, "", q, b"%d" % i)
    assert rawch.call(1, "queue.purge", queue=q).message_count == 7
    assert rawch.call(1, "queue.purge", queue=q).message_count == 0
    assert get_bodies(rawch, 1, q) == []


def test_purge_leaves_unacked(rawch):
    q = temp_queue(rawch)
    for i in range(3):
        rawch.publish(1, "", q, b"%d" % i)
    m = get(rawch, 1, q, no_ack=False)
    assert rawch.call(1, "queue.purge", queue=q).message_count == 2
    rawch.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                      requeue=True)
    assert get_bodies(rawch, 1, q) == [b"0"]


def test_purge_missing_queue(rawch, uname):
    q = uname("q")
    m = channel_error(rawch, 1, "queue.purge", queue=q)
    assert m.close_info == (404, no_queue(q), 50, 30)


def test_delete_returns_count(rawch, uname):
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    for i in range(4):
        rawch.publish(1, "", q, b"%d" % i)
    assert rawch.call(1, "queue.delete", queue=q).message_count == 4
    m = channel_error(rawch, 1, "queue.declare", queue=q, passive=True)
    assert m.close_info == (404, no_queue(q), 50, 10)


def test_delete_absent_queue_is_ok(rawch, uname):
    q = uname("q")
    m = rawch.call(1, "queue.delete", queue=q)
    assert m.message_count == 0
    rawch.call(1, "queue.delete", queue=q, if_unused=True, if_empty=True)


def test_delete_if_empty(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"x")
    m = channel_error(rawch, 1, "queue.delete", queue=q, if_empty=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q,
        50, 40)


def test_delete_if_unused(rawch):
    q = temp_queue(rawch)
    rawch.open_channel(2)
    rawch.call(2, "basic.consume", queue=q, consumer_tag="c")
    m = channel_error(rawch, 1, "queue.delete", queue=q, if_unused=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q,
        50, 40)
    rawch.open_channel(1)
    rawch.call(2, "basic.cancel", consumer_tag="c")
    rawch.call(1, "queue.delete", queue=q, if_unused=True)


def test_delete_notifies_consumers(raw):
    owner, consumer = raw(), raw()
    owner.open_channel(1)
    consumer.open_channel(1)
    consumer.open_channel(2)
    q = owner.call(1, "queue.declare", queue="").queue
    consumer.call(1, "basic.consume", queue=q, consumer_tag="one")
    consumer.call(2, "basic.consume", queue=q, consumer_tag="two")
    owner.call(1, "queue.delete", queue=q)
    cancels = {}
    for _ in range(2):
        m = consumer.read_method()
        assert m.name == "basic.cancel"
        cancels[m.channel] = (m.consumer_tag, m.nowait)
    assert cancels == {1: ("one", True), 2: ("two", True)}
    # Cancelling an already-cancelled tag is fine.
    consumer.call(1, "basic.cancel", consumer_tag="one")
    consumer.close()


def test_delete_on_own_channel_sends_delete_ok_then_cancel(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "basic.consume", queue=q, consumer_tag="c")
    rawch.send_method(1, "queue.delete", queue=q)
    names = [rawch.read_method().name, rawch.read_method().name]
    assert sorted(names) == ["basic.cancel", "queue.delete-ok"]


def test_no_cancel_notify_without_capability(broker, raw):
    owner = raw()
    consumer = raw(capabilities={})
    owner.open_channel(1)
    consumer.open_channel(1)
    q = owner.call(1, "queue.declare", queue="").queue
    consumer.call(1, "basic.consume", queue=q, consumer_tag="c")
    owner.call(1, "queue.delete", queue=q)
    with pytest.raises(rawamqp.Timeout):
        consumer.read_method(0.5)


def test_pika_queue_roundtrip(pconn, uname):
    ch = pconn.channel()
    q = uname("q")
    r = ch.queue_declare(q, durable=True)
    assert r.method.queue == q
    ch.basic_publish("", q, b"hello")
    assert wait_until(lambda: ch.queue_declare(q, passive=True)
                      .method.message_count == 1)
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"hello"
    assert ch.queue_delete(q).method.message_count == 0
