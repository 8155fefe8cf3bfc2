"""Shared science for the over-parameterization sandbox.

Modules (one concept each):

- :mod:`shared.data`     -- input and label generators (explicit ``rng``).
- :mod:`shared.kernels`  -- Gram matrices: ``H_inf``, ``G_inf``, finite-width ``H(W)``, spectra.
- :mod:`shared.net`      -- the two-layer ReLU net of Du et al. (2019) and its GD loop.
- :mod:`shared.deep`     -- a deep ReLU net (NTK parameterisation), its NTK, the NTK recursion.
- :mod:`shared.features` -- kernel-target alignment, cross-kernels and the kernel interpolant.
- :mod:`shared.optim`    -- optimizers, step-size schedules and clipping on any gradient.
- :mod:`shared.fit`      -- rates and exponents fitted the same way everywhere.
- :mod:`shared.plotting` -- one look for every figure, saved headless.
- :mod:`shared.backend`  -- the GD loop and Gram tools on any array-API library (GPU arrays).

Underneath, :mod:`shared._engine` is the speed machinery of GD (neuron blocks in
cache, threads, the fused step, the recorded traces); :mod:`shared.net` is the
interface to it, next to the plain loop it is tested against (``gd_reference``).

The tooling lives apart, in the :mod:`sandbox` package: it discovers, runs, checks
and sweeps experiments. The science never imports it.
"""

__version__ = "0.1.0"
