"""Where Redis is: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).

The password is a :class:`~hean.core.secrets.Secret` from the moment the URL is parsed: it never
reaches a log, a repr, an exception or a metric (``str(target)`` masks it). TLS is verified
(``rediss://``; ``ca_file`` adds a CA bundle). ``redis`` is imported only by :meth:`client`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from hean.core.secrets import Secret, install_redaction

__all__ = ["RedisTarget"]


@dataclass(frozen=True, slots=True)
class RedisTarget:
    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str, *, ca_file: str | None = None) -> RedisTarget:
        """Parse a Redis URL; ``ValueError`` (naming no secret) when it is not one.

        A password may also come from ``HEAN_REDIS_PASSWORD`` (kept out of the command line).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError("not a Redis URL (expected redis://host:port/db)") from None
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(
                f"Redis URL must start with redis:// or rediss:// (TLS), got {parts.scheme!r}"
            )
        if not parts.hostname:
            raise ValueError("Redis URL has no host (expected redis://host:port/db)")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"Redis database must be a number, got {path!r}")
        if parts.query or parts.fragment:
            raise ValueError("Redis URL options are not supported; use the flags")
        password = unquote(parts.password) if parts.password else None
        env = os.environ.get("HEAN_REDIS_PASSWORD")
        if password is None and env:
            password = env
        secret = Secret(password) if password else None
        if secret is not None:
            install_redaction([secret])
        return cls(
            host=parts.hostname,
            port=port or 6379,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=secret,
            tls=parts.scheme == "rediss",
            ca_file=ca_file,
        )

    def __str__(self) -> str:
        user = ""
        if self.username or self.password:
            user = f"{self.username or ''}{':***' if self.password else ''}@"
        return f"{'rediss' if self.tls else 'redis'}://{user}{self.host}:{self.port}/{self.db}"

    def __repr__(self) -> str:
        return f"RedisTarget({self})"

    def client(self, **kw: Any) -> Any:
        """A ``redis.asyncio.Redis`` for this target (bytes replies, TLS verified)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password.reveal() if self.password is not None else None,
            "decode_responses": False,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),  # reconnects are HEAN's own (jittered backoff)
        }
        if self.tls:
            params.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True)
            if self.ca_file:
                params["ssl_ca_certs"] = self.ca_file
        params.update(kw)
        return aioredis.Redis(**params)
