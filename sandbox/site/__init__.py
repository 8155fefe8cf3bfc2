"""``sandbox site``: a static HTML gallery of the sandbox, readable without a server.

- ``index.html``: one card per experiment (thumbnail, question, claim and source, the
  published run's verdicts, calibration status, the command to run it);
- ``experiments/NAME/index.html``: the README, the full-size figure, every check with its
  reason, the published full-mode measurement and the calibrated range across seeds;
- ``discussions/``: the notes, and the notebooks executed at build time;
- ``reproductions.html``: every check's status in the latest several-seed runs.

Needs the ``site`` extra (markdown-it-py, Jinja2, nbconvert, nbclient, a kernel).
"""

from sandbox.site.build import SiteReport, build_site

__all__ = ["SiteReport", "build_site"]
