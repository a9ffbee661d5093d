"""Position auctions over (ad, treatment, position): allocation and prices from arrays, nothing else."""

from auction.vcg import AuctionOutcome, vcg_batch

__all__ = ["AuctionOutcome", "vcg_batch"]
