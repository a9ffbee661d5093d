"""The run's metrics against their definitions, computed the slow way on small data (ties, weights, both float
widths): the fast, memory-lean versions must give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import EPS, auc, entropy_of_mean, log_loss


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
