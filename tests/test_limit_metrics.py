"""Every limit a caller reaches is counted in schedd_limit_reached_total, by the config key that set it."""

from __future__ import annotations

from prometheus_client import generate_latest

from schedd import metrics

MAINTENANCE = "/aggregates/maintenance/scheduler/jobs/orgId/default"


def reached(limit: str) -> float:
    value = metrics.REGISTRY.get_sample_value("schedd_limit_reached_total", {"limit": limit})
    return value or 0.0


async def test_a_body_over_max_body_is_a_413_counted_as_server_max_body(make_api):
    api = await make_api(server={"max_body": 1024})
    before = reached("server.max_body")
    response, body = await api.call("POST", MAINTENANCE, data=b"x" * 4096,
                                    headers={"Content-Type": "application/json"})
    assert response.status == 413, body
    assert reached("server.max_body") == before + 1


async def test_a_locked_out_login_is_a_429_counted_as_auth_login_max_failures(make_api):
    api = await make_api(auth={"login_max_failures": 2})
    before = reached("auth.login_max_failures")
    for _ in range(2):
        response, _ = await api.call("POST", "/authService/accounts/login", None,
                                     data={"userid": "alice", "password": "not her password"})
        assert response.status == 401
    response, body = await api.call("POST", "/authService/accounts/login", None,
                                    data={"userid": "alice", "password": "not her password"})
    assert response.status == 429, body
    assert reached("auth.login_max_failures") == before + 1
    assert b'schedd_limit_reached_total{limit="auth.login_max_failures"}' in generate_latest(metrics.REGISTRY)
