"""Run an experiment, split its numbers, write results atomically, check them."""

from __future__ import annotations

import json
import math
import numbers
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sandbox._io import write_atomic, write_bytes_atomic
from sandbox.checks import Verdict, evaluate
from sandbox.errors import ExperimentError
from sandbox.registry import Experiment


@dataclass
class RunRecord:
    experiment: str
    mode: str
    seed: int
    quantities: dict
    series: dict
    runtime_s: float
    verdicts: list[Verdict]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def split_result(name: str, result) -> tuple[dict, dict]:
    """Scalars (checked, tabulated) and everything else (series for the figure)."""
    if not isinstance(result, dict):
        raise ExperimentError(f"{name}: run() must return a dict, got {type(result).__name__}")
    scalars, series = {}, {}
    for key, val in result.items():
        if not isinstance(key, str):
            raise ExperimentError(f"{name}: run() returned a non-string key {key!r}")
        if isinstance(val, np.ndarray) and val.ndim == 0 and val.dtype.kind in "biuf":
            val = val.item()  # a 0-d array is a number
        if isinstance(val, bool | np.bool_):
            scalars[key] = bool(val)
        elif isinstance(val, numbers.Real) and np.ndim(val) == 0:
            scalars[key] = int(val) if isinstance(val, numbers.Integral) else float(val)
        else:
            series[key] = val
    return scalars, series


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def write_json_atomic(path: Path, payload: dict) -> Path:
    """``payload`` as indented JSON, written atomically (:func:`sandbox._io.write_atomic`)."""

    def write(fh):
        json.dump(_jsonable(payload), fh, indent=1)
        fh.write("\n")

    return write_atomic(path, write)


PUBLISH_MAX_BYTES = 400_000  # stays under the 1 MB large-file hook with room for growth


def publishable(payload: dict, *, max_bytes: int = PUBLISH_MAX_BYTES) -> dict:
    """A copy of a ``results.json`` payload small enough to commit beside the README.

    Quantities, checks, runtime and environment are always kept. Series are kept
    smallest first while the JSON stays under ``max_bytes``; the names of those
    left out are listed under ``series_omitted`` (a full run's ``output/`` holds them).
    """
    series = payload.get("series", {})
    sizes = {k: len(json.dumps(_jsonable(v))) for k, v in series.items()}
    kept, omitted = {}, []
    base = len(json.dumps(_jsonable({**payload, "series": {}, "series_omitted": list(series)})))
    budget = max_bytes - base
    for key in sorted(series, key=lambda k: sizes[k]):
        if sizes[key] + len(key) + 8 <= budget:
            kept[key] = series[key]
            budget -= sizes[key] + len(key) + 8
        else:
            omitted.append(key)
    out = {**payload, "series": kept}
    if omitted:
        out["series_omitted"] = sorted(omitted)
    return out


def _reject_checked_series(exp: Experiment, series: dict, mode: str) -> None:
    """A checked quantity must be a scalar: say so when run() returned it as an array."""
    for c in exp.checks:
        if mode in c.modes and c.quantity in series:
            kind = type(series[c.quantity]).__name__
            raise ExperimentError(
                f"{exp.name}: expected.toml checks '{c.quantity}', but run() returned it as a "
                f"{kind}, not a scalar; return one number (e.g. a float) to check"
            )


def run_experiment(
    exp: Experiment,
    *,
    quick: bool,
    seed: int,
    out_dir: Path | None = None,
    figure: bool = True,
    progress=None,
) -> RunRecord:
    """Import and run ``exp``; with ``out_dir``, write ``results.json`` (and ``figure.png``)."""
    module = exp.load_module()
    mode = "quick" if quick else "full"
    t0 = time.perf_counter()
    if progress is None:  # experiments call progress unconditionally

        def progress(i, total, label=""):
            return None

    result = module.run(quick=quick, seed=seed, progress=progress)
    runtime = time.perf_counter() - t0
    scalars, series = split_result(exp.name, result)
    _reject_checked_series(exp, series, mode)
    verdicts = evaluate(exp.checks, scalars, mode=mode, name=exp.name)
    record = RunRecord(exp.name, mode, seed, scalars, series, runtime, verdicts)
    if out_dir is not None:
        out_dir = Path(out_dir)
        if figure:
            from shared.plotting import png

            write_bytes_atomic(out_dir / "figure.png", png(module.plot(result)))
        write_json_atomic(
            out_dir / "results.json",
            {
                "experiment": exp.name,
                "mode": mode,
                "seed": seed,
                "runtime_s": runtime,
                "passed": record.passed,
                "checks": [
                    {
                        "quantity": v.check.quantity,
                        "expected": v.check.expected(),
                        "measured": v.measured,
                        "passed": v.passed,
                    }
                    for v in verdicts
                ],
                "quantities": scalars,
                "series": series,
                "environment": {
                    "python": sys.version.split()[0],
                    "numpy": np.__version__,
                    "platform": platform.platform(),
                },
            },
        )
    return record


class Progress:
    """``progress(i, total, label="")`` callback that prints a line every ~2 seconds to stderr."""

    def __init__(self, name: str, every_s: float = 2.0):
        self.name, self.every_s, self._last = name, every_s, -math.inf
        self._t0 = time.perf_counter()

    def __call__(self, i: int, total: int, label: str = "") -> None:
        now = time.perf_counter()
        if now - self._last < self.every_s and i < total:
            return
        self._last = now
        pct = 100.0 * i / total if total else 100.0
        print(
            f"[{self.name}] {i}/{total} ({pct:5.1f}%) {label} {now - self._t0:7.1f}s",
            file=sys.stderr,
            flush=True,
        )
