"""Answering trade requests from a recording, sans-I/O: the rule that pairs a client's order
requests on a replayed trade stream (``/v5/trade``) with the recorded ones, by ``reqId``.

The player feeds what the recording holds, in time order (:meth:`TradeAnswers.recorded_request`
for each request the recorded client sent, :meth:`TradeAnswers.recorded_ack` for each answer it
received); the server feeds what its clients send (:meth:`TradeAnswers.request`). Each call
returns the :class:`Answer` frames due now. The rule:

* A request is matched to the recorded request with the same ``reqId`` and is answered with that
  request's recorded ack, byte for byte, at the ack's recorded time (scaled by the replay speed),
  or at once if the client asks later than that.
* Same ``reqId``, different request (another ``op`` or other ``args``; the ``header`` with its
  timestamps is not compared): refused with ``retCode`` 10001 and a ``retMsg`` starting
  ``replay:`` that says what differs. The recorded ack is never given to a request it did not
  answer (it would claim an order that was not asked for).
* A ``reqId`` the recording has not reached yet waits for it; one that is not in the recording
  at all is refused (10001, ``replay: no request ... in the recording``) when the recording ends.
* A ``reqId`` used twice: the second is refused with 20006 (duplicate), as the venue does.
* A request without ``reqId`` cannot be paired: refused at once (10001).
* A recorded request whose ack the recording does not hold (the connection dropped first) is
  never answered: the client's own timeout decides, as it did live.

Memory: at most ``max_recorded`` recorded requests are kept (the oldest are forgotten first,
counted in :attr:`TradeAnswers.forgotten`; a client asking for one of them later is treated as
asking for an unknown ``reqId``), and at most ``max_waiting`` client requests wait for the
recording (more are refused at once).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "TradeAnswers"]

DUPLICATE = 20006
PARAMS = 10001


@dataclass(frozen=True, slots=True)
class Answer:
    """A frame due to ``client``: the recorded ``ack`` bytes, or a refusal (``code``, ``message``)
    the server turns into a trade reply for ``op`` / ``req_id``."""

    client: Any
    op: str
    req_id: str | None
    ack: bytes | None = None
    code: int = 0
    message: str = ""


class _Recorded:
    __slots__ = ("ack", "args", "client", "done", "op")

    def __init__(self, op: str | None, args: Any) -> None:
        self.op = op
        self.args = args
        self.ack: bytes | None = None
        self.client: Any = None
        """The client whose request was paired with this one (waiting for the ack)."""
        self.done = False
        """Answered, refused or given up: the reqId is used."""


class TradeAnswers:
    """Pairs client trade requests with recorded ones (the rule is in the module docstring)."""

    def __init__(self, *, max_recorded: int = 10_000, max_waiting: int = 1_000) -> None:
        if max_recorded < 1 or max_waiting < 1:
            raise ValueError("max_recorded and max_waiting must be >= 1")
        self.max_recorded = max_recorded
        self.max_waiting = max_waiting
        self._recorded: OrderedDict[str, _Recorded] = OrderedDict()
        self._waiting: dict[str, tuple[Any, str, Any]] = {}
        self.answered = 0
        """Requests answered with their recorded ack."""
        self.refused = 0
        self.forgotten = 0
        """Recorded requests dropped to keep the bound (``max_recorded``)."""
        self.finished = False
        """The recording has ended: an unknown ``reqId`` is refused at once."""

    # -- the recording ------------------------------------------------------------------------

    def recorded_request(self, req_id: str, op: str, args: Any) -> list[Answer]:
        entry = self._recorded.get(req_id)
        if entry is None:
            entry = self._remember(req_id, _Recorded(op, args))
        elif entry.op is None:  # its ack came first (an odd recording): complete it
            entry.op, entry.args = op, args
        waiting = self._waiting.pop(req_id, None)
        if waiting is None:
            return []
        client, op2, args2 = waiting
        return self._pair(entry, client, req_id, op2, args2)

    def recorded_ack(self, req_id: str, payload: bytes) -> list[Answer]:
        entry = self._recorded.get(req_id)
        if entry is None:
            entry = self._remember(req_id, _Recorded(None, None))
        if entry.ack is not None:
            return []  # a second answer to one request: the first one counts
        entry.ack = payload
        waiting = self._waiting.pop(req_id, None)
        if waiting is not None:  # no recorded request, only its ack: pair on the reqId alone
            client, op2, args2 = waiting
            return self._pair(entry, client, req_id, op2, args2)
        if entry.client is not None and not entry.done:
            entry.done = True
            self.answered += 1
            return [Answer(entry.client, entry.op or "", req_id, ack=payload)]
        return []

    def finish(self) -> list[Answer]:
        """The recording has ended: refuse the requests it never reached."""
        self.finished = True
        out = [
            self._refuse(
                client, op, req_id, PARAMS, f"replay: no request {req_id} in the recording"
            )
            for req_id, (client, op, _) in self._waiting.items()
        ]
        self._waiting.clear()
        return out

    # -- the clients --------------------------------------------------------------------------

    def request(self, client: Any, req_id: str | None, op: str, args: Any) -> list[Answer]:
        if not isinstance(req_id, str) or not req_id:
            return [
                self._refuse(client, op, None, PARAMS,
                             "replay: a request needs a reqId to be answered from the recording")
            ]  # fmt: skip
        entry = self._recorded.get(req_id)
        if entry is not None:
            return self._pair(entry, client, req_id, op, args)
        if req_id in self._waiting:
            return [self._refuse(client, op, req_id, DUPLICATE, "replay: duplicate reqId")]
        if self.finished:
            text = f"replay: no request {req_id} in the recording"
            return [self._refuse(client, op, req_id, PARAMS, text)]
        if len(self._waiting) >= self.max_waiting:
            return [
                self._refuse(client, op, req_id, PARAMS,
                             f"replay: {self.max_waiting} requests already wait for the recording")
            ]  # fmt: skip
        self._waiting[req_id] = (client, op, args)
        return []

    def client_gone(self, client: Any) -> None:
        """``client`` disconnected: its waiting requests are dropped (no answer can reach it)."""
        for req_id in [r for r, (c, _, _) in self._waiting.items() if c is client]:
            del self._waiting[req_id]
        for entry in self._recorded.values():
            if entry.client is client and not entry.done:
                entry.done = True

    @property
    def waiting(self) -> int:
        """Client requests waiting for the recording to reach them, or for their ack."""
        pending = sum(1 for e in self._recorded.values() if e.client is not None and not e.done)
        return len(self._waiting) + pending

    # -- internals ----------------------------------------------------------------------------

    def _remember(self, req_id: str, entry: _Recorded) -> _Recorded:
        recorded = self._recorded
        recorded[req_id] = entry
        while len(recorded) > self.max_recorded:
            recorded.popitem(last=False)
            self.forgotten += 1
        return entry

    def _pair(self, entry: _Recorded, client: Any, req_id: str, op: str, args: Any) -> list[Answer]:
        if entry.done or entry.client is not None:
            return [self._refuse(client, op, req_id, DUPLICATE, "replay: duplicate reqId")]
        if entry.op is not None and (entry.op != op or entry.args != args):
            entry.done = True
            what = f"op {op} (recorded {entry.op})" if entry.op != op else "args"
            return [
                self._refuse(client, op, req_id, PARAMS,
                             f"replay: request {req_id} differs from the recorded one: {what}")
            ]  # fmt: skip
        entry.client = client
        if entry.ack is None:
            return []  # answered when the recording reaches its ack
        entry.done = True
        self.answered += 1
        return [Answer(client, op, req_id, ack=entry.ack)]

    def _refuse(self, client: Any, op: str, req_id: str | None, code: int, msg: str) -> Answer:
        self.refused += 1
        return Answer(client, op, req_id, code=code, message=msg)
