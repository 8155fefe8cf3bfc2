"""Build the static site: gallery, experiment pages, notes, notebooks, reproductions.

The site reads only what the repository publishes (each experiment's ``expected.toml``,
``README.md``, ``figure.png``, ``results_full.json`` and, when present, ``calibration.json``;
the notes in ``discussions/``), so a build takes seconds plus the notebooks' own run time.
Every link is relative and names a file, so the folder reads the same from disk (``file://``)
as from a web server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import ExperimentError
from sandbox.notebooks import execute, notebook_paths
from sandbox.registry import discover
from sandbox.site import render
from sandbox.site.links import SiteMap, up
from sandbox.site.records import load_record, quantities_table

MARKER = ".sandbox-site"  # marks a folder this command built, so a rebuild may replace it
TEMPLATES = Path(__file__).parent / "templates"
THUMB_SCALE = 0.25  # published figures are ~1500 px wide; cards show them ~350 px wide


@dataclass
class SiteReport:
    out: Path
    pages: list[str]
    seconds: float
    bytes: int
    notebook_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        nbs = ", ".join(f"{k} {v:.1f} s" for k, v in self.notebook_seconds.items())
        return (
            f"built {len(self.pages)} pages in {self.seconds:.1f} s, "
            f"{self.bytes / 1e6:.1f} MB, in {self.out}" + (f"; notebooks: {nbs}" if nbs else "")
        )


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _commit(root: Path) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _page_map(root: Path, exps, notes: list[Path]) -> dict[str, str]:
    pages = {"README.md": "about.html", "CONTRIBUTING.md": "contributing.html"}
    pages = {k: v for k, v in pages.items() if (root / k).is_file()}
    if (root / "experiments" / "README.md").is_file():
        pages["experiments/README.md"] = "experiments/index.html"
    for e in exps:
        pages[f"experiments/{e.name}/README.md"] = f"experiments/{e.name}/index.html"
    if (root / "discussions" / "README.md").is_file():
        pages["discussions/README.md"] = "discussions/index.html"
    for p in notes:
        pages[f"discussions/{p.name}"] = f"discussions/{p.stem}.html"
    return pages


def _run_notebooks(paths: list[Path], jobs: int, log) -> dict[Path, tuple]:
    """Execute every notebook (``jobs`` kernels at a time); a failing cell fails the build."""

    def one(path):
        try:
            nb, seconds, _ = execute(path)
        except Exception as err:  # nbclient's CellExecutionError, a dead kernel, a timeout
            msg = f"notebook {path.name} failed while building the site:\n{err}"
            raise ExperimentError(msg) from err
        log(f"  executed {path.name} in {seconds:.1f} s")
        return path, (nb, seconds)

    with ThreadPoolExecutor(jobs) as pool:
        return dict(pool.map(one, paths))


def _replace(out: Path, built: Path) -> None:
    """Move the finished build to ``out``, replacing only an earlier build (or an empty folder)."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file()):
            raise ExperimentError(
                f"--out {out}: exists and is not a site this command built; "
                "choose another folder or empty it"
            )
        shutil.rmtree(out)
    built.rename(out)


def build_site(
    root: Path,
    out: Path,
    *,
    run: bool = False,
    execute_notebooks: bool = True,
    repo_url: str | None = None,
    jobs: int = 2,
    log=print,
) -> SiteReport:
    """Build the site of the sandbox at ``root`` into the folder ``out``.

    With ``run``, every experiment is first re-run in full mode and published
    (``sandbox run --all --full --publish``). With ``execute_notebooks=False`` the
    notebooks are rendered without outputs (a quick preview). ``repo_url`` (e.g.
    ``https://github.com/OWNER/REPO/blob/COMMIT``) is where links to repository files that
    are not pages of the site (``experiment.py``, ``shared/``) point; without it they are text.
    """
    start = time.perf_counter()
    if jobs < 1:
        raise ExperimentError(
            f"--jobs: expected a positive number of notebooks at once, got {jobs}"
        )
    root, out = Path(root).resolve(), Path(out).resolve()
    if root == out or root.is_relative_to(out):
        raise ExperimentError(f"--out {out}: would replace the sandbox itself")
    if run:
        from sandbox.cli import main as cli_main

        log("re-running every experiment in full mode (sandbox run --all --full --publish)")
        if cli_main(["--root", str(root), "run", "--all", "--full", "--publish"]) == 2:
            raise ExperimentError("re-running the experiments failed; the site was not built")

    exps = discover(root)
    records = [load_record(e) for e in exps]
    discussions = root / "discussions"
    md_notes = sorted(p for p in discussions.glob("*.md") if p.name != "README.md")
    notebooks = notebook_paths(root) if discussions.is_dir() else []
    sitemap = SiteMap(root, _page_map(root, exps, [*md_notes, *notebooks]), repo_url=repo_url)
    env = _environment()
    commit = _commit(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    written: list[str] = []

    def write(page: str, template: str, **context) -> None:
        html = env.get_template(template).render(root=up(page), commit=commit, **context)
        (tmp / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp / page).write_text(html, encoding="utf-8")
        written.append(page)

    def markdown_page(source: str, page: str, section: str, **extra) -> str:
        body, title = render.markdown(
            (root / source).read_text(), sitemap, source=source, page=page
        )
        write(page, "page.html", title=title or source, body=body, section=section, **extra)
        return title

    try:
        ran = _run_notebooks(notebooks, jobs, log) if execute_notebooks else {}

        write("index.html", "index.html", title="Gallery", section="gallery", experiments=records)
        for rec in records:
            page = f"experiments/{rec.name}/index.html"
            source = f"experiments/{rec.name}/README.md"
            readme, _ = render.markdown(
                (root / source).read_text(), sitemap, source=source, page=page
            )
            files = ["README.md", "experiment.py", "expected.toml", "results_full.json"]
            files += ["calibration.json"] if rec.calibration is not None else []
            links = [
                (f, href)
                for f in files
                if (rec.exp.path / f).is_file()
                and (href := sitemap.rewrite(f, source=source, page=page)) is not None
                and f != "README.md"
            ]
            write(
                page,
                "experiment.html",
                title=rec.name,
                section="gallery",
                r=rec,
                readme=readme,
                links=links,
                quantities=quantities_table(rec.results),
            )
            sitemap.target(f"experiments/{rec.name}/figure.png")  # the page shows it
            _thumbnail(rec.exp.path / "figure.png", tmp / "experiments" / rec.name / "thumb.png")

        write(
            "reproductions.html",
            "reproductions.html",
            title="Reproductions",
            section="reproductions",
            experiments=records,
            totals=_totals(records),
        )
        for source, page, section in [
            ("README.md", "about.html", "about"),
            ("CONTRIBUTING.md", "contributing.html", "contributing"),
            ("experiments/README.md", "experiments/index.html", "gallery"),
            ("discussions/README.md", "discussions/index.html", "notes"),
        ]:
            if source in sitemap.pages:
                markdown_page(source, page, section, crumbs=[], notice="", kind="note")
        notes_crumb = [("Notes", "index.html")]
        for p in md_notes:
            source = f"discussions/{p.name}"
            markdown_page(
                source, sitemap.pages[source], "notes", crumbs=notes_crumb, notice="", kind="note"
            )
        notebook_seconds = {}
        for p in notebooks:
            source, page = f"discussions/{p.name}", sitemap.pages[f"discussions/{p.name}"]
            if p in ran:
                nb, seconds = ran[p]
                notebook_seconds[p.name] = seconds
                notice = f"A notebook, executed when this site was built ({seconds:.1f} s)."
            else:
                import nbformat

                nb = nbformat.read(p, as_version=4)
                notice = "A notebook, shown without outputs: this build did not execute it."
            href = sitemap.repo_url and sitemap.rewrite(p.name, source=source, page=page)
            if href and href.startswith("http"):
                notice += f' <a href="{href}">Source</a>.'
            notice += f" Run it yourself: open <code>discussions/{p.name}</code> in Jupyter."
            body, title = render.notebook(nb, sitemap, source=source, page=page)
            write(
                page,
                "page.html",
                title=title or p.stem,
                body=body,
                section="notes",
                crumbs=notes_crumb,
                notice=notice,
                kind="notebook",
            )

        if sitemap.broken:
            lines = "\n".join(f"  {src}: {href}" for src, href in sitemap.broken)
            raise ExperimentError(f"links to files that do not exist:\n{lines}")
        for rel, site in sitemap.assets.items():
            (tmp / site).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, tmp / site)
        (tmp / "style.css").write_text(
            (TEMPLATES / "style.css").read_text() + "\n" + render.pygments_css() + "\n"
        )
        (tmp / MARKER).write_text("built by `sandbox site`; a rebuild replaces this folder\n")
        _replace(out, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return SiteReport(out, written, time.perf_counter() - start, size, notebook_seconds)


def _thumbnail(figure: Path, dest: Path) -> None:
    from PIL import Image  # Pillow, a dependency of matplotlib

    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(figure) as im:
        im.thumbnail((round(im.width * THUMB_SCALE), round(im.height * THUMB_SCALE)))
        im.save(dest)


def _totals(records) -> dict:
    rows = [row for r in records for row in r.rows]
    statuses = [c.status for row in rows for c in row.calibration.values()]
    calibrated = sum(r.calibration is not None for r in records)
    return {
        "checks": len(rows),
        "experiments": len(records),
        "calibrated": calibrated,
        "uncalibrated": len(records) - calibrated,
        "failing": statuses.count("fail"),
        "stale": statuses.count("stale") + statuses.count("missing"),
    }
