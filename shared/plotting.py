"""One look for every figure, drawn headless.

Importing this module selects matplotlib's non-interactive Agg backend; figures
are rendered with :func:`png` and never shown (the tooling writes the bytes).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from shared import _validate as v

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


# Agg renders images below 2^16 pixels along each side
_MAX_PIXELS = 2**16


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 4.0, height: float = 3.2, **kw):
    """``fig, axes`` with the sandbox style; each panel ``width x height`` inches.

    The whole figure must stay below 65536 pixels along each side at the saved
    resolution (``STYLE["savefig.dpi"]``), the most :func:`png` can render.
    """
    v.positive("nrows", nrows, integer=True)
    v.positive("ncols", ncols, integer=True)
    v.positive("width", width)
    v.positive("height", height)
    dpi = max(STYLE["figure.dpi"], STYLE["savefig.dpi"])
    for names, inches in (("ncols, width", width * ncols), ("nrows, height", height * nrows)):
        if inches * dpi >= _MAX_PIXELS:
            raise ValueError(
                f"{names}: the figure would be {inches:g} inches, {inches * dpi:.0f} pixels at "
                f"{dpi} dpi; png() renders fewer than {_MAX_PIXELS} pixels along each side"
            )
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", **kw
        )
    return fig, axes


def width_colors(n: int):
    """``n >= 0`` colours from light to dark, for curves ordered by width (or any size)."""
    v.positive("n", n, integer=True, allow_zero=True)
    cmap = plt.get_cmap("viridis")
    return [cmap(0.85 * (1 - i / max(n - 1, 1))) for i in range(n)]


def png(fig) -> bytes:
    """The PNG bytes of the matplotlib ``Figure`` ``fig`` in the sandbox style; it is closed."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    try:
        with plt.rc_context(STYLE):
            fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()
