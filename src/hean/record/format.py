"""The recording format, sans-I/O: how one record is written as a line and read back.

A recording is a sequence of *records*, one per line (``\\n``-terminated), each four fields
separated by tabs::

    <t>\\t<conn>\\t<kind>\\t<payload>

* ``t``: local receive (or send / event) time in integer nanoseconds since the Unix epoch. It is
  the connection's monotonic clock anchored to the wall clock once per recorder (the anchor is in
  every file header), so differences between records are exact monotonic differences.
* ``conn``: the connection's number within the recorder (declared by a ``stream`` record);
  ``0`` for records about the file itself.
* ``kind``: what the record is (:data:`KINDS`).
* ``payload``: for ``recv`` / ``send`` the frame's bytes exactly as received / sent (a Bybit
  frame is one line of JSON); for every other kind a JSON object. A frame that contains a
  newline (never seen from Bybit) is written as kind ``recv64`` / ``send64`` with its payload in
  base64, so a line is always one record.

The full description, for other tools, is docs/recording.md.
"""

from __future__ import annotations

import base64
import re
from typing import Any, NamedTuple

import msgspec

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "Record",
    "encode_event",
    "mask_auth",
    "parse_line",
]

FORMAT_VERSION = 1

KINDS = (
    "header",
    "stream",
    "connected",
    "recv",
    "send",
    "closed",
    "connect_failed",
    "state",
    "lost",
    "end",
    "recv64",
    "send64",
)
"""Every record kind (see docs/recording.md for each one's payload)."""

_json = msgspec.json.Encoder()


class Record(NamedTuple):
    """One line of a recording."""

    t: int
    """Nanoseconds since the Unix epoch."""
    conn: int
    kind: str
    payload: bytes
    """Raw frame bytes (``recv`` / ``send``; base64 kinds already decoded) or a JSON object."""

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return msgspec.json.decode(self.payload)


def encode_event(t: int, conn: int, kind: str, payload: dict[str, Any]) -> bytes:
    """One non-frame record as a line."""
    return b"%d\t%d\t%s\t%s\n" % (t, conn, kind.encode(), _json.encode(payload))


def encode_frame_b64(t: int, conn: int, kind: str, payload: bytes | memoryview) -> bytes:
    """A frame that contains a newline, as a ``recv64`` / ``send64`` line."""
    return b"%d\t%d\t%s64\t%s\n" % (t, conn, kind.encode(), base64.b64encode(payload))


def parse_line(line: bytes) -> Record:
    """A line (without or with its ``\\n``) as a :class:`Record`.

    Raises:
        ValueError: not a record.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b"\t", 3)
    if len(parts) != 4:
        raise ValueError(f"not a record line: {line[:60]!r}")
    t, conn, kind_b, payload = parts
    kind = kind_b.decode("ascii")
    if kind == "recv64" or kind == "send64":
        return Record(int(t), int(conn), kind[:4], base64.b64decode(payload))
    return Record(int(t), int(conn), kind, payload)


_AUTH = re.compile(rb'"op"\s*:\s*"auth"')
MASK = "***"


def mask_auth(payload: bytes) -> bytes:
    """``payload`` with an auth request's key and signature masked (anything else unchanged).

    ``{"op":"auth","args":["<key>",<expires>,"<signature>"]}`` becomes
    ``{"op":"auth","args":["***",<expires>,"***"]}``: neither the key nor the signature (nor
    anything else in ``args`` but the expiry) reaches a recording. A frame that looks like an auth
    request but cannot be decoded is replaced by ``{"op":"auth","args":"***"}``.
    """
    if _AUTH.search(payload) is None:
        return payload
    try:
        msg = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return b'{"op":"auth","args":"***"}'
    if not isinstance(msg, dict) or msg.get("op") != "auth":
        return payload
    args = msg.get("args")
    if isinstance(args, list):
        msg["args"] = [
            a if i == 1 and isinstance(a, int | float) else MASK for i, a in enumerate(args)
        ]
    elif args is not None:
        msg["args"] = MASK
    return _json.encode(msg)
