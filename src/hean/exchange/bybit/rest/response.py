"""The REST envelope (rest.md §1.3) and :class:`RestResponse`.

``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {...}, "time": 1671017382656}``.
``result`` and ``retExtInfo`` may be ``null`` on gateway errors (decoded as ``{}``); success texts
vary (``OK``, ``success``, ``""``): only ``retCode`` is tested.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hean.exchange.bybit.protocol.trade import BatchResult, batch_results
from hean.exchange.bybit.rest.limits import RateLimitInfo

__all__ = ["RestResponse", "batch_results", "decode_envelope"]


class _Envelope(msgspec.Struct):
    retCode: int
    retMsg: str | None = None
    result: Any = None
    retExtInfo: Any = None
    time: int | None = None


_decoder = msgspec.json.Decoder(_Envelope, strict=False)


def decode_envelope(body: bytes) -> tuple[int, str, dict[str, Any], dict[str, Any], int | None]:
    """``(retCode, retMsg, result, retExtInfo, time)`` of a response body.

    Raises:
        ValueError: not a JSON object with an integer ``retCode``.
    """
    try:
        env = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a JSON envelope ({exc})") from None
    result = env.result if isinstance(env.result, dict) else {}
    ext = env.retExtInfo if isinstance(env.retExtInfo, dict) else {}
    return env.retCode, env.retMsg or "", result, ext, env.time


class RestResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One successful (``retCode`` 0) answer.

    Attributes:
        ret_code: ``0``.
        ret_msg: the server's text (``OK``, ``success`` ...).
        result: the ``result`` object (``{}`` when absent).
        ret_ext_info: the ``retExtInfo`` object (batch endpoints: ``{"list": [{code, msg}]}``).
        time: the envelope's server time, ms.
        http_status: 200.
        limit: the ``X-Bapi-Limit*`` headers, or ``None`` when absent (market endpoints).
        path: the request path.
        method: ``GET`` / ``POST``.
        attempts: requests sent for this call (1 unless retried).
    """

    ret_code: int
    ret_msg: str
    result: dict[str, Any]
    ret_ext_info: dict[str, Any]
    time: int | None
    http_status: int
    limit: RateLimitInfo | None
    path: str
    method: str = "GET"
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.ret_code == 0

    @property
    def order_id(self) -> str | None:
        """``result.orderId`` (order entry), if present."""
        value = self.result.get("orderId")
        return value if isinstance(value, str) else None

    @property
    def order_link_id(self) -> str | None:
        """``result.orderLinkId`` (order entry), if present."""
        value = self.result.get("orderLinkId")
        return value if isinstance(value, str) else None

    @property
    def results(self) -> list[BatchResult]:
        """Per-order outcomes of a batch (``result.list[i]`` with ``retExtInfo.list[i]``);
        empty for other endpoints."""
        return batch_results(self.result, self.ret_ext_info)

    @property
    def failed(self) -> list[BatchResult]:
        """The orders of a batch that were refused (``code != 0``)."""
        return [r for r in self.results if not r.ok]
