"""A real browser drives each page's main task (a run with a changed input, an auction loaded from JSON and downloaded
back, a compare, a sweep started from the app, the claims report) and fails on any traceback or console error.

`make test` installs chromium with apt when it is missing and the user may; without it this test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from auction.instance import from_json, to_json
from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# How long a run, a comparison or a sweep may take (each ~15 s alone; several times that on a loaded 2-core machine).
WORK_TIMEOUT = 600_000
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def app_url(tmp_path):
    """The app served from a scratch folder (its runs/ land there) holding a copy of the shipped claims report."""
    port = _free_port()
    work = tmp_path / "work"
    shutil.copytree(ROOT / "docs" / "results", work / "docs" / "results",
                    ignore=shutil.ignore_patterns("quick", "cowclip", "deep_towers", "techniques"))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "ADFLOOR_JAX_CACHE": str(tmp_path / "jax")}
    server = subprocess.Popen([sys.executable, "-m", "simulator.cli", "app", "--port", str(port)], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not come up on 127.0.0.1")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the whole session: nothing of the app outlives the test
        server.wait(timeout=30)


class Timings:
    """Wall seconds from an action to the text that shows it done (page loads and interactions, after the first run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def measure(self, name: str, action, done, timeout: float = 60_000) -> None:
        started = time.perf_counter()
        action()
        done.wait_for(timeout=timeout)
        self.seconds[name] = round(time.perf_counter() - started, 3)


def _page(page, name: str) -> None:
    _settled(page)
    page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()


def _settled(page) -> None:
    """Let the page's script run end and its images load before leaving it: Streamlit drops a page's media when
    another page runs, so an image still on its way, or one a still-running script adds after the check, would end
    in a 404 (a console error) that says nothing about the app."""
    page.locator("[data-testid='stStatusWidgetRunningIcon']").wait_for(state="hidden", timeout=WORK_TIMEOUT)
    images = page.locator("img")
    for i in range(images.count()):
        try:
            images.nth(i).scroll_into_view_if_needed(timeout=5_000)
        except playwright.TimeoutError:  # gone in a rerun meanwhile
            pass
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)", timeout=60_000)


def _no_traceback(page) -> None:
    """No exception box on the page (Streamlit shows a traceback there, not in the browser console)."""
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").first.inner_text()


def test_every_page_does_its_main_task_in_a_real_browser(app_url, tmp_path):
    errors: list[str] = []
    timings = Timings()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
        page.on("console", lambda message: errors.append(f"console: {message.text} ({message.location.get('url')})")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        page.goto(app_url)
        page.get_by_text("Choose a scenario, set the inputs").wait_for(timeout=120_000)

        # Run: a changed input, then a second run; results, charts, history
        page.get_by_role("spinbutton", name="Simulated hours", exact=True).fill("0.3")
        timings.measure("first run (0.3 h; compiles, not an interaction)",
                        lambda: page.get_by_role("button", name="Run").click(), page.get_by_text("Results of run #1"),
                        timeout=WORK_TIMEOUT)
        page.get_by_text("Learning curve vs the oracle").wait_for()
        assert page.get_by_text("Simulated hours: 0.3").count() == 1
        page.get_by_role("spinbutton", name="Seed", exact=True).fill("1")
        page.get_by_role("button", name="Run").click()
        page.get_by_text("Results of run #2").wait_for(timeout=WORK_TIMEOUT)
        charts = page.locator("[data-testid='stVegaLiteChart']")
        for _ in range(60):  # the charts draw seconds after the text on a loaded 2-core machine
            if charts.count() >= 3:
                break
            page.wait_for_timeout(500)
        assert charts.count() >= 3
        page.screenshot(path=str(tmp_path / "run_page.png"), full_page=True)
        _no_traceback(page)
        timings.measure("run: show an earlier run", lambda: page.get_by_text("run #1", exact=True).click(),
                        page.get_by_text("Results of run #1"))

        # Auction explorer: load an auction from JSON, see it solved, download it back
        case = json.loads((ROOT / "tests" / "data" / "auction_cases" / "cases.json").read_text())["cases"][0]
        source = tmp_path / "auction.json"
        source.write_text(json.dumps(case["input"]))
        timings.measure("page load: auction explorer", lambda: _page(page, "Auction explorer"),
                        page.get_by_role("button", name="Download this auction (JSON)"))
        page.get_by_text("Load a JSON file").click()
        page.get_by_text("Choose a JSON file or paste one").wait_for()
        timings.measure("auction explorer: load an auction from a file",
                        lambda: page.locator("input[type='file']").set_input_files(str(source)),
                        page.get_by_text("positions, page height budget"))
        page.get_by_text("Revenue per view").first.wait_for()
        with page.expect_download() as download:
            page.get_by_role("button", name="Download this auction (JSON)").click()
        assert json.loads(Path(download.value.path()).read_text()) == to_json(from_json(case))
        _no_traceback(page)

        # Compare: two seeds of a short paired replay, read with the few-seeds warning
        timings.measure("page load: compare", lambda: _page(page, "Compare"),
                        page.get_by_text("Choose what differs between A and B"))
        page.get_by_role("spinbutton", name="Simulated hours per run").fill("0.1")
        page.get_by_role("spinbutton", name="Seeds", exact=True).fill("2")
        page.get_by_role("button", name="Compare").click()
        page.get_by_text("Use at least 5 seeds").wait_for(timeout=WORK_TIMEOUT)
        page.locator("[data-testid='stDataFrame']").first.wait_for()  # the comparison table
        _no_traceback(page)

        # Sweeps: a two-cell sweep started from the app
        timings.measure("page load: sweeps", lambda: _page(page, "Sweeps"), page.get_by_text("Start a sweep"))
        page.get_by_role("textbox", name="Name", exact=True).fill("browser")
        page.get_by_role("spinbutton", name="Simulated hours per cell").fill("0.05")
        page.get_by_role("spinbutton", name="Seeds per setting").fill("1")
        page.get_by_role("textbox", name="First key's values").fill("[0.02, 0.05]")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("2 cells: 2 done").wait_for(timeout=WORK_TIMEOUT)
        _no_traceback(page)

        # Claims and glossary: the shipped report reads as a report
        timings.measure("page load: claims", lambda: _page(page, "Claims"), page.get_by_text("claims reproduced"))
        page.get_by_text("not reproduced").first.wait_for()  # each claim's verdict heads its prose
        _no_traceback(page)
        timings.measure("page load: glossary", lambda: _page(page, "Glossary"), page.get_by_text("Terms and headline numbers"))
        _no_traceback(page)
        browser.close()
    assert not errors, errors
    record = os.environ.get("ADFLOOR_APP_TIMINGS")
    if record:
        Path(record).write_text(json.dumps(timings.seconds, indent=1) + "\n")
    print(f"timings (s): {timings.seconds}")
