"""Rates and exponents, fitted the same way in every experiment."""

from __future__ import annotations

import numpy as np

from shared import _validate as v


def power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of ``log y = p log x + c``: the exponent ``p`` and its standard error.

    Parameters
    ----------
    x, y : (k,) arrays of positive numbers, ``k >= 3``, with at least two distinct ``x``.
    """
    x = v.array("x", x, ndim=1)
    y = v.array("y", y, ndim=1, shape=x.shape)
    if x.shape[0] < 3:
        raise ValueError(f"x: expected at least 3 points for a fit with an error, got {x.shape[0]}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x, y: expected positive values for a log-log fit")
    t = np.log(x)
    if np.all(t == t[0]):
        raise ValueError(f"x: expected at least 2 distinct values for a slope, got all {x[0]!r}")
    return _line(t, np.log(y))


def _line(t, z) -> tuple[float, float]:
    A = np.column_stack([t, np.ones_like(t)])
    coef, _res, *_ = np.linalg.lstsq(A, z, rcond=None)
    k = t.shape[0]
    resid = z - A @ coef
    s2 = float(resid @ resid) / max(k - 2, 1)
    se = np.sqrt(s2 / np.sum((t - t.mean()) ** 2))
    return float(coef[0]), float(se)


def floor_ratio(dtype) -> float:
    """Smallest loss ratio ``L(k)/L(0)`` a fit may use in ``dtype``.

    Residual entries carry a relative rounding error of about ``eps``, so the
    squared loss ratio bottoms out near ``eps^2`` times a modest factor
    (observed ~1e-13 in float32, ~1e-30 in float64). The window stops at
    ``(1e3 eps)^2``, six orders of magnitude above that floor, and never below
    ``1e-14``: ``1e-14`` in float64 and ``1.4e-8`` in float32 (the only two dtypes).
    """
    eps = float(np.finfo(v.float_dtype("dtype", dtype)).eps)
    return max((1e3 * eps) ** 2, 1e-14)


def log_rate(losses, *, hi: float = 1e-3, lo: float | None = None, dtype=np.float64) -> float:
    """Per-step slope of ``log L(k)``, fitted where ``lo <= L(k)/L(0) <= hi``.

    The window keeps clear of the transient at the start and of the precision
    floor at the end; ``lo`` defaults to :func:`floor_ratio` of ``dtype``. If the
    loss never reaches ``hi``, the last half of the curve above the floor is used.
    ``losses (k,)`` positive, ``0 <= lo < hi``. Returns the slope (negative when
    the loss decreases).
    """
    L = v.array("losses", losses, ndim=1, nonempty=True)
    if np.any(L <= 0):
        raise ValueError("losses: expected positive values")
    v.positive("hi", hi)
    lo = floor_ratio(dtype) if lo is None else v.positive("lo", lo, allow_zero=True)
    v.float_dtype("dtype", dtype)
    if lo >= hi:
        raise ValueError(f"lo: expected below hi={hi!r}, got {lo!r}")
    with np.errstate(over="ignore"):  # a ratio past the float range lies above any window
        ratio = L / L[0]
    keep = (ratio <= hi) & (ratio >= lo)
    if np.count_nonzero(keep) < 3:
        above = np.flatnonzero(ratio >= lo)
        keep = np.zeros_like(keep)
        keep[above[len(above) // 2 :]] = True
    k = np.flatnonzero(keep)
    if k.size < 3:
        raise ValueError(f"losses: only {k.size} points lie in the fit window [{lo:g}, {hi:g}]")
    slope, _ = _line(k.astype(float), np.log(L[k]))
    return slope
