"""SMV/ADSC reader and writer: the real ADSC Q4 image from cctbx, and written files."""
import fabio
import numpy as np
import pytest

from xrais.io import Geometry, ImageError, identify, open_image
from xrais.io.smv import write_smv

GEOMETRY = Geometry(distance=180.0, wavelength=0.9795, pixel_size=0.1024, beam_centre=(150.25, 110.5), shape=(240, 300))


def _pixels(shape=(240, 300), seed=0):
    return np.random.default_rng(seed).poisson(20, shape).astype(np.int32)


def _header_and_data(path):
    content = path.read_bytes()
    size = int(content[15:content.index(b";")].decode())
    return content[:size].decode("latin-1"), content[size:]


def _rewrite_header(path, old, new):
    header, data = _header_and_data(path)
    assert old in header
    edited = header.replace(old, new).rstrip(" ")
    assert len(edited) <= len(header)
    path.write_bytes(edited.ljust(len(header)).encode("latin-1") + data)


def _diffuse_ring_misfit(pixels, centre):
    """Spread of the background around its azimuthal mean for a trial beam centre (fast, slow):
    smallest at the true centre (solvent scattering is rotationally symmetric)."""
    slow, fast = np.indices(pixels.shape)
    keep = (slow % 3 == 0) & (fast % 3 == 0) & (pixels > 0) & ~((fast > 1110) & (fast < 1200))
    values = pixels[keep].astype(float)
    keep_low = values < np.percentile(values, 97)
    values = values[keep_low]
    radius = np.hypot(fast[keep][keep_low] + 0.5 - centre[0], slow[keep][keep_low] + 0.5 - centre[1])
    ring = (radius > 300) & (radius < 1000)
    shell = (radius[ring] / 3).astype(int)
    mean = np.bincount(shell, weights=values[ring]) / np.maximum(np.bincount(shell), 1)
    return float(np.mean((values[ring] - mean[shell]) ** 2))


def test_real_adsc_q4_image(adsc_image):
    frame = open_image(adsc_image)
    assert identify(str(adsc_image)).name == "SMV"
    g = frame.geometry
    # header: DISTANCE=250.0 WAVELENGTH=1.0000 PIXEL_SIZE=0.081600 SIZE1=SIZE2=2304, DETECTOR_SN=423 (ALS 5.0.3)
    assert (g.distance, g.wavelength, g.pixel_size, g.shape) == (250.0, 1.0, 0.0816, (2304, 2304))
    assert g.detector == "ADSC Q4" and g.downsample == 2
    # ALS detector: standard-frame beam in DENZO_YBEAM=99.30 (fast), DENZO_XBEAM=93.30 (slow) mm
    assert g.beam_centre == pytest.approx((99.30 / 0.0816, 93.30 / 0.0816))
    assert frame.metadata["serial"] == "423"
    np.testing.assert_array_equal(frame.pixels, fabio.open(str(adsc_image)).data)
    assert not frame.mask.any() and frame.pixels.max() < 65535


def test_real_adsc_beam_centre_is_where_the_diffuse_scattering_is_centred(adsc_image):
    frame = open_image(adsc_image)
    header_centre = frame.geometry.beam_centre
    misfit = _diffuse_ring_misfit(frame.pixels, header_centre)
    generic_adsc = (94.70 / 0.0816, 99.30 / 0.0816)  # BEAM_CENTER_Y, BEAM_CENTER_X read as fast, slow
    assert misfit < 0.5 * _diffuse_ring_misfit(frame.pixels, generic_adsc)
    assert misfit < _diffuse_ring_misfit(frame.pixels, (header_centre[0] + 15, header_centre[1] - 15))


@pytest.mark.parametrize("byte_order", ["little_endian", "big_endian"])
def test_written_smv_round_trips_and_fabio_reads_it(tmp_path, byte_order):
    path = tmp_path / "sim_00001.img"
    pixels = _pixels()
    write_smv(str(path), pixels, GEOMETRY, byte_order=byte_order)
    frame = open_image(path)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert frame.geometry.distance == 180.0 and frame.geometry.wavelength == pytest.approx(0.9795)
    assert frame.geometry.beam_centre == pytest.approx((150.25, 110.5), abs=0.01)
    assert frame.geometry.pixel_size == pytest.approx(0.1024)
    header, _ = _header_and_data(path)
    # ADSC convention: BEAM_CENTER_X is along slow, BEAM_CENTER_Y along fast (mm)
    assert f"BEAM_CENTER_X={110.5 * 0.1024:.3f};" in header and f"BEAM_CENTER_Y={150.25 * 0.1024:.3f};" in header
    np.testing.assert_array_equal(fabio.open(str(path)).data, pixels)


def test_pedestal_is_subtracted_and_saturation_masked(tmp_path):
    path = tmp_path / "ped.img"
    pixels = _pixels()
    pixels[3, 4] = 65535
    write_smv(str(path), pixels, GEOMETRY)
    _rewrite_header(path, "CCD_IMAGE_SATURATION=65535;", "CCD_IMAGE_SATURATION=65000;\nIMAGE_PEDESTAL=40;")
    frame = open_image(path)
    np.testing.assert_array_equal(frame.pixels, pixels - 40)
    assert frame.mask.sum() == 1 and frame.mask[3, 4]
    assert frame.metadata["pedestal"] == 40


def test_compressed_smv_reads(tmp_path):
    import bz2

    path = tmp_path / "sim.img"
    write_smv(str(path), _pixels(), GEOMETRY)
    packed = tmp_path / "sim.img.bz2"
    packed.write_bytes(bz2.compress(path.read_bytes()))
    np.testing.assert_array_equal(open_image(packed).pixels, open_image(path).pixels)


@pytest.mark.parametrize("old, new, problem", [
    ("TWOTHETA=0.00;", "TWOTHETA=15.0;", "unsupported geometry: detector two-theta offset 15°"),
    ("TYPE=unsigned_short;", "TYPE=complex;", "unsupported SMV TYPE 'complex'"),
    ("SIZE1=300;", "SIZE1=3000000;", "implausibly large"),
    ("SIZE2=240;", "SIZE2=2400;", "SMV data truncated"),
    ("SIZE1=300;", "SIZE1=three hundred;", "SIZE1='three hundred' is not a number"),
    ("DISTANCE=180.000;", "DISTANCE=0;", "distance = 0 mm makes no sense.*geometry override"),
    ("WAVELENGTH=0.979500;", "WAVELENGTH=0.0;", "wavelength = 0 Å makes no sense"),
    ("DISTANCE=180.000;\n", "", "header has no distance; give it with geometry.distance=<mm>"),
    ("TWOTHETA=0.00;", "TWOTHETA=nan;", "TWOTHETA='nan' is not a finite number"),
    ("TWOTHETA=0.00;", "IMAGE_PEDESTAL=1e30;", "IMAGE_PEDESTAL=1e\\+30 makes no sense"),
])
def test_bad_headers_give_one_clear_error(tmp_path, old, new, problem):
    path = tmp_path / "bad.img"
    write_smv(str(path), _pixels(), GEOMETRY)
    _rewrite_header(path, old, new)
    with pytest.raises(ImageError, match=problem) as error:
        open_image(path)
    assert str(error.value).startswith(str(path))


def test_missing_geometry_can_be_given_by_override(tmp_path):
    path = tmp_path / "nogeom.img"
    write_smv(str(path), _pixels(), GEOMETRY)
    for key in ("DISTANCE=180.000;\n", "BEAM_CENTER_X=11.315;\n", "WAVELENGTH=0.979500;\n"):
        _rewrite_header(path, key, "")
    with pytest.raises(ImageError, match="header has no distance, wavelength, beam_centre; give it with "
                                         "geometry.distance=<mm>, geometry.wavelength=<Å>, geometry.beam_centre"):
        open_image(path)
    frame = open_image(path, geometry={"distance": 200.0, "wavelength": 1.0, "beam_centre": (150, 120)})
    assert frame.geometry.distance == 200.0 and frame.geometry.beam_centre == (150.0, 120.0)


def test_a_nul_after_the_last_field_ends_it(shared_data):
    """A real CCD frame (LUNUS test data, reader_cases/README.md §2) whose header has a NUL right
    after ``CCD_IMAGE_SATURATION=65535;`` and before the ``}``: read, with the geometry the ADSC
    convention and the DIALS model of this frame give (beam (533.0, 500.25) px, 57.43 mm), and the
    saturation cut-off the header states."""
    frame = open_image(shared_data / "reader_cases" / "snc_newhead_00001.img.gz")
    assert frame.pixels.shape == (1024, 1024)
    assert frame.geometry.beam_centre == pytest.approx((533.0, 500.25), abs=0.01)
    assert frame.geometry.distance == pytest.approx(57.43) and frame.geometry.wavelength == pytest.approx(0.908)
    assert frame.geometry.pixel_size == pytest.approx(0.08)
    assert frame.pixels.max() < 65535 or frame.mask[frame.pixels >= 65535].all()
