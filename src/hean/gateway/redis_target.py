"""Where Redis is: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS), or
``unix://[user:password@]/path/to/redis.sock[?db=N]`` (a Unix socket: same host only, cheaper
per command than loopback TCP; docs/gateway.md).

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
    path: str | None = None
    """The Unix socket's path (``unix://``); ``host`` and ``port`` are then unused."""

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
        if parts.scheme == "unix":
            return cls._parse_unix(parts.path, parts.query, parts.fragment, parts.username,
                                   parts.password, parts.netloc, port)  # fmt: skip
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(
                "Redis URL must start with redis://, rediss:// (TLS) or unix:// (a socket path),"
                f" got {parts.scheme!r}"
            )
        if not parts.hostname:
            raise ValueError("Redis URL has no host (expected redis://host:port/db)")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"Redis database must be a number, got {path!r}")
        if parts.query or parts.fragment:
            raise ValueError("Redis URL options are not supported; use the flags")
        return cls(
            host=parts.hostname,
            port=port or 6379,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=_secret(parts.password),
            tls=parts.scheme == "rediss",
            ca_file=ca_file,
        )

    @classmethod
    def _parse_unix(
        cls,
        path: str,
        query: str,
        fragment: str,
        username: str | None,
        password: str | None,
        netloc: str,
        port: int | None,
    ) -> RedisTarget:
        """``unix://[user:password@]/path[?db=N]`` (redis-py's form of a socket URL)."""
        if netloc.rpartition("@")[2] or port is not None:
            raise ValueError("a unix:// Redis URL names a socket path (unix:///path/redis.sock)")
        if not path.startswith("/") or path == "/":
            raise ValueError("a unix:// Redis URL needs an absolute socket path")
        db = 0
        if query:
            key, eq, value = query.partition("=")
            if key != "db" or not eq or not value.isdigit():
                raise ValueError("the only option of a unix:// Redis URL is ?db=N")
            db = int(value)
        if fragment:
            raise ValueError("the only option of a unix:// Redis URL is ?db=N")
        return cls(
            host="localhost",
            port=0,
            db=db,
            username=unquote(username) if username else None,
            password=_secret(password),
            path=unquote(path),
        )

    def __str__(self) -> str:
        user = ""
        if self.username or self.password:
            user = f"{self.username or ''}{':***' if self.password else ''}@"
        if self.path is not None:
            return f"unix://{user}{self.path}" + (f"?db={self.db}" if self.db else "")
        return f"{'rediss' if self.tls else 'redis'}://{user}{self.host}:{self.port}/{self.db}"

    def __repr__(self) -> str:
        return f"RedisTarget({self})"

    def client(self, **kw: Any) -> Any:
        """A ``redis.asyncio.Redis`` for this target (bytes replies, TLS verified)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        params: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password.reveal() if self.password is not None else None,
            "decode_responses": False,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),  # reconnects are HEAN's own (jittered backoff)
        }
        if self.path is not None:
            params["unix_socket_path"] = self.path
        else:
            params.update(host=self.host, port=self.port)
        if self.tls:
            params.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True)
            if self.ca_file:
                params["ssl_ca_certs"] = self.ca_file
        params.update(kw)
        return aioredis.Redis(**params)


def _secret(password: str | None) -> Secret | None:
    """The URL's password (or ``HEAN_REDIS_PASSWORD``) as a :class:`Secret`, redacted in logs."""
    password = unquote(password) if password else None
    env = os.environ.get("HEAN_REDIS_PASSWORD")
    if password is None and env:
        password = env
    secret = Secret(password) if password else None
    if secret is not None:
        install_redaction([secret])
    return secret
