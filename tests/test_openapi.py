"""/api/openapi.json: a valid OpenAPI 3.1 document that covers every route the app serves."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from schedd.api import openapi

SAMPLE_IDS = {"orgId": "default", "projectId": "p1", "cubeId": "c1", "jobRunId": "1", "id": "1"}


def served_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every API route: HEAD and browser pages left out."""
    return {(route.method, _template(route.resource.canonical)) for route in app.router.routes()
            if route.method != "HEAD" and not openapi.BROWSER_PAGES.match(route.resource.canonical)}


def _template(canonical: str) -> str:
    """aiohttp's `{id:[0-9]{1,18}}` as OpenAPI's `{id}`."""
    return re.sub(r"\{(\w+):[^/]*\}(?=/|$)", r"{\1}", canonical)


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


@pytest.mark.slow  # the full OpenAPI 3.1 validator
async def test_the_document_served_is_valid_openapi_3_1(api):
    response, document = await api.call("GET", "/api/openapi.json", who=None)
    assert response.status == 200
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_of_the_app_is_documented_and_nothing_else(api):
    served = served_routes(api.client.app)
    documented = documented_routes(openapi.document())
    assert sorted(served - documented) == [], "routes without documentation in schedd/api/openapi.py"
    assert sorted(documented - served) == [], "documented routes the app does not serve"
    assert not [path for _, path in documented if openapi.BROWSER_PAGES.match(path)]


def test_both_token_headers_are_security_schemes_and_public_routes_say_so():
    document = openapi.document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["voltmx"] == {**schemes["voltmx"], "type": "apiKey", "in": "header",
                                 "name": "X-VoltMX-Authorization"}
    assert schemes["bearer"]["scheme"] == "bearer"
    public = {op.path for op in openapi.operations() if not op.auth}
    assert public == {"/healthz", "/readyz", "/metrics", "/api/openapi.json", "/authService/accounts/login",
                      "/api/maintenance", "/api/maintenance/calendar", "/api/maintenance/{id}",
                      "/api/maintenance/{id}/calendar", "/api/scope", "/api/scope/{id}", "/api/service",
                      "/api/service/{id}"}
    for op in openapi.operations():
        assert 401 in op.answers or not op.auth, f"{op.method} {op.path} needs a token but documents no 401"


def test_operation_ids_are_unique():
    ids = [op.op_id for op in openapi.operations()]
    assert len(ids) == len(set(ids))


def _fill(path: str, op: openapi.Op) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "jobId":
            param = next(p for p in op.params if p.name == "jobId")
            return "1" if param.schema.get("type") == "integer" else "9b2c1e4e-1f7a-4c55-8a8e-3f0f7c1d2a11"
        return SAMPLE_IDS[name]
    return re.sub(r"\{(\w+)\}", value, path)


def _validator(document: dict, schema: dict) -> Draft202012Validator:
    # "#/components/schemas/X" resolves against this root.
    return Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.parametrize("op", openapi.operations(), ids=lambda op: f"{op.method} {op.path}")
async def test_every_operation_answers_a_documented_status_in_its_documented_shape(make_api, op):
    api = await make_api()
    document = openapi.document()
    response, body = await api.call(op.method, _fill(op.path, op))
    assert response.status in op.answers, f"{op.method} {op.path}: undocumented {response.status}: {body}"
    answer = op.answers[response.status]
    if answer.schema is not None and answer.media == openapi.JSON:
        errors = sorted(_validator(document, answer.schema).iter_errors(body), key=str)
        assert not errors, f"{op.method} {op.path} {response.status}: {errors[0].message}\n{body}"
    if op.auth:
        response, _ = await api.call(op.method, _fill(op.path, op), who=None)
        assert response.status == 401
