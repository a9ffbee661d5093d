"""`adfloor run` writes its files, and the same scenario and seed give the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import simulator
from simulator.cli import main
from tests.conftest import SMOKE

SUMMARY_KEYS = {
    "seed", "queries", "impressions", "clicks", "revenue", "welfare", "pv_logloss", "oracle_logloss", "pv_auc",
    "calibration_max_abs_decile", "wall_seconds", "queries_per_second",
}
METRIC_COLUMNS = {"sim_time", "queries", "impressions", "clicks", "revenue", "welfare", "pv_logloss", "oracle_logloss"}
WALL_CLOCK_KEYS = {"wall_seconds", "queries_per_second", "time_share"}


def _run(tmp_path, name: str, *extra: str):
    out = tmp_path / name
    assert main(["run", str(SMOKE), "--out", str(out), "--quiet", *extra]) == 0
    return out


def test_run_writes_config_metrics_summary_and_plot(tmp_path, compilation_cache_in_tmp):
    out = _run(tmp_path, "a")
    assert any(compilation_cache_in_tmp.iterdir())  # compiled programs were cached on disk
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert METRIC_COLUMNS <= set(metrics.columns)
    assert len(metrics) == 120  # 2 simulated hours of 1-minute ticks
    assert metrics["queries"].sum() == summary["queries"] > 0
    assert (out / "summary.png").stat().st_size > 10_000
    assert simulator.load(out / "config.toml") == simulator.load(SMOKE)


def test_same_seed_same_results(tmp_path):
    first, second = _run(tmp_path, "a", "--seed", "3"), _run(tmp_path, "b", "--seed", "3")
    pdt.assert_frame_equal(pd.read_parquet(first / "metrics.parquet"), pd.read_parquet(second / "metrics.parquet"))
    a, b = (json.loads((d / "summary.json").read_text()) for d in (first, second))
    assert {k: v for k, v in a.items() if k not in WALL_CLOCK_KEYS} == {k: v for k, v in b.items() if k not in WALL_CLOCK_KEYS}
    third = _run(tmp_path, "c", "--seed", "4")
    assert json.loads((third / "summary.json").read_text())["clicks"] != a["clicks"]


def test_config_toml_reruns_to_the_same_numbers(tmp_path):
    first = _run(tmp_path, "a", "--set", "train.batch_size=128")
    out = tmp_path / "rerun"
    assert main(["run", str(first / "config.toml"), "--out", str(out), "--quiet"]) == 0
    pdt.assert_frame_equal(pd.read_parquet(first / "metrics.parquet"), pd.read_parquet(out / "metrics.parquet"))


def test_impression_log_is_written_on_request(tmp_path):
    out = _run(tmp_path, "a", "--set", "run.duration_hours=0.5", "--log-impressions")
    impressions = pd.read_parquet(out / "impressions.parquet")
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert len(impressions) == metrics["impressions"].sum()
    assert {"query", "ad_id", "position", "treatment", "click", "true_ctr", "pctr", "price_per_click"} <= set(impressions)


def test_records_moved_to_disk_read_back_as_the_same_arrays(smoke_scenario, smoke_output, tmp_path, monkeypatch):
    """A run whose records move to disk almost every tick (run.records_memory_mb = 10 KB) ends with the same
    impressions, PV examples, probes, summary and impressions.parquet as one that holds them all, and measures its PV
    examples a window at a time without joining them; the files go when the records do."""
    import gc
    import tempfile

    from simulator.loop.records import ColumnLog

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    moved = simulator.run(simulator.config.replace(smoke_scenario, run__records_memory_mb=0.01))
    assert min(moved.log.stored_parts, moved.pv.stored_parts, moved.probes.stored_parts) > 10
    assert smoke_output.log.stored_parts == smoke_output.pv.stored_parts == 0
    for records in ("log", "pv", "probes"):
        a, b = getattr(moved, records).arrays(), getattr(smoke_output, records).arrays()
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), (records, name)
    summaries = [{k: v for k, v in run.summary().items() if k not in WALL_CLOCK_KEYS} for run in (moved, smoke_output)]
    assert summaries[0] == summaries[1]
    # the PV numbers a few thousand examples at a time: no column joined whole; the same numbers whatever the parts
    # on disk, and the whole arrays' up to the order of float sums
    from models import metrics

    whole, gathered, gather = smoke_output.pv_numbers(), [], metrics._gather
    with monkeypatch.context() as patched:
        patched.setattr(ColumnLog, "column", lambda *_: pytest.fail("a column was joined whole"))
        patched.setattr(metrics, "_gather", lambda *args: gathered.append(gather(*args)) or gathered[-1])
        in_parts = [run.pv_numbers(rows_in_memory=5000) for run in (moved, smoke_output)]
    assert len(moved.pv) > 20 * 5000 and in_parts[0] == in_parts[1]
    assert gathered and max(len(rows[0]) for rows in gathered) <= 5000  # value ranges of ≤ 5,000 rows in memory
    assert in_parts[0] == pytest.approx(whole, rel=1e-12)
    moved.write(tmp_path / "moved", impressions=True)
    smoke_output.write(tmp_path / "held", impressions=True)
    pdt.assert_frame_equal(pd.read_parquet(tmp_path / "moved" / "impressions.parquet"),
                           pd.read_parquet(tmp_path / "held" / "impressions.parquet"))
    assert len(list((tmp_path / "tmp").iterdir())) == 3  # a folder for each of the three records
    moved.close()  # what a study's cell does once it has measured
    assert not list((tmp_path / "tmp").iterdir()) and len(moved.log) == 0
    log = ColumnLog(("a",), memory_limit_bytes=1)
    log.append(a=np.arange(3))
    assert log.stored_parts == 1 and len(list((tmp_path / "tmp").iterdir())) == 1
    del log
    gc.collect()
    assert not list((tmp_path / "tmp").iterdir())  # or when the records are collected


def test_exp_transfer_and_oracle_model_run_end_to_end(smoke_scenario):
    short = simulator.config.replace(smoke_scenario, run__duration_hours=0.5)
    exp = simulator.run(simulator.config.replace(short, model__transfer="exp")).summary()
    assert 0 < exp["pv_logloss"] < 1 and exp["pv_auc"] > 0.55
    oracle = simulator.run(simulator.config.replace(short, model__oracle=True)).summary()
    assert oracle["pv_logloss"] == oracle["oracle_logloss"] and oracle["deploys"] == 0


def test_pipelined_and_synchronous_stages_give_identical_results(smoke_scenario, smoke_output):
    from simulator.loop.simulation import Simulation

    synchronous = Simulation(smoke_scenario, sync_stages=True).run()
    pdt.assert_frame_equal(synchronous.metrics(), smoke_output.metrics())


def test_final_window_is_the_last_quarter_of_simulated_time(smoke_output):
    """Heavy traffic early, light late: the last quarter of the examples and of the time differ. The model is
    perfect (prediction = truth) only in the last quarter of simulated time, so only that window has gap 0."""
    import dataclasses

    from simulator.loop.records import PV_COLUMNS, ColumnLog, PvChunk

    minutes = 60.0 * smoke_output.scenario.run.duration_hours
    chunks = ColumnLog(PV_COLUMNS)
    for minute, count in ((0.1 * minutes, 3000), (0.5 * minutes, 3000), (0.8 * minutes, 500), (0.95 * minutes, 500)):
        truth = np.full(count, 0.1, np.float32)
        label = (np.arange(count) % 10 == 0).astype(np.float32)
        prediction = truth if minute >= 0.75 * minutes else np.full(count, 0.3, np.float32)
        chunks.append(**PvChunk(minute, prediction, label, truth, np.ones(count, np.float32), np.arange(count)).rows())
    summary = dataclasses.replace(smoke_output, pv=chunks).summary()
    assert summary["final_window_gap"] == pytest.approx(0.0, abs=1e-9)
    assert summary["final_window_pv_logloss"] == pytest.approx(summary["final_window_oracle_logloss"])


def test_a_stop_request_ends_a_run_there_and_its_numbers_cover_what_ran(smoke_scenario):
    steps = []

    def stop() -> bool:
        steps.append(1)
        return len(steps) > 100

    output = simulator.run(simulator.config.replace(smoke_scenario, run__duration_hours=2.0), stop=stop)
    summary = output.summary()
    assert output.stopped.startswith("stopped by request at simulated hour")
    assert 0 < summary["sim_hours"] < 2.0 == output.scenario.run.duration_hours
    assert summary["sim_hours"] * 60 == pytest.approx(output.metrics()["sim_minute"].max()
                                                      + output.scenario.run.tick_minutes)
    assert np.isfinite(summary["final_window_pv_logloss"])  # the last quarter of what ran, not of the plan
