"""lazy_training: wide or strongly scaled nets stay close to their linearisation.

Two sweeps of full-batch GD on two-layer nets, each compared with the
linearised model ``f(theta0) + J0 (theta - theta0)`` trained by the same GD.
(a) Width ``m`` (Du et al.'s ReLU net, ``shared.net``): the relative parameter
change ``||W(K) - W(0)||_F / ||W(0)||_F`` falls as ``m^(-1/2)`` because
``||W(K) - W(0)||_F`` stays O(1) while ``||W(0)||_F = sqrt(m d)``; the kernel
``H`` and the distance to the linearised model fall with ``m`` too (Jacot et
al. 2018, Thm 2; Lee et al. 2019, Sec. 2).

(b) Output scale ``alpha`` at fixed ``m`` (Chizat, Oyallon, Bach 2019, Sec. 2):
the centred model ``alpha (f(theta) - f(theta0))`` with the loss scaled by
``1 / alpha^2`` moves its parameters by O(1/alpha). For a smooth activation
(tanh, written below with explicit gradients) the kernel drift and the
linearisation error are O(1/alpha) (their Sec. 2 bounds assume a Lipschitz Jacobian).
ReLU's Jacobian jumps when an activation pattern flips; the flips of random
sign add up like a random walk and the linearisation error shrinks only like
about ``alpha^(-1/2)``. A small ``alpha`` is not lazy: the weights move by
more than their own size and the kernel changes by tens of percent.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    # (a) widths, w_steps GD steps, w_inits nets per width, n_checks train-distance
    # checkpoints; (b) alphas at width m_scale, s_steps GD steps, s_inits (data set, init) pairs
    # whose exponents are reported as medians; n_test test inputs
    "quick": {
        "n": 20,
        "d": 10,
        "n_test": 50,
        "widths": [100, 200, 400, 800, 1600, 3200],
        "w_steps": 100,
        "w_sets": 5,
        "w_inits": 2,
        "n_checks": 10,
        "alphas": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        "m_scale": 500,
        "s_steps": 200,
        "s_inits": 9,
    },
    "full": {
        "n": 20,
        "d": 10,
        "n_test": 50,
        "widths": [100, 200, 400, 800, 1600, 3200, 6400, 12800],
        "w_steps": 300,
        "w_sets": 1,
        "w_inits": 4,
        "n_checks": 10,
        "alphas": [0.03, 0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
        "m_scale": 1000,
        "s_steps": 500,
        "s_inits": 1,
    },
}


# --------------------------------------------------------------------------- linearised model
def linearised_gd(H0: np.ndarray, r0: np.ndarray, *, eta: float, steps: int):
    """GD on the linearised model ``f(theta0) + J0 (theta - theta0)`` with ``J0 J0^T = H0``.

    Its residual obeys ``r(k+1) = (I - eta H0) r(k)`` and its parameters are
    ``theta(k) - theta0 = J0^T c(k)`` with ``c(k) = -eta sum_{j<k} r(j)``, so its
    prediction at any input ``x`` is ``f(theta0; x) + H0(x, X) c(k)`` (the
    linearised network of Lee et al. 2019, Sec. 2, in discrete time).

    Parameters
    ----------
    H0 : (n, n) ndarray, the kernel at init.
    r0 : (n,) ndarray, the residual ``u(0) - y``.

    Returns
    -------
    R : (steps + 1, n) ndarray, residuals ``r(k)``.
    C : (steps + 1, n) ndarray, coefficients ``c(k)``.
    """
    n = r0.shape[0]
    R, C = np.empty((steps + 1, n)), np.empty((steps + 1, n))
    R[0], C[0] = r0, 0.0
    for k in range(steps):
        R[k + 1] = R[k] - eta * (H0 @ R[k])
        C[k + 1] = C[k] - eta * R[k]
    return R, C


def relu_cross_gram(Xb: np.ndarray, X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``H(W)`` between two input sets: ``(1/m) xb_i.x_j sum_r 1{w_r.xb_i >= 0} 1{w_r.x_j >= 0}``.

    Returns an ``(nb, n)`` ndarray; with ``Xb = X`` it is ``kernels.gram_h(X, W)``.
    """
    Ab = (Xb @ W.T >= 0).astype(X.dtype)  # (nb, m)
    A = (X @ W.T >= 0).astype(X.dtype)  # (n, m)
    return (Xb @ X.T) * (Ab @ A.T) / W.shape[0]


# --------------------------------------------------------------------------- tanh net
def tanh_predict(X: np.ndarray, W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Predictions ``f(x_i) = (1/sqrt(m)) sum_r a_r tanh(w_r.x_i)``, ``(n,)``.

    ``X (n, d)``, ``W (m, d)``, ``a (m,)``.
    """
    return np.tanh(X @ W.T) @ a / np.sqrt(W.shape[0])


def tanh_grad_W(X: np.ndarray, r: np.ndarray, W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``sum_i r_i df(x_i)/dW``, ``(m, d)``.

    Row ``r`` is ``(a_r / sqrt(m)) sum_i r_i tanh'(w_r.x_i) x_i``.
    """
    S = 1.0 - np.tanh(X @ W.T) ** 2  # (n, m), tanh'(w_r.x_i)
    return (S * r[:, None]).T @ X * (a / np.sqrt(W.shape[0]))[:, None]


def tanh_gram(Xb: np.ndarray, X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Kernel ``J(Xb) J(X)^T (nb, n)``: ``(1/m) xb_i.x_j sum_r tanh'(w_r.xb_i) tanh'(w_r.x_j)``.

    ``a_r^2 = 1`` drops out; with ``Xb = X`` it is the tanh net's ``H(W)``.
    """
    Sb = 1.0 - np.tanh(Xb @ W.T) ** 2  # (nb, m)
    S = 1.0 - np.tanh(X @ W.T) ** 2  # (n, m)
    return (Xb @ X.T) * (Sb @ S.T) / W.shape[0]


def tanh_train_scaled(X, y, W0, a, *, alpha: float, eta: float, steps: int) -> np.ndarray:
    """GD on ``(1 / (2 alpha^2)) ||alpha (f(W) - f(W0)) - y||^2`` over ``W``; returns ``W(steps)``.

    The gradient is ``(1/alpha) sum_i r_i df(x_i)/dW`` with ``r = alpha (f - f0) - y``
    (Chizat et al. 2019, Sec. 2), so the residual moves with the kernel
    ``J J^T`` at any ``alpha`` and one ``eta`` serves every scale.
    """
    f0 = tanh_predict(X, W0, a)
    W = W0.copy()
    for _ in range(steps):
        r = alpha * (tanh_predict(X, W, a) - f0) - y  # (n,)
        W -= (eta / alpha) * tanh_grad_W(X, r, W, a)
    return W


def relu_train_scaled(X, y, W0, a, *, alpha: float, eta: float, steps: int) -> np.ndarray:
    """The same scaled GD for the ReLU net, through ``net.train``; returns ``W(steps)``.

    ``alpha (f - f0) - y = alpha f - (y + alpha f0)``, so the scaled loss is
    ``1/alpha^2`` times ``net.loss`` of the net with output scale ``alpha`` and
    labels ``y + alpha f0``: ``net.train`` with ``scale=alpha`` and step ``eta / alpha^2``.
    """
    f0 = net.predict(X, W0, a)
    res = net.train(
        X, y + alpha * f0, W0, a, eta=eta / alpha**2, steps=steps, scale=alpha, record_every=steps
    )
    return res.W


# --------------------------------------------------------------------------- (a) width sweep
def width_point(X, y, Xt, W0, a0, *, eta: float, steps: int, n_checks: int) -> dict:
    """One width: GD (``net.train``, watched by its callback) against its linearisation.

    Returns the relative change ``||W(K) - W(0)||_F / ||W(0)||_F``, the kernel
    drift ``||H(K) - H(0)||_2 / ||H(0)||_2``, the largest train distance
    ``max_k ||u(k) - u_lin(k)|| / ||u(0) - y||`` over ``n_checks`` equally spaced
    checkpoints ``k > 0`` and the test distance
    ``||f(Xt) - f_lin(Xt)|| / ||f_lin(Xt) - f(W0; Xt)||`` at ``K``.
    """
    if steps % n_checks:
        raise ValueError(f"steps: expected a multiple of n_checks={n_checks}, got {steps}")
    H0 = kernels.gram_h(X, W0)
    u0, ft0 = net.predict(X, W0, a0), net.predict(Xt, W0, a0)
    R, C = linearised_gd(H0, u0 - y, eta=eta, steps=steps)
    train_dist = [0.0]  # the net and its linearisation start at the same u(0)

    def watch(k, W, a, u):
        if k > 0:
            train_dist.append(np.linalg.norm(u - (y + R[k])) / np.linalg.norm(R[0]))

    W = net.train(
        X, y, W0, a0, eta=eta, steps=steps, record_every=steps // n_checks, callback=watch
    ).W
    ft_lin = ft0 + relu_cross_gram(Xt, X, W0) @ C[-1]  # (nt,)
    ft = net.predict(Xt, W, a0)
    HK = kernels.gram_h(X, W)
    return {
        "rel_change": np.linalg.norm(W - W0) / np.linalg.norm(W0),
        "kernel_drift": np.linalg.norm(HK - H0, 2) / np.linalg.norm(H0, 2),
        "lin_dist_train": max(train_dist),
        "lin_dist_test": np.linalg.norm(ft - ft_lin) / np.linalg.norm(ft_lin - ft0),
    }


def width_sweep(rng, *, widths, n, d, n_test, steps, n_inits, n_checks, progress) -> dict:
    """Average of :func:`width_point` over ``n_inits`` inits per width; one data set.

    Step ``eta = 1 / lambda_max(H_inf)``, the same for every width.
    """
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    Xt = data.unit_sphere(n_test, d, rng=rng)
    eta = 1.0 / np.linalg.eigvalsh(kernels.h_inf(X))[-1]
    rows = []
    for i, m in enumerate(widths):
        pts = []
        for _ in range(n_inits):
            W0, a0 = net.init_net(d, m, rng=rng)
            pts.append(width_point(X, y, Xt, W0, a0, eta=eta, steps=steps, n_checks=n_checks))
        rows.append({key: float(np.mean([p[key] for p in pts])) for key in pts[0]})
        progress(i + 1, len(widths), f"width m={m}")
    out = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    out["m"] = np.asarray(widths, dtype=float)
    return out


# --------------------------------------------------------------------------- (b) scale sweep
def scale_point(act: str, X, y, Xt, W0, a0, alphas, *, steps: int) -> dict:
    """Scaled GD at every ``alpha`` for one activation, against the (alpha-free) linearisation.

    Returns arrays over ``alphas``: relative change, kernel drift
    ``||H(W(K)) - H(W0)||_2 / ||H(W0)||_2`` and the test distance
    ``||g(Xt) - g_lin(Xt)|| / ||g_lin(Xt)||`` with ``g = alpha (f - f0)``.
    """
    if act == "tanh":
        gram = tanh_gram
        predict, train = tanh_predict, tanh_train_scaled
    else:
        gram = relu_cross_gram
        predict, train = net.predict, relu_train_scaled
    H0 = gram(X, X, W0)
    eta = 1.0 / np.linalg.eigvalsh(H0)[-1]
    _, C = linearised_gd(H0, -y, eta=eta, steps=steps)  # g(0) = 0, so r(0) = -y
    gt_lin = gram(Xt, X, W0) @ C[-1]  # (nt,)
    ft0 = predict(Xt, W0, a0)
    rel, drift, dist, loss = [], [], [], []
    for alpha in alphas:
        W = train(X, y, W0, a0, alpha=alpha, eta=eta, steps=steps)
        gt = alpha * (predict(Xt, W, a0) - ft0)
        r = alpha * (predict(X, W, a0) - predict(X, W0, a0)) - y
        rel.append(np.linalg.norm(W - W0) / np.linalg.norm(W0))
        drift.append(np.linalg.norm(gram(X, X, W) - H0, 2) / np.linalg.norm(H0, 2))
        dist.append(np.linalg.norm(gt - gt_lin) / np.linalg.norm(gt_lin))
        loss.append(float(r @ r) / float(y @ y))
    return {
        "rel_change": np.array(rel),
        "kernel_drift": np.array(drift),
        "lin_dist_test": np.array(dist),
        "loss_ratio": np.array(loss),
    }


# --------------------------------------------------------------------------- experiment
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Width sweep (a) and output-scale sweep (b).

    Scalars are fitted exponents and the small-alpha (non-lazy) values; arrays
    are the curves for the figure.
    """
    cfg = CONFIG["quick" if quick else "full"]
    n, d, n_test = cfg["n"], cfg["d"], cfg["n_test"]
    rng_width, rng_scale = np.random.default_rng(seed).spawn(2)

    # %% (a) Width sweep: GD at each width against its linearisation, on w_sets data sets
    sweeps = [
        width_sweep(
            rng,
            widths=cfg["widths"],
            n=n,
            d=d,
            n_test=n_test,
            steps=cfg["w_steps"],
            n_inits=cfg["w_inits"],
            n_checks=cfg["n_checks"],
            progress=progress,
        )
        for rng in rng_width.spawn(cfg["w_sets"])
    ]
    wid = sweeps[0]  # the curves of the figure: the first data set

    # %% (b) Scale sweep: per (data set, init) pair, scaled GD at every alpha, tanh and ReLU
    alphas = np.asarray(cfg["alphas"])
    steps = cfg["s_steps"]
    lazy = alphas >= 1.0  # the lazy side, where the exponents are fitted
    far = alphas >= 3.0  # the 1/alpha term of the tanh kernel drift dominates the 1/alpha^2 one

    def slope(x, v):
        return fit.power_law(x, v)[0]

    pairs = []  # per pair: its curves and its scalars
    for rng in rng_scale.spawn(cfg["s_inits"]):
        X = data.unit_sphere(n, d, rng=rng)
        y = data.gaussian_labels(n, rng=rng)
        Xt = data.unit_sphere(n_test, d, rng=rng)
        W0, a0 = net.init_net(d, cfg["m_scale"], rng=rng)
        tanh = scale_point("tanh", X, y, Xt, W0, a0, alphas, steps=steps)
        relu = scale_point("relu", X, y, Xt, W0, a0, alphas, steps=steps)
        q = {
            "tanh_rel_change_exponent": slope(alphas[lazy], tanh["rel_change"][lazy]),
            "tanh_lin_dist_exponent": slope(alphas[lazy], tanh["lin_dist_test"][lazy]),
            "tanh_rel_change_small_alpha": float(tanh["rel_change"][0]),
            "tanh_kernel_drift_small_alpha": float(tanh["kernel_drift"][0]),
            "relu_rel_change_exponent": slope(alphas[lazy], relu["rel_change"][lazy]),
            "relu_lin_dist_exponent": slope(alphas[lazy], relu["lin_dist_test"][lazy]),
            "relu_rel_change_small_alpha": float(relu["rel_change"][0]),
            "relu_kernel_drift_small_alpha": float(relu["kernel_drift"][0]),
            "tanh_kernel_drift_exponent": slope(alphas[far], tanh["kernel_drift"][far]),
            # nan where no pattern flips at the largest alpha: the ReLU kernel did not move at all
            "relu_kernel_drift_exponent": slope(alphas[far], relu["kernel_drift"][far])
            if np.all(relu["kernel_drift"][far] > 0)
            else float("nan"),
        }
        q["relu_minus_tanh_lin_dist_exponent"] = (
            q["relu_lin_dist_exponent"] - q["tanh_lin_dist_exponent"]
        )
        pairs.append((tanh, relu, q))

    # %% Measure: the width exponents; the scale sweep's medians over the pairs
    def width_slope(key):  # the median over the data sets of the slope on one
        return float(np.median([slope(w["m"], w[key]) for w in sweeps]))

    out = {
        "width_rel_change_exponent": width_slope("rel_change"),
        "width_kernel_drift_exponent": width_slope("kernel_drift"),
        "width_lin_dist_train_exponent": width_slope("lin_dist_train"),
        "width_lin_dist_test_exponent": width_slope("lin_dist_test"),
    }
    for key in pairs[0][2]:
        out[key] = float(np.median([q[key] for _, _, q in pairs]))
    tanh, relu, _ = pairs[0]  # the curves of the figure: the first pair
    # series for the figure: width_<curve> over m, tanh_<curve> and relu_<curve> over alpha
    out["m"] = wid["m"]
    for key in ("rel_change", "kernel_drift", "lin_dist_train", "lin_dist_test"):
        out["width_" + key] = wid[key]
    out["alpha"] = alphas
    for key in ("rel_change", "kernel_drift", "lin_dist_test", "loss_ratio"):
        out["tanh_" + key], out["relu_" + key] = tanh[key], relu[key]
    return out


def plot(result: dict):
    fig, axes = subplots(1, 3, width=4.0, height=3.4)
    m = np.asarray(result["m"])
    ax = axes[0]
    colors = width_colors(4)
    for c, (key, label) in zip(
        colors,
        [
            ("rel_change", r"$\|W(K)-W(0)\|_F/\|W(0)\|_F$"),
            ("kernel_drift", r"$\|H(K)-H(0)\|/\|H(0)\|$"),
            ("lin_dist_train", "dist. to linearised, train"),
            ("lin_dist_test", "dist. to linearised, test"),
        ],
        strict=True,
    ):
        p = result.get(f"width_{key}_exponent", fit.power_law(m, result[f"width_{key}"])[0])
        ax.loglog(m, result[f"width_{key}"], "o-", color=c, label=f"{label} ($m^{{{p:.2f}}}$)")
    ax.loglog(
        m, result["width_rel_change"][0] * (m / m[0]) ** -0.5, "k:", lw=1, label=r"$m^{-1/2}$"
    )
    ax.set(xlabel="width m", ylabel="relative size", title="(a) ReLU net vs width (alpha = 1)")
    ax.legend(fontsize=7)

    alpha = np.asarray(result["alpha"])
    styles = {"tanh": ("C0", "tanh"), "relu": ("C3", "ReLU")}
    ax = axes[1]
    for act, (c, name) in styles.items():
        ax.loglog(alpha, result[f"{act}_rel_change"], "o-", color=c, label=f"{name}: param. change")
        ax.loglog(
            alpha, result[f"{act}_kernel_drift"], "s--", color=c, label=f"{name}: kernel drift"
        )
    ax.loglog(alpha, 0.3 / alpha, "k:", lw=1, label=r"$\propto 1/\alpha$")
    ax.set(
        xlabel=r"output scale $\alpha$",
        ylabel="relative change",
        title=r"(b) vs $\alpha$ (m fixed)",
    )
    ax.legend(fontsize=7)

    ax = axes[2]
    for act, (c, name) in styles.items():
        p = result.get(f"{act}_lin_dist_exponent", float("nan"))
        ax.loglog(
            alpha,
            result[f"{act}_lin_dist_test"],
            "o-",
            color=c,
            label=rf"{name} ($\alpha^{{{p:.2f}}}$ for $\alpha \geq 1$)",
        )
    ax.loglog(alpha, 0.05 / alpha, "k:", lw=1, label=r"$\propto 1/\alpha$")
    ax.loglog(alpha, 0.1 / np.sqrt(alpha), "k--", lw=1, label=r"$\propto \alpha^{-1/2}$")
    ax.set(
        xlabel=r"output scale $\alpha$",
        ylabel="test distance to linearised model",
        title=r"(c) linearisation error vs $\alpha$",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
