"""Notebook notes in ``discussions/``: find them, run them, check they are stripped, scaffold one.

A notebook note is ``discussions/NNNN-short-title.ipynb``: the same rules as a Markdown note
(``discussions/README.md``), with live code and figures. It is committed without outputs or
execution counts (nbstripout) and executed top to bottom by the tests and by ``sandbox site``.
``discussions/_template.ipynb`` is what ``sandbox new --notebook`` copies.

Running notebooks needs the ``site`` extra (nbformat, nbclient and a Jupyter kernel).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from sandbox._io import write_atomic
from sandbox.errors import ExperimentError

TEMPLATE = "_template.ipynb"
NOTE_NAME_RE = re.compile(r"^\d{4}-[a-z0-9]+(?:-[a-z0-9]+)*$")
CELL_TIMEOUT_S = 120  # one cell; a whole note should run in well under a minute


def notebook_paths(root: Path) -> list[Path]:
    """The notebook notes, sorted; the template (names starting with ``_``) is left out."""
    return sorted(
        p for p in (root / "discussions").glob("*.ipynb") if not p.name.startswith(("_", "."))
    )


def unstripped(path: Path) -> list[str]:
    """What nbstripout would remove from the committed file: outputs and execution counts."""
    nb = json.loads(path.read_text())
    found = []
    for i, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("outputs"):
            found.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i} has an execution count")
        if cell.get("metadata", {}).get("execution"):
            found.append(f"cell {i} has execution timings in its metadata")
    return found


def _children_cpu_s() -> float | None:
    """CPU seconds (user + system) of this process's finished children, where the OS says."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def execute(path: Path, *, timeout: int = CELL_TIMEOUT_S):
    """Run the notebook at ``path`` top to bottom in a fresh kernel, from its own folder.

    Returns ``(nb, seconds, cpu_seconds)``: the executed ``nbformat.NotebookNode``, the wall
    time, and the kernel's CPU time (``None`` where the OS does not report it; it counts every
    child process that finished meanwhile, so run one notebook at a time to read it). On a
    shared machine the CPU time is the figure that measures the notebook, not the machine.
    A cell that raises stops the run with ``nbclient.exceptions.CellExecutionError``.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    cpu0, start = _children_cpu_s(), time.perf_counter()
    client.execute()  # starts the kernel, runs every cell, shuts the kernel down
    seconds, cpu1 = time.perf_counter() - start, _children_cpu_s()
    return nb, seconds, (None if cpu0 is None else cpu1 - cpu0)


def scaffold(root: Path, name: str) -> Path:
    """Copy the template notebook to ``discussions/NAME.ipynb`` with its number in the title."""
    if not NOTE_NAME_RE.match(name):
        raise ExperimentError(
            "--notebook: expected NNNN-short-title, NNNN the number of the discussion or issue "
            f"the note comes from (e.g. '0042-why-relu-kinks-matter'), got {name!r}"
        )
    folder = root / "discussions"
    template = folder / TEMPLATE
    if not template.is_file():
        raise ExperimentError(f"the notebook template {template} is missing")
    taken = [p.name for p in folder.glob(f"{name[:4]}-*") if p.suffix in (".md", ".ipynb")]
    dest = folder / f"{name}.ipynb"
    if dest.exists() or taken:
        raise ExperimentError(
            f"discussions/ already has a note numbered {name[:4]} ({', '.join(sorted(taken))}); "
            "one thread, one note"
        )
    nb = json.loads(template.read_text())
    for cell in nb["cells"]:
        cell["source"] = [line.replace("NNNN", name[:4]) for line in _lines(cell["source"])]
    write_atomic(dest, lambda fh: fh.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n"))
    return dest


def _lines(source) -> list[str]:
    return source if isinstance(source, list) else source.splitlines(keepends=True)
