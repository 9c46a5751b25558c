"""Server-rendered web views: the public status page and the operator view under /ui.

`setup(app)` gives the app its templates; `routes` go into the app before the
maintenance-window routes (they hold `GET /api/maintenance/calendar`).
"""

from __future__ import annotations

from aiohttp import web

from schedd.web import public, session, ui
from schedd.web.render import TEMPLATES, environment

routes: list[web.AbstractRouteDef] = [*public.routes, *session.routes, *ui.routes]


def setup(app: web.Application) -> None:
    """Configure the templates (autoescaped Jinja2) the views render with."""
    app[TEMPLATES] = environment()
