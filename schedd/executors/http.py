"""POST a run's `ServiceCall` body to its configured service; the caller picks the path, never the host."""

from __future__ import annotations

import codecs
import errno
import os
import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from schedd.executors import PAYLOAD_LIMIT, Outcome, RunContext, ServiceCall, truncate
from schedd.inputs import scrub, text_fault

if TYPE_CHECKING:
    from aiohttp.connector import Connection

    from schedd.config import ServiceConfig

_OPERATION = re.compile(r"[A-Za-z0-9._~/-]{1,200}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
              "host", "content-length"}
PREPARED_LIMIT = 1024
"""Requests (operation, headers, body) an executor keeps ready to send; the cache starts over when full."""
PREPARED_BODY_LIMIT = 4096
"""Bodies longer than this (bytes of text) are prepared for each call instead of kept."""


_NO_CALL = ServiceCall("")
"""A run that carries no call is sent nowhere: its (empty) operation is refused."""


class _Prepared:
    """A request checked and built once: where it goes, its headers, its body."""

    __slots__ = ("body", "error", "headers", "payload", "url")

    def __init__(self, url: URL | None, headers: CIMultiDict[str] | None, body: bytes, payload: str,
                 error: str | None) -> None:
        self.url, self.headers, self.body, self.payload, self.error = url, headers, body, payload, error


_ON_SENT: ContextVar[Callable[[], None] | None] = ContextVar("schedd_on_sent", default=None)
"""The run task's own start notice, for the request it sends."""


class StartedRequest(aiohttp.ClientRequest):
    """The session's request class: once a request is written to its connection (after any
    wait for a free one), its run's work has started (`schedd.executors.started`)."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        response = await super().send(conn)
        notify = _ON_SENT.get()
        if notify is not None:
            notify()
        return response


class HttpExecutor:
    """One service call: 2xx is success, anything else (status, connection, timeout) fails."""

    def __init__(self, service: ServiceConfig,
                 session_getter: Callable[[], aiohttp.ClientSession]) -> None:
        self._service = service
        self._session = session_getter
        self._prepared: dict[tuple[str | None, tuple[tuple[str, str], ...], str], _Prepared] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _prepare(self, call: ServiceCall) -> _Prepared:
        """The checked request of a call, kept for the next run of the same job."""
        body = call.body or ""
        key = (call.operation, tuple(call.headers.items()), body)
        found = self._prepared.get(key)
        if found is not None:
            return found
        prepared = self._build(call, body)
        if len(body) <= PREPARED_BODY_LIMIT:
            if len(self._prepared) >= PREPARED_LIMIT:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared

    def _build(self, call: ServiceCall, body: str) -> _Prepared:
        if any(isinstance(text, str) and text_fault(text) for text in (body, *call.headers.keys(),
                                                                           *call.headers.values())):
            # Stored before the input rule: refused here, as the API refuses it now.
            return _Prepared(None, None, b"", truncate(scrub(body)),
                             "postData or requestheaderMap is not valid UTF-8 text without NUL")
        payload = truncate(body)
        try:
            url = service_url(self._service.base_url or "", call.operation)
            headers = merge_headers(self._service.headers, call.headers.items())
        except ValueError as exc:
            return _Prepared(None, None, b"", payload, str(exc))
        return _Prepared(url, headers, body.encode("utf-8"), payload, None)

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        found = self._timeouts.get(seconds)
        if found is None:
            if len(self._timeouts) >= PREPARED_LIMIT:
                self._timeouts.clear()
            found = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return found

    async def run(self, ctx: RunContext) -> Outcome:
        prepared = self._prepare(ctx.call or _NO_CALL)
        payload = prepared.payload
        if prepared.error is not None or prepared.url is None:
            return Outcome(ok=False, error=prepared.error, request_payload=payload)
        timeout = min(self._service.timeout, ctx.timeout)
        _ON_SENT.set(ctx.on_start)  # this run's task only: each run has a task (and context) of its own
        try:
            async with self._session().post(
                    prepared.url, data=prepared.body, headers=prepared.headers, allow_redirects=False,
                    timeout=self._timeout(timeout)) as resp:
                text = await _read_bounded(resp)
        except TimeoutError:
            return Outcome(ok=False, error=f"timeout after {timeout:g} s", timed_out=True,
                           request_payload=payload)
        except aiohttp.ClientError as exc:
            return Outcome(ok=False, error=_reason(exc), request_payload=payload)
        ok = 200 <= resp.status < 300
        error = None if ok else f"HTTP {resp.status} {resp.reason or ''}".strip()
        return Outcome(ok=ok, error=error, request_payload=payload, response_status=resp.status,
                       response_body=text)


def service_url(base_url: str, operation: str | None) -> URL:
    """`base_url/operation`, refused unless it stays under the base URL's origin and path.

    The messages name the operation as the service jobs' API does (`operationName`): its
    validation calls this too, so a request is refused with the same words a run fails with."""
    op = operation or ""
    if not _OPERATION.fullmatch(op):
        raise ValueError(f"operationName {op!r}: must be 1-200 characters of A-Z a-z 0-9 . _ ~ / -")
    if op.startswith("/") or any(seg in ("", ".", "..") for seg in op.split("/")):
        raise ValueError(f"operationName {op!r}: empty, '.' or '..' path segment")
    base = URL(base_url)
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError(f"service base_url {base_url!r} is not an http(s) URL")
    url = URL(base_url.rstrip("/") + "/" + op, encoded=True)
    same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    if not same_origin or not url.raw_path.startswith(base.raw_path.rstrip("/") + "/"):
        raise ValueError(f"operationName {op!r}: leaves the service's base URL")
    return url


def merge_headers(defaults: Iterable[tuple[str, str]],
                  job: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """The service's headers, then the job's (which win); JSON unless one says otherwise."""
    merged: CIMultiDict[str] = CIMultiDict()
    for name, value in (*defaults, *job):
        lowered = name.lower()
        if not _TOKEN.fullmatch(name) or lowered in _FORBIDDEN or lowered.startswith("proxy-"):
            raise ValueError(f"header {name!r} may not be set")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: value contains CR, LF or NUL")
        merged[name] = value
    merged.setdefault("Content-Type", "application/json")
    return merged


async def _read_bounded(resp: aiohttp.ClientResponse) -> str:
    """At most PAYLOAD_LIMIT bytes of the body (one more to know it was longer), decoded."""
    data = bytearray()
    while len(data) <= PAYLOAD_LIMIT:
        chunk = await resp.content.read(PAYLOAD_LIMIT + 1 - len(data))
        if not chunk:
            break
        data += chunk
    try:
        decoder = codecs.getincrementaldecoder(resp.charset or "utf-8")("replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    if len(data) <= PAYLOAD_LIMIT:
        return decoder.decode(bytes(data), final=True)
    # final=False leaves a character cut at the limit out instead of mangling it.
    text = decoder.decode(bytes(data[:PAYLOAD_LIMIT]), final=False)
    if resp.content_length is not None and "Content-Encoding" not in resp.headers:
        return f"{text}…[truncated {resp.content_length - PAYLOAD_LIMIT} bytes]"
    return f"{text}…[truncated: body over {PAYLOAD_LIMIT} bytes]"


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        # asyncio words a refusal as "Connect call failed (...)"; the errno says it plainly.
        code = exc.os_error.errno
        why = os.strerror(code).lower() if code is not None and code in errno.errorcode else str(exc.os_error)
        return f"cannot connect to {exc.host}:{exc.port}: {why}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
