"""``sandbox``: list, run, check and scaffold experiments.

    sandbox list
    sandbox run NAME [NAME ...] | --all   [--full] [--seed S] [--out DIR] [--publish]
    sandbox check NAME [NAME ...] | --all [--full] [--seeds 0-4] [--jobs N]
    sandbox new NAME
    sandbox sweep NAME --seeds 0-4 --out TABLE [--scheduler ADDR] [the sweep's own options]

Exit status: 0 when every check passes, 1 when a check fails, 2 on a usage or
experiment error (unknown name, malformed expected.toml, missing quantity).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from threadpoolctl import threadpool_limits

from sandbox._io import write_bytes_atomic
from sandbox.checks import format_table
from sandbox.errors import ExperimentError
from sandbox.registry import NAME_RE, discover, find_root, get
from sandbox.runner import Progress, publishable, run_experiment, write_json_atomic


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise argparse.ArgumentTypeError(
                f"--seeds: expected e.g. '0-4' or '0,3,7', got {text!r}"
            )
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise argparse.ArgumentTypeError(f"--seeds: range {part!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    return seeds


def _select(root: Path, names: list[str], all_: bool):
    if all_ and names:
        raise ExperimentError("give experiment names or --all, not both")
    if all_:
        return discover(root)
    if not names:
        raise ExperimentError("name at least one experiment, or use --all (see 'sandbox list')")
    return [get(root, n) for n in dict.fromkeys(names)]  # in order, each once


def _require_checks(exps, mode: str) -> None:
    """An experiment with no check in ``mode`` would pass without testing anything."""
    bare = [e.name for e in exps if not any(mode in c.modes for c in e.checks)]
    if bare:
        raise ExperimentError(
            f"no check in expected.toml applies in {mode} mode for: {', '.join(bare)}; "
            f"a check that tests nothing cannot pass"
        )


def cmd_list(args) -> int:
    exps = discover(args.root)
    if not exps:
        print("no experiments yet; start one with 'sandbox new NAME'", file=sys.stderr)
    width = max((len(e.name) for e in exps), default=4)
    for e in exps:
        print(f"{e.name.ljust(width)}  {e.question}")
    return 0


def cmd_run(args) -> int:
    if args.publish and not args.full:
        raise ExperimentError("--publish copies a full-mode figure; add --full")
    ok = True
    for exp in _select(args.root, args.names, args.all):
        mode = "full" if args.full else "quick"
        out = (args.out / exp.name if args.out else exp.path / "output") / f"{mode}-seed{args.seed}"
        print(f"== {exp.name} ({mode}, seed {args.seed}): {exp.title}", flush=True)
        rec = run_experiment(
            exp, quick=not args.full, seed=args.seed, out_dir=out, progress=Progress(exp.name)
        )
        print(format_table(rec.verdicts))
        print(f"runtime {rec.runtime_s:.1f} s; results and figure in {out}")
        if not rec.verdicts:
            print(f"(no check in expected.toml applies in {mode} mode)")
        if args.publish:
            write_bytes_atomic(exp.path / "figure.png", (out / "figure.png").read_bytes())
            payload = json.loads((out / "results.json").read_text())
            write_json_atomic(exp.path / "results_full.json", publishable(payload))
            print(f"published figure.png and results_full.json to {exp.path}")
        ok &= rec.passed
        print()
    return 0 if ok else 1


def _check_one(job):
    root, name, quick, seed = job
    os.environ.setdefault("MPLBACKEND", "Agg")
    rec = run_experiment(get(root, name), quick=quick, seed=seed)
    return rec


def _share_cores(jobs: int) -> None:
    """Worker initializer: each of ``jobs`` processes gets its share of the cores for its BLAS
    (and so for ``net.train``'s threads), instead of every worker taking all of them."""
    threadpool_limits(limits=max(1, (os.cpu_count() or 1) // jobs), user_api="blas")


def cmd_check(args) -> int:
    if args.jobs < 1:
        raise ExperimentError(f"--jobs: expected a positive number of processes, got {args.jobs}")
    exps = _select(args.root, args.names, args.all)
    _require_checks(exps, "full" if args.full else "quick")
    jobs = [(args.root, e.name, not args.full, s) for e in exps for s in args.seeds]
    if args.jobs > 1:
        pool = ProcessPoolExecutor(args.jobs, initializer=_share_cores, initargs=(args.jobs,))
        with pool:
            records = list(pool.map(_check_one, jobs))
    else:
        records = [_check_one(j) for j in jobs]
    failed = []
    for exp in exps:
        recs = [r for r in records if r.experiment == exp.name]
        print(_seed_table(exp.name, recs))
        print()
        failed += [f"{exp.name} (seed {r.seed})" for r in recs if not r.passed]
    total = len(records)
    print(f"{total - len(failed)} passed, {len(failed)} failed")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


def _seed_table(name: str, recs) -> str:
    """One row per check: expected, measured (range over seeds), passes out of seeds."""
    seeds = [r.seed for r in recs]
    rows = []
    for i, v0 in enumerate(recs[0].verdicts):
        vals = [r.verdicts[i].measured for r in recs]
        npass = sum(r.verdicts[i].passed for r in recs)
        if all(isinstance(x, bool) for x in vals):
            meas = ",".join(sorted({str(x).lower() for x in vals}))
        else:
            lo, hi = min(vals), max(vals)
            meas = f"{lo:.4g}" if lo == hi else f"{lo:.4g} .. {hi:.4g}"
        verdict = "PASS" if npass == len(recs) else "FAIL"
        rows.append(
            (v0.check.quantity, v0.check.expected(), meas, f"{verdict} {npass}/{len(recs)}")
        )
    head = ("quantity", "expected", f"measured (seeds {_fmt_seeds(seeds)})", "verdict")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    fmt = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    runtime = max(r.runtime_s for r in recs)
    lines = [f"== {name} ({recs[0].mode}; slowest seed {runtime:.1f} s)", fmt(head)]
    lines += [fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
    return "\n".join(lines)


def _fmt_seeds(seeds) -> str:
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


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
    print(f"next: edit them, then 'sandbox check {name} --seeds 0-4'")
    return 0


def cmd_sweep(args) -> int:
    from sandbox import sweep

    try:
        module = sweep.load_task(args.root, args.name)
    except (FileNotFoundError, AttributeError) as err:
        raise ExperimentError(str(err)) from None
    p = argparse.ArgumentParser(
        prog=f"sandbox sweep {args.name}", description=(module.__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--seeds", type=parse_seeds, default=list(range(5)), help="seeds (default: 0-4)")
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
    try:
        rows = sweep.run_sweep(
            module.task,
            module.grid(opts),
            opts.seeds,
            opts.out,
            root_seed=opts.root_seed,
            scheduler=opts.scheduler,
            workers=opts.workers,
        )
    except ValueError as err:
        raise ExperimentError(str(err)) from None
    print(module.summary(rows))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_site(args) -> int:
    from sandbox.site import build_site

    out = args.out if args.out is not None else args.root / "site"
    report = build_site(args.root, out, run=args.run, repo_url=args.repo_url, jobs=args.jobs)
    print(report.summary())
    print(f"open {report.out / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sandbox", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--root", type=Path, default=None, help="sandbox checkout (default: found from cwd)"
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("list", help="list experiments and their questions").set_defaults(func=cmd_list)

    r = sub.add_parser(
        "run", help="run experiments, write results.json and figure.png, print checks"
    )
    r.add_argument("names", nargs="*", metavar="NAME")
    r.add_argument("--all", action="store_true", help="every experiment")
    r.add_argument("--full", action="store_true", help="paper-scale mode (default: quick)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r.add_argument(
        "--out", type=Path, default=None, help="output folder (default: experiments/NAME/output)"
    )
    r.add_argument(
        "--publish",
        action="store_true",
        help="copy a full run's figure and results beside the README",
    )
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="run experiments over seeds and check their expectations")
    c.add_argument("names", nargs="*", metavar="NAME")
    c.add_argument("--all", action="store_true", help="every experiment")
    c.add_argument("--full", action="store_true", help="check the full mode (default: quick)")
    c.add_argument("--seeds", type=parse_seeds, default=[0], help="e.g. 0-4 or 0,3,7 (default: 0)")
    c.add_argument("--jobs", type=int, default=1, help="parallel processes (default: 1)")
    c.set_defaults(func=cmd_check)

    n = sub.add_parser("new", help="scaffold experiments/NAME from the template")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.root = args.root.resolve() if args.root else find_root()
        return args.func(args)
    except ExperimentError as err:
        print(f"sandbox: error: {err}", file=sys.stderr)
        return 2


def run_file(file: str) -> int:
    """``python experiments/NAME/experiment.py [--full] [--seed S]`` is ``sandbox run NAME ...``."""
    folder = Path(file).resolve().parent
    return main(["--root", str(folder.parents[1]), "run", folder.name, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
