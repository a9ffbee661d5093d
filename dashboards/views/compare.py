"""Compare page: paired replays of two systems on identical traffic; differences, churn and PD over seeds."""

from __future__ import annotations


import streamlit as st

import simulator
from simulator import config
from simulator.experiments.paired import compare


st.title("Compare")
st.caption("Two systems, the same queries and the same user noise (paired replays): every difference is the "
           "effect of what differs between them.")
files = sorted(p.name for p in config.SCENARIOS.glob("*.toml") if p.name != "sweep_example.toml")
columns = st.columns(4)
chosen = columns[0].selectbox("Scenario", files, index=files.index("smoke.toml") if "smoke.toml" in files else 0)
key = columns[1].text_input("Key to vary", "model.init_seed")
value_a = columns[2].text_input("Value for A", "0")
value_b = columns[3].text_input("Value for B", "1")
columns = st.columns(4)
hours = columns[0].number_input("Simulated hours", min_value=0.05, max_value=168.0, value=1.0)
seeds = columns[1].number_input("Seeds", min_value=1, max_value=20, value=2)
open_loop = columns[2].checkbox("Open-loop control (B trains on A's logs)")
start = columns[3].button("Compare", type="primary")

if start:
    try:
        systems = [simulator.load(config.SCENARIOS / chosen, overrides=[f"run.duration_hours={float(hours)}", f"{key}={v}"])
                   for v in (value_a, value_b)]
    except simulator.ConfigError as err:
        st.error(f"Invalid comparison: {err}")
        st.stop()
    status = st.status("running paired replays…")
    try:
        result = compare(*systems, seeds=list(range(int(seeds))), names=(f"A: {value_a}", f"B: {value_b}"),
                         open_loop=open_loop, progress=status.write)
    except ValueError as err:
        st.error(f"Invalid comparison: {err}")
        st.stop()
    status.update(label="done", state="complete")
    st.session_state["comparison"] = result

result = st.session_state.get("comparison")
if result is None:
    st.info("Choose what differs between A and B and press **Compare**.")
else:
    st.code(result.table())
    ticks = result.ticks.groupby("sim_time").mean(numeric_only=True)
    left, right = st.columns(2)
    left.subheader("Welfare and revenue, B − A (mean over seeds)")
    left.line_chart(ticks[["welfare_diff", "revenue_diff"]], x_label="simulated hours")
    right.subheader("Irreproducibility")
    right.line_chart(ticks[["ad_set_churn", "winner_churn", "prediction_difference"]], x_label="simulated hours")
    st.dataframe(result.summary(), hide_index=True)
