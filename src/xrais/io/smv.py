"""SMV (ADSC ``.img``): reader and writer.

An SMV file is a text header ``{ KEY=VALUE; ... }`` padded to ``HEADER_BYTES`` bytes, followed by
a raw ``SIZE2`` × ``SIZE1`` (slow × fast) array of ``TYPE`` (``unsigned_short`` for ADSC) in
``BYTE_ORDER``. Geometry: ``DISTANCE`` (mm), ``WAVELENGTH`` (Å), ``PIXEL_SIZE`` (mm) and the beam
position ``BEAM_CENTER_X``/``BEAM_CENTER_Y`` (mm).

ADSC beam-centre convention (dxtbx's ``FormatSMVADSC``, the Mosflm frame): ``BEAM_CENTER_X`` is
measured along the *slow* axis and ``BEAM_CENTER_Y`` along the *fast* axis, both in mm from the
outer corner of pixel (0, 0); so the beam centre (fast, slow) in pixels is
(BEAM_CENTER_Y, BEAM_CENTER_X) / PIXEL_SIZE. ADSC detectors at the ALS write BEAM_CENTER_X/Y in a
swapped frame and the standard-frame values as ``DENZO_XBEAM``/``DENZO_YBEAM``; when those are
present they are used instead (as dxtbx's ALS-specific ADSC formats and LABELIT do; the ALS Q4R
image shipped with cctbx confirms it: its diffuse scattering is centred there).
``IMAGE_PEDESTAL`` is subtracted from the counts (as dxtbx does); raw values at or above
``CCD_IMAGE_SATURATION`` (default: an integer type's maximum) are masked, and so are NaN and
infinities in floating-point data. A detector two-theta offset (``TWOTHETA``) is refused: its axis
and beam-centre conventions differ between detectors (dxtbx keeps one format class per serial
number), and no real swung SMV frame is at hand to check one against.
"""
from __future__ import annotations

import math
import re
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from . import detectors
from .base import Reader, check_shape, image_number, load_bytes, make_geometry
from .errors import ImageError
from .frame import Frame
from .geometry import FACING_TILT_DEG, Geometry, GeometryOverride

_TYPES = {
    "unsigned_short": "u2", "signed_short": "i2", "short": "i2",
    "unsigned_int": "u4", "unsigned_long": "u4", "signed_int": "i4", "int": "i4", "signed_long": "i4", "long": "i4",
    "float": "f4", "float_ieee": "f4", "double": "f8",
}
_BYTE_ORDERS = {"little_endian": "<", "big_endian": ">"}
_HEAD = re.compile(rb"^\{\s*HEADER_BYTES\s*=\s*(\d+)\s*;")
_FIELD = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*;?\s*$")
_MAX_HEADER_BYTES = 1 << 20


def parse_header(path: str, content: bytes) -> Tuple[int, Dict[str, str]]:
    """(header size in bytes, KEY → VALUE text) of an SMV file."""
    match = _HEAD.match(content)
    if not match:
        raise ImageError(path, "SMV header does not start with '{ HEADER_BYTES=…;'")
    size = int(match.group(1))
    if not 0 < size <= min(len(content), _MAX_HEADER_BYTES):
        raise ImageError(path, f"SMV HEADER_BYTES={size} does not fit the file ({len(content)} bytes)")
    text = content[:size].decode("latin-1")
    end = text.find("}")
    if end < 0:
        raise ImageError(path, "SMV header has no closing '}' within HEADER_BYTES")
    fields = {}
    # a NUL ends a C string: some writers put one right after the last field's ';' (before the '}')
    for line in text[1:end].replace("\x00", "\n").splitlines():
        match = _FIELD.match(line)
        if match:
            fields[match.group(1).upper()] = match.group(2)
    return size, fields


def _number(path, fields, key, kind=float) -> Optional[float]:
    if key not in fields:
        return None
    try:
        value = kind(fields[key])
    except ValueError:
        raise ImageError(path, f"SMV header {key}={fields[key]!r} is not a number") from None
    if not math.isfinite(value):
        raise ImageError(path, f"SMV header {key}={fields[key]!r} is not a finite number")
    return value


def _required(path, fields, key, kind=float):
    value = _number(path, fields, key, kind)
    if value is None:
        raise ImageError(path, f"SMV header lacks {key}")
    return value


class SMVReader(Reader):
    name = "SMV"
    suffixes = (".img", ".smv")

    def identify(self, path, head):
        return bool(_HEAD.match(head))

    def read(self, path, override: GeometryOverride) -> Iterator[Frame]:
        content = load_bytes(path)
        header_bytes, fields = parse_header(path, content)
        if fields.get("DIM", "2").strip() != "2":
            raise ImageError(path, f"SMV DIM={fields['DIM']} is not a 2-D image")
        type_name = fields.get("TYPE", "unsigned_short").strip().lower()
        if type_name not in _TYPES:
            raise ImageError(path, f"unsupported SMV TYPE {type_name!r}")
        order = fields.get("BYTE_ORDER", "little_endian").strip().lower()
        if order not in _BYTE_ORDERS:
            raise ImageError(path, f"unsupported SMV BYTE_ORDER {order!r}")
        dtype = np.dtype(_BYTE_ORDERS[order] + _TYPES[type_name])
        shape = check_shape(path, (_required(path, fields, "SIZE2", int), _required(path, fields, "SIZE1", int)))
        n_bytes = shape[0] * shape[1] * dtype.itemsize
        if len(content) < header_bytes + n_bytes:
            raise ImageError(path, f"SMV data truncated: {shape[1]} x {shape[0]} pixels of {dtype.itemsize} bytes "
                                   f"need {n_bytes} bytes after the header, the file holds {len(content) - header_bytes}")
        raw = np.frombuffer(content, dtype=dtype, count=shape[0] * shape[1], offset=header_bytes).reshape(shape)
        two_theta = _number(path, fields, "TWOTHETA") or 0.0
        if abs(two_theta) > FACING_TILT_DEG:
            raise ImageError(path, f"unsupported geometry: detector two-theta offset {two_theta:g}° "
                                   "(only detectors facing the beam are supported)")
        saturation = _number(path, fields, "CCD_IMAGE_SATURATION")
        if saturation is None and dtype.kind in "ui":
            saturation = float(np.iinfo(dtype).max)
        mask = ~np.isfinite(raw) if dtype.kind == "f" else np.zeros(shape, dtype=bool)
        if saturation is not None:
            mask |= raw >= saturation
        pedestal = _number(path, fields, "IMAGE_PEDESTAL") or 0.0
        if not 0 <= pedestal <= 65535:
            raise ImageError(path, f"SMV header IMAGE_PEDESTAL={pedestal:g} makes no sense (expected 0 to 65535)")
        if dtype.kind in "ui":
            pixels = raw.astype(np.int32 if dtype.itemsize <= 2 else np.int64)
        else:
            pixels = raw.astype(dtype.newbyteorder("="))
        if pedestal:
            pixels = pixels - pixels.dtype.type(pedestal)
        pixel_size = _number(path, fields, "PIXEL_SIZE")
        if "DENZO_XBEAM" in fields and "DENZO_YBEAM" in fields:
            beam_x, beam_y = _number(path, fields, "DENZO_XBEAM"), _number(path, fields, "DENZO_YBEAM")
        else:
            beam_x, beam_y = _number(path, fields, "BEAM_CENTER_X"), _number(path, fields, "BEAM_CENTER_Y")
        beam_centre = None
        if pixel_size and beam_x is not None and beam_y is not None:
            beam_centre = (beam_y / pixel_size, beam_x / pixel_size)
        model = detectors.find(None, shape, pixel_size)
        geometry = make_geometry(path, {
            "distance": _number(path, fields, "DISTANCE"),
            "wavelength": _number(path, fields, "WAVELENGTH"),
            "pixel_size": pixel_size,
            "beam_centre": beam_centre,
            "shape": shape,
            "detector": model.name if model else "SMV",
        }, override)
        metadata = {"format": "SMV", "pedestal": pedestal, "saturation": saturation}
        for key, name in (("DETECTOR_SN", "serial"), ("TIME", "exposure_time"), ("OSC_START", "start_angle"),
                          ("OSC_RANGE", "angle_increment"), ("DATE", "date")):
            if key in fields:
                metadata[name] = fields[key]
        yield Frame(pixels, mask, geometry, source=path, index=image_number(path), metadata=metadata)


READER = SMVReader()


def write_smv(path: str, pixels: np.ndarray, geometry: Geometry, exposure_time: float = 1.0,
              osc_start: float = 0.0, osc_range: float = 0.0, byte_order: str = "little_endian",
              serial: str = "xrais-sim") -> None:
    """Write an ADSC-style SMV file (unsigned 16-bit; values clipped to 0…65535) that xrais, dxtbx
    and fabio read; the beam centre is written in the ADSC convention (see the module docstring)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError("pixels must be 2-D (slow, fast)")
    if byte_order not in _BYTE_ORDERS:
        raise ValueError(f"byte_order must be one of {tuple(_BYTE_ORDERS)}")
    n_slow, n_fast = pixels.shape
    beam_fast_mm = geometry.beam_centre[0] * geometry.pixel_size
    beam_slow_mm = geometry.beam_centre[1] * geometry.pixel_size
    lines = [
        "DIM=2;", f"BYTE_ORDER={byte_order};", "TYPE=unsigned_short;",
        f"SIZE1={n_fast};", f"SIZE2={n_slow};", f"PIXEL_SIZE={geometry.pixel_size:.6f};",
        f"DISTANCE={geometry.distance:.3f};", f"WAVELENGTH={geometry.wavelength:.6f};",
        f"BEAM_CENTER_X={beam_slow_mm:.3f};", f"BEAM_CENTER_Y={beam_fast_mm:.3f};",
        "TWOTHETA=0.00;", f"OSC_START={osc_start:.3f};", f"OSC_RANGE={osc_range:.3f};", "PHI=0.000;",
        f"TIME={exposure_time:.3f};", f"DETECTOR_SN={serial};", "CCD_IMAGE_SATURATION=65535;",
    ]
    rest = "\n".join(lines) + "\n}\n"
    size = 512 * -(-(len(rest) + len("{\nHEADER_BYTES=00000;\n")) // 512)
    header = f"{{\nHEADER_BYTES={size:5d};\n{rest}".encode("latin-1").ljust(size, b" ")
    data = np.clip(pixels, 0, 65535).astype(_BYTE_ORDERS[byte_order] + "u2")
    with open(path, "wb") as handle:
        handle.write(header + data.tobytes())
