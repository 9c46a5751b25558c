"""The composition root: the one place that installs the job families and wires a daemon's parts.

`install_families` registers every family package with the registry the runner, store,
executors and views ask (`schedd.families.base.FAMILIES`); `FAMILY_APIS` are their HTTP
routes, which the application factory installs; `build_core` makes a `Core`
with the families' hooks installed (the service gate of maintenance windows, the
maintenance after a cube's first build). `schedd serve`, the tests and the benchmarks
build their core here.
"""

from __future__ import annotations

from schedd import metrics
from schedd.clock import Clock
from schedd.config import Config
from schedd.core import Core
from schedd.families.base import FAMILIES, Family, Registry
from schedd.families.cube_builds import routes as cube_build_routes
from schedd.families.cube_builds import service as cube_builds
from schedd.families.cube_builds.family import FAMILY as CUBE_BUILDS
from schedd.families.maintenance_windows import routes as window_routes
from schedd.families.maintenance_windows import service as maintenance_windows
from schedd.families.org_maintenance import routes as org_maintenance_routes
from schedd.families.org_maintenance.family import FAMILY as ORG_MAINTENANCE
from schedd.families.service_jobs import routes as service_job_routes
from schedd.families.service_jobs.family import FAMILY as SERVICE_JOBS
from schedd.http.common import Api

JOB_FAMILIES: tuple[Family, ...] = (ORG_MAINTENANCE, CUBE_BUILDS, SERVICE_JOBS)
"""The families the runner runs, in the order the operator view lists them."""

FAMILY_APIS: tuple[Api, ...] = (
    org_maintenance_routes.API, cube_build_routes.API, service_job_routes.API, window_routes.API)
"""Each family's HTTP API (`schedd/families/*/routes.py`), which the application factory installs."""


def install_families(registry: Registry = FAMILIES) -> Registry:
    """Register every job family (again: no change) and create its metric series."""
    for family in JOB_FAMILIES:
        registry.register(family)
        metrics.declare_family(family.name)
    return registry


def build_core(config: Config, *, db_path: str | None = None, clock: Clock | None = None) -> Core:
    """A core with every family installed and hooked into its runner and engine."""
    install_families()
    core = Core(config, db_path=db_path, clock=clock)
    cube_builds.install(core)
    core.windows = maintenance_windows.install(core)
    return core
