"""imgCIF reader on the real XFEL CBF files: Rayonix MX340 (one panel) and CS-PAD (64 ASICs).

The geometry is checked against the header values, the DIALS model beside the Rayonix image, and
CBFlib's own geometry engine (pycbf ``construct_detector``), panel by panel and pixel by pixel.
"""
import gzip
import json
import re

import numpy as np
import pytest

from iohelpers import cbflib_panels
from xrais.io import ImageError, identify, open_image
from xrais.io.assemble import make_layout, to_frame
from xrais.io.geometry import GeometryOverride

CSPAD_FILES = ["idx-20130301060858401.cbf", "idx-20130301060858601.cbf", "idx-20130301060858701.cbf",
               "idx-20130301060858801.cbf"]
CSPAD_WAVELENGTHS = [1.272607, 1.272444, 1.271876, 1.270917]


@pytest.fixture(scope="module")
def rayonix(shared_data):
    return shared_data / "rayonix340" / "hit-20181213155134902.cbf"


@pytest.fixture(scope="module")
def cspad(shared_data):
    return shared_data / "thermolysin_cspad" / CSPAD_FILES[0]


def test_rayonix_geometry_from_the_axis_hierarchy(rayonix):
    assert identify(str(rayonix)).name == "imgCIF"
    frame = open_image(rayonix)
    g = frame.geometry
    # header: AXIS_D0_Z displacement −124.0 mm; AXIS_D0_S offset (−170, 170, 0); pitch 0.177083333333 mm
    assert g.distance == pytest.approx(124.0) and g.wavelength == pytest.approx(1.30375729885)
    assert g.pixel_size == pytest.approx(0.177083333333) and g.shape == (1920, 1920)
    assert g.beam_centre == pytest.approx((170 / 0.177083333333, 170 / 0.177083333333))
    assert g.detector == "Rayonix MX340-HS 4x4" and g.downsample == 2
    assert frame.pixels.dtype == np.int32 and frame.pixels.min() == 0 and frame.pixels.max() == 31096
    assert not frame.mask.any()


def test_rayonix_agrees_with_the_dials_model_of_its_sibling_frame(rayonix):
    model = json.loads((rayonix.parent / "experiments_000.json").read_text())
    panel = model["detector"][0]["panels"][0]
    pixel = panel["pixel_size"][0]
    dials_distance = -panel["origin"][2]
    dials_beam = (-panel["origin"][0] / pixel, panel["origin"][1] / pixel)
    assert dials_beam == pytest.approx((959.67, 960.38), abs=0.01)  # the README's values
    g = open_image(rayonix).geometry
    assert abs(g.distance - dials_distance) < 0.5  # refined distance of the sibling: 123.55 mm
    assert max(abs(a - b) for a, b in zip(g.beam_centre, dials_beam)) < 1.0
    assert abs(g.wavelength - model["beam"][0]["wavelength"]) < 0.005


def test_panel_geometry_matches_cbflib_for_every_panel(rayonix, cspad):
    from xrais.io.imgcif import _Axes, _Parsed, _panel_geometry, read_table  # the reader's own chain

    for path in (rayonix, cspad):
        raw, expected, _ = cbflib_panels(path)
        parsed = _Parsed(str(path))
        axes = _Axes(str(path), lambda category: read_table(str(path), parsed.handle, category))
        sets = {}
        for row in read_table(str(path), parsed.handle, "array_structure_list_axis"):
            sets.setdefault(row["axis_set_id"], []).append(row)
        for spec, data, reference in zip(parsed.specs, raw.pixels, expected):
            ours = _panel_geometry(str(path), spec, axes, sets, data.shape)
            assert ours.name == reference.name
            for a, b in [(ours.origin, reference.origin), (ours.fast_axis, reference.fast_axis),
                         (ours.slow_axis, reference.slow_axis), (ours.pixel_size, reference.pixel_size)]:
                np.testing.assert_allclose(a, b, atol=1e-9)


def test_cspad_assembles_like_cbflib_and_keeps_every_scattering_angle(cspad):
    frame = open_image(cspad)
    raw, panels, detectors = cbflib_panels(cspad)
    layout = make_layout(str(cspad), panels, (0.0, 0.0, -1.0))
    reference = to_frame(str(cspad), layout, raw.pixels, raw.masks, frame.geometry.wavelength, GeometryOverride(),
                         "CS PAD")
    np.testing.assert_array_equal(frame.pixels, reference.pixels)
    np.testing.assert_array_equal(frame.mask, reference.mask)
    for name in ("distance", "wavelength", "pixel_size", "beam_centre", "shape"):
        assert getattr(frame.geometry, name) == pytest.approx(getattr(reference.geometry, name), rel=1e-9)
    assert frame.metadata["panels"] == 64 and frame.geometry.shape == (1726, 1729)
    # every image pixel shows the panel pixel with its scattering angle (CBFlib's pixel positions)
    offsets = np.cumsum([0] + [p.shape[0] * p.shape[1] for p in panels])
    covered = np.argwhere(layout.source >= 0)
    rng = np.random.default_rng(0)
    g = frame.geometry
    for j, i in covered[rng.choice(len(covered), 3000, replace=False)]:
        flat = int(layout.source[j, i])
        k = int(np.searchsorted(offsets, flat, side="right") - 1)
        slow, fast = divmod(flat - int(offsets[k]), panels[k].shape[1])
        position = np.array(detectors[panels[k].name].get_pixel_coordinates_fs(fast + 0.5, slow + 0.5))
        true = np.arccos(-position[2] / np.linalg.norm(position))
        image = np.arctan(np.hypot(i + 0.5 - g.beam_centre[0], j + 0.5 - g.beam_centre[1]) * g.pixel_size / g.distance)
        assert abs(true - image) < 0.75 * g.pixel_size / g.distance
    # gaps between ASICs are masked, and little else (pixels at or below undefined_value −400; the
    # slightly rotated ASICs gain or lose a few pixels to nearest-pixel sampling)
    valid = 64 * 185 * 194 - sum((p <= -400).sum() for p in raw.pixels)
    assert abs((~frame.mask).sum() - valid) < 1e-4 * valid


@pytest.mark.parametrize("name, wavelength", list(zip(CSPAD_FILES, CSPAD_WAVELENGTHS)))
def test_every_cspad_file(shared_data, name, wavelength):
    g = open_image(shared_data / "thermolysin_cspad" / name).geometry
    assert g.wavelength == pytest.approx(wavelength) and abs(g.wavelength - 1.271) < 0.002  # README: ≈ 1.271 Å
    assert g.distance == pytest.approx(130.1066, abs=1e-3) and g.pixel_size == pytest.approx(0.10992)
    assert g.beam_centre == pytest.approx((870.78, 862.19), abs=0.01) and g.downsample == 2


def test_compressed_cbf_reads(cspad, tmp_path):
    packed = tmp_path / "cspad.cbf.gz"
    packed.write_bytes(gzip.compress(cspad.read_bytes(), compresslevel=1))
    np.testing.assert_array_equal(open_image(packed).pixels, open_image(cspad).pixels)


def test_truncated_and_corrupted_cbf(rayonix, tmp_path):
    content = rayonix.read_bytes()
    cut = tmp_path / "cut.cbf"
    cut.write_bytes(content[:len(content) // 2])
    with pytest.raises(ImageError, match="cut.cbf: "):
        open_image(cut)
    flipped = bytearray(content)
    flipped[-100_000] ^= 0xFF
    bad = tmp_path / "flipped.cbf"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ImageError, match="flipped.cbf: .*array ARRAY_Rayonix.*CBF_FORMAT"):
        open_image(bad)


@pytest.mark.parametrize("fraction", [0.5, 0.01])
def test_truncated_cspad_cbf_says_truncated_and_cbflib_stays_off_the_terminal(cspad, tmp_path, capfd, caplog,
                                                                              fraction):
    """Issue 18, item 3: a CS-PAD CBF cut to half its bytes (CBFlib cannot parse it) or to 1 % (the
    header is cut before _array_data) is "corrupt or truncated", not "not a diffraction image", and
    CBFlib's own "CBFlib: warning …" lines go to the log at debug level, not to the terminal."""
    import logging

    content = cspad.read_bytes()
    cut = tmp_path / "cut.cbf"
    cut.write_bytes(content[:int(len(content) * fraction)])
    with caplog.at_level(logging.DEBUG, logger="xrais.io.imgcif"):
        with pytest.raises(ImageError) as error:
            open_image(cut)
    assert str(error.value).startswith(f"{cut}: corrupt or truncated CBF file")
    assert "not a diffraction image" not in str(error.value)
    captured = capfd.readouterr()
    assert "CBFlib" not in captured.err + captured.out
    assert any(record.levelno == logging.DEBUG and "CBFlib: " in record.getMessage() for record in caplog.records)


def test_cbf_without_axes_asks_for_the_geometry(rayonix, tmp_path):
    content = rayonix.read_bytes()
    start = content.index(b"loop_\r\n_axis.id")
    end = content.index(b"loop_\r\n_diffrn_scan_axis.axis_id")
    stripped = tmp_path / "noaxes.cbf"
    stripped.write_bytes(content[:start] + content[end:])
    with pytest.raises(ImageError, match=re.escape("header has no distance, pixel_size, beam_centre; give it with "
                                                   "geometry.distance=<mm>")):
        open_image(stripped)
    frame = open_image(stripped, geometry={"distance": 124, "pixel_size": 0.177, "beam_centre": (960, 960)})
    assert frame.geometry.wavelength == pytest.approx(1.30375729885)


def test_a_model_cif_is_not_an_image(tmp_path):
    model = tmp_path / "1abc.cif.gz"
    model.write_bytes(gzip.compress(b"data_1ABC\n_cell.length_a 57.8\nloop_\n_atom_site.id\n1\n2\n"))
    with pytest.raises(ImageError, match="1abc.cif.gz: CIF file holds no image array"):
        open_image(model)
