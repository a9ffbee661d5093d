"""Position auctions over (ad, treatment, position): allocation and prices from arrays, nothing else."""

from auction.gsp import GspOutcome, gsp_batch, gsp_lowest_envy_free_bids
from auction.reserves import quality_weighted_reserve
from auction.vcg import AuctionOutcome, pad_rows, preferred_batch, resolve_ties, solve_batch, vcg_batch

__all__ = ["AuctionOutcome", "GspOutcome", "gsp_batch", "gsp_lowest_envy_free_bids", "pad_rows", "preferred_batch", "quality_weighted_reserve", "resolve_ties", "solve_batch", "vcg_batch"]
