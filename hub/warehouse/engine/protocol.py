"""The frames between the server and a query worker, over the worker's stdin and stdout.

A frame is a 4-byte big-endian length, one byte of kind, then the payload. The server sends JSON
(``INIT``, ``JOB``) and one-byte requests (``NEXT``, ``CANCEL``); the worker answers with JSON
(``READY``, ``END``, ``ERROR``) and Arrow IPC (``SCHEMA``, ``BATCH``). Nothing is pickled: the worker
runs SQL from outside, so the server reads from it only JSON and Arrow, which it validates.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import orjson

from hub.errors import HubError

INIT = b"I"
READY = b"R"
JOB = b"J"
NEXT = b"N"
CANCEL = b"C"
SCHEMA = b"S"
BATCH = b"B"
END = b"E"
ERROR = b"X"

_HEADER = struct.Struct(">Ic")
MAX_FRAME = 1 << 31


class ProtocolError(HubError):
    """The other side closed the pipe or sent something that is not a frame."""


def send(out: IO[bytes], kind: bytes, payload: bytes | memoryview = b"") -> None:
    out.write(_HEADER.pack(len(payload), kind))
    if payload:
        out.write(payload)
    out.flush()


def send_json(out: IO[bytes], kind: bytes, value: Any) -> None:
    send(out, kind, orjson.dumps(value))


def _read_exact(src: IO[bytes], n: int) -> bytearray:
    """Exactly ``n`` bytes, read into one buffer (a raw pipe may return fewer per read: loop until all
    came). A batch of megabytes is copied once, from the pipe into this buffer."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        count = src.readinto(view[got:])  # type: ignore[attr-defined]
        if not count:
            raise ProtocolError("the pipe was closed")
        got += count
    return buf


def receive(src: IO[bytes]) -> tuple[bytes, bytearray]:
    """The next frame ``(kind, payload)``; ``ProtocolError`` when the pipe closed."""
    length, kind = _HEADER.unpack(_read_exact(src, _HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"a frame of {length} bytes")
    return kind, (_read_exact(src, length) if length else bytearray())


def loads(payload: bytes | bytearray) -> Any:
    return orjson.loads(payload)
