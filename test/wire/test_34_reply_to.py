"""Direct reply-to (amq.rabbitmq.reply-to), as RabbitMQ 3.10 does it.

A requester consumes in no-ack mode from the pseudo-queue
amq.rabbitmq.reply-to (no queue exists), publishes a request with
reply_to = amq.rabbitmq.reply-to, and the broker rewrites reply_to to
amq.rabbitmq.reply-to.<token>; a responder publishing to the default
exchange with that routing key reaches the requester's channel directly.
RabbitMQ counts such a reply as routed to no queue: a mandatory reply is
delivered *and* returned (its documentation says so). Every expectation
here was taken from RabbitMQ 3.10.8.
"""

import json
import os
import subprocess
import threading

import pika
import pytest

import rawamqp
from wireutil import assert_channel_close, confirm_select, drain, get

RT = "amq.rabbitmq.reply-to"


# ---- the RPC tutorial (pika), with direct reply-to


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def rpc_server(broker, queue, ready, stop):
    """The tutorial's rpc_server.py: answers on props.reply_to."""
    conn = pika.BlockingConnection(broker.params())
    ch = conn.channel()
    ch.queue_declare(queue=queue, exclusive=True)
    seen = []

    def on_request(ch, method, props, body):
        seen.append(props.reply_to)
        response = fib(int(body))
        ch.basic_publish(exchange="", routing_key=props.reply_to,
                         properties=pika.BasicProperties(
                             correlation_id=props.correlation_id),
                         body=str(response))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(queue=queue, on_message_callback=on_request)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.05)
    conn.close()
    return seen


class FibonacciRpcClient:
    """The tutorial's rpc_client.py, consuming from amq.rabbitmq.reply-to
    instead of an exclusive callback queue."""

    def __init__(self, broker, queue):
        self.queue = queue
        self.connection = pika.BlockingConnection(broker.params())
        self.channel = self.connection.channel()
        self.channel.basic_consume(queue=RT,
                                   on_message_callback=self.on_response,
                                   auto_ack=True)
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = "corr-%d" % n
        self.channel.basic_publish(
            exchange="", routing_key=self.queue,
            properties=pika.BasicProperties(reply_to=RT,
                                            correlation_id=self.corr_id),
            body=str(n))
        self.connection.process_data_events(time_limit=None)
        while self.response is None:
            self.connection.process_data_events(time_limit=1)
        return int(self.response)


def test_capability_direct_reply_to(broker):
    conn = pika.BlockingConnection(broker.params())
    try:
        caps = conn._impl.server_properties["capabilities"]
        assert caps["direct_reply_to"] is True
    finally:
        conn.close()


def test_pika_rpc_tutorial(broker, uname):
    queue = uname("rpc")
    ready, stop = threading.Event(), threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "seen", rpc_server(broker, queue, ready, stop)))
    t.start()
    try:
        assert ready.wait(10)
        client = FibonacciRpcClient(broker, queue)
        answers = [client.call(n) for n in range(12)]
        client.connection.close()
    finally:
        stop.set()
        t.join(10)
    assert answers == [fib(n) for n in range(12)]
    seen = result["seen"]
    assert len(seen) == 12
    # One consumer, one token: every request names the same reply name.
    assert len(set(seen)) == 1 and seen[0].startswith(RT + ".")
    assert seen[0] != RT + "."


# ---- amqplib (Node.js): the same RPC


AMQPLIB_RPC = r"""
const amqp = require(process.env.AMQPLIB);
const url = process.env.BROKER_URL;
const fib = (n) => (n < 2 ? n : fib(n - 1) + fib(n - 2));

(async () => {
  const server = await amqp.connect(url);
  const sch = await server.createChannel();
  const { queue } = await sch.assertQueue('', { exclusive: true });
  const seen = [];
  await sch.consume(queue, (msg) => {
    seen.push(msg.properties.replyTo);
    const n = parseInt(msg.content.toString(), 10);
    sch.sendToQueue(msg.properties.replyTo, Buffer.from(String(fib(n))),
                    { correlationId: msg.properties.correlationId });
    sch.ack(msg);
  });

  const client = await amqp.connect(url);
  const ch = await client.createChannel();
  const pending = new Map();
  await ch.consume('amq.rabbitmq.reply-to', (msg) => {
    const done = pending.get(msg.properties.correlationId);
    if (done) done(parseInt(msg.content.toString(), 10));
  }, { noAck: true });
  const call = (n) => new Promise((resolve) => {
    const id = 'c' + n;
    pending.set(id, resolve);
    ch.sendToQueue(queue, Buffer.from(String(n)),
                   { correlationId: id, replyTo: 'amq.rabbitmq.reply-to' });
  });
  const answers = await Promise.all([...Array(15).keys()].map(call));
  await client.close();
  await server.close();
  console.log(JSON.stringify({ answers, seen }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_amqplib_rpc(broker, tmp_path):
    from test_26_amqplib import amqplib_package

    pkg = amqplib_package()
    script = tmp_path / "rpc.js"
    script.write_text(AMQPLIB_RPC)
    env = dict(os.environ, AMQPLIB=pkg,
               BROKER_URL="amqp://guest:guest@%s:%d" % (broker.host,
                                                        broker.port))
    p = subprocess.run(["node", str(script)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["answers"] == [fib(n) for n in range(15)]
    assert len(out["seen"]) == 15
    assert all(s.startswith(RT + ".") for s in out["seen"])


# ---- the protocol, raw


def requester(raw, channel=1, tag="rt"):
    c = raw()
    c.open_channel(channel)
    ok = c.call(channel, "basic.consume", queue=RT, consumer_tag=tag,
                no_ack=True)
    assert ok.consumer_tag == tag
    return c


def request_reply_to(raw, c, channel=1):
    """Publishes a request from c and returns its rewritten reply_to as a
    responder sees it (through a temporary queue)."""
    r = raw()
    r.open_channel(1)
    q = r.call(1, "queue.declare", queue="", exclusive=True).queue
    c.publish(channel, "", q, b"req", props={"reply_to": RT,
                                              "correlation_id": "c1"})
    for _ in range(100):
        m = get(r, 1, q)
        if m.name == "basic.get-ok":
            return m.content.props["reply_to"]
    raise AssertionError("the request did not arrive")


def test_reply_goes_to_the_requesters_channel(raw):
    c = requester(raw, tag="rt")
    name = request_reply_to(raw, c)
    assert name.startswith(RT + ".")
    resp = raw()
    resp.open_channel(1)
    resp.publish(1, "", name, b"answer", props={"correlation_id": "c1"})
    m = c.read_method(timeout=5)
    assert m.name == "basic.deliver" and m.channel == 1
    assert (m.consumer_tag, m.exchange, m.routing_key, m.redelivered) == (
        "rt", "", name, False)
    assert m.content.body == b"answer"
    assert m.content.props == {"correlation_id": "c1"}
    # The reply takes no delivery tag: RabbitMQ sends the channel's next
    # one without using it (nothing is to be acked).
    assert m.delivery_tag == 1
    resp.publish(1, "", name, b"again")
    assert c.read_method(timeout=5).delivery_tag == 1


def test_pseudo_queue_declares(raw):
    c = raw()
    c.open_channel(1)
    for passive in (True, False):
        ok = c.call(1, "queue.declare", queue=RT, passive=passive)
        assert (ok.queue, ok.message_count, ok.consumer_count) == (RT, 0, 1)
    c.publish(1, "", "x", b"", props={})
    # A stale token (RabbitMQ's shape: a channel that is gone). RabbitMQ
    # fails the connection with 541 for a token whose first part is
    # base64 but no Erlang term; Warren says 404 for any unknown token.
    stale = RT + (".g1h2AA5yZXBseUAyMjc2OTE0MAAAA+MAAAAAaxXS6w=="
                  ".3DPzpf2m5hwwYJAbi4Zw5w==")
    for bad in (RT + ".abc", RT + "x", RT + ".", stale):
        c.send_method(1, "queue.declare", queue=bad, passive=True)
        assert_channel_close(c, 1, 404,
                             "NOT_FOUND - no queue '%s' in vhost '/'" % bad,
                             50, 10)
        c.open_channel(1)


def test_reply_name_declares_while_its_consumer_lives(raw):
    c = requester(raw, tag="rt")
    name = request_reply_to(raw, c)
    d = raw()
    d.open_channel(1)
    ok = d.call(1, "queue.declare", queue=name, passive=True)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
    assert c.call(1, "basic.cancel", consumer_tag="rt").consumer_tag == "rt"
    d.send_method(1, "queue.declare", queue=name, passive=True)
    assert_channel_close(d, 1, 404,
                         "NOT_FOUND - no queue '%s' in vhost '/'" % name,
                         50, 10)


def test_mandatory_reply_is_delivered_and_returned(raw):
    c = requester(raw, tag="rt")
    name = request_reply_to(raw, c)
    resp = raw()
    resp.open_channel(1)
    confirm_select(resp, 1)
    resp.publish(1, "", name, b"answer", mandatory=True)
    ret = resp.read_method(timeout=5)
    assert ret.name == "basic.return"
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) \
        == (312, "NO_ROUTE", "", name)
    assert resp.read_method(timeout=5).name == "basic.ack"
    m = c.read_method(timeout=5)
    assert m.name == "basic.deliver" and m.content.body == b"answer"


def test_reply_to_a_gone_requester_is_returned(raw):
    c = requester(raw, tag="rt")
    name = request_reply_to(raw, c)
    c.close_channel(1)
    resp = raw()
    resp.open_channel(1)
    resp.publish(1, "", name, b"late", mandatory=True)
    ret = resp.read_method(timeout=5)
    assert (ret.name, ret.reply_code, ret.routing_key) == (
        "basic.return", 312, name)
    assert drain(c) == []


def test_forged_or_other_exchange_replies_go_nowhere(raw):
    c = requester(raw, tag="rt")
    name = request_reply_to(raw, c)
    ident, _, key = name[len(RT) + 1:].partition(".")
    forged = "%s.%s.%s" % (RT, ident, "A" * len(key))
    resp = raw()
    resp.open_channel(1)
    for x, rk in (("", forged), ("", RT), ("", name + "x"),
                  ("amq.direct", name)):
        resp.publish(1, x, rk, b"nope", mandatory=True)
        ret = resp.read_method(timeout=5)
        assert (ret.name, ret.exchange, ret.routing_key) == (
            "basic.return", x, rk)
    assert [f for f in drain(c) if f.channel == 1] == []


def test_consume_must_be_no_ack(raw):
    c = raw()
    c.open_channel(1)
    c.send_method(1, "basic.consume", queue=RT, no_ack=False)
    assert_channel_close(
        c, 1, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge",
        60, 20)


def test_one_reply_consumer_per_channel(raw):
    c = requester(raw, tag="rt")
    c.send_method(1, "basic.consume", queue=RT, consumer_tag="two",
                  no_ack=True)
    assert_channel_close(
        c, 1, 406, "PRECONDITION_FAILED - reply consumer already set", 60, 20)
    # Another channel may have its own.
    c.open_channel(2)
    ok = c.call(2, "basic.consume", queue=RT, consumer_tag="", no_ack=True)
    assert ok.consumer_tag.startswith("amq.ctag-")


def test_request_without_reply_consumer(raw):
    c = raw()
    c.open_channel(1)
    c.open_channel(2)
    c.call(2, "basic.consume", queue=RT, consumer_tag="rt", no_ack=True)
    # The consumer is on channel 2: channel 1 has none.
    c.publish(1, "", "nowhere", b"req", props={"reply_to": RT})
    assert_channel_close(
        c, 1, 406, "PRECONDITION_FAILED - fast reply consumer does not exist",
        60, 40)
    # After basic.cancel the channel has none either.
    c.call(2, "basic.cancel", consumer_tag="rt")
    c.publish(2, "", "nowhere", b"req", props={"reply_to": RT})
    assert_channel_close(
        c, 2, 406, "PRECONDITION_FAILED - fast reply consumer does not exist",
        60, 40)


def test_other_reply_to_values_are_left_alone(raw):
    c = requester(raw, tag="rt")
    r = raw()
    r.open_channel(1)
    q = r.call(1, "queue.declare", queue="", exclusive=True).queue
    for v in (RT + ".mine", "amq.rabbitmq.reply-", "plain"):
        c.publish(1, "", q, b"req", props={"reply_to": v})
        for _ in range(100):
            m = get(r, 1, q)
            if m.name == "basic.get-ok":
                break
        assert m.content.props["reply_to"] == v


def test_pseudo_queue_is_not_a_queue(raw):
    c = raw()
    c.open_channel(1)
    for method, kw, ids in (
            ("basic.get", {"queue": RT}, (60, 70)),
            ("queue.purge", {"queue": RT}, (50, 30)),
            ("queue.bind", {"queue": RT, "exchange": "amq.direct",
                            "routing_key": "k"}, (50, 20))):
        c.send_method(1, method, **kw)
        assert_channel_close(c, 1, 404,
                             "NOT_FOUND - no queue '%s' in vhost '/'" % RT,
                             *ids)
        c.open_channel(1)
    assert c.call(1, "queue.delete", queue=RT).message_count == 0
