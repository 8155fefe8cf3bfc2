"""``sandbox calibrate`` end to end, in a throwaway sandbox root.

The test experiment ``noisy`` returns a Gaussian quantity, a boolean and a 0/1
count per seed. It leaves a marker file per call in ``$SANDBOX_TEST_MARKS``
(so re-runs are countable), and calls ``os._exit`` on the seed named by
``$SANDBOX_TEST_DIE``. The worker processes inherit both variables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.record import RECORD, load_record, record_problems, stamp, target_problems
from sandbox.registry import get

REPO = Path(__file__).resolve().parents[1]

NOISY_PY = """
import os
import time
from pathlib import Path

import numpy as np
from shared.plotting import subplots


def run(*, quick, seed, progress=None):
    marks = os.environ.get("SANDBOX_TEST_MARKS")
    if marks:
        Path(marks, f"{seed}-{os.getpid()}-{time.time_ns()}").touch()
    if str(seed) == os.environ.get("SANDBOX_TEST_DIE"):
        os._exit(0)
    time.sleep(float(os.environ.get("SANDBOX_TEST_SLEEP", "0")))
    rng = np.random.default_rng(seed)
    return {
        "gauss": float(rng.normal(1.0, 0.1)),
        "flag": True,
        "count": int(rng.integers(0, 2)),
        "maybe_nan": float("nan") if seed % 10 == 3 else 1.0 + float(rng.uniform()),
        "maybe_inf": float("-inf") if seed % 10 == 7 else 1.0 + float(rng.uniform()),
        "curve": np.zeros(3),
    }


def plot(result):
    fig, ax = subplots()
    ax.plot(result["curve"])
    return fig
"""

META = """
[experiment]
title = "noisy: a calibration test"
question = "Does calibration measure every check over many seeds?"
claim = "gauss ~ N(1, 0.1), flag is true, count is 0 or 1."
"""

CHECKS = """
[[check]]
quantity = "gauss"
at_least = 0.5
at_most = 1.5
reason = "N(1, 0.1): 5 SDs either side."

[[check]]
quantity = "flag"
equals = true
reason = "run() always returns true."

[[check]]
quantity = "count"
at_most = 1
feasible = [0, inf]
reason = "an integer draw in {0, 1}."
"""


@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "sandbox-under-test"\n')
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SANDBOX_TEST_MARKS", str(marks))
    monkeypatch.delenv("SANDBOX_TEST_DIE", raising=False)
    return tmp_path


def add(root: Path, name: str = "noisy", checks: str = CHECKS, code: str = NOISY_PY) -> Path:
    folder = root / "experiments" / name
    folder.mkdir()
    (folder / "README.md").write_text(f"# {name}\n")
    (folder / "experiment.py").write_text(code)
    (folder / "expected.toml").write_text(META + checks)
    return folder


def calls(root: Path, seed: int | None = None) -> int:
    return len(
        [p for p in (root / "marks").iterdir() if seed is None or p.name.split("-")[0] == str(seed)]
    )


def sandbox(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def entries(folder: Path, mode: str = "quick") -> dict:
    return {e["quantity"]: e for e in load_record(folder)[mode]["checks"]}


def test_calibrate_prints_the_table_and_saves_the_record(root, capsys):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-59", "--jobs", "2") == 1
    out = capsys.readouterr().out
    for column in ("min", "p01", "median", "p99", "max", "fails", "margin (SD)", "false-fail"):
        assert column in out
    assert "gauss: max(normal tail from median and 1.4826 MAD" in out  # the method, named
    assert "binomial 95% upper bound" in out
    assert "above the target or failing: noisy.flag, noisy.count, noisy.maybe_nan" not in out

    path = folder / RECORD
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.stat().st_size < 6000
    record = json.loads(path.read_text())
    assert list(record) == ["experiment", "quick"]
    sec = record["quick"]
    assert sec["stamp"] == stamp(folder)
    assert (sec["seeds"], sec["n_seeds"]) == ("0-59", 60)
    assert set(sec["environment"]) == {"python", "numpy", "platform"}
    assert set(sec["runtime_s"]) == {"median", "max", "total"}
    by = entries(folder)
    assert list(by) == ["gauss", "flag", "count"]
    g = by["gauss"]
    assert list(g) == [
        "quantity", "expected", "bound", "feasible", "n", "n_nan", "min", "p01", "median",
        "p99", "max", "n_fail", "failed", "margin_sd", "false_failure_rate", "method",
    ]  # fmt: skip
    assert g["bound"] == {"at_least": 0.5, "at_most": 1.5} and g["feasible"] is None
    assert (g["n"], g["n_nan"], g["n_fail"], g["failed"]) == (60, 0, 0, [])
    assert g["min"] <= g["p01"] <= g["median"] <= g["p99"] <= g["max"]
    assert 0.9 < g["median"] < 1.1 and 3 < g["margin_sd"] < 6
    assert 0 < g["false_failure_rate"] < 1e-3
    f = by["flag"]
    assert (f["min"], f["max"], f["margin_sd"]) == (1.0, 1.0, None)
    assert f["false_failure_rate"] == pytest.approx(1 - 0.05 ** (1 / 60), rel=1e-2)
    assert by["count"]["feasible"] == [0.0, None]  # JSON null for an infinite end
    rows = (folder / "output" / "calibration-quick.jsonl").read_text().splitlines()
    assert len(rows) == 60 and all(json.loads(r)["stamp"] == stamp(folder) for r in rows)


def test_failing_seeds_and_nan_are_named_and_counted(root, capsys):
    checks = CHECKS.replace("at_most = 1.5", "at_most = 1.1") + (
        '[[check]]\nquantity = "maybe_nan"\nat_least = 1.0\nreason = "uniform on [1, 2)."\n'
        '[[check]]\nquantity = "maybe_inf"\nat_least = 1.0\nreason = "uniform on [1, 2)."\n'
    )
    folder = add(root, checks=checks)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-29", "--jobs", "2") == 1
    out = capsys.readouterr().out
    by = entries(folder)
    assert 0 < by["gauss"]["n_fail"] == len(by["gauss"]["failed"])
    assert all(v > 1.1 for _, v in by["gauss"]["failed"])
    assert by["gauss"]["margin_sd"] < 0  # the sample crosses the bound
    nan = by["maybe_nan"]
    assert (nan["n_nan"], nan["n_fail"]) == (3, 3)
    assert nan["failed"] == [[3, None], [13, None], [23, None]]
    assert nan["false_failure_rate"] >= 3 / 30
    assert "seed 3: NaN" in out and "noisy.gauss" in out
    inf = by["maybe_inf"]  # stored as "-inf" in JSON, printed as such
    assert inf["failed"] == [[7, "-inf"], [17, "-inf"], [27, "-inf"]]
    assert "seed 7: -inf" in out


def test_an_interrupted_calibration_resumes(root, capsys):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-19") == 1
    assert calls(root) == 20
    first = entries(folder)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-39", "--jobs", "2") == 1
    assert calls(root) == 40  # seeds 0-19 came from the rows, not from new runs
    assert "resuming; 20 of 40 seeds" in capsys.readouterr().err
    assert entries(folder)["gauss"]["n"] == 40
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-19") == 1
    assert calls(root) == 40 and entries(folder) == first  # same seeds, same record


def test_rows_of_other_code_are_ignored_and_an_edited_bound_reuses_them(root):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-9") == 1
    old = stamp(folder)
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text().replace("5 SDs either side", "five SDs either side"))
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-9") == 1
    assert calls(root) == 10  # same code: the bound is re-judged on the stored quantities
    assert load_record(folder)["quick"]["stamp"] == stamp(folder) != old
    code = next(folder.glob("*.py"))
    code.write_text(code.read_text() + "\n# an edit of the code\n")
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-9") == 1
    assert calls(root) == 20  # other code: every seed ran again
    rows = [json.loads(r) for r in (folder / "output" / "calibration-quick.jsonl").open()]
    assert [r["stamp"]["code"] == old["code"] for r in rows].count(True) == 10  # kept apart


def test_a_seed_that_dies_is_an_error_and_is_retried(root, capsys, monkeypatch):
    folder = add(root)
    monkeypatch.setenv("SANDBOX_TEST_DIE", "3")
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-9", "--jobs", "2") == 2
    err = capsys.readouterr().err
    assert "sandbox: error: noisy (seed 3): its worker process exited with code 0" in err
    sec = load_record(folder)["quick"]
    assert sec["n_errors"] == 1 and sec["errors"][0][0] == 3
    assert all(e["n"] == 9 for e in sec["checks"])
    assert target_problems(get(root, "noisy"))[0].startswith("1 seeds ended in an error")

    monkeypatch.delenv("SANDBOX_TEST_DIE")
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-9") == 1
    assert calls(root, 3) == 2 and calls(root) == 11  # only the seed in error ran again
    sec = load_record(folder)["quick"]
    assert "n_errors" not in sec and all(e["n"] == 10 for e in sec["checks"])


def test_a_torn_last_row_is_ignored_and_the_next_row_starts_a_line(root, capsys):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-4") == 1
    rows = folder / "output" / "calibration-quick.jsonl"
    with rows.open("a") as fh:
        fh.write('{"stamp": {"expected.to')  # a crash mid-append
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-5") == 1
    assert calls(root) == 6
    assert "1 unreadable line(s)" in capsys.readouterr().err
    assert sum(1 for line in rows.open() if line.startswith('{"stamp": {"expected.toml')) == 6


def test_quick_and_full_sections_live_side_by_side(root):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--full", "--seeds", "0-2") == 0
    full = load_record(folder)["full"]
    assert full["n_seeds"] == 3
    assert (
        "normal tail from median and 1.4826 MAD only" in entries(folder, "full")["gauss"]["method"]
    )
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-4") == 1
    record = load_record(folder)
    assert list(record) == ["experiment", "quick", "full"] and record["full"] == full


def test_calibrate_all_isolates_a_broken_experiment(root, capsys):
    add(root)
    add(root, "broken", checks='[[check]]\nquantity = "gauss"\n')  # no reason: does not load
    assert sandbox(root, "calibrate", "--all", "--seeds", "0-4") == 2
    captured = capsys.readouterr()
    assert "== noisy (quick; seeds 0-4" in captured.out
    assert "sandbox: error: broken/expected.toml" in captured.err
    assert (root / "experiments" / "noisy" / RECORD).is_file()
    assert not (root / "experiments" / "broken" / RECORD).exists()


def test_a_second_calibration_of_one_experiment_is_refused(root, capsys):
    import fcntl

    folder = add(root)
    rows = folder / "output" / "calibration-quick.jsonl"
    rows.parent.mkdir()
    with open(rows, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert sandbox(root, "calibrate", "noisy", "--seeds", "0-4") == 2
    assert "another calibration is writing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "noisy", "--jobs", "0"], "--jobs: expected a positive number"),
        (["calibrate", "nosuch"], "unknown experiment 'nosuch'"),
        (["calibrate"], "name at least one experiment, or use --all"),
    ],
)
def test_calibrate_usage_errors(root, capsys, args, message):
    add(root)
    assert sandbox(root, *args) == 2
    assert message in capsys.readouterr().err
    assert calls(root) == 0


# ---------------------------------------------------------------- the record against the folder


def test_record_problems_say_what_is_missing_stale_or_changed(root):
    folder = add(root)
    exp = lambda: get(root, "noisy")  # noqa: E731 -- reloaded after every edit
    assert record_problems(exp()) == ["calibration.json is missing: run `sandbox calibrate noisy`"]
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-4") == 1
    assert record_problems(exp()) == []
    assert record_problems(exp(), "full")[0].startswith("calibration.json has no 'full' section")

    code = folder / "experiment.py"
    code.write_text(code.read_text() + "\n# edited\n")
    assert record_problems(exp()) == [
        "the experiment's *.py files changed since the quick calibration: "
        "run `sandbox calibrate noisy`"
    ]
    (folder / "helper.py").write_text("x = 1\n")  # a new file of the experiment counts too
    code.write_text(NOISY_PY)
    assert len(record_problems(exp())) == 1
    (folder / "helper.py").unlink()
    assert record_problems(exp()) == []

    # a bound edited and the stamp recomputed by hand: the bound still gives it away
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text().replace("at_most = 1.5", "at_most = 2.5"))
    record = load_record(folder)
    record["quick"]["stamp"] = stamp(folder)
    (folder / RECORD).write_text(json.dumps(record))
    (found,) = record_problems(exp())
    assert found.startswith("the bound of 'gauss' is >= 0.5 and <= 2.5 but was calibrated as")

    toml.write_text(META + CHECKS.split('[[check]]\nquantity = "count"')[0])
    record["quick"]["stamp"] = stamp(folder)
    (folder / RECORD).write_text(json.dumps(record))
    assert any(
        "calibrates ['count'], which expected.toml does not check" in p
        for p in record_problems(exp())
    )

    (folder / RECORD).write_text("{not json")
    assert "not valid JSON" in record_problems(exp())[0]


def test_check_prints_the_calibrated_range(root, capsys):
    folder = add(root)
    assert sandbox(root, "calibrate", "noisy", "--seeds", "0-19") == 1
    capsys.readouterr()
    assert sandbox(root, "check", "noisy", "--seeds", "0-2", "--calibrated") == 0
    out = capsys.readouterr().out
    g = entries(folder)["gauss"]
    assert "calibrated range" in out and "(seeds 0-19)" in out
    assert "(stale)" not in out
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text() + "\n")
    assert sandbox(root, "check", "noisy", "--seeds", "0-2", "--calibrated") == 0
    assert "(seeds 0-19) (stale)" in capsys.readouterr().out
    assert g["min"] < g["max"]


# ---------------------------------------------------------------- signals


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signal_mid_calibration_loses_no_finished_seed(root, sig):
    folder = add(root)
    rows = folder / "output" / "calibration-quick.jsonl"
    env = {**os.environ, "SANDBOX_TEST_SLEEP": "0.2", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "sandbox", "--root", str(root), "calibrate", "noisy"]
    proc = subprocess.Popen(
        [*cmd, "--seeds", "0-39", "--jobs", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if rows.exists() and len(rows.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the calibration runs its seeds in worker processes"
    proc.send_signal(sig)  # to the driver only, as `kill PID` would
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "interrupted; the finished seeds are saved and the same command resumes" in err
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # the workers end too: none is left running
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)
    saved = [json.loads(r) for r in rows.read_text().splitlines() if r.endswith("}")]
    assert 4 <= len(saved) < 40
    before = calls(root)
    assert subprocess.run([*cmd, "--seeds", "0-39"], env=env, capture_output=True).returncode == 1
    assert calls(root) - before == 40 - len({r["seed"] for r in saved})  # only the rest ran
    assert load_record(folder)["quick"]["n_seeds"] == 40
