"""Detectors of any orientation (a 2θ arm): the geometry model, the real swung PILATUS frames of
reader_cases/README.md §1 and §1b against the DIALS and XDS models given there, and a simulated
swung-detector frame of a known lattice that must index."""
import math

import numpy as np
import pytest

from xrais.io import ImageError, open_image
from xrais.io.cbf import write_cbf
from xrais.io.errors import UnsupportedGeometryError
from xrais.io.geometry import Geometry, two_theta_axes
from xrais.lattice.indexing import index_spots
from xrais.spotfinder import find_spots


def _model_inverse_d(origin, fast, slow, pixel_size, beam, wavelength, f, s):
    """1/d (Å⁻¹) at pixel positions (f, s) of a dxtbx/XDS-style model: panel origin and axes in the
    dxtbx lab frame, the beam's direction of travel ``beam`` (any length)."""
    position = np.asarray(origin) + pixel_size * (f[..., None] * np.asarray(fast) + s[..., None] * np.asarray(slow))
    unit = position / np.linalg.norm(position, axis=-1, keepdims=True)
    direction = np.asarray(beam, float) / np.linalg.norm(beam)
    return np.linalg.norm(unit - direction, axis=-1) / wavelength


def _pixel_grid(shape, step):
    slow, fast = np.meshgrid(np.arange(0, shape[0], step) + 0.5, np.arange(0, shape[1], step) + 0.5, indexing="ij")
    return fast, slow


# -- the geometry model -----------------------------------------------------------------------
def test_facing_detector_inverse_d_at_pixel_is_the_radial_formula():
    geometry = Geometry(distance=180.0, wavelength=0.98, pixel_size=0.075, beam_centre=(2100.3, 2200.8),
                        shape=(4362, 4148))
    rng = np.random.default_rng(3)
    fast, slow = rng.uniform(0, 4148, 500), rng.uniform(0, 4362, 500)
    radius = np.hypot(fast - 2100.3, slow - 2200.8)
    np.testing.assert_allclose(geometry.inverse_d_at_pixel(fast, slow), geometry.inverse_d_at(radius), rtol=1e-9)
    assert geometry.faces_beam and geometry.perpendicular_foot == pytest.approx(geometry.beam_centre)


@pytest.mark.parametrize("two_theta", [12.0, -35.0, 60.0])
def test_swung_detector_angles(two_theta):
    """On a detector swung by 2θ the direct beam (the beam centre) has 1/d = 0, the foot of the
    perpendicular sits at scattering angle 2θ, and 1/d = 2·sin(θ)/λ holds with θ from the ray."""
    fast_axis, slow_axis = two_theta_axes(two_theta)
    geometry = Geometry.from_perpendicular_foot((400.0, 300.0), distance=150.0, wavelength=1.2, pixel_size=0.1,
                                                shape=(800, 900), fast_axis=fast_axis, slow_axis=slow_axis)
    assert geometry.tilt_deg == pytest.approx(abs(two_theta)) and not geometry.faces_beam
    assert geometry.perpendicular_foot == pytest.approx((400.0, 300.0))
    assert geometry.inverse_d_at_pixel(*geometry.beam_centre) == pytest.approx(0.0, abs=1e-12)
    assert geometry.inverse_d_at_pixel(400.0, 300.0) == pytest.approx(2 * math.sin(math.radians(abs(two_theta)) / 2) / 1.2)
    # the beam meets the plane D / cos(2θ) from the sample, D·tan(2θ) from the foot
    shift = math.hypot(geometry.beam_centre[0] - 400.0, geometry.beam_centre[1] - 300.0) * 0.1
    assert shift == pytest.approx(150.0 * math.tan(math.radians(abs(two_theta))))
    with pytest.raises(UnsupportedGeometryError, match="tilted"):
        geometry.inverse_d_at(10.0)  # the radial helpers refuse: 1/d is no function of the radius


def test_a_detector_nearly_parallel_to_the_beam_is_refused():
    fast_axis, slow_axis = two_theta_axes(85.0)
    with pytest.raises(UnsupportedGeometryError, match="tilted 85.0° against the beam"):
        Geometry(distance=100.0, wavelength=1.0, pixel_size=0.1, beam_centre=(0, 0), shape=(10, 10),
                 fast_axis=fast_axis, slow_axis=slow_axis)


def test_swung_minicbf_round_trip(tmp_path):
    """A frame written with ``# Detector_2theta`` and ``Beam_xy`` at the foot of the perpendicular is
    read back with the same orientation and beam centre (dxtbx's miniCBF convention)."""
    fast_axis, slow_axis = two_theta_axes(25.0)
    geometry = Geometry.from_perpendicular_foot((300.0, 250.0), distance=120.0, wavelength=1.0, pixel_size=0.172,
                                                shape=(500, 600), fast_axis=fast_axis, slow_axis=slow_axis)
    write_cbf(tmp_path / "swung.cbf", np.zeros((500, 600), np.int32), geometry)
    assert "# Detector_2theta 25.0000 deg." in (tmp_path / "swung.cbf").read_bytes().decode("latin-1")
    read = open_image(tmp_path / "swung.cbf").geometry
    assert read.beam_centre == pytest.approx(geometry.beam_centre, abs=0.01)
    assert read.slow_axis == pytest.approx(slow_axis) and read.fast_axis == pytest.approx(fast_axis)
    # the beam meets a detector swung upwards below its foot
    assert read.beam_centre[1] > 250.0 + 100.0


# -- the real swung frames ----------------------------------------------------------------------
def test_lcysteine_frame_is_read_as_dials_imports_it(shared_data):
    """PILATUS 2M at 2θ = 30°, fast axis vertical (README §1): the DIALS imported model, the beam at
    (192.9, 865.0) px, 1/d within 0.5 % of that model at every pixel; DIALS's refined model (the beam
    centre moved by refinement) within 1 % at the median."""
    geometry = open_image(shared_data / "reader_cases" / "l-cyst_01_00001.cbf.gz").geometry
    assert geometry.tilt_deg == pytest.approx(30.0, abs=0.01)
    assert geometry.beam_centre == pytest.approx((192.9, 865.0), abs=0.1)
    assert geometry.distance == pytest.approx(160.0, abs=0.01)
    assert geometry.perpendicular_foot == pytest.approx((730.0, 865.0), abs=0.01)
    np.testing.assert_allclose(geometry.origin, (-148.78, -28.74, -201.34), atol=0.01)
    np.testing.assert_allclose(geometry.fast_axis, (0.0, 0.8660, 0.5000), atol=1e-4)
    np.testing.assert_allclose(geometry.slow_axis, (1.0, 0.0, 0.0), atol=1e-4)
    fast, slow = _pixel_grid(geometry.shape, 16)
    ours = geometry.inverse_d_at_pixel(fast, slow)
    imported = _model_inverse_d((-148.78, -28.74, -201.34), (0, 0.8660, 0.5), (1, 0, 0), 0.172, (0, 0, -1), 0.6889,
                                fast, slow)
    beyond_20_angstrom = ours > 0.05  # nearer the beam the README's rounded origin (0.01 mm) tells less
    assert beyond_20_angstrom.mean() > 0.99
    assert np.abs(ours / imported - 1)[beyond_20_angstrom].max() < 0.005
    refined = _model_inverse_d((-148.56, -28.82, -202.26), (-0.0014, 0.8694, 0.4941), (1.0, 0.0010, 0.0011), 0.172,
                               (0.00194, 0, -1), 0.6889, fast, slow)
    assert np.median(np.abs(ours / refined - 1)) < 0.01


def test_pilatus_300k_at_20_degrees_matches_the_header_axes_and_xds(shared_data):
    """PILATUS 300K at 2θ = 20°, beam off the chip (README §1b): the header axes' model within 0.5 %
    at every pixel and XDS's refined model (GXPARM.XDS, turned from XDS's frame) within 0.5 % at
    90 % of the pixels; read as a detector facing the beam at Beam_xy, 1/d would be off many-fold."""
    geometry = open_image(shared_data / "reader_cases" / "ximg2700_00001.cbf.gz").geometry
    assert geometry.shape == (619, 487) and geometry.tilt_deg == pytest.approx(20.0, abs=0.01)
    assert geometry.beam_centre == pytest.approx((-15.1, 326.7), abs=0.1)
    fast, slow = _pixel_grid(geometry.shape, 4)
    ours = geometry.inverse_d_at_pixel(fast, slow)
    header = _model_inverse_d((-56.20, 2.44, -129.33), (0, 0.9397, 0.3420), (1, 0, 0), 0.172, (0, 0, -1), 0.6894,
                              fast, slow)
    assert np.abs(ours / header - 1).max() < 0.005
    # XDS frame = dxtbx frame turned 180° about x: (x, y, z) → (x, −y, −z)
    xds_fast, xds_slow, xds_normal = np.array([0, 0.939693, 0.342020]), np.array([1.0, 0, 0]), np.array([0, 0.342020, -0.939693])
    origin = 122.1249 * xds_normal - 0.172 * (244.836 * xds_fast + 320.339 * xds_slow)
    xds = _model_inverse_d(origin, xds_fast, xds_slow, 0.172, (0.013142, -0.002200, -1.450476), 0.6894, fast, slow)
    assert np.percentile(np.abs(ours / xds - 1), 90) < 0.005
    flat = geometry.replace(fast_axis=(1, 0, 0), slow_axis=(0, -1, 0), beam_centre=geometry.perpendicular_foot)
    assert np.abs(flat.inverse_d_at_pixel(fast, slow) / xds - 1).max() > 1.0


def test_pilatus_300k_at_20_degrees_indexes_its_cubic_crystal(shared_data):
    """The swung 300K frame's spots, mapped through the 2θ geometry, index the crystal XDS found
    (README §1b: cubic I, a = 51.58 Å): the primitive cell of a body-centred cube, three edges
    a·√3/2 = 44.67 Å at 109.47° or 70.53° to each other. Read as facing the beam, the same spots do not."""
    frame = open_image(shared_data / "reader_cases" / "ximg2700_00001.cbf.gz")
    spots = find_spots(frame.pixels, frame.mask, frame.geometry)
    result = index_spots(spots, frame.geometry)
    assert result.lattices and result.fraction_indexed > 0.6
    cell = result.lattices[0].cell
    assert np.allclose(cell[:3], 51.58 * math.sqrt(3) / 2, rtol=0.01)
    # 109.47° or 70.53° between each pair, as the basis vectors' signs fall: |cos| = 1/3
    np.testing.assert_allclose(np.abs(np.cos(np.radians(cell[3:]))), 1.0 / 3.0, atol=0.02)
    flat = frame.geometry.replace(fast_axis=(1, 0, 0), slow_axis=(0, -1, 0),
                                  beam_centre=frame.geometry.perpendicular_foot)
    misread = index_spots(find_spots(frame.pixels, frame.mask, flat), flat)
    assert not misread.lattices or not np.allclose(misread.lattices[0].cell[:3], cell[:3], rtol=0.01) \
        or misread.fraction_indexed < 0.5 * result.fraction_indexed


def test_imgcif_axes_that_contradict_the_pilatus_lines_are_refused(shared_data, tmp_path):
    """The hybrid header's imgCIF axes swing the detector 30°; a copy whose PILATUS line says 25° is
    refused in one line naming both, never read with either."""
    import gzip

    content = gzip.decompress((shared_data / "reader_cases" / "l-cyst_01_00001.cbf.gz").read_bytes())
    edited = content.replace(b"# Detector_2theta 30.0000 deg.", b"# Detector_2theta 25.0000 deg.")
    assert edited != content
    (tmp_path / "edited.cbf").write_bytes(edited)
    with pytest.raises(ImageError, match=r"imgCIF axes and its PILATUS lines disagree \(2θ 30.00° vs Detector_2theta 25°\)"):
        open_image(tmp_path / "edited.cbf")


# -- a simulated swung frame of a known lattice ---------------------------------------------------
def _swung_lattice_frame(cell_edges, two_theta, rng):
    """Pixels and geometry of a still of an orthorhombic crystal (edges Å, random orientation) on a
    detector swung by ``two_theta`` degrees: each reflection within 0.002 Å⁻¹ of the Ewald sphere is a
    Gaussian spot where its diffracted ray meets the tilted plane, on 3 photons of background, the
    whole counted with Poisson noise."""
    fast_axis, slow_axis = two_theta_axes(two_theta)
    geometry = Geometry.from_perpendicular_foot((600.0, 500.0), distance=150.0, wavelength=1.0, pixel_size=0.172,
                                                shape=(1000, 1200), fast_axis=fast_axis, slow_axis=slow_axis)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    reciprocal = q @ np.diag(1.0 / np.asarray(cell_edges))  # columns: a*, b*, c* (Å⁻¹, dxtbx lab frame)
    hkl = np.stack(np.meshgrid(*[np.arange(-40, 41)] * 3, indexing="ij"), -1).reshape(-1, 3)
    r = hkl @ reciprocal.T
    s0 = np.array([0.0, 0.0, -1.0]) / geometry.wavelength
    s1 = r + s0
    near = np.abs(np.linalg.norm(s1, axis=1) - 1.0 / geometry.wavelength) < 0.002
    rays = s1[near] / np.linalg.norm(s1[near], axis=1, keepdims=True)
    along = rays @ geometry.normal
    hits = rays[along > 0] * (geometry.distance / along[along > 0])[:, None] - geometry.origin
    fast = hits @ np.asarray(fast_axis) / geometry.pixel_size
    slow = hits @ np.asarray(slow_axis) / geometry.pixel_size
    inside = (fast > 5) & (fast < 1195) & (slow > 5) & (slow < 995)
    pixels = np.full(geometry.shape, 3.0)
    grid_slow, grid_fast = np.mgrid[-4:5, -4:5]
    for f, s in zip(fast[inside], slow[inside]):
        i, j = int(s), int(f)
        pixels[i - 4:i + 5, j - 4:j + 5] += 400.0 * np.exp(-((grid_fast + j + 0.5 - f) ** 2 + (grid_slow + i + 0.5 - s) ** 2) / 2.0)
    return rng.poisson(pixels).astype(np.int32), geometry, int(inside.sum())


def test_simulated_swung_frame_of_a_known_lattice_indexes(tmp_path):
    """A still on a detector swung by 30°, written as a miniCBF and read back: its spots index the
    orthorhombic 38 × 52 × 71 Å cell it was made of (edges to 0.3 %, angles to 0.2°); the same spots
    read as if the detector faced the beam at Beam_xy give a distorted cell (edges or angles off by
    more than 1 % or 1°) or none."""
    rng = np.random.default_rng(11)
    pixels, geometry, n_reflections = _swung_lattice_frame((38.0, 52.0, 71.0), 30.0, rng)
    assert n_reflections > 80
    write_cbf(tmp_path / "swung_00001.cbf", pixels, geometry)
    frame = open_image(tmp_path / "swung_00001.cbf")
    assert frame.geometry.tilt_deg == pytest.approx(30.0, abs=1e-3)
    spots = find_spots(frame.pixels, frame.mask, frame.geometry)
    result = index_spots(spots, frame.geometry)
    assert result.lattices and result.fraction_indexed > 0.9
    assert np.allclose(sorted(result.lattices[0].cell[:3]), (38.0, 52.0, 71.0), rtol=0.003)
    assert np.allclose(result.lattices[0].cell[3:], 90.0, atol=0.2)
    flat = frame.geometry.replace(fast_axis=(1, 0, 0), slow_axis=(0, -1, 0),
                                  beam_centre=frame.geometry.perpendicular_foot)
    misread = index_spots(spots, flat)
    assert not misread.lattices or not (np.allclose(sorted(misread.lattices[0].cell[:3]), (38.0, 52.0, 71.0), rtol=0.01)
                                        and np.allclose(misread.lattices[0].cell[3:], 90.0, atol=1.0))


def test_any_orientation_round_trips_through_a_minicbf(shared_data, tmp_path):
    """A detector not swung about x alone (the L-cysteine frame's vertical fast axis) is written with
    its imgCIF axes after the PILATUS lines, as Diamond's I19 writes them, and read back the same."""
    frame = open_image(shared_data / "reader_cases" / "l-cyst_01_00001.cbf.gz")
    write_cbf(tmp_path / "copy.cbf", frame.pixels, frame.geometry)
    read = open_image(tmp_path / "copy.cbf")
    assert read.geometry.beam_centre == pytest.approx(frame.geometry.beam_centre, abs=1e-6)
    assert read.geometry.distance == pytest.approx(frame.geometry.distance, rel=1e-9)
    np.testing.assert_allclose(read.geometry.fast_axis, frame.geometry.fast_axis, atol=1e-9)
    np.testing.assert_allclose(read.geometry.slow_axis, frame.geometry.slow_axis, atol=1e-9)
    np.testing.assert_array_equal(read.pixels, frame.pixels)


def test_cif_tables_read_loops_single_items_text_fields_and_broken_rows():
    from xrais.io.imgcif import cif_tables

    text = "\n".join([
        "_array_data.header_contents", ";", "# Detector_2theta 20 deg.", "_not.a_category 1", ";",
        "_diffrn.id 'DLS I19'  # a comment", "loop_", "_axis.id", "_axis.type", "_axis.vector[1] _axis.vector[2]",
        "KAPPA rotation", "0.64 -0.77", "Z translation . ?", "loop_", "_other.x", "1", "2",
    ])
    tables = cif_tables(text)
    assert tables["diffrn"] == [{"id": "DLS I19"}]
    assert tables["axis"] == [{"id": "KAPPA", "type": "rotation", "vector[1]": "0.64", "vector[2]": "-0.77"},
                              {"id": "Z", "type": "translation", "vector[1]": None, "vector[2]": None}]
    assert tables["other"] == [{"x": "1"}, {"x": "2"}] and "not" not in tables
    assert tables["array_data"][0]["header_contents"] != "_diffrn.id"


def test_a_detector_2theta_beyond_the_model_is_one_clear_error(tmp_path):
    """A header swinging the detector to 85° (the beam grazing its plane) is refused in one line
    naming the file, not a traceback (found by fuzzing the readers)."""
    geometry = Geometry(distance=120.0, wavelength=1.0, pixel_size=0.172, beam_centre=(300.0, 250.0), shape=(500, 600))
    write_cbf(tmp_path / "arm.cbf", np.zeros((500, 600), np.int32), geometry, extra_header="# Detector_2theta 85.0 deg.")
    with pytest.raises(ImageError, match=r"arm\.cbf: detector orientation: the detector plane is tilted 85\.0°"):
        open_image(tmp_path / "arm.cbf")


def test_unreadable_imgcif_axes_are_refused_for_a_swung_detector_only(shared_data, tmp_path):
    """Axis categories that name an axis set no ``_array_structure_list_axis`` row defines: with
    ``Detector_2theta 30`` the frame is refused (its orientation is unknown); with a header that says
    the detector faces the beam, the PILATUS lines alone give the geometry."""
    import gzip

    content = gzip.decompress((shared_data / "reader_cases" / "l-cyst_01_00001.cbf.gz").read_bytes())
    broken = content.replace(b"ARRAY1 1 1475 1 increasing ELEMENT_X", b"ARRAY1 1 1475 1 increasing NO_SUCH_SET")
    assert broken != content
    (tmp_path / "swung.cbf").write_bytes(broken)
    with pytest.raises(ImageError, match="imgCIF axes of a swung detector cannot be read: panel detector has no single "
                                         "defined axis"):
        open_image(tmp_path / "swung.cbf")
    facing = broken.replace(b"# Detector_2theta 30.0000 deg.", b"# Detector_2theta 0.0000 deg.")
    (tmp_path / "facing.cbf").write_bytes(facing)
    geometry = open_image(tmp_path / "facing.cbf").geometry
    assert geometry.faces_beam and geometry.beam_centre == pytest.approx((730.0, 865.0))
