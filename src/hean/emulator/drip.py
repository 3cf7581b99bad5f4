"""A slow-dripping link: one connection's output released at a set number of bytes per second.

What a venue (or a congested path to it) does when it sends a frame's bytes very slowly: the
frame trickles in a few bytes at a time, and everything written after it (more data, replies,
pongs, close frames) waits behind it, in order, because a TCP stream cannot overtake itself. A
client cannot tell such a link from a healthy one by what arrives; only the time things take
shows it (a pong that is late, data that lags).

:class:`Drip` is the sans-I/O part: complete WebSocket frames go in (:meth:`Drip.add`), and
:meth:`Drip.take` says which bytes may be written by ``now`` (``rate`` bytes per second,
accumulated; an idle drip saves at most one tick's worth, so it never bursts). The session
(:class:`~hean.emulator.connection.PublicSession`) writes them on a timer every :data:`TICK`
seconds while bytes are queued, and drops the client as a slow consumer when the queue passes
``EmulatorConfig.max_write_buffer``.
"""

from __future__ import annotations

import struct
from collections import deque

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT", "TICK", "Drip", "ws_frame"]

TICK = 0.01
"""Seconds between two writes of a dripping connection."""

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A complete, unmasked (server-to-client) FIN frame."""
    n = len(payload)
    head = 0x80 | opcode
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


class Drip:
    """Bytes queued for one connection and released at ``rate`` bytes per second.

    Args:
        rate: bytes per second (>= 1).
        now: monotonic time the drip starts.
    """

    __slots__ = ("_buf", "_credit", "_last", "_marks", "_queued", "rate", "written")

    def __init__(self, rate: float, now: float) -> None:
        if not rate >= 1:
            raise ValueError(f"drip rate must be >= 1 byte/s, got {rate!r}")
        self.rate = float(rate)
        self._buf = bytearray()
        self._credit = 0.0
        self._last = now
        self._queued = 0
        self._marks: deque[tuple[int, float]] = deque()
        """(end offset in bytes ever queued, time queued) of each addition still unsent."""
        self.written = 0
        """Bytes released so far."""

    @property
    def pending(self) -> int:
        """Bytes queued and not yet released."""
        return len(self._buf)

    def add(self, data: bytes, now: float) -> None:
        """Queue bytes (whole frames, in the order they are to be sent) at ``now``."""
        if not self._buf:
            self._accrue(now)  # idle until now: at most one tick's worth saved
        self._buf += data
        self._queued += len(data)
        self._marks.append((self._queued, now))

    def delay(self, now: float) -> float:
        """Seconds the oldest byte still queued has waited (0 when nothing is queued): how far
        behind the venue the client is."""
        marks = self._marks
        return now - marks[0][1] if marks else 0.0

    def _released(self) -> None:
        marks, written = self._marks, self.written
        while marks and marks[0][0] <= written:
            marks.popleft()

    def _accrue(self, now: float) -> None:
        credit = self._credit + self.rate * max(0.0, now - self._last)
        self._last = now
        if not self._buf:
            credit = min(credit, max(1.0, self.rate * TICK))  # no burst after idling
        self._credit = credit

    def take(self, now: float) -> bytes:
        """The bytes that may be written by ``now`` (removed from the queue)."""
        self._accrue(now)
        n = min(int(self._credit), len(self._buf))
        self._credit -= n
        if n <= 0:
            return b""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.written += n
        self._released()
        return out

    def drain(self) -> bytes:
        """Everything queued, at once (the drip is switched off)."""
        out = bytes(self._buf)
        self._buf.clear()
        self.written += len(out)
        self._marks.clear()
        return out

    def discard(self) -> int:
        """Forget what is queued (the connection is gone); returns how many bytes."""
        n = len(self._buf)
        self._buf.clear()
        self._marks.clear()
        return n
