"""Sweeps: cells from a grid and random draws × seeds run in parallel; failures are recorded; re-runs resume."""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.cli import main
from simulator.config import ConfigError
from simulator.experiments.sweep import Cell, SweepPlan, plan, run_sweep
from tests.conftest import ROOT

SWEEP = """
base = "{base}"
seeds = 2
[set]
"run.duration_hours" = 0.2
[grid]
"model.transfer" = ["sigmoid", "exp"]
"""


def _sweep_file(tmp_path, text: str = SWEEP) -> str:
    path = tmp_path / "sweep.toml"
    path.write_text(text.replace("{base}", str(ROOT / "scenarios" / "smoke.toml")))
    return str(path)


def test_plan_crosses_grid_random_draws_and_seeds(tmp_path):
    text = SWEEP + '[random]\nsamples = 3\n"train.learning_rate" = {log_uniform = [0.01, 0.1]}\n'
    sweep = plan(_sweep_file(tmp_path, text))
    assert len(sweep.cells) == 2 * 3 * 2
    rates = {dict(c.overrides)["train.learning_rate"] for c in sweep.cells}
    assert len(rates) == 3 and all(0.01 <= r <= 0.1 for r in rates)
    assert len({c.cell_id for c in sweep.cells}) == len(sweep.cells)
    # a changed [set] table (or base scenario) gives new cell ids: finished cells of the old one are not reused
    edited = plan(_sweep_file(tmp_path, text.replace('"run.duration_hours" = 0.2', '"run.duration_hours" = 0.3')))
    assert [dict(c.overrides) for c in edited.cells] == [dict(c.overrides) for c in sweep.cells]
    assert not {c.cell_id for c in edited.cells} & {c.cell_id for c in sweep.cells}


@pytest.mark.parametrize("text, field", [
    (SWEEP.replace('"model.transfer"', '"model.transfr"'), "model.transfr"),
    (SWEEP.replace("seeds = 2", "seeds = -1"), "sweep.seeds"),
    (SWEEP + "[random]\n\"train.learning_rate\" = {normal = [0, 1]}\nsamples = 2\n", "sweep.random.train.learning_rate"),
    ("oops = 1\n" + SWEEP, "sweep: unknown key"),
])
def test_bad_sweep_files_fail_before_running(tmp_path, text, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        plan(_sweep_file(tmp_path, text))


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_sweep_runs_records_failures_and_resumes(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    sweep = plan(_sweep_file(tmp_path))
    broken = Cell((("train.batch_size", 0),), 0)  # invalid: fails inside its worker
    with_failure = SweepPlan(sweep.base, sweep.shared, sweep.cells + (broken,))
    progress = []
    ticks, cells = run_sweep(with_failure, tmp_path / "out", workers=2, progress=progress.append, backend=backend)
    assert (progress[-1].done, progress[-1].failed, progress[-1].total) == (4, 1, 5)
    assert sum("FAILED: ConfigError" in p.text() for p in progress) == 1 and "ETA" in progress[0].text()
    assert list(cells["status"]).count("done") == 4
    failed = cells[cells["status"] == "failed"].iloc[0]
    assert failed["cell"] == broken.cell_id and "train.batch_size" in failed["error"]
    assert set(ticks["model.transfer"]) == {"sigmoid", "exp"} and set(ticks["seed"]) == {0, 1}
    assert len(ticks) == 4 * 12  # 12 one-minute ticks per cell
    again = []
    run_sweep(with_failure, tmp_path / "out", workers=2, progress=again.append, backend=backend)
    assert [(p.skipped, p.done, p.failed) for p in again] == [(4, 0, 1)]  # finished cells are not run again
    reloaded = pd.read_parquet(tmp_path / "out" / "cells.parquet")
    assert {"pv_logloss", "revenue", "status", "model.transfer"} <= set(reloaded.columns)


def test_sweep_cli(tmp_path, capsys):
    assert main(["sweep", _sweep_file(tmp_path), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert "4 of 4 cells done" in capsys.readouterr().out
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2


def test_a_sweep_written_from_parts_plans_and_a_bad_one_leaves_nothing_behind(tmp_path):
    from simulator.experiments.sweep import write_sweep

    sweep = write_sweep(tmp_path / "good", "smoke", {"train.learning_rate": [0.02, 0.05]}, seeds=2, hours=0.1)
    assert len(sweep.cells) == 4 and (tmp_path / "good" / "sweep.toml").is_file()
    assert plan(tmp_path / "good" / "sweep.toml") == sweep  # the file alone rebuilds it (what Resume reads)
    with pytest.raises(ConfigError, match="exists already"):
        write_sweep(tmp_path / "good", "smoke", {"train.learning_rate": [0.1]}, seeds=1, hours=0.1)
    with pytest.raises(ConfigError, match="train.batch_size"):
        write_sweep(tmp_path / "bad", "smoke", {"train.batch_size": [0]}, seeds=1, hours=0.1)
    with pytest.raises(ConfigError, match="sweep.grid.train.learning_rate"):
        write_sweep(tmp_path / "empty", "smoke", {"train.learning_rate": []}, seeds=1, hours=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]


def test_unfinished_counts_cells_without_a_result_and_intervals_need_two_seeds(tmp_path):
    from simulator.experiments.sweep import metric_by_parameter, multiplicative, unfinished, write_sweep

    sweep = write_sweep(tmp_path / "s", "smoke", {"train.learning_rate": [0.02, 0.2]}, seeds=2, hours=0.1)
    assert unfinished(sweep, tmp_path / "s") == 4
    (tmp_path / "s" / "cells" / sweep.cells[1].cell_id).mkdir(parents=True)
    (tmp_path / "s" / "cells" / sweep.cells[1].cell_id / "summary.json").write_text("{}")
    assert unfinished(sweep, tmp_path / "s") == 3
    cells = pd.DataFrame({"status": ["done"] * 5, "p": [1.0, 1.0, 1.0, 10.0, 10.0], "m": [1.0, 2.0, 3.0, 5.0, 7.0]})
    table = metric_by_parameter(cells, "p", "m")
    assert table["mean"].tolist() == [2.0, 6.0]
    assert table["ci95"].tolist() == pytest.approx([4.302653 / 3**0.5, 12.706205 * 2**0.5 / 2**0.5], rel=1e-5)
    assert metric_by_parameter(cells.iloc[:4], "p", "m")["ci95"].isna().tolist() == [False, True]  # one value: none
    assert multiplicative([0.01, 0.1]) and not multiplicative([1, 2, 5]) and not multiplicative([0, 10, 100])
