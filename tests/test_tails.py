"""The false-failure-rate estimate on samples whose tails are known exactly.

Each case draws many samples of N = 200 (the calibration's size) from a
distribution with a known tail probability beyond the bound, and checks the
estimate against the truth with the factors that ``sandbox/tails.py`` states.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sandbox.tails import (
    TARGET,
    binomial_upper,
    false_failure_rate,
    robust_sd,
    seeds_for,
)

N = 200


def ratios(rng, draw, lower, upper, truth, reps):
    """log10(estimate / truth) over ``reps`` samples of size N."""
    out = []
    for _ in range(reps):
        x = draw(rng)
        n_fail = int(np.sum(x < lower) if lower is not None else 0) + int(
            np.sum(x > upper) if upper is not None else 0
        )
        rate, _ = false_failure_rate(x, lower, upper, n_fail=n_fail)
        out.append(np.log10(max(rate, 1e-300) / truth))
    return np.array(out)


def test_what_1e_4_asks_of_a_gaussian_quantity(rng):
    """4.5 robust SDs between median and bound (true rate 3e-6) do not show < 1e-4 from 200
    seeds in most samples; 7 SDs (true rate 1e-12) do."""
    near = [false_failure_rate(rng.standard_normal(N), None, 4.5, n_fail=0)[0] for _ in range(20)]
    far = [false_failure_rate(rng.standard_normal(N), None, 7.0, n_fail=0)[0] for _ in range(20)]
    assert np.median(near) > TARGET > np.median(far)


def test_normal_tail_is_conservative_within_100x(rng):
    """A Gaussian quantity with its bound at the 1e-4 quantile: the estimate is never below half
    the truth, and within 1x..100x in at least 90% of samples (the exponential floor
    over-states a Gaussian tail)."""
    upper = stats.norm.isf(TARGET)
    lr = ratios(rng, lambda r: r.normal(3.0, 0.5, N), None, 3.0 + 0.5 * upper, TARGET, reps=30)
    assert lr.min() > np.log10(0.5)
    assert np.mean((lr >= 0) & (lr <= 2)) >= 0.9
    assert 0.5 < np.median(lr) < 1.7  # 3x to 50x in the median


def test_two_sided_bounds_add_their_tails(rng):
    lo, hi = stats.norm.ppf(TARGET / 2), stats.norm.isf(TARGET / 2)
    lr = ratios(rng, lambda r: r.standard_normal(N), lo, hi, TARGET, reps=20)
    assert lr.min() > np.log10(0.5) and np.median(lr) < 2


def test_heavy_student_t_tail_is_not_underestimated_in_the_median(rng):
    """Student t, 3 degrees of freedom (GPD shape 1/3): the median estimate is at or above the
    truth, where a normal fit alone would be low by orders of magnitude."""
    upper = stats.t.isf(TARGET, 3)
    lr = ratios(rng, lambda r: r.standard_t(3, N), None, upper, TARGET, reps=30)
    assert np.median(lr) >= 0
    assert np.mean(lr >= 0) >= 0.6
    assert np.mean(lr < -1) <= 0.3  # more than 10x low: about one sample in four or five
    x = rng.standard_t(3, N)  # what the normal tail alone would say
    s = robust_sd(x)
    assert stats.norm.sf((upper - np.median(x)) / s) < TARGET / 100


def test_bounded_uniform_tail_is_conservative(rng):
    lr = ratios(rng, lambda r: r.uniform(0, 1, N), None, 0.999, 1e-3, reps=20)
    assert lr.min() >= 0 and lr.max() <= np.log10(200)


def test_a_constant_that_passes_cannot_fail():
    rate, method = false_failure_rate([0.5] * N, 0.0, 1.0, n_fail=0)
    assert (rate, method) == (0.0, "identical on every seed")


def test_a_constant_up_to_rounding_cannot_fail_either(rng):
    """A seed-independent number whose last bits vary (13 distinct values of 0.0832...) is not a
    count: rate 0. A spread above 1e-9 relative, or a bound within a million spreads, is not."""
    x = 0.0831853 * (1 + rng.integers(-6, 7, N) * np.finfo(float).eps)
    rate, method = false_failure_rate(x, None, 1.0, n_fail=0)
    assert (rate, method) == (
        0.0,
        "identical on every seed up to rounding (relative spread <= 1e-09)",
    )
    # a real spread, however narrow against the bound, goes to the tail methods
    rate, method = false_failure_rate(
        0.0831853 * (1 + 1e-6 * rng.standard_normal(N)), None, 1.0, n_fail=0
    )
    assert "up to rounding" not in method
    # a bound one rounding step away is not 'far': the binomial bound stays
    y = 1.0 + rng.integers(0, 3, N) * np.finfo(float).eps
    rate, method = false_failure_rate(y, None, y.max() + 1e-12, n_fail=0)
    assert "up to rounding" not in method and rate > TARGET


def test_an_integer_constant_is_a_discrete_outcome():
    """converged_fraction = 1 on every seed: 0 of 200 failed bounds the rate at 1.5%, no lower."""
    rate, method = false_failure_rate([1.0] * N, 1.0, None, n_fail=0)
    assert rate == pytest.approx(1 - 0.05 ** (1 / N), rel=1e-9)
    assert method.startswith("binomial 95% upper bound") and "0 of 200" in method
    assert f"needs {seeds_for():,} seeds" in method


def test_boolean_gets_a_binomial_bound_that_covers_the_truth(rng):
    """Bernoulli failures at p = 1%: the 95% upper bound is at or above p in >= 90% of samples."""
    p = 0.01
    covered = []
    for _ in range(100):
        ok = rng.random(N) >= p
        rate, method = false_failure_rate(list(map(bool, ok)), None, None, n_fail=int(N - ok.sum()))
        covered.append(rate >= p)
        assert method.startswith("binomial")
    assert np.mean(covered) >= 0.9
    rate, method = false_failure_rate([True] * N, None, None, n_fail=0)
    assert rate == pytest.approx(0.01487, rel=1e-3) and rate > TARGET
    assert "29,956 seeds" in method  # why 200 seeds cannot show 1e-4 for a boolean


def test_binomial_upper_bound_and_seeds_needed():
    assert binomial_upper(0, 200) == pytest.approx(1 - 0.05 ** (1 / 200), rel=1e-9)
    assert binomial_upper(200, 200) == 1.0
    assert binomial_upper(3, 200) > binomial_upper(2, 200) > 2 / 200
    assert seeds_for(1e-4) == 29956
    assert binomial_upper(0, seeds_for(1e-4)) < 1e-4 <= binomial_upper(0, seeds_for(1e-4) - 1)


def test_a_few_distinct_values_are_discrete(rng):
    x = rng.integers(0, 3, N).astype(float)  # {0, 1, 2}: a count, not a continuum
    rate, method = false_failure_rate(x, None, 2.0, n_fail=0)
    assert method.startswith("binomial") and "3 distinct values" in method
    assert rate == binomial_upper(0, N)


def test_never_below_the_observed_failures(rng):
    x = rng.standard_normal(N)
    x[:10] = np.nan  # NaN fails every check
    rate, method = false_failure_rate(x, -10.0, 10.0, n_fail=10)
    assert rate >= 10 / N and "observed 10 of 200" in method


def test_few_seeds_use_the_normal_tail_only_and_say_so(rng):
    x = rng.standard_normal(30)
    rate, method = false_failure_rate(x, None, 4.0, n_fail=0)
    assert "normal tail from median and 1.4826 MAD only" in method
    assert rate == pytest.approx(stats.norm.sf((4.0 - np.median(x)) / robust_sd(x)), rel=1e-12)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="values: expected at least one seed"):
        false_failure_rate([], 0.0, None, n_fail=0)
    with pytest.raises(ValueError, match=r"n_fail: expected an integer in \[0, 2\]"):
        false_failure_rate([1.0, 2.0], 0.0, None, n_fail=3)
