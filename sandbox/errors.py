"""The one error the tooling reports to the user as is."""


class ExperimentError(Exception):
    """A problem with an experiment's files, results or command line, reported as is (exit 2)."""
