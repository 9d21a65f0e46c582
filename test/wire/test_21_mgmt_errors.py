"""The management API against bad and hostile HTTP input: every request
gets an answer or a clean close, and the broker keeps serving everyone
else.

RabbitMQ 3.10 (cowboy) answers: malformed JSON 400 {"error":
"bad_request","reason":"not_json"}, unknown path 404 {"error":"Object Not
Found","reason":"Not Found"}, wrong method 405 with `allow`. The limits
(16 KiB of request line and headers -> 431, 32 MiB bodies -> 413, a
10 s header timeout) are Warren's (mgmt.h).
"""

import json
import os
import random
import socket
import threading
import time

import pytest

from test_20_mgmt_api import Mgmt, http_port, mgmt_broker, q

pytestmark = pytest.mark.warren_only

MAX_BODY = 32 << 20


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    import conftest
    if conftest.external_broker() is not None:
        pytest.skip("needs a private Warren")
    b = conftest.new_warren(str(tmp_path_factory.mktemp("mgmt-err")),
                            {"management.tcp.port": 0,
                             "management.tcp.ip": "127.0.0.1"})
    yield b
    conftest.stop_checked(b)


@pytest.fixture(scope="module")
def api(mb):
    return Mgmt(http_port(mb))


AUTH = "Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n"  # guest:guest


class Raw:
    """A raw HTTP client connection with a receive buffer."""

    def __init__(self, api, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", api.port),
                                          timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def sendall(self, data):
        self.s.sendall(data)

    def close(self, reset=False):
        if reset:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.s.close()

    def _more(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _need(self, n):
        while len(self.buf) < n:
            self._more()

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def recv_some(self, timeout=5.0):
        self.s.settimeout(timeout)
        if not self.buf:
            self._more()
        b, self.buf = self.buf, b""
        return b

    def read_response(self, timeout=5.0):
        """(status, headers, body), or None when the server closed
        before sending anything."""
        self.s.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in self.buf:
                self._more()
        except (EOFError, ConnectionResetError):
            if not self.buf:
                return None
            raise AssertionError("partial response: %r" % self.buf[:200])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        if status == 100:
            return status, hdrs, b""
        if hdrs.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line(), 16)
                self._need(size + 2)
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    return status, hdrs, body
        n = int(hdrs.get("content-length", "0"))
        self._need(n)
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def closed(self, timeout=5.0):
        """True when the server closes the connection (EOF or reset)."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def raw_conn(api, timeout=5.0):
    return Raw(api, timeout)


def still_serving(api):
    r = api.get("/api/overview")
    assert r.status == 200, r
    return True


# ---------------------------------------------------------------------------


def test_malformed_json_is_400(api):
    for body in (b"{bad", b"[1,2", b"\xff\xfe", b"\"just a string\"", b"42"):
        r = api.request("PUT", "/api/queues/%2F/badjson", raw_body=body,
                        headers={"Content-Type": "application/json"})
        assert r.status == 400, body
        assert r.json == {"error": "bad_request", "reason": "not_json"}
    assert api.get("/api/queues/%2F/badjson").status == 404
    # empty and "null" bodies mean {} (RabbitMQ)
    assert api.request("PUT", "/api/queues/%2F/nulljson",
                       raw_body=b"null").status == 201
    assert api.delete("/api/queues/%2F/nulljson").status == 204


def test_unknown_path_404(api):
    # "/" is the web UI's index now (test_25_mgmt_ui.py)
    for path in ("/api/nope", "/nope.html", "/api",
                 "/api/queues/%2F/q/extra/more",
                 "/api/exchanges/%2F/x/bindings/sideways", "/favicon.ico"):
        r = api.get(path)
        assert r.status == 404, path
        assert r.json == {"error": "Object Not Found", "reason": "Not Found"}


def test_wrong_method_405_with_allow(api):
    r = api.delete("/api/overview")
    assert r.status == 405 and r.body == b""
    assert r.header("allow") == "HEAD, GET, OPTIONS"
    r = api.post("/api/queues/%2F/q", {})
    assert r.status == 405
    assert r.header("allow") == "HEAD, GET, PUT, DELETE, OPTIONS"
    r = api.get("/api/exchanges/%2F/amq.direct/publish")
    assert r.status == 405 and r.header("allow") == "POST, OPTIONS"
    # 405 comes before authentication, as in cowboy_rest
    r = api.request("PATCH", "/api/vhosts", auth=False)
    assert r.status == 405
    r = api.request("OPTIONS", "/api/bindings/%2F/e/x/q/y")
    assert r.status == 200 and r.header("allow") == \
        "HEAD, GET, POST, OPTIONS"
    r = api.request("HEAD", "/api/overview")
    assert r.status == 200 and r.body == b""
    assert int(r.header("content-length")) > 100


def test_body_over_limit_413(api):
    # announced too large: refused before any body byte is read
    s = raw_conn(api)
    try:
        s.sendall(("PUT /api/queues/%%2F/big HTTP/1.1\r\nHost: x\r\n%s"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n"
                   "\r\n" % (AUTH, MAX_BODY + 1)).encode())
        st, hdrs, body = s.read_response()
        assert st == 413
        assert json.loads(body) == {"error": "bad_request", "reason":
                                    "Exceeded HTTP request body size limit"}
        assert hdrs.get("connection") == "close"
        assert s.closed()
    finally:
        s.close()
    # a chunked body that grows past the limit
    s = raw_conn(api, timeout=20)
    try:
        s.sendall(("PUT /api/queues/%%2F/big HTTP/1.1\r\nHost: x\r\n%s"
                   "Transfer-Encoding: chunked\r\n\r\n" % AUTH).encode())
        chunk = b"x" * (1 << 20)
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        sent = 0
        try:
            while sent <= MAX_BODY + (1 << 20):
                s.sendall(frame)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        st = s.read_response(timeout=10)
        assert st is not None and st[0] == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the answer may be lost to a reset; the broker must live
    finally:
        s.close()
    assert api.get("/api/queues/%2F/big").status == 404
    still_serving(api)


def test_large_body_needs_credentials_first(mb, api):
    """An anonymous client cannot make the broker buffer a large body:
    it is answered 401 as soon as its headers are in."""
    for auth in ("", "Authorization: Basic Z3Vlc3Q6bm9wZQ==\r\n"):
        s = raw_conn(api)
        try:
            s.sendall(("POST /api/definitions HTTP/1.1\r\nHost: x\r\n%s"
                       "Content-Length: %d\r\n\r\n" % (auth, 1 << 20))
                      .encode())
            st, hdrs, body = s.read_response()
            assert st == 401
            assert hdrs["www-authenticate"] == \
                'Basic realm="RabbitMQ Management"'
            assert json.loads(body) == {"error": "not_authorized",
                                        "reason": "Login failed"}
            assert s.closed()
        finally:
            s.close()
    # with credentials the same size is read and handled
    big = {"queues": [{"name": "q-%05d" % i, "vhost": "/", "durable": True,
                       "auto_delete": False, "arguments": {}}
                      for i in range(8000)]}
    r = api.post("/api/definitions", big)
    assert r.status == 204
    assert api.get("/api/queues/%2F/q-07999").status == 200
    c = mb.raw()
    try:
        c.open_channel(1)
        for i in range(8000):
            c.send_method(1, "queue.delete", queue="q-%05d" % i, nowait=True)
        c.call(1, "queue.declare", queue="q-07999", passive=False)
        c.call(1, "queue.delete", queue="q-07999")
    finally:
        c.close_socket()
    assert api.ok("GET", "/api/queues/%2F?columns=name") == []


def test_slow_headers_time_out_without_blocking_others(api):
    s = raw_conn(api, timeout=20)
    request = ("GET /api/overview HTTP/1.1\r\nHost: x\r\n%s"
               "X-Padding: %s\r\n\r\n" % (AUTH, "p" * 200)).encode()
    stop = threading.Event()
    result = {}

    def trickle():
        start = time.monotonic()
        try:
            for i in range(len(request)):
                if stop.is_set():
                    return
                s.sendall(request[i:i + 1])
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError, OSError):
            result["cut_after"] = time.monotonic() - start

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        # meanwhile everybody else is served, long before the trickler
        # is done (a bound on being held up, not on the machine's speed)
        for _ in range(20):
            t0 = time.monotonic()
            still_serving(api)
            assert time.monotonic() - t0 < 5.0
            time.sleep(0.05)
        # the trickler is answered 408 and cut off after ~10 s
        resp = s.read_response(timeout=15)
        assert resp is not None and resp[0] == 408
        assert s.closed(timeout=5)
    finally:
        stop.set()
        t.join(5)
        s.close()
    still_serving(api)


def test_garbage_and_binary_input(api):
    for junk in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\x03" * 100,
                 b"GET\r\n\r\n", b"GET /x HTTP/9.9\r\n\r\n",
                 b"GET /api/overview HTTP/1.1\r\nHost x no colon\r\n\r\n",
                 b"POST /api/definitions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /api/definitions HTTP/1.1\r\nContent-Length: 5\r\n"
                 b"Content-Length: 6\r\n\r\nabcdef",
                 b"CONNECT x:1 HTTP/1.1\r\n\r\n"):
        s = raw_conn(api)
        try:
            s.sendall(junk)
            resp = s.read_response()
            assert resp is None or resp[0] in (400, 404, 405), (junk, resp)
            assert resp is not None or s.closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()
    rnd = random.Random(4)
    for i in range(50):
        s = raw_conn(api)
        try:
            s.sendall(bytes(rnd.randrange(256)
                            for _ in range(rnd.randrange(1, 3000))))
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
    still_serving(api)


def test_huge_headers_431(api):
    s = raw_conn(api)
    try:
        s.sendall(("GET /api/overview HTTP/1.1\r\nHost: x\r\n%s"
                   "X-Big: %s\r\n\r\n" % (AUTH, "b" * (20 << 10))).encode())
        st, hdrs, body = s.read_response()
        assert st == 431
        assert s.closed()
    finally:
        s.close()
    s = raw_conn(api)
    try:
        s.sendall(("GET /api/%s HTTP/1.1\r\n\r\n" % ("a" * (17 << 10)))
                  .encode())
        assert s.read_response()[0] == 431
    finally:
        s.close()
    # many small headers add up too
    s = raw_conn(api)
    try:
        s.sendall(b"GET /api/overview HTTP/1.1\r\n" +
                  b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60)
                           for i in range(400)) + b"\r\n")
        assert s.read_response()[0] == 431
    finally:
        s.close()
    still_serving(api)


def test_bad_percent_escapes_and_paths(api):
    for path in ("/api/queues/%ZZ", "/api/queues/%2", "/api/queues/%",
                 "/api/vhosts/a%00b", "/api/queues/%2F/%FF%FE",
                 "/api/queues?page=%G1",
                 "/api" + "/x" * 40):
        r = api.get(path)
        assert r.status == 400, path
        assert r.json["error"] == "bad_request"
    # names longer than AMQP allows are refused, not created
    r = api.put("/api/queues/%2F/" + "q" * 256)
    assert r.status == 400
    r = api.put("/api/exchanges/%2F/" + "x" * 256, {"type": "direct"})
    assert r.status == 400
    still_serving(api)


def test_chunked_request_body(api):
    s = raw_conn(api)
    try:
        body = json.dumps({"durable": True}).encode()
        s.sendall(("PUT /api/queues/%%2F/chunked-q HTTP/1.1\r\nHost: x\r\n%s"
                   "Content-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" % AUTH).encode() +
                  b"%x\r\n%s\r\n" % (5, body[:5]) +
                  b"%x\r\n%s\r\n" % (len(body) - 5, body[5:]) + b"0\r\n\r\n")
        st, hdrs, _ = s.read_response()
        assert st == 201
    finally:
        s.close()
    assert api.get("/api/queues/%2F/chunked-q").json["durable"] is True
    api.delete("/api/queues/%2F/chunked-q")


def test_pipelined_and_keepalive(api):
    s = raw_conn(api)
    try:
        reqs = b"".join(
            ("GET /api/%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (p, AUTH)).encode()
            for p in ("whoami", "nope", "cluster-name", "whoami"))
        reqs += ("PUT /api/queues/%%2F/pipe-q HTTP/1.1\r\nHost: x\r\n%s"
                 "Content-Length: 2\r\n\r\n{}" % AUTH).encode()
        s.sendall(reqs)
        got = []
        for _ in range(5):
            st, hdrs, body = s.read_response()
            got.append(st)
        assert got == [200, 404, 200, 200, 201]
        # the same connection serves more, then closes on request
        s.sendall(("DELETE /api/queues/%%2F/pipe-q HTTP/1.1\r\nHost: x\r\n%s"
                   "Connection: close\r\n\r\n" % AUTH).encode())
        st, hdrs, _ = s.read_response()
        assert st == 204 and hdrs.get("connection") == "close"
        assert s.closed()
    finally:
        s.close()


def test_expect_100_continue(api):
    s = raw_conn(api)
    try:
        body = b'{"durable": false}'
        s.sendall(("PUT /api/queues/%%2F/cont-q HTTP/1.1\r\nHost: x\r\n%s"
                   "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                   % (AUTH, len(body))).encode())
        st, _, _ = s.read_response()
        assert st == 100
        s.sendall(body)
        st, _, _ = s.read_response()
        assert st == 201
    finally:
        s.close()
    api.delete("/api/queues/%2F/cont-q")


def test_client_closing_mid_request_and_mid_response(mb, api):
    # mid headers, mid body
    for part in (b"GET /api/over", b"PUT /api/queues/%2F/x HTTP/1.1\r\n"
                 b"Content-Length: 100\r\n\r\n{\"dur"):
        s = raw_conn(api)
        s.sendall(part)
        s.close()
    # mid response: a streamed list of a few thousand queues
    c = mb.raw()
    try:
        c.open_channel(1)
        for i in range(3000):
            c.send_method(1, "queue.declare", queue="mid-%04d" % i,
                          nowait=True)
        c.call(1, "queue.declare", queue="mid-last")
        for i in range(5):
            s = raw_conn(api)
            s.sendall(("GET /api/queues HTTP/1.1\r\nHost: x\r\n%s\r\n"
                       % AUTH).encode())
            s.recv_some()
            s.close(reset=True)
        still_serving(api)
        # and a complete one arrives whole, chunked
        s = raw_conn(api, timeout=20)
        try:
            s.sendall(("GET /api/queues/%%2F?columns=name HTTP/1.1\r\n"
                       "Host: x\r\n%s\r\n" % AUTH).encode())
            st, hdrs, body = s.read_response(timeout=20)
            assert st == 200 and hdrs.get("transfer-encoding") == "chunked"
            names = [x["name"] for x in json.loads(body)]
            assert len(names) == 3001 and names == sorted(names)
        finally:
            s.close()
        for i in range(3000):
            c.send_method(1, "queue.delete", queue="mid-%04d" % i,
                          nowait=True)
        c.call(1, "queue.delete", queue="mid-last")
    finally:
        c.close_socket()
    still_serving(api)


def whoami(s):
    s.sendall(("GET /api/whoami HTTP/1.1\r\nHost: x\r\n%s\r\n"
               % AUTH).encode())
    r = s.read_response()
    return r and r[0]


def test_idle_sockets_cannot_lock_users_out(api):
    """1,000 sockets that never send a byte (more than the 256 the API
    holds, and than the 64 it holds per address): logged-in connections
    keep working, and a new connection with a real request succeeds,
    because it takes the place of the oldest anonymous one."""
    users = [raw_conn(api) for _ in range(5)]
    idle = []
    try:
        assert [whoami(s) for s in users] == [200] * 5
        for _ in range(1000):
            idle.append(raw_conn(api))
        assert [whoami(s) for s in users] == [200] * 5
        fresh = raw_conn(api)
        assert whoami(fresh) == 200
        fresh.close()
        # at most 64 anonymous ones from this address are still open
        time.sleep(0.3)
        still_open = sum(1 for s in idle[-100:] if not s.closed(timeout=0.01))
        assert still_open <= 64
    finally:
        for s in users + idle:
            s.close()
    assert wait_serving(api)


def test_anonymous_connection_deadline(api):
    """A connection that does not log in within 5 s is closed (a request
    in progress gets its 408); a logged-in one stays for keep-alive."""
    anon, half, user = raw_conn(api), raw_conn(api), raw_conn(api)
    try:
        assert whoami(user) == 200
        half.sendall(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        assert anon.closed(timeout=20)
        assert 3.0 <= time.monotonic() - start <= 20
        assert half.read_response(timeout=20)[0] == 408
        assert whoami(user) == 200
    finally:
        for s in (anon, half, user):
            s.close()


def wait_serving(api, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if api.get("/api/overview").status == 200:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def test_bad_credentials_shapes(api):
    for h in ("Basic", "Basic !!!!", "Basic " + "A" * 5000, "Bearer x",
              "Basic Z3Vlc3Q="):  # "guest" without a colon
        r = api.request("GET", "/api/overview", auth=False,
                        headers={"Authorization": h})
        assert r.status == 401, h
    still_serving(api)


def test_broker_process_survived(mb, api):
    assert mb.proc.poll() is None
    still_serving(api)
    c = mb.raw()
    try:
        c.open_channel(1)
    finally:
        c.close_socket()
