"""Compare page: paired replays of two systems on identical traffic (on a background thread, seed by seed); every
metric's difference with its 95 % t-interval, churn and PD between the two, downloads."""

from __future__ import annotations

import io
import json
import zipfile

import streamlit as st

import simulator
from dashboards import jobs
from simulator import config
from simulator.experiments.paired import FEW_SEEDS, compare
from simulator.measure.definitions import GLOSSARY

# Any key but the two the comparison sets itself (each seed's run.seed, and the hours below).
KEYS = [key for key in config.all_keys() if key not in ("run.seed", "run.duration_hours")]

st.title("Compare")
st.caption("Two systems, the same queries and the same user noise (paired replays): every difference is the "
           "effect of what differs between them. A is the scenario with the key at the first value, B at the second.")

names = config.shipped_scenarios()
with st.form("compare_inputs"):
    columns = st.columns([2, 3, 2, 2])
    chosen = columns[0].selectbox("Scenario", names, index=names.index("smoke") if "smoke" in names else 0)
    key = columns[1].selectbox("Key to vary", KEYS, index=KEYS.index("model.init_seed"),
                               help="Any configuration key; docs/configuration.md and the Glossary explain them.")
    value_a = columns[2].text_input("Value for A", "0", help="TOML syntax: 0.05, true, \"exp\" (bare words are text)")
    value_b = columns[3].text_input("Value for B", "1", help="TOML syntax, as for A")
    columns = st.columns([2, 3, 2, 2])
    hours = columns[0].number_input("Simulated hours per run", value=1.0, format="%g",
                                    help=config.field_help("run.duration_hours"))
    seeds = columns[1].number_input("Seeds", value=5, step=1,
                                    help="Each seed is one paired replay of both systems; the interval is over seeds. "
                                         f"Fewer than {FEW_SEEDS} resolve little.")
    open_loop = columns[2].checkbox("Open loop", help="The control in which B trains on A's logs: both learn from "
                                                     "the same data, so only the feedback through the auction differs.")
    submitted = columns[3].form_submit_button("Compare", type="primary",
                                              disabled=st.session_state.get("compare_job") is not None)

if submitted and st.session_state.get("compare_job") is None:
    try:
        base = [config.override_text("run.duration_hours", float(hours))]
        systems = [simulator.load(chosen, overrides=[*base, f"{key}={value}"]) for value in (value_a, value_b)]
        if int(seeds) < 1:  # compare() says so too, but only once it runs
            raise simulator.ConfigError(f"seeds: {int(seeds)} is out of range; allowed: 1 ≤ value")
    except simulator.ConfigError as err:
        st.error(f"Not compared: {err}")
    else:
        total = 2 * int(seeds)

        def work(job: jobs.Job):
            started = []

            def show(message: str) -> None:
                started.append(message)
                job.report((len(started) - 1) / total, f"{message} ({len(started)} of {total} runs)")
            return compare(*systems, seeds=list(range(int(seeds))), names=("A", "B"), open_loop=open_loop,
                           progress=show, stop=job.stopping)

        inputs = {"scenario": chosen, "key": key, "A": value_a, "B": value_b, "hours": float(hours),
                  "seeds": int(seeds), "open loop": open_loop}
        st.session_state["compare_job"] = jobs.start(jobs.Job("comparison", inputs=inputs), work)
        st.rerun()


jobs.watch("compare_job", lambda job: st.session_state.update(comparison=job), stop="Stop after the current seed",
           stop_help="Keeps the seeds finished so far (at least one).")
job = st.session_state.get("comparison")
if job is None:
    st.info("Choose what differs between A and B and press **Compare**.")
    st.stop()
if job.error is not None:
    st.error(f"The comparison failed: {job.error}")
    st.stop()

result = job.result
inputs = job.inputs
st.subheader(f"A: {inputs['key']} = {inputs['A']}   ·   B: {inputs['key']} = {inputs['B']}")
st.caption(f"{inputs['scenario']}, {inputs['hours']:g} simulated hours per run, seeds {', '.join(map(str, result.seeds))}"
           + (", open loop (B trains on A's logs)" if inputs["open loop"] else ", closed loops"))
if len(result.seeds) < inputs["seeds"]:
    st.warning(f"Stopped after {len(result.seeds)} of {inputs['seeds']} seeds: the numbers cover those.")
if len(result.seeds) < FEW_SEEDS:
    st.warning(f"{len(result.seeds)} seed{'s' if len(result.seeds) > 1 else ''}: "
               + ("no interval can be computed from one seed" if len(result.seeds) == 1 else
                  "a 95 % t-interval over so few seeds is very wide (with 2 seeds, ±12.7 standard errors)")
               + f". Use at least {FEW_SEEDS} seeds before reading a difference as real.")

table = result.frame()
table["excludes 0"] = table["excludes 0"].map({True: "yes", False: "no", None: "–"})
st.dataframe(table.style.format({c: "{:.5g}" for c in ("A", "B", "value", "95 % low", "95 % high")}, na_rep=""),
             hide_index=True, width="stretch",
             column_config={"value": st.column_config.NumberColumn("B − A, or between", help=GLOSSARY["interval"]),
                            "metric": st.column_config.TextColumn(help="The Glossary page defines each."),
                            "excludes 0": st.column_config.TextColumn(
                                help="Whether B − A's 95 % interval excludes 0 (– for churn and PD, measures between "
                                     "A and B that are ≥ 0 anyway, and for one seed, which has no interval)")})

archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as zipped:
    zipped.writestr("comparison.csv", table.to_csv(index=False))
    zipped.writestr("per_seed.csv", result.per_seed.to_csv(index=False))
    zipped.writestr("ticks.csv", result.ticks.to_csv(index=False))
    zipped.writestr("inputs.json", json.dumps(inputs, indent=2))
    for name, scenario in zip(result.names, result.scenarios):
        zipped.writestr(f"config_{name}.toml", config.dumps(scenario))
left, right = st.columns(2)
left.download_button("Comparison table (CSV)", table.to_csv(index=False), "comparison.csv", "text/csv")
right.download_button("Everything (zip: tables, per seed, per tick, configs)", archive.getvalue(), "comparison.zip",
                      "application/zip")

ticks = result.ticks.groupby("sim_time").mean(numeric_only=True)
left, right = st.columns(2)
left.subheader("Welfare and revenue, B − A")
left.line_chart(ticks[["welfare_diff", "revenue_diff"]].rename(columns={"welfare_diff": "welfare B − A",
                                                                        "revenue_diff": "revenue B − A"}),
                x_label="simulated hours", y_label="money units per tick (mean over seeds)")
right.subheader("Irreproducibility between A and B")
right.line_chart(ticks[["ad_set_churn", "winner_churn", "prediction_difference"]].rename(columns={
    "ad_set_churn": "ad-set churn", "winner_churn": "winner churn", "prediction_difference": "PD"}),
    x_label="simulated hours", y_label="share of queries / PD (mean over seeds)")
