"""services.py: etcd members and Warren nodes running on netns hosts.

    etcd = EtcdCluster(net, [h_e1, h_e2, h_e3], client=h_c)
    etcd.start()                       # waits until every member is healthy
    etcd.leader()                      # the member raft reports as leader
    etcd.ctl(["put", "k", "v"], members=[m])  # etcdctl from the client host

    node = WarrenNode(net, h_n1, "n1", warren_bin, client=h_c,
                      etcd=etcd, ttl=4)    # etcd=None: a single node
    node.start(); node.kill(); node.stop(); node.pause(); node.resume()
    node.api("GET", "/api/vhosts/%2F")   # management API, from the client
    node.leader("/")                     # "leader" of GET /api/vhosts/<vh>

Members and nodes listen on their host's own address with the standard
ports (2379/2380, 5672, 15672, 25672): each namespace has its own port
space. Data lives under the run's work directory; reset() wipes it for a
fresh trial. Every wait is bounded.
"""

import json
import os
import re
import shutil
import time
import urllib.parse

import netns

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
AMQP_PORT = 5672
MGMT_PORT = 15672
CLUSTER_PORT = 25672
LISTEN_RE = re.compile(r"listening on (\S+):(\d+) \((amqp|http)\)")


class NotAvailable(Exception):
    """A fault or check this build of Warren cannot support yet."""


# -- etcd --------------------------------------------------------------------

class EtcdMember:
    def __init__(self, cluster, host, name):
        self.cluster = cluster
        self.host = host
        self.name = name
        self.data_dir = os.path.join(cluster.workdir, "etcd-" + name)
        self.proc = None
        self.initial_state = "new"

    @property
    def endpoint(self):
        return "%s:%d" % (self.host.addr, ETCD_CLIENT_PORT)

    @property
    def peer_url(self):
        return "http://%s:%d" % (self.host.addr, ETCD_PEER_PORT)

    def argv(self):
        url = "http://" + self.endpoint
        return ["etcd", "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.cluster.initial_cluster(),
                "--initial-cluster-state", self.initial_state,
                "--initial-cluster-token", self.cluster.token,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger=zap", "--log-level=warn"]

    def start(self):
        if self.proc is None:
            self.proc = self.host.spawn(
                self.argv(), name="etcd",
                log=os.path.join(self.cluster.workdir,
                                 "etcd-%s.log" % self.name))
        else:
            self.proc.restart()
        return self

    def running(self):
        return self.proc is not None and self.proc.running()

    def healthy(self, timeout=1.0):
        """GET /health from the client host says true."""
        try:
            st, body = self.cluster.client.http(
                "GET", self.host.addr, ETCD_CLIENT_PORT, "/health",
                timeout=timeout, auth=None)
        except OSError:
            return False
        return st == 200 and b'"health":"true"' in body

    def status(self, timeout=2.0):
        """etcdctl endpoint status of this member alone: a dict with
        member_id, leader, raft_term, raft_index, revision; None when it
        does not answer."""
        r = self.cluster.ctl(["endpoint", "status", "-w", "json"],
                             members=[self], timeout=timeout)
        if r.returncode != 0:
            return None
        try:
            st = json.loads(r.stdout)[0]["Status"]
        except (ValueError, LookupError):
            return None
        return {"member_id": st["header"]["member_id"],
                "leader": st.get("leader"),
                "raft_term": st.get("raftTerm"),
                "raft_index": st.get("raftIndex", st.get("raft_index")),
                "revision": st["header"].get("revision")}


class EtcdCluster:
    """etcd members, one per host, and etcdctl run from a client host."""

    def __init__(self, net, hosts, client, workdir=None):
        self.net = net
        self.client = client
        self.workdir = workdir or net.workdir
        self.token = "%s%d" % (net.prefix, int(time.time() * 1000))
        self.members = [EtcdMember(self, h, "e%d" % (i + 1))
                        for i, h in enumerate(hosts)]

    def initial_cluster(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def start(self, timeout=30.0):
        for m in self.members:
            m.start()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30.0, members=None):
        members = members or self.members

        def ok():
            for m in members:
                if not m.running():
                    raise netns.NetError("etcd %s exited:\n%s" % (
                        m.name, m.proc.log_text(tail=3000)))
            return all(m.healthy() for m in members)
        netns.wait_for(ok, timeout, "etcd to become healthy", 0.1)

    def reset(self):
        """Kills every member and wipes the data: the next start() is a new
        cluster (with a new token)."""
        for m in self.members:
            if m.proc:
                m.proc.kill()
            shutil.rmtree(m.data_dir, ignore_errors=True)
        self.token = "%s%d" % (self.net.prefix, int(time.time() * 1000))

    def stop(self):
        for m in self.members:
            if m.proc:
                m.proc.stop(10)

    def ctl(self, args, members=None, timeout=3.0):
        """etcdctl args against members (default all), from the client
        host, bounded by timeout (dial and command timeouts included)."""
        eps = ",".join(m.endpoint for m in (members or self.members))
        argv = ["etcdctl", "--endpoints", eps,
                "--dial-timeout", "%.1fs" % min(timeout, 2.0),
                "--command-timeout", "%.1fs" % timeout] + list(args)
        return self.client.run(argv, timeout=timeout + 5)

    def leader(self, members=None):
        """The member every answering member in members names as leader,
        or None (no answer, no leader, or disagreement)."""
        seen = set()
        by_id = {}
        for m in members or self.members:
            st = m.status()
            if st is None:
                continue
            by_id[st["member_id"]] = m
            if st["leader"]:
                seen.add(st["leader"])
        if len(seen) != 1:
            return None
        lid = seen.pop()
        if lid not in by_id:
            # The leader is not among the members asked; find it.
            for m in self.members:
                st = m.status()
                if st and st["member_id"] == lid:
                    return m
            return None
        return by_id[lid]


# -- Warren ------------------------------------------------------------------

class WarrenNode:
    """One Warren node on a host: config, data directory, process, and its
    management API reached from the client host."""

    def __init__(self, net, host, name, binary, client, etcd=None, ttl=4,
                 cluster_name="faults", key_prefix="warren", extra_conf=None,
                 workdir=None):
        self.net = net
        self.host = host
        self.name = name
        self.binary = binary
        self.client = client
        self.etcd = etcd
        self.ttl = ttl
        self.cluster_name = cluster_name
        self.key_prefix = key_prefix
        self.extra_conf = dict(extra_conf or {})
        self.dir = os.path.join(workdir or net.workdir, "node-" + name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "warren.conf")
        self.log = os.path.join(self.dir, "warren.log")
        self.proc = None
        os.makedirs(self.data_dir, exist_ok=True)

    @property
    def addr(self):
        return self.host.addr

    @property
    def amqp(self):
        return "%s:%d" % (self.host.addr, AMQP_PORT)

    def conf(self):
        """The node's settings (the keys CLUSTER.md and conf/warren.conf
        name); a cluster node when etcd is set."""
        c = {
            "listeners.tcp.default": self.amqp,
            "management.tcp.ip": self.host.addr,
            "management.tcp.port": str(MGMT_PORT),
            "prometheus.tcp.ip": self.host.addr,
            "prometheus.tcp.port": "0",
            "data_dir": self.data_dir,
            # Clients and the driver connect from the client namespace.
            "loopback_users.guest": "false",
        }
        if self.etcd is not None:
            c.update({
                "cluster_formation.peer_discovery_backend": "etcd",
                "cluster_formation.etcd.key_prefix": self.key_prefix,
                "cluster_formation.etcd.cluster_name": self.cluster_name,
                "cluster_formation.etcd.node_ttl": str(self.ttl),
                "cluster.node_name": self.name,
                "cluster.listen": "%s:%d" % (self.host.addr, CLUSTER_PORT),
                "cluster.advertise": "%s:%d" % (self.host.addr,
                                                CLUSTER_PORT),
            })
            for i, ep in enumerate(self.etcd.endpoints):
                c["cluster_formation.etcd.endpoints.%d" % (i + 1)] = ep
        c.update(self.extra_conf)
        return c

    def write_config(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.config, "w") as f:
            for k, v in self.conf().items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))

    def start(self, wait=True, timeout=30.0):
        self.write_config()
        argv = [self.binary, "--config", self.config]
        if self.proc is None:
            self.proc = self.host.spawn(argv, log=self.log, name="warren")
        else:
            self.proc.argv = argv
            self.proc.restart()
        if wait:
            self.wait_listening(timeout)
        return self

    def listening(self):
        """Both listeners (amqp, http) reported since the last start."""
        text = self.proc.log_text(since_start=True)
        kinds = {m.group(3) for m in LISTEN_RE.finditer(text)}
        return {"amqp", "http"} <= kinds

    def wait_listening(self, timeout=30.0):
        def ok():
            if not self.proc.running():
                raise netns.NetError("warren %s exited with %s:\n%s" % (
                    self.name, self.proc.popen.returncode,
                    self.proc.log_text(since_start=True, tail=4000)))
            return self.listening()
        netns.wait_for(ok, timeout, "warren %s to listen" % self.name, 0.05)

    def running(self):
        return self.proc is not None and self.proc.running()

    def kill(self):
        return self.proc.kill() if self.proc else None

    def stop(self, timeout=10.0):
        """SIGTERM; returns (status, seconds)."""
        return self.proc.stop(timeout) if self.proc else (None, 0.0)

    def pause(self):
        self.proc.pause()

    def resume(self):
        self.proc.resume()

    def reset(self):
        """Kills the node and wipes its data (a fresh node next start)."""
        if self.proc:
            self.proc.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.makedirs(self.data_dir, exist_ok=True)

    def api(self, method, path, body=None, timeout=3.0):
        """(status, parsed JSON or None) from this node's management API,
        requested from the client host."""
        st, raw = self.client.http(method, self.host.addr, MGMT_PORT, path,
                                   body, timeout)
        try:
            return st, json.loads(raw) if raw else None
        except ValueError:
            return st, None

    def vhost_info(self, vhost="/"):
        try:
            st, js = self.api("GET", "/api/vhosts/" +
                              urllib.parse.quote(vhost, safe=""))
        except OSError:
            return None
        return js if st == 200 and isinstance(js, dict) else None

    def leader(self, vhost="/"):
        """The vhost's leader as this node reports it (management API
        GET /api/vhosts/<vhost>, field "leader"). None when the node does
        not answer or names no leader right now; raises NotAvailable when
        it answers without the field at all (a Warren without clustering).
        """
        info = self.vhost_info(vhost)
        if info is None:
            return None
        if "leader" not in info:
            raise NotAvailable(
                "node %s: GET /api/vhosts/%s has no \"leader\" field (this "
                "Warren build has no clustering yet)" % (
                    self.name, urllib.parse.quote(vhost, safe="")))
        return info["leader"] or None

    def queue_messages(self, queue, vhost="/"):
        try:
            st, js = self.api("GET", "/api/queues/%s/%s" % (
                urllib.parse.quote(vhost, safe=""),
                urllib.parse.quote(queue, safe="")))
        except OSError:
            return None
        if st != 200 or not isinstance(js, dict):
            return None
        return js.get("messages")
