"""faults.negative_control: the harness sees a broken broker (needs root).

A checker that never fails proves nothing. This runs the single-kill
trial through the driver's own API (faults.Env, faults.run_trial) with
two sabotages the broker cannot hide:

  - on one restart the node's data directory is wiped, so confirmed,
    unconsumed messages disappear: the trial must fail with lost > 0;
  - a message nobody in the workload published is put into a queue from
    the client namespace: the checker must count it as unexpected.
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults  # noqa: E402
import netns  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _needs_root():
    netns.pytest_require_root()


GHOST = r"""
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters(
    host=sys.argv[1], port=5672,
    credentials=pika.PlainCredentials("guest", "guest")))
ch = c.channel()
ch.queue_declare("q0", durable=True)
ch.basic_publish("", "q0", b"ghost-1 x",
                 pika.BasicProperties(message_id="ghost-1", delivery_mode=2))
c.close()
"""


class SabotagedKill(faults.SingleKill):
    """single-kill whose second restart comes up on an empty data
    directory, and which slips a foreign message in."""

    def run(self, tr):
        node = tr.env.nodes[0]
        real_start = node.start
        starts = []

        def start(*a, **kw):
            starts.append(1)
            if len(starts) == 2:
                # Let a backlog build up, so the wipe surely loses some.
                shutil.rmtree(node.data_dir)
                os.makedirs(node.data_dir)
            return real_start(*a, **kw)
        node.start = start
        try:
            super().run(tr)
        finally:
            node.start = real_start
        r = tr.env.client.run([tr.w.python, "-c", GHOST, node.addr],
                              timeout=20)
        assert r.returncode == 0, r.stderr


def test_lost_and_unexpected_are_seen():
    args = faults.parse_args(["--fault", "single-kill", "--cycles", "3",
                              "--consumers", "0", "--quiet"])
    env = faults.Env(args, cluster=False)
    try:
        fault = SabotagedKill()
        # Consumers start late: the queues hold confirmed messages when
        # the data is wiped.
        r = faults.run_trial(env, fault, 1, args, faults.random.Random(7))
    finally:
        prefix = env.net.prefix
        env.close()
    print(faults.trial_line(r))
    res = r["result"]
    assert r["status"] == "fail", faults.trial_line(r)
    assert res["lost"] > 0, "the wiped messages were not reported lost"
    assert res["unexpected"] == 1 and res["unexpected_ids"] == ["ghost-1"]
    failed = {c["name"] for c in r["criteria"] if not c["ok"]}
    assert {"lost == 0", "unexpected == 0"} <= failed
    assert not [n for n in netns.list_namespaces() if n.startswith(prefix)]
