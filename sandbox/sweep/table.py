"""The sweep's table: one JSON Lines row per finished task, appended under a lock, resumable."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from sandbox._io import write_atomic
from sandbox.sweep.tasks import task_key

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one driver per table is on the user
    fcntl = None


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


def _rewrite(path: Path, rows: list[dict]) -> None:
    """Replace ``path`` atomically by ``rows``."""
    write_atomic(path, lambda fh: fh.writelines(_dumps(row) + "\n" for row in rows))


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
