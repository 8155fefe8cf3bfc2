"""The sweep's table: one JSON Lines row per finished task, appended under a lock, resumable.

Nothing in a table is deleted or duplicated without a word. On resume:

- a line that is not a JSON object (a torn last line after a crash, or a line
  edited by hand) is moved to the sidecar ``TABLE.rejected`` beside the table,
  with its line number and the reason, and a warning says so;
- a row whose ``seed`` is not an integer (``"seed": "0"``) is moved there too,
  with a warning, and its task runs again;
- two finished rows for one task (identical or conflicting) stop the sweep with
  their line numbers, unless ``on_conflict`` says which to keep
  (``"keep_first"`` / ``"keep_last"``); the other goes to the sidecar;
- an ``'error'`` row of a task about to be retried is replaced by the new
  attempt's row (the documented retry), and rows of tasks outside the grid are
  left as they are.
"""

from __future__ import annotations

import json
import numbers
import os
import warnings
from pathlib import Path

from sandbox._io import write_atomic
from sandbox.sweep.tasks import task_key

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one driver per table is on the user
    fcntl = None

ON_CONFLICT = ("fail", "keep_first", "keep_last")


def _dumps(row: dict) -> str:
    return json.dumps(row, allow_nan=False)


def sidecar(path: Path) -> Path:
    """Where lines taken out of the table are kept: ``TABLE.rejected`` (JSON Lines)."""
    return path.with_name(path.name + ".rejected")


def _scan(path: Path) -> list[tuple[int, bytes, dict | None, str | None, bool]]:
    """Per non-blank line: ``(number, raw bytes, row or None, why not, ends with a newline)``."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out = []
    for i, raw in enumerate([*lines, tail], 1):
        if not raw.strip():
            continue
        terminated = i <= len(lines)
        try:
            row = json.loads(raw)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            out.append((i, raw, row, None, terminated))
        except ValueError as exc:
            why = "torn (a crash mid-append)" if not terminated else f"not a JSON object ({exc})"
            out.append((i, raw, None, why, terminated))
    return out


def read_table(path) -> list[dict]:
    """Rows of a sweep table (JSON Lines), ignoring a torn last line; the file is not touched.

    A torn last line is one without its newline (an append cut short by a crash).
    Any other line that is not a JSON object raises ``ValueError`` naming it.
    Load into pandas with ``pandas.DataFrame(read_table(path))``.
    """
    path = Path(path)
    rows = []
    for i, _, row, why, terminated in _scan(path):
        if row is not None:
            rows.append(row)
        elif terminated:
            raise ValueError(
                f"out: line {i} of {path} is {why}; a sweep moves such lines to "
                f"{sidecar(path).name} when it resumes"
            )
    return rows


def _rewrite(path: Path, rows: list[dict]) -> None:
    """Replace ``path`` atomically by ``rows``."""
    write_atomic(path, lambda fh: fh.writelines(_dumps(row) + "\n" for row in rows))


def _set_aside(path: Path, entries: list[dict]) -> None:
    """Append ``entries`` (``line``, ``reason``, ``text``) to the sidecar, durably."""
    with open(sidecar(path), "a", encoding="utf-8") as fh:
        for e in entries:
            fh.write(json.dumps(e) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


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


def _row_key(row: dict, names: list[str]) -> tuple[str | None, str | None]:
    """The task key of a row of this grid, or why the row cannot be one of its tasks."""
    if "seed" not in row or any(n not in row for n in names):
        return None, None  # a row of another grid
    seed = row["seed"]
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Real)
        or not float(seed).is_integer()
        or seed < 0
    ):
        return None, f"its seed {seed!r} is not an integer >= 0"
    return task_key({n: row[n] for n in names}, int(seed)), None


def _describe_task(row: dict, names: list[str]) -> str:
    return ", ".join(f"{n}={row[n]!r}" for n in names) + f", seed {row['seed']}"


def _resume(
    path: Path, names: list[str], wanted: set[str], root_seed: int, on_conflict: str = "fail"
) -> tuple[dict[str, dict], bool]:
    """'ok' rows of the wanted tasks, and whether the file was rewritten.

    See the module docstring for what happens to each kind of line.
    """
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict: expected one of {ON_CONFLICT}, got {on_conflict!r}")
    keep, aside, notes = [], [], []
    ok: dict[str, list[tuple[int, dict]]] = {}
    changed = False
    for i, raw, row, why, terminated in _scan(path):
        text = raw.decode("utf-8", errors="backslashreplace")
        changed |= not terminated  # a last row without its newline: rewrite before appending
        if row is None:
            aside.append({"line": i, "reason": why, "text": text})
            notes.append(f"line {i} is {why}")
            continue
        key, bad = _row_key(row, names)
        if bad is not None:
            aside.append({"line": i, "reason": bad, "text": text})
            notes.append(f"line {i}: {bad}, so its task runs again")
            continue
        if key not in wanted:
            keep.append((i, row))
            continue
        if row.get("root_seed") != root_seed:
            raise ValueError(
                f"root_seed: {path} holds rows made with root_seed={row.get('root_seed')!r}, "
                f"got {root_seed}; their numbers would mix two streams, use another out file"
            )
        if row.get("status") == "ok":
            ok.setdefault(key, []).append((i, row))
            keep.append((i, row))
        else:
            changed = True  # an errored attempt, retried now
    clashes = {k: v for k, v in ok.items() if len(v) > 1}
    if clashes:
        described = []
        for rows in clashes.values():
            kind = "identical" if all(r == rows[0][1] for _, r in rows) else "conflicting"
            lines = ", ".join(str(i) for i, _ in rows)
            described.append(f"{_describe_task(rows[0][1], names)}: lines {lines} ({kind})")
        if on_conflict == "fail":
            raise ValueError(
                f"out: {path} holds more than one finished row for {len(clashes)} task(s): "
                + "; ".join(described)
                + ". Keep one with on_conflict='keep_first' or 'keep_last' (sandbox sweep "
                f"--on-conflict keep-first|keep-last); the others go to {sidecar(path).name}"
            )
        drop = set()
        for rows in clashes.values():
            kept = rows[0] if on_conflict == "keep_first" else rows[-1]
            for i, r in rows:
                if i != kept[0]:
                    drop.add(i)
                    why = f"another row of its task (line {kept[0]}) was kept ({on_conflict})"
                    aside.append({"line": i, "reason": why, "text": _dumps(r)})
            ok[_row_key(kept[1], names)[0]] = [kept]
        keep = [(i, r) for i, r in keep if i not in drop]
        notes.append("; ".join(described) + f": kept per on_conflict={on_conflict!r}")
    if aside:
        _set_aside(path, aside)
        warnings.warn(
            f"out: {path}: " + "; ".join(notes) + f". Set aside in {sidecar(path)}",
            stacklevel=3,
        )
    if aside or changed:
        _rewrite(path, [r for _, r in keep])
    return {k: v[0][1] for k, v in ok.items()}, bool(aside or changed)


def _warn_other_code(rows, code: str | None, path: Path) -> None:
    other = sorted({r.get("code") for r in rows} - {code, None})
    if code is not None and other:
        warnings.warn(
            f"{path}: rows kept from earlier runs were computed by other sources ({other}; now "
            f"{code}); delete those rows to recompute them",
            stacklevel=3,
        )
