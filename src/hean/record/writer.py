"""The recorder's writer thread: compresses chunks, writes files, rotates, reports errors.

The event loop hands over whole chunks of lines (never single frames); each chunk is compressed
as one complete zstd frame and written with one ``os.write`` + flush, so whatever reached the
file before a crash (even ``kill -9``) decodes. Files rotate by size (uncompressed bytes) and by
age; each new file starts with a ``header`` record and the ``stream`` records of every known
connection, so every file can be read on its own.

Errors (a read-only directory, a full disk, an I/O error, the size cap reached) never raise into
the streams: the writer logs one clear line, counts the lost frames, drops what it cannot write,
and tries again to open a new file every ``retry_interval`` seconds.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from hean.record.format import FORMAT_VERSION, encode_event

__all__ = ["DEFAULT_LEVEL", "Chunk", "FileWriter", "WriterStats"]

log = logging.getLogger("hean.record")

DEFAULT_LEVEL = -3
"""zstd's fast level -3: under 1 CPU-µs per recorded frame on the ticker firehose, where level 1
costs ~0.08 µs more for 40 % smaller files (docs/benchmarks.md, docs/decisions.md)."""


@dataclass(slots=True)
class Chunk:
    """Lines handed over by the loop: ``frames`` records of which the first at ``t_first``."""

    data: bytes | bytearray | memoryview
    frames: int
    t_first: int
    dropped: int = 0
    """Frames the loop has dropped so far (overflow), cumulative."""


@dataclass(slots=True)
class WriterStats:
    files: list[str] = field(default_factory=list)
    """Every file opened, in order."""
    bytes_in: int = 0
    """Uncompressed bytes written."""
    bytes_out: int = 0
    """Compressed bytes written."""
    frames_written: int = 0
    zstd_frames: int = 0
    lost_frames: int = 0
    """Records that could not be written (write error, disk full, size cap)."""
    lost_bytes: int = 0
    errors: int = 0
    last_error: str = ""
    state: str = "idle"
    """``idle``, ``writing``, ``failing`` (errors; retrying), ``full`` (size cap) or ``closed``."""


class FileWriter:
    """Writes chunks to rotating zstd files from its own thread.

    Args:
        directory: where files go (created if missing).
        prefix: file name prefix; files are ``{prefix}-{UTC start}-{n:04d}.rec.zst``.
        header: fields of every file's ``header`` record (the writer adds ``format``,
            ``file_index``, ``start_ns`` and ``previous``).
        level: zstd compression level.
        max_file_bytes: rotate when a file holds this many uncompressed bytes.
        max_file_seconds: rotate when a file is this old.
        max_total_bytes: stop writing (state ``full``) when the compressed files of this writer
            reach this size; ``None``: no cap.
        retry_interval: seconds between attempts to open a new file after an error.
        opener: opens a file for writing (tests inject failures here).
        clock_ns: wall clock in ns (for file names and ages).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        header: dict[str, Any],
        *,
        level: int = DEFAULT_LEVEL,
        max_file_bytes: int = 256 << 20,
        max_file_seconds: float = 3600.0,
        max_total_bytes: int | None = None,
        retry_interval: float = 5.0,
        opener: Callable[[Path], BinaryIO] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.header = header
        self.level = level
        self.max_file_bytes = max_file_bytes
        self.max_file_seconds = max_file_seconds
        self.max_total_bytes = max_total_bytes
        self.retry_interval = retry_interval
        self._opener = opener if opener is not None else _open_exclusive
        self._clock_ns = clock_ns
        self._cctx = zstandard.ZstdCompressor(level=level)
        self.stats = WriterStats()
        self.streams: list[bytes] = []
        """``stream`` record lines repeated at the top of every file (appended by the loop)."""
        self._queue: deque[Chunk | None] = deque()
        self.pending_bytes = 0
        """Bytes handed over and not yet written (read by the loop's overflow check)."""
        self.pending_frames = 0
        """Records handed over and not yet written (or counted as lost)."""
        self._cond = threading.Condition()
        self._file: BinaryIO | None = None
        self._file_bytes = 0
        self._file_started = 0.0
        self._retry_at = 0.0
        self._need_header = False
        self._reported = 0
        self._thread: threading.Thread | None = None

    # -- control (any thread) -------------------------------------------------------------------

    def open_first(self) -> Path:
        """Open the first file now, in the caller's thread, so a bad directory is reported at
        once (raises ``OSError``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_next(defer_header=True)
        assert self.stats.files
        return Path(self.stats.files[-1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hean-record-writer", daemon=True)
        self._thread.start()

    def put(self, chunk: Chunk) -> None:
        with self._cond:
            self._queue.append(chunk)
            self.pending_bytes += len(chunk.data)
            self.pending_frames += chunk.frames
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, end the file, stop the thread."""
        with self._cond:
            self._queue.append(None)
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain()

    @property
    def current_file(self) -> str | None:
        return self.stats.files[-1] if self._file is not None and self.stats.files else None

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                items = list(self._queue)
                self._queue.clear()
            for item in items:
                if item is None:
                    self._finish()
                    return
                self._write_chunk(item)
                with self._cond:
                    self.pending_bytes -= len(item.data)
                    self.pending_frames -= item.frames

    def _drain(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item is None:
                self._finish()
                return
            self._write_chunk(item)
            self.pending_bytes -= len(item.data)
            self.pending_frames -= item.frames

    def _write_chunk(self, chunk: Chunk) -> None:
        stats = self.stats
        if stats.state == "full":
            self._lose(chunk)
            return
        if self._file is not None and (
            self._file_bytes >= self.max_file_bytes
            or time.monotonic() - self._file_started >= self.max_file_seconds
        ):
            self._rotate()
        if self._file is None:
            if time.monotonic() < self._retry_at:
                self._lose(chunk)
                return
            try:
                self._open_next()
            except _CapReached:
                self._lose(chunk)
                return
            except OSError as exc:
                self._failed(exc, "cannot open a new recording file")
                self._lose(chunk)
                return
        try:
            if self._need_header:
                self._write_header()
            data = chunk.data
            lost = stats.lost_frames + chunk.dropped
            if lost > self._reported:
                # say where frames are missing, where the recording resumes (exact: written
                # in order by this thread, with the chunk that follows the hole)
                line = encode_event(
                    chunk.t_first,
                    0,
                    "lost",
                    {
                        "frames": lost - self._reported,
                        "total": lost,
                        "reason": stats.last_error or "overflow: the writer was behind",
                    },
                )
                data = line + data
            self._write(data, chunk.frames)
            self._reported = lost
        except _CapReached:
            self._lose(chunk)
            self._close_file(end=True)
        except OSError as exc:
            self._failed(exc, "cannot write the recording")
            self._lose(chunk)
            self._close_file(end=False)

    def _write(self, data: bytes | bytearray | memoryview, frames: int) -> None:
        assert self._file is not None
        stats = self.stats
        compressed = self._cctx.compress(data)
        cap = self.max_total_bytes
        if cap is not None and stats.bytes_out + len(compressed) > cap:
            stats.state = "full"
            stats.errors += 1
            stats.last_error = f"size cap of {cap} bytes reached"
            log.error(
                "recording stopped: the size cap of %d bytes is reached (%s); the streams go on, "
                "frames are counted as lost",
                cap,
                self.stats.files[-1] if stats.files else "?",
            )
            raise _CapReached
        _write_all(self._file, compressed)
        self._file_bytes += len(data)
        stats.bytes_in += len(data)
        stats.bytes_out += len(compressed)
        stats.frames_written += frames
        stats.zstd_frames += 1
        if stats.state != "writing":
            if stats.state == "failing":
                log.warning("recording resumed in %s", stats.files[-1])
            stats.state = "writing"

    def _lose(self, chunk: Chunk) -> None:
        self.stats.lost_frames += chunk.frames
        self.stats.lost_bytes += len(chunk.data)

    def _failed(self, exc: OSError, what: str) -> None:
        stats = self.stats
        stats.errors += 1
        detail = os.strerror(exc.errno) if exc.errno is not None else str(exc)
        where = getattr(exc, "filename", None) or (stats.files[-1] if stats.files else "")
        message = f"{what} ({where}): {detail}"
        if exc.errno == errno.ENOSPC:
            message += " (disk full)"
        if stats.state != "failing" or message != stats.last_error:
            log.error(
                "%s; the streams go on, frames are counted as lost; retrying every %gs",
                message,
                self.retry_interval,
            )
        stats.last_error = message
        stats.state = "failing"
        self._retry_at = time.monotonic() + self.retry_interval

    # -- files ----------------------------------------------------------------------------------

    def _path(self, index: int) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock_ns() / 1e9))
        return self.directory / f"{self.prefix}-{stamp}-{index:04d}.rec.zst"

    def _open_next(self, defer_header: bool = False) -> None:
        index = len(self.stats.files) + 1
        path = self._path(index)
        fh = self._opener(path)
        self.stats.files.append(str(path))
        self._file = fh
        self._file_bytes = 0
        self._file_started = time.monotonic()
        if defer_header:
            # written with the first chunk, once the connections (and endpoint) are known
            self._need_header = True
            return
        self._write_header()

    def _write_header(self) -> None:
        self._need_header = False
        index = len(self.stats.files)
        now = self._clock_ns()
        header = dict(self.header)
        header.update(
            format=FORMAT_VERSION,
            file_index=index,
            start_ns=now,
            previous=Path(self.stats.files[-2]).name if index > 1 else None,
        )
        lines = [encode_event(now, 0, "header", header), *self.streams]
        try:
            self._write(b"".join(lines), 0)
        except (OSError, _CapReached):
            self._close_file(end=False)
            raise
        if self.stats.state == "idle":
            self.stats.state = "writing"

    def _rotate(self) -> None:
        self._close_file(end=True)
        self._retry_at = 0.0

    def _close_file(self, end: bool) -> None:
        fh, self._file = self._file, None
        if fh is None:
            return
        try:
            if end:
                stats = self.stats
                line = encode_event(
                    self._clock_ns(),
                    0,
                    "end",
                    {"frames": stats.frames_written, "lost": stats.lost_frames},
                )
                _write_all(fh, self._cctx.compress(line))
            fh.flush()
        except OSError as exc:
            self._failed(exc, "cannot finish the recording file")
        finally:
            try:
                fh.close()
            except OSError as exc:
                self._failed(exc, "cannot close the recording file")

    def _finish(self) -> None:
        if self._file is not None and self._need_header:
            try:
                self._write_header()
            except (OSError, _CapReached):
                pass
        self._close_file(end=True)
        if self.stats.state != "full":
            self.stats.state = "closed"


class _CapReached(Exception):
    """Internal: the size cap stopped a write."""


def _write_all(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` (an unbuffered file may take part of it, e.g. when the disk fills)."""
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if not n:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
    fh.flush()


def _open_exclusive(path: Path) -> BinaryIO:
    # Unbuffered: each compressed chunk is one write() straight to the kernel.
    return open(path, "xb", buffering=0)
