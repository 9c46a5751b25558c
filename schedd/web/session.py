"""Operator sessions: login and logout, the session cookie, and the CSRF checks on every form.

The cookie holds the access token `Accounts.login` issues, so a session expires and is
revoked exactly as an API token is. It is HttpOnly, SameSite=Strict, scoped to /ui and
Secure over TLS. A form post must come from schedd's own origin (Origin, else Referer)
and carry the session's CSRF token: an HMAC of the session token, so it needs no state
and outlives a restart, and nobody without the cookie can compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from schedd.errors import Throttled, Unauthorized
from schedd.http.common import ACCOUNTS, CORE, client_address, read_form
from schedd.store.accounts import User
from schedd.web.render import page

log = logging.getLogger("schedd.web")

routes = web.RouteTableDef()

SESSION_COOKIE = "schedd_session"
LOGIN_COOKIE = "schedd_login"
UI = "/ui"
LOGIN = "/ui/login"
LOGIN_FORM_TTL = 3600
_NEXT = re.compile(r"/ui(?:[/?][!-~]*)?")


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    token: str
    csrf: str


SESSION = web.RequestKey("web_session", Session)
OperatorHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def csrf_for(secret: str) -> str:
    """The form token bound to a session (or a login form's nonce)."""
    digest = hmac.new(secret.encode("utf-8"), b"schedd form v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_secure(request: web.Request) -> bool:
    """TLS here or at a proxy in front: a Secure cookie over plain HTTP would only fail to stick."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def same_origin(request: web.Request) -> bool:
    """Whether a post comes from a page of this host: Origin, or Referer when a client sends no Origin."""
    source = request.headers.get("Origin")
    if source is None:
        source = request.headers.get("Referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def _set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, *,
                max_age: int, path: str) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Strict",
                        secure=is_secure(request))


def _forbidden(request: web.Request, reason: str) -> web.Response:
    log.warning("action=web_post_refused path=%s reason=%r", request.path, reason)
    return page(request, "error.html", {"status": 403, "title": "Forbidden", "message": reason,
                                        "session": None}, status=403, private=True)


async def current_session(request: web.Request) -> Session | None:
    """The session of the request's cookie, if it holds a live access token."""
    if SESSION in request:
        return request[SESSION]
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        user = await request.app[ACCOUNTS].authenticate(token, at=request.app[CORE].clock.now())
    except Unauthorized:
        return None
    request[SESSION] = found = Session(user, token, csrf_for(token))
    return found


def operator(handler: OperatorHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Require a session; on a POST also the same origin and the session's CSRF token."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and not same_origin(request):
            return _forbidden(request, "This form was not sent from a schedd page (Origin/Referer check).")
        found = await current_session(request)
        if found is None:
            if request.method == "POST":
                return _forbidden(request, "Your session has expired or you are not logged in.")
            response = web.HTTPSeeOther(f"{LOGIN}?{urlencode({'next': request.path_qs})}")
            if SESSION_COOKIE in request.cookies:
                response.del_cookie(SESSION_COOKIE, path=UI)
            raise response
        if request.method == "POST":
            form = await read_form(request)
            sent = form.get("csrf")
            if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), found.csrf.encode()):
                return _forbidden(request, "The form's security token is missing or wrong; reload the page.")
        return await handler(request, found)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _next(value: object) -> str:
    return value if isinstance(value, str) and _NEXT.fullmatch(value) and "//" not in value else UI


def _login_page(request: web.Request, *, status: int = 200, error: str | None = None,
                userid: str = "", nonce: str | None = None, next_path: object = None) -> web.Response:
    nonce = nonce or request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce):
        nonce = secrets.token_urlsafe(32)
    response = page(request, "login.html", {
        "session": None, "error": error, "userid": userid, "csrf": csrf_for(nonce),
        "next": _next(next_path or request.query.get("next")),
    }, status=status, private=True)
    _set_cookie(response, request, LOGIN_COOKIE, nonce, max_age=LOGIN_FORM_TTL, path=LOGIN)
    return response


@routes.get(LOGIN)
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    return _login_page(request)


@routes.post(LOGIN)
async def login(request: web.Request) -> web.StreamResponse:
    """Check the form's origin and nonce, then the password; the session cookie holds the new token."""
    if not same_origin(request):
        return _forbidden(request, "This form was not sent from a schedd page (Origin/Referer check).")
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get("csrf")
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), csrf_for(nonce).encode()):
        return _forbidden(request, "The login form expired or was not sent from a schedd page; reload it.")
    userid, password = form.get("userid"), form.get("password")
    userid = userid if isinstance(userid, str) else ""
    password = password if isinstance(password, str) else ""
    core, accounts = request.app[CORE], request.app[ACCOUNTS]
    at = core.clock.now()
    try:
        result = await accounts.login(userid, password, at=at, address=client_address(request))
    except Throttled as exc:
        response = _login_page(request, status=429, error=str(exc), userid=userid, nonce=nonce,
                               next_path=form.get("next"))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized as exc:
        return _login_page(request, status=401, error=str(exc), userid=userid, nonce=nonce,
                           next_path=form.get("next"))
    # The view never uses the refresh token login issues: it must not linger unused.
    await accounts.revoke(result.refresh_token, at=at)
    log.info("action=web_login user=%s", result.user.name)
    response = web.HTTPSeeOther(_next(form.get("next")))
    _set_cookie(response, request, SESSION_COOKIE, result.access_token,
                max_age=max(1, int(result.access_expires_at - at)), path=UI)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN)
    raise response


@routes.post("/ui/logout")
@operator
async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    await request.app[ACCOUNTS].revoke(session.token, at=request.app[CORE].clock.now())
    log.info("action=web_logout user=%s", session.user.name)
    response = web.HTTPSeeOther(LOGIN)
    response.del_cookie(SESSION_COOKIE, path=UI)
    raise response
