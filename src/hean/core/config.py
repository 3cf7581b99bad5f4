"""Settings from the environment: Bybit credentials and the environment switch.

================== =========================================== =========
variable           meaning                                     default
================== =========================================== =========
``BYBIT_API_KEY``    API key (private and trade streams)         unset
``BYBIT_API_SECRET`` API secret (HMAC key for the auth signature) unset
``BYBIT_TESTNET``    ``true``: testnet hosts; ``false``: mainnet   ``true``
================== =========================================== =========

Credentials are held as pydantic :class:`~pydantic.SecretStr` and handed out as
:class:`~hean.core.secrets.Secret` by :meth:`Settings.credentials`; ``repr(settings)``,
``str(settings)``, ``model_dump()`` and ``model_dump_json()`` never show the secret (the key shows
at most its last 4 characters in ``repr``). Invalid values raise :class:`ConfigError`, whose
message names the environment variable and what is wrong, never the value.

Example::

    settings = Settings()               # reads the environment
    creds = settings.credentials()      # ConfigError if the key or secret is missing
    ws = BybitPrivateWebSocket(bus, api_key=creds.api_key, api_secret=creds.api_secret,
                               testnet=settings.testnet)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hean.core.secrets import Secret

__all__ = ["ENV_PREFIX", "ConfigError", "Credentials", "Settings"]

ENV_PREFIX = "BYBIT_"


class ConfigError(ValueError):
    """A setting is missing or invalid. The message never contains a secret value."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and secret, both masked when printed."""

    api_key: Secret
    api_secret: Secret


class Settings(BaseSettings):
    """HEAN settings read from ``BYBIT_*`` environment variables (or keyword arguments).

    Raises:
        ConfigError: a value is invalid (e.g. ``BYBIT_TESTNET=maybe``, a key with spaces, only
            one of key and secret set).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=True,
    )

    api_key: SecretStr | None = None
    """``BYBIT_API_KEY``."""
    api_secret: SecretStr | None = None
    """``BYBIT_API_SECRET``."""
    testnet: bool = True
    """``BYBIT_TESTNET``: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @field_validator("api_key", "api_secret", mode="after")
    @classmethod
    def _check_credential(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        if not text:
            return None  # an empty variable counts as unset
        if text != text.strip() or any(ch.isspace() for ch in text):
            raise ValueError("must not contain whitespace (check for a stray newline or space)")
        if not text.isprintable() or not text.isascii():
            raise ValueError("must be printable ASCII")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> Settings:
        if (self.api_key is None) != (self.api_secret is None):
            missing = "api_secret" if self.api_secret is None else "api_key"
            raise ValueError(
                f"{_env(missing)} is not set but {_env(_other(missing))} is: set both or neither"
            )
        return self

    @property
    def has_credentials(self) -> bool:
        """Whether both the key and the secret are set."""
        return self.api_key is not None and self.api_secret is not None

    def credentials(self) -> Credentials:
        """The API key and secret as :class:`~hean.core.secrets.Secret` values.

        Raises:
            ConfigError: they are not set.
        """
        if self.api_key is None or self.api_secret is None:
            raise ConfigError(
                f"no Bybit credentials: set {_env('api_key')} and {_env('api_secret')}"
            )
        return Credentials(
            Secret.api_key(self.api_key.get_secret_value()),
            Secret(self.api_secret.get_secret_value()),
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        key = self.api_key
        yield "api_key", None if key is None else Secret.api_key(key.get_secret_value())
        yield "api_secret", None if self.api_secret is None else Secret("x")
        yield "testnet", self.testnet


def _env(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _other(field: str) -> str:
    return "api_key" if field == "api_secret" else "api_secret"


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = [str(part) for part in error.get("loc", ())]
        where = _env(loc[0]) if loc else "settings"
        msg = str(error.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        problems.append(msg if not loc else f"{where}: {msg}")
    return "invalid settings: " + "; ".join(problems)
