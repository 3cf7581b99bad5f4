"""Fixtures: a real redis-server (tests/redis_server.py) and the emulator."""

from __future__ import annotations

from tests.redis_server import own_redis, redis_server, redis_url

__all__ = ["own_redis", "redis_server", "redis_url"]
