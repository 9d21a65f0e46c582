"""faults.etcd_partition: the harness's partitions against real etcd.

Three etcd members, each in its own network namespace (netns.py), and a
client namespace running etcdctl with --endpoints of chosen members. The
raft leader is cut off from the other two by nft drop rules; then:

  - the majority elects a new leader within ELECTION_BOUND seconds;
  - a write and a linearizable read through the majority succeed;
  - the isolated member refuses a write and a linearizable read (it
    cannot reach a quorum), while a serializable (local) read still shows
    the old value: the partition is real and one-sided state is visible;
  - after heal, all three members agree on one leader, on the revision
    and on the value (serializable reads, i.e. each member's own state),
    within CONVERGE_BOUND seconds;
  - nothing of the run is left: no namespace, no process.

Needs root (CI runs as root); see netns.require_root for the opt-out.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
import services  # noqa: E402

ELECTION_BOUND = 8.0   # 16 election timeouts (500 ms); typically < 1 s
CONVERGE_BOUND = 15.0
KEY = "faults/etcd-partition"


@pytest.fixture(autouse=True, scope="module")
def _needs_root():
    netns.pytest_require_root()


def put(etcd, members, value, timeout=3.0):
    return etcd.ctl(["put", KEY, value], members=members, timeout=timeout)


def get(etcd, members, serializable=False, timeout=3.0):
    args = ["get", KEY, "--print-value-only"]
    if serializable:
        args.append("--consistency=s")
    return etcd.ctl(args, members=members, timeout=timeout)


def test_leader_isolated_majority_continues_then_converges():
    net = netns.Net()
    try:
        hosts = [net.add_host("e%d" % i) for i in (1, 2, 3)]
        client = net.add_host("c1")
        etcd = services.EtcdCluster(net, hosts, client)
        etcd.start()
        old = netns.wait_for(etcd.leader, 10, "a first etcd leader", 0.2)
        r = put(etcd, None, "v1")
        assert r.returncode == 0, r.stderr
        others = [m for m in etcd.members if m is not old]

        # Cut the leader off from both followers (the client reaches all).
        t0 = time.monotonic()
        part = net.isolate(old.host, [m.host for m in others])
        assert not old.host.can_connect(others[0].host.addr,
                                        services.ETCD_PEER_PORT, 0.5)
        assert client.can_connect(old.host.addr, services.ETCD_CLIENT_PORT)

        def new_leader():
            m = etcd.leader(others)
            return m if m is not None and m is not old else None
        new = netns.wait_for(new_leader, ELECTION_BOUND + 5,
                             "the majority to elect a new leader", 0.1)
        elected = time.monotonic() - t0
        assert elected <= ELECTION_BOUND, \
            "new leader after %.1fs (bound %.1fs)" % (elected, ELECTION_BOUND)

        r = put(etcd, others, "v2")
        assert r.returncode == 0, "majority refused a write: " + r.stderr
        r = get(etcd, others)
        assert r.returncode == 0 and r.stdout.strip() == "v2", r

        r = put(etcd, [old], "v3", timeout=2.0)
        assert r.returncode != 0, "the isolated member accepted a write"
        r = get(etcd, [old], timeout=2.0)
        assert r.returncode != 0, \
            "the isolated member served a linearizable read: %r" % r.stdout
        r = get(etcd, [old], serializable=True)
        assert r.returncode == 0 and r.stdout.strip() == "v1", \
            "isolated member's local state: %r %r" % (r.stdout, r.stderr)

        t1 = time.monotonic()
        net.heal(part)
        assert old.host.rules().strip() == "", "heal left rules behind"

        def converged():
            leaders = set()
            revs = set()
            for m in etcd.members:
                st = m.status()
                if st is None or not st["leader"]:
                    return False
                leaders.add(st["leader"])
                revs.add(st["revision"])
                r = get(etcd, [m], serializable=True)
                if r.returncode != 0 or r.stdout.strip() != "v2":
                    return False
            return len(leaders) == 1 and len(revs) == 1
        netns.wait_for(converged, CONVERGE_BOUND, "the members to converge",
                       0.2)
        healed = time.monotonic() - t1
        r = get(etcd, [old])
        assert r.returncode == 0 and r.stdout.strip() == "v2", r
        print("etcd partition: leader %s isolated, %s elected after %.2fs; "
              "majority wrote, isolated member refused; converged %.2fs "
              "after heal" % (old.name, new.name, elected, healed))
        etcd.stop()
    finally:
        prefix = net.prefix
        net.close()
    left = [n for n in netns.list_namespaces() if n.startswith(prefix)]
    assert not left, "namespaces left behind: %s" % left
