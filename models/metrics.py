"""Metrics over predictions and labels: log loss, AUC, calibration by decile (numpy, exact, no sampling)."""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def log_loss(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities `pred` against 0/1 `label`."""
    p = np.clip(np.asarray(pred, np.float64), EPS, 1 - EPS)
    y = np.asarray(label, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if p.size else float("nan")


def entropy_of_mean(label: np.ndarray) -> float:
    """Log loss of always predicting the mean label: the denominator of normalized entropy."""
    y = np.asarray(label, np.float64)
    return log_loss(np.full(y.shape, y.mean()), y) if y.size else float("nan")


def auc(pred: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC with ties given half credit (Mann–Whitney U via average ranks)."""
    pred = np.asarray(pred, np.float64)
    label = np.asarray(label).astype(bool)
    positives, negatives = int(label.sum()), int((~label).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(pred, kind="mergesort")
    sorted_pred = pred[order]
    ranks = np.empty(pred.size, np.float64)
    # average rank within each run of equal predictions
    boundaries = np.flatnonzero(np.diff(sorted_pred)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [pred.size]])
    run_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(run_rank, ends - starts)
    return float((ranks[label].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def calibration_by_decile(pred: np.ndarray, label: np.ndarray, truth: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per pCTR decile: mean pred, mean label, mean true CTR, and bias (Σ pred − Σ label) / Σ label."""
    pred = np.asarray(pred, np.float64)
    label = np.asarray(label, np.float64)
    if pred.size == 0:
        empty = np.zeros(0)
        return {"decile": empty, "mean_pred": empty, "mean_label": empty, "mean_truth": empty, "bias": empty}
    edges = np.quantile(pred, np.linspace(0, 1, 11)[1:-1])
    decile = np.searchsorted(edges, pred, side="right")
    count = np.bincount(decile, minlength=10).astype(np.float64)
    sum_pred = np.bincount(decile, pred, minlength=10)
    sum_label = np.bincount(decile, label, minlength=10)
    sum_truth = np.bincount(decile, np.asarray(truth, np.float64), minlength=10) if truth is not None else sum_label
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "decile": np.arange(10),
            "mean_pred": sum_pred / count,
            "mean_label": sum_label / count,
            "mean_truth": sum_truth / count,
            "bias": (sum_pred - sum_label) / sum_label,
        }
