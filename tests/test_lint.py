"""Lint is part of the test suite: what CI's lint job finds, ``pytest`` finds too.

``ruff check`` and ``ruff format --check`` over the repository (notebooks included), with the
configuration in ``pyproject.toml``, so a contributor without ``pre-commit install`` sees the
same errors before pushing. The ruff of the dev extra is pinned to the version the pre-commit
hook runs, so the two cannot disagree about formatting.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml  # PyYAML, a dependency of pre-commit

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], capture_output=True, text=True, cwd=cwd
    )


def test_ruff_check_is_clean():
    proc = ruff("check", "--no-cache", ".")
    assert proc.returncode == 0, f"`ruff check --fix .` fixes most of these:\n{proc.stdout}"


def test_ruff_format_is_clean():
    proc = ruff("format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, f"run `ruff format .`:\n{proc.stdout}"


def test_the_lint_tests_can_fail(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("import os\nx=[1,\n  2]\n")
    check = ruff("check", "--no-cache", ".", cwd=tmp_path)
    assert check.returncode == 1 and "F401" in check.stdout
    fmt = ruff("format", "--check", "--no-cache", ".", cwd=tmp_path)
    assert fmt.returncode == 1 and "bad.py" in fmt.stdout


def test_dev_ruff_is_the_version_pre_commit_runs():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    (pin,) = [r for r in dev if re.match(r"ruff\b", r)]
    repos = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
    (rev,) = [r["rev"] for r in repos if r["repo"].endswith("/ruff-pre-commit")]
    assert pin == f"ruff=={rev.lstrip('v')}", (pin, rev)
