"""V5 REST request building and signing, sans-I/O (rest.md §2).

The rule that matters: **sign exactly the bytes that are sent**. The server verifies the raw
query string as received (GET) or the raw body bytes (POST); it never sorts, decodes or
re-serialises. So:

* :func:`build_query` builds the query string once (parameters in the order given, ``None``
  dropped, booleans ``true``/``false``, numbers as decimal strings, values outside the URL-safe
  alphabet percent-encoded, a ``cursor`` passed back **verbatim**: it is already percent-encoded
  by the server);
* :func:`encode_body` builds the JSON body once (compact, ``None`` dropped, prices and
  quantities as decimal strings);
* :func:`sign` signs ``timestamp + api_key + recv_window + payload`` (``recv_window`` is ``""``
  when the header is left out);
* :func:`prepare` returns a :class:`PreparedRequest` holding the exact query string or body
  bytes and the headers; the shell sends ``path + "?" + query`` without letting the HTTP library
  re-encode it (``yarl.URL(..., encoded=True)``).

A :class:`PreparedRequest` never shows the key or the signature in its ``repr``.
"""

from __future__ import annotations

import decimal
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.orders import NUMERIC_FIELDS
from hean.exchange.bybit.protocol.trade import to_api_number

__all__ = [
    "NUMERIC_FIELDS",
    "PreparedRequest",
    "build_query",
    "encode_body",
    "prepare",
    "sign",
    "sign_payload",
]


_VERBATIM_KEYS = frozenset({"cursor"})
"""Query values passed back exactly as the server sent them (already percent-encoded)."""

_SAFE = ",:"
"""Characters left unencoded in query values besides ``A-Za-z0-9_.-~`` (comma lists stay raw)."""

_encoder = msgspec.json.Encoder()


def _reveal(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def _query_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | decimal.Decimal):
        return to_api_number(value, key)
    if isinstance(value, str):
        return value if key in _VERBATIM_KEYS else quote(value, safe=_SAFE)
    if isinstance(value, list | tuple):
        return ",".join(_query_value(key, v) for v in value)
    raise TypeError(f"query parameter {key!r}: unsupported type {type(value).__name__}")


def build_query(params: Mapping[str, Any] | None) -> str:
    """The query string (without ``?``) for ``params``, in the order given.

    ``None`` values are dropped; ``True``/``False`` become ``true``/``false``; ints as is;
    floats and Decimals as plain decimal strings; lists/tuples as comma lists; strings are
    percent-encoded outside ``[A-Za-z0-9_.~,:-]`` (Bybit symbols, enums, numbers and
    ``orderLinkId`` never need it), except ``cursor``, which is sent verbatim.

    Raises:
        TypeError: a value of another type.
        ValueError: a non-finite number, or a key that is not a plain identifier.
    """
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if not key or not key.replace("_", "").isalnum() or not key.isascii():
            raise ValueError(f"bad query parameter name {key!r}")
        parts.append(f"{key}={_query_value(key, value)}")
    return "&".join(parts)


def encode_body(params: Mapping[str, Any] | None) -> bytes:
    """The compact JSON body for ``params`` (insertion order, ``None`` dropped at the top level
    and inside the dicts of a ``request`` list; numeric fields as decimal strings).

    Raises:
        TypeError / ValueError: a value that cannot be encoded, or a bad number.
    """
    body = _clean(params or {})
    request = body.get("request")
    if isinstance(request, list):
        body["request"] = [_clean(item) if isinstance(item, Mapping) else item for item in request]
    try:
        return _encoder.encode(body)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"cannot encode request body: {exc}") from None


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, decimal.Decimal) or (
            key in NUMERIC_FIELDS and not isinstance(value, str)
        ):
            value = to_api_number(value, key)
        out[key] = value
    return out


def sign_payload(
    timestamp_ms: int | str, api_key: Secret | str, recv_window: int | str | None, payload: str
) -> str:
    """The string that is signed: ``timestamp + key + recv_window + payload`` (no separators;
    ``recv_window`` contributes ``""`` when the header is not sent)."""
    window = "" if recv_window is None else str(recv_window)
    return f"{timestamp_ms}{_reveal(api_key)}{window}{payload}"


def sign(
    secret: Secret | str,
    timestamp_ms: int | str,
    api_key: Secret | str,
    recv_window: int | str | None,
    payload: str | bytes,
) -> str:
    """``X-BAPI-SIGN``: lower-case hex HMAC-SHA256 (key = the API secret) of
    :func:`sign_payload`.

    Args:
        payload: the raw query string (GET) or the raw body (POST), exactly as sent.
    """
    text = payload.decode() if isinstance(payload, bytes) else payload
    message = sign_payload(timestamp_ms, api_key, recv_window, text).encode()
    return hmac.new(_reveal(secret).encode(), message, hashlib.sha256).hexdigest()


class PreparedRequest:
    """One request, ready to send: the exact query string / body and the headers.

    Attributes:
        method: ``GET`` or ``POST``.
        path: e.g. ``/v5/order/realtime``.
        query: the query string (GET), exactly as signed; ``""`` when there is none.
        body: the body bytes (POST), exactly as signed; ``None`` for GET (a GET must not carry
            a body).
        headers: the headers to send (auth headers included when signed).
    """

    __slots__ = ("body", "headers", "method", "path", "query", "signed")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes | None,
        headers: dict[str, str],
        signed: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.headers = headers
        self.signed = signed

    @property
    def target(self) -> str:
        """``path`` plus ``?query`` when there is one: the request target on the wire."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def __repr__(self) -> str:
        size = "" if self.body is None else f", body={len(self.body)} bytes"
        return (
            f"PreparedRequest({self.method} {self.path}, query={len(self.query)} chars{size}, "
            f"signed={self.signed})"
        )


def prepare(
    method: str,
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    api_key: Secret | str | None = None,
    api_secret: Secret | str | None = None,
    timestamp_ms: int | None = None,
    recv_window: int | None = 5000,
    referer: str | None = None,
) -> PreparedRequest:
    """Build (and, with credentials, sign) one request.

    Args:
        method: ``GET`` (parameters in the query string) or ``POST`` (a JSON body).
        path: the path, starting with ``/``.
        params: the parameters (API names, e.g. ``orderLinkId``).
        api_key: sign with this key (and ``api_secret``); both ``None``: a public request.
        timestamp_ms: ``X-BAPI-TIMESTAMP`` (server-corrected Unix ms); required when signing.
        recv_window: ``X-BAPI-RECV-WINDOW`` in ms, or ``None`` to leave the header out.
        referer: broker id sent as ``Referer``.

    Raises:
        ValueError: bad method/path, half the credentials, or no timestamp when signing.
    """
    method = method.upper()
    if method not in ("GET", "POST"):
        raise ValueError(f"method must be GET or POST, got {method!r}")
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"bad path {path!r}: give the path alone, parameters in params")
    if (api_key is None) != (api_secret is None):
        raise ValueError("give both api_key and api_secret, or neither")
    headers: dict[str, str] = {}
    if method == "GET":
        query, body = build_query(params), None
        payload = query
    else:
        query, body = "", encode_body(params)
        payload = body.decode()
        headers["Content-Type"] = "application/json"
    if referer:
        headers["Referer"] = referer
    signed = api_key is not None and api_secret is not None
    if api_key is not None and api_secret is not None:
        if timestamp_ms is None:
            raise ValueError("timestamp_ms is required to sign a request")
        headers["X-BAPI-API-KEY"] = _reveal(api_key)
        headers["X-BAPI-TIMESTAMP"] = str(int(timestamp_ms))
        if recv_window is not None:
            headers["X-BAPI-RECV-WINDOW"] = str(int(recv_window))
        headers["X-BAPI-SIGN"] = sign(api_secret, int(timestamp_ms), api_key, recv_window, payload)
        headers["X-BAPI-SIGN-TYPE"] = "2"
    return PreparedRequest(method, path, query, body, headers, signed)
