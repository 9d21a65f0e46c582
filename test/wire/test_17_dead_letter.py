"""Dead-lettering (x-dead-letter-exchange, x-dead-letter-routing-key) as
RabbitMQ 3.10 does it: messages rejected without requeue, expired, or
pushed out by a length limit are republished to the dead-letter exchange
with an x-death history, without their expiration, and not around an
automatic cycle. Validated against RabbitMQ with WARREN_TEST_BROKER."""

import time

import pytest

from rawamqp import F
from wireutil import confirm_select, get, publish_sync, wait_until

PERSISTENT = {"delivery_mode": 2}


def dlx_pair(rawch, uname, dlrk=None, **args):
    """A fanout DLX with a queue `dead` bound to it, and a work queue
    dead-lettering there. Returns (work, dead, dlx)."""
    dlx, dead, work = uname("dlx"), uname("dead"), uname("work")
    rawch.call(1, "exchange.declare", exchange=dlx, type="fanout")
    rawch.call(1, "queue.declare", queue=dead)
    rawch.call(1, "queue.bind", queue=dead, exchange=dlx, routing_key="")
    a = {"x-dead-letter-exchange": dlx}
    if dlrk is not None:
        a["x-dead-letter-routing-key"] = dlrk
    a.update(args)
    rawch.call(1, "queue.declare", queue=work, arguments=a)
    return work, dead, dlx


def wait_get(rawch, queue, timeout=30.0, no_ack=True):
    """basic.get until a message comes (dead-lettering is asynchronous)."""
    m = wait_until(lambda: (lambda r: r if r.name == "basic.get-ok"
                            else None)(get(rawch, 1, queue, no_ack)),
                   timeout)
    assert m, "nothing arrived in %s" % queue
    return m


def publish_and_reject(c, queue, body=b"x", **kw):
    """Publishes one message to queue, takes it and rejects it without
    requeue."""
    confirm_select(c, 1)
    publish_sync(c, 1, "", queue, body, **kw)
    m = get(c, 1, queue, no_ack=False)
    assert m.name == "basic.get-ok", m
    c.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                  requeue=False)


def deaths(m):
    return [e.value for e in m.content.props["headers"]["x-death"].value]


def test_rejected_goes_to_the_dlx_with_x_death(rawch, uname):
    work, dead, dlx = dlx_pair(rawch, uname)
    publish_and_reject(rawch, work, b"bad",
                       props={"headers": {"app": F("S", b"kept")},
                              "correlation_id": "c1"})
    d = wait_get(rawch, dead)
    assert d.content.body == b"bad"
    assert d.exchange == dlx and d.routing_key == work
    assert not d.redelivered
    props = d.content.props
    assert props["correlation_id"] == "c1"
    h = props["headers"]
    assert h["app"] == F("S", b"kept")
    assert h["x-first-death-reason"] == F("S", b"rejected")
    assert h["x-first-death-queue"] == F("S", work.encode())
    assert h["x-first-death-exchange"] == F("S", b"")
    [e] = deaths(d)
    assert e["count"] == F("l", 1)
    assert e["reason"] == F("S", b"rejected")
    assert e["queue"] == F("S", work.encode())
    assert e["exchange"] == F("S", b"")
    assert e["routing-keys"] == F("A", [F("S", work.encode())])
    assert e["time"].tag == "T"
    assert abs(e["time"].value - time.time()) < 60
    assert "original-expiration" not in e
    assert get(rawch, 1, work).name == "basic.get-empty"


def test_nack_without_requeue_dead_letters_and_with_requeue_does_not(
        rawch, uname):
    work, dead, _ = dlx_pair(rawch, uname)
    confirm_select(rawch, 1)
    for body in (b"a", b"b"):
        publish_sync(rawch, 1, "", work, body)
    m1 = get(rawch, 1, work, no_ack=False)
    m2 = get(rawch, 1, work, no_ack=False)
    rawch.send_method(1, "basic.nack", delivery_tag=m1.delivery_tag,
                      multiple=False, requeue=True)
    rawch.send_method(1, "basic.nack", delivery_tag=m2.delivery_tag,
                      multiple=False, requeue=False)
    assert wait_get(rawch, dead).content.body == b"b"
    again = get(rawch, 1, work)
    assert again.content.body == b"a" and again.redelivered


def test_dead_letter_routing_key_replaces_the_routing_key(rawch, uname):
    dlx, dead, work = uname("dlx"), uname("dead"), uname("work")
    rawch.call(1, "exchange.declare", exchange=dlx, type="direct")
    rawch.call(1, "queue.declare", queue=dead)
    rawch.call(1, "queue.bind", queue=dead, exchange=dlx, routing_key="dl")
    rawch.call(1, "queue.declare", queue=work, arguments={
        "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl"})
    publish_and_reject(rawch, work, b"x")
    d = wait_get(rawch, dead)
    assert d.exchange == dlx and d.routing_key == "dl"
    # the history keeps the key it was published with
    assert deaths(d)[0]["routing-keys"] == F("A", [F("S", work.encode())])


def test_expired_message_loses_its_expiration(rawch, uname):
    work, dead, _ = dlx_pair(rawch, uname)
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", work, b"ttl", props={"expiration": "50"})
    d = wait_get(rawch, dead)
    assert "expiration" not in d.content.props
    [e] = deaths(d)
    assert e["reason"] == F("S", b"expired")
    assert e["original-expiration"] == F("S", b"50")


def test_queue_ttl_expiry_dead_letters(rawch, uname):
    work, dead, _ = dlx_pair(rawch, uname, **{"x-message-ttl": 50})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", work, b"q-ttl")
    d = wait_get(rawch, dead)
    [e] = deaths(d)
    assert e["reason"] == F("S", b"expired")
    assert "original-expiration" not in e


def test_max_length_drop_head_dead_letters(rawch, uname):
    work, dead, _ = dlx_pair(rawch, uname, **{"x-max-length": 1})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", work, b"old")
    publish_sync(rawch, 1, "", work, b"new")
    d = wait_get(rawch, dead)
    assert d.content.body == b"old"
    assert deaths(d)[0]["reason"] == F("S", b"maxlen")
    assert get(rawch, 1, work).content.body == b"new"


def test_reject_publish_dlx_nacks_and_dead_letters(rawch, uname):
    work, dead, _ = dlx_pair(rawch, uname, **{
        "x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    rawch.call(1, "confirm.select")
    rawch.publish(1, "", work, b"in")
    assert rawch.read_method().name == "basic.ack"
    rawch.publish(1, "", work, b"out")
    assert rawch.read_method().name == "basic.nack"
    d = wait_get(rawch, dead)
    assert d.content.body == b"out"
    assert deaths(d)[0]["reason"] == F("S", b"maxlen")


def test_retry_loop_counts_deaths(rawch, uname):
    """work rejects -> retry (TTL) expires -> back to work: a cycle with a
    rejection in it goes on, and x-death counts each (queue, reason)."""
    work, retry, x = uname("work"), uname("retry"), uname("x")
    rawch.call(1, "exchange.declare", exchange=x, type="direct")
    rawch.call(1, "queue.declare", queue=work, arguments={
        "x-dead-letter-exchange": x, "x-dead-letter-routing-key": retry})
    rawch.call(1, "queue.declare", queue=retry, arguments={
        "x-dead-letter-exchange": x, "x-dead-letter-routing-key": work,
        "x-message-ttl": 20})
    rawch.call(1, "queue.bind", queue=work, exchange=x, routing_key=work)
    rawch.call(1, "queue.bind", queue=retry, exchange=x, routing_key=retry)
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", work, b"job")
    for n in range(4):
        m = wait_get(rawch, work, no_ack=False)
        if n > 0:
            assert m.exchange == x and m.routing_key == work
            ds = deaths(m)
            assert [(e["queue"].value, e["reason"].value) for e in ds] == [
                (retry.encode(), b"expired"), (work.encode(), b"rejected")]
            assert ds[0]["count"] == F("l", n)
            assert ds[1]["count"] == F("l", n)
            h = m.content.props["headers"]
            assert h["x-first-death-reason"] == F("S", b"rejected")
            assert h["x-first-death-queue"] == F("S", work.encode())
        rawch.send_method(1, "basic.reject", delivery_tag=m.delivery_tag,
                          requeue=False)
    rawch.call(1, "queue.delete", queue=retry)


def test_automatic_cycle_is_dropped(rawch, uname):
    """A queue dead-lettering expired messages back to itself would loop
    for ever: the message is dropped instead."""
    q = uname("loop")
    rawch.call(1, "queue.declare", queue=q, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": q,
        "x-message-ttl": 10})
    confirm_select(rawch, 1)
    publish_sync(rawch, 1, "", q, b"x")
    assert wait_until(lambda: rawch.call(1, "queue.declare", queue=q,
                                         passive=True).message_count == 0)
    assert get(rawch, 1, q).name == "basic.get-empty"
    # the broker is fine
    publish_sync(rawch, 1, "", q, b"y")


def test_missing_dlx_drops_the_message(rawch, uname):
    work = uname("work")
    rawch.call(1, "queue.declare", queue=work, arguments={
        "x-dead-letter-exchange": uname("absent")})
    publish_and_reject(rawch, work, b"x")
    time.sleep(0.2)
    assert get(rawch, 1, work).name == "basic.get-empty"


def test_default_exchange_as_dlx(rawch, uname):
    work, dead = uname("work"), uname("dead")
    rawch.call(1, "queue.declare", queue=dead)
    rawch.call(1, "queue.declare", queue=work, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    publish_and_reject(rawch, work, b"x")
    d = wait_get(rawch, dead)
    assert d.exchange == "" and d.routing_key == dead


@pytest.mark.warren_only
def test_persistent_dead_letter_survives_kill(make_broker):
    import rawamqp
    b = make_broker()
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    c.call(1, "queue.declare", queue="dead", durable=True)
    c.call(1, "queue.declare", queue="work", durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
    publish_and_reject(c, "work", b"keep", props=PERSISTENT)
    wait_until(lambda: c.call(1, "queue.declare", queue="dead",
                              passive=True).message_count == 1)
    # a publish confirmed after the dead letter: its log record is behind
    publish_sync(c, 1, "", "dead", b"after", props=PERSISTENT)
    b.kill()
    b.start("127.0.0.1:%d" % b.port)
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    d = get(c, 1, "dead")
    assert d.content.body == b"keep"
    assert deaths(d)[0]["reason"] == F("S", b"rejected")
    assert get(c, 1, "dead").content.body == b"after"
    assert get(c, 1, "work").name == "basic.get-empty"
