"""The GitHub workflows and forms: valid, safe for forks, and doing what CONTRIBUTING.md says.

Three layers: GitHub's own schemas (vendored in check-jsonschema), zizmor's
static analysis of Actions (injection, credentials, permissions, pinning), and
this repository's rules written out as assertions. Each linter is also shown a
broken file, so a test that passes cannot be a linter that checks nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # PyYAML, a dependency of pre-commit

from sandbox.seeds import parse_seeds

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ISSUE_FORMS = sorted(p for p in (GITHUB / "ISSUE_TEMPLATE").glob("*.yml") if p.name != "config.yml")
DISCUSSION_FORMS = sorted((GITHUB / "DISCUSSION_TEMPLATE").glob("*.yml"))
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$"
)


def tool(name: str) -> str:
    """A dev-extra command line tool, from this interpreter's environment or the PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: python -m pip install -e '.[dev]'")
    return found


def check_jsonschema(*args) -> tuple[int, str]:
    """The check-jsonschema command line, invoked in-process (one import, not one per call)."""
    try:
        from check_jsonschema import main
        from click.testing import CliRunner
    except ImportError:
        pytest.fail("check-jsonschema is not installed: python -m pip install -e '.[dev]'")
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def run(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT)


def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as the boolean true
        wf["on"] = wf.pop(True)
    return wf


def workflow(name: str) -> dict:
    return load(GITHUB / "workflows" / name)


def steps(wf: dict):
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_the_expected_files_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "weekly.yml", "pages.yml"}
    assert {p.name for p in ISSUE_FORMS} >= {
        "question.yml",
        "experiment_proposal.yml",
        "failed_reproduction.yml",
    }
    assert DISCUSSION_FORMS, "discussion category forms in .github/DISCUSSION_TEMPLATE/"
    assert (GITHUB / "pull_request_template.md").is_file()


# ---------------------------------------------------------------- GitHub's schemas


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", WORKFLOWS),
        ("vendor.github-issue-forms", ISSUE_FORMS),
        ("vendor.github-issue-config", [GITHUB / "ISSUE_TEMPLATE" / "config.yml"]),
        ("vendor.github-discussion", DISCUSSION_FORMS),
    ],
    ids=["workflows", "issue-forms", "issue-config", "discussion-forms"],
)
def test_files_match_githubs_schema(schema, files):
    code, output = check_jsonschema("--builtin-schema", schema, *files)
    assert code == 0, output


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  build:\n    step:\n      - run: echo\n")  # no runs-on
    code, output = check_jsonschema("--builtin-schema", "vendor.github-workflows", bad)
    assert code == 1 and "runs-on" in output, output


# ---------------------------------------------------------------- zizmor


def test_zizmor_finds_nothing_of_medium_severity_or_above():
    proc = run(tool("zizmor"), "--offline", "--no-progress", "--min-severity=medium", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_flags_an_unsafe_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\n"
        "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    proc = run(tool("zizmor"), "--offline", "--no-progress", "--min-severity=medium", bad)
    assert proc.returncode != 0
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses"):
        assert audit in proc.stdout


# ---------------------------------------------------------------- this repository's rules


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_action_is_pinned_to_a_commit_with_its_version(path):
    uses = [ln for ln in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", ln)]
    assert uses, "a workflow that uses no action is suspicious"
    loose = [ln.strip() for ln in uses if not PINNED.match(ln)]
    assert not loose, f"pin to a 40-hex commit SHA with a '# vX.Y.Z' comment: {loose}"


# The one job allowed to write: Pages' deploy job, which runs only the official Pages actions.
DEPLOY_PERMISSIONS = {("pages.yml", "deploy"): {"pages": "write", "id-token": "write"}}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_safe_for_forks(path):
    text, wf = path.read_text(), load(path)
    assert "pull_request_target" not in text and "workflow_run" not in text
    assert "secrets." not in text, "no secrets: fork pull requests get none anyway"
    assert wf["permissions"] == {"contents": "read"}
    for job_id, job in wf["jobs"].items():
        perms = job.get("permissions", {})
        if (path.name, job_id) in DEPLOY_PERMISSIONS:
            assert perms == DEPLOY_PERMISSIONS[path.name, job_id], f"{job_id}: {perms}"
            continue
        assert all(v in ("read", "none") for v in perms.values()), f"{job_id}: {perms}"
    for job_id, step in steps(wf):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, job_id


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_job_has_a_timeout_and_the_single_thread_env(path):
    wf = load(path)
    for job_id, job in wf["jobs"].items():
        minutes = job.get("timeout-minutes")
        assert isinstance(minutes, int) and 0 < minutes <= 120, f"{job_id}: timeout-minutes"
    env = {k: str(v) for k, v in wf["env"].items()}
    assert THREAD_ENV.items() <= env.items() and env["MPLBACKEND"] == "Agg"
    assert wf["defaults"]["run"]["shell"] == "bash", "bash -eo pipefail, so `| tee` keeps failures"


def test_ci_triggers_and_concurrency():
    """A pull request's runs share a group (a new push cancels the old run); every run on main
    has a group of its own (its run id), so none is queued behind or cancelled by another."""
    wf = workflow("ci.yml")
    assert set(wf["on"]) == {"pull_request", "push"}
    assert wf["on"]["push"]["branches"] == ["main"]
    conc = wf["concurrency"]
    assert conc["group"] == (
        "ci-${{ github.event_name == 'pull_request' && github.event.pull_request.number "
        "|| github.run_id }}"
    )
    assert conc["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_ci_jobs_run_what_contributing_promises():
    jobs = workflow("ci.yml")["jobs"]
    assert set(jobs) == {"lint", "tests", "discover", "experiment", "gate"}

    def script(job):
        return "\n".join(s.get("run", "") for s in jobs[job]["steps"])

    assert "pre-commit run --all-files" in script("lint")
    assert jobs["tests"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    # the README promises Python 3.11 or newer: the experiments run on the oldest and newest
    assert jobs["experiment"]["strategy"]["matrix"]["python"] == ["3.11", "3.13"]
    assert "pytest --ignore=tests/test_experiments.py" in script("tests")
    assert ".github/scripts/select_experiments.py" in script("discover")
    assert jobs["discover"]["steps"][0]["with"]["fetch-depth"] == 0  # the base commit is there

    exp = jobs["experiment"]
    assert exp["needs"] == "discover"
    assert (
        exp["strategy"]["matrix"]["name"] == "${{ fromJSON(needs.discover.outputs.experiments) }}"
    )
    assert exp["strategy"]["fail-fast"] is False
    assert 'sandbox check "$NAME" --seeds 0-4' in script("experiment")
    assert 'sandbox run "$NAME"' in script("experiment")
    upload = next(
        s for s in exp["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert upload["with"]["path"] == "experiments/${{ matrix.name }}/output/"
    assert upload["with"]["name"] == "experiment-${{ matrix.name }}-py${{ matrix.python }}"


def _gate_script() -> str:
    (step,) = workflow("ci.yml")["jobs"]["gate"]["steps"]
    return step["run"]


def test_the_gate_needs_every_job_and_always_runs():
    jobs = workflow("ci.yml")["jobs"]
    gate = jobs["gate"]
    assert gate["if"] == "always()"
    assert set(gate["needs"]) == set(jobs) - {"gate"}
    env = gate["steps"][0]["env"]
    for job in gate["needs"]:  # each job's result by name, not one joined list
        assert env[job.upper()] == f"${{{{ needs.{job}.result }}}}"
    assert env["SELECTED"] == "${{ needs.discover.outputs.experiments }}"


ALL_OK = {"LINT": "success", "TESTS": "success", "DISCOVER": "success", "EXPERIMENT": "success"}


@pytest.mark.parametrize(
    ("results", "ok"),
    [
        ({}, True),
        ({"EXPERIMENT": "skipped", "SELECTED": "[]"}, True),  # a change that touches none
        ({"EXPERIMENT": "skipped", "SELECTED": '["alpha"]'}, False),  # skipped, yet selected
        ({"LINT": "skipped"}, False),  # only the experiment matrix may be skipped
        ({"TESTS": "skipped"}, False),
        ({"DISCOVER": "skipped", "EXPERIMENT": "skipped"}, False),
        ({"TESTS": "failure"}, False),
        ({"LINT": "cancelled"}, False),
        ({"EXPERIMENT": "failure"}, False),
        ({"EXPERIMENT": "cancelled"}, False),
        ({"DISCOVER": "failure", "EXPERIMENT": "skipped", "SELECTED": ""}, False),
    ],
)
def test_the_gate_fails_unless_every_job_succeeded(results, ok):
    env = {**ALL_OK, "SELECTED": '["alpha"]', **results, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _gate_script()], env=env, capture_output=True, text=True
    )
    assert (proc.returncode == 0) is ok, proc.stdout


def test_pages_builds_read_only_and_deploys_with_least_permissions():
    wf = workflow("pages.yml")
    assert set(wf["on"]) == {"push", "workflow_dispatch"}
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    script = "\n".join(s.get("run", "") for s in build["steps"])
    assert 'pip install -e ".[site]"' in script
    assert "sandbox site --out _site" in script
    upload = build["steps"][-1]
    assert upload["uses"].startswith("actions/upload-pages-artifact@")
    assert upload["with"]["path"] == "_site/"
    # the job that may write runs no code of the repository: only the official Pages actions
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == [
        "actions/configure-pages",
        "actions/deploy-pages",
    ]
    assert not any("run" in s for s in deploy["steps"])


def test_ci_uploads_the_site_screenshots():
    steps = workflow("ci.yml")["jobs"]["tests"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "artifacts/site/"  # where tests/test_site_browser.py saves
    assert upload["if"] == "success() || failure()"


# ---------------------------------------------------------------- pip caches


def _cached_setups(wf: dict):
    """(job id, the job's steps, index of each setup-python step with a pip cache)."""
    for job_id, job in wf["jobs"].items():
        for i, step in enumerate(job.get("steps", [])):
            if step.get("with", {}).get("cache") == "pip":
                yield job_id, job["steps"], i


def test_each_pip_cache_is_keyed_by_the_resolved_dependencies_of_its_extra():
    """Jobs with different extras never share a key; the key changes with any dependency."""
    extras = {}
    for path in WORKFLOWS:
        for job_id, job_steps, i in _cached_setups(load(path)):
            setup = job_steps[i]
            assert setup["with"]["cache-dependency-path"] == "pip-resolved.txt", job_id
            resolve = job_steps[i - 1]  # the key is written just before the cached setup
            assert resolve["run"] == ".github/scripts/pip-cache-key", job_id
            extra = resolve["env"]["EXTRA"]
            installs = [s["run"] for s in job_steps[i + 1 :] if "pip install" in s.get("run", "")]
            assert installs and all(f'-e ".[{extra}]"' in r for r in installs), job_id
            extras[job_id] = extra
    assert extras == {"tests": "dev", "experiment": "data"}


FAKE_PIP = """#!/usr/bin/env bash
# a stand-in for python: `-m pip ... --report FILE` writes a resolution report, the rest is python
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  while [ "$#" -gt 0 ]; do
    if [ "$1" = "--report" ]; then cp "$FAKE_REPORT" "$2"; fi
    shift
  done
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def _pip_cache_key(tmp_path, extra: str, versions: dict) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text(FAKE_PIP)
    (bin_dir / "python").chmod(0o755)
    report = {"install": [{"metadata": {"name": n, "version": v}} for n, v in versions.items()]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "EXTRA": extra,
        "FAKE_REPORT": str(tmp_path / "report.json"),
        "REAL_PYTHON": sys.executable,
    }
    script = GITHUB / "scripts" / "pip-cache-key"
    proc = subprocess.run(["bash", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "pip-report.json").exists()
    return (tmp_path / "pip-resolved.txt").read_text()


def test_the_pip_cache_key_follows_the_extra_and_every_version(tmp_path):
    base = {"numpy": "2.4.6", "Matplotlib": "3.10.1", "scipy": "1.17.1"}
    key = _pip_cache_key(tmp_path, "dev", base)
    assert key.splitlines()[0].startswith("extra: dev; python ")
    assert key.splitlines()[1:] == ["Matplotlib 3.10.1", "numpy 2.4.6", "scipy 1.17.1"]
    assert _pip_cache_key(tmp_path, "dev", dict(reversed(base.items()))) == key  # order-free
    assert _pip_cache_key(tmp_path, "data", base) != key
    assert _pip_cache_key(tmp_path, "dev", {**base, "numpy": "2.4.7"}) != key


# ---------------------------------------------------------------- the weekly jobs


def test_weekly_checks_every_experiment_on_fresh_seeds():
    wf = workflow("weekly.yml")
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}
    assert wf["on"]["schedule"][0]["cron"]
    sweep = {s.get("name", ""): s for s in wf["jobs"]["sweep"]["steps"]}
    check = next(s for n, s in sweep.items() if n.startswith("Every experiment on the fresh"))
    assert check["env"]["SEEDS"] == "${{ steps.seeds.outputs.seeds }}"
    assert 'sandbox check --all --seeds "$SEEDS" --jobs 2' in check["run"]
    summary = next(s for n, s in sweep.items() if "job summary" in n)
    assert "GITHUB_STEP_SUMMARY" in summary["run"] and summary["if"] == "success() || failure()"
    scripts = "\n".join(s.get("run", "") for _, s in steps(wf))
    assert ".ci/run" in scripts


def _draw_seeds(tmp_path) -> tuple[list[int], str]:
    (step,) = [s for _, s in steps(workflow("weekly.yml")) if s.get("id") == "seeds"]
    out, summary = tmp_path / "output", tmp_path / "summary"
    out.unlink(missing_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = out.read_text().splitlines()
    assert line.startswith("seeds=")
    text = line.removeprefix("seeds=")
    assert f"--seeds {text}" in proc.stdout  # printed first, ready to reproduce a failure
    assert text in summary.read_text()
    return parse_seeds(text), text


def test_the_weekly_seeds_are_fresh_distinct_and_printed(tmp_path):
    seeds, _ = _draw_seeds(tmp_path)
    assert len(seeds) == 10 and len(set(seeds)) == 10
    assert all(200 <= s < 2**31 for s in seeds)  # never the calibration seeds 0-199
    assert _draw_seeds(tmp_path)[0] != seeds  # drawn anew each run (equal: p ~ 1e-80)


def _speed_script() -> str:
    (step,) = [
        s for _, s in steps(workflow("weekly.yml")) if "benchmark_speed.py" in s.get("run", "")
    ]
    assert "continue-on-error" not in step, "a crash must fail the job; only a missed bound warns"
    return step["run"]


FAKE_BENCHMARK = {
    "pass": 'echo "threads $3"; echo "all figures within their bounds"',
    "missed bound": 'echo "threads $3"; echo "some figures miss their bounds"; exit 1',
    "crash": 'echo "threads $3"; echo "Traceback (most recent call last):" >&2; exit 1',
    "killed": 'echo "threads $3"; kill -9 $$',
}


@pytest.mark.parametrize(
    ("case", "ok"), [("pass", True), ("missed bound", True), ("crash", False), ("killed", False)]
)
def test_the_speed_job_fails_on_a_crash_and_warns_on_a_missed_bound(tmp_path, case, ok):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f"#!/usr/bin/env bash\n{FAKE_BENCHMARK[case]}\n")
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _speed_script()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    assert ("::warning" in proc.stdout) is (case == "missed bound")
    # every core, although OMP_NUM_THREADS=1 makes plain `nproc` say 1
    all_cores = subprocess.run(["nproc", "--all"], capture_output=True, text=True).stdout.strip()
    assert f"threads {all_cores}" in (tmp_path / "speed" / "benchmark.txt").read_text()


# ---------------------------------------------------------------- the size of what is committed

MAX_BYTES = 1024 * 1024  # pre-commit's check-added-large-files --maxkb=1024


def tracked_files(root: Path) -> list[Path]:
    """Files git tracks under ``root``; without git, every file outside ignored folders."""
    proc = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0 and proc.stdout:
        return [root / p for p in proc.stdout.split("\0") if p]
    skip = {".git", ".venv", "__pycache__", "output", ".pytest_cache", ".ruff_cache"}
    return [p for p in root.rglob("*") if p.is_file() and not skip & set(p.parts)]


def too_large(paths, limit: int = MAX_BYTES) -> list[str]:
    return [
        f"{p} ({p.stat().st_size} bytes)" for p in paths if p.is_file() and p.stat().st_size > limit
    ]


def test_no_tracked_file_is_above_1_mb():
    """The limit holds for what is in the repository (figures included), not only for what a
    commit adds: pre-commit's hook sees staged files only unless told --enforce-all."""
    files = tracked_files(ROOT)
    assert any(p.name == "figure.png" for p in files)
    assert not too_large(files)
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for r in config["repos"] for h in r["hooks"]]
    (large,) = [h for h in hooks if h["id"] == "check-added-large-files"]
    assert set(large["args"]) == {"--maxkb=1024", "--enforce-all"}


def test_the_size_check_flags_a_large_file(tmp_path):
    (tmp_path / "figure.png").write_bytes(b"\0" * (MAX_BYTES + 1))
    (tmp_path / "small.txt").write_text("x")
    assert too_large([tmp_path / "figure.png", tmp_path / "small.txt"]) == [
        f"{tmp_path / 'figure.png'} ({MAX_BYTES + 1} bytes)"
    ]


# ---------------------------------------------------------------- which experiments a PR checks


def _select_module():
    path = GITHUB / "scripts" / "select_experiments.py"
    spec = importlib.util.spec_from_file_location("select_experiments", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("changed", "selected"),
    [
        (None, ["alpha", "beta", "gamma"]),  # a push: everything
        (["experiments/beta/experiment.py"], ["beta"]),
        (["experiments/beta/README.md", "experiments/gamma/expected.toml"], ["beta", "gamma"]),
        (["README.md", "discussions/note.md", "experiments/README.md"], []),
        (["experiments/_template/experiment.py"], []),
        (["experiments/removed/experiment.py"], []),  # deleted in the PR: nothing to run
        (["experiments/beta/x.py", "shared/net.py"], ["alpha", "beta", "gamma"]),
        (["tests/test_net.py"], ["alpha", "beta", "gamma"]),
        (["pyproject.toml"], ["alpha", "beta", "gamma"]),
        ([".github/workflows/ci.yml"], ["alpha", "beta", "gamma"]),
        (["sandbox/runner.py"], ["alpha", "beta", "gamma"]),
        ([".github/workflows/weekly.yml"], []),
        ([".github/scripts/pip-cache-key"], ["alpha", "beta", "gamma"]),
    ],
)
def test_select_experiments(changed, selected):
    assert _select_module().select(changed, ["alpha", "beta", "gamma"]) == selected


def test_select_experiments_against_a_real_base_commit(tmp_path):
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.org",
        "-c",
        "commit.gpgsign=false",
    ]

    def sh(*args):
        return subprocess.run([*args], cwd=tmp_path, capture_output=True, text=True, check=True)

    def commit(path, text):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        sh(*git, "add", "-A")
        sh(*git, "commit", "-qm", path)
        return sh("git", "rev-parse", "HEAD").stdout.strip()

    def selected(base):
        script = GITHUB / "scripts" / "select_experiments.py"
        out = sh(sys.executable, script, "--base", base, "--root", tmp_path).stdout
        return json.loads(out)

    sh("git", "init", "-q")
    for name in ("alpha", "beta", "_template"):
        commit(f"experiments/{name}/experiment.py", "x = 1\n")
    base = commit("shared/net.py", "y = 1\n")
    commit("experiments/beta/experiment.py", "x = 2\n")
    assert selected(base) == ["beta"]
    commit("README.md", "docs\n")
    assert selected(base) == ["beta"]
    commit("shared/net.py", "y = 2\n")
    assert selected(base) == ["alpha", "beta"]
    assert selected("0" * 40) == ["alpha", "beta"]  # an unknown base: check everything
    assert ".github/workflows/ci.yml" in _select_module().AFFECTS_ALL
    commit("sandbox/cli.py", "z = 1\n")  # the tooling every experiment runs through
    assert selected(base) == ["alpha", "beta"]
