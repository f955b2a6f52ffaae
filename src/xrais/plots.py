"""Figures: conditioned quadrants, montages (matplotlib, no display needed)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


QUADRANT_TITLES = ("quadrant 0 (−slow, −fast)", "quadrant 1 (−slow, +fast)", "quadrant 2 (+slow, −fast)",
                   "quadrant 3 (+slow, +fast)")


def save_quadrants_png(quadrants: np.ndarray, path: str, title: str = "", indices: Optional[Sequence[int]] = None,
                       vmax: Optional[float] = None) -> None:
    """PNG of conditioned quadrants (√photons, beam at the top-left corner of each panel)."""
    plt = _pyplot()
    quadrants = np.asarray(quadrants)
    indices = list(indices) if indices is not None else list(range(len(quadrants)))
    n = len(quadrants)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    top = vmax if vmax is not None else max(1.0, float(np.percentile(quadrants, 99.9)))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        image = ax.imshow(quadrants[k], cmap="gray_r", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(QUADRANT_TITLES[indices[k]], fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="√photons")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
