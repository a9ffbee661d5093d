"""The auction's config section ([auction]): mechanism, reserves, their semantics, the page height budget, exploration.

The reserve choices are read from their registries (`auction.reserves`). `simulator.config` composes this
section with the others and validates each field from its metadata (the convention of
`models.config.config_field`: bounds `lo`/`hi`, `choices`, `doc`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auction.mechanisms import MECHANISMS
from auction.reserves import RESERVE_KINDS, RESERVE_MODES


def _field(default, **meta):
    """A config field with its bounds, choices and meaning as metadata."""
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AuctionConfig:
    mechanism: str = _field("vcg", choices=tuple(MECHANISMS),
                            doc="pricing of the welfare-maximising page: vcg (truthful), gsp (threshold prices: the "
                                "least bid that keeps an ad's clicks), first_price (pay your bid)")
    reserve: float = _field(0.3, lo=0.0, hi=1e6, doc="per-click reserve, in the bids' money units (uniform); the base of per-advertiser reserves; "
                                                    "the score reserve R when quality-weighted")
    reserve_kind: str = _field("uniform", choices=tuple(RESERVE_KINDS),
                              doc="quality_weighted: reserve_i = R / pCTR_i (text, top); per_advertiser: "
                                  "reserve × a lognormal factor per advertiser")
    advertiser_reserve_sd: float = _field(0.5, lo=0.0, hi=5.0, doc="per_advertiser: spread of the log factor")
    reserve_mode: str = _field("cost", choices=RESERVE_MODES,
                              doc="cost: reserve as a per-click seller cost (Clarke on Σ(bid − reserve)·ctr); "
                                  "filter: bid ≤ reserve is dropped, threshold payments")
    page_height_budget: float = _field(0.0, lo=0.0, hi=1000.0,
                                      doc="lines of page the ads may take (0 = no budget); heights come from ui_treatments")
    exploration_rate: float = _field(0.0, lo=0.0, hi=1.0, doc="share of queries whose auction ranks on perturbed pCTRs "
                                                            "(exploration: rarely shown ads get shown and learned)")
    exploration_noise: float = _field(0.7, lo=0.0, hi=5.0, doc="explored queries: each candidate's pCTR × "
                                                             "exp(σ·z − σ²/2), z ~ N(0, 1); σ = this")
