"""The alerting and recording rules: promtool's own checks and unit tests, the runbook, and a
real Prometheus scraping a real daemon, evaluating the rules and the dashboard's queries."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

import schedd
from schedd import metrics
from tests.support.daemon import SCHEDULES

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "etc" / "prometheus" / "schedd-rules.yml"
RULE_TESTS = sorted((ROOT / "tests" / "prometheus").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "operations.md"
DASHBOARD = ROOT / "etc" / "grafana" / "schedd.json"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool is not installed (Debian package prometheus)")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="prometheus is not installed (Debian package prometheus)")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, check=False)


# -- the rules file --------------------------------------------------------------------------


@needs_promtool
def test_promtool_checks_the_rules():
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass():
    assert RULE_TESTS
    out = promtool("test", "rules", *map(str, RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    fired = set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            fired |= {case["alertname"] for case in group.get("alert_rule_test", ()) if case.get("exp_alerts")}
    assert {rule["alert"] for rule in alerts()} <= fired


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors = heading_anchors(RUNBOOK.read_text())
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no section {anchor}"


def test_rules_keep_only_low_cardinality_labels():
    """Aggregations keep job, instance and the bounded labels of schedd's own series."""
    allowed = {"job", "instance", "family", "kind", "state", "reason", "direction", "le"}
    for rule in rules():
        for group in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in group.split(",")}
            assert labels <= allowed, f"{rule.get('record') or rule.get('alert')}: {labels - allowed}"


def test_rules_read_only_series_schedd_exposes():
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exposed = set()
    for collector in metrics.REGISTRY._collector_to_names:  # also the families with no series yet
        describe = getattr(collector, "describe", collector.collect)
        for family in describe():
            exposed |= {family.name + suffix for suffix in suffixes[family.type]}
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        expr = rule["expr"]
        for name in re.findall(r"\b\w+:\w+:\w+\b", expr):
            assert name in recorded, f"{name} is not recorded"
            expr = expr.replace(name, "")
        for name in re.findall(r"\b(?:schedd_\w+|process_\w+)", expr):
            assert name in exposed, f"{name} is not exposed"


def test_metrics_expose_build_info_and_no_created_series():
    text = metrics_text()
    assert f'schedd_build_info{{version="{schedd.__version__}"}} 1.0' in text
    assert "_created" not in text
    assert 'schedd_runs_total{family="service",kind="scheduled",state="failed"} ' in text
    assert 'schedd_clock_jumps_total{direction="backward"} ' in text  # there before the first jump


def metrics_text() -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.REGISTRY).decode()


# -- a real Prometheus over a real daemon --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """`prometheus` on loopback with a temporary storage directory, scraping one target."""

    def __init__(self, tmp: Path, target: str, rule_file: Path) -> None:
        self.tmp = tmp
        self.config = tmp / "prometheus.yml"
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [{"job_name": "schedd", "static_configs": [{"targets": [target]}]}],
        }))
        self.log = tmp / "prometheus.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> Prometheus:
        for _ in range(5):  # the port may be taken between choosing and binding it
            self.port = free_port()
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(
                    ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.tmp / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                    stdout=subprocess.DEVNULL, stderr=log, cwd=self.tmp)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                        if response.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError):
                    pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError("prometheus did not start:\n" + self.log.read_text())

    def api(self, path: str, **params: str) -> dict | list:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        assert isinstance(data, dict) and data["resultType"] == "vector", data
        return data["result"]

    def wait_for(self, what: str, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"{what}: not within {timeout} s\n" + self.log.read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def prometheus_factory(tmp_path):
    started: list[Prometheus] = []

    def make(target: str) -> Prometheus:
        prom = Prometheus(tmp_path, target, RULES)
        started.append(prom)
        return prom.start()

    yield make
    for prom in started:
        prom.stop()


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the Grafana dashboard, its variables given values."""
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["definition"])
            assert found, variable["definition"]
            queries.append(found.group(1))  # label_values() is Grafana's: the series it reads
    return [q.replace("$__rate_interval", "30s").replace("$instance", ".*") for q in queries]


@needs_prometheus
@pytest.mark.skipif(sys.platform != "linux", reason="a real daemon and a real Prometheus")
def test_prometheus_scrapes_schedd_evaluates_the_rules_and_the_dashboard(daemon_factory, prometheus_factory):
    daemon = daemon_factory(["/bin/false"]).start()  # every maintenance run fails
    token = daemon.login()
    status, body = daemon.request("POST", SCHEDULES, {"time_expression": "* * * * * ?",
                                                               "scheduler_type": "time-based"}, token)
    assert status == 200, body
    prom = prometheus_factory(f"127.0.0.1:{daemon.port}")

    prom.wait_for("schedd scraped", lambda: prom.query('up{job="schedd"} == 1'))
    for expr in (f'schedd_build_info{{version="{schedd.__version__}"}} == 1', "schedd_ready == 1",
                 "schedd_database_size_bytes > 0", "schedd_database_filesystem_avail_bytes > 0",
                 'process_start_time_seconds{job="schedd"}', 'schedd_clock_jumps_total{direction="forward"}',
                 "schedd_max_concurrent_runs > 0"):
        assert prom.query(expr), expr
    assert prom.query('{__name__=~"schedd_.+_created"}') == []

    # The failing-runs alert goes pending (its `for` is 15 minutes) on the recorded ratio.
    def failing_alert():
        found = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == "ScheddScheduledRunsFailing"]
        return found if found and found[0]["state"] in ("pending", "firing") else None

    (alert,) = prom.wait_for("ScheddScheduledRunsFailing pending", failing_alert, timeout=40)
    assert alert["labels"]["family"] == "maintenance" and alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == "Scheduled runs are failing."
    assert alert["annotations"]["runbook_url"] == "docs/operations.md#scheddscheduledrunsfailing"
    (ratio,) = prom.query('instance_family:schedd_scheduled_runs_failed:ratio_rate15m{family="maintenance"}')
    assert float(ratio["value"][1]) == 1.0
    assert prom.query('instance_family_kind_state:schedd_runs:rate5m'
                      '{family="maintenance", kind="scheduled", state="failed"} > 0')
    delays = prom.wait_for("start delay quantiles", lambda: prom.query(
        'instance_family_quantile:schedd_start_delay_seconds:histogram_quantile_rate5m{family="maintenance"} >= 0'))
    assert {d["metric"]["quantile"] for d in delays} == {"0.5", "0.9", "0.99"}

    # Every rule evaluates without error.
    for group in prom.api("rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule

    # Every dashboard query is valid PromQL over these series and finds data.
    for query in dashboard_queries():
        assert prom.wait_for(query, lambda q=query: prom.query(q), timeout=10), query
    assert daemon.stop() == 0


# -- schedd's own series -------------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_runs_are_counted_by_kind_and_the_last_success_is_kept(api):
    before = {kind: sample("schedd_runs_total", family="maintenance", state="done", kind=kind)
              for kind in ("scheduled", "manual")}
    response, _ = await api.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme",
                                 json={"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"})
    assert response.status == 200
    api.clock.advance(4 * 3600)
    await api.settle()
    assert sample("schedd_runs_total", family="maintenance", state="done", kind="scheduled") == before["scheduled"] + 1
    assert sample("schedd_last_success_timestamp_seconds", family="maintenance") == api.clock.now()
    api.clock.advance(60)
    response, _ = await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately")
    assert response.status == 200
    await api.settle()
    assert sample("schedd_runs_total", family="maintenance", state="done", kind="manual") == before["manual"] + 1
    assert sample("schedd_last_success_timestamp_seconds", family="maintenance") == api.clock.now()


async def test_the_last_success_is_read_from_the_database_at_start(api, tmp_path):
    from schedd.clock import TestClock
    from schedd.compose import build_core
    from tests.support.api import api_config

    response, _ = await api.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme",
                                 json={"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"})
    assert response.status == 200
    api.clock.advance(4 * 3600)
    await api.settle()
    ended = api.clock.now()
    await api.core.store.db.flush()
    metrics.LAST_SUCCESS.labels("maintenance").set(0)
    metrics.LAST_SUCCESS.remove("service")  # no service job has ever succeeded here
    again = build_core(api_config(tmp_path), db_path=api.core.store.db.path, clock=TestClock(ended + 86400))
    await again.start(run_loop=False)
    try:
        assert again.history_loaded is not None
        await again.history_loaded
        assert sample("schedd_last_success_timestamp_seconds", family="maintenance") == ended
        assert metrics.REGISTRY.get_sample_value("schedd_last_success_timestamp_seconds", {"family": "service"}) is None
    finally:
        await again.stop()


@pytest.mark.stores("sqlite")  # the size of the database file and its filesystem: a server has no local file
async def test_metrics_report_readiness_slots_and_the_database_size(api):
    response = await api.client.get("/metrics")
    text = await response.text()
    assert "\nschedd_ready 1.0\n" in text
    assert "\nschedd_max_concurrent_runs 64.0\n" in text
    size = float(re.search(r"\nschedd_database_size_bytes (\S+)\n", text).group(1))
    assert size >= Path(api.core.store.db.path).stat().st_size > 0
    avail = float(re.search(r"\nschedd_database_filesystem_avail_bytes (\S+)\n", text).group(1))
    total = float(re.search(r"\nschedd_database_filesystem_size_bytes (\S+)\n", text).group(1))
    assert 0 < avail <= total
