"""Exchanges: declare (types, flags, passive, equivalence), reserved names,
internal exchanges, delete, pre-declared exchanges, exchange-to-exchange
bindings, alternate exchanges.

Exact replies observed on RabbitMQ 3.10.8. Surprises worth knowing:
  - an unknown exchange type is a *connection* error (503);
  - RabbitMQ says "invalid exchange type 'foo'" for names that happen to be
    Erlang atoms and "unknown exchange type 'x'" otherwise, so the tests use
    names that are not atoms;
  - re-declaring amq.direct with its own properties succeeds; only new
    names with the amq. prefix are refused;
  - alternate-exchange is the only argument checked for equivalence.
"""

import pytest

import rawamqp
from wireutil import (assert_channel_close, assert_connection_close,
                      channel_error, get_bodies, temp_queue)

TYPES = ["direct", "fanout", "topic", "headers"]
SYSTEM = {"amq.direct": "direct", "amq.fanout": "fanout",
          "amq.topic": "topic", "amq.headers": "headers",
          "amq.match": "headers"}


def inequivalent(arg, x, received, current):
    return ("PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' "
            "in vhost '/': received '%s' but current is '%s'"
            % (arg, x, received, current))


@pytest.mark.parametrize("xtype", TYPES)
def test_declare_each_type_and_passive(rawch, uname, xtype):
    x = uname("x")
    m = rawch.call(1, "exchange.declare", exchange=x, type=xtype)
    assert m.name == "exchange.declare-ok"
    # Redeclare with the same properties is fine; passive ignores the type.
    rawch.call(1, "exchange.declare", exchange=x, type=xtype)
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               passive=True, durable=True)


def test_passive_declare_missing(rawch, uname):
    x = uname("x")
    rawch.send_method(1, "exchange.declare", exchange=x, type="direct",
                      passive=True)
    assert_channel_close(rawch, 1, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         40, 10)


@pytest.mark.parametrize("field,value,received,current", [
    ("durable", True, "true", "false"),
    ("auto_delete", True, "true", "false"),
    ("internal", True, "true", "false"),
])
def test_redeclare_with_different_flag(rawch, uname, field, value, received,
                                       current):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    m = channel_error(rawch, 1, "exchange.declare", exchange=x,
                      type="direct", **{field: value})
    assert m.close_info == (406, inequivalent(field, x, received, current),
                            40, 10)


def test_redeclare_durable_as_transient(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="topic", durable=True)
    m = channel_error(rawch, 1, "exchange.declare", exchange=x,
                      type="topic")
    assert m.close_info == (406, inequivalent("durable", x, "false", "true"),
                            40, 10)


def test_redeclare_with_different_type(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    m = channel_error(rawch, 1, "exchange.declare", exchange=x,
                      type="fanout")
    assert m.close_info == (406, inequivalent("type", x, "fanout", "direct"),
                            40, 10)


def test_redeclare_with_different_alternate_exchange(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    m = channel_error(rawch, 1, "exchange.declare", exchange=x,
                      type="direct",
                      arguments={"alternate-exchange": "ae"})
    assert m.close_info == (
        406, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' "
        "for exchange '%s' in vhost '/': received the value 'ae' of type "
        "'longstr' but current is none" % x, 40, 10)


def test_other_arguments_not_checked_for_equivalence(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct",
               arguments={"x-foo": "a"})
    rawch.call(1, "exchange.declare", exchange=x, type="direct",
               arguments={"x-foo": 17})
    rawch.call(1, "exchange.declare", exchange=x, type="direct")


def test_durable_and_auto_delete_flags_kept(rawch, uname):
    # Equivalence checks prove the stored flags.
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               durable=True, auto_delete=True)
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               durable=True, auto_delete=True)
    m = channel_error(rawch, 1, "exchange.declare", exchange=x,
                      type="fanout", durable=True)
    assert m.close_info == (406, inequivalent("auto_delete", x, "false",
                                              "true"), 40, 10)


def test_auto_delete_exchange_goes_with_last_binding(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               auto_delete=True)
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x)
    # Still there while bound.
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               passive=True)
    rawch.call(1, "queue.unbind", queue=q, exchange=x)
    rawch.send_method(1, "exchange.declare", exchange=x, type="fanout",
                      passive=True)
    assert_channel_close(rawch, 1, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         40, 10)


def test_unknown_type_is_connection_error(rawch, uname):
    x = uname("x")
    rawch.send_method(1, "exchange.declare", exchange=x,
                      type="x-no-such-type")
    assert_connection_close(
        rawch, 503, "COMMAND_INVALID - unknown exchange type "
        "'x-no-such-type'", 40, 10)


def test_unknown_type_checked_before_existence(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    rawch.send_method(1, "exchange.declare", exchange=x,
                      type="x-no-such-type")
    assert_connection_close(
        rawch, 503, "COMMAND_INVALID - unknown exchange type "
        "'x-no-such-type'", 40, 10)


def test_amq_prefix_reserved(rawch):
    m = channel_error(rawch, 1, "exchange.declare", exchange="amq.wire-test",
                      type="direct")
    assert m.close_info == (
        403, "ACCESS_REFUSED - exchange name 'amq.wire-test' contains "
        "reserved prefix 'amq.*'", 40, 10)


@pytest.mark.parametrize("name", sorted(SYSTEM))
def test_system_exchanges_exist(rawch, name):
    rawch.call(1, "exchange.declare", exchange=name, type=SYSTEM[name],
               passive=True)
    # Redeclaring with identical properties is accepted ...
    rawch.call(1, "exchange.declare", exchange=name, type=SYSTEM[name],
               durable=True)
    # ... different ones are not.
    m = channel_error(rawch, 1, "exchange.declare", exchange=name,
                      type=SYSTEM[name], durable=False)
    assert m.close_info == (406, inequivalent("durable", name, "false",
                                              "true"), 40, 10)


@pytest.mark.parametrize("name", sorted(SYSTEM) + ["amq.wire-missing"])
def test_system_exchanges_cannot_be_deleted(rawch, name):
    m = channel_error(rawch, 1, "exchange.delete", exchange=name)
    assert m.close_info == (
        403, "ACCESS_REFUSED - deletion of system exchange '%s' in vhost "
        "'/' not allowed" % name, 40, 20)


DEFAULT_X = "ACCESS_REFUSED - operation not permitted on the default exchange"


@pytest.mark.parametrize("method,kw,ids", [
    ("exchange.declare", dict(exchange="", type="direct"), (40, 10)),
    ("exchange.declare", dict(exchange="", type="direct", passive=True),
     (40, 10)),
    ("exchange.declare", dict(exchange="", type="direct", durable=True),
     (40, 10)),
    ("exchange.delete", dict(exchange=""), (40, 20)),
])
def test_default_exchange_operations_refused(rawch, method, kw, ids):
    m = channel_error(rawch, 1, method, **kw)
    assert m.close_info == (403, DEFAULT_X) + ids


def test_bind_to_default_exchange_refused(rawch):
    q = temp_queue(rawch)
    m = channel_error(rawch, 1, "queue.bind", queue=q, exchange="",
                      routing_key="other")
    assert m.close_info == (403, DEFAULT_X, 50, 20)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "queue.unbind", queue=q, exchange="",
                      routing_key=q)
    assert m.close_info == (403, DEFAULT_X, 50, 50)


def test_exchange_bind_with_default_exchange_refused(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    m = channel_error(rawch, 1, "exchange.bind", destination=x, source="")
    assert m.close_info == (403, DEFAULT_X, 40, 30)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "exchange.bind", destination="", source=x)
    assert m.close_info == (403, DEFAULT_X, 40, 30)


def test_publish_to_default_exchange_routes_by_queue_name(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"direct to queue")
    assert get_bodies(rawch, 1, q) == [b"direct to queue"]


def test_internal_exchange_refuses_publish(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout",
               internal=True)
    rawch.publish(1, x, "", b"nope")
    assert_channel_close(
        rawch, 1, 403, "ACCESS_REFUSED - cannot publish to internal "
        "exchange '%s' in vhost '/'" % x, 60, 40)


def test_internal_exchange_reachable_through_binding(rawch, uname):
    src, internal = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=src, type="fanout")
    rawch.call(1, "exchange.declare", exchange=internal, type="fanout",
               internal=True)
    rawch.call(1, "exchange.bind", destination=internal, source=src)
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=internal)
    rawch.publish(1, src, "k", b"via internal")
    assert get_bodies(rawch, 1, q) == [b"via internal"]


def test_delete_if_unused(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x, routing_key="k")
    m = channel_error(rawch, 1, "exchange.delete", exchange=x,
                      if_unused=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x,
        40, 20)
    rawch.open_channel(2)
    rawch.call(2, "queue.unbind", queue=q, exchange=x, routing_key="k")
    rawch.call(2, "exchange.delete", exchange=x, if_unused=True)
    rawch.send_method(2, "exchange.declare", exchange=x, type="direct",
                      passive=True)
    assert_channel_close(rawch, 2, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         40, 10)


def test_delete_if_unused_counts_exchange_bindings_as_source(rawch, uname):
    src, dst = uname("x"), uname("x")
    for x in (src, dst):
        rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.call(1, "exchange.bind", destination=dst, source=src)
    m = channel_error(rawch, 1, "exchange.delete", exchange=src,
                      if_unused=True)
    assert m.close_info == (
        406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % src,
        40, 20)


def test_delete_removes_bindings(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x)
    rawch.call(1, "exchange.delete", exchange=x)
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.publish(1, x, "", b"not routed")
    assert get_bodies(rawch, 1, q) == []


def test_delete_absent_exchange_is_ok(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.delete", exchange=x)
    rawch.call(1, "exchange.delete", exchange=x, if_unused=True)


def test_delete_nowait(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    rawch.send_method(1, "exchange.delete", exchange=x, nowait=True)
    rawch.send_method(1, "exchange.declare", exchange=x, type="direct",
                      passive=True)
    assert_channel_close(rawch, 1, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         40, 10)


# -- exchange-to-exchange bindings --------------------------------------------


def test_exchange_bind_and_unbind(rawch, uname):
    src, dst = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=src, type="direct")
    rawch.call(1, "exchange.declare", exchange=dst, type="fanout")
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=dst)
    rawch.call(1, "exchange.bind", destination=dst, source=src,
               routing_key="rk")
    rawch.call(1, "exchange.bind", destination=dst, source=src,
               routing_key="rk")  # idempotent
    rawch.publish(1, src, "rk", b"one")
    rawch.publish(1, src, "other", b"two")
    msgs = []
    while True:
        rawch.send_method(1, "basic.get", queue=q, no_ack=True)
        m = rawch.read_method()
        if m.name == "basic.get-empty":
            break
        msgs.append((m.exchange, m.routing_key, m.content.body))
    # The delivery names the exchange the message was published to.
    assert msgs == [(src, "rk", b"one")]
    m = rawch.call(1, "exchange.unbind", destination=dst, source=src,
                   routing_key="rk")
    assert m.name == "exchange.unbind-ok"
    rawch.publish(1, src, "rk", b"three")
    assert get_bodies(rawch, 1, q) == []


def test_exchange_bind_missing_source_or_destination(rawch, uname):
    x, missing = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    m = channel_error(rawch, 1, "exchange.bind", destination=x,
                      source=missing)
    assert m.close_info == (
        404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing, 40, 30)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "exchange.bind", destination=missing,
                      source=x)
    assert m.close_info == (
        404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing, 40, 30)


def test_exchange_unbind_missing_is_ok(rawch, uname):
    x, missing = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.call(1, "exchange.unbind", destination=missing, source=x)
    rawch.call(1, "exchange.unbind", destination=x, source=missing)
    rawch.call(1, "exchange.unbind", destination=x, source=x,
               routing_key="never-bound")


def test_diamond_delivers_once(rawch, uname):
    top, left, right, bottom = (uname("x") for _ in range(4))
    for x in (top, left, right, bottom):
        rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.call(1, "exchange.bind", destination=left, source=top)
    rawch.call(1, "exchange.bind", destination=right, source=top)
    rawch.call(1, "exchange.bind", destination=bottom, source=left)
    rawch.call(1, "exchange.bind", destination=bottom, source=right)
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=bottom)
    rawch.call(1, "queue.bind", queue=q, exchange=left)
    rawch.publish(1, top, "", b"once")
    assert get_bodies(rawch, 1, q) == [b"once"]


def test_cycle_terminates_and_delivers_once(rawch, uname):
    a, b, c = uname("x"), uname("x"), uname("x")
    for x in (a, b, c):
        rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.call(1, "exchange.bind", destination=b, source=a)
    rawch.call(1, "exchange.bind", destination=c, source=b)
    rawch.call(1, "exchange.bind", destination=a, source=c)
    rawch.call(1, "exchange.bind", destination=a, source=a)  # self-loop
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=c)
    for x in (a, b, c):
        rawch.publish(1, x, "", b"from " + x.encode())
    assert sorted(get_bodies(rawch, 1, q)) == sorted(
        b"from " + x.encode() for x in (a, b, c))


# -- alternate exchange -------------------------------------------------------


def make_ae(rawch, uname, ae_exists=True):
    x, ae = uname("x"), uname("x")
    if ae_exists:
        rawch.call(1, "exchange.declare", exchange=ae, type="fanout")
    rawch.call(1, "exchange.declare", exchange=x, type="direct",
               arguments={"alternate-exchange": ae})
    q, aq = temp_queue(rawch), temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x, routing_key="known")
    if ae_exists:
        rawch.call(1, "queue.bind", queue=aq, exchange=ae)
    return x, q, aq


def test_alternate_exchange_gets_unroutable(rawch, uname):
    x, q, aq = make_ae(rawch, uname)
    rawch.publish(1, x, "known", b"routed")
    rawch.publish(1, x, "unknown", b"to ae")
    assert get_bodies(rawch, 1, q) == [b"routed"]
    rawch.send_method(1, "basic.get", queue=aq, no_ack=True)
    m = rawch.expect("basic.get-ok", 1)
    # The original exchange and routing key are kept.
    assert (m.exchange, m.routing_key, m.content.body) == (
        x, "unknown", b"to ae")


def test_alternate_exchange_and_mandatory_no_return(rawch, uname):
    x, q, aq = make_ae(rawch, uname)
    rawch.publish(1, x, "unknown", b"to ae", mandatory=True)
    rawch.call(1, "basic.qos")  # a round trip: a return would come first
    assert get_bodies(rawch, 1, aq) == [b"to ae"]


def test_missing_alternate_exchange(rawch, uname):
    x, q, aq = make_ae(rawch, uname, ae_exists=False)
    rawch.publish(1, x, "unknown", b"dropped")
    rawch.publish(1, x, "unknown", b"returned", mandatory=True)
    m = rawch.expect("basic.return", 1)
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (
        312, "NO_ROUTE", x, "unknown")
    assert m.content.body == b"returned"
    assert get_bodies(rawch, 1, q) == []


def test_alternate_exchange_with_no_queue_returns_mandatory(rawch, uname):
    x, ae = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=ae, type="fanout")
    rawch.call(1, "exchange.declare", exchange=x, type="direct",
               arguments={"alternate-exchange": ae})
    rawch.publish(1, x, "k", b"nowhere", mandatory=True)
    m = rawch.expect("basic.return", 1)
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (
        312, "NO_ROUTE", x, "k")


def test_alternate_exchange_chain(rawch, uname):
    x, ae1, ae2 = uname("x"), uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=ae2, type="fanout")
    rawch.call(1, "exchange.declare", exchange=ae1, type="direct",
               arguments={"alternate-exchange": ae2})
    rawch.call(1, "exchange.declare", exchange=x, type="direct",
               arguments={"alternate-exchange": ae1})
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=ae2)
    rawch.publish(1, x, "k", b"two hops")
    assert get_bodies(rawch, 1, q) == [b"two hops"]


def test_alternate_exchange_loop_terminates(rawch, uname):
    a, b = uname("x"), uname("x")
    rawch.call(1, "exchange.declare", exchange=a, type="direct",
               arguments={"alternate-exchange": b})
    rawch.call(1, "exchange.declare", exchange=b, type="direct",
               arguments={"alternate-exchange": a})
    rawch.publish(1, a, "k", b"loop", mandatory=True)
    m = rawch.expect("basic.return", 1)
    assert (m.reply_code, m.reply_text) == (312, "NO_ROUTE")


def test_pika_exchange_declare(broker, pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    ch.exchange_declare(x, exchange_type="topic", durable=True)
    ch.exchange_declare(x, passive=True)
    with pytest.raises(Exception) as e:
        ch.exchange_declare(x, exchange_type="topic", durable=False)
    assert e.value.args == (406, inequivalent("durable", x, "false", "true"))


def test_rawamqp_encodes_exchange_unbind_ok_id():
    # exchange.unbind-ok is 40.51 (not 40.41) in 0-9-1.
    assert rawamqp.METHODS_BY_NAME["exchange.unbind-ok"].method_id == 51
