"""Shared fixtures: paths, the smoke scenario, and one cached run of it."""

from __future__ import annotations

from pathlib import Path

import pytest

import simulator

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SMOKE = ROOT / "scenarios" / "smoke.toml"
DEFAULT = ROOT / "scenarios" / "default.toml"


@pytest.fixture(scope="session")
def smoke_scenario() -> simulator.Scenario:
    return simulator.load(SMOKE)


@pytest.fixture(scope="session")
def smoke_output(smoke_scenario) -> simulator.RunOutput:
    return simulator.run(smoke_scenario)
