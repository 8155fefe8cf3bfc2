"""The ``sandbox`` command end to end, in a throwaway sandbox root.

Each test copies ``experiments/_template`` and a minimal ``pyproject.toml``
into ``tmp_path`` and drives :func:`sandbox.cli.main` with
``--root tmp_path``, so nothing here depends on (or touches) the real
experiments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.checks import parse_checks
from sandbox.cli import main, parse_seeds
from sandbox.errors import ExperimentError
from sandbox.registry import get
from sandbox.runner import run_experiment

REPO = Path(__file__).resolve().parents[1]

# A tiny experiment whose quick and full modes both take milliseconds: it returns a fixed
# scalar (2.0 quick, 3.0 full), a boolean and a series, and plots the series.
TINY_PY = """
import numpy as np
from shared.plotting import subplots


def run(*, quick, seed, progress):
    progress(0, 1, "the harness always passes a callable")
    rng = np.random.default_rng(seed)
    return {
        "value": 2.0 if quick else 3.0,
        "positive": True,
        "noise": float(rng.uniform(0.0, 0.1)),
        "curve": np.linspace(0.0, 1.0, 5),
    }


def plot(result):
    fig, ax = subplots()
    ax.plot(result["curve"])
    return fig
"""

TINY_META = """
[experiment]
title = "tiny: a test experiment"
question = "Does the harness run and check an experiment?"
claim = "run() returns value 2 in quick mode and 3 in full mode."
"""

TINY_CHECKS = """
[[check]]
quantity = "value"
at_least = 1.5
at_most = 3.5
reason = "run() returns 2 (quick) or 3 (full); both lie inside [1.5, 3.5]."

[[check]]
quantity = "positive"
equals = true
reason = "run() always returns positive = true."
"""


@pytest.fixture
def root(tmp_path):
    """A sandbox root holding only the template and a minimal pyproject.toml."""
    shutil.copytree(
        REPO / "experiments" / "_template",
        tmp_path / "experiments" / "_template",
        ignore=shutil.ignore_patterns("output", "__pycache__"),
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "sandbox-under-test"\n')
    return tmp_path


def sandbox(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def add_tiny(root: Path, checks: str = TINY_CHECKS, *, name: str = "tiny", code: str = TINY_PY):
    folder = root / "experiments" / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(f"# {name}\n\n![figure](figure.png)\n")
    (folder / "experiment.py").write_text(code)
    (folder / "expected.toml").write_text(TINY_META + checks)
    return folder


def leftovers(folder: Path) -> list[str]:
    """Temporary files a non-atomic write would leave behind."""
    return sorted(
        p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")
    )


# ---------------------------------------------------------------- list, run, check, new


def test_list_prints_each_experiment_and_its_question(root, capsys):
    add_tiny(root)
    assert sandbox(root, "new", "demo") == 0
    capsys.readouterr()
    assert sandbox(root, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["demo", "tiny"]  # sorted; no _template
    assert "Does the harness run and check an experiment?" in lines[1]


def test_list_of_an_empty_sandbox_says_how_to_start(root, capsys):
    assert sandbox(root, "list") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "sandbox new NAME" in captured.err


def test_run_writes_results_and_figure_atomically(root, capsys):
    add_tiny(root)
    assert sandbox(root, "run", "tiny", "--seed", "3") == 0
    out = root / "experiments" / "tiny" / "output" / "quick-seed3"
    assert sorted(p.name for p in out.iterdir()) == ["figure.png", "results.json"]
    assert leftovers(root / "experiments" / "tiny") == []
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    assert (res["experiment"], res["mode"], res["seed"], res["passed"]) == (
        "tiny",
        "quick",
        3,
        True,
    )
    assert res["quantities"]["value"] == 2.0 and res["quantities"]["positive"] is True
    assert res["series"]["curve"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [c["quantity"] for c in res["checks"]] == ["value", "positive"]
    assert set(res["environment"]) == {"python", "numpy", "platform"}
    assert "PASS" in capsys.readouterr().out


def test_run_on_another_backend_needs_an_experiment_that_takes_one(root, capsys):
    add_tiny(root)
    assert sandbox(root, "run", "tiny", "--backend", "array_api_strict") == 2
    err = capsys.readouterr().err
    assert "tiny (seed 0): run() takes no backend argument" in err and "'array_api_strict'" in err
    py = root / "experiments" / "tiny" / "experiment.py"
    py.write_text(
        py.read_text()
        .replace(
            "def run(*, quick, seed, progress):", "def run(*, quick, seed, progress, backend):"
        )
        .replace('"positive": True,', '"positive": backend == "array_api_strict",')
    )
    assert sandbox(root, "run", "tiny", "--backend", "array_api_strict") == 0
    out = root / "experiments" / "tiny" / "output" / "quick-seed0" / "results.json"
    res = json.loads(out.read_text())
    assert res["quantities"]["positive"] is True
    assert res["environment"]["backend"] == "array_api_strict"
    assert "backend array_api_strict" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--root", str(root), "run", "tiny", "--backend", "jax"])
    assert "invalid choice: 'jax'" in capsys.readouterr().err


def test_run_of_the_template_experiment(root):
    """The template itself is a complete experiment: copied under a name, it runs green."""
    assert sandbox(root, "new", "demo") == 0
    assert sandbox(root, "run", "demo") == 0
    out = root / "experiments" / "demo" / "output" / "quick-seed0"
    assert (out / "figure.png").stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["passed"] is True


def test_a_crash_while_writing_results_leaves_no_partial_file(root, monkeypatch):
    """In process: the write fails half-way; no half file, the previous one set aside, a clear
    error naming the file (the CLI reports it with exit 2)."""
    folder = add_tiny(root)
    out = folder / "output" / "quick-seed0"
    assert sandbox(root, "run", "tiny") == 0
    before = (out / "results.json").read_text()

    def crash(obj, fh, **kw):
        fh.write('{"experiment": "tiny", "half": ')  # part of the file, then the crash
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", crash)
    exp = get(root, "tiny")
    with pytest.raises(ExperimentError, match=r"cannot write .*results.json: No space left"):
        run_experiment(exp, quick=True, seed=0, out_dir=out)
    assert not (out / "results.json").exists()  # no half file, and no stale one either
    assert (out / "previous" / "results.json").read_text() == before  # set aside, not lost
    assert leftovers(folder) == []


def test_a_crash_while_saving_the_figure_keeps_the_numbers(root, monkeypatch):
    from matplotlib.figure import Figure

    folder = add_tiny(root)

    def crash(self, fname, **kw):
        fname.write(b"\x89PNG half")  # the figure is rendered in memory, then written atomically
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", crash)
    out = folder / "output" / "quick-seed0"
    with pytest.raises(ExperimentError, match=r"drawing the figure failed .*numbers are saved"):
        run_experiment(get(root, "tiny"), quick=True, seed=0, out_dir=out)
    assert not (out / "figure.png").exists()
    res = json.loads((out / "results.json").read_text())
    assert res["quantities"]["value"] == 2.0 and res["passed"] is True
    assert "disk full" in res["figure_error"]
    assert leftovers(folder) == []


def test_publish_copies_a_full_run_beside_the_readme(root):
    folder = add_tiny(root)
    assert sandbox(root, "run", "tiny", "--full", "--publish") == 0
    assert (folder / "figure.png").read_bytes()[:4] == b"\x89PNG"
    published = json.loads((folder / "results_full.json").read_text())
    assert (published["mode"], published["quantities"]["value"]) == ("full", 3.0)
    assert leftovers(folder) == []


def test_check_over_seeds_prints_one_table(root, capsys):
    add_tiny(root)
    assert sandbox(root, "check", "tiny", "--seeds", "0-4") == 0
    out = capsys.readouterr().out
    assert "measured (seeds 0-4)" in out
    assert out.count("PASS 5/5") == 2
    assert "5 passed, 0 failed" in out
    assert not (root / "experiments" / "tiny" / "output").exists()  # check writes nothing


def test_check_in_parallel_matches_serial(root, capsys):
    add_tiny(root)
    assert sandbox(root, "check", "tiny", "--seeds", "0,2,5") == 0
    serial = capsys.readouterr().out
    assert sandbox(root, "check", "tiny", "--seeds", "0,2,5", "--jobs", "2") == 0
    parallel = capsys.readouterr().out
    strip = lambda s: [ln for ln in s.splitlines() if "slowest seed" not in ln]  # noqa: E731
    assert strip(parallel) == strip(serial)
    assert "measured (seeds 0,2,5)" in serial


def test_check_all_covers_every_experiment(root, capsys):
    add_tiny(root)
    add_tiny(root, name="tiny_two")
    assert sandbox(root, "check", "--all", "--seeds", "0-1") == 0
    out = capsys.readouterr().out
    assert "== tiny " in out and "== tiny_two " in out
    assert "4 passed, 0 failed" in out


def test_new_scaffolds_an_experiment_that_checks_green(root, capsys):
    assert sandbox(root, "new", "my_phenomenon") == 0
    folder = root / "experiments" / "my_phenomenon"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "expected.toml",
        "experiment.py",
    ]
    for f in folder.iterdir():
        text = f.read_text()
        assert "TEMPLATE_NAME" not in text and "my_phenomenon" in text
    capsys.readouterr()
    assert sandbox(root, "check", "my_phenomenon", "--seeds", "0-4") == 0
    assert "5 passed, 0 failed" in capsys.readouterr().out


def test_a_failing_check_exits_1_and_names_the_seed(root, capsys):
    failing = TINY_CHECKS.replace("at_most = 3.5", "at_most = 1.9")  # quick mode returns 2.0
    add_tiny(root, failing)
    assert sandbox(root, "check", "tiny", "--seeds", "0-1") == 1
    out = capsys.readouterr().out
    assert "FAIL 0/2" in out
    assert "failed: tiny (seed 0), tiny (seed 1)" in out
    # `run` fails too, and still records the failure in results.json
    assert sandbox(root, "run", "tiny") == 1
    res = root / "experiments" / "tiny" / "output" / "quick-seed0" / "results.json"
    assert json.loads(res.read_text())["passed"] is False


# ---------------------------------------------------------------- errors: exit 2, clear message


def _remove_question(folder):
    toml = folder / "expected.toml"
    lines = toml.read_text().splitlines(keepends=True)
    toml.write_text("".join(ln for ln in lines if not ln.startswith("question =")))


def _replace_code(old, new):
    def edit(folder):
        code = (folder / "experiment.py").read_text()
        assert old in code, f"the tiny experiment no longer contains {old!r}"
        (folder / "experiment.py").write_text(code.replace(old, new))

    return edit


def _checks(text):
    return lambda folder: (folder / "expected.toml").write_text(TINY_META + text)


CHECK = 'quantity = "value"\nreason = "a reason long enough to pass the length test."\n'

BROKEN = {
    "missing file": (
        lambda folder: (folder / "README.md").unlink(),
        "tiny: missing required file(s): README.md",
    ),
    "malformed toml": (
        lambda folder: (folder / "expected.toml").write_text("[experiment\ntitle = 1\n"),
        "tiny/expected.toml: not valid TOML",
    ),
    "no [experiment] table": (
        lambda folder: (folder / "expected.toml").write_text(TINY_CHECKS),
        "missing the [experiment] table",
    ),
    "missing [experiment] key": (_remove_question, "[experiment] needs a non-empty 'question'"),
    "no checks": (_checks(""), "no [[check]] tables"),
    "check without reason": (
        _checks('[[check]]\nquantity = "value"\nat_least = 1.0\n'),
        "check of 'value': 'reason' must say why the bound is what it is",
    ),
    "unknown key": (
        _checks(f"[[check]]\n{CHECK}at_lest = 1.0\n"),
        "unknown key(s) ['at_lest']",
    ),
    "contradictory bounds": (
        _checks(f"[[check]]\n{CHECK}at_least = 2.0\nat_most = 1.0\n"),
        "the bounds admit no value (lower >= 2, upper <= 1)",
    ),
    "strict bounds that touch": (
        _checks(f"[[check]]\n{CHECK}greater_than = 1.0\nat_most = 1.0\n"),
        "the bounds admit no value (lower > 1, upper <= 1)",
    ),
    "two kinds of comparison": (
        _checks(f"[[check]]\n{CHECK}equals = 2.0\nat_most = 3.0\n"),
        "give exactly one of 'equals', 'close_to', or bounds",
    ),
    "close_to without tolerance": (
        _checks(f"[[check]]\n{CHECK}close_to = 2.0\n"),
        "'close_to' needs a positive 'rtol' or 'atol'",
    ),
    "unknown mode": (
        _checks(f'[[check]]\n{CHECK}at_least = 1.0\nmodes = ["fast"]\n'),
        "'modes' must be a non-empty list drawn from ['quick', 'full']",
    ),
    "quantity checked twice": (
        _checks(f"[[check]]\n{CHECK}at_least = 1.0\n[[check]]\n{CHECK}at_most = 3.0\n"),
        "quantity checked twice in mode 'quick'",
    ),
    "feasible not a pair": (
        _checks(f"[[check]]\n{CHECK}at_least = 1.0\nfeasible = [0, 1, 2]\n"),
        "'feasible' must be [lo, hi], two numbers",
    ),
    "feasible of strings": (
        _checks(f'[[check]]\n{CHECK}at_least = 1.0\nfeasible = ["0", "1"]\n'),
        "'feasible' must be [lo, hi], two numbers",
    ),
    "feasible backwards": (
        _checks(f"[[check]]\n{CHECK}at_least = 1.0\nfeasible = [inf, 0]\n"),
        "'feasible' must be [lo, hi] with lo < hi",
    ),
    "feasible with nan": (
        _checks(f"[[check]]\n{CHECK}at_least = 1.0\nfeasible = [nan, 1]\n"),
        "'feasible' must be [lo, hi] with lo < hi",
    ),
    "bound beyond the feasible range": (
        _checks(f"[[check]]\n{CHECK}at_least = 2.0\nfeasible = [0, 1]\n"),
        "no feasible value passes (lower bound 2, feasible [0, 1])",
    ),
    "feasible on a boolean": (
        _checks(
            '[[check]]\nquantity = "positive"\nequals = true\nfeasible = [0, 1]\n'
            'reason = "a reason long enough to pass the length test."\n'
        ),
        "'feasible' is a range of numbers, not of booleans",
    ),
    "bound of the wrong type": (
        _checks(f'[[check]]\n{CHECK}at_least = "1.0"\n'),
        "'at_least' must be a finite number, got '1.0'",
    ),
    "infinite bound": (
        _checks(f"[[check]]\n{CHECK}at_most = inf\n"),
        "'at_most' must be a finite number, got inf",
    ),
    "unknown top-level table": (
        lambda folder: (folder / "expected.toml").write_text(
            TINY_META + TINY_CHECKS + "\n[extra]\nx = 1\n"
        ),
        "unknown top-level key(s) ['extra']",
    ),
    "quantity run() did not return": (
        _checks(
            '[[check]]\nquantity = "valeu"\nat_least = 1.0\n'
            'reason = "a reason long enough to pass the length test."\n'
        ),
        "expected.toml checks 'valeu', which run() did not return (returned scalars: "
        "noise, positive, value)",
    ),
    "quantity returned as an array": (
        _checks(
            '[[check]]\nquantity = "curve"\nat_least = 0.0\n'
            'reason = "a reason long enough to pass the length test."\n'
        ),
        "checks 'curve', but run() returned it as a ndarray, not a scalar",
    ),
    "no check in this mode": (
        _checks(f'[[check]]\n{CHECK}at_least = 1.0\nmodes = ["full"]\n'),
        "no check in expected.toml applies in quick mode for: tiny",
    ),
    "run() without keyword-only seed": (
        _replace_code("def run(*, quick, seed,", "def run(quick, seed, *,"),
        "run() must take keyword-only arguments quick and seed",
    ),
    "run() without keyword-only progress": (
        _replace_code("def run(*, quick, seed, progress):", "def run(*, quick, seed):"),
        "run() must take a keyword-only argument progress",
    ),
    "run() returns a list": (
        _replace_code("    return {", "    return [1.0]\n    return {"),
        "tiny (seed 0): run() must return a dict, got list",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_experiment_exits_2_with_a_clear_message(case, root, capsys):
    folder = add_tiny(root)
    breaks, message = BROKEN[case]
    breaks(folder)
    assert sandbox(root, "check", "tiny") == 2
    err = capsys.readouterr().err
    assert err.startswith("sandbox: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not (folder / "output").exists()


USAGE = {
    "unknown name": (["run", "nosuch"], "unknown experiment 'nosuch'; known: tiny"),
    "a path, not a name": (["run", "../tiny"], "unknown experiment '../tiny'"),
    "the template": (["run", "_template"], "unknown experiment '_template'"),
    "names and --all": (["check", "tiny", "--all"], "give experiment names or --all, not both"),
    "no name": (["check"], "name at least one experiment, or use --all"),
    "publish without --full": (["run", "tiny", "--publish"], "--publish copies a full-mode"),
    "no processes": (["check", "tiny", "--jobs", "0"], "--jobs: expected a positive number"),
    "negative processes": (["check", "tiny", "--jobs", "-2"], "--jobs: expected a positive number"),
    "new over an existing one": (["new", "tiny"], "experiments/tiny already exists"),
    "new with a bad name": (["new", "My-Phenomenon"], "expected lower_snake_case"),
}


@pytest.mark.parametrize("case", list(USAGE), ids=list(USAGE))
def test_a_usage_error_exits_2_with_a_clear_message(case, root, capsys):
    add_tiny(root)
    args, message = USAGE[case]
    assert sandbox(root, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sandbox: error: ") and message in err
    assert not (root / "experiments" / "tiny" / "output").exists()


def test_a_root_without_experiments_is_an_error(tmp_path, capsys):
    assert sandbox(tmp_path, "list") == 2
    assert "no experiments/ folder here" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "expected e.g. '0-4' or '0,3,7'"),
        ("4-0", "range '4-0' runs backwards"),
        ("a-b", "expected e.g. '0-4'"),
        ("0-", "expected e.g. '0-4'"),
        ("1;2", "expected e.g. '0-4'"),
        ("-1", "seeds are integers >= 0"),
        ("0,-3", "seeds are integers >= 0"),
        ("0,0,0", "each seed may appear once; '0,0,0' repeats 0"),
        ("0-4,3-6", "repeats 3, 4"),
        ("0-999999999", "names 1000000000 seeds; at most 100000 are allowed"),
        ("0-99999999999999999999", "seeds go up to 2**63 - 1"),
        ("9" * 5000, "seeds go up to 2**63 - 1"),  # no int() of 5000 digits
        ("1.5", "expected e.g. '0-4'"),
        ("\u0663", "expected e.g. '0-4'"),  # an Arabic-Indic digit three
    ],
)
def test_malformed_seeds_are_rejected_by_the_parser(bad, message, root, capsys):
    add_tiny(root)
    with pytest.raises(SystemExit) as exc:
        sandbox(root, "check", "tiny", "--seeds", bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and message in err and "Traceback" not in err
    assert not (root / "experiments" / "tiny" / "output").exists()


def test_a_huge_seed_range_is_refused_before_anything_is_allocated():
    import time

    t0 = time.perf_counter()
    with pytest.raises(argparse.ArgumentTypeError, match="at most 100000"):
        parse_seeds("0-999999999999999999")
    assert time.perf_counter() - t0 < 0.5


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-1, 5") == [0, 1, 5]
    assert parse_seeds("0-99999") == list(range(100_000))  # the limit itself is allowed
    assert parse_seeds(str(2**63 - 1)) == [2**63 - 1]


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "1e3", "", str(2**63)])
def test_a_bad_seed_is_a_clear_error(bad, root, capsys):
    add_tiny(root)
    with pytest.raises(SystemExit) as exc:
        sandbox(root, "run", "tiny", "--seed", bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed: expected an integer" in err and "Traceback" not in err


# ---------------------------------------------------------------- the comparisons themselves


def _check(**kw):
    raw = {"quantity": "q", "reason": "a reason long enough to pass.", **kw}
    return parse_checks([raw], where="test")[0]


@pytest.mark.parametrize(
    ("kw", "inside", "outside"),
    [
        ({"at_least": 1.0, "at_most": 2.0}, [1.0, 1.5, 2.0], [0.999, 2.001, float("nan")]),
        ({"greater_than": 1.0, "less_than": 2.0}, [1.001, 1.999], [1.0, 2.0, float("inf")]),
        ({"close_to": 10.0, "rtol": 0.1}, [9.0, 11.0], [8.99, 11.01]),
        ({"close_to": 0.0, "atol": 1e-3}, [-1e-3, 1e-3], [2e-3]),
        ({"equals": 3}, [3, 3.0], [2.999]),
        ({"equals": True}, [True], [False, 1, 1.0]),
    ],
)
def test_comparisons_accept_inside_and_reject_outside(kw, inside, outside):
    check = _check(**kw)
    assert all(check.passes(x) for x in inside)
    assert not any(check.passes(x) for x in outside)


def test_a_bad_check_is_an_experiment_error():
    with pytest.raises(ExperimentError, match="'at_least' must be a finite number"):
        _check(at_least=float("nan"))
    with pytest.raises(ExperimentError, match="'rtol'/'atol' only go with 'close_to'"):
        _check(at_least=1.0, rtol=0.1)


def test_published_results_stay_small_and_say_what_they_left_out():
    from sandbox.runner import publishable

    payload = {
        "experiment": "x",
        "quantities": {"rate": 1.0},
        "series": {"small": [1.0, 2.0], "huge": list(range(200_000))},
    }
    out = publishable(payload, max_bytes=10_000)
    assert out["quantities"] == {"rate": 1.0}  # checked numbers are never dropped
    assert out["series"] == {"small": [1.0, 2.0]}
    assert out["series_omitted"] == ["huge"]
    assert len(json.dumps(out)) <= 10_000
    assert publishable({"series": {"small": [1.0]}}) == {"series": {"small": [1.0]}}


# ---------------------------------------------------------------- experiments that misbehave


def _misbehave(line: str, *, seeds: str = "True"):
    """Insert ``line`` at the top of ``run()``, executed when ``seeds`` (an expression of
    ``seed``) holds."""
    return lambda folder: (folder / "experiment.py").write_text(
        (folder / "experiment.py")
        .read_text()
        .replace(
            "    rng = np.random.default_rng(seed)",
            f"    if {seeds}:\n        {line}\n    rng = np.random.default_rng(seed)",
        )
    )


MISBEHAVING = {
    "sys.exit(0)": ("import sys; sys.exit(0)", "the experiment called sys.exit(0) instead of"),
    "sys.exit(1)": ("import sys; sys.exit(1)", "the experiment called sys.exit(1) instead of"),
    "SystemExit('bye')": ("raise SystemExit('bye')", "the experiment called sys.exit('bye')"),
    "os._exit(0)": ("import os; os._exit(0)", "its worker process exited with code 0 before"),
    "os._exit(3)": ("import os; os._exit(3)", "its worker process exited with code 3 before"),
    "SIGKILL": (
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "its worker process was killed by SIGKILL before it reported a result",
    ),
    "SIGTERM": (
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
        "its worker process was killed by SIGTERM",
    ),
    "segfault": ("import ctypes; ctypes.string_at(0)", "its worker process was killed by SIGSEGV"),
    "returns None": ("return None", "run() must return a dict, got NoneType"),
    "returns a set": ("return {1.0}", "run() must return a dict, got set"),
    "raises": ("raise ValueError('boom')", "an exception in the experiment: ValueError: boom"),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", "an exception in the experiment: Keyboard"),
    "a checked quantity is a string": (
        "return {'value': '2.0', 'positive': True}",
        "expected.toml checks 'value', but run() returned it as a str, not a scalar",
    ),
    "returns an unpicklable value": (
        "return {'value': 2.0, 'positive': True, 'gen': (i for i in [])}",
        "",  # passes: series are not sent back to the parent
    ),
}


CASES = [(c, "1") for c in MISBEHAVING] + [
    (c, "2") for c in ("sys.exit(0)", "os._exit(0)", "SIGKILL", "raises")
]


@pytest.mark.parametrize(("case", "jobs"), CASES, ids=[f"{c}-jobs{j}" for c, j in CASES])
def test_a_run_that_does_not_return_is_an_error_never_a_pass(case, jobs, root, capsys):
    line, message = MISBEHAVING[case]
    _misbehave(line)(add_tiny(root))
    code = sandbox(root, "check", "tiny", "--seeds", "0-1", "--jobs", jobs)
    captured = capsys.readouterr()
    if not message:
        assert code == 0 and "2 passed, 0 failed, 0 errors" in captured.out
        return
    assert code == 2
    assert "0 passed, 0 failed, 2 errors" in captured.out
    assert "errors: tiny (0,1)" in captured.out
    assert f"sandbox: error: tiny (seeds 0,1): {message}" in captured.err


def test_an_error_on_one_seed_leaves_the_other_seeds_checked(root, capsys):
    _misbehave("import os; os._exit(0)", seeds="seed == 2")(add_tiny(root))
    assert sandbox(root, "check", "tiny", "--seeds", "0-4", "--jobs", "2") == 2
    captured = capsys.readouterr()
    assert "== tiny (quick; slowest seed" in captured.out and "errors on seeds 2" in captured.out
    assert "measured (seeds 0,1,3,4)" in captured.out and "PASS 4/4" in captured.out
    assert "4 passed, 0 failed, 1 errors" in captured.out
    assert "sandbox: error: tiny (seed 2): its worker process exited" in captured.err


def test_the_traceback_of_an_exception_in_run_is_shown(root, capsys):
    _misbehave("raise ValueError('boom')")(add_tiny(root))
    assert sandbox(root, "check", "tiny") == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "experiment.py" in err


@pytest.mark.parametrize("case", ["sys.exit(0)", "os._exit(0)", "raises"])
def test_run_reports_a_run_that_does_not_return(case, root, capsys):
    line, message = MISBEHAVING[case]
    folder = add_tiny(root)
    assert sandbox(root, "run", "tiny") == 0
    _misbehave(line)(folder)
    capsys.readouterr()
    assert sandbox(root, "run", "tiny", "--seed", "0") == 2
    err = capsys.readouterr().err
    assert f"sandbox: error: tiny (seed 0): {message}" in err
    out = folder / "output" / "quick-seed0"
    # the results of the earlier run are set aside, never left to pass for this one
    assert not (out / "results.json").exists() and not (out / "figure.png").exists()
    assert json.loads((out / "previous" / "results.json").read_text())["passed"] is True
    _misbehave("pass", seeds="False")(folder)
    (folder / "experiment.py").write_text(TINY_PY)
    assert sandbox(root, "run", "tiny") == 0
    assert (out / "results.json").is_file() and not (out / "previous").exists()


def test_check_all_isolates_every_failure(root, capsys):
    add_tiny(root, name="a_raises")
    _misbehave("raise RuntimeError('broken')")(root / "experiments" / "a_raises")
    add_tiny(root, name="b_bad_toml")
    (root / "experiments" / "b_bad_toml" / "expected.toml").write_text("[experiment\n")
    add_tiny(root, name="c_exits")
    _misbehave("import sys; sys.exit(0)")(root / "experiments" / "c_exits")
    add_tiny(root, name="d_fails", checks=TINY_CHECKS.replace("at_most = 3.5", "at_most = 1.9"))
    add_tiny(root, name="e_passes")
    assert sandbox(root, "check", "--all", "--seeds", "0-1", "--jobs", "2") == 2
    captured = capsys.readouterr()
    out = captured.out
    assert "== d_fails (quick" in out and "== e_passes (quick" in out  # every other one ran
    assert "2 passed, 2 failed, 5 errors" in out
    assert "failed: d_fails (seed 0), d_fails (seed 1)" in out
    assert "errors: a_raises (0,1), c_exits (0,1), b_bad_toml (did not load)" in out
    assert "sandbox: error: b_bad_toml/expected.toml: not valid TOML" in captured.err
    assert "sandbox: error: c_exits (seeds 0,1): the experiment called sys.exit(0)" in captured.err
    assert "RuntimeError: broken" in captured.err


def test_a_failed_check_exits_1_and_an_error_outranks_it(root, capsys):
    add_tiny(root, checks=TINY_CHECKS.replace("at_most = 3.5", "at_most = 1.9"))
    assert sandbox(root, "check", "tiny") == 1
    add_tiny(root, name="zzz")
    _misbehave("import os; os._exit(0)")(root / "experiments" / "zzz")
    assert sandbox(root, "check", "tiny", "zzz") == 2


def test_list_reports_a_broken_experiment_and_lists_the_rest(root, capsys):
    add_tiny(root)
    add_tiny(root, name="broken")
    (root / "experiments" / "broken" / "expected.toml").write_text("[experiment\n")
    assert sandbox(root, "list") == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("tiny ")
    assert "sandbox: error: broken/expected.toml: not valid TOML" in captured.err


NAN_PY = TINY_PY.replace(
    '"value": 2.0 if quick else 3.0,', '"value": float("nan") if seed % 2 else 2.0 + seed / 100,'
)


def test_check_names_the_failing_seeds_and_their_values(root, capsys):
    add_tiny(root, checks=TINY_CHECKS.replace("at_least = 1.5", "at_least = 2.015"), code=NAN_PY)
    assert sandbox(root, "check", "tiny", "--seeds", "0-5") == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("value "))
    assert "2 .. 2.04 + 3 NaN" in row  # the range of the numbers, NaN counted apart
    assert "FAIL 2/6" in row
    assert "seed 0: 2, seed 1: NaN, seed 3: NaN, seed 5: NaN" in row
    assert "failing seeds: value" in out


def test_a_long_list_of_failing_seeds_is_cut_with_a_count(root, capsys):
    add_tiny(root, checks=TINY_CHECKS.replace("at_most = 3.5", "at_most = 1.9"))
    assert sandbox(root, "check", "tiny", "--seeds", "0-11", "--jobs", "2") == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("value"))
    assert "seed 7: 2, ... (4 more)" in row


# ---------------------------------------------------------------- results, files, the filesystem


def test_a_plotting_failure_keeps_the_numbers_and_exits_2(root, capsys):
    folder = add_tiny(root)
    code = folder / "experiment.py"
    code.write_text(code.read_text().replace("    fig, ax = subplots()", "    1 / 0"))
    assert sandbox(root, "run", "tiny") == 2
    captured = capsys.readouterr()
    out = folder / "output" / "quick-seed0"
    assert "drawing the figure failed (ZeroDivisionError: division by zero)" in captured.err
    assert f"the numbers are saved in {out / 'results.json'}" in captured.err
    res = json.loads((out / "results.json").read_text())
    assert res["quantities"]["value"] == 2.0 and res["figure_error"].startswith("ZeroDivision")
    assert not (out / "figure.png").exists()


def test_a_missing_quantity_keeps_the_numbers_marked_not_passed(root, capsys):
    folder = add_tiny(root, checks=TINY_CHECKS.replace('quantity = "value"', 'quantity = "valeu"'))
    assert sandbox(root, "run", "tiny") == 2
    res = json.loads((folder / "output" / "quick-seed0" / "results.json").read_text())
    assert res["passed"] is False and "'valeu', which run() did not return" in res["error"]
    assert res["quantities"]["value"] == 2.0


def test_results_and_published_files_are_readable_by_everyone(root):
    folder = add_tiny(root)
    old = os.umask(0o077)  # a strict umask must not make shared results private
    try:
        assert sandbox(root, "run", "tiny", "--full", "--publish") == 0
    finally:
        os.umask(old)
    out = folder / "output" / "full-seed0"
    for path in (out / "results.json", out / "figure.png", folder / "figure.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert (folder / "results_full.json").stat().st_mode & 0o777 == 0o644


def test_a_run_whose_checks_fail_is_not_published(root, capsys):
    folder = add_tiny(root, checks=TINY_CHECKS.replace("at_least = 1.5", "at_least = 3.1"))
    assert sandbox(root, "run", "tiny", "--full", "--publish") == 1
    assert "not published: a check failed" in capsys.readouterr().out
    assert not (folder / "figure.png").exists() and not (folder / "results_full.json").exists()


def test_out_that_is_a_file_is_a_clear_error(root, tmp_path, capsys):
    add_tiny(root)
    target = tmp_path / "a_file"
    target.write_text("x")
    for out in (target, target / "below"):
        assert sandbox(root, "run", "tiny", "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert err.startswith("sandbox: error: --out: ") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert target.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_a_clear_error(root, tmp_path, capsys):
    add_tiny(root)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert sandbox(root, "run", "tiny", "--out", str(ro)) == 2
    finally:
        ro.chmod(0o755)
    assert "--out: cannot write in" in capsys.readouterr().err


@pytest.mark.parametrize("errno_name", ["EACCES", "EROFS", "ENOSPC"])
def test_an_unwritable_out_is_refused_before_running(
    errno_name, root, tmp_path, monkeypatch, capsys
):
    """The folder is probed before a (possibly minutes-long) run: permission denied, a read-only
    file system or a full disk end at once with exit 2 (simulated: root ignores permissions)."""
    import errno
    import tempfile

    add_tiny(root)
    code = getattr(errno, errno_name)

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert sandbox(root, "run", "tiny", "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"--out: cannot write in {tmp_path / 'out'}: {os.strerror(code)}" in err
    assert "Traceback" not in err


def test_a_full_disk_while_writing_results_is_a_clear_error(root, monkeypatch):
    import errno

    import sandbox._io as io

    folder = add_tiny(root)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)
    out = folder / "output" / "quick-seed0"
    with pytest.raises(ExperimentError, match=r"cannot write .*results.json: No space left"):
        run_experiment(get(root, "tiny"), quick=True, seed=0, out_dir=out)
    assert leftovers(folder) == [] and not (out / "results.json").exists()


# ---------------------------------------------------------------- the command line itself


def test_help_is_plain_text(root, capsys):
    texts = []
    for args in ([], ["list"], ["run"], ["check"], ["calibrate"], ["new"]):
        with pytest.raises(SystemExit) as exc:
            sandbox(root, *args, "--help")
        assert exc.value.code == 0
        texts.append(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["--root", str(REPO), "sweep", "linear_convergence", "--help"])
    texts.append(capsys.readouterr().out)
    for text in texts:
        assert "``" not in text and not re.search(r":(func|mod|class|data|meth):`", text), text
    assert "calibrate" in texts[0] and "exit status" in texts[0]
    assert "--on-conflict" in texts[-1] and "Figure 1 of Du" in texts[-1]


def test_new_prints_the_next_steps(root, capsys):
    assert sandbox(root, "new", "my_effect") == 0
    out = capsys.readouterr().out
    steps = [
        "edit experiment.py, expected.toml and README.md",
        "sandbox check my_effect --seeds 0-4",
        "sandbox calibrate my_effect --seeds 0-199 --jobs 2",
        "calibration.json",
        "below\n       1e-4 per seed",
        "sandbox run my_effect --full --publish",
        "python -m pytest",
    ]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), out
    assert positions == sorted(positions)


def test_list_into_a_closed_pipe_prints_no_traceback(root):
    for i in range(30):
        add_tiny(root, name=f"tiny_{i:02d}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--root", str(root), "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # the reader is gone before the first line (as `| head -0` would be)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_head_of_list_prints_no_traceback(root):
    for i in range(30):
        add_tiny(root, name=f"tiny_{i:02d}")
    cmd = f"{sys.executable} -m sandbox --root {root} list | head -n 2"
    proc = subprocess.run(
        ["bash", "-c", cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.splitlines()[0].startswith("tiny_00") and len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_a_check_with_130_and_no_traceback(root):
    folder = add_tiny(root)
    _misbehave("import time; time.sleep(30)")(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--root", str(root), "check", "tiny", "--seeds", "0-3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    import time

    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and not Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    ):
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "sandbox: interrupted" in err and "Traceback" not in err


def test_more_jobs_than_runs_start_only_what_is_needed(root, capsys):
    add_tiny(root)
    assert sandbox(root, "check", "tiny", "--seeds", "0", "--jobs", "64") == 0
    assert "1 passed, 0 failed, 0 errors" in capsys.readouterr().out
