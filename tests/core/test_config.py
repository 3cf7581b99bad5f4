"""Settings from the environment, with masked output and clear errors."""

from __future__ import annotations

import pytest

from hean.core.config import ConfigError, Settings
from hean.core.secrets import Secret

KEY = "AbCdEfGhIjKlMnOpQr"
SECRET = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3T"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BYBIT_API_KEY", "BYBIT_API_SECRET", "BYBIT_TESTNET"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_environment() -> None:
    settings = Settings()
    assert settings.testnet is True
    assert settings.api_key is None and settings.api_secret is None
    assert not settings.has_credentials
    with pytest.raises(ConfigError, match="BYBIT_API_KEY and BYBIT_API_SECRET"):
        settings.credentials()


def test_reads_environment_and_masks_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    monkeypatch.setenv("BYBIT_TESTNET", "false")
    settings = Settings()
    assert settings.testnet is False
    creds = settings.credentials()
    assert isinstance(creds.api_key, Secret) and creds.api_key.reveal() == KEY
    assert creds.api_secret.reveal() == SECRET
    for text in (
        repr(settings),
        str(settings),
        repr(creds),
        str(settings.model_dump()),
        settings.model_dump_json(),
        str(settings.model_dump(mode="json")),
    ):
        assert SECRET not in text, text
        assert KEY not in text, text
    assert "****OpQr" in repr(settings) and "****OpQr" in repr(creds)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BYBIT_TESTNET": "maybe"}, "BYBIT_TESTNET"),
        ({"BYBIT_API_KEY": KEY}, "BYBIT_API_SECRET is not set but BYBIT_API_KEY is"),
        ({"BYBIT_API_SECRET": SECRET}, "BYBIT_API_KEY is not set but BYBIT_API_SECRET is"),
        ({"BYBIT_API_KEY": KEY + "\n", "BYBIT_API_SECRET": SECRET}, "BYBIT_API_KEY: must not"),
        ({"BYBIT_API_KEY": KEY, "BYBIT_API_SECRET": "a b" + SECRET}, "BYBIT_API_SECRET: must"),
    ],
)
def test_bad_values_give_clear_errors_without_the_value(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        Settings()
    message = str(info.value)
    assert expected in message
    assert SECRET not in message and KEY not in message and "maybe" not in message


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "")
    monkeypatch.setenv("BYBIT_API_SECRET", "")
    assert not Settings().has_credentials


def test_keyword_arguments_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYBIT_TESTNET", "1")
    settings = Settings(testnet=False, api_key=KEY, api_secret=SECRET)
    assert settings.testnet is False and settings.has_credentials
