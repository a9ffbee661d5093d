"""Figures and markdown only: a run's and a comparison's figures, the technique tables, and the claims
report (which runs the experiments' cells and writes claims.md, models.md, JSON and a figure per study)."""
