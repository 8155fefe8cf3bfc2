"""Tests for shared.backend: the array API path against the numpy reference (kernels, net).

``array_api_strict`` is the strict reference implementation of the standard: it
rejects anything outside it, so passing here proves the code is backend-neutral.
It is a dev dependency, imported at the top so that a missing one fails.
"""

import array_api_strict as xps
import numpy as np
import pytest

from shared import backend, data, kernels, net

# float64 through different but equivalent operation orders: a few ulps, far below 1e-12
RTOL = 1e-12
# float32 against the float32 numpy path: rounding of ~1e-7 amplified by a few dozen ops
RTOL32 = 1e-4

NAMESPACES = {"numpy": np, "array_api_strict": xps}


@pytest.fixture(params=list(NAMESPACES))
def xp(request):
    return NAMESPACES[request.param]


def _problem(rng, n=12, d=5, m=40):
    """Inputs with norms in [0.5, 2], labels, and a paper init ``(W0, a0)``."""
    X = data.unit_sphere(n, d, rng=rng) * rng.uniform(0.5, 2.0, size=(n, 1))  # (n, d)
    y = rng.standard_normal(n)  # (n,)
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    return X, y, W0, a0


def _np(x):
    return np.from_dlpack(x)


def _close(actual, desired, rtol):
    """Compare with an absolute floor at ``rtol`` of the largest entry (entries near zero)."""
    desired = np.asarray(desired)
    np.testing.assert_allclose(
        _np(actual), desired, rtol=rtol, atol=rtol * float(np.max(np.abs(desired)))
    )


# --------------------------------------------------------------------------- namespace
def test_namespace_of_each_library(rng):
    X = rng.standard_normal((3, 2))
    assert backend.namespace(X) is np
    assert backend.namespace(xps.asarray(X), xps.asarray(X[:, 0])) is xps


def test_namespace_rejects_mixed_libraries_and_non_arrays(rng):
    X = rng.standard_normal((3, 2))
    with pytest.raises(ValueError, match=r"W: expected an array of the namespace of X"):
        backend.namespace(xps.asarray(X), X, names=["X", "W"])
    with pytest.raises(ValueError, match=r"X: expected an array with __array_namespace__"):
        backend.namespace(X.tolist(), names=["X"])


# --------------------------------------------------------------------------- kernels
def test_h_inf_matches_numpy_reference(rng, xp):
    X = _problem(rng)[0]
    H = backend.h_inf(xp.asarray(X))
    assert H.__array_namespace__() is xp
    _close(H, kernels.h_inf(X), RTOL)
    Hn = _np(H)
    np.testing.assert_array_equal(Hn, Hn.T)
    np.testing.assert_allclose(np.diag(Hn), 0.5 * np.sum(X * X, axis=1), rtol=RTOL)


def test_gram_h_matches_numpy_reference_for_any_chunk(rng, xp):
    X, _, W0, _ = _problem(rng)
    H_ref = kernels.gram_h(X, W0)
    for chunk in (7, 40, 4096):  # uneven last chunk, one chunk, chunk > m
        H = backend.gram_h(xp.asarray(X), xp.asarray(W0), chunk=chunk)
        assert H.__array_namespace__() is xp
        _close(H, H_ref, RTOL)


# --------------------------------------------------------------------------- GD
def test_train_gd_matches_numpy_reference(rng, xp):
    X, y, W0, a0 = _problem(rng)
    eta, steps = 0.5, 30
    ref = net.train(X, y, W0, a0, eta=eta, steps=steps)
    W, losses = backend.train_gd(
        xp.asarray(X), xp.asarray(y), xp.asarray(W0), xp.asarray(a0), eta=eta, steps=steps
    )
    assert W.__array_namespace__() is xp
    assert len(losses) == steps + 1 and all(isinstance(L, float) for L in losses)
    assert losses[-1] < 0.5 * losses[0]  # GD made progress, so the comparison is not trivial
    np.testing.assert_allclose(losses, ref.loss, rtol=RTOL)
    _close(W, ref.W, RTOL)


def test_train_gd_does_not_modify_inputs(rng):
    X, y, W0, a0 = (xps.asarray(v) for v in _problem(rng))
    W0_before = _np(W0).copy()
    W, _ = backend.train_gd(X, y, W0, a0, eta=0.5, steps=3)
    np.testing.assert_array_equal(_np(W0), W0_before)
    assert not np.array_equal(_np(W), W0_before)


def test_float32_in_float32_out(rng, xp):
    X, y, W0, a0 = (v.astype(np.float32) for v in _problem(rng))
    Xs, ys, Ws, as_ = (xp.asarray(v) for v in (X, y, W0, a0))
    H = backend.h_inf(Xs)
    G = backend.gram_h(Xs, Ws, chunk=16)
    W, losses = backend.train_gd(Xs, ys, Ws, as_, eta=0.5, steps=10)
    for out in (H, G, W):
        assert out.dtype == xp.float32 and out.__array_namespace__() is xp
    _close(H, kernels.h_inf(X), RTOL32)
    _close(G, kernels.gram_h(X, W0), RTOL32)
    ref = net.train(X, y, W0, a0, eta=0.5, steps=10)
    np.testing.assert_allclose(losses, ref.loss, rtol=RTOL32)
    _close(W, ref.W, RTOL32)


# --------------------------------------------------------------------------- validation
def test_mixed_namespaces_raise(rng):
    X, y, W0, a0 = _problem(rng)
    with pytest.raises(ValueError, match=r"W: expected an array of the namespace of X"):
        backend.gram_h(xps.asarray(X), W0)
    with pytest.raises(ValueError, match=r"a0: .*array_api_strict.*numpy"):
        backend.train_gd(xps.asarray(X), xps.asarray(y), xps.asarray(W0), a0, eta=0.1, steps=1)


def test_wrong_shapes_raise(rng, xp):
    X, y, W0, a0 = (xp.asarray(v) for v in _problem(rng))
    with pytest.raises(ValueError, match=r"X: expected a 2-D array, got shape \(12,\)"):
        backend.h_inf(y)
    with pytest.raises(ValueError, match=r"W: expected shape \(\*, 5\), got \(40, 4\)"):
        backend.gram_h(X, W0[:, :4])
    with pytest.raises(ValueError, match=r"y: expected shape \(12,\), got \(11,\)"):
        backend.train_gd(X, y[:11], W0, a0, eta=0.1, steps=1)
    with pytest.raises(ValueError, match=r"a0: expected shape \(40,\), got \(39,\)"):
        backend.train_gd(X, y, W0, a0[:39], eta=0.1, steps=1)


def test_empty_arrays_raise_naming_the_argument(rng, xp):
    X, y, W0, a0 = (xp.asarray(v) for v in _problem(rng))
    with pytest.raises(ValueError, match=r"W: expected a non-empty array, got shape \(0, 5\)"):
        backend.gram_h(X, W0[:0, :])
    with pytest.raises(ValueError, match=r"X: expected a non-empty array, got shape \(0, 5\)"):
        backend.h_inf(X[:0, :])
    with pytest.raises(ValueError, match=r"W0: expected a non-empty array"):
        backend.train_gd(X, y, W0[:0, :], a0[:0], eta=0.1, steps=1)


def test_invalid_values_raise(rng, xp):
    X, y, W0, a0 = _problem(rng)
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values, got 1 non-finite"):
        backend.h_inf(xp.asarray(X_bad))
    X_zero = X.copy()
    X_zero[3] = 0.0
    with pytest.raises(ValueError, match=r"X: expected non-zero rows, got 1"):
        backend.h_inf(xp.asarray(X_zero))
    # the same messages as the numpy code: both use shared/_validate.py
    with pytest.raises(ValueError, match=r"chunk: expected > 0, got 0"):
        backend.gram_h(xp.asarray(X), xp.asarray(W0), chunk=0)
    with pytest.raises(ValueError, match=r"eta: expected > 0, got -0.1"):
        Xs, ys, Ws, as_ = (xp.asarray(v) for v in (X, y, W0, a0))
        backend.train_gd(Xs, ys, Ws, as_, eta=-0.1, steps=1)


def test_diverging_eta_raises_naming_the_step(rng, xp):
    X, y, W0, a0 = _problem(rng)
    lam_max = float(np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1])
    eta = 50.0 / lam_max  # 25 times the stability limit 2 / lambda_max(H(0))
    args = (xp.asarray(v) for v in (X, y, W0, a0))
    # the same step as the numpy loop, whose bound it shares
    k = net.train(X, y, W0, a0, eta=eta, steps=2000, on_divergence="flag").diverged_step
    with pytest.raises(ValueError, match=rf"eta: the loss diverged at step {k}: "):
        backend.train_gd(*args, eta=eta, steps=2000)


# --------------------------------------------------------------------------- GD with traces
@pytest.mark.parametrize("step", ["weights", "function"])
def test_train_matches_net_train_with_its_traces(rng, xp, step):
    X, y, W0, a0 = _problem(rng, n=12, d=20, m=300)
    kw = {"eta": 0.5, "steps": 30, "record_every": 4, "step": step}
    ref = net.train(X, y, W0, a0, **kw)
    seen = []
    res = backend.train(
        *(xp.asarray(A) for A in (X, y, W0, a0)), progress=lambda k, s: seen.append(k), **kw
    )
    assert isinstance(res.W, np.ndarray) and res.W.dtype == np.float64  # the host record
    assert seen == list(res.recorded_steps) == list(ref.recorded_steps)
    np.testing.assert_allclose(res.loss, ref.loss, rtol=RTOL)
    _close(res.W, ref.W, RTOL)
    _close(res.u, ref.u, RTOL)
    np.testing.assert_array_equal(res.flip_fraction, ref.flip_fraction)
    for field in ("move_rms", "move_max", "move_fro"):
        np.testing.assert_allclose(getattr(res, field), getattr(ref, field), rtol=1e-10)
    assert res.flip_fraction[-1] > 0  # patterns moved: the flip counts are compared


def test_train_refreshes_z_in_function_space(rng, monkeypatch):
    from shared import _fspace

    monkeypatch.setattr(_fspace, "REFRESH", 3)
    X, y, W0, a0 = _problem(rng, n=12, d=20, m=100)
    ref = net.train(X, y, W0, a0, eta=0.5, steps=10, step="weights")
    res = backend.train(
        *(xps.asarray(A) for A in (X, y, W0, a0)), eta=0.5, steps=10, step="function"
    )
    np.testing.assert_allclose(res.loss, ref.loss, rtol=RTOL)
    _close(res.W, ref.W, RTOL)


def test_train_bad_arguments_name_themselves(rng):
    args = [xps.asarray(A) for A in _problem(rng)]
    with pytest.raises(ValueError, match=r"step: expected one of 'auto', 'weights', 'function'"):
        backend.train(*args, eta=0.1, steps=1, step="fast")
    with pytest.raises(ValueError, match=r"record_every: expected > 0"):
        backend.train(*args, eta=0.1, steps=1, record_every=0)
    with pytest.raises(TypeError, match=r"progress: expected a callable"):
        backend.train(*args, eta=0.1, steps=1, progress=3)


def test_backends_by_name(rng):
    X = rng.standard_normal((3, 2))
    assert backend.namespace_named("numpy") is np
    assert backend.namespace_named("array_api_strict") is xps
    (Xs,) = backend.arrays_on("array_api_strict", X)
    assert backend.namespace(Xs) is xps
    np.testing.assert_array_equal(backend.to_numpy(Xs), X)
    with pytest.raises(ValueError, match=r"backend: expected one of 'numpy', 'cupy'"):
        backend.namespace_named("jax")


def test_flagship_runs_on_the_strict_array_api_through_the_command_line(tmp_path):
    """``sandbox run linear_convergence --backend array_api_strict``: the training goes through
    ``backend.train`` and every quantity is the numpy run's to rounding."""
    import json
    from pathlib import Path

    from sandbox.cli import main

    root = Path(__file__).resolve().parents[1]
    for name in ("numpy", "array_api_strict"):
        args = ["run", "linear_convergence", "--out", str(tmp_path / name), "--backend", name]
        assert main(["--root", str(root), *args]) == 0
    q = {
        name: json.loads(
            (tmp_path / name / "linear_convergence" / "quick-seed0" / "results.json").read_text()
        )["quantities"]
        for name in ("numpy", "array_api_strict")
    }
    assert q["numpy"].keys() == q["array_api_strict"].keys()
    for key, value in q["numpy"].items():  # measured: at most 3e-16 relative apart
        np.testing.assert_allclose(q["array_api_strict"][key], value, rtol=1e-9, err_msg=key)
