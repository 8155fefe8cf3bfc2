"""Tests for sandbox.sweep: a local process pool and a real Dask cluster on loopback.

Every Dask test talks to a ``distributed.LocalCluster`` with two worker
processes started by the test; nothing is mocked. Tasks are tiny (n = 20).
"""

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("distributed") is None:  # a dev dependency: fail loudly, never skip
    raise ImportError("tests/test_sweep.py needs dask[distributed]; install the 'cluster' extra")

from sandbox.cli import main
from sandbox.sweep import load_task, read_table, run_sweep, sources_hash, task_key, task_rng

ROOT = Path(__file__).resolve().parents[1]
figure1_task = load_task(ROOT, "linear_convergence").task  # experiments/linear_convergence/sweep.py

TINY = {"m": [16, 256], "n": [20], "d": [10], "steps": [30]}


def marker_task(config, rng):
    """Leaves one marker file per call (re-runs are countable), then returns its first draw.

    Raises when the file ``fail-<x>`` exists in the marker folder; kills its own
    worker process when it is the first to find the file ``die`` there.
    """
    folder = Path(config["markers"])
    draw = int(rng.integers(2**62))
    (folder / f"{config['x']}-{draw}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    with contextlib.suppress(FileNotFoundError):  # one task only: the unlink is atomic
        (folder / "die").unlink()
        (folder / f"died-{config['x']}-{draw}").touch()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-task
    time.sleep(config["sleep"])
    if (folder / f"fail-{config['x']}").exists():
        raise RuntimeError(f"x={config['x']} told to fail")
    return {"draw": draw}


def calls(markers: Path, row: dict) -> int:
    """How many times the task of ``row`` started."""
    return len(list(markers.glob(f"{row['x']}-{row['draw']}-*")))


def key(row: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in row.items() if k not in ("runtime_s",)))


def task_ids(rows) -> list[tuple]:
    return [(r.get("x", r.get("m")), r["seed"]) for r in rows]


def marker_grid(folder: Path, xs, sleep=0.0) -> dict:
    folder.mkdir(exist_ok=True)
    return {"x": list(xs), "markers": [str(folder)], "sleep": [sleep]}


@pytest.fixture(scope="module")
def cluster():
    # imported where used: pool workers import this module to unpickle marker_task
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as c:
        yield c


def test_task_stream_depends_only_on_root_config_seed():
    def draws(config, seed, root_seed=0):
        return task_rng(config, seed, root_seed=root_seed).random(4)

    base = draws({"m": 16, "n": 20}, 3)
    np.testing.assert_array_equal(base, draws({"n": 20, "m": 16}, 3))  # key order is irrelevant
    for other in (
        draws({"m": 16, "n": 20}, 4),
        draws({"m": 32, "n": 20}, 3),
        draws({"m": 16, "n": 20}, 3, root_seed=1),
    ):
        assert not np.any(base == other)


@pytest.mark.parametrize(
    ("grid", "seeds", "kwargs", "match"),
    [
        ([16], [0], {}, "grid: expected a dict"),
        ({"m": []}, [0], {}, r"grid\['m'\]: expected a non-empty list"),
        ({"seed": [1]}, [0], {}, "grid: expected names that are not one of"),
        ({"m": [[1, 2]]}, [0], {}, r"grid\['m'\]: expected str, int"),
        ({"m": [1.0, float("nan")]}, [0], {}, r"grid\['m'\]: expected str, int, finite float"),
        ({"m": [16, 16]}, [0], {}, r"grid\['m'\]: expected distinct values"),
        ({"m": [16]}, [], {}, "seeds: expected a non-empty list"),
        ({"m": [16]}, [0, 0], {}, "seeds: expected distinct seeds"),
        ({"m": [16]}, [-1], {}, "seeds: expected >= 0"),
        ({"m": [16]}, [0], {"workers": 0}, "workers: expected > 0"),
        ({"m": [16]}, [0], {"root_seed": -1}, "root_seed: expected >= 0"),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, grid, seeds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_sweep(figure1_task, grid, seeds, tmp_path / "t.jsonl", progress=False, **kwargs)
    assert not (tmp_path / "t.jsonl").exists()


def test_dask_matches_process_pool(cluster, tmp_path):
    seeds = [0, 1, 2]
    local = run_sweep(figure1_task, TINY, seeds, tmp_path / "a.jsonl", workers=2, progress=False)
    dask = run_sweep(
        figure1_task,
        TINY,
        seeds,
        tmp_path / "b.jsonl",
        scheduler=cluster.scheduler_address,
        progress=False,
    )
    assert [r["status"] for r in local + dask] == ["ok"] * 12
    assert task_ids(local) == task_ids(dask) == [(m, s) for m in (16, 256) for s in seeds]
    assert sorted(map(key, local)) == sorted(map(key, dask))  # every metric bit for bit
    # the tables hold what was returned, in completion order
    assert sorted(map(key, read_table(tmp_path / "b.jsonl"))) == sorted(map(key, dask))
    # a task run alone with task_rng gives the row's numbers
    config = {"m": 256, "n": 20, "d": 10, "steps": 30}
    alone = figure1_task(config, task_rng(config, 2))
    assert alone == {k: dask[-1][k] for k in alone}


def test_resume_after_killed_driver(cluster, tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    grid, seeds = marker_grid(markers, range(6), sleep=0.15), [0, 1]
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_sweep import marker_task\nfrom sandbox.sweep import run_sweep\n"
        f"run_sweep(marker_task, {grid!r}, {seeds!r}, {str(out)!r}, workers=1, progress=False)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while len(read_table(out)) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its pool, as in a crash
    driver.wait()
    finished = read_table(out)
    assert 3 <= len(finished) < 12

    rows = run_sweep(
        marker_task, grid, seeds, out, scheduler=cluster.scheduler_address, progress=False
    )

    table = read_table(out)
    assert [r["status"] for r in rows] == ["ok"] * 12
    assert sorted(task_ids(table)) == sorted(task_ids(rows))  # complete, no duplicates
    assert table[: len(finished)] == finished  # finished rows kept as written
    assert all(calls(markers, r) == 1 for r in finished)  # and not run again
    reruns = [r for r in rows if calls(markers, r) > 1]
    assert len(reruns) <= 1  # only the task in flight on the one local worker
    assert not {(r["x"], r["seed"]) for r in reruns} & set(task_ids(finished))


def test_grown_grid_runs_only_new_tasks(cluster, tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    address = cluster.scheduler_address
    half = run_sweep(
        marker_task, marker_grid(markers, [0, 1]), [0], out, scheduler=address, progress=False
    )
    full = run_sweep(
        marker_task, marker_grid(markers, [0, 1, 2]), [0, 1], out, scheduler=address, progress=False
    )
    assert [r for r in full if (r["x"], r["seed"]) in task_ids(half)] == half
    assert all(calls(markers, r) == 1 for r in full)
    assert len(list(markers.iterdir())) == 6
    assert sorted(task_ids(read_table(out))) == sorted(task_ids(full))


def test_torn_last_line_is_ignored_and_rewritten(cluster, tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    address = cluster.scheduler_address
    run_sweep(
        marker_task, marker_grid(markers, [0, 1]), [0, 1], out, scheduler=address, progress=False
    )
    with open(out, "ab") as f:
        f.write(b'{"x": 1, "markers": "/tm')  # a crash in the middle of an append
    torn = out.read_bytes()
    assert len(read_table(out)) == 4
    assert out.read_bytes() == torn  # reading does not repair

    with pytest.warns(UserWarning, match="line 5 is torn"):
        rows = run_sweep(
            marker_task,
            marker_grid(markers, [0, 1]),
            [0, 1, 2],
            out,
            scheduler=address,
            progress=False,
        )

    text = out.read_text()
    assert text.endswith("\n")
    assert [json.loads(line) for line in text.splitlines()] == read_table(out)
    (aside,) = sidecar_lines(out)  # the torn line is kept beside the table, not deleted
    assert aside["text"] == '{"x": 1, "markers": "/tm' and aside["reason"].startswith("torn")
    assert sorted(task_ids(read_table(out))) == sorted(task_ids(rows))
    assert len(rows) == 6 and len(list(markers.iterdir())) == 6


def test_bad_line_inside_the_table_is_an_error(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text('{"x": 0, "seed": 0}\n{"x": 1, "se\n{"x": 2, "seed": 0}\n')
    with pytest.raises(ValueError, match=r"out: line 2 of .* is not a JSON object"):
        read_table(out)


@pytest.mark.parametrize("backend", ["local", "dask"])
def test_failing_task_is_recorded_and_retried(cluster, tmp_path, backend):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    grid, seeds = marker_grid(markers, [0, 1, 2]), [0, 1]
    where = {"workers": 1} if backend == "local" else {"scheduler": cluster.scheduler_address}
    (markers / "fail-1").touch()
    first = run_sweep(marker_task, grid, seeds, out, progress=False, **where)
    assert [r["status"] for r in first] == ["ok", "ok", "error", "error", "ok", "ok"]
    assert all("RuntimeError: x=1 told to fail" in r["error"] for r in first[2:4])
    assert all(r["error"] is None and isinstance(r["draw"], int) for r in first[:2] + first[4:])

    (markers / "fail-1").unlink()
    second = run_sweep(marker_task, grid, seeds, out, progress=False, **where)
    assert [r["status"] for r in second] == ["ok"] * 6
    assert [r for i, r in enumerate(second) if i not in (2, 3)] == first[:2] + first[4:]
    assert sorted(task_ids(read_table(out))) == sorted(task_ids(second))  # error rows replaced
    assert [calls(markers, r) for r in second] == [1, 1, 2, 2, 1, 1]  # only the failed re-ran


def test_killed_worker_loses_no_results(cluster, tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    grid, seeds = marker_grid(markers, range(8), sleep=0.2), [0, 1]
    seen = {}

    def order_a_death_after_three_rows():
        while len(read_table(out)) < 3:
            time.sleep(0.01)
        seen["before"] = out.read_bytes()
        (markers / "die").touch()

    killer = threading.Thread(target=order_a_death_after_three_rows, daemon=True)
    killer.start()
    rows = run_sweep(
        marker_task, grid, seeds, out, scheduler=cluster.scheduler_address, progress=False
    )
    killer.join(timeout=5)

    assert not (markers / "die").exists()  # one worker took the order and died mid-task
    assert out.read_bytes().startswith(seen["before"])  # finished rows untouched
    assert [r["status"] for r in rows] == ["ok"] * 16
    assert sorted(task_ids(read_table(out))) == sorted(task_ids(rows))  # complete, no duplicates
    (tmp_path / "before.jsonl").write_bytes(seen["before"])
    assert all(calls(markers, r) == 1 for r in read_table(tmp_path / "before.jsonl"))
    [lost] = [r for r in rows if list(markers.glob(f"died-{r['x']}-{r['draw']}"))]
    pids = {p.name.split("-")[2] for p in markers.glob(f"{lost['x']}-{lost['draw']}-*")}
    assert len(pids) >= 2  # rescheduled by Dask onto another worker process


def test_second_driver_on_the_same_table_is_refused(tmp_path):
    out = tmp_path / "t.jsonl"
    with open(out, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="out: another sweep is writing"):
            run_sweep(figure1_task, TINY, [0], out, progress=False)


def test_table_from_another_root_seed_is_refused(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text(json.dumps({"x": 0, "seed": 0, "root_seed": 0, "status": "ok"}) + "\n")
    with pytest.raises(ValueError, match=r"root_seed: .* root_seed=0, got 1"):
        run_sweep(marker_task, {"x": [0]}, [0], out, root_seed=1, progress=False)


def prepend_path(folder: str) -> None:
    """Run on the Dask workers: make modules in ``folder`` importable there."""
    sys.path.insert(0, folder)


def write_module(folder: Path) -> str:
    name = f"edited_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text("def task(config, rng):\n    return {}\n")
    return name


def test_workers_that_cannot_import_the_task_are_refused(cluster, tmp_path):
    name = write_module(tmp_path)
    sys.path.insert(0, str(tmp_path))  # the driver sees the module, the workers do not
    try:
        task = importlib.import_module(name).task
        with pytest.raises(ValueError, match=f"task_fn: the Dask workers cannot import '{name}'"):
            run_sweep(
                task, {"x": [0]}, [0], tmp_path / "t.jsonl", scheduler=cluster.scheduler_address
            )
    finally:
        sys.path.remove(str(tmp_path))


def test_workers_with_stale_sources_are_refused(cluster, tmp_path):
    from distributed import Client

    name = write_module(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        with Client(cluster.scheduler_address) as client:
            client.run(prepend_path, str(tmp_path))
        task = importlib.import_module(name).task
        where = {"scheduler": cluster.scheduler_address, "progress": False}
        first = run_sweep(task, {"x": [0]}, [0, 1], tmp_path / "t.jsonl", **where)
        assert {(r["status"], r["code"]) for r in first} == {("ok", sources_hash(name))}
        with open(tmp_path / f"{name}.py", "a") as f:
            f.write("# edited after the workers imported it\n")
        with (
            pytest.warns(UserWarning, match="computed by other sources"),
            pytest.raises(ValueError, match=r"scheduler: workers .* imported other sources"),
        ):
            run_sweep(task, {"x": [0]}, [0, 1, 2], tmp_path / "t.jsonl", **where)
    finally:
        sys.path.remove(str(tmp_path))


def test_figure1_cli(cluster, tmp_path):
    out = tmp_path / "fig1.jsonl"
    args = ["sweep", "linear_convergence", "--widths", "16,256", "--seeds", "0-2"]
    args += ["--n", "20", "--d", "10"]
    args += ["--steps", "30", "--out", str(out), "--scheduler", cluster.scheduler_address]
    cli = [sys.executable, "-m", "sandbox", *args]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = read_table(out)
    columns = "m n d steps seed root_seed lam0 eta loss_ratio log_rate move_max move_rms"
    assert list(rows[0]) == [
        *columns.split(),
        "flip_fraction",
        "runtime_s",
        "code",
        "status",
        "error",
    ]
    for r in rows:
        assert 0 < r["lam0"] < 1 / r["eta"]  # lam0 <= lambda_max(H_inf) = 1 / eta
        assert r["loss_ratio"] < 1 and r["log_rate"] < 0
    rms = {m: np.mean([r["move_rms"] for r in rows if r["m"] == m]) for m in (16, 256)}
    assert rms[256] < rms[16]  # RMS move from init shrinks with width (~ m^(-1/2))
    assert "sweep: 6/6 done (0 from the table), 0 failed" in done.stderr
    assert done.stdout.splitlines()[0].split()[:2] == ["m", "seeds"]
    assert main([*args, "--seeds", "0-3"]) == 0  # in process: resumes, runs 2 more tasks
    assert len(read_table(out)) == 8


# ---------------------------------------------------- the table: nothing lost, nothing doubled


def ok_row(x, seed, draw=7, **extra):
    return {"x": x, "seed": seed, "root_seed": 0, "draw": draw, "runtime_s": 0.1, "code": None,
            "status": "ok", "error": None, **extra}  # fmt: skip


def write_rows(path: Path, *rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def sidecar_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out.parent / (out.name + ".rejected")).open()]


@pytest.mark.parametrize("kind", ["identical", "conflicting"])
def test_two_finished_rows_for_one_task_stop_the_sweep_with_their_lines(tmp_path, kind):
    out = tmp_path / "t.jsonl"
    second = ok_row(0, 0) if kind == "identical" else ok_row(0, 0, draw=8)
    write_rows(out, ok_row(0, 0), ok_row(1, 0), second)
    before = out.read_bytes()
    with pytest.raises(ValueError, match=rf"x=0, seed 0: lines 1, 3 \({kind}\)") as exc:
        run_sweep(marker_task, {"x": [0, 1]}, [0], out, progress=False)
    assert "on_conflict='keep_first' or 'keep_last'" in str(exc.value)
    assert out.read_bytes() == before  # refused, untouched


@pytest.mark.parametrize(("policy", "kept", "moved"), [("keep_first", 7, 8), ("keep-last", 8, 7)])
def test_on_conflict_keeps_one_row_and_sets_the_other_aside(tmp_path, policy, kept, moved):
    out = tmp_path / "t.jsonl"
    write_rows(out, ok_row(0, 0, draw=7), ok_row(0, 0, draw=8))
    with pytest.warns(UserWarning, match=r"lines 1, 2 \(conflicting\): kept per on_conflict"):
        rows = run_sweep(marker_task, {"x": [0]}, [0], out, progress=False, on_conflict=policy)
    assert [r["draw"] for r in rows] == [kept]
    assert [r["draw"] for r in read_table(out)] == [kept]
    (aside,) = sidecar_lines(out)
    assert json.loads(aside["text"])["draw"] == moved and "was kept" in aside["reason"]


def test_on_conflict_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="on_conflict: expected one of"):
        run_sweep(marker_task, {"x": [0]}, [0], tmp_path / "t.jsonl", on_conflict="newest")


def test_numbers_compare_as_numbers(tmp_path):
    """A row stored with "x": 1.0 is the task x = 1: found, not run again."""
    out = tmp_path / "t.jsonl"
    write_rows(out, ok_row(1.0, 0, draw=5))
    rows = run_sweep(marker_task, {"x": [1]}, [0], out, progress=False)  # no pool: nothing to do
    assert [(r["x"], r["draw"]) for r in rows] == [(1.0, 5)]
    assert task_key({"x": 1.0}, 0) == task_key({"x": 1}, 0) != task_key({"x": True}, 0)
    np.testing.assert_array_equal(
        task_rng({"x": 16.0}, 3).random(3), task_rng({"x": 16}, 3).random(3)
    )
    with pytest.raises(ValueError, match=r"grid\['x'\]: expected distinct values"):
        run_sweep(marker_task, {"x": [16, 16.0]}, [0], out, progress=False)


def test_a_seed_stored_as_a_string_is_reported_and_its_task_runs_again(tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "t.jsonl"
    grid = marker_grid(markers, [0])
    write_rows(out, {**ok_row(0, "0"), "markers": str(markers), "sleep": 0.0})
    with pytest.warns(
        UserWarning, match=r"line 1: its seed '0' is not an integer >= 0, so its task"
    ):
        rows = run_sweep(marker_task, grid, [0], out, workers=1, progress=False)
    assert [r["seed"] for r in rows] == [0] and calls(markers, rows[0]) == 1
    assert [r["seed"] for r in read_table(out)] == [0]  # one row per task, the string one aside
    assert json.loads(sidecar_lines(out)[0]["text"])["seed"] == "0"


@pytest.mark.parametrize("where", ["middle", "last, with its newline"])
def test_an_unreadable_line_is_set_aside_with_its_number(tmp_path, where):
    out = tmp_path / "t.jsonl"
    junk = "this is not JSON"
    lines = (
        [ok_row(0, 0), junk, ok_row(1, 0)]
        if where == "middle"
        else [ok_row(0, 0), ok_row(1, 0), junk]
    )
    write_rows(out, *lines)
    n = lines.index(junk) + 1
    with pytest.warns(UserWarning, match=rf"line {n} is not a JSON object"):
        rows = run_sweep(marker_task, {"x": [0, 1]}, [0], out, progress=False)
    assert [r["x"] for r in rows] == [0, 1]
    assert junk not in out.read_text() and len(read_table(out)) == 2
    assert sidecar_lines(out) == [
        {
            "line": n,
            "reason": "not a JSON object (Expecting value: line 1 column 1 (char 0))",
            "text": junk,
        }
    ]


def test_read_table_refuses_a_bad_line_that_ends_with_a_newline(tmp_path):
    out = tmp_path / "t.jsonl"
    write_rows(out, ok_row(0, 0), "[1, 2]")
    with pytest.raises(ValueError, match=r"line 2 of .* is not a JSON object \(expected a JSON"):
        read_table(out)


def test_a_huge_list_of_seeds_is_refused_at_once(tmp_path):
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="seeds: expected at most 100000 seeds, got 1000000000"):
        run_sweep(marker_task, {"x": [0]}, range(10**9), tmp_path / "t.jsonl", progress=False)
    assert time.perf_counter() - t0 < 1


def test_the_cli_refuses_duplicates_and_keeps_one_when_told(tmp_path, capsys):
    out = tmp_path / "fig1.jsonl"
    config = {"m": 16, "n": 20, "d": 10, "steps": 30}
    row = {**config, **figure1_task(config, task_rng(config, 0)), "seed": 0, "root_seed": 0,
           "runtime_s": 0.1, "code": None, "status": "ok", "error": None}  # fmt: skip
    write_rows(out, row, row)
    args = ["sweep", "linear_convergence", "--widths", "16", "--n", "20", "--d", "10"]
    args += ["--steps", "30", "--seeds", "0", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "m=16, n=20, d=10, steps=30, seed 0: lines 1, 2 (identical)" in err
    assert "--on-conflict keep-first|keep-last" in err
    assert main([*args, "--on-conflict", "keep-first"]) == 0
    captured = capsys.readouterr()
    assert "sandbox: warning: out:" in captured.err and "Traceback" not in captured.err
    assert len(read_table(out)) == 1
