"""Typed REST errors, picked by ``retCode`` or HTTP status (rest.md §1.2, §2.4, §7.6).

Every error carries ``ret_code`` and ``ret_msg`` (Bybit's; ``None`` / ``""`` when the answer was
not a JSON envelope), ``http_status``, the request's ``method`` and ``path``, and the
``X-Bapi-Limit*`` values of the answer when it had them (``limit``). None of them ever contains
the API secret or a signature; the client replaces the API key in ``retMsg`` (10004 echoes the
signed string) by its mask before building the error.

==================== =====================================================================
class                when
==================== =====================================================================
RestAuthError        10003 key invalid / wrong environment, 10004 bad signature, 10007,
                     10008, 10009, 33004 / -2015 key expired, HTTP 401. Never retried.
RestTimestampError   10002 (subclass of RestAuthError): timestamp outside the window. The
                     client re-syncs its clock and retries once.
RestPermissionError  10005, 10010 IP not whitelisted, 10020, 10024, 10027-10029. Never retried.
RestRateLimitError   10006 (per UID), 10018, retCode 429, HTTP 403 (IP limit), HTTP 429.
                     Retried (bounded) after the reset time / a backoff.
RestParamsError      10001, 10017 route not found, HTTP 400 and 404. Never retried.
RestBusinessError    any other non-zero retCode (110xxx, 170xxx ...). Never retried.
                     Subclasses: RestUnknownOrderError (110001, 170213),
                     RestInsufficientBalanceError (110004, 110007, 110012, 110044, 110045,
                     170131), RestDuplicateOrderError (110072, 170141).
RestServerError      HTTP 5xx, 10000, 10016. Retried (bounded) for queries; never for order
                     entry (the outcome is unknown).
RestTransportError   network error, timeout, or a body that is not a JSON envelope. Retried
                     (bounded) for queries; never for order entry.
==================== =====================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hean.exchange.bybit.rest.limits import RateLimitInfo

__all__ = [
    "AUTH_CODES",
    "BALANCE_CODES",
    "DUPLICATE_ORDER_CODES",
    "PARAMS_CODES",
    "PERMISSION_CODES",
    "RATE_LIMIT_CODES",
    "SERVER_CODES",
    "TIMESTAMP_CODES",
    "UNKNOWN_ORDER_CODES",
    "RestAuthError",
    "RestBusinessError",
    "RestDuplicateOrderError",
    "RestError",
    "RestInsufficientBalanceError",
    "RestParamsError",
    "RestPermissionError",
    "RestRateLimitError",
    "RestServerError",
    "RestTimestampError",
    "RestTransportError",
    "RestUnknownOrderError",
    "error_for_code",
    "error_for_http",
]

TIMESTAMP_CODES = frozenset({10002})
AUTH_CODES = frozenset({10003, 10004, 10007, 10008, 10009, 33004, -2015})
PERMISSION_CODES = frozenset({10005, 10010, 10020, 10024, 10027, 10028, 10029})
RATE_LIMIT_CODES = frozenset({10006, 10018, 429})
PARAMS_CODES = frozenset({10001, 10017})
SERVER_CODES = frozenset({10000, 10016})
UNKNOWN_ORDER_CODES = frozenset({110001, 170213})
BALANCE_CODES = frozenset({110004, 110007, 110012, 110044, 110045, 170131})
DUPLICATE_ORDER_CODES = frozenset({110072, 170141})

_MAX_TEXT = 300
"""Longest server text kept in a message (a 403 may be a whole HTML page)."""


class RestError(Exception):
    """A REST request failed.

    Args:
        ret_code: Bybit's ``retCode`` (``None`` when the answer had no envelope).
        ret_msg: Bybit's ``retMsg`` (or the start of a non-JSON body).
        http_status: the HTTP status (``None`` when no answer arrived).
        path: the request path.

    Attributes:
        method: ``GET`` / ``POST``.
        limit: the ``X-Bapi-Limit*`` values of the answer, if any.
        response: the decoded answer (a ``RestResponse``) when it was a JSON envelope.
        attempts: requests sent for this call (retries included).
    """

    retryable = False
    """Whether the client may send the request again (after a wait)."""

    def __init__(
        self,
        ret_code: int | None,
        ret_msg: str,
        http_status: int | None,
        path: str,
        *,
        method: str = "",
        limit: RateLimitInfo | None = None,
        response: Any = None,
    ) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.http_status = http_status
        self.path = path
        self.method = method
        self.limit = limit
        self.response = response
        self.attempts = 1
        super().__init__(self._describe())

    def _describe(self) -> str:
        what = f"{self.method} {self.path}".strip()
        said = self.ret_msg[:_MAX_TEXT]
        if self.ret_code is not None:
            text = f"{what} rejected: {self.ret_code} {said}".rstrip()
        else:
            text = f"{what} failed: {said or 'no message'}"
        if self.http_status is not None and self.http_status != 200:
            text += f" (HTTP {self.http_status})"
        hint = self.hint
        return f"{text} — {hint}" if hint else text

    hint = ""
    """What to do about it (part of the message)."""


class RestAuthError(RestError):
    """The key, signature or account was refused (not retried)."""

    hint = (
        "check the API key and secret, and that the key belongs to this environment "
        "(mainnet / testnet / demo)"
    )


class RestTimestampError(RestAuthError):
    """``X-BAPI-TIMESTAMP`` was outside the server's window (10002)."""

    hint = "the local clock is off or the network slow: sync the system clock (NTP)"


class RestPermissionError(RestError):
    """The key may not do this (permissions, IP whitelist, compliance) — not retried."""

    hint = "check the API key's permissions and bound IP addresses"


class RestRateLimitError(RestError):
    """Too many requests (per UID 10006, per IP HTTP 403, system HTTP 429 / retCode 429)."""

    retryable = True
    hint = "slow down: wait for the limit's reset time"


class RestParamsError(RestError):
    """A parameter (or the path) was wrong — not retried."""


class RestBusinessError(RestError):
    """The exchange refused the request for a business reason (order, balance ...)."""


class RestUnknownOrderError(RestBusinessError):
    """The order does not exist (any more) (110001, 170213)."""


class RestInsufficientBalanceError(RestBusinessError):
    """Not enough balance or margin."""


class RestDuplicateOrderError(RestBusinessError):
    """The ``orderLinkId`` was used before (110072, 170141)."""


class RestServerError(RestError):
    """The exchange had a problem (HTTP 5xx, 10000 timeout, 10016 service restarting)."""

    retryable = True


class RestTransportError(RestError):
    """No usable answer: network error, timeout, or a body that is not a JSON envelope."""

    retryable = True

    def __init__(
        self,
        reason: str,
        path: str,
        *,
        method: str = "",
        http_status: int | None = None,
        limit: RateLimitInfo | None = None,
    ) -> None:
        super().__init__(None, reason, http_status, path, method=method, limit=limit)


_CODE_CLASSES: tuple[tuple[frozenset[int], type[RestError]], ...] = (
    (TIMESTAMP_CODES, RestTimestampError),
    (AUTH_CODES, RestAuthError),
    (PERMISSION_CODES, RestPermissionError),
    (RATE_LIMIT_CODES, RestRateLimitError),
    (PARAMS_CODES, RestParamsError),
    (SERVER_CODES, RestServerError),
    (UNKNOWN_ORDER_CODES, RestUnknownOrderError),
    (BALANCE_CODES, RestInsufficientBalanceError),
    (DUPLICATE_ORDER_CODES, RestDuplicateOrderError),
)


def error_for_code(
    ret_code: int,
    ret_msg: str,
    path: str,
    *,
    method: str = "",
    http_status: int | None = 200,
    limit: RateLimitInfo | None = None,
    response: Any = None,
) -> RestError:
    """The error for an envelope with ``retCode != 0``."""
    cls: type[RestError] = RestBusinessError
    for codes, kind in _CODE_CLASSES:
        if ret_code in codes:
            cls = kind
            break
    return cls(ret_code, ret_msg, http_status, path, method=method, limit=limit, response=response)


def error_for_http(
    http_status: int,
    body: bytes | str,
    path: str,
    *,
    method: str = "",
    limit: RateLimitInfo | None = None,
) -> RestError:
    """The error for an HTTP status other than 200 (the body is not parsed as JSON: a 403 is
    an HTML page or plain text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())[:_MAX_TEXT]
    cls: type[RestError]
    if http_status in (403, 429):
        cls = RestRateLimitError
        if http_status == 403 and not text:
            text = "access denied (IP rate limit, GET with a body, or a restricted region)"
    elif http_status == 401:
        cls = RestAuthError
    elif http_status >= 500:
        cls = RestServerError
    elif http_status in (400, 404, 405):
        cls = RestParamsError
    else:
        return RestTransportError(
            text or f"unexpected HTTP status {http_status}",
            path,
            method=method,
            http_status=http_status,
            limit=limit,
        )
    return cls(None, text, http_status, path, method=method, limit=limit)
