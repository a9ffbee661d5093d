"""Studies as data (issue #15): every shipped study loads, a typo anywhere is a one-line error naming its place,
and a user-written study runs end to end from the CLI with cached, resumable cells and recorded failures."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from simulator.cli import main
from simulator.experiments.study import STUDIES, Arm, StudyError, load_study, study_file
from simulator.measure.definitions import METRIC_DOC
from tests.conftest import SMOKE

STUDY = f'''
name = "typo"
scenario = "{SMOKE}"
seeds = 2
hours = 0.1
[groups]
rank = ["train.rank_loss_weight=0.3"]
[arms.baseline]
[arms.rank]
overrides = ["@rank"]
replica = true
[[tables]]
title = "t"
arms = ["baseline", "rank"]
metrics = ["pv_auc"]
[[claims]]
id = "c"
claim = "rank lifts AUC"
source = "s"
effect = "e"
expect = "increase"
measure = {{difference = ["rank.per_query_auc", "baseline.per_query_auc"]}}
'''


def _study(tmp_path, text: str = STUDY, why: str | None = None):
    path = tmp_path / "study.toml"
    path.write_text(text)
    if why is not None:
        (tmp_path / "why.md").write_text(why)
    return path


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_study_loads(path):
    study = load_study(path)
    assert study.arms and "baseline" in study.arms
    for claim in study.claims:  # every claim reads arms and metrics that exist
        assert set(claim.arms) <= set(study.arms) | {f"offline_{s}" for s in (study.batch_scaling.settings
                                                                               if study.batch_scaling else ())}
        assert all(metric in METRIC_DOC for _, metric in claim.measure.operands)


def test_the_claims_study_is_the_report_it_replaced():
    study = load_study(study_file("claims"))
    assert len(study.claims) == 14 and len(study.tables) == 12 and len(study.arms) == 39
    assert study.auction and study.batch_scaling.epochs == 6 and set(study.frontiers) == {"smelu", "deep"}
    assert (study.seeds, study.hours, study.quick_seeds, study.quick_hours) == ((0, 1, 2, 3, 4), 24.0, (0, 1, 2), 0.5)
    assert study.mature.warm_start_hours == 24 and len(study.mature.claims) == 11  # fixed before the warm-started pass
    assert not {"cowclip_keeps_auc_online", "factorization_helps_rare_combinations"} & set(study.mature.claims)
    explained = [c.id for c in study.claims if c.why_not]  # studies/claims_why.md, read when the study loads
    assert len(explained) == 13 and "Table 3's measure" in next(c.why_not for c in study.claims
                                                                 if c.id == "bias_constraints_cut_churn")
    cowclip = study.arms["batch16k_cowclip"].overrides  # "@cowclip" expanded
    assert "train.cowclip=true" in cowclip and not any(o.startswith("@") for o in cowclip)
    acting = study.arms["batch16k_cowclip_acting"].overrides  # where the clip acts (benchmarks/experiments/cowclip_acts.py)
    assert {"train.cowclip_gradient=example_sum", "model.embedding_init_std=0.01"} <= set(acting)


@pytest.mark.parametrize("old, new, message", [
    ('name = "typo"', 'name = "typo"\nseed = 3', "typo.*seed: unknown key"),
    ('["@rank"]', '["@rnak"]', r"arms\.rank\.overrides: unknown group '@rnak'"),
    ('["@rank"]', '["model.nonexistent=1"]', r"arms\.rank\.overrides: .*model\.nonexistent"),
    ("replica = true", 'replica = "yes"', r"arms\.rank\.replica: expected true or false"),
    ('"rank.per_query_auc"', '"rnak.per_query_auc"', r"claims\[0\]\.measure\.difference: unknown arm 'rnak'"),
    ('"rank.per_query_auc"', '"rank.per_query_acu"', r"claims\[0\]\.measure\.difference: unknown metric 'per_query_acu'"),
    ("difference = [", "diff = [", r"claims\[0\]\.measure\.diff: unknown key"),
    ('expect = "increase"', 'expect = "up"', r"claims\[0\]\.expect: 'up' is not allowed"),
    ('expect = "increase"', 'expect = "non_inferior"', r"claims\[0\]\.control: a non-inferiority claim needs a control"),
    ('metrics = ["pv_auc"]', 'metrics = ["pv_acu"]', r"tables\[0\]\.metrics: unknown metric 'pv_acu'"),
    ('arms = ["baseline", "rank"]', 'arms = ["baseline", "rnak"]', r"tables\[0\]\.arms: unknown arm 'rnak'"),
    ("seeds = 2", "seeds = 1", "seeds: expected a count ≥ 2"),
    ("[arms.baseline]\n", "", r"arms\.baseline: required"),
    ("[arms.rank]", "[arms.auction]", r"arms\.auction: the name is taken by a protocol"),
    ('id = "c"', 'id = "c"\nmargin = -1', r"claims\[0\]\.margin: expected a number ≥ 0"),
    ('id = "c"', 'id = "my claim"', r"claims\[0\]\.id: 'my claim': use letters, digits"),
    ('"baseline.per_query_auc"', '"baseline.pd"', r"'baseline\.pd': arm 'baseline' runs no replica, so it has no pd"),
    ('"rank.per_query_auc"', '"rank.test_auc"', r"test_auc is a batch-scaling protocol number"),
    ('"rank.per_query_auc"', '"rank.component_spread"', r"arm 'rank' is no ensemble"),
    ("[arms.baseline]\n", '[arms.baseline]\nnuisance = "order"\n', r"arms\.baseline\.nuisance: only an arm with replica"),
    ('arms = ["baseline", "rank"]', 'arms = ["rank"]', r"tables\[0\]\.arms: a table compares at least two arms"),
    ('scenario = "', 'scenario = "nowhere.toml"\n#', r"scenario: no such scenario 'nowhere\.toml'"),
])
def test_a_typo_is_a_one_line_error_naming_its_place(tmp_path, old, new, message):
    assert old in STUDY
    with pytest.raises(StudyError, match=message) as error:
        load_study(_study(tmp_path, STUDY.replace(old, new, 1)))
    assert "\n" not in str(error.value) and "study.toml" in str(error.value)


def test_explanations_are_read_and_must_name_claims(tmp_path):
    text = STUDY.replace('hours = 0.1', 'hours = 0.1\nexplanations = "why.md"')
    study = load_study(_study(tmp_path, text, why="# Why\n\n## c\n\nThe world has\nno such effect.\n"))
    assert study.claims[0].why_not == "The world has no such effect."
    with pytest.raises(StudyError, match="explanations: section 'd' names no claim"):
        load_study(_study(tmp_path, text, why="## d\n\nA reason for a claim that is not there.\n"))
    with pytest.raises(StudyError, match="explanations: section 'my-claim' names no claim"):  # any heading counts
        load_study(_study(tmp_path, text, why="## c\n\nA reason.\n\n## my-claim\n\nA typo's reason.\n"))
    with pytest.raises(StudyError, match="explanations: no such file"):
        load_study(_study(tmp_path, text.replace("why.md", "gone.md")))


def test_the_seeds_hours_and_arms_a_run_uses(tmp_path):
    study = load_study(_study(tmp_path, STUDY.replace("seeds = 2", "seeds = [3, 7]") + "[quick]\nseeds = [5, 9]\nhours = 0.05\n"))
    assert study.plan() == ([3, 7], 0.1, None)  # the study's own
    assert study.plan(quick=True) == ([5, 9], 0.05, ["baseline", "rank"])  # its [quick] seeds, not a count of them
    assert study.plan(seeds=3) == ([0, 1, 2], 0.1, None) and study.plan(seeds=2, first_seed=0) == ([0, 1], 0.1, None)
    assert study.plan(first_seed=10, hours=2.0) == ([10, 11], 2.0, None)  # the study's number of seeds, from 10
    with pytest.raises(StudyError, match="at least 2 seeds"):
        study.plan(seeds=1)
    with pytest.raises(StudyError, match="--quick: the study .* has no \\[quick\\] table"):
        load_study(_study(tmp_path)).plan(quick=True)


MATURE = '[mature]\nwarm_start_hours = 0.05\nclaims = ["c"]\n'


def test_the_mature_pass_warm_starts_every_arm_and_keeps_only_its_claims(tmp_path, monkeypatch):
    from simulator.experiments import cells
    from simulator.experiments.cells import Cell

    arms = "[arms.wide]\noverrides = [\"model.quality_hidden=[128]\"]\n[arms.distill]\n" \
           "overrides = [\"train.distillation_weight=0.5\"]\n"
    text = STUDY.replace("[arms.baseline]\n", "[arms.baseline]\n" + arms).replace(
        'measure = {difference = ["rank.per_query_auc", "baseline.per_query_auc"]}',
        'measure = {difference = ["rank.per_query_auc", "baseline.per_query_auc"]}\n'
        'side = [{label = "wider", difference = ["wide.pv_auc", "baseline.pv_auc"]}]') + """[[claims]]
id = "d"
claim = "distillation lifts PV AUC"
source = "s"
effect = "e"
expect = "increase"
measure = {difference = ["distill.pv_auc", "baseline.pv_auc"]}
"""
    study = load_study(_study(tmp_path, text + MATURE))
    mature = study.mature_pass()
    assert [c.id for c in mature.claims] == ["c"] and mature.warm_start_hours == 0.05 and study.warm_start_hours == 0
    assert mature.arms["rank"].overrides == ("train.rank_loss_weight=0.3", "run.warm_start_hours=0.05")
    # the kept claim's arms, its side measure's included; the dropped claim's arm is not run
    assert mature.claim_arms == ["baseline", "wide", "rank"] and study.claim_arms == ["baseline", "wide", "distill", "rank"]
    assert not mature.auction and not mature.attribution_arms and not mature.feedback_arms
    assert Cell("rank", 0, 0.1).key(mature) != Cell("rank", 0, 0.1).key(study)  # never served from the cold cache
    warm_key, cold_key = Cell("rank", 0, 0.1).key(mature), Cell("rank", 0, 0.1).key(study)
    monkeypatch.setattr(cells, "WARM_START_VERSION", cells.WARM_START_VERSION + 1)  # the pre-training's code changed
    assert Cell("rank", 0, 0.1).key(mature) != warm_key and Cell("rank", 0, 0.1).key(study) == cold_key
    with pytest.raises(StudyError, match="--mature: the study .* has no \\[mature\\] table"):
        load_study(_study(tmp_path)).mature_pass()
    for old, new, message in (('claims = ["c"]', 'claims = ["e"]', r"mature\.claims: unknown claim 'e'; claims: c, d"),
                              ('claims = ["c"]', 'claims = []', r"mature\.claims: name at least one claim"),
                              ("= 0.05", "= -1", r"mature\.warm_start_hours: expected simulated hours > 0"),
                              ("= 0.05", "= 0.05\nhours = 2", r"mature\.hours: unknown key")):
        with pytest.raises(StudyError, match=message):
            load_study(_study(tmp_path, text + MATURE.replace(old, new)))


def test_a_study_warm_starts_all_its_arms_or_none(tmp_path, monkeypatch):
    """An arm may not warm-start apart from the others; a scenario that warm-starts makes the whole study warm."""
    apart = STUDY.replace('overrides = ["@rank"]',
                          'overrides = ["train.rank_loss_weight=0.3", "run.warm_start_hours=0.05"]')
    assert apart != STUDY
    with pytest.raises(StudyError, match=r"arms\.rank\.overrides: run\.warm_start_hours: this arm's 0\.05 h, the "
                                         r"scenario's 0 h; every arm of a study starts alike") as error:
        load_study(_study(tmp_path, apart))
    assert "\n" not in str(error.value)
    warm = tmp_path / "warm.toml"
    warm.write_text(SMOKE.read_text().replace("[run]\n", "[run]\nwarm_start_hours = 0.05\n", 1))
    study = load_study(_study(tmp_path))
    assert study.warm_start_hours == 0 and study.on_scenario(str(warm)).warm_start_hours == 0.05
    cold_arm = STUDY.replace('overrides = ["@rank"]',
                             'overrides = ["train.rank_loss_weight=0.3", "run.warm_start_hours=0"]')
    with pytest.raises(StudyError, match=r"--scenario .*warm\.toml: arms\.rank\.overrides: .*this arm's 0 h, the scenario's 0\.05 h"):
        load_study(_study(tmp_path, cold_arm)).on_scenario(str(warm))
    # a warm-starting scenario's cells, its protocol's included (its logs come from a warm-started run), carry the
    # warm start's code version in their keys; the auction protocol runs no loop and keeps its key
    from simulator.experiments import cells
    from simulator.experiments.cells import Cell

    scaling = STUDY + '[protocols]\nauction = true\n[protocols.batch_scaling]\nepochs = 1\nsettings = {small = ["train.batch_size=512"]}\n'
    cold_study = load_study(_study(tmp_path, scaling))
    warm_study = cold_study.on_scenario(str(warm))
    keys = {(name, study.warm_start_hours): Cell(name, 0, 0.1).key(study) for name in ("rank", "batch_scaling", "auction")
            for study in (cold_study, warm_study)}
    monkeypatch.setattr(cells, "WARM_START_VERSION", cells.WARM_START_VERSION + 1)
    kept = {(name, study.warm_start_hours): Cell(name, 0, 0.1).key(study) == keys[name, study.warm_start_hours]
            for name in ("rank", "batch_scaling", "auction") for study in (cold_study, warm_study)}
    assert kept == {("rank", 0): True, ("batch_scaling", 0): True, ("auction", 0): True,
                    ("rank", 0.05): False, ("batch_scaling", 0.05): False, ("auction", 0.05): True}


def test_a_mature_claim_cannot_read_the_offline_protocol(tmp_path):
    import shutil

    shutil.copy(STUDIES / "claims_why.md", tmp_path)
    text = study_file("claims").read_text().replace('claims = ["smelu_lowers_pd",',
                                                    'claims = ["cowclip_keeps_auc_at_large_batch", "smelu_lowers_pd",')
    with pytest.raises(StudyError, match="mature.claims: 'cowclip_keeps_auc_at_large_batch' reads the batch-scaling"):
        load_study(_study(tmp_path, text))


def test_the_mature_pass_runs_from_the_cli_each_arm_from_its_own_pre_trained_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the warm-start cache (run.warm_start_cache) is relative: runs/warm-start here
    out = tmp_path / "out"
    assert main(["experiment", str(_study(tmp_path, STUDY + MATURE)), "--mature", "--out", str(out),
                 "--cache", str(tmp_path / "cells"), "--workers", "1", "--quiet"]) == 0
    result = json.loads((out / "claims.json").read_text())
    assert result["warm_start_hours"] == 0.05 and [c["id"] for c in result["claims"]] == ["c"]
    assert "each after 0.05 simulated hours of warm start" in (out / "claims.md").read_text()
    # one pre-trained state per system: the baseline on 2 seeds, the rank arm and its replica on 2 seeds
    assert len(list((tmp_path / "runs" / "warm-start").iterdir())) == 6
    with pytest.raises(SystemExit):  # one pass or the other
        main(["experiment", str(out.parent / "study.toml"), "--mature", "--quick"])


def test_a_cell_key_holds_the_whole_arm_and_the_scenario(tmp_path):
    from simulator.experiments.cells import Cell

    study = load_study(_study(tmp_path))
    single = dataclasses.replace(study, arms={**study.arms, "rank": dataclasses.replace(study.arms["rank"], replica=False)})
    order = dataclasses.replace(study, arms={**study.arms, "rank": dataclasses.replace(study.arms["rank"], nuisance="order")})
    keys = {Cell("rank", 0, 0.1).key(s) for s in (study, single, order, study.on_scenario("default"))}
    assert len(keys) == 4  # a cached replica arm never answers for a single one, nor one scenario for another
    assert Cell("rank", 0, 0.1).key(study) == Cell("rank", 0, 0.1).key(load_study(_study(tmp_path)))
    with pytest.raises(StudyError, match="--scenario: no such scenario 'nowhere'"):
        study.on_scenario("nowhere")


def test_a_worker_that_dies_is_a_recorded_failure():
    import os

    from simulator.experiments.runner import Job, run_jobs

    outcomes = []
    counts = run_jobs([Job("dies", "a cell whose process exits", os._exit, (3,))], finished=lambda job: False,
                      store=outcomes.append, workers=1)
    assert counts["failed"] == 1 and outcomes[0].failed and "worker lost" in outcomes[0].error


def test_a_user_study_runs_from_the_cli_cached_and_resumable(tmp_path, capsys):
    """The shipped example: its claim, table and figures; a re-run is all cache; a lost cell is all a re-run runs."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["experiment", str(study_file("example")), "--hours", "0.05", "--out", str(out), "--cache", str(cache)]
    assert main(args) == 0
    first = json.loads((out / "claims.json").read_text())
    assert first["study"] == "example" and [c["id"] for c in first["claims"]] == ["rank_loss_lifts_per_query_auc"]
    assert "Rank loss against log loss alone" in (out / "models.md").read_text()
    assert set(first["figures"]) == {"claims", "techniques"} and (out / "claims.png").stat().st_size > 500
    cells = sorted(cache.glob("*.json"))
    assert len(cells) == 4 and first["failed_cells"] == {}  # 2 arms × 2 seeds
    capsys.readouterr()
    assert main(args) == 0  # every cell from the cache: the same numbers, nothing run
    assert json.loads((out / "claims.json").read_text())["claims"] == first["claims"]
    assert "4 of 4 cells from the cache" in capsys.readouterr().err
    cells[0].unlink()  # as if the run had been killed before this cell finished
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "3 of 4 cells from the cache" in err and err.count("[1/1 ") == 1
    assert json.loads((out / "claims.json").read_text())["claims"] == first["claims"]  # same seed, same numbers


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_failed_cell_is_recorded_and_the_rest_still_report(tmp_path, backend, monkeypatch):
    """The one runner, on either backend: a cell that fails is recorded, the others run and report (on Ray, one seed:
    a cell a worker, as the local backend's two seeds already cover the bookkeeping)."""
    from simulator.report.claims_report import report

    import tempfile

    from simulator.experiments import runner

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    made, mkdtemp = [], tempfile.mkdtemp  # the folders of Ray's session files, which the runner must remove after

    def recorded(**options):
        folder = mkdtemp(**options)
        made.extend([folder] if options.get("prefix") == "adfray-" else [])
        return folder

    monkeypatch.setattr(runner.tempfile, "mkdtemp", recorded)
    study = load_study(_study(tmp_path))
    broken = dataclasses.replace(study, arms={"baseline": study.arms["baseline"],
                                              "rank": Arm("rank", ("train.batch_size=0",))})
    seeds = [0, 1] if backend == "local" else [0]
    entries, failures = report(broken, tmp_path / "out", seeds, 0.05, arms=["rank"], cache_dir=tmp_path / "cache",
                               backend=backend)
    assert len(failures) == len(seeds) and all("train.batch_size" in error for error in failures.values())
    assert entries == []  # the claim's arm failed: no verdict, rather than a made-up one
    assert len(list((tmp_path / "cache").glob("*.error.json"))) == len(seeds)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2 * len(seeds)
    assert len(made) == (backend == "ray") and not any(os.path.exists(folder) for folder in made)
    assert json.loads((tmp_path / "out" / "claims.json").read_text())["failed_cells"] == failures
