"""The Debian package, end to end, without touching this machine.

1. `cpack -G DEB` packages the build tree under test into a temp dir.
2. dpkg installs it for real (`dpkg -i`) into a scratch root: --root=DIR
   makes DIR the install and DIR/var/lib/dpkg the database. That database
   starts as a copy of this machine's package status and file lists, so
   dpkg checks the package's Depends against what is installed here and
   its files against what installed packages own, with no --force-depends.
   The maintainer scripts run outside a chroot (the scratch root has no
   shell) with --force-script-chrootless: dpkg then sets DPKG_ROOT, and
   postinst creates the warren user in DIR/etc/passwd (useradd --prefix)
   and DIR/var/lib/warren. fakeroot lets dpkg chown as if it were root and
   keeps the ownership it faked in a state file for the checks below.
3. The checks: control fields, conffiles and maintainer scripts; every
   installed file; the binary runs; the config parses and keeps data in
   /var/lib/warren and logs to /var/log/warren; logrotate rotates with
   the packaged snippet; the unit passes `systemd-analyze verify`; the man
   pages render without warnings; warrenctl runs; the packaged broker,
   started with the packaged config (ports and data dir overridden),
   tells $NOTIFY_SOCKET READY=1 once it listens, answers the packaged
   warrenctl, serves the web UI, and says STOPPING=1 on SIGTERM;
   `cmake --install` into a DESTDIR puts the same files at the same paths; remove and purge take back
   what install put there. This machine's users, /etc/warren and dpkg
   database are compared before and after.

Run by ctest as pkg.deb (label pkg); the paths the build was configured
with come in through the environment (test/pkg/pkg.cmake).
"""

import gzip
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

E = os.environ
BUILD = E["WARREN_BUILD_DIR"]
VERSION = E["WARREN_VERSION"]
SBIN = E["WARREN_SBINDIR"]              # /usr/sbin
CONF = E["WARREN_CONF_FILE"]            # /etc/warren/warren.conf
MAN8 = E["WARREN_MANDIR"] + "/man8"     # /usr/share/man/man8
UNIT = E["WARREN_UNIT_DIR"] + "/warren.service"
DOC = E["WARREN_DOCDIR"]                # /usr/share/doc/warren
SYSTEMD = E["WARREN_HAVE_SYSTEMD"] in ("1", "ON", "TRUE")
CPACK = E.get("CPACK_COMMAND", "cpack")
DATA_DIR = "/var/lib/warren"
LOG_DIR = "/var/log/warren"
LOGROTATE = os.path.dirname(os.path.dirname(CONF)) + "/logrotate.d/warren"
LISTEN_RE = re.compile(r"listening on \S+:(\d+) \((amqp|http)\)")


def run(*cmd, check=True, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True,
                       timeout=300, **kw)
    if check:
        assert p.returncode == 0, (cmd, p.returncode, p.stdout, p.stderr)
    return p


def digest(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def host_state():
    """What an install that escaped the scratch root would change."""
    user = subprocess.run(["getent", "passwd", "warren"],
                          capture_output=True, text=True).stdout
    return {"user": user, "passwd": digest("/etc/passwd"),
            "group": digest("/etc/group"), "conf": digest(CONF),
            "unit": digest(UNIT), "binary": digest(SBIN + "/warren"),
            "dpkg": digest("/var/lib/dpkg/status")}


class Root:
    """The scratch root: DIR, its dpkg database, the fakeroot state."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.dir = os.path.join(tmp, "root")
        self.admin = os.path.join(self.dir, "var/lib/dpkg")
        self.state = os.path.join(tmp, "fakeroot.state")
        self.log = os.path.join(tmp, "dpkg.log")

    def path(self, p):
        return self.dir + p

    def prepare(self):
        """An empty system but for the package database (status and file
        lists) copied from this machine, and the user database files
        useradd --prefix edits (root only)."""
        info = os.path.join(self.admin, "info")
        for d in (info, os.path.join(self.admin, "updates"),
                  os.path.join(self.admin, "triggers"),
                  self.path("/etc")):
            os.makedirs(d, exist_ok=True)
        shutil.copy("/var/lib/dpkg/status", self.admin)
        open(os.path.join(self.admin, "available"), "w").close()
        for name in os.listdir("/var/lib/dpkg/info"):
            if name.endswith(".list"):
                shutil.copy(os.path.join("/var/lib/dpkg/info", name), info)
        for name, line in (("passwd", "root:x:0:0:root:/root:/bin/sh"),
                           ("group", "root:x:0:"),
                           ("shadow", "root:*:19000:0:99999:7:::"),
                           ("gshadow", "root:*::")):
            with open(self.path("/etc/" + name), "w") as f:
                f.write(line + "\n")

    def dpkg(self, *args, check=True):
        """dpkg on the scratch root, under fakeroot (state kept)."""
        saved = ["-i", self.state] if os.path.exists(self.state) else []
        return run("fakeroot", *saved, "-s", self.state, "--", "dpkg",
                   "--root=" + self.dir, "--force-script-chrootless",
                   "--log=" + self.log, *args, check=check)

    def stat(self, p):
        """(uid, gid, mode) as fakeroot recorded them."""
        out = run("fakeroot", "-i", self.state, "--", "stat", "-c",
                  "%u %g %a", self.path(p)).stdout.split()
        return int(out[0]), int(out[1]), out[2]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cpack"))
    run(CPACK, "-G", "DEB", "--config",
        os.path.join(BUILD, "CPackConfig.cmake"), "-B", out)
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    assert len(debs) == 1, debs
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert debs[0] == "warren_%s_%s.deb" % (VERSION, arch)
    return os.path.join(out, debs[0])


@pytest.fixture(scope="module")
def host_before():
    return host_state()


@pytest.fixture(scope="module")
def root(deb, host_before, tmp_path_factory):
    r = Root(str(tmp_path_factory.mktemp("scratch")))
    r.prepare()
    p = r.dpkg("-i", deb)
    assert "Setting up warren (%s)" % VERSION in p.stdout
    return r


# ---------------------------------------------------------------------------
# the package file
# ---------------------------------------------------------------------------


def test_control_fields(deb):
    f = run("dpkg-deb", "--field", deb).stdout
    fields = dict(re.findall(r"^(\S+): (.*)$", f, re.M))
    assert fields["Package"] == "warren"
    assert fields["Version"] == VERSION
    assert fields["Section"] == "net"
    depends = {d.split()[0] for d in fields["Depends"].split(", ")}
    want = {"python3", "passwd", "libc6", "libev4", "libjansson4",
            "libhttp-parser2.9", "libxxhash0", "libssl3", "libpcre2-8-0"}
    if SYSTEMD:
        want.add("libsystemd0")
    assert want <= depends, fields["Depends"]


def test_conffiles_and_maintainer_scripts(deb, tmp_path):
    run("dpkg-deb", "--control", deb, str(tmp_path))
    with open(tmp_path / "conffiles") as f:
        assert f.read().split() == [CONF, LOGROTATE]
    for script in ("postinst", "prerm", "postrm"):
        path = tmp_path / script
        assert os.access(path, os.X_OK), script
        run("sh", "-n", str(path))
    text = (tmp_path / "postinst").read_text()
    assert "useradd" in text and DATA_DIR in text and LOG_DIR in text


# ---------------------------------------------------------------------------
# installed into the scratch root
# ---------------------------------------------------------------------------


def test_installed_files(root):
    status = run("dpkg-query", "--admindir=" + root.admin, "-W",
                 "-f=${Status} ${Version}", "warren").stdout
    assert status == "install ok installed " + VERSION
    listed = run("dpkg", "--root=" + root.dir, "-L", "warren").stdout
    files = {p for p in listed.split("\n")
             if p and os.path.isfile(root.path(p))}
    assert files == {SBIN + "/warren", SBIN + "/warrenctl", CONF, UNIT,
                     LOGROTATE,
                     MAN8 + "/warren.8.gz", MAN8 + "/warrenctl.8.gz",
                     DOC + "/copyright"}
    assert os.access(root.path(SBIN + "/warren"), os.X_OK)
    assert os.access(root.path(SBIN + "/warrenctl"), os.X_OK)
    conffiles = run("dpkg-query", "--admindir=" + root.admin, "-W",
                    "-f=${Conffiles}", "warren").stdout.split()
    assert conffiles[0] == CONF and conffiles[2] == LOGROTATE


def test_cmake_install_puts_the_same_files_in_place(root, tmp_path):
    """`cmake --install` (DESTDIR=scratch) installs what the package
    holds, at the same paths: the package is made of these rules."""
    dest = str(tmp_path / "dest")
    run("cmake", "--install", BUILD, env=dict(E, DESTDIR=dest))
    got = {os.path.join(d, f)[len(dest):] for d, _, fs in os.walk(dest)
           for f in fs}
    listed = run("dpkg", "--root=" + root.dir, "-L", "warren").stdout
    packaged = {p for p in listed.split("\n")
                if p and os.path.isfile(root.path(p))}
    assert got == packaged
    assert os.access(dest + SBIN + "/warren", os.X_OK)
    assert os.access(dest + SBIN + "/warrenctl", os.X_OK)


def test_binary_runs(root):
    out = run(root.path(SBIN + "/warren"), "--version").stdout
    assert out == "warren %s\n" % VERSION


def test_config_keeps_data_in_var_lib_warren(root):
    conf = root.path(CONF)
    with open(conf) as f:
        text = f.read()
    assert re.findall(r"^data_dir = (.*)$", text, re.M) == [DATA_DIR]
    # The broker accepts the file and reads the data dir from it.
    out = run(root.path(SBIN + "/warren"), "--config", conf,
              "--print-config").stdout
    assert re.search(r"^data_dir = /var/lib/warren\b", out, re.M), out
    # The log goes to /var/log/warren (logrotate's), warnings and errors
    # also to the console (journald).
    assert re.findall(r"^log\.file = (.*)$", text, re.M) == [
        LOG_DIR + "/warren.log"]
    for line in ("log.file = /var/log/warren/warren.log",
                 "log.console = true", "log.console.level = warning"):
        assert re.search("^%s$" % re.escape(line), out, re.M), out


def test_logrotate_snippet(root, tmp_path):
    """logrotate accepts the packaged snippet and rotates with it: run for
    real on a copy that names a scratch directory and this user instead
    of /var/log/warren and warren (who does not exist here)."""
    with open(root.path(LOGROTATE)) as f:
        text = f.read()
    assert text.count(LOG_DIR + "/*.log {") == 1
    assert "\n    su warren warren\n" in text
    assert "systemctl kill --signal=USR1 --kill-who=main warren.service" \
        in text
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    (logs / "warren.log").write_text("a line\n")
    me = run("id", "-un").stdout.strip(), run("id", "-gn").stdout.strip()
    conf = tmp_path / "warren.logrotate"
    conf.write_text(text.replace(LOG_DIR, str(logs)).replace(
        "su warren warren", "su %s %s" % me))
    run("logrotate", "--force", "--state", str(tmp_path / "state"),
        str(conf))
    assert sorted(os.listdir(logs)) == ["warren.log.1"]  # nocreate


def test_systemd_unit(root, tmp_path):
    with open(root.path(UNIT)) as f:
        unit = f.read()
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert keys["Type"] == ("notify" if SYSTEMD else "exec")
    assert keys["User"] == "warren" and keys["Group"] == "warren"
    assert keys["LimitNOFILE"] == "65536"
    assert keys["StateDirectory"] == "warren"
    assert keys["LogsDirectory"] == "warren"
    assert keys["ExecStart"] == "%s/warren --config %s" % (SBIN, CONF)
    assert "ExecReload" not in keys  # SIGHUP would stop the broker
    # systemd's own check, on a copy of this machine's units plus ours
    # (it warns, and still exits 0, about keys or values it rejects).
    vr = str(tmp_path / "verify")
    shutil.copytree("/lib/systemd/system", vr + "/lib/systemd/system",
                    symlinks=True)
    shutil.copy(root.path(UNIT), vr + "/lib/systemd/system/")
    os.makedirs(vr + SBIN)
    shutil.copy(root.path(SBIN + "/warren"), vr + SBIN)
    p = run("systemd-analyze", "verify", "--man=no", "--root=" + vr,
            "warren.service", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_man_pages(root):
    for page, name in (("warren.8.gz", "warren"),
                       ("warrenctl.8.gz", "warrenctl")):
        path = root.path(MAN8 + "/" + page)
        with gzip.open(path, "rt") as f:
            assert f.read().startswith(".\\\"")
        p = run("man", "--warnings", "-E", "UTF-8", "-l", path,
                env=dict(E, MANWIDTH="80"))
        assert p.stderr == "", p.stderr
        text = re.sub(".\b", "", p.stdout)  # overstrike: bold, underline
        assert re.search(r"^NAME\n\s+%s - " % name, text, re.M), \
            text[:300]


def test_warrenctl_runs(root):
    out = run(root.path(SBIN + "/warrenctl"), "--help").stdout
    assert "list_queues" in out and "--password" in out


def test_postinst_made_the_user_and_data_dir(root):
    with open(root.path("/etc/passwd")) as f:
        users = {line.split(":")[0]: line.strip().split(":") for line in f}
    with open(root.path("/etc/group")) as f:
        groups = {line.split(":")[0]: line.strip().split(":") for line in f}
    w = users["warren"]
    assert w[5] == DATA_DIR and w[6] == "/usr/sbin/nologin"
    assert int(w[2]) < 1000  # a system user
    assert w[3] == groups["warren"][2]
    assert root.stat(DATA_DIR) == (int(w[2]), int(w[3]), "750")
    assert root.stat(LOG_DIR) == (int(w[2]), int(w[3]), "750")


def test_packaged_broker_notifies_systemd(root, tmp_path):
    """The packaged broker on the packaged config, overridden where a test
    must (ports, data dir, log file): READY=1 once listening, warrenctl
    gets an answer, STOPPING=1 on SIGTERM, exit 0. Info lines go to the
    log file only, not to the console."""
    conf = tmp_path / "warren.conf"
    with open(root.path(CONF)) as f:
        text = f.read()
    # The last value of a key wins.
    conf.write_text(text + "\nlisteners.tcp.local = 127.0.0.1:0\n"
                    "management.tcp.port = 0\n"
                    "prometheus.tcp.port = 0\n"
                    "data_dir = %s\nlog.file = %s\n"
                    % (tmp_path / "data", tmp_path / "file.log"))
    sock_path = str(tmp_path / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    console = open(tmp_path / "console.log", "w+")
    log = open(tmp_path / "file.log", "a+")
    proc = subprocess.Popen(
        [root.path(SBIN + "/warren"), "--config", str(conf)],
        stdin=subprocess.DEVNULL, stdout=console, stderr=console,
        env=dict(E, NOTIFY_SOCKET=sock_path))
    try:
        ports = wait_ports(proc, log)
        got = notifications(ns, 5.0 if SYSTEMD else 1.0)
        assert got == (["READY=1"] if SYSTEMD else []), got
        out = run(root.path(SBIN + "/warrenctl"), "-H", "127.0.0.1", "-P",
                  str(ports["http"]), "status").stdout
        assert "\nProduct name: Warren\n" in out
        assert "port: %d, protocol: amqp" % ports["amqp"] in out
        # the web UI comes with the binary (compiled in)
        with urllib.request.urlopen("http://127.0.0.1:%d/" % ports["http"],
                                    timeout=10) as r:
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert b'<script type="module" src="js/app.js">' in r.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        got = notifications(ns, 1.0)
        assert got == (["STOPPING=1"] if SYSTEMD else []), got
        console.seek(0)
        assert console.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ns.close()
        log.close()
        console.close()


def wait_ports(proc, log, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        ports = {m.group(2): int(m.group(1))
                 for m in LISTEN_RE.finditer(log.read())}
        if len(ports) == 2:
            return ports
        assert proc.poll() is None, "warren exited:\n" + log.read()
        time.sleep(0.05)
    log.seek(0)
    raise AssertionError("warren did not listen:\n" + log.read())


def notifications(sock, wait):
    """Datagrams that arrive within `wait` seconds."""
    got = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return got
        got.append(sock.recv(4096).decode())
        deadline = time.monotonic() + 0.2  # more coming together?


def test_remove_then_purge(root):
    root.dpkg("-r", "warren")
    for p in (SBIN + "/warren", SBIN + "/warrenctl", UNIT,
              MAN8 + "/warren.8.gz"):
        assert not os.path.exists(root.path(p)), p
    assert os.path.exists(root.path(CONF))  # a conffile stays until purge
    assert os.path.isdir(root.path(DATA_DIR))
    assert os.path.isdir(root.path(LOG_DIR))
    root.dpkg("--purge", "warren")
    assert not os.path.exists(root.path(CONF))
    assert not os.path.exists(root.path(DATA_DIR))
    assert not os.path.exists(root.path(LOG_DIR))
    p = run("dpkg-query", "--admindir=" + root.admin, "-W", "warren",
            check=False)
    assert p.returncode != 0 or p.stdout.strip() == "warren"


def test_this_machine_was_not_touched(root, host_before):
    assert host_state() == host_before
