"""What the site says about each check: the published full run and the calibration record.

``results_full.json`` is the published full-mode run (``sandbox run NAME --full --publish``);
``calibration.json`` is the several-seed record of ``sandbox calibrate`` (quick mode over many
seeds, full mode over a few), absent until an experiment is calibrated. A record is *stale* for
a check when ``expected.toml`` changed after it was written (its stamp) or the check's bound
differs from the bound that was calibrated.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.checks import BOUND_KEYS, MODES, Check
from sandbox.registry import Experiment

RAW_BOUND_KEYS = (*BOUND_KEYS, "equals", "close_to", "rtol", "atol")


@dataclass
class Calibrated:
    """One check's line of a calibration record, in one mode, and what the site makes of it."""

    mode: str
    status: str  # "pass", "fail", "stale", "missing"
    note: str
    entry: dict = field(default_factory=dict)

    @property
    def range(self) -> str:
        e = self.entry
        if not e or e.get("min") is None:
            return ""
        lo, med, hi = (_num(e.get(k)) for k in ("min", "median", "max"))
        return f"{lo} .. {hi} (median {med})"

    @property
    def seeds(self) -> str:
        e = self.entry
        if not e:
            return ""
        n, n_fail = e.get("n", 0), e.get("n_fail", 0)
        return f"{n - n_fail}/{n}"

    @property
    def margin(self) -> str:
        sd = self.entry.get("margin_sd")
        return "" if sd is None else f"{sd:.1f}"

    @property
    def false_failure_rate(self) -> str:
        rate = self.entry.get("false_failure_rate")
        return "" if rate is None else f"{rate:.1g}"


@dataclass
class CheckRow:
    """A ``[[check]]`` of ``expected.toml`` with its published verdict and calibration."""

    check: Check
    full_measured: str = ""
    full_passed: bool | None = None  # None: not checked in the published run
    calibration: dict[str, Calibrated] = field(default_factory=dict)

    @property
    def modes(self) -> str:
        return ", ".join(self.check.modes)


@dataclass
class ExperimentRecord:
    exp: Experiment
    results: dict | None
    calibration: dict | None
    rows: list[CheckRow]
    problems: list[str]  # what a reader should know: unreadable files, a stale record

    @property
    def name(self) -> str:
        return self.exp.name

    @property
    def published_passed(self) -> bool | None:
        return None if self.results is None else bool(self.results.get("passed"))

    @property
    def published_summary(self) -> str:
        if self.results is None:
            return "no published full run"
        checks = self.results.get("checks", [])
        ok = sum(bool(c.get("passed")) for c in checks)
        runtime = self.results.get("runtime_s")
        took = f", {runtime:.0f} s" if isinstance(runtime, int | float) else ""
        seed = self.results.get("seed", 0)
        return f"{ok}/{len(checks)} checks pass in the published full run (seed {seed}{took})"

    @property
    def calibration_summary(self) -> str:
        if self.calibration is None:
            return "not calibrated yet"
        parts = []
        for mode in MODES:
            sec = self.calibration.get(mode)
            if not isinstance(sec, dict):
                continue
            cal = [r.calibration[mode] for r in self.rows if mode in r.calibration]
            fails = sum(c.status == "fail" for c in cal)
            stale = sum(c.status in ("stale", "missing") for c in cal)
            text = f"{mode}: seeds {sec.get('seeds', '?')}, "
            text += f"{fails} check(s) failed" if fails else "every check held"
            if stale:
                text += f", {stale} not covered by the record (changed since)"
            parts.append(text)
        return "calibrated; " + "; ".join(parts) if parts else "not calibrated yet"


def _num(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e6):
        return f"{x:g}"
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)


def _read_json(path: Path, problems: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        problems.append(f"{path.name} could not be read: {err}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name} is not a JSON object")
        return None
    return data


def expected_stamp(folder: Path) -> str:
    """The calibration stamp of ``expected.toml``: its SHA-256, first 16 hex digits."""
    return hashlib.sha256((folder / "expected.toml").read_bytes()).hexdigest()[:16]


def raw_bound(check: Check) -> dict:
    """The comparison keys of ``check`` as ``expected.toml`` states them."""
    out = {}
    for key in RAW_BOUND_KEYS:
        val = getattr(check, key)
        if val is None or (key in ("rtol", "atol") and not val):
            continue
        out[key] = val
    return out


def _same_bound(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(
        a[k] == b[k] or (isinstance(a[k], float | int) and math.isclose(a[k], b[k])) for k in a
    )


def _calibrated(check: Check, mode: str, section: dict, stamp_ok: bool) -> Calibrated:
    entries = [e for e in section.get("checks", []) if e.get("quantity") == check.quantity]
    match = [e for e in entries if e.get("expected") == check.expected()] or entries
    if not match:
        return Calibrated(mode, "missing", "not in the calibration record")
    entry = match[0]
    if "bound" in entry and not _same_bound(entry["bound"], raw_bound(check)):
        return Calibrated(mode, "stale", "the bound changed after calibration", entry)
    if not stamp_ok:
        return Calibrated(mode, "stale", "expected.toml changed after calibration", entry)
    if entry.get("n_fail", 0):
        return Calibrated(mode, "fail", f"failed on {entry['n_fail']} of {entry.get('n')}", entry)
    return Calibrated(mode, "pass", f"held on every seed ({section.get('seeds', '?')})", entry)


def load_record(exp: Experiment) -> ExperimentRecord:
    """Everything the site shows about ``exp``'s checks, from its published files."""
    problems: list[str] = []
    results = _read_json(exp.path / "results_full.json", problems)
    calibration = _read_json(exp.path / "calibration.json", problems)
    published = {}
    if results is not None:
        for c in results.get("checks", []):
            published.setdefault(c.get("quantity"), []).append(c)
    stamp = expected_stamp(exp.path)
    rows = []
    for check in exp.checks:
        row = CheckRow(check)
        if "full" in check.modes:
            hits = published.get(check.quantity, [])
            hit = next((c for c in hits if c.get("expected") == check.expected()), None)
            if hit is None and hits:
                hit = hits[0]
            if hit is not None:
                row.full_measured = _num(hit.get("measured"))
                row.full_passed = bool(hit.get("passed"))
        if calibration is not None:
            for mode in check.modes:
                section = calibration.get(mode)
                if isinstance(section, dict):
                    ok = (section.get("stamp") or {}).get("expected.toml") in (None, stamp)
                    row.calibration[mode] = _calibrated(check, mode, section, ok)
        rows.append(row)
    stale = {
        c.note for r in rows for c in r.calibration.values() if c.status in ("stale", "missing")
    }
    problems += [f"calibration.json: {note}" for note in sorted(stale)]
    return ExperimentRecord(exp, results, calibration, rows, problems)


def quantities_table(results: dict | None) -> list[tuple[str, str]]:
    """The scalar quantities of the published full run, as ``(name, value)``."""
    if results is None:
        return []
    return [(k, _num(v)) for k, v in results.get("quantities", {}).items()]
