"""Tests for shared.optim: known rates on quadratics, schedules, clipping, divergence."""

import math

import numpy as np
import pytest

from shared import optim

MU, L, DIM = 1.0, 100.0, 12
KAPPA = L / MU


@pytest.fixture
def quad(rng):
    """``f = 1/2 x^T A x`` with spectrum from ``MU`` to ``L`` (``x* = 0``) and a generic ``x0``."""
    Q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    lam = np.linspace(MU, L, DIM)
    A = Q @ np.diag(lam) @ Q.T
    return A, rng.standard_normal(DIM)


def _run(A, x0, optimizer, lr, steps):
    res = optim.minimize(
        lambda x: 0.5 * x @ A @ x,
        lambda x: A @ x,
        x0,
        optimizer=optimizer,
        lr=lr,
        steps=steps,
        keep_path=True,
    )
    assert not res.diverged
    return np.linalg.norm(res.path, axis=1), res  # ||x_k - x*||


def _late_rate(err):
    """Per-step contraction of ``||x_k - x*||`` over the second half of the run."""
    K = err.size - 1
    return (err[K] / err[K // 2]) ** (1.0 / (K - K // 2))


def _steps_to(rho, tol=1e-9):
    return int(math.log(tol) / math.log(rho))


def test_gd_rates(quad):
    A, x0 = quad
    rho = 1 - 1 / KAPPA  # step 1/L: the mu-direction contracts by 1 - mu/L
    err, _ = _run(A, x0, optim.GD(), 1 / L, _steps_to(rho))
    np.testing.assert_allclose(_late_rate(err), rho, rtol=1e-4)
    rho = (KAPPA - 1) / (KAPPA + 1)  # step 2/(L+mu): both extreme directions contract by this
    err, _ = _run(A, x0, optim.GD(), 2 / (L + MU), _steps_to(rho))
    np.testing.assert_allclose(_late_rate(err), rho, rtol=1e-4)


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov"])
def test_momentum_rates(quad, method):
    A, x0 = quad
    sk = math.sqrt(KAPPA)
    if method == "heavy_ball":  # Polyak's tuning: rate (sqrt k - 1)/(sqrt k + 1)
        opt, lr, rho = (
            optim.HeavyBall(beta=((sk - 1) / (sk + 1)) ** 2),
            4 / (math.sqrt(L) + math.sqrt(MU)) ** 2,
            (sk - 1) / (sk + 1),
        )
    else:  # step 1/L, beta (sqrt k - 1)/(sqrt k + 1): rate 1 - 1/sqrt k
        opt, lr, rho = optim.Nesterov(beta=(sk - 1) / (sk + 1)), 1 / L, 1 - 1 / sk
    K = _steps_to(rho)
    err, _ = _run(A, x0, opt, lr, K)
    # the extreme eigen-directions have a double eigenvalue rho of the iteration
    # matrix, so err_k ~ (c0 + c1 k) rho^k: over [K/2, K] the factor (c0 + c1 k)
    # adds at most 2^(2/K) to the per-step rate
    rate = _late_rate(err)
    assert rho * (1 - 1e-3) <= rate <= rho * 2 ** (2 / K) * (1 + 1e-3), (rate, rho)
    # and momentum beats plain GD at 1/L by the predicted margin
    assert rate < 1 - 1 / KAPPA


def test_nesterov_takes_the_gradient_at_the_look_ahead_point():
    """Two steps by hand on ``f = 1/2 x^T diag(1, 2) x`` (dyadic numbers, so exact in floats).

    Nesterov: ``y_k = x_k + beta (x_k - x_{k-1})``, ``x_{k+1} = y_k - lr A y_k``. Taking the
    gradient at ``x_k`` instead is Polyak's heavy ball, which lands elsewhere at step 2.
    """
    A = np.diag([1.0, 2.0])
    x0, lr, beta = np.array([1.0, 1.0]), 0.25, 0.5
    # step 1 (no velocity yet): x1 = x0 - lr A x0 = (0.75, 0.5)
    # step 2: y = x1 + beta (x1 - x0) = (0.625, 0.25); x2 = y - lr A y = (0.46875, 0.125)
    # heavy ball instead: x2 = y - lr A x1 = (0.4375, 0.0)
    want = {
        "nesterov": [[1.0, 1.0], [0.75, 0.5], [0.46875, 0.125]],
        "heavy_ball": [[1.0, 1.0], [0.75, 0.5], [0.4375, 0.0]],
    }
    for name, opt in (("nesterov", optim.Nesterov(beta)), ("heavy_ball", optim.HeavyBall(beta))):
        res = optim.minimize(
            lambda x: 0.5 * x @ A @ x,
            lambda x: A @ x,
            x0,
            optimizer=opt,
            lr=lr,
            steps=2,
            keep_path=True,
        )
        np.testing.assert_array_equal(res.path, want[name])


def test_gd_sublinear_rate_when_not_strongly_convex(rng):
    """Convex, not strongly convex: f(x_k) - f* <= L ||x0 - x*||^2 / (2k) at step 1/L."""
    Q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    lam = np.concatenate([[0.0, 0.0], np.geomspace(1e-4, L, DIM - 2)])
    A = Q @ np.diag(lam) @ Q.T
    x0 = rng.standard_normal(DIM)
    P0 = Q[:, :2] @ Q[:, :2].T  # projection on the null space: x* nearest x0
    d0 = np.linalg.norm(x0 - P0 @ x0)
    res = optim.minimize(
        lambda x: 0.5 * x @ A @ x, lambda x: A @ x, x0, optimizer=optim.GD(), lr=1 / L, steps=500
    )
    k = np.arange(1, 501)
    assert np.all(res.f[1:] <= L * d0**2 / (2 * k))
    assert res.f[-1] > 1e-3 * L * d0**2 / (2 * 500)  # slow eigenvalues: far from linear convergence


def test_armijo_sufficient_decrease_and_step_bound(quad):
    A, x0 = quad
    c, shrink, lr0 = 1e-4, 0.5, 1.0  # lr0 = 100 / L: far too long, so it must backtrack
    opt = optim.Armijo(c=c, shrink=shrink)
    x, state, fs = x0, opt.init(x0), []
    for _ in range(300):
        g, fx = A @ x, 0.5 * x @ A @ x
        x_new, state = opt.step(x, state, lr0, lambda z: 0.5 * z @ A @ z, lambda z: A @ z)
        t = state["t"]
        # accepted t: Armijo's condition, and t > shrink * 2 (1 - c) / L because every
        # t <= 2 (1 - c) / L already satisfies it for an L-smooth f
        assert 0.5 * x_new @ A @ x_new <= fx - c * t * (g @ g) + 1e-15 * fx
        assert t > shrink * 2 * (1 - c) / L
        # hence a linear rate: ||g||^2 >= 2 mu f (PL), so f(k+1) <= (1 - 2 c t mu) f(k)
        assert 0.5 * x_new @ A @ x_new <= (1 - 2 * c * t * MU) * fx * (1 + 1e-12)
        fs.append(fx)
        x = x_new
    # the guaranteed rate with c = 1e-4 is loose; the accepted steps ~ 1/L make it GD-fast
    # (measured f(300)/f(0) ~ 6e-9, GD at 1/L would give (1 - 1/kappa)^600 ~ 2e-3)
    assert fs[-1] < 1e-6 * fs[0]


@pytest.mark.parametrize(
    ("lr", "c", "t_want", "evals"),
    [
        (2.5, 0.4, 0.625, 4),  # t = 2.5 increases f; t = 1.25 decreases it, not enough
        (1.5, 0.4, 0.75, 3),  # t = 1.5 decreases f, by less than c t ||g||^2
        (1.5, 0.1, 1.5, 2),  # with a small c the same step is accepted as it is
    ],
)
def test_armijo_accepts_exactly_the_first_sufficient_decrease(lr, c, t_want, evals):
    """``f = x^2 / 2`` from ``x = 1`` (``g = 1``): ``f(1 - t) <= f(1) - c t ||g||^2`` holds iff
    ``t <= 2 (1 - c)``, 1.2 for ``c = 0.4``. The test with its sign flipped
    (``f(1) + c t ||g||^2``) would accept 2.5, an ascent step, and 1.5; without ``c`` it would
    accept 1.5. Halving is exact, so the accepted step is compared exactly."""
    opt = optim.Armijo(c=c, shrink=0.5)
    x_new, state = opt.step(np.array([1.0]), opt.init(None), lr, lambda z: 0.5 * z @ z, lambda z: z)
    assert state["t"] == t_want and state["evals"] == evals
    np.testing.assert_array_equal(x_new, [1.0 - t_want])


def test_armijo_raises_when_grad_is_inconsistent(quad):
    A, x0 = quad
    opt = optim.Armijo(max_halvings=5)
    with pytest.raises(ValueError, match="lr: Armijo backtracking found no decrease"):
        opt.step(x0, opt.init(x0), 1.0, lambda z: 0.5 * z @ A @ z, lambda z: -A @ z)


def test_adam_first_step_is_lr_per_coordinate_and_converges(quad):
    A, x0 = quad
    lr = 1e-2
    _, res = _run(A, x0, optim.Adam(), lr, 1)
    # bias correction: m_hat = g, v_hat = g^2, so the first move is lr * sign(g) per coordinate
    np.testing.assert_allclose(np.abs(res.path[1] - x0), lr, rtol=1e-5)
    _err, res = _run(A, x0, optim.Adam(), optim.inverse_time(0.1, decay=0.05), 3000)
    assert res.f[-1] < 1e-6 * res.f[0]


def test_minimize_flags_divergence_without_nans(quad):
    A, x0 = quad
    with np.errstate(over="ignore", invalid="ignore"):
        res = optim.minimize(
            lambda x: 0.5 * x @ A @ x,
            lambda x: A @ x,
            x0,
            optimizer=optim.GD(),
            lr=2.5 / L,
            steps=5000,
        )
    assert res.diverged
    assert res.f.size < 5001 and res.lr.size == res.f.size - 1
    assert np.all(np.isfinite(res.f[:-1]))  # the last entry is the first non-finite one
    assert not np.isfinite(res.f[-1]) or not np.isfinite(res.grad_norm[-1])


def test_minimize_evaluates_the_gradient_once_per_step(quad):
    A, x0 = quad
    calls = []

    def grad(x):
        calls.append(1)
        return A @ x

    optim.minimize(lambda x: 0.5 * x @ A @ x, grad, x0, optimizer=optim.GD(), lr=1 / L, steps=10)
    assert len(calls) == 11


def test_minimize_with_clipping(quad):
    A, x0 = quad
    res = optim.minimize(
        lambda x: 0.5 * x @ A @ x,
        lambda x: A @ x,
        100 * x0,
        optimizer=optim.GD(),
        lr=1 / L,
        steps=3,
        clip=1.0,
        keep_path=True,
    )
    np.testing.assert_allclose(np.linalg.norm(np.diff(res.path, axis=0), axis=1), 1 / L, rtol=1e-12)


# --------------------------------------------------------------------------- schedules and clipping
def test_schedule_values():
    cases = [
        (optim.constant(0.3), [0, 7], [0.3, 0.3]),
        (optim.step_decay(1.0, drop=0.5, every=10), [0, 9, 10, 25], [1.0, 1.0, 0.5, 0.25]),
        (optim.exponential(2.0, gamma=0.9), [0, 1, 3], [2.0, 1.8, 2.0 * 0.9**3]),
        (optim.inverse_time(1.0, decay=0.5), [0, 2, 8], [1.0, 0.5, 0.2]),
        (optim.cosine(1.0, total=10, lr_min=0.1), [0, 5, 10, 20], [1.0, 0.55, 0.1, 0.1]),
        (optim.warmup(optim.constant(1.0), steps=4), [0, 1, 3, 10], [0.25, 0.5, 1.0, 1.0]),
        (
            optim.one_cycle(1.0, total=100, pct_start=0.3, div=25.0, final_div=1e4),
            [0, 15, 30, 65, 100],
            [0.04, 0.52, 1.0, 0.50005, 1e-4],
        ),
    ]
    for schedule, ks, want in cases:
        np.testing.assert_allclose([schedule(k) for k in ks], want, rtol=1e-12)


def test_schedules_stay_at_their_end_value_past_total():
    """``one_cycle`` and ``cosine`` clamp ``k`` at ``total``; the cosine, run on, would climb."""
    one = optim.one_cycle(1.0, total=100, pct_start=0.3, div=25.0, final_div=1e4)
    cos = optim.cosine(2.0, total=10, lr_min=0.5)
    for k in (100, 101, 130, 170, 1000):
        assert one(k) == 1e-4  # anneal(lr_max, end, 1) = end + (lr_max - end) * 0 exactly
    for k in (10, 11, 15, 20, 1000):
        assert cos(k) == 0.5


def test_clip_by_norm(rng):
    g = rng.standard_normal(7) * 10
    c = optim.clip_by_norm(g, 1.5)
    np.testing.assert_allclose(np.linalg.norm(c), 1.5, rtol=1e-14)
    np.testing.assert_allclose(c / np.linalg.norm(c), g / np.linalg.norm(g), rtol=1e-14)
    short = optim.clip_by_norm(g, 1e3)
    np.testing.assert_array_equal(short, g)
    assert short is not g


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: optim.HeavyBall(beta=1.5), "beta"),
        (lambda: optim.HeavyBall(beta=1.0), r"beta: expected a number in \[0.0, 1.0\)"),
        (lambda: optim.Nesterov(beta=float("nan")), "beta"),
        (lambda: optim.step_decay(1.0, drop=0.0, every=3), r"drop: expected a number in \(0.0"),
        (lambda: optim.exponential(1.0, gamma=0.0), r"gamma: expected a number in \(0.0"),
        (lambda: optim.cosine(1.0, total=5, lr_min=2.0), "lr_min: expected at most lr=1.0"),
        (lambda: optim.warmup(1.0, steps=3), "schedule: expected a callable"),
        (lambda: optim.one_cycle(1.0, total=10, div=0.5), "div: expected a number in"),
        (lambda: optim.one_cycle(1e-320, total=10), "lr_max: lr_max / div"),
        (
            lambda: optim.exponential(1.0, gamma=0.1)(400),
            r"lr: the schedule gave 0.0 at step k=400",
        ),
        (lambda: optim.cosine(1.0, total=10)(10), r"lr: the schedule gave 0.0 at step k=10"),
        (lambda: optim.warmup(optim.constant(1.0), steps=4)(-2), "k: expected >= 0"),
        (lambda: optim.step_decay(1.0, drop=0.5, every=2)(2.5), "k: expected an integer"),
        (lambda: optim.exponential(1.0, gamma=0.5)(10**400), "k: expected an index a float"),
        (lambda: optim.clip_by_norm(np.array([np.nan, 1.0]), 1.0), "g: expected finite values"),
        (lambda: optim.clip_by_norm(np.ones(2, dtype=complex), 1.0), "g: expected a real numeric"),
        (
            lambda: optim.minimize(
                lambda x: 0.0, lambda x: x, np.ones(2), optimizer=optim.GD, lr=0.1, steps=1
            ),
            "optimizer: expected an optimizer instance",
        ),
        (
            lambda: optim.minimize(
                lambda x: 0.0, lambda x: x, np.ones(2) + 1j, optimizer=optim.GD(), lr=0.1, steps=1
            ),
            "x0: expected a real numeric array",
        ),
        (
            lambda: optim.minimize(
                lambda x: 0.0, lambda x: x[:1], np.ones(2), optimizer=optim.GD(), lr=0.1, steps=1
            ),
            r"grad: expected a real array of shape \(2,\)",
        ),
        (
            lambda: optim.minimize(
                lambda x: x, lambda x: x, np.ones(2), optimizer=optim.GD(), lr=0.1, steps=1
            ),
            "f: expected a real scalar",
        ),
        (
            lambda: optim.minimize(
                lambda x: np.inf, lambda x: x, np.ones(2), optimizer=optim.GD(), lr=0.1, steps=1
            ),
            "f: expected a finite value at x0",
        ),
        (lambda: optim.Nesterov(beta=-0.1), "beta"),
        (lambda: optim.Adam(eps=0.0), "eps: expected > 0"),
        (lambda: optim.Armijo(c=0.9), "c: expected a number in"),
        (lambda: optim.Armijo(max_halvings=0), "max_halvings: expected > 0"),
        (lambda: optim.constant(0.0), "lr: expected > 0"),
        (lambda: optim.cosine(1.0, total=0), "total: expected > 0"),
        (lambda: optim.clip_by_norm(np.ones(3), -1.0), "max_norm"),
        (
            lambda: optim.minimize(
                lambda x: 0.0,
                lambda x: x,
                np.array([np.nan]),
                optimizer=optim.GD(),
                lr=0.1,
                steps=1,
            ),
            "x0: expected finite",
        ),
        (
            lambda: optim.minimize(
                lambda x: 0.0, lambda x: x, np.ones(2), optimizer=optim.GD(), lr=-0.1, steps=1
            ),
            "lr: expected > 0",
        ),
        (
            lambda: optim.minimize(
                lambda x: 0.0, lambda x: x, np.ones(2), optimizer=optim.GD(), lr=0.1, steps=-1
            ),
            "steps",
        ),
        (
            lambda: optim.minimize(
                lambda x: 0.0,
                lambda x: x,
                np.ones(2),
                optimizer=optim.GD(),
                lr=0.1,
                steps=1,
                clip=0.0,
            ),
            "clip",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("bad", [-0.1, 0.0, float("nan"), float("inf"), None, np.ones(2)])
def test_minimize_refuses_a_schedule_step_that_is_not_finite_and_positive(bad):
    """A negative step climbs, a zero one stalls, a non-finite one diverges: all are errors that
    name the step index and the value, raised before the step is taken."""
    calls = []

    def schedule(k):
        calls.append(k)
        return 0.1 if k < 3 else bad

    with pytest.raises(ValueError, match=r"lr: the schedule gave .* at step k=3"):
        optim.minimize(
            lambda x: 0.5 * x @ x,
            lambda x: x,
            np.ones(2),
            optimizer=optim.GD(),
            lr=schedule,
            steps=9,
        )
    assert calls == [0, 1, 2, 3]


def test_clip_by_norm_is_exact_where_the_squared_norm_overflows():
    g = np.array([3e200, 4e200])  # ||g|| = 5e200, ||g||^2 overflows
    np.testing.assert_allclose(optim.clip_by_norm(g, 1.0), [0.6, 0.8], rtol=1e-15)
    tiny = np.array([3e-200, 4e-200])  # ||g||^2 underflows to 0
    np.testing.assert_allclose(optim.clip_by_norm(tiny, 1e-201), [6e-202, 8e-202], rtol=1e-15)


# --------------------------------------------------------------------------- cached objective
def test_cached_evaluates_once_per_distinct_point_and_traces_each(quad):
    A, x0 = quad
    calls, seen = [], []

    def fun_and_grad(x):
        calls.append(x.copy())
        return 0.5 * float(x @ A @ x), A @ x

    f, grad = optim.cached(fun_and_grad, trace=lambda x, fx, g: seen.append((x, fx, g)))
    x1 = x0 + 1.0
    values = [f(x0), grad(x0), f(x0.copy()), grad(x1), f(x1), f(x0)]
    # x0, x1, then x0 again: the cache holds the last point only
    assert len(calls) == 3 and len(seen) == 3
    np.testing.assert_array_equal(seen[0][0], x0)
    np.testing.assert_array_equal(seen[1][0], x1)
    assert values[0] == values[2] == values[5] == 0.5 * float(x0 @ A @ x0)
    np.testing.assert_array_equal(values[1], A @ x0)
    # the trace may keep what it gets: copies, read-only, unchanged by later evaluations
    assert all(not x.flags.writeable and not g.flags.writeable for x, _, g in seen)
    np.testing.assert_array_equal(seen[0][2], A @ x0)
    # overwriting the caller's array in place is a new point, not a stale hit
    x = x0.copy()
    f(x)  # x0 again: cached
    x *= 2.0
    assert f(x) == 0.5 * float(x @ A @ x) and len(calls) == 4


def test_cached_flags_non_finite_points_without_calling_the_model():
    calls, seen = [], []

    def fun_and_grad(x):
        calls.append(1)
        return float(x @ x), 2.0 * x

    f, grad = optim.cached(fun_and_grad, trace=lambda x, fx, g: seen.append(fx))
    bad = np.array([1.0, np.nan, 2.0])
    assert f(bad) == np.inf
    assert np.all(np.isnan(grad(bad))) and grad(bad).shape == (3,)
    assert calls == [] and seen == [np.inf]  # traced once, never evaluated
    assert f(np.array([1.0, np.inf, 0.0])) == np.inf and calls == [] and len(seen) == 2


def test_cached_gradient_is_read_only_but_the_model_buffer_is_not():
    out = np.zeros(2)

    def fun_and_grad(x):
        np.multiply(x, 2.0, out=out)  # a model that reuses its buffer
        return 0.0, out

    _, grad = optim.cached(fun_and_grad)
    g = grad(np.ones(2))
    with pytest.raises(ValueError, match="read-only"):
        g[0] = 5.0
    grad(np.full(2, 3.0))  # the model can still write its own buffer
    assert out.flags.writeable and out[0] == 6.0


def test_cached_with_minimize_matches_plain_functions(quad):
    A, x0 = quad
    plain = optim.minimize(
        lambda x: 0.5 * x @ A @ x,
        lambda x: A @ x,
        x0,
        optimizer=optim.Nesterov(0.5),
        lr=1 / L,
        steps=30,
    )
    evals = []
    f, grad = optim.cached(lambda x: (0.5 * x @ A @ x, A @ x), trace=lambda *e: evals.append(1))
    res = optim.minimize(f, grad, x0, optimizer=optim.Nesterov(0.5), lr=1 / L, steps=30)
    np.testing.assert_array_equal(res.f, plain.f)
    np.testing.assert_array_equal(res.x, plain.x)
    # one evaluation per iterate and one per look-ahead point, y_0 = x_0 excepted
    assert len(evals) == 31 + 30 - 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fun_and_grad": 3.0}, "fun_and_grad: expected a callable"),
        ({"fun_and_grad": lambda x: (0.0, x), "trace": "log"}, "trace: expected a callable"),
    ],
)
def test_cached_bad_input(kwargs, match):
    with pytest.raises(TypeError, match=match):
        optim.cached(**kwargs)
