"""Complete answers of any size, written as they are read: memory stays flat in the rows.

A streamed list reads its rows in batches of a hundred through the reader's thread
(keyset paging in the store), turns `ITEMS_PER_PIECE` at a time into JSON or text, and
writes each piece to a chunked response. The event loop stays free for everyone else: a
piece costs well under a millisecond, and at most `STREAM_SLOTS` answers encode a piece
in one turn of the loop (the others wait their turn without holding it), so /healthz and
the scheduler's own work never queue behind a long list.

The first batch is read before the status line is sent, so a failure there still answers
in the family's envelope. A failure after that can only cut the answer short: the
connection is closed without the last chunk, and the client sees an incomplete body,
never a complete-looking wrong one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from schedd import shapes
from schedd.http.common import REQUEST_ID

T = TypeVar("T")
log = logging.getLogger("schedd.api")

STREAM_GATE = web.AppKey("stream_gate", asyncio.Semaphore)
STREAM_SLOTS = 1
ITEMS_PER_PIECE = 25


def setup(app: web.Application) -> None:
    app[STREAM_GATE] = asyncio.Semaphore(STREAM_SLOTS)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """The one JSON encoding of every answer: compact, UTF-8 as is (`json.dumps` with those options)."""
    return _ENCODER.encode(value)


def envelope_parts(envelope: dict[str, Any], key: str) -> tuple[str, str]:
    """The JSON text of `envelope` before and after the value of `key` (a list to stream)."""
    marker = "\x00rows\x00"
    text = dumps({**envelope, key: marker})
    head, found, tail = text.partition(dumps(marker))
    if not found:
        raise ValueError(f"{key!r} is not a key of the envelope")
    return head, tail


async def json_list(
    request: web.Request, batches: AsyncIterator[list[T]], render: Callable[[T], Any], *,
    head: str = "", tail: str = "", headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """`head` + a JSON array of `render(item)` for every item of `batches` + `tail`."""

    def encode(piece: list[T]) -> str:
        # The items of a JSON array, comma-separated: the array's text without its brackets.
        return shapes.encode([render(item) for item in piece]).decode("utf-8")[1:-1]

    return await _stream(request, batches, encode, opening=head + "[", separator=",", closing="]" + tail,
                         content_type="application/json", headers=headers)


async def text(
    request: web.Request, batches: AsyncIterator[list[T]], render: Callable[[list[T]], str], *,
    opening: str, closing: str, content_type: str, headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """`opening` + `render(piece)` for every piece of every batch + `closing` (e.g. iCalendar)."""
    return await _stream(request, batches, render, opening=opening, separator="", closing=closing,
                         content_type=content_type, headers=headers)


async def _stream(
    request: web.Request, batches: AsyncIterator[list[T]], encode: Callable[[list[T]], str], *,
    opening: str, separator: str, closing: str, content_type: str, headers: dict[str, str] | None,
) -> web.StreamResponse:
    first = await anext(batches, None)  # a failure here still answers in the envelope
    response = web.StreamResponse(headers=headers)
    response.content_type = content_type
    response.charset = "utf-8"
    response.headers["X-Request-Id"] = request.get(REQUEST_ID, "")
    await response.prepare(request)
    if request.method == "HEAD":  # the status and headers a GET would have, and no body
        await _aclose(batches)
        await response.write_eof()
        return response
    gate = request.app[STREAM_GATE]
    written = False
    try:
        await response.write(opening.encode("utf-8"))
        batch = first
        while batch is not None:
            for start in range(0, len(batch), ITEMS_PER_PIECE):
                async with gate:  # held over one turn of the loop: few encoders per turn
                    piece = encode(batch[start:start + ITEMS_PER_PIECE])
                    data = ((separator if written and piece else "") + piece).encode("utf-8")
                    await asyncio.sleep(0)
                written = written or bool(piece)
                await response.write(data)
            batch = await anext(batches, None)
        await response.write(closing.encode("utf-8"))
        await response.write_eof()
    except ConnectionError:
        _close(request)  # the client went away: nothing to tell anyone
    except Exception as exc:  # noqa: BLE001 - the status line is sent: only cutting the body short is left
        log.error("action=stream_failed request_id=%s path=%s error=%r", request.get(REQUEST_ID, "-"),
                  request.path, str(exc), exc_info=exc)
        _close(request)
    finally:
        await _aclose(batches)
    return response


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def _aclose(batches: AsyncIterator[Any]) -> None:
    close = getattr(batches, "aclose", None)
    if close is not None:
        await close()
