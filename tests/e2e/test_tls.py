"""TLS is always verified: a server whose certificate we do not trust is refused."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import picows
import pytest

from hean.core.bus import EventBus
from hean.core.lifecycle import ConnectionState as S
from hean.exchange.bybit.ws_public import BybitPublicWebSocket, ConnectError
from tests.e2e.conftest import FAST_BACKOFF

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


class _Echo(picows.WSListener):
    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type is picows.WSMsgType.TEXT:
            pass  # accept and ignore everything: the handshake is what is tested


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


@pytest.fixture
async def tls_url(cert: tuple[Path, Path]) -> AsyncIterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    server = await picows.ws_create_server(
        lambda request: _Echo(), "127.0.0.1", 0, ssl=ctx, use_aiofastnet=False
    )
    port = server.sockets[0].getsockname()[1]
    yield f"wss://localhost:{port}/v5/public/linear"
    server.close()
    await server.wait_closed()


async def test_untrusted_certificate_is_refused(tls_url: str, bus: EventBus) -> None:
    ws = BybitPublicWebSocket(bus, "linear", url=tls_url, backoff=FAST_BACKOFF)
    with pytest.raises(ConnectError, match="last failure: tls_error"):
        await ws.connect(timeout=1.0)
    assert ws.session.stats.connects == 0
    assert ws.state is S.CLOSED


async def test_trusted_ca_is_accepted(tls_url: str, cert: tuple[Path, Path], bus: EventBus) -> None:
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    ws = BybitPublicWebSocket(bus, "linear", url=tls_url, backoff=FAST_BACKOFF, ssl_context=ctx)
    await ws.connect(timeout=2.0)
    assert ws.state is S.LIVE
    await ws.disconnect()
    await asyncio.sleep(0)
