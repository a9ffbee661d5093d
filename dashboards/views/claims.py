"""Claims page: a written claims report (`adfloor report`) read as a report — each claim's verdict first, its effect
with the interval, its prose and reason, then the figures with captions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from simulator.config import ConfigError
from simulator.report.claims_markdown import claim_prose, load_report

VERDICTS = {"yes": ("reproduced", "green"), "no": ("not reproduced", "red"), "untestable": ("not testable here", "gray")}


def _verdict(claim: dict) -> str:
    return "untestable" if not claim.get("testable", True) else "yes" if claim["reproduced"] else "no"


st.title("Claims")
st.caption("What `adfloor report` measured: each claim of the source papers, the effect over seeds with its 95 % "
           "t-interval, and whether the testbed reproduces it. Run `adfloor report --quick` (~6 min) for your own.")
candidates = [p.parent for p in (*Path("runs").glob("report*/claims.json"), Path("docs/results/claims.json")) if p.is_file()]
folder = st.text_input("Report folder", value=str(candidates[0]) if candidates else "docs/results",
                       help="A folder `adfloor report` wrote (its claims.json, claims.md and figures).")
try:
    report = load_report(folder)
except ConfigError as err:
    st.info(str(err))
    st.stop()

claims = report["claims"]
counts = {key: sum(_verdict(c) == key for c in claims) for key in VERDICTS}
st.markdown(f"**{counts['yes']} of {len(claims)} claims reproduced**, {counts['no']} not, {counts['untestable']} not "
            f"testable here — {len(report['seeds'])} seeds × {report['hours']:g} simulated hours per run; produced by "
            f"`{report['command']}`.")
table = pd.DataFrame([{"verdict": VERDICTS[_verdict(c)][0], "claim": c["claim"], "effect": c["effect"],
                       "mean": c["mean"], "95 % low": c["ci95"][0], "95 % high": c["ci95"][1], "source": c["source"]}
                      for c in claims])
colours = {label: colour for label, colour in VERDICTS.values()}
st.dataframe(table.style.map(lambda v: f"color: {colours.get(v, 'inherit')}; font-weight: bold", subset=["verdict"])
             .format({"mean": "{:.4g}", "95 % low": "{:.4g}", "95 % high": "{:.4g}"}, na_rep="–"),
             hide_index=True, width="stretch",
             column_config={"claim": st.column_config.TextColumn(width="large"),
                            "effect": st.column_config.TextColumn(width="medium")})
checks = report.get("sanity_checks", [])
if checks:
    st.caption("Sanity checks (theorems on the world's own pages, not claims; a failure is a bug): " + "; ".join(
        f"{c['id']} {'passed' if c['passed'] else 'FAILED'}" for c in checks))

st.header("Each claim")
for claim in claims:
    label, colour = VERDICTS[_verdict(claim)]
    with st.expander(f":{colour}[**{label}**] — {claim['claim']}", expanded=False):
        st.markdown(claim_prose(claim))
        st.caption(f"claim id `{claim['id']}`")

if report["figures"]:
    st.header("Figures")
for figure in report["figures"]:
    st.image(figure, caption=report["captions"][figure])
