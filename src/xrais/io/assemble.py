"""Multi-panel detectors → one flat 2-D image in the lab frame.

Each panel is described in the lab frame (mm, sample at the origin) by the position of the outer
corner of its pixel (0, 0) and its fast and slow unit axes (the DIALS/dxtbx panel convention).
The panels are projected from the sample onto a virtual flat detector perpendicular to the beam,
at the panels' mean along-beam distance, with the panels' (smallest) pixel size. Every virtual
pixel takes the value of the panel pixel that the ray through its centre hits (nearest-pixel
sampling), so each virtual pixel keeps its true scattering angle; virtual pixels that no panel
covers (gaps) or whose panel pixel is invalid are masked; where panels overlap, the first one wins.
The beam centre is where the beam meets the virtual plane.

The virtual image is oriented like the group of panels (axes within 10°) that holds the most
pixels: for JUNGFRAU or EIGER modules, like every module; among equal groups (CS-PAD's four
quadrants), the one whose slow axis points most downwards (−y: y is up in both the imgCIF and the
NeXus lab frames), so the result does not depend on the panel order. A single panel with square
pixels is used as it is, without resampling: facing the beam (within :data:`FACING_TILT_DEG`) as a
detector facing it, tilted (a detector on a 2θ arm) with its axes turned into xrais's lab frame
(:class:`~xrais.io.geometry.Geometry` holds any orientation). Several panels of a detector swung on a
2θ arm are projected onto their common plane instead (:func:`_virtual_plane`), the image then
tilted as they are. Sets of several panels that one flat image cannot represent faithfully (a panel
tilted more than :data:`MAX_TILT_DEG` from that plane, or
panel corners at along-beam distances more than :data:`MAX_DISTANCE_SPREAD` from the mean) are
rejected with an "unsupported geometry" :class:`~xrais.io.errors.ImageError`.

The mapping is computed once per geometry (:func:`make_layout`) and applied to every frame
(:meth:`Layout.assemble`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numba
import numpy as np

from .base import check_shape, make_geometry
from .errors import ImageError
from .frame import Frame
from .geometry import BEAM_DIRECTION, FACING_TILT_DEG, FAST_AXIS, MAX_SKEW_DEG, SLOW_AXIS, GeometryOverride

#: Largest angle (degrees) between a panel normal and the plane of the virtual image (normal to
#: the beam, or a swung detector's common plane) for a detector of several panels.
MAX_TILT_DEG = 5.0
#: Largest relative difference between a panel corner's along-beam distance and the mean distance.
MAX_DISTANCE_SPREAD = 0.05
#: Farthest a panel may be from the sample (mm): beyond, its position is corrupt.
MAX_POSITION_MM = 1e5


@dataclasses.dataclass(frozen=True)
class PanelGeometry:
    """Where one flat panel is: origin = lab position (mm) of the outer corner of pixel (0, 0);
    fast_axis, slow_axis: lab directions of increasing fast/slow index; pixel_size: (fast, slow)
    edge (mm); shape: (slow, fast) pixels; name: used in messages and to match panels."""

    origin: Tuple[float, float, float]
    fast_axis: Tuple[float, float, float]
    slow_axis: Tuple[float, float, float]
    pixel_size: Tuple[float, float]
    shape: Tuple[int, int]
    name: str = "panel"


@dataclasses.dataclass
class RawPanels:
    """The panels of one frame as a file stores them: names, pixels (slow, fast) and masks
    (True = invalid), in file order; index: the frame's number in its file; multi_frame: whether
    the file holds a series."""

    index: int
    names: List[str]
    pixels: List[np.ndarray]
    masks: List[np.ndarray]
    multi_frame: bool = False


@dataclasses.dataclass
class Layout:
    """How panels make one flat image perpendicular to the beam.

    shape: (slow, fast) of the image; distance: sample to image plane (mm); beam_centre: (fast,
    slow) pixels from the outer corner of pixel (0, 0); pixel_size: mm; source: for each image
    pixel, the index into the panels' pixels flattened one after the other (-1: no panel), or None
    for a single panel used as it is; panel_shapes: (slow, fast) of each panel; fast_axis,
    slow_axis: the image's axes in xrais's lab frame (:mod:`xrais.io.geometry`; the defaults for an
    image facing the beam).
    """

    shape: Tuple[int, int]
    distance: float
    beam_centre: Tuple[float, float]
    pixel_size: float
    source: Optional[np.ndarray]
    panel_shapes: Tuple[Tuple[int, int], ...]
    fast_axis: Tuple[float, float, float] = FAST_AXIS
    slow_axis: Tuple[float, float, float] = SLOW_AXIS

    def assemble(self, path: str, pixels: Sequence[np.ndarray], masks: Sequence[Optional[np.ndarray]],
                 frame: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(image pixels, image mask) from the panels' pixels and masks (True = invalid; None: all valid)."""
        if len(pixels) != len(self.panel_shapes) or len(masks) != len(pixels):
            raise ImageError(path, f"{len(pixels)} panel images for a detector of {len(self.panel_shapes)} panels", frame)
        for data, mask, shape in zip(pixels, masks, self.panel_shapes):
            if np.shape(data) != shape or (mask is not None and np.shape(mask) != shape):
                raise ImageError(path, f"panel data of shape {np.shape(data)} for a panel of "
                                       f"{shape[1]} x {shape[0]} pixels", frame)
        if self.source is None:
            data = np.asarray(pixels[0])
            return data, (np.zeros(data.shape, dtype=bool) if masks[0] is None else np.asarray(masks[0], dtype=bool))
        flat = np.concatenate([np.asarray(data).ravel() for data in pixels])
        invalid = np.concatenate([np.zeros(int(np.prod(shape)), dtype=bool) if mask is None
                                  else np.asarray(mask, dtype=bool).ravel()
                                  for mask, shape in zip(masks, self.panel_shapes)])
        covered = self.source >= 0
        index = np.where(covered, self.source, 0)
        image = np.take(flat, index)
        image[~covered] = 0
        return image, ~covered | np.take(invalid, index)


@dataclasses.dataclass
class _Placed:
    """A validated panel: unit axes, normal (along the beam), pixel sizes, corners (mm), tilt (°)."""

    geometry: PanelGeometry
    origin: np.ndarray
    fast: np.ndarray
    slow: np.ndarray
    normal: np.ndarray
    pixel_fast: float
    pixel_slow: float
    corners: np.ndarray
    tilt_deg: float

    @property
    def n_pixels(self) -> int:
        return self.geometry.shape[0] * self.geometry.shape[1]


def _unit(path, vector, what, frame) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    if vector.shape != (3,) or not np.all(np.abs(vector) < 1e100):  # also rejects NaN and infinities
        raise ImageError(path, f"{what} is not a finite 3-vector: {np.ravel(vector).tolist()}", frame)
    length = float(np.linalg.norm(vector))
    if length < 1e-9:
        raise ImageError(path, f"{what} is a zero vector", frame)
    return vector / length


def _place(path, panel: PanelGeometry, beam: np.ndarray, frame) -> _Placed:
    name = panel.name
    origin = np.asarray(panel.origin, dtype=float)
    if origin.shape != (3,) or not np.all(np.abs(origin) < MAX_POSITION_MM):
        raise ImageError(path, f"panel {name} origin {np.ravel(origin).tolist()} mm makes no sense", frame)
    fast = _unit(path, panel.fast_axis, f"panel {name} fast axis", frame)
    slow = _unit(path, panel.slow_axis, f"panel {name} slow axis", frame)
    if abs(float(fast @ slow)) > math.sin(math.radians(MAX_SKEW_DEG)):
        raise ImageError(path, f"unsupported geometry: panel {name} fast and slow axes are not perpendicular", frame)
    try:
        pixel_fast, pixel_slow = (float(v) for v in panel.pixel_size)
    except (TypeError, ValueError):
        raise ImageError(path, f"panel {name} pixel size is not two numbers: {panel.pixel_size!r}", frame) from None
    if not (1e-4 < pixel_fast < 100 and 1e-4 < pixel_slow < 100):
        raise ImageError(path, f"panel {name} pixel size ({pixel_fast:g}, {pixel_slow:g}) mm makes no sense", frame)
    n_slow, n_fast = check_shape(path, panel.shape, frame)
    normal = np.cross(fast, slow)
    normal /= np.linalg.norm(normal)
    if normal @ beam < 0:
        normal = -normal
    tilt = math.degrees(math.acos(min(1.0, float(normal @ beam))))
    size_fast, size_slow = n_fast * pixel_fast * fast, n_slow * pixel_slow * slow
    corners = np.array([origin, origin + size_fast, origin + size_slow, origin + size_fast + size_slow])
    return _Placed(panel, origin, fast, slow, normal, pixel_fast, pixel_slow, corners, tilt)


def make_layout(path: str, panels: Sequence[PanelGeometry], beam_direction: Sequence[float],
                frame: Optional[int] = None) -> Layout:
    """The flat-image layout of ``panels``; beam_direction: the direction the beam travels
    (towards the detector) in the panels' lab frame. Raises :class:`ImageError` ("unsupported
    geometry: …") for panel sets that one flat image cannot represent."""
    if not panels:
        raise ImageError(path, "the detector has no panels", frame)
    beam = _unit(path, beam_direction, "beam direction", frame)
    placed = [_place(path, panel, beam, frame) for panel in panels]
    shapes = tuple(tuple(panel.shape) for panel in panels)
    single = placed[0]
    if len(placed) == 1 and math.isclose(single.pixel_fast, single.pixel_slow, rel_tol=1e-4):
        return _as_it_is(path, single, beam, shapes, frame)
    weights = np.array([item.n_pixels for item in placed], dtype=float)
    plane = _virtual_plane(placed, beam, weights)
    for item in placed:
        off_plane = math.degrees(math.acos(min(1.0, float(item.normal @ plane))))
        if off_plane > MAX_TILT_DEG:
            against = "perpendicular to the beam" if plane is beam else "the other panels' plane"
            raise ImageError(path, f"unsupported geometry: panel {item.geometry.name} is tilted {off_plane:.1f}° "
                                   f"from {against} (at most {MAX_TILT_DEG:g}° is supported for a detector of "
                                   "several panels)", frame)
    distance = float(weights @ np.array([item.corners.mean(axis=0) @ plane for item in placed]) / weights.sum())
    corner_distances = np.concatenate([item.corners @ plane for item in placed])
    if distance <= 0 or corner_distances.min() <= 0 or float(plane @ beam) <= 0:
        raise ImageError(path, "unsupported geometry: the detector is not downstream of the sample", frame)
    if float(np.max(np.abs(corner_distances - distance))) > MAX_DISTANCE_SPREAD * distance:
        along = "along the beam" if plane is beam else "from the sample to the detector's plane"
        raise ImageError(path, f"unsupported geometry: panel distances {along} range from "
                               f"{corner_distances.min():.1f} to {corner_distances.max():.1f} mm, more than "
                               f"{100 * MAX_DISTANCE_SPREAD:g}% from a flat detector", frame)
    return _resampled(path, placed, beam, plane, distance, shapes, frame)


def _virtual_plane(placed: List[_Placed], beam: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unit normal of the virtual image's plane: the beam when every panel faces it (within
    :data:`MAX_TILT_DEG`); else (a detector swung on a 2θ arm) the mean normal of the largest group,
    in pixels, of panels within :data:`MAX_TILT_DEG` of one another, so that a panel off that plane
    is the one named."""
    if all(item.tilt_deg <= MAX_TILT_DEG for item in placed):
        return beam
    normals = np.array([item.normal for item in placed])
    close = normals @ normals.T >= math.cos(math.radians(MAX_TILT_DEG))
    group = close[int(np.argmax(close.astype(float) @ weights))]
    mean_normal = weights[group] @ normals[group]
    plane = mean_normal / np.linalg.norm(mean_normal)
    return beam if float(plane @ beam) >= math.cos(math.radians(FACING_TILT_DEG)) else plane


def _as_it_is(path, single: _Placed, beam: np.ndarray, shapes, frame) -> Layout:
    """The layout of one panel with square pixels, used without resampling at any orientation the
    geometry model holds (a detector facing the beam, or one swung on a 2θ arm)."""
    perpendicular = float(single.origin @ single.normal)
    if perpendicular <= 0 or single.tilt_deg >= 90.0:
        raise ImageError(path, "unsupported geometry: the detector is not downstream of the sample", frame)
    offset = beam * (perpendicular / float(beam @ single.normal)) - single.origin
    beam_centre = (float(offset @ single.fast) / single.pixel_fast, float(offset @ single.slow) / single.pixel_slow)
    if single.tilt_deg <= FACING_TILT_DEG:  # facing the beam: the in-plane orientation changes no result
        return Layout(shapes[0], perpendicular, beam_centre, single.pixel_fast, None, shapes)
    return Layout(shapes[0], perpendicular, beam_centre, single.pixel_fast, None, shapes,
                  *_lab_axes(beam, single.fast, single.slow))


def _lab_axes(beam: np.ndarray, fast: np.ndarray, slow: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """An image's fast and slow axes turned from the file's lab frame (its beam ``beam``) into
    xrais's (:mod:`xrais.io.geometry`: beam along −z)."""
    to_lab = _turning(beam, BEAM_DIRECTION)
    return tuple(float(v) for v in to_lab @ fast), tuple(float(v) for v in to_lab @ slow)


def _turning(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The smallest rotation (3×3) that turns unit vector ``start`` into unit vector ``end``."""
    axis = np.cross(start, end)
    cosine = float(start @ end)
    if cosine < -1.0 + 1e-12:  # opposite: half a turn about any perpendicular axis
        other = np.array([1.0, 0.0, 0.0]) if abs(start[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        perpendicular = np.cross(start, other)
        perpendicular /= np.linalg.norm(perpendicular)
        return 2.0 * np.outer(perpendicular, perpendicular) - np.identity(3)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.identity(3) + cross + cross @ cross / (1.0 + cosine)


def _in_plane(vector: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """``vector`` projected into the plane of unit normal ``normal``, made unit."""
    projected = vector - (vector @ normal) * normal
    return projected / max(float(np.linalg.norm(projected)), 1e-12)


def _virtual_axes(placed: List[_Placed], plane: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Fast and slow axes of the virtual image (in the plane of unit normal ``plane``): the mean
    orientation of the group of panels (axes within 10° of each other) that holds the most pixels
    (ties: slow axis most downwards)."""
    close = math.cos(math.radians(10.0))
    groups: List[list] = []  # [fast, slow, weighted fast sum, weighted slow sum, pixels]
    for item in placed:
        fast, slow = _in_plane(item.fast, plane), _in_plane(item.slow, plane)
        for group in groups:
            if fast @ group[0] > close and slow @ group[1] > close:
                group[2] = group[2] + item.n_pixels * fast
                group[3] = group[3] + item.n_pixels * slow
                group[4] += item.n_pixels
                break
        else:
            groups.append([fast, slow, item.n_pixels * fast, item.n_pixels * slow, item.n_pixels])
    best = max(groups, key=lambda group: (group[4], round(-float(group[1][1]), 6), round(float(group[0][0]), 6)))
    fast = _in_plane(best[2], plane)
    slow = _in_plane(best[3] - (best[3] @ fast) * fast, plane)
    return fast, slow


def _resampled(path, placed: List[_Placed], beam: np.ndarray, plane: np.ndarray, distance: float, shapes,
               frame) -> Layout:
    """Panels projected from the sample onto the virtual plane of unit normal ``plane``, ``distance``
    mm from the sample (normal to the beam, or a swung detector's mean plane)."""
    fast_axis, slow_axis = _virtual_axes(placed, plane)
    step = min(min(item.pixel_fast, item.pixel_slow) for item in placed)
    centre = distance * plane  # the foot of the perpendicular from the sample
    extents = []
    for item in placed:
        projected = item.corners * (distance / (item.corners @ plane))[:, None] - centre
        extents.append((projected @ fast_axis, projected @ slow_axis))
    u0 = min(float(u.min()) for u, _ in extents)
    v0 = min(float(v.min()) for _, v in extents)
    # extents within rounding noise of a whole number of pixels do not grow by one
    width = max(1, int(math.ceil((max(float(u.max()) for u, _ in extents) - u0) / step - 1e-6)))
    height = max(1, int(math.ceil((max(float(v.max()) for _, v in extents) - v0) / step - 1e-6)))
    height, width = check_shape(path, (height, width), frame)
    total = sum(item.n_pixels for item in placed)
    source = np.full((height, width), -1, dtype=np.int32 if total < 2 ** 31 else np.int64)
    offset = 0
    for item, (u, v) in zip(placed, extents):
        i0 = max(0, int(math.floor((float(u.min()) - u0) / step)) - 1)
        i1 = min(width, int(math.ceil((float(u.max()) - u0) / step)) + 1)
        j0 = max(0, int(math.floor((float(v.min()) - v0) / step)) - 1)
        j1 = min(height, int(math.ceil((float(v.max()) - v0) / step)) + 1)
        # A virtual pixel centre lies at centre + u·fast_axis + v·slow_axis; its dot products with
        # the panel normal and axes are affine in (u, v): rows (constant, per u, per v).
        coefficients = np.array([[centre @ axis, fast_axis @ axis, slow_axis @ axis]
                                 for axis in (item.normal, item.fast, item.slow)])
        origin_terms = np.array([item.origin @ item.normal, item.origin @ item.fast, item.origin @ item.slow])
        n_slow, n_fast = item.geometry.shape
        _map_panel(coefficients, origin_terms, item.pixel_fast, item.pixel_slow, n_slow, n_fast, offset,
                   u0, v0, step, j0, j1, i0, i1, source)
        offset += item.n_pixels
    hit = beam * (distance / float(beam @ plane)) - centre  # where the beam meets the plane
    beam_centre = ((float(hit @ fast_axis) - u0) / step, (float(hit @ slow_axis) - v0) / step)
    if plane is beam:
        return Layout((height, width), distance, beam_centre, step, source, shapes)
    return Layout((height, width), distance, beam_centre, step, source, shapes, *_lab_axes(beam, fast_axis, slow_axis))


@numba.njit(cache=True, nogil=True)
def _map_panel(coefficients, origin_terms, pixel_fast, pixel_slow, n_slow, n_fast, offset,
               u0, v0, step, j0, j1, i0, i1, source):
    """Point the still unmapped virtual pixels [j0:j1, i0:i1] whose centre ray hits this panel at
    the panel pixel it hits (offset + slow·n_fast + fast)."""
    for j in range(j0, j1):
        v = v0 + (j + 0.5) * step
        for i in range(i0, i1):
            if source[j, i] >= 0:
                continue
            u = u0 + (i + 0.5) * step
            along_normal = coefficients[0, 0] + coefficients[0, 1] * u + coefficients[0, 2] * v
            if not along_normal > 0.0:
                continue
            scale = origin_terms[0] / along_normal
            along_fast = coefficients[1, 0] + coefficients[1, 1] * u + coefficients[1, 2] * v
            along_slow = coefficients[2, 0] + coefficients[2, 1] * u + coefficients[2, 2] * v
            a = (scale * along_fast - origin_terms[1]) / pixel_fast
            b = (scale * along_slow - origin_terms[2]) / pixel_slow
            if not (0.0 <= a < n_fast and 0.0 <= b < n_slow):  # also rejects NaN
                continue
            source[j, i] = offset + int(b) * n_fast + int(a)


def to_frame(path: str, layout: Layout, pixels: Sequence[np.ndarray], masks: Sequence[Optional[np.ndarray]],
             wavelength: Optional[float], override: GeometryOverride, detector: str = "generic", index: int = 0,
             metadata: Optional[dict] = None, frame: Optional[int] = None) -> Frame:
    """A :class:`Frame` of the panels' pixels placed by ``layout``, with the user's geometry override
    applied; wavelength in Å (None: it must come from the override)."""
    image, mask = layout.assemble(path, pixels, masks, frame)
    geometry = make_geometry(path, {
        "distance": layout.distance,
        "wavelength": wavelength,
        "pixel_size": layout.pixel_size,
        "beam_centre": layout.beam_centre,
        "shape": layout.shape,
        "detector": detector,
        "fast_axis": layout.fast_axis,
        "slow_axis": layout.slow_axis,
    }, override, frame)
    metadata = dict(metadata or {})
    if len(layout.panel_shapes) > 1:
        metadata["panels"] = len(layout.panel_shapes)
    return Frame(image, mask, geometry, source=path, index=index, metadata=metadata)
