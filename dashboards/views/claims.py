"""Claims page: a written claims report (`adfloor report`): which paper claims reproduce, with intervals and figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from simulator.config import ConfigError
from simulator.report.claims_markdown import load_report

st.title("Claims")
st.caption("What `adfloor report` measured: each claim of the source papers, the effect over seeds with its 95 % "
           "interval, and whether the testbed reproduces it. Run `adfloor report --quick` (~10 min) for your own.")
candidates = [p.parent for p in (*Path("runs").glob("report*/claims.json"), Path("docs/results/claims.json")) if p.is_file()]
folder = st.text_input("Report folder", value=str(candidates[0]) if candidates else "docs/results")
try:
    report = load_report(folder)
except ConfigError as err:
    st.info(str(err))
    st.stop()

claims = report["claims"]
st.write(f"{sum(c['reproduced'] for c in claims)} of {len(claims)} claims reproduced — {len(report['seeds'])} seeds, "
         f"{report['hours']:g} simulated hours per run; produced by `{report['command']}`.")
st.dataframe(pd.DataFrame([{"claim": c["claim"], "source": c["source"], "effect": c["effect"], "mean": c["mean"],
                            "95 % low": c["ci95"][0], "95 % high": c["ci95"][1],
                            "reproduced": "not testable" if not c.get("testable", True) else "yes" if c["reproduced"]
                            else "no"} for c in claims]), hide_index=True)
checks = report.get("sanity_checks", [])
if checks:
    st.caption("Sanity checks (theorems on the world's own pages, not claims): " + "; ".join(
        f"{c['id']} {'passed' if c['passed'] else 'FAILED'}" for c in checks))
for claim in claims:
    if not claim["reproduced"] and claim["why_not"]:
        with st.expander(f"Why not: {claim['id']}"):
            st.write(claim["why_not"])
for figure in report["figures"]:
    st.image(figure, caption=Path(figure).stem)
