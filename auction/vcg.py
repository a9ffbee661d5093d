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

Why enumeration is exact. Group the (ad, treatment) choices: without a budget a group is an ad's best
treatment at a position; with a budget a group is one treatment (all ads' variants of one treatment have
the same height). Any optimum — also with an ad removed or lowered to its reserve — places at each
position an ad from the top K+1 of its group's list there: were it not, one of those K+1 is unused,
fits the same height and is worth at least as much. So every slate over the top-(K+1) lists (with a
budget: over treatment patterns whose heights fit) contains every optimum the payments need. Slate
objectives are 0/1 matmuls; "no ad twice" and "slate contains ad i" are tests on the list entries.

Exact ties between optimal slates are flagged (`tied`); `solve_batch` resolves those queries with the
reference solver's tie-break rules, so both solvers return the same allocation.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from auction.reserves import ReserveMode

# Bits per word of the slate bit sets (int32 without the sign bit).
_WORD = 31


class AuctionOutcome(NamedTuple):
    """Per query b and position k (−1 / 0 where the position is empty).

    ad: int32[B, K] candidate index shown at position k; treatment: int32[B, K];
    ctr: float32[B, K] the auction's CTR of the shown ad (after the monotone rule); payment: float32[B, K] expected payment
    per page view; price_per_click: float32[B, K]; objective: float32[B] Σ (bid − reserve)·ctr;
    tied: bool[B] the optimum was not unique (resolved by `solve_batch`).
    """

    ad: jax.Array
    treatment: jax.Array
    ctr: jax.Array
    payment: jax.Array
    price_per_click: jax.Array
    objective: jax.Array
    tied: jax.Array


class SlateTables(NamedTuple):
    """Static enumeration of slates over list entries e = (group·K + position)·C + choice.

    entries int32[M, K] (−1 = empty; shortest slates first), member float32[E, M], bits int32[W, M]
    (entry bit sets), pair_index int32[P, 2] / pair_member float32[P, M] (entry pairs a slate picks
    together; only without a budget, where they are few).
    """

    entries: np.ndarray
    member: np.ndarray
    bits: np.ndarray
    pair_index: np.ndarray
    pair_member: np.ndarray


@functools.lru_cache(maxsize=None)
def slate_tables(num_positions: int, choices: int, group_heights: tuple[float, ...] | None,
                 space_budget: float | None) -> SlateTables:
    """Every feasible slate: per position a group (treatment) and a choice in that group's list."""
    groups = 1 if group_heights is None else len(group_heights)
    rows = []
    for length in range(num_positions + 1):
        for pattern in itertools.product(range(groups), repeat=length):
            if space_budget is not None and sum(group_heights[g] for g in pattern) > space_budget * (1 + 1e-9):
                continue
            for combo in itertools.product(range(choices), repeat=length):
                rows.append([(g * num_positions + p) * choices + c for p, (g, c) in enumerate(zip(pattern, combo))]
                            + [-1] * (num_positions - length))
    entries = np.asarray(rows, dtype=np.int32)
    num_entries = groups * num_positions * choices
    member = np.zeros((num_entries, len(rows)), np.float32)
    for m, row in enumerate(rows):
        member[[e for e in row if e >= 0], m] = 1.0
    words = -(-num_entries // _WORD)
    bits = np.zeros((words, len(rows)), np.int64)
    for e in range(num_entries):
        bits[e // _WORD] |= member[e].astype(np.int64) << (e % _WORD)
    if space_budget is None:
        pairs = [(p * choices + c, q * choices + d) for p, q in itertools.combinations(range(num_positions), 2)
                 for c in range(choices) for d in range(choices)]
        pair_index = np.asarray(pairs, np.int32).reshape(-1, 2)
        pair_member = member[pair_index[:, 0]] * member[pair_index[:, 1]]
    else:
        pair_index, pair_member = np.zeros((0, 2), np.int32), np.zeros((0, len(rows)), np.float32)
    return SlateTables(entries, member, bits.astype(np.int32), pair_index, pair_member)


def _first_index(mask: jax.Array, axis: int = -1) -> jax.Array:
    """Index of the first True along `axis` (a min-reduce: much faster than argmax on XLA:CPU)."""
    size = mask.shape[axis]
    shape = [1] * mask.ndim
    shape[axis] = size
    index = jnp.arange(size, dtype=jnp.int32).reshape(shape)
    return jnp.min(jnp.where(mask, index, size), axis=axis)


def _top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Largest k along the last axis, ties to the lower index (k rounds of max; faster than lax.top_k on CPU)."""
    index = jnp.arange(x.shape[-1], dtype=jnp.int32)
    values, indices = [], []
    for _ in range(k):
        top = jnp.max(x, axis=-1)
        at = _first_index(x == top[..., None])
        values.append(top)
        indices.append(at)
        x = jnp.where(index == at[..., None], -jnp.inf, x)
    return jnp.stack(values, axis=-1), jnp.stack(indices, axis=-1)


def _entry_bits(mask: jax.Array, words: int) -> jax.Array:
    """Bit sets int32[..., W] of the True entries of mask bool[..., E]."""
    shifts = jnp.left_shift(jnp.int32(1), jnp.arange(_WORD, dtype=jnp.int32))
    sets = []
    for w in range(words):
        part = mask[..., w * _WORD:(w + 1) * _WORD]
        sets.append(jnp.sum(jnp.where(part, shifts[: part.shape[-1]], 0), axis=-1))
    return jnp.stack(sets, axis=-1)


def _any_shared(slate_bits: jax.Array, sets: jax.Array) -> jax.Array:
    """bool[..., M]: slate m picks an entry of `sets` int32[..., W] (slate_bits int32[W, M])."""
    shared = jnp.zeros(sets.shape[:-1] + slate_bits.shape[1:], dtype=bool)
    for w in range(slate_bits.shape[0]):
        shared |= (slate_bits[w] & sets[..., w, None]) != 0
    return shared


def _break_ties(is_best: jax.Array, top_value: jax.Array, top_ad: jax.Array, *, tables: SlateTables,
                num_positions: int, choices: int) -> jax.Array:
    """Among optimal slates apply the reference tie-break: fewer ads, then larger contributions from the
    top down, then smaller (ad, treatment) from the top down. Returns the chosen slate index per query."""
    entries = tables.entries
    lengths = jnp.asarray((entries >= 0).sum(axis=1))
    keep = is_best & (lengths == jnp.min(jnp.where(is_best, lengths, num_positions + 1), axis=1, keepdims=True))
    picks = [(jnp.asarray(entries[:, p] >= 0), jnp.asarray(np.maximum(entries[:, p], 0))) for p in range(num_positions)]
    for used, entry in picks:
        contribution = jnp.where(used, top_value[:, entry], 0.0)
        keep &= contribution == jnp.max(jnp.where(keep, contribution, -jnp.inf), axis=1, keepdims=True)
    big = jnp.iinfo(jnp.int32).max
    for used, entry in picks:
        for key in (jnp.where(used, top_ad[:, entry], -1), jnp.broadcast_to(entry // (num_positions * choices), keep.shape)):
            keep &= key == jnp.min(jnp.where(keep, key, big), axis=1, keepdims=True)
    return _first_index(keep)


@functools.partial(jax.jit, static_argnames=("heights", "space_budget", "mode", "break_ties"))
def vcg_batch(ctr: jax.Array, bid: jax.Array, reserve: jax.Array, available: jax.Array | None = None, *,
              heights: tuple[float, ...] | None = None, space_budget: float | None = None,
              mode: ReserveMode = "cost", break_ties: bool = False) -> AuctionOutcome:
    """Run one VCG auction per query (the jitted kernel; `solve_batch` is the entry point).

    Without `break_ties` an exactly tied optimum is resolved by slate order and flagged in `tied`;
    with it the reference tie-break rules are applied (slower, so `solve_batch` reruns only tied queries).

    ctr: float32[B, N, T, K] CTR of candidate n in treatment t at position k (made non-increasing along k); bid, reserve: float32[B, N]
    per click (bid ≤ reserve is ineligible: pad with bid 0); available: bool[B, N, T] (default all);
    heights: the T treatments' heights and space_budget the page's (static; None = no budget).
    """
    batch, num_ads, num_treatments, num_positions = ctr.shape
    ctr = jax.lax.cummin(ctr, axis=3)  # the monotone rule (module docstring)
    if space_budget is not None and (heights is None or len(heights) != num_treatments):
        raise ValueError(f"heights: need one height per treatment ({num_treatments}) with a space budget")
    choices = min(num_positions + 1, num_ads)
    weight = bid - reserve if mode == "cost" else bid
    adjusted = weight[:, :, None, None] * ctr
    usable = (bid > reserve)[:, :, None] if available is None else (bid > reserve)[:, :, None] & available
    adjusted = jnp.where(usable[..., None], adjusted, -jnp.inf)  # [B, N, T, K]
    if space_budget is None:
        group_value = jnp.max(adjusted, axis=2, keepdims=True)  # best treatment per (ad, position)
        group_treatment = _first_index(adjusted == group_value, axis=2)[:, :, None, :]
    else:
        group_value = adjusted
        group_treatment = jnp.broadcast_to(jnp.arange(num_treatments)[None, None, :, None], adjusted.shape)
    top_value, top_ad = _top_k(jnp.moveaxis(group_value, 1, 3), choices)  # [B, G, K, C]
    top_value, top_ad = top_value.reshape(batch, -1), top_ad.reshape(batch, -1)  # [B, E]

    tables = slate_tables(num_positions, choices, heights if space_budget is not None else None, space_budget)
    member = jnp.asarray(tables.member)
    slate_bits = jnp.asarray(tables.bits)
    eligible = top_value > -jnp.inf
    welfare = jnp.where(eligible, top_value, 0.0) @ member  # [B, M]
    infeasible = ((~eligible).astype(jnp.float32) @ member) > 0
    if space_budget is None:
        pair_index = jnp.asarray(tables.pair_index)
        repeats = (top_ad[:, pair_index[:, 0]] == top_ad[:, pair_index[:, 1]]).astype(jnp.float32)
        infeasible |= (repeats @ jnp.asarray(tables.pair_member)) > 0
    else:
        # the ad each slate places at position p, as K arrays [B, M] (an empty position holds −1 − p)
        slate_ads = [jnp.where(jnp.asarray(tables.entries[:, p] >= 0),
                               jnp.take(top_ad, jnp.asarray(np.maximum(tables.entries[:, p], 0)), axis=1), -1 - p)
                     for p in range(num_positions)]
        for p, q in itertools.combinations(range(num_positions), 2):
            infeasible |= slate_ads[p] == slate_ads[q]
    welfare = jnp.where(infeasible, -jnp.inf, welfare)

    best_welfare = jnp.max(welfare, axis=1)
    is_best = welfare == best_welfare[:, None]
    tied = jnp.sum(is_best, axis=1) > 1
    if break_ties:
        best_index = _break_ties(is_best, top_value, top_ad, tables=tables, num_positions=num_positions, choices=choices)
    else:
        best_index = _first_index(is_best)
    best_entries = jnp.asarray(tables.entries)[best_index]  # [B, K]
    shown = best_entries >= 0
    rows = jnp.arange(batch)[:, None]
    safe_entry = jnp.maximum(best_entries, 0)
    shown_ad = jnp.where(shown, top_ad[rows, safe_entry], -1)
    shown_value = jnp.where(shown, top_value[rows, safe_entry], 0.0)
    positions = jnp.arange(num_positions)[None, :]
    safe_ad = jnp.maximum(shown_ad, 0)
    group = safe_entry // (num_positions * choices)
    treatment = group_treatment[rows, safe_ad, 0 if space_budget is None else group, positions]
    own_ctr = jnp.where(shown, ctr[rows, safe_ad, treatment, positions], 0.0)
    own_reserve = reserve[rows, safe_ad]
    # Others' objective in A*, summed directly (not W' − own) to avoid cancellation in float32.
    others = jnp.sum(jnp.where(~jnp.eye(num_positions, dtype=bool)[None], shown_value[:, None, :], 0.0), axis=2)

    holds = top_ad[:, None, :] == shown_ad[:, :, None]  # [B, K, E]: entry holds shown ad k
    if mode == "cost":
        contains = _any_shared(slate_bits, _entry_bits(holds, slate_bits.shape[0]))  # [B, K, M]
        without = jnp.max(jnp.where(contains, -jnp.inf, welfare[:, None, :]), axis=2)
        payment = own_reserve * own_ctr + without - others
    else:
        given_up = 1.0 - own_reserve / jnp.where(shown, bid[rows, safe_ad], 1.0)  # share of its value at its reserve
        lowered = jnp.where(holds & eligible[:, None, :], top_value[:, None, :], 0.0) * given_up[..., None]
        at_reserve = jnp.max(welfare[:, None, :] - jnp.einsum("bke,em->bkm", lowered, member), axis=2)
        payment = at_reserve - others
    payment = jnp.where(shown, payment, 0.0)
    price = jnp.where(shown & (own_ctr > 0), payment / jnp.where(own_ctr > 0, own_ctr, 1.0), 0.0)
    objective = jnp.sum(jnp.where(shown, (bid[rows, safe_ad] - own_reserve) * own_ctr, 0.0), axis=1)
    return AuctionOutcome(
        ad=shown_ad.astype(jnp.int32),
        treatment=jnp.where(shown, treatment, 0).astype(jnp.int32),
        ctr=own_ctr,
        payment=payment,
        price_per_click=price,
        objective=objective,
        tied=tied,
    )


def preferred_batch(num_positions: int, num_candidates: int, heights: tuple[float, ...] | None = None,
                    space_budget: float | None = None) -> int:
    """Queries per kernel call that keep the [batch, slates] arrays within ~4 MB (cache): 128 to 1,024.

    Larger batches run several times slower per query once those arrays leave the cache.
    """
    slates = slate_tables(num_positions, min(num_positions + 1, num_candidates),
                          heights if space_budget is not None else None, space_budget).entries.shape[0]
    rows = 1 << max(int(2**20 // slates).bit_length() - 1, 0)
    return int(min(max(rows, 128), 1024))


def solve_batch(ctr, bid, reserve, available=None, *, heights: tuple[float, ...] | None = None,
                space_budget: float | None = None, mode: ReserveMode = "cost") -> AuctionOutcome:
    """Exact VCG for a batch (arguments as `vcg_batch`), as numpy arrays, ties broken as the reference does.

    Runs the kernel in chunks of `preferred_batch` queries, or one chunk of the next power of two for fewer
    queries (padded with empty queries), so a caller with a varying batch size compiles few shapes.
    """
    options = dict(heights=heights, space_budget=space_budget, mode=mode)
    arrays = [None if a is None else np.asarray(a) for a in (ctr, bid, reserve, available)]
    total = arrays[0].shape[0]
    size = min(preferred_batch(arrays[0].shape[3], arrays[0].shape[1], heights, space_budget),
               1 << max(total - 1, 0).bit_length())
    parts = []
    for start in range(0, total, size):
        chunk = [None if a is None else pad_rows(a[start:start + size], size) for a in arrays]
        outcome = AuctionOutcome(*(np.asarray(x) for x in vcg_batch(*chunk, **options)))
        rows = min(size, total - start)
        parts.append(resolve_ties(AuctionOutcome(*(c[:rows] for c in outcome)), *chunk, **options))
    return AuctionOutcome(*(np.concatenate(column) for column in zip(*parts)))


def pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Pad with zero rows up to `rows` (for bids, zero rows are empty queries), so jitted shapes stay few."""
    return np.concatenate([array, np.zeros((rows - array.shape[0], *array.shape[1:]), array.dtype)])


MIN_TIE_ROWS = 64  # tied queries are re-solved in batches of 64, 128, 256, ... rows (the tied rows repeated)


def resolve_ties(outcome: AuctionOutcome, ctr, bid, reserve, available=None, **options) -> AuctionOutcome:
    """Solve the queries flagged `tied` again with the reference tie-break rules (numpy outcome in and out).

    Ties are rare with real-valued CTRs that fall along positions (flat CTRs, such as an untrained model's
    under the monotone rule, tie every order of a slate), so only those rows rerun, padded to a power of two
    of at least `MIN_TIE_ROWS` so that few shapes compile.
    """
    tied = np.flatnonzero(outcome.tied)
    if tied.size == 0:
        return outcome
    rows = np.resize(tied, max(1 << int(tied.size - 1).bit_length(), MIN_TIE_ROWS))
    again = vcg_batch(*(None if a is None else np.asarray(a)[rows] for a in (ctr, bid, reserve, available)),
                      break_ties=True, **options)
    patched = [np.array(column) for column in outcome]
    for column, fixed in zip(patched, again):
        column[tied] = np.asarray(fixed)[: tied.size]
    return AuctionOutcome(*patched)
