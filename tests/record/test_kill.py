"""``kill -9`` of a recording process: the file decodes up to the last flushed chunk, and the
frames lost are at most those that arrived in the last second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hean.record import FileReader

CHILD = r"""
import asyncio, sys, time
from hean.emulator import Emulator, EmulatorConfig
from hean.exchange.bybit.ws_public import BybitPublicWebSocket
from hean.record import Recorder

class Sink:
    def publish(self, event_type, event):
        pass

async def main():
    cfg = EmulatorConfig(ticker_interval=0.002)
    async with Emulator(cfg) as emu:
        ws = BybitPublicWebSocket(Sink(), "linear", url=emu.url("linear"))
        rec = Recorder(sys.argv[1])  # default flush interval: 0.5 s
        rec.start()
        rec.attach(ws)
        await ws.subscribe_tickers(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        await ws.connect(timeout=5)
        while True:
            print(ws.session.stats.messages, time.monotonic(), flush=True)
            await asyncio.sleep(0.02)

asyncio.run(main())
"""


def test_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    progress: list[tuple[int, float]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            count, at = proc.stdout.readline().split()
            progress.append((int(count), float(at)))
            if progress[-1][0] > 0 and progress[-1][1] - progress[0][1] > 2.5:
                break
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    [path] = tmp_path.glob("*.rec.zst")
    reader = FileReader(path)
    frames = sum(1 for r in reader if r.kind == "recv")
    assert reader.header["hean"] and reader.bad_lines == 0
    # every frame that had arrived one second before the kill is in the file
    second_before = max(n for n, at in progress if at <= killed_at - 1.0)
    assert second_before > 100
    assert frames >= second_before, (frames, second_before, progress[-1])
    assert frames <= progress[-1][0] + 1000
