"""rawamqp: a tiny raw AMQP 0-9-1 client for wire tests.

It sends what no client library will send (wrong protocol headers, frames
on unopened channels, truncated arguments, bad frame-end octets, oversized
frames, half-sent frames) and reads the server's answer frame by frame, so
that tests can assert exact reply codes, texts, class and method ids, and
the order of frames.

Only the Python standard library is used. Everything is synchronous: a
Connection wraps one blocking socket with a read buffer; every read takes a
timeout and raises Timeout when nothing complete arrived in time, or Closed
when the server closed the socket.

Layout:
  - field-table / value encoders and decoders (RabbitMQ's type letters:
    t b B s u I i l f d D S A T F V x; see RABBITMQ-NOTES.md),
  - the method table (class id, method id, argument types) of RabbitMQ's
    extended 0-9-1, with encode_method() / decode_method(),
  - basic content properties (all 14 flags) encode/decode,
  - Connection: socket, frames, handshake, helpers.

Invariants: encoders never validate (tests need to send invalid things);
decoders raise ValueError on malformed server input, which a test reports
as a failure.
"""

import collections
import decimal
import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MIN_SIZE = 4096

# Reply codes (AMQP 0-9-1).
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541


class Closed(Exception):
    """The server closed (or reset) the TCP connection."""


class Timeout(Exception):
    """Nothing (complete) arrived within the timeout."""


# ---------------------------------------------------------------------------
# Field values and tables
# ---------------------------------------------------------------------------


class F(collections.namedtuple("F", "tag value")):
    """A field value with an explicit RabbitMQ type letter.

    Decoders return F values, so tests can compare types as well as values.
    For 'D' the value is (scale, unsigned 32-bit value); for 'A' a list of
    F; for 'F' a dict of name -> F (or an OrderedDict / list of pairs when
    the order matters); for 'V' None; for 'x' and 'S' bytes.
    """

    __slots__ = ()


def shortstr(s):
    """Encode a short string (u8 length). Accepts str or bytes."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack(">B", len(s)) + s


def longstr(s):
    """Encode a long string (u32 length). Accepts str or bytes."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack(">I", len(s)) + s


def _auto_field(v):
    """Map a plain Python value to an F with the RabbitMQ convention."""
    if isinstance(v, F):
        return v
    if v is None:
        return F("V", None)
    if isinstance(v, bool):
        return F("t", v)
    if isinstance(v, int):
        if -(2**31) <= v < 2**31:
            return F("I", v)
        return F("l", v)
    if isinstance(v, float):
        return F("d", v)
    if isinstance(v, decimal.Decimal):
        sign, digits, exp = v.as_tuple()
        scale = max(0, -exp)
        return F("D", (scale, int(v.scaleb(scale))))
    if isinstance(v, str):
        return F("S", v.encode("utf-8"))
    if isinstance(v, (bytes, bytearray)):
        return F("S", bytes(v))
    if isinstance(v, dict):
        return F("F", v)
    if isinstance(v, (list, tuple)):
        return F("A", list(v))
    raise TypeError("no field type for %r" % (v,))


_SIMPLE = {
    "b": ">b",
    "B": ">B",
    "s": ">h",
    "u": ">H",
    "I": ">i",
    "i": ">I",
    "l": ">q",
    "L": ">q",
    "f": ">f",
    "d": ">d",
    "T": ">Q",
}


def encode_value(v):
    """Encode one tagged field value (tag letter + payload)."""
    f = _auto_field(v)
    tag, val = f.tag, f.value
    out = tag.encode("ascii")
    if tag == "t":
        return out + (b"\x01" if val else b"\x00")
    if tag in _SIMPLE:
        return out + struct.pack(_SIMPLE[tag], val)
    if tag == "D":
        scale, num = val
        return out + struct.pack(">BI", scale, num)
    if tag in ("S", "x"):
        return out + longstr(val)
    if tag == "A":
        body = b"".join(encode_value(x) for x in val)
        return out + struct.pack(">I", len(body)) + body
    if tag == "F":
        return out + encode_table(val)
    if tag == "V":
        return out
    raise ValueError("unknown tag %r" % tag)


def encode_table_body(t):
    """Encode a table's entries without the u32 length prefix.

    `t` is a dict or a list of (name, value) pairs (duplicates allowed).
    """
    items = t.items() if isinstance(t, dict) else t
    return b"".join(shortstr(k) + encode_value(v) for k, v in items)


def encode_table(t):
    """Encode a field table with its u32 length prefix."""
    if t is None:
        t = {}
    body = encode_table_body(t)
    return struct.pack(">I", len(body)) + body


def nested_table(depth, leaf=None):
    """A table nested `depth` levels deep: {'n': {'n': ... leaf}}."""
    t = leaf if leaf is not None else {"leaf": F("I", 1)}
    for _ in range(depth - 1):
        t = {"n": F("F", t)}
    return t


def nested_table_bytes(depth, key=b"n", leaf=None):
    """Encoded table nested `depth` levels deep, built without recursion
    (Python's recursion limit is too low for the deep cases)."""
    t = encode_table(leaf if leaf is not None else {"leaf": F("I", 1)})
    for _ in range(depth - 1):
        body = shortstr(key) + b"F" + t
        t = struct.pack(">I", len(body)) + body
    return t


def nested_array_bytes(depth):
    """Encoded field value: an array nested `depth` levels deep."""
    v = b"I" + struct.pack(">i", 1)
    for _ in range(depth):
        v = b"A" + struct.pack(">I", len(v)) + v
    return v


def table_depth(data):
    """Nesting depth of an encoded single-key chain table, iteratively."""
    depth, pos = 1, 0
    while True:
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        body = data[pos + 4:pos + 4 + n]
        klen = body[0]
        if len(body) > 1 + klen and body[1 + klen:2 + klen] == b"F":
            depth += 1
            data, pos = body, 2 + klen
            continue
        return depth


class Reader:
    """Bounded cursor over bytes; raises ValueError on overrun."""

    def __init__(self, data, pos=0):
        self.data = bytes(data)
        self.pos = pos
        self.bits = None  # (byte, next bit index) while reading bits

    def need(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(
                "truncated: need %d bytes at %d of %d"
                % (n, self.pos, len(self.data)))

    def take(self, n):
        self.need(n)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        self.bits = None
        return b

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def bit(self):
        if self.bits is None or self.bits[1] == 8:
            self.need(1)
            self.bits = (self.data[self.pos], 0)
            self.pos += 1
        byte, idx = self.bits
        self.bits = (byte, idx + 1)
        return bool(byte & (1 << idx))

    def shortstr(self):
        n = self.unpack(">B")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # RabbitMQ may put Latin-1 bytes in reply texts.
            return raw.decode("latin-1")

    def longstr(self):
        n = self.unpack(">I")
        return self.take(n)

    def value(self):
        tag = chr(self.unpack(">B"))
        if tag == "t":
            return F("t", self.unpack(">B") != 0)
        if tag in _SIMPLE:
            return F(tag, self.unpack(_SIMPLE[tag]))
        if tag == "D":
            scale = self.unpack(">B")
            return F("D", (scale, self.unpack(">I")))
        if tag in ("S", "x"):
            return F(tag, self.longstr())
        if tag == "A":
            sub = Reader(self.longstr())
            items = []
            while sub.pos < len(sub.data):
                items.append(sub.value())
            return F("A", items)
        if tag == "F":
            return F("F", self.table())
        if tag == "V":
            return F("V", None)
        raise ValueError("unknown field type %r" % tag)

    def table(self):
        sub = Reader(self.longstr())
        out = collections.OrderedDict()
        while sub.pos < len(sub.data):
            k = sub.shortstr()
            out[k] = sub.value()
        return out


def decode_table(data):
    """Decode a table (with its u32 length prefix) into name -> F."""
    return Reader(data).table()


def plain(v):
    """Strip type tags recursively: F/dict/list -> plain Python values."""
    if isinstance(v, F):
        if v.tag == "F":
            return plain(v.value)
        if v.tag == "A":
            return [plain(x) for x in v.value]
        return v.value
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------

# Argument type codes: o octet, s short, l long, L longlong, S shortstr,
# X longstr, t table, b bit, T timestamp.
_M = [
    # connection
    (10, 10, "connection.start", "version_major:o version_minor:o "
     "server_properties:t mechanisms:X locales:X"),
    (10, 11, "connection.start-ok", "client_properties:t mechanism:S "
     "response:X locale:S"),
    (10, 20, "connection.secure", "challenge:X"),
    (10, 21, "connection.secure-ok", "response:X"),
    (10, 30, "connection.tune", "channel_max:s frame_max:l heartbeat:s"),
    (10, 31, "connection.tune-ok", "channel_max:s frame_max:l heartbeat:s"),
    (10, 40, "connection.open", "virtual_host:S capabilities:S insist:b"),
    (10, 41, "connection.open-ok", "known_hosts:S"),
    (10, 50, "connection.close", "reply_code:s reply_text:S class_id:s "
     "method_id:s"),
    (10, 51, "connection.close-ok", ""),
    (10, 60, "connection.blocked", "reason:S"),
    (10, 61, "connection.unblocked", ""),
    (10, 70, "connection.update-secret", "new_secret:X reason:S"),
    (10, 71, "connection.update-secret-ok", ""),
    # channel
    (20, 10, "channel.open", "out_of_band:S"),
    (20, 11, "channel.open-ok", "channel_id:X"),
    (20, 20, "channel.flow", "active:b"),
    (20, 21, "channel.flow-ok", "active:b"),
    (20, 40, "channel.close", "reply_code:s reply_text:S class_id:s "
     "method_id:s"),
    (20, 41, "channel.close-ok", ""),
    # access
    (30, 10, "access.request", "realm:S exclusive:b passive:b active:b "
     "write:b read:b"),
    (30, 11, "access.request-ok", "ticket:s"),
    # exchange
    (40, 10, "exchange.declare", "ticket:s exchange:S type:S passive:b "
     "durable:b auto_delete:b internal:b nowait:b arguments:t"),
    (40, 11, "exchange.declare-ok", ""),
    (40, 20, "exchange.delete", "ticket:s exchange:S if_unused:b nowait:b"),
    (40, 21, "exchange.delete-ok", ""),
    (40, 30, "exchange.bind", "ticket:s destination:S source:S "
     "routing_key:S nowait:b arguments:t"),
    (40, 31, "exchange.bind-ok", ""),
    (40, 40, "exchange.unbind", "ticket:s destination:S source:S "
     "routing_key:S nowait:b arguments:t"),
    (40, 51, "exchange.unbind-ok", ""),
    # queue
    (50, 10, "queue.declare", "ticket:s queue:S passive:b durable:b "
     "exclusive:b auto_delete:b nowait:b arguments:t"),
    (50, 11, "queue.declare-ok", "queue:S message_count:l consumer_count:l"),
    (50, 20, "queue.bind", "ticket:s queue:S exchange:S routing_key:S "
     "nowait:b arguments:t"),
    (50, 21, "queue.bind-ok", ""),
    (50, 30, "queue.purge", "ticket:s queue:S nowait:b"),
    (50, 31, "queue.purge-ok", "message_count:l"),
    (50, 40, "queue.delete", "ticket:s queue:S if_unused:b if_empty:b "
     "nowait:b"),
    (50, 41, "queue.delete-ok", "message_count:l"),
    (50, 50, "queue.unbind", "ticket:s queue:S exchange:S routing_key:S "
     "arguments:t"),
    (50, 51, "queue.unbind-ok", ""),
    # basic
    (60, 10, "basic.qos", "prefetch_size:l prefetch_count:s global_:b"),
    (60, 11, "basic.qos-ok", ""),
    (60, 20, "basic.consume", "ticket:s queue:S consumer_tag:S no_local:b "
     "no_ack:b exclusive:b nowait:b arguments:t"),
    (60, 21, "basic.consume-ok", "consumer_tag:S"),
    (60, 30, "basic.cancel", "consumer_tag:S nowait:b"),
    (60, 31, "basic.cancel-ok", "consumer_tag:S"),
    (60, 40, "basic.publish", "ticket:s exchange:S routing_key:S "
     "mandatory:b immediate:b"),
    (60, 50, "basic.return", "reply_code:s reply_text:S exchange:S "
     "routing_key:S"),
    (60, 60, "basic.deliver", "consumer_tag:S delivery_tag:L "
     "redelivered:b exchange:S routing_key:S"),
    (60, 70, "basic.get", "ticket:s queue:S no_ack:b"),
    (60, 71, "basic.get-ok", "delivery_tag:L redelivered:b exchange:S "
     "routing_key:S message_count:l"),
    (60, 72, "basic.get-empty", "cluster_id:S"),
    (60, 80, "basic.ack", "delivery_tag:L multiple:b"),
    (60, 90, "basic.reject", "delivery_tag:L requeue:b"),
    (60, 100, "basic.recover-async", "requeue:b"),
    (60, 110, "basic.recover", "requeue:b"),
    (60, 111, "basic.recover-ok", ""),
    (60, 120, "basic.nack", "delivery_tag:L multiple:b requeue:b"),
    # tx
    (90, 10, "tx.select", ""),
    (90, 11, "tx.select-ok", ""),
    (90, 20, "tx.commit", ""),
    (90, 21, "tx.commit-ok", ""),
    (90, 30, "tx.rollback", ""),
    (90, 31, "tx.rollback-ok", ""),
    # confirm
    (85, 10, "confirm.select", "nowait:b"),
    (85, 11, "confirm.select-ok", ""),
]


class MethodSpec(collections.namedtuple("MethodSpec",
                                        "class_id method_id name args")):
    __slots__ = ()


METHODS_BY_NAME = {}
METHODS_BY_ID = {}
for _cid, _mid, _name, _args in _M:
    _spec = MethodSpec(
        _cid, _mid, _name,
        [tuple(a.split(":")) for a in _args.split()],
    )
    METHODS_BY_NAME[_name] = _spec
    METHODS_BY_ID[(_cid, _mid)] = _spec

_DEFAULTS = {"o": 0, "s": 0, "l": 0, "L": 0, "S": "", "X": b"", "t": {},
             "b": False, "T": 0}


def encode_args(spec, kw):
    """Encode the arguments of `spec` from kw (missing ones default)."""
    out = bytearray()
    bits = []

    def flush_bits():
        if bits:
            byte = 0
            for i, b in enumerate(bits):
                if b:
                    byte |= 1 << i
            out.append(byte)
            del bits[:]

    unknown = set(kw) - {a for a, _ in spec.args}
    if unknown:
        raise TypeError("%s has no argument(s) %s"
                        % (spec.name, sorted(unknown)))
    for name, typ in spec.args:
        v = kw.get(name, _DEFAULTS[typ])
        if typ == "b":
            if len(bits) == 8:
                flush_bits()
            bits.append(bool(v))
            continue
        flush_bits()
        if typ == "o":
            out += struct.pack(">B", v)
        elif typ == "s":
            out += struct.pack(">H", v)
        elif typ == "l":
            out += struct.pack(">I", v)
        elif typ in ("L", "T"):
            out += struct.pack(">Q", v)
        elif typ == "S":
            out += shortstr(v)
        elif typ == "X":
            out += longstr(v)
        elif typ == "t":
            out += v if isinstance(v, (bytes, bytearray)) else encode_table(v)
    flush_bits()
    return bytes(out)


def encode_method(name, **kw):
    """Method frame payload: class id, method id, encoded arguments."""
    spec = METHODS_BY_NAME[name]
    return (struct.pack(">HH", spec.class_id, spec.method_id)
            + encode_args(spec, kw))


class Method:
    """A decoded method frame. Arguments are attributes (m.reply_code)."""

    def __init__(self, channel, spec, args, raw):
        self.channel = channel
        self.spec = spec
        self.args = args
        self.raw = raw
        self.content = None  # Content, for deliver/get-ok/return

    name = property(lambda self: self.spec.name)
    class_id = property(lambda self: self.spec.class_id)
    method_id = property(lambda self: self.spec.method_id)

    def __getattr__(self, k):
        try:
            return self.__dict__["args"][k]
        except KeyError:
            raise AttributeError(k)

    @property
    def close_info(self):
        """(reply_code, reply_text, class_id, method_id) of a close."""
        a = self.args
        return (a["reply_code"], a["reply_text"], a["class_id"],
                a["method_id"])

    def __repr__(self):
        return "<%s ch=%d %r>" % (self.name, self.channel, self.args)


def decode_method(channel, payload):
    r = Reader(payload)
    cid = r.unpack(">H")
    mid = r.unpack(">H")
    spec = METHODS_BY_ID.get((cid, mid))
    if spec is None:
        raise ValueError("unknown method %d.%d" % (cid, mid))
    args = {}
    for name, typ in spec.args:
        if typ == "b":
            args[name] = r.bit()
            continue
        if typ == "o":
            args[name] = r.unpack(">B")
        elif typ == "s":
            args[name] = r.unpack(">H")
        elif typ == "l":
            args[name] = r.unpack(">I")
        elif typ in ("L", "T"):
            args[name] = r.unpack(">Q")
        elif typ == "S":
            args[name] = r.shortstr()
        elif typ == "X":
            args[name] = r.longstr()
        elif typ == "t":
            args[name] = r.table()
    return Method(channel, spec, args, payload)


# ---------------------------------------------------------------------------
# Basic content properties
# ---------------------------------------------------------------------------

BASIC_PROPS = [
    ("content_type", "S"),
    ("content_encoding", "S"),
    ("headers", "t"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "S"),
    ("reply_to", "S"),
    ("expiration", "S"),
    ("message_id", "S"),
    ("timestamp", "T"),
    ("type", "S"),
    ("user_id", "S"),
    ("app_id", "S"),
    ("cluster_id", "S"),
]


def encode_properties(props):
    """Property flags + property list for basic (14 properties)."""
    flags = 0
    out = b""
    for i, (name, typ) in enumerate(BASIC_PROPS):
        if name not in props or props[name] is None:
            continue
        flags |= 1 << (15 - i)
        v = props[name]
        if typ == "S":
            out += shortstr(v)
        elif typ == "t":
            out += encode_table(v)
        elif typ == "o":
            out += struct.pack(">B", v)
        elif typ == "T":
            out += struct.pack(">Q", v)
    return struct.pack(">H", flags) + out


def decode_properties(data):
    """Inverse of encode_properties; returns a dict of present ones."""
    r = Reader(data)
    flags = r.unpack(">H")
    if flags & 1:
        raise ValueError("continuation property flags are not used by basic")
    props = {}
    for i, (name, typ) in enumerate(BASIC_PROPS):
        if not flags & (1 << (15 - i)):
            continue
        if typ == "S":
            props[name] = r.shortstr()
        elif typ == "t":
            props[name] = r.table()
        elif typ == "o":
            props[name] = r.unpack(">B")
        elif typ == "T":
            props[name] = r.unpack(">Q")
    if r.pos != len(r.data):
        raise ValueError("trailing bytes after properties")
    return props


def content_header(body_size, props=None, class_id=60, raw_props=None):
    """Content header payload: class, weight, body size, properties."""
    p = raw_props if raw_props is not None else encode_properties(props or {})
    return struct.pack(">HHQ", class_id, 0, body_size) + p


class Content:
    """A received message: header payload, properties and body."""

    def __init__(self, header_payload, body):
        self.header_raw = header_payload
        r = Reader(header_payload)
        self.class_id = r.unpack(">H")
        self.weight = r.unpack(">H")
        self.body_size = r.unpack(">Q")
        self.props_raw = header_payload[12:]
        self._props = None
        self.body = body

    @property
    def props(self):
        """Decoded properties (decoded on first use)."""
        if self._props is None:
            self._props = decode_properties(self.props_raw)
        return self._props


# ---------------------------------------------------------------------------
# Frames and the connection
# ---------------------------------------------------------------------------


class Frame(collections.namedtuple("Frame", "type channel payload")):
    __slots__ = ()


def frame(ftype, channel, payload, end=FRAME_END):
    """Serialize one frame (end octet can be overridden for tests)."""
    return (struct.pack(">BHI", ftype, channel, len(payload)) + payload
            + bytes([end]))


def method_frame(channel, name, **kw):
    return frame(FRAME_METHOD, channel, encode_method(name, **kw))


def heartbeat_frame():
    return frame(FRAME_HEARTBEAT, 0, b"")


def plain_response(user, password):
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def amqplain_response(user, password):
    # AMQPLAIN: a table body without the length prefix.
    return encode_table_body([("LOGIN", F("S", user.encode())),
                              ("PASSWORD", F("S", password.encode()))])


DEFAULT_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


class Connection:
    """One raw AMQP connection (socket + read buffer)."""

    def __init__(self, host, port, timeout=5.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.start = None  # connection.start Method
        self.tune = None  # connection.tune Method
        self.frame_max = 131072
        self.channel_max = 0
        self.heartbeat = 0
        # Every frame read, in order (for frame-order tests).
        self.frames_seen = []
        # Methods set aside by call_buffered(), returned by read_method().
        self.pending = collections.deque()

    # -- lifecycle ---------------------------------------------------------

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()

    @property
    def local_addr(self):
        return "%s:%d" % self.sock.getsockname()[:2]

    # -- raw I/O -----------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, channel, payload, end=FRAME_END):
        self.send(frame(ftype, channel, payload, end))

    def send_method(self, channel, name, **kw):
        self.send(method_frame(channel, name, **kw))

    def send_heartbeat(self):
        self.send(heartbeat_frame())

    def _fill(self, deadline):
        """Read more bytes into buf. Raises Timeout or Closed."""
        if self.eof:
            raise Closed("connection closed by server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise Timeout("timed out")
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise Closed("connection reset: %s" % e)
        if not data:
            self.eof = True
            raise Closed("connection closed by server")
        self.buf += data

    def read_bytes(self, n, timeout=None):
        """Exactly n raw bytes (e.g. the server's protocol header)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_all_until_closed(self, timeout=None):
        """Every byte until the server closes the socket (Timeout if not)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline)
            except Closed:
                out = bytes(self.buf)
                del self.buf[:]
                return out

    def read_frame(self, timeout=None):
        """The next complete frame. Raises Timeout or Closed."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 7:
                ftype, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = bytes(self.buf[7:7 + size])
                    end = self.buf[7 + size]
                    del self.buf[: 8 + size]
                    if end != FRAME_END:
                        raise ValueError("bad frame end 0x%02x from server"
                                         % end)
                    f = Frame(ftype, ch, payload)
                    self.frames_seen.append(f)
                    return f
            self._fill(deadline)

    def read_method(self, timeout=None, skip_heartbeats=True):
        """The next method frame (decoded), with its content if it has one.

        Heartbeats are skipped. A content header or body frame arriving
        without a method raises ValueError.
        """
        if self.pending:
            return self.pending.popleft()
        return self._read_socket_method(timeout, skip_heartbeats)

    def _read_socket_method(self, timeout=None, skip_heartbeats=True):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.read_frame(max(0.001, deadline - time.monotonic()))
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            if f.type != FRAME_METHOD:
                raise ValueError("expected a method frame, got %r" % (f,))
            m = decode_method(f.channel, f.payload)
            if m.name in ("basic.deliver", "basic.get-ok", "basic.return"):
                m.content = self.read_content(f.channel, deadline)
            return m

    def read_content(self, channel, deadline):
        h = self.read_frame(max(0.001, deadline - time.monotonic()))
        if h.type != FRAME_HEADER or h.channel != channel:
            raise ValueError("expected content header on %d, got %r"
                             % (channel, h))
        size = struct.unpack(">Q", h.payload[4:12])[0]
        body = bytearray()
        while len(body) < size:
            b = self.read_frame(max(0.001, deadline - time.monotonic()))
            if b.type != FRAME_BODY or b.channel != channel:
                raise ValueError("expected body frame on %d, got %r"
                                 % (channel, b))
            body += b.payload
        if len(body) != size:
            raise ValueError("body longer than announced: %d > %d"
                             % (len(body), size))
        return Content(h.payload, bytes(body))

    def expect(self, name, channel=None, timeout=None):
        """Read the next method; it must be `name` (on `channel`)."""
        m = self.read_method(timeout)
        if m.name != name or (channel is not None and m.channel != channel):
            raise AssertionError(
                "expected %s on channel %s, got %r" % (name, channel, m))
        return m

    def call(self, channel, name, expect=None, timeout=None, **kw):
        """Send a method and read the reply (default: name + '-ok')."""
        self.send_method(channel, name, **kw)
        return self.expect(expect or name + "-ok", channel, timeout)

    def call_buffered(self, channel, name, expect=None, timeout=None, **kw):
        """Like call(), but methods arriving before the reply (deliveries,
        acks) are set aside and returned by later read_method() calls, in
        order. A channel.close or connection.close still fails the call."""
        self.send_method(channel, name, **kw)
        want = expect or name + "-ok"
        deadline = time.monotonic() + (timeout or self.timeout)
        held = []
        try:
            while True:
                m = self._read_new(deadline)
                if m.name == want and m.channel == channel:
                    return m
                if m.name in ("channel.close", "connection.close"):
                    raise AssertionError("expected %s on channel %d, got %r"
                                         % (want, channel, m))
                held.append(m)
        finally:
            self.pending.extend(held)

    def _read_new(self, deadline):
        return self._read_socket_method(
            max(0.001, deadline - time.monotonic()))

    def is_closed(self, timeout=None):
        """True if the server closes the socket within timeout.

        Any frames that arrive before the close are discarded.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
                del self.buf[:]
        except Closed:
            return True
        except Timeout:
            return False

    def expect_connection_close(self, timeout=None, reply=True):
        """Read until connection.close; send close-ok; return the method.

        Frames on other channels before the close are skipped (a test that
        cares about them reads frames itself). After close-ok the server
        must close the socket.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.read_frame(max(0.001, deadline - time.monotonic()))
            if f.type != FRAME_METHOD:
                continue
            try:
                m = decode_method(f.channel, f.payload)
            except ValueError:
                continue
            if m.name == "connection.close":
                if reply:
                    try:
                        self.send_method(0, "connection.close-ok")
                    except OSError:
                        pass
                return m

    def expect_channel_close(self, channel, timeout=None, reply=True):
        """Read until channel.close on `channel`; send close-ok."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self.read_method(max(0.001, deadline - time.monotonic()))
            if m.name == "connection.close":
                raise AssertionError("expected channel.close, got %r" % m)
            if m.name == "channel.close" and m.channel == channel:
                if reply:
                    self.send_method(channel, "channel.close-ok")
                return m

    # -- handshake ---------------------------------------------------------

    def begin(self, header=PROTOCOL_HEADER):
        """Send the protocol header and read connection.start."""
        self.send(header)
        self.start = self.expect("connection.start", 0)
        return self.start

    def login(self, user="guest", password="guest", mechanism="PLAIN",
              response=None, capabilities=None, client_properties=None,
              locale="en_US"):
        """Send connection.start-ok; returns the next method (the tune on
        success, a connection.close on refusal; raises Closed when the
        server just drops the socket)."""
        caps = DEFAULT_CAPABILITIES if capabilities is None else capabilities
        props = {"product": "rawamqp", "capabilities": caps}
        if client_properties:
            props.update(client_properties)
        if response is None:
            if mechanism == "AMQPLAIN":
                response = amqplain_response(user, password)
            else:
                response = plain_response(user, password)
        self.send_method(0, "connection.start-ok", client_properties=props,
                         mechanism=mechanism, response=response,
                         locale=locale)
        m = self.read_method()
        if m.name == "connection.tune":
            self.tune = m
        return m

    def tune_ok(self, channel_max=None, frame_max=None, heartbeat=0):
        """Send connection.tune-ok; None accepts the server's offer."""
        cm = self.tune.channel_max if channel_max is None else channel_max
        fm = self.tune.frame_max if frame_max is None else frame_max
        self.channel_max, self.frame_max, self.heartbeat = cm, fm, heartbeat
        self.send_method(0, "connection.tune-ok", channel_max=cm,
                         frame_max=fm, heartbeat=heartbeat)

    def open(self, vhost="/"):
        """Send connection.open and return the reply (open-ok or close)."""
        self.send_method(0, "connection.open", virtual_host=vhost)
        return self.read_method()

    def handshake(self, user="guest", password="guest", vhost="/",
                  mechanism="PLAIN", response=None, capabilities=None,
                  channel_max=None, frame_max=None, heartbeat=0,
                  client_properties=None):
        """Header, start/start-ok, tune/tune-ok, open/open-ok.

        channel_max/frame_max None means "accept the server's offer".
        Returns connection.open-ok; any other reply raises AssertionError.
        """
        self.begin()
        m = self.login(user, password, mechanism, response, capabilities,
                       client_properties)
        if m.name != "connection.tune":
            raise AssertionError("expected connection.tune, got %r" % m)
        self.tune_ok(channel_max, frame_max, heartbeat)
        m = self.open(vhost)
        if m.name != "connection.open-ok":
            raise AssertionError("expected connection.open-ok, got %r" % m)
        return m

    def close(self, code=200, text="bye", timeout=None):
        """Client-initiated connection.close; waits for close-ok."""
        self.send_method(0, "connection.close", reply_code=code,
                         reply_text=text)
        m = self.expect("connection.close-ok", 0, timeout)
        self.close_socket()
        return m

    # -- helpers -----------------------------------------------------------

    def open_channel(self, channel):
        return self.call(channel, "channel.open")

    def close_channel(self, channel, code=200, text="bye"):
        return self.call(channel, "channel.close", reply_code=code,
                         reply_text=text)

    def publish_frames(self, channel, exchange="", routing_key="", body=b"",
                       props=None, mandatory=False, immediate=False,
                       raw_props=None, frame_max=None, body_size=None):
        """Bytes of one basic.publish + header + body frames."""
        fm = frame_max or self.frame_max or 131072
        parts = [method_frame(channel, "basic.publish", exchange=exchange,
                              routing_key=routing_key, mandatory=mandatory,
                              immediate=immediate)]
        size = len(body) if body_size is None else body_size
        parts.append(frame(FRAME_HEADER, channel,
                           content_header(size, props, raw_props=raw_props)))
        chunk = fm - 8
        view = memoryview(body)
        for i in range(0, len(body), chunk):
            parts.append(frame(FRAME_BODY, channel, bytes(view[i:i + chunk])))
        return b"".join(parts)

    def publish(self, channel, exchange="", routing_key="", body=b"", **kw):
        self.send(self.publish_frames(channel, exchange, routing_key, body,
                                      **kw))

    def declare_queue(self, channel, queue="", **kw):
        return self.call(channel, "queue.declare", queue=queue, **kw)


def connect(host, port, timeout=5.0, **handshake_kw):
    """Connect and complete the handshake; returns a Connection."""
    c = Connection(host, port, timeout)
    try:
        c.handshake(**handshake_kw)
    except BaseException:
        c.close_socket()
        raise
    return c
