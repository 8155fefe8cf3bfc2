"""The ``sandbox`` command end to end, in a throwaway sandbox root.

Each test copies ``experiments/_template`` and a minimal ``pyproject.toml``
into ``tmp_path`` and drives :func:`sandbox.cli.main` with
``--root tmp_path``, so nothing here depends on (or touches) the real
experiments.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandbox.checks import parse_checks
from sandbox.cli import main, parse_seeds
from sandbox.errors import ExperimentError

REPO = Path(__file__).resolve().parents[1]

# A tiny experiment whose quick and full modes both take milliseconds: it returns a fixed
# scalar (2.0 quick, 3.0 full), a boolean and a series, and plots the series.
TINY_PY = """
import numpy as np
from shared.plotting import subplots


def run(*, quick, seed, progress=lambda i, total, label="": None):
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


def test_run_of_the_template_experiment(root):
    """The template itself is a complete experiment: copied under a name, it runs green."""
    assert sandbox(root, "new", "demo") == 0
    assert sandbox(root, "run", "demo") == 0
    out = root / "experiments" / "demo" / "output" / "quick-seed0"
    assert (out / "figure.png").stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["passed"] is True


def test_a_crash_while_writing_results_leaves_no_partial_file(root, monkeypatch):
    add_tiny(root)
    out = root / "experiments" / "tiny" / "output" / "quick-seed0"
    assert sandbox(root, "run", "tiny") == 0
    before = (out / "results.json").read_text()

    def crash(obj, fh, **kw):
        fh.write('{"experiment": "tiny", "half": ')  # part of the file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        sandbox(root, "run", "tiny")
    assert (out / "results.json").read_text() == before  # the old, complete file is intact
    assert leftovers(root / "experiments" / "tiny") == []

    shutil.rmtree(out)
    with pytest.raises(OSError, match="disk full"):
        sandbox(root, "run", "tiny")
    assert not (out / "results.json").exists()  # no file rather than half a file
    assert leftovers(root / "experiments" / "tiny") == []


def test_a_crash_while_saving_the_figure_leaves_no_partial_file(root, monkeypatch):
    from matplotlib.figure import Figure

    add_tiny(root)

    def crash(self, fname, **kw):
        fname.write(b"\x89PNG half")  # the figure is rendered in memory, then written atomically
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", crash)
    with pytest.raises(OSError, match="disk full"):
        sandbox(root, "run", "tiny")
    out = root / "experiments" / "tiny" / "output" / "quick-seed0"
    assert not (out / "figure.png").exists()
    assert leftovers(root / "experiments" / "tiny") == []


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
    return lambda folder: (folder / "experiment.py").write_text(
        (folder / "experiment.py").read_text().replace(old, new)
    )


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
        _replace_code(', progress=lambda i, total, label="": None)', ")"),
        "run() must take a keyword-only argument progress",
    ),
    "run() returns a list": (
        _replace_code("    return {", "    return [1.0]\n    return {"),
        "tiny: run() must return a dict, got list",
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


@pytest.mark.parametrize("bad", ["", "4-0", "a-b", "0-", "1;2"])
def test_malformed_seeds_are_rejected_by_the_parser(bad, root, capsys):
    with pytest.raises(SystemExit) as exc:
        sandbox(root, "check", "tiny", "--seeds", bad)
    assert exc.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-1, 5") == [0, 1, 5]


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
