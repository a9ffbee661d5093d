"""Auction explorer: build one auction (bids, qualities, reserves, treatments, page budget) or load one from the JSON
`adfloor auction` reads; see the mechanisms side by side, with why each ad pays what it pays; download both.

Built auctions have separable CTRs, quality × position effect × treatment multiplier (the teaching setting); a
loaded one may have any CTRs. Everything is computed by `auction.instance_solver` / `auction.reference` (exact).
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from auction.instance import InstanceError, from_json, separable, to_json
from auction.instance_solver import solve_instance
from auction.reference import explain, gsp
from auction.reserves import RESERVE_MODES
from ui_treatments import CATALOGUE

# The mechanisms the page can show: label → (what it runs, what it means).
MECHANISMS = {
    "VCG": ("vcg", "exact VCG over every (ad, treatment, position) page the budget allows; each ad pays the harm it "
                   "does to the others"),
    "GSP, classic (text only)": ("gsp_classic", "the textbook GSP: the text treatment only, ads ranked by bid × "
                                                "quality, each paying the next score over its own quality"),
    "GSP, all treatments": ("gsp", "the loop's GSP: VCG's page, each ad paying its threshold price (the least bid "
                                   "that keeps its placement)"),
    "First price": ("first_price", "VCG's page, each ad paying its bid"),
}

st.title("Auction explorer")
st.caption("One query's auction, solved exactly. Positions count from 1 at the top; ad ids count from 0, as in the "
           "JSON files `adfloor auction` reads.")

DEFAULT_ADS = pd.DataFrame({
    "bid": [2.0, 1.5, 1.6, 1.2, 0.8],
    "reserve": [0.0, 0.0, 0.0, 0.0, 0.0],
    "quality": [0.10, 0.10, 0.09, 0.10, 0.12],
    **{t.name: [True] * 5 for t in CATALOGUE},
}).rename_axis("ad")
DEFAULT_POSITIONS = pd.DataFrame({"position effect": [1.0, 0.7, 0.5, 0.3]}, index=pd.Index([1, 2, 3, 4], name="position"))
DEFAULT_TREATMENTS = pd.DataFrame({"treatment": [t.name for t in CATALOGUE], "height": [t.height for t in CATALOGUE],
                                   "multiplier": [t.examination_multiplier for t in CATALOGUE]})


def _built(budget_on: bool, budget: float):
    """The auction the tables describe, and the same ads in the text treatment only (classic GSP's input)."""
    left, right = st.columns([3, 2])
    ads = left.data_editor(DEFAULT_ADS, num_rows="dynamic", key="ads", hide_index=False,
                           column_config={"bid": st.column_config.NumberColumn(help="value per click (truthful)"),
                                          "reserve": st.column_config.NumberColumn(help="per click"),
                                          "quality": st.column_config.NumberColumn(help="CTR at position 1 as text")})
    positions = right.data_editor(DEFAULT_POSITIONS, num_rows="dynamic", key="positions", hide_index=False)
    treatment_table = right.data_editor(DEFAULT_TREATMENTS, disabled=["treatment"], key="treatments", hide_index=True)
    names = list(treatment_table["treatment"])
    treatments = list(zip(names, treatment_table["height"].astype(float), treatment_table["multiplier"].astype(float)))
    common = dict(bids=list(ads["bid"].astype(float)), reserves=list(ads["reserve"].astype(float)),
                  quality=list(ads["quality"].astype(float)),
                  position_effects=list(positions["position effect"].astype(float)))
    instance = separable(**common, treatments=treatments, available=ads[names].astype(bool).values.tolist(),
                         space_budget=float(budget) if budget_on else None)
    return instance, separable(**common, treatments=treatments[:1])


def _loaded():
    """An auction from a JSON file or pasted text (the schema `adfloor auction` reads); None until one is given."""
    upload = st.file_uploader("Auction JSON file", type=["json"], help="The format `adfloor auction` reads "
                              "(shared/auction_cases' `input`, or a file this page downloaded).")
    pasted = st.text_area("…or paste its JSON", "", height=120)
    text = upload.getvalue().decode("utf-8", errors="replace") if upload is not None else pasted
    if not text.strip():
        st.info("Choose a JSON file or paste one.")
        st.stop()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InstanceError(f"bad JSON: {err}") from None
    instance = from_json(data)
    st.dataframe(pd.DataFrame([{"ad": a, "bid": instance.bids[a], "reserve": instance.reserves[a],
                                "treatments": ", ".join(instance.treatment_names[a])} for a in range(instance.num_ads)]),
                 hide_index=True)
    st.caption(f"{instance.num_positions} positions, page height budget "
               f"{'none' if instance.space_budget is None else format(instance.space_budget, 'g')}.")
    return instance, None


source = st.radio("Auction", ["Build one here", "Load a JSON file"], horizontal=True,
                  help="Built auctions have separable CTRs; a loaded one may have any CTRs.")
settings = st.columns(3)
budget_on = settings[0].checkbox("Page height budget", value=True, disabled=source != "Build one here")
budget = settings[1].number_input("Budget (lines)", min_value=0.0, value=13.0,
                                  disabled=not budget_on or source != "Build one here")
mode = settings[2].radio("Reserve semantics", RESERVE_MODES, horizontal=True,
                         help="cost: the reserve is a cost the objective subtracts; filter: ads below it are left out")
chosen = st.multiselect("Mechanisms", list(MECHANISMS), default=["VCG", "GSP, classic (text only)"])
try:
    instance, text_only = _built(budget_on, budget) if source == "Build one here" else _loaded()
    results = {}
    for label in chosen:
        kind = MECHANISMS[label][0]
        if kind == "gsp_classic":
            if text_only is None:
                continue  # a loaded auction has no separable text-only version
            results[label] = (gsp(text_only), text_only)
        else:
            results[label] = (solve_instance(instance, kind, mode)[0], instance)
except (InstanceError, ValueError, KeyError) as err:
    st.error(f"Invalid auction: {err}")
    st.stop()

st.download_button("Download this auction (JSON)", json.dumps(to_json(instance), indent=2), "auction.json",
                   "application/json", help="Load it here again, or run `adfloor auction auction.json --explain`.")
if not results:
    st.info("Choose at least one mechanism (classic GSP needs an auction built here).")
    st.stop()
columns = st.columns(len(results))
for column, (label, (outcome, solved)) in zip(columns, results.items()):
    data = outcome.as_json(solved)
    column.subheader(label)
    column.caption(MECHANISMS[label][1] + (f"; {mode} reserves" if MECHANISMS[label][0] != "gsp_classic" else ""))
    column.dataframe(pd.DataFrame([
        {"position": a["position"] + 1, "ad": a["ad"], "treatment": a["format_name"],
         "price/click": data["ads"][a["ad"]]["price_per_click"], "payment/view": data["ads"][a["ad"]]["payment"],
         "threshold/click": data["threshold_price_per_click"].get(str(a["ad"]))}
        for a in data["allocation"]], columns=["position", "ad", "treatment", "price/click", "payment/view",
                                              "threshold/click"]),
        hide_index=True, width="stretch",
        column_config={name: st.column_config.NumberColumn(format="%.4g", width="small")
                       for name in ("price/click", "payment/view", "threshold/click")})
    column.metric("Revenue per view", f"{data['revenue']:.4f}", help="Σ payments per page view (money units)")
    column.metric("Welfare per view", f"{data['welfare']:.4f}", help="Σ bid × CTR of the shown ads (money units)")
    column.expander("Why", expanded=True).text(explain(outcome, solved))
    column.download_button("Result (JSON)", json.dumps(data, indent=2), f"{MECHANISMS[label][0]}.json",
                           "application/json", key=f"download-{label}")
