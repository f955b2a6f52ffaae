"""Image conditioning (paper section 2.2, Figure 4): frame → four 512×512 quadrants.

Each quadrant is a block of N×N raw pixels per output pixel (N = the detector's ``downsample``):
the maximum of the valid pixels in the block (masked pixels never win; values below 0 count as 0),
then the square root, then floor. Quadrants are cut at the pixel boundary nearest the beam centre
and flipped so that the beam centre sits at the outer corner of output pixel (0, 0) of every
quadrant; where the detector ends the quadrant is zero-padded.

Quadrant order (index: slow direction, fast direction away from the beam):
0: (−, −) the "upper-left" quadrant the paper trains on; 1: (−, +); 2: (+, −); 3: (+, +).
"""
from __future__ import annotations

import functools
import math
from typing import Iterable, NamedTuple, Optional, Sequence, Union

import numba
import numpy as np

from .io.errors import UnsupportedGeometryError
from .io.geometry import Geometry

QUADRANT_SIZE = 512
QUADRANT_DIRECTIONS = ((-1, -1), (-1, +1), (+1, -1), (+1, +1))
ALL_QUADRANTS = (0, 1, 2, 3)


class QuadrantRegion(NamedTuple):
    """Raw-pixel footprint of one quadrant.

    start: (slow, fast) index of the raw pixel at the beam corner of output pixel (0, 0);
    step: (slow, fast) direction (+1/−1) away from the beam; factor: block edge (pixels);
    size: output edge (pixels).
    """

    start: tuple
    step: tuple
    factor: int
    size: int = QUADRANT_SIZE

    def raw_index(self, out_slow, out_fast):
        """Raw (slow, fast) pixel indices of the first pixel of output block (out_slow, out_fast)."""
        return (self.start[0] + self.step[0] * np.asarray(out_slow) * self.factor,
                self.start[1] + self.step[1] * np.asarray(out_fast) * self.factor)

    def spans(self, shape):
        """Per axis (slow, fast): (slice of the raw image covered, number of output-order raw
        rows/columns of zero padding before the covered part), clipped to an image of ``shape``."""
        extent = self.size * self.factor
        out = []
        for start, step, n in zip(self.start, self.step, shape):
            if step > 0:
                lead, lo, hi = max(0, -start), max(0, start), min(n, start + extent)
            else:
                lead, lo, hi = max(0, start - (n - 1)), max(0, start - extent + 1), min(n, start + 1)
            hi = max(lo, hi)
            if lead >= extent:
                lo = hi = 0
                lead = extent
            out.append((slice(lo, hi), lead))
        return tuple(out)


def beam_split(geometry: Geometry):
    """Raw pixel boundary (slow, fast) nearest the beam centre: where quadrants meet."""
    beam_fast, beam_slow = geometry.beam_centre
    return int(math.floor(beam_slow + 0.5)), int(math.floor(beam_fast + 0.5))


def quadrant_region(geometry: Geometry, quadrant: int, factor: Optional[int] = None) -> QuadrantRegion:
    """Raw-pixel footprint of quadrant ``quadrant`` (0–3) of an image with this geometry."""
    split_slow, split_fast = beam_split(geometry)
    step_slow, step_fast = QUADRANT_DIRECTIONS[quadrant]
    start = (split_slow if step_slow > 0 else split_slow - 1, split_fast if step_fast > 0 else split_fast - 1)
    return QuadrantRegion(start, (step_slow, step_fast), int(factor or geometry.downsample))


def quadrant_extent(geometry: Geometry, quadrant: int, factor: Optional[int] = None):
    """Output pixels (slow, fast) of quadrant ``quadrant`` that hold image data, the rest of its
    512×512 being zero padding beyond the detector's edge."""
    region = quadrant_region(geometry, quadrant, factor)
    (rows, _), (cols, _) = region.spans(geometry.shape)
    return (-(-(rows.stop - rows.start) // region.factor), -(-(cols.stop - cols.start) // region.factor))


def beam_offset_in_quadrant(geometry: Geometry, quadrant: int, factor: Optional[int] = None):
    """Position (slow, fast) of the beam centre in the quadrant's output pixels, measured from the
    outer corner of output pixel (0, 0) (within ±0.5 raw pixel of that corner, by construction)."""
    region = quadrant_region(geometry, quadrant, factor)
    split_slow, split_fast = beam_split(geometry)
    beam_fast, beam_slow = geometry.beam_centre
    return (region.step[0] * (beam_slow - split_slow) / region.factor,
            region.step[1] * (beam_fast - split_fast) / region.factor)


# --------------------------------------------------------------------------------------------
# NumPy/numba path (CPU)
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True, boundscheck=False)  # IEEE selects: NaN pixels read 0
def _block_max(pixels, mask, use_mask, s0, f0, ds, df, factor, size, out):
    """out[i, j] = floor(sqrt(max(0, max over valid pixels of the block))) for one quadrant.

    Rows are max-reduced in raw (ascending) column order into a buffer — contiguous, so it
    vectorises — then the buffer is pooled along the quadrant's own direction.
    """
    ns, nf = pixels.shape
    out[:, :] = 0.0
    extent = size * factor
    if df > 0:
        c_lo, c_hi = max(0, f0), min(nf, f0 + extent)
    else:
        c_lo, c_hi = max(0, f0 - extent + 1), min(nf, f0 + 1)
    if c_hi <= c_lo:
        return
    width = c_hi - c_lo
    row_max = np.zeros(width, dtype=pixels.dtype)
    zero = pixels.dtype.type(0)
    for i in range(size):
        row_max[:] = 0
        touched = False
        for a in range(factor):
            s = s0 + ds * (i * factor + a)
            if s < 0 or s >= ns:
                continue
            touched = True
            row = pixels[s, c_lo:c_hi]
            if use_mask:  # selects, not a short-circuit `and`: the loop vectorises (1.7× faster)
                mask_row = mask[s, c_lo:c_hi]
                for c in range(width):
                    v = row[c]
                    v = v if v > zero else zero  # negative or NaN: 0
                    v = zero if mask_row[c] else v
                    row_max[c] = max(row_max[c], v)
            else:
                for c in range(width):
                    v = row[c]
                    row_max[c] = max(row_max[c], v if v > zero else zero)
        if not touched:
            continue
        for j in range(size):
            best = 0.0
            for b in range(factor):
                f = f0 + df * (j * factor + b)
                if c_lo <= f < c_hi:
                    best = max(best, row_max[f - c_lo])
            out[i, j] = np.floor(math.sqrt(best))  # float: √inf stays inf (an int overflowed)


@numba.njit(cache=True, nogil=True)
def _maxpool_sqrt(pixels, mask, use_mask, factor, out):
    ns, nf = pixels.shape
    out[:, :] = 0.0
    for s in range(ns):
        i = s // factor
        for f in range(nf):
            if use_mask and mask[s, f]:
                continue
            v = pixels[s, f]
            j = f // factor
            if v > out[i, j]:
                out[i, j] = v
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.floor(math.sqrt(out[i, j]))


def _as_kernel_input(pixels, mask):
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D (slow, fast) array, got shape {pixels.shape}")
    if pixels.dtype.kind not in "iuf":
        raise ValueError(f"pixels must be numeric, got dtype {pixels.dtype}")
    if pixels.dtype.kind == "f" and pixels.dtype != np.float64:
        pixels = pixels.astype(np.float32, copy=False)
    if mask is None:
        return pixels, np.zeros((1, 1), dtype=np.bool_), False
    mask = np.asarray(mask, dtype=np.bool_)
    if mask.shape != pixels.shape:
        raise ValueError(f"mask shape {mask.shape} differs from pixels shape {pixels.shape}")
    return pixels, mask, True


def maxpool_sqrt(pixels, factor: int, mask=None) -> np.ndarray:
    """The block operation alone: N×N max-pool (masked pixels never win, values < 0 count as 0),
    square root, floor. Returns float32 (ceil(slow/N), ceil(fast/N)); blocks are aligned with
    pixel (0, 0)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    pixels, mask_arr, use_mask = _as_kernel_input(pixels, mask)
    out = np.empty((-(-pixels.shape[0] // factor), -(-pixels.shape[1] // factor)), dtype=np.float32)
    _maxpool_sqrt(pixels, mask_arr, use_mask, factor, out)
    return out


def _quadrant_list(quadrants) -> Sequence[int]:
    if quadrants is None:
        return ALL_QUADRANTS
    if isinstance(quadrants, (int, np.integer)):
        quadrants = (int(quadrants),)
    quadrants = tuple(int(q) for q in quadrants)
    for q in quadrants:
        if q not in ALL_QUADRANTS:
            raise ValueError(f"quadrant must be 0, 1, 2 or 3, got {q}")
    return quadrants


def condition(pixels, mask, geometry: Geometry, quadrants: Union[None, int, Iterable[int]] = None,
              factor: Optional[int] = None, out: Optional[np.ndarray] = None, origin=(0, 0)):
    """Condition one image into quadrants: float32 array (len(quadrants), 512, 512).

    pixels: (slow, fast) counts (NumPy array, or a torch tensor on any device: then the result is
    a tensor on that device); mask: True where invalid, or None; geometry: supplies the beam centre
    and the downsample factor (``factor`` overrides it); quadrants: None for all four (0–3), an
    int, or a sequence of quadrant indices; origin: (slow, fast) detector pixel of ``pixels[0, 0]``
    when the array holds only part of the detector (NumPy arrays only; pixels beyond it count as 0).
    """
    _require_quadrants(geometry)
    if _is_tensor(pixels):
        if tuple(origin) != (0, 0):
            raise ValueError("origin is supported for NumPy arrays only")
        return condition_batch([pixels], [mask], [geometry], quadrants, factor)[0]
    quads = _quadrant_list(quadrants)
    pixels, mask_arr, use_mask = _as_kernel_input(pixels, mask)
    if out is None:
        out = np.empty((len(quads), QUADRANT_SIZE, QUADRANT_SIZE), dtype=np.float32)
    for k, q in enumerate(quads):
        region = quadrant_region(geometry, q, factor)
        _block_max(pixels, mask_arr, use_mask, region.start[0] - origin[0], region.start[1] - origin[1], region.step[0],
                   region.step[1], region.factor, QUADRANT_SIZE, out[k])
    return out


def _require_quadrants(geometry: Geometry) -> None:
    if not geometry.faces_beam:
        raise UnsupportedGeometryError(
            f"the detector is tilted {geometry.tilt_deg:.1f}° to the beam (a 2θ arm): it has no beam-centred quadrants "
            "to condition (xrais.conditioning.condition_whole conditions its whole frame)")


def condition_whole(pixels, mask, geometry: Geometry, factor: Optional[int] = None) -> np.ndarray:
    """The whole frame conditioned as a quadrant is (N×N max-pool of the valid pixels, √, floor),
    the blocks counted from pixel (0, 0): float32 (⌈slow/N⌉, ⌈fast/N⌉). For a detector that does
    not face the beam (a swung one), which has no beam-centred quadrants; the 1/d of each block is
    :func:`whole_inverse_d`."""
    factor = int(factor or geometry.downsample)
    pixels, mask_arr, use_mask = _as_kernel_input(pixels, mask)
    rows, cols = -(-pixels.shape[0] // factor), -(-pixels.shape[1] // factor)
    out = np.empty((max(rows, cols), max(rows, cols)), dtype=np.float32)
    _block_max(pixels, mask_arr, use_mask, 0, 0, 1, 1, factor, out.shape[0], out)
    return np.ascontiguousarray(out[:rows, :cols])


@functools.lru_cache(maxsize=8)
def whole_inverse_d(geometry: Geometry, factor: Optional[int] = None) -> np.ndarray:
    """float64 1/d (Å⁻¹) at the centre of each block of :func:`condition_whole`, from the geometry's
    detector of any orientation (:meth:`~xrais.io.geometry.Geometry.inverse_d_at_pixel`); read-only,
    cached per geometry (a series' frames share one)."""
    factor = int(factor or geometry.downsample)
    rows, cols = -(-geometry.shape[0] // factor), -(-geometry.shape[1] // factor)
    slow = np.minimum((np.arange(rows) + 0.5) * factor, geometry.shape[0])
    fast = np.minimum((np.arange(cols) + 0.5) * factor, geometry.shape[1])
    inverse_d = geometry.inverse_d_at_pixel(fast[None, :], slow[:, None])
    inverse_d.setflags(write=False)
    return inverse_d


# --------------------------------------------------------------------------------------------
# torch path (CPU or GPU tensors, batches)
# --------------------------------------------------------------------------------------------
def _is_tensor(value) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(value, torch.Tensor)


def _torch_if_loaded():
    import sys

    return sys.modules.get("torch")


def condition_batch(pixels_list, masks, geometries, quadrants=None, factor: Optional[int] = None, device=None):
    """Condition a batch of images with torch (on ``device``, default: where the pixels are).

    Returns a float32 tensor (batch, len(quadrants), 512, 512). Same result as :func:`condition`.
    """
    import torch
    import torch.nn.functional as F

    quads = _quadrant_list(quadrants)
    results = []
    for pixels, mask, geometry in zip(pixels_list, masks, geometries):
        _require_quadrants(geometry)
        tensor = torch.as_tensor(pixels, device=device)
        if device is None:
            device = tensor.device
        tensor = torch.nan_to_num(tensor.to(device=device, dtype=torch.float32), nan=0.0)
        if mask is not None:
            tensor = tensor.masked_fill(torch.as_tensor(mask, device=device, dtype=torch.bool), 0.0)
        tensor = tensor.clamp_(min=0.0)
        per_frame = []
        for q in quads:
            region = quadrant_region(geometry, q, factor)
            n = region.factor
            (rows, lead_s), (cols, lead_f) = region.spans(tensor.shape)
            block = tensor[rows, cols]
            flips = [axis for axis, step in enumerate(region.step) if step < 0]
            if flips:
                block = torch.flip(block, dims=flips)
            extent = QUADRANT_SIZE * n
            block = F.pad(block, (lead_f, extent - lead_f - block.shape[1], lead_s, extent - lead_s - block.shape[0]))
            pooled = F.max_pool2d(block[None, None], kernel_size=n, stride=n)[0, 0]
            per_frame.append(torch.floor(torch.sqrt(pooled)))
        results.append(torch.stack(per_frame))
    return torch.stack(results)


def condition_frame(frame, quadrants=None, factor: Optional[int] = None):
    """:func:`condition` of an :class:`xrais.io.Frame`."""
    return condition(frame.pixels, frame.mask, frame.geometry, quadrants=quadrants, factor=factor)
