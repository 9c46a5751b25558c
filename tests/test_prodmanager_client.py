"""Prod-Manager's own Python client (`prod-manager`, module `prodmanager`) against a real daemon,
running the examples its documentation gives: maintenances, scopes and services."""

from __future__ import annotations

import logging
import sys

import pytest
import tomli_w
from prodmanager import ProdManager

from tests.support.daemon import PASSWORD, Daemon, schedd

SCOPES = {"platform": {"id": 1}, **{f"zone{n}": {"id": 10 + n} for n in range(60)}}
SERVICES = {
    "jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"},
    **{f"svc{n}": {"base_url": "http://127.0.0.1:9/x", "id": 100 + n, "scope": "platform"} for n in range(55)},
}


@pytest.fixture
def pm(tmp_path):
    daemon = Daemon(tmp_path, [sys.executable, "-c", "pass"])
    daemon.config.write_bytes(tomli_w.dumps({
        "scheduler": {"shutdown_grace": "2s", "timezone": "Europe/Berlin"},
        "scopes": SCOPES, "services": SERVICES,
    }).encode())
    out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db, "--config",
                 str(daemon.config), stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    token = schedd("token", "create", "ops", "--db", daemon.db, "--config", str(daemon.config)).stdout.strip()
    daemon.start()
    url = f"http://127.0.0.1:{daemon.port}"
    yield ProdManager(url, token, log_level="WARNING"), ProdManager(url, log_level="WARNING")
    daemon.stop()
    logging.getLogger("ProdManager").handlers.clear()  # the client adds a handler per instance


def test_the_documented_maintenance_examples_work_unchanged(pm):
    client, anonymous = pm
    scope = client.scope.get(1)
    service = client.service.get(10)
    assert (scope.name, service.name, service.scope) == ("platform", "jsonservices", 1)

    # Create a maintenance (the example's fields, and the dates schedd requires).
    maintenance = client.maintenance.create(
        name="My maintenance", description="Demonstration maintenance", service=service.id, scope=scope.id,
        service_status="degraded", scheduled_start_date="2030-01-01T03:00", scheduled_end_date="2030-01-01T05:00")
    assert maintenance.status == "scheduled" and maintenance.name == "My maintenance"

    # Get a single maintenance; list maintenances (an iterator over every page).
    assert client.maintenance.get(maintenance.id).description == "Demonstration maintenance"
    for n in range(55):
        client.maintenance.create(name=f"Window {n}", service=10, scope=1, service_status="up",
                                  scheduled_start_date="2030-02-01T03:00", scheduled_end_date="2030-02-01T05:00")
    listed = list(client.maintenance.list(per_page=50))
    assert len(listed) == 56 and len({m.id for m in listed}) == 56
    assert len(list(anonymous.maintenance.list(status="scheduled"))) == 56
    assert client.maintenance.count() == 56 and anonymous.maintenance.count() == 56

    # Updating a maintenance: the client posts back every attribute it read, plus the change.
    maintenance = maintenance.update(status="in-progress")
    assert maintenance.status == "in-progress" and maintenance.name == "My maintenance"
    assert client.maintenance.get(maintenance.id).status == "in-progress"

    # Deleting a maintenance.
    maintenance.delete()
    assert client.maintenance.count() == 55
    with pytest.raises(Exception) as refused:
        client.maintenance.get(maintenance.id)
    assert refused.value.args[0] == 404


def test_scope_and_service_lists_page_through_every_item(pm):
    client, anonymous = pm
    scopes = list(anonymous.scope.list())
    assert [s.id for s in scopes] == sorted(s["id"] for s in SCOPES.values())  # 61: two pages of 50
    services = list(client.service.list())
    assert [s.id for s in services] == sorted(s["id"] for s in SERVICES.values())
    assert anonymous.scope.count() == len(SCOPES) and anonymous.service.count() == len(SERVICES)
