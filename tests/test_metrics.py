"""The run's metrics against their definitions, computed the slow way on small data (ties, weights, both float
widths): the fast, memory-lean versions must give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from models import metrics
from models.metrics import (EPS, auc, auc_in_parts, calibration_by_decile, calibration_by_decile_in_parts,
                            entropy_of_mean, log_loss, quantiles_in_parts)


def _cases():
    rng = np.random.default_rng(3)
    for ties in (False, True):
        for dtype in (np.float32, np.float64):
            pred = rng.random(300)
            if ties:
                pred = np.round(pred * 8) / 8  # 0 and 1 exactly among them (log loss clips them)
            label = (rng.random(300) < 0.3).astype(np.float32)
            yield pred.astype(dtype), label, rng.uniform(0.5, 3.0, 300).astype(np.float32)


@pytest.mark.parametrize("case", list(_cases()), ids=["float32", "float64", "float32-ties", "float64-ties"])
def test_auc_and_log_loss_match_their_definitions(case):
    pred, label, weight = case
    p, y, w = pred.astype(np.float64), label.astype(bool), weight.astype(np.float64)
    # AUC: weighted P(a positive scores above a negative), a tie counting a half, over every pair
    above = (p[y][:, None] > p[~y][None, :]) + 0.5 * (p[y][:, None] == p[~y][None, :])
    pairs = w[y][:, None] * w[~y][None, :]
    assert auc(pred, label, weight) == pytest.approx(np.sum(above * pairs) / np.sum(pairs), rel=1e-12)
    assert auc(pred, label) == pytest.approx(np.mean(above), rel=1e-12)
    clipped = np.clip(p, EPS, 1 - EPS)
    naive = [-(np.log(q) if positive else np.log(1 - q)) for q, positive in zip(clipped, y)]
    assert log_loss(pred, label, weight) == pytest.approx(np.sum(w * naive) / np.sum(w), rel=1e-9)
    mean = np.sum(w * y) / np.sum(w)
    assert entropy_of_mean(label, weight) == pytest.approx(-(mean * np.log(mean) + (1 - mean) * np.log(1 - mean)),
                                                         rel=1e-9)
    kept = pred.copy()
    log_loss(pred, label, weight), auc(pred, label, weight)
    assert np.array_equal(kept, pred)  # the caller's arrays are left as they were


def _passes(columns: tuple[np.ndarray, ...], chunk: int):
    """A fresh pass over `columns`, `chunk` rows at a time (one chunk of no rows when there are none)."""
    return lambda: (tuple(c[i:i + chunk] for c in columns) for i in range(0, max(len(columns[0]), 1), chunk))


def _scores(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "spread":
        return rng.random(n).astype(np.float32)
    if kind == "few values":  # ties that split a range down to its last digit
        return rng.integers(0, 5, n) / 7.0
    if kind == "one value":
        return np.full(n, 0.3)
    scores = np.where(rng.random(n) < 0.5, rng.random(n), -1e-3 * rng.random(n))  # signs, +0 and −0 tie
    scores[:4], scores[4:8] = -0.0, 0.0
    return scores


@pytest.fixture
def gathered(monkeypatch):
    """What the split metrics did: "histogram" for each pass that splits a range, and the row count of each range
    gathered into memory."""
    done, gather, histogram = [], metrics._gather, metrics._histogram

    def counted_gather(*args):
        rows = gather(*args)
        done.append(len(rows[0]))
        return rows

    def counted_histogram(*args):
        done.append("histogram")
        return histogram(*args)
    monkeypatch.setattr(metrics, "_gather", counted_gather)
    monkeypatch.setattr(metrics, "_histogram", counted_histogram)
    return done


@pytest.mark.parametrize("kind", ["spread", "few values", "one value", "signed"])
def test_metrics_in_parts_give_the_whole_arrays_numbers(kind, gathered):
    """Split into value ranges of at most a few rows (never more in memory), AUC and calibration equal the whole
    arrays' (to the order of float sums), quantiles exactly; data that fits is measured whole, bit for bit."""
    rng = np.random.default_rng(len(kind))
    for case in range(8):
        n = int(rng.integers(20, 2000))
        score = _scores(kind, n, rng)
        label, weight = rng.random(n) < 0.3, (None if case % 3 == 0 else rng.uniform(0.5, 2.0, n))
        rows_in_memory, chunk = int(rng.integers(1, 40)), int(rng.integers(1, 600))
        passes = _passes((score, label, weight), chunk) if weight is not None else \
            (lambda c=chunk: ((s, y, None) for s, y in _passes((score, label), c)()))
        gathered.clear()
        expected, got = auc(score, label, weight), auc_in_parts(passes, rows_in_memory)
        assert got == pytest.approx(expected, rel=1e-12, nan_ok=True)
        assert "histogram" in gathered  # the split path ran, a range of at most rows_in_memory rows at a time
        assert all(rows <= rows_in_memory for rows in gathered if rows != "histogram")
        assert auc_in_parts(passes, n) == expected or np.isnan(expected)
        deciles = np.linspace(0, 1, 11)[1:-1]
        values = _passes((score,), chunk)
        assert np.array_equal(quantiles_in_parts(values, deciles, rows_in_memory), np.quantile(score, deciles))
        whole, parts = calibration_by_decile(score, label, weight=weight), calibration_by_decile_in_parts(passes, 7)
        for name in whole:
            np.testing.assert_allclose(parts[name], whole[name], rtol=1e-12, equal_nan=True)
        assert quantiles_in_parts(values, [0.0, 1.0], rows_in_memory).tolist() == [score.min(), score.max()]
    # no data: NaN, as the whole-array AUC gives
    assert np.isnan(auc_in_parts(_passes((np.zeros(0), np.zeros(0, bool), np.zeros(0)), 5), 3))


def test_metrics_in_parts_at_their_edges():
    """A NaN score (a diverged model's) makes AUC and quantiles NaN either way; infinities tie; float32 values are
    taken as float64; a scalar quantile; no window of no rows."""
    label, weight = np.array([True, False, True, False]), np.ones(4)
    with np.errstate(invalid="ignore"):
        nans = (np.nan, -np.nan, np.float32(0) * np.float32(np.inf))  # x86's default NaN has the sign bit
    for nan in nans:
        score = np.array([0.1, nan, 0.2, 0.3])
        for rows_in_memory in (1, 2, 4):
            assert np.isnan(auc_in_parts(_passes((score, label, weight), 3), rows_in_memory))
            assert np.isnan(quantiles_in_parts(_passes((score,), 3), [0.5], rows_in_memory)).all()
    infinite = np.array([np.inf, np.inf, -np.inf, -np.inf])
    assert auc(infinite, label) == auc_in_parts(_passes((infinite, label, weight), 1), 1) == 0.5
    wide = np.array([1e-8, 0.7, 1.0], np.float32)
    for rows_in_memory in (1, 3):
        assert quantiles_in_parts(_passes((wide,), 2), 0.25, rows_in_memory).tolist() == \
            [np.quantile(wide.astype(np.float64), 0.25)]
    with pytest.raises(ValueError, match="rows_in_memory"):
        auc_in_parts(_passes((wide, label[:3], None), 2), 0)
