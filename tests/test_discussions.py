"""Notes cannot drift from the evidence.

Every quantitative claim in ``discussions/*.md`` cites the check that verifies it as a link
``[experiment:quantity](../experiments/experiment/)``. This test fails when a note cites an
experiment that does not exist, a quantity that its ``expected.toml`` does not check, or links
to any missing file.
"""

import re
from pathlib import Path

import pytest

from sandbox.registry import load

ROOT = Path(__file__).resolve().parents[1]
NOTES = sorted((ROOT / "discussions").glob("*.md"))
CITE = re.compile(r"\[([a-z][a-z0-9_]*):([A-Za-z][A-Za-z0-9_]*)\]\(([^)]+)\)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def checked_quantities(name: str) -> set[str]:
    return {c.quantity for c in load(ROOT / "experiments" / name).checks}


def test_there_are_notes_and_an_index():
    names = {p.name for p in NOTES}
    assert "README.md" in names
    assert len(NOTES) >= 7, names


@pytest.mark.parametrize("note", NOTES, ids=[p.name for p in NOTES])
def test_citations_name_real_checks(note):
    text = note.read_text()
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
    for target in LINK.findall(note.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (note.parent / target).resolve().exists(), f"{note.name}: broken link {target}"


def test_every_topic_note_cites_checks():
    for note in NOTES:
        if note.name in {"README.md", "notation.md"}:
            continue
        assert CITE.search(note.read_text()), f"{note.name} makes no checked claim"
