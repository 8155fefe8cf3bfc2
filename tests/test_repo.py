"""The repository's front door: the README's commands, the CI entry point, the dev tools.

``.ci/run`` executes the test command written in README.md; these tests make
sure it extracts exactly that command, that the README's experiment commands
and links name experiments that exist, and that the dev extra installs the
tools CONTRIBUTING.md asks for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml  # PyYAML, a dependency of pre-commit

from sandbox.registry import experiment_dirs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
START, END = "<!-- test-command -->", "<!-- /test-command -->"


def readme_test_command(text: str) -> str:
    """The ```bash block between the test-command markers, as .ci/run reads it."""
    assert text.count(START) == 1 and text.count(END) == 1, "one pair of test-command markers"
    block = text.split(START, 1)[1].split(END, 1)[0]
    m = re.search(r"^```bash\n(.*?)^```$", block, re.M | re.S)
    assert m, "a ```bash block between the test-command markers"
    return m.group(1).rstrip("\n")


def ci_run_extraction(root: Path) -> str:
    """What .ci/run assigns to ``cmd``, computed by its own line (without running the command)."""
    line = next(ln for ln in CI_RUN.read_text().splitlines() if ln.startswith("cmd=$("))
    script = f'set -euo pipefail\ncd "{root}"\n{line}\nprintf "%s" "$cmd"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return proc.stdout


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", text, re.M | re.S)


def test_ci_run_extracts_exactly_the_readme_test_command():
    expected = readme_test_command(README.read_text())
    assert ci_run_extraction(ROOT) == expected
    assert "pytest" in expected, "the README's test command runs the test suite"
    assert ".[dev]" in expected, "the README's test command installs the dev extra"


def test_ci_run_runs_the_command_and_fails_without_markers(tmp_path):
    """.ci/run end to end on a throwaway README: it runs the block, and exits 2 without one."""
    (tmp_path / ".ci").mkdir()
    shutil.copy2(CI_RUN, tmp_path / ".ci" / "run")
    command = 'echo readme-command-ran && test "$MPLBACKEND" = Agg'  # .ci/run sets the env
    (tmp_path / "README.md").write_text(f"# x\n\n{START}\n```bash\n{command}\n```\n{END}\n")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("readme-command-ran")
    assert ci_run_extraction(tmp_path) == readme_test_command((tmp_path / "README.md").read_text())

    (tmp_path / "README.md").write_text("# x\n\nno markers here\n")
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no test command found" in proc.stderr


def test_readme_experiment_commands_name_existing_experiments():
    """The flagship command (and every other `sandbox run|check NAME`) runs something real."""
    names = {p.name for p in experiment_dirs(ROOT)}
    commands = [
        m.group(2)
        for block in bash_blocks(README.read_text())
        for m in re.finditer(r"\bsandbox\s+(run|check)\s+([a-z][a-z0-9_]*)\b", block)
    ]
    assert commands, "the README gives at least one `sandbox run NAME` command"
    missing = sorted(set(commands) - names)
    assert not missing, f"README commands name experiments that do not exist: {missing}"


def test_readme_links_to_experiments_resolve():
    linked = set(
        re.findall(r"\]\((?:\./)?experiments/([a-z][a-z0-9_]*)/?[^)]*\)", README.read_text())
    )
    missing = sorted(n for n in linked if not (ROOT / "experiments" / n / "README.md").is_file())
    assert not missing, f"README links to experiments that do not exist: {missing}"


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in reqs}


def test_dev_extra_has_the_contributor_tools():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dev = _requirement_names(extras["dev"])
    needed = {"pytest", "pre-commit", "nbstripout", "ruff", "check-jsonschema", "zizmor"}
    assert needed <= dev, f"missing from the dev extra: {sorted(needed - dev)}"


def test_pre_commit_config_is_valid_and_pinned():
    config = ROOT / ".pre-commit-config.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    repos = yaml.safe_load(config.read_text())["repos"]
    hooks = {h["id"] for r in repos for h in r["hooks"]}
    expected = {
        "nbstripout",
        "ruff-check",
        "ruff-format",
        "trailing-whitespace",
        "end-of-file-fixer",
        "check-yaml",
        "check-toml",
        "check-added-large-files",
        "check-merge-conflict",
        "check-github-workflows",
    }
    assert expected <= hooks, f"missing hooks: {sorted(expected - hooks)}"
    for r in repos:
        if r["repo"] not in ("local", "meta"):
            assert re.fullmatch(r"v?\d+(\.\d+)+", r["rev"]), f"{r['repo']}: pin a release tag"
