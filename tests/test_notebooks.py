"""Notebook notes in ``discussions/``: committed stripped, runnable top to bottom, scaffoldable.

Every notebook (the template included) is executed in a fresh kernel with a per-cell timeout;
a cell that raises fails the test. The citations and links of their Markdown cells are checked
with the Markdown notes' in ``tests/test_discussions.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat  # the site extra, included in dev: pip install -e ".[dev]"
import pytest

from sandbox.cli import main
from sandbox.errors import ExperimentError
from sandbox.notebooks import TEMPLATE, execute, notebook_paths, scaffold, unstripped

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT)
ALL = [*NOTEBOOKS, ROOT / "discussions" / TEMPLATE]
BUDGET_S = 60  # CPU seconds: a notebook note runs in well under a minute on two cores


def markdown(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


# The template's placeholders ("<One paragraph ...>"): a finished notebook has none left.
PLACEHOLDERS = [
    p for p in re.findall(r"<([^<>\n]+)>", markdown(ROOT / "discussions" / TEMPLATE)) if " " in p
]


def test_there_are_notebooks_and_a_template():
    assert len(NOTEBOOKS) >= 3, [p.name for p in NOTEBOOKS]
    assert (ROOT / "discussions" / TEMPLATE).is_file()
    assert PLACEHOLDERS, "the template lost its <placeholders>; update this test"


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_committed_without_outputs_or_execution_counts(path):
    found = unstripped(path)
    assert not found, (
        f"{path.name}: run `nbstripout {path.name}` (or `pre-commit install`): {found}"
    )
    nbformat.validate(nbformat.read(path, as_version=4))


def test_the_strip_check_sees_outputs(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].execution_count = 3
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert unstripped(path) == ["cell 1 has outputs", "cell 1 has an execution count"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_template_placeholder_is_left(path):
    text = markdown(path)
    left = [p for p in PLACEHOLDERS if f"<{p}>" in text]
    assert not left, f"{path.name} still has the template's placeholders: {left}"
    assert "NNNN" not in text


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_notebook_runs_top_to_bottom(path):
    nb, seconds, cpu_s = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "ename" in o]
    assert not errors, errors
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert figures, f"{path.name} draws no figure"
    # The kernel's CPU time, not the wall time: the budget is the notebook's, and the machine
    # running the suite may be shared (the threads of one BLAS call add up, so this is strict).
    assert cpu_s is not None and cpu_s < BUDGET_S, (
        f"{path.name} took {cpu_s:.0f} s of CPU ({seconds:.0f} s wall); use quick-mode sizes"
    )
    print(f"{path.name}: {seconds:.1f} s wall, {cpu_s:.1f} s CPU")


def test_a_failing_cell_fails_the_run(tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / (x - 1)")]
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        execute(path)


# ---------------------------------------------------------------- sandbox new --notebook


@pytest.fixture
def root(tmp_path):
    """A sandbox holding only the notebook template (and an experiment, for the registry)."""
    (tmp_path / "discussions").mkdir()
    shutil.copy2(ROOT / "discussions" / TEMPLATE, tmp_path / "discussions" / TEMPLATE)
    shutil.copytree(ROOT / "experiments" / "_template", tmp_path / "experiments" / "_template")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "sandbox-under-test"\n')
    return tmp_path


def test_new_notebook_scaffolds_a_stripped_numbered_note(root, capsys):
    assert main(["--root", str(root), "new", "--notebook", "0042-why-kinks-matter"]) == 0
    path = root / "discussions" / "0042-why-kinks-matter.ipynb"
    assert "discussions/0042-why-kinks-matter.ipynb" in capsys.readouterr().out
    assert not unstripped(path)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].source.startswith("# 0042 · <Title")
    assert "NNNN" not in markdown(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("why-kinks-matter", "expected NNNN-short-title"),
        ("0042_Why", "expected NNNN-short-title"),
        ("0042-../x", "expected NNNN-short-title"),
    ],
)
def test_new_notebook_rejects_a_bad_name(root, capsys, name, message):
    assert main(["--root", str(root), "new", "--notebook", name]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in (root / "discussions").iterdir()) == [TEMPLATE]


def test_new_notebook_refuses_a_number_already_taken(root, capsys):
    (root / "discussions" / "0042-an-older-note.md").write_text("# 0042 · older\n")
    assert main(["--root", str(root), "new", "--notebook", "0042-another"]) == 2
    assert "0042-an-older-note.md" in capsys.readouterr().err
    with pytest.raises(ExperimentError, match="one thread, one note"):
        scaffold(root, "0042-another")
