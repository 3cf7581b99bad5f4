"""The gateway against the emulator and a real redis-server: what lands in Redis."""

from __future__ import annotations

import itertools
import subprocess
import sys

import msgspec
import pytest

from hean.emulator import Emulator
from hean.gateway import Gateway, RedisTarget
from hean.gateway.wire import BOOK_SNAPSHOT, BookEntry, SnapRef, TickEntry, parse_id
from tests.gateway.helpers import make_gateway, settle, until
from tests.hub.conftest import emulator, make_hub
from tests.redis_server import needs_redis

__all__ = ["emulator"]


def test_the_single_process_path_never_imports_redis() -> None:
    code = (
        "import sys, hean, hean.hub, hean.health, hean.account, hean.gateway, hean.remote\n"
        "import hean.cli.main\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_redis_urls_parse_and_never_show_the_password() -> None:
    t = RedisTarget.parse("rediss://app:s3cr3t-pw@cache.example:6380/2")
    assert (t.host, t.port, t.db, t.username, t.tls) == ("cache.example", 6380, 2, "app", True)
    assert t.password is not None and t.password.reveal() == "s3cr3t-pw"
    for text in (str(t), repr(t), f"{t}", str(t.password)):
        assert "s3cr3t" not in text
    assert str(t) == "rediss://app:***@cache.example:6380/2"
    for bad in ("http://x", "redis://", "redis://h:99999", "redis://h/x", "redis://h/0?ssl=1"):
        with pytest.raises(ValueError) as exc:
            RedisTarget.parse(bad)
        assert "s3cr3t" not in str(exc.value)


def test_unix_socket_urls_parse_and_never_show_the_password() -> None:
    t = RedisTarget.parse("unix://app:s3cr3t-pw@/run/redis/redis%20a.sock?db=4")
    assert (t.path, t.db, t.username, t.tls) == ("/run/redis/redis a.sock", 4, "app", False)
    assert t.password is not None and t.password.reveal() == "s3cr3t-pw"
    for text in (str(t), repr(t)):
        assert "s3cr3t" not in text
    assert str(t) == "unix://app:***@/run/redis/redis a.sock?db=4"
    plain = RedisTarget.parse("unix:///tmp/r.sock")
    assert (plain.path, plain.db, plain.password, str(plain)) == (
        "/tmp/r.sock", 0, None, "unix:///tmp/r.sock"
    )  # fmt: skip
    assert RedisTarget.parse("redis://h:1/0").path is None
    for bad in (
        "unix://host/tmp/r.sock",  # a host is not a path
        "unix://",
        "unix:///",
        "unix://:s3cr3t@relative.sock",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?ssl=1",
        "unix:///tmp/r.sock#f",
    ):
        with pytest.raises(ValueError) as exc:
            RedisTarget.parse(bad)
        assert "s3cr3t" not in str(exc.value)


def test_a_maxlen_that_could_trim_the_latest_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="twice snapshot_every"):
        Gateway.__new__(Gateway).__init__(  # type: ignore[misc]
            None,  # type: ignore[arg-type]
            "redis://127.0.0.1:1/0",
            snapshot_every=100,
            maxlen=150,
        )


@needs_redis
@pytest.mark.emulator(auto_tick=False)
async def test_entries_ids_snapshots_and_the_snapshot_key(
    emulator: Emulator, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, snapshot_every=5, prefix="t1")
    r = aioredis.Redis.from_url(redis_url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await gw.subscribe_orderbook(["BTCUSDT"], 50)
        await until(lambda: hub.orderbook("BTCUSDT", 50) is not None and hub.ticker("BTCUSDT"))
        await settle(emulator, 40)
        await until(lambda: hub.orderbook("BTCUSDT", 50).deltas >= 12)  # type: ignore[union-attr]
        await until(lambda: gw.out.depth == 0)
        entries = await r.xrange("t1:md:linear:orderbook.50.BTCUSDT")
        ids = [parse_id(i) for i, _ in entries]
        epoch = gw.out.epoch
        assert ids == [(epoch, g) for g in range(1, len(ids) + 1)]
        dec = msgspec.msgpack.Decoder(BookEntry)
        kinds = [dec.decode(f[b"d"]).k for _, f in entries]
        snaps = [g for (_, g), k in zip(ids, kinds, strict=True) if k == BOOK_SNAPSHOT]
        assert snaps[0] == 1 and all(b - a <= 5 for a, b in itertools.pairwise(snaps))
        assert len(snaps) >= 3
        # the snapshot key holds the newest snapshot entry, byte for byte
        ref = msgspec.msgpack.decode(
            await r.get("t1:snap:linear:orderbook.50.BTCUSDT"), type=SnapRef
        )
        assert parse_id(ref.id) == (epoch, snaps[-1])
        assert ref.d == dict(entries)[ref.id.encode()][b"d"]
        # books carry Bybit's u and seq; the last entry is the emulator's book
        last = dec.decode(entries[-1][1][b"d"])
        book = hub.orderbook("BTCUSDT", 50)
        assert book is not None and last.u == book.u and last.seq == book.seq
        # ticker entries: the first a full snapshot, then only changed fields
        tdec = msgspec.msgpack.Decoder(TickEntry)
        ticks = [tdec.decode(f[b"d"]) for _, f in await r.xrange("t1:md:linear:tickers.BTCUSDT")]
        assert ticks[0].snap and ticks[0].f.keys() >= {"symbol", "lastPrice", "bid1Price"}
        deltas = [t for t in ticks if not t.snap]
        assert deltas and all(len(t.f) < len(ticks[0].f) for t in deltas)
        assert await r.hget("t1:meta", "epoch") == str(epoch).encode()
        # the heartbeat says the upstream connection is live
        await until(lambda: gw.connection_states().get("public/linear") == "live")
        assert await r.xlen("t1:ctl") > 0
    finally:
        await r.aclose()
        await gw.close()
        await hub.close()


@needs_redis
@pytest.mark.emulator(ticker_interval=0.002)
async def test_streams_stay_trimmed_to_maxlen(emulator: Emulator, redis_url: str) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, snapshot_every=20, maxlen=100, prefix="t2")
    r = aioredis.Redis.from_url(redis_url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await until(lambda: gw.out.written > 600, timeout=10)
        n = await r.xlen("t2:md:linear:tickers.BTCUSDT")
        # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): within one node
        assert 100 <= n <= 200, n
    finally:
        await r.aclose()
        await gw.close()
        await hub.close()


@needs_redis
@pytest.mark.emulator(auto_tick=False)
async def test_publishing_off_writes_nothing_and_the_hub_still_serves(
    emulator: Emulator, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    hub, gw = make_gateway(emulator, redis_url, prefix="t3", publish=False)
    local = hub.consumer("local")
    r = aioredis.Redis.from_url(redis_url)
    try:
        await gw.start()
        await gw.subscribe_tickers(["BTCUSDT"])
        await local.subscribe_tickers(["BTCUSDT"])
        await until(lambda: hub.ticker("BTCUSDT") is not None)
        await settle(emulator, 5)
        await until(lambda: (t := hub.ticker("BTCUSDT")) is not None and t.deltas >= 5)
        assert await r.keys("t3:md:*") == []
    finally:
        await r.aclose()
        await gw.close()
        await hub.close()


_ = make_hub
