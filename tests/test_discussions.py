"""Notes cannot drift from the evidence.

Every quantitative claim in ``discussions/*.md`` and in the Markdown cells of
``discussions/*.ipynb`` cites the check that verifies it as a link
``[experiment:quantity](../experiments/experiment/)``. This test fails when a note cites an
experiment that does not exist, a quantity that its ``expected.toml`` does not check, or links
to any missing file.
"""

import collections
import json
import re
from pathlib import Path

import pytest

from sandbox.registry import load

ROOT = Path(__file__).resolve().parents[1]
NOTES = sorted((ROOT / "discussions").glob("*.md")) + sorted(
    (ROOT / "discussions").glob("*.ipynb")  # the notebook template's example citation too
)
CITE = re.compile(r"\[([a-z][a-z0-9_]*):([A-Za-z][A-Za-z0-9_]*)\]\(([^)]+)\)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def note_text(note: Path) -> str:
    """A Markdown note's text, or the Markdown cells of a notebook note."""
    if note.suffix != ".ipynb":
        return note.read_text()
    cells = json.loads(note.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def checked_quantities(name: str) -> set[str]:
    return {c.quantity for c in load(ROOT / "experiments" / name).checks}


def test_there_are_notes_and_an_index():
    names = {p.name for p in NOTES}
    assert "README.md" in names
    assert len(NOTES) >= 7, names
    assert sum(p.suffix == ".ipynb" for p in NOTES) >= 3, "notebook notes"


def test_a_number_names_one_note():
    numbered = collections.defaultdict(list)
    for p in NOTES:
        if re.fullmatch(r"\d{4}-[a-z0-9-]+\.(md|ipynb)", p.name):
            numbered[p.name[:4]].append(p.name)
    shared = {k: v for k, v in numbered.items() if len(v) > 1}
    assert not shared, f"notes sharing a number: {shared}"
    index = (ROOT / "discussions" / "README.md").read_text()
    for k, (name,) in numbered.items():
        assert f"[{k} · " in index and f"]({name})" in index, f"{name}: no line in the index"


@pytest.mark.parametrize("note", NOTES, ids=[p.name for p in NOTES])
def test_citations_name_real_checks(note):
    text = note_text(note)
    for exp, quantity, target in CITE.findall(text):
        assert target.rstrip("/") == f"../experiments/{exp}", (
            f"{note.name}: citation [{exp}:{quantity}] must link to ../experiments/{exp}/, "
            f"links to {target}"
        )
        assert (ROOT / "experiments" / exp).is_dir(), f"{note.name}: no experiment {exp!r}"
        assert quantity in checked_quantities(exp), (
            f"{note.name}: {exp}/expected.toml does not check {quantity!r}"
        )


@pytest.mark.parametrize("note", NOTES, ids=[p.name for p in NOTES])
def test_relative_links_resolve(note):
    for target in LINK.findall(note_text(note)):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (note.parent / target).resolve().exists(), f"{note.name}: broken link {target}"


def test_every_topic_note_cites_checks():
    for note in NOTES:
        if note.name in {"README.md", "notation.md"}:
            continue
        assert CITE.search(note_text(note)), f"{note.name} makes no checked claim"
