"""``hean sim`` option parsing (the emulator itself is tested in tests/emulator)."""

from __future__ import annotations

from collections import Counter

import pytest

from hean.cli.main import build_parser


def test_sim_accepts_account_keys() -> None:
    args = build_parser().parse_args(
        ["sim", "--port", "0", "--api-key", "K1", "--api-secret", "S1"]
    )
    assert (args.api_key, args.api_secret, args.port) == ("K1", "S1", 0)


def test_sim_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--rate", "0"])
    assert "positive" in capsys.readouterr().err


async def test_activity_makes_the_demo_account_trade_for_any_client() -> None:
    """Issue 13: ``hean sim`` had no ``--activity`` (only ``hean monitor --sim`` had
    ``--sim-activity``): a client of a standalone ``hean sim`` never saw the demo account trade.
    The real process, a HEAN private client with the printed keys: orders, executions arrive."""
    import asyncio
    import re
    import signal
    import sys

    from hean.core.bus import EventBus
    from hean.core.events import EventType
    from hean.exchange.bybit.ws_private import BybitPrivateWebSocket

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hean", "sim", "--port", "0", "--symbols", "BTCUSDT",
        "--activity", "20", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    bus = EventBus()
    await bus.start()
    seen: Counter[str] = Counter()
    bus.subscribe(EventType.ORDER_UPDATE, lambda _: seen.update(["order"]), name="t")
    bus.subscribe(EventType.EXECUTION, lambda _: seen.update(["execution"]), name="t")
    private: BybitPrivateWebSocket | None = None
    banner = ""
    try:
        while "Ctrl-C" not in banner:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, f"hean sim ended: {banner}"
            banner += line
        url = re.search(r"private\s+(ws://\S+)", banner)
        keys = re.search(r"API key (\S+)\s+API secret (\S+)", banner)
        assert url and keys, banner
        assert re.search(r"activity: 20/s on the account", banner), banner
        private = BybitPrivateWebSocket(
            bus, api_key=keys[1], api_secret=keys[2], url=url[1], connect_timeout=5
        )
        await private.connect(timeout=5)
        await private.subscribe(["order", "execution"])
        for _ in range(200):
            if seen["order"] >= 5 and seen["execution"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert seen["order"] >= 5 and seen["execution"] >= 1, seen
    finally:
        if private is not None:
            await private.disconnect()
        await bus.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()


def test_activity_must_be_a_positive_rate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["sim", "--activity", "0"])
    assert exc.value.code == 2 and "--activity" in capsys.readouterr().err
