"""Speed of shared/: one GD step, ``H(W)`` and ``H_inf``, each against its bound and its peers.

Every figure is a ratio measured in this run: the contenders of a figure are
timed in interleaved rounds (so a busy machine slows all of them alike) and
each keeps its fastest round. Nothing is compared with stored times. Every
figure prints its target and PASS or MISS.

- **GD step on W** (float64) at ``(n, d, m)`` = (1000, 1000, 4096), (1000, 100, 4096),
  (100, 20, 8000): ``net.train`` per step (the step its cost model picks, named in
  the output), ``(t(S steps) - t(0 steps)) / S`` so that validation and buffer (and
  thread) set-up are excluded, against the two matrix products of the weight-space
  step (``X W^T`` and ``M^T X``) and against the same step in PyTorch autograd and
  JAX ``jit``. Targets at the first shape: at most 0.6x the two products, at most
  0.75x the faster peer, and at most 0.75x the two products with the traces
  (flips and moves) recorded every 5 steps; at every shape, faster than both peers.
  The same with ``lambda_min(H)`` recorded too (``track_kernel``) is printed for
  information.
- **H(W)** for n = 2000, m = 16384 (d = 100): ``kernels.gram_h`` against numpy's
  ``A @ A.T`` (BLAS ``syrk``) for the same ``(n, m)`` float32 pattern matrix (target
  1.15x), against one general float32 product ``(n, m) @ (m, n)`` (information), and
  its peak memory at two widths (bounded independently of m).
- **H_inf** for n = 4000 (d = 1000, the Figure 1 input dimension): ``kernels.h_inf``
  against ``X X^T`` plus one elementwise pass over the ``(n, n)`` result
  (bound 2x). The pass is the kernel's one transcendental, ``arccos``; the ratio
  against a plain multiply pass is printed too.

The header names the CPU, numpy's BLAS (library, version, kernel, from
threadpoolctl) and each peer's (PyTorch's build configuration and CPU
capability, JAX's XLA backend), so tables from different machines can be read.
PyTorch and JAX are used only here and only if installed (``pip install
.[bench]``; never a requirement): a missing peer is named and skipped.
All peers get the same number of threads: ``--threads`` if given, else
``OMP_NUM_THREADS`` if set, else all cores (numpy's BLAS reads it at import, so
it is set before numpy is imported). Run: ``python tests/benchmark_speed.py``
(``--rounds`` to trade time for stability, ``--threads 1`` for the one-thread
setting that CI and the experiments use, ``--quick`` for a smoke run). JAX
keeps helper threads whatever its flags say; for a strict one-core comparison
pin the process: ``taskset -c 0 python tests/benchmark_speed.py --threads 1``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable


def _threads_from_argv(argv: list[str]) -> int:
    """``--threads N`` from the command line, before argparse (numpy is not imported yet)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


THREADS = _threads_from_argv(sys.argv)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
os.environ["XLA_FLAGS"] = (
    f"--xla_cpu_multi_thread_eigen={'true' if THREADS > 1 else 'false'} "
    f"intra_op_parallelism_threads={THREADS}"
)

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

from shared import _fspace, data, kernels, net  # noqa: E402

STEP_SHAPES = [(1000, 1000, 4096), (1000, 100, 4096), (100, 20, 8000)]
ETA = 1e-3  # small: the benchmark times steps, it does not train to convergence
SETTLE = 0.25  # seconds of pause before each timing (see race)


# --------------------------------------------------------------------------- timing
def _calibrate(fn: Callable[[], object], target: float) -> int:
    """Calls per measurement so that one measurement lasts about ``target`` seconds."""
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, round(target / max(once, 1e-6)))


def race(contenders: dict[str, Callable[[], object]], *, rounds: int, target: float = 0.2):
    """Seconds per call of each contender: the fastest of ``rounds`` interleaved rounds.

    Each timing starts after a short pause, so that the helper threads a
    previous contender left spinning (OpenBLAS, OpenMP, XLA keep theirs awake
    for a while after a call) have gone to sleep and do not compete with the
    next one for the cores: every contender starts from a quiet machine.
    """
    reps = {name: _calibrate(fn, target) for name, fn in contenders.items()}
    best = dict.fromkeys(contenders, np.inf)
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(SETTLE)
            t = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / reps[name])
    return best


def report(label: str, ours: float, ref: float, bound: float, kind: str) -> bool:
    """Print one figure: ours, the reference, the ratio and the target it must meet."""
    ratio = ours / ref
    ok = ratio <= bound if kind == "<=" else ratio < bound
    verdict = "information" if bound == np.inf else ("PASS" if ok else "MISS")
    target = "" if bound == np.inf else f"(target {kind} {bound:g})"
    print(
        f"  {label:<50s} ours {1e3 * ours:9.2f} ms   ref {1e3 * ref:9.2f} ms   "
        f"ratio {ratio:6.3f}  {target:<14s} {verdict}"
    )
    return ok


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_of_numpy() -> str:
    libs = [
        f"{i['internal_api']} {i['version']} ({i.get('architecture') or 'kernel unknown'}, "
        f"{i['num_threads']} threads, {os.path.basename(i['filepath'])})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    return "; ".join(libs) or "no BLAS found by threadpoolctl"


def blas_of_torch(torch) -> str:
    config = torch.__config__.show()
    blas = next((w for w in config.replace(",", " ").split() if w.startswith("BLAS_INFO=")), "")
    return (
        f"{blas.removeprefix('BLAS_INFO=') or 'unknown BLAS'}, mkldnn "
        f"{torch.backends.mkldnn.is_available()}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    )


def blas_of_jax(jax) -> str:
    from jax.extend import backend

    be = backend.get_backend()
    return (
        f"XLA {be.platform} ({be.platform_version}; Eigen/oneDNN products), devices {jax.devices()}"
    )


# --------------------------------------------------------------------------- peers
def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(THREADS)
    return torch


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def torch_step(torch, X, y, W, a, eta):
    """The same GD step written with PyTorch autograd (float64)."""
    Xt, yt, at = (torch.from_numpy(A) for A in (X, y, a))
    Wt = torch.from_numpy(W.copy()).requires_grad_(True)
    c = 1.0 / np.sqrt(W.shape[0])

    def step():
        u = torch.relu(Xt @ Wt.T) @ at * c
        L = 0.5 * ((u - yt) ** 2).sum()
        L.backward()
        with torch.no_grad():
            Wt.sub_(eta * Wt.grad)
        Wt.grad = None
        return L

    return step


def jax_step(jax, X, y, W, a, eta):
    """The same GD step written with ``jax.value_and_grad`` under ``jax.jit`` (float64)."""
    jnp = jax.numpy
    Xj, yj, aj = (jnp.asarray(A) for A in (X, y, a))
    c = 1.0 / np.sqrt(W.shape[0])

    def loss(W):
        u = jax.nn.relu(Xj @ W.T) @ aj * c
        return 0.5 * jnp.sum((u - yj) ** 2)

    @jax.jit
    def update(W):
        L, g = jax.value_and_grad(loss)(W)
        return W - eta * g, L

    state = [jnp.asarray(W)]

    def step():
        state[0], L = update(state[0])
        state[0].block_until_ready()
        return L

    step()  # compile outside the timing
    return step


# --------------------------------------------------------------------------- figures
def bench_step(n, d, m, *, rounds, torch, jax) -> bool:
    rng = np.random.default_rng(0)
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    Z, M, G = np.empty((n, m)), (X @ W0.T >= 0).astype(float), np.empty((m, d))

    def products():
        np.matmul(X, W0.T, out=Z)  # (n, m)
        np.matmul(M.T, X, out=G)  # (m, d)

    kw = {"eta": ETA, "threads": THREADS}  # as many threads as every peer gets
    t1 = time.perf_counter()
    net.train(X, y, W0, a0, steps=1, record_every=1, **kw)
    S = max(5, min(50, 5 * round(0.2 / max(time.perf_counter() - t1, 1e-4))))
    # the step the cost model picks for the run without records, and for the 0-step run
    # that is subtracted (its set-up: K = X X^T, Z(0), W at the end)
    step = _fspace.choose(
        n=n, d=d, m=m, steps=S, record_every=S, train_a=False, track_kernel=False, callback=False
    )
    rec = {"record_every": 5}
    contenders = {
        "train_S": lambda: net.train(X, y, W0, a0, steps=S, record_every=S, **kw),
        "train_0": lambda: net.train(X, y, W0, a0, steps=0, step=step, **kw),
        "train_S_rec": lambda: net.train(X, y, W0, a0, steps=S, **rec, **kw),
        "train_S_kernel": lambda: net.train(X, y, W0, a0, steps=S, track_kernel=True, **rec, **kw),
        "products": products,
    }
    if torch is not None:
        contenders["torch"] = torch_step(torch, X, y, W0, a0, ETA)
    if jax is not None:
        contenders["jax"] = jax_step(jax, X, y, W0, a0, ETA)
    t = race(contenders, rounds=rounds)
    ours = (t["train_S"] - t["train_0"]) / S  # one step of net.train, setup excluded
    print(
        f"GD step on W, float64, (n, d, m) = ({n}, {d}, {m}); net.train over {S} steps, "
        f"the {'weight' if step == 'weights' else 'function'}-space step"
    )
    ok = True
    first = (n, d, m) == STEP_SHAPES[0]
    ok &= report(
        "vs the two products X W^T, M^T X" if first else "vs the two products (information)",
        ours,
        t["products"],
        0.6 if first else np.inf,
        "<=",
    )
    peers = {"torch": "PyTorch autograd", "jax": "JAX jit"}
    for peer, name in peers.items():
        if peer in t:
            ok &= report(f"vs {name}", ours, t[peer], 1.0, "<")
        else:
            print(f"  vs {name:<45s} not installed: skipped")
    if first and any(p in t for p in peers):
        ok &= report("vs the faster peer", ours, min(t[p] for p in peers if p in t), 0.75, "<=")
    with_rec = (t["train_S_rec"] - t["train_0"]) / S
    ok &= report(
        "traces every 5 steps: vs two products" if first else "traces every 5 steps (information)",
        with_rec,
        t["products"],
        0.75 if first else np.inf,
        "<=",
    )
    with_kernel = (t["train_S_kernel"] - t["train_0"]) / S
    report(
        "traces, lambda_min(H) every 5 steps (information)",
        with_kernel,
        t["products"],
        np.inf,
        "<=",
    )
    return ok


def bench_gram_h(n, m, d, *, rounds, chunk=None) -> bool:
    rng = np.random.default_rng(1)
    X = data.unit_sphere(n, d, rng=rng)
    W = rng.standard_normal((m, d))
    A = (X @ W.T >= 0).astype(np.float32)  # (n, m), the pattern of H(W)
    B = np.ascontiguousarray(A.T)  # (m, n), a separate operand: a general product
    C = np.empty((n, n), dtype=np.float32)
    t = race(
        {
            "ours": lambda: kernels.gram_h(X, W),
            "matmul": lambda: np.matmul(A, B, out=C),
            "syrk": lambda: A @ A.T,
        },
        rounds=rounds,
    )
    print(f"H(W) = gram_h(X, W), n = {n}, m = {m}, d = {d}, float64 inputs")
    ok = report("vs A @ A.T, the same (n, m) pattern (syrk)", t["ours"], t["syrk"], 1.15, "<=")
    report("vs one float32 (n, m) @ (m, n) product (inf.)", t["ours"], t["matmul"], np.inf, "<=")
    peaks = []
    for width in (m // 4, m):
        Wm = rng.standard_normal((width, d))
        tracemalloc.start()
        kernels.gram_h(X, Wm, chunk=chunk)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    grow = peaks[1] / peaks[0]
    print(
        f"  peak memory at m = {m // 4}: {peaks[0]:.1f} MiB, at m = {m}: {peaks[1]:.1f} MiB "
        f"(ratio {grow:.3f}; bounded in m: <= 1.05)  {'PASS' if grow <= 1.05 else 'MISS'}"
    )
    return ok and grow <= 1.05


def bench_h_inf(n, d, *, rounds) -> bool:
    rng = np.random.default_rng(2)
    X = data.unit_sphere(n, d, rng=rng)
    K, T = X @ X.T, np.empty((n, n))
    cos = np.clip(K, -1.0, 1.0)
    t = race(
        {
            "ours": lambda: kernels.h_inf(X),
            "xxt": lambda: X @ X.T,
            "arccos": lambda: np.arccos(cos, out=T),
            "multiply": lambda: np.multiply(K, 0.5, out=T),
        },
        rounds=rounds,
    )
    print(f"H_inf = h_inf(X), n = {n}, d = {d}")
    ok = report("vs X X^T + one arccos pass", t["ours"], t["xxt"] + t["arccos"], 2.0, "<=")
    report(
        "vs X X^T + one multiply pass (information)",
        t["ours"],
        t["xxt"] + t["multiply"],
        np.inf,
        "<=",
    )
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"threads for every peer (default: {THREADS})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run only")
    args = parser.parse_args(argv)
    torch, jax = _torch(), _jax()
    print(f"CPU: {cpu_model()}; threads per peer: {THREADS}")
    print(f"numpy {np.__version__}: {blas_of_numpy()}")
    print(
        f"torch {torch.__version__}: {blas_of_torch(torch)}"
        if torch is not None
        else "torch: not installed (pip install .[bench]); its figures are skipped"
    )
    print(
        f"jax {jax.__version__}: {blas_of_jax(jax)}"
        if jax is not None
        else "jax: not installed (pip install .[bench]); its figures are skipped"
    )
    shapes = [(n // 10, d // 10, m // 10) for n, d, m in STEP_SHAPES] if args.quick else STEP_SHAPES
    ok = True
    for n, d, m in shapes:
        ok &= bench_step(n, d, m, rounds=args.rounds, torch=torch, jax=jax)
    if args.quick:  # chunks of m / 8 neurons, so that both widths of the memory figure span several
        ok &= bench_gram_h(200, 1638, 10, rounds=args.rounds, chunk=1638 // 8)
    else:
        ok &= bench_gram_h(2000, 16384, 100, rounds=args.rounds)
    ok &= bench_h_inf(*((400, 100) if args.quick else (4000, 1000)), rounds=args.rounds)
    print("every figure meets its target" if ok else "some figures miss their targets")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
