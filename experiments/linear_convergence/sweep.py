"""Figure 1 of Du, Zhai, Poczos, Singh (ICLR 2019) at paper scale: one task per width and seed.

    sandbox sweep linear_convergence --widths 64,256,1024,4096 --seeds 0-4 --out sweep.jsonl

The generic machinery (random streams, the resumable table, local and Dask
executors) is :mod:`sandbox.sweep`; this file holds what is particular to the
figure: the task, the options that make its grid, and the summary printed at
the end (``sandbox/sweep/README.md`` has the cluster set-up and the columns).
"""

from __future__ import annotations

import argparse

import numpy as np

from shared import data, fit, kernels, net


def task(config: dict, rng: np.random.Generator) -> dict[str, float]:
    """One width and seed of Du, Zhai, Poczos, Singh (ICLR 2019), Figure 1.

    ``X (n, d)`` uniform on the unit sphere, ``y ~ N(0, I_n)``, ``W (m, d)``
    trained by ``steps`` full-batch GD steps at ``eta = 1 / lambda_max(H_inf)``
    (the paper fixes one ``eta`` for all widths without stating it; this one is
    stable for every width and concentrates across draws when ``n, d`` are large).

    Returns ``lam0 = lambda_min(H_inf)``, ``eta``, ``loss_ratio = L(steps) / L(0)``,
    ``log_rate`` (slope of ``log L(k)``, :func:`shared.fit.log_rate`), ``move_max``
    and ``move_rms`` (max and RMS over neurons of ``||w_r(steps) - w_r(0)||``) and
    ``flip_fraction`` (pattern changes over the ``m * n`` pairs).
    """
    n, d, m, steps = (int(config[k]) for k in ("n", "d", "m", "steps"))
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    eta = 1.0 / lam[-1]
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    res = net.train(X, y, W0, a0, eta=eta, steps=steps, record_every=steps)
    return {
        "lam0": float(lam[0]),
        "eta": float(eta),
        "loss_ratio": float(res.loss[-1] / res.loss[0]),
        "log_rate": fit.log_rate(res.loss),
        "move_max": float(res.move_max[-1]),
        "move_rms": float(res.move_rms[-1]),
        "flip_fraction": float(res.flip_fraction[-1]),
    }


def _ints(text: str) -> list[int]:
    try:
        vals = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '64,256', got {text!r}") from None
    if any(x <= 0 for x in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make the grid."""
    parser.add_argument(
        "--widths",
        type=_ints,
        default=[64, 256, 1024, 4096],
        help="widths m (default: 64,256,1024,4096)",
    )
    parser.add_argument("--n", type=int, default=1000, help="samples n (default: 1000)")
    parser.add_argument("--d", type=int, default=1000, help="input dimension d (default: 1000)")
    parser.add_argument("--steps", type=int, default=100, help="GD steps (default: 100)")


def grid(args: argparse.Namespace) -> dict[str, list]:
    """``{column: [values]}`` from the parsed options; every combination is one configuration."""
    if args.steps < 3:
        raise ValueError(f"--steps: expected at least 3 for a rate fit, got {args.steps}")
    for name in ("n", "d"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    return {"m": args.widths, "n": [args.n], "d": [args.d], "steps": [args.steps]}


def summary(rows: list[dict]) -> str:
    """Mean over seeds per width of the Figure 1 quantities."""
    cols = "lam0 eta loss_ratio log_rate move_max move_rms flip_fraction runtime_s".split()
    lines = ["m".rjust(6) + "  seeds  " + "  ".join(c.rjust(13) for c in cols)]
    for m in sorted({r["m"] for r in rows}):
        ok = [r for r in rows if r["m"] == m and r["status"] == "ok"]
        vals = np.array([[r[c] for c in cols] for r in ok], dtype=float).reshape(-1, len(cols))
        means = vals.mean(axis=0) if ok else np.full(len(cols), np.nan)  # a null metric -> nan
        lines.append(f"{m:6d}  {len(ok):5d}  " + "  ".join(f"{x:13.5g}" for x in means))
    return "\n".join(lines)
