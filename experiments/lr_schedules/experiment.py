"""lr_schedules: what a step-size schedule buys on the two-layer ReLU net.

Full-batch GD on the first layer ``W`` of Du et al.'s net (ICLR 2019, Eq. (1)),
driven by ``shared.optim.minimize`` with every schedule in ``shared.optim`` and
with Adam. In the kernel regime the loss is a quadratic in ``W`` up to pattern
flips, with curvature ``H(W)`` (the Gauss-Newton matrix ``J^T J`` has the
non-zero spectrum of ``H``; the ReLU net is piecewise linear in ``W``, so this
is the whole Hessian almost everywhere). GD at a constant ``eta`` contracts mode
``i`` of the residual by ``1 - eta lambda_i`` per step and is stable iff
``eta < 2 / lambda_max(H)``.

Two regimes. At a stable peak ``eta_s = 1 / lambda_max(H(0))`` every decay
costs: the slow modes contract by ``1 - eta_k lambda_min`` with a smaller
``eta_k``, so decaying schedules end higher and with a flatter log-loss slope.
At a peak ``eta_u = 1.5 * 2 / lambda_max(H(0))`` above the stability edge, the
constant step makes the top modes grow (a loss spike, a catapult, or
divergence), while a slow linear warm-up lets the kernel adapt on the way up:
pattern changes lower ``lambda_max(H(W))`` to about ``2 / eta`` (the edge of
stability, Cohen et al. 2021; the catapult of Lewkowycz et al. 2020) before the
peak is reached, and the spike stays small.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net, optim
from shared.plotting import subplots

# K_s, K_u: steps at the stable and at the unstable peak; stable_inits: inits (same data) for
# the stable-peak schedules and Adam; warmup_inits: problems (fresh data and init each) for the
# slow warm-up into the unstable peak; the checked numbers are medians over those repetitions
CONFIG = {
    "quick": {
        "n": 40,
        "d": 10,
        "m": 200,
        "K_s": 250,
        "K_u": 600,
        "stable_inits": 3,
        "warmup_inits": 16,
    },
    "full": {
        "n": 100,
        "d": 20,
        "m": 1000,
        "K_s": 600,
        "K_u": 1500,
        "stable_inits": 1,
        "warmup_inits": 4,
    },
}
TOL = 1e-4  # steps-to-tolerance threshold on L(k) / L(0)
UNSTABLE_FACTOR = 1.5  # eta_u = UNSTABLE_FACTOR * 2 / lambda_max(H(0))
ADAM_LR = 0.01  # Adam's base step: its move is about ADAM_LR per coordinate


def _objective(X, y, a):
    """``f(w)`` and ``grad(w)`` of ``L(W) = 1/2 ||u - y||^2`` in the flattened ``w = vec(W)``.

    ``net.objective``: one forward/backward pass per distinct ``w``, and ``f = inf``
    at a non-finite ``w`` (a diverged run). Its trace keeps the length of every move
    ``||w_k - w_{k-1}||`` in ``moves``, so the effective step of any optimizer can be
    read off.
    """
    moves: list[float] = []
    last: list[np.ndarray] = []  # the previous point evaluated

    def trace(w, f, g):
        if last:
            moves.append(float(np.linalg.norm(w - last[0])))
        last[:] = [w]

    f, grad = net.objective(X, y, a, trace=trace)
    return f, grad, moves


def _stable_schedules(eta: float, K: int) -> dict:
    """Every schedule at peak ``eta``, tuned to run ``K`` steps."""
    return {
        "constant": optim.constant(eta),
        "step": optim.step_decay(eta, drop=0.5, every=K // 4),
        "exponential": optim.exponential(eta, gamma=0.01 ** (1.0 / K)),
        "1/k": optim.inverse_time(eta, decay=9.0 / K),
        "cosine": optim.cosine(eta, total=K),
        "warmup+constant": optim.warmup(optim.constant(eta), steps=K // 10),
        "warmup+cosine": optim.warmup(optim.cosine(eta, total=K), steps=K // 10),
        "one-cycle": optim.one_cycle(eta, total=K),
    }


def _unstable_schedules(eta: float, K: int) -> dict:
    """Schedules at a peak above the stability edge. The warm-up into the constant is slow
    (two thirds of the run); the one into cosine is short, so its peak stays close to ``eta``."""
    return {
        "constant": optim.constant(eta),
        "warmup+constant": optim.warmup(optim.constant(eta), steps=2 * K // 3),
        "cosine": optim.cosine(eta, total=K),
        "warmup+cosine": optim.warmup(optim.cosine(eta, total=K), steps=K // 10),
        "one-cycle": optim.one_cycle(eta, total=K),
        "1/k": optim.inverse_time(eta, decay=9.0 / K),
    }


def _steps_to(ratio: np.ndarray, tol: float) -> int:
    """First ``k`` with ``L(k)/L(0) <= tol``; ``len(ratio)`` if never (or diverged)."""
    hit = np.flatnonzero(ratio <= tol)
    return int(hit[0]) if hit.size else len(ratio)


def _end_rate(loss: np.ndarray, frac: float = 0.2) -> float:
    """Slope of ``log L(k)`` per step over the last ``frac`` of the run (above the float floor)."""
    k0 = int(len(loss) * (1.0 - frac))
    return fit.log_rate(loss[k0:], hi=1.0)


def _sharpness(X, w, shape) -> float:
    """``lambda_max(H(W))``, the top curvature of the loss in ``W``; nan if ``W`` blew up."""
    if not np.all(np.isfinite(w)):
        return float("nan")
    return float(np.linalg.eigvalsh(kernels.gram_h(X, w.reshape(shape)))[-1])


def _run_all(X, y, W0, a0, schedules: dict, K: int, progress, done: int, total: int, keep=()):
    """GD from ``W0`` with each schedule for ``K`` steps; ``{name: OptimizeResult}``, with the
    iterates of the schedules named in ``keep``."""
    out = {}
    for i, (name, sched) in enumerate(schedules.items()):
        f, g, _ = _objective(X, y, a0)
        out[name] = optim.minimize(
            f, g, W0.ravel(), optimizer=optim.GD(), lr=sched, steps=K, keep_path=name in keep
        )
        progress(done + i + 1, total, name)
    return out


def _predicted_end_rate(X, y, a, res, shape, frac: float = 0.2) -> float:
    """The end rate of a run as the kernel predicts it, mode by mode.

    At ``k0`` (the start of the last ``frac`` of the run) the residual ``r = u(W_k0) - y`` is
    split on the eigenvectors of ``H(W_k0)``; with ``H`` frozen, mode ``i`` then contracts by
    ``(1 - eta_k lambda_i)`` per step, so ``L(k) = 1/2 sum_i (v_i.r)^2 prod_{j=k0}^{k-1}
    (1 - eta_j lambda_i)^2``; its slope is fitted as :func:`_end_rate` fits the measured loss.
    """
    K = len(res.lr)
    k0 = int((K + 1) * (1.0 - frac))
    W = res.path[k0].reshape(shape)
    lam, V = np.linalg.eigh(kernels.gram_h(X, W))  # (n,), (n, n)
    c2 = (V.T @ (net.predict(X, W, a) - y)) ** 2  # (n,) squared mode amplitudes
    factors = (1.0 - np.outer(res.lr[k0:], lam)) ** 2  # (K - k0, n)
    L = 0.5 * np.concatenate([[c2.sum()], np.cumprod(factors, axis=0) @ c2])  # (K - k0 + 1,)
    return fit.log_rate(L / L[0], hi=1.0)


def _key(name: str) -> str:
    """Schedule name as a quantity suffix: ``"warmup+constant"`` -> ``"warmup_constant"``."""
    return name.replace("+", "_").replace("-", "_").replace("1/k", "inverse_time")


def _stable_quantities(X, y, W0, a0, stable: dict, eta_s: float, K: int) -> dict:
    """Steps to tolerance, final ratios and end rates at the stable peak, and their ratios."""
    out = {}
    ratios = {k: r.f / r.f[0] for k, r in stable.items()}
    rates = {k: _end_rate(r.f) for k, r in stable.items()}
    steps_to = {k: _steps_to(r, TOL) for k, r in ratios.items()}
    for name, r in ratios.items():  # a table of every schedule, for the README (none checked)
        out[f"stable_final_{_key(name)}"] = float(r[-1])
        out[f"stable_steps_to_tol_{_key(name)}"] = steps_to[name]
        out[f"stable_end_rate_{_key(name)}"] = rates[name]
    # the constant's slow mode: 2 ln(1 - eta lambda_min(H)) with H at the end of the run
    W_end = stable["constant"].x.reshape(W0.shape)
    lam0_end = float(np.linalg.eigvalsh(kernels.gram_h(X, W_end))[0])
    rate_pred = 2.0 * np.log(1.0 - eta_s * lam0_end)
    # the decaying schedules' end rates against the mean step over the last 20% of the run,
    # and against the kernel's mode-by-mode prediction
    lr_exponential = stable["exponential"].lr[int(K * 0.8) :].mean() / eta_s
    lr_inverse_time = stable["1/k"].lr[int(K * 0.8) :].mean() / eta_s
    pred = {k: _predicted_end_rate(X, y, a0, stable[k], W0.shape) for k in ("exponential", "1/k")}
    ratio_exponential = rates["exponential"] / rates["constant"]
    ratio_inverse_time = rates["1/k"] / rates["constant"]
    others = [v for k, v in steps_to.items() if k != "constant"]
    decayed = ("step", "exponential", "1/k", "cosine", "warmup+cosine", "one-cycle")
    best = min(ratios[k][-1] for k in decayed)
    # decades gained by each decayed schedule over the decades the constant gains
    decades = {k: np.log10(ratios[k][-1]) / np.log10(ratios["constant"][-1]) for k in decayed}
    return out | {
        "lam0_end": lam0_end,
        "stable_rate_pred_constant": rate_pred,
        "stable_rate_ratio_constant": rates["constant"] / rate_pred,
        "end_rate_pred_exponential": lr_exponential,
        "end_rate_ratio_exponential": ratio_exponential,
        "log10_end_rate_ratio_exponential": float(np.log10(ratio_exponential)),
        "end_rate_over_lr_exponential": ratio_exponential / lr_exponential,
        "end_rate_over_kernel_exponential": rates["exponential"] / pred["exponential"],
        "end_rate_pred_inverse_time": lr_inverse_time,
        "end_rate_ratio_inverse_time": ratio_inverse_time,
        "end_rate_over_lr_inverse_time": ratio_inverse_time / lr_inverse_time,
        "log10_end_rate_ratio_inverse_time": float(np.log10(ratio_inverse_time)),
        "end_rate_over_kernel_inverse_time": rates["1/k"] / pred["1/k"],
        "min_steps_other_over_constant": min(others) / steps_to["constant"],
        "log10_min_decayed_over_constant": float(np.log10(best / ratios["constant"][-1])),
        "decayed_decades_ratio_max": float(max(decades.values())),
        "warmup_constant_decades_ratio": float(
            np.log10(ratios["warmup+constant"][-1]) / np.log10(ratios["constant"][-1])
        ),
    }


def _unstable_quantities(X, W0, unstable: dict, eta_u: float) -> dict:
    """Spike, final ratio and end sharpness ``lambda_max(H(W_K)) eta_u / 2`` per schedule."""

    def spike(r) -> float:
        return float(np.max(r.f[1:] / r.f[0]))

    def final(r) -> float:
        return float(r.f[-1] / r.f[0])

    def sharpness(r) -> float:
        return _sharpness(X, r.x, W0.shape) * eta_u / 2.0

    c, wc = unstable["constant"], unstable["warmup+constant"]
    cos, wcos = unstable["cosine"], unstable["warmup+cosine"]
    oc, inv = unstable["one-cycle"], unstable["1/k"]
    return {
        "unstable_max_constant": spike(c),
        "unstable_final_constant": final(c),
        "unstable_diverged_constant": bool(c.diverged),
        "unstable_sharpness_constant": sharpness(c),
        "unstable_max_warmup_constant": spike(wc),
        "unstable_final_warmup_constant": final(wc),
        "unstable_diverged_warmup_constant": bool(wc.diverged),
        "unstable_sharpness_warmup_constant": sharpness(wc),
        "unstable_max_cosine": spike(cos),
        "unstable_final_cosine": final(cos),
        "unstable_diverged_cosine": bool(cos.diverged),
        "unstable_sharpness_cosine": sharpness(cos),
        "unstable_max_warmup_cosine": spike(wcos),
        "unstable_final_warmup_cosine": final(wcos),
        "unstable_diverged_warmup_cosine": bool(wcos.diverged),
        "unstable_sharpness_warmup_cosine": sharpness(wcos),
        "unstable_max_one_cycle": spike(oc),
        "unstable_final_one_cycle": final(oc),
        "unstable_diverged_one_cycle": bool(oc.diverged),
        "unstable_sharpness_one_cycle": sharpness(oc),
        "unstable_max_inverse_time": spike(inv),
        "unstable_final_inverse_time": final(inv),
        "unstable_diverged_inverse_time": bool(inv.diverged),
        "unstable_sharpness_inverse_time": sharpness(inv),
        "log10_spike_constant": float(np.log10(spike(c))),
        "log10_spike_warmup_constant": float(np.log10(spike(wc))),
    }


def _unstable_growth(X, y, W0, a0, eta: float, steps: int = 3) -> dict:
    """Growth of the residual's unstable part over the first ``steps`` constant steps at ``eta``,
    measured over linearised.

    The modes of ``H(0)`` with ``|1 - eta lambda_i| > 1`` (``lambda_i > 2 / eta``) grow; with
    ``H`` frozen their part of the residual after ``steps`` steps is ``P (I - eta H)^k r(0)``
    (``P`` the projection on them). Returns the growth ``||P r(k)|| / ||P r(0)||`` (log10) and
    its ratio to the linearised ``||P (I - eta H)^k r(0)|| / ||P r(0)||``.
    """
    lam, V = np.linalg.eigh(kernels.gram_h(X, W0))  # (n,), (n, n)
    Vu = V[:, lam > 2.0 / eta]  # (n, q) unstable modes
    r0 = net.predict(X, W0, a0) - y  # (n,)
    pred = Vu.T @ r0 * (1.0 - eta * lam[lam > 2.0 / eta]) ** steps  # (q,)
    W = W0
    for _ in range(steps):
        W = W - eta * net.gradients(X, y, W, a0)[1]
    grown = np.linalg.norm(Vu.T @ (net.predict(X, W, a0) - y))
    return {
        "log10_unstable_growth": float(np.log10(grown / np.linalg.norm(Vu.T @ r0))),
        "unstable_growth_over_linear": float(grown / np.linalg.norm(pred)),
    }


def _warmup_problems(n: int, d: int, m: int, K: int, R: int, rng) -> dict:
    """The slow warm-up into ``UNSTABLE_FACTOR`` x the edge on ``R`` problems, each with fresh
    data and init: per problem the spike, the final ratio, the end sharpness and the growth of
    the unstable modes over the first constant steps at the peak (:func:`_unstable_growth`);
    their medians, and the fraction of problems whose loss ends above its start (blown up)."""
    spikes, finals, sharp, growth = [], [], [], []
    for _ in range(R):
        X = data.unit_sphere(n, d, rng=rng)  # (n, d)
        y = data.gaussian_labels(n, rng=rng)  # (n,)
        W0, a0 = net.init_net(d, m, rng=rng)
        eta_u = UNSTABLE_FACTOR * 2.0 / np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1]
        f, g, _ = _objective(X, y, a0)
        sched = optim.warmup(optim.constant(eta_u), steps=2 * K // 3)
        r = optim.minimize(f, g, W0.ravel(), optimizer=optim.GD(), lr=sched, steps=K)
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = r.f / r.f[0]
        spikes.append(float(np.log10(np.max(ratio[1:]))))
        finals.append(float(np.log10(ratio[-1])))
        sharp.append(_sharpness(X, r.x, W0.shape) * eta_u / 2.0)
        growth.append(_unstable_growth(X, y, W0, a0, eta_u)["log10_unstable_growth"])
    finals = np.asarray(finals)
    return {
        "warmup_log10_spike_median": float(np.median(spikes)),
        "warmup_log10_final_median": float(np.median(finals)),
        "warmup_sharpness_median": float(np.nanmedian(np.asarray(sharp, dtype=float))),
        "warmup_blowup_fraction": float(np.mean(~(finals < 0.0))),
        "log10_unstable_growth_median": float(np.median(growth)),
        "warmup_problems_log10_final": finals,
    }


def _adam(X, y, W0, a0, K: int) -> dict:
    """Adam at ``ADAM_LR``: loss, steps to tolerance and effective step ``||dW|| / ||grad||``."""
    f, g, moves = _objective(X, y, a0)
    res = optim.minimize(f, g, W0.ravel(), optimizer=optim.Adam(), lr=ADAM_LR, steps=K)
    eff = np.asarray(moves) / res.grad_norm[:-1]  # (K,)
    ratio = res.f / res.f[0]
    k_tol = _steps_to(ratio, TOL)
    g0 = net.gradients(X, y, W0, a0)[1]  # (m, d)
    P = np.count_nonzero(g0)  # coordinates with a gradient
    # Alg. 1 at step 1: m_hat = g, v_hat = g^2, so each coordinate moves lr |g| / (|g| + eps)
    first = ADAM_LR * np.sqrt(np.sum((np.abs(g0) / (np.abs(g0) + optim.Adam().eps)) ** 2))
    return {
        "adam_final": float(ratio[-1]),
        "adam_steps_to_tol": k_tol,
        "adam_first_move_over_lr_sqrtP": moves[0] / (ADAM_LR * np.sqrt(P)),
        "log10_adam_first_move_err": float(np.log10(max(abs(moves[0] / first - 1.0), 1e-18))),
        "adam_eff_step_start": float(eff[0]),
        "adam_eff_step_at_tol": float(eff[min(k_tol, len(eff) - 1)]),
        "adam_eff_growth": float(eff[min(k_tol, len(eff) - 1)] / eff[0]),
        "log10_adam_eff_growth": float(np.log10(eff[min(k_tol, len(eff) - 1)] / eff[0])),
        "adam_loss": ratio,
        "adam_eff_step": eff,
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Every schedule at a stable and at an unstable peak; Adam at a fixed base step."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, K_s, K_u = cfg["n"], cfg["d"], cfg["m"], cfg["K_s"], cfg["K_u"]
    rng = np.random.default_rng(seed)

    # %% Set-up: data, one init, and the two peaks on either side of the edge 2 / lambda_max
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    lam = np.linalg.eigvalsh(kernels.gram_h(X, W0))  # (n,) ascending
    lam0, lam_max = float(lam[0]), float(lam[-1])
    edge = 2.0 / lam_max
    eta_s, eta_u = 0.5 * edge, UNSTABLE_FACTOR * edge
    R_s, R_w = cfg["stable_inits"], cfg["warmup_inits"]
    total = 8 * R_s + 6 + 1 + R_s

    # %% Train: every schedule at the stable peak and Adam, from R_s inits (the first is W0);
    # every schedule at the unstable peak from W0; the slow warm-up from R_w more inits
    stables, adams = [], []
    for j in range(R_s):
        Wj, aj = (W0, a0) if j == 0 else net.init_net(d, m, rng=rng)
        eta_j = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, Wj))[-1]
        runs = _run_all(
            X,
            y,
            Wj,
            aj,
            _stable_schedules(eta_j, K_s),
            K_s,
            progress,
            8 * j,
            total,
            keep=("exponential", "1/k"),
        )
        stables.append((runs, _stable_quantities(X, y, Wj, aj, runs, eta_j, K_s)))
        adams.append(_adam(X, y, Wj, aj, K_s))
        progress(8 * R_s + 7 + j, total, f"adam, init {j + 1}")
    stable, adam = stables[0][0], adams[0]
    unstable = _run_all(
        X, y, W0, a0, _unstable_schedules(eta_u, K_u), K_u, progress, 8 * R_s, total
    )
    warm = _warmup_problems(n, d, m, K_u, R_w, rng)
    progress(8 * R_s + 7, total, f"warm-up on {R_w} problems")

    def med(key, per):  # median over the stable-peak inits
        return float(np.median([q[key] for q in per]))

    over_inits = {
        k: med(k, [q for _, q in stables])
        for k in (
            "log10_end_rate_ratio_exponential",
            "log10_end_rate_ratio_inverse_time",
            "end_rate_over_kernel_exponential",
            "end_rate_over_kernel_inverse_time",
            "decayed_decades_ratio_max",
            "warmup_constant_decades_ratio",
        )
    } | {"log10_adam_eff_growth": med("log10_adam_eff_growth", adams)}

    # %% Measure: what decay costs at the stable peak, what warm-up buys at the unstable one
    return {
        "n": n,
        "d": d,
        "m": m,
        "lam0": lam0,
        "lam_max": lam_max,
        "eta_s": eta_s,
        "eta_u": eta_u,
        **stables[0][1],
        **_unstable_quantities(X, W0, unstable, eta_u),
        "stable_inits": R_s,
        **adam,
        **over_inits,  # medians over the stable-peak inits replace init 0's values
        **_unstable_growth(X, y, W0, a0, eta_u),
        **warm,
        # series for the figure
        "stable_loss": {k: r.f / r.f[0] for k, r in stable.items()},
        "stable_lr": {k: r.lr for k, r in stable.items()},
        "unstable_loss": {k: r.f / r.f[0] for k, r in unstable.items()},
        "unstable_lr": {k: r.lr for k, r in unstable.items()},
    }


def plot(result: dict):
    """Loss and step of every schedule at the stable (top) and the unstable (bottom) peak."""
    fig, axes = subplots(2, 2, width=4.6, height=3.3)
    edge = 2.0 / result["lam_max"]
    names = list(result["stable_loss"])
    colors = {k: f"C{i}" for i, k in enumerate(names)}

    ax = axes[0, 0]
    for k, r in result["stable_loss"].items():
        ax.semilogy(r, color=colors[k], label=k)
    ax.semilogy(result["adam_loss"], "k--", label=f"Adam (lr {ADAM_LR:g})")
    ax.set(
        xlabel="step k", ylabel="L(k) / L(0)", title=r"stable peak $\eta_s = 1/\lambda_{max}(H(0))$"
    )
    ax.legend(ncol=2, fontsize=6.5)

    ax = axes[0, 1]
    for k, lr in result["stable_lr"].items():
        ax.plot(np.asarray(lr) / edge, color=colors[k])
    ax.plot(
        np.asarray(result["adam_eff_step"]) / edge, "k--", label=r"Adam $\|\Delta W\|/\|\nabla L\|$"
    )
    ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
    ax.set(
        xlabel="step k",
        ylabel=r"step / $(2/\lambda_{max}(H(0)))$",
        title="stable-peak schedules; Adam's effective step",
    )
    ax.legend()

    ax = axes[1, 0]
    for k, r in result["unstable_loss"].items():
        ax.semilogy(np.minimum(r, 1e8), color=colors.get(k, "C9"), label=k)
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)  (clipped at 1e8)",
        title=rf"peak {UNSTABLE_FACTOR:g} x edge: "
        rf"$\eta_u = {UNSTABLE_FACTOR:g} \cdot 2/\lambda_{{max}}$",
    )
    ax.legend(fontsize=6.5)

    ax = axes[1, 1]
    for k, lr in result["unstable_lr"].items():
        ax.plot(np.asarray(lr) / edge, color=colors.get(k, "C9"), label=k)
    ax.axhline(1.0, color="0.4", lw=0.8, ls=":", label="edge at init")
    # 2 / lambda_max(H(W_K)) in units of the initial edge: UNSTABLE_FACTOR / sharpness ratio
    ax.axhline(
        UNSTABLE_FACTOR / result["unstable_sharpness_warmup_constant"],
        color=colors["warmup+constant"],
        lw=0.8,
        ls="--",
        label=r"$2/\lambda_{max}(H(W_K))$, warm-up run",
    )
    ax.set(
        xlabel="step k", ylabel=r"step / $(2/\lambda_{max}(H(0)))$", title="unstable-peak schedules"
    )
    ax.legend(fontsize=6.5)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
