"""amqplib's own test suite against Warren.

amqplib (the Node.js client) ships its tests in its npm package up to
version 2.1.0 (node:test, with claire for property tests). They connect to
amqp://localhost on port 5672, so amqplib_suite.sh runs Warren and the
suite together in a private network namespace (`unshare -n`, root as in
CI, or `unshare -rn` for a user). The package is fetched once with npm
into $WARREN_CACHE_DIR (default: the temp dir).

Expected differences from RabbitMQ: one test asserts that the server's
`product` property is "RabbitMQ"; Warren says "Warren". Every other test
must pass and none may hang (amqplib's "find high watermark" test once did:
the broker closed the socket right after close-ok while the client was
still writing).
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

AMQPLIB = "2.1.0"
CLAIRE = "0.4.1"
HERE = os.path.dirname(os.path.abspath(__file__))
# Tests that check something only RabbitMQ is (name -> why).
ALLOWED_FAILURES = {
    "serverProperties": "asserts product == 'RabbitMQ'",
}

pytestmark = pytest.mark.warren_only


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          timeout=300, **kw)


def amqplib_package():
    """The unpacked amqplib package with its tests and dev dependency."""
    cache = os.environ.get("WARREN_CACHE_DIR") or tempfile.gettempdir()
    pkg = os.path.join(cache, "amqplib-%s" % AMQPLIB, "package")
    if os.path.exists(os.path.join(pkg, "node_modules", "claire")):
        return pkg
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.fail("node and npm are needed for amqplib's suite "
                    "(apt-get install nodejs npm)")
    top = os.path.dirname(pkg)
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(top)
    try:
        out = run(["npm", "pack", "--silent", "amqplib@%s" % AMQPLIB],
                  cwd=top)
        run(["tar", "xzf", out.stdout.strip().splitlines()[-1]], cwd=top)
        run(["npm", "install", "--no-save", "--no-audit", "--no-fund",
             "--ignore-scripts", "claire@%s" % CLAIRE], cwd=pkg)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(top, ignore_errors=True)
        pytest.fail("fetching amqplib@%s from npm failed (the npm registry "
                    "must be reachable): %s" % (AMQPLIB, e.stderr))
    return pkg


def test_amqplib_suite(tmp_path):
    pkg = amqplib_package()
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    proc = subprocess.run(
        unshare + [os.path.join(HERE, "amqplib_suite.sh"),
                   os.environ.get("WARREN_BIN", "warren"), pkg,
                   str(tmp_path)],
        capture_output=True, text=True, timeout=900)
    tap = proc.stdout
    log = os.path.join(tmp_path, "warren.log")
    assert proc.returncode == 0, proc.stderr + tap[-3000:]
    counts = dict(re.findall(r"^# (tests|pass|fail|cancelled) (\d+)$", tap,
                             re.M))
    failed = re.findall(r"^\s*not ok \d+ - (.*)$", tap, re.M)
    # A failing test also fails its suites ("Connect API", the file):
    # keep the leaves, the lines followed by a test's own YAML block.
    leaves = [n for n in failed
              if not re.search(r"^\s*not ok \d+ - %s\n\s*---\n\s*duration_ms:"
                               r"[^\n]*\n\s*type: 'suite'" % re.escape(n),
                               tap, re.M)
              and not n.startswith("/")]
    unexpected = [n for n in leaves if n not in ALLOWED_FAILURES]
    print("amqplib %s: %s" % (AMQPLIB, counts))
    assert int(counts.get("tests", 0)) >= 300, tap[-3000:]
    assert counts.get("cancelled") == "0", (failed, open(log).read()[-3000:])
    assert unexpected == [], (unexpected, tap[-5000:])
    assert int(counts["fail"]) <= len(ALLOWED_FAILURES) + 2  # + its suites
