"""The web views in a real browser: headless Debian Chromium, driven by Playwright, against `schedd serve`.

Screenshots land in tests/artifacts/ (gitignored); with SCHEDD_UPDATE_DOCS=1 one of each
view is also copied to docs/ for the README. The module is skipped when Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tomli_w

from tests.support.daemon import PASSWORD, Daemon, schedd

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

CHROMIUM = "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS = ROOT / "docs"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CONFIG = {
    "scheduler": {"shutdown_grace": "2s"},
    "executors": {"maintenance": {"command": [sys.executable, "-c", "print('maintained {org_id}')"],
                                  "timeout": "60s"}},
    "scopes": {"platform": {"id": 1}, "edge": {"id": 2}},
    "services": {
        "jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"},
        "orders": {"base_url": "http://127.0.0.1:9/orders", "id": 11, "scope": "platform"},
        "cdn": {"base_url": "http://127.0.0.1:9/cdn", "id": 20, "scope": "edge"},
    },
}
INTERNAL = "Root password is in the vault"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    daemon = Daemon(tmp, [])
    daemon.config.write_bytes(tomli_w.dumps(CONFIG).encode())
    for args, stdin in ((("user", "add", "ops", "--admin", "--password-stdin"), PASSWORD + "\n"),
                        (("org", "add", "acme"), None)):
        out = schedd(*args, "--db", daemon.db, "--config", str(daemon.config), stdin=stdin)
        assert out.returncode == 0, out.stderr
    daemon.start()
    yield daemon
    if daemon.proc and daemon.proc.poll() is None:
        assert daemon.stop() == 0, daemon.log.read_text()


@pytest.fixture(scope="module")
def token(daemon) -> str:
    return daemon.login()


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def url(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.port}{path}"


def shoot(page, name: str, *, docs: str | None = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("SCHEDD_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / docs)
    return path


def minute(delta: timedelta) -> str:
    """A window date (UTC, the daemon's zone here) `delta` from now."""
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M")


def create_window(daemon: Daemon, token: str, **fields: str) -> dict:
    form = {"scope": "1", "service": "10", "service_status": "down", **fields}
    status, window = daemon.request("POST", "/api/maintenance/create", form=form, token=token)
    assert status == 200, window  # urllib follows the 302 to the new window
    return window


def until(page, check, timeout: float = 15.0) -> None:
    """Reload the page until `check()` holds (the view has no script to refresh itself)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, page.content()
        time.sleep(0.2)
        page.reload()


def login(page, daemon: Daemon) -> None:
    page.goto(url(daemon, "/ui"))
    assert "/ui/login" in page.url
    page.fill("input[name=userid]", "ops")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url(daemon, "/ui"))


def test_the_status_page_shows_a_window_and_hides_its_internal_comment(daemon, token, page, chromium):
    window = create_window(daemon, token, name="Database failover", description="Primary moves to the new host.",
                           scheduled_start_date=minute(timedelta(hours=-1)),
                           scheduled_end_date=minute(timedelta(hours=2)))
    create_window(daemon, token, name="CDN certificate rotation", scope="2", service="20",
                  service_status="degraded", scheduled_start_date=minute(timedelta(days=2)),
                  scheduled_end_date=minute(timedelta(days=2, hours=1)))
    create_window(daemon, token, name="Orders schema migration", service="11",
                  scheduled_start_date=minute(timedelta(days=-3)),
                  scheduled_end_date=minute(timedelta(days=-3, hours=1)))
    for comment, internal in (("Failover started, writes paused.", "0"), (INTERNAL, "1")):
        status, _ = daemon.request("POST", f"/api/maintenance/{window['id']}/comment", token=token,
                                   form={"comment": comment, "internal": internal})
        assert status == 200

    page.goto(url(daemon, "/"))
    assert page.url == url(daemon, "/status")
    assert page.locator("h1").inner_text() == "Service status"
    services = page.locator("ul.services li")
    assert "down" in services.filter(has_text="jsonservices").inner_text()
    assert "up" in services.filter(has_text="orders").inner_text()
    assert "Database failover" in page.locator("table").first.inner_text()
    assert page.get_by_text("CDN certificate rotation").is_visible()
    assert page.get_by_text("Orders schema migration").is_visible()
    shoot(page, "status", docs="status.png")

    page.get_by_role("link", name="Database failover").first.click()
    page.wait_for_url(url(daemon, f"/status/maintenance/{window['id']}"))
    timeline = page.locator("ol.timeline").inner_text()
    assert "Failover started, writes paused." in timeline
    assert INTERNAL not in page.content()
    shoot(page, "status-maintenance")

    phone = chromium.new_context(viewport=PHONE, is_mobile=True)
    try:
        small = phone.new_page()
        small.goto(url(daemon, "/status"))
        # Fluid layout: nothing wider than the phone's screen.
        assert small.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot(small, "status-phone")
    finally:
        phone.close()


def test_an_operator_logs_in_runs_a_schedule_now_and_sees_the_run(daemon, token, page):
    # Some history for the charts: a per-second schedule in acme, and a build that fails (no command).
    status, body = daemon.request("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme",
                                  {"time_expression": "* * * * * ?", "scheduler_type": "time-based"}, token)
    assert status == 200, body
    status, _ = daemon.request("POST", "/org/acme/project/sales/cube/orders/aggregates-creation/execute", {}, token)
    assert status == 200
    status, body = daemon.request("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                                  {"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"}, token)
    assert status == 200, body

    login(page, daemon)
    rows = page.locator("table.schedules tbody tr")
    per_second = rows.filter(has_text="maintenance of acme")
    until(page, lambda: "done" in per_second.locator("td[data-label='Last outcome']").inner_text())
    per_second.get_by_role("button", name="Deactivate").click()
    page.wait_for_url(re.compile(r".*/ui\?notice=deactivated$"))
    assert "Schedule deactivated." in page.locator("p.notice").inner_text()
    assert "inactive" in rows.filter(has_text="maintenance of acme").inner_text()

    nightly = rows.filter(has_text="maintenance of default")
    assert "0 0 4 ? * * *" in nightly.inner_text() and "UTC" in nightly.inner_text()
    nightly.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r".*/ui/runs/[0-9a-f-]{36}\?notice=started$"))
    run_path = page.url.split(str(daemon.port), 1)[1].split("?")[0]
    assert "ManualMaintenance" in page.locator("dl.facts").inner_text()
    until(page, lambda: "done" in page.locator("dl.facts .badge").first.inner_text())
    shoot(page, "operator-run")

    page.get_by_role("link", name="Runs", exact=True).click()
    page.wait_for_url(url(daemon, "/ui/runs"))
    first = page.locator("table.runs tbody tr").first
    assert "maintenance of default" in first.inner_text() and "ManualMaintenance" in first.inner_text()
    assert first.get_by_role("link").get_attribute("href") == run_path
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Filter").click()
    assert "build acme/sales/orders" in page.locator("table.runs").inner_text()
    shoot(page, "operator-runs")

    page.goto(url(daemon, "/ui"))
    assert "runs in the last 24 hours" in page.locator("figure.chart").first.inner_text()
    assert page.locator("figure.chart rect.s-done").count() >= 1
    assert page.locator("figure.chart rect.s-failed").count() >= 1
    shoot(page, "operator", docs="operator.png")


class _Attacker(BaseHTTPRequestHandler):
    """Serves a page of another origin whose forms post to schedd."""

    target = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html><title>Win a prize</title>
<form method="post" action="{self.target}/deactivate"><input type="hidden" name="csrf" value="forged">
<button id="forged">Claim with a forged token</button></form>
<form method="post" action="{self.target}/run"><button id="bare">Claim without a token</button></form>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_forged_cross_site_form_post_is_refused_and_changes_nothing(daemon, token, page):
    status, body = daemon.request("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                                  {"time_expression": "0 0 5 ? * * *", "scheduler_type": "time-based"}, token)
    assert status == 200, body
    job_id = body["response"]["job_id"]
    login(page, daemon)
    row = page.locator("table.schedules tbody tr").filter(has_text="0 0 5 ? * * *")
    action = row.locator("form").first.get_attribute("action")
    target = url(daemon, action.rsplit("/", 1)[0])
    _, before = daemon.request("GET", "/aggregates/maintenance/orgId/default/history?limit=1000", token=token)

    _Attacker.target = target
    # Same host, another port: another origin but the same site, so the Strict cookie still
    # goes along and only the Origin check and the CSRF token stand in the way.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for button in ("#forged", "#bare"):
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            with page.expect_response(lambda r: r.url.startswith(target)) as answer:
                page.click(button)
            assert answer.value.status == 403
            assert "Forbidden" in page.locator("h1").inner_text()
        shoot(page, "operator-forged-post")
    finally:
        server.shutdown()
        server.server_close()

    # Both posts were answered (403) before this point, and a run now is recorded before its
    # answer: what the history shows now is all the forged posts could have changed.
    _, listed = daemon.request("GET", "/aggregates/maintenance/scheduler/jobs/orgId/default?active=true",
                               token=token)
    assert job_id in [s["job_id"] for s in listed["response"]]
    _, after = daemon.request("GET", "/aggregates/maintenance/orgId/default/history?limit=1000", token=token)
    assert after["response"]["data"] == before["response"]["data"]
    assert daemon.wait_for(lambda: "action=web_post_refused" in daemon.log.read_text())  # written by the log thread
