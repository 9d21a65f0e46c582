"""Debian's amqp-tools (rabbitmq-c command-line clients) against the broker:
amqp-declare-queue, amqp-publish, amqp-get, amqp-consume,
amqp-delete-queue, run as subprocesses.

Observed with amqp-tools 0.11.0 and RabbitMQ 3.10.8: amqp-get exits 2 on an
empty queue; the tools print the server's close reply as
"server channel error 404, message: NOT_FOUND - ..." on stderr.
"""

import re
import shutil
import subprocess
import time

import pika
import pytest

TOOLS = ["amqp-declare-queue", "amqp-publish", "amqp-get", "amqp-consume",
         "amqp-delete-queue"]

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="amqp-tools not installed (apt-get install amqp-tools)")


def url(broker, password=None):
    return "amqp://%s:%s@%s:%d" % (broker.user, password or broker.password,
                                   broker.host, broker.port)


def tool(broker, name, *args, input=None, password=None, timeout=15):
    return subprocess.run(
        [name, "--url=" + url(broker, password)] + list(args),
        input=input, capture_output=True, timeout=timeout)


def test_declare_queue_named_and_server_named(broker, uname):
    q = uname("q")
    r = tool(broker, "amqp-declare-queue", "-q", q)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (q + "\n").encode()
    r = tool(broker, "amqp-declare-queue", "-q", q, "-d")
    assert r.returncode != 0
    assert b"server channel error 406, message: PRECONDITION_FAILED - " \
        b"inequivalent arg 'durable' for queue '" + q.encode() + \
        b"' in vhost '/': received 'true' but current is 'false'" in r.stderr
    r = tool(broker, "amqp-declare-queue", "-q", "")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"amq\.gen-[A-Za-z0-9_-]{22}\n", r.stdout)
    uname.track(r.stdout.decode().strip())  # deleted at teardown


def test_publish_and_get(broker, uname, pconn):
    q = uname("q")
    assert tool(broker, "amqp-declare-queue", "-q", q).returncode == 0
    r = tool(broker, "amqp-publish", "-r", q, "-b", "hello tools",
             "-C", "text/plain", "-E", "utf-8", "-t", "reply-here",
             "-p", "-H", "x-wire: yes")
    assert r.returncode == 0, r.stderr
    r = tool(broker, "amqp-publish", "-r", q, "-b", "second")
    assert r.returncode == 0, r.stderr
    # Inspect the first message's properties with pika ...
    ch = pconn.channel()
    method, props, body = None, None, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(q, auto_ack=False)
        if method:
            break
        time.sleep(0.02)
    assert body == b"hello tools"
    assert (props.content_type, props.content_encoding, props.reply_to,
            props.delivery_mode) == ("text/plain", "utf-8", "reply-here", 2)
    assert props.headers == {"x-wire": "yes"}
    ch.basic_nack(method.delivery_tag, requeue=True)
    ch.close()
    # ... and read both with amqp-get.
    r = tool(broker, "amqp-get", "-q", q)
    assert (r.returncode, r.stdout) == (0, b"hello tools")
    r = tool(broker, "amqp-get", "-q", q)
    assert (r.returncode, r.stdout) == (0, b"second")
    r = tool(broker, "amqp-get", "-q", q)
    assert (r.returncode, r.stdout) == (2, b"")


def test_publish_lines_and_stdin(broker, uname):
    q = uname("q")
    assert tool(broker, "amqp-declare-queue", "-q", q).returncode == 0
    r = tool(broker, "amqp-publish", "-r", q, "-l",
             input=b"line one\nline two\nline three\n")
    assert r.returncode == 0, r.stderr
    r = tool(broker, "amqp-publish", "-r", q, input=b"whole\nstdin\x00\xff")
    assert r.returncode == 0, r.stderr
    got = [tool(broker, "amqp-get", "-q", q).stdout for _ in range(4)]
    # -l keeps each line's newline.
    assert got == [b"line one\n", b"line two\n", b"line three\n",
                   b"whole\nstdin\x00\xff"]


def test_consume(broker, uname):
    q = uname("q")
    assert tool(broker, "amqp-declare-queue", "-q", q).returncode == 0
    for i in range(3):
        assert tool(broker, "amqp-publish", "-r", q,
                    "-b", "m%d;" % i).returncode == 0
    r = tool(broker, "amqp-consume", "-q", q, "-c", "3", "-p", "1", "cat")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"m0;m1;m2;"
    r = tool(broker, "amqp-get", "-q", q)
    assert (r.returncode, r.stdout) == (2, b"")


def test_consume_with_binding(broker, uname, pconn):
    rk = uname("rk")
    p = subprocess.Popen(
        ["amqp-consume", "--url=" + url(broker), "-e", "amq.direct",
         "-r", rk, "-x", "-c", "2", "-A", "cat"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ch = pconn.channel()
        ch.confirm_delivery()
        # Wait until amqp-consume has bound its queue: mandatory publishes
        # come back until then.
        deadline = time.monotonic() + 30
        while True:
            try:
                ch.basic_publish("amq.direct", rk, b"first;", mandatory=True)
                break
            except pika.exceptions.UnroutableError:
                assert time.monotonic() < deadline, "never bound"
                time.sleep(0.05)
        ch.basic_publish("amq.direct", rk, b"second;", mandatory=True)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert out == b"first;second;"


def test_delete_queue(broker, uname):
    q = uname("q")
    assert tool(broker, "amqp-declare-queue", "-q", q).returncode == 0
    for i in range(2):
        tool(broker, "amqp-publish", "-r", q, "-b", "x")
    r = tool(broker, "amqp-delete-queue", "-q", q, "--if-empty")
    assert r.returncode != 0
    assert (b"server channel error 406, message: PRECONDITION_FAILED - "
            b"queue '%s' in vhost '/' not empty" % q.encode()) in r.stderr
    r = tool(broker, "amqp-delete-queue", "-q", q)
    assert (r.returncode, r.stdout) == (0, b"2\n")


def test_errors_reported(broker, uname):
    q, x = uname("q"), uname("x")
    r = tool(broker, "amqp-get", "-q", q)
    assert r.returncode != 0
    assert (b"server channel error 404, message: NOT_FOUND - no queue '%s' "
            b"in vhost '/'" % q.encode()) in r.stderr
    r = tool(broker, "amqp-publish", "-e", x, "-r", "k", "-b", "x")
    assert r.returncode != 0
    assert (b"server channel error 404, message: NOT_FOUND - no exchange "
            b"'%s' in vhost '/'" % x.encode()) in r.stderr


def test_bad_password(broker):
    r = tool(broker, "amqp-publish", "-r", "x", "-b", "x",
             password="wrong-password")
    assert r.returncode != 0
    assert (b"server connection error 403, message: ACCESS_REFUSED - Login "
            b"was refused using authentication mechanism PLAIN. For details "
            b"see the broker logfile.") in r.stderr


def test_heartbeat_option(broker, uname):
    q = uname("q")
    assert tool(broker, "amqp-declare-queue", "-q", q,
                "--heartbeat=1").returncode == 0
    r = tool(broker, "amqp-publish", "--heartbeat=1", "-r", q, "-b", "hb")
    assert r.returncode == 0, r.stderr
    assert tool(broker, "amqp-get", "-q", q).stdout == b"hb"
