"""Where each file of the repository lives in the site, and the links between pages.

The site is read from disk (``file://``) as well as from a web server, so every link is
relative and names a file: ``experiments/gram_matrix/`` becomes
``experiments/gram_matrix/index.html``. A link to a repository file that is not part of the
site (``experiment.py``, ``shared/``) goes to the repository's web view when the build has a
``repo_url``, and is dropped (its text kept) when it has none.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ASSETS = ("figure.png", "results_full.json", "calibration.json")  # copied beside a page


@dataclass
class SiteMap:
    """Repository paths to site paths (both POSIX, relative to their roots).

    ``pages`` maps a repository file rendered as a page to its HTML path;
    ``assets`` collects the repository files that pages link to and the build copies;
    ``broken`` collects links whose target exists nowhere, as ``(source, href)``.
    """

    root: Path
    pages: dict[str, str]
    repo_url: str | None = None
    assets: dict[str, str] = field(default_factory=dict)
    broken: list[tuple[str, str]] = field(default_factory=list)

    def target(self, rel: str) -> str | None:
        """The site path of repository path ``rel`` (a file or a folder), or ``None``."""
        rel = rel.rstrip("/")
        if rel in self.pages:
            return self.pages[rel]
        readme = f"{rel}/README.md" if rel else "README.md"
        if (self.root / rel).is_dir() and readme in self.pages:
            return self.pages[readme]
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == "experiments" and parts[2] in ASSETS:
            if f"experiments/{parts[1]}/README.md" in self.pages and (self.root / rel).is_file():
                self.assets[rel] = rel
                return rel
        return None

    def rewrite(self, href: str, *, source: str, page: str) -> str | None:
        """``href`` as written in repository file ``source``, as a link from site page ``page``.

        External links and in-page anchors are kept; ``None`` means "no link" (text only).
        """
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("#", "mailto:")) or not parts.path:
            return href
        base = posixpath.dirname(source)
        rel = posixpath.normpath(posixpath.join(base, unquote(parts.path)))
        if rel == ".":
            rel = ""
        if rel.startswith("../"):
            self.broken.append((source, href))
            return None
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        site = self.target(rel)
        if site is not None:
            return relative(site, page) + fragment
        if not (self.root / rel).exists():
            self.broken.append((source, href))
            return None
        if self.repo_url:
            return f"{self.repo_url.rstrip('/')}/{rel}{fragment}"
        return None


def relative(target: str, page: str) -> str:
    """The relative URL of site path ``target`` from site page ``page``."""
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


def up(page: str) -> str:
    """The prefix from ``page`` back to the site's root: ``""``, ``"../"``, ``"../../"``."""
    return "../" * page.count("/")
