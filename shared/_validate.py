"""Input validation at the public boundary.

Every message names the argument, what was expected and what arrived. Every
check raises ``ValueError``, also for an argument of the wrong type, so one
``except ValueError`` catches any bad argument.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)
# Array dtype kinds accepted as real numbers: signed and unsigned integers, floats.
# Booleans (a mask passed by mistake), complex, object, strings and dates are not.
_REAL_KINDS = "iuf"


def array(
    name: str,
    value,
    *,
    ndim: int | None,
    dtype=None,
    shape=None,
    nonempty: bool = False,
    xp=None,
):
    """Return ``value`` as a finite floating array of rank ``ndim`` (any rank if ``None``).

    ``shape`` may fix some axes: a tuple with ``None`` for free axes. With
    ``nonempty`` every axis must have at least one entry. Integer input is
    promoted to float64; float32 is kept when given; ``dtype`` forces one (a
    cast that overflows the target, e.g. float64 to float32, is an error).

    ``xp`` is an array API namespace (:mod:`shared.backend`): ``value`` is then
    an array of it, checked with the standard's functions only, so the same
    checks and messages serve numpy and GPU arrays (integers are promoted to the
    namespace's default real floating dtype).
    """
    if xp is not None:
        return _array_xp(name, value, xp, ndim=ndim, dtype=dtype, shape=shape, nonempty=nonempty)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists and the like
        raise ValueError(
            f"{name}: expected an array of numbers, got {type(value).__name__}: {err}"
        ) from err
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if arr.dtype.kind not in _REAL_KINDS:
        raise ValueError(
            f"{name}: expected a real numeric array (integer or float), got dtype {arr.dtype}"
        )
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                raise ValueError(f"{name}: expected shape {_fmt_shape(shape)}, got {arr.shape}")
    if nonempty and 0 in arr.shape:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite entries")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in FLOAT_DTYPES else np.float64
    dtype = np.dtype(dtype)
    if arr.dtype.kind == "f" and dtype.itemsize < arr.dtype.itemsize:
        with np.errstate(over="ignore"):
            out = arr.astype(dtype)
        if not np.all(np.isfinite(out)):
            raise ValueError(
                f"{name}: values up to {float(np.abs(arr).max()):.3g} overflow {dtype} "
                f"(largest {float(np.finfo(dtype).max):.3g})"
            )
        return out
    return arr.astype(dtype, copy=False)


def _array_xp(name: str, arr, xp, *, ndim, dtype, shape, nonempty):
    """:func:`array` for an array of the array API namespace ``xp``."""
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(arr.shape)}")
    if not xp.isdtype(arr.dtype, ("real floating", "integral")):
        raise ValueError(
            f"{name}: expected a real numeric array (integer or float), got dtype {arr.dtype}"
        )
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                raise ValueError(
                    f"{name}: expected shape {_fmt_shape(shape)}, got {tuple(arr.shape)}"
                )
    if nonempty and 0 in tuple(arr.shape):
        raise ValueError(f"{name}: expected a non-empty array, got shape {tuple(arr.shape)}")
    if dtype is None:
        floating = xp.isdtype(arr.dtype, "real floating")
        dtype = arr.dtype if floating else _default_float(xp, arr)
    if arr.dtype != dtype:
        arr = xp.astype(arr, dtype)
    finite = xp.isfinite(arr)
    if not bool(xp.all(finite)):
        bad = int(xp.sum(xp.astype(~finite, xp.int64)))
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite entries")
    return arr


def _default_float(xp, arr):
    """The namespace's default real floating dtype on the device of ``arr``."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:  # pragma: no cover - namespaces older than the 2023.12 standard
        return xp.float64
    return info().default_dtypes(device=arr.device)["real floating"]


def float_dtype(name: str, value) -> np.dtype:
    """Require a float32 or float64 dtype (anything ``np.dtype`` reads as one)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected np.float32 or np.float64, got {value!r}")
    return dt


def _scaled_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` with each row scaled by ``2^-e_i`` (exact) to a largest entry in ``[0.5, 1)``,
    the norms of the scaled rows and the exponents ``e (n,)``; zero rows stay zero (``e = 0``)."""
    _, e = np.frexp(np.max(np.abs(X), axis=1, initial=0.0))  # (n,)
    Xs = np.ldexp(X, -e[:, None])  # (n, d)
    return Xs, np.linalg.norm(Xs, axis=1), e


def row_norms(X: np.ndarray) -> np.ndarray:
    """Row norms ``(n,)`` of a finite ``X (n, d)``, exact where ``np.linalg.norm`` overflows.

    Each row is first scaled by a power of two (an exact operation) to a largest
    entry in ``[0.5, 1)``, so its sum of squares can neither overflow nor
    underflow; in the normal range the numbers equal ``np.linalg.norm(X, axis=1)``
    to the last bit. A norm above the largest float comes back as ``inf``.
    """
    _, ns, e = _scaled_rows(X)
    with np.errstate(over="ignore"):
        return np.ldexp(ns, e)


def unit_rows(name: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row norms ``(n,)`` and unit rows ``(n, d)`` of ``X`` (see :func:`row_norms`).

    Raises if a row is zero. In the normal range the unit rows equal
    ``X / norms`` to the last bit; they stay exact where the norms overflow.
    """
    Xs, ns, e = _scaled_rows(X)
    zero = np.flatnonzero(ns == 0)
    if zero.size:
        raise ValueError(
            f"{name}: expected non-zero rows, got {zero.size} zero-norm rows "
            f"(first at index {zero[0]})"
        )
    with np.errstate(over="ignore"):
        norms = np.ldexp(ns, e)
    return norms, Xs / ns[:, None]


def nonzero_rows(name: str, X, *, xp=None):
    """Return the row norms of ``X (n, d)`` (see :func:`row_norms`); raise if any row is zero.

    ``xp`` as in :func:`array`: ``X`` an array of that namespace (plain
    ``vector_norm`` there).
    """
    if xp is None:
        return unit_rows(name, X)[0]
    norms = xp.linalg.vector_norm(X, axis=1)
    is_zero = norms == 0
    count = int(xp.sum(xp.astype(is_zero, xp.int64)))
    if count:
        first = int(xp.argmax(xp.astype(is_zero, xp.int8)))
        raise ValueError(
            f"{name}: expected non-zero rows, got {count} zero-norm rows (first at index {first})"
        )
    return norms


def symmetric(name: str, H, *, n: int | None = None) -> np.ndarray:
    """A finite, non-empty, square, symmetric matrix: ``H`` itself, or its symmetric part.

    Symmetric means ``max |H_ij - H_ji| <= sqrt(eps) max |H_ij|`` (1.5e-8 in
    float64, 3.5e-4 in float32). Rounding in a product of ``k``-term sums
    leaves at most ``k eps``, so matrices assembled in floating point (``Q D Q^T``)
    pass up to ``k ~ 1e7``, while an asymmetry that matters does not: eigensolvers
    and Cholesky read one triangle only, and would silently ignore the other.
    ``n`` fixes the size when given.
    A matrix within the tolerance is replaced by ``(H + H^T) / 2``; an exactly
    symmetric one is returned as it is.
    """
    H = array(name, H, ndim=2, nonempty=True, shape=None if n is None else (n, n))
    if H.shape[0] != H.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {H.shape}")
    if np.array_equal(H, H.T):
        return H
    with np.errstate(over="ignore"):
        D = np.abs(H - H.T)  # (n, n)
    i, j = np.unravel_index(np.argmax(D), D.shape)
    tol = float(np.sqrt(np.finfo(H.dtype).eps)) * float(np.abs(H).max())
    if not D[i, j] <= tol:
        raise ValueError(
            f"{name}: expected a symmetric matrix (|H_ij - H_ji| <= sqrt(eps) max|H| = {tol:.3g}),"
            f" got |H_ij - H_ji| = {float(D[i, j]):.3g} at (i, j) = ({i}, {j})"
        )
    return 0.5 * H + 0.5 * H.T


def positive(name: str, value, *, integer: bool = False, allow_zero: bool = False):
    """Check a positive (or non-negative) scalar, optionally an integer."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    if not isinstance(value, numbers.Integral) and not _finite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected {bound}, got {value!r}")
    return value


def in_range(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False):
    """Check ``lo <= value <= hi`` for a real scalar (``<`` at an open end)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and _finite(value)
        and (lo < value if lo_open else lo <= value)
        and (value < hi if hi_open else value <= hi)
    )
    if not ok:
        span = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: expected a number in {span}, got {value!r}")
    return value


def function(name: str, value):
    """Require a callable."""
    if not callable(value):
        raise ValueError(f"{name}: expected a callable, got {type(value).__name__} {value!r}")
    return value


def rng(name: str, value) -> np.random.Generator:
    """Require an explicit ``np.random.Generator`` (SPEC 7)."""
    if not isinstance(value, np.random.Generator):
        raise ValueError(
            f"{name}: expected a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(value).__name__}"
        )
    return value


def _finite(value) -> bool:
    """``math.isfinite`` for any real number, also one too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _fmt_shape(shape) -> str:
    """``(3, *)`` style, ``(3,)`` for one axis, as numpy prints shapes."""
    parts = ["*" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
