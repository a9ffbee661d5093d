"""The suite compiles with XLA:CPU's classic fusion emitters (tests/conftest.py), users' runs with JAX's default: the
suite's setting must not change a result, or the suite would test numbers no user gets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import CLASSIC_EMITTERS, ROOT, SMOKE
from tests.run_numbers import run_numbers

# The teaching world under a page height budget (the DP with heights) with dense training; the realistic default,
# smaller (desktop and mobile pages of 7 slots: the assignment solver; quality-weighted reserves; sparse updates).
RUNS = {"budgeted": [str(SMOKE), "auction.page_height_budget=13", "run.duration_hours=0.5"],
        "realistic": [str(ROOT / "scenarios" / "default.toml"), "world.num_queries=3000", "world.num_advertisers=30",
                      "world.initial_ads=240", "world.candidates_per_query=12", "traffic.queries_per_minute=200",
                      "run.duration_hours=0.25", "train.deploy_every_minutes=5"]}


@pytest.mark.skipif(CLASSIC_EMITTERS not in os.environ.get("XLA_FLAGS", ""), reason="the suite compiles as users do")
def test_runs_give_the_same_numbers_under_the_suites_compiler_setting_and_the_default(tmp_path):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from tests.run_numbers import run_numbers
        assert "fusion_emitters" not in os.environ.get("XLA_FLAGS", "")  # compiled as users compile
        for name, (path, *overrides) in {RUNS!r}.items():
            np.savez(os.path.join({str(tmp_path)!r}, name + ".npz"), **run_numbers(path, overrides))
    """)
    default_flags = os.environ["XLA_FLAGS"].replace(CLASSIC_EMITTERS, "").strip()
    env = {name: value for name, value in os.environ.items() if name != "JAX_COMPILATION_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", script], env={**env, "XLA_FLAGS": default_flags}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, (path, *overrides) in RUNS.items():
        suite_run = run_numbers(path, overrides)
        default_run = np.load(tmp_path / f"{name}.npz")
        assert set(default_run.files) == set(suite_run)
        assert len(suite_run["log ad_id"]) > 1000
        assert suite_run["metric deploy_version"].max() >= 1  # retrained models ran auctions
        for column, values in suite_run.items():
            assert np.array_equal(values, default_run[column], equal_nan=True), (name, column)
