"""One look for every figure, drawn headless.

Importing this module selects matplotlib's non-interactive Agg backend; figures
are rendered with :func:`png` and never shown (the tooling writes the bytes).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
}


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 4.0, height: float = 3.2, **kw):
    """``fig, axes`` with the sandbox style; each panel ``width x height`` inches."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", **kw
        )
    return fig, axes


def width_colors(n: int):
    """``n`` colours from light to dark, for curves ordered by width (or any size)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(0.85 * (1 - i / max(n - 1, 1))) for i in range(n)]


def png(fig) -> bytes:
    """The PNG bytes of ``fig`` in the sandbox style; the figure is closed."""
    buf = io.BytesIO()
    try:
        with plt.rc_context(STYLE):
            fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()
