"""Sweeps: a grid of configurations x seeds, run in parallel, resumable, in one tidy table.

A sweep calls ``task_fn(config, rng) -> dict[str, float]`` once per
(configuration, seed), locally on a process pool or on a Dask distributed
cluster, and appends one JSON Lines row per finished task to a table on disk.
The table is the sweep's only memory: started again on the same file, a sweep
skips every task that already has an ``'ok'`` row and retries the rest, so a
crash, a Ctrl-C or a lost cluster costs at most the tasks that were running.

Randomness follows SPEC 7: every task gets its own ``np.random.Generator``,
a child of ``np.random.SeedSequence(root_seed)`` whose spawn key is derived
from the task's content (its configuration and seed), not from its position
in the grid. A task's numbers therefore depend only on ``(root_seed, config,
seed)``: a resumed sweep, a sweep with more widths or seeds, or the task run
alone (:func:`task_rng`) reproduce them bit for bit. Each row also records a
hash of the sources the worker imported, and workers that imported other
sources than the driver's are refused.

    python -m shared.sweep figure1 --widths 64,256,1024,4096 --seeds 0-4 --out sweep.jsonl

runs Du, Zhai, Poczos, Singh (ICLR 2019), Figure 1, one width and seed per
task (see ``shared/SWEEPS.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import itertools
import json
import math
import multiprocessing
import numbers
import os
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from shared import _validate as v
from shared import data, fit, kernels, net

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one driver per table is on the user
    fcntl = None

#: Columns the runner writes next to the configuration and the metrics.
RESERVED = ("seed", "root_seed", "runtime_s", "code", "status", "error")
_SCALARS = (str, int, float, bool, type(None))
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------- tasks and streams


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def task_key(config: dict, seed: int) -> str:
    """The identity of a task in the table: canonical JSON of ``[config, seed]``."""
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
    """Short SHA-256 of the ``.py`` sources of the package (or lone module) ``module`` is in.

    ``None`` for ``__main__`` and for code that has no files (a notebook cell).
    """
    top = sys.modules.get(module.partition(".")[0]) if module != "__main__" else None
    if getattr(top, "__path__", None):
        files = [(p.relative_to(r), p) for r in map(Path, top.__path__) for p in r.rglob("*.py")]
    elif getattr(top, "__file__", None):
        files = [(Path(top.__file__).name, Path(top.__file__))]
    else:
        return None
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


# ---------------------------------------------------------------- the table


def _dumps(row: dict) -> str:
    return json.dumps(row, allow_nan=False)


def _parse(path: Path) -> tuple[list[dict], bool]:
    """Rows of a JSON Lines table, and whether the file needs a clean rewrite.

    Only the last line may be torn (a crash mid-append): it is dropped. A last
    line that parses but lacks its newline is kept and marked for a rewrite, so
    the next append does not glue onto it. Any other bad line is an error.
    """
    if not path.exists():
        return [], False
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    rows, repair = [], bool(tail.strip())
    lines = [(i, ln) for i, ln in enumerate([*lines, tail], 1) if ln.strip()]
    for j, (i, line) in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        except ValueError as exc:
            if j == len(lines) - 1:
                repair = True
                break
            raise ValueError(
                f"out: line {i} of {path} is not a JSON object ({exc}); only a torn last line "
                "is repaired, fix or remove this one by hand"
            ) from None
        rows.append(row)
    return rows, repair


def read_table(path) -> list[dict]:
    """Rows of a sweep table (JSON Lines), ignoring a torn last line; the file is not touched.

    Load into pandas with ``pandas.DataFrame(read_table(path))``.
    """
    return _parse(Path(path))[0]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform opens folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rewrite(path: Path, rows: list[dict]) -> None:
    """Replace ``path`` atomically by ``rows`` (temp file, fsync, rename)."""
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as f:
        f.writelines(_dumps(row) + "\n" for row in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)
    _fsync_dir(path.parent)


def _open_locked(path: Path):
    """Open ``path`` for appending under an exclusive advisory lock (one driver per table)."""
    f = open(path, "a", encoding="utf-8")  # closed by the caller
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ValueError(
                f"out: another sweep is writing {path}; wait for it or pick another file"
            ) from None
        if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:  # replaced before we locked
            f.close()
            raise ValueError(f"out: {path} was replaced by another sweep while opening it")
    return f


def _row_key(row: dict, names: list[str]) -> str | None:
    if "seed" not in row or any(n not in row for n in names):
        return None
    return task_key({n: row[n] for n in names}, row["seed"])


def _resume(
    path: Path, names: list[str], wanted: set[str], root_seed: int
) -> tuple[dict[str, dict], bool]:
    """'ok' rows of the wanted tasks, and whether the file was rewritten.

    Drops the wanted tasks' 'error' rows and duplicates, and a torn last line.
    Rows of other tasks (another grid in the same table) are kept untouched.
    """
    rows, repair = _parse(path)
    keep, done = [], {}
    for row in rows:
        key = _row_key(row, names)
        if key not in wanted:
            keep.append(row)
            continue
        if row.get("root_seed") != root_seed:
            raise ValueError(
                f"root_seed: {path} holds rows made with root_seed={row.get('root_seed')!r}, "
                f"got {root_seed}; their numbers would mix two streams, use another out file"
            )
        if row.get("status") == "ok" and key not in done:
            done[key] = row
            keep.append(row)
        else:
            repair = True  # an errored attempt, retried now, or a duplicate
    if repair:
        _rewrite(path, keep)
    return done, repair


def _warn_other_code(rows, code: str | None, path: Path) -> None:
    other = sorted({r.get("code") for r in rows} - {code, None})
    if code is not None and other:
        warnings.warn(
            f"{path}: rows kept from earlier runs were computed by other sources ({other}; now "
            f"{code}); delete those rows to recompute them",
            stacklevel=3,
        )


# ---------------------------------------------------------------- executors


@contextlib.contextmanager
def _single_threaded_blas():
    """One BLAS thread per worker unless the caller chose otherwise (as Dask's nanny does)."""
    unset = [k for k in _BLAS_THREADS if k not in os.environ]
    os.environ.update(dict.fromkeys(unset, "1"))
    try:
        yield
    finally:
        for k in unset:
            os.environ.pop(k, None)


def _run_local(task_fn, tasks, root_seed: int, workers: int | None) -> Iterator[tuple]:
    """``(task, outcome)`` as tasks finish on a local process pool (spawned, not forked)."""
    ctx = multiprocessing.get_context("spawn")  # forking a process with threads can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        with _single_threaded_blas():  # workers start on submit and read the variables then
            futures = {pool.submit(_execute, task_fn, c, s, root_seed): (c, s) for c, s in tasks}
        for fut in as_completed(futures):
            yield futures[fut], _outcome(fut)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(task_fn, tasks, root_seed: int, scheduler: str, workers: int | None, code):
    """``(task, outcome)`` as tasks finish on the Dask cluster at ``scheduler``.

    Every worker first imports the task's module (a worker that cannot would
    drop the task stream) and reports the hash of the sources it imported: a
    worker started before the code changed is refused.
    """
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(scheduler, set_as_default=False) as client:
        if workers:
            client.wait_for_workers(workers)
        module = task_fn.__module__
        if module != "__main__":  # a __main__ function travels by value
            try:
                seen = client.run(_import_on_worker, module)
            except ImportError as exc:
                raise ValueError(
                    f"task_fn: the Dask workers cannot import {module!r} ({exc}); "
                    "install the project on every worker"
                ) from None
            stale = sorted(w for w, h in seen.items() if code is not None and h != code)
            if stale:
                raise ValueError(
                    f"scheduler: workers {stale} imported other sources of {module!r} than the "
                    f"driver's ({code}); restart them after changing the code"
                )
        name = getattr(task_fn, "__name__", "task")
        pending = {
            client.submit(
                _execute, task_fn, c, s, root_seed, key=f"{name}-{uuid.uuid4().hex}", pure=False
            ): (c, s)
            for c, s in tasks
        }
        done = dask_completed(
            list(pending), loop=client.loop, with_results=True, raise_errors=False
        )  # gathers each result as soon as its task ends
        try:
            for fut, res in done:
                res = res if isinstance(res, dict) else _outcome(fut)  # else: raises, recorded
                task = pending.pop(fut)
                fut.release()  # the scheduler forgets it: a worker lost later is not re-run for it
                yield task, res
        finally:
            client.cancel(list(pending))


class _Progress:
    """``done / total, failures, elapsed`` on stderr; one line per update, or in place on a TTY."""

    def __init__(self, total: int, skipped: int, enabled: bool):
        self.total, self.done, self.failed, self.skipped = total, skipped, 0, skipped
        self.enabled, self.t0 = enabled, time.perf_counter()
        self.tty = enabled and sys.stderr.isatty()
        self.show()

    def show(self, note: str = "") -> None:
        if not self.enabled:
            return
        line = (
            f"sweep: {self.done}/{self.total} done ({self.skipped} from the table), "
            f"{self.failed} failed, {time.perf_counter() - self.t0:.1f} s elapsed"
        )
        if note:
            print(("\n" if self.tty else "") + note, file=sys.stderr)
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
        sys.stderr.flush()

    def update(self, row: dict, config: dict) -> None:
        self.done += 1
        note = ""
        if row["status"] != "ok":
            self.failed += 1
            note = f"sweep: task {config} seed {row['seed']} failed: {row['error']}"
        self.show(note)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def run_sweep(
    task_fn: Callable[[dict, np.random.Generator], dict],
    grid: dict[str, list],
    seeds: list[int],
    out: Path,
    *,
    root_seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run ``task_fn`` on every configuration of ``grid`` x ``seeds``; resume from ``out``.

    Parameters
    ----------
    task_fn : ``task_fn(config, rng) -> dict[str, float]``, a top-level function
        of an importable module (it is pickled by reference to the workers).
    grid : ``{name: [values]}`` with JSON scalar values; every combination is a
        configuration (a column of the table per name).
    seeds : distinct integers >= 0; each configuration runs once per seed.
    out : the JSON Lines table. Tasks with an ``'ok'`` row there are skipped;
        tasks with an ``'error'`` row are run again and their old row dropped.
    root_seed : root of every task's stream (:func:`task_rng`).
    scheduler : address of a Dask scheduler (``"tcp://host:8786"``); ``None``
        runs on a local process pool.
    workers : local pool size (default: one per CPU); with ``scheduler``, wait
        until that many Dask workers have joined before submitting.
    progress : print ``done / total, failures, elapsed`` on stderr.

    Returns
    -------
    rows : one dict per task in grid order (configurations, then seeds): the
        config columns, ``seed``, ``root_seed``, the metrics, ``runtime_s``
        (seconds inside ``task_fn``), ``code`` (:func:`sources_hash` of the
        task's package in the worker), ``status`` ('ok' or 'error') and ``error``.
    """
    if not callable(task_fn):
        raise ValueError(f"task_fn: expected a function (config, rng) -> dict, got {task_fn!r}")
    configs, seeds = expand_grid(grid), _check_seeds(seeds)
    v.positive("root_seed", root_seed, integer=True, allow_zero=True)
    if workers is not None:
        v.positive("workers", workers, integer=True)
    if scheduler is not None and not isinstance(scheduler, str):
        raise ValueError(
            f"scheduler: expected an address such as 'tcp://host:8786', got {scheduler!r}"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tasks = [(c, s) for c in configs for s in seeds]
    keys = [task_key(c, s) for c, s in tasks]

    code = sources_hash(task_fn.__module__)  # the sources on disk now
    table = _open_locked(out)
    try:
        rows, rewritten = _resume(out, list(grid), set(keys), root_seed)
        if rewritten:  # the rename made a new file: lock it before letting go of the old one
            table, old = _open_locked(out), table
            old.close()
        _warn_other_code(rows.values(), code, out)
        todo = [t for t, k in zip(tasks, keys, strict=True) if k not in rows]
        meter = _Progress(len(tasks), len(tasks) - len(todo), progress)
        if todo:
            if scheduler is None:
                runner = _run_local(task_fn, todo, root_seed, workers)
            else:
                runner = _run_dask(task_fn, todo, root_seed, scheduler, workers, code)
            with contextlib.closing(runner):
                for (config, seed), res in runner:
                    row = {**config, "seed": seed, "root_seed": root_seed, **res["metrics"]}
                    row |= {k: res[k] for k in ("runtime_s", "code", "status", "error")}
                    table.write(_dumps(row) + "\n")
                    table.flush()
                    os.fsync(table.fileno())
                    rows[task_key(config, seed)] = row
                    meter.update(row, config)
        meter.close()
    finally:
        table.close()
    return [rows[k] for k in keys]


# ---------------------------------------------------------------- Figure 1 of Du et al.


def figure1_task(config: dict, rng: np.random.Generator) -> dict[str, float]:
    """One width and seed of Du, Zhai, Poczos, Singh (ICLR 2019), Figure 1.

    ``X (n, d)`` uniform on the unit sphere, ``y ~ N(0, I_n)``, ``W (m, d)``
    trained by ``steps`` full-batch GD steps at ``eta = 1 / lambda_max(H_inf)``
    (the paper fixes one ``eta`` for all widths without stating it; this one is
    stable for every width and concentrates across draws when ``n, d`` are large).

    Returns ``lam0 = lambda_min(H_inf)``, ``eta``, ``loss_ratio = L(steps) / L(0)``,
    ``log_rate`` (slope of ``log L(k)``, :func:`shared.fit.log_rate`), ``move_max``
    and ``move_rms`` (max and RMS over neurons of ``||w_r(steps) - w_r(0)||``) and
    ``flip_fraction`` (pattern changes over the ``m * n`` pairs).
    """
    n, d, m, steps = (int(config[k]) for k in ("n", "d", "m", "steps"))
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    eta = 1.0 / lam[-1]
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    res = net.train(X, y, W0, a0, eta=eta, steps=steps, record_every=steps)
    return {
        "lam0": float(lam[0]),
        "eta": float(eta),
        "loss_ratio": float(res.loss[-1] / res.loss[0]),
        "log_rate": fit.log_rate(res.loss),
        "move_max": float(res.move_max[-1]),
        "move_rms": float(res.move_rms[-1]),
        "flip_fraction": float(res.flip_fraction[-1]),
    }


def _ints(text: str) -> list[int]:
    try:
        vals = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '64,256', got {text!r}") from None
    if any(x <= 0 for x in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _summary(rows: list[dict]) -> str:
    """Mean over seeds per width of the Figure 1 quantities."""
    cols = "lam0 eta loss_ratio log_rate move_max move_rms flip_fraction runtime_s".split()
    lines = ["m".rjust(6) + "  seeds  " + "  ".join(c.rjust(13) for c in cols)]
    for m in sorted({r["m"] for r in rows}):
        ok = [r for r in rows if r["m"] == m and r["status"] == "ok"]
        vals = np.array([[r[c] for c in cols] for r in ok], dtype=float).reshape(-1, len(cols))
        means = vals.mean(axis=0) if ok else np.full(len(cols), np.nan)  # a null metric -> nan
        lines.append(f"{m:6d}  {len(ok):5d}  " + "  ".join(f"{x:13.5g}" for x in means))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.sweep figure1 ...``; exit status 1 when a task failed."""
    from shared.harness.cli import parse_seeds

    p = argparse.ArgumentParser(prog="python -m shared.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("figure1", help="Du et al. (2019) Figure 1: one task per width and seed")
    f.add_argument(
        "--widths",
        type=_ints,
        default=[64, 256, 1024, 4096],
        help="widths m (default: 64,256,1024,4096)",
    )
    f.add_argument("--seeds", type=parse_seeds, default=list(range(5)), help="seeds (default: 0-4)")
    f.add_argument("--n", type=int, default=1000, help="samples n (default: 1000)")
    f.add_argument("--d", type=int, default=1000, help="input dimension d (default: 1000)")
    f.add_argument("--steps", type=int, default=100, help="GD steps (default: 100)")
    f.add_argument(
        "--root-seed", type=int, default=0, help="root of every task's stream (default: 0)"
    )
    f.add_argument("--out", type=Path, required=True, help="JSON Lines table, resumed if it exists")
    f.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local pool)")
    f.add_argument(
        "--workers", type=int, default=None, help="local pool size, or Dask workers to wait for"
    )
    args = p.parse_args(argv)
    if args.steps < 3:
        p.error(f"--steps: expected at least 3 for a rate fit, got {args.steps}")
    grid = {"m": args.widths, "n": [args.n], "d": [args.d], "steps": [args.steps]}
    rows = run_sweep(
        figure1_task,
        grid,
        args.seeds,
        args.out,
        root_seed=args.root_seed,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    print(_summary(rows))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    # run the importable module, so that functions travel to workers by reference, not by value
    raise SystemExit(importlib.import_module("shared.sweep").main())
