"""POST /authService/accounts/login and /logout: Volt MX's login that issues tokens (in Volt MX's
shape), and the logout that revokes them."""

from __future__ import annotations

from aiohttp import web

from schedd.api import models
from schedd.api.common import ACCOUNTS, CORE, bearer_token, client_address, json_response, read_body, with_envelope
from schedd.errors import ScheddError, Unauthorized, ValidationError

routes = web.RouteTableDef()


def fail(status: int, message: str, result: models.FieldFault | None = None) -> web.Response:
    """The Volt MX FAIL envelope."""
    return json_response(models.VoltResult(status="FAIL", result=result, message=message), status=status)


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    if isinstance(exc, ValidationError):
        return fail(status, f"{exc.field} is invalid", models.FieldFault(field=exc.field, reason=exc.reason))
    return fail(status, message)


@routes.post("/authService/accounts/login")
@with_envelope(render_error)
async def login(request: web.Request) -> web.Response:
    form = models.read(models.Login, await read_body(request))
    core = request.app[CORE]
    result = await request.app[ACCOUNTS].login(form.userid, form.password, at=core.clock.now(),
                                               address=client_address(request))
    user = result.user
    email = user.email or ""
    return json_response(models.LoginAnswer(
        profile=models.Profile(
            userid=user.name,
            email=email,
            firstname="",
            lastname="",
            user_attributes=models.UserAttributes(user_id=user.name),
            profile_attributes=models.ProfileAttributes(firstname="", userid=user.name, email=email, lastname=""),
        ),
        claims_token=models.ClaimsToken(
            value=result.access_token,
            exp=int(result.access_expires_at * 1000),
            integrity_check_required=False,
        ),
        refresh_token=result.refresh_token,
    ))


@routes.post("/authService/accounts/logout")
@with_envelope(render_error)
async def logout(request: web.Request) -> web.Response:
    """Revoke the access token the request carries, and the login's `refresh_token` if sent along."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing token: send X-VoltMX-Authorization or Authorization: Bearer")
    accounts, at = request.app[ACCOUNTS], request.app[CORE].clock.now()
    user = await accounts.authenticate(token, at=at)
    refresh = models.read(models.Logout, await read_body(request)).refresh_token
    revoked = int(await accounts.revoke(token, at=at))
    if refresh:
        revoked += int(await accounts.revoke_refresh(refresh, user, at=at))
    return json_response(models.VoltResult(status="SUCCESS", result=models.Revoked(userid=user.name, revoked=revoked),
                                           message=None))
