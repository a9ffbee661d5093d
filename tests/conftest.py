"""Shared fixtures: paths, the smoke scenario, and one cached run of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import simulator

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SMOKE = ROOT / "scenarios" / "smoke.toml"
DEFAULT = ROOT / "scenarios" / "default.toml"


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_in_tmp(tmp_path_factory):
    """Keep the CLI's on-disk JAX cache out of the real home directory."""
    path = tmp_path_factory.mktemp("jax-cache")
    os.environ["ADFLOOR_JAX_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def smoke_scenario() -> simulator.Scenario:
    return simulator.load(SMOKE)


@pytest.fixture(scope="session")
def smoke_output(smoke_scenario) -> simulator.RunOutput:
    return simulator.run(smoke_scenario)
