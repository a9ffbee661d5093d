"""Metrics over predictions and labels: log loss, AUC, calibration by decile (numpy, exact, no sampling).

Every metric takes optional importance weights: an example kept with probability r by data sampling
weighs 1/r, so weighted metrics estimate what the full, unsampled data would give.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

EPS = 1e-7


def _weights(weight: np.ndarray | None, size: int) -> np.ndarray:
    return np.ones(size) if weight is None else np.asarray(weight, np.float64)


def log_loss(pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """(Weighted) mean binary cross-entropy of probabilities `pred` against 0/1 `label`."""
    if not np.size(pred):
        return float("nan")
    loss, weight_sum = log_loss_sums(pred, label, weight)
    return float(loss / weight_sum)


def entropy_of_mean(label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Log loss of always predicting the mean label: the denominator of normalized entropy."""
    y = np.asarray(label, np.float64)
    if not y.size:
        return float("nan")
    w = _weights(weight, y.size)
    return log_loss(np.full(y.shape, np.sum(w * y) / np.sum(w)), y, w)


def auc(pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """(Weighted) ROC AUC with ties given half credit: P(score of a positive > score of a negative); NaN where a
    class is missing or a score is NaN (a diverged model's)."""
    pred = np.asarray(pred)
    if pred.dtype != np.float32:  # float32 sorts and ties as its exact float64 copy would, in half the memory
        pred = pred.astype(np.float64, copy=False)
    label = np.asarray(label).astype(bool)
    w = _weights(weight, pred.size)
    positives, negatives = float(w[label].sum()), float(w[~label].sum())
    if positives == 0 or negatives == 0 or np.isnan(pred).any():
        return float("nan")
    order = np.argsort(pred, kind="mergesort")
    # per run of equal predictions: negative weight strictly below, and tied within
    ordered = pred[order]
    starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    del ordered
    sorted_w, sorted_label = w[order], label[order]
    del order
    neg_in_run = np.add.reduceat(np.where(sorted_label, 0.0, sorted_w), starts)
    pos_in_run = np.add.reduceat(np.where(sorted_label, sorted_w, 0.0), starts)
    neg_below = np.cumsum(neg_in_run) - neg_in_run
    return float(np.sum(pos_in_run * (neg_below + 0.5 * neg_in_run)) / (positives * negatives))


def calibration_by_decile(pred: np.ndarray, label: np.ndarray, truth: np.ndarray | None = None,
                          weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per pCTR decile: mean pred, mean label, mean true CTR, and bias (Σ pred − Σ label) / Σ label (weighted)."""
    pred = np.asarray(pred, np.float64)
    if pred.size == 0:
        empty = np.zeros(0)
        return {"decile": empty, "mean_pred": empty, "mean_label": empty, "mean_truth": empty, "bias": empty}
    edges = np.quantile(pred, np.linspace(0, 1, 11)[1:-1])
    return _decile_table(*_decile_sums(edges, pred, label, weight, truth))


def _decile_sums(edges: np.ndarray, pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None,
                 truth: np.ndarray | None = None) -> np.ndarray:
    """float[4, 10]: per decile (between `edges`), Σ w, Σ w·pred, Σ w·label and Σ w·truth (Σ w·label without truth)."""
    pred, label = np.asarray(pred, np.float64), np.asarray(label, np.float64)
    w = _weights(weight, pred.size)
    decile = np.searchsorted(edges, pred, side="right")
    sums = [np.bincount(decile, values, minlength=10) for values in (w, w * pred, w * label)]
    return np.stack([*sums, sums[2] if truth is None else np.bincount(decile, w * np.asarray(truth, np.float64),
                                                                      minlength=10)])


def _decile_table(count: np.ndarray, sum_pred: np.ndarray, sum_label: np.ndarray,
                  sum_truth: np.ndarray) -> dict[str, np.ndarray]:
    """The calibration table from the per-decile sums."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "decile": np.arange(10),
            "mean_pred": sum_pred / count,
            "mean_label": sum_label / count,
            "mean_truth": sum_truth / count,
            "bias": (sum_pred - sum_label) / sum_label,
        }


def per_query_auc(pred: np.ndarray, label: np.ndarray, query: np.ndarray, weight: np.ndarray | None = None) -> float:
    """PerQueryAUC (Factory Floor §4.1.1): share of (clicked, not clicked) pairs of the same query ranked right,
    ties half; pairs weigh the product of their importance weights. Queries hold few ads, so pairs are found
    among neighbours after sorting by query."""
    order = np.argsort(np.asarray(query), kind="stable")
    q, p = np.asarray(query)[order], np.asarray(pred, np.float64)[order]
    y, w = np.asarray(label)[order] > 0, _weights(weight, len(order))[order]
    largest = int(np.max(np.unique(q, return_counts=True)[1])) if q.size else 0
    right = pairs = 0.0
    for gap in range(1, largest):
        a, b = slice(None, -gap), slice(gap, None)
        pair = (q[a] == q[b]) & (y[a] != y[b])
        positive_first = np.where(y[a], p[a] - p[b], p[b] - p[a])  # score(clicked) − score(not clicked)
        pair_weight = w[a] * w[b] * pair
        right += np.sum(pair_weight * ((positive_first > 0) + 0.5 * (positive_first == 0)))
        pairs += np.sum(pair_weight)
    return float(right / pairs) if pairs else float("nan")


# The same metrics over data read a chunk at a time: a long run's examples wait on disk, and its summary must not
# join them in memory. Each takes `passes`, a function that starts a fresh pass over the rows (the same rows in the
# same order every time) and yields them a chunk at a time as tuples of columns (one chunk of no rows for no data).
# Data of at most `rows_in_memory` rows is measured whole, by the functions above, so it gives their numbers bit for
# bit; larger data is split by value, 16 bits of an order key at a time, into ranges of at most `rows_in_memory` rows
# (ties at the last digit need no rows at all), so memory is bounded and the result exact up to the order of sums.

Passes = Callable[[], Iterable[tuple[np.ndarray, ...]]]
ROWS_IN_MEMORY = 1 << 22
_DIGIT_BITS, _DIGITS, _LAST_DEPTH = 16, 1 << 16, 3
_SIGN = np.uint64(1 << 63)


def log_loss_sums(pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """(Σ w·cross-entropy, Σ w): what `log_loss` divides, to be added up over chunks."""
    p = np.clip(np.asarray(pred, np.float64), EPS, 1 - EPS)
    y = np.asarray(label, np.float64)
    w = _weights(weight, p.size)
    # w · (y log p + (1 − y) log(1 − p)), in place: the same numbers in a third of the temporary arrays (a summary
    # of a long run holds tens of millions of examples)
    terms = np.log(p)
    terms *= y
    other = np.log1p(np.negative(p, out=p), out=p)
    other *= 1 - y
    terms += other
    terms *= w
    return -float(np.sum(terms)), float(np.sum(w))


def _whole(passes: Passes, rows_in_memory: int) -> tuple[np.ndarray | None, ...] | None:
    """The data's columns joined (a column of None stays None: no weights), or None when it has more than
    `rows_in_memory` rows."""
    if rows_in_memory < 1:
        raise ValueError(f"rows_in_memory: at least 1, got {rows_in_memory}")
    chunks, rows = [], 0
    for chunk in passes():
        rows += len(chunk[0])
        if rows > rows_in_memory:
            return None
        chunks.append(chunk)
    if not chunks:
        raise ValueError("a pass over the data must yield at least one chunk (of no rows when there are none)")
    return tuple(None if column[0] is None else np.concatenate(column) for column in zip(*chunks))


def _order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys that order and tie as the values do (as float64; −0 ties +0)."""
    bits = (np.asarray(values, np.float64) + 0.0).view(np.uint64)
    return np.where(bits >= _SIGN, ~bits, bits | _SIGN)


def _key_values(keys: np.ndarray) -> np.ndarray:
    """The float64 values of order keys (`_order_keys` undone)."""
    keys = np.asarray(keys, np.uint64)
    return np.where(keys >= _SIGN, keys ^ _SIGN, ~keys).view(np.float64)


def _in_range(keys: np.ndarray, depth: int, prefix: int) -> np.ndarray:
    """Rows whose keys begin with the `depth` digits `prefix` (all rows at depth 0)."""
    if depth == 0:
        return np.ones(keys.shape, bool)
    return (keys >> np.uint64(64 - _DIGIT_BITS * depth)) == np.uint64(prefix)


def _digit(keys: np.ndarray, depth: int) -> np.ndarray:
    """The keys' digit number `depth` (0: the 16 highest bits)."""
    return ((keys >> np.uint64(64 - _DIGIT_BITS * (depth + 1))) & np.uint64(_DIGITS - 1)).astype(np.int64)


class _NotANumber(Exception):
    """A value is NaN: it has no place in an order (AUC and quantiles are NaN, as the whole arrays' are)."""


def _histogram(passes: Passes, depth: int, prefix: int) -> tuple[np.ndarray, ...]:
    """Per next digit of the rows in a range: row count and, for (score, label, weight) rows, positive and
    negative weight (`_NotANumber` for a NaN value, checked on the first pass)."""
    count = np.zeros(_DIGITS, np.int64)
    positive, negative = np.zeros(_DIGITS), np.zeros(_DIGITS)
    for chunk in passes():
        if depth == 0 and np.isnan(chunk[0]).any():
            raise _NotANumber
        keys = _order_keys(chunk[0])
        inside = _in_range(keys, depth, prefix)
        digit = _digit(keys[inside], depth)
        count += np.bincount(digit, minlength=_DIGITS)
        if len(chunk) > 1:
            label, weight = np.asarray(chunk[1])[inside].astype(bool), _weights(chunk[2], len(keys))[inside]
            positive += np.bincount(digit, np.where(label, weight, 0.0), minlength=_DIGITS)
            negative += np.bincount(digit, np.where(label, 0.0, weight), minlength=_DIGITS)
    return count, positive, negative


def _gather(passes: Passes, depth: int, prefix: int, digits: list[int]) -> tuple[np.ndarray, ...]:
    """The rows of a range whose next digit is one of `digits`: their keys (and labels and weights), sorted by key."""
    wanted = np.zeros(_DIGITS, bool)
    wanted[digits] = True
    parts = []
    for chunk in passes():
        keys = _order_keys(chunk[0])
        inside = np.flatnonzero(_in_range(keys, depth, prefix))
        inside = inside[wanted[_digit(keys[inside], depth)]]
        rest = (np.asarray(chunk[1])[inside].astype(bool), _weights(chunk[2], len(keys))[inside]) if len(chunk) > 1 else ()
        parts.append((keys[inside], *rest))
    columns = tuple(np.concatenate(column) for column in zip(*parts))
    order = np.argsort(columns[0], kind="stable")
    return tuple(column[order] for column in columns)


def _groups(count: np.ndarray, digits: np.ndarray, rows_in_memory: int) -> list[list[int]]:
    """`digits` (in order) in runs of at most `rows_in_memory` rows; a digit with more rows alone."""
    groups, rows = [], rows_in_memory + 1
    for digit in digits:
        if count[digit] > rows_in_memory or rows + count[digit] > rows_in_memory:
            groups.append([])
            rows = 0
        groups[-1].append(int(digit))
        rows += count[digit]
    return groups


def _auc_pairs(passes: Passes, rows_in_memory: int, depth: int = 0, prefix: int = 0) -> float:
    """Σ over (positive, negative) pairs in a key range of w⁺·w⁻·(1 if the positive scores higher, ½ if tied)."""
    count, positive, negative = _histogram(passes, depth, prefix)
    pairs = float(np.sum(positive * (np.cumsum(negative) - negative)))  # pairs across the next digit
    for group in _groups(count, np.flatnonzero(count), rows_in_memory):
        digit = group[0]
        if count[digit] > rows_in_memory:  # one digit, too many rows: split it by its next digit
            if depth == _LAST_DEPTH:  # a single value: every pair ties
                pairs += 0.5 * positive[digit] * negative[digit]
            else:
                pairs += _auc_pairs(passes, rows_in_memory, depth + 1, (prefix << _DIGIT_BITS) | digit)
            continue
        keys, label, weight = _gather(passes, depth, prefix, group)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1])  # runs of tied scores
        negative_in_run = np.add.reduceat(np.where(label, 0.0, weight), starts)
        positive_in_run = np.add.reduceat(np.where(label, weight, 0.0), starts)
        below = np.cumsum(negative_in_run) - negative_in_run
        run_digit = _digit(keys[starts], depth)
        below -= below[np.searchsorted(run_digit, run_digit)]  # within a digit only: across them is counted above
        pairs += float(np.sum(positive_in_run * (below + 0.5 * negative_in_run)))
    return pairs


def auc_in_parts(passes: Passes, rows_in_memory: int = ROWS_IN_MEMORY) -> float:
    """`auc` of (score, label, weight) chunks, in at most `rows_in_memory` rows at a time."""
    whole = _whole(passes, rows_in_memory)
    if whole is not None:
        return auc(*whole)
    try:
        _, positive, negative = _histogram(passes, 0, 0)
    except _NotANumber:
        return float("nan")
    positives, negatives = float(positive.sum()), float(negative.sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    return float(_auc_pairs(passes, rows_in_memory) / (positives * negatives))


def _ranked_keys(passes: Passes, ranks: np.ndarray, rows_in_memory: int, depth: int = 0, prefix: int = 0
                 ) -> np.ndarray:
    """The order keys at 0-based `ranks` (sorted) within a key range of (values,) chunks."""
    count = _histogram(passes, depth, prefix)[0]
    below = np.cumsum(count) - count
    digit_of_rank = np.searchsorted(np.cumsum(count), ranks, side="right")
    found = np.zeros(len(ranks), np.uint64)
    for group in _groups(count, np.unique(digit_of_rank), rows_in_memory):
        mine = np.isin(digit_of_rank, group)
        if count[group[0]] > rows_in_memory:
            digit = group[0]
            if depth == _LAST_DEPTH:
                found[mine] = np.uint64((prefix << _DIGIT_BITS) | digit)
            else:
                found[mine] = _ranked_keys(passes, ranks[mine] - below[digit], rows_in_memory, depth + 1,
                                           (prefix << _DIGIT_BITS) | digit)
            continue
        keys = _gather(passes, depth, prefix, group)[0]
        gathered_below = np.cumsum(np.where(np.isin(np.arange(_DIGITS), group), count, 0)) - count
        digit = digit_of_rank[mine]
        found[mine] = keys[ranks[mine] - below[digit] + gathered_below[digit]]
    return found


def quantiles_in_parts(passes: Passes, quantiles: np.ndarray, rows_in_memory: int = ROWS_IN_MEMORY) -> np.ndarray:
    """`np.quantile` (linear) of (values,) chunks, taken as float64, in at most `rows_in_memory` rows at a time:
    float[len(quantiles)], all NaN where a value is NaN."""
    quantiles = np.atleast_1d(np.asarray(quantiles, np.float64))
    whole = _whole(passes, rows_in_memory)
    if whole is not None:
        return np.quantile(np.asarray(whole[0], np.float64), quantiles)
    try:
        rows = int(_histogram(passes, 0, 0)[0].sum())
    except _NotANumber:
        return np.full(quantiles.shape, np.nan)
    # numpy's linear method: the virtual index (n − 1)·q, its neighbours in the data, then numpy's lerp
    virtual = (rows - 1) * quantiles
    previous = np.clip(np.floor(virtual), 0, rows - 1).astype(np.int64)
    following = np.clip(previous + 1, 0, rows - 1)
    following[virtual >= rows - 1] = rows - 1
    gamma = virtual - np.floor(virtual)
    ranks = np.unique(np.concatenate([previous, following]))
    values = _key_values(_ranked_keys(passes, ranks, rows_in_memory))
    low, high = values[np.searchsorted(ranks, previous)], values[np.searchsorted(ranks, following)]
    difference = high - low
    return np.where(gamma >= 0.5, high - difference * (1 - gamma), low + difference * gamma)


def calibration_by_decile_in_parts(passes: Passes, rows_in_memory: int = ROWS_IN_MEMORY) -> dict[str, np.ndarray]:
    """`calibration_by_decile` of (pred, label, weight) chunks, in at most `rows_in_memory` rows at a time."""
    whole = _whole(passes, rows_in_memory)
    if whole is not None:
        return calibration_by_decile(whole[0], whole[1], weight=whole[2])
    edges = quantiles_in_parts(lambda: ((np.asarray(c[0], np.float64),) for c in passes()),
                               np.linspace(0, 1, 11)[1:-1], rows_in_memory)
    return _decile_table(*sum(_decile_sums(edges, pred, label, weight) for pred, label, weight in passes()))
