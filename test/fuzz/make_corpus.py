#!/usr/bin/python3
"""make_corpus.py: write the seed corpora of Warren's codec fuzz targets.

    /usr/bin/python3 test/fuzz/make_corpus.py [CORPUS_DIR]

Needs Debian's python3-pika (hence /usr/bin/python3): the method, property
and frame seeds are the bytes a stock client really writes, so they double
as a cross-check of Warren's codec against another implementation
(test_codec's pika_encodings_decode_and_re_encode_identically). Edge cases
the client never writes (unknown ids, truncation, bad tables, oversized
frames) are built by hand with struct.

Output is deterministic. The script owns the files named pika-* and seed-*
in corpus/<target>/ and rewrites them all; regression inputs found by
fuzzing are committed as regress-<what>.bin and left alone. In
fuzz_method, pika-method-* and pika-props-* are exactly what pika encodes
(test_codec requires them to re-encode byte for byte).

Layouts:
  fuzz_method  the input is a method frame payload (class, method, args);
               the target also tries it as content properties (flags+list)
  fuzz_frame   byte 0 seeds the chunk sizes, byte 1 picks frame_max
               (0: none, 1: 4096, 2: 131072, n: n), the rest is the stream
  fuzz_table   the input is a field table body (no u32 length prefix)
  fuzz_peer    byte 0 < 128: the node-to-node handshake bytes a peer sends
               (signed with the target's secret and nonces); >= 128: the
               fields of an AUTH the target signs itself
"""

import hashlib
import hmac
import os
import struct
import sys
from datetime import datetime, timezone
from decimal import Decimal

import pika.frame as pframe
import pika.spec as spec

HERE = os.path.dirname(os.path.abspath(__file__))
OWNED = ("pika-", "seed-")


# ---------------------------------------------------------------- helpers

def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def method_payload(m):
    return struct.pack(">I", m.INDEX) + b"".join(m.encode())


def frame(ftype, channel, payload, end=b"\xce", size=None):
    if size is None:
        size = len(payload)
    return struct.pack(">BHI", ftype, channel, size) + payload + end


# One field table value per RabbitMQ type letter, encoded by hand.
def v_bool(b): return b"t" + struct.pack(">B", b)
def v_i8(n): return b"b" + struct.pack(">b", n)
def v_u8(n): return b"B" + struct.pack(">B", n)
def v_i16(n): return b"s" + struct.pack(">h", n)
def v_u16(n): return b"u" + struct.pack(">H", n)
def v_i32(n): return b"I" + struct.pack(">i", n)
def v_u32(n): return b"i" + struct.pack(">I", n)
def v_i64(n): return b"l" + struct.pack(">q", n)
def v_i64L(n): return b"L" + struct.pack(">q", n)
def v_f32(x): return b"f" + struct.pack(">f", x)
def v_f64(x): return b"d" + struct.pack(">d", x)
def v_dec(scale, n): return b"D" + struct.pack(">BI", scale, n)
def v_str(s): return b"S" + longstr(s)
def v_bytes(s): return b"x" + longstr(s)
def v_ts(n): return b"T" + struct.pack(">Q", n)
def v_void(): return b"V"
def v_table(body): return b"F" + longstr(body)
def v_array(body): return b"A" + longstr(body)


def table(*entries):
    """Table body from (key, encoded value) pairs."""
    return b"".join(shortstr(k) + v for k, v in entries)


EVERY_TYPE = table(
    ("t", v_bool(1)), ("b", v_i8(-5)), ("B", v_u8(250)), ("s", v_i16(-300)),
    ("u", v_u16(60000)), ("I", v_i32(-70000)), ("i", v_u32(4000000000)),
    ("l", v_i64(-5000000000)), ("L", v_i64L(7)), ("f", v_f32(1.5)),
    ("d", v_f64(-2.25)), ("D", v_dec(2, 314)), ("S", v_str("hello")),
    ("A", v_array(v_i32(1) + v_str("x"))), ("T", v_ts(1700000000)),
    ("F", v_table(table(("k", v_str("v"))))), ("V", v_void()),
    ("x", v_bytes(b"\x00\x01")))


def nested(depth):
    """A table body that is depth tables deep (the body itself is 1)."""
    body = b""
    for _ in range(depth - 1):
        body = table(("k", v_table(body)))
    return body


CLIENT_PROPERTIES = {
    "product": "pika", "platform": "Python 3", "version": "1.2.0",
    "information": "See http://pika.rtfd.org",
    "capabilities": {
        "authentication_failure_close": True, "basic.nack": True,
        "connection.blocked": True, "consumer_cancel_notify": True,
        "publisher_confirms": True},
    "connection_name": "worker-1",
}


# ---------------------------------------------------------------- methods

def pika_methods():
    """(name, method) for every method pika knows, with realistic values,
    and a second variant with every bit set and long strings."""
    long_name = "q" * 255
    args = {
        spec.Connection.Start: dict(server_properties={
            "product": "RabbitMQ", "version": "3.10.8",
            "capabilities": {"publisher_confirms": True,
                             "exchange_exchange_bindings": True},
            "cluster_name": "rabbit@host"},
            mechanisms="PLAIN AMQPLAIN", locales="en_US"),
        spec.Connection.StartOk: dict(client_properties=CLIENT_PROPERTIES,
                                      response="\0guest\0guest"),
        spec.Connection.Secure: dict(challenge="challenge"),
        spec.Connection.SecureOk: dict(response="answer"),
        spec.Connection.Tune: dict(channel_max=2047, frame_max=131072,
                                   heartbeat=60),
        spec.Connection.TuneOk: dict(channel_max=2047, frame_max=131072,
                                     heartbeat=60),
        spec.Connection.Open: dict(virtual_host="/"),
        spec.Connection.Close: dict(reply_code=320,
                                    reply_text="CONNECTION_FORCED - bye",
                                    class_id=0, method_id=0),
        spec.Connection.Blocked: dict(reason="low on memory"),
        spec.Channel.Flow: dict(active=True),
        spec.Channel.FlowOk: dict(active=True),
        spec.Channel.Close: dict(reply_code=404,
                                 reply_text="NOT_FOUND - no queue 'q'",
                                 class_id=50, method_id=10),
        spec.Exchange.Declare: dict(exchange="logs", type="topic",
                                    durable=True,
                                    arguments={"alternate-exchange": "ae"}),
        spec.Exchange.Delete: dict(exchange="logs", if_unused=True),
        spec.Exchange.Bind: dict(destination="d", source="s",
                                 routing_key="a.*", arguments={}),
        spec.Exchange.Unbind: dict(destination="d", source="s",
                                   routing_key="a.*", arguments={}),
        spec.Queue.Declare: dict(queue="tasks", durable=True, arguments={
            "x-message-ttl": 60000, "x-dead-letter-exchange": "dlx",
            "x-max-length": 1000, "x-queue-type": "classic"}),
        spec.Queue.DeclareOk: dict(queue="amq.gen-JzTY20BRgKO-HjmUJj0wLg",
                                   message_count=3, consumer_count=1),
        spec.Queue.Bind: dict(queue="tasks", exchange="logs",
                              routing_key="#", arguments={"x-match": "all"}),
        spec.Queue.Purge: dict(queue="tasks"),
        spec.Queue.PurgeOk: dict(message_count=12),
        spec.Queue.Delete: dict(queue="tasks", if_empty=True),
        spec.Queue.DeleteOk: dict(message_count=0),
        spec.Queue.Unbind: dict(queue="tasks", exchange="logs",
                                routing_key="#", arguments={}),
        spec.Basic.Qos: dict(prefetch_count=10),
        spec.Basic.Consume: dict(queue="tasks", consumer_tag="ctag1.0",
                                 arguments={"x-priority": 5}),
        spec.Basic.ConsumeOk: dict(consumer_tag="ctag1.0"),
        spec.Basic.Cancel: dict(consumer_tag="ctag1.0"),
        spec.Basic.CancelOk: dict(consumer_tag="ctag1.0"),
        spec.Basic.Publish: dict(exchange="", routing_key="tasks"),
        spec.Basic.Return: dict(reply_code=312, reply_text="NO_ROUTE",
                                exchange="logs", routing_key="nowhere"),
        spec.Basic.Deliver: dict(consumer_tag="ctag1.0", delivery_tag=1,
                                 exchange="", routing_key="tasks"),
        spec.Basic.Get: dict(queue="tasks", no_ack=True),
        spec.Basic.GetOk: dict(delivery_tag=7, exchange="",
                               routing_key="tasks", message_count=0),
        spec.Basic.Ack: dict(delivery_tag=42),
        spec.Basic.Reject: dict(delivery_tag=42, requeue=False),
        spec.Basic.Nack: dict(delivery_tag=42, multiple=True),
        spec.Basic.Recover: dict(requeue=True),
    }
    full = {
        spec.Connection.Open: dict(virtual_host=long_name, capabilities="x",
                                   insist=True),
        spec.Exchange.Declare: dict(exchange=long_name, type="headers",
                                    passive=True, durable=True,
                                    auto_delete=True, internal=True,
                                    nowait=True, arguments={
                                        "every": {"nested": [1, "two", None,
                                                             True, 2 ** 40]},
                                        "when": datetime(2023, 11, 14, 22, 13,
                                                         20, tzinfo=timezone.utc),
                                        "price": Decimal("3.14"),
                                        "raw": b"\x00\xff"}),
        spec.Queue.Declare: dict(queue=long_name, passive=True, durable=True,
                                 exclusive=True, auto_delete=True,
                                 nowait=True, arguments={}),
        spec.Queue.Delete: dict(queue=long_name, if_unused=True,
                                if_empty=True, nowait=True),
        spec.Basic.Consume: dict(queue=long_name, consumer_tag=long_name,
                                 no_local=True, no_ack=True, exclusive=True,
                                 nowait=True, arguments={}),
        spec.Basic.Publish: dict(exchange=long_name, routing_key=long_name,
                                 mandatory=True, immediate=True),
        spec.Basic.Deliver: dict(consumer_tag=long_name,
                                 delivery_tag=2 ** 64 - 1, redelivered=True,
                                 exchange=long_name, routing_key=long_name),
        spec.Basic.Qos: dict(prefetch_size=2 ** 32 - 1,
                             prefetch_count=65535, global_qos=True),
        spec.Basic.Nack: dict(delivery_tag=2 ** 64 - 1, multiple=True,
                              requeue=True),
        spec.Access.Request: dict(realm="/data", exclusive=True,
                                  passive=True, active=True, write=True,
                                  read=True),
        spec.Confirm.Select: dict(nowait=True),
    }
    out = []
    for index in sorted(spec.methods):
        cls = spec.methods[index]
        name = cls.NAME.lower()
        out.append(("%s" % name, cls(**args.get(cls, {}))))
        if cls in full:
            out.append(("%s-full" % name, cls(**full[cls])))
    return out


def pika_props():
    return [
        ("all", spec.BasicProperties(
            content_type="application/json", content_encoding="gzip",
            headers={"x-retry": 3, "trace": {"id": "abc"}},
            delivery_mode=2, priority=9, correlation_id="c-1",
            reply_to="amq.rabbitmq.reply-to", expiration="60000",
            message_id="m-1", timestamp=1700000000, type="task",
            user_id="guest", app_id="warren-tests", cluster_id="c")),
        ("persistent", spec.BasicProperties(delivery_mode=2)),
        ("none", spec.BasicProperties()),
        ("headers", spec.BasicProperties(
            content_type="text/plain",
            headers={"CC": ["a", "b"], "x-death": [{"count": 1,
                                                    "reason": "expired"}]})),
    ]


def edge_methods():
    tune = struct.pack(">HHHIH", 10, 30, 2047, 131072, 60)
    declare = method_payload(spec.Queue.Declare(queue="q", arguments={}))
    return [
        ("empty", b""),
        ("three-bytes", b"\x00\x0a\x00"),
        ("unknown-class", struct.pack(">HH", 11, 10)),
        ("unknown-method", struct.pack(">HH", 60, 41) + b"\x00"),
        ("tune-truncated", tune[:-1]),
        ("tune-trailing", tune + b"\x00"),
        ("shortstr-past-end", struct.pack(">HHH", 50, 10, 0) + b"\xc8abc"),
        ("longstr-4g", struct.pack(">HHI", 10, 20, 0xffffffff) + b"abc"),
        ("table-past-end", declare[:-4] + struct.pack(">I", 4096)),
        ("table-unknown-type", declare[:-4] + longstr(b"\x01kZ")),
        ("table-deep-32", declare[:-4] + longstr(nested(32))),
        ("table-deep-33", declare[:-4] + longstr(nested(33))),
        ("ack-high-bits", struct.pack(">HHQB", 60, 80, 5, 0xfe)),
        ("update-secret", struct.pack(">HH", 10, 70) + longstr("token") +
         shortstr("refresh")),
        ("update-secret-ok", struct.pack(">HH", 10, 71)),
        ("unblocked", struct.pack(">HH", 10, 61)),
        # content properties layouts (the target decodes every input as
        # both a method and a property list)
        ("props-continuation-zero", b"\x80\x01\x00\x00\x01a"),
        ("props-continuation-set", b"\x80\x01\x80\x00\x01a"),
        ("props-undefined-bit", b"\x00\x02"),
        ("props-bad-headers", b"\x20\x00" + longstr(b"\x01kZ")),
        ("props-every-type-headers", b"\x20\x00" + longstr(EVERY_TYPE)),
    ]


# ---------------------------------------------------------------- frames

def publish_frames(channel, body, frame_max, props):
    out = pframe.Method(channel, spec.Basic.Publish(
        exchange="amq.topic", routing_key="a.b")).marshal()
    out += pframe.Header(channel, len(body), props).marshal()
    room = frame_max - 8
    for i in range(0, len(body), room):
        out += pframe.Body(channel, body[i:i + room]).marshal()
    return out


def frame_seeds():
    """(name, chunk seed, frame_max selector, stream)"""
    m = lambda ch, meth: pframe.Method(ch, meth).marshal()
    handshake = (
        m(0, spec.Connection.StartOk(client_properties=CLIENT_PROPERTIES,
                                     response="\0guest\0guest")) +
        m(0, spec.Connection.TuneOk(channel_max=2047, frame_max=131072,
                                    heartbeat=60)) +
        m(0, spec.Connection.Open(virtual_host="/")) +
        m(1, spec.Channel.Open()) +
        m(1, spec.Queue.Declare(queue="tasks", durable=True)) +
        m(1, spec.Basic.Qos(prefetch_count=10)) +
        m(1, spec.Basic.Consume(queue="tasks", consumer_tag="ctag1.0")) +
        pframe.Heartbeat().marshal() +
        m(1, spec.Basic.Ack(delivery_tag=1)))
    body = bytes((i * 7) & 0xff for i in range(10000))
    persistent = spec.BasicProperties(delivery_mode=2,
                                      content_type="text/plain")
    all_props = pika_props()[0][1]
    server = (
        m(0, spec.Connection.Start(server_properties={"product": "x"})) +
        m(0, spec.Connection.Tune(channel_max=2047, frame_max=4096,
                                  heartbeat=60)) +
        m(1, spec.Basic.Deliver(consumer_tag="c", delivery_tag=1,
                                exchange="", routing_key="q")) +
        pframe.Header(1, 3, persistent).marshal() +
        pframe.Body(1, b"abc").marshal())
    hb = pframe.Heartbeat().marshal()
    return [
        ("handshake", 0x11, 1, handshake),
        ("handshake-bytewise", 0x00, 2, handshake),
        ("publish-split", 0x5a, 1, publish_frames(1, body, 4096, persistent)),
        ("publish-all-props", 0x23, 2,
         publish_frames(3, body[:100], 131072, all_props)),
        ("publish-empty-body", 0x42, 1, publish_frames(1, b"", 4096,
                                                        persistent)),
        ("server-side", 0x77, 1, server),
        ("heartbeats", 0x01, 1, hb * 4),
        ("every-pika-method", 0x33, 0,
         b"".join(m(7, meth) for _, meth in pika_methods())),
        ("frame-exactly-4096", 0x99, 1,
         frame(3, 1, b"\x00" * 4088) + hb),
        ("frame-4097", 0x99, 1, frame(3, 1, b"\x00" * 4089)),
        ("oversized-header-only", 0x10, 1,
         struct.pack(">BHI", 1, 1, 1 << 20)),
        ("huge-no-limit", 0x10, 0, struct.pack(">BHI", 3, 1, 0xffffffff)),
        ("bad-end", 0x20, 1, frame(1, 0, b"\x00\x0a\x00\x33", end=b"\xcd")),
        ("bad-type", 0x20, 1, frame(4, 0, b"abc")),
        ("protocol-header", 0x20, 1, b"AMQP\x00\x00\x09\x01"),
        ("tiny-frame-max", 0x05, 9, frame(3, 1, b"a") + frame(3, 1, b"ab")),
        ("header-unknown-class", 0x30, 1,
         frame(2, 1, struct.pack(">HHQ", 61, 0, 0) + b"\x00\x00")),
        ("header-short", 0x30, 1, frame(2, 1, b"\x00\x3c\x00")),
        ("header-continuation", 0x30, 1,
         frame(2, 1, struct.pack(">HHQ", 60, 0, 1) + b"\x80\x01\x00\x00\x01a")),
        ("method-unknown", 0x30, 1, frame(1, 1, struct.pack(">HH", 60, 41))),
        ("method-truncated", 0x30, 1, frame(1, 1, b"\x00\x3c\x00\x28\x00")),
        ("channel-65535", 0x44, 1,
         m(65535, spec.Channel.Open()) + frame(3, 65535, b"")),
    ]


# ---------------------------------------------------------------- tables

def pika_table(d):
    from pika import data
    pieces = []
    data.encode_table(pieces, d)
    return b"".join(pieces)[4:]


def table_seeds():
    nan32 = b"f" + b"\x7f\xc0\x00\x01"
    nan64 = b"d" + b"\x7f\xf8\x00\x00\x00\x00\x00\x01"
    return [
        ("empty", b""),
        ("every-type", EVERY_TYPE),
        ("client-properties", pika_table(CLIENT_PROPERTIES)),
        ("queue-args", pika_table({"x-message-ttl": 60000,
                                   "x-dead-letter-exchange": "dlx",
                                   "x-max-priority": 10})),
        ("x-death", pika_table({"x-death": [{
            "count": 2, "reason": "rejected", "queue": "q", "time":
            datetime(2023, 11, 14, tzinfo=timezone.utc), "exchange": "",
            "routing-keys": ["q"]}]})),
        ("array-of-every-type", table(("a", v_array(
            v_bool(0) + v_i8(1) + v_u8(2) + v_i16(3) + v_u16(4) +
            v_i32(5) + v_u32(6) + v_i64(7) + v_i64L(8) + v_f32(9.5) +
            v_f64(10.5) + v_dec(1, 11) + v_str("12") + v_ts(13) +
            v_void() + v_bytes(b"14") + v_table(EVERY_TYPE) +
            v_array(v_i32(15)))))),
        ("deep-32", nested(32)),
        ("deep-33", nested(33)),
        ("deep-arrays", table(("a", v_array(v_array(v_array(v_array(
            v_table(table(("k", v_array(b""))))))))))),
        ("duplicate-keys", table(("k", v_i32(1)), ("k", v_str("two")))),
        ("key-with-nul", table((b"a\x00b", v_bool(1)))),
        ("key-255", table(("k" * 255, v_void()))),
        ("empty-key", table(("", v_u8(1)))),
        ("bool-not-0-or-1", table(("t", b"t\x02"))),
        ("nan-and-inf", table(("f", nan32), ("d", nan64),
                              ("inf", v_f64(float("inf"))))),
        ("int-extremes", table(("a", v_i64(-2 ** 63)), ("b", v_i64L(2 ** 63 - 1)),
                               ("c", v_u32(2 ** 32 - 1)), ("d", v_i8(-128)))),
        ("unknown-type", table(("k", b"Z"))),
        ("nul-type", table(("k", b"\x00"))),
        ("truncated-key", b"\x05ab"),
        ("truncated-value", table(("k", b"I\x00\x01"))),
        ("longstr-past-end", table(("k", b"S\x00\x00\x10\x00abc"))),
        ("nested-past-end", table(("k", b"F\x00\x00\x00\x09\x01kV"))),
        ("array-bad-inside", table(("k", v_array(b"Z")))),
        ("decimal", table(("D", v_dec(255, 2 ** 32 - 1)))),
    ]


# ---------------------------------------------------------------- main

def write_dir(root, target, items):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for name in sorted(os.listdir(d)):
        if name.startswith(OWNED):
            os.unlink(os.path.join(d, name))
    for name, data in items:
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
    return len(items)


SECRET = b"the cluster's secret"
NONCE_S = b"server-nonce-of-the-fuzz-target\0"
NONCE_C = b"client-nonce-of-the-fuzz-target\0"


def peer_mac(nonce, msg, secret=SECRET):
    return hmac.new(secret, nonce + msg, hashlib.sha256).digest()


def peer_auth(node, payload, purpose=1, version=1, secret=SECRET):
    body = (b"WRNA" + bytes([version]) + NONCE_C + shortstr(node)
            + bytes([purpose]) + longstr(payload))
    return body + peer_mac(NONCE_S, body, secret)


def peer_ok(status, text, secret=SECRET):
    body = b"WRNK\x01" + bytes([status]) + struct.pack(">H", len(text)) + text
    return body + peer_mac(NONCE_C, body, secret)


def peer_seeds():
    """fuzz_peer: byte 0 < 128 is raw (the rest is what a peer sends,
    signed with the target's secret and nonces), >= 128 sealed (byte 1 the
    node name's length, then name and payload)."""
    handover = (b'{"vhost":"/","user":"guest","peer":"127.0.0.1:5000",'
                b'"frame_max":131072,"channel_max":2047,"heartbeat":60}')
    raw = [("hello", b"WRNH\x01" + NONCE_S),
           ("hello-v2", b"WRNH\x02" + NONCE_S),
           ("hello-short", b"WRNH\x01" + NONCE_S[:10]),
           ("auth", peer_auth(b"node1", handover)),
           ("auth-empty-payload", peer_auth(b"node2", b"")),
           ("auth-wrong-secret", peer_auth(b"node1", handover,
                                           secret=b"other")),
           ("auth-bad-utf8", peer_auth(b"\xff\xfe", b"x")),
           ("auth-empty-node", peer_auth(b"", b"x")),
           ("auth-huge-length", b"WRNA\x01" + NONCE_C + shortstr(b"n")
            + b"\x01" + struct.pack(">I", 0xFFFFFFFF)),
           ("ok", peer_ok(0, b"")),
           ("ok-refused", peer_ok(1, b"vhost x is down")),
           ("ok-long-text", b"WRNK\x01\x01" + struct.pack(">H", 0xFFFF)),
           ("amqp-header", b"AMQP\x00\x00\x09\x01"),
           ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    sealed = [("sealed-relay", bytes([5]) + b"node1" + handover),
              ("sealed-utf8", bytes([6]) + "nöde".encode() + b"payload"),
              ("sealed-bad-utf8", bytes([2]) + b"\xc3\x28" + b"p"),
              ("sealed-nul", bytes([3]) + b"a\0b" + b"p"),
              ("sealed-empty", bytes([0]))]
    return ([("seed-" + n, b"\x00" + d) for n, d in raw]
            + [("seed-" + n, b"\x80" + d) for n, d in sealed])


def main(argv):
    root = argv[0] if argv else os.path.join(HERE, "corpus")
    method = [("pika-method-" + n, method_payload(m))
              for n, m in pika_methods()]
    method += [("pika-props-" + n, b"".join(p.encode()))
               for n, p in pika_props()]
    method += [("seed-" + n, data) for n, data in edge_methods()]
    frames = [("seed-" + n, bytes([seed, fm]) + stream)
              for n, seed, fm, stream in frame_seeds()]
    tables = [("seed-" + n, data) for n, data in table_seeds()]
    counts = (write_dir(root, "fuzz_method", method),
              write_dir(root, "fuzz_frame", frames),
              write_dir(root, "fuzz_table", tables),
              write_dir(root, "fuzz_peer", peer_seeds()))
    print("wrote %d fuzz_method, %d fuzz_frame, %d fuzz_table, %d fuzz_peer "
          "seeds to %s"
          % (counts + (root,)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
