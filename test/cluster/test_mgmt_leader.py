"""faults.mgmt_leader: a leader that lost etcd does not name itself.

The fault table judges "never two confirming leaders" from every node's
GET /api/vhosts/<vhost> "leader". A soak run (partition-leader-etcd)
failed it because the old leader, cut from etcd, stopped leading but kept
answering "leader": <itself> until etcd told it of the new leader. Here
three nodes on loopback (localcluster.py, one etcd member); etcd is paused
(SIGSTOP) past the node TTL: the leader stops leading and must then answer
no leader (null); after SIGCONT every node agrees on a leader again.
"""

import base64
import json
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import localcluster  # noqa: E402

TTL = 3


def vhost_leader(node):
    req = urllib.request.Request("http://127.0.0.1:%d/api/vhosts/%%2F"
                                 % node.mgmt_port)
    req.add_header("Authorization", "Basic " + base64.b64encode(
        b"guest:guest").decode())
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.load(r).get("leader")
    except OSError:
        return "unreachable"


def agreed_leader(lc):
    views = {vhost_leader(n) for n in lc.nodes}
    if len(views) != 1:
        return None
    name = views.pop()
    return next((n for n in lc.nodes if n.name == name), None)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_a_leader_without_etcd_names_no_leader(tmp_path):
    with localcluster.LocalCluster(nodes=3, ttl=TTL,
                                   workdir=str(tmp_path)) as lc:
        leader = wait_for(lambda: agreed_leader(lc), 30, "a leader of /")
        etcd = lc.etcd[0].proc
        etcd.send_signal(signal.SIGSTOP)
        try:
            # Its lease runs out after TTL; it stops leading then.
            wait_for(lambda: leader.wait_for_line(
                r"no longer leading vhost '/'", timeout=0.1), TTL + 10,
                "the leader to stop leading")
            time.sleep(0.5)
            assert vhost_leader(leader) is None, \
                "a node that stopped leading still names itself"
        finally:
            etcd.send_signal(signal.SIGCONT)
        wait_for(lambda: agreed_leader(lc), 30, "a leader again")
