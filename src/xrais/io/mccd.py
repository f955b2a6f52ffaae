"""MarCCD / Rayonix ``.mccd``: reader and writer.

A MarCCD file is an uncompressed TIFF (16- or 32-bit unsigned pixels, usually at byte 4096) with
the 3072-byte MarCCD ``frame_header`` at byte 1024, in the TIFF's byte order. Header fields used
(offsets from the file start, integers scaled as the header defines them):

* 1104/1108/1112 ``nfast``/``nslow``/``depth`` (must agree with the TIFF tags);
* 1128 ``saturated_value`` (counts; pixels at or above it are masked);
* 1140/1144/1148 ``origin``/``orientation``/``view_direction`` (only 0, the standard layout);
* 1664 ``xtal_to_detector`` (µm; 0 → 1720 ``start_xtal_to_detector``);
* 1668/1672 ``beam_x``/``beam_y`` (1/1000 pixel; x along the fast axis, as dxtbx reads it);
* 1680 ``exposure_time`` (ms); 1692 ``start_twotheta`` (1/1000 °);
* 1764–1772 ``detector_rotx/y/z`` (1/1000 °); 1796/1800 ``pixelsize_x/y`` (nm);
* 1804 ``mean_bias`` (1/1000 count, reported, not subtracted); 1932 ``source_wavelength`` (fm).

Beam positions are in pixels from the outer corner of pixel (0, 0). A detector two-theta offset or
rotation is not supported.
"""
from __future__ import annotations

import struct
from typing import Dict, Iterator, Tuple

import numpy as np

from . import detectors
from .base import Reader, check_shape, image_number, load_bytes, make_geometry, strip_compression
from .errors import ImageError
from .frame import Frame
from .geometry import Geometry, GeometryOverride

HEADER_OFFSET = 1024
HEADER_SIZE = 3072
DATA_OFFSET = HEADER_OFFSET + HEADER_SIZE
#: Largest two-theta offset or detector rotation (degrees) still treated as facing the beam.
MAX_ANGLE_DEG = 0.1

_TIFF_MAGIC = {b"II*\x00": "<", b"MM\x00*": ">"}
_TIFF_TYPE_SIZES = {1: 1, 3: 2, 4: 4}
_TIFF_TYPE_CODES = {1: "B", 3: "H", 4: "I"}
_FIELDS = {  # name: (offset, struct code, scale)
    "nfast": (1104, "I", 1), "nslow": (1108, "I", 1), "depth": (1112, "I", 1),
    "saturated_value": (1128, "I", 1), "origin": (1140, "I", 1), "orientation": (1144, "I", 1),
    "view_direction": (1148, "I", 1),
    "distance": (1664, "i", 1e-3), "beam_x": (1668, "i", 1e-3), "beam_y": (1672, "i", 1e-3),
    "exposure_time": (1680, "i", 1e-3), "two_theta": (1692, "i", 1e-3),
    "start_distance": (1720, "i", 1e-3),
    "rot_x": (1764, "i", 1e-3), "rot_y": (1768, "i", 1e-3), "rot_z": (1772, "i", 1e-3),
    "pixel_size_x": (1796, "i", 1e-6), "pixel_size_y": (1800, "i", 1e-6), "bias": (1804, "i", 1e-3),
    "wavelength": (1932, "i", 1e-5),
}


def _tiff_tags(path: str, content: bytes) -> Tuple[str, Dict[int, tuple]]:
    """(struct byte-order prefix, tag → values) of the first TIFF image directory."""
    order = _TIFF_MAGIC.get(content[:4])
    if order is None:
        raise ImageError(path, "not a TIFF file")
    if len(content) < 8:
        raise ImageError(path, "TIFF header truncated")
    (ifd,) = struct.unpack(order + "I", content[4:8])
    if ifd + 2 > len(content):
        raise ImageError(path, f"TIFF directory offset {ifd} is beyond the end of the file")
    (count,) = struct.unpack(order + "H", content[ifd:ifd + 2])
    if ifd + 2 + 12 * count > len(content):
        raise ImageError(path, "TIFF directory truncated")
    tags = {}
    for k in range(count):
        tag, kind, n, value = struct.unpack(order + "HHII", content[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
        if kind not in _TIFF_TYPE_SIZES:
            continue
        size = _TIFF_TYPE_SIZES[kind] * n
        if size <= 4:
            raw = content[ifd + 10 + 12 * k:ifd + 10 + 12 * k + size]
        elif value + size <= len(content):
            raw = content[value:value + size]
        else:
            raise ImageError(path, f"TIFF tag {tag} points beyond the end of the file")
        tags[tag] = struct.unpack(f"{order}{n}{_TIFF_TYPE_CODES[kind]}", raw)
    return order, tags


def _tag(path, tags, tag, name, default=None) -> int:
    values = tags.get(tag)
    if not values:
        if default is None:
            raise ImageError(path, f"TIFF has no {name} tag")
        return default
    return int(values[0])


def parse_header(content: bytes, order: str) -> Dict[str, float]:
    """MarCCD header values (scaled to pixels, mm, Å, s, degrees as in the module docstring)."""
    return {name: struct.unpack_from(order + code, content, offset)[0] * scale
            for name, (offset, code, scale) in _FIELDS.items()}


class MarCCDReader(Reader):
    name = "MarCCD"
    suffixes = (".mccd",)

    def identify(self, path, head):
        """A TIFF named .mccd, or any TIFF whose MarCCD header agrees with its TIFF tags."""
        if head[:4] not in _TIFF_MAGIC:
            return False
        if strip_compression(path).lower().endswith(self.suffixes):
            return True
        if len(head) < DATA_OFFSET:
            return False
        try:
            order, tags = _tiff_tags(path, head)
        except ImageError:
            return False
        header = parse_header(head, order)
        return (tags.get(256, (None,))[0] == header["nfast"] and tags.get(257, (None,))[0] == header["nslow"]
                and tags.get(258, (None,))[0] == 8 * header["depth"])

    def read(self, path, override: GeometryOverride) -> Iterator[Frame]:
        content = load_bytes(path)
        order, tags = _tiff_tags(path, content)
        if len(content) < DATA_OFFSET:
            raise ImageError(path, "MarCCD header truncated")
        header = parse_header(content, order)
        pixels = self._pixels(path, content, order, tags, header)
        self._check_orientation(path, header)
        saturation = header["saturated_value"] or float(np.iinfo(pixels.dtype).max)
        mask = pixels >= saturation
        pixel_x, pixel_y = header["pixel_size_x"], header["pixel_size_y"]
        if pixel_x and pixel_y and abs(pixel_x - pixel_y) > 1e-3 * pixel_x:
            raise ImageError(path, f"unsupported geometry: non-square pixels {pixel_x:g} x {pixel_y:g} mm")
        pixel_size = pixel_x or None
        beam = (header["beam_x"], header["beam_y"]) if header["beam_x"] or header["beam_y"] else None
        model = detectors.find(None, pixels.shape, pixel_size)
        geometry = make_geometry(path, {
            "distance": header["distance"] or header["start_distance"] or None,
            "wavelength": header["wavelength"] or None,
            "pixel_size": pixel_size,
            "beam_centre": beam,
            "shape": pixels.shape,
            "detector": model.name if model else "MarCCD",
        }, override)
        metadata = {"format": "MarCCD", "exposure_time": header["exposure_time"], "bias": header["bias"],
                    "saturation": saturation}
        yield Frame(pixels.astype(np.int32) if pixels.dtype == np.uint16 else pixels, mask, geometry,
                    source=path, index=image_number(path), metadata=metadata)

    @staticmethod
    def _pixels(path, content, order, tags, header) -> np.ndarray:
        width, height = _tag(path, tags, 256, "ImageWidth"), _tag(path, tags, 257, "ImageLength")
        bits = _tag(path, tags, 258, "BitsPerSample", 1)
        if _tag(path, tags, 259, "Compression", 1) != 1:
            raise ImageError(path, "compressed MarCCD TIFF is not supported")
        if _tag(path, tags, 277, "SamplesPerPixel", 1) != 1:
            raise ImageError(path, "MarCCD TIFF has several samples per pixel; expected a grey image")
        if bits not in (16, 32):
            raise ImageError(path, f"MarCCD TIFF has {bits}-bit pixels; expected 16 or 32")
        if (width, height, bits) != (header["nfast"], header["nslow"], 8 * header["depth"]):
            raise ImageError(path, f"MarCCD header ({header['nfast']} x {header['nslow']}, {header['depth']} bytes) "
                                   f"disagrees with its TIFF tags ({width} x {height}, {bits} bits)")
        shape = check_shape(path, (height, width))
        offsets, counts = tags.get(273), tags.get(279)
        if not offsets or not counts or len(offsets) != len(counts):
            raise ImageError(path, "MarCCD TIFF has no (or inconsistent) strip offsets")
        n_bytes = shape[0] * shape[1] * bits // 8
        if sum(counts) < n_bytes:
            raise ImageError(path, f"MarCCD TIFF strips hold {sum(counts)} bytes, the image needs {n_bytes}")
        if any(offset + count > len(content) for offset, count in zip(offsets, counts)):
            raise ImageError(path, f"MarCCD data truncated: the file ends at byte {len(content)}")
        if len(offsets) == 1:
            data = memoryview(content)[offsets[0]:offsets[0] + n_bytes]
        else:
            data = b"".join(content[offset:offset + count] for offset, count in zip(offsets, counts))[:n_bytes]
        return np.frombuffer(data, dtype=f"{order}u{bits // 8}").reshape(shape).astype(f"=u{bits // 8}")

    @staticmethod
    def _check_orientation(path, header):
        layout = (header["origin"], header["orientation"], header["view_direction"])
        if any(layout):
            raise ImageError(path, f"unsupported MarCCD pixel layout (origin, orientation, view) = {layout}")
        for name in ("two_theta", "rot_x", "rot_y", "rot_z"):
            if abs(header[name]) > MAX_ANGLE_DEG:
                raise ImageError(path, f"unsupported geometry: detector {name.replace('_', ' ')} is "
                                       f"{header[name]:g}° (only detectors facing the beam are supported)")


READER = MarCCDReader()


def write_mccd(path: str, pixels: np.ndarray, geometry: Geometry, saturation: int = 65535,
               exposure_time: float = 1.0, bias: float = 0.0, byte_order: str = "<") -> None:
    """Write a MarCCD ``.mccd`` (uncompressed 16-bit TIFF + MarCCD header; values clipped to
    0…65535) that xrais, fabio and dxtbx read."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError("pixels must be 2-D (slow, fast)")
    if byte_order not in ("<", ">"):
        raise ValueError("byte_order must be '<' or '>'")
    height, width = pixels.shape
    n_bytes = width * height * 2
    entries = [  # tag, type, value (SHORT = 3, LONG = 4)
        (256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 1), (273, 4, DATA_OFFSET),
        (277, 3, 1), (278, 4, height), (279, 4, n_bytes), (284, 3, 1), (339, 3, 1),
    ]
    ifd = struct.pack(byte_order + "H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack(byte_order + ("H" if kind == 3 else "I"), value).ljust(4, b"\x00")
        ifd += struct.pack(byte_order + "HHI", tag, kind, 1) + packed
    ifd += struct.pack(byte_order + "I", 0)
    magic = b"II*\x00" if byte_order == "<" else b"MM\x00*"
    head = bytearray((magic + struct.pack(byte_order + "I", 8) + ifd).ljust(DATA_OFFSET, b"\x00"))

    def put(offset, code, value):
        struct.pack_into(byte_order + code, head, offset, value)

    head[HEADER_OFFSET + 4:HEADER_OFFSET + 7] = b"MMX"
    put(HEADER_OFFSET + 28, "I", 1234 if byte_order == "<" else 4321)
    put(HEADER_OFFSET + 32, "I", 1234 if byte_order == "<" else 4321)
    put(HEADER_OFFSET + 36, "I", HEADER_SIZE)
    put(HEADER_OFFSET + 92, "I", width)  # record_length
    put(HEADER_OFFSET + 96, "I", 16)  # signif_bits
    put(HEADER_OFFSET + 112, "I", 1)  # nimages
    values = {
        "nfast": width, "nslow": height, "depth": 2, "saturated_value": saturation,
        "distance": geometry.distance, "start_distance": geometry.distance,
        "beam_x": geometry.beam_centre[0], "beam_y": geometry.beam_centre[1],
        "exposure_time": exposure_time, "pixel_size_x": geometry.pixel_size, "pixel_size_y": geometry.pixel_size,
        "bias": bias, "wavelength": geometry.wavelength,
    }
    for name, value in values.items():
        offset, code, scale = _FIELDS[name]
        put(offset, code, int(round(value / scale)))
    data = np.clip(pixels, 0, 65535).astype(byte_order + "u2")
    with open(path, "wb") as handle:
        handle.write(bytes(head) + data.tobytes())
