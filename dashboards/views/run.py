"""Run page: pick a scenario, change a few parameters, run it live, look at the results.

Only drives the library (`simulator.load`, `simulator.run`) and reads its results; no logic of its own.
"""

from __future__ import annotations


import pandas as pd
import streamlit as st

import simulator
from simulator import config
from models.transfers import TRANSFERS
from simulator.measure.runs import auction_snapshot, calibration_table, learning_curve


st.title("adfloor — search-ads auction testbed")
st.caption("World → τ(Q·U) → VCG → clicks → online training → redeploy, on simulated time.")

files = sorted(p.name for p in config.SCENARIOS.glob("*.toml"))
with st.sidebar:
    st.header("Scenario")
    chosen = st.selectbox("Scenario file", files, index=files.index("smoke.toml") if "smoke.toml" in files else 0)
    base = simulator.load(config.SCENARIOS / chosen)
    seed = st.number_input("Seed", min_value=0, value=base.run.seed, step=1)
    hours = st.number_input("Simulated hours", min_value=0.05, max_value=168.0, value=base.run.duration_hours)
    rate = st.number_input("Queries per minute", min_value=1.0, value=base.traffic.queries_per_minute)
    reserve = st.number_input("Reserve per click", min_value=0.0, value=base.auction.reserve)
    transfer = st.selectbox("Transfer τ", list(TRANSFERS), index=list(TRANSFERS).index(base.model.transfer))
    deploy = st.number_input("Deploy every (minutes)", min_value=0.01, value=base.train.deploy_every_minutes)
    oracle = st.checkbox("Oracle model (true CTR)", value=base.model.oracle)
    extra = st.text_area("More overrides (section.key=value, one per line)", "")
    start = st.button("Run", type="primary")

overrides = [
    f"run.seed={int(seed)}", f"run.duration_hours={float(hours)}", f"traffic.queries_per_minute={float(rate)}",
    f"auction.reserve={float(reserve)}", f'model.transfer="{transfer}"',
    f"train.deploy_every_minutes={float(deploy)}", f"model.oracle={'true' if oracle else 'false'}",
    *(line.strip() for line in extra.splitlines() if line.strip()),
]

if start:
    try:
        scenario = simulator.load(config.SCENARIOS / chosen, overrides=overrides)
    except simulator.ConfigError as err:
        st.error(f"Invalid scenario: {err}")
    else:
        bar = st.progress(0, text="starting…")

        def show(p: simulator.Progress) -> None:
            bar.progress(int(round(100 * p.fraction)), text=f"simulated {p.sim_minute / 60:.2f} h · {p.queries:,} queries · "
                         f"{p.queries_per_second:,.0f} q/s · PV log loss {p.recent_pv_logloss:.4f}")

        st.session_state["output"] = simulator.run(scenario, progress=show)

output = st.session_state.get("output")
if output is None:
    st.info("Choose a scenario and press **Run**.")
else:
    summary = output.summary()
    columns = st.columns(6)
    for column, (label, value) in zip(columns, [
        ("Queries", f"{summary['queries']:,}"), ("Clicks", f"{summary['clicks']:,}"),
        ("Revenue", f"{summary['revenue']:,.1f}"), ("Welfare", f"{summary['welfare']:,.1f}"),
        ("PV log loss", f"{summary['pv_logloss']:.4f}"), ("Oracle log loss", f"{summary['oracle_logloss']:.4f}"),
    ]):
        column.metric(label, value)
    curve = learning_curve(output).set_index("sim_time")
    left, right = st.columns(2)
    left.subheader("Learning curve vs the oracle")
    left.line_chart(curve[["pv_logloss", "oracle_logloss"]], x_label="simulated hours", y_label="log loss")
    right.subheader("Revenue and welfare")
    right.line_chart(curve[["revenue", "welfare"]], x_label="simulated hours")
    calibration = calibration_table(output)
    st.subheader("Calibration by pCTR decile")
    st.line_chart(pd.DataFrame({"observed click rate": calibration["mean_label"].to_numpy(),
                                "true CTR": calibration["mean_truth"].to_numpy(),
                                "mean pCTR": calibration["mean_pred"].to_numpy()},
                               index=calibration["mean_pred"].round(4)), x_label="mean pCTR in decile")
    st.subheader("Auction snapshots")
    minute = st.slider("Simulated minute", 0.0, float(output.scenario.run.duration_hours * 60.0), 0.0,
                       step=float(output.scenario.run.tick_minutes))
    st.caption("The first queries of that tick: each shown ad with its slot, treatment, predicted and true CTR, "
               "VCG price per click and whether the user clicked.")
    st.dataframe(auction_snapshot(output, minute), hide_index=True)
    with st.expander("Summary numbers"):
        st.json(summary)
