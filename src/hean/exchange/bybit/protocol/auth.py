"""Authentication of the private and trade streams, sans-I/O (protocol.md §4).

* :func:`sign`: ``hex(HMAC_SHA256(secret, "GET/realtime" + str(expires)))``.
* :func:`auth_request`: the ``{"req_id": ..., "op": "auth", "args": [key, expires, sig]}`` frame,
  with ``expires = now_wall_ms + clock_offset_ms + window_ms``.
* :class:`ClockOffset`: how far the server clock is ahead of ours (``server - local``), the median
  of recent samples. Samples come from the server time in private/trade pongs (local time = the
  midpoint of the ping round trip) and from trade responses' ``header.Timenow``.
* :func:`classify_auth_failure`: a rejected auth, as a typed :class:`AuthReason` and a message
  that says what is wrong, never the secret or the signature. An expired ``expires`` names the
  measured clock offset.
* :class:`Authenticator`: the object a :class:`~hean.exchange.bybit.protocol.session.Session` is
  given to authenticate. It holds the credentials (so the session never does), builds the auth
  frame for ``now`` (wall time comes from an injected ``wall_ms(now)`` function: no clock reads
  here), judges the ack, and keeps the clock offset.

Auth acks: private ``{"success": true, "ret_msg": "", "op": "auth", ...}``; trade
``{"retCode": 0, "retMsg": "OK", "op": "auth", ...}``. Bybit does not document private failure
texts; observed: ``Params Error`` for an expired ``expires``. Trade: ``10004`` invalid sign,
``10001`` param error, ``20001`` repeat auth, ``10003`` invalid key (or, on the trade stream, too
many sessions).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec

from hean.core.secrets import Secret
from hean.exchange.bybit.protocol.codec import Frame

__all__ = [
    "DEFAULT_WINDOW_MS",
    "AuthError",
    "AuthFailure",
    "AuthReason",
    "Authenticator",
    "ClockOffset",
    "auth_request",
    "classify_auth_failure",
    "sign",
]

DEFAULT_WINDOW_MS = 10_000
"""How far in the future ``expires`` is set (the official samples and ccxt use 10 s)."""

SKEW_THRESHOLD_MS = 1_000.0
"""A measured offset at least this large is reported as clock skew rather than a plain expiry."""

_encoder = msgspec.json.Encoder()


def _reveal(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def sign(secret: Secret | str, expires_ms: int) -> str:
    """The auth signature: lower-case hex HMAC-SHA256 of ``"GET/realtime" + str(expires_ms)``.

    Args:
        secret: the API secret.
        expires_ms: Unix ms after which the signature is no longer accepted.
    """
    payload = f"GET/realtime{int(expires_ms)}".encode()
    return hmac.new(_reveal(secret).encode(), payload, hashlib.sha256).hexdigest()


def auth_request(
    key: Secret | str,
    secret: Secret | str,
    now_wall_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
    clock_offset_ms: float = 0,
    req_id: str | None = None,
    *,
    req_id_key: Literal["req_id", "reqId"] = "req_id",
) -> bytes:
    """The auth frame ``{"req_id": ..., "op": "auth", "args": [key, expires, signature]}``.

    Args:
        key: the API key.
        secret: the API secret.
        now_wall_ms: local wall time, Unix ms.
        window_ms: how far ahead of (server) now ``expires`` is.
        clock_offset_ms: estimated ``server - local`` clock difference; added so ``expires`` is
            in the server's future even when the local clock is behind.
        req_id: optional request id (left out when ``None``).
        req_id_key: ``req_id`` (private stream) or ``reqId`` (trade stream).

    Raises:
        ValueError: ``window_ms`` is not positive.
    """
    if window_ms <= 0:
        raise ValueError(f"window_ms must be > 0, got {window_ms}")
    expires = round(now_wall_ms + clock_offset_ms + window_ms)
    args = [_reveal(key), expires, sign(secret, expires)]
    if req_id is None:
        return _encoder.encode({"op": "auth", "args": args})
    return _encoder.encode({req_id_key: req_id, "op": "auth", "args": args})


class ClockOffset:
    """Robust estimate of ``server_time - local_time`` in ms: the median of the last samples.

    Args:
        max_samples: how many recent samples are kept.
    """

    __slots__ = ("_samples", "last_rtt_ms", "max_samples")

    def __init__(self, max_samples: int = 15) -> None:
        if max_samples < 1:
            raise ValueError("max_samples must be >= 1")
        self.max_samples = max_samples
        self._samples: deque[float] = deque(maxlen=max_samples)
        self.last_rtt_ms: float | None = None

    def add_round_trip(self, server_ms: float, sent_wall_ms: float, recv_wall_ms: float) -> float:
        """Add a sample from a request/reply round trip: the server stamped its reply at some
        point between our send and our receive; the midpoint is the best local estimate.

        Returns:
            The sample (``server_ms - midpoint``).
        """
        if recv_wall_ms < sent_wall_ms:
            sent_wall_ms = recv_wall_ms
        self.last_rtt_ms = recv_wall_ms - sent_wall_ms
        sample = server_ms - (sent_wall_ms + recv_wall_ms) / 2.0
        self._samples.append(sample)
        return sample

    def add(self, offset_ms: float) -> None:
        """Add a ready-made sample."""
        self._samples.append(float(offset_ms))

    @property
    def estimate_ms(self) -> float | None:
        """Median of the kept samples, or ``None`` before the first."""
        if not self._samples:
            return None
        return float(statistics.median(self._samples))

    @property
    def count(self) -> int:
        return len(self._samples)

    def clear(self) -> None:
        self._samples.clear()
        self.last_rtt_ms = None

    def describe(self, source: str = "pongs") -> str:
        """E.g. ``local clock is 7.3 s behind the server (measured from pongs)``."""
        return describe_offset(self.estimate_ms, source)

    def __repr__(self) -> str:
        est = self.estimate_ms
        return f"ClockOffset(estimate_ms={est if est is None else round(est, 1)}, n={self.count})"


def describe_offset(offset_ms: float | None, source: str = "pongs") -> str:
    """Say in words how the local clock compares with the server's."""
    if offset_ms is None:
        return "local clock offset unknown (no server time measured yet)"
    seconds = abs(offset_ms) / 1000.0
    if seconds < 0.05:
        return f"local clock agrees with the server (measured from {source})"
    direction = "behind" if offset_ms > 0 else "ahead of"
    return f"local clock is {seconds:.1f} s {direction} the server (measured from {source})"


class AuthReason(enum.StrEnum):
    """Why an auth was rejected."""

    BAD_KEY = "bad_key"
    """The key is unknown, or belongs to another environment (mainnet/testnet/demo). Not retried."""
    BAD_SIGNATURE = "bad_signature"
    """The signature does not verify: the secret does not belong to the key. Not retried."""
    EXPIRED = "expired"
    """``expires`` was in the server's past (network delay, or a window too small)."""
    CLOCK_SKEW = "clock_skew"
    """``expires`` was in the server's past and the local clock is measurably off."""
    REPEAT_AUTH = "repeat_auth"
    """The connection was already authenticated (20001): treated as success."""
    TOO_MANY_SESSIONS = "too_many_sessions"
    """Too many trade sessions under this UID (10003 on the trade stream)."""
    UNKNOWN = "unknown"


_NOT_RETRIED = frozenset({AuthReason.BAD_KEY, AuthReason.BAD_SIGNATURE})


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A rejected auth: the typed reason, a message for humans, and what the server said."""

    reason: AuthReason
    message: str
    """One line saying what is wrong (never a secret or signature)."""
    ret_code: int | None = None
    ret_msg: str | None = None
    offset_ms: float | None = None
    """The measured ``server - local`` clock offset at the time, if any."""

    @property
    def retryable(self) -> bool:
        """Whether trying again later can help (``False`` for a bad key or signature)."""
        return self.reason not in _NOT_RETRIED


class AuthError(ConnectionError):
    """Authentication was rejected; ``failure`` says why."""

    def __init__(self, failure: AuthFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    @property
    def reason(self) -> AuthReason:
        return self.failure.reason


def classify_auth_failure(
    ret_msg: str | None = None,
    ret_code: int | None = None,
    *,
    offset_ms: float | None = None,
    applied_offset_ms: float = 0.0,
    window_ms: int = DEFAULT_WINDOW_MS,
    source: str = "pongs",
) -> AuthFailure:
    """Turn an auth rejection (private ``ret_msg``, or trade ``retCode`` / ``retMsg``) into an
    :class:`AuthFailure`.

    Args:
        ret_msg: the server's text (``ret_msg`` or ``retMsg``).
        ret_code: the trade stream's ``retCode`` (or a private reply's, if it has one).
        offset_ms: measured ``server - local`` clock offset, if known.
        applied_offset_ms: the offset already added to ``expires`` in the rejected request;
            only the remainder (``offset_ms - applied_offset_ms``) can explain an expiry.
        window_ms: the ``expires`` window used.
        source: where ``offset_ms`` was measured (for the message).
    """
    text = (ret_msg or "").strip()
    low = text.lower()
    said = _said(ret_code, text)
    if ret_code == 20001 or "repeat" in low:
        return AuthFailure(
            AuthReason.REPEAT_AUTH,
            f"auth: connection already authenticated ({said})",
            ret_code,
            ret_msg,
            offset_ms,
        )
    if ret_code == 10003 and "session" in low:
        return AuthFailure(
            AuthReason.TOO_MANY_SESSIONS,
            f"auth rejected: too many sessions under this account ({said}); close other "
            "trade connections",
            ret_code,
            ret_msg,
            offset_ms,
        )
    if ret_code == 10003 or "api key" in low or "apikey" in low or "api_key" in low:
        return AuthFailure(
            AuthReason.BAD_KEY,
            f"auth rejected: API key is invalid ({said}) — check the key, and that it belongs "
            "to this environment (mainnet / testnet / demo)",
            ret_code,
            ret_msg,
            offset_ms,
        )
    if ret_code == 10004 or "sign" in low:
        return AuthFailure(
            AuthReason.BAD_SIGNATURE,
            f"auth rejected: signature invalid ({said}) — the API secret does not match the key",
            ret_code,
            ret_msg,
            offset_ms,
        )
    if ret_code in (10001, 10002) or "param" in low or "expire" in low or "timestamp" in low:
        window = f"expires window {window_ms / 1000:g} s"
        residual = None if offset_ms is None else offset_ms - applied_offset_ms
        clock = describe_offset(offset_ms, source)
        if residual is not None and abs(residual) >= SKEW_THRESHOLD_MS:
            return AuthFailure(
                AuthReason.CLOCK_SKEW,
                f"auth rejected: request expired — {clock}; {window} ({said}); sync the system "
                "clock (NTP); the next attempt corrects for the measured offset",
                ret_code,
                ret_msg,
                offset_ms,
            )
        hint = (
            "check the system clock (NTP)"
            if offset_ms is None
            else "the clock does not explain it: check network delay, or widen the window"
        )
        return AuthFailure(
            AuthReason.EXPIRED,
            f"auth rejected: request expired — {clock}; {window} ({said}); {hint}",
            ret_code,
            ret_msg,
            offset_ms,
        )
    return AuthFailure(AuthReason.UNKNOWN, f"auth rejected ({said})", ret_code, ret_msg, offset_ms)


def _said(ret_code: int | None, text: str) -> str:
    shown = text[:120] if text else "no message"
    return shown if ret_code is None else f"{ret_code}: {shown}"


class Authenticator:
    """Builds auth frames and judges auth acks for one connection (private or trade).

    It never reads a clock: wall time for ``expires`` comes from ``wall_ms(now)``, a function the
    shell injects (``now`` is the session's monotonic time).

    Args:
        api_key: the API key.
        api_secret: the API secret.
        wall_ms: maps a monotonic ``now`` to Unix ms.
        window_ms: ``expires`` is this far in the (server's) future.
        stream: ``"private"`` (auth frame carries ``req_id``, ack has ``success``) or ``"trade"``
            (no request id, ack has ``retCode``).
        offset: the clock-offset estimator (share one with the trade request tracker).
        apply_offset: add the measured offset to ``expires`` (so a skewed local clock still
            authenticates once the offset is known).
        on_signature: called with each signature produced (e.g. to register it for log
            redaction).
    """

    def __init__(
        self,
        api_key: Secret | str,
        api_secret: Secret | str,
        *,
        wall_ms: Callable[[float], int],
        window_ms: int = DEFAULT_WINDOW_MS,
        stream: Literal["private", "trade"] = "private",
        offset: ClockOffset | None = None,
        apply_offset: bool = True,
        on_signature: Callable[[str], None] | None = None,
    ) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms}")
        if stream not in ("private", "trade"):
            raise ValueError(f"stream must be 'private' or 'trade', got {stream!r}")
        self._key = Secret.api_key(api_key)
        self._secret = Secret.of(api_secret)
        self.wall_ms = wall_ms
        self.window_ms = window_ms
        self.stream = stream
        self.offset = offset if offset is not None else ClockOffset()
        self.apply_offset = apply_offset
        self.on_signature = on_signature
        self.attempts = 0
        self.last_expires_ms: int | None = None
        self._applied_offset = 0.0

    @property
    def api_key(self) -> Secret:
        return self._key

    def auth_request(self, now: float) -> bytes:
        """The auth frame to send now."""
        self.attempts += 1
        wall = self.wall_ms(now)
        estimate = self.offset.estimate_ms if self.apply_offset else None
        self._applied_offset = estimate or 0.0
        expires = round(wall + self._applied_offset + self.window_ms)
        self.last_expires_ms = expires
        signature = sign(self._secret, expires)
        if self.on_signature is not None:
            self.on_signature(signature)
        args = [self._key.reveal(), expires, signature]
        if self.stream == "private":
            return _encoder.encode({"req_id": f"auth-{self.attempts}", "op": "auth", "args": args})
        return _encoder.encode({"op": "auth", "args": args})

    def auth_result(self, frame: Frame, now: float) -> AuthFailure | None:
        """``None`` if the ack says authenticated, else why not."""
        if frame.success is True or (frame.success is None and frame.retCode == 0):
            return None
        text = frame.ret_msg if frame.ret_msg is not None else frame.retMsg
        return classify_auth_failure(
            text,
            frame.retCode,
            offset_ms=self.offset.estimate_ms,
            applied_offset_ms=self._applied_offset,
            window_ms=self.window_ms,
        )

    def on_server_time(self, server_ms: int, now: float, rtt: float) -> None:
        """A pong carried the server time; ``rtt`` is the ping round trip in seconds."""
        recv = self.wall_ms(now)
        self.offset.add_round_trip(server_ms, recv - rtt * 1000.0, recv)

    def __repr__(self) -> str:
        return f"Authenticator(key={self._key.masked!r}, stream={self.stream!r})"
