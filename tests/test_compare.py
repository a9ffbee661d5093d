"""Paired replays: identical systems show no difference; a nuisance seed alone makes them diverge."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.cli import main
from simulator.config import replace
from simulator.experiments.paired import compare
from tests.conftest import SMOKE


@pytest.fixture(scope="module")
def short(smoke_scenario) -> simulator.Scenario:
    return replace(smoke_scenario, run__duration_hours=0.5)


def test_identical_systems_have_no_differences(short):
    result = compare(short, short, seeds=[0, 1], names=("a", "b"))
    summary = result.summary().set_index("quantity")["mean"]
    assert summary["ad_set_churn"] == 0 and summary["winner_churn"] == 0 and summary["prediction_difference"] == 0
    for metric in ("revenue", "welfare", "clicks", "pv_logloss"):
        assert summary[f"{metric}_diff"] == 0


def test_a_nuisance_seed_alone_changes_predictions_and_auctions(short):
    other = replace(short, model__init_seed=1)
    result = compare(short, other, seeds=[0], names=("seed0", "seed1"))
    ticks = result.ticks
    assert np.array_equal(ticks["queries"], simulator.run(short).metrics()["queries"])  # same traffic
    totals = result.per_seed.iloc[0]
    assert totals["prediction_difference"] > 0.01
    assert 0 < totals["winner_churn"] <= totals["ad_set_churn"] <= 1
    assert (ticks["prediction_difference"].dropna() >= 0).all()


def test_oracle_vs_learned_shows_the_welfare_gap(short):
    result = compare(short, replace(short, model__oracle=True), seeds=[0, 1], names=("learned", "oracle"))
    assert (result.per_seed["welfare_diff"] > 0).all()  # the ideal system earns more welfare on the same traffic


def test_compare_cli_writes_results_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    status = main(["compare", str(SMOKE), "--vary", "model.transfer=sigmoid,exp", "--seeds", "2",
                   "--set", "run.duration_hours=0.3", "--out", str(out), "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "ad_set_churn" in printed and "transfer=exp" in printed
    ticks = pd.read_parquet(out / "comparison_ticks.parquet")
    assert set(ticks["seed"]) == {0, 1} and {"revenue_diff", "winner_churn", "prediction_difference"} <= set(ticks)
    assert len(pd.read_parquet(out / "comparison_seeds.parquet")) == 2
    assert json.loads((out / "summary.json").read_text())["names"] == ["transfer=sigmoid", "transfer=exp"]
    assert (out / "comparison.png").stat().st_size > 10_000
    assert simulator.load(out / "config_transfer=exp.toml").model.transfer == "exp"


@pytest.mark.parametrize("args", [["--vary", "model.transfer=exp"], [], ["--vary", "model.transfer=a,b,c"]])
def test_compare_cli_rejects_bad_arguments(args, capsys):
    assert main(["compare", str(SMOKE), *args]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_open_loop_control_trains_both_systems_on_the_same_logs(short):
    from simulator.loop.simulation import Simulation

    a = Simulation(short, keep_training_logs=True).run()
    b = Simulation(replace(short, model__init_seed=1), training_logs=a.training_logs).run()
    assert np.array_equal(a.pv_arrays()["label"], b.pv_arrays()["label"])  # B learned from A's examples
    assert not np.array_equal(a.pv_arrays()["prediction"], b.pv_arrays()["prediction"])
    closed = Simulation(replace(short, model__init_seed=1)).run()
    assert len(closed.pv_arrays()["label"]) != len(a.pv_arrays()["label"]) or \
        not np.array_equal(closed.pv_arrays()["label"], a.pv_arrays()["label"])  # closed loop: its own data


def test_open_loop_needs_learned_models(short):
    with pytest.raises(ValueError, match="open-loop"):
        compare(short, replace(short, model__oracle=True), seeds=[0], open_loop=True)


def test_probes_hold_the_predictions_the_auction_used(smoke_output):
    probes, log = smoke_output.probe_arrays(), smoke_output.log.frame()
    assert probes["pctr"].shape[1:] == (20, 3, 4) and np.all(probes["query"] % smoke_output.scenario.run.probe_every == 0)
    probed = log[log["query"].isin(probes["query"])]
    row = np.searchsorted(probes["query"], probed["query"].to_numpy())
    candidate = np.argmax(probes["candidates"][row] == probed["ad_id"].to_numpy()[:, None], axis=1)
    recorded = probes["pctr"][row, candidate, probed["treatment"].to_numpy(), probed["position"].to_numpy()]
    assert len(probed) > 100 and np.array_equal(recorded, probed["pctr"].to_numpy())


def test_interval_bands_are_t_intervals_with_n_minus_one_degrees_of_freedom():
    from simulator.measure.intervals import interval, interval_half_widths

    values = np.array([[1.0, 2.0], [2.0, np.nan], [4.0, 2.5], [3.0, 3.5], [5.0, 1.0]])
    # hand-computed: column 0 has sd √2.5 over 5 seeds, t(0.975, 4) = 2.7764; column 1 sd over 4 seeds, t(3) = 3.1824
    sd1 = np.std([2.0, 2.5, 3.5, 1.0], ddof=1)
    np.testing.assert_allclose(interval_half_widths(values), [2.7764451 * np.sqrt(2.5) / np.sqrt(5),
                                                              3.1824463 * sd1 / 2.0], rtol=1e-6)
    assert interval_half_widths(values)[0] == pytest.approx(interval(values[:, 0])[1])
    assert np.isnan(interval_half_widths(np.array([[1.0], [np.nan]]))[0])  # one value: no interval


def _hand_made_pair(smoke_output, treatments: int = 1):
    """Two runs of three queries (K positions, `treatments` treatments), with logs and probes of queries 0 and 2 made
    by hand.

    Shown ads — A: q0 (10, 11), q1 (12), q2 (13); B: q0 (11), q1 (12), q2 (14, 13). Probed candidates: q0 [10, 11],
    q2 [13, 14]; both models predict 0.1 everywhere except B at (q0, ad 10, top) = 0.3 and (q2, ad 14, top) = 0.05.
    """
    import dataclasses

    from simulator.loop.records import ColumnLog, ImpressionLog, ProbeRecord

    k = smoke_output.scenario.world.num_positions

    def run(slates, changes):
        log = ImpressionLog()
        query = np.array([q for q, ads in enumerate(slates) for _ in ads])
        position = np.array([p for ads in slates for p in range(len(ads))])
        zeros = np.zeros(len(query))
        log.append(minute=zeros, query=query, context=zeros.astype(int), device=zeros.astype(int), position=position,
                   treatment=zeros.astype(int),
                   ad_id=np.array([a for ads in slates for a in ads]), click=zeros, true_ctr=zeros, pctr=zeros,
                   price_per_click=zeros)
        pctr = np.full((2, 2, treatments, k), 0.1, np.float32)
        for (row, candidate, position_), value in changes.items():
            pctr[row, candidate, 0, position_] = value
        probes = ColumnLog(ProbeRecord._fields)
        probes.append(minute=np.zeros(2, np.float32), query=np.array([0, 2]), pctr=pctr, valid=np.ones((2, 2), bool),
                      candidates=np.array([[10, 11], [13, 14]]), relevance=np.full((2, 2), 0.1, np.float32),
                      context=np.zeros(2, np.int32), device=np.zeros(2, np.int32),
                      lift=np.ones((2, 2, treatments), np.float32))
        return dataclasses.replace(smoke_output, log=log, probes=probes, queries=3)

    a = run([[10, 11], [12], [13]], {})
    b = run([[11], [12], [14, 13]], {(0, 0, 0): 0.3, (1, 1, 0): 0.05})
    return a, b, k


def test_prediction_difference_and_churn_on_a_hand_computed_pair(smoke_output):
    from simulator.measure.paired import (
        ads_per_query_difference,
        churn,
        mean_prediction_difference,
    )

    a, b, k = _hand_made_pair(smoke_output)
    # relative differences 2|ya − yb| / (ya + yb): 2·0.2/0.4 = 1 at (q0, ad 10, top), 2·0.05/0.15 = 2/3 at (q2, ad 14, top)
    assert mean_prediction_difference(a, b, "probe_cells") == pytest.approx((1 + 2 / 3) / (2 * 2 * k))
    assert mean_prediction_difference(a, b, "primary_impressions") == pytest.approx(1 / 3)  # A showed 3 probed cells
    assert mean_prediction_difference(a, b, "shown_either") == pytest.approx((1 + 2 / 3) / 6)
    assert mean_prediction_difference(a, a, "probe_cells") == 0
    sets_differ, winner_differs = churn(a, b)
    assert sets_differ.tolist() == [True, False, True] and winner_differs.tolist() == [True, False, True]
    assert ads_per_query_difference(a, b) == pytest.approx((2 / 3) / (4 / 3))  # |2−1|, |1−1|, |1−2| over A's 4/3


def test_prediction_difference_counts_every_treatment_of_a_probe_cell(smoke_output):
    """With 3 treatments every probed (candidate, position) has 3 cells, each counted once: the same two differences
    over 3× the cells (the count once left the treatment axis out, so PD summed 3 cells per counted one, past its
    bound of 2)."""
    from simulator.measure.paired import mean_prediction_difference

    a, b, k = _hand_made_pair(smoke_output, treatments=3)
    assert mean_prediction_difference(a, b, "probe_cells") == pytest.approx((1 + 2 / 3) / (2 * 2 * 3 * k))


def test_the_comparison_table_reads_each_interval_as_a_statistician_would(short):
    from simulator.experiments.paired import BETWEEN, PER_SYSTEM, Comparison

    per_seed = {"seed": [0, 1, 2]}
    for metric in PER_SYSTEM:
        per_seed |= {f"{metric}_A": [1.0, 1.0, 1.0], f"{metric}_B": [2.0, 3.0, 4.0], f"{metric}_diff": [1.0, 2.0, 3.0]}
    per_seed["pv_auc_diff"] = [1.0, 1.1, 0.9]  # a tight difference: its interval excludes 0
    per_seed |= {metric: [0.2, 0.3, 0.4] for metric in BETWEEN}
    table = Comparison(("A", "B"), (short, short), [0, 1, 2], pd.DataFrame(), pd.DataFrame(per_seed)).frame()
    table = table.set_index("metric")
    half = 4.302653 / np.sqrt(3)  # t(0.975, 2 dof) × sd 1 / √3
    assert table.loc["revenue", "value"] == 2.0 and table.loc["revenue", "95 % high"] == pytest.approx(2.0 + half)
    assert table.loc["revenue", "excludes 0"] is False and table.loc["pv_auc", "excludes 0"] is True
    assert table.loc["revenue", "kind"] == "B − A" and table.loc["ad_set_churn", "kind"] == "between A and B"
    assert table.loc["ad_set_churn", "excludes 0"] is None and np.isnan(table.loc["ad_set_churn", "A"])
    one_seed = Comparison(("A", "B"), (short, short), [0], pd.DataFrame(), pd.DataFrame(per_seed).iloc[:1]).frame()
    assert one_seed["excludes 0"].isna().all()  # one seed has no interval, so nothing is resolved
    with pytest.raises(ValueError, match="seeds"):
        compare(short, short, seeds=[])
