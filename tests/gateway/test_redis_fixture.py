"""The test Redis is a real server: it answers, loses everything when killed (no persistence)
and comes back on the same port."""

from __future__ import annotations

import pytest

from tests.redis_server import RedisServer, needs_redis

pytestmark = needs_redis


async def test_real_server_no_persistence_restart(own_redis: RedisServer) -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(own_redis.url)
    try:
        assert await r.ping()
        assert (await r.config_get("save"))["save"] == ""
        assert (await r.config_get("appendonly"))["appendonly"] == "no"
        await r.set("k", "v")
        own_redis.kill()
        with pytest.raises(Exception):  # noqa: B017 - any connection error
            await r.get("k")
        own_redis.start()
        assert await r.get("k") is None  # nothing survived the crash
    finally:
        await r.aclose()
