"""What the realistic world should look like: each calibration target with its band and source (docs/world.md).

A target with a band is checked (the shipped realistic preset must land inside it); one without is reported beside
what the world produces, its source saying why no band is set.
"""

from __future__ import annotations

from typing import NamedTuple


class Target(NamedTuple):
    statistic: str  # a key of `simulator.measure.world_statistics.statistics`
    value: str  # the published value, as written
    lo: float | None  # the band the world must land in (None: reported only)
    hi: float | None
    source: str


TARGETS: tuple[Target, ...] = (
    Target("ctr", "~3.2 % per impression", 0.02, 0.05,
           "WordStream AdWords benchmark (all industries), via digitalthriveai.com"),
    Target("ctr_position_2_over_1", "0.90 (PBM 0.61/0.68); 0.76 (ads, 13 %/17 %)", 0.6, 0.95,
           "ULTRA PositionBiasedModel curve; First Rate agency study of top ad slots"),
    Target("top_ads_1", "36 % of pages with top ads", 0.21, 0.51, "MozCast, Feb 2016 (5,986 pages), ±15 points"),
    Target("top_ads_2", "17 %", 0.02, 0.32, "MozCast, as above"),
    Target("top_ads_3", "28 %", 0.13, 0.43, "MozCast, as above"),
    Target("top_ads_4", "19 %", 0.04, 0.34, "MozCast, as above"),
    Target("ids_under_10_pooled", "~97 % of raw Criteo values occur < 10 times", 0.8, 1.0,
           "Criteo Kaggle: 33.8M raw values vs 0.91M at min count 10 (reczoo/BARS); over a whole dataset, not a day; "
           "one ad per row"),
    Target("ids_once_pooled", "~60 % of Avazu values occur once", 0.3, 0.9,
           "Avazu: 9.4M raw values vs 3.75M at min count 2 (reczoo/BARS); over ten days, one ad per row"),
    Target("no_ads_share", "not found", None, None, "no citable share of queries without ads was found"),
    Target("diurnal_peak_over_trough", "not found (the issue's ~9× is unsourced)", None, None,
           "a public log with hourly stamps (Avazu) could give it; not measured here"),
)
