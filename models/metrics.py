"""Metrics over predictions and labels: log loss, AUC, calibration by decile (numpy, exact, no sampling).

Every metric takes optional importance weights: an example kept with probability r by data sampling
weighs 1/r, so weighted metrics estimate what the full, unsampled data would give.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def _weights(weight: np.ndarray | None, size: int) -> np.ndarray:
    return np.ones(size) if weight is None else np.asarray(weight, np.float64)


def log_loss(pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """(Weighted) mean binary cross-entropy of probabilities `pred` against 0/1 `label`."""
    p = np.clip(np.asarray(pred, np.float64), EPS, 1 - EPS)
    y = np.asarray(label, np.float64)
    if not p.size:
        return float("nan")
    w = _weights(weight, p.size)
    # w · (y log p + (1 − y) log(1 − p)), in place: the same numbers in a third of the temporary arrays (a summary
    # of a long run holds tens of millions of examples)
    terms = np.log(p)
    terms *= y
    other = np.log1p(np.negative(p, out=p), out=p)
    other *= 1 - y
    terms += other
    terms *= w
    return float(-np.sum(terms) / np.sum(w))


def entropy_of_mean(label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Log loss of always predicting the mean label: the denominator of normalized entropy."""
    y = np.asarray(label, np.float64)
    if not y.size:
        return float("nan")
    w = _weights(weight, y.size)
    return log_loss(np.full(y.shape, np.sum(w * y) / np.sum(w)), y, w)


def auc(pred: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> float:
    """(Weighted) ROC AUC with ties given half credit: P(score of a positive > score of a negative)."""
    pred = np.asarray(pred)
    if pred.dtype != np.float32:  # float32 sorts and ties as its exact float64 copy would, in half the memory
        pred = pred.astype(np.float64, copy=False)
    label = np.asarray(label).astype(bool)
    w = _weights(weight, pred.size)
    positives, negatives = float(w[label].sum()), float(w[~label].sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(pred, kind="mergesort")
    # per run of equal predictions: negative weight strictly below, and tied within
    starts = np.concatenate([[0], np.flatnonzero(np.diff(pred[order])) + 1])
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
    label = np.asarray(label, np.float64)
    if pred.size == 0:
        empty = np.zeros(0)
        return {"decile": empty, "mean_pred": empty, "mean_label": empty, "mean_truth": empty, "bias": empty}
    w = _weights(weight, pred.size)
    edges = np.quantile(pred, np.linspace(0, 1, 11)[1:-1])
    decile = np.searchsorted(edges, pred, side="right")
    count = np.bincount(decile, w, minlength=10)
    sum_pred = np.bincount(decile, w * pred, minlength=10)
    sum_label = np.bincount(decile, w * label, minlength=10)
    sum_truth = np.bincount(decile, w * np.asarray(truth, np.float64), minlength=10) if truth is not None else sum_label
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
