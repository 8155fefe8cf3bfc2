"""The tooling behind the ``sandbox`` command: it discovers, runs, checks and sweeps experiments.

It is kept apart from the science in :mod:`shared`: experiments import the
science, this package imports experiments, and the science imports neither.

- :mod:`sandbox.registry`  -- find experiment folders, load ``expected.toml`` and ``experiment.py``.
- :mod:`sandbox.checks`    -- the declarative checks of ``expected.toml`` and their verdicts.
- :mod:`sandbox.runner`    -- run one experiment, write its results (then its figure).
- :mod:`sandbox.workers`   -- runs in worker processes: an exit or a crash is an error, not a pass.
- :mod:`sandbox.cli`       -- the command line (``sandbox list | run | check | calibrate | new |
  sweep``); :mod:`sandbox.report` its tables, :mod:`sandbox.seeds` its ``--seeds``.
- :mod:`sandbox.calibrate` -- every check over hundreds of seeds; :mod:`sandbox.record` the
  ``calibration.json`` it writes; :mod:`sandbox.tails` the false-failure-rate estimate.
- :mod:`sandbox.sweep`     -- grids of configurations x seeds, locally or on a Dask cluster.
- :mod:`sandbox.errors`, :mod:`sandbox._io` -- the user-facing error, atomic writes.
"""


def run_file(file: str) -> int:
    """The command line of ``python experiments/NAME/experiment.py [--full] [--seed S]``."""
    from sandbox.cli import run_file

    return run_file(file)
