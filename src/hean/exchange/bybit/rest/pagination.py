"""Cursor pagination as an async iterator (rest.md §4).

Each page is one ``GET`` with the same filters plus ``cursor`` (the previous
``result.nextPageCursor``, passed back byte-for-byte: it is already percent-encoded). Paging
stops on an empty cursor or an empty ``list`` (a non-empty cursor can come with a last, short
page). A cursor the server already returned raises :class:`RestTransportError` once that page's
items have been handed out, instead of looping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hean.exchange.bybit.rest.errors import RestError, RestTransportError

if TYPE_CHECKING:
    from hean.exchange.bybit.rest.client import BybitRestClient

__all__ = ["Paginator"]

T = TypeVar("T")


class Paginator(Generic[T]):
    """An async iterator over every item of a cursor-paginated endpoint, fetching pages as
    needed. ``async for item in paginator`` or ``await paginator.all()``.

    Attributes:
        pages: pages fetched so far.
        time: the server time (envelope ``time``, ms) of the first page.
        last_time: the server time of the latest page.
        category: ``result.category`` of the latest page.
        bad: items dropped because they could not be decoded.
    """

    def __init__(
        self,
        client: BybitRestClient,
        path: str,
        params: dict[str, Any],
        decode: Callable[[Any, str | None], tuple[list[T], int]],
        *,
        auth: bool = True,
    ) -> None:
        self._client = client
        self.path = path
        self._params = params
        self._decode = decode
        self._auth = auth
        self._buffer: deque[T] = deque()
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._done = False
        self._error: RestError | None = None
        self.pages = 0
        self.time: int | None = None
        self.last_time: int | None = None
        self.category: str | None = params.get("category")
        self.bad = 0

    def __aiter__(self) -> Paginator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._done:
                raise StopAsyncIteration
            await self._fetch()
        return self._buffer.popleft()

    async def all(self) -> list[T]:
        """Every remaining item, all pages."""
        return [item async for item in self]

    async def _fetch(self) -> None:
        params = dict(self._params)
        if self._cursor:
            params["cursor"] = self._cursor
        resp = await self._client.request("GET", self.path, params, auth=self._auth)
        self.pages += 1
        if self.time is None:
            self.time = resp.time
        self.last_time = resp.time
        result = resp.result
        category = result.get("category")
        if isinstance(category, str) and category:
            self.category = category
        raw = result.get("list")
        items, bad = self._decode(raw, self.category)
        if bad:
            self.bad += bad
            self._client._bad_items(bad, self.path)
        self._buffer.extend(items)
        cursor = result.get("nextPageCursor")
        if not raw or not isinstance(cursor, str) or not cursor:
            self._done = True
            return
        if cursor in self._seen:
            self._done = True
            # raised once this page's items have been handed out
            self._error = RestTransportError(
                f"the server returned cursor {cursor[:40]!r} twice: stopped paging after "
                f"{self.pages} page(s) instead of looping",
                self.path,
                method="GET",
            )
            return
        self._seen.add(cursor)
        self._cursor = cursor
