"""Maximum-composite images (Brewster et al. 2015; paper Figures 7, 9, 15): the per-pixel maximum over
a set of frames, to see what a group of images has in common (salt or ice rings, anisotropy,
split spots…)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .io import Frame, FrameError, ImageError
from .io.geometry import Geometry


@dataclasses.dataclass
class Selection:
    """Which images of a results list go into a composite.

    d_range: (low, high) Å on ``resolution_key`` (d_min or d_mean); p_range: (low, high) on
    p_multilattice; index_range: (first, stop) positions in the results list (e.g. the first 20
    exposures); images without diffraction are never selected by d_range.
    """

    d_range: Optional[Tuple[float, float]] = None
    p_range: Optional[Tuple[float, float]] = None
    index_range: Optional[Tuple[int, int]] = None
    resolution_key: str = "d_min"

    def chosen(self, results: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
        out = []
        for position, result in enumerate(results):
            if result.get("error"):
                continue
            if self.index_range and not self.index_range[0] <= position < self.index_range[1]:
                continue
            if self.d_range:
                d = result.get(self.resolution_key)
                if d is None or not min(self.d_range) <= d <= max(self.d_range):
                    continue
            if self.p_range:
                p = result.get("p_multilattice")
                if p is None or not min(self.p_range) <= p <= max(self.p_range):
                    continue
            out.append(result)
        return out


def max_composite(frames: Iterable) -> Tuple[Frame, int]:
    """(composite frame, number of frames used): per-pixel maximum of the valid pixels; a pixel is
    masked only where it is invalid in every frame. Frames must share the detector shape; the
    geometry of the first is kept. FrameError items are skipped."""
    composite: Optional[np.ndarray] = None
    valid_anywhere: Optional[np.ndarray] = None
    first: Optional[Frame] = None
    used = 0
    for frame in frames:
        if isinstance(frame, FrameError):
            continue
        if first is None:
            first = frame
            composite = np.full(frame.pixels.shape, np.iinfo(np.int64).min, dtype=np.int64)
            valid_anywhere = np.zeros(frame.pixels.shape, dtype=bool)
        elif frame.pixels.shape != first.pixels.shape:
            raise ImageError(frame.source, f"image shape {frame.pixels.shape} differs from the first image's "
                                           f"{first.pixels.shape}: a composite needs one detector", frame.index)
        valid = ~frame.mask
        np.maximum(composite, np.where(valid, frame.pixels, np.iinfo(np.int64).min), out=composite)
        valid_anywhere |= valid
        used += 1
    if first is None:
        raise ImageError("composite", "no readable image selected")
    pixels = np.where(valid_anywhere, composite, -1).astype(np.int32)
    return Frame(pixels, ~valid_anywhere, first.geometry, source="max-composite", metadata={"n_frames": used}), used


def mean_resolution(results: Sequence[Dict[str, Any]], key: str = "d_min") -> Optional[float]:
    """Resolution (Å) of the mean 1/d of the results that have one."""
    values = [1.0 / r[key] for r in results if r.get(key)]
    return 1.0 / float(np.mean(values)) if values else None


def save_composite_png(frame: Frame, path: str, title: str = "", resolution: Optional[float] = None) -> None:
    """PNG of a composite in √counts (beam centre marked), with the mean resolution as a red dashed circle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from .conditioning import maxpool_sqrt

    g: Geometry = frame.geometry
    shown = maxpool_sqrt(frame.pixels, g.downsample, frame.mask)
    fig, ax = plt.subplots(figsize=(7, 7))
    top = max(1.0, float(np.percentile(shown, 99.7)))
    image = ax.imshow(shown, cmap="gray_r", vmin=0, vmax=top, interpolation="nearest")
    beam = (g.beam_centre[0] / g.downsample, g.beam_centre[1] / g.downsample)
    ax.plot(*beam, "+", color="tab:blue", markersize=10)
    if resolution and g.faces_beam:  # on a swung detector a resolution is no circle about the beam
        radius = g.radius_at(resolution)
        if radius is not None and math.isfinite(radius):
            ax.add_patch(Circle(beam, radius / g.downsample, fill=False, color="red", linestyle="--", linewidth=1.2,
                                label=f"mean XRAIS resolution {resolution:.2f} Å"))
            ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.7, label=f"√counts ({g.downsample}×{g.downsample} max-pool)")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
