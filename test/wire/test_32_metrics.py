"""Prometheus metrics (issue 15, item 3): /metrics, /metrics/per-object and
/metrics/detailed with rabbitmq_prometheus's names and labels, on the
management port and on the Prometheus listener (prometheus.tcp.port);
channel and exchange message_stats, connection octet rates and the
overview's new counters in the management API; a scrape of 100,000 queues.

The metric names, label names, families and help texts were taken from
RabbitMQ 3.10.8 with rabbitmq_prometheus (per-object and detailed pages
scraped after the same publishes and gets). Debian's promtool (package
`prometheus`, 96 MB installed with its web UI) is not installed for this:
parse_exposition() below is a strict parser of the text format that
checks what `promtool check metrics` checks and more (HELP and TYPE once
and before the samples, a family's samples together, no duplicate series,
counters named *_total, label escapes, histogram buckets).
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pika
import pytest

import conftest
import rawamqp
from test_20_mgmt_api import Mgmt, http_port

pytestmark = pytest.mark.warren_only

PROM_RE = r"listening on (\S+):(\d+) \(prometheus\)"
SANITIZED = os.environ.get("WARREN_SANITIZED") == "1"


def prom_port(b):
    line = b.wait_for_line(PROM_RE, timeout=10)
    assert line, "no 'listening on ... (prometheus)' line:\n" + \
        b.stderr_text()
    return int(re.search(PROM_RE, line).group(2))


def scrape(port, path, method="GET"):
    """(status, headers, body text) of an anonymous request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return (r.status, {k.lower(): v for k, v in r.getheaders()},
                    r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, \
            e.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# a strict parser of the text exposition format (version 0.0.4)
# ---------------------------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []  # (sample name, {label: value}, float)

    def value(self, **labels):
        """The value of the one sample with exactly these labels."""
        got = [v for n, lab, v in self.samples
               if n == self.name and lab == labels]
        assert len(got) == 1, (self.name, labels, self.samples[:5])
        return got[0]


def parse_labels(line, i):
    """{name="value",...} starting at line[i] == '{'; (labels, next i)."""
    labels = {}
    i += 1
    while True:
        if line[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(line, i)
        assert m, "bad label name at %d: %r" % (i, line)
        name = m.group(0)
        i = m.end()
        assert line[i:i + 2] == '="', "expected =\" at %d: %r" % (i, line)
        i += 2
        out = []
        while True:
            c = line[i]
            if c == "\\":
                nxt = line[i + 1]
                assert nxt in '\\"n', "bad escape \\%s in %r" % (nxt, line)
                out.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                out.append(c)
                i += 1
        assert name not in labels, "label %s twice: %r" % (name, line)
        labels[name] = "".join(out)
        if line[i] == ",":
            i += 1
        else:
            assert line[i] == "}", "expected , or } at %d: %r" % (i, line)


def parse_value(s, line):
    if s in ("NaN", "+Inf", "-Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    assert FLOAT.match(s), "bad value %r in %r" % (s, line)
    return float(s)


def family_of(name, families):
    """The family a sample name belongs to (histogram/summary suffixes)."""
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and base in families and \
                families[base].type in ("histogram", "summary"):
            return base
    return None


def parse_exposition(text):
    """Parses a whole page; fails on anything promtool would reject, and
    on what Warren promises beyond it (TYPE and HELP on every family,
    counters named *_total). Returns {family name: Family}."""
    assert text.endswith("\n"), "the page must end with a newline"
    families = {}
    order = []
    series = set()
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue  # a plain comment
            kind, name = parts[1], parts[2]
            assert METRIC_NAME.match(name), "bad metric name %r" % name
            f = families.get(name)
            if f is None:
                f = families[name] = Family(name)
                order.append(name)
            else:
                assert order[-1] == name, "%s's lines are split" % name
            assert not f.samples, "%s after samples: %r" % (kind, line)
            if kind == "TYPE":
                assert f.type is None, "TYPE twice for " + name
                assert len(parts) == 4 and parts[3] in TYPES, line
                f.type = parts[3]
            else:
                assert f.help is None, "HELP twice for " + name
                text_ = parts[3] if len(parts) == 4 else ""
                assert not re.search(r"\\[^\\n]", text_), line
                f.help = text_
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        assert m, "bad sample line %r" % line
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i)
        assert line[i] == " ", "expected a space at %d: %r" % (i, line)
        rest = line[i + 1:].split(" ")
        assert 1 <= len(rest) <= 2, line
        value = parse_value(rest[0], line)
        if len(rest) == 2:
            assert re.match(r"-?\d+\Z", rest[1]), "bad timestamp " + line
        fam = family_of(name, families)
        assert fam is not None, "sample before its TYPE: %r" % line
        assert order[-1] == fam, "%s's samples are split" % fam
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, "duplicate series %r" % (key,)
        series.add(key)
        families[fam].samples.append((name, labels, value))
    for f in families.values():
        assert f.type is not None and f.help is not None, f.name
        if f.type == "counter":
            assert f.name.endswith("_total"), "counter %s" % f.name
        if f.type == "histogram":
            check_histogram(f)
    return families


def check_histogram(f):
    buckets = [(lab["le"], v) for n, lab, v in f.samples
               if n == f.name + "_bucket"]
    assert buckets and buckets[-1][0] == "+Inf", f.name
    les = [float(le.replace("+Inf", "inf")) for le, _ in buckets]
    assert les == sorted(les), f.name
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets not cumulative: " + f.name
    count = [v for n, _, v in f.samples if n == f.name + "_count"]
    assert count == [counts[-1]], f.name


# ---------------------------------------------------------------------------
# RabbitMQ's names
# ---------------------------------------------------------------------------

# Every rabbitmq_* metric Warren exposes on /metrics and /metrics/per-object,
# all of them names of RabbitMQ 3.10.8's rabbitmq_prometheus (checked
# against its /metrics, /metrics/per-object and /metrics/detailed pages),
# with the label names RabbitMQ gives their samples on the per-object page.
# Where Warren's labels differ from RabbitMQ's, the comment says how.
QUEUE = ("vhost", "queue")
CHANNEL = ("channel",)
CHANNEL_VHOST = ("channel", "vhost")  # RabbitMQ: + exchange / queue
CONNECTION = ("channel",)  # sic: RabbitMQ labels connections `channel`
NODE = ()
AMQP = ("protocol",)
CLASSIC = ("protocol", "queue_type")
RABBITMQ_NAMES = {
    # connection_churn_metrics
    "rabbitmq_connections_opened_total": NODE,
    "rabbitmq_connections_closed_total": NODE,
    "rabbitmq_channels_opened_total": NODE,
    "rabbitmq_channels_closed_total": NODE,
    "rabbitmq_queues_declared_total": NODE,
    "rabbitmq_queues_created_total": NODE,
    "rabbitmq_queues_deleted_total": NODE,
    # node_coarse_metrics, node_metrics: the process
    "rabbitmq_process_open_fds": NODE,
    "rabbitmq_process_open_tcp_sockets": NODE,
    "rabbitmq_process_resident_memory_bytes": NODE,
    "rabbitmq_disk_space_available_bytes": NODE,
    "rabbitmq_process_max_fds": NODE,
    "rabbitmq_process_max_tcp_sockets": NODE,
    "rabbitmq_resident_memory_limit_bytes": NODE,
    "rabbitmq_disk_space_available_limit_bytes": NODE,
    "rabbitmq_erlang_uptime_seconds": NODE,
    "rabbitmq_alarms_memory_used_watermark": NODE,
    "rabbitmq_alarms_free_disk_space_watermark": NODE,
    # queue_coarse_metrics, queue_metrics
    "rabbitmq_queue_messages_ready": QUEUE,
    "rabbitmq_queue_messages_unacked": QUEUE,
    "rabbitmq_queue_messages": QUEUE,
    "rabbitmq_queue_consumers": QUEUE,
    "rabbitmq_queue_process_memory_bytes": QUEUE,
    "rabbitmq_queue_messages_ram": QUEUE,
    "rabbitmq_queue_messages_ram_bytes": QUEUE,
    "rabbitmq_queue_messages_ready_ram": QUEUE,
    "rabbitmq_queue_messages_unacked_ram": QUEUE,
    "rabbitmq_queue_messages_ready_bytes": QUEUE,
    "rabbitmq_queue_messages_paged_out": QUEUE,
    # channel_queue_exchange_metrics; RabbitMQ: channel, queue_vhost,
    # queue, exchange_vhost, exchange (Warren counts per queue)
    "rabbitmq_queue_messages_published_total": QUEUE,
    # channel_metrics
    "rabbitmq_channel_consumers": CHANNEL_VHOST,
    "rabbitmq_channel_messages_unacked": CHANNEL_VHOST,
    "rabbitmq_channel_messages_unconfirmed": CHANNEL_VHOST,
    "rabbitmq_channel_messages_uncommitted": CHANNEL_VHOST,
    "rabbitmq_channel_acks_uncommitted": CHANNEL_VHOST,
    "rabbitmq_consumer_prefetch": CHANNEL_VHOST,
    "rabbitmq_channel_prefetch": CHANNEL_VHOST,
    # channel_exchange_metrics (RabbitMQ: + exchange)
    "rabbitmq_channel_messages_published_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_confirmed_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_unroutable_returned_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_unroutable_dropped_total": CHANNEL_VHOST,
    # channel_queue_metrics (RabbitMQ: + queue)
    "rabbitmq_channel_get_ack_total": CHANNEL_VHOST,
    "rabbitmq_channel_get_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_delivered_ack_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_delivered_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_redelivered_total": CHANNEL_VHOST,
    "rabbitmq_channel_messages_acked_total": CHANNEL_VHOST,
    "rabbitmq_channel_get_empty_total": CHANNEL_VHOST,
    # connection_coarse_metrics, connection_metrics
    "rabbitmq_connection_incoming_bytes_total": CONNECTION,
    "rabbitmq_connection_outgoing_bytes_total": CONNECTION,
    "rabbitmq_connection_incoming_packets_total": CONNECTION,
    "rabbitmq_connection_outgoing_packets_total": CONNECTION,
    "rabbitmq_connection_pending_packets": CONNECTION,
    "rabbitmq_connection_channels": CONNECTION,
    # exchange_names, vhost_status (cluster-wide, never _detailed_)
    "rabbitmq_cluster_exchange_name": ("vhost", "exchange", "type"),
    "rabbitmq_cluster_vhost_status": ("vhost",),
    # the default page's totals
    "rabbitmq_connections": NODE,
    "rabbitmq_channels": NODE,
    "rabbitmq_consumers": NODE,
    "rabbitmq_queues": NODE,
    "rabbitmq_global_consumers": AMQP,
    "rabbitmq_global_messages_received_total": AMQP,
    "rabbitmq_global_messages_routed_total": AMQP,
    "rabbitmq_global_messages_confirmed_total": AMQP,
    "rabbitmq_global_messages_unroutable_returned_total": AMQP,
    "rabbitmq_global_messages_unroutable_dropped_total": AMQP,
    "rabbitmq_global_messages_delivered_total": CLASSIC,
    "rabbitmq_global_messages_delivered_consume_manual_ack_total": CLASSIC,
    "rabbitmq_global_messages_delivered_consume_auto_ack_total": CLASSIC,
    "rabbitmq_global_messages_delivered_get_manual_ack_total": CLASSIC,
    "rabbitmq_global_messages_delivered_get_auto_ack_total": CLASSIC,
    "rabbitmq_global_messages_get_empty_total": CLASSIC,
    "rabbitmq_global_messages_redelivered_total": CLASSIC,
    "rabbitmq_global_messages_acknowledged_total": CLASSIC,
    "rabbitmq_build_info": ("rabbitmq_version", "prometheus_plugin_version",
                            "product", "product_version"),
    "rabbitmq_identity_info": ("rabbitmq_node", "rabbitmq_cluster"),
}

# Warren's own metrics: what RabbitMQ 3.10 does not have.
WARREN_NAMES = {
    "warren_queue_messages_delivered_total": QUEUE,
    "warren_queue_messages_acked_total": QUEUE,
    "warren_queue_messages_redelivered_total": QUEUE,
    "warren_exchange_messages_published_in_total": ("vhost", "exchange",
                                                    "type"),
    "warren_exchange_messages_published_out_total": ("vhost", "exchange",
                                                     "type"),
    "warren_exchanges": NODE,
    "warren_loop_busy_seconds": ("le",),
}

# RabbitMQ 3.10.8's /metrics/detailed families, with the metrics Warren
# has of each (names as RabbitMQ prints them on that page).
DETAILED = {
    "queue_coarse_metrics": [
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_messages"],
    "queue_consumer_count": ["rabbitmq_detailed_queue_consumers"],
    "connection_churn_metrics": [
        "rabbitmq_detailed_connections_opened_total",
        "rabbitmq_detailed_connections_closed_total",
        "rabbitmq_detailed_channels_opened_total",
        "rabbitmq_detailed_channels_closed_total",
        "rabbitmq_detailed_queues_declared_total",
        "rabbitmq_detailed_queues_created_total",
        "rabbitmq_detailed_queues_deleted_total"],
    "vhost_status": ["rabbitmq_cluster_vhost_status"],
    "exchange_names": ["rabbitmq_cluster_exchange_name"],
}
IDENTITY = {"rabbitmq_build_info", "rabbitmq_identity_info"}


def labels_of(families, name):
    """The label names of a family's samples (one set for all)."""
    sets = {tuple(sorted(lab)) for n, lab, _ in families[name].samples
            if n == name or name == "warren_loop_busy_seconds"}
    sets.discard(())  # histogram _sum and _count
    assert len(sets) <= 1, (name, sets)
    return sets.pop() if sets else ()


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture
def prom(make_broker):
    """A private Warren: (broker, Prometheus port, Mgmt for guest)."""
    b = make_broker()
    return b, prom_port(b), Mgmt(http_port(b))


HOSTILE = ['q"uote', "back\\slash", "new\nline", 'all"\\\n"', "caf\u00e9"]


def traffic(b):
    """Queues with hostile names and known counts, on one channel: 3
    confirmed publishes to 'plain', one basic.get in ack mode (left
    unacked), one get on an empty queue, one unroutable mandatory and one
    unroutable plain publish. Returns the open pika connection."""
    conn = b.pika()
    ch = conn.channel()
    ch.confirm_delivery()
    for name in HOSTILE + ["plain", "empty"]:
        ch.queue_declare(name)
    for i in range(3):
        ch.basic_publish("", "plain", b"m%d" % i)
    ch.basic_publish("", HOSTILE[0], b"x")
    try:
        ch.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    except pika.exceptions.UnroutableError:
        pass
    ch.basic_publish("amq.direct", "nowhere", b"d")
    method, _, _ = ch.basic_get("plain")
    assert method.delivery_tag == 1
    method, _, _ = ch.basic_get("empty")
    assert method is None
    return conn, ch


# ---------------------------------------------------------------------------
# the pages
# ---------------------------------------------------------------------------


def test_per_object_page_counts_every_object(prom):
    b, port, _ = prom
    conn, ch = traffic(b)
    try:
        status, hdrs, text = scrape(port, "/metrics/per-object")
        assert status == 200
        assert hdrs["content-type"] == \
            "text/plain; version=0.0.4; charset=utf-8"
        f = parse_exposition(text)
        q = dict(vhost="/", queue="plain")
        assert f["rabbitmq_queue_messages_ready"].value(**q) == 2
        assert f["rabbitmq_queue_messages_unacked"].value(**q) == 1
        assert f["rabbitmq_queue_messages"].value(**q) == 3
        assert f["rabbitmq_queue_consumers"].value(**q) == 0
        assert f["rabbitmq_queue_messages_published_total"].value(**q) == 3
        assert f["warren_queue_messages_delivered_total"].value(**q) == 1
        assert f["rabbitmq_queue_messages_ready_bytes"].value(**q) == 4
        # hostile names come back exactly through the escapes
        for name in HOSTILE:
            want = 1 if name == HOSTILE[0] else 0
            assert f["rabbitmq_queue_messages_ready"].value(
                vhost="/", queue=name) == want
        # the channel: one of them, labelled with its name
        chans = [lab["channel"] for n, lab, v in
                 f["rabbitmq_channel_messages_published_total"].samples]
        assert len(chans) == 1 and re.match(
            r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(1\)\Z", chans[0])
        c = dict(channel=chans[0], vhost="/")
        assert f["rabbitmq_channel_messages_published_total"].value(**c) == 6
        assert f["rabbitmq_channel_messages_confirmed_total"].value(**c) == 6
        assert f["rabbitmq_channel_messages_unroutable_returned_total"] \
            .value(**c) == 1
        assert f["rabbitmq_channel_messages_unroutable_dropped_total"] \
            .value(**c) == 1
        assert f["rabbitmq_channel_get_ack_total"].value(**c) == 1
        assert f["rabbitmq_channel_get_total"].value(**c) == 0
        assert f["rabbitmq_channel_get_empty_total"].value(**c) == 1
        assert f["rabbitmq_channel_messages_unacked"].value(**c) == 1
        # the connection: RabbitMQ's `channel` label names it
        conns = f["rabbitmq_connection_incoming_bytes_total"].samples
        assert len(conns) == 1
        k = dict(channel=conns[0][1]["channel"])
        assert chans[0].startswith(k["channel"] + " (")
        assert f["rabbitmq_connection_incoming_bytes_total"].value(**k) > 100
        assert f["rabbitmq_connection_outgoing_bytes_total"].value(**k) > 100
        assert f["rabbitmq_connection_channels"].value(**k) == 1
        # exchanges, vhosts, churn, the process
        x = dict(vhost="/", exchange="amq.direct", type="direct")
        assert f["rabbitmq_cluster_exchange_name"].value(**x) == 1
        assert f["warren_exchange_messages_published_in_total"] \
            .value(**x) == 2
        assert f["warren_exchange_messages_published_out_total"] \
            .value(**x) == 0
        assert f["rabbitmq_cluster_vhost_status"].value(vhost="/") == 1
        assert f["rabbitmq_queues_declared_total"].value() == 7
        assert f["rabbitmq_queues_created_total"].value() == 7
        assert f["rabbitmq_channels_opened_total"].value() == 1
        assert f["rabbitmq_connections_opened_total"].value() == 1
        assert f["rabbitmq_process_resident_memory_bytes"].value() > 1e6
        assert f["rabbitmq_process_open_fds"].value() > 3
        assert f["rabbitmq_process_max_fds"].value() >= \
            f["rabbitmq_process_open_fds"].value()
        assert f["rabbitmq_erlang_uptime_seconds"].value() > 0
        assert f["rabbitmq_global_messages_received_total"] \
            .value(protocol="amqp091") == 6
        assert f["rabbitmq_global_messages_routed_total"] \
            .value(protocol="amqp091") == 4
    finally:
        conn.close()


def test_churn_counts_closes_and_deletes(prom):
    b, port, _ = prom
    conn, ch = traffic(b)
    # as RabbitMQ: a redeclare is a declare, a passive one is not
    ch.queue_declare("empty")
    ch.queue_declare("empty", passive=True)
    ch.queue_delete("plain")
    conn.close()
    f = parse_exposition(scrape(port, "/metrics")[2])
    assert f["rabbitmq_queues_declared_total"].value() == 8
    assert f["rabbitmq_queues_created_total"].value() == 7
    assert f["rabbitmq_queues_deleted_total"].value() == 1
    assert f["rabbitmq_connections_closed_total"].value() == 1
    assert f["rabbitmq_channels_closed_total"].value() == 1
    # counts of closed channels stay in the node's totals
    assert f["rabbitmq_global_messages_received_total"] \
        .value(protocol="amqp091") == 6
    assert f["rabbitmq_global_messages_get_empty_total"] \
        .value(protocol="amqp091", queue_type="rabbit_classic_queue") == 1


def test_names_and_labels_are_rabbitmqs(prom):
    b, port, _ = prom
    conn, ch = traffic(b)
    try:
        per_object = parse_exposition(scrape(port, "/metrics/per-object")[2])
        totals = parse_exposition(scrape(port, "/metrics")[2])
    finally:
        conn.close()
    names = set(per_object) | set(totals)
    ours = {n for n in names if n.startswith("rabbitmq_")}
    assert ours == set(RABBITMQ_NAMES), (
        "not RabbitMQ's: %s; missing: %s" % (
            sorted(ours - set(RABBITMQ_NAMES)),
            sorted(set(RABBITMQ_NAMES) - ours)))
    assert names - ours == set(WARREN_NAMES)
    for name, want in list(RABBITMQ_NAMES.items()) + \
            list(WARREN_NAMES.items()):
        if name in per_object:
            assert labels_of(per_object, name) == tuple(sorted(want)), name
    # the default page sums every object: no per-object labels
    for name, f in totals.items():
        for n, lab, _ in f.samples:
            assert not set(lab) & {"queue", "channel", "exchange"}, n
    assert totals["rabbitmq_queue_messages_ready"].value() == 3
    assert totals["rabbitmq_queues"].value() == 7
    assert totals["rabbitmq_channels"].value() == 1
    assert totals["rabbitmq_connections"].value() == 1


def test_detailed_families_and_vhost_filter(prom):
    b, port, api = prom
    api.ok("PUT", "/api/vhosts/other")
    api.ok("PUT", "/api/permissions/other/guest",
           {"configure": ".*", "write": ".*", "read": ".*"})
    conn, ch = traffic(b)
    other = b.pika(virtual_host="other")
    try:
        other.channel().queue_declare("elsewhere")
        fams = "&".join("family=" + k for k in DETAILED)
        f = parse_exposition(scrape(
            port, "/metrics/detailed?%s&vhost=other" % fams)[2])
        want = {n for v in DETAILED.values() for n in v} | IDENTITY
        assert set(f) == want
        ready = f["rabbitmq_detailed_queue_messages_ready"].samples
        assert [lab for _, lab, _ in ready] == [
            dict(vhost="other", queue="elsewhere")]
        assert [lab for _, lab, _ in
                f["rabbitmq_cluster_vhost_status"].samples] == [
            dict(vhost="other")]
        # both vhosts, one family
        f = parse_exposition(scrape(
            port, "/metrics/detailed?family=queue_coarse_metrics"
            "&vhost=other&vhost=%2F")[2])
        assert set(f) == {"rabbitmq_detailed_queue_messages_ready",
                          "rabbitmq_detailed_queue_messages_unacked",
                          "rabbitmq_detailed_queue_messages"} | IDENTITY
        assert len(f["rabbitmq_detailed_queue_messages"].samples) == 8
        # no family, an unknown one: the identity only, as RabbitMQ
        for q in ("", "?family=nope", "?vhost=nope"):
            status, _, text = scrape(port, "/metrics/detailed" + q)
            assert status == 200
            assert set(parse_exposition(text)) == IDENTITY
        # churn is node-wide: no vhost label
        f = parse_exposition(scrape(
            port, "/metrics/detailed?family=connection_churn_metrics")[2])
        assert f["rabbitmq_detailed_connections_opened_total"].value() == 2
    finally:
        other.close()
        conn.close()


def test_prometheus_listener_serves_metrics_only(prom):
    b, port, api = prom
    for path in ("/metrics", "/metrics/per-object",
                 "/metrics/detailed?family=queue_metrics"):
        status, _, text = scrape(port, path)
        assert status == 200, path
        parse_exposition(text)
        # the same pages on the management port, without login too
        status, _, text = scrape(api.port, path)
        assert status == 200, path
        parse_exposition(text)
    for path in ("/api/overview", "/", "/api/queues", "/metrics/nope",
                 "/index.html"):
        assert scrape(port, path)[0] == 404, path
    status, hdrs, body = scrape(port, "/metrics/per-object", method="HEAD")
    assert status == 200 and body == ""
    # a large page is streamed
    status, hdrs, _ = scrape(port, "/metrics/per-object")
    assert hdrs.get("transfer-encoding") == "chunked"


def test_prometheus_port_in_use_stops_the_start(make_broker):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        b = make_broker(extra_conf={"prometheus.tcp.port": port},
                        start=False)
        b.write_config()
        p = subprocess.run(
            [os.environ.get("WARREN_BIN") or os.path.join(
                conftest.REPO, "build", "server", "warren"),
             "--config", b.config_path, "--listen", "127.0.0.1:0",
             "--data-dir", b.data_dir],
            capture_output=True, text=True, timeout=20)
        assert p.returncode != 0
        assert "prometheus: cannot listen on 127.0.0.1:%d" % port in p.stderr
        assert "prometheus.tcp.optional" in p.stderr
        b.extra_conf["prometheus.tcp.optional"] = "true"
        b.start()
        assert b.wait_for_line("running without the Prometheus listener")
        b.raw().close()
    finally:
        taken.close()


# ---------------------------------------------------------------------------
# the management API's statistics
# ---------------------------------------------------------------------------


def wait_for(fn, timeout=15.0):
    """Polls fn() until it returns a true value (the statistics are
    sampled every 5 s); returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.5)


def test_api_message_stats_and_rates(prom):
    b, port, api = prom
    conn, ch = traffic(b)
    stop = threading.Event()

    def publish():
        c = b.raw()
        c.open_channel(1)
        while not stop.is_set():
            for _ in range(20):
                c.publish(1, "", "plain", b"y" * 1000)
            c.call(1, "queue.declare", queue="plain", passive=True)
            time.sleep(0.05)
        c.close()

    t = threading.Thread(target=publish)
    t.start()
    try:
        def busy_conn():
            for c in api.ok("GET", "/api/connections"):
                if c["recv_oct_details"]["rate"] > 1000:
                    return c
            return None
        c = wait_for(busy_conn)
        assert c, api.ok("GET", "/api/connections")
        assert c["send_oct_details"]["rate"] > 0
        assert c["recv_cnt"] > 0 and c["send_cnt"] > 0
        over = wait_for(lambda: (lambda o: o if o["message_stats"].get(
            "confirm", 0) >= 6 and o["message_stats"]["publish_details"][
            "rate"] > 0 else None)(api.ok("GET", "/api/overview")))
        ms = over["message_stats"]
        for key in ("confirm", "get", "get_empty", "deliver_no_ack",
                    "return_unroutable", "drop_unroutable", "get_no_ack"):
            assert key in ms and key + "_details" in ms, key
            assert "rate" in ms[key + "_details"]
        assert ms["confirm"] == 6
        assert ms["get"] == 1 and ms["get_empty"] == 1
        assert ms["return_unroutable"] == 1 and ms["drop_unroutable"] == 1
        # churn: passive declares (the publisher's) are not declares, as
        # in RabbitMQ
        churn = over["churn_rates"]
        assert churn["queue_declared"] == 7 and churn["queue_created"] == 7
        assert churn["connection_created"] == 2
        assert churn["channel_created"] == 2
        assert churn["queue_deleted"] == 0
        for k in ("connection_created", "connection_closed",
                  "channel_created", "channel_closed", "queue_declared",
                  "queue_created", "queue_deleted"):
            assert "rate" in churn[k + "_details"], k
        chans = api.ok("GET", "/api/channels")
        mine = [x for x in chans if x["message_stats"]["confirm"] == 6]
        assert len(mine) == 1
        cs = mine[0]["message_stats"]
        assert cs["publish"] == 6 and cs["get"] == 1
        assert cs["deliver_get"] == 1 and cs["return_unroutable"] == 1
        busy = [x for x in chans if x["message_stats"]["publish"] > 100]
        assert busy and busy[0]["message_stats"]["publish_details"][
            "rate"] > 0
        x = api.ok("GET", "/api/exchanges/%2F/amq.direct")
        assert x["message_stats"]["publish_in"] == 2
        assert x["message_stats"]["publish_out"] == 0
        d = wait_for(lambda: (lambda e: e if e["message_stats"][
            "publish_in_details"]["rate"] > 0 else None)(
            api.ok("GET", "/api/exchanges/%2F/amq.default")))
        # the default exchange routes each message to one queue
        assert d["message_stats"]["publish_out"] == \
            d["message_stats"]["publish_in"]
        # an exchange nothing went through has no message_stats, as in
        # RabbitMQ
        assert "message_stats" not in api.ok(
            "GET", "/api/exchanges/%2F/amq.topic")
    finally:
        stop.set()
        t.join()
        conn.close()


# ---------------------------------------------------------------------------
# 100,000 queues
# ---------------------------------------------------------------------------

BUSY_RE = re.compile(r'warren_loop_busy_seconds_bucket\{le="([^"]+)"\} (\d+)')

# Round trips of a passive queue.declare until a line on stdin; prints
# their count, median, 99th percentile and maximum.
PINGER = r"""
import select, sys, time
import rawamqp
c = rawamqp.connect(sys.argv[1], int(sys.argv[2]), 30, user="guest",
                    password="guest", vhost="/")
c.open_channel(1)
print("ready", flush=True)
rtts = []
while not select.select([sys.stdin], [], [], 0)[0]:
    t0 = time.monotonic()
    c.call(1, "queue.declare", queue="q-000001", passive=True)
    rtts.append(time.monotonic() - t0)
c.close()
rtts.sort()
print("%d, median %.2f ms, p99 %.2f ms, max %.1f ms" % (
    len(rtts), 1e3 * rtts[len(rtts) // 2], 1e3 * rtts[len(rtts) * 99 // 100],
    1e3 * rtts[-1]))
"""


def cpu_wait(pid):
    """Seconds the broker's loop (main) thread has spent runnable but
    waiting for a CPU (the kernel's schedstat)."""
    with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
        return int(f.read().split()[1]) / 1e9


def loop_over(port, limit):
    """Loop iterations so far that kept the loop busy longer than limit
    seconds (the broker's own histogram, on /metrics)."""
    text = scrape(port, "/metrics")[2]
    buckets = {m.group(1): int(m.group(2)) for m in BUSY_RE.finditer(text)}
    return buckets["+Inf"] - buckets[repr(limit)]


def test_100k_queues_scrape_does_not_stall_the_loop(make_broker, tmp_path):
    """A scrape of /metrics/per-object with 100,000 queues is written a
    slice per loop iteration: it takes well under a second and no loop
    iteration during it is busy for more than 20 ms (the broker's own
    histogram). The machine is shared (other brokers, builds, tests in
    parallel), and time the loop thread spends waiting for a CPU counts
    as busy too: up to five scrapes are tried for a clean one, and if
    none is, the test fails unless the loop was waiting for a CPU (2 ms
    or more, the kernel's schedstat) during every one of them. A page written at once
    (95 MB, a few hundred milliseconds) would stall every time. Times and sizes are printed (pytest -s) for BENCHMARKS.md."""
    n = 100000
    defs = tmp_path / "defs.json"
    defs.write_text('{"queues":[%s]}' % ",".join(
        '{"name":"q-%06d","vhost":"/","durable":true,"auto_delete":false,'
        '"arguments":{}}' % i for i in range(n)))
    b = make_broker(extra_conf={"load_definitions": str(defs)})
    port = prom_port(b)
    # a client in another process (not slowed by this one's parsing)
    # measures AMQP round trips meanwhile
    pinger = subprocess.Popen(
        [sys.executable, "-c", PINGER, b.host, str(b.port)],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert pinger.stdout.readline().strip() == "ready"
    results = []
    try:
        for attempt in range(5):
            before = loop_over(port, 0.02)
            waited = cpu_wait(b.pid)
            t0 = time.monotonic()
            status, _, text = scrape(port, "/metrics/per-object")
            elapsed = time.monotonic() - t0
            waited = cpu_wait(b.pid) - waited
            stalls = loop_over(port, 0.02) - before
            assert status == 200
            ready = text.count("\nrabbitmq_queue_messages_ready{")
            assert ready == n
            # complete: the identity and the loop histogram come last
            assert "\nrabbitmq_identity_info{" in text[-2000:]
            assert text.endswith("\n") and text.rsplit("\n", 2)[1] \
                .startswith("warren_loop_busy_seconds_count ")
            results.append((elapsed, stalls, waited))
            print("scrape %d: %.1f MB in %.3f s, %d loop iterations over "
                  "20 ms; the loop waited %.1f ms for a CPU" % (
                      attempt + 1, len(text) / 1e6, elapsed, stalls,
                      waited * 1e3))
            if stalls == 0:
                break
    finally:
        out, _ = pinger.communicate("stop\n", timeout=30)
    print("AMQP round trips meanwhile (queue.declare passive): " + out.strip())
    if not SANITIZED:  # sanitizers make every iteration several times slower
        # one clean scrape; or else every stall came while the loop
        # waited for a CPU (a stall while it hardly waited is its own)
        assert results[-1][1] == 0 or \
            not [r for r in results if r[2] < 0.002], results
    # the detailed page of one family, and the totals, stay valid
    for path in ("/metrics/detailed?family=queue_consumer_count",
                 "/metrics"):
        t0 = time.monotonic()
        text = scrape(port, path)[2]
        print("%s: %.1f MB in %.3f s" % (path, len(text) / 1e6,
                                         time.monotonic() - t0))
        f = parse_exposition(text)
    assert f["rabbitmq_queues"].value() == n
    f = parse_exposition(scrape(
        port, "/metrics/detailed?family=queue_consumer_count")[2])
    assert len(f["rabbitmq_detailed_queue_consumers"].samples) == n
    # a large node lists the queues of the last statistics sample: a
    # deleted one is gone at once, a new one shows up within two samples
    c = b.raw()
    c.open_channel(1)
    c.call(1, "queue.delete", queue="q-000002")
    c.call(1, "queue.declare", queue="fresh")
    c.close()
    text = scrape(port, "/metrics/per-object")[2]
    assert 'queue="q-000002"' not in text
    assert text.count("\nrabbitmq_queue_messages_ready{") in (n - 1, n)
    assert wait_for(lambda: '\nrabbitmq_detailed_queue_messages_ready{'
                    'vhost="/",queue="fresh"} 0\n' in scrape(
                        port, "/metrics/detailed?family="
                        "queue_coarse_metrics")[2], timeout=15)
    # a slow scraper (no login) is not cut off after the 5 s an anonymous
    # connection has to log in: only the write timeout applies
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /metrics/per-object HTTP/1.1\r\nHost: x\r\n\r\n")
    assert slow.recv(12) == b"HTTP/1.1 200"
    time.sleep(6)
    slow.settimeout(30)
    tail = b""
    while not tail.endswith(b"\r\n0\r\n\r\n"):
        got = slow.recv(1 << 20)
        assert got, "the page was cut off"
        tail = (tail + got)[-64:]
    slow.close()
    # clients that ask for the page and do not read it: at most 16 pages
    # are held at once, the next scrape is told to come back
    idle = []
    try:
        for _ in range(16):
            c = socket.create_connection(("127.0.0.1", port))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /metrics/per-object HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(12) == b"HTTP/1.1 200"
            idle.append(c)
        status, hdrs, body = scrape(port, "/metrics/per-object")
        assert status == 503 and hdrs["retry-after"] == "1", (status, body)
        assert scrape(port, "/metrics")[0] == 200
    finally:
        for c in idle:
            c.close()
    assert wait_for(lambda: scrape(port, "/metrics/detailed?family="
                                   "queue_coarse_metrics")[0] == 200)
