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
from typing import TYPE_CHECKING, Any, cast

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


def nodelay(transport: asyncio.BaseTransport) -> None:
    """Nagle off on a TCP connection (asyncio and uvloop do so already; made sure of here, as a
    small command written while a reply is unacknowledged would otherwise wait for it)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def is_error(reply: Any) -> bool:
    """Whether a reply read by :meth:`RespConnection.read` is an error reply."""
    return isinstance(reply, Exception)


class _Protocol(asyncio.Protocol):
    """Feeds what arrives straight into hiredis and wakes the one waiting reader: no
    ``StreamReader`` buffer to copy through (a reader woken for every message notices)."""

    def __init__(self, parser: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.parser = parser
        self.gone: asyncio.Future[None] = loop.create_future()
        """Done once the transport is closed."""
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drainer: asyncio.Future[None] | None = None
        self.paused = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self.lost = True  # Redis closed its side: readers and writers stop now
        self.paused = False
        for fut in (self.waiter, self.drainer):
            if fut is not None and not fut.done():
                fut.set_result(None)
        self.waiter = self.drainer = None
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.gone.done():
            self.gone.set_result(None)
        self.paused = False
        for fut in (self.waiter, self.drainer):
            if fut is not None and not fut.done():
                fut.set_result(None)
        self.waiter = self.drainer = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        drainer, self.drainer = self.drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)


class RespConnection:
    """One connection to Redis speaking RESP2 (see the module docstring).

    Args:
        timeout: seconds to wait for replies before the connection counts as lost.
    """

    def __init__(self, protocol: _Protocol, *, timeout: float = 5.0) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self.transport: asyncio.Transport = protocol.transport
        self._parser = protocol.parser
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
        import hiredis

        ctx: ssl.SSLContext | None = None
        if target.tls:
            ctx = ssl.create_default_context(cafile=target.ca_file)
        loop = asyncio.get_running_loop()
        protocol = _Protocol(hiredis.Reader(replyError=RespError), loop)
        async with asyncio.timeout(connect_timeout):
            if target.path is not None:
                transport, _ = await loop.create_unix_connection(lambda: protocol, target.path)
            else:
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    target.host,
                    target.port,
                    ssl=ctx,
                    server_hostname=target.host if ctx is not None else None,
                )
                nodelay(transport)
            conn = cls(protocol, timeout=timeout)
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
        if self.closed or self._protocol.lost:
            raise ConnectionError("the Redis connection is closed")
        self.transport.write(data)

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
        protocol = self._protocol
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
            if protocol.lost:
                self.closed = True
                raise ConnectionError("Redis closed the connection")
            loop = asyncio.get_running_loop()
            waiter = protocol.waiter = loop.create_future()
            if not timer:
                self.waiting_since = loop.time()
                try:
                    await waiter
                finally:
                    self.waiting_since = None
            else:
                async with asyncio.timeout(self.timeout):
                    await waiter

    async def drain(self) -> None:
        """Until the transport's write buffer is below its high-water mark."""
        protocol = self._protocol
        if protocol.lost:
            raise ConnectionError("Redis closed the connection")
        if protocol.paused:
            drainer = protocol.drainer
            if drainer is None:
                drainer = protocol.drainer = asyncio.get_running_loop().create_future()
            await asyncio.shield(drainer)
            if protocol.lost:
                raise ConnectionError("Redis closed the connection")

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
        """Close now; a :meth:`read` waiting ends with ``ConnectionError``."""
        self.closed = True
        self.transport.close()
        waiter, self._protocol.waiter = self._protocol.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> None:
        self.close()
        try:
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._protocol.gone)
        except (OSError, TimeoutError, ssl.SSLError):
            pass
