"""PostgreSQL protocol 3.0 framing: reading the client's messages, building the server's.

Only what the hub's endpoint speaks: the startup packet (and the SSLRequest, GSSENCRequest and
CancelRequest that may stand in its place), the simple and extended query messages, and the server's
answers. A message is one type byte, a 4-byte big-endian length that counts itself, then the payload;
the startup packet has no type byte. See the PostgreSQL documentation, "Frontend/Backend Protocol".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from hub.errors import HubError

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000
MAX_MESSAGE = 1 << 30
"""The largest client message accepted (a query text or a Bind of 1 GB is refused before it is read)."""

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_HEADER = struct.Struct("!ci")


class ConnectionEndError(HubError):
    """The connection ends: the statement's error handling must let these through."""


class ProtocolViolationError(ConnectionEndError):
    """The client sent something that is not a message of the protocol (08P01)."""


class ClientGoneError(ConnectionEndError):
    """The client closed the connection."""

    def __init__(self, message: str = "the client closed the connection") -> None:
        super().__init__(message)


def _read_exact(src: BinaryIO, n: int) -> bytes:
    data = src.read(n)
    if data is None or len(data) < n:
        raise ClientGoneError
    return data


@dataclass(frozen=True)
class Startup:
    """The first packet of a connection: a startup message, or one of the requests in its place."""

    code: int
    params: dict[str, str]
    pid: int = 0
    secret: int = 0


def read_startup(src: BinaryIO) -> Startup:
    length = _I32.unpack(_read_exact(src, 4))[0]
    if not 8 <= length <= MAX_STARTUP:
        raise ProtocolViolationError("invalid length of startup packet")
    body = _read_exact(src, length - 4)
    code = _I32.unpack_from(body)[0]
    if code == CANCEL_REQUEST and len(body) >= 12:
        pid, secret = struct.unpack_from("!ii", body, 4)
        return Startup(code, {}, pid, secret)
    if code != PROTOCOL_3:
        return Startup(code, {})
    parts = body[4:].split(b"\x00")
    params: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        if key:
            params[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return Startup(code, params)


def read_message(src: BinaryIO) -> tuple[bytes, bytes]:
    """The next message ``(type, payload)``."""
    head = src.read(5)
    if not head or len(head) < 5:
        raise ClientGoneError
    kind, length = _HEADER.unpack(head)
    if not 4 <= length <= MAX_MESSAGE:
        raise ProtocolViolationError(f"invalid message length {length}")
    return kind, _read_exact(src, length - 4) if length > 4 else b""


class Reader:
    """Reads the fields of one message's payload."""

    def __init__(self, payload: bytes) -> None:
        self.data = payload
        self.pos = 0

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolationError("a string is not terminated")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def int16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolViolationError("message too short")
        value: int = _I16.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return value

    def int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ProtocolViolationError("message too short")
        value: int = _I32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return value

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolationError("message too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


# --- the server's messages -------------------------------------------------------------------


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload) + 4) + payload


def cstr(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\x00", b"") + b"\x00"


AUTH_OK = message(b"R", _I32.pack(0))
AUTH_CLEARTEXT = message(b"R", _I32.pack(3))
PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def parameter_description(oids: Iterable[int]) -> bytes:
    values = list(oids)
    return message(b"t", _I16.pack(len(values)) + b"".join(struct.pack("!I", o) for o in values))


@dataclass(frozen=True)
class Column:
    """One column of a RowDescription."""

    name: str
    oid: int
    size: int = -1
    typmod: int = -1
    format: int = 0


def row_description(columns: Iterable[Column]) -> bytes:
    cols = list(columns)
    body = bytearray(_I16.pack(len(cols)))
    for c in cols:
        body += cstr(c.name) + struct.pack("!ihIhih", 0, 0, c.oid, c.size, c.typmod, c.format)
    return message(b"T", bytes(body))


def data_row(values: Iterable[bytes | None]) -> bytes:
    """One DataRow of already encoded values (the slow path: the fast path is ``hub.pgwire.encode``)."""
    vals = list(values)
    body = bytearray(_I16.pack(len(vals)))
    for v in vals:
        if v is None:
            body += _I32.pack(-1)
        else:
            body += _I32.pack(len(v)) + v
    return message(b"D", bytes(body))


def error_response(
    code: str,
    text: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
    notice: bool = False,
) -> bytes:
    fields = [(b"S", severity), (b"V", severity), (b"C", code), (b"M", text)]
    if detail:
        fields.append((b"D", detail))
    if hint:
        fields.append((b"H", hint))
    body = b"".join(k + cstr(v) for k, v in fields) + b"\x00"
    return message(b"N" if notice else b"E", body)
