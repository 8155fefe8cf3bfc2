"""The calibration record ``experiments/<name>/calibration.json``: its stamp, content and checks.

One section per mode (``quick``, ``full``), each stamped with hashes of
``expected.toml`` and of the experiment's own ``*.py`` files (:func:`stamp`), and
holding per check: the bound, the feasible range, min / 1st percentile / median /
99th percentile / max over the seeds, the failing seeds, the margin in robust SDs
and the estimated false-failure rate with its method (:mod:`sandbox.tails`).
:func:`record_problems` says when a record no longer vouches for the checks
(missing, stale, or a bound changed); :func:`target_problems` when it misses the
policy (a failing seed, a rate not below ``1e-4``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

from sandbox.checks import Check
from sandbox.errors import ExperimentError
from sandbox.registry import Experiment
from sandbox.report import fmt_value, table
from sandbox.seeds import format_seeds
from sandbox.tails import TARGET, false_failure_rate, robust_sd

RECORD = "calibration.json"
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
        out[e.get("quantity")] = f"{span} (seeds {sec.get('seeds')}){stale}"
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
