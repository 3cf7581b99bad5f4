"""Firehose mode: pre-encoded market frames blasted at a client, for throughput benchmarks.

:func:`build_frames` turns a market model into complete, unmasked WebSocket text frames — one
snapshot per symbol, then ``messages`` deltas round-robin over the symbols — laid out back to back
in one ``bytes`` blob. ``topic="tickers"`` (default) uses the lightweight ticker walk
(:mod:`hean.emulator.ticker_walk`); ``"orderbook.50"`` / ``"orderbook.200"`` use the order-book
market and publisher of the live emulator (:mod:`hean.emulator.firehose_book`).

:class:`FirehoseServer` answers the handshake with picows, acks the client's first ``subscribe``
exactly like the linear endpoint, and then writes the blob straight to the underlying asyncio
transport in large frame-aligned chunks (honouring flow control), or, with ``rate``, at a fixed
number of messages per second. Run it standalone (e.g. pinned to another CPU):

    python -m hean.emulator.firehose --port 0 --messages 1000000 --symbols 10 [--rate 10000]
    python -m hean.emulator.firehose --topic orderbook.50 --messages 100000 --repeat 10

``repeat`` re-sends the ticker deltas (after the snapshots); for order books, whose deltas cannot
be replayed, it re-sends snapshots *and* deltas (each new snapshot resets the client's book).

The URL is printed on stdout (one line) once the server is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import logging
import random
import signal
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from hean.emulator import shapes
from hean.emulator.config import DEFAULT_SYMBOLS
from hean.emulator.firehose_book import BOOK_TOPICS, build_book_frames
from hean.emulator.streamfaults import ws_text_frame
from hean.emulator.ticker_walk import WalkMarket

__all__ = ["FirehoseFrames", "FirehoseServer", "build_frames", "main", "ws_text_frame"]

log = logging.getLogger("hean.emulator")


def firehose_symbols(category: str, count: int) -> list[str]:
    """``count`` symbol names: the default ones first, then ``SYM0005USDT`` …"""
    if count < 1:
        raise ValueError(f"symbols must be >= 1, got {count}")
    names = list(DEFAULT_SYMBOLS.get(category, ()))[:count]
    quote = "USD" if category == "inverse" else "USDT"
    i = len(names)
    while len(names) < count:
        names.append(f"SYM{i:04d}{quote}")
        i += 1
    return names


@dataclass(frozen=True, slots=True)
class FirehoseFrames:
    """Pre-encoded frames. ``offsets[i]`` is where frame ``i`` starts; ``offsets[-1]`` = size."""

    blob: bytes
    offsets: array[int]
    category: str
    symbols: tuple[str, ...]
    truth: dict[str, Any]
    topic: str = "tickers"

    @property
    def replayable_from(self) -> int:
        """First frame of the part that ``repeat`` sends again (tickers: after the snapshots;
        order books: from the start, snapshots included)."""
        return self.snapshots if self.topic == "tickers" else 0

    @property
    def count(self) -> int:
        """Frames in the blob (snapshots + deltas)."""
        return len(self.offsets) - 1

    @property
    def snapshots(self) -> int:
        """The first ``snapshots`` frames are the per-symbol snapshots."""
        return len(self.symbols)

    def frame(self, i: int) -> bytes:
        return self.blob[self.offsets[i] : self.offsets[i + 1]]


def build_frames(
    messages: int,
    symbols: int | Sequence[str],
    *,
    category: str = "linear",
    seed: int = 1,
    now_ms: int = 1_700_000_000_000,
    topic: str = "tickers",
) -> FirehoseFrames:
    """One snapshot per symbol, then ``messages`` deltas (spot tickers: full snapshots)
    round-robin, for ``topic`` ``tickers``, ``orderbook.50`` or ``orderbook.200``.

    ``truth`` is each symbol's state after the last frame — what a client that merged every
    frame must hold: the ticker dict, or ``(bids, asks)`` of ``(price, size)`` strings.
    """
    if topic != "tickers" and topic not in BOOK_TOPICS:
        raise ValueError(f"topic must be tickers or one of {', '.join(BOOK_TOPICS)}, got {topic!r}")
    if messages < 0:
        raise ValueError(f"messages must be >= 0, got {messages}")
    if category not in ("linear", "inverse", "spot"):
        raise ValueError(f"category must be linear, inverse or spot, got {category!r}")
    names = firehose_symbols(category, symbols) if isinstance(symbols, int) else list(symbols)
    if topic in BOOK_TOPICS:
        blob_, offsets_, truth_ = build_book_frames(
            messages, names, depth=BOOK_TOPICS[topic], category=category, seed=seed, now_ms=now_ms
        )
        return FirehoseFrames(blob_, offsets_, category, tuple(names), dict(truth_), topic)
    market = WalkMarket({category: names}, random.Random(seed), now_ms)
    models = market.models(category)
    topics = [f"tickers.{name}" for name in names]
    encode = msgspec.json.Encoder().encode
    spot = category == "spot"
    blob = bytearray()
    offsets = array("Q", [0])
    snap = shapes.ticker_spot if spot else shapes.ticker_snapshot
    for topic, model in zip(topics, models, strict=True):
        blob += ws_text_frame(encode(snap(topic, model.truth, model.cs, now_ms)))
        offsets.append(len(blob))
    m = len(models)
    for i in range(messages):
        k = i % m
        model = models[k]
        ts = now_ms + 1 + i // m
        changes = model.step(ts)
        if spot:
            msg = shapes.ticker_spot(topics[k], model.truth, model.cs, ts)
        else:
            changes = {"symbol": model.spec.symbol, **changes}
            msg = shapes.ticker_delta(topics[k], changes, model.cs, ts)
        blob += ws_text_frame(encode(msg))
        offsets.append(len(blob))
    truth = {model.spec.symbol: model.snapshot() for model in models}
    return FirehoseFrames(bytes(blob), offsets, category, tuple(names), truth)


class _FirehoseSession(WSListener):
    def __init__(self, server: FirehoseServer) -> None:
        super().__init__()
        self._server = server
        self._transport: WSTransport | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._task: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._can_write.set()
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        t = frame.msg_type
        if t == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif t == WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif t == WSMsgType.TEXT:
            self._on_text(transport, frame.get_payload_as_bytes())

    def _on_text(self, transport: WSTransport, payload: bytes) -> None:
        try:
            msg = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            msg = None
        if not isinstance(msg, dict):
            reply = shapes.decode_error("firehose", shapes.decode_error_text(payload))
            transport.send(WSMsgType.TEXT, shapes.encode(reply))
            return
        op = msg.get("op")
        req_id = msg.get("req_id", shapes.MISSING)
        if op == "ping":
            transport.send(
                WSMsgType.TEXT, shapes.encode(shapes.pong("linear", "firehose", req_id, 0))
            )
        elif op == "subscribe":
            ack = shapes.subscribe_ack("linear", "subscribe", "firehose", req_id, success=True)
            transport.send(WSMsgType.TEXT, shapes.encode(ack))
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._stream(transport))
        elif op == "unsubscribe":
            ack = shapes.subscribe_ack("linear", "unsubscribe", "firehose", req_id, success=True)
            transport.send(WSMsgType.TEXT, shapes.encode(ack))
        else:
            transport.send(
                WSMsgType.TEXT, shapes.encode(shapes.invalid_op("linear", "firehose", req_id, op))
            )

    async def _stream(self, transport: WSTransport) -> None:
        server = self._server
        started = time.perf_counter()
        try:
            if server.rate is None:
                await self._blast(transport)
            else:
                await self._paced(transport, server.rate)
            await self._drained(transport)
        except asyncio.CancelledError:
            return
        elapsed = time.perf_counter() - started
        if server.close_after and not transport.is_disconnected:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(transport.wait_disconnected(), 1.0)
        server._finished(elapsed)

    @staticmethod
    async def _drained(transport: WSTransport, limit: float = 60.0) -> None:
        """Wait until the kernel took every byte: a process that exits right after serving
        (``--once``) would otherwise drop the tail of the stream."""
        raw = transport.underlying_transport
        for _ in range(int(limit / 0.001)):
            if transport.is_disconnected or raw.get_write_buffer_size() == 0:
                return
            await asyncio.sleep(0.001)

    async def _write_range(self, transport: WSTransport, start: int, end: int) -> None:
        """Write logical frames ``start..end`` (the replayable part repeats ``repeat`` times)
        in frame-aligned chunks of about ``chunk_size`` bytes."""
        frames = self._server.frames
        first, count = frames.replayable_from, frames.count
        cycle = count - first
        while start < end and not transport.is_disconnected:
            if start < count or cycle == 0:
                lo, hi = start, min(end, count)
            else:
                lo = first + (start - first) % cycle
                hi = min(count, lo + (end - start))
            await self._write_physical(transport, lo, hi)
            start += hi - lo

    async def _write_physical(self, transport: WSTransport, i: int, end: int) -> None:
        frames = self._server.frames
        offsets = frames.offsets
        view = memoryview(frames.blob)
        raw = transport.underlying_transport
        chunk = self._server.chunk_size
        while i < end and not transport.is_disconnected:
            if not self._can_write.is_set():
                await self._can_write.wait()
                continue
            j = bisect.bisect_right(offsets, offsets[i] + chunk, i + 1, end + 1) - 1
            j = max(j, i + 1)
            raw.write(view[offsets[i] : offsets[j]])
            i = j

    async def _blast(self, transport: WSTransport) -> None:
        await self._write_range(transport, 0, self._server.total)

    async def _paced(self, transport: WSTransport, rate: float) -> None:
        total = self._server.total
        start = time.perf_counter()
        sent = 0
        while sent < total and not transport.is_disconnected:
            elapsed = time.perf_counter() - start
            due = min(total, int(elapsed * rate) + 1)
            if due > sent:
                await self._write_range(transport, sent, due)
                sent = due
                continue
            wait = sent / rate - elapsed
            # sleep most of the gap, spin (yielding to the loop) for the last stretch
            await asyncio.sleep(wait - 0.001 if wait > 0.002 else 0)


class FirehoseServer:
    """Serve :class:`FirehoseFrames` to every client that subscribes (any topics)."""

    def __init__(
        self,
        frames: FirehoseFrames,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
        close_after: bool = False,
        chunk_size: int = 1 << 20,
        repeat: int = 1,
    ) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 messages/s or None, got {rate!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.frames = frames
        self.host = host
        self.rate = rate
        self.close_after = close_after
        self.chunk_size = chunk_size
        self.repeat = repeat
        #: frames each client receives: the head once + the replayable part x repeat
        head = frames.replayable_from
        self.total = head + (frames.count - head) * repeat
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self.port = 0
        self.served = 0
        self.last_elapsed: float | None = None
        self._served_event = asyncio.Event()

    def url(self, category: str | None = None) -> str:
        return f"ws://{self.host}:{self.port}/v5/public/{category or self.frames.category}"

    def _route(self, request: WSUpgradeRequest) -> WSListener | None:
        if not request.path.startswith(b"/v5/public/"):
            return None
        return _FirehoseSession(self)

    def _finished(self, elapsed: float) -> None:
        self.served += 1
        self.last_elapsed = elapsed
        self._served_event.set()

    async def wait_served(self, count: int = 1, timeout: float | None = None) -> None:
        async def _wait() -> None:
            while self.served < count:
                self._served_event.clear()
                await self._served_event.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def start(self) -> None:
        self._server = await ws_create_server(
            self._route,
            self.host,
            self._requested_port,
            enable_auto_pong=False,
            logger_name=logging.getLogger("hean.emulator.ws"),
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self._requested_port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> FirehoseServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hean.emulator.firehose",
        description="Blast pre-encoded Bybit ticker or order-book frames at subscribing clients.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port (see printed URL)")
    p.add_argument("--messages", type=int, default=1_000_000, help="delta frames after snapshots")
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument(
        "--rate", type=float, default=None, help="messages/s (default: as fast as possible)"
    )
    p.add_argument("--category", default="linear", choices=("linear", "inverse", "spot"))
    p.add_argument(
        "--topic",
        default="tickers",
        choices=("tickers", *BOOK_TOPICS),
        help="what to send (order books: snapshot + delta traffic from the book model)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="send the deltas (order books: snapshots + deltas) this many times (cheap volume)",
    )
    p.add_argument("--chunk-size", type=int, default=1 << 20, help="bytes per transport write")
    p.add_argument("--close", action="store_true", help="close (1000) after the last frame")
    p.add_argument("--once", action="store_true", help="exit after the first client is served")
    return p.parse_args(argv)


async def _amain(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    frames = build_frames(
        args.messages, args.symbols, category=args.category, seed=args.seed, topic=args.topic
    )
    print(
        f"firehose: {frames.count} frames ({len(frames.blob) / 1e6:.1f} MB) "
        f"built in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    server = FirehoseServer(
        frames,
        host=args.host,
        port=args.port,
        rate=args.rate,
        close_after=args.close,
        chunk_size=args.chunk_size,
        repeat=args.repeat,
    )
    await server.start()
    print(server.url(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    served = 0
    try:
        while not stop.is_set():
            waiter = loop.create_task(server.wait_served(served + 1))
            stopper = loop.create_task(stop.wait())
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if server.served > served:
                served = server.served
                elapsed = server.last_elapsed or 0.0
                rate = server.total / elapsed if elapsed > 0 else float("inf")
                print(
                    f"firehose: client {served} served {server.total} frames in {elapsed:.3f}s "
                    f"({rate:,.0f} msg/s written)",
                    file=sys.stderr,
                )
                if args.once:
                    break
    finally:
        await server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.messages < 0 or args.symbols < 1 or args.repeat < 1:
        print("firehose: need --messages >= 0, --symbols >= 1, --repeat >= 1", file=sys.stderr)
        return 2
    return asyncio.run(_amain(args))


if __name__ == "__main__":
    sys.exit(main())
