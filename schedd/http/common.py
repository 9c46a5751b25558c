"""What every route module shares: app keys, auth, body parsing, error mapping (time formats: schedd.timefmt)."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from schedd import metrics, shapes
from schedd.accounts import Accounts
from schedd.config import UNIX_PEER
from schedd.core import Core
from schedd.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ScheddError,
    Throttled,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from schedd.inputs import check_text, check_tree, parse_int, text_fault
from schedd.store.accounts import User
from schedd.values import IDENT_RE, IDENT_RULE

log = logging.getLogger("schedd.api")

CORE = web.AppKey("core", Core)
ACCOUNTS = web.AppKey("accounts", Accounts)
REQUEST_ID = web.RequestKey("request_id", str)
USER: web.RequestKey[User | None] = web.RequestKey("user")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[web.Request, int, str, ScheddError], web.StreamResponse]


@dataclass(frozen=True, slots=True)
class Api:
    """One API family as the application factory installs it: its routes, and the envelope
    that answers for any path under its prefixes (the router's 404 and 405, a bad input
    refused before a handler runs)."""

    routes: web.RouteTableDef
    prefixes: tuple[str, ...]
    render_error: ErrorRenderer
"""Renders an error in a family's envelope: (request, status, message, error)."""


def status_for(exc: ScheddError) -> int:
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, Throttled):
        return 429
    if isinstance(exc, Unavailable):
        return 503
    return 500


def with_envelope(render: ErrorRenderer) -> Callable[[Handler], Handler]:
    """Wrap a handler so that every failure answers in its family's envelope."""

    def decorate(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ScheddError as exc:
                status = status_for(exc)
                if status == 500:
                    return _internal(request, render, exc)
                response = render(request, status, str(exc), exc)
                if isinstance(exc, Throttled):
                    response.headers["Retry-After"] = str(exc.retry_after)
                if isinstance(exc, Unauthorized):
                    response.headers.setdefault("WWW-Authenticate", 'Bearer realm="schedd"')
                return response
            except web.HTTPRequestEntityTooLarge as exc:
                metrics.LIMITS.labels("server.max_body").inc()
                return render(request, 413, "request body is larger than the limit", ScheddError(exc.text))
            except (web.HTTPException, ConnectionError):  # ConnectionError: the client is gone (or was cut off)
                raise
            except Exception as exc:  # noqa: BLE001 - logged with the request id, never shown
                return _internal(request, render, exc)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        _RENDERERS[wrapped] = render
        return wrapped

    return decorate


_RENDERERS: dict[Handler, ErrorRenderer] = {}


def renderer_of(handler: Handler) -> ErrorRenderer | None:
    """The envelope a handler wrapped by `with_envelope` answers errors in."""
    return _RENDERERS.get(handler)


def _internal(request: web.Request, render: ErrorRenderer, exc: BaseException) -> web.StreamResponse:
    rid = request.get(REQUEST_ID, "-")
    log.error("action=request_failed request_id=%s path=%s error=%r", rid, request.path, str(exc),
              exc_info=exc)
    message = f"internal error (request id {rid})"
    return render(request, 500, message, ScheddError(message))


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(e) for e in entries if e != UNIX_PEER)


def _trusted(address: str, entries: tuple[str, ...]) -> bool:
    if address == UNIX_PEER:
        return UNIX_PEER in entries
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(entries))


def client_address(request: web.Request) -> str:
    """The caller's address: the peer (`request.remote`; "unix" over the Unix socket).

    Only when the peer is one of `[auth] trusted_proxies` is X-Forwarded-For believed:
    its addresses are read from the right (the nearest hop first) and the first one that
    is not itself a trusted proxy is the caller. A hop that is not an address ends the
    search at the last address that could be checked.
    """
    peer = request.remote or UNIX_PEER
    trusted = request.app[CORE].config.auth.trusted_proxies
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", []) for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            client = str(ipaddress.ip_address(hop))
        except ValueError:
            return client
        if not _trusted(client, trusted):
            return client
    return client


def bearer_token(request: web.Request) -> str | None:
    token = request.headers.get("X-VoltMX-Authorization")
    if token:
        return token.strip()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def optional_user(request: web.Request) -> User | None:
    """The caller, if it sent a valid token; None when it sent none. A bad token is 401."""
    if USER in request:
        return request[USER]
    token = bearer_token(request)
    user = None
    if token is not None:
        core = request.app[CORE]
        user = await request.app[ACCOUNTS].authenticate(token, at=core.clock.now())
    request[USER] = user
    return user


async def current_user(request: web.Request) -> User:
    user = await optional_user(request)
    if user is None:
        raise Unauthorized("missing token: send X-VoltMX-Authorization or Authorization: Bearer")
    return user


async def admin_user(request: web.Request) -> User:
    user = await current_user(request)
    if not user.is_admin:
        raise Unauthorized("this API needs an administrator")
    return user


def check_ident(value: str, name: str) -> str:
    """An identifier (orgId, projectId, cubeId): 1-128 of A-Z a-z 0-9 . _ -, first a letter or digit
    (docs/api.md)."""
    if not IDENT_RE.fullmatch(value):
        raise ValidationError(name, f"must be {IDENT_RULE}")
    return value


def ident(request: web.Request, name: str) -> str:
    """A path identifier, checked."""
    return check_ident(request.match_info[name], name)


def bare_and_v1(table: web.RouteTableDef, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler at `path` and at `/api/1.0` + `path`: AtScale's clients call both."""

    def register(handler: Handler) -> Handler:
        for prefix in ("", "/api/1.0"):
            table.route(method, prefix + path)(handler)
        return handler

    return register


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_FORM: web.RequestKey[dict[str, str]] = web.RequestKey("form")


def check_request(request: web.Request) -> None:
    """The path and query string are UTF-8 text by the input rule; path parameters hold no NUL.

    yarl decodes a bad percent-escape to U+FFFD without a word, so the raw text is decoded
    here, strictly, before anything reads `request.query`.
    """
    _decode_strictly(request.raw_path.partition("?")[0], "path", plus=False)
    for name, value in request.match_info.items():
        check_text(value, name)
    raw = request.rel_url.raw_query_string
    if not raw:
        return
    for pair in raw.split("&"):
        name, _, value = pair.partition("=")
        field = check_text(_decode_strictly(name, "query", plus=True), "query")
        check_text(_decode_strictly(value, field or "query", plus=True), field or "query")


def _decode_strictly(raw: str, field: str, *, plus: bool) -> str:
    data = unquote_to_bytes(raw.replace("+", " ") if plus else raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(field, "is not valid UTF-8 once percent-decoded") from exc


async def read_form(request: web.Request) -> dict[str, str]:
    """The fields of a form body (urlencoded or multipart), the first value of each name, every value text.

    Parsed once per request and kept: the middleware parses every form before the handler
    runs, so a malformed one is a 400 in the route's envelope wherever it is sent. A body
    of another type is no form: {}.
    """
    if _FORM in request:
        return request[_FORM]
    fields: dict[str, str] = {}
    if request.body_exists and request.content_type == "multipart/form-data":
        fields = await _multipart(request)
    elif request.body_exists and request.content_type == "application/x-www-form-urlencoded":
        fields = _urlencoded(request, await request.read())
    request[_FORM] = fields
    return fields


def _add_field(fields: dict[str, str], name: str, value: str, limit: int) -> None:
    check_text(name, "body")
    check_text(value, name)
    if name in fields:
        return  # the first value counts, as Prod-Manager's own forms read it (its client repeats `events`)
    if 0 < limit <= len(fields):
        raise web.HTTPRequestEntityTooLarge(limit, len(fields) + 1, text=f"more than {limit} fields")
    fields[name] = value


def _urlencoded(request: web.Request, raw: bytes) -> dict[str, str]:
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ValidationError("body", f"form charset must be utf-8, not {charset[:40]!r}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("body", "is not valid UTF-8") from exc
    fields: dict[str, str] = {}
    for pair in text.strip().split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name = check_text(_decode_strictly(name, "body", plus=True), "body")
        _add_field(fields, name, _decode_strictly(value, name or "body", plus=True), request.client_max_fields)
    return fields


async def _multipart(request: web.Request) -> dict[str, str]:
    """aiohttp's parser (bounded by max_body and client_max_fields); whatever it fails on is a 400."""
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - the client's bytes: every way they fail to parse is a 400
        detail = str(exc)[:200] or type(exc).__name__
        raise ValidationError("body", f"malformed multipart form: {detail}") from exc
    fields: dict[str, str] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            value.file.close()
            raise ValidationError(name if not text_fault(name) else "body", "file uploads are not accepted")
        if not isinstance(value, str):  # a part sent with a non-text Content-Type: its bytes as UTF-8
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(name if not text_fault(name) else "body", "is not valid UTF-8") from exc
        _add_field(fields, name, value, request.client_max_fields)
    return fields


async def read_body(request: web.Request) -> dict[str, Any]:
    """A JSON object or a form; {} for an empty body. Malformed input is a 400.

    Every string of it, nested ones and keys included, passes the input rule
    (schedd/inputs.py): nothing that breaks a later read can be stored.
    """
    if not request.body_exists:
        return {}
    if request.content_type in FORM_TYPES:
        return dict(await read_form(request))
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("body", "is not valid UTF-8") from exc
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ValidationError("body", "JSON is nested too deeply") from exc
    except ValueError as exc:
        raise ValidationError("body", f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    check_tree(data)
    return data


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as an integer in [low, high] written in ASCII digits; `default` when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return parse_int(raw, name, low, high)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An answer: a model (`schedd.shapes.Model`) (or dicts and lists), as compact UTF-8 JSON."""
    return web.Response(body=shapes.encode(data), status=status, content_type="application/json",
                        headers=headers)


PAGE_SLOT = "\x00page\x00"
"""Stands for an encoded page in `json_around`."""


def json_around(data: Any, page: bytes) -> bytes:
    """`data` as JSON with the already encoded `page` in place of the one value `PAGE_SLOT` in it."""
    head, found, tail = shapes.encode(data).partition(shapes.encode(PAGE_SLOT))
    if not found:
        raise ValueError("PAGE_SLOT is not in the data")
    return head + page + tail
