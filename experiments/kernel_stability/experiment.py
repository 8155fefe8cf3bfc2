"""kernel_stability: the Gram matrix H(k) barely moves while GD drives the loss to zero.

Du et al. (ICLR 2019) prove linear convergence by showing that the finite-width
Gram matrix ``H(k) = H(W(k))`` stays close to ``H(0)``, and ``H(0)`` close to
``H_inf``, so that ``lambda_min(H(k)) >= lam0 / 2`` at every step (Lemma 3.2 and
Thm 3.2 for gradient flow; Thm 4.1 / Lemma 4.1 for GD). What that buys is a
Polyak-Lojasiewicz inequality along the path, ``||grad_W L(k)||^2 >= 2
lambda_min(H(k)) L(k)`` (Liu, Zhu, Belkin 2020): with ``a_r^2 = 1`` the squared
gradient is exactly the quadratic form ``r(k)^T H(k) r(k)`` of the residual.

This experiment trains the first layer of the two-layer ReLU net at a sweep of
widths ``m``, several inits per width on one data set. Every ``s`` steps it
records ``lambda_min(H(k))``, the drift ``||H(k) - H(0)||_2``, the squared
gradient and ``r^T H r``. It checks ``lambda_min(H(k)) >= lam0 / 2`` and the PL
inequality along every run, and splits the drift ``H(K) - H(0)`` into the part
that all inits share (pattern flips that go one way more often than the other,
``O(m^-1/2)``) and the part that differs from init to init (flips of random
sign, ``O(m^-3/4)``), each with its exponent in ``m``.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    # widths: the sweep of m; moderate: the smallest width of the lambda_min claim; sets: data
    # sets (the scalars are medians over them); inits: nets per width and data set (the drift
    # split needs two at least); every: steps between records
    "quick": {
        "n": 30,
        "d": 10,
        "widths": (512, 1024, 2048, 4096, 8192),
        "moderate": 8192,
        "sets": 3,
        "inits": 2,
        "steps": 200,
        "every": 20,
    },
    "full": {
        "n": 100,
        "d": 20,
        "widths": (512, 1024, 2048, 4096, 8192, 16384, 32768),
        "moderate": 2048,
        "sets": 1,
        "inits": 4,
        "steps": 200,
        "every": 10,
    },
}


def train_watching_kernel(X, y, W0, a0, *, eta: float, steps: int, every: int) -> dict:
    """GD (``net.train``) recording the kernel and the PL quantities every ``every`` steps.

    At each recorded step ``k`` the callback builds ``H(k) = H(W(k))`` (``kernels.gram_h``)
    and takes the gradient from ``net.gradients``, independently of the kernel, so that
    ``||grad_W L||^2 = r^T H r`` (``r = u - y``) is a test of both.

    Returns
    -------
    dict with ``loss (steps + 1,)``, ``W (m, d)`` the weights after ``steps`` steps, and,
    over the ``steps // every + 1`` recorded steps: ``k``, ``lam_min`` (``lambda_min(H(k))``),
    ``drift`` (``||H(k) - H(0)||_2``), ``grad_sq`` (``||grad_W L(k)||_F^2``), ``quad``
    (``r^T H(k) r``) and ``L`` (``L(k)``).
    """
    if steps % every:
        raise ValueError(f"steps: expected a multiple of every={every}, got {steps}")
    H0 = kernels.gram_h(X, W0)  # (n, n)
    rec = {key: [] for key in ("lam_min", "drift", "grad_sq", "quad", "L")}

    def watch(k, W, a, u):
        H = kernels.gram_h(X, W)  # (n, n)
        L, grad_W, _, _ = net.gradients(X, y, W, a)
        r = u - y  # (n,)
        rec["lam_min"].append(float(np.linalg.eigvalsh(H)[0]))
        rec["drift"].append(float(np.linalg.norm(H - H0, 2)))
        rec["grad_sq"].append(float(np.sum(grad_W * grad_W)))
        rec["quad"].append(float(r @ H @ r))
        rec["L"].append(L)

    res = net.train(X, y, W0, a0, eta=eta, steps=steps, record_every=every, callback=watch)
    out = {key: np.asarray(val) for key, val in rec.items()}
    out.update(loss=res.loss, W=res.W, k=res.recorded_steps)
    return out


def drift_split(dH: np.ndarray) -> tuple[float, float]:
    """Split the drifts ``dH_j = H_j(K) - H_j(0)`` of ``R`` inits into a shared and an own part.

    Model: ``dH_j = M + N_j`` with ``M`` common to the inits (on one data set) and ``N_j``
    independent with mean zero. Unbiased estimates from the sample mean ``D`` and the
    sample variance: ``||N||_F^2 ~ sum_j ||dH_j - D||_F^2 / (R - 1)`` and
    ``||M||_F^2 ~ ||D||_F^2 - ||N||_F^2 / R`` (the mean inner product of two different
    inits' drifts).

    Parameters
    ----------
    dH : (R, n, n) ndarray, ``R >= 2``.

    Returns
    -------
    shared, own : ``||M||_F`` and ``||N||_F`` (``nan`` if the shared estimate is not positive).
    """
    R = dH.shape[0]
    if R < 2:
        raise ValueError(f"dH: expected the drifts of at least 2 inits, got {R}")
    D = dH.mean(axis=0)  # (n, n)
    own_sq = float(np.sum((dH - D) ** 2)) / (R - 1)
    shared_sq = float(np.sum(D * D)) - own_sq / R
    return (np.sqrt(shared_sq) if shared_sq > 0 else float("nan")), np.sqrt(own_sq)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure).

    Every scalar is the median over ``sets`` data sets of its value on one data set
    (:func:`data_set_run`), so that a single slowly converging data set, on which the
    weights travel further and the kernel drifts several times its median, does not set it;
    the series are those of the first data set.
    """
    cfg = CONFIG["quick" if quick else "full"]
    runs = []
    for s, rng in enumerate(np.random.default_rng(seed).spawn(cfg["sets"])):

        def step(i, total, label="", s=s):
            progress(s * total + i, cfg["sets"] * total, f"data set {s}, {label}")

        runs.append(data_set_run(rng, cfg, progress=step))
    progress(1, 1, "done")
    out = dict(runs[0])  # lam0 and eta are the first data set's, as the series
    for key, val in runs[0].items():
        if np.ndim(val) == 0 and key not in ("lam0", "eta"):
            vals = [r[key] for r in runs]
            # the shared part's estimate is nan where it is not positive (drift_split)
            out[key] = float(np.nanmedian(vals) if key.startswith("shared") else np.median(vals))
    out["data_sets"] = cfg["sets"]
    return out


def data_set_run(rng, cfg: dict, *, progress) -> dict:
    """One data set: every width, ``inits`` nets, watching the kernel and the gradient.

    Returns the scalars of :func:`run` for this data set and the series of the figure.
    """
    n, d, widths, inits = cfg["n"], cfg["d"], cfg["widths"], cfg["inits"]

    # %% Set-up: data, H_inf and its spectrum, the step 1 / lambda_max(H_inf)
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0 = lam[0]
    eta = 1.0 / lam[-1]

    # %% Train: every width, several inits, watching the kernel and the gradient
    shape = (len(widths), inits)
    ratio_min = np.empty(shape)  # min_k lambda_min(H(k)) / lam0
    ratio_init = np.empty(shape)  # lambda_min(H(0)) / lam0
    pl_ratio = np.empty(shape)  # min_k ||grad L||^2 / (2 lambda_min(H(k)) L(k))
    pl_const = np.empty(shape)  # min_k ||grad L||^2 / (2 L(k)), in units of lam0
    identity_err = np.empty(shape)  # max_k |(||grad L||^2 - r^T H r)| / ||grad L||^2
    drift_max = np.empty(shape)  # max_k ||H(k) - H(0)||_2
    drift_diag = np.empty(shape)  # ||diag(H(K) - H(0))||_2 (the diagonal as a vector)
    drift_off = np.empty(shape)  # ||offdiag(H(K) - H(0))||_F
    net_flips = np.empty(shape)  # -trace(H(K) - H(0)) / n = (off - on flips) / (m n)
    final_loss_ratio = np.empty(shape)
    shared = np.empty(len(widths))  # ||M||_F, the part of H(K) - H(0) shared by the inits
    own = np.empty(len(widths))  # ||N||_F, the part that differs from init to init
    traces = []  # first init of each width, for the figure
    for i, m in enumerate(widths):
        dH = np.empty((inits, n, n))
        for j in range(inits):
            progress(i * inits + j, len(widths) * inits, f"m = {m}")
            W0, a0 = net.init_net(d, m, rng=rng)
            tr = train_watching_kernel(
                X, y, W0, a0, eta=eta, steps=cfg["steps"], every=cfg["every"]
            )
            dH[j] = kernels.gram_h(X, tr["W"]) - kernels.gram_h(X, W0)
            ratio_min[i, j] = tr["lam_min"].min() / lam0
            ratio_init[i, j] = tr["lam_min"][0] / lam0
            pl_ratio[i, j] = np.min(tr["grad_sq"] / (2.0 * tr["lam_min"] * tr["L"]))
            pl_const[i, j] = np.min(tr["grad_sq"] / (2.0 * tr["L"])) / lam0
            identity_err[i, j] = np.max(np.abs(tr["grad_sq"] - tr["quad"]) / tr["grad_sq"])
            drift_max[i, j] = tr["drift"].max()
            drift_diag[i, j] = np.linalg.norm(np.diag(dH[j]))
            drift_off[i, j] = np.linalg.norm(dH[j] - np.diag(np.diag(dH[j])))
            net_flips[i, j] = -np.trace(dH[j]) / n
            final_loss_ratio[i, j] = tr["loss"][-1] / tr["loss"][0]
            if j == 0:
                traces.append(tr)
        shared[i], own[i] = drift_split(dH)

    # %% Measure: lambda_min and the PL constant against lam0 / 2; the drift exponents in m
    m_arr = np.asarray(widths, dtype=float)

    def exponent(v):  # least-squares slope of log v against log m, and its standard error
        return fit.power_law(m_arr, v) if np.all(v > 0) else (float("nan"), float("nan"))

    drift_typ = np.exp(np.log(drift_max).mean(axis=1))  # (len(widths),) geometric mean
    mod = widths.index(cfg["moderate"])
    shared_exp, shared_se = exponent(shared)
    own_exp, own_se = exponent(own)
    drift_exp, drift_se = exponent(drift_typ)
    return {
        "lam0": lam0,
        "eta": eta,
        "moderate_width": cfg["moderate"],
        "lam_min_ratio_moderate": float(ratio_min[mod:].min()),
        "lam_min_ratio_narrowest": float(ratio_min[0].min()),
        "pl_constant_over_lam0": float(pl_const[mod:].min()),
        "pl_constant_over_lam0_narrowest": float(pl_const[0].min()),
        "pl_ratio_min": float(pl_ratio.min()),
        "grad_identity_err": float(identity_err.max()),
        # floored at 1e-17, below float64's resolution: agreement to the last bit reads -17
        "log10_grad_identity_err": float(np.log10(max(identity_err.max(), 1e-17))),
        "shared_drift_exponent": shared_exp,
        "shared_drift_exponent_se": shared_se,
        "own_drift_exponent": own_exp,
        "own_drift_exponent_se": own_se,
        "drift_exponent": drift_exp,
        "drift_exponent_se": drift_se,
        "diag_drift_exponent": exponent(np.exp(np.log(drift_diag).mean(axis=1)))[0],
        "offdiag_drift_exponent": exponent(np.exp(np.log(drift_off).mean(axis=1)))[0],
        "drift_over_lam0_widest": float(drift_typ[-1] / lam0),
        "max_final_loss_ratio": float(final_loss_ratio.max()),
        "max_final_log10_loss_ratio": float(np.log10(final_loss_ratio.max())),
        # series
        "widths": np.asarray(widths),
        "drift_typ": drift_typ,
        "drift_all": drift_max,
        "drift_shared": shared,
        "drift_own": own,
        "net_flip_fraction": net_flips,
        "ratio_min": ratio_min,
        "ratio_init": ratio_init,
        "pl_ratio": pl_ratio,
        "pl_constant": pl_const,
        "trace_k": traces[0]["k"],
        "trace_lam_min_ratio": np.array([t["lam_min"] / lam0 for t in traces]),
        "trace_pl_constant": np.array([t["grad_sq"] / (2.0 * t["L"] * lam0) for t in traces]),
        "trace_drift": np.array([t["drift"] for t in traces]),
        "trace_loss_ratio": np.array([t["loss"] / t["loss"][0] for t in traces]),
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.1)
    widths = np.asarray(result["widths"])
    colors = width_colors(len(widths))
    k = np.asarray(result["trace_k"])

    ax = axes[0, 0]
    for loss, m, c in zip(result["trace_loss_ratio"], widths, colors, strict=True):
        ax.semilogy(np.arange(len(loss)), loss, color=c, label=f"m = {m}")
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title="GD loss, $\\eta = 1/\\lambda_{max}$")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    for ratio, pl, c in zip(
        result["trace_lam_min_ratio"], result["trace_pl_constant"], colors, strict=True
    ):
        ax.plot(k, ratio, ".-", color=c, ms=3)
        ax.plot(k, pl, "--", color=c, lw=0.8)
    ax.axhline(0.5, color="C3", ls=":", label=r"$\lambda_0 / 2$ (Thm 4.1)")
    ax.plot([], [], "k.-", ms=3, label=r"$\lambda_{min}(H(k)) / \lambda_0$")
    ax.plot([], [], "k--", lw=0.8, label=r"$\|\nabla L\|^2 / (2 L \lambda_0)$ (PL)")
    ax.set(
        xlabel="step k",
        ylabel=r"in units of $\lambda_0$",
        title="smallest eigenvalue and PL constant, one init",
        ylim=(0, 2.0),
    )
    ax.legend(loc="upper right", fontsize=7)

    ax = axes[1, 0]
    for drift, c in zip(result["trace_drift"], colors, strict=True):
        ax.plot(k, drift / result["lam0"], ".-", color=c, ms=3)
    ax.set(
        xlabel="step k",
        ylabel=r"$\|H(k) - H(0)\|_2 / \lambda_0$",
        title="kernel drift (colours as in the loss panel)",
    )

    ax = axes[1, 1]
    m = widths.astype(float)
    drift_all = np.asarray(result["drift_all"])
    ax.loglog(np.repeat(m, drift_all.shape[1]), drift_all.ravel(), "o", color="0.75", ms=3)
    ax.loglog(
        m,
        result["drift_typ"],
        "o-",
        color="k",
        label=rf"$\max_k\|H(k)-H(0)\|_2$: $m^{{{result['drift_exponent']:.2f}}}$",
    )
    ax.loglog(
        m,
        result["drift_shared"],
        "s-",
        color="C0",
        label=rf"shared by inits, $\|M\|_F$: $m^{{{result['shared_drift_exponent']:.2f}}}$",
    )
    ax.loglog(
        m,
        result["drift_own"],
        "^-",
        color="C3",
        label=rf"own to each init, $\|N\|_F$: $m^{{{result['own_drift_exponent']:.2f}}}$",
    )
    s0, o0 = result["drift_shared"][0], result["drift_own"][0]
    ax.loglog(m, s0 * (m[0] / m) ** 0.5, "C0:", lw=0.8, label="$m^{-1/2}$")
    ax.loglog(m, o0 * (m[0] / m) ** 0.75, "C3:", lw=0.8, label="$m^{-3/4}$")
    ax.set(xlabel="width m", ylabel="drift at the end of the run", title="drift vs width")
    ax.set_xticks(m, [str(int(w)) for w in m], minor=False)
    ax.set_xticks([], minor=True)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=6)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
