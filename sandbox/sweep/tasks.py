"""Tasks of a sweep: their identity, their random stream, and how one runs in a worker.

A task is one ``(config, seed)``. Its key in the table is the canonical JSON of
``[config, seed]``, with numbers compared as numbers (``16.0`` is ``16``; a
boolean stays a boolean); its generator is a child of
``np.random.SeedSequence(root_seed)`` keyed by the same normalized content (SPEC 7).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import json
import math
import numbers
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared import _validate as v

#: Columns the runner writes next to the configuration and the metrics.
RESERVED = ("seed", "root_seed", "runtime_s", "code", "status", "error")
_SCALARS = (str, int, float, bool, type(None))
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


#: The most seeds one sweep may have (checked before the list is looked at).
MAX_SEEDS = 100_000


def _number(x):
    """A number as a number: an integral float is the int it equals (``16.0 -> 16``)."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, dict):
        return {k: _number(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_number(v) for v in x]
    return x


def _canonical(obj) -> str:
    return json.dumps(_number(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def task_key(config: dict, seed: int) -> str:
    """The identity of a task in the table: canonical JSON of ``[config, seed]``, numbers
    normalized (``{"m": 16.0}`` and ``{"m": 16}`` are the same task)."""
    return _canonical([config, seed])


def task_rng(config: dict, seed: int, *, root_seed: int = 0) -> np.random.Generator:
    """The generator a sweep hands to ``task_fn`` for ``(config, seed)``.

    The child ``SeedSequence(root_seed, spawn_key=(h_0, .., h_3, seed))`` with
    ``h`` the first 128 bits of the SHA-256 of the canonical JSON of ``config``:
    the child that ``SeedSequence(root_seed).spawn`` would hand out, keyed by the
    task's content instead of a counter (a counter would shift when the grid
    grows, and with it every task's numbers).
    """
    digest = hashlib.sha256(_canonical(config).encode()).digest()
    words = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    root = np.random.SeedSequence(root_seed)
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(*words, seed)))


def _scalar(name: str, value):
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, _SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{name}: expected str, int, finite float, bool or None, got {value!r}")
    return value


def expand_grid(grid: dict) -> list[dict]:
    """All configurations of ``grid`` (``{name: [values]}``), last name varying fastest."""
    if not isinstance(grid, dict):
        raise ValueError(
            f"grid: expected a dict of name -> list of values, got {type(grid).__name__}"
        )
    values = []
    for name, vals in grid.items():
        if not isinstance(name, str) or not name or name in RESERVED:
            raise ValueError(f"grid: expected names that are not one of {RESERVED}, got {name!r}")
        if not isinstance(vals, list | tuple) or not vals:
            raise ValueError(f"grid[{name!r}]: expected a non-empty list, got {vals!r}")
        vals = [_scalar(f"grid[{name!r}]", x) for x in vals]
        if len({_canonical(x) for x in vals}) != len(vals):
            raise ValueError(f"grid[{name!r}]: expected distinct values, got {vals!r}")
        values.append(vals)
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def _check_seeds(seeds) -> list[int]:
    if not isinstance(seeds, list | tuple | range) or len(seeds) == 0:
        raise ValueError(f"seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds: expected at most {MAX_SEEDS} seeds, got {len(seeds)}")
    seeds = [v.positive("seeds", _scalar("seeds", s), integer=True, allow_zero=True) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {seeds}")
    return seeds


def _clean_metrics(metrics, config: dict) -> dict:
    """Metrics as JSON numbers; a non-finite float becomes ``None`` (JSON null)."""
    if not isinstance(metrics, dict):
        raise TypeError(f"task_fn must return a dict of metrics, got {type(metrics).__name__}")
    out = {}
    for name, val in metrics.items():
        if not isinstance(name, str) or name in RESERVED or name in config:
            raise ValueError(f"metric name {name!r} clashes with {RESERVED} or the config columns")
        val = val.item() if isinstance(val, np.generic) else val
        if not isinstance(val, numbers.Real):
            raise TypeError(f"metric {name!r}: expected a number, got {type(val).__name__}")
        if isinstance(val, bool | numbers.Integral):
            out[name] = val if isinstance(val, bool) else int(val)
        else:
            out[name] = float(val) if math.isfinite(val) else None
    return out


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)
    at = f" (at {Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def sources_hash(module: str) -> str | None:
    """Short SHA-256 of the ``.py`` sources a task runs: its package (or module) and ``shared``.

    ``None`` for ``__main__`` and for code that has no files (a notebook cell).
    """
    top = sys.modules.get(module.partition(".")[0]) if module != "__main__" else None
    if getattr(top, "__path__", None):  # a namespace package may list a folder twice
        roots = list(dict.fromkeys(Path(p).resolve() for p in top.__path__))
    elif getattr(top, "__file__", None):
        roots = [Path(top.__file__)]
    else:
        return None
    science = sys.modules.get("shared")
    if science is not None and science is not top:
        roots += [Path(p).resolve() for p in science.__path__]
    files = []
    for r in roots:
        found = [r] if r.is_file() else sorted(r.rglob("*.py"))
        files += [(f"{r.name}/{p.relative_to(r) if r.is_dir() else p.name}", p) for p in found]
    h = hashlib.sha256()
    for rel, path in sorted(files):
        h.update(f"{rel}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


_worker_sources_hash = functools.cache(sources_hash)  # what a worker imported, hashed once


def _import_on_worker(module: str) -> str | None:
    """Run on every Dask worker before a sweep: import the task's module, hash its sources."""
    importlib.import_module(module)
    return _worker_sources_hash(module)


def _execute(task_fn: Callable, config: dict, seed: int, root_seed: int) -> dict:
    """Run one task in a worker; the task's own exceptions become an 'error' outcome."""
    code = _worker_sources_hash(task_fn.__module__)
    t0 = time.perf_counter()
    try:
        metrics = _clean_metrics(
            task_fn(dict(config), task_rng(config, seed, root_seed=root_seed)), config
        )
        status, error = "ok", None
    except Exception as exc:
        metrics, status, error = {}, "error", _describe(exc)
    return {
        "metrics": metrics,
        "runtime_s": time.perf_counter() - t0,
        "code": code,
        "status": status,
        "error": error,
    }


def _outcome(future) -> dict:
    """The worker's outcome, or an 'error' one when the future failed (lost worker, broken pool)."""
    try:
        return future.result()
    except Exception as exc:
        error = _describe(exc)
        return {"metrics": {}, "runtime_s": None, "code": None, "status": "error", "error": error}
