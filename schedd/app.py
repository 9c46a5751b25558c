"""The application factory: the HTTP API and the web views in one aiohttp application.

Middlewares, the route tables of every API family and of the web views, and the
lifecycle of the core. It sits above both `schedd.api` and `schedd.web`, which do not
import each other's routes.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator

from aiohttp import web

from schedd import metrics
from schedd import web as web_views
from schedd.accounts import Accounts
from schedd.api import auth, models, openapi, ops
from schedd.compose import FAMILY_APIS
from schedd.core import Core
from schedd.errors import ScheddError, ValidationError
from schedd.http import stream
from schedd.http.common import (
    ACCOUNTS,
    CORE,
    FORM_TYPES,
    REQUEST_ID,
    Api,
    ErrorRenderer,
    Handler,
    check_request,
    json_response,
    read_form,
    renderer_of,
)
from schedd.web.render import error_page

log = logging.getLogger("schedd.http")

# Request ids: a random prefix per process and a counter, unique without a syscall per request.
_request_ids = map(f"{secrets.token_hex(4)}{{:08x}}".format, itertools.count(1))
# What a caller's X-Request-Id may be: nothing that could change a log line or a header.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

APIS: tuple[Api, ...] = (auth.API, *FAMILY_APIS)
"""Every API family; a path no route matches still answers in the envelope of the one whose prefix it has."""


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one access log line, and metrics by route (never by raw path)."""
    rid = request_id(request.headers.get("X-Request-Id"))
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        elapsed = time.perf_counter() - started
        metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        log.info(
            "action=http method=%s path=%s status=%d ms=%.1f request_id=%s",
            request.method, request.path, status, elapsed * 1000, rid)
    response.headers["X-Request-Id"] = rid
    return response


def request_id(sent: str | None) -> str:
    """The caller's X-Request-Id if it is 1-64 of A-Z a-z 0-9 . _ -, else a new one (logged as is)."""
    if sent is not None and REQUEST_ID_RE.fullmatch(sent):
        return sent
    return next(_request_ids)


@web.middleware
async def inputs(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route's input passes one rule before its handler runs (schedd/inputs.py).

    The path and query string must be UTF-8 text without NUL, and a form body must parse,
    with text values: else a 400 in the route's own envelope. JSON bodies are checked by
    `read_body`, the only way a handler reads one.
    """
    try:
        check_request(request)
        if request.body_exists and request.content_type in FORM_TYPES:
            await read_form(request)
    except ValidationError as exc:
        return _renderer(request)(request, 400, str(exc), exc)
    except web.HTTPRequestEntityTooLarge as exc:
        metrics.LIMITS.labels("server.max_body").inc()
        too_many = "field" in (exc.text or "")  # aiohttp's and read_form's limit on the number of fields
        message = f"the form has {exc.text}" if too_many else "request body is larger than the limit"
        return _renderer(request)(request, 413, message, ScheddError(message))
    return await handler(request)


def _renderer(request: web.Request) -> ErrorRenderer:
    """The envelope of the route: its handler's, else its family's by path, else a page or plain JSON."""
    return (renderer_of(request.match_info.handler) or _family_renderer(request.path)
            or _page_renderer(request.path) or _plain_error)


def _page_renderer(path: str) -> ErrorRenderer | None:
    return error_page if openapi.BROWSER_PAGES.match(path) else None


def _plain_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    return json_response(models.PlainError(message=message), status=status)


@web.middleware
async def unmatched(request: web.Request, handler: Handler) -> web.StreamResponse:
    """404 and 405 of the router in the family's JSON envelope instead of aiohttp's plain text."""
    error = request.match_info.http_exception
    render = None if error is None else _family_renderer(request.path) or _page_renderer(request.path)
    if error is None or render is None:
        return await handler(request)
    message = f"{error.status}: {error.reason}"
    response = render(request, error.status, message, ScheddError(message))
    if "Allow" in error.headers:
        response.headers["Allow"] = error.headers["Allow"]
    return response


def _family_renderer(path: str) -> ErrorRenderer | None:
    for api in APIS:
        if any(path == prefix or path.startswith(prefix + "/") for prefix in api.prefixes):
            return api.render_error
    return None


def make_app(core: Core, *, manage_core: bool = True, run_loop: bool = True) -> web.Application:
    """The HTTP API over `core`; with `manage_core` the app starts and stops it.

    Tests pass `run_loop=False` and drive the engine with the test clock.
    """
    app = web.Application(middlewares=[observe, unmatched, inputs], client_max_size=core.config.server.max_body)
    app[CORE] = core
    app[ACCOUNTS] = Accounts(core.store, core.config.auth, core.clock)
    web_views.setup(app)
    stream.setup(app)
    for routes in (ops.routes, web_views.routes, *(api.routes for api in APIS)):
        app.add_routes(routes)
    if manage_core:
        app.cleanup_ctx.append(functools.partial(_run_core, run_loop=run_loop))
    app.on_cleanup.append(_close_accounts)
    return app


async def _close_accounts(app: web.Application) -> None:
    app[ACCOUNTS].close()


async def _run_core(app: web.Application, *, run_loop: bool) -> AsyncIterator[None]:
    core = app[CORE]
    await core.start(run_loop=run_loop)
    yield
    await core.stop()
