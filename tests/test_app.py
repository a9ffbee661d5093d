"""The Streamlit app's pages run headless (AppTest): the Run page runs a scenario live; the explorer solves auctions."""

from __future__ import annotations


from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

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


def test_app_runs_the_smoke_scenario_and_shows_charts():
    at = _app()
    at.selectbox[0].set_value("smoke.toml")
    at.number_input[1].set_value(0.5)  # simulated hours
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert at.get("progress")[0].value == 100
    assert len(at.get("vega_lite_chart")) >= 3
    assert [m.label for m in at.metric][:2] == ["Queries", "Clicks"]
    at.slider[0].set_value(20.0).run()  # auction snapshot of the tick at minute 20
    snapshot = at.dataframe[0].value
    assert len(snapshot) > 0 and snapshot["position"].min() == 1 and (snapshot["price per click"] >= 0).all()
    assert set(snapshot["treatment"]) <= {"text", "text_extensions", "image"}


def test_app_reports_a_bad_override_in_one_line():
    at = _app()
    at.text_area[0].input("train.batch_size=0")
    at.button[0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "train.batch_size" in at.error[0].value


def test_auction_explorer_shows_vcg_and_gsp_side_by_side():
    at = _app().switch_page(EXPLORER).run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["VCG (cost reserves, all treatments)", "GSP (text only)"]
    revenue = [m.value for m in at.metric if m.label == "Revenue per view"]
    assert len(revenue) == 2 and all(float(v) > 0 for v in revenue)
    assert "Position 0: ad" in at.text[0].value
    at.checkbox[0].uncheck().run()  # without a page budget every ad shows as an image
    assert not at.exception
    assert "'image'" in at.text[0].value and "'text'" not in at.text[0].value.split("Not shown")[0]


def test_sweeps_page_plots_a_metric_against_a_parameter(tmp_path, monkeypatch):
    from simulator.experiments.sweep import plan, run_sweep

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(f'base = "{ROOT / "scenarios" / "smoke.toml"}"\nseeds = 1\n[set]\n"run.duration_hours" = 0.1\n'
                          '[grid]\n"train.learning_rate" = [0.02, 0.05]\n')
    run_sweep(plan(sweep_file), tmp_path / "runs" / "sweep-a", workers=2)
    monkeypatch.chdir(tmp_path)  # the page looks for runs/*/cells.parquet
    at = _app().switch_page(SWEEPS).run()
    assert not at.exception and not at.error
    assert at.text_input[0].value == "runs/sweep-a"
    assert at.selectbox[0].value == "train.learning_rate" and at.selectbox[1].value == "pv_logloss"
    assert len(at.get("vega_lite_chart")) == 1 and len(at.dataframe[0].value) == 2


def test_compare_page_runs_paired_replays():
    at = _app().switch_page(COMPARE).run()
    assert not at.exception
    at.number_input[0].set_value(0.2)
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "ad_set_churn" in at.code[0].value and len(at.get("vega_lite_chart")) == 2
    at.text_input[0].input("model.nonexistent").run()
    at.button[0].click().run()
    assert len(at.error) == 1 and "model.nonexistent" in at.error[0].value
