"""Run page: pick a scenario, change a few parameters, run it live (on a background thread, with Stop), look at the
results of this and earlier runs, download them.

Only drives the library (`simulator.load`, `simulator.run`) and reads its results; no logic of its own.
"""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import streamlit as st

import simulator
from dashboards import jobs
from models.transfers import TRANSFERS
from simulator import config
from simulator.measure.definitions import GLOSSARY
from simulator.measure.runs import auction_snapshot, calibration_table, learning_curve

HISTORY = 5  # finished runs kept in the session, newest first (a default 24-h run's log is a few hundred MB)
# The inputs the sidebar offers: (key, label); help texts come from the config fields' own documentation.
INPUTS = [("run.seed", "Seed"), ("run.duration_hours", "Simulated hours"),
          ("traffic.queries_per_minute", "Queries per minute (daily mean)"), ("auction.reserve", "Reserve per click"),
          ("model.transfer", "Transfer τ"), ("train.deploy_every_minutes", "Deploy every (simulated minutes)"),
          ("model.oracle", "Oracle model (score with the true CTR)")]


def _value(scenario: simulator.Scenario, key: str):
    section, name = key.split(".")
    return getattr(getattr(scenario, section), name)


def _sidebar(names: list[str], busy: bool) -> tuple[str, dict, list[str], bool]:
    """The sidebar's inputs (a rerun per edit only redraws the page: a run goes on on its own thread whatever the
    page does), and Run, locked while a run goes."""
    with st.sidebar:
        st.header("Scenario")
        chosen = st.selectbox("Scenario", names, index=names.index("smoke") if "smoke" in names else 0,
                              help="A shipped scenario (scenarios/*.toml); the inputs below start at its values.")
        base = simulator.load(chosen)
        values = {}
        for key, label in INPUTS:
            default, help_text, widget_key = _value(base, key), config.field_help(key), f"{chosen}:{key}"
            if isinstance(default, bool):
                values[key] = st.checkbox(label, value=default, help=help_text, key=widget_key)
            elif key == "model.transfer":
                values[key] = st.selectbox(label, list(TRANSFERS), index=list(TRANSFERS).index(default),
                                           help=help_text, key=widget_key)
            elif isinstance(default, int):
                values[key] = st.number_input(label, value=default, step=1, help=help_text, key=widget_key)
            else:
                values[key] = st.number_input(label, value=float(default), format="%g", help=help_text, key=widget_key)
        extra = st.text_area("More overrides", "", key=f"{chosen}:extra",
                             help="section.key=value, one per line, e.g. train.learning_rate=0.05 "
                                  "(docs/configuration.md lists every key); they win over the fields above")
        submitted = st.button("Run", type="primary", disabled=busy,
                              help="Runs on its own thread: the page stays usable meanwhile.")
    overrides = [config.override_text(key, value) for key, value in values.items()]
    overrides += [line.strip() for line in extra.splitlines() if line.strip()]
    inputs = {"scenario": chosen, **{label: values[key] for key, label in INPUTS}, "more overrides": extra.strip()}
    return chosen, inputs, overrides, submitted


def _start(chosen: str, inputs: dict, overrides: list[str]) -> None:
    """Validate the inputs (one line naming the field if one is off) and start the run on a background thread."""
    try:
        scenario = simulator.load(chosen, overrides=overrides)
    except simulator.ConfigError as err:
        st.error(f"Not run: {err}")
        return

    def work(job: jobs.Job) -> simulator.RunOutput:
        def show(p: simulator.Progress) -> None:
            loss = "—" if math.isnan(p.recent_pv_logloss) else f"{p.recent_pv_logloss:.4f}"
            job.report(p.fraction, f"simulated {p.sim_minute / 60:.2f} of {p.duration_minutes / 60:g} h · "
                                   f"{p.queries:,} queries · {p.queries_per_second:,.0f} queries/s · PV log loss {loss}")
        return simulator.run(scenario, progress=show, stop=job.stopping)

    number = st.session_state.get("run_count", 0) + 1
    st.session_state["run_count"] = number
    st.session_state["live"] = jobs.start(jobs.Job(f"run #{number}", inputs=inputs), work)
    st.rerun()


def _keep(job: jobs.Job) -> None:
    """A finished run joins the history (newest first) and is shown."""
    runs = st.session_state.setdefault("runs", [])
    runs.insert(0, job)
    del runs[HISTORY:]
    st.session_state["shown"] = job.label


def _fmt(value: float, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _downloads(job: jobs.Job, output: simulator.RunOutput, summary: dict) -> None:
    metrics = output.metrics()
    parquet = io.BytesIO()
    metrics.to_parquet(parquet, index=False)
    stem = f"adfloor-{job.label.replace(' #', '')}"
    columns = st.columns(4)
    columns[0].download_button("Metrics (CSV)", metrics.to_csv(index=False), f"{stem}-metrics.csv", "text/csv",
                               help="One row per tick: traffic, auction and training numbers.")
    columns[1].download_button("Metrics (parquet)", parquet.getvalue(), f"{stem}-metrics.parquet",
                               "application/octet-stream")
    columns[2].download_button("Summary (JSON)", json.dumps(summary, indent=2, default=float),
                               f"{stem}-summary.json", "application/json")
    columns[3].download_button("Config (TOML)", config.dumps(output.scenario), f"{stem}-config.toml",
                               "application/toml", help="The fully resolved scenario: `adfloor run` reruns it exactly (to its whole duration, "
                                    "if this run was stopped).")


def _results(job: jobs.Job, inputs_now: dict, running: bool) -> None:
    """One finished run: what produced it, whether the inputs have moved on, its numbers, charts and downloads."""
    if job.error is not None:
        st.error(f"{job.label} failed: {job.error}")
        return
    output: simulator.RunOutput = job.result
    st.subheader(f"Results of {job.label}")
    resolved = [f"{label}: {_value(output.scenario, key)}" for key, label in INPUTS]  # what ran, overrides included
    st.caption(" · ".join([f"scenario: {job.inputs['scenario']}", *resolved]
                          + ([f"more overrides: {job.inputs['more overrides']}"] if job.inputs["more overrides"] else [])))
    changed = [name for name, value in inputs_now.items() if job.inputs.get(name) != value]
    if changed:
        st.warning(f"Stale: the inputs now differ from these results' ({', '.join(changed)}). "
                   + ("A run is going: its results will show here when it ends." if running
                      else "Press **Run** to run them."))
    summary = output.summary()
    if output.stopped:
        st.warning(f"This run {output.stopped}: the numbers below cover the simulated time before it "
                   f"({summary['queries']:,} queries, {summary['trained_examples']:,} examples trained).")
    columns = st.columns(6)
    for column, (label, value, help_key) in zip(columns, [
        ("Queries", f"{summary['queries']:,}", None), ("Clicks", f"{summary['clicks']:,}", None),
        ("Revenue (money units)", _fmt(summary["revenue"], ",.1f"), "revenue"),
        ("Welfare (money units)", _fmt(summary["welfare"], ",.1f"), "welfare"),
        ("PV log loss", _fmt(summary["pv_logloss"], ".4f"), "pv_logloss"),
        ("Oracle log loss", _fmt(summary["oracle_logloss"], ".4f"), "oracle_logloss"),
    ]):
        column.metric(label, value, help=GLOSSARY.get(help_key) if help_key else None)
    _downloads(job, output, summary)
    curve = learning_curve(output).set_index("sim_time")
    left, right = st.columns(2)
    left.subheader("Learning curve vs the oracle")
    left.line_chart(curve[["pv_logloss", "oracle_logloss"]].rename(columns={"pv_logloss": "PV log loss (model)",
                                                                            "oracle_logloss": "oracle (true CTR)"}),
                    x_label="simulated hours", y_label="log loss")
    right.subheader("Revenue and welfare")
    right.line_chart(curve[["revenue", "welfare"]], x_label="simulated hours", y_label="money units per window")
    calibration = calibration_table(output)
    st.subheader("Calibration by pCTR decile")
    if len(calibration):
        st.line_chart(pd.DataFrame({"observed click rate": calibration["mean_label"].to_numpy(),
                                    "true CTR": calibration["mean_truth"].to_numpy(),
                                    "mean pCTR": calibration["mean_pred"].to_numpy()},
                                   index=calibration["mean_pred"].round(4)),
                      x_label="mean pCTR in decile", y_label="click rate")
    else:
        st.info("No trained examples yet: the run stopped before its first training step.")
    st.subheader("Auction snapshots")
    minute = st.slider("Simulated minute", 0.0, float(output.simulated_hours * 60.0), 0.0,
                       step=float(output.scenario.run.tick_minutes))
    st.caption("The first queries of that tick: each shown ad with its position (1 = top), treatment, predicted and "
               "true CTR, price per click (money units) and whether the user clicked.")
    st.dataframe(auction_snapshot(output, minute), hide_index=True)
    with st.expander("Summary numbers"):
        st.json(summary)


st.title("adfloor — search-ads auction testbed")
st.caption("World → τ(Q·U) → VCG → clicks → online training → redeploy, on simulated time. The Glossary page "
           "explains every number.")
live = st.session_state.get("live")
chosen, inputs, overrides, submitted = _sidebar(config.shipped_scenarios(), busy=live is not None)
if submitted and live is None:
    _start(chosen, inputs, overrides)
jobs.watch("live", _keep, stop="Stop", stop_help="End the run at the current simulated time and keep what it has made.",
           note="The first run in this app compiles the model and the auction (about 20 s on 2 cores) before simulated "
                "time moves; later runs of the same shapes start at once.")

runs: list[jobs.Job] = st.session_state.get("runs", [])
if not runs:
    if live is None:
        st.info("Choose a scenario, set the inputs in the sidebar and press **Run**.")
else:
    labels = [job.label for job in runs]
    shown = st.session_state.get("shown", labels[0])
    if len(runs) > 1:
        shown = st.radio("Show", labels, index=labels.index(shown) if shown in labels else 0, horizontal=True,
                         help=f"The last {HISTORY} runs made since the app opened, newest first.")
        st.session_state["shown"] = shown
    _results(runs[labels.index(shown) if shown in labels else 0], inputs, running=live is not None)
