"""mvsim.stats.fit_line on exact data: the slope, its Student-t interval, the filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mvsim.stats import fit_line


def test_fit_line_exact_power_law():
    """t = 5 x^-1 on log-log axes: slope -1 with a zero-width interval, intercept log 5, r2 1."""
    x = np.array([0.01, 0.02, 0.04, 0.08])
    fit = fit_line(np.log(x), np.log(5.0 * x**-1.0))
    assert fit["slope"] == pytest.approx(-1.0) and fit["n"] == 4
    assert fit["intercept"] == pytest.approx(math.log(5.0))
    assert fit["lo"] == pytest.approx(-1.0) and fit["hi"] == pytest.approx(-1.0)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_line_interval_and_filtering():
    """Non-finite pairs are dropped; the interval is the t quantile (2 df) times the slope's se."""
    x = np.array([0.0, 1.0, 2.0, 3.0, np.nan, 5.0])
    y = np.array([0.0, 1.0, 2.0, 4.0, 1.0, np.inf])
    fit = fit_line(x, y)
    assert fit["n"] == 4
    lx, ly = np.arange(4.0), np.array([0, 1, 2, 4.0])
    b = np.polyfit(lx, ly, 1)[0]
    assert fit["slope"] == pytest.approx(b)
    res = ly - np.polyval(np.polyfit(lx, ly, 1), lx)
    se = math.sqrt((res**2).sum() / 2 / ((lx - lx.mean()) ** 2).sum())
    half = 4.302652729911275 * se  # t quantile 0.975, 2 df
    assert fit["lo"] == pytest.approx(b - half) and fit["hi"] == pytest.approx(b + half)
    assert math.isnan(fit_line([1, 2], [1, 2])["slope"])
    assert math.isnan(fit_line([1, 1, 1], [1, 2, 3])["slope"])  # constant x
