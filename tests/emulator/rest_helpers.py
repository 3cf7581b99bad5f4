"""Raw HTTP helpers for the emulator's REST tests (aiohttp client; independent of HEAN's client)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hean.emulator import Emulator

from .accounts_helpers import KEY, SECRET

REST_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "bybit-v5" / "examples" / "rest"


def rest_example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REST_EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def sign(secret: str, payload: str | bytes) -> str:
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.text)
        return data

    @property
    def code(self) -> int:
        code: int = self.body["retCode"]
        return code

    @property
    def result(self) -> Any:
        return self.body["result"]


def auth_headers(
    emu: Emulator,
    payload: str | bytes,
    *,
    key: str = KEY,
    secret: str = SECRET,
    ts: int | str | None = None,
    recv_window: str | None = "5000",
) -> dict[str, str]:
    stamp = str(emu.server_time_ms() if ts is None else ts)
    prefix = f"{stamp}{key}{recv_window or ''}".encode()
    body = payload.encode() if isinstance(payload, str) else payload
    headers = {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": stamp,
        "X-BAPI-SIGN": sign(secret, prefix + body),
        "X-BAPI-SIGN-TYPE": "2",
    }
    if recv_window is not None:
        headers["X-BAPI-RECV-WINDOW"] = recv_window
    return headers


async def raw_get(
    emu: Emulator, path: str, query: str = "", headers: dict[str, str] | None = None
) -> Reply:
    """GET with the query string sent exactly as given (no re-encoding)."""
    url = emu.rest_url() + path + (f"?{query}" if query else "")
    async with (
        aiohttp.ClientSession() as session,
        session.get(aiohttp.client.URL(url, encoded=True), headers=headers or {}) as resp,
    ):
        return Reply(resp.status, dict(resp.headers), await resp.text())


async def raw_post(
    emu: Emulator, path: str, body: str | bytes, headers: dict[str, str] | None = None
) -> Reply:
    url = emu.rest_url() + path
    data = body.encode() if isinstance(body, str) else body
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=hdrs) as resp,
    ):
        return Reply(resp.status, dict(resp.headers), await resp.text())


async def get(
    emu: Emulator, path: str, query: str = "", *, key: str = KEY, secret: str = SECRET
) -> Reply:
    """A signed GET (the query signed and sent raw)."""
    return await raw_get(emu, path, query, auth_headers(emu, query, key=key, secret=secret))


async def post(
    emu: Emulator, path: str, body: dict[str, Any] | str, *, key: str = KEY, secret: str = SECRET
) -> Reply:
    """A signed POST (compact JSON unless ``body`` is already text)."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return await raw_post(emu, path, text, auth_headers(emu, text, key=key, secret=secret))


def limit_order(
    price: str = "1000", qty: str = "0.01", *, symbol: str = "BTCUSDT", side: str = "Buy", **kw: Any
) -> dict[str, Any]:
    body = {
        "category": "linear",
        "symbol": symbol,
        "side": side,
        "orderType": "Limit",
        "qty": qty,
        "price": price,
        "timeInForce": "GTC",
    }
    body.update(kw)
    return body


#: object fields whose keys are data (coin -> fee), not a fixed field set
MAP_FIELDS = frozenset({"cumFeeDetail"})


def rest_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """Same keys (recursively) and JSON value types as the example; values may differ; a
    ``null`` in the example allows an object or null; :data:`MAP_FIELDS` are maps of strings."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected object, got {actual!r}"
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            if key in MAP_FIELDS:
                assert isinstance(actual[key], dict), f"{path}.{key}: {actual[key]!r}"
                assert all(isinstance(v, str) for v in actual[key].values())
                continue
            rest_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected array, got {actual!r}"
        if expected and actual:
            for item in actual:
                rest_shape(item, expected[0], f"{path}[]")
    elif expected is None:
        assert actual is None or isinstance(actual, dict), f"{path}: {actual!r}"
    else:
        assert type(actual) is type(expected), f"{path}: {actual!r} is not like {expected!r}"
