"""The REST client verifies TLS: an untrusted certificate is refused (typed, not retried into a
loop), a caller's CA is accepted, and verification cannot be turned off."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from hean.exchange.bybit.rest import BybitRestClient, RestTransportError, RetryPolicy
from tests.exchange.bybit.rest.conftest import envelope

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(crt)),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


@pytest.fixture
async def https_url(cert: tuple[Path, Path]) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(envelope({"timeSecond": "1", "timeNano": "1000000000"}, time=1000))

    app = web.Application()
    app.router.add_get("/v5/market/time", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://localhost:{port}"
    finally:
        await runner.cleanup()


async def test_untrusted_certificate_is_refused(https_url: str) -> None:
    async with BybitRestClient(url=https_url, retry=RetryPolicy(max_retries=0)) as rest:
        with pytest.raises(RestTransportError, match=r"[Cc]ertificate"):
            await rest.server_time()
    assert rest.calls == 1


async def test_a_trusted_ca_is_accepted(https_url: str, cert: tuple[Path, Path]) -> None:
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    async with BybitRestClient(url=https_url, ssl_context=ctx) as rest:
        assert await rest.server_time() == 1000


def test_verification_cannot_be_turned_off() -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="cannot be turned off"):
        BybitRestClient(ssl_context=ctx)
