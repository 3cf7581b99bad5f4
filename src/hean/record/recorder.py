"""``Recorder``: captures connections' raw frames and events into zstd-compressed files.

::

    async with Recorder("recordings", endpoint=url) as rec:
        rec.attach(ws)           # a BybitPublicWebSocket / BybitPrivateWebSocket / trade stream,
        rec.attach(hub)          # a StreamHub (its current and future connections),
        rec.attach(account)      # or an Account (its private stream)
        ...
    rec.stats                    # frames, bytes, files, lost frames, state, last error

What is recorded per connection (see docs/recording.md): every text frame received with its
local receive time in ns, every frame sent (auth requests with the key and signature masked),
the socket opening and closing (with the close code and the reason the session saw), failed
connection attempts and every lifecycle change (so a reconnect's reason is there).

Cost and safety on the hot path: the connection calls :meth:`StreamTap.received` synchronously
with picows's zero-copy view of the frame; the tap appends the record's prefix (formatted once
per socket read: the frames of one read share their time) and the payload to a ``bytearray``
(the one copy needed, since the view dies with the call), checks the payload for a newline and
returns: no object is made per frame. In the buffer each record is *preceded* by its newline
(one append fewer per frame); the hand-over adds the last newline and passes a view that skips
the first, so the file's lines are ``\n``-terminated as documented. Whole chunks
(``chunk_bytes``, checked once per read, or whatever has accumulated after ``flush_interval``)
go to the writer thread (:mod:`hean.record.writer`), which compresses each as one complete zstd
frame and writes it: a ``kill -9`` loses at most the last ``flush_interval`` plus the chunk being
written. The socket reader never waits for the disk.

Bounded memory: chunks waiting for the writer are capped at ``max_pending_bytes``; beyond that a
chunk is dropped (overflow policy: drop the newest chunk, count its frames in
``stats.lost_frames``, and write a ``lost`` record saying how many frames are missing).
Write errors, a full disk, a read-only directory and the size cap are reported once on the
``hean.record`` logger and in :attr:`Recorder.stats`; the streams keep running.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from hean.core.clock import Clock, SystemClock
from hean.record.format import encode_event, encode_frame_b64, mask_auth
from hean.record.writer import DEFAULT_LEVEL, Chunk, FileWriter

__all__ = ["Recorder", "RecorderStats", "RecordingError", "StreamTap"]

DEFAULT_FLUSH_INTERVAL = 0.5
"""Seconds between hand-overs to the writer when frames trickle in (the ``kill -9`` window)."""


class RecordingError(Exception):
    """The recording cannot start (e.g. the directory cannot be written)."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A snapshot of a recorder's counters."""

    state: str
    """``idle``, ``writing``, ``failing`` (write errors, retrying), ``full`` or ``closed``."""
    frames: int
    """Records captured (frames received and sent, events)."""
    frames_written: int
    lost_frames: int
    """Records that never reached a file: overflow, write errors, disk full, size cap."""
    bytes_in: int
    """Uncompressed bytes written."""
    bytes_out: int
    """Compressed bytes written."""
    files: tuple[str, ...]
    current_file: str | None
    errors: int
    last_error: str
    pending_bytes: int
    """Bytes handed to the writer and not yet written."""


class StreamTap:
    """One connection's tap into a :class:`Recorder` (a
    :class:`~hean.exchange.bybit.transport.FrameTap`). Made by :meth:`Recorder.tap`.

    :meth:`received` is the hot path (every frame of the connection): it appends the record's
    prefix (time, connection, kind), the payload and a newline to the recorder's buffer, and
    nothing else. The prefix is formatted once per socket read (the frames of one read share
    their ``now``); the recorder counts records and reads the chunk's first time from the
    buffer when it hands the chunk over.
    """

    __slots__ = ("_buf", "_n", "_now", "_prefix", "_rec", "_recv", "_send", "conn", "name")

    def __init__(self, recorder: Recorder, conn: int, name: str) -> None:
        self._rec = recorder
        self.conn = conn
        self.name = name
        self._recv = b"\t%d\trecv\t" % conn
        self._send = b"\t%d\tsend\t" % conn
        self._buf = recorder._buf
        """The recorder's buffer (the recorder swaps it in every tap at a hand-over)."""
        self._n = 0
        """Frames received into the current buffer (summed by the recorder at a hand-over)."""
        self._now = -1.0
        self._prefix = b""

    def received(self, payload: bytes | memoryview, now: float) -> None:
        if now != self._now:
            self._new_read(now)
        buf = self._buf
        buf += self._prefix
        mark = len(buf)
        buf += payload
        if buf.find(b"\n", mark) >= 0:  # never from Bybit: keep one record per line
            self._with_newline(mark, payload, now)
        self._n += 1

    def _new_read(self, now: float) -> None:
        """A new socket read (its frames share ``now``): format the prefix once, and hand the
        buffer over if it is full (checked once per read, so a chunk is at most
        ``chunk_bytes`` plus one read's frames)."""
        self._now = now
        rec = self._rec
        self._prefix = b"\n%d%s" % (int(now * 1e9) + rec._anchor, self._recv)
        if len(self._buf) >= rec._chunk_bytes:
            rec._handoff()

    def _with_newline(self, mark: int, payload: bytes | memoryview, now: float) -> None:
        buf = self._buf
        del buf[mark - len(self._prefix) :]
        t = int(now * 1e9) + self._rec._anchor
        buf += b"\n"
        buf += encode_frame_b64(t, self.conn, "recv", payload)[:-1]

    def sent(self, payload: bytes, now: float) -> None:
        rec = self._rec
        t = int(now * 1e9) + rec._anchor
        payload = mask_auth(payload)
        if b"\n" in payload:
            rec._append(encode_frame_b64(t, self.conn, "send", payload))
        else:
            rec._append(b"%d%s%s\n" % (t, self._send, payload))

    def connected(self, url: str, now: float) -> None:
        self._event(now, "connected", {"url": url})

    def closed(self, reason: str, code: int | None, now: float) -> None:
        self._event(now, "closed", {"reason": reason, "code": code})

    def connect_failed(self, reason: str, now: float) -> None:
        self._event(now, "connect_failed", {"reason": reason})

    def state(self, old: str, new: str, reason: str, now: float) -> None:
        self._event(now, "state", {"old": old, "new": new, "reason": reason})

    def _event(self, now: float, kind: str, payload: dict[str, Any]) -> None:
        rec = self._rec
        t = int(now * 1e9) + rec._anchor
        rec._append(encode_event(t, self.conn, kind, payload))


class Recorder:
    """Records connections into rotating zstd files (see the module docstring).

    Args:
        directory: where the files go (created if missing).
        prefix: file name prefix (``{prefix}-{UTC time}-{n}.rec.zst``).
        endpoint: what the recording is of, for the header (e.g. the host URL); default: the
            URL of the first connection attached.
        level: zstd level, 1..22 or -7..-1 (zstd's faster levels); 1 by default (the
            measured costs and ratios per level: docs/benchmarks.md).
        max_file_bytes: rotate after this many uncompressed bytes (default 256 MiB).
        max_file_seconds: rotate after this many seconds (default 1 hour).
        max_total_bytes: stop writing once the files reach this many (compressed) bytes: a
            size cap that protects the disk (``None``: none).
        flush_interval: seconds at most between hand-overs to the writer (<= 1).
        chunk_bytes: hand over once this many bytes are buffered (checked at each socket read
            and each other record).
        max_pending_bytes: bytes waiting for the writer beyond which chunks are dropped.
        retry_interval: seconds between attempts to write again after an error.
        clock: the clock of the connections recorded (their ``now`` is turned into ns since
            the epoch with one anchor taken here).
        opener: opens a new file for writing (tests inject failures with it).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = "hean",
        endpoint: str | None = None,
        level: int = DEFAULT_LEVEL,
        max_file_bytes: int = 256 << 20,
        max_file_seconds: float = 3600.0,
        max_total_bytes: int | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        chunk_bytes: int = 1 << 20,
        max_pending_bytes: int = 64 << 20,
        retry_interval: float = 5.0,
        clock: Clock | None = None,
        opener: Any = None,
    ) -> None:
        if not 0 < flush_interval <= 1.0:
            raise ValueError(f"flush_interval must be in (0, 1] seconds, got {flush_interval!r}")
        if level == 0 or not -7 <= level <= 22:
            raise ValueError(f"level must be -7..-1 or 1..22, got {level!r}")
        if max_file_bytes < 1 or max_file_seconds <= 0 or chunk_bytes < 1:
            raise ValueError("max_file_bytes, max_file_seconds and chunk_bytes must be > 0")
        if max_total_bytes is not None and max_total_bytes < 1:
            raise ValueError(f"max_total_bytes must be > 0, got {max_total_bytes!r}")
        self.directory = Path(directory)
        self.endpoint = endpoint
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._anchor = time.time_ns() - int(self.clock.monotonic() * 1e9)
        self.id = uuid.uuid4().hex
        from hean import __version__

        self._header: dict[str, Any] = {
            "hean": __version__,
            "recorder": self.id,
            "endpoint": endpoint,
            "anchor_ns": self._anchor,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "level": level,
        }
        self._writer = FileWriter(
            self.directory,
            prefix,
            self._header,
            level=level,
            max_file_bytes=max_file_bytes,
            max_file_seconds=max_file_seconds,
            max_total_bytes=max_total_bytes,
            retry_interval=retry_interval,
            opener=opener,
        )
        self.flush_interval = float(flush_interval)
        self._chunk_bytes = int(chunk_bytes)
        self.max_pending_bytes = int(max_pending_bytes)
        self._buf = bytearray()
        self._n = 0
        """Records other than received frames in the buffer (sent frames, events)."""
        self._stream_taps: list[StreamTap] = []
        self._dropped_frames = 0
        self._dropped_bytes = 0
        self._conns = 0
        self._taps: list[tuple[Any, StreamTap]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the first file and start the writer (call it on the event loop).

        Raises:
            RecordingError: the directory cannot be created or written (one clear line).
        """
        if self._started:
            return
        try:
            self._writer.open_first()
        except OSError as exc:
            detail = os.strerror(exc.errno) if exc.errno is not None else str(exc)
            where = exc.filename or self.directory
            raise RecordingError(f"cannot record to {where}: {detail}") from None
        self._started = True
        self._writer.start()
        self._schedule()

    async def close(self) -> None:
        """Detach every tap, write what is buffered, end the file and stop the writer."""
        if self._closed:
            return
        self._closed = True
        for connection, tap in self._taps:
            if getattr(connection, "tap", None) is tap:
                connection.tap = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._started:
            return
        self._handoff()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- attaching ------------------------------------------------------------------------------

    def tap(
        self,
        name: str,
        url: str,
        *,
        endpoint: str = "public",
        category: str | None = None,
        **settings: Any,
    ) -> StreamTap:
        """A new connection number and its tap; writes the ``stream`` record declaring it.

        ``settings`` (JSON values: heartbeat, ack timeout ...) go into that record so a replay
        can rebuild the connection the same way.
        """
        self._conns += 1
        conn = self._conns
        if self.endpoint is None:
            self.endpoint = url
            self._header["endpoint"] = url
        info = {"name": name, "url": url, "endpoint": endpoint, "category": category, **settings}
        t = time.time_ns()
        line = encode_event(t, conn, "stream", info)
        self._writer.streams.append(line)
        self._append(line)
        tap = StreamTap(self, conn, name)
        self._stream_taps.append(tap)
        return tap

    def attach(self, target: Any) -> Any:
        """Record ``target``: a public / private / trade WebSocket client, a
        :class:`~hean.hub.StreamHub` (every connection it has and opens), or an
        :class:`~hean.account.Account` (its private stream). Returns ``target``."""
        from hean.exchange.bybit.transport import WsConnection

        connection = getattr(target, "connection", None)
        if isinstance(connection, WsConnection):
            tap = self._tap_for(target, connection)
            connection.tap = tap
            self._taps.append((connection, tap))
            return target
        private = getattr(target, "private", None)
        if private is not None and isinstance(getattr(private, "connection", None), WsConnection):
            self.attach(private)
            return target
        from hean.hub import StreamHub

        if isinstance(target, StreamHub):
            import dataclasses

            target.options = dataclasses.replace(target.options, recorder=self)
            for shard_ws in target.public_streams():
                self.attach(shard_ws)
            return target
        raise TypeError(f"cannot record a {type(target).__name__}")

    def _tap_for(self, ws: Any, connection: Any) -> StreamTap:
        session = connection.session
        config = session.config
        kind = getattr(ws, "kind", None) if session.auth is not None else "public"
        return self.tap(
            config.name,
            config.url,
            endpoint=kind if isinstance(kind, str) else "public",
            category=getattr(ws, "category", None),
            ping_interval=config.heartbeat.interval,
            pong_timeout=config.heartbeat.timeout,
            ack_timeout=config.ack_timeout,
            report_gaps=config.report_gaps,
        )

    # -- buffer ---------------------------------------------------------------------------------

    def _append(self, line: bytes) -> None:
        """Append one record (``line`` ends with its newline)."""
        buf = self._buf
        buf += b"\n"
        buf += memoryview(line)[:-1]
        self._n += 1
        if len(buf) >= self._chunk_bytes:
            self._handoff()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._handoff()
        self._schedule()

    def _handoff(self) -> None:
        """Give the buffer to the writer (or drop it when the writer is too far behind)."""
        writer = self._writer
        buf = self._buf
        if not buf or not self._started:
            return
        self._buf = fresh = bytearray()
        frames = self._pending_records()
        self._n = 0
        for tap in self._stream_taps:
            tap._buf = fresh
            tap._n = 0
        size = len(buf)
        if writer.pending_bytes + size > self.max_pending_bytes:
            self._dropped_frames += frames
            self._dropped_bytes += size
            return
        t_first = int(buf[1 : buf.find(b"\t")])
        buf += b"\n"
        writer.put(Chunk(memoryview(buf)[1:], frames, t_first, self._dropped_frames))

    def _pending_records(self) -> int:
        """Records in the buffer (frames received by the taps, other records appended)."""
        return self._n + sum(tap._n for tap in self._stream_taps)

    # -- stats ----------------------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        ws = self._writer.stats
        return RecorderStats(
            state=ws.state,
            frames=ws.frames_written
            + ws.lost_frames
            + self._dropped_frames
            + self._writer.pending_frames
            + self._pending_records(),
            frames_written=ws.frames_written,
            lost_frames=ws.lost_frames + self._dropped_frames,
            bytes_in=ws.bytes_in,
            bytes_out=ws.bytes_out,
            files=tuple(ws.files),
            current_file=self._writer.current_file,
            errors=ws.errors,
            last_error=ws.last_error
            or (
                f"{self._dropped_frames} frames dropped: writer behind"
                if self._dropped_frames
                else ""
            ),
            pending_bytes=self._writer.pending_bytes,
        )

    def __repr__(self) -> str:
        return f"Recorder({str(self.directory)!r}, state={self._writer.stats.state!r})"
