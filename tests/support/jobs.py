"""Service jobs as the tests send them (Volt MX's jobs API), and a service for them to call.

The `service` fixture (conftest.py) starts a FakeService; `services()` makes the
`[services]` config that points a job's `jsonservices` at it.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JOBS = "/admin/api/jobs/job"
DROP = object()

# Volt MX's "Create a Job" sample request, as its admin-console API documents it.
SAMPLE_JOB: dict[str, Any] = {
    "jobId": 2,
    "jobName": "testjob1",
    "jobFrequency": "19 0 * * * ? *",
    "description": "Job for testjob2",
    "jobServiceInfo": {
        "version": "1.0",
        "serviceType": "intSer",
        "serviceName": "jsonservices",
        "objectName": "",
        "operationName": "metadatajson",
        "requestheaderMap": {},
        "serviceExecutionType": "SERVER_URL",
        "postData": "{}",
        "operationSecurityLevel": "public",
    },
    "jobStatus": "Active",
    "historyStrategy": "OFF",
    "retentionPeriod": "30",
    "jobFrequencyInfo": {"frequencyType": 1, "minuteValues": [0], "hourValues": [1]},
}


def job(**changes: Any) -> dict[str, Any]:
    """Volt MX's sample job with dotted-path changes (`jobServiceInfo__operationName`); DROP removes."""
    body = copy.deepcopy(SAMPLE_JOB)
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        target = body
        for parent in parents:
            target = target[parent]
        if value is DROP:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


@dataclass
class FakeService:
    """A local HTTP service: records each call and answers `status` with `body`; with `hold`,
    only once the test sets `released`."""

    status: int = 200
    body: str = '{"opstatus":0}'
    hold: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    server: Any = None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append({
            "method": request.method, "path": request.path, "headers": dict(request.headers),
            "body": await request.text(),
        })
        if self.hold:
            await self.released.wait()
        self.answered += 1
        return web.Response(status=self.status, text=self.body, content_type="application/json")

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/api"))


def services(service: FakeService, timeout: float = 1, **extra: Any) -> dict[str, Any]:
    return {"jsonservices": {"base_url": service.base_url, "timeout": timeout, **extra}}
