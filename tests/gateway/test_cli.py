"""``hean gateway``: bad input is one line and exit 2; ``--sim --account`` publishes the market
and the account, /health and /metrics show the Redis link, and no secret reaches Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from hean.cli.main import build_parser
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from tests.redis_server import needs_redis


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--redis", "http://x"], "redis://"),
        (["--redis", "redis://u:hunter2pw@h:notaport/0"], "Redis URL"),
        (["--redis", "unix://:hunter2pw@host/tmp/r.sock"], "socket path"),
        (["--redis", "unix://:hunter2pw@/tmp/r.sock?db=x"], "?db=N"),
        (["--prefix", "a b"], "prefix"),
        (["--snapshot-every", "0"], "snapshot-every"),
        (["--maxlen", "10", "--snapshot-every", "10"], "twice"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "hean", "gateway", *args], capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 2
    assert words in p.stderr and "Traceback" not in p.stderr and "hunter2pw" not in p.stderr


@needs_redis
@pytest.mark.timeout(60)
async def test_sim_with_account_health_metrics_and_no_secret_in_redis(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    from hean.cli.gateway import options_from_args, run_gateway

    caplog.set_level(logging.DEBUG)
    parser = build_parser()
    args = parser.parse_args(
        ["gateway", "--sim", "--account", "--redis", redis_url, "--books", "50", "--trades",
         "--http", "0", "--symbols", "BTCUSDT,ETHUSDT", "--sim-rate", "50"]
    )  # fmt: skip
    opts = options_from_args(args, parser)
    stop = asyncio.Event()
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_gateway(opts, stop_event=stop, ready=ready, out=sys.stderr))
    r = aioredis.Redis.from_url(redis_url)
    try:
        gw, server = await asyncio.wait_for(ready, 20)
        for _ in range(200):
            if await r.exists("hean:acct:account:state") and gw.stats().lengths:
                break
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()

        def get(path: str) -> str:
            with urllib.request.urlopen(server.url + path, timeout=5) as resp:
                return str(resp.read().decode())

        doc = json.loads(await loop.run_in_executor(None, get, "health"))
        assert doc["gateway"]["link"] == "up" and doc["gateway"]["redis"] == redis_url
        assert doc["gateway"]["lengths"]
        metrics = await loop.run_in_executor(None, get, "metrics")
        assert "hean_gateway_redis_up 1.0" in metrics
        assert "hean_gateway_stream_length{" in metrics
        keys = sorted(k.decode() for k in await r.keys("*"))
        assert "hean:md:linear:orderbook.50.BTCUSDT" in keys
        assert "hean:md:linear:publicTrade.BTCUSDT" in keys
        assert "hean:acct:account" in keys and "hean:acct:account:state" in keys
        # no secret (nor the API key) anywhere in Redis: keys, values, stream entries
        blob = b""
        for k in keys:
            t = (await r.type(k)).decode()
            if t == "string":
                blob += await r.get(k)
            elif t == "hash":
                blob += repr(await r.hgetall(k)).encode()
            elif t == "stream":
                blob += repr(await r.xrange(k)).encode()
        for secret in (DEFAULT_API_SECRET, DEFAULT_API_KEY):
            assert secret.encode() not in blob
        assert DEFAULT_API_SECRET not in caplog.text
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
        await r.aclose()
