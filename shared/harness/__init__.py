"""The machinery that discovers, runs and checks experiments.

It is kept apart from the science (``shared.data``, ``shared.kernels``, ...):
experiments import the science, the harness imports experiments, and the
science imports neither.
"""
