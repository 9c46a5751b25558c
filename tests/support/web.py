"""What the web-view and input tests share: scopes, services, a window, a job, an operator's browser."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp import web

from tests.support.api import PASSWORD

# T0 is 2026-01-01T00:00 UTC, the zone of these windows.
SCOPES = {"platform": {"id": 1}, "edge": {"id": 2}}
SERVICES = {
    "jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"},
    "orders": {"base_url": "http://127.0.0.1:9/orders", "id": 11, "scope": "platform"},
    "cdn": {"base_url": "http://127.0.0.1:9/cdn", "id": 20, "scope": "edge"},
}
WINDOW = {
    "scope": "1", "service": "10", "name": "Database upgrade", "description": "PostgreSQL 17",
    "service_status": "down", "scheduled_start_date": "2026-01-01T03:00",
    "scheduled_end_date": "2026-01-01T05:00",
}
JOB = {
    "jobName": "nightly-export", "jobFrequency": "0 30 2 * * ? *", "description": "export",
    "jobServiceInfo": {"serviceType": "intSer", "serviceName": "jsonservices", "operationName": "export",
                       "serviceExecutionType": "SERVER_URL", "postData": "{}"},
}
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


class Operator:
    """One browser's worth of cookies against the test server, with its Origin."""

    def __init__(self, api) -> None:
        self.api = api
        self.client = api.client
        self.origin = f"http://{self.client.host}:{self.client.port}"

    async def get(self, path: str, **kw: Any) -> tuple[web.Response, str]:
        response = await self.client.get(path, **kw)
        return response, await response.text()

    async def csrf(self, path: str = "/ui") -> str:
        _, body = await self.get(path)
        found = CSRF_FIELD.search(body)
        assert found, body
        return html.unescape(found.group(1))

    async def post(self, path: str, data: dict[str, str], *, origin: str | None = "self",
                   headers: dict[str, str] | None = None):
        headers = dict(headers or {})
        if origin is not None:
            headers["Origin"] = self.origin if origin == "self" else origin
        response = await self.client.post(path, data=data, headers=headers, allow_redirects=False)
        return response, await response.text()

    async def login(self, who: str, password: str = PASSWORD, **kw: Any):
        self.client.session.cookie_jar.clear()
        token = await self.csrf("/ui/login")
        return await self.post("/ui/login", {"userid": who, "password": password, "csrf": token,
                                             "next": "/ui"}, **kw)


async def create_window(api, **overrides: str) -> int:
    response, body = await api.call("POST", "/api/maintenance/create", "alice", data={**WINDOW, **overrides},
                                     allow_redirects=False)
    assert response.status == 302, body
    return int(response.headers["Location"].rsplit("/", 1)[1])
