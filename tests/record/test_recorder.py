"""The recorder: what it writes, rotation, and that errors (unwritable directory, full disk,
size cap, a writer too slow) are reported clearly while the streams keep running."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from hean.core.bus import EventBus
from hean.core.events import EventType
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from hean.exchange.bybit.ws_private import BybitPrivateWebSocket
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.record import Recorder, RecordingError, RecordingReader, read_records
from tests.conftest import ms

TICK = b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"%d"}}'


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


class FlakyFile(io.RawIOBase):
    """A file that fails with ENOSPC once ``room`` bytes are written (until room is None)."""

    def __init__(self, path: Path, disk: Disk) -> None:
        self.fh = open(path, "xb", buffering=0)  # noqa: SIM115
        self.disk = disk

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        disk = self.disk
        if disk.delay:
            time.sleep(disk.delay)
        if disk.room is not None:
            if len(data) > disk.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            disk.room -= len(data)
        return int(self.fh.write(data))

    def close(self) -> None:
        self.fh.close()
        super().close()


class Disk:
    def __init__(self, room: int | None = None, delay: float = 0.0) -> None:
        self.room = room
        self.delay = delay
        self.opened: list[Path] = []

    def opener(self, path: Path) -> BinaryIO:
        self.opened.append(path)
        return FlakyFile(path, self)  # type: ignore[return-value]


async def test_rotation_by_size_keeps_every_record_and_each_file_stands_alone(
    tmp_path: Path,
) -> None:
    async with Recorder(tmp_path, max_file_bytes=4000, chunk_bytes=500) as rec:
        tap = rec.tap("public/linear", "ws://127.0.0.1:1/v5/public/linear", category="linear")
        for i in range(200):
            tap.received(TICK % i, 1000.0 + i / 1000)
    files = rec.stats.files
    assert len(files) > 3 and rec.stats.lost_frames == 0
    for n, name in enumerate(files):
        records = read_records(name)
        assert records[0].kind == "header" and records[1].kind == "stream"
        header = records[0].json()
        assert header["file_index"] == n + 1 and header["hean"] and header["endpoint"]
        assert header["previous"] == (None if n == 0 else Path(files[n - 1]).name)
        assert records[-1].kind == "end"
    reader = RecordingReader(reversed(files))  # any order given: read in file order
    frames = [r for r, s in reader if r.kind == "recv"]
    assert [f.payload for f in frames] == [TICK % i for i in range(200)]
    assert all(s is not None for r, s in RecordingReader(files) if r.kind == "recv")
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and ts[1] - ts[0] == 1_000_000  # ns spacing is the monotonic one


async def test_rotation_by_time(tmp_path: Path) -> None:
    async with Recorder(tmp_path, max_file_seconds=0.05, flush_interval=0.02) as rec:
        tap = rec.tap("public/linear", "ws://h/v5/public/linear")
        for i in range(10):
            tap.received(TICK % i, time.monotonic())
            await asyncio.sleep(0.03)
    assert len(rec.stats.files) >= 3
    payloads = [r.payload for r, _ in RecordingReader(rec.stats.files) if r.kind == "recv"]
    assert payloads == [TICK % i for i in range(10)]


async def test_unwritable_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RecordingError, match=r"cannot record to .*file"):
        Recorder(blocker / "sub").start()

    def refuse(path: Path) -> BinaryIO:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    readonly = tmp_path / "ro"
    with pytest.raises(RecordingError, match="Permission denied") as info:
        Recorder(readonly, opener=refuse).start()
    assert str(readonly) in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
async def emu() -> Any:
    async with Emulator(EmulatorConfig(ticker_interval=ms(5))) as e:
        yield e


def size_of(path: str) -> int:
    return Path(path).stat().st_size


class Sink:
    def publish(self, event_type: EventType, event: Any) -> None:
        pass


def public_ws(emu: Emulator) -> BybitPublicWebSocket:
    return BybitPublicWebSocket(
        Sink(), "linear", url=emu.url("linear"), rng=random.Random(1), connect_timeout=2.0
    )


async def test_full_disk_is_reported_streams_go_on_and_recording_resumes(
    tmp_path: Path, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk()
    ws = public_ws(emu)
    rec = Recorder(tmp_path, opener=disk.opener, flush_interval=0.05, retry_interval=0.2)
    async with rec:
        rec.attach(ws)
        await ws.subscribe_tickers(["BTCUSDT", "ETHUSDT"])
        await ws.connect(timeout=2.0)
        await until(lambda: rec.stats.frames_written > 20)
        disk.room = 0  # the disk is full
        await until(lambda: rec.stats.state == "failing")
        before, lost_before = ws.session.stats.messages, rec.stats.lost_frames
        await until(lambda: ws.session.stats.messages > before + 20)  # the stream goes on
        await until(lambda: rec.stats.lost_frames > lost_before)  # ... and is counted as lost
        assert ws.state.value == "live"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1  # one clear line, not one per chunk
        assert "No space left on device (disk full)" in errors[0].getMessage()
        assert "No space left" in rec.stats.last_error
        disk.room = None  # space is back
        await until(lambda: rec.stats.state == "writing" and len(rec.stats.files) >= 2)
        await asyncio.sleep(0.2)
        await ws.disconnect()
    lost = rec.stats.lost_frames
    records = [r for r, _ in RecordingReader(rec.stats.files)]
    lost_records = [r.json() for r in records if r.kind == "lost"]
    assert lost_records and sum(x["frames"] for x in lost_records) == lost
    assert "No space left" in lost_records[0]["reason"]
    assert sum(1 for r in records if r.kind == "recv") + lost >= ws.session.stats.messages


async def test_size_cap_stops_recording_clearly(
    tmp_path: Path, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    ws = public_ws(emu)
    rec = Recorder(tmp_path, max_total_bytes=3000, flush_interval=0.05)
    async with rec:
        rec.attach(ws)
        await ws.subscribe_tickers(["BTCUSDT"])
        await ws.connect(timeout=2.0)
        await until(lambda: rec.stats.state == "full")
        count = ws.session.stats.messages
        await until(lambda: ws.session.stats.messages > count + 20)
        await ws.disconnect()
    assert rec.stats.lost_frames > 0 and rec.stats.bytes_out <= 3000
    assert sum(size_of(f) for f in rec.stats.files) <= 3000 + 200
    assert any("size cap of 3000 bytes" in r.getMessage() for r in caplog.records)
    read_records(rec.stats.files[0])  # what was written decodes


async def test_slow_disk_overflow_is_bounded_and_counted(tmp_path: Path) -> None:
    disk = Disk(delay=0.05)
    rec = Recorder(
        tmp_path, opener=disk.opener, chunk_bytes=1000, max_pending_bytes=3000, flush_interval=0.5
    )
    async with rec:
        tap = rec.tap("public/linear", "ws://h/v5/public/linear")
        for i in range(2000):
            tap.received(TICK % i, 1000.0 + i / 1000)
            assert rec.stats.pending_bytes <= 3000 + 1000
    stats = rec.stats
    assert stats.lost_frames > 0
    records = [r for r, _ in RecordingReader(stats.files)]
    got = sum(1 for r in records if r.kind == "recv")
    assert got + stats.lost_frames == 2000
    assert sum(r.json()["frames"] for r in records if r.kind == "lost") == stats.lost_frames


async def test_private_session_records_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Emulator(EmulatorConfig(ticker_interval=ms(20))) as emu:
        bus = EventBus()
        await bus.start()
        ws = BybitPrivateWebSocket(
            bus, api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, url=emu.url("private")
        )
        async with Recorder(tmp_path) as rec:
            rec.attach(ws)
            await ws.connect(timeout=2.0)
            await ws.subscribe(["order", "wallet"])
            await until(lambda: ws.session.subscriptions.status("wallet") == "confirmed")
            ws.recycle("test")
            await until(lambda: ws.session.stats.connects == 2 and ws.state.value == "live")
            signatures = [str(i.last_auth_args[2]) for i in emu.connections if i.last_auth_args]
            await ws.disconnect()
        await bus.stop()
    assert len(signatures) == 2
    raw = b"".join(
        b"\t".join((str(r.t).encode(), r.kind.encode(), r.payload))
        for r in read_records(rec.stats.files[0])
    )
    for secret in (DEFAULT_API_KEY, DEFAULT_API_SECRET, *signatures):
        assert secret.encode() not in raw
    auths = [r.json() for r in read_records(rec.stats.files[0]) if b'"auth"' in r.payload]
    sent = [a for a in auths if a.get("args")]
    assert len(sent) == 2 and all(a["args"][0] == a["args"][2] == "***" for a in sent)
    kinds = [r.kind for r in read_records(rec.stats.files[0])]
    assert kinds.count("connected") == 2 and kinds.count("closed") == 2
    states = [r.json() for r in read_records(rec.stats.files[0]) if r.kind == "state"]
    assert {"old": "live", "new": "backoff", "reason": "test"} in states


async def test_hub_connections_are_recorded(tmp_path: Path, emu: Emulator) -> None:
    from hean.hub import StreamHub

    hub = StreamHub(host=f"ws://127.0.0.1:{emu.port}")
    async with Recorder(tmp_path) as rec:
        consumer = hub.consumer("c")
        await consumer.subscribe_tickers(["BTCUSDT"], category="spot")
        rec.attach(hub)  # the spot connection exists; linear comes after
        await consumer.subscribe_tickers(["BTCUSDT"], category="linear")
        await until(lambda: all(ws.session.stats.messages > 5 for ws in hub.public_streams()))
        await hub.close()
    streams = {
        s.name: s.category
        for _, s in RecordingReader(rec.stats.files)
        if s is not None and s.endpoint == "public"
    }
    assert streams == {"public/spot": "spot", "public/linear": "linear"}


async def test_records_of_shared_reads_and_two_connections_come_back_exactly(
    tmp_path: Path,
) -> None:
    """The hot path formats a read's time once and counts records per chunk: every record,
    from two connections interleaved, with frames sharing a read's ``now``, a frame holding a
    newline, sends and events, comes back in order with its time, and the counts are exact
    (small chunks: hand-overs in the middle of a read)."""
    async with Recorder(tmp_path, chunk_bytes=700) as rec:
        a = rec.tap("public/linear", "ws://h/v5/public/linear")
        b = rec.tap("public/spot", "ws://h/v5/public/spot")
        want: list[tuple[int, str, bytes]] = []
        for read in range(40):
            now = 500.0 + read / 100
            for i in range(5):
                payload = TICK % (read * 10 + i)
                if read == 7 and i == 2:
                    payload = b'{"odd":\n"frame"}'
                tap = a if i % 2 else b
                tap.received(memoryview(payload), now)
                want.append((tap.conn, "recv", payload))
            a.sent(b'{"op":"ping","req_id":"%d"}' % read, now)
            want.append((a.conn, "send", b'{"op":"ping","req_id":"%d"}' % read))
            b.state("live", "live", "x", now)
            want.append((b.conn, "state", b'{"old":"live","new":"live","reason":"x"}'))
        pending = rec.stats.frames
    records = [r for r, _ in RecordingReader(rec.stats.files) if r.conn]
    got = [(r.conn, r.kind, r.payload) for r in records if r.kind != "stream"]
    assert got == want
    anchor = read_records(rec.stats.files[0])[0].json()["anchor_ns"]
    times = [r.t for r in records if r.kind != "stream"]
    assert times == [anchor + int((500.0 + n // 7 / 100) * 1e9) for n in range(len(want))]
    stats = rec.stats
    assert stats.frames == stats.frames_written == pending == len(want) + 2  # + 2 stream records
    assert stats.lost_frames == 0 and len(stats.files) == 1
