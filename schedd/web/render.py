"""Jinja2 templates (autoescaped), the headers every page carries, and the formats pages share."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from schedd.cron import load_zone
from schedd.errors import ScheddError
from schedd.families.overview import family_label
from schedd.http.common import CORE
from schedd.inputs import scrub
from schedd.timefmt import shown
from schedd.web.charts import format_seconds

TEMPLATES = web.AppKey("web_templates", jinja2.Environment)

STYLESHEET = resources.files("schedd.web").joinpath("static/schedd.css").read_bytes()
# The digest in the URL lets browsers cache the file for long and still see a new one at once.
STYLESHEET_URL = "/static/schedd.css?v=" + hashlib.sha256(STYLESHEET).hexdigest()[:12]

# No script at all, styles from schedd only, forms may post only back to schedd.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin posts keep their Referer, which the CSRF check falls back on without Origin.
    "Referrer-Policy": "same-origin",
}


def duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "\u2014"
    return format_seconds(max(0.0, end - start))


@functools.cache
def environment() -> jinja2.Environment:
    """The one template environment of the process: every app shares its compiled templates."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("schedd.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = format_seconds
    env.globals["duration"] = duration
    env.globals["css"] = STYLESHEET_URL
    env.globals["family_label"] = family_label
    return env


def zone(request: web.Request) -> ZoneInfo:
    """The daemon's configured zone: windows and runs are shown in it."""
    return load_zone(request.app[CORE].config.scheduler.timezone)


def page(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200,
         private: bool = False) -> web.Response:
    """Render a template into an HTML response with the security headers."""
    tz = zone(request)
    env = request.app[TEMPLATES]
    body = env.get_template(template).render(
        **context,
        time=lambda at: shown(at, tz),
        precise=lambda at: shown(at, tz, seconds=True),
        zone_name=request.app[CORE].config.scheduler.timezone,
    )
    try:
        encoded = body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate stored before the input rule: shown as U+FFFD
        encoded = scrub(body).encode("utf-8")
    response = web.Response(body=encoded, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(HEADERS)
    # The operator view shows what only a session may see: no cache may keep it.
    response.headers["Cache-Control"] = "no-store" if private else "no-cache"
    return response


TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 413: "Too large"}


def error_page(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    """An error of a page route (the `ErrorRenderer` of /ui, /status): the error page."""
    return page(request, "error.html", {"session": None, "status": status, "title": TITLES.get(status, "Error"),
                                        "message": message}, status=status, private=True)
