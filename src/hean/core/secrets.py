"""Secret values (API keys and secrets) that never leak through logs, reprs or serialisation.

:class:`Secret` wraps a credential. Every way a value usually escapes a program prints a mask
instead: ``repr``, ``str``, f-strings and ``%``-formatting, exception messages built from those,
``vars()`` (there is no ``__dict__``). Pickling raises, and JSON encoders (``json``, ``msgspec``)
refuse the type, so a secret cannot be serialised by accident; :meth:`Secret.reveal` is the one
explicit way to the value. Equality uses :func:`hmac.compare_digest` (no early exit on the first
differing character). A secret is not hashable (a hash of the value is a leak of its own).

An API *key* may show its last characters to tell keys apart (``Secret.api_key(...)`` shows at
most 4, fewer for short values); an API *secret* shows none.

:class:`RedactingFilter` is a :class:`logging.Filter` that rewrites log records (message,
arguments, exception and stack text) so that registered secret values and HMAC signatures
(64 hex digits) never reach a handler. :func:`install_redaction` registers values with the
process-wide :data:`REDACTOR` and installs it on the ``hean`` and ``picows`` loggers and on the
handlers in their path, so even a library logging every frame at DEBUG cannot leak an auth
frame. The private and trade WebSocket clients call it on every ``connect()``.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any, NoReturn

__all__ = [
    "REDACTOR",
    "RedactingFilter",
    "Secret",
    "install_redaction",
]

MASK = "****"
"""What a secret (or the hidden part of a key) prints as."""

SIGNATURE_MASK = "<redacted-signature>"
"""What an HMAC-SHA256 hex signature in a log record is replaced with."""

MAX_SHOWN = 4
"""An API key shows at most this many trailing characters."""

_SIGNATURE_RE = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


class Secret:
    """A credential whose value is shown only through :meth:`reveal`.

    Args:
        value: the secret text (must be a non-empty ``str``).
        show_last: trailing characters the mask may show (0 for secrets; at most 4, and never
            more than a quarter of the value). Use :meth:`api_key` for keys.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: ``value`` is empty or ``show_last`` is out of range.
    """

    __slots__ = ("__value", "_shown")

    def __init__(self, value: str, *, show_last: int = 0) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be a str, not {type(value).__name__}")
        if not value:
            raise ValueError("Secret value must not be empty")
        if not 0 <= show_last <= MAX_SHOWN:
            raise ValueError(f"show_last must be between 0 and {MAX_SHOWN}, got {show_last}")
        self.__value = value
        self._shown = min(show_last, len(value) // 4)

    @classmethod
    def api_key(cls, value: Secret | str) -> Secret:
        """An API key: its mask shows up to the last 4 characters (``****abcd``)."""
        if isinstance(value, Secret):
            return cls(value.reveal(), show_last=MAX_SHOWN)
        return cls(value, show_last=MAX_SHOWN)

    @classmethod
    def of(cls, value: Secret | str) -> Secret:
        """``value`` itself if it is a :class:`Secret`, else a fully masked :class:`Secret`."""
        if isinstance(value, Secret):
            return value
        return cls(value)

    def reveal(self) -> str:
        """The secret value. Call it only where the value is needed (signing, sending)."""
        return self.__value

    @property
    def masked(self) -> str:
        """The printable form: ``****`` or, for a key, ``****`` plus its last characters."""
        if self._shown:
            return MASK + self.__value[-self._shown :]
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __format__(self, format_spec: str) -> str:
        return format(self.masked, format_spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other_value = other.reveal()
        elif isinstance(other, str):
            other_value = other
        else:
            return NotImplemented
        return hmac.compare_digest(self.__value.encode(), other_value.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash of the value would leak information

    def __bool__(self) -> bool:
        return True  # never empty (checked in __init__)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("Secret values cannot be pickled (reveal() them explicitly if you must)")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled (reveal() them explicitly if you must)")

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


class RedactingFilter(logging.Filter):
    """Rewrites log records so registered values and HMAC signatures never reach a handler.

    Install it on loggers (it then sees records created on those loggers) and on handlers (it
    sees everything those handlers emit, including records propagated from child loggers).
    :func:`install_redaction` does both for the ``hean`` and ``picows`` logger trees. The record
    is modified in place, so every handler after the first filtering point sees the redacted
    text. It always lets the record through (it redacts, it does not drop).

    Args:
        values: secrets to redact from the start (``Secret`` or plain ``str``).
        redact_signatures: also replace any run of exactly 64 hex digits (an HMAC-SHA256
            signature) with :data:`SIGNATURE_MASK`.
    """

    def __init__(
        self, values: Iterable[Secret | str] = (), *, redact_signatures: bool = True
    ) -> None:
        super().__init__()
        self.redact_signatures = redact_signatures
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._ordered: tuple[tuple[str, str], ...] = ()
        for value in values:
            self.add(value)

    def add(self, value: Secret | str, replacement: str | None = None) -> None:
        """Redact ``value`` from now on (a :class:`Secret` is replaced by its mask)."""
        if isinstance(value, Secret):
            text = value.reveal()
            default = value.masked
        else:
            text = value
            default = MASK
        if not text:
            return
        with self._lock:
            self._values[text] = replacement if replacement is not None else default
            # Longest first, so a value that contains another is replaced whole.
            self._ordered = tuple(sorted(self._values.items(), key=lambda kv: -len(kv[0])))

    def redact(self, text: str) -> str:
        """``text`` with every registered value and signature replaced."""
        for value, replacement in self._ordered:
            if value in text:
                text = text.replace(value, replacement)
        if self.redact_signatures and len(text) >= 64:
            text = _SIGNATURE_RE.sub(SIGNATURE_MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error path
            message = None
        if message is not None:
            redacted = self.redact(message)
            if redacted != message:
                record.msg = redacted
                record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self.redact(text.rstrip("\n"))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = RedactingFilter()
"""The process-wide filter the private and trade clients register their credentials with."""


class _RedactingHandler(logging.Handler):
    """Placed first on a logger: redacts every record that passes through it, emits nothing.

    Handlers run from the logger that created a record up to the root, so a record from any
    descendant (including picows's per-connection child loggers, which are not registered with
    the logging manager and so cannot be given filters) is redacted here before the handlers of
    this logger and of its ancestors (root) see it, including handlers added later.
    """

    def __init__(self, redactor: RedactingFilter, owner: logging.Logger) -> None:
        super().__init__(logging.NOTSET)
        self.redactor = redactor
        self.owner = owner

    def handle(self, record: logging.LogRecord) -> bool:
        self.redactor.filter(record)
        if not self._others_will_handle() and record.levelno >= logging.WARNING:
            # Our presence hides the "no handlers configured" fallback; keep its behaviour.
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() overrides
        return

    def _others_will_handle(self) -> bool:
        logger: logging.Logger | None = self.owner
        while logger is not None:
            if any(not isinstance(h, _RedactingHandler) for h in logger.handlers):
                return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


_install_lock = threading.Lock()


def install_redaction(
    values: Iterable[Secret | str] = (),
    *,
    loggers: Iterable[str] = ("hean", "picows"),
    redactor: RedactingFilter | None = None,
) -> RedactingFilter:
    """Register ``values`` for redaction and make sure the redactor sees every log record of
    the ``loggers`` trees. Idempotent; call it again after adding handlers.

    For each named logger it installs the filter on the logger and on its existing descendants
    (records created there), a redacting pass-through handler first in the logger's handler list
    (records propagated from any descendant, before any handler of this logger or its ancestors
    runs), and the filter on the handlers of the logger and of the root logger.

    Args:
        values: secrets to redact.
        loggers: names of the logger trees to protect.
        redactor: the filter to use (default :data:`REDACTOR`).

    Returns:
        The filter in use.
    """
    filt = redactor if redactor is not None else REDACTOR
    for value in values:
        filt.add(value)
    with _install_lock:
        root = logging.getLogger()
        for name in loggers:
            logger = logging.getLogger(name)
            _add_filter(logger, filt)
            for handler in logger.handlers:
                _add_filter(handler, filt)
            if not any(
                isinstance(h, _RedactingHandler) and h.redactor is filt for h in logger.handlers
            ):
                logger.handlers.insert(0, _RedactingHandler(filt, logger))
            prefix = name + "."
            for other_name, other in list(logging.root.manager.loggerDict.items()):
                if other_name.startswith(prefix) and isinstance(other, logging.Logger):
                    _add_filter(other, filt)
                    for handler in other.handlers:
                        _add_filter(handler, filt)
        for handler in root.handlers:
            _add_filter(handler, filt)
    return filt


def _add_filter(target: logging.Filterer, filt: logging.Filter) -> None:
    if filt not in target.filters:
        target.addFilter(filt)
