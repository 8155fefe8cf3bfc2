"""Discover experiments and load their metadata and code.

An experiment is a folder ``experiments/<name>/`` holding

- ``README.md``      question, claim, how to run, what is checked and why, the figure;
- ``experiment.py``  ``run(*, quick, seed, progress) -> dict`` and ``plot(result) -> Figure``;
- ``expected.toml``  an ``[experiment]`` table (title, question, claim) and ``[[check]]`` tables.

Folders whose name starts with ``_`` or ``.`` (the template) are not experiments.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sandbox.checks import parse_checks
from sandbox.errors import ExperimentError

REQUIRED_FILES = ("README.md", "experiment.py", "expected.toml")
REQUIRED_META = ("title", "question", "claim")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def find_root(start: Path | None = None) -> Path:
    """The sandbox root: ``$SANDBOX_ROOT``, else the nearest folder upwards holding
    ``experiments/`` and ``pyproject.toml``, else the checkout this package lives in."""
    env = os.environ.get("SANDBOX_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "experiments").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    pkg_root = Path(__file__).resolve().parents[1]
    if (pkg_root / "experiments").is_dir():
        return pkg_root
    raise ExperimentError(
        "no experiments/ folder found: run from inside the sandbox checkout or set SANDBOX_ROOT"
    )


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    meta: dict
    checks: list

    @property
    def title(self) -> str:
        return self.meta["title"]

    @property
    def question(self) -> str:
        return self.meta["question"]

    def load_module(self) -> ModuleType:
        """Import ``experiment.py`` under a private module name and check its interface."""
        file = self.path / "experiment.py"
        mod_name = f"sandbox_experiments.{self.name}"
        spec = importlib.util.spec_from_file_location(mod_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(mod_name, None)
            raise
        for fn in ("run", "plot"):
            if not callable(getattr(module, fn, None)):
                raise ExperimentError(f"{self.name}: experiment.py must define a function {fn}()")
        params = inspect.signature(module.run).parameters
        for arg in ("quick", "seed"):
            if arg not in params or params[arg].kind is not inspect.Parameter.KEYWORD_ONLY:
                raise ExperimentError(
                    f"{self.name}: run() must take keyword-only arguments quick and seed"
                )
        progress = params.get("progress")
        if progress is None or progress.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise ExperimentError(
                f"{self.name}: run() must take a keyword-only argument progress "
                "(the harness always passes one: progress(i, total, label))"
            )
        return module


def experiment_dirs(root: Path) -> list[Path]:
    """Experiment folders under ``root/experiments``, sorted; the template is left out."""
    base = root / "experiments"
    if not base.is_dir():
        raise ExperimentError(f"{root}: no experiments/ folder here; is this the sandbox checkout?")
    return sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and p.name != "__pycache__"
    )


def load(path: Path) -> Experiment:
    """Read one experiment folder; raise :class:`ExperimentError` if anything is missing or
    malformed."""
    name = path.name
    if not NAME_RE.match(name):
        raise ExperimentError(f"{name}: folder names are lower_snake_case (letters, digits, _)")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ExperimentError(f"{name}: missing required file(s): {', '.join(missing)}")
    try:
        spec = tomllib.loads((path / "expected.toml").read_text())
    except tomllib.TOMLDecodeError as err:
        raise ExperimentError(f"{name}/expected.toml: not valid TOML: {err}") from err
    meta = spec.get("experiment")
    if not isinstance(meta, dict):
        raise ExperimentError(f"{name}/expected.toml: missing the [experiment] table")
    for key in REQUIRED_META:
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise ExperimentError(f"{name}/expected.toml: [experiment] needs a non-empty '{key}'")
    unknown = set(spec) - {"experiment", "check"}
    if unknown:
        raise ExperimentError(f"{name}/expected.toml: unknown top-level key(s) {sorted(unknown)}")
    checks = parse_checks(spec.get("check"), where=f"{name}/expected.toml")
    return Experiment(name=name, path=path, meta=meta, checks=checks)


def discover(root: Path) -> list[Experiment]:
    """Every experiment; the first malformed one raises (see :func:`load_all`)."""
    return [load(p) for p in experiment_dirs(root)]


def load_all(root: Path) -> tuple[list[Experiment], dict[str, str]]:
    """Every experiment that loads, and the error of each one that does not, by folder name.

    One malformed ``expected.toml`` must not hide the others: ``sandbox check --all``
    runs the rest and reports the broken ones as errors.
    """
    exps, errors = [], {}
    for p in experiment_dirs(root):
        try:
            exps.append(load(p))
        except ExperimentError as err:
            errors[p.name] = str(err)
    return exps, errors


def require(root: Path, name: str) -> Path:
    """The folder of the experiment called ``name``; an unknown name is an error."""
    path = root / "experiments" / name
    if not NAME_RE.match(name) or not path.is_dir():
        known = ", ".join(p.name for p in experiment_dirs(root)) or "none"
        raise ExperimentError(f"unknown experiment {name!r}; known: {known}")
    return path


def get(root: Path, name: str) -> Experiment:
    """The experiment called ``name``; names are folder names, never paths."""
    return load(require(root, name))


def select(root: Path, names: list[str], all_: bool) -> tuple[list[Experiment], dict[str, str]]:
    """The experiments a command names (or ``--all``), and the load error of each broken one.

    An unknown name, or names with ``--all``, is a usage error and raises at once; a
    named experiment that does not load is reported with the others' results.
    """
    if all_ and names:
        raise ExperimentError("give experiment names or --all, not both")
    if all_:
        return load_all(root)
    if not names:
        raise ExperimentError("name at least one experiment, or use --all (see 'sandbox list')")
    paths = [require(root, n) for n in dict.fromkeys(names)]  # in order, each once
    exps, errors = [], {}
    for p in paths:
        try:
            exps.append(load(p))
        except ExperimentError as err:
            errors[p.name] = str(err)
    return exps, errors
