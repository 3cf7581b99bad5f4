"""Secret masking and the redacting log filter."""

from __future__ import annotations

import copy
import json
import logging
import pickle

import msgspec
import pytest

from hean.core.secrets import (
    SIGNATURE_MASK,
    RedactingFilter,
    Secret,
    install_redaction,
)
from hean.exchange.bybit.protocol.auth import sign

KEY = "AbCdEfGhIjKlMnOpQr"  # 18 characters, like a Bybit key
SECRET = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3T"


def test_key_shows_at_most_last_four_and_secret_shows_nothing() -> None:
    key = Secret.api_key(KEY)
    secret = Secret(SECRET)
    assert repr(key) == "Secret('****OpQr')"
    assert str(key) == "****OpQr" and f"{key}" == "****OpQr" and format(key) == "****OpQr"
    assert f"{key:>10}" == "  ****OpQr"
    assert repr(secret) == "Secret('****')" and str(secret) == "****" and f"{secret}" == "****"
    assert f"{secret!r}" == "Secret('****')"
    assert logging.LogRecord("x", 10, "", 1, "%s %r", (key, secret), None).getMessage() == (
        "****OpQr Secret('****')"
    )
    for text in (repr(secret), str(secret), f"{secret!r}", str([secret]), str({"s": secret})):
        assert SECRET not in text and SECRET[-4:] not in text
    # short keys show less than 4 characters (never most of the value)
    assert Secret.api_key("XXXXXX").masked == "****X"
    assert Secret.api_key("abc").masked == "****"
    assert key.reveal() == KEY and secret.reveal() == SECRET


def test_exception_messages_built_from_secrets_are_masked() -> None:
    secret = Secret(SECRET)
    with pytest.raises(ValueError) as info:
        raise ValueError(f"bad credentials {secret!r} / {secret}")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_not_serialisable_by_accident() -> None:
    secret = Secret(SECRET)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"secret": secret})
    with pytest.raises(TypeError):
        msgspec.json.encode({"secret": secret})
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        vars(secret)
    assert copy.copy(secret) is secret and copy.deepcopy(secret) is secret


def test_equality_is_by_value() -> None:
    assert Secret(SECRET) == Secret(SECRET)
    assert Secret(SECRET) == SECRET
    assert Secret(SECRET) != Secret(SECRET + "x")
    assert Secret(SECRET) != "other"
    assert Secret(SECRET) != 42
    assert Secret.of(Secret(SECRET)).reveal() == SECRET


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        Secret("")
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Secret("abc", show_last=5)


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("hean.test", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_filter_redacts_message_args_exceptions_and_signatures() -> None:
    filt = RedactingFilter([Secret.api_key(KEY), Secret(SECRET)])
    sig = sign(SECRET, 1_700_000_010_000)
    record = _record("auth frame %s with %s", f'{{"args":["{KEY}",1,"{sig}"]}}', SECRET)
    assert filt.filter(record) is True
    text = record.getMessage()
    assert KEY not in text and SECRET not in text and sig not in text
    assert "****OpQr" in text and SIGNATURE_MASK in text
    try:
        raise RuntimeError(f"failed with {SECRET} and {sig}")
    except RuntimeError as exc:
        record = _record("boom", exc=exc)
    filt.filter(record)
    formatted = logging.Formatter().format(record)
    assert SECRET not in formatted and sig not in formatted and "RuntimeError" in formatted
    # plain strings can be registered too, with their own replacement
    filt.add("hunter2", "<pw>")
    record = _record("password=%s", "hunter2")
    filt.filter(record)
    assert record.getMessage() == "password=<pw>"
    # a record without secrets is left exactly as it was
    record = _record("nothing %d here", 5)
    filt.filter(record)
    assert record.args == (5,) and record.getMessage() == "nothing 5 here"


def test_install_redaction_covers_every_logger_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = Secret.api_key("KEYkeyKEYkeyKEY123")
    secret = Secret("SECRETsecretSECRETsecret42")
    sig = sign(secret, 1_700_000_010_000)
    frame = f'{{"op":"auth","args":["{key.reveal()}",1700000010000,"{sig}"]}}'
    caplog.set_level(logging.DEBUG)
    filt = RedactingFilter()
    install_redaction([key, secret], redactor=filt)
    # picows creates per-connection child loggers that are not registered with the logging
    # manager (so they cannot carry filters): emulate one.
    orphan = logging.Logger("picows.hean.client.17", logging.NOTSET)  # noqa: LOG001
    orphan.parent = logging.getLogger("picows.hean.client")
    later = logging.getLogger("hean.created.after.install")
    for logger in (logging.getLogger("hean.session"), orphan, later):
        logger.setLevel(logging.DEBUG)
        logger.debug("sent frame: %s", frame)
        logger.info("secret=%s", secret.reveal())
        try:
            raise ValueError(frame)
        except ValueError:
            logger.exception("failed")
    try:
        assert len(caplog.records) == 9
        everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
        for leaked in (key.reveal(), secret.reveal(), sig):
            assert leaked not in everything
        assert "****Y123" in everything  # the masked key is still recognisable
    finally:
        _uninstall(filt)


def test_redacting_handler_keeps_the_last_resort_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    filt = RedactingFilter(["topsecretvalue"])
    logger = logging.getLogger("hean.lastresort.probe")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        install_redaction(loggers=("hean.lastresort",), redactor=filt)
        logger.warning("value is %s", "topsecretvalue")
    finally:
        root.handlers[:] = saved
        _uninstall(filt)
    err = capsys.readouterr().err
    assert "value is ****" in err and "topsecretvalue" not in err


def _uninstall(filt: RedactingFilter) -> None:
    for logger in [logging.getLogger(), *logging.root.manager.loggerDict.values()]:
        if not isinstance(logger, logging.Logger):
            continue
        logger.removeFilter(filt)
        for handler in logger.handlers[:]:
            handler.removeFilter(filt)
            if getattr(handler, "redactor", None) is filt:
                logger.removeHandler(handler)
