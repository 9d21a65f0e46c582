"""Warren's process lifecycle (Warren only: these need a private broker).

  - SIGTERM and SIGINT close every connection with 320 CONNECTION_FORCED
    (RabbitMQ's text on shutdown: "CONNECTION_FORCED - broker forced
    connection closure with reason 'shutdown'", class 0, method 0) and the
    process exits with status 0, also when a client never answers;
  - one log line per connection opened and one per connection closed, each
    naming the peer address, the user and the vhost, the closing line also
    the reason;
  - --listen and --data-dir override the config file;
  - durable queues and persistent messages survive a restart on the same
    data directory, transient ones do not.

Assumptions about Warren's log format (the lead may tighten them): a line
"names" the peer when it contains "127.0.0.1:<client port>", the user when
it contains "guest", the vhost when it matches r"vhost\\W{0,3}/"; the
reason is the reply code (e.g. 200, 320, 504) or a word for what happened.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

import rawamqp
from wireutil import confirm_select, get, publish_sync

pytestmark = pytest.mark.warren_only

SHUTDOWN = (320, "CONNECTION_FORCED - broker forced connection closure "
            "with reason 'shutdown'", 0, 0)
VHOST_RE = re.compile(r"vhost\W{0,3}/")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


# -- signals ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_closes_connections_with_320_and_exits_0(make_broker, sig):
    b = make_broker()
    conns = [b.raw() for _ in range(3)]
    for i, c in enumerate(conns):
        for ch in range(1, i + 2):
            c.open_channel(ch)
    q = conns[2].call(1, "queue.declare", queue="", exclusive=True).queue
    conns[2].call(1, "basic.consume", queue=q, consumer_tag="c")
    b.send_signal(sig)
    for c in conns:
        # expect_connection_close answers close-ok (ignoring a socket the
        # server has already closed).
        m = c.expect_connection_close(timeout=5)
        assert m.close_info == SHUTDOWN
        assert c.is_closed(5)
    assert b.wait(5) == 0


def test_sigterm_exits_even_if_clients_do_not_answer(make_broker):
    b = make_broker()
    silent = b.raw()
    silent.open_channel(1)
    half = b.raw(handshake=False)
    half.send(rawamqp.PROTOCOL_HEADER)  # stuck in the handshake
    idle = socket.create_connection((b.host, b.port))  # nothing sent
    t0 = time.monotonic()
    b.send_signal(signal.SIGTERM)
    m = silent.expect_connection_close(timeout=5, reply=False)
    assert m.close_info == SHUTDOWN
    rc = b.wait(5)
    assert rc == 0, "exit status %s after %.1fs" % (rc, time.monotonic() - t0)
    assert silent.is_closed(1)
    idle.close()


def test_sigterm_with_no_connections(make_broker):
    b = make_broker()
    t0 = time.monotonic()
    assert b.stop() == 0
    assert time.monotonic() - t0 < 5


def test_new_connections_refused_after_shutdown(make_broker):
    b = make_broker()
    host, port = b.host, b.port
    assert b.stop() == 0
    assert not port_open(host, port)


# -- log lines ----------------------------------------------------------------


def _lines_for(b, peer):
    rx = re.compile(re.escape(peer) + r"(?!\d)")
    return [line for line in b.stderr_lines() if rx.search(line)]


def _names_user_and_vhost(line):
    return "guest" in line and VHOST_RE.search(line) is not None


def _wait_lines(b, peer, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _lines_for(b, peer)
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    return _lines_for(b, peer)


def test_log_line_per_connection_open_and_client_close(make_broker):
    b = make_broker()
    c = b.raw()
    peer = c.local_addr
    c.open_channel(1)
    c.call(1, "queue.declare", queue="", exclusive=True)
    opened = _wait_lines(b, peer, 1)
    assert len(opened) == 1, opened
    assert _names_user_and_vhost(opened[0]), opened[0]
    c.send_method(0, "connection.close", reply_code=200,
                  reply_text="wire-test goodbye")
    c.expect("connection.close-ok", 0)
    c.close_socket()
    lines = _wait_lines(b, peer, 2)
    time.sleep(0.2)  # nothing more may follow
    lines = _lines_for(b, peer)
    assert len(lines) == 2, lines
    closed = lines[1]
    assert _names_user_and_vhost(closed), closed
    assert re.search(r"\b200\b|goodbye|client", closed, re.I), closed


def test_log_line_when_client_drops(make_broker):
    b = make_broker()
    c = b.raw()
    peer = c.local_addr
    c.close_socket()
    lines = _wait_lines(b, peer, 2)
    assert len(lines) == 2, lines
    assert _names_user_and_vhost(lines[1]), lines[1]
    assert re.search(r"closed|eof|reset|abrupt|lost|unexpected", lines[1],
                     re.I), lines[1]


def test_log_line_names_server_error(make_broker):
    b = make_broker()
    c = b.raw()
    peer = c.local_addr
    c.open_channel(1)
    c.send_method(1, "channel.open")
    m = c.expect_connection_close()
    assert m.reply_code == 504
    lines = _wait_lines(b, peer, 2)
    assert len(lines) == 2, lines
    assert _names_user_and_vhost(lines[1]), lines[1]
    assert re.search(r"\b504\b|CHANNEL_ERROR", lines[1]), lines[1]


def test_log_line_on_shutdown(make_broker):
    b = make_broker()
    c = b.raw()
    peer = c.local_addr
    _wait_lines(b, peer, 1)
    b.send_signal(signal.SIGTERM)
    assert c.expect_connection_close(timeout=5).close_info == SHUTDOWN
    assert b.wait(5) == 0
    lines = _lines_for(b, peer)
    assert len(lines) == 2, lines
    assert _names_user_and_vhost(lines[1]), lines[1]
    assert re.search(r"\b320\b|CONNECTION_FORCED|shutdown", lines[1]), \
        lines[1]


# -- command line over config -------------------------------------------------

# The config keys for the listener and the data directory (rabbitmq.conf
# has listeners.tcp.<name>; data_dir is Warren's own key, see
# conf/conf_keys.h).
LISTEN_KEY = "listeners.tcp.default"
DATA_DIR_KEY = "data_dir"


def test_config_listener_used_without_listen_flag(make_broker):
    port = free_port()
    b = make_broker(extra_conf={"listeners.tcp.*": None,
                                LISTEN_KEY: "127.0.0.1:%d" % port},
                    listen=None)
    assert b.port == port
    c = b.raw()
    c.close()


def test_listen_flag_overrides_config(make_broker):
    port = free_port()
    b = make_broker(extra_conf={"listeners.tcp.*": None,
                                LISTEN_KEY: "127.0.0.1:%d" % port})
    assert b.port != port
    assert not port_open("127.0.0.1", port)
    b.raw().close()


def test_data_dir_flag_overrides_config(make_broker, tmp_path):
    conf_dir = tmp_path / "from-config"
    flag_dir = tmp_path / "from-flag"
    conf_dir.mkdir()
    flag_dir.mkdir()
    b = make_broker(extra_conf={DATA_DIR_KEY: str(conf_dir)},
                    data_dir=str(flag_dir))
    c = b.raw()
    c.open_channel(1)
    c.call(1, "queue.declare", queue="wire-durable-dir", durable=True)
    confirm_select(c, 1)
    publish_sync(c, 1, "", "wire-durable-dir", b"kept",
                 props={"delivery_mode": 2})
    c.close()
    b.restart()
    c = b.raw()
    c.open_channel(1)
    m = get(c, 1, "wire-durable-dir")
    assert m.content.body == b"kept"
    c.close()
    assert os.listdir(str(flag_dir)), "nothing written to --data-dir"
    assert os.listdir(str(conf_dir)) == []


# -- restarts -----------------------------------------------------------------


def test_durable_state_survives_restart(make_broker):
    b = make_broker()
    c = b.raw()
    c.open_channel(1)
    c.call(1, "exchange.declare", exchange="wire-dx", type="topic",
           durable=True)
    c.call(1, "queue.declare", queue="wire-dq", durable=True)
    c.call(1, "queue.declare", queue="wire-tq")
    c.call(1, "queue.bind", queue="wire-dq", exchange="wire-dx",
           routing_key="a.#")
    confirm_select(c, 1)
    publish_sync(c, 1, "wire-dx", "a.b", b"persistent",
                 props={"delivery_mode": 2})
    publish_sync(c, 1, "wire-dx", "a.c", b"transient",
                 props={"delivery_mode": 1})
    c.close()
    b.restart()
    c = b.raw()
    c.open_channel(1)
    m = c.call(1, "queue.declare", queue="wire-dq", passive=True)
    assert m.message_count == 1
    got = get(c, 1, "wire-dq")
    assert got.content.body == b"persistent"
    assert got.content.props == {"delivery_mode": 2}
    # The binding and the exchange came back too.
    confirm_select(c, 1)
    publish_sync(c, 1, "wire-dx", "a.z", b"after restart")
    assert get(c, 1, "wire-dq").content.body == b"after restart"
    c.send_method(1, "queue.declare", queue="wire-tq", passive=True)
    m = c.read_method()
    assert m.close_info == (
        404, "NOT_FOUND - no queue 'wire-tq' in vhost '/'", 50, 10)
    c.close()


def test_restart_keeps_port(make_broker):
    b = make_broker()
    port = b.port
    b.restart()
    assert b.port == port
    b.raw().close()


# -- listeners: ports in use, out of file descriptors ------------------------


def run_to_exit(b, timeout=20):
    """Runs b's binary with its config until it exits; (status, stderr)."""
    b.write_config()
    binary = os.environ.get("WARREN_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "server", "warren")
    p = subprocess.run([binary, "--config", b.config_path, "--listen",
                        "127.0.0.1:0", "--data-dir", b.data_dir],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def test_management_port_in_use_stops_the_start(make_broker):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        b = make_broker(extra_conf={"management.tcp.port": port},
                        start=False)
        rc, err = run_to_exit(b)
        assert rc != 0
        assert "management API: cannot listen on 127.0.0.1:%d" % port in err
        assert "management.tcp.optional" in err
        # optional: the broker runs without the API
        b.extra_conf["management.tcp.optional"] = "true"
        b.start()
        assert b.wait_for_line("running without the management API")
        b.raw().close()
    finally:
        taken.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_backs_off(make_broker):
    """ulimit -n 200 and 300 connecting sockets: the broker stops accepting
    for a while at a time (one log line) instead of spinning on EMFILE,
    and accepts again once connections close."""
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    b = make_broker(preexec=low_nofile)
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection((b.host, b.port)))
        assert b.wait_for_line("not accepting connections", timeout=10)
        before, start = cpu_seconds(b.pid), time.monotonic()
        time.sleep(2.0)
        used = cpu_seconds(b.pid) - before
        # Spinning on accept would take the whole 2 s of a core.
        assert used < 0.5 * (time.monotonic() - start), used
        assert sum("not accepting connections" in line
                   for line in b.stderr_lines()) == 1
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            b.raw().close()
            break
        except (OSError, rawamqp.Closed, rawamqp.Timeout):
            assert time.monotonic() < deadline, "never accepted again"
            time.sleep(0.2)
    assert b.wait_for_line("accepting again", timeout=10)
