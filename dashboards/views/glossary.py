"""Glossary page: what each of the testbed's terms and measured numbers means (read from the library's definitions)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from simulator.measure.definitions import GLOSSARY, METRIC_DOC

st.title("Glossary")
st.caption("The testbed's terms and every number its pages and reports show. Definitions live in "
           "`simulator/measure/definitions.py` (and, for the configuration, docs/configuration.md).")
search = st.text_input("Filter", "", placeholder="e.g. churn, log loss, PD")


def _table(entries: dict[str, str]) -> pd.DataFrame:
    rows = [{"term": name.replace("_", " "), "meaning": text} for name, text in entries.items()
            if not search or search.lower() in f"{name.replace('_', ' ')} {text}".lower()]
    return pd.DataFrame(rows, columns=["term", "meaning"])


st.subheader("Terms and headline numbers")
st.dataframe(_table(GLOSSARY), hide_index=True, width="stretch",
             column_config={"meaning": st.column_config.TextColumn(width="large")})
st.subheader("Measures in studies and the claims report")
st.dataframe(_table(METRIC_DOC), hide_index=True, width="stretch",
             column_config={"meaning": st.column_config.TextColumn(width="large")})
