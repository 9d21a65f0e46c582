"""TLS: AMQPS listeners, HTTPS for the management API, client certificates
and EXTERNAL login, SIGHUP certificate reload, handshakes that never end,
and configurations that must stop the start (Warren only: private brokers
with their own certificates).

The certificates are made by the test with the openssl CLI: a CA, a server
certificate for localhost/127.0.0.1, a second one (another serial and
subject) for the reload, client certificates for CN=tlsuser and CN=nobody,
one signed by another CA, an encrypted key and a key that matches nothing.

What RabbitMQ 3.10.8 does (tried with rabbitmq_auth_mechanism_ssl, and
from its source): EXTERNAL is offered on TLS sockets only, with a client
certificate or without (then refused at start-ok), names
the user by ssl_cert_login_from (distinguished_name by default, as
"CN=...,O=..."), and refuses an unknown user as any login is refused: 403
ACCESS_REFUSED "Login was refused using authentication mechanism EXTERNAL.
For details see the broker logfile." (authentication_failure_close). Its
/api/connections names the session with Erlang's ssl terms: ssl_protocol
"tlsv1.3", ssl_cipher "aes_256_gcm", ssl_key_exchange ("any" in TLS 1.3,
"ecdhe_ecdsa" ...), ssl_hash ("aead", "sha384") and the certificate's
subject, issuer and validity; false and nulls without TLS.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pika
import pytest

import rawamqp
from wireutil import run_parallel, wait_until

pytestmark = pytest.mark.warren_only

HAVE_TOOLS = shutil.which("amqp-publish") is not None


# ---- certificates -----------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_ca(d, name, subject):
    openssl("req", "-x509", *EC, "-keyout", name + ".key", "-out",
            name + ".pem", "-days", "30", "-subj", subject, cwd=d)


def make_cert(d, name, subject, serial, ca="ca", server=False):
    openssl("req", *EC, "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", subject, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n" if server
                else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-set_serial", str(serial), "-days", "30",
            "-out", name + ".pem", "-extfile", ext, cwd=d)


class Pki:
    def __init__(self, d):
        self.dir = d
        make_ca(d, "ca", "/CN=Warren Test CA")
        make_ca(d, "otherca", "/CN=Another CA")
        make_cert(d, "server", "/O=server/CN=localhost", 0x1001, server=True)
        make_cert(d, "server2", "/O=server2/CN=localhost", 0x2002,
                  server=True)
        make_cert(d, "client", "/O=client/CN=tlsuser", 0x3003)
        make_cert(d, "nobody", "/O=client/CN=nobody", 0x4004)
        make_cert(d, "stranger", "/O=client/CN=tlsuser", 0x5005,
                  ca="otherca")
        openssl("pkey", "-in", "server.key", "-aes256", "-passout",
                "pass:s3cret", "-out", "server_enc.key", cwd=d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def client_ctx(self, cert=None, version=None):
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        if cert:
            ctx.load_cert_chain(self.path(cert + ".pem"),
                                self.path(cert + ".key"))
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(str(tmp_path_factory.mktemp("pki")))


def ssl_conf(pki, **kw):
    conf = {"listeners.ssl.default": "127.0.0.1:0",
            "ssl_options.certfile": pki.path("server.pem"),
            "ssl_options.keyfile": pki.path("server.key"),
            "ssl_options.cacertfile": pki.path("ca.pem")}
    conf.update(kw)
    return conf


def port_of(b, proto):
    line = b.wait_for_line(r"listening on \S+:\d+ \(%s\)" % proto)
    assert line, b.stderr_text()
    return int(re.search(r":(\d+) \(%s\)" % proto, line).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_params(b, pki, cert=None, **kw):
    kw.setdefault("ssl_options",
                  pika.SSLOptions(pki.client_ctx(cert), "localhost"))
    return b.params(host="localhost", port=port_of(b, "amqps"), **kw)


def tls_raw(b, pki, cert=None, version=None):
    """A rawamqp connection whose socket speaks TLS."""
    c = rawamqp.Connection("127.0.0.1", port_of(b, "amqps"))
    c.sock = pki.client_ctx(cert, version).wrap_socket(
        c.sock, server_hostname="localhost")
    return c


def mgmt_get(port, path, scheme="http", ctx=None, user="guest"):
    req = urllib.request.Request(
        "%s://localhost:%d%s" % (scheme, port, path),
        headers={"Authorization": "Basic " + base64.b64encode(
            ("%s:guest" % user).encode()).decode()})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return r.status, json.load(r)


def add_user(b, name):
    """A user without a password, with access to /, over the HTTP API."""
    port = port_of(b, "http")
    for path, body in (
            ("/api/users/%s" % urllib.request.quote(name, safe=""),
             {"password": "unused by EXTERNAL", "tags": ""}),
            ("/api/permissions/%%2f/%s" % urllib.request.quote(name, safe=""),
             {"configure": ".*", "write": ".*", "read": ".*"})):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (port, path), method="PUT",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(
                         b"guest:guest").decode()})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status in (201, 204)


def s_client(port, pki, *args, stdin=b"", brief=True):
    """openssl s_client: (exit status, stdout + stderr)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
         "-servername", "localhost", "-CAfile", pki.path("ca.pem"),
         "-verify_return_error"] + (["-brief"] if brief else []) +
        list(args),
        input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=20)
    return r.returncode, r.stdout.decode("utf-8", "replace")


# ---- AMQPS -------------------------------------------------------------------

def test_pika_publish_and_consume_over_tls(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki))
    with pika.BlockingConnection(tls_params(b, pki)) as conn:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        # small frames gathered into records, bodies larger than a record
        # and than frame_max, across partial writes
        bodies = [b"s%d" % i for i in range(200)] + \
            [bytes([i]) * (300000 + i) for i in range(20)]
        for body in bodies:
            ch.basic_publish("", q, body)
        got = []
        for _m, _p, body in ch.consume(q, auto_ack=True,
                                       inactivity_timeout=10):
            assert body is not None, "timed out after %d" % len(got)
            got.append(body)
            if len(got) == len(bodies):
                break
        assert got == bodies
    # the plain listener still works beside it
    with pika.BlockingConnection(b.params()) as conn:
        conn.channel()


def test_slow_tls_reader_gets_every_byte(make_broker, pki):
    """A consumer that stops reading: the broker's TLS writes meet a full
    socket (SSL_ERROR_WANT_WRITE, repeated later with the same bytes),
    its output backs up, and everything arrives intact once it reads."""
    b = make_broker(extra_conf=ssl_conf(pki))
    bodies = [bytes([i % 251]) * (200000 + 7 * i) for i in range(40)]
    with pika.BlockingConnection(b.params()) as pc:
        ch = pc.channel()
        ch.queue_declare("tls-slow")
        for body in bodies:
            ch.basic_publish("", "tls-slow", body)
        ch.queue_declare("tls-slow", passive=True)
    got = []
    with pika.BlockingConnection(tls_params(b, pki)) as conn:
        ch = conn.channel()
        ch.basic_consume("tls-slow", lambda c, m, p, body: got.append(body),
                         auto_ack=True)
        time.sleep(1.5)  # not reading: the broker's writes back up
        deadline = time.monotonic() + 20
        while len(got) < len(bodies) and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        ch.queue_delete("tls-slow")
    assert len(got) == len(bodies)
    assert got == bodies


def test_api_connections_show_tls(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "ssl_options.verify": "verify_peer"}))
    with pika.BlockingConnection(tls_params(b, pki, cert="client")) as tc, \
            pika.BlockingConnection(b.params()) as pc:
        tc.channel()
        pc.channel()
        http = port_of(b, "http")
        _, conns = mgmt_get(http, "/api/connections")
        assert len(conns) == 2
        amqps = port_of(b, "amqps")
        tls = [c for c in conns if c["port"] == amqps]
        plain = [c for c in conns if c["port"] != amqps]
        assert len(tls) == 1 and len(plain) == 1
        t = tls[0]
        assert t["ssl"] is True
        assert t["ssl_protocol"] == "tlsv1.3"
        assert t["ssl_cipher"] == "aes_256_gcm"
        assert t["ssl_key_exchange"] == "any"
        assert t["ssl_hash"] == "aead"
        assert t["peer_cert_subject"] == "CN=tlsuser,O=client"
        assert t["peer_cert_issuer"] == "CN=Warren Test CA"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ - "
                            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                            t["peer_cert_validity"])
        _, one = mgmt_get(http, "/api/connections/" +
                          urllib.request.quote(t["name"], safe=""))
        assert one["ssl"] is True and one["ssl_protocol"] == "tlsv1.3"
        p = plain[0]
        assert p["ssl"] is False
        for k in ("ssl_protocol", "ssl_cipher", "ssl_key_exchange",
                  "ssl_hash", "peer_cert_subject", "peer_cert_issuer",
                  "peer_cert_validity"):
            assert p[k] is None, k


def test_tls12_session_names(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "ssl_options.versions.1": "tlsv1.2",
        "ssl_options.ciphers.1": "ECDHE-ECDSA-AES128-GCM-SHA256"}))
    with pika.BlockingConnection(tls_params(b, pki)) as conn:
        conn.channel()
        _, conns = mgmt_get(port_of(b, "http"), "/api/connections")
        (t,) = conns
        assert (t["ssl_protocol"], t["ssl_cipher"], t["ssl_key_exchange"],
                t["ssl_hash"]) == ("tlsv1.2", "aes_128_gcm", "ecdhe_ecdsa",
                                   "aead")
        assert t["peer_cert_subject"] is None


@pytest.mark.skipif(not HAVE_TOOLS, reason="amqp-tools not installed")
def test_amqp_tools_over_tls(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki))
    url = "amqps://guest:guest@localhost:%d/%%2f" % port_of(b, "amqps")
    tls = ["--ssl", "--cacert", pki.path("ca.pem"), "-u", url]

    def tool(*args, timeout=10):
        return subprocess.run(list(args[:1]) + tls + list(args[1:]),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)

    r = tool("amqp-declare-queue", "-q", "tls-tools")
    assert r.returncode == 0, r.stderr
    consumer = subprocess.Popen(
        ["amqp-consume"] + tls + ["-q", "tls-tools", "-c", "2", "cat"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = port_of(b, "http")
        wait_until(lambda: mgmt_get(port, "/api/queues/%2f/tls-tools")[1]
                   .get("consumers") == 1, timeout=10)
        for body in ("hello", "over tls"):
            r = tool("amqp-publish", "-r", "tls-tools", "-b", body)
            assert r.returncode == 0, r.stderr
        out, err = consumer.communicate(timeout=10)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    assert out == b"helloover tls"
    r = tool("amqp-publish", "-r", "tls-tools", "-b", "third")
    r = tool("amqp-get", "-q", "tls-tools")
    assert (r.returncode, r.stdout) == (0, b"third")
    # a client that does not trust the server's CA is refused by itself
    r = subprocess.run(["amqp-get", "--ssl", "--cacert",
                        pki.path("otherca.pem"), "-u", url, "-q",
                        "tls-tools"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    assert r.returncode != 0


def test_versions_refuse_older_clients(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "ssl_options.versions.1": "tlsv1.3"}))
    port = port_of(b, "amqps")
    rc, out = s_client(port, pki, "-tls1_2")
    assert rc != 0, out
    assert "Protocol version: TLSv1.2" not in out
    rc, out = s_client(port, pki, "-tls1_3", stdin=b"AMQP\x00\x00\x09\x01")
    assert rc == 0, out
    assert "Protocol version: TLSv1.3" in out
    # the plain text behind the handshake is AMQP: connection.start
    c = tls_raw(b, pki, version=ssl.TLSVersion.TLSv1_3)
    c.begin()
    assert c.start.mechanisms == b"PLAIN AMQPLAIN"
    c.close_socket()
    with pytest.raises(ssl.SSLError):
        tls_raw(b, pki, version=ssl.TLSVersion.TLSv1_2)


def test_verify_peer_and_fail_if_no_peer_cert(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "ssl_options.verify": "verify_peer",
        "ssl_options.fail_if_no_peer_cert": "true"}))
    port = port_of(b, "amqps")
    # TLS 1.2: the handshake itself fails without a certificate
    rc, out = s_client(port, pki, "-tls1_2")
    assert rc != 0, out
    rc, out = s_client(port, pki, "-tls1_2", "-cert", pki.path("client.pem"),
                       "-key", pki.path("client.key"),
                       stdin=b"AMQP\x00\x00\x09\x01")
    assert rc == 0, out
    # TLS 1.3: the client learns it at its first read (an alert)
    c = tls_raw(b, pki)
    with pytest.raises((ssl.SSLError, rawamqp.Closed, ConnectionError)):
        c.begin()
    c.close_socket()
    # a certificate from a CA the broker does not trust is refused too
    c = tls_raw(b, pki, cert="stranger")
    with pytest.raises((ssl.SSLError, rawamqp.Closed, ConnectionError)):
        c.begin()
    c.close_socket()
    with pika.BlockingConnection(tls_params(b, pki, cert="client")) as conn:
        conn.channel()


# ---- EXTERNAL ------------------------------------------------------------------

EXTERNAL_CONF = {"ssl_options.verify": "verify_peer",
                 "auth_mechanisms.1": "PLAIN",
                 "auth_mechanisms.2": "EXTERNAL"}


def test_external_login_with_common_name(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, ssl_cert_login_from="common_name",
                                        **EXTERNAL_CONF))
    add_user(b, "tlsuser")
    ext = pika.credentials.ExternalCredentials()
    with pika.BlockingConnection(
            tls_params(b, pki, cert="client", credentials=ext)) as conn:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"by certificate")
        _, _, body = ch.basic_get(q, auto_ack=True)
        assert body == b"by certificate"
        _, conns = mgmt_get(port_of(b, "http"), "/api/connections")
        assert [(c["user"], c["auth_mechanism"]) for c in conns] == \
            [("tlsuser", "EXTERNAL")]
    # PLAIN is still there, on TLS and plain TCP
    with pika.BlockingConnection(tls_params(b, pki, cert="client")) as conn:
        conn.channel()
    # the mechanisms offered, in the configured order: EXTERNAL on TLS
    # connections only, with a client certificate or not (RabbitMQ 3.10.8
    # offers it to both and refuses the one without at start-ok)
    c = tls_raw(b, pki, cert="client")
    assert c.begin().mechanisms == b"PLAIN EXTERNAL"
    c.close_socket()
    c = tls_raw(b, pki)
    assert c.begin().mechanisms == b"PLAIN EXTERNAL"
    c.close_socket()
    # on plain TCP it is not offered, and asking for it anyway closes the
    # socket, as for any mechanism not offered (RabbitMQ 3.10.8)
    c = b.raw(handshake=False)
    assert c.begin().mechanisms == b"PLAIN"
    with pytest.raises(rawamqp.Closed):
        c.login(mechanism="EXTERNAL", response=b"")
        c.read_method(timeout=3)
    c.close_socket()


def test_external_refusals(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, ssl_cert_login_from="common_name",
                                        **EXTERNAL_CONF))

    def refused(cert):
        c = tls_raw(b, pki, cert=cert)
        c.begin()
        m = c.login(mechanism="EXTERNAL", response=b"")
        assert (m.name, m.reply_code, m.reply_text) == (
            "connection.close", 403,
            "ACCESS_REFUSED - Login was refused using authentication "
            "mechanism EXTERNAL. For details see the broker logfile.")
        c.close_socket()

    refused("nobody")  # no such user
    assert b.wait_for_line(r"EXTERNAL login refused: user 'nobody' - "
                           r"invalid credentials")
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(tls_params(
            b, pki, cert="nobody",
            credentials=pika.credentials.ExternalCredentials()))
    # without a certificate: refused the same way (RabbitMQ 3.10.8)
    refused(None)
    assert b.wait_for_line(r"EXTERNAL login refused: no peer certificate")


def test_external_distinguished_name_by_default(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki, **EXTERNAL_CONF))
    add_user(b, "CN=tlsuser,O=client")
    ext = pika.credentials.ExternalCredentials()
    with pika.BlockingConnection(
            tls_params(b, pki, cert="client", credentials=ext)) as conn:
        conn.channel()
        _, conns = mgmt_get(port_of(b, "http"), "/api/connections")
        assert conns[0]["user"] == "CN=tlsuser,O=client"


# ---- HTTPS ---------------------------------------------------------------------

def test_https_management_api(make_broker, pki):
    port = free_port()
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "management.ssl.port": port, "management.ssl.ip": "127.0.0.1",
        "management.ssl.certfile": pki.path("server.pem"),
        "management.ssl.keyfile": pki.path("server_enc.key"),
        "management.ssl.password": "s3cret"}))
    assert port_of(b, "https") == port
    ctx = pki.client_ctx()
    status, ov = mgmt_get(port, "/api/overview", "https", ctx)
    assert status == 200 and ov["node"]
    # RabbitMQ's protocol names for the listeners
    assert sorted((x["protocol"], x["port"]) for x in ov["listeners"]) == \
        sorted([("amqp", b.port), ("amqp/ssl", port_of(b, "amqps")),
                ("http", port_of(b, "http")), ("https", port)])
    # several requests on one TLS connection, a large response
    status, _ = mgmt_get(port, "/api/whoami", "https", ctx)
    assert status == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        mgmt_get(port, "/api/overview", "https", ctx, user="nobody")
    assert e.value.code == 401
    # plain HTTP keeps working on management.tcp.port
    status, _ = mgmt_get(port_of(b, "http"), "/api/overview")
    assert status == 200
    # SIGHUP reloads this certificate too (its key with its password)
    n = len(b.stderr_lines())
    b.send_signal(signal.SIGHUP)
    assert b.wait_for_line(r"SIGHUP: reloaded the TLS certificate of "
                           r"management.ssl", start=n)
    assert mgmt_get(port, "/api/overview", "https", ctx)[0] == 200
    # an HTTP request to the HTTPS port is no handshake: dropped
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")


# ---- SIGHUP --------------------------------------------------------------------

def serial_of(port, pki):
    rc, out = s_client(port, pki, "-showcerts", brief=False)
    assert rc == 0, out
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                    out, re.S).group(0)
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject"],
                       input=pem.encode(), stdout=subprocess.PIPE, check=True)
    return r.stdout.decode()


def test_sighup_reloads_the_certificate(make_broker, pki, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(pki.path("server.pem"), cert)
    shutil.copy(pki.path("server.key"), key)
    b = make_broker(extra_conf=ssl_conf(pki, **{
        "ssl_options.certfile": cert, "ssl_options.keyfile": key}))
    port = port_of(b, "amqps")
    assert "serial=1001" in serial_of(port, pki)
    old = pika.BlockingConnection(tls_params(b, pki))
    och = old.channel()
    q = och.queue_declare("", exclusive=True).method.queue
    shutil.copy(pki.path("server2.pem"), cert)
    shutil.copy(pki.path("server2.key"), key)
    n = len(b.stderr_lines())
    b.send_signal(signal.SIGHUP)
    assert b.wait_for_line(r"SIGHUP: reloaded the TLS certificate of "
                           r"ssl_options .*serial 2002", start=n)
    got = serial_of(port, pki)
    assert "serial=2002" in got and "O = server2" in got
    # the connection made before goes on with its session
    och.basic_publish("", q, b"still here")
    assert och.basic_get(q, auto_ack=True)[2] == b"still here"
    old.close()
    # a broken file: the old certificate stays, the broker runs on
    with open(key, "w") as f:
        f.write("not a key\n")
    n = len(b.stderr_lines())
    b.send_signal(signal.SIGHUP)
    assert b.wait_for_line(r"SIGHUP: cannot reload the TLS certificate of "
                           r"ssl_options: ssl_options.keyfile: %s: "
                           % re.escape(key), start=n)
    assert "serial=2002" in serial_of(port, pki)
    assert b.proc.poll() is None
    with pika.BlockingConnection(tls_params(b, pki)) as conn:
        conn.channel()


# ---- handshakes that never end --------------------------------------------------

def test_slow_and_hostile_handshakes_block_nobody(make_broker, pki):
    # RabbitMQ: ssl_handshake_timeout for TLS, handshake_timeout for AMQP
    b = make_broker(extra_conf=ssl_conf(pki, ssl_handshake_timeout=2000,
                                        handshake_timeout=4000))
    port = port_of(b, "amqps")
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(100))
    # half a ClientHello, then nothing
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    # a whole TLS handshake, then no AMQP header
    mute = pki.client_ctx().wrap_socket(
        socket.create_connection(("127.0.0.1", port)),
        server_hostname="localhost")
    t0 = time.monotonic()
    with pika.BlockingConnection(tls_params(b, pki)) as conn:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"fine")
        assert ch.basic_get(q, auto_ack=True)[2] == b"fine"

    def still_open(s):
        try:
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    # The good client did not wait for the stuck handshakes to time out
    # (no wall-clock bound: a loaded CI machine may be slow, not blocked).
    assert all(still_open(s) for s in silent + [half, garbage])

    def dropped(s):
        s.settimeout(6)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout, ssl.SSLError):
            pass
        return time.monotonic() - t0

    # garbage announces a 512-byte record and sends 100: it waits too
    waited = [dropped(s) for s in silent + [half, garbage]]
    assert all(1.5 < w < 4.0 for w in waited), waited
    assert b.wait_for_line(r"TLS handshake timeout")
    assert 3.5 < dropped(mute) < 7.0
    assert b.wait_for_line(r"\): handshake timeout")
    for s in silent + [garbage, half, mute]:
        s.close()
    assert b.proc.poll() is None


def test_many_tls_clients_at_once(make_broker, pki):
    b = make_broker(extra_conf=ssl_conf(pki))

    def client(i):
        def run():
            with pika.BlockingConnection(tls_params(b, pki)) as conn:
                ch = conn.channel()
                q = ch.queue_declare("", exclusive=True).method.queue
                for k in range(50):
                    ch.basic_publish("", q, b"%d-%d" % (i, k))
                got = [ch.basic_get(q, auto_ack=True)[2] for _ in range(50)]
                assert got == [b"%d-%d" % (i, k) for k in range(50)]
        return run

    run_parallel(*[client(i) for i in range(8)])


# ---- configurations that stop the start -----------------------------------------

def start_fails(make_broker, conf):
    b = make_broker(extra_conf=conf, start=False)
    b.write_config()
    binary = os.environ.get("WARREN_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "server", "warren")
    r = subprocess.run([binary, "--config", b.config_path, "--listen",
                        "127.0.0.1:0", "--data-dir", b.data_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    assert r.returncode != 0
    return r.stderr.decode()


def test_bad_tls_config_stops_the_start(make_broker, pki, tmp_path):
    missing = str(tmp_path / "missing.pem")
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.certfile": missing}))
    assert ("ssl_options.certfile: %s: No such file or directory" % missing
            in err), err
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.keyfile": pki.path("server_enc.key"),
        "ssl_options.password": "wrong"}))
    assert "ssl_options.keyfile: %s: cannot load the private key" % \
        pki.path("server_enc.key") in err, err
    assert "wrong password?" in err
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.keyfile": pki.path("server_enc.key")}))
    assert "cannot load the private key" in err, err
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.keyfile": pki.path("client.key")}))
    assert ("ssl_options.keyfile: %s: the private key does not match the "
            "certificate in ssl_options.certfile" % pki.path("client.key")
            in err), err
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.cacertfile": None, "ssl_options.verify": "verify_peer"}))
    assert "ssl_options.verify = verify_peer needs ssl_options.cacertfile" \
        in err, err
    err = start_fails(make_broker, ssl_conf(pki, **{
        "ssl_options.ciphers.1": "NO-SUCH-CIPHER"}))
    assert "ssl_options.ciphers: no cipher OpenSSL knows" in err, err
    err = start_fails(make_broker, {
        "management.ssl.port": free_port(),
        "management.ssl.certfile": pki.path("server.pem"),
        "management.ssl.keyfile": missing})
    assert "management.ssl.keyfile: %s: No such file or directory" % \
        missing in err, err
    err = start_fails(make_broker, {"listeners.ssl.default": "127.0.0.1:0"})
    assert "ssl_options.certfile is not set" in err, err


def test_sighup_without_tls_keeps_running(make_broker):
    b = make_broker()
    b.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    assert b.proc.poll() is None
    with pika.BlockingConnection(b.params()) as conn:
        conn.channel()


# ---- a TLS client relayed to its vhost's leader (cluster) ---------------------

def test_tls_client_relayed_to_the_vhosts_leader(pki, tmp_path):
    """A node that does not lead the vhost relays its clients' plain text
    to the leader: over TLS it copies the decrypted bytes (no splicing of
    the encrypted stream)."""
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs private Warren nodes")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                    "cluster"))
    import localcluster
    from test_20_mgmt_api import Mgmt

    lc = localcluster.LocalCluster(
        nodes=2, workdir=str(tmp_path / "cluster"), ttl=4,
        extra_conf={"ssl_options.certfile": pki.path("server.pem"),
                    "ssl_options.keyfile": pki.path("server.key")})
    ports = []
    for n in lc.nodes:
        ports.append(localcluster.free_port())
        n.extra_conf["listeners.ssl.default"] = "127.0.0.1:%d" % ports[-1]
    try:
        lc.start()
        api = Mgmt(lc.node(0).mgmt_port)
        vhosts = ["tls-%d" % i for i in range(6)]
        for vh in vhosts:
            assert api.put("/api/vhosts/" + vh).status in (201, 204)
            assert api.put("/api/permissions/%s/guest" % vh,
                           {"configure": ".*", "write": ".*",
                            "read": ".*"}).status in (201, 204)

        def leader(vh):
            r = api.get("/api/vhosts/" + vh)
            return r.json.get("leader") if r.status == 200 else None

        assert wait_until(lambda: all(leader(vh) for vh in vhosts), 20)
        other = [vh for vh in vhosts if leader(vh) != lc.node(0).name]
        assert other, "node 2 leads none of %s" % vhosts
        params = pika.ConnectionParameters(
            host="localhost", port=ports[0], virtual_host=other[0],
            ssl_options=pika.SSLOptions(pki.client_ctx(), "localhost"),
            connection_attempts=1)
        bodies = [b"small %d" % i for i in range(100)] + \
            [bytes([i]) * 300000 for i in range(10)]
        with pika.BlockingConnection(params) as conn:
            ch = conn.channel()
            ch.queue_declare("relayed")
            ch.confirm_delivery()
            for body in bodies:
                ch.basic_publish("", "relayed", body)
            got = []
            for _m, _p, body in ch.consume("relayed", auto_ack=True,
                                           inactivity_timeout=10):
                assert body is not None, "timed out after %d" % len(got)
                got.append(body)
                if len(got) == len(bodies):
                    break
            assert got == bodies
            ch.cancel()
            ch.queue_delete("relayed")
        assert lc.node(0).wait_for_line(r"relayed to node", timeout=5)
    finally:
        lc.close()
