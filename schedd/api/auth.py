"""POST /authService/accounts/login and /logout: Volt MX's login that issues tokens (in Volt MX's
shape), and the logout that revokes them."""

from __future__ import annotations

from aiohttp import web

from schedd import shapes
from schedd.api import models
from schedd.errors import Unauthorized
from schedd.families.service_jobs import shapes as job_shapes
from schedd.families.service_jobs.routes import render_error, volt_error
from schedd.http.common import (
    ACCOUNTS,
    CORE,
    Api,
    bearer_token,
    client_address,
    json_response,
    read_body,
    with_envelope,
)

routes = web.RouteTableDef()


@routes.post("/authService/accounts/login")
@with_envelope(volt_error)
async def login(request: web.Request) -> web.Response:
    form = shapes.read(models.Login, await read_body(request))
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
@with_envelope(volt_error)
async def logout(request: web.Request) -> web.Response:
    """Revoke the access token the request carries, and the login's `refresh_token` if sent along."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing token: send X-VoltMX-Authorization or Authorization: Bearer")
    accounts, at = request.app[ACCOUNTS], request.app[CORE].clock.now()
    user = await accounts.authenticate(token, at=at)
    refresh = shapes.read(models.Logout, await read_body(request)).refresh_token
    revoked = int(await accounts.revoke(token, at=at))
    if refresh:
        revoked += int(await accounts.revoke_refresh(refresh, user, at=at))
    result = models.Revoked(userid=user.name, revoked=revoked)
    return json_response(job_shapes.VoltResult(status="SUCCESS", result=result, message=None))


API = Api(routes, ("/authService",), render_error)
"""Errors under /authService answer as the service jobs API does (Volt MX's envelope)."""
