"""Publishing and the content codec: routing through every exchange type,
topic wildcards, headers matching, fan-out to several queues, mandatory
returns, immediate, body sizes across frames, basic properties round trip
byte for byte, field tables of every type letter, deep nesting, property
validation.

Observed on RabbitMQ 3.10.8. The topic and headers matrices below are
RabbitMQ's answers, recorded pattern by pattern. Notable:
  - the empty routing key is zero words: it matches "#", "#.#" and "" but
    not "*" or "#.*"; empty words between dots are words ("a..c" ~ "a.*.c");
  - headers: "x-" binding keys are ignored by all/any (but not by the
    all-with-x/any-with-x variants); a void binding value only tests
    presence; integers compare by value across types; S and x compare
    equal; bool never equals an integer;
  - immediate=true is a connection error 540;
  - properties travel byte for byte (RabbitMQ keeps the raw header);
  - RabbitMQ has no nesting limit for tables: 18000 levels (all a 128 KiB
    frame holds) are accepted in arguments and round-trip in headers.
"""

import struct

import pika
import pika.spec
import pytest

import rawamqp
from rawamqp import F
from wireutil import (assert_channel_close, assert_connection_close,
                      channel_error, confirm_select, get, get_bodies,
                      publish_sync, temp_queue)


# -- routing through each exchange type ---------------------------------------


@pytest.mark.parametrize("xtype,bind_key,bind_args,rk,headers", [
    ("direct", "k1", {}, "k1", None),
    ("fanout", "ignored", {}, "anything", None),
    ("topic", "a.*", {}, "a.b", None),
    ("headers", "", {"x-match": "all", "h": "v"}, "whatever", {"h": "v"}),
])
def test_publish_through_each_type(rawch, uname, xtype, bind_key, bind_args,
                                   rk, headers):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type=xtype)
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange=x, routing_key=bind_key,
               arguments=bind_args)
    props = {"headers": headers} if headers else {}
    rawch.publish(1, x, rk, b"routed", props=props)
    m = get(rawch, 1, q)
    assert (m.exchange, m.routing_key, m.content.body) == (x, rk, b"routed")
    assert m.redelivered is False


def test_direct_exact_match_only(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange="amq.direct",
               routing_key="wire.Key")
    for rk in ("wire.Key", "wire.key", "wire.Key ", "wire", ""):
        rawch.publish(1, "amq.direct", rk, rk.encode())
    assert get_bodies(rawch, 1, q) == [b"wire.Key"]


def test_routed_to_several_queues(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    qs = [temp_queue(rawch) for _ in range(4)]
    for q in qs[:3]:
        rawch.call(1, "queue.bind", queue=q, exchange=x, routing_key="k")
    # Two bindings from one queue still give one copy.
    rawch.call(1, "queue.bind", queue=qs[0], exchange=x, routing_key="k2")
    rawch.publish(1, x, "k", b"to three")
    for q in qs[:3]:
        assert get_bodies(rawch, 1, q) == [b"to three"]
    assert get_bodies(rawch, 1, qs[3]) == []


# Topic: pattern -> the keys (of KEYS) it matches on RabbitMQ 3.10.
TOPIC_KEYS = ["a.b.c", "a.c", "a.b.b.c", "a..c", "", "a", "a.", "b.a", "c",
              ".", "a.b", "b", "..", "a.b.c.d", "x.b.y"]
TOPIC_MATCHES = {
    "a.*.c": ["a.b.c", "a..c"],
    "#": TOPIC_KEYS,
    "a.#": ["a.b.c", "a.c", "a.b.b.c", "a..c", "a", "a.", "a.b", "a.b.c.d"],
    "#.c": ["a.b.c", "a.c", "a.b.b.c", "a..c", "c"],
    "a.#.c": ["a.b.c", "a.c", "a.b.b.c", "a..c"],
    "#.#": TOPIC_KEYS,
    "*": ["a", "c", "b"],
    "*.*": ["a.c", "a.", "b.a", ".", "a.b"],
    "a.*.#": ["a.b.c", "a.c", "a.b.b.c", "a..c", "a.", "a.b", "a.b.c.d"],
    "": [""],
    "#.*": [k for k in TOPIC_KEYS if k != ""],
    "*.#": [k for k in TOPIC_KEYS if k != ""],
    "a": ["a"],
    "a.b.c": ["a.b.c"],
    "#.a.#": ["a.b.c", "a.c", "a.b.b.c", "a..c", "a", "a.", "b.a", "a.b",
              "a.b.c.d"],
    "a..c": ["a..c"],
    "a.*": ["a.c", "a.", "a.b"],
    "*.b.*": ["a.b.c", "x.b.y"],
    "#.b.#": ["a.b.c", "a.b.b.c", "b.a", "a.b", "b", "a.b.c.d", "x.b.y"],
}


def _route_matrix(rawch, x, bindings, messages):
    """Bind one queue per binding, publish every message once (confirmed),
    return binding name -> [message names] in arrival order."""
    confirm_select(rawch, 1)
    queues = {}
    for name, (rk, args) in bindings.items():
        q = temp_queue(rawch)
        rawch.call(1, "queue.bind", queue=q, exchange=x, routing_key=rk,
                   arguments=args)
        queues[name] = q
    names = list(messages)
    for i, name in enumerate(names):
        rk, props = messages[name]
        publish_sync(rawch, 1, x, rk, b"%d" % i, props=props)
    return {name: [names[int(b)] for b in get_bodies(rawch, 1, q)]
            for name, q in queues.items()}


def test_topic_matching(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="topic")
    got = _route_matrix(
        rawch, x, {p: (p, {}) for p in TOPIC_MATCHES},
        {k: (k, None) for k in TOPIC_KEYS})
    assert got == TOPIC_MATCHES


def test_topic_via_amq_topic(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange="amq.topic",
               routing_key="wire.*.topic.#")
    for rk in ("wire.x.topic", "wire.x.topic.a.b", "wire.topic",
               "wire.x.y.topic"):
        rawch.publish(1, "amq.topic", rk, rk.encode())
    assert get_bodies(rawch, 1, q) == [b"wire.x.topic", b"wire.x.topic.a.b"]


HEADER_BINDINGS = {
    "all_a1_btwo": {"x-match": "all", "a": 1, "b": "two"},
    "any_a1_btwo": {"x-match": "any", "a": 1, "b": "two"},
    "default_a1": {"a": 1},
    "all_empty": {"x-match": "all"},
    "any_empty": {"x-match": "any"},
    "no_args": {},
    "all_void": {"x-match": "all", "v": None},
    "all_xfoo_a1": {"x-match": "all", "x-foo": "bar", "a": 1},
    "any_xfoo": {"x-match": "any", "x-foo": "bar"},
    "anywx_xfoo": {"x-match": "any-with-x", "x-foo": "bar"},
    "allwx_xfoo_a1": {"x-match": "all-with-x", "x-foo": "bar", "a": 1},
    "all_a1long": {"x-match": "all", "a": F("l", 1)},
    "all_astr": {"x-match": "all", "a": "1"},
    "all_flag": {"x-match": "all", "flag": True},
}
HEADER_MESSAGES = {
    "a1_btwo": {"a": 1, "b": "two"},
    "a1": {"a": 1},
    "btwo": {"b": "two"},
    "a2_btwo": {"a": 2, "b": "two"},
    "no_headers": None,
    "empty": {},
    "v_str": {"v": "anything"},
    "v_void": {"v": None},
    "xfoo_a1": {"x-foo": "bar", "a": 1},
    "xfoo": {"x-foo": "bar"},
    "a1_short": {"a": F("s", 1)},
    "a1_str": {"a": "1"},
    "a1_bytes": {"a": F("x", b"1")},
    "a1_extra": {"a": 1, "c": 3},
    "flag_true": {"flag": True},
    "flag_int": {"flag": F("b", 1)},
}
ALL_MSGS = list(HEADER_MESSAGES)
HEADER_MATCHES = {
    "all_a1_btwo": ["a1_btwo"],
    "any_a1_btwo": ["a1_btwo", "a1", "btwo", "a2_btwo", "xfoo_a1",
                    "a1_short", "a1_extra"],
    "default_a1": ["a1_btwo", "a1", "xfoo_a1", "a1_short", "a1_extra"],
    "all_empty": ALL_MSGS,
    "any_empty": [],
    "no_args": ALL_MSGS,
    "all_void": ["v_str", "v_void"],
    "all_xfoo_a1": ["a1_btwo", "a1", "xfoo_a1", "a1_short", "a1_extra"],
    "any_xfoo": [],
    "anywx_xfoo": ["xfoo_a1", "xfoo"],
    "allwx_xfoo_a1": ["xfoo_a1"],
    "all_a1long": ["a1_btwo", "a1", "xfoo_a1", "a1_short", "a1_extra"],
    "all_astr": ["a1_str", "a1_bytes"],
    "all_flag": ["flag_true"],
}


def test_headers_matching(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="headers")
    got = _route_matrix(
        rawch, x, {n: ("", a) for n, a in HEADER_BINDINGS.items()},
        {n: ("", {} if h is None else {"headers": h})
         for n, h in HEADER_MESSAGES.items()})
    assert got == HEADER_MATCHES


def test_headers_invalid_x_match(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="headers")
    q = temp_queue(rawch)
    m = channel_error(rawch, 1, "queue.bind", queue=q, exchange=x,
                      arguments={"x-match": "some"})
    assert m.close_info == (
        406, "PRECONDITION_FAILED - Invalid x-match field value "
        "<<\"some\">>; expected all, any, all-with-x, or any-with-x", 50, 20)
    rawch.open_channel(2)
    m = channel_error(rawch, 2, "queue.bind", queue=q, exchange=x,
                      arguments={"x-match": 1})
    assert m.close_info == (
        406, "PRECONDITION_FAILED - Invalid x-match field type signedint "
        "(value 1); expected longstr", 50, 20)


def test_amq_match_is_headers(rawch):
    q = temp_queue(rawch)
    rawch.call(1, "queue.bind", queue=q, exchange="amq.match",
               arguments={"x-match": "any", "wire-test": q})
    rawch.publish(1, "amq.match", "", b"yes", props={"headers": {
        "wire-test": q}})
    rawch.publish(1, "amq.match", "", b"no", props={"headers": {
        "wire-test": "other"}})
    assert get_bodies(rawch, 1, q) == [b"yes"]


# -- mandatory, immediate, missing exchange -----------------------------------


def test_mandatory_unroutable_is_returned(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    props = {"content_type": "text/plain", "headers": {"k": "v", "n": 5},
             "delivery_mode": 2, "priority": 3, "correlation_id": "c-1",
             "message_id": "m-1", "timestamp": 1700000000, "type": "t",
             "app_id": "wire"}
    raw_props = rawamqp.encode_properties(props)
    rawch.publish(1, x, "nobody", b"come back", raw_props=raw_props,
                  mandatory=True)
    m = rawch.expect("basic.return", 1)
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (
        312, "NO_ROUTE", x, "nobody")
    assert m.content.body == b"come back"
    assert m.content.props_raw == raw_props


def test_mandatory_routable_not_returned(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"stays", mandatory=True)
    rawch.call(1, "basic.qos")
    assert get_bodies(rawch, 1, q) == [b"stays"]


def test_non_mandatory_unroutable_dropped(rawch, uname):
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="fanout")
    rawch.publish(1, x, "", b"dropped")
    m = rawch.call(1, "basic.qos")
    assert m.name == "basic.qos-ok"


def test_default_exchange_unknown_queue_mandatory(rawch, uname):
    q = uname("q")
    rawch.publish(1, "", q, b"no such queue", mandatory=True)
    m = rawch.expect("basic.return", 1)
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (
        312, "NO_ROUTE", "", q)


def test_immediate_not_implemented(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"now", immediate=True)
    assert_connection_close(rawch, 540, "NOT_IMPLEMENTED - immediate=true",
                            60, 40)


def test_publish_to_missing_exchange(rawch, uname):
    x = uname("x")
    rawch.publish(1, x, "k", b"lost")
    assert_channel_close(rawch, 1, 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x,
                         60, 40)


def test_pika_mandatory_return(pconn, uname):
    ch = pconn.channel()
    x = uname("x")
    ch.exchange_declare(x, "direct")
    returned = []
    ch.add_on_return_callback(
        lambda c, method, props, body: returned.append(
            (method.reply_code, method.reply_text, props.correlation_id,
             body)))
    ch.basic_publish(x, "nowhere", b"pika body",
                     pika.BasicProperties(correlation_id="pika-1"),
                     mandatory=True)
    pconn.process_data_events(time_limit=1)
    assert returned == [(312, "NO_ROUTE", "pika-1", b"pika body")]


# -- body sizes ---------------------------------------------------------------


@pytest.mark.parametrize("size,frames", [
    (0, []),
    (1, [1]),
    (131072 - 8, [131064]),
    (131072 - 7, [131064, 1]),
    (1 << 20, [131064] * 8 + [(1 << 20) - 8 * 131064]),
])
def test_body_sizes(rawch, size, frames):
    q = temp_queue(rawch)
    body = bytes((i * 7 + 3) & 0xFF for i in range(size))
    rawch.publish(1, "", q, body)
    rawch.frames_seen.clear()
    m = get(rawch, 1, q)
    assert m.content.body_size == size
    assert m.content.body == body
    body_frames = [len(f.payload) for f in rawch.frames_seen
                   if f.type == rawamqp.FRAME_BODY]
    assert body_frames == frames


def test_20_mib_body_in_many_frames(rawch):
    q = temp_queue(rawch)
    size = 20 << 20
    body = bytes(range(256)) * (size // 256)
    # Sent in small frames (a 4 KiB frame_max worth each): ~5000 frames.
    rawch.publish(1, "", q, body, frame_max=4096)
    rawch.frames_seen.clear()
    m = get(rawch, 1, q)
    assert m.content.body_size == size
    assert m.content.body == body
    n = sum(1 for f in rawch.frames_seen if f.type == rawamqp.FRAME_BODY)
    assert n == -(-size // 131064)


def test_empty_body_has_no_body_frame_and_consume(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"", props={"content_type": "x/empty"})
    rawch.publish(1, "", q, b"after")
    rawch.call(1, "basic.consume", queue=q, no_ack=True, consumer_tag="e")
    m1 = rawch.expect("basic.deliver", 1)
    m2 = rawch.expect("basic.deliver", 1)
    assert (m1.content.body, m1.content.props) == (
        b"", {"content_type": "x/empty"})
    assert m2.content.body == b"after"


# -- basic properties round trip ----------------------------------------------


EVERY_TYPE_HEADERS = [
    ("t", F("t", True)),
    ("b", F("b", -5)),
    ("B", F("B", 250)),
    ("s", F("s", -1234)),
    ("u", F("u", 65000)),
    ("I", F("I", -123456)),
    ("i", F("i", 4000000000)),
    ("l", F("l", -(1 << 40))),
    ("f", F("f", 1.5)),
    ("d", F("d", -2.75)),
    ("D", F("D", (3, 123456))),
    ("S", F("S", "long string \u00e9".encode())),
    ("A", F("A", [F("I", 1), F("S", b"two"), F("A", []), F("V", None),
                  F("F", {"k": F("t", False)})])),
    ("T", F("T", 1700000000)),
    ("F", F("F", {"inner": F("S", b"v"), "empty": F("F", {})})),
    ("V", F("V", None)),
    ("x", F("x", b"\x00\xffbytes")),
]

ALL_PROPS = {
    "content_type": "application/x-wire",
    "content_encoding": "identity",
    "headers": EVERY_TYPE_HEADERS,
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-\u00e9",
    "reply_to": "reply.queue",
    "expiration": "600000",
    "message_id": "msg-1",
    "timestamp": 1700000001,
    "type": "wire.test",
    "user_id": "guest",
    "app_id": "wire-tests",
    "cluster_id": "cluster-x",
}


def test_all_properties_round_trip_byte_for_byte(rawch):
    raw_props = rawamqp.encode_properties(ALL_PROPS)
    assert raw_props[:2] == b"\xff\xfc"  # all 14 flags
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"props-1", raw_props=raw_props)
    rawch.publish(1, "", q, b"props-2", raw_props=raw_props)
    m = get(rawch, 1, q)
    assert m.content.props_raw == raw_props
    assert m.content.class_id == 60 and m.content.weight == 0
    rawch.call(1, "basic.consume", queue=q, no_ack=True, consumer_tag="p")
    d = rawch.expect("basic.deliver", 1)
    assert d.content.props_raw == raw_props
    assert d.content.body == b"props-2"
    # And the decoded view agrees with what was sent.
    props = d.content.props
    for k, v in ALL_PROPS.items():
        if k == "headers":
            assert list(props[k].items()) == v
        else:
            assert props[k] == v, k


def test_all_properties_decoded_by_pika(rawch, pconn, uname):
    # Raw bytes in, pika out: pika's view of what it receives must equal
    # pika's own decoding of the bytes that were sent.
    raw_props = rawamqp.encode_properties(ALL_PROPS)
    q = uname("q")
    rawch.call(1, "queue.declare", queue=q)
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"for pika", raw_props=raw_props)
    expected = pika.spec.BasicProperties()
    expected.decode(raw_props)
    ch = pconn.channel()
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"for pika"
    for name in ("content_type", "content_encoding", "headers",
                 "delivery_mode", "priority", "correlation_id", "reply_to",
                 "expiration", "message_id", "timestamp", "type", "user_id",
                 "app_id", "cluster_id"):
        assert getattr(props, name) == getattr(expected, name), name
    assert props.headers["S"] == "long string \u00e9"


def test_pika_publish_properties(pconn):
    ch = pconn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    sent = pika.BasicProperties(
        content_type="text/plain", content_encoding="utf-8",
        headers={"str": "s", "int": 42, "neg": -7, "big": 1 << 40,
                 "bool": True, "none": None, "list": [1, "a", [2]],
                 "table": {"x": {"y": "z"}}, "bytes": b"\x01\x02"},
        delivery_mode=1, priority=9, correlation_id="c", reply_to="r",
        expiration="100000", message_id="m", timestamp=1234567890,
        type="ty", user_id="guest", app_id="pika-app")
    ch.basic_publish("", q, b"pika props", sent)
    got = None
    for _ in range(50):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            got = props
            break
        pconn.sleep(0.02)
    assert body == b"pika props"
    for name in ("content_type", "content_encoding", "headers",
                 "delivery_mode", "priority", "correlation_id", "reply_to",
                 "expiration", "message_id", "timestamp", "type", "user_id",
                 "app_id"):
        assert getattr(got, name) == getattr(sent, name), name


@pytest.mark.parametrize("props,text", [
    ({"expiration": "abc"}, "invalid expiration 'abc': no_integer"),
    ({"expiration": ""}, "invalid expiration '': no_integer"),
    ({"expiration": "-1"}, "invalid expiration '-1': {value_negative,-1}"),
    ({"expiration": "1.5"},
     "invalid expiration '1.5': {leftover_string,\".5\"}"),
    ({"user_id": "mallory"}, "user_id property set to 'mallory' but "
     "authenticated user was 'guest'"),
    ({"delivery_mode": 7}, "invalid message: {delivery_mode_unknown,7}"),
])
def test_invalid_properties(rawch, props, text):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"bad", props=props)
    assert_channel_close(rawch, 1, 406, "PRECONDITION_FAILED - " + text,
                         60, 40)


def test_expiration_zero_expires_unless_consumed(rawch):
    q = temp_queue(rawch)
    rawch.publish(1, "", q, b"gone", props={"expiration": "0"})
    rawch.publish(1, "", q, b"kept")
    assert get_bodies(rawch, 1, q) == [b"kept"]


# -- field tables in arguments ------------------------------------------------


def test_every_type_in_queue_arguments(rawch, uname):
    # Unknown x- arguments of every type are accepted and not compared.
    q = uname("q")
    args = [("x-wire-" + name, v) for name, v in EVERY_TYPE_HEADERS]
    rawch.call(1, "queue.declare", queue=q, exclusive=True, arguments=args)
    rawch.call(1, "queue.declare", queue=q, exclusive=True, arguments=args)


def test_every_type_in_consumer_and_binding_arguments(rawch, uname):
    q = temp_queue(rawch)
    args = [("x-wire-" + name, v) for name, v in EVERY_TYPE_HEADERS]
    m = rawch.call(1, "basic.consume", queue=q, consumer_tag="typed",
                   arguments=args)
    assert m.consumer_tag == "typed"
    rawch.call(1, "queue.bind", queue=q, exchange="amq.direct",
               routing_key="wire-typed", arguments=args)
    rawch.call(1, "queue.unbind", queue=q, exchange="amq.direct",
               routing_key="wire-typed", arguments=args)
    x = uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="topic",
               arguments=args)


def _declare_with_raw_args(conn, channel, queue, arg_bytes):
    conn.send_method(channel, "queue.declare", queue=queue, exclusive=True,
                     arguments=arg_bytes)
    return conn.read_method(10)


def _raw_table(key, value_bytes):
    body = rawamqp.shortstr(key) + value_bytes
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize("depth", [2, 10, 32])
def test_nested_tables_within_limit(rawch, uname, depth):
    # depth counts every table/array level, the outermost table included
    # (the arguments table, the headers table). Up to 32 must work.
    q = uname("q")
    args = _raw_table("x-deep", b"F" + rawamqp.nested_table_bytes(depth - 1))
    m = _declare_with_raw_args(rawch, 1, q, args)
    assert m.name == "queue.declare-ok"
    arr = _raw_table("x-deep-array", rawamqp.nested_array_bytes(depth - 1))
    assert _declare_with_raw_args(rawch, 1, q, arr).name == "queue.declare-ok"
    headers = rawamqp.nested_table_bytes(depth)
    raw_props = struct.pack(">H", 1 << 13) + headers
    rawch.publish(1, "", q, b"deep", raw_props=raw_props)
    m = get(rawch, 1, q)
    assert m.content.props_raw == raw_props
    assert rawamqp.table_depth(m.content.props_raw[2:]) == depth


def test_very_deep_table(broker, raw, uname):
    """18000 levels: all that fits in one 128 KiB frame. RabbitMQ has no
    depth limit and accepts it (arguments and headers). Warren may refuse
    tables nested deeper than its limit, but only with a clean close
    (FRAME_ERROR/SYNTAX_ERROR/PRECONDITION_FAILED), and it must keep
    serving other connections."""
    depth = 18000
    c = raw()
    c.open_channel(1)
    q = uname("q")
    args = _raw_table("x-deep", b"F" + rawamqp.nested_table_bytes(depth))
    try:
        m = _declare_with_raw_args(c, 1, q, args)
    except rawamqp.Closed:
        m = None
    if broker.target == "rabbitmq":
        assert m is not None and m.name == "queue.declare-ok"
        headers = rawamqp.nested_table_bytes(depth)
        raw_props = struct.pack(">H", 1 << 13) + headers
        c.publish(1, "", q, b"deep", raw_props=raw_props)
        got = get(c, 1, q)
        assert got.content.props_raw == raw_props
    elif m is not None and m.name != "queue.declare-ok":
        assert m.name in ("connection.close", "channel.close"), m
        assert m.reply_code in (501, 502, 406), m
    other = raw()
    other.open_channel(1)
    assert other.call(1, "basic.qos").name == "basic.qos-ok"


# -- message size limit (Warren only) -----------------------------------------


@pytest.mark.warren_only
def test_max_message_size(make_broker):
    # RabbitMQ (rabbit_channel:check_msg_size) answers a body over
    # max_message_size with channel.close 406 "PRECONDITION_FAILED -
    # message size 1025 is larger than configured max size 1024"
    # (class 60, method 40) on the publishing channel only.
    b = make_broker(extra_conf={"max_message_size": 1024})
    c = b.raw()
    c.open_channel(1)
    c.open_channel(2)
    q = temp_queue(c, 2)
    c.publish(1, "", q, b"x" * 1024)
    c.publish(1, "", q, b"x" * 1025)
    assert_channel_close(
        c, 1, 406, "PRECONDITION_FAILED - message size 1025 is larger than "
        "configured max size 1024", 60, 40)
    assert get_bodies(c, 2, q) == [b"x" * 1024]
    c.close()
