"""The sandbox command: list, run, check, calibrate, scaffold and sweep experiments.

    sandbox list
    sandbox run NAME [NAME ...] | --all       [--full] [--seed S] [--out DIR] [--publish]
                                              [--backend numpy|cupy|torch|array_api_strict]
    sandbox check NAME [NAME ...] | --all     [--full] [--seeds 0-4] [--jobs N] [--calibrated]
    sandbox calibrate NAME [NAME ...] | --all [--full] [--seeds 0-199] [--jobs N]
    sandbox new NAME
    sandbox sweep NAME --seeds 0-4 --out TABLE [--scheduler ADDR] [--on-conflict fail] [...]

Every run of an experiment happens in a worker process: an experiment that
raises, calls sys.exit or os._exit, or is killed is an error naming the
experiment and the seed, never a pass, and the other experiments still run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from threadpoolctl import threadpool_limits

from sandbox._io import write_bytes_atomic
from sandbox.checks import format_table
from sandbox.errors import ExperimentError
from sandbox.registry import NAME_RE, find_root, load_all, select
from sandbox.report import seed_table
from sandbox.runner import Failure, Job, publishable, run_job, write_json_atomic
from sandbox.seeds import format_seeds, parse_seeds, seed_arg
from sandbox.workers import run_isolated
from shared.backend import BACKENDS

__all__ = ["main", "parse_seeds", "run_file"]

EXIT_STATUS = """exit status:
  0    every check passed
  1    a check failed (and nothing ended in an error)
  2    an error: a bad argument, a malformed experiment, or a run that raised, exited or
       was killed before its checks were evaluated
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (sandbox list | head)"""


def plain(text: str) -> str:
    """Docstring text for a terminal: reST roles and literals (``x``, :func:`~a.b`) made plain."""
    text = re.sub(r":[a-z]+:`~(?:[\w.]*\.)?([^`]+)`", r"\1", text)  # ~a.b.c reads c
    text = re.sub(r":[a-z]+:`([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def share_cores(jobs: int) -> None:
    """Worker initializer: each of ``jobs`` processes gets its share of the cores for its BLAS
    (and so for ``net.train``'s threads), instead of every worker taking all of them."""
    threadpool_limits(limits=max(1, (os.cpu_count() or 1) // jobs), user_api="blas")


def _writable_folder(path: Path, what: str) -> Path:
    """``path`` as a folder that exists (created if needed) and can be written, or a clear error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExperimentError(f"{what}: {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".sandbox-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ExperimentError(f"{what}: cannot write in {path}: {err.strerror or err}") from None
    return path


def _strip_name(name: str, message: str) -> str:
    return message[len(name) + 2 :] if message.startswith(f"{name}: ") else message


def _job_error(job: Job, outcome, n_checks: int | None) -> tuple[str, str | None] | None:
    """``(message, traceback)`` when the job did not end with every check evaluated."""
    if outcome.died:
        return f"{outcome.error}; nothing was checked", None
    if not outcome.ok:
        return f"an exception in the experiment: {outcome.error}", outcome.detail
    value = outcome.value
    if isinstance(value, Failure):
        return _strip_name(job.name, value.message), None
    if n_checks is not None and len(value.verdicts) != n_checks:
        return f"only {len(value.verdicts)} of its {n_checks} checks were evaluated", None
    return None


def _print_errors(errors: list[tuple[str, list[int], str, str | None]]) -> None:
    """One line per (experiment, message) on stderr, seeds grouped; a traceback once."""
    for name, seeds, message, detail in errors:
        where = f"{name} ({'seed' if len(seeds) == 1 else 'seeds'} {format_seeds(seeds)})"
        print(f"sandbox: error: {where}: {message}", file=sys.stderr)
        if detail:
            print(detail.rstrip(), file=sys.stderr)


def _group(errors: list[tuple[str, int, str, str | None]]):
    """``[(name, seed, message, detail)]`` -> ``[(name, seeds, message, first detail)]``."""
    groups: dict[tuple[str, str], list] = {}
    for name, seed, message, detail in errors:
        g = groups.setdefault((name, message), [name, [], message, detail])
        g[1].append(seed)
    return [
        (name, sorted(seeds), message, detail) for name, seeds, message, detail in groups.values()
    ]


def _load_error_lines(errors: dict[str, str]) -> None:
    for name, message in errors.items():
        text = message if message.startswith(name) else f"{name}: {message}"
        print(f"sandbox: error: {text}", file=sys.stderr)


def cmd_list(args) -> int:
    exps, errors = load_all(args.root)
    if not exps and not errors:
        print("no experiments yet; start one with 'sandbox new NAME'", file=sys.stderr)
    width = max((len(e.name) for e in exps), default=4)
    for e in exps:
        print(f"{e.name.ljust(width)}  {e.question}")
    _load_error_lines(errors)
    return 2 if errors else 0


def cmd_run(args) -> int:
    if args.publish and not args.full:
        raise ExperimentError("--publish copies a full-mode figure; add --full")
    exps, load_errors = select(args.root, args.names, args.all)
    base = _writable_folder(args.out, "--out") if args.out is not None else None
    mode = "full" if args.full else "quick"
    outs = [
        (base / exp.name if base else exp.path / "output") / f"{mode}-seed{args.seed}"
        for exp in exps
    ]
    jobs = [
        Job(
            args.root,
            exp.name,
            not args.full,
            args.seed,
            out_dir=out,
            progress=True,
            backend=args.backend,
        )
        for exp, out in zip(exps, outs, strict=True)
    ]
    failed, errors = [], []

    def header(i):
        exp = exps[i]
        on = "" if args.backend == "numpy" else f", backend {args.backend}"
        print(f"== {exp.name} ({mode}, seed {args.seed}{on}): {exp.title}", flush=True)

    if jobs:
        header(0)
    for i, outcome in run_isolated(run_job, jobs):
        exp, out = exps[i], outs[i]
        err = _job_error(jobs[i], outcome, sum(mode in c.modes for c in exp.checks))
        if err is not None:
            errors.append((exp.name, args.seed, *err))
            print(f"error: {err[0]}")
            if (out / "results.json").is_file():
                print(f"what was computed is in {out / 'results.json'}")
        else:
            rec = outcome.value
            print(format_table(rec.verdicts))
            print(f"runtime {rec.runtime_s:.1f} s; results and figure in {out}")
            if not rec.verdicts:
                print(f"(no check in expected.toml applies in {mode} mode)")
            if not rec.passed:
                failed.append(exp.name)
                if args.publish:
                    print("not published: a check failed")
            elif args.publish:
                _publish(exp, out)
        print()
        if i + 1 < len(jobs):
            header(i + 1)
    _load_error_lines(load_errors)
    _print_errors(_group(errors))
    if load_errors or errors:
        return 2
    return 1 if failed else 0


def _publish(exp, out: Path) -> None:
    try:
        write_bytes_atomic(exp.path / "figure.png", (out / "figure.png").read_bytes())
        payload = json.loads((out / "results.json").read_text())
        write_json_atomic(exp.path / "results_full.json", publishable(payload))
    except OSError as err:
        raise ExperimentError(f"{exp.name}: cannot publish: {err.strerror or err}") from None
    print(f"published figure.png and results_full.json to {exp.path}")


def cmd_check(args) -> int:
    if args.jobs < 1:
        raise ExperimentError(f"--jobs: expected a positive number of processes, got {args.jobs}")
    exps, load_errors = select(args.root, args.names, args.all)
    mode = "full" if args.full else "quick"
    for exp in list(exps):
        if not any(mode in c.modes for c in exp.checks):
            load_errors[exp.name] = (
                f"no check in expected.toml applies in {mode} mode for: {exp.name}; "
                "a check that tests nothing cannot pass"
            )
            exps.remove(exp)
    jobs = [Job(args.root, e.name, not args.full, s) for e in exps for s in args.seeds]
    n_checks = {e.name: sum(mode in c.modes for c in e.checks) for e in exps}
    records, errors = {e.name: [] for e in exps}, []
    processes = min(args.jobs, max(1, len(jobs)))
    for i, outcome in run_isolated(
        run_job, jobs, processes=processes, initializer=share_cores, initargs=(args.jobs,)
    ):
        job = jobs[i]
        err = _job_error(job, outcome, n_checks[job.name])
        if err is None:
            records[job.name].append(outcome.value)
        else:
            errors.append((job.name, job.seed, *err))
    failed, n_pass = [], 0
    calibrated = None
    for exp in exps:
        recs = sorted(records[exp.name], key=lambda r: r.seed)
        seeds_in_error = sorted(s for n, s, *_ in errors if n == exp.name)
        note = f"; errors on seeds {format_seeds(seeds_in_error)}" if seeds_in_error else ""
        if not recs:
            print(f"== {exp.name} ({mode}): no seed ran to the end{note}\n")
            continue
        if args.calibrated:
            from sandbox.record import calibrated_ranges

            calibrated = calibrated_ranges(exp, mode) or {}
        print(seed_table(exp.name, recs, calibrated=calibrated, note=note))
        print()
        failed += [f"{exp.name} (seed {r.seed})" for r in recs if not r.passed]
        n_pass += sum(r.passed for r in recs)
    n_errors = len(errors) + len(load_errors)
    print(f"{n_pass} passed, {len(failed)} failed, {n_errors} errors")
    if failed:
        print("failed: " + ", ".join(failed))
    if n_errors:
        grouped = _group(errors)
        listed = [f"{name} ({format_seeds(seeds)})" for name, seeds, *_ in grouped]
        listed += [f"{name} (did not load)" for name in load_errors]
        print("errors: " + ", ".join(listed))
        _load_error_lines(load_errors)
        _print_errors(grouped)
        return 2
    return 1 if failed else 0


def cmd_new(args) -> int:
    if args.notebook:
        from sandbox.notebooks import scaffold

        path = scaffold(args.root, args.name).relative_to(args.root)
        print(f"created {path}; next: write it, then 'python -m pytest tests/test_notebooks.py'")
        return 0
    name = args.name
    if not NAME_RE.match(name):
        raise ExperimentError(
            f"name: expected lower_snake_case (e.g. 'my_phenomenon'), got {name!r}"
        )
    template = args.root / "experiments" / "_template"
    dest = args.root / "experiments" / name
    if dest.exists():
        raise ExperimentError(f"experiments/{name} already exists; choose another name")
    if not template.is_dir():
        raise ExperimentError(f"template folder {template} is missing")
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("output", "__pycache__"))
    for f in dest.iterdir():
        if f.suffix in {".md", ".py", ".toml"}:
            f.write_text(f.read_text().replace("TEMPLATE_NAME", name))
    print(f"created experiments/{name}/ (README.md, experiment.py, expected.toml)")
    print(NEXT_STEPS.format(name=name))
    return 0


NEXT_STEPS = """next steps:
  1. edit experiment.py, expected.toml and README.md: the question, the claim with its
     source, one [[check]] per claim with the reason for its bound
  2. sandbox check {name} --seeds 0-4
       every check on a few seeds while you work
  3. sandbox calibrate {name} --seeds 0-199 --jobs 2
       every check on 200 seeds; writes experiments/{name}/calibration.json (commit it).
       Each check must hold on all 200 seeds with an estimated false-failure rate below
       1e-4 per seed, and its reason quotes the 200-seed range. Fix the measurement, not
       the bound: a band must still reject the alternative it is there to reject.
  4. sandbox run {name} --full --publish
       the paper-scale run: figure.png and results_full.json beside the README
  5. python -m pytest -n auto
       the tests, with the completeness of the folder and its calibration record"""


def cmd_sweep(args) -> int:
    from sandbox import sweep

    try:
        module = sweep.load_task(args.root, args.name)
    except (FileNotFoundError, AttributeError) as err:
        raise ExperimentError(str(err)) from None
    p = argparse.ArgumentParser(
        prog=f"sandbox sweep {args.name}",
        description=plain((module.__doc__ or "").split("\n\n")[0]),
    )
    p.add_argument("--seeds", type=parse_seeds, default=list(range(5)), help="seeds (default: 0-4)")
    p.add_argument(
        "--on-conflict",
        choices=("fail", "keep-first", "keep-last"),
        default="fail",
        help="two finished rows for one task in the table: stop and list them (default), or "
        "keep the first or the last (the other goes to the TABLE.rejected sidecar)",
    )
    p.add_argument(
        "--root-seed", type=int, default=0, help="root of every task's stream (default: 0)"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON Lines table, resumed if it exists")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local pool)")
    p.add_argument(
        "--workers", type=int, default=None, help="local pool size, or Dask workers to wait for"
    )
    module.add_arguments(p)
    opts = p.parse_args(args.rest)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"sandbox: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            rows = sweep.run_sweep(
                module.task,
                module.grid(opts),
                opts.seeds,
                opts.out,
                root_seed=opts.root_seed,
                scheduler=opts.scheduler,
                workers=opts.workers,
                on_conflict=opts.on_conflict.replace("-", "_"),
            )
    except ValueError as err:
        raise ExperimentError(str(err)) from None
    except OSError as err:
        raise ExperimentError(f"--out: {opts.out}: {err.strerror or err}") from None
    print(module.summary(rows))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_site(args) -> int:
    from sandbox.site import build_site

    out = args.out if args.out is not None else args.root / "site"
    report = build_site(args.root, out, run=args.run, repo_url=args.repo_url, jobs=args.jobs)
    print(report.summary())
    print(f"open {report.out / 'index.html'}")
    return 0


def _names(parser, what: str) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument("--all", action="store_true", help=f"every experiment ({what})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox",
        description="List, run, check, calibrate, scaffold and sweep the experiments of the\n"
        "sandbox. Each run of an experiment happens in a worker process: one that\n"
        "raises, exits or is killed is an error naming the experiment and the seed,\n"
        "never a pass.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--root", type=Path, default=None, help="sandbox checkout (default: found from cwd)"
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list experiments and their questions").set_defaults(func=cmd_list)

    r = sub.add_parser(
        "run",
        help="run experiments, write results.json and figure.png, print checks",
        description="Run experiments on one seed; write output/<mode>-seed<S>/results.json\n"
        "(first) and figure.png; print the checks. Previous results there are moved to\n"
        "previous/ while the run lasts.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _names(r, "each in turn")
    r.add_argument("--full", action="store_true", help="paper-scale mode (default: quick)")
    r.add_argument("--seed", type=seed_arg, default=0, help="random seed, >= 0 (default: 0)")
    r.add_argument(
        "--out", type=Path, default=None, help="output folder (default: experiments/NAME/output)"
    )
    r.add_argument(
        "--publish",
        action="store_true",
        help="copy a full run's figure and results beside the README (only if its checks pass)",
    )
    r.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="array library of the experiments that accept one (linear_convergence): cupy or "
        "torch put the training on a GPU, array_api_strict checks the array API (default: numpy)",
    )
    r.set_defaults(func=cmd_run)

    c = sub.add_parser(
        "check",
        help="run experiments over seeds and check their expectations",
        description="Run experiments over seeds and print one table per experiment: the range\n"
        "of each checked quantity, its verdict, and the seeds that failed with their values.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _names(c, "a broken one is reported, the others still run")
    c.add_argument("--full", action="store_true", help="check the full mode (default: quick)")
    c.add_argument("--seeds", type=parse_seeds, default=[0], help="e.g. 0-4 or 0,3,7 (default: 0)")
    c.add_argument("--jobs", type=int, default=1, help="parallel processes (default: 1)")
    c.add_argument(
        "--calibrated",
        action="store_true",
        help="add each check's range from calibration.json (marked stale when out of date)",
    )
    c.set_defaults(func=cmd_check)

    from sandbox.calibrate import cmd_calibrate

    k = sub.add_parser(
        "calibrate",
        help="run every check over many seeds; save calibration.json",
        description="Run experiments over many seeds and print, for each check, its bound; the "
        "min, 1st percentile, median, 99th percentile and max; the failing seeds; the margin "
        "in robust SDs (1.4826 MAD); and the estimated false-failure rate per fresh seed with "
        "its method. Saves experiments/NAME/calibration.json. An interrupted calibration "
        "resumes from experiments/NAME/output/calibration-<mode>.jsonl.",
        epilog="exit status: 0 every check held on every seed (quick mode: every rate below "
        "1e-4), 1 otherwise, 2 an error",
    )
    _names(k, "a broken one is reported, the others still run")
    k.add_argument("--full", action="store_true", help="calibrate the full mode (default: quick)")
    k.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="seeds (default: 0-199 in quick mode, 0-2 in full mode)",
    )
    k.add_argument("--jobs", type=int, default=1, help="parallel processes (default: 1)")
    k.set_defaults(func=cmd_calibrate)

    n = sub.add_parser(
        "new", help="scaffold experiments/NAME from the template and print the next steps"
    )
    n.add_argument("name")
    n.add_argument(
        "--notebook",
        action="store_true",
        help="scaffold a notebook note discussions/NAME.ipynb instead (NAME: NNNN-short-title)",
    )
    n.set_defaults(func=cmd_new)

    s = sub.add_parser("site", help="build the static gallery site (HTML, no server needed)")
    s.add_argument("--out", type=Path, default=None, help="output folder (default: ROOT/site)")
    s.add_argument("--run", action="store_true", help="re-run and publish every experiment first")
    s.add_argument("--repo-url", default=None, help="where links to repository files point")
    s.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default: 2)")
    s.set_defaults(func=cmd_site)

    w = sub.add_parser(
        "sweep",
        help="run an experiment's sweep (its sweep.py) over a grid x seeds, resumable",
        add_help=False,
    )
    w.add_argument("name", metavar="NAME")
    w.add_argument("rest", nargs=argparse.REMAINDER, help="the sweep's options (NAME --help)")
    w.set_defaults(func=cmd_sweep)
    return p


def _silence_stdout() -> None:
    """After a broken pipe: send the rest of stdout (and its flush at exit) to /dev/null."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.root = args.root.resolve() if args.root else find_root()
        code = args.func(args)
        sys.stdout.flush()
        return code
    except ExperimentError as err:
        print(f"sandbox: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sandbox list | head`: the reader has what it wanted
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print("sandbox: interrupted", file=sys.stderr)
        return 130


def run_file(file: str) -> int:
    """``python experiments/NAME/experiment.py [--full] [--seed S]`` is ``sandbox run NAME ...``."""
    folder = Path(file).resolve().parent
    return main(["--root", str(folder.parents[1]), "run", folder.name, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
