#!/usr/bin/python3
"""Publish cost of durable deduplication (BENCHMARKS.md, "Deduplication
window across kill -9"): confirmed publishes per second of persistent
messages with a new x-deduplication-header key each into a durable queue
with x-message-deduplication (x-cache-size 10,000), against the same
into a durable queue without it. One connection, frames built in
advance, sent in bursts of --window and waited for (publisher confirms)
--bursts bursts each (queues deleted after).

  test/bench/dedup_durable_bench.py --port 5741 --bursts 200
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "wire"))
import rawamqp  # noqa: E402

HDR = "x-deduplication-header"


def run(port, queue, args, bursts, window, tag):
    c = rawamqp.connect("127.0.0.1", port, 30.0, user="guest",
                        password="guest", vhost="/")
    c.open_channel(1)
    c.call(1, "queue.declare", queue=queue, durable=True, arguments=args)
    c.call(1, "confirm.select")
    # built before the clock starts: the client is not what is measured
    frames = [b"".join(c.publish_frames(
        1, "", queue, b"0123456789abcdef",
        props={"delivery_mode": 2,
               "headers": {HDR: "%s-%d-%d" % (tag, b, i)}})
        for i in range(window)) for b in range(bursts)]
    sent = 0
    t0 = time.monotonic()
    for b, burst in enumerate(frames):
        c.send(burst)
        acked = sent
        sent += window
        while acked < sent:
            m = c.read_method(timeout=30)
            assert m.name == "basic.ack", m
            acked = m.delivery_tag if m.multiple else acked + 1
    dt = time.monotonic() - t0
    c.call(1, "queue.delete", queue=queue)
    c.close_socket()
    return sent / dt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bursts", type=int, default=200)
    p.add_argument("--window", type=int, default=1000)
    a = p.parse_args()
    tag = str(time.time())
    plain = run(a.port, "bench-plain", {}, a.bursts, a.window, tag)
    dedup = run(a.port, "bench-dedup", {"x-message-deduplication": True,
                                        "x-cache-size": 10000},
                a.bursts, a.window, tag)
    print("| plain durable queue | %.0f |" % plain)
    print("| dedup durable queue | %.0f |" % dedup)


if __name__ == "__main__":
    main()
