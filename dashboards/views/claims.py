"""Claims page: a written claims report (`adfloor report`) read as a report — each claim's verdict first, its effect
with the interval, its prose and reason, then the figures with captions."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from simulator.config import ConfigError
from simulator.report.claims_markdown import VERDICT_COLOURS, claim_prose, claims_table, load_report, verdict_of

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
counts = {word: sum(verdict_of(c) == word for c in claims) for word in VERDICT_COLOURS}
st.markdown(f"**{counts['reproduced']} of {len(claims)} claims reproduced**, {counts['not reproduced']} not, "
            f"{counts['not testable here']} not "
            f"testable here — {len(report['seeds'])} seeds × {report['hours']:g} simulated hours per run; produced by "
            f"`{report['command']}`.")
st.markdown(claims_table(claims, coloured=True))  # a markdown table wraps its text; a data grid would cut it
written = Path(folder)
columns = st.columns(2)
columns[0].download_button("Report (claims.md)", (written / "claims.md").read_text() if (written / "claims.md").is_file()
                           else "", "claims.md", "text/markdown", disabled=not (written / "claims.md").is_file())
columns[1].download_button("Numbers (claims.json)", (written / "claims.json").read_text(), "claims.json",
                           "application/json", help="Every claim's definition, per-seed values and verdict.")
checks = report.get("sanity_checks", [])
if checks:
    st.caption("Sanity checks (theorems on the world's own pages, not claims; a failure is a bug): " + "; ".join(
        f"{c['id']} {'passed' if c['passed'] else 'FAILED'}" for c in checks))

st.header("Each claim")
for claim in claims:
    label = verdict_of(claim)
    with st.expander(f":{VERDICT_COLOURS[label]}[**{label}**] — {claim['claim']}", expanded=False):
        st.markdown(claim_prose(claim))
        st.caption(f"claim id `{claim['id']}`")

if report["figures"]:
    st.header("Figures")
for figure in report["figures"]:
    st.image(figure, caption=report["captions"][figure])
