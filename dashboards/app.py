"""adfloor Streamlit app: the entry point `adfloor app` starts; each page drives the library, none holds logic."""

from pathlib import Path

import streamlit as st

from simulator.compile_cache import enable_compilation_cache

enable_compilation_cache()
st.set_page_config(page_title="adfloor", layout="wide")
VIEWS = Path(__file__).resolve().parent / "views"  # not "pages/": that name would switch on auto-discovery
# Emoji icons, not ":material/…": those load from fonts.gstatic.com, which an offline machine cannot reach.
st.navigation([
    st.Page(VIEWS / "run.py", title="Run", icon="▶️", default=True),
    st.Page(VIEWS / "auction_explorer.py", title="Auction explorer", icon="⚖️"),
    st.Page(VIEWS / "compare.py", title="Compare", icon="🔀"),
    st.Page(VIEWS / "sweeps.py", title="Sweeps", icon="🧮"),
    st.Page(VIEWS / "claims.py", title="Claims", icon="✅"),
    st.Page(VIEWS / "glossary.py", title="Glossary", icon="📖"),
]).run()
