"""Big body frames cut by the broker's reads at every kind of place, and
big bodies that come whole in one read.

Warren reads the rest of a body frame of 16 KiB or more straight into its
message once a read has ended inside it (server/bodyrx.c), and a whole
body of 32 KiB or more that a big read brought stays in the read buffer,
which its message keeps alive (message_adopt, conn.c). These tests cut
the byte stream where that path has a decision to make: inside the
frame's 7-octet header, before and after its first 16 payload octets,
inside the payload, right before and right after the frame-end octet,
and check that the message arrives whole, that a bad frame-end octet gets
the close a frame read whole gets, and that the rest of a frame whose
channel or connection the broker closed meanwhile is dropped. Each pause
is long enough for the broker to read what came before it.

The expected texts were observed on RabbitMQ 3.10.8.
"""

import time

import pytest

import rawamqp
from rawamqp import (FRAME_BODY, FRAME_HEADER, content_header, encode_method,
                     frame)
from wireutil import (assert_connection_close, confirm_select, get,
                      get_bodies, temp_queue)

FRAME_MAX = 131072
PAUSE = 0.05


def publish_bytes(routing_key, body, frame_max=FRAME_MAX):
    """The octets of one basic.publish on channel 1: method, header and
    the body in frames of at most frame_max - 8 octets."""
    out = [frame(1, 1, encode_method("basic.publish", routing_key=routing_key)),
           frame(FRAME_HEADER, 1, content_header(len(body)))]
    step = frame_max - 8
    for off in range(0, len(body), step):
        out.append(frame(FRAME_BODY, 1, body[off:off + step]))
    return b"".join(out)


def send_cut(conn, data, cuts):
    """Sends data in pieces ending at the offsets in cuts, pausing after
    each so that the broker reads them apart."""
    last = 0
    for cut in sorted(cuts) + [len(data)]:
        if cut > last:
            conn.send(data[last:cut])
            time.sleep(PAUSE)
        last = cut


def body_of(n, seed):
    """n octets that tell their position (a misplaced byte shows)."""
    pattern = bytes((seed + i * 7) & 0xFF for i in range(251))
    return (pattern * (n // len(pattern) + 1))[:n]


# Offsets within the first body frame: the frame starts at B.
CUTS = {
    "in the frame header": lambda b: [b + 3],
    "after the frame header": lambda b: [b + 7],
    "before 16 payload octets": lambda b: [b + 7 + 5],
    "at 16 payload octets": lambda b: [b + 7 + 16],
    "inside the payload": lambda b: [b + 7 + 20000],
    "twice inside the payload": lambda b: [b + 7 + 100, b + 7 + 40000],
    "before the frame end": lambda b: [b + 7 + 65536],
    "right after the frame end": lambda b: [b + 7 + 65536 + 1],
}


@pytest.mark.parametrize("where", sorted(CUTS))
def test_cut_body_frame_arrives_whole(rawch, where):
    q = temp_queue(rawch)
    body = body_of(65536, 3)
    data = publish_bytes(q, body)
    first_body = data.index(bytes([FRAME_BODY, 0, 1]))
    send_cut(rawch, data, CUTS[where](first_body))
    m = get(rawch, 1, q)
    assert m.name == "basic.get-ok"
    assert m.content.body == body


def test_many_frames_and_messages_cut_everywhere(rawch):
    # Bodies of several frames, big and small, back to back, sent in
    # pieces of odd sizes: every frame is cut somewhere.
    q = temp_queue(rawch)
    bodies = [body_of(n, i) for i, n in enumerate(
        [300000, 16, 70000, 16384, 16383, 131064, 131065, 5, 200000])]
    data = b"".join(publish_bytes(q, b) for b in bodies)
    cuts, off, step = [], 0, 9973
    while off < len(data):
        off += step
        cuts.append(off)
        step = step * 3 % 65521 + 1
    send_cut(rawch, data, [c for c in cuts if c < len(data)])
    got = [get(rawch, 1, q).content.body for _ in bodies]
    assert [len(b) for b in got] == [len(b) for b in bodies]
    assert got == bodies


def test_bad_frame_end_of_a_cut_body_frame(rawch):
    q = temp_queue(rawch)
    body = b"hello world, this is long" + b"x" * 40000
    data = publish_bytes(q, body)
    data = data[:-1] + b"\x00"
    first_body = data.index(bytes([FRAME_BODY, 0, 1]))
    send_cut(rawch, data, [first_body + 7 + 30000])
    assert_connection_close(
        rawch, 501, 'FRAME_ERROR - type 3, first 16 octets = <<"hello world, '
        'thi">>: {invalid_frame_end_marker,0}', 0, 0)


def test_bad_frame_end_right_after_a_cut_payload(rawch):
    # The payload is complete in the message when the wrong octet comes
    # alone in a read of its own.
    q = temp_queue(rawch)
    body = b"hello world, this is long" + b"x" * 40000
    data = publish_bytes(q, body)
    data = data[:-1] + b"\x01"
    first_body = data.index(bytes([FRAME_BODY, 0, 1]))
    send_cut(rawch, data, [first_body + 7 + 100, len(data) - 1])
    assert_connection_close(
        rawch, 501, 'FRAME_ERROR - type 3, first 16 octets = <<"hello world, '
        'thi">>: {invalid_frame_end_marker,1}', 0, 0)


@pytest.mark.warren_only
def test_cut_body_frame_larger_than_the_rest_of_the_body(rawch):
    # The frame claims more than the declared body size leaves: it is not
    # read into the message; publish_body's error comes once the frame is
    # in. (RabbitMQ 3.10 takes such a frame and waits for a body that can
    # no longer end: rabbit_command_assembler's remaining size goes
    # negative, and nothing is published or answered.)
    q = temp_queue(rawch)
    head = (frame(1, 1, encode_method("basic.publish", routing_key=q)) +
            frame(FRAME_HEADER, 1, content_header(20000)))
    data = head + frame(FRAME_BODY, 1, b"y" * 30000)
    send_cut(rawch, data, [len(head) + 7 + 1000])
    assert_connection_close(
        rawch, 501, "FRAME_ERROR - content body frame of 30000 bytes overruns "
        "the declared body size 20000", 0, 0)


@pytest.mark.warren_only
def test_rest_of_a_frame_on_a_channel_closed_meanwhile(make_broker):
    # RabbitMQ closes a channel whose delivery waited for its ack past
    # consumer_timeout (rabbit_channel's consumer timeout check), here
    # while a big body frame on it is half in. The rest of that frame is
    # dropped like any frame on a closing channel; nothing of it reaches
    # the queue and the connection goes on.
    b = make_broker(extra_conf={"consumer_timeout": 100})
    conn = rawamqp.connect("127.0.0.1", b.port)
    conn.open_channel(1)
    conn.open_channel(2)
    q = temp_queue(conn, 2)
    conn.publish(2, "", q, b"held")
    conn.call(1, "basic.consume", queue=q, consumer_tag="c", no_ack=False)
    body = body_of(65536, 9)
    data = publish_bytes(q, body)
    first_body = data.index(bytes([FRAME_BODY, 0, 1]))
    conn.send(data[:first_body + 7 + 20000])
    m = conn.expect_channel_close(1, timeout=10, reply=False)
    assert m.close_info[0] == 406
    conn.send(data[first_body + 7 + 20000:])
    conn.send_method(1, "channel.close-ok")
    m = get(conn, 2, q)
    assert m.content.body == b"held"
    assert get(conn, 2, q).name == "basic.get-empty"
    conn.open_channel(1)
    conn.publish(1, "", q, body)
    assert get(conn, 2, q).content.body == body
    conn.close()


def test_whole_bodies_in_big_reads_outlive_the_read_buffer(rawch):
    # Many big messages in one write: the broker's reads take up to
    # 256 KiB at a time, and bodies that came whole stay in the read
    # buffer. They go to two queues through a fanout, so that each
    # buffer lives on until both queues' copies are gone, and are taken
    # from one queue, then, after more big reads, from the other.
    x = "amq.fanout"
    q1, q2 = temp_queue(rawch), temp_queue(rawch)
    for q in (q1, q2):
        rawch.call(1, "queue.bind", queue=q, exchange=x)
    sizes = [65536] * 6 + [32768, 40000, 16, 131064, 200000, 65536, 70000]
    bodies = [body_of(n, i) for i, n in enumerate(sizes)]
    rawch.send(b"".join(rawch.publish_frames(1, x, "", b) for b in bodies))
    assert get_bodies(rawch, 1, q1) == bodies
    more = [body_of(65536, 100 + i) for i in range(8)]
    rawch.send(b"".join(rawch.publish_frames(1, x, "", b) for b in more))
    assert get_bodies(rawch, 1, q2) == bodies + more
    assert get_bodies(rawch, 1, q1) == more


@pytest.mark.warren_only
def test_whole_bodies_in_big_reads_survive_a_restart(make_broker):
    # Persistent big messages that stayed in the read buffer go to the log
    # like any others (a restart needs a private broker).
    b = make_broker()
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    q = "bodyrx-durable"
    c.call(1, "queue.declare", queue=q, durable=True)
    confirm_select(c, 1)
    bodies = [body_of(65536, i) for i in range(10)]
    c.send(b"".join(c.publish_frames(1, "", q, x, props={"delivery_mode": 2})
                    for x in bodies))
    acked = 0
    while acked < len(bodies):
        m = c.read_method()
        assert m.name == "basic.ack", m
        acked = m.delivery_tag if m.multiple else acked + 1
    c.close()
    b.restart()
    c = rawamqp.connect("127.0.0.1", b.port)
    c.open_channel(1)
    assert get_bodies(c, 1, q) == bodies
    c.close()
