"""miniCBF (PILATUS/EIGER "PILATUS_1.2" header convention): reader and writer.

The byte-offset compression is decoded by a numba kernel (several times faster than fabio's); the
geometry comes from the PILATUS header lines (``# Wavelength``, ``# Detector_distance``,
``# Beam_xy``, ``# Pixel_size``, ``# Count_cutoff``, ``# Detector:``, ``# Detector_2theta``), and
from the imgCIF axis categories where the header carries them after its PILATUS lines (Diamond
I19's hybrid headers: a swung detector mounted with its fast axis vertical). Files with a full imgCIF
axis hierarchy and no PILATUS header (multi-panel CS-PAD, Rayonix at XFELs, "packed" compression)
are read by :mod:`xrais.io.imgcif`.
"""
from __future__ import annotations

import hashlib
import logging
import base64
import math
import re
from typing import Dict, Iterator, Optional, Tuple

import numba
import numpy as np

from . import detectors
from .assemble import make_layout
from .base import Reader, check_shape, image_number, load_bytes, make_geometry
from .errors import GeometryError, ImageError
from .frame import Frame, invalid_mask
from .geometry import FACING_TILT_DEG, Geometry, GeometryOverride, two_theta_axes
from .imgcif import header_panel

log = logging.getLogger(__name__)

BINARY_START = b"\x0c\x1a\x04\xd5"
_MIME_FIELD = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*):\s*(.*?)\s*$", re.MULTILINE)
_ELEMENT_TYPES = {
    "signed 32-bit integer": np.int32,
    "unsigned 32-bit integer": np.uint32,
    "signed 16-bit integer": np.int16,
    "unsigned 16-bit integer": np.uint16,
    "signed 8-bit integer": np.int8,
    "unsigned 8-bit integer": np.uint8,
}


# --------------------------------------------------------------------------------------------
# byte-offset compression
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _byte_offset_decode(data, out):
    """Decode CBF byte-offset data into ``out`` (int64 accumulate, stored as out's dtype).

    Returns the number of values decoded (< len(out) when the data are truncated).
    """
    n = out.shape[0]
    size = data.shape[0]
    pos = 0
    value = 0
    i = 0
    while i < n:
        if pos >= size:
            return i
        delta = np.int64(np.int8(data[pos]))
        pos += 1
        if delta == -128:
            if pos + 2 > size:
                return i
            delta = np.int64(np.int16(data[pos] | (np.int32(data[pos + 1]) << 8)))
            pos += 2
            if delta == -32768:
                if pos + 4 > size:
                    return i
                delta = np.int64(np.int32(np.uint32(data[pos]) | (np.uint32(data[pos + 1]) << 8)
                                          | (np.uint32(data[pos + 2]) << 16) | (np.uint32(data[pos + 3]) << 24)))
                pos += 4
                if delta == -2147483648:
                    if pos + 8 > size:
                        return i
                    acc = np.uint64(0)
                    for k in range(8):
                        acc |= np.uint64(data[pos + k]) << np.uint64(8 * k)
                    delta = np.int64(acc)
                    pos += 8
        value += delta
        out[i] = value
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def _byte_offset_encode(values, out):
    """Encode int64 values with CBF byte-offset compression into ``out``; returns bytes used."""
    pos = 0
    previous = np.int64(0)
    for i in range(values.shape[0]):
        delta = np.int64(values[i]) - previous
        previous = np.int64(values[i])
        if -127 <= delta <= 127:
            out[pos] = np.uint8(delta & 0xFF)
            pos += 1
            continue
        out[pos] = 0x80
        pos += 1
        if -32767 <= delta <= 32767:
            out[pos] = np.uint8(delta & 0xFF)
            out[pos + 1] = np.uint8((delta >> 8) & 0xFF)
            pos += 2
            continue
        out[pos] = 0x00
        out[pos + 1] = 0x80
        pos += 2
        if -2147483647 <= delta <= 2147483647:
            for k in range(4):
                out[pos + k] = np.uint8((delta >> (8 * k)) & 0xFF)
            pos += 4
            continue
        out[pos] = 0x00
        out[pos + 1] = 0x00
        out[pos + 2] = 0x00
        out[pos + 3] = 0x80
        pos += 4
        for k in range(8):
            out[pos + k] = np.uint8((delta >> (8 * k)) & 0xFF)
        pos += 8
    return pos


def byte_offset_decode(data: bytes, n_elements: int, dtype=np.int32) -> Tuple[np.ndarray, int]:
    """Decode byte-offset data → (array of n_elements, number actually decoded)."""
    out = np.empty(n_elements, dtype=dtype)
    decoded = _byte_offset_decode(np.frombuffer(data, dtype=np.uint8), out)
    return out, int(decoded)


def byte_offset_encode(values: np.ndarray) -> bytes:
    """CBF byte-offset compression of an integer array (flattened in C order)."""
    flat = np.ascontiguousarray(values).ravel().astype(np.int64, copy=False)
    out = np.empty(flat.size * 15 + 16, dtype=np.uint8)
    used = _byte_offset_encode(flat, out)
    return out[:used].tobytes()


# --------------------------------------------------------------------------------------------
# file structure
# --------------------------------------------------------------------------------------------
def split_cbf(path: str, content: bytes) -> Tuple[str, Dict[str, str], bytes]:
    """(text header, MIME fields of the binary section, binary data) of a single-array CBF."""
    start = content.find(BINARY_START)
    if start < 0:
        raise ImageError(path, "CBF file has no binary data section (truncated?)")
    marker = content.rfind(b"--CIF-BINARY-FORMAT-SECTION--", 0, start)
    if marker < 0:
        raise ImageError(path, "CBF binary section has no MIME header")
    header = content[:marker].decode("latin-1")
    fields = {k.decode("latin-1").lower(): v.decode("latin-1").strip().strip('"') for k, v in _MIME_FIELD.findall(content[marker:start])}
    conversions = re.search(rb'conversions\s*=\s*"?([A-Za-z0-9_-]+)', content[marker:start])
    fields["conversions"] = conversions.group(1).decode("latin-1") if conversions else ""
    return header, fields, content[start + len(BINARY_START):]


def _int_field(path, fields, name):
    try:
        return int(fields[name])
    except KeyError:
        raise ImageError(path, f"CBF binary header lacks {name}") from None
    except ValueError:
        raise ImageError(path, f"CBF binary header has a non-integer {name}: {fields[name]!r}") from None


def decode_binary(path: str, fields: Dict[str, str], binary: bytes) -> np.ndarray:
    """The 2-D pixel array (slow, fast) of a byte-offset CBF binary section, validated."""
    conversion = fields.get("conversions", "").lower()
    if conversion != "x-cbf_byte_offset":
        raise ImageError(path, f"CBF compression {fields.get('conversions') or 'none'!r} is not byte-offset")
    fast = _int_field(path, fields, "x-binary-size-fastest-dimension")
    slow = _int_field(path, fields, "x-binary-size-second-dimension")
    n_elements = _int_field(path, fields, "x-binary-number-of-elements")
    size = _int_field(path, fields, "x-binary-size")
    shape = check_shape(path, (slow, fast))
    if n_elements != shape[0] * shape[1]:
        raise ImageError(path, f"CBF header says {n_elements} elements but {fast} x {slow} pixels")
    if size < 0 or size > len(binary):
        raise ImageError(path, f"CBF data truncated: header says {size} bytes, file holds {len(binary)}")
    if n_elements > size:
        raise ImageError(path, f"CBF header asks for {n_elements} pixels from {size} bytes: corrupt header")
    element_type = fields.get("x-binary-element-type", "signed 32-bit integer")
    dtype = _ELEMENT_TYPES.get(element_type.lower())
    if dtype is None:
        raise ImageError(path, f"unsupported CBF element type {element_type!r}")
    out, decoded = byte_offset_decode(binary[:size], n_elements, np.int32 if np.dtype(dtype).itemsize <= 4 and dtype != np.uint32 else np.int64)
    if decoded < n_elements:
        raise ImageError(path, f"CBF data truncated or corrupt: decoded {decoded} of {n_elements} pixels")
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# PILATUS header
# --------------------------------------------------------------------------------------------
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PILATUS_FIELDS = {
    "wavelength": (re.compile(r"^#\s*Wavelength\s+" + _NUMBER + r"\s*A", re.M), 1.0),
    "distance": (re.compile(r"^#\s*Detector_distance\s+" + _NUMBER + r"\s*m\b", re.M), 1000.0),
    "pixel_size": (re.compile(r"^#\s*Pixel_size\s+" + _NUMBER + r"\s*m\s*x", re.M), 1000.0),
    "count_cutoff": (re.compile(r"^#\s*Count_cutoff\s+" + _NUMBER, re.M), 1.0),
    "exposure_time": (re.compile(r"^#\s*Exposure_time\s+" + _NUMBER, re.M), 1.0),
    "start_angle": (re.compile(r"^#\s*Start_angle\s+" + _NUMBER, re.M), 1.0),
    "angle_increment": (re.compile(r"^#\s*Angle_increment\s+" + _NUMBER, re.M), 1.0),
    "transmission": (re.compile(r"^#\s*Filter_transmission\s+" + _NUMBER, re.M), 1.0),
    "two_theta": (re.compile(r"^#\s*Detector_2theta\s+" + _NUMBER, re.M), 1.0),
}
_BEAM_XY = re.compile(r"^#\s*Beam_xy\s*\(\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*\)\s*pixels", re.M)
_DETECTOR = re.compile(r"^#\s*Detector:\s*(.*?)\s*(?:,\s*S/N\s*(\S+))?\s*$", re.M)


def parse_pilatus_header(header: str) -> dict:
    """Values of a PILATUS-convention header: geometry fields (mm, Å, pixels) and metadata."""
    values = {}
    for name, (pattern, scale) in _PILATUS_FIELDS.items():
        match = pattern.search(header)
        if match:
            values[name] = float(match.group(1)) * scale
    beam = _BEAM_XY.search(header)
    if beam:
        values["beam_centre"] = (float(beam.group(1)), float(beam.group(2)))
    detector = _DETECTOR.search(header)
    if detector:
        values["detector_name"] = detector.group(1).strip()
        if detector.group(2):
            values["serial"] = detector.group(2)
    return values


def _detector_orientation(path: str, header: str, values: dict, shape) -> dict:
    """Geometry fields of the detector's orientation: from the imgCIF axis categories when the header
    carries them after its PILATUS lines (checked against ``Detector_2theta``, ``Detector_distance``
    and ``Beam_xy``, and used when they swing the detector), else from ``Detector_2theta`` in dxtbx's
    convention (:func:`two_theta_axes`; ``Beam_xy`` is then the foot of the perpendicular from the
    sample); {} for a detector facing the beam. Axis categories that cannot be read are refused for
    a swung detector and left aside for one the PILATUS lines say faces the beam."""
    try:
        return _orientation_fields(path, header, values, shape)
    except GeometryError as exc:  # the header's numbers give no detector the model holds
        raise ImageError(path, f"detector orientation: {exc}") from None


def _orientation_fields(path: str, header: str, values: dict, shape) -> dict:
    two_theta = values.get("two_theta", 0.0)
    facing = abs(two_theta) <= FACING_TILT_DEG
    axes = _header_axes(path, header, shape, facing) if "_axis." in header else None
    if axes is None:
        if facing or None in (values.get("distance"), values.get("pixel_size"), values.get("beam_centre")):
            return {}
        fast, slow = two_theta_axes(two_theta)
        swung = Geometry.from_perpendicular_foot(values["beam_centre"], distance=values["distance"], wavelength=1.0,
                                                 pixel_size=values["pixel_size"], shape=shape, fast_axis=fast,
                                                 slow_axis=slow)
        return {"beam_centre": swung.beam_centre, "fast_axis": fast, "slow_axis": slow}
    disagreements = []
    if abs(axes.tilt_deg - abs(two_theta)) > 0.5:
        disagreements.append(f"2θ {axes.tilt_deg:.2f}° vs Detector_2theta {two_theta:g}°")
    if values.get("distance") and abs(axes.distance - values["distance"]) > 0.01 * values["distance"]:
        disagreements.append(f"distance {axes.distance:.2f} mm vs Detector_distance {values['distance']:g} mm")
    if values.get("beam_centre") and max(abs(a - b) for a, b in zip(axes.perpendicular_foot, values["beam_centre"])) > 2:
        foot = ", ".join(f"{v:.1f}" for v in axes.perpendicular_foot)
        disagreements.append(f"perpendicular foot ({foot}) px vs Beam_xy {values['beam_centre']}")
    if disagreements:
        raise ImageError(path, "the header's imgCIF axes and its PILATUS lines disagree (" + "; ".join(disagreements)
                               + "): the detector's geometry is uncertain")
    if axes.faces_beam:  # the PILATUS lines give the same, to more digits
        return {}
    return {"distance": axes.distance, "beam_centre": axes.beam_centre, "pixel_size": axes.pixel_size,
            "fast_axis": axes.fast_axis, "slow_axis": axes.slow_axis}


def _header_axes(path: str, header: str, shape, facing: bool) -> Optional[Geometry]:
    """The detector the header's imgCIF axes place (wavelength a placeholder), None when it has no
    ``_axis`` category, or when its axes cannot be read and the PILATUS lines say the detector faces
    the beam (they then suffice; a swung detector's unreadable axes are refused)."""
    try:
        found = header_panel(path, header, shape)
        if found is None:
            return None
        layout = make_layout(path, [found[0]], found[1])
    except ImageError as exc:
        if not facing:
            raise ImageError(path, f"the header's imgCIF axes of a swung detector cannot be read: {exc.problem}") from None
        log.debug("%s: imgCIF axes left aside (%s); the PILATUS lines give the geometry", path, exc.problem)
        return None
    return Geometry(distance=layout.distance, wavelength=1.0, pixel_size=layout.pixel_size,
                    beam_centre=layout.beam_centre, shape=shape, fast_axis=layout.fast_axis,
                    slow_axis=layout.slow_axis)


def is_pilatus_header(header: str) -> bool:
    return bool(re.search(r'header_convention\s+"?(PILATUS|SLS)', header, re.I)) or "# Detector:" in header


class MiniCBFReader(Reader):
    name = "miniCBF"
    suffixes = (".cbf",)

    def identify(self, path, head):
        return head.startswith(b"###CBF") and is_pilatus_header(head.decode("latin-1"))

    def read(self, path, override: GeometryOverride) -> Iterator[Frame]:
        content = load_bytes(path)
        header, fields, binary = split_cbf(path, content)
        values = parse_pilatus_header(header)
        pixels = decode_binary(path, fields, binary)
        model = detectors.find(values.get("detector_name"), pixels.shape, values.get("pixel_size"))
        if model is not None and model.curved:
            raise ImageError(path, f"unsupported geometry: the {model.name} is a curved detector; "
                                   "xrais handles flat detectors only")
        fields = {
            "distance": values.get("distance"),
            "wavelength": values.get("wavelength"),
            "pixel_size": values.get("pixel_size"),
            "beam_centre": values.get("beam_centre"),
            "shape": pixels.shape,
            "detector": model.name if model else values.get("detector_name", "generic"),
        }
        fields.update(_detector_orientation(path, header, values, pixels.shape))
        geometry = make_geometry(path, fields, override)
        cutoff = values.get("count_cutoff")
        mask = invalid_mask(pixels, trusted_max=cutoff - 1 if cutoff else None, detector=geometry.detector)
        metadata = {k: v for k, v in values.items() if k not in ("wavelength", "distance", "pixel_size", "beam_centre")}
        yield Frame(pixels, mask, geometry, source=path, index=image_number(path), metadata=metadata)


READER = MiniCBFReader()


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------
def _orientation_header(geometry: Geometry, shape) -> Tuple[str, str]:
    """(PILATUS header lines, imgCIF categories) that give a detector's orientation: nothing for one
    facing the beam; ``Detector_2theta`` for one swung as that line alone reads (:func:`two_theta_axes`);
    for any other orientation also the imgCIF axes of the panel (origin, fast and slow axes), as the
    hybrid headers of Diamond's I19 carry them (:func:`_detector_orientation` reads them back)."""
    if geometry.faces_beam:
        return "", ""
    slow = geometry.slow_axis
    two_theta = math.degrees(math.atan2(-slow[2], -slow[1]))
    if np.allclose(two_theta_axes(two_theta), (geometry.fast_axis, slow), atol=1e-9):
        return f"# Detector_2theta {two_theta:.4f} deg.", ""
    origin, fast, pixel = geometry.origin, geometry.fast_axis, geometry.pixel_size
    vector = lambda values: " ".join(f"{v:.10f}" for v in values)  # noqa: E731
    axes = "\r\n".join([
        "loop_", "_axis.id", "_axis.type", "_axis.equipment", "_axis.depends_on",
        "_axis.vector[1] _axis.vector[2] _axis.vector[3]", "_axis.offset[1] _axis.offset[2] _axis.offset[3]",
        "SOURCE general source . 0 0 1 . . .",
        f"ELEMENT_X translation detector . {vector(fast)} {vector(origin)}",
        f"ELEMENT_Y translation detector ELEMENT_X {vector(slow)} 0 0 0",
        "", "loop_", "_array_structure_list.array_id", "_array_structure_list.index",
        "_array_structure_list.dimension", "_array_structure_list.precedence", "_array_structure_list.direction",
        "_array_structure_list.axis_set_id",
        f"ARRAY1 1 {shape[1]} 1 increasing ELEMENT_X", f"ARRAY1 2 {shape[0]} 2 increasing ELEMENT_Y",
        "", "loop_", "_array_structure_list_axis.axis_set_id", "_array_structure_list_axis.axis_id",
        "_array_structure_list_axis.displacement", "_array_structure_list_axis.displacement_increment",
        f"ELEMENT_X ELEMENT_X 0.0 {pixel:.10g}", f"ELEMENT_Y ELEMENT_Y 0.0 {pixel:.10g}", "",
    ])
    return f"# Detector_2theta {geometry.tilt_deg:.4f} deg.", axes


def write_cbf(path: str, pixels: np.ndarray, geometry: Geometry, count_cutoff: Optional[int] = None,
              exposure_time: float = 0.1, extra_header: str = "", start_angle: float = 0.0,
              angle_increment: float = 0.0) -> None:
    """Write a PILATUS-convention miniCBF (byte-offset, signed 32-bit) that xrais, fabio and dxtbx read;
    start_angle, angle_increment: the rotation (degrees) of a rotation frame (0: a still)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError("pixels must be 2-D (slow, fast)")
    two_theta_line, axes = _orientation_header(geometry, pixels.shape)
    data = byte_offset_encode(pixels)
    ns, nf = pixels.shape
    cutoff = count_cutoff if count_cutoff is not None else 1048575
    header_lines = [
        f"# Detector: {geometry.detector}, S/N xrais-sim",
        f"# Pixel_size {geometry.pixel_size * 1e-3:.6g} m x {geometry.pixel_size * 1e-3:.6g} m",
        f"# Exposure_time {exposure_time:.7f} s",
        f"# Count_cutoff {cutoff} counts",
        f"# Wavelength {geometry.wavelength:.5f} A",
        f"# Detector_distance {geometry.distance * 1e-3:.5f} m",
        "# Beam_xy ({:.2f}, {:.2f}) pixels".format(*geometry.perpendicular_foot),
        f"# Start_angle {start_angle:.4f} deg.",
        f"# Angle_increment {angle_increment:.4f} deg.",
    ]
    if two_theta_line:
        header_lines.append(two_theta_line)
    header_lines += [line if line.startswith("#") else "# " + line for line in extra_header.splitlines() if line.strip()]
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    text = "\r\n".join([
        "###CBF: VERSION 1.5, CBFlib v0.7.8 - xrais",
        "data_xrais",
        "",
        '_array_data.header_convention "PILATUS_1.2"',
        "_array_data.header_contents",
        ";",
        *header_lines,
        ";",
        "",
        *([axes] if axes else []),
        "_array_data.data",
        ";",
        "--CIF-BINARY-FORMAT-SECTION--",
        "Content-Type: application/octet-stream;",
        '     conversions="x-CBF_BYTE_OFFSET"',
        "Content-Transfer-Encoding: BINARY",
        f"X-Binary-Size: {len(data)}",
        "X-Binary-ID: 1",
        'X-Binary-Element-Type: "signed 32-bit integer"',
        "X-Binary-Element-Byte-Order: LITTLE_ENDIAN",
        f"Content-MD5: {md5}",
        f"X-Binary-Number-of-Elements: {ns * nf}",
        f"X-Binary-Size-Fastest-Dimension: {nf}",
        f"X-Binary-Size-Second-Dimension: {ns}",
        "X-Binary-Size-Padding: 4095",
        "",
        "",
    ]).encode("latin-1")
    trailer = b"\x00" * 4095 + b"\r\n--CIF-BINARY-FORMAT-SECTION----\r\n;\r\n\r\n"
    with open(path, "wb") as handle:
        handle.write(text + BINARY_START + data + trailer)
