"""`adfloor side-by-side`: each claim of several saved reports in one table and one figure."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.report.claims_figures import pyplot


def _report(folder, claims, warm=0.0, failed=None):
    folder.mkdir(parents=True)
    (folder / "claims.json").write_text(json.dumps({"scenario": "x.toml", "code": "abcdef123456+changes",
                                                    "seeds": [0, 1, 2], "hours": 6.0,
                                                    "warm_start_hours": warm, "failed_cells": failed or {},
                                                    "claims": claims}))
    return folder


def _claim(claim_id, mean, low, high, reproduced, expect="decrease"):
    return {"id": claim_id, "effect": f"effect of {claim_id}", "expect": expect, "margin": 0.0, "mean": mean,
            "ci95": [low, high], "reproduced": reproduced, "testable": True, "per_seed": [low, mean, high]}


def test_each_claim_of_each_report_in_one_row_and_one_panel(tmp_path, capsys):
    untestable = {**_claim("c", float("nan"), float("nan"), float("nan"), False), "testable": False}
    cold = _report(tmp_path / "results", [_claim("a", -0.3, -0.5, -0.1, True), _claim("b", 0.2, -0.1, 0.5, False),
                                          {**untestable, "effect": "max |bias| with / without"}])
    mature = _report(tmp_path / "results" / "mature", [_claim("b", -0.4, -0.6, -0.2, True),
                                                       {**_claim("c", 0.1, 0.0, 0.2, True), "definition": {"arms": ["x"]}}],
                     warm=24.0, failed={"x-seed3": "diverged"})
    out = tmp_path / "results" / "worlds.md"
    open_figures = set(pyplot().get_fignums())
    assert main(["side-by-side", f"cold={cold}", f"mature={mature}", "--out", str(out)]) == 0
    assert set(pyplot().get_fignums()) == open_figures  # the figure written was closed
    text = out.read_text()
    assert "| `a` | effect of a | < 0 | -0.3000 [-0.5000, -0.1000] **yes** | — |" in text  # not in the mature report
    assert "| `b` | effect of b | < 0 | 0.2000 [-0.1000, 0.5000] no | -0.4000 [-0.6000, -0.2000] **yes** |" in text
    # a "|" inside a cell is escaped; a claim defined otherwise in a later report is marked, not silently merged
    assert "| `c` | max \\|bias\\| with / without | < 0 | – [–, –] not testable | 0.1000 [0.0000, 0.2000] **yes** (†) |" in text
    assert "[claims.md](claims.md)" in text and "[mature/claims.md](mature/claims.md)" in text  # links from the table
    assert "after 24 simulated hours of warm start" in text and "1 cell(s) failed" in text
    assert "from cold models, scenario file `x.toml` when it ran, code `abcdef1+changes`; 1 of 3 claims reproduced." in text
    assert out.with_suffix(".png").stat().st_size > 1000 and "![each claim in each report](worlds.png)" in text


@pytest.mark.parametrize("arguments, message", [
    (["only={a}"], "at least two reports"),
    (["a={a}", "nowhere={a}/gone"], "nowhere=.*gone: no claims.json there"),
    (["a={a}", "a={a}"], "the label 'a' is used twice"),
    (["a={a}", "{a}"], "expected LABEL=FOLDER"),
    (["a={a}", "b={a}", "--out", "{a}/t.txt"], "--out: a markdown file"),
    (["a={a}", "b={a}/claims.json"], "no claims.json there"),  # a file where the folder should be
    (["a={a}", "b={a}/../broken"], "not a claims report (no 'claims')"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, arguments, message):
    folder = _report(tmp_path / "r", [_claim("a", 0.1, 0.0, 0.2, False)])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "claims.json").write_text('{"seeds": [0, 1]}')
    args = [item.format(a=folder) for item in arguments]
    args += [] if "--out" in args else ["--out", str(tmp_path / "t.md")]
    assert main(["side-by-side", *args]) == 2
    assert message.split(".*")[-1] in capsys.readouterr().err
