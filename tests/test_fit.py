"""Tests for shared.fit: exponents and rates recovered from synthetic curves with known answers."""

import numpy as np
import pytest

from shared import fit


def test_power_law_recovers_exponent_exactly_without_noise():
    m = np.array([64, 128, 256, 512, 1024], dtype=float)
    p, se = fit.power_law(m, 3.0 * m**-0.5)
    np.testing.assert_allclose(p, -0.5, rtol=1e-12)
    assert se < 1e-12


def test_power_law_standard_error_covers_the_truth(rng):
    """Log-normal noise of sd 0.1: the fitted exponent lies within a few standard errors,
    and the standard error matches the spread of the exponent over repeated draws."""
    m = np.geomspace(50, 5000, 8)
    fits = np.array(
        [fit.power_law(m, m**-0.5 * np.exp(0.1 * rng.standard_normal(8))) for _ in range(400)]
    )
    p, se = fits[:, 0], fits[:, 1]
    assert np.mean(np.abs(p + 0.5) < 3 * se) > 0.95  # t-distribution, 6 dof: ~97.6% within 3 se
    np.testing.assert_allclose(np.std(p), np.sqrt(np.mean(se**2)), rtol=0.15)


def test_log_rate_recovers_rate_and_ignores_the_floor(rng):
    k = np.arange(600)
    rate = -0.15
    L = 2.0 * np.exp(rate * k)  # meets the floor below near k = 430
    floor = 1e-28 * (1 + rng.uniform(0, 5, k.size))  # float64 rounding floor, noisy and flat
    L = np.maximum(L, floor) * (1 + 1e-6 * rng.standard_normal(k.size))
    np.testing.assert_allclose(fit.log_rate(L), rate, rtol=1e-4)
    # the same curve fitted into the floor would bend the slope
    all_points = np.polyfit(k, np.log(L), 1)[0]
    assert abs(all_points - rate) > 0.01


def test_log_rate_float32_floor_differs_and_matters(rng):
    assert fit.floor_ratio(np.float32) > 1e3 * fit.floor_ratio(np.float64)
    np.testing.assert_allclose(fit.floor_ratio(np.float64), 1e-14)
    np.testing.assert_allclose(fit.floor_ratio(np.float32), (1e3 * np.finfo(np.float32).eps) ** 2)
    k = np.arange(500)
    rate = -0.1
    # a float32 run, in the floor from k ~ 300 on: the ratio bottoms out near 1e-13, noisy
    L = np.maximum(np.exp(rate * k), 1e-13 * (1 + rng.uniform(0, 3, k.size)))
    np.testing.assert_allclose(fit.log_rate(L, dtype=np.float32), rate, rtol=1e-6)
    # with the float64 window (down to 1e-14) the fit reaches into the float32 floor
    assert abs(fit.log_rate(L, dtype=np.float64) - rate) > 0.005


def test_log_rate_uses_late_half_when_loss_never_reaches_hi():
    k = np.arange(50)
    L = np.exp(-0.01 * k)  # ends at 0.6 > hi = 1e-3
    np.testing.assert_allclose(fit.log_rate(L), -0.01, rtol=1e-10)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit.power_law([1.0, 2.0], [1.0, 2.0]), "x: expected at least 3 points"),
        (lambda: fit.power_law([1.0, 2.0, 3.0], [1.0, -2.0, 3.0]), "expected positive values"),
        (lambda: fit.power_law([1.0, 2.0, 3.0], [1.0, 2.0]), r"y: expected shape \(3,\)"),
        (lambda: fit.log_rate([1.0, 0.0, 0.5]), "losses: expected positive values"),
        (lambda: fit.log_rate([1.0, np.nan, 0.5]), "losses: expected finite values"),
        (lambda: fit.log_rate([1.0, 1e-20, 1e-21]), "losses: only"),
        (
            lambda: fit.power_law([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]),
            "x: expected at least 2 distinct",
        ),
        (lambda: fit.power_law(np.ones(3, dtype=bool), [1.0, 2.0, 3.0]), "x: expected a real"),
        (lambda: fit.log_rate([]), "losses: expected a non-empty array"),
        (lambda: fit.log_rate(np.ones((3, 3))), "losses: expected a 1-D array"),
        (lambda: fit.log_rate(np.exp(-np.arange(9.0)), hi=np.nan), "hi: expected a finite"),
        (lambda: fit.log_rate(np.exp(-np.arange(9.0)), lo=-1.0), "lo: expected >= 0"),
        (lambda: fit.log_rate(np.exp(-np.arange(9.0)), lo=0.5, hi=0.1), "lo: expected below hi"),
        (lambda: fit.log_rate(np.exp(-np.arange(9.0)), dtype=int), "dtype: expected np"),
        (lambda: fit.floor_ratio(np.float16), "dtype: expected np"),
        (lambda: fit.floor_ratio("x"), "dtype: expected np"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_log_rate_ignores_ratios_past_the_float_range():
    """``L(k) / L(0)`` overflows for a loss that climbs from 1e-300 to 1e300: such points lie
    above any window, without a warning (pytest turns one into an error)."""
    L = np.concatenate([[1e-300], np.full(5, 1e300), np.exp(-np.arange(20.0))])
    np.testing.assert_allclose(fit.log_rate(L, hi=1e301, lo=1e200), -1.0, rtol=1e-12)
