"""Exact batched VCG over (ad, treatment, position): null set, per-click reserves, optional page height budget.

The CTRs the auction uses are made non-increasing along positions before it runs: an ad's CTR at
position k is the smallest it was given at positions 0..k (running minimum from the top). Slates fill
positions top-down without gaps, so with CTRs that rise down the page (learned pCTRs often do)
removing an ad could lower the others' welfare and its Clarke payment could go negative. With
non-increasing CTRs moving ads up never hurts, top-down slates are as good as slates with gaps, and
every payment is ≥ reserve × CTR ≥ 0 (`auction.reference` applies the same rule).

Two reserve semantics (static `mode`):
- `cost` (default): the reserve is a per-click seller cost; maximise Σ (bid − reserve)·ctr and charge
  reserve·c + W'₋ᵢ − (others' objective in A*) (Clarke pivot on that objective).
- `filter`: ads with bid ≤ reserve are dropped; maximise Σ bid·ctr and charge the threshold (Myerson)
  payment W*(ad i bidding its reserve) − (others' welfare in A*).

How it is solved. `auction.slate_dp` finds the optimum, the best page without each shown ad and (filter)
the best page with it bidding its reserve by dynamic programming over the candidates, with the set of
positions filled and the height used as state; its docstring proves it exact. Nothing is enumerated: the
cost grows linearly in candidates and in the budget's lines, and as 2^K in positions (K ≤ 8).

Optima that are not unique within float32 rounding are flagged (`tied`); `solve_batch` solves those queries
again in float64 (the same kernels; most float32 near-ties are no ties there) and the ones still tied with the
reference solver's tie-break rules, so both solvers return the same allocation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from auction.assignment import assignment_vcg
from auction.mechanisms import MECHANISMS, Shown, check_mechanism
from auction.reserves import ReserveMode
from auction.slate_dp import MAX_POSITIONS, dp_vcg, height_levels


# Budget-free, cost semantics: the DP up to this many positions, the assignment solver above. At K = 4 the DP's
# kernel is a little cheaper (4.0 against 4.8 ms per 1,024 queries), but in the loop learned pCTRs flattened by
# the monotone rule tie often and only the assignment solver breaks those ties itself: over 3 simulated hours the
# teaching world's auctions took 8.3 s with the DP (347 of 527 chunks re-solved) and 5.2 s without (256).
DP_MAX_POSITIONS = 3


def uses_assignment(num_positions: int, space_budget: float | None, mode: ReserveMode, mechanism: str = "vcg") -> bool:
    """Whether the `fast` solver is the assignment solver (else the DP, which also gives GSP's thresholds)."""
    check_mechanism(mechanism)
    return (space_budget is None and mode == "cost" and num_positions > DP_MAX_POSITIONS
            and not MECHANISMS[mechanism].needs_thresholds)


def shortlist(weight: jax.Array, ctr: jax.Array, usable: jax.Array, budgeted: bool) -> tuple[jax.Array, jax.Array]:
    """The candidates any optimum the payments need can use: those in the top K + 1 of some group's list at some
    position (a group is a treatment with a budget, the best treatment without). Were an optimum — also without
    an ad or with it at its reserve — to place another ad there, one of those K + 1 is unused, is not the
    changed ad, fits the same height and is worth at least as much. Ties go to the lower index, as in the
    reference's tie-break, so its slate is kept too.

    Returns the first M = K + 4 such candidates int32[B, M] (padded with others, in index order) and
    whether a query had more (bool[B]: re-solved on every candidate).
    """
    batch, num_ads, num_treatments, num_positions = ctr.shape
    size = min(num_ads, num_positions + 4)
    if size == num_ads:
        return jnp.broadcast_to(jnp.arange(num_ads, dtype=jnp.int32), (batch, num_ads)), jnp.zeros(batch, bool)
    value = jnp.where(usable, weight[:, :, None, None] * ctr, -jnp.inf)
    if not budgeted:
        value = jnp.max(value, axis=2, keepdims=True)
    columns = jnp.moveaxis(value, 1, 3).reshape(batch, -1, num_ads)  # [B, G·K, N]
    top_value, top_index = jax.lax.top_k(columns, num_positions + 1)
    hits = (top_index[..., None] == jnp.arange(num_ads)) & jnp.isfinite(top_value)[..., None]
    member = jnp.any(hits, axis=(1, 2))
    order = jnp.argsort(~member, axis=1, stable=True).astype(jnp.int32)[:, :size]
    return jnp.sort(order, axis=1), jnp.sum(member, axis=1) > size


def _usable(bid, reserve, available, page_positions, shape) -> jax.Array:
    """bool[B, N, T, K]: eligible (bid > reserve), the treatment available, the position on the query's page."""
    usable = (bid > reserve)[:, :, None, None]
    if available is not None:
        usable = usable & available[..., None]
    if page_positions is not None:
        usable = usable & (jnp.arange(shape[3])[None, :] < page_positions[:, None])[:, None, None, :]
    return jnp.broadcast_to(usable, shape)


class AuctionOutcome(NamedTuple):
    """Per query b and position k (−1 / 0 where the position is empty).

    ad: int32[B, K] candidate index shown at position k; treatment: int32[B, K];
    ctr: float32[B, K] the auction's CTR of the shown ad (after the monotone rule); payment: float32[B, K] expected payment
    per page view; price_per_click: float32[B, K]; objective: float32[B] Σ (bid − reserve)·ctr;
    tied: bool[B] the optimum was not unique within the dtype's rounding, or the query had more candidates
    than the shortlist (both re-solved exactly by `solve_batch`; in its outcome: not unique in float64).
    """

    ad: jax.Array
    treatment: jax.Array
    ctr: jax.Array
    payment: jax.Array
    price_per_click: jax.Array
    objective: jax.Array
    tied: jax.Array


# The kernel's solvers, fastest first: `fast` (budget-free cost semantics above DP_MAX_POSITIONS: the assignment
# solver; otherwise the DP; ties flagged within `slate_ties.tie_tolerance`), `tie_break` (the DP on the shortlist
# with the reference's tie-break), `tie_break_all` (the same on every candidate, for queries whose shortlist is
# longer than the kernel's).
SOLVERS = ("fast", "tie_break", "tie_break_all")


@functools.partial(jax.jit, static_argnames=("heights", "space_budget", "mode", "solver", "mechanism"))
def vcg_batch(ctr: jax.Array, bid: jax.Array, reserve: jax.Array, available: jax.Array | None = None,
              page_positions: jax.Array | None = None, *, heights: tuple[float, ...] | None = None, space_budget: float | None = None,
              mode: ReserveMode = "cost", solver: str = "fast", mechanism: str = "vcg") -> AuctionOutcome:
    """Run one auction per query (the jitted kernel; `solve_batch` is the entry point): the welfare-maximising
    page, priced by `mechanism` (`auction.mechanisms.MECHANISMS`; VCG by default).

    `solver` (SOLVERS): `fast` resolves an optimum that may not be unique arbitrarily and flags it in
    `tied`; the `tie_break` ones apply the reference's rules (slower, so `solve_batch` reruns only flagged
    queries) and flag whether the optimum was tied.

    ctr: float32[B, N, T, K] CTR of candidate n in treatment t at position k (made non-increasing along k),
    K ≤ 8; bid, reserve: float32[B, N] per click (bid ≤ reserve is ineligible: pad with bid 0); available:
    bool[B, N, T] (default all); page_positions: int32[B] the positions each query's page has, the first ones
    (default K: a phone's page has fewer than a desktop's); heights: the T treatments' heights in whole lines and space_budget the
    page's (static; None = no budget).
    """
    batch, num_ads, num_treatments, num_positions = ctr.shape
    check_mechanism(mechanism)
    thresholds = MECHANISMS[mechanism].needs_thresholds
    if num_positions > MAX_POSITIONS:
        raise ValueError(f"num_positions: at most {MAX_POSITIONS}, got {num_positions}")
    if space_budget is not None and (heights is None or len(heights) != num_treatments):
        raise ValueError(f"heights: need one height per treatment ({num_treatments}) with a space budget")
    lines, levels = height_levels(heights, space_budget, num_positions)
    ctr = jax.lax.cummin(ctr, axis=3)  # the monotone rule (module docstring)
    usable = _usable(bid, reserve, available, page_positions, ctr.shape)
    weight = bid - reserve if mode == "cost" else bid
    if solver == "tie_break_all":
        keep = jnp.broadcast_to(jnp.arange(num_ads, dtype=jnp.int32), (batch, num_ads))
        overflow = jnp.zeros(batch, bool)
    else:
        keep, overflow = shortlist(weight, ctr, usable, space_budget is not None)
    pick = lambda x: jnp.take_along_axis(x, keep.reshape(keep.shape + (1,) * (x.ndim - 2)), axis=1)  # noqa: E731
    if solver == "fast" and uses_assignment(num_positions, space_budget, mode, mechanism):
        ad, treatment, counterfactual, tied = assignment_vcg(pick(ctr), pick(bid), pick(reserve), pick(usable))
        threshold = jnp.zeros(ad.shape, ctr.dtype)
    else:
        ad, treatment, counterfactual, tied, threshold = dp_vcg(
            pick(ctr), pick(bid), pick(reserve), pick(usable), heights=lines, levels=levels, mode=mode,
            break_ties=solver.startswith("tie_break"), thresholds=thresholds)
    ad = jnp.where(ad >= 0, jnp.take_along_axis(keep, jnp.maximum(ad, 0), axis=1), -1)
    if not solver.startswith("tie_break"):
        tied = tied | overflow  # a longer shortlist than the kernel's: rerun on every candidate
    shown = ad >= 0
    rows = jnp.arange(batch)[:, None]
    positions = jnp.arange(num_positions)[None, :]
    safe_ad = jnp.maximum(ad, 0)
    own_ctr = jnp.where(shown, ctr[rows, safe_ad, treatment, positions], 0.0)
    own_bid, own_reserve = bid[rows, safe_ad], reserve[rows, safe_ad]
    own_value = jnp.where(shown, (own_bid - own_reserve if mode == "cost" else own_bid) * own_ctr, 0.0)
    # Others' objective in A*, summed directly (not W' − own) to avoid cancellation in float32.
    others = jnp.sum(jnp.where(~jnp.eye(num_positions, dtype=bool)[None], own_value[:, None, :], 0.0), axis=2)
    vcg_payment = counterfactual - others + (own_reserve * own_ctr if mode == "cost" else 0.0)
    threshold_bid = threshold + (own_reserve if mode == "cost" else 0.0)
    priced = Shown(own_ctr, own_bid, own_reserve, vcg_payment, threshold_bid)
    payment = jnp.where(shown, MECHANISMS[mechanism].payment(priced), 0.0)
    price = jnp.where(shown & (own_ctr > 0), payment / jnp.where(own_ctr > 0, own_ctr, 1.0), 0.0)
    objective = jnp.sum(jnp.where(shown, (own_bid - own_reserve) * own_ctr, 0.0), axis=1)
    return AuctionOutcome(
        ad=ad.astype(jnp.int32),
        treatment=jnp.where(shown, treatment, 0).astype(jnp.int32),
        ctr=own_ctr,
        payment=payment,
        price_per_click=price,
        objective=objective,
        tied=tied,
    )


def preferred_batch(num_positions: int, num_candidates: int, heights: tuple[float, ...] | None = None,
                    space_budget: float | None = None, mode: ReserveMode = "cost", mechanism: str = "vcg") -> int:
    """Queries per kernel call that keep the DP's prefix and suffix states within ~32 MB: 64 to 1,024 (measured
    best); 1,024 for the assignment solver, whose state is a few rows per query (~1.15× faster than 512 at K = 8)."""
    if uses_assignment(num_positions, space_budget, mode, mechanism):
        return 1024
    _, levels = height_levels(heights, space_budget, num_positions)
    per_query = 3 * (num_candidates + 1) * (1 << num_positions) * levels * 4
    rows = 1 << max(int(2**25 // per_query).bit_length() - 1, 0)
    return int(min(max(rows, 64), 1024))


def solve_batch(ctr, bid, reserve, available=None, page_positions=None, *, heights: tuple[float, ...] | None = None,
                space_budget: float | None = None, mode: ReserveMode = "cost", mechanism: str = "vcg") -> AuctionOutcome:
    """Exact auctions for a batch (arguments as `vcg_batch`), as numpy arrays, ties broken as the reference does.

    Runs the kernel in chunks of `preferred_batch` queries, or one chunk of the next power of two for fewer
    queries (padded with empty queries), so a caller with a varying batch size compiles few shapes.
    """
    options = dict(heights=heights, space_budget=space_budget, mode=mode, mechanism=mechanism)
    arrays = [None if a is None else np.asarray(a) for a in (ctr, bid, reserve, available, page_positions)]
    total = arrays[0].shape[0]
    size = min(preferred_batch(arrays[0].shape[3], arrays[0].shape[1], **options),
               1 << max(total - 1, 0).bit_length())
    starts = range(0, max(total, 1), size)  # an empty batch runs one empty chunk: empty arrays out
    chunks = [[None if a is None else pad_rows(a[start:start + size], size) for a in arrays] for start in starts]
    running = [vcg_batch(*chunk, **options) for chunk in chunks]  # all dispatched before the first tie re-solve
    parts = []
    for start, chunk, outcome in zip(starts, chunks, running):
        rows = min(size, total - start)
        parts.append(resolve_ties(AuctionOutcome(*(np.asarray(x)[:rows] for x in outcome)), *chunk, **options))
    return AuctionOutcome(*(np.concatenate(column) for column in zip(*parts)))


def pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Pad with zero rows up to `rows` (for bids, zero rows are empty queries), so jitted shapes stay few."""
    return np.concatenate([array, np.zeros((rows - array.shape[0], *array.shape[1:]), array.dtype)])


TIE_ROWS = 16  # tied queries are re-solved in blocks of this many rows (the last one padded by repeating its rows)


@functools.partial(jax.jit, static_argnames=("budgeted", "mode"))
def shortlist_overflows(ctr, bid, reserve, available, page_positions, *, budgeted: bool, mode: ReserveMode) -> jax.Array:
    """bool[B]: the query has more candidates than the kernel's shortlist (`shortlist`)."""
    usable = _usable(bid, reserve, available, page_positions, ctr.shape)
    return shortlist(bid - reserve if mode == "cost" else bid, jax.lax.cummin(ctr, axis=3), usable, budgeted)[1]


def resolve_ties(outcome: AuctionOutcome, ctr, bid, reserve, available=None, page_positions=None,
                 **options) -> AuctionOutcome:
    """Solve the queries flagged `tied` again (numpy outcome in and out) in float64, where the float32 kernel's
    near-ties are mostly told apart (its tolerance must cover float32 rounding): with the reference tie-break
    rules (on every candidate where the shortlist is too short) — after a float64 fast pass, which tells most
    near-ties apart, wherever the tie-break is far slower than it (a height budget, or the assignment solver).

    Ties are rare with real-valued CTRs that fall along positions (flat CTRs, such as an untrained model's
    under the monotone rule, tie every order of a slate), so only those rows rerun, in blocks of `TIE_ROWS`
    rows: each solver compiles one shape, whatever the number of ties.
    """
    tied = np.flatnonzero(outcome.tied)
    if not tied.size:
        return outcome
    batch, _, _, num_positions = np.shape(ctr)
    arrays = (ctr, bid, reserve, available, page_positions)
    mode, budget = options.get("mode", "cost"), options.get("space_budget")
    patched = [np.array(column) for column in outcome]

    def blocks(rows: np.ndarray) -> list[tuple[np.ndarray, list]]:
        """`rows` in blocks of TIE_ROWS, each with the arrays at its rows (CTRs, bids and reserves in float64; the
        last block's rows repeated up to TIE_ROWS)."""
        out = []
        for start in range(0, rows.size, TIE_ROWS):
            block = rows[start:start + TIE_ROWS]
            index = np.resize(block, TIE_ROWS)
            picked = [None if a is None else np.asarray(a)[index] for a in arrays]  # None: every treatment / the page
            out.append((block, [a.astype(np.float64) for a in picked[:3]] + picked[3:]))
        return out

    def overflows(rows: np.ndarray) -> np.ndarray:
        flags = [np.asarray(shortlist_overflows(*block_arrays, budgeted=budget is not None, mode=mode))[: block.size]
                 for block, block_arrays in blocks(rows)]
        return np.concatenate([np.zeros(0, bool), *flags])  # no rows: an empty mask

    def rerun(rows: np.ndarray, solver: str) -> np.ndarray:
        """Re-solve `rows` with `solver`, patch them in, and return which of them are still tied."""
        running = [(block, vcg_batch(*block_arrays, solver=solver, **options)) for block, block_arrays in blocks(rows)]
        still_tied = [np.zeros(0, bool)]  # no rows: none still tied
        for block, again in running:  # every block dispatched before the first is read
            for column, fixed in zip(patched, again):
                column[block] = np.asarray(fixed)[: block.size]
            still_tied.append(np.asarray(again.tied)[: block.size])
        return np.concatenate(still_tied)

    with jax.enable_x64(True):
        long = np.zeros(batch, bool)
        long[tied] = overflows(tied)  # the shortlist is too short: the tie-break runs on every candidate
        # Without a budget the DP's tie-break pass costs about one fast pass (and is as exact in float64): run it
        # directly. Elsewhere it costs far more (~20× under a 16-line budget; the assignment solver's is the DP).
        if budget is not None or uses_assignment(num_positions, budget, mode, options.get("mechanism", "vcg")):
            short = tied[~long[tied]]
            tied = np.concatenate([short[rerun(short, "fast")], tied[long[tied]]]) if short.size else tied
        if tied.size:
            for rows, solver in ((tied[~long[tied]], "tie_break"), (tied[long[tied]], "tie_break_all")):
                if rows.size:
                    rerun(rows, solver)
    return AuctionOutcome(*patched)
