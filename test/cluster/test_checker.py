"""faults.checker: the total-queue checker's arithmetic on synthetic
histories (no root, no broker): lost, unexpected, duplicates, recovered
(unknown, then delivered), nacks, returns, late confirms, deliveries never
acked, availability figures and torn history files."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jepsen  # noqa: E402


def ev(t, type_, id_=None, **kw):
    e = {"t": t, "type": type_, "c": kw.pop("c", "x")}
    if id_ is not None:
        e["id"] = id_
    e.update(kw)
    return e


def pub(t, i, outcome="confirm", dt=0.01):
    """A publish of i at t and its outcome dt later (None: no outcome)."""
    out = [ev(t, "publish", i, q="q0")]
    if outcome:
        out.append(ev(t + dt, outcome, i))
    return out


def consumed(t, i, redelivered=False):
    return [ev(t, "deliver", i, q="q0", redelivered=redelivered),
            ev(t + 0.001, "ack", i)]


def test_clean_history_is_valid():
    h = pub(1, "a") + pub(2, "b") + consumed(3, "a") + consumed(4, "b")
    r = jepsen.check(h)
    assert r["valid"]
    assert (r["attempted"], r["confirmed"], r["consumed"]) == (2, 2, 2)
    assert (r["lost"], r["unexpected"], r["duplicates"], r["recovered"],
            r["unknown"]) == (0, 0, 0, 0, 0)


def test_confirmed_never_delivered_is_lost():
    h = pub(1, "a") + pub(1.5, "b") + pub(2, "c") + consumed(3, "a")
    r = jepsen.check(h)
    assert not r["valid"]
    assert r["lost"] == 2 and r["lost_ids"] == ["b", "c"]
    assert r["lost_but_seen"] == 0


def test_delivered_but_never_acked_and_never_back_is_lost():
    h = pub(1, "a") + [ev(2, "deliver", "a", q="q0")]
    r = jepsen.check(h)
    assert r["lost"] == 1 and r["lost_but_seen"] == 1
    assert r["delivered"] == 1 and r["consumed"] == 0


def test_delivered_never_published_is_unexpected():
    h = pub(1, "a") + consumed(2, "a") + consumed(3, "ghost") + \
        consumed(4, "ghost")
    r = jepsen.check(h)
    assert not r["valid"]
    assert r["unexpected"] == 1 and r["unexpected_ids"] == ["ghost"]
    assert r["unexpected_deliveries"] == 2
    assert r["lost"] == 0


def test_duplicates_and_reappearance_after_ack():
    # a: delivered, acked, delivered again (the ack was lost in a crash)
    # b: delivered without ack (connection dropped), redelivered, acked
    h = pub(1, "a") + pub(1, "b") + consumed(2, "a") + \
        [ev(2.5, "deliver", "b", q="q0")] + \
        consumed(3, "a", redelivered=True) + consumed(3.5, "b", True)
    r = jepsen.check(h)
    assert r["valid"]
    assert r["duplicates"] == 2 and r["duplicated_ids"] == 2
    assert r["deliveries"] == 4 and r["delivered"] == 2
    assert r["reappeared_after_ack"] == 1   # only a was acked before


def test_unknown_then_delivered_is_recovered_not_lost():
    h = pub(1, "a", "unknown") + pub(1, "b", "unknown") + \
        pub(1, "c", None) + consumed(2, "a") + consumed(2, "c")
    r = jepsen.check(h)
    assert r["valid"]
    assert r["unknown"] == 3      # two timed out, one never answered
    assert r["recovered"] == 2    # a and c came out
    assert r["lost"] == 0 and r["confirmed"] == 0


def test_late_confirm_counts_as_confirmed():
    h = pub(1, "a", "unknown") + [ev(7, "confirm", "a", late=True)]
    r = jepsen.check(h)
    assert r["confirmed"] == 1 and r["lost"] == 1 and r["unknown"] == 0


def test_nacked_and_returned():
    # A nack promises nothing: delivered or not, never lost, never
    # unexpected. A returned message (unroutable) is not enqueued even
    # though its confirm follows.
    h = pub(1, "n1", "nack") + pub(1, "n2", "nack") + pub(1, "r", None) + \
        [ev(1.01, "returned", "r"), ev(1.02, "confirm", "r")] + \
        consumed(2, "n1")
    r = jepsen.check(h)
    assert r["valid"]
    assert (r["nacked"], r["nacked_delivered"], r["returned"]) == (2, 1, 1)
    assert r["confirmed"] == 0 and r["lost"] == 0 and r["recovered"] == 0


def test_everything_together():
    h = []
    for i in range(100):
        h += pub(i * 0.1, "m%d" % i)
    for i in range(100, 110):
        h += pub(10 + i * 0.01, "m%d" % i, "unknown")
    for i in range(0, 95):                      # m95..m99 lost
        h += consumed(20 + i * 0.01, "m%d" % i)
    for i in range(100, 104):                   # 4 recovered
        h += consumed(22, "m%d" % i)
    for i in range(0, 7):                       # 7 duplicates
        h += consumed(23, "m%d" % i, True)
    h += consumed(24, "x1") + consumed(24, "x2")  # 2 unexpected
    r = jepsen.check(h)
    assert (r["attempted"], r["confirmed"], r["unknown"]) == (110, 100, 10)
    assert (r["lost"], r["unexpected"], r["duplicates"],
            r["recovered"]) == (5, 2, 7, 4)
    assert r["lost_ids"] == ["m95", "m96", "m97", "m98", "m99"]
    assert not r["valid"]
    line = jepsen.summary(r)
    assert "lost 5 unexpected 2 duplicates 7" in line and "recovered 4" in line


def test_percentiles_nearest_rank():
    xs = list(range(1, 101))
    assert jepsen.percentile(xs, 50) == 50
    assert jepsen.percentile(xs, 99) == 99
    assert jepsen.percentile(xs, 100) == 100
    assert jepsen.percentile([3.0], 99) == 3.0
    assert jepsen.percentile([], 50) is None


def test_availability_gaps_and_fault_recovery():
    # confirms at 1, 2, 4, 4.5, 9; a fault at 4.2 and one at 5.0, a heal
    # at 8. A confirm of a message published before a fault does not count
    # as recovery from it.
    h = pub(0.9, "a", dt=0.1) + pub(1.9, "b", dt=0.1) + \
        pub(3.9, "c", dt=0.1) + pub(4.0, "d", dt=0.5) + pub(8.5, "e", dt=0.5)
    h += [ev(4.2, "fault", what="kill"), ev(5.0, "fault", what="kill"),
          ev(8.0, "heal", what="restart")]
    r = jepsen.check(h)
    g = r["confirm_gap"]
    assert g["n"] == 4 and g["max"] == 4.5 and g["p50"] == 1.0
    f = r["fault_to_confirm"]
    assert f["n"] == 2 and f["never"] == 0
    assert abs(f["max"] - 4.8) < 1e-9 and abs(f["p50"] - 4.0) < 1e-9
    assert abs(r["heal_to_confirm"]["max"] - 1.0) < 1e-9
    # No confirm after a fault at all: "never".
    r = jepsen.check(pub(1, "a") + [ev(2, "fault", what="kill")])
    assert r["fault_to_confirm"]["never"] == 1


def test_acked_before_fault_reappearing():
    h = pub(0, "a") + pub(0, "b") + consumed(1, "a") + consumed(4.9, "b") + \
        consumed(6, "a", True) + consumed(6, "b", True)
    assert jepsen.acked_before_delivered_after(h, 5.0) == ["a", "b"]
    # acks within the margin before the fault may be in flight
    assert jepsen.acked_before_delivered_after(h, 5.0, margin=0.5) == ["a"]


def test_history_files_torn_line_and_merge(tmp_path):
    p1 = tmp_path / "p1.jsonl"
    c1 = tmp_path / "c1.jsonl"
    p1.write_text("".join(json.dumps(e) + "\n" for e in pub(1, "a")) +
                  '{"t": 3, "type": "publ')   # killed mid-line
    c1.write_text("".join(json.dumps(e) + "\n" for e in consumed(2, "a")))
    evs, off = jepsen.read_history(str(p1))
    assert len(evs) == 2 and off < p1.stat().st_size
    # the rest of the line arrives later
    with open(p1, "a") as f:
        f.write('ish", "id": "b"}\n')
    more, off2 = jepsen.read_history(str(p1), off)
    assert [e["id"] for e in more] == ["b"] and off2 == p1.stat().st_size
    r = jepsen.check(jepsen.load([str(p1), str(c1)]))
    assert r["attempted"] == 2 and r["consumed"] == 1 and r["unknown"] == 1


def test_check_cli(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text("".join(json.dumps(e) + "\n"
                         for e in pub(1, "a") + consumed(2, "a")))
    import subprocess
    r = subprocess.run([sys.executable, jepsen.__file__, "check", str(p)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "lost 0 unexpected 0" in r.stdout
    p.write_text("".join(json.dumps(e) + "\n" for e in pub(1, "a")))
    r = subprocess.run([sys.executable, jepsen.__file__, "check", str(p)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "lost 1" in r.stdout


def test_two_confirming_leaders():
    import faults

    class N:
        def __init__(self, name, amqp):
            self.name, self.amqp = name, amqp

    class FakeEnv:  # only the node names and addresses matter here
        nodes = [N("n1", "10.0.0.1:5672"), N("n2", "10.0.0.2:5672"),
                 N("n3", "10.0.0.3:5672")]
        node_named = faults.Env.node_named

    env = FakeEnv()
    h = [ev(0, "connect", c="p1", node="10.0.0.1:5672", conn=1),
         ev(0, "connect", c="p2", node="10.0.0.2:5672", conn=1),
         ev(0, "connect", c="p3", node="10.0.0.3:5672", conn=1),
         # n1 and n2 both claim leadership at t=5 (n3 follows n2)
         ev(5, "leaders", views={"n1": "n1", "n2": "n2@h2", "n3": "n2"}),
         ev(10, "leaders", views={"n1": "n2", "n2": "n2", "n3": "n2"}),
         ev(10.2, "confirm", "a", c="p2", conn=1),
         ev(10.3, "confirm", "b", c="p3", conn=1)]
    # Dual claims, but only n1's connection confirmed near t=5: fine.
    ok = h + [ev(5.5, "confirm", "x", c="p1", conn=1)]
    assert faults.confirming_leaders(ok, env) == []
    # Both claimants confirmed within 1 s of the dual claim: split brain.
    bad = ok + [ev(4.5, "confirm", "y", c="p2", conn=1)]
    assert faults.confirming_leaders(bad, env) == [
        {"t": 5, "leaders": ["n1", "n2"],
         "confirms": {"n1": "1 confirms +0.500..+0.500s",
                      "n2": "1 confirms -0.500..-0.500s"}}]
    # Confirms through a non-claiming relay (n3) are not attributed.
    relay = ok + [ev(4.5, "confirm", "z", c="p3", conn=1)]
    assert faults.confirming_leaders(relay, env) == []
