"""A real browser drives the app: Debian's chromium through playwright runs the smoke scenario from the Run page.

`make test` installs chromium with apt when it is missing and the user may; without it this test is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def app_url(tmp_path):
    port = _free_port()
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "ADFLOOR_JAX_CACHE": str(tmp_path / "jax")}
    server = subprocess.Popen([sys.executable, "-m", "simulator.cli", "app", "--port", str(port)], cwd=ROOT, env=env,
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


def test_run_page_in_a_real_browser(app_url, tmp_path):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(app_url)
        page.get_by_text("Choose a scenario and press").wait_for(timeout=120_000)
        hours = page.get_by_label("Simulated hours")
        hours.fill("0.5")
        hours.press("Enter")
        page.get_by_role("button", name="Run").click()
        page.get_by_text("Learning curve vs the oracle").wait_for(timeout=180_000)
        charts = page.locator("[data-testid='stVegaLiteChart']")
        for _ in range(60):  # let the charts draw: they follow the text, seconds later on a loaded 2-core machine
            if charts.count() >= 3:
                break
            page.wait_for_timeout(500)
        assert charts.count() >= 3
        assert page.get_by_text("PV log loss").count() >= 1
        shot = tmp_path / "run_page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
