"""Vhost names and their data directories (Warren only, regression tests
for issue 10 item 1).

Any valid vhost name (1 to 255 bytes of UTF-8, as an AMQP short string
allows) works through the management API, AMQP and a restart, and is
never read as a path: a vhost's log lives in <data_dir>/vhosts/<hex
SHA-256 of its name> with the name in a "vhost-name" file
(vhost/vhostdir.c). Before, "." mapped to vhosts/ itself and ".." to the
data directory, so deleting either removed every vhost's messages, and a
long name made the directory name too long (HTTP 500).

The old layout (percent-encoded names) is migrated at start, and a
migration cut short finishes at the next start.
"""

import os
import shutil
import subprocess

import pytest

import rawamqp
from test_20_mgmt_api import Mgmt, http_port, mgmt_broker
from wireutil import confirm_select, get_bodies, publish_sync, vhost_dir

pytestmark = pytest.mark.warren_only

PERSISTENT = {"delivery_mode": 2}
MAX_CJK = "\u754c" * 85  # 255 bytes of UTF-8


def pct(name):
    """Every byte percent-encoded: '.' and '..' must not be path
    segments on the way in either."""
    return "".join("%%%02X" % c for c in name.encode())


def amqp(b, vhost):
    c = rawamqp.connect("127.0.0.1", b.port, vhost=vhost)
    c.open_channel(1)
    return c


def put_message(b, vhost, body):
    c = amqp(b, vhost)
    c.call(1, "queue.declare", queue="q", durable=True)
    confirm_select(c, 1)
    publish_sync(c, 1, "", "q", body, props=PERSISTENT)
    c.close()


def hash_dirs(b):
    root = os.path.join(b.data_dir, "vhosts")
    return sorted(d for d in os.listdir(root)
                  if os.path.isdir(os.path.join(root, d)))


def name_file(b, vhost):
    with open(os.path.join(vhost_dir(b.data_dir, vhost), "vhost-name"),
              "rb") as f:
        return f.read().decode()


def create_all_restart_check(make_broker, names, delete=()):
    """Creates every vhost of names with one persistent message, deletes
    those in delete, restarts, and checks that exactly the others and
    their messages came back, each in its own hashed directory."""
    b, api = mgmt_broker(make_broker)
    for name in names:
        r = api.put("/api/vhosts/" + pct(name))
        assert r.status == (204 if name == "/" else 201), (name, r)
        put_message(b, name, name.encode())
    for name in delete:
        assert api.delete("/api/vhosts/" + pct(name)).status == 204
    kept = [n for n in names if n not in delete]
    expect = sorted(os.path.basename(vhost_dir(b.data_dir, n))
                    for n in kept)
    assert hash_dirs(b) == expect
    b.restart()
    api = Mgmt(http_port(b))
    for name in delete:
        assert api.get("/api/vhosts/" + pct(name)).status == 404
    for name in kept:
        assert api.get("/api/vhosts/" + pct(name)).status == 200, name
        c = amqp(b, name)
        assert get_bodies(c, 1, "q") == [name.encode()], name
        c.close()
        assert name_file(b, name) == name
    assert os.path.exists(os.path.join(b.data_dir, "definitions.json"))


def test_deleting_dot_vhosts_keeps_every_other_vhost(make_broker):
    create_all_restart_check(make_broker, ["/", ".", "..", "a/b", "keep"],
                             delete=[".", ".."])


def test_long_names_up_to_the_limit(make_broker):
    create_all_restart_check(make_broker, ["/", "\u4e2d" * 29, "!" * 100,
                                           "v" * 255, MAX_CJK])


def test_invalid_names_are_refused(make_broker):
    b, api = mgmt_broker(make_broker)
    for raw in ("v" * 256, "%FF", "a%C3"):
        r = api.put("/api/vhosts/" + raw)
        assert r.status == 400, (raw, r)
    assert len(hash_dirs(b)) == 1  # "/" only


def stop_and_relayout(b, moves):
    """Stops b, then applies moves: (vhost, old directory name under
    vhosts/) to recreate the layout of Warren before hashed names (no
    name file, no manifest)."""
    b.stop()
    root = os.path.join(b.data_dir, "vhosts")
    for vhost, old in moves:
        new = vhost_dir(b.data_dir, vhost)
        for f in os.listdir(new):
            if f == "vhost-name" or f.startswith("MANIFEST"):
                os.unlink(os.path.join(new, f))
        os.rename(new, os.path.join(root, old))


def test_old_layout_is_migrated(make_broker):
    b, api = mgmt_broker(make_broker)
    assert api.put("/api/vhosts/old.one").status == 201
    put_message(b, "/", b"root")
    put_message(b, "old.one", b"dotted")
    stop_and_relayout(b, [("/", "%2F"), ("old.one", "old.one")])
    # A migration cut short: the name file is already in the old place.
    with open(os.path.join(b.data_dir, "vhosts", "%2F", "vhost-name"),
              "w") as f:
        f.write("/")
    b.start()
    assert b.wait_for_line("moved its data directory")
    for vhost, body in (("/", b"root"), ("old.one", b"dotted")):
        c = amqp(b, vhost)
        assert get_bodies(c, 1, "q") == [body]
        c.close()
        assert name_file(b, vhost) == vhost
    assert not os.path.exists(os.path.join(b.data_dir, "vhosts", "%2F"))
    assert not os.path.exists(os.path.join(b.data_dir, "vhosts", "old.one"))


def test_old_layout_of_dot_vhosts_is_migrated(make_broker):
    """The old layout kept vhost "." in vhosts/ itself and ".." in the
    data directory: their segment files are moved one by one, and a move
    cut short finishes at the next start."""
    b, api = mgmt_broker(make_broker, {"store.segment_size": "1MiB"})
    for name in (".", ".."):
        assert api.put("/api/vhosts/" + pct(name)).status == 201
        c = amqp(b, name)
        c.call(1, "queue.declare", queue="q", durable=True)
        confirm_select(c, 1)
        for i in range(10):  # several segments
            publish_sync(c, 1, "", "q", b"%s-%d" % (name.encode(), i) +
                         b"x" * 300000, props=PERSISTENT)
        c.close()
    b.stop()
    olds = {".": os.path.join(b.data_dir, "vhosts"), "..": b.data_dir}
    for name, old in olds.items():
        new = vhost_dir(b.data_dir, name)
        segs = sorted(f for f in os.listdir(new) if f.endswith(".seg"))
        assert len(segs) > 2, segs
        # "." is cut short after moving half its files back; ".." has
        # its whole old layout.
        keep = segs[len(segs) // 2:] if name == "." else []
        for f in segs:
            if f not in keep:
                os.rename(os.path.join(new, f), os.path.join(old, f))
        if not keep:
            shutil.rmtree(new)
        else:
            for f in os.listdir(new):
                if f.startswith("MANIFEST"):
                    os.unlink(os.path.join(new, f))
    b.start()
    for name in (".", ".."):
        c = amqp(b, name)
        bodies = get_bodies(c, 1, "q")
        assert [x.split(b"x")[0] for x in bodies] == \
            [b"%s-%d" % (name.encode(), i) for i in range(10)], name
        c.close()
    assert not [f for f in os.listdir(olds["."]) if f.endswith(".seg")]
    assert not [f for f in os.listdir(olds[".."]) if f.endswith(".seg")]


def test_a_directory_of_another_vhost_refuses_start(make_broker):
    b = make_broker()
    put_message(b, "/", b"mine")
    b.stop()
    with open(os.path.join(vhost_dir(b.data_dir, "/"), "vhost-name"),
              "w") as f:
        f.write("someone-else")
    r = subprocess.run([os.environ.get("WARREN_BIN"), "--config",
                        b.config_path, "--data-dir", b.data_dir, "--listen",
                        "127.0.0.1:0"], capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    assert r.returncode != 0, err
    assert "belongs to vhost 'someone-else'" in err, err
