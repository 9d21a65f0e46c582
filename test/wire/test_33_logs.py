"""Warren's log outputs (Warren only: they need a private broker).

RabbitMQ's keys: log.file (with .level, .formatter, .rotation.size and
.rotation.count), log.console (.level, .formatter), log.default.level and
the connection category's log.connection.level.

  - a log file gets the broker's lines (the console keeps its own level);
    log.file.level = debug alone puts debug lines in the file;
  - json: one object a line that json.loads parses, with RabbitMQ's field
    names time (ISO 8601, milliseconds), level, msg, and pid (Warren's
    process id; RabbitMQ's is an Erlang pid), domain for a category;
  - rotation by size: warren.log -> warren.log.0 -> ... keeping count
    archives, none bigger than the size (plus the line that crossed it);
  - SIGHUP and SIGUSR1 reopen the file at its path (logrotate's `mv` then
    signal), log one line, and never stop the broker, with or without a
    file (RabbitMQ: SIGHUP is ignored; Warren's died with status 129);
    without a signal, the next line after a `mv` or `rm` opens a new file
    at the path (RabbitMQ checks the file's inode before each write);
  - log.connection.level = warning hides the lines of normal connections
    and keeps a refused login's;
  - a log file that cannot be opened, or a bad value, stops startup with
    a message that names the key.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import REPO
from test_20_mgmt_api import Mgmt, http_port

pytestmark = pytest.mark.warren_only

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
CLOSING = "closing AMQP connection"


def read(path):
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


def wait_for(path, pattern, timeout=5.0):
    """Wait until the file at path has a line matching pattern."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in read(path).splitlines():
            if rx.search(line):
                return line
        time.sleep(0.05)
    raise AssertionError("no line matching %r in %s:\n%s"
                         % (pattern, path, read(path)[-3000:]))


def one_connection(b):
    """Opens and closes one AMQP connection; returns its client port."""
    c = b.raw()
    port = int(c.local_addr.rsplit(":", 1)[1])
    c.close()
    c.close_socket()
    return port


def refused_login(b):
    """A login with a wrong password (logged as a warning)."""
    c = b.raw(handshake=False)
    c.begin()
    try:
        c.login(password="wrong")
    except Exception:
        pass
    c.close_socket()


def file_broker(make_broker, tmp_path, **conf):
    """A Warren logging to tmp_path/warren.log, console on (the fixture
    reads the port from stderr)."""
    path = str(tmp_path / "warren.log")
    extra = {"log.file": path, "log.console": "true"}
    extra.update(conf)
    return make_broker(extra), path


def test_file_gets_the_lines_at_its_own_level(make_broker, tmp_path):
    b, path = file_broker(make_broker, tmp_path)
    wait_for(path, r"listening on 127\.0\.0\.1:%d \(amqp\)" % b.port)
    port = one_connection(b)
    line = wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % port)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[info\] ", line)
    # Also on the console: log.console = true was set explicitly.
    assert b.wait_for_line(CLOSING + r" 127\.0\.0\.1:%d " % port)
    assert os.stat(path).st_mode & 0o777 == 0o640
    # /api/nodes names the outputs, as RabbitMQ's log_files does
    nodes = Mgmt(http_port(b)).get("/api/nodes").json
    assert nodes[0]["log_files"] == [path, "<stderr>"]

    # log.file.level = warning: the file keeps warnings only, the console
    # still gets info (log.default.level).
    os.makedirs(str(tmp_path / "w"))
    b2, path2 = file_broker(make_broker, tmp_path / "w",
                            **{"log.file.level": "warning"})
    port = one_connection(b2)
    assert b2.wait_for_line(CLOSING + r" 127\.0\.0\.1:%d " % port)
    refused_login(b2)
    wait_for(path2, r"\[warning\] .*login refused")
    assert "[info]" not in read(path2)


def test_file_level_debug_alone_puts_debug_lines_in_the_file(make_broker,
                                                             tmp_path):
    # RabbitMQ's way to debug: log.file.level = debug, the rest untouched.
    # The connection category (not set) does not hold its debug lines back;
    # the console stays at log.default.level (info).
    b, path = file_broker(make_broker, tmp_path,
                          **{"log.file.level": "debug"})
    port = one_connection(b)
    wait_for(path, r"\[debug\] accepting AMQP connection 127\.0\.0\.1:%d "
             % port)
    assert b.wait_for_line(CLOSING + r" 127\.0\.0\.1:%d " % port)
    assert not [ln for ln in b.stderr_lines() if "[debug]" in ln]


def test_file_alone_silences_the_console(make_broker, tmp_path):
    # RabbitMQ: an explicitly set file disables the console unless it is
    # enabled too. The fixture needs the console's "listening on" line, so
    # start the binary directly and read the port from the file.
    path = str(tmp_path / "alone.log")
    conf = tmp_path / "alone.conf"
    conf.write_text("log.file = %s\nmanagement.tcp.port = 0\n"
                    "management.tcp.ip = 127.0.0.1\nprometheus.tcp.port = 0\n"
                    % path)
    binary = os.environ.get("WARREN_BIN") or os.path.join(
        REPO, "build", "server", "warren")
    p = subprocess.Popen([binary, "--config", str(conf), "--listen",
                          "127.0.0.1:0", "--data-dir",
                          str(tmp_path / "data")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(path, r"listening on 127\.0\.0\.1:\d+ \(amqp\)")
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0
    assert out == b"" and err == b""
    wait_for(path, r"received SIGTERM")


def check_json_line(line, pid):
    doc = json.loads(line)
    assert TIME_RE.match(doc["time"]), doc
    assert doc["level"] in ("debug", "info", "warning", "error"), doc
    assert isinstance(doc["msg"], str) and doc["msg"], doc
    assert doc["pid"] == pid, doc
    return doc


def test_json_lines(make_broker, tmp_path):
    b, path = file_broker(make_broker, tmp_path,
                          **{"log.file.formatter": "json",
                             "log.console.formatter": "json"})
    wait_for(path, r"listening on")
    # A vhost name with a quote, a backslash and a control character
    # reaches the log escaped (a refused open is logged with it).
    c = b.raw(handshake=False)
    c.begin()
    c.login()
    c.tune_ok()
    assert c.open('no"such\\vh\tost').name == "connection.close"
    c.close_socket()
    port = one_connection(b)
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % port)
    lines = read(path).splitlines()
    docs = [check_json_line(ln, b.pid) for ln in lines]
    closing = [d for d in docs if d["msg"].startswith(CLOSING)
               and "127.0.0.1:%d " % port in d["msg"]]
    assert closing[0]["level"] == "info"
    assert closing[0]["domain"] == "rabbitmq.connection"
    assert any('no"such\\vh\tost' in d["msg"] for d in docs), lines
    # The console writes the same JSON.
    for ln in b.stderr_lines():
        if ln.startswith("{"):
            check_json_line(ln, b.pid)
    assert any(ln.startswith("{") and "listening on" in ln
               for ln in b.stderr_lines())


def test_rotation_by_size_keeps_count_files(make_broker, tmp_path):
    size, count = 2000, 3
    b, path = file_broker(make_broker, tmp_path,
                          **{"log.file.rotation.size": size,
                             "log.file.rotation.count": count,
                             "log.file.rotation.date": "$D0"})
    ports = [one_connection(b) for _ in range(60)]
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % ports[-1])
    names = sorted(os.listdir(str(tmp_path)))
    logs = [n for n in names if n.startswith("warren.log")]
    assert logs == ["warren.log"] + ["warren.log.%d" % i
                                     for i in range(count)], names
    for n in logs:
        st = os.stat(str(tmp_path / n))
        assert 0 < st.st_size <= size, (n, st.st_size)
    # .0 is the newest archive: oldest lines in .2, then .1, .0, the file;
    # no line is lost between them.
    text = "".join(read(str(tmp_path / n)) for n in
                   ["warren.log.2", "warren.log.1", "warren.log.0",
                    "warren.log"])
    seen = [int(m) for m in re.findall(
        CLOSING + r" 127\.0\.0\.1:(\d+) ", text)]
    assert seen == ports[len(ports) - len(seen):]
    assert len(seen) >= 10


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1],
                         ids=["SIGHUP", "SIGUSR1"])
def test_signal_reopens_after_mv(make_broker, tmp_path, sig):
    # logrotate: mv, then the signal; the broker's line about it is the
    # first in the new file, the old lines stay in the moved one.
    name = signal.Signals(sig).name
    b, path = file_broker(make_broker, tmp_path)
    before = one_connection(b)
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % before)
    os.rename(path, path + ".1")
    b.send_signal(sig)
    first = wait_for(path, r".")
    assert re.search(r"\[info\] received %s: log file reopened$" % name,
                     first), first
    after = one_connection(b)
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % after)
    moved = read(path + ".1")
    assert "127.0.0.1:%d " % before in moved
    assert "127.0.0.1:%d " % after not in moved
    assert "received %s" % name not in moved
    assert "127.0.0.1:%d " % before not in read(path)
    assert b.proc.poll() is None


def test_mv_without_a_signal_gets_a_new_file(make_broker, tmp_path):
    # As RabbitMQ's file handler: each line first checks that the path is
    # still the open file, so a moved or deleted log is recreated.
    b, path = file_broker(make_broker, tmp_path)
    wait_for(path, r"listening on")
    os.rename(path, path + ".1")
    port = one_connection(b)
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % port)
    assert "127.0.0.1:%d " % port not in read(path + ".1")
    os.unlink(path)
    port = one_connection(b)
    wait_for(path, CLOSING + r" 127\.0\.0\.1:%d " % port)


def test_sighup_never_stops_the_broker(make_broker):
    b = make_broker()  # no log file: SIGHUP still only logs
    for i in range(3):
        n = len(b.stderr_lines())
        b.send_signal(signal.SIGHUP)
        assert b.wait_for_line(r"received SIGHUP", start=n)
    assert b.proc.poll() is None
    conn = b.pika()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"still here")
    _, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"still here"
    conn.close()


def test_connection_level_warning_hides_connection_lines(make_broker,
                                                         tmp_path):
    b, path = file_broker(make_broker, tmp_path,
                          **{"log.connection.level": "warning"})
    port = one_connection(b)
    refused_login(b)
    wait_for(path, r"\[warning\] .*login refused")
    text = read(path)
    assert CLOSING not in text
    assert "127.0.0.1:%d " % port not in text
    assert "authenticated" not in text
    # Other categories keep info.
    assert "listening on" in text


def run_warren(tmp_path, conf_text):
    conf = tmp_path / "bad.conf"
    conf.write_text(conf_text)
    binary = os.environ.get("WARREN_BIN") or os.path.join(
        REPO, "build", "server", "warren")
    return subprocess.run([binary, "--config", str(conf), "--listen",
                           "127.0.0.1:0", "--data-dir",
                           str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=10)


def test_unwritable_log_file_stops_startup(tmp_path):
    missing = str(tmp_path / "no-such-dir" / "warren.log")
    p = run_warren(tmp_path, "log.file = %s\n" % missing)
    assert p.returncode == 1
    assert p.stderr == ("warren: log.file: cannot open %s for appending: No "
                        "such file or directory (set log.file to a writable "
                        "file, or to false)\n" % missing)
    p = run_warren(tmp_path, "log.file = %s\n" % tmp_path)
    assert p.returncode == 1
    assert "warren: log.file: cannot open %s for appending: " % tmp_path \
        in p.stderr


def test_bad_log_values_name_the_key(tmp_path):
    p = run_warren(tmp_path, "log.file.formatter = xml\n")
    assert p.returncode == 1
    assert "log.file.formatter: \"xml\" is not a valid value (allowed: " \
        "plaintext, json)" in p.stderr
    p = run_warren(tmp_path, "log.connection.level = loud\n")
    assert p.returncode == 1
    assert "log.connection.level: \"loud\" is not a valid value" in p.stderr
    p = run_warren(tmp_path, "log.file.rotation.size = -1\n")
    assert p.returncode == 1
    assert "log.file.rotation.size:" in p.stderr
    p = run_warren(tmp_path, "log.file.rotation.date = weekly\n")
    assert p.returncode == 1
    assert "log.file.rotation.date: \"weekly\" is not a date spec" \
        in p.stderr
    p = run_warren(tmp_path, "log.file.rotation.compress = true\n")
    assert p.returncode == 1
    assert "log.file.rotation.compress: \"true\" is not a valid value " \
        "(allowed: false)" in p.stderr
