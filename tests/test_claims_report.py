"""The claims report on a small world: the report command (every section, its cell cache) and the app's Claims page
that shows what it wrote. One file, so the one small report is built once (pytest runs a file whole on one worker)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from simulator.cli import main
from simulator.experiments.study import load_study, study_file
from tests.conftest import SMOKE
from simulator.report.claims_figures import FIGURE_CAPTIONS, pyplot
from tests.test_app import CLAIMS, _app

CLAIMS_STUDY = load_study(study_file("claims"))
# smoke world, 2 seeds × a quarter hour, the baseline and one attribution arm, every study and figure
REPORT_ARGS = ["--scenario", str(SMOKE), "--seeds", "2", "--hours", "0.25", "--arms", "baseline", "tau_exp", "--quiet"]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """(report folder, cell cache, the CLI arguments that wrote it, what it printed)."""
    root = tmp_path_factory.mktemp("report")
    out, cache = root / "report", root / "cache"
    args = ["report", *REPORT_ARGS, "--out", str(out), "--cache", str(cache)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, cache, args, printed.getvalue()


def test_report_command_runs_every_section_and_reuses_its_cache(smoke_report, capsys):
    out, cache, args, printed = smoke_report
    assert "feedback_loop_amplifies_irreproducibility" in printed
    claims = json.loads((out / "claims.json").read_text())
    assert claims["seeds"] == [0, 1] and claims["scenario"] == "smoke.toml"
    by_id = {c["id"]: c for c in claims["claims"]}
    assert "vcg_revenue_at_most_gsp" not in by_id  # a theorem: a sanity check, not a claim
    assert [c["passed"] for c in claims["sanity_checks"]] == [True, True]
    assert all(a["pages_vcg_above_gsp"] == 0 and a["vcg_revenue"] < a["gsp_revenue"]
               and a["pages_gsp_equilibrium_off_vcg"] == 0 for a in claims["auction_comparison"])
    assert by_id["feedback_loop_amplifies_irreproducibility"]["definition"]["arms"] == ["baseline"]
    assert claims["code"] is None or len(claims["code"]) >= 40  # the commit that wrote it
    for name in ("claims.md", "models.md", "models.json", "claims.png", "irreproducibility.png", "attribution.png",
                 "feedback_loop.png", "techniques.png", "batch_scaling.png"):
        assert (out / name).stat().st_size > 500, name
    # the batch-scaling study ran on each seed's logs: every setting, every epoch scored on held-out examples
    assert len(by_id["cowclip_keeps_auc_at_large_batch"]["per_seed"]) == 2
    for study in json.loads((out / "models.json").read_text())["batch_scaling"]:
        assert set(study["settings"]) == set(CLAIMS_STUDY.batch_scaling.settings) and study["test_examples"] > 0
        for numbers in study["settings"].values():
            assert len(numbers["curve"]["test_auc"]) == CLAIMS_STUDY.batch_scaling.epochs and 0 < numbers["test_auc"] < 1
        assert study["settings"]["batch512"]["test_auc"] > 0.5  # a quarter hour is ~1 step at 16K, ~30 at 512
        assert study["settings"]["batch16k"]["steps"] < study["settings"]["batch512"]["steps"] / 8
    text = (out / "claims.md").read_text()
    assert "## System irreproducibility" in text and "## Credit attribution" in text and "tau_exp" in text
    assert len(list(cache.glob("*.json"))) == 2 * 4  # baseline, tau_exp, auction, batch scaling × 2 seeds
    first = (out / "claims.json").read_text()
    open_figures = set(pyplot().get_fignums())
    assert main(args) == 0  # every cell from the cache: same numbers
    assert set(pyplot().get_fignums()) == open_figures  # every figure written was closed
    assert json.loads((out / "claims.json").read_text())["claims"] == json.loads(first)["claims"]
    assert main(["report", "--seeds", "1"]) == 2
    assert main(["report", "--arms", "nope", "--seeds", "2"]) == 2


def test_claims_page_shows_a_written_report(tmp_path, monkeypatch, smoke_report):
    shutil.copytree(smoke_report[0], tmp_path / "runs" / "report-quick")  # the report the report test checks
    monkeypatch.chdir(tmp_path)  # the page looks for runs/report*/claims.json
    at = _app().switch_page(CLAIMS).run()
    assert not at.exception and not at.error
    assert at.text_input[0].value == "runs/report-quick"
    written = json.loads((tmp_path / "runs" / "report-quick" / "claims.json").read_text())
    table = next(m.value for m in at.markdown if m.value.startswith("| verdict | claim |"))  # the verdict first
    rows = table.splitlines()[2:]
    assert len(rows) == len(written["claims"]) >= 1
    assert all(row.split(" | ")[0].removeprefix("| ") in {":green[**reproduced**]", ":red[**not reproduced**]",
                                                          ":gray[**not testable here**]"} for row in rows)
    assert any("passed" in c.value for c in at.caption)  # the sanity checks
    assert len(at.expander) == len(written["claims"])  # each claim's prose, under its verdict
    assert all("Effect:" in e.markdown[0].value for e in at.expander)
    assert {b.label for b in at.get("download_button")} == {"Report (claims.md)", "Numbers (claims.json)"}
    images = at.get("image")
    assert len(images) == len(written["figures"]) >= 6
    captions = [image.proto.imgs[0].caption for image in images]
    assert captions[written["figures"].index("claims")] == FIGURE_CAPTIONS["claims"]
    assert len(set(captions)) == len(captions) and all(len(c) > 60 for c in captions)  # sentences, not file names
    at.text_input[0].input(str(tmp_path / "nowhere")).run()
    assert not at.exception and "no claims report here" in at.info[0].value
