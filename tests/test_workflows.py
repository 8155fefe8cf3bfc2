"""The GitHub workflows and forms: valid, safe for forks, and doing what CONTRIBUTING.md says.

Three layers: GitHub's own schemas (vendored in check-jsonschema), zizmor's
static analysis of Actions (injection, credentials, permissions, pinning), and
this repository's rules written out as assertions. Each linter is also shown a
broken file, so a test that passes cannot be a linter that checks nothing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # PyYAML, a dependency of pre-commit

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
    wf = workflow("ci.yml")
    assert set(wf["on"]) == {"pull_request", "push"}
    assert wf["on"]["push"]["branches"] == ["main"]
    conc = wf["concurrency"]
    assert "github.event.pull_request.number" in conc["group"]
    assert conc["cancel-in-progress"] in (True, "${{ github.event_name == 'pull_request' }}")


def test_ci_jobs_run_what_contributing_promises():
    jobs = workflow("ci.yml")["jobs"]
    assert set(jobs) == {"lint", "tests", "discover", "experiment", "gate"}

    def script(job):
        return "\n".join(s.get("run", "") for s in jobs[job]["steps"])

    assert "pre-commit run --all-files" in script("lint")
    assert jobs["tests"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
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


def _gate_script() -> str:
    (step,) = workflow("ci.yml")["jobs"]["gate"]["steps"]
    return step["run"]


def test_the_gate_needs_every_job_and_always_runs():
    jobs = workflow("ci.yml")["jobs"]
    gate = jobs["gate"]
    assert gate["if"] == "always()"
    assert set(gate["needs"]) == set(jobs) - {"gate"}
    assert workflow("ci.yml")["jobs"]["gate"]["steps"][0]["env"]["RESULTS"] == (
        "${{ join(needs.*.result, ' ') }}"
    )


@pytest.mark.parametrize(
    ("results", "ok"),
    [
        ("success success success success", True),
        ("success success success skipped", True),  # a change that touches no experiment
        ("success failure success success", False),
        ("success success success cancelled", False),
        ("success success failure skipped", False),
    ],
)
def test_the_gate_fails_when_a_needed_job_failed_or_was_cancelled(results, ok):
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _gate_script()],
        env={"RESULTS": results, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
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


def test_weekly_sweeps_every_experiment_over_five_seeds():
    wf = workflow("weekly.yml")
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}
    assert wf["on"]["schedule"][0]["cron"]
    scripts = "\n".join(s.get("run", "") for _, s in steps(wf))
    assert "sandbox check --all --seeds 0-4 --jobs 2" in scripts
    assert ".ci/run" in scripts


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
