"""The system-status stream: ``system.status`` on ``/v5/public/misc/status`` (protocol.md §5.8).

Bybit announces planned or incident maintenance windows there. The emulator announces nothing by
itself; :meth:`~hean.emulator.server.Emulator.announce_maintenance` publishes a window (or a new
state of one) to every subscriber. A new subscriber gets one message at once with the windows not
yet ``completed`` (``"data": []`` when there are none): the docs do not say what a subscriber
gets first, this is the emulator's choice. Acks and pongs on this path use the linear/inverse
shapes (also a choice: Bybit documents none for it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAINTENANCE_STATES",
    "STATUS_KIND",
    "STATUS_PATH",
    "STATUS_TOPIC",
    "MaintenanceWindow",
    "StatusBoard",
]

#: the ``category`` of a status connection (also the ``kind`` given to topic parsing)
STATUS_KIND = "status"
STATUS_PATH = "/v5/public/misc/status"
STATUS_TOPIC = "system.status"
#: values of ``state`` (Bybit's docs: upcoming, ongoing, completed)
MAINTENANCE_STATES = ("upcoming", "ongoing", "completed")


@dataclass(slots=True)
class MaintenanceWindow:
    """One announced window; ``begin_ms``/``end_ms`` are wall-clock milliseconds."""

    id: str
    title: str
    state: str
    begin_ms: int
    end_ms: int
    href: str = ""
    service_types: tuple[int, ...] = (2, 3, 4, 5)
    product: tuple[int, ...] = (1, 2)
    uid_suffix: tuple[int, ...] = ()
    maintain_type: int = 1
    env: int = 1

    def item(self) -> dict[str, object]:
        """The window as an element of ``data`` (``system_status.json``'s fields and types)."""
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state,
            "begin": str(self.begin_ms),
            "end": str(self.end_ms),
            "href": self.href,
            "serviceTypes": list(self.service_types),
            "product": list(self.product),
            "uidSuffix": list(self.uid_suffix),
            "maintainType": self.maintain_type,
            "env": self.env,
        }


@dataclass(slots=True)
class StatusBoard:
    """Every window announced so far, by id (deterministic ids from the seed)."""

    seed: int
    windows: dict[str, MaintenanceWindow] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"maintenance-ids:{self.seed}")

    def new_id(self) -> str:
        """A UUID-shaped id like Bybit's (``4d95b2a0-587f-11f0-bcc9-56f28c94d6ea``)."""
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def announce(
        self,
        begin_ms: int,
        end_ms: int,
        *,
        title: str,
        state: str,
        window_id: str | None,
        href: str,
        service_types: Sequence[int],
        product: Sequence[int],
        maintain_type: int,
        env: int,
    ) -> MaintenanceWindow:
        if state not in MAINTENANCE_STATES:
            raise ValueError(f"state must be one of {MAINTENANCE_STATES}, got {state!r}")
        if isinstance(begin_ms, bool) or isinstance(end_ms, bool) or end_ms < begin_ms:
            raise ValueError(f"need begin_ms <= end_ms, got {begin_ms!r}, {end_ms!r}")
        window = MaintenanceWindow(
            id=window_id if window_id is not None else self.new_id(),
            title=title,
            state=state,
            begin_ms=int(begin_ms),
            end_ms=int(end_ms),
            href=href,
            service_types=tuple(int(x) for x in service_types),
            product=tuple(int(x) for x in product),
            maintain_type=int(maintain_type),
            env=int(env),
        )
        self.windows[window.id] = window
        return window

    def pending(self) -> list[MaintenanceWindow]:
        """Windows announced and not ``completed``, in announcement order."""
        return [w for w in self.windows.values() if w.state != "completed"]
