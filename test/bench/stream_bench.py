#!/usr/bin/python3
"""Stream queue benchmark (BENCHMARKS.md, "Stream queues"): publish rate
into one stream queue and the broker's RSS as the stream grows, then the
read rate of 1, 4 and 16 independent consumers from `first`.

Runs warren-perf against a broker that is already running (Warren or
RabbitMQ 3.10, both over AMQP 0-9-1); declares the direct exchange `sx`
and the stream `st-0` bound to it.

  test/bench/stream_bench.py --port 5673 --broker-pid PID \
      --perf build/test/warren-perf --fill-rounds 4 --fill-seconds 2.5 \
      --read-seconds 4

Each fill round publishes for --fill-seconds (one producer, confirms with
a window of 1000, 100-byte bodies); each read run has its consumers start
at `first` (prefetch 2000, multiple acks every 500) and counts what they
receive in --read-seconds (the stream is longer than they can read in
that time, so this is the steady read rate over a large stream, not a
drain of it). The read runs' single producer publishes one message.
"""
import argparse
import json
import os
import subprocess
import tempfile

import pika


def declare(port):
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = c.channel()
    ch.exchange_declare("sx", "direct", durable=True)
    ch.queue_declare("st-0", durable=True,
                     arguments={"x-queue-type": "stream"})
    ch.queue_bind("st-0", "sx", routing_key="st-0")
    c.close()


def perf(a, extra):
    out = tempfile.mktemp(suffix=".json")
    cmd = [a.perf, "throughput", "--port", str(a.port), "--predeclared",
           "--exchange", "sx", "--queue-prefix", "st", "-q", "1", "-s",
           "100", "--broker-pid", str(a.broker_pid), "--quiet", "--json",
           out] + extra
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    with open(out) as f:
        d = json.load(f)
    os.unlink(out)
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--broker-pid", type=int, required=True)
    p.add_argument("--perf", default="build/test/warren-perf")
    p.add_argument("--fill-rounds", type=int, default=4)
    p.add_argument("--fill-seconds", type=float, default=2.5)
    p.add_argument("--read-seconds", type=float, default=4)
    a = p.parse_args()
    declare(a.port)
    total = 0
    print("| fill round | published | msg/s | stream length after | "
          "broker RSS after (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for i in range(a.fill_rounds):
        d = perf(a, ["-x", "1", "-y", "0", "-z", str(a.fill_seconds),
                     "--confirm", "1000"])
        total += d["confirmed"]
        print("| %d | %d | %.0f | %d | %.1f |" % (
            i + 1, d["confirmed"], d["confirm_rate"], total,
            d["broker"]["rss_kb_end"] / 1024))
    print()
    print("| consumers from first | messages read in %.0f s | msg/s (all) | "
          "msg/s per consumer | broker CPU s | broker RSS max (MiB) |"
          % a.read_seconds)
    print("| --- | --- | --- | --- | --- | --- |")
    for n in (1, 4, 16):
        d = perf(a, ["-x", "1", "--rate", "1", "-z", str(a.read_seconds),
                     "-y", str(n), "--stream-offset", "first", "--prefetch",
                     "2000", "--multi-ack-every", "500", "--drain-timeout",
                     "1"])
        rate = d["consumed_in_window"] / a.read_seconds
        print("| %d | %d | %.0f | %.0f | %.2f | %.1f |" % (
            n, d["consumed_in_window"], rate, rate / n, d["broker"]["cpu_s"],
            d["broker"]["rss_kb_max"] / 1024))


if __name__ == "__main__":
    main()
