"""``hean sim`` option parsing (the emulator itself is tested in tests/emulator)."""

from __future__ import annotations

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
