"""The auction stage of a tick: per-candidate reserves and the auction (VCG, GSP or first price) on the (possibly
explored) pCTRs, started on the solver's preferred chunk size so JAX runs it asynchronously, then ties resolved on
the host by the reference rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from auction import AuctionOutcome, preferred_batch, resolve_ties, vcg_batch
from auction.reserves import RESERVE_KINDS
from simulator.config import Scenario


@dataclass(frozen=True)
class Auctioneer:
    reserves: Callable  # (reserve[B, N], ctr[B, N, T, K]) → the per-candidate reserve the auction applies
    options: dict  # the solver's reserve mode, page budget, treatment heights and mechanism
    chunk_rows: int  # queries per solver call

    @classmethod
    def from_config(cls, scenario: Scenario, treatment_heights: np.ndarray) -> Auctioneer:
        a = scenario.auction
        budget = a.page_height_budget or None
        heights = tuple(map(float, treatment_heights)) if budget else None
        return cls(RESERVE_KINDS[a.reserve_kind].per_candidate,
                   dict(mode=a.reserve_mode, space_budget=budget, heights=heights, mechanism=a.mechanism),
                   preferred_batch(scenario.world.num_positions, scenario.world.candidates_per_query, heights, budget,
                                   a.reserve_mode, a.mechanism))

    def start(self, ctr, bid, reserve, explore: np.ndarray | None,
              page_positions: np.ndarray | None = None) -> tuple[AuctionOutcome, tuple]:
        """The auction on one padded chunk (asynchronous under JAX): its outcome and the inputs it ranked on.
        `page_positions` int32[B]: each query's page length (None: all K)."""
        reserve = self.reserves(reserve, ctr)
        ranked = ctr if explore is None else ctr * explore[:, :, None, None]
        inputs = (ranked, bid, reserve, None, page_positions)
        return vcg_batch(*inputs, **self.options), inputs

    def finish(self, in_flight: list) -> AuctionOutcome:
        """The chunks' outcomes (rows, outcome, inputs, …) on the host, ties resolved, as one batch's outcome."""
        parts = [resolve_ties(AuctionOutcome(*(np.asarray(c)[:rows] for c in outcome)), *inputs, **self.options)
                 for rows, outcome, inputs, *_ in in_flight]
        return AuctionOutcome(*(np.concatenate(column) for column in zip(*parts)))
