"""examples/remote_consumer.py against a real ``hean gateway --sim`` and a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.redis_server import RedisServer, needs_redis, own_redis

__all__ = ["own_redis"]
EXAMPLE = Path(__file__).parents[2] / "examples" / "remote_consumer.py"


@needs_redis
def test_two_process_setup(own_redis: RedisServer) -> None:
    gw = subprocess.Popen(
        [sys.executable, "-m", "hean", "gateway", "--sim", "--books", "50", "--redis",
         own_redis.url, "--symbols", "BTCUSDT,ETHUSDT", "--http", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gw.stdout is not None
        assert "hean gateway:" in gw.stdout.readline()
        time.sleep(0.5)
        proc = subprocess.run(
            [sys.executable, str(EXAMPLE), "--redis", own_redis.url, "--seconds", "2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert "joined: BTCUSDT last=" in out and "book valid=True" in out
        lines = [ln for ln in out.splitlines() if ln.startswith("ticks ")]
        assert len(lines) == 2 and "stale=False" in lines[-1] and "gaps 0" in lines[-1]
    finally:
        gw.terminate()
        gw.wait(20)
