"""Line search: Armijo backtracking needs no L and keeps pace with GD at 1/L.

Backtracking (Armijo 1966; Nocedal & Wright, *Numerical Optimization*, 2006, Alg. 3.1) tries
``t = t0, shrink t0, shrink^2 t0, ...`` and accepts the first ``t`` with
``f(x - t g) <= f(x) - c t ||g||^2``. If ``f`` is L-smooth the descent lemma
``f(x - t g) <= f(x) - t (1 - L t / 2) ||g||^2`` makes every ``t <= 2 (1 - c) / L`` acceptable,
so the accepted step is never below ``min(t0, shrink 2 (1 - c) / L)``; if ``f`` is mu-strongly
convex no ``t > 2 (1 - c) / mu`` is acceptable. Backtracking thus finds a step of order ``1/L``
without knowing ``L``, at the price of extra function evaluations, counted here call by call.

Three problems: ill-conditioned quadratics (``kappa`` up to 1e3, ``L`` on different scales), an
l2-regularised logistic regression, and the two-layer ReLU net of Du, Zhai, Poczos, Singh
(ICLR 2019), whose loss is exactly quadratic inside each activation region with Hessian
``J^T J`` (top eigenvalue ``lambda_max(H)``), so ``1/lambda_max(H(0))`` plays the part of ``1/L``.
Two ways to pick the first trial: a fixed, generous ``t0`` and a warm start from twice the
previously accepted step.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from shared import data, kernels, net, optim
from shared.plotting import subplots

CONFIG = {
    "quick": {
        "quad": {"d": 50, "kappas": [10.0, 100.0, 1000.0], "scales": [0.2, 1.0, 5.0]},
        "logreg": {"n": 200, "d": 20, "lam": 0.05, "scale_max": 5.0, "problems": 16},
        "net": {"n": 30, "d": 10, "m": 2000, "problems": 3},
        "tol": 1e-6,
        "t0": 100.0,
        "max_steps": 20000,
    },
    "full": {
        "quad": {
            "d": 200,
            "kappas": [10.0, 100.0, 1000.0, 10000.0],
            "scales": [0.2, 1.0, 5.0, 0.5],
        },
        "logreg": {"n": 2000, "d": 100, "lam": 0.01, "scale_max": 10.0, "problems": 3},
        "net": {"n": 100, "d": 20, "m": 10000, "problems": 1},
        "tol": 1e-6,
        "t0": 100.0,
        "max_steps": 200000,
    },
}
ARMIJO = optim.Armijo(c=1e-4, shrink=0.5)


# --------------------------------------------------------------------------- drivers
class Counted:
    """Wrap ``f`` and ``grad`` so that every call the method makes is counted."""

    def __init__(self, f, grad):
        self._f, self._grad = f, grad
        self.n_f = self.n_grad = 0

    def f(self, x):
        self.n_f += 1
        return self._f(x)

    def grad(self, x):
        self.n_grad += 1
        return self._grad(x)


def run_method(f, grad, x0, *, method: str, lr: float, tol: float, max_steps: int) -> dict:
    """Iterate ``optim.GD`` (``method="gd"``, step ``lr``) or ``optim.Armijo`` (``"fixed"``: first
    trial ``lr`` at every step; ``"warm"``: first trial twice the last accepted step) until
    ``||grad f(x_k)|| <= tol ||grad f(x_0)||``.

    Only the calls made by the method are counted; the monitoring of ``f`` and ``||grad f||`` at
    each iterate (for the stopping rule and the record) is not.

    Returns
    -------
    dict with ``f (k+1,)``, ``gnorm (k+1,)``, ``t (k,)`` the steps taken, ``steps``, ``n_f``,
    ``n_grad`` and ``armijo_margin``, the min over steps of
    ``(f_k - f_{k+1}) / (c t_k ||g_k||^2)`` (>= 1 iff the Armijo condition held at every step).
    """
    counted = Counted(f, grad)
    opt = optim.GD() if method == "gd" else ARMIJO
    state = opt.init(x0)
    x = np.array(x0, dtype=float)
    g = grad(x)
    fs, gn, ts = [f(x)], [float(np.linalg.norm(g))], []
    trial = lr
    while gn[-1] > tol * gn[0] and len(ts) < max_steps:
        x_new, state = opt.step(x, state, trial, counted.f, counted.grad)
        ts.append(float(np.linalg.norm(x_new - x)) / gn[-1])  # x_new = x - t g
        x = x_new
        g = grad(x)
        fs.append(f(x))
        gn.append(float(np.linalg.norm(g)))
        if method == "warm":
            trial = 2.0 * ts[-1]
    fs, gn, ts = np.asarray(fs), np.asarray(gn), np.asarray(ts)
    margin = (fs[:-1] - fs[1:]) / (ARMIJO.c * ts * gn[:-1] ** 2)
    converged = gn[-1] <= tol * gn[0]
    return {
        "f": fs,
        "gnorm": gn,
        "t": ts,
        "steps": len(ts) if converged else np.inf,
        "steps_frac": crossing(gn, tol * gn[0]) if converged else np.inf,
        "n_f": counted.n_f,
        "n_grad": counted.n_grad,
        "armijo_margin": float(np.min(margin)) if method != "gd" else np.nan,
    }


def crossing(gnorm: np.ndarray, level: float) -> float:
    """Where ``log ||grad f(x_k)||`` first reaches ``log level``, interpolated linearly between the
    last iterate above and the first at or below (a fractional iteration count, so that a ratio
    of counts varies continuously instead of in steps of one iteration)."""
    k = int(np.flatnonzero(gnorm <= level)[0])
    if k == 0:
        return 0.0
    lo, hi = np.log(gnorm[k - 1]), np.log(gnorm[k])
    return float(k - 1 + (lo - np.log(level)) / (lo - hi))


def compare(f, grad, x0, *, L: float, mu: float | None, cfg: dict, methods=("fixed", "warm")):
    """GD at ``1/L`` against the Armijo variants (both by default) on one problem, with the
    step bounds.

    ``t_lo = shrink 2 (1 - c) / L``: no accepted step can be shorter unless ``t0`` is;
    ``t_hi = 2 (1 - c) / mu``: no accepted step can be longer (``mu > 0`` only).
    """
    kw = {"tol": cfg["tol"], "max_steps": cfg["max_steps"]}
    gd = run_method(f, grad, x0, method="gd", lr=1.0 / L, **kw)
    out = {"gd": gd}
    t_lo = ARMIJO.shrink * 2.0 * (1.0 - ARMIJO.c) / L
    for method in methods:
        res = run_method(f, grad, x0, method=method, lr=cfg["t0"], **kw)
        res["iter_ratio"] = res["steps_frac"] / gd["steps_frac"]
        res["t_lo_ratio"] = float(np.min(res["t"]) / min(t_lo, cfg["t0"]))
        if mu is not None:
            res["t_hi_ratio"] = float(np.max(res["t"]) * mu / (2.0 * (1.0 - ARMIJO.c)))
        res["evals_per_step"] = (res["n_f"] + res["n_grad"]) / res["steps"]
        out[method] = res
    return out


# --------------------------------------------------------------------------- problems
def quadratics(cfg: dict, rng: np.random.Generator):
    """``f = 1/2 x^T A x`` with spectrum ``[L/kappa, L]`` and ``L`` on a different scale each.

    ``x0 = Q s`` with random signs ``s``: weight 1 on every eigenvector, so that an iteration
    count measures the spectrum rather than how little of the slowest eigenvector a Gaussian
    ``x0`` happened to draw (a small share lets GD stop early and inflates Armijo/GD ratios).
    """
    for kappa, L in zip(cfg["kappas"], cfg["scales"], strict=True):
        d = cfg["d"]
        lam = L * np.concatenate([[1.0 / kappa], rng.uniform(1.0 / kappa, 1.0, d - 2), [1.0]])
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))  # (d, d)
        A = (Q * lam) @ Q.T
        x0 = Q @ rng.choice([-1.0, 1.0], size=d)  # (d,)
        yield (
            f"quadratic, kappa = {kappa:g}, L = {L:g}",
            (
                lambda x, A=A: 0.5 * float(x @ A @ x),
                lambda x, A=A: A @ x,
                x0,
                L,
                L / kappa,
            ),
        )


def logistic(cfg: dict, rng: np.random.Generator):
    """``f(w) = mean_i log(1 + exp(-y_i x_i.w)) + lam/2 ||w||^2`` on correlated, badly scaled
    features; ``L = lambda_max(X^T X) / (4 n) + lam`` (the logistic curvature is at most 1/4),
    ``mu = lam``."""
    n, d, lam = cfg["n"], cfg["d"], cfg["lam"]
    scales = np.geomspace(1.0, cfg["scale_max"], d)  # (d,) column scales: ill-conditioned design
    X = rng.standard_normal((n, d)) * scales  # (n, d)
    w_true = rng.standard_normal(d) / scales
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)  # (n,)
    Z = y[:, None] * X  # (n, d)

    def f(w):
        return float(np.mean(np.logaddexp(0.0, -Z @ w))) + 0.5 * lam * float(w @ w)

    def grad(w):
        return -Z.T @ expit(-Z @ w) / n + lam * w

    L = float(np.linalg.eigvalsh(X.T @ X)[-1]) / (4.0 * n) + lam
    return f, grad, np.zeros(d), L, lam


def relu_net(cfg: dict, rng: np.random.Generator):
    """The ReLU net's loss as a function of the flat ``W``; ``L = lambda_max(H(0))``."""
    n, d, m = cfg["n"], cfg["d"], cfg["m"]
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    W0, a = net.init_net(d, m, rng=rng)
    f, grad = net.objective(X, y, a)  # one forward/backward pass per distinct w
    L = float(np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1])
    return f, grad, W0.ravel(), L, None


def eval_ratio(result: dict, method: str) -> float:
    """Calls to ``f`` and ``grad`` made by ``method`` over those made by GD, one problem."""
    calls = {v: result[v]["n_f"] + result[v]["n_grad"] for v in ("gd", method)}
    return float(calls[method] / calls["gd"])


def short(name: str) -> str:
    """Tick label of a problem: ``$\\kappa$=100`` for a quadratic, a short name otherwise."""
    if name.startswith("quadratic"):
        return r"$\kappa$=" + name.split(",")[1].split("=")[1].strip()
    return {"logistic regression": "logistic", "ReLU net": "net"}.get(name, name)


# --------------------------------------------------------------------------- run / plot
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Iterations, evaluations and accepted steps of GD at ``1/L`` vs Armijo on three problems."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_q, rng_l, rng_n = np.random.default_rng(seed).spawn(3)

    # %% Set-up: quadratics, a logistic regression and the ReLU net, each with its L (and mu)
    problems = [*quadratics(cfg["quad"], rng_q)]
    problems.append(("logistic regression", logistic(cfg["logreg"], rng_l)))
    problems.append(("ReLU net", relu_net(cfg["net"], rng_n)))

    # %% Optimise: GD at 1/L and both Armijo variants on every problem, calls counted
    results = {}
    for i, (name, (f, grad, x0, L, mu)) in enumerate(problems):
        results[name] = compare(f, grad, x0, L=L, mu=mu, cfg=cfg) | {"L": L}
        progress(i + 1, len(problems) + 1, name)

    # %% More logistic regressions, fresh data each: Armijo's iteration ratio there is bimodal
    # (usually far below 1; on a few problems it zig-zags near the edge of stability of the
    # sharpest directions and needs more iterations than GD), so its median is measured
    logreg_ratios = []
    for j in range(cfg["logreg"]["problems"]):
        if j == 0:
            res = results["logistic regression"]
        else:
            f, grad, x0, L, mu = logistic(cfg["logreg"], rng_l)
            res = compare(f, grad, x0, L=L, mu=mu, cfg=cfg)
        logreg_ratios.append(max(res["fixed"]["iter_ratio"], res["warm"]["iter_ratio"]))
    logreg_ratios = np.asarray(logreg_ratios)
    # More nets, fresh data and init each, with the warm-started search only (the practical
    # variant; the fixed t0 costs ~10 calls per step): the median iteration ratio is checked
    net_ratios = [results["ReLU net"]["warm"]["iter_ratio"]]
    for _ in range(cfg["net"]["problems"] - 1):
        f, grad, x0, L, mu = relu_net(cfg["net"], rng_n)
        net_ratios.append(
            compare(f, grad, x0, L=L, mu=mu, cfg=cfg, methods=("warm",))["warm"]["iter_ratio"]
        )
    progress(len(problems) + 1, len(problems) + 1, "more logistic regressions and nets")

    # %% Measure: iterations and calls against GD, accepted steps against their bounds
    names = list(results)
    logreg, relu = results[names[-2]], results[names[-1]]
    hardest = results[names[len(cfg["quad"]["kappas"]) - 1]]  # the quadratic of largest kappa

    def kind(p):
        return {"logistic regression": "logreg", "ReLU net": "net"}.get(p, "quad")

    arm = [(results[p][v], p) for p in names for v in ("fixed", "warm")]
    smooth = [(r, p) for r, p in arm if p != "ReLU net"]
    with_mu = [r for r, p in smooth]
    return {
        "problems": names,
        "table": {
            p: {
                "L": results[p]["L"],
                **{
                    v: {k: results[p][v][k] for k in ("steps", "n_f", "n_grad")}
                    for v in ("gd", "fixed", "warm")
                },
            }
            for p in names
        },
        "curves": {p: {v: results[p][v]["gnorm"] for v in ("gd", "fixed", "warm")} for p in names},
        "steps_taken": {
            p: {v: results[p][v]["t"] * results[p]["L"] for v in ("fixed", "warm")} for p in names
        },
        "iter_ratio_max_quad": float(max(r["iter_ratio"] for r, p in arm if kind(p) == "quad")),
        "iter_ratio_min_quad": float(min(r["iter_ratio"] for r, p in arm if kind(p) == "quad")),
        "iter_ratio_max_logreg": float(max(r["iter_ratio"] for r, p in arm if kind(p) == "logreg")),
        "iter_ratio_median_logreg": float(np.median(logreg_ratios)),
        "iter_ratios_logreg": logreg_ratios,
        "slow_fraction_logreg": float(np.mean(logreg_ratios > 1.0)),
        "iter_ratio_max_net": float(max(r["iter_ratio"] for r, p in arm if kind(p) == "net")),
        "iter_ratio_median_net_warm": float(np.median(net_ratios)),
        "armijo_margin_min": float(min(r["armijo_margin"] for r, _ in arm)),
        "t_lo_ratio_min_smooth": float(min(r["t_lo_ratio"] for r, _ in smooth)),
        "t_hi_ratio_max": float(max(r["t_hi_ratio"] for r in with_mu)),
        "t_lo_ratio_net": float(
            min(results["ReLU net"][v]["t_lo_ratio"] for v in ("fixed", "warm"))
        ),
        "evals_per_step_fixed_max": float(
            max(results[p]["fixed"]["evals_per_step"] for p in names)
        ),
        "evals_per_step_warm_max": float(max(results[p]["warm"]["evals_per_step"] for p in names)),
        "evals_per_step_warm": float(
            sum(results[p]["warm"]["n_f"] + results[p]["warm"]["n_grad"] for p in names)
            / sum(results[p]["warm"]["steps"] for p in names)
        ),
        "evals_per_step_fixed": float(
            sum(results[p]["fixed"]["n_f"] + results[p]["fixed"]["n_grad"] for p in names)
            / sum(results[p]["fixed"]["steps"] for p in names)
        ),
        "gd_all_converged": bool(all(np.isfinite(results[p]["gd"]["steps"]) for p in names)),
        "gd_budget_fraction_max": float(
            max(results[p]["gd"]["steps_frac"] for p in names) / cfg["max_steps"]
        ),
        "iter_ratio_logreg_fixed": float(logreg["fixed"]["iter_ratio"]),
        "iter_ratio_logreg_warm": float(logreg["warm"]["iter_ratio"]),
        "iter_ratio_net_fixed": float(relu["fixed"]["iter_ratio"]),
        "iter_ratio_net_warm": float(relu["warm"]["iter_ratio"]),
        "iter_ratio_quad_hardest_fixed": float(hardest["fixed"]["iter_ratio"]),
        "iter_ratio_quad_hardest_warm": float(hardest["warm"]["iter_ratio"]),
        "eval_ratio_logreg_fixed": eval_ratio(logreg, "fixed"),
        "eval_ratio_logreg_warm": eval_ratio(logreg, "warm"),
        "eval_ratio_net_fixed": eval_ratio(relu, "fixed"),
        "eval_ratio_net_warm": eval_ratio(relu, "warm"),
        "eval_ratio_quad_hardest_fixed": eval_ratio(hardest, "fixed"),
        "eval_ratio_quad_hardest_warm": eval_ratio(hardest, "warm"),
    }


def plot(result: dict):
    names = result["problems"]
    ticks = [short(p) for p in names]
    fig, axes = subplots(2, 3, width=3.9, height=3.0)
    styles = {
        "gd": ("GD at 1/L", "-"),
        "fixed": ("Armijo, fixed t0", "--"),
        "warm": ("Armijo, warm start", ":"),
    }
    picks = [names[0], names[len(names) - 3], names[-2], names[-1]]
    for ax, p in zip(axes.flat[:4], picks, strict=True):
        for v, (label, ls) in styles.items():
            row = result["table"][p][v]
            ax.semilogy(
                result["curves"][p][v] / result["curves"][p][v][0],
                ls,
                label=f"{label}: {row['steps']} it, {row['n_f']} f + {row['n_grad']} grad",
            )
        ax.set(
            xlabel="iteration k",
            ylabel=r"$\|\nabla f(x_k)\| / \|\nabla f(x_0)\|$",
            title=p.replace("kappa", r"$\kappa$"),
        )
        ax.legend(fontsize=6)
    ax = axes.flat[4]
    for i, p in enumerate(names):
        t = result["steps_taken"][p]["warm"]
        ax.plot(np.full(t.size, i) + np.linspace(-0.2, 0.2, t.size), t, ".", ms=1.5, alpha=0.5)
    ax.axhline(
        ARMIJO.shrink * 2 * (1 - ARMIJO.c),
        color="k",
        lw=0.8,
        ls="--",
        label=r"floor shrink$\cdot 2(1-c)/L$ ($\approx$ GD's $1/L$)",
    )
    ax.set(
        yscale="log",
        xticks=range(len(names)),
        xticklabels=ticks,
        ylabel=r"accepted step $t \cdot L$",
        ylim=(0.5, 30),
        title="accepted steps (warm start), in units of 1/L",
    )
    ax.legend(fontsize=6)
    ax = axes.flat[5]
    x = np.arange(len(names))
    top = 0
    for j, (v, (label, _)) in enumerate(styles.items()):
        it = [result["table"][p][v]["steps"] for p in names]
        ev = [result["table"][p][v]["n_f"] + result["table"][p][v]["n_grad"] for p in names]
        ax.bar(x + (j - 1) * 0.27, ev, width=0.27, label=f"{label}: f + grad calls")
        ax.plot(x + (j - 1) * 0.27, it, "k_", ms=8)
        top = max(top, *ev)
    ax.set(
        yscale="log",
        ylim=(10, 30 * top),
        xticks=x,
        xticklabels=ticks,
        ylabel="calls (bars), iterations (ticks)",
        title="cost, honestly counted",
    )
    ax.legend(fontsize=6)
    for a in axes.flat[4:]:
        a.tick_params(axis="x", labelsize=7, labelrotation=30)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
