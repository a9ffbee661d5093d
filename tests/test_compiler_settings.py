"""The suite compiles with XLA:CPU's classic fusion emitters (tests/conftest.py), users' runs with JAX's default: the
suite's setting must not change a result, or the suite would test numbers no user gets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import simulator
from tests.conftest import CLASSIC_EMITTERS, ROOT, SMOKE

# A budgeted auction (the DP with heights) and dense training in the teaching world; the realistic world's two
# devices, quality-weighted reserves and sparse embedding updates.
RUNS = {"budgeted": [str(SMOKE), "auction.page_height_budget=13", "run.duration_hours=0.5"],
        "realistic": [str(SMOKE), "world.kind=realistic", "world.num_queries=3000", "world.num_topics=6",
                      "world.num_advertisers=30", "world.initial_ads=240", "world.candidates_per_query=12",
                      "traffic.queries_per_minute=200", "run.duration_hours=0.25", "train.sparse_embeddings=true"]}
LOG_COLUMNS = ("ad_id", "treatment", "position", "click", "pctr", "price_per_click")


def numbers(output: simulator.RunOutput) -> dict[str, np.ndarray]:
    """Every numeric per-tick metric and the impression log's columns: what a run gives."""
    metrics = output.metrics()
    found = {f"metric {c}": metrics[c].to_numpy() for c in metrics.columns if metrics[c].dtype.kind in "fiub"}
    return found | {f"log {c}": output.log.column(c) for c in LOG_COLUMNS}


@pytest.mark.skipif(CLASSIC_EMITTERS not in os.environ.get("XLA_FLAGS", ""), reason="the suite compiles as users do")
def test_runs_give_the_same_numbers_under_the_suites_compiler_setting_and_the_default(tmp_path):
    script = textwrap.dedent(f"""
        import sys, numpy as np, simulator
        from tests.test_compiler_settings import RUNS, numbers
        for name, (path, *overrides) in RUNS.items():
            np.savez(f"{tmp_path}/{{name}}.npz", **numbers(simulator.run(simulator.load(path, overrides))))
    """)
    default = os.environ["XLA_FLAGS"].replace(CLASSIC_EMITTERS, "").strip()
    env = {**os.environ, "XLA_FLAGS": default}  # what users compile with
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, (path, *overrides) in RUNS.items():
        suite = numbers(simulator.run(simulator.load(path, overrides)))
        users = np.load(tmp_path / f"{name}.npz")
        assert set(users.files) == set(suite) and len(suite["log ad_id"]) > 1000 and suite["metric deploy_version"].max() >= 1
        for column, values in suite.items():
            assert np.array_equal(values, users[column], equal_nan=True), (name, column)
