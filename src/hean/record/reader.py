"""Reading recordings: one file, or several merged on one clock.

A file is a sequence of complete zstd frames; one that was cut short (``kill -9``, a full disk)
ends in a partial frame, which is skipped: everything before it is returned and
:attr:`FileReader.truncated` says the tail was cut.
"""

from __future__ import annotations

import heapq
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from hean.record.format import Record, parse_line

__all__ = ["READ_BLOCK", "FileReader", "RecordingReader", "StreamInfo", "read_records"]

READ_BLOCK = 256 << 10
"""Decompressed bytes read at a time: a file is streamed, never held whole. The reader holds
about four times this in Python objects at once (the block, the split lines, the records being
handed out), plus the zstd decoder's window (at most a chunk, 1 MiB by default) per open file."""


@dataclass(slots=True)
class StreamInfo:
    """One recorded connection (from its ``stream`` record)."""

    key: str
    """Unique across the files read: ``<recorder id>/<conn>``."""
    name: str
    url: str
    endpoint: str
    """``public``, ``private`` or ``trade``."""
    category: str | None
    settings: dict[str, Any] = field(default_factory=dict)


class FileReader:
    """The records of one file, in order.

    Attributes (after iterating): ``header`` (the first record's JSON), ``truncated`` (the
    file ended inside a zstd frame or a line), ``bad_lines``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.header: dict[str, Any] = {}
        self.truncated = False
        self.bad_lines = 0

    def __iter__(self) -> Iterator[Record]:
        for line in self._lines():
            try:
                record = parse_line(line)
            except (ValueError, UnicodeDecodeError):
                self.bad_lines += 1
                continue
            if record.kind == "header" and not self.header:
                self.header = msgspec.json.decode(record.payload)
            yield record

    def _lines(self) -> Iterator[bytes]:
        dctx = zstandard.ZstdDecompressor()
        with open(self.path, "rb") as fh:
            reader = dctx.stream_reader(fh, read_across_frames=True)
            rest = b""
            while True:
                try:
                    block = reader.read(READ_BLOCK)
                except zstandard.ZstdError:
                    self.truncated = True
                    break
                if not block:
                    break
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                yield from lines
            if rest:
                # a line without its newline: the file was cut inside it
                self.truncated = True


class RecordingReader:
    """Records of several files merged by time (files of one recorder are read in order).

    Each record comes as ``(record, stream)`` where ``stream`` is the :class:`StreamInfo` of
    its connection (``None`` for file records: header, end, lost).
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no recording files given")
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"no such recording: {path}")
        self.streams: dict[str, StreamInfo] = {}
        self.headers: list[dict[str, Any]] = []
        self.truncated: list[str] = []
        self.lost = 0

    def _groups(self) -> list[list[Path]]:
        """Files grouped by recorder (from each header), each group in file order."""
        groups: dict[str, list[tuple[int, Path]]] = {}
        for path in self.paths:
            header = _peek_header(path)
            rid = str(header.get("recorder", path))
            groups.setdefault(rid, []).append((int(header.get("file_index", 0)), path))
        return [[p for _, p in sorted(items)] for items in groups.values()]

    def __iter__(self) -> Iterator[tuple[Record, StreamInfo | None]]:
        iterators = [self._group(group) for group in self._groups()]
        yield from heapq.merge(*iterators, key=lambda item: item[0].t)

    def _group(self, paths: list[Path]) -> Iterator[tuple[Record, StreamInfo | None]]:
        for path in paths:
            reader = FileReader(path)
            rid = ""
            for record in reader:
                kind = record.kind
                if kind == "header":
                    self.headers.append(reader.header)
                    rid = str(reader.header.get("recorder", path))
                    continue
                if kind == "stream":
                    key = f"{rid}/{record.conn}"
                    if key not in self.streams:
                        info = msgspec.json.decode(record.payload)
                        self.streams[key] = StreamInfo(
                            key=key,
                            name=str(info.pop("name", key)),
                            url=str(info.pop("url", "")),
                            endpoint=str(info.pop("endpoint", "public")),
                            category=info.pop("category", None),
                            settings=info,
                        )
                    yield record, self.streams[key]
                    continue
                if kind == "lost":
                    self.lost += int(record.json().get("frames", 0))
                stream = self.streams.get(f"{rid}/{record.conn}") if record.conn else None
                yield record, stream
            if reader.truncated:
                self.truncated.append(str(path))


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Every record of one file (a convenience for tests and tools)."""
    return list(FileReader(path))


def _peek_header(path: Path) -> dict[str, Any]:
    dctx = zstandard.ZstdDecompressor()
    try:
        with open(path, "rb") as fh:
            reader = dctx.stream_reader(fh, read_across_frames=True)
            text = io.BufferedReader(reader).readline()
    except zstandard.ZstdError:
        return {}
    try:
        record = parse_line(text)
    except ValueError:
        return {}
    if record.kind != "header":
        return {}
    header: dict[str, Any] = msgspec.json.decode(record.payload)
    return header
