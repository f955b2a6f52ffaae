"""dxtbx adapter (DIALS environments only): any image format dxtbx reads, tried after xrais's own
readers, and :func:`frames_from_imageset` for dxtbx image sets already in memory.

dxtbx models are in its lab frame (mm): each panel's origin (outer corner of pixel (0, 0)), fast
and slow axes, pixel size (fast, slow) and image size (fast, slow); the beam's ``s0`` points along
the beam. A single panel perpendicular to the beam gives the geometry directly; other detectors
are assembled onto one flat image (:mod:`xrais.io.assemble`). The mask is dxtbx's (trusted range
and the format's static mask; dxtbx marks valid pixels True, xrais invalid ones).

Without dxtbx this module imports but defines no reader (``READER is None``).
"""
from __future__ import annotations

from typing import Dict, Iterator, Tuple, Union

from . import detectors
from .assemble import Layout, PanelGeometry, make_layout, to_frame
from .base import Reader
from .errors import ImageError
from .frame import Frame, FrameError
from .geometry import GeometryOverride

try:
    from dxtbx.format.Registry import get_format_class_for_file
    from dxtbx.imageset import ImageSequence
    from dxtbx.model.experiment_list import ExperimentListFactory
except ImportError:
    ExperimentListFactory = None


def _panels(detector) -> Tuple[PanelGeometry, ...]:
    return tuple(PanelGeometry(tuple(panel.get_origin()), tuple(panel.get_fast_axis()), tuple(panel.get_slow_axis()),
                               tuple(panel.get_pixel_size()), tuple(reversed(panel.get_image_size())),
                               panel.get_name() or str(index))
                 for index, panel in enumerate(detector))


def frames_from_imageset(imageset, geometry=None) -> Iterator[Union[Frame, FrameError]]:
    """One :class:`Frame` per image of a dxtbx ImageSet/ImageSequence (a :class:`FrameError` for an
    image dxtbx cannot read); geometry: an optional user override (dict or GeometryOverride)."""
    override = GeometryOverride.coerce(geometry)
    layouts: Dict[tuple, Layout] = {}
    sequence = isinstance(imageset, ImageSequence)
    for index in range(len(imageset)):
        path = imageset.get_path(index)
        try:
            beam = imageset.get_beam() if sequence else imageset.get_beam(index)
            detector = imageset.get_detector() if sequence else imageset.get_detector(index)
            panels = _panels(detector)
            direction = tuple(beam.get_s0())
            key = (panels, direction)
            if key not in layouts:
                layouts[key] = make_layout(path, panels, direction, index)
            layout = layouts[key]
            pixels = [data.as_numpy_array() for data in imageset.get_raw_data(index)]
            masks = [~valid.as_numpy_array() for valid in imageset.get_mask(index)]
            model = detectors.find(None, layout.shape, layout.pixel_size) if len(panels) == 1 else None
            yield to_frame(path, layout, pixels, masks, beam.get_wavelength(), override,
                           model.name if model else "dxtbx", index,
                           {"format": "dxtbx", "multi_frame": len(imageset) > 1}, index)
        except ImageError as exc:
            yield FrameError(exc.path, index, exc.problem)
        except Exception as exc:  # noqa: BLE001 - dxtbx reports bad images with many exception types
            yield FrameError(path, index, f"dxtbx cannot read it: {type(exc).__name__}: {exc}")


class DxtbxReader(Reader):
    name = "dxtbx"
    multi_frame = True
    suffixes = ()

    def identify(self, path, head):
        try:
            return get_format_class_for_file(path) is not None
        except Exception:  # noqa: BLE001 - a format's understand() may fail on foreign files
            return False

    def read(self, path, override: GeometryOverride) -> Iterator[Union[Frame, FrameError]]:
        try:
            imagesets = ExperimentListFactory.from_filenames([path]).imagesets()
        except Exception as exc:  # noqa: BLE001 - dxtbx raises many exception types
            raise ImageError(path, f"dxtbx cannot read it ({type(exc).__name__}: {exc})") from None
        if not imagesets:
            raise ImageError(path, "dxtbx found no images in it")
        for imageset in imagesets:
            yield from frames_from_imageset(imageset, override)


READER = DxtbxReader() if ExperimentListFactory is not None else None
