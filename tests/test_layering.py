"""The import rules of the house (../shared/DESIGN.md, "Who may import whom"), read from the code itself.

Data flows one way: `ui_treatments` is a leaf; `auction` and `models` import `ui_treatments` at most; inside
`simulator` the stages go config ← world ← loop ← measure ← experiments ← report ← cli, each importing
only those to its left; nothing imports `dashboards` or `benchmarks`. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("ui_treatments", "auction", "models", "simulator", "dashboards", "benchmarks")
# What each top-level package may import of the others.
ALLOWED = {
    "ui_treatments": set(),
    "auction": {"ui_treatments"},
    "models": {"ui_treatments"},
    "simulator": {"ui_treatments", "auction", "models"},
    "dashboards": {"ui_treatments", "auction", "models", "simulator"},
    "benchmarks": {"ui_treatments", "auction", "models", "simulator"},
}
# The stages inside simulator/, bottom up; a module may import its own stage and those below it. The package's
# face (simulator/__init__.py: load, run) stands on the loop.
STAGES = ("config", "world", "loop", "measure", "experiments", "report", "cli")
# A stage's own config section (simulator/world/config.py) sits with the config it is composed into.
STAGE_OF = {"simulator.config": "config", "simulator.compile_cache": "config", "simulator": "loop",
            "simulator.world.config": "config", "simulator.commands": "cli",
            **{f"simulator.{stage}": stage for stage in STAGES}}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file (absolute names; the project has no relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from simulator import config`
    return found


def stage(module: str) -> str | None:
    """The stage of a simulator module: the one STAGE_OF names for it or for its sub-package; None for a module
    the table leaves out (a new base module must be placed)."""
    if module == "simulator":
        return STAGE_OF[module]
    parts = module.split(".")
    for depth in (3, 2):
        if ".".join(parts[:depth]) in STAGE_OF:
            return STAGE_OF[".".join(parts[:depth])]
    return None


SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
PROJECT_MODULES = {module_name(p) for p in SOURCES}


def project_imports(path: Path) -> set[str]:
    """The project's own modules and packages that `path` imports (names of classes and functions dropped)."""
    return {m for m in imports(path) if m.split(".")[0] in PACKAGES and (m in PROJECT_MODULES or m in PACKAGES)}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_data(path):
    here = module_name(path)
    package = here.split(".")[0]
    for target in project_imports(path):
        other = target.split(".")[0]
        if other != package:
            assert other in ALLOWED[package], f"{here} imports {target}: {package} may import only {ALLOWED[package]}"
        elif package == "simulator":
            mine, theirs = stage(here), stage(target)
            assert STAGES.index(theirs) <= STAGES.index(mine), (
                f"{here} ({mine}) imports {target} ({theirs}): a stage imports only those below it, {' ← '.join(STAGES)}")


def test_every_simulator_module_has_a_stage():
    assert [m for m in PROJECT_MODULES if m.startswith("simulator") and stage(m) is None] == []


def test_the_rules_catch_a_violation(tmp_path):
    """The check reads function-level imports and finds an upward import (a loop module reading a report)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from simulator.report.figures import summary_figure\n")
    target = next(iter(project_imports(bad)))
    assert STAGES.index(stage(target)) > STAGES.index(stage("simulator.loop.results"))
