"""Reading a recording streams it: memory stays bounded whatever the file's size."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from hean.record import Recorder, RecordingReader

FRAME = (
    b'{"topic":"tickers.BTCUSDT","type":"delta","ts":%d,"cs":%d,"data":{"symbol":"BTCUSDT",'
    b'"bid1Price":"%d.5","bid1Size":"1.25","ask1Price":"%d.6","ask1Size":"0.75","lastPrice":"%d"'
    b',"markPrice":"%d.55","indexPrice":"%d.51","fundingRate":"0.0001","openInterest":"%d"}}'
)


async def test_reading_a_large_recording_holds_a_bounded_amount(tmp_path: Path) -> None:
    n = 32_000  # ~9.5 MiB of lines
    async with Recorder(tmp_path) as rec:
        tap = rec.tap("public/linear", "ws://h/v5/public/linear", category="linear")
        for i in range(n):
            p = 60000 + i % 977
            tap.received(FRAME % (i, i, p, p, p, p, p, i), 100.0 + i / 1e4)
    size = rec.stats.bytes_in
    assert size > 9_000_000
    tracemalloc.start()
    try:
        count = 0
        for record, _ in RecordingReader(rec.stats.files):
            count += record.kind == "recv"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    # one READ_BLOCK (256 KiB) of decompressed text and its lines at a time;
    # the zstd window (under 1 MiB, outside Python's allocator) is not traced
    assert peak < 2 << 20, f"peak {peak >> 10} KiB for {size >> 20} MiB of records"
