"""symmetry: identical neurons stay identical under GD; random init breaks the tie.

Du et al.'s two-layer ReLU net (ICLR 2019, Eq. (1)) trained on both layers by
full-batch GD (their Sec. 3.2 setting). If every neuron starts as a copy,
``w_r = w`` and ``a_r = a``, every neuron receives the same gradient
``dL/dw_r = (1/sqrt(m)) a_r sum_i (u_i - y_i) 1{w_r.x_i >= 0} x_i`` and
``dL/da_r = (1/sqrt(m)) sum_i (u_i - y_i) relu(w_r.x_i)``, so the copies never
separate: the width-``m`` net *is* a width-1 net with output scale ``sqrt(m)``
(trained at step ``eta / m``), and one ReLU neuron cannot fit ``n`` generic
labels. Random init (Du et al. Sec. 2) breaks the tie and the net fits.

A perturbation of size ``eps`` of the copies obeys, to first order, the linear
map ``(dw_r, da_r) <- (dw_r - eta c da_r g, da_r - eta c g.dw_r)`` with
``c = 1/sqrt(m)`` and ``g = sum_i (u_i - y_i) 1{w.x_i >= 0} x_i`` (d,), whose
eigenvalues are ``1 +- eta c ||g||`` and 1: the spread grows by up to
``1 + eta c ||g(k)||`` per step while the residual is large, and stops growing
as the copies reach a stationary point of the width-1 problem (``g -> 0``).
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net, optim
from shared.plotting import subplots

# inits: symmetric and random inits (same data) whose plateau, final losses, linearised growth
# and time to fit are measured through the width-1 twin and net.train; checked values are medians
CONFIG = {
    "quick": {"n": 20, "d": 10, "m": 64, "steps": 1500, "inits": 32, "random_inits": 8},
    "full": {"n": 50, "d": 10, "m": 512, "steps": 5000, "inits": 16, "random_inits": 2},
}
EPS = 1e-10  # size of the perturbation of the copies
FIT = 1e-6  # a random init has fitted once L(k) <= FIT L(0)
LINEAR_SPREAD = 1e-6  # spread below which the first-order map is compared with the measurement
TINY = np.finfo(float).tiny  # a bit-identical result (0) is drawn at log10(TINY) = -307.65


def _pack(W, a):
    """``theta = [vec W, a]`` (m d + m,)."""
    return np.concatenate([W.ravel(), a])


def _unpack(theta, m, d):
    """``(W (m, d), a (m,))`` from ``theta``; views, not copies."""
    return theta[: m * d].reshape(m, d), theta[m * d :]


def _objective(X, y, m, d, trace: dict):
    """``L`` and ``(dL/dW, dL/da)`` as functions of ``theta = [vec W, a]`` (m d + m,).

    One pass per distinct ``theta``; at each new point it appends to ``trace`` the
    spread ``max_r ||(w_r, a_r) - mean_r (w_r, a_r)||``, the largest entry of
    ``|theta_r - theta_1|`` (copies stay copies?), neuron 1's ``(w_1, a_1)``, the vector
    ``g = sum_i (u_i - y_i) 1{w_1.x_i >= 0} x_i`` (d,) of neuron 1 and its distance to the
    nearest kink, ``min_i |w_1 . x_i|``.
    """

    def fun_and_grad(theta):  # called once per distinct theta (optim.cached)
        W, a = _unpack(theta, m, d)
        L, gW, ga, u = net.gradients(X, y, W, a)
        dW, da = W - W.mean(axis=0), a - a.mean()  # (m, d), (m,)
        trace["spread"].append(float(np.sqrt(np.max(np.sum(dW**2, axis=1) + da**2))))
        trace["copies_dev"].append(
            max(float(np.max(np.abs(W - W[0]))), float(np.max(np.abs(a - a[0]))))
        )
        trace["w1"].append(W[0].copy())  # (d,)
        trace["a1"].append(float(a[0]))
        trace["g"].append(X.T @ ((u - y) * (X @ W[0] >= 0)))  # (d,)
        trace["kink"].append(float(np.min(np.abs(X @ W[0]))))  # neuron 1's distance to a kink
        return L, _pack(gW, ga)

    return optim.cached(fun_and_grad)


def _train(X, y, W0, a0, *, eta, steps):
    """GD on both layers (``optim.minimize`` on ``theta``); loss (steps+1,) and the traces."""
    m, d = W0.shape
    trace = {"spread": [], "copies_dev": [], "w1": [], "a1": [], "g": [], "kink": []}
    f, g = _objective(X, y, m, d, trace)
    res = optim.minimize(f, g, _pack(W0, a0), optimizer=optim.GD(), lr=eta, steps=steps)
    # the trace grows once per distinct theta: a run whose update underflows keeps theta, and
    # every later step repeats the last entry
    for v in trace.values():
        v.extend(v[-1:] * (steps + 1 - len(v)))
    return res.f, {k: np.asarray(v) for k, v in trace.items()}


def _tangent_spread(g_path, delta_W, delta_a, *, eta):
    """First-order prediction of the spread: propagate each neuron's deviation from the mean
    with ``M_k = [[I, -eta c g_k], [-eta c g_k^T, 1]]``, ``g_k`` (steps+1, d) from the
    symmetric run, ``c = 1/sqrt(m)``."""
    m = delta_W.shape[0]
    c = 1.0 / np.sqrt(m)
    dW, da = delta_W.copy(), delta_a.copy()  # (m, d), (m,)
    out = [np.sqrt(np.max(np.sum(dW**2, axis=1) + da**2))]
    for g in g_path[:-1]:
        dW, da = dW - eta * c * np.outer(da, g), da - eta * c * (dW @ g)
        out.append(np.sqrt(np.max(np.sum(dW**2, axis=1) + da**2)))
    return np.asarray(out)


def _width1_batch(X, y, w, a, *, m: int, eta, steps: int):
    """GD on ``R`` width-1 twins at once: ``u = sqrt(m) a relu(X w)`` (output scale
    ``sqrt(m)``), both layers, step ``eta / m``, the flow of ``m`` copies of ``(w, a)``.

    Parameters
    ----------
    w : (R, d) ndarray; a : (R,) ndarray; eta : (R,) ndarray, the copies' steps.

    Returns
    -------
    L : (R, steps + 1) ndarray, the loss; g : (steps + 1, R, d) ndarray,
    ``g_k = sum_i (u_i - y_i) 1{w.x_i >= 0} x_i``.
    """
    Ls, gs = [], []
    for _ in range(steps + 1):
        L, g, w, a = _width1_step(X, y, w, a, m=m, eta=eta)
        Ls.append(L)
        gs.append(g)
    return np.asarray(Ls).T, np.asarray(gs)


def _width1_step(X, y, w, a, *, m: int, eta):
    """One GD step of ``R`` width-1 twins ``u = sqrt(m) a relu(X w)`` at step ``eta / m``.

    Parameters
    ----------
    w : (R, d) ndarray; a : (R,) ndarray; eta : float or (R,) ndarray.

    Returns
    -------
    L : (R,) ndarray, the loss at ``(w, a)``; g : (R, d) ndarray,
    ``sum_i (u_i - y_i) 1{w.x_i >= 0} x_i``; ``w`` (R, d) and ``a`` (R,) after the step.
    """
    c = np.sqrt(m)
    lr = np.broadcast_to(np.asarray(eta, dtype=float), a.shape) / m  # (R,)
    z = w @ X.T  # (R, n)
    relu = np.maximum(z, 0.0)
    r = c * a[:, None] * relu - y  # (R, n) residual
    g = (r * (z >= 0)) @ X  # (R, d)
    # dL/dw = c a g, dL/da = c sum_i r_i relu(z_i)
    w_next = w - lr[:, None] * (c * a[:, None] * g)
    a_next = a - lr * c * np.sum(r * relu, axis=1)
    return 0.5 * np.sum(r**2, axis=1), g, w_next, a_next


def _linear_growth(g_path, *, eta: float, m: int) -> float:
    """``log10`` of the largest growth the first-order map can give a neuron's deviation,
    ``sigma_max(M_{K-1} ... M_0)`` with ``M_k = [[I, -eta c g_k], [-eta c g_k^T, 1]]``,
    ``c = 1/sqrt(m)`` ((d+1) x (d+1) each); renormalised at every step."""
    d = g_path.shape[1]
    P, log_scale = np.eye(d + 1), 0.0
    M = np.eye(d + 1)
    for g in g_path[:-1]:
        M[:d, d] = M[d, :d] = -eta / np.sqrt(m) * g
        P = M @ P
        s = np.linalg.norm(P)  # Frobenius: a cheap renormalisation
        P, log_scale = P / s, log_scale + np.log10(s)
    return float(log_scale + np.log10(np.linalg.norm(P, 2)))


def _more_inits(X, y, w0, a0, *, m: int, steps: int, inits: int, random_inits: int, rng) -> dict:
    """From ``inits`` symmetric inits (the first is ``(w0, a0)``; all run as width-1 twins, in
    one batch) and ``random_inits`` random ones (``net.train``, both layers): plateau, final
    losses, linearised growth and the fraction of the run a random init needs to reach
    ``L <= FIT L(0)``, as medians over the inits."""
    d = X.shape[1]
    w = np.vstack([w0, rng.standard_normal((inits - 1, d))])  # (R, d)
    a = np.concatenate([[a0], rng.choice([-1.0, 1.0], size=inits - 1)])  # (R,)
    eta = np.array(
        [
            1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W) + kernels.gram_g(X, W))[-1]
            for W in (np.tile(wr, (m, 1)) for wr in w)
        ]
    )
    L, g = _width1_batch(X, y, w, a, m=m, eta=eta, steps=steps)  # (R, K+1), (K+1, R, d)
    growth = np.array([_linear_growth(g[:, j], eta=eta[j], m=m) for j in range(inits)])
    rand_final, rand_fit = [], []
    for _ in range(random_inits):
        W, a_r = net.init_net(d, m, rng=rng)
        eta_r = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W) + kernels.gram_g(X, W))[-1]
        rand = net.train(X, y, W, a_r, eta=eta_r, steps=steps, train_a=True, record_every=steps)
        rand_final.append(np.log10(rand.loss[-1] / rand.loss[0]))
        fit = np.flatnonzero(rand.loss <= FIT * rand.loss[0])  # steps at which L <= FIT L(0)
        rand_fit.append(fit[0] / steps if fit.size else np.inf)
    return {
        "batch_loss": L[0],  # the first twin: the copies' own (w, a)
        "plateau_log10_drop_median": float(np.median(np.log10(L[:, steps // 2] / L[:, -1]))),
        "log10_final_symmetric_median": float(np.median(np.log10(L[:, -1] / L[:, 0]))),
        "log10_final_random_median": float(np.median(rand_final)),
        "log10_random_fit_fraction_median": float(np.log10(np.median(rand_fit))),
        "log10_linear_growth_median": float(np.median(growth)),
        "linear_growth_below_10_fraction": float(np.mean(growth < 1.0)),
        "log10_linear_growth_inits": growth,
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Copies, random init, width 1 and perturbed copies on the same data."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, steps = cfg["n"], cfg["d"], cfg["m"], cfg["steps"]
    eps = EPS
    rng = np.random.default_rng(seed)

    # %% Set-up: data; symmetric, random and perturbed-symmetric inits; each init's step
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)

    # symmetric init: m copies of one neuron; random init: Du et al. Sec. 2
    w, a = rng.standard_normal(d), rng.choice([-1.0, 1.0])
    W_sym, a_sym = np.tile(w, (m, 1)), np.full(m, a)  # (m, d), (m,)
    W_rand, a_rand = net.init_net(d, m, rng=rng)
    delta_W, delta_a = eps * rng.standard_normal((m, d)), eps * rng.standard_normal(m)

    # each init at its own step 1/lambda_max of the NTK H + G (both layers train)
    eta = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W_sym) + kernels.gram_g(X, W_sym))[-1]
    eta_rand = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W_rand) + kernels.gram_g(X, W_rand))[-1]

    # %% Train: GD on both layers from each init, and the width-1 net it is equivalent to
    L_sym, tr_sym = _train(X, y, W_sym, a_sym, eta=eta, steps=steps)
    progress(1, 5, "symmetric")
    L_rand, _ = _train(X, y, W_rand, a_rand, eta=eta_rand, steps=steps)
    progress(2, 5, "random")
    L_pert, tr_pert = _train(X, y, W_sym + delta_W, a_sym + delta_a, eta=eta, steps=steps)
    progress(3, 5, "perturbed")
    # the width-1 net with output scale sqrt(m) at step eta/m is the same function and flow
    one = net.train(
        X,
        y,
        w[None, :],
        np.array([a]),
        eta=eta / m,
        steps=steps,
        train_a=True,
        scale=np.sqrt(m),
        record_every=steps,
    )
    progress(4, 5, "width 1")
    more = _more_inits(
        X,
        y,
        w,
        a,
        m=m,
        steps=steps,
        inits=cfg["inits"],
        random_inits=cfg["random_inits"],
        rng=rng.spawn(1)[0],
    )
    batch = more.pop("batch_loss")
    progress(5, 5, f"{cfg['inits']} symmetric and random inits")

    # %% Measure: the copies stay copies; a tiny perturbation's spread against first order
    spread = tr_pert["spread"]  # (steps+1,)
    pred = _tangent_spread(
        tr_sym["g"], delta_W - delta_W.mean(0), delta_a - delta_a.mean(), eta=eta
    )
    rate = eta / np.sqrt(m) * np.linalg.norm(tr_sym["g"], axis=1)  # (steps+1,) eta c ||g_k||
    k_peak = int(np.argmax(spread / spread[0]))
    # compare with the first-order map while it applies: the predicted spread is still small and
    # no copy can sit across a kink of the ReLU (every |w . x_i| of the copies exceeds the spread,
    # ||x_i|| = 1); k_lin is the last step of that stretch
    applies = (pred <= LINEAR_SPREAD) & (tr_sym["kink"] > spread)  # (steps+1,)
    broken = np.flatnonzero(~applies)
    k_lin = int(broken[0] - 1) if broken.size else steps
    k_lin = max(k_lin, 0)
    # the copies' flow is the width-1 twin's, one step at a time: from each state (w_1(k), a_1(k))
    # of the copies, the twin's step eta/m gives the copies' next state and its loss their loss.
    # Per step, so rounding is compared with rounding instead of being amplified along the run
    w1, a1 = tr_sym["w1"], tr_sym["a1"]  # (steps+1, d), (steps+1,)
    L_one, _, w_next, a_next = _width1_step(X, y, w1[:-1], a1[:-1], m=m, eta=eta)
    update = max(np.max(np.abs(np.diff(w1, axis=0))), np.max(np.abs(np.diff(a1))))
    step_dev = max(np.max(np.abs(w_next - w1[1:])), np.max(np.abs(a_next - a1[1:])))
    return {
        "n": n,
        "d": d,
        "m": m,
        "eta": eta,
        "eta_rand": eta_rand,
        "plateau_last_half_drop": float(L_sym[steps // 2] / L_sym[-1]),
        "eps": eps,
        "copies_max_dev": float(np.max(tr_sym["copies_dev"])),
        "log10_copies_max_dev": float(np.log10(max(np.max(tr_sym["copies_dev"]), TINY))),
        "width1_max_loss_dev": float(np.max(np.abs(L_sym - one.loss)) / L_sym[0]),
        "log10_width1_step_dev": float(
            np.log10(max(step_dev / update, np.max(np.abs(L_one - L_sym[:-1])) / L_sym[0], TINY))
        ),
        "log10_width1_max_loss_dev": float(
            np.log10(
                max(np.max(np.abs(L_sym - one.loss)), np.max(np.abs(L_sym - batch))) / L_sym[0]
            )
        ),
        **more,
        "final_ratio_symmetric": float(L_sym[-1] / L_sym[0]),
        "final_ratio_random": float(L_rand[-1] / L_rand[0]),
        "final_ratio_perturbed": float(L_pert[-1] / L_pert[0]),
        "log10_sym_over_random": float(np.log10(L_sym[-1] / L_rand[-1])),
        "spread_growth": float(spread[-1] / spread[0]),
        "log10_spread_growth": float(np.log10(spread[-1] / spread[0])),
        "spread_growth_pred": float(pred[-1] / pred[0]),
        "k_linear": k_lin,
        "spread_growth_at_k_linear": float(spread[k_lin] / spread[0]),
        "spread_ratio_at_k_linear": float(spread[k_lin] / pred[k_lin]),
        "spread_peak_growth": float(spread[k_peak] / spread[0]),
        "max_rate_per_step": float(np.max(rate)),
        "spread_growth_bound": float(np.exp(np.sum(np.log1p(rate[:-1])))),
        "loss_symmetric": L_sym / L_sym[0],
        "loss_random": L_rand / L_rand[0],
        "loss_perturbed": L_pert / L_pert[0],
        "loss_width1": one.loss / L_sym[0],
        "spread": spread,
        "spread_pred": pred,
        "spread_bound": np.exp(np.concatenate([[0.0], np.cumsum(np.log1p(rate[:-1]))])),
    }


def plot(result: dict):
    """Loss of the four runs, and the spread of the perturbed copies against its prediction."""
    fig, axes = subplots(1, 2, width=4.6, height=3.4)
    ax = axes[0]
    k = np.arange(len(result["loss_symmetric"]))
    ax.semilogy(k, result["loss_random"], label="random init")
    ax.semilogy(
        k, result["loss_symmetric"], lw=3, alpha=0.5, label=f"{result['m']} identical neurons"
    )
    ax.semilogy(k, result["loss_width1"], "k:", label="width 1, scale sqrt(m), step eta/m")
    ax.semilogy(k, result["loss_perturbed"], "--", label=f"copies + eps={result['eps']:g} noise")
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title="both layers trained by GD")
    ax.legend()

    ax = axes[1]
    ax.semilogy(k, result["spread"] / result["spread"][0], label="measured")
    ax.semilogy(
        k,
        result["spread_pred"] / result["spread_pred"][0],
        "k:",
        label=r"first order: $\prod_k M_k$ with $g_k$ of the symmetric run",
    )
    ax.semilogy(
        k,
        result["spread_bound"],
        color="0.6",
        ls="--",
        label=r"bound $\prod_k (1 + \eta\, \|g_k\| / \sqrt{m})$",
    )
    ax.axvline(result["k_linear"], color="0.6", lw=0.7, ls=":")
    ax.set(
        xlabel="step k",
        ylabel=r"spread$(k)$ / spread$(0)$",
        title=r"symmetry breaking: $\max_r \|(w_r, a_r) - \mathrm{mean}\|$",
    )
    ax.legend(loc="upper left")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
