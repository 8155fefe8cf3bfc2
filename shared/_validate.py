"""Input validation at the public boundary.

Every message names the argument, what was expected and what arrived.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def array(name: str, value, *, ndim: int, dtype=None, shape=None, xp=None):
    """Return ``value`` as a finite, non-empty, real floating array of rank ``ndim``.

    ``shape`` may fix some axes: a tuple with ``None`` for free axes. Every axis
    must have at least one entry. Integer (and boolean) input is promoted to
    float64 (to the namespace's default real floating dtype with ``xp``); a
    floating dtype is kept when given (numpy: float32 and float64).

    ``xp`` is an array API namespace (:mod:`shared.backend`): ``value`` is then
    an array of it and is checked with the standard's functions only, so the
    same checks and messages serve numpy and GPU arrays.
    """
    if xp is None:
        arr = np.asarray(value)
        _check_rank(name, arr, ndim)
        if dtype is None:
            dtype = arr.dtype if arr.dtype in FLOAT_DTYPES else np.float64
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(
            arr
        ):
            raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
        xp = np
    else:
        arr = value
        _check_rank(name, arr, ndim)
        if not xp.isdtype(arr.dtype, ("real floating", "integral", "bool")):
            raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
        if dtype is None:
            floating = xp.isdtype(arr.dtype, "real floating")
            dtype = arr.dtype if floating else _default_float(xp, arr)
        if arr.dtype != dtype:
            arr = xp.astype(arr, dtype)
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                raise ValueError(
                    f"{name}: expected shape {_fmt_shape(shape)}, got {tuple(arr.shape)}"
                )
    if 0 in tuple(arr.shape):
        raise ValueError(f"{name}: expected a non-empty array, got shape {tuple(arr.shape)}")
    finite = xp.isfinite(arr)
    if not bool(xp.all(finite)):
        if xp is np:
            bad = int(np.count_nonzero(~finite))
        else:
            bad = int(xp.sum(xp.astype(~finite, xp.int64)))
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite entries")
    return arr


def _check_rank(name: str, arr, ndim: int) -> None:
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(arr.shape)}")


def _default_float(xp, arr):
    """The namespace's default real floating dtype on the device of ``arr``."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:  # pragma: no cover - namespaces older than the 2023.12 standard
        return xp.float64
    return info().default_dtypes(device=arr.device)["real floating"]


def nonzero_rows(name: str, X, *, xp=None):
    """Return the row norms of ``X (n, d)``; raise if any row is zero.

    ``xp`` as in :func:`array`: ``X`` an array of that namespace.
    """
    if xp is None:
        norms = np.linalg.norm(X, axis=1)
        zero = np.flatnonzero(norms == 0)
        count, first = zero.size, (int(zero[0]) if zero.size else None)
    else:
        norms = xp.linalg.vector_norm(X, axis=1)
        is_zero = norms == 0
        count = int(xp.sum(xp.astype(is_zero, xp.int64)))
        first = int(xp.argmax(xp.astype(is_zero, xp.int8))) if count else None
    if count:
        raise ValueError(
            f"{name}: expected non-zero rows, got {count} zero-norm rows (first at index {first})"
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
