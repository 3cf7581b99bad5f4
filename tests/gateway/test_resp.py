"""The gateway's hand-packed Redis commands and its RESP connection (real redis-server)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import hiredis
import msgspec
import pytest

from hean.gateway import resp
from hean.gateway.core import Outbox
from hean.gateway.gateway import pack_entries
from hean.gateway.redis_target import RedisTarget
from hean.gateway.wire import SnapRef
from tests.redis_server import RedisServer, free_port, needs_redis


def commands(parts: list[bytes]) -> list[Any]:
    """Parse packed commands back (a RESP command is a RESP array)."""
    reader = hiredis.Reader()
    reader.feed(b"".join(parts))
    out = []
    while (cmd := reader.gets()) is not False:
        out.append(cmd)
    return out


def test_packed_entries_are_exactly_the_xadd_and_set_commands_meant() -> None:
    out = Outbox(epoch=1_700_000_000_123, snapshot_every=1000)
    tick = out.stream("p:md:linear:tickers.BTCUSDT", "tick", 2000, snap_key="p:snap:x")
    trade = out.stream("p:md:linear:publicTrade.BTCUSDT", "trade", 500)
    for s in (tick, trade):
        s.head = resp.xadd_head(s.key, s.maxlen)
    for g in range(1, 1003):  # ids cross 9 -> 10, 99 -> 100 and 999 -> 1000
        out.add(trade, b"t%d" % g, False, 0.0)
    out.add(tick, b"\x00\r\n$5\r\n", True, 0.0)  # a payload that looks like RESP
    out.add(tick, b"", False, 0.0)
    batch = out.take(10_000)
    parts: list[bytes] = []
    assert pack_entries(batch, out.epoch, parts)  # a snapshot: SET after its XADD
    cmds = commands(parts)
    assert cmds[:2] == [
        [b"XADD", trade.key.encode(), b"MAXLEN", b"~", b"500", b"1700000000123-1", b"d", b"t1"],
        [b"XADD", trade.key.encode(), b"MAXLEN", b"~", b"500", b"1700000000123-2", b"d", b"t2"],
    ]
    assert [c[5] for c in cmds[:1002]] == [b"1700000000123-%d" % g for g in range(1, 1003)]
    assert [c[7] for c in cmds[:1002]] == [b"t%d" % g for g in range(1, 1003)]
    xadd, set_, last = cmds[1002:]
    assert xadd[5:] == [b"1700000000123-1", b"d", b"\x00\r\n$5\r\n"]
    assert set_[:2] == [b"SET", b"p:snap:x"]
    assert msgspec.msgpack.decode(set_[2], type=SnapRef) == SnapRef(
        "1700000000123-1", b"\x00\r\n$5\r\n"
    )
    assert last[5:] == [b"1700000000123-2", b"d", b""]
    # a failed batch is written again: ids with fewer digits than the last packed still come
    # out right (the per-stream cache is keyed by the digit range)
    out.fail(batch)
    again = out.take(10_000)
    parts = []
    pack_entries(again[95:105], out.epoch, parts)
    assert [c[5] for c in commands(parts)] == [b"1700000000123-%d" % g for g in range(96, 106)]
    # a new epoch (chosen at the first connect) resets the cache
    for s in out:
        s.id_high = 0
    parts = []
    pack_entries(again[:1], out.epoch + 1, parts)
    assert commands(parts)[0][5] == b"1700000000124-1"


@needs_redis
async def test_a_pipeline_keeps_errors_as_values_and_call_raises_them(redis_url: str) -> None:
    conn = await resp.RespConnection.open(RedisTarget.parse(redis_url))
    try:
        head = resp.xadd_head("k", 100)
        replies = await conn.pipeline(
            [
                resp.xadd(head, b"5-1", b"a"),
                resp.xadd(head, b"5-1", b"again"),  # not above the last id: refused
                resp.xadd(head, b"5-2", b"b"),
                resp.pack("XLEN", "k"),
            ]
        )
        assert replies[0] == b"5-1" and replies[2] == b"5-2" and replies[3] == 2
        assert resp.is_error(replies[1]) and not resp.is_error(replies[0])
        assert isinstance(replies[1], resp.RespError)
        with pytest.raises(resp.RespError, match="WRONGTYPE"):
            await conn.call("GET", "k")
        assert await conn.call("PING") == b"PONG"  # still in step after the errors
    finally:
        await conn.aclose()


@needs_redis
async def test_password_database_and_a_lost_server() -> None:
    server = RedisServer()
    server.start()
    try:
        setup = await resp.RespConnection.open(RedisTarget.parse(server.url))
        await setup.call("CONFIG", "SET", "requirepass", "pw-s3cret")
        await setup.aclose()
        target = RedisTarget.parse(f"redis://:pw-s3cret@127.0.0.1:{server.port}/3")
        conn = await resp.RespConnection.open(target, timeout=2.0)
        await conn.call("SET", "x", "1")
        assert await conn.call("CLIENT", "INFO") and (await conn.call("DBSIZE")) == 1
        wrong = RedisTarget.parse(f"redis://:nope-s3cret@127.0.0.1:{server.port}/0")
        with pytest.raises(resp.RespError) as exc:
            await resp.RespConnection.open(wrong)
        assert "s3cret" not in str(exc.value)
        server.kill()
        conn.send(resp.pack("PING"))
        with pytest.raises(ConnectionError):
            await conn.read(1)
        await conn.aclose()
    finally:
        server.kill()
        server.stop()


@needs_redis
async def test_a_unix_socket_with_password_and_database(tmp_path: Path) -> None:
    sock = str(tmp_path / "redis.sock")
    server = RedisServer(None, "--unixsocket", sock, "--unixsocketperm", "700")
    server.start()
    try:
        setup = await resp.RespConnection.open(RedisTarget.parse(f"unix://{sock}"))
        await setup.call("CONFIG", "SET", "requirepass", "pw-s3cret")
        await setup.aclose()
        conn = await resp.RespConnection.open(RedisTarget.parse(f"unix://:pw-s3cret@{sock}?db=5"))
        await conn.call("SET", "x", "1")
        info = await conn.call("CLIENT", "INFO")
        assert b" db=5 " in info and b"laddr=" + sock.encode() in info  # over the socket
        assert (await conn.call("DBSIZE")) == 1
        await conn.aclose()
        with pytest.raises(resp.RespError) as exc:
            await resp.RespConnection.open(RedisTarget.parse(f"unix://:nope-s3cret@{sock}"))
        assert "s3cret" not in str(exc.value)
    finally:
        server.kill()
        server.stop()
    with pytest.raises(OSError):  # nothing listens there any more
        await resp.RespConnection.open(RedisTarget.parse(f"unix://{sock}"))


@needs_redis
async def test_tcp_connections_have_nagle_off(redis_url: str) -> None:
    import socket

    conn = await resp.RespConnection.open(RedisTarget.parse(redis_url))
    try:
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        await conn.aclose()


def test_an_xread_repeated_with_new_ids_and_keys_is_packed_right() -> None:
    x = resp.XRead(count=1000, block_ms=50)
    first = x.pack(["a", "b"], ["0-0", "5-1"])
    again = x.pack(["a", "b"], ["0-0", "5-2"])  # one id moved
    other = x.pack(["a", "b", "ctl"], ["1-1", "5-2", "9-9"])  # a key joined
    assert commands([first, again, other]) == [
        [b"XREAD", b"COUNT", b"1000", b"BLOCK", b"50", b"STREAMS", b"a", b"b", b"0-0", b"5-1"],
        [b"XREAD", b"COUNT", b"1000", b"BLOCK", b"50", b"STREAMS", b"a", b"b", b"0-0", b"5-2"],
        [b"XREAD", b"COUNT", b"1000", b"BLOCK", b"50", b"STREAMS", b"a", b"b", b"ctl",
         b"1-1", b"5-2", b"9-9"],
    ]  # fmt: skip


def _certificates(d: Path) -> tuple[Path, Path, Path, Path]:
    """A test CA and a server certificate for localhost (openssl), and an unrelated CA."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other"):
        run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "1",
            "-subj", f"/CN=hean {ca}")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "san").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san")  # fmt: skip
    return d / "ca.crt", d / "server.crt", d / "server.key", d / "other.crt"


@needs_redis
@pytest.mark.skipif(
    shutil.which("openssl") is None and not os.environ.get("HEAN_REQUIRE_REDIS"),
    reason="openssl not installed (CI: never skipped)",
)
async def test_tls_is_verified(tmp_path: Path) -> None:
    ca, cert, key, other = _certificates(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        None, "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
        str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    )  # fmt: skip
    server.start()
    try:
        url = f"rediss://localhost:{tls_port}/0"
        conn = await resp.RespConnection.open(RedisTarget.parse(url, ca_file=str(ca)))
        assert await conn.call("PING") == b"PONG"
        await conn.aclose()
        # a server whose certificate the CA did not sign is refused
        with pytest.raises(ssl.SSLCertVerificationError):
            await resp.RespConnection.open(RedisTarget.parse(url, ca_file=str(other)))
    finally:
        server.kill()
        server.stop()
