"""Which experiments a CI run must check, printed as a JSON list.

On a push (no ``--base``) every experiment is checked. On a pull request only
the experiments whose folders changed are, unless the change touches what
every experiment depends on (``shared/``, ``sandbox/``, ``tests/``, ``pyproject.toml``, the
CI workflow or this script): then all of them are.

    python .github/scripts/select_experiments.py [--base SHA] [--root DIR]

Standard library only, so the job that runs it needs no installation.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
AFFECTS_ALL = (
    "shared/",
    "sandbox/",
    "tests/",
    "pyproject.toml",
    ".github/workflows/ci.yml",
    ".github/scripts/select_experiments.py",
    ".github/scripts/pip-cache-key",
)


def experiment_names(root: Path) -> list[str]:
    """Folders ``experiments/<name>/``, sorted; the template (``_template``) is not one."""
    base = root / "experiments"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and NAME_RE.match(p.name))


def select(changed: list[str] | None, names: list[str]) -> list[str]:
    """The experiments to check, given the changed paths (``None``: everything changed)."""
    if changed is None or any(p == a or p.startswith(a) for p in changed for a in AFFECTS_ALL):
        return list(names)
    touched = {
        p.split("/")[1] for p in changed if p.startswith("experiments/") and p.count("/") >= 2
    }
    return [n for n in names if n in touched]


def changed_files(root: Path, base: str) -> list[str] | None:
    """Paths that differ between ``base`` and ``HEAD``; ``None`` when git cannot tell."""
    proc = subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", base, "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"git diff against {base} failed; checking every experiment", file=sys.stderr)
        print(proc.stderr, file=sys.stderr)
        return None
    return [line for line in proc.stdout.splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="", help="base commit of a pull request (default: none)")
    p.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    args = p.parse_args(argv)
    changed = changed_files(args.root, args.base) if args.base else None
    print(json.dumps(select(changed, experiment_names(args.root))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
