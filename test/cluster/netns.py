#!/usr/bin/python3
"""netns.py: hosts in their own Linux network namespaces, and the faults
between them (partitions, pauses, crashes), for Warren's fault tests.

Topology, all of it created by this run and nothing else touched:

    namespace wf<pid>-sw          a Linux bridge "br0" (the switch)
    namespace wf<pid>-<host>      "lo" and "eth0" = 10.77.<run>.<k>/24,
                                  one end of a veth pair whose other end,
                                  "p<k>", is a port of br0

No interface, address, route or nft rule is ever created in the root
namespace: veth pairs are created from inside the switch namespace with
their peer sent straight into the host namespace (ip -n SW link add ...
peer name eth0 netns HOST). The run number <run> (1..254) is held by a
lock file under /run/warren-faults/ so concurrent runs pick different
subnets (they could not collide anyway: each run has its own bridge).

Processes run inside a host with "ip netns exec" (which execs, so the pid
is the program's), each in its own session and process group, with
PR_SET_PDEATHSIG when started from the main thread so they die with the
driver. Faults:

    net.partition(a, b)   nft drop rules, in the namespaces of the hosts
                          on both sides, for traffic between the address
                          sets a and b, both directions; returns a handle
    net.heal(handle)      removes that partition (net.heal(): all of them)
    proc.pause/resume     SIGSTOP / SIGCONT of the process group
    proc.kill()           SIGKILL of the process group (kill -9)
    proc.stop()           SIGTERM, bounded wait, SIGKILL after it
    proc.restart()        the same command again

Cleanup is guaranteed at three levels: Net.close() (a context manager, and
atexit, and SIGINT/SIGTERM/SIGHUP handlers that raise SystemExit so every
finally block runs) kills every process the run started, then every
process still inside its namespaces ("ip netns pids"), then deletes the
namespaces (which takes their veths and nft tables with them); and
sweep(), run by every new Net and by "netns.py --sweep", removes the
namespaces of runs whose owner is gone: the run's lock file
/run/warren-faults/wf<pid>.lock exists (so this harness made them) and
is no longer held. Namespaces without such a file are never touched.

Every wait is bounded in time and in count.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 and nftables.
"""

import atexit
import ctypes
import fcntl
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LOCK_DIR = "/run/warren-faults"
NS_RE = re.compile(r"^wf(\d+)-")
SUBNET = "10.77.%d.0/24"
CMD_TIMEOUT = 10.0
NFT_TABLE = "wfault"
SKIP_ENV = "WARREN_FAULTS_SKIP_NONROOT"
SKIP_CODE = 77  # ctest SKIP_RETURN_CODE

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


class NetError(RuntimeError):
    pass


def root_problem():
    """Returns why this process cannot build namespaces, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, nft)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return "needs '%s' (apt-get install iproute2 nftables)" % tool
    return None


def require_root(what):
    """Exits unless this process can build namespaces: status 1 with a
    clear message (CI runs as root, so there it is a failure), or status
    77 (ctest's "skipped") when the developer set WARREN_FAULTS_SKIP_NONROOT=1.
    """
    why = root_problem()
    if why is None:
        return
    if os.environ.get(SKIP_ENV) == "1":
        print("%s: skipped: %s (%s=1)" % (what, why, SKIP_ENV))
        sys.exit(SKIP_CODE)
    print("%s: FAILED: %s. CI runs as root; to skip it on a developer "
          "machine set %s=1." % (what, why, SKIP_ENV), file=sys.stderr)
    sys.exit(1)


def pytest_require_root():
    """require_root() for pytest modules (an autouse fixture calls it):
    ends the session with status 1 and the message, or 77 when skipping.
    """
    import pytest
    why = root_problem()
    if why is None:
        return
    if os.environ.get(SKIP_ENV) == "1":
        pytest.exit("skipped: %s (%s=1)" % (why, SKIP_ENV),
                    returncode=SKIP_CODE)
    pytest.exit("FAILED: %s. CI runs as root; to skip it on a developer "
                "machine set %s=1." % (why, SKIP_ENV), returncode=1)


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns something true, at most timeout
    seconds and timeout/interval + 1 calls; returns its value or raises
    TimeoutError naming what."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError("timed out after %.1fs waiting for %s"
                       % (timeout, what))


def run(argv, timeout=CMD_TIMEOUT, check=True, input=None):
    """Runs a short command (bounded); returns CompletedProcess."""
    try:
        r = subprocess.run(argv, input=input, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NetError("%s: no answer within %.0fs" % (" ".join(argv),
                                                       timeout))
    if check and r.returncode != 0:
        raise NetError("%s: status %d: %s" % (" ".join(argv), r.returncode,
                                              r.stderr.strip()))
    return r


def list_namespaces():
    r = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.split()]


def ns_pids(ns):
    r = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def kill_ns_processes(ns, timeout=5.0):
    """SIGKILLs every process inside namespace ns; waits (bounded) until
    none is left. Returns how many were killed."""
    pids = ns_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        try:
            wait_for(lambda: not ns_pids(ns), timeout,
                     "processes of %s to die" % ns, 0.05)
        except TimeoutError:
            pass
    return len(pids)


def delete_namespace(ns):
    kill_ns_processes(ns)
    run(["ip", "netns", "delete", ns], check=False)


def _lock_held(path):
    """True when another live process holds the flock on path."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def sweep(verbose=False):
    """Removes what runs whose owner is gone left behind: their
    namespaces (and the processes in them), lock files and work
    directories. Only runs of this harness are touched: a namespace
    wf<pid>-* is removed only when /run/warren-faults/wf<pid>.lock exists
    (this harness made it) and nobody holds its lock (the owner is gone).
    Returns the namespaces removed."""
    removed = []
    owners = {}
    for ns in list_namespaces():
        m = NS_RE.match(ns)
        if m:
            owners.setdefault(int(m.group(1)), []).append(ns)
    for pid, names in sorted(owners.items()):
        if pid == os.getpid():
            continue
        held = _lock_held(os.path.join(LOCK_DIR, "wf%d.lock" % pid))
        if held is not False:
            if held is None and verbose:
                print("netns: leaving %s alone (no lock file: not made by "
                      "this harness, or by a run before a reboot)"
                      % " ".join(names))
            continue
        # Host namespaces first, the switch (and its bridge) last.
        for ns in sorted(names, key=lambda n: n.endswith("-sw")):
            delete_namespace(ns)
            removed.append(ns)
    _sweep_lock_files()
    if verbose and removed:
        print("swept leftovers: " + " ".join(removed))
    return removed


def _sweep_lock_files():
    """Removes lock files nobody holds (and the temporary work directory
    they name), except the owner lock of a run whose namespaces are still
    there (so that a later sweep still knows them)."""
    if not os.path.isdir(LOCK_DIR):
        return
    left = {int(m.group(1)) for m in map(NS_RE.match, list_namespaces())
            if m}
    for name in os.listdir(LOCK_DIR):
        path = os.path.join(LOCK_DIR, name)
        if not name.endswith(".lock") or _lock_held(path) is not False:
            continue
        try:
            with open(path) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {}
        if name.startswith("wf") and info.get("pid") in left:
            continue
        wd = info.get("workdir")
        if wd and os.path.basename(wd).startswith("warren-faults-") and \
                not info.get("keep"):
            shutil.rmtree(wd, ignore_errors=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def socket_in(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket created inside namespace ns (a socket keeps the namespace
    it was created in). Only this thread switches, and only for the
    socket() call."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open("/run/netns/" + ns, os.O_RDONLY)
    except OSError:
        os.close(own)
        raise
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
        try:
            return socket.socket(family, kind)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # This thread would go on in a test namespace: never.
                os.write(2, b"netns: cannot return to own namespace\n")
                os._exit(70)
    finally:
        os.close(target)
        os.close(own)


class _NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, ns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ns = ns

    def connect(self):
        s = socket_in(self._ns)
        s.settimeout(self.timeout)
        try:
            s.connect((self.host, self.port))
        except OSError:
            s.close()
            raise
        self.sock = s


def _pdeathsig():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """A process started inside a host (its own session and process
    group). The log file gets stdout and stderr, appended across
    restarts."""

    def __init__(self, host, argv, log, env=None, name=None):
        self.host = host
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.name = name or os.path.basename(argv[0])
        self.popen = None
        self.started_at = None
        self.log_offset = 0
        self.paused = False

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self):
        assert not self.running(), "%s already running" % self.name
        self.host.net._check_open()
        with open(self.log, "ab") as f:
            self.log_offset = f.tell()
            f.write(("=== %s start: %s\n" % (
                time.strftime("%H:%M:%S"), " ".join(self.argv))).encode())
        main = threading.current_thread() is threading.main_thread()
        out = open(self.log, "ab")
        try:
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", self.host.ns] + self.argv,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,
                preexec_fn=_pdeathsig if main else None)
        finally:
            out.close()
        self.started_at = time.monotonic()
        self.paused = False
        return self

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def _signal_group(self, sig):
        # Only while the leader is unreaped: its pid (= the group id)
        # cannot have been reused.
        if self.running():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            return True
        return False

    def pause(self):
        """SIGSTOP the process group."""
        if self._signal_group(signal.SIGSTOP):
            self.paused = True

    def resume(self):
        """SIGCONT the process group."""
        self._signal_group(signal.SIGCONT)
        self.paused = False

    def wait(self, timeout):
        """Waits for exit; returns the status, or None on timeout."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, timeout=10.0):
        """kill -9 of the whole group; returns the exit status."""
        self._signal_group(signal.SIGKILL)
        rc = self.wait(timeout)
        self.paused = False
        return rc

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Graceful stop: sig (SIGCONT too, in case it is paused), wait at
        most timeout. Returns (status, seconds); status None means it did
        not exit in time and was killed."""
        if not self.running():
            return (self.popen.returncode if self.popen else None), 0.0
        t0 = time.monotonic()
        self._signal_group(sig)
        self._signal_group(signal.SIGCONT)
        rc = self.wait(timeout)
        took = time.monotonic() - t0
        if rc is None:
            self.kill()
        self.paused = False
        return rc, took

    def restart(self):
        if self.running():
            self.kill()
        return self.start()

    def log_text(self, since_start=False, tail=None):
        try:
            with open(self.log, "rb") as f:
                if since_start:
                    f.seek(self.log_offset)
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        if tail is not None and len(data) > tail:
            data = "...\n" + data[-tail:]
        return data


class Host:
    """One network namespace on the run's switch, with one address."""

    def __init__(self, net, name, index):
        self.net = net
        self.name = name
        self.index = index
        self.ns = net.prefix + name
        self.addr = str(net.subnet.network_address + index)
        self.port_name = "p%d" % index
        self._drops = set()

    def __repr__(self):
        return "Host(%s %s)" % (self.name, self.addr)

    def spawn(self, argv, log=None, env=None, name=None, start=True):
        """Starts argv inside this host; returns its Proc (tracked, and
        killed by Net.close())."""
        log = log or os.path.join(self.net.workdir, "%s-%s.log" % (
            self.name, name or os.path.basename(argv[0])))
        p = Proc(self, argv, log, env, name)
        self.net.procs.append(p)
        return p.start() if start else p

    def run(self, argv, timeout=CMD_TIMEOUT, check=False, input=None):
        """Runs a short command inside this host, bounded by timeout."""
        return run(["ip", "netns", "exec", self.ns] + list(argv), timeout,
                   check, input)

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_STREAM):
        return socket_in(self.ns, family, kind)

    def connect(self, addr, port, timeout=2.0):
        """A TCP connection from this host to addr:port."""
        s = self.socket()
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
        except OSError:
            s.close()
            raise
        return s

    def can_connect(self, addr, port, timeout=1.0):
        try:
            self.connect(addr, port, timeout).close()
            return True
        except OSError:
            return False

    def http(self, method, addr, port, path, body=None, timeout=3.0,
             auth=("guest", "guest")):
        """One HTTP request from this host; returns (status, bytes)."""
        import base64
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % auth).encode()).decode()
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c = _NsHTTPConnection(self.ns, addr, port, timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def set_drops(self, addrs):
        """Replaces this host's drop rules: traffic to and from every
        address in addrs is dropped (one atomic nft transaction in this
        namespace). An empty set removes the table."""
        script = "add table inet %s\ndelete table inet %s\n" % (
            NFT_TABLE, NFT_TABLE)
        if addrs:
            s = ", ".join(sorted(addrs, key=ipaddress.ip_address))
            script += (
                "table inet %s {\n"
                " chain in { type filter hook input priority 0; "
                "policy accept; ip saddr { %s } drop; }\n"
                " chain out { type filter hook output priority 0; "
                "policy accept; ip daddr { %s } drop; }\n"
                "}\n" % (NFT_TABLE, s, s))
        self.run(["nft", "-f", "-"], check=True, input=script)

    def rules(self):
        return self.run(["nft", "list", "ruleset"]).stdout


class Partition:
    def __init__(self, a, b):
        self.a = frozenset(a)
        self.b = frozenset(b)

    def __repr__(self):
        return "Partition(%s | %s)" % (sorted(self.a), sorted(self.b))


class Net:
    """A run's switch and hosts. Use as a context manager (or call
    close()); cleanup also runs at exit and on SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, workdir=None, keep=False, quiet=False):
        why = root_problem()
        if why:
            raise NetError(why)
        self.keep = keep
        self.quiet = quiet
        self.closed = False
        self.hosts = {}
        self.procs = []
        self.partitions = []
        self._locks = []
        self.prefix = "wf%d-" % os.getpid()
        sweep(verbose=not quiet)
        os.makedirs(LOCK_DIR, exist_ok=True)
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="warren-faults-")
        os.makedirs(self.workdir, exist_ok=True)
        if _OPEN or not self._hold_lock("wf%d.lock" % os.getpid()):
            raise NetError("one open Net per process (names use the pid)")
        self.run_no = self._pick_run_number()
        self.subnet = ipaddress.ip_network(SUBNET % self.run_no)
        _register(self)
        try:
            self.switch_ns = self.prefix + "sw"
            run(["ip", "netns", "add", self.switch_ns])
            self._ns_made = [self.switch_ns]
            self._in_switch("link", "add", "br0", "type", "bridge")
            self._in_switch("link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------

    def _hold_lock(self, name):
        """Creates and flocks LOCK_DIR/name; False when another process
        holds it."""
        path = os.path.join(LOCK_DIR, name)
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            # A sweeper unlinked it between our open and flock: again.
            os.close(fd)
        else:
            raise NetError("cannot hold " + path)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({
            "pid": os.getpid(), "prefix": self.prefix,
            "workdir": self.workdir if self.own_workdir else None,
            "keep": self.keep}).encode())
        self._locks.append((fd, path))
        return True

    def _pick_run_number(self):
        start = os.getpid() % 254
        for i in range(254):
            n = (start + i) % 254 + 1
            if self._hold_lock("net-%d.lock" % n):
                return n
        raise NetError("no free run number under " + LOCK_DIR)

    def _in_switch(self, *args):
        run(["ip", "-n", self.switch_ns] + list(args))

    def _check_open(self):
        if self.closed:
            raise NetError("network %s is closed" % self.prefix)

    def add_host(self, name):
        """Creates namespace <prefix><name> with lo up and eth0 at the next
        address of the run's /24, plugged into the switch."""
        self._check_open()
        assert re.match(r"^[a-z0-9]{1,8}$", name), name
        assert name not in self.hosts and name != "sw", name
        index = len(self.hosts) + 1
        assert index < 250
        h = Host(self, name, index)
        run(["ip", "netns", "add", h.ns])
        self._ns_made.append(h.ns)
        self._in_switch("link", "add", h.port_name, "type", "veth", "peer",
                        "name", "eth0", "netns", h.ns)
        self._in_switch("link", "set", h.port_name, "master", "br0", "up")
        run(["ip", "-n", h.ns, "link", "set", "lo", "up"])
        run(["ip", "-n", h.ns, "addr", "add", "%s/%d" % (
            h.addr, self.subnet.prefixlen), "dev", "eth0"])
        run(["ip", "-n", h.ns, "link", "set", "eth0", "up"])
        self.hosts[name] = h
        return h

    def host(self, name):
        return self.hosts[name]

    # -- partitions ----------------------------------------------------------

    def _addrs(self, side):
        out = set()
        for x in side:
            out.add(x.addr if isinstance(x, Host) else
                    str(ipaddress.ip_address(x)))
        return out

    def partition(self, a, b):
        """Drops all traffic between the hosts/addresses in a and those in
        b, both directions, with rules in the namespaces of this run's hosts
        on either side. Returns a handle for heal()."""
        self._check_open()
        p = Partition(self._addrs(a), self._addrs(b))
        assert not (p.a & p.b), "a host on both sides: %r" % p
        self.partitions.append(p)
        self._apply()
        return p

    def isolate(self, host, others):
        """Cuts host off from others (a list of hosts/addresses)."""
        return self.partition([host], [o for o in others if o is not host])

    def heal(self, p=None):
        """Removes partition p, or every partition."""
        if p is None:
            self.partitions = []
        elif p in self.partitions:
            self.partitions.remove(p)
        self._apply()

    def blocked(self, host):
        """The addresses host currently drops."""
        out = set()
        for p in self.partitions:
            if host.addr in p.a:
                out |= p.b
            if host.addr in p.b:
                out |= p.a
        return out

    def _apply(self):
        for h in self.hosts.values():
            want = self.blocked(h)
            if want != h._drops:
                h.set_drops(want)
                h._drops = want

    # -- teardown ------------------------------------------------------------

    def close(self):
        """Kills every process of the run and deletes its namespaces.
        Idempotent; safe from atexit and signal handlers."""
        if self.closed:
            return
        self.closed = True
        _unregister(self)
        old = _block_signals()
        try:
            for p in self.procs:
                if p.running():
                    p.kill(5)
            for ns in reversed(getattr(self, "_ns_made", [])):
                delete_namespace(ns)
            stuck = self.leftovers()
            if stuck:
                print("netns: could not delete %s; a later sweep will "
                      "(netns.py --sweep)" % " ".join(stuck),
                      file=sys.stderr)
            for fd, path in self._locks:
                # The owner lock stays (released) while namespaces remain,
                # so that the sweeper knows them for this harness's.
                if not (stuck and os.path.basename(path).startswith("wf")):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                os.close(fd)
            self._locks = []
            if self.own_workdir and not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            _restore_signals(old)

    def leftovers(self):
        """Namespaces of this run that still exist (for tests)."""
        return [n for n in list_namespaces() if n.startswith(self.prefix)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- process-wide cleanup: atexit and signals -----------------------------

_OPEN = []
_handlers_installed = False


def _register(net):
    global _handlers_installed
    _OPEN.append(net)
    if not _handlers_installed and \
            threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _on_signal)
        _handlers_installed = True


def _unregister(net):
    if net in _OPEN:
        _OPEN.remove(net)


def _close_all():
    for net in list(_OPEN):
        net.close()


def _on_signal(sig, frame):
    # Unwind the main thread (finally blocks and context managers run),
    # then atexit closes whatever is still open.
    signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + sig)


def _block_signals():
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {
        signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _restore_signals(old):
    if old is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


atexit.register(_close_all)


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true",
                    help="remove the leftovers of runs whose owner is gone")
    ap.add_argument("--hold", type=int, metavar="N",
                    help="(self-test) build N hosts, start a sleeper in "
                    "each, print the prefix and wait")
    args = ap.parse_args()
    if args.sweep:
        require_root("netns.py --sweep")
        removed = sweep()
        print("removed %d namespace(s)%s" % (
            len(removed), (": " + " ".join(removed)) if removed else ""))
        return 0
    if args.hold:
        require_root("netns.py --hold")
        with Net(quiet=True) as net:
            for i in range(args.hold):
                h = net.add_host("h%d" % (i + 1))
                h.spawn(["sleep", "600"])
            print(json.dumps({"prefix": net.prefix,
                              "pids": [p.pid for p in net.procs]}),
                  flush=True)
            for _ in range(600 * 10):
                time.sleep(0.1)
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
