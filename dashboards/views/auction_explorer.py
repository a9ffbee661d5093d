"""Auction explorer: edit one auction's bids, qualities, reserves, treatments and page budget; see VCG and GSP side by side.

CTR = quality × position effect × treatment multiplier (the separable teaching setting). Everything is
computed by `auction.reference` (exact); this page only collects inputs and shows results.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from auction.instance import InstanceError, separable
from auction.reference import explain, gsp, solve
from auction.reserves import RESERVE_MODES
from ui_treatments import CATALOGUE

st.title("Auction explorer")
st.caption("One query, exact VCG over (ad, treatment, position) next to GSP. Edit the tables; results update.")

DEFAULT_ADS = pd.DataFrame({
    "bid": [2.0, 1.5, 1.6, 1.2, 0.8],
    "reserve": [0.0, 0.0, 0.0, 0.0, 0.0],
    "quality": [0.10, 0.10, 0.09, 0.10, 0.12],
    **{t.name: [True] * 5 for t in CATALOGUE},
})
DEFAULT_POSITIONS = pd.DataFrame({"position effect": [1.0, 0.7, 0.5, 0.3]})
DEFAULT_TREATMENTS = pd.DataFrame({"treatment": [t.name for t in CATALOGUE], "height": [t.height for t in CATALOGUE],
                                   "multiplier": [t.examination_multiplier for t in CATALOGUE]})

left, right = st.columns([3, 2])
ads = left.data_editor(DEFAULT_ADS, num_rows="dynamic", key="ads")
positions = right.data_editor(DEFAULT_POSITIONS, num_rows="dynamic", key="positions")
treatment_table = right.data_editor(DEFAULT_TREATMENTS, disabled=["treatment"], key="treatments")
settings = st.columns(3)
budget_on = settings[0].checkbox("Page height budget", value=True)
budget = settings[1].number_input("Budget (lines)", min_value=0.0, value=13.0, disabled=not budget_on)
mode = settings[2].radio("Reserve semantics", RESERVE_MODES, horizontal=True)

try:
    names = list(treatment_table["treatment"])
    treatments = list(zip(names, treatment_table["height"].astype(float), treatment_table["multiplier"].astype(float)))
    common = dict(bids=list(ads["bid"].astype(float)), reserves=list(ads["reserve"].astype(float)),
                  quality=list(ads["quality"].astype(float)),
                  position_effects=list(positions["position effect"].astype(float)))
    instance = separable(**common, treatments=treatments, available=ads[names].astype(bool).values.tolist(),
                         space_budget=float(budget) if budget_on else None)
    text_only = separable(**common, treatments=treatments[:1])
    results = {f"VCG ({mode} reserves, all treatments)": solve(instance, mode),
               f"GSP ({names[0]} only)": gsp(text_only)}
    instances = {f"VCG ({mode} reserves, all treatments)": instance, f"GSP ({names[0]} only)": text_only}
except (InstanceError, ValueError, KeyError) as err:
    st.error(f"Invalid auction: {err}")
    st.stop()

columns = st.columns(len(results))
for column, (name, outcome) in zip(columns, results.items()):
    data = outcome.as_json(instances[name])
    column.subheader(name)
    column.dataframe(pd.DataFrame([
        {"position": a["position"], "ad": a["ad"], "treatment": a["format_name"],
         "price/click": data["ads"][a["ad"]]["price_per_click"], "payment/view": data["ads"][a["ad"]]["payment"],
         "threshold/click": data["threshold_price_per_click"][str(a["ad"])]}
        for a in data["allocation"]]), hide_index=True)
    column.metric("Revenue per view", f"{data['revenue']:.4f}")
    column.metric("Welfare per view", f"{data['welfare']:.4f}")
    column.expander("Why", expanded=True).text(explain(outcome, instances[name]))
