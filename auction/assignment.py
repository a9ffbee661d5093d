"""Exact VCG without a height budget as an assignment problem: the Hungarian method, batched, polynomial in K.

Without a budget each candidate takes its best treatment at each position, and the page is a maximum-weight
matching of the K positions (rows) to the N candidates plus K empty slots (columns worth 0; a candidate that
may not be shown is worth −inf). The Hungarian method (Kuhn–Munkres, shortest augmenting paths with
potentials u, v; the dense O(K²·(N + K)) form) adds one row per phase; a phase that starts with r rows matched
ends within r + 1 steps, so every loop's count is set by the phase, not the data, and runs batched over queries (lanes) with a
"done" mask instead of Python per query.

Counterfactuals from the optimum's potentials (cost semantics only). Forbidding a shown ad's column keeps the
potentials dual-feasible and the rest of the matching tight, and every other free column keeps potential 0,
so one more phase for the row that lost its column gives the best page without the ad. Each shown ad costs
one phase. (Lowering a column instead, as the filter semantics would need, can leave the vacated column free
with a negative potential, which breaks optimality: the filter semantics go to the DP.)

Ties. Another optimal matching is a cycle of tight edges (reduced cost within `slate_ties.tie_tolerance`)
through the rows and the free columns (`_other_optima`). A unique optimum has no gaps: with CTRs non-increasing
along positions moving an ad up into a gap would tie it. The commonest ties come from the monotone rule: a
learned pCTR that rises down the page is flattened, and the shown ads can then trade places along their flat
runs (or move into gaps) at exactly the same value. When every cycle is such a move, the kernel picks the
reference's slate itself (`_flat_tie_break`); any other tie (a near-tie, an unshown ad that could enter, two
ads of equal value) is flagged `tied` and `auction.vcg` re-solves it with the reference tie-break.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from auction.slate_dp import groups
from auction.slate_ties import tie_tolerance


class Matching(NamedTuple):
    """Hungarian state per lane: potentials u float32[L, R+1], v float32[L, C+1]; p int32[L, C+1] the row
    matched to each column (0 = free; row and column 0 are the method's sentinels)."""

    u: jax.Array
    v: jax.Array
    p: jax.Array


def _pick(x: jax.Array, index: jax.Array) -> jax.Array:
    """x[lane, index[lane]] for x [L, M] and index int[L]."""
    return jnp.take_along_axis(x, index[:, None], axis=1)[:, 0]


def _phase(cost: jax.Array, state: Matching, row: jax.Array, active: jax.Array, steps: int | jax.Array,
           query: jax.Array | None = None, banned: jax.Array | None = None) -> tuple[Matching, jax.Array]:
    """Match `row` int32[L] (where `active`) by one shortest augmenting path; cost float32[L, R+1, C+1], or
    float32[Q, R+1, C+1] shared by lanes with `query` int32[L] the query of each lane (not copied per lane).
    `banned` int32[L]: a column the lane may not use (cost +inf).

    `steps` bounds the columns the path visits (rows already matched + 1). Returns the new state and
    whether a finite path existed (False: every free column costs +inf for that row).
    """
    lanes, columns = state.p.shape
    column_index = jnp.arange(columns, dtype=jnp.int32)[None, :]
    rows = state.u.shape[1]
    p = state.p.at[:, 0].set(jnp.where(active, row, 0))
    u, v = state.u, state.v
    minv = jnp.full((lanes, columns), jnp.inf, cost.dtype)
    way = jnp.zeros((lanes, columns), jnp.int32)
    used = jnp.zeros((lanes, columns), bool)
    in_tree = jnp.zeros((lanes, rows), bool)
    column = jnp.zeros(lanes, jnp.int32)  # j0
    done = ~active
    feasible = active

    def step(_, carry):
        p, u, v, minv, way, used, in_tree, column, done, feasible = carry
        live = ~done
        used = used | ((column_index == column[:, None]) & live[:, None])
        from_row = _pick(p, column)
        in_tree = in_tree | ((jnp.arange(rows)[None, :] == from_row[:, None]) & live[:, None])
        if query is None:
            row_cost = jnp.take_along_axis(cost, from_row[:, None, None], axis=1)[:, 0]  # [L, C+1]
        else:
            row_cost = cost[query, from_row]
        if banned is not None:
            row_cost = jnp.where(column_index == banned[:, None], jnp.inf, row_cost)
        reduced = row_cost - _pick(u, from_row)[:, None] - v
        free = ~used & (column_index > 0)
        improve = free & (reduced < minv) & live[:, None]
        minv = jnp.where(improve, reduced, minv)
        way = jnp.where(improve, column[:, None], way)
        candidates = jnp.where(free, minv, jnp.inf)
        delta = jnp.min(candidates, axis=1)
        found = jnp.isfinite(delta)
        feasible = feasible & (done | found)
        delta = jnp.where(live & found, delta, 0.0)
        next_column = jnp.min(jnp.where(candidates == delta[:, None], column_index, columns), axis=1)
        u = u + jnp.where(in_tree, delta[:, None], 0.0)
        v = v - jnp.where(used, delta[:, None], 0.0)
        minv = jnp.where(free, minv - delta[:, None], minv)
        moving = live & found
        column = jnp.where(moving, next_column, column)
        done = done | ~found | (_pick(p, column) == 0)
        return p, u, v, minv, way, used, in_tree, column, done, feasible

    carry = (p, u, v, minv, way, used, in_tree, column, done, feasible)
    p, u, v, minv, way, used, in_tree, column, done, feasible = jax.lax.fori_loop(0, steps, step, carry)
    column = jnp.where(feasible & active, column, 0)
    lane = jnp.arange(lanes)

    def augment(_, carry):
        p, column = carry
        moving = column != 0
        previous = _pick(way, column)
        p = p.at[lane, column].set(jnp.where(moving, _pick(p, previous), _pick(p, column)))
        return p, jnp.where(moving, previous, 0)

    p, _ = jax.lax.fori_loop(0, steps, augment, (p, column))
    return Matching(u, v, p.at[:, 0].set(0)), feasible


def _matched_columns(p: jax.Array, rows: int) -> jax.Array:
    """The column matched to each row 1..R, int32[L, R] (from p, the row of each column)."""
    lanes, columns = p.shape
    index = jnp.broadcast_to(jnp.arange(columns, dtype=jnp.int32)[None, :], p.shape)
    by_row = jnp.zeros((lanes, rows + 1), jnp.int32).at[jnp.arange(lanes)[:, None], p].set(index)
    return by_row[:, 1:]


@jax.jit
def _solve(value: jax.Array) -> Matching:
    """Hungarian method on value float32[L, R+1, C+1] (maximised; −inf = forbidden), rows added one per phase."""
    lanes, rows, columns = value.shape
    state = Matching(jnp.zeros((lanes, rows), value.dtype), jnp.zeros((lanes, columns), value.dtype),
                     jnp.zeros((lanes, columns), jnp.int32))
    active = jnp.ones(lanes, bool)
    cost = -value

    def phase(r, state):
        return _phase(cost, state, jnp.full(lanes, r, jnp.int32), active, r)[0]

    return jax.lax.fori_loop(1, rows, phase, state)


def page_matrix(value: jax.Array) -> jax.Array:
    """value float32[B, N, 1, K] per candidate and position → the matching's values float32[B, K+1, N+K+1]:
    row 1 + k is position k, column 1 + n candidate n, columns N+1..N+K the empty slots (worth 0)."""
    batch, num_ads, _, num_positions = value.shape
    ads = jnp.moveaxis(value[:, :, 0, :], 1, 2)  # [B, K, N]
    page = jnp.concatenate([ads, jnp.zeros((batch, num_positions, num_positions), value.dtype)], axis=2)
    page = jnp.pad(page, ((0, 0), (1, 0), (1, 0)))
    return page.at[:, 0, :].set(0.0)


def _tight(page: jax.Array, state: Matching) -> tuple[jax.Array, jax.Array]:
    """bool[B, K, C]: the edges (position, column) whose reduced cost under the optimal potentials is within a
    rounding tolerance (of the dtype) of 0 — every optimal matching uses only these (complementary slackness) —
    and the tolerance float[B]."""
    num_positions = page.shape[1] - 1
    tolerance = tie_tolerance(page, num_positions)  # the page's K, not its N + K + 1 columns
    reduced = -page - state.u[:, :, None] - state.v[:, None, :]
    tight = jnp.isfinite(page) & (jnp.abs(reduced) <= tolerance[:, None, None])
    return tight[:, 1:, 1:], tolerance


def _other_optima(page: jax.Array, state: Matching, matched: jax.Array, num_ads: int,
                  flat: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Whether the optimum is the only optimal slate, and whether every other one only moves shown ads to positions
    where each keeps its value bit for bit (`flat` bool[B, K(from), K(to)]), read off the optimal potentials
    (module docstring).

    Edges whose reduced cost is within a rounding tolerance (of the dtype) of 0 count as tight. Nodes: the K rows and Z, the
    free columns. x → y means "y takes x's column" (Z: a free column), y → Z "y's column is left free"
    (its potential is 0). A cycle is another optimal matching; it is another slate unless every row in it
    only swaps one empty slot for another. Its moves keep the value exactly unless an ad moves off its flat
    run, an unshown candidate enters, or a shown ad leaves.
    """
    batch, rows, columns = page.shape
    num_positions = rows - 1
    tight, tolerance = _tight(page, state)  # rows 1..K, columns 1..C
    column_slot = jnp.arange(1, columns) > num_ads  # [C]
    own_slot = matched > num_ads  # [B, K]
    is_free = state.p[:, 1:] == 0  # [B, C]
    # row x's column taken by row y: tight[y, col(x)]
    takes = jnp.take_along_axis(tight, jnp.broadcast_to((matched - 1)[:, None, :], (batch, num_positions, num_positions)), axis=2)
    takes = jnp.swapaxes(takes, 1, 2) & ~jnp.eye(num_positions, dtype=bool)[None]  # [B, x, y]
    real_take = takes & ~(own_slot[:, :, None] & own_slot[:, None, :])
    from_free = tight & is_free[:, None, :]  # [B, y, f]
    enter_any = jnp.any(from_free, axis=2)
    enter_real = jnp.any(from_free & ~(column_slot[None, None, :] & own_slot[:, :, None]), axis=2)
    enter_ad = jnp.any(from_free & ~column_slot[None, None, :], axis=2)
    leave = jnp.abs(jnp.take_along_axis(state.v[:, 1:], matched - 1, axis=1)) <= tolerance[:, None]  # [B, K]
    nodes = num_positions + 1  # rows, then Z

    def graph(moves: jax.Array, entries: jax.Array, exits: jax.Array) -> jax.Array:
        edges = jnp.zeros((batch, nodes, nodes), bool)
        edges = edges.at[:, :num_positions, :num_positions].set(moves)
        return edges.at[:, num_positions, :num_positions].set(entries).at[:, :num_positions, num_positions].set(exits)

    edges = graph(takes, enter_any, leave)
    reach = edges
    for _ in range(max(nodes - 1, 1).bit_length()):
        reach = reach | (jnp.einsum("bxy,byz->bxz", reach.astype(jnp.int32), reach.astype(jnp.int32)) > 0)
    on_cycle = jnp.swapaxes(reach, 1, 2)  # an edge x → y closes a cycle when y reaches x
    real = graph(real_take, enter_real, jnp.zeros_like(leave))
    inexact = graph(takes & ~own_slot[:, :, None] & ~flat, enter_ad, leave & ~own_slot)
    return ~jnp.any(real & on_cycle, axis=(1, 2)), ~jnp.any(inexact & on_cycle, axis=(1, 2))


def _flat_runs(value: jax.Array, group_ctr: jax.Array, ad: jax.Array, real: jax.Array) -> jax.Array:
    """bool[B, K(from), K(to)]: the ad the optimum shows at one position has the same value and CTR, bit for bit, at
    every position between it and the other (a flat run: the monotone rule flattens pCTRs that rise down the page).
    value float32[B, N, 1, K]; group_ctr [B, N, K] the CTR of each candidate's best treatment; ad int32[B, K] the
    optimum's candidate at each position where `real` (elsewhere any index)."""
    batch, num_ads, _, num_positions = value.shape
    rows = jnp.arange(batch)[:, None]
    positions = jnp.arange(num_positions)
    ad_value = value[:, :, 0, :][rows, ad]  # [B, K(held at), K(moved to)]
    ad_ctr = group_ctr[rows, ad]
    own = lambda x: jnp.diagonal(x, axis1=1, axis2=2)[..., None]  # noqa: E731 — the value at its own position
    same = jnp.isfinite(ad_value) & (ad_value == own(ad_value)) & (ad_ctr == own(ad_ctr))
    between = (jnp.minimum(positions[:, None, None], positions[None, :, None]) <= positions[None, None, :]) & \
              (positions[None, None, :] <= jnp.maximum(positions[:, None, None], positions[None, :, None]))
    return jnp.all(same[:, :, None, :] | ~between[None], axis=3) & real[..., None]


ORDER_ULPS = 4  # two float32 values of (bid − reserve) × CTR this many ulps apart may be in either order exactly


def _flat_tie_break(value: jax.Array, flat: jax.Array, ad: jax.Array, real: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The reference's slate among the optima when every other optimum only moves the shown ads along their flat
    runs (`_other_optima`; also into gaps): all of them then have the optimum's value exactly, in any precision,
    and no re-solve is needed. The reference prefers the gap-free one with the largest contribution at each
    position in turn: filled top-down, each position takes the most valuable ad whose run holds it and that
    leaves the rest placeable (for runs, Hall's condition on windows of positions suffices).

    value float32[B, N, 1, K]; flat bool[B, K, K] (`_flat_runs`); ad, real as there. Returns the optimum's position placed at each position (−1 empty), and whether each step had one
    best ad (two within `ORDER_ULPS` of each other, whose exact order the float32 values do not settle, leave the
    query to the re-solve).
    """
    batch, num_ads, _, num_positions = value.shape
    positions = jnp.arange(num_positions)
    start = jnp.min(jnp.where(flat, positions, num_positions), axis=2)
    end = jnp.max(jnp.where(flat, positions, -1), axis=2)
    own_value = value[:, :, 0, :][jnp.arange(batch)[:, None], ad, positions[None, :]]
    worth = jnp.where(real, own_value, -jnp.inf)  # [B, K]
    shown = jnp.sum(real, axis=1)  # [B]
    single = jnp.ones(batch, bool)
    window_start, window_end = positions[:, None], positions[None, :]  # [S, T]

    def place(k, carry):
        order, placed, single = carry
        filling = k < shown
        able = ~placed & (start <= k) & (end >= k) & filling[:, None]  # [B, I]
        rest = ~placed[:, None, :] & ~jnp.eye(num_positions, dtype=bool)[None]  # [B, I, J]: the others left
        rest_start = jnp.maximum(start, k + 1)[:, None, :, None, None]
        rest_end = end[:, None, :, None, None]
        inside = rest[..., None, None] & (rest_start >= window_start) & (rest_end <= window_end)  # [B, I, J, S, T]
        window = (window_start >= k + 1) & (window_start <= window_end) & (window_end < shown[:, None, None])
        crowded = jnp.any(window[:, None] & (jnp.sum(inside, axis=2) > window_end - window_start + 1), axis=(2, 3))
        stranded = jnp.any(rest & (end < k + 1)[:, None, :], axis=2)
        candidate = able & ~crowded & ~stranded
        best = jnp.max(jnp.where(candidate, worth, -jnp.inf), axis=1)
        # values are rounded twice (bid − reserve, × CTR): ones this close may be in the other order, or tied
        close = candidate & (worth >= best[:, None] - ORDER_ULPS * jnp.finfo(worth.dtype).eps * jnp.abs(best)[:, None])
        single &= ~filling | (jnp.sum(close, axis=1) == 1)
        choice = jnp.argmax(candidate & (worth == best[:, None]), axis=1)
        order = order.at[:, k].set(jnp.where(filling, choice, -1).astype(jnp.int32))
        placed = placed | (filling[:, None] & (positions[None, :] == choice[:, None]))
        return order, placed, single

    order, _, single = jax.lax.fori_loop(0, num_positions, place, (jnp.full((batch, num_positions), -1, jnp.int32), ~real, single))
    return order, single


@jax.jit
def assignment_vcg(ctr: jax.Array, bid: jax.Array, reserve: jax.Array, usable: jax.Array):
    """VCG without a budget, reserve as a cost (module docstring): ad, treatment, the best objective without each
    shown ad, tied — the results of `slate_dp.dp_vcg`."""
    batch, num_ads, num_treatments, num_positions = ctr.shape
    value, treatment = groups(ctr, bid - reserve, usable, budgeted=False)
    page = page_matrix(value)
    state = _solve(page)
    matched = _matched_columns(state.p, num_positions)  # [B, K] column per position
    is_ad = (matched >= 1) & (matched <= num_ads)
    ad = jnp.where(is_ad, matched - 1, -1)
    rows = jnp.arange(batch)[:, None]
    positions = jnp.arange(num_positions)[None, :]
    shown_treatment = jnp.where(is_ad, treatment[rows, jnp.maximum(ad, 0), 0, positions], 0)
    flat = _flat_runs(value, jnp.take_along_axis(ctr, treatment, axis=2)[:, :, 0], jnp.maximum(ad, 0), is_ad)
    unique, only_flat = _other_optima(page, state, matched, num_ads, flat)
    order, single = _flat_tie_break(value, flat, jnp.maximum(ad, 0), is_ad)
    canonical = ~unique & only_flat & single  # the other optima move ads only along their flat runs

    # One lane per (query, position): the best page without the ad shown there (its column banned, its row
    # re-matched by one phase); the lanes share their query's page.
    lanes = batch * num_positions
    query = jnp.repeat(jnp.arange(batch, dtype=jnp.int32), num_positions)
    lane_row = jnp.tile(jnp.arange(1, num_positions + 1, dtype=jnp.int32), batch)
    lane_column = matched.reshape(-1)
    repeat = lambda x: jnp.repeat(x, num_positions, axis=0)  # noqa: E731
    lane_state = Matching(repeat(state.u), repeat(state.v), repeat(state.p).at[jnp.arange(lanes), lane_column].set(0))
    lane_state, feasible = _phase(-page, lane_state, lane_row, is_ad.reshape(-1), num_positions, query, lane_column)
    rematched = _matched_columns(lane_state.p, num_positions).reshape(batch, num_positions, num_positions)
    without = jnp.sum(jnp.take_along_axis(page[:, None, 1:, :], rematched[..., None], axis=3)[..., 0], axis=2)
    without = jnp.where(feasible.reshape(batch, num_positions), without, -jnp.inf)
    moved = jnp.maximum(order, 0)
    moved_ad = jnp.where(order >= 0, jnp.take_along_axis(ad, moved, axis=1), -1)
    moved_treatment = jnp.where(order >= 0, treatment[rows, jnp.maximum(moved_ad, 0), 0, positions], 0)
    moved_without = jnp.where(order >= 0, jnp.take_along_axis(without, moved, axis=1), -jnp.inf)
    pick = lambda canonical_value, found: jnp.where(canonical[:, None], canonical_value, found)  # noqa: E731
    return (pick(moved_ad, ad), pick(moved_treatment, shown_treatment), pick(moved_without, without),
            ~unique & ~canonical)
