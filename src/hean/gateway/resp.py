"""The Redis protocol (RESP2) on the hot paths: commands packed by hand, replies parsed by hiredis.

The gateway writes one ``XADD`` per event and the remote hub reads with one ``XREAD`` per wake-up;
through redis-py's pipeline and client every command pays for building a command object,
encoding each argument, one ``read_response`` per reply and its response callback: ~9 CPU-µs per
entry in the gateway (docs/benchmarks.md). Here:

* the part of an ``XADD`` that never changes for a stream (``XADD key MAXLEN ~ N``) is packed
  once (:func:`xadd_head`); each entry adds only its id and payload (:func:`xadd`), and a batch
  goes out as one buffer in one write;
* the replies of a batch are parsed by hiredis's C reader as they arrive, in bulk
  (:meth:`RespConnection.read`), with no per-reply coroutine;
* errors stay values (:class:`RespError` instances): one refused entry does not fail the batch.

:class:`RespConnection` is the thin asyncio shell: TCP (``TCP_NODELAY``), TLS (verified, as
:meth:`RedisTarget.client`) or a Unix socket; ``AUTH`` / ``SELECT`` / ``CLIENT SETNAME``, write,
read ``n`` replies within a timeout. The password goes to Redis only, in ``AUTH``; no exception
or log here carries a command's arguments. ``hiredis`` is imported on the first connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hean.gateway.redis_target import RedisTarget

__all__ = [
    "RespConnection",
    "RespError",
    "XRead",
    "bulk",
    "id_prefix",
    "is_error",
    "nodelay",
    "pack",
    "xadd",
    "xadd_head",
]


class RespError(Exception):
    """Redis answered a command with an error (the message is Redis's, never the arguments)."""


def _arg(a: bytes | str | int) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    return b"%d" % a


def pack(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def xadd_head(key: str, maxlen: int) -> bytes:
    """``XADD key MAXLEN ~ maxlen`` of an 8-part command: the part shared by a stream's entries."""
    k = key.encode()
    m = b"%d" % maxlen
    return b"*8\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$%d\r\n%s\r\n" % (
        len(k),
        k,
        len(m),
        m,
    )


def id_prefix(epoch: int, g: int) -> tuple[bytes, int, int]:
    """``($<len>\\r\\n{epoch}-, low, high)``: the bulk-string header and epoch part shared by the
    ids ``{epoch}-{x}`` of every ``low <= x < high`` (the numbers with as many digits as ``g``),
    so an entry's id is this prefix + ``b"%d" % x`` (one format instead of two)."""
    digits = len(str(g))
    e = b"%d" % epoch
    return b"$%d\r\n%s-" % (len(e) + 1 + digits, e), 10 ** (digits - 1), 10**digits


def xadd(head: bytes, entry_id: bytes, payload: bytes) -> bytes:
    """The whole ``XADD`` of one entry: ``head`` + ``<entry_id> d <payload>``."""
    return b"%s$%d\r\n%s\r\n$1\r\nd\r\n$%d\r\n%s\r\n" % (
        head,
        len(entry_id),
        entry_id,
        len(payload),
        payload,
    )


def bulk(a: bytes | str) -> bytes:
    """One RESP bulk string (an argument of a packed command)."""
    b = a.encode() if isinstance(a, str) else a
    return b"$%d\r\n%s\r\n" % (len(b), b)


class XRead:
    """``XREAD COUNT n BLOCK ms STREAMS key... id...``: the fixed part packed once; a reader
    keeps each key and cursor packed (:func:`bulk`) and repacks only the cursors that moved, so
    a wake-up costs one join of bytes, whatever the number of streams."""

    __slots__ = ("_fixed",)

    def __init__(self, count: int, block_ms: int) -> None:
        self._fixed = pack("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS").partition(
            b"\r\n"
        )[2]

    def packed(self, keys: list[bytes], ids: list[bytes]) -> bytes:
        """The command from packed ``keys`` and their packed ``ids`` (same order)."""
        return self.packed_joined(len(keys), b"".join(keys), b"".join(ids))

    def packed_joined(self, n: int, keys: bytes, ids: bytes) -> bytes:
        """The command from ``n`` packed keys and their ``n`` packed ids, each joined."""
        return b"*%d\r\n%s%s%s" % (6 + 2 * n, self._fixed, keys, ids)

    def pack(self, keys: list[str], ids: list[str]) -> bytes:
        return self.packed([bulk(k) for k in keys], [bulk(i) for i in ids])


def nodelay(writer: asyncio.StreamWriter) -> None:
    """Nagle off on a TCP connection (asyncio and uvloop do so already; made sure of here, as a
    small command written while a reply is unacknowledged would otherwise wait for it)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def is_error(reply: Any) -> bool:
    """Whether a reply read by :meth:`RespConnection.read` is an error reply."""
    return isinstance(reply, Exception)


class RespConnection:
    """One connection to Redis speaking RESP2 (see the module docstring).

    Args:
        timeout: seconds to wait for replies before the connection counts as lost.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float = 5.0
    ) -> None:
        import hiredis

        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader(replyError=RespError)
        self.timeout = timeout
        self.closed = False
        self.waiting_since: float | None = None
        """Loop time since when :meth:`read` waits for data (``None``: not waiting); a caller
        reading with ``timer=False`` watches it and :meth:`close` s a connection that hangs."""

    @classmethod
    async def open(
        cls,
        target: RedisTarget,
        *,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        name: str | None = None,
    ) -> RespConnection:
        """Connect (TLS verified for ``rediss://``), authenticate, select the database."""
        ctx: ssl.SSLContext | None = None
        if target.tls:
            ctx = ssl.create_default_context(cafile=target.ca_file)
        async with asyncio.timeout(connect_timeout):
            if target.path is not None:
                reader, writer = await asyncio.open_unix_connection(target.path, limit=1 << 20)
            else:
                reader, writer = await asyncio.open_connection(
                    target.host,
                    target.port,
                    ssl=ctx,
                    server_hostname=target.host if ctx is not None else None,
                    limit=1 << 20,
                )
                nodelay(writer)
            conn = cls(reader, writer, timeout=timeout)
            try:
                if target.password is not None:
                    user = [target.username] if target.username else []
                    await conn.call("AUTH", *user, target.password.reveal())
                if target.db:
                    await conn.call("SELECT", target.db)
                if name:
                    await conn.call("CLIENT", "SETNAME", name)
            except BaseException:
                conn.close()
                raise
        return conn

    def send(self, data: bytes) -> None:
        """Queue ``data`` (one or many packed commands) for writing."""
        if self.closed:
            raise ConnectionError("the Redis connection is closed")
        self._writer.write(data)

    async def read(self, n: int, *, timer: bool = True) -> list[Any]:
        """The next ``n`` replies (error replies as exception values, not raised).

        Args:
            timer: wait at most the connection's ``timeout`` for data. ``False``: no timer, the
                caller watches ``waiting_since`` instead (a timer per read costs a few µs, which
                a reader woken for every message notices).

        Raises:
            ConnectionError: Redis closed the connection (or :meth:`close` was called).
            TimeoutError: no reply in time.
        """
        out: list[Any] = []
        gets = self._parser.gets
        reader = self._reader
        while True:
            while len(out) < n:
                r = gets()
                if r is False:
                    break
                out.append(r)
            if len(out) >= n:
                return out
            if self.closed:
                raise ConnectionError("the Redis connection is closed")
            if not timer:
                self.waiting_since = asyncio.get_running_loop().time()
                try:
                    data = await reader.read(1 << 18)
                finally:
                    self.waiting_since = None
            else:
                async with asyncio.timeout(self.timeout):
                    data = await reader.read(1 << 18)
            if not data:
                self.closed = True
                raise ConnectionError("Redis closed the connection")
            self._parser.feed(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def call(self, *args: bytes | str | int) -> Any:
        """Send one command and return its reply; an error reply raises :class:`RespError`."""
        self.send(pack(*args))
        (reply,) = await self.read(1)
        if is_error(reply):
            raise RespError(str(reply))
        return reply

    async def pipeline(self, commands: list[bytes]) -> list[Any]:
        """Send packed ``commands`` at once and return their replies (errors as values)."""
        self.send(b"".join(commands))
        await self.drain()
        return await self.read(len(commands))

    def close(self) -> None:
        self.closed = True
        self._writer.close()

    async def aclose(self) -> None:
        self.close()
        try:
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass
