"""pytest fixtures for Warren's wire-level acceptance tests.

Target selection:
  - WARREN_TEST_BROKER=host:port set: every test runs against that external
    broker (guest/guest, vhost '/'), normally a real RabbitMQ 3.10, which is
    how the tests themselves are validated. Tests marked warren_only skip.
  - otherwise a private Warren is started from $WARREN_BIN (default
    <repo>/build/server/warren) with a temp config and data dir:
        warren --config <tmp>/warren.conf --listen 127.0.0.1:0 --data-dir <tmp>
    and the port is read from its stderr line "listening on H:P (amqp)".

Fixtures:
  broker       session-wide Broker (external or one Warren for the file)
  target       "warren" or "rabbitmq"
  make_broker  factory for private Warrens: make_broker(extra_conf={...});
               skips the test when an external broker is in use
  uname        unique names, uname("q") -> "wire-q-<test>-<hex>"; every name
               handed out is deleted (as queue and as exchange) at teardown
  pconn        a pika BlockingConnection to `broker`, closed at teardown
  raw          factory for rawamqp connections to `broker` (handshake done
               unless handshake=False), closed at teardown
  rawch        a raw connection with channel 1 open

Invariant: a test never leaves a declared object behind, and never stops
the external broker. Broker stderr is kept in a file and attached to the
report of every failed test.
"""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pika
import pytest

# Plain asserts in the helper modules report their values too.
pytest.register_assert_rewrite("wireutil", "rawamqp")

import rawamqp  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LISTEN_RE = re.compile(r"listening on (\S+):(\d+) \(amqp\)")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# Live Warren processes, so failing tests can attach their stderr.
_LIVE = []


def external_broker():
    spec = os.environ.get("WARREN_TEST_BROKER")
    if not spec:
        return None
    host, _, port = spec.rpartition(":")
    return host or "127.0.0.1", int(port)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "warren_only: needs a private Warren (custom config, signals, logs, "
        "restarts); skipped when WARREN_TEST_BROKER is set")


def pytest_collection_modifyitems(config, items):
    if external_broker() is None:
        return
    skip = pytest.mark.skip(reason="warren_only: external broker in use")
    for item in items:
        if "warren_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in list(_LIVE):
            text = b.stderr_text()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append(("warren stderr (%s)" % b.stderr_path, text))


class Broker:
    """An AMQP broker under test.

    For Warren (target == "warren") it owns the process: pid, proc,
    data_dir, config_path, stderr_path, stderr_text(), send_signal(),
    stop(), restart(). For an external broker only the address is known.
    """

    def __init__(self, host, port, target):
        self.host = host
        self.port = port
        self.target = target
        self.user = "guest"
        self.password = "guest"
        self.vhost = "/"
        self.proc = None
        self.data_dir = None
        self.config_path = None
        self.stderr_path = None
        self.workdir = None
        self.extra_conf = {}
        self.extra_args = []
        self.preexec = None  # run in the child before exec (rlimits)
        self._stderr_file = None
        self._reader = None
        self._lines = []
        self._cond = threading.Condition()

    # -- clients -------------------------------------------------------------

    def params(self, **kw):
        kw.setdefault("host", self.host)
        kw.setdefault("port", self.port)
        kw.setdefault("virtual_host", self.vhost)
        kw.setdefault("credentials",
                      pika.PlainCredentials(self.user, self.password))
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("blocked_connection_timeout", 30)
        return pika.ConnectionParameters(**kw)

    def pika(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def raw(self, handshake=True, timeout=5.0, **kw):
        if not handshake:
            return rawamqp.Connection(self.host, self.port, timeout)
        kw.setdefault("user", self.user)
        kw.setdefault("password", self.password)
        kw.setdefault("vhost", self.vhost)
        return rawamqp.connect(self.host, self.port, timeout, **kw)

    # -- Warren process ------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stderr_text(self):
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return ""
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def stderr_lines(self):
        with self._cond:
            return list(self._lines)

    def wait_for_line(self, pattern, timeout=5.0, start=0):
        """Wait until a stderr line (index >= start) matches; returns it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def write_config(self):
        """conf/warren.conf plus extra_conf. A value of None removes the
        key; a key "prefix.*" (value None) removes all keys under prefix."""
        lines = []
        base = os.path.join(REPO, "conf", "warren.conf")

        def overridden(key):
            # A key given in extra_conf replaces the file's; "prefix.*"
            # replaces every key under prefix.
            for k in self.extra_conf:
                if key == k or (k.endswith(".*") and key.startswith(k[:-1])):
                    return True
            return False

        if os.path.exists(base):
            with open(base) as f:
                for line in f:
                    key = line.split("=", 1)[0].strip()
                    if "=" in line and not line.lstrip().startswith("#") \
                            and overridden(key):
                        continue
                    lines.append(line.rstrip("\n"))
        for k, v in self.extra_conf.items():
            if v is None or k.endswith(".*"):
                continue  # only removes keys
            lines.append("%s = %s" % (k, v))
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _pump(self, stream):
        # Copies the child's stderr into the log file line by line.
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._stderr_file.write(line)
            self._stderr_file.flush()
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def start(self, listen="127.0.0.1:0"):
        """Start Warren and wait for its 'listening on' line."""
        binary = os.environ.get("WARREN_BIN") or os.path.join(
            REPO, "build", "server", "warren")
        if not os.access(binary, os.X_OK):
            pytest.fail("Warren binary not found at %s (set WARREN_BIN or "
                        "WARREN_TEST_BROKER)" % binary)
        self.write_config()
        args = [binary, "--config", self.config_path]
        if listen is not None:
            args += ["--listen", listen]
        if self.data_dir is not None:
            args += ["--data-dir", self.data_dir]
        args += self.extra_args
        self._stderr_file = open(self.stderr_path, "a")
        self._stderr_file.write("=== %s\n" % " ".join(args))
        self._stderr_file.flush()
        with self._cond:
            self._lines = []
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr_file,
                                     stderr=subprocess.PIPE,
                                     preexec_fn=self.preexec)
        self._reader = threading.Thread(target=self._pump,
                                        args=(self.proc.stderr,), daemon=True)
        self._reader.start()
        _LIVE.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while True:
                for line in self._lines:
                    m = LISTEN_RE.search(line)
                    if m:
                        host = m.group(1).strip("[]")
                        # A wildcard listener is reached through loopback.
                        self.host = {"0.0.0.0": "127.0.0.1",
                                     "::": "::1"}.get(host, host)
                        self.port = int(m.group(2))
                        return
                if self.proc.poll() is not None:
                    pytest.fail("warren exited with %s before listening:\n%s"
                                % (self.proc.returncode, self.stderr_text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    pytest.fail("warren did not print 'listening on' within "
                                "%.0fs:\n%s" % (START_TIMEOUT,
                                                self.stderr_text()))
                self._cond.wait(min(left, 0.1))

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for exit; returns the status or None on timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish()
        return rc

    def _finish(self):
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        if self in _LIVE:
            _LIVE.remove(self)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal Warren and wait; returns its exit status (kills on hang)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = self.proc.returncode if self.proc else 0
            self._finish()
            return rc
        self.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
            raise AssertionError("warren did not exit within %.0fs of %s"
                                 % (timeout, signal.Signals(sig).name))
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._finish()

    def restart(self, listen=None):
        """SIGTERM (asserting exit 0) and start again on the same data dir.

        listen=None reuses the current port, so clients keep the address.
        """
        rc = self.stop()
        assert rc == 0, "warren exited with %s on SIGTERM" % rc
        self.start(listen or "%s:%d" % (self.host, self.port))


def new_warren(tmp_root, extra_conf=None, data_dir=None, extra_args=None,
               start=True, listen="127.0.0.1:0", preexec=None):
    b = Broker("127.0.0.1", 0, "warren")
    b.workdir = tempfile.mkdtemp(prefix="warren-wire-", dir=tmp_root)
    b.data_dir = data_dir or os.path.join(b.workdir, "data")
    os.makedirs(b.data_dir, exist_ok=True)
    b.config_path = os.path.join(b.workdir, "warren.conf")
    b.stderr_path = os.path.join(b.workdir, "warren.stderr")
    # Test brokers share the machine: the management API and the
    # Prometheus listener take ephemeral ports unless a test asks.
    b.extra_conf = {"management.tcp.port": 0,
                    "management.tcp.ip": "127.0.0.1",
                    "prometheus.tcp.port": 0,
                    "prometheus.tcp.ip": "127.0.0.1"}
    b.extra_conf.update(extra_conf or {})
    b.extra_args = list(extra_args or [])
    b.preexec = preexec
    if start:
        b.start(listen)
    return b


def stop_checked(b):
    """Teardown: SIGTERM, exit within STOP_TIMEOUT with status 0."""
    if b.proc is None:
        return
    rc = b.stop()
    assert rc == 0, "warren exited with status %s on SIGTERM\n%s" % (
        rc, b.stderr_text()[-5000:])


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    ext = external_broker()
    if ext is not None:
        yield Broker(ext[0], ext[1], "rabbitmq")
        return
    b = new_warren(str(tmp_path_factory.mktemp("broker")))
    yield b
    stop_checked(b)


@pytest.fixture
def target(broker):
    return broker.target


@pytest.fixture
def make_broker(tmp_path):
    """Factory for private Warren instances, stopped (checked) at teardown."""
    if external_broker() is not None:
        pytest.skip("needs a private Warren (WARREN_TEST_BROKER is set)")
    made = []

    def make(extra_conf=None, **kw):
        b = new_warren(str(tmp_path), extra_conf, **kw)
        made.append(b)
        return b

    yield make
    errors = []
    for b in made:
        try:
            stop_checked(b)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def _delete_everything(broker, names):
    """Delete every name as queue and as exchange (idempotent)."""
    if not names:
        return
    try:
        conn = broker.raw(timeout=5.0)
    except (OSError, rawamqp.Closed, rawamqp.Timeout, AssertionError):
        return
    try:
        ch = 1
        conn.open_channel(ch)
        for name in names:
            for method in ("queue.delete", "exchange.delete"):
                if name.startswith("amq.") and method == "exchange.delete":
                    continue
                m = None
                try:
                    conn.send_method(ch, method, **(
                        {"queue": name} if method == "queue.delete"
                        else {"exchange": name}))
                    m = conn.read_method()
                except (rawamqp.Closed, rawamqp.Timeout):
                    return
                if m.name == "channel.close":
                    # e.g. 405 for a leftover exclusive queue; skip it.
                    conn.send_method(ch, "channel.close-ok")
                    ch += 1
                    conn.open_channel(ch)
        conn.close()
    except (OSError, rawamqp.Closed, rawamqp.Timeout, AssertionError,
            ValueError):
        pass
    finally:
        conn.close_socket()


@pytest.fixture
def uname(request, broker):
    """uname(kind) -> a unique name; all are deleted at teardown."""
    names = []
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40]

    def make(kind="x"):
        n = "wire-%s-%s-%s" % (kind, test, uuid.uuid4().hex[:10])
        names.append(n)
        return n

    make.track = names.append  # for server-named queues etc.
    yield make
    _delete_everything(broker, names)


@pytest.fixture
def pconn(broker):
    conn = broker.pika()
    yield conn
    if conn.is_open:
        try:
            conn.close()
        except Exception:
            pass


@pytest.fixture
def raw(broker):
    conns = []

    def make(handshake=True, **kw):
        c = broker.raw(handshake=handshake, **kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close_socket()


@pytest.fixture
def rawch(raw):
    """A handshaken raw connection with channel 1 open."""
    c = raw()
    c.open_channel(1)
    return c
