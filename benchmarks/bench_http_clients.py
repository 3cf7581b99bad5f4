"""HTTP client libraries for the REST client: aiohttp against httpx, measured in one run.

A small HTTP/1.1 server in its own process (raw asyncio, keep-alive, on 127.0.0.1) answers every
request like Bybit's ``/v5/market/time`` (JSON envelope, ``X-Bapi-Limit*``/``Traceid``/``Timenow``
headers, ~200 B body) and counts the TCP connections it accepts. Each client library then runs,
in a fresh process of its own (so CPU time is the client's alone):

* ``sequential``: N GETs one after another over one session (HTTP keep-alive);
* ``concurrent``: N GETs with C in flight at once (a session's connection pool).

Reported per library and mode: wall µs per request, client CPU-µs per request (process time:
user + system), connections the server saw (1 for sequential = connection reuse), and the ratio
httpx / aiohttp from the same run. Rounds alternate the library order; the median round counts.

Correctness checks in the same run (they decide the choice as much as speed does):

* the pre-built query string (a percent-encoded cursor, a comma list) reaches the server
  byte-for-byte (the signature covers exactly those bytes);
* TLS is verified by default: a GET to a local HTTPS server with a self-signed certificate must
  fail (needs the ``openssl`` CLI; skipped without it).

Run:  .venv/bin/python benchmarks/bench_http_clients.py [--requests 3000] [--concurrency 32]
      [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

QUERY = "category=linear&cursor=page_args%3Dfd43-b9%26symbol%3D6%26&coin=USDT,USDC&limit=50"
BODY = (
    b'{"retCode":0,"retMsg":"OK","result":{"timeSecond":"1688639403",'
    b'"timeNano":"1688639403423213947"},"retExtInfo":{},"time":1688639403423}'
)


# -- server (own process) ------------------------------------------------------------------------


class _Http(asyncio.Protocol):
    """Minimal keep-alive HTTP/1.1: GET requests only, no bodies."""

    stats: dict[str, Any] = {"connections": 0, "requests": 0, "lines": []}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.stats["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.stats["requests"] += 1
            target = line.split(" ")[1] if " " in line else ""
            if target.startswith("/stats"):
                body = json.dumps(
                    {k: v for k, v in self.stats.items() if k != "lines"}
                    | {"last_line": self.stats["lines"][-1] if self.stats["lines"] else ""}
                ).encode()
            else:
                if target.startswith("/echo"):
                    self.stats["lines"].append(line)
                body = BODY
            now = str(time.time_ns() // 1_000_000).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                b"X-Bapi-Limit: 50\r\nX-Bapi-Limit-Status: 49\r\nX-Bapi-Limit-Reset-Timestamp: "
                + now
                + b"\r\nTraceid: 38b7977b430f9bd228f4b19724794dfd\r\nTimenow: "
                + now
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )


def _serve(port_q: Any, certfile: str | None, keyfile: str | None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tls_port = None
        if certfile and keyfile:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(certfile, keyfile)
            tls = await loop.create_server(_Http, "127.0.0.1", 0, ssl=ctx)
            tls_port = tls.sockets[0].getsockname()[1]
        port_q.put((port, tls_port))
        await asyncio.Event().wait()

    asyncio.run(main())


# -- clients (fresh process per run) ------------------------------------------------------------


async def _run_aiohttp(base: str, n: int, concurrency: int) -> tuple[float, float]:
    import aiohttp
    import yarl

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(concurrency, 1))
    ) as session:
        url = yarl.URL(f"{base}/v5/market/time?{QUERY}", encoded=True)

        async def one() -> None:
            async with session.get(url) as resp:
                await resp.read()
                assert resp.status == 200

        await one()  # warm-up: connection established before timing
        return await _timed(one, n, concurrency)


async def _run_httpx(base: str, n: int, concurrency: int) -> tuple[float, float]:
    import httpx

    limits = httpx.Limits(max_connections=max(concurrency, 1))
    async with httpx.AsyncClient(limits=limits) as client:
        url = f"{base}/v5/market/time?{QUERY}"

        async def one() -> None:
            resp = await client.get(url)
            resp.read()
            assert resp.status_code == 200

        await one()
        return await _timed(one, n, concurrency)


async def _timed(one: Any, n: int, concurrency: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    if concurrency <= 1:
        for _ in range(n):
            await one()
    else:
        per = n // concurrency

        async def worker() -> None:
            for _ in range(per):
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        n = per * concurrency
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall / n * 1e6, cpu / n * 1e6


def _client(lib: str, base: str, n: int, concurrency: int, out: Any) -> None:
    run = _run_aiohttp if lib == "aiohttp" else _run_httpx
    out.put(asyncio.run(run(base, n, concurrency)))


def _in_process(lib: str, base: str, n: int, concurrency: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_client, args=(lib, base, n, concurrency, out))
    proc.start()
    result: tuple[float, float] = out.get(timeout=600)
    proc.join()
    return result


# -- checks ---------------------------------------------------------------------------------------


async def _stats(base: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"{base}/stats") as r:
        return dict(json.loads(await r.read()))


async def _wire_check(base: str) -> dict[str, bool]:
    import aiohttp
    import httpx
    import yarl

    want = f"GET /echo?{QUERY} HTTP/1.1"
    out = {}
    async with aiohttp.ClientSession() as s:
        async with s.get(yarl.URL(f"{base}/echo?{QUERY}", encoded=True)) as r:
            await r.read()
        out["aiohttp (yarl.URL(..., encoded=True))"] = (await _stats(base))["last_line"] == want
        async with s.get(f"{base}/echo?{QUERY}") as r:
            await r.read()
        out["aiohttp (plain str URL)"] = (await _stats(base))["last_line"] == want
    async with httpx.AsyncClient() as c:
        await c.get(f"{base}/echo?{QUERY}")
        out["httpx (str URL)"] = (await _stats(base))["last_line"] == want
    return out


async def _tls_check(tls_base: str) -> dict[str, str]:
    import aiohttp
    import httpx

    out = {}
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{tls_base}/v5/market/time") as r:
            await r.read()
        out["aiohttp"] = "NOT VERIFIED (self-signed certificate accepted)"
    except aiohttp.ClientConnectorCertificateError:
        out["aiohttp"] = "verified (self-signed certificate refused)"
    try:
        async with httpx.AsyncClient() as c:
            await c.get(f"{tls_base}/v5/market/time")
        out["httpx"] = "NOT VERIFIED (self-signed certificate accepted)"
    except httpx.ConnectError as exc:
        ok = "CERTIFICATE_VERIFY_FAILED" in str(exc)
        out["httpx"] = "verified (self-signed certificate refused)" if ok else f"error: {exc}"
    return out


def _make_cert(tmp: str) -> tuple[str, str] | None:
    if shutil.which("openssl") is None:
        return None
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", key, "-out", crt, "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import aiohttp
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        cert = _make_cert(tmp)
        ctx = mp.get_context("spawn")
        port_q = ctx.Queue()
        server = ctx.Process(target=_serve, args=(port_q, *(cert or (None, None))), daemon=True)
        server.start()
        port, tls_port = port_q.get(timeout=30)
        base = f"http://127.0.0.1:{port}"
        try:
            print(
                f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
                f"httpx {httpx.__version__}, {os.cpu_count()} CPUs; "
                f"{args.requests} requests, concurrency {args.concurrency}, "
                f"{args.rounds} rounds (median)"
            )
            for name, ok in asyncio.run(_wire_check(base)).items():
                print(f"query string byte-exact on the wire, {name}: {'yes' if ok else 'NO'}")
            if tls_port is not None:
                for name, verdict in asyncio.run(
                    _tls_check(f"https://127.0.0.1:{tls_port}")
                ).items():
                    print(f"TLS by default, {name}: {verdict}")
            results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
            for rnd in range(args.rounds):
                libs = ["aiohttp", "httpx"] if rnd % 2 == 0 else ["httpx", "aiohttp"]
                for mode, conc in (("sequential", 1), ("concurrent", args.concurrency)):
                    for lib in libs:
                        before = asyncio.run(_stats(base))["connections"]
                        wall, cpu = _in_process(lib, base, args.requests, conc)
                        conns = asyncio.run(_stats(base))["connections"] - before - 1
                        results.setdefault((lib, mode), []).append((wall, cpu, conns))
            print()
            print("| library | mode | wall µs/req | CPU-µs/req | connections | CPU vs aiohttp |")
            print("|---|---|---:|---:|---:|---:|")
            for mode in ("sequential", "concurrent"):
                base_cpu = statistics.median(r[1] for r in results[("aiohttp", mode)])
                for lib in ("aiohttp", "httpx"):
                    rows = results[(lib, mode)]
                    wall = statistics.median(r[0] for r in rows)
                    cpu = statistics.median(r[1] for r in rows)
                    conns = max(r[2] for r in rows)
                    print(
                        f"| {lib} | {mode} | {wall:.0f} | {cpu:.0f} | {conns} | "
                        f"{cpu / base_cpu:.2f}x |"
                    )
        finally:
            server.kill()


if __name__ == "__main__":
    main()
