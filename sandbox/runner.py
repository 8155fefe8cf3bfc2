"""Run an experiment, split its numbers, write results atomically, check them."""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import platform
import shutil
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


PREVIOUS = "previous"  # where a run moves the results it is about to replace


def set_aside(out_dir: Path) -> list[str]:
    """Move the previous ``results.json`` and ``figure.png`` of ``out_dir`` into
    ``out_dir/previous/``, so that no stale result sits where a new one is expected.

    Returns the names moved. Raises :class:`ExperimentError` if ``out_dir`` cannot
    be created or written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExperimentError(f"output folder {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = [f for f in ("results.json", "figure.png") if (out_dir / f).exists()]
        if stale:
            aside = out_dir / PREVIOUS
            shutil.rmtree(aside, ignore_errors=True)
            aside.mkdir()
            for f in stale:
                os.replace(out_dir / f, aside / f)
    except OSError as err:
        raise ExperimentError(f"cannot write in {out_dir}: {err.strerror or err}") from None
    return stale


def _write(path: Path, write, *args) -> None:
    """A write whose failure (disk full, read-only folder) is a clear error naming the file."""
    try:
        write(path, *args)
    except OSError as err:
        raise ExperimentError(f"cannot write {path}: {err.strerror or err}") from None


def run_experiment(
    exp: Experiment,
    *,
    quick: bool,
    seed: int,
    out_dir: Path | None = None,
    figure: bool = True,
    progress=None,
    backend: str = "numpy",
) -> RunRecord:
    """Import and run ``exp``; with ``out_dir``, write ``results.json``, then ``figure.png``.

    ``backend`` (a name of :data:`shared.backend.BACKENDS`) other than numpy is
    passed to ``run(backend=...)``; an experiment whose ``run()`` takes no
    ``backend`` argument cannot run on another array library, which is an error.

    With ``out_dir``, the previous results there are first moved to
    ``out_dir/previous/`` (removed again once the new ones are written), the numbers
    are written atomically before the figure is drawn, and they stay if evaluating
    the checks or plotting fails: the :class:`ExperimentError` then says where they are.
    ``run()`` always gets a callable ``progress``: the one given, or a silent one.
    """
    module = exp.load_module()
    mode = "quick" if quick else "full"
    options = {}
    if backend != "numpy":
        if "backend" not in inspect.signature(module.run).parameters:
            raise ExperimentError(
                f"{exp.name}: run() takes no backend argument, so it cannot run on "
                f"{backend!r}; only numpy (add a keyword-only backend='numpy' to its run() "
                "and pass it to shared.backend)"
            )
        options["backend"] = backend
    if out_dir is not None:
        out_dir = Path(out_dir)
        set_aside(out_dir)
    t0 = time.perf_counter()
    result = module.run(quick=quick, seed=seed, progress=progress or _silent, **options)
    runtime = time.perf_counter() - t0
    scalars, series = split_result(exp.name, result)
    environment = {"python": sys.version.split()[0], "numpy": np.__version__}
    environment["platform"] = platform.platform()
    if backend != "numpy":
        environment["backend"] = backend
    payload = {
        "experiment": exp.name,
        "mode": mode,
        "seed": seed,
        "runtime_s": runtime,
        "passed": False,
        "checks": [],
        "quantities": scalars,
        "series": series,
        "environment": environment,
    }
    try:
        _reject_checked_series(exp, series, mode)
        verdicts = evaluate(exp.checks, scalars, mode=mode, name=exp.name)
    except ExperimentError as err:
        if out_dir is not None:  # the numbers are kept, marked as not passed
            _write(out_dir / "results.json", write_json_atomic, {**payload, "error": str(err)})
            raise ExperimentError(f"{err}; the numbers are in {out_dir / 'results.json'}") from None
        raise
    record = RunRecord(exp.name, mode, seed, scalars, series, runtime, verdicts)
    if out_dir is None:
        return record
    payload["passed"] = record.passed
    payload["checks"] = [
        {
            "quantity": v.check.quantity,
            "expected": v.check.expected(),
            "measured": v.measured,
            "passed": v.passed,
        }
        for v in verdicts
    ]
    _write(out_dir / "results.json", write_json_atomic, payload)
    if figure:
        from shared.plotting import png

        try:
            image = png(module.plot(result))
        except Exception as exc:
            payload["figure_error"] = f"{type(exc).__name__}: {exc}"
            _write(out_dir / "results.json", write_json_atomic, payload)
            raise ExperimentError(
                f"{exp.name}: drawing the figure failed ({type(exc).__name__}: {exc}); the "
                f"numbers are saved in {out_dir / 'results.json'}"
            ) from exc
        _write(out_dir / "figure.png", write_bytes_atomic, image)
    shutil.rmtree(out_dir / PREVIOUS, ignore_errors=True)
    return record


@dataclass(frozen=True)
class Job:
    """One run of one experiment on one seed, as a worker process receives it."""

    root: Path
    name: str
    quick: bool
    seed: int
    out_dir: Path | None = None  # write results.json and figure.png there
    progress: bool = False  # print progress lines on stderr
    backend: str = "numpy"  # the array library of run(backend=...) (shared.backend.BACKENDS)


@dataclass(frozen=True)
class Failure:
    """A run that ended without results: the message says why (no traceback needed)."""

    message: str


def run_job(job: Job) -> RunRecord | Failure:
    """Run ``job`` in a worker process (:func:`sandbox.workers.run_isolated`).

    Returns the record without its series (the parent needs only the numbers
    and the verdicts), or a :class:`Failure` for an :class:`ExperimentError` or
    a ``sys.exit`` inside the experiment. Any other exception propagates, with
    its traceback, to the parent.
    """
    from sandbox.registry import get

    os.environ.setdefault("MPLBACKEND", "Agg")
    progress = Progress(job.name) if job.progress else None
    try:
        exp = get(job.root, job.name)
        rec = run_experiment(
            exp,
            quick=job.quick,
            seed=job.seed,
            out_dir=job.out_dir,
            progress=progress,
            backend=job.backend,
        )
    except ExperimentError as err:
        return Failure(str(err))
    except SystemExit as exc:
        return Failure(
            f"{job.name}: the experiment called sys.exit({exc.code!r}) instead of returning its "
            "results; nothing was checked"
        )
    rec.series = {}
    return rec


def _silent(i: int, total: int, label: str = "") -> None:
    """The ``progress`` callback of runs nobody watches (checks, tests)."""


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
