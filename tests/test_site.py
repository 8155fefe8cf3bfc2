"""``sandbox site`` from published results: what each page holds, and how links are made.

These tests build without executing the notebooks (seconds); the browser test
(``tests/test_site_browser.py``) builds the full site through the command line and opens every
page in headless Chromium.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from sandbox.errors import ExperimentError
from sandbox.notebooks import notebook_paths
from sandbox.registry import discover
from sandbox.site import build_site
from sandbox.site.build import MARKER
from sandbox.site.records import expected_stamp, raw_bound

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = discover(ROOT)
HREF = re.compile(r'(?:href|src)="([^"]+)"')
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "site", "artifacts", "output", "__pycache__", "*.egg-info", ".*_cache"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    report = build_site(ROOT, out, execute_notebooks=False, log=lambda *_: None)
    return report


@pytest.fixture
def sandbox_copy(tmp_path):
    """A copy of the repository (published results included, run outputs left out)."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT, root, ignore=IGNORE)
    return root


def html(out: Path, page: str) -> str:
    return (out / page).read_text()


def test_index_has_one_card_per_experiment_with_thumbnail_and_command(site):
    index = html(site.out, "index.html")
    cards = re.findall(r'<article class="card" id="([a-z0-9_]+)">', index)
    assert cards == [e.name for e in EXPERIMENTS]
    for e in EXPERIMENTS:
        assert (site.out / "experiments" / e.name / "thumb.png").stat().st_size > 1000
        assert f"<code>sandbox run {e.name}</code>" in index
        assert (site.out / "experiments" / e.name / "index.html").is_file()
        assert (site.out / "experiments" / e.name / "figure.png").is_file()


def test_experiment_page_lists_every_check_with_its_reason_and_full_run(site):
    for e in EXPERIMENTS:
        page = html(site.out, f"experiments/{e.name}/index.html")
        body = page.split('<table class="checks">', 1)[1].split("</table>", 1)[0]
        assert body.count("<tr>") == len(e.checks) + 1, e.name  # the header row and one per check
        for c in e.checks:
            assert f"<code>{c.quantity}</code>" in body
        published = json.loads((e.path / "results_full.json").read_text())
        assert page.count("<tr><td><code>") >= len(published["quantities"])
        assert "not calibrated yet" in page or (e.path / "calibration.json").is_file()


def test_reproductions_lists_every_check(site):
    page = html(site.out, "reproductions.html")
    rows = page.split("<tbody>", 1)[1].count("<tr>")
    assert rows == sum(len(e.checks) for e in EXPERIMENTS)


def test_notes_and_notebooks_are_pages(site):
    notes = sorted((ROOT / "discussions").glob("*.md"))
    for p in notes:
        name = "index.html" if p.name == "README.md" else f"{p.stem}.html"
        assert (site.out / "discussions" / name).is_file(), name
    for p in notebook_paths(ROOT):
        page = html(site.out, f"discussions/{p.stem}.html")
        assert "did not execute it" in page  # this build skipped execution
        assert 'class="highlight' in page  # nbconvert's code cells
    assert not (site.out / "discussions" / "_template.html").exists()


def test_every_link_is_relative_and_names_a_file_that_exists(site):
    """The same check the browser test makes, on the files (a browser adds console errors)."""
    for page in site.pages:
        for href in HREF.findall(html(site.out, page)):
            if href.startswith(("http://", "https://", "data:", "#", "mailto:")):
                continue
            target = href.split("#", 1)[0]
            assert not target.startswith("/"), f"{page}: absolute link {href}"
            resolved = (site.out / page).parent / target
            assert resolved.is_file(), f"{page}: {href} does not resolve to a file"
            assert resolved.suffix in {".html", ".png", ".json", ".css"}, f"{page}: {href}"


def test_rebuild_replaces_its_own_output_but_not_a_foreign_folder(tmp_path, site):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ExperimentError, match="not a site this command built"):
        build_site(ROOT, foreign, execute_notebooks=False, log=lambda *_: None)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert (site.out / MARKER).is_file()
    with pytest.raises(ExperimentError, match="would replace the sandbox"):
        build_site(ROOT, ROOT, execute_notebooks=False)


def test_repo_url_links_the_code_and_a_missing_file_fails_the_build(sandbox_copy, tmp_path):
    url = "https://example.org/repo/blob/abc123"
    report = build_site(
        sandbox_copy, tmp_path / "a", execute_notebooks=False, repo_url=url, log=lambda *_: None
    )
    page = html(report.out, "experiments/gram_matrix/index.html")
    assert f'href="{url}/experiments/gram_matrix/experiment.py"' in page
    note = sandbox_copy / "discussions" / "0002-why-width-helps.md"
    note.write_text(note.read_text() + "\nSee [the missing one](0099-missing.md).\n")
    with pytest.raises(ExperimentError, match=r"0002-why-width-helps.md: 0099-missing.md"):
        build_site(sandbox_copy, tmp_path / "b", execute_notebooks=False, log=lambda *_: None)
    assert not (tmp_path / "b").exists()


def _synthetic_calibration(folder: Path, exp) -> dict:
    """A calibration record in the agreed schema: every quick check held on 200 seeds except
    the first, which failed on 2; the last check's bound as calibrated differs from today's."""
    checks = []
    for i, c in enumerate(x for x in exp.checks if "quick" in x.modes):
        bound = raw_bound(c)
        checks.append(
            {
                "quantity": c.quantity,
                "expected": c.expected(),
                "bound": bound,
                "feasible": None,
                "n": 200,
                "n_nan": 0,
                "min": 0.61 + i,
                "p01": 0.62 + i,
                "median": 0.85 + i,
                "p99": 0.95 + i,
                "max": 0.97 + i,
                "n_fail": 2 if i == 0 else 0,
                "failed": [[17, 0.4], [88, 0.45]] if i == 0 else [],
                "margin_sd": 4.1,
                "false_failure_rate": 3e-5,
                "method": "synthetic",
            }
        )
    checks[-1]["bound"] = {"at_most": 123.0}
    stamp = {"expected.toml": expected_stamp(folder), "code": "0" * 16}
    return {
        "experiment": exp.name,
        "quick": {
            "stamp": stamp,
            "seeds": "0-199",
            "n_seeds": 200,
            "created": "2026-12-07",
            "environment": {"python": "3.11.7", "numpy": "2.4.6", "platform": "test"},
            "runtime_s": {"median": 1.2, "max": 3.4, "total": 250.0},
            "checks": checks,
        },
    }


def test_a_calibration_record_is_shown_and_its_absence_said(sandbox_copy, tmp_path):
    folder = sandbox_copy / "experiments" / "kernel_stability"
    exp = next(e for e in discover(sandbox_copy) if e.name == "kernel_stability")
    record = _synthetic_calibration(folder, exp)
    (folder / "calibration.json").write_text(json.dumps(record, indent=1))
    # an experiment without a record (in this copy), to show how its absence is said
    other = sandbox_copy / "experiments" / "gram_matrix"
    (other / "calibration.json").unlink(missing_ok=True)
    readme = other / "README.md"
    readme.write_text(re.sub(r"\[([^\]]*)\]\(calibration\.json\)", r"\1", readme.read_text()))
    report = build_site(sandbox_copy, tmp_path / "s", execute_notebooks=False, log=lambda *_: None)

    page = html(report.out, "experiments/kernel_stability/index.html")
    assert "0.61 .. 0.97 (median 0.85)" in page  # the first check's calibrated range
    assert "198/200" in page and "failed on 2 of 200" in page
    assert "200/200" in page and "P(fail) ≈ 3e-05" in page
    assert "the bound changed after calibration" in page
    assert (
        'href="calibration.json"' in page
        and (report.out / folder.relative_to(sandbox_copy) / "calibration.json").is_file()
    )

    index = html(report.out, "index.html")
    card = index.split('id="kernel_stability"', 1)[1].split("</article>", 1)[0]
    assert "calibrated; quick: seeds 0-199, 1 check(s) failed" in card
    other = index.split('id="gram_matrix"', 1)[1].split("</article>", 1)[0]
    assert "not calibrated yet" in other

    repro = html(report.out, "reproductions.html")
    assert repro.count('class="fail">fail: failed on 2 of 200') == 1
    assert "stale: the bound changed after calibration" in repro

    # a later edit of expected.toml makes the whole record stale
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text() + "\n# edited\n")
    report = build_site(sandbox_copy, tmp_path / "s", execute_notebooks=False, log=lambda *_: None)
    page = html(report.out, "experiments/kernel_stability/index.html")
    assert "expected.toml changed after calibration" in page


ALPHA = {
    "experiment.py": """
from shared.plotting import subplots


def run(*, quick, seed, progress=lambda i, total, label="": None):
    return {"rate": 0.5 if quick else 0.75}


def plot(result):
    fig, ax = subplots()
    ax.plot([0, 1], [0, result["rate"]])
    return fig
""",
    "expected.toml": """
[experiment]
title = "alpha: a stand-in"
question = "Is the rate positive?"
claim = "A stand-in claim (nobody, 2019, Sec. 0)."

[[check]]
quantity = "rate"
at_least = 0.1
reason = "Any positive rate will do for a stand-in experiment."
""",
    "README.md": "# alpha\n\n**Question.** Q?\n\n**Claim.** C.\n\n`rate`\n\n![f](figure.png)\n",
}


def test_run_reruns_and_publishes_every_experiment_first(tmp_path):
    root = tmp_path / "repo"
    (root / "experiments" / "alpha").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "sandbox-under-test"\n')
    for name, text in ALPHA.items():
        (root / "experiments" / "alpha" / name).write_text(text.lstrip())
    assert not (root / "experiments" / "alpha" / "results_full.json").exists()
    report = build_site(root, tmp_path / "out", run=True, log=lambda *_: None)
    published = json.loads((root / "experiments" / "alpha" / "results_full.json").read_text())
    assert published["mode"] == "full" and published["quantities"]["rate"] == 0.75
    index = html(report.out, "index.html")
    assert "1/1 checks pass in the published full run" in index and "not calibrated yet" in index
    assert (report.out / "experiments" / "alpha" / "thumb.png").is_file()
