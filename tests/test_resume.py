"""Checkpoints: a run killed mid-way and resumed ends with the same numbers as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from simulator import config
from simulator.loop import checkpoint
from simulator.loop.checkpoint import CheckpointError
from simulator.loop.simulation import Simulation
from simulator.loop.state import equal

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-m", "simulator.cli", "run"]
SETTINGS = ["--set", "run.duration_hours=3", "--set", "run.checkpoint_every_minutes=20", "--quiet"]
TIMING = ("wall_seconds", "queries_per_second", "time_share")


def _summary(folder: Path) -> dict:
    return {k: v for k, v in json.loads((folder / "summary.json").read_text()).items() if k not in TIMING}


def test_killed_run_resumes_to_the_same_final_numbers(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*RUN, "scenarios/smoke.toml", *SETTINGS, "--out", str(whole)], cwd=ROOT, check=True, timeout=300,
                   capture_output=True)
    assert not (whole / "checkpoint").exists()  # a finished run leaves no checkpoint behind
    process = subprocess.Popen([*RUN, "scenarios/smoke.toml", *SETTINGS, "--out", str(killed)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["now"] >= 60:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "summary.json").exists()
    stopped_at = json.loads(state.read_text())["now"]
    resumed = subprocess.run([*RUN, "--resume", str(killed), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed} at simulated hour {stopped_at / 60:.2f}" in resumed.stderr
    assert _summary(killed) == _summary(whole)
    a, b = pd.read_parquet(whole / "metrics.parquet"), pd.read_parquet(killed / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("overrides", [
    ["train.deploy_every_minutes=7", "train.deploy_delay_minutes=5", "run.tick_minutes=0.7",
     "run.records_memory_mb=0.01"],  # its records move to disk every few ticks, and its checkpoints link them
    ["train.distillation_weight=0.5", "train.optimizer=shampoo", "train.bias_constraints=['position']",
     "data.negative_keep_rate=0.5"],
    ["model.oracle=true"],
    ["world.kind=realistic", "world.num_queries=3000", "world.quality_drift_sd=0.3", "world.novelty_effect=0.3",
     "world.fatigue_effect=0.3", "world.trend_bursts_per_day=20", "world.dormant_advertiser_share=0.3",
     "world.advertiser_churn_per_day=2", "world.click_model=cascade"],
], ids=["odd-timing", "teacher-shampoo-duals-sampling", "oracle", "realistic-cascade-drift"])
def test_resume_from_any_checkpoint_is_exact(tmp_path, overrides):
    """Deploys pending across the checkpoint, a teacher, Shampoo state, duals, sampling: all restored."""
    scenario = config.load(ROOT / "scenarios" / "smoke.toml", ["run.duration_hours=1.5",
                                                              "run.checkpoint_every_minutes=25", *overrides])
    whole = Simulation(scenario).run(checkpoint_dir=tmp_path / "checkpoint")  # last checkpoint: minute 75
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["now"] < 75
    resumed = Simulation.resume(tmp_path / "checkpoint").run()
    for records in ("pv", "probes"):
        a, b = getattr(whole, records).arrays(), getattr(resumed, records).arrays()
        for name, column in a.items():
            assert column.dtype == b[name].dtype and np.array_equal(column, b[name]), (records, name)
    pd.testing.assert_frame_equal(whole.metrics(), resumed.metrics())
    assert whole.log.frame().equals(resumed.log.frame())


@pytest.mark.parametrize("overrides", [
    ["train.distillation_weight=0.5", "train.optimizer=shampoo", "train.bias_constraints=['position']",
     "run.tick_minutes=0.7", "train.deploy_delay_minutes=5"],
    ["model.oracle=true"],
], ids=["teacher-shampoo-duals", "oracle"])
def test_a_saved_state_loads_back_equal(tmp_path, overrides):
    """load(save(state)) == state for a mid-run state (pending deploys, partial batches, logs in flight), and the
    equality can fail: one changed number in the state makes it false."""
    scenario = config.load(ROOT / "scenarios" / "smoke.toml", ["run.duration_hours=0.75",
                                                              "run.checkpoint_every_minutes=25", *overrides])
    Simulation(scenario).run(checkpoint_dir=tmp_path / "first")
    simulation = Simulation.resume(tmp_path / "first")  # restored to the state before minute 25
    state = simulation.state()
    assert 20 < state.now < 25 and len(state.wakeups) >= 2 and state.pending and state.rows
    templates = simulation.pytree_templates()
    checkpoint.save(state, scenario, tmp_path / "second", templates)
    directory, tree, saved_scenario = checkpoint.read(tmp_path / "second")
    loaded = checkpoint.load(directory, tree, templates)
    assert saved_scenario == scenario and equal(loaded, state)
    first = checkpoint.read(tmp_path / "first")
    assert equal(checkpoint.load(first[0], first[1], templates), state)  # restore then state() is the identity
    changed = loaded.rows[-1]
    loaded.rows[-1] = dict(changed, clicks=changed["clicks"] + 1)
    assert not equal(loaded, state)
    if state.trainer is not None:  # one bit of one parameter
        reloaded = checkpoint.load(directory, tree, templates)
        leaves, structure = jax.tree.flatten(reloaded.trainer.params)
        flipped = np.array(leaves[0]).reshape(-1)
        flipped.view(np.uint32)[0] ^= 1
        leaves[0] = flipped.reshape(np.shape(leaves[0]))
        reloaded = dataclasses.replace(reloaded, trainer=reloaded.trainer._replace(
            params=jax.tree.unflatten(structure, leaves)))
        assert not equal(reloaded, state)


def test_a_checkpoint_links_the_records_on_disk_and_never_joins_them(tmp_path, monkeypatch):
    """Checkpoints of a run whose records move to disk (every few ticks here) write them part by part, and a resume
    reads them back so: the parts on disk are linked, not read, and no column is ever joined in memory (reading one
    fails the run, or the resume, here)."""
    from simulator.loop.records import ColumnLog

    def joined(log, name):
        raise AssertionError(f"a checkpoint joined the column {name!r} in memory")

    scenario = config.load(ROOT / "scenarios" / "smoke.toml", ["run.duration_hours=0.5", "run.records_memory_mb=0.01",
                                                              "run.checkpoint_every_minutes=10"])
    with monkeypatch.context() as patch:
        patch.setattr(ColumnLog, "column", joined)
        output = Simulation(scenario).run(checkpoint_dir=tmp_path / "checkpoint")
    saved = json.loads((tmp_path / "checkpoint" / "state.json").read_text())["records"]
    for name, log in (("pv", output.pv), ("log", output.log), ("probes", output.probes)):
        parts = saved[name]["parts"]
        assert len(parts) > 3 and sum(parts) < len(log)  # the checkpoint at minute 20 of a 30-minute run
        for part in range(len(parts) - 1):  # all but the rows still held then, which are written
            for column in log.columns:
                assert (tmp_path / "checkpoint" / "records" / name / f"{part}-{column}.npy").stat().st_nlink == 2
    with monkeypatch.context() as patch:
        patch.setattr(ColumnLog, "column", joined)
        resumed = Simulation.resume(tmp_path / "checkpoint")
    last = tmp_path / "checkpoint" / "records" / "log" / f"{len(saved['log']['parts']) - 1}-ad_id.npy"
    assert last.stat().st_nlink >= 2  # the resumed run's own records link the checkpoint's files
    assert len(resumed.log) == sum(saved["log"]["parts"]) and resumed.log.stored_parts == len(saved["log"]["parts"])
    # a damaged checkpoint is refused at the resume, in one line, not at the end of the resumed run
    damaged = tmp_path / "checkpoint" / "records" / "pv" / "0-label.npy"
    damaged.unlink()  # not written over: the file is linked into the runs' own records
    np.save(damaged, np.zeros(3, np.float32))
    with pytest.raises(CheckpointError, match=r"records/pv/0-label.npy holds shape \(3,\), not \d+ rows"):
        Simulation.resume(tmp_path / "checkpoint")
    damaged.unlink()
    with pytest.raises(CheckpointError, match="0-label.npy"):
        Simulation.resume(tmp_path / "checkpoint")


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Simulation.resume(tmp_path)
    result = subprocess.run([*RUN, "--resume", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_checkpoint_files_are_data_not_pickles(tmp_path):
    scenario = config.load(ROOT / "scenarios" / "smoke.toml", ["run.duration_hours=0.5",
                                                              "run.checkpoint_every_minutes=10"])
    Simulation(scenario).run(checkpoint_dir=tmp_path / "checkpoint")
    files = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert files == ["arrays.npz", "config.toml", "records", "state.json"]
    with np.load(tmp_path / "checkpoint" / "arrays.npz", allow_pickle=False) as data:  # raises on object arrays
        assert all(data[name].dtype != object for name in data.files)
    records = sorted((tmp_path / "checkpoint" / "records").rglob("*.npy"))
    assert records and all(np.load(path, allow_pickle=False).dtype != object for path in records)
