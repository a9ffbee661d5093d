"""Glossary page: what each of the testbed's terms and measured numbers means (read from the library's definitions)."""

from __future__ import annotations

import streamlit as st

from simulator.measure.definitions import GLOSSARY, METRIC_DOC

st.title("Glossary")
st.caption("The testbed's terms and every number its pages and reports show. Definitions live in "
           "`simulator/measure/definitions.py` (the configuration's keys: docs/configuration.md).")
search = st.text_input("Filter", "", placeholder="e.g. churn, log loss, PD")


def _entries(entries: dict[str, str]) -> str:
    lines = [f"- **{name.replace('_', ' ')}** (`{name}`) — {text}" for name, text in entries.items()
             if not search or search.lower() in f"{name.replace('_', ' ')} {name} {text}".lower()]
    return "\n".join(lines) or "_Nothing matches the filter._"


st.subheader("Terms and headline numbers")
st.markdown(_entries(GLOSSARY))
st.subheader("Measures in studies and the claims report")
st.markdown(_entries(METRIC_DOC))
