"""warrenctl (cli/warrenctl) against a private Warren: one test per verb,
each checking what it prints (table, -q, -s, --formatter json) and what it
did (a user that logs in with pika, permissions that refuse a declare, a
policy that caps a queue, definitions that arrive in a second broker, a
connection closed with 320 and the given text), plus the usage, credential,
unreachable and timeout exits.

Expected texts and exit codes are rabbitmqctl 3.10.8's (run against
RabbitMQ with the same objects), except where warrenctl's docstring says
it differs. WARRENCTL_BIN runs another copy (an installed one).
"""

import json
import os
import re
import socket
import subprocess

import pika
import pytest

import conftest
from test_20_mgmt_api import Mgmt, MGMT_CONF, http_port

pytestmark = pytest.mark.warren_only

WARRENCTL = os.environ.get("WARRENCTL_BIN") or os.path.join(
    conftest.REPO, "cli", "warrenctl")

# `rabbitmqctl help list_queues` (3.10.8): every column it accepts.
RABBITMQCTL_QUEUE_COLUMNS = """
    arguments auto_delete consumer_capacity consumer_utilisation consumers
    disk_reads disk_writes durable exclusive exclusive_consumer_pid
    exclusive_consumer_tag head_message_timestamp leader members memory
    message_bytes message_bytes_persistent message_bytes_ram
    message_bytes_ready message_bytes_unacknowledged messages
    messages_persistent messages_ram messages_ready messages_ready_ram
    messages_unacknowledged messages_unacknowledged_ram name online
    owner_pid pid policy slave_pids state synchronised_slave_pids type"""

VERBS = ("status", "cluster_status", "list_queues", "list_exchanges",
         "list_bindings", "list_connections", "list_consumers", "add_user",
         "change_password", "set_user_tags", "set_permissions", "add_vhost",
         "delete_vhost", "set_policy", "export_definitions",
         "import_definitions", "close_connection")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class Env:
    """The module's broker, its management API, and a warrenctl runner."""

    def __init__(self, broker, api):
        self.b = broker
        self.api = api
        self.node = api.ok("GET", "/api/overview")["node"]

    def run(self, *args, input=None, env=None, api=True):
        """warrenctl [-H 127.0.0.1 -P PORT] ARGS -> CompletedProcess."""
        cmd = [WARRENCTL]
        if api:
            cmd += ["-H", "127.0.0.1", "-P", str(self.api.port)]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("WARRENCTL_")}
        full_env.update(env or {})
        return subprocess.run(cmd + list(args), input=input,
                              capture_output=True, text=True, timeout=60,
                              env=full_env)

    def ok(self, *args, **kw):
        """Runs warrenctl, which must exit 0; returns stdout."""
        p = self.run(*args, **kw)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p.stdout

    def fails(self, code, *args, **kw):
        """Runs warrenctl, which must exit with `code`; returns stderr."""
        p = self.run(*args, **kw)
        assert p.returncode == code, (args, p.returncode, p.stdout,
                                      p.stderr)
        return p.stderr

    def amqp(self, vhost="/", user="guest", password="guest", **kw):
        return pika.BlockingConnection(pika.ConnectionParameters(
            self.b.host, self.b.port, vhost,
            pika.PlainCredentials(user, password), connection_attempts=1,
            **kw))

    def login(self, user, password, vhost="/"):
        """'ok', 'auth' (password refused) or 'vhost' (no access)."""
        try:
            self.amqp(vhost, user, password).close()
            return "ok"
        except pika.exceptions.ProbableAuthenticationError:
            return "auth"
        except pika.exceptions.ProbableAccessDeniedError:
            return "vhost"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if conftest.external_broker() is not None:
        pytest.skip("needs a private Warren")
    b = conftest.new_warren(str(tmp_path_factory.mktemp("ctl")), MGMT_CONF)
    yield Env(b, Mgmt(http_port(b)))
    conftest.stop_checked(b)


def table(text):
    """Table output -> list of rows (lists of cells)."""
    return [line.split("\t") for line in text.splitlines()]


def json_list(text):
    """rabbitmqctl's JSON list layout: "[", one object per line, the
    ones after the first prefixed with ",", then "]"."""
    lines = text.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""], text
    for i, line in enumerate(lines[1:-2]):
        assert line.startswith(",") == (i > 0), text
    return json.loads(text)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def declare(env, queue, vhost="/", **kw):
    with env.amqp(vhost) as c:
        c.channel().queue_declare(queue, **kw)


# ---------------------------------------------------------------------------
# usage, reachability, credentials
# ---------------------------------------------------------------------------


def test_help_names_every_verb_and_the_credential_options(env):
    out = env.ok("--help", api=False)
    for v in VERBS:
        assert v in out
    assert "--password" in out and "-p VHOST" in out
    assert "-p is the vhost, as in rabbitmqctl" in out
    cols = env.ok("help", "list_queues", api=False)
    for c in ("messages_unacknowledged", "consumers", "durable",
              "arguments", "policy"):
        assert c in cols
    assert "usage: warrenctl [options] list_queues [-p <vhost>]" in cols


def test_usage_errors_exit_64_before_doing_anything(env):
    assert "usage:" in env.fails(64, api=False)
    err = env.fails(64, "no_such_verb")
    assert "invalid choice: 'no_such_verb'" in err
    err = env.fails(64, "add_vhost")
    assert err.startswith("Error (argument validation): the following "
                          "arguments are required: vhost")
    assert "usage: warrenctl [options] add_vhost <vhost>" in err
    err = env.fails(64, "list_queues", "name", "bogus", "nope")
    assert "Info key(s) bogus,nope are not supported" in err
    env.fails(64, "list_queues", "--formatter", "csv")
    err = env.fails(64, "set_policy", "--apply-to", "bindings", "ctl-p",
                    ".*", "{}")
    assert "apply-to 'bindings' unrecognised; should be 'queues', " \
        "'exchanges' or 'all'" in err
    assert env.api.get("/api/policies/%2F/ctl-p").status == 404
    err = env.fails(64, "close_connection", "", "why")
    assert "the connection name is empty" in err
    env.fails(64, "help", "no_such_verb", api=False)


def test_unreachable_broker_exits_69_and_says_what_to_check(env):
    port = free_port()
    p = env.run("-H", "127.0.0.1", "-P", str(port), "status", api=False)
    assert p.returncode == 69, p
    assert p.stdout == ""
    assert p.stderr.startswith(
        "Error:\nunable to reach Warren's management API at "
        "http://127.0.0.1:%d/ (Connection refused)." % port)
    for hint in ("the broker is not running", "management.tcp.port",
                 "--host/--port", "/etc/warren/warren.conf"):
        assert hint in p.stderr
    # The same in JSON, on stderr.
    p = env.run("-H", "127.0.0.1", "-P", str(port), "--formatter", "json",
                "list_queues", api=False)
    assert p.returncode == 69 and p.stdout == ""
    err = json.loads(p.stderr)
    assert err["result"] == "error" and "unable to reach" in err["message"]


def test_wrong_port_and_silent_broker(env):
    # The AMQP port answers, but not in HTTP.
    err = env.fails(69, "-P", str(env.b.port), "status")
    assert "not as Warren's management API" in err
    assert "management.tcp.port" in err
    # A listener that never answers: --timeout, exit 75.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        p = env.run("-H", "127.0.0.1", "-P", str(s.getsockname()[1]), "-t",
                    "1", "status", api=False)
    finally:
        s.close()
    assert p.returncode == 75, p
    assert "did not answer within 1.0 seconds" in p.stderr


def test_credentials_options_environment_and_refusal(env):
    err = env.fails(77, "--password", "wrong", "list_queues")
    assert "refused user 'guest': Login failed" in err
    assert "--password" in err and "WARRENCTL_PASSWORD" in err
    # Everything from the environment; -n gives the host as rabbitmqctl's
    # node name does.
    out = env.ok("-q", "list_exchanges", "name", api=False, env={
        "WARRENCTL_HOST": "127.0.0.1",
        "WARRENCTL_PORT": str(env.api.port),
        "WARRENCTL_USERNAME": "guest", "WARRENCTL_PASSWORD": "guest"})
    assert "amq.topic" in out.split("\n")
    out = env.ok("-n", "warren@127.0.0.1", "-P", str(env.api.port), "-q",
                 "list_exchanges", "name", api=False)
    assert "amq.topic" in out.split("\n")
    # Options may follow the verb, as in rabbitmqctl.
    out = env.ok("list_exchanges", "name", "-q", "-H", "127.0.0.1", "-P",
                 str(env.api.port), api=False)
    assert "amq.topic" in out.split("\n")
    env.fails(77, "list_queues", env={"WARRENCTL_PASSWORD": "nope"})
    # A user without a management tag is refused by the API.
    env.ok("add_user", "ctl-nomgmt", "pw")
    err = env.fails(77, "-u", "ctl-nomgmt", "--password", "pw", "status")
    assert "refused user 'ctl-nomgmt'" in err


# ---------------------------------------------------------------------------
# status and cluster_status
# ---------------------------------------------------------------------------


def test_status(env):
    with env.amqp():
        out = env.ok("status")
        st = json.loads(env.ok("--formatter", "json", "status"))
    o = env.api.ok("GET", "/api/overview")
    assert out.startswith("Status of node %s ...\nRuntime\n\n" % env.node)
    assert "OS PID: %d\n" % env.b.pid in out
    assert re.search(r"\nUptime \(seconds\): \d+\n", out)
    assert "\nProduct name: Warren\n" in out
    assert "\nProduct version: %s\n" % o["product_version"] in out
    assert "\nRabbitMQ version: 3.10.8\n" in out
    assert "\nImplementation: %s\n" % o["erlang_full_version"] in out
    assert "\nNode data directory: %s\n" % env.b.data_dir in out
    assert "\nAlarms\n\n(none)\n" in out
    assert re.search(r"\nTotal memory used: \d+(\.\d+)? gb\n", out)
    assert re.search(r"\nTotal: \d+, limit: \d+\nSockets: \d+, limit: \d+\n",
                     out)
    assert re.search(r"\nFree disk space: \d+(\.\d+)? gb\n", out)
    assert "\nConnection count: 1\n" in out
    assert "\nVirtual host count: %d\n" % len(
        env.api.ok("GET", "/api/vhosts")) in out
    assert ("\nInterface: 127.0.0.1, port: %d, protocol: amqp, purpose: "
            "AMQP 0-9-1\n" % env.b.port) in out
    assert ("\nInterface: 127.0.0.1, port: %d, protocol: http, purpose: "
            "HTTP API\n" % env.api.port) in out
    # -q drops the info line only.
    assert env.ok("-q", "status") .startswith("Runtime\n")
    assert st["pid"] == env.b.pid and st["node"] == env.node
    assert st["product_name"] == "Warren"
    assert st["alarms"] == [] and st["totals"]["connection_count"] == 1
    assert st["file_descriptors"]["total_limit"] > \
        st["file_descriptors"]["total_used"] > 0
    assert st["memory"]["total"]["rss"] > 0
    assert {"interface": "127.0.0.1", "node": env.node, "port": env.b.port,
            "protocol": "amqp", "purpose": "AMQP 0-9-1"} in st["listeners"]


def test_status_and_cluster_status_show_alarms(make_broker):
    b = make_broker(dict(MGMT_CONF, **{
        "vm_memory_high_watermark.absolute": "1MiB"}))
    assert b.wait_for_line("memory alarm set", timeout=10)
    e = Env(b, Mgmt(http_port(b)))
    assert "\nAlarms\n\nMemory alarm on node %s\n" % e.node in e.ok("status")
    assert json.loads(e.ok("--formatter", "json", "status"))["alarms"] == [
        {"node": e.node, "resource": "memory", "type": "resource_limit"}]
    assert "\nAlarms\n\nMemory alarm on node %s\n" % e.node in \
        e.ok("cluster_status")


def test_cluster_status(env):
    out = env.ok("cluster_status")
    name = env.api.ok("GET", "/api/cluster-name")["name"]
    assert out.startswith("Cluster status of node %s ...\nBasics\n\n"
                          "Cluster name: %s\n" % (env.node, name))
    assert "\nDisk Nodes\n\n%s\n\nRunning Nodes\n\n%s\n" % (
        env.node, env.node) in out
    assert re.search(r"\nVersions\n\n%s: Warren \S+ \(RabbitMQ 3\.10\.8 "
                     r"compatible\)\n" % re.escape(env.node), out)
    assert "\nNode: %s, status: not under maintenance\n" % env.node in out
    assert "\nNetwork Partitions\n\n(none)\n" in out
    assert ("\nNode: %s, interface: 127.0.0.1, port: %d, protocol: amqp, "
            "purpose: AMQP 0-9-1\n" % (env.node, env.b.port)) in out
    cs = json.loads(env.ok("--formatter", "json", "cluster_status"))
    assert cs["cluster_name"] == name
    assert cs["running_nodes"] == [env.node] == cs["disk_nodes"]
    assert cs["ram_nodes"] == [] and cs["alarms"] == []
    assert cs["partitions"] == {}
    assert cs["versions"][env.node]["product_name"] == "Warren"
    assert {li["port"] for li in cs["listeners"][env.node]} == {
        env.b.port, env.api.port}


# ---------------------------------------------------------------------------
# list_*
# ---------------------------------------------------------------------------


def test_list_queues(env):
    env.ok("add_vhost", "ctl-lq")
    declare(env, "ctl-empty", "ctl-lq")
    with env.amqp() as c:
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare("ctl-lq-a", durable=True,
                         arguments={"x-max-length": 10,
                                    "x-queue-mode": "lazy"})
        ch.queue_declare("ctl-lq-b", auto_delete=True)
        for body in (b"1", b"2"):
            ch.basic_publish("", "ctl-lq-a", body)
        ch.basic_publish("", "ctl-lq-b", b"3")
        ch.basic_consume("ctl-lq-b", lambda *a: None)
        c.process_data_events(0.3)  # the delivery reaches us: unacked
        out = env.ok("list_queues")
        lines = out.split("\n")
        assert lines[:3] == ["Timeout: 60.0 seconds ...",
                             "Listing queues for vhost / ...",
                             "name\tmessages"]
        assert sorted(lines[3:-1]) == ["ctl-lq-a\t2", "ctl-lq-b\t1"]
        cols = ["name", "messages", "messages_ready",
                "messages_unacknowledged", "consumers", "durable",
                "auto_delete", "exclusive", "arguments", "policy", "state",
                "type"]
        rows = table(env.ok("-q", "list_queues", "-p", "/", *cols))
        assert rows[0] == cols
        assert sorted(rows[1:]) == [
            ["ctl-lq-a", "2", "2", "0", "0", "true", "false", "false",
             '[{"x-max-length",10},{"x-queue-mode","lazy"}]', "", "running",
             "classic"],
            ["ctl-lq-b", "1", "0", "1", "1", "false", "true", "false", "[]",
             "", "running", "classic"]]
        got = json_list(env.ok("--formatter", "json", "list_queues", "name",
                               "messages", "durable", "arguments"))
        assert sorted(got, key=lambda x: x["name"]) == [
            {"name": "ctl-lq-a", "messages": 2, "durable": True,
             "arguments": [["x-max-length", "signedint", 10],
                           ["x-queue-mode", "longstr", "lazy"]]},
            {"name": "ctl-lq-b", "messages": 1, "durable": False,
             "arguments": []}]
    # -s: neither info line nor header; --no-table-headers: no header.
    assert env.ok("-s", "list_queues", "-p", "ctl-lq") == "ctl-empty\t0\n"
    assert env.ok("list_queues", "-p", "ctl-lq", "--no-table-headers") == (
        "Timeout: 60.0 seconds ...\nListing queues for vhost ctl-lq ...\n"
        "ctl-empty\t0\n")
    assert env.ok("-t", "5", "list_queues", "-p", "ctl-lq").startswith(
        "Timeout: 5.0 seconds ...\n")
    # Every rabbitmqctl column is accepted; pid names the node.
    every = RABBITMQCTL_QUEUE_COLUMNS.split()
    rows = table(env.ok("-s", "list_queues", "-p", "ctl-lq", *every))
    assert len(rows) == 1 and len(rows[0]) == 36
    assert dict(zip(every, rows[0]))["pid"] == "<%s>" % env.node
    # A vhost with no queues, and one that does not exist: nothing listed
    # (no header), as rabbitmqctl does.
    env.ok("delete_vhost", "ctl-lq")
    assert env.ok("-q", "list_queues", "-p", "ctl-lq") == ""
    assert env.ok("--formatter", "json", "list_queues", "-p",
                  "ctl-lq") == "[\n]\n"
    with env.amqp() as c:
        c.channel().queue_delete("ctl-lq-a")


def test_list_exchanges(env):
    with env.amqp() as c:
        c.channel().exchange_declare(
            "ctl-x", "topic", durable=True,
            arguments={"alternate-exchange": "amq.fanout"})
    out = env.ok("list_exchanges")
    lines = out.split("\n")
    assert lines[:2] == ["Listing exchanges for vhost / ...", "name\ttype"]
    assert {"\tdirect", "amq.topic\ttopic", "amq.match\theaders",
            "amq.rabbitmq.trace\ttopic", "ctl-x\ttopic"} <= set(lines[2:])
    rows = table(env.ok("-q", "list_exchanges", "name", "type", "durable",
                        "auto_delete", "internal", "arguments", "policy"))
    assert rows[0] == ["name", "type", "durable", "auto_delete", "internal",
                       "arguments", "policy"]
    assert ["ctl-x", "topic", "true", "false", "false",
            '[{"alternate-exchange","amq.fanout"}]', ""] in rows
    assert ["amq.rabbitmq.trace", "topic", "true", "false", "true", "[]",
            ""] in rows
    got = json_list(env.ok("--formatter", "json", "list_exchanges", "name",
                           "arguments"))
    assert {"name": "ctl-x", "arguments": [
        ["alternate-exchange", "longstr", "amq.fanout"]]} in got
    with env.amqp() as c:
        c.channel().exchange_delete("ctl-x")


def test_list_bindings(env):
    env.ok("add_vhost", "ctl-lb")
    with env.amqp("ctl-lb") as c:
        ch = c.channel()
        ch.exchange_declare("ctl-bx", "headers")
        ch.queue_declare("ctl-bq")
        ch.queue_bind("ctl-bq", "ctl-bx", "rk",
                      arguments={"x-match": "any", "n": 1, "t": True})
    out = env.ok("list_bindings", "-p", "ctl-lb")
    assert out == (
        "Listing bindings for vhost ctl-lb...\n"
        "source_name\tsource_kind\tdestination_name\tdestination_kind\t"
        "routing_key\targuments\n"
        "\texchange\tctl-bq\tqueue\tctl-bq\t[]\n"
        'ctl-bx\texchange\tctl-bq\tqueue\trk\t[{"x-match","any"},{"n",1},'
        '{"t",true}]\n')
    assert env.ok("-s", "list_bindings", "-p", "ctl-lb", "source_name",
                  "routing_key") == "\tctl-bq\nctl-bx\trk\n"
    got = json_list(env.ok("--formatter", "json", "list_bindings", "-p",
                           "ctl-lb"))
    assert got[1] == {
        "source_name": "ctl-bx", "source_kind": "exchange",
        "destination_name": "ctl-bq", "destination_kind": "queue",
        "routing_key": "rk",
        "arguments": [["x-match", "longstr", "any"], ["n", "signedint", 1],
                      ["t", "bool", True]]}
    env.ok("delete_vhost", "ctl-lb")


def test_list_connections(env):
    assert env.ok("list_connections") == "Listing connections ...\n"
    with env.amqp(client_properties={"connection_name": "ctl-conn"}):
        api = env.api.ok("GET", "/api/connections")
        assert len(api) == 1
        out = env.ok("list_connections")
        assert out == ("Listing connections ...\n"
                       "user\tpeer_host\tpeer_port\tstate\n"
                       "guest\t127.0.0.1\t%d\trunning\n" % api[0]["peer_port"])
        rows = table(env.ok("-s", "list_connections", "name", "pid",
                            "vhost", "protocol", "channels",
                            "client_properties"))
        assert rows[0][:5] == [api[0]["name"], "<%s>" % api[0]["name"], "/",
                               "AMQP 0-9-1", "0"]
        assert rows[0][5].startswith('[{"product","Pika Python Client '
                                     'Library"}')
        assert '{"capabilities",[{"authentication_failure_close",true},' \
            in rows[0][5]
        assert '{"connection_name","ctl-conn"}' in rows[0][5]
        got = json_list(env.ok("--formatter", "json", "list_connections",
                               "name", "peer_port", "client_properties"))
        assert got[0]["name"] == api[0]["name"]
        assert got[0]["peer_port"] == api[0]["peer_port"]
        assert ["connection_name", "longstr", "ctl-conn"] in \
            got[0]["client_properties"]


def test_list_consumers(env):
    with env.amqp() as c:
        ch = c.channel()
        ch.queue_declare("ctl-cq", exclusive=True)
        ch.basic_qos(prefetch_count=7)
        ch.basic_consume("ctl-cq", lambda *a: None, consumer_tag="ctl-tag",
                         arguments={"x-priority": 3})
        chan = env.api.ok("GET", "/api/channels")[0]["name"]
        out = env.ok("list_consumers")
        assert out == (
            "Listing consumers in vhost / ...\n"
            "queue_name\tchannel_pid\tconsumer_tag\tack_required\t"
            "prefetch_count\tactive\targuments\n"
            'ctl-cq\t<%s>\tctl-tag\ttrue\t7\ttrue\t[{"x-priority",3}]\n'
            % chan)
        got = json_list(env.ok("--formatter", "json", "list_consumers",
                               "consumer_tag", "activity_status",
                               "arguments"))
        assert got == [{"consumer_tag": "ctl-tag", "activity_status": "up",
                        "arguments": [["x-priority", "signedint", 3]]}]
    assert env.ok("-q", "list_consumers") == ""


# ---------------------------------------------------------------------------
# users, vhosts, permissions, policies
# ---------------------------------------------------------------------------


def test_add_user(env):
    assert env.ok("add_user", "ctl-alice", "s3cret") == (
        'Adding user "ctl-alice" ...\n'
        "Done. Don't forget to grant the user permissions to some virtual "
        "hosts! See 'warrenctl help set_permissions' to learn more.\n")
    user = env.api.ok("GET", "/api/users/ctl-alice")
    assert user["tags"] == []
    # The password works (no permissions yet: the vhost refuses her).
    assert env.login("ctl-alice", "s3cret") == "vhost"
    assert env.login("ctl-alice", "wrong") == "auth"
    err = env.fails(70, "add_user", "ctl-alice", "other")
    assert err == 'Error:\nUser "ctl-alice" already exists\n'
    assert env.login("ctl-alice", "s3cret") == "vhost"  # unchanged
    # The password from standard input, as rabbitmqctl reads it; -q.
    assert env.ok("-q", "add_user", "ctl-bob", input="from-stdin\n") == ""
    assert env.login("ctl-bob", "from-stdin") == "vhost"
    assert env.ok("--formatter", "json", "add_user", "ctl-carol",
                  "pw") == '{"node":"%s","result":"ok"}\n' % env.node
    err = env.fails(70, "--formatter", "json", "add_user", "ctl-carol", "x")
    assert json.loads(err) == {"message": 'User "ctl-carol" already exists',
                               "result": "error"}


def test_change_password(env):
    env.ok("add_user", "ctl-dave", "old")
    env.ok("set_user_tags", "ctl-dave", "monitoring")
    env.ok("set_permissions", "ctl-dave", ".*", ".*", ".*")
    assert env.ok("change_password", "ctl-dave", "new") == \
        'Changing password for user "ctl-dave" ...\n'
    assert env.login("ctl-dave", "old") == "auth"
    assert env.login("ctl-dave", "new") == "ok"
    assert env.api.ok("GET", "/api/users/ctl-dave")["tags"] == ["monitoring"]
    env.ok("-q", "change_password", "ctl-dave", input="newer\n")
    assert env.login("ctl-dave", "newer") == "ok"
    err = env.fails(67, "change_password", "ctl-nobody", "x")
    assert err == 'Error:\nUser "ctl-nobody" does not exist\n'


def test_set_user_tags(env):
    env.ok("add_user", "ctl-erin", "pw")
    err = env.fails(77, "-u", "ctl-erin", "--password", "pw",
                    "list_connections")
    assert "Not management user" in err
    assert env.ok("set_user_tags", "ctl-erin", "monitoring",
                  "policymaker") == (
        'Setting tags for user "ctl-erin" to [monitoring, policymaker] ...\n')
    assert env.api.ok("GET", "/api/users/ctl-erin")["tags"] == [
        "monitoring", "policymaker"]
    # The tag lets her in; her password did not change.
    env.ok("-u", "ctl-erin", "--password", "pw", "list_connections")
    assert env.login("ctl-erin", "pw") == "vhost"
    assert env.ok("set_user_tags", "ctl-erin") == \
        'Setting tags for user "ctl-erin" to [] ...\n'
    assert env.api.ok("GET", "/api/users/ctl-erin")["tags"] == []
    assert env.login("ctl-erin", "pw") == "vhost"
    assert env.fails(67, "set_user_tags", "ctl-nobody", "administrator") == \
        'Error:\nUser "ctl-nobody" does not exist\n'


def test_set_permissions(env):
    env.ok("add_vhost", "ctl-perm")
    env.ok("add_user", "ctl-frank", "pw")
    assert env.login("ctl-frank", "pw", "ctl-perm") == "vhost"
    assert env.ok("set_permissions", "-p", "ctl-perm", "ctl-frank", "^ok-",
                  ".*", ".*") == (
        'Setting permissions for user "ctl-frank" in vhost "ctl-perm" ...\n')
    assert env.api.ok("GET", "/api/permissions/ctl-perm/ctl-frank") == {
        "user": "ctl-frank", "vhost": "ctl-perm", "configure": "^ok-",
        "write": ".*", "read": ".*"}
    with env.amqp("ctl-perm", "ctl-frank", "pw") as c:
        c.channel().queue_declare("ok-q")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("denied-q")
        assert e.value.reply_code == 403
        assert e.value.reply_text == (
            "ACCESS_REFUSED - access to queue 'denied-q' in vhost "
            "'ctl-perm' refused for user 'ctl-frank'")
    err = env.fails(65, "set_permissions", "-p", "ctl-nov", "ctl-frank",
                    ".*", ".*", ".*")
    assert err == "Error:\nVirtual host 'ctl-nov' does not exist\n"
    err = env.fails(67, "set_permissions", "-p", "ctl-perm", "ctl-nobody",
                    ".*", ".*", ".*")
    assert err == 'Error:\nUser "ctl-nobody" does not exist\n'
    err = env.fails(65, "set_permissions", "-p", "ctl-perm", "ctl-frank",
                    "(", ".*", ".*")
    assert "invalid regular expression '('" in err
    assert env.api.ok("GET", "/api/permissions/ctl-perm/ctl-frank")[
        "configure"] == "^ok-"
    env.ok("delete_vhost", "ctl-perm")


def test_add_vhost_and_delete_vhost(env):
    assert env.ok("add_vhost", "ctl-vh", "--description", "for tests",
                  "--tags", "a,b") == 'Adding vhost "ctl-vh" ...\n'
    vh = env.api.ok("GET", "/api/vhosts/ctl-vh")
    assert vh["description"] == "for tests" and vh["tags"] == ["a", "b"]
    env.ok("add_vhost", "ctl-vh")  # exists: fine, as in rabbitmqctl
    declare(env, "ctl-vq", "ctl-vh", durable=True)
    c = env.amqp("ctl-vh")
    try:
        assert env.ok("delete_vhost", "ctl-vh") == \
            'Deleting vhost "ctl-vh" ...\n'
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(2)
            c.process_data_events(2)
        assert e.value.reply_code == 320
    finally:
        if c.is_open:
            c.close()
    assert env.api.get("/api/vhosts/ctl-vh").status == 404
    assert env.api.get("/api/queues/ctl-vh/ctl-vq").status == 404
    err = env.fails(65, "delete_vhost", "ctl-vh")
    assert err == "Error:\nVirtual host 'ctl-vh' does not exist\n"
    assert env.ok("--formatter", "json", "add_vhost", "ctl-vh2") == \
        '{"node":"%s","result":"ok"}\n' % env.node
    env.ok("-q", "delete_vhost", "ctl-vh2")


def test_set_policy(env):
    out = env.ok("set_policy", "--priority", "2", "--apply-to", "queues",
                 "ctl-cap", "^ctl-capped", '{"max-length":2}')
    assert out == ('Setting policy "ctl-cap" for pattern "^ctl-capped" to '
                   '"{"max-length":2}" with priority "2" for vhost "/" ...\n')
    assert env.api.ok("GET", "/api/policies/%2F/ctl-cap") == {
        "vhost": "/", "name": "ctl-cap", "pattern": "^ctl-capped",
        "apply-to": "queues", "definition": {"max-length": 2},
        "priority": 2}
    with env.amqp() as c:
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare("ctl-capped-q")
        for i in range(3):
            ch.basic_publish("", "ctl-capped-q", b"%d" % i)
        rows = table(env.ok("-s", "list_queues", "name", "messages",
                            "policy"))
        assert ["ctl-capped-q", "2", "ctl-cap"] in rows
        ch.queue_delete("ctl-capped-q")
    # Defaults (priority 0, apply-to all) and -p.
    env.ok("add_vhost", "ctl-pv")
    env.ok("-q", "set_policy", "-p", "ctl-pv", "ctl-ttl", ".*",
           '{"message-ttl": 1000}')
    assert env.api.ok("GET", "/api/policies/ctl-pv/ctl-ttl") == {
        "vhost": "ctl-pv", "name": "ctl-ttl", "pattern": ".*",
        "apply-to": "all", "definition": {"message-ttl": 1000},
        "priority": 0}
    env.ok("delete_vhost", "ctl-pv")
    err = env.fails(65, "set_policy", "-p", "ctl-nov", "p", ".*", "{}")
    assert err == "Error:\nVirtual host 'ctl-nov' does not exist\n"
    err = env.fails(65, "set_policy", "p", ".*", "not json")
    assert err.startswith("Error:\nJSON decoding error. Reason: ")
    env.fails(65, "set_policy", "p", ".*", "[1]")
    assert env.api.get("/api/policies/%2F/p").status == 404
    env.api.ok("DELETE", "/api/policies/%2F/ctl-cap")


# ---------------------------------------------------------------------------
# definitions
# ---------------------------------------------------------------------------


def test_export_and_import_definitions_round_trip(env, make_broker,
                                                  tmp_path):
    env.ok("add_user", "ctl-exp", "exp-pw")
    env.ok("set_permissions", "ctl-exp", ".*", ".*", ".*")
    env.ok("set_policy", "ctl-exp-pol", "^ctl-exp", '{"max-length":5}')
    declare(env, "ctl-exp-q", durable=True, arguments={"x-max-length": 9})
    path = tmp_path / "defs.json"
    assert env.ok("export_definitions", str(path)) == (
        'Exporting definitions in JSON to a file at "%s" ...\n' % path)
    defs = json.loads(path.read_text())
    assert "ctl-exp" in [u["name"] for u in defs["users"]]
    assert {"name": "ctl-exp-q", "vhost": "/", "durable": True,
            "auto_delete": False, "arguments": {"x-max-length": 9}} in \
        defs["queues"]
    # "-": the JSON alone on stdout, no info line.
    assert json.loads(env.ok("export_definitions", "-")) == defs

    # Into a second broker, from the file.
    b2 = make_broker(MGMT_CONF)
    e2 = Env(b2, Mgmt(http_port(b2)))
    assert e2.ok("import_definitions", str(path)) == (
        'Importing definitions in JSON from a file at "%s" ...\n'
        "Successfully imported definitions.\n" % path)
    assert e2.login("ctl-exp", "exp-pw") == "ok"  # the hash came along
    assert e2.api.ok("GET", "/api/queues/%2F/ctl-exp-q")["arguments"] == {
        "x-max-length": 9}
    assert e2.api.ok("GET", "/api/policies/%2F/ctl-exp-pol")[
        "definition"] == {"max-length": 5}
    assert json.loads(e2.ok("export_definitions", "-"))["queues"] == \
        defs["queues"]

    # From standard input, into a third.
    b3 = make_broker(MGMT_CONF)
    e3 = Env(b3, Mgmt(http_port(b3)))
    assert e3.ok("import_definitions", "-", input=path.read_text()) == (
        "Importing definitions in JSON from standard input ...\n"
        "Successfully imported definitions.\n")
    assert e3.login("ctl-exp", "exp-pw") == "ok"

    # Bad input changes nothing.
    err = e3.fails(65, "import_definitions", str(tmp_path / "missing.json"))
    assert "File %s does not exist" % (tmp_path / "missing.json") in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    err = e3.fails(65, "import_definitions", str(bad))
    assert "Failed to deserialise input (format: JSON)" in err
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps({"queues": [
        {"name": "x", "vhost": "ctl-nov", "durable": True}]}))
    err = e3.fails(65, "import_definitions", str(refused))
    assert "Failed to import definitions: queue refers to vhost 'ctl-nov'" \
        in err
    err = e3.fails(65, "export_definitions", str(tmp_path / "no" / "x"))
    assert "cannot write" in err
    with env.amqp() as c:
        c.channel().queue_delete("ctl-exp-q")
    env.api.ok("DELETE", "/api/policies/%2F/ctl-exp-pol")


# ---------------------------------------------------------------------------
# close_connection
# ---------------------------------------------------------------------------


def closed_by_broker(c):
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        for _ in range(5):
            c.process_data_events(1)
    return e.value.reply_code, e.value.reply_text


def test_close_connection(env):
    c = env.amqp()
    try:
        name = env.ok("-s", "list_connections", "name").strip()
        assert " -> " in name
        assert env.ok("close_connection", name, "maintenance window") == (
            "Closing connection %s, reason: maintenance window...\n" % name)
        assert closed_by_broker(c) == (
            320, "CONNECTION_FORCED - maintenance window")
    finally:
        if c.is_open:
            c.close()
    # The pid column's form works too, and UTF-8 explanations arrive.
    c = env.amqp()
    try:
        pid = env.ok("-s", "list_connections", "pid").strip()
        assert pid.startswith("<") and pid.endswith(">")
        env.ok("-q", "close_connection", pid, "bientôt")
        assert closed_by_broker(c) == (320, "CONNECTION_FORCED - bientôt")
    finally:
        if c.is_open:
            c.close()
    err = env.fails(65, "close_connection", "127.0.0.1:1 -> 127.0.0.1:2",
                    "x")
    assert "no connection named '127.0.0.1:1 -> 127.0.0.1:2'" in err
