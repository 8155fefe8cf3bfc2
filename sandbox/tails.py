"""How often would a check fail on a fresh seed? Estimated from its values over many seeds.

A quick-mode quantity is a random variable of the seed, and a check is a claim
about its whole distribution, tails included. Given the values of one quantity
over ``N`` seeds (typically ``N = 200``), :func:`false_failure_rate` estimates
the probability that one more seed fails the check, and names the method:

**Continuous quantities** (a non-zero MAD, and at least 20 distinct values or
no value repeated). For each bounded side, the larger of two tail estimates of
the probability beyond the bound:

- a *normal tail* ``Phi(-|b - median| / s)`` with the robust spread
  ``s = 1.4826 MAD``, right for a Gaussian quantity and the floor for any other;
- a *generalized Pareto tail* (peaks over threshold: Pickands 1975; Davison and
  Smith 1990; Coles 2001, ch. 4): the ``k = max(10, ceil(N / 10))`` values
  nearest the bound are the exceedances ``e_i = y_(i) - u`` over the next
  value ``u``; a GPD (``scipy.stats.genpareto``) is fitted to them by maximum
  likelihood, and the tail is ``(k / N) * P_GPD(E > b - u)``. With ``k = 20``
  the fitted shape ``xi`` is uncertain by about ``SE = (1 + xi) / sqrt(k) =
  0.22``, so the estimate takes the upper end of its 95% interval,
  ``xi + 2 SE``, and never less than 0 (at least an exponential tail), with the
  scale refitted at that shape. A short sample of a bounded or light tail then
  cannot promise a tail that ends just past the largest value seen, and a
  heavy tail is not taken for a light one as easily.

The sides are summed, and the result is never below the observed fraction of
failing seeds (NaN and infinite values fail every check). What this gives, on
samples of ``N = 200`` with known tails (``tests/test_tails.py``):

- normal: conservative; between 1x and 100x the true rate near ``1e-4`` in 90%
  of samples, about 10-20x in the median. The price of guarding against heavy
  tails: a Gaussian quantity shows ``< 1e-4`` in half of its 200-seed samples
  from about 5 robust SDs between its median and the bound (true rate ``3e-7``),
  in three of four from 7, where a normal fit would need 3.7. 200 seeds cannot
  always tell a Gaussian tail from a heavier one; more seeds can (``k`` grows
  with ``N`` and the shape's SE shrinks), and so can a sharper measurement.
- Student t with 3 degrees of freedom (a heavy tail, ``xi = 1/3``): the median
  estimate is above the truth (about 10x); a normal fit alone would be low by
  orders of magnitude. About one sample in four or five still comes out more
  than 10x low: 200 draws carry little information about a heavy tail three
  decades beyond them, which is what the weekly run on fresh seeds is for.
- uniform (a bounded tail): conservative, the normal floor dominates (up to
  200x the truth at ``1e-3``).
- a constant that passes: 0.

**Discrete quantities** (booleans, repeated values with fewer than 20 distinct
ones, or a MAD of 0): the one-sided 95% Clopper-Pearson upper bound on the
failure probability from ``n_fail`` of ``N``. With no failure that is about
``3 / N``: ``0.015`` for 200 seeds, and ``< 1e-4`` only from about 30000
seeds. A discrete claim that must reach ``1e-4`` is made continuous (check the
margin behind it, e.g. the loss ratio rather than "converged") or counted over
thousands of seeds.

**Identical on every seed** and not integer-valued (a deterministic number):
0. The same when the values differ only in their last bits (a relative spread
of at most ``1e-9``, with every bound more than a million spreads away): a
seed-independent number whose rounding depends on summation order, not a
count. An integer-valued constant (``converged_fraction = 1`` on every seed) is
a discrete outcome and gets the binomial bound.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

#: The policy's target for a quick-mode check: below 1e-4 false failures per fresh seed.
TARGET = 1e-4
#: Continuous-quantity methods need this many distinct finite values.
MIN_DISTINCT = 20
#: A quantity whose values over the seeds differ by at most this, relative to their size, is a
#: deterministic number whose last bits depend on summation order: a seed does not move it.
ROUNDING = 1e-9
#: A GPD fit needs this many finite values (k = 10 exceedances at least).
MIN_TAIL_FIT = 50
CONFIDENCE = 0.95


def robust_sd(x: np.ndarray) -> float:
    """``1.4826 * median(|x - median(x)|)``: the SD of a Gaussian, insensitive to outliers."""
    x = np.asarray(x, dtype=float)
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else math.nan


def binomial_upper(n_fail: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a failure probability, ``n_fail`` of ``n``."""
    if n_fail >= n:
        return 1.0
    return float(stats.beta.ppf(confidence, n_fail + 1, n - n_fail))


def seeds_for(rate: float = TARGET, confidence: float = CONFIDENCE) -> int:
    """Seeds needed, none failing, for the binomial upper bound to fall below ``rate``."""
    return math.ceil(math.log(1 - confidence) / math.log1p(-rate))


def _gpd_tail(y: np.ndarray, b: float) -> tuple[float, float | None]:
    """``P(Y > b)`` from a GPD over the largest values of ``y``; and the shape used.

    ``y`` is oriented so that failing means large (a lower bound is passed negated).
    """
    n = y.size
    k = max(10, math.ceil(n / 10))
    top = np.sort(y)[::-1]
    u = top[k]  # the threshold: the (k + 1)-th largest
    if b <= u:  # the bound lies inside the bulk of the sample: count, do not extrapolate
        return float(np.mean(y > b)), None
    e = top[:k] - u  # (k,) exceedances >= 0
    if not e.max() > 0:
        return 0.0, None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            xi, _, _ = stats.genpareto.fit(e, floc=0)
        except Exception:  # a failed fit: fall back to the exponential tail
            xi = 0.0
        if not math.isfinite(xi):
            xi = 0.0
        xi = max(0.0, xi + 2.0 * (1.0 + max(xi, -0.5)) / math.sqrt(k))  # xi + 2 SE, >= 0
        if xi == 0.0:
            scale = float(e.mean())  # the exponential's maximum likelihood scale
        else:
            try:
                _, _, scale = stats.genpareto.fit(e, f0=xi, floc=0)
            except Exception:
                scale = float(e.mean())
        p = (k / n) * float(stats.genpareto.sf(b - u, xi, 0.0, scale))
    return (p if math.isfinite(p) else 1.0), xi


def _side(x: np.ndarray, bound: float, upper: bool, med: float, sd: float, fit: bool):
    """Tail probability beyond one side, and a short note of what gave it."""
    z = (bound - med) / sd if upper else (med - bound) / sd
    p_normal = float(stats.norm.sf(z))
    if not fit:
        return p_normal, f"normal {p_normal:.2g}"
    p_gpd, xi = _gpd_tail(x if upper else -x, bound if upper else -bound)
    if xi is None:
        return max(p_normal, p_gpd), f"{max(p_normal, p_gpd):.2g} (bound inside the sample)"
    if p_gpd >= p_normal:
        return p_gpd, f"{p_gpd:.2g} (GPD, shape {xi:.2f})"
    return p_normal, f"{p_normal:.2g} (normal)"


def _constant_up_to_rounding(x: np.ndarray, lower, upper) -> bool:
    """Every value within ``ROUNDING`` (relative) of the others, not integer-valued, and every
    bound at least a million spreads away: the check cannot be failed by a seed."""
    spread = float(x.max() - x.min())
    size = float(np.max(np.abs(x)))
    if not size > 0 or spread > ROUNDING * size or np.all(x == np.round(x)):
        return False
    gaps = [abs(b - v) for b in (lower, upper) if b is not None for v in (x.min(), x.max())]
    return all(g > 1e6 * max(spread, np.finfo(float).eps * size) for g in gaps)


def false_failure_rate(values, lower=None, upper=None, *, n_fail: int) -> tuple[float, str]:
    """Estimated probability per fresh seed that the check fails, and the method, in words.

    Parameters
    ----------
    values : (N,) the quantity over N seeds; booleans, numbers, NaN or inf.
    lower, upper : the passing interval's ends, ``None`` when unbounded (see
        :meth:`sandbox.checks.Check.sides`; strictness does not matter here).
    n_fail : how many of the N seeds failed the check.

    Returns
    -------
    rate : float in [0, 1].
    method : str, e.g. ``"identical on every seed"`` or ``"binomial 95% upper bound, 0 of 200
        failed ..."``.
    """
    values = list(values)
    n = len(values)
    if n == 0:
        raise ValueError("values: expected at least one seed, got none")
    if not 0 <= n_fail <= n:
        raise ValueError(f"n_fail: expected an integer in [0, {n}], got {n_fail!r}")
    if all(isinstance(v, bool | np.bool_) for v in values):
        return _binomial(n_fail, n, "a boolean")
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    observed = n_fail / n
    if finite.size == n and n_fail == 0 and np.all(finite == finite[0]):
        if float(finite[0]).is_integer():
            return _binomial(0, n, "an integer, identical on every seed")
        return 0.0, "identical on every seed"
    if finite.size == n and n_fail == 0 and _constant_up_to_rounding(finite, lower, upper):
        return 0.0, f"identical on every seed up to rounding (relative spread <= {ROUNDING:g})"
    distinct = np.unique(finite).size
    sd = robust_sd(finite) if finite.size else 0.0
    if not sd > 0 or (distinct < MIN_DISTINCT and distinct < finite.size):  # ties: a count
        return _binomial(n_fail, n, f"discrete, {distinct} distinct values")
    med = float(np.median(finite))
    fit = finite.size >= MIN_TAIL_FIT
    total, notes = 0.0, []
    for bound, is_upper, name in ((lower, False, "lower"), (upper, True, "upper")):
        if bound is not None:
            p, note = _side(finite, float(bound), is_upper, med, sd, fit)
            total += p
            notes.append(f"{name} {note}")
    rate = max(min(1.0, total), observed)
    k = max(10, math.ceil(finite.size / 10))
    how = (
        f"max(normal tail from median and 1.4826 MAD, GPD over the {k} seeds nearest the "
        "bound with shape + 2 SE >= 0)"
        if fit
        else f"normal tail from median and 1.4826 MAD only ({finite.size} finite values: "
        f"a tail fit needs {MIN_TAIL_FIT})"
    )
    if rate == observed and observed > total:
        notes.append(f"observed {n_fail} of {n}")
    return rate, f"{how}: " + "; ".join(notes)


def _binomial(n_fail: int, n: int, what: str) -> tuple[float, str]:
    rate = binomial_upper(n_fail, n)
    note = ""
    if rate >= TARGET and n_fail == 0:
        note = f"; < {TARGET:g} needs {seeds_for():,} seeds or a continuous quantity"
    return rate, f"binomial 95% upper bound ({what}), {n_fail} of {n} failed{note}"
