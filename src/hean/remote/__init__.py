"""Remote consumers of a ``hean gateway`` (see ``docs/gateway.md``): the hub's consumer API over
Redis Streams, and account events through consumer groups. ``redis`` is imported lazily."""

from hean.remote.account import AccountEvents, AccountMirror
from hean.remote.core import AccountDedup, StreamTracker, Verdict
from hean.remote.hub import RemoteHub, RemoteHubStats, RemoteLink

__all__ = [
    "AccountDedup",
    "AccountEvents",
    "AccountMirror",
    "RemoteHub",
    "RemoteHubStats",
    "RemoteLink",
    "StreamTracker",
    "Verdict",
]
