"""Small helpers shared by the wire tests (assertions, parallel runs).

The exact reply texts asserted here come from RabbitMQ 3.10 (see the test
files); these helpers only compare and report them.
"""

import hashlib
import os
import threading
import time

import rawamqp


def vhost_dir(data_dir, vhost="/"):
    """Where Warren keeps a vhost's log: <data_dir>/vhosts/<hex SHA-256 of
    the name> (vhost/vhostdir.c)."""
    return os.path.join(data_dir, "vhosts",
                        hashlib.sha256(vhost.encode()).hexdigest())


def run_parallel(*fns, timeout=30.0):
    """Run each fn in its own thread; return their results in order.

    Used where RabbitMQ deliberately waits (3 s "silent close" after a failed
    login, heartbeat timeouts) so that the waits overlap.
    An exception in any fn is re-raised in the caller.
    """
    results = [None] * len(fns)
    errors = [None] * len(fns)

    def wrap(i, fn):
        try:
            results[i] = fn()
        except BaseException as e:  # re-raised below
            errors[i] = e

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
               for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            raise AssertionError("parallel step did not finish in %.0fs"
                                 % timeout)
    for e in errors:
        if e is not None:
            raise e
    return results


def rabbit_text(text):
    """A reply text as RabbitMQ sends it: cut to 252 bytes plus "..." when
    longer than a short string allows (rabbit_binary_generator)."""
    b = text.encode("utf-8")
    if len(b) > 255:
        b = b[:252] + b"..."
    return b.decode("utf-8", "replace")


def assert_channel_close(conn, channel, code, text, class_id, method_id,
                         timeout=None):
    """The server closes `channel` with exactly this reply; sends close-ok.

    Returns the close method.
    """
    m = conn.read_method(timeout)
    assert m.name == "channel.close" and m.channel == channel, \
        "expected channel.close on %d, got %r" % (channel, m)
    assert m.close_info == (code, text, class_id, method_id)
    conn.send_method(channel, "channel.close-ok")
    return m


def assert_connection_close(conn, code, text, class_id, method_id,
                            timeout=None, skip_other=False):
    """The server closes the connection with exactly this reply.

    Sends close-ok. With skip_other, frames before the close are skipped
    (otherwise the next method must be the close).
    """
    if skip_other:
        m = conn.expect_connection_close(timeout, reply=False)
    else:
        m = conn.read_method(timeout)
    assert m.name == "connection.close" and m.channel == 0, \
        "expected connection.close, got %r" % (m,)
    assert m.close_info == (code, text, class_id, method_id)
    try:
        conn.send_method(0, "connection.close-ok")
    except OSError:
        pass
    return m


def channel_error(conn, channel, method, **kw):
    """Send one method and return the channel.close it must provoke."""
    conn.send_method(channel, method, **kw)
    m = conn.read_method()
    assert m.name == "channel.close" and m.channel == channel, \
        "expected channel.close after %s, got %r" % (method, m)
    conn.send_method(channel, "channel.close-ok")
    return m


def connection_error(conn, channel, method, **kw):
    """Send one method and return the connection.close it must provoke."""
    conn.send_method(channel, method, **kw)
    m = conn.expect_connection_close()
    return m


def reopen(conn, channel):
    """Open `channel` again after the server closed it."""
    return conn.open_channel(channel)


def drain(conn, quiet=0.2):
    """Read frames until `quiet` seconds pass without one; return them."""
    out = []
    while True:
        try:
            out.append(conn.read_frame(quiet))
        except rawamqp.Timeout:
            return out


def get(conn, channel, queue, no_ack=True):
    """basic.get; returns get-ok (with .content) or get-empty."""
    conn.send_method(channel, "basic.get", queue=queue, no_ack=no_ack)
    m = conn.read_method()
    assert m.name in ("basic.get-ok", "basic.get-empty"), m
    return m


def get_bodies(conn, channel, queue, no_ack=True):
    """basic.get until empty; returns the bodies."""
    bodies = []
    while True:
        m = get(conn, channel, queue, no_ack)
        if m.name == "basic.get-empty":
            return bodies
        bodies.append(m.content.body)


def wait_until(pred, timeout=30.0, interval=0.02):
    """Poll pred() until it returns true; returns its last value. The
    deadline is generous: it bounds a failure, never a machine's speed."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def temp_queue(conn, channel=1, **kw):
    """Declare a server-named exclusive queue; returns its name.

    Exclusive queues die with the connection, so tests need no cleanup.
    """
    kw.setdefault("exclusive", True)
    m = conn.call(channel, "queue.declare", queue="", **kw)
    return m.queue


def queue_count(conn, channel, queue):
    """message_count of a passive declare."""
    return conn.call(channel, "queue.declare", queue=queue,
                     passive=True).message_count


def confirm_select(conn, channel):
    conn.call(channel, "confirm.select")


def publish_sync(conn, channel, exchange, routing_key, body, **kw):
    """Publish on a channel in confirm mode and wait for its basic.ack.

    Needed before counting messages: RabbitMQ routes asynchronously, so a
    passive declare right after a plain publish may not count it yet.
    """
    conn.publish(channel, exchange, routing_key, body, **kw)
    m = conn.read_method()
    assert m.name == "basic.ack" and m.channel == channel, m
    return m
