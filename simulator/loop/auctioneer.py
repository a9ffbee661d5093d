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

    def start(self, ctr, bid, reserve, explore: np.ndarray | None, positions: int) -> tuple[AuctionOutcome, tuple]:
        """The auction on one padded chunk (asynchronous under JAX) over the first `positions` page positions of
        the pCTRs [B, N, T, K] (every query of the chunk has a page that long): its outcome and its inputs."""
        ctr = ctr if positions == ctr.shape[3] else ctr[..., :positions]
        reserve = self.reserves(reserve, ctr)
        ranked = ctr if explore is None else ctr * explore[:, :, None, None]
        inputs = (ranked, bid, reserve)
        return vcg_batch(*inputs, **self.options), inputs

    def finish(self, in_flight: list, num_positions: int, order: np.ndarray | None) -> AuctionOutcome:
        """The chunks' outcomes (rows, outcome, inputs, …) on the host, ties resolved, as one batch's outcome over
        `num_positions` positions, taken in `order` (`batch_order`; None: the chunks are in the batch's order)."""
        parts = [pad_positions(resolve_ties(AuctionOutcome(*(np.asarray(c)[:rows] for c in outcome)), *inputs,
                                            **self.options), num_positions)
                 for rows, outcome, inputs, *_ in in_flight]
        outcome = AuctionOutcome(*(np.concatenate(column) for column in zip(*parts)))
        return outcome if order is None else AuctionOutcome(*(column[order] for column in outcome))


def batch_order(in_flight: list) -> np.ndarray | None:
    """Where each batch row lies in the chunks' concatenation (None: the chunks hold the batch in order)."""
    if in_flight[0][4] is None:
        return None
    return np.argsort(np.concatenate([rows for *_, rows in in_flight]))


def pad_positions(outcome: AuctionOutcome, num_positions: int) -> AuctionOutcome:
    """A shorter page's outcome (numpy) over `num_positions` positions: the positions it lacks are empty."""
    missing = num_positions - outcome.ad.shape[1]
    if not missing:
        return outcome
    pad = lambda column, fill: np.pad(column, ((0, 0), (0, missing)), constant_values=fill)  # noqa: E731
    return outcome._replace(ad=pad(outcome.ad, -1), treatment=pad(outcome.treatment, 0), ctr=pad(outcome.ctr, 0),
                            payment=pad(outcome.payment, 0), price_per_click=pad(outcome.price_per_click, 0))
