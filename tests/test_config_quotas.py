"""[quotas] in the configuration: defaults, per-org overrides, validation, the example file."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
import tomli_w

from schedd import config
from schedd.config import ConfigError, OrgLimits

EXAMPLE = Path(__file__).resolve().parent.parent / "etc" / "schedd.toml"


def test_defaults_are_generous_and_stated():
    quotas = config.default().quotas
    assert (quotas.max_schedules, quotas.max_jobs, quotas.min_interval) == (10_000, 10_000, 60.0)
    assert (quotas.max_concurrent_runs, quotas.max_queued_runs) == (None, 1_000)
    assert config.from_dict({}).quotas == quotas
    assert config.load(EXAMPLE).quotas == quotas  # the example shows the defaults


def test_an_org_takes_its_own_values_and_the_defaults_for_the_rest():
    cfg = config.from_dict({"quotas": {"max_schedules": 5, "min_interval": "5m", "orgs": {
        "acme": {"max_schedules": 50, "max_concurrent_runs": 8}}}})
    assert cfg.quotas.for_org("acme") == OrgLimits(50, 300.0, 8, 1000)
    assert cfg.quotas.for_org("other") == OrgLimits(5, 300.0, None, 1000)
    assert cfg.quotas.for_org(None) == OrgLimits(5, 300.0, None, 1000)


@pytest.mark.parametrize(("data", "key", "reason"), [
    ({"max_schedules": -1}, "quotas.max_schedules", "0 or more"),
    ({"max_jobs": "many"}, "quotas.max_jobs", "must be an integer"),
    ({"min_interval": "2d"}, "quotas.min_interval", "longer than a day"),
    ({"min_interval": "-1s"}, "quotas.min_interval", "must not be negative"),
    ({"max_concurrent_runs": 0}, "quotas.max_concurrent_runs", "1 or more"),
    ({"max_queued_runs": 1.5}, "quotas.max_queued_runs", "must be an integer"),
    ({"max_runs": 3}, "quotas.max_runs", "unknown key"),
    ({"orgs": {"acme": {"max_jobs": 3}}}, "quotas.orgs.acme.max_jobs", "unknown key"),
    ({"orgs": {"acme": {"min_interval": "x"}}}, "quotas.orgs.acme.min_interval", "not a duration"),
    ({"orgs": {"bad name": {}}}, "quotas.orgs", "not a valid name"),
    ({"orgs": {"acme": 3}}, "quotas.orgs.acme", "must be a table"),
])
def test_a_bad_value_is_rejected_naming_its_key(data, key, reason):
    with pytest.raises(ConfigError) as info:
        config.from_dict({"quotas": data})
    assert info.value.field == key
    assert reason in info.value.reason


def test_quotas_with_org_overrides_write_and_reload_equal(tmp_path):
    original = config.from_dict({"quotas": {"max_concurrent_runs": 10, "min_interval": 30, "orgs": {
        "acme": {"min_interval": "1s", "max_queued_runs": 0}, "big": {"max_schedules": 100_000}}}})
    path = tmp_path / "q.toml"
    path.write_text(tomli_w.dumps(config.to_dict(original)), encoding="utf-8")
    assert config.load(path) == original


def test_the_example_documents_every_quota_key():
    text = EXAMPLE.read_text(encoding="utf-8")
    example = tomllib.loads(text)
    assert "quotas" in example
    section = text[text.index("[quotas]"):]
    for cls in (config.QuotasConfig, config.OrgQuotaConfig):
        for f in fields(cls):
            if f.name not in ("name", "orgs"):
                assert f"{f.name} = " in section, f.name
    assert "[quotas.orgs." in section
