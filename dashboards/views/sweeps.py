"""Sweeps page: start a sweep (a grid over one or two keys, several seeds) or resume one, watch it, and read its
results: a metric against a parameter with 95 % t-interval bars, two-parameter heat maps, each cell's learning curve."""

from __future__ import annotations

import tomllib
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import jobs
from simulator import config
from simulator.config import ConfigError
from simulator.experiments.sweep import (load_results, metric_by_parameter, multiplicative, parameters, plan,
                                         run_sweep, unfinished, write_sweep)

RUNS = Path("runs")
KEYS = [key for key in config.all_keys() if key not in ("run.seed", "run.duration_hours")]  # set by the form

st.title("Sweeps")
st.caption("A sweep runs a scenario over a grid of settings and seeds (`adfloor sweep FILE` from a shell; here from "
           "the form below) and keeps each finished cell, so an interrupted sweep resumes where it stopped.")


def _start(folder: Path, label: str) -> None:
    """Plan the sweep in `folder`/sweep.toml (every cell validated first) and run its unfinished cells."""
    sweep = plan(folder / "sweep.toml")

    def work(job: jobs.Job):
        def show(p) -> None:
            finished = p.done + p.failed
            job.report(finished / max(p.total - p.skipped, 1), f"{finished} of {p.total - p.skipped} cells · {p.line}")
        return run_sweep(sweep, folder, workers=2, progress=show)

    st.session_state["sweep_job"] = jobs.start(jobs.Job(label, inputs={"folder": str(folder)}), work)
    st.session_state["sweep_folder"] = str(folder)


with st.expander("Start a sweep", expanded=not any(RUNS.glob("*/cells.parquet"))):
    with st.form("new_sweep"):
        names = config.shipped_scenarios()
        columns = st.columns(4)
        base = columns[0].selectbox("Scenario", names, index=names.index("smoke") if "smoke" in names else 0)
        name = columns[1].text_input("Name", "my-sweep", help="The results go to runs/sweep-NAME/.")
        seeds = columns[2].number_input("Seeds per setting", value=2, step=1)
        hours = columns[3].number_input("Simulated hours per cell", value=0.5, format="%g",
                                        help=config.field_help("run.duration_hours"))
        columns = st.columns(2)
        first = columns[0].selectbox("First key", KEYS, index=KEYS.index("train.learning_rate"))
        first_values = columns[0].text_input("First key's values", "[0.01, 0.03, 0.1]", help="A TOML list: [1, 2], [\"a\", \"b\"]")
        second = columns[1].selectbox("Second key (optional)", ["—", *KEYS], index=0)
        second_values = columns[1].text_input("Second key's values", "", help="A TOML list; empty for a one-key sweep")
        submitted = st.form_submit_button("Start", type="primary", disabled="sweep_job" in st.session_state)
    if submitted and "sweep_job" not in st.session_state:
        try:
            if second != "—" and second == first:
                raise ConfigError(f"second key: {second} is the first key already")
            grid = {}
            for key, text in ((first, first_values), (second, second_values)):
                if key == "—":
                    continue
                try:
                    grid[key] = tomllib.loads(f"v = {text or '[]'}")["v"]
                except tomllib.TOMLDecodeError:
                    raise ConfigError(f"{key}: values: expected a TOML list, e.g. [0.01, 0.1] or [\"a\", \"b\"], "
                                      f"got {text!r}") from None
            if not name.strip() or not name.strip().replace("-", "").replace("_", "").isalnum():
                raise ConfigError(f"name: {name!r}: expected letters, digits, - and _ only")
            folder = RUNS / f"sweep-{name.strip()}"
            write_sweep(folder, base, grid, int(seeds), float(hours))
        except ConfigError as err:
            st.error(f"Not started: {err}")
        else:
            _start(folder, f"sweep {name.strip()}")
            st.rerun()


jobs.watch("sweep_job", lambda job: st.session_state.update(sweep_done=job))
finished = st.session_state.get("sweep_done")
if finished is not None and finished.error is not None:
    st.error(f"{finished.label} failed: {finished.error}")
found = sorted({str(p.parent) for pattern in ("*/cells.parquet", "*/sweep.toml") for p in RUNS.glob(pattern)},
               key=lambda folder: Path(folder).stat().st_mtime)  # the newest last
if not found:
    st.info("No sweeps in runs/ yet: start one above, or run `adfloor sweep scenarios/sweep_example.toml`.")
    st.stop()
default = st.session_state.get("sweep_folder")
folder = Path(st.selectbox("Sweep", found, index=found.index(default) if default in found else len(found) - 1,
                           help="A folder under runs/ that holds a sweep's results (cells.parquet) or plan (sweep.toml)."))
try:
    ticks, cells = load_results(folder)
except ConfigError:
    ticks, cells = pd.DataFrame(), pd.DataFrame({"status": []})
@st.cache_data(show_spinner=False)
def _plan(path: str, modified: float):
    """The sweep file's plan, validated once per version of the file (planning checks every cell's scenario)."""
    return plan(path)


try:
    saved = _plan(str(folder / "sweep.toml"), (folder / "sweep.toml").stat().st_mtime) \
        if (folder / "sweep.toml").is_file() else None
except ConfigError as err:
    st.warning(f"This sweep's plan no longer loads, so it cannot be resumed: {err}")
    saved = None
waiting = unfinished(saved, folder) if saved is not None else 0
if waiting and "sweep_job" not in st.session_state:
    if st.button(f"Resume ({waiting} of {len(saved.cells)} cells not finished)",
                 help="Runs the cells without a result; finished cells are kept."):
        try:
            _start(folder, f"sweep {folder.name.removeprefix('sweep-')}")
        except ConfigError as err:
            st.error(f"Not resumed: {err}")
        else:
            st.rerun()
if cells.empty or not (cells["status"] == "done").any():
    st.info("No finished cells to plot yet.")
    st.stop()

status = cells["status"].value_counts().to_dict()
st.write(f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in status.items()))
swept = parameters(cells)
numeric = [c for c in cells.columns if c not in swept and cells[c].dtype.kind in "fi" and c != "seed"]
if not swept or not numeric:
    st.warning("This sweep has no swept parameters or no numbers to plot.")
    st.stop()
columns = st.columns(3)
parameter = columns[0].selectbox("Parameter", swept)
metric = columns[1].selectbox("Metric", numeric, index=numeric.index("pv_logloss") if "pv_logloss" in numeric else 0)
others = [p for p in swept if p != parameter]
second = columns[2].selectbox("Second parameter (heat map)", ["—", *others]) if others else "—"

table = metric_by_parameter(cells, parameter, metric)
table["low"], table["high"] = table["mean"] - table["ci95"], table["mean"] + table["ci95"]
bars = bool(table["ci95"].notna().any())
numeric_parameter = table[parameter].dtype.kind in "fi"
log_x = numeric_parameter and multiplicative(table[parameter])
x = alt.X(f"{parameter}:{'Q' if numeric_parameter else 'N'}", title=parameter + (" (log scale)" if log_x else ""),
          scale=alt.Scale(type="log") if log_x else alt.Undefined, axis=alt.Axis(labelAngle=0))
y_title = f"{metric} (mean over seeds" + (", 95 % t-interval)" if bars else "; one seed: no interval)")
chart = alt.Chart(table).mark_line(point=True).encode(x=x, y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(zero=False)))
if bars:
    chart += alt.Chart(table.dropna(subset=["ci95"])).mark_errorbar().encode(x=x, y=alt.Y("low:Q", title=y_title),
                                                                             y2="high:Q")
st.subheader(f"{metric} by {parameter}")
st.altair_chart(chart, width="stretch")
st.dataframe(table.drop(columns=["low", "high"]), hide_index=True)

if second != "—":
    grid = metric_by_parameter(cells, [parameter, second], metric)
    st.subheader(f"{metric} by {parameter} × {second} (mean over seeds)")
    heat = alt.Chart(grid).mark_rect().encode(
        x=alt.X(f"{parameter}:O", axis=alt.Axis(labelAngle=0)), y=alt.Y(f"{second}:O"),
        color=alt.Color("mean:Q", title=metric), tooltip=[parameter, second, "mean", "ci95", "count"])
    st.altair_chart(heat + heat.mark_text(baseline="middle").encode(text=alt.Text("mean:Q", format=".4g"),
                                                                     color=alt.value("black")),
                    width="stretch")

if not ticks.empty and metric in ticks.columns:
    st.subheader(f"Each cell's {metric} over simulated time")
    curves = ticks[["cell", "seed", "sim_time", metric, *swept]].dropna(subset=[metric])
    curves = curves.assign(setting=curves[swept].astype(str).agg(", ".join, axis=1))
    st.altair_chart(alt.Chart(curves).mark_line(opacity=0.7).encode(
        x=alt.X("sim_time:Q", title="simulated hours"), y=alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False)),
        color=alt.Color("setting:N", title=", ".join(swept)), detail="cell:N", tooltip=["cell", "seed", "setting"]),
        width="stretch")
failed = cells[cells["status"] == "failed"]
if len(failed):
    st.subheader("Failed cells")
    st.dataframe(failed[["cell", "seed", *swept, "error"]], hide_index=True)
with st.expander("All cells"):
    st.dataframe(cells, hide_index=True)
    left, right = st.columns(2)
    left.download_button("Cells (CSV)", cells.to_csv(index=False), f"{folder.name}-cells.csv", "text/csv",
                         help="One row per cell: its settings, seed, status and summary numbers.")
    right.download_button("Ticks (CSV)", ticks.to_csv(index=False), f"{folder.name}-ticks.csv", "text/csv",
                          help="Every cell's per-tick metrics, with its settings and seed.")
