"""``sandbox calibrate``: every check of an experiment over hundreds of seeds, and its record.

Five seeds say little about the tail of a quick-mode quantity. Calibration runs
an experiment on many seeds (``--seeds 0-199`` by default), and prints for each
check its bound; the min, 1st percentile, median, 99th percentile and max over
the seeds; how many seeds failed; the margin between the bound and the nearest
extreme in robust SDs (``1.4826 MAD``); and the estimated false-failure rate per
fresh seed with the method that gave it (:mod:`sandbox.tails`).

The record is saved as ``experiments/<name>/calibration.json`` (one section
per mode, ``quick`` and/or ``full``), stamped with hashes of ``expected.toml``
and of the experiment's own ``*.py`` files (:func:`stamp`). Review reads it; the
completeness tests compare it with ``expected.toml`` and the code; ``sandbox
check --calibrated`` prints its ranges beside the measured ones.

Each seed runs in a worker process (:mod:`sandbox.workers`): a seed that
raises, exits or dies is recorded as an error, never as a pass. Each finished
seed is appended at once to ``experiments/<name>/output/calibration-<mode>.jsonl``
with the stamp, so an interrupted calibration resumes where it stopped; rows
of another stamp (older code or bounds) are ignored, never mixed in.

Exit status: 0 when every check held on every seed (and, in quick mode, every
estimated rate is below :data:`sandbox.tails.TARGET`), 1 otherwise, 2 when a
seed or an experiment ended in an error.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sandbox.checks import MODES, Check
from sandbox.errors import ExperimentError
from sandbox.registry import Experiment, select
from sandbox.report import fmt_value, table
from sandbox.runner import Failure, Job, run_job, write_json_atomic
from sandbox.seeds import format_seeds
from sandbox.tails import TARGET, false_failure_rate, robust_sd
from sandbox.workers import run_isolated

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; one calibration per experiment is on the user
    fcntl = None

RECORD = "calibration.json"
DEFAULT_SEEDS = {"quick": "0-199", "full": "0-2"}
SHOWN_FAILED = 20  # failing seeds listed in the record (n_fail counts them all)


# ---------------------------------------------------------------- the stamp and the record


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def stamp(folder: Path) -> dict:
    """``{"expected.toml": h, "code": h}``: SHA-256 (first 16 hex digits) of ``expected.toml``'s
    bytes, and of every ``*.py`` in the folder, sorted by name, as ``name NUL bytes NUL``."""
    folder = Path(folder)
    code = hashlib.sha256()
    for f in sorted(folder.glob("*.py"), key=lambda p: p.name):
        code.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return {
        "expected.toml": _sha((folder / "expected.toml").read_bytes()),
        "code": code.hexdigest()[:16],
    }


def load_record(folder: Path) -> dict | None:
    """The calibration record of an experiment folder, ``None`` when there is none."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ExperimentError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise ExperimentError(f"{path}: expected a JSON object")
    return record


def _same_number(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b)


def _feasible_json(check: Check):
    if check.feasible is None:
        return None
    return [x if math.isfinite(x) else None for x in check.feasible]


def record_problems(exp: Experiment, mode: str = "quick") -> list[str]:
    """Why the ``mode`` section of ``exp``'s calibration record does not vouch for its checks.

    Empty when the record exists, its stamp matches ``expected.toml`` and the
    experiment's code, and it holds exactly the checks of ``mode`` with their
    current bounds and feasible ranges.
    """
    fix = f"run `sandbox calibrate {exp.name}{' --full' if mode == 'full' else ''}`"
    try:
        record = load_record(exp.path)
    except ExperimentError as err:
        return [f"{err}; {fix}"]
    if record is None:
        return [f"{RECORD} is missing: {fix}"]
    sec = record.get(mode)
    if not isinstance(sec, dict):
        return [f"{RECORD} has no '{mode}' section: {fix}"]
    found = []
    now, then = stamp(exp.path), sec.get("stamp") or {}
    if then.get("expected.toml") != now["expected.toml"]:
        found.append(f"expected.toml changed since the {mode} calibration: {fix}")
    if then.get("code") != now["code"]:
        found.append(f"the experiment's *.py files changed since the {mode} calibration: {fix}")
    entries = {e.get("quantity"): e for e in sec.get("checks", []) if isinstance(e, dict)}
    checks = [c for c in exp.checks if mode in c.modes]
    for c in checks:
        e = entries.get(c.quantity)
        if e is None:
            found.append(f"the check of '{c.quantity}' has no {mode} calibration: {fix}")
            continue
        bound, recorded = c.bound(), e.get("bound") or {}
        if set(bound) != set(recorded) or not all(
            _same_number(bound[k], recorded[k]) for k in bound
        ):
            found.append(
                f"the bound of '{c.quantity}' is {c.expected()} but was calibrated as "
                f"{e.get('expected')!r}: {fix}"
            )
        if e.get("feasible") != _feasible_json(c):
            found.append(f"the feasible range of '{c.quantity}' changed since the calibration")
    extra = sorted(set(entries) - {c.quantity for c in checks})
    if extra:
        found.append(f"{RECORD} calibrates {extra}, which expected.toml does not check in {mode}")
    return found


def target_problems(exp: Experiment, mode: str = "quick") -> list[str]:
    """Checks of a (fresh) record that miss the policy: a failing seed, an error, a rate
    at or above :data:`sandbox.tails.TARGET` (quick mode only)."""
    record = load_record(exp.path) or {}
    sec = record.get(mode) or {}
    found = []
    if sec.get("n_errors"):
        found.append(f"{sec['n_errors']} seeds ended in an error during the {mode} calibration")
    for e in sec.get("checks", []):
        q = e.get("quantity")
        if e.get("n_fail"):
            found.append(f"'{q}' failed on {e['n_fail']} of {e.get('n')} seeds ({mode})")
        rate = e.get("false_failure_rate")
        if mode == "quick" and (rate is None or rate >= TARGET):
            found.append(
                f"'{q}': estimated false-failure rate {rate} per seed is not below {TARGET:g} "
                f"({e.get('method')})"
            )
    return found


def calibrated_ranges(exp: Experiment, mode: str) -> dict[str, str] | None:
    """``{quantity: "min .. max (N seeds)"}`` from the record, for ``sandbox check --calibrated``;
    ``None`` without a record. A stale record is marked so."""
    try:
        record = load_record(exp.path)
    except ExperimentError:
        return None
    sec = (record or {}).get(mode)
    if not isinstance(sec, dict):
        return None
    stale = " (stale)" if record_problems(exp, mode) else ""
    out = {}
    for e in sec.get("checks", []):
        lo, hi = e.get("min"), e.get("max")
        span = fmt_value(lo) if lo == hi else f"{fmt_value(lo)} .. {fmt_value(hi)}"
        out[e.get("quantity")] = f"{span} ({sec.get('seeds')}){stale}"
    return out


# ---------------------------------------------------------------- statistics of one check


def _r(x, digits: int = 6):
    """A float rounded to ``digits`` significant digits (keeps the record small and readable)."""
    if x is None or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def summarize(check: Check, pairs: list[tuple[int, object]]) -> dict:
    """The record of one check over seeds; ``pairs`` is ``[(seed, value), ...]`` (``None`` for NaN).

    ``n_nan`` counts the seeds whose value was NaN or infinite (they fail every
    check); the percentiles are over the others. ``margin_sd`` is the distance from
    the nearest bound to the nearest extreme in robust SDs, ``None`` for booleans or
    when the robust SD is 0; it is negative when the sample crosses the bound.
    """
    values = [v for _, v in pairs]
    is_bool = bool(values) and all(isinstance(v, bool) for v in values)
    x = np.array([math.nan if v is None else float(v) for v in values])
    finite = x[np.isfinite(x)]
    failed = [
        (s, v) for s, v in pairs if not check.passes(math.nan if v is None else v)
    ]  # NaN and inf fail every check
    stats = [None] * 5
    if finite.size:
        stats = [_r(float(q)) for q in np.percentile(finite, [0, 1, 50, 99, 100])]
    margin = None
    sd = robust_sd(finite) if finite.size else 0.0
    lower, upper = check.sides()
    if not is_bool and sd > 0:
        margins = []
        if lower is not None:
            margins.append((finite.min() - lower[0]) / sd)
        if upper is not None:
            margins.append((upper[0] - finite.max()) / sd)
        margin = _r(float(min(margins)), 3) if margins else None
    rate_values = values if is_bool else list(x)
    rate, method = false_failure_rate(
        rate_values,
        None if lower is None else lower[0],
        None if upper is None else upper[0],
        n_fail=len(failed),
    )
    return {
        "quantity": check.quantity,
        "expected": check.expected(),
        "bound": check.bound(),
        "feasible": _feasible_json(check),
        "n": len(values),
        "n_nan": int(len(values) - finite.size),
        "min": stats[0],
        "p01": stats[1],
        "median": stats[2],
        "p99": stats[3],
        "max": stats[4],
        "n_fail": len(failed),
        "failed": [[s, _json_value(v)] for s, v in failed[:SHOWN_FAILED]],
        "margin_sd": margin,
        "false_failure_rate": _r(rate, 3),
        "method": method,
    }


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def section(exp: Experiment, mode: str, seeds: list[int], rows: dict, st: dict) -> dict:
    """The ``mode`` section of the record from the per-seed rows (``{seed: row}``)."""
    ok = [s for s in seeds if rows.get(s, {}).get("status") == "ok"]
    errors = [[s, rows[s].get("error")] for s in seeds if s in rows and s not in ok]
    runtimes = [rows[s]["runtime_s"] for s in ok]
    checks = []
    for c in exp.checks:
        if mode in c.modes:
            checks.append(summarize(c, [(s, rows[s]["quantities"].get(c.quantity)) for s in ok]))
    sec = {
        "stamp": st,
        "seeds": format_seeds(seeds),
        "n_seeds": len(seeds),
        "created": datetime.date.today().isoformat(),
        "environment": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "runtime_s": {
            "median": _r(float(np.median(runtimes)), 3),
            "max": _r(float(np.max(runtimes)), 3),
            "total": _r(float(np.sum(runtimes)), 4),
        },
        "checks": checks,
    }
    if errors:
        sec["n_errors"] = len(errors)
        sec["errors"] = errors[:SHOWN_FAILED]
    return sec


def _short(method: str) -> str:
    for prefix, name in (
        ("identical", "identical"),
        ("binomial", "binomial"),
        ("max(normal", "tail fit"),
        ("normal tail", "normal only"),
    ):
        if method.startswith(prefix):
            return name
    return method.split(":")[0]


def format_section(name: str, mode: str, sec: dict) -> str:
    """The calibration table as ``sandbox calibrate`` prints it, and each check's method."""
    rows = []
    for e in sec["checks"]:
        margin = "" if e["margin_sd"] is None else f"{e['margin_sd']:.1f}"
        rate = e["false_failure_rate"]
        flag = " !" if e["n_fail"] or (mode == "quick" and rate >= TARGET) else ""
        rows.append(
            (
                e["quantity"],
                e["expected"],
                *(fmt_value(e[k]) for k in ("min", "p01", "median", "p99", "max")),
                f"{e['n_fail']}" + (f" ({e['n_nan']} NaN)" if e["n_nan"] else ""),
                margin,
                f"{rate:.2g}{flag}",
                _short(e["method"]),
            )
        )
    head = (
        "quantity",
        "bound",
        "min",
        "p01",
        "median",
        "p99",
        "max",
        "fails",
        "margin (SD)",
        "false-fail/seed",
        "method",
    )
    rt = sec["runtime_s"]
    lines = [
        f"== {name} ({mode}; seeds {sec['seeds']}; runtime per seed median {rt['median']:g} s, "
        f"max {rt['max']:g} s, total {rt['total']:g} s)",
        *table(rows, head),
    ]
    for e in sec["checks"]:
        lines.append(f"  {e['quantity']}: {e['method']}")
        if e["failed"]:
            shown = ", ".join(f"seed {s}: {fmt_value(v)}" for s, v in e["failed"])
            lines.append(f"    failing seeds: {shown}")
    for s, err in sec.get("errors", []):
        lines.append(f"  error on seed {s}: {err}")
    if mode == "quick":
        lines.append(f"  ('!': a seed failed or the rate is not below the target {TARGET:g})")
    return "\n".join(lines)


# ---------------------------------------------------------------- per-seed rows, resumable


def rows_path(exp: Experiment, mode: str) -> Path:
    return exp.path / "output" / f"calibration-{mode}.jsonl"


def read_rows(path: Path, st: dict, mode: str) -> tuple[dict[int, dict], int]:
    """The ``'ok'`` rows of ``path`` made under stamp ``st``, by seed; and the number of lines
    that could not be read (a torn last line after a crash)."""
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
            and row.get("stamp") == st
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
