"""`adfloor auction`: JSON in, outcome JSON out, --explain, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auction.instance import from_json
from auction.instance_solver import batched_outcome, slate_bound
from auction.reference import solve
from simulator.cli import main
from tests.conftest import AUCTION_CASES


def _case(name: str) -> dict:
    return next(c for c in AUCTION_CASES if c["id"] == name)


def _write(tmp_path, data, name="instance.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_auction_prints_the_outcome_schema(tmp_path, capsys):
    case = _case("rich_knapsack_mixed_formats")
    assert main(["auction", _write(tmp_path, case)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"allocation", "ads", "welfare", "objective", "revenue", "threshold_price_per_click"} <= result.keys()
    assert [(a["position"], a["ad"], a["format"]) for a in result["allocation"]] == [(0, 0, 2), (1, 1, 1), (2, 2, 0)]
    assert {"ad", "shown", "position", "format", "ctr", "payment", "price_per_click"} <= result["ads"][0].keys()
    assert result["revenue"] == pytest.approx(case["expected"]["vcg"]["revenue"], rel=1e-9)
    assert result["threshold_price_per_click"]["0"] == pytest.approx(1.44, rel=1e-9)


def test_instance_without_case_wrapper_gsp_and_filter(tmp_path, capsys):
    case = _case("reserve_uniform_varying_quality_semantics_diverge")
    path = _write(tmp_path, case["input"])
    for extra, expected in ((["--mechanism", "gsp"], case["expected"]["gsp"]),
                            (["--reserve-mode", "filter"], case["expected"]["vcg_filter"]),
                            ([], case["expected"]["vcg"])):
        assert main(["auction", path, *extra]) == 0
        assert json.loads(capsys.readouterr().out)["revenue"] == pytest.approx(expected["revenue"], rel=1e-9)


def test_explain_says_who_won_and_why(tmp_path, capsys):
    assert main(["auction", _write(tmp_path, _case("eos_200_100_truthful")), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "Position 1: ad 0" in out and "Pays 3/click" in out and "Not shown (pay nothing): ad 2" in out


GOOD = {"num_positions": 2, "ads": [{"bid": 1.0, "formats": [{"height": 1}]}], "ctr": [[[0.1, 0.05]]]}
BAD = {
    "negative ctr": ({**GOOD, "ctr": [[[0.1, -0.05]]]}, "instance.ctr[0][0][1]"),
    "ragged ctr": ({**GOOD, "ctr": [[[0.1]]]}, "instance.ctr[0][0]"),
    "nan bid": ('{"num_positions": 2, "ads": [{"bid": NaN, "formats": [{"height": 1}]}], "ctr": [[[0.1, 0.05]]]}',
                "instance.ads[0].bid"),
    "missing bid": ({**GOOD, "ads": [{"formats": [{"height": 1}]}]}, "instance.ads[0].bid"),
    "missing ctr": ({k: v for k, v in GOOD.items() if k != "ctr"}, "instance.ctr"),
    "not json": ("{", "bad JSON"),
}


@pytest.mark.parametrize("name", BAD)
def test_invalid_instance_exits_2_with_one_line(name, tmp_path, capsys):
    data, needle = BAD[name]
    assert main(["auction", _write(tmp_path, data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_missing_instance_file_exits_2(tmp_path, capsys):
    assert main(["auction", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_explain_states_the_monotone_rule_and_which_ctrs_it_changed(tmp_path, capsys):
    """The issue's example: B's CTR rises with position, so the rule changes it, and nobody pays below 0."""
    instance = {"num_positions": 2, "space_budget": None, "ctr": [[[0.5, 0.1]], [[0.01, 0.4]]],
                "ads": [{"bid": 1, "formats": [{"name": "text", "height": 1}]},
                        {"bid": 1, "formats": [{"name": "text", "height": 1}]}]}
    assert main(["auction", _write(tmp_path, instance), "--explain"]) == 0
    printed = capsys.readouterr().out
    assert "made non-increasing along positions" in printed and "this changed ad 1 as 'text'" in printed
    assert "Pays -" not in printed and "revenue 0." in printed
    falling = {**instance, "ctr": [[[0.5, 0.1]], [[0.4, 0.01]]]}
    assert main(["auction", _write(tmp_path, falling, "falling.json"), "--explain"]) == 0
    assert "every CTR here already was" in capsys.readouterr().out


def test_first_price_charges_the_bid_on_the_vcg_page(tmp_path, capsys):
    case = _case("rich_knapsack_mixed_formats")
    assert main(["auction", _write(tmp_path, case), "--mechanism", "first_price", "--explain"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert [(a["position"], a["ad"]) for a in result["allocation"]] == [(0, 0), (1, 1), (2, 2)]
    for ad in result["ads"]:
        if ad["shown"]:
            assert ad["price_per_click"] == pytest.approx(case["input"]["ads"][ad["ad"]]["bid"], rel=1e-12)
    assert "(first price)" in out


def _large_instance(num_positions: int, space_budget=None, text_height=2) -> dict:
    """20 ads × 3 formats: far too many slates to enumerate at K = 8."""
    rng = np.random.default_rng(num_positions)
    effects = [0.8**p for p in range(num_positions)]
    formats = [("text", text_height), ("ext", 3), ("image", 4)]
    quality = rng.uniform(0.02, 0.2, 20)
    return {"num_positions": num_positions, "space_budget": space_budget,
            "ads": [{"bid": float(b), "reserve_per_click": 0.3, "formats": [{"name": n, "height": h} for n, h in formats]}
                    for b in rng.uniform(0.5, 3.0, 20)],
            "ctr": [[[float(q * m * e) for e in effects] for m in (1.0, 1.2, 1.5)] for q in quality]}


@pytest.mark.parametrize("case", AUCTION_CASES[::3], ids=[c["id"] for c in AUCTION_CASES[::3]])
def test_the_batched_path_gives_the_references_outcome(case):
    """What `adfloor auction` prints for instances too large to enumerate, checked where both can run."""
    instance = from_json(case)
    if instance.num_positions > 8 or (instance.space_budget is not None
                                      and any(h != round(h) for hs in instance.heights for h in hs)):
        pytest.skip("outside the batched solver's inputs")
    for mode in ("cost", "filter"):
        reference, batched = solve(instance, mode), batched_outcome(instance, mode)
        assert batched.slate.picks == reference.slate.picks, mode
        for field in ("payments", "prices", "threshold_prices", "counterfactual"):
            got, want = getattr(batched, field), getattr(reference, field)
            assert got.keys() == want.keys()
            assert all(got[a] == pytest.approx(want[a], rel=1e-4, abs=1e-5) for a in want), (mode, field)


@pytest.mark.parametrize("mechanism", ["vcg", "gsp", "first_price"])
@pytest.mark.parametrize("space_budget", [None, 16])
def test_eight_slots_of_twenty_ads_go_to_the_batched_solver(tmp_path, capsys, mechanism, space_budget):
    data = _large_instance(8, space_budget)
    assert slate_bound(from_json(data)) > 10**9
    assert main(["auction", _write(tmp_path, data), "--mechanism", mechanism, "--explain"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert result["solver"] == "batched" and len(result["allocation"]) == (8 if space_budget is None else 5)
    if space_budget is not None:
        assert sum(data["ads"][a["ad"]]["formats"][a["format"]]["height"] for a in result["allocation"]) <= 16
    for ad in result["ads"]:
        if ad["shown"]:
            bid, reserve = data["ads"][ad["ad"]]["bid"], data["ads"][ad["ad"]]["reserve_per_click"]
            assert reserve - 1e-6 <= ad["price_per_click"] <= bid + 1e-6
    assert "Position 7: ad" in out if space_budget is None else "Position 4: ad" in out


@pytest.mark.parametrize(("data", "needle"), [(_large_instance(9), "instance.num_positions: at most 8"),
                                              (_large_instance(8, 16, text_height=1.5), "heights")])
def test_instances_the_batched_solver_cannot_take_exit_2(tmp_path, capsys, data, needle):
    assert main(["auction", _write(tmp_path, data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_an_ads_equally_good_treatments_tie_to_its_first_listed_in_both_paths():
    """Treatments keep each ad's own order in the dense arrays, so the batched path breaks this tie as the reference."""
    data = {"num_positions": 2, "ads": [{"bid": 1.0, "formats": [{"name": "zeta", "height": 1}, {"name": "alpha", "height": 1}]},
                                        {"bid": 0.5, "formats": [{"name": "zeta", "height": 1}, {"name": "alpha", "height": 1}]}],
            "ctr": [[[0.2, 0.1], [0.2, 0.1]], [[0.3, 0.2], [0.1, 0.05]]]}
    instance = from_json(data)
    assert batched_outcome(instance).slate.picks == solve(instance).slate.picks == ((0, 0), (1, 0))


def test_gsp_with_one_treatment_is_the_classic_rule_at_any_size(tmp_path, capsys):
    data = _large_instance(8)
    data["ads"] = [{**ad, "formats": ad["formats"][:1]} for ad in data["ads"]]
    data["ctr"] = [rows[:1] for rows in data["ctr"]]
    assert main(["auction", _write(tmp_path, data), "--mechanism", "gsp"]) == 0
    result = json.loads(capsys.readouterr().out)
    bids = [ad["bid"] * data["ctr"][ad_index][0][0] for ad_index, ad in enumerate(data["ads"])]
    assert result["solver"] == "reference"
    assert [a["ad"] for a in result["allocation"]] == sorted(range(20), key=lambda a: -bids[a])[:8]  # rank by score


def test_an_instance_too_large_for_the_dp_states_exits_2(tmp_path, capsys):
    data = _large_instance(8, space_budget=400, text_height=60)  # 401 height levels
    data["ads"], data["ctr"] = data["ads"] * 150, data["ctr"] * 150  # 3,000 ads: ~3.7 GiB of states
    assert main(["auction", _write(tmp_path, data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too large for the batched solver" in err[0]


def test_an_instance_survives_its_json_round_trip():
    from auction.instance import from_json, to_json
    from tests.conftest import AUCTION_CASES

    for case in AUCTION_CASES:
        instance = from_json(case)
        assert from_json(json.loads(json.dumps(to_json(instance)))) == instance
