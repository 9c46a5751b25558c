"""Encoded pages of run history, kept until a run of their history changes.

A history is a schedule's runs (`job_history(id)`) or a family's runs in one org
(`org_history(family, org)`). The API keeps the encoded JSON of the pages it served; the
runner calls `changed` after every write to a run (recorded, started, ended, removed), and
retention calls `clear` after it deletes runs, so a page is never served once the rows it
was built from changed.

A read that began before a change must not store what it read after it: `begin` returns a
ticket, and `put` keeps the page only while no change reached its history since that ticket
was taken. Memory is bounded: at most `histories` histories of at most `pages` pages each,
the least recently used history dropped first; a cache of 0 histories keeps nothing
(several instances on one PostgreSQL database: another instance's runs never reach it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

HISTORIES = 4096
"""Histories whose pages are kept at once (the least recently read is dropped first)."""
PAGES = 8
"""Pages kept per history (limit, offset and filters make a page)."""
PAGE_BYTES = 256 * 1024
"""Pages larger than this are served but not kept."""

HistoryKey = tuple[Hashable, ...]


def job_history(schedule_id: int) -> HistoryKey:
    return ("schedule", schedule_id)


def org_history(family: str, org_id: str) -> HistoryKey:
    return ("org", family, org_id)


class PageCache:
    """Encoded history pages by history and page, dropped when their history changes."""

    def __init__(self, histories: int = HISTORIES, pages: int = PAGES) -> None:
        self._limit = histories
        self._pages_per = pages
        self._pages: OrderedDict[HistoryKey, dict[Hashable, bytes]] = OrderedDict()
        self._readers: dict[HistoryKey, int] = {}  # reads in flight, by history
        self._generation: dict[HistoryKey, int] = {}  # changes seen, of histories kept or being read
        self.hits = 0
        self.misses = 0

    def get(self, key: HistoryKey, page: Hashable) -> bytes | None:
        pages = self._pages.get(key)
        found = None if pages is None else pages.get(page)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._pages.move_to_end(key)
        return found

    def begin(self, key: HistoryKey) -> int:
        """A read of `key` starts: the ticket `put` and `end` take."""
        self._readers[key] = self._readers.get(key, 0) + 1
        return self._generation.get(key, 0)

    def put(self, key: HistoryKey, page: Hashable, body: bytes, ticket: int) -> None:
        """Keep a page read under `ticket`, unless its history changed meanwhile."""
        if self._limit == 0 or self._generation.get(key, 0) != ticket or len(body) > PAGE_BYTES:
            return
        pages = self._pages.get(key)
        if pages is None:
            if len(self._pages) >= self._limit:
                dropped, _ = self._pages.popitem(last=False)
                self._forget(dropped)
            pages = self._pages[key] = {}
        elif len(pages) >= self._pages_per:
            pages.clear()
        pages[page] = body
        self._pages.move_to_end(key)

    def end(self, key: HistoryKey) -> None:
        """A read of `key` is over (stored or not)."""
        left = self._readers.get(key, 0) - 1
        if left > 0:
            self._readers[key] = left
            return
        self._readers.pop(key, None)
        self._forget(key)

    def changed(self, *keys: HistoryKey) -> None:
        """Runs of these histories were written: their pages go, reads under way keep nothing."""
        for key in keys:
            if key in self._pages or key in self._readers:
                self._pages.pop(key, None)
                self._generation[key] = self._generation.get(key, 0) + 1
                self._forget(key)

    def clear(self) -> None:
        """Runs of any history may have changed (retention deleted some)."""
        self._pages.clear()
        self._generation = {key: self._generation.get(key, 0) + 1 for key in self._readers}

    def _forget(self, key: HistoryKey) -> None:
        """Drop the generation of a history nobody keeps or reads."""
        if key not in self._pages and key not in self._readers:
            self._generation.pop(key, None)

    def __len__(self) -> int:
        return sum(len(pages) for pages in self._pages.values())


def run_histories(schedule_id: int | None, family: str, org_id: str | None) -> tuple[HistoryKey, ...]:
    """The histories a run of this schedule, family and org appears in."""
    keys: tuple[HistoryKey, ...] = () if schedule_id is None else (job_history(schedule_id),)
    return keys if org_id is None else (*keys, org_history(family, org_id))


async def cached_page(cache: PageCache, key: HistoryKey, page: Hashable,
                      build: Callable[[], Awaitable[bytes]]) -> bytes:
    """The kept page, or `build()`'s, kept unless its history changed while it was read."""
    body = cache.get(key, page)
    if body is not None:
        return body
    ticket = cache.begin(key)
    try:
        body = await build()
        cache.put(key, page, body, ticket)
    finally:
        cache.end(key)
    return body
