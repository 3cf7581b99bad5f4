"""hean.cli.common.private_endpoints: where --private connects, for monitor and serve alike."""

from __future__ import annotations

from hean.cli.common import private_endpoints
from hean.core.secrets import Secret

KEYS = (Secret.api_key("k" * 18), Secret.of("s" * 36))


def test_the_venues_endpoints_and_rest_by_default() -> None:
    ends = private_endpoints(
        emulator=None, public_url=None, credentials=KEYS, testnet=True, rest_url=None,
        custom_url=False,
    )  # fmt: skip
    assert ends.private == "wss://stream-testnet.bybit.com/v5/private"
    assert ends.trade == "wss://stream-testnet.bybit.com/v5/trade"
    assert ends.rest == "https://api-testnet.bybit.com"
    assert (ends.api_key, ends.api_secret) == KEYS
    main = private_endpoints(
        emulator=None, public_url=None, credentials=KEYS, testnet=False, rest_url=None,
        custom_url=False,
    )  # fmt: skip
    assert main.rest == "https://api.bybit.com" and "testnet" not in main.private


def test_a_custom_url_has_siblings_and_no_account_without_rest_url() -> None:
    public = "ws://127.0.0.1:9/v5/public/linear"
    ends = private_endpoints(
        emulator=None, public_url=public, credentials=KEYS, testnet=True, rest_url=None,
        custom_url=True,
    )  # fmt: skip
    assert ends.private == "ws://127.0.0.1:9/v5/private"
    assert ends.trade == "ws://127.0.0.1:9/v5/trade"
    assert ends.rest is None  # no REST known for a custom venue: no account view
    given = private_endpoints(
        emulator=None, public_url=public, credentials=KEYS, testnet=True,
        rest_url="http://127.0.0.1:8", custom_url=True,
    )  # fmt: skip
    assert given.rest == "http://127.0.0.1:8"
