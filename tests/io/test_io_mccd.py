"""MarCCD/Rayonix .mccd reader and writer (checked against fabio's own MarCCD header parser)."""
import struct

import fabio
import numpy as np
import pytest
from fabio import marccdimage

from xrais.io import Geometry, ImageError, identify, open_image
from xrais.io.mccd import write_mccd

GEOMETRY = Geometry(distance=150.0, wavelength=1.0332, pixel_size=0.0816, beam_centre=(200.5, 150.25), shape=(300, 400))


def _pixels(seed=0):
    return np.random.default_rng(seed).poisson(40, (300, 400)).astype(np.int32) + 10


def _patch(path, offset, code, value, order="<"):
    content = bytearray(path.read_bytes())
    struct.pack_into(order + code, content, offset, value)
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_written_mccd_round_trips(tmp_path, byte_order):
    path = tmp_path / "sim_00001.mccd"
    pixels = _pixels()
    pixels[5, 7] = 65535
    write_mccd(str(path), pixels, GEOMETRY, byte_order=byte_order, bias=10.0)
    assert identify(str(path)).name == "MarCCD"
    frame = open_image(path)
    np.testing.assert_array_equal(frame.pixels, pixels)
    g = frame.geometry
    assert (g.distance, g.beam_centre, g.shape) == (150.0, (200.5, 150.25), (300, 400))
    assert g.wavelength == pytest.approx(1.0332) and g.pixel_size == pytest.approx(0.0816)
    assert frame.mask.sum() == 1 and frame.mask[5, 7]
    assert frame.metadata["bias"] == 10.0


def test_fabio_reads_the_written_file_and_its_header_layout_agrees(tmp_path):
    path = tmp_path / "sim.mccd"
    pixels = _pixels()
    write_mccd(str(path), pixels, GEOMETRY)
    image = fabio.open(str(path))
    assert type(image).__name__ == "MarccdImage"
    np.testing.assert_array_equal(image.data, pixels)
    header = marccdimage.interpret_header(path.read_bytes()[1024:4096], marccdimage.HEADER_FORMAT,
                                          marccdimage.HEADER_NAMES)
    assert (header["nfast"], header["nslow"], header["depth"]) == (400, 300, 2)
    assert header["xtal_to_detector"] == 150_000 and header["source_wavelength"] == 103_320
    assert (header["beam_x"], header["beam_y"]) == (200_500, 150_250)
    assert header["pixelsize_x"] == header["pixelsize_y"] == 81_600


def test_real_mx340_shape_is_recognised(tmp_path):
    path = tmp_path / "mx340.mccd"
    geometry = Geometry(distance=200.0, wavelength=1.3, pixel_size=0.08854, beam_centre=(1920.0, 1921.0),
                        shape=(3840, 3840))
    write_mccd(str(path), np.zeros((3840, 3840), np.uint16), geometry)
    frame = open_image(path)
    assert frame.geometry.detector == "Rayonix MX340-HS" and frame.geometry.downsample == 4


@pytest.mark.parametrize("patches, problem", [
    ([(1664, "i", 0), (1720, "i", 0)], "header has no distance; give it with geometry.distance=<mm>"),
    ([(1932, "i", 0)], "header has no wavelength; give it with geometry.wavelength=<Å>"),
    ([(1932, "i", -100)], "wavelength = -0.001 Å makes no sense"),
    ([(1692, "i", 20_000)], "unsupported geometry: detector two theta is 20°"),
    ([(1768, "i", -3_000)], "unsupported geometry: detector rot y is -3°"),
    ([(1800, "i", 100_000)], "non-square pixels"),
    ([(1144, "I", 1)], r"unsupported MarCCD pixel layout \(origin, orientation, view\) = \(0, 1, 0\)"),
    ([(1104, "I", 401)], "MarCCD header .* disagrees with its TIFF tags"),
])
def test_bad_headers_give_one_clear_error(tmp_path, patches, problem):
    path = tmp_path / "bad.mccd"
    write_mccd(str(path), _pixels(), GEOMETRY)
    for offset, code, value in patches:
        _patch(path, offset, code, value)
    with pytest.raises(ImageError, match=problem):
        open_image(path)


def test_start_distance_is_used_when_the_distance_field_is_empty(tmp_path):
    path = tmp_path / "start.mccd"
    write_mccd(str(path), _pixels(), GEOMETRY)
    _patch(path, 1664, "i", 0)
    _patch(path, 1720, "i", 123_456)
    assert open_image(path).geometry.distance == pytest.approx(123.456)


def test_truncated_and_plain_tiff_files(tmp_path):
    path = tmp_path / "cut.mccd"
    write_mccd(str(path), _pixels(), GEOMETRY)
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(ImageError, match="MarCCD data truncated"):
        open_image(path)
    plain = tmp_path / "photo.tif"
    fabio.tifimage.TifImage(data=_pixels().astype(np.uint16)).write(str(plain))
    with pytest.raises(ImageError, match="unknown image format"):
        open_image(plain)


def test_missing_geometry_from_override(tmp_path):
    path = tmp_path / "nowl.mccd"
    write_mccd(str(path), _pixels(), GEOMETRY)
    _patch(path, 1932, "i", 0)
    assert open_image(path, geometry={"wavelength": 0.8}).geometry.wavelength == 0.8
