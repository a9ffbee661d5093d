"""The Streamlit app's pages run headless (AppTest): the Run page runs a scenario live; the explorer solves auctions."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import AUCTION_CASES, ROOT

APP = str(ROOT / "dashboards" / "app.py")
EXPLORER = str(ROOT / "dashboards" / "views" / "auction_explorer.py")
SWEEPS = str(ROOT / "dashboards" / "views" / "sweeps.py")
COMPARE = str(ROOT / "dashboards" / "views" / "compare.py")
CLAIMS = str(ROOT / "dashboards" / "views" / "claims.py")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _finish(at: AppTest, limit: float = 600.0) -> AppTest:
    """Rerun the page until the run on the background thread has ended (the page's own fragment polls each second)."""
    deadline = time.monotonic() + limit
    while "live" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert "live" not in at.session_state, "the run did not finish"
    return at.run()


def _number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def test_run_page_runs_keeps_a_history_marks_stale_results_and_offers_downloads():
    at = _app()
    assert [s.value for s in at.selectbox][:1] == ["smoke"]
    assert "sweep_example" not in at.selectbox[0].options  # a sweep file is not a scenario
    assert all(n.help for n in at.number_input)  # every input says what it is, in which units
    _number(at, "Simulated hours").set_value(0.5)
    _button(at, "Run").click().run()
    assert not at.exception and not at.error
    _finish(at)
    assert not at.exception and not at.error and not at.warning
    assert [m.label for m in at.metric][:4] == ["Queries", "Clicks", "Revenue (money units)", "Welfare (money units)"]
    assert len(at.get("vega_lite_chart")) >= 3
    assert {b.label for b in at.get("download_button")} == {"Metrics (CSV)", "Metrics (parquet)", "Summary (JSON)",
                                                           "Config (TOML)"}
    at.slider[0].set_value(20.0).run()  # auction snapshot of the tick at minute 20
    snapshot = at.dataframe[0].value
    assert len(snapshot) > 0 and snapshot["position"].min() == 1 and (snapshot["price per click"] >= 0).all()
    assert set(snapshot["treatment"]) <= {"text", "text_extensions", "image"}

    _number(at, "Seed").set_value(1)
    _button(at, "Run").click().run()
    _finish(at)
    assert [r.label for r in at.session_state["runs"]] == ["run #2", "run #1"]
    assert at.radio[0].options == ["run #2", "run #1"] and at.radio[0].value == "run #2"
    assert any("Seed: 1" in c.value for c in at.caption)
    at.radio[0].set_value("run #1").run()  # the earlier run, marked stale: the form now holds seed 1
    assert any("Stale" in w.value and "Seed" in w.value for w in at.warning)


def test_run_page_refuses_bad_inputs_in_one_line_and_runs_nothing():
    for label, value, field in [("Simulated hours", 0.0, "run.duration_hours"), ("Seed", -5, "run.seed"),
                                ("Reserve per click", -1.0, "auction.reserve")]:
        at = _app()
        _number(at, label).set_value(value)
        _button(at, "Run").click().run()
        assert not at.exception
        assert len(at.error) == 1 and at.error[0].value.startswith(f"Not run: {field}:"), at.error
        assert "live" not in at.session_state and "runs" not in at.session_state
    at = _app()
    at.text_area[0].input("train.batch_size=0")
    _button(at, "Run").click().run()
    assert len(at.error) == 1 and "train.batch_size" in at.error[0].value


def test_stop_ends_a_run_and_keeps_what_it_made():
    at = _app()
    _number(at, "Simulated hours").set_value(24.0)
    _button(at, "Run").click().run()
    _button(at, "Stop").click().run()
    _finish(at, limit=300.0)
    assert not at.exception and not at.error
    assert any("stopped by request at simulated hour" in w.value for w in at.warning)
    output = at.session_state["runs"][0].result
    assert output.stopped and 0 < output.summary()["queries"]
    assert output.metrics()["sim_minute"].max() < 24 * 60 - 60  # ended well before the day did


def test_auction_explorer_shows_vcg_and_gsp_side_by_side():
    at = _app().switch_page(EXPLORER).run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["VCG", "GSP, classic (text only)"]
    assert any("every (ad, treatment, position)" in c.value for c in at.caption)
    revenue = [m.value for m in at.metric if m.label == "Revenue per view"]
    assert len(revenue) == 2 and all(float(v) > 0 for v in revenue)
    slates = [d.value for d in at.dataframe if "threshold/click" in d.value.columns]
    assert "Position 1: ad" in at.text[0].value and len(slates) == 2 and slates[0]["position"].min() == 1
    at.checkbox[0].uncheck().run()  # without a page budget every ad shows as an image
    assert not at.exception
    assert "'image'" in at.text[0].value and "'text'" not in at.text[0].value.split("Not shown")[0]


def test_auction_explorer_loads_an_auction_from_json_and_solves_it_as_the_cli_does():
    from auction.instance import from_json
    from auction.instance_solver import solve_instance

    case = next(c for c in AUCTION_CASES if "vcg" in c["expected"] and len(c["input"]["ads"]) >= 3)
    at = _app().switch_page(EXPLORER).run()
    at.radio[0].set_value("Load a JSON file").run()
    at.text_area[0].input(json.dumps(case["input"])).run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["VCG"]  # classic GSP needs an auction built here
    outcome, _ = solve_instance(from_json(case), "vcg", "cost")
    shown = at.dataframe[1].value
    assert list(shown["ad"]) == [ad for ad, _ in outcome.slate.picks]
    assert [x["ad"] for x in case["expected"]["vcg"]["allocation"]] == list(shown["ad"])
    assert float(at.metric[0].value) == pytest.approx(sum(outcome.payments.values()), abs=1e-4)
    at.text_area[0].input("{not json").run()
    assert len(at.error) == 1 and at.error[0].value.startswith("Invalid auction: bad JSON")


def test_sweeps_page_plots_intervals_heat_maps_and_learning_curves(tmp_path, monkeypatch):
    from simulator.experiments.sweep import plan, run_sweep

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(f'base = "{ROOT / "scenarios" / "smoke.toml"}"\nseeds = 2\n[set]\n"run.duration_hours" = 0.05\n'
                          '[grid]\n"train.learning_rate" = [0.01, 0.1]\n"model.transfer" = ["sigmoid", "exp"]\n')
    run_sweep(plan(sweep_file), tmp_path / "runs" / "sweep-a", workers=2)
    monkeypatch.chdir(tmp_path)  # the page looks for runs/*/cells.parquet
    at = _app().switch_page(SWEEPS).run()
    assert not at.exception and not at.error
    assert at.selectbox[-4].value == "runs/sweep-a" and not [b for b in at.button if b.label.startswith("Resume")]
    assert at.selectbox[-3].value == "train.learning_rate" and at.selectbox[-2].value == "pv_logloss"
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    spec = json.loads(charts[0].proto.spec)
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"  # 0.01 … 0.1: multiplicative
    assert spec["layer"][1]["mark"]["type"] == "errorbar" and len(charts) == 2  # with the cells' learning curves
    table = at.dataframe[0].value
    assert len(table) == 2 and (table["count"] == 4).all() and (table["ci95"] > 0).all()
    at.selectbox[-1].set_value("model.transfer").run()  # the heat map over both keys
    assert not at.exception and len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 3


def test_a_sweep_starts_from_the_app_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = _app().switch_page(SWEEPS).run()
    assert any("No sweeps" in i.value for i in at.info)
    at.text_input[0].input("bad name/")
    _button(at, "Start").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("Not started: name")
    at.text_input[0].input("s")
    _number(at, "Simulated hours per cell").set_value(0.05)
    _number(at, "Seeds per setting").set_value(1)
    at.text_input[1].input("[0.02, 0.05]")
    _button(at, "Start").click().run()
    assert not at.exception and not at.error
    deadline = time.monotonic() + 600
    while "sweep_job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    at.run()
    assert not at.exception and not at.error and at.session_state["sweep_done"].error is None
    assert "2 cells: 2 done" in at.markdown[-1].value or any("2 cells: 2 done" in m.value for m in at.markdown)
    cells = tmp_path / "runs" / "sweep-s" / "cells"
    removed = sorted(cells.iterdir())[0]
    for file in removed.iterdir():
        file.unlink()
    removed.rmdir()
    at = _app().switch_page(SWEEPS).run()  # one cell lost: Resume runs it alone
    _button(at, "Resume (1 of 2 cells not finished)").click().run()
    while "sweep_job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    at.run()
    assert any("2 cells: 2 done" in m.value for m in at.markdown)


def test_compare_page_runs_paired_replays_and_reads_them_as_a_statistician_would():
    at = _app().switch_page(COMPARE).run()
    assert not at.exception
    _number(at, "Simulated hours per run").set_value(0.2)
    _number(at, "Seeds").set_value(2)
    _button(at, "Compare").click().run()
    deadline = time.monotonic() + 600
    while "compare_job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert {"ad_set_churn", "prediction_difference", "revenue"} <= set(table["metric"])
    assert list(table.columns[:4]) == ["metric", "A", "B", "value"] and (table["95 % low"] <= table["95 % high"]).all()
    assert any("2 seeds" in w.value and "at least 5" in w.value for w in at.warning)  # too few to resolve anything
    assert len(at.get("vega_lite_chart")) == 2 and len(at.get("download_button")) == 2
    at.text_input[0].input("nonsense")  # a value the key's field refuses (submitted with the form)
    _button(at, "Compare").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("Not compared: model.init_seed")


def test_glossary_defines_the_measures_and_filters_them():
    at = _app().switch_page(str(ROOT / "dashboards" / "views" / "glossary.py")).run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert all(f"`{term}`" in text for term in ("pv_logloss", "oracle", "pd", "churn", "calibration",
                                                "credit_attribution"))
    at.text_input[0].input("churn").run()
    text = "\n".join(m.value for m in at.markdown)
    assert "`ad_set_churn`" in text and "`pv_logloss`" not in text
