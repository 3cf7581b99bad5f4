"""One recorded live session shared by the replay tests of a run (recording it takes ~2 s)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from .session import LiveRun, record_session


@pytest.fixture(scope="package")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    directory: Path = tmp_path_factory.mktemp("recording")
    yield asyncio.run(record_session(directory))
