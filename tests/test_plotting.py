"""Tests for shared.plotting: the figure helpers render headless and check their arguments."""

import numpy as np
import pytest

from shared import plotting


def test_subplots_png_and_colors():
    fig, axes = plotting.subplots(1, 2, width=2.0, height=1.5)
    assert axes.shape == (2,)
    np.testing.assert_allclose(fig.get_size_inches(), [4.0, 1.5])
    colors = plotting.width_colors(3)
    for ax in axes:
        for i, c in enumerate(colors):
            ax.plot([0, 1], [i, i + 1], color=c)
    out = plotting.png(fig)
    assert out.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(plotting.width_colors(0)) == 0 and len(plotting.width_colors(1)) == 1
    assert colors[0] != colors[-1]  # light to dark


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: plotting.subplots(0, 1), "nrows: expected > 0"),
        (lambda: plotting.subplots(1, -1), "ncols: expected > 0"),
        (lambda: plotting.subplots(1.5, 1), "nrows: expected an integer"),
        (lambda: plotting.subplots(1, 1, width=-1.0), "width: expected > 0"),
        (lambda: plotting.subplots(1, 1, height=float("nan")), "height: expected a finite"),
        # 1000 panels of 4 inches: 520 000 pixels at 130 dpi, beyond what Agg renders
        (lambda: plotting.subplots(1, 1000), "ncols, width: the figure would be 4000 inches"),
        (lambda: plotting.width_colors(-1), "n: expected >= 0"),
        (lambda: plotting.width_colors(2.5), "n: expected an integer"),
        (lambda: plotting.png(None), "fig: expected a matplotlib Figure, got NoneType"),
        (lambda: plotting.png(plotting.subplots()[1]), "fig: expected a matplotlib Figure"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
