"""Every experiment folder is complete: the files, the README sections, the figure, reasons.

These are the parts of the experiment convention (``experiments/README.md``)
that a reader relies on and a quick-mode run cannot see. Each experiment gets
one test that lists everything missing at once.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from sandbox.checks import evaluate
from sandbox.errors import ExperimentError
from sandbox.registry import REQUIRED_FILES, Experiment, experiment_dirs, load

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "experiments" / "_template"
DIRS = experiment_dirs(ROOT)

# The template README's placeholders ("<One line, ...>"): a finished README has none left.
PLACEHOLDERS = [
    p for p in re.findall(r"<([^<>\n]+)>", (TEMPLATE / "README.md").read_text()) if " " in p
]
# The template's placeholders in expected.toml's title, question and claim ("<short title>").
META_PLACEHOLDERS = {
    key: re.findall(r"<[^<>\n]+>", value)
    for key, value in tomllib.loads((TEMPLATE / "expected.toml").read_text())["experiment"].items()
}
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\(\s*(?:\./)?figure\.png\s*\)")


def _has_section(text: str, word: str) -> bool:
    """A heading or a bold lead-in naming ``word`` (``## The question``, ``**Claim.**``)."""
    heading = rf"^\s*#{{1,6}}[^\n]*\b{word}"
    bold = rf"\*\*[^*\n]*\b{word}[^*\n]*\*\*"
    return (
        re.search(heading, text, re.I | re.M) is not None or re.search(bold, text, re.I) is not None
    )


def problems(folder: Path) -> list[str]:
    """Everything that keeps ``folder`` from being a complete experiment."""
    found = [f"missing {f}" for f in REQUIRED_FILES if not (folder / f).is_file()]
    if found:
        return found
    try:
        exp = load(folder)
    except ExperimentError as err:
        return [f"expected.toml does not load: {err}"]
    readme = (folder / "README.md").read_text()
    if not _has_section(readme, "question"):
        found.append("README has no question section (a heading or **Question.**)")
    if not _has_section(readme, "claim"):
        found.append("README has no claim section (a heading or **Claim.**)")
    if not FIGURE_LINK.search(readme):
        found.append("README does not show the figure: ![...](figure.png)")
    if not (folder / "figure.png").is_file():
        found.append("figure.png is missing: run `sandbox run NAME --full --publish`")
    found += [
        f"README still has the template placeholder <{p}>" for p in PLACEHOLDERS if p in readme
    ]
    for f in REQUIRED_FILES:
        if "TEMPLATE_NAME" in (folder / f).read_text():
            found.append(f"{f} still says TEMPLATE_NAME")
    for key in ("title", "question", "claim"):
        for p in META_PLACEHOLDERS[key]:
            if p in exp.meta[key]:
                found.append(f"expected.toml's {key} still has the template placeholder {p}")
    for c in exp.checks:
        if not c.reason.strip() or c.reason.lstrip().startswith("<"):
            found.append(f"the check of '{c.quantity}' has no reason")
        if not c.can_fail():
            lo, hi = c.feasible
            found.append(
                f"the check of '{c.quantity}' ({c.expected()}) cannot fail: every value in its "
                f"feasible range [{lo:g}, {hi:g}] passes"
            )
        if f"`{c.quantity}`" not in readme and c.quantity not in readme:
            found.append(f"README's table of checks does not mention '{c.quantity}'")
    found += [
        f"'{q}' is checked but is no literal key in experiment.py (an f-string key?)"
        for q in unquoted_quantities(folder, [c.quantity for c in exp.checks])
    ]
    found += _published_run_problems(folder, exp)
    return found


def unquoted_quantities(folder: Path, quantities: list[str]) -> list[str]:
    """The names in ``quantities`` that ``experiment.py`` never writes as a literal key.

    A literal key is a string constant that is a key of a dict display (``{"lam0": ...}``) or
    the subscript of an assignment (``out["lam0"] = ...``), so a search for the name finds the
    line that computes it; ``f"lam0_{kind}"`` is not one.
    """
    tree = ast.parse((folder / "experiment.py").read_text())
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys.update(k.value for k in node.keys if isinstance(k, ast.Constant))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.slice, ast.Constant):
                keys.add(node.slice.value)
    return sorted(set(quantities) - keys)


def _published_run_problems(folder: Path, exp: Experiment) -> list[str]:
    """The published full run (``--full --publish``) exists, passed its own checks, and still
    passes the current ones: a check added or a bound moved after the run was published leaves
    a results_full.json that no longer vouches for the README."""
    path = folder / "results_full.json"
    if not path.is_file():
        return ["results_full.json is missing: run `sandbox run NAME --full --publish`"]
    res = json.loads(path.read_text())
    if res.get("mode") != "full":
        return [f"results_full.json is from a {res.get('mode')!r} run, not a full one"]
    failed = [c["quantity"] for c in res.get("checks", []) if not c.get("passed")]
    if failed or not res.get("passed"):
        return [f"the published full run failed its checks: {', '.join(failed) or '?'}"]
    # the runner stores NaN as null and an infinity as "inf" / "-inf" (sandbox/runner.py)
    quantities = {
        k: math.nan if v is None else float(v) if v in ("inf", "-inf") else v
        for k, v in res.get("quantities", {}).items()
    }
    missing = [c.quantity for c in exp.checks if "full" in c.modes and c.quantity not in quantities]
    if missing:
        return [
            f"results_full.json predates the current checks (it has no {', '.join(missing)}): "
            "republish it"
        ]
    verdicts = evaluate(exp.checks, quantities, mode="full", name=folder.name)
    stale = [v.check.quantity for v in verdicts if not v.passed]
    if stale:
        return [f"results_full.json fails the current checks of {', '.join(stale)}: republish it"]
    return []


def test_there_are_experiments():
    assert DIRS, "experiments/ holds no experiment besides the template"


@pytest.mark.parametrize("folder", DIRS, ids=[d.name for d in DIRS])
def test_experiment_is_complete(folder):
    found = problems(folder)
    assert not found, f"experiments/{folder.name}:\n  - " + "\n  - ".join(found)


def test_the_template_is_a_valid_experiment():
    """``sandbox new`` copies it, so it must load (its name aside) with reasons on every check."""
    spec = tomllib.loads((TEMPLATE / "expected.toml").read_text())
    assert {"title", "question", "claim"} <= set(spec["experiment"])
    assert spec["check"] and all(len(c["reason"]) > 20 for c in spec["check"])
    assert PLACEHOLDERS, "the template README lost its <placeholders>; update this test"
    assert all(META_PLACEHOLDERS[k] for k in ("title", "question", "claim")), (
        "the template's expected.toml lost its <placeholders>; update this test"
    )
    assert FIGURE_LINK.search((TEMPLATE / "README.md").read_text())


def test_completeness_catches_what_is_missing(tmp_path):
    """The checker itself: a scaffold straight from the template is not complete."""
    folder = tmp_path / "scaffold"
    folder.mkdir()
    for f in REQUIRED_FILES:
        (folder / f).write_text((TEMPLATE / f).read_text().replace("TEMPLATE_NAME", "scaffold"))
    found = "\n".join(problems(folder))
    assert "figure.png is missing" in found
    assert "README still has the template placeholder" in found
    for key in ("title", "question", "claim"):
        assert f"expected.toml's {key} still has the template placeholder <" in found
    assert "results_full.json is missing" in found
    assert "cannot fail" not in found

    # a bound that the feasible range forces: log10 of a width ratio kept above 10.06 by the
    # sizes of the run cannot fall below 10, whatever the dynamics do
    toml = folder / "expected.toml"
    toml.write_text(
        toml.read_text()
        + '\n[[check]]\nquantity = "log10_width_ratio"\ngreater_than = 10.0\n'
        + "feasible = [10.06, inf]\n"
        + 'reason = "the sizes force it above 10.06: a check that cannot fail."\n'
        + '\n[[check]]\nquantity = "flip_fraction"\nat_least = 0.0\nat_most = 0.5\n'
        + 'feasible = [0, 1]\nreason = "half of the patterns at most: this one can fail."\n'
    )
    found = "\n".join(problems(folder))
    assert (
        "the check of 'log10_width_ratio' (> 10) cannot fail: every value in its feasible "
        "range [10.06, inf] passes" in found
    )
    assert "'flip_fraction'" in found and "'flip_fraction' (>= 0 and <= 0.5) cannot" not in found
    (folder / "README.md").write_text("# scaffold\n")
    found = "\n".join(problems(folder))
    assert "no question section" in found and "no claim section" in found
    assert "does not show the figure" in found


def test_a_checked_quantity_built_with_an_fstring_is_caught(tmp_path):
    """The literal-key rule itself: a scaffold passes it, the same key built by an f-string
    does not, though ``run()`` still returns the same dict."""
    folder = tmp_path / "scaffold"
    folder.mkdir()
    for f in REQUIRED_FILES:
        (folder / f).write_text((TEMPLATE / f).read_text().replace("TEMPLATE_NAME", "scaffold"))
    checked = [c.quantity for c in load(folder).checks]
    assert "final_loss_ratio" in checked
    assert unquoted_quantities(folder, checked) == []
    code = (folder / "experiment.py").read_text()
    literal = '"final_loss_ratio": ratio[-1],'
    assert literal in code, "the template lost its final_loss_ratio key; update this test"
    built = '**{f"final_{kind}_ratio": ratio[-1] for kind in ["loss"]},'
    (folder / "experiment.py").write_text(code.replace(literal, built))
    assert unquoted_quantities(folder, checked) == ["final_loss_ratio"]
    assert "'final_loss_ratio' is checked but is no literal key" in "\n".join(problems(folder))


def test_a_stale_published_run_is_caught(tmp_path):
    """A published full run vouches only for the checks it was judged by: one that lacks a
    quantity checked today, or whose value fails a bound moved since, asks to be republished."""
    folder = tmp_path / "credit_flow"
    shutil.copytree(
        ROOT / "experiments" / "credit_flow", folder, ignore=shutil.ignore_patterns("output")
    )
    assert not _published_run_problems(folder, load(folder))

    path = folder / "results_full.json"
    published = json.loads(path.read_text())
    value = published["quantities"].pop("log10_max_rel_diff_autodiff_W")
    path.write_text(json.dumps(published))
    (found,) = _published_run_problems(folder, load(folder))
    assert "predates the current checks (it has no log10_max_rel_diff_autodiff_W)" in found

    # the value is back, but the bound moved below it after the run was published
    published["quantities"]["log10_max_rel_diff_autodiff_W"] = value
    path.write_text(json.dumps(published))
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text().replace("less_than = -12.0", f"less_than = {value - 1}", 1))
    (found,) = _published_run_problems(folder, load(folder))
    assert "fails the current checks of log10_max_rel_diff_autodiff_W" in found

    # a NaN, which the runner stores as null, fails every bound: it is reported, not a crash
    published["quantities"]["log10_max_rel_diff_autodiff_W"] = None
    path.write_text(json.dumps(published))
    (found,) = _published_run_problems(folder, load(folder))
    assert "fails the current checks of log10_max_rel_diff_autodiff_W" in found
