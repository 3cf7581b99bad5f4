"""In-process replay: a recording fed into fresh clients on a simulated clock publishes exactly
the events of the live run (count, order, merged tickers, books, the reconnect and its GAP)."""

from __future__ import annotations

from hean.core.bus import EventBus
from hean.replay import Replay

from .session import BOOK, SYMBOLS, LiveRun, collect


async def replay(run: LiveRun) -> tuple[Replay, list[tuple[object, ...]], list[float]]:
    bus = EventBus()
    await bus.start()
    got = collect(bus)
    rp = Replay(run.files, bus)
    await rp.run()
    await bus.stop()
    return rp, got.events, got.times


async def test_replay_publishes_the_live_events(live_run: LiveRun) -> None:
    rp, events, times = await replay(live_run)
    kinds = {e[0] for e in live_run.events}
    assert {"tick", "orderbook", "trade", "gap", "order_update", "execution"} <= kinds
    assert len(events) == len(live_run.events)
    for i, (want, got) in enumerate(zip(live_run.events, events, strict=True)):
        assert got == want, f"event {i} differs"
    # the reconnect: every connection went live -> backoff on the drop, and the private GAPs
    drops = [e for e in events if e[0] == "connection_state" and e[3] == "backoff"]
    assert {e[1] for e in drops} == {"public/linear", "private"}
    gaps = [e for e in events if e[0] == "gap"]
    assert gaps and all(g[3] == "server_close:1006" for g in gaps)
    # same spacing between events (the simulated clock is the recording's)
    assert len(times) == len(live_run.times)
    for a, b in zip(times[1:], live_run.times[1:], strict=True):
        assert abs((a - times[0]) - (b - live_run.times[0])) < 1e-6
    public = rp.client("public/linear")
    assert {s: dict(public.ticker(s).fields) for s in SYMBOLS} == live_run.tickers
    book = public.orderbook("BTCUSDT", 50)
    assert (book.u, tuple(map(tuple, book.bids())), tuple(map(tuple, book.asks()))) == live_run.book
    assert rp.stats.frames == live_run.frames
    assert rp.stats.skipped_frames == 0 and rp.stats.lost == 0 and not rp.stats.truncated
    assert public.session.subscriptions.status(BOOK) == "confirmed"
    assert public.state.value == "closed"  # the run ended with a disconnect, so does the replay


async def test_replay_is_deterministic(live_run: LiveRun) -> None:
    first = await replay(live_run)
    second = await replay(live_run)
    assert first[1] == second[1] and first[2] == second[2]
