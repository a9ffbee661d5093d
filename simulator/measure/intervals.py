"""95 % t-intervals over seeds (n − 1 degrees of freedom), for tables and figure bands."""

from __future__ import annotations

import numpy as np
from scipy import stats


def interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (nan half-width for one value)."""
    values = np.asarray(values, np.float64)
    if values.size < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))


def interval_half_widths(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Half-widths of the 95 % t-intervals (n − 1 degrees of freedom) of the means along `axis`, nans left out;
    nan where fewer than two values remain. For bands and error bars."""
    values = np.asarray(values, np.float64)
    count = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(np.nansum((values - np.nanmean(values, axis=axis, keepdims=True)) ** 2, axis=axis)
                         / (count - 1))
        return np.where(count > 1, stats.t.ppf(0.975, np.maximum(count - 1, 1)) * spread / np.sqrt(count), np.nan)
