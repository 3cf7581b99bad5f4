"""``hean record`` / ``hean replay``: record the emulator, replay it, watch it with ``hean
monitor``; user errors are one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hean.cli.main import main
from hean.record import RecordingReader

HEAN = [sys.executable, "-m", "hean"]


def test_record_sim_then_replay_then_monitor(tmp_path: Path) -> None:
    out = subprocess.run(
        [*HEAN, "record", "--sim", "--dir", str(tmp_path), "--symbols", "BTCUSDT,ETHUSDT",
         "--books", "50", "--private", "--duration", "1.5", "--sim-rate", "50", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    files = out.stdout.split()
    assert files and all(Path(f).exists() for f in files)
    reader = RecordingReader(files)
    kinds = [r.kind for r, _ in reader]
    assert kinds.count("recv") > 50
    assert {s.name for s in reader.streams.values()} == {"public/linear", "private"}
    assert reader.headers[0]["endpoint"].endswith("/v5/public/linear")
    replay = subprocess.Popen(
        [*HEAN, "replay", *files, "--port", "0", "--speed", "1", "--exit"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert replay.stdout is not None
        banner = replay.stdout.readline()
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        mon = subprocess.run(
            [*HEAN, "monitor", "--url", f"{url}/v5/public/linear", "--symbols",
             "BTCUSDT,ETHUSDT", "--duration", "1.5", "--json", "--no-live"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        report = json.loads(mon.stdout)
        assert mon.returncode in (0, 1), mon.stderr
        assert "BTCUSDT" in json.dumps(report)
        replay.wait(timeout=30)
        summary = replay.stdout.read()
    finally:
        replay.kill()
        replay.wait()
    sent = int(summary.split("hean replay: ", 1)[1].split(" frames sent", 1)[0])
    assert sent > 20


def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["record", "--sim", "--dir", str(blocker / "d"), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hean record: cannot record to") and "Traceback" not in "".join(err)
    assert main(["replay", str(tmp_path / "missing.rec.zst"), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hean replay: no such recording: {tmp_path / 'missing.rec.zst'}"
    )
    with pytest.raises(SystemExit) as exc:
        main(["replay", "x.rec.zst", "--speed", "fast"])
    assert exc.value.code == 2


def test_progress_to_a_pipe_is_whole_lines_without_carriage_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped to a log, the progress was one endless line of "\\rrecording: ..." pieces."""
    import hean.cli.record as record_cli

    monkeypatch.setattr(record_cli, "PROGRESS_EVERY", 0.5)
    code = main(["record", "--sim", "--dir", str(tmp_path), "--symbols", "BTCUSDT",
                 "--duration", "2.2", "--sim-rate", "20"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith("recording: ")]
    assert len(progress) >= 2 and all(line.endswith("writing") for line in progress), err
