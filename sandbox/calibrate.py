"""``sandbox calibrate``: every check of an experiment over hundreds of seeds, and its record.

Five seeds say little about the tail of a quick-mode quantity. Calibration runs
an experiment on many seeds (``--seeds 0-199`` by default), and prints for each
check its bound; the min, 1st percentile, median, 99th percentile and max over
the seeds; how many seeds failed; the margin between the bound and the nearest
extreme in robust SDs (``1.4826 MAD``); and the estimated false-failure rate per
fresh seed with the method that gave it (:mod:`sandbox.tails`).

The record is saved as ``experiments/<name>/calibration.json`` (one section
per mode, ``quick`` and/or ``full``), stamped with hashes of ``expected.toml``
and of the experiment's own ``*.py`` files (:mod:`sandbox.record`). Review
reads it; the completeness tests compare it with ``expected.toml`` and the
code; ``sandbox check --calibrated`` prints its ranges beside the measured ones.

Each seed runs in a worker process (:mod:`sandbox.workers`): a seed that
raises, exits or dies is recorded as an error, never as a pass. Each finished
seed is appended at once to ``experiments/<name>/output/calibration-<mode>.jsonl``
with the stamp, so an interrupted calibration resumes where it stopped; rows
made by other code are ignored, never mixed in. Rows made by the same code under
other bounds are reused: the measured quantities do not depend on the bounds, so
an edited bound is re-judged on the same seeds without running them again.

Exit status: 0 when every check held on every seed (and, in quick mode, every
estimated rate is below :data:`sandbox.tails.TARGET`), 1 otherwise, 2 when a
seed or an experiment ended in an error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.checks import MODES
from sandbox.errors import ExperimentError
from sandbox.record import RECORD, format_section, load_record, section, stamp
from sandbox.registry import Experiment, select
from sandbox.runner import Failure, Job, run_job, write_json_atomic
from sandbox.seeds import format_seeds
from sandbox.tails import TARGET
from sandbox.workers import run_isolated

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; one calibration per experiment is on the user
    fcntl = None

DEFAULT_SEEDS = {"quick": "0-199", "full": "0-2"}


# ---------------------------------------------------------------- per-seed rows, resumable


def rows_path(exp: Experiment, mode: str) -> Path:
    return exp.path / "output" / f"calibration-{mode}.jsonl"


def read_rows(path: Path, st: dict, mode: str) -> tuple[dict[int, dict], int]:
    """The ``'ok'`` rows of ``path`` made by the code of stamp ``st`` (any ``expected.toml``),
    by seed; and the number of lines that could not be read (a torn last line after a crash)."""
    if not path.is_file():
        return {}, 0
    done, bad = {}, 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if (
            isinstance(row, dict)
            and isinstance(row.get("stamp"), dict)
            and row["stamp"].get("code") == st["code"]
            and row.get("mode") == mode
            and row.get("status") == "ok"
            and isinstance(row.get("seed"), int)
            and isinstance(row.get("quantities"), dict)
        ):
            done[row["seed"]] = row
    return done, bad


def _open_rows(path: Path):
    """Open the rows file for appending, under an exclusive lock, on a fresh line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+b")  # closed by the caller
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ExperimentError(
                f"another calibration is writing {path}; wait for it to finish"
            ) from None
    fh.seek(0, 2)
    if fh.tell():
        fh.seek(-1, 2)
        if fh.read(1) != b"\n":  # a torn last line: keep it apart from the next row
            fh.write(b"\n")
    return fh


def _append(fh, row: dict) -> None:
    fh.write((json.dumps(row) + "\n").encode())
    fh.flush()
    with contextlib.suppress(OSError):
        os.fsync(fh.fileno())


# ---------------------------------------------------------------- the command


class _Meter:
    """``done/total, elapsed, ETA`` on stderr: in place on a terminal, else every 10 s."""

    def __init__(self, total: int, resumed: int):
        self.total, self.done, self.resumed, self.errors = total, resumed, resumed, 0
        self.t0, self.last = time.perf_counter(), -math.inf
        self.tty = sys.stderr.isatty()

    def update(self, *, error: bool, force: bool = False) -> None:
        self.done += 1
        self.errors += error
        now = time.perf_counter()
        if not force and now - self.last < (1.0 if self.tty else 10.0) and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.t0
        new = self.done - self.resumed
        eta = elapsed / new * (self.total - self.done) if new else math.nan
        line = (
            f"calibrate: {self.done}/{self.total} seeds"
            + (f" ({self.resumed} resumed)" if self.resumed else "")
            + (f", {self.errors} errors" if self.errors else "")
            + f", {elapsed:.0f} s elapsed, ETA {_duration(eta)}"
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
        if self.tty and self.done >= self.total:
            print(file=sys.stderr)
        sys.stderr.flush()


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


@dataclass
class _Plan:
    exp: Experiment
    stamp: dict
    path: Path
    rows: dict  # seed -> row
    todo: list
    fh: object = None
    errors: list = field(default_factory=list)


def _row(plan: _Plan, mode: str, seed: int, outcome) -> dict:
    row = {"stamp": plan.stamp, "mode": mode, "seed": seed}
    value = outcome.value if outcome.ok else None
    if outcome.ok and not isinstance(value, Failure):
        return {
            **row,
            "status": "ok",
            "quantities": value.quantities,
            "runtime_s": value.runtime_s,
            "error": None,
        }
    if isinstance(value, Failure):
        error = value.message
    else:
        error = outcome.error if outcome.died else f"an exception: {outcome.error}"
    return {**row, "status": "error", "quantities": None, "runtime_s": None, "error": error}


def _finish(plan: _Plan, mode: str, seeds: list[int]) -> tuple[dict | None, str]:
    """Write the record's ``mode`` section and return it with the printed table."""
    exp = plan.exp
    if not any(plan.rows.get(s, {}).get("status") == "ok" for s in seeds):
        return None, ""
    sec = section(exp, mode, seeds, plan.rows, plan.stamp)
    old = {}
    with contextlib.suppress(ExperimentError):
        old = load_record(exp.path) or {}
    record = {"experiment": exp.name}
    for m in MODES:
        if m == mode:
            record[m] = sec
        elif isinstance(old.get(m), dict):
            record[m] = old[m]
    try:
        write_json_atomic(exp.path / RECORD, record)
    except OSError as err:
        raise ExperimentError(f"cannot write {exp.path / RECORD}: {err.strerror or err}") from None
    return sec, format_section(exp.name, mode, sec)


def cmd_calibrate(args) -> int:
    from sandbox.cli import share_cores
    from sandbox.seeds import parse_seeds

    if args.jobs < 1:
        raise ExperimentError(f"--jobs: expected a positive number of processes, got {args.jobs}")
    mode = "full" if args.full else "quick"
    seeds = args.seeds if args.seeds is not None else parse_seeds(DEFAULT_SEEDS[mode])
    exps, errors = select(args.root, args.names, args.all)
    plans = []
    for exp in exps:
        if not any(mode in c.modes for c in exp.checks):
            errors[exp.name] = f"no check in expected.toml applies in {mode} mode"
            continue
        st, path = stamp(exp.path), rows_path(exp, mode)
        done, bad = read_rows(path, st, mode)
        rows = {s: done[s] for s in seeds if s in done}
        plan = _Plan(exp, st, path, rows, [s for s in seeds if s not in rows])
        if rows:
            print(
                f"{exp.name}: resuming; {len(rows)} of {len(seeds)} seeds are in {path}",
                file=sys.stderr,
            )
        if bad:
            print(f"{exp.name}: {bad} unreadable line(s) in {path} ignored", file=sys.stderr)
        plans.append(plan)
    failing, outcome_errors, printed = [], [], False
    try:
        for plan in plans:
            if plan.todo:
                plan.fh = _open_rows(plan.path)
        jobs = [(p, Job(args.root, p.exp.name, mode == "quick", s)) for p in plans for s in p.todo]
        meter = _Meter(len(seeds) * len(plans), sum(len(p.rows) for p in plans))
        left = {p.exp.name: len(p.todo) for p in plans}

        def finish(plan):
            nonlocal printed
            sec, text = _finish(plan, mode, seeds)
            if sec is None:
                errors[plan.exp.name] = "no seed ran without an error"
            else:
                print(("\n" if printed else "") + text, flush=True)
                printed = True
                for e in sec["checks"]:
                    if e["n_fail"] or (mode == "quick" and e["false_failure_rate"] >= TARGET):
                        failing.append(f"{plan.exp.name}.{e['quantity']}")
            errs = [(s, r["error"]) for s, r in plan.rows.items() if r["status"] != "ok"]
            outcome_errors.extend((plan.exp.name, s, err) for s, err in sorted(errs))

        for plan in plans:
            if not plan.todo:
                finish(plan)
        processes = min(args.jobs, max(1, len(jobs)))
        for i, outcome in run_isolated(
            run_job,
            [job for _, job in jobs],
            processes=processes,
            initializer=share_cores,
            initargs=(args.jobs,),
        ):
            plan, job = jobs[i]
            row = _row(plan, mode, job.seed, outcome)
            _append(plan.fh, row)
            plan.rows[job.seed] = row
            meter.update(error=row["status"] != "ok")
            left[plan.exp.name] -= 1
            if left[plan.exp.name] == 0:
                finish(plan)
    except KeyboardInterrupt:
        print(
            "\ncalibrate: interrupted; the finished seeds are saved and the same command resumes",
            file=sys.stderr,
        )
        raise
    finally:
        for plan in plans:
            if plan.fh is not None:
                plan.fh.close()
    for name, s, err in outcome_errors:
        print(f"sandbox: error: {name} (seed {s}): {err}", file=sys.stderr)
    for name, err in errors.items():
        text = err if err.startswith(name) else f"{name}: {err}"
        print(f"sandbox: error: {text}", file=sys.stderr)
    print(
        f"\ncalibrated {len(plans) - sum(p.exp.name in errors for p in plans)} experiment(s) "
        f"on seeds {format_seeds(seeds)}: {len(failing)} check(s) failing or above the "
        f"target, {len(outcome_errors) + len(errors)} error(s)"
    )
    if failing:
        print("above the target or failing: " + ", ".join(failing))
    if errors or outcome_errors:
        return 2
    return 1 if failing else 0
