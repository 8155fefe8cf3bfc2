"""The tooling behind the ``sandbox`` command: it discovers, runs, checks and sweeps experiments.

It is kept apart from the science in :mod:`shared`: experiments import the
science, this package imports experiments, and the science imports neither.

- :mod:`sandbox.registry`  -- find experiment folders, load ``expected.toml`` and ``experiment.py``.
- :mod:`sandbox.checks`    -- the declarative checks of ``expected.toml`` and their verdicts.
- :mod:`sandbox.runner`    -- run one experiment, write its results and figure.
- :mod:`sandbox.cli`       -- the command line (``sandbox list | run | check | new | sweep``).
- :mod:`sandbox.sweep`     -- grids of configurations x seeds, locally or on a Dask cluster.
- :mod:`sandbox.errors`, :mod:`sandbox._io` -- the user-facing error, atomic writes.
"""


def run_file(file: str) -> int:
    """The command line of ``python experiments/NAME/experiment.py [--full] [--seed S]``."""
    from sandbox.cli import run_file

    return run_file(file)
