"""Account events through a gateway: consumer groups, redelivery after a crash, de-duplication
within a process, and the account mirror."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from hean.core.bus import EventBus
from hean.core.events import AccountSyncEvent, EventType, ExecutionEvent, OrderUpdateEvent
from hean.exchange.bybit.state.private import Execution, Order
from hean.gateway import Gateway
from hean.hub import StreamHub
from hean.remote.account import AccountEvents, AccountMirror
from tests.account.test_account_e2e import bus, emu, rest
from tests.gateway.helpers import until
from tests.redis_server import needs_redis

pytestmark = needs_redis
__all__ = ["bus", "emu", "rest"]
ROOT = Path(__file__).resolve().parents[2]


class Book:
    """The account as the gateway reads it (a real Account has these; here: plain fields)."""

    def __init__(self) -> None:
        self.name = "account"
        self.orders: dict[str, Order] = {}
        self.positions: dict[Any, Any] = {}
        self.wallet = None
        self.in_sync = True
        self.sync_state = "in_sync"


def execution(bus: EventBus, *ids: str) -> None:
    execs = [Execution(exec_id=i, symbol="BTCUSDT", order_id="o1") for i in ids]
    bus.publish(
        EventType.EXECUTION,
        ExecutionEvent("private", "execution", False, execs, "m", 1, time.monotonic(), 1),
    )


async def setup(redis_url: str) -> tuple[StreamHub, Gateway, EventBus, Book]:
    hub = StreamHub(host="ws://127.0.0.1:1")
    gw = Gateway(hub, redis_url, heartbeat=0.1)
    bus = EventBus()
    await bus.start()
    acct = Book()
    gw.add_account(acct, bus)
    await gw.start()
    await until(lambda: gw.link == "up")
    return hub, gw, bus, acct


@pytest.mark.timeout(60)
async def test_a_consumer_killed_before_acknowledging_gets_the_event_again(
    redis_url: str, tmp_path: Path
) -> None:
    hub, gw, bus, _ = await setup(redis_url)
    log, marker = tmp_path / "log", tmp_path / "marker"

    async def spawn() -> asyncio.subprocess.Process:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.remote.account_proc", redis_url, str(log), str(marker),
            stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        assert p.stdout is not None
        assert (await asyncio.wait_for(p.stdout.readline(), 30)).strip() == b"ready"
        return p

    def seen() -> list[tuple[str, str]]:
        if not log.exists():
            return []
        return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]

    p1 = await spawn()
    try:
        execution(bus, "a1")
        execution(bus, "a1")  # the same fill published twice: handled once
        execution(bus, "crash")
        assert await asyncio.wait_for(p1.wait(), 20) == 3  # died in the handler
        execution(bus, "a2")  # published while no consumer runs
        p2 = await spawn()
        await until(lambda: [e for _, e in seen()][-1:] == ["a2"], timeout=20)
        rows = seen()
        pids = {pid for pid, _ in rows}
        assert len(pids) == 2
        first, second = sorted(pids, key=lambda pid: [p for p, _ in rows].index(pid))
        assert [e for p, e in rows if p == first] == ["a1", "crash"]
        # redelivered after the restart; a1 was acknowledged and is not seen again
        assert [e for p, e in rows if p == second] == ["crash", "a2"]
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(redis_url)
        pending = await r.xpending("hean:acct:account", "risk")
        assert pending["pending"] == 0  # everything acknowledged in the end
        await r.aclose()
        p2.kill()
        await p2.wait()
    finally:
        for p in (p1,):
            if p.returncode is None:
                p.kill()
                await p.wait()
        await gw.close()
        await hub.close()
        await bus.stop()


async def test_each_service_sees_every_event_and_duplicates_are_dropped_in_process(
    redis_url: str,
) -> None:
    hub, gw, bus, _ = await setup(redis_url)
    got: dict[str, list[str]] = {"risk": [], "router": []}
    readers = []
    try:
        for service in got:
            ev = AccountEvents(redis_url, service=service, consumer="c1", block_ms=20)
            ev.on(
                EventType.EXECUTION,
                lambda e, s=service: got[s].extend(x.exec_id for x in e.executions),
            )
            await ev.start()
            readers.append(ev)
        execution(bus, "x1", "x2")
        execution(bus, "x2")  # duplicate by execId
        execution(bus, "x3")
        await until(lambda: all(len(v) == 3 for v in got.values()))
        await asyncio.sleep(0.1)
        assert got == {"risk": ["x1", "x2", "x3"], "router": ["x1", "x2", "x3"]}
        assert all(r.acked == 3 and r.dedup.duplicates == 1 for r in readers)
    finally:
        for r in readers:
            await r.close()
        await gw.close()
        await hub.close()
        await bus.stop()


async def test_the_mirror_follows_the_gateways_account(redis_url: str) -> None:
    hub, gw, bus, acct = await setup(redis_url)
    mirror = AccountMirror(redis_url, block_ms=20)
    try:
        o1 = Order(order_id="o1", symbol="BTCUSDT", order_status="New", updated_time="1")
        acct.orders["o1"] = o1
        bus.publish(EventType.ORDER_UPDATE, OrderUpdateEvent("p", "order", [o1], "m", 1, 0.0, 1))
        await until(lambda: gw.out.depth == 0)
        await mirror.start()  # starts from the state key
        await until(lambda: "o1" in mirror.orders)
        o2 = Order(order_id="o2", symbol="BTCUSDT", order_status="New", updated_time="2")
        done = Order(order_id="o1", symbol="BTCUSDT", order_status="Filled", updated_time="3")
        bus.publish(
            EventType.ORDER_UPDATE, OrderUpdateEvent("p", "order", [o2, done], "m", 2, 0.0, 2)
        )
        bus.publish(EventType.ACCOUNT_SYNC, AccountSyncEvent("account", False, "gap", 0.0))
        await until(lambda: set(mirror.orders) == {"o2"} and not mirror.in_sync)
    finally:
        await mirror.close()
        await gw.close()
        await hub.close()
        await bus.stop()


async def test_entries_left_pending_by_a_dead_consumer_are_claimed_by_a_running_one(
    redis_url: str,
) -> None:
    import redis.asyncio as aioredis

    hub, gw, bus, _ = await setup(redis_url)
    r = aioredis.Redis.from_url(redis_url)
    key = "hean:acct:account"
    got: list[str] = []
    survivor = AccountEvents(redis_url, service="risk", consumer="b", claim_idle=0.3, block_ms=20)
    survivor.on(EventType.EXECUTION, lambda e: got.extend(x.exec_id for x in e.executions))

    async def dead_consumer_takes(exec_id: str) -> None:
        """Consumer "a" of the group reads the next event and dies before acknowledging it
        (blocked before the survivor's latest read, Redis serves it first)."""
        read = asyncio.create_task(r.xreadgroup("risk", "a", {key: ">"}, count=10, block=5000))
        await asyncio.sleep(0.1)
        execution(bus, exec_id)
        res = await read
        assert [len(entries) for _, entries in res] == [1]

    try:
        await r.xgroup_create(key, "risk", id="$", mkstream=True)
        await dead_consumer_takes("e1")
        await asyncio.sleep(0.4)  # e1 idle past claim_idle before the survivor starts
        await survivor.start()
        await until(lambda: got == ["e1"])  # claimed when it starts
        await dead_consumer_takes("e2")  # while the survivor runs
        execution(bus, "e3")
        await until(lambda: "e3" in got)
        await until(lambda: "e2" in got, timeout=3)  # claimed once idle past claim_idle
        await asyncio.sleep(0.5)
        assert sorted(got) == ["e1", "e2", "e3"] and survivor.claimed == 2
        pending = await r.xpending(key, "risk")
        assert pending["pending"] == 0
    finally:
        await survivor.close()
        await r.aclose()
        await gw.close()
        await hub.close()
        await bus.stop()


async def test_the_mirror_reloads_after_a_hole_and_never_replays_an_earlier_run(
    redis_url: str,
) -> None:
    hub, gw, bus, acct = await setup(redis_url)
    follower = AccountMirror(redis_url, block_ms=20)
    joiner = AccountMirror(redis_url, block_ms=20)
    gw2: Gateway | None = None

    def order(oid: str, status: str, t: str) -> Order:
        return Order(order_id=oid, symbol="BTCUSDT", order_status=status, updated_time=t)

    def publish(b: EventBus, *orders: Order) -> None:
        b.publish(
            EventType.ORDER_UPDATE, OrderUpdateEvent("p", "order", list(orders), "m", 1, 0.0, 1)
        )

    try:
        await follower.start()
        acct.orders["o1"] = order("o1", "New", "1")
        publish(bus, acct.orders["o1"])
        await until(lambda: set(follower.orders) == {"o1"})
        # the gateway stops; meanwhile o1 fills and o2 is placed; a new gateway run starts
        await gw.close()
        del acct.orders["o1"]
        acct.orders["o2"] = order("o2", "New", "2")
        gw2 = Gateway(hub, redis_url, heartbeat=0.1)
        gw2.add_account(acct, bus)
        await gw2.start()
        await until(lambda: gw2 is not None and gw2.link == "up" and gw2.out.depth == 0)
        # a mirror starting now takes the new run's state and does not replay the old run's
        # entries over it (o1 New is still in the stream)
        await joiner.start()
        await asyncio.sleep(0.2)
        assert set(joiner.orders) == {"o2"}
        # the follower sees the new run's first entry after a hole (a new epoch) and reloads
        acct.orders["o3"] = order("o3", "New", "3")
        publish(bus, acct.orders["o3"])
        await until(lambda: set(follower.orders) == {"o2", "o3"})
        await until(lambda: set(joiner.orders) == {"o2", "o3"})
        assert follower.reloads == 2 and joiner.reloads == 1
    finally:
        await follower.close()
        await joiner.close()
        if gw2 is not None:
            await gw2.close()
        await gw.close()
        await hub.close()
        await bus.stop()


@pytest.mark.timeout(60)
async def test_a_real_account_reaches_a_remote_service_exactly_once(
    bus: EventBus, rest: Any, emu: Any, redis_url: str
) -> None:
    from collections import Counter

    from tests.account import test_account_e2e as e2e

    rec = e2e.Recorder(bus)  # what the gateway's process sees
    account = e2e.make_account(bus, rest, emu)
    hub = StreamHub(host="ws://127.0.0.1:1")
    gw = Gateway(hub, redis_url, heartbeat=0.1)
    gw.add_account(account, bus)
    execs: list[str] = []
    orders: list[tuple[Any, ...]] = []
    service = AccountEvents(redis_url, service="risk", consumer="risk-1", block_ms=20)
    service.on(EventType.EXECUTION, lambda e: execs.extend(x.exec_id for x in e.executions))
    service.on(
        EventType.ORDER_UPDATE,
        lambda e: orders.extend(
            (o.order_id, o.order_status, o.cum_exec_qty, o.updated_time) for o in e.orders
        ),
    )
    mirror = AccountMirror(redis_url, block_ms=20)
    try:
        await gw.start()
        await until(lambda: gw.link == "up")
        await service.start()
        await account.start()
        await mirror.start()
        await e2e.open_position(account)
        await e2e.place_resting(account, emu, 4)
        await e2e.in_sync_and_equal(account, emu)
        # a private outage: fills, a partial fill, a cancel and an external order happen while
        # the stream is down; the account learns them over REST and publishes each once
        summary = await emu.private_outage(
            e2e.KEY, fills=2, partial_fills=1, cancels=1, new_orders=1, seed=3, hold=e2e.ms(30)
        )
        assert summary.filled and summary.exec_ids
        await e2e.in_sync_and_equal(account, emu)
        local = [x.exec_id for x, _ in rec.executions()]
        local_orders = [
            (o.order_id, o.order_status, o.cum_exec_qty, o.updated_time) for o, _ in rec.orders()
        ]
        await until(lambda: len(execs) >= len(local) and len(orders) >= len(local_orders), 10)
        await asyncio.sleep(0.2)  # nothing more arrives
        # every execution (those of the outage included) reached the remote handler once
        assert Counter(execs) == Counter(local) and set(Counter(execs).values()) == {1}
        truth = {str(x["execId"]) for x in emu.account(e2e.KEY).executions}
        assert set(execs) == truth and set(summary.exec_ids) <= set(execs)
        assert orders == local_orders and len(set(orders)) == len(orders)
        assert service.dedup.duplicates == 0 and service.errors == 0
        # the mirror is the account
        await until(lambda: set(mirror.orders) == set(account.orders) and mirror.in_sync, 5)
        mine, theirs = mirror.position("linear", e2e.SYMBOL), account.position("linear", e2e.SYMBOL)
        assert mine is not None and theirs is not None and mine.size == theirs.size
        assert mirror.balance("USDT") == account.balance("USDT")
        pending = await (r := aioredis.Redis.from_url(redis_url)).xpending(
            "hean:acct:account", "risk"
        )
        await r.aclose()
        assert pending["pending"] == 0
    finally:
        await mirror.close()
        await service.close()
        await account.stop()
        await gw.close()
        await hub.close()


async def test_account_events_and_the_mirror_over_a_unix_socket(tmp_path: Path) -> None:
    from tests.redis_server import RedisServer

    sock = str(tmp_path / "redis.sock")
    server = RedisServer(None, "--unixsocket", sock, "--unixsocketperm", "700")
    server.start()
    url = f"unix://{sock}?db=1"
    hub, gw, bus, acct = await setup(url)
    mirror = AccountMirror(url, block_ms=20)
    got: list[str] = []
    events = AccountEvents(url, service="risk", consumer="a", block_ms=20)
    events.on(EventType.EXECUTION, lambda e: got.extend(x.exec_id for x in e.executions))
    try:
        await events.start()
        o1 = Order(order_id="o1", symbol="BTCUSDT", order_status="New", updated_time="1")
        acct.orders["o1"] = o1
        bus.publish(EventType.ORDER_UPDATE, OrderUpdateEvent("p", "order", [o1], "m", 1, 0.0, 1))
        await mirror.start()
        await until(lambda: "o1" in mirror.orders)
        execution(bus, "e1", "e2")
        await until(lambda: got == ["e1", "e2"])
        r = aioredis.Redis(unix_socket_path=sock, db=1)
        try:
            assert await r.xlen("hean:acct:account") >= 2
            deadline = time.monotonic() + 5
            while (await r.xpending("hean:acct:account", "risk"))["pending"]:  # acknowledged
                assert time.monotonic() < deadline, "entries left unacknowledged"
                await asyncio.sleep(0.01)
        finally:
            await r.aclose()
    finally:
        await events.close()
        await mirror.close()
        await gw.close()
        await hub.close()
        await bus.stop()
        server.kill()
        server.stop()
