"""Pages with fewer positions than K (a phone's page beside a desktop's in one batch): the auction on the first
`page_positions` positions equals the auction on those positions alone, for every solver path and mechanism."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from auction import solve_batch
from tests.test_auction_batched import _random_batch

# (ads, treatments, K, heights, budget, mode, mechanism): the DP (GSP's thresholds need it), the
# assignment solver (budget-free VCG at K ≥ 4), a binding budget, the filter semantics
SHAPES = [(6, 2, 4, None, None, "cost", "gsp"), (10, 2, 6, None, None, "cost", "vcg"),
          (6, 3, 4, (1.0, 2.0, 3.0), 6.0, "cost", "first_price"), (8, 2, 5, (1.0, 2.0), 5.0, "filter", "vcg")]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"n{s[0]}t{s[1]}k{s[2]}b{s[4]}-{s[5]}-{s[6]}" for s in SHAPES])
def test_short_pages_equal_the_auction_on_their_positions_alone(shape):
    num_ads, num_treatments, num_positions, heights, budget, mode, mechanism = shape
    rng = np.random.default_rng(zlib.crc32(repr((shape, mechanism, "page positions")).encode()))
    ctr, bid, reserve, available = _random_batch(rng, 64, num_ads, num_treatments, num_positions, 1.0, 1.0)
    page = rng.choice([0, num_positions - 2, num_positions], 64).astype(np.int32)
    options = dict(heights=heights, space_budget=budget, mode=mode, mechanism=mechanism)
    mixed = solve_batch(ctr, bid, reserve, available, page, **options)
    assert np.all(mixed.ad[np.arange(num_positions)[None, :] >= page[:, None]] == -1)
    for k in range(1, num_positions + 1):
        rows = np.flatnonzero(page == k)
        if not rows.size:
            continue
        # every query on a page of k positions alone (the batch's shape, so K = k reuses the mixed batch's program)
        alone = solve_batch(ctr[..., :k], bid, reserve, available, np.full_like(page, k), **options)
        assert np.array_equal(mixed.ad[rows, :k], alone.ad[rows])
        assert np.array_equal(mixed.treatment[rows, :k], alone.treatment[rows])
        np.testing.assert_allclose(mixed.payment[rows, :k], alone.payment[rows], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mixed.price_per_click[rows, :k], alone.price_per_click[rows], rtol=1e-5, atol=1e-6)
