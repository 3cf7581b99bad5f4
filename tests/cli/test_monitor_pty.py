"""``hean monitor --sim`` in a real terminal: the process runs on a pseudo-terminal and its
output is replayed into a terminal emulator (pyte), so what is checked is the screen a person
would see, not rich's calls (issue 13, item 6).

A reconnect is forced through the in-process emulator's control API (on the port the monitor
prints): the link is dropped and reconnects are refused for a while, so WARNING log lines are
written while the live view runs. The screen must then show the log lines above one live view
(no stacked copies, whole or torn) whose header says why it is not live (backoff and the
next retry), and after Ctrl-C the final screen still has one table, with the report below it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import Callable

import pyte
import pytest

COLS, ROWS = 150, 45
HEADER = re.compile(r"symbol\s.*\bticks\b.*rate/s")
"""The table's header row (the end of a copy's head)."""
VIEW = re.compile(r"^(ws://\S+/v5/public/linear\s|┏)")
"""The first line of a copy of the live view (its state line) and a table's top border: one
each per copy on the screen (a torn redraw leaves partial copies: these show them too)."""


class Terminal:
    """A process on a pseudo-terminal of ``COLS`` x ``ROWS``, its output fed to pyte."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the process closed the terminal
                return
            if not data:
                return
            with self.lock:
                self.raw += data
                self.stream.feed(data)

    def lines(self) -> list[str]:
        with self.lock:
            return [line.rstrip() for line in self.screen.display]

    def wait(
        self, check: Callable[[list[str]], bool], what: str, timeout: float = 20.0
    ) -> list[str]:
        """Poll the screen until ``check``; on every screen seen, at most one table header."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            assert copies(lines) <= 1, "stacked copies of the view:\n" + "\n".join(lines)
            if check(lines):
                return lines
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{what}; the screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        self.reader.join(10)
        os.close(self.master)
        return code


def headers(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if HEADER.search(line)]


def copies(lines: list[str]) -> int:
    """How many copies (whole or partial) of the live view are on the screen."""
    starts = [line for line in lines if VIEW.match(line)]
    return max(len(headers(lines)), sum(x.startswith("ws://") for x in starts),
               sum(x.startswith("┏") for x in starts))  # fmt: skip


def control(base: str, action: str) -> None:
    with urllib.request.urlopen(f"{base}/control/{action}", timeout=5) as reply:
        assert reply.status == 200


@pytest.mark.timeout(90)
def test_logs_above_one_live_view_that_says_why_it_is_not_live() -> None:
    term = Terminal(
        [sys.executable, "-m", "hean", "monitor", "--sim", "--symbols", "BTCUSDT,ETHUSDT",
         "--duration", "0", "--ping-interval", "1", "--pong-timeout", "1"]
    )  # fmt: skip
    try:
        lines = term.wait(
            lambda s: (
                any(re.search(r"/v5/public/linear\s.*\blive\b", x) for x in s)
                and len(headers(s)) == 1
            ),
            "the live view never showed the connection live",
        )
        port = re.search(r"ws://127\.0\.0\.1:(\d+)/v5/public/linear", "\n".join(lines))[1]  # type: ignore[index]
        base = f"http://127.0.0.1:{port}"
        control(base, "handshake?status=503")  # reconnects are refused for now
        control(base, "drop")  # the live link goes: TCP close without a close frame

        lines = term.wait(
            lambda s: sum("WARNING" in x and "503" in x for x in s) >= 2,
            "no WARNING lines about the refused reconnects",
        )
        assert copies(lines) == 1, "stacked copies of the view:\n" + "\n".join(lines)
        lines = term.wait(
            lambda s: any(re.search(r"backoff: retry in \d+\.\ds \(http_503\)", x) for x in s),
            "the view never said why it is not live (backoff and the next retry)",
        )
        assert copies(lines) == 1, "stacked copies of the view:\n" + "\n".join(lines)
        [table] = headers(lines)
        warnings = [i for i, x in enumerate(lines) if "WARNING" in x]
        assert warnings and max(warnings) < table, "a log line inside or below the view:\n" + (
            "\n".join(lines)
        )
        [state] = [x for x in lines if "backoff: retry in" in x]
        assert "ws://127.0.0.1:" in state and "drops=1" in state, state  # the view's header

        control(base, "handshake?status=none")  # the venue takes connections again
        term.wait(
            lambda s: any(re.search(r"/v5/public/linear\s+live\s+drops=1", x) for x in s),
            "the view never came back live",
            timeout=30,
        )
    finally:
        code = term.close()
    assert code in (0, 1), bytes(term.raw[-2000:]).decode(errors="replace")
    lines = term.lines()
    assert copies(lines) == 1, "stacked copies of the view at the end:\n" + "\n".join(lines)
    found = headers(lines)
    report = [i for i, x in enumerate(lines) if x.startswith("Report ws://")]
    assert report and report[0] > found[0], "\n".join(lines)  # the report below the last view
    assert any("connection: drops 1," in x for x in lines), "\n".join(lines)
