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

    sandbox sweep linear_convergence --widths 64,256,1024,4096 --seeds 0-4 --out sweep.jsonl

runs the sweep an experiment defines in its ``sweep.py`` (:func:`load_task`):
here Du, Zhai, Poczos, Singh (ICLR 2019), Figure 1, one width and seed per task
(``sandbox/sweep/README.md``). The package is split by responsibility:
:mod:`~sandbox.sweep.tasks` (identity and random stream of a task),
:mod:`~sandbox.sweep.table` (the JSON Lines table) and
:mod:`~sandbox.sweep.executors` (local pool, Dask).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sandbox.sweep.executors import _run_dask, _run_local
from sandbox.sweep.table import (
    ON_CONFLICT,
    _dumps,
    _open_locked,
    _resume,
    _warn_other_code,
    read_table,
)
from sandbox.sweep.tasks import (
    _check_seeds,
    expand_grid,
    sources_hash,
    task_key,
    task_rng,
)
from shared import _validate as v

__all__ = ["expand_grid", "read_table", "run_sweep", "sources_hash", "task_key", "task_rng"]


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
    on_conflict: str = "fail",
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
    on_conflict : ``"fail"`` (default), ``"keep_first"`` or ``"keep_last"``: what to do
        when ``out`` holds more than one finished row for a task. By default the
        sweep stops with their line numbers; otherwise the one kept stays and the
        others move to the sidecar ``out.rejected`` (as do unreadable lines,
        always, with a warning).

    Returns
    -------
    rows : one dict per task in grid order (configurations, then seeds): the
        config columns, ``seed``, ``root_seed``, the metrics, ``runtime_s``
        (seconds inside ``task_fn``), ``code`` (:func:`sources_hash` of the
        task's package in the worker), ``status`` ('ok' or 'error') and ``error``.
    """
    if not callable(task_fn):
        raise ValueError(f"task_fn: expected a function (config, rng) -> dict, got {task_fn!r}")
    on_conflict = on_conflict.replace("-", "_") if isinstance(on_conflict, str) else on_conflict
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict: expected one of {ON_CONFLICT}, got {on_conflict!r}")
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
        rows, rewritten = _resume(out, list(grid), set(keys), root_seed, on_conflict)
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


SWEEP_API = ("task", "add_arguments", "grid", "summary")


def load_task(root: Path, name: str):
    """``experiments/<name>/sweep.py`` imported as ``experiments.<name>.sweep``.

    It defines ``task(config, rng) -> dict``, ``add_arguments(parser)``,
    ``grid(args) -> dict`` and ``summary(rows) -> str``. The checkout goes on
    ``sys.path`` so that ``task`` is pickled by reference and a spawned (or Dask)
    worker imports the same module.
    """
    file = Path(root) / "experiments" / name / "sweep.py"
    if not file.is_file():
        raise FileNotFoundError(f"NAME: experiments/{name} defines no sweep (no sweep.py)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"experiments.{name}.sweep")
    missing = [f for f in SWEEP_API if not callable(getattr(module, f, None))]
    if missing:
        raise AttributeError(f"experiments/{name}/sweep.py: missing function(s) {missing}")
    return module
