"""Declarative expected-output checks.

Each ``[[check]]`` table in ``expected.toml`` names one scalar quantity that
``run()`` returns, one comparison, and the reason for its bound::

    [[check]]
    quantity = "rate_ratio_widest"
    at_least = 0.8
    at_most = 1.25
    reason = "the fitted slope matches 2 ln(1 - eta lam_min(H)) within 20%: ..."

Comparisons: ``at_least`` / ``at_most`` (either or both), ``greater_than`` /
``less_than``, ``equals`` (a number or a boolean), ``close_to`` with ``rtol``
and/or ``atol``. ``modes = ["quick"]`` or ``["full"]`` limits a check to one
mode (default: both).

``feasible = [lo, hi]`` (optional; TOML ``inf`` / ``-inf`` allowed) states the
physically possible range of the quantity, whatever the dynamics do: ``[0, 1]``
for a fraction, ``[0, inf]`` for a loss ratio, or what the sizes of the run
force (a width ratio that the grid and ``lam0 <= 1/2`` keep above ``10.06``).
A bound that every feasible value passes tests nothing (:meth:`Check.can_fail`
is false, and the completeness test says so); bounds that no feasible value
passes are an error here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from sandbox.errors import ExperimentError

BOUND_KEYS = ("at_least", "at_most", "greater_than", "less_than")
ALL_KEYS = {
    "quantity",
    "reason",
    "modes",
    "equals",
    "close_to",
    "rtol",
    "atol",
    "feasible",
    *BOUND_KEYS,
}
MODES = ("quick", "full")


@dataclass(frozen=True)
class Check:
    quantity: str
    reason: str
    modes: tuple[str, ...]
    at_least: float | None = None
    at_most: float | None = None
    greater_than: float | None = None
    less_than: float | None = None
    equals: float | bool | None = None
    close_to: float | None = None
    rtol: float = 0.0
    atol: float = 0.0
    feasible: tuple[float, float] | None = None

    def bound(self) -> dict:
        """The raw comparison keys of the check, e.g. ``{"at_least": 0.8, "at_most": 1.25}``."""
        keys = ("equals", "close_to", "rtol", "atol", *BOUND_KEYS)
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.close_to is None:
            out.pop("rtol"), out.pop("atol")
        return out

    def sides(self) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
        """The passing interval of a numeric check as ``(lower, upper)``, each ``(value, strict)``
        or ``None`` when unbounded on that side. A boolean ``equals`` has no sides."""
        if isinstance(self.equals, bool):
            return None, None
        if self.equals is not None:
            return (self.equals, False), (self.equals, False)
        if self.close_to is not None:
            tol = self.atol + self.rtol * abs(self.close_to)
            return (self.close_to - tol, False), (self.close_to + tol, False)
        lows = [(getattr(self, k), k == "greater_than") for k in ("at_least", "greater_than")]
        highs = [(getattr(self, k), k == "less_than") for k in ("at_most", "less_than")]
        lows = [b for b in lows if b[0] is not None]
        highs = [b for b in highs if b[0] is not None]
        lower = max(lows) if lows else None  # at equal values the strict one is tighter
        upper = min(highs, key=lambda b: (b[0], not b[1])) if highs else None
        return lower, upper

    def can_fail(self) -> bool:
        """Whether some value inside ``feasible`` fails the check (True without ``feasible``).

        A check that every feasible value passes is forced by algebra, not by the
        dynamics it claims to test.
        """
        if self.feasible is None or isinstance(self.equals, bool):
            return True
        flo, fhi = self.feasible
        lower, upper = self.sides()
        below = lower is not None and (lower[0] > flo or (lower[0] == flo and lower[1]))
        above = upper is not None and (upper[0] < fhi or (upper[0] == fhi and upper[1]))
        return below or above

    def expected(self) -> str:
        """The bound as a reviewer reads it, e.g. ``>= 0.8 and <= 1.25``."""
        if self.equals is not None:
            return f"== {_fmt(self.equals)}"
        if self.close_to is not None:
            tol = []
            if self.rtol:
                tol.append(f"rtol {self.rtol:g}")
            if self.atol:
                tol.append(f"atol {self.atol:g}")
            return f"~ {_fmt(self.close_to)} ({', '.join(tol)})"
        parts = []
        for key, sym in (
            ("greater_than", ">"),
            ("at_least", ">="),
            ("less_than", "<"),
            ("at_most", "<="),
        ):
            val = getattr(self, key)
            if val is not None:
                parts.append(f"{sym} {_fmt(val)}")
        return " and ".join(parts)

    def passes(self, x) -> bool:
        if isinstance(self.equals, bool):
            return isinstance(x, bool) and x == self.equals
        if isinstance(x, bool):
            x = float(x)
        if not math.isfinite(x):
            return False
        if self.equals is not None:
            return x == self.equals
        if self.close_to is not None:
            return abs(x - self.close_to) <= self.atol + self.rtol * abs(self.close_to)
        ok = True
        if self.at_least is not None:
            ok &= x >= self.at_least
        if self.at_most is not None:
            ok &= x <= self.at_most
        if self.greater_than is not None:
            ok &= x > self.greater_than
        if self.less_than is not None:
            ok &= x < self.less_than
        return bool(ok)


@dataclass(frozen=True)
class Verdict:
    check: Check
    measured: float | bool
    passed: bool


def _fmt(x) -> str:
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, numbers.Integral):
        return str(x)
    return f"{x:.4g}"


def _number(where, key, val):
    if isinstance(val, bool) or not isinstance(val, numbers.Real) or not math.isfinite(val):
        raise ExperimentError(f"{where}: '{key}' must be a finite number, got {val!r}")
    return float(val)


def _feasible(at: str, val) -> tuple[float, float]:
    if (
        not isinstance(val, list)
        or len(val) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in val)
    ):
        raise ExperimentError(
            f"{at}: 'feasible' must be [lo, hi], two numbers (inf and -inf allowed), got {val!r}"
        )
    lo, hi = float(val[0]), float(val[1])
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ExperimentError(f"{at}: 'feasible' must be [lo, hi] with lo < hi, got {val!r}")
    return lo, hi


def _check_feasible_admits_a_pass(at: str, check: Check) -> None:
    """Bounds that no feasible value passes make a check that can only fail."""
    flo, fhi = check.feasible
    lower, upper = check.sides()
    span = f"feasible [{flo:g}, {fhi:g}]"
    if lower is not None and (lower[0] > fhi or (lower[0] == fhi and lower[1])):
        raise ExperimentError(f"{at}: no feasible value passes (lower bound {lower[0]:g}, {span})")
    if upper is not None and (upper[0] < flo or (upper[0] == flo and upper[1])):
        raise ExperimentError(f"{at}: no feasible value passes (upper bound {upper[0]:g}, {span})")


def _check_bounds_admit_a_value(at: str, kw: dict) -> None:
    """Reject bounds no number satisfies: ``lower > upper``, or ``lower == upper`` with a
    strict side (``greater_than = 1`` with ``at_most = 1`` admits nothing)."""
    lows = [(kw[k], k == "greater_than") for k in ("at_least", "greater_than") if k in kw]
    highs = [(kw[k], k == "less_than") for k in ("at_most", "less_than") if k in kw]
    if not lows or not highs:
        return
    # The tightest side; at equal values the strict comparison is the tighter one.
    lo, lo_strict = max(lows)
    hi, hi_strict = min(highs, key=lambda b: (b[0], not b[1]))
    if lo > hi or (lo == hi and (lo_strict or hi_strict)):
        raise ExperimentError(
            f"{at}: the bounds admit no value (lower {'>' if lo_strict else '>='} {lo:g}, "
            f"upper {'<' if hi_strict else '<='} {hi:g})"
        )


def parse_checks(raw, *, where: str) -> list[Check]:
    """Validate the ``[[check]]`` tables; a malformed entry is a clear :class:`ExperimentError`."""
    if raw is None:
        raise ExperimentError(f"{where}: no [[check]] tables; an experiment must check something")
    if not isinstance(raw, list):
        raise ExperimentError(f"{where}: 'check' must be an array of tables ([[check]])")
    checks, seen = [], set()
    for i, entry in enumerate(raw):
        at = f"{where}, check #{i + 1}"
        if not isinstance(entry, dict):
            raise ExperimentError(f"{at}: expected a table")
        unknown = set(entry) - ALL_KEYS
        if unknown:
            raise ExperimentError(
                f"{at}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ALL_KEYS)}"
            )
        q = entry.get("quantity")
        if not isinstance(q, str) or not q:
            raise ExperimentError(f"{at}: 'quantity' must be a non-empty string")
        at = f"{where}, check of '{q}'"
        reason = entry.get("reason")
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            raise ExperimentError(f"{at}: 'reason' must say why the bound is what it is")
        modes = entry.get("modes", list(MODES))
        if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
            raise ExperimentError(
                f"{at}: 'modes' must be a non-empty list drawn from {list(MODES)}"
            )
        for m in modes:
            if (q, m) in seen:
                raise ExperimentError(
                    f"{at}: quantity checked twice in mode {m!r}; use one check with both bounds"
                )
            seen.add((q, m))
        kinds = [k for k in ("equals", "close_to") if k in entry] + (
            ["bounds"] if any(k in entry for k in BOUND_KEYS) else []
        )
        if len(kinds) != 1:
            raise ExperimentError(
                f"{at}: give exactly one of 'equals', 'close_to', or bounds {list(BOUND_KEYS)}"
            )
        kw = {"quantity": q, "reason": reason.strip(), "modes": tuple(modes)}
        if "equals" in entry:
            val = entry["equals"]
            kw["equals"] = val if isinstance(val, bool) else _number(at, "equals", val)
        elif "close_to" in entry:
            kw["close_to"] = _number(at, "close_to", entry["close_to"])
            kw["rtol"] = _number(at, "rtol", entry.get("rtol", 0.0))
            kw["atol"] = _number(at, "atol", entry.get("atol", 0.0))
            if (kw["rtol"] <= 0 and kw["atol"] <= 0) or kw["rtol"] < 0 or kw["atol"] < 0:
                raise ExperimentError(f"{at}: 'close_to' needs a positive 'rtol' or 'atol'")
        else:
            for k in BOUND_KEYS:
                if k in entry:
                    kw[k] = _number(at, k, entry[k])
            _check_bounds_admit_a_value(at, kw)
        if ("rtol" in entry or "atol" in entry) and "close_to" not in entry:
            raise ExperimentError(f"{at}: 'rtol'/'atol' only go with 'close_to'")
        if "feasible" in entry:
            if isinstance(kw.get("equals"), bool):
                raise ExperimentError(f"{at}: 'feasible' is a range of numbers, not of booleans")
            kw["feasible"] = _feasible(at, entry["feasible"])
        check = Check(**kw)
        if check.feasible is not None:
            _check_feasible_admits_a_pass(at, check)
        checks.append(check)
    return checks


def evaluate(checks: list[Check], quantities: dict, *, mode: str, name: str) -> list[Verdict]:
    """Compare the measured scalars with the checks of ``mode``.

    A checked quantity that ``run()`` did not return, or returned as a
    non-scalar, is an :class:`ExperimentError`, never a silent pass or skip.
    """
    verdicts = []
    for c in checks:
        if mode not in c.modes:
            continue
        if c.quantity not in quantities:
            raise ExperimentError(
                f"{name}: expected.toml checks '{c.quantity}', which run() did not return "
                f"(returned scalars: {', '.join(sorted(quantities)) or 'none'})"
            )
        x = quantities[c.quantity]
        if not isinstance(x, bool | numbers.Real):
            raise ExperimentError(
                f"{name}: '{c.quantity}' must be a scalar, got {type(x).__name__}"
            )
        if not isinstance(x, bool):
            x = float(x)
        verdicts.append(Verdict(check=c, measured=x, passed=c.passes(x)))
    return verdicts


def format_table(verdicts: list[Verdict], *, title: str = "") -> str:
    """A plain-text table: quantity | expected | measured | verdict."""
    rows = [
        (v.check.quantity, v.check.expected(), _fmt(v.measured), "PASS" if v.passed else "FAIL")
        for v in verdicts
    ]
    head = ("quantity", "expected", "measured", "verdict")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    out = [title] if title else []
    out += [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "\n".join(out)
