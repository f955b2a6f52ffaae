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


def save_montage(images: np.ndarray, labels: dict, path: str, columns: int = 5, title: str = "") -> None:
    """PNG montage of conditioned training quadrants like the paper's Figures 2–3: each panel in
    √photons with the beam at the top-left corner, the resolution label as a red dashed circle,
    and a caption (resolution, lattices, distance, detector).

    images: (n, 512, 512); labels: columns (arrays of length n) as stored in the dataset shards.
    """
    from matplotlib.patches import Circle

    from .io.geometry import Geometry

    plt = _pyplot()
    n = len(images)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        image = np.asarray(images[k], dtype=float)
        top = max(1.0, float(np.percentile(image, 99.5)))
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=top, interpolation="nearest")
        resolution = float(labels["resolution"][k])
        caption = f"{resolution:.2f} Å" if np.isfinite(resolution) and not labels["blank"][k] else "blank"
        if "n_lattices" in labels and labels["n_lattices"][k] > 1:
            caption += f", {int(labels['n_lattices'][k])} lattices"
        caption += f"\n{float(labels['distance'][k]):.0f} mm, {labels['detector'][k]}"
        if caption.split(",")[0] != "blank" and np.isfinite(resolution):
            geometry = Geometry(distance=float(labels["distance"][k]), wavelength=float(labels["wavelength"][k]),
                                pixel_size=float(labels["pixel_size"][k]), beam_centre=(0, 0), shape=(1, 1))
            radius = geometry.radius_at(resolution) / float(labels["downsample"][k])
            if np.isfinite(radius):
                ax.add_patch(Circle((0, 0), radius, fill=False, color="red", linestyle="--", linewidth=1.0))
        ax.set_xlim(0, image.shape[1])
        ax.set_ylim(image.shape[0], 0)
        ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: Colours of the lattices in :func:`save_lattice_png` (first, second, third lattice).
LATTICE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def save_lattice_png(pixels: np.ndarray, mask: np.ndarray, spots, indexing, path: str, title: str = "") -> None:
    """PNG of a frame (√counts, grey) with its spots drawn as circles coloured by the lattice that
    indexes them (:data:`LATTICE_COLOURS`), unindexed ones in black, those on ice rings that no
    lattice indexes as grey squares, and a legend with each lattice's spots and cell: why a frame
    was called multi-lattice.

    spots: the frame's :class:`xrais.spotfinder.SpotList`; indexing: the
    :class:`xrais.lattice.IndexingResult` of those spots (:func:`xrais.lattice.index_spots`: it holds
    the spots of ``indexing.kept``, all but the ice-ring ones no lattice indexes).
    """
    plt = _pyplot()
    shown = np.sqrt(np.clip(np.where(mask, 0.0, np.asarray(pixels, float)), 0.0, None))
    top = max(1.0, float(np.percentile(shown[~mask], 99.8))) if (~mask).any() else 1.0
    fig, ax = plt.subplots(figsize=(8.5, 8.5))
    ax.imshow(shown, cmap="gray_r", vmin=0.0, vmax=top, interpolation="nearest")
    off_ice = np.ones(len(spots.fast), bool) if indexing.kept is None else np.asarray(indexing.kept, bool)
    fast, slow = np.asarray(spots.fast)[off_ice], np.asarray(spots.slow)[off_ice]
    claimed = np.zeros(len(fast), bool)
    marker = dict(s=60, facecolors="none", linewidths=1.0)
    for number, lattice in enumerate(indexing.lattices):
        mine = lattice.indexed & ~claimed
        claimed |= lattice.indexed
        cell = ", ".join(f"{v:.1f}" for v in lattice.cell[:3]) + " Å"
        ax.scatter(fast[mine], slow[mine], edgecolors=LATTICE_COLOURS[number % len(LATTICE_COLOURS)],
                   label=f"lattice {number + 1}: {int(mine.sum())} spots, cell {cell}", **marker)
    ax.scatter(fast[~claimed], slow[~claimed], edgecolors="black", label=f"unindexed: {int((~claimed).sum())} spots",
               **marker)
    on_ice = ~off_ice
    if on_ice.any():
        ax.scatter(np.asarray(spots.fast)[on_ice], np.asarray(spots.slow)[on_ice], marker="s", edgecolors="grey",
                   label=f"on ice rings (not indexed): {int(on_ice.sum())}", **marker)
    ax.set_xlim(0, shown.shape[1])
    ax.set_ylim(shown.shape[0], 0)
    ax.set_xlabel("fast (pixels)")
    ax.set_ylabel("slow (pixels)")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
