"""The Streamlit app runs a scenario with live progress and shows its charts (headless AppTest)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "dashboards" / "app.py")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def test_app_runs_the_smoke_scenario_and_shows_charts():
    at = _app()
    at.selectbox[0].set_value("smoke.toml")
    at.number_input[1].set_value(0.5)  # simulated hours
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert at.get("progress")[0].value == 100
    assert len(at.get("vega_lite_chart")) >= 3
    assert [m.label for m in at.metric][:2] == ["Queries", "Clicks"]


def test_app_reports_a_bad_override_in_one_line():
    at = _app()
    at.text_area[0].input("train.batch_size=0")
    at.button[0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "train.batch_size" in at.error[0].value
