"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schedd import metrics
from schedd.api import models, openapi
from schedd.core import Core
from schedd.http.common import CORE, json_response

routes = web.RouteTableDef()

STALL_AFTER = 10.0  # seconds without an engine turn before /readyz says the loop stalled


def engine_turning(core: Core) -> bool:
    """The engine loop turned recently (it turns at least once a slice while it runs)."""
    return time.monotonic() - core.engine.heartbeat < STALL_AFTER + core.engine.slice


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response(models.Health(status="ok"))


def readiness(core: Core) -> tuple[bool, models.Checks]:
    """Whether the daemon is ready, and each check it is made of."""
    checks = models.Checks(
        database=core.store.is_open,
        heap_loaded=core.engine.loaded,
        loop=engine_turning(core),
    )
    return core.ready and checks.database and checks.heap_loaded and checks.loop, checks


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    core = request.app[CORE]
    ready, checks = readiness(core)
    return json_response(models.Readiness(ready=ready, checks=checks, instance=core.coordinator.instance,
                                          fires=core.coordinator.is_leader), status=200 if ready else 503)


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    core = request.app[CORE]
    metrics.HEAP_SIZE.set(len(core.engine))
    metrics.IN_FLIGHT.set(core.runner.in_flight)
    metrics.QUEUED.set(core.runner.queued)
    metrics.MAX_CONCURRENT.set(core.runner.max_concurrent)
    metrics.READY.set(1 if readiness(core)[0] else 0)
    if core.store.local_file is not None:
        metrics.observe_database(core.store.local_file)
    metrics.HEAP_ENTRIES.set(core.engine.heap_entries)
    metrics.TASKS.set(len(asyncio.all_tasks()))
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=openapi.document_bytes(), content_type="application/json")
