"""A non-editable install works (issue #15): the wheel lists every package, and an installed layout finds the
shipped scenarios and studies as package data through the one helper, `simulator.config.shipped`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

DATA_PACKAGES = {"simulator.scenarios": "scenarios", "simulator.studies": "studies"}


def test_the_wheel_lists_every_package_and_ships_the_scenarios_and_studies():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    code = {".".join(source.parent.relative_to(ROOT).parts)  # every folder of Python files is a package
            for top in ("auction", "models", "simulator", "ui_treatments", "dashboards")
            for source in (ROOT / top).rglob("*.py") if "__pycache__" not in source.parts}
    assert set(setuptools["packages"]) == code | set(DATA_PACKAGES)  # a package left out is missing from the wheel
    assert setuptools["package-dir"] == DATA_PACKAGES
    assert {"*.toml"} <= set(setuptools["package-data"]["simulator.studies"])


def test_an_installed_layout_finds_its_scenarios_and_studies(tmp_path):
    site = tmp_path / "site"
    for package in ("auction", "models", "ui_treatments", "simulator"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for package, folder in DATA_PACKAGES.items():  # where the wheel puts them
        shutil.copytree(ROOT / folder, site / package.replace(".", "/"))
    script = (
        "import simulator\n"
        "from simulator import config\n"
        "from simulator.experiments.study import load_study, study_file\n"
        f"assert config.SCENARIOS == config.shipped('scenarios') and str(config.SCENARIOS).startswith({str(site)!r})\n"
        "assert simulator.load('smoke') == simulator.load(config.scenario_file('smoke'))  # a shipped name\n"
        "study = load_study(study_file('claims'))\n"
        "assert study.scenario == config.scenario_file('teaching') and sum(bool(c.why_not) for c in study.claims) == 13\n"
        "assert load_study(study_file('example')).scenario == config.scenario_file('smoke')\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
