"""Shared fixtures: paths, the smoke scenario, and one cached run of it."""

from __future__ import annotations

import gc
import json
import os
from importlib.metadata import version
from pathlib import Path

# The suite compiles with XLA:CPU's classic fusion emitters, users' runs with JAX's default (the MLIR ones): they
# compile 1.65–2.1× faster, and compiling was about half the suite's time. Runs compared gave identical numbers under
# both (tests/test_compiler_settings.py compares two; measurements in docs/performance.md). Set before jax is
# imported, so every test process and subprocess compiles alike; only on jax 0.10, where it was measured (XLA aborts
# on a flag it does not know); ADFLOOR_TEST_COMPILER=default leaves JAX's default (benchmarks/app_latency.py).
CLASSIC_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
if (version("jax").startswith("0.10.") and os.environ.get("ADFLOOR_TEST_COMPILER") != "default"
        and CLASSIC_EMITTERS not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CLASSIC_EMITTERS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

import simulator  # noqa: E402
from simulator import compile_cache  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The exact reference auctions (a copy of shared/auction_cases kept in the project, so every clone runs them).
AUCTION_CASES_FILE = ROOT / "tests" / "data" / "auction_cases" / "cases.json"
AUCTION_CASES: list[dict] = json.loads(AUCTION_CASES_FILE.read_text())["cases"]
SMOKE = ROOT / "scenarios" / "smoke.toml"
DEFAULT = ROOT / "scenarios" / "teaching.toml"


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_in_tmp(tmp_path_factory):
    """One on-disk JAX cache for the test run, out of the real home directory: this process, the other xdist
    workers (their temporary folders' parent is the run's), the CLI and every subprocess a test starts (through
    JAX's own environment variables) reuse what another has compiled. JAX's key includes the folder, so a folder
    of each worker's own would share nothing between them."""
    run_folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_folder = run_folder.parent
    path = run_folder / "jax-cache"
    path.mkdir(exist_ok=True)
    # A size cap turns on JAX's file lock around each read and write, so no process reads an entry another is still
    # writing. Only here: the folder is new, and JAX's eviction fails on entries written without the cap.
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(4 << 30)
    jax.config.update("jax_compilation_cache_max_size", 4 << 30)
    os.environ["ADFLOOR_JAX_CACHE"] = str(path)
    os.environ.update(compile_cache.environment(path))
    compile_cache.enable_compilation_cache()
    return path


MAP_COUNT_LIMIT = 65_530  # Linux's default vm.max_map_count


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no such limit to watch
        return 0


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Drop JAX's in-memory compiled programs after a test module once this process holds half of Linux's
    65,530 memory maps. XLA:CPU maps every program into a few regions: the whole suite in one process compiled
    enough to pass the limit and segfaulted at ~93 %. Clearing after every module instead cost ~10 minutes of
    recompiling; one module adds at most ~13,000 maps (measured), so half the limit leaves room."""
    yield
    if _memory_maps() > MAP_COUNT_LIMIT // 2:
        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def smoke_scenario() -> simulator.Scenario:
    return simulator.load(SMOKE)


@pytest.fixture(scope="session")
def smoke_output(smoke_scenario) -> simulator.RunOutput:
    return simulator.run(smoke_scenario)
