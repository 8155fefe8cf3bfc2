"""Plain-text tables of ``sandbox check``: one row per check, over seeds, failures named."""

from __future__ import annotations

import math

from sandbox.checks import _fmt
from sandbox.seeds import format_seeds

#: How many failing seeds a row names before it says how many more there are.
SHOWN_FAILURES = 8


def fmt_value(x) -> str:
    """A measured value as the tables print it: ``0.6712``, ``true``, ``NaN``, ``inf``."""
    if isinstance(x, bool):
        return str(x).lower()
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x in ("inf", "-inf"):  # an infinite value as calibration.json stores it
        return x
    return _fmt(x)


def value_range(values: list) -> str:
    """``lo .. hi`` over the finite values, and how many were NaN or infinite."""
    if values and all(isinstance(x, bool) for x in values):
        return ",".join(sorted({str(x).lower() for x in values}))
    finite = [x for x in values if x is not None and math.isfinite(x)]
    bad = len(values) - len(finite)
    text = ""
    if finite:
        lo, hi = min(finite), max(finite)
        text = _fmt(lo) if lo == hi else f"{_fmt(lo)} .. {_fmt(hi)}"
    if bad:
        kinds = sorted({fmt_value(x) for x in values if x is None or not math.isfinite(x)})
        text += f"{' + ' if text else ''}{bad} {'/'.join(kinds)}"
    return text


def failures(pairs: list[tuple[int, object]]) -> str:
    """``seed 3: 0.67, seed 17: NaN`` for the first :data:`SHOWN_FAILURES`, then a count."""
    shown = ", ".join(f"seed {s}: {fmt_value(x)}" for s, x in pairs[:SHOWN_FAILURES])
    more = len(pairs) - SHOWN_FAILURES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def seed_table(name: str, recs: list, *, calibrated: dict | None = None, note: str = "") -> str:
    """One row per check: expected, measured range over seeds, passes, the seeds that failed.

    Parameters
    ----------
    recs : :class:`sandbox.runner.RunRecord` of one experiment, one per seed, same checks.
    calibrated : ``{quantity: text}`` from the calibration record, for an extra column;
        ``None`` leaves the column out.
    """
    recs = sorted(recs, key=lambda r: r.seed)
    seeds = [r.seed for r in recs]
    rows = []
    for i, v0 in enumerate(recs[0].verdicts):
        vals = [r.verdicts[i].measured for r in recs]
        failed = [(r.seed, r.verdicts[i].measured) for r in recs if not r.verdicts[i].passed]
        npass = len(recs) - len(failed)
        verdict = f"{'PASS' if not failed else 'FAIL'} {npass}/{len(recs)}"
        row = [v0.check.quantity, v0.check.expected(), value_range(vals), verdict]
        if calibrated is not None:
            row.append(calibrated.get(v0.check.quantity, "none"))
        row.append(failures(failed) if failed else "")
        rows.append(tuple(row))
    head = ["quantity", "expected", f"measured (seeds {format_seeds(seeds)})", "verdict"]
    if calibrated is not None:
        head.append("calibrated range")
    head.append("failing seeds: value")
    if not any(r[-1] for r in rows):  # nothing failed: no empty column
        rows = [r[:-1] for r in rows]
        head = head[:-1]
    runtime = max(r.runtime_s for r in recs)
    title = f"== {name} ({recs[0].mode}; slowest seed {runtime:.1f} s){note}"
    return "\n".join([title, *table(rows, tuple(head))])
