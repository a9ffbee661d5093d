"""Sweeps page: open a sweep's results, plot a summary metric against a swept parameter, browse the cells."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from simulator.config import ConfigError
from simulator.experiments.sweep import load_results, metric_by_parameter, parameters

st.title("Sweeps")
st.caption("Results of `adfloor sweep` (cells.parquet, ticks.parquet). Run one with "
           "`adfloor sweep scenarios/sweep_example.toml`.")
runs = Path("runs")
found = sorted(str(p.parent) for p in runs.glob("*/cells.parquet")) if runs.is_dir() else []
folder = st.text_input("Sweep output folder", value=found[-1] if found else "runs/sweep-sweep_example")
try:
    ticks, cells = load_results(folder)
except ConfigError as err:
    st.info(f"{err}. Run a sweep first, or type the folder of one.")
    st.stop()

status = cells["status"].value_counts().to_dict()
st.write(f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in status.items()))
swept = parameters(cells)
numeric = [c for c in cells.columns if c not in swept and cells[c].dtype.kind in "fi" and c not in ("seed",)]
if not swept or not numeric:
    st.warning("This sweep has no swept parameters or no finished cells to plot.")
    st.stop()
left, right = st.columns(2)
parameter = left.selectbox("Parameter", swept)
metric = right.selectbox("Metric", numeric, index=numeric.index("pv_logloss") if "pv_logloss" in numeric else 0)
table = metric_by_parameter(cells, parameter, metric)
st.subheader(f"{metric} by {parameter} (mean over seeds)")
if table[parameter].dtype.kind in "fi":
    st.line_chart(table.set_index(parameter)["mean"], x_label=parameter, y_label=metric)
else:
    st.bar_chart(table.set_index(parameter)["mean"], x_label=parameter, y_label=metric)
st.dataframe(table, hide_index=True)
failed = cells[cells["status"] == "failed"]
if len(failed):
    st.subheader("Failed cells")
    st.dataframe(failed[["cell", "seed", *swept, "error"]], hide_index=True)
with st.expander("All cells"):
    st.dataframe(cells, hide_index=True)
