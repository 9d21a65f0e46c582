"""Smoke test of warren-everyday, the rabbitmq-c load generator (Warren).

warren-everyday (test/bench/everyday) drives a broker the way everyday
clients do: one connection per thread, one amqp_basic_publish per
message, acks as deliveries come, confirms waited for one by one or in a
window. compare.py runs the benchmark matrix with it (--mode everyday);
this test keeps it from rotting. It runs it for about a second at a time
against a private Warren and checks its JSON summary: every message
published was delivered exactly once, uncorrupted, in order per
(producer, queue) stream, and the broker's CPU was read per thread. It
checks correctness, never speed: speed targets live in
test/bench/compare.py and BENCHMARKS.md.

  1. transient messages, auto-ack, direct exchange;
  2. persistent 1 KiB messages to durable queues, each publish's confirm
     waited for (--confirm 1), a basic.ack per delivery, two producers;
  3. fanout to three queues, acks with multiple=true every 5
     (prefetch 10), confirms in a window of 50;
  4. a sweep over two aggregate rates with 8 publisher and 8 consumer
     connections: one step each, with the event loop's thread in it;
  5. a proxy that drops or duplicates deliveries makes it fail.

Rates are capped so that the test stays light under the sanitizers.
The binary comes from $WARREN_EVERYDAY_BIN (ctest sets it when the build
has warren-everyday; default <repo>/build/test/warren-everyday). Without
it (no librabbitmq-dev at build time) the test is skipped.
"""

import json
import os
import subprocess

import pytest

from conftest import REPO
from test_12_perf_smoke import MutatingProxy

pytestmark = pytest.mark.warren_only

DURATION = 1
TIMEOUT = 120


def everyday_bin():
    path = os.environ.get("WARREN_EVERYDAY_BIN")
    if path:
        assert os.access(path, os.X_OK), "WARREN_EVERYDAY_BIN=%s" % path
        return path
    path = os.path.join(REPO, "build", "test", "warren-everyday")
    if not os.access(path, os.X_OK):
        pytest.skip("warren-everyday not built (needs librabbitmq-dev)")
    return path


def run(host, port, tmp_path, name, mode, args, pid=None):
    """Runs warren-everyday; returns (exit status, summary, output)."""
    out = tmp_path / ("%s.json" % name)
    cmd = [everyday_bin(), mode, "--host", host, "--port", str(port),
           "--json", str(out), "--queue-prefix", "smoke-" + name,
           "--drain-timeout", "20", "--quiet"] + args
    if pid is not None:
        cmd += ["--broker-pid", str(pid)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=TIMEOUT)
    assert out.exists(), "no JSON summary; exit %d:\n%s" % (r.returncode,
                                                             r.stdout)
    with open(out) as f:
        return r.returncode, json.load(f), r.stdout


def run_ok(broker, tmp_path, name, mode, args):
    rc, s, output = run(broker.host, broker.port, tmp_path, name, mode,
                        args, broker.pid)
    assert rc == 0, "warren-everyday exited %d:\n%s" % (rc, output)
    return s, output


def assert_clean(s, output, deliveries_per_publish=1):
    checks = s["checks"]
    context = "\n%s" % output
    assert s["tool"] == "warren-everyday", context
    assert s["ok"] is True, context
    assert s["errors"] == [], context
    for k in ("lost", "duplicated", "corrupted", "out_of_order",
              "unexpected"):
        assert checks[k] == 0, (k, context)
    assert s["published"] > 0, context
    assert s["consume_rate"] > 0, context
    assert s["expected"] == s["published"] * deliveries_per_publish, context
    assert s["consumed"] == s["expected"], context
    assert s["latency_us"]["count"] == s["consumed"], context
    # The broker's CPU, per thread too: the event loop is the thread whose
    # id is the pid.
    broker = s["broker"]
    assert broker["cpu_s"] >= 0, context
    assert any(t["tid"] == broker["pid"] for t in broker["threads"]), context


def test_transient_auto_ack(make_broker, tmp_path):
    b = make_broker()
    s, out = run_ok(b, tmp_path, "transient", "throughput",
                    ["-z", str(DURATION), "-s", "16", "--rate", "5000"])
    assert_clean(s, out)
    assert s["config"]["ack_every"] == 0


def test_confirm_each_ack_each(make_broker, tmp_path):
    b = make_broker(extra_conf={"fsync": "always"})
    s, out = run_ok(b, tmp_path, "durable", "throughput",
                    ["-z", str(DURATION), "-x", "2", "-y", "2", "-q", "2",
                     "-s", "1024", "--persistent", "--durable-queues",
                     "--confirm", "1", "--ack-every", "1", "--rate", "300"])
    assert_clean(s, out)
    assert s["confirmed"] == s["published"], out
    assert s["nacked"] == 0, out
    assert s["confirm_latency_us"]["count"] == s["published"], out
    assert s["checks"]["redelivered"] == 0, out


def test_fanout_window_multi_ack(make_broker, tmp_path):
    b = make_broker()
    s, out = run_ok(b, tmp_path, "fanout", "throughput",
                    ["-z", str(DURATION), "--exchange-type", "fanout",
                     "-q", "3", "-y", "3", "-s", "100", "--confirm", "50",
                     "--multi-ack-every", "5", "--prefetch", "10",
                     "--rate", "2000"])
    assert_clean(s, out, deliveries_per_publish=3)
    assert s["confirmed"] == s["published"], out


def test_sweep_steps(make_broker, tmp_path):
    b = make_broker()
    s, out = run_ok(b, tmp_path, "sweep", "sweep",
                    ["-x", "8", "-y", "8", "-q", "8", "--ack-every", "1",
                     "--prefetch", "20", "--rates", "400,800", "--step",
                     "0.5", "--settle", "0.2"])
    assert_clean(s, out)
    steps = s["steps"]
    assert [st["target_rate"] for st in steps] == [400, 800], out
    for st in steps:
        assert st["seconds"] > 0.4, out
        assert st["publish_rate"] > 0, out
        assert any(t["tid"] == b.pid for t in st["threads"]), out
    assert "step      400 msg/s" in out, out


@pytest.mark.parametrize("how,check", [("drop", "lost"),
                                       ("duplicate", "duplicated")])
def test_checks_catch_a_bad_broker(make_broker, tmp_path, how, check):
    b = make_broker()
    proxy = MutatingProxy((b.host, b.port), how)
    try:
        rc, s, out = run("127.0.0.1", proxy.port, tmp_path, "bad",
                         "throughput", ["-z", "0.5", "--rate", "3000",
                                        "-s", "64", "--drain-timeout",
                                        "0.5"])
    finally:
        proxy.close()
    assert proxy.done > 0
    assert rc == 1, out
    assert s["ok"] is False
    assert s["checks"][check] == proxy.done, (s["checks"], out)
