"""Input validation at the public boundary.

Every message names the argument, what was expected and what arrived.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def array(name: str, value, *, ndim: int, dtype=None, shape=None) -> np.ndarray:
    """Return ``value`` as a finite floating array of rank ``ndim``.

    ``shape`` may fix some axes: a tuple with ``None`` for free axes.
    Integer input is promoted to float64; float32 is kept when given.
    """
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in FLOAT_DTYPES else np.float64
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                raise ValueError(f"{name}: expected shape {_fmt_shape(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite entries")
    return arr


def nonzero_rows(name: str, X: np.ndarray) -> np.ndarray:
    """Return the row norms of ``X``; raise if any row is zero."""
    norms = np.linalg.norm(X, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"{name}: expected non-zero rows, got {zero.size} zero-norm rows "
            f"(first at index {zero[0]})"
        )
    return norms


def positive(name: str, value, *, integer: bool = False, allow_zero: bool = False):
    """Check a positive (or non-negative) scalar, optionally an integer."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected {bound}, got {value!r}")
    return value


def in_range(name: str, value, lo: float, hi: float):
    """Check ``lo <= value <= hi`` for a real scalar."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return value


def rng(name: str, value) -> np.random.Generator:
    """Require an explicit ``np.random.Generator`` (SPEC 7)."""
    if not isinstance(value, np.random.Generator):
        raise ValueError(
            f"{name}: expected a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(value).__name__}"
        )
    return value


def _fmt_shape(shape) -> str:
    """``(3, *)`` style, ``(3,)`` for one axis, as numpy prints shapes."""
    parts = ["*" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
