"""faults.netns: the namespace harness itself (needs root).

  - hosts reach each other over the run's bridge; a partition drops
    traffic between the given sides only, both directions, and heal
    restores it; the root namespace's links, addresses and nft rules are
    the same before and after;
  - pause/resume/kill -9/restart act on the process;
  - cleanup leaves nothing behind: on normal exit, on an exception, on
    SIGTERM to the driver; after a SIGKILL of the driver, the sweeper
    removes the leftovers, and it never touches a live run.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

NETNS_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "netns.py")


@pytest.fixture(autouse=True, scope="module")
def _needs_root():
    netns.pytest_require_root()


def root_state():
    out = []
    for argv in (["ip", "-o", "link"], ["ip", "-o", "addr"],
                 ["ip", "route"], ["nft", "list", "ruleset"]):
        out.append(subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout)
    # Link counters and flags of unrelated traffic may change; compare
    # names and addresses only.
    links = sorted(line.split(":")[1].strip() for line in
                   out[0].splitlines())
    return links, sorted(out[1].split()), out[2], out[3]


def listener(host, port):
    s = host.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host.addr, port))
    s.listen(16)
    return s


def ns_of(prefix):
    return [n for n in netns.list_namespaces() if n.startswith(prefix)]


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_partition_heal_and_root_untouched():
    before = root_state()
    with netns.Net() as net:
        a, b, c = (net.add_host(n) for n in ("a", "b", "c"))
        assert a.addr != b.addr and a.addr.startswith("10.77.")
        ls = [listener(h, 7000) for h in (a, b, c)]
        assert a.can_connect(b.addr, 7000) and b.can_connect(a.addr, 7000)
        p = net.partition([a], [b])
        assert not a.can_connect(b.addr, 7000, 0.5)
        assert not b.can_connect(a.addr, 7000, 0.5)
        assert a.can_connect(c.addr, 7000) and b.can_connect(c.addr, 7000)
        # Address sets work too; partitions stack and heal one by one.
        q = net.partition([c.addr], [a.addr])
        assert not c.can_connect(a.addr, 7000, 0.5)
        net.heal(p)
        assert a.can_connect(b.addr, 7000)
        assert not a.can_connect(c.addr, 7000, 0.5)
        net.heal(q)
        assert a.can_connect(c.addr, 7000)
        assert a.rules().strip() == "" and c.rules().strip() == ""
        for s in ls:
            s.close()
        prefix = net.prefix
    assert not ns_of(prefix)
    assert root_state() == before, "the root namespace changed"


def test_process_faults():
    with netns.Net() as net:
        h = net.add_host("a")
        p = h.spawn(["sleep", "600"])
        netns.wait_for(lambda: proc_state(p.pid) in "SR", 5, "sleep")
        # The process runs inside the namespace (once `ip netns exec`,
        # already running, has entered it and exec'd the command).
        netns.wait_for(lambda: p.pid in netns.ns_pids(h.ns), 5,
                       "the process inside the namespace")
        p.pause()
        netns.wait_for(lambda: proc_state(p.pid) == "T", 5, "stopped")
        p.resume()
        netns.wait_for(lambda: proc_state(p.pid) in "SR", 5, "resumed")
        assert p.kill() == -signal.SIGKILL
        p.restart()
        assert p.running()
        rc, took = p.stop(5)
        assert rc == -signal.SIGTERM and took < 5
        p.restart()
        pid = p.pid
    assert not os.path.exists("/proc/%d" % pid) or \
        proc_state(pid) == "Z", "close() left a process running"


def test_cleanup_on_exception():
    with pytest.raises(ZeroDivisionError):
        with netns.Net() as net:
            prefix = net.prefix
            net.add_host("a").spawn(["sleep", "600"])
            1 / 0
    assert not ns_of(prefix)


def hold(n):
    """A driver process holding n hosts with a sleeper in each; returns
    (Popen, prefix, sleeper pids)."""
    p = subprocess.Popen([sys.executable, NETNS_PY, "--hold", str(n)],
                         stdout=subprocess.PIPE, text=True)
    r, _, _ = select.select([p.stdout], [], [], 30)
    assert r, "netns.py --hold did not start"
    info = json.loads(p.stdout.readline())
    return p, info["prefix"], info["pids"]


def test_cleanup_on_sigterm():
    p, prefix, pids = hold(2)
    assert len(ns_of(prefix)) == 3      # switch + 2 hosts
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 128 + signal.SIGTERM
    assert not ns_of(prefix)
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid)


def test_sweeper_after_sigkill_spares_live_runs():
    live, live_prefix, _ = hold(1)
    dead, dead_prefix, pids = hold(1)
    # Looks like a leftover, but no lock file says this harness made it.
    foreign = "wf%d-foreign" % (4000000 + os.getpid() % 100000)
    subprocess.run(["ip", "netns", "add", foreign], check=True, timeout=10)
    try:
        dead.kill()
        dead.wait(10)
        # The sleepers die with their driver (PR_SET_PDEATHSIG)...
        netns.wait_for(lambda: not any(os.path.exists("/proc/%d" % x)
                                       for x in pids), 5, "sleepers")
        # ...but its namespaces stay until a sweep.
        assert len(ns_of(dead_prefix)) == 2
        removed = netns.sweep()
        assert sorted(removed) == sorted([dead_prefix + "h1",
                                          dead_prefix + "sw"])
        assert not ns_of(dead_prefix)
        assert len(ns_of(live_prefix)) == 2, "the sweeper hit a live run"
        assert foreign in netns.list_namespaces(), \
            "the sweeper removed a namespace this harness did not make"
    finally:
        subprocess.run(["ip", "netns", "delete", foreign], timeout=10)
        for p in (live, dead):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
    assert not ns_of(live_prefix)
