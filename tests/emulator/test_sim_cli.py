"""``hean sim``'s account options and start-up banner (hean.cli.sim)."""

from __future__ import annotations

import argparse
import asyncio
import io

import pytest

from hean.cli.sim import (
    ENV_API_KEY,
    ENV_API_SECRET,
    SimOptions,
    add_account_arguments,
    build_config,
    run_sim,
)
from hean.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET


def test_default_pair_when_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.delenv(ENV_API_SECRET, raising=False)
    config = build_config(SimOptions(port=0))
    assert config.accounts == ()
    [account] = config.account_configs
    assert (account.api_key, account.api_secret) == (DEFAULT_API_KEY, DEFAULT_API_SECRET)


def test_credentials_from_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.delenv(ENV_API_SECRET, raising=False)
    [account] = build_config(SimOptions(port=0, api_key="K1", api_secret="S1")).accounts
    assert (account.api_key, account.api_secret) == ("K1", "S1")
    monkeypatch.setenv(ENV_API_KEY, "K2")
    monkeypatch.setenv(ENV_API_SECRET, "S2")
    [account] = build_config(SimOptions(port=0)).accounts
    assert (account.api_key, account.api_secret) == ("K2", "S2")
    monkeypatch.delenv(ENV_API_SECRET)
    with pytest.raises(ValueError, match="both"):
        build_config(SimOptions(port=0))


def test_rest_port_defaults_next_to_the_websocket_port() -> None:
    assert build_config(SimOptions(port=9090)).rest_port == 9091
    assert build_config(SimOptions(port=0)).rest_port == 0
    assert build_config(SimOptions(port=9090, rest_port=8000)).rest_port == 8000


def test_account_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_account_arguments(parser)
    args = parser.parse_args(["--api-key", "K", "--api-secret", "S"])
    assert (args.api_key, args.api_secret) == ("K", "S")


@pytest.mark.parametrize("custom", [False, True])
async def test_banner_lists_private_trade_and_the_account(
    monkeypatch: pytest.MonkeyPatch, custom: bool
) -> None:
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.delenv(ENV_API_SECRET, raising=False)
    opts = (
        SimOptions(port=0, api_key="my-key", api_secret="my-secret")
        if custom
        else SimOptions(port=0)
    )
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(run_sim(opts, stop_event=stop, out=out))
    for _ in range(200):
        if "Ctrl-C" in out.getvalue():
            break
        await asyncio.sleep(0.01)
    stop.set()
    assert await task == 0
    text = out.getvalue()
    assert "/v5/private" in text and "/v5/trade" in text
    [rest_line] = [line for line in text.splitlines() if line.strip().startswith("rest ")]
    assert "http://127.0.0.1:" in rest_line
    if custom:
        assert "API key my-key" in text and "my-secret" not in text
    else:
        assert f"API key {DEFAULT_API_KEY}" in text and DEFAULT_API_SECRET in text
